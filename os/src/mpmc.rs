//! Named MPMC channels: any number of processes send into and receive from one
//! shared ring of fixed-size slots ([`shmring_core::mpmc`]).
//!
//! The backings, permissions, reclaim and clean-up rules are every segment's
//! ([`SegmentBuilder`]); the blocking calls and their [`WaitStrategy`] are the SPSC
//! channels'. What differs:
//!
//! - **Endpoints**: every [`MpmcSender`] and [`MpmcReceiver`] registers in an entry
//!   of the segment's endpoint table (its size is fixed at creation,
//!   [`MpmcChannelBuilder::endpoints`]). Attaching beyond it is
//!   [`Error::EndpointTableFull`]. An endpoint holds an exclusive OFD lock on the
//!   first byte of its entry while it lives: the kernel drops it when the process
//!   dies, which is how the others tell a dead endpoint from a slow one.
//! - **Crash consistency**: a receiver that finds a position claimed by a sender
//!   but not published waits; once that has lasted longer than the stall timeout
//!   ([`MpmcChannelBuilder::stall_timeout`], default 2 ms) it checks whether the
//!   claimant is alive, and skips the slot if it is dead (counted in
//!   [`MpmcStats::skipped`]). A sender that finds a slot still held by a receiver
//!   of the previous lap does the same, and frees it if that receiver is dead (its
//!   message is lost: counted in [`MpmcStats::lost`]). A live but slow claimant is
//!   waited for.
//! - **Disconnected**: a receiver gets [`Error::Disconnected`] when the ring holds
//!   no message, no sender is registered and alive, and at least one sender has
//!   ever registered (the segment counts registrations per role; a receiver that
//!   attaches after every sender died gets it too). A sender gets it when the
//!   ring is full and, likewise, no receiver is alive though one has been. Each
//!   check is a snapshot of the endpoint table: a sender that registers while a
//!   receiver's check runs may be missed by that check (the receiver then gets
//!   `Disconnected` just as a new sender arrives).
//!
//! ```no_run
//! use shmring::MpmcChannelBuilder;
//! # fn main() -> shmring::Result<()> {
//! // Any number of processes:
//! let channel = MpmcChannelBuilder::shm("jobs").slots(1024).slot_size(256).create()?;
//! let mut tx = channel.sender()?;
//! tx.send(b"job 1")?;
//! // Any number of others:
//! let mut rx = MpmcChannelBuilder::shm("jobs").open()?.receiver()?;
//! let mut buf = [0u8; 256];
//! let n = rx.recv(&mut buf)?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::fs::File;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shmring_core::mpmc::layout::{MAX_MPMC_SEGMENT, ROLE_CONSUMER, ROLE_PRODUCER};
use shmring_core::wait::ARMED;
use shmring_core::{
    MpmcConsumer, MpmcCorruption, MpmcGeometry, MpmcLayoutError, MpmcPopError, MpmcProducer,
    MpmcPushError, MpmcRegion, MpmcWaitError, RawMpmcRegion, Recovery,
};

pub use shmring_core::MpmcStats;

use crate::blocking::{self, Endpoint, ParkFutex, Step, WaitStrategy, Waiter};
use crate::error::{self, Corrupted, Error, Result, Role};
use crate::futex::{Notifier, SharedFutex, wake_parked_on};
use crate::message::{message_receiver, message_sender};
use crate::options::{Compared, SegmentBuilder};
use crate::readiness::watcher::Probe;
use crate::readiness::{Bells, Readiness, Wakeups};
use crate::segment::{Backing, EntryLocks, Segment, SegmentOptions};

/// The default stall timeout: how long a claimed but unfinished slot is waited
/// for before its claimant's liveness is checked.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_millis(2);

/// The longest stall timeout (so that `now + timeout` never overflows the clock).
const MAX_STALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Steps one non-blocking call takes at most: a step ends in a message, a
/// recovered slot (then the call goes on), or a contended claim.
const TRY_STEPS: u32 = 64;

/// `Contended` results in a row a call accepts before it reports the position as
/// unstable (each is 256 failed claims: other endpoints, or a hostile peer, kept
/// moving it).
const MAX_CONTENDED: u32 = 64;

/// A segment holding an MPMC ring.
pub type MpmcSegment = Segment<RawMpmcRegion>;

/// Maps a requested shape's error (before any system call).
fn shape_error(e: MpmcLayoutError) -> Error {
    match e {
        MpmcLayoutError::InvalidSlotCount { slots } => Error::InvalidSlotCount { slots },
        MpmcLayoutError::InvalidSlotSize { slot_size, max } => {
            Error::InvalidSlotSize { slot_size, max }
        }
        MpmcLayoutError::InvalidEndpointCount { endpoints, max } => {
            Error::InvalidEndpointCount { endpoints, max }
        }
        MpmcLayoutError::SegmentTooLarge { size } => Error::SegmentTooLarge {
            size,
            max: MAX_MPMC_SEGMENT,
        },
        MpmcLayoutError::Segment(e) => Error::layout("MPMC layout", e),
    }
}

/// Creates or opens an MPMC channel: its backing, its shape (slot count, slot size,
/// endpoint table) and stall timeout here; permissions, cleanup and the
/// endpoints' wait strategy through [`SegmentBuilder`].
#[derive(Debug, Clone)]
pub struct MpmcChannelBuilder {
    options: SegmentOptions,
    slots: usize,
    slot_size: usize,
    endpoints: usize,
    stall_timeout: Duration,
}

