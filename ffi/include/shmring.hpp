/// @file shmring.hpp
/// @brief C++17 wrapper of the shmring C ABI (`shmring.h`): header-only, no
/// dependency beyond the C library and the C++ standard library.
///
/// Link as for C (`-lshmring_c`, or `pkg-config --cflags --libs shmring`).
///
/// - **Ownership**: every handle of the C ABI is a move-only class whose
///   destructor calls its `_close`. A moved-from object holds no handle: its calls
///   throw `shmring::error` with `errc::invalid_argument`, never touch freed memory.
/// - **Messages**: every sending endpoint has the copying sends of
///   `shmring::sending` (`try_send`, `send`, `send` with a timeout) and the
///   readiness calls; every receiving one those of `shmring::receiving`. A
///   `shmring::msg_sender` / `shmring::msg_receiver` is a non-owning view of any of
///   them (`as_msg_sender()`, or the implicit conversion), for code that takes
///   "any sender"; a `shmring::connection` hands out both halves
///   (`connection::sender()`, `connection::receiver()`).
/// - **Bytes**: a pointer and a length, or any object with `.data()` and `.size()`
///   whose elements are trivially copyable (`std::string_view`, `std::string`,
///   `std::vector<T>`, `std::array<T, N>`; C++20 `std::span`). A string literal has
///   no `.data()`: wrap it in `std::string_view`.
/// - **Timeouts**: any `std::chrono::duration`, rounded up to whole milliseconds
///   (a negative one is 0: give up as soon as the call would wait). The overloads
///   without a timeout wait without limit.
/// - **Errors**: failures throw `shmring::error` (a `std::runtime_error` with the
///   status code, its `shmring_strerror` name and the `shmring_last_error_message`
///   details). The outcomes a caller expects are results, not exceptions: a
///   `try_` call on a full (empty) endpoint returns `false` (`std::nullopt`), a
///   call with a timeout that runs out returns `false` (`std::nullopt`).
///   `errc::disconnected` (the peer has gone) is an exception.
/// - **Zero copy**: `sender::grant` lends ring bytes as a `write_grant`,
///   `receiver::read` borrows a message as a `read_message`; on a strict
///   broadcast topic, `publisher::grant` and `subscriber::read` do the same
///   (`publish_grant`, `in_place_message`). All end explicitly
///   (`commit`/`abort`, `release`/`unread`), and on destruction a grant is
///   aborted (nothing published) and a read is unread (the message stays for the
///   next read), as the Rust API's drops do. A grant or read must end before its
///   endpoint is destroyed or moved into another object that is then destroyed.
/// - **Waiting on many**: a `shmring::wait_set` waits on receivers and senders of
///   every kind, plain descriptors and timers at once (`epoll` over their
///   readiness descriptors) and returns the indices of those that are ready.
/// - **Threads**: as in C: an endpoint or a shared value's writer is used by one
///   thread at a time; a channel, event, semaphore, shared value or RPC client by
///   several.
///
/// @code
/// #include <shmring.hpp>
///
/// auto channel = shmring::channel::create_memfd(1 << 16);
/// auto tx = channel.sender();
/// auto rx = channel.receiver();
/// tx.send(std::string_view("hello"));
/// std::vector<std::uint8_t> message = rx.recv();
/// if (auto n = rx.try_recv(buffer)) { ... }   // std::nullopt: empty now
/// @endcode
#ifndef SHMRING_HPP
#define SHMRING_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "shmring.h"

/// The C++ wrapper of the shmring C ABI.
namespace shmring {

/// A status code of the C ABI (`shmring_status`), as a scoped enum.
enum class errc : int {
    ok = SHMRING_OK,                                   ///< Success.
    invalid_argument = SHMRING_E_INVALID_ARGUMENT,     ///< A bad argument, or a moved-from handle.
    invalid_name = SHMRING_E_INVALID_NAME,             ///< A name that breaks the name rules.
    already_exists = SHMRING_E_ALREADY_EXISTS,         ///< The name is taken.
    not_found = SHMRING_E_NOT_FOUND,                   ///< Nothing of that name, or nobody listening.
    permission_denied = SHMRING_E_PERMISSION_DENIED,   ///< Refused by the system's permissions.
    incompatible_layout = SHMRING_E_INCOMPATIBLE_LAYOUT, ///< Another kind or layout version.
    corrupted = SHMRING_E_CORRUPTED,                   ///< The shared memory breaks the protocol.
    message_too_large = SHMRING_E_MESSAGE_TOO_LARGE,   ///< Over the endpoint's largest message.
    buffer_too_small = SHMRING_E_BUFFER_TOO_SMALL,     ///< The message does not fit the buffer.
    full = SHMRING_E_FULL,                             ///< No room now.
    empty = SHMRING_E_EMPTY,                           ///< Nothing there now.
    disconnected = SHMRING_E_DISCONNECTED,             ///< The peer has gone.
    timed_out = SHMRING_E_TIMED_OUT,                   ///< The timeout ran out.
    role_taken = SHMRING_E_ROLE_TAKEN,                 ///< Another live endpoint holds the role.
    no_space = SHMRING_E_NO_SPACE,                     ///< Out of memory or a system limit.
    busy = SHMRING_E_BUSY,                             ///< A grant or read is outstanding; a lock held.
    unsupported = SHMRING_E_UNSUPPORTED,               ///< Not possible here.
    io = SHMRING_E_IO,                                 ///< Another system error.
    panic = SHMRING_E_PANIC,                           ///< A bug in the library (the handle is poisoned).
    invalid_capacity = SHMRING_E_INVALID_CAPACITY,     ///< A bad capacity or shape.
    untrusted = SHMRING_E_UNTRUSTED,                   ///< An object of an untrusted owner or mode.
    bad_size = SHMRING_E_BAD_SIZE,                     ///< An object of the wrong size.
    not_borrowed = SHMRING_E_NOT_BORROWED,             ///< No grant, read or lock outstanding.
    unknown = SHMRING_E_UNKNOWN,                       ///< An unknown failure.
    table_full = SHMRING_E_TABLE_FULL,                 ///< The MPMC endpoint table is full.
    remote = SHMRING_E_REMOTE,                         ///< The RPC server's handler failed.
    handshake = SHMRING_E_HANDSHAKE,                   ///< A connection handshake failed.
    lagged = SHMRING_E_LAGGED,                         ///< A subscriber was lapped (`lagged_error`).
    no_value = SHMRING_E_NO_VALUE,                     ///< A shared value never written.
    writer_died = SHMRING_E_WRITER_DIED,               ///< A shared value's writer died mid-write.
    value_busy = SHMRING_E_VALUE_BUSY,                 ///< Every read of a shared value overlapped a write.
    owner_died = SHMRING_E_OWNER_DIED,                 ///< A shared mutex's holder died (the lock is held).
    already_locked = SHMRING_E_ALREADY_LOCKED,         ///< The shared mutex handle holds the lock already.
};

/// @brief A failed call of the C ABI: its status code, the code's name
/// (`shmring_strerror`) and the details the library gave
/// (`shmring_last_error_message`).
///
/// `what()` is `"<name>: <details>"` (just the name when there are no details).
class error : public std::runtime_error {
public:
    /// @brief The error of a call that just returned `code`, with the calling
    /// thread's last error message (read now: construct it before any other
    /// shmring call on this thread).
    /// @param code a negative status code.
    explicit error(int code)
        : error(code, std::string(::shmring_last_error_message())) {}

    /// @brief An error of the wrapper itself, with `code` and `details`.
    error(errc code, std::string details) : error(static_cast<int>(code), std::move(details)) {}

    /// @brief The status code.
    errc code() const noexcept { return static_cast<errc>(code_); }

    /// @brief The status code as the C ABI's `int`.
    int value() const noexcept { return code_; }

    /// @brief The code's static description (`shmring_strerror`), e.g. `"the peer has gone"`.
    const char *name() const noexcept { return ::shmring_strerror(code_); }

    /// @brief The details of the failure (`shmring_last_error_message` when the
    /// error was made); may be empty.
    const std::string &details() const noexcept { return details_; }

private:
    error(int code, std::string details)
        : std::runtime_error(details.empty()
                                 ? std::string(::shmring_strerror(code))
                                 : std::string(::shmring_strerror(code)) + ": " + details),
          code_(code), details_(std::move(details)) {}

