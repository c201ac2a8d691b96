//! Named SPSC channels between processes: a builder, and the [`Sender`] and
//! [`Receiver`] endpoints over one shared-memory ring.

use std::fmt;
use std::fs::File;
use std::hint::spin_loop;
use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmring_core::FLAG_ASYMMETRIC_FENCES;
use shmring_core::Futex;
use shmring_core::sync::AtomicU32;
use shmring_core::wait::WAITING;
use shmring_core::{
    Batch, Consumer, Grant, Message, PopError, Producer, PushError, RawRegion, ReadError, RunGrant,
    WaitError,
};

use crate::error::{Corrupted, Error, Result, Role};
use crate::futex::SharedFutex;
use crate::lock;
use crate::options::{SegmentBuilder, SegmentOptions};
use crate::segment::{Backing, Segment};

/// A blocked call's next probe of its peer's liveness falls due this long after
/// its last one (a dead peer wakes no futex waiter), and a parked call sleeps at
/// most this long at a time before it pauses again; see [`PEER_DEATH_BOUND`].
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(25);

/// The longest a blocked call takes to return [`Error::Disconnected`] after its
/// peer died (50 ms), counted from the moment the kernel released the dead
/// process's locks: a probe falls due [`LIVENESS_INTERVAL`] after the last one and
/// is made at the call's next pause, which comes at most one park slice (itself
/// at most [`LIVENESS_INTERVAL`]) later, since a sleep planned just before the
/// probe fell due (after an early wake-up) runs its course.
///
/// Not counted: how long the kernel takes to release a killed process's locks
/// (it tears down the process's memory first) and scheduling delays (a thread the
/// kernel wakes late returns late). A clean departure is seen at once, and over a
/// [`Connection`](crate::Connection) so is a death (its socket tells).
pub const PEER_DEATH_BOUND: Duration = LIVENESS_INTERVAL.saturating_mul(2);

/// A failed non-blocking call checks the peer at most this often (a syscall).
const TRY_LIVENESS_INTERVAL: Duration = Duration::from_millis(1);

/// How a blocked call waits for its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Poll the ring without sleeping: the lowest latency, one core kept busy.
    BusySpin,
    /// Poll for `spin`, then sleep on the futex (the default: 50 µs). A wake-up from
    /// the futex costs the peer a system call and the sleeper the kernel's wake-up
    /// latency (~10 µs); spinning first avoids both for a peer that answers soon.
    SpinThenPark {
        /// How long to poll before sleeping.
        spin: Duration,
    },
    /// Sleep on the futex at once: no CPU burnt while waiting.
    Park,
}

impl Default for WaitStrategy {
    fn default() -> Self {
        Self::SpinThenPark {
            spin: Duration::from_micros(50),
        }
    }
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