impl SegmentBuilder for MpmcChannelBuilder {
    fn options(&self) -> &SegmentOptions {
        &self.options
    }

    fn options_mut(&mut self) -> &mut SegmentOptions {
        &mut self.options
    }
}

impl MpmcChannelBuilder {
    fn new(backing: Backing) -> Self {
        Self {
            options: SegmentOptions::new(backing),
            slots: 1024,
            slot_size: 256,
            endpoints: 16,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }

    /// A channel in named POSIX shared memory (`/dev/shm/shmring.<name>`), with
    /// the SPSC channels' name rules.
    pub fn shm(name: impl Into<String>) -> Self {
        Self::new(Backing::Shm(name.into()))
    }

    /// A channel in a regular file at `path` (it persists).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Backing::File(path.into()))
    }

    /// A channel in an anonymous memfd, sealed against resizing, for child
    /// processes ([`MpmcChannel::pass_to`]) or peers reached over a Unix socket.
    pub fn memfd() -> Self {
        Self::new(Backing::Memfd)
    }

    /// Number of slots (messages the ring holds), a power of two from 2 to 2^24
    /// (default 1024).
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots;
        self
    }

    /// Largest message in bytes, from 1 to 16 MiB (default 256). Every slot
    /// takes this much room whatever the message's length.
    pub fn slot_size(mut self, bytes: usize) -> Self {
        self.slot_size = bytes;
        self
    }

    /// Entries in the endpoint table: how many senders and receivers together
    /// can be attached at once, from 1 to 1024 (default 16).
    pub fn endpoints(mut self, endpoints: usize) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// How long an endpoint waits on a slot that another endpoint claimed and has
    /// not finished (a sender writing it, a receiver copying it out) before it
    /// checks whether that endpoint's process is alive (default 2 ms). A dead
    /// claimant's slot is then recovered at once; a live one is waited for, with
    /// a check every `timeout`. Shorter: a death costs the others less; longer:
    /// fewer liveness checks (system calls) while a claimant is merely slow.
    /// Longer than an hour counts as an hour.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout.min(MAX_STALL_TIMEOUT);
        self
    }

    /// Creates the segment and a fresh, empty ring in it.
    ///
    /// # Errors
    /// [`Error::InvalidSlotCount`], [`Error::InvalidSlotSize`],
    /// [`Error::InvalidEndpointCount`], [`Error::SegmentTooLarge`] (all before
    /// any system call), [`Error::InvalidName`], [`Error::AlreadyExists`],
    /// [`Error::PermissionDenied`], [`Error::NoSpace`], [`Error::Io`].
    pub fn create(&self) -> Result<MpmcChannel> {
        let geometry =
            MpmcGeometry::new(self.slots, self.slot_size, self.endpoints).map_err(shape_error)?;
        let segment = Segment::create_mpmc(&self.options, &geometry)?;
        Ok(self.channel(segment))
    }

    /// Opens an existing MPMC channel and validates its header.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::Untrusted`], [`Error::BadSize`], [`Error::IncompatibleLayout`]
    /// (an SPSC channel or another kind of segment), [`Error::Corrupted`],
    /// [`Error::Io`].
    pub fn open(&self) -> Result<MpmcChannel> {
        Ok(self.channel(Segment::open_with(&self.options)?))
    }

    /// Opens the channel, or creates it if there is none: for two processes
    /// started in any order. Race-free: of processes racing, exactly one creates
    /// (exclusively) and the others open what it made, waiting for it if they
    /// catch it half-way. A memfd channel is created. The stall timeout is each
    /// process's own and is not compared.
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the existing segment is not an MPMC ring of
    /// this layout version (`field` `"kind"` or `"layout version"`) or its shape
    /// is not this builder's (`"slots"`, `"slot_size"`, `"endpoints"`); else as
    /// [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create(&self) -> Result<MpmcChannel> {
        crate::options::open_or_create(
            &self.options,
            shmring_core::layout::RING_KIND_MPMC,
            || self.open(),
            || self.create(),
            |channel| channel.segment.describe().to_owned(),
            |channel| {
                vec![
                    Compared::new("slots", self.slots as u64, channel.slots() as u64),
                    Compared::new(
                        "slot_size",
                        self.slot_size as u64,
                        channel.max_message_len() as u64,
                    ),
                    Compared::new(
                        "endpoints",
                        self.endpoints as u64,
                        channel.endpoints() as u64,
                    ),
                ]
            },
        )
    }

    /// Opens the channel behind `fd`, handed over by a parent or a peer.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_fd(&self, fd: OwnedFd) -> Result<MpmcChannel> {
        Ok(self.channel(Segment::from_fd_with(fd, &self.options)?))
    }

    /// Opens the channel whose descriptor number a parent put in the environment
    /// variable `var` ([`MpmcChannel::pass_to`]), taking ownership of it.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the variable is unset, not a number, or names no
    /// open descriptor; else as [`from_fd`](Self::from_fd).
    ///
    /// # Safety
    /// As [`ChannelBuilder::from_env`](crate::channel::ChannelBuilder::from_env): the
    /// descriptor was passed to this process for this channel and nothing else
    /// in the process owns it.
    pub unsafe fn from_env(&self, var: &str) -> Result<MpmcChannel> {
        // SAFETY: the caller's contract is `inherited_fd`'s.
        let (fd, bells) = unsafe { crate::segment::open::inherited_fd(var) }?;
        let mut segment = Segment::from_fd_with(fd, &self.options)?;
        segment.set_bells(bells);
        Ok(self.channel(segment))
    }

    fn channel(&self, segment: MpmcSegment) -> MpmcChannel {
        MpmcChannel {
            segment: Arc::new(segment),
            wait: self.options.wait,
            stall_timeout: self.stall_timeout,
        }
    }
}

