//! Broadcast topics: one publisher, many subscribers, each of which sees every
//! message ([`shmring_core::broadcast`]).
//!
//! A topic is two segments, made, opened and removed together: the **data
//! segment** (`<name>`; the frames and the publisher's lines), which only the
//! publisher writes, and the **subscriber table** (`<name>.subs`; each
//! subscriber's cursor, claim and waiter word), which every subscriber writes. A
//! memfd topic is two memfds ([`Topic::pass_to`] passes both). The pair carries a
//! random topic id, checked on open: a data segment and a table of two different
//! topics are refused.
//!
//! - **Policies** ([`Policy`]): *lossy*, the publisher never waits and a
//!   subscriber that was lapped gets [`RecvError::Lagged`]
//!   naming how many it missed (the next call returns the oldest message still
//!   held); *gated*, the publisher waits (by the [`WaitStrategy`]) for the slowest
//!   live subscriber, frees the slot of a dead one, and cuts off a live one that has
//!   not moved for [`BroadcastBuilder::cut_off_after`] (it then reads as a lossy
//!   subscriber does); *strict*, gated without the cut-off.
//! - **In place** (strict topics only): [`Publisher::grant`] lends room in the
//!   data region to write a message into ([`PublishGrant`]), and
//!   [`Subscriber::read`] lends the next message ([`InPlaceMessage`]), a
//!   reference into the read-only mapping, which the publisher does not overwrite
//!   until it is released (or its subscriber dies: then its slot is freed). Only a
//!   strict publisher never overwrites what a live subscriber reads; elsewhere
//!   they return `InPlaceNeedsStrict`.
//! - **One publisher per topic**, by design: to fan in, give each publisher a
//!   topic of its own and read them all.
//! - **Read-only subscribers**: subscribers read the data segment through a
//!   read-only mapping (`PROT_READ`; an opener maps it no other way, its creator
//!   keeps a writable one for its publishers only); a memfd topic's data memfd is sealed with `F_SEAL_FUTURE_WRITE`
//!   once its creator mapped it, so no other holder of the descriptor can write it
//!   (nor publish: on a memfd topic, only the creator's process can hold the
//!   publisher). On a named topic, who may write the data is the file's mode: give
//!   the table a mode that lets subscribers write it (`0o666`, say, with
//!   [`allow_mode`](SegmentBuilder::allow_mode) on the openers) and keep the data
//!   segment's mode at `0o644`; [`BroadcastBuilder::data_mode`] sets it apart. A
//!   subscriber of the same user can still truncate a named topic's files, which
//!   makes the publisher's next access fault (`SIGBUS`), as with channels: prefer
//!   memfd topics for untrusted subscribers.
//! - **Liveness**: the publisher and every subscriber hold an exclusive OFD lock
//!   on a byte of the table (the publisher's at the table's shared line, a
//!   subscriber's at its entry), which the kernel drops when the process dies.
//!   After the publisher dies (or leaves), subscribers get every message it
//!   committed, then [`RecvError::Disconnected`];
//!   a new publisher may claim the topic, its messages follow the dead one's with
//!   no gap, and the subscribers go on (their `Disconnected` is not final).
//!
//! ```no_run
//! use shmring::broadcast::{BroadcastBuilder, Policy, Start};
//! # fn main() -> shmring::Result<()> {
//! // The publisher's process:
//! let topic = BroadcastBuilder::shm("prices").capacity(1 << 20).policy(Policy::Gated).create()?;
//! let mut publisher = topic.publisher()?;
//! // Each subscriber's process:
//! let mut subscriber = BroadcastBuilder::shm("prices").open()?.subscriber(Start::Newest)?;
//! let reached = publisher.send(b"tick")?;
//! let mut buf = vec![0u8; subscriber.max_message_len()];
//! let n = subscriber.recv(&mut buf)?;
//! # Ok(()) }
//! ```
//!
//!
//! **Readiness**: a subscriber's [`readiness_fd`](Subscriber::readiness_fd) is a
//! doorbell of its own (on a named topic, a FIFO per subscriber slot beside the
//! table, `/dev/shm/shmring-bell.<name>.subs.data.<slot>`), rung by the publisher
//! only when that subscriber armed it ([`Subscriber::arm_for_message`]) and hung
//! up by the publisher's death; a memfd topic's subscribers are polled
//! ([`Wakeups::Polled`]). A gated or strict publisher's
//! [`readiness_fd`](Publisher::readiness_fd) is the table's space FIFO
//! (`…subs.space`), rung by a subscriber that moves while the publisher is armed
//! for room ([`Publisher::arm_for_space`]), by one that leaves, and by the
//! process's watcher when the subscriber holding it back dies or its cut-off
//! comes due. docs/design/readiness.md has the rendezvous.

use std::fmt;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use memmap2::MmapRaw;
use shmring_core::broadcast::layout::{
    BROADCAST_DATA_OFFSET, ENTRIES_OFFSET, ENTRY_SIZE, MAX_BROADCAST_CAPACITY, MAX_SUBSCRIBERS,
    MIN_BROADCAST_CAPACITY, TABLE_LINE_OFFSET, data_segment_size, table_segment_size,
};
use shmring_core::broadcast::{
    BroadcastClaimError, BroadcastConfig, BroadcastGrant, BroadcastJoinError, BroadcastMessage,
    BroadcastPublishError, BroadcastPublisher, BroadcastRecvError, BroadcastRegion,
    BroadcastSubscriber, RawBroadcastRegion,
};
use shmring_core::sync::{AtomicU32, AtomicU64};
use shmring_core::{Futex, LayoutError};

pub use shmring_core::broadcast::{Policy, Start};

use crate::blocking::{self, Endpoint, Step, WaitStrategy, Waiter, deadline_after};
use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, Role, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::futex::{Notifier, SharedFutex, wake_parked_on};
use crate::message::{MessageSender, message_receiver};
use crate::options::{Compared, SegmentBuilder};
use crate::readiness::watcher::Probe;
use crate::readiness::{Bell, BellSource, Bells, Readiness, Wakeups};
use crate::segment::{Backing, Contents, Segment, SegmentOptions, fence_flags, write_pid};
use crate::sys::lock;

/// The publisher's lock: the first byte of the table's shared line (nothing else
/// locks it; the presence lock is in the header, the subscribers' at their entries).
pub(crate) const PUBLISHER_LOCK: u64 = TABLE_LINE_OFFSET as u64;

/// The default bound after which a gated publisher cuts off a live subscriber
/// that has not moved.
pub const DEFAULT_CUT_OFF_AFTER: Duration = Duration::from_secs(1);

/// Attempts one non-blocking send makes (a dead subscriber's slot freed, a cut-off)
/// before it reports the topic full.
const TRY_STEPS: u32 = 8;

/// The lock byte of subscriber slot `slot`: the first byte of its entry.
pub(crate) fn slot_lock(slot: usize) -> u64 {
    (ENTRIES_OFFSET + slot * ENTRY_SIZE) as u64
}

/// This process's token in owner words: its pid (as channels'), never 0.
fn token() -> NonZeroU32 {
    NonZeroU32::new(std::process::id()).unwrap_or(NonZeroU32::MIN)
}

/// A random topic id: std's per-process random hash keys, over the time and pid
/// (no dependency; not cryptographic, only distinct between topics).
fn random_topic_id() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((now, std::process::id()))
}

/// One of a topic's two segments, as the segment machinery opens it: the mapping
/// and its length, its magic checked (0: not yet published by its creator, waited
/// for). The whole pair is validated by [`RawBroadcastRegion::attach`].
#[derive(Debug)]
pub(crate) struct Half<const TABLE: bool> {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a pointer into a shared mapping its Segment owns; touched only through
// the atomics of `RawBroadcastRegion`.
unsafe impl<const TABLE: bool> Send for Half<TABLE> {}
// SAFETY: as above.
unsafe impl<const TABLE: bool> Sync for Half<TABLE> {}

/// The data segment.
type DataHalf = Half<false>;
/// The subscriber table.
type TableHalf = Half<true>;

impl<const TABLE: bool> Half<TABLE> {
    fn of(map: &MmapRaw) -> Self {
        Self {
            // `MmapRaw` never maps at null.
            ptr: NonNull::new(map.as_mut_ptr()).unwrap_or(NonNull::dangling()),
            len: map.len(),
        }
    }
}

impl<const TABLE: bool> Contents for Half<TABLE> {
    /// The table's: its space FIFO is the publisher's, and its data FIFO's path
    /// is where each subscriber slot's own is made beside it
    /// (`BellSource::make_slot_bells`).
    const DOORBELLS: bool = TABLE;
    const MIN_SIZE: u64 = if TABLE {
        (ENTRIES_OFFSET + ENTRY_SIZE) as u64
    } else {
        (BROADCAST_DATA_OFFSET + MIN_BROADCAST_CAPACITY) as u64
    };
    const MAX_SIZE: u64 = if TABLE {
        table_segment_size(MAX_SUBSCRIBERS) as u64
    } else {
        data_segment_size(MAX_BROADCAST_CAPACITY) as u64
    };

