// The C++ wrapper (include/shmring.hpp), used as a C++ program would.
//
// First, in one process: the try_ forms on empty and full endpoints (false and
// std::nullopt, never exceptions), timeouts running out, errors as shmring::error
// (message too large, a grant or read outstanding, a moved-from handle, a role
// taken, the peer gone) with their code, name and details; byte ranges of several
// element types; grants aborted and reads unread by their destructors; batches and
// records; readiness descriptors armed and rung; semaphores and events; a TCP
// transport.
//
// Then three sessions across fork, over an SPSC channel pair, an MPMC channel pair
// and a connection: the parent streams COUNT checked messages (tests/c/pattern.h),
// up to WINDOW ahead, through msg_sender/msg_receiver views; the forked child
// echoes each one back (checking it) with another form of the API (zero-copy
// grants and reads, vectors, caller buffers); the parent checks every echo. Then
// the peer's departure is seen as errc::disconnected on both sides. Last, RPC
// calls to a forked C++ server, one of them failing in its handler.
//
//   cpp_wrapper NAME_PREFIX [COUNT]
//
// Exits 0 and prints "ok: ..." (the echoes' checksum sum per session, the same
// for all three) if every check held; else prints the first failure and exits 1.
//
//   cpp_wrapper client NAME DIRECTORY COUNT
//
// The peer of a Rust listener (tests/c_programs.rs): connects to NAME in
// DIRECTORY, echoes COUNT checked messages, then waits for the listener's
// departure (errc::disconnected) and prints "ok: echoed COUNT messages, sum=S".
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "pattern.h"
#include "shmring.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto TIMEOUT = 20s;
constexpr std::size_t MAX_LEN = 1024;
constexpr std::uint64_t WINDOW = 16;

int checks = 0;

[[noreturn]] void fail(int line, const std::string &what) {
    std::fprintf(stderr, "cpp_wrapper.cpp:%d: %s\n", line, what.c_str());
    std::fflush(stderr);
    _exit(1);
}

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        checks++;                                                                        \
        if (!(cond)) fail(__LINE__, "check failed: " #cond);                             \
    } while (0)

