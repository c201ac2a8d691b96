//! Recovery from dead endpoints: the caller's [`Liveness`], the scan for a live
//! claimant, skipping a dead producer's claim, freeing a dead consumer's slot, and
//! the counters they keep.

use super::endpoint::Endpoint;
use super::error::MpmcCorruption;
use super::layout::{INTENT_NONE, MpmcControl, ROLE_CONSUMER, ROLE_PRODUCER};
use super::{MpmcConsumer, MpmcProducer, MpmcRegion};
use crate::sync::Ordering;

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
            skipped: control.signals.skipped.load(Ordering::Relaxed),
            lost: control.signals.lost.load(Ordering::Relaxed),
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

impl<R: MpmcRegion> Endpoint<R> {
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
        let head = ep.region.control().head.load(Ordering::Acquire);
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
    pub(super) fn reclaim_dead_consumers<L: Liveness + ?Sized>(
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
}

impl<R: MpmcRegion> MpmcProducer<R> {
    /// Frees the slot of `position - slots` if the consumer that claimed it is
    /// dead: the message in it is lost (counted in [`MpmcStats::lost`]). Call after
    /// [`MpmcPushError::Stalled`](super::MpmcPushError::Stalled) for `position`
    /// has lasted longer than a bound the caller chooses (a live consumer copying a
    /// message is not dead; a bound of milliseconds avoids scanning the table at
    /// every stall).
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
}

impl<R: MpmcRegion> MpmcConsumer<R> {
    /// Skips `position` if the producer that claimed it is dead (no message was
    /// published there; counted in [`MpmcStats::skipped`]). Call after
    /// [`MpmcPopError::Stalled`](super::MpmcPopError::Stalled) for `position` has
    /// lasted longer than a bound the caller chooses (a live producer copying its
    /// message is not dead).
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
        let tail = control.tail.load(Ordering::Acquire);
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
                control.signals.skipped.fetch_add(1, Ordering::Relaxed);
                // SYNC: AcqRel as in `claim_from`. If this fails, another consumer
                // already helped.
                let _ = control.head.compare_exchange(
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
}
