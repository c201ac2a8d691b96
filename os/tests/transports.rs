//! Each fallback transport through its own types: what the conformance suite
//! (`tests/conformance.rs`) cannot see through the traits.
//!
//! Covered: a stream receiver keeps a message for a larger buffer; a frame the
//! kernel takes in part is kept and finished, and a truncated last frame is not
//! delivered; a foreign peer's oversized frame; seqpacket's empty packets and its
//! limit; TCP on loopback by default, `TCP_NODELAY`; pipes handed to a spawned
//! child both ways; `SIGPIPE` with its default disposition (a C host) survived,
//! and Rust's `SIG_IGN` assumption; FIFOs: refusals (not a FIFO, not ours, too
//! open, a link), a reader waiting for its first writer, a writer without reader;
//! message queues: the system limits named for an unprivileged creator and under
//! a lowered `RLIMIT_MSGQUEUE`, root's ceiling, sizes, roles, liveness, clean-up;
//! everything created `0600` under any umask; addresses parsed and printed.

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::transport::fifo::{FifoReceiver, FifoSender};
use shmring::transport::mq::{self, MqBuilder};
use shmring::transport::seqpacket::{self, SeqpacketListener};
use shmring::transport::tcp::{self, TcpListener};
use shmring::transport::unix::{self, UnixListener};
use shmring::transport::{Address, DEFAULT_MAX_MESSAGE_LEN, MessageReceiver, listen, pipe};
use shmring::{Error, Role};
use shmring::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(50);

fn child_start() -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(Duration::from_secs(120));
    true
}

