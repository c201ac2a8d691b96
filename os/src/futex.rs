//! Core's wait/wake trait on the Linux futex of the shared word: it waits and
//! wakes, nothing more (when a blocked call parks, for how long, and what ends it
//! early are `crate::blocking`'s).

use std::os::fd::BorrowedFd;
use std::sync::atomic::{Ordering, compiler_fence, fence};
use std::time::Instant;

use shmring_core::sync::AtomicU32;
use shmring_core::wait::WAITING;
use shmring_core::{Futex, TimedOut};

use crate::sys::futex::{self as sys_futex, Woken};
use crate::sys::membarrier;

/// The Linux futex on a word in shared memory.
///
/// Uses `FUTEX_WAIT`/`FUTEX_WAKE` without `FUTEX_PRIVATE_FLAG`: the kernel keys the
/// wait queue on the word's physical page, so a waiter in one process is woken by a
/// waker in another that maps the same segment.
///
/// The eventcount's fence pair ([`Futex::waiter_fence`], [`Futex::notifier_fence`])
/// is `fence(SeqCst)` on both sides by default ([`SharedFutex::default`]). On a
/// segment whose header carries
/// [`FLAG_ASYMMETRIC_FENCES`](shmring_core::FLAG_ASYMMETRIC_FENCES), the channel
/// uses the asymmetric pair: the waiter (rare, about to sleep) calls
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, a barrier on every CPU running a
/// registered process, and the notifier (every message) only stops the compiler
/// from reordering. Both sides must have registered ([`register_membarrier`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SharedFutex {
    asymmetric: bool,
}

/// Registers this process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (once per process):
/// from then on, another process's expedited barrier also runs on this process's
/// threads. `false` if the kernel (before 4.16) or a seccomp filter refuses it.
pub(crate) fn register_membarrier() -> bool {
    membarrier::register_global_expedited()
}

impl SharedFutex {
    /// The asymmetric pair, for a segment flagged
    /// [`FLAG_ASYMMETRIC_FENCES`](shmring_core::FLAG_ASYMMETRIC_FENCES). `None`
    /// unless this process is registered ([`register_membarrier`]): a process that
    /// cannot take part must not use such a segment.
    pub(crate) fn asymmetric() -> Option<Self> {
        register_membarrier().then_some(Self { asymmetric: true })
    }

    /// The futex for a segment whose header carries `flags`: the asymmetric
    /// pair if they include [`FLAG_ASYMMETRIC_FENCES`](shmring_core::FLAG_ASYMMETRIC_FENCES)
    /// (which needs this process registered for `membarrier`), else the default.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::error::Error::Unsupported) naming `chose`
    /// (the object's creator chose the pair) if this process cannot register.
    pub(crate) fn for_flags(flags: u32, chose: &'static str) -> crate::error::Result<Self> {
        if flags & shmring_core::FLAG_ASYMMETRIC_FENCES == 0 {
            return Ok(Self::default());
        }
        Self::asymmetric().ok_or(crate::error::Error::Unsupported { what: chose })
    }

    /// Whether this futex uses the asymmetric fence pair.
    #[cfg(test)]
    pub(crate) fn is_asymmetric(&self) -> bool {
        self.asymmetric
    }
}

impl Futex for SharedFutex {
    type Deadline = Instant;

    /// Sleeps while `word` holds `expected`, until woken, interrupted or `deadline`.
    /// Returns `Ok` on a wake-up, a changed word, or a signal (EINTR): the caller
    /// re-checks its condition and calls again with the same deadline, which waits
    /// for the time left. The deadline is checked first on every call.
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        let timeout = match deadline {
            None => None,
            Some(deadline) => Some(
                deadline
                    .checked_duration_since(Instant::now())
                    .filter(|left| !left.is_zero())
                    .ok_or(TimedOut)?,
            ),
        };
        match sys_futex::wait(word, expected, timeout) {
            Woken::TimedOut => Err(TimedOut),
            Woken::Early => Ok(()),
        }
    }

    #[inline]
    fn wake(&self, word: &AtomicU32) {
        sys_futex::wake(word, i32::MAX as u32);
    }

    /// `FUTEX_WAKE` of one waiter.
    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        sys_futex::wake(word, 1);
    }

    /// A barrier on every CPU that runs a registered process (asymmetric), or
    /// `fence(SeqCst)`.
    #[inline]
    fn waiter_fence(&self) {
        if self.asymmetric {
            // SYNC: the heavy half of the asymmetric pair with `notifier_fence`:
            // every notifier thread runs a full barrier at some point during the
            // call (or is not running, and a context switch is one), so either its
            // publication is visible to our re-check after the call, or its check
            // for waiters, after that barrier, sees our WAITING bit.
            if membarrier::global_expedited() {
                return;
            }
            // Cannot fail once registered; if it did, a local fence is the best
            // left (a lost wake-up is then bounded by the blocked call's periodic
            // re-check, which `crate::blocking` schedules).
        }
        fence(Ordering::SeqCst);
    }

    /// A compiler fence (asymmetric: the waiters' barrier orders the CPU), or
    /// `fence(SeqCst)`.
    #[inline]
    fn notifier_fence(&self) {
        if self.asymmetric {
            // SYNC: the light half of the pair with `waiter_fence`'s membarrier.
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }
}

