//! The cross-process comparison's runners: two real processes, the program and a
//! copy of itself.
//!
//! The parent (the comparison program) re-executes its own binary
//! ([`std::env::current_exe`]) with [`CHILD_VAR`] naming the child's role; the
//! child's `main` calls [`run_child_if_requested`] first, which runs the role and
//! exits. Everything the child needs is inherited: descriptors (a shared block in a
//! memfd, the shmring channels, pipes, sockets) whose numbers are in the
//! environment, names (a FIFO's folder, message queues, iceoryx2 services), the
//! message size, the number of round trips or messages, and the CPU to pin itself
//! to. One child serves one method for one run, then exits; the parent times
//! nothing until the child has said it is ready (spawning is never timed).
//!
//! Every run checks what it received: a round trip's echo must equal the ping
//! byte for byte, the child checks that the pings arrive in sequence, and a
//! throughput receiver checks the length and sequence number of every message. A
//! failure is an error, not a figure.
//!
//! Nothing hangs: every spin loop gives up after [`PATIENCE`] without progress;
//! the child runs a watchdog thread that ends it (exit status 3) after
//! [`PATIENCE`] without progress, whatever it is blocked in; the parent's sockets
//! and message queues time out after [`PATIENCE`], and its pipes, FIFOs and shmring
//! channels see the child's end go when the child does. A child the parent gives
//! up on is killed and reaped; FIFOs, their folder and message-queue names are
//! removed as soon as the child has opened them (and on every error path).

mod broadcast;
mod c_peer;
mod connection;
pub mod fanout;
mod kernel;
pub mod kill;
mod mpmc;
mod readiness;
mod rpc;
mod select;
mod shm;
mod tokio_rows;

#[cfg(feature = "iceoryx2")]
mod iox;
#[cfg(feature = "iceoryx2")]
mod iox_fanout;

use std::fs::File;
use std::hint::spin_loop;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use shmring::WaitStrategy;

use crate::shared_bare::SharedRing;

/// The environment variable that makes the program a child of the comparison: its
/// value is `rtt:<method>` or `stream:<method>`.
pub const CHILD_VAR: &str = "SHMRING_BENCH_CHILD";
const CPU_VAR: &str = "SHMRING_BENCH_CPU";
const COUNT_VAR: &str = "SHMRING_BENCH_COUNT";
const SIZE_VAR: &str = "SHMRING_BENCH_SIZE";
const BLOCK_VAR: &str = "SHMRING_BENCH_BLOCK";
const FD_A_VAR: &str = "SHMRING_BENCH_FD_A";
const FD_B_VAR: &str = "SHMRING_BENCH_FD_B";
const NAME_VAR: &str = "SHMRING_BENCH_NAME";

/// A side that has waited this long for its peer gives up (the peer died or hangs).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The small message: 8 bytes, the sequence number itself.
pub const SMALL: usize = 8;
/// The medium message of the second round-trip figure: 1 KiB.
pub const MEDIUM: usize = 1024;
/// The bandwidth message: 64 KiB.
pub const LARGE: usize = 64 * 1024;

/// Ring size of the round-trip channels (one message in flight at a time; the
/// largest message is half of it less 8 bytes).
const ROUND_TRIP_CAPACITY: usize = 4096;

/// Messages a batch carries in the "shmring batch" throughput method.
pub const STREAM_BATCH: usize = crate::BATCH;

/// An error of a cross-process run.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// A result of a cross-process run.
pub type Result<T> = std::result::Result<T, Error>;

// ---------------------------------------------------------------------------
// Methods and metrics

/// A way to move messages between the two processes, or a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Two shmring channels (one each way), [`WaitStrategy::BusySpin`]; for
    /// throughput, `try_send` / `try_recv` message by message.
    ShmringBusySpin,
    /// Round trips only: the channels of [`Method::ShmringBusySpin`], the parent's
    /// side that row's, the child's a C echo loop through the C ABI making the
    /// calls the Rust child makes (`shmring_msg_receiver_recv` /
    /// `shmring_msg_sender_send` on the message family's views,
    /// `SHMRING_WAIT_BUSY_SPIN`; `cross/c_peer.rs`): compared with
    /// [`Method::ShmringBusySpin`], the C ABI's cost.
    CAbiBusySpin,
    /// As [`Method::CAbiBusySpin`], the C loop spinning on the `try_` calls
    /// instead (`shmring_msg_receiver_try_recv` until a message is there,
    /// `shmring_msg_sender_try_send` until it has gone): what a C event loop that
    /// polls pays.
    CAbiTrySpin,
    /// Round trips only: as [`Method::CAbiBusySpin`], the child's echo loop C++
    /// through the header-only wrapper `shmring.hpp` (`shmring::receiver::recv` /
    /// `shmring::sender::send`, `SHMRING_WAIT_BUSY_SPIN`; `cross/c_peer.rs`):
    /// compared with [`Method::ShmringBusySpin`], the cost of the C ABI and the
    /// wrapper.
    CppAbiBusySpin,
    /// Two shmring channels, the default [`WaitStrategy::SpinThenPark`].
    ShmringSpinThenPark,
    /// Two shmring channels, [`WaitStrategy::Park`].
    ShmringPark,
    /// Round trips only: two named shmring channels (doorbell FIFOs beside them),
    /// both sides waiting in `poll` on the endpoint's readiness descriptor: try,
    /// arm, and if armed poll, then try again. The builder's default fences
    /// (asymmetric where `membarrier` is allowed: every arm is then a
    /// `membarrier`).
    Readiness,
    /// As [`Method::Readiness`] on channels created with symmetric fences
    /// (`asymmetric_fences(false)`): a full fence per message, no `membarrier`
    /// per arm.
    ReadinessSymmetric,
    /// Throughput only: shmring, the sender publishing bursts of
    /// [`STREAM_BATCH`] messages with `Sender::batch`, the receiver taking up to as
    /// many at a time with `try_recv_batch`.
    ShmringBatch,
    /// Round trips only: request/response ([`shmring::rpc`]), `RpcClient::call`
    /// against `RpcServer::serve_one` over two shmring channels with
    /// [`WaitStrategy::BusySpin`], as [`Method::ShmringBusySpin`]: the difference
    /// is the RPC layer's cost.
    Rpc,
    /// Round trips only: a [`shmring::connection`] upgraded to shared memory (both
    /// sides require it), [`WaitStrategy::BusySpin`], 4 KiB rings: compared with
    /// [`Method::ShmringBusySpin`], the connection layer's cost.
    ConnectionShm,
    /// Round trips only: a [`shmring::connection`] with shared memory forbidden
    /// (`SocketOnly`), length-framed over its Unix stream socket: compared with
    /// [`Method::UnixStream`], the framing's cost.
    ConnectionSocket,
    /// Round trips only: broadcast publish-subscribe ([`shmring::broadcast`]),
    /// two topics (one each way), one subscriber each, [`Policy::Gated`](shmring::broadcast::Policy::Gated),
    /// [`WaitStrategy::BusySpin`]: compared with [`Method::ShmringBusySpin`], what
    /// a topic costs over a channel.
    Broadcast,
    /// Round trips and throughput: two shmring channels, each side on a
    /// current-thread tokio runtime, `shmring_tokio::AsyncSender::send` and
    /// `AsyncReceiver::recv` awaited (no spin: a receive that finds nothing arms
    /// and parks in the reactor's `epoll_wait`) ([`tokio_rows`]): compared with
    /// [`Method::AsyncUnixStream`].
    AsyncPark,
    /// Round trips only: as [`Method::AsyncPark`], each receiver spinning for the
    /// default [`WaitStrategy::SpinThenPark`]'s time before it arms
    /// (`AsyncReceiver::spin`); reported with the CPU time it costs.
    AsyncSpin,
    /// Round trips only: the parent waits in one [`shmring::Select`] over 8
    /// channels, on one of which (a different one each time, from the message's
    /// number) the child sends the echo; the child waits for the ping in a
    /// `Select` over its one channel; both parked in `epoll_wait` ([`select`]).
    Select8,
    /// As [`Method::Select8`] with one channel: the reference of its wake-up.
    Select1,
    /// iceoryx2 publish-subscribe, one service each way, both sides polling.
    Iceoryx2,
    /// A Unix stream socket pair.
    UnixStream,
    /// A Unix stream socket pair, both ends tokio `UnixStream`s on a
    /// current-thread runtime (`readable` / `try_read`, `writable` /
    /// `try_write`), fixed 8-byte messages: [`Method::AsyncPark`]'s reference.
    AsyncUnixStream,
    /// A Unix `SOCK_SEQPACKET` socket pair.
    SeqPacket,
    /// TCP over 127.0.0.1, `TCP_NODELAY` on both ends.
    Tcp,
    /// Two anonymous pipes.
    Pipe,
    /// Two named pipes (`mkfifo`, mode 0600, in a fresh temporary folder).
    Fifo,
    /// Two POSIX message queues (`mq_open`).
    MessageQueue,
    /// Reference: raw `FUTEX_WAIT`/`FUTEX_WAKE` on two shared words, the payload in
    /// shared buffers: every round trip is two parked wake-ups.
    Futex,
    /// Reference for [`Method::Readiness`]: two eventfds, the payload in shared
    /// buffers as for [`Method::Futex`]; each side writes 1 to its eventfd, and
    /// waits in `poll` on the other's, then reads it (an event loop's shape).
    EventFd,
    /// Two shmring events (memfd), the payload in shared buffers as for
    /// [`Method::Futex`]: a sequence word published, then `notify_one`; the other
    /// side waits with `prepare`/`wait_from`.
    Event,
    /// Two shmring semaphores (memfd), the payload in shared buffers: `post`, and
    /// `wait` on the other side.
    Semaphore,
    /// Throughput only: one shmring MPMC channel, 2 producer and 2 consumer
    /// processes (the parent and three children), default spin-then-park.
    Mpmc,
    /// Reference, the physical limit of a round trip: one shared cache line each
    /// way (carrying the 8-byte message itself; a larger one is copied through a
    /// shared buffer first).
    CacheLine,
    /// Reference for throughput and bandwidth: a bare SPSC ring in shared memory
    /// (4096 `u64` slots; 16 slots of 64 KiB for bandwidth), the classic two-index
    /// design with cached indices.
    BareRing,
    /// Not a round trip or a rate of its own table: the broadcast fan-out, one
    /// publisher process to 1, 2 and 4 subscriber processes, gated and lossy,
    /// spin-then-park ([`fanout`]).
    FanOut,
    /// Not a round trip or a rate: kill → `Disconnected` latency, a receiver
    /// blocked (futex or epoll) while its peer process is SIGKILLed, with and
    /// without the watcher thread ([`kill`]).
    Kill,
}

