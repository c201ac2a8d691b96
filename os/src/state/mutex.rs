//! A value guarded by a robust lock shared between processes: [`SharedMutex`]
//! (the protocol is `shmring_core::state::mutex`, the design
//! `docs/design/shared-state.md`, "SharedMutex: the robust lock").
//!
//! The handle's docs are on [`SharedMutex`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapRaw;
use shmring_core::Futex;
use shmring_core::layout::STATE_KIND_MUTEX;
use shmring_core::mpmc::Liveness;
use shmring_core::state::header::MAX_STATE_SLOTS;
use shmring_core::state::mutex::{
    self as protocol, Acquired, OwnerId, ProbeClock, RawMutexRegion, RobustLock,
};
#[cfg(feature = "zerocopy")]
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::blocking::{LIVENESS_INTERVAL, TRY_LIVENESS_INTERVAL, WaitStrategy, deadline_after};
use crate::error::{Corrupted, Error, Result};
use crate::futex::SharedFutex;
use crate::options::{Compared, SegmentBuilder};
use crate::readiness::watcher::Probe;
use crate::readiness::{Bell, BellSource, Bells};
use crate::segment::{Backing, EntryLocks, Segment, SegmentOptions};
use crate::sys::lock::HeldLock;

/// Slots a created mutex has unless told otherwise.
pub const DEFAULT_MUTEX_SLOTS: usize = 16;

/// Creates or opens a [`SharedMutex`]: its backing and slots here; permissions
/// and cleanup through [`SegmentBuilder`], with the channels' rules.
/// ([`asymmetric_fences`](SegmentBuilder::asymmetric_fences) changes nothing: the
/// lock only sleeps and wakes on its word, it has no eventcount fence pair; a
/// mutex is created without the flag, so that a process that cannot register
/// for `membarrier` can open it.)
#[derive(Debug, Clone)]
pub struct SharedMutexBuilder {
    options: SegmentOptions,
    slots: usize,
}

impl SegmentBuilder for SharedMutexBuilder {
    fn options(&self) -> &SegmentOptions {
        &self.options
    }

    fn options_mut(&mut self) -> &mut SegmentOptions {
        &mut self.options
    }
}

impl SharedMutexBuilder {
    fn new(backing: Backing) -> Self {
        Self {
            options: SegmentOptions::new(backing),
            slots: DEFAULT_MUTEX_SLOTS,
        }
    }

    /// A mutex in named POSIX shared memory (`/dev/shm/shmring.<name>`), with
    /// the channels' name rules.
    pub fn shm(name: impl Into<String>) -> Self {
        Self::new(Backing::Shm(name.into()))
    }

    /// A mutex in a regular file at `path` (the value survives the processes).
    pub fn file(path: impl Into<std::path::PathBuf>) -> Self {
        Self::new(Backing::File(path.into()))
    }

    /// A mutex in an anonymous memfd, sealed against resizing, for a child
    /// process (pass [`SharedMutex::fd`]) or a peer reached over a Unix socket;
    /// the other side opens it with [`from_fd`](Self::from_fd).
    pub fn memfd() -> Self {
        Self::new(Backing::Memfd)
    }

