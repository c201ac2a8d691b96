//! Shared-memory segments: a file (a named POSIX shared memory object, a regular
//! file or an anonymous memfd), its mapping, and the validated core ring layout in
//! it.
//!
//! Named segments (`/dev/shm/shmring.<name>` and files) carry a liveness mark: every
//! [`Segment`] holds a shared OFD lock on the byte `PRESENCE_LOCK` of its file
//! while it lives (see `crate::sys::lock`). A creator asked to *reclaim* a name takes
//! that lock exclusively, which succeeds only when no handle on the segment is alive
//! anywhere, and only then removes the name. Every creator and opener takes its
//! shared lock first and then checks that the name still refers to the file it
//! opened, so nobody keeps using a file a reclaimer has just unlinked.
//!
//! The rooms: `names` (name rules, `/dev/shm` paths, `shm_open`), `create`, `open`
//! (with the trust checks), `list` ([`list_objects`], [`inspect`], [`clean`]); here, the [`Segment`] type,
//! its mapping and the [`SegmentOptions`] it is created and opened with.

mod claim;
mod create;
mod list;
pub(crate) mod names;
pub(crate) mod open;

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use memmap2::{MmapOptions, MmapRaw};
use shmring_core::mpmc::layout::{MAX_MPMC_SEGMENT, MAX_SLOTS, MPMC_TABLE_OFFSET};
use shmring_core::{
    DATA_OFFSET, LayoutError, MAX_CAPACITY, MpmcGeometry, MpmcLayoutError, MpmcRegion,
    RawMpmcRegion, RawRegion, segment_layout,
};

use shmring_core::state::header::{MAX_STATE_SLOTS, MAX_STATE_VALUE_SIZE, STATE_SLOT_SIZE};
use shmring_core::state::mutex::{MUTEX_TABLE_OFFSET, RawMutexRegion};
use shmring_core::state::value::{RawValueRegion, VALUE_OFFSET};

use crate::blocking::WaitStrategy;
use crate::error::{Error, Result};
use crate::readiness::{BellSource, Bells};
use crate::sys::lock;

pub(crate) use claim::{EntryLocks, lock_offset, owner_word, write_pid};
pub(crate) use create::fence_flags;
use create::{create_memfd, create_named, init_mpmc, init_ring};
pub use list::{
    ChannelState, CleanOutcome, CleanReport, EventState, Fill, FillUnit, Holder, KeptReason,
    MpmcEndpoint, MpmcRole, MpmcState, MutexSlotStatus, MutexState, ObjectError, ObjectFile,
    ObjectKind, ObjectState, ObjectStatus, Progress, SemaphoreState, SubscriberStatus, TopicState,
    ValueState, clean, clean_stale, inspect, list_objects,
};
use names::Named;
use open::{check_seals, check_size, describe_fd, open_named, own_description};
pub(crate) use open::{is_trusted, peek_kind};

/// How often a create or open starts again after losing a race with a reclaimer (the
/// name was unlinked or replaced between two system calls).
const MAX_RACES: u32 = 8;

/// Where a segment lives.
#[derive(Debug, Clone)]
pub enum Backing {
    /// Named POSIX shared memory: `/dev/shm/shmring.<name>` (`shm_open` name
    /// `"/shmring.<name>"`). The name is 1 to 200 bytes of ASCII letters, digits,
    /// `.`, `_` and `-`, and neither `.` nor `..`.
    Shm(String),
    /// A regular file at a path (persists: reopening resumes with the unconsumed
    /// messages).
    File(PathBuf),
    /// An anonymous memfd (create only; the other side gets it through
    /// inheritance or `SCM_RIGHTS` and opens it with `Segment::from_fd`).
    Memfd,
}

/// Where a segment lives and how it is created, opened, trusted, mapped and
/// cleaned up, whatever it holds; and how its endpoints wait. The setters are
/// [`SegmentBuilder`](crate::options::SegmentBuilder)'s, on every builder; a builder's
/// [`options`](crate::options::SegmentBuilder::options) shows the values.
///
/// The default: an anonymous memfd, created `0o600`, opened only if owned by our
/// effective uid and writable by nobody else (`0o644`), no reclaim, removed on drop
/// if named shared memory (kept if a file), not prefaulted, asymmetric fences,
/// [`WaitStrategy::default`].
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    pub(crate) backing: Backing,
    /// Create: permission bits, set with `fchmod` after creation.
    pub(crate) mode: u32,
    /// Open: the permission bits accepted.
    pub(crate) allowed_mode: u32,
    /// Open: the owner uid expected (`None`: our effective uid).
    pub(crate) owner: Option<u32>,
    /// Create: replace a dead segment of the same name.
    pub(crate) reclaim: bool,
    /// Create: remove the name on drop (`None`: the backing's default).
    pub(crate) unlink_on_drop: Option<bool>,
    /// Map with `MAP_POPULATE`.
    pub(crate) prefault: bool,
    /// Create (rings): flag the header for the asymmetric fence pair.
    pub(crate) asymmetric_fences: bool,
    /// How a ring's endpoints wait.
    pub(crate) wait: WaitStrategy,
    /// Write-once segments (a broadcast topic's data segment): an opener maps it
    /// read-only (`open_named` opens the file read-only), and a created memfd is
    /// sealed with `F_SEAL_FUTURE_WRITE` once its creator has mapped it writable,
    /// so no other holder of the descriptor can write it. Set by the kind, not a
    /// builder setter.
    pub(crate) read_only: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self::new(Backing::Memfd)
    }
}