/// Whether a method measures a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// It does.
    Yes,
    /// It does not apply (no row).
    No,
    /// It would apply but cannot run here: the reason, for the report.
    Skipped(String),
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Self; 34] = [
        Self::ShmringBusySpin,
        Self::CAbiBusySpin,
        Self::CAbiTrySpin,
        Self::CppAbiBusySpin,
        Self::ShmringSpinThenPark,
        Self::ShmringPark,
        Self::Readiness,
        Self::ReadinessSymmetric,
        Self::ShmringBatch,
        Self::Rpc,
        Self::ConnectionShm,
        Self::ConnectionSocket,
        Self::Broadcast,
        Self::AsyncPark,
        Self::AsyncSpin,
        Self::Select8,
        Self::Select1,
        Self::Iceoryx2,
        Self::UnixStream,
        Self::AsyncUnixStream,
        Self::SeqPacket,
        Self::Tcp,
        Self::Pipe,
        Self::Fifo,
        Self::MessageQueue,
        Self::Futex,
        Self::EventFd,
        Self::Event,
        Self::Semaphore,
        Self::Mpmc,
        Self::CacheLine,
        Self::BareRing,
        Self::FanOut,
        Self::Kill,
    ];

    /// Short name: for `--only`, the child's role and the JSON.
    pub fn key(self) -> &'static str {
        match self {
            Self::ShmringBusySpin => "busy-spin",
            Self::CAbiBusySpin => "busy-spin-c",
            Self::CAbiTrySpin => "try-spin-c",
            Self::CppAbiBusySpin => "busy-spin-cpp",
            Self::ShmringSpinThenPark => "spin-then-park",
            Self::ShmringPark => "park",
            Self::Readiness => "readiness",
            Self::ReadinessSymmetric => "readiness-sym",
            Self::ShmringBatch => "shmring-batch",
            Self::Rpc => "rpc",
            Self::ConnectionShm => "connection-shm",
            Self::ConnectionSocket => "connection-socket",
            Self::Broadcast => "broadcast",
            Self::AsyncPark => "async",
            Self::AsyncSpin => "async-spin",
            Self::Select8 => "select-8",
            Self::Select1 => "select-1",
            Self::AsyncUnixStream => "tokio-unix-socket",
            Self::Iceoryx2 => "iceoryx2",
            Self::UnixStream => "unix-socket",
            Self::SeqPacket => "seqpacket",
            Self::Tcp => "tcp",
            Self::Pipe => "pipe",
            Self::Fifo => "fifo",
            Self::MessageQueue => "mq",
            Self::Futex => "futex",
            Self::EventFd => "eventfd",
            Self::Event => "event",
            Self::Semaphore => "semaphore",
            Self::Mpmc => "mpmc",
            Self::CacheLine => "cache-line",
            Self::BareRing => "bare-ring",
            Self::FanOut => "fan-out",
            Self::Kill => "kill",
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ShmringBusySpin => "shmring busy-spin",
            Self::CAbiBusySpin => "shmring C ABI busy-spin",
            Self::CAbiTrySpin => "shmring C ABI try_ spin",
            Self::CppAbiBusySpin => "shmring C++ wrapper busy-spin",
            Self::ShmringSpinThenPark => "shmring spin-then-park",
            Self::ShmringPark => "shmring park",
            Self::Readiness => "shmring readiness fd",
            Self::ReadinessSymmetric => "shmring readiness fd, sym fences",
            Self::ShmringBatch => "shmring batch",
            Self::Rpc => "shmring rpc busy-spin",
            Self::ConnectionShm => "shmring connection shm busy-spin",
            Self::ConnectionSocket => "shmring connection unix socket",
            Self::Broadcast => "shmring broadcast busy-spin",
            Self::AsyncPark => "shmring tokio, parked",
            Self::AsyncSpin => "shmring tokio, spin 50 µs then park",
            Self::Select8 => "shmring Select over 8 channels",
            Self::Select1 => "shmring Select over 1 channel",
            Self::AsyncUnixStream => "tokio UnixStream",
            Self::Iceoryx2 => "iceoryx2 pub-sub",
            Self::UnixStream => "unix stream socket",
            Self::SeqPacket => "unix SOCK_SEQPACKET",
            Self::Tcp => "TCP 127.0.0.1",
            Self::Pipe => "pipe",
            Self::Fifo => "FIFO",
            Self::MessageQueue => "POSIX mq",
            Self::Futex => "futex ping-pong",
            Self::EventFd => "eventfd ping-pong",
            Self::Event => "shmring event ping-pong",
            Self::Semaphore => "shmring semaphore ping-pong",
            Self::Mpmc => "shmring MPMC 2x2",
            Self::CacheLine => "cache-line limit",
            Self::BareRing => "bare SPSC ring",
            Self::FanOut => "shmring broadcast fan-out",
            Self::Kill => "kill → Disconnected",
        }
    }

    /// What the method's path goes through.
    pub fn scope(self) -> &'static str {
        match self {
            Self::ShmringBusySpin
            | Self::ShmringSpinThenPark
            | Self::ShmringPark
            | Self::ShmringBatch => "shm, shmring",
            Self::CAbiBusySpin | Self::CAbiTrySpin => "shm, shmring C ABI",
            Self::CppAbiBusySpin => "shm, shmring C++",
            Self::Readiness | Self::ReadinessSymmetric => "shm, shmring poll",
            Self::Kill => "shmring, death",
            Self::Rpc => "shm, shmring rpc",
            Self::ConnectionShm => "shm, shmring connection",
            Self::ConnectionSocket => "kernel, shmring connection",
            Self::Broadcast => "shm, shmring broadcast",
            Self::AsyncPark | Self::AsyncSpin => "shm, shmring tokio",
            Self::Select8 | Self::Select1 => "shm, shmring Select",
            Self::AsyncUnixStream => "kernel, tokio",
            Self::Iceoryx2 => "shm, iceoryx2",
            Self::UnixStream
            | Self::SeqPacket
            | Self::Tcp
            | Self::Pipe
            | Self::Fifo
            | Self::MessageQueue => "kernel",
            Self::Futex | Self::EventFd => "ref: kernel wake",
            Self::Event | Self::Semaphore => "shm, shmring sync",
            Self::Mpmc => "shm, 4 processes",
            Self::FanOut => "shm, shmring broadcast, 2-5 processes",
            Self::CacheLine | Self::BareRing => "ref: hardware",
        }
    }

    /// Whether this build can run the method at all (iceoryx2 needs the cargo
    /// feature `iceoryx2`).
    pub fn built(self) -> bool {
        self != Self::Iceoryx2 || cfg!(feature = "iceoryx2")
    }

    /// Whether the method measures `metric`.
    pub fn supports(self, metric: Metric) -> Support {
        use Metric::{Bw64K, Rtt1K, Rtt8, Tput8};
        let yes = |ok: bool| if ok { Support::Yes } else { Support::No };
        match self {
            Self::ShmringBusySpin
            | Self::UnixStream
            | Self::SeqPacket
            | Self::Tcp
            | Self::Pipe
            | Self::Fifo => Support::Yes,
            Self::CAbiBusySpin
            | Self::CAbiTrySpin
            | Self::CppAbiBusySpin
            | Self::ShmringSpinThenPark
            | Self::ShmringPark
            | Self::Readiness
            | Self::ReadinessSymmetric
            | Self::Iceoryx2
            | Self::Futex
            | Self::EventFd
            | Self::Event
            | Self::Semaphore
            | Self::Rpc
            | Self::ConnectionShm
            | Self::ConnectionSocket
            | Self::Broadcast
            | Self::CacheLine => yes(matches!(metric, Rtt8 | Rtt1K)),
            Self::AsyncPark | Self::AsyncUnixStream => yes(matches!(metric, Rtt8 | Tput8)),
            Self::AsyncSpin | Self::Select8 | Self::Select1 => yes(metric == Rtt8),
            Self::ShmringBatch | Self::Mpmc => yes(metric == Tput8),
            Self::BareRing => yes(matches!(metric, Tput8 | Bw64K)),
            Self::MessageQueue => match kernel::mq_limit_reason(metric.size()) {
                None => Support::Yes,
                Some(reason) => Support::Skipped(reason),
            },
            Self::Kill | Self::FanOut => Support::No,
        }
    }

    /// Whether the method's calls go through shmring's system-call floor, so that
    /// [`shmring::system_calls_on_this_thread`] counts what they cost.
    pub fn counts_system_calls(self) -> bool {
        matches!(
            self,
            Self::ShmringBusySpin
                | Self::CAbiBusySpin
                | Self::CAbiTrySpin
                | Self::CppAbiBusySpin
                | Self::ShmringSpinThenPark
                | Self::ShmringPark
                | Self::Readiness
                | Self::ReadinessSymmetric
                | Self::ShmringBatch
                | Self::Broadcast
                | Self::AsyncPark
                | Self::AsyncSpin
                | Self::Select8
                | Self::Select1
        )
    }

    /// Whether the report gives the method's CPU time per round trip or
    /// message, each side (measured for every method: [`CpuTime`]).
    pub fn reports_cpu_time(self) -> bool {
        matches!(
            self,
            Self::AsyncPark
                | Self::AsyncSpin
                | Self::AsyncUnixStream
                | Self::Select8
                | Self::Select1
        )
    }

    fn wait_strategy(self) -> WaitStrategy {
        match self {
            Self::ShmringSpinThenPark => WaitStrategy::default(),
            Self::ShmringPark => WaitStrategy::Park,
            _ => WaitStrategy::BusySpin,
        }
    }

    fn by_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.key() == key)
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Round trip of an 8-byte message (ping and echo).
    Rtt8,
    /// Round trip of a 1 KiB message.
    Rtt1K,
    /// One-way throughput of 8-byte messages, child to parent.
    Tput8,
    /// One-way bandwidth with 64 KiB messages, child to parent.
    Bw64K,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Self; 4] = [Self::Rtt8, Self::Rtt1K, Self::Tput8, Self::Bw64K];

    /// Prefix of the JSON metric names.
    pub fn key(self) -> &'static str {
        match self {
            Self::Rtt8 => "rtt_8B",
            Self::Rtt1K => "rtt_1KiB",
            Self::Tput8 => "tput_8B",
            Self::Bw64K => "bw_64KiB",
        }
    }

    /// Heading in reports.
    pub fn title(self) -> &'static str {
        match self {
            Self::Rtt8 => "round trip, 8 B",
            Self::Rtt1K => "round trip, 1 KiB",
            Self::Tput8 => "throughput, 8 B messages",
            Self::Bw64K => "bandwidth, 64 KiB messages",
        }
    }

    /// Message size in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::Rtt8 | Self::Tput8 => SMALL,
            Self::Rtt1K => MEDIUM,
            Self::Bw64K => LARGE,
        }
    }

    /// Round trip (latency) or one-way (rate).
    pub fn is_round_trip(self) -> bool {
        matches!(self, Self::Rtt8 | Self::Rtt1K)
    }

    /// The reference every figure is divided by for the "vs limit" ratio.
    pub fn limit(self) -> Method {
        if self.is_round_trip() {
            Method::CacheLine
        } else {
            Method::BareRing
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

/// Lets the child of `command` run on any of `cpus` (bits past `CPU_SETSIZE`
/// ignored): a child inherits the affinity of the thread that spawns it, which
/// is pinned to one CPU here, so an unpinned child must be given the others back.
fn let_child_run_on(command: &mut Command, cpus: &[usize]) {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE (filtered).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // sched_setaffinity, a system call, on a set copied into it; it allocates
    // nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------
// Shared memory and inheritance

/// What the two processes of one run share besides the method's own channel: the
/// start of a memfd. All-zero is the initial state. After it, at
/// [`PAYLOAD_A`] and [`PAYLOAD_B`], two page-aligned buffers carry the payload of
/// the cache-line and futex references (parent to child, child to parent); at
/// [`BULK`], the slots of the bare bandwidth ring.
#[repr(C)]
struct Block {
    /// Set by the child once it is ready: [`PINNED`] or [`NOT_PINNED`].
    child_status: CachePadded<AtomicU32>,
    /// Set by the parent to start a throughput run.
    go: CachePadded<AtomicU32>,
    /// Set by the child at its end: the system calls shmring counted on its
    /// thread over the run ([`shmring::system_calls_on_this_thread`]).
    child_system_calls: CachePadded<AtomicU64>,
    /// Set by the child at its end: the CPU time its process used over the run,
    /// in ns ([`process_cpu_ns`]).
    child_cpu_ns: CachePadded<AtomicU64>,
    /// Cache-line limit: the parent's line.
    line_a: CachePadded<AtomicU64>,
    /// Cache-line limit: the child's line.
    line_b: CachePadded<AtomicU64>,
    /// Futex ping-pong: the parent's word.
    futex_a: CachePadded<AtomicU32>,
    /// Futex ping-pong: the child's word.
    futex_b: CachePadded<AtomicU32>,
    /// The bare ring of `u64` of the throughput comparison.
    ring: SharedRing,
    /// The bare bandwidth ring's counts.
    bulk: shm::BulkCounts,
}

const PAGE: usize = 4096;

const fn page_round(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

/// Largest payload of the cache-line and futex references.
const PAYLOAD_MAX: usize = PAGE;
const PAYLOAD_A: usize = page_round(size_of::<Block>());
const PAYLOAD_B: usize = PAYLOAD_A + PAYLOAD_MAX;
const BULK: usize = PAYLOAD_B + PAYLOAD_MAX;
/// Slots of the bare bandwidth ring, each [`LARGE`] bytes.
const BULK_SLOTS: usize = 16;
const MAPPED: usize = BULK + BULK_SLOTS * LARGE;

const PINNED: u32 = 1;
const NOT_PINNED: u32 = 2;

/// The block in a shared mapping of a memfd.
struct SharedBlock {
    file: File,
    ptr: NonNull<u8>,
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
        file.set_len(MAPPED as u64)?;
        Self::map(file)
    }

    /// The block behind an inherited descriptor.
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let file = File::from(fd);
        if file.metadata()?.len() < MAPPED as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared block too small",
            ));
        }
        Self::map(file)
    }

    fn map(file: File) -> io::Result<Self> {
        // SAFETY: a new shared mapping of the first MAPPED bytes of a file at least
        // that long; it overlaps no Rust object. MAP_POPULATE: no page faults
        // while measuring.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAPPED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null");
        Ok(Self { file, ptr })
    }

    fn block(&self) -> &Block {
        // SAFETY: the mapping is page-aligned (more than Block's 128), spans more
        // than size_of::<Block>() bytes and lives as long as `self`; Block is made
        // of atomics only, for which any bytes, all-zero included, are valid
        // values, and the other process touches them through atomics only.
        unsafe { self.ptr.cast::<Block>().as_ref() }
    }

    /// The byte at `offset` of the mapping (`offset` below [`MAPPED`]); raw, for
    /// the buffers that the references hand over by their own protocol.
    fn at(&self, offset: usize) -> NonNull<u8> {
        assert!(offset < MAPPED);
        // SAFETY: `offset` is within the mapping (checked).
        unsafe { self.ptr.add(offset) }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for SharedBlock {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, with its length; no reference from
        // `block` and no pointer from `at` outlives `self` (their users borrow it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), MAPPED) };
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

/// Takes the descriptor whose number the parent put in `var`: the first of a
/// comma-separated list (a channel's [`pass_to`](shmring::Channel::pass_to) adds its
/// doorbells, which are left alone: inherited, unused, closed at exit).
fn inherited(var: &str) -> Result<OwnedFd> {
    let fd: i32 = std::env::var(var)
        .ok()
        .and_then(|v| v.split(',').next()?.parse().ok())
        .ok_or_else(|| format!("${var} is unset or not a descriptor number"))?;
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

fn env_string(var: &str) -> Result<String> {
    std::env::var(var).map_err(|_| format!("${var} is unset").into())
}

/// A name unique to this process and run, for FIFOs, queues and services.
fn unique_tag() -> String {
    static RUN: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    )
}

/// The command that runs this program as the child serving `role`.
fn child_command(
    role: &str,
    count: u64,
    size: usize,
    cpu: Option<usize>,
    block: &SharedBlock,
) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(CHILD_VAR, role)
        .env(COUNT_VAR, count.to_string())
        .env(SIZE_VAR, size.to_string())
        .env_remove(CPU_VAR)
        .stdin(Stdio::null())
        // Standard output is the report's (or the JSON's): a child writes to
        // standard error only.
        .stdout(Stdio::null());
    if let Some(cpu) = cpu {
        command.env(CPU_VAR, cpu.to_string());
    }
    inherit(&mut command, block.fd(), BLOCK_VAR);
    Ok(command)
}

/// A spawned child: killed and reaped if dropped before [`reap`](Self::reap) (an
/// error path), so that none is left behind.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn spawn(command: &mut Command) -> Result<Self> {
        Ok(Self(Some(command.spawn()?)))
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match &mut self.0 {
            Some(child) => child.try_wait(),
            None => Ok(None),
        }
    }

    /// Waits for the child to exit and fails unless it succeeded.
    fn reap(mut self) -> Result<()> {
        let mut child = self.0.take().expect("reaped once");
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("the child failed: {status}").into());
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Things to remove once the child has opened them, or on any error: FIFOs and
/// their folder, message-queue names. Dropping it removes them.
#[derive(Default)]
#[allow(dead_code)] // the fields are held for their `Drop`
struct Cleanup {
    fifo: Option<kernel::FifoDir>,
    mq: Option<kernel::MqNames>,
}