    unsafe fn attach(map: &MmapRaw) -> std::result::Result<Self, LayoutError> {
        if map.len() < 16 || map.as_ptr().is_null() {
            return Err(LayoutError::TooSmall {
                len: map.len(),
                required: Self::MIN_SIZE,
            });
        }
        // SAFETY: the mapping is page-aligned and at least 16 bytes long
        // (checked), live for the call (the caller's contract); the magic is only
        // accessed atomically.
        let magic = unsafe { &*map.as_ptr().cast::<AtomicU64>() };
        // SYNC: Acquire pairs with the creator's Release store of the magic in
        // `RawBroadcastRegion::init`; the full check is `attach`'s, later.
        let magic = magic.load(Ordering::Acquire);
        // Another kind of segment (or layout version) under the name is told now,
        // before its partner is looked for: `attach` checks both again, later.
        let word = |offset: usize| {
            debug_assert!(offset + 4 <= 16);
            // SAFETY: offsets 8 and 12 lie in the 16 bytes checked above,
            // 4-aligned in the page-aligned mapping: every segment's version and
            // kind words, only accessed atomically.
            let word = unsafe { &*map.as_ptr().wrapping_add(offset).cast::<AtomicU32>() };
            // Relaxed: written before the magic's Release store, which the
            // Acquire load above saw if the magic is not zero (else they are not
            // looked at).
            word.load(Ordering::Relaxed)
        };
        let (version, kind) = (word(8), word(12));
        let expected = if TABLE {
            shmring_core::layout::RING_KIND_BROADCAST_TABLE
        } else {
            shmring_core::layout::RING_KIND_BROADCAST
        };
        shmring_core::layout::check_identity(magic, version, kind, expected)?;
        Ok(Self::of(map))
    }

    fn summary(&self) -> (&'static str, u64) {
        ("len", self.len as u64)
    }
}

/// Creates or opens a broadcast topic: its backing, capacity, policy, subscriber
/// slots and cut-off bound here; permissions, cleanup and the endpoints' wait
/// strategy through [`SegmentBuilder`] (they apply to both segments, but for
/// [`data_mode`](Self::data_mode)).
#[derive(Debug, Clone)]
pub struct BroadcastBuilder {
    options: SegmentOptions,
    capacity: usize,
    policy: Policy,
    slots: usize,
    cut_off_after: Duration,
    data_mode: Option<u32>,
}

impl SegmentBuilder for BroadcastBuilder {
    fn options(&self) -> &SegmentOptions {
        &self.options
    }

    fn options_mut(&mut self) -> &mut SegmentOptions {
        &mut self.options
    }
}

impl BroadcastBuilder {
    fn new(backing: Backing) -> Self {
        Self {
            options: SegmentOptions::new(backing),
            capacity: 1 << 16,
            policy: Policy::Lossy,
            slots: 16,
            cut_off_after: DEFAULT_CUT_OFF_AFTER,
            data_mode: None,
        }
    }

    /// A topic in named POSIX shared memory: `/dev/shm/shmring.<name>` (data) and
    /// `/dev/shm/shmring.<name>.subs` (table), with the channels' name rules (the
    /// table's name, 5 bytes longer, too).
    pub fn shm(name: impl Into<String>) -> Self {
        Self::new(Backing::Shm(name.into()))
    }

    /// A topic in two regular files: `path` (data) and `path.subs` (table).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Backing::File(path.into()))
    }

    /// A topic in two anonymous memfds, for child processes ([`Topic::pass_to`])
    /// or peers reached over a Unix socket ([`Topic::fds`]).
    pub fn memfd() -> Self {
        Self::new(Backing::Memfd)
    }

    /// Bytes of the data region, a power of two from 64 bytes to 512 MiB (default
    /// 64 KiB). The largest message is a little under half of it.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// What the publisher does when a subscriber falls a whole region behind
    /// (default [`Policy::Lossy`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Slots in the subscriber table: how many subscribers can be joined at once,
    /// from 1 to 256 (default 16).
    pub fn subscriber_slots(mut self, slots: usize) -> Self {
        self.slots = slots;
        self
    }

    /// [`Policy::Gated`]: how long a live subscriber may hold the publisher back
    /// without moving before the publisher cuts it off (default 1 s; whole
    /// milliseconds, at most `u32::MAX` of them). Stored in the topic's header:
    /// every publisher of the topic uses the creator's bound. Ignored by the other
    /// policies.
    pub fn cut_off_after(mut self, bound: Duration) -> Self {
        self.cut_off_after = bound;
        self
    }

    /// Permission bits of a named topic's data segment, if they should differ from
    /// the table's ([`mode`](SegmentBuilder::mode)): say `0o644` with a table of
    /// `0o666`, so that subscribers of other users can join but not write the data.
    pub fn data_mode(mut self, mode: u32) -> Self {
        self.data_mode = Some(mode);
        self
    }

    /// The table's options: the same, at `<name>.subs`.
    fn table_options(&self) -> SegmentOptions {
        let backing = match &self.options.backing {
            Backing::Shm(name) => Backing::Shm(format!("{name}.subs")),
            Backing::File(path) => {
                let mut path = path.clone().into_os_string();
                path.push(".subs");
                Backing::File(path.into())
            }
            Backing::Memfd => Backing::Memfd,
        };
        SegmentOptions {
            backing,
            ..self.options.clone()
        }
    }

    /// The data segment's options: write-once (an opener maps it read-only, a
    /// created memfd is sealed against writes after its creator mapped it).
    fn data_options(&self) -> SegmentOptions {
        SegmentOptions {
            mode: self.data_mode.unwrap_or(self.options.mode),
            read_only: true,
            ..self.options.clone()
        }
    }

