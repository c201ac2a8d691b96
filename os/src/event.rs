//! Named events between processes: an eventcount over one futex word in shared
//! memory.
//!
//! # Semantics
//!
//! An [`Event`] is a *notification*, like a condition variable and unlike a
//! latching Windows event: it stores nothing but a sequence number that every
//! notification advances.
//!
//! - [`notify_one`](Event::notify_one) and [`notify_all`](Event::notify_all) advance
//!   the sequence. With nobody waiting they cost one atomic add, a fence and a
//!   load, and store nothing: a later [`wait`](Event::wait) does not see them.
//! - A notification publishes what the notifier wrote before it: a waiter that
//!   returns `Ok`, or sees [`is_notified_since`](Event::is_notified_since) true,
//!   or checks its condition after [`prepare`](Event::prepare) and finds the
//!   notification already counted in its key, sees those writes (Release and
//!   Acquire; the protocol is `shmring_core::object::event`).
//! - A wait returns `Ok` only once the sequence differs from its *key*: the value
//!   the sequence had when the wait began ([`wait`](Event::wait)) or when the caller
//!   took the key ([`prepare`](Event::prepare), then
//!   [`wait_from`](Event::wait_from)). So `Ok` always means "a notification was
//!   made after the key was taken": spurious futex wake-ups and signals are waited
//!   through, never reported. A notification made between `prepare` and
//!   `wait_from` is not lost: `wait_from` returns at once.
//! - `notify_all` releases every waiter whose key it postdates, in every process.
//! - `notify_one` releases *at least one* such waiter if any is waiting (as
//!   `pthread_cond_signal` does): the kernel wakes one sleeping waiter
//!   (`FUTEX_WAKE` of 1), but a waiter whose key it also postdates and that had not
//!   gone to sleep yet, or that wakes for another reason (a signal), returns too.
//! - The sequence is 32 bits: a waiter that sleeps through exactly a multiple of
//!   2^32 notifications misses them (it sees its key again).
//!
//! Any process that can write the segment can notify (writing the word is a
//! notification), so a hostile peer can wake waiters early, never keep them past
//! their deadline, and never make them touch memory out of bounds.
//!
//! ```no_run
//! use shmring::EventBuilder;
//! # fn ready() -> bool { true }
//! # fn main() -> shmring::Result<()> {
//! // Process A
//! let event = EventBuilder::shm("config-changed").create()?;
//! event.notify_all();
//! // Process B: a wait that cannot miss a notification made after `ready()` was
//! // found false.
//! let event = EventBuilder::shm("config-changed").open()?;
//! let key = event.prepare();
//! if !ready() {
//!     event.wait_from_timeout(key, std::time::Duration::from_secs(1))?;
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use shmring_core::layout::OBJECT_KIND_EVENT;
use shmring_core::object::event::{self as protocol, Wake};

use crate::blocking::deadline_after;
use crate::error::{Error, Result};
use crate::futex::SharedFutex;
use crate::options::SegmentBuilder;
use crate::readiness::Readiness;
use crate::readiness::objects::{Condition, ObjectBell};
use crate::segment::{Backing, SegmentOptions};
use crate::sync_object::{
    ObjectSegment, ObjectWords, create_object, debug_object, open_object, open_object_fd,
};

/// Creates or opens a named [`Event`]: its backing here; permissions and cleanup
/// through [`SegmentBuilder`], with the channels' rules.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    options: SegmentOptions,
}

impl SegmentBuilder for EventBuilder {
    fn options(&self) -> &SegmentOptions {
        &self.options
    }

    fn options_mut(&mut self) -> &mut SegmentOptions {
        &mut self.options
    }
}

impl EventBuilder {
    fn new(backing: Backing) -> Self {
        Self {
            options: SegmentOptions::new(backing),
        }
    }

    /// An event in named POSIX shared memory (`/dev/shm/shmring.<name>`), with the
    /// channels' name rules.
    pub fn shm(name: impl Into<String>) -> Self {
        Self::new(Backing::Shm(name.into()))
    }

    /// An event in a regular file at `path`.
    pub fn file(path: impl Into<std::path::PathBuf>) -> Self {
        Self::new(Backing::File(path.into()))
    }

    /// An event in an anonymous memfd, sealed against resizing, for a child
    /// process (pass [`Event::fd`]) or a peer reached over a Unix socket; the
    /// other side opens it with [`from_fd`](Self::from_fd).
    pub fn memfd() -> Self {
        Self::new(Backing::Memfd)
    }