/// Waits until the child says it is ready (it has opened everything), failing
/// early if it exits first. Returns whether it pinned itself.
fn wait_ready(block: &Block, child: &mut ChildGuard) -> Result<bool> {
    let since = Instant::now();
    loop {
        // Acquire: pairs with the child's Release store, after its set-up.
        match block.child_status.load(Ordering::Acquire) {
            0 => {}
            status => return Ok(status == PINNED),
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the child exited before it was ready: {status}").into());
        }
        if since.elapsed() > PATIENCE {
            return Err(format!("the child was not ready in {PATIENCE:?}").into());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

// ---------------------------------------------------------------------------
// Waiting

/// A spin loop's guard against a peer that died or hangs: reads the clock only
/// every 65536 turns, and fails after [`PATIENCE`] without progress.
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
    fn tick(&mut self) -> Result<()> {
        self.turns = self.turns.wrapping_add(1);
        if self.turns % 65536 == 0 {
            self.check()
        } else {
            Ok(())
        }
    }

    #[cold]
    fn check(&mut self) -> Result<()> {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= PATIENCE {
            return Err(format!("no progress in {PATIENCE:?} waiting for {}", self.what).into());
        }
        Ok(())
    }

    /// Progress: the next wait starts afresh.
    #[inline]
    fn reset(&mut self) {
        self.turns = 0;
        self.since = None;
    }
}

/// The child's progress, for its watchdog: a count its only writer (the child's
/// main thread) stores.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

#[inline]
fn progress(count: u64) {
    // Relaxed: the watchdog only asks whether the number moved.
    PROGRESS.store(count, Ordering::Relaxed);
}

/// Starts the child's watchdog: a thread that ends the process (status 3) when
/// [`PROGRESS`] has not moved for [`PATIENCE`], whatever the main thread is
/// blocked in. It sleeps in between (a wake-up every 250 ms).
fn start_watchdog(role: String) {
    std::thread::spawn(move || {
        let mut last = u64::MAX;
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let now = PROGRESS.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= PATIENCE {
                eprintln!(
                    "\nshmring-benches child ({role}): no progress in {PATIENCE:?} \
                     (after {now} messages), giving up"
                );
                // SAFETY: _exit ends the process at once, without running exit
                // handlers that could race with the main thread; nothing of ours is
                // observed after it.
                unsafe { libc::_exit(3) };
            }
        }
    });
}

/// How long one `poll` of a readiness descriptor or an eventfd lasts before the
/// waiter counts patience.
const POLL_MS: i32 = 100;

/// Waits in `poll` until `fd` is readable, counting each [`POLL_MS`] without it
/// as many spin turns (so that [`PATIENCE`] is reached in roughly that long).
fn wait_readable(fd: BorrowedFd<'_>, patience: &mut Patience) -> Result<()> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one live pollfd, and the count passed is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
        match rc {
            1.. => return Ok(()),
            0 => {
                for _ in 0..4096 {
                    patience.tick()?;
                }
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}").into());
                }
            }
        }
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

