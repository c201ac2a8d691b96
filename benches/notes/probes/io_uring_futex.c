/* io_uring probe: does io_uring_setup work, does IORING_REGISTER_PROBE list
 * IORING_OP_FUTEX_WAIT (kernel >= 6.7), and does a FUTEX_WAIT submitted through
 * io_uring on a word in a shared mapping complete when another process calls a
 * plain futex(FUTEX_WAKE) on it, making the ring's fd readable for poll()?
 * Raw system calls only (no liburing).  cc -O2 -o /tmp/io_uring_futex io_uring_futex.c */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Not in the 6.1 uapi header this machine ships; values from the 6.7 uapi header. */
#define OP_FUTEX_WAIT 51
#define OP_FUTEX_WAKE 52
#define FUTEX2_SIZE_U32 0x02

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(void) {
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f) {
        int v = -1;
        if (fscanf(f, "%d", &v) == 1) printf("io_uring_disabled = %d\n", v);
        fclose(f);
    } else {
        printf("io_uring_disabled: absent\n");
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0) {
        printf("io_uring_setup: FAILED errno=%d (%s)\n", errno, strerror(errno));
        return 0;
    }
    printf("io_uring_setup: ok (fd %d, features 0x%x)\n", fd, p.features);

    size_t plen = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *pr = calloc(1, plen);
    if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, pr, 256) < 0) {
        printf("IORING_REGISTER_PROBE: FAILED errno=%d (%s)\n", errno, strerror(errno));
        return 0;
    }
    int wait_ok = pr->ops_len > OP_FUTEX_WAIT && (pr->ops[OP_FUTEX_WAIT].flags & IO_URING_OP_SUPPORTED);
    int wake_ok = pr->ops_len > OP_FUTEX_WAKE && (pr->ops[OP_FUTEX_WAKE].flags & IO_URING_OP_SUPPORTED);
    printf("probe: last_op %u; IORING_OP_FUTEX_WAIT (51) %s; IORING_OP_FUTEX_WAKE (52) %s\n", pr->last_op,
           wait_ok ? "supported" : "NOT supported", wake_ok ? "supported" : "NOT supported");
    if (!wait_ok) return 0;

    /* Map the rings (IORING_FEAT_SINGLE_MMAP assumed: kernel >= 5.4). */
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t ring_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
    char *ring = mmap(0, ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (ring == MAP_FAILED || sqes == MAP_FAILED) { perror("mmap"); return 1; }
    uint32_t *sq_tail = (uint32_t *)(ring + p.sq_off.tail);
    uint32_t *sq_mask = (uint32_t *)(ring + p.sq_off.ring_mask);
    uint32_t *sq_array = (uint32_t *)(ring + p.sq_off.array);
    uint32_t *cq_head = (uint32_t *)(ring + p.cq_off.head);
    uint32_t *cq_tail = (uint32_t *)(ring + p.cq_off.tail);
    uint32_t *cq_mask = (uint32_t *)(ring + p.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(ring + p.cq_off.cqes);

    /* The futex word lives in a shared anonymous mapping (as a segment would). */
    uint32_t *word = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *t_wake = (double *)(word + 16);
    *word = 0;

    uint32_t tail = *sq_tail;
    struct io_uring_sqe *sqe = &sqes[tail & *sq_mask];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = OP_FUTEX_WAIT;
    sqe->fd = FUTEX2_SIZE_U32; /* shared (no FUTEX2_PRIVATE): the waker is another process */
    sqe->addr = (uint64_t)(uintptr_t)word;
    sqe->addr2 = 0;                       /* expected value */
    sqe->addr3 = FUTEX_BITSET_MATCH_ANY;  /* mask */
    sqe->user_data = 42;
    sq_array[tail & *sq_mask] = tail & *sq_mask;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
    int n = syscall(__NR_io_uring_enter, fd, 1, 0, 0, NULL, 0);
    printf("io_uring_enter(submit FUTEX_WAIT): %d\n", n);

    struct pollfd pf = {.fd = fd, .events = POLLIN};
    printf("ring fd readable before the wake: %s\n", poll(&pf, 1, 0) > 0 ? "yes (WRONG)" : "no");

    pid_t c = fork();
    if (c == 0) { /* another process: a plain futex wake, no io_uring involved */
        usleep(50000);
        __atomic_store_n(word, 1, __ATOMIC_SEQ_CST);
        *t_wake = now_us();
        long w = syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
        printf("child: FUTEX_WAKE woke %ld\n", w);
        _exit(0);
    }
    int r = poll(&pf, 1, 2000);
    double t = now_us();
    waitpid(c, NULL, 0);
    if (r <= 0) { printf("ring fd NOT readable within 2 s after the wake\n"); return 0; }
    uint32_t h = *cq_head;
    if (h == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) { printf("poll readable but no CQE\n"); return 0; }
    struct io_uring_cqe *cqe = &cqes[h & *cq_mask];
    printf("ring fd readable after the other process's FUTEX_WAKE: cqe user_data %llu res %d, %.1f us after the wake\n",
           (unsigned long long)cqe->user_data, cqe->res, t - *t_wake);
    __atomic_store_n(cq_head, h + 1, __ATOMIC_RELEASE);
    return 0;
}
