//! Kill → `Disconnected`: how long a receiver blocked on a channel takes to learn
//! that its peer process was killed.
//!
//! The comparison program (the parent) starts a **measuring** child per row and
//! round, with [`shmring::NO_WATCHER_VAR`] set in its environment ("before": the
//! parked call's own 25 ms liveness probe) or unset ("after": the process's watcher
//! thread wakes it when the peer's doorbell hangs up). The measuring child runs
//! the trials one after another, each with a fresh channel and a fresh **peer**
//! child (this program again, small: it opens the channel, sends one message
//! saying it is ready, and sleeps):
//!
//! 1. it receives the peer's message, then blocks: in `recv` with
//!    [`WaitStrategy::Park`] (the futex), or armed and in `epoll_wait` on the
//!    receiver's readiness descriptor;
//! 2. a killer thread waits until the blocked thread sleeps (its state in
//!    `/proc/self/task/<tid>/stat` is `S`) and 2 ms more, reads the peer's RSS,
//!    reads the clock and sends SIGKILL;
//! 3. the blocked call returns `Disconnected` (any other outcome fails the row);
//!    the latency is from the clock read before the kill to the return.
//!
//! The connection rows (a [`Listener`] and a peer that connects, upgraded to
//! shared memory) have their own death source, the connection's socket watcher;
//! the one parked on the futex with the watcher on is the reference the others
//! are held to. Nobody is pinned.

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmring::connection::{ConnectOptions, Listener, TransportPolicy};
use shmring::{
    ChannelBuilder, MpmcChannelBuilder, NO_WATCHER_VAR, Readiness, SegmentBuilder as _,
    TryRecvError, WaitStrategy,
};

use super::{CHILD_VAR, COUNT_VAR, NAME_VAR, PATIENCE, Result, env_number, env_string, unique_tag};

/// The roles of this module's children start with it.
pub const ROLE_PREFIX: &str = "kill-";

/// The kind of endpoint the measuring side blocks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SPSC channel (named: its doorbells are FIFOs beside it).
    Spsc,
    /// An MPMC channel (named), the peer its only sender.
    Mpmc,
    /// A connection upgraded to shared memory.
    Connection,
}

/// How the measuring side blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `recv` with [`WaitStrategy::Park`]: asleep on the futex.
    Futex,
    /// Armed, asleep in `epoll_wait` on the readiness descriptor.
    Epoll,
}

/// One row of the kill table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// What the measuring side blocks on.
    pub kind: Kind,
    /// How it blocks.
    pub wait: Wait,
    /// Whether the measuring process runs the watcher thread ("after") or not
    /// ([`NO_WATCHER_VAR`]=1, "before").
    pub watcher: bool,
}

impl Row {
    /// Every row, in report order: each kind and wait before (no watcher) and
    /// after.
    pub const ALL: [Self; 12] = {
        const fn row(kind: Kind, wait: Wait, watcher: bool) -> Row {
            Row {
                kind,
                wait,
                watcher,
            }
        }
        [
            row(Kind::Spsc, Wait::Futex, false),
            row(Kind::Spsc, Wait::Futex, true),
            row(Kind::Spsc, Wait::Epoll, false),
            row(Kind::Spsc, Wait::Epoll, true),
            row(Kind::Mpmc, Wait::Futex, false),
            row(Kind::Mpmc, Wait::Futex, true),
            row(Kind::Mpmc, Wait::Epoll, false),
            row(Kind::Mpmc, Wait::Epoll, true),
            row(Kind::Connection, Wait::Futex, false),
            row(Kind::Connection, Wait::Futex, true),
            row(Kind::Connection, Wait::Epoll, false),
            row(Kind::Connection, Wait::Epoll, true),
        ]
    };

    /// Short name: the child's role and the JSON.
    pub fn key(self) -> String {
        format!(
            "{}-{}-{}",
            match self.kind {
                Kind::Spsc => "spsc",
                Kind::Mpmc => "mpmc",
                Kind::Connection => "connection",
            },
            match self.wait {
                Wait::Futex => "futex",
                Wait::Epoll => "epoll",
            },
            if self.watcher {
                "watcher"
            } else {
                "no-watcher"
            }
        )
    }