// ---------------------------------------------------------------------------
// Messages

/// A message of `size` bytes whose first 8 bytes (and, from 16 bytes on, last 8)
/// hold its sequence number; the rest is a fixed pattern, written once.
struct Stamp {
    buf: Vec<u8>,
}

impl Stamp {
    fn new(size: usize) -> Self {
        assert!(size >= 8, "messages are at least 8 bytes");
        Self {
            buf: (0..size).map(|i| (i % 251) as u8).collect(),
        }
    }

    /// The message numbered `seq`.
    #[inline]
    fn stamp(&mut self, seq: u64) -> &[u8] {
        let bytes = seq.to_ne_bytes();
        let n = self.buf.len();
        self.buf[..8].copy_from_slice(&bytes);
        if n >= 16 {
            self.buf[n - 8..].copy_from_slice(&bytes);
        }
        &self.buf
    }
}

/// Checks that `msg` is message `seq` of `size` bytes (length and the sequence
/// number at both ends).
#[inline]
fn check_stamp(msg: &[u8], size: usize, seq: u64) -> Result<()> {
    if msg.len() != size {
        return Err(format!("message {seq}: {} bytes, expected {size}", msg.len()).into());
    }
    let at = |i: usize| u64::from_ne_bytes(msg[i..i + 8].try_into().expect("8 bytes"));
    let (head, tail) = (at(0), at(size - 8));
    if head != seq || (size >= 16 && tail != seq) {
        return Err(format!("message {seq} arrived as {head} (tail {tail})").into());
    }
    Ok(())
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
    /// The batch's total time.
    pub batch_total: Duration,
    /// Whether the child pinned itself to its CPU.
    pub child_pinned: bool,
    /// System calls per round trip, each side.
    pub system_calls: SystemCalls,
    /// CPU time per round trip, each side.
    pub cpu: CpuTime,
}

