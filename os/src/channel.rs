//! Named SPSC channels between processes: a builder, and the [`Sender`] and
//! [`Receiver`] endpoints over one shared-memory ring.

use std::fmt;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmring_core::sync::AtomicU32;
use shmring_core::{
    Batch, Consumer, Grant, Message, PopError, Producer, PushError, RawRegion, ReadError, RunGrant,
    WaitError,
};

use crate::blocking::{self, Endpoint, ParkFutex, Step, WaitStrategy, Waiter, deadline_after};
pub use crate::blocking::{LIVENESS_INTERVAL, PEER_DEATH_BOUND};
use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, Role, SegmentCorrupted, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
use crate::futex::{Notifier, SharedFutex};
use crate::message::{message_receiver, message_sender};
use crate::options::{Compared, SegmentBuilder};
use crate::readiness::watcher::Probe;
use crate::readiness::{BellSource, Bells, Readiness, Wakeups};
use crate::segment::{Backing, Segment, SegmentOptions, lock_offset, owner_word};

/// A channel of `capacity` bytes (a power of two; see
/// [`ChannelBuilder::capacity`]) in an anonymous memfd, with its two endpoints:
/// the shortcut rtrb users know (`RingBuffer::new(capacity).split()`), for
/// threads of one process. The endpoints are `Send`; the ring lives while either
/// does.
///
/// The same as `ChannelBuilder::memfd().capacity(capacity).create()?` and its
/// [`sender`](Channel::sender) and [`receiver`](Channel::receiver): to set a wait
/// strategy or fences, or to hand an endpoint to a child process
/// ([`Channel::pass_to`]), use the builder.
///
/// ```
/// # fn main() -> shmring::Result<()> {
/// let (mut tx, mut rx) = shmring::channel::pair(4096)?;
/// let producer = std::thread::spawn(move || tx.send(b"hello"));
/// assert_eq!(rx.recv_vec()?, b"hello");
/// producer.join().unwrap()?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::InvalidCapacity`] (before any system call), [`Error::NoSpace`],
/// [`Error::Unsupported`] (the asymmetric fences, where `membarrier` is
/// refused: use the builder with
/// [`asymmetric_fences(false)`](SegmentBuilder::asymmetric_fences)), [`Error::Io`].
pub fn pair(capacity: usize) -> Result<(Sender, Receiver)> {
    let channel = ChannelBuilder::memfd().capacity(capacity).create()?;
    Ok((channel.sender()?, channel.receiver()?))
}

/// Creates or opens a channel: the ring's backing and size here, permissions,
/// cleanup and the endpoints' wait strategy through [`SegmentBuilder`].
///
/// ```no_run
/// use shmring::{ChannelBuilder, SegmentBuilder, WaitStrategy};
/// # fn main() -> shmring::Result<()> {
/// // Process A
/// let mut tx = ChannelBuilder::shm("orders").capacity(1 << 16).create()?.sender()?;
/// tx.send(b"buy 100")?;
/// // Process B
/// let mut rx = ChannelBuilder::shm("orders")
///     .wait_strategy(WaitStrategy::Park)
///     .open()?
///     .receiver()?;
/// let mut buf = [0u8; 256];
/// let n = rx.recv(&mut buf)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ChannelBuilder {
    options: SegmentOptions,
    capacity: usize,
}

impl SegmentBuilder for ChannelBuilder {
    fn options(&self) -> &SegmentOptions {
        &self.options
    }

    fn options_mut(&mut self) -> &mut SegmentOptions {
        &mut self.options
    }
}

impl ChannelBuilder {
    fn new(backing: Backing) -> Self {
        Self {
            options: SegmentOptions::new(backing),
            capacity: 64 * 1024,
        }
    }

    /// A channel in named POSIX shared memory (`/dev/shm/shmring.<name>`). Names are
    /// one component of ASCII letters, digits, `.`, `_` and `-`.
    pub fn shm(name: impl Into<String>) -> Self {
        Self::new(Backing::Shm(name.into()))
    }

