/* Blocking ping-pong between two processes, no spinning on either side:
 *   eventfd       eventfds passed over fork, blocking read()/write()
 *   eventfd-poll  the same, non-blocking eventfds, each side parks in poll() then read()s
 *                 (the armed-readiness-descriptor pattern)
 *   fifo          two named FIFOs, each side opens them by path, blocking read()/write()
 *   fifo-poll     the same FIFOs as decision 0005 opens them (reader O_RDONLY|O_NONBLOCK,
 *                 ringer O_RDWR|O_NONBLOCK); each side parks in poll() then read()s
 *   futex         a word in a shared anonymous mapping, FUTEX_WAIT / FUTEX_WAKE (shared)
 * pingpong MODE [ROUNDS]: the parent is pinned to CPU 0 and the child to CPU 1
 * (sched_setaffinity; reported if refused), the parent times every round trip.
 * cc -O2 -o /tmp/pingpong pingpong.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec;
}
static int pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return sched_setaffinity(0, sizeof s, &s);
}
static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static void futex_wait(uint32_t *w, uint32_t v) { syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0); }
static void futex_wake(uint32_t *w) { syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0); }

static size_t ev_size = 8;              /* 8 for an eventfd, 1 for a FIFO */
static void ev_wait(int fd, int use_poll) {
    uint64_t v;
    for (;;) {
        if (use_poll) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, -1);
        }
        if (read(fd, &v, ev_size) == (ssize_t)ev_size) return;
        if (errno != EAGAIN && errno != EINTR) { perror("read"); exit(1); }
    }
}
static void ev_ring(int fd) {
    uint64_t one = 1;
    if (write(fd, &one, ev_size) != (ssize_t)ev_size) { perror("write"); exit(1); }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "eventfd";
    long rounds = argc > 2 ? atol(argv[2]) : 100000;
    uint64_t *rt = malloc(rounds * sizeof *rt);
    int a = -1, b = -1;                 /* a: parent -> child, b: child -> parent */
    uint32_t *word = NULL;
    char fa[64], fb[64];
    int use_poll = !strcmp(mode, "eventfd-poll") || !strcmp(mode, "fifo-poll");
    int fifo = !strncmp(mode, "fifo", 4);
    if (!strncmp(mode, "eventfd", 7)) {
        int fl = use_poll ? EFD_NONBLOCK : 0;
        a = eventfd(0, fl);
        b = eventfd(0, fl);
    } else if (fifo) {
        ev_size = 1;
        snprintf(fa, sizeof fa, "/tmp/pingpong-%d.a", getpid());
        snprintf(fb, sizeof fb, "/tmp/pingpong-%d.b", getpid());
        if (mkfifo(fa, 0600) || mkfifo(fb, 0600)) { perror("mkfifo"); return 1; }
    } else if (!strcmp(mode, "futex")) {
        word = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        *word = 0;                      /* a counter: the parent makes it odd, the child even */
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    pid_t c = fork();
    if (c == 0) {
        if (pin(1)) perror("child pin");
        if (use_poll && fifo) {         /* opened by path, nothing inherited */
            a = open(fa, O_RDONLY | O_NONBLOCK);
            b = open(fb, O_RDWR | O_NONBLOCK);
        } else if (fifo) {
            a = open(fa, O_RDONLY);
            b = open(fb, O_WRONLY);
        }
        char byte;
        for (long i = 0; i < rounds; i++) {
            if (word) {
                uint32_t mine = 2 * (uint32_t)i;             /* the value this side last saw */
                while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == mine) futex_wait(word, mine);
                __atomic_store_n(word, mine + 2, __ATOMIC_RELEASE);
                futex_wake(word);
            } else if (!strcmp(mode, "fifo")) {
                if (read(a, &byte, 1) != 1 || write(b, &byte, 1) != 1) _exit(1);
            } else {
                ev_wait(a, use_poll);
                ev_ring(b);
            }
        }
        _exit(0);
    }
    int pinned = pin(0) == 0;
    if (use_poll && fifo) {
        a = open(fa, O_RDWR | O_NONBLOCK);
        b = open(fb, O_RDONLY | O_NONBLOCK);
    } else if (fifo) {
        a = open(fa, O_WRONLY);
        b = open(fb, O_RDONLY);
    }
    char byte = 'x';
    for (long i = 0; i < rounds; i++) {
        uint64_t t = now_ns();
        if (word) {
            uint32_t ping = 2 * (uint32_t)i + 1;             /* odd: ping sent; even: pong sent */
            __atomic_store_n(word, ping, __ATOMIC_RELEASE);
            futex_wake(word);
            while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == ping) futex_wait(word, ping);
        } else if (!strcmp(mode, "fifo")) {
            if (write(a, &byte, 1) != 1 || read(b, &byte, 1) != 1) return 1;
        } else {
            ev_ring(a);
            ev_wait(b, use_poll);
        }
        rt[i] = now_ns() - t;
    }
    waitpid(c, NULL, 0);
    if (fifo) { unlink(fa); unlink(fb); }
    qsort(rt, rounds, sizeof *rt, cmp);
    printf("%-13s rounds %ld pinned %s  round trip ns: p10 %lu  p50 %lu  p90 %lu  p99 %lu\n", mode, rounds,
           pinned ? "0/1" : "no", rt[rounds / 10], rt[rounds / 2], rt[rounds * 9 / 10], rt[rounds * 99 / 100]);
    return 0;
}
