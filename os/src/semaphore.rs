//! Named counting semaphores between processes: a count in one futex word in
//! shared memory.
//!
//! # Semantics
//!
//! - [`post`](Semaphore::post) adds one to the count and wakes one sleeping waiter
//!   (`FUTEX_WAKE` of 1), with no system call when nobody waits. A post that would
//!   take the count past the semaphore's maximum (set at creation, at most
//!   [`SEMAPHORE_MAX_LIMIT`] = `i32::MAX`) fails with [`Error::CountOverflow`] and
//!   changes nothing.
//! - [`try_wait`](Semaphore::try_wait) takes one unit if the count is non-zero, else
//!   fails with [`Error::Empty`]; [`wait`](Semaphore::wait) and its `_timeout` and
//!   `_deadline` variants sleep until a unit can be taken or the deadline passes
//!   ([`Error::TimedOut`]).
//! - What a process wrote before a `post` is visible to the caller that takes
//!   that unit (Release and Acquire; the protocol is
//!   `shmring_core::object::semaphore`).
//! - Process death: a unit taken by a process that dies is **not** given back (as
//!   with POSIX semaphores): the count only changes by `post` and `wait`. A waiter
//!   killed while waiting takes nothing.
//! - Trust: the count is read once per attempt and checked against the maximum
//!   read from the header at open; a count above it (a hostile or buggy peer) is
//!   reported as [`Error::Corrupted`] with [`Corrupted::CountOutOfRange`], never
//!   wrapped or waited on. A compare-and-swap that keeps failing (a peer flipping
//!   the word) gives up after [`MAX_ATTEMPTS`] turns with
//!   [`Corrupted::WordUnstable`], and a blocking call never stays past its
//!   deadline.
//!
//! ```no_run
//! use shmring::SemaphoreBuilder;
//! # fn main() -> shmring::Result<()> {
//! // Process A: four slots.
//! let slots = SemaphoreBuilder::shm("gpu-slots").initial(4).create()?;
//! // Process B
//! let slots = SemaphoreBuilder::shm("gpu-slots").open()?;
//! slots.wait_timeout(std::time::Duration::from_secs(1))?;
//! // ... use the slot ...
//! slots.post()?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use shmring_core::layout::OBJECT_KIND_SEMAPHORE;
pub use shmring_core::object::layout::SEMAPHORE_MAX_LIMIT;
pub use shmring_core::object::semaphore::MAX_ATTEMPTS;
use shmring_core::object::semaphore::{self as protocol, SemaphoreError};

use crate::blocking::deadline_after;
use crate::error::{Corrupted, Error, Result};
use crate::futex::SharedFutex;
use crate::options::{Compared, SegmentBuilder};
use crate::readiness::Readiness;
use crate::readiness::objects::{Condition, ObjectBell};
use crate::segment::{Backing, SegmentOptions};
use crate::sync_object::{
    ObjectSegment, ObjectWords, create_object, debug_object, open_object, open_object_fd,
};

/// Creates or opens a named [`Semaphore`]: its backing, initial count and maximum
/// here; permissions and cleanup through [`SegmentBuilder`], with the channels'
/// rules.
#[derive(Debug, Clone)]
pub struct SemaphoreBuilder {
    options: SegmentOptions,
    initial: u32,
    max: u32,
}

impl SegmentBuilder for SemaphoreBuilder {
    fn options(&self) -> &SegmentOptions {
        &self.options
    }

    fn options_mut(&mut self) -> &mut SegmentOptions {
        &mut self.options
    }
}

impl SemaphoreBuilder {
    fn new(backing: Backing) -> Self {
        Self {
            options: SegmentOptions::new(backing),
            initial: 0,
            max: SEMAPHORE_MAX_LIMIT,
        }
    }

    /// A semaphore in named POSIX shared memory (`/dev/shm/shmring.<name>`), with
    /// the channels' name rules.
    pub fn shm(name: impl Into<String>) -> Self {
        Self::new(Backing::Shm(name.into()))
    }

    /// A semaphore in a regular file at `path`: its count survives every process.
    pub fn file(path: impl Into<std::path::PathBuf>) -> Self {
        Self::new(Backing::File(path.into()))
    }

    /// A semaphore in an anonymous memfd, sealed against resizing, for a child
    /// process (pass [`Semaphore::fd`]) or a peer reached over a Unix socket; the
    /// other side opens it with [`from_fd`](Self::from_fd).
    pub fn memfd() -> Self {
        Self::new(Backing::Memfd)
    }

    /// The count a created semaphore starts with (default 0).
    pub fn initial(mut self, count: u32) -> Self {
        self.initial = count;
        self
    }

    /// The largest count a created semaphore may hold, 1 to
    /// [`SEMAPHORE_MAX_LIMIT`] (default: the limit). A post past it fails.
    pub fn max(mut self, max: u32) -> Self {
        self.max = max;
        self
    }

