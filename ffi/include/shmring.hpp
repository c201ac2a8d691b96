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
///   `receiver::read` borrows a message as a `read_message`; both end explicitly
///   (`commit`/`abort`, `release`/`unread`), and on destruction a grant is
///   aborted (nothing published) and a read is unread (the message stays for the
///   next read), as the Rust API's drops do. A grant or read must end before its
///   endpoint is destroyed or moved into another object that is then destroyed.
/// - **Threads**: as in C: an endpoint is used by one thread at a time; a channel,
///   event, semaphore or RPC client by several.
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
    busy = SHMRING_E_BUSY,                             ///< A grant or read is outstanding.
    unsupported = SHMRING_E_UNSUPPORTED,               ///< Not possible here.
    io = SHMRING_E_IO,                                 ///< Another system error.
    panic = SHMRING_E_PANIC,                           ///< A bug in the library (the handle is poisoned).
    invalid_capacity = SHMRING_E_INVALID_CAPACITY,     ///< A bad capacity or shape.
    untrusted = SHMRING_E_UNTRUSTED,                   ///< An object of an untrusted owner or mode.
    bad_size = SHMRING_E_BAD_SIZE,                     ///< An object of the wrong size.
    not_borrowed = SHMRING_E_NOT_BORROWED,             ///< No grant or read outstanding.
    unknown = SHMRING_E_UNKNOWN,                       ///< An unknown failure.
    table_full = SHMRING_E_TABLE_FULL,                 ///< The MPMC endpoint table is full.
    remote = SHMRING_E_REMOTE,                         ///< The RPC server's handler failed.
    handshake = SHMRING_E_HANDSHAKE,                   ///< A connection handshake failed.
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
/// Options of the event and semaphore create and open calls; value-initialised
/// it holds every default.
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
        detail::check(rc);
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
        detail::check(::shmring_msg_receiver_recv(raw(), buf, len, &n));
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
        detail::check(rc);
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
        const error failure(rc); // before any other shmring call on this thread
        out.clear();
        throw failure;
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

/// @brief Ring bytes lent by `sender::grant` to write a message in place.
///
/// `commit(len)` publishes the first `len` bytes as one message; `abort()`, or
/// destroying the grant, publishes nothing. Until it ends, other calls on its
/// sender throw `errc::busy`. It must end before its sender is destroyed.
class write_grant {
public:
    /// @brief Takes `o`'s grant (`o` then holds none).
    write_grant(write_grant &&o) noexcept
        : tx_(std::exchange(o.tx_, nullptr)), data_(o.data_), size_(o.size_) {}
    /// @brief Aborts this grant if outstanding, then takes `o`'s.
    write_grant &operator=(write_grant &&o) noexcept {
        if (this != &o) {
            abort();
            tx_ = std::exchange(o.tx_, nullptr);
            data_ = o.data_;
            size_ = o.size_;
        }
        return *this;
    }
    write_grant(const write_grant &) = delete;
    write_grant &operator=(const write_grant &) = delete;
    /// @brief Aborts the grant if it is still outstanding.
    ~write_grant() { abort(); }

    /// @brief The lent bytes (8-byte aligned; they hold whatever was there).
    std::uint8_t *data() const noexcept { return data_; }
    /// @brief How many bytes are lent.
    std::size_t size() const noexcept { return size_; }
    /// @brief The first lent byte.
    std::uint8_t *begin() const noexcept { return data_; }
    /// @brief Past the last lent byte.
    std::uint8_t *end() const noexcept { return data_ + size_; }
    /// @brief Whether the grant is still outstanding.
    bool active() const noexcept { return tx_ != nullptr; }

    /// @brief Publishes the first `len` bytes as one message; the grant ends.
    /// @throws error `errc::invalid_argument` if `len` exceeds `size()` (the grant
    /// stays outstanding), `errc::not_borrowed` if it has ended.
    void commit(std::size_t len) {
        if (tx_ == nullptr) {
            throw error(errc::not_borrowed, "the grant has ended");
        }
        detail::check(::shmring_sender_commit(tx_, len));
        tx_ = nullptr;
    }

    /// @brief Publishes every lent byte as one message.
    void commit() { commit(size_); }

    /// @brief Ends the grant without publishing anything (nothing if it has ended).
    void abort() noexcept {
        if (tx_ != nullptr) {
            detail::ignore(::shmring_sender_abort(std::exchange(tx_, nullptr)));
        }
    }

private:
    friend class sender;
    write_grant(::shmring_sender *tx, std::uint8_t *data, std::size_t size) noexcept
        : tx_(tx), data_(data), size_(size) {}

    ::shmring_sender *tx_;
    std::uint8_t *data_;
    std::size_t size_;
};

/// @brief A message borrowed in place by `receiver::read`.
///
/// `release()` consumes it; `unread()`, or destroying it, leaves it to be read
/// again. Until it ends, other calls on its receiver throw `errc::busy`. It must
/// end before its receiver is destroyed. A hostile sender could change the bytes
/// while you read them: copy before validating, if that matters.
class read_message {
public:
    /// @brief Takes `o`'s read (`o` then holds none).
    read_message(read_message &&o) noexcept
        : rx_(std::exchange(o.rx_, nullptr)), data_(o.data_), size_(o.size_) {}
    /// @brief Unreads this message if outstanding, then takes `o`'s.
    read_message &operator=(read_message &&o) noexcept {
        if (this != &o) {
            unread();
            rx_ = std::exchange(o.rx_, nullptr);
            data_ = o.data_;
            size_ = o.size_;
        }
        return *this;
    }
    read_message(const read_message &) = delete;
    read_message &operator=(const read_message &) = delete;
    /// @brief Unreads the message if it is still outstanding.
    ~read_message() { unread(); }

    /// @brief The message's bytes.
    const std::uint8_t *data() const noexcept { return data_; }
    /// @brief Its length.
    std::size_t size() const noexcept { return size_; }
    /// @brief The first byte.
    const std::uint8_t *begin() const noexcept { return data_; }
    /// @brief Past the last byte.
    const std::uint8_t *end() const noexcept { return data_ + size_; }
    /// @brief Whether the read is still outstanding.
    bool active() const noexcept { return rx_ != nullptr; }

    /// @brief Consumes the message (no later receiver sees it); the read ends.
    /// @throws error `errc::not_borrowed` if it has ended.
    void release() {
        if (rx_ == nullptr) {
            throw error(errc::not_borrowed, "the read has ended");
        }
        detail::check(::shmring_receiver_release(rx_));
        rx_ = nullptr;
    }

    /// @brief Ends the read without consuming the message (nothing if it has
    /// ended).
    void unread() noexcept {
        if (rx_ != nullptr) {
            detail::ignore(::shmring_receiver_unread(std::exchange(rx_, nullptr)));
        }
    }

private:
    friend class receiver;
    read_message(::shmring_receiver *rx, const std::uint8_t *data, std::size_t size) noexcept
        : rx_(rx), data_(data), size_(size) {}

    ::shmring_receiver *rx_;
    const std::uint8_t *data_;
    std::size_t size_;
};

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

} // namespace shmring

#endif // SHMRING_HPP
