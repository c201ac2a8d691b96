//! How a blocked call waits, written once for every endpoint kind: the
//! [`WaitStrategy`], deadlines, the peer's liveness (probed on a throttle, or
//! flagged by whoever learns of a death first), and the driver that runs a call's
//! attempts until one is done, its deadline passes or its peer has gone.
//!
//! The SPSC channel, the MPMC channel and the message-queue transport call the
//! same driver; each brings only its attempt, its way to park, and its liveness
//! probe. The futex wrapper ([`SharedFutex`](crate::SharedFutex)) only waits and
//! wakes: what counts as a peer gone, and how often it is looked at, is decided
//! here.

use std::time::{Duration, Instant};

/// A blocked call re-checks its peer's liveness at least this often (a dead peer
/// wakes no futex waiter).
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(25);

/// A failed non-blocking call checks the peer at most this often (a syscall); a
/// blocked call whose peer says it is leaving checks this often too.
pub(crate) const TRY_LIVENESS_INTERVAL: Duration = Duration::from_millis(1);

/// How a blocked call waits for its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Poll the ring without sleeping: the lowest latency, one core kept busy.
    BusySpin,
    /// Poll for `spin`, then sleep on the futex (the default: 50 µs). A wake-up from
    /// the futex costs the peer a system call and the sleeper the kernel's wake-up
    /// latency (~10 µs); spinning first avoids both for a peer that answers soon.
    SpinThenPark {
        /// How long to poll before sleeping.
        spin: Duration,
    },
    /// Sleep on the futex at once: no CPU burnt while waiting.
    Park,
}

impl Default for WaitStrategy {
    fn default() -> Self {
        Self::SpinThenPark {
            spin: Duration::from_micros(50),
        }
    }
}

/// The deadline `timeout` from now; `None` (no deadline) if the clock cannot
/// represent it.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