    /// Opens the segment behind `fd`, handed over by a parent or a peer (a memfd
    /// from [`ChannelBuilder::memfd`]). Sizes, seals and the ring are checked.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Channel> {
        Ok(self.channel(Segment::from_fd(fd, &self.options)?))
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
        let fd = unsafe { crate::segment::inherited_fd(var) }?;
        self.from_fd(fd)
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
        let (lock, token) = self.claim_lock(Role::Sender)?;
        let region = self.segment.region().clone();
        let previous = owner_word(&region, Role::Sender);
        let claimed = match NonZeroU32::new(previous) {
            None => Producer::claim(region, token),
            // SAFETY: we hold the sender lock, which the previous holder held until
            // its description closed: it has exited (or dropped its handle without
            // clearing the word, impossible for a shmring handle), so no handle of
            // this process uses the role.
            Some(previous) => unsafe { Producer::take_over(region, token, previous) },
        };
        let producer =
            claimed.map_err(|e| Error::claim(self.segment.describe(), Role::Sender, e))?;
        Ok(Sender {
            producer: ManuallyDrop::new(producer),
            lock: ManuallyDrop::new(lock),
            link: Link::new(&self.segment, futex, Role::Sender, self.wait),
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
        let (lock, token) = self.claim_lock(Role::Receiver)?;
        let region = self.segment.region().clone();
        let previous = owner_word(&region, Role::Receiver);
        let claimed = match NonZeroU32::new(previous) {
            None => Consumer::claim(region, token),
            // SAFETY: as in `sender`: holding the lock proves the previous holder gone.
            Some(previous) => unsafe { Consumer::take_over(region, token, previous) },
        };
        let consumer =
            claimed.map_err(|e| Error::claim(self.segment.describe(), Role::Receiver, e))?;
        Ok(Receiver {
            consumer: ManuallyDrop::new(consumer),
            lock: ManuallyDrop::new(lock),
            link: Link::new(&self.segment, futex, Role::Receiver, self.wait),
        })
    }

    /// The futex for this segment's protocol: with the asymmetric fence pair if its
    /// header says so, which needs this process registered for `membarrier`
    /// (before it claims a role, so that every notification it makes is covered).
    fn futex(&self) -> Result<SharedFutex> {
        if self.segment.region().flags() & FLAG_ASYMMETRIC_FENCES == 0 {
            return Ok(SharedFutex::default());
        }
        SharedFutex::asymmetric().ok_or(Error::Unsupported {
            what: "membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED), which this channel's \
                   creator chose (a seccomp filter or a kernel before 4.16 here?)",
        })
    }

    /// Takes the role's liveness lock through a description of our own.
    fn claim_lock(&self, role: Role) -> Result<(File, NonZeroU32)> {
        let what = self.segment.describe();
        let file = lock::reopen(self.segment.fd()).map_err(|e| Error::io("reopen", what, e))?;
        let taken = !lock::try_lock(file.as_fd(), lock_offset(role), true)
            .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", what, e))?;
        if taken {
            return Err(Error::RoleTaken {
                role,
                owner: owner_word(self.segment.region(), role),
            });
        }
        // The token names the holder for humans (`list_segments`); the lock, not
        // the token, decides liveness, so pid reuse cannot fake it.
        let token = NonZeroU32::new(std::process::id()).unwrap_or(NonZeroU32::MIN);
        Ok((file, token))
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
        use std::os::unix::process::CommandExt;
        let fd = self.segment.fd().as_raw_fd();
        command.env(var, fd.to_string());
        // SAFETY: the closure runs in the child between fork and exec and calls
        // only fcntl, which is async-signal-safe; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn lock_offset(role: Role) -> u64 {
    match role {
        Role::Sender => lock::SENDER_LOCK,
        Role::Receiver => lock::RECEIVER_LOCK,
    }
}

fn owner_word(region: &RawRegion, role: Role) -> u32 {
    use shmring_core::Region as _;
    let control = region.control();
    let word = match role {
        Role::Sender => &control.producer.0.owner,
        Role::Receiver => &control.consumer.0.owner,
    };
    // Relaxed: the claim's compare-exchange in core orders what matters; this value
    // only picks claim or take-over (a stale value makes the claim fail `Taken`).
    word.load(std::sync::atomic::Ordering::Relaxed)
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
    segment: Arc<Segment>,
    /// The futex and fence pair the segment's protocol flags call for.
    futex: SharedFutex,
    peer: Role,
    wait: WaitStrategy,
    /// When the peer was last probed, and whether it was gone then.
    last_check: Option<(Instant, bool)>,
    /// Set by whoever learns first that the peer has gone (a connection's socket
    /// watcher, `crate::connection`): consulted on every pause, so a parked call
    /// need not wait for the next lock probe. `None` for a bare channel.
    peer_gone_flag: Option<Arc<AtomicBool>>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("segment", &self.segment.describe())
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// What a blocked call does next.
enum Pause {
    /// Poll again.
    Spin,
    /// Sleep on the futex until then at the latest.
    Park(Instant),
    /// The peer has gone: try once more (whatever it committed before it went is
    /// delivered first), then report [`Error::Disconnected`].
    PeerGone,
}

impl Link {
    fn new(segment: &Arc<Segment>, futex: SharedFutex, own: Role, wait: WaitStrategy) -> Self {
        Self {
            segment: Arc::clone(segment),
            futex,
            peer: match own {
                Role::Sender => Role::Receiver,
                Role::Receiver => Role::Sender,
            },
            wait,
            last_check: None,
            peer_gone_flag: None,
        }
    }

    /// Whether the peer-gone flag is set. SeqCst: the store-buffer pairing with
    /// the flag's setter, see [`PeerGoneFutex`].
    fn flagged_gone(&self) -> bool {
        self.peer_gone_flag
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
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
    /// sleep once the peer-gone flag is set or the peer has released its claim.
    fn park_futex(&self) -> PeerGoneFutex<'_> {
        PeerGoneFutex {
            inner: self.futex,
            flag: self.peer_gone_flag.as_deref(),
            link: self,
        }
    }

    /// Whether a peer has been here and none is now. A syscall (`F_OFD_GETLK`).
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        if self.flagged_gone() {
            self.last_check = Some((now, true));
            return Ok(true);
        }
        // Read the count first: a peer counted before the probe and still alive
        // holds its lock during the probe; one that arrives after is not counted.
        let claims = claims_word(self.segment.region(), self.peer)
            .load(std::sync::atomic::Ordering::Relaxed);
        let alive = self.segment.is_role_alive(lock_offset(self.peer))?;
        let gone = claims != 0 && !alive;
        self.last_check = Some((now, gone));
        Ok(gone)
    }

    /// For a non-blocking call that found the ring full or empty: whether the peer
    /// is gone, checked at most every [`TRY_LIVENESS_INTERVAL`].
    /// The error for a push that did not go through and will not be retried:
    /// `Full` becomes `Disconnected` once the receiver has gone.
    fn refused_push(&mut self, e: PushError) -> Error {
        match e {
            PushError::TooLarge { len, max } => Error::MessageTooLarge { len, max },
            PushError::Full { needed, free } => match self.peer_gone_throttled() {
                Ok(true) => Error::Disconnected {
                    peer: Role::Receiver,
                },
                Ok(false) => Error::Full { needed, free },
                Err(e) => e,
            },
            PushError::Corrupted(c) => corrupted(&self.segment, c),
        }
    }

    fn peer_gone_throttled(&mut self) -> Result<bool> {
        if self.flagged_gone() {
            return Ok(true);
        }
        let now = Instant::now();
        match self.last_check {
            // Within the interval, the last verdict stands (gone stays gone).
            Some((last, gone)) if now.duration_since(last) < TRY_LIVENESS_INTERVAL => Ok(gone),
            _ => self.peer_gone(now),
        }
    }

    fn peer_connected(&self) -> Result<bool> {
        self.segment.is_role_alive(lock_offset(self.peer))
    }

    /// One step of a blocked call, after its condition failed for the `round`th
    /// time: checks the deadline and (every [`LIVENESS_INTERVAL`]) the peer, then
    /// says whether to spin or to park, and until when.
    #[inline]
    fn pause(
        &mut self,
        round: u32,
        started: &mut Option<Instant>,
        deadline: Option<Instant>,
    ) -> Result<Pause> {
        // A spinning caller reads the clock every 64 rounds only.
        if self.wait != WaitStrategy::Park && round % 64 != 0 {
            return Ok(Pause::Spin);
        }
        // A load, no system call: checked on every pause that gets this far.
        if self.flagged_gone() {
            return Ok(Pause::PeerGone);
        }
        let now = Instant::now();
        let start = *started.get_or_insert(now);
        if deadline.is_some_and(|d| now >= d) {
            return Err(Error::TimedOut);
        }
        // A peer that has been here and released its claim word is leaving (or
        // gone, or a hostile peer says so): the lock decides, probed at the
        // non-blocking calls' interval instead of the parked one.
        let interval = if self.peer_released() {
            TRY_LIVENESS_INTERVAL
        } else {
            LIVENESS_INTERVAL
        };
        let check_due = self
            .last_check
            .is_none_or(|(last, _)| now.duration_since(last) >= interval);
        if check_due && self.peer_gone(now)? {
            return Ok(Pause::PeerGone);
        }
        let park = match self.wait {
            WaitStrategy::BusySpin => false,
            WaitStrategy::Park => true,
            WaitStrategy::SpinThenPark { spin } => now.duration_since(start) >= spin,
        };
        if !park {
            return Ok(Pause::Spin);
        }
        // A dead peer wakes nobody: sleep at most until the next liveness check.
        let wake_by = now + interval;
        Ok(Pause::Park(deadline.map_or(wake_by, |d| d.min(wake_by))))
    }
}

/// The futex a parked call sleeps on when its link has a peer-gone flag: the
/// segment's own, except that it does not sleep once the flag is set (it reports
/// a timeout, so the caller's next pause sees the flag and ends the call).
///
/// The flag's setter ([`Channel::wake_parked`]) stores the flag, then loads the
/// signal word and wakes a registered waiter; the waiter registers on the word
/// (`prepare_wait`: `fetch_or(WAITING)` and the waiter fence), then this `wait`
/// loads the flag. The store-buffer pattern: either the waiter sees the flag, or
/// the setter sees `WAITING` and changes the word and wakes it, so no wake-up is
/// lost and a parked call ends at once, not at its next liveness probe.
///
/// A peer's clean departure works the same way: it releases its claim word and
/// its lock, then wakes parked calls (`Drop for Sender`/`Receiver`), and this
/// `wait` does not sleep once the claim word is released, so the departure is
/// seen at once (the caller's next pause probes the lock).
struct PeerGoneFutex<'a> {
    inner: SharedFutex,
    flag: Option<&'a AtomicBool>,
    link: &'a Link,
}

impl Futex for PeerGoneFutex<'_> {
    type Deadline = Instant;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), shmring_core::TimedOut> {
        // SYNC: pairs with the SeqCst store and fence in `Channel::wake_parked`
        // (store-buffer pattern, above); the waiter fence ran before this load.
        if self.flag.is_some_and(|flag| flag.load(Ordering::SeqCst)) {
            return Err(shmring_core::TimedOut);
        }
        // SYNC: the same pairing with `wake_parked`'s fence, for the claim word
        // the departing peer released before calling it. Only a sleep planned
        // before the release was seen (the long interval) is cut short: the pause
        // that sees it plans a short one, slept normally, so a claim word held at
        // 0 (by a hostile peer) costs a probe a millisecond, not a spinning core.
        if self.link.peer_released()
            && deadline.is_none_or(|d| d > Instant::now() + TRY_LIVENESS_INTERVAL)
        {
            return Err(shmring_core::TimedOut);
        }
        self.inner.wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32) {
        self.inner.wake(word);
    }

    #[inline]
    fn waiter_fence(&self) {
        self.inner.waiter_fence();
    }

    #[inline]
    fn notifier_fence(&self) {
        self.inner.notifier_fence();
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
    for word in [&signals.data_signal, &signals.space_signal] {
        // SYNC: the store-buffer pairing of `PeerGoneFutex`: orders the
        // caller's SeqCst store of the flag before this load of the word.
        std::sync::atomic::fence(Ordering::SeqCst);
        // Relaxed: the fence orders it; the word carries no data.
        if word.load(Ordering::Relaxed) & WAITING != 0 {
            // As the ring's own notification: clears WAITING, counts one, so a
            // waiter that has not slept yet on its key does not sleep.
            word.fetch_add(1, Ordering::Relaxed);
            SharedFutex::default().wake(word);
        }
    }
}