impl SegmentOptions {
    /// The default options for a segment in `backing`.
    pub(crate) fn new(backing: Backing) -> Self {
        Self {
            backing,
            mode: 0o600,
            allowed_mode: 0o644,
            owner: None,
            reclaim: false,
            unlink_on_drop: None,
            prefault: false,
            asymmetric_fences: true,
            wait: WaitStrategy::default(),
            read_only: false,
        }
    }

    /// Where the segment lives.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// Whether a created segment's name is removed when its creator drops it: as
    /// set, else for named shared memory only.
    pub(crate) fn unlinks_on_drop(&self) -> bool {
        self.unlink_on_drop
            .unwrap_or(matches!(self.backing, Backing::Shm(_)))
    }
}

/// One mapped segment: a file (a shared memory object, a regular file or a memfd),
/// its mapping, and the validated core ring region over it.
///
/// While it lives it holds a shared lock on `PRESENCE_LOCK` through an open file
/// description of its own (`Segment::from_fd` reopens the descriptor it was given),
/// so a reclaiming creator can tell it is alive, and closing it releases the lock.
/// The one exception: a segment opened from a descriptor this process cannot
/// reopen (another uid's `0o600` file, or no `/proc`) holds no presence lock.
///
/// # Hazards
///
/// Another process that can open the segment can write anything into it at any
/// time. The core ring validates everything it reads from shared memory, so the
/// worst it can do is make us read garbage payload bytes or report
/// [`Error::Corrupted`]; never undefined behaviour or an out-of-bounds access.
///
/// A peer that *truncates* the file under our mapping, however, makes our next
/// access to the lost pages raise `SIGBUS`. An anonymous memfd made by
/// `Segment::create` is sealed against shrinking and growing (`F_SEAL_SHRINK`,
/// `F_SEAL_GROW`, `F_SEAL_SEAL`), so the risk is gone there. For named shared memory
/// and files it is documented, not prevented: only let processes you trust write the
/// segment (its owner and mode are checked on open for that reason).
///
/// `C` is what the mapping holds: the ring's [`RawRegion`] (the default, for
/// channels), or a synchronisation object (an event or a semaphore, see
/// `crate::sync_object`).
pub struct Segment<C = RawRegion> {
    // Field order matters for drop: the region (a bare pointer, no Drop) goes
    // first, then the mapping, then the file (closing it drops the presence lock).
    region: C,
    map: MmapRaw,
    file: File,
    what: String,
    /// The name to remove on drop: set when this handle created the segment and was
    /// asked to remove it.
    unlink: Option<Named>,
    /// Where the endpoints' doorbells come from (`crate::readiness`); a
    /// connection's handshake takes its peer's ends out.
    bells: Mutex<BellSource>,
}

#[allow(
    private_bounds,
    reason = "only this crate makes segments of other contents than a ring"
)]
impl<C: Contents> fmt::Debug for Segment<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, value) = self.region.summary();
        f.debug_struct("Segment")
            .field("what", &self.what)
            .field("fd", &self.file.as_raw_fd())
            .field("len", &self.map.len())
            .field(field, &value)
            .field("unlink_on_drop", &self.unlink.is_some())
            .finish_non_exhaustive()
    }
}

/// What a segment's mapping holds, as far as opening it goes: the sizes a file
/// holding it may have, and how to validate and attach to it.
pub(crate) trait Contents: Sized {
    /// The least file size that can hold it (its header at least).
    const MIN_SIZE: u64;
    /// The greatest file size that can hold it (rounded up to a page on open).
    const MAX_SIZE: u64;

    /// Validates every header field of the mapped memory and returns a view of it;
    /// [`LayoutError::Uninitialized`] while its creator has not published it.
    ///
    /// # Safety
    /// `map` is a shared read-write mapping that outlives the returned view (the
    /// [`Segment`] owns both) and that this process touches only through shmring
    /// handles.
    unsafe fn attach(map: &MmapRaw) -> std::result::Result<Self, LayoutError>;

    /// A field for `Debug`: its name and value.
    fn summary(&self) -> (&'static str, u64);

    /// Whether endpoints wait on it and so need doorbells (rings do; events and
    /// semaphores do not).
    const DOORBELLS: bool = false;
}

impl Contents for RawRegion {
    const DOORBELLS: bool = true;
    const MIN_SIZE: u64 = DATA_OFFSET as u64;
    const MAX_SIZE: u64 = DATA_OFFSET as u64 + MAX_CAPACITY as u64;

    unsafe fn attach(map: &MmapRaw) -> std::result::Result<Self, LayoutError> {
        // SAFETY: the caller's contract: a shared mapping of `map.len()` bytes that
        // outlives the region.
        unsafe { RawRegion::attach(map.as_mut_ptr(), map.len()) }
    }

    fn summary(&self) -> (&'static str, u64) {
        ("capacity", self.capacity() as u64)
    }
}

/// Maps an MPMC layout error found in a segment's header to the layout error the
/// segment machinery reports.
pub(super) fn mpmc_header_error(e: MpmcLayoutError) -> LayoutError {
    match e {
        MpmcLayoutError::InvalidSlotCount { slots } => LayoutError::HeaderMismatch {
            field: "slot_count",
            found: slots,
            expected: MAX_SLOTS as u64,
        },
        MpmcLayoutError::InvalidSlotSize { slot_size, max } => LayoutError::HeaderMismatch {
            field: "slot_size",
            found: slot_size,
            expected: max,
        },
        MpmcLayoutError::InvalidEndpointCount { endpoints, max } => LayoutError::HeaderMismatch {
            field: "endpoint_count",
            found: endpoints,
            expected: max,
        },
        MpmcLayoutError::SegmentTooLarge { size } => LayoutError::HeaderMismatch {
            field: "segment_size",
            found: size,
            expected: MAX_MPMC_SEGMENT,
        },
        MpmcLayoutError::Segment(e) => e,
    }
}

impl Contents for RawValueRegion {
    const MIN_SIZE: u64 = VALUE_OFFSET as u64 + 8;
    const MAX_SIZE: u64 = VALUE_OFFSET as u64 + MAX_STATE_VALUE_SIZE as u64;

