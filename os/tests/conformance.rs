//! One conformance suite for the message API, run over every transport and the
//! shared-memory channels through the traits (`Box<dyn MessageSender + Send>`,
//! `Box<dyn MessageReceiver + Send>`), each pair across two real processes (this
//! test binary started again with `--exact child_...` and `SHMRING_TEST_CHILD`
//! set; the `child_*` entry points return at once in the normal suite).
//!
//! Per transport (`<transport>::<test>`): ordering of checksummed messages of 0
//! to 4096 bytes by every sending and receiving call; empty messages, the largest
//! message, a buffer one byte short and a message one byte over; timeouts
//! against a live idle peer on both sides (`TimedOut` no earlier than asked);
//! a receiver that exits leaves a sender `Disconnected`; a sender killed
//! (SIGKILL) at random moments: the receiver gets a contiguous run holding every
//! message the sender had committed, then `Disconnected`; a receiver killed:
//! the sender gets `Disconnected`. Then, for all: bad addresses and names, and
//! the permissions of what a listener creates (refused to another uid).
//!
//! **Committed**, as the crash test checks it: the child reports `C <seq>` after a
//! *blocking* `send` of `seq` returned. On every transport everything up to that
//! message was committed by then: for the stream transports (Unix stream, TCP,
//! pipe, FIFO) a blocking send writes a tail left by an earlier `try_send`
//! before its own frame, and returns with its whole frame in the kernel; for
//! seqpacket and the message queue a send that returned put the whole message in
//! the kernel; for the shm and file rings it is the ring's commit.
//!
//! Sizes: `SHMRING_CONFORMANCE_MESSAGES` (default 100 000 per transport;
//! 1 000 000 in the `#[ignore]`d `ordering_long`) and
//! `SHMRING_CONFORMANCE_CRASH_TRIALS` (default 8; 100 in `sender_killed_long`). Randomised tests print their seed and
//! replay it from `SHMRING_TEST_SEED`.

mod common;

use std::fmt::Display;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::transport::pipe::ChildPipes;
use shmring::transport::{
    self, MessageReceiver, MessageSender, TransportListener, connect_sender,
    connect_sender_timeout, listen,
};
use shmring::{Error, Role};
use shmring::{RecvTimeoutError, TryRecvError, TrySendError};

/// Messages per transport in the default suite, and in the ignored runs.
const ORDERING_MESSAGES: u64 = 100_000;
const ORDERING_MESSAGES_LONG: u64 = 1_000_000;
/// Sender crash trials per transport, default and ignored (half of them with
/// small messages, half with messages up to [`BIG`] bytes).
const CRASH_TRIALS: u64 = 8;
const CRASH_TRIALS_LONG: u64 = 100;
/// The largest message of the crash trials with large messages (or the
/// transport's largest, if smaller): larger than a pipe's or a socket's buffer, so
/// that kills land inside frames.
const BIG: usize = 256 * 1024;
/// A bound on calls that should return long before it.
const LONG: Duration = Duration::from_secs(30);
/// The bound on "promptly": `Disconnected` after a death.
const PROMPT: Duration = Duration::from_secs(2);
/// The timeout the timeout tests ask for.
const SHORT: Duration = Duration::from_millis(100);
/// The environment variable carrying the pipe descriptors to a child.
const PIPE_VAR: &str = "SHMRING_TEST_PIPES";

type Tx = Box<dyn MessageSender + Send>;
type Rx = Box<dyn MessageReceiver + Send>;
/// A sending call to check against a full transport.
type Check<'a> = &'a mut dyn FnMut(&mut Tx) -> Result<(), Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Unix,
    Seqpacket,
    Tcp,
    Pipe,
    Fifo,
    Mq,
    Shm,
    File,
}

const ALL: [T; 8] = [
    T::Unix,
    T::Seqpacket,
    T::Tcp,
    T::Pipe,
    T::Fifo,
    T::Mq,
    T::Shm,
    T::File,
];

