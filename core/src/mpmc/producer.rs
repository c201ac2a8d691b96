//! The producer: its claim loop, the common path of a push and the publication,
//! and its wait for space.

use core::fmt;

use super::endpoint::Endpoint;
use super::error::{MpmcCorruption, MpmcPushError, MpmcWaitError};
use super::slot::copy_message;
use super::{BACKOFF_SPINS_MAX, MAX_ATTEMPTS, MpmcRegion, backoff, layout};
use crate::sync::Ordering;
use crate::wait::{Futex, Readiness};

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
    // SYNC: Release pairs with the Acquire load of the state in `pop`: the
    // payload is visible once a consumer sees P + 1 (and the length with it, in
    // the same word). The intent keeps naming the position (see
    // `claimant_alive`).
    slot.state.store(published, Ordering::Release);
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
/// tx.push(b"hello")?;
/// let mut buf = [0u8; 16];
/// let n = rx.pop(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
pub struct MpmcProducer<R: MpmcRegion> {
    pub(super) ep: Endpoint<R>,
}

impl<R: MpmcRegion> fmt::Debug for MpmcProducer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcProducer")
            .field("entry", &self.ep.entry)
            .field("generation", &self.ep.generation)
            .finish_non_exhaustive()
    }
}

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
    ) -> Result<u64, MpmcPushError> {
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
            // (P + S) in `pop` and with the recoverers' AcqRel CASes: their
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
                return Err(MpmcPushError::Corrupted(c));
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
                match control.tail.compare_exchange(
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
                    return Err(MpmcPushError::Full);
                }
                // Relaxed: only tells Full from Stalled; recovery re-reads it.
                let head = control.head.load(Ordering::Relaxed);
                let previous = position.wrapping_sub(self.ep.slots);
                if head.wrapping_sub(previous) as i64 <= 0 {
                    return Err(MpmcPushError::Full);
                }
                if spins == BACKOFF_SPINS_MAX {
                    return Err(MpmcPushError::Stalled { position });
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
                let found = control.tail.load(Ordering::Acquire);
                if found == position {
                    if intent_set {
                        ep.clear_intent();
                    }
                    return Err(MpmcPushError::Corrupted(MpmcCorruption::BadSequence {
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
        Err(MpmcPushError::Contended)
    }

    /// Copies `message` into a slot and publishes it.
    ///
    /// # Errors
    /// [`MpmcPushError::TooLarge`] beyond the slot size; [`MpmcPushError::Full`];
    /// [`MpmcPushError::Stalled`] when the slot is still held by a consumer of the
    /// previous lap after a few microseconds of spinning (wait, and after the
    /// caller's bound try
    /// [`reclaim_from_dead_consumer`](Self::reclaim_from_dead_consumer));
    /// [`MpmcPushError::Contended`]; [`MpmcPushError::Corrupted`].
    pub fn push(&mut self, message: &[u8]) -> Result<(), MpmcPushError> {
        let ep = &self.ep;
        let len = message.len();
        if len > ep.slot_size {
            return Err(MpmcPushError::TooLarge {
                len,
                max: ep.slot_size,
            });
        }
        // The common case (the slot at the tail is free and our compare-and-swap
        // wins) is handled here, with everything it needs computed before the
        // atomics (after them the compiler would load the endpoint's fields
        // again); everything else goes to `push_slow`, which starts over from the
        // tail position last seen and re-reads the slot.
        let len_bits = ep.len_bits;
        let control = ep.region.control();
        let intent = &ep.region.entry(ep.entry).intent;
        // SYNC: Acquire, as in `claim_from`.
        let position = control.tail.load(Ordering::Acquire);
        let index = ep.index(position);
        let slot = ep.region.slot(index);
        let payload = ep.region.payload(index);
        // The intent goes out before the slot is even looked at. The compare-and-
        // swap below waits until every earlier store is written; issued here, the
        // store is written while the state load is on its way, and 1×1 throughput
        // went up by 10 to 28 % in the comparisons against storing it just before
        // the CAS (benches/notes/2026-11-25-mpmc-intent-before-state-load.md). If no
        // claim follows, the slow path withdraws it.
        // SYNC: Release, as in `set_intent`.
        intent.store(position, Ordering::Release);
        // SYNC: Acquire, as in `claim_from`.
        let state = slot.state.load(Ordering::Acquire);
        // Sequence number `position`, length zero: the valid "free for `position`".
        if state == position << len_bits {
            let published = (position.wrapping_add(1) << len_bits) | len as u64;
            // SYNC: AcqRel and Acquire on failure, as in `claim_from`.
            match control.tail.compare_exchange(
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
                Err(found) => return self.push_slow(found, true, message),
            }
        }
        self.push_slow(position, false, message)
    }

    /// `push` past its common case, with our intent set: the claim loop from
    /// `position` (`lost_race` as for `claim_from`), then the publication.
    #[inline(never)]
    fn push_slow(
        &mut self,
        position: u64,
        lost_race: bool,
        message: &[u8],
    ) -> Result<(), MpmcPushError> {
        let position = self.claim_from(position, true, lost_race)?;
        let ep = &self.ep;
        let index = ep.index(position);
        let published = ep.state(position.wrapping_add(1), message.len() as u64);
        // SAFETY: `message.len() <= slot_size` (checked in `push`); the slot
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

    /// Whether the slot at the tail may take a message now (or the tail moved, or
    /// the slot is garbage: `push` will tell).
    fn space_ready(ep: &Endpoint<R>) -> Result<bool, MpmcCorruption> {
        let control = ep.region.control();
        // Relaxed: only decides whether to stop waiting; `push` re-reads both.
        let position = control.tail.load(Ordering::Relaxed);
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
    /// deadline passes. Returns at once if it is free now. [`push`](Self::push)
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
            |c| &c.signals.space_signal,
            Self::space_ready,
            futex,
            deadline,
        )
    }

    /// Arms the caller's readiness descriptor (doorbell) for room:
    /// [`Readiness::Ready`] if the slot at the tail is free now, else
    /// [`Readiness::Armed`], and the next consumer's release notification rings
    /// the doorbell ([`Futex::ring_doorbell`]). Never blocks. As after
    /// [`wait_for_space`](Self::wait_for_space), [`push`](Self::push) may still
    /// find the slot taken: arm again.
    ///
    /// # Errors
    /// [`MpmcWaitError::Corrupted`].
    pub fn arm_for_space<F: Futex + ?Sized>(
        &mut self,
        futex: &F,
    ) -> Result<Readiness, MpmcWaitError> {
        self.ep
            .arm_unless_ready(|c| &c.signals.space_signal, Self::space_ready, futex)
    }

    /// Test support for the model checks: claims a position as
    /// [`push`](Self::push) does and returns it without publishing, as a
    /// producer that dies right after its claim would leave it.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn claim_without_publishing(&mut self) -> Result<u64, MpmcPushError> {
        // SYNC: Acquire, as in `push`.
        let position = self.ep.region.control().tail.load(Ordering::Acquire);
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