/// A created or opened MPMC channel: attach any number of [`MpmcSender`]s and
/// [`MpmcReceiver`]s (up to the endpoint table's size). The segment lives while
/// the channel or any endpoint does.
#[derive(Debug, Clone)]
pub struct MpmcChannel {
    segment: Arc<MpmcSegment>,
    wait: WaitStrategy,
    stall_timeout: Duration,
}

impl MpmcChannel {
    /// Attaches a sender.
    ///
    /// # Errors
    /// [`Error::EndpointTableFull`] while every entry is held by a live endpoint
    /// (the entry of a dead one is taken over); [`Error::Unsupported`] (a channel
    /// with asymmetric fences where `membarrier` is refused); [`Error::Io`].
    pub fn sender(&self) -> Result<MpmcSender> {
        let futex = self.futex()?;
        let bells = self.bells(Role::Sender)?;
        let (producer, lock) = self.segment.register_producer()?;
        Ok(MpmcSender {
            producer,
            _lock: lock,
            link: self.link(futex, bells, ROLE_CONSUMER),
        })
    }

    /// Attaches a receiver.
    ///
    /// # Errors
    /// As [`sender`](Self::sender).
    pub fn receiver(&self) -> Result<MpmcReceiver> {
        let futex = self.futex()?;
        let bells = self.bells(Role::Receiver)?;
        let (consumer, lock) = self.segment.register_consumer()?;
        Ok(MpmcReceiver {
            consumer,
            _lock: lock,
            link: self.link(futex, bells, ROLE_PRODUCER),
        })
    }

    /// The doorbells of an endpoint of `role` (`crate::readiness`).
    fn bells(&self, role: Role) -> Result<Bells> {
        self.segment.endpoint_bells(role)
    }

    fn link(&self, futex: SharedFutex, bells: Bells, peer_role: u32) -> Link {
        Link {
            segment: Arc::clone(&self.segment),
            futex,
            bells,
            waiter: Waiter::new(self.wait),
            stall_timeout: self.stall_timeout,
            peer_role,
            stall: None,
        }
    }

    /// The futex for the segment's protocol (see `Channel::futex`).
    fn futex(&self) -> Result<SharedFutex> {
        SharedFutex::for_flags(
            self.segment.contents().flags(),
            "membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED), which this channel's \
             creator chose (a seccomp filter or a kernel before 4.16 here?)",
        )
    }

    /// The segment under the channel.
    pub fn segment(&self) -> &MpmcSegment {
        &self.segment
    }

    /// Largest message: the slot size.
    pub fn max_message_len(&self) -> usize {
        self.segment.contents().geometry().slot_size()
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.segment.contents().geometry().slots()
    }

    /// Entries in the endpoint table.
    pub fn endpoints(&self) -> usize {
        self.segment.contents().geometry().endpoints()
    }

    /// The ring's recovery statistics: slots skipped after a sender died between
    /// claiming and publishing, messages lost with a receiver that died between
    /// claiming and copying them out ([`MpmcStats::lost`] says exactly which: once
    /// a receiver has got [`Error::Disconnected`], every message committed was
    /// delivered or is counted in `lost`).
    pub fn stats(&self) -> MpmcStats {
        self.segment.contents().stats()
    }

    /// How many senders are attached and alive now (a snapshot; `F_OFD_GETLK` per
    /// sender entry).
    ///
    /// # Errors
    /// [`Error::Io`] if a probe fails.
    pub fn live_senders(&self) -> Result<usize> {
        Ok(scan(&self.segment, ROLE_PRODUCER)?.alive)
    }

    /// How many receivers are attached and alive now (a snapshot).
    ///
    /// # Errors
    /// [`Error::Io`] if a probe fails.
    pub fn live_receivers(&self) -> Result<usize> {
        Ok(scan(&self.segment, ROLE_CONSUMER)?.alive)
    }

    /// Lets the child that `command` spawns open this channel: its descriptor is
    /// inherited and its number put in `var`, for [`MpmcChannelBuilder::from_env`].
    pub fn pass_to(&self, command: &mut Command, var: &str) {
        self.segment.pass_to(command, var);
    }
}

/// What a scan of the endpoint table found for one role.
struct Scan {
    /// Entries of the role whose holder is alive.
    alive: usize,
    /// Whether an endpoint of the role has ever registered (the segment's
    /// registration count, which survives the reuse of a dead endpoint's entry
    /// by the other role; the entries' role words do not).
    registered: bool,
}

/// Scans the table for endpoints of `role`: the role's registration count first
/// (as SPSC reads `claims` before probing), then the role words (Relaxed: a
/// snapshot, read once each), then the lock of each entry that has a holder.
fn scan(segment: &MpmcSegment, role: u32) -> Result<Scan> {
    let region = segment.contents();
    let geometry = region.geometry();
    let signals = &region.control().signals.0;
    let count = if role == ROLE_PRODUCER {
        &signals.producers_registered
    } else {
        &signals.consumers_registered
    };
    // Relaxed: a record ordered with nothing. Read before the probes (system
    // calls) below: an endpoint counts itself while it holds its lock, so one
    // whose death a probe sees was counted before; a registration racing this
    // scan may be missed, as its role word may (a snapshot).
    let mut found = Scan {
        alive: 0,
        registered: count.load(Ordering::Relaxed) != 0,
    };
    for index in 0..geometry.endpoints() {
        let entry = region.entry(index);
        // Relaxed: informational words; the lock decides liveness.
        if entry.role.load(Ordering::Relaxed) != role {
            continue;
        }
        if entry.owner.load(Ordering::Relaxed) != 0
            && segment.is_role_alive(geometry.entry_offset(index) as u64)?
        {
            found.alive += 1;
        }
    }
    Ok(found)
}

