// The C++ wrapper (include/shmring.hpp), used as a C++ program would.
//
// First, in one process: the try_ forms on empty and full endpoints (false and
// std::nullopt, never exceptions), timeouts running out, errors as shmring::error
// (message too large, a grant or read outstanding, a moved-from handle, a role
// taken, the peer gone) with their code, name and details; byte ranges of several
// element types; grants aborted and reads unread by their destructors; batches and
// records; readiness descriptors armed and rung; semaphores and events; a TCP
// transport; broadcast topics (grants and reads in place on a strict one); a
// wait_set, in one process and across fork over an SPSC receiver, a subscriber,
// a pipe, a full sender and a timer, until its feeding child's SIGKILL. Typed
// values: send_value and recv_value of a 32-byte struct through an SPSC channel
// and an MPMC channel (a forked sender), a wrong-length message a value_error with
// both lengths, consumed. Shared values: each outcome of a read, the writer role,
// typed reads and writes, and a forked writer's 1000 versions waited for.
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
#include <signal.h>
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

// Broadcast topics in one process: a gated topic reaches two subscribers, each
// gets every message in order, and its publisher arms for room once one holds it
// back; a lossy one laps a subscriber, which catches
// `lagged_error` with the count and then reads on in order.
void broadcast_checks() {
    shmring::topic_config config = shmring::topic_config_defaults();
    CHECK(config.policy == SHMRING_POLICY_LOSSY);
    config.capacity = 4096;
    config.subscriber_slots = 4;
    config.policy = SHMRING_POLICY_GATED;
    {
        shmring::topic topic = shmring::topic::create_memfd(config);
        CHECK(topic.config().policy == SHMRING_POLICY_GATED);
        shmring::publisher pub = topic.publisher();
        EXPECT_ERROR(topic.publisher(), shmring::errc::role_taken);
        shmring::subscriber a = topic.subscriber();
        shmring::subscriber b = topic.subscriber(shmring::start::oldest);
        CHECK(pub.subscribers() == 2);
        for (std::uint64_t i = 1; i <= 1000; i++) {
            pub.send(&i, sizeof i);
            for (shmring::subscriber *s : {&a, &b}) {
                std::uint64_t got = 0;
                CHECK(s->recv(&got, sizeof got) == sizeof got);
                CHECK(got == i);
            }
        }
        CHECK(a.next_seq() == 1001);
        CHECK(!a.try_recv().has_value());
        // The publisher's readiness (a memfd topic's is polled): ready while
        // nothing holds it back, armed once `b` does.
        CHECK(pub.readiness_fd() >= 0);
        CHECK(pub.wakeups().kind == shmring::wakeup_kind::polled);
        CHECK(pub.arm_for_space(8) == shmring::readiness::ready);
        std::uint64_t filler = 0;
        while (pub.try_send(&filler, sizeof filler)) {
            CHECK(a.try_recv().has_value());
        }
        CHECK(pub.arm_for_space(8) == shmring::readiness::armed);
    }
    {
        config.policy = SHMRING_POLICY_LOSSY;
        shmring::topic topic = shmring::topic::create_memfd(config);
        shmring::publisher pub = topic.publisher();
        shmring::subscriber sub = topic.subscriber();
        for (std::uint64_t i = 1; i <= 1000; i++) {
            pub.send(&i, sizeof i);
        }
        std::uint64_t missed = 0;
        try {
            std::uint64_t got = 0;
            (void)sub.recv(&got, sizeof got);
            fail(__LINE__, "a lapped subscriber received without lagged_error");
        } catch (const shmring::lagged_error &e) {
            CHECK(e.code() == shmring::errc::lagged);
            missed = e.missed();
        }
        if (!(missed > 800 && missed < 1000)) fail(__LINE__, "missed " + std::to_string(missed));
        std::uint64_t next = missed + 1;
        while (auto m = sub.try_recv()) {
            std::uint64_t got = 0;
            std::memcpy(&got, m->data(), sizeof got);
            CHECK(got == next);
            next++;
        }
        CHECK(next == 1001);
    }
    {
        // In place on a strict topic: grants and reads end as the SPSC ones do;
        // a publisher's commit says how many subscribers are joined.
        static_assert(std::is_void_v<decltype(std::declval<shmring::write_grant &>().commit(0))>);
        static_assert(std::is_same_v<decltype(std::declval<shmring::publish_grant &>().commit(0)),
                                     std::uint32_t>);
        config.policy = SHMRING_POLICY_STRICT;
        shmring::topic topic = shmring::topic::create_memfd(config);
        shmring::publisher pub = topic.publisher();
        shmring::subscriber a = topic.subscriber();
        shmring::subscriber b = topic.subscriber();
        {
            auto grant = pub.grant(16);
            CHECK(grant.active() && grant.size() == 16);
            CHECK(reinterpret_cast<std::uintptr_t>(grant.data()) % 8 == 0);
            std::memset(grant.data(), 'x', grant.size());
            EXPECT_ERROR(pub.send(std::string_view("no")), shmring::errc::busy);
            EXPECT_ERROR(pub.try_grant(8), shmring::errc::busy);
        }
        // The destroyed grant published nothing.
        CHECK(!a.try_read());
        CHECK(!a.read(1ms));
        CHECK(!b.try_recv());
        CHECK(a.next_seq() == 1);
        {
            auto grant = pub.try_grant(32);
            CHECK(grant.has_value());
            std::memcpy(grant->data(), "in place", 8);
            EXPECT_ERROR(grant->commit(33), shmring::errc::invalid_argument);
            CHECK(grant->active());
            CHECK(grant->commit(8) == 2);
            CHECK(!grant->active());
            EXPECT_ERROR(grant->commit(1), shmring::errc::not_borrowed);
        }
        {
            auto grant = pub.grant(5, TIMEOUT);
            CHECK(grant.has_value());
            std::memcpy(grant->data(), "again", 5);
            auto moved = std::move(*grant);
            CHECK(!grant->active() && moved.active());
            CHECK(moved.commit() == 2);
        }
        // A destroyed read leaves the message to be read again.
        {
            auto read = a.read();
            CHECK(std::string(read.begin(), read.end()) == "in place");
            EXPECT_ERROR(a.try_recv(), shmring::errc::busy);
            EXPECT_ERROR(a.try_read(), shmring::errc::busy);
        }
        CHECK(a.next_seq() == 1);
        {
            auto read = a.try_read();
            CHECK(read && std::string(read->begin(), read->end()) == "in place");
            read->release();
            CHECK(!read->active());
            EXPECT_ERROR(read->release(), shmring::errc::not_borrowed);
        }
        CHECK(a.next_seq() == 2);
        {
            auto read = a.read(TIMEOUT);
            CHECK(read && read->size() == 5 && std::memcmp(read->data(), "again", 5) == 0);
            auto moved = std::move(*read);
            CHECK(!read->active() && moved.active());
            moved.release();
        }
        CHECK(a.next_seq() == 3);
        CHECK(!a.try_read());
        CHECK(b.recv() == (std::vector<std::uint8_t>{'i', 'n', ' ', 'p', 'l', 'a', 'c', 'e'}));
        // b holds the publisher back: its unread messages fill the topic.
        std::uint64_t published = 0;
        while (auto grant = pub.try_grant(256)) {
            std::memcpy(grant->data(), &published, sizeof published);
            CHECK(grant->commit() == 2);
            published++;
        }
        CHECK(published > 4 && published < 4096 / 256);
        CHECK(!pub.grant(256, 1ms));
        CHECK(b.recv() == (std::vector<std::uint8_t>{'a', 'g', 'a', 'i', 'n'}));
        for (std::uint64_t i = 0; i < published; i++) {
            auto read = b.read(TIMEOUT);
            std::uint64_t got = ~i;
            CHECK(read && read->size() == 256);
            std::memcpy(&got, read->data(), sizeof got);
            CHECK(got == i);
            read->release();
            // a reads the same message, copying.
            auto copy = a.recv();
            CHECK(copy.size() == 256 && std::memcmp(copy.data(), &i, sizeof i) == 0);
        }
        CHECK(!b.try_read());
        CHECK(pub.try_grant(256).has_value());
    }
    for (shmring_policy policy : {SHMRING_POLICY_LOSSY, SHMRING_POLICY_GATED}) {
        // Not in place: the publisher may overwrite a message while it is read.
        config.policy = policy;
        shmring::topic topic = shmring::topic::create_memfd(config);
        shmring::publisher pub = topic.publisher();
        shmring::subscriber sub = topic.subscriber();
        EXPECT_ERROR(pub.try_grant(8), shmring::errc::unsupported);
        EXPECT_ERROR(pub.grant(8), shmring::errc::unsupported);
        EXPECT_ERROR(pub.grant(8, 1ms), shmring::errc::unsupported);
        pub.send(std::string_view("copied"));
        EXPECT_ERROR(sub.try_read(), shmring::errc::unsupported);
        EXPECT_ERROR(sub.read(), shmring::errc::unsupported);
        EXPECT_ERROR(sub.read(1ms), shmring::errc::unsupported);
        CHECK(sub.recv() == (std::vector<std::uint8_t>{'c', 'o', 'p', 'i', 'e', 'd'}));
    }
}

