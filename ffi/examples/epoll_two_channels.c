/*
 * One epoll loop serving two shmring channels and a timer: no thread per
 * channel, no spinning.
 *
 * The parent creates two named channels, forks a sender process that sends
 * MESSAGES numbered messages on each (pausing now and then, so that the parent
 * runs dry and sleeps in epoll_wait), and then serves both receivers' readiness
 * descriptors and a 10 ms timerfd from one epoll_wait loop. Per readable
 * channel: receive until SHMRING_E_EMPTY, then arm; SHMRING_READY means
 * receive again, SHMRING_ARMED means back to epoll_wait. When the sender
 * closes, each descriptor becomes readable once more and the receive says
 * SHMRING_E_DISCONNECTED.
 *
 *   cargo build --release -p shmring-ffi && make -C ffi/examples
 *   ffi/examples/epoll_two_channels [NAME_PREFIX [MESSAGES]]
 *
 * Every message is checked: its channel, its number (in order: none lost,
 * duplicated or reordered), its length and its bytes. Exits 1 on any mismatch,
 * on a failed call, if the sender process fails, or if the whole run takes
 * longer than DEADLINE_S (a wake-up that never came); else prints one line
 * starting with "ok: " and exits 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#define CHANNELS 2
#define CAPACITY 4096 /* small: the sender fills it and waits for room */
#define DEADLINE_S 60
#define TICK_MS 10
#define SEND_TIMEOUT_MS 30000u
#define MAX_LEN 200

static void die(const char *what, int rc) {
    fprintf(stderr, "epoll_two_channels: %s: %s (%d): %s\n", what, shmring_strerror(rc), rc,
            shmring_last_error_message());
    exit(1);
}

static void fail(const char *what) {
    fprintf(stderr, "epoll_two_channels: %s\n", what);
    exit(1);
}

/* Message `seq` on channel `ch`: [ch][seq, 8 bytes][filler], its length a
 * function of seq, its filler a function of both. */
static size_t message_len(uint64_t seq) {
    return 9 + (size_t)(seq * 7919 % (MAX_LEN - 9 + 1));
}

static uint8_t filler(unsigned ch, uint64_t seq, size_t i) {
    return (uint8_t)(seq * 31 + i * 7 + ch);
}

static size_t make_message(uint8_t *buf, unsigned ch, uint64_t seq) {
    size_t len = message_len(seq);
    buf[0] = (uint8_t)ch;
    memcpy(buf + 1, &seq, sizeof seq);
    for (size_t i = 9; i < len; i++) buf[i] = filler(ch, seq, i);
    return len;
}

/* The sender process: opens both channels by name, sends `count` messages on
 * each, interleaved, pausing 2 ms every 1000 messages; exits 0 or 1. */
