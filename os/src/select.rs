//! [`Select`]: one wait over many endpoints of any kinds, event and semaphore
//! waiters, descriptors and timers (docs/decisions/0007-select-and-async-on-readiness-descriptors.md).
//!
//! Each endpoint contributes its readiness descriptor
//! ([`ReceiveReadiness::readiness_fd`], [`SendReadiness::send_readiness_fd`]) to
//! one `epoll` instance, registered once; a wait arms every endpoint not armed
//! already (an arming stands until its descriptor is reported; one that says
//! [`Readiness::Ready`] answers without sleeping), then sleeps in
//! `epoll_wait` until a descriptor is ready, a timer is due or the deadline
//! passes. A peer's death makes its endpoint's descriptor ready (a doorbell hangs
//! up, a socket reads its end), so a wait never outlives a dead peer.
//!
//! ```no_run
//! use shmring::{ChannelBuilder, Select, TryRecvError};
//! use std::time::{Duration, Instant};
//! # fn main() -> shmring::Result<()> {
//! let (a, b) = (ChannelBuilder::shm("a").open()?, ChannelBuilder::shm("b").open()?);
//! let (mut rx_a, mut rx_b) = (a.receiver()?, b.receiver()?);
//! let mut select = Select::new()?;
//! let from_a = select.recv(&mut rx_a)?;
//! let from_b = select.recv(&mut rx_b)?;
//! let tick = select.timer(Instant::now() + Duration::from_secs(1));
//! let mut buf = [0u8; 256];
//! loop {
//!     let index = select.ready()?;
//!     if index == tick {
//!         break;
//!     }
//!     // The message may have been taken already (a spurious wake-up): Empty.
//!     match select.receiver(index).unwrap().try_recv(&mut buf) {
//!         Ok(len) => println!("{}: {:?}", if index == from_a { "a" } else { "b" }, &buf[..len]),
//!         Err(TryRecvError::Empty) => {}
//!         Err(TryRecvError::Disconnected) => select.remove(index),
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::blocking::deadline_after;
use crate::error::{Error, Result};
use crate::readiness::{ConditionReadiness, Interest, Readiness, ReceiveReadiness, SendReadiness};
use crate::sys::bell::{self, Watch};

/// One source of a [`Select`].
enum Source<'a> {
    Receiver(&'a mut (dyn ReceiveReadiness + 'a)),
    Sender {
        tx: &'a mut (dyn SendReadiness + 'a),
        len: usize,
    },
    Condition(&'a mut (dyn ConditionReadiness + 'a)),
    Fd(BorrowedFd<'a>),
    Timer(Instant),
}

/// A source and, when it has a descriptor, the `epoll` registration's own copy
/// if the descriptor was registered already (one descriptor, two sources).
struct Entry<'a> {
    source: Source<'a>,
    duplicate: Option<OwnedFd>,
    /// Armed by an earlier wait and not reported since: its arming stands (the
    /// notifier will ring it), so this wait does not arm it again.
    armed: bool,
}

/// A wait over many sources at once: receivers and senders of every kind (a
/// message, or room for one), event and semaphore waiters, plain descriptors,
/// and timers. Sources are
/// numbered in the order they are added; [`ready`](Self::ready) and its
/// deadline forms return the number of one that is ready (in turn, so that a
/// busy source cannot starve the others), [`all_ready`](Self::all_ready) all
/// that the last wait found.
///
/// "Ready" means "try now": a receive may still find nothing (another reader
/// took the message, or the wake-up was spurious), and then the next wait arms
/// again. A source whose peer has gone stays ready (its next call says
/// `Disconnected`): [`remove`](Self::remove) it.
pub struct Select<'a> {
    epoll: OwnedFd,
    entries: Vec<Option<Entry<'a>>>,
    ready: Vec<usize>,
    events: Vec<(u64, bool)>,
    /// Where the next turn starts looking.
    turn: usize,
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("sources", &self.entries.iter().flatten().count())
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

fn io(call: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::io(call, "select", e)
}

impl<'a> Select<'a> {
    /// An empty wait set (one `epoll` instance).
    ///
    /// # Errors
    /// [`Error::Io`] if `epoll_create1` fails (out of descriptors).
    pub fn new() -> Result<Self> {
        Ok(Self {
            epoll: bell::epoll_create().map_err(io("epoll_create1"))?,
            entries: Vec::new(),
            ready: Vec::new(),
            events: Vec::new(),
            turn: 0,
        })
    }

