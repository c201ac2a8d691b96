//! Readiness descriptors: an armed endpoint's descriptor becomes readable on a
//! message (or room), on the peer's departure or death, and never while nothing
//! changed; the doorbells' files live and go with their segment; endpoints
//! without a doorbell fall back to polling and say so.
//!
//! Across processes (children of this binary, as in `processes.rs`): a receiver
//! armed in `epoll` takes a long stream from a blocking sender; SIGKILL of the
//! sender while the receiver is parked on the futex or armed in `epoll` (the
//! kill -> `Disconnected` distribution), with and without the watcher thread; a
//! hostile process writing the waiter words and the doorbell; attach with the
//! doorbell refused; what a forked child inherits. For SPSC and MPMC ([`Kind`]),
//! and connections over shared memory in the stream and kill tests.
//!
//! Sizes: the default suite runs a fraction of the full runs, which are
//! `#[ignore]`d (`cargo test -p shmring --test readiness -- --ignored`); the
//! counts can be set with `SHMRING_EPOLL_MESSAGES` and `SHMRING_KILL_TRIALS`.
//! Distributions are printed to stderr (`--nocapture`); only loose bounds are
//! asserted.

mod common;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::broadcast::{BroadcastBuilder, Policy, Publisher, Start};
use shmring::{
    ChannelBuilder, MessageReceiver, MessageSender, MpmcChannelBuilder, Readiness,
    RecvTimeoutError, SegmentBuilder, TryRecvError, TrySendError, WaitStrategy, Wakeups,
};

/// How long a descriptor that must stay quiet is watched.
const QUIET: Duration = Duration::from_millis(50);

fn bell_paths(name: &str) -> [std::path::PathBuf; 2] {
    ["data", "space"]
        .map(|b| std::path::Path::new("/dev/shm").join(format!("shmring-bell.{name}.{b}")))
}

#[test]
fn an_armed_receiver_is_readable_after_a_message_and_quiet_before() {
    let name = unique("ready-rx");
    let channel = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    assert_eq!(*rx.wakeups(), Wakeups::Doorbell);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(rx.readiness_fd(), QUIET),
        "readable with nothing sent"
    );
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        tx.send(b"one").unwrap();
        tx
    });
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "no ring after a message"
    );
    let _tx = sender.join().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 3);
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(rx.readiness_fd(), QUIET),
        "readable after draining and arming"
    );
}

#[test]
fn arming_with_a_message_waiting_says_ready() {
    let channel = ChannelBuilder::shm(unique("ready-now")).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    tx.send(b"x").unwrap();
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Ready);
}

#[test]
fn an_armed_sender_is_readable_when_room_appears() {
    let channel = ChannelBuilder::shm(unique("ready-tx"))
        .capacity(4096)
        .create()
        .unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let message = [7u8; 1000];
    while tx.try_send(&message).is_ok() {}
    assert!(matches!(
        tx.try_send(&message),
        Err(TrySendError::Full { .. })
    ));
    assert_eq!(tx.arm_for_space(message.len()).unwrap(), Readiness::Armed);
    assert!(
        !readable_within(tx.readiness_fd(), QUIET),
        "readable while full"
    );
    let mut buf = [0u8; 1024];
    // Each release the receiver publishes to an armed sender rings it; room for
    // this message may take two (the wrap's padding).
    let mut ready = false;
    for _ in 0..4 {
        rx.try_recv(&mut buf).unwrap();
        assert!(
            readable_within(tx.readiness_fd(), PROMPT_WAKE),
            "no ring after a release"
        );
        if tx.arm_for_space(message.len()).unwrap() == Readiness::Ready {
            ready = true;
            break;
        }
    }
    assert!(ready, "the message never fitted");
    tx.try_send(&message).unwrap();
}

#[test]
fn a_departing_sender_makes_the_armed_receiver_readable_then_disconnected() {
    let channel = ChannelBuilder::shm(unique("ready-gone")).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    tx.send(b"last").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 4);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    drop(tx);
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "departure did not ring"
    );
    assert!(
        ready_within(
            &mut rx,
            PROMPT_WAKE,
            |r: &shmring::Receiver| r.readiness_fd(),
            |r| r.arm_for_message().unwrap()
        ),
        "a departed sender never made the armed receiver ready"
    );
    assert!(matches!(
        rx.try_recv(&mut buf),
        Err(TryRecvError::Disconnected)
    ));
}

#[test]
fn the_doorbell_fifos_live_and_go_with_the_segment() {
    let name = unique("ready-files");
    let channel = ChannelBuilder::shm(&name).create().unwrap();
    for path in bell_paths(&name) {
        let meta =
            std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        use std::os::unix::fs::FileTypeExt;
        assert!(
            meta.file_type().is_fifo(),
            "{} is not a FIFO",
            path.display()
        );
    }
    drop(channel);
    for path in bell_paths(&name) {
        assert!(!path.exists(), "{} left behind", path.display());
    }
}

#[test]
fn a_missing_doorbell_falls_back_to_polling_and_says_why() {
    let name = unique("ready-polled");
    let channel = ChannelBuilder::shm(&name).create().unwrap();
    for path in bell_paths(&name) {
        std::fs::remove_file(path).unwrap();
    }
    let opened = ChannelBuilder::shm(&name).open().unwrap();
    let mut rx = opened.receiver().unwrap();
    let mut tx = channel.sender().unwrap();
    match rx.wakeups() {
        Wakeups::Polled { reason } => assert!(reason.contains("shmring-bell"), "{reason}"),
        other => panic!("a receiver without a FIFO reports {other:?}"),
    }
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    tx.send(b"late").unwrap();
    // Polled: readable within an interval of the watcher's tick, not at once.
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "polled descriptor never readable"
    );
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 4);
}

/// A wake-up that must come: generous, so a loaded machine does not fail it.
const PROMPT_WAKE: Duration = Duration::from_secs(2);

#[test]
fn an_armed_mpmc_receiver_is_readable_after_a_message_and_on_the_last_senders_departure() {
    let channel = shmring::MpmcChannelBuilder::shm(unique("ready-mpmc"))
        .slots(4)
        .slot_size(16)
        .create()
        .unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    assert_eq!(*rx.wakeups(), Wakeups::Doorbell);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(rx.readiness_fd(), QUIET),
        "readable with nothing sent"
    );
    tx.send(b"m").unwrap();
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "no ring after a message"
    );
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Ready);
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 1);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    drop(tx);
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "departure did not ring"
    );
    assert!(
        ready_within(
            &mut rx,
            PROMPT_WAKE,
            |r: &shmring::MpmcReceiver| r.readiness_fd(),
            |r| r.arm_for_message().unwrap()
        ),
        "a departed sender never made the armed receiver ready"
    );
    assert!(matches!(
        rx.try_recv(&mut buf),
        Err(shmring::TryRecvError::Disconnected)
    ));
}

#[test]
fn an_armed_mpmc_sender_is_readable_when_a_slot_frees() {
    let channel = shmring::MpmcChannelBuilder::shm(unique("ready-mpmc-tx"))
        .slots(2)
        .slot_size(16)
        .create()
        .unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    tx.send(b"1").unwrap();
    tx.send(b"2").unwrap();
    assert_eq!(tx.arm_for_space().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(tx.readiness_fd(), QUIET),
        "readable while full"
    );
    let mut buf = [0u8; 16];
    rx.try_recv(&mut buf).unwrap();
    assert!(
        readable_within(tx.readiness_fd(), PROMPT_WAKE),
        "no ring after a slot freed"
    );
    assert_eq!(tx.arm_for_space().unwrap(), Readiness::Ready);
}

// ---------------------------------------------------------------------------
// Across processes: the kinds, an epoll loop, the children
// ---------------------------------------------------------------------------

