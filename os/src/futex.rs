//! Core's wait/wake trait on the Linux futex of the shared word.

use std::time::Instant;

use shmring_core::sync::AtomicU32;
use shmring_core::{Futex, TimedOut};

/// The Linux futex on a word in shared memory.
///
/// Uses `FUTEX_WAIT`/`FUTEX_WAKE` without `FUTEX_PRIVATE_FLAG`: the kernel keys the
/// wait queue on the word's physical page, so a waiter in one process is woken by a
/// waker in another that maps the same segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedFutex;

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
            Some(deadline) => {
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .filter(|left| !left.is_zero())
                    .ok_or(TimedOut)?;
                Some(libc::timespec {
                    tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: left.subsec_nanos().into(),
                })
            }
        };
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned 32-bit atomic (borrowed for the call);
        // FUTEX_WAIT only reads it and compares; `timeout_ptr` is null or points to
        // a timespec that lives across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                timeout_ptr,
            )
        };
        if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
            return Err(TimedOut);
        }
        // 0: woken (or spuriously); EAGAIN: the word changed; EINTR: a signal.
        Ok(())
    }

    fn wake(&self, word: &AtomicU32) {
        // SAFETY: as in `wait`; FUTEX_WAKE does not touch the word's value.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
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
            result = SharedFutex.wait(&word, 7, Some(deadline));
        }
        assert_eq!(result, Err(TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wait_returns_when_the_word_differs() {
        let word = AtomicU32::new(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(SharedFutex.wait(&word, 2, Some(deadline)), Ok(()));
    }

    #[test]
    fn wake_ends_a_wait() {
        let word = Arc::new(AtomicU32::new(0));
        let waiter = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while word.load(std::sync::atomic::Ordering::Acquire) == 0 {
                    SharedFutex.wait(&word, 0, Some(deadline))?;
                }
                Ok::<(), TimedOut>(())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        word.store(1, std::sync::atomic::Ordering::Release);
        SharedFutex.wake(&word);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }

    #[test]
    fn a_passed_deadline_fails_at_once_even_if_the_word_differs() {
        let word = AtomicU32::new(1);
        assert_eq!(
            SharedFutex.wait(&word, 2, Some(Instant::now())),
            Err(TimedOut)
        );
    }
}
