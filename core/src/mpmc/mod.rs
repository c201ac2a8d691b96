//! The multi-producer multi-consumer ring of fixed-size slots, crash-consistent.
//!
//! A bounded queue in the style of Dmitry Vyukov's: `S` slots (a power of two),
//! each with a sequence number, and two shared positions, `tail` (producers claim
//! from it) and `head` (consumers claim from it). Position `P` lives in slot
//! `P mod S`. For that slot, `seq == P` says "free for `P`", `seq == P + 1` says
//! "the message for `P` is published", and the consumer that has copied it stores
//! `P + S` ("free for the next lap"). The sequence number and the message's length
//! share one state word (`seq << len_bits | len`,
//! [`MpmcGeometry::slot_state`](layout::MpmcGeometry::slot_state)):
//! one store publishes both, one load reads both, and a slot of an 8-byte message
//! spans 16 bytes.
//!
//! ```text
//! producer                                 consumer
//! P = tail                                 P = head
//! intent = P            (Release)          intent = P            (Release)
//! seq(P) == P?                             seq(P) == P + 1? (and len)
//! CAS tail P -> P+1     (AcqRel)           CAS head P -> P+1     (AcqRel)
//! write payload                            copy payload out
//! state = P + 1, len    (Release)          state = P + S, 0      (Release)
//! ```
//!
//! # Crash consistency
//!
//! Each endpoint registers in an entry of the segment's endpoint table and, before
//! it claims a position, writes the position into its entry's `intent` word (the
//! common path does so even before it looks at the slot). It withdraws it if it
//! returns without a claim, and leaves it there after a completed operation (it
//! then names a position this endpoint has finished with, which no recovery looks
//! for). A
//! caller-supplied [`Liveness`] tells whether the holder of an entry is alive (the
//! `shmring` crate: an OFD lock the kernel drops at death).
//!
//! - A consumer that finds position `P` claimed but unpublished gets
//!   [`MpmcPopError::Stalled`]. When the stall has lasted longer than the caller's
//!   bound, [`MpmcConsumer::skip_dead_producer`] looks for a live endpoint whose
//!   intent is `P`; if there is none the claimant is dead, and the slot is skipped:
//!   one compare-and-swap of its `seq` from `P` to `P + S` (exactly one consumer
//!   wins, so all agree), the winner counts it in `skipped` and advances `head`.
//! - A producer that finds the slot still held by a consumer of the previous lap
//!   gets [`MpmcPushError::Stalled`]; [`MpmcProducer::reclaim_from_dead_consumer`]
//!   frees it if no live endpoint intends that position (CAS `seq` from `P + 1` to
//!   `P + S`), counting the message in `lost`.
//!
//! Every published message is delivered at most once and, per producer, in order;
//! a message is lost only if its consumer dies between claiming it and freeing its
//! slot, and every such loss is counted. docs/design/mpmc.md has the argument,
//! ARCHITECTURE.md ("Orderings") the memory orderings.

mod consumer;
mod endpoint;
mod error;
pub mod layout;
mod producer;
mod recovery;
pub mod region;
mod slot;

pub use consumer::MpmcConsumer;
pub use error::{MpmcCorruption, MpmcPopError, MpmcPushError, MpmcRegisterError, MpmcWaitError};
pub use layout::MpmcLayoutError;
pub use producer::MpmcProducer;
pub use recovery::{Liveness, MpmcStats, Recovery};
pub use region::MpmcRegion;
#[cfg(not(shmring_loom))]
pub use region::{MpmcEntryInfo, MpmcInfo, RawMpmcRegion};

/// Attempts a `push` or `pop` makes before it gives up with `Contended`: each failed
/// attempt means another endpoint claimed a position (or a hostile peer moved one).
const MAX_ATTEMPTS: u32 = 256;

/// Spin hints a claim waits, at most, after losing a compare-and-swap or finding
/// its position stalled (claimed by a live endpoint that has not finished with the
/// slot: a producer writing it, a consumer copying out of it). The waits double
/// from 1 to this; a stall still there after the wait of this many is reported
/// (`Stalled`): 63 hints in all, a few microseconds. Crossbeam's `ArrayQueue`
/// waits the same way (benches/notes/2026-11-25-mpmc-layout-3-and-backoff.md).
#[cfg(not(shmring_loom))]
const BACKOFF_SPINS_MAX: u32 = 64;
/// Under the model checker a wait is nothing (spinning synchronizes nothing, and
/// a yield would only multiply the interleavings) and a stall is reported at once:
/// looking again only repeats the loop's first look, and the models that call
/// recovery at every stall catch more weakenings when stalls are reported at once
/// (`live_producer_is_not_skipped` misses a weakened tail CAS otherwise).
#[cfg(shmring_loom)]
const BACKOFF_SPINS_MAX: u32 = 1;

/// Waits `*spins` spin hints (nothing under the model checker) and doubles
/// `*spins`, up to [`BACKOFF_SPINS_MAX`].
#[inline]
fn backoff(spins: &mut u32) {
    #[cfg(not(shmring_loom))]
    for _ in 0..*spins {
        core::hint::spin_loop();
    }
    *spins = (*spins * 2).min(BACKOFF_SPINS_MAX);
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use core::num::NonZeroU32;

    use super::*;

    #[repr(C, align(128))]
    struct Mem([u8; 4096]);

    /// Every length from 0 to the slot size, on both sides of `copy_message`'s
    /// 8-to-16-byte inline path, arrives intact, and the receive buffer beyond the
    /// message is left alone.
    #[test]
    fn every_message_length_round_trips() {
        const SLOT: usize = 40;
        let mut mem = Mem([0; 4096]);
        assert!(layout::mpmc_segment_layout(4, SLOT, 2).unwrap().size() <= mem.0.len());
        // SAFETY: `mem` outlives the handles and is touched only through them.
        let region =
            unsafe { RawMpmcRegion::init(mem.0.as_mut_ptr(), mem.0.len(), 4, SLOT, 2) }.unwrap();
        let token = NonZeroU32::new(1).unwrap();
        let mut tx = MpmcProducer::register(region.clone(), token).unwrap();
        let mut rx = MpmcConsumer::register(region, token).unwrap();
        for len in 0..=SLOT {
            let message: [u8; SLOT] = core::array::from_fn(|i| (len * 7 + i) as u8 | 1);
            tx.push(&message[..len]).unwrap();
            let mut buf = [0u8; SLOT + 8];
            assert_eq!(rx.pop(&mut buf), Ok(len));
            assert_eq!(&buf[..len], &message[..len], "length {len}");
            assert!(
                buf[len..].iter().all(|&b| b == 0),
                "length {len}: wrote past"
            );
        }
    }
}