/// Messages through the `epoll` receiver, default and `#[ignore]`d.
const EPOLL_MESSAGES: u64 = 100_000;
const EPOLL_MESSAGES_LONG: u64 = 1_000_000;
/// Kill trials per kind and way of waiting, default and `#[ignore]`d.
const KILL_TRIALS: u64 = 200;
const KILL_TRIALS_LONG: u64 = 1_000;
/// A bound on calls that should return long before it (a hang fails instead of
/// stalling the suite).
const LONG: Duration = Duration::from_secs(30);
/// An armed descriptor quiet for this long while its peer is sending or has
/// died: a lost wake-up.
const STALL: Duration = Duration::from_secs(5);
/// The name of the watcher thread (`/proc/self/task/*/comm`).
const WATCHER_THREAD: &str = "shmring-watcher";

/// A channel kind with a readiness descriptor on its receiver. Adding a kind is
/// a variant here, in [`Chan`], and an [`Armed`] impl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Spsc,
    Mpmc,
    /// A connection (a listener in the default socket directory, a client
    /// that connects to it), over shared memory.
    Connection,
}

/// The named channel kinds: their segments and doorbell files are reachable by
/// name (the hostile, degraded and fork tests).
const KINDS: [Kind; 2] = [Kind::Spsc, Kind::Mpmc];
/// Every kind: the stream and kill tests.
const ALL_KINDS: [Kind; 3] = [Kind::Spsc, Kind::Mpmc, Kind::Connection];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpmc => "mpmc",
            Kind::Connection => "connection",
        }
    }

    fn from_name(name: &str) -> Self {
        *ALL_KINDS
            .iter()
            .find(|k| k.name() == name)
            .unwrap_or_else(|| panic!("no kind {name:?}"))
    }
}

/// A receiving endpoint with a readiness descriptor, as an event loop uses it.
trait Armed: MessageReceiver + Send {
    fn fd(&self) -> BorrowedFd<'_>;
    fn arm(&mut self) -> shmring::Result<Readiness>;
    fn wakeups(&self) -> Wakeups;
}

macro_rules! armed {
    ($($ty:ty),*) => {$(
        impl Armed for $ty {
            fn fd(&self) -> BorrowedFd<'_> {
                self.readiness_fd()
            }
            fn arm(&mut self) -> shmring::Result<Readiness> {
                self.arm_for_message()
            }
            fn wakeups(&self) -> Wakeups {
                <$ty>::wakeups(self).clone()
            }
        }
    )*};
}

armed!(
    shmring::Receiver,
    shmring::MpmcReceiver,
    shmring::Connection
);

/// A channel of any kind, named, every endpoint waiting with `Park`: small
/// rings, so that a sender often finds them full.
enum Chan {
    Spsc(shmring::Channel),
    Mpmc(shmring::MpmcChannel),
    /// The server's side: connections are accepted from it
    /// ([`receiver_with_sender`]).
    Listener(shmring::Listener),
    /// The client's side, until its sender is taken.
    Client(std::cell::Cell<Option<Box<shmring::Connection>>>),
}

impl Chan {
    fn create(kind: Kind, name: &str) -> Self {
        let made = match kind {
            Kind::Spsc => ChannelBuilder::shm(name)
                .capacity(4096)
                .wait_strategy(WaitStrategy::Park)
                .create()
                .map(Chan::Spsc),
            Kind::Mpmc => MpmcChannelBuilder::shm(name)
                .slots(8)
                .slot_size(128)
                .wait_strategy(WaitStrategy::Park)
                .create()
                .map(Chan::Mpmc),
            Kind::Connection => shmring::Listener::builder(name)
                .capacity(4096)
                .bind()
                .map(Chan::Listener),
        };
        made.unwrap_or_else(|e| panic!("create {name}: {e}"))
    }

    fn open(kind: Kind, name: &str) -> Self {
        let opened = match kind {
            Kind::Spsc => ChannelBuilder::shm(name)
                .wait_strategy(WaitStrategy::Park)
                .open()
                .map(Chan::Spsc),
            Kind::Mpmc => MpmcChannelBuilder::shm(name)
                .wait_strategy(WaitStrategy::Park)
                .open()
                .map(Chan::Mpmc),
            Kind::Connection => shmring::connection::ConnectOptions::new()
                .timeout(LONG)
                .connect(name)
                .map(|c| Chan::Client(std::cell::Cell::new(Some(Box::new(c))))),
        };
        opened.unwrap_or_else(|e| panic!("open {name}: {e}"))
    }

    fn receiver(&self) -> Box<dyn Armed> {
        match self {
            Chan::Spsc(c) => Box::new(claim("the receiver", || c.receiver())),
            Chan::Mpmc(c) => Box::new(claim("a receiver", || c.receiver())),
            Chan::Listener(_) | Chan::Client(_) => {
                panic!("a connection's receiver comes from receiver_with_sender")
            }
        }
    }

    fn sender(&self) -> Box<dyn MessageSender + Send> {
        match self {
            Chan::Spsc(c) => Box::new(claim("the sender", || c.sender())),
            Chan::Mpmc(c) => Box::new(claim("a sender", || c.sender())),
            Chan::Client(c) => c.take().expect("one sender per connection"),
            Chan::Listener(_) => panic!("a listener does not send"),
        }
    }
}

/// In a child entry point: whether to run (this process is a child), with a
/// watchdog so that an orphaned child cannot linger.
fn child_start() -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(Duration::from_secs(300));
    true
}

/// How many watcher threads this process has. A new thread names itself once
/// it runs: this waits up to 200 ms for a first one to show.
fn watcher_threads() -> usize {
    let count = || {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == WATCHER_THREAD)
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        let n = count();
        if n > 0 || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// An `epoll` instance watching one descriptor for readability (level
/// triggered), as an event loop would.
struct Epoll(OwnedFd);

impl Epoll {
    fn new(fd: BorrowedFd<'_>) -> Self {
        // SAFETY: no memory arguments.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(
            raw >= 0,
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 1,
        };
        // SAFETY: `event` is a valid epoll_event for the call; both fds are open.
        let rc = unsafe { libc::epoll_ctl(raw, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event) };
        assert_eq!(rc, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
        Self(epoll)
    }

    /// Whether the descriptor became readable (or hung up) within `timeout`.
    fn wait(&self, timeout: Duration) -> bool {
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        loop {
            // SAFETY: room for one event at `event`; the epoll fd is open.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), &mut event, 1, ms) };
            if n >= 0 {
                return n > 0;
            }
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR),
                "epoll_wait failed"
            );
        }
    }
}

/// What an `epoll` receiving loop saw.
#[derive(Debug, Default)]
struct EpollRun {
    /// Messages received (seq messages, in order from the first expected).
    received: u64,
    /// Times `epoll_wait` reported the descriptor readable.
    wakeups: u64,
    /// Wake-ups after which there was nothing to receive (and no departure).
    spurious: u64,
}

/// The event loop: receives seq messages `first..` through `rx` until
/// `Disconnected`, each in order (none lost or repeated), arming and waiting in
/// `epoll` whenever the ring is empty. Fails if the armed descriptor stays quiet
/// for [`STALL`] (a lost wake-up) or `deadline` passes.
fn epoll_receive(rx: &mut dyn Armed, first: u64, deadline: Instant) -> EpollRun {
    let epoll = Epoll::new(rx.fd());
    let mut buf = vec![0u8; rx.max_message_len()];
    let mut run = EpollRun::default();
    let mut next = first;
    let mut woken = false;
    loop {
        let before = next;
        loop {
            match rx.try_recv(&mut buf) {
                Ok(n) => {
                    let seq = parse_seq(&buf[..n]).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(seq, next, "message {seq} where {next} was due");
                    next += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    run.received = next - first;
                    return run;
                }
                Err(e) => panic!("try_recv after message {next}: {e}"),
            }
        }
        if woken && next == before {
            run.spurious += 1;
        }
        woken = false;
        match rx.arm().unwrap_or_else(|e| panic!("arm: {e}")) {
            Readiness::Ready => continue,
            Readiness::Armed => {}
        }
        assert!(
            Instant::now() < deadline,
            "deadline passed after {} messages",
            next - first
        );
        assert!(
            epoll.wait(STALL),
            "armed after {} messages, the descriptor stayed quiet for {STALL:?}: a lost wake-up",
            next - first
        );
        run.wakeups += 1;
        woken = true;
    }
}