    /// A channel in a regular file at `path`: the ring persists, and reopening it
    /// after every process has exited resumes with the unconsumed messages.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::new(Backing::File(path.into()))
    }

    /// A channel in an anonymous memfd, sealed against resizing, for a child
    /// process ([`Channel::pass_to`]) or a peer reached over a Unix socket.
    pub fn memfd() -> Self {
        Self::new(Backing::Memfd)
    }

    /// Size of the ring's data region in bytes, a power of two (default 64 KiB).
    /// The largest message is half of it less 8 bytes.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Creates the segment and a fresh, empty ring in it.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidCapacity`], [`Error::AlreadyExists`],
    /// [`Error::PermissionDenied`], [`Error::NoSpace`], or [`Error::Io`].
    pub fn create(&self) -> Result<Channel> {
        Ok(self.channel(Segment::create(&self.options, self.capacity)?))
    }

    /// Opens an existing segment and validates its ring.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::Untrusted`], [`Error::BadSize`], [`Error::IncompatibleLayout`],
    /// [`Error::Corrupted`], or [`Error::Io`].
    pub fn open(&self) -> Result<Channel> {
        Ok(self.channel(Segment::open(&self.options)?))
    }

    /// Opens the channel, or creates it if there is none: for two processes
    /// started in any order. Race-free: of processes racing, exactly one creates
    /// (exclusively) and the others open what it made, waiting for it if they
    /// catch it half-way. A memfd channel is created.
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the existing segment is not an SPSC ring of
    /// this layout version (`field` `"kind"` or `"layout version"`) or its
    /// capacity is not this builder's (`"capacity"`); else as
    /// [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create(&self) -> Result<Channel> {
        crate::options::open_or_create(
            &self.options,
            shmring_core::layout::RING_KIND_SPSC,
            || self.open(),
            || self.create(),
            |channel| channel.segment.describe().to_owned(),
            |channel| {
                vec![Compared::new(
                    "capacity",
                    self.capacity as u64,
                    channel.segment.capacity() as u64,
                )]
            },
        )
    }

    /// Opens the segment behind `fd`, handed over by a parent or a peer (a memfd
    /// from [`ChannelBuilder::memfd`]). Sizes, seals and the ring are checked.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Channel> {
        Ok(self.channel(Segment::from_fd(fd, &self.options)?))
    }

    /// As [`from_fd`](Self::from_fd), with the doorbells that came with the
    /// descriptor.
    pub(crate) fn open_fd_with_bells(&self, fd: OwnedFd, bells: BellSource) -> Result<Channel> {
        let mut segment = Segment::from_fd(fd, &self.options)?;
        segment.set_bells(bells);
        Ok(self.channel(segment))
    }

    /// Opens the segment whose descriptor number a parent put in the environment
    /// variable `var` ([`Channel::pass_to`]), taking ownership of the descriptor.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the variable is unset, not a number, or names no
    /// open descriptor; else as [`from_fd`](Self::from_fd).
    ///
    /// # Safety
    /// The descriptor the variable names was passed to this process for this
    /// channel, and nothing else in the process owns it: the channel closes it
    /// when it drops. So call this at most once per variable (the variable is left
    /// as it is: changing the environment is itself unsafe once threads run).
    pub unsafe fn from_env(&self, var: &str) -> Result<Channel> {
        // SAFETY: the caller's contract is `inherited_fd`'s.
        let (fd, bells) = unsafe { crate::segment::open::inherited_fd(var) }?;
        self.open_fd_with_bells(fd, bells)
    }

    fn channel(&self, segment: Segment) -> Channel {
        Channel {
            segment: Arc::new(segment),
            wait: self.options.wait,
        }
    }
}

/// A created or opened channel: take its [`Sender`] or [`Receiver`] (or both, in
/// one process). The segment lives while the channel or any endpoint does.
#[derive(Debug, Clone)]
pub struct Channel {
    segment: Arc<Segment>,
    wait: WaitStrategy,
}

impl Channel {
    /// Claims the sending side.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] while another live sender holds it (a sender that died
    /// is replaced, and its committed messages stay); [`Error::Corrupted`].
    pub fn sender(&self) -> Result<Sender> {
        let futex = self.futex()?;
        let bells = self.bells(Role::Sender)?;
        let (producer, lock) = self.segment.claim_producer()?;
        set_pid(self.segment.region(), Role::Sender, true);
        Ok(Sender {
            producer,
            _lock: lock,
            link: Link::new(&self.segment, futex, bells, Role::Sender, self.wait),
        })
    }

    /// Claims the receiving side. Reading starts at the first message no earlier
    /// receiver released: what a receiver read but did not release before it died
    /// is delivered again.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] while another live receiver holds it; [`Error::Corrupted`].
    pub fn receiver(&self) -> Result<Receiver> {
        let futex = self.futex()?;
        let bells = self.bells(Role::Receiver)?;
        let (consumer, lock) = self.segment.claim_consumer()?;
        set_pid(self.segment.region(), Role::Receiver, true);
        Ok(Receiver {
            consumer,
            _lock: lock,
            link: Link::new(&self.segment, futex, bells, Role::Receiver, self.wait),
        })
    }

    /// The futex for this segment's protocol: with the asymmetric fence pair if its
    /// header says so, which needs this process registered for `membarrier`
    /// (before it claims a role, so that every notification it makes is covered).
    fn futex(&self) -> Result<SharedFutex> {
        SharedFutex::for_flags(
            self.segment.region().flags(),
            "membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED), which this channel's \
             creator chose (a seccomp filter or a kernel before 4.16 here?)",
        )
    }

    /// The doorbells of an endpoint of `role` (`crate::readiness`).
    fn bells(&self, role: Role) -> Result<Bells> {
        self.segment.endpoint_bells(role)
    }

    /// The segment under the channel.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Largest message the channel takes.
    pub fn max_message_len(&self) -> usize {
        self.segment.region().max_message_len()
    }

    /// Lets the child that `command` spawns open this channel: its descriptor is
    /// inherited (close-on-exec cleared in the child only) and its number put in
    /// the environment variable `var`, for [`ChannelBuilder::from_env`].
    pub fn pass_to(&self, command: &mut Command, var: &str) {
        self.segment.pass_to(command, var);
    }
}

/// Writes this process's pid into the role's line after its claim (`held`), 0
/// at release (`crate::segment::write_pid`).
fn set_pid(region: &RawRegion, role: Role, held: bool) {
    use shmring_core::Region as _;
    let control = region.control();
    let word = match role {
        Role::Sender => &control.producer.0.pid,
        Role::Receiver => &control.consumer.0.pid,
    };
    crate::segment::write_pid(word, held);
}

fn claims_word(region: &RawRegion, role: Role) -> &AtomicU32 {
    use shmring_core::Region as _;
    let control = region.control();
    match role {
        Role::Sender => &control.producer.0.claims,
        Role::Receiver => &control.consumer.0.claims,
    }
}

/// An endpoint's tie to its segment and peer: the mapping, the peer's liveness,
/// and the waiting policy.
struct Link {
    /// The doorbell this endpoint waits on (its readiness descriptor) and the one
    /// it rings. First, so that it drops first: the watcher lets go of the
    /// endpoint before the segment's last handle goes.
    bells: Bells,
    segment: Arc<Segment>,
    /// The futex and fence pair the segment's protocol flags call for.
    futex: SharedFutex,
    peer: Role,
    /// The wait strategy, the last liveness verdict and the peer-gone flag (a
    /// connection's socket watcher sets it, `crate::connection`).
    waiter: Waiter,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("segment", &self.segment.describe())
            .field("wait", &self.waiter.strategy())
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    /// Runs after the endpoint's claim and lock have gone (the fields before
    /// `link` in `Sender` and `Receiver`): a parked peer sees the departure now.
    fn drop(&mut self) {
        wake_parked(&self.segment);
        self.bells.ring_peer();
    }
}