/// One side's way to exchange whole messages with the other, for round trips.
/// Both sides use the same kind: the parent sends then receives, the child
/// receives then sends.
trait Duplex {
    /// Sends `msg` (whole).
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Receives the next message, which must be `buf.len()` bytes long, into `buf`.
    fn recv(&mut self, buf: &mut [u8]) -> Result<()>;
}

/// The new histogram every round-trip run records into (1 ns to 60 s, three
/// significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Measures round trips of `size`-byte messages through `method` against a fresh
/// child pinned to `child_cpu`: `plan.warmup` untimed round trips, `plan.samples`
/// timed one by one into a histogram, `plan.batch` timed together. The clock
/// starts after the child has said it is ready.
///
/// The child is this program run again: its `main` must call
/// [`run_child_if_requested`] before anything else.
///
/// # Errors
/// If the method does not do round trips, the child cannot be set up or spawned,
/// fails, hangs, or an echo differs from its ping.
pub fn round_trips(
    method: Method,
    size: usize,
    plan: Plan,
    child_cpu: Option<usize>,
) -> Result<RoundTripRun> {
    let block = SharedBlock::create()?;
    let total = plan.warmup + plan.samples + plan.batch;
    let role = format!("rtt:{}", method.key());
    let mut command = child_command(&role, total, size, child_cpu, &block)?;
    let run = Run {
        block: &block,
        size,
        cleanup: Cleanup::default(),
    };
    match method {
        Method::ShmringBusySpin
        | Method::CAbiBusySpin
        | Method::CAbiTrySpin
        | Method::CppAbiBusySpin
        | Method::ShmringSpinThenPark
        | Method::ShmringPark => {
            let (duplex, channels) = shm::shmring_parent(method, &mut command)?;
            let child = ChildGuard::spawn(&mut command)?;
            drop(channels);
            run.drive(duplex, child, plan)
        }
        Method::Readiness | Method::ReadinessSymmetric => {
            let duplex = readiness::parent(method, &mut command)?;
            let child = ChildGuard::spawn(&mut command)?;
            run.drive(duplex, child, plan)
        }
        Method::AsyncPark | Method::AsyncSpin => {
            let (duplex, channels) = shm::shmring_parent(method, &mut command)?;
            let (tx, rx) = duplex.into_ends();
            let duplex = tokio_rows::ShmringAsync::new(method, tx, rx)?;
            let child = ChildGuard::spawn(&mut command)?;
            drop(channels);
            run.drive(duplex, child, plan)
        }
        Method::AsyncUnixStream => {
            let (ours, theirs) = tokio_rows::unix_pair(&mut command)?;
            let duplex = tokio_rows::UnixAsync::new(ours)?;
            let child = ChildGuard::spawn(&mut command)?;
            drop(theirs);
            run.drive(duplex, child, plan)
        }
        Method::Select8 | Method::Select1 => select::round_trips(run, method, &mut command, plan),
        Method::EventFd => {
            let pair = shm::EventFdPair::parent(&mut command)?;
            let child = ChildGuard::spawn(&mut command)?;
            run.drive(
                shm::EventFdDuplex::new(&block, size, true, pair)?,
                child,
                plan,
            )
        }
        Method::Broadcast => {
            let duplex = broadcast::parent(&mut command)?;
            let child = ChildGuard::spawn(&mut command)?;
            run.drive(duplex, child, plan)
        }
        Method::Rpc => {
            let (duplex, channels) = rpc::parent(&mut command)?;
            let child = ChildGuard::spawn(&mut command)?;
            drop(channels);
            run.drive(duplex, child, plan)
        }
        Method::ConnectionShm | Method::ConnectionSocket => {
            let rendezvous = connection::parent(method, &mut command)?;
            let mut child = ChildGuard::spawn(&mut command)?;
            let duplex = rendezvous.accept(&mut child)?;
            drop(rendezvous);
            run.drive(duplex, child, plan)
        }
        Method::CacheLine => {
            let child = ChildGuard::spawn(&mut command)?;
            run.drive(shm::CacheLine::parent(&block, size)?, child, plan)
        }
        Method::Futex => {
            let child = ChildGuard::spawn(&mut command)?;
            run.drive(shm::Futex::parent(&block, size)?, child, plan)
        }
        Method::Event | Method::Semaphore => {
            let pair = shm::SyncPair::parent(method, &mut command)?;
            let child = ChildGuard::spawn(&mut command)?;
            run.drive(shm::SyncDuplex::new(&block, size, true, pair)?, child, plan)
        }
        Method::UnixStream
        | Method::SeqPacket
        | Method::Tcp
        | Method::Pipe
        | Method::Fifo
        | Method::MessageQueue => {
            let prepared = kernel::prepare(method, size, &mut command)?;
            let mut child = ChildGuard::spawn(&mut command)?;
            let (duplex, cleanup) = prepared.connect(&mut child)?;
            Run { cleanup, ..run }.drive(duplex, child, plan)
        }
        Method::Iceoryx2 => {
            #[cfg(feature = "iceoryx2")]
            {
                iox::round_trips(run, &mut command, plan)
            }
            #[cfg(not(feature = "iceoryx2"))]
            {
                drop((run, command));
                Err("iceoryx2 is not in this build (build with --features iceoryx2)".into())
            }
        }
        Method::ShmringBatch | Method::BareRing | Method::Mpmc | Method::FanOut | Method::Kill => {
            Err(format!("{} does not do round trips", method.name()).into())
        }
    }
}

