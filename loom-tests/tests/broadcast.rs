//! Loom models of the broadcast ring: the real `shmring-core` code over
//! [`LoomBroadcastRegion`], loom's atomics.
//!
//! Every topic is the smallest (64 data bytes, messages up to 16 bytes) and
//! every message 8 bytes whose bytes say its number, so a frame of 24 bytes: the
//! third message wraps behind a padding frame and overwrites the first, and from
//! then on every message moves `oldest_position`. A torn copy (a payload from
//! another lap than its header) or a wrong message shows as bytes that do not
//! match the number the subscriber expected. Each model names the orderings it
//! covers; `loom-tests/MUTATIONS.md` records which model fails when each is
//! weakened. Bounds and times: the crate docs.
#![cfg(shmring_loom)]

use std::num::NonZeroU32;

use loom::sync::Arc;
use loom::thread;
use shmring_core::broadcast::{
    BroadcastPublishError, BroadcastPublisher, BroadcastRecvError, BroadcastSubscriber, Policy,
    Start,
};
use shmring_core::{Futex, Readiness};
use shmring_loom_tests::{LoomBroadcastRegion, LoomFutex, model_bounded};

type Publisher = BroadcastPublisher<LoomBroadcastRegion>;
type Subscriber = BroadcastSubscriber<LoomBroadcastRegion>;

/// The smallest data region.
const CAPACITY: usize = 64;

