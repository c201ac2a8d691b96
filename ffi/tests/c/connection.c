/*
 * Connections from C (shmring_conn_listener_*, shmring_connect, shmring_connection_*).
 * First, in one process: bad input, nobody to accept, a name nobody listens on
 * (SHMRING_E_NOT_FOUND), a name taken twice. Then twice across fork, with the
 * default transport policy and with SHMRING_TRANSPORT_POLICY_SOCKET_ONLY: the
 * child binds a listener in a private temporary directory, accepts one client and
 * echoes every message back (checking each one) until the client leaves; the
 * parent checks the transport (shared memory, then the Unix socket), sends COUNT
 * checked messages of 12 to 1024 bytes, up to WINDOW ahead of the echoes, and
 * checks every echo; a receive into a short buffer reports the length needed and
 * consumes nothing. Before the socket-only session the parent asks that listener
 * for shared memory only: SHMRING_E_HANDSHAKE.
 *
 *   connection NAME_PREFIX [COUNT] [any]
 *
 * With "any" the default-policy session accepts either transport (valgrind
 * refuses membarrier, so the listener falls back to the socket there).
 *
 * Exits 0 and prints "ok: ..." if every call returned what it should; else prints
 * the first mismatch and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pattern.h"
#include "shmring.h"

#define TIMEOUT_MS 20000u
#define MAX_LEN 1024u
#define WINDOW 16u
#define CAPACITY 65536u

#include "expect.h"
/* The transport the default-policy session got, for the closing line. */
static const char *default_transport = "?";

static void name_of(char *out, size_t size, const char *prefix, const char *what) {
    int n = snprintf(out, size, "%s-%s", prefix, what);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "name too long\n");
        exit(1);
    }
}

static void listener_options(shmring_conn_listener_options *o, const char *dir, uint32_t policy) {
    EXPECT(shmring_conn_listener_options_init(o), SHMRING_OK);
    o->directory = dir;
    o->transport = policy;
    o->capacity = CAPACITY;
}

static void connect_options(shmring_connect_options *o, const char *dir, uint32_t policy) {
    EXPECT(shmring_connect_options_init(o), SHMRING_OK);
    o->directory = dir;
    o->transport = policy;
}