impl T {
    fn name(self) -> &'static str {
        match self {
            T::Unix => "unix",
            T::Seqpacket => "seqpacket",
            T::Tcp => "tcp",
            T::Pipe => "pipe",
            T::Fifo => "fifo",
            T::Mq => "mq",
            T::Shm => "shm",
            T::File => "file",
        }
    }

    fn from_name(name: &str) -> T {
        *ALL.iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("no transport {name:?}"))
    }

    /// A fresh address to listen at (not for pipes).
    fn address(self, dir: &Path) -> String {
        let d = dir.display();
        match self {
            T::Unix => format!("unix:{d}/u.sock"),
            T::Seqpacket => format!("seqpacket:{d}/s.sock"),
            T::Tcp => "tcp://127.0.0.1:0".to_owned(),
            T::Pipe => unreachable!("a pipe has no address"),
            T::Fifo => format!("fifo:{d}/f.fifo"),
            T::Mq => format!("mq:{}", unique("mq")),
            T::Shm => format!("shm:{}", unique("shm")),
            T::File => format!("file:{d}/ring"),
        }
    }

    /// Whether this machine has what the transport needs; if not, fails under
    /// `CI=true` or prints a skip notice.
    fn available(self, test: &str) -> bool {
        let missing = match self {
            T::Mq => match transport::mq::MqBuilder::new(unique("probe"))
                .capacity(1)
                .max_message_len(1)
                .create_receiver()
            {
                Err(Error::Unsupported { what }) => Some(what.to_owned()),
                _ => None,
            },
            T::Tcp => std::net::TcpListener::bind("127.0.0.1:0")
                .err()
                .map(|e| format!("no TCP on 127.0.0.1 ({e})")),
            _ => None,
        };
        match missing {
            Some(why) => facility_missing(test, &why),
            None => true,
        }
    }
}

/// What a test keeps until its end, and removes after: the directory of its
/// paths, its listener, and queues or segments a killed child created.
struct Leftovers {
    _dir: TempDir,
    _listener: Option<TransportListener>,
    address: Option<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        // A child killed after creating these cannot remove them.
        if let Some(address) = &self.address {
            if let Some(name) = address.strip_prefix("mq:") {
                let _ = transport::mq::remove(name);
            } else if let Some(name) = address.strip_prefix("shm:") {
                remove_shm_with_bells(name);
            }
        }
    }
}

/// `params` after the transport's name and address.
macro_rules! with_transport {
    ($name:expr, $address:expr, $params:expr) => {{
        let mut all: Vec<(&str, &dyn Display)> = vec![("T", $name), ("ADDR", $address)];
        all.extend_from_slice($params);
        all
    }};
}

/// A receiver in this process and a child running `child` that sends to it.
fn parent_receives(t: T, child: &str, params: &[(&str, &dyn Display)]) -> (Rx, Peer, Leftovers) {
    let dir = TempDir::new(t.name());
    if t == T::Pipe {
        let pipes = ChildPipes::new().expect("pipes");
        let (name, none) = (t.name(), String::new());
        let all = with_transport!(&name, &none, params);
        let peer = Peer::spawn_with(child, &all, |command| pipes.pass_to(command, PIPE_VAR));
        let (_tx, rx) = pipes.into_parent();
        let leftovers = Leftovers {
            _dir: dir,
            _listener: None,
            address: None,
        };
        return (Box::new(rx), peer, leftovers);
    }
    let mut listener = listen(&t.address(dir.path())).expect("listen");
    let address = listener.address().to_string();
    let name = t.name();
    let all = with_transport!(&name, &address, params);
    let peer = Peer::spawn(child, &all);
    let rx = listener
        .accept_timeout(LONG)
        .unwrap_or_else(|e| panic!("accept from {address}: {e}"));
    let leftovers = Leftovers {
        _dir: dir,
        _listener: Some(listener),
        address: Some(address),
    };
    (rx, peer, leftovers)
}

/// A sender in this process and a child running `child` that receives from it
/// (it has reported `READY`).
fn parent_sends(t: T, child: &str, params: &[(&str, &dyn Display)]) -> (Tx, Peer, Leftovers) {
    let dir = TempDir::new(t.name());
    if t == T::Pipe {
        let pipes = ChildPipes::new().expect("pipes");
        let (name, none) = (t.name(), String::new());
        let all = with_transport!(&name, &none, params);
        let mut peer = Peer::spawn_with(child, &all, |command| pipes.pass_to(command, PIPE_VAR));
        let (tx, _rx) = pipes.into_parent();
        peer.expect("READY");
        let leftovers = Leftovers {
            _dir: dir,
            _listener: None,
            address: None,
        };
        return (Box::new(tx), peer, leftovers);
    }
    let address = t.address(dir.path());
    let name = t.name();
    let all = with_transport!(&name, &address, params);
    let mut peer = Peer::spawn(child, &all);
    let listening = peer.expect("READY");
    let tx = connect_sender_timeout(&listening, LONG)
        .unwrap_or_else(|e| panic!("connect to {listening}: {e}"));
    let leftovers = Leftovers {
        _dir: dir,
        _listener: None,
        address: Some(listening),
    };
    (tx, peer, leftovers)
}

// ---------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------

fn child_start() -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(Duration::from_secs(300));
    true
}

fn child_transport() -> T {
    T::from_name(&param("T"))
}

