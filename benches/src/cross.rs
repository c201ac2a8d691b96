//! The cross-process comparison's runners: two real processes, the program and a
//! copy of itself.
//!
//! The parent (the comparison program) re-executes its own binary
//! ([`std::env::current_exe`]) with [`CHILD_VAR`] naming the child's role; the
//! child's `main` calls [`run_child_if_requested`] first, which runs the role and
//! exits. Everything the child needs is inherited: descriptors (a shared
//! block in a memfd, the shmring channels, pipes, a socket) whose numbers are
//! in the environment, the number of round trips or messages, and the CPU to pin
//! itself to. One child serves one method for one run, then exits; the parent
//! times nothing until the child has answered (spawning is never timed).
//!
//! Every run checks what it received: a round trip's echo must equal the ping, the
//! child checks that the pings arrive in sequence, and a throughput receiver
//! checks the order of every message. A failure is an error, not a figure.

use std::fs::File;
use std::hint::spin_loop;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use shmring::{ChannelBuilder, WaitStrategy};

use crate::shared_bare::{self, SharedRing};

/// The environment variable that makes the program a child of the comparison: its
/// value is the key of the method to serve.
pub const CHILD_VAR: &str = "SHMRING_BENCH_CHILD";
const CPU_VAR: &str = "SHMRING_BENCH_CPU";
const COUNT_VAR: &str = "SHMRING_BENCH_COUNT";
const BLOCK_VAR: &str = "SHMRING_BENCH_BLOCK";
const FD_A_VAR: &str = "SHMRING_BENCH_FD_A";
const FD_B_VAR: &str = "SHMRING_BENCH_FD_B";

/// A side that has waited this long for its peer gives up (the peer died or hangs).
const PATIENCE: Duration = Duration::from_secs(10);

/// Ring size of the round-trip channels (one message in flight at a time).
const ROUND_TRIP_CAPACITY: usize = 4096;

/// An error of a cross-process run.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// A result of a cross-process run.
pub type Result<T> = std::result::Result<T, Error>;

/// A round-trip method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundTrip {
    /// Two shmring channels, [`WaitStrategy::BusySpin`] on both sides.
    ShmringBusySpin,
    /// Two shmring channels, the default [`WaitStrategy::SpinThenPark`].
    ShmringSpinThenPark,
    /// Two shmring channels, [`WaitStrategy::Park`].
    ShmringPark,
    /// The physical limit: a counter on one shared cache line each way.
    CacheLine,
    /// Raw `FUTEX_WAIT`/`FUTEX_WAKE` on two shared words: a parked wake-up.
    Futex,
    /// Two anonymous pipes.
    Pipe,
    /// A Unix stream socket pair.
    UnixSocket,
}

impl RoundTrip {
    /// Every method, in report order.
    pub const ALL: [Self; 7] = [
        Self::ShmringBusySpin,
        Self::ShmringSpinThenPark,
        Self::ShmringPark,
        Self::CacheLine,
        Self::Futex,
        Self::Pipe,
        Self::UnixSocket,
    ];

    /// Short name, for `--only` and the child's role.
    pub fn key(self) -> &'static str {
        match self {
            Self::ShmringBusySpin => "busy-spin",
            Self::ShmringSpinThenPark => "spin-then-park",
            Self::ShmringPark => "park",
            Self::CacheLine => "cache-line",
            Self::Futex => "futex",
            Self::Pipe => "pipe",
            Self::UnixSocket => "unix-socket",
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ShmringBusySpin => "shmring busy-spin",
            Self::ShmringSpinThenPark => "shmring spin-then-park",
            Self::ShmringPark => "shmring park",
            Self::CacheLine => "cache-line limit",
            Self::Futex => "futex ping-pong",
            Self::Pipe => "pipe",
            Self::UnixSocket => "unix socket",
        }
    }

    fn wait_strategy(self) -> Option<WaitStrategy> {
        match self {
            Self::ShmringBusySpin => Some(WaitStrategy::BusySpin),
            Self::ShmringSpinThenPark => Some(WaitStrategy::default()),
            Self::ShmringPark => Some(WaitStrategy::Park),
            _ => None,
        }
    }
}