/// A stall being waited out: the position, and when to check its claimant next.
#[derive(Debug, Clone, Copy)]
struct Stall {
    position: u64,
    check_at: Instant,
}

/// An endpoint's tie to its segment and the other side.
struct Link {
    /// The doorbell this endpoint waits on (its readiness descriptor) and the one
    /// it rings. First, so that it drops first: the watcher lets go of the
    /// endpoint before the segment's last handle goes.
    bells: Bells,
    segment: Arc<MpmcSegment>,
    futex: SharedFutex,
    /// The wait strategy and the other side's last liveness verdict.
    waiter: Waiter,
    stall_timeout: Duration,
    /// The role at the other side: what "gone" is about.
    peer_role: u32,
    stall: Option<Stall>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("segment", &self.segment.describe())
            .field("wait", &self.waiter.strategy())
            .field("stall_timeout", &self.stall_timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    /// After the endpoint's entry and lock have gone: an armed endpoint of the
    /// other side looks again (and finds this one gone, if it was the last).
    fn drop(&mut self) {
        self.bells.ring_peer();
    }
}

impl Link {
    /// The futex with the other side's doorbell: what publications notify through.
    #[inline]
    fn notifier(&self) -> Notifier<'_> {
        let signals = &self.segment.contents().control().signals.0;
        // We notify the word the other side waits on.
        let word = if self.peer_role == ROLE_CONSUMER {
            &signals.data_signal
        } else {
            &signals.space_signal
        };
        self.bells.notifier(self.futex, word)
    }

    /// The futex a parked call sleeps on: the segment's, except that it does not
    /// sleep long once the doorbell hung up (`blocking::ParkFutex`).
    fn park_futex(&self) -> ParkFutex<'_, impl Fn() -> bool + '_> {
        self.waiter
            .park_futex(self.futex, || self.bells.gone_hint())
    }

    /// Registers with the process's watcher (once), so that the other side's
    /// death wakes this endpoint's parked calls and armed descriptor.
    fn watch(&mut self, armed: bool) {
        // Weak: the segment is dropped (and its name removed) by its last
        // user, never by the watcher thread.
        let segment = Arc::downgrade(&self.segment);
        let role = self.peer_role;
        self.bells.watch(armed, move || {
            let probed = segment.clone();
            let shared = segment.clone();
            Probe {
                peer_gone: Box::new(move || {
                    probed
                        .upgrade()
                        .is_some_and(|s| probe_peer(&s, role).unwrap_or(false))
                }),
                arming_consumed: Some(Box::new(move || {
                    let Some(shared) = shared.upgrade() else {
                        return false;
                    };
                    let signals = &shared.contents().control().signals.0;
                    // The word this side waits on: the other side notifies it.
                    let word = if role == ROLE_CONSUMER {
                        &signals.space_signal
                    } else {
                        &signals.data_signal
                    };
                    // Relaxed: a hint for a ring that is at worst spurious.
                    word.load(Ordering::Relaxed) & ARMED == 0
                })),
                wake_parked: Box::new(move || {
                    if let Some(segment) = segment.upgrade() {
                        let signals = &segment.contents().control().signals.0;
                        wake_parked_on(&[&signals.data_signal, &signals.space_signal]);
                    }
                }),
            }
        });
    }

    /// Arms the readiness descriptor by `arm`, after draining it; `Ready` when
    /// the condition holds already or the other side is gone.
    fn arm(
        &mut self,
        arm: impl FnOnce(&Notifier<'_>) -> std::result::Result<Readiness, MpmcWaitError>,
    ) -> Result<Readiness> {
        self.watch(true);
        let looks_gone = self
            .bells
            .drain_for_arming(|| self.bells.gone_hint())
            .map_err(|e| Error::io("read", self.segment.describe(), e))?;
        // The lock's verdict stands for the next non-blocking call.
        if looks_gone && self.peer_gone(Instant::now())? {
            return Ok(Readiness::Ready);
        }
        arm(&self.notifier()).map_err(|e| match e {
            MpmcWaitError::Corrupted(c) => self.corrupted(c),
            // An arming never waits, so never times out.
            MpmcWaitError::TimedOut => Error::TimedOut,
        })
    }

    fn peer(&self) -> Role {
        if self.peer_role == ROLE_PRODUCER {
            Role::Sender
        } else {
            Role::Receiver
        }
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected { peer: self.peer() }
    }

    fn corrupted(&self, c: MpmcCorruption) -> Error {
        Error::corrupted(self.segment.describe(), c)
    }

    fn unstable(&self, word: &'static str) -> Error {
        Error::Corrupted {
            what: self.segment.describe().to_owned(),
            detail: Corrupted::WordUnstable {
                word,
                attempts: MAX_CONTENDED * 256,
            },
        }
    }

    /// Whether the other side has been here (ever: its registration count) and
    /// none of it is alive now.
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.waiter
            .peer_gone(now, || probe_peer(&self.segment, self.peer_role))
    }

