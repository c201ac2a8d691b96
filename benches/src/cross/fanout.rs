//! The broadcast fan-out: one publisher process (the parent) to 1, 2 or 4
//! subscriber processes (children) through one shmring broadcast topic, 8-byte
//! messages published in batches, gated and lossy. Report only: no target on a
//! 2-CPU machine.
//!
//! The topic is a memfd (64 KiB of data region), passed to every child, whose
//! subscriber joins at [`Start::Newest`] before the go: each one is due every
//! message, numbered 0, 1, … in its 8 bytes. The parent publishes them
//! [`BATCH`] at a time with [`Publisher::try_send_batch`]; a gated publisher
//! that finds the topic full waits for room with
//! [`Publisher::send_batch_deadline`] (by its wait strategy). Every process uses
//! the default [`WaitStrategy::SpinThenPark`](shmring::WaitStrategy): on two CPUs
//! three or more processes cannot all spin. A gated topic's cut-off bound is
//! [`PATIENCE`], so that a subscriber the scheduler holds off is waited for, not
//! cut off.
//!
//! Every subscriber checks what it receives before a rate is reported: each
//! message is the number due (in order, none twice), a lossy subscriber's gaps
//! are exactly the `missed` counts of the `Lagged` errors it got, and it sums
//! what it received and what it missed. The parent checks each subscriber's
//! report: received + missed = published, the two sums together the sum of
//! every number published, and nothing missed on a gated topic.
//!
//! Placement: the parent stays where the comparison pinned it. With one
//! subscriber, the child is pinned to the other CPU (as every two-process row);
//! with more, the children may run on any CPU the comparison was allowed (not
//! only the parent's, whose affinity they would inherit), and each reports the
//! CPU it was last on.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shmring::broadcast::{BroadcastBuilder, Policy, Publisher, Start, Subscriber, Topic};
use shmring::{RecvError, SegmentBuilder, TrySendError};

use super::mpmc::{pipe, read_with_patience, wait_for_go};
use super::{
    ChildGuard, ChildRun, FD_A_VAR, FD_B_VAR, PATIENCE, Result, SMALL, SharedBlock, allowed_cpus,
    child_command, env_number, env_string, inherit, inherited, let_child_run_on, progress,
};

/// The child's subscriber number.
const PART_VAR: &str = "SHMRING_BENCH_FANOUT_PART";
/// What the child subscribes through: `shmring` or `iceoryx2`.
const PEER_VAR: &str = "SHMRING_BENCH_FANOUT_PEER";
/// The row, for iceoryx2's children: `<policy>:<subscribers>`.
const ROW_VAR: &str = "SHMRING_BENCH_FANOUT_ROW";
/// Bytes of the topic's data region.
pub const CAPACITY: usize = 1 << 16;
/// Messages a batch carries.
pub const BATCH: usize = crate::BATCH;
/// The most subscribers a row has (the topic's slots).
const MAX_SUBSCRIBERS: usize = 4;

/// What carries the fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A shmring broadcast topic.
    Shmring,
    /// An iceoryx2 publish-subscribe service (cargo feature `iceoryx2`).
    Iceoryx2,
}

/// One configuration of the fan-out: what carries it, a policy and a number of
/// subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// shmring or iceoryx2.
    pub peer: Peer,
    /// The topic's policy (iceoryx2: gated is backpressure, lossy safe overflow).
    pub policy: Policy,
    /// Subscriber processes.
    pub subscribers: usize,
}

impl Row {
    /// Every row this build can run, in report order: shmring's, then iceoryx2's
    /// (with the feature).
    pub fn all() -> Vec<Self> {
        let peers: &[Peer] = if cfg!(feature = "iceoryx2") {
            &[Peer::Shmring, Peer::Iceoryx2]
        } else {
            &[Peer::Shmring]
        };
        let mut rows = Vec::new();
        for &peer in peers {
            for policy in [Policy::Gated, Policy::Lossy] {
                for subscribers in [1, 2, 4] {
                    rows.push(Self {
                        peer,
                        policy,
                        subscribers,
                    });
                }
            }
        }
        rows
    }

