//! The robust process-shared lock of a `SharedMutex` segment (kind 7): its lock
//! line, its slot table and the protocol over them (`docs/design/shared-state.md`,
//! "SharedMutex: the robust lock").
//!
//! ```text
//! offset      size       what
//!    128         4       state          0 free; else owner id | WAITERS (bit 31)
//!    132         4       inconsistent   0 consistent; else an owner died holding it since the
//!                                       last `mark_consistent` (1 is written; any non-zero reads so)
//!    136         4       deaths         owners found dead and taken over from (wrapping)
//!    140       116       reserved       zero
//!    256   128 × slots   slot table, one entry per handle:
//!            +0   4      owner          claim word: 0 free, else the holder's token (pid)
//!            +4   4      generation     +1 at every claim of the entry (wrapping; 15 bits in ids)
//!            +8   4      pid            hint for the tool
//!           +12 116      reserved       zero
//! ```
//!
//! A handle claims a table entry when it attaches ([`RobustLock::claim_slot`]; the
//! `shmring` crate takes the entry's liveness lock first, as for MPMC's endpoint
//! entries) and locks with the [`OwnerId`] the claim returns: acquiring the lock
//! and recording its owner are one compare-exchange of `state`, so there is no
//! window between them for a death to fall into.
//!
//! ```text
//! try_lock:  state.cas(0 → id, AcqRel)                        one CAS, no call out
//! lock:      loop: seen = state.load(Acquire)
//!            seen == 0         ⇒ state.cas(0 → id [| WAITERS once slept], AcqRel)
//!            owner of seen dead ⇒ state.cas(seen → id | (seen & WAITERS), AcqRel);
//!                                 inconsistent = 1; deaths += 1; OwnerDied
//!            deadline passed   ⇒ TimedOut (every turn, before any mark)
//!            owner live        ⇒ state.cas(seen → seen | WAITERS, Relaxed);
//!                                 futex.wait(state, seen | WAITERS,
//!                                            min(deadline, now + liveness interval))
//! unlock:    prev = state.swap(0, Release); prev & WAITERS ⇒ futex.wake_one(state)
//! ```
//!
//! Orderings:
//!
//! - `unlock`'s `Release` swap pairs with the `Acquire` half of the next locker's
//!   compare-exchange: what the holder wrote to the value happens-before the next
//!   holder's reads (model `two_lockers_increment_exactly`).
//! - A lock's compare-exchange is `AcqRel`, not `Acquire` as the design note first
//!   had it: its `Release` half publishes the owner id together with the
//!   generation the owner's slot claim stored, and pairs with the `Acquire` load
//!   of `state` in [`RobustLock::lock`]. A locker that reads an id therefore reads
//!   that generation or a later one, never an earlier one that would make a live
//!   owner look dead (model `a_live_holder_is_never_taken_over`). On x86 it is the
//!   same instruction.
//! - The slot claim stores the generation with `Release`, and the death check
//!   loads it with `Acquire`: a locker that finds a dead owner's slot claimed
//!   again finds it after the new claimant proved the death (its liveness lock),
//!   so after the dead owner's last store to the value (model
//!   `a_reclaimed_slot_reveals_its_dead_holder`).
//! - `inconsistent` and `deaths` are written under the lock, `Relaxed`: the
//!   lock's own pair orders them.
//!
//! Owner death: the owner's slot out of range, its generation not the id's, or the
//! caller's [`Liveness`] saying the slot's holder is gone. A hostile peer can
//! scribble `state` (garbage owners read as dead: honest lockers take over with
//! [`Acquired::OwnerDied`]; or a live-looking owner: a denial of service until each
//! locker's deadline), the value, or the table; every word read is checked before
//! it indexes anything, every wait is bounded by the caller's deadline, and nothing
//! panics.

use core::fmt;
use core::num::NonZeroU32;

use crate::error::LayoutError;
use crate::layout::{STATE_KIND_MUTEX, u32_at};
use crate::mpmc::Liveness;
use crate::spsc::claim::{claim_owner, release_owner};
use crate::state::header::StateInfo;
use crate::sync::{AtomicU32, Ordering};
use crate::wait::Futex;

/// Offset of the lock line in the segment (the common header is line 0).
pub const MUTEX_LINE_OFFSET: usize = 128;
/// Offset of the slot table in the segment.
pub const MUTEX_TABLE_OFFSET: usize = 256;
/// Bytes of one slot table entry.
pub const MUTEX_SLOT_SIZE: usize = 128;
/// Bit 31 of `state`: a locker is asleep on the word, or about to be; the holder
/// wakes one when it unlocks.
pub const WAITERS: u32 = 1 << 31;
/// The most slots an [`OwnerId`] can name (its low 16 bits hold `slot + 1`).
pub const MAX_ID_SLOTS: usize = 0xffff;
/// The generation bits an [`OwnerId`] keeps.
const GENERATION_MASK: u32 = 0x7fff;

/// The lock line: the lock word and what the protocol records beside it.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct MutexLine {
    /// 0 when free; else the holder's [`OwnerId`], with [`WAITERS`] when a locker
    /// sleeps on it.
    pub state: AtomicU32,
    /// 0 while the value is consistent; non-zero from the take-over of a dead
    /// owner until a holder calls [`RobustLock::mark_consistent`].
    pub inconsistent: AtomicU32,
    /// How many owners were found dead and taken over from (wrapping; for the
    /// tool).
    pub deaths: AtomicU32,
}

impl MutexLine {
    /// A free, consistent lock line (what a zeroed mapping holds).
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            inconsistent: AtomicU32::new(0),
            deaths: AtomicU32::new(0),
        }
    }
}

impl Default for MutexLine {
    fn default() -> Self {
        Self::new()
    }
}

/// One handle's entry in the slot table, alone on its 128 bytes.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct MutexSlot {
    /// Claim word: 0 when free, else the holder's token (its pid).
    pub owner: AtomicU32,
    /// Incremented (wrapping) at every claim of the entry; an [`OwnerId`] keeps
    /// its low 15 bits.
    pub generation: AtomicU32,
    /// The holder's process id, for display: written by the caller after the
    /// claim (the `shmring` crate does), cleared by [`RobustLock::release_slot`].
    /// Any peer may write it: a hint only; core never reads it.
    pub pid: AtomicU32,
}

impl MutexSlot {
    /// A free entry.
    pub fn new() -> Self {
        Self {
            owner: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            pid: AtomicU32::new(0),
        }
    }
}

