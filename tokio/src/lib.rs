//! Async send and receive on [tokio] for every shmring endpoint: the
//! shared-memory channels (SPSC, MPMC), broadcast publishers and subscribers,
//! connections and every transport (Unix and TCP sockets, pipes, FIFOs,
//! message queues); and async waits on events and semaphores.
//!
//! [`AsyncReceiver`] and [`AsyncSender`] wrap any endpoint that implements
//! [`ReceiveReadiness`] or [`SendReadiness`], [`AsyncWaiter`] an
//! [`EventWaiter`] or a [`SemaphoreWaiter`] ([`ConditionReadiness`]), and wait
//! on its readiness
//! descriptor (a doorbell, or the transport's own) through tokio's
//! [`AsyncFd`]: no thread per endpoint, no polling, and a peer's death wakes
//! a waiting call at once (the doorbell hangs up), which then returns
//! `Disconnected`.
//!
//! ```no_run
//! use shmring::ChannelBuilder;
//! use shmring_tokio::AsyncReceiver;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = ChannelBuilder::shm("ticks").open()?;
//! let mut rx = AsyncReceiver::new(channel.receiver()?)?;
//! let mut buf = vec![0u8; rx.get_ref().max_message_len()];
//! loop {
//!     let len = rx.recv(&mut buf).await?;
//!     println!("{:?}", &buf[..len]);
//! }
//! # }
//! ```
//!
//! # Cancellation
//! Both calls are cancellation-safe: a message is taken (or sent) only inside
//! one poll of the future, which then completes; a future dropped at its await
//! (in `tokio::select!`, by a timeout) has taken nothing and holds no slot.
//!
//! # Spinning
//! [`AsyncReceiver::spin`] makes a receive try again for a while before it arms
//! and yields: a message that comes within that time is taken without the two
//! system calls of a wake-up (the doorbell's write and the reactor's
//! `epoll_wait`), at the cost of that much CPU time of the runtime's thread per
//! receive that finds nothing (a spin keeps the thread: nothing else runs on it
//! meanwhile). The default is no spin.
//!
//! # How it waits
//! Every endpoint follows one loop ([`ReceiveReadiness`]): try; on `Empty`,
//! arm; if armed, await the descriptor's readiness, clear it, and try again.
//! tokio's readiness is edge-triggered: a readiness is cleared only after it
//! was awaited and before the next try, so that a ring after the arming (which
//! drained the doorbell) is never cleared unseen.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use shmring::{
    ConditionReadiness, Error, EventWaiter, Interest, IoFailure, Readiness, ReceiveReadiness,
    RecvError, SemaphoreWaiter, SendError, SendReadiness, TryRecvError, TrySendError,
};
use tokio::io::Interest as TokioInterest;
use tokio::io::unix::AsyncFd;

/// Registers a duplicate of `fd` with the current runtime's reactor for
/// `interest`: the duplicate is ours alone, so it stays open and the same for
/// the registration's life whatever is done with the endpoint.
fn register(fd: BorrowedFd<'_>, interest: TokioInterest) -> Result<AsyncFd<OwnedFd>, Error> {
    let duplicate = fd
        .try_clone_to_owned()
        .map_err(|e| Error::from(reactor_failure("fcntl(F_DUPFD_CLOEXEC)", e)))?;
    // SAFETY: `duplicate` is a valid open descriptor that the `AsyncFd` owns
    // and never hands out: it stays open and refers to the same description
    // until the `AsyncFd` is dropped, and its `as_raw_fd` never changes.
    unsafe { AsyncFd::register_with_interest(duplicate, interest) }
        .map_err(|e| Error::from(reactor_failure("AsyncFd::register", e.into_parts().1)))
}

/// An I/O failure of the reactor (registering or awaiting the descriptor).
fn reactor_failure(op: &'static str, source: io::Error) -> Box<IoFailure> {
    Box::new(IoFailure {
        op,
        what: "the tokio reactor".to_owned(),
        source,
    })
}

/// A receiver whose receives are awaited.
///
/// It waits on a duplicate of the endpoint's readiness descriptor, taken at
/// [`new`](Self::new): do not replace the endpoint through
/// [`get_mut`](Self::get_mut) (a receive would wait on the old one's).
pub struct AsyncReceiver<R: ReceiveReadiness> {
    rx: R,
    fd: AsyncFd<OwnedFd>,
    spin: Duration,
}

