//! The multi-producer multi-consumer ring of fixed-size slots, crash-consistent.
//!
//! A bounded queue in the style of Dmitry Vyukov's: `S` slots (a power of two),
//! each with a sequence number, and two shared positions, `tail` (producers claim
//! from it) and `head` (consumers claim from it). Position `P` lives in slot
//! `P mod S`. For that slot, `seq == P` says "free for `P`", `seq == P + 1` says
//! "the message for `P` is published", and the consumer that has copied it stores
//! `P + S` ("free for the next lap"). The sequence number and the message's length
//! share one state word (`seq << len_bits | len`, [`MpmcGeometry::slot_state`]):
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
//!   [`RecvError::Stalled`]. When the stall has lasted longer than the caller's
//!   bound, [`MpmcConsumer::skip_dead_producer`] looks for a live endpoint whose
//!   intent is `P`; if there is none the claimant is dead, and the slot is skipped:
//!   one compare-and-swap of its `seq` from `P` to `P + S` (exactly one consumer
//!   wins, so all agree), the winner counts it in `skipped` and advances `head`.
//! - A producer that finds the slot still held by a consumer of the previous lap
//!   gets [`SendError::Stalled`]; [`MpmcProducer::reclaim_from_dead_consumer`]
//!   frees it if no live endpoint intends that position (CAS `seq` from `P + 1` to
//!   `P + S`), counting the message in `lost`.
//!
//! Every published message is delivered at most once and, per producer, in order;
//! a message is lost only if its consumer dies between claiming it and freeing its
//! slot, and every such loss is counted. ARCHITECTURE.md ("The MPMC ring") has the
//! argument and the memory orderings.

mod error;
pub mod layout;
pub mod region;

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::num::NonZeroU32;

pub use error::{
    MpmcCorruption, MpmcLayoutError, MpmcWaitError, RecvError, RegisterError, SendError,
};
use layout::{INTENT_NONE, MpmcControl, MpmcGeometry, ROLE_CONSUMER, ROLE_PRODUCER};
pub use region::MpmcRegion;
#[cfg(not(shmring_loom))]
pub use region::RawMpmcRegion;

use crate::sync::{AtomicU32, Ordering};
use crate::wait::{Futex, notify, prepare_wait};

/// Attempts a `try_` call makes before it gives up with `Contended`: each failed
/// attempt means another endpoint claimed a position (or a hostile peer moved one).
const MAX_ATTEMPTS: u32 = 256;

/// Spin hints a claim waits, at most, after losing a compare-and-swap or finding
/// its position stalled (claimed by a live endpoint that has not finished with the
/// slot: a producer writing it, a consumer copying out of it). The waits double
/// from 1 to this; a stall still there after the wait of this many is reported
/// (`Stalled`): 63 hints in all, a few microseconds. Crossbeam's `ArrayQueue`
/// waits the same way (ARCHITECTURE.md, "Performance notes (MPMC, in-process)").
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

/// Copies `len` bytes from `src` to `dst`. Messages of 8 to 16 bytes take two
/// (possibly overlapping) 8-byte moves inline: for them a `memcpy` call costs more
/// than the copy (ARCHITECTURE.md, "Performance notes" of the MPMC ring).
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `len` bytes, and the two ranges
/// do not overlap.
#[inline(always)]
unsafe fn copy_message(src: *const u8, dst: *mut u8, len: usize) {
    if (8..=16).contains(&len) {
        // SAFETY: `0 + 8 <= len` and `len - 8 + 8 == len`: both 8-byte moves are
        // within the `len` bytes the caller vouches for (unaligned accesses).
        unsafe {
            let first = src.cast::<u64>().read_unaligned();
            let last = src.add(len - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(first);
            dst.add(len - 8).cast::<u64>().write_unaligned(last);
        }
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    }
}

/// Copies `message` into the payload of slot `index` (its header `slot`, its
/// bytes `payload`) and publishes it: stores the state word `published`
/// (`P + 1` and the length).
///
/// # Safety
/// `message.len()` is at most the slot size; `slot` and `payload` are slot
/// `index`'s; the caller's tail compare-and-swap claimed the slot's position.
#[inline(always)]
unsafe fn write_and_publish<R: MpmcRegion>(
    region: &R,
    index: usize,
    slot: &layout::SlotHeader,
    payload: *mut u8,
    published: u64,
    message: &[u8],
) {
    region.will_write(index);
    // SAFETY: `message.len() <= slot_size` (the caller's contract); the slot is
    // ours from the tail CAS until the state store below: consumers read it only
    // after that store, producers claim it only once a consumer frees it, and
    // recoverers take it only from a dead claimant. The region keeps `slot_size`
    // bytes valid at `payload`; `message` is the caller's memory, not the
    // segment's.
    unsafe { copy_message(message.as_ptr(), payload, message.len()) };
    // SYNC: Release pairs with the Acquire load of the state in `try_recv`: the
    // payload is visible once a consumer sees P + 1 (and the length with it, in
    // the same word). The intent keeps naming the position (see
    // `claimant_alive`).
    slot.state.store(published, Ordering::Release);
}

/// Whether the holder of an endpoint table entry is alive.
///
/// # Safety
///
/// [`is_alive`](Liveness::is_alive) may return `false` for an entry only if no
/// endpoint that ever registered in it will access the ring again: its process has
/// exited (the kernel released its mark), or in one process its handle has been
/// dropped or leaked for good. The ring then treats the entry's claim as abandoned
/// and lets another endpoint reuse the claimed slot; a wrong `false` lets two
/// endpoints write the same slot bytes.
pub unsafe trait Liveness {
    /// Whether the endpoint registered in table entry `entry` may still access the
    /// ring. `true` is always safe (recovery then waits).
    fn is_alive(&self, entry: usize) -> bool;
}

/// The ring's recovery statistics, read from the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MpmcStats {
    /// Claims of dead producers that consumers skipped (no message was published
    /// there, so none was lost).
    pub skipped: u64,
    /// Messages published, claimed by a consumer that died before it freed their
    /// slot, and freed by recovery since: by a producer that came round to the slot
    /// ([`MpmcProducer::reclaim_from_dead_consumer`]) or by
    /// [`reclaim_dead_consumers`](MpmcConsumer::reclaim_dead_consumers). A message
    /// whose slot a consumer freed counts as delivered, even if that consumer's
    /// process died before using it; one still held by a dead consumer that no
    /// recovery has reached yet is not counted yet.
    pub lost: u64,
}