/// A notifier's futex with the doorbell it rings: [`SharedFutex`], plus a
/// descriptor that rings whoever arms on one signal word (the word this
/// endpoint notifies: a sender's data word, a receiver's space word).
///
/// A notification that finds [`ARMED`](shmring_core::wait::ARMED) on another word
/// (an MPMC endpoint's rare wake-up of its own side), or that has no doorbell at
/// all (the peer's could not be opened), leaves the arming in place for the
/// waiter's fallback: the watcher's periodic check (`crate::readiness`).
///
/// A broadcast publisher notifies a word per subscriber, each with a doorbell of
/// its own: [`Notifier::with_lookup`] finds the doorbell of the word notified.
#[derive(Clone, Copy)]
pub(crate) struct Notifier<'a> {
    futex: SharedFutex,
    bells: Doorbells<'a>,
}

/// The doorbell(s) a [`Notifier`] rings.
#[derive(Clone, Copy)]
enum Doorbells<'a> {
    /// One, for armed waiters on one word.
    One(Option<(&'a AtomicU32, BorrowedFd<'a>)>),
    /// The doorbell of whichever word is notified, if it has one.
    Lookup(&'a (dyn Fn(&AtomicU32) -> Option<BorrowedFd<'a>> + 'a)),
}

impl std::fmt::Debug for Notifier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bells = match self.bells {
            Doorbells::One(bell) => format!("{:?}", bell.map(|(_, fd)| fd)),
            Doorbells::Lookup(_) => "per word".to_owned(),
        };
        f.debug_struct("Notifier")
            .field("futex", &self.futex)
            .field("bells", &bells)
            .finish()
    }
}

impl<'a> Notifier<'a> {
    /// `futex`, ringing `bell` for armed waiters on `word`.
    pub(crate) fn new(
        futex: SharedFutex,
        word: &'a AtomicU32,
        bell: Option<BorrowedFd<'a>>,
    ) -> Self {
        Self {
            futex,
            bells: Doorbells::One(bell.map(|fd| (word, fd))),
        }
    }

    /// `futex`, ringing `lookup(word)` for armed waiters on `word`: a
    /// broadcast publisher's, which has a doorbell per subscriber slot. Only
    /// called for a word found armed, never on the path of a publication that
    /// finds nobody waiting.
    pub(crate) fn with_lookup(
        futex: SharedFutex,
        lookup: &'a (dyn Fn(&AtomicU32) -> Option<BorrowedFd<'a>> + 'a),
    ) -> Self {
        Self {
            futex,
            bells: Doorbells::Lookup(lookup),
        }
    }

    /// The doorbell for armed waiters on `word`, if there is one.
    #[inline]
    fn bell_of(&self, word: &AtomicU32) -> Option<BorrowedFd<'a>> {
        match self.bells {
            Doorbells::One(bell) => bell
                .filter(|(ours, _)| std::ptr::eq(*ours, word))
                .map(|(_, fd)| fd),
            Doorbells::Lookup(lookup) => lookup(word),
        }
    }
}

impl Futex for Notifier<'_> {
    type Deadline = Instant;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        self.futex.wait(word, expected, deadline)
    }

    #[inline]
    fn wake(&self, word: &AtomicU32) {
        self.futex.wake(word);
    }

    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        self.futex.wake_one(word);
    }

    #[inline]
    fn has_doorbell(&self, word: &AtomicU32) -> bool {
        self.bell_of(word).is_some()
    }

    /// One byte, non-blocking, into the doorbell (a full pipe is already rung).
    #[inline]
    fn ring_doorbell(&self, word: &AtomicU32) {
        if let Some(fd) = self.bell_of(word) {
            crate::sys::bell::ring(fd);
        }
    }

    #[inline]
    fn waiter_fence(&self) {
        self.futex.waiter_fence();
    }

    #[inline]
    fn notifier_fence(&self) {
        self.futex.notifier_fence();
    }
}

/// Wakes every call parked on `words`, in every process, so that it looks again
/// at what changed: a peer-gone flag or hint, or a peer's claim word released by
/// a clean departure. Each word is woken as the ring's own notification would:
/// `WAITING` cleared and one counted, so a waiter that has not slept yet on its
/// key does not sleep.
pub(crate) fn wake_parked_on(words: &[&AtomicU32]) {
    for word in words {
        // SYNC: the store-buffer pairing of `ParkFutex` (blocking.rs): orders the
        // caller's SeqCst store of the flag or hint before this load of the word.
        fence(Ordering::SeqCst);
        // Relaxed: the fence orders it; the word carries no data.
        if word.load(Ordering::Relaxed) & WAITING != 0 {
            word.fetch_add(WAITING, Ordering::Relaxed);
            SharedFutex::default().wake(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn wait_times_out_at_the_deadline() {
        let word = AtomicU32::new(7);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        let mut result = Ok(());
        while result.is_ok() {
            result = SharedFutex::default().wait(&word, 7, Some(deadline));
        }
        assert_eq!(result, Err(TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wait_returns_when_the_word_differs() {
        let word = AtomicU32::new(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            SharedFutex::default().wait(&word, 2, Some(deadline)),
            Ok(())
        );
    }

    #[test]
    fn wake_ends_a_wait() {
        let word = Arc::new(AtomicU32::new(0));
        let waiter = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while word.load(std::sync::atomic::Ordering::Acquire) == 0 {
                    SharedFutex::default().wait(&word, 0, Some(deadline))?;
                }
                Ok::<(), TimedOut>(())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        word.store(1, std::sync::atomic::Ordering::Release);
        SharedFutex::default().wake(&word);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }

    #[test]
    fn a_passed_deadline_fails_at_once_even_if_the_word_differs() {
        let word = AtomicU32::new(1);
        assert_eq!(
            SharedFutex::default().wait(&word, 2, Some(Instant::now())),
            Err(TimedOut)
        );
    }
}
