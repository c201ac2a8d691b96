//! How a blocked call waits, written once for every endpoint kind: the
//! [`WaitStrategy`], deadlines, the peer's liveness (probed on a throttle, or
//! flagged by whoever learns of a death first), and the driver that runs a call's
//! attempts until one is done, its deadline passes or its peer has gone.
//!
//! The SPSC channel, the MPMC channel and the message-queue transport call the
//! same driver; each brings only its attempt, its way to park, and its liveness
//! probe. The futex wrapper ([`SharedFutex`]) only waits and
//! wakes: what counts as a peer gone, and how often it is looked at, is decided
//! here.

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmring_core::sync::AtomicU32;
use shmring_core::{Futex, TimedOut};

use crate::error::{Error, Result};
use crate::futex::SharedFutex;

/// A blocked call's next probe of its peer's liveness falls due this long after
/// its last one (a dead peer wakes no futex waiter), and a parked call sleeps no
/// later than that; see [`PEER_DEATH_BOUND`].
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(25);

/// The longest a blocked call takes to return [`Error::Disconnected`] after its
/// peer died (25 ms, one [`LIVENESS_INTERVAL`]), counted from the moment the
/// kernel released the dead process's locks: a parked call sleeps no later than
/// its next probe falls due, [`LIVENESS_INTERVAL`] after the last one, whatever
/// woke it in between, and makes that probe when it wakes.
///
/// Not counted: how long the kernel takes to release a killed process's locks
/// (it tears down the process's memory first), the probe itself (a system call
/// per lock), and scheduling delays (a thread the kernel wakes late returns late).
/// This is the fallback: a clean departure is seen at once, and so is a death
/// wherever the peer's doorbell hangs up when it dies (named segments and
/// connections: the process's watcher thread wakes the parked call, which then
/// probes the lock; see `Receiver::readiness_fd`), or over a
/// [`Connection`](crate::connection::Connection), whose socket tells.
pub const PEER_DEATH_BOUND: Duration = LIVENESS_INTERVAL;

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

/// An endpoint's waiting state: its strategy, the peer's last liveness verdict,
/// and the peer-gone flag.
#[derive(Debug)]
pub(crate) struct Waiter {
    strategy: WaitStrategy,
    /// When the peer was last probed, and whether it was gone then.
    last_check: Option<(Instant, bool)>,
    /// Set by whoever learns first that the peer has gone (a connection's socket
    /// watcher, `crate::connection`): consulted on every pause, so a parked call
    /// need not wait for the next probe. `None` unless one was given.
    peer_gone_flag: Option<Arc<AtomicBool>>,
}

impl Waiter {
    pub(crate) fn new(strategy: WaitStrategy) -> Self {
        Self {
            strategy,
            last_check: None,
            peer_gone_flag: None,
        }
    }

    pub(crate) fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Makes `flag` a second liveness signal: once it is set, the peer is gone.
    /// Whoever sets it stores it `SeqCst` and then wakes the parked calls (the
    /// store-buffer pairing of [`ParkFutex`]).
    pub(crate) fn set_peer_gone_flag(&mut self, flag: Arc<AtomicBool>) {
        self.peer_gone_flag = Some(flag);
    }

    /// Whether the peer-gone flag is set. SeqCst: the store-buffer pairing with
    /// the flag's setter, see [`ParkFutex`].
    #[inline]
    pub(crate) fn flagged_gone(&self) -> bool {
        self.peer_gone_flag
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Whether the peer is gone now: the flag, else `probe` (a system call); the
    /// verdict is remembered with `now`.
    pub(crate) fn peer_gone(
        &mut self,
        now: Instant,
        probe: impl FnOnce() -> Result<bool>,
    ) -> Result<bool> {
        let gone = self.flagged_gone() || probe()?;
        self.last_check = Some((now, gone));
        Ok(gone)
    }

    /// For a non-blocking call that found nothing to do: whether the peer is gone,
    /// probed at most every [`TRY_LIVENESS_INTERVAL`] (within it, the last verdict
    /// stands).
    pub(crate) fn peer_gone_throttled(
        &mut self,
        probe: impl FnOnce() -> Result<bool>,
    ) -> Result<bool> {
        if self.flagged_gone() {
            return Ok(true);
        }
        let now = Instant::now();
        match self.last_check {
            Some((last, gone)) if now.duration_since(last) < TRY_LIVENESS_INTERVAL => Ok(gone),
            _ => self.peer_gone(now, probe),
        }
    }

    /// The futex a parked call sleeps on: `inner`, except that it does not sleep
    /// once the peer-gone flag is set or `leaving` says the peer is leaving.
    pub(crate) fn park_futex<L: Fn() -> bool>(
        &self,
        inner: SharedFutex,
        leaving: L,
    ) -> ParkFutex<'_, L> {
        ParkFutex {
            inner,
            flag: self.peer_gone_flag.as_deref(),
            leaving,
        }
    }
}

