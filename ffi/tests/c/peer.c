/*
 * One side of a cross-process test, in C against shmring.h:
 *
 *   peer send|recv copy|zero-copy|batch TARGET COUNT MAX_LEN
 *
 * sends or receives COUNT messages of pattern.h (12 to MAX_LEN bytes), each
 * checked, then prints "ok count=COUNT sum=SUM" (SUM: the sum of the messages'
 * checksums) and exits 0. A receiver also checks that the channel reports
 * SHMRING_E_DISCONNECTED once the sender has gone. Any failure prints what and
 * where to stderr and exits 1.
 *
 * TARGET:
 *   open:NAME    open the named channel (retrying while it does not exist yet)
 *   create:NAME  create it (capacity 64 KiB, full fences, reclaiming a dead one)
 *   env:VAR      open the descriptor whose number is in $VAR (a memfd)
 *   spawn:MODE   create a memfd channel, claim this side, and run this program
 *                as the other side (mode MODE) with the memfd inherited; wait for it
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"
#include "shmring.h"

#define TIMEOUT_MS 30000u
#define CAPACITY 65536u

static const char *side;

static void die(int line, const char *what, int rc) {
    fprintf(stderr, "peer %s: line %d: %s: %d (%s): %s\n", side, line, what, rc,
            shmring_strerror(rc), shmring_last_error_message());
    exit(1);
}

#define CHECK(call)                                     \
    do {                                                \
        int rc_ = (call);                               \
        if (rc_ != SHMRING_OK) die(__LINE__, #call, rc_); \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Opens or creates the channel TARGET names; for spawn:, also starts the child. */
static shmring_channel *channel_for(const char *target, pid_t *child, char **argv) {
    shmring_channel *channel = NULL;
    shmring_channel_options options;
    CHECK(shmring_channel_options_init(&options));
    if (strncmp(target, "open:", 5) == 0) {
        for (int tries = 0;; tries++) {
            int rc = shmring_channel_open(target + 5, &options, &channel);
            if (rc == SHMRING_OK) break;
            if (rc != SHMRING_E_NOT_FOUND || tries > 2000) die(__LINE__, "open", rc);
            sleep_ms(10);
        }
    } else if (strncmp(target, "create:", 7) == 0) {
        options.flags = SHMRING_OPTION_SYMMETRIC_FENCES | SHMRING_OPTION_RECLAIM;
        CHECK(shmring_channel_create(target + 7, CAPACITY, &options, &channel));
    } else if (strncmp(target, "env:", 4) == 0) {
        const char *fd = getenv(target + 4);
        if (!fd) {
            fprintf(stderr, "peer %s: $%s is not set\n", side, target + 4);
            exit(1);
        }
        CHECK(shmring_channel_open_fd(atoi(fd), &options, &channel));
    } else if (strncmp(target, "spawn:", 6) == 0) {
        options.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
        CHECK(shmring_channel_create_memfd(CAPACITY, &options, &channel));
        int fd = -1;
        CHECK(shmring_channel_fd(channel, &fd));
        *child = fork();
        if (*child < 0) {
            perror("fork");
            exit(1);
        }
        if (*child == 0) {
            /* The channel's descriptor is close-on-exec; a dup is not. */
            int inherited = dup(fd);
            char number[16];
            snprintf(number, sizeof number, "%d", inherited);
            setenv("SHMRING_TEST_FD", number, 1);
            char *args[] = {argv[0], strcmp(side, "send") == 0 ? "recv" : "send",
                            (char *)target + 6, "env:SHMRING_TEST_FD", argv[4], argv[5], NULL};
            execv(argv[0], args);
            perror("execv");
            _exit(127);
        }
    } else {
        fprintf(stderr, "peer: unknown target %s\n", target);
        exit(2);
    }
    return channel;
}

static void send_all(shmring_sender *tx, const char *mode, uint64_t count, size_t max_len,
                     uint64_t *sum) {
    enum { BATCH = 16 };
    uint8_t *bufs = malloc(BATCH * max_len);
    shmring_message batch[BATCH];
    if (!bufs) exit(1);
    for (uint64_t i = 0; i < count;) {
        if (strcmp(mode, "copy") == 0) {
            size_t len = pattern_len(i, max_len);
            *sum += pattern_fill(bufs, i, len);
            CHECK(shmring_msg_sender_send_timeout(shmring_sender_as_msg_sender(tx), bufs, len, TIMEOUT_MS));
            i++;
        } else if (strcmp(mode, "zero-copy") == 0) {
            size_t len = pattern_len(i, max_len);
            uint8_t *data = NULL;
            CHECK(shmring_sender_grant_timeout(tx, len, TIMEOUT_MS, &data));
            *sum += pattern_fill(data, i, len);
            CHECK(shmring_sender_commit(tx, len));
            i++;
        } else if (strcmp(mode, "batch") == 0) {
            size_t n = 0;
            for (; n < BATCH && i + n < count; n++) {
                size_t len = pattern_len(i + n, max_len);
                *sum += pattern_fill(bufs + n * max_len, i + n, len);
                batch[n].data = bufs + n * max_len;
                batch[n].len = len;
            }
            size_t done = 0;
            while (done < n) {
                size_t sent = 0;
                int rc = shmring_sender_try_send_batch(tx, batch + done, n - done, &sent);
                done += sent;
                if (rc == SHMRING_OK) break;
                if (rc != SHMRING_E_FULL) die(__LINE__, "shmring_sender_try_send_batch", rc);
                if (sent == 0) {
                    /* Wait for room for the next message: a grant, given back. */
                    uint8_t *data = NULL;
                    CHECK(shmring_sender_grant_timeout(tx, batch[done].len, TIMEOUT_MS, &data));
                    CHECK(shmring_sender_abort(tx));
                }
            }
            i += n;
        } else {
            fprintf(stderr, "peer: unknown mode %s\n", mode);
            exit(2);
        }
    }
    free(bufs);
}