impl<R: ReceiveReadiness> fmt::Debug for AsyncReceiver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncReceiver")
            .field("fd", &self.fd.as_raw_fd())
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

impl<R: ReceiveReadiness> AsyncReceiver<R> {
    /// Registers `rx`'s readiness descriptor with the current runtime's
    /// reactor.
    ///
    /// # Errors
    /// [`Error::Io`] if registering fails.
    ///
    /// # Panics
    /// Outside a tokio runtime (as [`AsyncFd::new`]), or in one built without
    /// I/O enabled.
    pub fn new(rx: R) -> Result<Self, Error> {
        let fd = register(rx.readiness_fd(), TokioInterest::READABLE)?;
        Ok(Self {
            rx,
            fd,
            spin: Duration::ZERO,
        })
    }

    /// Tries again for up to `spin` before arming and yielding (see the
    /// crate's docs for the cost); zero, the default, arms at once.
    #[must_use]
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// Cancellation-safe: dropped before it completes, it has taken nothing.
    ///
    /// # Errors
    /// As the endpoint's `recv`: [`RecvError::Disconnected`] once the sender
    /// has gone and everything it sent was received,
    /// [`RecvError::BufferTooSmall`], [`RecvError::Lagged`] (a lossy
    /// subscriber), [`RecvError::Corrupted`], [`RecvError::Io`] (the
    /// endpoint's, or the reactor's).
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        if let Some(done) = self.spin_for_message(buf) {
            return done;
        }
        loop {
            match self.rx.try_recv(buf) {
                Ok(len) => return Ok(len),
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(Error::from(e).into()),
            }
            if self.rx.arm_for_message()? == Readiness::Ready {
                continue;
            }
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| RecvError::Io(reactor_failure("readable", e)))?;
            guard.clear_ready();
        }
    }

    /// Receives the next message into a new `Vec` of its length.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), without `BufferTooSmall`.
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>, RecvError> {
        let mut buf = vec![0u8; self.get_ref().max_message_len()];
        let len = self.recv(&mut buf).await?;
        buf.truncate(len);
        Ok(buf)
    }

    /// The spin before arming: `Some` with the outcome if it found one.
    fn spin_for_message(&mut self, buf: &mut [u8]) -> Option<Result<usize, RecvError>> {
        if self.spin.is_zero() {
            return None;
        }
        let until = Instant::now() + self.spin;
        loop {
            match self.rx.try_recv(buf) {
                Ok(len) => return Some(Ok(len)),
                Err(TryRecvError::Empty) => {}
                Err(e) => return Some(Err(Error::from(e).into())),
            }
            if Instant::now() >= until {
                return None;
            }
            std::hint::spin_loop();
        }
    }

    /// The endpoint.
    pub fn get_ref(&self) -> &R {
        &self.rx
    }

    /// The endpoint, for its own calls (a `try_recv` of its own is fine).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.rx
    }

    /// Deregisters the descriptor and gives the endpoint back.
    pub fn into_inner(self) -> R {
        self.rx
    }
}

/// A sender whose sends are awaited when there is no room.
///
/// As [`AsyncReceiver`], it waits on a duplicate of the endpoint's descriptor:
/// do not replace the endpoint through [`get_mut`](Self::get_mut).
pub struct AsyncSender<S: SendReadiness> {
    tx: S,
    fd: AsyncFd<OwnedFd>,
    interest: Interest,
}

impl<S: SendReadiness> fmt::Debug for AsyncSender<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSender")
            .field("fd", &self.fd.as_raw_fd())
            .field("interest", &self.interest)
            .finish_non_exhaustive()
    }
}

impl<S: SendReadiness> AsyncSender<S> {
    /// Registers `tx`'s descriptor for room with the current runtime's
    /// reactor.
    ///
    /// # Errors
    /// [`Error::Io`] if registering fails.
    ///
    /// # Panics
    /// Outside a tokio runtime, or in one built without I/O enabled.
    pub fn new(tx: S) -> Result<Self, Error> {
        let interest = tx.send_interest();
        let tokio_interest = match interest {
            Interest::Readable => TokioInterest::READABLE,
            Interest::Writable => TokioInterest::WRITABLE,
        };
        let fd = register(tx.send_readiness_fd(), tokio_interest)?;
        Ok(Self { tx, fd, interest })
    }

