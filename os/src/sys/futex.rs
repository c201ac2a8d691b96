//! The Linux futex on a shared word: `FUTEX_WAIT` and `FUTEX_WAKE`, without
//! `FUTEX_PRIVATE_FLAG` (the kernel keys the wait queue on the word's physical
//! page, so a waiter in one process is woken by a waker in another that maps the
//! same segment).

use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex::{self, Flags, Timespec};
use shmring_core::sync::AtomicU32;

/// What ended a [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// A wake-up (maybe spurious), a changed word (`EAGAIN`) or a signal
    /// (`EINTR`): the caller re-checks its condition.
    Early,
    /// The timeout passed.
    TimedOut,
}

/// `word` as the standard atomic rustix's futex calls take.
#[inline]
fn std_atomic(word: &AtomicU32) -> &std::sync::atomic::AtomicU32 {
    // SAFETY: core's AtomicU32 is a `repr(transparent)` wrapper of the standard
    // one: the pointer is valid and aligned for the borrow's lifetime, and every
    // access to the word is atomic.
    unsafe { std::sync::atomic::AtomicU32::from_ptr(word.as_ptr()) }
}

/// Sleeps while `word` holds `expected`, until woken, interrupted, or `timeout`
/// (`None`: no timeout) has passed.
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Woken {
    let timeout = timeout.map(|left| {
        Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        })
    });
    super::count::one();
    match futex::wait(std_atomic(word), Flags::empty(), expected, timeout.as_ref()) {
        Err(Errno::TIMEDOUT) => Woken::TimedOut,
        // Ok: woken (or spuriously); EAGAIN: the word changed; EINTR: a signal.
        _ => Woken::Early,
    }
}

/// Wakes at most `count` waiters on `word`.
#[inline]
pub(crate) fn wake(word: &AtomicU32, count: u32) {
    super::count::one();
    let _ = futex::wake(std_atomic(word), Flags::empty(), count);
}
