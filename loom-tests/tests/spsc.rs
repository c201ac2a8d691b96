//! Loom models of the SPSC ring: the real `shmring-core` code, loom's atomics.
//!
//! Each model names the atomic operations it covers; ARCHITECTURE.md ("Orderings") lists which
//! model fails when each ordering is weakened. Every model runs at preemption
//! bound 3 (`shmring_loom_tests::model`); each one's time alone, wall (user), on 2
//! shared cores (what each checks and the budget: the crate docs):
//!
//! - `wrap_with_padding_keeps_order_and_bytes`: 1.2 s (0.1 s user)
//! - `full_edge_and_short_commit`: 7.7 s (1.0 s user)
//! - `batch_is_published_at_once`: 0.0 s (0.0 s user)
//! - `no_lost_wakeup_when_empty`: 0.6 s (0.1 s user)
//! - `no_lost_wakeup_when_full`: 12.3 s (3.1 s user)
//! - `armed_consumer_is_rung_for_every_message`: 0.2 s (0.2 s user)
//! - `armed_producer_is_rung_when_room_appears`: 7.6 s (3.6 s user)
//! - `waits_time_out`: 0.0 s (0.0 s user)
//! - `write_position_covers_committed_frames`: 0.0 s (0.0 s user)
//! - `producer_handover_appends_after_committed`: 0.0 s (0.0 s user)
//! - `producer_recovery_sees_released_space`: 0.0 s (0.0 s user)
//! - `consumer_handover_skips_released`: 0.0 s (0.0 s user)
//! - `read_batch_then_reuse`: 18.3 s (3.4 s user)
//! - `runs_across_a_wrap`: 13.5 s (2.0 s user)
#![cfg(shmring_loom)]

use std::num::NonZeroU32;

use loom::sync::Arc;
use loom::thread;
use shmring_core::{
    ClaimError, Consumer, PopError, Producer, PushError, ReadError, Readiness, WaitError,
};
use shmring_loom_tests::{Expired, LoomFutex, LoomRegion, model};

