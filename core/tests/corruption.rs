//! A hostile peer: random values written into the header, the positions, the signal
//! words and the frames between operations, on memory with an inaccessible page on
//! each side. Every call must return a message or an error: no panic, no access out
//! of bounds (it would fault on a guard page), no unbounded loop (the test would
//! hang; each call is also timed against a generous bound).

mod common;

use std::time::{Duration, Instant};

use common::{GuardedMemory, token};
use shmring_core::{Consumer, Producer, RawRegion};

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

/// A value a hostile peer might write: small, aligned, near a bound, or random.
fn nasty(rng: &mut Rng, capacity: u64) -> u64 {
    match rng.below(8) {
        0 => 0,
        1 => rng.below(64),
        2 => rng.below(capacity * 3) & !7,
        3 => u64::MAX - rng.below(4096),
        4 => (1u64 << 31) | rng.below(1 << 20), // committed bit, some length
        5 => (0xe000_0000) | rng.below(capacity), // every state bit
        6 => rng.next() & !7,
        _ => rng.next(),
    }
}

/// A frame state word a hostile peer might write: mostly plausible ones (committed,
/// maybe padding, released or a run, lengths around the capacity), sometimes
/// anything.
fn nasty_state(rng: &mut Rng, capacity: u64) -> u32 {
    let len = rng.below(capacity + 16) as u32;
    match rng.below(7) {
        0 => (1 << 31) | len,
        1 => (1 << 31) | (1 << 30) | len,
        2 => (1 << 31) | (1 << 29) | len,
        3 => (1 << 31) | (1 << 28) | (len & !7),
        4 => (1 << 31) | (1 << 28) | len,
        _ => nasty(rng, capacity) as u32,
    }
}

/// A run word a hostile peer might write: message lengths near the strides,
/// released counts near and beyond the count, or anything.
fn nasty_run_word(rng: &mut Rng, capacity: u64) -> u32 {
    match rng.below(4) {
        0 => rng.below(24) as u32,
        1 => (rng.below(24) as u32) | ((rng.below(capacity / 8 + 2) as u32) << 16),
        2 => 0xffff_0000 | rng.below(0x1_0000) as u32,
        _ => nasty(rng, capacity) as u32,
    }
}

fn corrupt(mem: &GuardedMemory, rng: &mut Rng, capacity: usize) {
    let cap = capacity as u64;
    let value = nasty(rng, cap);
    let state = nasty_state(rng, cap);
    // Where the sides are now, as far as the published positions tell: the frames
    // there are the ones the next calls read.
    let read = u64::from_ne_bytes(mem.peek::<8>(256));
    let write = u64::from_ne_bytes(mem.peek::<8>(128));
    match rng.below(8) {
        // A state word at or just after the read or write position.
        6 | 7 => {
            let base = if rng.below(2) == 0 { read } else { write };
            let at = 512 + ((base.wrapping_add(8 * rng.below(4))) & (cap - 1) & !7) as usize;
            if rng.below(3) == 0 {
                // The run word beside it.
                mem.poke(at + 4, &nasty_run_word(rng, cap).to_ne_bytes())
            } else {
                mem.poke(at, &state.to_ne_bytes())
            }
        }
        // Header fields (already validated and copied: must not matter).
        0 => mem.poke(rng.below(64) as usize & !3, &(value as u32).to_ne_bytes()),
        // write_position / producer owner.
        1 => mem.poke(128 + 8 * rng.below(2) as usize, &value.to_ne_bytes()),
        // read_position / consumer owner.
        2 => mem.poke(256 + 8 * rng.below(2) as usize, &value.to_ne_bytes()),
        // Signal words.
        3 => mem.poke(
            384 + 4 * rng.below(2) as usize,
            &(value as u32).to_ne_bytes(),
        ),
        // A frame state word on the 8-byte grid.
        4 => {
            let at = 512 + (rng.below(cap / 8) * 8) as usize;
            mem.poke(at, &state.to_ne_bytes())
        }
        // Any data bytes.
        _ => {
            let at = 512 + rng.below(cap) as usize;
            let n = (capacity + 512 - at).min(8);
            mem.poke(at, &value.to_ne_bytes()[..n])
        }
    }
}

