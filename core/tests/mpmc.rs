//! The MPMC ring over raw memory: the API's contracts, bad input, the layout's
//! validation, recovery from dead endpoints (played by poking the segment), and a
//! threaded run checking exactly-once, per-producer FIFO delivery.
#![allow(
    clippy::disallowed_types,
    reason = "the test's own flags and counters, not the ring's atomics"
)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use common::{GuardedMemory, token};
use shmring_core::mpmc::layout::{INTENT_NONE, MPMC_HEAD_OFFSET, MPMC_TAIL_OFFSET};
use shmring_core::{
    LayoutError, Liveness, MpmcConsumer, MpmcGeometry, MpmcLayoutError, MpmcPopError, MpmcProducer,
    MpmcPushError, MpmcRegion, MpmcRegisterError, RawMpmcRegion, RawRegion, Recovery,
    mpmc_segment_layout,
};

/// Liveness for the tests: a flag per entry, all alive at first.
struct Flags(Vec<AtomicBool>);

impl Flags {
    fn new(n: usize) -> Self {
        Self((0..n).map(|_| AtomicBool::new(true)).collect())
    }
    fn kill(&self, entry: usize) {
        self.0[entry].store(false, Ordering::SeqCst);
    }
}

// SAFETY: the tests kill an entry only after the endpoint in it is gone for good
// (leaked with `mem::forget` or simulated by poking the segment).
unsafe impl Liveness for Flags {
    fn is_alive(&self, entry: usize) -> bool {
        self.0[entry].load(Ordering::SeqCst)
    }
}

fn ring(slots: usize, slot_size: usize, endpoints: usize) -> (GuardedMemory, RawMpmcRegion) {
    let size = mpmc_segment_layout(slots, slot_size, endpoints)
        .unwrap()
        .size();
    let mem = GuardedMemory::new(size);
    // SAFETY: every test keeps `mem` alive longer than the region and its handles.
    let region =
        unsafe { RawMpmcRegion::init(mem.ptr(), mem.len(), slots, slot_size, endpoints) }.unwrap();
    (mem, region)
}

fn peek_u64(mem: &GuardedMemory, at: usize) -> u64 {
    u64::from_ne_bytes(mem.peek::<8>(at))
}

#[test]
fn send_and_receive_in_order_across_laps() {
    let (_mem, region) = ring(4, 16, 2);
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut rx = MpmcConsumer::register(region, token(2)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.pop(&mut buf), Err(MpmcPopError::Empty));
    for lap in 0..5u8 {
        for i in 0..4u8 {
            let msg = vec![lap * 4 + i; usize::from(i) * 5 + 1];
            tx.push(&msg).unwrap();
        }
        assert_eq!(tx.push(b"x"), Err(MpmcPushError::Full));
        for i in 0..4u8 {
            let n = rx.pop(&mut buf).unwrap();
            assert_eq!(&buf[..n], vec![lap * 4 + i; usize::from(i) * 5 + 1]);
        }
        assert_eq!(rx.pop(&mut buf), Err(MpmcPopError::Empty));
    }
    assert_eq!(tx.stats(), Default::default());
}

#[test]
fn empty_and_full_slot_sized_messages() {
    let (_mem, region) = ring(2, 8, 2);
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut rx = MpmcConsumer::register(region, token(2)).unwrap();
    tx.push(b"").unwrap();
    tx.push(b"12345678").unwrap();
    assert_eq!(
        tx.push(b"123456789"),
        Err(MpmcPushError::TooLarge { len: 9, max: 8 })
    );
    let mut buf = [0u8; 8];
    assert_eq!(rx.pop(&mut buf), Ok(0));
    assert_eq!(
        rx.pop(&mut buf[..4]),
        Err(MpmcPopError::BufferTooSmall { len: 8, buffer: 4 })
    );
    // Nothing was consumed by the failed call.
    assert_eq!(rx.pop(&mut buf), Ok(8));
    assert_eq!(&buf, b"12345678");
}

