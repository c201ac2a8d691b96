//! The event protocol: an eventcount on the object's futex word.
//!
//! The word is a sequence number that every notification advances; a waiter's
//! *key* is the sequence it last saw, and it returns once the word differs from
//! it. Nothing else is stored: a notification with nobody waiting is seen only by
//! a waiter whose key predates it.

use crate::error::TimedOut;
use crate::object::Registered;
use crate::object::layout::ObjectWords;
use crate::sync::Ordering;
use crate::wait::Futex;

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
    // SYNC: SeqCst, paired with a waiter's SeqCst registration and re-load
    // (`Registered::new`): either we see its registration below, or it sees the
    // new sequence and does not sleep.
    words.word.fetch_add(1, Ordering::SeqCst);
    if words.waiters.load(Ordering::SeqCst) != 0 {
        match whom {
            Wake::One => futex.wake_one(&words.word),
            Wake::All => futex.wake(&words.word),
        }
    }
}

/// The sequence now, as a key for [`wait_from`].
pub fn key(words: &ObjectWords) -> u32 {
    // SYNC: SeqCst: ordered with the caller's later check of its condition by
    // program order, and with notifiers' SeqCst increments.
    words.word.load(Ordering::SeqCst)
}

/// Whether a notification was made after `key` was taken (never blocks).
pub fn is_notified_since(words: &ObjectWords, key: u32) -> bool {
    words.word.load(Ordering::SeqCst) != key
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
    if words.word.load(Ordering::SeqCst) != key {
        return Ok(());
    }
    let _registered = Registered::new(&words.waiters);
    loop {
        // SYNC: SeqCst re-load after the SeqCst registration (see `notify`).
        if words.word.load(Ordering::SeqCst) != key {
            return Ok(());
        }
        futex.wait(&words.word, key, deadline)?;
    }
}