    unsafe fn attach(map: &MmapRaw) -> std::result::Result<Self, LayoutError> {
        // SAFETY: the caller's contract: a shared mapping of `map.len()` bytes that
        // outlives the region, touched by this process only through shmring handles.
        unsafe { RawValueRegion::attach(map.as_mut_ptr(), map.len()) }
    }

    fn summary(&self) -> (&'static str, u64) {
        ("value_size", self.info().geometry.value_size() as u64)
    }
}

impl Contents for RawMutexRegion {
    /// The data FIFO is the base of each slot's death bell (`<data>.<slot>`,
    /// `BellSource::make_slot_bells`): a handle holds its slot's, and a parked
    /// locker hears the holder's hang-up through it.
    const DOORBELLS: bool = true;
    const MIN_SIZE: u64 = (MUTEX_TABLE_OFFSET + STATE_SLOT_SIZE + 8) as u64;
    const MAX_SIZE: u64 = (MUTEX_TABLE_OFFSET + STATE_SLOT_SIZE * MAX_STATE_SLOTS as usize) as u64
        + MAX_STATE_VALUE_SIZE as u64;

    unsafe fn attach(map: &MmapRaw) -> std::result::Result<Self, LayoutError> {
        // SAFETY: the caller's contract: a shared mapping of `map.len()` bytes that
        // outlives the region, touched by this process only through shmring handles.
        unsafe { RawMutexRegion::attach(map.as_mut_ptr(), map.len()) }
    }

    fn summary(&self) -> (&'static str, u64) {
        ("value_size", self.info().geometry.value_size() as u64)
    }
}

impl Contents for RawMpmcRegion {
    const DOORBELLS: bool = true;
    const MIN_SIZE: u64 = MPMC_TABLE_OFFSET as u64;
    const MAX_SIZE: u64 = MAX_MPMC_SEGMENT;

    unsafe fn attach(map: &MmapRaw) -> std::result::Result<Self, LayoutError> {
        // SAFETY: the caller's contract: a shared mapping of `map.len()` bytes that
        // outlives the region, touched by this process only through shmring handles.
        unsafe { RawMpmcRegion::attach(map.as_mut_ptr(), map.len()) }.map_err(mpmc_header_error)
    }

    fn summary(&self) -> (&'static str, u64) {
        ("slots", self.geometry().slots() as u64)
    }
}

/// Initialises a freshly created, sized (and for a memfd sealed) mapping of a
/// segment described as the `&str`: what [`Segment::create_with`] fills it with.
pub(crate) type Init<'a, C> = &'a dyn Fn(&MmapRaw, &str) -> Result<C>;

impl Segment {
    /// Creates a segment in `options.backing` holding a fresh, empty ring of
    /// `capacity` bytes in its data region (a power of two, see
    /// [`shmring_core::segment_layout`]).
    ///
    /// Named shared memory and files are created exclusively (`O_CREAT | O_EXCL`,
    /// mode `0o600`, then `fchmod` to `options.mode`) and sized with `posix_fallocate`,
    /// which reserves the pages: a full `/dev/shm` fails here with
    /// [`Error::NoSpace`] rather than with `SIGBUS` later. A memfd is sealed against
    /// resizing.
    ///
    /// If the name exists: with `options.reclaim`, and only if no handle on the old
    /// segment is alive (nobody holds its presence lock), the old name is removed
    /// and the segment created afresh; a live segment is never reclaimed. Reclaiming
    /// a [`Backing::File`] discards the messages it held.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidCapacity`] (both before any system
    /// call), [`Error::AlreadyExists`], [`Error::NoSpace`], [`Error::NotFound`] (a
    /// file's directory is missing), [`Error::PermissionDenied`], [`Error::Io`].
    /// Nothing is left behind when creation fails after the name was made.
    pub(crate) fn create(options: &SegmentOptions, capacity: usize) -> Result<Segment> {
        let named = Named::new(&options.backing)?;
        let size = segment_layout(capacity)
            .map_err(|_| Error::InvalidCapacity {
                capacity: capacity as u64,
            })?
            .size();
        let init = |map: &MmapRaw, what: &str| init_ring(map, what, capacity, options);
        Segment::create_named_or_memfd(named, size, options, &init)
    }

    /// Opens an existing named segment and validates it: its owner must be
    /// `options.owner` (default: our effective uid) and its permission bits within
    /// `options.allowed_mode`; its size must hold a header and at most the largest
    /// ring; then every header field is checked by [`RawRegion::attach`].
    ///
    /// A segment that is still being created (size zero, or header not yet
    /// published) is waited for: up to 2 s while another handle on it (its creator)
    /// is alive, up to 20 ms otherwise.
    ///
    /// # Errors
    /// [`Error::InvalidName`] (also for [`Backing::Memfd`], which has no name to
    /// open: pass its descriptor to [`Segment::from_fd`]), [`Error::NotFound`],
    /// [`Error::PermissionDenied`], [`Error::Untrusted`], [`Error::BadSize`],
    /// [`Error::IncompatibleLayout`], [`Error::Corrupted`], [`Error::Io`].
    pub(crate) fn open(options: &SegmentOptions) -> Result<Segment> {
        Segment::open_with(options)
    }