impl Default for MutexSlot {
    fn default() -> Self {
        Self::new()
    }
}

// The layout is a contract with other processes and with C: pin every offset.
// (Under loom the atomics are loom's and the structs never lie in shared memory.)
#[cfg(not(shmring_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<MutexLine>() == 128);
    assert!(align_of::<MutexLine>() == 128);
    assert!(offset_of!(MutexLine, state) == 0);
    assert!(offset_of!(MutexLine, inconsistent) == 4);
    assert!(offset_of!(MutexLine, deaths) == 8);
    assert!(size_of::<MutexSlot>() == MUTEX_SLOT_SIZE);
    assert!(align_of::<MutexSlot>() == 128);
    assert!(offset_of!(MutexSlot, owner) == 0);
    assert!(offset_of!(MutexSlot, generation) == 4);
    assert!(offset_of!(MutexSlot, pid) == 8);
    assert!(MUTEX_LINE_OFFSET + 128 == MUTEX_TABLE_OFFSET);
    // An id's slot field (16 bits) holds slot + 1 for every slot it can name, and
    // its generation field (15 bits) stays clear of WAITERS.
    assert!(MAX_ID_SLOTS <= 0xffff);
    assert!((GENERATION_MASK << 16) & WAITERS == 0);
};

/// A lock owner's id: `(generation & 0x7fff) << 16 | (slot + 1)`. Never 0, never
/// with [`WAITERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerId(NonZeroU32);

impl OwnerId {
    /// The id of the holder of `slot` at `generation` (its low 15 bits); `None` if
    /// `slot` is not below [`MAX_ID_SLOTS`].
    pub const fn new(slot: usize, generation: u32) -> Option<Self> {
        if slot >= MAX_ID_SLOTS {
            return None;
        }
        let word = (generation & GENERATION_MASK) << 16 | (slot as u32 + 1);
        match NonZeroU32::new(word) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The id in a `state` word (without [`WAITERS`]), if the word names one
    /// (its slot field is non-zero).
    pub const fn from_state(state: u32) -> Option<Self> {
        let word = state & !WAITERS;
        if word & 0xffff == 0 {
            return None;
        }
        match NonZeroU32::new(word) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The table entry this id names.
    pub const fn slot(self) -> usize {
        (self.0.get() & 0xffff) as usize - 1
    }

    /// The generation bits this id keeps (15).
    pub const fn generation(self) -> u32 {
        self.0.get() >> 16
    }

    /// The word stored in `state`.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the lock is held: unlock it"]
pub enum Acquired {
    /// The value is consistent.
    Clean,
    /// An owner died holding the lock: the value may be half-updated. The lock is
    /// held; it stays marked (every later locker is told so too) until a holder
    /// calls [`RobustLock::mark_consistent`].
    OwnerDied {
        /// The `state` word (without [`WAITERS`]) of the dead owner this call took
        /// the lock from; `None` if an earlier locker took it over and nobody has
        /// marked it consistent since.
        taken_from: Option<u32>,
    },
}

/// Why a lock was not acquired, or an unlock or mark found the word not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// [`RobustLock::try_lock`]: the lock is held.
    WouldBlock {
        /// The `state` word found.
        state: u32,
    },
    /// [`RobustLock::lock`]: the deadline passed with the lock held by a live
    /// owner.
    TimedOut {
        /// The `state` word last found.
        state: u32,
    },
    /// [`RobustLock::unlock`] or [`RobustLock::mark_consistent`]: `state` did not
    /// hold the caller's id (a peer scribbled it, or the caller does not hold
    /// the lock). `unlock` has freed the lock anyway (and woken a waiter if the
    /// word said so); `mark_consistent` changed nothing.
    NotHeld {
        /// The `state` word found.
        state: u32,
        /// The caller's id.
        id: u32,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::WouldBlock { state } => write!(f, "lock is held (state {state:#x})"),
            Self::TimedOut { state } => {
                write!(f, "timed out waiting for the lock (state {state:#x})")
            }
            Self::NotHeld { state, id } => {
                write!(f, "lock state {state:#x} is not the caller's id {id:#x}")
            }
        }
    }
}

impl core::error::Error for LockError {}

/// Why a slot table entry could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotClaimError {
    /// The entry is past the table (or past what an [`OwnerId`] can name).
    OutOfRange {
        /// The entry asked for.
        slot: usize,
        /// Entries in the table.
        slots: usize,
    },
    /// The entry's owner word did not hold what the claim expected.
    Taken {
        /// The entry.
        slot: usize,
        /// The owner word found.
        owner: u32,
    },
    /// [`RobustLock::claim_free_slot`]: every entry is held.
    TableFull {
        /// Entries in the table.
        slots: usize,
    },
}

impl fmt::Display for SlotClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfRange { slot, slots } => {
                write!(f, "slot {slot} is out of range (the table has {slots})")
            }
            Self::Taken { slot, owner } => write!(f, "slot {slot} is held by {owner}"),
            Self::TableFull { slots } => write!(f, "all {slots} slots are held"),
        }
    }
}

impl core::error::Error for SlotClaimError {}

/// The time a parked locker needs, which core does not have: the caller's clock.
pub trait ProbeClock<D> {
    /// The deadline of one sleep on the lock word: the earlier of `deadline` and
    /// one liveness interval from now, so that a parked locker probes the owner
    /// again at least that often. `None` sleeps until woken (`deadline` must then
    /// be `None` too); only a model check, whose owners die only where it says,
    /// may return it.
    fn sleep_deadline(&self, deadline: Option<D>) -> Option<D>;

    /// Whether `deadline` has passed.
    fn has_passed(&self, deadline: D) -> bool;
}

/// A lock line and its slot table, as attached: the protocol's handle. `table`
/// holds the header's `slots` entries (at most [`MAX_ID_SLOTS`] are used).
#[derive(Debug, Clone, Copy)]
pub struct RobustLock<'a> {
    line: &'a MutexLine,
    table: &'a [MutexSlot],
}

impl<'a> RobustLock<'a> {
    /// The lock over `line` and `table`.
    pub fn new(line: &'a MutexLine, table: &'a [MutexSlot]) -> Self {
        let usable = table.len().min(MAX_ID_SLOTS);
        Self {
            line,
            table: &table[..usable],
        }
    }

