//! Loom models of the robust lock of a `SharedMutex` (issue 23): the real
//! `shmring_core::state::mutex` code on a lock line, a slot table and a value
//! cell of loom's, a [`LoomFutex`] for the lock word, [`LoomLiveness`] for the
//! slots' liveness locks.
//!
//! The value is a `loom::cell::UnsafeCell`: two holders touching it without a
//! happens-before between them (a broken exclusion, a weakened ordering) is a
//! race loom reports. A lost wake-up is a deadlock loom reports.
//!
//! Each model names the orderings it covers; `loom-tests/mutations.toml` says
//! which model fails when each is weakened (`loom-tests/mutate.py --filter
//! state/mutex`: 9 caught, 1 explained). Bounds and times (release, 2 cores
//! shared with other builds at a load of about 4, each model alone, wall
//! (user); measured 2026-12-07):
//!
//! | model | threads | bound | wall (user) s |
//! |---|---|---|---|
//! | `two_lockers_increment_exactly` | 2 | 3 | 0.00 (0.00) |
//! | `unlock_wakes_every_sleeping_locker_in_turn` | 3 | 3 | 0.14 (0.03) |
//! | `a_dead_holder_is_taken_over_and_stays_inconsistent_until_marked` | 2 | 3 | 0.00 (0.00) |
//! | `a_live_holder_is_never_taken_over` | 2 | 3 | 0.00 (0.00) |
//! | `a_taker_is_not_taken_over_in_turn` | 2 | 3 | 0.01 (0.00) |
//! | `a_reclaimed_slot_reveals_its_dead_holder` | 2 | 3 | 0.00 (0.00) |
//!
//! Checked by hand beyond the orderings (December 2026): an `unlock` that wakes
//! nobody deadlocks `two_lockers_increment_exactly` and
//! `unlock_wakes_every_sleeping_locker_in_turn`; a locker that does not keep
//! WAITERS after a sleep deadlocks the latter; a take-over that does not mark
//! the value inconsistent fails `a_dead_holder_…` and `a_taker_…`; a death
//! check without the liveness probe never takes over (`a_dead_holder_…`
//! exceeds loom's branch limit, spinning).
#![cfg(shmring_loom)]

use std::num::NonZeroU32;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmring_core::state::mutex::{
    Acquired, LockError, MutexLine, MutexSlot, OwnerId, ProbeClock, RobustLock,
};
use shmring_loom_tests::{Expired, LoomFutex, LoomLiveness, model};

/// A `SharedMutex`'s lock line, slot table and value, shared by a model's
/// threads (call inside `loom::model`).
struct Memory {
    line: MutexLine,
    table: Vec<MutexSlot>,
    value: UnsafeCell<u32>,
    futex: LoomFutex,
    liveness: LoomLiveness,
}

impl Memory {
    fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            line: MutexLine::new(),
            table: (0..slots).map(|_| MutexSlot::new()).collect(),
            value: UnsafeCell::new(0),
            futex: LoomFutex::new(),
            liveness: LoomLiveness::new(slots),
        })
    }

    fn lock(&self) -> RobustLock<'_> {
        RobustLock::new(&self.line, &self.table)
    }

    fn claim(&self, slot: usize) -> OwnerId {
        self.lock().claim_slot(slot, 0, token(slot)).unwrap()
    }

    /// Locks as the `shmring` crate does: `try_lock`, then `lock` if held.
    fn acquire<C: ProbeClock<Expired>>(
        &self,
        id: OwnerId,
        clock: &C,
        deadline: Option<Expired>,
    ) -> Result<Acquired, LockError> {
        let lock = self.lock();
        match lock.try_lock(id) {
            Err(LockError::WouldBlock { .. }) => {
                lock.lock(id, &self.futex, &self.liveness, clock, deadline)
            }
            taken => taken,
        }
    }

    fn unlock(&self, id: OwnerId) {
        self.lock().unlock(id, &self.futex).unwrap();
    }

    /// Adds one to the value: a read, then a write (loom checks both).
    fn increment(&self) {
        let v = self.value.with(|p| {
            // SAFETY: loom checks that no write races with this read.
            unsafe { *p }
        });
        self.value.with_mut(|p| {
            // SAFETY: loom checks that no access races with this write.
            unsafe { *p = v + 1 }
        });
    }

    fn value(&self) -> u32 {
        self.value.with(|p| {
            // SAFETY: loom checks that no write races with this read.
            unsafe { *p }
        })
    }
}

fn token(slot: usize) -> NonZeroU32 {
    NonZeroU32::new(100 + slot as u32).unwrap()
}

/// A locker that sleeps until woken: no liveness interval (nobody dies in the
/// models that use it, so a lost wake-up stays asleep and loom reports it).
struct UntilWoken;