    /// Creates both segments and a fresh, empty topic in them (the table first,
    /// then the data segment, whose header is published last).
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`], [`Error::InvalidSlotCount`] (before any
    /// system call), [`Error::InvalidName`], [`Error::AlreadyExists`] (either
    /// name), [`Error::PermissionDenied`], [`Error::NoSpace`], [`Error::Io`].
    pub fn create(&self) -> Result<Topic> {
        shmring_core::broadcast::layout::check_broadcast_capacity(self.capacity).map_err(|_| {
            Error::InvalidCapacity {
                capacity: self.capacity as u64,
            }
        })?;
        if !(1..=MAX_SUBSCRIBERS).contains(&self.slots) {
            return Err(Error::InvalidSlotCount {
                slots: self.slots as u64,
            });
        }
        let table_options = self.table_options();
        let mut table = Segment::<TableHalf>::create_with(
            &table_options,
            table_segment_size(self.slots),
            &|map: &MmapRaw, _: &str| Ok(Half::of(map)),
        )?;
        // Each subscriber slot's doorbell, beside the table (removed with it).
        if let Err(reason) = table.with_bells(|b| b.make_slot_bells(self.slots, self.options.mode))
        {
            table.set_bells(BellSource::Unavailable { reason });
        }
        let config = BroadcastConfig {
            capacity: self.capacity,
            slots: self.slots,
            policy: self.policy,
            cut_off_after_ms: u32::try_from(self.cut_off_after.as_millis()).unwrap_or(u32::MAX),
            flags: fence_flags(&self.options),
            topic_id: random_topic_id(),
        };
        let (table_ptr, table_len) = (table.contents().ptr, table.contents().len);
        let init = |map: &MmapRaw, what: &str| {
            // SAFETY: both mappings are fresh, shared, read-write, of their
            // lengths, distinct, and outlive every region made over them (the
            // Topic keeps both segments; endpoints keep the Topic's Arc); nothing
            // else in this process touches them.
            unsafe {
                RawBroadcastRegion::init(
                    map.as_mut_ptr(),
                    map.len(),
                    table_ptr.as_ptr(),
                    table_len,
                    config,
                )
            }
            .map_err(|e| Error::layout(what, e))?;
            Ok(Half::of(map))
        };
        let written = Segment::<DataHalf>::create_with(
            &self.data_options(),
            data_segment_size(self.capacity),
            &init,
        )?;
        // The subscribers' view, read-only here too; the publisher's is `written`.
        let fd =
            lock::reopen(written.fd()).map_err(|e| Error::io("reopen", written.describe(), e))?;
        let data = Segment::<DataHalf>::from_fd_with(fd.into(), &self.data_options())?;
        Topic::new(data, table, Some(written), self.options.wait)
    }

    /// Opens an existing topic: the data segment (read-only, waiting for its
    /// creator as channels do), then the table, then validates the pair.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::Untrusted`], [`Error::BadSize`], [`Error::IncompatibleLayout`]
    /// (another kind of segment), [`Error::Corrupted`] (a field out of range, or
    /// a table of another topic: `table topic_id`), [`Error::Io`].
    pub fn open(&self) -> Result<Topic> {
        let data = Segment::<DataHalf>::open_with(&self.data_options())?;
        let table = Segment::<TableHalf>::open_with(&self.table_options())?;
        Topic::new(data, table, None, self.options.wait)
    }

    /// Opens the topic, or creates it if there is none: for two processes
    /// started in any order. Race-free: of processes racing, exactly one creates
    /// (exclusively) and the others open what it made; one caught between making
    /// its table and its data segment is waited for, a few milliseconds at most.
    /// A memfd topic is created.
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the existing data segment is not a topic of
    /// this layout version (`field` `"kind"` or `"layout version"`) or its
    /// shape is not this builder's (`"capacity"`, `"subscriber_slots"`,
    /// `"policy"`, and for a gated topic `"cut_off_after_ms"`);
    /// [`Error::AlreadyExists`] (the table) if a table stays without its data
    /// segment for 2 s (its creator died between them: create with
    /// [`reclaim`](SegmentBuilder::reclaim)); else as [`open`](Self::open) and
    /// [`create`](Self::create).
    pub fn open_or_create(&self) -> Result<Topic> {
        crate::options::open_or_create(
            &self.options,
            shmring_core::layout::RING_KIND_BROADCAST,
            || self.open(),
            || self.create(),
            |topic| topic.shared.what().to_owned(),
            |topic| {
                let mut compared = vec![
                    Compared::new("capacity", self.capacity as u64, topic.capacity() as u64),
                    Compared::new(
                        "subscriber_slots",
                        self.slots as u64,
                        topic.subscriber_slots() as u64,
                    ),
                    Compared::new(
                        "policy",
                        self.policy.word().into(),
                        topic.policy().word().into(),
                    ),
                ];
                if self.policy == Policy::Gated {
                    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                    compared.push(Compared::new(
                        "cut_off_after_ms",
                        ms(self.cut_off_after).min(u32::MAX.into()),
                        ms(topic.cut_off_after()),
                    ));
                }
                compared
            },
        )
    }

    /// Opens the topic behind two descriptors handed over by a parent or a peer:
    /// the data segment's and the table's ([`Topic::fds`]). The data segment is
    /// mapped read-only.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_fds(&self, data: OwnedFd, table: OwnedFd) -> Result<Topic> {
        let data = Segment::<DataHalf>::from_fd_with(data, &self.data_options())?;
        let table = Segment::<TableHalf>::from_fd_with(table, &self.table_options())?;
        Topic::new(data, table, None, self.options.wait)
    }

    /// Opens the topic whose two descriptor numbers a parent put in the
    /// environment variable `var` ([`Topic::pass_to`]), taking ownership of them.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the variable is unset, not two numbers, or names no
    /// open descriptor; else as [`from_fds`](Self::from_fds).
    ///
    /// # Safety
    /// As [`ChannelBuilder::from_env`](crate::channel::ChannelBuilder::from_env):
    /// the descriptors were passed to this process for this topic and nothing else
    /// in the process owns them.
    pub unsafe fn from_env(&self, var: &str) -> Result<Topic> {
        let not_found = || Error::NotFound {
            what: format!("inherited descriptors in ${var}"),
        };
        let numbers: Vec<i32> = std::env::var(var)
            .ok()
            .and_then(|v| v.split(',').map(|n| n.parse().ok()).collect::<Option<_>>())
            .ok_or_else(not_found)?;
        let [data, table] = <[i32; 2]>::try_from(numbers).map_err(|_| not_found())?;
        // SAFETY: the caller's contract: both were passed for this topic, owned by
        // nothing else here; `take_inherited` checks they are open.
        let [data, table] =
            unsafe { crate::sys::inherit::take_inherited([data, table]) }.ok_or_else(not_found)?;
        self.from_fds(data, table)
    }
}

/// What a topic's handles share: both segments and the validated region over
/// them, the data segment mapped read-only: the subscribers' view.
struct Shared {
    // Drop order: the region (bare pointers) before the mappings.
    region: RawBroadcastRegion,
    data: Segment<DataHalf>,
    table: Segment<TableHalf>,
    /// The creator's writable mapping of the data segment, for its publishers
    /// (on a memfd topic, the only one there can be). `None` in an opener.
    written: Option<Segment<DataHalf>>,
    wait: WaitStrategy,
}

/// The region over `data` and `table`, validated.
///
/// # Safety
/// The returned region (and its clones) must not outlive either segment.
unsafe fn attach_pair(
    data: &Segment<DataHalf>,
    table: &Segment<TableHalf>,
) -> Result<RawBroadcastRegion> {
    let (d, t) = (data.contents(), table.contents());
    // SAFETY: both point into live shared mappings of their lengths, which the
    // caller keeps longer than the region; a read-only data mapping is only read
    // (the subscribers' side); this process touches them only through shmring
    // handles.
    unsafe { RawBroadcastRegion::attach(d.ptr.as_ptr(), d.len, t.ptr.as_ptr(), t.len) }
        .map_err(|e| Error::layout(data.describe(), e))
}

impl Shared {
    fn what(&self) -> &str {
        self.data.describe()
    }

    /// Whether the lock at `offset` of the table is held by a live handle.
    fn alive(&self, offset: u64) -> Result<bool> {
        self.table.is_role_alive(offset)
    }

    /// The futex for the topic's protocol (see `Channel::futex`).
    fn futex(&self) -> Result<SharedFutex> {
        SharedFutex::for_flags(
            self.region.flags(),
            "membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED), which this topic's \
             creator chose (a seccomp filter or a kernel before 4.16 here?)",
        )
    }

    /// A description of the table of its own, for an endpoint's lock.
    fn lock_file(&self) -> Result<File> {
        lock::reopen(self.table.fd()).map_err(|e| Error::io("reopen", self.table.describe(), e))
    }
}

/// A created or opened broadcast topic: make one [`Publisher`] and any number of
/// [`Subscriber`]s (up to the table's slots). The segments live while the topic
/// or any endpoint does.
#[derive(Clone)]
pub struct Topic {
    shared: Arc<Shared>,
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("data", &self.shared.data.describe())
            .field("table", &self.shared.table.describe())
            .field("config", &self.shared.region.config())
            .finish_non_exhaustive()
    }
}

impl Topic {
    fn new(
        data: Segment<DataHalf>,
        table: Segment<TableHalf>,
        written: Option<Segment<DataHalf>>,
        wait: WaitStrategy,
    ) -> Result<Self> {
        // SAFETY: `Shared` keeps both segments with the region, dropped after it.
        let region = unsafe { attach_pair(&data, &table) }?;
        Ok(Self {
            shared: Arc::new(Shared {
                region,
                data,
                table,
                written,
                wait,
            }),
        })
    }

    /// The topic's policy.
    pub fn policy(&self) -> Policy {
        self.shared.region.config().policy
    }

    /// Bytes of the data region.
    pub fn capacity(&self) -> usize {
        self.shared.region.config().capacity
    }

    /// Slots of the subscriber table.
    pub fn subscriber_slots(&self) -> usize {
        self.shared.region.config().slots
    }

    /// Gated topics: how long a live subscriber may hold the publisher back
    /// without moving before it is cut off, as made (zero under the other
    /// policies).
    pub fn cut_off_after(&self) -> Duration {
        Duration::from_millis(self.shared.region.config().cut_off_after_ms.into())
    }

    /// The random id both segments carry.
    pub fn topic_id(&self) -> u64 {
        self.shared.region.config().topic_id
    }

    /// Largest message the topic carries.
    pub fn max_message_len(&self) -> usize {
        shmring_core::broadcast::layout::broadcast_max_message_len(self.capacity())
    }

    /// Whether a publisher holds the topic now (a probe of its lock).
    ///
    /// # Errors
    /// [`Error::Io`] if `F_OFD_GETLK` fails.
    pub fn publisher_alive(&self) -> Result<bool> {
        self.shared.alive(PUBLISHER_LOCK)
    }