    /// Name in reports.
    pub fn name(self) -> String {
        format!(
            "{}, {}",
            match self.kind {
                Kind::Spsc => "SPSC",
                Kind::Mpmc => "MPMC",
                Kind::Connection => "connection (shm)",
            },
            match self.wait {
                Wait::Futex => "recv parked on the futex",
                Wait::Epoll => "armed in epoll_wait",
            }
        )
    }

    fn by_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == key)
    }
}

/// The trials of one row in one measuring process.
#[derive(Debug, Default)]
pub struct KillRun {
    /// Kill → `Disconnected`, nanoseconds, one per trial.
    pub latencies_ns: Vec<u64>,
    /// The peer's resident set just before each kill, KiB.
    pub peer_rss_kib: Vec<u64>,
}

/// Runs `trials` trials of `row` in a fresh measuring child.
///
/// # Errors
/// If the child cannot be spawned, fails, or reports something malformed.
pub fn trials(row: Row, trials: u64) -> Result<KillRun> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(CHILD_VAR, format!("{ROLE_PREFIX}measure:{}", row.key()))
        .env(COUNT_VAR, trials.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if row.watcher {
        command.env_remove(NO_WATCHER_VAR);
    } else {
        command.env(NO_WATCHER_VAR, "1");
    }
    let mut child = command.spawn()?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the measuring child failed: {status}").into());
    }
    let mut run = KillRun::default();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        let (Some("trial"), Some(ns), Some(rss), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!("malformed line from the measuring child: {line:?}").into());
        };
        run.latencies_ns.push(ns.parse()?);
        run.peer_rss_kib.push(rss.parse()?);
    }
    if run.latencies_ns.len() as u64 != trials {
        return Err(format!(
            "the measuring child reported {} trials of {trials}",
            run.latencies_ns.len()
        )
        .into());
    }
    Ok(run)
}

// ---------------------------------------------------------------------------
// The children

/// Serves a role of this module: `kill-measure:<row>` or `kill-peer:<kind>`.
pub(super) fn child_main(role: &str) -> Result<()> {
    let rest = role.strip_prefix(ROLE_PREFIX).unwrap_or(role);
    match rest.split_once(':') {
        Some(("measure", key)) => {
            let row = Row::by_key(key).ok_or_else(|| format!("unknown kill row {key:?}"))?;
            let count: u64 = env_number(COUNT_VAR)?;
            for _ in 0..count {
                let (latency, rss) = trial(row)?;
                println!("trial {} {rss}", latency.as_nanos());
            }
            Ok(())
        }
        Some(("peer", kind)) => peer(kind),
        _ => Err(format!("malformed role {role:?}").into()),
    }
}

/// The message the peer sends once it holds its end.
const READY: &[u8] = b"ready";