    /// The name of what carries it, in reports.
    pub fn peer_name(self) -> &'static str {
        match self.peer {
            Peer::Shmring => "shmring broadcast",
            Peer::Iceoryx2 => "iceoryx2 pub-sub",
        }
    }

    /// The policy's name.
    pub fn policy_name(self) -> &'static str {
        match self.policy {
            Policy::Gated => "gated",
            Policy::Lossy => "lossy",
            Policy::Strict => "strict",
        }
    }

    /// Short name, for progress and the JSON: `gated-2`, `iceoryx2-gated-2`.
    pub fn key(self) -> String {
        let prefix = match self.peer {
            Peer::Shmring => "",
            Peer::Iceoryx2 => "iceoryx2-",
        };
        format!("{prefix}{}-{}", self.policy_name(), self.subscribers)
    }
}

/// What one subscriber received, and where it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRun {
    /// Messages received (each checked).
    pub received: u64,
    /// Messages missed: the sum of the `missed` counts of its `Lagged` errors.
    pub missed: u64,
    /// From the go (as the subscriber saw it) to its last message.
    pub elapsed: Duration,
    /// Whether it was pinned (to the comparison's child CPU).
    pub pinned: bool,
    /// The CPU it was on at its end (`sched_getcpu`), if known.
    pub last_cpu: Option<usize>,
    /// The CPUs it was allowed to run on (`sched_getaffinity`), the first 64.
    pub allowed: Vec<usize>,
}

impl SubscriberRun {
    /// Messages received per second.
    pub fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64()
    }
}

/// One run of a row.
#[derive(Debug, Clone)]
pub struct FanOutRun {
    /// Messages published.
    pub messages: u64,
    /// From the go to the last batch published.
    pub publishing: Duration,
    /// The publisher's CPU at its end (`sched_getcpu`), if known.
    pub publisher_cpu: Option<usize>,
    /// Each subscriber's, in subscriber order.
    pub subscribers: Vec<SubscriberRun>,
}

impl FanOutRun {
    /// Messages published per second.
    pub fn publisher_rate(&self) -> f64 {
        self.messages as f64 / self.publishing.as_secs_f64()
    }
}

/// The topic's builder (the policy matters to `create` only).
fn builder(policy: Policy) -> BroadcastBuilder {
    BroadcastBuilder::memfd()
        .capacity(CAPACITY)
        .policy(policy)
        .subscriber_slots(MAX_SUBSCRIBERS)
        .cut_off_after(PATIENCE)
        .prefault(true)
}

/// The CPU the calling thread is on now.
fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes nothing and touches no memory of ours.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// Σ `from..from + n`, wrapping.
fn range_sum(from: u64, n: u64) -> u64 {
    // n·from + n(n−1)/2; one of n, n−1 is even.
    let half = if n % 2 == 0 {
        (n / 2).wrapping_mul(n.wrapping_sub(1))
    } else {
        n.wrapping_mul(n.wrapping_sub(1) / 2)
    };
    n.wrapping_mul(from).wrapping_add(half)
}

/// A subscriber's tally: what it received and missed, and their sums.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    received: u64,
    missed: u64,
    sum: u64,
    missed_sum: u64,
}

impl Tally {
    /// Message `seq` received.
    pub(super) fn note_received(&mut self, seq: u64) {
        self.received += 1;
        self.sum = self.sum.wrapping_add(seq);
    }

    /// Messages `from..from + n` missed.
    pub(super) fn note_missed(&mut self, from: u64, n: u64) {
        self.missed += n;
        self.missed_sum = self.missed_sum.wrapping_add(range_sum(from, n));
    }
}

/// Receives messages 0..`count`, checking each: a message must be the number
/// due, and a `Lagged` error moves the number due on by its `missed` count.
fn receive(rx: &mut Subscriber, count: u64) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut next = 0u64;
    let mut buf = [0u8; SMALL];
    while next < count {
        match rx.recv(&mut buf) {
            Ok(SMALL) => {
                let seq = u64::from_le_bytes(buf);
                if seq != next {
                    return Err(format!("message {seq} where {next} was due").into());
                }
                tally.note_received(seq);
                next += 1;
            }
            Ok(n) => return Err(format!("a message of {n} bytes, expected {SMALL}").into()),
            Err(RecvError::Lagged { missed }) => {
                if missed == 0 || missed > count - next {
                    return Err(format!(
                        "lagged by {missed} at message {next} of {count}: out of range"
                    )
                    .into());
                }
                tally.note_missed(next, missed);
                next += missed;
            }
            Err(e) => return Err(e.into()),
        }
        progress(next);
    }
    Ok(tally)
}

