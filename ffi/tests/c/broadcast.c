/*
 * Broadcast topics from C: bad input first (NULL pointers, an unknown policy and
 * start, a second publisher, a full subscriber table, lossy-only checks), a
 * subscriber's readiness descriptor (quiet while armed, rung by a publication) and
 * a gated publisher's (quiet while armed, rung by the holding subscriber's
 * leaving), then
 * across fork, over a memfd topic opened from its two descriptors in each child:
 *
 * - gated: 3 subscriber processes each receive every one of N numbered,
 *   checksummed messages of varied sizes, in order, exactly once, while the
 *   publisher outruns the 4 KiB region many times over;
 * - lossy: a subscriber that sleeps while the publisher laps it gets
 *   SHMRING_E_LAGGED with the number missed in out_len, then messages in order
 *   whose gaps equal the reported counts; after the publisher closes it drains
 *   and gets SHMRING_E_DISCONNECTED;
 * - strict, in place: the publisher writes every message into a grant, and 2
 *   subscriber processes read each in place, in order, exactly once (before it,
 *   in one process: the borrow rules of grants and reads, and
 *   SHMRING_E_UNSUPPORTED on a gated topic).
 *
 *   broadcast NAME_PREFIX [MESSAGES]
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
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#define SUBSCRIBERS 3
#define TIMEOUT_MS 30000u
#define MAX_LEN 200

#include "expect.h"

static void wait_child(pid_t pid) {
    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Message `seq` (from 1): its number, its length's filler, a checksum last. */
static size_t make(uint64_t seq, uint8_t *buf) {
    size_t len = 16 + (size_t)(seq * 37 % (MAX_LEN - 16));
    memcpy(buf, &seq, 8);
    uint64_t sum = seq * 0x9e3779b97f4a7c15u;
    for (size_t i = 8; i + 8 < len; i++) {
        buf[i] = (uint8_t)(seq + i);
        sum += buf[i];
    }
    memcpy(buf + len - 8, &sum, 8);
    return len;
}

static uint64_t check(const uint8_t *buf, size_t len) {
    uint64_t seq;
    memcpy(&seq, buf, 8);
    uint8_t expect[MAX_LEN];
    ASSERT(seq > 0 && make(seq, expect) == len);
    ASSERT(memcmp(buf, expect, len) == 0);
    return seq;
}

