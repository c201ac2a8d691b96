/*
 * Readiness descriptors from C, in one process: for SPSC senders and receivers
 * and MPMC senders and receivers, arming an empty (full) ring returns
 * SHMRING_ARMED and leaves the descriptor unreadable; a message (a freed slot)
 * makes it readable; arming again returns SHMRING_READY; the sender's departure
 * makes an armed receiver's descriptor readable and the receive then says
 * SHMRING_E_DISCONNECTED. NULL handles and out-pointers, a borrowed handle and
 * an oversized arm return their codes. A memfd channel opened from a bare
 * descriptor reports SHMRING_WAKEUPS_POLLED with its reason, and its armed
 * descriptor becomes readable without a message (the 25 ms poll). Connections,
 * over shared memory and over the socket, with a forked client: an armed
 * connection is quiet, readable after the client's reply and after the client
 * closes, and the loop then ends in SHMRING_E_DISCONNECTED.
 *
 *   readiness NAME_PREFIX
 *
 * Exits 0 and prints "ok: N checks" if every call returned what it should; else
 * prints the first mismatch and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmring.h"

/* How long a descriptor may take to become readable when it must. */
#define WAKE_MS 5000
/* How long one that must not become readable is watched. */
#define QUIET_MS 100

#include "expect.h"

static void name_of(char *out, size_t size, const char *prefix, const char *what) {
    int n = snprintf(out, size, "%s-%s", prefix, what);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "name too long\n");
        exit(1);
    }
}