// shmring::wait_set. In one process: an empty set refuses an endless wait and
// sleeps out a timeout; one receiver added twice (one descriptor, registered
// twice through a duplicate) is reported under both indices, then under the one
// left after a removal; a sender's oversized length is the wait's error; an
// MPMC receiver is ready with a message, and not before. Across fork, one set over an SPSC receiver, a broadcast subscriber, a pipe, a full
// SPSC sender and a timer, fed by a child: every message and byte once and in
// order, the timer never before its time (twice: reset once), the full sender
// not ready until the child drains its ring, then ready with room; SIGKILL of
// the child makes the receivers and the pipe ready, and their next call reports
// the departure (errc::disconnected, end of file) with nothing extra.
void wait_set_checks(const char *prefix) {
    using clock = shmring::wait_set::clock;
    {
        shmring::wait_set set;
        EXPECT_ERROR(set.wait(), shmring::errc::invalid_argument);
        const auto t0 = clock::now();
        CHECK(set.wait_for(20ms).empty());
        CHECK(clock::now() - t0 >= 20ms);

        auto channel = shmring::channel::create_memfd(4096, fenced());
        auto rx = channel.receiver();
        auto tx = channel.sender();
        const std::size_t a = set.add(rx);
        const std::size_t b = set.add(rx);
        CHECK(a == 0 && b == 1 && set.size() == 2);
        CHECK(set.wait_for(0ms).empty());
        tx.send(std::string_view("x"));
        CHECK((set.wait() == std::vector<std::size_t>{a, b}));
        set.remove(b);
        set.remove(b); // removed already: nothing
        CHECK(set.size() == 1);
        CHECK((set.wait_for(TIMEOUT) == std::vector<std::size_t>{a}));
        std::array<char, 8> buf{};
        CHECK(rx.try_recv(buf) == 1u);
        CHECK(set.wait_for(0ms).empty());
        EXPECT_ERROR(set.reset_timer(a, clock::now()), shmring::errc::invalid_argument);
        const std::size_t big = set.add(tx, tx.max_message_len() + 1);
        EXPECT_ERROR(set.wait_for(0ms), shmring::errc::message_too_large);
        set.remove(big);
        CHECK(set.wait_for(0ms).empty());

        // An MPMC receiver, in the same set.
        auto jobs = shmring::mpmc::create_memfd(8, 64, 4, fenced());
        auto job_rx = jobs.receiver();
        auto job_tx = jobs.sender();
        const std::size_t c = set.add(job_rx);
        CHECK(set.wait_for(0ms).empty());
        job_tx.send(std::string_view("job"));
        CHECK((set.wait_for(TIMEOUT) == std::vector<std::size_t>{c}));
        CHECK(job_rx.try_recv(buf) == 3u);
        set.remove(c);
    }

    constexpr std::uint64_t N = 200;
    const std::string down_name = name_of(prefix, "ws-down"), up_name = name_of(prefix, "ws-up"),
                      topic_name = name_of(prefix, "ws-topic");
    int go[2], claimed[2], data[2];
    CHECK(pipe(go) == 0 && pipe(claimed) == 0 && pipe(data) == 0);
    const pid_t pid = fork_child([&] {
        close(go[1]);
        close(claimed[0]);
        close(data[0]);
        await_ready(go[0]);
        auto down = shmring::channel::open(down_name, fenced()).sender();
        auto up = shmring::channel::open(up_name, fenced()).receiver();
        auto pub = shmring::topic::open(topic_name, fenced()).publisher();
        signal_ready(claimed[1]);
        for (std::uint64_t i = 0; i < N; i++) {
            down.send(&i, sizeof i);
            pub.send(&i, sizeof i);
            const auto byte = static_cast<unsigned char>(i);
            CHECK(write(data[1], &byte, 1) == 1);
            if (i % 50 == 49) usleep(2000); // the parent runs dry and sleeps
        }
        usleep(50000); // the parent sleeps with the full sender armed
        for (std::uint64_t j = 0;; j++) {
            std::uint64_t v = 0;
            CHECK(up.recv(&v, sizeof v, TIMEOUT) == std::optional<std::size_t>(sizeof v));
            if (v == UINT64_MAX) break; // the parent's message sent on room
            CHECK(v == j);
        }
        const auto byte = static_cast<unsigned char>(N);
        CHECK(write(data[1], &byte, 1) == 1); // drained: byte N
        for (;;) pause(); // until SIGKILL
    });
    close(go[0]);
    close(claimed[1]);
    close(data[1]);

    auto down_channel = shmring::channel::create(down_name, 4096, fenced());
    auto up_channel = shmring::channel::create(up_name, 256, fenced());
    shmring::topic_config config = shmring::topic_config_defaults();
    config.capacity = 4096;
    config.subscriber_slots = 2;
    config.policy = SHMRING_POLICY_GATED;
    auto topic = shmring::topic::create(topic_name, config, fenced());
    auto rx = down_channel.receiver();
    auto tx = up_channel.sender();
    auto sub = topic.subscriber(shmring::start::oldest);
    std::uint64_t filled = 0;
    while (tx.try_send(&filled, sizeof filled)) filled++;
    CHECK(filled > 0);

    shmring::wait_set set;
    const std::size_t room = set.add(tx, sizeof(std::uint64_t));
    // Full, and nobody receives yet: not ready.
    CHECK(set.wait_for(0ms).empty());
    signal_ready(go[1]);
    await_ready(claimed[0]);
    const std::size_t from_down = set.add(rx);
    const std::size_t from_topic = set.add(sub);
    const std::size_t from_pipe = set.add_fd(data[0]);
    auto due = clock::now() + 30ms;
    const std::size_t timer = set.add_timer(due);

    std::uint64_t got_down = 0, got_topic = 0, got_bytes = 0, spurious = 0;
    int fired = 0;
    bool sent_on_room = false;
    while (!(got_down == N && got_topic == N && got_bytes == N + 1 && fired == 2 &&
             sent_on_room)) {
        const std::vector<std::size_t> ready = set.wait_for(TIMEOUT);
        if (ready.empty()) fail(__LINE__, "wait_set: nothing ready for 20 s");
        for (const std::size_t i : ready) {
            std::uint64_t v = 0;
            if (i == from_down) {
                while (auto n = rx.try_recv(&v, sizeof v)) {
                    CHECK(*n == sizeof v && v == got_down);
                    got_down++;
                }
            } else if (i == from_topic) {
                while (auto n = sub.try_recv(&v, sizeof v)) {
                    CHECK(*n == sizeof v && v == got_topic);
                    got_topic++;
                }
            } else if (i == from_pipe) {
                unsigned char bytes[64];
                const ssize_t k = read(data[0], bytes, sizeof bytes);
                CHECK(k > 0);
                for (ssize_t j = 0; j < k; j++) {
                    CHECK(bytes[j] == static_cast<unsigned char>(got_bytes));
                    got_bytes++;
                }
            } else if (i == room) {
                // Room appears only when the child drains, after its messages.
                CHECK(got_bytes > 0);
                v = UINT64_MAX;
                if (tx.try_send(&v, sizeof v)) {
                    set.remove(room);
                    sent_on_room = true;
                } else {
                    spurious++;
                }
            } else if (i == timer) {
                const auto now = clock::now();
                CHECK(now >= due);
                if (++fired == 1) {
                    due = now + 30ms;
                    set.reset_timer(timer, due);
                } else {
                    set.remove(timer);
                }
            } else {
                fail(__LINE__, "wait_set: an index never added: " + std::to_string(i));
            }
        }
    }
    CHECK(got_down == N && got_topic == N && got_bytes == N + 1);

    CHECK(kill(pid, SIGKILL) == 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    // Each departure makes its source ready, and its next call says so.
    auto departed = [&](shmring::msg_receiver in, std::size_t index) {
        try {
            std::uint64_t v = 0;
            CHECK(!in.try_recv(&v, sizeof v)); // nothing more; at worst spurious
        } catch (const shmring::error &e) {
            CHECK(e.code() == shmring::errc::disconnected);
            set.remove(index);
        }
    };
    while (set.size() > 0) {
        const std::vector<std::size_t> ready = set.wait_for(TIMEOUT);
        if (ready.empty()) fail(__LINE__, "wait_set: a departure never made its source ready");
        for (const std::size_t i : ready) {
            if (i == from_down) {
                departed(rx, i);
            } else if (i == from_topic) {
                departed(sub, i);
            } else if (i == from_pipe) {
                unsigned char byte = 0;
                CHECK(read(data[0], &byte, 1) == 0); // end of file, nothing extra
                set.remove(i);
                close(data[0]);
            } else {
                fail(__LINE__, "wait_set: a removed index: " + std::to_string(i));
            }
        }
    }
    if (spurious > 0) std::fprintf(stderr, "wait_set: %llu spurious room wake-ups\n",
                                   static_cast<unsigned long long>(spurious));
}

} // namespace

