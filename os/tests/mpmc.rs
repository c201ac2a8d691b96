//! Cross-process tests of MPMC channels: every producer and consumer here runs in
//! a real separate process (this test binary, started again with `--exact
//! child_...`; the `child_*` entry points return at once in the normal suite).
//!
//! Covered: 4 producer × 4 consumer processes with checked messages (exactly once,
//! per-producer order); SIGKILL of producers and consumers at random moments
//! (survivors finish, nothing committed is lost or duplicated beyond what the
//! statistics count); a dead producer's unpublished claim skipped and counted, a
//! dead consumer's held slot reclaimed and counted (both deterministic); the
//! endpoint table full across processes and the take-over of a dead entry;
//! blocking and timeouts on both sides with wake-ups across processes;
//! `Disconnected` after every sender is killed, also for a receiver (or sender)
//! that attaches only after every peer died; bad shapes; modes, clean-up and
//! reclaim (a live segment is never reclaimed); a corrupt slot or header gives
//! `Corrupted` at once, never a hang.
//!
//! Sizes: the default suite runs a fraction of the `#[ignore]`d full runs
//! (`cargo test -p shmring --test mpmc -- --ignored`); `SHMRING_MPMC_MESSAGES`
//! and `SHMRING_MPMC_CRASH_TRIALS` override the counts. Randomised tests print
//! their seed and replay it from `SHMRING_TEST_SEED`.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::{Error, MpmcChannel, MpmcChannelBuilder, SegmentBuilder, WaitStrategy};
use shmring::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};

/// Messages in total (over 4 producers) of the 4 × 4 test, default and ignored.
const MESSAGES: u64 = 200_000;
const MESSAGES_LONG: u64 = 1_000_000;
/// Crash trials, default and ignored.
const CRASH_TRIALS: u64 = 100;
const CRASH_TRIALS_LONG: u64 = 1_000;
/// Messages per producer in a crash trial.
const CRASH_MESSAGES: u64 = 1_500;
/// Bytes of a crash trial's messages (the test header, then zeros): long enough
/// that a kill often lands while a producer or consumer copies one.
const CRASH_MESSAGE_LEN: usize = 32 * 1024;
/// Bytes of a test message: producer id (u32), padding (u32), sequence (u64),
/// checksum (u64).
const MESSAGE_LEN: usize = 24;
/// A bound on calls that should return long before it.
const LONG: Duration = Duration::from_secs(30);
/// The bound on "promptly".
const PROMPT: Duration = Duration::from_secs(2);

fn child_start() -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(Duration::from_secs(300));
    true
}

fn check_of(id: u32, seq: u64) -> u64 {
    splitmix64((u64::from(id) << 40) ^ seq)
}

fn message(id: u32, seq: u64) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m[..4].copy_from_slice(&id.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    m[16..].copy_from_slice(&check_of(id, seq).to_le_bytes());
    m
}

fn parse(m: &[u8]) -> (u32, u64) {
    assert!(m.len() >= MESSAGE_LEN, "message of {} bytes", m.len());
    let id = u32::from_le_bytes(m[..4].try_into().unwrap());
    let seq = u64::from_le_bytes(m[8..16].try_into().unwrap());
    let check = u64::from_le_bytes(m[16..24].try_into().unwrap());
    assert_eq!(
        check,
        check_of(id, seq),
        "checksum of producer {id} seq {seq}"
    );
    (id, seq)
}

fn builder(name: &str) -> MpmcChannelBuilder {
    MpmcChannelBuilder::shm(name)
}

fn create(name: &str, slots: usize, endpoints: usize) -> MpmcChannel {
    builder(name)
        .slots(slots)
        .slot_size(MESSAGE_LEN)
        .endpoints(endpoints)
        .create()
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
}

fn open_in_child() -> MpmcChannel {
    let name = param("name");
    builder(&name)
        .wait_strategy(strategy(&param("wait")))
        .open()
        .unwrap_or_else(|e| panic!("open {name}: {e}"))
}

/// Reads a consumer's record: (producer id, seq) pairs in the order received.
fn read_record(path: &Path) -> Vec<(u32, u64)> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    // A consumer killed mid-write leaves a partial last record: dropped.
    bytes
        .chunks_exact(12)
        .map(|c| {
            (
                u32::from_le_bytes(c[..4].try_into().unwrap()),
                u64::from_le_bytes(c[4..].try_into().unwrap()),
            )
        })
        .collect()
}