static void null_handles(void) {
    shmring_wakeups w;
    const char *reason = NULL;
    EXPECT(shmring_msg_receiver_readiness_fd(shmring_receiver_as_msg_receiver(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_wakeups(shmring_receiver_as_msg_receiver(NULL), &w, &reason), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_readiness_fd(shmring_sender_as_msg_sender(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_sender_as_msg_sender(NULL), 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_wakeups(shmring_sender_as_msg_sender(NULL), &w, &reason), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_readiness_fd(shmring_mpmc_receiver_as_msg_receiver(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_mpmc_receiver_as_msg_receiver(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_wakeups(shmring_mpmc_receiver_as_msg_receiver(NULL), &w, &reason), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_readiness_fd(shmring_mpmc_sender_as_msg_sender(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_mpmc_sender_as_msg_sender(NULL), 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_wakeups(shmring_mpmc_sender_as_msg_sender(NULL), &w, &reason), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(strcmp(shmring_last_error_message(), "sender is NULL") == 0);
    EXPECT(shmring_msg_receiver_readiness_fd(shmring_connection_as_msg_receiver(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_readiness_fd(shmring_connection_as_msg_sender(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_connection_as_msg_receiver(NULL)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_connection_as_msg_sender(NULL), 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_wakeups(shmring_connection_as_msg_receiver(NULL), &w, &reason), SHMRING_E_INVALID_ARGUMENT);
}

/* Receives everything there is now; returns how many messages. */
static int drain_spsc(shmring_receiver *rx) {
    uint8_t buf[256];
    size_t len = 0;
    int n = 0, rc;
    while ((rc = shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &len)) == SHMRING_OK) n++;
    EXPECT(rc, SHMRING_E_EMPTY);
    return n;
}

static void spsc(const char *prefix) {
    char name[256];
    shmring_channel *ch = NULL;
    shmring_sender *tx = NULL;
    shmring_receiver *rx = NULL;
    shmring_wakeups w = SHMRING_WAKEUPS_POLLED;
    const char *reason = NULL;
    uint8_t buf[256] = {0};
    const uint8_t *data = NULL;
    uint8_t *grant = NULL;
    size_t len = 0, max = 0;

    name_of(name, sizeof name, prefix, "spsc");
    EXPECT(shmring_channel_create(name, 4096, NULL, &ch), SHMRING_OK);
    EXPECT(shmring_sender_new(ch, &tx), SHMRING_OK);
    EXPECT(shmring_receiver_new(ch, &rx), SHMRING_OK);
    EXPECT(shmring_msg_sender_max_message_len(shmring_sender_as_msg_sender(tx), &max), SHMRING_OK);

    int rfd = shmring_msg_receiver_readiness_fd(shmring_receiver_as_msg_receiver(rx));
    int tfd = shmring_msg_sender_readiness_fd(shmring_sender_as_msg_sender(tx));
    ASSERT(rfd >= 0 && tfd >= 0 && rfd != tfd);
    EXPECT(shmring_msg_receiver_readiness_fd(shmring_receiver_as_msg_receiver(rx)), rfd); /* the same for the handle's life */
    EXPECT(shmring_msg_receiver_wakeups(shmring_receiver_as_msg_receiver(rx), &w, &reason), SHMRING_OK);
    ASSERT(w == SHMRING_WAKEUPS_DOORBELL && reason != NULL && reason[0] == '\0');
    EXPECT(shmring_msg_receiver_wakeups(shmring_receiver_as_msg_receiver(rx), &w, NULL), SHMRING_OK);
    EXPECT(shmring_msg_receiver_wakeups(shmring_receiver_as_msg_receiver(rx), NULL, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_wakeups(shmring_sender_as_msg_sender(tx), &w, &reason), SHMRING_OK);
    ASSERT(w == SHMRING_WAKEUPS_DOORBELL && reason[0] == '\0');

    /* Receiver: empty -> armed, quiet; a message -> readable, ready. */
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_ARMED);
    ASSERT(!readable_within(rfd, QUIET_MS));
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), "one", 3), SHMRING_OK);
    ASSERT(readable_within(rfd, WAKE_MS));
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_READY);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_OK);
    ASSERT(len == 3 && memcmp(buf, "one", 3) == 0);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_E_EMPTY);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_ARMED);
    ASSERT(!readable_within(rfd, QUIET_MS)); /* arming drained the ring */

    /* A read outstanding: the descriptor and wake-ups still answer, arming is refused. */
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), "two", 3), SHMRING_OK);
    EXPECT(shmring_receiver_try_read(rx, &data, &len), SHMRING_OK);
    EXPECT(shmring_msg_receiver_readiness_fd(shmring_receiver_as_msg_receiver(rx)), rfd);
    EXPECT(shmring_msg_receiver_wakeups(shmring_receiver_as_msg_receiver(rx), &w, NULL), SHMRING_OK);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_E_BUSY);
    EXPECT(shmring_receiver_release(rx), SHMRING_OK);

    /* Sender: full -> armed, quiet; a receive frees room -> readable, ready. */
    memset(buf, 'x', 100);
    int sent = 0, rc;
    while ((rc = shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, 100)) == SHMRING_OK) sent++;
    EXPECT(rc, SHMRING_E_FULL);
    ASSERT(sent > 1);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_sender_as_msg_sender(tx), max + 1), SHMRING_E_MESSAGE_TOO_LARGE);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_sender_as_msg_sender(tx), 100), SHMRING_ARMED);
    ASSERT(!readable_within(tfd, QUIET_MS));
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_OK);
    ASSERT(readable_within(tfd, WAKE_MS));
    EXPECT(shmring_msg_sender_arm_for_space(shmring_sender_as_msg_sender(tx), 100), SHMRING_READY);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, 100), SHMRING_OK);
    /* A grant outstanding: arming is refused, the descriptor still answers. */
    ASSERT(drain_spsc(rx) == sent);
    EXPECT(shmring_sender_try_grant(tx, 8, &grant), SHMRING_OK);
    EXPECT(shmring_msg_sender_readiness_fd(shmring_sender_as_msg_sender(tx)), tfd);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_sender_as_msg_sender(tx), 8), SHMRING_E_BUSY);
    EXPECT(shmring_sender_abort(tx), SHMRING_OK);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_sender_as_msg_sender(tx), 8), SHMRING_READY);

    /* The sender goes: the armed receiver's descriptor becomes readable, the
     * receive says so, and arming says READY (the next receive reports it). */
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_ARMED);
    ASSERT(!readable_within(rfd, QUIET_MS));
    EXPECT(shmring_sender_close(tx), SHMRING_OK);
    ASSERT(readable_within(rfd, WAKE_MS));
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_E_DISCONNECTED);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_READY);

    EXPECT(shmring_receiver_close(rx), SHMRING_OK);
    EXPECT(shmring_channel_close(ch), SHMRING_OK);
}

/* A memfd opened from a bare descriptor has no doorbell to share: polled, with
 * a reason, and an armed descriptor becomes readable with no message. */