impl MpmcStats {
    /// Reads the counters (Relaxed: statistics, ordered with nothing).
    pub fn read(control: &MpmcControl) -> Self {
        Self {
            skipped: control.signals.0.skipped.load(Ordering::Relaxed),
            lost: control.signals.0.lost.load(Ordering::Relaxed),
        }
    }
}

/// What a recovery call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// This call freed the slot (and counted it).
    Recovered,
    /// The position is no longer stalled: published, freed, or recovered by
    /// another endpoint. Try the operation again.
    AlreadyMoved,
    /// A live endpoint intends the position: it is slow, not dead. Keep waiting.
    ClaimantAlive {
        /// Its table entry.
        entry: usize,
    },
}

/// What both endpoint kinds keep: the region, its trusted shape, their table entry.
struct Endpoint<R: MpmcRegion> {
    region: R,
    mask: u64,
    slots: u64,
    slot_size: usize,
    /// The geometry's `len_bits` and the mask of those bits.
    len_bits: u32,
    len_mask: u64,
    endpoints: usize,
    entry: usize,
    generation: u32,
    /// Whether the next `wake` owes the consumers a notification (messages
    /// published, a slot skipped) and the producers one (slots freed). Set by
    /// `note_published` and `note_freed`, which write only when the flag
    /// changes.
    owe_data: bool,
    owe_space: bool,
    _not_sync: PhantomData<Cell<()>>,
}