    /// Claims the topic's one publisher. A publisher whose holder died is taken
    /// over: its committed messages are kept and the next one follows them.
    ///
    /// On a topic this process opened (not created), the data segment is mapped
    /// writable for the publisher: a memfd topic's refuses (`F_SEAL_FUTURE_WRITE`:
    /// only its creator's process publishes), a named one's needs write permission.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] (`Sender`) while a live publisher holds it;
    /// [`Error::PermissionDenied`] (see above); [`Error::Corrupted`];
    /// [`Error::Unsupported`] (asymmetric fences refused); [`Error::Io`].
    pub fn publisher(&self) -> Result<Publisher> {
        let shared = &self.shared;
        let futex = shared.futex()?;
        let lock_file = shared.lock_file()?;
        let locked = lock::try_lock(lock_file.as_fd(), PUBLISHER_LOCK, true)
            .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", shared.table.describe(), e))?;
        let owner = || shared.region.oldest().owner.load(Ordering::Relaxed);
        if !locked {
            return Err(Error::RoleTaken {
                role: Role::Sender,
                owner: owner(),
            });
        }
        let (mapping, region) = match &shared.written {
            // SAFETY: the Publisher keeps `shared` (and with it both segments)
            // longer than its core publisher.
            Some(written) => (None, unsafe { attach_pair(written, &shared.table) }?),
            None => {
                let fd = lock::reopen(shared.data.fd())
                    .map_err(|e| Error::io("reopen", shared.what(), e))?;
                let options = SegmentOptions {
                    read_only: false,
                    ..SegmentOptions::default()
                };
                let segment = Segment::<DataHalf>::from_fd_with(fd.into(), &options)?;
                // SAFETY: the Publisher keeps `segment` and `shared` longer than
                // its core publisher (dropped first, by hand).
                let region = unsafe { attach_pair(&segment, &shared.table) }?;
                (Some(segment), region)
            }
        };
        // We hold the lock: a non-zero owner word is a dead holder's.
        let previous = owner();
        let publisher =
            BroadcastPublisher::claim_from(region, previous, token()).map_err(|e| match e {
                BroadcastClaimError::Taken { owner } => Error::RoleTaken {
                    role: Role::Sender,
                    owner,
                },
                BroadcastClaimError::Corrupted(c) => Error::corrupted(shared.what(), c),
            })?;
        // Through the publisher's own (writable) mapping: `shared`'s may be
        // read-only. Cleared in `Drop`, before the claim is given back.
        write_pid(&publisher.region().oldest().pid, true);
        // A ringer's end of each subscriber slot's doorbell (none on a memfd
        // topic, or where one cannot be opened: that slot's armed subscriber is
        // then left to its own fallback).
        let ringers = shared.table.with_bells(|bells| {
            (0..shared.region.slots())
                .map(|slot| bells.for_slot(slot).open_ringer(Bell::Data))
                .collect()
        });
        // The publisher's own doorbell: the table's space FIFO, which every
        // subscriber holds a ringer's end of (polled on a memfd topic).
        let bells = shared
            .table
            .with_bells(|b| b.publisher_bells())
            .map_err(|e| Error::io("pipe", shared.table.describe(), e))?;
        let cut_off_after = match publisher.policy() {
            Policy::Gated => Some(Duration::from_millis(
                shared.region.config().cut_off_after_ms.into(),
            )),
            Policy::Lossy | Policy::Strict => None,
        };
        Ok(Publisher {
            publisher: ManuallyDrop::new(publisher),
            _mapping: mapping,
            lock: Some(lock::HeldLock::new(lock_file, PUBLISHER_LOCK)),
            shared: Arc::clone(shared),
            futex,
            waiter: Waiter::new(shared.wait),
            cut_off_after,
            held: None,
            watched_held: Arc::new(Mutex::new(None)),
            ringers,
            bells,
        })
    }

    /// Joins a subscriber in a free slot (or the slot of a dead one), starting at
    /// `start`: the next message published ([`Start::Newest`]), or the oldest the
    /// topic still holds ([`Start::Oldest`]).
    ///
    /// # Errors
    /// [`Error::EndpointTableFull`] while every slot is held by a live
    /// subscriber; [`Error::Corrupted`]; [`Error::Unsupported`]; [`Error::Io`].
    pub fn subscriber(&self, start: Start) -> Result<Subscriber> {
        let shared = &self.shared;
        let futex = shared.futex()?;
        let lock_file = shared.lock_file()?;
        let region = &shared.region;
        let io = |e| Error::io("fcntl(F_OFD_SETLK)", shared.table.describe(), e);
        for slot in 0..region.slots() {
            if !lock::try_lock(lock_file.as_fd(), slot_lock(slot), true).map_err(io)? {
                continue;
            }
            // We hold the slot's lock: a non-zero owner word is a dead holder's
            // (or one the publisher frees meanwhile: then the slot is free).
            let mut previous = region.entry(slot).owner.load(Ordering::Acquire);
            let mut joined = None;
            for _ in 0..2 {
                match BroadcastSubscriber::join_slot(region.clone(), slot, previous, token(), start)
                {
                    Ok(subscriber) => {
                        joined = Some(subscriber);
                        break;
                    }
                    Err(BroadcastJoinError::SlotTaken { owner, .. }) => previous = owner,
                    Err(BroadcastJoinError::Corrupted(c)) => {
                        return Err(Error::corrupted(shared.what(), c));
                    }
                    Err(BroadcastJoinError::NoFreeSlot { .. }) => break,
                }
            }
            match joined {
                Some(subscriber) => {
                    write_pid(&region.entry(slot).pid, true);
                    // On failure (not even a private pipe), `subscriber` gives
                    // the slot back, then `lock_file` closes with its lock.
                    let bells = shared
                        .table
                        .with_bells(|b| b.for_slot(slot).endpoint_bells(Role::Receiver))
                        .map_err(|e| Error::io("pipe", shared.table.describe(), e))?;
                    return Ok(Subscriber {
                        subscriber: ManuallyDrop::new(subscriber),
                        _lock: lock::HeldLock::new(lock_file, slot_lock(slot)),
                        bells,
                        shared: Arc::clone(shared),
                        futex,
                        waiter: Waiter::new(shared.wait),
                    });
                }
                None => lock::unlock(lock_file.as_fd(), slot_lock(slot)).map_err(io)?,
            }
        }
        Err(Error::EndpointTableFull {
            what: shared.table.describe().to_owned(),
            endpoints: region.slots(),
        })
    }

    /// The two descriptors (data, table), to pass to a peer
    /// ([`BroadcastBuilder::from_fds`]).
    pub fn fds(&self) -> (std::os::fd::BorrowedFd<'_>, std::os::fd::BorrowedFd<'_>) {
        (self.shared.data.fd(), self.shared.table.fd())
    }

    /// Lets the child that `command` spawns open this topic: both descriptors are
    /// inherited and their numbers put in `var` (`data,table`), for
    /// [`BroadcastBuilder::from_env`].
    pub fn pass_to(&self, command: &mut Command, var: &str) {
        let data = self.shared.data.fd().as_raw_fd();
        let table = self.shared.table.fd().as_raw_fd();
        command.env(var, format!("{data},{table}"));
        crate::sys::inherit::inherit_in_child(command, [data, table]);
    }
}

/// The subscriber a gated publisher is held back by, and since when (its cursor
/// unchanged).
#[derive(Debug, Clone, Copy)]
struct Held {
    slot: usize,
    cursor: u64,
    since: Instant,
}

/// The publisher of a topic. `Send`, not `Sync`.
///
/// Dropping it gives the claim back; subscribers then drain what it published and
/// get `Disconnected` until another publisher claims the topic.
pub struct Publisher {
    // Dropped by hand first (`Drop`): it writes its release into the data
    // segment, through `_mapping` if it has its own.
    publisher: ManuallyDrop<BroadcastPublisher<RawBroadcastRegion>>,
    _mapping: Option<Segment<DataHalf>>,
    /// The lock on `PUBLISHER_LOCK`; `None` once released (`Drop`).
    lock: Option<lock::HeldLock>,
    shared: Arc<Shared>,
    futex: SharedFutex,
    /// The wait strategy; its liveness verdict is about the subscriber in `held`.
    waiter: Waiter,
    cut_off_after: Option<Duration>,
    held: Option<Held>,
    /// `held`, for the watcher's probe of an armed publisher (written only when
    /// `held` changes: never on the path of a send that goes).
    watched_held: Arc<Mutex<Option<Held>>>,
    /// A ringer's end of each subscriber slot's doorbell, by slot (`None`: that
    /// slot has none here).
    ringers: Vec<Option<OwnedFd>>,
    /// Its own doorbell (the readiness descriptor: the table's space FIFO,
    /// which subscribers ring). Dropped before `shared` (declared after it, but
    /// the watcher holds only a weak reference to the topic).
    bells: Bells,
}

/// The doorbell of the subscriber slot whose `data_signal` is `word`, among a
/// publisher's `ringers`: how its notifier finds the doorbell of an armed
/// subscriber.
fn slot_bell<'a>(
    region: &RawBroadcastRegion,
    ringers: &'a [Option<OwnedFd>],
    word: &AtomicU32,
) -> Option<BorrowedFd<'a>> {
    if ringers.is_empty() {
        return None;
    }
    let first = std::ptr::from_ref(&region.entry(0).data_signal) as usize;
    let slot = (std::ptr::from_ref(word) as usize).checked_sub(first)? / ENTRY_SIZE;
    let fd = ringers.get(slot)?.as_ref()?;
    std::ptr::eq(&region.entry(slot).data_signal, word).then(|| fd.as_fd())
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("publisher", &self.publisher)
            .field("topic", &self.shared.what())
            .finish_non_exhaustive()
    }
}

