//! Shared state between processes: a value published by one writer, read by any
//! number of readers ([`SharedValue`], a seqlock; the protocol is
//! `shmring_core::state::value`, the design `docs/design/shared-state.md`), and
//! a value any process updates under a robust lock ([`SharedMutex`]: its
//! semantics and threat model are on the type; the protocol is
//! `shmring_core::state::mutex`). Below: the published value's.
//!
//! # Semantics
//!
//! - One writer at a time ([`SharedValue::writer`] claims the role, with the
//!   channels' liveness lock: a second live writer gets [`Error::RoleTaken`];
//!   the role of a writer whose process died is taken over). A write never
//!   blocks and makes no system call unless a reader waits.
//! - Readers take no role and never block the writer: a read copies the value
//!   and checks, after the copy, that no write overlapped it; it retries a
//!   bounded number of times ([`Error::ValueBusy`] after that). A read never
//!   returns a torn value, and the versions a reader sees never go backwards.
//! - Versions count from 1; [`Error::NoValue`] before the first write.
//! - A writer killed in the middle of a write leaves the value torn: readers get
//!   [`Error::WriterDied`] until a new writer's first write is whole (it keeps
//!   the value marked as being written until then).
//! - [`SharedValue::wait_for_version`] sleeps (futex) until a version above the
//!   one given is published, up to a deadline.
//!
//! The value is plain data: a `T` of step 7's zerocopy bounds (`FromBytes +
//! IntoBytes + Immutable`: every bit pattern is a `T`, so a hostile writer can
//! cost readers garbage values, never undefined behaviour), or bytes
//! ([`SharedValue<[u8]>`](SharedValue), for other languages).
//!
//! A hostile process that can write the segment can make readers get garbage
//! values, errors, or versions out of order, and delay waiters to their
//! deadline; nothing it writes makes a call touch memory out of bounds, panic,
//! or block past its deadline.
//!
//! ```no_run
//! # #[cfg(feature = "zerocopy")]
//! # fn main() -> shmring::Result<()> {
//! use shmring::state::SharedValueBuilder;
//! use shmring::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//!
//! #[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
//! #[zerocopy(crate = "shmring::zerocopy")]
//! #[repr(C)]
//! struct Quote {
//!     bid: f64,
//!     ask: f64,
//! }
//!
//! // The writer's process.
//! let quotes = SharedValueBuilder::shm("eurusd").open_or_create::<Quote>()?;
//! let mut writer = quotes.writer()?;
//! writer.write(&Quote { bid: 1.0841, ask: 1.0843 })?;
//! // A reader's process.
//! let quotes = SharedValueBuilder::shm("eurusd").open::<Quote>()?;
//! let (version, quote) = quotes.read()?;
//! let (next, _) = quotes.wait_for_version_timeout(version, std::time::Duration::from_secs(1))?;
//! # let _ = (quote.bid, next);
//! # Ok(()) }
//! # #[cfg(not(feature = "zerocopy"))]
//! # fn main() {}
//! ```

use std::fmt;
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
#[cfg(feature = "zerocopy")]
use std::time::Duration;
use std::time::Instant;

use memmap2::MmapRaw;
use shmring_core::layout::STATE_KIND_VALUE;
use shmring_core::state::header::{StateGeometry, StateInfo};
use shmring_core::state::value::{
    self as protocol, RawValueRegion, VALUE_WRITER_LOCK, ValueRegion, ValueWriter as CoreWriter,
};
#[cfg(feature = "zerocopy")]
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[cfg(feature = "zerocopy")]
use crate::blocking::deadline_after;
use crate::error::{Error, Result};
use crate::futex::SharedFutex;
use crate::options::{Compared, SegmentBuilder};
use crate::segment::{Backing, Segment, SegmentOptions, fence_flags};

mod mutex;