// `expr` throws shmring::error with code `expected` (and a name and a what() naming it).
#define EXPECT_ERROR(expr, expected)                                                         \
    do {                                                                                 \
        checks++;                                                                        \
        bool thrown_ = false;                                                            \
        try {                                                                            \
            (void)(expr);                                                                \
        } catch (const shmring::error &e_) {                                             \
            thrown_ = true;                                                              \
            if (e_.code() != (expected))                                                     \
                fail(__LINE__, std::string(#expr " threw ") + e_.what() +                \
                                   ", expected " #expected);                                 \
            if (std::string(e_.what()).find(e_.name()) != 0)                             \
                fail(__LINE__, std::string("what() does not start with the name: ") +   \
                                   e_.what());                                           \
        }                                                                                \
        if (!thrown_) fail(__LINE__, #expr " did not throw " #expected);                     \
    } while (0)

std::string name_of(const char *prefix, const char *what) {
    return std::string(prefix) + "-" + what;
}

// Whether `fd` becomes readable within `ms` milliseconds.
bool readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    int rc;
    do {
        rc = poll(&p, 1, ms);
    } while (rc < 0 && errno == EINTR);
    return rc == 1;
}

// The fork helpers: the child runs `body` (its objects destroyed when it returns)
// and leaves with _exit, never running the parent's destructors.
template <class Body>
pid_t fork_child(Body &&body) {
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) fail(__LINE__, "fork");
    if (pid == 0) {
        try {
            body();
        } catch (const std::exception &e) {
            fail(__LINE__, std::string("child: uncaught ") + e.what());
        }
        _exit(0);
    }
    return pid;
}

void wait_child(pid_t pid) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

void signal_ready(int fd) {
    char byte = 'r';
    CHECK(write(fd, &byte, 1) == 1);
    close(fd);
}

void await_ready(int fd) {
    char byte = 0;
    ssize_t got;
    do {
        got = read(fd, &byte, 1);
    } while (got < 0 && errno == EINTR);
    CHECK(got == 1 && byte == 'r');
    close(fd);
}

// Checks that `data` is message `i`; returns its checksum.
std::uint32_t checked(const std::uint8_t *data, std::size_t len, std::uint64_t i) {
    std::uint32_t sum = 0;
    int line = pattern_check(data, len, i, MAX_LEN, &sum);
    if (line != 0) fail(__LINE__, "message " + std::to_string(i) + ": pattern.h:" + std::to_string(line));
    return sum;
}

// Options with full fences: valgrind does not know membarrier.
shmring::channel_options fenced() {
    shmring::channel_options o{};
    o.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
    return o;
}

// Any sender, any receiver: a view of the endpoint.
void send_text(shmring::msg_sender tx, std::string_view text) { tx.send(text); }

void local_checks() {
    // Timeouts: rounded up to whole milliseconds, negative is 0, huge is finite.
    CHECK(shmring::detail::timeout_ms(1us) == 1);
    CHECK(shmring::detail::timeout_ms(1500us) == 2);
    CHECK(shmring::detail::timeout_ms(5ms) == 5);
    CHECK(shmring::detail::timeout_ms(-5ms) == 0);
    CHECK(shmring::detail::timeout_ms(std::chrono::hours::max()) == UINT64_MAX - 1);

    auto channel = shmring::channel::create_memfd(256, fenced());
    CHECK(channel.capacity() == 256);
    const std::size_t max = channel.max_message_len();
    CHECK(max == 256 / 2 - 8);
    auto tx = channel.sender();
    auto rx = channel.receiver();
    EXPECT_ERROR(channel.sender(), shmring::errc::role_taken);
    CHECK(tx.is_receiver_connected() && rx.is_sender_connected());
    CHECK(tx.max_message_len() == max && rx.max_message_len() == max);

    // Empty: the try_ forms and the timeouts say so without throwing.
    std::array<std::uint8_t, 256> buf{};
    CHECK(!rx.try_recv(buf));
    CHECK(!rx.try_recv(buf.data(), buf.size()));
    CHECK(!rx.try_recv());
    CHECK(!rx.recv(buf, 5ms));
    CHECK(!rx.recv(2ms));
    std::vector<std::uint8_t> vec{1, 2, 3};
    CHECK(!rx.try_recv_into(vec) && vec.empty());
    CHECK(!rx.try_read());
    CHECK(!rx.read(1ms));
    CHECK(rx.try_recv_batch(8, [](const std::uint8_t *, std::size_t) {}) == 0);

    // Too large: an exception with the code, name and details.
    std::vector<std::uint8_t> big(max + 1, 0xAB);
    EXPECT_ERROR(tx.try_send(big), shmring::errc::message_too_large);
    EXPECT_ERROR(tx.send(big), shmring::errc::message_too_large);
    EXPECT_ERROR(tx.send(big, 1s), shmring::errc::message_too_large);
    EXPECT_ERROR(tx.arm_for_space(max + 1), shmring::errc::message_too_large);
    try {
        tx.send(big.data(), big.size());
        fail(__LINE__, "no exception");
    } catch (const shmring::error &e) {
        CHECK(e.value() == SHMRING_E_MESSAGE_TOO_LARGE);
        CHECK(std::string(e.name()) == shmring_strerror(SHMRING_E_MESSAGE_TOO_LARGE));
        CHECK(!e.details().empty());
        CHECK(std::string(e.what()).find(e.details()) != std::string::npos);
    }

    // Ranges: bytes of several element types, received into several buffers.
    tx.send(std::string_view("hello"));
    std::string text(16, '\0');
    CHECK(rx.recv(text) == 5 && text.compare(0, 5, "hello") == 0);
    const std::array<std::uint32_t, 3> words{1, 2, 0xA0B0C0D0};
    CHECK(tx.try_send(words));
    std::array<std::uint32_t, 8> got_words{};
    CHECK(rx.recv(got_words, TIMEOUT) == std::optional<std::size_t>(12));
    CHECK(got_words[0] == 1 && got_words[1] == 2 && got_words[2] == 0xA0B0C0D0);
    send_text(tx, "through a view");
    auto message = rx.recv();
    CHECK(std::string(message.begin(), message.end()) == "through a view");
    CHECK(tx.send(std::vector<std::uint8_t>{7, 8, 9}, TIMEOUT));
    CHECK(rx.try_recv_into(vec) && vec == (std::vector<std::uint8_t>{7, 8, 9}));
    tx.send(nullptr, 0);
    CHECK(rx.try_recv() == std::optional<std::vector<std::uint8_t>>(std::vector<std::uint8_t>{}));

    // Full: try_send says false, a send with a timeout gives up, arming waits.
    const std::array<std::uint8_t, 40> forty{};
    int sent = 0;
    while (tx.try_send(forty)) sent++;
    CHECK(sent >= 2);
    CHECK(!tx.send(forty, 5ms));
    CHECK(!tx.try_grant(40));
    CHECK(!tx.grant(40, 1ms));
    const int tx_fd = tx.readiness_fd();
    CHECK(tx_fd >= 0 && tx.wakeups().kind == shmring::wakeup_kind::doorbell);
    CHECK(tx.arm_for_space(40) == shmring::readiness::armed);
    CHECK(!readable(tx_fd, 0));
    CHECK(rx.recv(buf) == 40);
    CHECK(readable(tx_fd, 5000));
    CHECK(tx.arm_for_space(40) == shmring::readiness::ready);
    int drained = 1;
    while (rx.try_recv(buf)) drained++;
    CHECK(drained == sent);

    // A receiver's descriptor: quiet when armed on empty, rung by a message.
    const int rx_fd = rx.readiness_fd();
    CHECK(rx.arm_for_message() == shmring::readiness::armed);
    CHECK(!readable(rx_fd, 0));
    tx.send(std::string_view("ring"));
    CHECK(readable(rx_fd, 5000));
    CHECK(rx.arm_for_message() == shmring::readiness::ready);
    CHECK(rx.recv(buf) == 4);

    // Grants: destroyed unpublished, busy while outstanding, committed in part.
    {
        auto grant = tx.grant(16);
        CHECK(grant.active() && grant.size() == 16);
        std::memset(grant.data(), 'g', grant.size());
        EXPECT_ERROR(tx.try_send(forty), shmring::errc::busy);
    }
    CHECK(!rx.try_recv(buf));
    {
        auto grant = tx.try_grant(16);
        CHECK(grant.has_value());
        std::memcpy(grant->data(), "committed", 9);
        EXPECT_ERROR(grant->commit(17), shmring::errc::invalid_argument);
        CHECK(grant->active());
        grant->commit(9);
        CHECK(!grant->active());
        EXPECT_ERROR(grant->commit(1), shmring::errc::not_borrowed);
    }
    CHECK(rx.recv(text) == 9 && text.compare(0, 9, "committed") == 0);

    // Reads: unread by the destructor, busy while outstanding, released.
    tx.send(std::string_view("read me"));
    {
        auto read = rx.read();
        CHECK(std::string(read.begin(), read.end()) == "read me");
        EXPECT_ERROR(rx.try_recv(buf), shmring::errc::busy);
    }
    {
        auto read = rx.read(TIMEOUT);
        CHECK(read && read->size() == 7);
        auto moved = std::move(*read);
        CHECK(!read->active() && moved.active());
        moved.release();
        EXPECT_ERROR(moved.release(), shmring::errc::not_borrowed);
    }
    CHECK(!rx.try_read());

    // Records and batches.
    const std::array<std::uint64_t, 4> records{10, 20, 30, 40};
    CHECK(tx.try_send_records(records) == 4);
    std::vector<std::uint64_t> seen;
    CHECK(rx.try_recv_batch(16, [&](const std::uint8_t *data, std::size_t len) {
        CHECK(len == 8);
        std::uint64_t v = 0;
        std::memcpy(&v, data, 8);
        seen.push_back(v);
    }) == 4);
    CHECK(seen == (std::vector<std::uint64_t>{10, 20, 30, 40}));
    const std::array<shmring::message, 2> batch{{{"ab", 2}, {"cde", 3}}};
    CHECK(tx.try_send_batch(batch) == 2);
    int calls = 0;
    try {
        (void)rx.try_recv_batch(16, [&](const std::uint8_t *, std::size_t) {
            calls++;
            throw std::runtime_error("from the callback");
        });
        fail(__LINE__, "the callback's exception was not rethrown");
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()) == "from the callback" && calls == 1);
    }
    CHECK(!rx.try_recv(buf)); // the batch was consumed

    // A moved-from handle: calls throw, nothing crashes.
    shmring::sender moved = std::move(tx);
    EXPECT_ERROR(tx.try_send(forty), shmring::errc::invalid_argument);
    CHECK(moved.try_send(forty));
    CHECK(rx.recv(buf) == 40);

    // The sender goes: the receiver sees disconnected, as an exception.
    { shmring::sender gone = std::move(moved); }
    EXPECT_ERROR(rx.recv(buf), shmring::errc::disconnected);
    EXPECT_ERROR(rx.recv(buf, TIMEOUT), shmring::errc::disconnected);
    EXPECT_ERROR(rx.recv(), shmring::errc::disconnected);

    // Semaphores and events.
    shmring::sync_options so{};
    so.max_count = 1;
    auto sem = shmring::semaphore::create_memfd(so);
    CHECK(sem.post());
    CHECK(!sem.post());
    CHECK(sem.value() == 1);
    CHECK(sem.try_wait());
    CHECK(!sem.try_wait());
    CHECK(!sem.wait(2ms));
    auto ev = shmring::event::create_memfd();
    CHECK(!ev.wait(2ms));
    const std::uint32_t key = ev.prepare();
    ev.notify_all();
    CHECK(ev.wait_from(key, TIMEOUT));

    // An address-based transport: the listener's address names the port picked;
    // such endpoints have no readiness descriptor; the sender's departure ends
    // the receiver.
    auto listener = shmring::listener::listen("tcp://127.0.0.1:0");
    const std::string address = listener.address();
    CHECK(address.rfind("tcp://127.0.0.1:", 0) == 0 && address != "tcp://127.0.0.1:0");
    CHECK(!listener.accept(0ms));
    auto transport_tx = shmring::transport_sender::connect(address, TIMEOUT);
    auto transport_rx = listener.accept(TIMEOUT);
    CHECK(transport_rx.has_value());
    EXPECT_ERROR(transport_tx.readiness_fd(), shmring::errc::unsupported);
    send_text(transport_tx, "over tcp");
    auto over = transport_rx->recv(TIMEOUT);
    CHECK(over && std::string(over->begin(), over->end()) == "over tcp");
    { auto gone = std::move(transport_tx); }
    EXPECT_ERROR(transport_rx->recv(TIMEOUT), shmring::errc::disconnected);
}