impl Endpoint for Publisher {
    fn waiter(&mut self) -> &mut Waiter {
        &mut self.waiter
    }

    /// Whether the subscriber holding us back is dead (its slot still owned, its
    /// lock free).
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        let shared = &self.shared;
        let held = self.held;
        self.waiter.peer_gone(now, || held_by_dead(shared, held))
    }

    /// A gated publisher looks again when the held subscriber's cut-off falls due.
    fn check_by(&self) -> Option<Instant> {
        let held = self.held?;
        held.since.checked_add(self.cut_off_after?)
    }
}

/// Whether the subscriber in `held` has died holding its slot.
fn held_by_dead(shared: &Shared, held: Option<Held>) -> Result<bool> {
    let Some(held) = held else {
        return Ok(false);
    };
    if held.slot >= shared.region.slots() {
        return Ok(false);
    }
    // Relaxed: a hint checked against the slot's lock.
    let owner = shared.region.entry(held.slot).owner.load(Ordering::Relaxed);
    Ok(owner != 0 && !shared.alive(slot_lock(held.slot))?)
}

/// Whether a gated publisher held back by `held` may cut it off at `now`: it has
/// held the publisher back for the cut-off bound (`None`: never).
fn cut_off_due(held: Held, bound: Option<Duration>, now: Instant) -> bool {
    bound.is_some_and(|bound| now.saturating_duration_since(held.since) >= bound)
}

/// The watcher's probe of an armed publisher: whether the subscriber holding it
/// back has died, or (gated) has held it back for the cut-off bound without
/// moving. Either way the next arming (or send) goes on, after freeing its slot
/// or cutting it off.
fn holder_gone_or_due(
    shared: &Shared,
    held: Option<Held>,
    bound: Option<Duration>,
    now: Instant,
) -> bool {
    let Some(h) = held else {
        return false;
    };
    if held_by_dead(shared, held).unwrap_or(false) {
        return true;
    }
    // Relaxed: a hint; the arming's scan reads the cursor with Acquire.
    let cursor = shared.region.entry(h.slot).cursor.load(Ordering::Relaxed);
    cursor == h.cursor && cut_off_due(h, bound, now)
}

impl Publisher {
    /// Largest message the topic carries.
    pub fn max_message_len(&self) -> usize {
        self.publisher.max_message_len()
    }

    /// The topic's policy.
    pub fn policy(&self) -> Policy {
        self.publisher.policy()
    }

    /// The sequence number the next message will carry (one more than the
    /// messages published on the topic so far, by every publisher).
    pub fn next_seq(&self) -> u64 {
        self.publisher.next_seq()
    }

    /// Subscribers joined now. A dead one counts until its slot is freed: by a
    /// gated publisher it held back, by a subscriber that joins in its slot, or by
    /// [`free_dead_subscribers`](Self::free_dead_subscribers).
    pub fn subscribers(&self) -> u32 {
        self.publisher.subscribers()
    }

