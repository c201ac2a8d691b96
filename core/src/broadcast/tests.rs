//! The broadcast ring in one thread, over raw memory: delivery, laps, the gated
//! policies, joins, re-claims and hostile bytes.

extern crate std;

use core::num::NonZeroU32;
use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::layout::{data_segment_size, table_segment_size};
use super::*;

const CAPACITY: usize = 1024;
const SLOTS: usize = 4;

#[repr(C, align(128))]
struct Mem<const N: usize>([u8; N]);

const DATA: usize = data_segment_size(CAPACITY);
const TABLE: usize = table_segment_size(SLOTS);

/// A topic's two segments in heap memory, reached only through raw pointers (a
/// `Box` moved after the region took its pointers would, under Stacked Borrows,
/// invalidate them), freed on drop.
struct Topic {
    data: *mut Mem<DATA>,
    table: *mut Mem<TABLE>,
}

impl Drop for Topic {
    fn drop(&mut self) {
        // SAFETY: made by `Box::into_raw` in `new`, freed once, here; every region
        // over them is dropped first (tests drop the topic last).
        unsafe {
            drop(Box::from_raw(self.data));
            drop(Box::from_raw(self.table));
        }
    }
}

impl Topic {
    fn new(policy: Policy) -> (Self, RawBroadcastRegion) {
        let topic = Self {
            data: Box::into_raw(Box::new(Mem([0; DATA]))),
            table: Box::into_raw(Box::new(Mem([0; TABLE]))),
        };
        let config = BroadcastConfig {
            capacity: CAPACITY,
            slots: SLOTS,
            policy,
            cut_off_after_ms: 10,
            flags: 0,
            topic_id: 0x5eed,
        };
        // SAFETY: both buffers outlive the region (tests keep `topic` alive) and
        // are touched only through it and `overwrite`.
        let region = unsafe {
            RawBroadcastRegion::init(topic.data.cast(), DATA, topic.table.cast(), TABLE, config)
        }
        .unwrap();
        (topic, region)
    }

    fn attach(&mut self) -> RawBroadcastRegion {
        // SAFETY: as in `new`.
        unsafe { RawBroadcastRegion::attach(self.data.cast(), DATA, self.table.cast(), TABLE) }
            .unwrap()
    }

    /// A hostile peer's writes: `bytes` at `offset` of the data segment (`table`
    /// false) or of the table.
    fn overwrite(&mut self, table: bool, offset: usize, bytes: &[u8]) {
        let (base, len) = if table {
            (self.table.cast::<u8>(), TABLE)
        } else {
            (self.data.cast::<u8>(), DATA)
        };
        assert!(offset + bytes.len() <= len);
        // SAFETY: within the allocation (checked); a single thread, so nothing
        // reads them meanwhile.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(offset), bytes.len()) };
    }
}

fn token(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A message numbered `i` of `len` bytes (at least 8): the number, then a pattern.
fn message(i: u64, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|b| (b as u64 ^ i) as u8).collect();
    m[..8].copy_from_slice(&i.to_ne_bytes());
    m
}

fn number(m: &[u8]) -> u64 {
    u64::from_ne_bytes(m[..8].try_into().unwrap())
}