/// The child's sender to the parent's receiver.
fn child_sender() -> Tx {
    match child_transport() {
        // SAFETY: the parent passed these pipes to this child, and this is the one
        // call in it.
        T::Pipe => Box::new(
            unsafe { transport::pipe::from_env(PIPE_VAR) }
                .expect("pipe::from_env")
                .0,
        ),
        _ => {
            let address = param("ADDR");
            connect_sender_timeout(&address, LONG)
                .unwrap_or_else(|e| panic!("child: connect to {address}: {e}"))
        }
    }
}

/// The child's receiver from the parent's sender; reports `READY` (with the
/// address to connect to) before waiting for the parent.
fn child_receiver() -> Rx {
    match child_transport() {
        T::Pipe => {
            // SAFETY: the parent passed these pipes to this child, and this is the
            // one call in it.
            let rx = unsafe { transport::pipe::from_env(PIPE_VAR) }
                .expect("pipe::from_env")
                .1;
            report("READY", "pipe");
            Box::new(rx)
        }
        _ => {
            let mut listener = listen(&param("ADDR")).expect("child: listen");
            report("READY", listener.address());
            listener.accept_timeout(LONG).expect("child: accept")
        }
    }
}

/// Sends `message` by one of the sending calls, chosen by `turn`; a `try_send`
/// that finds no room yields and tries again.
fn send_mixed(tx: &mut Tx, turn: u64, message: &[u8]) -> Result<(), Error> {
    match turn % 4 {
        0 => Ok(tx.send(message)?),
        1 => Ok(tx.send_timeout(message, LONG)?),
        2 => Ok(tx.send_deadline(message, Some(Instant::now() + LONG))?),
        _ => {
            let deadline = Instant::now() + LONG;
            loop {
                match tx.try_send(message) {
                    Err(TrySendError::Full { .. }) if Instant::now() < deadline => {
                        thread::yield_now()
                    }
                    other => return Ok(other?),
                }
            }
        }
    }
}

/// Receives the next message by one of the receiving calls, chosen by `turn`.
fn recv_mixed(rx: &mut Rx, turn: u64, buf: &mut [u8]) -> Result<Vec<u8>, Error> {
    match turn % 4 {
        0 => {
            let n = rx.recv(buf)?;
            Ok(buf[..n].to_vec())
        }
        1 => {
            let n = rx.recv_timeout(buf, LONG)?;
            Ok(buf[..n].to_vec())
        }
        2 => match rx.try_recv(buf) {
            Err(TryRecvError::Empty) => {
                let n = rx.recv_timeout(buf, LONG)?;
                Ok(buf[..n].to_vec())
            }
            other => Ok(buf[..other?].to_vec()),
        },
        _ => Ok(rx.recv_vec_deadline(Some(Instant::now() + LONG))?),
    }
}

/// Child: sends stream messages `0..COUNT` (0 to `MAX` bytes) by every sending
/// call, reports `DONE`, and exits.
#[test]
fn child_stream_sender() {
    if !child_start() {
        return;
    }
    let count = param_u64("COUNT");
    let max = param_u64("MAX") as usize;
    let mut tx = child_sender();
    let mut buf = vec![0u8; max];
    for seq in 0..count {
        let len = stream_len(seq, max);
        fill_stream(seq, &mut buf[..len]);
        send_mixed(&mut tx, seq, &buf[..len]).unwrap_or_else(|e| panic!("send {seq}: {e}"));
    }
    report("DONE", count);
}

/// Child: reports `MAX`, sends an empty message, another, one byte, the largest
/// message and an empty one; reports how `try_send`, `send_timeout` and `send`
/// refuse a message one byte over (`OVER` ×3); reports `IDLE` and waits for the
/// parent to release it, then exits.
#[test]
fn child_edge_sender() {
    if !child_start() {
        return;
    }
    let mut tx = child_sender();
    let max = tx.max_message_len();
    report("MAX", max);
    let largest: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
    tx.send(b"").expect("empty");
    tx.try_send(b"")
        .or_else(|_| tx.send(b""))
        .expect("second empty");
    tx.send(&[0x5a]).expect("one byte");
    tx.send_timeout(&largest, LONG).expect("largest");
    tx.send(b"").expect("last empty");
    let over = vec![1u8; max + 1];
    report("OVER", format!("{:?}", tx.try_send(&over)));
    report("OVER", format!("{:?}", tx.send_timeout(&over, LONG)));
    report("OVER", format!("{:?}", tx.send(&over)));
    report("IDLE", std::process::id());
    wait_for_parent();
}