impl<R: MpmcRegion> Endpoint<R> {
    /// Registers in a free entry (`at: None`), or in entry `at` held by `previous`.
    fn register(
        region: R,
        role: u32,
        token: NonZeroU32,
        at: Option<usize>,
        previous: u32,
    ) -> Result<Self, RegisterError> {
        let geometry = region.geometry();
        let endpoints = geometry.endpoints();
        let claim = |index: usize| {
            // SYNC: Acquire pairs with the Release store of the owner word in
            // `Drop`: the previous holder's last intent clear is visible.
            region.entry(index).owner.compare_exchange(
                previous,
                token.get(),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
        };
        let entry = match at {
            Some(index) if index >= endpoints => {
                return Err(RegisterError::EntryOutOfRange {
                    entry: index,
                    endpoints,
                });
            }
            Some(index) => match claim(index) {
                Ok(_) => index,
                Err(owner) => {
                    return Err(RegisterError::Taken {
                        entry: index,
                        owner,
                    });
                }
            },
            None => (0..endpoints)
                .find(|&index| claim(index).is_ok())
                .ok_or(RegisterError::TableFull { endpoints })?,
        };
        let e = region.entry(entry);
        // SYNC: Release: a scanner that reads NONE here (Acquire) sees nothing of
        // the previous holder's after it. The holder is gone (the owner CAS or the
        // caller's take-over contract), so its stale intent must not keep anyone
        // waiting once this entry's liveness reports the new holder.
        e.intent.store(INTENT_NONE, Ordering::Release);
        // Relaxed: read by observers, the `shmring` crate and the recovery scan
        // (`claimant_alive`), which reads it only after an intent this holder
        // stored with Release after this store.
        e.role.store(role, Ordering::Relaxed);
        let generation = e.generation.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let signals = &region.control().signals.0;
        let registered = if role == ROLE_PRODUCER {
            &signals.producers_registered
        } else {
            &signals.consumers_registered
        };
        // Relaxed: a record for observers ("this role has been here"), ordered
        // with nothing in the ring's protocol. Whoever receives a message this
        // endpoint publishes sees it (the publication's Release comes after);
        // the `shmring` crate reads it beside liveness probes, which are system
        // calls.
        registered.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            mask: geometry.slots() as u64 - 1,
            slots: geometry.slots() as u64,
            slot_size: geometry.slot_size(),
            len_bits: geometry.len_bits(),
            len_mask: (1 << geometry.len_bits()) - 1,
            endpoints,
            region,
            entry,
            generation,
            owe_data: false,
            owe_space: false,
            _not_sync: PhantomData,
        })
    }

    #[inline]
    fn index(&self, position: u64) -> usize {
        (position & self.mask) as usize
    }

    /// The slot state word for sequence number `seq` and length `len`
    /// (`MpmcGeometry::slot_state`).
    #[inline]
    fn state(&self, seq: u64, len: u64) -> u64 {
        (seq << self.len_bits) | len
    }

    /// The sequence number in `state` minus `position`, as a signed number: the
    /// sequence number is kept modulo `2^(64 - len_bits)`, so the subtraction is
    /// done in the word's upper bits and shifted down arithmetically (the length
    /// bits below cannot borrow from it).
    #[inline]
    fn diff(&self, position: u64, state: u64) -> i64 {
        (state.wrapping_sub(position << self.len_bits) as i64) >> self.len_bits
    }

    /// The length field of `state`.
    #[inline]
    fn len_of(&self, state: u64) -> u32 {
        // At most 25 bits (`len_bits` of a 16 MiB slot).
        (state & self.len_mask) as u32
    }

    /// Whether `state` can be the state word of `position`'s slot at all: every
    /// sequence number the protocol writes there is `≡ position` or
    /// `≡ position + 1` modulo the slot count (which divides `2^(64 - len_bits)`).
    #[inline]
    fn check_seq(&self, position: u64, state: u64) -> Result<(), MpmcCorruption> {
        if (self.diff(position, state) as u64) & self.mask <= 1 {
            Ok(())
        } else {
            Err(MpmcCorruption::BadSequence {
                position,
                seq: state >> self.len_bits,
            })
        }
    }

    #[inline]
    fn set_intent(&self, position: u64) {
        // SYNC: Release pairs with the Acquire load in `claimant_alive`: a
        // recoverer that reads this value (a later claim) also sees our earlier
        // `seq` publication, so its compare-and-swap of that slot fails. The
        // publication of this value *to* a recoverer is the Release of the
        // tail/head CAS that follows (the recoverer Acquire-loads tail/head).
        self.region
            .entry(self.entry)
            .intent
            .store(position, Ordering::Release);
    }

    /// Withdraws an intent for a position this endpoint did not claim (it found
    /// nothing to claim there, or its compare-and-swap failed, and it gives up),
    /// so that it keeps no recoverer waiting on another endpoint's claim. After a
    /// completed operation the intent stays: see `claimant_alive`.
    #[inline]
    fn clear_intent(&self) {
        // SYNC: Release pairs with the Acquire load in `claimant_alive`, as in
        // `set_intent`.
        self.region
            .entry(self.entry)
            .intent
            .store(INTENT_NONE, Ordering::Release);
    }

    /// A live endpoint of role `role` whose intent is `position`, if any.
    ///
    /// An endpoint's intent keeps naming its last position after the operation
    /// completes. That position is then published (a producer's) or freed (a
    /// consumer's), and recovery acts only on a slot still unpublished (skip) or
    /// still held (reclaim), so only the other role's leftover could name a
    /// position being recovered: a producer's `P`, published and claimed by a
    /// consumer that died. Hence the role filter. A leftover read while the slot
    /// still looked stalled only answers `ClaimantAlive` (the caller looks again);
    /// a dead endpoint's leftover names a slot whose last store (publish or free)
    /// is ordered before the recoverer's compare-and-swap by the liveness check,
    /// so that compare-and-swap fails.
    fn claimant_alive<L: Liveness + ?Sized>(
        &self,
        position: u64,
        role: u32,
        liveness: &L,
    ) -> Option<usize> {
        (0..self.endpoints).find(|&index| {
            let entry = self.region.entry(index);
            // SYNC: Acquire pairs with the Release stores in `set_intent` and
            // `clear_intent` (see there).
            entry.intent.load(Ordering::Acquire) == position
                // Relaxed: stored at registration, before the entry's first intent
                // (so visible once that intent is).
                && entry.role.load(Ordering::Relaxed) == role
                && liveness.is_alive(index)
        })
    }

    /// Frees the slot of `previous` if a consumer claimed it and is dead (the
    /// body of [`MpmcProducer::reclaim_from_dead_consumer`], which passes the
    /// position of the previous lap, and of `reclaim_dead_consumers`).
    fn free_from_dead_consumer<L: Liveness + ?Sized>(
        &mut self,
        previous: u64,
        liveness: &L,
    ) -> Result<Recovery, MpmcCorruption> {
        let ep = self;
        let position = previous.wrapping_add(ep.slots);
        let slot = ep.region.slot(ep.index(position));
        // Relaxed: the CAS below decides; this only filters.
        let state = slot.state.load(Ordering::Relaxed);
        ep.check_seq(position, state)?;
        if ep.diff(previous, state) != 1 {
            return Ok(Recovery::AlreadyMoved);
        }
        // SYNC: Acquire pairs with the Release half of the consumer's head CAS: the
        // intent it stored before claiming `previous` is visible to the scan.
        let head = ep.region.control().head.0.load(Ordering::Acquire);
        if head.wrapping_sub(previous) as i64 <= 0 {
            // Not claimed by a consumer: the ring is merely full.
            return Ok(Recovery::AlreadyMoved);
        }
        if let Some(entry) = ep.claimant_alive(previous, ROLE_CONSUMER, liveness) {
            return Ok(Recovery::ClaimantAlive { entry });
        }
        // SYNC: AcqRel: Acquire as for a claim's seq load; Release pairs with the
        // producers' Acquire loads of `seq` (this frees the slot). Exactly one
        // recoverer wins; a live consumer's free (P + S) makes it fail.
        match slot.state.compare_exchange(
            state,
            ep.state(position, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                // Relaxed: a statistic.
                ep.region
                    .control()
                    .signals
                    .0
                    .lost
                    .fetch_add(1, Ordering::Relaxed);
                ep.owe_space = true;
                Ok(Recovery::Recovered)
            }
            Err(_) => Ok(Recovery::AlreadyMoved),
        }
    }

    /// Frees every slot still held by a dead consumer (its entry's intent names
    /// a position claimed, published and never freed) and counts each message in
    /// `lost`; returns how many this call freed.
    fn reclaim_dead_consumers<L: Liveness + ?Sized>(
        &mut self,
        liveness: &L,
    ) -> Result<u64, MpmcCorruption> {
        let mut freed = 0;
        for index in 0..self.endpoints {
            let entry = self.region.entry(index);
            // Relaxed: a filter; `free_from_dead_consumer` decides with the slot's
            // state, the head and the live intents, as for a stall.
            if entry.role.load(Ordering::Relaxed) != ROLE_CONSUMER {
                continue;
            }
            // SYNC: Acquire pairs with the Release stores in `set_intent` (as in
            // `claimant_alive`).
            let intent = entry.intent.load(Ordering::Acquire);
            if intent == INTENT_NONE || liveness.is_alive(index) {
                continue;
            }
            if self.free_from_dead_consumer(intent, liveness)? == Recovery::Recovered {
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Records that the next `wake` owes the consumers a notification. Stores
    /// only if the flag is not set yet: the endpoint is the caller's memory, which
    /// may share a cache line with another thread's (two handles side by side),
    /// and a store per message would pull that line back and forth.
    #[inline(always)]
    fn note_published(&mut self) {
        if !self.owe_data {
            self.owe_data = true;
        }
    }

    /// As [`note_published`](Self::note_published), for the producers.
    #[inline(always)]
    fn note_freed(&mut self) {
        if !self.owe_space {
            self.owe_space = true;
        }
    }

    fn stats(&self) -> MpmcStats {
        MpmcStats::read(self.region.control())
    }

    fn wake<F: Futex + ?Sized>(&mut self, futex: &F) {
        let signals = &self.region.control().signals.0;
        if self.owe_data {
            notify(&signals.data_signal, futex);
        }
        if self.owe_space {
            notify(&signals.space_signal, futex);
        }
        self.owe_data = false;
        self.owe_space = false;
    }

    /// Blocks on `word` until `ready` holds or the deadline passes.
    fn wait_until<F: Futex + ?Sized>(
        &mut self,
        word: fn(&MpmcControl) -> &AtomicU32,
        ready: fn(&Self) -> Result<bool, MpmcCorruption>,
        futex: &F,
        deadline: Option<F::Deadline>,
    ) -> Result<(), MpmcWaitError> {
        loop {
            if ready(self).map_err(MpmcWaitError::Corrupted)? {
                return Ok(());
            }
            // Never sleep owing the others a wake-up.
            self.wake(futex);
            let word = word(self.region.control());
            let key = prepare_wait(word, futex);
            // Ordered after the registration by `prepare_wait`'s fence.
            if ready(self).map_err(MpmcWaitError::Corrupted)? {
                return Ok(());
            }
            futex.wait(word, key, deadline)?;
        }
    }
}

#[cfg(shmring_loom)]
impl<R: MpmcRegion> Endpoint<R> {
    /// Drops the region without the `Drop` clean-up.
    fn die(self) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the region is moved
        // out exactly once.
        drop(unsafe { core::ptr::read(&this.region) });
    }
}

impl<R: MpmcRegion> Drop for Endpoint<R> {
    fn drop(&mut self) {
        let entry = self.region.entry(self.entry);
        // Relaxed: published by the Release store of the owner word just below.
        entry.intent.store(INTENT_NONE, Ordering::Relaxed);
        // Relaxed: a hint for observers; as the intent.
        entry.pid.store(0, Ordering::Relaxed);
        // SYNC: Release pairs with the Acquire CAS in `register`.
        entry.owner.store(0, Ordering::Release);
    }
}

/// A sending endpoint of an MPMC ring. Any number may send at once (one handle
/// each, up to the table size); `Send` but not `Sync`.
///
/// # Examples
/// ```
/// use core::num::NonZeroU32;
/// use shmring_core::{MpmcConsumer, MpmcProducer, RawMpmcRegion, mpmc_segment_layout};
///
/// #[repr(C, align(128))]
/// struct Mem([u8; 1024]);
/// let mut mem = Mem([0; 1024]);
/// assert!(mpmc_segment_layout(4, 16, 2)?.size() <= mem.0.len());
/// // SAFETY: `mem` outlives the handles and is touched only through them.
/// let region = unsafe { RawMpmcRegion::init(mem.0.as_mut_ptr(), mem.0.len(), 4, 16, 2) }?;
/// let token = NonZeroU32::new(1).unwrap();
/// let mut tx = MpmcProducer::register(region.clone(), token)?;
/// let mut rx = MpmcConsumer::register(region, token)?;
/// tx.try_send(b"hello")?;
/// let mut buf = [0u8; 16];
/// let n = rx.try_recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
pub struct MpmcProducer<R: MpmcRegion> {
    ep: Endpoint<R>,
}

impl<R: MpmcRegion> fmt::Debug for MpmcProducer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcProducer")
            .field("entry", &self.ep.entry)
            .field("generation", &self.ep.generation)
            .finish_non_exhaustive()
    }
}

