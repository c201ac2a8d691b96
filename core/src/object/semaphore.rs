//! The counting semaphore protocol: the count is the object's futex word.
//!
//! Every call reads the count once per attempt and checks it against the maximum
//! the caller read from the header at attach time; a count above it (a hostile
//! or buggy peer) is an error, never wrapped or waited on. A compare-and-swap
//! that keeps failing gives up after [`MAX_ATTEMPTS`].
//!
//! ```text
//! poster                                   waiter (count found 0)
//! (writes the caller made before)          waiters.fetch_add(1); fence (waiter's)
//! cas(c, c + 1, Release)  ─── pairs ────▶  c = word.load(); cas(c, c - 1, Acquire)
//! fence (notifier's)                       zero? futex.wait(word, 0, deadline)
//! waiters.load() != 0 → wake_one
//! ```
//!
//! The fences are [`crate::wait`]'s pair in its counted form (`has_waiters`,
//! `register_waiter`): a post either wakes a registered waiter or is seen by
//! its re-check. The Release post and the Acquire take hand what a poster did
//! before posting to the caller that takes its unit.

use core::fmt;
use core::hint::spin_loop;

use crate::error::TimedOut;
use crate::object::layout::ObjectWords;
use crate::sync::Ordering;
use crate::wait::{Futex, has_waiters, register_waiter};

/// How many times in a row a compare-and-swap on the count may fail (each failure
/// means the word changed between our load and our swap) before the call reports
/// [`SemaphoreError::Unstable`] (the `shmring` crate's `Corrupted::WordUnstable`).
/// Honest contention never comes near it.
pub const MAX_ATTEMPTS: u32 = 1 << 16;

/// Why a semaphore call did not take or give a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemaphoreError {
    /// [`try_take`]: the count is zero.
    Empty,
    /// [`post`]: the count is at the maximum; nothing changed.
    Full {
        /// The maximum (the count found).
        max: u32,
    },
    /// The count word holds more than the maximum (a hostile or buggy peer).
    CountOutOfRange {
        /// The word read.
        found: u32,
        /// The maximum from the header.
        max: u32,
    },
    /// The word changed under the swap this many times in a row.
    Unstable {
        /// Attempts made ([`MAX_ATTEMPTS`]).
        attempts: u32,
    },
    /// [`wait`]: the deadline passed with the count at zero.
    TimedOut,
}

impl fmt::Display for SemaphoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => write!(f, "semaphore count is zero"),
            Self::Full { max } => write!(f, "semaphore count is at its maximum {max}"),
            Self::CountOutOfRange { found, max } => {
                write!(f, "semaphore count {found} is over its maximum {max}")
            }
            Self::Unstable { attempts } => {
                write!(f, "semaphore count changed under {attempts} swaps in a row")
            }
            Self::TimedOut => write!(f, "timed out"),
        }
    }
}

impl core::error::Error for SemaphoreError {}

impl From<TimedOut> for SemaphoreError {
    fn from(_: TimedOut) -> Self {
        Self::TimedOut
    }
}

/// Loads the count (once) and checks it against `max`.
///
/// # Errors
/// [`SemaphoreError::CountOutOfRange`] if it is over `max`.
pub fn value(words: &ObjectWords, max: u32) -> Result<u32, SemaphoreError> {
    // Relaxed: only the swap that follows synchronizes; a waiter's re-check is
    // ordered after its registration by the fence (see `wait`).
    let count = words.word.load(Ordering::Relaxed);
    if count > max {
        return Err(SemaphoreError::CountOutOfRange { found: count, max });
    }
    Ok(count)
}

/// Adds one to the count and wakes one waiter, if one is registered (no call to
/// the futex otherwise).
///
/// # Errors
/// [`SemaphoreError::Full`] if the count is at `max` (nothing changes);
/// [`SemaphoreError::CountOutOfRange`] or [`SemaphoreError::Unstable`].
pub fn post<F: Futex + ?Sized>(
    words: &ObjectWords,
    max: u32,
    futex: &F,
) -> Result<(), SemaphoreError> {
    for _ in 0..MAX_ATTEMPTS {
        let count = value(words, max)?;
        if count == max {
            return Err(SemaphoreError::Full { max });
        }
        // SYNC: Release pairs with the Acquire swap in `try_take`: what the
        // caller did before posting is visible to whoever takes the unit.
        // Relaxed on failure: nothing was written, we load again.
        if words
            .word
            .compare_exchange(count, count + 1, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            // SYNC: the notifier's fence, paired with the waiter's in `wait`'s
            // registration (`crate::wait`, counted form).
            if has_waiters(&words.waiters, futex) {
                futex.wake_one(&words.word);
            }
            return Ok(());
        }
        spin_loop();
    }
    Err(SemaphoreError::Unstable {
        attempts: MAX_ATTEMPTS,
    })
}

/// Takes one unit if the count is non-zero; never blocks.
///
/// # Errors
/// [`SemaphoreError::Empty`] if the count is zero;
/// [`SemaphoreError::CountOutOfRange`] or [`SemaphoreError::Unstable`].
pub fn try_take(words: &ObjectWords, max: u32) -> Result<(), SemaphoreError> {
    for _ in 0..MAX_ATTEMPTS {
        let count = value(words, max)?;
        if count == 0 {
            return Err(SemaphoreError::Empty);
        }
        // SYNC: Acquire pairs with the Release swap in `post`: what the poster
        // did before posting is visible to us. Relaxed on failure: we load again.
        if words
            .word
            .compare_exchange(count, count - 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        spin_loop();
    }
    Err(SemaphoreError::Unstable {
        attempts: MAX_ATTEMPTS,
    })
}

/// Takes one unit, sleeping on the futex while the count is zero.
///
/// # Errors
/// [`SemaphoreError::TimedOut`] once `deadline` has passed with the count at
/// zero (checked before every sleep: no peer can keep the caller past it);
/// [`SemaphoreError::CountOutOfRange`] or [`SemaphoreError::Unstable`]. Never
/// [`SemaphoreError::Empty`].
pub fn wait<F: Futex + ?Sized>(
    words: &ObjectWords,
    max: u32,
    futex: &F,
    deadline: Option<F::Deadline>,
) -> Result<(), SemaphoreError> {
    let mut registered = None;
    loop {
        match try_take(words, max) {
            Err(SemaphoreError::Empty) => {}
            taken_or_error => return taken_or_error,
        }
        if registered.is_none() {
            // SYNC: the waiter's fence, paired with the notifier's in `post`;
            // the next turn's `try_take` is the re-check it orders.
            registered = Some(register_waiter(&words.waiters, futex));
            continue;
        }
        futex.wait(&words.word, 0, deadline)?;
    }
}