impl Link {
    fn new(
        segment: &Arc<Segment>,
        futex: SharedFutex,
        bells: Bells,
        own: Role,
        wait: WaitStrategy,
    ) -> Self {
        Self {
            segment: Arc::clone(segment),
            futex,
            peer: match own {
                Role::Sender => Role::Receiver,
                Role::Receiver => Role::Sender,
            },
            waiter: Waiter::new(wait),
            bells,
        }
    }

    /// The futex with the peer's doorbell: what every publication notifies through.
    #[inline]
    fn notifier(&self) -> Notifier<'_> {
        use shmring_core::Region as _;
        let signals = &self.segment.region().control().signals.0;
        // We notify the word our peer waits on.
        let word = match self.peer {
            Role::Receiver => &signals.data_signal,
            Role::Sender => &signals.space_signal,
        };
        self.bells.notifier(self.futex, word)
    }

    /// Whether the peer is leaving or gone by what costs no system call: its
    /// claim released, or our doorbell hung up (every ringer gone).
    fn peer_leaving(&self) -> bool {
        self.peer_released() || self.bells.gone_hint()
    }

    /// Registers with the process's watcher (once), so that the peer's death
    /// wakes this endpoint's parked calls and armed descriptor.
    fn watch(&mut self, armed: bool) {
        // Weak: the segment is dropped (and its name removed) by its last
        // user, never by the watcher thread.
        let segment = Arc::downgrade(&self.segment);
        let peer = self.peer;
        self.bells.watch(armed, move || {
            let probed = segment.clone();
            Probe {
                peer_gone: Box::new(move || {
                    probed
                        .upgrade()
                        .is_some_and(|s| probe_peer(&s, peer).unwrap_or(false))
                }),
                wake_parked: Box::new(move || {
                    if let Some(segment) = segment.upgrade() {
                        wake_parked(&segment);
                    }
                }),
                arming_consumed: None,
            }
        });
    }

    /// Arms the readiness descriptor by `arm` (the core's arming of this side),
    /// after draining it. `Ready` when the condition holds already, or the peer
    /// is gone (the next non-blocking call says which).
    fn arm(
        &mut self,
        arm: impl FnOnce(&Notifier<'_>) -> std::result::Result<Readiness, WaitError>,
    ) -> Result<Readiness> {
        self.watch(true);
        let looks_gone = self
            .bells
            .drain_for_arming(|| self.peer_leaving())
            .map_err(|e| Error::io("read", self.segment.describe(), e))?;
        // The lock's verdict stands for the next non-blocking call.
        if looks_gone && self.peer_gone(Instant::now())? {
            return Ok(Readiness::Ready);
        }
        arm(&self.notifier()).map_err(|e| {
            // An arming never waits, so never times out.
            Error::from_wait(e, self.segment.describe()).unwrap_or(Error::TimedOut)
        })
    }

    /// Whether a peer has claimed the role and none holds its claim word now: a
    /// clean departure (the lock is released just after), a death seen by a
    /// successor's take-over... or a hostile write. Two loads, no system call.
    fn peer_released(&self) -> bool {
        let region = self.segment.region();
        // Relaxed: a hint that makes the lock probe due sooner; the probe decides.
        claims_word(region, self.peer).load(Ordering::Relaxed) != 0
            && owner_word(region, self.peer) == 0
    }

    /// The futex a parked call sleeps on: the segment's, except that it does not
    /// sleep once the peer-gone flag is set or the peer has released its claim
    /// (a dropped endpoint releases its claim and lock through its fields' drops,
    /// in field order, and then `Drop for Link` wakes parked calls).
    fn park_futex(&self) -> ParkFutex<'_, impl Fn() -> bool + '_> {
        self.waiter.park_futex(self.futex, || self.peer_leaving())
    }

    /// Whether a peer has been here and none is now. A syscall (`F_OFD_GETLK`).
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.waiter
            .peer_gone(now, || probe_peer(&self.segment, self.peer))
    }

    /// For a non-blocking call that found the ring full or empty: whether the peer
    /// is gone, checked at most every
    /// [`TRY_LIVENESS_INTERVAL`](crate::blocking::TRY_LIVENESS_INTERVAL).
    fn peer_gone_throttled(&mut self) -> Result<bool> {
        self.waiter
            .peer_gone_throttled(|| probe_peer(&self.segment, self.peer))
    }

    /// The error for a push that did not go through and will not be retried:
    /// `Full` becomes `Disconnected` once the receiver has gone.
    fn refused_push(&mut self, e: PushError) -> TrySendError {
        match TrySendError::from_push(e, self.segment.describe()) {
            TrySendError::Full { needed, free } => match self.peer_gone_throttled() {
                Ok(true) => TrySendError::Disconnected,
                Ok(false) => TrySendError::Full { needed, free },
                Err(e) => TrySendError::from_error(e),
            },
            e => e,
        }
    }

    fn peer_connected(&self) -> Result<bool> {
        self.segment.is_role_alive(lock_offset(self.peer))
    }
}

/// Whether a peer has been here (its role's claims word counts one) and does not
/// hold the role's lock now. A syscall (`F_OFD_GETLK`).
fn probe_peer(segment: &Segment, peer: Role) -> Result<bool> {
    // Read the count first: a peer counted before the probe and still alive
    // holds its lock during the probe; one that arrives after is not counted.
    // Relaxed: the count only says whether a peer has been here; the lock probe
    // decides whether it still is.
    let claims = claims_word(segment.region(), peer).load(Ordering::Relaxed);
    let alive = segment.is_role_alive(lock_offset(peer))?;
    Ok(claims != 0 && !alive)
}

