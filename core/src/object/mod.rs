//! Named events and counting semaphores: their segment layout ([`layout`]) and
//! their protocols ([`event`], [`semaphore`]) on the two words of its futex line.
//!
//! Both wait on the rings' protocol ([`crate::wait`]) in its counted form: a
//! waiter counts itself in the `waiters` word, issues the [`Futex`](crate::Futex)'s
//! waiter fence and re-checks the futex word; a notifier updates the futex word,
//! issues the notifier fence and wakes only if `waiters` is non-zero. The futex
//! word carries the data (sequence, count), so it cannot also carry the rings'
//! `WAITING` bit; keeping the count beside it leaves the shared bytes of object
//! layout version 1 as they were.
//!
//! As for the rings, core makes no system call: a side that must sleep or wake
//! calls the caller's [`Futex`](crate::Futex) (the `shmring` crate: the Linux
//! futex; the model checks: a loom mutex and condition variable). Naming, the
//! segments themselves and the public handles (`shmring::Event`,
//! `shmring::Semaphore`) are the `shmring` crate's.

pub mod event;
pub mod layout;
pub mod semaphore;

use crate::object::layout::ObjectWords;
use crate::sync::Ordering;

/// How many callers are registered to wait on the object, in every process (a
/// snapshot: a waiter killed while waiting stays counted, which costs notifiers
/// only a useless wake-up; a peer can write any value here).
pub fn waiters(words: &ObjectWords) -> u32 {
    // Relaxed: a snapshot for display; orders nothing.
    words.waiters.load(Ordering::Relaxed)
}

/// Counts a waiter that sleeps on the object's word by other means than
/// [`event::wait_from`] or [`semaphore::wait`] (a `futex_waitv` over many words,
/// on behalf of armed waiters) and issues the waiter's fence: notifiers then
/// wake the word. The caller re-checks the word after this and before it
/// sleeps, and calls [`uncount_waiter`] once when it stops watching.
pub fn count_waiter<F: crate::Futex + ?Sized>(words: &ObjectWords, futex: &F) {
    // SYNC: the waiter's fence, paired with the notifier's in `event::notify`
    // and `semaphore::post` (`crate::wait`, counted form); the registration is
    // undone by `uncount_waiter`, not by a guard.
    core::mem::forget(crate::wait::register_waiter(&words.waiters, futex));
}