/// Child: sends messages from 0 until it is killed, by every sending call; every
/// 64th (every 8th if `BIG` is set) by a blocking `send`, after which it reports
/// `C <seq>` (everything up to `seq` is committed). Small messages are seq
/// messages (8 to 72 bytes); with `BIG` set, stream messages of up to that many
/// bytes (or the transport's largest), after reporting `MAX`.
#[test]
fn child_crash_sender() {
    if !child_start() {
        return;
    }
    let mut tx = child_sender();
    let big = param_u64("BIG") as usize;
    let max = big.min(tx.max_message_len());
    let every = if big > 0 { 8 } else { 64 };
    if big > 0 {
        report("MAX", max);
    }
    report("READY", std::process::id());
    let mut buf = Vec::with_capacity(max.max(128));
    for seq in 0u64.. {
        if big > 0 {
            buf.resize(stream_len(seq, max), 0);
            fill_stream(seq, &mut buf);
        } else {
            seq_message(seq, &mut buf);
        }
        if seq % every == every - 1 {
            tx.send(&buf).unwrap_or_else(|e| panic!("send {seq}: {e}"));
            report("C", seq);
        } else {
            send_mixed(&mut tx, seq, &buf).unwrap_or_else(|e| panic!("send {seq}: {e}"));
        }
    }
}

/// Child: takes its receiver, reports `ACCEPTED`, and never reads; exits when the
/// parent releases it.
#[test]
fn child_idle_receiver() {
    if !child_start() {
        return;
    }
    let rx = child_receiver();
    report("ACCEPTED", std::process::id());
    wait_for_parent();
    drop(rx);
}

// ---------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------

fn expect_disconnected<T: std::fmt::Debug, E: Into<Error>>(
    what: &str,
    result: Result<T, E>,
    peer: Role,
) {
    match result.map_err(Into::into) {
        Err(Error::Disconnected { peer: p }) if p == peer => {}
        other => panic!("{what}: expected Disconnected {{ peer: {peer:?} }}, got {other:?}"),
    }
}

fn expect_timed_out<T: std::fmt::Debug, E: Into<Error>>(
    what: &str,
    f: impl FnOnce() -> Result<T, E>,
) {
    let start = Instant::now();
    let result = f().map_err(Into::into);
    let elapsed = start.elapsed();
    assert!(
        matches!(result, Err(Error::TimedOut)),
        "{what}: expected TimedOut, got {result:?}"
    );
    assert!(
        elapsed >= SHORT,
        "{what}: TimedOut after {elapsed:?}, before the {SHORT:?} asked"
    );
    assert!(
        elapsed < SHORT + PROMPT,
        "{what}: TimedOut only after {elapsed:?}"
    );
}

/// A child sends `count` checksummed messages of 0..4096 bytes by every sending
/// call; this process receives them by every receiving call and checks each
/// byte, then gets `Disconnected` once the child has exited.
fn ordering(t: T, count: u64) {
    if !t.available(&format!("{}::ordering", t.name())) {
        return;
    }
    let started = Instant::now();
    let (mut rx, mut child, _leftovers) = parent_receives(
        t,
        "child_stream_sender",
        &[("COUNT", &count), ("MAX", &STREAM_MAX)],
    );
    assert!(rx.max_message_len() >= STREAM_MAX);
    let mut buf = vec![0u8; rx.max_message_len()];
    let mut scratch = Vec::new();
    for seq in 0..count {
        let message = recv_mixed(&mut rx, seq, &mut buf)
            .unwrap_or_else(|e| panic!("{t:?}: message {seq}: {e}"));
        if let Err(e) = check_stream(seq, STREAM_MAX, &message, &mut scratch) {
            panic!("{t:?}: {e}");
        }
    }
    assert_eq!(child.expect("DONE").parse::<u64>().unwrap(), count);
    expect_disconnected(
        &format!("{t:?} after the last message"),
        rx.recv_timeout(&mut buf, LONG),
        Role::Sender,
    );
    child.wait_ok();
    let elapsed = started.elapsed();
    eprintln!(
        "{}: {count} messages in order in {elapsed:?} ({:.0}/s)",
        t.name(),
        count as f64 / elapsed.as_secs_f64()
    );
}

