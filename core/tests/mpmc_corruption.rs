//! A hostile peer against the MPMC ring: random values written into the header,
//! the positions, the signal and statistics words, the endpoint table, the slot
//! headers and payloads between operations, on memory with an inaccessible page on
//! each side. Every call must return a message or an error: no panic, no access
//! out of bounds (it would fault on a guard page), no unbounded loop (each call is
//! also timed against a generous bound).

mod common;

use std::time::{Duration, Instant};

use common::{GuardedMemory, token};
use shmring_core::mpmc::layout::{
    MPMC_HEAD_OFFSET, MPMC_SIGNAL_OFFSET, MPMC_TAIL_OFFSET, SLOT_HEADER_SIZE,
};
use shmring_core::{
    Liveness, MpmcConsumer, MpmcGeometry, MpmcProducer, MpmcRegion, RawMpmcRegion,
    mpmc_segment_layout,
};

/// A small deterministic generator, so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Liveness that calls every entry dead: recovery then acts whenever it can,
/// which is what a hostile peer would want. (Sound here: the test's own handles
/// run on one thread and never overlap a recovery.)
struct AllDead;

// SAFETY: the only handles are this test's, used one call at a time on one
// thread, so a recovery never races a live endpoint's slot access.
unsafe impl Liveness for AllDead {
    fn is_alive(&self, _entry: usize) -> bool {
        false
    }
}

/// A value a hostile peer might write near the positions `near`.
fn nasty(rng: &mut Rng, near: u64, slots: u64) -> u64 {
    match rng.below(8) {
        0 => 0,
        1 => near.wrapping_add(rng.below(4 * slots)),
        2 => near.wrapping_sub(rng.below(4 * slots)),
        3 => u64::MAX - rng.below(4096),
        4 => near
            .wrapping_add(slots * rng.below(3))
            .wrapping_add(rng.below(2)),
        5 => u64::from(u32::MAX) + rng.below(16),
        _ => rng.next(),
    }
}

fn corrupt(mem: &GuardedMemory, rng: &mut Rng, g: MpmcGeometry) {
    let slots = g.slots() as u64;
    let head = u64::from_ne_bytes(mem.peek::<8>(MPMC_HEAD_OFFSET));
    let tail = u64::from_ne_bytes(mem.peek::<8>(MPMC_TAIL_OFFSET));
    let near = if rng.below(2) == 0 { head } else { tail };
    let value = nasty(rng, near, slots);
    match rng.below(9) {
        // Header (already validated and copied: must not matter).
        0 => mem.poke(rng.below(72) as usize & !3, &(value as u32).to_ne_bytes()),
        1 => mem.poke(MPMC_TAIL_OFFSET, &value.to_ne_bytes()),
        2 => mem.poke(MPMC_HEAD_OFFSET, &value.to_ne_bytes()),
        // Signals and statistics.
        3 => mem.poke(
            MPMC_SIGNAL_OFFSET + 4 * rng.below(6) as usize,
            &(value as u32).to_ne_bytes(),
        ),
        // An endpoint entry: intent, owner, role, generation.
        4 => {
            let at = g.entry_offset(rng.below(g.endpoints() as u64) as usize);
            mem.poke(
                at + 4 * rng.below(6) as usize,
                &(value as u32).to_ne_bytes(),
            );
            if rng.below(2) == 0 {
                mem.poke(at, &value.to_ne_bytes());
            }
        }
        // A slot's state word, near the head or tail: a nasty sequence number
        // (with a zero or a small length), or raw garbage.
        5 | 6 => {
            let index = (near.wrapping_add(rng.below(3)) % slots) as usize;
            let state = match rng.below(3) {
                0 => g.slot_state(value, 0),
                1 => g.slot_state(value, rng.below(g.slot_size() as u64 + 1)),
                _ => value,
            };
            mem.poke(g.slot_offset(index), &state.to_ne_bytes());
        }
        // A slot's length field (the low `len_bits` of its state word): up to the
        // slot size and beyond, the sequence number kept.
        7 => {
            let index = rng.below(slots) as usize;
            let at = g.slot_offset(index);
            let state = u64::from_ne_bytes(mem.peek::<8>(at));
            let mask = (1u64 << g.len_bits()) - 1;
            let len = match rng.below(3) {
                0 => rng.below(g.slot_size() as u64 + 2),
                1 => mask.saturating_sub(rng.below(4)),
                _ => value,
            } & mask;
            mem.poke(at, &((state & !mask) | len).to_ne_bytes());
        }
        // Payload bytes.
        _ => {
            let index = rng.below(slots) as usize;
            let n = g.slot_size().min(8);
            mem.poke(
                g.slot_offset(index) + SLOT_HEADER_SIZE,
                &value.to_ne_bytes()[..n],
            );
        }
    }
}