    /// As `peer_gone`, at most every
    /// [`TRY_LIVENESS_INTERVAL`](blocking::TRY_LIVENESS_INTERVAL).
    fn peer_gone_throttled(&mut self) -> Result<bool> {
        self.waiter
            .peer_gone_throttled(|| probe_peer(&self.segment, self.peer_role))
    }

    /// Whether recovery of the stall at `position` is due now (`force`: the other
    /// side is known gone, so at once). Starts timing a new stall.
    fn recovery_due(&mut self, position: u64, force: bool) -> bool {
        let now = Instant::now();
        match self.stall {
            Some(stall) if stall.position == position => force || now >= stall.check_at,
            _ => {
                self.stall = Some(Stall {
                    position,
                    check_at: now + self.stall_timeout,
                });
                force
            }
        }
    }

    /// Acts on a recovery's outcome: `Again` if the slot moved on, else `Wait`
    /// (the claimant is alive) with the next check a stall timeout away.
    fn recovered<T>(
        &mut self,
        outcome: std::result::Result<Recovery, MpmcCorruption>,
    ) -> Result<Step<T>> {
        match outcome.map_err(|c| self.corrupted(c))? {
            Recovery::Recovered | Recovery::AlreadyMoved => {
                self.stall = None;
                Ok(Step::Again)
            }
            Recovery::ClaimantAlive { .. } => {
                if let Some(stall) = &mut self.stall {
                    stall.check_at = Instant::now() + self.stall_timeout;
                }
                Ok(Step::Wait)
            }
        }
    }
}

/// Whether an endpoint of `role` has registered in the table and none of them is
/// alive now. A system call per entry of the role.
fn probe_peer(segment: &MpmcSegment, role: u32) -> Result<bool> {
    let found = scan(segment, role)?;
    Ok(found.registered && found.alive == 0)
}

/// A sending endpoint of an MPMC channel. `Send`, not `Sync`.
///
/// Messages one sender sends are received in the order sent (by whichever
/// receivers take them); a sent message is received at most once, and exactly
/// once unless the receiver that took it dies before copying it out (then it is
/// counted in [`MpmcStats::lost`]).
pub struct MpmcSender {
    // Field order is drop order: the producer clears its entry, then the lock
    // goes (the entry is free), then the mapping.
    producer: MpmcProducer<RawMpmcRegion>,
    _lock: File,
    link: Link,
}

impl fmt::Debug for MpmcSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcSender")
            .field("producer", &self.producer)
            .field("link", &self.link)
            .finish()
    }
}

impl MpmcSender {
    /// Largest message: the slot size.
    pub fn max_message_len(&self) -> usize {
        self.producer.max_message_len()
    }

    /// This sender's entry in the endpoint table.
    pub fn entry(&self) -> usize {
        self.producer.entry()
    }

    /// The entry's generation: how many endpoints have registered in it, this one
    /// included (wrapping).
    pub fn generation(&self) -> u32 {
        self.producer.generation()
    }

    /// The ring's recovery statistics.
    pub fn stats(&self) -> MpmcStats {
        self.producer.stats()
    }

    /// The readiness descriptor for room: readable after
    /// [`arm_for_space`](Self::arm_for_space) returned [`Readiness::Armed`] when a
    /// receiver frees a slot, when every receiver has gone, or (if
    /// [`wakeups`](Self::wakeups) says so) every
    /// [`LIVENESS_INTERVAL`](crate::LIVENESS_INTERVAL). Senders of one channel
    /// share the doorbell: one may take another's ring, and each arms again after
    /// finding the ring full. Do not read it: arming drains it.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.link.bells.doorbell()
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for a free slot:
    /// [`Readiness::Ready`] if the slot at the tail is free now (or every
    /// receiver has gone), else [`Readiness::Armed`]. Never blocks.
    ///
    /// # Errors
    /// [`Error::Corrupted`], [`Error::Io`].
    pub fn arm_for_space(&mut self) -> Result<Readiness> {
        let producer = &mut self.producer;
        self.link.arm(|notifier| producer.arm_for_space(notifier))
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken.
    pub fn wakeups(&self) -> &Wakeups {
        self.link.bells.wakeups()
    }

    /// One attempt; `peer_gone`: no receiver is alive (recover at once, and a full
    /// ring is `Disconnected`).
    fn step(&mut self, message: &[u8], peer_gone: bool, contended: &mut u32) -> Result<Step<()>> {
        match self.producer.push(message) {
            Ok(()) => {
                self.link.stall = None;
                self.producer.wake(&self.link.notifier());
                Ok(Step::Done(()))
            }
            Err(MpmcPushError::Full) => {
                self.link.stall = None;
                if peer_gone {
                    Err(self.link.disconnected())
                } else {
                    Ok(Step::Wait)
                }
            }
            Err(MpmcPushError::Stalled { position }) => {
                if !self.link.recovery_due(position, peer_gone) {
                    return Ok(Step::Wait);
                }
                let outcome = self
                    .producer
                    .reclaim_from_dead_consumer(position, &EntryLocks::mpmc(&self.link.segment));
                let step = self.link.recovered(outcome)?;
                self.producer.wake(&self.link.notifier());
                Ok(step)
            }
            Err(MpmcPushError::Contended) => {
                *contended += 1;
                if *contended >= MAX_CONTENDED {
                    return Err(self.link.unstable("tail"));
                }
                Ok(Step::Again)
            }
            Err(MpmcPushError::TooLarge { len, max }) => Err(Error::MessageTooLarge { len, max }),
            Err(MpmcPushError::Corrupted(c)) => Err(self.link.corrupted(c)),
        }
    }

    /// Copies `message` into a free slot if there is one now; never blocks.
    ///
    /// A slot that a dead receiver holds is freed once it has been held longer
    /// than the stall timeout, so a loop of `try_send` calls gets past a death.
    ///
    /// # Errors
    /// [`TrySendError::Full`](error::TrySendError::Full) (`needed`: the message's length, `free`: 0);
    /// [`TrySendError::Disconnected`](error::TrySendError::Disconnected) when full and no receiver is alive (though
    /// one has been attached); [`TrySendError::MessageTooLarge`](error::TrySendError::MessageTooLarge);
    /// [`TrySendError::Corrupted`](error::TrySendError::Corrupted); [`TrySendError::Io`](error::TrySendError::Io) if the liveness probe
    /// fails.
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), error::TrySendError> {
        self.try_send_steps(message)
            .map_err(error::TrySendError::from_error)
    }