/// The receiving endpoint of an MPMC ring. Any number may receive at once; `Send`
/// but not `Sync`.
pub struct MpmcConsumer<R: MpmcRegion> {
    ep: Endpoint<R>,
}

impl<R: MpmcRegion> fmt::Debug for MpmcConsumer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcConsumer")
            .field("entry", &self.ep.entry)
            .field("generation", &self.ep.generation)
            .finish_non_exhaustive()
    }
}

macro_rules! endpoint_common {
    ($ty:ident, $role:expr, $what:literal) => {
        impl<R: MpmcRegion> $ty<R> {
            #[doc = concat!("Registers a ", $what, " in the first free entry of the endpoint table.")]
            ///
            /// # Errors
            /// [`RegisterError::TableFull`] when every entry is held.
            pub fn register(region: R, token: NonZeroU32) -> Result<Self, RegisterError> {
                Endpoint::register(region, $role, token, None, 0).map(|ep| Self { ep })
            }

            #[doc = concat!("Registers a ", $what, " in table entry `entry`, which must be free")]
            /// (owner word 0). The `shmring` crate calls this after taking the
            /// entry's liveness lock.
            ///
            /// # Errors
            /// [`RegisterError::EntryOutOfRange`], or [`RegisterError::Taken`] with the
            /// owner word found.
            pub fn register_at(
                region: R,
                entry: usize,
                token: NonZeroU32,
            ) -> Result<Self, RegisterError> {
                Endpoint::register(region, $role, token, Some(entry), 0).map(|ep| Self { ep })
            }

            #[doc = concat!("Registers a ", $what, " in table entry `entry`, taking it over from a")]
            /// holder that is gone (its owner word still holds `previous`). Its
            /// claim, if any, stays recoverable by the others.
            ///
            /// # Errors
            /// As [`register_at`](Self::register_at); `Taken` if the owner word no
            /// longer holds `previous`.
            ///
            /// # Safety
            /// The endpoint that registered with `previous` will never access the ring
            /// again: its process has exited, or its handle in this process has been
            /// leaked for good.
            pub unsafe fn take_over_at(
                region: R,
                entry: usize,
                token: NonZeroU32,
                previous: NonZeroU32,
            ) -> Result<Self, RegisterError> {
                Endpoint::register(region, $role, token, Some(entry), previous.get())
                    .map(|ep| Self { ep })
            }

            /// This endpoint's entry in the table.
            pub fn entry(&self) -> usize {
                self.ep.entry
            }

            /// The entry's generation number after this endpoint registered.
            pub fn generation(&self) -> u32 {
                self.ep.generation
            }

            /// The ring's shape.
            pub fn geometry(&self) -> MpmcGeometry {
                self.ep.region.geometry()
            }

            /// The ring's recovery statistics.
            pub fn stats(&self) -> MpmcStats {
                self.ep.stats()
            }

            /// Frees every slot still held by a consumer that is dead (its entry's
            /// intent names a position claimed, published and never freed, and no
            /// live endpoint intends it), counting each message in
            /// [`MpmcStats::lost`]; returns how many this call freed. Producers free
            /// such a slot when they come round to it
            /// ([`MpmcProducer::reclaim_from_dead_consumer`]); this frees the ones
            /// they have not reached, so that, once every endpoint has finished,
            /// every message published is delivered, or counted in `lost`. Costs
            /// a liveness query per consumer entry holding an intent.
            ///
            /// # Errors
            /// [`MpmcCorruption`] if a slot's sequence number is invalid.
            pub fn reclaim_dead_consumers<L: Liveness + ?Sized>(
                &mut self,
                liveness: &L,
            ) -> Result<u64, MpmcCorruption> {
                self.ep.reclaim_dead_consumers(liveness)
            }

            /// Wakes the endpoints waiting for what this one has done since the last
            /// call: consumers after messages were published (or a slot skipped),
            /// producers after slots were freed. Costs nothing if nothing was done,
            /// else the futex's notifier fence and a load per signal when nobody
            /// waits.
            pub fn wake<F: Futex + ?Sized>(&mut self, futex: &F) {
                self.ep.wake(futex);
            }
        }
    };
}