/// The parent's side of one run.
struct Run<'a> {
    block: &'a SharedBlock,
    size: usize,
    cleanup: Cleanup,
}

impl Run<'_> {
    /// Runs a round-trip plan against a spawned child.
    fn drive<D: Duplex>(
        self,
        mut duplex: D,
        mut child: ChildGuard,
        plan: Plan,
    ) -> Result<RoundTripRun> {
        let child_pinned = wait_ready(self.block.block(), &mut child)?;
        drop(self.cleanup);
        let mut ping = Stamp::new(self.size);
        let mut echo = vec![0u8; self.size];
        let mut seq = 0u64;
        let mut next = |duplex: &mut D| -> Result<()> {
            seq += 1;
            let msg = ping.stamp(seq);
            duplex.send(msg)?;
            duplex.recv(&mut echo)?;
            if echo != msg {
                return Err(format!("the echo of round trip {seq} differs from its ping").into());
            }
            Ok(())
        };
        let calls_before = shmring::system_calls_on_this_thread();
        let cpu_before = process_cpu_ns();
        for _ in 0..plan.warmup {
            next(&mut duplex)?;
        }
        let mut histogram = new_histogram();
        for _ in 0..plan.samples {
            let start = Instant::now();
            next(&mut duplex)?;
            histogram.saturating_record(start.elapsed().as_nanos() as u64);
        }
        let start = Instant::now();
        for _ in 0..plan.batch {
            next(&mut duplex)?;
        }
        let batch_total = start.elapsed();
        let calls = shmring::system_calls_on_this_thread() - calls_before;
        let cpu_ns = process_cpu_ns().saturating_sub(cpu_before);
        drop(duplex);
        child.reap()?;
        Ok(RoundTripRun {
            histogram,
            batch_mean_ns: batch_total.as_nanos() as f64 / plan.batch.max(1) as f64,
            batch_total,
            child_pinned,
            system_calls: SystemCalls::of_run(self.block.block(), calls, seq),
            cpu: CpuTime::of_run(self.block.block(), cpu_ns, seq),
        })
    }

    /// The parent's side of a throughput run: waits for the child, says go, and
    /// receives `messages` through `sink`, timing all but the first tenth.
    fn receive<S: Sink>(
        self,
        mut sink: S,
        mut child: ChildGuard,
        messages: u64,
    ) -> Result<StreamRun> {
        let shared = self.block.block();
        let child_pinned = wait_ready(shared, &mut child)?;
        drop(self.cleanup);
        let warm = messages / 10;
        let mut check = Check {
            size: self.size,
            next: 0,
            end: messages,
        };
        let mut patience = Patience::new("the next message");
        let calls_before = shmring::system_calls_on_this_thread();
        let cpu_before = process_cpu_ns();
        let mut start: Option<(Instant, u64)> = (warm == 0).then(|| (Instant::now(), 0));
        // Release: nothing to publish but the start; kept symmetric with the Acquire.
        shared.go.store(1, Ordering::Release);
        while check.next < messages {
            if sink.recv_some(&mut check)? == 0 {
                patience.tick()?;
                spin_loop();
                continue;
            }
            patience.reset();
            if start.is_none() && check.next >= warm {
                start = Some((Instant::now(), check.next));
            }
        }
        let (start, from) = start.expect("set at the warm-up's end");
        let elapsed = start.elapsed();
        let calls = shmring::system_calls_on_this_thread() - calls_before;
        let cpu_ns = process_cpu_ns().saturating_sub(cpu_before);
        if check.next != messages {
            return Err(format!("received {} of {messages} messages", check.next).into());
        }
        drop(sink);
        child.reap()?;
        Ok(StreamRun {
            elapsed,
            messages: messages - from,
            child_pinned,
            system_calls: SystemCalls::of_run(shared, calls, messages),
            cpu: CpuTime::of_run(shared, cpu_ns, messages),
        })
    }
}

// ---------------------------------------------------------------------------
// Throughput

/// One run of a throughput method.
#[derive(Debug, Clone, Copy)]
pub struct StreamRun {
    /// From the end of the warm-up (the first tenth of the messages) to the last
    /// message received.
    pub elapsed: Duration,
    /// Messages received in that time.
    pub messages: u64,
    /// Whether the child pinned itself to its CPU.
    pub child_pinned: bool,
    /// System calls per message, each side.
    pub system_calls: SystemCalls,
    /// CPU time per message, each side.
    pub cpu: CpuTime,
}

/// The system calls shmring counted per message (throughput) or round trip, on
/// each side's thread, over the whole run (warm-up included).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemCalls {
    /// The parent's side (the receiver of a throughput run).
    pub parent: f64,
    /// The child's side (the sender of a throughput run).
    pub child: f64,
}

impl SystemCalls {
    /// The parent's `calls` and the child's (from the block, stored before it
    /// exited: read after the reap) over `messages`.
    fn of_run(block: &Block, calls: u64, messages: u64) -> Self {
        // Acquire: pairs with the child's Release store (the reap orders it too).
        let child = block.child_system_calls.load(Ordering::Acquire);
        let n = messages.max(1) as f64;
        Self {
            parent: calls as f64 / n,
            child: child as f64 / n,
        }
    }
}

/// CPU time (user and system, every thread of the process: getrusage
/// `RUSAGE_SELF`) per message (throughput) or round trip, in ns, on each side,
/// over the whole run (warm-up included). A side that waits parked uses little;
/// one that spins, up to the whole wall time.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    /// The parent's process (the receiver of a throughput run).
    pub parent: f64,
    /// The child's process (the sender of a throughput run).
    pub child: f64,
}

impl CpuTime {
    /// The parent's `cpu_ns` and the child's (from the block, stored before it
    /// exited: read after the reap) over `messages`.
    fn of_run(block: &Block, cpu_ns: u64, messages: u64) -> Self {
        // Acquire: pairs with the child's Release store (the reap orders it too).
        let child = block.child_cpu_ns.load(Ordering::Acquire);
        let n = messages.max(1) as f64;
        Self {
            parent: cpu_ns as f64 / n,
            child: child as f64 / n,
        }
    }
}

