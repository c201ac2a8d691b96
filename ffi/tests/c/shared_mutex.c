/*
 * Shared mutexes from C: bad input first (NULL pointers, sizes out of range,
 * unknown flags, a missing mutex, another kind of object, a handle of another
 * kind), then the outcomes in one process (unlock, mark, read and write without
 * the lock, a second lock on the same handle, a buffer too small, a wrong write
 * length, another handle's try_lock and timed lock while the lock is held,
 * open_or_create of another size, close unlocking); then across fork: PROCS
 * processes each add 1 to a shared u64 through the lock ROUNDS times (the final
 * value is exact), for a named mutex and a memfd mutex opened from its
 * descriptor; and a child killed (SIGKILL) while it holds the lock: the parent's
 * lock returns SHMRING_E_OWNER_DIED with the lock held (the child's half-update
 * visible), again after an unlock without the mark, and SHMRING_OK once the
 * value is marked consistent; the same through try_lock.
 *
 *   shared_mutex NAME_PREFIX [ROUNDS]
 *
 * A mutex uses no fence pair (no membarrier): valgrind runs it as it is. Exits 0 and prints "ok: N checks" if
 * every call returned what it should; else prints the first mismatch and exits 1.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmring.h"

#include "expect.h"

#define VSIZE 203u
#define PROCS 4
#define TIMEOUT_MS 30000u

static shmring_sync_options mutex_options;

static void name_of(char *out, size_t size, const char *prefix, const char *what) {
    int n = snprintf(out, size, "%s-%s", prefix, what);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "name too long\n");
        exit(1);
    }
}

static void wait_child(pid_t pid) {
    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Whether the last error message contains `what`. */
static int message_has(const char *what) {
    return strstr(shmring_last_error_message(), what) != NULL;
}