    /// Slots in the table of a created mutex: how many handles can be open at
    /// once, from 1 to 64 (default 16). `open_or_create` compares it with an
    /// existing mutex's.
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots;
        self
    }

    /// Creates a mutex over a zeroed value of `value_size` bytes (1 to 1 MiB),
    /// unlocked, and opens this handle on it (it takes the first slot).
    ///
    /// # Errors
    /// [`Error::ValueSize`] (`value_size` out of range), [`Error::InvalidMutexSlots`]
    /// (both before any system call),
    /// [`Error::InvalidName`], [`Error::AlreadyExists`],
    /// [`Error::PermissionDenied`], [`Error::NoSpace`], [`Error::NotFound`] (a
    /// file's directory is missing), or [`Error::Io`].
    pub fn create_bytes(&self, value_size: usize) -> Result<SharedMutex<[u8]>> {
        self.create_tagged(value_size, 0)
    }

    fn create_tagged<T: ?Sized>(&self, value_size: usize, tag: u64) -> Result<SharedMutex<T>> {
        let slots = u32::try_from(self.slots).unwrap_or(u32::MAX);
        if !(1..=MAX_STATE_SLOTS).contains(&slots) {
            return Err(Error::InvalidMutexSlots {
                slots: self.slots as u64,
                max: u64::from(MAX_STATE_SLOTS),
            });
        }
        let geometry = super::state_geometry(STATE_KIND_MUTEX, value_size, slots)?;
        let size = geometry.value_size() as u32;
        // No FLAG_ASYMMETRIC_FENCES: the lock uses no fence pair (see the type's
        // docs).
        let flags = 0;
        let init = |map: &MmapRaw, what: &str| {
            // SAFETY: `map` is a fresh shared read-write mapping of the geometry's
            // size (page aligned, so 128-aligned) that the Segment will own
            // alongside the region; nobody uses it before its magic is
            // published; afterwards this process touches it only through
            // shmring handles.
            unsafe { RawMutexRegion::init(map.as_mut_ptr(), map.len(), size, slots, flags, tag) }
                .map_err(|e| Error::layout(what, e))
        };
        let mut segment = Segment::create_with(&self.options, geometry.segment_size(), &init)?;
        // Each slot's death bell, beside the segment (removed with it). Without
        // them, parked lockers find a dead holder by their periodic probe only.
        if let Err(reason) =
            segment.with_bells(|b| b.make_slot_bells(slots as usize, self.options.mode))
        {
            segment.set_bells(BellSource::Unavailable { reason });
        }
        SharedMutex::attach(segment, self.options.wait)
    }

    /// Opens an existing mutex of any size and type, as bytes, validates it
    /// (owner, mode, size, then every header field; another kind of object is
    /// refused) and claims a slot.
    ///
    /// # Errors
    /// [`Error::SlotsFull`] while every slot is held by a live handle;
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::Untrusted`], [`Error::BadSize`], [`Error::IncompatibleLayout`]
    /// (another kind, another layout version), [`Error::Corrupted`],
    /// [`Error::Unsupported`] (the creator chose the asymmetric fences and this
    /// process cannot take part), or [`Error::Io`].
    pub fn open_bytes(&self) -> Result<SharedMutex<[u8]>> {
        SharedMutex::attach(Segment::open_with(&self.options)?, self.options.wait)
    }

    /// Opens the mutex, or creates it with `value_size` bytes if there is none:
    /// race-free, as every builder's `open_or_create`. A memfd mutex is created.
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the existing object is not a mutex of this
    /// layout version (`field` `"kind"` or `"layout version"`) or has another
    /// size (`"value_size"`) or slot count (`"slots"`); else as
    /// [`open_bytes`](Self::open_bytes) and [`create_bytes`](Self::create_bytes).
    pub fn open_or_create_bytes(&self, value_size: usize) -> Result<SharedMutex<[u8]>> {
        self.open_or_create_checked(value_size, None, || self.create_bytes(value_size))
    }

    /// `open_or_create` of every type: compares the value size and the slots,
    /// and the type tag when `tag` is given.
    fn open_or_create_checked<T: ?Sized>(
        &self,
        value_size: usize,
        tag: Option<u64>,
        create: impl Fn() -> Result<SharedMutex<T>>,
    ) -> Result<SharedMutex<T>> {
        crate::options::open_or_create(
            &self.options,
            STATE_KIND_MUTEX,
            || self.open_bytes().map(SharedMutex::retype),
            create,
            |mutex| mutex.describe().to_owned(),
            |mutex| {
                let info = mutex.region().info();
                let mut compared = super::compared_value(info, value_size, tag);
                compared.push(Compared::new(
                    "slots",
                    self.slots as u64,
                    info.geometry.slots() as u64,
                ));
                compared
            },
        )
    }

    /// Opens the mutex behind `fd`, handed over by a parent or a peer (a memfd
    /// from [`SharedMutexBuilder::memfd`]), as bytes, and claims a slot: sizes,
    /// seals and header are checked, owner and mode are not.
    ///
    /// # Errors
    /// [`Error::SlotsFull`], [`Error::BadSize`], [`Error::Io`],
    /// [`Error::IncompatibleLayout`], [`Error::Corrupted`], [`Error::Unsupported`].
    pub fn from_fd(&self, fd: OwnedFd) -> Result<SharedMutex<[u8]>> {
        SharedMutex::attach(Segment::from_fd_with(fd, &self.options)?, self.options.wait)
    }
}

#[cfg(feature = "zerocopy")]
impl SharedMutexBuilder {
    /// Creates a mutex over a zeroed `T` (its size, and a fingerprint of its
    /// type that typed openers check) and opens this handle on it.
    ///
    /// # Errors
    /// As [`create_bytes`](Self::create_bytes) (a zero-sized or larger than
    /// 1 MiB `T` is [`Error::ValueSize`]); [`Error::Incompatible`] (field
    /// `"align"`) for a `T` aligned to more than 128 bytes.
    pub fn create<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
    ) -> Result<SharedMutex<T>> {
        check_align::<T>("a shared mutex's value")?;
        self.create_tagged(std::mem::size_of::<T>(), super::type_tag::<T>())
    }

    /// Opens an existing mutex over a `T`: as [`open_bytes`](Self::open_bytes),
    /// then its size must be `T`'s and its type tag `T`'s (or 0: created as
    /// bytes).
    ///
    /// # Errors
    /// [`Error::Incompatible`] (`"value_size"`, `"type_tag"`, `"align"`); else as
    /// [`open_bytes`](Self::open_bytes).
    pub fn open<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
    ) -> Result<SharedMutex<T>> {
        self.open_bytes()?.typed()
    }

    /// Opens the mutex over a `T`, or creates it: as
    /// [`open_or_create_bytes`](Self::open_or_create_bytes), comparing the type
    /// tag too.
    ///
    /// # Errors
    /// As [`open_or_create_bytes`](Self::open_or_create_bytes), and
    /// [`Error::Incompatible`] with `field` `"type_tag"` or `"align"`.
    pub fn open_or_create<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
    ) -> Result<SharedMutex<T>> {
        check_align::<T>("a shared mutex's value")?;
        self.open_or_create_checked(
            std::mem::size_of::<T>(),
            Some(super::type_tag::<T>()),
            || self.create::<T>(),
        )
    }
}

/// The value area starts on a 128-byte boundary: a `T` aligned to more cannot
/// lie there.
#[cfg(feature = "zerocopy")]
fn check_align<T>(what: &str) -> Result<()> {
    let align = std::mem::align_of::<T>();
    if align > 128 {
        return Err(Error::Incompatible {
            what: what.to_owned(),
            field: "align",
            requested: align as u64,
            found: 128,
        });
    }
    Ok(())
}

/// A value a [`SharedMutex`] can hold: bytes (`[u8]`), or with the `zerocopy`
/// feature any `T: FromBytes + IntoBytes + KnownLayout + Immutable` (every bit
/// pattern is a `T`, so a peer's scribbles are garbage values, never undefined
/// behaviour). Sealed.
pub trait MutexValue: sealed::Sealed {
    /// The value at `ptr`, `len` bytes (checked at open to be the type's size).
    #[doc(hidden)]
    fn at(ptr: *mut u8, len: usize) -> *mut Self;
}

mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for [u8] {}

impl MutexValue for [u8] {
    fn at(ptr: *mut u8, len: usize) -> *mut Self {
        std::ptr::slice_from_raw_parts_mut(ptr, len)
    }
}

#[cfg(feature = "zerocopy")]
impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> sealed::Sealed for T {}

#[cfg(feature = "zerocopy")]
impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> MutexValue for T {
    fn at(ptr: *mut u8, _len: usize) -> *mut Self {
        ptr.cast()
    }
}

/// The handle's own state: dropped once, after any guard (guards borrow the
/// handle), giving the slot back before its lock goes.
struct Attached {
    // Drop order: `Drop` gives the slot back; then its lock is released, then
    // the death watches end and the death bell closes (a locker watching it
    // hears a hang-up, probes, and finds the slot's lock free), then the
    // segment is unmapped (once the watcher's closures, which hold it weakly,
    // are done with it).
    id: OwnerId,
    _slot_lock: HeldLock,
    /// The death watches this handle's parked lock calls keep on holders.
    watches: RefCell<DeathWatches>,
    /// The ringer's end of this slot's death bell, held while the handle
    /// lives: its process's death hangs the bell up for every locker watching
    /// it. `None` where there is none (a memfd mutex, a FIFO that could not
    /// be opened): lockers then find this handle's death by their
    /// periodic probe.
    _death_bell: Option<OwnedFd>,
    segment: Arc<Segment<RawMutexRegion>>,
    futex: SharedFutex,
    /// How long a lock call retries a held lock before it parks.
    spin: Duration,
}

/// A handle's death watches on other slots' holders, made when a lock call
/// first parks on a holder in that slot: the waiter's end of the slot's death
/// bell, registered with the process's watcher thread, which wakes the
/// lockers parked on the lock word when the bell hangs up (every process
/// holding the ringer's end, the slot's holder, has gone). A wake-up only: the
/// woken locker probes the holder's liveness lock, which decides.
struct DeathWatches {
    slots: Vec<DeathWatch>,
}

/// One slot's entry in [`DeathWatches`].
enum DeathWatch {
    /// No lock call has parked on this slot's holder yet (or its last watch
    /// ended with a hang-up).
    Untried,
    /// None can be had (no FIFO: a memfd mutex, or it could not be opened):
    /// not tried again.
    Unavailable,
    /// The waiter's end of the bell, registered with the watcher.
    Watching(Bells),
}

impl DeathWatch {
    /// Whether the watch has seen its bell hang up (and no new holder of the
    /// slot open it since).
    fn hung_up(&self) -> bool {
        matches!(self, DeathWatch::Watching(bells) if bells.gone_hint())
    }
}

impl DeathWatches {
    fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots).map(|_| DeathWatch::Untried).collect(),
        }
    }

    /// Watches `slot`'s holder, if not yet: a hang-up of its death bell wakes
    /// the calls parked on `segment`'s lock word.
    fn watch(&mut self, segment: &Arc<Segment<RawMutexRegion>>, slot: usize) {
        let Some(entry @ DeathWatch::Untried) = self.slots.get_mut(slot) else {
            return;
        };
        let mut bells = segment.with_bells(|b| b.for_slot(slot).death_watch(Bell::Data));
        if let Some(bells) = &mut bells {
            // Weak: the segment is unmapped by its handle, never by the
            // watcher thread.
            let weak = Arc::downgrade(segment);
            bells.watch(false, move || {
                let probed = weak.clone();
                Probe {
                    // Asked only of armed registrations, which this is not;
                    // answered truly anyway.
                    peer_gone: Box::new(move || {
                        probed
                            .upgrade()
                            .is_some_and(|s| !EntryLocks::mutex(&s).is_alive(slot))
                    }),
                    wake_parked: Box::new(move || {
                        if let Some(segment) = weak.upgrade() {
                            // Every locker parked on the word wakes and probes
                            // the holder: one takes over, the others sleep on.
                            SharedFutex::default().wake(&segment.contents().lock().line().state);
                        }
                    }),
                    arming_consumed: None,
                }
            });
        }
        *entry = bells.map_or(DeathWatch::Unavailable, DeathWatch::Watching);
    }

    /// Whether `slot`'s watch has seen its bell hang up; false if none is kept.
    fn hung_up(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(DeathWatch::hung_up)
    }

    /// Ends the watches whose bell hung up (the holder left or died): a new
    /// holder in that slot is watched afresh when a lock call parks on it, and
    /// the watcher stops looking at the old bell meanwhile.
    fn forget_hung_up(&mut self) {
        for entry in &mut self.slots {
            if entry.hung_up() {
                *entry = DeathWatch::Untried;
            }
        }
    }
}

/// The liveness probe of a lock call that may park: the slots' liveness locks
/// decide, and a holder found alive is watched ([`DeathWatches`]) so that its
/// death wakes the call at once rather than at its next periodic probe.
struct WatchedLiveness<'a> {
    locks: EntryLocks<'a, RawMutexRegion>,
    segment: &'a Arc<Segment<RawMutexRegion>>,
    watches: &'a RefCell<DeathWatches>,
    own_slot: usize,
}

// SAFETY: `is_alive` answers exactly what `EntryLocks::is_alive` answers (whose
// impl says why that is sound); watching a slot changes nothing it reads.
unsafe impl Liveness for WatchedLiveness<'_> {
    fn is_alive(&self, entry: usize) -> bool {
        let alive = self.locks.is_alive(entry);
        if alive && entry != self.own_slot {
            if let Ok(mut watches) = self.watches.try_borrow_mut() {
                watches.watch(self.segment, entry);
            }
        }
        alive
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // No guard is alive (each borrows the handle); a leaked one's lock reads
        // as its owner dead once the slot is claimed again.
        self.segment.contents().lock().release_slot(self.id);
    }
}

/// A value guarded by a robust lock shared between processes. `T` is the
/// value's type (zerocopy plain data), or `[u8]` for bytes. Each handle holds a
/// slot of the mutex's table while it lives.
///
/// # Semantics
///
/// - Each handle claims a slot of the mutex's table when it opens (at most
///   [`slots`](SharedMutexBuilder::slots) handles at once, 16 by default:
///   [`Error::SlotsFull`] past that; the slot of a handle whose process died is
///   taken over). Locking needs no system call unless the lock is held.
/// - [`SharedMutex::lock`] sleeps (futex) while a live holder has the lock and
///   returns a [`SharedMutexGuard`], which derefs to the value and unlocks when
///   dropped. A guard borrows its handle, so a lock never outlives its slot; a
///   handle holds the lock at most once (a second lock call while its guard
///   lives is [`LockError::AlreadyHeld`], not a deadlock). A handle is not
///   `Sync`: threads each open their own.
/// - A holder whose process dies (SIGKILL included) while it holds the lock
///   does not keep it: the next locker takes it over, within
///   [`PEER_DEATH_BOUND`](crate::channel::PEER_DEATH_BOUND) of the death
///   (a parked locker of a named or file mutex is woken at once, by the hang-up of
///   the holder's death bell: [`lock_deadline`](SharedMutex::lock_deadline)),
///   and gets [`LockError::OwnerDied`] carrying the guard (the value may be
///   half-updated, as with std's `PoisonError`). The value stays marked
///   inconsistent, and every later locker is told so, until a holder calls
///   [`SharedMutexGuard::mark_consistent`].
/// - A lock call that finds the lock held retries it for the builder's
///   [`wait_strategy`](SegmentBuilder::wait_strategy)'s spin (50 µs by default,
///   at most [`LIVENESS_INTERVAL`]; `Park`: none) before it sleeps: a holder that
///   lets go soon costs no sleep and wake-up.
/// - Every blocking call has a deadline form ([`lock_deadline`](SharedMutex::lock_deadline),
///   [`lock_timeout`](SharedMutex::lock_timeout)); [`try_lock`](SharedMutex::try_lock)
///   never sleeps (it takes the lock over from a dead holder, one probe).
///
/// The value is plain data: a `T` of the zerocopy bounds (`FromBytes`,
/// `IntoBytes`, `KnownLayout`, `Immutable`; aligned to at most 128 bytes: every
/// bit pattern is a `T`), or bytes ([`SharedMutex<[u8]>`](SharedMutex), for other languages).
/// A [`SharedValue`](crate::state::SharedValue) suits one writer and many
/// readers better: its readers never wait.
///
/// # Threat model
///
/// A process that can write the segment can ignore the lock: scribble the value
/// (the holder reads garbage values: `T` is any-bit-pattern plain data), the
/// lock word (a garbage owner reads as dead, so lockers get `OwnerDied`; a
/// live-looking one denies the lock until each locker's deadline; two honest
/// holders at once then write the value together: garbage values, nothing
/// worse) and the slot table. Nothing it writes makes a call read or write out
/// of bounds, panic, or block past its deadline: every word read is checked
/// before it indexes anything, the value's size and place come from the header
/// validated once at open, and a parked locker re-checks its deadline on every
/// turn.
///
/// ```no_run
/// # #[cfg(feature = "zerocopy")]
/// # fn main() -> shmring::Result<()> {
/// use shmring::state::{LockError, SharedMutexBuilder};
///
/// // In every process: the same balance, a u64 starting at 0.
/// let balance = SharedMutexBuilder::shm("balance").open_or_create::<u64>()?;
/// let mut guard = match balance.lock() {
///     Ok(guard) => guard,
///     // A holder died in its critical section: repair, then say so.
///     Err(LockError::OwnerDied(mut guard)) => {
///         guard.mark_consistent()?;
///         guard
///     }
///     Err(e) => return Err(e.into()),
/// };
/// *guard += 1;
/// drop(guard); // unlocks
/// # Ok(()) }
/// # #[cfg(not(feature = "zerocopy"))]
/// # fn main() {}
/// ```
pub struct SharedMutex<T: ?Sized = [u8]> {
    inner: Attached,
    /// A guard of this handle lives, or was detached
    /// ([`SharedMutexGuard::detach`]): the handle holds the lock.
    held: Cell<bool>,
    /// The lock is held through a detached guard: no guard lives, and
    /// [`reattach`](SharedMutex::reattach) may make one (one guard at a time:
    /// a guard lives iff `held && !detached`).
    detached: Cell<bool>,
    _type: PhantomData<fn() -> Box<T>>,
}