    int code_;
    std::string details_;
};

/// @brief A broadcast subscriber was lapped: the publisher overwrote `missed()`
/// messages it had not read. The next receive returns the oldest message still
/// held.
class lagged_error : public error {
public:
    /// @brief The error of a receive that returned `SHMRING_E_LAGGED` with
    /// `missed` in its `out_len`.
    explicit lagged_error(std::uint64_t missed)
        : error(SHMRING_E_LAGGED), missed_(missed) {}
    /// @brief How many messages were overwritten unread.
    std::uint64_t missed() const noexcept { return missed_; }

private:
    std::uint64_t missed_;
};

/// @brief A typed receive (`recv_value<T>`) got a message whose length is not
/// `sizeof(T)`: the peer sent something other than a `T`. The message was
/// consumed; the next receive gets the next one. Its code is `errc::bad_size`.
class value_error : public error {
public:
    /// @brief A message of `len` bytes received as a value of `expected` bytes.
    value_error(std::size_t len, std::size_t expected)
        : error(errc::bad_size, "a message of " + std::to_string(len) +
                                    " bytes is not the value type (" +
                                    std::to_string(expected) + " bytes)"),
          len_(len), expected_(expected) {}
    /// @brief The length of the message received.
    std::size_t len() const noexcept { return len_; }
    /// @brief The length of the value type, `sizeof(T)`.
    std::size_t expected() const noexcept { return expected_; }

private:
    std::size_t len_;
    std::size_t expected_;
};

/// What an arm call found (`shmring_readiness`).
enum class readiness : int {
    ready = SHMRING_READY, ///< Possible now (or the peer has gone: the next call says which).
    armed = SHMRING_ARMED, ///< The readiness descriptor becomes readable when that may have changed.
};

/// How a readiness descriptor is woken (`shmring_wakeups`).
enum class wakeup_kind : std::uint32_t {
    doorbell = SHMRING_WAKEUPS_DOORBELL, ///< By the peer.
    polled = SHMRING_WAKEUPS_POLLED,     ///< Every 25 ms while armed.
};

/// How a readiness descriptor is woken, and why it is polled.
struct wakeups {
    wakeup_kind kind;   ///< Doorbell or polled.
    const char *reason; ///< Why it is polled (`""` for a doorbell); owned by the handle.
};

/// What a connection's messages travel on (`shmring_transport`).
enum class transport : std::uint32_t {
    shared_memory = SHMRING_TRANSPORT_SHARED_MEMORY, ///< Two rings in shared memory.
    unix_socket = SHMRING_TRANSPORT_UNIX_SOCKET,     ///< The Unix socket.
    tcp = SHMRING_TRANSPORT_TCP,                     ///< TCP.
};

/// Options of the channel and MPMC create and open calls; value-initialised
/// (`channel_options{}`) it holds every default.
using channel_options = ::shmring_channel_options;
/// Options of `conn_listener::bind`; value-initialised it holds every default.
using conn_listener_options = ::shmring_conn_listener_options;
/// Options of `connection::connect`; value-initialised it holds every default.
using connect_options = ::shmring_connect_options;
/// Options of the event, semaphore and shared value create and open calls;
/// value-initialised it holds every default.
using sync_options = ::shmring_sync_options;
/// The recovery statistics of an MPMC channel.
using mpmc_counters = ::shmring_mpmc_counters;
/// One message of `sender::try_send_batch`.
using message = ::shmring_message;

/// @brief The library's version, e.g. `"0.1.0"` (static).
inline const char *version() noexcept { return ::shmring_version(); }

/// @cond SHMRING_DETAIL
namespace detail {

static_assert(static_cast<int>(errc::handshake) == -27, "errc mirrors shmring_status");
static_assert(static_cast<int>(errc::lagged) == -28, "errc mirrors shmring_status");
static_assert(static_cast<int>(errc::value_busy) == -31, "errc mirrors shmring_status");
static_assert(static_cast<int>(errc::already_locked) == -33, "errc mirrors shmring_status");

/// Uses a must-use result that has nothing to report (GCC does not take a
/// `(void)` cast as a use).
inline void ignore(int) noexcept {}

/// Throws the error of `rc` if it is negative; returns it otherwise.
inline int check(int rc) {
    if (rc < 0) {
        throw error(rc);
    }
    return rc;
}

/// As `check`, for a receive: `SHMRING_E_LAGGED` throws `lagged_error` with the
/// count the call left in `n`.
inline int check_received(int rc, std::size_t n) {
    if (rc == SHMRING_E_LAGGED) {
        throw lagged_error(n);
    }
    return check(rc);
}

/// The C ABI's "without limit".
constexpr std::uint64_t forever = UINT64_MAX;

/// `d` in whole milliseconds, rounded up (a call never gives up early), at least 0
/// and below `forever`.
template <class Rep, class Period>
std::uint64_t timeout_ms(const std::chrono::duration<Rep, Period> &d) noexcept {
    const double ms = std::chrono::duration<double, std::milli>(d).count();
    if (!(ms > 0.0)) {
        return 0;
    }
    if (ms >= 1.8e19) {
        return forever - 1;
    }
    return static_cast<std::uint64_t>(std::ceil(ms));
}

template <class T>
using element_t = std::remove_pointer_t<decltype(std::declval<T &>().data())>;

/// Whether `R` has `.data()` (a pointer to trivially copyable elements) and
/// `.size()`.
template <class R, class = void>
struct is_bytes : std::false_type {};
template <class R>
struct is_bytes<R, std::void_t<decltype(std::declval<const R &>().data()),
                               decltype(std::declval<const R &>().size())>>
    : std::bool_constant<
          std::is_pointer_v<decltype(std::declval<const R &>().data())> &&
          std::is_trivially_copyable_v<element_t<const R>>> {};

/// As `is_bytes`, with elements that may be written.
template <class R, class = void>
struct is_mutable_bytes : std::false_type {};
template <class R>
struct is_mutable_bytes<R, std::void_t<decltype(std::declval<R &>().data()),
                                       decltype(std::declval<R &>().size())>>
    : std::bool_constant<std::is_pointer_v<decltype(std::declval<R &>().data())> &&
                         !std::is_const_v<element_t<R>> &&
                         std::is_trivially_copyable_v<element_t<R>>> {};

template <class R>
using if_bytes = std::enable_if_t<is_bytes<std::remove_reference_t<R>>::value, int>;
template <class R>
using if_mutable_bytes =
    std::enable_if_t<is_mutable_bytes<std::remove_reference_t<R>>::value, int>;

/// The size in bytes of a range's elements.
template <class R>
std::size_t byte_size(const R &r) noexcept {
    return static_cast<std::size_t>(r.size()) * sizeof(element_t<const R>);
}

/// An owned C handle: closed with `Close` on destruction or `reset`.
template <class T, int (*Close)(T *)>
class handle {
public:
    handle() noexcept = default;
    explicit handle(T *p) noexcept : p_(p) {}
    handle(handle &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    handle &operator=(handle &&o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    ~handle() { reset(); }

    void reset() noexcept {
        if (p_ != nullptr) {
            ignore(Close(std::exchange(p_, nullptr)));
        }
    }
    T *get() const noexcept { return p_; }

private:
    T *p_ = nullptr;
};

/// An owned endpoint handle with its message-family view (`AsView(handle)`, the
/// same handle), taken once: a send or receive then makes no extra call. Moves
/// take both pointers, leaving NULL behind.
template <class T, int (*Close)(T *), class View, View *(*AsView)(T *)>
class endpoint {
public:
    explicit endpoint(T *p) noexcept : h_(p), view_(AsView(p)) {}
    endpoint(endpoint &&o) noexcept
        : h_(std::move(o.h_)), view_(std::exchange(o.view_, nullptr)) {}
    endpoint &operator=(endpoint &&o) noexcept {
        if (this != &o) {
            h_ = std::move(o.h_);
            view_ = std::exchange(o.view_, nullptr);
        }
        return *this;
    }
    T *get() const noexcept { return h_.get(); }
    View *view() const noexcept { return view_; }

private:
    handle<T, Close> h_;
    View *view_;
};

/// Calls `make(&out)`, throws its error, returns the handle.
template <class T, class Make>
T *make(Make &&fn) {
    T *out = nullptr;
    check(fn(&out));
    return out;
}

/// An owned file descriptor: closed on destruction or `reset`; -1 holds none.
class owned_fd {
public:
    owned_fd() noexcept = default;
    explicit owned_fd(int fd) noexcept : fd_(fd) {}
    owned_fd(owned_fd &&o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    owned_fd &operator=(owned_fd &&o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    owned_fd(const owned_fd &) = delete;
    owned_fd &operator=(const owned_fd &) = delete;
    ~owned_fd() { reset(); }

    void reset() noexcept {
        if (fd_ >= 0) {
            ::close(std::exchange(fd_, -1));
        }
    }
    int get() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

/// The wrapper's error for a failed system call `call`: `errc::io`, with the
/// call and `errno`'s text.
inline error os_error(const char *call) {
    return error(errc::io, std::string(call) + ": " + std::strerror(errno));
}

} // namespace detail
/// @endcond

class msg_sender;
class msg_receiver;

/// @brief The copying sends and the sending readiness calls, shared by every
/// sending endpoint (`msg_sender`, `sender`, `mpmc_sender`, `transport_sender`).
///
/// `Endpoint` provides `native_msg_sender()`, the `shmring_msg_sender*` view of
/// its handle.
template <class Endpoint>
class sending {
public:
    /// @brief Sends `len` bytes at `data` as one message if there is room now;
    /// never blocks.
    /// @return `true` if sent (committed), `false` if the endpoint is full.
    /// @throws error `errc::disconnected` (the receiver has gone),
    /// `errc::message_too_large`, `errc::busy` (a grant outstanding), ...
    [[nodiscard]] bool try_send(const void *data, std::size_t len) {
        const int rc = ::shmring_msg_sender_try_send(raw(), data, len);
        if (rc == SHMRING_E_FULL) {
            return false;
        }
        detail::check(rc);
        return true;
    }

    /// @brief `try_send` of a range's bytes.
    template <class Bytes, detail::if_bytes<Bytes> = 0>
    [[nodiscard]] bool try_send(const Bytes &bytes) {
        return try_send(bytes.data(), detail::byte_size(bytes));
    }

    /// @brief Sends `len` bytes at `data` as one message, waiting for room as long
    /// as it takes.
    /// @throws error `errc::disconnected` as soon as the receiver goes while there
    /// is no room; `errc::message_too_large`, ...
    void send(const void *data, std::size_t len) {
        detail::check(::shmring_msg_sender_send(raw(), data, len));
    }

    /// @brief `send` of a range's bytes.
    template <class Bytes, detail::if_bytes<Bytes> = 0>
    void send(const Bytes &bytes) {
        send(bytes.data(), detail::byte_size(bytes));
    }

    /// @brief As `send`, giving up after `timeout`.
    /// @return `true` if sent, `false` if the timeout ran out.
    /// @throws error as `send`.
    template <class Rep, class Period>
    [[nodiscard]] bool send(const void *data, std::size_t len,
                            const std::chrono::duration<Rep, Period> &timeout) {
        const int rc = ::shmring_msg_sender_send_timeout(raw(), data, len,
                                                         detail::timeout_ms(timeout));
        if (rc == SHMRING_E_TIMED_OUT) {
            return false;
        }
        detail::check(rc);
        return true;
    }

    /// @brief `send` with a timeout, of a range's bytes.
    template <class Bytes, class Rep, class Period, detail::if_bytes<Bytes> = 0>
    [[nodiscard]] bool send(const Bytes &bytes,
                            const std::chrono::duration<Rep, Period> &timeout) {
        return send(bytes.data(), detail::byte_size(bytes), timeout);
    }

    /// @brief Sends the bytes of `value` (`sizeof(T)`) as one message if there is
    /// room now; never blocks. `T` must be trivially copyable; name its padding
    /// as fields and zero them, or the padding's indeterminate bytes are sent.
    /// @return `true` if sent, `false` if the endpoint is full.
    /// @throws error as `try_send`.
    template <class T>
    [[nodiscard]] bool try_send_value(const T &value) {
        static_assert(std::is_trivially_copyable_v<T>,
                      "send_value needs a trivially copyable type");
        return try_send(&value, sizeof(T));
    }

    /// @brief Sends the bytes of `value` as one message, waiting for room as long
    /// as it takes (as `try_send_value`).
    /// @throws error as `send`.
    template <class T>
    void send_value(const T &value) {
        static_assert(std::is_trivially_copyable_v<T>,
                      "send_value needs a trivially copyable type");
        send(&value, sizeof(T));
    }

    /// @brief As `send_value`, giving up after `timeout`.
    /// @return `true` if sent, `false` if the timeout ran out.
    /// @throws error as `send`.
    template <class T, class Rep, class Period>
    [[nodiscard]] bool send_value(const T &value,
                                  const std::chrono::duration<Rep, Period> &timeout) {
        static_assert(std::is_trivially_copyable_v<T>,
                      "send_value needs a trivially copyable type");
        return send(&value, sizeof(T), timeout);
    }

    /// @brief The largest message the endpoint carries.
    std::size_t max_message_len() const {
        std::size_t out = 0;
        detail::check(::shmring_msg_sender_max_message_len(raw(), &out));
        return out;
    }

    /// @brief The readiness descriptor for room (for `epoll`, `poll`, `select`):
    /// owned by the endpoint; never read or close it.
    /// @throws error `errc::unsupported` for an address-based transport's sender.
    int readiness_fd() const { return detail::check(::shmring_msg_sender_readiness_fd(raw())); }

    /// @brief Arms the readiness descriptor for room for a message of `len` bytes;
    /// never blocks.
    /// @return `readiness::ready` (send now) or `readiness::armed` (wait for the
    /// descriptor).
    /// @throws error `errc::message_too_large`, `errc::unsupported`, ...
    readiness arm_for_space(std::size_t len) {
        return static_cast<readiness>(
            detail::check(::shmring_msg_sender_arm_for_space(raw(), len)));
    }

    /// @brief How the readiness descriptor is woken.
    /// @throws error `errc::unsupported` (no descriptor).
    shmring::wakeups wakeups() const {
        ::shmring_wakeups kind = SHMRING_WAKEUPS_DOORBELL;
        const char *reason = nullptr;
        detail::check(::shmring_msg_sender_wakeups(raw(), &kind, &reason));
        return {static_cast<wakeup_kind>(kind), reason};
    }

private:
    ::shmring_msg_sender *raw() const noexcept {
        return static_cast<const Endpoint *>(this)->native_msg_sender();
    }
};

/// @brief The copying receives and the receiving readiness calls, shared by every
/// receiving endpoint (`msg_receiver`, `receiver`, `mpmc_receiver`,
/// `transport_receiver`).
///
/// A receive into a caller's buffer returns the message's length; one into a
/// `std::vector<std::uint8_t>` sizes the vector to the message (it is sized to
/// `max_message_len()` during the call: reuse one vector to allocate once).
/// `Endpoint` provides `native_msg_receiver()`.
template <class Endpoint>
class receiving {
public:
    /// @brief Copies the next message into `buf` and consumes it, if there is one
    /// now; never blocks.
    /// @return Its length, or `std::nullopt` if the endpoint is empty.
    /// @throws error `errc::disconnected` (empty and the sender gone),
    /// `errc::buffer_too_small` (nothing consumed on a shared-memory ring),
    /// `errc::busy` (a read outstanding), ...
    [[nodiscard]] std::optional<std::size_t> try_recv(void *buf, std::size_t len) {
        std::size_t n = 0;
        const int rc = ::shmring_msg_receiver_try_recv(raw(), buf, len, &n);
        if (rc == SHMRING_E_EMPTY) {
            return std::nullopt;
        }
        detail::check_received(rc, n);
        return n;
    }

    /// @brief `try_recv` into a range's bytes.
    template <class Buffer, detail::if_mutable_bytes<Buffer> = 0>
    [[nodiscard]] std::optional<std::size_t> try_recv(Buffer &&buf) {
        return try_recv(buf.data(), detail::byte_size(buf));
    }

    /// @brief Copies the next message into `buf` and consumes it, waiting for one
    /// as long as it takes.
    /// @return Its length.
    /// @throws error `errc::disconnected` as soon as the sender has gone and
    /// everything it sent was received; as `try_recv`.
    std::size_t recv(void *buf, std::size_t len) {
        std::size_t n = 0;
        const int rc = ::shmring_msg_receiver_recv(raw(), buf, len, &n);
        detail::check_received(rc, n);
        return n;
    }

    /// @brief `recv` into a range's bytes.
    template <class Buffer, detail::if_mutable_bytes<Buffer> = 0>
    std::size_t recv(Buffer &&buf) {
        return recv(buf.data(), detail::byte_size(buf));
    }

    /// @brief As `recv`, giving up after `timeout`.
    /// @return The message's length, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<std::size_t>
    recv(void *buf, std::size_t len, const std::chrono::duration<Rep, Period> &timeout) {
        std::size_t n = 0;
        const int rc = ::shmring_msg_receiver_recv_timeout(raw(), buf, len,
                                                           detail::timeout_ms(timeout), &n);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check_received(rc, n);
        return n;
    }

    /// @brief `recv` with a timeout, into a range's bytes.
    template <class Buffer, class Rep, class Period, detail::if_mutable_bytes<Buffer> = 0>
    [[nodiscard]] std::optional<std::size_t>
    recv(Buffer &&buf, const std::chrono::duration<Rep, Period> &timeout) {
        return recv(buf.data(), detail::byte_size(buf), timeout);
    }

    /// @brief The next message as a new vector, if there is one now.
    /// @return The message, or `std::nullopt` if the endpoint is empty.
    [[nodiscard]] std::optional<std::vector<std::uint8_t>> try_recv() {
        std::vector<std::uint8_t> out;
        if (!try_recv_into(out)) {
            return std::nullopt;
        }
        return out;
    }

    /// @brief The next message as a new vector, waiting as long as it takes.
    std::vector<std::uint8_t> recv() {
        std::vector<std::uint8_t> out;
        recv_into(out);
        return out;
    }

    /// @brief The next message as a new vector, waiting up to `timeout`.
    /// @return The message, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<std::vector<std::uint8_t>>
    recv(const std::chrono::duration<Rep, Period> &timeout) {
        std::vector<std::uint8_t> out;
        if (!recv_into(out, timeout)) {
            return std::nullopt;
        }
        return out;
    }

    /// @brief The next message into `out` (resized to it), if there is one now.
    /// @return `true` if received, `false` (and `out` empty) if the endpoint is
    /// empty.
    [[nodiscard]] bool try_recv_into(std::vector<std::uint8_t> &out) {
        return into(out, [&](void *buf, std::size_t len, std::size_t *n) {
            return ::shmring_msg_receiver_try_recv(raw(), buf, len, n);
        }, SHMRING_E_EMPTY);
    }

    /// @brief The next message into `out` (resized to it), waiting as long as it
    /// takes.
    void recv_into(std::vector<std::uint8_t> &out) {
        detail::ignore(into(out, [&](void *buf, std::size_t len, std::size_t *n) {
            return ::shmring_msg_receiver_recv(raw(), buf, len, n);
        }, SHMRING_OK));
    }

    /// @brief The next message into `out` (resized to it), waiting up to
    /// `timeout`.
    /// @return `true` if received, `false` (and `out` empty) if the timeout ran
    /// out.
    template <class Rep, class Period>
    [[nodiscard]] bool recv_into(std::vector<std::uint8_t> &out,
                                 const std::chrono::duration<Rep, Period> &timeout) {
        const std::uint64_t ms = detail::timeout_ms(timeout);
        return into(out, [&](void *buf, std::size_t len, std::size_t *n) {
            return ::shmring_msg_receiver_recv_timeout(raw(), buf, len, ms, n);
        }, SHMRING_E_TIMED_OUT);
    }

    /// @brief Receives the next message as a `T` (trivially copyable and default
    /// constructible), copied into the value's bytes, if there is one now.
    /// @return The value, or `std::nullopt` if the endpoint is empty.
    /// @throws value_error when the message's length is not `sizeof(T)` (it is
    /// consumed); error as `try_recv`.
    template <class T>
    [[nodiscard]] std::optional<T> try_recv_value() {
        static_assert(std::is_trivially_copyable_v<T>,
                      "recv_value needs a trivially copyable type");
        T value{};
        std::size_t n = 0;
        const int rc = ::shmring_msg_receiver_try_recv(raw(), &value, sizeof(T), &n);
        if (rc == SHMRING_E_EMPTY) {
            return std::nullopt;
        }
        exact(rc, n, &value, sizeof(T));
        return value;
    }

    /// @brief Receives the next message as a `T`, waiting as long as it takes.
    /// @throws value_error as `try_recv_value`; error as `recv`.
    template <class T>
    T recv_value() {
        static_assert(std::is_trivially_copyable_v<T>,
                      "recv_value needs a trivially copyable type");
        T value{};
        std::size_t n = 0;
        const int rc = ::shmring_msg_receiver_recv(raw(), &value, sizeof(T), &n);
        exact(rc, n, &value, sizeof(T));
        return value;
    }

    /// @brief As `recv_value`, giving up after `timeout`.
    /// @return The value, or `std::nullopt` if the timeout ran out.
    /// @throws value_error as `try_recv_value`; error as `recv`.
    template <class T, class Rep, class Period>
    [[nodiscard]] std::optional<T> recv_value(const std::chrono::duration<Rep, Period> &timeout) {
        static_assert(std::is_trivially_copyable_v<T>,
                      "recv_value needs a trivially copyable type");
        T value{};
        std::size_t n = 0;
        const int rc = ::shmring_msg_receiver_recv_timeout(raw(), &value, sizeof(T),
                                                           detail::timeout_ms(timeout), &n);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        exact(rc, n, &value, sizeof(T));
        return value;
    }

    /// @brief The largest message the endpoint carries.
    std::size_t max_message_len() const {
        std::size_t out = 0;
        detail::check(::shmring_msg_receiver_max_message_len(raw(), &out));
        return out;
    }

    /// @brief The readiness descriptor for messages (for `epoll`, `poll`,
    /// `select`): owned by the endpoint; never read or close it.
    /// @throws error `errc::unsupported` for an address-based transport's receiver.
    int readiness_fd() const {
        return detail::check(::shmring_msg_receiver_readiness_fd(raw()));
    }

    /// @brief Arms the readiness descriptor for a message; never blocks.
    /// @return `readiness::ready` (receive now) or `readiness::armed` (wait for the
    /// descriptor).
    readiness arm_for_message() {
        return static_cast<readiness>(
            detail::check(::shmring_msg_receiver_arm_for_message(raw())));
    }

    /// @brief How the readiness descriptor is woken.
    shmring::wakeups wakeups() const {
        ::shmring_wakeups kind = SHMRING_WAKEUPS_DOORBELL;
        const char *reason = nullptr;
        detail::check(::shmring_msg_receiver_wakeups(raw(), &kind, &reason));
        return {static_cast<wakeup_kind>(kind), reason};
    }

private:
    ::shmring_msg_receiver *raw() const noexcept {
        return static_cast<const Endpoint *>(this)->native_msg_receiver();
    }

    /// Checks that a typed receive (`rc`, `n`) got one message of exactly `size`
    /// bytes into `value`; else throws `value_error` (or the receive's error). A
    /// longer message, left where it was (`SHMRING_E_BUFFER_TOO_SMALL`), is taken
    /// out first by one non-blocking receive, so that a peer's wrong message
    /// costs one error; should that receive find a message of the right length
    /// (another MPMC receiver took the long one), it is the value.
    void exact(int rc, std::size_t n, void *value, std::size_t size) {
        if (rc == SHMRING_OK && n == size) {
            return;
        }
        if (rc == SHMRING_E_BUFFER_TOO_SMALL && n > size) {
            std::vector<std::uint8_t> whole(std::min(n, max_message_len()));
            std::size_t got = 0;
            if (::shmring_msg_receiver_try_recv(raw(), whole.data(), whole.size(), &got) ==
                SHMRING_OK) {
                if (got == size) {
                    std::memcpy(value, whole.data(), size);
                    return;
                }
                n = got;
            }
        } else if (rc != SHMRING_OK) {
            detail::check_received(rc, n);
        }
        throw value_error(n, size);
    }

    /// Receives with `call` into `out` sized to the largest message, then sizes
    /// it to the message; `expected` (empty, timed out) returns `false`.
    template <class Call>
    bool into(std::vector<std::uint8_t> &out, Call &&call, int expected) {
        out.resize(max_message_len());
        std::size_t n = 0;
        const int rc = call(out.data(), out.size(), &n);
        if (rc == SHMRING_OK) {
            out.resize(n);
            return true;
        }
        if (rc == expected) {
            out.clear();
            return false;
        }
        out.clear();
        detail::check_received(rc, n); // throws: rc is a failure
        return false;
    }
};

/// @brief A non-owning view of any sending endpoint (`shmring_msg_sender*`): the
/// copying sends and readiness calls. It must not outlive the endpoint.
class msg_sender : public sending<msg_sender> {
public:
    /// @brief A view of `raw` (not owned; NULL gives a view whose calls throw).
    explicit msg_sender(::shmring_msg_sender *raw) noexcept : raw_(raw) {}
    /// @brief The C handle viewed.
    ::shmring_msg_sender *native_msg_sender() const noexcept { return raw_; }

private:
    ::shmring_msg_sender *raw_;
};

/// @brief A non-owning view of any receiving endpoint (`shmring_msg_receiver*`):
/// the copying receives and readiness calls. It must not outlive the endpoint.
class msg_receiver : public receiving<msg_receiver> {
public:
    /// @brief A view of `raw` (not owned; NULL gives a view whose calls throw).
    explicit msg_receiver(::shmring_msg_receiver *raw) noexcept : raw_(raw) {}
    /// @brief The C handle viewed.
    ::shmring_msg_receiver *native_msg_receiver() const noexcept { return raw_; }

private:
    ::shmring_msg_receiver *raw_;
};

class sender;
class receiver;
class publisher;
class subscriber;

/// @cond SHMRING_DETAIL
namespace detail {

/// The C calls that end a grant of an endpoint handle `T`, and the endpoint class
/// that makes the grants (`owner`).
template <class T>
struct grant_calls;

template <>
struct grant_calls<::shmring_sender> {
    using owner = shmring::sender;
    static int commit(::shmring_sender *h, std::size_t len) noexcept {
        return ::shmring_sender_commit(h, len);
    }
    static int abort(::shmring_sender *h) noexcept { return ::shmring_sender_abort(h); }
    /// What a commit returns: nothing.
    static void committed(::shmring_sender *) noexcept {}
};

template <>
struct grant_calls<::shmring_publisher> {
    using owner = shmring::publisher;
    static int commit(::shmring_publisher *h, std::size_t len) noexcept {
        return ::shmring_publisher_commit(h, len);
    }
    static int abort(::shmring_publisher *h) noexcept { return ::shmring_publisher_abort(h); }
    /// What a commit returns: the subscribers joined (the C commit leaves it to
    /// `shmring_publisher_subscribers`).
    static std::uint32_t committed(::shmring_publisher *h) {
        std::uint32_t out = 0;
        check(::shmring_publisher_subscribers(h, &out));
        return out;
    }
};

/// The C calls that end a read of an endpoint handle `T`, and the endpoint class
/// that makes the reads (`owner`).
template <class T>
struct read_calls;

template <>
struct read_calls<::shmring_receiver> {
    using owner = shmring::receiver;
    static int release(::shmring_receiver *h) noexcept { return ::shmring_receiver_release(h); }
    static int unread(::shmring_receiver *h) noexcept { return ::shmring_receiver_unread(h); }
};

template <>
struct read_calls<::shmring_subscriber> {
    using owner = shmring::subscriber;
    static int release(::shmring_subscriber *h) noexcept {
        return ::shmring_subscriber_release(h);
    }
    static int unread(::shmring_subscriber *h) noexcept { return ::shmring_subscriber_unread(h); }
};

} // namespace detail
/// @endcond

/// @brief Ring bytes lent to write a message in place: by `sender::grant` (a
/// `write_grant`) or `publisher::grant` (a `publish_grant`).
///
/// `commit(len)` publishes the first `len` bytes as one message; `abort()`, or
/// destroying the grant, publishes nothing. Until it ends, other calls on its
/// endpoint throw `errc::busy`. It must end before its endpoint is destroyed.
/// @tparam Handle the endpoint's C handle (`shmring_sender`, `shmring_publisher`).
template <class Handle>
class basic_write_grant {
    using calls = detail::grant_calls<Handle>;

public:
    /// @brief Takes `o`'s grant (`o` then holds none).
    basic_write_grant(basic_write_grant &&o) noexcept
        : h_(std::exchange(o.h_, nullptr)), data_(o.data_), size_(o.size_) {}
    /// @brief Aborts this grant if outstanding, then takes `o`'s.
    basic_write_grant &operator=(basic_write_grant &&o) noexcept {
        if (this != &o) {
            abort();
            h_ = std::exchange(o.h_, nullptr);
            data_ = o.data_;
            size_ = o.size_;
        }
        return *this;
    }
    basic_write_grant(const basic_write_grant &) = delete;
    basic_write_grant &operator=(const basic_write_grant &) = delete;
    /// @brief Aborts the grant if it is still outstanding.
    ~basic_write_grant() { abort(); }

    /// @brief The lent bytes (8-byte aligned; they hold whatever was there).
    std::uint8_t *data() const noexcept { return data_; }
    /// @brief How many bytes are lent.
    std::size_t size() const noexcept { return size_; }
    /// @brief The first lent byte.
    std::uint8_t *begin() const noexcept { return data_; }
    /// @brief Past the last lent byte.
    std::uint8_t *end() const noexcept { return data_ + size_; }
    /// @brief Whether the grant is still outstanding.
    bool active() const noexcept { return h_ != nullptr; }

    /// @brief Publishes the first `len` bytes as one message; the grant ends.
    /// @return Nothing for a `write_grant`; for a `publish_grant`, the number of
    /// subscribers joined just after the commit (`std::uint32_t`, from
    /// `shmring_publisher_subscribers`: the message reached each live one).
    /// @throws error `errc::invalid_argument` if `len` exceeds `size()` (the grant
    /// stays outstanding), `errc::not_borrowed` if it has ended.
    auto commit(std::size_t len) {
        if (h_ == nullptr) {
            throw error(errc::not_borrowed, "the grant has ended");
        }
        detail::check(calls::commit(h_, len));
        return calls::committed(std::exchange(h_, nullptr));
    }

    /// @brief Publishes every lent byte as one message (as `commit(size())`).
    auto commit() { return commit(size_); }

    /// @brief Ends the grant without publishing anything (nothing if it has ended).
    void abort() noexcept {
        if (h_ != nullptr) {
            detail::ignore(calls::abort(std::exchange(h_, nullptr)));
        }
    }

private:
    friend typename calls::owner;
    basic_write_grant(Handle *h, std::uint8_t *data, std::size_t size) noexcept
        : h_(h), data_(data), size_(size) {}

    Handle *h_;
    std::uint8_t *data_;
    std::size_t size_;
};

/// @brief Ring bytes lent by `sender::grant`; `commit` returns nothing.
using write_grant = basic_write_grant<::shmring_sender>;
/// @brief Topic bytes lent by `publisher::grant` (strict topics); `commit`
/// returns the number of subscribers joined.
using publish_grant = basic_write_grant<::shmring_publisher>;

/// @brief A message borrowed in place: by `receiver::read` (a `read_message`) or
/// `subscriber::read` (an `in_place_message`).
///
/// `release()` consumes it; `unread()`, or destroying it, leaves it to be read
/// again. Until it ends, other calls on its endpoint throw `errc::busy`. It must
/// end before its endpoint is destroyed. A hostile sender could change the bytes
/// while you read them: copy before validating, if that matters.
/// @tparam Handle the endpoint's C handle (`shmring_receiver`,
/// `shmring_subscriber`).
template <class Handle>
class basic_read_message {
    using calls = detail::read_calls<Handle>;

public:
    /// @brief Takes `o`'s read (`o` then holds none).
    basic_read_message(basic_read_message &&o) noexcept
        : h_(std::exchange(o.h_, nullptr)), data_(o.data_), size_(o.size_) {}
    /// @brief Unreads this message if outstanding, then takes `o`'s.
    basic_read_message &operator=(basic_read_message &&o) noexcept {
        if (this != &o) {
            unread();
            h_ = std::exchange(o.h_, nullptr);
            data_ = o.data_;
            size_ = o.size_;
        }
        return *this;
    }
    basic_read_message(const basic_read_message &) = delete;
    basic_read_message &operator=(const basic_read_message &) = delete;
    /// @brief Unreads the message if it is still outstanding.
    ~basic_read_message() { unread(); }

    /// @brief The message's bytes.
    const std::uint8_t *data() const noexcept { return data_; }
    /// @brief Its length.
    std::size_t size() const noexcept { return size_; }
    /// @brief The first byte.
    const std::uint8_t *begin() const noexcept { return data_; }
    /// @brief Past the last byte.
    const std::uint8_t *end() const noexcept { return data_ + size_; }
    /// @brief Whether the read is still outstanding.
    bool active() const noexcept { return h_ != nullptr; }

    /// @brief Consumes the message (a receiver's: no later receiver sees it; a
    /// subscriber's: it moves past it, and the publisher may reuse its bytes);
    /// the read ends.
    /// @throws error `errc::not_borrowed` if it has ended.
    void release() {
        if (h_ == nullptr) {
            throw error(errc::not_borrowed, "the read has ended");
        }
        detail::check(calls::release(h_));
        h_ = nullptr;
    }

    /// @brief Ends the read without consuming the message (nothing if it has
    /// ended).
    void unread() noexcept {
        if (h_ != nullptr) {
            detail::ignore(calls::unread(std::exchange(h_, nullptr)));
        }
    }

private:
    friend typename calls::owner;
    basic_read_message(Handle *h, const std::uint8_t *data, std::size_t size) noexcept
        : h_(h), data_(data), size_(size) {}

    Handle *h_;
    const std::uint8_t *data_;
    std::size_t size_;
};

/// @brief A message borrowed by `receiver::read`.
using read_message = basic_read_message<::shmring_receiver>;
/// @brief A message of a strict topic borrowed by `subscriber::read`.
using in_place_message = basic_read_message<::shmring_subscriber>;

/// @brief The sending side of an SPSC channel (`shmring_sender`): the copying
/// sends of `sending`, zero-copy grants, batches and records.
class sender : public sending<sender> {
public:
    /// @brief Claims the sending side of a channel handle (`shmring_sender_new`).
    /// @throws error `errc::role_taken`, ...
    explicit sender(const ::shmring_channel *channel)
        : h_(detail::make<::shmring_sender>(
              [&](::shmring_sender **out) { return ::shmring_sender_new(channel, out); })) {}

    /// @brief Lends `len` bytes of the ring if there is room now; never blocks.
    /// @return The grant, or `std::nullopt` if the ring is full.
    /// @throws error `errc::disconnected`, `errc::message_too_large`,
    /// `errc::busy` (a grant outstanding), ...
    [[nodiscard]] std::optional<write_grant> try_grant(std::size_t len) {
        std::uint8_t *data = nullptr;
        const int rc = ::shmring_sender_try_grant(h_.get(), len, &data);
        if (rc == SHMRING_E_FULL) {
            return std::nullopt;
        }
        detail::check(rc);
        return write_grant(h_.get(), data, len);
    }

    /// @brief Lends `len` bytes of the ring, waiting for room as long as it takes.
    [[nodiscard]] write_grant grant(std::size_t len) {
        std::uint8_t *data = nullptr;
        detail::check(::shmring_sender_grant(h_.get(), len, &data));
        return write_grant(h_.get(), data, len);
    }

    /// @brief Lends `len` bytes of the ring, waiting up to `timeout` for room.
    /// @return The grant, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<write_grant>
    grant(std::size_t len, const std::chrono::duration<Rep, Period> &timeout) {
        std::uint8_t *data = nullptr;
        const int rc = ::shmring_sender_grant_timeout(h_.get(), len,
                                                      detail::timeout_ms(timeout), &data);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check(rc);
        return write_grant(h_.get(), data, len);
    }

    /// @brief Sends as many of `count` messages as fit now, published together;
    /// never blocks.
    /// @return How many were sent (the first ones; fewer than `count` when full).
    /// @throws error `errc::disconnected` (none fitted and the receiver gone),
    /// `errc::message_too_large` (for the message at the returned index; those
    /// before it were sent), ...
    std::size_t try_send_batch(const message *messages, std::size_t count) {
        std::size_t sent = 0;
        const int rc = ::shmring_sender_try_send_batch(h_.get(), messages, count, &sent);
        if (rc != SHMRING_E_FULL) {
            detail::check(rc);
        }
        return sent;
    }

    /// @brief `try_send_batch` of a range of `shmring::message`.
    template <class Messages,
              std::enable_if_t<std::is_same_v<std::remove_cv_t<detail::element_t<const Messages>>,
                                              message>,
                               int> = 0>
    std::size_t try_send_batch(const Messages &messages) {
        return try_send_batch(messages.data(), static_cast<std::size_t>(messages.size()));
    }

    /// @brief Sends as many of the records of a range as fit now, each as a
    /// message of `sizeof` one element, published together (packed: the way to
    /// stream an array of fixed-size structs); never blocks.
    /// @return How many were sent (the first ones).
    /// @throws error `errc::disconnected` (full and the receiver gone),
    /// `errc::message_too_large` (a record over the largest message), ...
    template <class Records, detail::if_bytes<Records> = 0>
    std::size_t try_send_records(const Records &records) {
        using T = detail::element_t<const Records>;
        std::size_t sent = 0;
        const int rc = ::shmring_sender_try_send_records(
            h_.get(), records.data(), sizeof(T), static_cast<std::size_t>(records.size()),
            &sent);
        if (rc != SHMRING_E_FULL) {
            detail::check(rc);
        }
        return sent;
    }

    /// @brief Whether a receiver holds the other end now (a snapshot).
    bool is_receiver_connected() {
        bool out = false;
        detail::check(::shmring_sender_is_receiver_connected(h_.get(), &out));
        return out;
    }

    /// @brief A view of this sender for code that takes any sender.
    msg_sender as_msg_sender() const noexcept { return msg_sender(native_msg_sender()); }
    /// @brief As `as_msg_sender()`.
    operator msg_sender() const noexcept { return as_msg_sender(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_sender *native_handle() const noexcept { return h_.get(); }
    /// @brief The C handle's `shmring_msg_sender*` view.
    ::shmring_msg_sender *native_msg_sender() const noexcept {
        return h_.view();
    }

private:
    detail::endpoint<::shmring_sender, ::shmring_sender_close, ::shmring_msg_sender,
                     ::shmring_sender_as_msg_sender>
        h_;
};

/// @brief The receiving side of an SPSC channel (`shmring_receiver`): the copying
/// receives of `receiving`, zero-copy reads and batches.
class receiver : public receiving<receiver> {
public:
    /// @brief Claims the receiving side of a channel handle
    /// (`shmring_receiver_new`).
    /// @throws error `errc::role_taken`, ...
    explicit receiver(const ::shmring_channel *channel)
        : h_(detail::make<::shmring_receiver>(
              [&](::shmring_receiver **out) { return ::shmring_receiver_new(channel, out); })) {}

    /// @brief Borrows the next message in place, if there is one now.
    /// @return The message, or `std::nullopt` if the ring is empty.
    /// @throws error `errc::disconnected`, `errc::busy` (a read outstanding), ...
    [[nodiscard]] std::optional<read_message> try_read() {
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        const int rc = ::shmring_receiver_try_read(h_.get(), &data, &len);
        if (rc == SHMRING_E_EMPTY) {
            return std::nullopt;
        }
        detail::check(rc);
        return read_message(h_.get(), data, len);
    }

    /// @brief Borrows the next message in place, waiting as long as it takes.
    [[nodiscard]] read_message read() {
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        detail::check(::shmring_receiver_read(h_.get(), &data, &len));
        return read_message(h_.get(), data, len);
    }

    /// @brief Borrows the next message in place, waiting up to `timeout`.
    /// @return The message, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<read_message>
    read(const std::chrono::duration<Rep, Period> &timeout) {
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        const int rc = ::shmring_receiver_read_timeout(h_.get(), detail::timeout_ms(timeout),
                                                       &data, &len);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check(rc);
        return read_message(h_.get(), data, len);
    }

    /// @brief Reads up to `max` messages in place, calling
    /// `f(const std::uint8_t *data, std::size_t len)` on each in order, then
    /// consumes them all at once; never blocks.
    ///
    /// If `f` throws, it is not called again for the rest of the batch, the whole
    /// batch is still consumed, and the exception is rethrown.
    /// @return How many messages were read: 0 if the ring is empty.
    /// @throws error `errc::disconnected` (empty and the sender gone), ...
    template <class F>
    std::size_t try_recv_batch(std::size_t max, F &&f) {
        struct context {
            std::remove_reference_t<F> *f;
            std::exception_ptr failure;
        } ctx{&f, nullptr};
        auto call = [](void *c, const std::uint8_t *data, std::size_t len) noexcept {
            auto *x = static_cast<context *>(c);
            if (x->failure) {
                return;
            }
            try {
                (*x->f)(data, len);
            } catch (...) {
                x->failure = std::current_exception();
            }
        };
        std::size_t count = 0;
        const int rc = ::shmring_receiver_try_recv_batch(h_.get(), max, call, &ctx, &count);
        if (ctx.failure) {
            std::rethrow_exception(ctx.failure);
        }
        if (rc == SHMRING_E_EMPTY) {
            return 0;
        }
        detail::check(rc);
        return count;
    }

    /// @brief Whether a sender holds the other end now (a snapshot).
    bool is_sender_connected() {
        bool out = false;
        detail::check(::shmring_receiver_is_sender_connected(h_.get(), &out));
        return out;
    }

    /// @brief A view of this receiver for code that takes any receiver.
    msg_receiver as_msg_receiver() const noexcept { return msg_receiver(native_msg_receiver()); }
    /// @brief As `as_msg_receiver()`.
    operator msg_receiver() const noexcept { return as_msg_receiver(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_receiver *native_handle() const noexcept { return h_.get(); }
    /// @brief The C handle's `shmring_msg_receiver*` view.
    ::shmring_msg_receiver *native_msg_receiver() const noexcept {
        return h_.view();
    }

private:
    detail::endpoint<::shmring_receiver, ::shmring_receiver_close, ::shmring_msg_receiver,
                     ::shmring_receiver_as_msg_receiver>
        h_;
};

/// @brief An SPSC channel (`shmring_channel`): a mapped segment holding one ring.
/// Its endpoints keep the segment mapped on their own: the channel may be
/// destroyed before them.
class channel {
public:
    /// @brief Creates a channel in named shared memory, `/dev/shm/shmring.<name>`,
    /// of `capacity` bytes (a power of two, 64 B to 512 MiB).
    /// @throws error `errc::already_exists`, `errc::invalid_name`,
    /// `errc::invalid_capacity`, ...
    static channel create(const std::string &name, std::size_t capacity,
                          const channel_options &options = channel_options{}) {
        return channel(detail::make<::shmring_channel>([&](::shmring_channel **out) {
            return ::shmring_channel_create(name.c_str(), capacity, &options, out);
        }));
    }
    /// @brief Opens the channel `/dev/shm/shmring.<name>` and validates it.
    static channel open(const std::string &name,
                        const channel_options &options = channel_options{}) {
        return channel(detail::make<::shmring_channel>([&](::shmring_channel **out) {
            return ::shmring_channel_open(name.c_str(), &options, out);
        }));
    }
    /// @brief Creates a channel in a regular file at `path` (it persists).
    static channel create_file(const std::string &path, std::size_t capacity,
                               const channel_options &options = channel_options{}) {
        return channel(detail::make<::shmring_channel>([&](::shmring_channel **out) {
            return ::shmring_channel_create_file(path.c_str(), capacity, &options, out);
        }));
    }
    /// @brief Opens a channel file made by `create_file`.
    static channel open_file(const std::string &path,
                             const channel_options &options = channel_options{}) {
        return channel(detail::make<::shmring_channel>([&](::shmring_channel **out) {
            return ::shmring_channel_open_file(path.c_str(), &options, out);
        }));
    }
    /// @brief Creates a channel in an anonymous sealed memfd; hand `fd()` to
    /// another process, which opens it with `open_fd`.
    static channel create_memfd(std::size_t capacity,
                                const channel_options &options = channel_options{}) {
        return channel(detail::make<::shmring_channel>([&](::shmring_channel **out) {
            return ::shmring_channel_create_memfd(capacity, &options, out);
        }));
    }
    /// @brief Opens the channel behind the descriptor `fd` (duplicated: the caller
    /// keeps its own).
    static channel open_fd(int fd, const channel_options &options = channel_options{}) {
        return channel(detail::make<::shmring_channel>([&](::shmring_channel **out) {
            return ::shmring_channel_open_fd(fd, &options, out);
        }));
    }

    /// @brief Claims the sending side.
    shmring::sender sender() const { return shmring::sender(h_.get()); }
    /// @brief Claims the receiving side.
    shmring::receiver receiver() const { return shmring::receiver(h_.get()); }

    /// @brief The channel's descriptor (the channel's own, close-on-exec: never
    /// close it).
    int fd() const {
        int out = -1;
        detail::check(::shmring_channel_fd(h_.get(), &out));
        return out;
    }
    /// @brief The capacity in bytes.
    std::size_t capacity() const {
        std::size_t out = 0;
        detail::check(::shmring_channel_capacity(h_.get(), &out));
        return out;
    }
    /// @brief The largest message (`capacity / 2 - 8`).
    std::size_t max_message_len() const {
        std::size_t out = 0;
        detail::check(::shmring_channel_max_message_len(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_channel *native_handle() const noexcept { return h_.get(); }

private:
    explicit channel(::shmring_channel *p) noexcept : h_(p) {}
    detail::handle<::shmring_channel, ::shmring_channel_close> h_;
};

/// @brief A sender attached to an MPMC channel (`shmring_mpmc_sender`).
class mpmc_sender : public sending<mpmc_sender> {
public:
    /// @brief Attaches a sender to an MPMC channel handle.
    /// @throws error `errc::table_full`, ...
    explicit mpmc_sender(const ::shmring_mpmc *ch)
        : h_(detail::make<::shmring_mpmc_sender>([&](::shmring_mpmc_sender **out) {
              return ::shmring_mpmc_sender_new(ch, out);
          })) {}
    /// @brief A view of this sender for code that takes any sender.
    msg_sender as_msg_sender() const noexcept { return msg_sender(native_msg_sender()); }
    /// @brief As `as_msg_sender()`.
    operator msg_sender() const noexcept { return as_msg_sender(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_mpmc_sender *native_handle() const noexcept { return h_.get(); }
    /// @brief The C handle's `shmring_msg_sender*` view.
    ::shmring_msg_sender *native_msg_sender() const noexcept {
        return h_.view();
    }

private:
    detail::endpoint<::shmring_mpmc_sender, ::shmring_mpmc_sender_close, ::shmring_msg_sender,
                     ::shmring_mpmc_sender_as_msg_sender>
        h_;
};

/// @brief A receiver attached to an MPMC channel (`shmring_mpmc_receiver`).
class mpmc_receiver : public receiving<mpmc_receiver> {
public:
    /// @brief Attaches a receiver to an MPMC channel handle.
    /// @throws error `errc::table_full`, ...
    explicit mpmc_receiver(const ::shmring_mpmc *ch)
        : h_(detail::make<::shmring_mpmc_receiver>([&](::shmring_mpmc_receiver **out) {
              return ::shmring_mpmc_receiver_new(ch, out);
          })) {}
    /// @brief A view of this receiver for code that takes any receiver.
    msg_receiver as_msg_receiver() const noexcept { return msg_receiver(native_msg_receiver()); }
    /// @brief As `as_msg_receiver()`.
    operator msg_receiver() const noexcept { return as_msg_receiver(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_mpmc_receiver *native_handle() const noexcept { return h_.get(); }
    /// @brief The C handle's `shmring_msg_receiver*` view.
    ::shmring_msg_receiver *native_msg_receiver() const noexcept {
        return h_.view();
    }

private:
    detail::endpoint<::shmring_mpmc_receiver, ::shmring_mpmc_receiver_close,
                     ::shmring_msg_receiver, ::shmring_mpmc_receiver_as_msg_receiver>
        h_;
};

/// @brief An MPMC channel (`shmring_mpmc`): `slots` slots of up to `slot_size`
/// bytes, any number of senders and receivers (up to its endpoint table).
class mpmc {
public:
    /// @brief Creates an MPMC channel in named shared memory.
    /// @param name the segment's name (`/dev/shm/shmring.<name>`).
    /// @param slots a power of two from 2 to 2^24.
    /// @param slot_size the largest message, 1 B to 16 MiB.
    /// @param endpoints how many endpoints may be attached at once, 1 to 1024.
    /// @param options the channel options.
    static mpmc create(const std::string &name, std::size_t slots, std::size_t slot_size,
                       std::size_t endpoints, const channel_options &options = channel_options{}) {
        return mpmc(detail::make<::shmring_mpmc>([&](::shmring_mpmc **out) {
            return ::shmring_mpmc_create(name.c_str(), slots, slot_size, endpoints, &options,
                                         out);
        }));
    }
    /// @brief Creates an MPMC channel in an anonymous sealed memfd (see `create`).
    static mpmc create_memfd(std::size_t slots, std::size_t slot_size, std::size_t endpoints,
                             const channel_options &options = channel_options{}) {
        return mpmc(detail::make<::shmring_mpmc>([&](::shmring_mpmc **out) {
            return ::shmring_mpmc_create_memfd(slots, slot_size, endpoints, &options, out);
        }));
    }
    /// @brief Opens the MPMC channel `/dev/shm/shmring.<name>` and validates it.
    static mpmc open(const std::string &name, const channel_options &options = channel_options{}) {
        return mpmc(detail::make<::shmring_mpmc>([&](::shmring_mpmc **out) {
            return ::shmring_mpmc_open(name.c_str(), &options, out);
        }));
    }
    /// @brief Opens the MPMC channel behind the descriptor `fd` (duplicated).
    static mpmc open_fd(int fd, const channel_options &options = channel_options{}) {
        return mpmc(detail::make<::shmring_mpmc>([&](::shmring_mpmc **out) {
            return ::shmring_mpmc_open_fd(fd, &options, out);
        }));
    }

    /// @brief Attaches a sender.
    mpmc_sender sender() const { return mpmc_sender(h_.get()); }
    /// @brief Attaches a receiver.
    mpmc_receiver receiver() const { return mpmc_receiver(h_.get()); }

    /// @brief The channel's descriptor (never close it).
    int fd() const {
        int out = -1;
        detail::check(::shmring_mpmc_fd(h_.get(), &out));
        return out;
    }
    /// @brief The largest message (the slot size).
    std::size_t max_message_len() const {
        std::size_t out = 0;
        detail::check(::shmring_mpmc_max_message_len(h_.get(), &out));
        return out;
    }
    /// @brief The recovery statistics (a snapshot).
    mpmc_counters stats() const {
        mpmc_counters out{};
        detail::check(::shmring_mpmc_stats(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_mpmc *native_handle() const noexcept { return h_.get(); }

private:
    explicit mpmc(::shmring_mpmc *p) noexcept : h_(p) {}
    detail::handle<::shmring_mpmc, ::shmring_mpmc_close> h_;
};

/// The shape of a new broadcast topic; value-initialised it is all zeros: use
/// `topic_config_defaults()`.
using topic_config = ::shmring_topic_config;

/// @brief The defaults of a new topic: 64 KiB, lossy, 16 subscriber slots, cut-off
/// after 1000 ms (for gated topics).
inline topic_config topic_config_defaults() {
    topic_config config{};
    detail::check(::shmring_topic_config_init(&config));
    return config;
}

/// @brief The one publisher of a broadcast topic (`shmring_publisher`); sends
/// reach every subscriber. On a gated or strict topic, `readiness_fd()` and
/// `arm_for_space()` (from `sending`) wait for room a subscriber holds back.
class publisher : public sending<publisher> {
public:
    /// @brief Claims the topic's publisher.
    /// @throws error `errc::role_taken`, ...
    explicit publisher(const ::shmring_topic *topic)
        : h_(detail::make<::shmring_publisher>([&](::shmring_publisher **out) {
              return ::shmring_publisher_new(topic, out);
          })) {}

    /// @brief Lends `len` bytes of a strict topic's data region to write a
    /// message in place, if there is room now; never blocks (but frees the slot of
    /// a dead subscriber that holds the publisher back).
    /// @return The grant, or `std::nullopt` if a live subscriber has not read what
    /// the message would overwrite.
    /// @throws error `errc::unsupported` (the topic is lossy or gated: their
    /// publisher may overwrite a message while it is read), `errc::busy` (a grant
    /// outstanding), `errc::message_too_large`, ...
    [[nodiscard]] std::optional<publish_grant> try_grant(std::size_t len) {
        std::uint8_t *data = nullptr;
        const int rc = ::shmring_publisher_try_grant(h_.get(), len, &data);
        if (rc == SHMRING_E_FULL) {
            return std::nullopt;
        }
        detail::check(rc);
        return publish_grant(h_.get(), data, len);
    }

    /// @brief Lends `len` bytes of a strict topic's data region, waiting for room
    /// as long as a live subscriber holds it (freeing dead subscribers' slots).
    /// @throws error as `try_grant`.
    [[nodiscard]] publish_grant grant(std::size_t len) {
        std::uint8_t *data = nullptr;
        detail::check(::shmring_publisher_grant(h_.get(), len, &data));
        return publish_grant(h_.get(), data, len);
    }

    /// @brief Lends `len` bytes of a strict topic's data region, waiting up to
    /// `timeout` for room.
    /// @return The grant, or `std::nullopt` if the timeout ran out.
    /// @throws error as `try_grant`.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<publish_grant>
    grant(std::size_t len, const std::chrono::duration<Rep, Period> &timeout) {
        std::uint8_t *data = nullptr;
        const int rc = ::shmring_publisher_grant_timeout(h_.get(), len,
                                                         detail::timeout_ms(timeout), &data);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check(rc);
        return publish_grant(h_.get(), data, len);
    }

    /// @brief How many subscribers are joined now.
    std::uint32_t subscribers() const {
        std::uint32_t out = 0;
        detail::check(::shmring_publisher_subscribers(h_.get(), &out));
        return out;
    }
    /// @brief A view of this publisher for code that takes any sender.
    msg_sender as_msg_sender() const noexcept { return msg_sender(native_msg_sender()); }
    /// @brief As `as_msg_sender()`.
    operator msg_sender() const noexcept { return as_msg_sender(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_publisher *native_handle() const noexcept { return h_.get(); }
    /// @brief The C handle's `shmring_msg_sender*` view.
    ::shmring_msg_sender *native_msg_sender() const noexcept { return h_.view(); }

private:
    detail::endpoint<::shmring_publisher, ::shmring_publisher_close, ::shmring_msg_sender,
                     ::shmring_publisher_as_msg_sender>
        h_;
};

/// Where a new subscriber starts (`shmring_start`).
enum class start : std::uint32_t {
    newest = SHMRING_START_NEWEST, ///< With the next message published.
    oldest = SHMRING_START_OLDEST, ///< With the oldest message the topic holds.
};

/// @brief A subscriber of a broadcast topic (`shmring_subscriber`). A receive that
/// finds it lapped throws `lagged_error` (with the count); the next returns the
/// oldest message still held.
class subscriber : public receiving<subscriber> {
public:
    /// @brief Joins the topic in a free slot.
    /// @throws error `errc::table_full`, ...
    subscriber(const ::shmring_topic *topic, start from)
        : h_(detail::make<::shmring_subscriber>([&](::shmring_subscriber **out) {
              return ::shmring_subscriber_new(topic, static_cast<std::uint32_t>(from), out);
          })) {}

    /// @brief Borrows the next message of a strict topic in place, if there is
    /// one now; never blocks. The publisher does not overwrite it until it ends.
    /// @return The message, or `std::nullopt` if there is none.
    /// @throws error `errc::unsupported` (the topic is lossy or gated: their
    /// publisher may overwrite a message while it is read), `errc::busy` (a read
    /// outstanding), `errc::disconnected`, ...; `lagged_error` as a receive
    /// does (a strict topic never laps a subscriber).
    [[nodiscard]] std::optional<in_place_message> try_read() {
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        const int rc = ::shmring_subscriber_try_read(h_.get(), &data, &len);
        if (rc == SHMRING_E_EMPTY) {
            return std::nullopt;
        }
        detail::check_received(rc, len);
        return in_place_message(h_.get(), data, len);
    }

    /// @brief Borrows the next message of a strict topic in place, waiting as
    /// long as it takes.
    /// @throws error as `try_read`.
    [[nodiscard]] in_place_message read() {
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        detail::check_received(::shmring_subscriber_read(h_.get(), &data, &len), len);
        return in_place_message(h_.get(), data, len);
    }

    /// @brief Borrows the next message of a strict topic in place, waiting up to
    /// `timeout`.
    /// @return The message, or `std::nullopt` if the timeout ran out.
    /// @throws error as `try_read`.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<in_place_message>
    read(const std::chrono::duration<Rep, Period> &timeout) {
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        const int rc = ::shmring_subscriber_read_timeout(h_.get(), detail::timeout_ms(timeout),
                                                         &data, &len);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check_received(rc, len);
        return in_place_message(h_.get(), data, len);
    }

    /// @brief The sequence number of the next message it will read (from 1).
    std::uint64_t next_seq() const {
        std::uint64_t out = 0;
        detail::check(::shmring_subscriber_next_seq(h_.get(), &out));
        return out;
    }
    /// @brief A view of this subscriber for code that takes any receiver.
    msg_receiver as_msg_receiver() const noexcept { return msg_receiver(native_msg_receiver()); }
    /// @brief As `as_msg_receiver()`.
    operator msg_receiver() const noexcept { return as_msg_receiver(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_subscriber *native_handle() const noexcept { return h_.get(); }
    /// @brief The C handle's `shmring_msg_receiver*` view.
    ::shmring_msg_receiver *native_msg_receiver() const noexcept { return h_.view(); }

private:
    detail::endpoint<::shmring_subscriber, ::shmring_subscriber_close, ::shmring_msg_receiver,
                     ::shmring_subscriber_as_msg_receiver>
        h_;
};

/// @brief A broadcast topic (`shmring_topic`): one publisher, many subscribers,
/// each of which sees every message.
class topic {
public:
    /// @brief Creates a topic in named shared memory (`/dev/shm/shmring.<name>` and
    /// `<name>.subs`).
    static topic create(const std::string &name, const topic_config &config = topic_config_defaults(),
                        const channel_options &options = channel_options{}) {
        return topic(detail::make<::shmring_topic>([&](::shmring_topic **out) {
            return ::shmring_topic_create(name.c_str(), &config, &options, out);
        }));
    }
    /// @brief Creates a topic in two anonymous memfds (the data sealed against
    /// writes by any other mapping).
    static topic create_memfd(const topic_config &config = topic_config_defaults(),
                              const channel_options &options = channel_options{}) {
        return topic(detail::make<::shmring_topic>([&](::shmring_topic **out) {
            return ::shmring_topic_create_memfd(&config, &options, out);
        }));
    }
    /// @brief Opens the topic `name`.
    static topic open(const std::string &name, const channel_options &options = channel_options{}) {
        return topic(detail::make<::shmring_topic>([&](::shmring_topic **out) {
            return ::shmring_topic_open(name.c_str(), &options, out);
        }));
    }
    /// @brief Opens the topic behind its two descriptors (duplicated).
    static topic open_fds(int data_fd, int table_fd,
                          const channel_options &options = channel_options{}) {
        return topic(detail::make<::shmring_topic>([&](::shmring_topic **out) {
            return ::shmring_topic_open_fds(data_fd, table_fd, &options, out);
        }));
    }

    /// @brief Claims the publisher.
    shmring::publisher publisher() const { return shmring::publisher(h_.get()); }
    /// @brief Joins as a subscriber starting at `from`.
    shmring::subscriber subscriber(start from = start::newest) const {
        return shmring::subscriber(h_.get(), from);
    }
    /// @brief The topic's shape.
    topic_config config() const {
        topic_config out{};
        detail::check(::shmring_topic_config_get(h_.get(), &out));
        return out;
    }
    /// @brief The two descriptors (data, table); never close them.
    std::pair<int, int> fds() const {
        int data = -1, table = -1;
        detail::check(::shmring_topic_fds(h_.get(), &data, &table));
        return {data, table};
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_topic *native_handle() const noexcept { return h_.get(); }

private:
    explicit topic(::shmring_topic *p) noexcept : h_(p) {}
    detail::handle<::shmring_topic, ::shmring_topic_close> h_;
};

/// @brief A duplex connection to one peer (`shmring_connection`), over shared
/// memory or a socket; its halves are `sender()` and `receiver()`.
class connection {
public:
    /// @brief Connects to the listener at `address` (a name, or
    /// `"tcp://host:port"`), waiting as long as it takes.
    /// @throws error `errc::not_found` (nobody listens), `errc::handshake`, ...
    static connection connect(const std::string &address,
                              const connect_options &options = connect_options{}) {
        return connect_ms(address, options, detail::forever);
    }
    /// @brief As `connect`, giving up after `timeout`.
    /// @throws error `errc::timed_out`; as `connect`.
    template <class Rep, class Period>
    static connection connect(const std::string &address,
                              const std::chrono::duration<Rep, Period> &timeout,
                              const connect_options &options = connect_options{}) {
        return connect_ms(address, options, detail::timeout_ms(timeout));
    }

    /// @brief The sending half (a view: it must not outlive the connection).
    msg_sender sender() const noexcept {
        return msg_sender(::shmring_connection_as_msg_sender(h_.get()));
    }
    /// @brief The receiving half (a view: it must not outlive the connection).
    msg_receiver receiver() const noexcept {
        return msg_receiver(::shmring_connection_as_msg_receiver(h_.get()));
    }
    /// @brief What the messages travel on.
    shmring::transport transport() const {
        ::shmring_transport out = SHMRING_TRANSPORT_SHARED_MEMORY;
        detail::check(::shmring_connection_transport(h_.get(), &out));
        return static_cast<shmring::transport>(out);
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_connection *native_handle() const noexcept { return h_.get(); }

private:
    friend class conn_listener;
    explicit connection(::shmring_connection *p) noexcept : h_(p) {}
    static connection connect_ms(const std::string &address, const connect_options &options,
                                 std::uint64_t ms) {
        return connection(detail::make<::shmring_connection>([&](::shmring_connection **out) {
            return ::shmring_connect(address.c_str(), &options, ms, out);
        }));
    }
    detail::handle<::shmring_connection, ::shmring_connection_close> h_;
};

/// @brief A bound connection listener (`shmring_conn_listener`): hands out a
/// `connection` per client; destroying it removes its socket file.
class conn_listener {
public:
    /// @brief Binds `address` (a name, or `"tcp://host:port"`) and listens.
    /// @throws error `errc::already_exists`, `errc::untrusted`, ...
    static conn_listener bind(const std::string &address,
                              const conn_listener_options &options = conn_listener_options{}) {
        return conn_listener(
            detail::make<::shmring_conn_listener>([&](::shmring_conn_listener **out) {
                return ::shmring_conn_listener_bind(address.c_str(), &options, out);
            }));
    }
    /// @brief Accepts the next client, waiting as long as it takes.
    connection accept() {
        return connection(detail::make<::shmring_connection>([&](::shmring_connection **out) {
            return ::shmring_conn_listener_accept(h_.get(), out);
        }));
    }
    /// @brief Accepts the next client, waiting up to `timeout`.
    /// @return The connection, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<connection>
    accept(const std::chrono::duration<Rep, Period> &timeout) {
        ::shmring_connection *out = nullptr;
        const int rc =
            ::shmring_conn_listener_accept_timeout(h_.get(), detail::timeout_ms(timeout), &out);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check(rc);
        return connection(out);
    }
    /// @brief Accepts a client waiting now.
    /// @return The connection, or `std::nullopt` if none is waiting.
    [[nodiscard]] std::optional<connection> try_accept() {
        ::shmring_connection *out = nullptr;
        const int rc = ::shmring_conn_listener_try_accept(h_.get(), &out);
        if (rc == SHMRING_E_EMPTY) {
            return std::nullopt;
        }
        detail::check(rc);
        return connection(out);
    }
    /// @brief The TCP port of a `tcp://` listener.
    /// @throws error `errc::invalid_argument` for a named listener.
    std::uint16_t port() const {
        std::uint16_t out = 0;
        detail::check(::shmring_conn_listener_port(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_conn_listener *native_handle() const noexcept { return h_.get(); }

private:
    explicit conn_listener(::shmring_conn_listener *p) noexcept : h_(p) {}
    detail::handle<::shmring_conn_listener, ::shmring_conn_listener_close> h_;
};

/// @brief A sender of an address-based transport (`shmring_connect_sender`), owned.
class transport_sender : public sending<transport_sender> {
public:
    /// @brief Opens a sender to the receiver at `address` (the forms of
    /// `listener::listen`), trying again while nobody receives there for up to
    /// `timeout` (zero: once).
    /// @throws error `errc::not_found` (zero timeout), `errc::timed_out`, ...
    template <class Rep, class Period>
    static transport_sender connect(const std::string &address,
                                    const std::chrono::duration<Rep, Period> &timeout) {
        return transport_sender(detail::make<::shmring_msg_sender>([&](::shmring_msg_sender **out) {
            return ::shmring_connect_sender(address.c_str(), detail::timeout_ms(timeout), out);
        }));
    }
    /// @brief A view of this sender for code that takes any sender.
    msg_sender as_msg_sender() const noexcept { return msg_sender(h_.get()); }
    /// @brief As `as_msg_sender()`.
    operator msg_sender() const noexcept { return as_msg_sender(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_msg_sender *native_msg_sender() const noexcept { return h_.get(); }

private:
    explicit transport_sender(::shmring_msg_sender *p) noexcept : h_(p) {}
    detail::handle<::shmring_msg_sender, ::shmring_msg_sender_close> h_;
};

/// @brief A receiver of an address-based transport (`listener::accept`), owned.
class transport_receiver : public receiving<transport_receiver> {
public:
    /// @brief A view of this receiver for code that takes any receiver.
    msg_receiver as_msg_receiver() const noexcept { return msg_receiver(h_.get()); }
    /// @brief As `as_msg_receiver()`.
    operator msg_receiver() const noexcept { return as_msg_receiver(); }
    /// @brief The C handle (still owned by this object).
    ::shmring_msg_receiver *native_msg_receiver() const noexcept { return h_.get(); }

private:
    friend class listener;
    explicit transport_receiver(::shmring_msg_receiver *p) noexcept : h_(p) {}
    detail::handle<::shmring_msg_receiver, ::shmring_msg_receiver_close> h_;
};

/// @brief Where an address-based transport receives (`shmring_listener`).
class listener {
public:
    /// @brief Starts receiving at `address` (`"unix:/path"`, `"seqpacket:/path"`,
    /// `"tcp://host:port"`, `"fifo:/path"`, `"mq:name"`, `"shm:name"`,
    /// `"file:/path"`).
    static listener listen(const std::string &address) {
        return listener(detail::make<::shmring_listener>([&](::shmring_listener **out) {
            return ::shmring_listen(address.c_str(), out);
        }));
    }
    /// @brief The address senders connect to (for `tcp://host:0`, with the port
    /// picked).
    std::string address() const {
        std::size_t len = 0;
        const int rc = ::shmring_listener_address(h_.get(), nullptr, 0, &len);
        if (rc != SHMRING_E_BUFFER_TOO_SMALL) {
            detail::check(rc);
        }
        std::string out(len + 1, '\0');
        detail::check(::shmring_listener_address(h_.get(), out.data(), out.size(), &len));
        out.resize(len);
        return out;
    }
    /// @brief The receiver for the next sender, waiting as long as it takes.
    transport_receiver accept() {
        return transport_receiver(
            detail::make<::shmring_msg_receiver>([&](::shmring_msg_receiver **out) {
                return ::shmring_listener_accept(h_.get(), detail::forever, out);
            }));
    }
    /// @brief The receiver for the next sender, waiting up to `timeout` (zero:
    /// only one there now).
    /// @return The receiver, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<transport_receiver>
    accept(const std::chrono::duration<Rep, Period> &timeout) {
        ::shmring_msg_receiver *out = nullptr;
        const int rc = ::shmring_listener_accept(h_.get(), detail::timeout_ms(timeout), &out);
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check(rc);
        return transport_receiver(out);
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_listener *native_handle() const noexcept { return h_.get(); }

private:
    explicit listener(::shmring_listener *p) noexcept : h_(p) {}
    detail::handle<::shmring_listener, ::shmring_listener_close> h_;
};

/// @brief A named event in shared memory (`shmring_event`). Thread-safe.
class event {
public:
    /// @brief Creates an event in named shared memory.
    static event create(const std::string &name, const sync_options &options = sync_options{}) {
        return event(detail::make<::shmring_event>([&](::shmring_event **out) {
            return ::shmring_event_create(name.c_str(), &options, out);
        }));
    }
    /// @brief Opens a named event and validates it.
    static event open(const std::string &name, const sync_options &options = sync_options{}) {
        return event(detail::make<::shmring_event>([&](::shmring_event **out) {
            return ::shmring_event_open(name.c_str(), &options, out);
        }));
    }
    /// @brief Creates an event in a regular file.
    static event create_file(const std::string &path,
                             const sync_options &options = sync_options{}) {
        return event(detail::make<::shmring_event>([&](::shmring_event **out) {
            return ::shmring_event_create_file(path.c_str(), &options, out);
        }));
    }
    /// @brief Opens an event file.
    static event open_file(const std::string &path, const sync_options &options = sync_options{}) {
        return event(detail::make<::shmring_event>([&](::shmring_event **out) {
            return ::shmring_event_open_file(path.c_str(), &options, out);
        }));
    }
    /// @brief Creates an event in an anonymous sealed memfd.
    static event create_memfd(const sync_options &options = sync_options{}) {
        return event(detail::make<::shmring_event>(
            [&](::shmring_event **out) { return ::shmring_event_create_memfd(&options, out); }));
    }
    /// @brief Opens the event behind the descriptor `fd` (duplicated).
    static event open_fd(int fd, const sync_options &options = sync_options{}) {
        return event(detail::make<::shmring_event>(
            [&](::shmring_event **out) { return ::shmring_event_open_fd(fd, &options, out); }));
    }

    /// @brief Wakes at least one waiter whose wait began before this call.
    void notify_one() const { detail::check(::shmring_event_notify_one(h_.get())); }
    /// @brief Wakes every waiter whose wait began before this call.
    void notify_all() const { detail::check(::shmring_event_notify_all(h_.get())); }
    /// @brief The event's sequence now, for `wait_from`.
    std::uint32_t prepare() const {
        std::uint32_t key = 0;
        detail::check(::shmring_event_prepare(h_.get(), &key));
        return key;
    }
    /// @brief Waits for the next notification.
    void wait() const { detail::check(::shmring_event_wait(h_.get())); }
    /// @brief Waits for the next notification, up to `timeout`.
    /// @return `false` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] bool wait(const std::chrono::duration<Rep, Period> &timeout) const {
        return timed(::shmring_event_wait_timeout(h_.get(), detail::timeout_ms(timeout)));
    }
    /// @brief Waits until a notification made after `key` was taken.
    void wait_from(std::uint32_t key) const {
        detail::check(::shmring_event_wait_from(h_.get(), key, detail::forever));
    }
    /// @brief As `wait_from(key)`, up to `timeout`.
    /// @return `false` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] bool wait_from(std::uint32_t key,
                                 const std::chrono::duration<Rep, Period> &timeout) const {
        return timed(::shmring_event_wait_from(h_.get(), key, detail::timeout_ms(timeout)));
    }
    /// @brief The event's descriptor (never close it).
    int fd() const {
        int out = -1;
        detail::check(::shmring_event_fd(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_event *native_handle() const noexcept { return h_.get(); }

private:
    explicit event(::shmring_event *p) noexcept : h_(p) {}
    static bool timed(int rc) {
        if (rc == SHMRING_E_TIMED_OUT) {
            return false;
        }
        detail::check(rc);
        return true;
    }
    detail::handle<::shmring_event, ::shmring_event_close> h_;
};

/// @brief A named counting semaphore in shared memory (`shmring_semaphore`).
/// Thread-safe.
class semaphore {
public:
    /// @brief Creates a semaphore in named shared memory with
    /// `options.initial_count` units, at most `options.max_count`.
    static semaphore create(const std::string &name,
                            const sync_options &options = sync_options{}) {
        return semaphore(detail::make<::shmring_semaphore>([&](::shmring_semaphore **out) {
            return ::shmring_semaphore_create(name.c_str(), &options, out);
        }));
    }
    /// @brief Opens a named semaphore and validates it.
    static semaphore open(const std::string &name, const sync_options &options = sync_options{}) {
        return semaphore(detail::make<::shmring_semaphore>([&](::shmring_semaphore **out) {
            return ::shmring_semaphore_open(name.c_str(), &options, out);
        }));
    }
    /// @brief Creates a semaphore in a regular file (the count persists).
    static semaphore create_file(const std::string &path,
                                 const sync_options &options = sync_options{}) {
        return semaphore(detail::make<::shmring_semaphore>([&](::shmring_semaphore **out) {
            return ::shmring_semaphore_create_file(path.c_str(), &options, out);
        }));
    }
    /// @brief Opens a semaphore file.
    static semaphore open_file(const std::string &path,
                               const sync_options &options = sync_options{}) {
        return semaphore(detail::make<::shmring_semaphore>([&](::shmring_semaphore **out) {
            return ::shmring_semaphore_open_file(path.c_str(), &options, out);
        }));
    }
    /// @brief Creates a semaphore in an anonymous sealed memfd.
    static semaphore create_memfd(const sync_options &options = sync_options{}) {
        return semaphore(detail::make<::shmring_semaphore>([&](::shmring_semaphore **out) {
            return ::shmring_semaphore_create_memfd(&options, out);
        }));
    }
    /// @brief Opens the semaphore behind the descriptor `fd` (duplicated).
    static semaphore open_fd(int fd, const sync_options &options = sync_options{}) {
        return semaphore(detail::make<::shmring_semaphore>([&](::shmring_semaphore **out) {
            return ::shmring_semaphore_open_fd(fd, &options, out);
        }));
    }

    /// @brief Adds one unit and wakes one waiter.
    /// @return `false` at the maximum count (nothing changed).
    [[nodiscard]] bool post() const {
        const int rc = ::shmring_semaphore_post(h_.get());
        if (rc == SHMRING_E_FULL) {
            return false;
        }
        detail::check(rc);
        return true;
    }
    /// @brief Takes one unit if there is one; never blocks.
    /// @return `false` at count zero.
    [[nodiscard]] bool try_wait() const {
        const int rc = ::shmring_semaphore_try_wait(h_.get());
        if (rc == SHMRING_E_EMPTY) {
            return false;
        }
        detail::check(rc);
        return true;
    }
    /// @brief Takes one unit, waiting as long as it takes.
    void wait() const { detail::check(::shmring_semaphore_wait(h_.get())); }
    /// @brief Takes one unit, waiting up to `timeout`.
    /// @return `false` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] bool wait(const std::chrono::duration<Rep, Period> &timeout) const {
        const int rc = ::shmring_semaphore_wait_timeout(h_.get(), detail::timeout_ms(timeout));
        if (rc == SHMRING_E_TIMED_OUT) {
            return false;
        }
        detail::check(rc);
        return true;
    }
    /// @brief The count now (a snapshot).
    std::uint32_t value() const {
        std::uint32_t out = 0;
        detail::check(::shmring_semaphore_value(h_.get(), &out));
        return out;
    }
    /// @brief The semaphore's descriptor (never close it).
    int fd() const {
        int out = -1;
        detail::check(::shmring_semaphore_fd(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_semaphore *native_handle() const noexcept { return h_.get(); }

private:
    explicit semaphore(::shmring_semaphore *p) noexcept : h_(p) {}
    detail::handle<::shmring_semaphore, ::shmring_semaphore_close> h_;
};

/// @brief A value read from a `shared_value`, with its version.
template <class T>
struct versioned {
    std::uint64_t version; ///< The version read (from 1).
    T value;               ///< The value.
};

class shared_value_writer;

/// @brief A value of fixed size published by one writer and read by any number
/// of processes (`shmring_shared_value`): a read copies it, never torn, with its
/// version. Thread-safe: several threads may read at once.
///
/// The outcome a reader expects, no value published yet, is `std::nullopt`; a
/// timeout that runs out too. A writer that died in the middle of a write
/// (`errc::writer_died`) and a value rewritten faster than it can be copied
/// (`errc::value_busy`: try again) throw.
class shared_value {
public:
    /// @brief Creates a value of `value_size` bytes (1 to
    /// `SHMRING_SHARED_VALUE_MAX_SIZE`) in named shared memory, never written.
    /// @throws error `errc::already_exists`, `errc::invalid_capacity`, ...
    static shared_value create(const std::string &name, std::size_t value_size,
                               const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_create(name.c_str(), value_size, &options, out);
        }));
    }
    /// @brief Opens a named value, whatever its size, and validates it.
    /// @throws error `errc::not_found`, `errc::incompatible_layout`, ...
    static shared_value open(const std::string &name, const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_open(name.c_str(), &options, out);
        }));
    }
    /// @brief Opens the named value, or creates it with `value_size` bytes, without
    /// a race.
    /// @throws error `errc::incompatible_layout` (another kind or size), ...
    static shared_value open_or_create(const std::string &name, std::size_t value_size,
                                       const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_open_or_create(name.c_str(), value_size, &options, out);
        }));
    }
    /// @brief Creates a value in a regular file (the last version persists).
    static shared_value create_file(const std::string &path, std::size_t value_size,
                                    const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_create_file(path.c_str(), value_size, &options, out);
        }));
    }
    /// @brief Opens a value file.
    static shared_value open_file(const std::string &path,
                                  const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_open_file(path.c_str(), &options, out);
        }));
    }
    /// @brief Opens the value file, or creates it with `value_size` bytes.
    static shared_value open_or_create_file(const std::string &path, std::size_t value_size,
                                            const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_open_or_create_file(path.c_str(), value_size, &options,
                                                             out);
        }));
    }
    /// @brief Creates a value in an anonymous sealed memfd (pass `fd()` on).
    static shared_value create_memfd(std::size_t value_size,
                                     const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_create_memfd(value_size, &options, out);
        }));
    }
    /// @brief Opens the value behind the descriptor `fd` (duplicated).
    static shared_value open_fd(int fd, const sync_options &options = sync_options{}) {
        return shared_value(detail::make<::shmring_shared_value>([&](::shmring_shared_value **out) {
            return ::shmring_shared_value_open_fd(fd, &options, out);
        }));
    }

    /// @brief The value's size in bytes.
    std::size_t size() const {
        std::size_t out = 0;
        detail::check(::shmring_shared_value_size(h_.get(), &out));
        return out;
    }
    /// @brief The value's descriptor (never close it).
    int fd() const {
        int out = -1;
        detail::check(::shmring_shared_value_fd(h_.get(), &out));
        return out;
    }

    /// @brief Copies the value published now into `buf` (at least `size()`
    /// bytes; the first `size()` are written). Never blocks.
    /// @return Its version, or `std::nullopt` if none has been published yet.
    /// @throws error `errc::writer_died`, `errc::value_busy`,
    /// `errc::buffer_too_small`, ...
    [[nodiscard]] std::optional<std::uint64_t> read(void *buf, std::size_t len) const {
        std::uint64_t version = 0;
        const int rc = ::shmring_shared_value_read(h_.get(), buf, len, &version);
        if (rc == SHMRING_E_NO_VALUE) {
            return std::nullopt;
        }
        detail::check(rc);
        return version;
    }
    /// @brief As `read`, into any range of trivially copyable elements.
    template <class Buffer, detail::if_mutable_bytes<Buffer> = 0>
    [[nodiscard]] std::optional<std::uint64_t> read(Buffer &&buf) const {
        return read(buf.data(), detail::byte_size(buf));
    }

    /// @brief Waits as long as it takes for a version above `after` (0: the
    /// first), then copies it into `buf` as `read` does.
    /// @return Its version.
    /// @throws error as `read`.
    std::uint64_t wait_for_version(std::uint64_t after, void *buf, std::size_t len) const {
        std::uint64_t version = 0;
        detail::check(::shmring_shared_value_wait_for_version(h_.get(), after, buf, len, &version,
                                                              detail::forever));
        return version;
    }
    /// @brief As `wait_for_version`, giving up after `timeout`.
    /// @return The version, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<std::uint64_t>
    wait_for_version(std::uint64_t after, void *buf, std::size_t len,
                     const std::chrono::duration<Rep, Period> &timeout) const {
        std::uint64_t version = 0;
        const int rc = ::shmring_shared_value_wait_for_version(h_.get(), after, buf, len, &version,
                                                               detail::timeout_ms(timeout));
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check(rc);
        return version;
    }

    /// @brief Reads the value as a `T` (trivially copyable, default
    /// constructible, `sizeof(T)` the value's size).
    /// @return The value and its version, or `std::nullopt` if none has been
    /// published yet.
    /// @throws error `errc::bad_size` (another size); as `read`.
    template <class T>
    [[nodiscard]] std::optional<versioned<T>> read_value() const {
        static_assert(std::is_trivially_copyable_v<T>,
                      "read_value needs a trivially copyable type");
        expect_size(sizeof(T));
        versioned<T> out{0, T{}};
        const std::optional<std::uint64_t> version = read(&out.value, sizeof(T));
        if (!version) {
            return std::nullopt;
        }
        out.version = *version;
        return out;
    }
    /// @brief Waits as long as it takes for a version above `after`, read as a
    /// `T` (as `read_value`).
    /// @throws error as `read_value`.
    template <class T>
    versioned<T> wait_for_value(std::uint64_t after) const {
        static_assert(std::is_trivially_copyable_v<T>,
                      "wait_for_value needs a trivially copyable type");
        expect_size(sizeof(T));
        versioned<T> out{0, T{}};
        out.version = wait_for_version(after, &out.value, sizeof(T));
        return out;
    }
    /// @brief As `wait_for_value`, giving up after `timeout`.
    /// @return The value and its version, or `std::nullopt` if the timeout ran out.
    template <class T, class Rep, class Period>
    [[nodiscard]] std::optional<versioned<T>>
    wait_for_value(std::uint64_t after, const std::chrono::duration<Rep, Period> &timeout) const {
        static_assert(std::is_trivially_copyable_v<T>,
                      "wait_for_value needs a trivially copyable type");
        expect_size(sizeof(T));
        versioned<T> out{0, T{}};
        const std::optional<std::uint64_t> version =
            wait_for_version(after, &out.value, sizeof(T), timeout);
        if (!version) {
            return std::nullopt;
        }
        out.version = *version;
        return out;
    }

    /// @brief Claims the writer role (`shared_value_writer`).
    /// @throws error `errc::role_taken` while a live writer holds it, ...
    shared_value_writer writer() const;

    /// @brief The C handle (still owned by this object).
    ::shmring_shared_value *native_handle() const noexcept { return h_.get(); }

private:
    explicit shared_value(::shmring_shared_value *p) noexcept : h_(p) {}

    /// Throws `errc::bad_size` unless the value holds `len` bytes.
    void expect_size(std::size_t len) const {
        const std::size_t have = size();
        if (have != len) {
            throw error(errc::bad_size, "a shared value of " + std::to_string(have) +
                                            " bytes read as a type of " + std::to_string(len) +
                                            " bytes");
        }
    }

    detail::handle<::shmring_shared_value, ::shmring_shared_value_close> h_;
};

/// @brief The writer of a `shared_value` (`shmring_shared_value_writer`): the one
/// handle, in any process, that publishes versions. Destroying it gives the role
/// back. Used by one thread at a time.
class shared_value_writer {
public:
    /// @brief Claims the writer role of `value` (which may be destroyed first).
    /// @throws error `errc::role_taken` while a live writer holds it, ...
    explicit shared_value_writer(const shared_value &value)
        : h_(detail::make<::shmring_shared_value_writer>([&](::shmring_shared_value_writer **out) {
              return ::shmring_shared_value_writer_new(value.native_handle(), out);
          })) {}

    /// @brief Publishes `len` bytes (exactly the value's size) as the next
    /// version. Never blocks.
    /// @return The version published.
    /// @throws error `errc::invalid_argument` (another length: nothing written).
    std::uint64_t write(const void *data, std::size_t len) {
        std::uint64_t version = 0;
        detail::check(::shmring_shared_value_writer_write(h_.get(), data, len, &version));
        return version;
    }
    /// @brief As `write`, from any range of trivially copyable elements.
    template <class Bytes, detail::if_bytes<Bytes> = 0>
    std::uint64_t write(const Bytes &bytes) {
        return write(bytes.data(), detail::byte_size(bytes));
    }
    /// @brief Publishes the bytes of `value` (trivially copyable, `sizeof(T)` the
    /// value's size; name its padding as fields and zero them).
    /// @return The version published.
    /// @throws error as `write`.
    template <class T>
    std::uint64_t write_value(const T &value) {
        static_assert(std::is_trivially_copyable_v<T>,
                      "write_value needs a trivially copyable type");
        return write(&value, sizeof(T));
    }
    /// @brief The version the next write publishes.
    std::uint64_t next_version() const {
        std::uint64_t out = 0;
        detail::check(::shmring_shared_value_writer_next_version(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_shared_value_writer *native_handle() const noexcept { return h_.get(); }

private:
    detail::handle<::shmring_shared_value_writer, ::shmring_shared_value_writer_close> h_;
};

inline shared_value_writer shared_value::writer() const { return shared_value_writer(*this); }

class shared_mutex;

/// @brief The lock of a `shared_mutex`, held (`shared_mutex::lock`,
/// `try_lock`): reads and writes the value, and unlocks when destroyed (or with
/// `unlock`). Move-only. It refers to its mutex's C handle without owning it:
/// destroy (or unlock) it before the `shared_mutex` (moving the mutex is fine).
///
/// `owner_died()` is the one thing to look at after locking: a holder died
/// holding the lock (SHMRING_E_OWNER_DIED), and the value may be half-updated.
/// Repair it and call `mark_consistent()`; without the mark every later locker
/// is told again.
class shared_mutex_guard {
public:
    /// @brief Takes over `other`'s lock (`other` then holds none).
    shared_mutex_guard(shared_mutex_guard &&other) noexcept
        : m_(std::exchange(other.m_, nullptr)), owner_died_(other.owner_died_) {}
    /// @brief Unlocks this guard's lock, if any, and takes over `other`'s.
    shared_mutex_guard &operator=(shared_mutex_guard &&other) noexcept {
        if (this != &other) {
            release();
            m_ = std::exchange(other.m_, nullptr);
            owner_died_ = other.owner_died_;
        }
        return *this;
    }
    shared_mutex_guard(const shared_mutex_guard &) = delete;
    shared_mutex_guard &operator=(const shared_mutex_guard &) = delete;
    ~shared_mutex_guard() { release(); }

    /// @brief Whether the lock came with SHMRING_E_OWNER_DIED: a holder died
    /// holding it (this lock took it over, or an earlier one did and nobody has
    /// marked the value consistent since). Cleared by `mark_consistent`.
    bool owner_died() const noexcept { return owner_died_; }
    /// @brief Marks the value consistent again (call once it is repaired):
    /// later lockers get a clean lock. Does not unlock.
    /// @throws error `errc::corrupted` (a peer wrote the lock word), ...
    void mark_consistent() {
        detail::check(::shmring_shared_mutex_mark_consistent(m_));
        owner_died_ = false;
    }
    /// @brief Copies the value into `buf` (at least the value's size).
    /// @throws error `errc::buffer_too_small`, ...
    void read(void *buf, std::size_t len) const {
        detail::check(::shmring_shared_mutex_read(m_, buf, len));
    }
    /// @brief Copies `len` bytes (exactly the value's size) into the value.
    /// @throws error `errc::invalid_argument` (another length: nothing written).
    void write(const void *data, std::size_t len) {
        detail::check(::shmring_shared_mutex_write(m_, data, len));
    }
    /// @brief The value as a `T` (trivially copyable, `sizeof(T)` the value's
    /// size).
    /// @throws error `errc::buffer_too_small` (a larger value), ...
    template <class T>
    T read_value() const {
        static_assert(std::is_trivially_copyable_v<T>,
                      "read_value needs a trivially copyable type");
        T out{};
        std::size_t size = 0;
        detail::check(::shmring_shared_mutex_size(m_, &size));
        if (size != sizeof(T)) {
            throw error(errc::bad_size, "a shared mutex's value of " + std::to_string(size) +
                                            " bytes read as a type of " +
                                            std::to_string(sizeof(T)) + " bytes");
        }
        read(&out, sizeof(T));
        return out;
    }
    /// @brief Writes the bytes of `value` (trivially copyable, `sizeof(T)` the
    /// value's size).
    /// @throws error as `write`.
    template <class T>
    void write_value(const T &value) {
        static_assert(std::is_trivially_copyable_v<T>,
                      "write_value needs a trivially copyable type");
        write(&value, sizeof(T));
    }
    /// @brief Unlocks now (the destructor then does nothing).
    /// @throws error `errc::corrupted` (a peer wrote the lock word; unlocked
    /// anyway), `errc::not_borrowed` (already unlocked).
    void unlock() {
        ::shmring_shared_mutex *m = std::exchange(m_, nullptr);
        if (m == nullptr) {
            throw error(errc::not_borrowed, "the guard was unlocked or moved from");
        }
        detail::check(::shmring_shared_mutex_unlock(m));
    }

private:
    friend class shared_mutex;
    shared_mutex_guard(::shmring_shared_mutex *m, bool owner_died) noexcept
        : m_(m), owner_died_(owner_died) {}
    void release() noexcept {
        if (m_ != nullptr) {
            detail::ignore(::shmring_shared_mutex_unlock(std::exchange(m_, nullptr)));
        }
    }
    ::shmring_shared_mutex *m_;
    bool owner_died_;
};

/// @brief A value of fixed size guarded by a robust lock shared between
/// processes (`shmring_shared_mutex`): a holder that dies does not keep it, the
/// next locker's guard says `owner_died()`. Used by one thread at a time
/// (threads open their own: the lock belongs to the handle). Each handle holds
/// one of the mutex's 16 slots (`errc::table_full` past that).
class shared_mutex {
public:
    /// @brief Creates a mutex over `value_size` zero bytes (1 to
    /// `SHMRING_SHARED_MUTEX_MAX_SIZE`) in named shared memory.
    /// @throws error `errc::already_exists`, `errc::invalid_capacity`, ...
    static shared_mutex create(const std::string &name, std::size_t value_size,
                               const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_create(name.c_str(), value_size, &options, out);
        }));
    }
    /// @brief Opens a named mutex, whatever its size, and validates it.
    /// @throws error `errc::not_found`, `errc::table_full`, ...
    static shared_mutex open(const std::string &name, const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_open(name.c_str(), &options, out);
        }));
    }
    /// @brief Opens the named mutex, or creates it over `value_size` bytes,
    /// without a race.
    /// @throws error `errc::incompatible_layout` (another kind or size), ...
    static shared_mutex open_or_create(const std::string &name, std::size_t value_size,
                                       const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_open_or_create(name.c_str(), value_size, &options, out);
        }));
    }
    /// @brief Creates a mutex in a regular file (the value persists).
    static shared_mutex create_file(const std::string &path, std::size_t value_size,
                                    const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_create_file(path.c_str(), value_size, &options, out);
        }));
    }
    /// @brief Opens a mutex file.
    static shared_mutex open_file(const std::string &path,
                                  const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_open_file(path.c_str(), &options, out);
        }));
    }
    /// @brief Opens the mutex file, or creates it over `value_size` bytes.
    static shared_mutex open_or_create_file(const std::string &path, std::size_t value_size,
                                            const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_open_or_create_file(path.c_str(), value_size, &options,
                                                             out);
        }));
    }
    /// @brief Creates a mutex in an anonymous sealed memfd (pass `fd()` on).
    static shared_mutex create_memfd(std::size_t value_size,
                                     const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_create_memfd(value_size, &options, out);
        }));
    }
    /// @brief Opens the mutex behind the descriptor `fd` (duplicated).
    static shared_mutex open_fd(int fd, const sync_options &options = sync_options{}) {
        return shared_mutex(detail::make<::shmring_shared_mutex>([&](::shmring_shared_mutex **out) {
            return ::shmring_shared_mutex_open_fd(fd, &options, out);
        }));
    }

    /// @brief The value's size in bytes.
    std::size_t size() const {
        std::size_t out = 0;
        detail::check(::shmring_shared_mutex_size(h_.get(), &out));
        return out;
    }
    /// @brief The mutex's descriptor (never close it).
    int fd() const {
        int out = -1;
        detail::check(::shmring_shared_mutex_fd(h_.get(), &out));
        return out;
    }

    /// @brief Takes the lock, waiting as long as a live holder has it.
    /// @return The guard; look at its `owner_died()`.
    /// @throws error `errc::already_locked` (this handle holds it), ...
    [[nodiscard]] shared_mutex_guard lock() { return guard_of(lock_ms(detail::forever)); }
    /// @brief As `lock`, giving up after `timeout`.
    /// @return The guard, or `std::nullopt` if the timeout ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<shared_mutex_guard>
    lock(const std::chrono::duration<Rep, Period> &timeout) {
        const int rc = lock_ms(detail::timeout_ms(timeout));
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        return guard_of(rc);
    }
    /// @brief Takes the lock if it is free or its holder is dead; never waits.
    /// @return The guard, or `std::nullopt` while a live holder has it.
    /// @throws error `errc::already_locked`, ...
    [[nodiscard]] std::optional<shared_mutex_guard> try_lock() {
        const int rc = ::shmring_shared_mutex_try_lock(h_.get());
        if (rc == SHMRING_E_BUSY) {
            return std::nullopt;
        }
        return guard_of(rc);
    }

    /// @brief The C handle (still owned by this object).
    ::shmring_shared_mutex *native_handle() const noexcept { return h_.get(); }

