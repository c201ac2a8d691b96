/* FIFO beside the segment as a doorbell and a death signal, between two processes that
 * share no descriptor for it (siblings; each opens the FIFO by path).
 *   fifo_doorbell checks DIR        functional checks (ENXIO, ring, EAGAIN, hang-up,
 *                                   SIGPIPE, O_RDWR notifier, O_NOFOLLOW/S_ISFIFO, pid ns)
 *   fifo_doorbell kill DIR N MASK   N trials of SIGKILL of the notifier; the waiter polls
 *                                   MASK: 1 = FIFO read end, 2 = accepted Unix socket,
 *                                   4 = pidfd of the notifier, 8 = a futex sleeper woken by
 *                                   a watcher thread polling the FIFO; prints kill -> readiness
 *                                   latency per source (p50, p99, max, in microseconds);
 *                                   NOTIFIER_MB=M: the notifier first touches M MiB
 * cc -O2 -o /tmp/fifo_doorbell fifo_doorbell.c */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static const char *ev(short r) {
    static char b[64];
    snprintf(b, sizeof b, "%s%s%s%s", r & POLLIN ? "IN " : "", r & POLLHUP ? "HUP " : "",
             r & POLLERR ? "ERR " : "", r ? "" : "none");
    return b;
}
static short poll1(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0 ? p.revents : 0;
}
static void sync_read(int fd) { char c; if (read(fd, &c, 1) != 1) _exit(3); }
static void sync_write(int fd) { if (write(fd, "s", 1) != 1) _exit(3); }