impl Endpoint for Sender {
    fn waiter(&mut self) -> &mut Waiter {
        &mut self.link.waiter
    }
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.link.peer_gone(now)
    }
    fn peer_leaving(&self) -> bool {
        self.link.peer_leaving()
    }
}

impl Endpoint for Receiver {
    fn waiter(&mut self) -> &mut Waiter {
        &mut self.link.waiter
    }
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.link.peer_gone(now)
    }
    fn peer_leaving(&self) -> bool {
        self.link.peer_leaving()
    }
}

impl Channel {
    /// For a transport that learns of the peer's death before the lock probe
    /// does (`crate::connection`'s socket watcher): after it set the flag given to
    /// [`Sender::set_peer_gone_flag`] / [`Receiver::set_peer_gone_flag`], wakes
    /// every call parked on this channel, which then sees the flag.
    pub(crate) fn wake_parked(&self) {
        wake_parked(&self.segment);
    }
}

/// Wakes every call parked on `segment`'s signal words, in every process, so
/// that it looks again at what changed: a peer-gone flag, or a peer's claim word
/// released by a clean departure.
fn wake_parked(segment: &Segment) {
    use shmring_core::Region as _;
    let signals = &segment.region().control().signals.0;
    crate::futex::wake_parked_on(&[&signals.data_signal, &signals.space_signal]);
}

impl Sender {
    /// Makes `flag` a second liveness signal: once it is set, a blocked call ends
    /// with [`Error::Disconnected`] (after what fits or is there), without waiting
    /// for the lock probe. Whoever sets it calls [`Channel::wake_parked`].
    pub(crate) fn set_peer_gone_flag(&mut self, flag: Arc<AtomicBool>) {
        self.link.waiter.set_peer_gone_flag(flag);
    }
}

impl Receiver {
    /// As [`Sender::set_peer_gone_flag`].
    pub(crate) fn set_peer_gone_flag(&mut self, flag: Arc<AtomicBool>) {
        self.link.waiter.set_peer_gone_flag(flag);
    }
}

/// The sending side of a channel. `Send`, not `Sync`: one thread at a time.
///
/// Messages are committed in order; a committed message is delivered exactly once
/// to a receiver (ARCHITECTURE.md: "Delivery semantics"), also if this process dies
/// right after committing it.
pub struct Sender {
    // Dropped in this order, after `Drop for Sender` clears the pid: fields drop
    // in declaration order, so the producer releases its claim word, then the lock
    // goes (the role is free), then `link`'s drop wakes a parked receiver, and the
    // mapping goes with it. Keep the fields in this order.
    producer: Producer<RawRegion>,
    _lock: File,
    link: Link,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("producer", &self.producer)
            .field("link", &self.link)
            .finish()
    }
}

impl Sender {
    /// Largest message the channel takes.
    pub fn max_message_len(&self) -> usize {
        self.producer.max_message_len()
    }

    /// Whether a receiver holds the other end now (a snapshot).
    ///
    /// # Errors
    /// [`Error::Io`] if the liveness probe fails.
    pub fn is_receiver_connected(&self) -> Result<bool> {
        self.link.peer_connected()
    }

    /// The readiness descriptor for room: poll it (`epoll`, `poll`, an async
    /// reactor) for readability after [`arm_for_space`](Self::arm_for_space)
    /// returned [`Readiness::Armed`]. It becomes readable when the receiver frees
    /// room, when the receiver goes (its death included), or, if
    /// [`wakeups`](Self::wakeups) says so, every
    /// [`LIVENESS_INTERVAL`]. Do not read it: arming drains it.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.link.bells.doorbell()
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for room for a message of `len`
    /// bytes: [`Readiness::Ready`] if it fits now (or the receiver has gone: the
    /// next send says so), else [`Readiness::Armed`], and the descriptor becomes
    /// readable when that may have changed. After it does: send until
    /// [`TrySendError::Full`], then arm again. Never blocks; with nobody armed,
    /// sending and receiving make no system call for it.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`], [`Error::Corrupted`], [`Error::Io`].
    pub fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        let producer = &mut self.producer;
        self.link
            .arm(|notifier| producer.arm_for_space(len, notifier))
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken: by the receiver's
    /// doorbell, or polled where none could be shared (and why).
    pub fn wakeups(&self) -> &Wakeups {
        self.link.bells.wakeups()
    }

    fn push_error(&self, e: PushError) -> TrySendError {
        TrySendError::from_push(e, self.link.segment.describe())
    }