    /// The lock line.
    pub fn line(&self) -> &'a MutexLine {
        self.line
    }

    /// The slot table.
    pub fn table(&self) -> &'a [MutexSlot] {
        self.table
    }

    /// Claims table entry `slot`, whose owner word must hold `previous` (0: free;
    /// a dead holder's token when the caller proved it dead), for `token`, and
    /// returns the id to lock with. The `shmring` crate takes the entry's
    /// liveness lock first.
    ///
    /// # Errors
    /// [`SlotClaimError::OutOfRange`]; [`SlotClaimError::Taken`] with the owner
    /// word found.
    pub fn claim_slot(
        &self,
        slot: usize,
        previous: u32,
        token: NonZeroU32,
    ) -> Result<OwnerId, SlotClaimError> {
        let slots = self.table.len();
        let Some(entry) = self.table.get(slot) else {
            return Err(SlotClaimError::OutOfRange { slot, slots });
        };
        // The owner word's Acquire/Release pair is the SPSC roles' and the
        // broadcast slots' (`spsc::claim`).
        claim_owner(&entry.owner, previous, token)
            .map_err(|owner| SlotClaimError::Taken { slot, owner })?;
        // SYNC: Release pairs with the Acquire load in `owner_dead`: a locker
        // that sees this generation (and so takes the previous holder's lock
        // over) sees what preceded it here, the caller's proof that the previous
        // holder is dead (its liveness lock), and so that holder's last stores.
        let generation = entry
            .generation
            .fetch_add(1, Ordering::Release)
            .wrapping_add(1);
        // `slot` < table.len() <= MAX_ID_SLOTS (`new`).
        OwnerId::new(slot, generation).ok_or(SlotClaimError::OutOfRange { slot, slots })
    }

    /// Claims the first free table entry for `token` ([`claim_slot`](Self::claim_slot)
    /// with `previous` 0 on each in turn).
    ///
    /// # Errors
    /// [`SlotClaimError::TableFull`].
    pub fn claim_free_slot(&self, token: NonZeroU32) -> Result<OwnerId, SlotClaimError> {
        (0..self.table.len())
            .find_map(|slot| self.claim_slot(slot, 0, token).ok())
            .ok_or(SlotClaimError::TableFull {
                slots: self.table.len(),
            })
    }

    /// Gives back the entry `id` names (its owner word to 0, its pid hint
    /// cleared). Call only when the lock is not held with `id`: a lock held by a
    /// released slot reads as its owner dead once the slot is claimed again.
    pub fn release_slot(&self, id: OwnerId) {
        if let Some(entry) = self.table.get(id.slot()) {
            // Relaxed: a hint for observers, published by the Release just below.
            entry.pid.store(0, Ordering::Relaxed);
            release_owner(&entry.owner, 0);
        }
    }

    /// Takes the lock if it is free: one compare-exchange, no call out.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] with the `state` word found.
    #[inline]
    pub fn try_lock(&self, id: OwnerId) -> Result<Acquired, LockError> {
        // SYNC: AcqRel. Acquire pairs with the Release swap in `unlock`: the last
        // holder's writes to the value are visible to us. Release pairs with the
        // Acquire load of `state` in `lock`: a locker that reads our id reads our
        // slot's generation (`claim_slot`) with it. Relaxed on failure: the word
        // found is only reported.
        match self
            .line
            .state
            .compare_exchange(0, id.get(), Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Ok(self.acquired(None)),
            Err(state) => Err(LockError::WouldBlock { state }),
        }
    }

    /// Takes the lock, sleeping on the futex while a live owner holds it, and
    /// taking it over from an owner found dead: its slot out of range, its
    /// generation not its id's, or `liveness` saying its slot's holder is gone
    /// (probed before the first sleep and after every wake-up or liveness
    /// interval, `clock`'s [`sleep_deadline`](ProbeClock::sleep_deadline)).
    ///
    /// With a deadline that has already passed, this is a `try_lock` that also
    /// takes the lock over from a dead owner (one probe, no sleep, no WAITERS
    /// mark). A caller whose `id` already holds the lock (another thread of the
    /// same handle) waits for it like any locker.
    ///
    /// # Errors
    /// [`LockError::TimedOut`] once `deadline` has passed with a live owner
    /// holding the lock (checked on every turn: a peer that keeps changing the
    /// word cannot keep the caller past it).
    pub fn lock<F, L, C>(
        &self,
        id: OwnerId,
        futex: &F,
        liveness: &L,
        clock: &C,
        deadline: Option<F::Deadline>,
    ) -> Result<Acquired, LockError>
    where
        F: Futex + ?Sized,
        L: Liveness + ?Sized,
        C: ProbeClock<F::Deadline> + ?Sized,
    {
        let state = &self.line.state;
        // After a sleep, take the lock with WAITERS set: others may still sleep,
        // and our unlock must wake one of them.
        let mut slept = 0;
        loop {
            // SYNC: Acquire pairs with the Release half of the compare-exchange
            // that stored the id we read (`try_lock`, this loop): its owner's
            // slot generation is visible to `owner_dead`.
            let seen = state.load(Ordering::Acquire);
            // The word to sleep on, if a live owner holds the lock and our
            // WAITERS mark is in it.
            let owner_live = if seen == 0 {
                // SYNC: AcqRel, as in `try_lock`. Relaxed on failure: the loop
                // loads the word again.
                if state
                    .compare_exchange(0, id.get() | slept, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.acquired(None));
                }
                false
            } else if self.owner_dead(seen, liveness) {
                // SYNC: AcqRel, as in `try_lock` (the dead owner's own writes are
                // ordered before us by the liveness probe or by `claim_slot`'s
                // generation: see `owner_dead`). Relaxed on failure: the loop
                // loads the word again.
                if state
                    .compare_exchange(
                        seen,
                        id.get() | (seen & WAITERS),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    // Relaxed (both): written under the lock, published by our
                    // unlock's Release.
                    self.line.inconsistent.store(1, Ordering::Relaxed);
                    self.line.deaths.fetch_add(1, Ordering::Relaxed);
                    return Ok(self.acquired(Some(seen & !WAITERS)));
                }
                false
            } else {
                true
            };
            // Before marking WAITERS: a caller whose deadline has passed (a
            // `try_lock` that probes the owner) leaves no mark to cost the holder
            // a wake-up.
            if deadline.is_some_and(|d| clock.has_passed(d)) {
                return Err(LockError::TimedOut { state: seen });
            }
            // The word to sleep on: a live owner's, with our WAITERS mark in it.
            let key = if !owner_live {
                None
            } else if seen & WAITERS != 0 {
                Some(seen)
            } else {
                // Relaxed: marks a sleeper; the futex's own compare orders it
                // with the holder's swap (a swap after this mark sees it and
                // wakes; one before it makes our futex wait return at once).
                state
                    .compare_exchange(seen, seen | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .ok()
                    .map(|_| seen | WAITERS)
            };
            if let Some(key) = key {
                // A timeout here is the liveness interval's (the caller's is
                // checked above on the next turn).
                let _ = futex.wait(state, key, clock.sleep_deadline(deadline));
                slept = WAITERS;
            }
        }
    }

    /// Releases the lock and wakes one sleeping locker, if the word says one
    /// sleeps (no call to the futex otherwise).
    ///
    /// # Errors
    /// [`LockError::NotHeld`] if `state` did not hold `id` (freed anyway).
    #[inline]
    pub fn unlock<F: Futex + ?Sized>(&self, id: OwnerId, futex: &F) -> Result<(), LockError> {
        // SYNC: Release pairs with the Acquire half of the next locker's
        // compare-exchange (`try_lock`, `lock`): our writes to the value
        // happen-before its reads.
        let prev = self.line.state.swap(0, Ordering::Release);
        if prev & WAITERS != 0 {
            futex.wake_one(&self.line.state);
        }
        if prev & !WAITERS != id.get() {
            return Err(LockError::NotHeld {
                state: prev,
                id: id.get(),
            });
        }
        Ok(())
    }

    /// Marks the value consistent again, after an [`Acquired::OwnerDied`]: later
    /// lockers get [`Acquired::Clean`]. Call while holding the lock.
    ///
    /// # Errors
    /// [`LockError::NotHeld`] if `state` does not hold `id` (nothing changed).
    pub fn mark_consistent(&self, id: OwnerId) -> Result<(), LockError> {
        // Relaxed: we hold the lock (our own compare-exchange stored the word);
        // this only checks a peer has not scribbled it.
        let state = self.line.state.load(Ordering::Relaxed);
        if state & !WAITERS != id.get() {
            return Err(LockError::NotHeld {
                state,
                id: id.get(),
            });
        }
        // Relaxed: written under the lock, published by the unlock's Release.
        self.line.inconsistent.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The owner `state` names now, if any (a snapshot, for display).
    pub fn owner(&self) -> Option<OwnerId> {
        // Relaxed: a snapshot; orders nothing.
        OwnerId::from_state(self.line.state.load(Ordering::Relaxed))
    }

    /// Whether the value is marked inconsistent now (a snapshot, for display).
    pub fn is_inconsistent(&self) -> bool {
        // Relaxed: a snapshot; orders nothing.
        self.line.inconsistent.load(Ordering::Relaxed) != 0
    }

    /// How many owners were found dead and taken over from (wrapping; a snapshot).
    pub fn deaths(&self) -> u32 {
        // Relaxed: a statistic; orders nothing.
        self.line.deaths.load(Ordering::Relaxed)
    }

    /// What the caller acquired: `OwnerDied` if this call took over from a dead
    /// owner (`taken_from`) or the value is still marked inconsistent.
    #[inline]
    fn acquired(&self, taken_from: Option<u32>) -> Acquired {
        // Relaxed: written under the lock; ordered by the compare-exchange's
        // Acquire that took it. Any non-zero value reads as inconsistent.
        if taken_from.is_some() || self.line.inconsistent.load(Ordering::Relaxed) != 0 {
            Acquired::OwnerDied { taken_from }
        } else {
            Acquired::Clean
        }
    }

    /// Whether the owner `state` names (non-zero) is dead: it names no entry of
    /// the table, its entry has been claimed again since (another generation),
    /// or `liveness` says the entry's holder is gone.
    fn owner_dead<L: Liveness + ?Sized>(&self, state: u32, liveness: &L) -> bool {
        let Some(owner) = OwnerId::from_state(state) else {
            return true;
        };
        let Some(entry) = self.table.get(owner.slot()) else {
            return true;
        };
        // SYNC: Acquire pairs with the Release increment in `claim_slot`: a
        // generation newer than the owner's was stored by a claimant that had
        // proven the owner dead, after that proof, so the dead owner's stores
        // are visible to us once we have taken the lock over.
        let generation = entry.generation.load(Ordering::Acquire);
        generation & GENERATION_MASK != owner.generation() || !liveness.is_alive(owner.slot())
    }
}