/// The CPU time this process has used so far (user and system, all its
/// threads), in ns; 0 if `getrusage` fails.
fn process_cpu_ns() -> u64 {
    // SAFETY: rusage is plain integers; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live rusage the call fills.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == -1 {
        return 0;
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

impl StreamRun {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// The receiver's check of a stream: every message is `size` bytes and carries
/// the next sequence number.
struct Check {
    size: usize,
    next: u64,
    /// The number of messages of the run (a sink that waits for several at once
    /// waits for none past it).
    end: u64,
}

impl Check {
    #[inline]
    fn check(&mut self, msg: &[u8]) -> Result<()> {
        check_stamp(msg, self.size, self.next)?;
        self.next += 1;
        Ok(())
    }
}

/// The sending side of a throughput method (the child).
trait Source {
    /// Sends message `next` (and for a batching source, more up to `end`) if there
    /// is room now (a blocking source waits); returns how many went.
    fn send_from(&mut self, stamp: &mut Stamp, next: u64, end: u64) -> Result<u64>;
}

/// The receiving side of a throughput method (the parent).
trait Sink {
    /// Receives what is there now (a blocking sink waits for something), checking
    /// each whole message with `check`; returns how many whole messages came.
    fn recv_some(&mut self, check: &mut Check) -> Result<u64>;
}

/// Moves `messages` messages of `size` bytes (numbered 0, 1, …) from a fresh
/// child pinned to `child_cpu` to this process through `method`, checking every
/// one. The clock runs from the end of the warm-up (the first tenth) to the last
/// message received. As for [`round_trips`], `main` must call
/// [`run_child_if_requested`] first.
///
/// # Errors
/// If the method does not stream, the child cannot be set up or spawned, fails,
/// hangs, or a message is wrong or out of order.
pub fn stream(
    method: Method,
    size: usize,
    messages: u64,
    child_cpu: Option<usize>,
) -> Result<StreamRun> {
    let block = SharedBlock::create()?;
    let role = format!("stream:{}", method.key());
    let mut command = child_command(&role, messages, size, child_cpu, &block)?;
    let run = Run {
        block: &block,
        size,
        cleanup: Cleanup::default(),
    };
    match method {
        Method::ShmringBusySpin | Method::ShmringBatch => {
            let channel = shm::stream_channel(size)?.create()?;
            channel.pass_to(&mut command, FD_A_VAR);
            let rx = channel.receiver()?;
            let child = ChildGuard::spawn(&mut command)?;
            drop(channel);
            if method == Method::ShmringBatch {
                run.receive(shm::ShmringBatchSink(rx), child, messages)
            } else {
                run.receive(shm::ShmringSink::new(rx, size), child, messages)
            }
        }
        Method::Mpmc => mpmc::stream(&block, size, messages),
        Method::AsyncPark => {
            let channel = shm::stream_channel(size)?.create()?;
            channel.pass_to(&mut command, FD_A_VAR);
            let sink = tokio_rows::ShmringAsyncSink::new(channel.receiver()?, size)?;
            let child = ChildGuard::spawn(&mut command)?;
            drop(channel);
            run.receive(sink, child, messages)
        }
        Method::AsyncUnixStream => {
            let (ours, theirs) = tokio_rows::unix_pair(&mut command)?;
            let sink = tokio_rows::UnixAsyncSink::new(ours, size)?;
            let child = ChildGuard::spawn(&mut command)?;
            drop(theirs);
            run.receive(sink, child, messages)
        }
        Method::BareRing => {
            let child = ChildGuard::spawn(&mut command)?;
            if size == SMALL {
                let rx = crate::shared_bare::Receiver::new(&block.block().ring);
                run.receive(shm::BareSink(rx), child, messages)
            } else {
                run.receive(shm::BulkSink::new(&block, size)?, child, messages)
            }
        }
        Method::UnixStream
        | Method::SeqPacket
        | Method::Tcp
        | Method::Pipe
        | Method::Fifo
        | Method::MessageQueue => {
            let prepared = kernel::prepare(method, size, &mut command)?;
            let mut child = ChildGuard::spawn(&mut command)?;
            let (conn, cleanup) = prepared.connect(&mut child)?;
            let sink = kernel::sink(conn, size);
            Run { cleanup, ..run }.receive(sink, child, messages)
        }
        Method::ShmringSpinThenPark
        | Method::CAbiBusySpin
        | Method::CAbiTrySpin
        | Method::CppAbiBusySpin
        | Method::ShmringPark
        | Method::Readiness
        | Method::ReadinessSymmetric
        | Method::Iceoryx2
        | Method::Futex
        | Method::EventFd
        | Method::Kill
        | Method::FanOut
        | Method::Event
        | Method::Semaphore
        | Method::Rpc
        | Method::ConnectionShm
        | Method::ConnectionSocket
        | Method::Broadcast
        | Method::AsyncSpin
        | Method::Select8
        | Method::Select1
        | Method::CacheLine => {
            Err(format!("{} is measured in round trips only", method.name()).into())
        }
    }
}

// ---------------------------------------------------------------------------
// The child

/// If this process was started as a child of the comparison ([`CHILD_VAR`] set),
/// serves its method and exits; otherwise returns at once.
pub fn run_child_if_requested() {
    let Ok(role) = std::env::var(CHILD_VAR) else {
        return;
    };
    let result = if role.starts_with(kill::ROLE_PREFIX) {
        kill::child_main(&role)
    } else {
        child_main(&role)
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            // On a line of its own: the parent's progress line may be open.
            eprintln!("\nshmring-benches child ({role}): {e}");
            1
        }
    };
    std::process::exit(code);
}

/// The child's counts at the start of its run: shmring's system calls on this
/// thread and the process's CPU time.
#[derive(Clone, Copy)]
struct Costs {
    calls: u64,
    cpu_ns: u64,
}

impl Costs {
    fn now() -> Self {
        Self {
            calls: shmring::system_calls_on_this_thread(),
            cpu_ns: process_cpu_ns(),
        }
    }
}

/// What the child knows about its run.
struct ChildRun<'a> {
    block: &'a Block,
    pinned: bool,
    size: usize,
    count: u64,
}

impl ChildRun<'_> {
    fn ready(&self) {
        // Release: everything set up before is visible to a parent that sees it.
        self.block.child_status.store(
            if self.pinned { PINNED } else { NOT_PINNED },
            Ordering::Release,
        );
    }

    /// Echoes `count` messages, checking that they arrive in sequence.
    fn serve<D: Duplex>(&self, mut duplex: D) -> Result<()> {
        self.ready();
        let before = Costs::now();
        let mut buf = vec![0u8; self.size];
        for seq in 1..=self.count {
            duplex.recv(&mut buf)?;
            check_stamp(&buf, self.size, seq)?;
            duplex.send(&buf)?;
            progress(seq);
        }
        self.costs_since(before);
        Ok(())
    }

    /// Stores the system calls counted on this thread and the CPU time this
    /// process used since `before`, for the parent to read after the reap.
    fn costs_since(&self, before: Costs) {
        let calls = shmring::system_calls_on_this_thread() - before.calls;
        let cpu_ns = process_cpu_ns().saturating_sub(before.cpu_ns);
        // Release: pairs with the parent's Acquire loads in `SystemCalls::of_run`
        // and `CpuTime::of_run`.
        self.block
            .child_system_calls
            .store(calls, Ordering::Release);
        self.block.child_cpu_ns.store(cpu_ns, Ordering::Release);
    }

    /// Says ready, waits for go, sends `count` messages.
    fn send_all<S: Source>(&self, mut source: S) -> Result<()> {
        self.ready();
        let mut patience = Patience::new("the parent's go");
        while self.block.go.load(Ordering::Acquire) == 0 {
            patience.tick()?;
            spin_loop();
        }
        let mut patience = Patience::new("room to send");
        let before = Costs::now();
        let mut stamp = Stamp::new(self.size);
        let mut next = 0;
        while next < self.count {
            let sent = source.send_from(&mut stamp, next, self.count)?;
            if sent == 0 {
                patience.tick()?;
                spin_loop();
            } else {
                next += sent;
                progress(next);
                patience.reset();
            }
        }
        self.costs_since(before);
        Ok(())
    }
}