/// A subscriber's report on the pipe: its number, its tally, its time and place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Report {
    index: u64,
    tally: Tally,
    elapsed_ns: u64,
    pinned: bool,
    last_cpu: Option<usize>,
    /// Bit `i`: allowed on CPU `i`.
    allowed: u64,
}

impl Report {
    const LEN: usize = 72;

    fn to_bytes(self) -> [u8; Self::LEN] {
        let words = [
            self.index,
            self.tally.received,
            self.tally.missed,
            self.tally.sum,
            self.tally.missed_sum,
            self.elapsed_ns,
            u64::from(self.pinned),
            self.last_cpu.map_or(0, |c| c as u64 + 1),
            self.allowed,
        ];
        let mut b = [0u8; Self::LEN];
        for (chunk, w) in b.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    fn from_bytes(b: [u8; Self::LEN]) -> Self {
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Self {
            index: w(0),
            tally: Tally {
                received: w(1),
                missed: w(2),
                sum: w(3),
                missed_sum: w(4),
            },
            elapsed_ns: w(5),
            pinned: w(6) != 0,
            last_cpu: w(7).checked_sub(1).map(|c| c as usize),
            allowed: w(8),
        }
    }
}

/// Publishes messages 0..`count`, [`BATCH`] at a time.
fn publish(tx: &mut Publisher, count: u64) -> Result<()> {
    let mut words = [[0u8; SMALL]; BATCH];
    let mut next = 0u64;
    while next < count {
        let n = (count - next).min(BATCH as u64) as usize;
        for (i, word) in words[..n].iter_mut().enumerate() {
            *word = (next + i as u64).to_le_bytes();
        }
        let refs: [&[u8]; BATCH] = std::array::from_fn(|i| &words[i][..]);
        let batch = &refs[..n];
        let sent = match tx.try_send_batch(batch) {
            Ok(sent) => sent,
            // Gated: wait for room (by the wait strategy), then send the rest.
            Err(TrySendError::Full { .. }) => {
                tx.send_batch_deadline(batch, Some(Instant::now() + PATIENCE))?
            }
            Err(e) => return Err(e.into()),
        };
        next += sent as u64;
    }
    Ok(())
}

/// Runs `row`: `messages` 8-byte messages from this process to its subscriber
/// children, every one checked. With one subscriber, the child is pinned to
/// `child_cpu`; more may run on any of `cpus`.
///
/// # Errors
/// If a child cannot be spawned or fails, a subscriber got a wrong, missing or
/// extra message, or its report does not add up.
pub fn run(row: Row, messages: u64, child_cpu: Option<usize>, cpus: &[usize]) -> Result<FanOutRun> {
    if !(1..=MAX_SUBSCRIBERS).contains(&row.subscribers) {
        return Err(format!("{} subscribers: 1 to {MAX_SUBSCRIBERS}", row.subscribers).into());
    }
    let block = SharedBlock::create()?;
    let mut tx = Tx::create(row)?;
    let (report_rx, report_tx) = pipe()?;
    let cpu = if row.subscribers == 1 {
        child_cpu
    } else {
        None
    };
    let mut children = Vec::new();
    for index in 0..row.subscribers {
        let mut command = child_command("stream:fan-out", messages, SMALL, cpu, &block)?;
        command.env(PART_VAR, index.to_string());
        command.env(
            ROW_VAR,
            format!("{}:{}", row.policy_name(), row.subscribers),
        );
        if cpu.is_none() {
            let_child_run_on(&mut command, cpus);
        }
        tx.pass_to(&mut command);
        inherit(&mut command, report_tx.as_fd(), FD_B_VAR);
        children.push(ChildGuard::spawn(&mut command)?);
    }
    drop(report_tx);
    tx.spawned();
    let mut reports = File::from(report_rx);
    let mut ready = vec![0u8; row.subscribers];
    read_with_patience(&mut reports, &mut ready, &mut children)?;
    let joined = tx.subscribers();
    if joined != row.subscribers {
        return Err(format!("{joined} subscribers joined, expected {}", row.subscribers).into());
    }
    let start = Instant::now();
    // Release: nothing to publish but the start.
    block.block().go.store(1, Ordering::Release);
    tx.publish(messages)?;
    let publishing = start.elapsed();
    let publisher_cpu = current_cpu();
    let mut got: Vec<Option<SubscriberRun>> = vec![None; row.subscribers];
    let total = range_sum(0, messages);
    for _ in 0..row.subscribers {
        let mut bytes = [0u8; Report::LEN];
        read_with_patience(&mut reports, &mut bytes, &mut children)?;
        let report = Report::from_bytes(bytes);
        let Tally {
            received,
            missed,
            sum,
            missed_sum,
        } = report.tally;
        let index = report.index as usize;
        let slot = got
            .get_mut(index)
            .filter(|s| s.is_none())
            .ok_or_else(|| format!("a report from subscriber {index}, twice or unknown"))?;
        if received + missed != messages || sum.wrapping_add(missed_sum) != total {
            return Err(format!(
                "subscriber {index}: {received} received and {missed} missed of {messages}, \
                 sums {sum} + {missed_sum}, expected {total}"
            )
            .into());
        }
        if row.policy == Policy::Gated && missed != 0 {
            return Err(format!("subscriber {index} of a gated topic missed {missed}").into());
        }
        *slot = Some(SubscriberRun {
            received,
            missed,
            elapsed: Duration::from_nanos(report.elapsed_ns.max(1)),
            pinned: report.pinned,
            last_cpu: report.last_cpu,
            allowed: (0..64).filter(|i| report.allowed >> i & 1 == 1).collect(),
        });
    }
    drop(tx);
    for child in children {
        child.reap()?;
    }
    Ok(FanOutRun {
        messages,
        publishing,
        publisher_cpu,
        subscribers: got
            .into_iter()
            .map(|s| s.expect("every one reported"))
            .collect(),
    })
}

/// The publishing side of a row.
enum Tx {
    Shmring {
        /// Until the children are spawned.
        topic: Option<Topic>,
        publisher: Box<Publisher>,
        /// Its sequence number before the first message.
        first: u64,
    },
    #[cfg(feature = "iceoryx2")]
    Iceoryx2 {
        publisher: Box<super::iox_fanout::IoxPublisher>,
        name: String,
    },
}

impl Tx {
    fn create(row: Row) -> Result<Self> {
        match row.peer {
            Peer::Shmring => {
                let topic = builder(row.policy).create()?;
                let publisher = topic.publisher()?;
                Ok(Self::Shmring {
                    first: publisher.next_seq(),
                    topic: Some(topic),
                    publisher: Box::new(publisher),
                })
            }
            #[cfg(feature = "iceoryx2")]
            Peer::Iceoryx2 => {
                let (publisher, name) =
                    super::iox_fanout::IoxPublisher::create(row.policy, row.subscribers)?;
                Ok(Self::Iceoryx2 {
                    publisher: Box::new(publisher),
                    name,
                })
            }
            #[cfg(not(feature = "iceoryx2"))]
            Peer::Iceoryx2 => {
                Err("iceoryx2 is not in this build (build with --features iceoryx2)".into())
            }
        }
    }