/// Empty messages, one byte, the largest message (after a buffer one byte short
/// and an empty buffer, which keep it), a message one byte over in every sending
/// call, and the receiving calls timing out against the live, idle sender.
fn edges(t: T) {
    if !t.available(&format!("{}::edges", t.name())) {
        return;
    }
    let (mut rx, mut child, _leftovers) = parent_receives(t, "child_edge_sender", &[]);
    let max: usize = child.expect("MAX").parse().unwrap();
    assert_eq!(
        rx.max_message_len(),
        max,
        "{t:?}: both ends' largest message"
    );
    let mut buf = vec![0u8; max];
    assert_eq!(rx.recv_timeout(&mut buf, LONG).unwrap(), 0, "{t:?}: empty");
    assert_eq!(
        rx.recv_vec_deadline(None).unwrap(),
        b"",
        "{t:?}: second empty"
    );
    assert_eq!(rx.recv(&mut buf[..1]).unwrap(), 1, "{t:?}: one byte");
    assert_eq!(buf[0], 0x5a);
    // The largest message: wait until it is there, refuse two short buffers.
    let deadline = Instant::now() + LONG;
    loop {
        match rx.try_recv(&mut buf[..max - 1]) {
            Err(TryRecvError::BufferTooSmall { len, buffer }) => {
                assert_eq!((len, buffer), (max, max - 1), "{t:?}");
                break;
            }
            Err(TryRecvError::Empty) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            other => panic!("{t:?}: a buffer one byte short: {other:?}"),
        }
    }
    match rx.recv_timeout(&mut [], LONG) {
        Err(RecvTimeoutError::BufferTooSmall { len, buffer: 0 }) => assert_eq!(len, max, "{t:?}"),
        other => panic!("{t:?}: an empty buffer: {other:?}"),
    }
    assert_eq!(
        rx.recv_timeout(&mut buf, LONG).unwrap(),
        max,
        "{t:?}: largest"
    );
    assert!(
        buf.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "{t:?}: the largest message's bytes"
    );
    assert_eq!(
        rx.recv_vec_deadline(None).unwrap(),
        b"",
        "{t:?}: last empty"
    );
    for call in ["try_send", "send_timeout", "send"] {
        let over = child.expect("OVER");
        assert_eq!(
            over,
            format!("Err(MessageTooLarge {{ len: {}, max: {max} }})", max + 1),
            "{t:?}: {call} of a message one byte over"
        );
    }
    child.expect("IDLE");
    // Receiving from a live sender that sends nothing.
    assert!(
        matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)),
        "{t:?}: try_recv"
    );
    expect_timed_out(&format!("{t:?} recv_timeout"), || {
        rx.recv_timeout(&mut buf, SHORT)
    });
    expect_timed_out(&format!("{t:?} recv_deadline"), || {
        rx.recv_deadline(&mut buf, Some(Instant::now() + SHORT))
    });
    expect_timed_out(&format!("{t:?} recv_vec_deadline"), || {
        rx.recv_vec_deadline(Some(Instant::now() + SHORT))
    });
    child.release();
    expect_disconnected(
        &format!("{t:?} after the sender exited"),
        rx.recv_timeout(&mut buf, LONG),
        Role::Sender,
    );
    child.wait_ok();
}

/// Fills the transport towards a live receiver that does not read, until it
/// refuses more; then the sending calls time out (or report `Full`). When the
/// receiver exits, the sender gets `Disconnected`.
fn sender_timeouts(t: T) {
    if !t.available(&format!("{}::sender_timeouts", t.name())) {
        return;
    }
    let (mut tx, mut child, _leftovers) = parent_sends(t, "child_idle_receiver", &[]);
    child.expect("ACCEPTED");
    let sizes = [tx.max_message_len().min(64 * 1024), 1024, 8];
    let small = [1u8; 8];
    let mut sent = 0u64;
    // Fill with large, then smaller messages until even the smallest is refused.
    // TCP grows its windows and moves data to the receiver's buffer while we
    // wait, so a round whose checks find room again fills again.
    let mut refused = false;
    for _round in 0..50 {
        for &size in &sizes {
            let message = vec![7u8; size];
            loop {
                match tx.try_send(&message) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full { .. }) => break,
                    Err(e) => panic!("{t:?}: filling: {e}"),
                }
                assert!(sent < 10_000_000, "{t:?}: never full");
            }
        }
        thread::sleep(Duration::from_millis(20));
        let checks: [Check<'_>; 3] = [
            &mut |tx| Ok(tx.send_timeout(&small, SHORT)?),
            &mut |tx| Ok(tx.send_deadline(&small, Some(Instant::now() + SHORT))?),
            &mut |tx| Ok(tx.try_send(&small)?),
        ];
        refused = true;
        for (i, check) in checks.into_iter().enumerate() {
            let start = Instant::now();
            match check(&mut tx) {
                Ok(()) => {
                    sent += 1;
                    refused = false;
                    break;
                }
                Err(Error::TimedOut) if i < 2 => {
                    let elapsed = start.elapsed();
                    assert!(elapsed >= SHORT, "{t:?}: TimedOut after {elapsed:?}");
                    assert!(
                        elapsed < SHORT + PROMPT,
                        "{t:?}: TimedOut after {elapsed:?}"
                    );
                }
                Err(Error::Full { .. }) if i == 2 => {}
                Err(e) => panic!("{t:?}: sending to a full transport (check {i}): {e}"),
            }
        }
        if refused {
            break;
        }
    }
    assert!(
        refused,
        "{t:?}: room kept appearing for a receiver that reads nothing"
    );
    eprintln!("{}: full after {sent} messages", t.name());
    // The receiver exits without reading.
    child.release();
    child.wait_ok();
    let deadline = Instant::now() + LONG;
    loop {
        match tx.send_timeout(&small, LONG) {
            Ok(()) => assert!(Instant::now() < deadline, "{t:?}: sends never fail"),
            other => {
                expect_disconnected(
                    &format!("{t:?} after the receiver exited"),
                    other,
                    Role::Receiver,
                );
                break;
            }
        }
    }
}