/// What the blocking driver asks of an endpoint, beside each call's attempt and
/// park.
pub(crate) trait Endpoint {
    /// The endpoint's waiting state.
    fn waiter(&mut self) -> &mut Waiter;

    /// Whether the peer has been here and is gone now: [`Waiter::peer_gone`] with
    /// the endpoint's probe.
    fn peer_gone(&mut self, now: Instant) -> Result<bool>;

    /// Whether the peer says it is leaving (a hint, no system call): the probe is
    /// then due every [`TRY_LIVENESS_INTERVAL`] instead of [`LIVENESS_INTERVAL`].
    fn peer_leaving(&self) -> bool {
        false
    }

    /// An instant by which the endpoint must look again though nothing wakes it
    /// (a parked call sleeps no later).
    fn check_by(&self) -> Option<Instant> {
        None
    }
}

/// What one attempt of a blocking call came to.
pub(crate) enum Step<T> {
    /// Finished.
    Done(T),
    /// Progress without a result (a slot recovered, a contended claim): try again
    /// at once.
    Again,
    /// Nothing to do now: wait (and, if the attempt was told the peer is gone, it
    /// found the peer back).
    Wait,
}

/// What a blocked call does next.
enum Pause {
    /// Poll again.
    Spin,
    /// Sleep until then at the latest.
    Park(Instant),
    /// The peer has gone: attempt again, told so (whatever it committed before it
    /// went is delivered first).
    PeerGone,
}

/// Runs a blocking call: `attempt` until it is done or fails, pausing between
/// attempts by the endpoint's [`WaitStrategy`] (spin, or `park` until the instant
/// given), until `deadline` ([`Error::TimedOut`]). Every [`LIVENESS_INTERVAL`] (or
/// at once, when flagged) it asks whether the peer is gone; once it is, each
/// attempt is told so (`true`) and ends the call: with what the peer left, or
/// with [`Error::Disconnected`], unless it finds the peer back ([`Step::Wait`]).
///
/// Generic over the closures and inlined, so each call compiles to its own loop.
#[inline]
pub(crate) fn block<E: Endpoint, T>(
    endpoint: &mut E,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(&mut E, bool) -> Result<Step<T>>,
    mut park: impl FnMut(&mut E, Instant) -> Result<()>,
) -> Result<T> {
    let mut gone = false;
    let mut round = 0u32;
    let mut started = None;
    loop {
        match attempt(endpoint, gone)? {
            Step::Done(done) => return Ok(done),
            Step::Again => {
                round = round.wrapping_add(1);
                if round % 64 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::TimedOut);
                }
                continue;
            }
            Step::Wait => gone = false,
        }
        round = round.wrapping_add(1);
        match pause(endpoint, round, &mut started, deadline)? {
            Pause::Spin => spin_loop(),
            Pause::Park(until) => park(endpoint, until)?,
            Pause::PeerGone => gone = true,
        }
    }
}

/// One step of a blocked call, after its condition failed for the `round`th
/// time: checks the deadline and (every [`LIVENESS_INTERVAL`]) the peer, then
/// says whether to spin or to park, and until when.
#[inline]
fn pause<E: Endpoint>(
    endpoint: &mut E,
    round: u32,
    started: &mut Option<Instant>,
    deadline: Option<Instant>,
) -> Result<Pause> {
    let strategy = endpoint.waiter().strategy;
    // A spinning caller reads the clock every 64 rounds only.
    if strategy != WaitStrategy::Park && round % 64 != 0 {
        return Ok(Pause::Spin);
    }
    // A load, no system call: checked on every pause that gets this far.
    if endpoint.waiter().flagged_gone() {
        return Ok(Pause::PeerGone);
    }
    let now = Instant::now();
    let start = *started.get_or_insert(now);
    if deadline.is_some_and(|d| now >= d) {
        return Err(Error::TimedOut);
    }
    // A peer that says it is leaving (or a hostile one that says so): the probe
    // decides, at the non-blocking calls' interval instead of the parked one.
    let interval = if endpoint.peer_leaving() {
        TRY_LIVENESS_INTERVAL
    } else {
        LIVENESS_INTERVAL
    };
    let check_due = endpoint
        .waiter()
        .last_check
        .is_none_or(|(last, _)| now.duration_since(last) >= interval);
    if check_due && endpoint.peer_gone(now)? {
        return Ok(Pause::PeerGone);
    }
    let park = match strategy {
        WaitStrategy::BusySpin => false,
        WaitStrategy::Park => true,
        WaitStrategy::SpinThenPark { spin } => now.duration_since(start) >= spin,
    };
    if !park {
        return Ok(Pause::Spin);
    }
    // A dead peer wakes nobody: sleep at most until the next liveness check falls
    // due (the last check plus the interval: an early wake-up must not push the
    // check back by a fresh interval), and no later than the endpoint must look
    // again. A check made by this pause is the last one (`peer_gone` records it).
    let mut until = endpoint
        .waiter()
        .last_check
        .map_or(now + interval, |(last, _)| (last + interval).max(now));
    if let Some(by) = endpoint.check_by() {
        until = until.min(by.max(now));
    }
    Ok(Pause::Park(deadline.map_or(until, |d| d.min(until))))
}