static void spsc_polled(void) {
    shmring_channel *ch = NULL, *opened = NULL;
    shmring_sender *tx = NULL;
    shmring_receiver *rx = NULL;
    shmring_wakeups w = SHMRING_WAKEUPS_DOORBELL;
    const char *reason = NULL;
    int fd = -1;

    EXPECT(shmring_channel_create_memfd(4096, NULL, &ch), SHMRING_OK);
    EXPECT(shmring_sender_new(ch, &tx), SHMRING_OK);
    EXPECT(shmring_channel_fd(ch, &fd), SHMRING_OK);
    EXPECT(shmring_channel_open_fd(fd, NULL, &opened), SHMRING_OK);
    EXPECT(shmring_receiver_new(opened, &rx), SHMRING_OK);
    EXPECT(shmring_msg_receiver_wakeups(shmring_receiver_as_msg_receiver(rx), &w, &reason), SHMRING_OK);
    ASSERT(w == SHMRING_WAKEUPS_POLLED);
    ASSERT(reason != NULL && reason[0] != '\0');
    fprintf(stderr, "polled receiver: %s\n", reason);
    int rfd = shmring_msg_receiver_readiness_fd(shmring_receiver_as_msg_receiver(rx));
    ASSERT(rfd >= 0);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_ARMED);
    ASSERT(readable_within(rfd, WAKE_MS)); /* the poll, no message */
    uint8_t buf[16];
    size_t len = 0;
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_E_EMPTY);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), "m", 1), SHMRING_OK);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_receiver_as_msg_receiver(rx)), SHMRING_READY);

    EXPECT(shmring_receiver_close(rx), SHMRING_OK);
    EXPECT(shmring_sender_close(tx), SHMRING_OK);
    EXPECT(shmring_channel_close(opened), SHMRING_OK);
    EXPECT(shmring_channel_close(ch), SHMRING_OK);
}

static void mpmc(const char *prefix) {
    char name[256];
    shmring_mpmc *ch = NULL;
    shmring_mpmc_sender *tx = NULL;
    shmring_mpmc_receiver *rx = NULL;
    shmring_wakeups w = SHMRING_WAKEUPS_POLLED;
    const char *reason = NULL;
    uint8_t buf[16] = {0};
    size_t len = 0;
    int rc;

    name_of(name, sizeof name, prefix, "mpmc");
    EXPECT(shmring_mpmc_create(name, 4 /* slots */, 16, 4, NULL, &ch), SHMRING_OK);
    EXPECT(shmring_mpmc_sender_new(ch, &tx), SHMRING_OK);
    EXPECT(shmring_mpmc_receiver_new(ch, &rx), SHMRING_OK);

    int rfd = shmring_msg_receiver_readiness_fd(shmring_mpmc_receiver_as_msg_receiver(rx));
    int tfd = shmring_msg_sender_readiness_fd(shmring_mpmc_sender_as_msg_sender(tx));
    ASSERT(rfd >= 0 && tfd >= 0 && rfd != tfd);
    EXPECT(shmring_msg_receiver_readiness_fd(shmring_mpmc_receiver_as_msg_receiver(rx)), rfd);
    EXPECT(shmring_msg_receiver_wakeups(shmring_mpmc_receiver_as_msg_receiver(rx), &w, &reason), SHMRING_OK);
    ASSERT(w == SHMRING_WAKEUPS_DOORBELL && reason != NULL && reason[0] == '\0');
    EXPECT(shmring_msg_sender_wakeups(shmring_mpmc_sender_as_msg_sender(tx), &w, NULL), SHMRING_OK);
    ASSERT(w == SHMRING_WAKEUPS_DOORBELL);
    EXPECT(shmring_msg_sender_wakeups(shmring_mpmc_sender_as_msg_sender(tx), NULL, &reason), SHMRING_E_INVALID_ARGUMENT);

    /* Receiver: empty -> armed, quiet; a message -> readable, ready. */
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_mpmc_receiver_as_msg_receiver(rx)), SHMRING_ARMED);
    ASSERT(!readable_within(rfd, QUIET_MS));
    EXPECT(shmring_msg_sender_try_send(shmring_mpmc_sender_as_msg_sender(tx), "one", 3), SHMRING_OK);
    ASSERT(readable_within(rfd, WAKE_MS));
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_mpmc_receiver_as_msg_receiver(rx)), SHMRING_READY);
    EXPECT(shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_OK);
    ASSERT(len == 3 && memcmp(buf, "one", 3) == 0);
    EXPECT(shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_E_EMPTY);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_mpmc_receiver_as_msg_receiver(rx)), SHMRING_ARMED);
    ASSERT(!readable_within(rfd, QUIET_MS));

    /* Sender: full -> armed, quiet; a receive frees a slot -> readable, ready. */
    int sent = 0;
    while ((rc = shmring_msg_sender_try_send(shmring_mpmc_sender_as_msg_sender(tx), "slot", 4)) == SHMRING_OK) sent++;
    EXPECT(rc, SHMRING_E_FULL);
    ASSERT(sent == 4);
    EXPECT(shmring_msg_sender_arm_for_space(shmring_mpmc_sender_as_msg_sender(tx), 0), SHMRING_ARMED);
    ASSERT(!readable_within(tfd, QUIET_MS));
    EXPECT(shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &len), SHMRING_OK);
    ASSERT(readable_within(tfd, WAKE_MS));
    EXPECT(shmring_msg_sender_arm_for_space(shmring_mpmc_sender_as_msg_sender(tx), 0), SHMRING_READY);
    EXPECT(shmring_msg_sender_try_send(shmring_mpmc_sender_as_msg_sender(tx), "slot", 4), SHMRING_OK);

    /* Every sender goes: the armed receiver's descriptor becomes readable. */
    while ((rc = shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &len)) == SHMRING_OK) sent--;
    EXPECT(rc, SHMRING_E_EMPTY);
    ASSERT(sent == 0);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_mpmc_receiver_as_msg_receiver(rx)), SHMRING_ARMED);
    EXPECT(shmring_mpmc_sender_close(tx), SHMRING_OK);
    ASSERT(readable_within(rfd, WAKE_MS));
    /* The loop: a receive may still say EMPTY (its liveness probe is throttled);
     * arming probes, says READY, and the next receive reports the departure. */
    rc = shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &len);
    if (rc == SHMRING_E_EMPTY) {
        EXPECT(shmring_msg_receiver_arm_for_message(shmring_mpmc_receiver_as_msg_receiver(rx)), SHMRING_READY);
        rc = shmring_msg_receiver_try_recv(shmring_mpmc_receiver_as_msg_receiver(rx), buf, sizeof buf, &len);
    }
    EXPECT(rc, SHMRING_E_DISCONNECTED);

    EXPECT(shmring_mpmc_receiver_close(rx), SHMRING_OK);
    EXPECT(shmring_mpmc_close(ch), SHMRING_OK);
}