/// Asserts that the shm channel `name` is removed within a second. Not at once:
/// the watcher thread's tick holds an armed endpoint's probe (and with it the
/// segment) for a moment, so the last handle may be dropped, and the name
/// removed, on the watcher thread just after the test dropped its own.
fn assert_gone_soon(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while shm_path(name).exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert_no_shm(name);
}

/// The 50th, 90th and 99th percentiles and the maximum of `samples` (sorted in
/// place), for reports.
fn percentiles(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    format!(
        "n={} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        at(50),
        at(90),
        at(99),
        samples[samples.len() - 1]
    )
}

/// Child: opens `KIND` channel `NAME`, claims a sender and reports `READY <pid>`;
/// sends seq messages `0..COUNT` with the blocking `send` (sleeping `GAP_US`
/// before each), reports `SENT <count>`; then, if `HOLD` is 1, holds the sender
/// until the parent closes our stdin (or kills us); exits, dropping the sender.
#[test]
fn child_sender() {
    if !child_start() {
        return;
    }
    let chan = Chan::open(Kind::from_name(&param("KIND")), &param("NAME"));
    let count = param_u64("COUNT");
    let gap = Duration::from_micros(param_u64("GAP_US"));
    let mut tx = chan.sender();
    report("READY", std::process::id());
    let mut buf = Vec::new();
    for seq in 0..count {
        if !gap.is_zero() {
            thread::sleep(gap);
        }
        seq_message(seq, &mut buf);
        tx.send(&buf).unwrap_or_else(|e| panic!("send {seq}: {e}"));
    }
    report("SENT", count);
    if param_u64("HOLD") == 1 {
        wait_for_parent();
    }
}

/// Spawns [`child_sender`] on `name` and waits for its `READY`.
fn spawn_sender(kind: Kind, name: &str, count: u64, gap_us: u64, hold: bool) -> Peer {
    let mut child = spawn_sender_unready(kind, name, count, gap_us, hold);
    child.expect("READY");
    child
}

fn spawn_sender_unready(kind: Kind, name: &str, count: u64, gap_us: u64, hold: bool) -> Peer {
    Peer::spawn(
        "child_sender",
        &[
            ("KIND", &kind.name()),
            ("NAME", &name),
            ("COUNT", &count),
            ("GAP_US", &gap_us),
            ("HOLD", &u8::from(hold)),
        ],
    )
}

/// Our receiver on `chan` and a [`child_sender`] for it (as [`spawn_sender`]),
/// in the order the kind needs: a connection is accepted once the child
/// connects.
fn receiver_with_sender(
    chan: &Chan,
    kind: Kind,
    name: &str,
    count: u64,
    gap_us: u64,
    hold: bool,
) -> (Box<dyn Armed>, Peer) {
    match chan {
        Chan::Listener(listener) => {
            let mut child = spawn_sender_unready(kind, name, count, gap_us, hold);
            let conn = listener
                .accept_timeout(LONG)
                .unwrap_or_else(|e| panic!("accept on {name}: {e}"));
            child.expect("READY");
            assert_eq!(
                conn.transport(),
                shmring::connection::Transport::SharedMemory,
                "{name}: the connection is not over shared memory"
            );
            (Box::new(conn), child)
        }
        _ => {
            let rx = chan.receiver();
            (rx, spawn_sender(kind, name, count, gap_us, hold))
        }
    }
}

// ---------------------------------------------------------------------------
// 1. A receiver armed in epoll, a blocking sender in another process
// ---------------------------------------------------------------------------

fn epoll_stream(kind: Kind, count: u64) {
    let name = unique(&format!("epoll-{}", kind.name()));
    let chan = Chan::create(kind, &name);
    let start = Instant::now();
    let (mut rx, mut child) = receiver_with_sender(&chan, kind, &name, count, 0, false);
    assert_eq!(rx.wakeups(), Wakeups::Doorbell);
    let run = epoll_receive(&mut *rx, 0, start + Duration::from_secs(600));
    let elapsed = start.elapsed();
    assert_eq!(child.expect("SENT"), count.to_string());
    child.wait_ok();
    assert_eq!(run.received, count, "messages received before Disconnected");
    eprintln!(
        "{}: {count} messages to an epoll receiver in {elapsed:?}: {} wake-ups, {} spurious",
        kind.name(),
        run.wakeups,
        run.spurious
    );
    drop((rx, chan));
    assert_gone_soon(&name);
}

#[test]
fn an_epoll_receiver_gets_every_message_of_a_blocking_sender_in_order() {
    for kind in ALL_KINDS {
        epoll_stream(kind, EPOLL_MESSAGES);
    }
}

#[test]
#[ignore = "long: 10^6 messages per kind"]
fn an_epoll_receiver_gets_every_message_of_a_blocking_sender_long() {
    for kind in ALL_KINDS {
        epoll_stream(
            kind,
            count_from_env("SHMRING_EPOLL_MESSAGES", EPOLL_MESSAGES_LONG),
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Death as a wake-up: SIGKILL of the sender while the receiver waits
// ---------------------------------------------------------------------------

/// How the receiver waits for the message that never comes.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// `recv_deadline` with `WaitStrategy::Park`: asleep on the futex.
    Parked,
    /// Armed, asleep in `epoll_wait`.
    Epoll,
}

/// Waits on `rx` as `how` until `Disconnected`; returns the instant it came.
fn wait_for_disconnected(rx: &mut dyn Armed, how: Waiting) -> Instant {
    match how {
        Waiting::Parked => {
            let mut buf = vec![0u8; rx.max_message_len()];
            let result = rx.recv_deadline(&mut buf, Some(Instant::now() + LONG));
            assert!(
                matches!(result, Err(RecvTimeoutError::Disconnected)),
                "parked receiver: {result:?}"
            );
        }
        Waiting::Epoll => {
            let run = epoll_receive(rx, 0, Instant::now() + LONG);
            assert_eq!(run.received, 0, "messages from a sender that sent none");
        }
    }
    Instant::now()
}

/// `trials` times: a sender in a child that sends nothing, our receiver waiting
/// as `how` in a thread, the child killed at a random moment 2 to 10 ms later;
/// returns the kill -> `Disconnected` latencies, each asserted under 2 s.
fn kill_trials(kind: Kind, how: Waiting, trials: u64) -> Vec<Duration> {
    let mut rng = XorShift::new(seed(&format!("kill {} {how:?}", kind.name())));
    let name = unique(&format!("kill-{}", kind.name()));
    let chan = Chan::create(kind, &name);
    let mut latencies = Vec::new();
    for trial in 0..trials {
        let (mut rx, mut child) = receiver_with_sender(&chan, kind, &name, 0, 0, true);
        let waiter = thread::spawn(move || wait_for_disconnected(&mut *rx, how));
        thread::sleep(Duration::from_micros(2_000 + rng.below(8_000)));
        let killed_at = child.kill_now();
        let disconnected_at = waiter.join().expect("the waiting thread panicked");
        assert!(
            disconnected_at > killed_at,
            "trial {trial}: Disconnected before the kill"
        );
        let latency = disconnected_at - killed_at;
        assert!(
            latency < Duration::from_secs(2),
            "{} {how:?}, trial {trial}: Disconnected {latency:?} after the kill",
            kind.name()
        );
        latencies.push(latency);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&child.wait()),
            Some(libc::SIGKILL)
        );
    }
    drop(chan);
    assert_gone_soon(&name);
    latencies
}