/* ---------------------------------------------------------------- checks */
static int checks(const char *dir) {
    char path[512], link[512], reg[512];
    snprintf(path, sizeof path, "%s/seg.doorbell", dir);
    snprintf(link, sizeof link, "%s/seg.link", dir);
    snprintf(reg, sizeof reg, "%s/seg.regular", dir);
    unlink(path); unlink(link); unlink(reg);
    if (mkfifo(path, 0600)) { perror("mkfifo"); return 1; }
    setvbuf(stdout, NULL, _IONBF, 0);

    int w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    printf("1. notifier open(O_WRONLY|O_NONBLOCK) with no reader: %s\n", w < 0 ? strerror(errno) : "opened (UNEXPECTED)");

    int to_w[2], to_n[2];
    if (pipe(to_w) || pipe(to_n)) return 1;
    pid_t waiter = fork();
    if (waiter == 0) {
        int r = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        fstat(r, &st);
        printf("2. waiter open(O_RDONLY|O_NONBLOCK|O_NOFOLLOW): fd %d; fstat S_ISFIFO %d, uid %d, mode %o\n", r,
               S_ISFIFO(st.st_mode), st.st_uid, st.st_mode & 07777);
        printf("3. waiter poll before any writer opened: %s\n", ev(poll1(r, 0)));
        sync_write(to_n[1]);                        /* -> notifier may open */
        sync_read(to_w[0]);                         /* notifier opened and rang once */
        double t = now_us();
        short e = poll1(r, 1000);
        printf("4. waiter poll after one ring: %s (%.0f us in poll)\n", ev(e), now_us() - t);
        char buf[70000];
        ssize_t n = read(r, buf, sizeof buf);
        printf("   drained %zd byte(s); poll now: %s\n", n, ev(poll1(r, 0)));
        sync_write(to_n[1]);
        sync_read(to_w[0]);                         /* notifier filled the pipe */
        n = read(r, buf, sizeof buf);
        printf("6. waiter drained %zd bytes in one read\n", n);
        sync_write(to_n[1]);
        e = poll1(r, 2000);                         /* notifier closes normally */
        printf("7. waiter poll after the notifier closed its end: %s\n", ev(e));
        n = read(r, buf, sizeof buf);
        printf("   read after hang-up: %zd (0 = EOF)\n", n);
        sync_write(to_n[1]);
        sync_read(to_w[0]);                         /* a new writer opened */
        printf("8. waiter poll after a new writer opened: %s (hang-up cleared)\n", ev(poll1(r, 0)));
        sync_write(to_n[1]);
        e = poll1(r, 2000);
        printf("9. waiter poll after an O_RDWR notifier was SIGKILLed: %s\n", ev(e));
        sync_write(to_n[1]);
        close(r);
        _exit(0);
    }
    pid_t notifier = fork();
    if (notifier == 0) {
        sync_read(to_n[0]);
        int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) { printf("notifier open: %s\n", strerror(errno)); _exit(1); }
        if (write(fd, "x", 1) != 1) _exit(1);
        sync_write(to_w[1]);
        sync_read(to_n[0]);
        long total = 0;
        ssize_t k;
        char blk[4096] = {0};
        while ((k = write(fd, blk, 1)) == 1) total++;
        printf("5. notifier wrote %ld one-byte rings before write failed: %s (= already readable)\n", total,
               k < 0 ? strerror(errno) : "?");
        sync_write(to_w[1]);
        sync_read(to_n[0]);
        close(fd);                                  /* -> waiter sees the hang-up */
        sync_read(to_n[0]);
        fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        sync_write(to_w[1]);
        sync_read(to_n[0]);
        close(fd);
        /* An O_RDWR notifier (never SIGPIPE, see 10): does its death still hang up the FIFO? */
        pid_t rw = fork();
        if (rw == 0) { open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC); pause(); }
        usleep(20000);
        kill(rw, SIGKILL);
        waitpid(rw, NULL, 0);
        sync_read(to_n[0]);
        _exit(0);
    }
    waitpid(notifier, NULL, 0);
    waitpid(waiter, NULL, 0);

    /* 10. the waiter is gone (no reader): what does a notifier's write do? */
    pid_t c = fork();
    if (c == 0) {
        int r = open(path, O_RDONLY | O_NONBLOCK);
        int fd = open(path, O_WRONLY | O_NONBLOCK);
        close(r);
        write(fd, "x", 1);                          /* default SIGPIPE disposition */
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("10. O_WRONLY notifier writing after the reader closed: %s\n",
           WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exited normally");
    c = fork();
    if (c == 0) {
        int r = open(path, O_RDONLY | O_NONBLOCK);
        int fd = open(path, O_RDWR | O_NONBLOCK);
        close(r);
        ssize_t k = write(fd, "x", 1);
        printf("    O_RDWR notifier writing after the reader closed: write returned %zd (no SIGPIPE: it is a reader itself)\n", k);
        _exit(0);
    }
    waitpid(c, &st, 0);

    /* 11. O_NOFOLLOW and S_ISFIFO against substitution */
    symlink(path, link);
    int fd = open(link, O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
    printf("11. open(symlink to the FIFO, O_NOFOLLOW): %s\n", fd < 0 ? strerror(errno) : "opened (UNEXPECTED)");
    close(open(reg, O_CREAT | O_WRONLY, 0600));
    fd = open(reg, O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
    struct stat s;
    fstat(fd, &s);
    printf("    a regular file in its place opens, and fstat says S_ISFIFO=%d: refused by the check\n", S_ISFIFO(s.st_mode));
    close(fd);

    /* 12. across pid namespaces: the notifier in a new pid namespace (unshare(CLONE_NEWPID)) */
    int pp[2];
    if (pipe(pp)) return 1;
    int r = open(path, O_RDONLY | O_NONBLOCK);
    pid_t mid = fork();
    if (mid == 0) {
        if (unshare(CLONE_NEWPID)) { printf("12. unshare(CLONE_NEWPID): %s (not tested)\n", strerror(errno)); _exit(1); }
        pid_t inner = fork();
        if (inner == 0) {
            int fd2 = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
            pid_t me = getpid();
            if (write(fd2, &me, sizeof me) != sizeof me) _exit(1); /* a "pid in the segment" */
            pause();
        }
        if (write(pp[1], &inner, sizeof inner) != sizeof inner) _exit(1);
        waitpid(inner, NULL, 0);
        _exit(0);
    }
    pid_t inner;
    if (read(pp[0], &inner, sizeof inner) == sizeof inner) {
        short e = poll1(r, 1000);
        pid_t claimed = 0;
        if (read(r, &claimed, sizeof claimed) != sizeof claimed) claimed = -1;
        printf("12. notifier in a new pid namespace: ring seen (%s); it says its pid is %d, its pid here is %d\n",
               ev(e), claimed, inner);
        double t0 = now_us();
        kill(inner, SIGKILL);
        e = poll1(r, 2000);
        printf("    after SIGKILL of it: waiter poll %s, %.0f us after the kill\n", ev(e), now_us() - t0);
    }
    waitpid(mid, NULL, 0);
    close(r);
    unlink(path); unlink(link); unlink(reg);
    return 0;
}

/* ---------------------------------------------------------------- kill latency */
struct shared { double t_kill; double t_ready[4]; };

/* MASK 8: the main thread parks in FUTEX_WAIT (as a blocking recv does); a watcher
 * thread, one per process, polls the FIFO and on its hang-up sets the word and wakes it. */
static uint32_t parked_word;
static int watched_fd;
static void *watcher(void *arg) {
    (void)arg;
    struct pollfd p = {.fd = watched_fd, .events = POLLIN};
    while (poll(&p, 1, -1) < 1 || !(p.revents & POLLHUP)) {}
    __atomic_store_n(&parked_word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &parked_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void report(const char *name, double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    printf("  %-26s n=%d  p50 %7.1f  p90 %7.1f  p99 %7.1f  max %7.1f us\n", name, n, v[n / 2], v[n * 9 / 10],
           v[(n * 99) / 100], v[n - 1]);
}

static int kill_trials(const char *dir, int trials, int mask) {
    char fifo[512], sock[512];
    snprintf(fifo, sizeof fifo, "%s/seg.doorbell", dir);
    snprintf(sock, sizeof sock, "%s/seg.sock", dir);
    struct shared *sh = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *lat[4];
    int cnt[4] = {0};
    for (int i = 0; i < 4; i++) lat[i] = calloc(trials, sizeof(double));
    unlink(fifo);
    if (mkfifo(fifo, 0600)) { perror("mkfifo"); return 1; }
    for (int t = 0; t < trials; t++) {
        int w_ready[2], n_ready[2], to_w[2];
        if (pipe2(w_ready, O_CLOEXEC) || pipe2(n_ready, O_CLOEXEC) || pipe2(to_w, O_CLOEXEC)) return 1;
        unlink(sock);
        pid_t waiter = fork();
        if (waiter == 0) {
            struct pollfd p[3];
            int np = 0, ls = -1;
            int fifo_fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
            if (mask & 2) {
                ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un a = {.sun_family = AF_UNIX};
                strncpy(a.sun_path, sock, sizeof a.sun_path - 1);
                if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1)) _exit(2);
            }
            sync_write(w_ready[1]);                      /* notifier may open and connect */
            pid_t npid;
            if (read(to_w[0], &npid, sizeof npid) != sizeof npid) _exit(3);
            int src[3], k = 0;
            if (mask & 1) { p[np] = (struct pollfd){fifo_fd, POLLIN, 0}; src[np++] = 0; }
            if (mask & 2) { p[np] = (struct pollfd){accept4(ls, 0, 0, SOCK_CLOEXEC), POLLIN, 0}; src[np++] = 1; }
            if (mask & 4) { p[np] = (struct pollfd){(int)syscall(SYS_pidfd_open, npid, 0), POLLIN, 0}; src[np++] = 2; }
            if (!(mask & 9)) close(fifo_fd);             /* unused: the notifier still needed a reader to open */
            if (mask & 8) {
                watched_fd = fifo_fd;
                pthread_t th;
                pthread_create(&th, NULL, watcher, NULL);
                sync_write(w_ready[1]);                  /* armed */
                while (__atomic_load_n(&parked_word, __ATOMIC_SEQ_CST) == 0)
                    syscall(SYS_futex, &parked_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
                sh->t_ready[3] = now_us();
                _exit(0);
            }
            sync_write(w_ready[1]);                      /* armed */
            while (k < np) {
                if (poll(p, np, 5000) <= 0) _exit(4);
                double t = now_us();
                for (int i = 0; i < np; i++)
                    if (p[i].fd >= 0 && p[i].revents) {
                        sh->t_ready[src[i]] = t;
                        p[i].fd = -1;
                        k++;
                    }
            }
            _exit(0);
        }
        sync_read(w_ready[0]);
        pid_t notifier = fork();
        if (notifier == 0) {
            int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0) _exit(5);
            if (mask & 2) {
                int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un a = {.sun_family = AF_UNIX};
                strncpy(a.sun_path, sock, sizeof a.sun_path - 1);
                if (connect(s, (void *)&a, sizeof a)) _exit(6);
            }
            const char *mb = getenv("NOTIFIER_MB");     /* a notifier with touched memory dies slower */
            if (mb) {
                size_t len = (size_t)atoi(mb) << 20;
                char *m = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                for (size_t i = 0; i < len; i += 4096) m[i] = 1;
            }
            sync_write(n_ready[1]);
            for (;;) pause();
        }
        sync_read(n_ready[0]);
        if (write(to_w[1], &notifier, sizeof notifier) != sizeof notifier) return 1;
        sync_read(w_ready[0]);
        usleep(2000);                                    /* let the waiter reach poll */
        for (int i = 0; i < 4; i++) sh->t_ready[i] = 0;
        sh->t_kill = now_us();
        kill(notifier, SIGKILL);
        int st;
        waitpid(waiter, &st, 0);
        waitpid(notifier, NULL, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "trial %d: waiter failed %d\n", t, st); continue; }
        for (int i = 0; i < 4; i++)
            if ((mask & (1 << i)) && (i == 3 || !(mask & 8))) lat[i][cnt[i]++] = sh->t_ready[i] - sh->t_kill;
        close(w_ready[0]); close(w_ready[1]); close(n_ready[0]); close(n_ready[1]); close(to_w[0]); close(to_w[1]);
    }
    printf("kill -> readiness, mask %d, %d trials:\n", mask, trials);
    const char *names[4] = {"FIFO POLLHUP", "Unix socket EOF/HUP", "pidfd readable", "futex sleeper via watcher"};
    for (int i = 0; i < 4; i++)
        if (cnt[i]) report(names[i], lat[i], cnt[i]);
    unlink(fifo); unlink(sock);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "checks")) return checks(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "kill")) return kill_trials(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: %s checks DIR | kill DIR TRIALS MASK\n", argv[0]);
    return 2;
}