static void bad_input(const char *prefix) {
    shmring_topic *topic = (shmring_topic *)&checks; /* must be overwritten with NULL */
    shmring_topic_config config;
    shmring_publisher *pub = NULL, *pub2 = NULL;
    shmring_subscriber *subs[2] = {NULL, NULL}, *sub3 = NULL;
    char name[256];
    snprintf(name, sizeof name, "%s-bad", prefix);

    EXPECT(shmring_topic_config_init(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_topic_config_init(&config), SHMRING_OK);
    ASSERT(config.policy == SHMRING_POLICY_LOSSY && config.capacity == 65536);
    config.policy = 7;
    EXPECT(shmring_topic_create_memfd(&config, NULL, &topic), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(topic == NULL);
    config.policy = SHMRING_POLICY_GATED;
    config.capacity = 1000;
    EXPECT(shmring_topic_create_memfd(&config, NULL, &topic), SHMRING_E_INVALID_CAPACITY);
    config.capacity = 4096;
    config.subscriber_slots = 0;
    EXPECT(shmring_topic_create_memfd(&config, NULL, &topic), SHMRING_E_INVALID_CAPACITY);
    config.subscriber_slots = 2;
    EXPECT(shmring_topic_create(name, &config, NULL, &topic), SHMRING_OK);
    EXPECT(shmring_topic_create(name, &config, NULL, NULL), SHMRING_E_INVALID_ARGUMENT);
    shmring_topic *again = NULL;
    EXPECT(shmring_topic_open(name, NULL, &again), SHMRING_OK);
    shmring_topic_config got;
    EXPECT(shmring_topic_config_get(again, &got), SHMRING_OK);
    ASSERT(got.capacity == 4096 && got.subscriber_slots == 2 && got.policy == SHMRING_POLICY_GATED);
    EXPECT(shmring_topic_close(again), SHMRING_OK);

    EXPECT(shmring_publisher_new(topic, &pub), SHMRING_OK);
    EXPECT(shmring_publisher_new(topic, &pub2), SHMRING_E_ROLE_TAKEN);
    EXPECT(shmring_subscriber_new(topic, 9, &sub3), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_subscriber_new(topic, SHMRING_START_NEWEST, &subs[0]), SHMRING_OK);
    EXPECT(shmring_subscriber_new(topic, SHMRING_START_OLDEST, &subs[1]), SHMRING_OK);
    EXPECT(shmring_subscriber_new(topic, SHMRING_START_NEWEST, &sub3), SHMRING_E_TABLE_FULL);
    uint32_t reached = 0;
    EXPECT(shmring_publisher_subscribers(pub, &reached), SHMRING_OK);
    ASSERT(reached == 2);

    /* A publisher is not a receiver, a subscriber not a sender. */
    uint8_t buf[64];
    size_t n = 99;
    EXPECT(shmring_msg_receiver_try_recv((shmring_msg_receiver *)pub, buf, sizeof buf, &n),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_try_send((shmring_msg_sender *)subs[0], buf, 8),
           SHMRING_E_INVALID_ARGUMENT);
    shmring_msg_sender *tx = shmring_publisher_as_msg_sender(pub);
    shmring_msg_receiver *rx = shmring_subscriber_as_msg_receiver(subs[0]);
    EXPECT(shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &n), SHMRING_E_EMPTY);
    size_t max = 0;
    EXPECT(shmring_msg_sender_max_message_len(tx, &max), SHMRING_OK);
    ASSERT(max == 4096 / 2 - 16);
    EXPECT(shmring_msg_sender_try_send(tx, buf, max + 1), SHMRING_E_MESSAGE_TOO_LARGE);
    EXPECT(shmring_msg_sender_try_send(tx, "hello", 5), SHMRING_OK);
    EXPECT(shmring_msg_receiver_try_recv(rx, buf, 2, &n), SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(n == 5);
    EXPECT(shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &n), SHMRING_OK);
    ASSERT(n == 5 && memcmp(buf, "hello", 5) == 0);
    uint64_t next = 0;
    EXPECT(shmring_subscriber_next_seq(subs[0], &next), SHMRING_OK);
    ASSERT(next == 2);
    /* Writing and reading in place need a strict topic. */
    uint8_t *granted = buf;
    const uint8_t *lent = buf;
    size_t lent_len = 99;
    EXPECT(shmring_publisher_try_grant(pub, 8, &granted), SHMRING_E_UNSUPPORTED);
    ASSERT(granted == NULL);
    EXPECT(shmring_msg_sender_try_send(tx, "again", 5), SHMRING_OK);
    EXPECT(shmring_subscriber_try_read(subs[0], &lent, &lent_len), SHMRING_E_UNSUPPORTED);
    ASSERT(lent == NULL && lent_len == 0);
    EXPECT(shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &n), SHMRING_OK);
    ASSERT(n == 5 && memcmp(buf, "again", 5) == 0);
    /* Gated: the second subscriber has not read; the publisher fills up. */
    int full = 0, rc;
    for (int i = 0; i < 1000 && !full; i++) {
        rc = shmring_msg_sender_try_send(tx, buf, 64);
        if (rc == SHMRING_E_FULL) full = 1;
        else EXPECT(rc, SHMRING_OK);
        rc = shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &n);
        ASSERT(rc == SHMRING_OK || rc == SHMRING_E_EMPTY);
    }
    ASSERT(full);
    EXPECT(shmring_msg_sender_send_timeout(tx, buf, 64, 0), SHMRING_E_TIMED_OUT);
    /* Readiness: subscriber 0's own doorbell (a named topic's FIFO), quiet while
     * armed with nothing new, readable once the publisher gets room (subscriber
     * 1 leaves) and publishes; the publisher's (the table's space FIFO), armed
     * while subscriber 1 holds it back, quiet until subscriber 1 leaves. */
    int fd = shmring_msg_receiver_readiness_fd(rx);
    ASSERT(fd >= 0);
    shmring_wakeups wakeups;
    const char *reason = NULL;
    EXPECT(shmring_msg_receiver_wakeups(rx, &wakeups, &reason), SHMRING_OK);
    ASSERT(wakeups == SHMRING_WAKEUPS_DOORBELL);
    while ((rc = shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &n)) == SHMRING_OK) {
    }
    EXPECT(rc, SHMRING_E_EMPTY);
    EXPECT(shmring_msg_receiver_arm_for_message(rx), SHMRING_ARMED);
    ASSERT(!readable_within(fd, 50));
    int pub_fd = shmring_msg_sender_readiness_fd(tx);
    ASSERT(pub_fd >= 0);
    EXPECT(shmring_msg_sender_wakeups(tx, &wakeups, &reason), SHMRING_OK);
    ASSERT(wakeups == SHMRING_WAKEUPS_DOORBELL);
    EXPECT(shmring_msg_sender_arm_for_space(tx, 64), SHMRING_ARMED);
    ASSERT(!readable_within(pub_fd, 50));
    EXPECT(shmring_subscriber_close(subs[1]), SHMRING_OK);
    ASSERT(readable_within(pub_fd, 2000));
    EXPECT(shmring_msg_sender_arm_for_space(tx, 64), SHMRING_READY);
    EXPECT(shmring_msg_sender_send_timeout(tx, buf, 64, TIMEOUT_MS), SHMRING_OK);
    ASSERT(readable_within(fd, 2000));
    EXPECT(shmring_msg_receiver_arm_for_message(rx), SHMRING_READY);
    EXPECT(shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &n), SHMRING_OK);
    ASSERT(n == 64);
    EXPECT(shmring_subscriber_close(subs[0]), SHMRING_OK);
    EXPECT(shmring_publisher_close(pub), SHMRING_OK);
    EXPECT(shmring_publisher_close(NULL), SHMRING_OK);
    EXPECT(shmring_topic_close(topic), SHMRING_OK);
}

