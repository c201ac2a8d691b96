/*
 * Shared values from C: bad input first (NULL pointers, sizes out of range,
 * unknown flags, a missing value, another kind of object), then the read's
 * outcomes in one process (no value yet, a buffer too small, a larger buffer,
 * the writer role taken, a wrong write length, open_or_create of another size,
 * and, with the seqlock's word made odd through a mapping of the memfd, a busy
 * value while the writer lives and a dead writer's torn value once it is gone,
 * until a new writer publishes); then across fork, for a named value and a
 * memfd value opened from its descriptor: a writer process publishes VERSIONS
 * versions of a value whose bytes all equal the version's low byte, a reader
 * process polls with shmring_shared_value_read and another waits with
 * shmring_shared_value_wait_for_version; each checks every byte of every copy
 * (never torn) and that versions never go backwards.
 *
 *   shared_value NAME_PREFIX [VERSIONS [symmetric]]
 *
 * `symmetric` creates the values with SHMRING_OPTION_SYMMETRIC_FENCES (for
 * valgrind, which refuses membarrier). Exits 0 and prints "ok: N checks" if
 * every call returned what it should; else prints the first mismatch and exits 1.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#include "expect.h"

/* The value's size: not a multiple of 8, so the last word is partly the value's. */
#define VSIZE 203u
#define TIMEOUT_MS 30000u
/* The seqlock's word in a shared value's segment (docs/design/shared-state.md:
 * `seq`, offset 128: 0 never written, 2v version v, odd a write in progress). */
#define SEQ_OFFSET 128

static shmring_sync_options value_options;

static void name_of(char *out, size_t size, const char *prefix, const char *what) {
    int n = snprintf(out, size, "%s-%s", prefix, what);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "name too long\n");
        exit(1);
    }
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000L, (us % 1000000L) * 1000L};
    nanosleep(&ts, NULL);
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

/* Whether all `len` bytes at `p` equal `byte`. */
static int all_equal(const uint8_t *p, size_t len, uint8_t byte) {
    for (size_t i = 0; i < len; i++) {
        if (p[i] != byte) {
            return 0;
        }
    }
    return 1;
}

