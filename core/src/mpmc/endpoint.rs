//! What producers and consumers share: the endpoint (region, trusted shape, table
//! entry), its registration in the endpoint table, its intent word, the wake-ups it
//! owes and its waits.

use core::cell::Cell;
use core::marker::PhantomData;
use core::num::NonZeroU32;

use super::error::{MpmcCorruption, MpmcRegisterError, MpmcWaitError};
use super::layout::{INTENT_NONE, MpmcControl, MpmcGeometry, ROLE_CONSUMER, ROLE_PRODUCER};
use super::recovery::{Liveness, MpmcStats};
use super::{MpmcConsumer, MpmcProducer, MpmcRegion};
use crate::sync::{AtomicU32, Ordering};
use crate::wait::{ARMED, Futex, Readiness, WAITING, notify, prepare_wait};

/// What both endpoint kinds keep: the region, its trusted shape, their table entry.
pub(super) struct Endpoint<R: MpmcRegion> {
    pub(super) region: R,
    pub(super) mask: u64,
    pub(super) slots: u64,
    pub(super) slot_size: usize,
    /// The geometry's `len_bits` and the mask of those bits.
    pub(super) len_bits: u32,
    pub(super) len_mask: u64,
    pub(super) endpoints: usize,
    pub(super) entry: usize,
    pub(super) generation: u32,
    /// Whether the next `wake` owes the consumers a notification (messages
    /// published, a slot skipped) and the producers one (slots freed). Set by
    /// `note_published` and `note_freed`, which write only when the flag
    /// changes.
    pub(super) owe_data: bool,
    pub(super) owe_space: bool,
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
    ) -> Result<Self, MpmcRegisterError> {
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
                return Err(MpmcRegisterError::EntryOutOfRange {
                    entry: index,
                    endpoints,
                });
            }
            Some(index) => match claim(index) {
                Ok(_) => index,
                Err(owner) => {
                    return Err(MpmcRegisterError::Taken {
                        entry: index,
                        owner,
                    });
                }
            },
            None => (0..endpoints)
                .find(|&index| claim(index).is_ok())
                .ok_or(MpmcRegisterError::TableFull { endpoints })?,
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
        let signals = &region.control().signals;
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
    pub(super) fn set_intent(&self, position: u64) {
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
    pub(super) fn clear_intent(&self) {
        // SYNC: Release pairs with the Acquire load in `claimant_alive`, as in
        // `set_intent`.
        self.region
            .entry(self.entry)
            .intent
            .store(INTENT_NONE, Ordering::Release);
    }

    /// Records that the next `wake` owes the consumers a notification. Stores
    /// only if the flag is not set yet: the endpoint is the caller's memory, which
    /// may share a cache line with another thread's (two handles side by side),
    /// and a store per message would pull that line back and forth.
    #[inline(always)]
    pub(super) fn note_published(&mut self) {
        if !self.owe_data {
            self.owe_data = true;
        }
    }

    /// As [`note_published`](Self::note_published), for the producers.
    #[inline(always)]
    pub(super) fn note_freed(&mut self) {
        if !self.owe_space {
            self.owe_space = true;
        }
    }

    fn stats(&self) -> MpmcStats {
        MpmcStats::read(self.region.control())
    }

    fn wake<F: Futex + ?Sized>(&mut self, futex: &F) {
        let signals = &self.region.control().signals;
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
    pub(super) fn wait_until<F: Futex + ?Sized>(
        &mut self,
        word: fn(&MpmcControl) -> &AtomicU32,
        ready: fn(&Self) -> Result<bool, MpmcCorruption>,
        futex: &F,
        deadline: Option<F::Deadline>,
    ) -> Result<(), MpmcWaitError> {
        loop {
            match self.register_unless_ready(word, ready, WAITING, futex)? {
                None => return Ok(()),
                Some(key) => futex.wait(word(self.region.control()), key, deadline)?,
            }
        }
    }

    /// Arms the caller's doorbell on `word` unless `ready` holds (never blocks).
    pub(super) fn arm_unless_ready<F: Futex + ?Sized>(
        &mut self,
        word: fn(&MpmcControl) -> &AtomicU32,
        ready: fn(&Self) -> Result<bool, MpmcCorruption>,
        futex: &F,
    ) -> Result<Readiness, MpmcWaitError> {
        Ok(
            match self.register_unless_ready(word, ready, ARMED, futex)? {
                None => Readiness::Ready,
                Some(_) => Readiness::Armed,
            },
        )
    }

    /// The waiter's side of the wait/notify protocol ([`crate::wait`]): `None` if
    /// `ready` holds; otherwise wakes the others (never wait owing them a
    /// wake-up), registers `bit` on `word` and checks again: `None` if it holds
    /// now, else the key to sleep on.
    fn register_unless_ready<F: Futex + ?Sized>(
        &mut self,
        word: fn(&MpmcControl) -> &AtomicU32,
        ready: fn(&Self) -> Result<bool, MpmcCorruption>,
        bit: u32,
        futex: &F,
    ) -> Result<Option<u32>, MpmcWaitError> {
        if ready(self).map_err(MpmcWaitError::Corrupted)? {
            return Ok(None);
        }
        // Never wait owing the others a wake-up.
        self.wake(futex);
        let key = prepare_wait(word(self.region.control()), bit, futex);
        // Ordered after the registration by `prepare_wait`'s fence.
        if ready(self).map_err(MpmcWaitError::Corrupted)? {
            return Ok(None);
        }
        Ok(Some(key))
    }
}

#[cfg(shmring_loom)]
impl<R: MpmcRegion> Endpoint<R> {
    /// Drops the region without the `Drop` clean-up.
    pub(super) fn die(self) {
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

macro_rules! endpoint_common {
    ($ty:ident, $role:expr, $what:literal) => {
        impl<R: MpmcRegion> $ty<R> {
            #[doc = concat!("Registers a ", $what, " in the first free entry of the endpoint table.")]
            ///
            /// # Errors
            /// [`MpmcRegisterError::TableFull`] when every entry is held.
            pub fn register(region: R, token: NonZeroU32) -> Result<Self, MpmcRegisterError> {
                Endpoint::register(region, $role, token, None, 0).map(|ep| Self { ep })
            }

            #[doc = concat!("Registers a ", $what, " in table entry `entry`, which must be free")]
            /// (owner word 0). The `shmring` crate calls this after taking the
            /// entry's liveness lock.
            ///
            /// # Errors
            /// [`MpmcRegisterError::EntryOutOfRange`], or [`MpmcRegisterError::Taken`] with the
            /// owner word found.
            pub fn register_at(
                region: R,
                entry: usize,
                token: NonZeroU32,
            ) -> Result<Self, MpmcRegisterError> {
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
            ) -> Result<Self, MpmcRegisterError> {
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