impl<T: ?Sized> fmt::Debug for SharedMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMutex")
            .field("what", &self.describe())
            .field("value_size", &self.value_size())
            .field("slot", &self.slot())
            .finish_non_exhaustive()
    }
}

/// The clock a parked locker keeps: it sleeps at most one
/// [`LIVENESS_INTERVAL`] before it probes the holder again, or one
/// [`TRY_LIVENESS_INTERVAL`] while the holder's death bell has hung up (a
/// dying process closes its descriptors one by one: the bell may hang up
/// before its liveness lock is released, and the probe that the hang-up woke
/// finds it still held).
struct Clock<'a> {
    /// The handle's death watches and the lock, to look up the holder's.
    watched: Option<(&'a RefCell<DeathWatches>, RobustLock<'a>)>,
}

impl Clock<'_> {
    /// Whether the current holder's death bell has hung up (a hint).
    fn holder_hung_up(&self) -> bool {
        let Some((watches, lock)) = self.watched else {
            return false;
        };
        lock.owner()
            .is_some_and(|owner| watches.try_borrow().is_ok_and(|w| w.hung_up(owner.slot())))
    }
}

impl ProbeClock<Instant> for Clock<'_> {
    fn sleep_deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        let interval = if self.holder_hung_up() {
            TRY_LIVENESS_INTERVAL
        } else {
            LIVENESS_INTERVAL
        };
        let probe = Instant::now() + interval;
        Some(deadline.map_or(probe, |d| d.min(probe)))
    }

    fn has_passed(&self, deadline: Instant) -> bool {
        Instant::now() >= deadline
    }
}

