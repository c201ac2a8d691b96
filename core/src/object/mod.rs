//! Named events and counting semaphores: their segment layout ([`layout`]) and
//! their protocols ([`event`], [`semaphore`]) on the two words of its futex line.
//!
//! As for the rings, core makes no system call: a side that must sleep or wake
//! calls the caller's [`Futex`](crate::Futex) (the `shmring` crate: the Linux
//! futex; the model checks: a loom mutex and condition variable). Naming, the
//! segments themselves and the public handles (`shmring::Event`,
//! `shmring::Semaphore`) are the `shmring` crate's.

pub mod event;
pub mod layout;
pub mod semaphore;

use crate::sync::{AtomicU32, Ordering};

/// A registration in an object's waiter count, undone on drop.
pub(crate) struct Registered<'a>(&'a AtomicU32);

impl<'a> Registered<'a> {
    pub(crate) fn new(waiters: &'a AtomicU32) -> Self {
        // SYNC: SeqCst, with the waiter's SeqCst re-load of the word after it and
        // the notifier's SeqCst update of the word before its SeqCst load of
        // `waiters`: either the notifier sees this registration (and wakes), or
        // the waiter's re-load sees the update (and does not sleep).
        waiters.fetch_add(1, Ordering::SeqCst);
        Self(waiters)
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        // Wrapping: a hostile value only costs notifiers a useless wake-up.
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