/// What a copy of a mutex segment's header, lock line and slot table says,
/// without mapping it: the validated header and a snapshot of the lock's words
/// (hints: they move while they are read). For tools that list segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexSnapshot {
    /// The validated header (value size, slots, flags, type tag).
    pub info: StateInfo,
    /// The `state` word: 0 free, else the holder's id with [`WAITERS`].
    pub state: u32,
    /// The `inconsistent` word (non-zero: marked).
    pub inconsistent: u32,
    /// The `deaths` word.
    pub deaths: u32,
}

impl MutexSnapshot {
    /// Validates the header in `bytes` (read with `pread`) of a segment
    /// `segment_len` bytes long, as an opener does, and reads the lock line.
    ///
    /// # Errors
    /// As [`StateHeader::attach`](crate::state::header::StateHeader::attach) for kind 7; [`LayoutError::TooSmall`] if
    /// `bytes` is shorter than [`MUTEX_TABLE_OFFSET`].
    pub fn parse(bytes: &[u8], segment_len: u64) -> Result<Self, LayoutError> {
        if bytes.len() < MUTEX_TABLE_OFFSET {
            return Err(LayoutError::TooSmall {
                len: bytes.len(),
                required: MUTEX_TABLE_OFFSET as u64,
            });
        }
        let info = StateInfo::parse(bytes, segment_len)?;
        if info.geometry.kind() != STATE_KIND_MUTEX {
            return Err(LayoutError::WrongKind {
                found: info.geometry.kind(),
                expected: STATE_KIND_MUTEX,
            });
        }
        Ok(Self {
            info,
            state: u32_at(bytes, MUTEX_LINE_OFFSET),
            inconsistent: u32_at(bytes, MUTEX_LINE_OFFSET + 4),
            deaths: u32_at(bytes, MUTEX_LINE_OFFSET + 8),
        })
    }

    /// The holder `state` names, if any (its slot may be out of range: a
    /// hostile word; its holder may be dead).
    pub fn owner(&self) -> Option<OwnerId> {
        OwnerId::from_state(self.state)
    }

    /// Whether `state` says a locker sleeps on it.
    pub fn waiters(&self) -> bool {
        self.state & WAITERS != 0
    }