/// The watcher's claim, loosely: the median kill -> `Disconnected` is well under
/// the periodic probe's (the kill comes at a random phase of the
/// [`LIVENESS_INTERVAL`](shmring::channel::LIVENESS_INTERVAL), so the probe alone gives a
/// median near half of it). The hang-up gives about a millisecond; a quarter of
/// the interval leaves room for a loaded machine.
fn kill_to_disconnected(trials: u64) {
    let bound = shmring::channel::LIVENESS_INTERVAL / 4;
    for kind in ALL_KINDS {
        for how in [Waiting::Parked, Waiting::Epoll] {
            let start = Instant::now();
            let mut latencies = kill_trials(kind, how, trials);
            let median = {
                latencies.sort();
                latencies[latencies.len() / 2]
            };
            eprintln!(
                "{} {how:?}: kill -> Disconnected {} ({:?} in all)",
                kind.name(),
                percentiles(&mut latencies),
                start.elapsed()
            );
            assert!(
                median < bound,
                "{} {how:?}: median kill -> Disconnected {median:?}, not under {bound:?}: the hang-up did not wake the waiter",
                kind.name()
            );
        }
    }
}

#[test]
fn a_killed_sender_wakes_a_parked_or_armed_receiver_at_once() {
    kill_to_disconnected(KILL_TRIALS);
}

#[test]
#[ignore = "long: 1000 kills per kind and way of waiting"]
fn a_killed_sender_wakes_a_parked_or_armed_receiver_long() {
    kill_to_disconnected(count_from_env("SHMRING_KILL_TRIALS", KILL_TRIALS_LONG));
}

/// Child: with the watcher off (`SHMRING_NO_WATCHER=1` in its environment),
/// claims a receiver of `KIND` channel `NAME`, reports `READY`, parks in
/// `recv_deadline` until `Disconnected`, and reports `DISCONNECTED <monotonic
/// ns>` and `WATCHERS <its watcher threads>`.
#[test]
fn child_parked_receiver() {
    if !child_start() {
        return;
    }
    let chan = Chan::open(Kind::from_name(&param("KIND")), &param("NAME"));
    let mut rx = chan.receiver();
    report("READY", std::process::id());
    wait_for_disconnected(&mut *rx, Waiting::Parked);
    report("DISCONNECTED", monotonic_ns());
    report("WATCHERS", watcher_threads());
}

#[test]
fn without_the_watcher_a_parked_receiver_still_gets_disconnected_from_the_probe() {
    for kind in KINDS {
        let name = unique(&format!("nowatch-{}", kind.name()));
        let _chan = Chan::create(kind, &name);
        let mut sender = spawn_sender(kind, &name, 0, 0, true);
        let mut receiver = Peer::spawn_with(
            "child_parked_receiver",
            &[("KIND", &kind.name()), ("NAME", &name)],
            |command| {
                command.env(shmring::NO_WATCHER_VAR, "1");
            },
        );
        receiver.expect("READY");
        thread::sleep(Duration::from_millis(30));
        let killed_ns = monotonic_ns();
        sender.kill();
        let at: u64 = receiver.expect("DISCONNECTED").parse().unwrap();
        let latency = Duration::from_nanos(at.saturating_sub(killed_ns));
        assert!(
            latency < Duration::from_secs(2),
            "{}: Disconnected {latency:?} after the kill",
            kind.name()
        );
        assert_eq!(
            receiver.expect("WATCHERS"),
            "0",
            "{}: a watcher thread ran with {}=1",
            kind.name(),
            shmring::NO_WATCHER_VAR
        );
        receiver.wait_ok();
        eprintln!(
            "{} without the watcher: parked receiver, kill -> Disconnected {latency:?}",
            kind.name()
        );
    }
}

// ---------------------------------------------------------------------------
// 4. Degraded: the doorbell refused
// ---------------------------------------------------------------------------

/// How the data doorbell beside a segment is spoilt before the receiver attaches.
#[derive(Debug, Clone, Copy)]
enum Spoilt {
    /// Both FIFOs removed.
    Removed,
    /// The data FIFO replaced by a regular file.
    RegularFile,
    /// The data FIFO replaced by a FIFO anyone may write (mode 0666).
    OpenFifo,
}