static void run_sender(char names[CHANNELS][256], uint64_t count) {
    shmring_sender *tx[CHANNELS];
    uint8_t buf[MAX_LEN];
    for (unsigned c = 0; c < CHANNELS; c++) {
        shmring_channel *ch = NULL;
        int rc = shmring_channel_open(names[c], NULL, &ch);
        if (rc != SHMRING_OK) die("sender: open", rc);
        if ((rc = shmring_sender_new(ch, &tx[c])) != SHMRING_OK) die("sender: new", rc);
        (void)shmring_channel_close(ch); /* the sender keeps the segment mapped */
    }
    for (uint64_t seq = 0; seq < count; seq++) {
        for (unsigned c = 0; c < CHANNELS; c++) {
            size_t len = make_message(buf, c, seq);
            shmring_msg_sender *out = shmring_sender_as_msg_sender(tx[c]);
            int rc = shmring_msg_sender_send_timeout(out, buf, len, SEND_TIMEOUT_MS);
            if (rc != SHMRING_OK) die("sender: send", rc);
        }
        if (seq % 1000 == 999) {
            struct timespec pause = {0, 2 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    for (unsigned c = 0; c < CHANNELS; c++) (void)shmring_sender_close(tx[c]);
    _exit(0);
}

struct channel {
    unsigned index;
    shmring_receiver *rx;
    int fd;
    uint64_t expected; /* the next message's number */
    uint64_t wakeups;  /* times epoll reported the descriptor readable */
    uint64_t armed;    /* arms that returned SHMRING_ARMED */
    int done;
};

static void check(struct channel *c, const uint8_t *buf, size_t len) {
    uint64_t seq;
    if (len < 9 || buf[0] != c->index) fail("a message from the wrong channel, or too short");
    memcpy(&seq, buf + 1, sizeof seq);
    if (seq != c->expected) {
        fprintf(stderr, "epoll_two_channels: channel %u: message %llu, expected %llu (%s)\n",
                c->index, (unsigned long long)seq, (unsigned long long)c->expected,
                seq < c->expected ? "duplicated or reordered" : "lost");
        exit(1);
    }
    if (len != message_len(seq)) fail("a message of the wrong length");
    for (size_t i = 9; i < len; i++)
        if (buf[i] != filler(c->index, seq, i)) fail("a message with wrong bytes");
    c->expected++;
}

/* Receives until the channel is empty and armed (returns 0) or its sender has
 * gone and everything it sent was received (returns 1). */
static int serve(struct channel *c) {
    uint8_t buf[MAX_LEN];
    size_t len = 0;
    shmring_msg_receiver *in = shmring_receiver_as_msg_receiver(c->rx);
    for (;;) {
        int rc = shmring_msg_receiver_try_recv(in, buf, sizeof buf, &len);
        if (rc == SHMRING_OK) {
            check(c, buf, len);
            continue;
        }
        if (rc == SHMRING_E_DISCONNECTED) return 1;
        if (rc != SHMRING_E_EMPTY) die("try_recv", rc);
        rc = shmring_msg_receiver_arm_for_message(in);
        if (rc == SHMRING_ARMED) {
            c->armed++;
            return 0; /* back to epoll_wait */
        }
        if (rc != SHMRING_READY) die("arm_for_message", rc);
    }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    char prefix[128];
    if (argc > 1) {
        snprintf(prefix, sizeof prefix, "%s", argv[1]);
    } else {
        snprintf(prefix, sizeof prefix, "epoll-demo-%ld", (long)getpid());
    }
    uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    char names[CHANNELS][256];
    shmring_channel *channels[CHANNELS];
    for (unsigned c = 0; c < CHANNELS; c++) {
        snprintf(names[c], sizeof names[c], "%s-%c", prefix, 'a' + c);
        int rc = shmring_channel_create(names[c], CAPACITY, NULL, &channels[c]);
        if (rc != SHMRING_OK) die("create", rc);
    }

    /* Fork before making any endpoint: the child opens the channels itself. */
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) fail("fork failed");
    if (child == 0) run_sender(names, count);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1 failed");
    struct channel chans[CHANNELS];
    for (unsigned c = 0; c < CHANNELS; c++) {
        struct channel *ch = &chans[c];
        memset(ch, 0, sizeof *ch);
        ch->index = c;
        int rc = shmring_receiver_new(channels[c], &ch->rx);
        if (rc != SHMRING_OK) die("receiver_new", rc);
        shmring_msg_receiver *in = shmring_receiver_as_msg_receiver(ch->rx);
        ch->fd = shmring_msg_receiver_readiness_fd(in);
        if (ch->fd < 0) die("readiness_fd", ch->fd);
        shmring_wakeups how;
        const char *reason = NULL;
        if ((rc = shmring_msg_receiver_wakeups(in, &how, &reason)) != SHMRING_OK) die("wakeups", rc);
        if (how == SHMRING_WAKEUPS_POLLED) fprintf(stderr, "channel %u is polled: %s\n", c, reason);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, ch->fd, &ev) != 0) fail("epoll_ctl ADD failed");
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (timer < 0) fail("timerfd_create failed");
    struct itimerspec every = {{0, TICK_MS * 1000000L}, {0, TICK_MS * 1000000L}};
    if (timerfd_settime(timer, 0, &every, NULL) != 0) fail("timerfd_settime failed");
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = CHANNELS};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, timer, &tev) != 0) fail("epoll_ctl ADD timer failed");

    double start = now_s();
    uint64_t ticks = 0;
    int open = CHANNELS;
    /* Nothing is armed yet: serve each channel once, which arms it. */
    for (unsigned c = 0; c < CHANNELS; c++) {
        if (serve(&chans[c])) {
            chans[c].done = 1;
            open--;
        }
    }
    while (open > 0) {
        struct epoll_event events[CHANNELS + 1];
        /* The timer fires every TICK_MS: a second of silence is a broken loop. */
        int n = epoll_wait(ep, events, CHANNELS + 1, 1000);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("epoll_wait: nothing for a second, not even the timer");
        for (int i = 0; i < n; i++) {
            unsigned which = events[i].data.u32;
            if (which == CHANNELS) {
                uint64_t expirations = 0;
                if (read(timer, &expirations, sizeof expirations) == (ssize_t)sizeof expirations)
                    ticks += expirations;
                if (now_s() - start > DEADLINE_S) fail("deadline passed: a wake-up never came");
                continue;
            }
            struct channel *ch = &chans[which];
            if (ch->done) continue;
            ch->wakeups++;
            if (serve(ch)) {
                if (ch->expected != count) {
                    fprintf(stderr, "channel %u: disconnected after %llu of %llu messages\n",
                            which, (unsigned long long)ch->expected, (unsigned long long)count);
                    exit(1);
                }
                /* Remove the descriptor before closing the receiver that owns it. */
                if (epoll_ctl(ep, EPOLL_CTL_DEL, ch->fd, NULL) != 0) fail("epoll_ctl DEL failed");
                ch->done = 1;
                open--;
            }
        }
    }

    int status = 0;
    if (waitpid(child, &status, 0) != child) fail("waitpid failed");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("the sender process failed");
    for (unsigned c = 0; c < CHANNELS; c++) {
        (void)shmring_receiver_close(chans[c].rx);
        (void)shmring_channel_close(channels[c]);
    }
    close(timer);
    close(ep);
    printf("ok: %llu+%llu messages in order in %.2f s; wake-ups %llu+%llu, arms %llu+%llu, "
           "timer ticks %llu\n",
           (unsigned long long)chans[0].expected, (unsigned long long)chans[1].expected,
           now_s() - start, (unsigned long long)chans[0].wakeups,
           (unsigned long long)chans[1].wakeups, (unsigned long long)chans[0].armed,
           (unsigned long long)chans[1].armed, (unsigned long long)ticks);
    return 0;
}