private:
    explicit shared_mutex(::shmring_shared_mutex *p) noexcept : h_(p) {}

    int lock_ms(std::uint64_t ms) { return ::shmring_shared_mutex_lock(h_.get(), ms); }
    /// The guard of a lock call's `rc`: SHMRING_OK, or SHMRING_E_OWNER_DIED
    /// (held too); any other code throws.
    shared_mutex_guard guard_of(int rc) {
        if (rc == SHMRING_E_OWNER_DIED) {
            return shared_mutex_guard(h_.get(), true);
        }
        detail::check(rc);
        return shared_mutex_guard(h_.get(), false);
    }

    detail::handle<::shmring_shared_mutex, ::shmring_shared_mutex_close> h_;
};

/// @brief The calling side of request/response (`shmring_rpc_client`).
/// Thread-safe: several threads may call at once.
class rpc_client {
public:
    /// @brief Makes a client sending on `requests` and receiving on `responses`
    /// (the channels may be destroyed afterwards).
    /// @throws error `errc::role_taken`, ...
    rpc_client(const channel &requests, const channel &responses)
        : h_(detail::make<::shmring_rpc_client>([&](::shmring_rpc_client **out) {
              return ::shmring_rpc_client_new(requests.native_handle(),
                                              responses.native_handle(), out);
          })) {}