/// The futex a parked call sleeps on when its endpoint may learn of the peer's
/// departure other than by a probe: the segment's own, except that it does not
/// sleep once the peer-gone flag is set (it reports a timeout, so the caller's
/// next pause sees the flag and ends the call).
///
/// The flag's setter stores the flag, then loads the signal word and wakes a
/// registered waiter (`Channel::wake_parked`); the waiter registers on the word
/// (`prepare_wait`: `fetch_or(WAITING)` and the waiter fence), then this `wait`
/// loads the flag. The store-buffer pattern: either the waiter sees the flag, or
/// the setter sees `WAITING` and changes the word and wakes it, so no wake-up is
/// lost and a parked call ends at once, not at its next liveness probe.
///
/// A peer's clean departure works the same way with `leaving`: the peer releases
/// its claim and its lock, then wakes parked calls, and this `wait` does not sleep
/// once `leaving` says so, so the departure is seen at once (the caller's next
/// pause probes the lock).
pub(crate) struct ParkFutex<'a, L> {
    inner: SharedFutex,
    flag: Option<&'a AtomicBool>,
    leaving: L,
}

impl<L: Fn() -> bool> Futex for ParkFutex<'_, L> {
    type Deadline = Instant;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), TimedOut> {
        // SYNC: pairs with the flag setter's SeqCst store and fence (store-buffer
        // pattern, above); the waiter fence ran before this load.
        if self.flag.is_some_and(|flag| flag.load(Ordering::SeqCst)) {
            return Err(TimedOut);
        }
        // SYNC: the same pairing with the waker's fence, for the departure the
        // peer published before waking. Only a sleep planned before the departure
        // was seen (the long interval) is cut short: the pause that sees it plans a
        // short one, slept normally, so a peer that says it is leaving and stays
        // (a hostile one) costs a probe a millisecond, not a spinning core.
        if (self.leaving)() && deadline.is_none_or(|d| d > Instant::now() + TRY_LIVENESS_INTERVAL) {
            return Err(TimedOut);
        }
        self.inner.wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32) {
        self.inner.wake(word);
    }

    #[inline]
    fn waiter_fence(&self) {
        self.inner.waiter_fence();
    }

    #[inline]
    fn notifier_fence(&self) {
        self.inner.notifier_fence();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endpoint whose peer is alive, last probed `ago` before the test's pause.
    struct Probed {
        waiter: Waiter,
        probes: usize,
    }

    impl Probed {
        fn last_probed(ago: Duration) -> Self {
            let mut waiter = Waiter::new(WaitStrategy::Park);
            waiter.last_check = Some((Instant::now() - ago, false));
            Self { waiter, probes: 0 }
        }
    }

    impl Endpoint for Probed {
        fn waiter(&mut self) -> &mut Waiter {
            &mut self.waiter
        }

        fn peer_gone(&mut self, now: Instant) -> Result<bool> {
            self.probes += 1;
            self.waiter.peer_gone(now, || Ok(false))
        }
    }

    /// The bound of [`PEER_DEATH_BOUND`] (one interval): a call woken early (here
    /// 20 ms after its last probe) parks only until that probe's interval ends,
    /// not for a fresh interval (which made probes up to two intervals apart).
    #[test]
    fn a_park_ends_when_the_next_probe_falls_due() {
        let mut endpoint = Probed::last_probed(Duration::from_millis(20));
        let last = endpoint.waiter.last_check.unwrap().0;
        let mut started = None;
        match pause(&mut endpoint, 1, &mut started, None).unwrap() {
            Pause::Park(until) => assert!(
                until <= last + LIVENESS_INTERVAL,
                "parks {:?} past the last probe, more than {LIVENESS_INTERVAL:?}",
                until - last
            ),
            _ => panic!("a parking endpoint with a live peer did not park"),
        }
        assert_eq!(endpoint.probes, 0, "probed before the interval ended");
    }

    /// A pause whose probe is due makes it, then parks one interval from it.
    #[test]
    fn a_due_probe_is_made_and_the_park_runs_one_interval_from_it() {
        let mut endpoint = Probed::last_probed(LIVENESS_INTERVAL * 2);
        let before = Instant::now();
        let mut started = None;
        let pause = pause(&mut endpoint, 1, &mut started, None).unwrap();
        assert_eq!(endpoint.probes, 1);
        let probed_at = endpoint.waiter.last_check.unwrap().0;
        assert!(probed_at >= before);
        match pause {
            Pause::Park(until) => assert_eq!(until, probed_at + LIVENESS_INTERVAL),
            _ => panic!("a parking endpoint with a live peer did not park"),
        }
    }
}