struct batch_state {
    uint64_t next, count;
    size_t max_len;
    uint64_t sum;
    int error;
};

static void on_message(void *context, const uint8_t *data, size_t len) {
    struct batch_state *s = context;
    uint32_t sum = 0;
    if (s->error) return;
    if (s->next >= s->count) {
        s->error = __LINE__;
        return;
    }
    s->error = pattern_check(data, len, s->next, s->max_len, &sum);
    s->sum += sum;
    s->next++;
}

static void receive_all(shmring_receiver *rx, const char *mode, uint64_t count, size_t max_len,
                        uint64_t *sum) {
    uint8_t *buf = malloc(max_len);
    if (!buf) exit(1);
    struct batch_state state = {0, count, max_len, 0, 0};
    for (uint64_t i = 0; i < count;) {
        uint32_t one = 0;
        size_t len = 0;
        int bad = 0;
        if (strcmp(mode, "copy") == 0) {
            if (i % 997 == 5) {
                /* Too small a buffer: refused, nothing consumed, length reported. */
                uint8_t tiny[4];
                int rc = shmring_msg_receiver_recv_timeout(shmring_receiver_as_msg_receiver(rx), tiny, sizeof tiny, TIMEOUT_MS, &len);
                if (rc != SHMRING_E_BUFFER_TOO_SMALL) die(__LINE__, "recv into 4 bytes", rc);
                if (len != pattern_len(i, max_len)) die(__LINE__, "reported length", (int)len);
            }
            CHECK(shmring_msg_receiver_recv_timeout(shmring_receiver_as_msg_receiver(rx), buf, max_len, TIMEOUT_MS, &len));
            bad = pattern_check(buf, len, i, max_len, &one);
            i++;
        } else if (strcmp(mode, "zero-copy") == 0) {
            const uint8_t *data = NULL;
            CHECK(shmring_receiver_read_timeout(rx, TIMEOUT_MS, &data, &len));
            bad = pattern_check(data, len, i, max_len, &one);
            CHECK(shmring_receiver_release(rx));
            i++;
        } else if (strcmp(mode, "batch") == 0) {
            size_t n = 0;
            int rc = shmring_receiver_try_recv_batch(rx, 64, on_message, &state, &n);
            if (rc == SHMRING_E_EMPTY) {
                /* Wait for a message: a read, given back for the batch to take. */
                const uint8_t *data = NULL;
                CHECK(shmring_receiver_read_timeout(rx, TIMEOUT_MS, &data, &len));
                CHECK(shmring_receiver_unread(rx));
                continue;
            }
            if (rc != SHMRING_OK) die(__LINE__, "shmring_receiver_try_recv_batch", rc);
            if (state.error) die(state.error, "batch message check", (int)state.next);
            i = state.next;
            continue;
        } else {
            fprintf(stderr, "peer: unknown mode %s\n", mode);
            exit(2);
        }
        if (bad) {
            fprintf(stderr, "peer recv: message %llu (%zu bytes) fails check at pattern.h:%d\n",
                    (unsigned long long)(i - 1), len, bad);
            exit(1);
        }
        *sum += one;
    }
    *sum += state.sum;
    /* Everything received: the sender's departure is reported next. */
    size_t len = 0;
    int rc = shmring_msg_receiver_recv_timeout(shmring_receiver_as_msg_receiver(rx), buf, max_len, TIMEOUT_MS, &len);
    if (rc != SHMRING_E_DISCONNECTED) die(__LINE__, "final recv (want SHMRING_E_DISCONNECTED)", rc);
    free(buf);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: peer send|recv copy|zero-copy|batch TARGET COUNT MAX_LEN\n");
        return 2;
    }
    side = argv[1];
    const char *mode = argv[2];
    uint64_t count = strtoull(argv[4], NULL, 10);
    size_t max_len = (size_t)strtoull(argv[5], NULL, 10);
    if (max_len < PATTERN_HEADER) return 2;

    pid_t child = 0;
    shmring_channel *channel = channel_for(argv[3], &child, argv);
    uint64_t sum = 0;
    if (strcmp(side, "send") == 0) {
        shmring_sender *tx = NULL;
        CHECK(shmring_sender_new(channel, &tx));
        CHECK(shmring_channel_close(channel)); /* the sender keeps the segment */
        send_all(tx, mode, count, max_len, &sum);
        CHECK(shmring_sender_close(tx));
    } else if (strcmp(side, "recv") == 0) {
        shmring_receiver *rx = NULL;
        CHECK(shmring_receiver_new(channel, &rx));
        CHECK(shmring_channel_close(channel));
        receive_all(rx, mode, count, max_len, &sum);
        CHECK(shmring_receiver_close(rx));
    } else {
        fprintf(stderr, "peer: unknown side %s\n", side);
        return 2;
    }
    if (child > 0) {
        int status = 0;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "peer %s: the spawned peer failed (status %d)\n", side, status);
            return 1;
        }
    }
    printf("ok count=%llu sum=%llu\n", (unsigned long long)count, (unsigned long long)sum);
    return 0;
}