    /// @brief Sends a request and waits as long as it takes for its response,
    /// copied into `response`.
    /// @return The response's length.
    /// @throws error `errc::remote` (the handler failed: `details()` has its
    /// message), `errc::buffer_too_small` (the response is lost),
    /// `errc::disconnected`, `errc::message_too_large`, ...
    std::size_t call(const void *request, std::size_t request_len, void *response,
                     std::size_t response_cap) const {
        std::size_t n = 0;
        detail::check(::shmring_rpc_call(h_.get(), request, request_len, response, response_cap,
                                         &n, detail::forever));
        return n;
    }
    /// @brief As `call`, giving up after `timeout`.
    /// @return The response's length, or `std::nullopt` if the timeout ran out (a
    /// later response is dropped).
    template <class Rep, class Period>
    [[nodiscard]] std::optional<std::size_t>
    call(const void *request, std::size_t request_len, void *response, std::size_t response_cap,
         const std::chrono::duration<Rep, Period> &timeout) const {
        std::size_t n = 0;
        const int rc = ::shmring_rpc_call(h_.get(), request, request_len, response, response_cap,
                                          &n, detail::timeout_ms(timeout));
        if (rc == SHMRING_E_TIMED_OUT) {
            return std::nullopt;
        }
        detail::check(rc);
        return n;
    }
    /// @brief `call` with ranges: a request's bytes, a response buffer.
    template <class Request, class Response, detail::if_bytes<Request> = 0,
              detail::if_mutable_bytes<Response> = 0>
    std::size_t call(const Request &request, Response &&response) const {
        return call(request.data(), detail::byte_size(request), response.data(),
                    detail::byte_size(response));
    }
    /// @brief `call` of a range's bytes, the response as a new vector.
    template <class Request, detail::if_bytes<Request> = 0>
    std::vector<std::uint8_t> call(const Request &request) const {
        std::vector<std::uint8_t> out(max_response_len());
        out.resize(call(request.data(), detail::byte_size(request), out.data(), out.size()));
        return out;
    }
    /// @brief The longest request.
    std::size_t max_request_len() const {
        std::size_t out = 0;
        detail::check(::shmring_rpc_client_max_request_len(h_.get(), &out));
        return out;
    }
    /// @brief The longest response.
    std::size_t max_response_len() const {
        std::size_t out = 0;
        detail::check(::shmring_rpc_client_max_response_len(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_rpc_client *native_handle() const noexcept { return h_.get(); }

private:
    detail::handle<::shmring_rpc_client, ::shmring_rpc_client_close> h_;
};

/// @brief The answering side of request/response (`shmring_rpc_server`).
class rpc_server {
public:
    /// @brief Makes a server receiving on `requests` and sending on `responses`.
    /// @throws error `errc::role_taken`, ...
    rpc_server(const channel &requests, const channel &responses)
        : h_(detail::make<::shmring_rpc_server>([&](::shmring_rpc_server **out) {
              return ::shmring_rpc_server_new(requests.native_handle(),
                                              responses.native_handle(), out);
          })) {}

    /// @brief Waits up to `timeout` for one request and answers it with
    /// `handler(const std::uint8_t *request, std::size_t request_len,
    /// std::uint8_t *response, std::size_t response_cap)`, which writes the
    /// response and returns its length. An exception thrown by the handler is sent
    /// as an error response, its `what()` as the message (the client's call
    /// throws `errc::remote`).
    /// @return `true` if a request was answered, `false` if the timeout ran out.
    /// @throws error `errc::disconnected` (the client has gone), ...
    template <class Handler, class Rep, class Period>
    bool serve_one(Handler &&handler, const std::chrono::duration<Rep, Period> &timeout) {
        return serve_ms(handler, detail::timeout_ms(timeout));
    }
    /// @brief As `serve_one`, waiting as long as it takes.
    template <class Handler>
    void serve_one(Handler &&handler) {
        detail::ignore(serve_ms(handler, detail::forever));
    }
    /// @brief The longest response (the handler's `response_cap`).
    std::size_t max_response_len() const {
        std::size_t out = 0;
        detail::check(::shmring_rpc_server_max_response_len(h_.get(), &out));
        return out;
    }
    /// @brief The C handle (still owned by this object).
    ::shmring_rpc_server *native_handle() const noexcept { return h_.get(); }

private:
    template <class Handler>
    bool serve_ms(Handler &handler, std::uint64_t ms) {
        auto call = [](void *ctx, const std::uint8_t *req, std::size_t req_len,
                       std::uint8_t *resp, std::size_t cap, std::size_t *resp_len) noexcept {
            auto fail = [&](const char *what) {
                const std::size_t n = std::min(std::strlen(what), cap);
                std::memcpy(resp, what, n);
                *resp_len = n;
                return 1;
            };
            try {
                *resp_len = (*static_cast<Handler *>(ctx))(req, req_len, resp, cap);
                return 0;
            } catch (const std::exception &e) {
                return fail(e.what());
            } catch (...) {
                return fail("unknown exception");
            }
        };
        const int rc = ::shmring_rpc_serve_one(h_.get(), call, &handler, ms);
        if (rc == SHMRING_E_TIMED_OUT) {
            return false;
        }
        detail::check(rc);
        return true;
    }
    detail::handle<::shmring_rpc_server, ::shmring_rpc_server_close> h_;
};

/// @brief One wait over many sources (`epoll` over their readiness
/// descriptors): receivers of every kind (a message, or the sender's
/// departure), senders (room for a message of a given length, or the
/// receiver's departure), plain descriptors and timers.
///
/// Each `add` returns the source's index (in the order added, never reused);
/// `wait`, `wait_for` and `wait_until` return the indices of the sources that
/// are ready, in increasing order. A wait arms every endpoint first (one that
/// is ready already answers at once, without sleeping), then sleeps in
/// `epoll_wait` (level-triggered) until a descriptor is ready, a timer is due
/// or the deadline passes.
///
/// "Ready" means "try now", as for the readiness calls: receive with `try_recv`
/// until it returns `std::nullopt` (send with `try_send` until `false`), then
/// wait again. A wake-up may be spurious (another reader took the message):
/// the try finds nothing, and the next wait arms again. A source whose peer has
/// gone (closed, or died) stays ready, and its next call throws
/// `errc::disconnected`: `remove` it. A due timer stays ready until it is
/// `reset_timer`ed or removed.
///
/// The set holds views, not endpoints: an endpoint must stay alive (and not be
/// moved into an object that is then destroyed) until it is removed, or the
/// set destroyed. Used by one thread at a time, as an endpoint.
///
/// @code
/// shmring::wait_set set;
/// const std::size_t from_a = set.add(rx_a);          // shmring::receiver
/// const std::size_t news = set.add(subscriber);      // shmring::subscriber
/// const std::size_t tick = set.add_timer(std::chrono::steady_clock::now() + 1s);
/// for (;;) {
///     for (std::size_t i : set.wait()) {
///         if (i == tick) { ...; set.reset_timer(tick, std::chrono::steady_clock::now() + 1s); }
///         else if (i == from_a) {
///             try {
///                 while (auto n = rx_a.try_recv(buffer)) { ... }
///             } catch (const shmring::error &e) {
///                 if (e.code() != shmring::errc::disconnected) throw;
///                 set.remove(from_a);
///             }
///         }
///     }
/// }
/// @endcode
class wait_set {
public:
    /// @brief The clock of timers and deadlines.
    using clock = std::chrono::steady_clock;

    /// @brief An empty set (one `epoll` instance).
    /// @throws error `errc::io` if `epoll_create1` fails (out of descriptors).
    wait_set() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
        if (epoll_.get() < 0) {
            throw detail::os_error("epoll_create1");
        }
    }

    /// @brief Adds a receiver of any kind (`receiver`, `mpmc_receiver`,
    /// `subscriber`, a connection's `receiver()`, or any `msg_receiver` view):
    /// ready when a message is there or its sender has gone.
    /// @return The source's index.
    /// @throws error `errc::unsupported` (an address-based transport's receiver:
    /// no readiness descriptor), `errc::io` if `epoll_ctl` fails.
    std::size_t add(msg_receiver rx) {
        source s;
        s.what = kind::receiver;
        s.rx = rx.native_msg_receiver();
        return push(std::move(s), rx.readiness_fd(), EPOLLIN);
    }

    /// @brief Adds a connection's receiving half (`add(c.receiver())`).
    /// @return The source's index.
    /// @throws error as `add(msg_receiver)`.
    std::size_t add(const connection &c) { return add(c.receiver()); }

    /// @brief Adds a sender of any kind (`sender`, `mpmc_sender`, `publisher`, a
    /// connection's `sender()`, or any `msg_sender` view): ready when a message
    /// of `len` bytes fits or its receiver has gone.
    /// @return The source's index.
    /// @throws error `errc::unsupported` (no readiness descriptor), `errc::io` if
    /// `epoll_ctl` fails; a wait throws `errc::message_too_large` if `len`
    /// exceeds the endpoint's largest message.
    std::size_t add(msg_sender tx, std::size_t len) {
        source s;
        s.what = kind::sender;
        s.tx = tx.native_msg_sender();
        s.len = len;
        return push(std::move(s), tx.readiness_fd(), EPOLLIN);
    }

    /// @brief Adds a plain descriptor (a pipe, a socket, a `timerfd`, ...),
    /// ready when it shows any of `events` (`EPOLLIN`, `EPOLLOUT`, ...), or hangs
    /// up or fails. The set does not own it: remove it before closing it.
    /// @return The source's index.
    /// @throws error `errc::io` if `epoll_ctl` fails (a descriptor `epoll` cannot
    /// watch, such as a regular file).
    std::size_t add_fd(int fd, std::uint32_t events = EPOLLIN) {
        source s;
        s.what = kind::fd;
        return push(std::move(s), fd, events);
    }

    /// @brief Adds a timer, ready from `at` on (until reset or removed).
    /// @return The source's index.
    std::size_t add_timer(clock::time_point at) {
        source s;
        s.what = kind::timer;
        s.at = at;
        sources_.push_back(std::move(s));
        return sources_.size() - 1;
    }

    /// @brief Adds a timer ready `after` from now.
    /// @return The source's index.
    template <class Rep, class Period>
    std::size_t add_timer(const std::chrono::duration<Rep, Period> &after) {
        return add_timer(deadline_after(after));
    }

    /// @brief Moves timer `index` to `at` (a periodic tick re-arms itself so).
    /// @throws error `errc::invalid_argument` if `index` is not a timer of this
    /// set.
    void reset_timer(std::size_t index, clock::time_point at) {
        if (index >= sources_.size() || sources_[index].what != kind::timer) {
            throw error(errc::invalid_argument,
                        "wait_set: source " + std::to_string(index) + " is not a timer");
        }
        sources_[index].at = at;
    }

    /// @brief Removes source `index` (its index is not reused); nothing if it
    /// was removed already or never added. Safe while iterating over what a wait
    /// returned (a copy).
    void remove(std::size_t index) noexcept {
        if (index >= sources_.size() || sources_[index].what == kind::removed) {
            return;
        }
        source &s = sources_[index];
        if (s.fd >= 0) {
            // Fails only if the descriptor was closed already (then epoll forgot
            // it itself): nothing to undo.
            (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s.fd, nullptr);
        }
        s = source{};
    }

    /// @brief How many sources the set holds (removed ones not counted).
    std::size_t size() const noexcept {
        return static_cast<std::size_t>(
            std::count_if(sources_.begin(), sources_.end(),
                          [](const source &s) { return s.what != kind::removed; }));
    }

    /// @brief Waits as long as it takes for a source to be ready.
    /// @return The ready sources' indices (never empty).
    /// @throws error `errc::invalid_argument` if the set is empty (it would wait
    /// for ever); a source's arming error (`errc::corrupted`,
    /// `errc::message_too_large`, ...); `errc::io` if `epoll_wait` fails.
    std::vector<std::size_t> wait() {
        if (size() == 0) {
            throw error(errc::invalid_argument, "wait_set: nothing to wait for");
        }
        for (;;) {
            std::vector<std::size_t> ready = collect(std::nullopt);
            if (!ready.empty()) {
                return ready;
            }
        }
    }

    /// @brief Waits `timeout` at most (rounded up to whole milliseconds).
    /// @return The ready sources' indices; empty if the timeout ran out.
    /// @throws error as `wait`, but an empty set just sleeps.
    template <class Rep, class Period>
    std::vector<std::size_t> wait_for(const std::chrono::duration<Rep, Period> &timeout) {
        return wait_until(deadline_after(timeout));
    }

    /// @brief Waits until a source is ready or `deadline` (of any clock,
    /// measured on `clock`) passes.
    /// @return The ready sources' indices; empty if the deadline passed.
    /// @throws error as `wait`, but an empty set just sleeps.
    template <class Clock, class Duration>
    std::vector<std::size_t>
    wait_until(const std::chrono::time_point<Clock, Duration> &deadline) {
        const clock::time_point until = deadline_after(deadline - Clock::now());
        for (;;) {
            std::vector<std::size_t> ready = collect(until);
            if (!ready.empty() || clock::now() >= until) {
                return ready;
            }
        }
    }

    /// @brief The `epoll` descriptor (owned by the set; never close it).
    int native_handle() const noexcept { return epoll_.get(); }

private:
    enum class kind { removed, receiver, sender, fd, timer };

    /// One source; `removed` once removed (its index stays taken).
    struct source {
        kind what = kind::removed;
        ::shmring_msg_receiver *rx = nullptr;
        ::shmring_msg_sender *tx = nullptr;
        std::size_t len = 0;
        /// The descriptor registered in `epoll` (`duplicate`'s, if any); -1 for
        /// a timer.
        int fd = -1;
        /// Our own copy of a descriptor registered already under another index
        /// (the same endpoint twice, or a descriptor shared by two sources).
        detail::owned_fd duplicate;
        clock::time_point at{};
    };

    /// `now + d`, saturating (a timeout too long to represent waits for ever,
    /// in practice).
    template <class Rep, class Period>
    static clock::time_point deadline_after(const std::chrono::duration<Rep, Period> &d) {
        const clock::time_point now = clock::now();
        const double left = std::chrono::duration<double>(clock::time_point::max() - now).count();
        const double want = std::chrono::duration<double>(d).count();
        if (!(want > 0.0)) {
            return now;
        }
        if (want >= left) {
            return clock::time_point::max();
        }
        return now + std::chrono::duration_cast<clock::duration>(
                         std::chrono::duration<double>(want));
    }

    /// Registers `fd` for `events` under the next index, through a duplicate if
    /// it is registered already, and appends `s`.
    std::size_t push(source s, int fd, std::uint32_t events) {
        const std::size_t index = sources_.size();
        ::epoll_event ev{};
        ev.events = events;
        ev.data.u64 = index;
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0) {
            s.fd = fd;
        } else if (errno == EEXIST) {
            detail::owned_fd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
            if (dup.get() < 0) {
                throw detail::os_error("fcntl(F_DUPFD_CLOEXEC)");
            }
            if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, dup.get(), &ev) != 0) {
                throw detail::os_error("epoll_ctl");
            }
            s.fd = dup.get();
            s.duplicate = std::move(dup);
        } else {
            throw detail::os_error("epoll_ctl");
        }
        sources_.push_back(std::move(s));
        return index;
    }

    /// Arms source `s`: whether it is ready now (endpoints; a due timer).
    static bool arm(source &s, clock::time_point now) {
        switch (s.what) {
        case kind::receiver:
            return msg_receiver(s.rx).arm_for_message() == readiness::ready;
        case kind::sender:
            return msg_sender(s.tx).arm_for_space(s.len) == readiness::ready;
        case kind::timer:
            return s.at <= now;
        case kind::fd:
        case kind::removed:
            break;
        }
        return false;
    }

    /// One pass: arms every endpoint, then waits in `epoll` (only looks, if one
    /// is ready already or a timer is due) until `deadline` or the earliest
    /// timer; returns the ready indices, sorted.
    std::vector<std::size_t> collect(std::optional<clock::time_point> deadline) {
        std::vector<std::size_t> ready;
        clock::time_point now = clock::now();
        std::optional<clock::time_point> wake = deadline;
        std::size_t watched = 0;
        for (std::size_t i = 0; i < sources_.size(); i++) {
            source &s = sources_[i];
            if (s.what == kind::timer) {
                wake = wake ? std::min(*wake, s.at) : s.at;
            } else if (s.what != kind::removed) {
                watched++;
            }
            if (arm(s, now)) {
                ready.push_back(i);
            }
        }
        int timeout_ms = -1;
        if (!ready.empty()) {
            timeout_ms = 0;
        } else if (wake) {
            // Rounded up, so that a timer never fires early; at most about 24
            // days a sleep (the caller's loop sleeps again).
            timeout_ms = static_cast<int>(std::min<std::uint64_t>(
                detail::timeout_ms(*wake - now), static_cast<std::uint64_t>(INT32_MAX)));
        }
        events_.resize(std::max<std::size_t>(watched, 1));
        int n = ::epoll_wait(epoll_.get(), events_.data(),
                             static_cast<int>(std::min<std::size_t>(events_.size(), INT32_MAX)),
                             timeout_ms);
        if (n < 0) {
            if (errno != EINTR) {
                throw detail::os_error("epoll_wait");
            }
            n = 0; // a signal: the caller's loop waits again
        }
        for (int k = 0; k < n; k++) {
            const std::uint64_t i = events_[static_cast<std::size_t>(k)].data.u64;
            if (i < sources_.size() && sources_[i].what != kind::removed) {
                ready.push_back(static_cast<std::size_t>(i));
            }
        }
        now = clock::now();
        for (std::size_t i = 0; i < sources_.size(); i++) {
            if (sources_[i].what == kind::timer && sources_[i].at <= now) {
                ready.push_back(i);
            }
        }
        std::sort(ready.begin(), ready.end());
        ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
        return ready;
    }

    detail::owned_fd epoll_;
    std::vector<source> sources_;
    std::vector<::epoll_event> events_;
};

} // namespace shmring

#endif // SHMRING_HPP