impl Sender {
    /// Makes `flag` a second liveness signal: once it is set, a blocked call ends
    /// with [`Error::Disconnected`] (after what fits or is there), without waiting
    /// for the lock probe. Whoever sets it calls [`Channel::wake_parked`].
    pub(crate) fn set_peer_gone_flag(&mut self, flag: Arc<AtomicBool>) {
        self.link.peer_gone_flag = Some(flag);
    }
}

impl Receiver {
    /// As [`Sender::set_peer_gone_flag`].
    pub(crate) fn set_peer_gone_flag(&mut self, flag: Arc<AtomicBool>) {
        self.link.peer_gone_flag = Some(flag);
    }
}

fn corrupted(segment: &Segment, c: shmring_core::Corruption) -> Error {
    Error::Corrupted {
        what: segment.describe().to_owned(),
        detail: Corrupted::Ring(c),
    }
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    // A timeout too large for the clock is no deadline at all.
    Instant::now().checked_add(timeout)
}

/// The sending side of a channel. `Send`, not `Sync`: one thread at a time.
///
/// Messages are committed in order; a committed message is delivered exactly once
/// to a receiver (ARCHITECTURE.md: delivery semantics), also if this process dies
/// right after committing it.
pub struct Sender {
    // Dropped by hand, in this order (`Drop for Sender`): the producer releases its
    // claim word, then the lock goes (the role is free), then a parked receiver is
    // woken; the mapping goes with `link`.
    producer: ManuallyDrop<Producer<RawRegion>>,
    lock: ManuallyDrop<File>,
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