/* In one process, on a strict topic: a grant and a read borrow their handles
 * (SHMRING_E_BUSY meanwhile), commit and release end them, abort publishes
 * nothing, unread leaves the message to be read again at the same address. */
static void in_place_rules(void) {
    shmring_topic_config config;
    EXPECT(shmring_topic_config_init(&config), SHMRING_OK);
    config.capacity = 4096;
    config.policy = SHMRING_POLICY_STRICT;
    shmring_topic *topic = NULL;
    shmring_publisher *pub = NULL;
    shmring_subscriber *sub = NULL;
    EXPECT(shmring_topic_create_memfd(&config, NULL, &topic), SHMRING_OK);
    EXPECT(shmring_publisher_new(topic, &pub), SHMRING_OK);
    EXPECT(shmring_subscriber_new(topic, SHMRING_START_OLDEST, &sub), SHMRING_OK);
    shmring_msg_sender *tx = shmring_publisher_as_msg_sender(pub);
    shmring_msg_receiver *rx = shmring_subscriber_as_msg_receiver(sub);
    uint8_t *data = NULL, *other = NULL;
    const uint8_t *read = NULL, *again = NULL;
    size_t len = 0, len2 = 0;

    EXPECT(shmring_publisher_commit(pub, 1), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_publisher_abort(pub), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_publisher_try_grant(pub, 64, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_publisher_try_grant(pub, 64, &data), SHMRING_OK);
    ASSERT(data != NULL && ((uintptr_t)data & 7) == 0);
    EXPECT(shmring_publisher_try_grant(pub, 64, &other), SHMRING_E_BUSY);
    EXPECT(shmring_msg_sender_try_send(tx, "x", 1), SHMRING_E_BUSY);
    EXPECT(shmring_publisher_commit(pub, 65), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_publisher_abort(pub), SHMRING_OK);
    EXPECT(shmring_subscriber_try_read(sub, &read, &len), SHMRING_E_EMPTY);
    EXPECT(shmring_publisher_grant(pub, 64, &data), SHMRING_OK);
    memcpy(data, "in place", 8);
    EXPECT(shmring_publisher_commit(pub, 8), SHMRING_OK);
    uint32_t reached = 0;
    EXPECT(shmring_publisher_subscribers(pub, &reached), SHMRING_OK);
    ASSERT(reached == 1);

    EXPECT(shmring_subscriber_release(sub), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_subscriber_read(sub, &read, &len), SHMRING_OK);
    ASSERT(len == 8 && memcmp(read, "in place", 8) == 0);
    EXPECT(shmring_subscriber_try_read(sub, &again, &len2), SHMRING_E_BUSY);
    uint8_t buf[16];
    size_t n = 0;
    EXPECT(shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &n), SHMRING_E_BUSY);
    EXPECT(shmring_subscriber_unread(sub), SHMRING_OK);
    EXPECT(shmring_subscriber_read_timeout(sub, TIMEOUT_MS, &again, &len2), SHMRING_OK);
    ASSERT(again == read && len2 == 8);
    EXPECT(shmring_subscriber_release(sub), SHMRING_OK);
    EXPECT(shmring_subscriber_try_read(sub, &read, &len), SHMRING_E_EMPTY);
    uint64_t next = 0;
    EXPECT(shmring_subscriber_next_seq(sub, &next), SHMRING_OK);
    ASSERT(next == 2);

    /* A held read holds the strict publisher back; its release lets it go on. */
    EXPECT(shmring_msg_sender_try_send(tx, "held", 4), SHMRING_OK);
    EXPECT(shmring_subscriber_read(sub, &read, &len), SHMRING_OK);
    int full = 0;
    for (int i = 0; i < 1000 && !full; i++) {
        int rc = shmring_publisher_try_grant(pub, 64, &data);
        if (rc == SHMRING_E_FULL) full = 1;
        else {
            EXPECT(rc, SHMRING_OK);
            EXPECT(shmring_publisher_commit(pub, 1), SHMRING_OK);
        }
    }
    ASSERT(full);
    EXPECT(shmring_publisher_grant_timeout(pub, 64, 0, &data), SHMRING_E_TIMED_OUT);
    ASSERT(len == 4 && memcmp(read, "held", 4) == 0);
    EXPECT(shmring_subscriber_release(sub), SHMRING_OK);
    /* The rest read and released: room again. */
    int rc;
    while ((rc = shmring_subscriber_try_read(sub, &read, &len)) == SHMRING_OK) {
        ASSERT(len == 1);
        EXPECT(shmring_subscriber_release(sub), SHMRING_OK);
    }
    EXPECT(rc, SHMRING_E_EMPTY);
    EXPECT(shmring_publisher_grant_timeout(pub, 64, TIMEOUT_MS, &data), SHMRING_OK);
    EXPECT(shmring_publisher_abort(pub), SHMRING_OK);
    EXPECT(shmring_subscriber_close(sub), SHMRING_OK);
    EXPECT(shmring_publisher_close(pub), SHMRING_OK);
    EXPECT(shmring_topic_close(topic), SHMRING_OK);
}