    /// Opens the segment behind `fd`: a memfd (or any segment's descriptor) handed
    /// over by inheritance or `SCM_RIGHTS`.
    ///
    /// The owner and mode are *not* checked: the descriptor was handed to us
    /// deliberately, and whoever holds it can write the file whatever its mode. The
    /// size is checked as for [`Segment::open`]. If the descriptor is a memfd, it
    /// must be sealed against shrinking (`F_SEAL_SHRINK`, as [`Segment::create`]
    /// seals it), else a peer could truncate it under our mapping: an unsealed memfd
    /// is refused with [`Error::Io`] (operation `"F_GET_SEALS"`, kind
    /// `InvalidInput`). Other descriptors (a named shared memory object, a file)
    /// carry the truncation hazard documented on [`Segment`].
    ///
    /// No wait for a segment still being created: the descriptor's sender is
    /// expected to have created it.
    ///
    /// `fd` is closed (on success too) once the segment has reopened it through
    /// `/proc/self/fd` and holds its lock through that description of its own, so
    /// no lock stays on descriptors sharing `fd`'s description once the segment is
    /// dropped or the open fails. Where the reopen is refused (another uid's
    /// `0o600` file, no `/proc`), the segment keeps `fd` and takes no lock at all.
    ///
    /// # Errors
    /// [`Error::BadSize`], [`Error::Io`], [`Error::IncompatibleLayout`],
    /// [`Error::Corrupted`].
    pub(crate) fn from_fd(fd: OwnedFd, options: &SegmentOptions) -> Result<Segment> {
        Segment::from_fd_with(fd, options)
    }

    /// The validated ring region (initialised by `create`, attached by `open` and
    /// `from_fd`). Clones of it point into this segment's mapping: they must not
    /// outlive `self`.
    pub(crate) fn region(&self) -> &RawRegion {
        &self.region
    }

    /// Bytes in the ring's data region.
    pub fn capacity(&self) -> usize {
        self.region.capacity()
    }
}

impl Segment<RawMpmcRegion> {
    /// Creates a segment as [`Segment::create`] does (names, modes, reclaim, sizing
    /// and sealing alike) holding a fresh, empty MPMC ring of `geometry`.
    ///
    /// # Errors
    /// As [`Segment::create`], but for the capacity: `geometry` is valid.
    pub(crate) fn create_mpmc(
        options: &SegmentOptions,
        geometry: &MpmcGeometry,
    ) -> Result<Segment<RawMpmcRegion>> {
        let init = |map: &MmapRaw, what: &str| init_mpmc(map, what, geometry, options);
        Segment::create_with(options, geometry.segment_size(), &init)
    }
}

#[allow(
    clippy::len_without_is_empty,
    reason = "a segment always maps at least its header: it is never empty"
)]
#[allow(
    private_bounds,
    reason = "only this crate makes segments of other contents than a ring"
)]
impl<C: Contents> Segment<C> {
    /// Creates a segment of `size` bytes as [`Segment::create`] does (names,
    /// modes, reclaim, sizing and sealing alike) and fills it with `init`.
    pub(crate) fn create_with(
        options: &SegmentOptions,
        size: usize,
        init: Init<'_, C>,
    ) -> Result<Segment<C>> {
        Segment::create_named_or_memfd(Named::new(&options.backing)?, size, options, init)
    }

    fn create_named_or_memfd(
        named: Option<Named>,
        size: usize,
        options: &SegmentOptions,
        init: Init<'_, C>,
    ) -> Result<Segment<C>> {
        match named {
            Some(named) => create_named(named, size, options, init),
            None => create_memfd(size, options, init),
        }
    }

    /// Opens an existing named segment as [`Segment::open`] does, checking its
    /// size against `C`'s and attaching `C`.
    pub(crate) fn open_with(options: &SegmentOptions) -> Result<Segment<C>> {
        match Named::new(&options.backing)? {
            Some(named) => open_named(named, options),
            None => Err(Error::InvalidName {
                name: String::new(),
                reason: "an anonymous memfd has no name to open: pass its descriptor to from_fd",
            }),
        }
    }

    /// Opens the segment behind `fd` as [`Segment::from_fd`] does, checking its
    /// size against `C`'s and attaching `C`.
    pub(crate) fn from_fd_with(fd: OwnedFd, options: &SegmentOptions) -> Result<Segment<C>> {
        let given = File::from(fd);
        let (what, is_memfd) = describe_fd(&given);
        let meta = given.metadata().map_err(|e| Error::io("fstat", &what, e))?;
        let len = check_size::<C>(&meta, &what)?;
        check_seals(&given, &what, is_memfd)?;
        let file = own_description(given, &what)?;
        let (map, region) =
            map_and_attach::<C>(&file, len, options.prefault, options.read_only, &what)?;
        let region = region.map_err(|e| Error::layout(&what, e))?;
        Ok(Segment {
            region,
            map,
            file,
            what,
            unlink: None,
            bells: Mutex::new(BellSource::Unavailable {
                reason: "opened from a bare descriptor, without its doorbells".to_owned(),
            }),
        })
    }

