/*
 * The C++ peer of the comparison program's `busy-spin-cpp` method: the child's
 * echo loop written against the header-only C++17 wrapper (shmring.hpp) alone, as
 * a C++ program would use it. benches/build.rs compiles it into the comparison
 * program beside echo.c; benches/src/cross/c_peer.rs calls it from the child.
 *
 * It opens the two channels the parent passed with shmring::channel::open_fd
 * (SHMRING_WAIT_BUSY_SPIN, prefaulted, as echo.c), claims a shmring::receiver and
 * a shmring::sender, and echoes through their blocking copying calls
 * (receiver::recv, sender::send: the calls echo.c and the Rust busy-spin child
 * make), checking every ping as echo.c does (its length, and its sequence number
 * in the first and, from 16 bytes on, the last 8 bytes, native byte order).
 *
 * No C++ exception leaves these functions (they are called from Rust): each
 * catches everything and returns a code.
 */
#include <shmring.hpp>

#include <cstring>
#include <new>
#include <vector>

#include "echo.h"

struct shmring_bench_cpp_ends {
    shmring::receiver receiver;
    shmring::sender sender;
};

namespace {

/* Runs `body`, turning any exception into a code. */
template <class Body>
int guarded(Body &&body) noexcept {
    try {
        return body();
    } catch (const shmring::error &e) {
        /* shmring_last_error_message() still holds the details: nothing called
         * shmring on this thread since the failing call (the error read them,
         * and a successful call leaves them). */
        return e.value();
    } catch (const std::bad_alloc &) {
        return SHMRING_E_NO_SPACE;
    } catch (...) {
        return SHMRING_BENCH_C_E_EXCEPTION;
    }
}

} // namespace

extern "C" int shmring_bench_cpp_open(int ping_fd, int pong_fd,
                                      struct shmring_bench_cpp_ends **ends) {
    *ends = nullptr;
    return guarded([&]() -> int {
        shmring::channel_options options{};
        /* As the Rust children: no page faults while measuring. */
        options.flags |= SHMRING_OPTION_PREFAULT;
        options.wait_strategy = SHMRING_WAIT_BUSY_SPIN;
        /* The endpoints keep their segments mapped: the channels close on return. */
        const auto ping = shmring::channel::open_fd(ping_fd, options);
        const auto pong = shmring::channel::open_fd(pong_fd, options);
        *ends = new shmring_bench_cpp_ends{ping.receiver(), pong.sender()};
        return SHMRING_OK;
    });
}

extern "C" int shmring_bench_cpp_echo(struct shmring_bench_cpp_ends *ends, size_t size,
                                      uint64_t count, shmring_bench_progress *progress,
                                      struct shmring_bench_c_failure *failure) {
    *failure = shmring_bench_c_failure{};
    if (size < 8) {
        return SHMRING_BENCH_C_E_LENGTH;
    }
    uint64_t seq = 1;
    const int rc = guarded([&]() -> int {
        std::vector<uint8_t> buf(size);
        for (; seq <= count; seq++) {
            const std::size_t len = ends->receiver.recv(buf.data(), buf.size());
            uint64_t head = 0;
            uint64_t tail = 0;
            std::memcpy(&head, buf.data(), 8);
            std::memcpy(&tail, buf.data() + size - 8, 8);
            if (len != size || head != seq || (size >= 16 && tail != seq)) {
                *failure = shmring_bench_c_failure{seq, len, head, tail};
                return len != size ? SHMRING_BENCH_C_E_LENGTH : SHMRING_BENCH_C_E_SEQUENCE;
            }
            ends->sender.send(buf.data(), len);
            /* Relaxed: the child's watchdog only asks whether the number moved. */
            progress->store(seq, std::memory_order_relaxed);
        }
        return SHMRING_OK;
    });
    if (rc != SHMRING_OK && failure->seq == 0) {
        failure->seq = seq;
    }
    return rc;
}

extern "C" void shmring_bench_cpp_close(struct shmring_bench_cpp_ends *ends) {
    /* The destructors close the endpoints; they never throw. */
    delete ends;
}