fn mkfifo(path: &Path, mode: u32) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c` is NUL-terminated and alive across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), mode) }, 0, "mkfifo");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn sockopt(fd: std::os::fd::BorrowedFd<'_>, level: i32, name: i32) -> i32 {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are writable for their sizes across the call.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt");
    value
}

// ---------------------------------------------------------------------------
// Stream framing (Unix stream sockets, TCP, pipes, FIFOs share it)
// ---------------------------------------------------------------------------

#[test]
fn a_stream_receiver_keeps_a_message_for_a_larger_buffer() {
    let dir = TempDir::new("keep");
    let listener = UnixListener::bind(dir.path().join("s")).unwrap();
    let (mut tx, _) = unix::connect(listener.path()).unwrap();
    let (_, mut rx) = listener.accept_timeout(LONG).unwrap();
    let message: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    tx.send(&message).unwrap();
    tx.send(b"next").unwrap();
    let mut small = [0u8; 10];
    match rx.recv_timeout(&mut small, LONG) {
        Err(RecvTimeoutError::BufferTooSmall {
            len: 1000,
            buffer: 10,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        rx.buffered_len() >= 4 + 1000,
        "the message is in the receiver's buffer"
    );
    match rx.try_recv(&mut small) {
        Err(TryRecvError::BufferTooSmall {
            len: 1000,
            buffer: 10,
        }) => {}
        other => panic!("again: {other:?}"),
    }
    let mut buf = vec![0u8; 1000];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 1000);
    assert_eq!(buf, message);
    assert_eq!(rx.recv_vec_deadline(None).unwrap(), b"next");
    drop(tx);
    assert!(matches!(
        rx.recv_timeout(&mut buf, LONG),
        Err(RecvTimeoutError::Disconnected)
    ));
}

#[test]
fn a_frame_taken_in_part_is_kept_then_finished_or_dropped_whole() {
    let dir = TempDir::new("partial");
    let listener = UnixListener::bind(dir.path().join("s")).unwrap();
    let (tx, _) = unix::connect(listener.path()).unwrap();
    let (_, rx) = listener.accept_timeout(LONG).unwrap();
    // Larger than any socket buffer (at most net.core.wmem_max, 4 MiB here):
    // the kernel takes part of it.
    const BIG: usize = 8 * DEFAULT_MAX_MESSAGE_LEN;
    let (mut tx, mut rx) = (tx.with_max_message_len(BIG), rx.with_max_message_len(BIG));
    let big: Vec<u8> = (0..BIG).map(|i| (i % 253) as u8).collect();
    tx.try_send(&big).expect("accepted");
    let pending = tx.pending_len();
    assert!(pending > 0 && pending < big.len(), "pending {pending}");
    assert!(
        matches!(tx.try_send(b"x"), Err(TrySendError::Full { .. })),
        "nothing else until the tail is written"
    );
    let start = Instant::now();
    assert!(matches!(
        tx.send_timeout(b"x", SHORT),
        Err(SendTimeoutError::TimedOut)
    ));
    assert!(start.elapsed() >= SHORT);
    let reader = thread::spawn(move || {
        let first = rx.recv_vec_deadline(Some(Instant::now() + LONG)).unwrap();
        let second = rx.recv_vec_deadline(Some(Instant::now() + LONG)).unwrap();
        (rx, first, second)
    });
    tx.flush().unwrap();
    assert_eq!(tx.pending_len(), 0);
    tx.send(b"after").unwrap();
    let (mut rx, first, second) = reader.join().unwrap();
    assert!(first == big, "the large message arrives whole");
    assert_eq!(second, b"after");

    // A deadline that passes inside a frame: accepted, tail kept. Then the sender
    // goes with the tail unwritten: the receiver drops the truncated frame.
    tx.send(b"whole").unwrap();
    tx.send_timeout(&big, SHORT).expect("accepted midway");
    assert!(tx.pending_len() > 0);
    drop(tx);
    assert_eq!(
        rx.recv_vec_deadline(Some(Instant::now() + LONG)).unwrap(),
        b"whole"
    );
    match rx.recv_vec_deadline(Some(Instant::now() + LONG)) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("a truncated frame: {:?}", other.map(|m| m.len())),
    }
}

#[test]
fn a_frame_over_the_receivers_limit_is_named_and_stays_an_error() {
    let listener = TcpListener::bind_loopback(0).unwrap();
    let mut foreign = std::net::TcpStream::connect(listener.local_addr()).unwrap();
    let (_, rx) = listener.accept_timeout(LONG).unwrap();
    let mut rx = rx.with_max_message_len(1000);
    assert_eq!(rx.max_message_len(), 1000);
    foreign.write_all(&1001u32.to_le_bytes()).unwrap();
    foreign.write_all(&[0u8; 1001]).unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        match rx.recv_timeout(&mut buf, LONG) {
            Err(RecvTimeoutError::FrameTooLong(f)) if f.len == 1001 && f.max == 1000 => {
                assert!(f.what.starts_with("tcp 127.0.0.1:"), "{}", f.what)
            }
            other => panic!("{other:?}"),
        }
    }
    // And a sender refuses at the call what its own limit does not allow.
    let (tx, _) = tcp::connect(listener.local_addr()).unwrap();
    let mut tx = tx.with_max_message_len(10);
    assert_eq!(tx.max_message_len(), 10);
    assert!(matches!(
        tx.send(&[0u8; 11]),
        Err(SendError::MessageTooLarge { len: 11, max: 10 })
    ));
}

// ---------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------

#[test]
fn unix_listeners_refuse_a_taken_path_and_remove_their_own() {
    let dir = TempDir::new("unix-paths");
    let path = dir.path().join("taken");
    std::fs::write(&path, b"not a socket").unwrap();
    assert!(matches!(
        UnixListener::bind(&path),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        SeqpacketListener::bind(&path),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"not a socket",
        "left untouched"
    );
    assert!(matches!(
        unix::connect(&path),
        Err(Error::ConnectionRefused { .. })
    ));
    let sock = dir.path().join("s");
    let listener = UnixListener::bind(&sock).unwrap();
    assert_eq!(mode_of(&sock), 0o600);
    assert_eq!(listener.path(), sock);
    // Replaced by someone else: not ours to remove.
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, b"other").unwrap();
    drop(listener);
    assert!(
        sock.exists(),
        "a file that replaced the socket is not removed"
    );
    std::fs::remove_file(&sock).unwrap();
    let listener = SeqpacketListener::bind(&sock).unwrap();
    drop(listener);
    assert!(!sock.exists(), "the listener removes its socket");
    assert!(matches!(
        UnixListener::bind(dir.path().join("no-such-dir/s")),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn seqpacket_keeps_empty_packets_apart_from_the_end() {
    let dir = TempDir::new("seqpacket");
    let listener = SeqpacketListener::bind(dir.path().join("s")).unwrap();
    let (mut tx, _) = seqpacket::connect(listener.path()).unwrap();
    for m in [&b""[..], b"", b"three", b""] {
        tx.send(m).unwrap();
    }
    drop(tx);
    let (_, mut rx) = listener.accept_timeout(LONG).unwrap();
    let mut buf = vec![0u8; rx.max_message_len()];
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(&mut buf, LONG) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [&b""[..], b"", b"three", b""]);
}

#[test]
fn seqpacket_limit_is_the_send_buffer_and_can_be_raised() {
    let dir = TempDir::new("seqpacket-limit");
    let listener = SeqpacketListener::bind(dir.path().join("s")).unwrap();
    let (tx, _) = seqpacket::connect(listener.path()).unwrap();
    let (_, rx) = listener.accept_timeout(LONG).unwrap();
    let sndbuf = sockopt(tx.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF) as usize;
    assert_eq!(tx.max_message_len(), sndbuf - 32);
    assert_eq!(rx.max_message_len(), tx.max_message_len());
    let wmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Far over what the kernel allows anyone: named.
    let too_much = (wmem_max as usize) * 4;
    let dir2 = TempDir::new("seqpacket-limit2");
    let listener2 = SeqpacketListener::bind(dir2.path().join("s")).unwrap();
    let (tx2, _) = seqpacket::connect(listener2.path()).unwrap();
    match tx2.with_max_message_len(too_much) {
        Err(Error::LimitExceeded { limit, value, .. }) => {
            assert_eq!(limit, "/proc/sys/net/core/wmem_max");
            assert_eq!(value, wmem_max);
        }
        other => panic!("{:?}", other.map(|t| t.max_message_len())),
    }
    // Within wmem_max: a larger packet goes through whole.
    let want = (wmem_max as usize).min(1 << 20);
    let mut tx = tx.with_max_message_len(want).unwrap();
    let mut rx = rx.with_max_message_len(want);
    let message: Vec<u8> = (0..want).map(|i| (i % 241) as u8).collect();
    let sender = thread::spawn(move || {
        tx.send_timeout(&message, LONG).unwrap();
        message
    });
    let got = rx.recv_vec_deadline(Some(Instant::now() + LONG)).unwrap();
    assert!(got == sender.join().unwrap());
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

#[test]
fn tcp_listens_on_loopback_unless_told_and_sets_nodelay() {
    let listener = TcpListener::bind_loopback(0).unwrap();
    let local = listener.local_addr();
    assert!(local.ip().is_loopback() && local.port() != 0, "{local}");
    let mut any = listen("tcp://:0").unwrap();
    match any.address() {
        Address::Tcp { host, port } => assert!(host == "127.0.0.1" && *port != 0),
        other => panic!("{other}"),
    }
    let address = any.address().to_string();
    let connect =
        thread::spawn(move || tcp::connect_timeout(address.trim_start_matches("tcp://"), LONG));
    let rx = any.accept_timeout(LONG).unwrap();
    let (tx, _) = connect.join().unwrap().unwrap();
    assert_eq!(sockopt(tx.as_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
    assert_eq!(sockopt(tx.as_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
    drop(rx);
    // Taken port.
    assert!(matches!(
        TcpListener::bind_loopback(local.port()),
        Err(Error::AlreadyExists { .. })
    ));
}

// ---------------------------------------------------------------------------
// Pipes
// ---------------------------------------------------------------------------

const PIPES_VAR: &str = "SHMRING_TEST_ECHO_PIPES";

/// Child: takes the pipes from the environment (checks the variable is gone
/// after) and echoes every message until the parent's end closes.
#[test]
fn child_pipe_echo() {
    if !child_start() {
        return;
    }
    // SAFETY: the parent passed these pipes to this child, and this is the one call.
    let (mut tx, mut rx) = unsafe { pipe::from_env(PIPES_VAR) }.expect("from_env");
    loop {
        match rx.recv_vec_deadline(Some(Instant::now() + LONG)) {
            Ok(message) => tx.send(&message).expect("echo"),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("child: {e}"),
        }
    }
}

#[test]
fn pipe_spawn_hands_a_child_both_directions() {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            "child_pipe_echo",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .stdout(std::process::Stdio::null());
    let (mut child, mut tx, mut rx) = pipe::spawn(&mut command, PIPES_VAR).unwrap();
    let mut scratch = Vec::new();
    for seq in 0..200u64 {
        tx.send(&stream_message(seq, STREAM_MAX)).unwrap();
        let echo = rx.recv_vec_deadline(Some(Instant::now() + LONG)).unwrap();
        check_stream(seq, STREAM_MAX, &echo, &mut scratch).unwrap();
    }
    drop(tx);
    assert!(matches!(
        rx.recv_vec_deadline(Some(Instant::now() + LONG)),
        Err(RecvTimeoutError::Disconnected)
    ));
    assert!(child.wait().unwrap().success());
}

#[test]
fn rust_programs_ignore_sigpipe_as_the_pipe_transport_assumes() {
    // SAFETY: a null new action only queries SIGPIPE's disposition into `old`.
    let old = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old),
            0
        );
        old
    };
    assert_eq!(
        old.sa_sigaction,
        libc::SIG_IGN,
        "Rust's runtime sets SIGPIPE to SIG_IGN"
    );
}

/// Child: restores SIGPIPE's default (death), as a C host would have it, then
/// writes to a pipe and a FIFO whose readers have gone: each write must report
/// `Disconnected` and the process live on, with no SIGPIPE left pending or
/// blocked.
#[test]
fn child_sigpipe_default() {
    if !child_start() {
        return;
    }
    // SAFETY: setting a signal's disposition to SIG_DFL has no other effect.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let (mut tx, rx) = pipe::pipe().unwrap();
    tx.send(b"before").unwrap();
    drop(rx);
    for round in 0..3 {
        report(
            "PIPE",
            format!("{round} {:?}", tx.try_send(b"into nothing")),
        );
    }
    report("PIPE", format!("3 {:?}", tx.send(b"into nothing")));
    let dir = TempDir::new("sigpipe");
    let path = dir.path().join("f");
    let fifo_rx = FifoReceiver::create(&path).unwrap();
    let mut fifo_tx = FifoSender::open(&path).unwrap();
    drop(fifo_rx);
    report("FIFO", format!("{:?}", fifo_tx.send(b"into nothing")));
    // SAFETY: sigset functions on sets we own; the queries change nothing.
    let (pending, blocked) = unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
        (
            libc::sigismember(&pending, libc::SIGPIPE),
            libc::sigismember(&mask, libc::SIGPIPE),
        )
    };
    report("SIGPIPE", format!("pending {pending} blocked {blocked}"));
}

#[test]
fn a_writer_survives_sigpipe_with_its_default_disposition() {
    let mut child = Peer::spawn("child_sigpipe_default", &[]);
    for round in 0..4 {
        assert_eq!(child.expect("PIPE"), format!("{round} Err(Disconnected)"));
    }
    assert_eq!(child.expect("FIFO"), "Err(Disconnected)");
    assert_eq!(child.expect("SIGPIPE"), "pending 0 blocked 0");
    let status = child.wait();
    assert!(
        status.success(),
        "the child died: {status:?} (signal {:?})",
        status.signal()
    );
}

/// Child: `pipe::from_env` on malformed variables and on a descriptor that is
/// not a pipe; reports each result.
#[test]
fn child_from_env_errors() {
    if !child_start() {
        return;
    }
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    for (i, value) in ["", "3", "a,b", "-1,-2", "9999,9998", &format!("{fd},{fd}")]
        .into_iter()
        .enumerate()
    {
        // SAFETY: this child runs one test on one thread (the watchdog only sleeps).
        unsafe { std::env::set_var("SHMRING_TEST_BAD", value) };
        // SAFETY: no value gets as far as taking a descriptor: each is malformed,
        // names closed descriptors, or names one descriptor twice.
        let result = unsafe { pipe::from_env("SHMRING_TEST_BAD") }.map(drop);
        report(&format!("BAD{i}"), format!("{result:?}"));
    }
    let wrong = pipe::PipeReceiver::from_fd(file.into()).map(drop);
    report("WRONG", format!("{wrong:?}"));
}

#[test]
fn pipe_from_env_refuses_what_it_was_not_given() {
    let mut child = Peer::spawn("child_from_env_errors", &[]);
    for i in 0..6 {
        let got = child.expect(&format!("BAD{i}"));
        assert!(got.starts_with("Err(NotFound"), "case {i}: {got}");
    }
    let wrong = child.expect("WRONG");
    assert!(
        wrong.contains("WrongFileType")
            && wrong.contains("expected: \"pipe\"")
            && wrong.contains("regular file"),
        "{wrong}"
    );
    child.wait_ok();
}

// ---------------------------------------------------------------------------
// FIFOs
// ---------------------------------------------------------------------------

#[test]
fn fifos_are_made_0600_and_refused_when_not_a_fifo_or_not_ours() {
    let dir = TempDir::new("fifo");
    let path = dir.path().join("f");
    let rx = FifoReceiver::create(&path).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert!(matches!(
        FifoReceiver::create(&path),
        Err(Error::AlreadyExists { .. })
    ));
    drop(rx);
    assert!(!path.exists(), "removed on drop");
    // Not a FIFO.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for result in [
        FifoSender::open(&file).map(drop),
        FifoReceiver::open(&file).map(drop),
        FifoReceiver::open(dir.path()).map(drop),
    ] {
        assert!(
            matches!(
                result,
                Err(Error::WrongFileType {
                    expected: "FIFO",
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert!(matches!(
        FifoReceiver::create(&file),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    // A link to a FIFO is not followed.
    let fifo = dir.path().join("real");
    mkfifo(&fifo, 0o600);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    assert!(matches!(
        FifoReceiver::open(&link),
        Err(Error::WrongFileType {
            found: "symbolic link",
            ..
        })
    ));
    // Others may open it: untrusted.
    let open_fifo = dir.path().join("open");
    mkfifo(&open_fifo, 0o666);
    assert!(matches!(
        FifoReceiver::open(&open_fifo),
        Err(Error::Untrusted {
            mode: 0o666,
            allowed_mode: 0o600,
            ..
        })
    ));
    // Another owner's (as root: chown it).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let theirs = dir.path().join("theirs");
        mkfifo(&theirs, 0o600);
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&theirs)
            .unwrap();
        assert!(matches!(
            FifoSender::open(&theirs),
            Err(Error::Untrusted { owner: 65534, .. })
        ));
    }
    // An existing FIFO of ours is taken, and not removed on drop.
    let rx = FifoReceiver::open(&fifo).unwrap();
    drop(rx);
    assert!(fifo.exists());
    assert!(matches!(
        FifoReceiver::create(""),
        Err(Error::InvalidAddress {
            reason: "empty path",
            ..
        })
    ));
}

#[test]
fn a_fifo_reader_waits_for_its_first_writer_and_a_writer_for_a_reader() {
    let dir = TempDir::new("fifo-wait");
    let path = dir.path().join("f");
    // No reader yet: refused, then timed out no earlier than asked.
    mkfifo(&path, 0o600);
    assert!(matches!(
        FifoSender::open(&path),
        Err(Error::ConnectionRefused { .. })
    ));
    let start = Instant::now();
    assert!(matches!(
        FifoSender::open_timeout(&path, SHORT),
        Err(Error::TimedOut)
    ));
    assert!(start.elapsed() >= SHORT);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        FifoSender::open(&path),
        Err(Error::NotFound { .. })
    ));
    // A reader before any writer: empty, not the end.
    let writer_path = path.clone();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        let mut tx = FifoSender::open_timeout(&writer_path, LONG).unwrap();
        tx.send(b"hello").unwrap();
    });
    let mut rx = FifoReceiver::create(&path).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    let start = Instant::now();
    assert!(matches!(
        rx.recv_timeout(&mut buf, SHORT),
        Err(RecvTimeoutError::TimedOut)
    ));
    assert!(start.elapsed() >= SHORT);
    let n = rx.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(&buf[..n], b"hello");
    writer.join().unwrap();
    assert!(matches!(
        rx.recv_timeout(&mut buf, LONG),
        Err(RecvTimeoutError::Disconnected)
    ));
}

// ---------------------------------------------------------------------------
// Message queues
// ---------------------------------------------------------------------------

fn proc_u64(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Child: drops to nobody and asks for a queue one message larger, then one
/// message longer, than the system allows (reports `SIZE`, `COUNT`), then one
/// within the limits (`OK`).
#[test]
fn child_mq_unprivileged_limits() {
    if !child_start() {
        return;
    }
    become_nobody();
    let name = param("NAME");
    let msgsize_max = proc_u64("/proc/sys/fs/mqueue/msgsize_max") as usize;
    let msg_max = proc_u64("/proc/sys/fs/mqueue/msg_max") as usize;
    let size = MqBuilder::new(&name)
        .max_message_len(msgsize_max + 1)
        .create_receiver();
    report("SIZE", format!("{:?}", size.map(drop)));
    let count = MqBuilder::new(&name)
        .capacity(msg_max + 1)
        .create_receiver();
    report("COUNT", format!("{:?}", count.map(drop)));
    let ok = MqBuilder::new(&name)
        .max_message_len(msgsize_max)
        .capacity(msg_max)
        .create_receiver();
    report("OK", format!("{:?}", ok.map(|rx| rx.max_message_len())));
}

#[test]
fn mq_system_limits_are_named_for_an_unprivileged_creator() {
    if !root_or_skip("mq_system_limits_are_named_for_an_unprivileged_creator") {
        return;
    }
    let name = unique("mq-limits");
    let mut child = Peer::spawn("child_mq_unprivileged_limits", &[("NAME", &name)]);
    let msgsize_max = proc_u64("/proc/sys/fs/mqueue/msgsize_max");
    let msg_max = proc_u64("/proc/sys/fs/mqueue/msg_max");
    let size = child.expect("SIZE");
    assert!(
        size.contains("LimitExceeded")
            && size.contains("limit: \"/proc/sys/fs/mqueue/msgsize_max\"")
            && size.contains(&format!(
                "value: {msgsize_max}, requested: {}",
                msgsize_max + 1
            ))
            && size.contains("sysctl fs.mqueue.msgsize_max"),
        "{size}"
    );
    let count = child.expect("COUNT");
    assert!(
        count.contains("limit: \"/proc/sys/fs/mqueue/msg_max\"")
            && count.contains(&format!("value: {msg_max}, requested: {}", msg_max + 1)),
        "{count}"
    );
    assert_eq!(child.expect("OK"), format!("Ok({msgsize_max})"));
    child.wait_ok();
    assert!(!Path::new(&format!("/dev/shm/shmring-mq.{name}.lock")).exists());
}

/// A uid no other test uses: `RLIMIT_MSGQUEUE` bounds the bytes of all of a
/// user's queues together, and other tests' queues would count.
const RLIMIT_TEST_UID: u32 = 64_321;

/// Child: lowers its `RLIMIT_MSGQUEUE` to `LIMIT` bytes, becomes a user with no
/// other queues, and asks for the default queue (reports `DEFAULT`), then for
/// one that fits (`SMALL`).
#[test]
fn child_mq_rlimit() {
    if !child_start() {
        return;
    }
    let limit = param_u64("LIMIT");
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: `rlimit` is a valid struct read during the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &rlimit) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
    become_user(RLIMIT_TEST_UID);
    let name = param("NAME");
    report(
        "DEFAULT",
        format!("{:?}", MqBuilder::new(&name).create_receiver().map(drop)),
    );
    let small = MqBuilder::new(&name)
        .capacity(2)
        .max_message_len(512)
        .create_receiver();
    report(
        "SMALL",
        format!("{:?}", small.map(|rx| rx.max_message_len())),
    );
}

#[test]
fn mq_rlimit_msgqueue_is_named_with_what_the_queue_needs() {
    let test = "mq_rlimit_msgqueue_is_named_with_what_the_queue_needs";
    if !mq_available(test) || !root_or_skip(test) {
        return;
    }
    let name = unique("mq-rlimit");
    let mut child = Peer::spawn("child_mq_rlimit", &[("NAME", &name), ("LIMIT", &4096)]);
    // The kernel's count for 10 messages of 8192 bytes: 10 × (8192 + 48) + 10 × 48.
    let default = child.expect("DEFAULT");
    assert!(
        default.contains("limit: \"RLIMIT_MSGQUEUE\", value: 4096, requested: 82880")
            && default.contains("ulimit -q"),
        "{default}"
    );
    assert_eq!(child.expect("SMALL"), "Ok(512)");
    child.wait_ok();
}

fn mq_available(test: &str) -> bool {
    match MqBuilder::new(unique("probe"))
        .capacity(1)
        .max_message_len(1)
        .create_receiver()
    {
        Err(Error::Unsupported { what }) => facility_missing(test, what),
        _ => true,
    }
}

/// Whether this process may go past the `fs.mqueue` sysctls (`CAP_SYS_RESOURCE`
/// in its effective set: root, though not in every container).
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    let caps = u64::from_str_radix(line["CapEff:".len()..].trim(), 16).unwrap();
    caps >> 24 & 1 == 1
}

#[test]
fn mq_the_limit_named_is_the_one_that_applies_to_this_process() {
    if !mq_available("mq_the_limit_named_is_the_one_that_applies_to_this_process") {
        return;
    }
    let msgsize_max = proc_u64("/proc/sys/fs/mqueue/msgsize_max") as usize;
    let name = unique("mq-cap");
    let over_sysctl = MqBuilder::new(&name)
        .max_message_len(msgsize_max + 1)
        .capacity(2)
        .create_receiver();
    let over_ceiling = MqBuilder::new(&name)
        .max_message_len(16 * 1024 * 1024 + 1)
        .capacity(1)
        .create_receiver()
        .map(drop);
    if has_cap_sys_resource() {
        eprintln!("CAP_SYS_RESOURCE: past msgsize_max, up to HARD_MSGSIZEMAX");
        assert_eq!(
            over_sysctl.expect("past msgsize_max").max_message_len(),
            msgsize_max + 1
        );
        match over_ceiling {
            Err(Error::LimitExceeded {
                limit,
                value,
                requested,
                ..
            }) => {
                assert!(limit.starts_with("HARD_MSGSIZEMAX"), "{limit}");
                assert_eq!((value, requested), (16 * 1024 * 1024, 16 * 1024 * 1024 + 1));
            }
            other => panic!("{other:?}"),
        }
    } else {
        eprintln!("no CAP_SYS_RESOURCE (euid {}): the sysctls apply", {
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() }
        });
        for result in [over_sysctl.map(drop), over_ceiling] {
            match result {
                Err(Error::LimitExceeded { limit, value, .. }) => {
                    assert_eq!(limit, "/proc/sys/fs/mqueue/msgsize_max");
                    assert_eq!(value, msgsize_max as u64);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn mq_sizes_are_checked_and_a_short_buffer_keeps_the_message() {
    if !mq_available("mq_sizes_are_checked_and_a_short_buffer_keeps_the_message") {
        return;
    }
    let name = unique("mq-sizes");
    let mut rx = MqBuilder::new(&name)
        .max_message_len(6000)
        .capacity(3)
        .create_receiver()
        .unwrap();
    let mut tx = MqBuilder::new(&name).open_sender().unwrap();
    assert_eq!((tx.max_message_len(), rx.max_message_len()), (6000, 6000));
    assert!(matches!(
        tx.try_send(&[0u8; 6001]),
        Err(TrySendError::MessageTooLarge {
            len: 6001,
            max: 6000
        })
    ));
    assert!(matches!(
        tx.send(&[0u8; 6001]),
        Err(SendError::MessageTooLarge {
            len: 6001,
            max: 6000
        })
    ));
    let message: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    tx.send(&message).unwrap();
    tx.send(b"").unwrap();
    tx.send(b"third").unwrap();
    assert!(matches!(
        tx.try_send(b"fourth"),
        Err(TrySendError::Full { .. })
    ));
    let start = Instant::now();
    assert!(matches!(
        tx.send_timeout(b"fourth", SHORT),
        Err(SendTimeoutError::TimedOut)
    ));
    assert!(start.elapsed() >= SHORT);
    let mut small = [0u8; 100];
    assert!(matches!(
        rx.try_recv(&mut small),
        Err(TryRecvError::BufferTooSmall {
            len: 5000,
            buffer: 100
        })
    ));
    assert!(matches!(
        rx.recv(&mut small),
        Err(RecvError::BufferTooSmall {
            len: 5000,
            buffer: 100
        })
    ));
    let mut buf = vec![0u8; 5000];
    assert_eq!(rx.recv(&mut buf).unwrap(), 5000);
    assert_eq!(buf, message);
    assert_eq!(rx.try_recv(&mut small).unwrap(), 0);
    assert_eq!(rx.recv_vec_deadline(None).unwrap(), b"third");
    assert!(matches!(rx.try_recv(&mut small), Err(TryRecvError::Empty)));
}

/// Child: opens the queue `NAME` as its sender, reports `READY`, and exits
/// without running destructors when told to (its lock goes with the process).
#[test]
fn child_mq_sender() {
    if !child_start() {
        return;
    }
    let mut tx = MqBuilder::new(param("NAME"))
        .open_sender()
        .expect("open_sender");
    tx.send(b"from the child").unwrap();
    report("READY", std::process::id());
    wait_for_parent();
    std::process::exit(0);
}

#[test]
fn mq_roles_liveness_and_clean_up() {
    if !mq_available("mq_roles_liveness_and_clean_up") {
        return;
    }
    let name = unique("mq-roles");
    let lock = format!("/dev/shm/shmring-mq.{name}.lock");
    let mut rx = MqBuilder::new(&name).create_receiver().unwrap();
    assert_eq!(mode_of(Path::new(&lock)), 0o600);
    assert!(!rx.is_sender_connected().unwrap());
    // No sender yet: empty, not disconnected.
    assert!(matches!(
        rx.try_recv(&mut [0u8; 8192]),
        Err(TryRecvError::Empty)
    ));
    assert!(matches!(
        MqBuilder::new(&name).create_sender(),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        MqBuilder::new(&name).open_receiver(),
        Err(Error::RoleTaken {
            role: Role::Receiver,
            ..
        })
    ));
    let mut child = Peer::spawn("child_mq_sender", &[("NAME", &name)]);
    let pid: u32 = child.expect("READY").parse().unwrap();
    assert!(rx.is_sender_connected().unwrap());
    match MqBuilder::new(&name).open_sender() {
        Err(Error::RoleTaken {
            role: Role::Sender,
            owner,
        }) => assert_eq!(owner, pid),
        other => panic!("{:?}", other.map(drop)),
    }
    child.release();
    child.wait_ok();
    assert_eq!(
        rx.recv_vec_deadline(Some(Instant::now() + LONG)).unwrap(),
        b"from the child"
    );
    assert!(matches!(
        rx.recv_vec_deadline(Some(Instant::now() + LONG)),
        Err(RecvTimeoutError::Disconnected)
    ));
    // A dead holder's role is claimed again, and messages flow.
    let mut tx = MqBuilder::new(&name).open_sender().unwrap();
    tx.send(b"again").unwrap();
    assert_eq!(
        rx.recv_vec_deadline(Some(Instant::now() + LONG)).unwrap(),
        b"again"
    );
    // The creator removes the queue and the lock file; the sender keeps working
    // into the unlinked queue until it is full, then learns the receiver is gone.
    drop(rx);
    assert!(!Path::new(&lock).exists());
    assert!(matches!(
        MqBuilder::new(&name).open_sender(),
        Err(Error::NotFound { .. })
    ));
    let result = loop {
        match tx.send_timeout(b"x", LONG) {
            Ok(()) => {}
            other => break other,
        }
    };
    assert!(
        matches!(result, Err(SendTimeoutError::Disconnected)),
        "{result:?}"
    );
}

/// Child: creates the queue `NAME` and exits without running destructors.
#[test]
fn child_mq_create_and_vanish() {
    if !child_start() {
        return;
    }
    let rx = MqBuilder::new(param("NAME"))
        .create_receiver()
        .expect("create");
    report("CREATED", rx.max_message_len());
    std::process::exit(0);
}

#[test]
fn mq_remove_clears_what_a_dead_creator_left() {
    if !mq_available("mq_remove_clears_what_a_dead_creator_left") {
        return;
    }
    let name = unique("mq-left");
    let mut child = Peer::spawn("child_mq_create_and_vanish", &[("NAME", &name)]);
    child.expect("CREATED");
    child.wait_ok();
    assert!(matches!(
        MqBuilder::new(&name).create_receiver(),
        Err(Error::AlreadyExists { .. })
    ));
    mq::remove(&name).unwrap();
    assert!(matches!(mq::remove(&name), Err(Error::NotFound { .. })));
    let rx = MqBuilder::new(&name).create_receiver().unwrap();
    drop(rx);
    assert!(matches!(mq::remove(&name), Err(Error::NotFound { .. })));
}

// ---------------------------------------------------------------------------
// Modes under any umask
// ---------------------------------------------------------------------------

/// Child: sets the umask to `UMASK` (octal), then creates a Unix socket, a
/// seqpacket socket, a FIFO and a queue in `DIR`; reports the modes of the
/// socket files, the FIFO and the queue's lock file.
#[test]
fn child_create_under_umask() {
    if !child_start() {
        return;
    }
    let umask = u32::from_str_radix(&param("UMASK"), 8).unwrap();
    // SAFETY: umask has no memory arguments; this child creates files on one thread.
    unsafe { libc::umask(umask as libc::mode_t) };
    let dir = param("DIR");
    let dir = Path::new(&dir);
    let _unix = UnixListener::bind(dir.join("u")).unwrap();
    let _seq = SeqpacketListener::bind(dir.join("s")).unwrap();
    let _fifo = FifoReceiver::create(dir.join("f")).unwrap();
    let name = unique("umask");
    let mut rx = MqBuilder::new(&name).create_receiver().unwrap();
    let mut tx = MqBuilder::new(&name)
        .open_sender()
        .expect("the creator's uid opens its queue");
    tx.send(b"ok").unwrap();
    assert_eq!(rx.recv_vec_deadline(None).unwrap(), b"ok");
    let lock = format!("/dev/shm/shmring-mq.{name}.lock");
    let modes = [
        dir.join("u"),
        dir.join("s"),
        dir.join("f"),
        Path::new(&lock).to_owned(),
    ]
    .iter()
    .map(|p| format!("{:o}", mode_of(p)))
    .collect::<Vec<_>>()
    .join(" ");
    report("MODES", modes);
}

#[test]
fn everything_is_created_0600_under_any_umask() {
    for umask in ["000", "077", "777"] {
        let dir = TempDir::new("umask");
        let path = dir.path().display().to_string();
        let mut child = Peer::spawn(
            "child_create_under_umask",
            &[("UMASK", &umask), ("DIR", &path)],
        );
        assert_eq!(child.expect("MODES"), "600 600 600 600", "umask {umask}");
        child.wait_ok();
    }
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

#[test]
fn addresses_parse_and_print_back() {
    for (text, parsed) in [
        ("unix:/run/a.sock", Address::Unix("/run/a.sock".into())),
        ("seqpacket:rel/s", Address::Seqpacket("rel/s".into())),
        (
            "tcp://localhost:9000",
            Address::Tcp {
                host: "localhost".into(),
                port: 9000,
            },
        ),
        (
            "tcp://[::1]:80",
            Address::Tcp {
                host: "::1".into(),
                port: 80,
            },
        ),
        ("fifo:/tmp/f", Address::Fifo("/tmp/f".into())),
        ("mq:jobs", Address::Mq("jobs".into())),
        ("shm:ring-1", Address::Shm("ring-1".into())),
        ("file:/var/ring", Address::File("/var/ring".into())),
    ] {
        let got: Address = text.parse().unwrap();
        assert_eq!(got, parsed, "{text}");
        assert_eq!(got.to_string(), text);
    }
    assert_eq!(
        Address::parse("tcp://:7").unwrap(),
        Address::Tcp {
            host: "127.0.0.1".into(),
            port: 7
        },
        "no host: loopback"
    );
    let max_path = format!("/{}", "p".repeat(106));
    assert!(
        Address::parse(&format!("unix:{max_path}")).is_ok(),
        "107 bytes fit"
    );
    assert!(matches!(
        Address::parse(&format!("unix:{max_path}p")),
        Err(Error::InvalidAddress { .. })
    ));
}

#[test]
fn listen_and_receive_through_the_trait_object() {
    // The receiver a listener hands out works like the typed one.
    let name = unique("trait");
    let mut listener = listen(&format!("mq:{name}")).unwrap();
    let mut rx: Box<dyn MessageReceiver + Send> = listener.accept().unwrap();
    let mut tx = shmring::transport::connect_sender(&format!("mq:{name}")).unwrap();
    tx.send(b"boxed").unwrap();
    assert_eq!(rx.recv_vec_deadline(None).unwrap(), b"boxed");
}