impl<T: ?Sized> SharedMutex<T> {
    /// Claims a slot on `segment` and makes the handle.
    fn attach(segment: Segment<RawMutexRegion>, wait: WaitStrategy) -> Result<Self> {
        let futex = SharedFutex::for_flags(
            segment.contents().info().flags,
            "membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED), which this mutex's \
             creator chose (a seccomp filter or a kernel before 4.16 here?)",
        )?;
        let (id, slot_lock) = segment.claim_mutex_slot()?;
        let death_bell = segment.with_bells(|b| b.for_slot(id.slot()).open_ringer(Bell::Data));
        let slots = segment.contents().info().geometry.slots();
        Ok(Self {
            inner: Attached {
                id,
                _slot_lock: slot_lock,
                watches: RefCell::new(DeathWatches::new(slots)),
                _death_bell: death_bell,
                segment: Arc::new(segment),
                futex,
                spin: match wait {
                    WaitStrategy::Park => Duration::ZERO,
                    WaitStrategy::SpinThenPark { spin } => spin.min(LIVENESS_INTERVAL),
                    WaitStrategy::BusySpin => LIVENESS_INTERVAL,
                },
            },
            held: Cell::new(false),
            detached: Cell::new(false),
            _type: PhantomData,
        })
    }

    fn retype<U: ?Sized>(self) -> SharedMutex<U> {
        SharedMutex {
            inner: self.inner,
            held: self.held,
            detached: self.detached,
            _type: PhantomData,
        }
    }

