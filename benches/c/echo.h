/* The C peer of the `busy-spin-c` method (echo.c) and the C++ peer of
 * `busy-spin-cpp` (echo.cpp); mirrored by the declarations in
 * benches/src/cross/c_peer.rs. C11 and C++17 both include it. */
#ifndef SHMRING_BENCH_C_ECHO_H
#define SHMRING_BENCH_C_ECHO_H

#include <shmring.h>

#ifdef __cplusplus
#include <atomic>
/* Where the echo loops store each finished round trip's number (the layout of
 * Rust's AtomicU64 on the targets this builds for). */
typedef std::atomic<uint64_t> shmring_bench_progress;
extern "C" {
#else
#include <stdatomic.h>
typedef _Atomic uint64_t shmring_bench_progress;
#endif

/* Failures of the echo loop beyond shmring's own (negative) codes. */
/* A ping of the wrong length (`len`). */
#define SHMRING_BENCH_C_E_LENGTH 1
/* A ping out of sequence (`head`, `tail`). */
#define SHMRING_BENCH_C_E_SEQUENCE 2
/* The C++ peer caught an exception other than shmring::error (whose code it
 * returns) or std::bad_alloc (SHMRING_E_NO_SPACE). */
#define SHMRING_BENCH_C_E_EXCEPTION 3

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
                         bool try_calls, shmring_bench_progress *progress,
                         struct shmring_bench_c_failure *failure);

/* Closes both endpoints (NULL ones are skipped). */
void shmring_bench_c_close(struct shmring_bench_c_ends *ends);

/* The C++ peer's endpoints (a shmring::receiver and a shmring::sender), opaque. */
struct shmring_bench_cpp_ends;

/* As shmring_bench_c_open, through the C++ wrapper (shmring::channel::open_fd):
 * `*ends` is set on SHMRING_OK, left NULL otherwise. Never throws. */
int shmring_bench_cpp_open(int ping_fd, int pong_fd, struct shmring_bench_cpp_ends **ends);

/* As shmring_bench_c_echo with the blocking calls, through the C++ wrapper
 * (shmring::receiver::recv, shmring::sender::send). Never throws: a shmring::error
 * is its code, other exceptions SHMRING_E_NO_SPACE or SHMRING_BENCH_C_E_EXCEPTION. */
int shmring_bench_cpp_echo(struct shmring_bench_cpp_ends *ends, size_t size, uint64_t count,
                           shmring_bench_progress *progress,
                           struct shmring_bench_c_failure *failure);

/* Closes both endpoints and frees `ends` (NULL is skipped). */
void shmring_bench_cpp_close(struct shmring_bench_cpp_ends *ends);

#ifdef __cplusplus
}
#endif

#endif