fn token(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A message whose bytes say which message it is.
fn message(index: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| index.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn push_spinning(tx: &mut Producer<LoomRegion>, msg: &[u8]) {
    loop {
        match tx.push(msg) {
            Ok(()) => return,
            Err(PushError::Full { .. }) => thread::yield_now(),
            Err(e) => panic!("push: {e}"),
        }
    }
}

fn pop_spinning(rx: &mut Consumer<LoomRegion>) -> Vec<u8> {
    let mut buf = [0u8; 64];
    loop {
        match rx.pop(&mut buf) {
            Ok(n) => return buf[..n].to_vec(),
            Err(PopError::Empty) => thread::yield_now(),
            Err(e) => panic!("pop: {e}"),
        }
    }
}

fn split(capacity: usize) -> (Producer<LoomRegion>, Consumer<LoomRegion>) {
    let region = LoomRegion::new(capacity);
    (
        Producer::claim(region.clone(), token(1)).unwrap(),
        Consumer::claim(region, token(2)).unwrap(),
    )
}

/// Order and integrity across a wrap-around with a padding frame: capacity 64,
/// frames of 32, 24 and 32 bytes, so the third waits for the first two to be
/// released and then follows an 8-byte padding frame into the next lap.
/// Covers: commit (state word Release, next header zeroed), padding (next lap's
/// header zeroed, padding word Release), read (Acquire), release (mark, lazy
/// publish Release), refresh_read (Acquire).
#[test]
fn wrap_with_padding_keeps_order_and_bytes() {
    model(|| {
        let (mut tx, mut rx) = split(64);
        let lens = [20, 12, 20];
        let producer = thread::spawn(move || {
            for (i, len) in lens.into_iter().enumerate() {
                push_spinning(&mut tx, &message(i as u8, len));
            }
        });
        for (i, len) in lens.into_iter().enumerate() {
            assert_eq!(pop_spinning(&mut rx), message(i as u8, len));
        }
        producer.join().unwrap();
        assert_eq!(rx.read().unwrap_err(), ReadError::Empty);
    });
}

/// Full and empty edges with a grant committed short: four 16-byte frames through
/// a 64-byte ring that holds three, the first granted 24 bytes and committed with 5.
#[test]
fn full_edge_and_short_commit() {
    model(|| {
        let (mut tx, mut rx) = split(64);
        let producer = thread::spawn(move || {
            let mut grant = tx.grant(24).unwrap();
            grant[..5].copy_from_slice(&message(0, 5));
            grant.commit(5);
            for i in 1..4 {
                push_spinning(&mut tx, &message(i, 8));
            }
        });
        assert_eq!(pop_spinning(&mut rx), message(0, 5));
        for i in 1..4 {
            assert_eq!(pop_spinning(&mut rx), message(i, 8));
        }
        producer.join().unwrap();
    });
}

/// A batch becomes visible at once: a consumer that sees its first message finds
/// the second without waiting, and nothing after it (the two 4-byte messages form
/// a run under one header). Covers end_batch (zeroing the slot after the last
/// frame, Release of the first), the Relaxed stores of the batch's later frames and
/// of the run word.
#[test]
fn batch_is_published_at_once() {
    model(|| {
        let (mut tx, mut rx) = split(64);
        // A lap of traffic first, so the batch lands on stale (released) frames and
        // the slot after it must be zeroed.
        for i in 0..4 {
            tx.push(&message(i, 8)).unwrap();
            assert_eq!(pop_spinning(&mut rx), message(i, 8));
        }
        let producer = thread::spawn(move || {
            let mut batch = tx.batch();
            batch.push(&message(0, 4)).unwrap();
            batch.push(&message(1, 4)).unwrap();
            batch.publish();
        });
        assert_eq!(pop_spinning(&mut rx), message(0, 4));
        let mut buf = [0u8; 8];
        let n = rx
            .pop(&mut buf)
            .expect("the batch's second message is visible with the first");
        assert_eq!(buf[..n], message(1, 4));
        // The header after the batch's last frame reads empty.
        assert_eq!(rx.read().unwrap_err(), ReadError::Empty);
        producer.join().unwrap();
    });
}

/// No lost wake-up on the empty side: the consumer blocks in wait_for_message, the
/// producer commits and calls wake_consumer. A lost wake-up is a loom deadlock.
/// Covers prepare_wait (fetch_or, fence) and notify (fence, load, fetch_add) on the
/// data signal.
#[test]
fn no_lost_wakeup_when_empty() {
    empty_side_model(|rx, futex| rx.wait_for_message(futex, None).unwrap());
}

/// The producer commits two messages, calling wake_consumer after each; the
/// consumer pops them, calling `wait` whenever the ring is empty.
fn empty_side_model(wait: fn(&mut Consumer<LoomRegion>, &LoomFutex)) {
    model(move || {
        let (mut tx, mut rx) = split(64);
        let futex = Arc::new(LoomFutex::new());
        let f = futex.clone();
        let producer = thread::spawn(move || {
            for i in 0..2 {
                tx.push(&message(i, 4)).unwrap();
                tx.wake_consumer(&*f);
            }
        });
        let mut buf = [0u8; 8];
        for i in 0..2 {
            let n = loop {
                match rx.pop(&mut buf) {
                    Ok(n) => break n,
                    Err(PopError::Empty) => wait(&mut rx, &futex),
                    Err(e) => panic!("pop: {e}"),
                }
            };
            assert_eq!(buf[..n], message(i, 4));
        }
        producer.join().unwrap();
    });
}

/// No lost doorbell ring: the consumer never sleeps on the futex; it arms its
/// readiness descriptor whenever the ring is empty and waits on the doorbell, as
/// a receiver in an event loop does (poll, drain, read until empty, arm again).
/// A notification that neither rings the doorbell nor is seen by the re-check
/// after arming leaves it asleep with a message in the ring: a deadlock. Covers
/// the ARMED bit: the waiter's `fetch_or` and fence, the notifier's fence, load,
/// `fetch_and` and ring.
#[test]
fn armed_consumer_is_rung_for_every_message() {
    empty_side_model(|rx, futex| match rx.arm_for_message(futex) {
        Readiness::Ready => {}
        Readiness::Armed => futex.wait_doorbell(),
    });
}

/// No lost wake-up on the full side: a 64-byte ring holds three 16-byte frames; the
/// producer blocks in wait_for_space for the fourth, the consumer releases and
/// calls wake_producer. Both sides block; nobody spins. Covers the space signal,
/// the consumer's publication (Release) and its waiter hint.
#[test]
fn no_lost_wakeup_when_full() {
    full_side_model(|tx, futex| tx.wait_for_space(8, futex, None).unwrap());
}

/// A 64-byte ring holds three 16-byte frames; the producer pushes four, calling
/// `wait` whenever the ring is full and wake_consumer after each; the consumer
/// pops them, blocking in wait_for_message while the ring is empty and calling
/// wake_producer after each.
fn full_side_model(wait: fn(&mut Producer<LoomRegion>, &LoomFutex)) {
    model(move || {
        let (mut tx, mut rx) = split(64);
        let futex = Arc::new(LoomFutex::new());
        let f = futex.clone();
        let producer = thread::spawn(move || {
            for i in 0..4 {
                let msg = message(i, 8);
                loop {
                    match tx.push(&msg) {
                        Ok(()) => break,
                        Err(PushError::Full { .. }) => wait(&mut tx, &f),
                        Err(e) => panic!("push: {e}"),
                    }
                }
                tx.wake_consumer(&*f);
            }
        });
        let mut buf = [0u8; 8];
        for i in 0..4 {
            let n = loop {
                match rx.pop(&mut buf) {
                    Ok(n) => break n,
                    Err(PopError::Empty) => rx.wait_for_message(&*futex, None).unwrap(),
                    Err(e) => panic!("pop: {e}"),
                }
            };
            assert_eq!(buf[..n], message(i, 8));
            rx.wake_producer(&*futex);
        }
        producer.join().unwrap();
    });
}

/// No lost doorbell ring on the full side: the producer never sleeps on the
/// futex; whenever the ring is full it arms its readiness descriptor for room
/// (`arm_for_space`) and waits on the doorbell, as a sender in an event loop does.
/// A release notification that neither rings the doorbell nor is seen by the
/// re-check after arming leaves it asleep with room in the ring: a deadlock.
/// Covers the ARMED bit on the space signal: the producer's `fetch_or` and fence,
/// the consumer's fence, load, `fetch_and` and ring. (Not the consumer's
/// publication: here it is always followed by the notifier's fence, and loom's
/// SeqCst fences synchronise with each other, so its weakening shows in other
/// models: `wrap_with_padding_keeps_order_and_bytes`, `read_batch_then_reuse`.)
#[test]
fn armed_producer_is_rung_when_room_appears() {
    full_side_model(|tx, futex| match tx.arm_for_space(8, futex).unwrap() {
        Readiness::Ready => {}
        Readiness::Armed => futex.wait_doorbell(),
    });
}

/// A deadline that has passed ends a wait with TimedOut, whatever the producer does.
#[test]
fn waits_time_out() {
    model(|| {
        let (mut tx, mut rx) = split(64);
        let futex = Arc::new(LoomFutex::new());
        let f = futex.clone();
        let producer = thread::spawn(move || {
            tx.push(&message(0, 4)).unwrap();
            tx.wake_consumer(&*f);
        });
        match rx.wait_for_message(&*futex, Some(Expired)) {
            Ok(()) | Err(WaitError::TimedOut) => {}
            Err(e) => panic!("wait: {e}"),
        }
        producer.join().unwrap();
        assert_eq!(pop_spinning(&mut rx), message(0, 4));
    });
}

/// The published write position covers committed frames: a consumer that sees
/// backlog > 0 finds the message. Covers publish_write (Release) and backlog
/// (Acquire).
#[test]
fn write_position_covers_committed_frames() {
    model(|| {
        let (mut tx, mut rx) = split(64);
        let producer = thread::spawn(move || tx.push(&message(0, 4)).unwrap());
        while rx.backlog().unwrap() == 0 {
            thread::yield_now();
        }
        let msg = rx
            .read()
            .expect("a message below the published write position");
        assert_eq!(*msg, message(0, 4));
        producer.join().unwrap();
    });
}

/// A producer that leaves hands over to the next: the second claims once the first
/// dropped, recovers the write position from the committed frames and appends.
/// Covers the producer claim (Acquire), Drop's release of the claim (Release) and the
/// recovery walk.
#[test]
fn producer_handover_appends_after_committed() {
    model(|| {
        let region = LoomRegion::new(64);
        let mut first = Producer::claim(region.clone(), token(1)).unwrap();
        let r = region.clone();
        let t = thread::spawn(move || {
            first.push(&message(0, 4)).unwrap();
            drop(first);
        });
        let mut second = loop {
            match Producer::claim(r.clone(), token(3)) {
                Ok(p) => break p,
                Err(ClaimError::Taken { .. }) => thread::yield_now(),
                Err(e) => panic!("claim: {e}"),
            }
        };
        second.push(&message(1, 4)).unwrap();
        t.join().unwrap();
        drop(second);
        let mut rx = Consumer::claim(region, token(2)).unwrap();
        assert_eq!(pop_spinning(&mut rx), message(0, 4));
        assert_eq!(pop_spinning(&mut rx), message(1, 4));
    });
}

/// A new producer writes only into space the consumer has finished with: capacity
/// 64, a 24-byte message (frame 16..48) being popped on one thread while a new
/// producer claims on another and pushes a 24-byte message, which fits only past a
/// padding frame at 48, at the start of the next lap (bytes 0..32), over the bytes
/// the consumer is copying out (24..48). So the new producer may write there only
/// after it has seen the consumer's publication of 48, and only if that
/// publication carries the consumer's reads: loom reports the race on bytes 24..32
/// otherwise. Covers `Producer::recover`'s Acquire load of `read_position` and the
/// `Consumer::publish` Release it pairs with.
#[test]
fn producer_recovery_sees_released_space() {
    model(|| {
        let region = LoomRegion::new(64);
        let mut rx = Consumer::claim(region.clone(), token(2)).unwrap();
        {
            let mut first = Producer::claim(region.clone(), token(1)).unwrap();
            // One frame of 16 bytes, consumed: the read position is 16.
            first.push(&message(0, 8)).unwrap();
            assert_eq!(pop_spinning(&mut rx), message(0, 8));
            // The frame the consumer thread copies out: 16..48.
            first.push(&message(1, 24)).unwrap();
        }
        let consumer = thread::spawn(move || {
            let got = pop_spinning(&mut rx);
            (rx, got)
        });
        let mut second = Producer::claim(region, token(3)).unwrap();
        // Padding 48..64, then the frame at 0..32 of the next lap: needs the read
        // position at 48.
        push_spinning(&mut second, &message(2, 24));
        let (mut rx, got) = consumer.join().unwrap();
        assert_eq!(got, message(1, 24));
        assert_eq!(pop_spinning(&mut rx), message(2, 24));
        assert_eq!(rx.read().unwrap_err(), ReadError::Empty);
    });
}

/// A consumer that leaves hands over to the next: what it released is not
/// delivered again. Covers the consumer claim (Acquire), Drop's release (Release)
/// and the Relaxed reads of read_position and the RELEASED marks it orders.
#[test]
fn consumer_handover_skips_released() {
    model(|| {
        let region = LoomRegion::new(64);
        let mut tx = Producer::claim(region.clone(), token(1)).unwrap();
        tx.push(&message(0, 4)).unwrap();
        tx.push(&message(1, 4)).unwrap();
        let mut first = Consumer::claim(region.clone(), token(2)).unwrap();
        let t = thread::spawn(move || {
            assert_eq!(pop_spinning(&mut first), message(0, 4));
            drop(first);
        });
        let mut second = loop {
            match Consumer::claim(region.clone(), token(4)) {
                Ok(c) => break c,
                Err(ClaimError::Taken { .. }) => thread::yield_now(),
                Err(e) => panic!("claim: {e}"),
            }
        };
        assert_eq!(pop_spinning(&mut second), message(1, 4));
        t.join().unwrap();
        drop(tx);
    });
}

/// Batched reads release with one publication, and the producer reuses the space
/// only after it: five 16-byte frames through a 64-byte ring (the fifth overwrites
/// the first's bytes), read two at a time.
/// Covers read_batch (Acquire loads, one Release publication).
#[test]
fn read_batch_then_reuse() {
    model(|| {
        let (mut tx, mut rx) = split(64);
        let producer = thread::spawn(move || {
            for i in 0..5 {
                push_spinning(&mut tx, &message(i, 8));
            }
        });
        let mut next = 0u8;
        while next < 5 {
            let n = rx
                .read_batch(2, |m| {
                    assert_eq!(m, message(next, 8));
                    next += 1;
                })
                .unwrap();
            if n == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.read().unwrap_err(), ReadError::Empty);
    });
}

/// Pushes `messages` in batches, publishing each batch when the ring is full and
/// waiting for room before the next.
fn batches_spinning(tx: &mut Producer<LoomRegion>, messages: &[Vec<u8>]) {
    let mut next = 0;
    while next < messages.len() {
        let mut batch = tx.batch();
        while next < messages.len() {
            match batch.push(&messages[next]) {
                Ok(()) => next += 1,
                Err(PushError::Full { .. }) => break,
                Err(e) => panic!("batch push: {e}"),
            }
        }
        batch.publish();
        if next < messages.len() {
            thread::yield_now();
        }
    }
}

/// Runs (same-length messages of a batch under one header) across a wrap, read
/// message by message, in place and in batches: capacity 64, three batches of
/// 8-byte messages, runs of 32, 24 and 32 bytes, the third behind an 8-byte padding
/// frame in the next lap and reusing the first run's bytes.
/// Covers close_run (run word Relaxed, published by the batch's Release), the
/// consumer's Relaxed load of the run word after its Acquire of the state word,
/// record_run_progress (run word Relaxed, ordered by the later publication), and the
/// release of a whole run (mark or publication).
#[test]
fn runs_across_a_wrap() {
    model(|| {
        let (mut tx, mut rx) = split(64);
        let sizes = [3, 2, 3];
        let producer = thread::spawn(move || {
            let mut index = 0;
            for n in sizes {
                let run: Vec<Vec<u8>> = (index..index + n).map(|i| message(i, 8)).collect();
                batches_spinning(&mut tx, &run);
                index += n;
            }
        });
        let total: u8 = sizes.iter().sum();
        let mut next = 0u8;
        while next < total {
            // In turn: a copy out, a read in place, a batch of up to two.
            match next % 3 {
                0 => {
                    assert_eq!(pop_spinning(&mut rx), message(next, 8));
                    next += 1;
                }
                1 => match rx.read() {
                    Ok(m) => {
                        assert_eq!(*m, message(next, 8)[..]);
                        m.release();
                        next += 1;
                    }
                    Err(ReadError::Empty) => thread::yield_now(),
                    Err(e) => panic!("read: {e}"),
                },
                _ => {
                    let n = rx
                        .read_batch(2, |m| {
                            assert_eq!(m, message(next, 8));
                            next += 1;
                        })
                        .unwrap();
                    if n == 0 {
                        thread::yield_now();
                    }
                }
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.read().unwrap_err(), ReadError::Empty);
    });
}