/// Undoes one [`count_waiter`].
pub fn uncount_waiter(words: &ObjectWords) {
    // Relaxed, wrapping: as a waiter's registration ending (`crate::wait`).
    words.waiters.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    //! The protocols against hostile words, single-threaded: a [`Futex`] that
    //! plays the peer (it writes the word when the caller would sleep) and counts
    //! the wake-ups asked of it.
    use core::cell::Cell;

    use super::event::{self, Wake};
    use super::layout::{ObjectLayout, SEMAPHORE_MAX_LIMIT};
    use super::semaphore::{self, SemaphoreError};
    use super::waiters;
    use crate::error::TimedOut;
    use crate::layout::{OBJECT_KIND_EVENT, OBJECT_KIND_SEMAPHORE};
    use crate::sync::{AtomicU32, Ordering};
    use crate::wait::Futex;

    /// On `wait`: stores `peer_writes` into the word (if any) and returns; with a
    /// deadline and nothing to write, times out (as a real futex would).
    #[derive(Default)]
    struct Peer {
        peer_writes: Cell<Option<u32>>,
        waits: Cell<u32>,
        wakes: Cell<u32>,
        wake_ones: Cell<u32>,
    }

    impl Futex for Peer {
        type Deadline = ();

        fn wait(&self, word: &AtomicU32, _: u32, deadline: Option<()>) -> Result<(), TimedOut> {
            self.waits.set(self.waits.get() + 1);
            match self.peer_writes.take() {
                Some(value) => {
                    word.store(value, Ordering::Relaxed);
                    Ok(())
                }
                None if deadline.is_some() => Err(TimedOut),
                None => panic!("would sleep forever"),
            }
        }

        fn wake(&self, _: &AtomicU32) {
            self.wakes.set(self.wakes.get() + 1);
        }

        fn wake_one(&self, _: &AtomicU32) {
            self.wake_ones.set(self.wake_ones.get() + 1);
        }
    }

    fn object(kind: u32, max: u32, word: u32) -> ObjectLayout {
        let object = ObjectLayout::new();
        object.init(kind, max, word);
        object
    }

    #[test]
    fn a_count_over_the_maximum_is_an_error_from_every_call_never_a_wait() {
        for found in [4, SEMAPHORE_MAX_LIMIT, SEMAPHORE_MAX_LIMIT + 1, u32::MAX] {
            let object = object(OBJECT_KIND_SEMAPHORE, 3, found);
            let words = object.words();
            let futex = Peer::default();
            let out_of_range = Err(SemaphoreError::CountOutOfRange { found, max: 3 });
            assert_eq!(semaphore::value(words, 3), out_of_range.map(|()| 0));
            assert_eq!(semaphore::post(words, 3, &futex), out_of_range);
            assert_eq!(semaphore::try_take(words, 3), out_of_range);
            assert_eq!(semaphore::wait(words, 3, &futex, None), out_of_range);
            assert_eq!(futex.waits.get(), 0, "waited on a count of {found}");
            assert_eq!(words.word.load(Ordering::Relaxed), found, "changed it");
            assert_eq!(waiters(words), 0, "left a registration behind");
        }
    }

    #[test]
    fn counts_stop_at_zero_and_at_the_maximum() {
        let object = object(OBJECT_KIND_SEMAPHORE, 2, 0);
        let words = object.words();
        let futex = Peer::default();
        assert_eq!(semaphore::try_take(words, 2), Err(SemaphoreError::Empty));
        assert_eq!(semaphore::post(words, 2, &futex), Ok(()));
        assert_eq!(semaphore::post(words, 2, &futex), Ok(()));
        assert_eq!(
            semaphore::post(words, 2, &futex),
            Err(SemaphoreError::Full { max: 2 })
        );
        assert_eq!(semaphore::value(words, 2), Ok(2));
        assert_eq!(futex.wake_ones.get(), 0, "woke with nobody waiting");
        assert_eq!(semaphore::try_take(words, 2), Ok(()));
        assert_eq!(semaphore::try_take(words, 2), Ok(()));
        assert_eq!(semaphore::try_take(words, 2), Err(SemaphoreError::Empty));
    }

    #[test]
    fn a_semaphore_wait_takes_the_unit_a_peer_posts_and_times_out_without_one() {
        let object = object(OBJECT_KIND_SEMAPHORE, 1, 0);
        let words = object.words();
        let futex = Peer::default();
        futex.peer_writes.set(Some(1));
        assert_eq!(semaphore::wait(words, 1, &futex, None), Ok(()));
        assert_eq!(semaphore::value(words, 1), Ok(0));
        assert_eq!(
            semaphore::wait(words, 1, &futex, Some(())),
            Err(SemaphoreError::TimedOut)
        );
        assert_eq!(waiters(words), 0, "registration not undone");
        // A peer that writes a count over the maximum while we sleep.
        futex.peer_writes.set(Some(7));
        assert_eq!(
            semaphore::wait(words, 1, &futex, None),
            Err(SemaphoreError::CountOutOfRange { found: 7, max: 1 })
        );
        assert_eq!(waiters(words), 0, "registration not undone");
    }

    #[test]
    fn a_garbage_waiters_word_costs_a_useless_wake_up_and_wraps_without_a_panic() {
        let object = object(OBJECT_KIND_EVENT, 0, 0);
        let words = object.words();
        let futex = Peer::default();
        words.waiters.store(u32::MAX, Ordering::Relaxed);
        event::notify(words, &futex, Wake::One);
        event::notify(words, &futex, Wake::All);
        assert_eq!((futex.wake_ones.get(), futex.wakes.get()), (1, 1));
        // Our registration wraps it to 0 and back.
        assert_eq!(event::wait_from(words, 2, &futex, Some(())), Err(TimedOut));
        assert_eq!(waiters(words), u32::MAX);

        let object = self::object(OBJECT_KIND_SEMAPHORE, 1, 0);
        let words = object.words();
        words.waiters.store(u32::MAX, Ordering::Relaxed);
        assert_eq!(semaphore::post(words, 1, &futex), Ok(()));
        assert_eq!(futex.wake_ones.get(), 2);
    }

    #[test]
    fn an_event_wait_returns_only_once_the_sequence_moves() {
        let object = object(OBJECT_KIND_EVENT, 0, u32::MAX);
        let words = object.words();
        let futex = Peer::default();
        let key = event::key(words);
        assert!(!event::is_notified_since(words, key));
        assert_eq!(
            event::wait_from(words, key, &futex, Some(())),
            Err(TimedOut)
        );
        // Nobody waits: no wake-up; the sequence wraps.
        event::notify(words, &futex, Wake::All);
        assert_eq!(futex.wakes.get(), 0);
        assert!(event::is_notified_since(words, key));
        assert_eq!(event::key(words), 0);
        assert_eq!(event::wait_from(words, key, &futex, None), Ok(()));
        assert_eq!(futex.waits.get(), 1, "waited although notified");
        // A peer that changes the word while we sleep is a notification.
        let key = event::key(words);
        futex.peer_writes.set(Some(12345));
        assert_eq!(event::wait_from(words, key, &futex, None), Ok(()));
        assert_eq!(waiters(words), 0);
    }
}