// A 32-byte trivially copyable value, its padding a named field.
struct sample {
    std::uint64_t seq;
    std::uint32_t id;
    std::uint8_t pad[4];
    double value;
    std::uint64_t tag;
};
static_assert(sizeof(sample) == 32);

sample sample_of(std::uint64_t seq) {
    return sample{seq, static_cast<std::uint32_t>(seq * 2654435761u), {0, 0, 0, 0},
                  static_cast<double>(seq) * 0.5, seq ^ 0x5a5a5a5a5a5a5a5aull};
}

bool same(const sample &a, const sample &b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Expects `call` to throw value_error for a message of `len` bytes read as a
// sample.
template <class Call>
void expect_value_error(int line, Call &&call, std::size_t len) {
    try {
        call();
    } catch (const shmring::value_error &e) {
        if (e.code() != shmring::errc::bad_size || e.len() != len ||
            e.expected() != sizeof(sample)) {
            fail(line, std::string("value_error: ") + e.what());
        }
        checks++;
        return;
    }
    fail(line, "no value_error");
}

// Typed values: in one process on an SPSC channel (empty, timeouts, wrong
// lengths: each a value_error, consumed), then from a forked sender through an
// MPMC channel, received through a msg_receiver view.
void typed_checks(const char *prefix) {
    const std::array<std::uint8_t, 3> short_message{1, 2, 3};
    {
        auto channel = shmring::channel::create_memfd(4096, fenced());
        auto tx = channel.sender();
        auto rx = channel.receiver();
        CHECK(!rx.try_recv_value<sample>());
        CHECK(!rx.recv_value<sample>(2ms));
        CHECK(tx.try_send_value(sample_of(1)));
        tx.send_value(sample_of(2));
        CHECK(tx.send_value(sample_of(3), TIMEOUT));
        CHECK(same(*rx.try_recv_value<sample>(), sample_of(1)));
        CHECK(same(rx.recv_value<sample>(), sample_of(2)));
        CHECK(same(*rx.recv_value<sample>(TIMEOUT), sample_of(3)));
        const std::array<std::uint8_t, 40> long_message{};
        tx.send(short_message);
        tx.send(long_message);
        tx.send_value(sample_of(4));
        expect_value_error(__LINE__, [&] { (void)rx.try_recv_value<sample>(); }, 3);
        expect_value_error(__LINE__, [&] { (void)rx.recv_value<sample>(TIMEOUT); }, 40);
        CHECK(same(rx.recv_value<sample>(), sample_of(4)));
        CHECK(!rx.try_recv());
    }

    // Forked before this process makes the channel (as the sessions below): the
    // child holds none of the parent's endpoints.
    const std::string name = name_of(prefix, "typed-mpmc");
    const std::uint64_t count = 1000;
    int ready[2];
    CHECK(pipe(ready) == 0);
    const pid_t pid = fork_child([&] {
        close(ready[1]);
        await_ready(ready[0]);
        auto child_mpmc = shmring::mpmc::open(name, fenced());
        auto child_tx = child_mpmc.sender();
        for (std::uint64_t i = 0; i < count; i++) child_tx.send_value(sample_of(i));
        child_tx.send(short_message);
    });
    close(ready[0]);
    {
        auto mpmc = shmring::mpmc::create(name, 64, 64, 4, fenced());
        auto mpmc_rx = mpmc.receiver();
        signal_ready(ready[1]);
        shmring::msg_receiver view(mpmc_rx.native_msg_receiver());
        for (std::uint64_t i = 0; i < count; i++) {
            auto got = view.recv_value<sample>(TIMEOUT);
            CHECK(got && same(*got, sample_of(i)));
        }
        expect_value_error(__LINE__, [&] { (void)view.recv_value<sample>(TIMEOUT); }, 3);
    }
    wait_child(pid);
}

// Shared values: in one process, no value yet (std::nullopt), a buffer too
// small, a timeout, the writer role taken, wrong write lengths, a typed write and
// read, a type of another size (errc::bad_size), a moved-from value; then a
// forked writer, opening the memfd from its descriptor, publishes 1000 versions
// of a sample stamped with its version while this process waits for each newer
// one: each whole, versions only rising.
void shared_value_checks() {
    shmring::sync_options so{};
    so.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
    auto value = shmring::shared_value::create_memfd(sizeof(sample), so);
    CHECK(value.size() == sizeof(sample));
    CHECK(!value.read_value<sample>());
    std::array<std::uint8_t, 8> small{};
    EXPECT_ERROR(value.read(small), shmring::errc::buffer_too_small);
    CHECK(!value.wait_for_value<sample>(0, 2ms));
    {
        auto writer = value.writer();
        EXPECT_ERROR(value.writer(), shmring::errc::role_taken);
        CHECK(writer.next_version() == 1);
        CHECK(writer.write_value(sample_of(1)) == 1);
        EXPECT_ERROR(writer.write(small), shmring::errc::invalid_argument);
        EXPECT_ERROR(writer.write_value(std::uint64_t{1}), shmring::errc::invalid_argument);
        CHECK(writer.next_version() == 2);
    }
    const auto got = value.read_value<sample>();
    CHECK(got && got->version == 1 && same(got->value, sample_of(1)));
    EXPECT_ERROR(value.read_value<std::uint64_t>(), shmring::errc::bad_size);
    std::array<std::uint64_t, 4> words{};
    CHECK(value.read(words) == std::optional<std::uint64_t>(1));
    CHECK(!value.wait_for_version(1, words.data(), sizeof words, 2ms));
    shmring::shared_value moved = std::move(value);
    EXPECT_ERROR(value.size(), shmring::errc::invalid_argument);

    constexpr std::uint64_t last_version = 1001;
    const int fd = moved.fd();
    const pid_t pid = fork_child([&] {
        auto child_value = shmring::shared_value::open_fd(fd, so);
        auto writer = child_value.writer();
        for (std::uint64_t v = 2; v <= last_version; v++) {
            CHECK(writer.write_value(sample_of(v)) == v);
            if (v % 64 == 0) usleep(50);
        }
    });
    std::uint64_t last = 1;
    while (last < last_version) {
        const auto next = moved.wait_for_value<sample>(last, TIMEOUT);
        CHECK(next && next->version > last && same(next->value, sample_of(next->version)));
        last = next->version;
    }
    wait_child(pid);
}

// Shared mutexes: in one process, a clean guard, a second lock on the handle
// (errc::already_locked), another handle's try_lock and timed lock while it is
// held (std::nullopt), a typed read and write, a type of another size
// (errc::bad_size), an explicit unlock twice (errc::not_borrowed); a forked child
// adding 1000 times while this process does (the sum exact); then a forked child
// SIGKILLed holding the lock: the guard says owner_died() with the child's
// write, again after an unlock without the mark, and not after mark_consistent.
void shared_mutex_checks() {
    auto m = shmring::shared_mutex::create_memfd(sizeof(std::uint64_t));
    auto other = shmring::shared_mutex::open_fd(m.fd());
    CHECK(m.size() == sizeof(std::uint64_t));
    {
        auto guard = m.lock();
        CHECK(!guard.owner_died());
        CHECK(guard.read_value<std::uint64_t>() == 0);
        guard.write_value(std::uint64_t{5});
        EXPECT_ERROR(m.lock(), shmring::errc::already_locked);
        EXPECT_ERROR(m.try_lock(), shmring::errc::already_locked);
        CHECK(!other.try_lock());
        CHECK(!other.lock(2ms));
        EXPECT_ERROR(guard.read_value<std::uint32_t>(), shmring::errc::bad_size);
        guard.unlock();
        EXPECT_ERROR(guard.unlock(), shmring::errc::not_borrowed);
    }
    {
        auto guard = other.try_lock();
        CHECK(guard && !guard->owner_died() && guard->read_value<std::uint64_t>() == 5);
        guard->write_value(std::uint64_t{0});
    }

    constexpr std::uint64_t adds = 1000;
    const int fd = m.fd();
    const pid_t adder = fork_child([&] {
        auto own = shmring::shared_mutex::open_fd(fd);
        for (std::uint64_t i = 0; i < adds; i++) {
            auto guard = own.lock();
            guard.write_value(guard.read_value<std::uint64_t>() + 1);
        }
    });
    for (std::uint64_t i = 0; i < adds; i++) {
        auto guard = m.lock();
        guard.write_value(guard.read_value<std::uint64_t>() + 1);
    }
    wait_child(adder);
    CHECK(m.lock().read_value<std::uint64_t>() == 2 * adds);

    int ready[2];
    CHECK(pipe(ready) == 0);
    const pid_t holder = fork_child([&] {
        close(ready[0]);
        auto own = shmring::shared_mutex::open_fd(fd);
        auto guard = own.lock();
        guard.write_value(std::uint64_t{0xdead});
        signal_ready(ready[1]);
        for (;;) pause();
    });
    close(ready[1]);
    CHECK(readable(ready[0], 20000));
    close(ready[0]);
    CHECK(!m.try_lock());
    CHECK(kill(holder, SIGKILL) == 0);
    int status = 0;
    CHECK(waitpid(holder, &status, 0) == holder && WIFSIGNALED(status));
    {
        auto guard = m.lock(TIMEOUT);
        CHECK(guard && guard->owner_died() && guard->read_value<std::uint64_t>() == 0xdead);
    }
    {
        auto guard = m.lock();
        CHECK(guard.owner_died());
        guard.write_value(std::uint64_t{0});
        guard.mark_consistent();
        CHECK(!guard.owner_died());
    }
    CHECK(!m.lock().owner_died());
}

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
        broadcast_checks();
        wait_set_checks(prefix);
        typed_checks(prefix);
        shared_value_checks();
        shared_mutex_checks();
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