// The parent's side of a session: COUNT messages out through `tx`, each echo
// checked from `rx`, at most WINDOW in flight. Returns the echoes' checksum sum.
std::uint64_t stream(shmring::msg_sender tx, shmring::msg_receiver rx, std::uint64_t count) {
    std::vector<std::uint8_t> out(MAX_LEN);
    std::array<std::uint8_t, MAX_LEN> in{};
    std::uint64_t sent_sum = 0, echo_sum = 0, received = 0;
    auto receive_echo = [&] {
        auto n = rx.recv(in, TIMEOUT);
        CHECK(n.has_value());
        echo_sum += checked(in.data(), *n, received++);
    };
    for (std::uint64_t i = 0; i < count; i++) {
        const std::size_t len = pattern_len(i, MAX_LEN);
        sent_sum += pattern_fill(out.data(), i, len);
        CHECK(tx.send(out.data(), len, TIMEOUT));
        if (i + 1 - received >= WINDOW) receive_echo();
    }
    while (received < count) receive_echo();
    CHECK(echo_sum == sent_sum);
    return echo_sum;
}

// SPSC: channels "a" (parent to child) and "b" (back); the child echoes with a
// zero-copy read and grant.
std::uint64_t spsc_session(const char *prefix, std::uint64_t count) {
    const std::string a = name_of(prefix, "spsc-a"), b = name_of(prefix, "spsc-b");
    int ready[2];
    CHECK(pipe(ready) == 0);
    const pid_t pid = fork_child([&] {
        close(ready[1]);
        await_ready(ready[0]);
        auto rx = shmring::channel::open(a, fenced()).receiver();
        auto tx = shmring::channel::open(b, fenced()).sender();
        for (std::uint64_t i = 0;; i++) {
            std::optional<shmring::read_message> read;
            try {
                read = rx.read(TIMEOUT);
            } catch (const shmring::error &e) {
                CHECK(e.code() == shmring::errc::disconnected && i == count);
                return;
            }
            CHECK(read.has_value());
            checked(read->data(), read->size(), i);
            auto grant = tx.grant(read->size(), TIMEOUT);
            CHECK(grant.has_value());
            std::memcpy(grant->data(), read->data(), read->size());
            grant->commit();
            read->release();
        }
    });
    close(ready[0]);
    std::uint64_t sum;
    {
        auto a_channel = shmring::channel::create(a, 1 << 16, fenced());
        auto b_channel = shmring::channel::create(b, 1 << 16, fenced());
        auto rx = b_channel.receiver();
        {
            auto tx = a_channel.sender();
            signal_ready(ready[1]);
            sum = stream(tx, rx, count);
            CHECK(!rx.try_recv()); // nothing more until our sender goes
        }
        // Our sender gone, the child's receive throws disconnected and it
        // leaves: so does our receive.
        std::array<std::uint8_t, 16> buf{};
        EXPECT_ERROR(rx.recv(buf, TIMEOUT), shmring::errc::disconnected);
    }
    wait_child(pid);
    return sum;
}