/// Per trial: a child sends messages until it is killed after 0..20 ms; this
/// process must receive a contiguous run from 0, every message intact, holding
/// every message the child reported committed, then `Disconnected` within 2 s of
/// the kill. Odd trials send messages up to [`BIG`] bytes, so that the kill
/// often lands inside a frame: the partial frame must not be delivered.
fn sender_killed(t: T, trials: u64) {
    if !t.available(&format!("{}::sender_killed", t.name())) {
        return;
    }
    let mut rng = XorShift::new(seed(&format!("{}::sender_killed", t.name())));
    let mut latencies = Vec::new();
    let mut total = 0;
    for trial in 0..trials {
        let big = if trial % 2 == 1 { BIG } else { 0 };
        let (mut rx, mut child, _leftovers) =
            parent_receives(t, "child_crash_sender", &[("BIG", &big)]);
        let max: usize = if big > 0 {
            child.expect("MAX").parse().unwrap()
        } else {
            0
        };
        child.expect("READY");
        let delay = Duration::from_micros(rng.below(20_000));
        let pid = child.pid();
        let killer = thread::spawn(move || {
            thread::sleep(delay);
            let at = Instant::now();
            // SAFETY: kill has no memory arguments; the child is reaped only after
            // this thread is joined, so the pid still names it.
            let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
            assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
            at
        });
        let mut buf = vec![0u8; rx.max_message_len()];
        let mut scratch = Vec::new();
        let mut next = 0u64;
        let disconnected_at = loop {
            match recv_mixed(&mut rx, next, &mut buf) {
                Ok(message) => {
                    if big > 0 {
                        check_stream(next, max, &message, &mut scratch)
                            .unwrap_or_else(|e| panic!("{t:?} trial {trial}: {e}"));
                    } else {
                        let seq = parse_seq(&message)
                            .unwrap_or_else(|e| panic!("{t:?} trial {trial}: {e}"));
                        assert_eq!(
                            seq, next,
                            "{t:?} trial {trial}: message {seq} instead of {next}"
                        );
                    }
                    next += 1;
                }
                Err(Error::Disconnected { peer: Role::Sender }) => break Instant::now(),
                Err(e) => panic!("{t:?} trial {trial}: after {next} messages: {e}"),
            }
        };
        let killed_at = killer.join().expect("killer thread");
        assert!(
            disconnected_at > killed_at,
            "{t:?} trial {trial}: Disconnected before the kill, while the sender lived"
        );
        let latency = disconnected_at - killed_at;
        assert!(
            latency < PROMPT,
            "{t:?} trial {trial}: Disconnected {latency:?} after the kill"
        );
        latencies.push(latency);
        let status = child.wait();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{t:?} trial {trial}: {status:?}"
        );
        let committed = child
            .remaining_reports()
            .into_iter()
            .filter(|(k, _)| k == "C")
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .max();
        if let Some(c) = committed {
            assert!(
                c < next,
                "{t:?} trial {trial}: the child committed {c}, the receiver got 0..{next}"
            );
        }
        total += next;
    }
    eprintln!(
        "{}: {trials} senders killed, {total} messages received in order; kill -> Disconnected {}",
        t.name(),
        summary(&mut latencies)
    );
}

/// A receiver is killed while the sender has messages queued for it: the
/// sender's sends fail with `Disconnected` (at once, or once the transport is
/// full, for the queue and the rings, which hold messages for a next receiver).
fn receiver_killed(t: T) {
    if !t.available(&format!("{}::receiver_killed", t.name())) {
        return;
    }
    let (mut tx, mut child, _leftovers) = parent_sends(t, "child_idle_receiver", &[]);
    child.expect("ACCEPTED");
    let message = [3u8; 64];
    for _ in 0..4 {
        tx.send_timeout(&message, LONG).expect("a few messages");
    }
    let killed_at = child.kill();
    let mut sent = 0u64;
    let result = loop {
        match tx.send_timeout(&message, LONG) {
            Ok(()) => {
                sent += 1;
                assert!(killed_at.elapsed() < LONG, "{t:?}: sends never fail");
            }
            other => break other,
        }
    };
    let latency = killed_at.elapsed();
    expect_disconnected(
        &format!("{t:?} after the receiver was killed"),
        result,
        Role::Receiver,
    );
    assert!(
        latency < PROMPT,
        "{t:?}: Disconnected {latency:?} after the kill"
    );
    eprintln!(
        "{}: receiver killed -> Disconnected after {sent} more sends, {latency:?}",
        t.name()
    );
}