#[test]
fn bad_shapes_get_named_errors() {
    assert_eq!(
        mpmc_segment_layout(4, 0, 2),
        Err(MpmcLayoutError::InvalidSlotSize {
            slot_size: 0,
            max: 1 << 24
        })
    );
    assert_eq!(
        mpmc_segment_layout(3, 8, 2),
        Err(MpmcLayoutError::InvalidSlotCount { slots: 3 })
    );
    assert_eq!(
        mpmc_segment_layout(1, 8, 2),
        Err(MpmcLayoutError::InvalidSlotCount { slots: 1 })
    );
    assert_eq!(
        mpmc_segment_layout(4, 8, 0),
        Err(MpmcLayoutError::InvalidEndpointCount {
            endpoints: 0,
            max: 1024
        })
    );
    assert!(matches!(
        mpmc_segment_layout(1 << 24, 1 << 24, 2),
        Err(MpmcLayoutError::SegmentTooLarge { .. })
    ));
    let g = MpmcGeometry::new(4, 13, 3).unwrap();
    assert_eq!(g.slot_stride(), 8 + 16);
    assert_eq!(g.slots_offset(), 512 + 3 * 128);
    assert_eq!(g.segment_size(), 512 + 3 * 128 + 4 * 24);
    // init checks the memory too.
    let mem = GuardedMemory::new(4096);
    // SAFETY: `mem` outlives the (failed) calls.
    let short = unsafe { RawMpmcRegion::init(mem.ptr(), 600, 4, 8, 2) };
    assert_eq!(
        short.unwrap_err(),
        MpmcLayoutError::Segment(LayoutError::TooSmall {
            len: 600,
            required: 512 + 256 + 4 * 16
        })
    );
    // SAFETY: as above.
    let misaligned = unsafe { RawMpmcRegion::init(mem.ptr().wrapping_add(8), 2048, 4, 8, 2) };
    assert!(matches!(
        misaligned,
        Err(MpmcLayoutError::Segment(LayoutError::Misaligned { .. }))
    ));
}

#[test]
fn table_full_and_entry_errors() {
    let (_mem, region) = ring(4, 8, 2);
    let tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let rx = MpmcConsumer::register(region.clone(), token(2)).unwrap();
    assert_eq!((tx.entry(), rx.entry()), (0, 1));
    assert_eq!(
        MpmcProducer::register(region.clone(), token(3)).unwrap_err(),
        MpmcRegisterError::TableFull { endpoints: 2 }
    );
    assert_eq!(
        MpmcConsumer::register_at(region.clone(), 2, token(3)).unwrap_err(),
        MpmcRegisterError::EntryOutOfRange {
            entry: 2,
            endpoints: 2
        }
    );
    assert_eq!(
        MpmcConsumer::register_at(region.clone(), 0, token(3)).unwrap_err(),
        MpmcRegisterError::Taken { entry: 0, owner: 1 }
    );
    // Dropping frees the entry; the next registration bumps its generation.
    let generation = tx.generation();
    drop(tx);
    let tx = MpmcProducer::register_at(region.clone(), 0, token(4)).unwrap();
    assert_eq!(tx.generation(), generation.wrapping_add(1));
    // A take-over names the previous holder.
    std::mem::forget(rx);
    assert_eq!(
        // SAFETY: the handle of token 2 was leaked and is never used again.
        unsafe { MpmcConsumer::take_over_at(region.clone(), 1, token(5), token(9)) }.unwrap_err(),
        MpmcRegisterError::Taken { entry: 1, owner: 2 }
    );
    // SAFETY: as above.
    let rx = unsafe { MpmcConsumer::take_over_at(region, 1, token(5), token(2)) }.unwrap();
    assert_eq!(rx.entry(), 1);
}