    /// Creates the event (sequence zero, nobody waiting).
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::PermissionDenied`],
    /// [`Error::NoSpace`], [`Error::NotFound`] (a file's directory is missing), or
    /// [`Error::Io`].
    pub fn create(&self) -> Result<Event> {
        Ok(Event {
            segment: create_object(&self.options, OBJECT_KIND_EVENT, 0, 0)?,
        })
    }

    /// Opens an existing event and validates it (owner, mode, size, then every
    /// header field; a semaphore or a channel of that name is refused).
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::Untrusted`], [`Error::BadSize`], [`Error::IncompatibleLayout`]
    /// (another kind of object, another layout version), [`Error::Corrupted`], or
    /// [`Error::Io`].
    pub fn open(&self) -> Result<Event> {
        Ok(Event {
            segment: open_object(&self.options, OBJECT_KIND_EVENT)?,
        })
    }

    /// Opens the event, or creates it if there is none: for two processes started
    /// in any order. Race-free: of processes racing, exactly one creates
    /// (exclusively) and the others open what it made, waiting for it if they
    /// catch it half-way. A memfd event is created.
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the existing object is not an event of this
    /// layout version (`field` `"kind"` or `"layout version"`); else as
    /// [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create(&self) -> Result<Event> {
        crate::options::open_or_create(
            &self.options,
            OBJECT_KIND_EVENT,
            || self.open(),
            || self.create(),
            |event| event.segment.describe().to_owned(),
            |_| Vec::new(),
        )
    }

    /// Opens the event behind `fd`, handed over by a parent or a peer (a memfd
    /// from [`EventBuilder::memfd`]): sizes, seals and header are checked, owner
    /// and mode are not.
    ///
    /// # Errors
    /// [`Error::BadSize`], [`Error::Io`], [`Error::IncompatibleLayout`],
    /// [`Error::Corrupted`].
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Event> {
        Ok(Event {
            segment: open_object_fd(&self.options, fd, OBJECT_KIND_EVENT)?,
        })
    }
}

/// What [`Event::prepare`] returns: the sequence number a later
/// [`Event::wait_from`] waits to see change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "pass the key to wait_from"]
pub struct EventKey(u32);

impl EventKey {
    /// The sequence number the key holds (for a C caller or a message).
    pub fn to_raw(self) -> u32 {
        self.0
    }

    /// A key from a sequence number [`to_raw`](Self::to_raw) gave.
    pub fn from_raw(sequence: u32) -> Self {
        Self(sequence)
    }
}

/// A named event in shared memory: notify one or all waiters, in any process.
/// Cloning makes another handle on the same mapping. See the [module](self) docs
/// for the exact semantics.
#[derive(Clone)]
pub struct Event {
    segment: ObjectSegment,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_object(f, "Event", &self.segment)
    }
}

impl Event {
    fn words(&self) -> &ObjectWords {
        self.segment.contents().words()
    }

    /// Wakes at least one waiter whose key this call postdates (the kernel wakes
    /// one sleeper); with nobody waiting, nothing happens and nothing is stored.
    /// No system call when no waiter is registered.
    pub fn notify_one(&self) {
        protocol::notify(self.words(), &SharedFutex::default(), Wake::One);
    }

    /// Wakes every waiter whose key this call postdates, in every process. No
    /// system call when no waiter is registered.
    pub fn notify_all(&self) {
        protocol::notify(self.words(), &SharedFutex::default(), Wake::All);
    }

    /// The sequence now, as a key: a later [`wait_from`](Self::wait_from) returns
    /// once a notification has been made after this call.
    pub fn prepare(&self) -> EventKey {
        EventKey(protocol::key(self.words()))
    }

    /// Waits for the next notification (one made after this call starts).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for a corrupted object.
    pub fn wait(&self) -> Result<()> {
        self.wait_from_deadline(self.prepare(), None)
    }