/// The peer: opens its end, says ready, sleeps until killed (or until its parent
/// has gone, so that none is left behind).
fn peer(kind: &str) -> Result<()> {
    let name = env_string(NAME_VAR)?;
    // Held until the process ends: the endpoint whose death the parent sees.
    let _end: Box<dyn std::any::Any> = match kind {
        "spsc" => {
            let mut tx = ChannelBuilder::shm(&name).open()?.sender()?;
            tx.send(READY)?;
            Box::new(tx)
        }
        "mpmc" => {
            let mut tx = MpmcChannelBuilder::shm(&name).open()?.sender()?;
            tx.send(READY)?;
            Box::new(tx)
        }
        "connection" => {
            let mut connection = ConnectOptions::new()
                .directory(PathBuf::from(&name))
                .transport(TransportPolicy::SharedMemoryOnly)
                .timeout(PATIENCE)
                .connect(CONNECTION_NAME)?;
            connection.send(READY)?;
            Box::new(connection)
        }
        other => return Err(format!("unknown peer kind {other:?}").into()),
    };
    // SAFETY: getppid takes nothing and cannot fail.
    let parent = unsafe { libc::getppid() };
    // SAFETY: as above.
    while unsafe { libc::getppid() } == parent {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The listener's name in its folder (connection rows).
const CONNECTION_NAME: &str = "kill";

/// A peer child, killed and reaped if dropped unreaped (an error path).
struct Peer(Child);

impl Peer {
    fn spawn(kind: &str, name: &str) -> Result<Self> {
        let child = Command::new(std::env::current_exe()?)
            .env(CHILD_VAR, format!("{ROLE_PREFIX}peer:{kind}"))
            .env(NAME_VAR, name)
            .env_remove(COUNT_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Self(child))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One trial of `row`: (kill → `Disconnected`, the peer's RSS in KiB).
fn trial(row: Row) -> Result<(Duration, u64)> {
    let name = format!("shmring-bench-kill-{}", unique_tag());
    let mut buf = [0u8; 64];
    let ready = |n: usize, buf: &[u8]| -> Result<()> {
        if &buf[..n] != READY {
            return Err("the peer's first message is not its ready".into());
        }
        Ok(())
    };
    match row.kind {
        Kind::Spsc => {
            let channel = ChannelBuilder::shm(&name)
                .capacity(4096)
                .wait_strategy(WaitStrategy::Park)
                .create()?;
            let mut rx = channel.receiver()?;
            let peer = Peer::spawn("spsc", &name)?;
            ready(rx.recv_timeout(&mut buf, PATIENCE)?, &buf)?;
            match row.wait {
                Wait::Futex => kill_while(peer, || parked(rx.recv_timeout(&mut buf, PATIENCE))),
                Wait::Epoll => kill_while(peer, || armed(&mut rx, &mut buf)),
            }
        }
        Kind::Mpmc => {
            let channel = MpmcChannelBuilder::shm(&name)
                .slots(16)
                .slot_size(64)
                .endpoints(4)
                .wait_strategy(WaitStrategy::Park)
                .create()?;
            let mut rx = channel.receiver()?;
            let peer = Peer::spawn("mpmc", &name)?;
            ready(rx.recv_timeout(&mut buf, PATIENCE)?, &buf)?;
            match row.wait {
                Wait::Futex => kill_while(peer, || parked(rx.recv_timeout(&mut buf, PATIENCE))),
                Wait::Epoll => kill_while(peer, || armed(&mut rx, &mut buf)),
            }
        }
        Kind::Connection => {
            let dir = std::env::temp_dir().join(&name);
            let listener = Listener::builder(CONNECTION_NAME)
                .directory(&dir)
                .transport(TransportPolicy::SharedMemoryOnly)
                .wait_strategy(WaitStrategy::Park)
                .bind()?;
            let peer = Peer::spawn("connection", dir.to_str().ok_or("a non-UTF-8 temp dir")?)?;
            let result = (|| {
                let mut connection = listener.accept_timeout(PATIENCE)?;
                ready(connection.recv_timeout(&mut buf, PATIENCE)?, &buf)?;
                match row.wait {
                    Wait::Futex => {
                        kill_while(peer, || parked(connection.recv_timeout(&mut buf, PATIENCE)))
                    }
                    Wait::Epoll => kill_while(peer, || armed(&mut connection, &mut buf)),
                }
            })();
            drop(listener);
            let _ = std::fs::remove_dir(&dir);
            result
        }
    }
}

/// What a parked receive must end in: `Disconnected`.
fn parked(result: std::result::Result<usize, shmring::RecvTimeoutError>) -> Result<()> {
    match result {
        Err(shmring::RecvTimeoutError::Disconnected) => Ok(()),
        Ok(n) => Err(format!("a message of {n} bytes instead of Disconnected").into()),
        Err(e) => Err(format!("{e} instead of Disconnected").into()),
    }
}

/// A receiver with a readiness descriptor.
trait Armable {
    fn fd(&self) -> i32;
    fn arm(&mut self) -> shmring::Result<Readiness>;
    fn try_recv(&mut self, buf: &mut [u8]) -> std::result::Result<usize, TryRecvError>;
}

impl Armable for shmring::Receiver {
    fn fd(&self) -> i32 {
        self.readiness_fd().as_raw_fd()
    }
    fn arm(&mut self) -> shmring::Result<Readiness> {
        self.arm_for_message()
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> std::result::Result<usize, TryRecvError> {
        shmring::Receiver::try_recv(self, buf)
    }
}

impl Armable for shmring::MpmcReceiver {
    fn fd(&self) -> i32 {
        self.readiness_fd().as_raw_fd()
    }
    fn arm(&mut self) -> shmring::Result<Readiness> {
        self.arm_for_message()
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> std::result::Result<usize, TryRecvError> {
        shmring::MpmcReceiver::try_recv(self, buf)
    }
}

impl Armable for shmring::Connection {
    fn fd(&self) -> i32 {
        self.readiness_fd().as_raw_fd()
    }
    fn arm(&mut self) -> shmring::Result<Readiness> {
        self.arm_for_message()
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> std::result::Result<usize, TryRecvError> {
        shmring::Connection::try_recv(self, buf)
    }
}

/// An event loop of one descriptor until `Disconnected`: receive until empty,
/// arm, and if armed wait in `epoll_wait`.
fn armed<R: Armable>(rx: &mut R, buf: &mut [u8]) -> Result<()> {
    // SAFETY: epoll_create1 takes no pointer; it returns a fresh descriptor or -1.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll == -1 {
        return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()).into());
    }
    // SAFETY: `epoll` is a fresh descriptor that nothing else owns.
    let epoll = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(epoll) };
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    // SAFETY: both descriptors are open (the receiver's lives as long as `rx`);
    // `event` is a live epoll_event.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, rx.fd(), &mut event) } == -1
    {
        return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()).into());
    }
    let since = Instant::now();
    loop {
        match rx.try_recv(buf) {
            Ok(n) => return Err(format!("a message of {n} bytes instead of Disconnected").into()),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if rx.arm()? == Readiness::Armed {
            let mut ready = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: `ready` is one live epoll_event, and the count passed is 1.
            let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), &mut ready, 1, 100) };
            if n == -1 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("epoll_wait: {e}").into());
                }
            }
        }
        if since.elapsed() > PATIENCE {
            return Err(format!("no Disconnected in {PATIENCE:?}").into());
        }
    }
}