/// Asserts that each consumer got each producer's messages in increasing order,
/// and returns every producer's received sequence numbers, sorted, with
/// duplicates across consumers reported.
fn merge(records: &[Vec<(u32, u64)>]) -> HashMap<u32, Vec<u64>> {
    let mut by_producer: HashMap<u32, Vec<u64>> = HashMap::new();
    for (c, record) in records.iter().enumerate() {
        let mut last: HashMap<u32, u64> = HashMap::new();
        for &(id, seq) in record {
            if let Some(&prev) = last.get(&id) {
                assert!(
                    seq > prev,
                    "consumer {c}: producer {id} seq {seq} after {prev}: order broken"
                );
            }
            last.insert(id, seq);
            by_producer.entry(id).or_default().push(seq);
        }
    }
    for (id, seqs) in &mut by_producer {
        seqs.sort_unstable();
        if let Some(w) = seqs.windows(2).find(|w| w[0] == w[1]) {
            panic!("producer {id} seq {} received twice", w[0]);
        }
    }
    by_producer
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/// A producer: registers, reports `ready`, waits for the parent's go (its
/// standard input closing), sends `count` messages of the slot size (the test
/// header, then zeros), and (when `log` is set)
/// writes how many it committed to that file after each one.
#[test]
fn child_mpmc_producer() {
    if !child_start() {
        return;
    }
    let channel = open_in_child();
    let id = param_u64("id") as u32;
    let count = param_u64("count");
    let log = std::env::var("SHMRING_TEST_P_log")
        .ok()
        .map(|p| File::create(p).expect("create producer log"));
    let mut tx = channel.sender().expect("sender");
    let mut m = vec![0u8; tx.max_message_len()];
    report("ready", tx.entry());
    wait_for_parent();
    for seq in 0..count {
        m[..MESSAGE_LEN].copy_from_slice(&message(id, seq));
        tx.send_timeout(&m, LONG)
            .unwrap_or_else(|e| panic!("producer {id}: send {seq}: {e}"));
        if let Some(log) = &log {
            log.write_all_at(&(seq + 1).to_le_bytes(), 0)
                .expect("producer log");
        }
    }
    report("done", count);
}

/// A consumer: registers, reports `ready`, receives until `Disconnected`,
/// recording each message's (producer, seq) in its file (at once when `sync`
/// is 1, else at the end), then reports its count.
#[test]
fn child_mpmc_consumer() {
    if !child_start() {
        return;
    }
    let channel = open_in_child();
    let sync = param_u64("sync") == 1;
    let out = File::create(param("out")).expect("create consumer record");
    let mut out = BufWriter::with_capacity(if sync { 0 } else { 1 << 20 }, out);
    let mut rx = channel.receiver().expect("receiver");
    report("ready", rx.entry());
    let mut buf = vec![0u8; rx.max_message_len()];
    let mut n = 0u64;
    loop {
        match rx.recv_timeout(&mut buf, LONG) {
            Ok(len) => {
                let (id, seq) = parse(&buf[..len]);
                let mut rec = [0u8; 12];
                rec[..4].copy_from_slice(&id.to_le_bytes());
                rec[4..].copy_from_slice(&seq.to_le_bytes());
                out.write_all(&rec).expect("consumer record");
                n += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("consumer: {e}"),
        }
    }
    out.flush().expect("consumer record");
    report("done", n);
}

/// Emulates a producer killed between claiming a position and publishing it:
/// registers, then performs the claim by hand (intent, then the tail CAS) as
/// core's `MpmcProducer::push` does, reports `claimed`, and waits to be killed.
#[test]
fn child_mpmc_dead_claim() {
    if !child_start() {
        return;
    }
    let channel = open_in_child();
    let tx = channel.sender().expect("sender");
    let raw = RawView::open(&param("name"), &channel);
    let position = raw.claim_tail(tx.entry());
    report("claimed", position);
    wait_for_parent();
    std::mem::forget(tx);
}

/// Emulates a consumer killed between claiming a message and freeing its slot:
/// waits for a published message at the head, claims it by hand (intent, then
/// the head CAS), reports `claimed`, and waits to be killed.
#[test]
fn child_mpmc_dead_consumer() {
    if !child_start() {
        return;
    }
    let channel = open_in_child();
    let rx = channel.receiver().expect("receiver");
    let raw = RawView::open(&param("name"), &channel);
    let position = raw.claim_head(rx.entry());
    report("claimed", position);
    wait_for_parent();
    std::mem::forget(rx);
}

/// Holds a sender or a receiver (`role`) until the parent says go or kills it.
/// A sender first sends `send` messages (0 if the parameter is absent).
#[test]
fn child_mpmc_hold() {
    if !child_start() {
        return;
    }
    let channel = open_in_child();
    let entry = if param("role") == "sender" {
        let mut tx = channel.sender().expect("sender");
        let send = std::env::var("SHMRING_TEST_P_send").map_or(0, |n| n.parse().unwrap());
        for seq in 0..send {
            tx.send_timeout(&message(0, seq), LONG)
                .unwrap_or_else(|e| panic!("send {seq}: {e}"));
        }
        let e = tx.entry();
        std::mem::forget(tx);
        e
    } else {
        let rx = channel.receiver().expect("receiver");
        let e = rx.entry();
        std::mem::forget(rx);
        e
    };
    report("ready", entry);
    wait_for_parent();
}

/// Receives `count` messages with `recv_timeout` (a parked receiver woken by the
/// parent), then sends `count` replies with `send_timeout` into a full ring.
#[test]
fn child_mpmc_echo() {
    if !child_start() {
        return;
    }
    let channel = open_in_child();
    let back = builder(&param("back"))
        .wait_strategy(WaitStrategy::Park)
        .open()
        .expect("open back channel");
    let mut rx = channel.receiver().expect("receiver");
    let mut tx = back.sender().expect("sender");
    report("ready", 0);
    let count = param_u64("count");
    let mut buf = [0u8; MESSAGE_LEN];
    for seq in 0..count {
        let n = rx.recv_timeout(&mut buf, LONG).expect("echo recv");
        assert_eq!(parse(&buf[..n]), (0, seq));
        tx.send_timeout(&message(1, seq), LONG).expect("echo send");
    }
    report("done", count);
}

/// A raw view of an MPMC segment, for the children that emulate a death at a
/// point core does not stop at.
struct RawView {
    base: *mut u8,
    len: usize,
    geometry: shmring::ring_core::MpmcGeometry,
}

impl RawView {
    fn open(name: &str, channel: &MpmcChannel) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(shm_path(name))
            .expect("open segment file");
        let len = file.metadata().unwrap().len() as usize;
        use std::os::fd::AsRawFd;
        // SAFETY: a shared read-write mapping of the whole file; the pointer is
        // checked below and used only for aligned atomics inside the layout.
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
        assert_ne!(base, libc::MAP_FAILED);
        let geometry = shmring::ring_core::MpmcGeometry::new(
            channel.slots(),
            channel.max_message_len(),
            channel.endpoints(),
        )
        .unwrap();
        assert!(geometry.segment_size() <= len);
        Self {
            base: base.cast(),
            len,
            geometry,
        }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as
        // `self` (never unmapped: the child is killed).
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    /// The state word of `position`'s slot: its sequence number and length
    /// (`MpmcGeometry::slot_state`).
    fn state(&self, position: u64) -> &AtomicU64 {
        let index = (position % self.geometry.slots() as u64) as usize;
        self.word(self.geometry.slot_offset(index))
    }

    /// Whether `position`'s slot holds sequence number `seq` (any length).
    fn has_seq(&self, position: u64, seq: u64) -> bool {
        let len_mask = (1u64 << self.geometry.len_bits()) - 1;
        self.state(position).load(Ordering::Acquire) & !len_mask == self.geometry.slot_state(seq, 0)
    }

    /// Claims the position at the tail for the producer in `entry`, without
    /// publishing: waits until its slot is free for it.
    fn claim_tail(&self, entry: usize) -> u64 {
        let tail = self.word(128);
        let intent = self.word(self.geometry.entry_offset(entry));
        let deadline = Instant::now() + LONG;
        loop {
            assert!(Instant::now() < deadline, "no free slot to claim");
            let p = tail.load(Ordering::Acquire);
            if !self.has_seq(p, p) {
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            intent.store(p, Ordering::Release);
            if tail
                .compare_exchange(p, p + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return p;
            }
        }
    }

    /// Claims the message at the head for the consumer in `entry`, without
    /// freeing its slot: waits until one is published.
    fn claim_head(&self, entry: usize) -> u64 {
        let head = self.word(256);
        let intent = self.word(self.geometry.entry_offset(entry));
        let deadline = Instant::now() + LONG;
        loop {
            assert!(Instant::now() < deadline, "no message to claim");
            let p = head.load(Ordering::Acquire);
            if !self.has_seq(p, p + 1) {
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            intent.store(p, Ordering::Release);
            if head
                .compare_exchange(p, p + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return p;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4 producers × 4 consumers
// ---------------------------------------------------------------------------

fn spawn_producer(name: &str, wait: &str, id: u32, count: u64, log: Option<&Path>) -> Peer {
    let log = log.map(|p| p.display().to_string());
    let mut params: Vec<(&str, &dyn std::fmt::Display)> = vec![
        ("name", &name),
        ("wait", &wait),
        ("id", &id),
        ("count", &count),
    ];
    if let Some(log) = &log {
        params.push(("log", log));
    }
    Peer::spawn("child_mpmc_producer", &params)
}

fn spawn_consumer(name: &str, wait: &str, out: &Path, sync: bool) -> Peer {
    Peer::spawn(
        "child_mpmc_consumer",
        &[
            ("name", &name),
            ("wait", &wait),
            ("out", &out.display()),
            ("sync", &u8::from(sync)),
        ],
    )
}

fn four_by_four(total: u64) {
    let name = unique("4x4");
    let channel = create(&name, 256, 16);
    let dir = TempDir::new("mpmc4x4");
    let per_producer = total / 4;
    let waits = ["spin", "park", "spin", "park"];
    let outs: Vec<PathBuf> = (0..4)
        .map(|c| dir.path().join(format!("consumer{c}")))
        .collect();
    let mut consumers: Vec<Peer> = (0..4)
        .map(|c| spawn_consumer(&name, waits[c], &outs[c], false))
        .collect();
    let mut producers: Vec<Peer> = (0..4u32)
        .map(|id| spawn_producer(&name, waits[id as usize], id, per_producer, None))
        .collect();
    for peer in consumers.iter_mut().chain(producers.iter_mut()) {
        peer.expect("ready");
    }
    let start = Instant::now();
    for producer in &mut producers {
        producer.release();
    }
    for producer in &mut producers {
        assert_eq!(producer.expect("done"), per_producer.to_string());
        producer.wait_ok();
    }
    let mut received = 0u64;
    for consumer in &mut consumers {
        received += consumer.expect("done").parse::<u64>().unwrap();
        consumer.wait_ok();
    }
    let elapsed = start.elapsed();
    eprintln!(
        "4x4: {received} messages in {elapsed:?} ({:.0} messages/s)",
        received as f64 / elapsed.as_secs_f64()
    );
    let records: Vec<_> = outs.iter().map(|p| read_record(p)).collect();
    for (c, r) in records.iter().enumerate() {
        eprintln!("4x4: consumer {c} got {}", r.len());
    }
    let by_producer = merge(&records);
    for id in 0..4u32 {
        let seqs = by_producer.get(&id).map_or(&[][..], |v| &v[..]);
        assert_eq!(seqs.len() as u64, per_producer, "producer {id}: count");
        assert!(
            seqs.iter().copied().eq(0..per_producer),
            "producer {id}: not every message exactly once"
        );
    }
    assert_eq!(received, per_producer * 4);
    assert_eq!(channel.stats(), shmring::MpmcStats::default());
    drop(channel);
    assert_no_shm(&name);
}

#[test]
fn four_producers_four_consumers() {
    if is_child() {
        return;
    }
    four_by_four(count_from_env("SHMRING_MPMC_MESSAGES", MESSAGES));
}

#[test]
#[ignore = "full size: 1,000,000 messages"]
fn four_producers_four_consumers_full() {
    if is_child() {
        return;
    }
    four_by_four(count_from_env("SHMRING_MPMC_MESSAGES", MESSAGES_LONG));
}

// ---------------------------------------------------------------------------
// Crashes at random moments
// ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct CrashTotals {
    killed_producers: u64,
    killed_consumers: u64,
    skipped: u64,
    lost: u64,
    unaccounted: u64,
}

/// One trial: 2 producer and 2 consumer processes; SIGKILLs one producer,
/// one consumer, or one of each at a random moment; the survivors finish. Then:
/// no message twice; per-producer order in each consumer's record; every message
/// a producer committed received, except those the statistics count as lost and
/// at most one per killed consumer (received, but killed before it recorded it).
fn crash_trial(rng: &mut XorShift, trial: u64, totals: &mut CrashTotals) {
    let name = unique("crash");
    let channel = builder(&name)
        .slots(16)
        .slot_size(CRASH_MESSAGE_LEN)
        .endpoints(8)
        .stall_timeout(Duration::from_millis(1))
        .create()
        .unwrap();
    let dir = TempDir::new("mpmccrash");
    let waits = ["busy", "spin", "park"];
    let wait = |rng: &mut XorShift| waits[rng.below(3) as usize];
    let outs: Vec<PathBuf> = (0..2).map(|c| dir.path().join(format!("c{c}"))).collect();
    let logs: Vec<PathBuf> = (0..2).map(|p| dir.path().join(format!("p{p}"))).collect();
    let mut consumers: Vec<Peer> = (0..2)
        .map(|c| spawn_consumer(&name, wait(rng), &outs[c], true))
        .collect();
    let mut producers: Vec<Peer> = (0..2u32)
        .map(|id| {
            spawn_producer(
                &name,
                wait(rng),
                id,
                CRASH_MESSAGES,
                Some(&logs[id as usize]),
            )
        })
        .collect();
    for peer in consumers.iter_mut().chain(producers.iter_mut()) {
        peer.expect("ready");
    }
    // 0: a producer, 1: a consumer, 2: one of each.
    let what = rng.below(3);
    let victim_producer = (what != 1).then(|| rng.below(2) as usize);
    let victim_consumer = (what != 0).then(|| rng.below(2) as usize);
    let delay = Duration::from_micros(rng.below(15_000));
    for producer in &mut producers {
        producer.release();
    }
    thread::sleep(delay);
    let mut killed_producer = false;
    let mut killed_consumer = false;
    if let Some(p) = victim_producer {
        producers[p].kill_now();
        killed_producer = true;
    }
    if let Some(c) = victim_consumer {
        consumers[c].kill_now();
        killed_consumer = true;
    }
    let mut committed = [CRASH_MESSAGES; 2];
    for (p, producer) in producers.iter_mut().enumerate() {
        if Some(p) == victim_producer {
            producer.wait();
            let mut bytes = [0u8; 8];
            let n = File::open(&logs[p])
                .and_then(|f| f.read_at(&mut bytes, 0))
                .unwrap_or(0);
            committed[p] = if n == 8 { u64::from_le_bytes(bytes) } else { 0 };
        } else {
            producer.wait_ok();
        }
    }
    for (c, consumer) in consumers.iter_mut().enumerate() {
        if Some(c) == victim_consumer {
            consumer.wait();
        } else {
            consumer.wait_ok();
        }
    }
    let records: Vec<_> = outs.iter().map(|p| read_record(p)).collect();
    let by_producer = merge(&records);
    let stats = channel.stats();
    let mut missing = 0u64;
    for id in 0..2u32 {
        let seqs = by_producer.get(&id).map_or(&[][..], |v| &v[..]);
        let logged = committed[id as usize];
        // A killed producer may have committed one more than it logged.
        let limit = if Some(id as usize) == victim_producer {
            logged + 1
        } else {
            logged
        };
        if let Some(&max) = seqs.last() {
            assert!(
                max < limit,
                "trial {trial}: producer {id} seq {max} received, only {limit} committed"
            );
        }
        let got_below = seqs.iter().filter(|&&s| s < logged).count() as u64;
        missing += logged - got_below;
    }
    let slack = u64::from(killed_consumer);
    assert!(
        missing <= stats.lost + slack,
        "trial {trial}: {missing} committed messages missing, lost {} + {slack} in flight; {stats:?}",
        stats.lost
    );
    assert!(
        stats.lost <= u64::from(killed_consumer),
        "trial {trial}: {stats:?} with {killed_consumer} consumer killed"
    );
    assert!(
        stats.skipped <= u64::from(killed_producer),
        "trial {trial}: {stats:?} with {killed_producer} producer killed"
    );
    totals.killed_producers += u64::from(killed_producer);
    totals.killed_consumers += u64::from(killed_consumer);
    totals.skipped += stats.skipped;
    totals.lost += stats.lost;
    totals.unaccounted += missing - missing.min(stats.lost);
    drop(channel);
    assert_no_shm(&name);
}

fn crash_trials(trials: u64) {
    let mut rng = XorShift::new(seed("mpmc crash"));
    let mut totals = CrashTotals::default();
    let start = Instant::now();
    for trial in 0..trials {
        crash_trial(&mut rng, trial, &mut totals);
    }
    eprintln!("{trials} crash trials in {:?}: {totals:?}", start.elapsed());
}

#[test]
fn producers_and_consumers_killed_at_random() {
    if is_child() {
        return;
    }
    crash_trials(count_from_env("SHMRING_MPMC_CRASH_TRIALS", CRASH_TRIALS));
}

#[test]
#[ignore = "full size: 1,000 trials"]
fn producers_and_consumers_killed_at_random_full() {
    if is_child() {
        return;
    }
    crash_trials(count_from_env(
        "SHMRING_MPMC_CRASH_TRIALS",
        CRASH_TRIALS_LONG,
    ));
}

// ---------------------------------------------------------------------------
// Deaths at the claim, deterministic
// ---------------------------------------------------------------------------

#[test]
fn a_dead_producers_claim_is_skipped_and_counted() {
    if is_child() {
        return;
    }
    let name = unique("deadclaim");
    let channel = create(&name, 8, 4);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    tx.send(&message(0, 0)).unwrap();
    let mut dead = Peer::spawn(
        "child_mpmc_dead_claim",
        &[("name", &name), ("wait", &"spin")],
    );
    assert_eq!(dead.expect("claimed"), "1");
    tx.send(&message(0, 1)).unwrap();
    let mut buf = [0u8; MESSAGE_LEN];
    assert_eq!(rx.recv_timeout(&mut buf, LONG).unwrap(), MESSAGE_LEN);
    assert_eq!(parse(&buf), (0, 0));
    // Position 1 is claimed by a live process: waited for, not skipped.
    assert!(matches!(
        rx.recv_timeout(&mut buf, Duration::from_millis(50)),
        Err(RecvTimeoutError::TimedOut)
    ));
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    assert_eq!(channel.stats().skipped, 0);
    dead.kill();
    let start = Instant::now();
    assert_eq!(rx.recv_timeout(&mut buf, LONG).unwrap(), MESSAGE_LEN);
    eprintln!("dead claim skipped after {:?}", start.elapsed());
    assert!(start.elapsed() < PROMPT);
    assert_eq!(parse(&buf), (0, 1));
    assert_eq!(channel.stats().skipped, 1);
    assert_eq!(channel.stats().lost, 0);
    // The dead producer's entry is taken over by the next sender.
    assert_eq!((tx.entry(), rx.entry()), (0, 1));
    let again = channel.sender().unwrap();
    assert_eq!((again.entry(), again.generation()), (2, 2));
}

#[test]
fn try_recv_alone_gets_past_a_dead_claim() {
    if is_child() {
        return;
    }
    let name = unique("deadclaimtry");
    let channel = create(&name, 4, 4);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let mut dead = Peer::spawn(
        "child_mpmc_dead_claim",
        &[("name", &name), ("wait", &"spin")],
    );
    assert_eq!(dead.expect("claimed"), "0");
    tx.send(&message(0, 7)).unwrap();
    dead.kill();
    let deadline = Instant::now() + PROMPT;
    let mut buf = [0u8; MESSAGE_LEN];
    loop {
        match rx.try_recv(&mut buf) {
            Ok(_) => break,
            Err(TryRecvError::Empty) => assert!(Instant::now() < deadline, "never got past"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(parse(&buf), (0, 7));
    assert_eq!(channel.stats().skipped, 1);
}

#[test]
fn a_dead_consumers_slot_is_reclaimed_and_counted() {
    if is_child() {
        return;
    }
    let name = unique("deadconsumer");
    let channel = create(&name, 4, 4);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let mut dead = Peer::spawn(
        "child_mpmc_dead_consumer",
        &[("name", &name), ("wait", &"spin")],
    );
    tx.send(&message(0, 0)).unwrap();
    assert_eq!(dead.expect("claimed"), "0");
    for seq in 1..4 {
        tx.send(&message(0, seq)).unwrap();
    }
    // The ring is full, and its first slot is held by a live consumer.
    assert!(matches!(
        tx.send_timeout(&message(0, 4), Duration::from_millis(50)),
        Err(SendTimeoutError::TimedOut)
    ));
    assert!(matches!(
        tx.try_send(&message(0, 4)),
        Err(TrySendError::Full { .. })
    ));
    dead.kill();
    // Make room elsewhere is impossible: slot 0 is the next to reuse. The send
    // frees it once the stall bound passes.
    let mut buf = [0u8; MESSAGE_LEN];
    for seq in 1..4 {
        rx.recv_timeout(&mut buf, LONG).unwrap();
        assert_eq!(parse(&buf), (0, seq));
    }
    let start = Instant::now();
    tx.send_timeout(&message(0, 4), LONG).unwrap();
    assert!(start.elapsed() < PROMPT);
    assert_eq!(channel.stats().lost, 1);
    assert_eq!(channel.stats().skipped, 0);
    rx.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(parse(&buf), (0, 4));
}

/// A receiver dies holding a message that no sender comes round to (the ring
/// never wraps): once the stream ends, the survivor's `Disconnected` comes with
/// that message counted, so committed = delivered + lost.
#[test]
fn a_message_lost_with_a_dead_consumer_is_counted_when_the_stream_ends() {
    if is_child() {
        return;
    }
    const COMMITTED: u64 = 4;
    let name = unique("lostcount");
    let channel = create(&name, 8, 4);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let mut dead = Peer::spawn(
        "child_mpmc_dead_consumer",
        &[("name", &name), ("wait", &"spin")],
    );
    tx.send(&message(0, 0)).unwrap();
    assert_eq!(dead.expect("claimed"), "0");
    for seq in 1..COMMITTED {
        tx.send(&message(0, seq)).unwrap();
    }
    dead.kill();
    drop(tx);
    let mut buf = [0u8; MESSAGE_LEN];
    let mut delivered = 0;
    loop {
        match rx.recv_timeout(&mut buf, LONG) {
            Ok(n) => {
                delivered += 1;
                assert_eq!(parse(&buf[..n]), (0, delivered));
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let stats = channel.stats();
    assert_eq!(delivered, COMMITTED - 1);
    assert_eq!(stats.lost, 1, "{stats:?}");
    assert_eq!(delivered + stats.lost, COMMITTED);
    assert_eq!(stats.skipped, 0);
}

// ---------------------------------------------------------------------------
// Endpoint table, blocking, disconnection
// ---------------------------------------------------------------------------

#[test]
fn the_table_is_full_across_processes_and_a_dead_entry_is_taken_over() {
    if is_child() {
        return;
    }
    let name = unique("table");
    let channel = create(&name, 4, 2);
    let mut holders: Vec<Peer> = ["sender", "receiver"]
        .iter()
        .map(|role| {
            Peer::spawn(
                "child_mpmc_hold",
                &[("name", &name), ("wait", &"spin"), ("role", role)],
            )
        })
        .collect();
    for h in &mut holders {
        h.expect("ready");
    }
    match channel.sender() {
        Err(Error::EndpointTableFull { endpoints: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    match channel.receiver() {
        Err(Error::EndpointTableFull { endpoints: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(channel.live_senders().unwrap(), 1);
    holders[0].kill();
    assert_eq!(channel.live_senders().unwrap(), 0);
    let rx = channel.receiver().expect("the dead sender's entry");
    assert_eq!(rx.generation(), 2);
    holders[1].release();
    holders[1].wait_ok();
}

#[test]
fn bad_input_gets_named_errors() {
    if is_child() {
        return;
    }
    let name = unique("bad");
    let shape = |slots, size, endpoints| {
        builder(&name)
            .slots(slots)
            .slot_size(size)
            .endpoints(endpoints)
            .create()
    };
    assert!(matches!(
        shape(8, 0, 4),
        Err(Error::InvalidSlotSize { slot_size: 0, .. })
    ));
    assert!(matches!(
        shape(100, 8, 4),
        Err(Error::InvalidSlotCount { slots: 100 })
    ));
    assert!(matches!(
        shape(8, 8, 0),
        Err(Error::InvalidEndpointCount { endpoints: 0, .. })
    ));
    assert_no_shm(&name);
    // An SPSC channel is not an MPMC one, nor the reverse.
    let _spsc = shmring::ChannelBuilder::shm(&name).create().unwrap();
    assert!(matches!(
        builder(&name).open(),
        Err(Error::IncompatibleLayout { .. })
    ));
    let other = unique("bad");
    let _mpmc = create(&other, 4, 2);
    assert!(matches!(
        shmring::ChannelBuilder::shm(&other).open(),
        Err(Error::IncompatibleLayout { .. })
    ));
}

#[test]
fn blocking_and_timeouts_across_processes() {
    if is_child() {
        return;
    }
    for wait in ["busy", "spin", "park"] {
        let name = unique("echo");
        let back = unique("echoback");
        let channel = builder(&name)
            .slots(2)
            .slot_size(MESSAGE_LEN)
            .wait_strategy(strategy(wait))
            .create()
            .unwrap();
        let back_channel = builder(&back)
            .slots(2)
            .slot_size(MESSAGE_LEN)
            .wait_strategy(strategy(wait))
            .create()
            .unwrap();
        let mut tx = channel.sender().unwrap();
        let mut rx = back_channel.receiver().unwrap();
        // Nobody there: timeouts on both sides.
        let mut buf = [0u8; MESSAGE_LEN];
        let start = Instant::now();
        assert!(matches!(
            rx.recv_timeout(&mut buf, Duration::from_millis(30)),
            Err(RecvTimeoutError::TimedOut)
        ));
        assert!(start.elapsed() >= Duration::from_millis(30));
        tx.send(&message(0, 0)).unwrap();
        tx.send(&message(0, 1)).unwrap();
        assert!(matches!(
            tx.send_timeout(&message(0, 2), Duration::from_millis(30)),
            Err(SendTimeoutError::TimedOut)
        ));
        let count = 200u64;
        let mut echo = Peer::spawn(
            "child_mpmc_echo",
            &[
                ("name", &name),
                ("back", &back),
                ("wait", &wait),
                ("count", &count),
            ],
        );
        echo.expect("ready");
        for seq in 2..count {
            // The ring of 2 is full: each send waits for the child to take one.
            tx.send_timeout(&message(0, seq), LONG).unwrap();
            let n = rx.recv_timeout(&mut buf, LONG).unwrap();
            assert_eq!(parse(&buf[..n]), (1, seq - 2));
        }
        for seq in count - 2..count {
            let n = rx.recv_timeout(&mut buf, LONG).unwrap();
            assert_eq!(parse(&buf[..n]), (1, seq));
        }
        echo.expect("done");
        echo.wait_ok();
    }
}

#[test]
fn receivers_get_disconnected_when_every_sender_is_killed() {
    if is_child() {
        return;
    }
    let name = unique("disc");
    let channel = create(&name, 8, 8);
    let mut senders: Vec<Peer> = (0..2)
        .map(|_| {
            Peer::spawn(
                "child_mpmc_hold",
                &[("name", &name), ("wait", &"spin"), ("role", &"sender")],
            )
        })
        .collect();
    for s in &mut senders {
        s.expect("ready");
    }
    let mut rx = channel.receiver().unwrap();
    let blocked = thread::spawn(move || {
        let mut buf = [0u8; MESSAGE_LEN];
        let result = rx.recv_timeout(&mut buf, LONG);
        (result.map_err(|e| e.to_string()), Instant::now())
    });
    thread::sleep(Duration::from_millis(50));
    senders[0].kill();
    thread::sleep(Duration::from_millis(50));
    assert!(!blocked.is_finished(), "one sender is still alive");
    let killed = senders[1].kill();
    let (result, at) = blocked.join().unwrap();
    assert_eq!(result, Err("disconnected: the sender has gone".to_owned()));
    eprintln!("Disconnected {:?} after the last kill", at - killed);
    assert!(at - killed < PROMPT);
    // A sender with no receiver alive gets Disconnected once the ring is full.
    let mut tx = channel.sender().unwrap();
    for seq in 0..8 {
        tx.send(&message(0, seq)).unwrap();
    }
    assert!(matches!(
        tx.send_timeout(&message(0, 8), LONG),
        Err(SendTimeoutError::Disconnected)
    ));
}

/// The restart of a consumer after its producer crashed: a sender sends and is
/// killed before any receiver exists; a receiver that attaches afterwards (into
/// the dead sender's table entry, the first free one) drains what was committed,
/// then gets `Disconnected`, not a timeout. And the mirror: a sender attaching
/// after the only receiver was killed gets `Disconnected` once the ring is full.
#[test]
fn endpoints_attaching_after_every_peer_died_get_disconnected() {
    if is_child() {
        return;
    }
    const SENT: u64 = 5;
    let name = unique("late");
    let channel = create(&name, 8, 4);
    let mut sender = Peer::spawn(
        "child_mpmc_hold",
        &[
            ("name", &name),
            ("wait", &"spin"),
            ("role", &"sender"),
            ("send", &SENT),
        ],
    );
    assert_eq!(sender.expect("ready"), "0");
    sender.kill();
    let mut rx = channel.receiver().unwrap();
    assert_eq!(rx.entry(), 0, "the receiver reuses the dead sender's entry");
    let mut buf = [0u8; MESSAGE_LEN];
    for seq in 0..SENT {
        let n = rx.recv_timeout(&mut buf, LONG).unwrap();
        assert_eq!(parse(&buf[..n]), (0, seq));
    }
    // Generous: a correct receiver returns within one liveness interval.
    match rx.recv_timeout(&mut buf, Duration::from_secs(10)) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("expected Disconnected from the sender, got {other:?}"),
    }
    drop((rx, channel));
    assert_no_shm(&name);

    let name = unique("late");
    let channel = create(&name, 8, 4);
    let mut receiver = Peer::spawn(
        "child_mpmc_hold",
        &[("name", &name), ("wait", &"spin"), ("role", &"receiver")],
    );
    assert_eq!(receiver.expect("ready"), "0");
    receiver.kill();
    let mut tx = channel.sender().unwrap();
    assert_eq!(tx.entry(), 0, "the sender reuses the dead receiver's entry");
    for seq in 0..8 {
        tx.send_timeout(&message(0, seq), LONG).unwrap();
    }
    match tx.send_timeout(&message(0, 8), Duration::from_secs(10)) {
        Err(SendTimeoutError::Disconnected) => {}
        other => panic!("expected Disconnected from the receiver, got {other:?}"),
    }
    drop((tx, channel));
    assert_no_shm(&name);
}

#[test]
fn permissions_cleanup_and_reclaim_follow_the_channels_rules() {
    if is_child() {
        return;
    }
    // Modes: a segment others may write is refused unless allowed.
    let name = unique("mode");
    let _loose = builder(&name).mode(0o666).create().unwrap();
    match builder(&name).open() {
        Err(Error::Untrusted { mode: 0o666, .. }) => {}
        other => panic!("{other:?}"),
    }
    builder(&name).allow_mode(0o666).open().unwrap();
    assert_eq!(
        std::fs::metadata(shm_path(&name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o666
    );

    // A leftover (its creator kept the name and left) blocks the name until
    // reclaimed; a live one is never reclaimed.
    let name = unique("reclaim");
    drop(
        builder(&name)
            .slots(4)
            .unlink_on_drop(false)
            .create()
            .unwrap(),
    );
    assert!(shm_path(&name).exists());
    assert!(matches!(
        builder(&name).create(),
        Err(Error::AlreadyExists { .. })
    ));
    let mut holder = Peer::spawn(
        "child_mpmc_hold",
        &[("name", &name), ("wait", &"spin"), ("role", &"receiver")],
    );
    holder.expect("ready");
    assert!(matches!(
        builder(&name).reclaim(true).create(),
        Err(Error::AlreadyExists { .. })
    ));
    holder.kill();
    let fresh = builder(&name).slots(8).reclaim(true).create().unwrap();
    assert_eq!(fresh.slots(), 8);
    drop(fresh);
    assert_no_shm(&name);
}

#[test]
fn try_send_alone_gets_past_a_dead_consumer() {
    if is_child() {
        return;
    }
    let name = unique("deadconsumertry");
    let channel = create(&name, 2, 4);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let mut dead = Peer::spawn(
        "child_mpmc_dead_consumer",
        &[("name", &name), ("wait", &"spin")],
    );
    tx.send(&message(0, 0)).unwrap();
    assert_eq!(dead.expect("claimed"), "0");
    tx.send(&message(0, 1)).unwrap();
    let mut buf = [0u8; MESSAGE_LEN];
    rx.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(parse(&buf), (0, 1));
    // Slot 0 is the next to reuse, and a live consumer holds it.
    assert!(matches!(
        tx.try_send(&message(0, 2)),
        Err(TrySendError::Full { .. })
    ));
    dead.kill();
    let deadline = Instant::now() + PROMPT;
    loop {
        match tx.try_send(&message(0, 2)) {
            Ok(()) => break,
            Err(TrySendError::Full { .. }) => assert!(Instant::now() < deadline, "never got past"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(channel.stats().lost, 1);
    rx.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(parse(&buf), (0, 2));
}

/// An MPMC channel whose version word says 3 is refused, naming both versions.
#[test]
fn a_channel_of_layout_version_3_is_refused() {
    if is_child() {
        return;
    }
    let name = unique("v3");
    let channel = create(&name, 4, 2);
    assert_version_3_refused(&shm_path(&name), || builder(&name).open());
    drop(channel);
    assert_no_shm(&name);
}

#[test]
fn a_corrupt_segment_gives_errors_never_hangs() {
    if is_child() {
        return;
    }
    let dir = TempDir::new("mpmccorrupt");
    let path = dir.path().join("ring");
    let file_builder = || MpmcChannelBuilder::file(&path);
    let channel = file_builder()
        .slots(4)
        .slot_size(MESSAGE_LEN)
        .endpoints(2)
        .create()
        .unwrap();
    let geometry = shmring::ring_core::MpmcGeometry::new(4, MESSAGE_LEN, 2).unwrap();
    let write_at = |offset: u64, bytes: &[u8]| {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(bytes, offset).unwrap();
    };
    let mut rx = channel.receiver().unwrap();
    let mut tx = channel.sender().unwrap();
    // A sequence number no protocol step writes, in the slot at the head.
    write_at(
        geometry.slot_offset(0) as u64,
        &geometry.slot_state(7, 0).to_ne_bytes(),
    );
    let mut buf = [0u8; MESSAGE_LEN];
    for result in [
        rx.try_recv(&mut buf).map_err(Error::from),
        rx.recv_timeout(&mut buf, LONG).map_err(Error::from),
    ] {
        match result {
            Err(Error::Corrupted { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        tx.send_timeout(&message(0, 0), LONG),
        Err(SendTimeoutError::Corrupted { .. })
    ));
    // A published message whose length is over the slot size.
    // (The length field holds up to 2^len_bits - 1: 31 for 24-byte slots.)
    let too_long = (1u64 << geometry.len_bits()) - 1;
    assert!(too_long > MESSAGE_LEN as u64);
    write_at(
        geometry.slot_offset(0) as u64,
        &geometry.slot_state(1, too_long).to_ne_bytes(),
    );
    assert!(matches!(
        rx.recv_timeout(&mut buf, LONG),
        Err(RecvTimeoutError::Corrupted { .. })
    ));
    drop((rx, tx, channel));
    // A header field out of range: refused on open.
    write_at(16, &3u64.to_ne_bytes());
    match file_builder().open() {
        Err(Error::Corrupted { .. } | Error::IncompatibleLayout { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// As for SPSC channels: with nobody waiting, 10,000 messages sent and received
/// (each receive finds one) cost this thread no system call.
#[test]
fn no_system_call_per_message_while_nobody_waits() {
    let channel = MpmcChannelBuilder::memfd()
        .slots(64)
        .slot_size(64)
        .create()
        .expect("memfd MPMC channel");
    let (mut tx, mut rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
    assert_eq!(system_calls_for_messages(&mut tx, &mut rx, 10_000), 0);
}