static void bad_input(const char *prefix) {
    shmring_shared_value *value = (shmring_shared_value *)&checks; /* must become NULL */
    shmring_shared_value_writer *writer = (shmring_shared_value_writer *)&checks;
    shmring_sync_options options;
    char name[256];
    uint8_t buf[VSIZE];
    uint64_t version = 7;
    size_t size = 7;
    int fd = -1;

    EXPECT(shmring_shared_value_create(NULL, VSIZE, NULL, &value), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(value == NULL);
    EXPECT(shmring_shared_value_create("a/b", VSIZE, NULL, &value), SHMRING_E_INVALID_NAME);
    name_of(name, sizeof name, prefix, "bad");
    EXPECT(shmring_shared_value_create(name, VSIZE, NULL, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_create(name, 0, NULL, &value), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_shared_value_create(name, SHMRING_SHARED_VALUE_MAX_SIZE + 1, NULL, &value),
           SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_shared_value_create_memfd(0, NULL, &value), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_shared_value_open_or_create(name, 0, NULL, &value),
           SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.flags = 1u << 20;
    EXPECT(shmring_shared_value_create(name, VSIZE, &options, &value),
           SHMRING_E_INVALID_ARGUMENT);
    ASSERT(message_has("for a shared value"));
    options.flags = SHMRING_OPTION_KEEP | SHMRING_OPTION_UNLINK;
    EXPECT(shmring_shared_value_create_memfd(VSIZE, &options, &value),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
    options.reserved[0] = 1;
    EXPECT(shmring_shared_value_open(name, &options, &value), SHMRING_E_INVALID_ARGUMENT);
    /* The flags only values take are refused for an event. */
    {
        shmring_event *ev = NULL;
        EXPECT(shmring_sync_options_init(&options), SHMRING_OK);
        options.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
        EXPECT(shmring_event_create(name, &options, &ev), SHMRING_E_INVALID_ARGUMENT);
    }
    /* A missing value. */
    EXPECT(shmring_shared_value_open(name, NULL, &value), SHMRING_E_NOT_FOUND);
    ASSERT(value == NULL);
    ASSERT(message_has(name));
    EXPECT(shmring_shared_value_open_fd(-1, NULL, &value), SHMRING_E_INVALID_ARGUMENT);
    /* Another kind of object. */
    {
        shmring_event *ev = NULL;
        EXPECT(shmring_event_create(name, NULL, &ev), SHMRING_OK);
        /* Its size is checked first: an event is smaller than any value. */
        EXPECT(shmring_shared_value_open(name, NULL, &value), SHMRING_E_BAD_SIZE);
        EXPECT(shmring_shared_value_open_or_create(name, VSIZE, NULL, &value),
               SHMRING_E_INCOMPATIBLE_LAYOUT);
        EXPECT(shmring_event_close(ev), SHMRING_OK);
    }

    /* NULL handles, and a handle of another kind. */
    EXPECT(shmring_shared_value_read(NULL, buf, sizeof buf, &version), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(version == 0);
    EXPECT(shmring_shared_value_wait_for_version(NULL, 0, buf, sizeof buf, &version, 1),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_size(NULL, &size), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_fd(NULL, &fd), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_writer_new(NULL, &writer), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(writer == NULL);
    EXPECT(shmring_shared_value_writer_write(NULL, buf, sizeof buf, &version),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_writer_next_version(NULL, &version), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_close(NULL), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_close(NULL), SHMRING_OK);
    EXPECT(shmring_shared_value_create_memfd(VSIZE, &value_options, &value), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_next_version((shmring_shared_value_writer *)value,
                                                    &version),
           SHMRING_E_INVALID_ARGUMENT);
    ASSERT(message_has("a shared value handle was passed where a shared value writer"));
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_read(value, NULL, sizeof buf, &version),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_read(value, buf, SIZE_MAX, &version), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_size(value, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_writer_new(value, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
}

/* The read's outcomes in one process, on a named value. */
static void outcomes(const char *prefix) {
    char name[256];
    shmring_shared_value *value = NULL, *again = NULL;
    shmring_shared_value_writer *writer = NULL, *second = (shmring_shared_value_writer *)&checks;
    uint8_t data[VSIZE], buf[VSIZE + 16];
    uint64_t version = 99;
    size_t size = 0;
    name_of(name, sizeof name, prefix, "outcomes");
    EXPECT(shmring_shared_value_create(name, VSIZE, &value_options, &value), SHMRING_OK);
    EXPECT(shmring_shared_value_create(name, VSIZE, &value_options, &again),
           SHMRING_E_ALREADY_EXISTS);
    EXPECT(shmring_shared_value_size(value, &size), SHMRING_OK);
    ASSERT(size == VSIZE);

    /* No value yet: a distinct code, its text, and a message naming the value. */
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_E_NO_VALUE);
    ASSERT(version == 0);
    ASSERT(strcmp(shmring_strerror(SHMRING_E_NO_VALUE), "no value has been published yet") == 0);
    ASSERT(message_has(name));
    EXPECT(shmring_shared_value_wait_for_version(value, 0, buf, sizeof buf, &version, 20),
           SHMRING_E_TIMED_OUT);

    /* The writer role: one at a time, in this process too. */
    EXPECT(shmring_shared_value_writer_new(value, &writer), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_new(value, &second), SHMRING_E_ROLE_TAKEN);
    ASSERT(second == NULL);
    EXPECT(shmring_shared_value_writer_next_version(writer, &version), SHMRING_OK);
    ASSERT(version == 1);
    memset(data, 0x5a, sizeof data);
    EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE - 1, &version),
           SHMRING_E_INVALID_ARGUMENT);
    ASSERT(version == 0);
    ASSERT(message_has("202 bytes written"));
    EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE + 1, &version),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_writer_write(writer, NULL, VSIZE, &version),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE, NULL),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE, &version), SHMRING_OK);
    ASSERT(version == 1);

    /* A buffer too small: its code, its text and the sizes in the message. */
    version = 99;
    EXPECT(shmring_shared_value_read(value, buf, VSIZE - 1, &version),
           SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(version == 0);
    ASSERT(strstr(shmring_strerror(SHMRING_E_BUFFER_TOO_SMALL), "buffer too small") != NULL);
    ASSERT(message_has("a buffer of 202 bytes") && message_has("a value of 203 bytes"));
    EXPECT(shmring_shared_value_wait_for_version(value, 0, buf, 8, &version, 0),
           SHMRING_E_BUFFER_TOO_SMALL);
    /* A larger buffer: the value's bytes, the rest left alone. */
    memset(buf, 0xee, sizeof buf);
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_OK);
    ASSERT(version == 1);
    ASSERT(all_equal(buf, VSIZE, 0x5a) && all_equal(buf + VSIZE, 16, 0xee));
    /* A version after 1 is not there: timeout 0 only checks. */
    EXPECT(shmring_shared_value_wait_for_version(value, 1, buf, sizeof buf, &version, 0),
           SHMRING_E_TIMED_OUT);
    EXPECT(shmring_shared_value_wait_for_version(value, 0, buf, sizeof buf, &version, 0),
           SHMRING_OK);
    ASSERT(version == 1);

    /* open_or_create: the same value at the same size, refused at another. */
    EXPECT(shmring_shared_value_open_or_create(name, VSIZE + 1, &value_options, &again),
           SHMRING_E_INCOMPATIBLE_LAYOUT);
    ASSERT(message_has("value_size"));
    EXPECT(shmring_shared_value_open_or_create(name, VSIZE, &value_options, &again), SHMRING_OK);
    EXPECT(shmring_shared_value_read(again, buf, sizeof buf, &version), SHMRING_OK);
    ASSERT(version == 1 && all_equal(buf, VSIZE, 0x5a));
    EXPECT(shmring_shared_value_close(again), SHMRING_OK);

    /* The writer outlives its value handle; closing it frees the role. */
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    memset(data, 0x02, sizeof data);
    EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE, &version), SHMRING_OK);
    ASSERT(version == 2);
    EXPECT(shmring_shared_value_writer_close(writer), SHMRING_OK);
    /* The creator closed: the name is gone. */
    EXPECT(shmring_shared_value_open(name, NULL, &again), SHMRING_E_NOT_FOUND);
}