    /// Lets the child of `command` subscribe.
    fn pass_to(&self, command: &mut std::process::Command) {
        command.env(PEER_VAR, self.peer_key());
        match self {
            Self::Shmring { topic, .. } => {
                if let Some(topic) = topic {
                    topic.pass_to(command, FD_A_VAR);
                }
            }
            #[cfg(feature = "iceoryx2")]
            Self::Iceoryx2 { name, .. } => super::iox_fanout::pass_to(command, name),
        }
    }

    fn peer_key(&self) -> &'static str {
        match self {
            Self::Shmring { .. } => "shmring",
            #[cfg(feature = "iceoryx2")]
            Self::Iceoryx2 { .. } => "iceoryx2",
        }
    }

    /// Every child is spawned: the topic's handle can go.
    fn spawned(&mut self) {
        match self {
            Self::Shmring { topic, .. } => *topic = None,
            #[cfg(feature = "iceoryx2")]
            Self::Iceoryx2 { .. } => {}
        }
    }

    fn subscribers(&self) -> usize {
        match self {
            Self::Shmring { publisher, .. } => publisher.subscribers() as usize,
            #[cfg(feature = "iceoryx2")]
            Self::Iceoryx2 { publisher, .. } => publisher.subscribers(),
        }
    }

    /// Publishes messages 0..`count` and checks the publisher's count.
    fn publish(&mut self, count: u64) -> Result<()> {
        match self {
            Self::Shmring {
                publisher, first, ..
            } => {
                publish(publisher, count)?;
                let published = publisher.next_seq() - *first;
                if published != count {
                    return Err(format!(
                        "the publisher counts {published} messages, expected {count}"
                    )
                    .into());
                }
                Ok(())
            }
            #[cfg(feature = "iceoryx2")]
            Self::Iceoryx2 { publisher, .. } => publisher.publish(count),
        }
    }
}