static void bad_input(const char *prefix) {
    shmring_shared_mutex *mutex = (shmring_shared_mutex *)&checks; /* must become NULL */
    shmring_sync_options options;
    char name[256];
    uint8_t buf[VSIZE];
    size_t size = 7;
    int fd = -1;

    EXPECT(shmring_shared_mutex_create(NULL, VSIZE, NULL, &mutex), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(mutex == NULL);
    EXPECT(shmring_shared_mutex_create("a/b", VSIZE, NULL, &mutex), SHMRING_E_INVALID_NAME);
    name_of(name, sizeof name, prefix, "bad");
    EXPECT(shmring_shared_mutex_create(name, VSIZE, NULL, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_create(name, 0, NULL, &mutex), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_shared_mutex_create(name, SHMRING_SHARED_MUTEX_MAX_SIZE + 1, NULL, &mutex),
           SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_shared_mutex_create_memfd(0, NULL, &mutex), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_shared_mutex_open_or_create(name, 0, NULL, &mutex),
           SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.flags = 1u << 20;
    EXPECT(shmring_shared_mutex_create(name, VSIZE, &options, &mutex),
           SHMRING_E_INVALID_ARGUMENT);
    ASSERT(message_has("for a shared mutex"));
    /* The lock uses no fence pair: the fences' flag is refused. */
    options.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
    EXPECT(shmring_shared_mutex_create_memfd(VSIZE, &options, &mutex),
           SHMRING_E_INVALID_ARGUMENT);
    options.flags = SHMRING_OPTION_PREFAULT;
    EXPECT(shmring_shared_mutex_create_memfd(VSIZE, &options, &mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_close(mutex), SHMRING_OK);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.reserved[0] = 1;
    EXPECT(shmring_shared_mutex_open(name, &options, &mutex), SHMRING_E_INVALID_ARGUMENT);
    /* A missing mutex. */
    EXPECT(shmring_shared_mutex_open(name, NULL, &mutex), SHMRING_E_NOT_FOUND);
    ASSERT(mutex == NULL);
    ASSERT(message_has(name));
    EXPECT(shmring_shared_mutex_open_fd(-1, NULL, &mutex), SHMRING_E_INVALID_ARGUMENT);
    /* Another kind of object: an event, a shared value of the same size. */
    {
        shmring_event *ev = NULL;
        shmring_shared_value *value = NULL;
        EXPECT(shmring_event_create(name, NULL, &ev), SHMRING_OK);
        EXPECT(shmring_shared_mutex_open(name, NULL, &mutex), SHMRING_E_BAD_SIZE);
        EXPECT(shmring_shared_mutex_open_or_create(name, VSIZE, NULL, &mutex),
               SHMRING_E_INCOMPATIBLE_LAYOUT);
        EXPECT(shmring_event_close(ev), SHMRING_OK);
        /* Symmetric fences: a value's default asks for membarrier, which
         * valgrind refuses. */
        EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
        options.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
        EXPECT(shmring_shared_value_create(name, VSIZE, &options, &value), SHMRING_OK);
        EXPECT(shmring_shared_mutex_open_or_create(name, VSIZE, NULL, &mutex),
               SHMRING_E_INCOMPATIBLE_LAYOUT);
        ASSERT(mutex == NULL);
        /* A value handle passed as a mutex. */
        EXPECT(shmring_shared_mutex_try_lock((shmring_shared_mutex *)value),
               SHMRING_E_INVALID_ARGUMENT);
        ASSERT(message_has("a shared value handle was passed where a shared mutex"));
        EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    }

    /* NULL handles and pointers. */
    EXPECT(shmring_shared_mutex_lock(NULL, 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_try_lock(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_unlock(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_mark_consistent(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_read(NULL, buf, sizeof buf), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_write(NULL, buf, sizeof buf), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_size(NULL, &size), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_fd(NULL, &fd), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_close(NULL), SHMRING_OK);
    EXPECT(shmring_shared_mutex_create_memfd(VSIZE, &mutex_options, &mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_size(mutex, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_fd(mutex, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_lock(mutex, 0), SHMRING_OK);
    EXPECT(shmring_shared_mutex_read(mutex, NULL, sizeof buf), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_read(mutex, buf, SIZE_MAX), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_write(mutex, NULL, sizeof buf), SHMRING_E_INVALID_ARGUMENT);
    /* The failures above left the lock held. */
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_close(mutex), SHMRING_OK);
}

/* The slot count: set at create, full past it, out of range refused, compared
 * by open-or-create, and a field of the mutex only. */
static void slots(const char *prefix) {
    shmring_sync_options options;
    shmring_shared_mutex *a = NULL, *b = NULL, *c = NULL;
    shmring_event *ev = NULL;
    char name[256];

    name_of(name, sizeof name, prefix, "slots");
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.slots = SHMRING_SHARED_MUTEX_MAX_SLOTS + 1;
    EXPECT(shmring_shared_mutex_create(name, VSIZE, &options, &a), SHMRING_E_INVALID_CAPACITY);
    ASSERT(message_has("65"));
    options.slots = 2;
    EXPECT(shmring_shared_mutex_create(name, VSIZE, &options, &a), SHMRING_OK);
    EXPECT(shmring_shared_mutex_open(name, NULL, &b), SHMRING_OK);
    EXPECT(shmring_shared_mutex_open(name, NULL, &c), SHMRING_E_TABLE_FULL);
    ASSERT(c == NULL);
    /* Open or create compares the count: 16 (the default) is not 2. */
    EXPECT(shmring_shared_mutex_close(b), SHMRING_OK);
    EXPECT(shmring_shared_mutex_open_or_create(name, VSIZE, NULL, &c),
           SHMRING_E_INCOMPATIBLE_LAYOUT);
    ASSERT(message_has("slots"));
    EXPECT(shmring_shared_mutex_open_or_create(name, VSIZE, &options, &c), SHMRING_OK);
    EXPECT(shmring_shared_mutex_close(c), SHMRING_OK);
    EXPECT(shmring_shared_mutex_close(a), SHMRING_OK);
    /* Another kind's options with slots set are refused. */
    EXPECT(shmring_event_create(name, &options, &ev), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(message_has("only a shared mutex has slots"));
    options.slots = 0;
    options.reserved32 = 1;
    EXPECT(shmring_shared_mutex_create_memfd(VSIZE, &options, &a), SHMRING_E_INVALID_ARGUMENT);
}

/* The outcomes in one process, on a named mutex and a second handle of it. */
static void outcomes(const char *prefix) {
    char name[256];
    shmring_shared_mutex *mutex = NULL, *other = NULL, *again = NULL;
    uint8_t data[VSIZE], buf[VSIZE + 16];
    size_t size = 0;
    name_of(name, sizeof name, prefix, "outcomes");
    EXPECT(shmring_shared_mutex_create(name, VSIZE, &mutex_options, &mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_create(name, VSIZE, &mutex_options, &again),
           SHMRING_E_ALREADY_EXISTS);
    EXPECT(shmring_shared_mutex_open_or_create(name, VSIZE + 1, &mutex_options, &again),
           SHMRING_E_INCOMPATIBLE_LAYOUT);
    EXPECT(shmring_shared_mutex_size(mutex, &size), SHMRING_OK);
    ASSERT(size == VSIZE);
    EXPECT(shmring_shared_mutex_open(name, &mutex_options, &other), SHMRING_OK);

    /* Without the lock: unlock, mark, read, write are refused, and touch nothing. */
    memset(data, 0x5a, sizeof data);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_E_NOT_BORROWED);
    ASSERT(message_has("does not hold the lock"));
    ASSERT(message_has(name));
    EXPECT(shmring_shared_mutex_mark_consistent(mutex), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_shared_mutex_read(mutex, buf, sizeof buf), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_shared_mutex_write(mutex, data, VSIZE), SHMRING_E_NOT_BORROWED);

    /* Locked: the value starts all zero; a second lock on the handle is refused. */
    EXPECT(shmring_shared_mutex_lock(mutex, UINT64_MAX), SHMRING_OK);
    EXPECT(shmring_shared_mutex_lock(mutex, 10), SHMRING_E_ALREADY_LOCKED);
    EXPECT(shmring_shared_mutex_try_lock(mutex), SHMRING_E_ALREADY_LOCKED);
    ASSERT(strcmp(shmring_strerror(SHMRING_E_ALREADY_LOCKED),
                  "this handle holds the lock already") == 0);
    memset(buf, 0xee, sizeof buf);
    EXPECT(shmring_shared_mutex_read(mutex, buf, sizeof buf), SHMRING_OK);
    for (size_t i = 0; i < VSIZE; i++) {
        ASSERT(buf[i] == 0);
    }
    ASSERT(buf[VSIZE] == 0xee); /* the rest of the buffer is left alone */
    EXPECT(shmring_shared_mutex_read(mutex, buf, VSIZE - 1), SHMRING_E_BUFFER_TOO_SMALL);
    EXPECT(shmring_shared_mutex_write(mutex, data, VSIZE - 1), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(message_has("202 bytes written"));
    EXPECT(shmring_shared_mutex_write(mutex, data, VSIZE + 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_mutex_write(mutex, data, VSIZE), SHMRING_OK);
    /* Consistent already: the mark changes nothing. */
    EXPECT(shmring_shared_mutex_mark_consistent(mutex), SHMRING_OK);

    /* The other handle waits for it. */
    EXPECT(shmring_shared_mutex_try_lock(other), SHMRING_E_BUSY);
    ASSERT(message_has("the lock is held"));
    EXPECT(shmring_shared_mutex_lock(other, 0), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_shared_mutex_lock(other, 20), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_shared_mutex_read(other, buf, sizeof buf), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_E_NOT_BORROWED);

    /* Then takes it, and sees the write. */
    EXPECT(shmring_shared_mutex_try_lock(other), SHMRING_OK);
    memset(buf, 0, sizeof buf);
    EXPECT(shmring_shared_mutex_read(other, buf, VSIZE), SHMRING_OK);
    ASSERT(memcmp(buf, data, VSIZE) == 0);
    /* Closing a handle that holds the lock unlocks it, cleanly. */
    EXPECT(shmring_shared_mutex_close(other), SHMRING_OK);
    EXPECT(shmring_shared_mutex_try_lock(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_close(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_open(name, NULL, &mutex), SHMRING_E_NOT_FOUND);
}

/* A child's own handle of the mutex: by name, or from the descriptor `fd`. */
static shmring_shared_mutex *child_handle(const char *name, int fd) {
    shmring_shared_mutex *mutex = NULL;
    if (fd >= 0) {
        EXPECT(shmring_shared_mutex_open_fd(fd, &mutex_options, &mutex), SHMRING_OK);
    } else {
        EXPECT(shmring_shared_mutex_open(name, &mutex_options, &mutex), SHMRING_OK);
    }
    return mutex;
}

/* Adds 1 to the u64 value of `mutex`, under its lock (which no holder died in). */
static void add_one(shmring_shared_mutex *mutex) {
    uint64_t n = 0;
    EXPECT(shmring_shared_mutex_lock(mutex, TIMEOUT_MS), SHMRING_OK);
    EXPECT(shmring_shared_mutex_read(mutex, &n, sizeof n), SHMRING_OK);
    n += 1;
    EXPECT(shmring_shared_mutex_write(mutex, &n, sizeof n), SHMRING_OK);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
}

/* PROCS children and the parent each add 1 `rounds` times: the sum is exact. */
static void counter(const char *prefix, int memfd, uint64_t rounds) {
    char name[256];
    shmring_shared_mutex *mutex = NULL;
    pid_t pids[PROCS];
    int fd = -1;
    uint64_t n = 0;
    name_of(name, sizeof name, prefix, "counter");
    if (memfd) {
        EXPECT(shmring_shared_mutex_create_memfd(sizeof n, &mutex_options, &mutex), SHMRING_OK);
        EXPECT(shmring_shared_mutex_fd(mutex, &fd), SHMRING_OK);
    } else {
        EXPECT(shmring_shared_mutex_open_or_create(name, sizeof n, &mutex_options, &mutex),
               SHMRING_OK);
    }
    /* A start gate: every process starts adding once all are forked and
     * attached (the parent closes the pipe), so that they contend. */
    int gate[2];
    char byte = 0;
    ASSERT(pipe(gate) == 0);
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        ASSERT(pids[p] >= 0);
        if (pids[p] == 0) {
            shmring_shared_mutex *own = child_handle(name, fd);
            close(gate[1]);
            ASSERT(read(gate[0], &byte, 1) == 0);
            for (uint64_t i = 0; i < rounds; i++) {
                add_one(own);
            }
            EXPECT(shmring_shared_mutex_close(own), SHMRING_OK);
            _exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]);
    for (uint64_t i = 0; i < rounds; i++) {
        add_one(mutex);
    }
    for (int p = 0; p < PROCS; p++) {
        wait_child(pids[p]);
    }
    EXPECT(shmring_shared_mutex_lock(mutex, TIMEOUT_MS), SHMRING_OK);
    EXPECT(shmring_shared_mutex_read(mutex, &n, sizeof n), SHMRING_OK);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
    if (n != (PROCS + 1) * rounds) {
        fprintf(stderr, "counter: %llu, expected %llu\n", (unsigned long long)n,
                (unsigned long long)((PROCS + 1) * rounds));
        exit(1);
    }
    checks++;
    EXPECT(shmring_shared_mutex_close(mutex), SHMRING_OK);
}

/* A child locks, writes 0xdead (half an update) and is killed holding the lock:
 * the parent's lock (or try_lock) returns SHMRING_E_OWNER_DIED, holding it. */
static void owner_died(int use_try) {
    shmring_shared_mutex *mutex = NULL;
    int fd = -1, ready[2];
    uint64_t n = 0;
    char byte = 0;
    EXPECT(shmring_shared_mutex_create_memfd(sizeof n, &mutex_options, &mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_fd(mutex, &fd), SHMRING_OK);
    ASSERT(pipe(ready) == 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        shmring_shared_mutex *own = child_handle(NULL, fd);
        EXPECT(shmring_shared_mutex_lock(own, TIMEOUT_MS), SHMRING_OK);
        n = 0xdead;
        EXPECT(shmring_shared_mutex_write(own, &n, sizeof n), SHMRING_OK);
        ASSERT(write(ready[1], "r", 1) == 1);
        for (;;) {
            pause();
        }
    }
    close(ready[1]);
    ASSERT(read(ready[0], &byte, 1) == 1);
    close(ready[0]);
    /* Held by the live child. */
    EXPECT(shmring_shared_mutex_try_lock(mutex), SHMRING_E_BUSY);
    ASSERT(kill(pid, SIGKILL) == 0);
    {
        int status = 0;
        ASSERT(waitpid(pid, &status, 0) == pid);
        ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    if (use_try) {
        EXPECT(shmring_shared_mutex_try_lock(mutex), SHMRING_E_OWNER_DIED);
    } else {
        EXPECT(shmring_shared_mutex_lock(mutex, TIMEOUT_MS), SHMRING_E_OWNER_DIED);
    }
    ASSERT(message_has("HOLDS THE LOCK"));
    ASSERT(strstr(shmring_strerror(SHMRING_E_OWNER_DIED), "held by the caller") != NULL);
    /* The lock is held: reads work, a second lock is refused. */
    EXPECT(shmring_shared_mutex_read(mutex, &n, sizeof n), SHMRING_OK);
    ASSERT(n == 0xdead);
    EXPECT(shmring_shared_mutex_try_lock(mutex), SHMRING_E_ALREADY_LOCKED);
    /* Unlocked without the mark: the next locker is told again. */
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_lock(mutex, TIMEOUT_MS), SHMRING_E_OWNER_DIED);
    ASSERT(message_has("not marked"));
    n = 0;
    EXPECT(shmring_shared_mutex_write(mutex, &n, sizeof n), SHMRING_OK);
    EXPECT(shmring_shared_mutex_mark_consistent(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
    /* Repaired: a normal lock. */
    EXPECT(shmring_shared_mutex_lock(mutex, TIMEOUT_MS), SHMRING_OK);
    EXPECT(shmring_shared_mutex_read(mutex, &n, sizeof n), SHMRING_OK);
    ASSERT(n == 0);
    EXPECT(shmring_shared_mutex_unlock(mutex), SHMRING_OK);
    EXPECT(shmring_shared_mutex_close(mutex), SHMRING_OK);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s NAME_PREFIX [ROUNDS]\n", argv[0]);
        return 2;
    }
    uint64_t rounds = argc > 2 ? strtoull(argv[2], NULL, 10) : 2000;
    EXPECT(shmring_sync_options_init(&mutex_options), SHMRING_OK);
    ASSERT(rounds >= 1);
    bad_input(argv[1]);
    slots(argv[1]);
    outcomes(argv[1]);
    counter(argv[1], 0, rounds);
    counter(argv[1], 1, rounds);
    owner_died(0);
    owner_died(1);
    printf("ok: %d checks\n", checks);
    return 0;
}