fn spoil(name: &str, how: Spoilt) {
    let [data, space] = bell_paths(name);
    std::fs::remove_file(&data).unwrap();
    match how {
        Spoilt::Removed => std::fs::remove_file(&space).unwrap(),
        Spoilt::RegularFile => std::fs::write(&data, b"not a fifo").unwrap(),
        Spoilt::OpenFifo => {
            use std::os::unix::ffi::OsStrExt;
            use std::os::unix::fs::PermissionsExt;
            let c = std::ffi::CString::new(data.as_os_str().as_bytes()).unwrap();
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
            assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
            // Past the umask.
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
}

/// With the data doorbell spoilt `how`, a receiver still attaches, says it is
/// polled and why, its armed descriptor still becomes readable for a message sent
/// from another process (within [`STALL`]; every interval in fact), and still
/// for the sender's death, with `Disconnected` after it.
fn refused_doorbell(kind: Kind, how: Spoilt) {
    let name = unique(&format!("refused-{}", kind.name()));
    let chan = Chan::create(kind, &name);
    spoil(&name, how);
    let mut rx = chan.receiver();
    let data_bell = bell_paths(&name)[0].display().to_string();
    match rx.wakeups() {
        Wakeups::Polled { reason } => assert!(
            reason.contains(&data_bell),
            "{} {how:?}: the reason does not name {data_bell}: {reason}",
            kind.name()
        ),
        other => panic!(
            "{} {how:?}: a refused doorbell gives {other:?}",
            kind.name()
        ),
    }
    // The sender attaches too, and sends after the receiver armed.
    let mut child = spawn_sender(kind, &name, 1, 100_000, true);
    let receiver = thread::spawn(move || {
        let run = epoll_receive(&mut *rx, 0, Instant::now() + LONG);
        (run, Instant::now())
    });
    child.expect("SENT");
    thread::sleep(Duration::from_millis(50));
    let killed_at = child.kill();
    let (run, disconnected_at) = receiver.join().expect("the receiving thread panicked");
    assert_eq!(run.received, 1, "{} {how:?}", kind.name());
    let latency = disconnected_at.saturating_duration_since(killed_at);
    assert!(
        latency < Duration::from_secs(2),
        "{} {how:?}: Disconnected {latency:?} after the kill",
        kind.name()
    );
    eprintln!(
        "{} {how:?}: polled; {} wake-ups ({} with nothing), kill -> Disconnected {latency:?}",
        kind.name(),
        run.wakeups,
        run.spurious
    );
    drop(chan);
    assert_gone_soon(&name);
    for path in bell_paths(&name) {
        if path.exists() {
            eprintln!("{} {how:?}: {} left behind", kind.name(), path.display());
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn a_refused_doorbell_falls_back_to_polling_across_processes() {
    for kind in KINDS {
        for how in [Spoilt::Removed, Spoilt::RegularFile, Spoilt::OpenFifo] {
            refused_doorbell(kind, how);
        }
    }
}

// ---------------------------------------------------------------------------
// 3. A hostile process on the waiter words and the doorbells
// ---------------------------------------------------------------------------

/// Offsets of the signal words (`data_signal`, `space_signal`) in SPSC and MPMC
/// segments (ARCHITECTURE.md, the layout tables).
const SIGNAL_WORDS: [usize; 2] = [384, 388];

/// Child: maps the segment of channel `NAME` and opens both its doorbell FIFOs
/// (read-write, so they stay open for writing: the peer's death no longer hangs
/// them up), reports `READY`, then until killed, every 0 to 500 µs at random:
/// sets or clears `WAITING` or `ARMED` on a signal word, stores a random value
/// in one, wakes its futex, writes a byte into a doorbell, or fills a doorbell.
#[test]
fn child_hostile() {
    if !child_start() {
        return;
    }
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    let name = param("NAME");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&name))
        .expect("open the segment");
    let len = 4096;
    // SAFETY: a new shared mapping of an open file, at an address the kernel
    // picks; nothing else in this process uses that range.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED, "mmap");
    let words: Vec<&AtomicU32> = SIGNAL_WORDS
        .iter()
        // SAFETY: each offset is 4-aligned and inside the mapping, which lives
        // until the process ends; other processes change it only atomically.
        .map(|&at| unsafe { &*base.cast::<u8>().add(at).cast::<AtomicU32>() })
        .collect();
    let bells: Vec<std::fs::File> = bell_paths(&name)
        .iter()
        .map(|path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect();
    let mut rng = XorShift::new(seed("hostile"));
    report("READY", std::process::id());
    let (armed, waiting) = (1u32, 2u32);
    loop {
        let word = words[rng.below(2) as usize];
        let bell = &bells[rng.below(2) as usize];
        // Relaxed: a hostile process orders nothing.
        match rng.below(10) {
            0 => drop(word.fetch_or(armed, Ordering::Relaxed)),
            1 => drop(word.fetch_and(!armed, Ordering::Relaxed)),
            2 => drop(word.fetch_or(waiting, Ordering::Relaxed)),
            3 => drop(word.fetch_and(!waiting, Ordering::Relaxed)),
            4 => word.store(rng.next_u64() as u32, Ordering::Relaxed),
            5 => {
                // SAFETY: FUTEX_WAKE reads no memory through the pointer beyond
                // checking the mapped word's address.
                unsafe {
                    libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX)
                };
            }
            6 => {
                use std::io::Write;
                let chunk = [0x55u8; 4096];
                while (&*bell).write(&chunk).is_ok() {}
            }
            _ => {
                use std::io::Write;
                let _ = (&*bell).write(&[0xaa]);
            }
        }
        thread::sleep(Duration::from_micros(rng.below(500)));
    }
}

/// Under the hostile process: an armed receiver gets every real message (the
/// ones the hostile process's clearing of `ARMED` does not announce come with
/// its rings: spurious wake-ups, no stall); `recv_deadline` against a live, idle
/// sender returns `TimedOut` at its deadline, not much later; and with the
/// doorbell held open by the hostile process (no hang-up), the sender's death
/// still reaches the armed receiver as `Disconnected` (here mostly through the
/// hostile process's own rings, each followed by a probe of the lock; else the
/// watcher's periodic probe).
fn hostile(kind: Kind) {
    let name = unique(&format!("hostile-{}", kind.name()));
    let chan = Chan::create(kind, &name);
    let mut rx = chan.receiver();
    let mut attacker = Peer::spawn("child_hostile", &[("NAME", &name)]);
    attacker.expect("READY");

    let count = 2_000;
    let mut sender = spawn_sender(kind, &name, count, 100, false);
    let start = Instant::now();
    let run = epoll_receive(&mut *rx, 0, start + Duration::from_secs(60));
    assert_eq!(
        run.received,
        count,
        "{}: messages under attack",
        kind.name()
    );
    assert_eq!(sender.expect("SENT"), count.to_string());
    sender.wait_ok();
    eprintln!(
        "{} under attack: {count} messages in {:?}, {} wake-ups, {} with nothing",
        kind.name(),
        start.elapsed(),
        run.wakeups,
        run.spurious
    );

    let mut idle = spawn_sender(kind, &name, 0, 0, true);
    let mut buf = vec![0u8; rx.max_message_len()];
    let mut overshoots = Vec::new();
    for _ in 0..5 {
        let timeout = Duration::from_millis(100);
        let deadline = Instant::now() + timeout;
        let result = rx.recv_deadline(&mut buf, Some(deadline));
        let returned = Instant::now();
        assert!(
            matches!(result, Err(RecvTimeoutError::TimedOut)),
            "{}: recv_deadline under attack, live idle sender: {result:?}",
            kind.name()
        );
        assert!(returned >= deadline, "{}: TimedOut early", kind.name());
        let overshoot = returned - deadline;
        assert!(
            overshoot < Duration::from_secs(1),
            "{}: recv_deadline returned {overshoot:?} past its deadline",
            kind.name()
        );
        overshoots.push(overshoot);
    }

    let waiter = thread::spawn(move || wait_for_disconnected(&mut *rx, Waiting::Epoll));
    thread::sleep(Duration::from_millis(20));
    let killed_at = idle.kill();
    let latency = waiter.join().expect("the armed receiver panicked") - killed_at;
    assert!(
        latency < Duration::from_secs(2),
        "{}: armed, doorbell held open: Disconnected {latency:?} after the kill",
        kind.name()
    );
    eprintln!(
        "{} under attack: TimedOut past the deadline {}; doorbell held open, kill -> Disconnected {latency:?}",
        kind.name(),
        summary(&mut overshoots)
    );
    attacker.kill();
    drop(chan);
    assert_gone_soon(&name);
}

#[test]
fn a_hostile_process_on_the_waiter_words_and_doorbells_costs_spurious_wakeups_only() {
    for kind in KINDS {
        hostile(kind);
    }
}

// ---------------------------------------------------------------------------
// 5. Fork: what a forked child inherits
// ---------------------------------------------------------------------------

/// Forks this process (a child of the test binary, so no other test's threads
/// are running); returns the pid in the parent, 0 in the forked child, which
/// starts a watchdog of its own (threads do not survive `fork`).
fn fork() -> i32 {
    // SAFETY: the forked child uses only this thread; the locks it may need
    // (stdout's, the allocator's, shmring's watcher registry) are not held by
    // another thread of this child process at the fork: its other threads are
    // the watchdog (asleep) and the watcher (in `epoll_wait` or a tick).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        child_watchdog(Duration::from_secs(60));
    }
    pid
}

/// Waits for the forked child `pid`; its exit code.
fn wait_forked(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is valid for the write; `pid` is our child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    }
}

/// Child: claims a receiver of `KIND` channel `NAME`, arms it if `ARM` is 1
/// (which starts the watcher), reports `WATCHERS <n>`, and forks. The forked
/// child reports `FORKED_WATCHERS <n>` (none survive the fork), receives message
/// 0 with the inherited receiver, reports `GOT <seq>`, parks until
/// `Disconnected` and reports `DISCONNECTED <monotonic ns>` and `WATCHERS <n>`,
/// then exits without dropping anything. This process waits for it,
/// reports `STATUS <its exit code>` and only then drops its receiver (whose
/// drop would release the claim and the lock the forked child shares).
#[test]
fn child_forked_receiver() {
    if !child_start() {
        return;
    }
    let chan = Chan::open(Kind::from_name(&param("KIND")), &param("NAME"));
    let mut rx = chan.receiver();
    if param_u64("ARM") == 1 {
        rx.arm().expect("arm");
    }
    report("WATCHERS", watcher_threads());
    let pid = fork();
    if pid == 0 {
        report("FORKED_WATCHERS", watcher_threads());
        let mut buf = vec![0u8; rx.max_message_len()];
        let n = rx
            .recv_deadline(&mut buf, Some(Instant::now() + LONG))
            .expect("receive in the forked child");
        report("GOT", parse_seq(&buf[..n]).unwrap());
        let result = rx.recv_deadline(&mut buf, Some(Instant::now() + LONG));
        assert!(
            matches!(result, Err(RecvTimeoutError::Disconnected)),
            "forked child: {result:?}"
        );
        report("DISCONNECTED", monotonic_ns());
        report("WATCHERS", watcher_threads());
        std::process::exit(0);
    }
    report("STATUS", wait_forked(pid));
}

/// A forked child can use the receiver it inherited: it receives, and its
/// parked call gets `Disconnected` promptly when the sender is killed. Threads
/// do not survive the fork: the child has no watcher thread. One starts in the
/// child at its first park if the endpoint was never watched before the fork;
/// if it was (armed in the parent), the child starts none, and the hang-up
/// reaches it through the parent's watcher (the doorbell's open file
/// description and the `epoll` instance are shared across the fork, and the
/// wake is a futex wake on the shared segment).
#[test]
fn a_forked_child_uses_its_inherited_receiver_and_sees_the_sender_die() {
    for kind in KINDS {
        for armed_before in [false, true] {
            let name = unique(&format!("fork-rx-{}", kind.name()));
            let _chan = Chan::create(kind, &name);
            let mut sender = spawn_sender(kind, &name, 1, 0, true);
            let mut forker = Peer::spawn(
                "child_forked_receiver",
                &[
                    ("KIND", &kind.name()),
                    ("NAME", &name),
                    ("ARM", &u8::from(armed_before)),
                ],
            );
            let what = format!("{} armed before the fork: {armed_before}", kind.name());
            let expected = usize::from(armed_before).to_string();
            assert_eq!(forker.expect("WATCHERS"), expected, "{what}: the parent");
            assert_eq!(forker.expect("FORKED_WATCHERS"), "0", "{what}");
            assert_eq!(forker.expect("GOT"), "0", "{what}");
            thread::sleep(Duration::from_millis(20));
            let killed_ns = monotonic_ns();
            sender.kill();
            let at: u64 = forker.expect("DISCONNECTED").parse().unwrap();
            let latency = Duration::from_nanos(at.saturating_sub(killed_ns));
            assert!(
                latency < Duration::from_secs(2),
                "{what}: Disconnected {latency:?} after the kill"
            );
            // The forked child started a watcher at its park only for an
            // endpoint not watched before the fork.
            let expected = usize::from(!armed_before).to_string();
            assert_eq!(
                forker.expect("WATCHERS"),
                expected,
                "{what}: the forked child after parking"
            );
            assert_eq!(forker.expect("STATUS"), "0", "{what}: the forked child");
            forker.wait_ok();
            eprintln!("forked receiver, {what}: kill -> Disconnected {latency:?}");
        }
    }
}

/// Child: claims a sender of `KIND` channel `NAME`, sends message 0, and forks.
/// The forked child reports `FORKED <pid>`, sends message 1 with the inherited
/// sender, reports `SENT 1`, and waits to be killed; this process waits too.
#[test]
fn child_forked_sender() {
    if !child_start() {
        return;
    }
    let chan = Chan::open(Kind::from_name(&param("KIND")), &param("NAME"));
    let mut tx = chan.sender();
    let mut buf = Vec::new();
    seq_message(0, &mut buf);
    tx.send(&buf).unwrap();
    if fork() == 0 {
        report("FORKED", std::process::id());
        seq_message(1, &mut buf);
        tx.send(&buf).expect("send in the forked child");
        report("SENT", 1);
        loop {
            thread::sleep(Duration::from_secs(1));
        }
    }
    wait_for_parent();
}

/// Kills the process `pid` (not our child: a forked grandchild) on drop.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: no memory arguments. The pid is a grandchild that only we kill;
        // if it died already its pid may in theory be reused within the test.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// A forked child shares its parent's liveness lock (an OFD lock belongs to the
/// open file description, which `fork` shares) and its doorbell's write end: the
/// sender's parent killed, the receiver sees neither a hang-up nor
/// `Disconnected` while the forked child lives, and gets `Disconnected` when it
/// dies too. The forked child's sends arrive.
#[test]
fn a_forked_child_keeps_the_sender_alive_after_its_parent_dies() {
    for kind in KINDS {
        let name = unique(&format!("fork-tx-{}", kind.name()));
        let chan = Chan::create(kind, &name);
        let mut rx = chan.receiver();
        let mut forker = Peer::spawn(
            "child_forked_sender",
            &[("KIND", &kind.name()), ("NAME", &name)],
        );
        let forked = KillOnDrop(forker.expect("FORKED").parse().unwrap());
        assert_eq!(forker.expect("SENT"), "1");
        let mut buf = vec![0u8; rx.max_message_len()];
        for seq in 0..2 {
            let n = rx.recv_timeout(&mut buf, LONG).unwrap();
            assert_eq!(parse_seq(&buf[..n]).unwrap(), seq, "{}", kind.name());
        }
        forker.kill();
        assert_eq!(rx.arm().unwrap(), Readiness::Armed, "{}", kind.name());
        assert!(
            !readable_within(rx.fd(), Duration::from_millis(100)),
            "{}: the doorbell hung up or rang while the forked child lives",
            kind.name()
        );
        let result = rx.recv_deadline(&mut buf, Some(Instant::now() + Duration::from_millis(100)));
        assert!(
            matches!(result, Err(RecvTimeoutError::TimedOut)),
            "{}: with the forked child alive: {result:?}",
            kind.name()
        );
        let killed_at = Instant::now();
        drop(forked);
        let latency = wait_for_disconnected(&mut *rx, Waiting::Parked) - killed_at;
        assert!(
            latency < Duration::from_secs(2),
            "{}: Disconnected {latency:?} after the forked child's kill",
            kind.name()
        );
        eprintln!(
            "{}: sender's parent killed: no Disconnected while its forked child lives; the child killed -> Disconnected {latency:?}",
            kind.name()
        );
        drop((rx, chan));
        assert_gone_soon(&name);
    }
}

// ---------------------------------------------------------------------------
// 6. A doorbell whose hang-up cannot come: the watcher's tick
// ---------------------------------------------------------------------------

/// A process other than the sender holds the data doorbell's write end open
/// (here: this test's own process, as a hostile or forked one would), so the
/// sender's death hangs nothing up. An armed receiver still becomes readable and
/// gets `Disconnected`: the watcher probes armed endpoints every
/// `LIVENESS_INTERVAL` and rings the doorbell once the lock says the peer is gone.
#[test]
fn an_armed_receiver_whose_doorbell_cannot_hang_up_is_rung_by_the_watchers_probe() {
    let name = unique("held-bell");
    let chan = Chan::create(Kind::Spsc, &name);
    let (mut rx, mut child) = receiver_with_sender(&chan, Kind::Spsc, &name, 0, 0, true);
    // Our own write end of the data doorbell (read-write, as a ringer opens it).
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&bell_paths(&name)[0])
        .expect("open the data doorbell");
    assert_eq!(rx.arm().unwrap(), Readiness::Armed);
    let epoll = Epoll::new(rx.fd());
    let killed = child.kill();
    assert!(
        epoll.wait(PROMPT_WAKE),
        "an armed receiver whose doorbell cannot hang up was never rung after the kill"
    );
    let latency = killed.elapsed();
    assert_eq!(rx.arm().unwrap(), Readiness::Ready);
    let mut buf = vec![0u8; rx.max_message_len()];
    assert!(
        matches!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected)),
        "after the watcher's ring"
    );
    eprintln!("held doorbell: readable {latency:?} after the kill (the watcher's 25 ms probe)");
    drop(held);
}