    fn try_send_steps(&mut self, message: &[u8]) -> Result<()> {
        let mut contended = 0;
        let mut gone = false;
        for _ in 0..TRY_STEPS {
            match self.step(message, gone, &mut contended)? {
                Step::Done(()) => return Ok(()),
                Step::Again => {}
                Step::Wait if gone => break,
                Step::Wait => {
                    if !self.link.peer_gone_throttled()? {
                        break;
                    }
                    gone = true;
                }
            }
        }
        Err(Error::Full {
            needed: message.len() as u64,
            free: 0,
        })
    }

    /// Copies `message` into a slot, waiting for one until `deadline` at most
    /// (`None`: as long as it takes).
    ///
    /// # Errors
    /// [`SendTimeoutError::TimedOut`](error::SendTimeoutError::TimedOut);
    /// [`SendTimeoutError::Disconnected`](error::SendTimeoutError::Disconnected) if the ring is full and no receiver is alive;
    /// [`SendTimeoutError::MessageTooLarge`](error::SendTimeoutError::MessageTooLarge); [`SendTimeoutError::Corrupted`](error::SendTimeoutError::Corrupted);
    /// [`SendTimeoutError::Io`](error::SendTimeoutError::Io).
    pub fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), error::SendTimeoutError> {
        // A claimant found alive though the last check said gone (`Wait`): one is
        // back.
        block_steps(self, deadline, |tx, gone, contended| {
            tx.step(message, gone, contended)
        })
        .map_err(error::SendTimeoutError::from_error)
    }
}

/// A receiving endpoint of an MPMC channel. `Send`, not `Sync`.
pub struct MpmcReceiver {
    // Field order is drop order, as for `MpmcSender`.
    consumer: MpmcConsumer<RawMpmcRegion>,
    _lock: File,
    link: Link,
}

impl fmt::Debug for MpmcReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcReceiver")
            .field("consumer", &self.consumer)
            .field("link", &self.link)
            .finish()
    }
}

impl MpmcReceiver {
    /// Largest message: the slot size.
    pub fn max_message_len(&self) -> usize {
        self.consumer.max_message_len()
    }

    /// This receiver's entry in the endpoint table.
    pub fn entry(&self) -> usize {
        self.consumer.entry()
    }

    /// The entry's generation (see [`MpmcSender::generation`]).
    pub fn generation(&self) -> u32 {
        self.consumer.generation()
    }

    /// The ring's recovery statistics.
    pub fn stats(&self) -> MpmcStats {
        self.consumer.stats()
    }

