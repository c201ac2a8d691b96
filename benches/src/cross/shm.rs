//! The shared-memory methods: shmring (round trips under each wait strategy,
//! throughput message by message and in batches, bandwidth) and the references
//! (the cache-line limit, the futex ping-pong, the bare rings).

use std::hint::spin_loop;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use shmring::{Channel, ChannelBuilder, SegmentBuilder, WaitStrategy};

use super::{
    BULK, BULK_SLOTS, Check, Duplex, FD_A_VAR, FD_B_VAR, LARGE, Method, PAYLOAD_A, PAYLOAD_B,
    PAYLOAD_MAX, Patience, ROUND_TRIP_CAPACITY, Result, SMALL, STREAM_BATCH, SharedBlock, Sink,
    Source, Stamp, futex_wait, futex_wake, wait_readable,
};
use crate::shared_bare;

// ---------------------------------------------------------------------------
// shmring

/// Two shmring channels, one each way.
pub(super) struct ShmringDuplex {
    tx: shmring::Sender,
    rx: shmring::Receiver,
}

impl ShmringDuplex {
    /// The two ends: (sender, receiver).
    pub(super) fn into_ends(self) -> (shmring::Sender, shmring::Receiver) {
        (self.tx, self.rx)
    }
}

impl Duplex for ShmringDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Ok(self.tx.send(msg)?)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let n = self.rx.recv(buf)?;
        if n != buf.len() {
            return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
        }
        Ok(())
    }
}

/// The builder of a round-trip method's channels (memfds, one message in
/// flight), waiting as `method` says.
pub(super) fn round_trip_builder(method: Method) -> ChannelBuilder {
    ChannelBuilder::memfd()
        .capacity(ROUND_TRIP_CAPACITY)
        .prefault(true)
        .wait_strategy(method.wait_strategy())
}

/// The parent's ends of a round-trip method's two channels (ping: parent to
/// child, passed as [`FD_A_VAR`]; pong: child to parent, [`FD_B_VAR`]), and the
/// channels themselves, to drop once the child is spawned.
pub(super) fn shmring_parent(
    method: Method,
    command: &mut Command,
) -> Result<(ShmringDuplex, (Channel, Channel))> {
    let builder = round_trip_builder(method);
    let (ping, pong) = (builder.create()?, builder.create()?);
    ping.pass_to(command, FD_A_VAR);
    pong.pass_to(command, FD_B_VAR);
    let duplex = ShmringDuplex {
        tx: ping.sender()?,
        rx: pong.receiver()?,
    };
    Ok((duplex, (ping, pong)))
}

/// The child's ends of a round-trip method's channels.
pub(super) fn shmring_child(method: Method) -> Result<ShmringDuplex> {
    let builder = ChannelBuilder::memfd()
        .prefault(true)
        .wait_strategy(method.wait_strategy());
    // SAFETY: the parent passed these two memfds to this child; each variable is
    // taken once.
    let rx = unsafe { builder.from_env(FD_A_VAR) }?.receiver()?;
    // SAFETY: as above.
    let tx = unsafe { builder.from_env(FD_B_VAR) }?.sender()?;
    Ok(ShmringDuplex { tx, rx })
}

/// What the child opens before its watchdog starts.
pub(super) enum ShmringEnds {
    // Boxed: endpoints are a few hundred bytes, and the variants differ.
    Duplex(Box<ShmringDuplex>),
    Sender(Box<shmring::Sender>),
}

/// The channel of a throughput run: for 8-byte messages as many messages as the
/// bare ring has slots (16 bytes of ring each); for larger ones, 16 messages'
/// worth of ring rounded to a power of two (for 64 KiB: 1 MiB, 15 messages).
pub(super) fn stream_channel(size: usize) -> Result<ChannelBuilder> {
    let capacity = if size == SMALL {
        shared_bare::CAPACITY * crate::SHMRING_FRAME
    } else {
        (BULK_SLOTS * size).next_power_of_two()
    };
    Ok(ChannelBuilder::memfd()
        .capacity(capacity)
        .prefault(true)
        .wait_strategy(WaitStrategy::BusySpin))
}

/// The child's end of a throughput run's channel.
pub(super) fn stream_child_sender(size: usize) -> Result<shmring::Sender> {
    let builder = stream_channel(size)?;
    // SAFETY: the parent passed this memfd to this child; the variable is taken once.
    Ok(unsafe { builder.from_env(FD_A_VAR) }?.sender()?)
}