    /// Runs `f` on where the endpoints' doorbells come from.
    pub(crate) fn with_bells<R>(&self, f: impl FnOnce(&mut BellSource) -> R) -> R {
        f(&mut self.bells.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The doorbells of an endpoint of `role` claimed on this segment.
    ///
    /// # Errors
    /// [`Error::Io`] if not even a private pipe can be made.
    pub(crate) fn endpoint_bells(&self, role: crate::error::Role) -> Result<Bells> {
        self.with_bells(|bells| bells.endpoint_bells(role))
            .map_err(|e| Error::io("pipe", &self.what, e))
    }

    /// Lets the child that `command` spawns open this segment: its descriptor and
    /// its doorbells' pipes (if it has them) are inherited (close-on-exec
    /// cleared in the child only), their numbers put in the environment variable
    /// `var` (`fd`, or `fd,data-read,data-write,space-read,space-write`).
    pub(crate) fn pass_to(&self, command: &mut std::process::Command, var: &str) {
        let fd = self.file.as_raw_fd();
        let bells: Vec<i32> =
            self.with_bells(|b| b.passable().iter().map(|end| end.as_raw_fd()).collect());
        match <[i32; 4]>::try_from(bells) {
            Ok([a, b, c, d]) => {
                command.env(var, format!("{fd},{a},{b},{c},{d}"));
                crate::sys::inherit::inherit_in_child(command, [fd, a, b, c, d]);
            }
            Err(_) => {
                command.env(var, fd.to_string());
                crate::sys::inherit::inherit_in_child(command, [fd]);
            }
        }
    }

    /// Replaces where the doorbells come from: pipes passed with the segment's
    /// descriptor (a connection's handshake, a child's inheritance).
    pub(crate) fn set_bells(&mut self, bells: BellSource) {
        *self.bells.get_mut().unwrap_or_else(PoisonError::into_inner) = bells;
    }

    /// What the mapping holds (initialised by `create`, attached by `open` and
    /// `from_fd`). Views made from it point into this segment's mapping: they must
    /// not outlive `self`.
    pub(crate) fn contents(&self) -> &C {
        &self.region
    }

    /// The segment's descriptor: to pass to a child or a peer, or to reopen for
    /// locks of one's own (`crate::sys::lock::reopen`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// What the segment is, for messages: `shm segment "name"`, `file /path` or
    /// `memfd`.
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Bytes mapped: the segment's size when it was created or opened (at least the
    /// ring layout's, possibly more for an opened file).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Writes the whole mapping back to its file and waits (`msync(MS_SYNC)`):
    /// durability for a [`Backing::File`] segment.
    ///
    /// Without it, a process crash loses nothing committed (the page cache holds
    /// it); a machine crash loses what was not flushed. A flush in the middle of
    /// traffic may capture a half-written frame, which recovery then treats by the
    /// ring's rules (an uncommitted frame is not delivered). For shared memory and
    /// memfd segments it does nothing useful.
    ///
    /// # Errors
    /// [`Error::Io`] if `msync` fails.
    pub fn flush(&self) -> Result<()> {
        self.map
            .flush()
            .map_err(|e| Error::io("msync", &self.what, e))
    }

    /// Whether a handle other than this segment's own descriptor holds a lock on
    /// the byte at `lock_offset` ([`SENDER_LOCK`], [`RECEIVER_LOCK`] ...): whether
    /// that role's holder is alive. A snapshot.
    ///
    /// # Errors
    /// [`Error::Io`] if `F_OFD_GETLK` fails.
    pub(crate) fn is_role_alive(&self, lock_offset: u64) -> Result<bool> {
        lock::is_locked(self.file.as_fd(), lock_offset)
            .map_err(|e| Error::io("F_OFD_GETLK", &self.what, e))
    }
}

impl<C> Drop for Segment<C> {
    /// Removes the name if this handle created the segment with `unlink_on_drop`,
    /// and only if the name still refers to this segment's file (never a newer
    /// segment of the same name made by a reclaimer), with its doorbells (before
    /// the name, while no creator can reuse it). Errors are ignored.
    fn drop(&mut self) {
        if let Some(named) = self.unlink.take() {
            let _ = names::remove_with_bells_if_ours(&named, &self.file);
        }
    }
}

/// Maps `len` bytes of `file` and attaches `C` to the mapping ([`Contents::attach`]
/// validates its header): how `open` and `from_fd` reach a segment's contents.
/// The caller puts both in the [`Segment`] it returns (or drops both).
fn map_and_attach<C: Contents>(
    file: &File,
    len: usize,
    prefault: bool,
    read_only: bool,
    what: &str,
) -> Result<(MmapRaw, std::result::Result<C, LayoutError>)> {
    let map = map(file, len, prefault, read_only, what)?;
    // SAFETY: `map` is a fresh shared read-write mapping of `map.len()` bytes,
    // returned with the contents to the caller, which keeps them together in the
    // Segment it makes: the mapping outlives the contents (the crate keeps clones
    // of a region within its Segment's life); this process touches it only
    // through shmring handles.
    let contents = unsafe { C::attach(&map) };
    Ok((map, contents))
}

/// Maps `len` bytes of `file` shared, read-write, or with `read_only` only
/// readable (`PROT_READ`: a write through it faults).
fn map(file: &File, len: usize, prefault: bool, read_only: bool, what: &str) -> Result<MmapRaw> {
    let mut options = MmapOptions::new();
    options.len(len);
    if prefault {
        options.populate();
    }
    if read_only {
        options.map_raw_read_only(file)
    } else {
        options.map_raw(file)
    }
    .map_err(|e| Error::io("mmap", what, e))
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};
    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicU32, Ordering};

    use shmring_core::{Consumer, Producer};

    use rustix::fs::OFlags;
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::thread;
    use std::time::Duration;

    use crate::sys::lock::{PRESENCE_LOCK, SENDER_LOCK};

    use super::create::finish_create;
    use super::names::{SHM_DIR, SHM_PREFIX, shm_open, validate_name};
    use super::open::euid;
    use super::*;

    fn unique(tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "test-seg-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The default options for `backing`.
    fn opts(backing: &Backing) -> SegmentOptions {
        SegmentOptions::new(backing.clone())
    }

    fn shm_path(name: &str) -> PathBuf {
        Path::new(SHM_DIR).join(format!("{SHM_PREFIX}{name}"))
    }

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(unique(tag))
    }