    fn region(&self) -> &RawMutexRegion {
        self.inner.segment.contents()
    }

    fn robust(&self) -> RobustLock<'_> {
        self.region().lock()
    }

    /// The value's size in bytes.
    pub fn value_size(&self) -> usize {
        self.region().value_size()
    }

    /// Slots in the mutex's table: how many handles can be open at once.
    pub fn slots(&self) -> usize {
        self.region().info().geometry.slots()
    }

    /// The slot this handle holds.
    pub fn slot(&self) -> usize {
        self.inner.id.slot()
    }

    /// The fingerprint of the value's type its creator recorded (0: created as
    /// bytes).
    pub fn type_tag(&self) -> u64 {
        self.region().info().type_tag
    }

    /// Whether the value is marked inconsistent now: a holder died holding the
    /// lock and nobody has called [`SharedMutexGuard::mark_consistent`] since
    /// (a snapshot).
    pub fn is_inconsistent(&self) -> bool {
        self.robust().is_inconsistent()
    }

    /// How many holders were found dead and taken over from (wrapping; a
    /// snapshot).
    pub fn deaths(&self) -> u32 {
        self.robust().deaths()
    }

    /// The mutex's segment descriptor: to pass to a child or a peer, which opens
    /// it with [`SharedMutexBuilder::from_fd`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.segment.fd()
    }

    /// What the mutex is, for messages: `shm segment "name"`, `file /path` or
    /// `memfd`.
    pub fn describe(&self) -> &str {
        self.inner.segment.describe()
    }

    /// Takes the lock, sleeping as long as a live holder has it.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (the lock is held: the guard is inside) when a
    /// holder died holding it, now or earlier with the value not marked
    /// consistent since; [`LockError::AlreadyHeld`] while a guard of this
    /// handle lives.
    pub fn lock(&self) -> LockResult<'_, T> {
        self.lock_deadline(None)
    }

    /// Takes the lock, sleeping while a live holder has it, until `deadline`
    /// (`None`: as long as it takes). A holder that dies wakes the sleeper at
    /// once on a named or file mutex (its slot's death bell hangs up: the process's
    /// watcher thread wakes the lock word, and the sleeper probes the holder's
    /// liveness lock), and is found within
    /// [`PEER_DEATH_BOUND`](crate::channel::PEER_DEATH_BOUND) of its death in
    /// every case (the sleeper probes every [`LIVENESS_INTERVAL`]: a memfd mutex, a holder whose forked child keeps its bell open, a death
    /// between the probe and the sleep).
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (the lock is held, the guard inside);
    /// [`LockError::TimedOut`] once the deadline has passed with a live holder;
    /// [`LockError::AlreadyHeld`].
    pub fn lock_deadline(&self, deadline: Option<Instant>) -> LockResult<'_, T> {
        self.lock_with(deadline, true)
    }

    /// A lock call if `parks`: the spin, then core's `lock`, which parks,
    /// watching the holder's death bell. Otherwise `try_lock`'s one probe of the
    /// holder (a deadline already passed): no spin, no park, no watch.
    fn lock_with(&self, deadline: Option<Instant>, parks: bool) -> LockResult<'_, T> {
        if self.held.get() {
            return Err(LockError::AlreadyHeld);
        }
        if let Some(acquired) = parks.then(|| self.spin(deadline)).flatten() {
            return self.guard(acquired);
        }
        let acquired = if parks {
            let liveness = WatchedLiveness {
                locks: EntryLocks::mutex(&self.inner.segment),
                segment: &self.inner.segment,
                watches: &self.inner.watches,
                own_slot: self.inner.id.slot(),
            };
            let clock = Clock {
                watched: Some((&self.inner.watches, self.robust())),
            };
            let acquired = self.robust().lock(
                self.inner.id,
                &self.inner.futex,
                &liveness,
                &clock,
                deadline,
            );
            self.inner.watches.borrow_mut().forget_hung_up();
            acquired
        } else {
            // `try_lock`'s one probe: no park, so no watch.
            let liveness = EntryLocks::mutex(&self.inner.segment);
            self.robust().lock(
                self.inner.id,
                &self.inner.futex,
                &liveness,
                &Clock { watched: None },
                deadline,
            )
        };
        match acquired {
            Ok(acquired) => self.guard(acquired),
            // Core's `lock` fails only with `TimedOut` (the other two are
            // `try_lock`'s and `unlock`'s).
            Err(
                protocol::LockError::TimedOut { state }
                | protocol::LockError::WouldBlock { state }
                | protocol::LockError::NotHeld { state, .. },
            ) => Err(LockError::TimedOut { state }),
        }
    }

    /// As [`lock_deadline`](Self::lock_deadline), for at most `timeout`.
    ///
    /// # Errors
    /// As [`lock_deadline`](Self::lock_deadline).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<'_, T> {
        self.lock_deadline(deadline_after(timeout))
    }

    /// Takes the lock if it is free, or held by a holder found dead (one probe
    /// of its liveness lock); never sleeps.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] while a live holder has it;
    /// [`LockError::OwnerDied`] and [`LockError::AlreadyHeld`] as for
    /// [`lock`](Self::lock).
    pub fn try_lock(&self) -> LockResult<'_, T> {
        if self.held.get() {
            return Err(LockError::AlreadyHeld);
        }
        match self.robust().try_lock(self.inner.id) {
            Ok(acquired) => self.guard(acquired),
            // A deadline already passed: one probe of the holder, no spin, no
            // sleep, no WAITERS mark.
            Err(_) => match self.lock_with(Some(Instant::now()), false) {
                Err(LockError::TimedOut { state }) => Err(LockError::WouldBlock { state }),
                other => other,
            },
        }
    }

    /// Retries a held lock for the wait strategy's spin (at most one
    /// [`LIVENESS_INTERVAL`], and not past `deadline`) before the caller parks:
    /// a holder that lets go soon costs no futex sleep and wake-up. Loads the
    /// word and tries only when it reads free; probes no holder (the parked
    /// path does, at once).
    fn spin(&self, deadline: Option<Instant>) -> Option<Acquired> {
        if self.inner.spin.is_zero() {
            return None;
        }
        let lock = self.robust();
        let until = Instant::now() + self.inner.spin;
        let until = deadline.map_or(until, |d| d.min(until));
        let mut turns = 0u32;
        loop {
            if lock.owner().is_none() {
                if let Ok(acquired) = lock.try_lock(self.inner.id) {
                    return Some(acquired);
                }
            }
            std::hint::spin_loop();
            turns = turns.wrapping_add(1);
            if turns % 64 == 0 && Instant::now() >= until {
                return None;
            }
        }
    }

    fn guard(&self, acquired: Acquired) -> LockResult<'_, T> {
        self.held.set(true);
        match acquired {
            Acquired::Clean => Ok(SharedMutexGuard {
                mutex: self,
                taken_from: None,
            }),
            Acquired::OwnerDied { taken_from } => Err(LockError::OwnerDied(SharedMutexGuard {
                mutex: self,
                taken_from,
            })),
        }
    }
}

