//! The wait/notify protocol: an eventcount on a shared 32-bit word.
//!
//! Core makes no system calls. A side that must block calls [`Futex::wait`], which
//! the caller supplies (the `shmring` crate: Linux futex on the shared word; the
//! model checks: a mutex and condition variable that compare and sleep atomically).
//!
//! The word: bit 1 = "a waiter is asleep on the futex, or about to be"
//! ([`WAITING`]), bit 0 = "a waiter armed a readiness descriptor" ([`ARMED`]),
//! bits 2..32 = a notification count. A waiter sets its bit, issues its fence and
//! re-checks the ring; a notifier that finds either bit after its fence acts on
//! it: `WAITING` → it adds `WAITING` (clearing the bit, counting one) and wakes
//! the futex; `ARMED` → it clears the bit and, if it was the one to clear it,
//! rings the doorbell ([`Futex::ring_doorbell`]). Two bits, because one cannot tell
//! a futex sleeper from an armed descriptor, and each needs its own wake-up. The
//! count's carry never reaches `ARMED`, below it.
//!
//! ```text
//! waiter (bit = WAITING or ARMED)         notifier
//! key = word.fetch_or(bit) | bit           (publish: frame header / read_position)
//! fence(SeqCst)        ──── pairs ────     fence(SeqCst)
//! re-check the ring; ready? return         seen = word.load()
//! WAITING: futex.wait(word, key, deadline) if seen & WAITING:
//! ARMED: return `Armed`; the caller polls      word.fetch_add(WAITING) // clear bit, count++
//!   its descriptor, drains it, consumes        futex.wake(word)
//!   until empty, arms again                if seen & ARMED and word.fetch_and(!ARMED) had it:
//!                                              futex.ring_doorbell(word)
//! ```
//!
//! The two fences order "store, then load the other side's word" on both sides (the
//! store-buffer pattern): whichever fence is later in the single total order of
//! SeqCst operations, its side sees the other's store. So either the notifier sees
//! `WAITING` and wakes, or the waiter's re-check sees the publication and does not
//! sleep. If the notifier's `fetch_add` lands between the waiter's re-check and its
//! sleep, the word no longer equals `key` and the futex does not sleep. When nobody
//! waits, the notifier pays its fence and a load: no system call, no read-modify-write.
//!
//! The two fences are the [`Futex`]'s ([`Futex::waiter_fence`],
//! [`Futex::notifier_fence`]), `fence(SeqCst)` both by default. Waiting is rare
//! and slow, notifying happens on every publication: an implementation may make the
//! waiter's fence a barrier on every CPU (Linux `membarrier`), which does the
//! notifier's ordering for it, and the notifier's a compiler fence. A segment
//! says in its header whether its waiters do ([`crate::layout::FLAG_ASYMMETRIC_FENCES`]).
//!
//! A word that carries data of its own (an event's sequence, a semaphore's count:
//! [`crate::object`]) has no room for the `WAITING` bit, so its waiters count
//! themselves in a word beside it (`register_waiter`, `has_waiters`): the same
//! protocol and the same fence pair, with "waiters > 0" for "`WAITING` set".
//!
//! ```text
//! waiter                                   notifier
//! waiters.fetch_add(1)                     (publish: update the futex word)
//! fence(SeqCst)        ──── pairs ────     fence(SeqCst)
//! re-check the word; ready? return         if waiters.load() != 0:
//! futex.wait(word, seen, deadline)             futex.wake(word) / wake_one(word)
//! (on exit) waiters.fetch_sub(1)
//! ```
//!
//! A count rather than a bit, because several waiters share the word and a
//! notifier may wake only one (`wake_one`): a bit the notifier cleared would leave
//! the others asleep, unseen by the next notifier. The count is only compared
//! with zero; each waiter's decrement follows its own increment in the word's
//! modification order, so every value from a waiter's increment to its decrement
//! counts it.
//!
//! Fences rather than SeqCst loads and stores, because loom models `fence(SeqCst)`
//! but treats SeqCst accesses as Acquire/Release (tokio-rs/loom#180): the model
//! checks would otherwise report lost wake-ups the hardware cannot produce.

use crate::error::TimedOut;
use crate::sync::{AtomicU32, Ordering, fence};