    /// Frees the slot of every subscriber whose process has died (its slot held,
    /// its lock free); returns how many. A probe (`F_OFD_GETLK`) per held slot.
    ///
    /// # Errors
    /// [`Error::Io`] if a probe fails.
    pub fn free_dead_subscribers(&mut self) -> Result<usize> {
        let mut freed = 0;
        for slot in 0..self.shared.region.slots() {
            let owner = self.publisher.slot_owner(slot);
            if owner != 0
                && !self.shared.alive(slot_lock(slot))?
                && self.publisher.free_slot(slot, owner)
            {
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// The readiness descriptor: readable after
    /// [`arm_for_space`](Self::arm_for_space) returned [`Readiness::Armed`]
    /// when a subscriber moves its cursor (reads on, or catches up), when one
    /// leaves or dies, when the one holding the publisher back has held it back
    /// for [`cut_off_after`](BroadcastBuilder::cut_off_after) without moving
    /// (gated: the next arming or send cuts it off), or (if
    /// [`wakeups`](Self::wakeups) says so) every
    /// [`LIVENESS_INTERVAL`](crate::channel::LIVENESS_INTERVAL). On a named
    /// topic it is the table's space FIFO
    /// (`/dev/shm/shmring-bell.<name>.subs.space`), which every subscriber
    /// holds a ringer's end of. Do not read it: arming drains it.
    ///
    /// The loop: on readable, send until [`TrySendError::Full`], then arm
    /// again; on [`Readiness::Ready`], send again at once.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.bells.doorbell()
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for room for a message of
    /// `len` bytes: [`Readiness::Ready`] if it fits now (on a lossy topic,
    /// always), else [`Readiness::Armed`]. Never blocks. As
    /// [`try_send`](Self::try_send) does, it frees the slot of a dead
    /// subscriber holding the publisher back and cuts off (gated) one that has
    /// held it back for the bound without moving, then looks again; a
    /// subscriber moving while nobody is armed costs it no system call.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`], [`Error::Corrupted`], [`Error::Io`]
    /// (reading the descriptor, or a liveness probe failed).
    pub fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        let futex = self.futex;
        if !self.publisher.policy().waits() {
            return self
                .publisher
                .arm_for_space(len, &futex)
                .map_err(|e| publish_error(&self.shared, e, len));
        }
        self.watch();
        // The watcher rang for a holder it found dead (or due): probe it.
        let looks_gone = self
            .bells
            .drain_for_arming(|| self.bells.take_found_gone())
            .map_err(|e| Error::io("read", self.shared.what(), e))?;
        let ready = self.try_steps(looks_gone, |p| match p.arm_for_space(len, &futex)? {
            Readiness::Ready => Ok(()),
            Readiness::Armed => Err(BroadcastPublishError::Full {
                slot: p.slowest_slot(),
            }),
        })?;
        Ok(match ready {
            Some(()) => Readiness::Ready,
            None => Readiness::Armed,
        })
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken: by the subscribers'
    /// rings on a named topic, polled on a memfd topic (or where the FIFO could
    /// not be opened: the reason says why).
    pub fn wakeups(&self) -> &Wakeups {
        self.bells.wakeups()
    }

    /// Registers with the process's watcher (once), armed: it rings a polled
    /// descriptor every interval, and the doorbell when its probe finds the
    /// subscriber holding the publisher back dead or (gated) due for its
    /// cut-off: a subscriber that does not move rings nothing itself.
    fn watch(&mut self) {
        // Weak: the topic is dropped by its last user, not by the watcher.
        let shared = Arc::downgrade(&self.shared);
        let held = Arc::clone(&self.watched_held);
        let bound = self.cut_off_after;
        self.bells.watch(true, move || {
            let probed = shared.clone();
            Probe {
                peer_gone: Box::new(move || {
                    let held = *held.lock().unwrap_or_else(PoisonError::into_inner);
                    probed
                        .upgrade()
                        .is_some_and(|s| holder_gone_or_due(&s, held, bound, Instant::now()))
                }),
                // The publisher's doorbell is its own.
                arming_consumed: None,
                wake_parked: Box::new(move || {
                    if let Some(shared) = shared.upgrade() {
                        wake_parked_on(&[&shared.region.table().space_signal]);
                    }
                }),
            }
        });
    }

    /// One attempt of `op`; `gone`: the subscriber holding us back was probed
    /// dead (free its slot).
    fn step<T>(
        &mut self,
        gone: bool,
        op: &mut impl FnMut(
            &mut BroadcastPublisher<RawBroadcastRegion>,
        ) -> std::result::Result<T, BroadcastPublishError>,
    ) -> Result<Step<T>> {
        match op(&mut self.publisher) {
            Ok(done) => {
                if self.held.is_some() {
                    self.set_held(None);
                }
                let (region, ringers) = (&self.shared.region, &self.ringers);
                let lookup = |word: &AtomicU32| slot_bell(region, ringers, word);
                self.publisher
                    .notify(&Notifier::with_lookup(self.futex, &lookup));
                Ok(Step::Done(done))
            }
            Err(BroadcastPublishError::Full { slot }) => self.held_back(slot, gone),
            Err(e) => Err(publish_error(&self.shared, e, 0)),
        }
    }

    /// Gated and strict: the subscriber in `slot` has not read what the message
    /// would overwrite. Free its slot if it is dead (`gone`, checked again), cut
    /// it off if it has not moved within the bound, else wait.
    fn held_back<T>(&mut self, slot: usize, gone: bool) -> Result<Step<T>> {
        let now = Instant::now();
        // Relaxed: a hint of progress; the scan's Acquire orders what matters.
        let cursor = self
            .shared
            .region
            .entry(slot)
            .cursor
            .load(Ordering::Relaxed);
        let held = match self.held {
            Some(held) if held.slot == slot && held.cursor == cursor => held,
            _ => {
                let held = Held {
                    slot,
                    cursor,
                    since: now,
                };
                self.set_held(Some(held));
                held
            }
        };
        if gone {
            let owner = self.publisher.slot_owner(slot);
            if owner != 0 && !self.shared.alive(slot_lock(slot))? {
                self.publisher.free_slot(slot, owner);
                self.set_held(None);
                return Ok(Step::Again);
            }
        }
        if cut_off_due(held, self.cut_off_after, now) {
            self.publisher.cut_off(slot);
            self.set_held(None);
            return Ok(Step::Again);
        }
        Ok(Step::Wait)
    }

    /// Sets `held`, and the watcher's copy of it.
    fn set_held(&mut self, held: Option<Held>) {
        self.held = held;
        *self
            .watched_held
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = held;
    }

    /// Parks on the table's space signal until `until` at most.
    fn park(&mut self, until: Instant) -> Result<()> {
        if let Some(key) = self.publisher.prepare_wait_for_space(&self.futex) {
            // A timeout is the driver's to judge (the deadline, the next probe).
            let _ = self
                .futex
                .wait(self.publisher.space_signal(), key, Some(until));
        }
        Ok(())
    }

    /// Up to [`TRY_STEPS`] attempts of `op`, never waiting; `gone`: the
    /// subscriber holding us back looks dead (probe it at the first `Full`).
    fn try_steps<T>(
        &mut self,
        mut gone: bool,
        mut op: impl FnMut(
            &mut BroadcastPublisher<RawBroadcastRegion>,
        ) -> std::result::Result<T, BroadcastPublishError>,
    ) -> Result<Option<T>> {
        for _ in 0..TRY_STEPS {
            match self.step(gone, &mut op)? {
                Step::Done(done) => return Ok(Some(done)),
                Step::Again => gone = false,
                Step::Wait if gone => break,
                Step::Wait => {
                    let shared = &self.shared;
                    let held = self.held;
                    if !self
                        .waiter
                        .peer_gone_throttled(|| held_by_dead(shared, held))?
                    {
                        break;
                    }
                    gone = true;
                }
            }
        }
        Ok(None)
    }

    fn block_steps<T>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(
            &mut BroadcastPublisher<RawBroadcastRegion>,
        ) -> std::result::Result<T, BroadcastPublishError>,
    ) -> Result<T> {
        blocking::block(
            self,
            deadline,
            |publisher, gone| publisher.step(gone, &mut op),
            Self::park,
        )
    }

    /// Publishes `message` if it goes now; never blocks. Returns the number of
    /// subscribers joined (the message reached each live one).
    ///
    /// A gated publisher held back by a dead subscriber frees its slot, and one
    /// held back longer than the cut-off bound by a live subscriber that has not
    /// moved cuts it off, so a loop of `try_send` calls gets past both.
    ///
    /// # Errors
    /// [`TrySendError::Full`] (gated and strict: `needed` the message's length,
    /// `free` 0); [`TrySendError::MessageTooLarge`]; [`TrySendError::Corrupted`];
    /// [`TrySendError::Io`] (a liveness probe failed). Never `Disconnected`.
    pub fn try_send(&mut self, message: &[u8]) -> Result<u32, TrySendError> {
        match self.try_steps(false, |p| p.try_publish(message)) {
            Ok(Some(reached)) => Ok(reached),
            Ok(None) => Err(TrySendError::Full {
                needed: message.len() as u64,
                free: 0,
            }),
            Err(e) => Err(TrySendError::from_error(e)),
        }
    }

    /// Publishes `message`, waiting (gated and strict) for room until `deadline`
    /// at most (`None`: as long as it takes). Returns the number of subscribers
    /// joined.
    ///
    /// # Errors
    /// [`SendTimeoutError::TimedOut`]; [`SendTimeoutError::MessageTooLarge`];
    /// [`SendTimeoutError::Corrupted`]; [`SendTimeoutError::Io`].
    pub fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<u32, SendTimeoutError> {
        self.block_steps(deadline, |p| p.try_publish(message))
            .map_err(SendTimeoutError::from_error)
    }

    /// [`send_deadline`](Self::send_deadline) with no deadline.
    ///
    /// # Errors
    /// As `send_deadline`, but for the timeout.
    pub fn send(&mut self, message: &[u8]) -> Result<u32, SendError> {
        self.send_deadline(message, None)
            .map_err(SendError::untimed)
    }

    /// [`send_deadline`](Self::send_deadline) `timeout` from now.
    ///
    /// # Errors
    /// As `send_deadline`.
    pub fn send_timeout(
        &mut self,
        message: &[u8],
        timeout: Duration,
    ) -> Result<u32, SendTimeoutError> {
        self.send_deadline(message, deadline_after(timeout))
    }

    /// Lends `len` bytes of the data region to write a message in place, if there
    /// is room now (strict topics). [`PublishGrant::commit`] publishes it;
    /// dropping the grant publishes nothing. A publisher held back by a dead
    /// subscriber frees its slot, as [`try_send`](Self::try_send) does.
    ///
    /// # Errors
    /// [`TrySendError::InPlaceNeedsStrict`] on a lossy or gated topic (a gated
    /// publisher may cut a subscriber off and overwrite what it reads, so no
    /// subscriber there may read in place); else as `try_send`.
    pub fn try_grant(&mut self, len: usize) -> Result<PublishGrant<'_>, TrySendError> {
        // A grant dropped at once publishes nothing: a probe for room.
        match self.try_steps(false, |p| p.grant(len).map(drop)) {
            Ok(Some(())) => {}
            Ok(None) => {
                return Err(TrySendError::Full {
                    needed: len as u64,
                    free: 0,
                });
            }
            Err(e) => return Err(TrySendError::from_error(e)),
        }
        self.grant_now(len).map_err(TrySendError::from_error)
    }

    /// As [`try_grant`](Self::try_grant), waiting for room until `deadline` at
    /// most (`None`: as long as it takes), as
    /// [`send_deadline`](Self::send_deadline) does: freeing the slots of dead
    /// subscribers, never cutting off a live one.
    ///
    /// # Errors
    /// [`SendTimeoutError::InPlaceNeedsStrict`]; else as `send_deadline`.
    pub fn grant_deadline(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<PublishGrant<'_>, SendTimeoutError> {
        self.block_steps(deadline, |p| p.grant(len).map(drop))
            .map_err(SendTimeoutError::from_error)?;
        self.grant_now(len).map_err(SendTimeoutError::from_error)
    }

    /// [`grant_deadline`](Self::grant_deadline) with no deadline.
    ///
    /// # Errors
    /// As `grant_deadline`, but for the timeout.
    pub fn grant(&mut self, len: usize) -> Result<PublishGrant<'_>, SendError> {
        self.grant_deadline(len, None).map_err(SendError::untimed)
    }

    /// [`grant_deadline`](Self::grant_deadline) `timeout` from now.
    ///
    /// # Errors
    /// As `grant_deadline`.
    pub fn grant_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<PublishGrant<'_>, SendTimeoutError> {
        self.grant_deadline(len, deadline_after(timeout))
    }

    fn grant_now(&mut self, len: usize) -> Result<PublishGrant<'_>> {
        // The probe just made room (the core publisher caches the floor it
        // moved), so this grant finds it without reading a subscriber's line.
        match self.publisher.grant(len) {
            Ok(grant) => Ok(PublishGrant {
                grant,
                futex: &self.futex,
            }),
            Err(e) => Err(publish_error(&self.shared, e, len)),
        }
    }

    /// Publishes as many of `messages` as go now, in order, storing the
    /// publisher's position once; never blocks. Returns how many went.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), for the first message, if none went.
    pub fn try_send_batch(&mut self, messages: &[&[u8]]) -> Result<usize, TrySendError> {
        match self.try_steps(false, |p| p.try_publish_batch(messages.iter().copied())) {
            Ok(Some(sent)) => Ok(sent),
            Ok(None) => Err(TrySendError::Full {
                needed: messages.first().map_or(0, |m| m.len() as u64),
                free: 0,
            }),
            Err(e) => Err(TrySendError::from_error(e)),
        }
    }

    /// Publishes every message of `messages`, in order, in batches as room allows
    /// (the publisher's position stored once per batch), waiting until `deadline`
    /// at most. Returns `messages.len()`.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline); the messages before the one
    /// that failed went ([`next_seq`](Self::next_seq) counts them).
    pub fn send_batch_deadline(
        &mut self,
        messages: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<usize, SendTimeoutError> {
        let mut sent = 0;
        while sent < messages.len() {
            let rest = &messages[sent..];
            sent += self
                .block_steps(deadline, |p| p.try_publish_batch(rest.iter().copied()))
                .map_err(SendTimeoutError::from_error)?;
        }
        Ok(sent)
    }
}