/* A subscriber process: opens the topic from its descriptors, joins, says so on
 * `ready`, receives until Disconnected; gated: every message in order; lossy:
 * gaps equal to what Lagged reported. Exits 0 if all checked out. */
static void subscriber(int data_fd, int table_fd, int ready, uint64_t messages, int lossy,
                       int in_place) {
    shmring_topic *topic = NULL;
    shmring_subscriber *sub = NULL;
    EXPECT(shmring_topic_open_fds(data_fd, table_fd, NULL, &topic), SHMRING_OK);
    EXPECT(shmring_subscriber_new(topic, SHMRING_START_NEWEST, &sub), SHMRING_OK);
    EXPECT(shmring_topic_close(topic), SHMRING_OK);
    ASSERT(write(ready, "r", 1) == 1);
    shmring_msg_receiver *rx = shmring_subscriber_as_msg_receiver(sub);
    uint8_t buf[MAX_LEN];
    uint64_t expected = 1, got = 0, missed = 0;
    for (;;) {
        size_t n = 0;
        if (lossy && expected == 1 + messages / 100) {
            /* Fall behind: the publisher laps us. */
            struct timespec pause = {0, 200 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        if (in_place) {
            const uint8_t *data = NULL;
            int rc = shmring_subscriber_read_timeout(sub, TIMEOUT_MS, &data, &n);
            if (rc == SHMRING_E_DISCONNECTED) break;
            EXPECT(rc, SHMRING_OK);
            ASSERT(check(data, n) == expected);
            EXPECT(shmring_subscriber_release(sub), SHMRING_OK);
            expected++;
            got++;
            continue;
        }
        int rc = shmring_msg_receiver_recv_timeout(rx, buf, sizeof buf, TIMEOUT_MS, &n);
        if (rc == SHMRING_E_DISCONNECTED) break;
        if (rc == SHMRING_E_LAGGED) {
            ASSERT(lossy && n > 0);
            expected += n;
            missed += n;
            continue;
        }
        EXPECT(rc, SHMRING_OK);
        ASSERT(check(buf, n) == expected);
        expected++;
        got++;
    }
    ASSERT(expected == messages + 1);
    ASSERT(got + missed == messages);
    ASSERT(lossy ? missed > 0 : missed == 0);
    EXPECT(shmring_subscriber_close(sub), SHMRING_OK);
    fprintf(stderr, "subscriber: %llu received, %llu missed\n", (unsigned long long)got,
           (unsigned long long)missed);
    exit(0);
}

static void across_fork(uint32_t policy, uint64_t messages, int subscribers) {
    shmring_topic_config config;
    EXPECT(shmring_topic_config_init(&config), SHMRING_OK);
    config.capacity = 4096;
    config.policy = policy;
    config.subscriber_slots = 4;
    config.cut_off_after_ms = 10000;
    shmring_topic *topic = NULL;
    EXPECT(shmring_topic_create_memfd(&config, NULL, &topic), SHMRING_OK);
    int data_fd = -1, table_fd = -1;
    EXPECT(shmring_topic_fds(topic, &data_fd, &table_fd), SHMRING_OK);
    shmring_publisher *pub = NULL;
    EXPECT(shmring_publisher_new(topic, &pub), SHMRING_OK);
    int ready[2];
    ASSERT(pipe(ready) == 0);
    pid_t pids[SUBSCRIBERS];
    for (int i = 0; i < subscribers; i++) {
        fflush(stdout);
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0)
            subscriber(data_fd, table_fd, ready[1], messages, policy == SHMRING_POLICY_LOSSY,
                       policy == SHMRING_POLICY_STRICT);
    }
    for (int i = 0; i < subscribers; i++) {
        char c;
        ASSERT(read(ready[0], &c, 1) == 1);
    }
    shmring_msg_sender *tx = shmring_publisher_as_msg_sender(pub);
    uint8_t buf[MAX_LEN];
    for (uint64_t seq = 1; seq <= messages; seq++) {
        if (policy == SHMRING_POLICY_STRICT) {
            /* In place: into a grant of the largest length, committed shorter. */
            uint8_t *data = NULL;
            EXPECT(shmring_publisher_grant_timeout(pub, MAX_LEN, TIMEOUT_MS, &data), SHMRING_OK);
            EXPECT(shmring_publisher_commit(pub, make(seq, data)), SHMRING_OK);
            continue;
        }
        size_t len = make(seq, buf);
        EXPECT(shmring_msg_sender_send_timeout(tx, buf, len, TIMEOUT_MS), SHMRING_OK);
    }
    uint32_t reached = 0;
    EXPECT(shmring_publisher_subscribers(pub, &reached), SHMRING_OK);
    ASSERT(reached == (uint32_t)subscribers);
    EXPECT(shmring_publisher_close(pub), SHMRING_OK);
    for (int i = 0; i < subscribers; i++) wait_child(pids[i]);
    close(ready[0]);
    close(ready[1]);
    EXPECT(shmring_topic_close(topic), SHMRING_OK);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: broadcast NAME_PREFIX [MESSAGES]\n");
        return 2;
    }
    uint64_t messages = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000;
    bad_input(argv[1]);
    across_fork(SHMRING_POLICY_GATED, messages, SUBSCRIBERS);
    across_fork(SHMRING_POLICY_LOSSY, messages, 1);
    in_place_rules();
    across_fork(SHMRING_POLICY_STRICT, messages, 2);
    printf("ok: %d checks, %llu messages\n", checks, (unsigned long long)messages * 6);
    return 0;
}