    /// The readiness descriptor: readable after
    /// [`arm_for_message`](Self::arm_for_message) returned [`Readiness::Armed`]
    /// when a sender publishes a message, when every sender has gone, or (if
    /// [`wakeups`](Self::wakeups) says so) every
    /// [`LIVENESS_INTERVAL`](crate::LIVENESS_INTERVAL). Receivers of one channel
    /// share the doorbell: one may take another's ring (and the message with
    /// it); each receives until empty and arms again. Do not read it: arming
    /// drains it.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.link.bells.doorbell()
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for a message:
    /// [`Readiness::Ready`] if the slot at the head holds something now (or every
    /// sender has gone), else [`Readiness::Armed`]. Never blocks.
    ///
    /// # Errors
    /// [`Error::Corrupted`], [`Error::Io`].
    pub fn arm_for_message(&mut self) -> Result<Readiness> {
        let consumer = &mut self.consumer;
        self.link.arm(|notifier| consumer.arm_for_message(notifier))
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken.
    pub fn wakeups(&self) -> &Wakeups {
        self.link.bells.wakeups()
    }

    /// One attempt; `peer_gone`: no sender is alive (recover at once, and an empty
    /// ring is `Disconnected`).
    fn step(
        &mut self,
        buf: &mut [u8],
        peer_gone: bool,
        contended: &mut u32,
    ) -> Result<Step<usize>> {
        match self.consumer.pop(buf) {
            Ok(n) => {
                self.link.stall = None;
                self.consumer.wake(&self.link.notifier());
                Ok(Step::Done(n))
            }
            Err(MpmcPopError::Empty) => {
                self.link.stall = None;
                if peer_gone {
                    // The stream has ended: free what dead receivers still hold,
                    // so that `lost` counts every message they took with them
                    // (no sender will come round to those slots).
                    self.consumer
                        .reclaim_dead_consumers(&EntryLocks::mpmc(&self.link.segment))
                        .map_err(|c| self.link.corrupted(c))?;
                    self.consumer.wake(&self.link.notifier());
                    Err(self.link.disconnected())
                } else {
                    Ok(Step::Wait)
                }
            }
            Err(MpmcPopError::Stalled { position }) => {
                if !self.link.recovery_due(position, peer_gone) {
                    return Ok(Step::Wait);
                }
                let outcome = self
                    .consumer
                    .skip_dead_producer(position, &EntryLocks::mpmc(&self.link.segment));
                let step = self.link.recovered(outcome)?;
                self.consumer.wake(&self.link.notifier());
                Ok(step)
            }
            Err(MpmcPopError::Contended) => {
                *contended += 1;
                if *contended >= MAX_CONTENDED {
                    return Err(self.link.unstable("head"));
                }
                Ok(Step::Again)
            }
            Err(MpmcPopError::BufferTooSmall { len, buffer }) => {
                Err(Error::BufferTooSmall { len, buffer })
            }
            Err(MpmcPopError::Corrupted(c)) => {
                // A bad length consumed and freed its slot: let the others know.
                self.consumer.wake(&self.link.notifier());
                Err(self.link.corrupted(c))
            }
        }
    }

    /// Copies the next message into `buf` and consumes it, if there is one now;
    /// returns its length. Never blocks.
    ///
    /// A position a dead sender claimed and never published is skipped once it
    /// has been waited on longer than the stall timeout, so a loop of `try_recv`
    /// calls gets past a death.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`](error::TryRecvError::Empty); [`TryRecvError::Disconnected`](error::TryRecvError::Disconnected) when empty and no
    /// sender is alive (though one has been attached);
    /// [`TryRecvError::BufferTooSmall`](error::TryRecvError::BufferTooSmall) (nothing consumed);
    /// [`TryRecvError::Corrupted`](error::TryRecvError::Corrupted); [`TryRecvError::Io`](error::TryRecvError::Io) if the liveness probe
    /// fails.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, error::TryRecvError> {
        self.try_recv_steps(buf)
            .map_err(error::TryRecvError::from_error)
    }

    fn try_recv_steps(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut contended = 0;
        let mut gone = false;
        for _ in 0..TRY_STEPS {
            match self.step(buf, gone, &mut contended)? {
                Step::Done(n) => return Ok(n),
                Step::Again => {}
                Step::Wait if gone => break,
                Step::Wait => {
                    if !self.link.peer_gone_throttled()? {
                        break;
                    }
                    gone = true;
                }
            }
        }
        Err(Error::Empty)
    }

    /// Copies the next message into `buf`, waiting for one until `deadline` at
    /// most (`None`: as long as it takes); returns its length.
    ///
    /// # Errors
    /// [`RecvTimeoutError::TimedOut`](error::RecvTimeoutError::TimedOut);
    /// [`RecvTimeoutError::Disconnected`](error::RecvTimeoutError::Disconnected) once no sender is alive and the ring is empty;
    /// [`RecvTimeoutError::BufferTooSmall`](error::RecvTimeoutError::BufferTooSmall); [`RecvTimeoutError::Corrupted`](error::RecvTimeoutError::Corrupted);
    /// [`RecvTimeoutError::Io`](error::RecvTimeoutError::Io).
    pub fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, error::RecvTimeoutError> {
        block_steps(self, deadline, |rx, gone, contended| {
            rx.step(buf, gone, contended)
        })
        .map_err(error::RecvTimeoutError::from_error)
    }
}

/// An MPMC endpoint as its blocking calls see it: its link, and a park on the
/// ring's futex until its own condition (room, a message) may hold.
trait MpmcEndpoint {
    fn link(&self) -> &Link;
    fn link_mut(&mut self) -> &mut Link;
    fn park(&mut self, until: Instant) -> std::result::Result<(), MpmcWaitError>;
}

impl MpmcEndpoint for MpmcSender {
    fn link(&self) -> &Link {
        &self.link
    }
    fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }
    fn park(&mut self, until: Instant) -> std::result::Result<(), MpmcWaitError> {
        self.link.watch(false);
        self.producer
            .wait_for_space(&self.link.park_futex(), Some(until))
    }
}

impl MpmcEndpoint for MpmcReceiver {
    fn link(&self) -> &Link {
        &self.link
    }
    fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }
    fn park(&mut self, until: Instant) -> std::result::Result<(), MpmcWaitError> {
        self.link.watch(false);
        self.consumer
            .wait_for_message(&self.link.park_futex(), Some(until))
    }
}

/// The blocking driver's view of either endpoint: the other side's liveness, and
/// a pending stall's check (a parked call wakes for it).
impl<E: MpmcEndpoint> Endpoint for E {
    fn waiter(&mut self) -> &mut Waiter {
        &mut self.link_mut().waiter
    }
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.link_mut().peer_gone(now)
    }
    fn check_by(&self) -> Option<Instant> {
        self.link().stall.map(|stall| stall.check_at)
    }
    fn peer_leaving(&self) -> bool {
        self.link().bells.gone_hint()
    }
}