macro_rules! conformance {
    ($($module:ident => $t:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[test]
            fn ordering() {
                super::ordering($t, count_from_env("SHMRING_CONFORMANCE_MESSAGES", ORDERING_MESSAGES));
            }

            #[test]
            #[ignore = "long: 1 000 000 messages"]
            fn ordering_long() {
                super::ordering($t, ORDERING_MESSAGES_LONG);
            }

            #[test]
            fn empty_largest_one_over_and_receive_timeouts() {
                super::edges($t);
            }

            #[test]
            fn send_timeouts_then_receiver_exit() {
                super::sender_timeouts($t);
            }

            #[test]
            fn sender_killed_loses_nothing_committed() {
                super::sender_killed($t, count_from_env("SHMRING_CONFORMANCE_CRASH_TRIALS", CRASH_TRIALS));
            }

            #[test]
            #[ignore = "long: 100 trials"]
            fn sender_killed_long() {
                super::sender_killed($t, CRASH_TRIALS_LONG);
            }

            #[test]
            fn receiver_killed_disconnects_the_sender() {
                super::receiver_killed($t);
            }
        }
    )*};
}

conformance!(
    unix => T::Unix,
    seqpacket => T::Seqpacket,
    tcp => T::Tcp,
    pipe => T::Pipe,
    fifo => T::Fifo,
    mq => T::Mq,
    shm => T::Shm,
    file => T::File,
);

// ---------------------------------------------------------------------------
// Addresses, names, permissions
// ---------------------------------------------------------------------------

fn expect_err<T>(what: &str, result: Result<T, Error>, check: impl FnOnce(&Error) -> bool) {
    match result {
        Err(e) if check(&e) => {}
        Err(e) => panic!("{what}: unexpected error {e:?}"),
        Ok(_) => panic!("{what}: succeeded"),
    }
}