    fn token() -> NonZeroU32 {
        NonZeroU32::new(7).unwrap()
    }

    /// Makes `/dev/shm/shmring.<name>` by hand, with no handle left on it (a dead
    /// creator's leftover).
    fn leftover_shm(name: &str, len: u64) {
        let path = shm_path(name);
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR;
        let file = shm_open(&path, flags, 0o600).unwrap();
        file.set_len(len).unwrap();
    }

    #[test]
    fn names_are_validated() {
        let long = "a".repeat(201);
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (&long, "longer than 200 bytes"),
            ("a\0b", "contains a NUL byte"),
            ("a/b", "contains '/'"),
            ("/abs", "contains '/'"),
            (".", "is \".\" or \"..\""),
            ("..", "is \".\" or \"..\""),
            (
                "sp ace",
                "contains a character other than ASCII letters, digits, '.', '_' and '-'",
            ),
            (
                "é",
                "contains a character other than ASCII letters, digits, '.', '_' and '-'",
            ),
            (
                "a*b",
                "contains a character other than ASCII letters, digits, '.', '_' and '-'",
            ),
        ];
        for &(name, expected) in cases {
            for result in [
                Segment::create(&opts(&Backing::Shm(name.to_owned())), 4096),
                Segment::open(&opts(&Backing::Shm(name.to_owned()))),
            ] {
                match result {
                    Err(Error::InvalidName { name: n, reason }) => {
                        assert_eq!(n, name);
                        assert_eq!(reason, expected, "name {name:?}");
                    }
                    other => panic!("name {name:?}: {other:?}"),
                }
            }
        }
        for good in ["a", "A-b_c.d", "...", ".a", "0", &"z".repeat(200)] {
            validate_name(good).unwrap();
        }
        assert!(matches!(
            Segment::open(&opts(&Backing::Memfd)),
            Err(Error::InvalidName { .. })
        ));
    }

    #[test]
    fn shm_create_open_round_trip() {
        let name = unique("rt");
        let backing = Backing::Shm(name.clone());
        let created = Segment::create(&opts(&backing), 4096).unwrap();
        assert_eq!(created.capacity(), 4096);
        assert_eq!(created.len(), DATA_OFFSET + 4096);
        assert_eq!(created.describe(), format!("shm segment \"{name}\""));
        let meta = std::fs::metadata(shm_path(&name)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), (DATA_OFFSET + 4096) as u64);

        let opened = Segment::open(&opts(&backing)).unwrap();
        assert_eq!(opened.capacity(), 4096);
        assert_eq!(opened.len(), DATA_OFFSET + 4096);
        assert!(format!("{opened:?}").contains("Segment"));

        // The same memory: a message pushed through one mapping pops from the other.
        let mut tx = Producer::claim(created.region().clone(), token()).unwrap();
        tx.push(b"across").unwrap();
        let mut rx = Consumer::claim(opened.region().clone(), token()).unwrap();
        let mut buf = [0u8; 16];
        let n = rx.pop(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"across");
        drop((tx, rx));

        assert!(!created.is_role_alive(SENDER_LOCK).unwrap());
        // The other handle's presence lock is visible through ours.
        assert!(created.is_role_alive(PRESENCE_LOCK).unwrap());
        drop(opened);
        assert!(!created.is_role_alive(PRESENCE_LOCK).unwrap());
        created.flush().unwrap();
    }

    #[test]
    fn create_twice_and_open_missing() {
        let name = unique("twice");
        let backing = Backing::Shm(name.clone());
        let _first = Segment::create(&opts(&backing), 4096).unwrap();
        assert!(matches!(
            Segment::create(&opts(&backing), 4096),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(matches!(
            Segment::open(&opts(&Backing::Shm(unique("missing")))),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            Segment::open(&opts(&Backing::File(temp_path("missing")))),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn bad_capacities() {
        for capacity in [0, 100, 1 << 31, 32] {
            let name = unique("cap");
            match Segment::create(&opts(&Backing::Shm(name.clone())), capacity) {
                Err(Error::InvalidCapacity { capacity: c }) => assert_eq!(c, capacity as u64),
                other => panic!("capacity {capacity}: {other:?}"),
            }
            // Nothing was created.
            assert!(!shm_path(&name).exists());
        }
        assert!(matches!(
            Segment::create(&opts(&Backing::Memfd), 100),
            Err(Error::InvalidCapacity { capacity: 100 })
        ));
    }

    #[test]
    fn file_segment_persists() {
        let path = temp_path("file");
        let backing = Backing::File(path.clone());
        {
            let seg = Segment::create(&opts(&backing), 4096).unwrap();
            assert_eq!(seg.describe(), format!("file {}", path.display()));
            let mut tx = Producer::claim(seg.region().clone(), token()).unwrap();
            tx.push(b"kept").unwrap();
            drop(tx);
            seg.flush().unwrap();
        }
        assert!(path.exists());
        {
            let seg = Segment::open(&opts(&backing)).unwrap();
            assert_eq!(seg.capacity(), 4096);
            let mut rx = Consumer::claim(seg.region().clone(), token()).unwrap();
            let mut buf = [0u8; 16];
            let n = rx.pop(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"kept");
        }
        assert!(matches!(
            Segment::create(&opts(&backing), 4096),
            Err(Error::AlreadyExists { .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn file_unlink_on_drop() {
        let path = temp_path("fdrop");
        let options = SegmentOptions {
            unlink_on_drop: Some(true),
            ..opts(&Backing::File(path.clone()))
        };
        let seg = Segment::create(&options, 4096).unwrap();
        assert!(path.exists());
        drop(seg);
        assert!(!path.exists());
    }

    #[test]
    fn truncated_file() {
        let path = temp_path("trunc");
        let backing = Backing::File(path.clone());
        drop(Segment::create(&opts(&backing), 1 << 16).unwrap());
        for (len, expected) in [
            (100, DATA_OFFSET as u64),
            (600, (DATA_OFFSET + (1 << 16)) as u64),
        ] {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len)
                .unwrap();
            match Segment::open(&opts(&backing)) {
                Err(Error::BadSize {
                    size, expected: e, ..
                }) => {
                    assert_eq!(size, len);
                    assert_eq!(e, expected);
                }
                other => panic!("len {len}: {other:?}"),
            }
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn garbage_headers() {
        let path = temp_path("garbage");
        let backing = Backing::File(path.clone());
        drop(Segment::create(&opts(&backing), 4096).unwrap());
        let write_at = |offset: u64, bytes: &[u8]| {
            let mut f = std::fs::File::options().write(true).open(&path).unwrap();
            f.seek(SeekFrom::Start(offset)).unwrap();
            f.write_all(bytes).unwrap();
        };

        write_at(8, &99u32.to_ne_bytes());
        match Segment::open(&opts(&backing)) {
            Err(Error::IncompatibleLayout {
                source: LayoutError::UnsupportedVersion { found: 99, .. },
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        write_at(8, &shmring_core::LAYOUT_VERSION.to_ne_bytes());
        Segment::open(&opts(&backing)).unwrap();

        // An unknown protocol flag.
        write_at(56, &0x8000_0000u32.to_ne_bytes());
        assert!(matches!(
            Segment::open(&opts(&backing)),
            Err(Error::Corrupted { .. })
        ));
        write_at(56, &0u32.to_ne_bytes());

        // A capacity the rest of the header does not match.
        write_at(16, &8192u64.to_ne_bytes());
        assert!(matches!(
            Segment::open(&opts(&backing)),
            Err(Error::Corrupted { .. })
        ));
        write_at(0, &0x0123_4567_89ab_cdefu64.to_ne_bytes());
        assert!(matches!(
            Segment::open(&opts(&backing)),
            Err(Error::Corrupted { .. })
        ));
        // Magic zero: an unfinished creation, waited for briefly then refused.
        write_at(0, &0u64.to_ne_bytes());
        match Segment::open(&opts(&backing)) {
            Err(Error::Corrupted { .. }) => {}
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn untrusted_mode_is_refused() {
        let name = unique("mode");
        let backing = Backing::Shm(name);
        let loose = SegmentOptions {
            mode: 0o666,
            ..opts(&backing)
        };
        let _seg = Segment::create(&loose, 4096).unwrap();
        match Segment::open(&opts(&backing)) {
            Err(Error::Untrusted { mode, .. }) => assert_eq!(mode, 0o666),
            other => panic!("{other:?}"),
        }
        let other_owner = SegmentOptions {
            owner: Some(euid().wrapping_add(1)),
            ..opts(&backing)
        };
        assert!(matches!(
            Segment::open(&other_owner),
            Err(Error::Untrusted { .. })
        ));
        let trusting = SegmentOptions {
            allowed_mode: 0o666,
            ..opts(&backing)
        };
        Segment::open(&trusting).unwrap();
    }

    #[test]
    fn memfd_create_and_from_fd() {
        let seg = Segment::create(&opts(&Backing::Memfd), 4096).unwrap();
        assert_eq!(seg.describe(), "memfd");
        let dup = seg.fd().try_clone_to_owned().unwrap();
        let other = Segment::from_fd(dup, &SegmentOptions::default()).unwrap();
        assert_eq!(other.capacity(), 4096);
        assert_eq!(other.describe(), "memfd");

        let mut tx = Producer::claim(seg.region().clone(), token()).unwrap();
        tx.push(b"memfd").unwrap();
        let mut rx = Consumer::claim(other.region().clone(), token()).unwrap();
        let mut buf = [0u8; 16];
        let n = rx.pop(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"memfd");

        // Sealed: neither shrinking nor growing is allowed.
        let file = File::from(seg.fd().try_clone_to_owned().unwrap());
        for len in [0, 100, 1 << 20] {
            let e = file.set_len(len).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "len {len}");
        }
    }

    #[test]
    fn from_fd_refuses_unsealed_memfd_and_accepts_shm() {
        let owned = rustix::fs::memfd_create(c"unsealed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        File::from(owned.try_clone().unwrap())
            .set_len((DATA_OFFSET + 4096) as u64)
            .unwrap();
        match Segment::from_fd(owned, &SegmentOptions::default()) {
            Err(Error::Io {
                op: "F_GET_SEALS",
                source,
                ..
            }) => {
                assert_eq!(source.kind(), io::ErrorKind::InvalidInput);
            }
            other => panic!("{other:?}"),
        }

        let name = unique("fromfd");
        let seg = Segment::create(&opts(&Backing::Shm(name.clone())), 4096).unwrap();
        let other = Segment::from_fd(
            seg.fd().try_clone_to_owned().unwrap(),
            &SegmentOptions::default(),
        )
        .unwrap();
        assert_eq!(other.capacity(), 4096);
        assert_eq!(other.describe(), format!("shm segment \"{name}\""));

        // Too small: refused before mapping.
        let path = temp_path("fromfd-small");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let f = File::open(&path).unwrap();
        assert!(matches!(
            Segment::from_fd(f.into(), &SegmentOptions::default()),
            Err(Error::BadSize { size: 100, .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn only_dead_segments_are_reclaimed() {
        let name = unique("reclaim");
        let backing = Backing::Shm(name.clone());
        leftover_shm(&name, 4096);
        // Without reclaim the leftover blocks the name.
        assert!(matches!(
            Segment::create(&opts(&backing), 4096),
            Err(Error::AlreadyExists { .. })
        ));
        let reclaiming = SegmentOptions {
            reclaim: true,
            ..opts(&backing)
        };
        let seg = Segment::create(&reclaiming, 4096).unwrap();
        assert_eq!(seg.capacity(), 4096);
        // A live segment is never reclaimed.
        assert!(matches!(
            Segment::create(&reclaiming, 4096),
            Err(Error::AlreadyExists { .. })
        ));
        let seg_ino = std::fs::metadata(shm_path(&name)).unwrap().ino();
        drop(seg);
        assert!(!shm_path(&name).exists());

        // Nor one that only an opener keeps alive.
        let keep = SegmentOptions {
            unlink_on_drop: Some(false),
            ..opts(&backing)
        };
        let creator = Segment::create(&keep, 4096).unwrap();
        let opened = Segment::open(&opts(&backing)).unwrap();
        drop(creator);
        assert!(matches!(
            Segment::create(&reclaiming, 4096),
            Err(Error::AlreadyExists { .. })
        ));
        drop(opened);
        let again = Segment::create(&reclaiming, 4096).unwrap();
        assert_ne!(std::fs::metadata(shm_path(&name)).unwrap().ino(), seg_ino);
        drop(again);
        assert!(!shm_path(&name).exists());

        // A leftover of size zero (a creator that died at once) is reclaimed too.
        leftover_shm(&name, 0);
        drop(Segment::create(&reclaiming, 4096).unwrap());
        assert!(!shm_path(&name).exists());
    }

    #[test]
    fn unlink_on_drop_only_our_inode() {
        let name = unique("drop");
        let backing = Backing::Shm(name.clone());
        let seg = Segment::create(&opts(&backing), 4096).unwrap();
        assert!(shm_path(&name).exists());
        drop(seg);
        assert!(!shm_path(&name).exists());

        let keep = SegmentOptions {
            unlink_on_drop: Some(false),
            ..opts(&backing)
        };
        drop(Segment::create(&keep, 4096).unwrap());
        assert!(shm_path(&name).exists());
        std::fs::remove_file(shm_path(&name)).unwrap();

        // A newer segment under the same name survives the older one's drop.
        let old = Segment::create(&opts(&backing), 4096).unwrap();
        std::fs::remove_file(shm_path(&name)).unwrap();
        let newer = Segment::create(&opts(&backing), 4096).unwrap();
        drop(old);
        assert!(shm_path(&name).exists());
        drop(newer);
        assert!(!shm_path(&name).exists());
    }

    /// `shm_open`'s `O_NOFOLLOW`: a symbolic link planted at a segment's name is
    /// not followed, to the segment it points at or anywhere else.
    #[test]
    fn open_does_not_follow_a_symlink_at_the_name() {
        let target = Backing::Shm(unique("target"));
        let _seg = Segment::create(&opts(&target), 4096).unwrap();
        let link = unique("link");
        let Backing::Shm(target_name) = &target else {
            unreachable!()
        };
        std::os::unix::fs::symlink(shm_path(target_name), shm_path(&link)).unwrap();
        let opened = Segment::open(&opts(&Backing::Shm(link.clone())));
        let _ = std::fs::remove_file(shm_path(&link));
        match opened {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ELOOP), "{source}")
            }
            other => panic!("expected ELOOP, got {other:?}"),
        }
    }

    #[test]
    fn open_waits_for_a_creator() {
        let name = unique("wait");
        let backing = Backing::Shm(name.clone());
        // A creator that has made and locked the object but not sized it yet.
        let path = shm_path(&name);
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR;
        let file = shm_open(&path, flags, 0o600).unwrap();
        assert!(lock::try_lock(file.as_fd(), PRESENCE_LOCK, false).unwrap());
        let opener = {
            let backing = backing.clone();
            thread::spawn(move || Segment::open(&opts(&backing)).map(|s| s.capacity()))
        };
        thread::sleep(Duration::from_millis(30));
        let (map, region) = finish_create(
            &file,
            "test",
            DATA_OFFSET + 4096,
            4096,
            &opts(&backing),
            false,
        )
        .unwrap();
        assert_eq!(opener.join().unwrap().unwrap(), 4096);
        drop((region, map, file));
        std::fs::remove_file(shm_path(&name)).unwrap();
    }

    #[test]
    fn list_shows_segments() {
        let name = unique("list");
        let seg = Segment::create(&opts(&Backing::Shm(name.clone())), 8192).unwrap();
        let mut tx = Producer::claim(seg.region().clone(), token()).unwrap();
        tx.push(&[1; 100]).unwrap();
        drop(tx);
        let bad = unique("list-bad");
        leftover_shm(&bad, 100);

        let list = list_objects().unwrap();
        let entry = list.iter().find(|s| s.name == name).expect("listed");
        assert_eq!(entry.size, (DATA_OFFSET + 8192) as u64);
        assert_eq!(entry.owner_uid, euid());
        assert_eq!(entry.mode, 0o600);
        assert_eq!(entry.kind, Some(ObjectKind::Channel));
        assert_eq!(entry.files[0].handles_alive, Some(true));
        assert!(!entry.stale);
        let Ok(ObjectState::Channel(state)) = entry.state.clone() else {
            panic!("a channel: {:?}", entry.state)
        };
        assert_eq!(state.header.capacity, 8192);
        assert!(state.used >= 100);
        assert!(!state.sender.live && !state.receiver.live);

        let entry = list.iter().find(|s| s.name == bad).expect("listed");
        assert!(entry.state.is_err());
        std::fs::remove_file(shm_path(&bad)).unwrap();
    }
}