    /// Adds a receiver: ready when a message (or its peer's departure) is there.
    /// Returns its number.
    ///
    /// # Errors
    /// [`Error::Io`] if `epoll_ctl` fails.
    pub fn recv(&mut self, rx: &'a mut (dyn ReceiveReadiness + 'a)) -> Result<usize> {
        let duplicate = self.register(rx.readiness_fd(), Interest::Readable)?;
        Ok(self.push(Source::Receiver(rx), duplicate))
    }

    /// Adds a sender: ready when a message of `len` bytes fits (or the receiver
    /// has gone). Returns its number.
    ///
    /// # Errors
    /// [`Error::Io`] if `epoll_ctl` fails.
    pub fn send(&mut self, tx: &'a mut (dyn SendReadiness + 'a), len: usize) -> Result<usize> {
        let duplicate = self.register(tx.send_readiness_fd(), tx.send_interest())?;
        Ok(self.push(Source::Sender { tx, len }, duplicate))
    }

    /// Adds an event's or a semaphore's waiter
    /// ([`EventWaiter`](crate::EventWaiter), [`SemaphoreWaiter`](crate::SemaphoreWaiter)):
    /// ready when a notification past its key was made, or a unit is there.
    /// Returns its number.
    ///
    /// # Errors
    /// [`Error::Io`] if `epoll_ctl` fails.
    pub fn waiter(&mut self, waiter: &'a mut (dyn ConditionReadiness + 'a)) -> Result<usize> {
        let duplicate = self.register(waiter.readiness_fd(), Interest::Readable)?;
        Ok(self.push(Source::Condition(waiter), duplicate))
    }

    /// Adds a plain descriptor, ready when it shows `interest` (or hangs up or
    /// fails). Returns its number.
    ///
    /// # Errors
    /// [`Error::Io`] if `epoll_ctl` fails (a descriptor `epoll` cannot watch,
    /// such as a regular file: `EPERM`).
    pub fn fd(&mut self, fd: BorrowedFd<'a>, interest: Interest) -> Result<usize> {
        let duplicate = self.register(fd, interest)?;
        Ok(self.push(Source::Fd(fd), duplicate))
    }

    /// Adds a timer, ready from `at` on (until removed). Returns its number.
    pub fn timer(&mut self, at: Instant) -> usize {
        self.push(Source::Timer(at), None)
    }

    /// Adds a timer ready `after` from now. Returns its number.
    pub fn timer_after(&mut self, after: Duration) -> usize {
        self.timer(deadline_after(after).unwrap_or_else(far_future))
    }

    /// Moves timer `index` to `at` (a periodic tick re-arms itself so).
    ///
    /// # Panics
    /// If `index` is not a timer of this set.
    pub fn reset_timer(&mut self, index: usize, at: Instant) {
        match self.entries.get_mut(index).and_then(Option::as_mut) {
            Some(Entry {
                source: Source::Timer(when),
                ..
            }) => *when = at,
            _ => panic!("source {index} is not a timer of this Select"),
        }
    }

    /// Removes source `index` (its number is not reused); nothing if it was
    /// removed already.
    pub fn remove(&mut self, index: usize) {
        let Some(entry) = self.entries.get_mut(index).and_then(Option::take) else {
            return;
        };
        let fd = match &entry.source {
            Source::Receiver(rx) => Some(rx.readiness_fd()),
            Source::Sender { tx, .. } => Some(tx.send_readiness_fd()),
            Source::Condition(waiter) => Some(waiter.readiness_fd()),
            Source::Fd(fd) => Some(*fd),
            Source::Timer(_) => None,
        };
        match (&entry.duplicate, fd) {
            (Some(dup), _) => bell::epoll_forget(self.epoll.as_fd(), dup.as_fd()),
            (None, Some(fd)) => bell::epoll_forget(self.epoll.as_fd(), fd),
            (None, None) => {}
        }
        self.ready.retain(|&i| i != index);
    }

    /// The receiver added as `index`, to act on it after a wait; `None` if
    /// `index` is not a receiver of this set.
    pub fn receiver(&mut self, index: usize) -> Option<&mut (dyn ReceiveReadiness + 'a)> {
        match self.entries.get_mut(index)?.as_mut()?.source {
            Source::Receiver(ref mut rx) => Some(&mut **rx),
            _ => None,
        }
    }

    /// The sender added as `index`; `None` if `index` is not a sender of this
    /// set.
    pub fn sender(&mut self, index: usize) -> Option<&mut (dyn SendReadiness + 'a)> {
        match self.entries.get_mut(index)?.as_mut()?.source {
            Source::Sender { ref mut tx, .. } => Some(&mut **tx),
            _ => None,
        }
    }

    /// The event's or semaphore's waiter added as `index`; `None` if `index` is
    /// not a waiter of this set.
    pub fn condition(&mut self, index: usize) -> Option<&mut (dyn ConditionReadiness + 'a)> {
        match self.entries.get_mut(index)?.as_mut()?.source {
            Source::Condition(ref mut waiter) => Some(&mut **waiter),
            _ => None,
        }
    }

    /// Waits as long as it takes for a source to be ready; returns its number.
    ///
    /// # Errors
    /// As [`ready_deadline`](Self::ready_deadline), without `TimedOut`.
    pub fn ready(&mut self) -> Result<usize> {
        self.ready_deadline(None)
    }

    /// Waits `timeout` at most.
    ///
    /// # Errors
    /// As [`ready_deadline`](Self::ready_deadline).
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize> {
        self.ready_deadline(deadline_after(timeout))
    }

    /// Waits until a source is ready, or `deadline` (`None`: no limit); returns
    /// the number of one that is ready, taking the ready ones in turn from one
    /// wait to the next. [`all_ready`](Self::all_ready) then lists every source
    /// this wait found ready.
    ///
    /// # Errors
    /// [`Error::TimedOut`] at the deadline; [`Error::NothingToWaitFor`] if the
    /// set has no source and no deadline (it would wait for ever); a source's
    /// arming error ([`Error::Corrupted`], [`Error::MessageTooLarge`],
    /// [`Error::Io`]); [`Error::Io`] if `epoll_wait` fails.
    pub fn ready_deadline(&mut self, deadline: Option<Instant>) -> Result<usize> {
        if deadline.is_none() && self.entries.iter().all(Option::is_none) {
            return Err(Error::NothingToWaitFor);
        }
        loop {
            self.collect(deadline)?;
            if let Some(index) = self.next_in_turn() {
                return Ok(index);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::TimedOut);
            }
        }
    }

    /// Every source the last wait found ready, in number order.
    pub fn all_ready(&self) -> &[usize] {
        &self.ready
    }

    /// One pass: arms the endpoints not armed already, then waits in `epoll`
    /// (not at all if one is ready already, or a timer is due) and fills
    /// `self.ready`.
    fn collect(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.ready.clear();
        let now = Instant::now();
        let mut wake_at = deadline;
        for (index, entry) in self.entries.iter_mut().enumerate() {
            let Some(entry) = entry else { continue };
            let armed = match &mut entry.source {
                _ if entry.armed => None,
                Source::Receiver(rx) => Some(rx.arm_for_message()?),
                Source::Sender { tx, len } => Some(tx.arm_for_space(*len)?),
                Source::Condition(waiter) => Some(waiter.arm()?),
                Source::Fd(_) => None,
                Source::Timer(at) => {
                    wake_at = Some(wake_at.map_or(*at, |w| w.min(*at)));
                    if *at <= now {
                        self.ready.push(index);
                    }
                    None
                }
            };
            match armed {
                Some(Readiness::Ready) => self.ready.push(index),
                Some(Readiness::Armed) => entry.armed = true,
                None => {}
            }
        }
        // Ready already: only look (timeout 0) for descriptors that are too.
        let until = if self.ready.is_empty() {
            wake_at
        } else {
            Some(now)
        };
        bell::epoll_wait(self.epoll.as_fd(), until, &mut self.events).map_err(io("epoll_wait"))?;
        for &(token, _) in &self.events {
            let index = usize::try_from(token).unwrap_or(usize::MAX);
            if let Some(Some(entry)) = self.entries.get_mut(index) {
                // Rung (or hung up): its arming is spent; the next wait arms it.
                entry.armed = false;
                self.ready.push(index);
            }
        }
        let now = Instant::now();
        for (index, entry) in self.entries.iter().enumerate() {
            if let Some(Entry {
                source: Source::Timer(at),
                ..
            }) = entry
            {
                if *at <= now {
                    self.ready.push(index);
                }
            }
        }
        self.ready.sort_unstable();
        self.ready.dedup();
        Ok(())
    }

    /// The first ready source at or after the turn, which then moves past it.
    fn next_in_turn(&mut self) -> Option<usize> {
        let index = self
            .ready
            .iter()
            .copied()
            .find(|&i| i >= self.turn)
            .or_else(|| self.ready.first().copied())?;
        self.turn = index + 1;
        Some(index)
    }

    fn push(&mut self, source: Source<'a>, duplicate: Option<OwnedFd>) -> usize {
        self.entries.push(Some(Entry {
            source,
            duplicate,
            armed: false,
        }));
        self.entries.len() - 1
    }

    /// Registers `fd` under the next source's number; a descriptor registered
    /// already (the same endpoint twice, or a connection's two halves sharing
    /// a socket) is registered through a duplicate, returned to be kept.
    fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<Option<OwnedFd>> {
        let token = self.entries.len() as u64;
        let watch = match interest {
            Interest::Readable => Watch::Readable,
            Interest::Writable => Watch::Writable,
        };
        match bell::epoll_watch(self.epoll.as_fd(), fd, token, watch, false) {
            Ok(()) => Ok(None),
            Err(e) if e.raw_os_error() == Some(Errno::EXIST.raw_os_error()) => {
                let duplicate = rustix::io::fcntl_dupfd_cloexec(fd, 0)
                    .map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", "select", e.into()))?;
                bell::epoll_watch(self.epoll.as_fd(), duplicate.as_fd(), token, watch, false)
                    .map_err(io("epoll_ctl"))?;
                Ok(Some(duplicate))
            }
            Err(e) => Err(io("epoll_ctl")(e)),
        }
    }
}

/// An instant no wait reaches (a timeout too long to represent).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