/// A one-way throughput method: the child sends, the parent receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// A shmring channel, [`WaitStrategy::BusySpin`], `try_send` and `try_recv` in
    /// loops, a ring of [`shared_bare::CAPACITY`] 8-byte messages.
    Shmring,
    /// [`shared_bare`]: the bare ring of [`shared_bare::CAPACITY`] `u64` slots.
    Bare,
}

impl Stream {
    /// Both methods, in report order.
    pub const ALL: [Self; 2] = [Self::Shmring, Self::Bare];

    /// Short name, for `--only` and the child's role.
    pub fn key(self) -> &'static str {
        match self {
            Self::Shmring => "tput-shmring",
            Self::Bare => "tput-bare",
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shmring => "shmring busy-spin",
            Self::Bare => "bare SPSC ring of u64",
        }
    }
}

// ---------------------------------------------------------------------------
// Placement

/// The CPUs this process may run on, in order.
///
/// # Errors
/// If `sched_getaffinity` fails.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, within the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`).
///
/// # Errors
/// If the kernel refuses (the CPU is not allowed or does not exist).
pub fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live cpu_set_t of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Shared memory and inheritance

/// What the two processes of one run share besides the method's own channel: a
/// page-aligned block in a memfd. All-zero is the initial state.
#[repr(C)]
struct Block {
    /// Set by the child once it is ready: [`PINNED`] or [`NOT_PINNED`].
    child_status: CachePadded<AtomicU32>,
    /// Set by the parent to start a throughput run.
    go: CachePadded<AtomicU32>,
    /// Cache-line limit: the parent's ping counter.
    line_a: CachePadded<AtomicU64>,
    /// Cache-line limit: the child's echo.
    line_b: CachePadded<AtomicU64>,
    /// Futex ping-pong: the parent's ping word.
    futex_a: CachePadded<AtomicU32>,
    /// Futex ping-pong: the child's echo word.
    futex_b: CachePadded<AtomicU32>,
    /// The bare ring of the throughput comparison.
    ring: SharedRing,
}

const PINNED: u32 = 1;
const NOT_PINNED: u32 = 2;

/// A block in a shared mapping of a memfd.
struct SharedBlock {
    file: File,
    ptr: NonNull<Block>,
}

impl SharedBlock {
    /// A fresh, zeroed block.
    fn create() -> io::Result<Self> {
        // SAFETY: a NUL-terminated name and valid flags; the call creates a new
        // descriptor and touches no memory of ours.
        let fd = unsafe { libc::memfd_create(c"shmring-bench".as_ptr(), libc::MFD_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // ftruncate: the new bytes read as zeros, the block's initial state.
        file.set_len(size_of::<Block>() as u64)?;
        Self::map(file)
    }

    /// The block behind an inherited descriptor.
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let file = File::from(fd);
        if file.metadata()?.len() < size_of::<Block>() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared block too small",
            ));
        }
        Self::map(file)
    }

    fn map(file: File) -> io::Result<Self> {
        // SAFETY: a new shared mapping of the first size_of::<Block>() bytes of a
        // file at least that long; it overlaps no Rust object.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size_of::<Block>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<Block>()).expect("mmap returned null");
        Ok(Self { file, ptr })
    }

    fn block(&self) -> &Block {
        // SAFETY: the mapping is page-aligned (more than Block's 128), spans
        // size_of::<Block>() bytes and lives as long as `self`; Block is made of
        // atomics only, for which any bytes, all-zero included, are valid values,
        // and the other process touches them through atomics only.
        unsafe { self.ptr.as_ref() }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for SharedBlock {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, with its length; no reference from
        // `block` outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), size_of::<Block>()) };
    }
}

