//! Shared-memory segments: a file (a named POSIX shared memory object, a regular
//! file or an anonymous memfd), its mapping, and the validated core ring layout in
//! it.
//!
//! Named segments (`/dev/shm/shmring.<name>` and files) carry a liveness mark: every
//! [`Segment`] holds a shared OFD lock on the byte `PRESENCE_LOCK` of its file
//! while it lives (see `crate::lock`). A creator asked to *reclaim* a name takes
//! that lock exclusively, which succeeds only when no handle on the segment is alive
//! anywhere, and only then removes the name. Every creator and opener takes its
//! shared lock first and then checks that the name still refers to the file it
//! opened, so nobody keeps using a file a reclaimer has just unlinked.

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use shmring_core::{
    DATA_OFFSET, LayoutError, MAX_CAPACITY, RawRegion, SegmentInfo, segment_layout,
};

use crate::blocking::WaitStrategy;
use crate::error::{Error, Result};
use crate::sys::lock::{self, PRESENCE_LOCK, RECEIVER_LOCK, SENDER_LOCK};

/// Where named shared memory objects live on Linux.
const SHM_DIR: &str = "/dev/shm";
/// Prefix of every shmring object in [`SHM_DIR`] (and of its `shm_open` name, after
/// the leading `/`).
const SHM_PREFIX: &str = "shmring.";
/// Longest segment name accepted, in bytes (the object's file name adds the prefix,
/// well within `NAME_MAX`).
const MAX_NAME_LEN: usize = 200;
/// How often a create or open starts again after losing a race with a reclaimer (the
/// name was unlinked or replaced between two system calls).
const MAX_RACES: u32 = 8;
/// How long an open waits for a segment that is still being created (size zero or
/// magic not yet written) while another handle on it is alive: its creator.
const INIT_WAIT: Duration = Duration::from_secs(2);
/// How long an open waits for such a segment when no other handle on it is alive
/// (its creator may be between `shm_open` and taking its lock, or dead).
const INIT_GRACE: Duration = Duration::from_millis(20);
/// Pause between two attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

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
}

impl Contents for RawRegion {
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
    /// `fd` is closed (on success too): the segment holds its lock through a
    /// description of its own, reopened through `/proc/self/fd`, so no lock stays
    /// on descriptors sharing `fd`'s description once the segment is dropped or
    /// the open fails.
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
        let map = map(&file, len, options.prefault, &what)?;
        // SAFETY: `map` is a shared read-write mapping of `map.len()` bytes that the
        // returned Segment owns alongside the region, so it outlives the region
        // (the crate keeps clones of the region within the Segment's life); this
        // process touches it only through shmring handles.
        let region = unsafe { C::attach(&map) }.map_err(|e| Error::layout(&what, e))?;
        Ok(Segment {
            region,
            map,
            file,
            what,
            unlink: None,
        })
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
    /// segment of the same name made by a reclaimer). Errors are ignored.
    fn drop(&mut self) {
        if let Some(named) = self.unlink.take() {
            let _ = remove_if_ours(&named, &self.file);
        }
    }
}

/// A shmring shared memory segment as [`list_segments`] sees it.
#[derive(Debug, Clone)]
pub struct SegmentStatus {
    /// The segment's name (without the `shmring.` prefix of its file name).
    pub name: String,
    /// Size of the object in bytes.
    pub size: u64,
    /// Owner's uid.
    pub owner_uid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// What kind of object the header says it is (`None`: no shmring header could
    /// be read: too short, not yet initialised, or another program's file).
    pub kind: Option<SegmentKind>,
    /// For a channel ([`SegmentKind::Channel`]): what its header and locks say, or
    /// why they could not be read. For the other kinds: an error naming the kind
    /// (only channels are inspected further).
    pub state: Result<SegmentState, String>,
}

/// The kind of shmring object in a segment, from the kind word that every
/// shmring header keeps at the same offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A single-producer single-consumer channel ([`ChannelBuilder`](crate::channel::ChannelBuilder)).
    Channel,
    /// A many-to-many channel ([`MpmcChannelBuilder`](crate::mpmc::MpmcChannelBuilder)).
    MpmcChannel,
    /// A named event ([`EventBuilder`](crate::event::EventBuilder)).
    Event,
    /// A named semaphore ([`SemaphoreBuilder`](crate::semaphore::SemaphoreBuilder)).
    Semaphore,
    /// A kind word this version does not know (a newer shmring, or corruption).
    Unknown(u32),
}

