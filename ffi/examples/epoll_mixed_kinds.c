/*
 * One epoll loop serving endpoints of three kinds and a timer: an SPSC channel's
 * receiver, an MPMC channel's receiver and a broadcast topic's subscriber, each
 * fed by forked processes, and a 10 ms timerfd. No thread per endpoint, no
 * spinning.
 *
 * The parent creates the three named objects and forks four feeders: one SPSC
 * sender, two MPMC senders and the topic's publisher. Each sends MESSAGES
 * numbered messages (pausing now and then, so that the parent runs dry and
 * sleeps in epoll_wait). Per readable descriptor: receive until SHMRING_E_EMPTY,
 * then arm; SHMRING_READY means receive again, SHMRING_ARMED means back to
 * epoll_wait. Every kind is served by the same code, through its message-family
 * view (shmring_msg_receiver).
 *
 * Departures: the SPSC and MPMC feeders close their senders and exit; the
 * publisher is killed (SIGKILL) after its last message, without closing. Either
 * way the descriptor becomes readable once more, the receiver first gets every
 * message that was sent, and then the receive says SHMRING_E_DISCONNECTED (for
 * the MPMC channel: once both of its senders have gone). The loop then removes
 * the descriptor from epoll and closes the endpoint.
 *
 *   cargo build --release -p shmring-ffi && make -C ffi/examples
 *   ffi/examples/epoll_mixed_kinds [NAME_PREFIX [MESSAGES]]
 *
 * Every message is checked: its feeder, its number (in order per feeder: none
 * lost, duplicated or reordered), its length and its bytes. Exits 1 on any
 * mismatch, on a failed call, if a feeder fails (or the publisher is not the
 * one killed), or if the whole run takes longer than DEADLINE_S (a wake-up that
 * never came); else prints one line starting with "ok: " and exits 0. The
 * feeders print only to stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
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

#define DEADLINE_S 60
#define TICK_MS 10
#define SEND_TIMEOUT_MS 30000u
#define MAX_LEN 200

/* The feeders, each a process; a message carries its feeder's number. */
enum { FEED_SPSC, FEED_MPMC_A, FEED_MPMC_B, FEED_TOPIC, FEEDERS };
/* The parent's sources, in one epoll set; the timer is the last. */
enum { SRC_SPSC, SRC_MPMC, SRC_TOPIC, SOURCES, SRC_TIMER = SOURCES };
static const char *const SOURCE_NAMES[SOURCES] = {"spsc", "mpmc", "topic"};

static void die(const char *what, int rc) {
    fprintf(stderr, "epoll_mixed_kinds: %s: %s (%d): %s\n", what, shmring_strerror(rc), rc,
            shmring_last_error_message());
    exit(1);
}

static void fail(const char *what) {
    fprintf(stderr, "epoll_mixed_kinds: %s\n", what);
    exit(1);
}

/* Message `seq` of feeder `f`: [f][seq, 8 bytes][filler], its length a function
 * of seq, its filler a function of both. */
static size_t message_len(uint64_t seq) {
    return 9 + (size_t)(seq * 7919 % (MAX_LEN - 9 + 1));
}

static uint8_t filler(unsigned f, uint64_t seq, size_t i) {
    return (uint8_t)(seq * 31 + i * 7 + f);
}

static size_t make_message(uint8_t *buf, unsigned f, uint64_t seq) {
    size_t len = message_len(seq);
    buf[0] = (uint8_t)f;
    memcpy(buf + 1, &seq, sizeof seq);
    for (size_t i = 9; i < len; i++) buf[i] = filler(f, seq, i);
    return len;
}

struct names {
    char spsc[256], mpmc[256], topic[256];
};

/* A feeder process: waits for the parent's go (its end of `go` closing), opens
 * its endpoint by name, says so on `attached`, sends `count` messages (pausing 2
 * ms every 500); then closes and exits 0, or, the publisher, dies by SIGKILL
 * without closing. Never returns. */