/// Lets the child of `command` inherit `fd`: close-on-exec is cleared in the child
/// only, and the number goes in the environment variable `var`.
fn inherit(command: &mut Command, fd: BorrowedFd<'_>, var: &str) {
    let fd = fd.as_raw_fd();
    command.env(var, fd.to_string());
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // fcntl, which is async-signal-safe; it allocates nothing. The descriptor is
    // open in the parent while it spawns (the caller borrows it across `spawn`).
    unsafe {
        command.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Takes the descriptor whose number the parent put in `var`.
fn inherited(var: &str) -> Result<OwnedFd> {
    let fd: i32 = env_number(var)?;
    // SAFETY: F_GETFD only asks whether `fd` is open.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(format!("${var}: no inherited descriptor {fd}").into());
    }
    // SAFETY: the descriptor is open (checked) and was handed to this process by
    // the parent for this purpose only: nothing else in the child owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn env_number<T: std::str::FromStr>(var: &str) -> Result<T> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("${var} is unset or not a number").into())
}

/// A pipe, both ends close-on-exec: (read end, write end).
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(r), File::from(w)))
}

/// The command that runs this program as the child serving `key`.
fn child_command(
    key: &str,
    count: u64,
    cpu: Option<usize>,
    block: &SharedBlock,
) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(CHILD_VAR, key)
        .env(COUNT_VAR, count.to_string())
        .env_remove(CPU_VAR)
        .stdin(Stdio::null());
    if let Some(cpu) = cpu {
        command.env(CPU_VAR, cpu.to_string());
    }
    inherit(&mut command, block.fd(), BLOCK_VAR);
    Ok(command)
}

/// Waits for `child` to exit and fails unless it succeeded.
fn reap(mut child: Child) -> Result<()> {
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the child failed: {status}").into());
    }
    Ok(())
}

/// Whether the child said it pinned itself (after it answered once).
fn child_pinned(block: &Block) -> bool {
    block.child_status.load(Ordering::Acquire) == PINNED
}

// ---------------------------------------------------------------------------
// Waiting

/// A spin loop's guard against a peer that died or hangs: reads the clock only
/// every 65536 turns, and panics after [`PATIENCE`] without progress.
struct Patience {
    what: &'static str,
    turns: u32,
    since: Option<Instant>,
}

impl Patience {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            turns: 0,
            since: None,
        }
    }

    #[inline]
    fn tick(&mut self) {
        self.turns = self.turns.wrapping_add(1);
        if self.turns % 65536 == 0 {
            self.check();
        }
    }

    #[cold]
    fn check(&mut self) {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        assert!(
            now.duration_since(since) < PATIENCE,
            "no progress in {PATIENCE:?} waiting for {}",
            self.what
        );
    }

    /// Progress: the next wait starts afresh.
    #[inline]
    fn reset(&mut self) {
        self.turns = 0;
        self.since = None;
    }
}

/// Sleeps on the shared futex `word` while it holds `expected` (at most 100 ms).
fn futex_wait(word: &AtomicU32, expected: u32) {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic in a shared mapping;
    // FUTEX_WAIT (not private: the kernel keys the wait on the physical page, so
    // the other process's wake finds it) only reads it; `timeout` lives across the
    // call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &timeout as *const libc::timespec,
        );
    }
}

/// Wakes every waiter on the shared futex `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE does not touch the word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Waits on the futex `word` until it differs from `last`; returns the new value.
fn futex_wait_change(word: &AtomicU32, last: u32, patience: &mut Patience) -> u32 {
    loop {
        // Acquire: pairs with the peer's Release store.
        let now = word.load(Ordering::Acquire);
        if now != last {
            patience.reset();
            return now;
        }
        futex_wait(word, now);
        // A wait ends in at most 100 ms: count each as many spin turns, so that
        // PATIENCE is reached in roughly PATIENCE of sleeping.
        for _ in 0..4096 {
            patience.tick();
        }
    }
}

/// Spins until `word` differs from `last`; returns the new value.
#[inline]
fn spin_change(word: &AtomicU64, last: u64, patience: &mut Patience) -> u64 {
    loop {
        // Acquire: pairs with the peer's Release store.
        let now = word.load(Ordering::Acquire);
        if now != last {
            patience.reset();
            return now;
        }
        patience.tick();
        spin_loop();
    }
}

// ---------------------------------------------------------------------------
// Round trips