// ---------------------------------------------------------------------------
// Broadcast topics: a doorbell per subscriber slot
// ---------------------------------------------------------------------------

/// The data doorbell FIFO of subscriber slot `slot` of named topic `name`.
fn slot_bell_path(name: &str, slot: usize) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(format!("shmring-bell.{name}.subs.data.{slot}"))
}

/// Child: opens topic `NAME`, claims its publisher, reports CLAIMED, waits for
/// the parent's go (its standard input closed), publishes one message, reports
/// SENT, and waits to be killed.
#[test]
fn child_topic_publisher() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let mut publisher = claim("publisher", || topic.publisher());
    report("CLAIMED", std::process::id());
    wait_for_parent();
    let reached = publisher.send(b"tick").unwrap();
    report("SENT", reached);
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

/// Two subscribers armed with a publisher in another process: each descriptor
/// stays quiet while nothing is published and becomes readable on the one
/// publication (each has its own doorbell: neither takes the other's ring);
/// arming with a message waiting says `Ready`; SIGKILL of the publisher makes an
/// armed descriptor readable, and each subscriber drains what was published,
/// then gets `Disconnected`.
#[test]
fn armed_subscribers_are_rung_by_a_publication_and_by_the_publishers_death() {
    let name = unique("ready-topic");
    let topic = BroadcastBuilder::shm(&name)
        .subscriber_slots(4)
        .create()
        .unwrap();
    let mut a = topic.subscriber(Start::Newest).unwrap();
    let mut b = topic.subscriber(Start::Newest).unwrap();
    assert_eq!(*a.wakeups(), Wakeups::Doorbell);
    assert_eq!(*b.wakeups(), Wakeups::Doorbell);
    let mut publisher = Peer::spawn("child_topic_publisher", &[("NAME", &name)]);
    publisher.expect("CLAIMED");
    for rx in [&mut a, &mut b] {
        assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    }
    for rx in [&a, &b] {
        assert!(
            !readable_within(rx.readiness_fd(), QUIET),
            "slot {} readable with nothing published",
            rx.slot()
        );
    }
    publisher.release();
    assert!(
        readable_within(a.readiness_fd(), PROMPT_WAKE),
        "no ring after a publication"
    );
    // Arming with the message unread says so, and drains `a`'s doorbell only.
    assert_eq!(a.arm_for_message().unwrap(), Readiness::Ready);
    assert!(
        readable_within(b.readiness_fd(), PROMPT_WAKE),
        "the other subscriber's ring was taken"
    );
    assert_eq!(publisher.expect("SENT"), "2");
    let mut buf = [0u8; 64];
    assert_eq!(a.try_recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"tick");
    assert!(matches!(a.try_recv(&mut buf), Err(TryRecvError::Empty)));
    assert_eq!(a.arm_for_message().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(a.readiness_fd(), QUIET),
        "readable after draining and arming"
    );
    // `b` has not read the message: arming says so.
    assert_eq!(b.arm_for_message().unwrap(), Readiness::Ready);

    publisher.kill_now();
    // The kernel closes a dying process's descriptors one by one: the doorbell
    // can hang up while the publisher's lock is still held, and arming then says
    // `Armed` with the descriptor still readable (a hang-up stays). Within
    // `PROMPT_WAKE` it must say `Ready`.
    let start = Instant::now();
    loop {
        assert!(
            readable_within(a.readiness_fd(), PROMPT_WAKE),
            "no wake-up on the publisher's death"
        );
        match a.arm_for_message().unwrap() {
            Readiness::Ready => break,
            Readiness::Armed if start.elapsed() < PROMPT_WAKE => {}
            Readiness::Armed => panic!("still armed {PROMPT_WAKE:?} after the publisher's death"),
        }
    }
    assert!(matches!(
        a.try_recv(&mut buf),
        Err(TryRecvError::Disconnected)
    ));
    assert_eq!(b.try_recv(&mut buf).unwrap(), 4);
    let start = Instant::now();
    loop {
        match b.try_recv(&mut buf) {
            Err(TryRecvError::Disconnected) => break,
            // The lock is probed at most every millisecond.
            Err(TryRecvError::Empty) if start.elapsed() < PROMPT_WAKE => {
                thread::sleep(Duration::from_millis(1))
            }
            other => panic!("after draining: {other:?}"),
        }
    }
    let _ = publisher.wait();
}