    /// As [`wait`](Self::wait), for at most `timeout`.
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `timeout` has passed without a notification.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_from_deadline(self.prepare(), deadline_after(timeout))
    }

    /// As [`wait`](Self::wait), until `deadline` at most (`None`: as long as it
    /// takes).
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `deadline` has passed without a notification.
    pub fn wait_deadline(&self, deadline: Option<Instant>) -> Result<()> {
        self.wait_from_deadline(self.prepare(), deadline)
    }

    /// Waits until a notification made after `key` was taken: returns at once if
    /// one was made already.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for a corrupted object.
    pub fn wait_from(&self, key: EventKey) -> Result<()> {
        self.wait_from_deadline(key, None)
    }

    /// As [`wait_from`](Self::wait_from), for at most `timeout`.
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `timeout` has passed without a notification.
    pub fn wait_from_timeout(&self, key: EventKey, timeout: Duration) -> Result<()> {
        self.wait_from_deadline(key, deadline_after(timeout))
    }

    /// As [`wait_from`](Self::wait_from), until `deadline` at most (`None`: as
    /// long as it takes).
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `deadline` has passed without a notification.
    pub fn wait_from_deadline(&self, key: EventKey, deadline: Option<Instant>) -> Result<()> {
        protocol::wait_from(self.words(), key.0, &SharedFutex::default(), deadline)
            .map_err(|_| Error::TimedOut)
    }

    /// Whether a notification was made after `key` was taken (never blocks).
    pub fn is_notified_since(&self, key: EventKey) -> bool {
        protocol::is_notified_since(self.words(), key.0)
    }

    /// How many callers are registered to wait, in every process (a snapshot; a
    /// waiter killed while waiting stays counted, which costs notifiers only a
    /// system call).
    pub fn waiters(&self) -> u32 {
        shmring_core::object::waiters(self.words())
    }

    /// The event segment's descriptor: to pass to a child or a peer, which opens it
    /// with [`EventBuilder::from_fd`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.fd()
    }

    /// What the event is, for messages: `shm segment "name"`, `file /path` or
    /// `memfd`.
    pub fn describe(&self) -> &str {
        self.segment.describe()
    }

    /// A waiter an event loop can wait on ([`Select`](crate::Select), an async
    /// runtime) for the notifications made from now on: see [`EventWaiter`].
    ///
    /// # Errors
    /// [`Error::Io`] if its pipe cannot be made (out of descriptors).
    pub fn waiter(&self) -> Result<EventWaiter> {
        Ok(EventWaiter {
            key: self.prepare(),
            event: self.clone(),
            bell: ObjectBell::new().map_err(|e| Error::io("pipe", self.describe(), e))?,
        })
    }
}

/// A waiter on an [`Event`] with a readiness descriptor of its own, for an
/// event loop: it waits for a notification made after its key (taken when it
/// was made, and moved on by [`take_notification`](Self::take_notification)).
///
/// The loop: [`arm`](Self::arm); on [`Readiness::Armed`] wait until
/// [`readiness_fd`](Self::readiness_fd) is readable;
/// [`take_notification`](Self::take_notification) (true: act on it; false: a
/// spurious wake-up); arm again. Notifications made between two takes are seen
/// as one, as by a waiter that was busy. One thread per process
/// (`shmring-objects`, started at the first arming) waits for every armed
/// event and semaphore of the process in `futex_waitv` and rings the
/// descriptor (decision 0007).
pub struct EventWaiter {
    event: Event,
    key: EventKey,
    bell: ObjectBell,
}

impl fmt::Debug for EventWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWaiter")
            .field("event", &self.event)
            .field("key", &self.key)
            .field("bell", &self.bell)
            .finish()
    }
}

impl EventWaiter {
    /// The descriptor to wait on (readable after a notification past the key,
    /// once armed). Do not read it: arming drains it.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.bell.fd()
    }

    /// [`Readiness::Ready`] if a notification was made after the key, else
    /// [`Readiness::Armed`]: the descriptor becomes readable on the next one.
    /// Never blocks.
    ///
    /// # Errors
    /// [`Error::Io`] if the doorbell cannot be read or the process's
    /// `shmring-objects` thread cannot start.
    pub fn arm(&mut self) -> Result<Readiness> {
        let (event, key) = (&self.event, self.key);
        let holds = self
            .bell
            .arm(&event.segment, Condition::NotifiedSince(key.0), || {
                event.is_notified_since(key)
            })
            .map_err(|e| Error::io("arm", event.describe(), e))?;
        Ok(if holds {
            Readiness::Ready
        } else {
            Readiness::Armed
        })
    }

    /// Whether a notification was made after the key; if so, the key moves to
    /// now (the next take waits for a later one).
    pub fn take_notification(&mut self) -> bool {
        let now = self.event.prepare();
        let notified = now != self.key;
        self.key = now;
        notified
    }

    /// The key the waiter waits past.
    pub fn key(&self) -> EventKey {
        self.key
    }

    /// Waits past `key` instead (one taken by [`Event::prepare`] before the
    /// caller checked its condition). Takes effect at the next arming.
    pub fn set_key(&mut self, key: EventKey) {
        self.key = key;
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }
}