/// How many round trips a run makes, and how.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Untimed round trips first.
    pub warmup: u64,
    /// Round trips timed one by one into the histogram.
    pub samples: u64,
    /// Round trips timed as one batch (no clock read in between), after the
    /// samples: their mean is free of the timer's cost.
    pub batch: u64,
}

/// One run of a round-trip method.
#[derive(Debug)]
pub struct RoundTripRun {
    /// Every timed round trip, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Mean of the batch, in nanoseconds.
    pub batch_mean_ns: f64,
    /// Whether the child pinned itself to its CPU.
    pub child_pinned: bool,
}

/// The parent's side of a round-trip method.
trait Pinger {
    /// Sends `seq` and returns the child's echo.
    fn round_trip(&mut self, seq: u64) -> u64;
}

/// The child's side of a round-trip method.
trait Echoer {
    /// Waits for the next ping, checks that it is `expected`, and echoes it.
    fn echo(&mut self, expected: u64);
}

/// Measures `method` against a fresh child pinned to `child_cpu`: `plan.warmup`
/// untimed round trips (at least one: the first waits for the child to start),
/// `plan.samples` timed one by one, `plan.batch` timed together.
///
/// The child is this program run again: its `main` must call
/// [`run_child_if_requested`] before anything else.
///
/// # Errors
/// If the child cannot be set up or spawned, or fails. A wrong echo panics.
pub fn round_trips(
    method: RoundTrip,
    plan: Plan,
    child_cpu: Option<usize>,
) -> Result<RoundTripRun> {
    // The first round trip waits for the child to start: always one untimed.
    let plan = Plan {
        warmup: plan.warmup.max(1),
        ..plan
    };
    let block = SharedBlock::create()?;
    let total = plan.warmup + plan.samples + plan.batch;
    let mut command = child_command(method.key(), total, child_cpu, &block)?;
    match method {
        RoundTrip::ShmringBusySpin | RoundTrip::ShmringSpinThenPark | RoundTrip::ShmringPark => {
            let wait = method.wait_strategy().expect("a shmring method");
            let builder = ChannelBuilder::memfd()
                .capacity(ROUND_TRIP_CAPACITY)
                .wait_strategy(wait);
            let (ping, pong) = (builder.create()?, builder.create()?);
            ping.pass_to(&mut command, FD_A_VAR);
            pong.pass_to(&mut command, FD_B_VAR);
            let pinger = ShmringPinger {
                tx: ping.sender()?,
                rx: pong.receiver()?,
            };
            let child = command.spawn()?;
            drop((ping, pong));
            drive(pinger, child, &block, plan)
        }
        RoundTrip::CacheLine => {
            let child = command.spawn()?;
            drive(CacheLinePinger(block.block()), child, &block, plan)
        }
        RoundTrip::Futex => {
            let child = command.spawn()?;
            drive(FutexPinger(block.block()), child, &block, plan)
        }
        RoundTrip::Pipe => {
            let (ping_r, ping_w) = pipe()?;
            let (pong_r, pong_w) = pipe()?;
            inherit(&mut command, ping_r.as_fd(), FD_A_VAR);
            inherit(&mut command, pong_w.as_fd(), FD_B_VAR);
            let child = command.spawn()?;
            // The child's ends close here: if it dies, our read sees end-of-file.
            drop((ping_r, pong_w));
            drive(
                StreamPinger {
                    tx: ping_w,
                    rx: pong_r,
                },
                child,
                &block,
                plan,
            )
        }
        RoundTrip::UnixSocket => {
            let (ours, theirs) = UnixStream::pair()?;
            inherit(&mut command, theirs.as_fd(), FD_A_VAR);
            let child = command.spawn()?;
            drop(theirs);
            let rx = ours.try_clone()?;
            drive(StreamPinger { tx: ours, rx }, child, &block, plan)
        }
    }
}

