/* The C peer of the `busy-spin-c` method (echo.c); mirrored by the declarations in
 * benches/src/cross/c_peer.rs. */
#ifndef SHMRING_BENCH_C_ECHO_H
#define SHMRING_BENCH_C_ECHO_H

#include <shmring.h>

/* Failures of the echo loop beyond shmring's own (negative) codes. */
/* A ping of the wrong length (`len`). */
#define SHMRING_BENCH_C_E_LENGTH 1
/* A ping out of sequence (`head`, `tail`). */
#define SHMRING_BENCH_C_E_SEQUENCE 2

/* The child's two endpoints: it receives pings and sends echoes. */
struct shmring_bench_c_ends {
    struct shmring_receiver *receiver;
    struct shmring_sender *sender;
};

/* What the echo loop saw when it failed: the round trip, and for a bad ping its
 * length and the sequence numbers it carried. */
struct shmring_bench_c_failure {
    uint64_t seq;
    uint64_t len;
    uint64_t head;
    uint64_t tail;
};

/* Opens the ping channel (`ping_fd`, received) and the pong channel (`pong_fd`,
 * sent) through the C ABI, with SHMRING_WAIT_BUSY_SPIN; the descriptors stay the
 * caller's. Returns SHMRING_OK, or a shmring code with nothing left open. */
int shmring_bench_c_open(int ping_fd, int pong_fd, struct shmring_bench_c_ends *ends);

/* Echoes `count` pings of `size` bytes (at least 8) through the blocking calls
 * (spinning in the library), or with `try_calls` busy-spinning on the try_ calls
 * in C; stores each finished round trip's number in `*progress`. Returns
 * SHMRING_OK, a shmring code (its details in shmring_last_error_message()), or
 * SHMRING_BENCH_C_E_*; `*failure` says where. */
int shmring_bench_c_echo(const struct shmring_bench_c_ends *ends, size_t size, uint64_t count,
                         bool try_calls, _Atomic uint64_t *progress,
                         struct shmring_bench_c_failure *failure);

/* Closes both endpoints (NULL ones are skipped). */
void shmring_bench_c_close(struct shmring_bench_c_ends *ends);

#endif