/// What a run saw: messages received, and calls that reported corruption.
#[derive(Default)]
struct Seen {
    received: u64,
    corrupted: u64,
}

fn hostile_run(seed: u64, slots: usize, slot_size: usize, steps: u32) -> Seen {
    let mut seen = Seen::default();
    let mut rng = Rng(seed | 1);
    let endpoints = 4;
    let size = mpmc_segment_layout(slots, slot_size, endpoints)
        .unwrap()
        .size();
    let mem = GuardedMemory::new(size);
    // SAFETY: `mem` outlives every handle (they are dropped inside this function).
    let region =
        unsafe { RawMpmcRegion::init(mem.ptr(), mem.len(), slots, slot_size, endpoints) }.unwrap();
    let g = region.geometry();
    let mut tx = MpmcProducer::register(region.clone(), token(1)).ok();
    let mut rx = MpmcConsumer::register(region.clone(), token(2)).ok();
    let mut buf = vec![0u8; slot_size + 8];
    let bound = Duration::from_secs(1);
    for step in 0..steps {
        // Rarely enough that the ring also runs between corruptions.
        if rng.below(16) == 0 {
            corrupt(&mem, &mut rng, g);
        }
        let started = Instant::now();
        match rng.below(10) {
            0..=3 => {
                if let Some(tx) = tx.as_mut() {
                    let len = rng.below(slot_size as u64 + 2) as usize;
                    if let Err(shmring_core::MpmcPushError::Corrupted(_)) =
                        tx.push(&buf[..len.min(buf.len())])
                    {
                        seen.corrupted += 1;
                    }
                }
            }
            4..=6 => {
                if let Some(rx) = rx.as_mut() {
                    let len = rng.below(buf.len() as u64 + 1) as usize;
                    match rx.pop(&mut buf[..len]) {
                        Ok(n) => {
                            assert!(n <= slot_size && n <= len, "seed {seed}: length {n}");
                            seen.received += 1;
                        }
                        Err(shmring_core::MpmcPopError::Corrupted(_)) => seen.corrupted += 1,
                        Err(_) => {}
                    }
                }
            }
            7 => {
                let position = nasty(&mut rng, 0, slots as u64);
                if let Some(rx) = rx.as_mut() {
                    let _ = rx.skip_dead_producer(position, &AllDead);
                }
                if let Some(tx) = tx.as_mut() {
                    let _ = tx.reclaim_from_dead_consumer(position, &AllDead);
                }
            }
            8 => {
                // The peer's attach, and fresh registrations on the corrupted table.
                // SAFETY: as above.
                let _ = unsafe { RawMpmcRegion::attach(mem.ptr(), mem.len()) };
                if rng.below(2) == 0 {
                    drop(tx.take());
                    tx = MpmcProducer::register(region.clone(), token(1)).ok();
                } else {
                    drop(rx.take());
                    rx = MpmcConsumer::register(region.clone(), token(2)).ok();
                }
            }
            _ => {
                // Stalled calls with a recovery, as the `shmring` crate makes them.
                if let Some(rx) = rx.as_mut() {
                    if let Err(shmring_core::MpmcPopError::Stalled { position }) = rx.pop(&mut buf)
                    {
                        let _ = rx.skip_dead_producer(position, &AllDead);
                    }
                }
                if let Some(tx) = tx.as_mut() {
                    if let Err(shmring_core::MpmcPushError::Stalled { position }) = tx.push(b"x") {
                        let _ = tx.reclaim_from_dead_consumer(position, &AllDead);
                    }
                    let _ = tx.stats();
                }
            }
        }
        assert!(
            started.elapsed() < bound,
            "seed {seed}, step {step}: a call took {:?}",
            started.elapsed()
        );
    }
    drop((tx, rx));
    seen
}