// MPMC: two channels of 64 slots; the child echoes through vectors.
std::uint64_t mpmc_session(const char *prefix, std::uint64_t count) {
    const std::string a = name_of(prefix, "mpmc-a"), b = name_of(prefix, "mpmc-b");
    int ready[2];
    CHECK(pipe(ready) == 0);
    const pid_t pid = fork_child([&] {
        close(ready[1]);
        await_ready(ready[0]);
        auto a_channel = shmring::mpmc::open(a, fenced());
        auto b_channel = shmring::mpmc::open(b, fenced());
        auto rx = a_channel.receiver();
        auto tx = b_channel.sender();
        std::vector<std::uint8_t> message;
        for (std::uint64_t i = 0;; i++) {
            try {
                CHECK(rx.recv_into(message, TIMEOUT));
            } catch (const shmring::error &e) {
                CHECK(e.code() == shmring::errc::disconnected && i == count);
                return;
            }
            checked(message.data(), message.size(), i);
            CHECK(tx.send(message, TIMEOUT));
        }
    });
    close(ready[0]);
    std::uint64_t sum;
    {
        auto a_channel = shmring::mpmc::create(a, 64, MAX_LEN, 4, fenced());
        auto b_channel = shmring::mpmc::create(b, 64, MAX_LEN, 4, fenced());
        CHECK(a_channel.max_message_len() == MAX_LEN);
        auto rx = b_channel.receiver();
        {
            auto tx = a_channel.sender();
            std::vector<std::uint8_t> big(MAX_LEN + 1);
            EXPECT_ERROR(tx.try_send(big), shmring::errc::message_too_large);
            signal_ready(ready[1]);
            sum = stream(tx, rx, count);
            CHECK(!rx.try_recv());
        }
        EXPECT_ERROR(rx.recv(TIMEOUT), shmring::errc::disconnected);
        CHECK(a_channel.stats().lost == 0 && b_channel.stats().skipped == 0);
    }
    wait_child(pid);
    return sum;
}