/// A subscriber slot's doorbell FIFO is made with the topic and removed with it;
/// a file topic's lie beside its table file.
#[test]
fn a_topics_slot_doorbells_live_and_go_with_it() {
    let name = unique("topic-bells");
    let topic = BroadcastBuilder::shm(&name)
        .subscriber_slots(3)
        .create()
        .unwrap();
    for slot in 0..3 {
        assert!(slot_bell_path(&name, slot).exists(), "slot {slot}");
    }
    assert!(!slot_bell_path(&name, 3).exists());
    drop(topic);
    for slot in 0..3 {
        let path = slot_bell_path(&name, slot);
        assert!(!path.exists(), "{} was left behind", path.display());
    }
    // A file topic's, beside its table file.
    let dir = TempDir::new("topic-bells");
    let file = dir.path().join("topic");
    let topic = BroadcastBuilder::file(&file)
        .subscriber_slots(2)
        .create()
        .unwrap();
    let bell = |slot: usize| dir.path().join(format!("topic.subs.data.bell.{slot}"));
    assert!(bell(0).exists() && bell(1).exists());
    let mut rx = topic.subscriber(Start::Newest).unwrap();
    assert_eq!(*rx.wakeups(), Wakeups::Doorbell);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    drop(rx);
    drop(topic);
    // A file topic stays after its handles (no unlink on drop), and so do they.
    assert!(file.exists() && bell(0).exists());
}

/// A memfd topic's subscriber is polled, says so, and its armed descriptor
/// becomes readable by the watcher's tick with nothing published.
#[test]
fn a_memfd_topics_subscriber_is_polled() {
    let topic = BroadcastBuilder::memfd().create().unwrap();
    let _publisher = topic.publisher().unwrap();
    let mut rx = topic.subscriber(Start::Newest).unwrap();
    assert!(
        matches!(rx.wakeups(), Wakeups::Polled { .. }),
        "{:?}",
        rx.wakeups()
    );
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    assert!(readable_within(rx.readiness_fd(), PROMPT_WAKE), "no tick");
}

// ---------------------------------------------------------------------------
// Broadcast topics: the gated publisher's doorbell
// ---------------------------------------------------------------------------

/// Child: opens topic `NAME`, joins a subscriber at the oldest message, reports
/// JOINED (its slot), waits for the parent's go (its standard input closed),
/// reads every message there is, reports READ (how many), and waits to be
/// killed.
#[test]
fn child_topic_subscriber() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    report("JOINED", rx.slot());
    wait_for_parent();
    let mut buf = vec![0u8; rx.max_message_len()];
    let mut read = 0;
    while rx.try_recv(&mut buf).is_ok() {
        read += 1;
    }
    report("READ", read);
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

/// A small topic of `policy` at `name`, holding its subscribers back for
/// `cut_off` at most (gated).
fn small_topic(name: &str, policy: Policy, cut_off: Duration) -> shmring::broadcast::Topic {
    BroadcastBuilder::shm(name)
        .capacity(1024)
        .policy(policy)
        .subscriber_slots(4)
        .cut_off_after(cut_off)
        .create()
        .unwrap()
}

/// Sends 64-byte messages until the topic is full; returns how many went.
fn fill(publisher: &mut Publisher) -> usize {
    let mut sent = 0;
    while publisher.try_send(&[9u8; 64]).is_ok() {
        sent += 1;
        assert!(sent < 1000, "never full");
    }
    sent
}

/// Arms `publisher` after a wake-up that should let it go on: `Ready` within
/// `PROMPT_WAKE`. A dying process's descriptors close one by one: the ring (or
/// the hang-up) can come while its lock is still held, and arming then says
/// `Armed` again.
fn ready_after_wake(publisher: &mut Publisher, why: &str) {
    let start = Instant::now();
    loop {
        assert!(
            readable_within(publisher.readiness_fd(), PROMPT_WAKE),
            "no wake-up {why}"
        );
        match publisher.arm_for_space(64).unwrap() {
            Readiness::Ready => return,
            Readiness::Armed if start.elapsed() < PROMPT_WAKE => {}
            Readiness::Armed => panic!("still armed {PROMPT_WAKE:?} {why}"),
        }
    }
}