fn recv(sub: &mut BroadcastSubscriber<RawBroadcastRegion>) -> Result<Vec<u8>, BroadcastRecvError> {
    let mut buf = vec![0u8; CAPACITY];
    let n = sub.try_recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn every_subscriber_gets_every_message_in_order() {
    for policy in [Policy::Lossy, Policy::Gated, Policy::Strict] {
        let (_topic, region) = Topic::new(policy);
        let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
        let mut a = BroadcastSubscriber::join(region.clone(), token(2), Start::Newest).unwrap();
        let mut b = BroadcastSubscriber::join(region.clone(), token(3), Start::Newest).unwrap();
        assert_eq!(recv(&mut a), Err(BroadcastRecvError::Empty));
        // Many laps of the region, lengths crossing the 8-byte words and the end.
        for i in 0..if cfg!(miri) { 200 } else { 2_000u64 } {
            let len = 8 + (i as usize * 7) % 90;
            assert_eq!(
                publisher.try_publish(&message(i, len)),
                Ok(2),
                "{policy:?} {i}"
            );
            for sub in [&mut a, &mut b] {
                let got = recv(sub).unwrap();
                assert_eq!(got, message(i, len), "{policy:?} message {i}");
            }
        }
        assert_eq!(recv(&mut a), Err(BroadcastRecvError::Empty));
        assert_eq!(a.next_seq(), if cfg!(miri) { 201 } else { 2_001 });
    }
}

#[test]
fn a_lapped_subscriber_is_told_how_many_it_missed_and_goes_on_in_order() {
    let (_topic, region) = Topic::new(Policy::Lossy);
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let mut sub = BroadcastSubscriber::join(region.clone(), token(2), Start::Newest).unwrap();
    publisher.try_publish(&message(0, 8)).unwrap();
    assert_eq!(number(&recv(&mut sub).unwrap()), 0);
    // 24-byte frames: 1024 bytes hold 42; publish ten times that.
    for i in 1..=420u64 {
        publisher.try_publish(&message(i, 8)).unwrap();
    }
    let missed = match recv(&mut sub) {
        Err(BroadcastRecvError::Lagged { missed }) => missed,
        other => panic!("expected Lagged, got {other:?}"),
    };
    let first = number(&recv(&mut sub).unwrap());
    assert_eq!(first, 1 + missed, "the gap is what was reported");
    let mut next = first + 1;
    while let Ok(m) = recv(&mut sub) {
        assert_eq!(number(&m), next);
        next += 1;
    }
    assert_eq!(next, 421);
    assert!(
        missed >= 420 - 42,
        "at most a region's worth survives: missed {missed}"
    );
}

#[test]
fn a_gated_publisher_waits_for_the_slowest_then_cuts_it_off() {
    let (_topic, region) = Topic::new(Policy::Gated);
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let mut fast = BroadcastSubscriber::join(region.clone(), token(2), Start::Newest).unwrap();
    let mut slow = BroadcastSubscriber::join(region.clone(), token(3), Start::Newest).unwrap();
    let mut i = 0u64;
    let full_slot = loop {
        match publisher.try_publish(&message(i, 8)) {
            Ok(_) => {
                assert_eq!(number(&recv(&mut fast).unwrap()), i);
                i += 1;
            }
            Err(BroadcastPublishError::Full { slot }) => break slot,
            Err(e) => panic!("{e}"),
        }
        assert!(i < 1000, "never full");
    };
    assert_eq!(full_slot, slow.slot());
    // Nothing the slow subscriber has not read was overwritten.
    assert!(i >= 30, "a region's worth went before it filled: {i}");
    // It reads one: still full until it publishes its cursor (on `Empty`, or when
    // the publisher waits): read all, and the publisher goes on.
    for j in 0..i {
        assert_eq!(number(&recv(&mut slow).unwrap()), j);
    }
    assert_eq!(recv(&mut slow), Err(BroadcastRecvError::Empty));
    publisher.try_publish(&message(i, 8)).unwrap();
    i += 1;
    // Now the slow one stops; cut it off and the publisher goes on for laps.
    loop {
        match publisher.try_publish(&message(i, 8)) {
            Ok(_) => {
                recv(&mut fast).unwrap();
                i += 1;
            }
            Err(BroadcastPublishError::Full { slot }) => {
                assert_eq!(slot, slow.slot());
                publisher.cut_off(slot);
                assert!(publisher.is_cut_off(slot));
            }
            Err(e) => panic!("{e}"),
        }
        if i > 400 {
            break;
        }
    }
    // The cut-off subscriber reads on as a lossy one does.
    match recv(&mut slow) {
        Err(BroadcastRecvError::Lagged { missed }) => assert!(missed > 0),
        other => panic!("expected Lagged, got {other:?}"),
    }
    let m = recv(&mut slow).unwrap();
    assert!(number(&m) > 30);
}

#[test]
fn freeing_a_dead_subscribers_slot_unblocks_the_publisher() {
    let (_topic, region) = Topic::new(Policy::Strict);
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let dead = BroadcastSubscriber::join(region.clone(), token(7), Start::Newest).unwrap();
    let slot = dead.slot();
    // Its process died: nothing ran its drop.
    core::mem::forget(dead);
    let mut i = 0;
    let blocked = loop {
        match publisher.try_publish(&message(i, 8)) {
            Ok(_) => i += 1,
            Err(BroadcastPublishError::Full { slot }) => break slot,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(blocked, slot);
    assert_eq!(publisher.slot_owner(slot), 7);
    assert!(!publisher.free_slot(slot, 8), "another owner: not freed");
    assert!(publisher.free_slot(slot, 7));
    assert_eq!(publisher.try_publish(&message(i, 8)), Ok(0));
    // The slot can be taken again.
    let again = BroadcastSubscriber::join(region, token(9), Start::Oldest).unwrap();
    assert_eq!(again.slot(), slot);
}

#[test]
fn a_late_joiner_starts_at_the_newest_or_the_oldest_held() {
    for policy in [Policy::Lossy, Policy::Gated] {
        let (_topic, region) = Topic::new(policy);
        let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
        for i in 0..10 {
            publisher.try_publish(&message(i, 8)).unwrap();
        }
        let mut newest =
            BroadcastSubscriber::join(region.clone(), token(2), Start::Newest).unwrap();
        let mut oldest =
            BroadcastSubscriber::join(region.clone(), token(3), Start::Oldest).unwrap();
        assert_eq!(recv(&mut newest), Err(BroadcastRecvError::Empty));
        assert_eq!(number(&recv(&mut oldest).unwrap()), 0, "{policy:?}");
        publisher.try_publish(&message(10, 8)).unwrap();
        assert_eq!(number(&recv(&mut newest).unwrap()), 10);
        drop(newest);
        // Lossy, after laps: the oldest held is no longer 0.
        if policy == Policy::Lossy {
            for i in 11..200 {
                publisher.try_publish(&message(i, 8)).unwrap();
            }
            let mut late =
                BroadcastSubscriber::join(region.clone(), token(4), Start::Oldest).unwrap();
            let first = number(&recv(&mut late).unwrap());
            assert!(first > 100 && first < 199, "history starts at {first}");
            let mut next = first + 1;
            while let Ok(m) = recv(&mut late) {
                assert_eq!(number(&m), next);
                next += 1;
            }
            assert_eq!(next, 200);
        }
    }
}

#[test]
fn a_new_publisher_follows_the_old_one_without_gap_or_duplicate() {
    let (mut topic, region) = Topic::new(Policy::Lossy);
    let mut sub = BroadcastSubscriber::join(region.clone(), token(2), Start::Newest).unwrap();
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    for i in 0..50 {
        publisher.try_publish(&message(i, 8 + i as usize)).unwrap();
    }
    // The holder died: its claim is taken over from its token.
    core::mem::forget(publisher);
    assert_eq!(
        BroadcastPublisher::claim(topic.attach(), token(3)).map(|_| ()),
        Err(BroadcastClaimError::Taken { owner: 1 })
    );
    let mut publisher = BroadcastPublisher::claim_from(topic.attach(), 1, token(3)).unwrap();
    assert_eq!(publisher.next_seq(), 51);
    for i in 50..100 {
        publisher
            .try_publish(&message(i, 8 + i as usize % 40))
            .unwrap();
    }
    let mut next = 0;
    loop {
        match recv(&mut sub) {
            Ok(m) => {
                assert_eq!(number(&m), next);
                next += 1;
            }
            Err(BroadcastRecvError::Lagged { missed }) => next += missed,
            Err(BroadcastRecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, 100);
}

#[test]
fn a_batch_is_published_in_order_and_stops_at_what_does_not_fit() {
    let (_topic, region) = Topic::new(Policy::Strict);
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let mut sub = BroadcastSubscriber::join(region, token(2), Start::Newest).unwrap();
    let messages: Vec<Vec<u8>> = (0..100).map(|i| message(i, 16)).collect();
    let n = publisher
        .try_publish_batch(messages.iter().map(Vec::as_slice))
        .unwrap();
    assert!(n > 20 && n < 100, "a region holds some of them: {n}");
    for i in 0..n as u64 {
        assert_eq!(number(&recv(&mut sub).unwrap()), i);
    }
    let too_large = vec![0u8; CAPACITY];
    assert_eq!(
        publisher.try_publish_batch([too_large.as_slice()]),
        Err(BroadcastPublishError::MessageTooLarge {
            len: CAPACITY,
            max: publisher.max_message_len()
        })
    );
}

#[test]
fn attach_refuses_a_mismatched_pair() {
    let (mut one, _r1) = Topic::new(Policy::Lossy);
    let (two, _r2) = Topic::new(Policy::Gated);
    // SAFETY: the buffers outlive the call; nothing else touches them.
    let err = unsafe { RawBroadcastRegion::attach(one.data.cast(), DATA, two.table.cast(), TABLE) }
        .unwrap_err();
    assert!(
        matches!(
            err,
            crate::LayoutError::HeaderMismatch {
                field: "table policy",
                ..
            }
        ),
        "{err:?}"
    );
    let _ = one.attach();
}

proptest! {
    // Under Miri: 4 cases, unshrunk; no failure persistence (no file system under
    // Miri's isolation), as core/tests/model.rs.
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 64 },
        max_shrink_iters: if cfg!(miri) { 0 } else { ProptestConfig::default().max_shrink_iters },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever a hostile peer writes into the table and the data region, the
    /// publisher and a subscriber return values or errors: no panic, no access
    /// out of bounds (each copy is bounded by the region).
    #[test]
    fn hostile_bytes_cost_only_errors(
        table_noise in proptest::collection::vec(any::<u8>(), table_segment_size(SLOTS) - 256),
        data_noise in proptest::collection::vec(any::<u8>(), CAPACITY),
        lines in proptest::collection::vec(any::<u64>(), 4),
        policy in prop_oneof![Just(Policy::Lossy), Just(Policy::Gated), Just(Policy::Strict)],
    ) {
        let (mut topic, region) = Topic::new(policy);
        let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
        let mut sub = BroadcastSubscriber::join(region.clone(), token(2), Start::Oldest).unwrap();
        for i in 0..30 {
            let _ = publisher.try_publish(&message(i, 8 + i as usize));
        }
        topic.overwrite(true, 256, &table_noise);
        topic.overwrite(false, 384, &data_noise);
        for _ in 0..200 {
            let _ = publisher.try_publish(&message(7, 24));
            let _ = recv(&mut sub);
        }
        // The publisher's lines too, then a new publisher and subscriber.
        for (k, value) in lines.iter().enumerate() {
            topic.overwrite(false, 128 + k * 8, &value.to_ne_bytes());
        }
        for _ in 0..50 {
            let _ = recv(&mut sub);
        }
        drop(publisher);
        if let Ok(mut p) = BroadcastPublisher::claim(topic.attach(), token(5)) {
            for _ in 0..50 {
                let _ = p.try_publish(&message(9, 16));
                let _ = recv(&mut sub);
            }
        }
        let _ = BroadcastSubscriber::join(topic.attach(), token(6), Start::Oldest)
            .map(|mut s| { for _ in 0..50 { let _ = recv(&mut s); } });
    }
}

#[test]
fn a_strict_topic_is_written_and_read_in_place() {
    let (_topic, region) = Topic::new(Policy::Strict);
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let mut sub = BroadcastSubscriber::join(region.clone(), token(2), Start::Newest).unwrap();
    for i in 0..500u64 {
        let len = 8 + (i as usize * 5) % 40;
        let mut grant = publisher.grant(len + 8).unwrap();
        grant[..len].copy_from_slice(&message(i, len));
        assert_eq!(grant.commit(len), 1);
        {
            let m = sub.read().unwrap();
            assert_eq!(&m[..], &message(i, len)[..], "message {i}");
            assert_eq!(m.seq(), i + 1);
            if i % 2 == 1 {
                m.release();
            }
        }
        if i % 2 == 0 {
            // Not released: read again, by a copy.
            assert_eq!(recv(&mut sub).unwrap(), message(i, len));
        }
    }
    assert!(matches!(sub.read(), Err(BroadcastRecvError::Empty)));
    let (_lossy, region) = Topic::new(Policy::Lossy);
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let mut sub = BroadcastSubscriber::join(region, token(2), Start::Newest).unwrap();
    assert_eq!(
        publisher.grant(8).map(|_| ()),
        Err(BroadcastPublishError::InPlaceNeedsStrict {
            policy: Policy::Lossy
        })
    );
    assert!(matches!(
        sub.read(),
        Err(BroadcastRecvError::InPlaceNeedsStrict { .. })
    ));
}

/// A futex whose doorbell counts its rings (a single thread never sleeps).
#[derive(Default)]
struct Doorbell {
    rings: core::cell::Cell<u32>,
}

impl crate::Futex for Doorbell {
    type Deadline = ();

    fn wait(
        &self,
        _: &crate::sync::AtomicU32,
        _: u32,
        _: Option<()>,
    ) -> Result<(), crate::TimedOut> {
        panic!("a single thread would sleep forever")
    }

    fn wake(&self, _: &crate::sync::AtomicU32) {}

    fn has_doorbell(&self, _: &crate::sync::AtomicU32) -> bool {
        true
    }

    fn ring_doorbell(&self, _: &crate::sync::AtomicU32) {
        self.rings.set(self.rings.get() + 1);
    }
}

#[test]
fn an_armed_gated_publisher_is_rung_when_its_subscriber_moves() {
    use crate::Readiness;
    let (_topic, region) = Topic::new(Policy::Gated);
    let bell = Doorbell::default();
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let mut sub = BroadcastSubscriber::join(region, token(2), Start::Newest).unwrap();
    assert_eq!(publisher.arm_for_space(8, &bell), Ok(Readiness::Ready));
    let mut sent = 0;
    while publisher.try_publish(&message(sent, 8)).is_ok() {
        sent += 1;
    }
    assert_eq!(publisher.arm_for_space(8, &bell), Ok(Readiness::Armed));
    assert_eq!(publisher.slowest_slot(), sub.slot());
    assert_eq!(
        publisher.arm_for_space(CAPACITY, &bell),
        Err(BroadcastPublishError::MessageTooLarge {
            len: CAPACITY,
            max: publisher.max_message_len()
        })
    );
    assert_eq!(bell.rings.get(), 0, "nothing moved yet");
    // The subscriber reads one: the armed bit makes it publish its cursor, and
    // its notification rings once (the arming is consumed).
    assert_eq!(number(&recv(&mut sub).unwrap()), 0);
    sub.wake_publisher(&bell);
    assert_eq!(bell.rings.get(), 1);
    assert_eq!(number(&recv(&mut sub).unwrap()), 1);
    sub.wake_publisher(&bell);
    assert_eq!(bell.rings.get(), 1, "one ring per arming");
    for i in 2..sent {
        assert_eq!(number(&recv(&mut sub).unwrap()), i);
    }
    assert_eq!(recv(&mut sub), Err(BroadcastRecvError::Empty));
    assert_eq!(publisher.arm_for_space(8, &bell), Ok(Readiness::Ready));
    publisher.try_publish(&message(sent, 8)).unwrap();
}

#[test]
fn a_lossy_publisher_is_always_ready() {
    use crate::Readiness;
    let (_topic, region) = Topic::new(Policy::Lossy);
    let bell = Doorbell::default();
    let mut publisher = BroadcastPublisher::claim(region.clone(), token(1)).unwrap();
    let _sub = BroadcastSubscriber::join(region, token(2), Start::Newest).unwrap();
    for i in 0..200 {
        publisher.try_publish(&message(i, 8)).unwrap();
    }
    assert_eq!(publisher.arm_for_space(8, &bell), Ok(Readiness::Ready));
    assert!(publisher.arm_for_space(CAPACITY, &bell).is_err());
}
