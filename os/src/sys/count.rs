//! A per-thread count of the system calls made on the message paths: the
//! futex, `membarrier`, reads and writes of descriptors (with or without passed
//! descriptors), `poll`, the liveness locks and POSIX message queues. Each is
//! counted where this floor makes it, once per call into the kernel (a retry
//! after `EINTR` counts again).
//!
//! Per thread, so that counting adds no shared cache line to a hot path: a test
//! or the comparison program counts what one thread's calls cost.

use std::cell::Cell;

thread_local! {
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one system call made by this thread.
#[inline]
pub(crate) fn one() {
    CALLS.with(|calls| calls.set(calls.get().wrapping_add(1)));
}

/// How many system calls this thread has made on shmring's message paths (the
/// futex, `membarrier`, descriptor reads and writes, `poll`, liveness-lock
/// probes, message queues) since it started. Segment set-up (opening, mapping,
/// naming) is not counted. Subtract two readings to count what a stretch of
/// calls cost: with nobody waiting, sending and receiving through a shared-memory
/// channel costs none.
pub fn system_calls_on_this_thread() -> u64 {
    CALLS.with(Cell::get)
}
