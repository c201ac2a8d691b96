//! The counting semaphore protocol: the count is the object's futex word.
//!
//! Every call reads the count once per attempt and checks it against the maximum
//! the caller read from the header at attach time; a count above it (a hostile
//! or buggy peer) is an error, never wrapped or waited on. A compare-and-swap
//! that keeps failing gives up after [`MAX_ATTEMPTS`].

use core::fmt;
use core::hint::spin_loop;

use crate::error::TimedOut;
use crate::object::Registered;
use crate::object::layout::ObjectWords;
use crate::sync::Ordering;
use crate::wait::Futex;

/// How many times in a row a compare-and-swap on the count may fail (each failure
/// means the word changed between our load and our swap) before the call reports
/// [`SemaphoreError::Unstable`]. Honest contention never comes near it.
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
    // SYNC: SeqCst: a waiter's re-load after its SeqCst registration, and a
    // poster's load before its SeqCst swap (see `post` and `wait`).
    let count = words.word.load(Ordering::SeqCst);
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
        // SYNC: SeqCst swap then SeqCst load of `waiters`, paired with a waiter's
        // SeqCst registration then SeqCst re-load of the count: either we see it
        // registered and wake it, or it sees our unit. Release (in SeqCst) also
        // publishes to the taker what we did before posting.
        if words
            .word
            .compare_exchange(count, count + 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            if words.waiters.load(Ordering::SeqCst) != 0 {
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
        // SYNC: Acquire (in SeqCst) pairs with the poster's swap: what it did
        // before posting is visible to us.
        if words
            .word
            .compare_exchange(count, count - 1, Ordering::SeqCst, Ordering::Relaxed)
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
            // Register, then take again before sleeping (see `post`).
            registered = Some(Registered::new(&words.waiters));
            continue;
        }
        futex.wait(&words.word, 0, deadline)?;
    }
}
