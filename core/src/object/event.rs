//! The event protocol: an eventcount on the object's futex word.
//!
//! The word is a sequence number that every notification advances; a waiter's
//! *key* is the sequence it last saw, and it returns once the word differs from
//! it. Nothing else is stored: a notification with nobody waiting is seen only by
//! a waiter whose key predates it.
//!
//! ```text
//! notifier                                 waiter
//! (writes the caller made before)          key = word.load(Acquire)
//! word.fetch_add(1, Release)  ── pairs ──▶ (the caller checks its condition)
//! fence (notifier's)                       waiters.fetch_add(1); fence (waiter's)
//! waiters.load() != 0 → wake               word.load(Acquire) != key → Ok
//!                                          futex.wait(word, key, deadline)
//! ```
//!
//! The fences are [`crate::wait`]'s pair in its counted form (`has_waiters`,
//! `register_waiter`): no lost wake-up. The Release increment and the Acquire
//! loads make a notification publish what the notifier did before it to every
//! waiter that sees it: to a `wait_from` that returns `Ok`, to
//! `is_notified_since` returning `true`, and to the caller's condition checked
//! after [`key`] (if the key already includes the notification, the condition
//! shows what came before it; if not, `wait_from` waits for it).

use crate::error::TimedOut;
use crate::object::layout::ObjectWords;
use crate::sync::Ordering;
use crate::wait::{Futex, has_waiters, register_waiter};

/// Whom a notification wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// One sleeping waiter ([`Futex::wake_one`]).
    One,
    /// Every sleeping waiter ([`Futex::wake`]).
    All,
}

/// Advances the sequence and wakes `whom` if a waiter is registered (no call to
/// the futex otherwise).
pub fn notify<F: Futex + ?Sized>(words: &ObjectWords, futex: &F, whom: Wake) {
    // SYNC: Release pairs with the Acquire loads of the word in `key`,
    // `is_notified_since` and `wait_from`: what the caller did before notifying
    // is visible to a waiter that sees the new sequence.
    words.word.fetch_add(1, Ordering::Release);
    // SYNC: the notifier's fence, paired with the waiter's in `wait_from`'s
    // registration (`crate::wait`, counted form).
    if has_waiters(&words.waiters, futex) {
        match whom {
            Wake::One => futex.wake_one(&words.word),
            Wake::All => futex.wake(&words.word),
        }
    }
}

/// The sequence now, as a key for [`wait_from`]. Take it before checking the
/// condition a notification announces.
pub fn key(words: &ObjectWords) -> u32 {
    // SYNC: Acquire pairs with the Release increment in `notify`: if the key
    // already counts a notification, the caller's condition check that follows
    // sees what the notifier did before it (else the caller would wait for a
    // notification that has been made: a lost wake-up).
    words.word.load(Ordering::Acquire)
}

/// Whether a notification was made after `key` was taken (never blocks).
pub fn is_notified_since(words: &ObjectWords, key: u32) -> bool {
    // SYNC: Acquire pairs with the Release increment in `notify`: `true` shows
    // the caller what the notifier did before it.
    words.word.load(Ordering::Acquire) != key
}

/// Waits until the sequence differs from `key`: returns at once if it does
/// already. Spurious wake-ups are waited through, never returned.
///
/// # Errors
/// [`TimedOut`] once `deadline` has passed with the sequence still at `key`
/// (the futex checks the deadline before every sleep, so a peer that keeps
/// changing the word and back cannot keep the caller past it).
pub fn wait_from<F: Futex + ?Sized>(
    words: &ObjectWords,
    key: u32,
    futex: &F,
    deadline: Option<F::Deadline>,
) -> Result<(), TimedOut> {
    if is_notified_since(words, key) {
        return Ok(());
    }
    // SYNC: the waiter's fence, paired with the notifier's in `notify`.
    let _registered = register_waiter(&words.waiters, futex);
    loop {
        // Ordered after the registration by its fence; Acquire as in
        // `is_notified_since`.
        if is_notified_since(words, key) {
            return Ok(());
        }
        futex.wait(&words.word, key, deadline)?;
    }
}