/// Either endpoint's blocking call: `step` (given whether the other side is gone,
/// and the call's count of contended attempts) until it is done, parked between
/// steps.
#[inline]
fn block_steps<E: MpmcEndpoint, T>(
    endpoint: &mut E,
    deadline: Option<Instant>,
    mut step: impl FnMut(&mut E, bool, &mut u32) -> Result<Step<T>>,
) -> Result<T> {
    let mut contended = 0;
    blocking::block(
        endpoint,
        deadline,
        |end, gone| step(end, gone, &mut contended),
        |end, until| match end.park(until) {
            Ok(()) | Err(MpmcWaitError::TimedOut) => Ok(()),
            Err(MpmcWaitError::Corrupted(c)) => Err(end.link().corrupted(c)),
        },
    )
}

message_sender!(MpmcSender);

message_receiver!(MpmcReceiver);

#[cfg(test)]
mod tests {
    use super::*;
    use shmring_core::mpmc::layout::{MAX_ENDPOINTS, MAX_SLOT_SIZE, MAX_SLOTS};

    fn memfd(slots: usize, endpoints: usize) -> MpmcChannel {
        MpmcChannelBuilder::memfd()
            .slots(slots)
            .slot_size(16)
            .endpoints(endpoints)
            .create()
            .expect("memfd MPMC channel")
    }

    #[test]
    fn in_one_process() {
        let channel = memfd(4, 4);
        let mut tx = channel.sender().unwrap();
        let mut rx = channel.receiver().unwrap();
        assert!(matches!(
            rx.try_recv(&mut [0u8; 16]),
            Err(error::TryRecvError::Empty)
        ));
        for i in 0u8..4 {
            tx.try_send(&[i; 3]).unwrap();
        }
        assert!(matches!(
            tx.try_send(b"x"),
            Err(error::TrySendError::Full { needed: 1, free: 0 })
        ));
        let mut buf = [0u8; 16];
        for i in 0u8..4 {
            assert_eq!(
                rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap(),
                3
            );
            assert_eq!(&buf[..3], &[i; 3]);
        }
        assert!(matches!(
            tx.try_send(&[0; 17]),
            Err(error::TrySendError::MessageTooLarge { len: 17, max: 16 })
        ));
        assert_eq!(channel.live_senders().unwrap(), 1);
        assert_eq!(channel.live_receivers().unwrap(), 1);
        drop(tx);
        assert_eq!(channel.live_senders().unwrap(), 0);
        // The sender has gone and the ring is empty.
        assert!(matches!(
            rx.recv_timeout(&mut buf, Duration::from_secs(5)),
            Err(error::RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn table_full_and_reuse() {
        let channel = memfd(4, 2);
        let a = channel.sender().unwrap();
        let b = channel.receiver().unwrap();
        assert_eq!((a.entry(), b.entry()), (0, 1));
        match channel.sender() {
            Err(Error::EndpointTableFull { endpoints: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        drop(a);
        let c = channel.receiver().unwrap();
        assert_eq!(c.entry(), 0);
        assert_eq!(c.generation(), 2);
    }

    #[test]
    fn bad_shapes() {
        let shape = |slots, slot_size, endpoints| {
            MpmcChannelBuilder::memfd()
                .slots(slots)
                .slot_size(slot_size)
                .endpoints(endpoints)
                .create()
        };
        assert!(matches!(
            shape(6, 8, 2),
            Err(Error::InvalidSlotCount { slots: 6 })
        ));
        assert!(matches!(
            shape(1, 8, 2),
            Err(Error::InvalidSlotCount { slots: 1 })
        ));
        assert!(matches!(
            shape(8, 0, 2),
            Err(Error::InvalidSlotSize { slot_size: 0, .. })
        ));
        assert!(matches!(
            shape(8, 8, 0),
            Err(Error::InvalidEndpointCount { endpoints: 0, .. })
        ));
        assert!(matches!(
            shape(MAX_SLOTS, MAX_SLOT_SIZE, 2),
            Err(Error::SegmentTooLarge { .. })
        ));
        assert!(matches!(
            shape(8, 8, MAX_ENDPOINTS + 1),
            Err(Error::InvalidEndpointCount { .. })
        ));
    }

    #[test]
    fn the_transport_traits_reach_the_channel() {
        use crate::message::{MessageReceiver, MessageSender};
        let channel = memfd(4, 2);
        let mut tx: Box<dyn MessageSender + Send> = Box::new(channel.sender().unwrap());
        let mut rx: Box<dyn MessageReceiver + Send> = Box::new(channel.receiver().unwrap());
        assert_eq!((tx.max_message_len(), rx.max_message_len()), (16, 16));
        tx.send_timeout(b"boxed", Duration::from_secs(5)).unwrap();
        let got = rx.recv_vec_deadline(None).unwrap();
        assert_eq!(got, b"boxed");
        assert!(matches!(
            rx.try_recv(&mut [0u8; 16]),
            Err(error::TryRecvError::Empty)
        ));
    }

    #[test]
    fn parked_receivers_are_woken() {
        let channel = MpmcChannelBuilder::memfd()
            .slots(8)
            .slot_size(8)
            .wait_strategy(WaitStrategy::Park)
            .create()
            .unwrap();
        let mut tx = channel.sender().unwrap();
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = channel.receiver().unwrap();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 8];
                    loop {
                        match rx.recv_timeout(&mut buf, Duration::from_secs(10)) {
                            Ok(8) => got.push(u64::from_le_bytes(buf)),
                            Err(error::RecvTimeoutError::Disconnected) => return got,
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        for i in 0u64..3000 {
            tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(10))
                .unwrap();
        }
        drop(tx);
        let mut all: Vec<u64> = receivers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..3000).collect::<Vec<_>>());
    }
}