    /// Creates the semaphore with the initial count.
    ///
    /// # Errors
    /// [`Error::CountOverflow`] (before any system call) if the initial count is
    /// over the maximum, or the maximum is 0 or over [`SEMAPHORE_MAX_LIMIT`];
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::PermissionDenied`],
    /// [`Error::NoSpace`], [`Error::NotFound`] (a file's directory is missing), or
    /// [`Error::Io`].
    pub fn create(&self) -> Result<Semaphore> {
        let what = || match &self.options.backing {
            Backing::Shm(name) => format!("shm segment {name:?}"),
            Backing::File(path) => format!("file {}", path.display()),
            Backing::Memfd => "memfd".to_owned(),
        };
        if self.max == 0 || self.max > SEMAPHORE_MAX_LIMIT {
            return Err(Error::CountOverflow {
                what: what(),
                count: self.max.into(),
                max: SEMAPHORE_MAX_LIMIT,
            });
        }
        if self.initial > self.max {
            return Err(Error::CountOverflow {
                what: what(),
                count: self.initial.into(),
                max: self.max,
            });
        }
        let segment = create_object(&self.options, OBJECT_KIND_SEMAPHORE, self.max, self.initial)?;
        Ok(Semaphore::new(segment))
    }

    /// Opens an existing semaphore and validates it (owner, mode, size, then
    /// every header field; an event or a channel of that name is refused). The
    /// builder's initial count and maximum are not used: the semaphore's own are.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::Untrusted`], [`Error::BadSize`], [`Error::IncompatibleLayout`]
    /// (another kind of object, another layout version), [`Error::Corrupted`], or
    /// [`Error::Io`].
    pub fn open(&self) -> Result<Semaphore> {
        Ok(Semaphore::new(open_object(
            &self.options,
            OBJECT_KIND_SEMAPHORE,
        )?))
    }

    /// Opens the semaphore, or creates it with the initial count if there is
    /// none: for two processes started in any order. Race-free: of processes
    /// racing, exactly one creates (exclusively) and the others open what it
    /// made, waiting for it if they catch it half-way. A memfd semaphore is
    /// created. An opened semaphore keeps its count (the initial count is not
    /// compared).
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the existing object is not a semaphore of this
    /// layout version (`field` `"kind"` or `"layout version"`) or its maximum is
    /// not this builder's (`"max_count"`); else as [`open`](Self::open) and
    /// [`create`](Self::create).
    pub fn open_or_create(&self) -> Result<Semaphore> {
        crate::options::open_or_create(
            &self.options,
            OBJECT_KIND_SEMAPHORE,
            || self.open(),
            || self.create(),
            |semaphore| semaphore.segment.describe().to_owned(),
            |semaphore| {
                vec![Compared::new(
                    "max_count",
                    self.max.into(),
                    semaphore.max().into(),
                )]
            },
        )
    }

    /// Opens the semaphore behind `fd`, handed over by a parent or a peer (a memfd
    /// from [`SemaphoreBuilder::memfd`]): sizes, seals and header are checked,
    /// owner and mode are not.
    ///
    /// # Errors
    /// [`Error::BadSize`], [`Error::Io`], [`Error::IncompatibleLayout`],
    /// [`Error::Corrupted`].
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Semaphore> {
        Ok(Semaphore::new(open_object_fd(
            &self.options,
            fd,
            OBJECT_KIND_SEMAPHORE,
        )?))
    }
}

/// A named counting semaphore in shared memory. Cloning makes another handle on
/// the same mapping. See the [module](self) docs for the exact semantics.
#[derive(Clone)]
pub struct Semaphore {
    segment: ObjectSegment,
    max: u32,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_object(f, "Semaphore", &self.segment)
    }
}

impl Semaphore {
    fn new(segment: ObjectSegment) -> Self {
        let max = segment.contents().max_count();
        Self { segment, max }
    }

    fn words(&self) -> &ObjectWords {
        self.segment.contents().words()
    }

    /// An error of core's protocol as this crate's.
    fn error(&self, e: SemaphoreError) -> Error {
        let what = self.segment.describe().to_owned();
        match e {
            SemaphoreError::Empty => Error::Empty,
            SemaphoreError::TimedOut => Error::TimedOut,
            SemaphoreError::Full { max } => Error::CountOverflow {
                what,
                count: u64::from(max) + 1,
                max,
            },
            SemaphoreError::CountOutOfRange { found, max } => Error::Corrupted {
                what,
                detail: Corrupted::CountOutOfRange { found, max },
            },
            SemaphoreError::Unstable { attempts } => Error::Corrupted {
                what,
                detail: Corrupted::WordUnstable {
                    word: "semaphore count",
                    attempts,
                },
            },
        }
    }

    /// Adds one to the count and wakes one waiter (no system call when nobody
    /// waits).
    ///
    /// # Errors
    /// [`Error::CountOverflow`] if the count is at the maximum (nothing changes);
    /// [`Error::Corrupted`] if the count word is out of range or keeps changing.
    pub fn post(&self) -> Result<()> {
        protocol::post(self.words(), self.max, &SharedFutex::default()).map_err(|e| self.error(e))
    }