/// Runs a plan against a spawned child.
fn drive<P: Pinger>(
    mut pinger: P,
    child: Child,
    block: &SharedBlock,
    plan: Plan,
) -> Result<RoundTripRun> {
    let mut seq = 0u64;
    let mut next = |pinger: &mut P| {
        seq += 1;
        let echo = pinger.round_trip(seq);
        assert_eq!(echo, seq, "the echo of round trip {seq}");
    };
    for _ in 0..plan.warmup {
        next(&mut pinger);
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for _ in 0..plan.samples {
        let start = Instant::now();
        next(&mut pinger);
        histogram.saturating_record(start.elapsed().as_nanos() as u64);
    }
    let start = Instant::now();
    for _ in 0..plan.batch {
        next(&mut pinger);
    }
    let batch = start.elapsed();
    drop(pinger);
    let child_pinned = child_pinned(block.block());
    reap(child)?;
    Ok(RoundTripRun {
        histogram,
        batch_mean_ns: batch.as_nanos() as f64 / plan.batch.max(1) as f64,
        child_pinned,
    })
}

struct ShmringPinger {
    tx: shmring::Sender,
    rx: shmring::Receiver,
}

impl Pinger for ShmringPinger {
    #[inline]
    fn round_trip(&mut self, seq: u64) -> u64 {
        self.tx.send(&seq.to_ne_bytes()).expect("send the ping");
        let mut buf = [0u8; 8];
        let n = self.rx.recv(&mut buf).expect("receive the echo");
        assert_eq!(n, 8, "echo length");
        u64::from_ne_bytes(buf)
    }
}

struct ShmringEchoer {
    rx: shmring::Receiver,
    tx: shmring::Sender,
}

impl Echoer for ShmringEchoer {
    #[inline]
    fn echo(&mut self, expected: u64) {
        let mut buf = [0u8; 8];
        let n = self.rx.recv(&mut buf).expect("receive the ping");
        assert_eq!(n, 8, "ping length");
        assert_eq!(u64::from_ne_bytes(buf), expected, "ping out of sequence");
        self.tx.send(&buf).expect("send the echo");
    }
}

/// The parent writes the sequence number to line A; the child, spinning on A,
/// copies it to line B; the parent spins on B. Nothing but the two lines moves.
struct CacheLinePinger<'a>(&'a Block);

impl Pinger for CacheLinePinger<'_> {
    #[inline]
    fn round_trip(&mut self, seq: u64) -> u64 {
        // Release: pairs with the child's Acquire load (a message would need it).
        self.0.line_a.store(seq, Ordering::Release);
        spin_change(
            &self.0.line_b,
            seq - 1,
            &mut Patience::new("the cache-line echo"),
        )
    }
}

struct CacheLineEchoer<'a>(&'a Block, Patience);

impl Echoer for CacheLineEchoer<'_> {
    #[inline]
    fn echo(&mut self, expected: u64) {
        let seq = spin_change(&self.0.line_a, expected - 1, &mut self.1);
        assert_eq!(seq, expected, "ping out of sequence");
        self.0.line_b.store(seq, Ordering::Release);
    }
}

/// The parent stores the (32-bit) sequence number in word A and wakes it, then
/// sleeps on word B until the child has stored the echo there and woken it. Both
/// sides go to sleep at once: every round trip is two parked wake-ups.
struct FutexPinger<'a>(&'a Block);

impl Pinger for FutexPinger<'_> {
    #[inline]
    fn round_trip(&mut self, seq: u64) -> u64 {
        let word = seq as u32;
        self.0.futex_a.store(word, Ordering::Release);
        futex_wake(&self.0.futex_a);
        let mut patience = Patience::new("the futex echo");
        let echo = futex_wait_change(&self.0.futex_b, word.wrapping_sub(1), &mut patience);
        // The echo is 32 bits: widen it as the sequence it claims to be.
        (seq & !0xFFFF_FFFF) | u64::from(echo)
    }
}

struct FutexEchoer<'a>(&'a Block, Patience);

impl Echoer for FutexEchoer<'_> {
    #[inline]
    fn echo(&mut self, expected: u64) {
        let expected = expected as u32;
        let seq = futex_wait_change(&self.0.futex_a, expected.wrapping_sub(1), &mut self.1);
        assert_eq!(seq, expected, "ping out of sequence");
        self.0.futex_b.store(seq, Ordering::Release);
        futex_wake(&self.0.futex_b);
    }
}

