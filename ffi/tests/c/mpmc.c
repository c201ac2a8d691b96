/*
 * MPMC channels from C: bad input first (NULL pointers, bad shapes, a full
 * endpoint table, try_ calls on a full and an empty ring, timeouts), then across
 * fork: 2 producer processes x 2 consumer processes over a named channel, each
 * message carrying its producer and sequence number; every consumer checks the
 * per-producer order of what it got, and the parent checks that the counts and
 * sums add up to exactly what was sent, and that nothing was skipped or lost.
 *
 *   mpmc NAME_PREFIX [MESSAGES_PER_PRODUCER]
 *
 * Exits 0 and prints "ok: N checks, M messages" if every call returned what it
 * should; else prints the first mismatch and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmring.h"

#define PRODUCERS 2
#define CONSUMERS 2
#define TIMEOUT_MS 30000u

#include "expect.h"

struct message {
    uint64_t producer;
    uint64_t seq;
};

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

static void bad_input(const char *prefix) {
    shmring_mpmc *ch = (shmring_mpmc *)&checks; /* must be overwritten with NULL */
    shmring_mpmc_sender *tx = NULL, *tx2 = NULL, *tx3 = NULL;
    shmring_mpmc_receiver *rx = NULL;
    shmring_mpmc_counters counters;
    char name[256];
    uint8_t buf[16] = {0};
    size_t n = 99;

    name_of(name, sizeof name, prefix, "bad");
    EXPECT(shmring_mpmc_create(name, 8, 0, 4, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    ASSERT(ch == NULL);
    EXPECT(shmring_mpmc_create(name, 100, 8, 4, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_mpmc_create(name, 8, 8, 0, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_mpmc_create(NULL, 8, 8, 4, NULL, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_mpmc_create(name, 8, 8, 4, NULL, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_mpmc_create("a/b", 8, 8, 4, NULL, &ch), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_mpmc_open(name, NULL, &ch), SHMRING_E_NOT_FOUND);
    EXPECT(shmring_mpmc_sender_new(NULL, &tx), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_send(shmring_mpmc_sender_as_msg_sender(NULL), buf, 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_recv(shmring_mpmc_receiver_as_msg_receiver(NULL), buf, sizeof buf, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_mpmc_stats(NULL, &counters), SHMRING_E_INVALID_ARGUMENT);

    /* 2 slots of 8 bytes, 3 table entries. */
    EXPECT(shmring_mpmc_create(name, 2, 8, 3, NULL, &ch), SHMRING_OK);
    ASSERT(ch != NULL);
    EXPECT(shmring_mpmc_max_message_len(ch, &n), SHMRING_OK);
    ASSERT(n == 8);
    EXPECT(shmring_mpmc_sender_new(ch, &tx), SHMRING_OK);
    EXPECT(shmring_mpmc_sender_new(ch, &tx2), SHMRING_OK);
    EXPECT(shmring_mpmc_receiver_new(ch, &rx), SHMRING_OK);
    EXPECT(shmring_mpmc_sender_new(ch, &tx3), SHMRING_E_TABLE_FULL);
    ASSERT(tx3 == NULL);
    EXPECT(shmring_mpmc_sender_close(tx2), SHMRING_OK);
    EXPECT(shmring_mpmc_sender_new(ch, &tx3), SHMRING_OK); /* the freed entry */

    EXPECT(shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_E_EMPTY);
    ASSERT(n == 0);
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, 20, &n), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_msg_sender_send(shmring_mpmc_sender_as_msg_sender(tx), "abc", 3), SHMRING_OK);
    EXPECT(shmring_msg_sender_try_send(shmring_mpmc_sender_as_msg_sender(tx3), "defgh", 5), SHMRING_OK);
    EXPECT(shmring_msg_sender_try_send(shmring_mpmc_sender_as_msg_sender(tx), "x", 1), SHMRING_E_FULL);
    EXPECT(shmring_msg_sender_send_timeout(shmring_mpmc_sender_as_msg_sender(tx), "x", 1, 20), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_msg_sender_send(shmring_mpmc_sender_as_msg_sender(tx), "123456789", 9), SHMRING_E_MESSAGE_TOO_LARGE);
    EXPECT(shmring_msg_sender_send(shmring_mpmc_sender_as_msg_sender(tx), NULL, 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, 2, &n), SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(n == 3);
    EXPECT(shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_OK);
    ASSERT(n == 3 && memcmp(buf, "abc", 3) == 0);
    EXPECT(shmring_msg_receiver_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_OK);
    ASSERT(n == 5 && memcmp(buf, "defgh", 5) == 0);
    EXPECT(shmring_mpmc_stats(ch, &counters), SHMRING_OK);
    ASSERT(counters.skipped == 0 && counters.lost == 0);

    /* Every sender gone and the ring empty: disconnected. */
    EXPECT(shmring_mpmc_sender_close(tx), SHMRING_OK);
    EXPECT(shmring_mpmc_sender_close(tx3), SHMRING_OK);
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, TIMEOUT_MS, &n), SHMRING_E_DISCONNECTED);
    EXPECT(shmring_mpmc_receiver_close(rx), SHMRING_OK);
    EXPECT(shmring_mpmc_close(ch), SHMRING_OK);
    EXPECT(shmring_mpmc_close(NULL), SHMRING_OK);
    EXPECT(shmring_mpmc_open(name, NULL, &ch), SHMRING_E_NOT_FOUND); /* unlinked */
}

static void producer(shmring_mpmc *ch, uint64_t id, uint64_t count, int ready) {
    shmring_mpmc_sender *tx = NULL;
    EXPECT(shmring_mpmc_sender_new(ch, &tx), SHMRING_OK);
    ASSERT(write(ready, "r", 1) == 1);
    for (uint64_t seq = 0; seq < count; seq++) {
        struct message m = {id, seq};
        EXPECT(shmring_msg_sender_send_timeout(shmring_mpmc_sender_as_msg_sender(tx), &m, sizeof m, TIMEOUT_MS), SHMRING_OK);
    }
    EXPECT(shmring_mpmc_sender_close(tx), SHMRING_OK);
}

static void consumer(shmring_mpmc *ch, int results) {
    shmring_mpmc_receiver *rx = NULL;
    uint64_t count[PRODUCERS] = {0}, sum[PRODUCERS] = {0}, next[PRODUCERS] = {0};
    struct message m;
    size_t n = 0;
    int rc;
    char line[128];
    EXPECT(shmring_mpmc_receiver_new(ch, &rx), SHMRING_OK);
    while ((rc = shmring_msg_receiver_recv_timeout(shmring_mpmc_receiver_as_msg_receiver(rx), &m, sizeof m, TIMEOUT_MS, &n)) == SHMRING_OK) {
        ASSERT(n == sizeof m);
        ASSERT(m.producer < PRODUCERS);
        ASSERT(m.seq >= next[m.producer]); /* per-producer order */
        next[m.producer] = m.seq + 1;
        count[m.producer]++;
        sum[m.producer] += m.seq;
    }
    EXPECT(rc, SHMRING_E_DISCONNECTED);
    EXPECT(shmring_mpmc_receiver_close(rx), SHMRING_OK);
    int len = snprintf(line, sizeof line, "%llu %llu %llu %llu\n", (unsigned long long)count[0],
                       (unsigned long long)sum[0], (unsigned long long)count[1],
                       (unsigned long long)sum[1]);
    ASSERT(len > 0 && (size_t)len < sizeof line);
    ASSERT(write(results, line, (size_t)len) == len); /* < PIPE_BUF: atomic */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: mpmc NAME_PREFIX [MESSAGES_PER_PRODUCER]\n");
        return 2;
    }
    const char *prefix = argv[1];
    uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000;
    bad_input(prefix);

    char name[256];
    name_of(name, sizeof name, prefix, "fork");
    shmring_channel_options options;
    EXPECT(shmring_channel_options_init(&options), SHMRING_OK);
    /* valgrind does not know membarrier: full fences on both sides. */
    options.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
    shmring_mpmc *ch = NULL;
    EXPECT(shmring_mpmc_create(name, 64, sizeof(struct message), 8, &options, &ch), SHMRING_OK);

    int ready[2], results[2];
    ASSERT(pipe(ready) == 0 && pipe(results) == 0);
    pid_t pids[PRODUCERS + CONSUMERS];
    /* Producers first, each attached before any consumer starts: a consumer
     * never finds every sender gone before they have all come. */
    for (int p = 0; p < PRODUCERS; p++) {
        pids[p] = fork();
        ASSERT(pids[p] >= 0);
        if (pids[p] == 0) {
            producer(ch, (uint64_t)p, count, ready[1]);
            _exit(0);
        }
    }
    char byte;
    for (int p = 0; p < PRODUCERS; p++) ASSERT(read(ready[0], &byte, 1) == 1);
    for (int c = 0; c < CONSUMERS; c++) {
        pids[PRODUCERS + c] = fork();
        ASSERT(pids[PRODUCERS + c] >= 0);
        if (pids[PRODUCERS + c] == 0) {
            consumer(ch, results[1]);
            _exit(0);
        }
    }
    close(results[1]);
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) wait_child(pids[i]);

    uint64_t total_count[PRODUCERS] = {0}, total_sum[PRODUCERS] = {0};
    FILE *in = fdopen(results[0], "r");
    ASSERT(in != NULL);
    unsigned long long c0, s0, c1, s1;
    int lines = 0;
    while (fscanf(in, "%llu %llu %llu %llu", &c0, &s0, &c1, &s1) == 4) {
        total_count[0] += c0;
        total_sum[0] += s0;
        total_count[1] += c1;
        total_sum[1] += s1;
        lines++;
    }
    fclose(in);
    ASSERT(lines == CONSUMERS);
    uint64_t expected_sum = count * (count - 1) / 2;
    for (int p = 0; p < PRODUCERS; p++) {
        ASSERT(total_count[p] == count); /* with the sums: each exactly once */
        ASSERT(total_sum[p] == expected_sum);
    }
    shmring_mpmc_counters counters = {1, 1};
    EXPECT(shmring_mpmc_stats(ch, &counters), SHMRING_OK);
    ASSERT(counters.skipped == 0 && counters.lost == 0);
    close(ready[0]);
    close(ready[1]);
    EXPECT(shmring_mpmc_close(ch), SHMRING_OK);
    printf("ok: %d checks, %llu messages\n", checks, (unsigned long long)(count * PRODUCERS));
    return 0;
}