    /// Sends `message`, waiting for room as long as it takes.
    ///
    /// Cancellation-safe: dropped before it completes, it has sent nothing. (On
    /// a stream transport, as with its `try_send`, a message the kernel took
    /// only part of is sent: its tail goes with the next send.)
    ///
    /// # Errors
    /// As the endpoint's `send`: [`SendError::Disconnected`],
    /// [`SendError::MessageTooLarge`], [`SendError::Corrupted`],
    /// [`SendError::Io`] (the endpoint's, or the reactor's).
    pub async fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        loop {
            match self.tx.try_send(message) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full { .. }) => {}
                Err(e) => return Err(Error::from(e).into()),
            }
            if self.tx.arm_for_space(message.len())? == Readiness::Ready {
                continue;
            }
            let awaited = match self.interest {
                Interest::Readable => self.fd.readable().await,
                Interest::Writable => self.fd.writable().await,
            };
            let mut guard = awaited.map_err(|e| SendError::Io(reactor_failure("ready", e)))?;
            guard.clear_ready();
        }
    }

    /// The endpoint.
    pub fn get_ref(&self) -> &S {
        &self.tx
    }

    /// The endpoint, for its own calls.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.tx
    }

    /// Deregisters the descriptor and gives the endpoint back.
    pub fn into_inner(self) -> S {
        self.tx
    }
}

/// An event's or a semaphore's waiter whose waits are awaited
/// ([`notified`](AsyncWaiter::notified) for an [`EventWaiter`],
/// [`acquire`](AsyncWaiter::acquire) for a [`SemaphoreWaiter`], or
/// [`take`](Self::take) for either).
///
/// As [`AsyncReceiver`], it waits on a duplicate of the waiter's descriptor:
/// do not replace the waiter through [`get_mut`](Self::get_mut).
pub struct AsyncWaiter<W: ConditionReadiness> {
    waiter: W,
    fd: AsyncFd<OwnedFd>,
}

impl<W: ConditionReadiness> fmt::Debug for AsyncWaiter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncWaiter")
            .field("fd", &self.fd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl<W: ConditionReadiness> AsyncWaiter<W> {
    /// Registers the waiter's readiness descriptor with the current runtime's
    /// reactor.
    ///
    /// # Errors
    /// [`Error::Io`] if registering fails.
    ///
    /// # Panics
    /// Outside a tokio runtime, or in one built without I/O enabled.
    pub fn new(waiter: W) -> Result<Self, Error> {
        let fd = register(waiter.readiness_fd(), TokioInterest::READABLE)?;
        Ok(Self { waiter, fd })
    }

    /// Waits until the condition holds and takes what it offers (an event's
    /// notification past the waiter's key; a semaphore's unit).
    ///
    /// Cancellation-safe: the take happens inside one poll, which then
    /// completes; dropped before, it has taken nothing (and the waiter's
    /// registration with the process's `shmring-objects` thread is replaced
    /// at the next arming, or withdrawn when the waiter drops).
    ///
    /// # Errors
    /// [`Error::Corrupted`] (a semaphore's count out of range), [`Error::Io`]
    /// (the waiter's, or the reactor's).
    pub async fn take(&mut self) -> Result<(), Error> {
        loop {
            if self.waiter.try_take()? {
                return Ok(());
            }
            if self.waiter.arm()? == Readiness::Ready {
                continue;
            }
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| Error::from(reactor_failure("readable", e)))?;
            guard.clear_ready();
        }
    }

    /// The waiter.
    pub fn get_ref(&self) -> &W {
        &self.waiter
    }

    /// The waiter, for its own calls.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.waiter
    }

    /// Deregisters the descriptor and gives the waiter back.
    pub fn into_inner(self) -> W {
        self.waiter
    }
}

impl AsyncWaiter<EventWaiter> {
    /// Waits for a notification made after the waiter's key (at once if one
    /// was made already); the key then moves on ([`take`](Self::take)).
    ///
    /// # Errors
    /// As [`take`](Self::take).
    pub async fn notified(&mut self) -> Result<(), Error> {
        self.take().await
    }
}

impl AsyncWaiter<SemaphoreWaiter> {
    /// Takes one unit, waiting while the count is zero ([`take`](Self::take)).
    ///
    /// # Errors
    /// As [`take`](Self::take).
    pub async fn acquire(&mut self) -> Result<(), Error> {
        self.take().await
    }
}