    fn push_error(&mut self, e: PushError) -> Error {
        match e {
            PushError::TooLarge { len, max } => Error::MessageTooLarge { len, max },
            PushError::Full { needed, free } => Error::Full { needed, free },
            PushError::Corrupted(c) => corrupted(&self.link.segment, c),
        }
    }

    /// Copies `message` into the channel if there is room now; never blocks.
    ///
    /// Room is not tied to a receiver: while there is room, messages queue for
    /// whichever receiver comes next.
    ///
    /// # Errors
    /// [`Error::Full`]; [`Error::Disconnected`] when full and the receiver has gone;
    /// [`Error::MessageTooLarge`]; [`Error::Corrupted`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<()> {
        match self.producer.push(message) {
            Ok(()) => {
                self.producer.wake_consumer(&self.link.futex);
                Ok(())
            }
            Err(e) => Err(self.link.refused_push(e)),
        }
    }

    /// Copies `message` into the channel, waiting for room.
    ///
    /// # Errors
    /// [`Error::Disconnected`] if the receiver goes while the channel is full;
    /// [`Error::MessageTooLarge`]; [`Error::Corrupted`].
    pub fn send(&mut self, message: &[u8]) -> Result<()> {
        self.send_deadline(message, None)
    }

    /// As [`send`](Self::send), giving up after `timeout` with [`Error::TimedOut`].
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`Error::TimedOut`].
    pub fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()> {
        self.send_deadline(message, deadline_after(timeout))
    }

    /// As [`send`](Self::send), giving up at `deadline` (`None`: never).
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn send_deadline(&mut self, message: &[u8], deadline: Option<Instant>) -> Result<()> {
        self.until_room(message.len(), deadline, |producer| producer.push(message))?;
        self.producer.wake_consumer(&self.link.futex);
        Ok(())
    }

    /// Runs `attempt` until it does not find the ring full, waiting for room for
    /// `len` bytes between attempts by the wait strategy.
    fn until_room<T>(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Producer<RawRegion>) -> std::result::Result<T, PushError>,
    ) -> Result<T> {
        let mut round = 0u32;
        let mut started = None;
        loop {
            match attempt(&mut self.producer) {
                Ok(done) => return Ok(done),
                Err(PushError::Full { .. }) => {}
                Err(e) => return Err(self.push_error(e)),
            }
            round = round.wrapping_add(1);
            match self.link.pause(round, &mut started, deadline)? {
                Pause::Spin => spin_loop(),
                Pause::Park(until) => {
                    match self
                        .producer
                        .wait_for_space(len, &self.link.park_futex(), Some(until))
                    {
                        Ok(()) | Err(WaitError::TimedOut) => {}
                        Err(WaitError::TooLarge { len, max }) => {
                            return Err(Error::MessageTooLarge { len, max });
                        }
                        Err(WaitError::Corrupted(c)) => {
                            return Err(corrupted(&self.link.segment, c));
                        }
                    }
                }
                Pause::PeerGone => {
                    return match attempt(&mut self.producer) {
                        Ok(done) => Ok(done),
                        Err(PushError::Full { .. }) => Err(Error::Disconnected {
                            peer: Role::Receiver,
                        }),
                        Err(e) => Err(self.push_error(e)),
                    };
                }
            }
        }
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
    pub fn try_grant(&mut self, len: usize) -> Result<SendGrant<'_>> {
        if let Err(e) = self.producer.grant(len) {
            return Err(self.link.refused_push(e));
        }
        self.grant_now(len)
    }

    /// As [`try_grant`](Self::try_grant), waiting for room.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn grant(&mut self, len: usize) -> Result<SendGrant<'_>> {
        // A grant dropped at once commits nothing: a probe for room.
        self.until_room(len, None, |producer| producer.grant(len).map(drop))?;
        self.grant_now(len)
    }

    /// As [`grant`](Self::grant), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn grant_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendGrant<'_>> {
        let deadline = deadline_after(timeout);
        self.until_room(len, deadline, |producer| producer.grant(len).map(drop))?;
        self.grant_now(len)
    }

    fn grant_now(&mut self, len: usize) -> Result<SendGrant<'_>> {
        // Room was found just before; only the receiver frees more, so this holds.
        match self.producer.grant(len) {
            Ok(grant) => Ok(SendGrant {
                grant,
                futex: self.link.futex,
            }),
            Err(e) => Err(match e {
                PushError::TooLarge { len, max } => Error::MessageTooLarge { len, max },
                PushError::Full { needed, free } => Error::Full { needed, free },
                PushError::Corrupted(c) => corrupted(&self.link.segment, c),
            }),
        }
    }
}