pub use mutex::{
    DEFAULT_MUTEX_SLOTS, LockError, LockResult, MutexValue, SharedMutex, SharedMutexBuilder,
    SharedMutexGuard,
};

/// Creates or opens a [`SharedValue`]: its backing here; permissions and
/// cleanup through [`SegmentBuilder`], with the channels' rules (and
/// [`asymmetric_fences`](SegmentBuilder::asymmetric_fences): a created value
/// uses the asymmetric pair unless told not to, which makes a write with no
/// reader waiting cost no fence).
#[derive(Debug, Clone)]
pub struct SharedValueBuilder {
    options: SegmentOptions,
}

impl SegmentBuilder for SharedValueBuilder {
    fn options(&self) -> &SegmentOptions {
        &self.options
    }

    fn options_mut(&mut self) -> &mut SegmentOptions {
        &mut self.options
    }
}

/// The segment of a published value, shared by the clones of its handles.
type ValueSegment = Arc<Segment<RawValueRegion>>;

/// A fingerprint of `T` for the header's `type_tag`: its size, alignment and
/// name (FNV-1a), never 0 (0 marks an untyped value). The same type compiled
/// into two programs has the same tag; a type renamed or moved has another.
#[cfg(feature = "zerocopy")]
fn type_tag<T>() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let size = (std::mem::size_of::<T>() as u64).to_le_bytes();
    let align = (std::mem::align_of::<T>() as u64).to_le_bytes();
    for byte in size
        .iter()
        .chain(&align)
        .chain(std::any::type_name::<T>().as_bytes())
    {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// Checks that a state whose header says `info` holds a `T`: its size must be
/// `T`'s and its type tag `T`'s (or 0: created as bytes). Both kinds' typed
/// openers.
#[cfg(feature = "zerocopy")]
fn check_type<T>(info: &StateInfo, what: &str) -> Result<()> {
    let size = info.geometry.value_size();
    let checks = [
        Compared::new("value_size", std::mem::size_of::<T>() as u64, size as u64),
        Compared::new(
            "type_tag",
            type_tag::<T>(),
            if info.type_tag == 0 {
                type_tag::<T>()
            } else {
                info.type_tag
            },
        ),
    ];
    match checks.iter().find(|c| c.requested != c.found) {
        Some(c) => Err(Error::Incompatible {
            what: what.to_owned(),
            field: c.field,
            requested: c.requested,
            found: c.found,
        }),
        None => Ok(()),
    }
}

/// The geometry of a state of `kind` (a value or a mutex) over `value_size`
/// bytes with `slots` slots. Both builders' creates.
///
/// # Errors
/// [`Error::ValueSize`] if `value_size` is out of range (checked before any
/// system call; the caller checks `slots`).
fn state_geometry(kind: u32, value_size: usize, slots: u32) -> Result<StateGeometry> {
    let size = u32::try_from(value_size).unwrap_or(u32::MAX);
    StateGeometry::new(kind, size, slots).map_err(|_| Error::ValueSize {
        len: value_size,
        value_size: shmring_core::state::header::MAX_STATE_VALUE_SIZE as usize,
    })
}

/// What `open_or_create` compares of an existing state whose header says
/// `info`: its value size with `value_size`, and its type tag with `tag` when
/// both are known (a state created as bytes has tag 0). Both builders'.
fn compared_value(info: &StateInfo, value_size: usize, tag: Option<u64>) -> Vec<Compared> {
    let mut compared = vec![Compared::new(
        "value_size",
        value_size as u64,
        info.geometry.value_size() as u64,
    )];
    if let Some(tag) = tag.filter(|_| info.type_tag != 0) {
        compared.push(Compared::new("type_tag", tag, info.type_tag));
    }
    compared
}

impl SharedValueBuilder {
    fn new(backing: Backing) -> Self {
        Self {
            options: SegmentOptions::new(backing),
        }
    }

    /// A value in named POSIX shared memory (`/dev/shm/shmring.<name>`), with
    /// the channels' name rules.
    pub fn shm(name: impl Into<String>) -> Self {
        Self::new(Backing::Shm(name.into()))
    }

    /// A value in a regular file at `path` (the last version survives the
    /// processes).
    pub fn file(path: impl Into<std::path::PathBuf>) -> Self {
        Self::new(Backing::File(path.into()))
    }

    /// A value in an anonymous memfd, sealed against resizing, for a child
    /// process (pass [`SharedValue::fd`]) or a peer reached over a Unix socket;
    /// the other side opens it with [`from_fd`](Self::from_fd).
    pub fn memfd() -> Self {
        Self::new(Backing::Memfd)
    }

    /// Creates a value of `value_size` bytes (1 to 1 MiB), never written.
    ///
    /// # Errors
    /// [`Error::ValueSize`] (`value_size` out of range, before any system
    /// call), [`Error::InvalidName`], [`Error::AlreadyExists`],
    /// [`Error::PermissionDenied`], [`Error::NoSpace`], [`Error::NotFound`] (a
    /// file's directory is missing), or [`Error::Io`].
    pub fn create_bytes(&self, value_size: usize) -> Result<SharedValue<[u8]>> {
        self.create_tagged(value_size, 0)
    }

    fn create_tagged<T: ?Sized>(&self, value_size: usize, tag: u64) -> Result<SharedValue<T>> {
        let geometry = state_geometry(STATE_KIND_VALUE, value_size, 0)?;
        let size = geometry.value_size() as u32;
        let flags = fence_flags(&self.options);
        let init = |map: &MmapRaw, what: &str| {
            // SAFETY: `map` is a fresh shared read-write mapping of the geometry's
            // size (page aligned, so 128-aligned) that the Segment will own
            // alongside the region; nobody uses it before its magic is
            // published; afterwards this process touches it only through
            // shmring handles.
            unsafe { RawValueRegion::init(map.as_mut_ptr(), map.len(), size, flags, tag) }
                .map_err(|e| Error::layout(what, e))
        };
        let segment = Segment::create_with(&self.options, geometry.segment_size(), &init)?;
        SharedValue::new(Arc::new(segment))
    }

    /// Opens an existing value of any size and type, as bytes, and validates
    /// it (owner, mode, size, then every header field; another kind of object
    /// is refused).
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::Untrusted`], [`Error::BadSize`], [`Error::IncompatibleLayout`]
    /// (another kind, another layout version), [`Error::Corrupted`],
    /// [`Error::Unsupported`] (the creator chose the asymmetric fences and this
    /// process cannot take part), or [`Error::Io`].
    pub fn open_bytes(&self) -> Result<SharedValue<[u8]>> {
        SharedValue::new(Arc::new(Segment::open_with(&self.options)?))
    }

    /// Opens the value, or creates it with `value_size` bytes if there is none:
    /// race-free, as every builder's `open_or_create`. A memfd value is created.
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the existing object is not a value of this
    /// layout version (`field` `"kind"` or `"layout version"`) or has another
    /// size (`"value_size"`); else as [`open_bytes`](Self::open_bytes) and
    /// [`create_bytes`](Self::create_bytes).
    pub fn open_or_create_bytes(&self, value_size: usize) -> Result<SharedValue<[u8]>> {
        self.open_or_create_checked(value_size, None, || self.create_bytes(value_size))
    }

    /// `open_or_create` of every type: compares the value size, and the type
    /// tag when `tag` is given.
    fn open_or_create_checked<T: ?Sized>(
        &self,
        value_size: usize,
        tag: Option<u64>,
        create: impl Fn() -> Result<SharedValue<T>>,
    ) -> Result<SharedValue<T>> {
        crate::options::open_or_create(
            &self.options,
            STATE_KIND_VALUE,
            || self.open_bytes().map(SharedValue::retype),
            create,
            |value| value.describe().to_owned(),
            |value| compared_value(value.segment.contents().info(), value_size, tag),
        )
    }

    /// Opens the value behind `fd`, handed over by a parent or a peer (a memfd
    /// from [`SharedValueBuilder::memfd`]), as bytes: sizes, seals and header
    /// are checked, owner and mode are not.
    ///
    /// # Errors
    /// [`Error::BadSize`], [`Error::Io`], [`Error::IncompatibleLayout`],
    /// [`Error::Corrupted`], [`Error::Unsupported`].
    pub fn from_fd(&self, fd: OwnedFd) -> Result<SharedValue<[u8]>> {
        SharedValue::new(Arc::new(Segment::from_fd_with(fd, &self.options)?))
    }
}

#[cfg(feature = "zerocopy")]
impl SharedValueBuilder {
    /// Creates a value holding a `T` (its size, and a fingerprint of its type
    /// that typed openers check), never written.
    ///
    /// # Errors
    /// As [`create_bytes`](Self::create_bytes) (a zero-sized or larger than
    /// 1 MiB `T` is [`Error::ValueSize`]).
    pub fn create<T: FromBytes + IntoBytes + Immutable>(&self) -> Result<SharedValue<T>> {
        self.create_tagged(std::mem::size_of::<T>(), type_tag::<T>())
    }

    /// Opens an existing value holding a `T`: as [`open_bytes`](Self::open_bytes),
    /// then its size must be `T`'s and its type tag `T`'s (or 0: created as bytes).
    ///
    /// # Errors
    /// [`Error::Incompatible`] (`"value_size"`, `"type_tag"`); else as
    /// [`open_bytes`](Self::open_bytes).
    pub fn open<T: FromBytes + IntoBytes + Immutable>(&self) -> Result<SharedValue<T>> {
        self.open_bytes()?.typed()
    }

    /// Opens the value holding a `T`, or creates it: as
    /// [`open_or_create_bytes`](Self::open_or_create_bytes), comparing the type
    /// tag too.
    ///
    /// # Errors
    /// As [`open_or_create_bytes`](Self::open_or_create_bytes), and
    /// [`Error::Incompatible`] with `field` `"type_tag"`.
    pub fn open_or_create<T: FromBytes + IntoBytes + Immutable>(&self) -> Result<SharedValue<T>> {
        self.open_or_create_checked(std::mem::size_of::<T>(), Some(type_tag::<T>()), || {
            self.create::<T>()
        })
    }
}

/// A value published by one writer, read by any number of processes: see the
/// [module](self) docs. `T` is the value's type (zerocopy plain data), or
/// `[u8]` for bytes. Cloning makes another handle on the same mapping.
pub struct SharedValue<T: ?Sized = [u8]> {
    segment: ValueSegment,
    futex: SharedFutex,
    _type: PhantomData<fn() -> Box<T>>,
}

impl<T: ?Sized> Clone for SharedValue<T> {
    fn clone(&self) -> Self {
        Self {
            segment: self.segment.clone(),
            futex: self.futex,
            _type: PhantomData,
        }
    }
}

impl<T: ?Sized> fmt::Debug for SharedValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedValue")
            .field("what", &self.segment.describe())
            .field("value_size", &self.value_size())
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> SharedValue<T> {
    fn new(segment: ValueSegment) -> Result<Self> {
        let futex = SharedFutex::for_flags(
            segment.contents().info().flags,
            "membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED), which this value's \
             creator chose (a seccomp filter or a kernel before 4.16 here?)",
        )?;
        Ok(Self {
            segment,
            futex,
            _type: PhantomData,
        })
    }

    fn retype<U: ?Sized>(self) -> SharedValue<U> {
        SharedValue {
            segment: self.segment,
            futex: self.futex,
            _type: PhantomData,
        }
    }

    fn region(&self) -> &RawValueRegion {
        self.segment.contents()
    }

    /// The value's size in bytes.
    pub fn value_size(&self) -> usize {
        self.region().value_size()
    }

    /// The fingerprint of the value's type its creator recorded (0: created as
    /// bytes).
    pub fn type_tag(&self) -> u64 {
        self.region().info().type_tag
    }

    /// The version published now (`None` before the first write, and while a
    /// write is in progress or was left half-done by a dead writer). A snapshot.
    pub fn version(&self) -> Option<u64> {
        protocol::version(self.region())
    }

    /// The value's segment descriptor: to pass to a child or a peer, which opens
    /// it with [`SharedValueBuilder::from_fd`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.fd()
    }

    /// What the value is, for messages: `shm segment "name"`, `file /path` or
    /// `memfd`.
    pub fn describe(&self) -> &str {
        self.segment.describe()
    }

    /// Whether a live process holds the writer role (a snapshot).
    ///
    /// # Errors
    /// [`Error::Io`] if the lock cannot be probed.
    pub fn writer_alive(&self) -> Result<bool> {
        self.segment.is_role_alive(VALUE_WRITER_LOCK)
    }

    /// Copies the value into `buf` (exactly [`value_size`](Self::value_size)
    /// bytes) and returns its version: never torn. Never blocks.
    ///
    /// # Errors
    /// [`Error::NoValue`], [`Error::WriterDied`], [`Error::ValueBusy`],
    /// [`Error::ValueSize`].
    pub fn read_into(&self, buf: &mut [u8]) -> Result<u64> {
        // A lock that cannot be probed counts as alive: the read then retries
        // and reports `ValueBusy`, never a false `WriterDied`.
        let alive = || self.writer_alive().unwrap_or(true);
        protocol::read(self.region(), buf, alive).map_err(|e| Error::value_read(self.describe(), e))
    }

    /// Waits until a version above `after` is published, then copies it into
    /// `buf` and returns its version (`None` deadline: as long as it takes).
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `deadline` has passed; as
    /// [`read_into`](Self::read_into).
    pub fn wait_for_version_into_deadline(
        &self,
        after: u64,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<u64> {
        loop {
            protocol::wait_for_version(self.region(), after, &self.futex, deadline)
                .map_err(|_| Error::TimedOut)?;
            let version = self.read_into(buf)?;
            if version > after {
                return Ok(version);
            }
            // Only a peer that moves `seq` backwards brings us here: the futex
            // checks the deadline before it sleeps, but a version that keeps
            // appearing and vanishing would not let it sleep.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::TimedOut);
            }
        }
    }

    /// A writer: claims the writer role (the liveness lock first, then the
    /// claim word, taking over from a writer whose process died).
    ///
    /// # Errors
    /// [`Error::RoleTaken`] while another live writer holds it (its role is
    /// [`Role::Sender`](crate::error::Role::Sender): the writer's lock is the
    /// SPSC sender's byte); [`Error::Io`].
    pub fn writer(&self) -> Result<SharedValueWriter<T>> {
        let (writer, lock) = self.segment.claim_value_writer()?;
        Ok(SharedValueWriter {
            writer,
            _lock: lock,
            value: self.clone(),
        })
    }
}

impl SharedValue<[u8]> {
    /// This value as a `T`: its size must be `T`'s and its type tag `T`'s (or
    /// 0: created as bytes).
    ///
    /// # Errors
    /// [`Error::Incompatible`] (`"value_size"`, `"type_tag"`).
    #[cfg(feature = "zerocopy")]
    pub fn typed<T: FromBytes + IntoBytes + Immutable>(self) -> Result<SharedValue<T>> {
        check_type::<T>(self.region().info(), self.describe())?;
        Ok(self.retype())
    }
}

#[cfg(feature = "zerocopy")]
impl<T: FromBytes + IntoBytes + Immutable> SharedValue<T> {
    /// The value now and its version: a copy, never torn. Never blocks.
    ///
    /// # Errors
    /// [`Error::NoValue`], [`Error::WriterDied`], [`Error::ValueBusy`].
    pub fn read(&self) -> Result<(u64, T)> {
        let mut value = T::new_zeroed();
        let version = self.read_into(value.as_mut_bytes())?;
        Ok((version, value))
    }

    /// Waits, as long as it takes, until a version above `after` is published
    /// and returns it with its version.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn wait_for_version(&self, after: u64) -> Result<(u64, T)> {
        self.wait_for_version_deadline(after, None)
    }

    /// As [`wait_for_version`](Self::wait_for_version), until `deadline` (`None`:
    /// as long as it takes).
    ///
    /// # Errors
    /// [`Error::TimedOut`] once `deadline` has passed; as [`read`](Self::read).
    pub fn wait_for_version_deadline(
        &self,
        after: u64,
        deadline: Option<Instant>,
    ) -> Result<(u64, T)> {
        let mut value = T::new_zeroed();
        let version = self.wait_for_version_into_deadline(after, value.as_mut_bytes(), deadline)?;
        Ok((version, value))
    }

    /// As [`wait_for_version`](Self::wait_for_version), for at most `timeout`.
    ///
    /// # Errors
    /// As [`wait_for_version_deadline`](Self::wait_for_version_deadline).
    pub fn wait_for_version_timeout(&self, after: u64, timeout: Duration) -> Result<(u64, T)> {
        self.wait_for_version_deadline(after, deadline_after(timeout))
    }
}

/// The writer of a [`SharedValue`]: the one process that publishes versions.
/// Gives the role back when dropped (its pid word cleared first).
pub struct SharedValueWriter<T: ?Sized = [u8]> {
    // Drop order: the claim is given back before the lock's file closes.
    writer: CoreWriter<RawValueRegion>,
    _lock: File,
    value: SharedValue<T>,
}

impl<T: ?Sized> fmt::Debug for SharedValueWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedValueWriter")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> SharedValueWriter<T> {
    /// The value written.
    pub fn value(&self) -> &SharedValue<T> {
        &self.value
    }

    /// The version the next write publishes: one more than the last whole
    /// one (after a writer died in the middle of a write, the version it was
    /// writing). For a writer that stamps the version into the value.
    pub fn next_version(&self) -> u64 {
        self.writer.next_version()
    }

    /// Publishes `bytes` (exactly the value's size) as the next version and
    /// returns its number. Never blocks; no system call unless a reader waits.
    ///
    /// # Errors
    /// [`Error::ValueSize`] (nothing is written).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<u64> {
        self.writer
            .write(bytes, &self.value.futex)
            .map_err(Error::value_write)
    }
}

#[cfg(feature = "zerocopy")]
impl<T: FromBytes + IntoBytes + Immutable> SharedValueWriter<T> {
    /// Publishes `value` as the next version and returns its number.
    ///
    /// # Errors
    /// None in practice (the size is `T`'s); the `Result` is the bytes call's.
    pub fn write(&mut self, value: &T) -> Result<u64> {
        self.write_bytes(value.as_bytes())
    }

    /// Publishes the value as `f` changes it from the one published last (or
    /// what a dead writer or a peer left in the segment: any bit pattern is a
    /// `T`) and returns the new version.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_with(&mut self, f: impl FnOnce(&mut T)) -> Result<u64> {
        let mut value = T::new_zeroed();
        self.writer
            .current(value.as_mut_bytes())
            .map_err(Error::value_write)?;
        f(&mut value);
        self.write(&value)
    }
}

impl<T: ?Sized> Drop for SharedValueWriter<T> {
    fn drop(&mut self) {
        // The pid hint goes first; the core writer then gives the claim back,
        // and the lock's file closes after it (field order).
        crate::segment::write_pid(&self.writer.region().control().writer_pid, false);
    }
}
