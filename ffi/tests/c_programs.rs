//! C programs against `include/shmring.h` and the built library, compiled with the
//! system C compiler (C11, `-Wall -Wextra -Werror -pedantic`) and C++ compiler
//! (C++17), talking to Rust across processes.
//!
//! The valgrind run is `#[ignore]`d here and run by `.ci/run`:
//! `cargo test -p shmring-ffi --test c_programs -- --ignored valgrind`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Link, compile, expect_success, pattern, unique, wait_with_deadline};
use shmring::ChannelBuilder;

/// Messages per cross-process test (each one checked, byte by byte).
const COUNT: u64 = 100_000;
/// The longest message of the pattern (the shortest is 12 bytes).
const MAX_LEN: usize = 1024;
/// Per blocking call, on either side.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Per C program.
const LIMIT: Duration = Duration::from_secs(120);

/// The C program's closing line.
fn ok_line(count: u64, sum: u64) -> String {
    format!("ok count={count} sum={sum}\n")
}

/// Runs the self-checking C program `source` (in `tests/c/`) with `args`, within
/// [`LIMIT`]; it must exit 0 and print a line starting with `ok: `, which is
/// returned.
fn run_checked(source: &str, link: Link, args: &[&str]) -> String {
    let program = compile(source, link);
    let child = Command::new(&program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {source}: {e}"));
    let output = wait_with_deadline(child, LIMIT, source);
    let stdout = expect_success(&output, source);
    assert!(stdout.starts_with("ok: "), "{source}: {stdout}");
    stdout
}

/// Whether valgrind is here ([`common::require`]).
fn have_valgrind() -> bool {
    common::require("valgrind")
}

/// A command running the C program at `program` under valgrind's memcheck
/// (forked and exec'd children included): exit status 1 on any error or definite
/// leak.
fn valgrind(program: &std::path::Path) -> Command {
    let mut command = Command::new("valgrind");
    command
        .args(["-q", "--error-exitcode=1", "--leak-check=full"])
        .args(["--errors-for-leak-kinds=definite", "--trace-children=yes"])
        .arg(program)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// [`run_checked`] under [`valgrind`].
fn run_checked_under_valgrind(source: &str, args: &[&str]) {
    let program = compile(source, Link::Shared);
    let what = format!("valgrind: {source}");
    let child = valgrind(&program)
        .args(args)
        .spawn()
        .expect("spawn valgrind");
    let output = wait_with_deadline(child, LIMIT, &what);
    let stdout = expect_success(&output, &what);
    assert!(stdout.starts_with("ok: "), "{what}: {stdout}");
}

#[derive(Debug, Clone, Copy)]
enum Copying {
    Copy,
    ZeroCopy,
}

impl Copying {
    fn mode(self) -> &'static str {
        match self {
            Copying::Copy => "copy",
            Copying::ZeroCopy => "zero-copy",
        }
    }
}

/// A C sender (spawned, opening the channel by name) to a Rust receiver.
fn c_sender_to_rust_receiver(how: Copying) {
    let start = Instant::now();
    let peer = compile("peer.c", Link::Shared);
    let name = unique("c2r");
    let channel = ChannelBuilder::shm(&name)
        .capacity(1 << 16)
        .create()
        .expect("create the channel");
    let mut rx = channel.receiver().expect("claim the receiver");
    let child = Command::new(&peer)
        .args(["send", how.mode(), &format!("open:{name}")])
        .args([COUNT.to_string(), MAX_LEN.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C sender");

    let mut buf = vec![0u8; MAX_LEN];
    let mut sum = 0u64;
    for i in 0..COUNT {
        let checked = match how {
            Copying::Copy => {
                let n = rx.recv_timeout(&mut buf, TIMEOUT).expect("receive");
                pattern::check(&buf[..n], i, MAX_LEN)
            }
            Copying::ZeroCopy => {
                let message = rx.read_timeout(TIMEOUT).expect("read");
                let checked = pattern::check(&message, i, MAX_LEN);
                message.release();
                checked
            }
        };
        sum += u64::from(checked.unwrap_or_else(|e| panic!("from C: {e}")));
    }
    match rx.recv_timeout(&mut buf, TIMEOUT) {
        Err(shmring::RecvTimeoutError::Disconnected) => {}
        other => panic!("after the last message: {other:?}, expected Disconnected"),
    }
    let output = wait_with_deadline(child, LIMIT, "the C sender");
    let stdout = expect_success(&output, "the C sender");
    assert_eq!(stdout, ok_line(COUNT, sum));
    assert_eq!(sum, pattern::total(COUNT, MAX_LEN));
    eprintln!(
        "{COUNT} messages C -> Rust ({}) in {:?}",
        how.mode(),
        start.elapsed()
    );
}

/// A Rust sender to a C receiver (spawned, given a memfd's descriptor, or opening
/// the channel by name).
fn rust_sender_to_c_receiver(how: Copying, memfd: bool) {
    let start = Instant::now();
    let peer = compile("peer.c", Link::Shared);
    let name = unique("r2c");
    let builder = if memfd {
        ChannelBuilder::memfd()
    } else {
        ChannelBuilder::shm(&name)
    };
    let channel = builder
        .capacity(1 << 16)
        .create()
        .expect("create the channel");
    let mut tx = channel.sender().expect("claim the sender");
    let mut command = Command::new(&peer);
    command.args(["recv", how.mode()]);
    if memfd {
        channel.pass_to(&mut command, "SHMRING_TEST_FD");
        command.arg("env:SHMRING_TEST_FD");
    } else {
        command.arg(format!("open:{name}"));
    }
    let child = command
        .args([COUNT.to_string(), MAX_LEN.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C receiver");
    drop(channel); // the sender keeps the segment; the child has its descriptor

    let mut buf = vec![0u8; MAX_LEN];
    let mut sum = 0u64;
    for i in 0..COUNT {
        let len = pattern::len(i, MAX_LEN);
        match how {
            Copying::Copy => {
                sum += u64::from(pattern::fill(&mut buf[..len], i));
                tx.send_timeout(&buf[..len], TIMEOUT).expect("send");
            }
            Copying::ZeroCopy => {
                let mut grant = tx.grant_timeout(len, TIMEOUT).expect("grant");
                sum += u64::from(pattern::fill(&mut grant, i));
                grant.commit(len);
            }
        }
    }
    drop(tx); // the C receiver then sees SHMRING_E_DISCONNECTED
    let output = wait_with_deadline(child, LIMIT, "the C receiver");
    let stdout = expect_success(&output, "the C receiver");
    assert_eq!(stdout, ok_line(COUNT, sum));
    eprintln!(
        "{COUNT} messages Rust -> C ({}, {}) in {:?}",
        how.mode(),
        if memfd { "memfd" } else { "shm" },
        start.elapsed()
    );
}

#[test]
fn c_sender_to_rust_receiver_copy() {
    c_sender_to_rust_receiver(Copying::Copy);
}

#[test]
fn c_sender_to_rust_receiver_zero_copy() {
    c_sender_to_rust_receiver(Copying::ZeroCopy);
}

#[test]
fn rust_sender_to_c_receiver_copy_over_memfd() {
    rust_sender_to_c_receiver(Copying::Copy, true);
}

#[test]
fn rust_sender_to_c_receiver_zero_copy() {
    rust_sender_to_c_receiver(Copying::ZeroCopy, false);
}

/// Two C processes: a batch sender that creates a memfd channel and spawns a batch
/// receiver with the descriptor inherited.
#[test]
fn c_batches_between_c_processes_over_memfd() {
    let peer = compile("peer.c", Link::Shared);
    let child = Command::new(&peer)
        .args(["send", "batch", "spawn:batch"])
        .args([COUNT.to_string(), MAX_LEN.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C sender");
    let output = wait_with_deadline(child, LIMIT, "the C batch pair");
    let stdout = expect_success(&output, "the C batch pair");
    let line = ok_line(COUNT, pattern::total(COUNT, MAX_LEN));
    // Both processes print the same line: the receiver (spawned) and the sender.
    assert_eq!(stdout, format!("{line}{line}"));
}

/// Every documented failure, provoked from C (`tests/c/bad_input.c`), linked
/// against the staticlib.
#[test]
fn c_bad_input_returns_documented_codes() {
    let stdout = run_checked("bad_input.c", Link::Static, &[&unique("bad")]);
    eprint!("bad_input: {stdout}");
}

/// The address-based transports from C (`tests/c/transports.c`): bad addresses,
/// nobody listening, NULL handles, then for `unix:`, `mq:` and
/// `tcp://127.0.0.1:0` a forked C child sends 1000 checked messages to its parent,
/// which then sees `SHMRING_E_DISCONNECTED`.
#[test]
fn c_transports_across_fork() {
    let start = Instant::now();
    let stdout = run_checked("transports.c", Link::Shared, &[&unique("tr")]);
    let sum = pattern::total(1000, 1024);
    assert!(stdout.ends_with(&format!(" sum={sum}\n")), "{stdout}");
    eprint!("transports ({:?}): {stdout}", start.elapsed());
}

/// Events and semaphores from C (`tests/c/sync_objects.c`): bad input, then across
/// `fork`: a named event wakes a child, a child posts a semaphore 500 times and the
/// parent takes 500 units, memfd objects opened by descriptor; timeouts, maximum.
#[test]
fn c_events_and_semaphores_across_fork() {
    let stdout = run_checked("sync_objects.c", Link::Shared, &[&unique("so")]);
    eprint!("sync_objects: {stdout}");
}

/// `tests/c/sync_objects.c` under valgrind (memcheck, forked children included):
/// no errors, no definite leaks.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_events_and_semaphores() {
    if have_valgrind() {
        run_checked_under_valgrind("sync_objects.c", &[&unique("vgso")]);
    }
}

/// Shared values from C (`tests/c/shared_value.c`): bad input (NULLs, sizes out
/// of range, unknown flags, a missing value, an event opened as a value, a value
/// passed as a writer); in one process, each outcome of a read with its own code,
/// text and message (no value yet, a buffer too small, busy while a live writer
/// keeps `seq` odd, a dead writer's torn value until a new writer publishes), the
/// writer role taken, wrong write lengths, `open_or_create` of another size; then
/// across `fork`, for a named value and for a memfd value opened from its
/// descriptor, a writer process publishes 20,000 versions whose bytes all equal
/// the version's low byte while a polling and a waiting reader process check
/// every byte of every copy and that versions never go backwards.
#[test]
fn c_shared_values_across_fork() {
    let stdout = run_checked("shared_value.c", Link::Shared, &[&unique("sv")]);
    eprint!("shared_value: {stdout}");
}

/// `tests/c/shared_value.c` under valgrind (memcheck, forked children included),
/// with fewer versions and the values' fences symmetric (valgrind refuses
/// `membarrier`): no errors, no definite leaks.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_shared_values() {
    if have_valgrind() {
        run_checked_under_valgrind("shared_value.c", &[&unique("vgsv"), "500", "symmetric"]);
    }
}

/// Shared mutexes from C (`tests/c/shared_mutex.c`): bad input (NULLs, sizes
/// out of range, unknown flags, a missing mutex, an event and a shared value
/// opened as a mutex, a value handle passed as one); in one process, each
/// outcome with its code (unlock, mark, read, write without the lock; a second
/// lock on the handle; another handle's try_lock and timed lock while it is
/// held; a short buffer, a wrong write length; close unlocking); then across
/// `fork`, for a named mutex and a memfd one, five processes each add 1 to a
/// shared u64 2,000 times under the lock and the sum is exact; and a child
/// SIGKILLed holding the lock gives the parent `SHMRING_E_OWNER_DIED` with the
/// lock held (by `lock` and by `try_lock`), again after an unlock without the
/// mark, and `SHMRING_OK` after `mark_consistent`.
#[test]
fn c_shared_mutexes_across_fork() {
    let stdout = run_checked("shared_mutex.c", Link::Shared, &[&unique("sm")]);
    eprint!("shared_mutex: {stdout}");
}

/// `tests/c/shared_mutex.c` under valgrind (memcheck, forked children
/// included), with fewer rounds (the mutex uses no fence pair: nothing to make
/// symmetric): no errors, no definite leaks.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_shared_mutexes() {
    if have_valgrind() {
        run_checked_under_valgrind("shared_mutex.c", &[&unique("vgsm"), "50"]);
    }
}

/// MPMC channels from C (`tests/c/mpmc.c`): bad input (shapes, a full endpoint
/// table, full and empty rings, timeouts, `Disconnected`), then 2 producer × 2
/// consumer processes across `fork`: per-producer order in each consumer, counts
/// and sums exact, nothing skipped or lost.
#[test]
fn c_mpmc_across_fork() {
    let stdout = run_checked("mpmc.c", Link::Shared, &[&unique("mp")]);
    eprint!("mpmc: {stdout}");
}

/// `tests/c/mpmc.c` under valgrind (memcheck, forked children included), with
/// fewer messages: no errors, no definite leaks.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_mpmc() {
    if have_valgrind() {
        run_checked_under_valgrind("mpmc.c", &[&unique("vgmp"), "500"]);
    }
}

/// Broadcast topics from C (`tests/c/broadcast.c`): bad input (NULLs, an unknown
/// policy and start, a bad shape, a second publisher, a full table, a publisher
/// passed as a receiver), a gated topic filling up behind a subscriber that does
/// not read; across fork over a memfd topic opened from its descriptors: 3 gated
/// subscriber processes each get every numbered, checksummed message in order
/// exactly once, then `Disconnected`; a lossy subscriber that sleeps is lapped,
/// gets `SHMRING_E_LAGGED` with the count, and its gaps equal the counts. In
/// place, on a strict topic: the borrow rules of grants and reads in one process
/// (`SHMRING_E_BUSY`, `_NOT_BORROWED`, unread, a held read holding the publisher
/// back), `SHMRING_E_UNSUPPORTED` on a gated topic, and 2 subscriber processes
/// reading in place every message the publisher wrote in place.
#[test]
fn c_broadcast_across_fork() {
    let stdout = run_checked("broadcast.c", Link::Shared, &[&unique("bc")]);
    eprint!("broadcast: {stdout}");
}

/// `tests/c/broadcast.c` under valgrind (memcheck, forked children included),
/// with fewer messages: no errors, no definite leaks.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_broadcast() {
    if have_valgrind() {
        run_checked_under_valgrind("broadcast.c", &[&unique("vgbc"), "2000"]);
    }
}

/// Readiness descriptors from C (`tests/c/readiness.c`), for SPSC and MPMC
/// senders and receivers in one process: arming an empty (full) ring returns
/// `SHMRING_ARMED` and the descriptor stays quiet; a message (a freed slot) makes
/// it readable and arming then returns `SHMRING_READY`; the sender's departure
/// wakes an armed receiver, which then sees `SHMRING_E_DISCONNECTED`; NULL
/// handles, a borrowed handle and an oversized arm return their codes; a memfd
/// opened from a bare descriptor is polled, says why, and wakes with no message;
/// connections to a forked client, over shared memory and over the socket: quiet
/// when armed, readable after the client's reply and after it closes, ending in
/// `SHMRING_E_DISCONNECTED`.
#[test]
fn c_readiness_descriptors() {
    let stdout = run_checked("readiness.c", Link::Shared, &[&unique("rd")]);
    eprint!("readiness: {stdout}");
}

/// The example `examples/epoll_mixed_kinds.c`: one `epoll_wait` loop serves an
/// SPSC receiver, an MPMC receiver and a broadcast subscriber, fed by four forked
/// processes (one SPSC sender, two MPMC senders, the publisher), and a timerfd; it
/// checks every message's feeder, number (in order per feeder, none lost or
/// duplicated), length and bytes, that each source says disconnected only after
/// all its feeders sent (the publisher is SIGKILLed without closing), and fails if
/// the run passes its deadline (a wake-up that never came).
#[test]
fn c_example_epoll_mixed_kinds() {
    const COUNT: u64 = 20_000;
    let stdout = run_checked(
        "examples/epoll_mixed_kinds.c",
        Link::Shared,
        &[&unique("ep"), &COUNT.to_string()],
    );
    assert!(
        stdout.starts_with(&format!(
            "ok: spsc {COUNT}, mpmc {}, topic {COUNT} messages in order",
            2 * COUNT
        )),
        "{stdout}"
    );
    eprint!("epoll_mixed_kinds: {stdout}");
}

/// Request/response from C (`tests/c/rpc.c`): bad input, roles and timeouts in
/// one process, then across `fork`: a C server's handler answers 10,000 checked
/// calls, a handler's error arrives as `SHMRING_E_REMOTE` with its message, a
/// call times out and its late response goes to nobody, a response too large for
/// the buffer reports its length, a handler's bad length is refused; closing the
/// client disconnects the server.
#[test]
fn c_rpc_across_fork() {
    let stdout = run_checked("rpc.c", Link::Shared, &[&unique("rpc")]);
    eprint!("rpc: {stdout}");
}

/// `tests/c/rpc.c` under valgrind (memcheck, the forked server included), with
/// fewer calls: no errors, no definite leaks.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_rpc() {
    if have_valgrind() {
        run_checked_under_valgrind("rpc.c", &[&unique("vgrpc"), "200"]);
    }
}

/// Connections from C (`tests/c/connection.c`): bad input, nobody listening
/// (`SHMRING_E_NOT_FOUND`), a name taken; then across `fork`, a C listener echoes
/// 10,000 checked messages to a C client over shared memory, then over the Unix
/// socket (socket-only policy; a shared-memory-only client is refused with
/// `SHMRING_E_HANDSHAKE` first); the echoes' checksums add up.
#[test]
fn c_connections_across_fork() {
    const COUNT: u64 = 10_000;
    let start = Instant::now();
    let stdout = run_checked(
        "connection.c",
        Link::Shared,
        &[&unique("cn"), &COUNT.to_string()],
    );
    let sum = pattern::total(COUNT, MAX_LEN);
    assert!(stdout.ends_with(&format!(" sum={sum}\n")), "{stdout}");
    eprint!("connection ({:?}): {stdout}", start.elapsed());
}

/// `tests/c/connection.c` under valgrind (memcheck, the forked listener
/// included), with fewer messages: no errors, no definite leaks. The
/// default-policy session accepts either transport there (the listener's rings
/// use asymmetric fences: where valgrind refuses `membarrier`, the listener falls
/// back to the socket).
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_connections() {
    if have_valgrind() {
        run_checked_under_valgrind("connection.c", &[&unique("vgcn"), "300", "any"]);
    }
}

/// The C++ wrapper (`include/shmring.hpp`) from `tests/c/cpp_wrapper.cpp`, built
/// with `g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror`: in one process, the
/// `try_` forms on empty and full endpoints return `false`/`std::nullopt`,
/// timeouts run out, errors arrive as `shmring::error` with their code, name and
/// details (message too large, busy, a moved-from handle, a role taken, the peer
/// gone), byte ranges of several element types, grants aborted and reads unread by
/// their destructors, records and batches (a callback's exception rethrown),
/// readiness descriptors armed and rung, semaphores and events, a TCP transport,
/// broadcast topics (in place on a strict one; `errc::unsupported` on the others);
/// a `wait_set` over an SPSC receiver, a subscriber, a pipe, a full sender and a
/// timer fed by a forked child: every message once, the timer never early, the
/// sender ready once the child drains, and the child's SIGKILL seen by each source
/// as `errc::disconnected` (end of file for the pipe); shared values (each read
/// outcome, the writer role, typed reads and writes, a forked writer's 1,000
/// versions waited for, each whole and newer); shared mutexes (a second lock on
/// the handle, another handle's `try_lock` and timed lock while held, typed reads
/// and writes, a forked child adding under the lock with this process, the sum
/// exact, and a child SIGKILLed holding it: the next guard's `owner_died()`, until
/// `mark_consistent`); then across `fork`, over an SPSC
/// channel pair, an MPMC channel pair and a connection, the parent streams 10,000 checked messages through
/// `msg_sender`/`msg_receiver` views and a C++ child echoes each (zero-copy guards,
/// vectors, caller buffers); both sides see the other's departure as
/// `errc::disconnected`; 1,000 RPC calls to a forked C++ server, whose handler's
/// exception reaches the client as `errc::remote` with its message. The echoes'
/// checksums add up to the pattern's total, computed here in Rust.
#[test]
fn cpp_wrapper_across_fork() {
    const COUNT: u64 = 10_000;
    if !common::require("g++") {
        return;
    }
    let start = Instant::now();
    let stdout = run_checked(
        "cpp_wrapper.cpp",
        Link::Shared,
        &[&unique("cpp"), &COUNT.to_string()],
    );
    let sum = pattern::total(COUNT, MAX_LEN);
    assert!(stdout.ends_with(&format!(" sum={sum}\n")), "{stdout}");
    eprint!("cpp_wrapper ({:?}): {stdout}", start.elapsed());
}

/// A C++ client (`tests/c/cpp_wrapper.cpp client`, spawned) of a Rust connection
/// listener: Rust sends 10,000 checked messages, up to 16 ahead of their echoes; the
/// C++ side checks each, echoes it through the wrapper (a vector in, the same
/// vector out), and on the Rust side's departure gets `errc::disconnected`; Rust
/// checks every echo and the C++ checksum sum.
#[test]
fn cpp_client_to_rust_listener() {
    use std::os::unix::fs::PermissionsExt;
    const COUNT: u64 = 10_000;
    const WINDOW: u64 = 16;
    if !common::require("g++") {
        return;
    }
    let program = compile("cpp_wrapper.cpp", Link::Shared);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("cppdir"));
    std::fs::create_dir_all(&dir).expect("create the socket directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let name = unique("cppconn");
    let listener = shmring::Listener::builder(&name)
        .directory(&dir)
        .capacity(1 << 16)
        .bind()
        .expect("bind the listener");
    let child = Command::new(&program)
        .args(["client", &name])
        .arg(&dir)
        .arg(COUNT.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C++ client");
    let conn = listener
        .accept_timeout(TIMEOUT)
        .expect("accept the C++ client");
    let (mut tx, mut rx) = conn.split();
    let mut out = vec![0u8; MAX_LEN];
    let mut echo = vec![0u8; MAX_LEN];
    let (mut sent_sum, mut echo_sum, mut received) = (0u64, 0u64, 0u64);
    let mut receive = |received: &mut u64, echo_sum: &mut u64| {
        let n = rx
            .recv_timeout(&mut echo, TIMEOUT)
            .expect("receive an echo");
        let sum = pattern::check(&echo[..n], *received, MAX_LEN)
            .unwrap_or_else(|e| panic!("echo from C++: {e}"));
        *echo_sum += u64::from(sum);
        *received += 1;
    };
    for i in 0..COUNT {
        let len = pattern::len(i, MAX_LEN);
        sent_sum += u64::from(pattern::fill(&mut out[..len], i));
        tx.send_timeout(&out[..len], TIMEOUT).expect("send");
        if i + 1 - received >= WINDOW {
            receive(&mut received, &mut echo_sum);
        }
    }
    while received < COUNT {
        receive(&mut received, &mut echo_sum);
    }
    assert_eq!(echo_sum, sent_sum);
    drop(tx);
    drop(rx);
    let output = wait_with_deadline(child, LIMIT, "the C++ client");
    let stdout = expect_success(&output, "the C++ client");
    assert_eq!(
        stdout,
        format!("ok: echoed {COUNT} messages, sum={sent_sum}\n")
    );
    drop(listener); // removes its socket file
    std::fs::remove_dir(&dir).expect("the socket directory is left empty");
}

/// `tests/c/cpp_wrapper.cpp` under valgrind (memcheck, the forked children
/// included), with fewer messages: no errors, no definite leaks.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_cpp_wrapper() {
    if have_valgrind() && common::require("g++") {
        run_checked_under_valgrind("cpp_wrapper.cpp", &[&unique("vgcpp"), "300"]);
    }
}

/// The header compiles as C11 with `-Wall -Wextra -Werror -pedantic`, its layout
/// constants hold as `_Static_assert`s against a C mirror of the layout, and a live
/// segment read through that mirror agrees.
#[test]
fn c11_static_asserts_and_layout() {
    let program = compile("static_asserts.c", Link::Static);
    let output = Command::new(&program).output().expect("run static_asserts");
    assert_eq!(expect_success(&output, "static_asserts"), "ok\n");
}

/// The header compiles as C++17 with `-Wall -Wextra -Wpedantic -Werror`, and a zero-copy
/// round trip works from C++.
#[test]
fn header_compiles_as_cpp17() {
    if !common::require("g++") {
        return;
    }
    let program = compile("header_cpp.cpp", Link::Shared);
    let output = Command::new(&program).output().expect("run header_cpp");
    assert_eq!(expect_success(&output, "header_cpp"), "ok\n");
}

/// Two C processes under valgrind (memcheck; no errors, no definite leaks): a named
/// channel created inside valgrind, and memfd channels handed to an exec'd child,
/// in every copying mode. Short: valgrind is slow.
#[test]
#[ignore = "slow: .ci/run runs it (cargo test -p shmring-ffi --test c_programs -- --ignored valgrind)"]
fn valgrind_c_peers_across_processes() {
    const COUNT: u64 = 2_000;
    if !have_valgrind() {
        return;
    }
    let peer = compile("peer.c", Link::Shared);
    let line = ok_line(COUNT, pattern::total(COUNT, MAX_LEN));
    let valgrind = |args: &[&str]| {
        let mut command = valgrind(&peer);
        command
            .args(args)
            .args([COUNT.to_string(), MAX_LEN.to_string()]);
        command
    };
    let start = Instant::now();

    // A named channel: the receiver creates it (inside valgrind, with full
    // fences), the sender opens it.
    let name = unique("vg");
    let receiver = valgrind(&["recv", "zero-copy", &format!("create:{name}")])
        .spawn()
        .expect("spawn valgrind");
    let sender = valgrind(&["send", "copy", &format!("open:{name}")])
        .spawn()
        .expect("spawn valgrind");
    let sent = wait_with_deadline(sender, LIMIT, "valgrind: C sender");
    let received = wait_with_deadline(receiver, LIMIT, "valgrind: C receiver");
    assert_eq!(expect_success(&sent, "valgrind: C sender (copy)"), line);
    assert_eq!(
        expect_success(&received, "valgrind: C receiver (zero-copy)"),
        line
    );

    // memfd channels, the other side exec'd with the descriptor inherited.
    for (side, mode, child_mode) in [("send", "zero-copy", "copy"), ("recv", "batch", "batch")] {
        let pair = valgrind(&[side, mode, &format!("spawn:{child_mode}")])
            .spawn()
            .expect("spawn valgrind");
        let what = format!("valgrind: C {side} {mode} with a spawned {child_mode} peer");
        let output = wait_with_deadline(pair, LIMIT, &what);
        assert_eq!(expect_success(&output, &what), format!("{line}{line}"));
    }
    eprintln!("valgrind runs took {:?}", start.elapsed());
}