// A connection: the child listens in a private directory and echoes COUNT
// messages through caller buffers, then leaves.
std::uint64_t connection_session(const char *prefix, std::uint64_t count,
                                 shmring::transport *transport) {
    char dir[] = "/tmp/shmring-cpp-wrapper-XXXXXX";
    CHECK(mkdtemp(dir) != nullptr);
    const std::string name = name_of(prefix, "conn");
    int ready[2];
    CHECK(pipe(ready) == 0);
    const pid_t pid = fork_child([&] {
        close(ready[0]);
        shmring::conn_listener_options lo{};
        lo.directory = dir;
        lo.capacity = 1 << 16;
        auto listener = shmring::conn_listener::bind(name, lo);
        CHECK(!listener.try_accept());
        signal_ready(ready[1]);
        auto accepted = listener.accept(TIMEOUT);
        CHECK(accepted.has_value());
        shmring::msg_receiver rx = accepted->receiver();
        shmring::msg_sender tx = accepted->sender();
        std::vector<std::uint8_t> message(MAX_LEN);
        for (std::uint64_t i = 0; i < count; i++) {
            const std::size_t n = rx.recv(message);
            checked(message.data(), n, i);
            tx.send(message.data(), n);
        }
    });
    close(ready[1]);
    await_ready(ready[0]);
    std::uint64_t sum;
    {
        shmring::connect_options co{};
        co.directory = dir;
        auto conn = shmring::connection::connect(name, TIMEOUT, co);
        *transport = conn.transport();
        const std::size_t max = conn.sender().max_message_len();
        CHECK(max == (1 << 16) / 2 - 8);
        std::vector<std::uint8_t> big(max + 1);
        EXPECT_ERROR(conn.sender().try_send(big), shmring::errc::message_too_large);
        sum = stream(conn.sender(), conn.receiver(), count);
        // The child has left after its last echo.
        EXPECT_ERROR(conn.receiver().recv(TIMEOUT), shmring::errc::disconnected);
    }
    wait_child(pid);
    CHECK(rmdir(dir) == 0);
    return sum;
}