#[test]
fn attach_validates_every_field() {
    let (mem, region) = ring(8, 24, 3);
    let geometry = region.geometry();
    // SAFETY: `mem` outlives the regions made here.
    let attached = unsafe { RawMpmcRegion::attach(mem.ptr(), mem.len()) }.unwrap();
    assert_eq!(attached.geometry(), geometry);
    // SPSC attach refuses an MPMC segment and names the kind.
    // SAFETY: as above.
    let spsc = unsafe { RawRegion::attach(mem.ptr(), mem.len()) };
    assert_eq!(
        spsc.unwrap_err(),
        LayoutError::WrongKind {
            found: 2,
            expected: 1
        }
    );
    let attach = || {
        // SAFETY: as above.
        unsafe { RawMpmcRegion::attach(mem.ptr(), mem.len()) }.map(|_| ())
    };
    let cases: &[(usize, &[u8], MpmcLayoutError)] = &[
        (
            12,
            &1u32.to_ne_bytes(),
            LayoutError::WrongKind {
                found: 1,
                expected: 2,
            }
            .into(),
        ),
        (
            8,
            &7u32.to_ne_bytes(),
            LayoutError::UnsupportedVersion {
                found: 7,
                supported: shmring_core::LAYOUT_VERSION,
            }
            .into(),
        ),
        (
            16,
            &6u64.to_ne_bytes(),
            MpmcLayoutError::InvalidSlotCount { slots: 6 },
        ),
        (
            24,
            &0u32.to_ne_bytes(),
            MpmcLayoutError::InvalidSlotSize {
                slot_size: 0,
                max: 1 << 24,
            },
        ),
        (
            28,
            &17u32.to_ne_bytes(),
            LayoutError::HeaderMismatch {
                field: "slot_stride",
                found: 17,
                expected: 32,
            }
            .into(),
        ),
        (
            32,
            &0u32.to_ne_bytes(),
            MpmcLayoutError::InvalidEndpointCount {
                endpoints: 0,
                max: 1024,
            },
        ),
        (
            36,
            &64u32.to_ne_bytes(),
            LayoutError::HeaderMismatch {
                field: "entry_size",
                found: 64,
                expected: 128,
            }
            .into(),
        ),
        (
            40,
            &0u64.to_ne_bytes(),
            LayoutError::HeaderMismatch {
                field: "table_offset",
                found: 0,
                expected: 512,
            }
            .into(),
        ),
        (
            48,
            &0u64.to_ne_bytes(),
            LayoutError::HeaderMismatch {
                field: "slots_offset",
                found: 0,
                expected: 512 + 3 * 128,
            }
            .into(),
        ),
        (
            56,
            &1u64.to_ne_bytes(),
            LayoutError::HeaderMismatch {
                field: "segment_size",
                found: 1,
                expected: 512 + 3 * 128 + 8 * 32,
            }
            .into(),
        ),
        (
            64,
            &4u32.to_ne_bytes(),
            LayoutError::HeaderMismatch {
                field: "flags",
                found: 4,
                expected: 0,
            }
            .into(),
        ),
        (0, &0u64.to_ne_bytes(), LayoutError::Uninitialized.into()),
    ];
    for (at, bytes, expected) in cases {
        let saved = mem.peek::<8>(*at);
        mem.poke(*at, bytes);
        assert_eq!(attach(), Err(*expected), "field at {at}");
        mem.poke(*at, &saved);
        attach().unwrap();
    }
    // Memory shorter than the header says.
    // SAFETY: as above.
    let short = unsafe { RawMpmcRegion::attach(mem.ptr(), 600) };
    assert!(matches!(
        short,
        Err(MpmcLayoutError::Segment(LayoutError::TooSmall {
            len: 600,
            ..
        }))
    ));
}

/// Plays a producer of entry `entry` that claimed the tail position and died:
/// writes its intent, then moves the tail, as `push` does before it writes.
fn play_dead_producer_claim(mem: &GuardedMemory, geometry: MpmcGeometry, entry: usize) -> u64 {
    let tail = peek_u64(mem, MPMC_TAIL_OFFSET);
    mem.poke(geometry.entry_offset(entry), &tail.to_ne_bytes());
    mem.poke(MPMC_TAIL_OFFSET, &(tail + 1).to_ne_bytes());
    tail
}