endpoint_common!(MpmcProducer, ROLE_PRODUCER, "producer");
endpoint_common!(MpmcConsumer, ROLE_CONSUMER, "consumer");

impl<R: MpmcRegion> MpmcProducer<R> {
    /// Largest message: the slot size.
    pub fn max_message_len(&self) -> usize {
        self.ep.slot_size
    }

    /// The general claim loop, from tail position `position` (`intent_set`: our
    /// entry holds an intent to clear if we give up; `lost_race`: the caller's
    /// compare-and-swap failed, so back off before looking).
    #[inline(never)]
    fn claim_from(
        &self,
        position: u64,
        intent_set: bool,
        lost_race: bool,
    ) -> Result<u64, SendError> {
        let ep = &self.ep;
        let control = ep.region.control();
        // SYNC: `position` came from an Acquire load of the tail (or a failed
        // Acquire CAS), which pairs with the Release half of the tail CASes (one
        // release sequence): every claim below the tail, and so the `seq` each
        // claimant read, happen before our `seq` load, which therefore reads no
        // older value than `position - slots` (free for the previous lap).
        let mut position = position;
        // Whether our entry holds an intent to clear on the way out.
        let mut intent_set = intent_set;
        // The wait after a lost compare-and-swap or a stall (`backoff`).
        let mut spins = 1;
        if lost_race {
            backoff(&mut spins);
        }
        for _ in 0..MAX_ATTEMPTS {
            // SYNC: Acquire pairs with the consumer's Release store of `seq`
            // (P + S) in `try_recv` and with the recoverers' AcqRel CASes: their
            // reads of this slot happen before our writes.
            let state = ep
                .region
                .slot(ep.index(position))
                .state
                .load(Ordering::Acquire);
            if let Err(c) = ep.check_seq(position, state) {
                if intent_set {
                    ep.clear_intent();
                }
                return Err(SendError::Corrupted(c));
            }
            let diff = ep.diff(position, state);
            if diff == 0 {
                ep.set_intent(position);
                intent_set = true;
                // SYNC: AcqRel. Release publishes our intent to a consumer that
                // Acquire-loads a tail beyond `position` (its stall check and
                // recovery); Acquire orders our later CASes after other producers'.
                // Acquire on failure: `found` is a new starting point, as the load
                // above.
                match control.tail.0.compare_exchange(
                    position,
                    position.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(position),
                    Err(found) => {
                        // Another producer won: let it run on before we pull the
                        // tail's line back.
                        position = found;
                        backoff(&mut spins);
                    }
                }
            } else if diff == 1 - self.ep.slots as i64 || diff == -(self.ep.slots as i64) {
                // The slot holds the previous lap: its message unconsumed, or
                // claimed by a consumer that has not freed it yet, or (seq == P - S)
                // claimed by a producer of that lap and not published.
                if intent_set {
                    ep.clear_intent();
                }
                if diff == -(self.ep.slots as i64) {
                    return Err(SendError::Full);
                }
                // Relaxed: only tells Full from Stalled; recovery re-reads it.
                let head = control.head.0.load(Ordering::Relaxed);
                let previous = position.wrapping_sub(self.ep.slots);
                if head.wrapping_sub(previous) as i64 <= 0 {
                    return Err(SendError::Full);
                }
                if spins == BACKOFF_SPINS_MAX {
                    return Err(SendError::Stalled { position });
                }
                // A consumer is copying the previous lap's message out: it
                // usually frees the slot within nanoseconds. Wait, look again.
                backoff(&mut spins);
                intent_set = false;
            } else {
                // Another producer claimed `position` (its seq moved on), or our
                // tail was stale: reload. A producer moves `tail` before `seq`, so
                // a legitimate reload gives another value.
                // SYNC: Acquire, as the first load of the tail.
                let found = control.tail.0.load(Ordering::Acquire);
                if found == position {
                    if intent_set {
                        ep.clear_intent();
                    }
                    return Err(SendError::Corrupted(MpmcCorruption::BadSequence {
                        position,
                        seq: state >> ep.len_bits,
                    }));
                }
                position = found;
            }
        }
        if intent_set {
            ep.clear_intent();
        }
        Err(SendError::Contended)
    }