    /// Takes one unit if the count is non-zero; never blocks.
    ///
    /// # Errors
    /// [`Error::Empty`] if the count is zero; [`Error::Corrupted`] if the count
    /// word is out of range or keeps changing.
    pub fn try_wait(&self) -> Result<()> {
        protocol::try_take(self.words(), self.max).map_err(|e| self.error(e))
    }

    /// Takes one unit, sleeping while the count is zero.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the count word is out of range or keeps changing.
    pub fn wait(&self) -> Result<()> {
        self.wait_deadline(None)
    }

    /// As [`wait`](Self::wait), for at most `timeout`.
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `timeout` has passed with the count at zero; as
    /// [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_deadline(deadline_after(timeout))
    }

    /// As [`wait`](Self::wait), until `deadline` at most (`None`: as long as it
    /// takes).
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `deadline` has passed with the count at zero; as
    /// [`wait`](Self::wait).
    pub fn wait_deadline(&self, deadline: Option<Instant>) -> Result<()> {
        protocol::wait(self.words(), self.max, &SharedFutex::default(), deadline)
            .map_err(|e| self.error(e))
    }

    /// The count now (a snapshot).
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the count word is over the maximum.
    pub fn value(&self) -> Result<u32> {
        protocol::value(self.words(), self.max).map_err(|e| self.error(e))
    }

    /// The maximum count, read from the header when the semaphore was opened.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// How many callers are registered to wait, in every process (a snapshot; a
    /// waiter killed while waiting stays counted, which costs posters only a
    /// system call).
    pub fn waiters(&self) -> u32 {
        shmring_core::object::waiters(self.words())
    }

    /// The semaphore segment's descriptor: to pass to a child or a peer, which
    /// opens it with [`SemaphoreBuilder::from_fd`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.fd()
    }

    /// What the semaphore is, for messages: `shm segment "name"`, `file /path` or
    /// `memfd`.
    pub fn describe(&self) -> &str {
        self.segment.describe()
    }

    /// A waiter an event loop can wait on ([`Select`](crate::Select), an async
    /// runtime) for a unit: see [`SemaphoreWaiter`].
    ///
    /// # Errors
    /// [`Error::Io`] if its pipe cannot be made (out of descriptors).
    pub fn waiter(&self) -> Result<SemaphoreWaiter> {
        Ok(SemaphoreWaiter {
            semaphore: self.clone(),
            bell: ObjectBell::new().map_err(|e| Error::io("pipe", self.describe(), e))?,
        })
    }
}

/// A waiter on a [`Semaphore`] with a readiness descriptor of its own, for an
/// event loop.
///
/// The loop: [`try_wait`](Self::try_wait) until
/// [`Error::Empty`]; [`arm`](Self::arm); on [`Readiness::Armed`] wait until
/// [`readiness_fd`](Self::readiness_fd) is readable; try again (another waiter
/// may have taken the unit: arm again). The process's `shmring-objects` thread
/// rings the descriptor (as for [`EventWaiter`](crate::EventWaiter)), and passes
/// on a `post`'s wake-up that it took, so that a blocked `wait` elsewhere is not
/// left asleep behind an armed waiter that did not take the unit.
pub struct SemaphoreWaiter {
    semaphore: Semaphore,
    bell: ObjectBell,
}

impl fmt::Debug for SemaphoreWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreWaiter")
            .field("semaphore", &self.semaphore)
            .field("bell", &self.bell)
            .finish()
    }
}

impl SemaphoreWaiter {
    /// The descriptor to wait on (readable once the count is non-zero, when
    /// armed). Do not read it: arming drains it.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.bell.fd()
    }

    /// [`Readiness::Ready`] if the count is non-zero now, else
    /// [`Readiness::Armed`]: the descriptor becomes readable when a unit is
    /// posted. Never blocks.
    ///
    /// # Errors
    /// [`Error::Corrupted`] if the count word is out of range; [`Error::Io`] if
    /// the doorbell cannot be read or the process's `shmring-objects` thread
    /// cannot start.
    pub fn arm(&mut self) -> Result<Readiness> {
        let semaphore = &self.semaphore;
        if semaphore.value()? != 0 {
            return Ok(Readiness::Ready);
        }
        let holds = self
            .bell
            .arm(&semaphore.segment, Condition::UnitAvailable, || {
                semaphore.value().map_or(true, |count| count != 0)
            })
            .map_err(|e| Error::io("arm", semaphore.describe(), e))?;
        Ok(if holds {
            Readiness::Ready
        } else {
            Readiness::Armed
        })
    }

    /// Takes one unit if the count is non-zero ([`Semaphore::try_wait`]).
    ///
    /// # Errors
    /// As [`Semaphore::try_wait`].
    pub fn try_wait(&mut self) -> Result<()> {
        self.semaphore.try_wait()
    }

    /// The semaphore.
    pub fn semaphore(&self) -> &Semaphore {
        &self.semaphore
    }
}
