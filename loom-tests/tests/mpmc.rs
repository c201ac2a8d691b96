//! Loom models of the MPMC ring: the real `shmring-core` code, loom's atomics.
//!
//! Each model names what it covers; ARCHITECTURE.md ("Orderings") lists which
//! model fails when each ordering is weakened. Each model's preemption bound and
//! its time alone, wall (user), on 2 shared cores (what each checks and the
//! budget: the crate docs):
//!
//! - `two_by_two_capacity_2`: bound 1, 26.7 s (4.0 s user)
//! - `two_by_one_capacity_2_wraps`: bound 1, 1.3 s (0.2 s user)
//! - `no_lost_wakeup_producer`: bound 2, 0.1 s (0.0 s user)
//! - `armed_consumer_is_rung_for_every_message`: bound 2, 0.0 s (0.0 s user)
//! - `armed_producer_is_rung_when_room_appears`: bound 2, 0.1 s (0.1 s user)
//! - `waiters_wake_the_others_before_sleeping`: bound 2, 0.0 s (0.0 s user)
//! - `dead_producer_is_skipped`: bound 2, 5.0 s (0.7 s user)
//! - `dead_producer_two_consumers_agree`: bound 1, 0.3 s (0.0 s user)
//! - `dead_consumer_is_reclaimed`: bound 2, 0.0 s (0.0 s user)
//! - `live_consumer_is_not_reclaimed`: bound 2, 0.1 s (0.0 s user)
//! - `live_consumer_is_not_reclaimed_in_the_claim_loop`: bound 2, 0.0 s (0.0 s user)
//! - `live_producer_is_not_skipped`: bound 2, 0.7 s (0.1 s user)
//! - `taken_over_entry_hands_on_the_dead_claim`: bound 2, 0.0 s (0.0 s user)
#![cfg(shmring_loom)]

use std::num::NonZeroU32;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use shmring_core::{
    MpmcConsumer, MpmcPopError, MpmcProducer, MpmcPushError, MpmcRegion, Readiness, Recovery,
};
use shmring_loom_tests::{LoomFutex, LoomLiveness, LoomMpmcRegion};

type Producer = MpmcProducer<LoomMpmcRegion>;
type Consumer = MpmcConsumer<LoomMpmcRegion>;