/* A writer that dies in the middle of a write leaves `seq` odd: made so here
 * through a mapping of a memfd value. While the writer lives, reads retry and
 * give up busy; once it is gone, they report the dead writer; a new writer's
 * first write (the version the dead one was writing) ends it. */
static void torn_value(void) {
    shmring_shared_value *value = NULL;
    shmring_shared_value_writer *writer = NULL;
    uint8_t data[VSIZE], buf[VSIZE];
    uint64_t version = 0;
    int fd = -1;
    EXPECT(shmring_shared_value_create_memfd(VSIZE, &value_options, &value), SHMRING_OK);
    EXPECT(shmring_shared_value_fd(value, &fd), SHMRING_OK);
    ASSERT(fd >= 0);
    void *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT(map != MAP_FAILED);
    uint64_t *seq = (uint64_t *)((uint8_t *)map + SEQ_OFFSET);

    EXPECT(shmring_shared_value_writer_new(value, &writer), SHMRING_OK);
    for (uint64_t v = 1; v <= 3; v++) {
        memset(data, (int)v, sizeof data);
        EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE, &version), SHMRING_OK);
    }
    ASSERT(__atomic_load_n(seq, __ATOMIC_ACQUIRE) == 6);
    /* Version 4 in progress, and the writer alive: busy after bounded retries. */
    __atomic_store_n(seq, 7, __ATOMIC_RELEASE);
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_E_VALUE_BUSY);
    ASSERT(version == 0);
    ASSERT(strstr(shmring_strerror(SHMRING_E_VALUE_BUSY), "overlapped a write") != NULL);
    ASSERT(message_has("reads of memfd overlapped a write"));
    /* The writer gone: its torn value is never read. */
    EXPECT(shmring_shared_value_writer_close(writer), SHMRING_OK);
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_E_WRITER_DIED);
    ASSERT(strstr(shmring_strerror(SHMRING_E_WRITER_DIED), "died") != NULL);
    ASSERT(message_has("seq 7"));
    EXPECT(shmring_shared_value_wait_for_version(value, 3, buf, sizeof buf, &version, 0),
           SHMRING_E_TIMED_OUT);
    /* A new writer takes over: it writes version 4, and readers see it whole. */
    EXPECT(shmring_shared_value_writer_new(value, &writer), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_next_version(writer, &version), SHMRING_OK);
    ASSERT(version == 4);
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_E_VALUE_BUSY);
    memset(data, 4, sizeof data);
    EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE, &version), SHMRING_OK);
    ASSERT(version == 4);
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_OK);
    ASSERT(version == 4 && all_equal(buf, VSIZE, 4));
    EXPECT(shmring_shared_value_writer_close(writer), SHMRING_OK);
    ASSERT(munmap(map, 4096) == 0);
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
}