static void run_feeder(unsigned f, const struct names *n, int go, int attached, uint64_t count) {
    char byte;
    while (read(go, &byte, 1) < 0 && errno == EINTR) {
    }
    shmring_msg_sender *out = NULL;
    shmring_sender *spsc = NULL;
    shmring_mpmc_sender *mpmc = NULL;
    shmring_publisher *pub = NULL;
    int rc;
    if (f == FEED_SPSC) {
        shmring_channel *ch = NULL;
        if ((rc = shmring_channel_open(n->spsc, NULL, &ch)) != SHMRING_OK) die("feeder: open", rc);
        if ((rc = shmring_sender_new(ch, &spsc)) != SHMRING_OK) die("feeder: sender_new", rc);
        (void)shmring_channel_close(ch); /* the sender keeps the segment mapped */
        out = shmring_sender_as_msg_sender(spsc);
    } else if (f == FEED_TOPIC) {
        shmring_topic *topic = NULL;
        if ((rc = shmring_topic_open(n->topic, NULL, &topic)) != SHMRING_OK) die("feeder: open", rc);
        if ((rc = shmring_publisher_new(topic, &pub)) != SHMRING_OK) die("feeder: publisher_new", rc);
        (void)shmring_topic_close(topic);
        out = shmring_publisher_as_msg_sender(pub);
    } else {
        shmring_mpmc *ch = NULL;
        if ((rc = shmring_mpmc_open(n->mpmc, NULL, &ch)) != SHMRING_OK) die("feeder: open", rc);
        if ((rc = shmring_mpmc_sender_new(ch, &mpmc)) != SHMRING_OK) die("feeder: sender_new", rc);
        (void)shmring_mpmc_close(ch);
        out = shmring_mpmc_sender_as_msg_sender(mpmc);
    }
    if (write(attached, "a", 1) != 1) fail("feeder: write attached");
    uint8_t buf[MAX_LEN];
    for (uint64_t seq = 0; seq < count; seq++) {
        size_t len = make_message(buf, f, seq);
        if ((rc = shmring_msg_sender_send_timeout(out, buf, len, SEND_TIMEOUT_MS)) != SHMRING_OK)
            die("feeder: send", rc);
        if (seq % 500 == 499) {
            struct timespec pause = {0, 2 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    if (pub != NULL) raise(SIGKILL); /* dies holding its publisher */
    if (spsc != NULL) (void)shmring_sender_close(spsc);
    if (mpmc != NULL) (void)shmring_mpmc_sender_close(mpmc);
    _exit(0);
}

struct source {
    unsigned index;
    shmring_msg_receiver *in; /* the endpoint's view: one loop for every kind */
    int fd;
    uint64_t received;
    uint64_t wakeups; /* times epoll reported the descriptor readable */
    uint64_t armed;   /* arms that returned SHMRING_ARMED */
    int done;
};

static uint64_t expected[FEEDERS]; /* each feeder's next message number */

/* Which feeders may send on source `s`. */
static int feeds(unsigned s, unsigned f) {
    switch (s) {
    case SRC_SPSC:
        return f == FEED_SPSC;
    case SRC_MPMC:
        return f == FEED_MPMC_A || f == FEED_MPMC_B;
    default:
        return f == FEED_TOPIC;
    }
}

static void check(struct source *s, const uint8_t *buf, size_t len) {
    uint64_t seq;
    if (len < 9 || buf[0] >= FEEDERS || !feeds(s->index, buf[0]))
        fail("a message from the wrong feeder, or too short");
    unsigned f = buf[0];
    memcpy(&seq, buf + 1, sizeof seq);
    if (seq != expected[f]) {
        fprintf(stderr, "epoll_mixed_kinds: %s, feeder %u: message %llu, expected %llu (%s)\n",
                SOURCE_NAMES[s->index], f, (unsigned long long)seq,
                (unsigned long long)expected[f],
                seq < expected[f] ? "duplicated or reordered" : "lost");
        exit(1);
    }
    if (len != message_len(seq)) fail("a message of the wrong length");
    for (size_t i = 9; i < len; i++)
        if (buf[i] != filler(f, seq, i)) fail("a message with wrong bytes");
    expected[f]++;
    s->received++;
}

/* Receives until the source is empty and armed (returns 0) or its senders have
 * gone and everything they sent was received (returns 1). The same for every
 * kind. */
static int serve(struct source *s) {
    uint8_t buf[MAX_LEN];
    size_t len = 0;
    for (;;) {
        int rc = shmring_msg_receiver_try_recv(s->in, buf, sizeof buf, &len);
        if (rc == SHMRING_OK) {
            check(s, buf, len);
            continue;
        }
        if (rc == SHMRING_E_DISCONNECTED) return 1;
        if (rc != SHMRING_E_EMPTY) die("try_recv", rc);
        rc = shmring_msg_receiver_arm_for_message(s->in);
        if (rc == SHMRING_ARMED) {
            s->armed++;
            return 0; /* back to epoll_wait */
        }
        if (rc != SHMRING_READY) die("arm_for_message", rc);
    }
}

/* Serves source `s` (readable, or not armed yet); if its feeders have gone,
 * checks that all they sent arrived, removes it from epoll and returns 1. */
static int visit(struct source *s, int ep, uint64_t count) {
    if (!serve(s)) return 0;
    for (unsigned f = 0; f < FEEDERS; f++) {
        if (feeds(s->index, f) && expected[f] != count) {
            fprintf(stderr, "%s: disconnected after %llu of feeder %u's %llu messages\n",
                    SOURCE_NAMES[s->index], (unsigned long long)expected[f], f,
                    (unsigned long long)count);
            exit(1);
        }
    }
    /* Remove the descriptor before closing the endpoint that owns it. */
    if (epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL) != 0) fail("epoll_ctl DEL failed");
    s->done = 1;
    return 1;
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
        snprintf(prefix, sizeof prefix, "epoll-kinds-%ld", (long)getpid());
    }
    uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    struct names n;
    snprintf(n.spsc, sizeof n.spsc, "%s-spsc", prefix);
    snprintf(n.mpmc, sizeof n.mpmc, "%s-mpmc", prefix);
    snprintf(n.topic, sizeof n.topic, "%s-topic", prefix);

    int rc;
    shmring_channel *spsc = NULL;
    shmring_mpmc *mpmc = NULL;
    shmring_topic *topic = NULL;
    /* Small: the feeders fill them and wait for room. */
    if ((rc = shmring_channel_create(n.spsc, 4096, NULL, &spsc)) != SHMRING_OK) die("create", rc);
    if ((rc = shmring_mpmc_create(n.mpmc, 32, 256, 4, NULL, &mpmc)) != SHMRING_OK)
        die("mpmc_create", rc);
    size_t mpmc_max = 0;
    if ((rc = shmring_mpmc_max_message_len(mpmc, &mpmc_max)) != SHMRING_OK) die("max_len", rc);
    if (mpmc_max < MAX_LEN) fail("the MPMC slots are too small for the messages");
    shmring_topic_config config;
    if ((rc = shmring_topic_config_init(&config)) != SHMRING_OK) die("config_init", rc);
    config.capacity = 4096;
    config.subscriber_slots = 2;
    config.policy = SHMRING_POLICY_GATED; /* the publisher waits for its subscriber */
    if ((rc = shmring_topic_create(n.topic, &config, NULL, &topic)) != SHMRING_OK)
        die("topic_create", rc);

    /* Fork before making any endpoint: each feeder opens its own. They start
     * when `go` closes, after the subscriber has joined (it sees every message
     * from the first on); they say on `attached` that they hold their sender. */
    int go[2], attached[2];
    if (pipe(go) != 0 || pipe(attached) != 0) fail("pipe failed");
    pid_t feeders[FEEDERS];
    fflush(NULL);
    for (unsigned f = 0; f < FEEDERS; f++) {
        feeders[f] = fork();
        if (feeders[f] < 0) fail("fork failed");
        if (feeders[f] == 0) {
            close(go[1]);
            close(attached[0]);
            run_feeder(f, &n, go[0], attached[1], count);
        }
    }
    close(go[0]);
    close(attached[1]);

    shmring_receiver *spsc_rx = NULL;
    shmring_mpmc_receiver *mpmc_rx = NULL;
    shmring_subscriber *sub = NULL;
    if ((rc = shmring_receiver_new(spsc, &spsc_rx)) != SHMRING_OK) die("receiver_new", rc);
    if ((rc = shmring_mpmc_receiver_new(mpmc, &mpmc_rx)) != SHMRING_OK) die("mpmc_receiver_new", rc);
    if ((rc = shmring_subscriber_new(topic, SHMRING_START_OLDEST, &sub)) != SHMRING_OK)
        die("subscriber_new", rc);
    close(go[1]); /* go */
    /* A receiver serves once its feeders hold their senders: before, a
     * subscriber whose publisher has not claimed yet says disconnected. */
    for (unsigned f = 0; f < FEEDERS; f++) {
        char byte;
        ssize_t got;
        while ((got = read(attached[0], &byte, 1)) < 0 && errno == EINTR) {
        }
        if (got != 1) fail("a feeder failed before attaching");
    }
    close(attached[0]);

    struct source sources[SOURCES];
    memset(sources, 0, sizeof sources);
    sources[SRC_SPSC].in = shmring_receiver_as_msg_receiver(spsc_rx);
    sources[SRC_MPMC].in = shmring_mpmc_receiver_as_msg_receiver(mpmc_rx);
    sources[SRC_TOPIC].in = shmring_subscriber_as_msg_receiver(sub);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1 failed");
    for (unsigned s = 0; s < SOURCES; s++) {
        struct source *src = &sources[s];
        src->index = s;
        src->fd = shmring_msg_receiver_readiness_fd(src->in);
        if (src->fd < 0) die("readiness_fd", src->fd);
        shmring_wakeups how;
        const char *reason = NULL;
        if ((rc = shmring_msg_receiver_wakeups(src->in, &how, &reason)) != SHMRING_OK)
            die("wakeups", rc);
        if (how == SHMRING_WAKEUPS_POLLED)
            fprintf(stderr, "%s is polled: %s\n", SOURCE_NAMES[s], reason);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = s};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, src->fd, &ev) != 0) fail("epoll_ctl ADD failed");
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (timer < 0) fail("timerfd_create failed");
    struct itimerspec every = {{0, TICK_MS * 1000000L}, {0, TICK_MS * 1000000L}};
    if (timerfd_settime(timer, 0, &every, NULL) != 0) fail("timerfd_settime failed");
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = SRC_TIMER};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, timer, &tev) != 0) fail("epoll_ctl ADD timer failed");

    double start = now_s();
    uint64_t ticks = 0;
    int open = SOURCES;
    /* Nothing is armed yet: serve each source once, which arms it. */
    for (unsigned s = 0; s < SOURCES; s++) open -= visit(&sources[s], ep, count);
    while (open > 0) {
        struct epoll_event events[SOURCES + 1];
        /* The timer fires every TICK_MS: a second of silence is a broken loop. */
        int ready = epoll_wait(ep, events, SOURCES + 1, 1000);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) fail("epoll_wait: nothing for a second, not even the timer");
        for (int i = 0; i < ready; i++) {
            unsigned which = events[i].data.u32;
            if (which == SRC_TIMER) {
                uint64_t expirations = 0;
                if (read(timer, &expirations, sizeof expirations) == (ssize_t)sizeof expirations)
                    ticks += expirations;
                if (now_s() - start > DEADLINE_S) fail("deadline passed: a wake-up never came");
                continue;
            }
            struct source *src = &sources[which];
            if (src->done) continue;
            src->wakeups++;
            open -= visit(src, ep, count);
        }
    }

    for (unsigned f = 0; f < FEEDERS; f++) {
        int status = 0;
        if (waitpid(feeders[f], &status, 0) != feeders[f]) fail("waitpid failed");
        int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        int exited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (f == FEED_TOPIC ? !killed : !exited) fail("a feeder process failed");
    }
    (void)shmring_receiver_close(spsc_rx);
    (void)shmring_mpmc_receiver_close(mpmc_rx);
    (void)shmring_subscriber_close(sub);
    (void)shmring_channel_close(spsc);
    (void)shmring_mpmc_close(mpmc);
    (void)shmring_topic_close(topic);
    close(timer);
    close(ep);
    printf("ok: spsc %llu, mpmc %llu, topic %llu messages in order in %.2f s, then each "
           "disconnected (the publisher killed); wake-ups %llu/%llu/%llu, arms "
           "%llu/%llu/%llu, timer ticks %llu\n",
           (unsigned long long)sources[SRC_SPSC].received,
           (unsigned long long)sources[SRC_MPMC].received,
           (unsigned long long)sources[SRC_TOPIC].received, now_s() - start,
           (unsigned long long)sources[SRC_SPSC].wakeups,
           (unsigned long long)sources[SRC_MPMC].wakeups,
           (unsigned long long)sources[SRC_TOPIC].wakeups,
           (unsigned long long)sources[SRC_SPSC].armed,
           (unsigned long long)sources[SRC_MPMC].armed,
           (unsigned long long)sources[SRC_TOPIC].armed, (unsigned long long)ticks);
    return 0;
}