impl<T: ?Sized> SharedMutex<T> {
    /// The guard of the lock this handle holds through a guard it
    /// [detached](SharedMutexGuard::detach), or `None` if it holds none that
    /// way. For a caller that cannot keep a guard (which borrows the handle)
    /// across its calls: the C ABI, which locks in one call and unlocks in
    /// another. The guard's [`taken_from`](SharedMutexGuard::taken_from) is
    /// `None`.
    pub fn reattach(&self) -> Option<SharedMutexGuard<'_, T>> {
        if !self.detached.get() {
            return None;
        }
        // `held` stays set: the lock is held, now through this guard.
        self.detached.set(false);
        Some(SharedMutexGuard {
            mutex: self,
            taken_from: None,
        })
    }
}

impl SharedMutex<[u8]> {
    /// This mutex as one over a `T`: its size must be `T`'s and its type tag
    /// `T`'s (or 0: created as bytes), and `T` aligned to at most 128 bytes.
    ///
    /// # Errors
    /// [`Error::Incompatible`] (`"value_size"`, `"type_tag"`, `"align"`).
    #[cfg(feature = "zerocopy")]
    pub fn typed<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        self,
    ) -> Result<SharedMutex<T>> {
        check_align::<T>(self.describe())?;
        super::check_type::<T>(self.region().info(), self.describe())?;
        Ok(self.retype())
    }
}