// RPC: a forked C++ server answers COUNT / 10 calls (the request reversed); a
// request "fail" makes its handler throw, which reaches the client as
// errc::remote with the handler's message; the client's departure ends the server.
void rpc_session(const char *prefix, std::uint64_t count) {
    const std::string req = name_of(prefix, "rpc-req"), resp = name_of(prefix, "rpc-resp");
    int ready[2];
    CHECK(pipe(ready) == 0);
    const pid_t pid = fork_child([&] {
        close(ready[1]);
        await_ready(ready[0]);
        shmring::rpc_server server(shmring::channel::open(req, fenced()),
                                   shmring::channel::open(resp, fenced()));
        auto handler = [](const std::uint8_t *request, std::size_t len, std::uint8_t *response,
                          std::size_t cap) -> std::size_t {
            if (std::string_view(reinterpret_cast<const char *>(request), len) == "fail")
                throw std::runtime_error("the handler refused");
            CHECK(len <= cap);
            for (std::size_t i = 0; i < len; i++) response[i] = request[len - 1 - i];
            return len;
        };
        for (;;) {
            try {
                CHECK(server.serve_one(handler, TIMEOUT));
            } catch (const shmring::error &e) {
                CHECK(e.code() == shmring::errc::disconnected);
                return;
            }
        }
    });
    close(ready[0]);
    {
        auto requests = shmring::channel::create(req, 4096, fenced());
        auto responses = shmring::channel::create(resp, 4096, fenced());
        shmring::rpc_client client(requests, responses);
        signal_ready(ready[1]);
        std::array<std::uint8_t, 64> out{};
        for (std::uint64_t i = 0; i < count / 10; i++) {
            const std::string request = "call " + std::to_string(i);
            const std::string reversed(request.rbegin(), request.rend());
            if (i % 2 == 0) {
                const std::size_t n = client.call(request, out);
                CHECK(std::string(out.begin(), out.begin() + static_cast<long>(n)) == reversed);
            } else {
                const std::vector<std::uint8_t> answer = client.call(request);
                CHECK(std::string(answer.begin(), answer.end()) == reversed);
            }
        }
        try {
            (void)client.call(std::string_view("fail"));
            fail(__LINE__, "no exception");
        } catch (const shmring::error &e) {
            CHECK(e.code() == shmring::errc::remote);
            CHECK(e.details().find("the handler refused") != std::string::npos);
        }
        const auto timed = client.call("ok", 2, out.data(), out.size(), TIMEOUT);
        CHECK(timed == std::optional<std::size_t>(2) && out[0] == 'k');
    }
    wait_child(pid);
}

// The peer of a Rust listener: echoes `count` checked messages, each received
// into a vector and sent back from it, then sees the listener leave.
int rust_peer(const char *name, const char *dir, std::uint64_t count) {
    shmring::connect_options co{};
    co.directory = dir;
    auto conn = shmring::connection::connect(name, co);
    shmring::msg_receiver rx = conn.receiver();
    shmring::msg_sender tx = conn.sender();
    std::vector<std::uint8_t> message;
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < count; i++) {
        rx.recv_into(message);
        sum += checked(message.data(), message.size(), i);
        tx.send(message);
    }
    EXPECT_ERROR(rx.recv(message), shmring::errc::disconnected);
    std::printf("ok: echoed %llu messages, sum=%llu\n", static_cast<unsigned long long>(count),
                static_cast<unsigned long long>(sum));
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    if (argc == 5 && std::strcmp(argv[1], "client") == 0) {
        try {
            return rust_peer(argv[2], argv[3], std::strtoull(argv[4], nullptr, 10));
        } catch (const std::exception &e) {
            std::fprintf(stderr, "uncaught: %s\n", e.what());
            return 1;
        }
    }
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: cpp_wrapper NAME_PREFIX [COUNT] | client NAME DIRECTORY COUNT\n");
        return 2;
    }
    const char *prefix = argv[1];
    const std::uint64_t count = argc == 3 ? std::strtoull(argv[2], nullptr, 10) : 10000;
    try {
        local_checks();
        const std::uint64_t spsc = spsc_session(prefix, count);
        const std::uint64_t mpmc = mpmc_session(prefix, count);
        shmring::transport transport = shmring::transport::tcp;
        const std::uint64_t conn = connection_session(prefix, count, &transport);
        rpc_session(prefix, count);
        CHECK(spsc == mpmc && mpmc == conn);
        std::printf("ok: %d checks, %llu echoed messages per session (connection over %s), "
                    "sum=%llu\n",
                    checks, static_cast<unsigned long long>(count),
                    transport == shmring::transport::shared_memory ? "shared memory"
                                                                   : "unix socket",
                    static_cast<unsigned long long>(spsc));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "uncaught: %s\n", e.what());
        return 1;
    }
    return 0;
}