fn token(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// Message number `n`: 8 bytes, none zero, all of them saying `n`.
fn message(n: u64) -> [u8; 8] {
    let byte = 0x80 | n as u8;
    [byte; 8]
}

/// A topic with one subscriber slot, its publisher, and a subscriber joined
/// before anything is published.
fn topic(policy: Policy) -> (Publisher, Subscriber) {
    let region = LoomBroadcastRegion::new(CAPACITY, 1, policy);
    let tx = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let rx = BroadcastSubscriber::join(region, token(2), Start::Oldest).unwrap();
    (tx, rx)
}

/// Publishes message `n`, retrying on `Full` (yielding between tries).
fn publish_spinning(tx: &mut Publisher, n: u64) {
    loop {
        match tx.try_publish(&message(n)) {
            Ok(_) => return,
            Err(BroadcastPublishError::Full { .. }) => thread::yield_now(),
            Err(e) => panic!("publish {n}: {e}"),
        }
    }
}

/// What a subscriber has read, checked at every call: each message intact and
/// numbered one more than the last plus the `Lagged` counts reported since.
struct Reader {
    /// The last message's number (the one before the first, at the start).
    last: u64,
    /// Missed counts reported since the last message.
    missed: u64,
    /// Whether `Lagged` is allowed at all.
    lossy: bool,
}

impl Reader {
    /// A reader whose next message is `rx.next_seq()`.
    fn new(rx: &Subscriber, lossy: bool) -> Self {
        Self {
            last: rx.next_seq() - 1,
            missed: 0,
            lossy,
        }
    }

    /// One `try_recv`: the number of the message read, or `None` (`Empty`, or
    /// `Lagged` on a lossy reader).
    fn poll(&mut self, rx: &mut Subscriber) -> Option<u64> {
        let mut buf = [0u8; 16];
        let expected = rx.next_seq();
        match rx.try_recv(&mut buf) {
            Ok(len) => {
                assert_eq!(len, 8, "message {expected}: wrong length");
                assert_eq!(
                    buf[..8],
                    message(expected),
                    "message {expected}: torn or wrong bytes"
                );
                assert_eq!(
                    expected,
                    self.last + 1 + self.missed,
                    "message {expected} after {}: the gap is not the {} reported missed",
                    self.last,
                    self.missed
                );
                assert_eq!(rx.next_seq(), expected + 1);
                self.last = expected;
                self.missed = 0;
                Some(expected)
            }
            Err(BroadcastRecvError::Empty) => None,
            Err(BroadcastRecvError::Lagged { missed }) => {
                assert!(
                    self.lossy,
                    "Lagged {{ missed: {missed} }} on a gated reader"
                );
                assert!(missed > 0, "Lagged by nothing");
                assert_eq!(rx.next_seq(), expected + missed, "Lagged count");
                self.missed += missed;
                None
            }
            Err(e) => panic!("try_recv: {e}"),
        }
    }
}

/// A lossy publisher laps the region while a subscriber reads: every message
/// delivered is intact (never a payload of another lap under a valid header),
/// numbers strictly increase, and each gap equals the `Lagged` counts reported
/// before it. Four messages: the third and fourth overwrite the first two.
/// Covers: the sequence word's Release/Acquire (`store_header`, `next_frame`),
/// the publisher's Release fence after moving `oldest_position` and the
/// subscriber's Acquire fence before re-reading it (`advance_oldest`,
/// `lapped_at`).
#[test]
fn lossy_reader_never_gets_a_torn_message() {
    const MESSAGES: u64 = 4;
    model_bounded(3, || {
        let (mut tx, mut rx) = topic(Policy::Lossy);
        let publisher = thread::spawn(move || {
            for n in 1..=MESSAGES {
                tx.try_publish(&message(n)).unwrap();
            }
        });
        let mut reader = Reader::new(&rx, true);
        while reader.last < MESSAGES {
            if reader.poll(&mut rx).is_none() {
                thread::yield_now();
            }
        }
        publisher.join().unwrap();
    });
}

/// A gated publisher (retrying on `Full`) and a subscriber joined before it:
/// the subscriber reads every message, in order, intact, and is never lapped.
/// Covers: the subscriber's Release store of its cursor and the publisher's
/// Acquire load of it (`publish_cursor`, `scan`), besides the frame orderings.
#[test]
fn gated_subscriber_reads_every_message() {
    gated_model(Policy::Gated);
}

/// As `gated_subscriber_reads_every_message`, under `Policy::Strict`.
#[test]
fn strict_subscriber_reads_every_message() {
    gated_model(Policy::Strict);
}

fn gated_model(policy: Policy) {
    const MESSAGES: u64 = 4;
    model_bounded(3, move || {
        let (mut tx, mut rx) = topic(policy);
        let publisher = thread::spawn(move || {
            for n in 1..=MESSAGES {
                publish_spinning(&mut tx, n);
            }
        });
        let mut reader = Reader::new(&rx, false);
        assert_eq!(reader.last, 0);
        while reader.last < MESSAGES {
            if reader.poll(&mut rx).is_none() {
                thread::yield_now();
            }
        }
        publisher.join().unwrap();
    });
}

/// The join handshake: on a gated topic whose publisher has already lapped the
/// region once, a subscriber joins (`Start::Oldest`) while the publisher goes
/// on. The publisher either sees the join and waits for the joiner's cursor, or
/// the joiner sees the publisher's intent and starts at or past it: the joiner
/// is never `Lagged`, and reads from where its join said, in order, intact, to
/// the last message. Covers: `intent` (Release store, Acquire load), the SeqCst
/// fence pair of `gate` and `joined`, `joins` (Release increment, Acquire
/// load), and `write_position` (Release store, the joiner's Acquire load).
#[test]
fn joiner_is_never_lagged() {
    const BEFORE: u64 = 3;
    const MESSAGES: u64 = 4;
    model_bounded(3, || {
        let region = LoomBroadcastRegion::new(CAPACITY, 1, Policy::Gated);
        let mut tx = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
        for n in 1..=BEFORE {
            tx.try_publish(&message(n)).unwrap();
        }
        let publisher = thread::spawn(move || {
            for n in BEFORE + 1..=MESSAGES {
                publish_spinning(&mut tx, n);
            }
        });
        let mut rx = BroadcastSubscriber::join(region, token(2), Start::Oldest).unwrap();
        let mut reader = Reader::new(&rx, false);
        assert!(
            reader.last < MESSAGES,
            "a joiner asking for the oldest starts at message {}, past the last",
            reader.last + 1
        );
        while reader.last < MESSAGES {
            if reader.poll(&mut rx).is_none() {
                thread::yield_now();
            }
        }
        publisher.join().unwrap();
    });
}

/// A subscriber joins a lossy topic at its newest message while the publisher
/// publishes: it starts at a frame boundary the publisher has marked (never an
/// older lap's sequence word), and reads from where its join said, in order,
/// intact (`Lagged` allowed: the publisher laps it), to the last message.
/// Covers: `write_position` (Release store, the joiner's Acquire load), the
/// mark's publication, the joiner's Acquire load of the sequence word there.
#[test]
fn newest_joiner_starts_at_a_marked_boundary() {
    const MESSAGES: u64 = 3;
    model_bounded(2, || {
        let region = LoomBroadcastRegion::new(CAPACITY, 1, Policy::Lossy);
        let mut tx = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
        let publisher = thread::spawn(move || {
            for n in 1..=MESSAGES {
                tx.try_publish(&message(n)).unwrap();
            }
        });
        let mut rx = BroadcastSubscriber::join(region, token(2), Start::Newest).unwrap();
        let mut reader = Reader::new(&rx, true);
        while reader.last < MESSAGES {
            if reader.poll(&mut rx).is_none() {
                thread::yield_now();
            }
        }
        publisher.join().unwrap();
    });
}

/// A subscriber joins a lossy topic while the publisher publishes four
/// messages as one batch: the publisher stores `write_position` once, at the
/// end, so while the batch laps the region `oldest_position` runs past it. The
/// joiner starts where `oldest` is then (never a false `Corrupted`), at a
/// frame or mark the publisher stored before moving `oldest` there, and reads
/// in order, intact, to the last message. Covers: the Release store of
/// `oldest_position` and the joiner's Acquire load of it (`published_bounds`).
#[test]
fn joiner_during_a_batch_starts_at_oldest() {
    const MESSAGES: u64 = 4;
    model_bounded(2, || {
        let region = LoomBroadcastRegion::new(CAPACITY, 1, Policy::Lossy);
        let mut tx = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
        let publisher = thread::spawn(move || {
            let messages: Vec<[u8; 8]> = (1..=MESSAGES).map(message).collect();
            let sent = tx
                .try_publish_batch(messages.iter().map(|m| &m[..]))
                .unwrap();
            assert_eq!(sent, MESSAGES as usize);
        });
        let mut rx = BroadcastSubscriber::join(region, token(2), Start::Newest).unwrap();
        let mut reader = Reader::new(&rx, true);
        while reader.last < MESSAGES {
            if reader.poll(&mut rx).is_none() {
                thread::yield_now();
            }
        }
        publisher.join().unwrap();
    });
}

/// No lost wake-up of a subscriber: it blocks in `wait_for_message` whenever it
/// finds nothing; the publisher publishes two messages, calling `notify` after
/// each. A lost wake-up leaves the subscriber asleep: a loom deadlock. Covers:
/// the subscriber's registration (`waiters`, `prepare_wait`'s fence, the
/// re-check) and the publisher's `has_waiters` fence and walk.
#[test]
fn no_lost_wakeup_of_a_subscriber() {
    const MESSAGES: u64 = 2;
    model_bounded(3, || {
        let (mut tx, mut rx) = topic(Policy::Lossy);
        let futex = Arc::new(LoomFutex::new());
        let f = futex.clone();
        let publisher = thread::spawn(move || {
            for n in 1..=MESSAGES {
                tx.try_publish(&message(n)).unwrap();
                tx.notify(&*f);
            }
        });
        let mut reader = Reader::new(&rx, false);
        while reader.last < MESSAGES {
            if reader.poll(&mut rx).is_none() {
                rx.wait_for_message(&*futex, None).unwrap();
            }
        }
        publisher.join().unwrap();
    });
}

/// No lost wake-up of a gated publisher waiting for room: four messages through
/// a region that holds two, the publisher sleeping on the table's
/// `space_signal` whenever it finds the subscriber in its way, the subscriber
/// calling `wake_publisher` after each message it reads. A lost wake-up leaves
/// the publisher asleep and the subscriber spinning on an empty topic (loom's
/// branch limit). Covers: `prepare_wait_for_space` (the waiter's fence, the
/// re-scan), the cursor's Release store and `wake_publisher`'s fence.
#[test]
fn no_lost_wakeup_of_a_gated_publisher() {
    held_back_publisher_model(3, |tx, futex| {
        if let Some(key) = tx.prepare_wait_for_space(futex) {
            futex.wait(tx.space_signal(), key, None).unwrap();
        }
    });
}

/// No lost doorbell ring of a gated publisher armed for room: as
/// `no_lost_wakeup_of_a_gated_publisher`, but the publisher never sleeps on the
/// futex: whenever the subscriber holds it back it arms its readiness
/// descriptor (`arm_for_space`) and waits on the doorbell, as a publisher in an
/// event loop does. A subscriber's notification that neither rings the
/// doorbell nor is seen by the re-check after arming leaves it waiting with
/// room in the ring: a deadlock. Covers: the `ARMED` bit on `space_signal`
/// (`prepare_wait`'s `fetch_or` and fence, the re-check in `arm_for_space`:
/// without it the model deadlocks) and `wake_publisher`'s fence, load,
/// `fetch_and` and ring.
#[test]
fn an_armed_gated_publisher_is_rung_when_room_appears() {
    held_back_publisher_model(2, |tx, futex| match tx.arm_for_space(8, futex).unwrap() {
        Readiness::Ready => {}
        Readiness::Armed => futex.wait_doorbell(),
    });
}

/// Four messages through a gated region that holds two: the publisher calls
/// `wait` whenever its subscriber holds it back; the subscriber calls
/// `wake_publisher` after each message it reads and yields when it finds
/// nothing.
fn held_back_publisher_model(bound: usize, wait: fn(&mut Publisher, &LoomFutex)) {
    const MESSAGES: u64 = 4;
    model_bounded(bound, move || {
        let (mut tx, mut rx) = topic(Policy::Gated);
        let futex = Arc::new(LoomFutex::new());
        let f = futex.clone();
        let publisher = thread::spawn(move || {
            for n in 1..=MESSAGES {
                loop {
                    match tx.try_publish(&message(n)) {
                        Ok(_) => break,
                        Err(BroadcastPublishError::Full { .. }) => wait(&mut tx, &f),
                        Err(e) => panic!("publish {n}: {e}"),
                    }
                }
            }
        });
        let mut reader = Reader::new(&rx, false);
        while reader.last < MESSAGES {
            if reader.poll(&mut rx).is_some() {
                rx.wake_publisher(&*futex);
            } else {
                thread::yield_now();
            }
        }
        publisher.join().unwrap();
    });
}

/// Two subscribers of a gated topic: one reads every message, the other reads
/// the first and then leaves (drops: its slot is freed) or dies (never touches
/// the topic again, its handle kept from its drop). The publisher, held back by
/// the second one's slot, asks its holder's liveness, here by joining its
/// thread (which orders everything the holder did before the answer, as the
/// `shmring` crate's lock system calls do); a dead holder's slot it frees
/// (`free_slot`). The publisher and the first subscriber wait for each other by
/// the futex, as in the wake-up models. Nobody is wedged, and the first
/// subscriber reads every message, in order, intact. Covers: the owner word's
/// release on leave, `free_slot`, the scan's skip of a free slot and its rescan
/// after either, `prepare_wait_for_space` with two subscribers.
fn second_subscriber_goes(dies: bool) {
    const MESSAGES: u64 = 3;
    model_bounded(1, move || {
        let region = LoomBroadcastRegion::new(CAPACITY, 2, Policy::Gated);
        let mut tx = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
        let mut stays = BroadcastSubscriber::join(region.clone(), token(2), Start::Oldest).unwrap();
        let mut goes = BroadcastSubscriber::join(region, token(3), Start::Oldest).unwrap();
        let gone_slot = goes.slot();
        let goer = thread::spawn(move || {
            let mut reader = Reader::new(&goes, false);
            while reader.poll(&mut goes).is_none() {
                thread::yield_now();
            }
            // Dying: the handle is kept from its drop and handed back, to be
            // dropped when the model is over (loom checks for leaks).
            dies.then_some(goes)
        });
        let futex = Arc::new(LoomFutex::new());
        let f = futex.clone();
        let publisher = thread::spawn(move || {
            let mut goer = Some(goer);
            let mut corpse = None;
            for n in 1..=MESSAGES {
                loop {
                    match tx.try_publish(&message(n)) {
                        Ok(_) => break,
                        Err(BroadcastPublishError::Full { slot }) if slot == gone_slot => {
                            let goer = goer.take().expect("held back again after it went");
                            corpse = goer.join().unwrap();
                            if corpse.is_some() {
                                assert!(tx.free_slot(slot, 3), "the dead holder's slot");
                            }
                        }
                        Err(BroadcastPublishError::Full { .. }) => {
                            if let Some(key) = tx.prepare_wait_for_space(&*f) {
                                f.wait(tx.space_signal(), key, None).unwrap();
                            }
                        }
                        Err(e) => panic!("publish {n}: {e}"),
                    }
                }
                tx.notify(&*f);
            }
            (goer, corpse)
        });
        let mut reader = Reader::new(&stays, false);
        while reader.last < MESSAGES {
            if reader.poll(&mut stays).is_some() {
                stays.wake_publisher(&*futex);
            } else {
                stays.wait_for_message(&*futex, None).unwrap();
            }
        }
        let (goer, corpse) = publisher.join().unwrap();
        if let Some(goer) = goer {
            drop(goer.join().unwrap());
        }
        drop(corpse);
    });
}

/// `second_subscriber_goes`, the second leaving.
#[test]
fn a_subscriber_that_leaves_holds_nothing_back() {
    second_subscriber_goes(false);
}

/// `second_subscriber_goes`, the second dying.
#[test]
fn a_dead_subscribers_slot_is_freed() {
    second_subscriber_goes(true);
}