fn hostile_run(seed: u64, capacity: usize, steps: u32) {
    let mut rng = Rng(seed | 1);
    let mem = GuardedMemory::new(512 + capacity);
    // SAFETY: `mem` outlives every handle (they are dropped inside this function).
    let region = unsafe { RawRegion::init(mem.ptr(), mem.len(), capacity) }.unwrap();
    let mut tx = Some(Producer::claim(region.clone(), token(1)).unwrap());
    let mut rx = Some(Consumer::claim(region.clone(), token(2)).unwrap());
    let mut buf = vec![0u8; capacity];
    let bound = Duration::from_secs(1);
    for step in 0..steps {
        if rng.below(4) == 0 {
            corrupt(&mem, &mut rng, capacity);
        }
        let started = Instant::now();
        match rng.below(13) {
            10 => {
                // A batch: a run of one length, maybe another message after it.
                if let Some(tx) = tx.as_mut() {
                    let len = 1 + rng.below(24) as usize;
                    let mut batch = tx.batch();
                    for _ in 0..rng.below(12) {
                        let _ = batch.push(&buf[..len]);
                    }
                    if rng.below(2) == 0 {
                        let _ = batch.push(&buf[..rng.below(40) as usize]);
                    }
                }
            }
            11 => {
                if let Some(tx) = tx.as_mut() {
                    let mut batch = tx.batch();
                    if let Ok(mut run) = batch.grant_run(1 + rng.below(24) as usize, 8) {
                        for m in run.messages_mut() {
                            m.fill(0xcd);
                        }
                        let n = rng.below(run.count() as u64 + 1) as usize;
                        run.commit(n);
                    }
                }
            }
            12 => {
                if let Some(rx) = rx.as_mut() {
                    let mut sum = 0u64;
                    let _ = rx.read_batch(1 + rng.below(8) as usize, |m| {
                        sum += m.iter().map(|&b| u64::from(b)).sum::<u64>();
                    });
                    std::hint::black_box(sum);
                }
            }
            0..=2 => {
                if let Some(tx) = tx.as_mut() {
                    let len = rng.below(capacity as u64 / 2) as usize;
                    let _ = tx.push(&buf[..len.min(buf.len())]);
                }
            }
            3 => {
                if let Some(tx) = tx.as_mut() {
                    if let Ok(mut g) = tx.grant(rng.below(64) as usize) {
                        let n = g.len();
                        g.fill(0xab);
                        g.commit(n / 2);
                    }
                }
            }
            4..=6 => {
                if let Some(rx) = rx.as_mut() {
                    let _ = rx.pop(&mut buf);
                }
            }
            7 => {
                if let Some(rx) = rx.as_mut() {
                    if let Ok(msg) = rx.read() {
                        // Touch every byte of the borrowed payload.
                        let sum: u64 = msg.iter().map(|&b| u64::from(b)).sum();
                        std::hint::black_box(sum);
                        msg.release();
                    }
                    let _ = rx.backlog();
                }
            }
            8 => {
                // The peer's attach and a fresh claim on the corrupted segment.
                // SAFETY: as above.
                let _ = unsafe { RawRegion::attach(mem.ptr(), mem.len()) };
                if rng.below(2) == 0 {
                    drop(tx.take());
                    tx = Producer::claim(region.clone(), token(1)).ok();
                } else {
                    drop(rx.take());
                    rx = Consumer::claim(region.clone(), token(2)).ok();
                }
            }
            _ => {
                // Take over whatever the owner word names.
                let owner =
                    u32::from_ne_bytes(mem.peek::<4>(if rng.below(2) == 0 { 136 } else { 264 }));
                if let Some(previous) = std::num::NonZeroU32::new(owner) {
                    drop(tx.take());
                    // SAFETY: the old handle was dropped just above.
                    tx = unsafe { Producer::take_over(region.clone(), token(1), previous) }.ok();
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
}

#[test]
fn hostile_peer_never_crashes_a_side() {
    // Under Miri: fewer seeds and steps (every call is interpreted).
    let (seeds, steps) = if cfg!(miri) { (2, 400) } else { (40, 5_000) };
    for seed in 1..=seeds {
        for capacity in [64, 256, 4096] {
            hostile_run(seed * 7919, capacity, steps);
        }
    }
}

#[test]
#[ignore = "long: run with --ignored"]
fn hostile_peer_long() {
    for seed in 1..=2_000 {
        for capacity in [64, 128, 256, 1024, 65536] {
            hostile_run(seed * 104_729, capacity, 20_000);
        }
    }
}