    /// Copies `message` into a slot and publishes it.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] beyond the slot size; [`SendError::Full`];
    /// [`SendError::Stalled`] when the slot is still held by a consumer of the
    /// previous lap after a few microseconds of spinning (wait, and after the
    /// caller's bound try
    /// [`reclaim_from_dead_consumer`](Self::reclaim_from_dead_consumer));
    /// [`SendError::Contended`]; [`SendError::Corrupted`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), SendError> {
        let ep = &self.ep;
        let len = message.len();
        if len > ep.slot_size {
            return Err(SendError::TooLarge {
                len,
                max: ep.slot_size,
            });
        }
        // The common case (the slot at the tail is free and our compare-and-swap
        // wins) is handled here, with everything it needs computed before the
        // atomics (after them the compiler would load the endpoint's fields
        // again); everything else goes to `send_slow`, which starts over from the
        // tail position last seen and re-reads the slot.
        let len_bits = ep.len_bits;
        let control = ep.region.control();
        let intent = &ep.region.entry(ep.entry).intent;
        // SYNC: Acquire, as in `claim_from`.
        let position = control.tail.0.load(Ordering::Acquire);
        let index = ep.index(position);
        let slot = ep.region.slot(index);
        let payload = ep.region.payload(index);
        // The intent goes out before the slot is even looked at. The compare-and-
        // swap below waits until every earlier store is written; issued here, the
        // store is written while the state load is on its way, and 1×1 throughput
        // went up by 10 to 28 % in the comparisons against storing it just before
        // the CAS (ARCHITECTURE.md, "Performance notes (MPMC, in-process)"). If no
        // claim follows, the slow path withdraws it.
        // SYNC: Release, as in `set_intent`.
        intent.store(position, Ordering::Release);
        // SYNC: Acquire, as in `claim_from`.
        let state = slot.state.load(Ordering::Acquire);
        // Sequence number `position`, length zero: the valid "free for `position`".
        if state == position << len_bits {
            let published = (position.wrapping_add(1) << len_bits) | len as u64;
            // SYNC: AcqRel and Acquire on failure, as in `claim_from`.
            match control.tail.0.compare_exchange(
                position,
                position.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: `len <= slot_size` (checked above); `slot` and
                    // `payload` are `position`'s slot, which our compare-and-swap
                    // just claimed.
                    unsafe {
                        write_and_publish(&ep.region, index, slot, payload, published, message)
                    };
                    self.ep.note_published();
                    return Ok(());
                }
                Err(found) => return self.send_slow(found, true, message),
            }
        }
        self.send_slow(position, false, message)
    }

    /// `try_send` past its common case, with our intent set: the claim loop from
    /// `position` (`lost_race` as for `claim_from`), then the publication.
    #[inline(never)]
    fn send_slow(
        &mut self,
        position: u64,
        lost_race: bool,
        message: &[u8],
    ) -> Result<(), SendError> {
        let position = self.claim_from(position, true, lost_race)?;
        let ep = &self.ep;
        let index = ep.index(position);
        let published = ep.state(position.wrapping_add(1), message.len() as u64);
        // SAFETY: `message.len() <= slot_size` (checked in `try_send`); the slot
        // and payload are `position`'s, which `claim_from` claimed.
        unsafe {
            write_and_publish(
                &ep.region,
                index,
                ep.region.slot(index),
                ep.region.payload(index),
                published,
                message,
            );
        }
        self.ep.owe_data = true;
        Ok(())
    }

    /// Frees the slot of `position - slots` if the consumer that claimed it is
    /// dead: the message in it is lost (counted in [`MpmcStats::lost`]). Call after
    /// [`SendError::Stalled`] for `position` has lasted longer than a bound the
    /// caller chooses (a live consumer copying a message is not dead; a bound of
    /// milliseconds avoids scanning the table at every stall).
    ///
    /// # Errors
    /// [`MpmcCorruption`] if the slot's sequence number is invalid.
    pub fn reclaim_from_dead_consumer<L: Liveness + ?Sized>(
        &mut self,
        position: u64,
        liveness: &L,
    ) -> Result<Recovery, MpmcCorruption> {
        self.ep
            .free_from_dead_consumer(position.wrapping_sub(self.ep.slots), liveness)
    }

    /// Whether the slot at the tail may take a message now (or the tail moved, or
    /// the slot is garbage: `try_send` will tell).
    fn space_ready(ep: &Endpoint<R>) -> Result<bool, MpmcCorruption> {
        let control = ep.region.control();
        // Relaxed: only decides whether to stop waiting; `try_send` re-reads both.
        let position = control.tail.0.load(Ordering::Relaxed);
        let state = ep
            .region
            .slot(ep.index(position))
            .state
            .load(Ordering::Relaxed);
        ep.check_seq(position, state)?;
        let diff = ep.diff(position, state);
        Ok(diff != 1 - ep.slots as i64 && diff != -(ep.slots as i64))
    }

    /// Blocks until the slot at the tail is free (or the tail moves), or the
    /// deadline passes. Returns at once if it is free now. [`try_send`](Self::try_send)
    /// may still fail afterwards (another producer took the slot): call again.
    /// While a consumer holds the slot (stalled), this sleeps until it frees it: a
    /// caller that must recover from dead consumers passes a deadline no later than
    /// its stall bound.
    ///
    /// # Errors
    /// [`MpmcWaitError::TimedOut`], [`MpmcWaitError::Corrupted`].
    pub fn wait_for_space<F: Futex + ?Sized>(
        &mut self,
        futex: &F,
        deadline: Option<F::Deadline>,
    ) -> Result<(), MpmcWaitError> {
        self.ep.wait_until(
            |c| &c.signals.0.space_signal,
            Self::space_ready,
            futex,
            deadline,
        )
    }

    /// Test support for the model checks: claims a position as
    /// [`try_send`](Self::try_send) does and returns it without publishing, as a
    /// producer that dies right after its claim would leave it.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn claim_without_publishing(&mut self) -> Result<u64, SendError> {
        // SYNC: Acquire, as in `try_send`.
        let position = self.ep.region.control().tail.0.load(Ordering::Acquire);
        self.claim_from(position, false, false)
    }

    /// Test support for the model checks: ends this handle as a killed process
    /// would, leaving its table entry (owner, intent) as it is.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn die(self) {
        self.ep.die();
    }
}

impl<R: MpmcRegion> MpmcConsumer<R> {
    /// Largest message: the slot size.
    pub fn max_message_len(&self) -> usize {
        self.ep.slot_size
    }