/// A publisher's core error as the crate's (`Full`, of a message of `len`
/// bytes, as `Error::Full`: the drivers handle it before they get here).
fn publish_error(shared: &Shared, e: BroadcastPublishError, len: usize) -> Error {
    match e {
        BroadcastPublishError::Full { .. } => Error::Full {
            needed: len as u64,
            free: 0,
        },
        BroadcastPublishError::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
        BroadcastPublishError::Corrupted(c) => Error::corrupted(shared.what(), c),
        BroadcastPublishError::InPlaceNeedsStrict { policy } => {
            Error::InPlaceNeedsStrict { policy }
        }
    }
}

/// Bytes of a strict topic's data region lent to its publisher for writing a
/// message in place ([`Publisher::grant`]). Derefs to them (they hold whatever
/// was there before). [`commit`](Self::commit) publishes; dropping it publishes
/// nothing.
pub struct PublishGrant<'a> {
    grant: BroadcastGrant<'a>,
    futex: &'a SharedFutex,
}

impl fmt::Debug for PublishGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.grant.fmt(f)
    }
}

impl PublishGrant<'_> {
    /// Publishes the first `len` bytes as one message and wakes the parked
    /// subscribers. Returns the number of subscribers joined (the message reached
    /// each live one), as [`Publisher::send`].
    ///
    /// # Panics
    /// If `len` exceeds the granted length.
    pub fn commit(self, len: usize) -> u32 {
        self.grant.commit_and_notify(len, self.futex)
    }
}

impl Deref for PublishGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.grant
    }
}

impl DerefMut for PublishGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.grant
    }
}

impl Drop for Publisher {
    /// Gives the claim back, then the lock, then wakes every parked subscriber:
    /// it sees the claim released (`Subscriber::peer_leaving`), probes the lock,
    /// drains what is left and returns `Disconnected` at once.
    fn drop(&mut self) {
        // Before the claim word is released: the next holder writes its own.
        write_pid(&self.publisher.region().oldest().pid, false);
        // SAFETY: dropped once, here; `self.publisher` is not used after.
        unsafe { ManuallyDrop::drop(&mut self.publisher) };
        self.lock = None;
        let region = &self.shared.region;
        let words: Vec<&AtomicU32> = (0..region.slots())
            .map(|slot| &region.entry(slot).data_signal)
            .collect();
        wake_parked_on(&words);
        // A departure rings every subscriber's doorbell once, armed or not: an
        // armed one looks, finds the claim released and probes the lock.
        for ringer in self.ringers.iter().flatten() {
            crate::sys::bell::ring(ringer.as_fd());
        }
    }
}

impl MessageSender for Publisher {
    fn max_message_len(&self) -> usize {
        Publisher::max_message_len(self)
    }

    fn try_send(&mut self, message: &[u8]) -> std::result::Result<(), TrySendError> {
        Publisher::try_send(self, message).map(drop)
    }

    fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> std::result::Result<(), SendTimeoutError> {
        Publisher::send_deadline(self, message, deadline).map(drop)
    }
}

crate::message::codec_sender_methods!(Publisher);

/// A subscriber of a topic, in one slot of its table. `Send`, not `Sync`.
///
/// Dropping it leaves the topic (frees the slot).
pub struct Subscriber {
    // Dropped first (by `Drop`): it gives the slot back before the lock goes.
    subscriber: ManuallyDrop<BroadcastSubscriber<RawBroadcastRegion>>,
    _lock: lock::HeldLock,
    /// Its doorbell (the readiness descriptor) and a ringer's end of the
    /// publisher's. Before `shared`: the watcher lets go of the subscriber before
    /// the topic's last handle goes.
    bells: Bells,
    shared: Arc<Shared>,
    futex: SharedFutex,
    /// The wait strategy; its liveness verdict is about the publisher.
    waiter: Waiter,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("subscriber", &self.subscriber)
            .field("topic", &self.shared.what())
            .finish_non_exhaustive()
    }
}

impl Drop for Subscriber {
    /// Gives the slot back, then wakes a gated publisher parked (or armed) for
    /// room: the slowest cursor may have been ours. The lock goes after.
    fn drop(&mut self) {
        // Before the slot is given back: the next holder writes its own.
        write_pid(&self.shared.region.entry(self.subscriber.slot()).pid, false);
        // SAFETY: dropped once, here; `self.subscriber` is not used after.
        unsafe { ManuallyDrop::drop(&mut self.subscriber) };
        wake_parked_on(&[&self.shared.region.table().space_signal]);
        self.bells.ring_peer();
    }
}

/// Whether the topic's publisher claim was given back (a hint, no system call:
/// the lock probe decides). SeqCst: the store-buffer pairing of `ParkFutex`
/// with the departing publisher's wake-up (`Publisher`'s `Drop`).
fn publisher_released(region: &RawBroadcastRegion) -> bool {
    let line = region.oldest();
    line.owner.load(Ordering::SeqCst) == 0 && line.claims.load(Ordering::Relaxed) != 0
}

/// A subscriber's futex with the publisher's doorbell (`bells`' ringer): what
/// its moves notify the table's space signal through.
fn subscriber_notifier<'a>(
    bells: &'a Bells,
    futex: SharedFutex,
    shared: &'a Shared,
) -> Notifier<'a> {
    bells.notifier(futex, &shared.region.table().space_signal)
}

/// Whether a publisher has claimed the topic and none holds it now.
fn publisher_gone(shared: &Shared) -> Result<bool> {
    // Relaxed: a count; the lock probe decides.
    let claimed = shared.region.oldest().claims.load(Ordering::Relaxed) != 0;
    Ok(claimed && !shared.alive(PUBLISHER_LOCK)?)
}

impl Endpoint for Subscriber {
    fn waiter(&mut self) -> &mut Waiter {
        &mut self.waiter
    }

    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        let shared = &self.shared;
        self.waiter.peer_gone(now, || publisher_gone(shared))
    }

    fn peer_leaving(&self) -> bool {
        publisher_released(&self.shared.region)
    }
}

impl Subscriber {
    /// Largest message the topic carries.
    pub fn max_message_len(&self) -> usize {
        self.subscriber.max_message_len()
    }

    /// The slot this subscriber holds in the table.
    pub fn slot(&self) -> usize {
        self.subscriber.slot()
    }

    /// The topic's policy.
    pub fn policy(&self) -> Policy {
        self.subscriber.policy()
    }

    /// The sequence number of the next message this subscriber will read.
    pub fn next_seq(&self) -> u64 {
        self.subscriber.next_seq()
    }