/// Messages sent through a batch become visible to the receiver together, with one
/// publication and one wake-up check, when it is published or dropped.
///
/// While it is open the receiver sees none of them: a batch that fills the ring
/// gets [`Error::Full`] and must be published before the receiver can make room.
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
    /// [`Error::Full`] (publish the batch and retry), [`Error::MessageTooLarge`],
    /// [`Error::Corrupted`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<()> {
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
    /// [`Error::Full`] when not even one fits (publish the batch and retry),
    /// [`Error::MessageTooLarge`] beyond the largest message or 65535 bytes,
    /// [`Error::Corrupted`].
    ///
    /// # Panics
    /// If `len` is 0.
    pub fn try_grant_run(
        &mut self,
        len: usize,
        count: usize,
    ) -> Result<RunGrant<'_, 'a, RawRegion>> {
        self.batch
            .grant_run(len, count)
            .map_err(|e| self.link.refused_push(e))
    }

    /// Publishes the batch and wakes the receiver (dropping it does the same).
    pub fn publish(self) {}
}

impl Drop for Sender {
    fn drop(&mut self) {
        // SAFETY: each field is dropped once, here, and never used again (the
        // struct is being dropped; `link` does not touch them).
        unsafe {
            // Publishes what is pending and releases the claim word...
            ManuallyDrop::drop(&mut self.producer);
            // ...then frees the role: a probe now finds it unheld.
            ManuallyDrop::drop(&mut self.lock);
        }
        // A parked receiver sees the departure now, not at its next probe.
        wake_parked(&self.link.segment);
    }
}