impl SegmentKind {
    /// Reads the kind from the first 16 bytes of a header: the magic (in this
    /// machine's byte order), the layout version, then the kind word.
    fn from_header(header: &[u8]) -> Option<Self> {
        use shmring_core::layout::{
            MAGIC, OBJECT_KIND_EVENT, OBJECT_KIND_SEMAPHORE, RING_KIND_MPMC, RING_KIND_SPSC,
        };
        let magic = u64::from_ne_bytes(header.get(0..8)?.try_into().ok()?);
        if magic != MAGIC {
            return None;
        }
        let kind = u32::from_ne_bytes(header.get(12..16)?.try_into().ok()?);
        Some(match kind {
            RING_KIND_SPSC => Self::Channel,
            RING_KIND_MPMC => Self::MpmcChannel,
            OBJECT_KIND_EVENT => Self::Event,
            OBJECT_KIND_SEMAPHORE => Self::Semaphore,
            other => Self::Unknown(other),
        })
    }
}

/// What a listed segment's header and locks say (a snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentState {
    /// Bytes in the ring's data region.
    pub capacity: usize,
    /// Bytes of messages not yet released by a receiver (the producer's published
    /// position less the consumer's, zero if that would be negative).
    pub used: u64,
    /// A sender holds its lock.
    pub sender_alive: bool,
    /// A receiver holds its lock.
    pub receiver_alive: bool,
    /// Some handle on the segment (a channel, an endpoint, a creator) is alive.
    pub handles_alive: bool,
}