/* In one process: what fails, and how. */
static void bad_input(const char *prefix, const char *dir) {
    char name[200];
    name_of(name, sizeof name, prefix, "bad");
    shmring_conn_listener *l = (shmring_conn_listener *)1;
    shmring_connection *c = (shmring_connection *)1;
    shmring_conn_listener_options lo;
    shmring_connect_options co;
    uint8_t buf[16];
    size_t n = 99;

    EXPECT(shmring_conn_listener_options_init(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_connect_options_init(NULL), SHMRING_E_INVALID_ARGUMENT);

    /* Bad arguments: NULL, unknown values, reserved fields; *out cleared. */
    listener_options(&lo, dir, SHMRING_TRANSPORT_POLICY_ANY);
    EXPECT(shmring_conn_listener_bind(NULL, &lo, &l), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(l == NULL);
    EXPECT(shmring_conn_listener_bind(name, &lo, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_conn_listener_bind("no/slash", &lo, &l), SHMRING_E_INVALID_NAME);
    lo.transport = 7;
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_E_INVALID_ARGUMENT);
    listener_options(&lo, dir, SHMRING_TRANSPORT_POLICY_ANY);
    lo.flags = 0x80;
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_E_INVALID_ARGUMENT);
    listener_options(&lo, dir, SHMRING_TRANSPORT_POLICY_ANY);
    lo.reserved[2] = 1;
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_E_INVALID_ARGUMENT);
    listener_options(&lo, dir, SHMRING_TRANSPORT_POLICY_ANY);
    lo.capacity = 1000;
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_E_INVALID_CAPACITY);
    listener_options(&lo, dir, SHMRING_TRANSPORT_POLICY_ANY);
    lo.wait_strategy = 9;
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(l == NULL);

    /* Nobody listens: no socket in the directory. */
    connect_options(&co, dir, SHMRING_TRANSPORT_POLICY_ANY);
    EXPECT(shmring_connect(name, &co, 1000, &c), SHMRING_E_NOT_FOUND);
    ASSERT(c == NULL);
    EXPECT(shmring_connect(NULL, &co, 1000, &c), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_connect(name, &co, 1000, NULL), SHMRING_E_INVALID_ARGUMENT);
    co.flags = 0x80;
    EXPECT(shmring_connect(name, &co, 1000, &c), SHMRING_E_INVALID_ARGUMENT);
    connect_options(&co, dir, 3);
    EXPECT(shmring_connect(name, &co, 1000, &c), SHMRING_E_INVALID_ARGUMENT);

    /* A listener: nobody waiting, a name taken, no TCP port. */
    listener_options(&lo, dir, SHMRING_TRANSPORT_POLICY_ANY);
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_OK);
    ASSERT(l != NULL);
    shmring_conn_listener *again = (shmring_conn_listener *)1;
    EXPECT(shmring_conn_listener_bind(name, &lo, &again), SHMRING_E_ALREADY_EXISTS);
    ASSERT(again == NULL);
    EXPECT(shmring_conn_listener_try_accept(l, &c), SHMRING_E_EMPTY);
    ASSERT(c == NULL);
    EXPECT(shmring_conn_listener_accept_timeout(l, 30, &c), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_conn_listener_accept_timeout(l, 30, NULL), SHMRING_E_INVALID_ARGUMENT);
    uint16_t port = 0;
    EXPECT(shmring_conn_listener_port(l, &port), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_conn_listener_close(l), SHMRING_OK);
    /* Closed: the socket file is gone. */
    connect_options(&co, dir, SHMRING_TRANSPORT_POLICY_ANY);
    EXPECT(shmring_connect(name, &co, 1000, &c), SHMRING_E_NOT_FOUND);

    /* NULL handles. */
    shmring_transport t;
    EXPECT(shmring_conn_listener_try_accept(NULL, &c), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_connection_transport(NULL, &t), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_max_message_len(shmring_connection_as_msg_sender(NULL), &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_try_send(shmring_connection_as_msg_sender(NULL), buf, 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_try_recv(shmring_connection_as_msg_receiver(NULL), buf, sizeof buf, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_connection_close(NULL), SHMRING_OK);
    EXPECT(shmring_conn_listener_close(NULL), SHMRING_OK);

    ASSERT(strcmp(shmring_strerror(SHMRING_E_HANDSHAKE), "connection handshake failed") == 0);
}

/* The child: accepts one client, echoes every message (checking each) until the
 * client leaves. Exit status 0 if all went well. */
static void echo_child(const char *name, const char *dir, uint32_t policy, uint64_t count,
                       int ready_fd) {
    shmring_conn_listener_options lo;
    listener_options(&lo, dir, policy);
    shmring_conn_listener *l = NULL;
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_OK);
    char byte = 'r';
    ASSERT(write(ready_fd, &byte, 1) == 1);
    close(ready_fd);
    shmring_connection *c = NULL;
    EXPECT(shmring_conn_listener_accept_timeout(l, TIMEOUT_MS, &c), SHMRING_OK);
    EXPECT(shmring_conn_listener_close(l), SHMRING_OK);

    static uint8_t buf[MAX_LEN];
    uint64_t i = 0;
    int probed = 0;
    for (;;) {
        size_t n = 0;
        int rc = shmring_msg_receiver_recv_timeout(shmring_connection_as_msg_receiver(c), buf, sizeof buf, TIMEOUT_MS, &n);
        if (rc == SHMRING_E_DISCONNECTED) break;
        EXPECT(rc, SHMRING_OK);
        if (!probed) {
            /* The parent's short-buffer probe comes first: echoed unchecked. */
            probed = 1;
            ASSERT(n == 100 && buf[0] == 0xEE);
        } else {
            uint32_t sum;
            int line = pattern_check(buf, n, i, MAX_LEN, &sum);
            if (line != 0) {
                fprintf(stderr, "child: message %llu wrong (pattern.h:%d)\n",
                        (unsigned long long)i, line);
                exit(1);
            }
            i++;
        }
        EXPECT(shmring_msg_sender_send_timeout(shmring_connection_as_msg_sender(c), buf, n, TIMEOUT_MS), SHMRING_OK);
    }
    EXPECT(shmring_connection_close(c), SHMRING_OK);
    if (i != count) {
        fprintf(stderr, "child: %llu messages, expected %llu\n", (unsigned long long)i,
                (unsigned long long)count);
        exit(1);
    }
    exit(0);
}

/* Receives echo `i` and checks it; adds its checksum to `*total`. */
static void receive_echo(shmring_connection *c, uint64_t i, uint64_t *total) {
    static uint8_t buf[MAX_LEN];
    size_t n = 0;
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_connection_as_msg_receiver(c), buf, sizeof buf, TIMEOUT_MS, &n), SHMRING_OK);
    uint32_t sum;
    int line = pattern_check(buf, n, i, MAX_LEN, &sum);
    if (line != 0) {
        fprintf(stderr, "parent: echo %llu wrong (pattern.h:%d)\n", (unsigned long long)i, line);
        exit(1);
    }
    *total += sum;
}