/// A pipe pair or a socket: 8 bytes written, 8 bytes read.
struct StreamPinger<W, R> {
    tx: W,
    rx: R,
}

impl<W: Write, R: Read> Pinger for StreamPinger<W, R> {
    #[inline]
    fn round_trip(&mut self, seq: u64) -> u64 {
        self.tx
            .write_all(&seq.to_ne_bytes())
            .expect("write the ping");
        let mut buf = [0u8; 8];
        self.rx.read_exact(&mut buf).expect("read the echo");
        u64::from_ne_bytes(buf)
    }
}

struct StreamEchoer<R, W> {
    rx: R,
    tx: W,
}

impl<R: Read, W: Write> Echoer for StreamEchoer<R, W> {
    #[inline]
    fn echo(&mut self, expected: u64) {
        let mut buf = [0u8; 8];
        self.rx.read_exact(&mut buf).expect("read the ping");
        assert_eq!(u64::from_ne_bytes(buf), expected, "ping out of sequence");
        self.tx.write_all(&buf).expect("write the echo");
    }
}

fn serve<E: Echoer>(mut echoer: E, block: &Block, pinned: bool, count: u64) {
    // Release: the status is visible to a parent that has seen our first echo.
    block
        .child_status
        .store(if pinned { PINNED } else { NOT_PINNED }, Ordering::Release);
    for seq in 1..=count {
        echoer.echo(seq);
    }
}

// ---------------------------------------------------------------------------
// Throughput

/// One run of a throughput method.
#[derive(Debug, Clone, Copy)]
pub struct StreamRun {
    /// From the parent's "go" to the last message received.
    pub elapsed: Duration,
    /// Whether the child pinned itself to its CPU.
    pub child_pinned: bool,
}

/// Moves `messages` 8-byte messages (the sequence 0, 1, …) from a fresh child
/// pinned to `child_cpu` to this process through `method`, checking their order.
/// The clock runs from the moment the child, ready, is told to start, to the last
/// message received. As for [`round_trips`], `main` must call
/// [`run_child_if_requested`] first.
///
/// # Errors
/// If the child cannot be set up or spawned, fails, or a message is out of order.
pub fn stream(method: Stream, messages: u64, child_cpu: Option<usize>) -> Result<StreamRun> {
    let block = SharedBlock::create()?;
    let mut command = child_command(method.key(), messages, child_cpu, &block)?;
    match method {
        Stream::Shmring => {
            let channel = ChannelBuilder::memfd()
                .capacity(shared_bare::CAPACITY * crate::SHMRING_FRAME)
                .wait_strategy(WaitStrategy::BusySpin)
                .create()?;
            channel.pass_to(&mut command, FD_A_VAR);
            let mut rx = channel.receiver()?;
            let child = command.spawn()?;
            drop(channel);
            let mut buf = [0u8; 8];
            let mut recv = || match rx.try_recv(&mut buf) {
                Ok(8) => Ok(Some(u64::from_ne_bytes(buf))),
                Ok(n) => Err(format!("a message of {n} bytes").into()),
                Err(shmring::Error::Empty) => Ok(None),
                Err(e) => Err(Error::from(e)),
            };
            receive(&mut recv, child, &block, messages)
        }
        Stream::Bare => {
            let child = command.spawn()?;
            let mut rx = shared_bare::Receiver::new(&block.block().ring);
            receive(&mut || Ok(rx.pop()), child, &block, messages)
        }
    }
}

/// The parent's side of a throughput run: waits for the child, says go, and
/// receives `messages` through `recv` (`None`: nothing there yet).
fn receive(
    recv: &mut impl FnMut() -> Result<Option<u64>>,
    child: Child,
    block: &SharedBlock,
    messages: u64,
) -> Result<StreamRun> {
    let shared = block.block();
    let mut patience = Patience::new("the child to start");
    while shared.child_status.load(Ordering::Acquire) == 0 {
        patience.tick();
        spin_loop();
    }
    let mut patience = Patience::new("the next message");
    let start = Instant::now();
    // Release: nothing to publish but the start; kept symmetric with the Acquire.
    shared.go.store(1, Ordering::Release);
    let mut expected = 0u64;
    while expected < messages {
        match recv()? {
            Some(v) => {
                if v != expected {
                    return Err(format!("message {expected} arrived as {v}").into());
                }
                expected += 1;
                patience.reset();
            }
            None => {
                patience.tick();
                spin_loop();
            }
        }
    }
    let elapsed = start.elapsed();
    let child_pinned = child_pinned(shared);
    reap(child)?;
    Ok(StreamRun {
        elapsed,
        child_pinned,
    })
}