    /// Copies `message` into the channel if there is room now; never blocks.
    ///
    /// Room is not tied to a receiver: while there is room, messages queue for
    /// whichever receiver comes next.
    ///
    /// # Errors
    /// [`TrySendError::Full`]; [`TrySendError::Disconnected`] when full and the
    /// receiver has gone; [`TrySendError::MessageTooLarge`];
    /// [`TrySendError::Corrupted`]; [`TrySendError::Io`] if the liveness probe fails.
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), TrySendError> {
        match self.producer.push(message) {
            Ok(()) => {
                self.producer.wake_consumer(&self.link.notifier());
                Ok(())
            }
            Err(e) => Err(self.link.refused_push(e)),
        }
    }

    /// Copies `message` into the channel, waiting for room until `deadline` at
    /// most (`None`: as long as it takes).
    ///
    /// # Errors
    /// [`SendTimeoutError::TimedOut`]; [`SendTimeoutError::Disconnected`] if the
    /// receiver goes while the channel is full;
    /// [`SendTimeoutError::MessageTooLarge`]; [`SendTimeoutError::Corrupted`];
    /// [`SendTimeoutError::Io`].
    pub fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        self.until_room(message.len(), deadline, |producer| producer.push(message))
            .map_err(SendTimeoutError::from_error)?;
        self.producer.wake_consumer(&self.link.notifier());
        Ok(())
    }

    /// Runs `attempt` until it does not find the ring full, waiting for room for
    /// `len` bytes between attempts by the wait strategy.
    #[inline]
    fn until_room<T>(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Producer<RawRegion>) -> std::result::Result<T, PushError>,
    ) -> Result<T> {
        blocking::block(
            self,
            deadline,
            |tx, gone| match attempt(&mut tx.producer) {
                Ok(done) => Ok(Step::Done(done)),
                Err(PushError::Full { .. }) if gone => Err(Error::Disconnected {
                    peer: Role::Receiver,
                }),
                Err(PushError::Full { .. }) => Ok(Step::Wait),
                Err(e) => Err(tx.push_error(e).into()),
            },
            |tx, until| {
                tx.link.watch(false);
                let parked = tx
                    .producer
                    .wait_for_space(len, &tx.link.park_futex(), Some(until));
                match parked.map_err(|e| Error::from_wait(e, tx.link.segment.describe())) {
                    Ok(()) | Err(None) => Ok(()),
                    Err(Some(e)) => Err(e),
                }
            },
        )
    }

    /// Opens a batch: messages sent through it are published together, with one
    /// store and one wake-up check, when it is published or dropped. For
    /// throughput: a burst of small messages costs the receiver one cache-line
    /// hand-over instead of one per message.
    pub fn batch(&mut self) -> SendBatch<'_> {
        SendBatch {
            batch: ManuallyDrop::new(self.producer.batch()),
            link: &mut self.link,
        }
    }

    /// Lends `len` bytes of the ring to write a message in place, if there is room
    /// now. [`SendGrant::commit`] publishes it; dropping the grant publishes nothing.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_grant(&mut self, len: usize) -> Result<SendGrant<'_>, TrySendError> {
        if let Err(e) = self.producer.grant(len) {
            return Err(self.link.refused_push(e));
        }
        self.grant_now(len)
    }

    /// As [`try_grant`](Self::try_grant), waiting for room.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn grant(&mut self, len: usize) -> Result<SendGrant<'_>, SendError> {
        self.grant_deadline(len, None).map_err(SendError::untimed)
    }

    /// As [`grant`](Self::grant), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn grant_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<SendGrant<'_>, SendTimeoutError> {
        self.grant_deadline(len, deadline_after(timeout))
    }

    /// As [`grant`](Self::grant), giving up at `deadline` (`None`: waiting as
    /// long as it takes).
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline).
    pub fn grant_deadline(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<SendGrant<'_>, SendTimeoutError> {
        // A grant dropped at once commits nothing: a probe for room.
        self.until_room(len, deadline, |producer| producer.grant(len).map(drop))
            .map_err(SendTimeoutError::from_error)?;
        self.grant_now(len)
            .map_err(|e| SendTimeoutError::from_error(e.into()))
    }

    fn grant_now(&mut self, len: usize) -> Result<SendGrant<'_>, TrySendError> {
        // Room was found just before; only the receiver frees more, so this holds.
        match self.producer.grant(len) {
            Ok(grant) => Ok(SendGrant {
                grant,
                notifier: self.link.notifier(),
            }),
            Err(e) => Err(TrySendError::from_push(e, self.link.segment.describe())),
        }
    }
}

/// Messages sent through a batch become visible to the receiver together, with one
/// publication and one wake-up check, when it is published or dropped.
///
/// While it is open the receiver sees none of them: a batch that fills the ring
/// gets [`TrySendError::Full`] and must be published before the receiver can make room.
pub struct SendBatch<'a> {
    /// Taken out only in `drop`, to publish and wake.
    batch: ManuallyDrop<Batch<'a, RawRegion>>,
    link: &'a mut Link,
}

impl fmt::Debug for SendBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.batch.fmt(f)
    }
}

impl<'a> SendBatch<'a> {
    /// Copies `message` into the batch if there is room now; never blocks.
    ///
    /// # Errors
    /// [`TrySendError::Full`] (publish the batch and retry),
    /// [`TrySendError::Disconnected`] when full and the receiver has gone,
    /// [`TrySendError::MessageTooLarge`], [`TrySendError::Corrupted`],
    /// [`TrySendError::Io`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), TrySendError> {
        self.batch
            .push(message)
            .map_err(|e| self.link.refused_push(e))
    }

    /// Reserves up to `count` messages of `len` bytes each, packed under one frame
    /// header, for writing in place, if there is room now; never blocks. The grant
    /// may hold fewer (at least one): write them, [`RunGrant::commit`] the first
    /// `n`, and ask again for the rest. They are published with the batch. For
    /// streams of fixed-size records: an 8-byte record then takes 8 bytes of the
    /// ring, not 16, and no per-message call.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when not even one fits (publish the batch and
    /// retry), [`TrySendError::MessageTooLarge`] beyond the largest message or
    /// 65535 bytes; otherwise as [`try_send`](Self::try_send).
    ///
    /// # Panics
    /// If `len` is 0.
    pub fn try_grant_run(
        &mut self,
        len: usize,
        count: usize,
    ) -> Result<RunGrant<'_, 'a, RawRegion>, TrySendError> {
        self.batch
            .grant_run(len, count)
            .map_err(|e| self.link.refused_push(e))
    }

    /// Publishes the batch and wakes the receiver (dropping it does the same).
    pub fn publish(self) {}
}

