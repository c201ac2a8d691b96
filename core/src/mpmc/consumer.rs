//! The consumer: its claim loop, the common path of a pop, the copy out and the
//! free, and its wait for messages.

use core::fmt;

use super::endpoint::Endpoint;
use super::error::{MpmcCorruption, MpmcPopError, MpmcWaitError};
use super::slot::copy_message;
use super::{BACKOFF_SPINS_MAX, MAX_ATTEMPTS, MpmcRegion, backoff};
use crate::sync::Ordering;
use crate::wait::{Futex, Readiness};

/// The receiving endpoint of an MPMC ring. Any number may receive at once; `Send`
/// but not `Sync`.
pub struct MpmcConsumer<R: MpmcRegion> {
    pub(super) ep: Endpoint<R>,
}

impl<R: MpmcRegion> fmt::Debug for MpmcConsumer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcConsumer")
            .field("entry", &self.ep.entry)
            .field("generation", &self.ep.generation)
            .finish_non_exhaustive()
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
    /// [`MpmcPopError::Empty`]; [`MpmcPopError::BufferTooSmall`] with the message's
    /// length (nothing consumed); [`MpmcPopError::Stalled`] when a producer claimed
    /// the next position and has not published it after a few microseconds of
    /// spinning (wait, and after the caller's bound try
    /// [`skip_dead_producer`](Self::skip_dead_producer));
    /// [`MpmcPopError::Contended`]; [`MpmcPopError::Corrupted`] (for a bad length
    /// field the slot was consumed and freed, so the next call moves on).
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<usize, MpmcPopError> {
        let ep = &self.ep;
        // The common case (a message that fits both the slot and `buf` at the
        // head, and our compare-and-swap wins) is handled here, with everything it
        // needs computed before the atomics (after them the compiler would load
        // the endpoint's fields again); everything else goes to `pop_slow`, which
        // starts over from the head position last seen and re-reads the slot.
        let len_bits = ep.len_bits;
        // Below `2^len_bits`: the slot size is.
        let fits = buf.len().min(ep.slot_size) as u64;
        let slots = ep.slots;
        let control = ep.region.control();
        let intent = &ep.region.entry(ep.entry).intent;
        // SYNC: Acquire, as in `claim_from`.
        let position = control.head.load(Ordering::Acquire);
        let index = ep.index(position);
        let slot = ep.region.slot(index);
        let payload = ep.region.payload(index);
        // The intent goes out first, as in `push` (the slow path withdraws it
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
            match control.head.compare_exchange(
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
                Err(found) => return self.pop_slow(found, true, buf),
            }
        }
        self.pop_slow(position, false, buf)
    }

    /// `pop` past its common case, with our intent set: the claim loop from
    /// `position` (`lost_race` as for `claim_from`), then the copy and the free.
    #[inline(never)]
    fn pop_slow(
        &mut self,
        position: u64,
        lost_race: bool,
        buf: &mut [u8],
    ) -> Result<usize, MpmcPopError> {
        let (position, len) = self.claim_from(position, buf.len(), true, lost_race)?;
        self.finish(position, len, Some(buf))
    }

    /// Claims the next published message; `(position, length)`, intent set.
    #[cfg(shmring_loom)]
    fn claim(&mut self, buffer: usize) -> Result<(u64, u32), MpmcPopError> {
        // SYNC: Acquire, as in `claim_from`.
        let position = self.ep.region.control().head.load(Ordering::Acquire);
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
    ) -> Result<(u64, u32), MpmcPopError> {
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
                return Err(MpmcPopError::Corrupted(c));
            }
            let diff = ep.diff(position, state);
            if diff == 1 {
                // Read once, in the same word as the sequence number.
                let len = ep.len_of(state);
                if len as usize <= ep.slot_size && len as usize > buffer {
                    if intent_set {
                        ep.clear_intent();
                    }
                    return Err(MpmcPopError::BufferTooSmall {
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
                match control.head.compare_exchange(
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
                let tail = control.tail.load(Ordering::Acquire);
                if tail.wrapping_sub(position) as i64 <= 0 {
                    return Err(MpmcPopError::Empty);
                }
                if spins == BACKOFF_SPINS_MAX {
                    return Err(MpmcPopError::Stalled { position });
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
                return Err(MpmcPopError::Empty);
            } else if diff == ep.slots as i64 || diff == ep.slots as i64 + 1 {
                // Consumed by another consumer (our head is stale), or skipped by a
                // consumer that has not advanced `head` yet (it may have died
                // there): help.
                // SYNC: AcqRel and Acquire on failure, as in the claim above.
                match control.head.compare_exchange(
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
                let found = control.head.load(Ordering::Acquire);
                if found == position {
                    if intent_set {
                        ep.clear_intent();
                    }
                    return Err(MpmcPopError::Corrupted(MpmcCorruption::BadSequence {
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
        Err(MpmcPopError::Contended)
    }

    /// Copies the claimed message out (if `buf`) and frees the slot.
    fn finish(
        &mut self,
        position: u64,
        len: u32,
        buf: Option<&mut [u8]>,
    ) -> Result<usize, MpmcPopError> {
        let ep = &mut self.ep;
        let index = ep.index(position);
        let slot = ep.region.slot(index);
        let result = if len as usize > ep.slot_size {
            Err(MpmcPopError::Corrupted(MpmcCorruption::BadLength {
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
        // `push` and `claim_from`: our copy happens before the next lap's
        // writes.
        slot.state.store(
            ep.state(position.wrapping_add(ep.slots), 0),
            Ordering::Release,
        );
        // The intent keeps naming `position` (see `claimant_alive`).
        ep.owe_space = true;
        result
    }

    /// Whether the slot at the head holds something to act on: a message, a slot
    /// to help past, or garbage (`pop` will tell).
    fn message_ready(ep: &Endpoint<R>) -> Result<bool, MpmcCorruption> {
        let control = ep.region.control();
        // Relaxed: only decides whether to stop waiting; `pop` re-reads both.
        let position = control.head.load(Ordering::Relaxed);
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
    /// [`pop`](Self::pop) may still return `Empty` afterwards (another
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
            |c| &c.signals.data_signal,
            Self::message_ready,
            futex,
            deadline,
        )
    }

    /// Arms the caller's readiness descriptor (doorbell) for a message:
    /// [`Readiness::Ready`] if the slot at the head holds something to act on
    /// now, else [`Readiness::Armed`], and the next producer's notification rings
    /// the doorbell ([`Futex::ring_doorbell`]). Never blocks. As after
    /// [`wait_for_message`](Self::wait_for_message), [`pop`](Self::pop) may still
    /// find nothing (another consumer took it): arm again.
    ///
    /// # Errors
    /// [`MpmcWaitError::Corrupted`].
    pub fn arm_for_message<F: Futex + ?Sized>(
        &mut self,
        futex: &F,
    ) -> Result<Readiness, MpmcWaitError> {
        self.ep
            .arm_unless_ready(|c| &c.signals.data_signal, Self::message_ready, futex)
    }

    /// Test support for the model checks: claims the next message as
    /// [`pop`](Self::pop) does and returns its position without copying or
    /// freeing it, as a consumer that dies right after its claim would leave it.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn claim_without_freeing(&mut self) -> Result<u64, MpmcPopError> {
        self.claim(usize::MAX).map(|(position, _)| position)
    }

    /// Test support for the model checks: [`pop`](Self::pop) through the general
    /// claim loop (`claim_from`) only, skipping its inline common case, so that a
    /// model reaches the claim loop's copy of each ordering.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn pop_through_claim_loop(&mut self, buf: &mut [u8]) -> Result<usize, MpmcPopError> {
        let (position, len) = self.claim(buf.len())?;
        self.finish(position, len, Some(buf))
    }

    /// Test support for the model checks: ends this handle as a killed process
    /// would, leaving its table entry (owner, intent) as it is.
    #[cfg(shmring_loom)]
    #[doc(hidden)]
    pub fn die(self) {
        self.ep.die();
    }
}
