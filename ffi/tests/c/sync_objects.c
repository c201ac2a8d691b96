/*
 * Events and semaphores from C: bad input first (NULL pointers, bad names and
 * options, missing objects), then across fork: a child waiting on a named event
 * is woken by the parent's notify_one; a child posts a named semaphore K times
 * and the parent takes K units, then finds it empty; the same over memfd objects
 * handed to the child; timeouts and the maximum count.
 *
 *   sync_objects NAME_PREFIX
 *
 * Exits 0 and prints "ok: N checks" if every call returned what it should; else
 * prints the first mismatch and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

_Static_assert(sizeof(shmring_sync_options) == SHMRING_SYNC_OPTIONS_SIZE,
               "shmring_sync_options size");

#define K 500u
#define TIMEOUT_MS 10000u

#include "expect.h"

static void name_of(char *out, size_t size, const char *prefix, const char *what) {
    int n = snprintf(out, size, "%s-%s", prefix, what);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "name too long\n");
        exit(1);
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void wait_child(pid_t pid) {
    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void bad_input(const char *prefix) {
    shmring_event *ev = (shmring_event *)&checks; /* must be overwritten with NULL */
    shmring_semaphore *sem = (shmring_semaphore *)&checks;
    shmring_sync_options options;
    char name[256];
    uint32_t value = 7;
    int fd = -1;

    EXPECT(shmring_sync_options_init(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    ASSERT(options.flags == 0 && options.max_count == 0);

    EXPECT(shmring_event_create(NULL, NULL, &ev), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(ev == NULL);
    EXPECT(shmring_event_create("a/b", NULL, &ev), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_semaphore_create("", NULL, &sem), SHMRING_E_INVALID_NAME);
    ASSERT(sem == NULL);
    name_of(name, sizeof name, prefix, "missing");
    EXPECT(shmring_event_open(name, NULL, &ev), SHMRING_E_NOT_FOUND);
    EXPECT(shmring_semaphore_open(name, NULL, &sem), SHMRING_E_NOT_FOUND);
    EXPECT(shmring_event_create(name, NULL, NULL), SHMRING_E_INVALID_ARGUMENT);

    options.flags = 1u << 20;
    EXPECT(shmring_event_create(name, &options, &ev), SHMRING_E_INVALID_ARGUMENT);
    options.flags = SHMRING_OPTION_KEEP | SHMRING_OPTION_UNLINK;
    EXPECT(shmring_semaphore_create(name, &options, &sem), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.reserved[2] = 1;
    EXPECT(shmring_event_create(name, &options, &ev), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.initial_count = 3;
    options.max_count = 2;
    EXPECT(shmring_semaphore_create(name, &options, &sem), SHMRING_E_FULL);
    options.max_count = SHMRING_SEMAPHORE_MAX_LIMIT + 1u;
    options.initial_count = 0;
    EXPECT(shmring_semaphore_create(name, &options, &sem), SHMRING_E_FULL);
    EXPECT(shmring_event_open_fd(-1, NULL, &ev), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_semaphore_open_fd(-1, NULL, &sem), SHMRING_E_INVALID_ARGUMENT);

    /* NULL handles. */
    EXPECT(shmring_event_notify_one(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_event_notify_all(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_event_wait_timeout(NULL, 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_event_prepare(NULL, &value), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_event_fd(NULL, &fd), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_semaphore_post(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_semaphore_try_wait(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_semaphore_value(NULL, &value), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_event_close(NULL), SHMRING_OK);
    EXPECT(shmring_semaphore_close(NULL), SHMRING_OK);
}

/* A child opens the named event, takes a key, tells the parent through the
 * "ready" semaphore, and waits for a notification after its key. */
static void event_across_fork(const char *prefix) {
    char ev_name[256], ready_name[256];
    shmring_event *ev = NULL;
    shmring_semaphore *ready = NULL;
    uint32_t key = 0;
    name_of(ev_name, sizeof ev_name, prefix, "ev");
    name_of(ready_name, sizeof ready_name, prefix, "ready");
    EXPECT(shmring_event_create(ev_name, NULL, &ev), SHMRING_OK);
    {
        shmring_event *again = (shmring_event *)&checks;
        EXPECT(shmring_event_create(ev_name, NULL, &again), SHMRING_E_ALREADY_EXISTS);
        ASSERT(again == NULL);
        EXPECT(shmring_event_open(ev_name, NULL, &again), SHMRING_OK);
        EXPECT(shmring_event_close(again), SHMRING_OK);
    }
    EXPECT(shmring_semaphore_create(ready_name, NULL, &ready), SHMRING_OK);
    /* An event is not a semaphore. */
    {
        shmring_semaphore *wrong = NULL;
        EXPECT(shmring_semaphore_open(ev_name, NULL, &wrong), SHMRING_E_INCOMPATIBLE_LAYOUT);
    }
    /* Nothing stored: a wait after a notification times out. */
    EXPECT(shmring_event_notify_all(ev), SHMRING_OK);
    EXPECT(shmring_event_wait_timeout(ev, 20), SHMRING_E_TIMED_OUT);
    /* A key sees a notification made after it. */
    EXPECT(shmring_event_prepare(ev, &key), SHMRING_OK);
    EXPECT(shmring_event_notify_one(ev), SHMRING_OK);
    EXPECT(shmring_event_wait_from(ev, key, 0), SHMRING_OK);

    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        shmring_event *mine = NULL;
        shmring_semaphore *tell = NULL;
        EXPECT(shmring_event_open(ev_name, NULL, &mine), SHMRING_OK);
        EXPECT(shmring_semaphore_open(ready_name, NULL, &tell), SHMRING_OK);
        EXPECT(shmring_event_prepare(mine, &key), SHMRING_OK);
        EXPECT(shmring_semaphore_post(tell), SHMRING_OK);
        EXPECT(shmring_event_wait_from(mine, key, TIMEOUT_MS), SHMRING_OK);
        EXPECT(shmring_event_close(mine), SHMRING_OK);
        EXPECT(shmring_semaphore_close(tell), SHMRING_OK);
        exit(0);
    }
    EXPECT(shmring_semaphore_wait_timeout(ready, TIMEOUT_MS), SHMRING_OK);
    sleep_ms(20); /* let the child go to sleep */
    EXPECT(shmring_event_notify_one(ev), SHMRING_OK);
    wait_child(pid);
    EXPECT(shmring_event_close(ev), SHMRING_OK);
    EXPECT(shmring_semaphore_close(ready), SHMRING_OK);
}

/* A child posts K units; the parent takes K, then finds the semaphore empty. */
static void semaphore_across_fork(const char *prefix) {
    char name[256];
    shmring_semaphore *sem = NULL;
    shmring_sync_options options;
    uint32_t value = 99;
    name_of(name, sizeof name, prefix, "count");
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.max_count = K;
    EXPECT(shmring_semaphore_create(name, &options, &sem), SHMRING_OK);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        shmring_semaphore *mine = NULL;
        EXPECT(shmring_semaphore_open(name, NULL, &mine), SHMRING_OK);
        for (unsigned i = 0; i < K; i++) {
            EXPECT(shmring_semaphore_post(mine), SHMRING_OK);
        }
        EXPECT(shmring_semaphore_close(mine), SHMRING_OK);
        exit(0);
    }
    for (unsigned i = 0; i < K; i++) {
        EXPECT(shmring_semaphore_wait_timeout(sem, TIMEOUT_MS), SHMRING_OK);
    }
    wait_child(pid);
    EXPECT(shmring_semaphore_try_wait(sem), SHMRING_E_EMPTY);
    EXPECT(shmring_semaphore_wait_timeout(sem, 20), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_semaphore_value(sem, &value), SHMRING_OK);
    ASSERT(value == 0);
    /* The maximum. */
    for (unsigned i = 0; i < K; i++) {
        EXPECT(shmring_semaphore_post(sem), SHMRING_OK);
    }
    EXPECT(shmring_semaphore_post(sem), SHMRING_E_FULL);
    EXPECT(shmring_semaphore_value(sem, &value), SHMRING_OK);
    ASSERT(value == K);
    EXPECT(shmring_semaphore_close(sem), SHMRING_OK);
}

/* memfd objects inherited across fork: the child opens them by descriptor. */
static void memfd_across_fork(void) {
    shmring_event *ev = NULL;
    shmring_semaphore *sem = NULL;
    int ev_fd = -1, sem_fd = -1;
    EXPECT(shmring_event_create_memfd(NULL, &ev), SHMRING_OK);
    EXPECT(shmring_semaphore_create_memfd(NULL, &sem), SHMRING_OK);
    EXPECT(shmring_event_fd(ev, &ev_fd), SHMRING_OK);
    EXPECT(shmring_semaphore_fd(sem, &sem_fd), SHMRING_OK);
    ASSERT(ev_fd >= 0 && sem_fd >= 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        shmring_event *mine = NULL;
        shmring_semaphore *tell = NULL;
        uint32_t key = 0;
        EXPECT(shmring_event_open_fd(ev_fd, NULL, &mine), SHMRING_OK);
        EXPECT(shmring_semaphore_open_fd(sem_fd, NULL, &tell), SHMRING_OK);
        EXPECT(shmring_event_prepare(mine, &key), SHMRING_OK);
        EXPECT(shmring_semaphore_post(tell), SHMRING_OK);
        EXPECT(shmring_event_wait_from(mine, key, TIMEOUT_MS), SHMRING_OK);
        EXPECT(shmring_event_close(mine), SHMRING_OK);
        EXPECT(shmring_semaphore_close(tell), SHMRING_OK);
        exit(0);
    }
    EXPECT(shmring_semaphore_wait_timeout(sem, TIMEOUT_MS), SHMRING_OK);
    sleep_ms(20);
    EXPECT(shmring_event_notify_all(ev), SHMRING_OK);
    wait_child(pid);
    EXPECT(shmring_event_close(ev), SHMRING_OK);
    EXPECT(shmring_semaphore_close(sem), SHMRING_OK);
}

/* A file-backed semaphore keeps its count after its last handle closes. */
static void file_semaphore(const char *prefix) {
    char path[512];
    shmring_semaphore *sem = NULL;
    shmring_event *ev = NULL;
    shmring_sync_options options;
    uint32_t value = 0;
    int n = snprintf(path, sizeof path, "/tmp/%s-file-sem", prefix);
    ASSERT(n > 0 && (size_t)n < sizeof path);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.initial_count = 2;
    EXPECT(shmring_semaphore_create_file(path, &options, &sem), SHMRING_OK);
    EXPECT(shmring_semaphore_post(sem), SHMRING_OK);
    EXPECT(shmring_semaphore_close(sem), SHMRING_OK);
    EXPECT(shmring_semaphore_open_file(path, NULL, &sem), SHMRING_OK);
    EXPECT(shmring_semaphore_value(sem, &value), SHMRING_OK);
    ASSERT(value == 3);
    EXPECT(shmring_event_open_file(path, NULL, &ev), SHMRING_E_INCOMPATIBLE_LAYOUT);
    EXPECT(shmring_semaphore_close(sem), SHMRING_OK);
    ASSERT(unlink(path) == 0);
    EXPECT(shmring_event_create_file(path, NULL, &ev), SHMRING_OK);
    EXPECT(shmring_event_notify_all(ev), SHMRING_OK);
    EXPECT(shmring_event_close(ev), SHMRING_OK);
    ASSERT(unlink(path) == 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME_PREFIX\n", argv[0]);
        return 2;
    }
    bad_input(argv[1]);
    event_across_fork(argv[1]);
    semaphore_across_fork(argv[1]);
    memfd_across_fork();
    file_semaphore(argv[1]);
    printf("ok: %d checks\n", checks);
    return 0;
}