impl Drop for Sender {
    fn drop(&mut self) {
        // Before the claim word is released: the next holder writes its own. Then
        // the fields drop in order: the producer publishes what is pending and
        // releases the claim word, the lock frees the role (a probe now finds it
        // unheld), and `link` wakes a parked receiver, which sees the departure
        // now, not at its next probe.
        set_pid(self.link.segment.region(), Role::Sender, false);
    }
}

impl Drop for SendBatch<'_> {
    fn drop(&mut self) {
        // SAFETY: `batch` is taken once, here, and `self` is not used after.
        let batch = unsafe { ManuallyDrop::take(&mut self.batch) };
        batch.publish_and_wake(&self.link.notifier());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // As in `Drop for Sender`: then the consumer, the lock, and `link`, which
        // wakes a sender parked on a full ring.
        set_pid(self.link.segment.region(), Role::Receiver, false);
    }
}

/// Bytes of the ring lent for writing a message in place. Derefs to them (they hold
/// whatever was there before).
pub struct SendGrant<'a> {
    grant: Grant<'a, RawRegion>,
    notifier: Notifier<'a>,
}

impl fmt::Debug for SendGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.grant.fmt(f)
    }
}

impl SendGrant<'_> {
    /// Publishes the first `len` bytes as one message and wakes the receiver.
    ///
    /// # Panics
    /// If `len` exceeds the granted length.
    pub fn commit(self, len: usize) {
        self.grant.commit_and_wake(len, &self.notifier);
    }
}

impl Deref for SendGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.grant
    }
}

impl DerefMut for SendGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.grant
    }
}

/// The receiving side of a channel. `Send`, not `Sync`: one thread at a time.
pub struct Receiver {
    // Dropped in this order, as for `Sender`.
    consumer: Consumer<RawRegion>,
    _lock: File,
    link: Link,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("consumer", &self.consumer)
            .field("link", &self.link)
            .finish()
    }
}

impl Receiver {
    /// Largest message the channel takes.
    pub fn max_message_len(&self) -> usize {
        self.consumer.max_message_len()
    }

    /// Whether a sender holds the other end now (a snapshot).
    ///
    /// # Errors
    /// [`Error::Io`] if the liveness probe fails.
    pub fn is_sender_connected(&self) -> Result<bool> {
        self.link.peer_connected()
    }

    fn disconnected() -> Error {
        Error::Disconnected { peer: Role::Sender }
    }