/// A subscriber child: join, say ready, wait for the go, receive and check every
/// message, report.
pub(super) fn child(run: &ChildRun<'_>) -> Result<()> {
    let index: u64 = env_number(PART_VAR)?;
    let peer = env_string(PEER_VAR)?;
    let mut pipe = File::from(inherited(FD_B_VAR)?);
    let (tally, elapsed) = match peer.as_str() {
        "shmring" => {
            // SAFETY: the parent passed this topic's two descriptors to this
            // child; the variable is taken once.
            let topic = unsafe { builder(Policy::Lossy).from_env(FD_A_VAR) }?;
            let mut rx = topic.subscriber(Start::Newest)?;
            drop(topic);
            wait_for_go(run, &mut pipe)?;
            let start = Instant::now();
            let tally = receive(&mut rx, run.count)?;
            (tally, start.elapsed())
        }
        #[cfg(feature = "iceoryx2")]
        "iceoryx2" => {
            let row = env_string(ROW_VAR)?;
            let (policy, subscribers) = row
                .split_once(':')
                .and_then(|(p, n)| {
                    let policy = match p {
                        "gated" => Policy::Gated,
                        "lossy" => Policy::Lossy,
                        _ => return None,
                    };
                    Some((policy, n.parse().ok()?))
                })
                .ok_or_else(|| format!("${ROW_VAR}: malformed {row:?}"))?;
            let mut rx = super::iox_fanout::IoxSubscriber::open(policy, subscribers)?;
            wait_for_go(run, &mut pipe)?;
            let start = Instant::now();
            let tally = rx.receive(run.count)?;
            (tally, start.elapsed())
        }
        _ => return Err(format!("${PEER_VAR}: no peer {peer:?} in this build").into()),
    };
    let report = Report {
        index,
        tally,
        elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        pinned: run.pinned,
        last_cpu: current_cpu(),
        allowed: allowed_cpus()?
            .into_iter()
            .filter(|&c| c < 64)
            .fold(0, |mask, c| mask | 1 << c),
    };
    pipe.write_all(&report.to_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_sums() {
        for (from, n) in [(0, 0), (0, 1), (0, 10), (5, 7), (1000, 1001)] {
            assert_eq!(
                range_sum(from, n),
                (from..from + n).sum::<u64>(),
                "{from} {n}"
            );
        }
    }

    #[test]
    fn reports_round_trip_through_bytes() {
        let report = Report {
            index: 3,
            tally: Tally {
                received: 10,
                missed: 5,
                sum: 45,
                missed_sum: 60,
            },
            elapsed_ns: 123_456,
            pinned: true,
            last_cpu: Some(0),
            allowed: 0b11,
        };
        assert_eq!(Report::from_bytes(report.to_bytes()), report);
        let unplaced = Report {
            last_cpu: None,
            ..report
        };
        assert_eq!(Report::from_bytes(unplaced.to_bytes()), unplaced);
    }
}
