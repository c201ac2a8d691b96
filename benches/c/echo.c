/*
 * The C peer of the comparison program's `busy-spin-c` method: the child's echo
 * loop written against the C ABI alone (shmring.h), as a C program would use it.
 * benches/build.rs compiles it into the comparison program, whose dependency on
 * shmring-ffi provides the shmring_* functions; benches/src/cross/c_peer.rs calls
 * it from the child process.
 *
 * The loop moves the messages through the message family's views of two SPSC
 * channels opened with SHMRING_WAIT_BUSY_SPIN, in one of two ways: the blocking
 * calls (shmring_msg_receiver_recv, shmring_msg_sender_send, which spin inside
 * the library: the calls the Rust busy-spin child makes), or the try_ calls
 * (shmring_msg_receiver_try_recv until a message is there, then
 * shmring_msg_sender_try_send until it has gone: the loop spins in C). Every ping
 * is checked as the Rust children check theirs (its length, and its sequence
 * number in the first and, from 16 bytes on, the last 8 bytes, native byte
 * order) before it is echoed.
 */
#include <shmring.h>

#include <stdlib.h>
#include <string.h>

#include "echo.h"

/* A spin-wait hint between polls, as Rust's std::hint::spin_loop gives the Rust
 * children. */
static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("isb" ::: "memory");
#endif
}

int shmring_bench_c_open(int ping_fd, int pong_fd, struct shmring_bench_c_ends *ends) {
    memset(ends, 0, sizeof *ends);
    struct shmring_channel_options options;
    int rc = shmring_channel_options_init(&options);
    if (rc != SHMRING_OK) return rc;
    /* As the Rust children: no page faults while measuring. */
    options.flags |= SHMRING_OPTION_PREFAULT;
    options.wait_strategy = SHMRING_WAIT_BUSY_SPIN;
    struct shmring_channel *ping = NULL;
    struct shmring_channel *pong = NULL;
    rc = shmring_channel_open_fd(ping_fd, &options, &ping);
    if (rc == SHMRING_OK) rc = shmring_channel_open_fd(pong_fd, &options, &pong);
    if (rc == SHMRING_OK) rc = shmring_receiver_new(ping, &ends->receiver);
    if (rc == SHMRING_OK) rc = shmring_sender_new(pong, &ends->sender);
    /* The endpoints keep their segments mapped. */
    (void)shmring_channel_close(ping);
    (void)shmring_channel_close(pong);
    if (rc != SHMRING_OK) shmring_bench_c_close(ends);
    return rc;
}

int shmring_bench_c_echo(const struct shmring_bench_c_ends *ends, size_t size, uint64_t count,
                         bool try_calls, shmring_bench_progress *progress,
                         struct shmring_bench_c_failure *failure) {
    memset(failure, 0, sizeof *failure);
    if (size < 8) return SHMRING_BENCH_C_E_LENGTH;
    uint8_t *buf = malloc(size);
    if (buf == NULL) return SHMRING_E_NO_SPACE;
    struct shmring_msg_receiver *rx = shmring_receiver_as_msg_receiver(ends->receiver);
    struct shmring_msg_sender *tx = shmring_sender_as_msg_sender(ends->sender);
    int rc = SHMRING_OK;
    for (uint64_t seq = 1; seq <= count; seq++) {
        size_t len = 0;
        if (try_calls) {
            while ((rc = shmring_msg_receiver_try_recv(rx, buf, size, &len)) == SHMRING_E_EMPTY) {
                spin_pause();
            }
        } else {
            rc = shmring_msg_receiver_recv(rx, buf, size, &len);
        }
        if (rc != SHMRING_OK) {
            failure->seq = seq;
            break;
        }
        uint64_t head, tail;
        memcpy(&head, buf, 8);
        memcpy(&tail, buf + size - 8, 8);
        if (len != size || head != seq || (size >= 16 && tail != seq)) {
            failure->seq = seq;
            failure->len = len;
            failure->head = head;
            failure->tail = tail;
            rc = len != size ? SHMRING_BENCH_C_E_LENGTH : SHMRING_BENCH_C_E_SEQUENCE;
            break;
        }
        if (try_calls) {
            while ((rc = shmring_msg_sender_try_send(tx, buf, len)) == SHMRING_E_FULL) {
                spin_pause();
            }
        } else {
            rc = shmring_msg_sender_send(tx, buf, len);
        }
        if (rc != SHMRING_OK) {
            failure->seq = seq;
            break;
        }
        /* Relaxed: the child's watchdog only asks whether the number moved. */
        atomic_store_explicit(progress, seq, memory_order_relaxed);
    }
    free(buf);
    return rc;
}

void shmring_bench_c_close(struct shmring_bench_c_ends *ends) {
    (void)shmring_sender_close(ends->sender);
    (void)shmring_receiver_close(ends->receiver);
    ends->sender = NULL;
    ends->receiver = NULL;
}