/// Runs `block` (which must return once the peer is gone) while a killer thread
/// SIGKILLs `peer` as soon as this thread sleeps; returns the time from just
/// before the kill to `block`'s return, and the peer's RSS (KiB) before it.
fn kill_while(peer: Peer, block: impl FnOnce() -> Result<()>) -> Result<(Duration, u64)> {
    // SAFETY: gettid takes nothing and cannot fail.
    let tid = unsafe { libc::gettid() };
    let pid = i32::try_from(peer.0.id())?;
    let killer = std::thread::spawn(move || -> std::result::Result<(Instant, u64), String> {
        wait_until_asleep(tid)?;
        std::thread::sleep(Duration::from_millis(2));
        wait_until_asleep(tid)?;
        let rss = rss_kib(pid).unwrap_or(0);
        let t0 = Instant::now();
        // SAFETY: kill takes no pointer; `pid` is our unreaped child (reaped only
        // after this thread is joined), so the number names no other process.
        if unsafe { libc::kill(pid, libc::SIGKILL) } == -1 {
            return Err(format!("kill: {}", std::io::Error::last_os_error()));
        }
        Ok((t0, rss))
    });
    let blocked = block();
    let t1 = Instant::now();
    let killed = killer.join().map_err(|_| "the killer thread panicked")?;
    drop(peer);
    blocked?;
    let (t0, rss) = killed?;
    if t1 < t0 {
        return Err("the receiver returned before the kill".into());
    }
    Ok((t1 - t0, rss))
}

/// Waits until thread `tid` of this process is asleep (`S` in its stat).
fn wait_until_asleep(tid: i32) -> std::result::Result<(), String> {
    let path = format!("/proc/self/task/{tid}/stat");
    let since = Instant::now();
    loop {
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // The state follows the command name, which is in parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if state == Some('S') {
            return Ok(());
        }
        if since.elapsed() > PATIENCE {
            return Err(format!(
                "the receiving thread did not sleep in {PATIENCE:?}"
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// VmRSS of process `pid`, KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