/// The child's side of a throughput run: says ready, waits for go, sends.
fn send_all(
    mut send: impl FnMut(u64) -> Result<bool>,
    block: &Block,
    pinned: bool,
    count: u64,
) -> Result<()> {
    block
        .child_status
        .store(if pinned { PINNED } else { NOT_PINNED }, Ordering::Release);
    let mut patience = Patience::new("the parent's go");
    while block.go.load(Ordering::Acquire) == 0 {
        patience.tick();
        spin_loop();
    }
    let mut patience = Patience::new("room in the ring");
    for seq in 0..count {
        while !send(seq)? {
            patience.tick();
            spin_loop();
        }
        patience.reset();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The child

/// If this process was started as a child of the comparison ([`CHILD_VAR`] set),
/// serves its method and exits; otherwise returns at once.
pub fn run_child_if_requested() {
    let Ok(key) = std::env::var(CHILD_VAR) else {
        return;
    };
    let code = match child_main(&key) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shmring-benches child ({key}): {e}");
            1
        }
    };
    std::process::exit(code);
}

fn child_main(key: &str) -> Result<()> {
    let pinned = match env_number::<usize>(CPU_VAR) {
        Ok(cpu) => pin_to(cpu).is_ok(),
        Err(_) => false,
    };
    let count: u64 = env_number(COUNT_VAR)?;
    let shared = SharedBlock::from_fd(inherited(BLOCK_VAR)?)?;
    let block = shared.block();
    if let Some(method) = RoundTrip::ALL.into_iter().find(|m| m.key() == key) {
        match method {
            RoundTrip::ShmringBusySpin
            | RoundTrip::ShmringSpinThenPark
            | RoundTrip::ShmringPark => {
                let builder =
                    ChannelBuilder::memfd().wait_strategy(method.wait_strategy().expect("shmring"));
                let rx = builder.from_env(FD_A_VAR)?.receiver()?;
                let tx = builder.from_env(FD_B_VAR)?.sender()?;
                serve(ShmringEchoer { rx, tx }, block, pinned, count);
            }
            RoundTrip::CacheLine => serve(
                CacheLineEchoer(block, Patience::new("the next cache-line ping")),
                block,
                pinned,
                count,
            ),
            RoundTrip::Futex => serve(
                FutexEchoer(block, Patience::new("the next futex ping")),
                block,
                pinned,
                count,
            ),
            RoundTrip::Pipe => {
                let rx = File::from(inherited(FD_A_VAR)?);
                let tx = File::from(inherited(FD_B_VAR)?);
                serve(StreamEchoer { rx, tx }, block, pinned, count);
            }
            RoundTrip::UnixSocket => {
                let rx = UnixStream::from(inherited(FD_A_VAR)?);
                let tx = rx.try_clone()?;
                serve(StreamEchoer { rx, tx }, block, pinned, count);
            }
        }
        return Ok(());
    }
    match Stream::ALL.into_iter().find(|m| m.key() == key) {
        Some(Stream::Shmring) => {
            let mut tx = ChannelBuilder::memfd()
                .wait_strategy(WaitStrategy::BusySpin)
                .from_env(FD_A_VAR)?
                .sender()?;
            send_all(
                |seq| match tx.try_send(&seq.to_ne_bytes()) {
                    Ok(()) => Ok(true),
                    Err(shmring::Error::Full { .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                },
                block,
                pinned,
                count,
            )
        }
        Some(Stream::Bare) => {
            let mut tx = shared_bare::Sender::new(&block.ring);
            send_all(|seq| Ok(tx.push(seq)), block, pinned, count)
        }
        None => Err(format!("unknown role {key:?}").into()),
    }
}