/// shmring, message by message: `try_send`.
pub(super) struct ShmringSource(pub(super) shmring::Sender);

impl Source for ShmringSource {
    #[inline]
    fn send_from(&mut self, stamp: &mut Stamp, next: u64, _end: u64) -> Result<u64> {
        match self.0.try_send(stamp.stamp(next)) {
            Ok(()) => Ok(1),
            Err(shmring::TrySendError::Full { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// shmring in batches: up to [`STREAM_BATCH`] messages published together.
pub(super) struct ShmringBatchSource(pub(super) shmring::Sender);

impl Source for ShmringBatchSource {
    #[inline]
    fn send_from(&mut self, stamp: &mut Stamp, next: u64, end: u64) -> Result<u64> {
        let stop = end.min(next + STREAM_BATCH as u64);
        let mut batch = self.0.batch();
        let mut seq = next;
        while seq < stop {
            match batch.try_send(stamp.stamp(seq)) {
                Ok(()) => seq += 1,
                Err(shmring::TrySendError::Full { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        batch.publish();
        Ok(seq - next)
    }
}

/// shmring, message by message: `try_recv` into a buffer.
pub(super) struct ShmringSink {
    rx: shmring::Receiver,
    buf: Vec<u8>,
}

impl ShmringSink {
    pub(super) fn new(rx: shmring::Receiver, size: usize) -> Self {
        Self {
            rx,
            buf: vec![0; size],
        }
    }
}

impl Sink for ShmringSink {
    #[inline]
    fn recv_some(&mut self, check: &mut Check) -> Result<u64> {
        match self.rx.try_recv(&mut self.buf) {
            Ok(n) => {
                check.check(&self.buf[..n])?;
                Ok(1)
            }
            Err(shmring::TryRecvError::Empty) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// shmring in batches: `try_recv_batch`, up to [`STREAM_BATCH`] messages read in
/// place and released together.
pub(super) struct ShmringBatchSink(pub(super) shmring::Receiver);

impl Sink for ShmringBatchSink {
    #[inline]
    fn recv_some(&mut self, check: &mut Check) -> Result<u64> {
        let mut failed = None;
        let n = match self.0.try_recv_batch(STREAM_BATCH, |msg| {
            if failed.is_none() {
                failed = check.check(msg).err();
            }
        }) {
            Err(shmring::TryRecvError::Empty) => 0,
            other => other?,
        };
        match failed {
            Some(e) => Err(e),
            None => Ok(n as u64),
        }
    }
}

// ---------------------------------------------------------------------------
// The cache-line limit and the futex ping-pong

/// The two directions of a reference in the shared block, seen from one side.
struct Lanes<'a, W> {
    out_word: &'a W,
    in_word: &'a W,
    out_buf: NonNull<u8>,
    in_buf: NonNull<u8>,
    size: usize,
}

impl<'a, W> Lanes<'a, W> {
    fn new(
        shared: &'a SharedBlock,
        size: usize,
        parent: bool,
        words: (&'a W, &'a W),
    ) -> Result<Self> {
        if !(SMALL..=PAYLOAD_MAX).contains(&size) {
            return Err(format!("message size {size} outside {SMALL}..={PAYLOAD_MAX}").into());
        }
        let (a, b) = (shared.at(PAYLOAD_A), shared.at(PAYLOAD_B));
        Ok(if parent {
            Self {
                out_word: words.0,
                in_word: words.1,
                out_buf: a,
                in_buf: b,
                size,
            }
        } else {
            Self {
                out_word: words.1,
                in_word: words.0,
                out_buf: b,
                in_buf: a,
                size,
            }
        })
    }

    /// Copies `msg` into our outgoing buffer.
    #[inline]
    fn put(&mut self, msg: &[u8]) {
        assert_eq!(msg.len(), self.size, "message size");
        // SAFETY: the buffer is PAYLOAD_MAX bytes of the shared mapping, which
        // outlives `self` (borrowed for 'a), and `size` is at most that (checked
        // in `new`). It is ours to write: the peer reads it only between our
        // Release store of the next word value and its own Release store of the
        // answer, which we Acquire-load before we write it again.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.out_buf.as_ptr(), msg.len()) };
    }

    /// Copies the incoming buffer into `buf`.
    #[inline]
    fn take(&self, buf: &mut [u8]) {
        assert_eq!(buf.len(), self.size, "message size");
        // SAFETY: as in `put`, for the peer's buffer: it wrote it before its
        // Release store of the word we Acquire-loaded, and writes it again only
        // after our answer.
        unsafe { std::ptr::copy_nonoverlapping(self.in_buf.as_ptr(), buf.as_mut_ptr(), buf.len()) };
    }
}

/// The physical limit: each direction is one cache line. An 8-byte message is
/// the line's value itself (the messages of a run are distinct, so a change of the
/// value is a new message); a larger one is copied into a shared buffer first and
/// the line carries a count.
pub(super) struct CacheLine<'a> {
    lanes: Lanes<'a, AtomicU64>,
    sent: u64,
    last_in: u64,
    patience: Patience,
}

impl<'a> CacheLine<'a> {
    pub(super) fn parent(shared: &'a SharedBlock, size: usize) -> Result<Self> {
        Self::new(shared, size, true)
    }

    pub(super) fn child(shared: &'a SharedBlock, size: usize) -> Result<Self> {
        Self::new(shared, size, false)
    }

    fn new(shared: &'a SharedBlock, size: usize, parent: bool) -> Result<Self> {
        let block = shared.block();
        Ok(Self {
            lanes: Lanes::new(shared, size, parent, (&*block.line_a, &*block.line_b))?,
            sent: 0,
            last_in: 0,
            patience: Patience::new("the peer's cache line"),
        })
    }
}

impl Duplex for CacheLine<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let value = if msg.len() == SMALL {
            u64::from_ne_bytes(msg.try_into().expect("8 bytes"))
        } else {
            self.lanes.put(msg);
            self.sent += 1;
            self.sent
        };
        // Release: pairs with the peer's Acquire load; the buffer (if used) is
        // visible with the value.
        self.lanes.out_word.store(value, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let value = loop {
            // Acquire: pairs with the peer's Release store.
            let now = self.lanes.in_word.load(Ordering::Acquire);
            if now != self.last_in {
                break now;
            }
            self.patience.tick()?;
            spin_loop();
        };
        self.patience.reset();
        self.last_in = value;
        if buf.len() == SMALL {
            buf.copy_from_slice(&value.to_ne_bytes());
        } else {
            self.lanes.take(buf);
        }
        Ok(())
    }
}

/// The parked reference: each side copies the message into its buffer, bumps its
/// futex word and wakes it; the receiver sleeps on the peer's word until it moves.
pub(super) struct Futex<'a> {
    lanes: Lanes<'a, AtomicU32>,
    sent: u32,
    last_in: u32,
    patience: Patience,
}

impl<'a> Futex<'a> {
    pub(super) fn parent(shared: &'a SharedBlock, size: usize) -> Result<Self> {
        Self::new(shared, size, true)
    }

    pub(super) fn child(shared: &'a SharedBlock, size: usize) -> Result<Self> {
        Self::new(shared, size, false)
    }

    fn new(shared: &'a SharedBlock, size: usize, parent: bool) -> Result<Self> {
        let block = shared.block();
        Ok(Self {
            lanes: Lanes::new(shared, size, parent, (&*block.futex_a, &*block.futex_b))?,
            sent: 0,
            last_in: 0,
            patience: Patience::new("the peer's futex"),
        })
    }
}

impl Duplex for Futex<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.lanes.put(msg);
        self.sent = self.sent.wrapping_add(1);
        // Release: the buffer is visible with the new count.
        self.lanes.out_word.store(self.sent, Ordering::Release);
        futex_wake(self.lanes.out_word);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        loop {
            // Acquire: pairs with the peer's Release store.
            let now = self.lanes.in_word.load(Ordering::Acquire);
            if now != self.last_in {
                self.last_in = now;
                break;
            }
            futex_wait(self.lanes.in_word, now);
            // A wait ends in at most 100 ms: count each as many spin turns, so that
            // PATIENCE is reached in roughly PATIENCE of sleeping.
            for _ in 0..4096 {
                self.patience.tick()?;
            }
        }
        self.patience.reset();
        self.lanes.take(buf);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The eventfd ping-pong

/// The eventfd reference's two descriptors, seen from one side: the one this
/// side writes and the one it waits on.
pub(super) struct EventFdPair {
    out: OwnedFd,
    inn: OwnedFd,
}

impl EventFdPair {
    /// Creates the two eventfds (ping: parent to child, passed as [`FD_A_VAR`];
    /// pong: child to parent, [`FD_B_VAR`]).
    pub(super) fn parent(command: &mut Command) -> Result<Self> {
        let (out, inn) = (eventfd()?, eventfd()?);
        super::inherit(command, out.as_fd(), FD_A_VAR);
        super::inherit(command, inn.as_fd(), FD_B_VAR);
        Ok(Self { out, inn })
    }

    /// The descriptors the parent passed.
    pub(super) fn child() -> Result<Self> {
        Ok(Self {
            inn: super::inherited(FD_A_VAR)?,
            out: super::inherited(FD_B_VAR)?,
        })
    }
}

/// A blocking eventfd (counter mode), close-on-exec.
fn eventfd() -> Result<OwnedFd> {
    // SAFETY: eventfd takes no pointer; it returns a fresh descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd == -1 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()).into());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The readiness rows' reference: the payload in the shared block's buffers (as
/// for the futex), the signal an eventfd each way. The sender adds 1 to its
/// eventfd; the receiver waits in `poll` on the other, then reads it (resetting
/// the counter: one message is in flight at a time).
pub(super) struct EventFdDuplex<'a> {
    lanes: Lanes<'a, AtomicU32>,
    pair: EventFdPair,
    patience: Patience,
}

impl<'a> EventFdDuplex<'a> {
    pub(super) fn new(
        shared: &'a SharedBlock,
        size: usize,
        parent: bool,
        pair: EventFdPair,
    ) -> Result<Self> {
        let block = shared.block();
        Ok(Self {
            lanes: Lanes::new(shared, size, parent, (&*block.futex_a, &*block.futex_b))?,
            pair,
            patience: Patience::new("the peer's eventfd"),
        })
    }
}

impl Duplex for EventFdDuplex<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.lanes.put(msg);
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array to an open eventfd. The kernel's
        // write orders the buffer's bytes before the peer's read returns.
        let n = unsafe { libc::write(self.pair.out.as_raw_fd(), one.as_ptr().cast(), 8) };
        if n != 8 {
            return Err(format!("eventfd write: {}", std::io::Error::last_os_error()).into());
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        wait_readable(self.pair.inn.as_fd(), &mut self.patience)?;
        let mut count = [0u8; 8];
        // SAFETY: reads 8 bytes into a live array from an open eventfd, which is
        // readable (polled above): the read does not block.
        let n = unsafe { libc::read(self.pair.inn.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        if n != 8 {
            return Err(format!("eventfd read: {}", std::io::Error::last_os_error()).into());
        }
        if u64::from_ne_bytes(count) != 1 {
            return Err(format!("eventfd count {}, expected 1", u64::from_ne_bytes(count)).into());
        }
        self.patience.reset();
        self.lanes.take(buf);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// shmring events and semaphores

/// A round trip's two synchronisation objects, seen from one side: the one this
/// side signals and the one it waits on.
pub(super) enum SyncPair {
    /// [`Method::Event`].
    Events {
        out: shmring::Event,
        inn: shmring::Event,
    },
    /// [`Method::Semaphore`].
    Semaphores {
        out: shmring::Semaphore,
        inn: shmring::Semaphore,
    },
}

impl SyncPair {
    /// Creates the two memfd objects (ping: parent to child, passed as
    /// [`FD_A_VAR`]; pong: child to parent, [`FD_B_VAR`]).
    pub(super) fn parent(method: Method, command: &mut Command) -> Result<Self> {
        let pair = match method {
            Method::Event => {
                let builder = shmring::EventBuilder::memfd();
                let (out, inn) = (builder.create()?, builder.create()?);
                super::inherit(command, out.fd(), FD_A_VAR);
                super::inherit(command, inn.fd(), FD_B_VAR);
                Self::Events { out, inn }
            }
            Method::Semaphore => {
                let builder = shmring::SemaphoreBuilder::memfd();
                let (out, inn) = (builder.create()?, builder.create()?);
                super::inherit(command, out.fd(), FD_A_VAR);
                super::inherit(command, inn.fd(), FD_B_VAR);
                Self::Semaphores { out, inn }
            }
            _ => return Err(format!("{} is not a sync object", method.name()).into()),
        };
        Ok(pair)
    }

    /// Opens the objects the parent passed.
    pub(super) fn child(method: Method) -> Result<Self> {
        let (ping, pong) = (super::inherited(FD_A_VAR)?, super::inherited(FD_B_VAR)?);
        Ok(match method {
            Method::Event => {
                let builder = shmring::EventBuilder::memfd();
                Self::Events {
                    inn: builder.from_fd(ping)?,
                    out: builder.from_fd(pong)?,
                }
            }
            Method::Semaphore => {
                let builder = shmring::SemaphoreBuilder::memfd();
                Self::Semaphores {
                    inn: builder.from_fd(ping)?,
                    out: builder.from_fd(pong)?,
                }
            }
            _ => return Err(format!("{} is not a sync object", method.name()).into()),
        })
    }
}

/// The futex ping-pong's design over shmring's events or semaphores: the payload
/// in the shared block's buffers, the signal through the objects.
pub(super) struct SyncDuplex<'a> {
    lanes: Lanes<'a, AtomicU32>,
    pair: SyncPair,
    sent: u32,
    last_in: u32,
    patience: Patience,
}

/// How long one wait of [`SyncDuplex::recv`] lasts before it counts patience.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl<'a> SyncDuplex<'a> {
    pub(super) fn new(
        shared: &'a SharedBlock,
        size: usize,
        parent: bool,
        pair: SyncPair,
    ) -> Result<Self> {
        let block = shared.block();
        Ok(Self {
            lanes: Lanes::new(shared, size, parent, (&*block.futex_a, &*block.futex_b))?,
            pair,
            sent: 0,
            last_in: 0,
            patience: Patience::new("the peer's event or semaphore"),
        })
    }

    /// A wait that timed out: counted as many spin turns, as for the futex.
    fn waited(&mut self) -> Result<()> {
        for _ in 0..4096 {
            self.patience.tick()?;
        }
        Ok(())
    }
}

impl Duplex for SyncDuplex<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.lanes.put(msg);
        match &self.pair {
            SyncPair::Events { out, .. } => {
                self.sent = self.sent.wrapping_add(1);
                // Release: the buffer is visible with the new count.
                self.lanes.out_word.store(self.sent, Ordering::Release);
                out.notify_one();
            }
            // The post's swap is a Release: the buffer is visible to the taker.
            SyncPair::Semaphores { out, .. } => out.post()?,
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        loop {
            let waited = match &self.pair {
                SyncPair::Events { inn, .. } => {
                    let key = inn.prepare();
                    // Acquire: pairs with the peer's Release store.
                    let now = self.lanes.in_word.load(Ordering::Acquire);
                    if now != self.last_in {
                        self.last_in = now;
                        break;
                    }
                    inn.wait_from_timeout(key, SYNC_WAIT)
                }
                // The wait's swap is an Acquire: the peer's buffer is visible.
                SyncPair::Semaphores { inn, .. } => match inn.wait_timeout(SYNC_WAIT) {
                    Ok(()) => break,
                    other => other,
                },
            };
            match waited {
                Ok(()) => {}
                Err(shmring::Error::TimedOut) => self.waited()?,
                Err(e) => return Err(e.into()),
            }
        }
        self.patience.reset();
        self.lanes.take(buf);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The bare rings

/// The bare `u64` ring ([`shared_bare`]): the message is the sequence number.
pub(super) struct BareSource<'a>(pub(super) shared_bare::Sender<'a>);

impl Source for BareSource<'_> {
    #[inline]
    fn send_from(&mut self, _stamp: &mut Stamp, next: u64, _end: u64) -> Result<u64> {
        Ok(u64::from(self.0.push(next)))
    }
}

/// The receiving end of the bare `u64` ring.
pub(super) struct BareSink<'a>(pub(super) shared_bare::Receiver<'a>);

impl Sink for BareSink<'_> {
    #[inline]
    fn recv_some(&mut self, check: &mut Check) -> Result<u64> {
        match self.0.pop() {
            Some(v) => {
                check.check(&v.to_ne_bytes())?;
                Ok(1)
            }
            None => Ok(0),
        }
    }
}

/// The counts of the bare bandwidth ring, in the shared block: the same design as
/// [`shared_bare`] over [`BULK_SLOTS`] slots of [`LARGE`] bytes at [`BULK`].
#[repr(C)]
pub(super) struct BulkCounts {
    /// Messages pushed so far: stored by the producer only (Release).
    tail: CachePadded<AtomicU64>,
    /// Messages popped so far: stored by the consumer only (Release).
    head: CachePadded<AtomicU64>,
}

/// The slot of message `seq`.
fn bulk_slot(slots: NonNull<u8>, seq: u64) -> NonNull<u8> {
    let index = (seq % BULK_SLOTS as u64) as usize;
    // SAFETY: BULK_SLOTS slots of LARGE bytes follow BULK in the mapping.
    unsafe { slots.add(index * LARGE) }
}

/// The producer of the bare bandwidth ring: copies each message into a slot.
pub(super) struct BulkSource<'a> {
    counts: &'a BulkCounts,
    slots: NonNull<u8>,
    tail: u64,
    head_cache: u64,
}

impl<'a> BulkSource<'a> {
    pub(super) fn new(shared: &'a SharedBlock, size: usize) -> Result<Self> {
        if size != LARGE {
            return Err(format!("the bare bandwidth ring moves {LARGE}-byte messages").into());
        }
        let counts = &shared.block().bulk;
        Ok(Self {
            counts,
            slots: shared.at(BULK),
            // Relaxed: only this side stores `tail`; Acquire: as in `send_from`.
            tail: counts.tail.load(Ordering::Relaxed),
            head_cache: counts.head.load(Ordering::Acquire),
        })
    }
}

impl Source for BulkSource<'_> {
    #[inline]
    fn send_from(&mut self, stamp: &mut Stamp, next: u64, _end: u64) -> Result<u64> {
        if self.tail - self.head_cache == BULK_SLOTS as u64 {
            // Acquire: the consumer's copies out of the slots it freed happened
            // before we overwrite them.
            self.head_cache = self.counts.head.load(Ordering::Acquire);
            if self.tail - self.head_cache == BULK_SLOTS as u64 {
                return Ok(0);
            }
        }
        let msg = stamp.stamp(next);
        let slot = bulk_slot(self.slots, self.tail);
        // SAFETY: the slot is LARGE bytes of the shared mapping (alive while the
        // borrowed block is) and `msg` is LARGE bytes (checked in `new`); it is
        // outside [head, tail), so the consumer does not read it until the Release
        // store below publishes it.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), slot.as_ptr(), msg.len()) };
        self.tail += 1;
        // Release: the slot's bytes are visible to whoever Acquire-loads the count.
        self.counts.tail.store(self.tail, Ordering::Release);
        Ok(1)
    }
}

/// The consumer of the bare bandwidth ring: copies each message out of its slot.
pub(super) struct BulkSink<'a> {
    counts: &'a BulkCounts,
    slots: NonNull<u8>,
    head: u64,
    tail_cache: u64,
    buf: Vec<u8>,
}

impl<'a> BulkSink<'a> {
    pub(super) fn new(shared: &'a SharedBlock, size: usize) -> Result<Self> {
        if size != LARGE {
            return Err(format!("the bare bandwidth ring moves {LARGE}-byte messages").into());
        }
        let counts = &shared.block().bulk;
        Ok(Self {
            counts,
            slots: shared.at(BULK),
            // Relaxed: only this side stores `head`; Acquire: as in `recv_some`.
            head: counts.head.load(Ordering::Relaxed),
            tail_cache: counts.tail.load(Ordering::Acquire),
            buf: vec![0; LARGE],
        })
    }
}

impl Sink for BulkSink<'_> {
    #[inline]
    fn recv_some(&mut self, check: &mut Check) -> Result<u64> {
        if self.head == self.tail_cache {
            // Acquire: the slots the producer published are visible.
            self.tail_cache = self.counts.tail.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return Ok(0);
            }
        }
        let slot = bulk_slot(self.slots, self.head);
        // SAFETY: the slot is LARGE bytes of the shared mapping, inside
        // [head, tail): published by the Acquire load above, left alone by the
        // producer until our Release store below frees it.
        unsafe { std::ptr::copy_nonoverlapping(slot.as_ptr(), self.buf.as_mut_ptr(), LARGE) };
        self.head += 1;
        // Release: our copy happens before the producer reuses the slot.
        self.counts.head.store(self.head, Ordering::Release);
        check.check(&self.buf)?;
        Ok(1)
    }
}