/* The forked client: receives "ping", answers "pong", receives "bye", closes. */
static void client(const char *name, const char *dir, uint32_t policy) {
    shmring_connect_options co;
    shmring_connection *c = NULL;
    uint8_t buf[16];
    size_t len = 0;
    EXPECT(shmring_connect_options_init(&co), SHMRING_OK);
    co.directory = dir;
    co.transport = policy;
    EXPECT(shmring_connect(name, &co, WAKE_MS, &c), SHMRING_OK);
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_connection_as_msg_receiver(c), buf, sizeof buf, WAKE_MS, &len), SHMRING_OK);
    ASSERT(len == 4 && memcmp(buf, "ping", 4) == 0);
    EXPECT(shmring_msg_sender_send_timeout(shmring_connection_as_msg_sender(c), "pong", 4, WAKE_MS), SHMRING_OK);
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_connection_as_msg_receiver(c), buf, sizeof buf, WAKE_MS, &len), SHMRING_OK);
    ASSERT(len == 3 && memcmp(buf, "bye", 3) == 0);
    EXPECT(shmring_connection_close(c), SHMRING_OK);
    _exit(0);
}

/* A connection accepted from a forked client, with `policy`. */
static void connection(const char *prefix, const char *dir, uint32_t policy,
                       shmring_transport expected) {
    char name[256];
    shmring_conn_listener_options lo;
    shmring_conn_listener *l = NULL;
    shmring_connection *c = NULL;
    shmring_transport transport;
    shmring_wakeups w = SHMRING_WAKEUPS_POLLED;
    const char *reason = NULL;
    uint8_t buf[16];
    size_t len = 0, max = 0;
    int rc;

    name_of(name, sizeof name, prefix, expected == SHMRING_TRANSPORT_SHARED_MEMORY ? "cs" : "cu");
    EXPECT(shmring_conn_listener_options_init(&lo), SHMRING_OK);
    lo.directory = dir;
    lo.transport = policy;
    EXPECT(shmring_conn_listener_bind(name, &lo, &l), SHMRING_OK);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) client(name, dir, policy);
    EXPECT(shmring_conn_listener_accept_timeout(l, WAKE_MS, &c), SHMRING_OK);
    EXPECT(shmring_connection_transport(c, &transport), SHMRING_OK);
    ASSERT(transport == expected);
    EXPECT(shmring_msg_sender_max_message_len(shmring_connection_as_msg_sender(c), &max), SHMRING_OK);

    int rfd = shmring_msg_receiver_readiness_fd(shmring_connection_as_msg_receiver(c));
    int sfd = shmring_msg_sender_readiness_fd(shmring_connection_as_msg_sender(c));
    ASSERT(rfd >= 0 && sfd >= 0);
    /* Over a socket both halves' descriptor is the socket. */
    ASSERT(expected == SHMRING_TRANSPORT_SHARED_MEMORY ? rfd != sfd : rfd == sfd);
    EXPECT(shmring_msg_receiver_readiness_fd(shmring_connection_as_msg_receiver(c)), rfd);
    EXPECT(shmring_msg_receiver_wakeups(shmring_connection_as_msg_receiver(c), &w, &reason), SHMRING_OK);
    ASSERT(w == SHMRING_WAKEUPS_DOORBELL && reason != NULL && reason[0] == '\0');
    EXPECT(shmring_msg_receiver_wakeups(shmring_connection_as_msg_receiver(c), NULL, NULL), SHMRING_E_INVALID_ARGUMENT);

    EXPECT(shmring_msg_receiver_arm_for_message(shmring_connection_as_msg_receiver(c)), SHMRING_ARMED);
    ASSERT(!readable_within(rfd, QUIET_MS)); /* the client waits for "ping" */
    EXPECT(shmring_msg_sender_arm_for_space(shmring_connection_as_msg_sender(c), 4), SHMRING_READY);
    if (expected == SHMRING_TRANSPORT_SHARED_MEMORY)
        EXPECT(shmring_msg_sender_arm_for_space(shmring_connection_as_msg_sender(c), max + 1), SHMRING_E_MESSAGE_TOO_LARGE);

    /* The reply makes the armed descriptor readable. */
    EXPECT(shmring_msg_sender_send_timeout(shmring_connection_as_msg_sender(c), "ping", 4, WAKE_MS), SHMRING_OK);
    ASSERT(readable_within(rfd, WAKE_MS));
    EXPECT(shmring_msg_receiver_try_recv(shmring_connection_as_msg_receiver(c), buf, sizeof buf, &len), SHMRING_OK);
    ASSERT(len == 4 && memcmp(buf, "pong", 4) == 0);
    EXPECT(shmring_msg_receiver_try_recv(shmring_connection_as_msg_receiver(c), buf, sizeof buf, &len), SHMRING_E_EMPTY);
    EXPECT(shmring_msg_receiver_arm_for_message(shmring_connection_as_msg_receiver(c)), SHMRING_ARMED);

    /* The client closes: readable, and the loop ends in SHMRING_E_DISCONNECTED. */
    EXPECT(shmring_msg_sender_send_timeout(shmring_connection_as_msg_sender(c), "bye", 3, WAKE_MS), SHMRING_OK);
    ASSERT(readable_within(rfd, WAKE_MS));
    int rounds = 0;
    while ((rc = shmring_msg_receiver_try_recv(shmring_connection_as_msg_receiver(c), buf, sizeof buf, &len)) == SHMRING_E_EMPTY) {
        ASSERT(++rounds < 10);
        rc = shmring_msg_receiver_arm_for_message(shmring_connection_as_msg_receiver(c));
        if (rc == SHMRING_ARMED) ASSERT(readable_within(rfd, WAKE_MS));
        else EXPECT(rc, SHMRING_READY);
    }
    EXPECT(rc, SHMRING_E_DISCONNECTED);

    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(shmring_connection_close(c), SHMRING_OK);
    EXPECT(shmring_conn_listener_close(l), SHMRING_OK);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: readiness NAME_PREFIX\n");
        return 2;
    }
    null_handles();
    spsc(argv[1]);
    spsc_polled();
    mpmc(argv[1]);
    char dir[] = "/tmp/shmring-readiness-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    connection(argv[1], dir, SHMRING_TRANSPORT_POLICY_SHARED_MEMORY_ONLY,
               SHMRING_TRANSPORT_SHARED_MEMORY);
    connection(argv[1], dir, SHMRING_TRANSPORT_POLICY_SOCKET_ONLY, SHMRING_TRANSPORT_UNIX_SOCKET);
    ASSERT(rmdir(dir) == 0);
    printf("ok: %d checks\n", checks);
    return 0;
}