/// Lists the shmring segments in `/dev/shm` (file names starting with `shmring.`),
/// sorted by name.
///
/// Each header is read with `pread` (no mapping) and validated by
/// [`SegmentInfo::parse`]; the sender, receiver and presence locks are probed with
/// `F_OFD_GETLK`. An entry that cannot be opened or read is listed with the error's
/// text in [`SegmentStatus::state`]; one removed while the list is made is left
/// out. Files and memfd segments are not listed.
///
/// # Errors
/// [`Error::NotFound`] or [`Error::Io`] if `/dev/shm` cannot be read.
pub fn list_segments() -> Result<Vec<SegmentStatus>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::io("read_dir", SHM_DIR, e))?;
    let mut list = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| Error::io("read_dir", SHM_DIR, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.as_bytes().strip_prefix(SHM_PREFIX.as_bytes()) else {
            continue;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        // An entry removed since the directory was read is left out.
        if let Some(status) = status_of(name, &entry.path()) {
            list.push(status);
        }
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

fn status_of(name: String, path: &Path) -> Option<SegmentStatus> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|file| file.metadata().map(|meta| (file, meta)));
    match opened {
        Ok((file, meta)) => {
            let (kind, state) = probe(&file, &meta);
            Some(SegmentStatus {
                name,
                size: meta.size(),
                owner_uid: meta.uid(),
                mode: meta.mode() & 0o7777,
                kind,
                state,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            let meta = std::fs::symlink_metadata(path).ok();
            Some(SegmentStatus {
                name,
                size: meta.as_ref().map_or(0, |m| m.size()),
                owner_uid: meta.as_ref().map_or(0, |m| m.uid()),
                mode: meta.as_ref().map_or(0, |m| m.mode() & 0o7777),
                kind: None,
                state: Err(e.to_string()),
            })
        }
    }
}

fn probe(
    file: &File,
    meta: &std::fs::Metadata,
) -> (Option<SegmentKind>, Result<SegmentState, String>) {
    if !meta.file_type().is_file() {
        return (None, Err("not a regular file".to_owned()));
    }
    let mut header = [0u8; DATA_OFFSET];
    let n = match read_full_at(file, &mut header) {
        Ok(n) => n,
        Err(e) => return (None, Err(format!("pread: {e}"))),
    };
    let kind = SegmentKind::from_header(&header[..n]);
    let state = match kind {
        Some(SegmentKind::Channel) | None => probe_channel(file, meta, &header[..n]),
        Some(other) => Err(format!("{other:?}: only channels are inspected")),
    };
    (kind, state)
}

fn probe_channel(
    file: &File,
    meta: &std::fs::Metadata,
    header: &[u8],
) -> Result<SegmentState, String> {
    let info = SegmentInfo::parse(header, meta.size()).map_err(|e| e.to_string())?;
    let locked =
        |offset| lock::is_locked(file.as_fd(), offset).map_err(|e| format!("F_OFD_GETLK: {e}"));
    Ok(SegmentState {
        capacity: info.capacity,
        used: info.write_position.saturating_sub(info.read_position),
        sender_alive: locked(SENDER_LOCK)?,
        receiver_alive: locked(RECEIVER_LOCK)?,
        handles_alive: locked(PRESENCE_LOCK)?,
    })
}

/// Reads from offset 0 until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A segment with a name in the file system: what create, open, reclaim and drop
/// need to reach it.
#[derive(Debug)]
enum Named {
    Shm {
        /// `"/shmring.<name>"`, for `shm_open` and `shm_unlink`.
        shm_name: CString,
        /// `/dev/shm/shmring.<name>`, to compare the name's inode with ours.
        path: PathBuf,
        what: String,
    },
    File {
        /// Made absolute at creation, so a change of directory does not redirect it.
        path: PathBuf,
        what: String,
    },
}

impl Named {
    /// The name of `backing`, validated; `None` for a memfd.
    fn new(backing: &Backing) -> Result<Option<Named>> {
        Ok(Some(match backing {
            Backing::Shm(name) => {
                validate_name(name)?;
                let object = format!("{SHM_PREFIX}{name}");
                let shm_name =
                    CString::new(format!("/{object}")).map_err(|_| Error::InvalidName {
                        name: name.clone(),
                        reason: "contains a NUL byte",
                    })?;
                Named::Shm {
                    shm_name,
                    path: Path::new(SHM_DIR).join(object),
                    what: format!("shm segment {name:?}"),
                }
            }
            Backing::File(path) => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                let what = format!("file {}", path.display());
                Named::File { path, what }
            }
            Backing::Memfd => return Ok(None),
        }))
    }

    fn what(&self) -> &str {
        match self {
            Named::Shm { what, .. } | Named::File { what, .. } => what,
        }
    }

    /// The system call that opens it, for errors.
    fn open_op(&self) -> &'static str {
        match self {
            Named::Shm { .. } => "shm_open",
            Named::File { .. } => "open",
        }
    }

    /// Creates it exclusively, read-write, close-on-exec, mode `0o600`.
    fn create_excl(&self) -> io::Result<File> {
        match self {
            Named::Shm { shm_name, .. } => shm_open(
                shm_name,
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600,
            ),
            // std opens close-on-exec; create_new is O_CREAT | O_EXCL.
            Named::File { path, .. } => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path),
        }
    }

    /// Opens it read-write, close-on-exec.
    fn open_rw(&self) -> io::Result<File> {
        match self {
            Named::Shm { shm_name, .. } => shm_open(shm_name, libc::O_RDWR | libc::O_CLOEXEC, 0),
            Named::File { path, .. } => OpenOptions::new().read(true).write(true).open(path),
        }
    }

    /// The device and inode the name refers to now; `None` if it is gone. A shm
    /// object's name is not followed if it is a symbolic link (`shm_open` uses
    /// `O_NOFOLLOW`); a file's path is (as `open` follows it).
    fn stat(&self) -> io::Result<Option<(u64, u64)>> {
        let meta = match self {
            Named::Shm { path, .. } => std::fs::symlink_metadata(path),
            Named::File { path, .. } => std::fs::metadata(path),
        };
        match meta {
            Ok(m) => Ok(Some((m.dev(), m.ino()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the name (`shm_unlink` or `unlink`).
    fn unlink(&self) -> io::Result<()> {
        match self {
            Named::Shm { shm_name, .. } => Ok(rustix::shm::unlink(shm_name.as_c_str())?),
            Named::File { path, .. } => std::fs::remove_file(path),
        }
    }

    fn unlink_op(&self) -> &'static str {
        match self {
            Named::Shm { .. } => "shm_unlink",
            Named::File { .. } => "unlink",
        }
    }
}

/// Takes ownership of the descriptor whose number a parent put in the
/// environment variable `var` (`pass_to` on a channel).
///
/// # Errors
/// [`Error::NotFound`] if the variable is unset, not a number, or names no open
/// descriptor.
///
/// # Safety
/// The descriptor the variable names was passed to this process for the caller's
/// object, and nothing else in the process owns it: the returned handle closes it
/// when it drops. So call this at most once per variable.
pub(crate) unsafe fn inherited_fd(var: &str) -> Result<OwnedFd> {
    let not_found = || Error::NotFound {
        what: format!("inherited descriptor in ${var}"),
    };
    let fd: i32 = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&fd| fd >= 0)
        .ok_or_else(not_found)?;
    // SAFETY: by the caller's contract, passed to us for this object and owned by
    // nothing else.
    unsafe { crate::sys::inherit::take_inherited(fd) }.ok_or_else(not_found)
}

/// Checks a shared memory segment's name (before any system call).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 200 bytes"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else if name.contains('/') {
        "contains '/'"
    } else if name == "." || name == ".." {
        "is \".\" or \"..\""
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "contains a character other than ASCII letters, digits, '.', '_' and '-'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

fn shm_open(name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
    // SAFETY: `name` is a NUL-terminated string alive across the call.
    let fd = unsafe { libc::shm_open(name.as_ptr(), flags, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by shm_open: open, and owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Whether `name` refers to the file open as `file`.
fn is_ours(named: &Named, file: &File) -> io::Result<bool> {
    let ours = file.metadata()?;
    Ok(named.stat()? == Some((ours.dev(), ours.ino())))
}

/// Removes `named` if it still refers to `file`. Our presence lock keeps reclaimers
/// off the name between the check and the removal.
fn remove_if_ours(named: &Named, file: &File) -> io::Result<()> {
    if is_ours(named, file)? {
        match named.unlink() {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn create_named<C>(
    named: Named,
    size: usize,
    options: &SegmentOptions,
    init: Init<'_, C>,
) -> Result<Segment<C>> {
    let what = named.what().to_owned();
    for _ in 0..MAX_RACES {
        let file = match named.create_excl() {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if options.reclaim {
                    remove_if_dead(&named)?;
                    continue;
                }
                return Err(Error::AlreadyExists { what });
            }
            Err(e) => return Err(Error::io(named.open_op(), what, e)),
        };
        // The lock first: from here on no reclaimer can remove the name. Before it, a
        // reclaimer may have found our fresh file with no handle alive and removed
        // it: then the name no longer refers to our file, and we start again.
        let locked = lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
            .map_err(|e| Error::io("F_OFD_SETLK", &what, e))?;
        if !locked || !is_ours(&named, &file).map_err(|e| Error::io("stat", &what, e))? {
            continue;
        }
        return match finish_create_with(
            &file,
            &what,
            size,
            options.mode,
            options.prefault,
            false,
            init,
        ) {
            Ok((map, region)) => Ok(Segment {
                region,
                map,
                file,
                what,
                unlink: options.unlinks_on_drop().then_some(named),
            }),
            Err(e) => {
                let _ = remove_if_ours(&named, &file);
                Err(e)
            }
        };
    }
    Err(Error::AlreadyExists { what })
}

/// Removes `named` if no handle on it is alive. `Ok` when the name is gone (or was
/// gone already): the caller retries its exclusive create.
fn remove_if_dead(named: &Named) -> Result<()> {
    let what = named.what();
    let file = match named.open_rw() {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(named.open_op(), what, e)),
    };
    let free = lock::try_lock(file.as_fd(), PRESENCE_LOCK, true)
        .map_err(|e| Error::io("F_OFD_SETLK", what, e))?;
    if !free {
        return Err(Error::AlreadyExists {
            what: what.to_owned(),
        });
    }
    // Holding the exclusive lock, nobody can start using the file (they re-check
    // the name after taking their shared lock, and would fail to take it now).
    remove_if_ours(named, &file).map_err(|e| Error::io(named.unlink_op(), what, e))?;
    drop(file);
    Ok(())
}

fn create_memfd<C>(size: usize, options: &SegmentOptions, init: Init<'_, C>) -> Result<Segment<C>> {
    let what = "memfd".to_owned();
    let fd = crate::sys::memfd::create(c"shmring").map_err(|e| match e.kind() {
        io::ErrorKind::Unsupported => Error::Unsupported {
            what: "memfd_create",
        },
        _ => Error::io("memfd_create", &what, e),
    })?;
    let file = File::from(fd);
    // Harmless for a memfd (no name, no reclaimer), and uniform: every Segment holds
    // its presence lock.
    lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
        .map_err(|e| Error::io("F_OFD_SETLK", &what, e))?;
    // Only holders of the descriptor reach a memfd: its mode only matters to the
    // reopen through /proc/self/fd that every endpoint makes for its own lock, and
    // must not refuse a holder of another uid.
    let (map, region) =
        finish_create_with(&file, &what, size, 0o666, options.prefault, true, init)?;
    Ok(Segment {
        region,
        map,
        file,
        what,
        unlink: None,
    })
}

/// The file behind `given` through an open file description of our own, holding
/// this handle's presence lock; `given` is closed.
///
/// The lock must not go on `given`'s description: that description is shared with
/// every descriptor duplicated from it (the caller's own, when it passed a
/// duplicate, as the C API does), so a lock there would outlive this handle and a
/// failed open, making the segment look alive to reclaim and listing (and a later
/// open wait for a creator) while the caller keeps its descriptor.
///
/// If this process may not open the file itself (reopening through
/// `/proc/self/fd` checks the file's mode: another uid's `0o600` object handed
/// over), `given` is kept and no presence lock is taken: the segment then looks
/// dead to a reclaimer, which may remove its name; the file stays valid for us.
fn own_description(given: File, what: &str) -> Result<File> {
    let file = match lock::reopen(given.as_fd()) {
        Ok(own) => own,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(given),
        Err(e) => return Err(Error::io("reopen", what, e)),
    };
    drop(given);
    // A false result means a reclaimer holds the lock exclusively and is about to
    // remove the segment's name; the file itself stays valid for us, and the peer
    // that handed it over keeps it alive.
    lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
        .map_err(|e| Error::io("F_OFD_SETLK", what, e))?;
    Ok(file)
}

/// Sets the mode, reserves `size` bytes, seals a memfd, maps and initialises a ring.
#[cfg(test)]
fn finish_create(
    file: &File,
    what: &str,
    size: usize,
    capacity: usize,
    options: &SegmentOptions,
    seal: bool,
) -> Result<(MmapRaw, RawRegion)> {
    let init = |map: &MmapRaw, what: &str| init_ring(map, what, capacity, options);
    finish_create_with(
        file,
        what,
        size,
        options.mode,
        options.prefault,
        seal,
        &init,
    )
}

/// Sets the permission bits to `mode`, reserves `size` bytes, seals a memfd, maps
/// (with `MAP_POPULATE` if `prefault`) and initialises with `init`.
fn finish_create_with<C>(
    file: &File,
    what: &str,
    size: usize,
    mode: u32,
    prefault: bool,
    seal: bool,
    init: Init<'_, C>,
) -> Result<(MmapRaw, C)> {
    file.set_permissions(Permissions::from_mode(mode & 0o777))
        .map_err(|e| Error::io("fchmod", what, e))?;
    allocate(file, size, what)?;
    if seal {
        crate::sys::memfd::seal(file.as_fd()).map_err(|e| Error::io("F_ADD_SEALS", what, e))?;
    }
    let map = map(file, size, prefault, what)?;
    let contents = init(&map, what)?;
    Ok((map, contents))
}

/// Initialises a fresh ring of `capacity` bytes in `map`.
fn init_ring(
    map: &MmapRaw,
    what: &str,
    capacity: usize,
    options: &SegmentOptions,
) -> Result<RawRegion> {
    let flags = if options.asymmetric_fences && crate::futex::register_membarrier() {
        shmring_core::FLAG_ASYMMETRIC_FENCES
    } else {
        0
    };
    // SAFETY: `map` is a fresh shared read-write mapping of `size` bytes (page
    // aligned, so 128-aligned) that the Segment will own alongside the region;
    // nobody else touches it during init (an opener does not use a segment before
    // its magic is published); afterwards this process touches it only through
    // shmring handles.
    unsafe { RawRegion::init_with_flags(map.as_mut_ptr(), map.len(), capacity, flags) }
        .map_err(|e| Error::layout(what, e))
}

/// `posix_fallocate(fd, 0, size)`: reserves the pages (tmpfs included), so a full
/// file system fails here and not with `SIGBUS` on first touch.
fn allocate(file: &File, size: usize, what: &str) -> Result<()> {
    let len = libc::off_t::try_from(size).map_err(|_| Error::NoSpace {
        what: what.to_owned(),
        size: size as u64,
    })?;
    loop {
        // SAFETY: a plain system call on an open descriptor; no memory is passed.
        // posix_fallocate returns the error number (it does not set errno).
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            libc::ENOSPC => {
                return Err(Error::NoSpace {
                    what: what.to_owned(),
                    size: size as u64,
                });
            }
            errno => {
                return Err(Error::io(
                    "posix_fallocate",
                    what,
                    io::Error::from_raw_os_error(errno),
                ));
            }
        }
    }
}

fn map(file: &File, len: usize, prefault: bool, what: &str) -> Result<MmapRaw> {
    let mut options = MmapOptions::new();
    options.len(len);
    if prefault {
        options.populate();
    }
    options
        .map_raw(file)
        .map_err(|e| Error::io("mmap", what, e))
}

/// What one open attempt came to.
enum Attempt<C> {
    Ready(Segment<C>),
    /// Lost a race with a reclaimer (or a creator's cleanup): start again.
    Raced(Error),
    /// The segment is still being created; `creator_alive` if another handle on it
    /// is alive.
    Initializing {
        error: Error,
        creator_alive: bool,
    },
}

fn open_named<C: Contents>(named: Named, options: &SegmentOptions) -> Result<Segment<C>> {
    let start = Instant::now();
    let mut races = 0;
    loop {
        match open_attempt(&named, options)? {
            Attempt::Ready(segment) => return Ok(segment),
            Attempt::Raced(error) => {
                races += 1;
                if races >= MAX_RACES {
                    return Err(error);
                }
            }
            Attempt::Initializing {
                error,
                creator_alive,
            } => {
                let budget = if creator_alive { INIT_WAIT } else { INIT_GRACE };
                if start.elapsed() >= budget {
                    return Err(error);
                }
            }
        }
        thread::sleep(RETRY_PAUSE);
    }
}

fn open_attempt<C: Contents>(named: &Named, options: &SegmentOptions) -> Result<Attempt<C>> {
    let what = named.what();
    let file = named
        .open_rw()
        .map_err(|e| Error::io(named.open_op(), what, e))?;
    let gone = || Error::NotFound {
        what: what.to_owned(),
    };
    // Shared lock, then the name check: a reclaimer (exclusive lock) is either done
    // (the name no longer refers to this file) or cannot start.
    let locked = lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
        .map_err(|e| Error::io("F_OFD_SETLK", what, e))?;
    if !locked || !is_ours(named, &file).map_err(|e| Error::io("stat", what, e))? {
        return Ok(Attempt::Raced(gone()));
    }
    let meta = file.metadata().map_err(|e| Error::io("fstat", what, e))?;
    check_trust(&meta, options, what)?;
    let creator_alive = || lock::is_locked(file.as_fd(), PRESENCE_LOCK).unwrap_or(false);
    if meta.size() == 0 && meta.file_type().is_file() {
        // Created, not yet sized.
        return Ok(Attempt::Initializing {
            error: Error::BadSize {
                what: what.to_owned(),
                size: 0,
                expected: C::MIN_SIZE,
            },
            creator_alive: creator_alive(),
        });
    }
    let len = check_size::<C>(&meta, what)?;
    let map = map(&file, len, options.prefault, what)?;
    // SAFETY: `map` is a shared read-write mapping of `map.len()` bytes (the size we
    // validated) that the Segment owns alongside the region; this process touches
    // it only through shmring handles.
    let region = match unsafe { C::attach(&map) } {
        Ok(region) => region,
        Err(LayoutError::Uninitialized) => {
            return Ok(Attempt::Initializing {
                error: Error::layout(what, LayoutError::Uninitialized),
                creator_alive: creator_alive(),
            });
        }
        Err(e) => return Err(Error::layout(what, e)),
    };
    Ok(Attempt::Ready(Segment {
        region,
        map,
        file,
        what: what.to_owned(),
        unlink: None,
    }))
}

fn euid() -> u32 {
    crate::sys::euid()
}

/// Owner and mode checks of an opened segment.
fn check_trust(meta: &std::fs::Metadata, options: &SegmentOptions, what: &str) -> Result<()> {
    let expected_owner = options.owner.unwrap_or_else(euid);
    let mode = meta.mode() & 0o7777;
    if meta.uid() != expected_owner || mode & !options.allowed_mode & 0o777 != 0 {
        return Err(Error::Untrusted {
            what: what.to_owned(),
            owner: meta.uid(),
            mode,
            expected_owner,
            allowed_mode: options.allowed_mode,
        });
    }
    Ok(())
}

fn page_size() -> u64 {
    // Not rustix's `param::page_size`, which parses the auxiliary vector and
    // faults under valgrind.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Checks that the file is a regular file whose size can hold `C`'s header and at
/// most the largest `C` (for a ring: the largest ring); returns the size to map.
fn check_size<C: Contents>(meta: &std::fs::Metadata, what: &str) -> Result<usize> {
    if !meta.file_type().is_file() {
        return Err(Error::Io {
            op: "fstat",
            what: what.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let size = meta.size();
    let page = page_size();
    let max = C::MAX_SIZE.div_ceil(page) * page;
    let expected = if size < C::MIN_SIZE {
        C::MIN_SIZE
    } else if size > max {
        max
    } else {
        return usize::try_from(size).map_err(|_| Error::BadSize {
            what: what.to_owned(),
            size,
            expected: max,
        });
    };
    Err(Error::BadSize {
        what: what.to_owned(),
        size,
        expected,
    })
}

/// Describes a handed-over descriptor from its `/proc/self/fd` link, and tells
/// whether it is a memfd.
fn describe_fd(file: &File) -> (String, bool) {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
    match link {
        Ok(target) => {
            let bytes = target.as_os_str().as_bytes();
            if bytes.starts_with(b"/memfd:") {
                ("memfd".to_owned(), true)
            } else if let Some(name) = target
                .strip_prefix(SHM_DIR)
                .ok()
                .and_then(|rest| rest.to_str())
                .and_then(|rest| rest.strip_prefix(SHM_PREFIX))
            {
                (format!("shm segment {name:?}"), false)
            } else {
                (format!("file {}", target.display()), false)
            }
        }
        Err(_) => (format!("segment fd {}", file.as_raw_fd()), false),
    }
}

/// A memfd must be sealed against shrinking; other descriptors are accepted.
fn check_seals(file: &File, what: &str, is_memfd: bool) -> Result<()> {
    let seals = match crate::sys::memfd::seals(file.as_fd()) {
        Ok(seals) => seals,
        // Not a sealable file (a regular file on disk).
        Err(e) if e.kind() == io::ErrorKind::InvalidInput && !is_memfd => return Ok(()),
        Err(e) => return Err(Error::io("F_GET_SEALS", what, e)),
    };
    if seals.contains(rustix::fs::SealFlags::SHRINK) || !is_memfd {
        // A named shared memory object (tmpfs) reports seals too, but can never be
        // sealed (F_SEAL_SEAL from birth): it carries the documented hazard.
        return Ok(());
    }
    Err(Error::Io {
        op: "F_GET_SEALS",
        what: what.to_owned(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "memfd not sealed against shrinking (F_SEAL_SHRINK): a peer could truncate it under our mapping",
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};
    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicU32, Ordering};

    use shmring_core::{Consumer, Producer};

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
        let path = CString::new(format!("/{SHM_PREFIX}{name}")).unwrap();
        let file = shm_open(
            &path,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
        .unwrap();
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

    #[test]
    fn open_waits_for_a_creator() {
        let name = unique("wait");
        let backing = Backing::Shm(name.clone());
        // A creator that has made and locked the object but not sized it yet.
        let path = CString::new(format!("/{SHM_PREFIX}{name}")).unwrap();
        let file = shm_open(
            &path,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
        .unwrap();
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

        let list = list_segments().unwrap();
        let entry = list.iter().find(|s| s.name == name).expect("listed");
        assert_eq!(entry.size, (DATA_OFFSET + 8192) as u64);
        assert_eq!(entry.owner_uid, euid());
        assert_eq!(entry.mode, 0o600);
        let state = entry.state.clone().unwrap();
        assert_eq!(state.capacity, 8192);
        assert!(state.used >= 100);
        assert!(state.handles_alive);
        assert!(!state.sender_alive && !state.receiver_alive);

        let entry = list.iter().find(|s| s.name == bad).expect("listed");
        assert!(entry.state.is_err());
        std::fs::remove_file(shm_path(&bad)).unwrap();
    }
}
