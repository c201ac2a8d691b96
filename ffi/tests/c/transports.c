/*
 * The address-based transports from C: for unix:, mq: and tcp://127.0.0.1:0, a
 * listener forks a child that connects a sender and sends checksummed messages;
 * the parent accepts, receives and checks them all, then sees
 * SHMRING_E_DISCONNECTED. Before that, bad input: NULL and malformed addresses,
 * nobody listening, NULL handles, oversize messages, small buffers.
 *
 *   transports NAME_PREFIX
 *
 * Exits 0 and prints "ok: ..." if every call returned what it should; else prints
 * the first mismatch and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pattern.h"
#include "shmring.h"

#define COUNT 1000u
#define MAX_LEN 1024u
#define TIMEOUT_MS 5000u

#include "expect.h"

static void bad_input(const char *prefix) {
    shmring_listener *l = (shmring_listener *)&checks; /* must be overwritten with NULL */
    shmring_msg_sender *tx = (shmring_msg_sender *)&checks;
    shmring_msg_receiver *rx = (shmring_msg_receiver *)&checks;
    char address[256], buf[64];
    size_t len = 99;

    /* Addresses. */
    EXPECT(shmring_listen(NULL, &l), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(l == NULL);
    EXPECT(shmring_listen("unix:/tmp/x", NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listen("bogus:x", &l), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(strstr(shmring_last_error_message(), "bogus:x") != NULL);
    EXPECT(shmring_listen("", &l), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listen("unix:", &l), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listen("tcp://127.0.0.1:99999", &l), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listen("\xff\xfe", &l), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listen("mq:bad/name", &l), SHMRING_E_INVALID_NAME);
    ASSERT(l == NULL);
    EXPECT(shmring_connect_sender(NULL, 0, &tx), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(tx == NULL);
    EXPECT(shmring_connect_sender("bogus:x", 0, &tx), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_connect_sender("unix:/tmp/x", 0, NULL), SHMRING_E_INVALID_ARGUMENT);

    /* Nobody listening: once, then with a short timeout. */
    snprintf(address, sizeof address, "unix:/tmp/%s-missing.sock", prefix);
    EXPECT(shmring_connect_sender(address, 0, &tx), SHMRING_E_NOT_FOUND);
    ASSERT(tx == NULL);
    EXPECT(shmring_connect_sender(address, 20, &tx), SHMRING_E_TIMED_OUT);
    snprintf(address, sizeof address, "mq:%s-missing", prefix);
    EXPECT(shmring_connect_sender(address, 0, &tx), SHMRING_E_NOT_FOUND);

    /* NULL handles; closing NULL. */
    EXPECT(shmring_listener_address(NULL, buf, sizeof buf, &len), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listener_accept(NULL, 0, &rx), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_send(NULL, "x", 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_try_send(NULL, "x", 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_send_timeout(NULL, "x", 1, 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_max_message_len(NULL, &len), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_recv(NULL, buf, sizeof buf, &len), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_try_recv(NULL, buf, sizeof buf, &len), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_recv_timeout(NULL, buf, sizeof buf, 0, &len),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_max_message_len(NULL, &len), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listener_close(NULL), SHMRING_OK);
    EXPECT(shmring_msg_sender_close(NULL), SHMRING_OK);
    EXPECT(shmring_msg_receiver_close(NULL), SHMRING_OK);

    /* One process, both ends, over a Unix socket. */
    snprintf(address, sizeof address, "unix:/tmp/%s-self.sock", prefix);
    EXPECT(shmring_listen(address, &l), SHMRING_OK);
    EXPECT(shmring_listener_address(l, NULL, 0, &len), SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(len == strlen(address));
    EXPECT(shmring_listener_address(l, buf, len, &len), SHMRING_E_BUFFER_TOO_SMALL);
    EXPECT(shmring_listener_address(l, buf, sizeof buf, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listener_address(l, NULL, 5, &len), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_listener_address(l, buf, sizeof buf, &len), SHMRING_OK);
    ASSERT(strcmp(buf, address) == 0 && len == strlen(address));
    EXPECT(shmring_listener_accept(l, 0, &rx), SHMRING_E_TIMED_OUT);
    ASSERT(rx == NULL);
    EXPECT(shmring_listener_accept(l, 0, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_connect_sender(address, 0, &tx), SHMRING_OK);
    EXPECT(shmring_listener_accept(l, TIMEOUT_MS, &rx), SHMRING_OK);

    size_t max = 0;
    EXPECT(shmring_msg_sender_max_message_len(tx, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_max_message_len(tx, &max), SHMRING_OK);
    ASSERT(max >= MAX_LEN);
    EXPECT(shmring_msg_receiver_max_message_len(rx, &len), SHMRING_OK);
    ASSERT(len >= MAX_LEN);
    uint8_t *big = calloc(max + 1, 1);
    ASSERT(big != NULL);
    EXPECT(shmring_msg_sender_try_send(tx, big, max + 1), SHMRING_E_MESSAGE_TOO_LARGE);
    free(big);
    EXPECT(shmring_msg_sender_send(tx, NULL, 5), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_send(tx, (const void *)(uintptr_t)1, SIZE_MAX),
           SHMRING_E_INVALID_ARGUMENT); /* beyond PTRDIFF_MAX */
    /* An address-based transport has no readiness descriptor. */
    EXPECT(shmring_msg_sender_readiness_fd(tx), SHMRING_E_UNSUPPORTED);
    /* A transport sender is not a receiver, and a view is not closed here. */
    EXPECT(shmring_msg_receiver_close((shmring_msg_receiver *)tx), SHMRING_E_INVALID_ARGUMENT);

    EXPECT(shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &len), SHMRING_E_EMPTY);
    EXPECT(shmring_msg_receiver_recv_timeout(rx, buf, sizeof buf, 0, &len), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_msg_receiver_recv(rx, buf, sizeof buf, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_recv(rx, NULL, 3, &len), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_recv(rx, buf, SIZE_MAX, &len), SHMRING_E_INVALID_ARGUMENT);

    EXPECT(shmring_msg_sender_send(tx, "hello, world", 12), SHMRING_OK);
    EXPECT(shmring_msg_sender_send(tx, NULL, 0), SHMRING_OK); /* an empty message */
    len = 99;
    EXPECT(shmring_msg_receiver_recv_timeout(rx, buf, 5, TIMEOUT_MS, &len),
           SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(len == 12);
    EXPECT(shmring_msg_receiver_recv(rx, buf, sizeof buf, &len), SHMRING_OK);
    ASSERT(len == 12 && memcmp(buf, "hello, world", 12) == 0);
    EXPECT(shmring_msg_receiver_recv_timeout(rx, buf, sizeof buf, TIMEOUT_MS, &len), SHMRING_OK);
    ASSERT(len == 0);
    EXPECT(shmring_msg_sender_close(tx), SHMRING_OK);
    EXPECT(shmring_msg_receiver_recv_timeout(rx, buf, sizeof buf, TIMEOUT_MS, &len),
           SHMRING_E_DISCONNECTED);
    EXPECT(shmring_msg_receiver_try_recv(rx, buf, sizeof buf, &len), SHMRING_E_DISCONNECTED);
    EXPECT(shmring_msg_receiver_close(rx), SHMRING_OK);
    EXPECT(shmring_listener_close(l), SHMRING_OK);
    /* The socket path went with the listener. */
    EXPECT(shmring_connect_sender(address, 0, &tx), SHMRING_E_NOT_FOUND);

    /* A queue has one receiver. */
    snprintf(address, sizeof address, "mq:%s-once", prefix);
    EXPECT(shmring_listen(address, &l), SHMRING_OK);
    shmring_listener *l2 = NULL;
    EXPECT(shmring_listen(address, &l2), SHMRING_E_ALREADY_EXISTS);
    ASSERT(l2 == NULL);
    EXPECT(shmring_listener_accept(l, 0, &rx), SHMRING_OK);
    shmring_msg_receiver *second = NULL;
    EXPECT(shmring_listener_accept(l, 0, &second), SHMRING_E_ROLE_TAKEN);
    ASSERT(second == NULL);
    EXPECT(shmring_msg_receiver_close(rx), SHMRING_OK);
    EXPECT(shmring_listener_close(l), SHMRING_OK);
}

/* The child: connects, sends COUNT messages, exits (never returns). */
static void child(const char *address) {
    shmring_msg_sender *tx = NULL;
    uint8_t buf[MAX_LEN];
    int rc = shmring_connect_sender(address, TIMEOUT_MS, &tx);
    if (rc != SHMRING_OK) {
        fprintf(stderr, "child: connect %s: %s\n", address, shmring_last_error_message());
        _exit(2);
    }
    for (uint64_t i = 0; i < COUNT; i++) {
        size_t len = pattern_len(i, MAX_LEN);
        pattern_fill(buf, i, len);
        rc = (i % 2) ? shmring_msg_sender_send(tx, buf, len)
                     : shmring_msg_sender_send_timeout(tx, buf, len, TIMEOUT_MS);
        if (rc != SHMRING_OK) {
            fprintf(stderr, "child: send %llu to %s: %s\n", (unsigned long long)i, address,
                    shmring_last_error_message());
            _exit(3);
        }
    }
    if (shmring_msg_sender_close(tx) != SHMRING_OK) _exit(4);
    /* _exit: the listener inherited from the parent is not closed here (closing it
     * would remove the parent's socket path or queue). */
    _exit(0);
}

/* Listens at `address`, forks a sending child, receives and checks everything. */
static uint64_t round_trip(const char *address) {
    shmring_listener *l = NULL;
    shmring_msg_receiver *rx = NULL;
    char resolved[256];
    size_t len = 0;
    uint8_t buf[MAX_LEN];

    EXPECT(shmring_listen(address, &l), SHMRING_OK);
    EXPECT(shmring_listener_address(l, resolved, sizeof resolved, &len), SHMRING_OK);
    ASSERT(len == strlen(resolved));
    if (strncmp(address, "tcp:", 4) == 0) {
        ASSERT(strncmp(resolved, "tcp://127.0.0.1:", 16) == 0);
        ASSERT(strcmp(resolved + 16, "0") != 0 && atoi(resolved + 16) > 0);
    } else {
        ASSERT(strcmp(resolved, address) == 0);
    }

    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) child(resolved);

    EXPECT(shmring_listener_accept(l, TIMEOUT_MS, &rx), SHMRING_OK);
    /* The first message does not fit 4 bytes: reported, and kept. */
    len = 0;
    EXPECT(shmring_msg_receiver_recv_timeout(rx, buf, 4, TIMEOUT_MS, &len),
           SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(len == pattern_len(0, MAX_LEN));
    uint64_t sum = 0;
    for (uint64_t i = 0; i < COUNT; i++) {
        uint32_t got = 0;
        int rc = (i % 3 == 0) ? shmring_msg_receiver_recv(rx, buf, sizeof buf, &len)
                              : shmring_msg_receiver_recv_timeout(rx, buf, sizeof buf, TIMEOUT_MS,
                                                                  &len);
        if (rc != SHMRING_OK) {
            fprintf(stderr, "%s: message %llu: %s (%s)\n", address, (unsigned long long)i,
                    shmring_strerror(rc), shmring_last_error_message());
            exit(1);
        }
        int bad = pattern_check(buf, len, i, MAX_LEN, &got);
        if (bad) {
            fprintf(stderr, "%s: message %llu fails pattern.h:%d\n", address,
                    (unsigned long long)i, bad);
            exit(1);
        }
        sum += got;
    }
    EXPECT(shmring_msg_receiver_recv_timeout(rx, buf, sizeof buf, TIMEOUT_MS, &len),
           SHMRING_E_DISCONNECTED);
    ASSERT(len == 0);

    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(shmring_msg_receiver_close(rx), SHMRING_OK);
    EXPECT(shmring_listener_close(l), SHMRING_OK);
    return sum;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: transports NAME_PREFIX\n");
        return 2;
    }
    const char *prefix = argv[1];
    char address[256];

    bad_input(prefix);

    snprintf(address, sizeof address, "unix:/tmp/%s.sock", prefix);
    uint64_t unix_sum = round_trip(address);
    snprintf(address, sizeof address, "mq:%s", prefix);
    uint64_t mq_sum = round_trip(address);
    uint64_t tcp_sum = round_trip("tcp://127.0.0.1:0");
    ASSERT(unix_sum == mq_sum && mq_sum == tcp_sum);

    printf("ok: %d checks, %u messages each over unix, mq, tcp, sum=%llu\n", checks, COUNT,
           (unsigned long long)unix_sum);
    return 0;
}