fn token(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// Runs `f` under loom with preemption bound `bound` (unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise).
fn model<F>(bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(f);
}

/// Message `seq` of producer `producer`: two bytes, so a torn copy shows.
fn message(producer: u8, seq: u8) -> [u8; 2] {
    [producer, seq]
}

fn send_blocking(tx: &mut Producer, msg: &[u8], futex: &LoomFutex) {
    loop {
        match tx.push(msg) {
            Ok(()) => {
                tx.wake(futex);
                return;
            }
            // Stalled: a consumer is copying the previous lap's message out.
            Err(MpmcPushError::Full | MpmcPushError::Stalled { .. }) => {
                tx.wait_for_space(futex, None).unwrap()
            }
            Err(MpmcPushError::Contended) => {}
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// Receives `quota` messages, blocking while there are none.
fn receive_blocking(rx: &mut Consumer, quota: usize, futex: &LoomFutex) -> Vec<[u8; 2]> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2];
    while got.len() < quota {
        match rx.pop(&mut buf) {
            Ok(n) => {
                assert_eq!(n, 2);
                got.push(buf);
                rx.wake(futex);
            }
            // Stalled: a producer claimed the position and is writing.
            Err(MpmcPopError::Empty | MpmcPopError::Stalled { .. }) => {
                rx.wait_for_message(futex, None).unwrap()
            }
            Err(MpmcPopError::Contended) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

/// Every message exactly once across the consumers, and each consumer sees each
/// producer's messages in the order they were sent.
fn check_delivery(shares: &[Vec<[u8; 2]>], producers: std::ops::Range<u8>, per_producer: u8) {
    let mut all: Vec<[u8; 2]> = shares.iter().flatten().copied().collect();
    all.sort_unstable();
    let expected: Vec<[u8; 2]> = producers
        .clone()
        .flat_map(|p| (0..per_producer).map(move |s| message(p, s)))
        .collect();
    assert_eq!(all, expected, "not every message exactly once");
    for share in shares {
        for p in producers.clone() {
            let seqs: Vec<u8> = share.iter().filter(|m| m[0] == p).map(|m| m[1]).collect();
            assert!(seqs.is_sorted(), "producer {p} out of order: {seqs:?}");
        }
    }
}

/// `producers` threads each sending `per_producer` messages, `consumers` threads
/// receiving `quota` each, through `slots` slots; everybody blocks (futex, no
/// deadline) when it cannot proceed, so a lost wake-up on either side is a
/// deadlock loom reports. Covers the claim (seq Acquire, intent, tail/head CAS),
/// the publication (seq Release), the free (seq Release), the wait/notify pairs
/// and the slot bytes' race freedom.
fn mpmc_model(producers: u8, per_producer: u8, consumers: usize, slots: usize, bound: usize) {
    let total = producers as usize * per_producer as usize;
    assert_eq!(total % consumers, 0);
    let quota = total / consumers;
    model(bound, move || {
        let endpoints = producers as usize + consumers;
        let region = LoomMpmcRegion::new(slots, 2, endpoints);
        let futex = Arc::new(LoomFutex::new());
        let mut handles = Vec::new();
        for p in 0..producers {
            let mut tx = Producer::register(region.clone(), token(1 + p as u32)).unwrap();
            let futex = futex.clone();
            handles.push(thread::spawn(move || {
                for s in 0..per_producer {
                    send_blocking(&mut tx, &message(p, s), &futex);
                }
                Vec::new()
            }));
        }
        let mut rxs: Vec<Consumer> = (0..consumers)
            .map(|c| Consumer::register(region.clone(), token(100 + c as u32)).unwrap())
            .collect();
        let mut main_rx = rxs.pop().unwrap();
        for mut rx in rxs {
            let futex = futex.clone();
            handles.push(thread::spawn(move || {
                receive_blocking(&mut rx, quota, &futex)
            }));
        }
        let mut shares = vec![receive_blocking(&mut main_rx, quota, &futex)];
        for h in handles {
            shares.push(h.join().unwrap());
        }
        check_delivery(&shares, 0..producers, per_producer);
        assert_eq!(main_rx.pop(&mut [0; 2]), Err(MpmcPopError::Empty));
        assert_eq!(main_rx.stats().skipped + main_rx.stats().lost, 0);
    });
}

/// 2 producers × 2 consumers, 2 slots, one message each.
#[test]
fn two_by_two_capacity_2() {
    mpmc_model(2, 1, 2, 2, 1);
}

/// 2 producers × 1 consumer, 2 slots, two messages each: the ring fills and wraps.
#[test]
fn two_by_one_capacity_2_wraps() {
    mpmc_model(2, 2, 1, 2, 1);
}

/// No lost wake-up on the producer side: one slot-pair ring, a producer blocks in
/// `wait_for_space` (no deadline) for three messages while the consumer blocks in
/// `wait_for_message` and frees slots, waking it.
#[test]
fn no_lost_wakeup_producer() {
    pair_model(block_for_space, block_for_message, true);
}

/// A consumer in an event loop: it never sleeps on the futex, it arms its
/// readiness descriptor whenever the head has nothing for it and waits on the
/// doorbell, while the producer sends three messages through two slots, blocking
/// for space. A notification that neither rings the doorbell nor is seen by the
/// re-check after arming leaves the consumer asleep: a deadlock. Covers the ARMED
/// bit on the data signal (the waiter's registration and fence, the notifier's
/// fence, load, clear and ring).
#[test]
fn armed_consumer_is_rung_for_every_message() {
    pair_model(block_for_space, arm_for_message, true);
}

/// A producer in an event loop: it never sleeps on the futex, it arms its
/// readiness descriptor for room whenever the slot at the tail is taken and waits
/// on the doorbell, while the consumer takes three messages through two slots,
/// blocking for each. A release notification that neither rings the doorbell nor
/// is seen by the re-check after arming leaves the producer asleep: a deadlock.
/// Covers the ARMED bit on the space signal (the waiter's registration and
/// fence, the consumer's free (Release), its fence, load, clear and ring).
#[test]
fn armed_producer_is_rung_when_room_appears() {
    pair_model(arm_for_space, block_for_message, true);
}

fn block_for_space(tx: &mut Producer, futex: &LoomFutex) {
    tx.wait_for_space(futex, None).unwrap();
}

fn block_for_message(rx: &mut Consumer, futex: &LoomFutex) {
    rx.wait_for_message(futex, None).unwrap();
}

/// Arms the doorbell for room and, if armed, waits for its ring.
fn arm_for_space(tx: &mut Producer, futex: &LoomFutex) {
    match tx.arm_for_space(futex).unwrap() {
        Readiness::Ready => {}
        Readiness::Armed => futex.wait_doorbell(),
    }
}

/// Arms the doorbell for a message and, if armed, waits for its ring.
fn arm_for_message(rx: &mut Consumer, futex: &LoomFutex) {
    match rx.arm_for_message(futex).unwrap() {
        Readiness::Ready => {}
        Readiness::Armed => futex.wait_doorbell(),
    }
}

/// One producer and one consumer through two slots, three messages, each side
/// calling its wait (`for_space`, `for_message`: blocking on the futex, or
/// arming and waiting on the doorbell) whenever it cannot go on. With
/// `wake_after_each`, each side calls `wake` after every operation; without it,
/// only once when it is done, so that each relies on the other's wait to notify
/// it before sleeping.
fn pair_model(
    for_space: fn(&mut Producer, &LoomFutex),
    for_message: fn(&mut Consumer, &LoomFutex),
    wake_after_each: bool,
) {
    model(2, move || {
        let region = LoomMpmcRegion::new(2, 2, 2);
        let futex = Arc::new(LoomFutex::new());
        let mut tx = Producer::register(region.clone(), token(1)).unwrap();
        let mut rx = Consumer::register(region, token(2)).unwrap();
        let f = futex.clone();
        let producer = thread::spawn(move || {
            for s in 0..3 {
                loop {
                    match tx.push(&message(0, s)) {
                        Ok(()) => break,
                        // Stalled: the consumer is copying the previous lap's
                        // message out.
                        Err(MpmcPushError::Full | MpmcPushError::Stalled { .. }) => {
                            for_space(&mut tx, &f)
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                }
                if wake_after_each {
                    tx.wake(&*f);
                }
            }
            if !wake_after_each {
                tx.wake(&*f);
            }
        });
        let mut buf = [0u8; 2];
        for s in 0..3 {
            loop {
                match rx.pop(&mut buf) {
                    Ok(_) => break,
                    // Stalled: the producer claimed and is writing.
                    Err(MpmcPopError::Empty | MpmcPopError::Stalled { .. }) => {
                        for_message(&mut rx, &futex)
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
            assert_eq!(buf, message(0, s));
            if wake_after_each {
                rx.wake(&*futex);
            }
        }
        if !wake_after_each {
            rx.wake(&*futex);
        }
        producer.join().unwrap();
    });
}

/// Receives until `received` reaches `total` (or for `attempts` calls, if given),
/// spinning (the dead claim cannot be waited for with a futex: nobody publishes
/// it) and skipping a stalled position whenever it finds one. Returns what this
/// consumer got.
fn receive_skipping(
    rx: &mut Consumer,
    liveness: &LoomLiveness,
    received: &AtomicUsize,
    total: usize,
    attempts: Option<usize>,
) -> Vec<[u8; 2]> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2];
    let mut left = attempts.unwrap_or(usize::MAX);
    while left > 0 && received.load(Ordering::Acquire) < total {
        left -= 1;
        match rx.pop(&mut buf) {
            Ok(_) => {
                got.push(buf);
                received.fetch_add(1, Ordering::AcqRel);
            }
            // The model calls this at once, not after a bound: recovery must be
            // safe whenever it is called (a live claimant answers ClaimantAlive).
            Err(MpmcPopError::Stalled { position }) => {
                match rx.skip_dead_producer(position, liveness).unwrap() {
                    Recovery::Recovered | Recovery::AlreadyMoved => {}
                    Recovery::ClaimantAlive { .. } => thread::yield_now(),
                }
            }
            Err(MpmcPopError::Empty | MpmcPopError::Contended) => thread::yield_now(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

/// A producer claims a position and dies before publishing (its thread stops; its
/// handle ends without clean-up; then its liveness mark drops). Another producer
/// sends `messages`. `consumers` consumers receive them all, skipping the dead
/// claim once it is marked dead, and only then: `skipped` ends at exactly one, so
/// no live claim was skipped and no two consumers both skipped it. Covers intent
/// Release / tail CAS Release → the recoverer's tail and intent Acquire, the skip
/// CAS, the head help, and the dead claim's slot bytes never being read (loom's
/// cell checks).
fn dead_producer_model(consumers: usize, messages: u8, bound: usize) {
    model(bound, move || {
        let region = LoomMpmcRegion::new(4, 2, 2 + consumers);
        let liveness = LoomLiveness::new(2 + consumers);
        let mut dead = Producer::register(region.clone(), token(1)).unwrap();
        let mut live = Producer::register(region.clone(), token(2)).unwrap();
        let l = liveness.clone();
        let dying = thread::spawn(move || {
            dead.claim_without_publishing().unwrap();
            let entry = dead.entry();
            dead.die();
            l.kill(entry);
        });
        let sender = thread::spawn(move || {
            for s in 0..messages {
                live.push(&message(1, s)).unwrap();
            }
        });
        let received = Arc::new(AtomicUsize::new(0));
        let total = messages as usize;
        let mut rxs: Vec<Consumer> = (0..consumers)
            .map(|c| Consumer::register(region.clone(), token(10 + c as u32)).unwrap())
            .collect();
        let mut main_rx = rxs.pop().unwrap();
        let others: Vec<_> = rxs
            .into_iter()
            .map(|mut rx| {
                let (l, r) = (liveness.clone(), received.clone());
                // A bounded number of attempts: two consumers spinning make
                // loom's paths too long, and one that races the other to the
                // skip a few times is what this checks.
                thread::spawn(move || receive_skipping(&mut rx, &l, &r, total, Some(3)))
            })
            .collect();
        let mut shares = vec![receive_skipping(
            &mut main_rx,
            &liveness,
            &received,
            total,
            None,
        )];
        for t in others {
            shares.push(t.join().unwrap());
        }
        sender.join().unwrap();
        dying.join().unwrap();
        check_delivery(&shares, 1..2, messages);
        // Drain: a dead claim behind every message is still there.
        drain_skipping(&mut main_rx, &liveness);
        assert_eq!(main_rx.stats().skipped, 1);
        assert_eq!(main_rx.stats().lost, 0);
    });
}

/// Pops until `Empty`, skipping every stalled position (each must be a dead
/// claim, recovered by this call); any message left is a failure.
fn drain_skipping(rx: &mut Consumer, liveness: &LoomLiveness) {
    let mut buf = [0u8; 2];
    loop {
        match rx.pop(&mut buf) {
            Err(MpmcPopError::Stalled { position }) => assert_eq!(
                rx.skip_dead_producer(position, liveness).unwrap(),
                Recovery::Recovered
            ),
            Err(MpmcPopError::Empty) => break,
            other => panic!("drain: {other:?}"),
        }
    }
}

/// One consumer, two messages around the dead claim.
#[test]
fn dead_producer_is_skipped() {
    dead_producer_model(1, 2, 2);
}

/// Two consumers racing to skip a dead producer's claim: exactly one skip counts.
/// The producer claims position 0 and dies; each consumer pops and, at every
/// stall, calls `skip_dead_producer` (three attempts each, so that the two race at
/// the skip; then the main thread drains). `skipped` ends at exactly one. Covers
/// the skip CAS (one winner) and the head help after it.
#[test]
fn dead_producer_two_consumers_agree() {
    model(1, || {
        let region = LoomMpmcRegion::new(2, 2, 3);
        let liveness = LoomLiveness::new(3);
        let mut dead = Producer::register(region.clone(), token(1)).unwrap();
        let l = liveness.clone();
        let dying = thread::spawn(move || {
            dead.claim_without_publishing().unwrap();
            let entry = dead.entry();
            dead.die();
            l.kill(entry);
        });
        let skipping = |rx: &mut Consumer, liveness: &LoomLiveness| {
            let mut buf = [0u8; 2];
            for _ in 0..3 {
                match rx.pop(&mut buf) {
                    Err(MpmcPopError::Stalled { position }) => {
                        match rx.skip_dead_producer(position, liveness).unwrap() {
                            Recovery::Recovered | Recovery::AlreadyMoved => {}
                            Recovery::ClaimantAlive { .. } => thread::yield_now(),
                        }
                    }
                    Err(MpmcPopError::Empty | MpmcPopError::Contended) => thread::yield_now(),
                    other => panic!("recv: {other:?}"),
                }
            }
        };
        let mut other = Consumer::register(region.clone(), token(10)).unwrap();
        let l = liveness.clone();
        let racer = thread::spawn(move || skipping(&mut other, &l));
        let mut rx = Consumer::register(region, token(11)).unwrap();
        skipping(&mut rx, &liveness);
        racer.join().unwrap();
        dying.join().unwrap();
        // Drain: the dead claim, if neither skipped it yet.
        drain_skipping(&mut rx, &liveness);
        assert_eq!(rx.stats().skipped, 1);
    });
}

/// Pushes `msg`, reclaiming at every stall. At once, not after a bound:
/// reclaiming must be safe whenever it is called.
fn send_reclaiming(tx: &mut Producer, msg: &[u8], liveness: &LoomLiveness) {
    loop {
        match tx.push(msg) {
            Ok(()) => break,
            Err(MpmcPushError::Stalled { position }) => {
                match tx.reclaim_from_dead_consumer(position, liveness).unwrap() {
                    Recovery::Recovered | Recovery::AlreadyMoved => {}
                    Recovery::ClaimantAlive { .. } => thread::yield_now(),
                }
            }
            Err(MpmcPushError::Full | MpmcPushError::Contended) => thread::yield_now(),
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// A consumer claims a message and dies before freeing it. The producer then sends
/// two more messages into the two slots, finds the dead consumer's slot stalled,
/// and reclaims it once the consumer is marked dead (and only then: `lost` ends at
/// exactly one). Another consumer receives the two. Covers the consumer's intent
/// Release / head CAS Release → the producer's head and intent Acquire, and the
/// reclaim CAS.
#[test]
fn dead_consumer_is_reclaimed() {
    model(2, || {
        let region = LoomMpmcRegion::new(2, 2, 3);
        let liveness = LoomLiveness::new(3);
        let mut tx = Producer::register(region.clone(), token(1)).unwrap();
        let mut dead = Consumer::register(region.clone(), token(2)).unwrap();
        let mut rx = Consumer::register(region.clone(), token(3)).unwrap();
        tx.push(&message(0, 0)).unwrap();
        let l = liveness.clone();
        let dying = thread::spawn(move || {
            assert_eq!(dead.claim_without_freeing(), Ok(0));
            let entry = dead.entry();
            dead.die();
            l.kill(entry);
        });
        let l = liveness.clone();
        let producer = thread::spawn(move || {
            for s in 1..3 {
                send_reclaiming(&mut tx, &message(0, s), &l);
            }
        });
        producer.join().unwrap();
        dying.join().unwrap();
        let mut buf = [0u8; 2];
        for s in 1..3 {
            assert_eq!(rx.pop(&mut buf), Ok(2));
            assert_eq!(buf, message(0, s));
        }
        assert_eq!(rx.pop(&mut buf), Err(MpmcPopError::Empty));
        assert_eq!(rx.stats().lost, 1);
        assert_eq!(rx.stats().skipped, 0);
    });
}

/// Recovery called at every stall never takes a live endpoint's slot: a producer
/// sends three messages through two slots and calls `reclaim_from_dead_consumer`
/// whenever it finds a consumer's claim unfreed, while the (live) consumer is
/// copying; every call must answer `ClaimantAlive` or `AlreadyMoved`. Covers the
/// consumer's intent Release and head CAS Release → the reclaimer's head and intent
/// Acquire; a weakened one lets the producer overwrite a slot being copied (loom
/// reports the race) or count a live message lost.
#[test]
fn live_consumer_is_not_reclaimed() {
    live_consumer_model(Consumer::pop);
}

/// The same with every message taken through the claim loop (`claim_from`)
/// rather than `pop`'s inline common case, which the model above nearly always
/// takes: covers the claim loop's copy of the head CAS Release.
#[test]
fn live_consumer_is_not_reclaimed_in_the_claim_loop() {
    live_consumer_model(Consumer::pop_through_claim_loop);
}

/// A live consumer takes three messages from a 2-slot ring, each with `pop`
/// (the pop function given), while the producer reclaims at every stall.
fn live_consumer_model(pop: fn(&mut Consumer, &mut [u8]) -> Result<usize, MpmcPopError>) {
    model(2, move || {
        let region = LoomMpmcRegion::new(2, 2, 2);
        let liveness = LoomLiveness::new(2);
        let mut tx = Producer::register(region.clone(), token(1)).unwrap();
        let mut rx = Consumer::register(region, token(2)).unwrap();
        let producer = thread::spawn(move || {
            for s in 0..3 {
                loop {
                    match tx.push(&message(0, s)) {
                        Ok(()) => break,
                        Err(MpmcPushError::Stalled { position }) => {
                            let r = tx.reclaim_from_dead_consumer(position, &liveness);
                            assert_ne!(r, Ok(Recovery::Recovered), "live consumer reclaimed");
                            thread::yield_now();
                        }
                        Err(MpmcPushError::Full | MpmcPushError::Contended) => thread::yield_now(),
                        Err(e) => panic!("send: {e}"),
                    }
                }
            }
        });
        let mut buf = [0u8; 2];
        for s in 0..3 {
            loop {
                match pop(&mut rx, &mut buf) {
                    Ok(_) => break,
                    Err(
                        MpmcPopError::Empty
                        | MpmcPopError::Stalled { .. }
                        | MpmcPopError::Contended,
                    ) => thread::yield_now(),
                    Err(e) => panic!("recv: {e}"),
                }
            }
            assert_eq!(buf, message(0, s));
        }
        producer.join().unwrap();
        assert_eq!(rx.stats().lost, 0);
    });
}

/// The same for producers: two live producers send one message each while the
/// consumer calls `skip_dead_producer` at every stall; it must never skip. Covers
/// the producer's intent Release and tail CAS Release → the skipper's tail and
/// intent Acquire, and the intent clear's Release after the publication.
#[test]
fn live_producer_is_not_skipped() {
    model(2, || {
        let region = LoomMpmcRegion::new(2, 2, 3);
        let liveness = LoomLiveness::new(3);
        let mut senders = Vec::new();
        for p in 0..2u8 {
            let mut tx = Producer::register(region.clone(), token(1 + p as u32)).unwrap();
            senders.push(thread::spawn(move || {
                tx.push(&message(p, 0)).unwrap();
            }));
        }
        let mut rx = Consumer::register(region, token(9)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2];
        while got.len() < 2 {
            match rx.pop(&mut buf) {
                Ok(_) => got.push(buf),
                Err(MpmcPopError::Stalled { position }) => {
                    let r = rx.skip_dead_producer(position, &liveness);
                    assert_ne!(r, Ok(Recovery::Recovered), "live producer skipped");
                    thread::yield_now();
                }
                Err(MpmcPopError::Empty | MpmcPopError::Contended) => thread::yield_now(),
                Err(e) => panic!("recv: {e}"),
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, [message(0, 0), message(1, 0)]);
        assert_eq!(rx.stats().skipped, 0);
    });
}

/// A consumer claims a message, dies part-way through copying it out, and a new
/// consumer takes its table entry over (on the same loom thread, after the death:
/// the take-over's proof that the holder is gone, as the `shmring` crate's new
/// holder takes the entry's lock), so the entry is alive again. The producer comes
/// round to the slot, reclaims it at every stall and writes the next lap's
/// message into it. A reclaimer that reads the intent the new holder cleared at
/// registration must see the dead consumer's copy: covers the registration's
/// intent store (Release), which carries it; weakened, the producer's write races
/// the dead copy and loom reports it. `lost` ends at exactly one.
#[test]
fn taken_over_entry_hands_on_the_dead_claim() {
    model(2, || {
        let region = LoomMpmcRegion::new(2, 2, 2);
        let liveness = LoomLiveness::new(2);
        let mut tx = Producer::register(region.clone(), token(1)).unwrap();
        let mut dead = Consumer::register(region.clone(), token(2)).unwrap();
        let entry = dead.entry();
        tx.push(&message(0, 0)).unwrap();
        let (r, l) = (region.clone(), liveness.clone());
        let dying = thread::spawn(move || {
            assert_eq!(dead.claim_without_freeing(), Ok(0));
            // Part-way through the copy out of slot 0.
            r.will_read(0);
            dead.die();
            l.kill(entry);
            // SAFETY: the endpoint registered with token 2 is dead: it never
            // touches the ring again.
            let rx = unsafe { Consumer::take_over_at(r, entry, token(3), token(2)) }.unwrap();
            l.revive(entry);
            rx
        });
        for s in 1..3 {
            send_reclaiming(&mut tx, &message(0, s), &liveness);
        }
        let mut rx = dying.join().unwrap();
        let mut buf = [0u8; 2];
        for s in 1..3 {
            assert_eq!(rx.pop(&mut buf), Ok(2));
            assert_eq!(buf, message(0, s));
        }
        assert_eq!(rx.pop(&mut buf), Err(MpmcPopError::Empty));
        assert_eq!(rx.stats().lost, 1);
    });
}

/// Neither side calls `wake` after its operations, only when it is done: each
/// relies on the other's wait to notify it before sleeping (a waiter never sleeps
/// owing a wake-up). A producer sends three messages through two slots, waiting
/// for space; the consumer waits for messages. Without the wake-up in the wait
/// both sleep for ever, which loom reports as a deadlock.
#[test]
fn waiters_wake_the_others_before_sleeping() {
    pair_model(block_for_space, block_for_message, false);
}