#[test]
fn dead_producer_claim_is_skipped_and_counted() {
    let (mem, region) = ring(4, 8, 4);
    let geometry = region.geometry();
    let flags = Flags::new(4);
    let dead = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let dead_entry = dead.entry();
    std::mem::forget(dead);
    let mut tx = MpmcProducer::register(region.clone(), token(2)).unwrap();
    let mut rx = MpmcConsumer::register(region.clone(), token(3)).unwrap();
    let mut rx2 = MpmcConsumer::register(region.clone(), token(4)).unwrap();
    tx.push(b"before").unwrap();
    let stalled = play_dead_producer_claim(&mem, geometry, dead_entry);
    tx.push(b"after").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(rx.pop(&mut buf), Ok(6));
    assert_eq!(
        rx.pop(&mut buf),
        Err(MpmcPopError::Stalled { position: stalled })
    );
    // Alive: waited for, not skipped.
    assert_eq!(
        rx.skip_dead_producer(stalled, &flags),
        Ok(Recovery::ClaimantAlive { entry: dead_entry })
    );
    flags.kill(dead_entry);
    assert_eq!(
        rx.skip_dead_producer(stalled, &flags),
        Ok(Recovery::Recovered)
    );
    // A second consumer agrees: nothing left to skip.
    assert_eq!(
        rx2.skip_dead_producer(stalled, &flags),
        Ok(Recovery::AlreadyMoved)
    );
    assert_eq!(rx2.pop(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"after");
    assert_eq!(rx.stats().skipped, 1);
    assert_eq!(rx.stats().lost, 0);
    // The skipped slot is reused on the next lap.
    for i in 0..4u8 {
        tx.push(&[i]).unwrap();
    }
    for i in 0..4u8 {
        assert_eq!(rx.pop(&mut buf), Ok(1));
        assert_eq!(buf[0], i);
    }
}

#[test]
fn head_left_behind_by_a_skipper_is_helped_forward() {
    let (mem, region) = ring(4, 8, 3);
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut rx = MpmcConsumer::register(region.clone(), token(2)).unwrap();
    tx.push(b"a").unwrap();
    tx.push(b"b").unwrap();
    // A skipper that died after marking slot 0 skipped (seq = 0 + 4) but before
    // advancing the head: the message "a" was there, so play it as if position 0
    // had been a dead claim instead.
    let slot0 = region.geometry().slot_offset(0);
    mem.poke(slot0, &region.geometry().slot_state(4, 0).to_ne_bytes());
    let mut buf = [0u8; 8];
    assert_eq!(rx.pop(&mut buf), Ok(1));
    assert_eq!(buf[0], b'b');
    assert_eq!(peek_u64(&mem, MPMC_HEAD_OFFSET), 2);
}

/// An endpoint's intent keeps naming its last position after the operation: a
/// live, idle producer whose last message a consumer claimed and then died with
/// must not look like that consumer to the recovery scan (which looks at
/// consumers' entries only), or the slot would never be reclaimed.
#[test]
fn idle_producer_intent_does_not_block_reclaim() {
    let (mem, region) = ring(2, 8, 4);
    let geometry = region.geometry();
    let flags = Flags::new(4);
    let mut idle = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut tx = MpmcProducer::register(region.clone(), token(2)).unwrap();
    let dead = MpmcConsumer::register(region.clone(), token(3)).unwrap();
    let dead_entry = dead.entry();
    std::mem::forget(dead);
    idle.push(b"lost").unwrap();
    tx.push(b"kept").unwrap();
    // The idle producer's entry still names position 0, its last message.
    assert_eq!(peek_u64(&mem, geometry.entry_offset(idle.entry())), 0);
    reclaim_from_consumer_dead_at_0(&mem, &mut tx, dead_entry, &flags);
    assert_eq!(tx.stats().lost, 1);
}

/// Plays the consumer of entry `dead_entry` claiming position 0 (intent, then
/// head) and dying while it copies, in a 2-slot ring holding two messages: `tx`'s
/// next send stalls at position 2, a reclaim waits while the entry is alive and
/// succeeds once `flags` marks it dead.
fn reclaim_from_consumer_dead_at_0(
    mem: &GuardedMemory,
    tx: &mut MpmcProducer<RawMpmcRegion>,
    dead_entry: usize,
    flags: &Flags,
) {
    let geometry = tx.geometry();
    mem.poke(geometry.entry_offset(dead_entry), &0u64.to_ne_bytes());
    mem.poke(MPMC_HEAD_OFFSET, &1u64.to_ne_bytes());
    assert_eq!(
        tx.push(b"next"),
        Err(MpmcPushError::Stalled { position: 2 })
    );
    assert_eq!(
        tx.reclaim_from_dead_consumer(2, flags),
        Ok(Recovery::ClaimantAlive { entry: dead_entry })
    );
    flags.kill(dead_entry);
    assert_eq!(
        tx.reclaim_from_dead_consumer(2, flags),
        Ok(Recovery::Recovered)
    );
}

#[test]
fn dead_consumer_slot_is_reclaimed_and_counted() {
    let (mem, region) = ring(2, 8, 3);
    let flags = Flags::new(3);
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let dead = MpmcConsumer::register(region.clone(), token(2)).unwrap();
    let dead_entry = dead.entry();
    std::mem::forget(dead);
    let mut rx = MpmcConsumer::register(region.clone(), token(3)).unwrap();
    tx.push(b"lost").unwrap();
    tx.push(b"kept").unwrap();
    reclaim_from_consumer_dead_at_0(&mem, &mut tx, dead_entry, &flags);
    assert_eq!(
        tx.reclaim_from_dead_consumer(2, &flags),
        Ok(Recovery::AlreadyMoved)
    );
    tx.push(b"next").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(rx.pop(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"kept");
    assert_eq!(rx.pop(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"next");
    assert_eq!(rx.stats().lost, 1);
    assert_eq!(rx.stats().skipped, 0);
    // A ring that is merely full is not reclaimed.
    tx.push(b"1").unwrap();
    tx.push(b"2").unwrap();
    assert_eq!(tx.push(b"3"), Err(MpmcPushError::Full));
    assert_eq!(
        tx.reclaim_from_dead_consumer(6, &flags),
        Ok(Recovery::AlreadyMoved)
    );
    assert_eq!(rx.stats().lost, 1);
}

/// Two consumers die holding messages no producer comes round to (the ring does
/// not wrap): `reclaim_dead_consumers` frees both and counts them, so committed =
/// delivered + lost. Live holders and dead consumers' finished positions are not
/// counted, and a second call counts nothing more.
#[test]
fn messages_held_by_dead_consumers_are_counted_when_reclaimed() {
    let (mem, region) = ring(8, 8, 4);
    let flags = Flags::new(4);
    let geometry = region.geometry();
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let dead: Vec<usize> = (0..2)
        .map(|i| {
            let c = MpmcConsumer::register(region.clone(), token(2 + i)).unwrap();
            let entry = c.entry();
            std::mem::forget(c);
            entry
        })
        .collect();
    let mut rx = MpmcConsumer::register(region.clone(), token(9)).unwrap();
    const COMMITTED: u64 = 4;
    for seq in 0..COMMITTED {
        tx.push(&seq.to_ne_bytes()).unwrap();
    }
    // Each dead consumer claimed one position (intent, then head) and died
    // copying it.
    for (position, &entry) in dead.iter().enumerate() {
        mem.poke(
            geometry.entry_offset(entry),
            &(position as u64).to_ne_bytes(),
        );
    }
    mem.poke(MPMC_HEAD_OFFSET, &2u64.to_ne_bytes());
    let mut buf = [0u8; 8];
    let mut delivered = 0;
    while let Ok(8) = rx.pop(&mut buf) {
        assert_eq!(u64::from_ne_bytes(buf), 2 + delivered);
        delivered += 1;
    }
    assert_eq!(delivered, 2);
    // While they are alive, they are copying: nothing is freed.
    assert_eq!(rx.reclaim_dead_consumers(&flags), Ok(0));
    assert_eq!(rx.stats().lost, 0);
    for &entry in &dead {
        flags.kill(entry);
    }
    assert_eq!(rx.reclaim_dead_consumers(&flags), Ok(2));
    assert_eq!(tx.stats().lost, 2);
    assert_eq!(delivered + tx.stats().lost, COMMITTED);
    // A dead consumer whose last position it freed took nothing with it.
    let rx_entry = rx.entry();
    std::mem::forget(rx);
    flags.kill(rx_entry);
    assert_eq!(tx.reclaim_dead_consumers(&flags), Ok(0));
    assert_eq!(tx.stats().lost, 2);
    // The freed slots take the next lap.
    for seq in 0..8u64 {
        tx.push(&seq.to_ne_bytes()).unwrap();
    }
    assert_eq!(tx.push(b"full"), Err(MpmcPushError::Full));
}

/// `pop` writes its intent before it looks at the slot: a poll that finds the
/// ring empty withdraws it, or the idle consumer, alive and naming position 0,
/// would look like the claimant of a slot a dead consumer took there later.
#[test]
fn empty_poll_leaves_no_intent_to_block_reclaim() {
    let (mem, region) = ring(2, 8, 4);
    let flags = Flags::new(4);
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut idle = MpmcConsumer::register(region.clone(), token(2)).unwrap();
    let dead = MpmcConsumer::register(region.clone(), token(3)).unwrap();
    let dead_entry = dead.entry();
    std::mem::forget(dead);
    let mut buf = [0u8; 8];
    assert_eq!(idle.pop(&mut buf), Err(MpmcPopError::Empty));
    let geometry = region.geometry();
    assert_eq!(
        peek_u64(&mem, geometry.entry_offset(idle.entry())),
        INTENT_NONE
    );
    tx.push(b"lost").unwrap();
    tx.push(b"kept").unwrap();
    reclaim_from_consumer_dead_at_0(&mem, &mut tx, dead_entry, &flags);
    assert_eq!(tx.stats().lost, 1);
}

/// As above for producers: a send that finds the ring full withdraws the intent it
/// wrote for the tail position, so it does not hold up the skip of a dead
/// producer's claim there.
#[test]
fn full_poll_leaves_no_intent_to_block_skip() {
    let (mem, region) = ring(2, 8, 4);
    let geometry = region.geometry();
    let flags = Flags::new(4);
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut idle = MpmcProducer::register(region.clone(), token(2)).unwrap();
    let dead = MpmcProducer::register(region.clone(), token(3)).unwrap();
    let dead_entry = dead.entry();
    std::mem::forget(dead);
    let mut rx = MpmcConsumer::register(region.clone(), token(4)).unwrap();
    tx.push(b"first").unwrap();
    tx.push(b"second").unwrap();
    assert_eq!(idle.push(b"no room"), Err(MpmcPushError::Full));
    assert_eq!(
        peek_u64(&mem, geometry.entry_offset(idle.entry())),
        INTENT_NONE
    );
    let mut buf = [0u8; 8];
    assert_eq!(rx.pop(&mut buf), Ok(5));
    // The dead producer claims position 2, where `idle` found no room.
    let stalled = play_dead_producer_claim(&mem, geometry, dead_entry);
    assert_eq!(stalled, 2);
    assert_eq!(rx.pop(&mut buf), Ok(6));
    assert_eq!(
        rx.pop(&mut buf),
        Err(MpmcPopError::Stalled { position: stalled })
    );
    flags.kill(dead_entry);
    assert_eq!(
        rx.skip_dead_producer(stalled, &flags),
        Ok(Recovery::Recovered)
    );
    assert_eq!(rx.stats().skipped, 1);
}

/// The other returns without a claim withdraw the intent too: a message too large
/// for the buffer, and a stall on either side.
#[test]
fn calls_without_a_claim_leave_no_intent() {
    let (mem, region) = ring(2, 8, 4);
    let geometry = region.geometry();
    let intent_of = |entry: usize| peek_u64(&mem, geometry.entry_offset(entry));
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut rx = MpmcConsumer::register(region.clone(), token(2)).unwrap();
    let dead = MpmcProducer::register(region.clone(), token(3)).unwrap();
    let dead_entry = dead.entry();
    std::mem::forget(dead);
    tx.push(b"12345678").unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        rx.pop(&mut small),
        Err(MpmcPopError::BufferTooSmall { len: 8, buffer: 4 })
    );
    assert_eq!(intent_of(rx.entry()), INTENT_NONE);
    let mut buf = [0u8; 8];
    assert_eq!(rx.pop(&mut buf), Ok(8));
    // A consumer stalled on a claim that was never published.
    let stalled = play_dead_producer_claim(&mem, geometry, dead_entry);
    assert_eq!(
        rx.pop(&mut buf),
        Err(MpmcPopError::Stalled { position: stalled })
    );
    assert_eq!(intent_of(rx.entry()), INTENT_NONE);
    // A producer stalled on a slot a consumer claimed and never freed: a fresh
    // ring with both slots full, the head moved past position 0 as a consumer's
    // claim does, and slot 0 not freed.
    let (mem, region) = ring(2, 8, 2);
    let geometry = region.geometry();
    let mut tx = MpmcProducer::register(region, token(1)).unwrap();
    tx.push(b"held").unwrap();
    tx.push(b"next").unwrap();
    mem.poke(MPMC_HEAD_OFFSET, &1u64.to_ne_bytes());
    assert_eq!(
        tx.push(b"later"),
        Err(MpmcPushError::Stalled { position: 2 })
    );
    assert_eq!(
        peek_u64(&mem, geometry.entry_offset(tx.entry())),
        INTENT_NONE
    );
}

#[test]
fn dropped_endpoint_clears_its_entry() {
    let (mem, region) = ring(2, 8, 1);
    let geometry = region.geometry();
    let tx = MpmcProducer::register(region.clone(), token(7)).unwrap();
    assert_eq!(
        mem.peek::<4>(geometry.entry_offset(0) + 8),
        7u32.to_ne_bytes()
    );
    drop(tx);
    assert_eq!(peek_u64(&mem, geometry.entry_offset(0)), INTENT_NONE);
    assert_eq!(mem.peek::<4>(geometry.entry_offset(0) + 8), [0; 4]);
}

/// Producers and consumers on threads, spinning: every message exactly once, and
/// each consumer sees each producer's messages in order.
fn threaded_run(producers: usize, consumers: usize, slots: usize, per_producer: u32) {
    let (_mem, region) = ring(slots, 8, producers + consumers);
    let received = Arc::new(AtomicUsize::new(0));
    let total = producers * per_producer as usize;
    thread::scope(|s| {
        for p in 0..producers {
            let mut tx = MpmcProducer::register(region.clone(), token(1 + p as u32)).unwrap();
            s.spawn(move || {
                for i in 0..per_producer {
                    let mut msg = [0u8; 8];
                    msg[..4].copy_from_slice(&(p as u32).to_ne_bytes());
                    msg[4..].copy_from_slice(&i.to_ne_bytes());
                    loop {
                        match tx.push(&msg) {
                            Ok(()) => break,
                            Err(
                                MpmcPushError::Full
                                | MpmcPushError::Stalled { .. }
                                | MpmcPushError::Contended,
                            ) => std::hint::spin_loop(),
                            Err(e) => panic!("send: {e}"),
                        }
                    }
                }
            });
        }
        let handles: Vec<_> = (0..consumers)
            .map(|c| {
                let mut rx = MpmcConsumer::register(region.clone(), token(100 + c as u32)).unwrap();
                let received = received.clone();
                s.spawn(move || {
                    let mut last = vec![None::<u32>; producers];
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 8];
                    while received.load(Ordering::Relaxed) < total {
                        match rx.pop(&mut buf) {
                            Ok(8) => {
                                let p = u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
                                let i = u32::from_ne_bytes(buf[4..].try_into().unwrap());
                                assert!(last[p].is_none_or(|l| l < i), "FIFO broken: {p} {i}");
                                last[p] = Some(i);
                                seen.push((p, i));
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(n) => panic!("length {n}"),
                            Err(
                                MpmcPopError::Empty
                                | MpmcPopError::Stalled { .. }
                                | MpmcPopError::Contended,
                            ) => std::hint::spin_loop(),
                            Err(e) => panic!("recv: {e}"),
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for m in h.join().unwrap() {
                assert!(all.insert(m), "delivered twice: {m:?}");
            }
        }
        assert_eq!(all.len(), total);
    });
}

#[test]
fn threads_deliver_exactly_once_in_order() {
    // Under Miri, which interleaves the threads itself and checks every access for
    // data races, a few hundred messages per producer.
    let (long, short) = if cfg!(miri) {
        (200, 100)
    } else {
        (20_000, 10_000)
    };
    threaded_run(1, 1, 2, long);
    threaded_run(2, 2, 4, long);
    threaded_run(4, 3, 8, short);
    threaded_run(3, 4, 64, short);
}

#[test]
#[ignore = "long: run with --ignored"]
fn threads_deliver_exactly_once_in_order_long() {
    for slots in [2, 4, 16, 1024] {
        threaded_run(4, 4, slots, 1_000_000);
    }
}