    /// Whether the value is marked inconsistent.
    pub fn is_inconsistent(&self) -> bool {
        self.inconsistent != 0
    }

    /// Table entry `slot`'s words, from `table` (a copy of the bytes from
    /// [`MUTEX_TABLE_OFFSET`] on); `None` past the header's slots or the copy.
    pub fn slot(&self, table: &[u8], slot: usize) -> Option<MutexSlotSnapshot> {
        if slot >= self.info.geometry.slots() {
            return None;
        }
        let at = slot * MUTEX_SLOT_SIZE;
        let entry = table.get(at..at + 12)?;
        Some(MutexSlotSnapshot {
            owner: u32_at(entry, 0),
            generation: u32_at(entry, 4),
            pid: u32_at(entry, 8),
        })
    }
}

/// A slot table entry's words as read (hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexSlotSnapshot {
    /// The claim word: 0 free, else the holder's token (its pid).
    pub owner: u32,
    /// Claims of the entry (wrapping).
    pub generation: u32,
    /// The holder's pid hint.
    pub pid: u32,
}

#[cfg(not(shmring_loom))]
pub use raw::RawMutexRegion;

#[cfg(not(shmring_loom))]
mod raw {
    use core::ptr::NonNull;

    use super::{MUTEX_LINE_OFFSET, MUTEX_TABLE_OFFSET, MutexLine, MutexSlot, RobustLock};
    use crate::error::LayoutError;
    use crate::layout::{STATE_KIND_MUTEX, check_memory};
    use crate::state::header::{StateGeometry, StateHeader, StateInfo};
    use crate::sync::Ordering;

    /// A mutex's layout in raw memory: the header, the lock line, the slot
    /// table and the value. It holds a pointer and the header values it
    /// validated; it never reads the header again. Clones refer to the same
    /// memory.
    #[derive(Debug, Clone)]
    pub struct RawMutexRegion {
        base: NonNull<u8>,
        info: StateInfo,
    }

    // SAFETY: a pointer to memory the caller of `init`/`attach` promised stays
    // valid; the lock's words are reached only as atomics, and the value only
    // through `value_ptr`, whose users take the lock first.
    unsafe impl Send for RawMutexRegion {}
    // SAFETY: as for Send.
    unsafe impl Sync for RawMutexRegion {}

    impl RawMutexRegion {
        /// Writes a fresh mutex state (free lock, free slots, a zeroed value of
        /// `value_size` bytes, `slots` slots) into the `len` bytes at `ptr` (at
        /// least the geometry's segment size) and publishes it (magic last).
        ///
        /// # Errors
        /// [`LayoutError::OutOfRange`] (`value_size`, `slots`),
        /// [`LayoutError::Misaligned`], [`LayoutError::TooSmall`],
        /// [`LayoutError::HeaderMismatch`] (`flags`).
        ///
        /// # Safety
        /// - `ptr` is valid for reads and writes of `len` bytes for as long as
        ///   the region, its clones and every handle made from them live;
        /// - nothing else reads or writes those bytes while `init` runs;
        /// - afterwards, this process touches them only through shmring handles.
        pub unsafe fn init(
            ptr: *mut u8,
            len: usize,
            value_size: u32,
            slots: u32,
            flags: u32,
            type_tag: u64,
        ) -> Result<Self, LayoutError> {
            let geometry = StateGeometry::new(STATE_KIND_MUTEX, value_size, slots)?;
            check_memory(ptr, len, geometry.segment_size() as u64)?;
            let region = Self {
                // SAFETY: checked non-null in `check_memory`.
                base: unsafe { NonNull::new_unchecked(ptr) },
                info: StateInfo {
                    geometry,
                    flags,
                    type_tag,
                },
            };
            region.header().write(&geometry, flags, type_tag)?;
            let line = region.line();
            // Relaxed (every store): published by the Release store of the magic.
            line.state.store(0, Ordering::Relaxed);
            line.inconsistent.store(0, Ordering::Relaxed);
            line.deaths.store(0, Ordering::Relaxed);
            for slot in region.table() {
                slot.owner.store(0, Ordering::Relaxed);
                slot.generation.store(0, Ordering::Relaxed);
                slot.pid.store(0, Ordering::Relaxed);
            }
            // SAFETY: the value's words lie within the checked length; nobody
            // else touches the memory during init (the caller's contract).
            unsafe {
                region
                    .value_ptr()
                    .write_bytes(0, 8 * geometry.value_words())
            };
            region.header().publish();
            Ok(region)
        }

        /// Validates the mutex state in the `len` bytes at `ptr` (header read
        /// once; `segment_size` must equal `len`) and returns a region over it.
        ///
        /// # Errors
        /// As [`StateHeader::attach`] for kind 7; [`LayoutError::Misaligned`],
        /// [`LayoutError::TooSmall`].
        ///
        /// # Safety
        /// As for [`RawMutexRegion::init`], except that other processes may be
        /// using the memory: `ptr` is valid for reads and writes of `len` bytes
        /// for as long as the region and its handles live, and this process
        /// touches them only through shmring handles.
        pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<Self, LayoutError> {
            check_memory(ptr, len, MUTEX_TABLE_OFFSET as u64)?;
            // SAFETY: checked non-null, aligned and long enough for the header.
            let base = unsafe { NonNull::new_unchecked(ptr) };
            // SAFETY: in bounds and aligned (checked); only atomics are reached.
            let header = unsafe { base.cast::<StateHeader>().as_ref() };
            let info = header.attach(STATE_KIND_MUTEX, len as u64)?;
            Ok(Self { base, info })
        }

        /// The header values validated at attach.
        pub fn info(&self) -> &StateInfo {
            &self.info
        }

        fn header(&self) -> &StateHeader {
            // SAFETY: offset 0, 128-aligned memory of at least the header's
            // size (checked at init/attach), kept valid while the region lives;
            // only atomics are reached.
            unsafe { self.base.cast::<StateHeader>().as_ref() }
        }

        /// The lock line.
        pub fn line(&self) -> &MutexLine {
            // SAFETY: offset 128 of 128-aligned memory at least 256 bytes long
            // (checked at init/attach), kept valid while the region lives; only
            // atomics are reached, so a peer's writes are no data race.
            unsafe {
                &*self
                    .base
                    .as_ptr()
                    .add(MUTEX_LINE_OFFSET)
                    .cast::<MutexLine>()
            }
        }