/// A gated publisher held back by a subscriber in another process: armed, its
/// descriptor stays quiet while that subscriber does not read, and becomes
/// readable when it reads (arming then says `Ready`). Held back again, the
/// subscriber's SIGKILL makes it readable, with no hang-up to help (another
/// subscriber, in this process, keeps the doorbell's ringer end open): the
/// watcher's probe finds the holder dead; arming frees its slot and says
/// `Ready`, and a send goes.
#[test]
fn an_armed_gated_publisher_is_rung_when_its_subscriber_reads_and_when_it_dies() {
    let name = unique("ready-pub");
    let topic = small_topic(&name, Policy::Gated, Duration::from_secs(60));
    let mut publisher = topic.publisher().unwrap();
    assert_eq!(*publisher.wakeups(), Wakeups::Doorbell);
    let mut here = topic.subscriber(Start::Oldest).unwrap();
    let mut child = Peer::spawn("child_topic_subscriber", &[("NAME", &name)]);
    let slot: usize = child.expect("JOINED").parse().unwrap();
    let sent = fill(&mut publisher);
    let mut buf = [0u8; 64];
    let drain = |rx: &mut shmring::broadcast::Subscriber, buf: &mut [u8]| {
        while rx.try_recv(buf).is_ok() {}
    };
    drain(&mut here, &mut buf);
    assert!(matches!(
        publisher.try_send(&[9u8; 64]),
        Err(TrySendError::Full { .. })
    ));
    assert_eq!(publisher.arm_for_space(64).unwrap(), Readiness::Armed);
    assert!(
        !readable_within(publisher.readiness_fd(), QUIET),
        "readable while the subscriber does not read"
    );
    child.release();
    assert!(
        readable_within(publisher.readiness_fd(), PROMPT_WAKE),
        "no ring when the subscriber read"
    );
    assert_eq!(child.expect("READ"), sent.to_string());
    assert_eq!(publisher.arm_for_space(64).unwrap(), Readiness::Ready);

    // Held back again by the child, which reads no more.
    fill(&mut publisher);
    drain(&mut here, &mut buf);
    assert_eq!(publisher.arm_for_space(64).unwrap(), Readiness::Armed);
    assert!(
        !readable_within(publisher.readiness_fd(), QUIET),
        "readable while the subscriber lives and does not read"
    );
    let killed = child.kill_now();
    ready_after_wake(&mut publisher, "after the holding subscriber's SIGKILL");
    eprintln!(
        "armed gated publisher: Ready {:?} after its subscriber's SIGKILL (slot {slot})",
        killed.elapsed()
    );
    assert_eq!(
        publisher.try_send(&[9u8; 64]).unwrap(),
        1,
        "only `here` is left"
    );
    let _ = child.wait();
}

/// A gated publisher armed while a live subscriber (in this process) holds it
/// back without moving: readable once the cut-off bound has passed, not before;
/// arming then cuts the subscriber off and says `Ready`. A strict publisher
/// held back as long is never cut off: quiet until the subscriber reads.
#[test]
fn an_armed_gated_publisher_is_rung_when_the_cut_off_comes_due_and_a_strict_one_is_not() {
    const BOUND: Duration = Duration::from_millis(300);
    for policy in [Policy::Gated, Policy::Strict] {
        let name = unique("ready-cut");
        let topic = small_topic(&name, policy, BOUND);
        let mut publisher = topic.publisher().unwrap();
        let mut rx = topic.subscriber(Start::Oldest).unwrap();
        fill(&mut publisher);
        let held_since = Instant::now();
        assert_eq!(publisher.arm_for_space(64).unwrap(), Readiness::Armed);
        assert!(
            !readable_within(publisher.readiness_fd(), QUIET),
            "{policy:?}: readable long before the bound"
        );
        match policy {
            Policy::Gated => {
                ready_after_wake(&mut publisher, "when the cut-off came due");
                assert!(
                    held_since.elapsed() >= BOUND,
                    "Ready {:?} into a hold of {BOUND:?}",
                    held_since.elapsed()
                );
                publisher.try_send(&[9u8; 64]).unwrap();
                let mut buf = [0u8; 64];
                assert!(
                    matches!(
                        rx.try_recv(&mut buf),
                        Err(shmring::TryRecvError::Lagged { .. })
                    ),
                    "the cut-off subscriber was lapped"
                );
            }
            _ => {
                assert!(
                    !readable_within(publisher.readiness_fd(), 3 * BOUND),
                    "a strict publisher was rung with its subscriber still holding it back"
                );
                assert_eq!(publisher.arm_for_space(64).unwrap(), Readiness::Armed);
                let mut buf = [0u8; 64];
                while rx.try_recv(&mut buf).is_ok() {}
                ready_after_wake(&mut publisher, "when the strict subscriber read");
            }
        }
    }
}

/// A memfd topic's publisher is polled and says so; a lossy one is always ready.
#[test]
fn a_memfd_topics_publisher_is_polled_and_a_lossy_one_always_ready() {
    let topic = BroadcastBuilder::memfd()
        .capacity(1024)
        .policy(Policy::Gated)
        .create()
        .unwrap();
    let mut publisher = topic.publisher().unwrap();
    assert!(
        matches!(publisher.wakeups(), Wakeups::Polled { .. }),
        "{:?}",
        publisher.wakeups()
    );
    let _rx = topic.subscriber(Start::Oldest).unwrap();
    fill(&mut publisher);
    assert_eq!(publisher.arm_for_space(64).unwrap(), Readiness::Armed);
    assert!(
        readable_within(publisher.readiness_fd(), PROMPT_WAKE),
        "no tick"
    );

    let name = unique("ready-lossy");
    let topic = small_topic(&name, Policy::Lossy, Duration::from_secs(1));
    let mut publisher = topic.publisher().unwrap();
    let _rx = topic.subscriber(Start::Oldest).unwrap();
    for _ in 0..100 {
        publisher.try_send(&[9u8; 64]).unwrap();
    }
    assert_eq!(publisher.arm_for_space(64).unwrap(), Readiness::Ready);
}

/// Child: makes a channel of each kind with both endpoints, arms the receivers
/// (the process's watcher starts), forks; the forked child drops everything it
/// inherited and exits normally; reports `STATUS <its exit code>`.
#[test]
fn child_forks_then_drops_its_endpoints() {
    if !child_start() {
        return;
    }
    let mut held = Vec::new();
    for kind in KINDS {
        let chan = Chan::create(kind, &unique(&format!("fork-drop-{}", kind.name())));
        let mut rx = chan.receiver();
        rx.arm().expect("arm");
        let tx = chan.sender();
        held.push((chan, rx, tx));
    }
    let connection_name = unique("fork-drop-conn");
    let listener = shmring::Listener::bind(&connection_name).unwrap();
    let connecting = thread::spawn(move || shmring::connect(&connection_name).unwrap());
    let server = listener.accept().unwrap();
    let client = connecting.join().unwrap();
    let pid = fork();
    if pid == 0 {
        drop(held);
        drop((client, server, listener));
        std::process::exit(0);
    }
    report("STATUS", wait_forked(pid));
}

/// A forked child may drop what it inherited (endpoints whose watcher threads,
/// the process's and a connection's, did not survive the fork): no panic, no
/// hang, exit code 0.
#[test]
fn a_forked_child_drops_inherited_endpoints_cleanly() {
    let mut child = Peer::spawn("child_forks_then_drops_its_endpoints", &[]);
    assert_eq!(child.expect("STATUS"), "0");
    child.wait_ok();
}