/// Bit 1 of a signal word: a waiter is registered (asleep on the futex, or about
/// to be). A notifier that sees it adds `WAITING` to the word, which clears it and
/// carries one into the notification count (bits 2..32).
pub const WAITING: u32 = 1 << 1;

/// Bit 0 of a signal word: a waiter armed a readiness descriptor (the caller's
/// doorbell) and went back to its event loop. A notifier that sees it clears it
/// and rings the doorbell once; the waiter arms again after it has consumed
/// what the ring announced. It sits below [`WAITING`] so that the notifier's
/// addition never carries into it. A peer that sets it costs a doorbell ring per
/// notification at most.
pub const ARMED: u32 = 1;

/// What arming a readiness descriptor found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The condition already holds: act on it now (nothing is armed that the
    /// caller must wait for, though a later notification may still ring).
    Ready,
    /// Armed: the next notification rings the doorbell ([`Futex::ring_doorbell`]).
    /// The caller waits on its descriptor, drains it, acts until the condition
    /// no longer holds, and arms again.
    Armed,
}

/// A compare-and-sleep on a shared 32-bit word, and its wake-up: what a futex does.
///
/// The caller of a blocking ring operation supplies it.
pub trait Futex {
    /// A point in time, in whatever clock the implementation uses.
    type Deadline: Copy;

    /// Sleeps while `word` holds `expected`, until [`wake`](Futex::wake) is called
    /// on it, a spurious wake-up, or `deadline`. The compare and the sleep must be
    /// atomic with respect to `wake` (a wake between them must not be lost).
    ///
    /// # Errors
    /// [`TimedOut`] when the deadline has passed. Implementations check this on
    /// every call, also when `word` no longer holds `expected`, so that a peer who
    /// keeps changing the word cannot keep a caller past its deadline.
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Self::Deadline>,
    ) -> Result<(), TimedOut>;

    /// Wakes every thread sleeping in [`wait`](Futex::wait) on `word`.
    fn wake(&self, word: &AtomicU32);

    /// Wakes at least one thread sleeping in [`wait`](Futex::wait) on `word`, if
    /// any sleeps (a semaphore's post, an event's `notify_one`). [`wake`](Futex::wake)
    /// unless overridden: waking more is always correct, only slower.
    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        self.wake(word);
    }

    /// Whether [`ring_doorbell`](Futex::ring_doorbell) reaches the doorbell of
    /// whoever arms on `word`. A notifier that cannot ring it leaves the arming in
    /// place (does not clear [`ARMED`]) for one that can, or for the waiter's own
    /// fallback (a periodic check). `false` unless overridden; an implementation
    /// that overrides `ring_doorbell` overrides this too.
    #[inline]
    fn has_doorbell(&self, word: &AtomicU32) -> bool {
        let _ = word;
        false
    }

    /// Rings the readiness descriptor (doorbell) of whoever armed on `word` (a
    /// waiter that set [`ARMED`]). Called once per arming that a notification
    /// consumes, and only where [`has_doorbell`](Futex::has_doorbell) says it
    /// reaches one. Does nothing unless overridden.
    #[inline]
    fn ring_doorbell(&self, word: &AtomicU32) {
        let _ = word;
    }

    /// The waiter's half of the fence pair: between registering as a waiter and
    /// re-checking the ring. `fence(SeqCst)` unless overridden.
    #[inline]
    fn waiter_fence(&self) {
        fence(Ordering::SeqCst);
    }

    /// The notifier's half of the fence pair: between publishing and checking for
    /// a waiter. `fence(SeqCst)` unless overridden.
    ///
    /// An implementation may make this a compiler fence only if every waiter it
    /// can meet makes its [`waiter_fence`](Futex::waiter_fence) a barrier on every
    /// CPU that runs a notifier (Linux `membarrier`): the heavy side then does
    /// the light side's ordering for it. Otherwise wake-ups are lost.
    #[inline]
    fn notifier_fence(&self) {
        fence(Ordering::SeqCst);
    }
}

/// Registers the caller on `word` with `bit` ([`WAITING`] to sleep on the futex,
/// [`ARMED`] to be rung) and returns the value to sleep on. The caller must
/// re-check its condition after this and before sleeping or returning `Armed`.
#[inline]
pub(crate) fn prepare_wait<F: Futex + ?Sized>(word: &AtomicU32, bit: u32, futex: &F) -> u32 {
    // Relaxed: the RMW only needs to be in `word`'s modification order; its
    // ordering against the re-check that follows comes from the fence.
    let key = word.fetch_or(bit, Ordering::Relaxed) | bit;
    // SYNC: pairs with the notifier's fence in `notify` (store-buffer pattern,
    // module doc): either the notifier's load sees our bit, or our re-check sees
    // its publication.
    futex.waiter_fence();
    key
}