    /// The readiness descriptor: poll it (`epoll`, `poll`, an async reactor) for
    /// readability after [`arm_for_message`](Self::arm_for_message) returned
    /// [`Readiness::Armed`]. It becomes readable when a message arrives, when
    /// the sender goes (its death included: then
    /// [`try_recv`](Self::try_recv) drains what it committed and reports
    /// [`TryRecvError::Disconnected`]), or, if [`wakeups`](Self::wakeups) says
    /// so, every [`LIVENESS_INTERVAL`]. Do not read it: arming drains it.
    ///
    /// ```no_run
    /// # fn main() -> shmring::Result<()> {
    /// use shmring::{ChannelBuilder, Readiness, TryRecvError};
    /// let mut rx = ChannelBuilder::shm("orders").open()?.receiver()?;
    /// let mut buf = [0u8; 256];
    /// loop {
    ///     // Register rx.readiness_fd() with your event loop once; then, each
    ///     // time it reports the descriptor readable:
    ///     loop {
    ///         match rx.try_recv(&mut buf) {
    ///             Ok(n) => println!("{:?}", &buf[..n]),
    ///             Err(TryRecvError::Empty) => {
    ///                 if rx.arm_for_message()? == Readiness::Armed {
    ///                     break; // back to the event loop
    ///                 }
    ///             }
    ///             Err(TryRecvError::Disconnected) => return Ok(()),
    ///             Err(e) => return Err(e.into()),
    ///         }
    ///     }
    ///     # break;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.link.bells.doorbell()
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for the next message:
    /// [`Readiness::Ready`] if one is there now (or the sender has gone: the
    /// next receive says so), else [`Readiness::Armed`], and the descriptor
    /// becomes readable when that may have changed. After it does: receive until
    /// [`TryRecvError::Empty`], then arm again. Never blocks; with nobody armed,
    /// sending and receiving make no system call for it.
    ///
    /// # Errors
    /// [`Error::Io`] if draining the descriptor or the liveness probe fails.
    pub fn arm_for_message(&mut self) -> Result<Readiness> {
        let consumer = &mut self.consumer;
        self.link
            .arm(|notifier| Ok(consumer.arm_for_message(notifier)))
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken: by the sender's
    /// doorbell, or polled where none could be shared (and why).
    pub fn wakeups(&self) -> &Wakeups {
        self.link.bells.wakeups()
    }

    fn pop_error(&self, e: PopError) -> TryRecvError {
        TryRecvError::from_pop(e, self.link.segment.describe())
    }

    fn pop(&mut self, buf: &mut [u8]) -> std::result::Result<usize, PopError> {
        let n = self.consumer.pop(buf)?;
        self.consumer.wake_producer(&self.link.notifier());
        Ok(n)
    }

    /// Copies the next message into `buf` and consumes it, if there is one now;
    /// returns its length. Never blocks.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`]; [`TryRecvError::Disconnected`] when empty and the
    /// sender has gone (after every message it committed was received);
    /// [`TryRecvError::BufferTooSmall`] (nothing consumed);
    /// [`TryRecvError::Corrupted`]; [`TryRecvError::Io`] if the liveness probe
    /// fails.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        match self.pop(buf) {
            Ok(n) => Ok(n),
            Err(PopError::Empty) => {
                match self.link.peer_gone_throttled() {
                    Ok(false) => return Err(TryRecvError::Empty),
                    Ok(true) => {}
                    Err(e) => return Err(TryRecvError::from_error(e)),
                }
                // The sender is gone: anything it committed is visible now.
                match self.pop(buf) {
                    Err(PopError::Empty) => Err(TryRecvError::Disconnected),
                    other => other.map_err(|e| self.pop_error(e)),
                }
            }
            Err(e) => Err(self.pop_error(e)),
        }
    }

    /// Copies the next message into `buf`, waiting for one until `deadline` at
    /// most (`None`: as long as it takes); returns its length.
    ///
    /// # Errors
    /// [`RecvTimeoutError::TimedOut`]; [`RecvTimeoutError::Disconnected`] once
    /// the sender has gone and everything it committed was received;
    /// [`RecvTimeoutError::BufferTooSmall`]; [`RecvTimeoutError::Corrupted`];
    /// [`RecvTimeoutError::Io`].
    pub fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        self.until_message(deadline, |consumer, notifier| {
            let n = consumer.pop(buf)?;
            consumer.wake_producer(notifier);
            Ok(n)
        })
        .map_err(RecvTimeoutError::from_error)
    }

    /// Reads up to `max` messages in place, calling `f` on each in order, then
    /// releases them all with one publication and wakes a sender waiting for room.
    /// Returns how many were read (0 only if `max` is 0); never blocks.
    ///
    /// If this process dies while `f` runs, every message of the call is delivered
    /// again to the next receiver.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`]; [`TryRecvError::Disconnected`] when empty and the
    /// sender has gone (after everything it committed was received);
    /// [`TryRecvError::Corrupted`] if the first frame is invalid;
    /// [`TryRecvError::Io`] if the liveness probe fails.
    pub fn try_recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, TryRecvError> {
        let mut batch = |receiver: &mut Self| {
            let n = receiver.consumer.read_batch(max, &mut f).map_err(|c| {
                TryRecvError::Corrupted(SegmentCorrupted::boxed(
                    receiver.link.segment.describe(),
                    c,
                ))
            })?;
            receiver.consumer.wake_producer(&receiver.link.notifier());
            Ok::<usize, TryRecvError>(n)
        };
        let n = batch(self)?;
        if n > 0 || max == 0 {
            return Ok(n);
        }
        match self.link.peer_gone_throttled() {
            Ok(false) => return Err(TryRecvError::Empty),
            Ok(true) => {}
            Err(e) => return Err(TryRecvError::from_error(e)),
        }
        // The sender is gone: anything it committed is visible now.
        match batch(self)? {
            0 => Err(TryRecvError::Disconnected),
            n => Ok(n),
        }
    }

    /// Runs `attempt` until it does not find the ring empty, waiting for a message
    /// between attempts by the wait strategy.
    #[inline]
    fn until_message<T>(
        &mut self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(
            &mut Consumer<RawRegion>,
            &Notifier<'_>,
        ) -> std::result::Result<T, PopError>,
    ) -> Result<T> {
        blocking::block(
            self,
            deadline,
            |rx, gone| match attempt(&mut rx.consumer, &rx.link.notifier()) {
                Ok(done) => Ok(Step::Done(done)),
                Err(PopError::Empty) if gone => Err(Self::disconnected()),
                Err(PopError::Empty) => Ok(Step::Wait),
                Err(e) => Err(rx.pop_error(e).into()),
            },
            |rx, until| {
                rx.link.watch(false);
                let parked = rx
                    .consumer
                    .wait_for_message(&rx.link.park_futex(), Some(until));
                match parked.map_err(|e| Error::from_wait(e, rx.link.segment.describe())) {
                    Ok(()) | Err(None) => Ok(()),
                    Err(Some(e)) => Err(e),
                }
            },
        )
    }

    /// Waits until a message can be read; it stays in the ring (a read that is
    /// not released consumes nothing: a probe).
    fn wait_for_message(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.until_message(deadline, |consumer, _| {
            consumer.read().map(drop).map_err(PopError::from)
        })
    }

    /// Borrows the next message in place, if there is one now. [`Received::release`]
    /// consumes it; dropping it leaves it for the next read.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), without `BufferTooSmall`.
    pub fn try_read(&mut self) -> Result<Received<'_>, TryRecvError> {
        match self.consumer.read() {
            Ok(_) => {}
            Err(ReadError::Empty) => {
                match self.link.peer_gone_throttled() {
                    Ok(false) => return Err(TryRecvError::Empty),
                    Ok(true) => {}
                    Err(e) => return Err(TryRecvError::from_error(e)),
                }
                if let Err(ReadError::Empty) = self.consumer.read() {
                    return Err(TryRecvError::Disconnected);
                }
            }
            Err(e) => return Err(TryRecvError::from_read(e, self.link.segment.describe())),
        }
        self.read_now()
    }

    /// As [`try_read`](Self::try_read), waiting for a message.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), without `BufferTooSmall`.
    pub fn read(&mut self) -> Result<Received<'_>, RecvError> {
        self.read_deadline(None).map_err(RecvError::untimed)
    }

    /// As [`read`](Self::read), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout), without `BufferTooSmall`.
    pub fn read_timeout(&mut self, timeout: Duration) -> Result<Received<'_>, RecvTimeoutError> {
        self.read_deadline(deadline_after(timeout))
    }

    /// As [`read`](Self::read), giving up at `deadline` (`None`: waiting as long
    /// as it takes).
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `BufferTooSmall`.
    pub fn read_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Received<'_>, RecvTimeoutError> {
        self.wait_for_message(deadline)
            .map_err(RecvTimeoutError::from_error)?;
        self.read_now()
            .map_err(|e| RecvTimeoutError::from_error(e.into()))
    }

    fn read_now(&mut self) -> Result<Received<'_>, TryRecvError> {
        // A message was found just before; only we consume, so it is still there.
        match self.consumer.read() {
            Ok(message) => Ok(Received {
                message,
                notifier: self.link.notifier(),
            }),
            Err(e) => Err(TryRecvError::from_read(e, self.link.segment.describe())),
        }
    }
}