fn child_main(role: &str) -> Result<()> {
    let (kind, key) = role
        .split_once(':')
        .ok_or_else(|| format!("malformed role {role:?}"))?;
    let method = Method::by_key(key).ok_or_else(|| format!("unknown method {key:?}"))?;
    let round_trip = match kind {
        "rtt" => true,
        "stream" => false,
        _ => return Err(format!("malformed role {role:?}").into()),
    };
    let pinned = match env_number::<usize>(CPU_VAR) {
        Ok(cpu) => pin_to(cpu).is_ok(),
        Err(_) => false,
    };
    let count: u64 = env_number(COUNT_VAR)?;
    let size: usize = env_number(SIZE_VAR)?;
    let shared = SharedBlock::from_fd(inherited(BLOCK_VAR)?)?;
    let run = ChildRun {
        block: shared.block(),
        pinned,
        size,
        count,
    };
    // shmring's `from_env` changes the environment: open the channels before the
    // watchdog thread starts.
    let shmring = match method {
        Method::ShmringBusySpin
        | Method::ShmringSpinThenPark
        | Method::ShmringPark
        | Method::AsyncPark
        | Method::AsyncSpin
            if round_trip =>
        {
            Some(shm::ShmringEnds::Duplex(Box::new(shm::shmring_child(
                method,
            )?)))
        }
        Method::ShmringBusySpin | Method::ShmringBatch | Method::AsyncPark if !round_trip => Some(
            shm::ShmringEnds::Sender(Box::new(shm::stream_child_sender(size)?)),
        ),
        _ => None,
    };
    let readiness = match method {
        Method::Readiness | Method::ReadinessSymmetric if round_trip => {
            Some(readiness::child(method)?)
        }
        _ => None,
    };
    let broadcast = match method {
        Method::Broadcast if round_trip => Some(broadcast::child()?),
        _ => None,
    };
    let select_ends = match method {
        Method::Select8 | Method::Select1 if round_trip => Some(select::child_ends(method)?),
        _ => None,
    };
    let rpc_server = match method {
        Method::Rpc if round_trip => Some(rpc::child()?),
        _ => None,
    };
    let c_peer = match method {
        Method::CAbiBusySpin if round_trip => Some(c_peer::child(c_peer::Peer::CBlocking)?),
        Method::CAbiTrySpin if round_trip => Some(c_peer::child(c_peer::Peer::CTry)?),
        Method::CppAbiBusySpin if round_trip => Some(c_peer::child(c_peer::Peer::Cpp)?),
        _ => None,
    };
    // Connecting waits for the parent's accept (bounded by PATIENCE).
    let connection = match method {
        Method::ConnectionShm | Method::ConnectionSocket if round_trip => {
            Some(connection::child(method)?)
        }
        _ => None,
    };
    start_watchdog(role.to_owned());
    if let Some(server) = rpc_server {
        return rpc::serve(&run, server);
    }
    if let Some(ends) = c_peer {
        return c_peer::serve(&run, &ends);
    }
    if let Some(duplex) = connection {
        return run.serve(duplex);
    }
    if let Some(duplex) = readiness {
        return run.serve(duplex);
    }
    if let Some(duplex) = broadcast {
        return run.serve(duplex);
    }
    if let Some(ends) = select_ends {
        return select::serve(&run, ends);
    }
    match (method, shmring) {
        (Method::AsyncPark | Method::AsyncSpin, Some(shm::ShmringEnds::Duplex(duplex))) => {
            let (tx, rx) = duplex.into_ends();
            run.serve(tokio_rows::ShmringAsync::new(method, tx, rx)?)
        }
        (Method::AsyncPark, Some(shm::ShmringEnds::Sender(tx))) => {
            run.send_all(tokio_rows::ShmringAsyncSource::new(*tx)?)
        }
        (_, Some(shm::ShmringEnds::Duplex(duplex))) => run.serve(*duplex),
        (Method::ShmringBatch, Some(shm::ShmringEnds::Sender(tx))) => {
            run.send_all(shm::ShmringBatchSource(*tx))
        }
        (_, Some(shm::ShmringEnds::Sender(tx))) => run.send_all(shm::ShmringSource(*tx)),
        (Method::CacheLine, None) if round_trip => run.serve(shm::CacheLine::child(&shared, size)?),
        (Method::Futex, None) if round_trip => run.serve(shm::Futex::child(&shared, size)?),
        (Method::EventFd, None) if round_trip => {
            let pair = shm::EventFdPair::child()?;
            run.serve(shm::EventFdDuplex::new(&shared, size, false, pair)?)
        }
        (Method::Event | Method::Semaphore, None) if round_trip => {
            let pair = shm::SyncPair::child(method)?;
            run.serve(shm::SyncDuplex::new(&shared, size, false, pair)?)
        }
        (Method::Mpmc, None) if !round_trip => mpmc::child(&run),
        (Method::FanOut, None) if !round_trip => fanout::child(&run),
        (Method::BareRing, None) if !round_trip => {
            if size == SMALL {
                run.send_all(shm::BareSource(crate::shared_bare::Sender::new(
                    &run.block.ring,
                )))
            } else {
                run.send_all(shm::BulkSource::new(&shared, size)?)
            }
        }
        (
            Method::UnixStream
            | Method::SeqPacket
            | Method::Tcp
            | Method::Pipe
            | Method::Fifo
            | Method::MessageQueue,
            None,
        ) => {
            let conn = kernel::child_conn(method)?;
            if round_trip {
                run.serve(conn)
            } else {
                run.send_all(kernel::KernelSource(conn))
            }
        }
        (Method::AsyncUnixStream, None) => {
            let fd = inherited(FD_A_VAR)?;
            if round_trip {
                run.serve(tokio_rows::UnixAsync::new(fd)?)
            } else {
                run.send_all(tokio_rows::UnixAsyncSource::new(fd)?)
            }
        }
        #[cfg(feature = "iceoryx2")]
        (Method::Iceoryx2, None) if round_trip => iox::serve(&run),
        _ => Err(format!("no child role {role:?} in this build").into()),
    }
}

// ---------------------------------------------------------------------------
// Criterion

/// For criterion's `iter_custom`: the time of `iters` round trips of `size`-byte
/// messages through `method` against a fresh child (after 100 untimed ones).
///
/// # Errors
/// As [`round_trips`].
pub fn round_trip_batch(
    method: Method,
    size: usize,
    iters: u64,
    child_cpu: Option<usize>,
) -> Result<Duration> {
    let plan = Plan {
        warmup: 100,
        samples: 0,
        batch: iters,
    };
    Ok(round_trips(method, size, plan, child_cpu)?.batch_total)
}