/// After a publication: wakes the waiter on `word` and rings the armed
/// descriptor, if either registered. With neither, a fence and a load.
#[inline]
pub(crate) fn notify<F: Futex + ?Sized>(word: &AtomicU32, futex: &F) {
    // SYNC: pairs with the waiter's fence in `prepare_wait` (module doc): orders
    // the caller's publication before the load of the waiter bits.
    futex.notifier_fence();
    // Relaxed: the fence orders it; the word carries no data.
    let seen = word.load(Ordering::Relaxed);
    if seen & (WAITING | ARMED) != 0 {
        notify_registered(word, seen, futex);
    }
}

/// [`notify`] without its fence, for a notifier that fenced once before checking
/// several words (the broadcast publisher, after `has_waiters`).
#[inline]
pub(crate) fn notify_seen<F: Futex + ?Sized>(word: &AtomicU32, futex: &F) {
    // Relaxed: the caller's fence orders it; the word carries no data.
    let seen = word.load(Ordering::Relaxed);
    if seen & (WAITING | ARMED) != 0 {
        notify_registered(word, seen, futex);
    }
}

/// [`notify`] past its common case: somebody registered.
#[cold]
fn notify_registered<F: Futex + ?Sized>(word: &AtomicU32, seen: u32, futex: &F) {
    if seen & WAITING != 0 {
        // Clears WAITING and counts one notification (the bit is set, so the
        // addition carries into the count above it and leaves ARMED below it
        // alone): a waiter that has not yet slept on its key won't sleep.
        // Relaxed: the word carries no data; the fence ordered the publication.
        word.fetch_add(WAITING, Ordering::Relaxed);
        futex.wake(word);
    }
    // Relaxed, as above. Only the notifier that clears the bit rings: one ring
    // per arming, and none once the waiter has gone back to its loop unarmed. A
    // notifier that reaches no doorbell for this word leaves the bit set.
    if seen & ARMED != 0
        && futex.has_doorbell(word)
        && word.fetch_and(!ARMED, Ordering::Relaxed) & ARMED != 0
    {
        futex.ring_doorbell(word);
    }
}

/// A waiter's registration in a count of waiters ([`register_waiter`]), undone
/// on drop.
#[must_use = "the registration ends when it is dropped"]
pub(crate) struct Registered<'a>(&'a AtomicU32);

/// Counts the caller in `waiters`, a word beside the futex word, and issues the
/// waiter's fence. The caller must re-check the futex word after this and
/// before sleeping; dropping the result undoes the registration.
#[inline]
pub(crate) fn register_waiter<'a, F: Futex + ?Sized>(
    waiters: &'a AtomicU32,
    futex: &F,
) -> Registered<'a> {
    // Relaxed: the RMW only needs to be in `waiters`' modification order; its
    // ordering against the re-check that follows comes from the fence.
    waiters.fetch_add(1, Ordering::Relaxed);
    // SYNC: pairs with the notifier's fence in `has_waiters` (store-buffer
    // pattern, module doc): either the notifier's load of `waiters` sees our
    // increment, or our re-check sees its update of the futex word.
    futex.waiter_fence();
    Registered(waiters)
}

impl Drop for Registered<'_> {
    #[inline]
    fn drop(&mut self) {
        // Relaxed: a notifier that still sees us counted only makes a useless
        // wake-up; wrapping, so a hostile value costs no more than that.
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// After the caller updated a futex word: whether a waiter is counted in
/// `waiters`, the word beside it (the caller then wakes the futex word).
#[inline]
pub(crate) fn has_waiters<F: Futex + ?Sized>(waiters: &AtomicU32, futex: &F) -> bool {
    // SYNC: pairs with the waiter's fence in `register_waiter` (module doc):
    // orders the caller's update of the futex word before the load of the count.
    futex.notifier_fence();
    // Relaxed: the fence orders it; the count carries no data.
    waiters.load(Ordering::Relaxed) != 0
}