/// A message borrowed in place from the ring. Derefs to its bytes.
///
/// [`release`](Received::release) consumes it; dropping it leaves it to be read
/// again (by this receiver, or by the next one if this process dies).
pub struct Received<'a> {
    message: Message<'a, RawRegion>,
    notifier: Notifier<'a>,
}

impl fmt::Debug for Received<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message.fmt(f)
    }
}

impl Received<'_> {
    /// Consumes the message and wakes a sender waiting for room.
    pub fn release(self) {
        self.message.release_and_wake(&self.notifier);
    }
}

impl Deref for Received<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.message
    }
}

message_sender!(Sender);

message_receiver!(Receiver {
    /// In place, copied out once.
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvTimeoutError> {
        let message = self.read_deadline(deadline)?;
        let bytes = message.to_vec();
        message.release();
        Ok(bytes)
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd_pair(capacity: usize) -> (Sender, Receiver) {
        let channel = ChannelBuilder::memfd()
            .capacity(capacity)
            .create()
            .expect("memfd channel");
        (
            channel.sender().expect("sender"),
            channel.receiver().expect("receiver"),
        )
    }

    /// Parked ping-pong in both fence modes. A lost wake-up costs a parked call
    /// the 25 ms liveness re-check; if most were lost, 2000 parks would take 50 s.
    #[test]
    fn both_fence_pairs_wake_parked_peers() {
        for asymmetric in [false, true] {
            let channel = |capacity| {
                ChannelBuilder::memfd()
                    .capacity(capacity)
                    .wait_strategy(WaitStrategy::Park)
                    .asymmetric_fences(asymmetric)
                    .create()
                    .expect("memfd channel")
            };
            let (ping, pong) = (channel(4096), channel(4096));
            let flagged =
                ping.segment().region().flags() & shmring_core::FLAG_ASYMMETRIC_FENCES != 0;
            assert_eq!(flagged, asymmetric && crate::futex::register_membarrier());
            let (mut ping_tx, mut ping_rx) = (ping.sender().unwrap(), ping.receiver().unwrap());
            let (mut pong_tx, mut pong_rx) = (pong.sender().unwrap(), pong.receiver().unwrap());
            assert_eq!(ping_tx.link.futex.is_asymmetric(), flagged);
            let echo = std::thread::spawn(move || {
                let mut buf = [0u8; 8];
                for _ in 0..1000 {
                    let n = ping_rx.recv_timeout(&mut buf, Duration::from_secs(10))?;
                    pong_tx.send_timeout(&buf[..n], Duration::from_secs(10))?;
                }
                Ok::<(), Error>(())
            });
            let start = Instant::now();
            let mut buf = [0u8; 8];
            for i in 0u64..1000 {
                ping_tx.send(&i.to_le_bytes()).unwrap();
                let n = pong_rx
                    .recv_timeout(&mut buf, Duration::from_secs(10))
                    .unwrap();
                assert_eq!(&buf[..n], &i.to_le_bytes());
            }
            echo.join().unwrap().unwrap();
            let elapsed = start.elapsed();
            eprintln!("asymmetric {asymmetric}: 1000 parked round trips in {elapsed:?}");
            assert!(
                elapsed < Duration::from_secs(25),
                "wake-ups lost: {elapsed:?}"
            );
        }
    }

    #[test]
    fn batch_is_received_whole_and_in_order() {
        let (mut tx, mut rx) = memfd_pair(4096);
        let mut batch = tx.batch();
        for i in 0u32..100 {
            batch
                .try_send(&i.to_le_bytes())
                .expect("room for 100 small messages");
        }
        // Nothing is visible before the batch is published.
        assert!(matches!(
            rx.try_recv(&mut [0u8; 8]),
            Err(TryRecvError::Empty)
        ));
        batch.publish();
        let mut seen = Vec::new();
        let n = rx
            .try_recv_batch(1000, |m| {
                seen.push(u32::from_le_bytes(m.try_into().expect("4 bytes")))
            })
            .expect("batch read");
        assert_eq!(n, 100);
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(matches!(
            rx.try_recv(&mut [0u8; 8]),
            Err(TryRecvError::Empty)
        ));
    }

    #[test]
    fn a_full_batch_reports_full_and_publishes_what_it_has() {
        let (mut tx, mut rx) = memfd_pair(256);
        let mut sent = 0u32;
        {
            let mut batch = tx.batch();
            loop {
                match batch.try_send(&sent.to_le_bytes()) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full { .. }) => break,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        }
        assert!(sent > 0);
        let mut got = 0u32;
        let mut buf = [0u8; 4];
        while let Ok(4) = rx.try_recv(&mut buf) {
            assert_eq!(u32::from_le_bytes(buf), got);
            got += 1;
        }
        assert_eq!(got, sent);
    }

    #[test]
    fn recv_batch_releases_room_for_a_parked_sender() {
        let (mut tx, mut rx) = memfd_pair(256);
        let max = tx.max_message_len();
        tx.send(&vec![1u8; max]).expect("first largest message");
        let sender = std::thread::spawn(move || {
            // Parks until the receiver's batch read frees the room.
            tx.send_timeout(&vec![2u8; max], Duration::from_secs(10))
        });
        std::thread::sleep(Duration::from_millis(20));
        let mut lens = Vec::new();
        assert_eq!(rx.try_recv_batch(10, |m| lens.push(m.len())).unwrap(), 1);
        sender.join().unwrap().expect("woken by the release");
        let message = rx.recv_vec_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(message, vec![2u8; max]);
        assert_eq!(lens, vec![max]);
    }
}