impl ProbeClock<Expired> for UntilWoken {
    fn sleep_deadline(&self, deadline: Option<Expired>) -> Option<Expired> {
        deadline
    }

    fn has_passed(&self, _: Expired) -> bool {
        true
    }
}

/// A locker whose liveness interval passes at once: every sleep returns, and it
/// probes the owner again (after yielding, so that loom runs the others).
struct Probing;

impl ProbeClock<Expired> for Probing {
    fn sleep_deadline(&self, _: Option<Expired>) -> Option<Expired> {
        thread::yield_now();
        Some(Expired)
    }

    fn has_passed(&self, _: Expired) -> bool {
        true
    }
}

/// Mutual exclusion and hand-over: two lockers (each `try_lock`, then `lock`
/// with no deadline, sleeping on the futex) add one to the value each; it ends
/// at exactly 2, and loom finds no race on it.
/// Covers: `try_lock`'s and `lock`'s AcqRel compare-exchanges (their Acquire
/// half), `unlock`'s Release swap, the WAITERS mark and `unlock`'s `wake_one`.
#[test]
fn two_lockers_increment_exactly() {
    model(|| {
        let mem = Memory::new(2);
        let (a, b) = (mem.claim(0), mem.claim(1));
        let m = mem.clone();
        let other = thread::spawn(move || {
            assert_eq!(m.acquire(b, &UntilWoken, None), Ok(Acquired::Clean));
            m.increment();
            m.unlock(b);
        });
        assert_eq!(mem.acquire(a, &UntilWoken, None), Ok(Acquired::Clean));
        mem.increment();
        mem.unlock(a);
        other.join().unwrap();
        assert_eq!(mem.value(), 2);
        assert_eq!(mem.lock().owner(), None);
    });
}

/// No lost wake-up with two sleepers: the main thread holds the lock while two
/// lockers block on it; `unlock` wakes one (`FUTEX_WAKE` of 1), which must take
/// the lock with WAITERS kept so that its own unlock wakes the other. Every
/// locker returns, and the value counts all three.
/// Covers: the WAITERS mark, taking the lock with WAITERS after a sleep,
/// `unlock`'s `wake_one`, and the orderings of `two_lockers_increment_exactly`.
#[test]
fn unlock_wakes_every_sleeping_locker_in_turn() {
    model(|| {
        let mem = Memory::new(3);
        let a = mem.claim(0);
        assert_eq!(mem.lock().try_lock(a), Ok(Acquired::Clean));
        let lockers: Vec<_> = (1..3)
            .map(|slot| {
                let m = mem.clone();
                let id = m.claim(slot);
                thread::spawn(move || {
                    assert_eq!(m.acquire(id, &UntilWoken, None), Ok(Acquired::Clean));
                    m.increment();
                    m.unlock(id);
                })
            })
            .collect();
        mem.increment();
        mem.unlock(a);
        for l in lockers {
            l.join().unwrap();
        }
        assert_eq!(mem.value(), 3);
    });
}

/// A holder that dies (its slot's liveness says dead, after its last write) is
/// taken over: the locker gets `OwnerDied` naming it, sees the value it wrote,
/// and the value stays marked inconsistent (every later locker is told) until
/// a holder calls `mark_consistent`.
/// Covers: the death check and the take-over; `inconsistent` and `deaths`;
/// the probe's ordering of the dead holder's stores (`LoomLiveness::kill`).
#[test]
fn a_dead_holder_is_taken_over_and_stays_inconsistent_until_marked() {
    model(|| {
        let mem = Memory::new(2);
        let (dead, b) = (mem.claim(0), mem.claim(1));
        let m = mem.clone();
        let holder = thread::spawn(move || {
            assert_eq!(m.acquire(dead, &Probing, None), Ok(Acquired::Clean));
            m.value.with_mut(|p| {
                // SAFETY: loom checks that no access races with this write.
                unsafe { *p = 7 }
            });
            // Dies holding the lock: never unlocks, never touches it again.
            m.liveness.kill(dead.slot());
        });
        let mut first = mem.acquire(b, &Probing, None);
        if first == Ok(Acquired::Clean) {
            // We came first: let the holder lock and die, then lock again.
            assert_eq!(mem.value(), 0);
            mem.unlock(b);
            holder.join().unwrap();
            first = mem.acquire(b, &Probing, None);
        } else {
            holder.join().unwrap();
        }
        assert_eq!(
            first,
            Ok(Acquired::OwnerDied {
                taken_from: Some(dead.get())
            })
        );
        assert_eq!(mem.value(), 7, "the dead holder's write");
        let lock = mem.lock();
        assert!(lock.is_inconsistent());
        assert_eq!(lock.deaths(), 1);
        mem.unlock(b);
        assert_eq!(
            mem.acquire(b, &Probing, None),
            Ok(Acquired::OwnerDied { taken_from: None })
        );
        assert_eq!(lock.mark_consistent(b), Ok(()));
        mem.unlock(b);
        assert_eq!(mem.acquire(b, &Probing, None), Ok(Acquired::Clean));
        assert_eq!(lock.deaths(), 1);
    });
}