/* How a child reaches the value of `across_fork`. */
struct source {
    const char *name; /* a named value, or NULL: the memfd `fd` */
    int fd;
};

static shmring_shared_value *open_source(const struct source *src) {
    shmring_shared_value *value = NULL;
    if (src->name != NULL) {
        EXPECT(shmring_shared_value_open(src->name, NULL, &value), SHMRING_OK);
    } else {
        EXPECT(shmring_shared_value_open_fd(src->fd, NULL, &value), SHMRING_OK);
    }
    return value;
}

/* The writer process: waits for the readers to be ready, then publishes
 * versions 1..count, each all bytes `version & 0xff`, pausing after every 64
 * so that readers copy between writes rather than only during them. After
 * version 1 it waits until both readers have read it, so that each sees the
 * value change at least once, however slowly it runs (valgrind). */
static void writer_process(const struct source *src, int gate_fd, uint64_t count) {
    shmring_shared_value *value = open_source(src);
    shmring_shared_value_writer *writer = NULL;
    shmring_semaphore *gate = NULL;
    uint8_t data[VSIZE];
    uint64_t version = 0;
    EXPECT(shmring_semaphore_open_fd(gate_fd, NULL, &gate), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_new(value, &writer), SHMRING_OK);
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    for (int i = 0; i < 2; i++) {
        EXPECT(shmring_semaphore_wait_timeout(gate, TIMEOUT_MS), SHMRING_OK);
    }
    for (uint64_t v = 1; v <= count; v++) {
        EXPECT(shmring_shared_value_writer_next_version(writer, &version), SHMRING_OK);
        ASSERT(version == v);
        memset(data, (int)(v & 0xff), sizeof data);
        EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE, &version), SHMRING_OK);
        ASSERT(version == v);
        if (v == 1) {
            for (int i = 0; i < 2; i++) {
                EXPECT(shmring_semaphore_wait_timeout(gate, TIMEOUT_MS), SHMRING_OK);
            }
        }
        if (v % 64 == 0) {
            sleep_us(20);
        }
    }
    EXPECT(shmring_shared_value_writer_close(writer), SHMRING_OK);
    EXPECT(shmring_semaphore_close(gate), SHMRING_OK);
}

/* A reader process: until it has read version `count`, reads (`waits` 0: polls
 * with shmring_shared_value_read; else waits for each next version), checking
 * every byte and that versions never go backwards. */
static void reader_process(const struct source *src, int gate_fd, uint64_t count, int waits) {
    shmring_shared_value *value = open_source(src);
    shmring_semaphore *gate = NULL;
    uint8_t buf[VSIZE];
    uint64_t last = 0, seen = 0, busy = 0, empty = 0;
    EXPECT(shmring_semaphore_open_fd(gate_fd, NULL, &gate), SHMRING_OK);
    EXPECT(shmring_semaphore_post(gate), SHMRING_OK);
    while (last < count) {
        uint64_t version = 0;
        int rc = waits ? shmring_shared_value_wait_for_version(value, last, buf, sizeof buf,
                                                               &version, TIMEOUT_MS)
                       : shmring_shared_value_read(value, buf, sizeof buf, &version);
        if (rc == SHMRING_E_NO_VALUE && !waits && last == 0) {
            empty++;
            continue;
        }
        if (rc == SHMRING_E_VALUE_BUSY) {
            busy++;
            continue;
        }
        EXPECT(rc, SHMRING_OK);
        ASSERT(version >= last && version <= count);
        ASSERT(!waits || version > last);
        if (!all_equal(buf, VSIZE, (uint8_t)(version & 0xff))) {
            fprintf(stderr, "torn value: version %llu, bytes %u ... %u\n",
                    (unsigned long long)version, buf[0], buf[VSIZE - 1]);
            exit(1);
        }
        if (version > last) {
            seen++;
        }
        if (last == 0) {
            /* The first version read (1: the writer waits here): say so. */
            EXPECT(shmring_semaphore_post(gate), SHMRING_OK);
        }
        last = version;
    }
    /* Each read version 1 before the writer went on: each saw it change. */
    ASSERT(seen >= 2);
    fprintf(stderr, "%s reader (%s): %llu versions seen of %llu, %llu busy, %llu before the first\n",
            waits ? "waiting" : "polling", src->name ? "named" : "memfd",
            (unsigned long long)seen, (unsigned long long)count, (unsigned long long)busy,
            (unsigned long long)empty);
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    EXPECT(shmring_semaphore_close(gate), SHMRING_OK);
}