impl Drop for SendBatch<'_> {
    fn drop(&mut self) {
        // SAFETY: `batch` is taken once, here, and `self` is not used after.
        let batch = unsafe { ManuallyDrop::take(&mut self.batch) };
        batch.publish_and_wake(&self.link.futex);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // SAFETY: as in `Drop for Sender`.
        unsafe {
            ManuallyDrop::drop(&mut self.consumer);
            ManuallyDrop::drop(&mut self.lock);
        }
        // A sender parked on a full ring sees the departure now.
        wake_parked(&self.link.segment);
    }
}

/// Bytes of the ring lent for writing a message in place. Derefs to them (they hold
/// whatever was there before).
pub struct SendGrant<'a> {
    grant: Grant<'a, RawRegion>,
    futex: SharedFutex,
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
        self.grant.commit_and_wake(len, &self.futex);
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
    // Dropped by hand, as for `Sender`.
    consumer: ManuallyDrop<Consumer<RawRegion>>,
    lock: ManuallyDrop<File>,
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

    fn pop_error(&self, e: PopError) -> Error {
        match e {
            PopError::Empty => Error::Empty,
            PopError::BufferTooSmall { len, buffer } => Error::BufferTooSmall { len, buffer },
            PopError::Corrupted(c) => corrupted(&self.link.segment, c),
        }
    }

    fn pop(&mut self, buf: &mut [u8]) -> std::result::Result<usize, PopError> {
        let n = self.consumer.pop(buf)?;
        self.consumer.wake_producer(&self.link.futex);
        Ok(n)
    }

    /// Copies the next message into `buf` and consumes it, if there is one now;
    /// returns its length. Never blocks.
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::Disconnected`] when empty and the sender has gone
    /// (after every message it committed was received); [`Error::BufferTooSmall`]
    /// (nothing consumed); [`Error::Corrupted`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.pop(buf) {
            Ok(n) => Ok(n),
            Err(PopError::Empty) => {
                if !self.link.peer_gone_throttled()? {
                    return Err(Error::Empty);
                }
                // The sender is gone: anything it committed is visible now.
                match self.pop(buf) {
                    Err(PopError::Empty) => Err(Self::disconnected()),
                    other => other.map_err(|e| self.pop_error(e)),
                }
            }
            Err(e) => Err(self.pop_error(e)),
        }
    }

    /// Copies the next message into `buf`, waiting for one; returns its length.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once the sender has gone and everything it committed
    /// was received; [`Error::BufferTooSmall`]; [`Error::Corrupted`].
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_deadline(buf, None)
    }

    /// As [`recv`](Self::recv), giving up after `timeout` with [`Error::TimedOut`].
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and [`Error::TimedOut`].
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_deadline(buf, deadline_after(timeout))
    }

    /// As [`recv`](Self::recv), giving up at `deadline` (`None`: never).
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_deadline(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        let futex = self.link.futex;
        self.until_message(deadline, |consumer| {
            let n = consumer.pop(buf)?;
            consumer.wake_producer(&futex);
            Ok(n)
        })
    }

    /// Receives the next message into a new `Vec`, waiting for one.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), without `BufferTooSmall`.
    pub fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let message = self.read()?;
        let bytes = message.to_vec();
        message.release();
        Ok(bytes)
    }

    /// As [`recv_vec`](Self::recv_vec), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout), without `BufferTooSmall`.
    pub fn recv_vec_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let message = self.read_timeout(timeout)?;
        let bytes = message.to_vec();
        message.release();
        Ok(bytes)
    }

    /// Reads up to `max` messages in place, calling `f` on each in order, then
    /// releases them all with one publication and wakes a sender waiting for room.
    /// Returns how many were read (0 only if `max` is 0); never blocks.
    ///
    /// If this process dies while `f` runs, every message of the call is delivered
    /// again to the next receiver.
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::Disconnected`] when empty and the sender has gone
    /// (after everything it committed was received); [`Error::Corrupted`] if the
    /// first frame is invalid.
    pub fn try_recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize> {
        let mut batch = |receiver: &mut Self| {
            let n = receiver
                .consumer
                .read_batch(max, &mut f)
                .map_err(|c| corrupted(&receiver.link.segment, c))?;
            receiver.consumer.wake_producer(&receiver.link.futex);
            Ok::<usize, Error>(n)
        };
        let n = batch(self)?;
        if n > 0 || max == 0 {
            return Ok(n);
        }
        if !self.link.peer_gone_throttled()? {
            return Err(Error::Empty);
        }
        // The sender is gone: anything it committed is visible now.
        match batch(self)? {
            0 => Err(Self::disconnected()),
            n => Ok(n),
        }
    }

    /// Runs `attempt` until it does not find the ring empty, waiting for a message
    /// between attempts by the wait strategy.
    fn until_message<T>(
        &mut self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Consumer<RawRegion>) -> std::result::Result<T, PopError>,
    ) -> Result<T> {
        let mut round = 0u32;
        let mut started = None;
        loop {
            match attempt(&mut self.consumer) {
                Ok(done) => return Ok(done),
                Err(PopError::Empty) => {}
                Err(e) => return Err(self.pop_error(e)),
            }
            round = round.wrapping_add(1);
            match self.link.pause(round, &mut started, deadline)? {
                Pause::Spin => spin_loop(),
                Pause::Park(until) => {
                    match self
                        .consumer
                        .wait_for_message(&self.link.park_futex(), Some(until))
                    {
                        Ok(()) | Err(WaitError::TimedOut) => {}
                        Err(WaitError::Corrupted(c)) => {
                            return Err(corrupted(&self.link.segment, c));
                        }
                        Err(WaitError::TooLarge { .. }) => {
                            unreachable!("only a sender waits for room")
                        }
                    }
                }
                Pause::PeerGone => {
                    return match attempt(&mut self.consumer) {
                        Ok(done) => Ok(done),
                        Err(PopError::Empty) => Err(Self::disconnected()),
                        Err(e) => Err(self.pop_error(e)),
                    };
                }
            }
        }
    }

    /// Waits until a message can be read; it stays in the ring (a read that is
    /// not released consumes nothing: a probe).
    fn wait_for_message(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.until_message(deadline, |consumer| {
            consumer.read().map(drop).map_err(PopError::from)
        })
    }

    /// Borrows the next message in place, if there is one now. [`Received::release`]
    /// consumes it; dropping it leaves it for the next read.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), without `BufferTooSmall`.
    pub fn try_read(&mut self) -> Result<Received<'_>> {
        match self.consumer.read() {
            Ok(_) => {}
            Err(ReadError::Empty) => {
                if !self.link.peer_gone_throttled()? {
                    return Err(Error::Empty);
                }
                if let Err(ReadError::Empty) = self.consumer.read() {
                    return Err(Self::disconnected());
                }
            }
            Err(ReadError::Corrupted(c)) => return Err(corrupted(&self.link.segment, c)),
        }
        self.read_now()
    }

    /// As [`try_read`](Self::try_read), waiting for a message.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), without `BufferTooSmall`.
    pub fn read(&mut self) -> Result<Received<'_>> {
        self.wait_for_message(None)?;
        self.read_now()
    }

    /// As [`read`](Self::read), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout), without `BufferTooSmall`.
    pub fn read_timeout(&mut self, timeout: Duration) -> Result<Received<'_>> {
        self.wait_for_message(deadline_after(timeout))?;
        self.read_now()
    }

    fn read_now(&mut self) -> Result<Received<'_>> {
        // A message was found just before; only we consume, so it is still there.
        match self.consumer.read() {
            Ok(message) => Ok(Received {
                message,
                futex: self.link.futex,
            }),
            Err(ReadError::Empty) => Err(Error::Empty),
            Err(ReadError::Corrupted(c)) => Err(Error::Corrupted {
                what: self.link.segment.describe().to_owned(),
                detail: Corrupted::Ring(c),
            }),
        }
    }
}

/// A message borrowed in place from the ring. Derefs to its bytes.
///
/// [`release`](Received::release) consumes it; dropping it leaves it to be read
/// again (by this receiver, or by the next one if this process dies).
pub struct Received<'a> {
    message: Message<'a, RawRegion>,
    futex: SharedFutex,
}

impl fmt::Debug for Received<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message.fmt(f)
    }
}

impl Received<'_> {
    /// Consumes the message and wakes a sender waiting for room.
    pub fn release(self) {
        self.message.release_and_wake(&self.futex);
    }
}

impl Deref for Received<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.message
    }
}

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
            let flagged = ping.segment().region().flags() & FLAG_ASYMMETRIC_FENCES != 0;
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
        assert!(matches!(rx.try_recv(&mut [0u8; 8]), Err(Error::Empty)));
        batch.publish();
        let mut seen = Vec::new();
        let n = rx
            .try_recv_batch(1000, |m| {
                seen.push(u32::from_le_bytes(m.try_into().expect("4 bytes")))
            })
            .expect("batch read");
        assert_eq!(n, 100);
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(matches!(rx.try_recv(&mut [0u8; 8]), Err(Error::Empty)));
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
                    Err(Error::Full { .. }) => break,
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