/// A live holder is never taken for dead: two lockers claim their slots in
/// their own threads (so each slot's generation is stored concurrently with the
/// other's lock attempt) and lock with a passed deadline; neither ever gets
/// `OwnerDied`, and each gets the lock or `TimedOut`.
/// Covers: the Release half of `try_lock`'s and `lock`'s compare-exchanges and
/// `lock`'s Acquire load of `state`: a locker that reads an owner's id reads
/// its slot's generation too (else it would read the generation before the
/// claim, unlike the id's, and take a live owner for dead).
#[test]
fn a_live_holder_is_never_taken_over() {
    model(|| {
        let mem = Memory::new(2);
        let m = mem.clone();
        let other = thread::spawn(move || {
            let id = m.claim(1);
            match m.acquire(id, &UntilWoken, Some(Expired)) {
                Ok(Acquired::Clean) => m.unlock(id),
                Err(LockError::TimedOut { .. }) => {}
                other => panic!("{other:?}"),
            }
        });
        let id = mem.claim(0);
        // `lock` alone: its own compare-exchange, not `try_lock`'s.
        match mem
            .lock()
            .lock(id, &mem.futex, &mem.liveness, &UntilWoken, Some(Expired))
        {
            Ok(Acquired::Clean) => mem.unlock(id),
            Err(LockError::TimedOut { .. }) => {}
            other => panic!("{other:?}"),
        }
        other.join().unwrap();
        assert_eq!(mem.lock().deaths(), 0);
    });
}

/// The locker that took over from a dead holder is not taken over in turn: a
/// holder locks and dies; two lockers (slots claimed in their own threads) lock
/// with probes. Exactly one is told it took the lock from the dead holder,
/// neither from the other.
/// Covers: the Release half of the take-over's compare-exchange (the taker's
/// id is read with its slot's generation).
#[test]
fn a_taker_is_not_taken_over_in_turn() {
    model(|| {
        let mem = Memory::new(3);
        let dead = mem.claim(0);
        assert_eq!(mem.lock().try_lock(dead), Ok(Acquired::Clean));
        mem.liveness.kill(dead.slot());
        let m = mem.clone();
        let other = thread::spawn(move || {
            let id = m.claim(1);
            let got = m.acquire(id, &Probing, None);
            m.unlock(id);
            got
        });
        let id = mem.claim(2);
        let mine = mem.acquire(id, &Probing, None);
        mem.unlock(id);
        let theirs = other.join().unwrap();
        let took = Ok(Acquired::OwnerDied {
            taken_from: Some(dead.get()),
        });
        let told = Ok(Acquired::OwnerDied { taken_from: None });
        assert!(
            (mine == took && theirs == told) || (mine == told && theirs == took),
            "{mine:?} {theirs:?}"
        );
        assert_eq!(mem.lock().deaths(), 1);
    });
}

/// A dead holder's slot claimed again reveals the death by its generation
/// alone: the liveness probe says alive again once the new claimant holds the
/// slot. The locker that takes over sees the dead holder's last write, whichever
/// of the two told it. (The main thread plays the holder, which locks before the
/// locker starts and writes after, then dies, and then the new claimant of its
/// slot, which starts after the death as the kernel's liveness lock orders it.)
/// Covers: `claim_slot`'s Release increment of the generation and the Acquire
/// load of it in the death check.
#[test]
fn a_reclaimed_slot_reveals_its_dead_holder() {
    model(|| {
        let mem = Memory::new(2);
        let (dead, id) = (mem.claim(0), mem.claim(1));
        assert_eq!(mem.lock().try_lock(dead), Ok(Acquired::Clean));
        let m = mem.clone();
        let locker = thread::spawn(move || {
            assert_eq!(
                m.acquire(id, &Probing, None),
                Ok(Acquired::OwnerDied {
                    taken_from: Some(dead.get())
                })
            );
            assert_eq!(m.value(), 7, "the dead holder's write");
            m.unlock(id);
        });
        // The holder writes, then dies holding the lock.
        mem.value.with_mut(|p| {
            // SAFETY: loom checks that no access races with this write.
            unsafe { *p = 7 }
        });
        mem.liveness.kill(dead.slot());
        // The new claimant: the slot's liveness lock (alive again), then the
        // owner word, taken over from the dead holder's token.
        mem.liveness.revive(dead.slot());
        let again = mem
            .lock()
            .claim_slot(dead.slot(), token(dead.slot()).get(), token(9))
            .unwrap();
        assert_ne!(again.generation(), dead.generation());
        locker.join().unwrap();
    });
}