    /// Claims the next published message, copies it into `buf` and frees its slot;
    /// returns its length.
    ///
    /// # Errors
    /// [`RecvError::Empty`]; [`RecvError::BufferTooSmall`] with the message's length
    /// (nothing consumed); [`RecvError::Stalled`] when a producer claimed the next
    /// position and has not published it after a few microseconds of spinning
    /// (wait, and after the caller's bound try
    /// [`skip_dead_producer`](Self::skip_dead_producer)); [`RecvError::Contended`];
    /// [`RecvError::Corrupted`] (for a bad length field the slot was consumed and
    /// freed, so the next call moves on).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let ep = &self.ep;
        // The common case (a message that fits both the slot and `buf` at the
        // head, and our compare-and-swap wins) is handled here, with everything it
        // needs computed before the atomics (after them the compiler would load
        // the endpoint's fields again); everything else goes to `recv_slow`, which
        // starts over from the head position last seen and re-reads the slot.
        let len_bits = ep.len_bits;
        // Below `2^len_bits`: the slot size is.
        let fits = buf.len().min(ep.slot_size) as u64;
        let slots = ep.slots;
        let control = ep.region.control();
        let intent = &ep.region.entry(ep.entry).intent;
        // SYNC: Acquire, as in `claim_from`.
        let position = control.head.0.load(Ordering::Acquire);
        let index = ep.index(position);
        let slot = ep.region.slot(index);
        let payload = ep.region.payload(index);
        // The intent goes out first, as in `try_send` (the slow path withdraws it
        // if no claim follows).
        // SYNC: Release, as in `set_intent`.
        intent.store(position, Ordering::Release);
        // SYNC: Acquire, as in `claim_from`: the payload is visible.
        let state = slot.state.load(Ordering::Acquire);
        // Read once, with the sequence number. One comparison checks both: the
        // difference is the length field if the sequence number is `position + 1`
        // (the valid "published"), and at least `2^len_bits` if it is not.
        let published = position.wrapping_add(1) << len_bits;
        let len = state.wrapping_sub(published);
        if len <= fits {
            // SYNC: AcqRel and Acquire on failure, as in `claim_from`.
            match control.head.0.compare_exchange(
                position,
                position.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    ep.region.will_read(index);
                    // SAFETY: `len <= slot_size` and `len <= buf.len()` (`fits`);
                    // the slot is ours from the head CAS until the state store
                    // below; the region keeps `slot_size` bytes valid at
                    // `payload`; `buf` is the caller's memory, not the segment's.
                    unsafe { copy_message(payload, buf.as_mut_ptr(), len as usize) };
                    // SYNC: Release, as in `finish`: our copy happens before the
                    // next lap's writes.
                    slot.state
                        .store(position.wrapping_add(slots) << len_bits, Ordering::Release);
                    self.ep.note_freed();
                    return Ok(len as usize);
                }
                Err(found) => return self.recv_slow(found, true, buf),
            }
        }
        self.recv_slow(position, false, buf)
    }

    /// `try_recv` past its common case, with our intent set: the claim loop from
    /// `position` (`lost_race` as for `claim_from`), then the copy and the free.
    #[inline(never)]
    fn recv_slow(
        &mut self,
        position: u64,
        lost_race: bool,
        buf: &mut [u8],
    ) -> Result<usize, RecvError> {
        let (position, len) = self.claim_from(position, buf.len(), true, lost_race)?;
        self.finish(position, len, Some(buf))
    }

    /// Claims the next published message; `(position, length)`, intent set.
    #[cfg(shmring_loom)]
    fn claim(&mut self, buffer: usize) -> Result<(u64, u32), RecvError> {
        // SYNC: Acquire, as in `claim_from`.
        let position = self.ep.region.control().head.0.load(Ordering::Acquire);
        self.claim_from(position, buffer, false, false)
    }

    /// The general claim loop, from head position `position` (`intent_set`: our
    /// entry holds an intent to clear if we give up; `lost_race`: the caller's
    /// compare-and-swap failed, so back off before looking).
    #[inline(never)]
    fn claim_from(
        &mut self,
        position: u64,
        buffer: usize,
        intent_set: bool,
        lost_race: bool,
    ) -> Result<(u64, u32), RecvError> {
        let ep = &self.ep;
        let control = ep.region.control();
        // SYNC: `position` came from an Acquire load of the head (or a failed
        // Acquire CAS), which pairs with the Release half of the head CASes: every
        // claim below the head, and the `seq` each claimant read, happen before
        // our `seq` load, which therefore reads no older value than
        // `position - slots + 1` (the previous lap's message).
        let mut position = position;
        // Whether our entry holds an intent to clear on the way out.
        let mut intent_set = intent_set;
        // The wait after a lost compare-and-swap or a stall (`backoff`).
        let mut spins = 1;
        if lost_race {
            backoff(&mut spins);
        }
        for _ in 0..MAX_ATTEMPTS {
            let slot = ep.region.slot(ep.index(position));
            // SYNC: Acquire pairs with the producer's Release store of the state
            // (P + 1) in `write_and_publish`: the payload is visible.
            let state = slot.state.load(Ordering::Acquire);
            if let Err(c) = ep.check_seq(position, state) {
                if intent_set {
                    ep.clear_intent();
                }
                return Err(RecvError::Corrupted(c));
            }
            let diff = ep.diff(position, state);
            if diff == 1 {
                // Read once, in the same word as the sequence number.
                let len = ep.len_of(state);
                if len as usize <= ep.slot_size && len as usize > buffer {
                    if intent_set {
                        ep.clear_intent();
                    }
                    return Err(RecvError::BufferTooSmall {
                        len: len as usize,
                        buffer,
                    });
                }
                ep.set_intent(position);
                intent_set = true;
                // SYNC: AcqRel. Release publishes our intent to a producer that
                // Acquire-loads a head beyond `position` (its recovery);
                // Acquire orders us after the consumer (or skipper) before us.
                // Acquire on failure: `found` is a new starting point, as the load
                // above.
                match control.head.0.compare_exchange(
                    position,
                    position.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok((position, len)),
                    Err(found) => {
                        // Another consumer won: let it run on before we pull the
                        // head's line back.
                        position = found;
                        backoff(&mut spins);
                    }
                }
            } else if diff == 0 {
                if intent_set {
                    ep.clear_intent();
                }
                // SYNC: Acquire pairs with the Release half of the producers' tail
                // CAS: if the tail is past `position`, its claimant's intent is
                // visible to `skip_dead_producer`.
                let tail = control.tail.0.load(Ordering::Acquire);
                if tail.wrapping_sub(position) as i64 <= 0 {
                    return Err(RecvError::Empty);
                }
                if spins == BACKOFF_SPINS_MAX {
                    return Err(RecvError::Stalled { position });
                }
                // A producer is writing the message: it usually publishes within
                // nanoseconds. Wait, look again.
                backoff(&mut spins);
                intent_set = false;
            } else if diff == 1 - ep.slots as i64 {
                // The previous lap's message is claimed by a consumer that has not
                // freed it yet: nothing can be published here before it does.
                if intent_set {
                    ep.clear_intent();
                }
                return Err(RecvError::Empty);
            } else if diff == ep.slots as i64 || diff == ep.slots as i64 + 1 {
                // Consumed by another consumer (our head is stale), or skipped by a
                // consumer that has not advanced `head` yet (it may have died
                // there): help.
                // SYNC: AcqRel and Acquire on failure, as in the claim above.
                match control.head.0.compare_exchange(
                    position,
                    position.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => position = position.wrapping_add(1),
                    Err(found) => position = found,
                }
            } else {
                // Our head is stale by more: reload. A consumer moves `head` before
                // it frees `seq`, so a legitimate reload gives another value.
                // SYNC: Acquire, as the first load of the head.
                let found = control.head.0.load(Ordering::Acquire);
                if found == position {
                    if intent_set {
                        ep.clear_intent();
                    }
                    return Err(RecvError::Corrupted(MpmcCorruption::BadSequence {
                        position,
                        seq: state >> ep.len_bits,
                    }));
                }
                position = found;
            }
        }
        if intent_set {
            ep.clear_intent();
        }
        Err(RecvError::Contended)
    }

    /// Copies the claimed message out (if `buf`) and frees the slot.
    fn finish(
        &mut self,
        position: u64,
        len: u32,
        buf: Option<&mut [u8]>,
    ) -> Result<usize, RecvError> {
        let ep = &mut self.ep;
        let index = ep.index(position);
        let slot = ep.region.slot(index);
        let result = if len as usize > ep.slot_size {
            Err(RecvError::Corrupted(MpmcCorruption::BadLength {
                position,
                len,
                max: ep.slot_size,
            }))
        } else {
            if let Some(buf) = buf {
                ep.region.will_read(index);
                // SAFETY: `len <= slot_size` (checked) and `len <= buf.len()` (checked
                // in `claim_from`); the slot is ours from the head CAS
                // until the `seq` store below; the region keeps `slot_size` bytes
                // valid there; `buf` is the caller's memory, not the segment's.
                unsafe { copy_message(ep.region.payload(index), buf.as_mut_ptr(), len as usize) };
            }
            Ok(len as usize)
        };
        // SYNC: Release pairs with the producers' Acquire load of the state in
        // `try_send` and `claim_from`: our copy happens before the next lap's
        // writes.
        slot.state.store(
            ep.state(position.wrapping_add(ep.slots), 0),
            Ordering::Release,
        );
        // The intent keeps naming `position` (see `claimant_alive`).
        ep.owe_space = true;
        result
    }

    /// Skips `position` if the producer that claimed it is dead (no message was
    /// published there; counted in [`MpmcStats::skipped`]). Call after
    /// [`RecvError::Stalled`] for `position` has lasted longer than a bound the
    /// caller chooses (a live producer copying its message is not dead).
    ///
    /// # Errors
    /// [`MpmcCorruption`] if the slot's sequence number is invalid.
    pub fn skip_dead_producer<L: Liveness + ?Sized>(
        &mut self,
        position: u64,
        liveness: &L,
    ) -> Result<Recovery, MpmcCorruption> {
        let ep = &mut self.ep;
        let control = ep.region.control();
        let slot = ep.region.slot(ep.index(position));
        // Relaxed: the CAS below decides; this only filters.
        let state = slot.state.load(Ordering::Relaxed);
        ep.check_seq(position, state)?;
        if ep.diff(position, state) != 0 {
            return Ok(Recovery::AlreadyMoved);
        }
        // SYNC: Acquire pairs with the Release half of the producers' tail CAS: the
        // intent the claimant of `position` stored before claiming is visible.
        let tail = control.tail.0.load(Ordering::Acquire);
        if tail.wrapping_sub(position) as i64 <= 0 {
            return Ok(Recovery::AlreadyMoved);
        }
        if let Some(entry) = ep.claimant_alive(position, ROLE_PRODUCER, liveness) {
            return Ok(Recovery::ClaimantAlive { entry });
        }
        // SYNC: AcqRel: Release pairs with the producers' Acquire load of `seq`
        // (the slot is free for the next lap) and with the consumers' (they help
        // advance the head). Exactly one skipper wins; a late publication by a live
        // claimant (P + 1) makes it fail.
        match slot.state.compare_exchange(
            state,
            ep.state(position.wrapping_add(ep.slots), 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                // Relaxed: a statistic.
                control.signals.0.skipped.fetch_add(1, Ordering::Relaxed);
                // SYNC: AcqRel as in `claim_from`. If this fails, another consumer
                // already helped.
                let _ = control.head.0.compare_exchange(
                    position,
                    position.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                ep.owe_data = true;
                ep.owe_space = true;
                Ok(Recovery::Recovered)
            }
            Err(_) => Ok(Recovery::AlreadyMoved),
        }
    }

    /// Whether the slot at the head holds something to act on: a message, a slot
    /// to help past, or garbage (`try_recv` will tell).
    fn message_ready(ep: &Endpoint<R>) -> Result<bool, MpmcCorruption> {
        let control = ep.region.control();
        // Relaxed: only decides whether to stop waiting; `try_recv` re-reads both.
        let position = control.head.0.load(Ordering::Relaxed);
        let state = ep
            .region
            .slot(ep.index(position))
            .state
            .load(Ordering::Relaxed);
        ep.check_seq(position, state)?;
        let diff = ep.diff(position, state);
        Ok(diff != 0 && diff != 1 - ep.slots as i64)
    }

    /// Blocks until the slot at the head is published (or the head moves), or the
    /// deadline passes. Returns at once if it is ready now.
    /// [`try_recv`](Self::try_recv) may still return `Empty` afterwards (another
    /// consumer took it): call again. While a producer's claim is unpublished
    /// (stalled), this sleeps until it publishes: a caller that must recover from
    /// dead producers passes a deadline no later than its stall bound.
    ///
    /// # Errors
    /// [`MpmcWaitError::TimedOut`], [`MpmcWaitError::Corrupted`].
    pub fn wait_for_message<F: Futex + ?Sized>(
        &mut self,
        futex: &F,
        deadline: Option<F::Deadline>,
    ) -> Result<(), MpmcWaitError> {
        self.ep.wait_until(
            |c| &c.signals.0.data_signal,
            Self::message_ready,
            futex,
            deadline,
        )
    }

    /// Test support for the model checks: claims the next message as
    /// [`try_recv`](Self::try_recv) does and returns its position without copying or
    /// freeing it, as a consumer that dies right after its claim would leave it.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn claim_without_freeing(&mut self) -> Result<u64, RecvError> {
        self.claim(usize::MAX).map(|(position, _)| position)
    }

    /// Test support for the model checks: ends this handle as a killed process
    /// would, leaving its table entry (owner, intent) as it is.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn die(self) {
        self.ep.die();
    }
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
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
            tx.try_send(&message[..len]).unwrap();
            let mut buf = [0u8; SLOT + 8];
            assert_eq!(rx.try_recv(&mut buf), Ok(len));
            assert_eq!(&buf[..len], &message[..len], "length {len}");
            assert!(
                buf[len..].iter().all(|&b| b == 0),
                "length {len}: wrote past"
            );
        }
    }
}