/* One writer and two reader processes on one value (named, or a memfd opened
 * from its descriptor); the parent then reads the last version and takes the
 * writer role its writer gave back. */
static void across_fork(const char *prefix, int memfd, uint64_t count) {
    char name[256];
    shmring_shared_value *value = NULL;
    shmring_shared_value_writer *writer = NULL;
    shmring_semaphore *gate = NULL;
    struct source src = {NULL, -1};
    uint8_t buf[VSIZE];
    uint64_t version = 0;
    int gate_fd = -1;
    pid_t pids[3];
    if (memfd) {
        EXPECT(shmring_shared_value_create_memfd(VSIZE, &value_options, &value), SHMRING_OK);
        EXPECT(shmring_shared_value_fd(value, &src.fd), SHMRING_OK);
    } else {
        name_of(name, sizeof name, prefix, "fork");
        EXPECT(shmring_shared_value_create(name, VSIZE, &value_options, &value), SHMRING_OK);
        src.name = name;
    }
    EXPECT(shmring_semaphore_create_memfd(NULL, &gate), SHMRING_OK);
    EXPECT(shmring_semaphore_fd(gate, &gate_fd), SHMRING_OK);
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            if (i == 0) {
                writer_process(&src, gate_fd, count);
            } else {
                reader_process(&src, gate_fd, count, i == 2);
            }
            exit(0);
        }
    }
    for (int i = 0; i < 3; i++) {
        wait_child(pids[i]);
    }
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_OK);
    ASSERT(version == count && all_equal(buf, VSIZE, (uint8_t)(count & 0xff)));
    EXPECT(shmring_shared_value_writer_new(value, &writer), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_next_version(writer, &version), SHMRING_OK);
    ASSERT(version == count + 1);
    EXPECT(shmring_shared_value_writer_close(writer), SHMRING_OK);
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    EXPECT(shmring_semaphore_close(gate), SHMRING_OK);
}

/* A file value keeps its last version after every handle has closed. */
static void file_value(const char *prefix) {
    char path[512];
    shmring_shared_value *value = NULL;
    shmring_shared_value_writer *writer = NULL;
    uint8_t data[VSIZE], buf[VSIZE];
    uint64_t version = 0;
    int n = snprintf(path, sizeof path, "/tmp/%s-file-value", prefix);
    ASSERT(n > 0 && (size_t)n < sizeof path);
    EXPECT(shmring_shared_value_create_file(path, VSIZE, &value_options, &value), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_new(value, &writer), SHMRING_OK);
    memset(data, 0x33, sizeof data);
    EXPECT(shmring_shared_value_writer_write(writer, data, VSIZE, &version), SHMRING_OK);
    EXPECT(shmring_shared_value_writer_close(writer), SHMRING_OK);
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    EXPECT(shmring_shared_value_open_file(path, NULL, &value), SHMRING_OK);
    EXPECT(shmring_shared_value_read(value, buf, sizeof buf, &version), SHMRING_OK);
    ASSERT(version == 1 && all_equal(buf, VSIZE, 0x33));
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    EXPECT(shmring_shared_value_open_or_create_file(path, VSIZE, NULL, &value), SHMRING_OK);
    EXPECT(shmring_shared_value_close(value), SHMRING_OK);
    ASSERT(unlink(path) == 0);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s NAME_PREFIX [VERSIONS [symmetric]]\n", argv[0]);
        return 2;
    }
    uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000;
    EXPECT(shmring_sync_options_init(&value_options), SHMRING_OK);
    if (argc > 3 && strcmp(argv[3], "symmetric") == 0) {
        value_options.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
    }
    ASSERT(count >= 2);
    bad_input(argv[1]);
    outcomes(argv[1]);
    torn_value();
    across_fork(argv[1], 0, count);
    across_fork(argv[1], 1, count);
    file_value(argv[1]);
    printf("ok: %d checks\n", checks);
    return 0;
}