/// What a lock call returns: the guard, or why not ([`LockError`], whose
/// [`OwnerDied`](LockError::OwnerDied) holds the guard), as std's `LockResult`.
pub type LockResult<'a, T> =
    std::result::Result<SharedMutexGuard<'a, T>, LockError<SharedMutexGuard<'a, T>>>;

/// Why a lock call returned no clean guard. `G` is the guard.
pub enum LockError<G> {
    /// The lock is held, by this caller: the guard is inside. A holder died
    /// holding it (this call took it over), or an earlier one did and nobody has
    /// marked the value consistent since: the value may be half-updated. Repair
    /// it and call [`SharedMutexGuard::mark_consistent`], or drop the guard and
    /// leave the mark for the next locker.
    OwnerDied(G),
    /// [`SharedMutex::try_lock`]: a live holder has the lock.
    WouldBlock {
        /// The lock word found (the holder's id, with bit 31 when lockers sleep).
        state: u32,
    },
    /// The deadline passed with a live holder (or a peer writing the word) in
    /// the way.
    TimedOut {
        /// The lock word last found.
        state: u32,
    },
    /// A guard of this handle lives: the handle holds the lock already (a
    /// second lock would wait for itself).
    AlreadyHeld,
}

impl<G> LockError<G> {
    /// The guard, if the lock was taken ([`OwnerDied`](Self::OwnerDied)).
    pub fn into_guard(self) -> Option<G> {
        match self {
            Self::OwnerDied(guard) => Some(guard),
            _ => None,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            Self::WouldBlock { state } => {
                f.debug_struct("WouldBlock").field("state", state).finish()
            }
            Self::TimedOut { state } => f.debug_struct("TimedOut").field("state", state).finish(),
            Self::AlreadyHeld => f.write_str("AlreadyHeld"),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerDied(_) => {
                f.write_str("a holder of the lock died holding it: the value may be inconsistent")
            }
            Self::WouldBlock { state } => write!(f, "the lock is held (state {state:#x})"),
            Self::TimedOut { state } => {
                write!(f, "timed out waiting for the lock (state {state:#x})")
            }
            Self::AlreadyHeld => f.write_str("this handle holds the lock already"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

impl<G> From<LockError<G>> for Error {
    /// Drops the guard of [`LockError::OwnerDied`] (unlocking, the value still
    /// marked inconsistent) and says what happened.
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => Error::OwnerDied,
            LockError::WouldBlock { state } => Error::LockHeld { state },
            LockError::TimedOut { .. } => Error::TimedOut,
            LockError::AlreadyHeld => Error::AlreadyLocked,
        }
    }
}

/// The lock of a [`SharedMutex`], held: derefs to the value; unlocks when
/// dropped (or with [`unlock`](Self::unlock), which reports what it found).
pub struct SharedMutexGuard<'a, T: ?Sized> {
    mutex: &'a SharedMutex<T>,
    taken_from: Option<u32>,
}

impl<T: ?Sized> fmt::Debug for SharedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMutexGuard")
            .field("mutex", &self.mutex)
            .field("taken_from", &self.taken_from)
            .finish()
    }
}