/* One session across fork; returns the checksum total of the echoes. */
static uint64_t session(const char *prefix, const char *dir, const char *what, uint32_t policy,
                        int expect_transport, uint64_t count) {
    char name[200];
    name_of(name, sizeof name, prefix, what);
    int ready[2];
    ASSERT(pipe(ready) == 0);
    fflush(stdout);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        echo_child(name, dir, policy, count, ready[1]);
    }
    close(ready[1]);
    char byte = 0;
    ssize_t got;
    do {
        got = read(ready[0], &byte, 1);
    } while (got < 0 && errno == EINTR);
    ASSERT(got == 1 && byte == 'r');
    close(ready[0]);

    shmring_connect_options co;
    shmring_connection *c = NULL;
    if (policy == SHMRING_TRANSPORT_POLICY_SOCKET_ONLY) {
        /* Shared memory only, from a socket-only listener: refused in the
         * handshake (the listener skips us and goes on accepting). */
        connect_options(&co, dir, SHMRING_TRANSPORT_POLICY_SHARED_MEMORY_ONLY);
        EXPECT(shmring_connect(name, &co, TIMEOUT_MS, &c), SHMRING_E_HANDSHAKE);
        ASSERT(c == NULL);
    }
    connect_options(&co, dir, SHMRING_TRANSPORT_POLICY_ANY);
    EXPECT(shmring_connect(name, &co, TIMEOUT_MS, &c), SHMRING_OK);
    shmring_transport t = 0;
    EXPECT(shmring_connection_transport(c, &t), SHMRING_OK);
    if (expect_transport >= 0) {
        ASSERT((int)t == expect_transport);
    } else {
        ASSERT(t == SHMRING_TRANSPORT_SHARED_MEMORY || t == SHMRING_TRANSPORT_UNIX_SOCKET);
    }
    if (policy == SHMRING_TRANSPORT_POLICY_ANY)
        default_transport = t == SHMRING_TRANSPORT_SHARED_MEMORY ? "shared memory" : "unix socket";
    size_t max = 0;
    EXPECT(shmring_msg_sender_max_message_len(shmring_connection_as_msg_sender(c), &max), SHMRING_OK);
    ASSERT(max == CAPACITY / 2 - 8);

    /* Too long for the connection: refused, nothing sent. */
    static uint8_t big[CAPACITY / 2];
    EXPECT(shmring_msg_sender_try_send(shmring_connection_as_msg_sender(c), big, max + 1), SHMRING_E_MESSAGE_TOO_LARGE);
    EXPECT(shmring_msg_sender_try_send(shmring_connection_as_msg_sender(c), NULL, 1), SHMRING_E_INVALID_ARGUMENT);

    /* Nothing there yet. */
    uint8_t small[10];
    size_t n = 99;
    EXPECT(shmring_msg_receiver_try_recv(shmring_connection_as_msg_receiver(c), small, sizeof small, &n), SHMRING_E_EMPTY);
    ASSERT(n == 0);
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_connection_as_msg_receiver(c), small, sizeof small, 20, &n), SHMRING_E_TIMED_OUT);

    /* A 100-byte probe into a 10-byte buffer: the length needed, nothing consumed. */
    uint8_t probe[100];
    memset(probe, 0xEE, sizeof probe);
    EXPECT(shmring_msg_sender_send(shmring_connection_as_msg_sender(c), probe, sizeof probe), SHMRING_OK);
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_connection_as_msg_receiver(c), small, sizeof small, TIMEOUT_MS, &n),
           SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(n == 100);
    EXPECT(shmring_msg_receiver_recv(shmring_connection_as_msg_receiver(c), probe, sizeof probe, &n), SHMRING_OK);
    ASSERT(n == 100 && probe[0] == 0xEE && probe[99] == 0xEE);

    /* COUNT checked messages, up to WINDOW ahead of their echoes. */
    static uint8_t msg[MAX_LEN];
    uint64_t sent_sum = 0, echo_sum = 0, received = 0;
    for (uint64_t i = 0; i < count; i++) {
        size_t len = pattern_len(i, MAX_LEN);
        sent_sum += pattern_fill(msg, i, len);
        EXPECT(shmring_msg_sender_send_timeout(shmring_connection_as_msg_sender(c), msg, len, TIMEOUT_MS), SHMRING_OK);
        if (i + 1 - received >= WINDOW) receive_echo(c, received++, &echo_sum);
    }
    while (received < count) receive_echo(c, received++, &echo_sum);
    ASSERT(echo_sum == sent_sum);
    EXPECT(shmring_msg_receiver_try_recv(shmring_connection_as_msg_receiver(c), small, sizeof small, &n), SHMRING_E_EMPTY);

    /* Leaving: the child sees SHMRING_E_DISCONNECTED and exits 0. */
    EXPECT(shmring_connection_close(c), SHMRING_OK);
    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return echo_sum;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: connection NAME_PREFIX [COUNT] [any]\n");
        return 2;
    }
    const char *prefix = argv[1];
    uint64_t count = argc >= 3 ? strtoull(argv[2], NULL, 10) : 10000;
    int any = argc >= 4 && strcmp(argv[3], "any") == 0;
    char dir[] = "/tmp/shmring-c-connection-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);

    bad_input(prefix, dir);
    uint64_t shm_sum = session(prefix, dir, "shm", SHMRING_TRANSPORT_POLICY_ANY,
                               any ? -1 : (int)SHMRING_TRANSPORT_SHARED_MEMORY, count);
    uint64_t socket_sum = session(prefix, dir, "sock", SHMRING_TRANSPORT_POLICY_SOCKET_ONLY,
                                  (int)SHMRING_TRANSPORT_UNIX_SOCKET, count);
    ASSERT(shm_sum == socket_sum);
    ASSERT(rmdir(dir) == 0);
    printf("ok: %d checks, %llu echoed messages per session (default policy: %s), sum=%llu\n",
           checks, (unsigned long long)count, default_transport, (unsigned long long)shm_sum);
    return 0;
}