#[test]
fn bad_addresses_and_names_are_named() {
    let long_path = format!("/tmp/{}", "x".repeat(110));
    let invalid = [
        ("nonsense", "expected unix:"),
        ("http://example.com", "expected unix:"),
        ("unix:", "empty path"),
        ("seqpacket:", "empty path"),
        ("fifo:", "empty path"),
        ("file:", "empty path"),
        ("tcp:127.0.0.1:80", "expected tcp://"),
        ("tcp://127.0.0.1", "no port"),
        ("tcp://127.0.0.1:65536", "port"),
        ("tcp://127.0.0.1:http", "port"),
        ("tcp://::1:80", "brackets"),
        ("tcp://[::1:80", "closing"),
        ("tcp://:", "port"),
        ("pipe:3,4", "no address"),
    ];
    for (address, reason) in invalid {
        for (call, result) in [
            ("connect_sender", connect_sender(address).map(drop)),
            ("listen", listen(address).map(drop)),
        ] {
            expect_err(
                &format!("{call}({address:?})"),
                result,
                |e| matches!(e, Error::InvalidAddress { address: a, reason: r } if a == address && r.contains(reason)),
            );
        }
    }
    for scheme in ["unix", "seqpacket"] {
        let address = format!("{scheme}:{long_path}");
        expect_err(
            &address,
            listen(&address).map(drop),
            |e| matches!(e, Error::InvalidAddress { reason, .. } if reason.contains("108")),
        );
    }
    // The typed API says the same.
    expect_err(
        "UnixListener::bind(long)",
        transport::unix::UnixListener::bind(&long_path),
        |e| matches!(e, Error::InvalidAddress { reason, .. } if reason.contains("sun_path")),
    );
    expect_err(
        "seqpacket::connect(long)",
        transport::seqpacket::connect(&long_path),
        |e| matches!(e, Error::InvalidAddress { .. }),
    );
    for (address, reason) in [
        ("mq:", "empty"),
        ("mq:a/b", "'/'"),
        ("mq:..", "\"..\""),
        ("mq:bad name", "character"),
        ("shm:", "empty"),
        ("shm:x/y", "'/'"),
    ] {
        expect_err(
            address,
            connect_sender(address).map(drop),
            |e| matches!(e, Error::InvalidName { reason: r, .. } if r.contains(reason)),
        );
    }
    expect_err(
        "MqBuilder::new(bad)",
        transport::mq::MqBuilder::new("a/b").create_receiver(),
        |e| matches!(e, Error::InvalidName { .. }),
    );
    // Nobody there.
    let dir = TempDir::new("nobody");
    let d = dir.path().display();
    for address in [
        format!("unix:{d}/none.sock"),
        format!("seqpacket:{d}/none.sock"),
        format!("fifo:{d}/none.fifo"),
        format!("mq:{}", unique("none")),
        format!("shm:{}", unique("none")),
        format!("file:{d}/none"),
    ] {
        expect_err(&address, connect_sender(&address).map(drop), |e| {
            matches!(e, Error::NotFound { .. })
        });
    }
    // A socket file nobody listens on, a FIFO nobody reads, a closed port.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("std bind"));
    expect_err(
        "stale socket",
        connect_sender(&format!("unix:{}", stale.display())).map(drop),
        |e| matches!(e, Error::ConnectionRefused { .. }),
    );
    let fifo = dir.path().join("lonely.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is NUL-terminated and alive across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    expect_err(
        "FIFO without reader",
        connect_sender(&format!("fifo:{}", fifo.display())).map(drop),
        |e| matches!(e, Error::ConnectionRefused { .. }),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    expect_err(
        "closed port",
        connect_sender(&format!("tcp://127.0.0.1:{port}")).map(drop),
        |e| matches!(e, Error::ConnectionRefused { .. }),
    );
    // Waiting for nobody times out, no earlier than asked.
    let start = Instant::now();
    expect_err(
        "connect_sender_timeout to nobody",
        connect_sender_timeout(&format!("unix:{d}/none.sock"), SHORT).map(drop),
        |e| matches!(e, Error::TimedOut),
    );
    assert!(start.elapsed() >= SHORT);
    // Taken addresses.
    for address in [
        format!("unix:{d}/taken.sock"),
        format!("seqpacket:{d}/taken2.sock"),
        format!("fifo:{d}/taken.fifo"),
        format!("mq:{}", unique("taken")),
        format!("shm:{}", unique("taken")),
    ] {
        let _first = listen(&address).expect("first listen");
        expect_err(&address, listen(&address).map(drop), |e| {
            matches!(e, Error::AlreadyExists { .. })
        });
    }
    let tcp = listen("tcp://127.0.0.1:0").unwrap();
    let taken = tcp.address().to_string();
    expect_err(&taken, listen(&taken).map(drop), |e| {
        matches!(e, Error::AlreadyExists { .. })
    });
    // A FIFO, queue or channel has one receiver.
    let mut once = listen(&format!("mq:{}", unique("once"))).unwrap();
    once.accept().expect("first accept");
    expect_err("second accept", once.accept().map(drop), |e| {
        matches!(
            e,
            Error::RoleTaken {
                role: Role::Receiver,
                ..
            }
        )
    });
}

/// Child: drops to nobody and tries to connect a sender to each address in
/// `ADDRS` (space-separated); reports `<address> <error>` for each.
#[test]
fn child_unprivileged_connect() {
    if !child_start() {
        return;
    }
    become_nobody();
    for address in param("ADDRS").split(' ') {
        let result = connect_sender(address).map(drop);
        report(address, format!("{result:?}"));
    }
}

#[test]
fn created_paths_are_0600_and_refused_to_another_uid() {
    if !root_or_skip("created_paths_are_0600_and_refused_to_another_uid") {
        return;
    }
    let dir = TempDir::new("perm");
    // The directory lets everyone through: only the files' own modes refuse.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.path().display();
    let addresses = [
        format!("unix:{d}/u.sock"),
        format!("seqpacket:{d}/s.sock"),
        format!("fifo:{d}/f.fifo"),
        format!("mq:{}", unique("perm")),
        format!("shm:{}", unique("perm")),
    ];
    let listeners: Vec<TransportListener> = addresses
        .iter()
        .map(|a| listen(a).expect("listen"))
        .collect();
    for path in ["u.sock", "s.sock", "f.fifo"] {
        let meta = std::fs::symlink_metadata(dir.path().join(path)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{path}");
    }
    let all = addresses.join(" ");
    let mut child = Peer::spawn("child_unprivileged_connect", &[("ADDRS", &all)]);
    for address in &addresses {
        let got = child.expect(address);
        assert!(
            got.starts_with("Err(PermissionDenied"),
            "nobody connecting to {address}: {got}"
        );
    }
    child.wait_ok();
    drop(listeners);
    for path in ["u.sock", "s.sock", "f.fifo"] {
        assert!(!dir.path().join(path).exists(), "{path} left behind");
    }
}