impl<T: ?Sized> SharedMutexGuard<'_, T> {
    /// The lock word (without bit 31) of the dead holder this lock call took
    /// the lock over from; `None` if the lock was not taken over (after
    /// [`LockError::OwnerDied`]: an earlier locker took it over and nobody has
    /// marked the value consistent since).
    pub fn taken_from(&self) -> Option<u32> {
        self.taken_from
    }

    /// Marks the value consistent again, after [`LockError::OwnerDied`]: later
    /// lockers get a clean guard. Call once the value is repaired.
    ///
    /// # Errors
    /// [`Error::Corrupted`] ([`Corrupted::LockNotHeld`]) if the lock word no
    /// longer holds this handle's id (a peer wrote it): nothing is changed.
    pub fn mark_consistent(&mut self) -> Result<()> {
        self.mutex
            .robust()
            .mark_consistent(self.mutex.inner.id)
            .map_err(|e| self.not_held(e))
    }

    /// Unlocks, as dropping the guard does, and says whether the lock word
    /// still held this handle's id.
    ///
    /// # Errors
    /// [`Error::Corrupted`] ([`Corrupted::LockNotHeld`]) if it did not (a peer
    /// wrote it; the lock is freed anyway).
    pub fn unlock(self) -> Result<()> {
        let result = self.release();
        std::mem::forget(self);
        result
    }

    /// Ends the guard without unlocking: the handle keeps the lock (a lock
    /// call on it is [`LockError::AlreadyHeld`]) until
    /// [`SharedMutex::reattach`] gives a guard back. Dropping the handle with
    /// the lock detached leaves the lock word holding its id: the next locker
    /// takes it over as from a dead holder ([`LockError::OwnerDied`]), once
    /// the handle's slot is given back.
    pub fn detach(self) {
        self.mutex.detached.set(true);
        std::mem::forget(self);
    }

    fn release(&self) -> Result<()> {
        self.mutex.held.set(false);
        self.mutex
            .robust()
            .unlock(self.mutex.inner.id, &self.mutex.inner.futex)
            .map_err(|e| self.not_held(e))
    }

    fn not_held(&self, e: protocol::LockError) -> Error {
        let (state, id) = match e {
            protocol::LockError::NotHeld { state, id } => (state, id),
            protocol::LockError::WouldBlock { state } | protocol::LockError::TimedOut { state } => {
                (state, self.mutex.inner.id.get())
            }
        };
        Error::Corrupted {
            what: self.mutex.describe().to_owned(),
            detail: Corrupted::LockNotHeld { state, id },
        }
    }
}

impl<T: ?Sized> Drop for SharedMutexGuard<'_, T> {
    fn drop(&mut self) {
        // A lock word a peer wrote: freed anyway; nothing to report from a drop.
        let _ = self.release();
    }
}

impl<T: ?Sized + MutexValue> Deref for SharedMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        let region = self.mutex.region();
        // SAFETY: the value lies at `value_ptr`, `value_size` bytes inside the
        // mapping (validated at open), which lives as long as the handle this
        // guard borrows; 128-aligned, and `T`'s size and alignment (at most 128)
        // were checked at open (`[u8]`: any size). We hold the lock, so no shmring
        // handle writes it while the reference lives; a peer ignoring the lock
        // can, which the compiler cannot see (ARCHITECTURE.md, "Rust's aliasing
        // rules"): `T` takes any bytes, and nothing here decides anything from
        // them.
        unsafe { &*T::at(region.value_ptr(), region.value_size()) }
    }
}

impl<T: ?Sized + MutexValue> DerefMut for SharedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        let region = self.mutex.region();
        // SAFETY: as in `deref`; the guard is borrowed mutably and is its
        // handle's only one (`held`), and every other handle of this process
        // waits for the lock, so this is the only reference this process makes
        // to the value meanwhile.
        unsafe { &mut *T::at(region.value_ptr(), region.value_size()) }
    }
}