        /// The slot table (the header's `slots` entries).
        pub fn table(&self) -> &[MutexSlot] {
            // SAFETY: `slots` entries of 128 bytes from offset 256, 128-aligned;
            // `segment_size`, which covers them and the value after them, was
            // checked against the memory's length at init or attach; atomics only.
            unsafe {
                core::slice::from_raw_parts(
                    self.base
                        .as_ptr()
                        .add(MUTEX_TABLE_OFFSET)
                        .cast::<MutexSlot>(),
                    self.info.geometry.slots(),
                )
            }
        }

        /// The robust lock over the line and the table.
        pub fn lock(&self) -> RobustLock<'_> {
            RobustLock::new(self.line(), self.table())
        }

        /// The value's first byte: `value_size` bytes (rounded up to 8) at
        /// [`StateGeometry::value_offset`], a multiple of 128. Reach it only
        /// while holding the lock (a peer ignoring the lock can still write it:
        /// the caller's value type must accept any bytes).
        pub fn value_ptr(&self) -> *mut u8 {
            // SAFETY: the value's offset is below `segment_size`, which was
            // checked against the memory's length: the pointer stays in bounds.
            unsafe { self.base.as_ptr().add(self.info.geometry.value_offset()) }
        }

        /// The value's size in bytes.
        pub fn value_size(&self) -> usize {
            self.info.geometry.value_size()
        }
    }
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    //! The protocol single-threaded, against hostile words: a futex that plays
    //! the peer (it runs a closure when the caller would sleep) and counts the
    //! calls made of it; a clock that counts turns.
    use core::cell::Cell;
    use core::num::NonZeroU32;

    use super::*;
    use crate::error::TimedOut;

    /// On `wait`: runs `peer` (if any) on the word, else times out if the sleep
    /// has a deadline, else panics (a test would hang).
    /// What the peer does while the caller sleeps.
    type PeerAct<'p> = &'p dyn Fn(&AtomicU32);

    #[derive(Default)]
    struct Peer<'p> {
        peer: Cell<Option<PeerAct<'p>>>,
        waits: Cell<u32>,
        wake_ones: Cell<u32>,
    }

    impl Futex for Peer<'_> {
        type Deadline = u32;

        fn wait(&self, word: &AtomicU32, expected: u32, d: Option<u32>) -> Result<(), TimedOut> {
            self.waits.set(self.waits.get() + 1);
            if word.load(Ordering::Relaxed) != expected {
                return Ok(());
            }
            match self.peer.get() {
                Some(peer) => {
                    peer(word);
                    Ok(())
                }
                None if d.is_some() => Err(TimedOut),
                None => panic!("would sleep forever"),
            }
        }

        fn wake(&self, _: &AtomicU32) {
            panic!("the lock wakes one");
        }

        fn wake_one(&self, _: &AtomicU32) {
            self.wake_ones.set(self.wake_ones.get() + 1);
        }
    }

    /// Deadlines are turn numbers: `has_passed(d)` once `d` turns have been
    /// asked; every sleep is bounded (a liveness interval of one turn).
    #[derive(Default)]
    struct Turns(Cell<u32>);

    impl ProbeClock<u32> for Turns {
        fn sleep_deadline(&self, deadline: Option<u32>) -> Option<u32> {
            Some(deadline.unwrap_or(u32::MAX))
        }

        fn has_passed(&self, deadline: u32) -> bool {
            self.0.set(self.0.get() + 1);
            self.0.get() > deadline
        }
    }

    /// Liveness by slot: `dead` lists the dead slots; counts the probes.
    #[derive(Default)]
    struct Probe {
        dead: Cell<u64>,
        probes: Cell<u32>,
    }

    // SAFETY: tests only; no slot reported dead is used again by its holder.
    unsafe impl Liveness for Probe {
        fn is_alive(&self, entry: usize) -> bool {
            self.probes.set(self.probes.get() + 1);
            self.dead.get() & (1 << entry) == 0
        }
    }

    struct Mem {
        line: MutexLine,
        table: [MutexSlot; 4],
    }

    fn mem() -> Mem {
        Mem {
            line: MutexLine::new(),
            table: Default::default(),
        }
    }

    fn token(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn state(lock: &RobustLock<'_>) -> u32 {
        lock.line().state.load(Ordering::Relaxed)
    }

    #[test]
    fn ids_encode_slot_and_generation_never_zero_never_waiters() {
        for (slot, generation) in [(0, 0), (0, 0x7fff), (63, 1), (0xfffe, 0xffff_ffff)] {
            let id = OwnerId::new(slot, generation).unwrap();
            assert_eq!(id.slot(), slot);
            assert_eq!(id.generation(), generation & 0x7fff);
            assert_ne!(id.get(), 0);
            assert_eq!(id.get() & WAITERS, 0);
            assert_eq!(OwnerId::from_state(id.get() | WAITERS), Some(id));
        }
        assert_eq!(OwnerId::new(MAX_ID_SLOTS, 0), None);
        assert_eq!(OwnerId::new(usize::MAX, 0), None);
        assert_eq!(OwnerId::from_state(0), None);
        assert_eq!(OwnerId::from_state(WAITERS), None);
        assert_eq!(OwnerId::from_state(0x7fff_0000), None, "slot field 0");
    }

    #[test]
    fn slots_are_claimed_once_counted_and_given_back() {
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let a = lock.claim_free_slot(token(7)).unwrap();
        assert_eq!((a.slot(), a.generation()), (0, 1));
        let b = lock.claim_free_slot(token(8)).unwrap();
        assert_eq!(b.slot(), 1);
        assert_eq!(
            lock.claim_slot(0, 0, token(9)),
            Err(SlotClaimError::Taken { slot: 0, owner: 7 })
        );
        assert_eq!(
            lock.claim_slot(4, 0, token(9)),
            Err(SlotClaimError::OutOfRange { slot: 4, slots: 4 })
        );
        // A dead holder's entry, taken over with its token: a new generation.
        let a2 = lock.claim_slot(0, 7, token(9)).unwrap();
        assert_eq!((a2.slot(), a2.generation()), (0, 2));
        m.table[0].pid.store(1234, Ordering::Relaxed);
        lock.release_slot(a2);
        assert_eq!(m.table[0].owner.load(Ordering::Relaxed), 0);
        assert_eq!(m.table[0].pid.load(Ordering::Relaxed), 0);
        lock.claim_free_slot(token(1)).unwrap();
        lock.claim_free_slot(token(1)).unwrap();
        lock.claim_free_slot(token(1)).unwrap();
        assert_eq!(
            lock.claim_free_slot(token(1)),
            Err(SlotClaimError::TableFull { slots: 4 })
        );
        // A generation that wraps keeps ids valid.
        m.table[3].generation.store(u32::MAX, Ordering::Relaxed);
        lock.release_slot(OwnerId::new(3, 0).unwrap());
        let w = lock.claim_slot(3, 0, token(2)).unwrap();
        assert_eq!((w.slot(), w.generation()), (3, 0));
    }

    #[test]
    fn try_lock_is_one_swap_and_unlock_wakes_only_marked_sleepers() {
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let futex = Peer::default();
        let a = lock.claim_free_slot(token(1)).unwrap();
        let b = lock.claim_free_slot(token(2)).unwrap();
        assert_eq!(lock.try_lock(a), Ok(Acquired::Clean));
        assert_eq!(lock.owner(), Some(a));
        assert_eq!(
            lock.try_lock(b),
            Err(LockError::WouldBlock { state: a.get() })
        );
        assert_eq!(lock.unlock(a, &futex), Ok(()));
        assert_eq!(futex.wake_ones.get(), 0, "woke with nobody marked");
        assert_eq!(state(&lock), 0);
        assert_eq!(lock.try_lock(b), Ok(Acquired::Clean));
        m.line.state.fetch_or(WAITERS, Ordering::Relaxed);
        assert_eq!(lock.unlock(b, &futex), Ok(()));
        assert_eq!(futex.wake_ones.get(), 1);
    }

    #[test]
    fn a_parked_locker_marks_waiters_sleeps_and_takes_the_lock_with_the_mark() {
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let a = lock.claim_free_slot(token(1)).unwrap();
        let b = lock.claim_free_slot(token(2)).unwrap();
        assert_eq!(lock.try_lock(a), Ok(Acquired::Clean));
        // The holder unlocks while we sleep (after our mark: it wakes one).
        let holder_unlocks = |word: &AtomicU32| {
            assert_eq!(word.load(Ordering::Relaxed), a.get() | WAITERS);
            word.swap(0, Ordering::Relaxed);
        };
        let futex = Peer::default();
        futex.peer.set(Some(&holder_unlocks));
        let (clock, probe) = (Turns::default(), Probe::default());
        assert_eq!(
            lock.lock(b, &futex, &probe, &clock, None),
            Ok(Acquired::Clean)
        );
        assert_eq!(futex.waits.get(), 1);
        assert_eq!(state(&lock), b.get() | WAITERS, "others may sleep");
        assert_eq!(lock.unlock(b, &futex), Ok(()));
        assert_eq!(futex.wake_ones.get(), 1);
    }

    #[test]
    fn a_live_owner_keeps_the_lock_until_the_deadline() {
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let a = lock.claim_free_slot(token(1)).unwrap();
        let b = lock.claim_free_slot(token(2)).unwrap();
        assert_eq!(lock.try_lock(a), Ok(Acquired::Clean));
        let (futex, clock, probe) = (Peer::default(), Turns::default(), Probe::default());
        // A passed deadline: one probe, no sleep, no mark.
        assert_eq!(
            lock.lock(b, &futex, &probe, &clock, Some(0)),
            Err(LockError::TimedOut { state: a.get() })
        );
        assert_eq!((futex.waits.get(), probe.probes.get()), (0, 1));
        assert_eq!(state(&lock), a.get(), "left a WAITERS mark");
        let (clock, probe) = (Turns::default(), Probe::default());
        assert_eq!(
            lock.lock(b, &futex, &probe, &clock, Some(3)),
            Err(LockError::TimedOut {
                state: a.get() | WAITERS
            })
        );
        assert!(futex.waits.get() >= 2, "re-probed after each interval");
        assert!(probe.probes.get() >= 3, "probed before each sleep");
        assert_eq!(lock.owner(), Some(a));
        assert_eq!(lock.deaths(), 0);
    }

    #[test]
    fn a_peer_churning_the_word_cannot_keep_a_locker_past_its_deadline() {
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let a = lock.claim_free_slot(token(1)).unwrap();
        let b = lock.claim_free_slot(token(2)).unwrap();
        assert_eq!(lock.try_lock(a), Ok(Acquired::Clean));
        // Every sleep, the peer flips WAITERS away: the word never equals what we
        // would sleep on for long, and our mark keeps being undone.
        let churn = |word: &AtomicU32| word.store(a.get(), Ordering::Relaxed);
        let futex = Peer::default();
        futex.peer.set(Some(&churn));
        let (clock, probe) = (Turns::default(), Probe::default());
        assert!(matches!(
            lock.lock(b, &futex, &probe, &clock, Some(10)),
            Err(LockError::TimedOut { .. })
        ));
        assert_eq!(clock.0.get(), 11, "one deadline check per turn");
    }

    #[test]
    fn a_dead_owner_is_taken_over_and_the_value_stays_inconsistent_until_marked() {
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let a = lock.claim_free_slot(token(1)).unwrap();
        let b = lock.claim_free_slot(token(2)).unwrap();
        assert_eq!(lock.try_lock(a), Ok(Acquired::Clean));
        m.line.state.fetch_or(WAITERS, Ordering::Relaxed);
        let (futex, clock, probe) = (Peer::default(), Turns::default(), Probe::default());
        probe.dead.set(1 << a.slot());
        assert_eq!(
            lock.lock(b, &futex, &probe, &clock, Some(0)),
            Ok(Acquired::OwnerDied {
                taken_from: Some(a.get())
            })
        );
        assert_eq!(
            state(&lock),
            b.get() | WAITERS,
            "the sleepers' mark is kept"
        );
        assert!(lock.is_inconsistent());
        assert_eq!(lock.deaths(), 1);
        assert_eq!(futex.waits.get(), 0);
        // Unlocked without marking: the next locker is told too.
        assert_eq!(lock.unlock(b, &futex), Ok(()));
        assert_eq!(
            lock.try_lock(b),
            Ok(Acquired::OwnerDied { taken_from: None })
        );
        let c = lock.claim_free_slot(token(3)).unwrap();
        assert_eq!(
            lock.mark_consistent(c),
            Err(LockError::NotHeld {
                state: b.get(),
                id: c.get()
            })
        );
        assert!(lock.is_inconsistent(), "a non-holder's mark changed it");
        assert_eq!(lock.mark_consistent(b), Ok(()));
        assert_eq!(lock.unlock(b, &futex), Ok(()));
        assert_eq!(lock.try_lock(c), Ok(Acquired::Clean));
        assert_eq!(lock.deaths(), 1);
    }

    #[test]
    fn an_owner_whose_slot_was_claimed_again_or_is_impossible_reads_as_dead() {
        let futex = Peer::default();
        let (clock, probe) = (Turns::default(), Probe::default());
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let a = lock.claim_free_slot(token(1)).unwrap();
        let b = lock.claim_free_slot(token(2)).unwrap();
        assert_eq!(lock.try_lock(a), Ok(Acquired::Clean));
        // Slot 0 re-claimed (its holder proven dead): another generation.
        let a2 = lock.claim_slot(0, 1, token(5)).unwrap();
        assert_eq!(
            lock.lock(b, &futex, &probe, &clock, Some(0)),
            Ok(Acquired::OwnerDied {
                taken_from: Some(a.get())
            })
        );
        assert_eq!(probe.probes.get(), 0, "the generation was enough");
        assert_eq!(lock.unlock(b, &futex), Ok(()));
        assert_eq!(
            lock.mark_consistent(a2),
            Err(LockError::NotHeld {
                state: 0,
                id: a2.get()
            })
        );

        // Garbage owners: slot field 0, slot past the table (4 entries), a
        // generation field no claim made.
        for garbage in [WAITERS, 0x0001_0000, 5, 0xffff, (0x7fff << 16) | 2] {
            m.line.state.store(garbage, Ordering::Relaxed);
            m.line.inconsistent.store(0, Ordering::Relaxed);
            assert_eq!(
                lock.lock(b, &futex, &probe, &clock, Some(0)),
                Ok(Acquired::OwnerDied {
                    taken_from: Some(garbage & !WAITERS)
                }),
                "state {garbage:#x}"
            );
            assert_eq!(state(&lock), b.get() | (garbage & WAITERS));
            assert_eq!(lock.unlock(b, &futex), Ok(()));
        }
        assert_eq!(futex.waits.get(), 0);
    }

    #[test]
    fn hostile_inconsistent_and_state_words_cost_errors_never_a_panic() {
        let m = mem();
        let lock = RobustLock::new(&m.line, &m.table);
        let futex = Peer::default();
        let a = lock.claim_free_slot(token(1)).unwrap();
        m.line.inconsistent.store(0xdead_beef, Ordering::Relaxed);
        assert_eq!(
            lock.try_lock(a),
            Ok(Acquired::OwnerDied { taken_from: None }),
            "any non-zero mark reads as inconsistent"
        );
        // A peer overwrites the word while we hold it: unlock frees it anyway,
        // wakes the sleeper the word claims, and says what it found.
        m.line.state.store(0x8000_0042, Ordering::Relaxed);
        assert_eq!(
            lock.unlock(a, &futex),
            Err(LockError::NotHeld {
                state: 0x8000_0042,
                id: a.get()
            })
        );
        assert_eq!(futex.wake_ones.get(), 1);
        assert_eq!(state(&lock), 0);
        // An empty table: nothing to claim, no panic.
        let big: [MutexSlot; 0] = [];
        assert_eq!(RobustLock::new(&m.line, &big).table().len(), 0);
        assert_eq!(
            RobustLock::new(&m.line, &big).claim_free_slot(token(1)),
            Err(SlotClaimError::TableFull { slots: 0 })
        );
    }

    #[test]
    fn a_raw_region_inits_attaches_and_parses_and_refuses_another_kind() {
        use crate::layout::STATE_KIND_VALUE;
        use crate::state::header::StateGeometry;
        #[repr(C, align(128))]
        struct Page([u8; 1024]);
        let mut page = Page([0xa5; 1024]);
        let geometry = StateGeometry::new(STATE_KIND_MUTEX, 12, 3).unwrap();
        let len = geometry.segment_size();
        let ptr = page.0.as_mut_ptr();
        // SAFETY: `page` outlives both regions and is touched only through them
        // until the byte copy below, made after their last use.
        let region = unsafe { RawMutexRegion::init(ptr, len, 12, 3, 0, 77) }.unwrap();
        // SAFETY: as above.
        let attached = unsafe { RawMutexRegion::attach(ptr, len) }.unwrap();
        assert_eq!(attached.info(), region.info());
        assert_eq!(attached.table().len(), 3);
        assert_eq!(attached.value_size(), 12);
        assert_eq!(attached.value_ptr() as usize - ptr as usize, 256 + 3 * 128);
        let lock = attached.lock();
        let a = lock.claim_free_slot(token(9)).unwrap();
        assert_eq!(lock.try_lock(a), Ok(Acquired::Clean));
        attached.table()[0].pid.store(4321, Ordering::Relaxed);
        // SAFETY: `ptr` is valid for `len` bytes; the zeroed value is read as
        // bytes after every store (single-threaded).
        let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
        assert!(
            bytes[256 + 3 * 128..].iter().all(|b| *b == 0),
            "value zeroed"
        );
        let snapshot = MutexSnapshot::parse(bytes, len as u64).unwrap();
        assert_eq!(snapshot.owner(), Some(a));
        assert!(!snapshot.waiters() && !snapshot.is_inconsistent());
        let table = &bytes[MUTEX_TABLE_OFFSET..];
        assert_eq!(
            snapshot.slot(table, 0),
            Some(MutexSlotSnapshot {
                owner: 9,
                generation: 1,
                pid: 4321
            })
        );
        assert_eq!(snapshot.slot(table, 3), None, "past the header's slots");
        assert_eq!(snapshot.slot(&table[..100], 1), None, "past the copy");
        assert!(matches!(
            MutexSnapshot::parse(&bytes[..200], len as u64),
            Err(LayoutError::TooSmall { len: 200, .. })
        ));
        // A published value's segment: another kind, refused by both.
        let mut other = Page([0; 1024]);
        let ptr = other.0.as_mut_ptr();
        // SAFETY: `other` outlives the region and is read as bytes only after
        // its last use.
        unsafe { crate::state::value::RawValueRegion::init(ptr, 264, 8, 0, 0) }.unwrap();
        // SAFETY: as above.
        assert!(unsafe { RawMutexRegion::attach(ptr, 264) }.is_err());
        // SAFETY: as above.
        let bytes = unsafe { core::slice::from_raw_parts(ptr, 264) };
        assert_eq!(
            MutexSnapshot::parse(bytes, 264),
            Err(LayoutError::WrongKind {
                found: STATE_KIND_VALUE,
                expected: STATE_KIND_MUTEX
            })
        );
    }
}