    /// The readiness descriptor: readable after
    /// [`arm_for_message`](Self::arm_for_message) returned [`Readiness::Armed`]
    /// when the publisher publishes, when it leaves or dies, or (if
    /// [`wakeups`](Self::wakeups) says so) every
    /// [`LIVENESS_INTERVAL`](crate::channel::LIVENESS_INTERVAL). It is this subscriber's
    /// own: no other subscriber takes its rings. Do not read it: arming drains
    /// it.
    ///
    /// The loop: on readable, receive until [`TryRecvError::Empty`] (a
    /// `Lagged` or `Disconnected` is news, not the end: `Disconnected` only
    /// while no publisher holds the topic), then arm again; on
    /// [`Readiness::Ready`], receive again at once.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.bells.doorbell()
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for the next message:
    /// [`Readiness::Ready`] if one may be there now (or a lap to report, or the
    /// publisher is gone: the next `try_recv` says which), else
    /// [`Readiness::Armed`]: the publisher's next publication rings the
    /// descriptor (a publication while nobody is armed costs it no system call).
    /// Never blocks.
    ///
    /// # Errors
    /// [`Error::Io`] (reading the descriptor, or the liveness probe failed).
    pub fn arm_for_message(&mut self) -> Result<Readiness> {
        self.watch(true);
        let region = &self.shared.region;
        let looks_gone = self
            .bells
            .drain_for_arming(|| publisher_released(region) || self.bells.gone_hint())
            .map_err(|e| Error::io("read", self.shared.what(), e))?;
        // The lock's verdict stands for the next non-blocking call.
        if looks_gone && Endpoint::peer_gone(self, Instant::now())? {
            return Ok(Readiness::Ready);
        }
        let notifier = subscriber_notifier(&self.bells, self.futex, &self.shared);
        Ok(self.subscriber.arm_for_message(&notifier))
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken: by a doorbell on a
    /// named topic, polled on a memfd topic (or where its FIFO could not be
    /// opened: the reason says why).
    pub fn wakeups(&self) -> &Wakeups {
        self.bells.wakeups()
    }

    /// Registers with the process's watcher (once), armed or not: it rings a
    /// polled descriptor every interval while armed, and an armed one whose
    /// publisher it finds gone without a hang-up (another process holds a
    /// ringer's end). A blocked `recv` does not register: it probes by itself,
    /// as before readiness came.
    fn watch(&mut self, armed: bool) {
        // Weak: the topic is dropped by its last user, not by the watcher.
        let shared = Arc::downgrade(&self.shared);
        let slot = self.subscriber.slot();
        self.bells.watch(armed, move || {
            let probed = shared.clone();
            Probe {
                peer_gone: Box::new(move || {
                    probed
                        .upgrade()
                        .is_some_and(|s| publisher_gone(&s).unwrap_or(false))
                }),
                // Our doorbell is ours alone: no other waiter takes its rings.
                arming_consumed: None,
                wake_parked: Box::new(move || {
                    if let Some(shared) = shared.upgrade() {
                        wake_parked_on(&[&shared.region.entry(slot).data_signal]);
                    }
                }),
            }
        });
    }

    /// One attempt; `gone`: the publisher is gone (an empty topic is
    /// One attempt of `op`; `gone`: the publisher is gone (an empty topic is
    /// `Disconnected`).
    fn step<T>(
        &mut self,
        gone: bool,
        op: &mut impl FnMut(
            &mut BroadcastSubscriber<RawBroadcastRegion>,
        ) -> std::result::Result<T, BroadcastRecvError>,
    ) -> Result<Step<T>> {
        let result = op(&mut self.subscriber);
        // Gated: a publisher waiting for room learns that we moved.
        let notifier = subscriber_notifier(&self.bells, self.futex, &self.shared);
        self.subscriber.wake_publisher(&notifier);
        match result {
            Ok(n) => Ok(Step::Done(n)),
            Err(BroadcastRecvError::Empty) if gone => {
                Err(Error::Disconnected { peer: Role::Sender })
            }
            Err(BroadcastRecvError::Empty) => Ok(Step::Wait),
            Err(e) => Err(recv_error(&self.shared, e)),
        }
    }

    /// Copies the next message into `buf` if there is one now; never blocks.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`]; [`TryRecvError::Lagged`] (`missed` messages were
    /// overwritten unread; the next call returns the oldest one still held);
    /// [`TryRecvError::Disconnected`] when nothing is left and no publisher holds
    /// the topic (though one has: probed at most every millisecond; not final, a
    /// new publisher may come); [`TryRecvError::BufferTooSmall`] (the message
    /// stays unread); [`TryRecvError::Corrupted`]; [`TryRecvError::Io`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        self.try_recv_inner(buf).map_err(TryRecvError::from_error)
    }

    fn try_recv_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.try_steps(|sub| sub.try_recv(buf))
    }

    /// `op` now, and once more if it found nothing and the publisher is gone
    /// (what it committed before is there then); never blocks.
    fn try_steps<T>(
        &mut self,
        mut op: impl FnMut(
            &mut BroadcastSubscriber<RawBroadcastRegion>,
        ) -> std::result::Result<T, BroadcastRecvError>,
    ) -> Result<T> {
        if let Step::Done(done) = self.step(false, &mut op)? {
            return Ok(done);
        }
        let shared = &self.shared;
        if self.waiter.peer_gone_throttled(|| publisher_gone(shared))?
            && let Step::Done(done) = self.step(true, &mut op)?
        {
            return Ok(done);
        }
        Err(Error::Empty)
    }

    /// Copies the next message into `buf`, waiting for one until `deadline` at
    /// most (`None`: as long as it takes).
    ///
    /// # Errors
    /// [`RecvTimeoutError::TimedOut`]; `Lagged`, `Disconnected`,
    /// `BufferTooSmall`, `Corrupted`, `Io` as [`try_recv`](Self::try_recv) (a
    /// blocked call sees the publisher's death within
    /// [`PEER_DEATH_BOUND`](crate::channel::PEER_DEATH_BOUND)).
    pub fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        self.block_steps(deadline, |sub| sub.try_recv(buf))
            .map_err(RecvTimeoutError::from_error)
    }

    /// `op` until it finds a message, waiting (by the wait strategy) until
    /// `deadline` at most.
    fn block_steps<T>(
        &mut self,
        deadline: Option<Instant>,
        mut op: impl FnMut(
            &mut BroadcastSubscriber<RawBroadcastRegion>,
        ) -> std::result::Result<T, BroadcastRecvError>,
    ) -> Result<T> {
        blocking::block(
            self,
            deadline,
            |rx, gone| rx.step(gone, &mut op),
            |rx, until| {
                let region = &rx.shared.region;
                let futex = rx
                    .waiter
                    .park_futex(rx.futex, || publisher_released(region));
                // A timeout is the driver's to judge.
                let _ = rx.subscriber.wait_for_message(&futex, Some(until));
                Ok(())
            },
        )
    }

    /// Lends the next message in place, if there is one now (strict topics).
    /// [`InPlaceMessage::release`] moves past it; dropping it leaves it to be
    /// read again. The subscriber's mapping is read-only: reading in place never
    /// writes the data segment.
    ///
    /// # Errors
    /// [`TryRecvError::InPlaceNeedsStrict`] on a lossy or gated topic (whose
    /// publisher may overwrite a message while it is read); else as
    /// [`try_recv`](Self::try_recv), without `BufferTooSmall` and `Lagged` (a
    /// strict topic never laps a subscriber).
    pub fn try_read(&mut self) -> Result<InPlaceMessage<'_>, TryRecvError> {
        // A message read and dropped stays unread: a probe.
        self.try_steps(|sub| sub.read().map(drop))
            .map_err(TryRecvError::from_error)?;
        self.read_now().map_err(TryRecvError::from_error)
    }

    /// As [`try_read`](Self::try_read), waiting for a message until `deadline`
    /// at most (`None`: as long as it takes).
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `BufferTooSmall` and
    /// `Lagged`; [`RecvTimeoutError::InPlaceNeedsStrict`].
    pub fn read_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<InPlaceMessage<'_>, RecvTimeoutError> {
        self.block_steps(deadline, |sub| sub.read().map(drop))
            .map_err(RecvTimeoutError::from_error)?;
        self.read_now().map_err(RecvTimeoutError::from_error)
    }

    /// [`read_deadline`](Self::read_deadline) with no deadline.
    ///
    /// # Errors
    /// As `read_deadline`, but for the timeout.
    pub fn read(&mut self) -> Result<InPlaceMessage<'_>, RecvError> {
        self.read_deadline(None).map_err(RecvError::untimed)
    }

    /// [`read_deadline`](Self::read_deadline) `timeout` from now.
    ///
    /// # Errors
    /// As `read_deadline`.
    pub fn read_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<InPlaceMessage<'_>, RecvTimeoutError> {
        self.read_deadline(deadline_after(timeout))
    }

    fn read_now(&mut self) -> Result<InPlaceMessage<'_>> {
        // A message was found just before; only we move our cursor and a strict
        // publisher does not overwrite past it, so it is still there.
        match self.subscriber.read() {
            Ok(message) => Ok(InPlaceMessage {
                message,
                futex: &self.futex,
            }),
            Err(e) => Err(recv_error(&self.shared, e)),
        }
    }
}

/// A subscriber's core error as the crate's (`Empty` as `Error::Empty`: the
/// blocking and `try_` drivers handle it before they get here).
fn recv_error(shared: &Shared, e: BroadcastRecvError) -> Error {
    match e {
        BroadcastRecvError::Empty => Error::Empty,
        BroadcastRecvError::Lagged { missed } => Error::Lagged { missed },
        BroadcastRecvError::BufferTooSmall { len, capacity } => Error::BufferTooSmall {
            len,
            buffer: capacity,
        },
        BroadcastRecvError::Corrupted(c) => Error::corrupted(shared.what(), c),
        BroadcastRecvError::InPlaceNeedsStrict { policy } => Error::InPlaceNeedsStrict { policy },
    }
}

/// A message lent in place to a strict topic's subscriber
/// ([`Subscriber::read`]). Derefs to its bytes, in the data segment's read-only
/// mapping.
///
/// [`release`](Self::release) moves past it; dropping it leaves it to be read
/// again. While it is held, the publisher does not overwrite it: a strict
/// publisher waits (a subscriber that holds a message forever holds the
/// publisher back forever, unless it dies: then its slot is freed). The bytes
/// are shared memory: a hostile publisher could change them while lent (a garbage
/// payload, never an access out of bounds).
pub struct InPlaceMessage<'a> {
    message: BroadcastMessage<'a>,
    futex: &'a SharedFutex,
}

impl fmt::Debug for InPlaceMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message.fmt(f)
    }
}

impl InPlaceMessage<'_> {
    /// The message's sequence number (0 for the topic's first message).
    pub fn seq(&self) -> u64 {
        self.message.seq()
    }

    /// Moves past the message and wakes a publisher waiting for room.
    pub fn release(self) {
        self.message.release_and_wake(self.futex);
    }
}

impl Deref for InPlaceMessage<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.message
    }
}

message_receiver!(Subscriber);