#[test]
fn hostile_peer_never_crashes_an_endpoint() {
    let mut total = Seen::default();
    // Under Miri: fewer seeds and steps (every call is interpreted), and the floor
    // on what the runs exercised scaled down with them.
    let (seeds, steps, floor) = if cfg!(miri) {
        (2, 400, 20)
    } else {
        (40, 4_000, 1_000)
    };
    for seed in 1..=seeds {
        for (slots, slot_size) in [(2, 1), (4, 8), (16, 13), (256, 64)] {
            let seen = hostile_run(seed * 7919, slots, slot_size, steps);
            total.received += seen.received;
            total.corrupted += seen.corrupted;
        }
    }
    // The runs exercised both the delivery paths and the validation.
    assert!(
        total.received > floor,
        "received {}, corrupted {}",
        total.received,
        total.corrupted
    );
    assert!(total.corrupted > floor, "corrupted {}", total.corrupted);
}

#[test]
#[ignore = "long: run with --ignored"]
fn hostile_peer_long() {
    for seed in 1..=2_000 {
        for (slots, slot_size) in [(2, 1), (4, 8), (8, 24), (64, 100), (1024, 8)] {
            hostile_run(seed * 104_729, slots, slot_size, 20_000);
        }
    }
}

/// The receive path checks the sequence number and the length field in one
/// comparison against the smaller of the slot size and the buffer: a length field
/// beyond the slot size is `Corrupted(BadLength)` (the slot consumed, so the ring
/// moves on) also when the caller's buffer is larger than the slot, and one beyond
/// the buffer but within the slot is `BufferTooSmall`, nothing consumed.
#[test]
fn length_field_is_checked_against_slot_and_buffer() {
    const SLOTS: usize = 4;
    const SLOT_SIZE: usize = 13;
    let size = mpmc_segment_layout(SLOTS, SLOT_SIZE, 2).unwrap().size();
    let mem = GuardedMemory::new(size);
    // SAFETY: `mem` outlives the handles (dropped at the end of this function).
    let region = unsafe { RawMpmcRegion::init(mem.ptr(), mem.len(), SLOTS, SLOT_SIZE, 2) }.unwrap();
    let g = region.geometry();
    let mask = (1u64 << g.len_bits()) - 1;
    let mut tx = MpmcProducer::register(region.clone(), token(1)).unwrap();
    let mut rx = MpmcConsumer::register(region, token(2)).unwrap();
    let set_len = |index: usize, len: u64| {
        let at = g.slot_offset(index);
        let state = u64::from_ne_bytes(mem.peek::<8>(at));
        mem.poke(at, &((state & !mask) | len).to_ne_bytes());
    };
    // A buffer as large as the length field can say.
    let mut big = vec![0u8; mask as usize + 1];
    for (position, bad) in [(0, SLOT_SIZE as u64 + 1), (1, mask)] {
        tx.push(b"message").unwrap();
        set_len(position, bad);
        assert_eq!(
            rx.pop(&mut big),
            Err(shmring_core::MpmcPopError::Corrupted(
                shmring_core::MpmcCorruption::BadLength {
                    position: position as u64,
                    len: bad as u32,
                    max: SLOT_SIZE,
                }
            ))
        );
        assert_eq!(rx.pop(&mut big), Err(shmring_core::MpmcPopError::Empty));
    }
    // Within the slot, beyond the buffer: refused, not consumed.
    tx.push(&[7; SLOT_SIZE]).unwrap();
    let mut small = [0u8; SLOT_SIZE - 1];
    assert_eq!(
        rx.pop(&mut small),
        Err(shmring_core::MpmcPopError::BufferTooSmall {
            len: SLOT_SIZE,
            buffer: SLOT_SIZE - 1,
        })
    );
    assert_eq!(rx.pop(&mut big), Ok(SLOT_SIZE));
    assert_eq!(&big[..SLOT_SIZE], &[7; SLOT_SIZE]);
}
