//! [`Connection`] and its halves: the rings or the framed socket, and the
//! socket kept beside the rings for liveness.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use crate::channel::{Receiver, Sender};
#[allow(unused_imports, reason = "named by the doc links")]
use crate::error::Error;
use crate::error::{RecvTimeoutError, Result, Role, SendTimeoutError, TryRecvError, TrySendError};
use crate::message::{message_receiver, message_sender};
use crate::readiness::{Readiness, Wakeups};
use crate::sys::{self, WriteMode};
use crate::transport::stream::{EndOfStream, FrameReader, FrameWriter};

use super::Transport;
use super::handshake;
use super::watcher::Watcher;
use crate::sys::fdpass;

/// The process at the other end of a Unix-socket connection, as the kernel
/// recorded it at `connect` (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// What the halves of a connection share: the socket (and its watcher).
struct Shared {
    /// Stopped and joined on drop, before the socket closes.
    watcher: Option<Watcher>,
    socket: Arc<OwnedFd>,
    transport: Transport,
    what: String,
    peer: Option<PeerCredentials>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("transport", &self.transport)
            .field("what", &self.what)
            .field("socket", &self.socket.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.stop();
        }
    }
}

/// Runs when a half drops, after its ring end or stream has (field order):
/// tells the peer that this direction is gone.
#[derive(Debug)]
struct HalfClose {
    shared: Arc<Shared>,
    role: Role,
}

impl Drop for HalfClose {
    fn drop(&mut self) {
        let fd = self.shared.socket.as_fd();
        match (self.role, self.shared.transport) {
            // The peer's receiver sees the end of the stream (its watcher, or its
            // frame reader) after everything sent.
            (Role::Sender, _) => sys::shutdown(fd, sys::Shutdown::Write),
            // The peer's sender learns from the byte (its watcher), without
            // waiting for its lock probe. If our sending half shut the socket
            // down already, the write fails; the peer learns when the socket
            // closes.
            (Role::Receiver, Transport::SharedMemory) => {
                let _ = fdpass::send_with_fds(fd, &[handshake::RECEIVER_GONE], &[]);
            }
            (Role::Receiver, _) => sys::shutdown(fd, sys::Shutdown::Read),
        }
    }
}

enum SendInner {
    Ring(Sender),
    Stream(FrameWriter),
}

enum RecvInner {
    Ring(Receiver),
    Stream(FrameReader),
}

/// The sending half of a [`Connection`] ([`Connection::split`]). `Send`: it can
/// live in another thread than the receiving half. Dropping it ends this
/// direction: the peer receives every message sent, then
/// [`Error::Disconnected`].
pub struct ConnectionSender {
    // Field order is drop order: the ring end (or stream) first, then the
    // shutdown that tells the peer.
    inner: SendInner,
    close: HalfClose,
}

/// The receiving half of a [`Connection`] ([`Connection::split`]). `Send`.
/// Dropping it tells the peer, whose sender then gets [`Error::Disconnected`]
/// once the ring (or socket buffer) is full.
pub struct ConnectionReceiver {
    inner: RecvInner,
    close: HalfClose,
}

impl fmt::Debug for ConnectionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSender")
            .field("transport", &self.close.shared.transport)
            .field("what", &self.close.shared.what)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ConnectionReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionReceiver")
            .field("transport", &self.close.shared.transport)
            .field("what", &self.close.shared.what)
            .finish_non_exhaustive()
    }
}

/// A duplex connection to one peer, made by [`connect`](super::connect::connect) or
/// [`Listener::accept`](super::listener::Listener::accept):
/// messages both ways, over shared memory or a socket ([`transport`](Self::transport)).
///
/// Every committed message is delivered in order, once; a peer that closes or
/// dies gives [`Error::Disconnected`] after what it committed. Every blocking call
/// has `_timeout` and `_deadline` variants and a `try_` twin.
/// [`split`](Self::split) gives two halves for two threads.
#[derive(Debug)]
pub struct Connection {
    // Drop order: the sending half first (its shutdown reaches the peer first),
    // then the receiving half, then the shared socket.
    tx: ConnectionSender,
    rx: ConnectionReceiver,
}

impl Connection {
    /// A connection over the rings `outgoing` (we send: `tx`) and `incoming`
    /// (we receive: `rx`), with `fd` watched beside them.
    pub(super) fn over_rings(
        fd: OwnedFd,
        mut tx: Sender,
        mut rx: Receiver,
        outgoing: crate::channel::Channel,
        incoming: crate::channel::Channel,
        what: String,
        peer: Option<PeerCredentials>,
    ) -> Result<Self> {
        let socket = Arc::new(fd);
        let watcher = Watcher::start(Arc::clone(&socket), outgoing, incoming, &what)?;
        tx.set_peer_gone_flag(watcher.peer_receiver_gone());
        rx.set_peer_gone_flag(watcher.peer_sender_gone());
        let shared = Arc::new(Shared {
            watcher: Some(watcher),
            socket,
            transport: Transport::SharedMemory,
            what,
            peer,
        });
        Ok(Self::assemble(
            SendInner::Ring(tx),
            RecvInner::Ring(rx),
            shared,
        ))
    }

    /// A connection whose messages are framed on `fd` itself.
    pub(super) fn over_stream(
        fd: OwnedFd,
        transport: Transport,
        max_message_len: usize,
        what: String,
        peer: Option<PeerCredentials>,
    ) -> Self {
        let socket = Arc::new(fd);
        let writer = FrameWriter::new(
            Arc::clone(&socket),
            WriteMode::Socket,
            max_message_len,
            what.clone(),
        );
        let reader = FrameReader::new(
            Arc::clone(&socket),
            EndOfStream::Eof,
            max_message_len,
            what.clone(),
        );
        let shared = Arc::new(Shared {
            watcher: None,
            socket,
            transport,
            what,
            peer,
        });
        Self::assemble(SendInner::Stream(writer), RecvInner::Stream(reader), shared)
    }

    fn assemble(tx: SendInner, rx: RecvInner, shared: Arc<Shared>) -> Self {
        Self {
            tx: ConnectionSender {
                inner: tx,
                close: HalfClose {
                    shared: Arc::clone(&shared),
                    role: Role::Sender,
                },
            },
            rx: ConnectionReceiver {
                inner: rx,
                close: HalfClose {
                    shared,
                    role: Role::Receiver,
                },
            },
        }
    }

    /// What the messages travel on.
    pub fn transport(&self) -> Transport {
        self.tx.transport()
    }

    /// The peer's socket path or address, for messages.
    pub fn describe(&self) -> &str {
        self.tx.describe()
    }

    /// The peer process's credentials (Unix socket connections only).
    pub fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.tx.close.shared.peer
    }

    /// The largest message, in either direction (the same on every transport:
    /// half the ring capacity less 8 bytes).
    pub fn max_message_len(&self) -> usize {
        self.tx.max_message_len()
    }

    /// Splits into halves that can be used from two threads.
    pub fn split(self) -> (ConnectionSender, ConnectionReceiver) {
        (self.tx, self.rx)
    }

    /// The receiving half's readiness descriptor
    /// ([`ConnectionReceiver::readiness_fd`]); the sending half's is
    /// [`send_readiness_fd`](Self::send_readiness_fd).
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.rx.readiness_fd()
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for the next message
    /// ([`ConnectionReceiver::arm_for_message`]).
    ///
    /// # Errors
    /// As [`ConnectionReceiver::arm_for_message`].
    pub fn arm_for_message(&mut self) -> Result<Readiness> {
        self.rx.arm_for_message()
    }

    /// The sending half's readiness descriptor
    /// ([`ConnectionSender::readiness_fd`]).
    pub fn send_readiness_fd(&self) -> BorrowedFd<'_> {
        self.tx.readiness_fd()
    }

    /// Arms [`send_readiness_fd`](Self::send_readiness_fd) for room for `len`
    /// bytes ([`ConnectionSender::arm_for_space`]).
    ///
    /// # Errors
    /// As [`ConnectionSender::arm_for_space`].
    pub fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        self.tx.arm_for_space(len)
    }

    /// How the receiving half's descriptor is woken.
    pub fn wakeups(&self) -> &Wakeups {
        self.rx.wakeups()
    }

    /// Sends `message` if that can be done now.
    ///
    /// # Errors
    /// As [`ConnectionSender::try_send`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), TrySendError> {
        self.tx.try_send(message)
    }

    /// Sends `message`, waiting for room until `deadline` at most (`None`: as
    /// long as it takes).
    ///
    /// # Errors
    /// As [`ConnectionSender::send_deadline`].
    pub fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        self.tx.send_deadline(message, deadline)
    }

    /// Receives the next message into `buf` if one is there now.
    ///
    /// # Errors
    /// As [`ConnectionReceiver::try_recv`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        self.rx.try_recv(buf)
    }

    /// Receives the next message into `buf`, waiting until `deadline` at most
    /// (`None`: as long as it takes).
    ///
    /// # Errors
    /// As [`ConnectionReceiver::recv_deadline`].
    pub fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        self.rx.recv_deadline(buf, deadline)
    }
}

impl ConnectionSender {
    /// What the messages travel on.
    pub fn transport(&self) -> Transport {
        self.close.shared.transport
    }

    /// The peer's socket path or address, for messages.
    pub fn describe(&self) -> &str {
        &self.close.shared.what
    }

    /// The largest message.
    pub fn max_message_len(&self) -> usize {
        match &self.inner {
            SendInner::Ring(tx) => tx.max_message_len(),
            SendInner::Stream(w) => w.max_message_len(),
        }
    }

    /// Sends `message` if that can be done now; never blocks. Over a socket, a
    /// message the kernel took only in part is accepted, and its tail written
    /// before anything else (as [`transport::unix`](crate::transport::unix)).
    ///
    /// # Errors
    /// [`TrySendError::Full`](crate::error::TrySendError::Full); [`TrySendError::MessageTooLarge`](crate::error::TrySendError::MessageTooLarge); [`TrySendError::Disconnected`](crate::error::TrySendError::Disconnected) when
    /// the peer has gone (on shared memory: when the ring is full and the peer's
    /// receiver has gone); [`TrySendError::Corrupted`](crate::error::TrySendError::Corrupted) (a ring a hostile peer damaged);
    /// [`TrySendError::Io`](crate::error::TrySendError::Io).
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), TrySendError> {
        match &mut self.inner {
            SendInner::Ring(tx) => tx.try_send(message),
            SendInner::Stream(w) => w.try_send(message).map_err(TrySendError::from_error),
        }
    }

    /// Sends `message`, waiting for room until `deadline` at most (`None`: as
    /// long as it takes).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), [`SendTimeoutError::TimedOut`](crate::error::SendTimeoutError::TimedOut) instead of `Full`.
    pub fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        match &mut self.inner {
            SendInner::Ring(tx) => tx.send_deadline(message, deadline),
            SendInner::Stream(w) => w
                .send_deadline(message, deadline)
                .map_err(SendTimeoutError::from_error),
        }
    }
}

impl ConnectionSender {
    /// The readiness descriptor for room ([`Sender::readiness_fd`] over shared
    /// memory). Over a socket it is the socket itself: poll it for
    /// *writability* (`POLLOUT`) after [`TrySendError::Full`](crate::error::TrySendError::Full).
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            SendInner::Ring(tx) => tx.readiness_fd(),
            SendInner::Stream(w) => w.fd().as_fd(),
        }
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for room for `len` bytes
    /// ([`Sender::arm_for_space`]). Over a socket: [`Readiness::Ready`] (try the
    /// send; if it says `Full`, poll the socket for writability).
    ///
    /// # Errors
    /// As [`Sender::arm_for_space`].
    pub fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        match &mut self.inner {
            SendInner::Ring(tx) => tx.arm_for_space(len),
            SendInner::Stream(_) => Ok(Readiness::Ready),
        }
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken (over a socket: by the
    /// kernel, as a doorbell).
    pub fn wakeups(&self) -> &Wakeups {
        match &self.inner {
            SendInner::Ring(tx) => tx.wakeups(),
            SendInner::Stream(_) => &Wakeups::Doorbell,
        }
    }
}

impl ConnectionReceiver {
    /// The readiness descriptor ([`Receiver::readiness_fd`] over shared memory;
    /// the socket itself over a socket): readable, once armed, when a message
    /// arrives or the peer goes.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            RecvInner::Ring(rx) => rx.readiness_fd(),
            RecvInner::Stream(r) => r.fd().as_fd(),
        }
    }

    /// Arms [`readiness_fd`](Self::readiness_fd) for the next message
    /// ([`Receiver::arm_for_message`]); over a socket, [`Readiness::Ready`] if a
    /// whole message (or the end) is buffered already, else
    /// [`Readiness::Armed`].
    ///
    /// # Errors
    /// As [`Receiver::arm_for_message`].
    pub fn arm_for_message(&mut self) -> Result<Readiness> {
        match &mut self.inner {
            RecvInner::Ring(rx) => rx.arm_for_message(),
            RecvInner::Stream(r) if r.has_frame() => Ok(Readiness::Ready),
            RecvInner::Stream(_) => Ok(Readiness::Armed),
        }
    }

    /// How [`readiness_fd`](Self::readiness_fd) is woken.
    pub fn wakeups(&self) -> &Wakeups {
        match &self.inner {
            RecvInner::Ring(rx) => rx.wakeups(),
            RecvInner::Stream(_) => &Wakeups::Doorbell,
        }
    }

    /// What the messages travel on.
    pub fn transport(&self) -> Transport {
        self.close.shared.transport
    }

    /// The peer's socket path or address, for messages.
    pub fn describe(&self) -> &str {
        &self.close.shared.what
    }

    /// The largest message.
    pub fn max_message_len(&self) -> usize {
        match &self.inner {
            RecvInner::Ring(rx) => rx.max_message_len(),
            RecvInner::Stream(r) => r.max_message_len(),
        }
    }

    /// Receives the next message into `buf` if one is there now; returns its
    /// length. Never blocks.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`](crate::error::TryRecvError::Empty); [`TryRecvError::Disconnected`](crate::error::TryRecvError::Disconnected) once the peer has gone and every
    /// message it committed was received; [`TryRecvError::BufferTooSmall`](crate::error::TryRecvError::BufferTooSmall) (the message
    /// stays); [`TryRecvError::Corrupted`](crate::error::TryRecvError::Corrupted) or [`TryRecvError::FrameTooLong`](crate::error::TryRecvError::FrameTooLong) (a hostile peer);
    /// [`TryRecvError::Io`](crate::error::TryRecvError::Io).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        match &mut self.inner {
            RecvInner::Ring(rx) => rx.try_recv(buf),
            RecvInner::Stream(r) => r.try_recv(buf).map_err(TryRecvError::from_error),
        }
    }

    /// Receives the next message into `buf`, waiting until `deadline` at most
    /// (`None`: as long as it takes); returns its length.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), [`RecvTimeoutError::TimedOut`](crate::error::RecvTimeoutError::TimedOut) instead of `Empty`.
    pub fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        match &mut self.inner {
            RecvInner::Ring(rx) => rx.recv_deadline(buf, deadline),
            RecvInner::Stream(r) => r
                .recv_deadline(buf, deadline)
                .map_err(RecvTimeoutError::from_error),
        }
    }
}

message_sender!(ConnectionSender);

message_receiver!(ConnectionReceiver {
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvTimeoutError> {
        match &mut self.inner {
            RecvInner::Ring(rx) => rx.recv_vec_deadline(deadline),
            RecvInner::Stream(r) => r
                .recv_vec_deadline(deadline)
                .map_err(RecvTimeoutError::from_error),
        }
    }
});

message_sender!(Connection);

message_receiver!(duplex Connection {
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvTimeoutError> {
        self.rx.recv_vec_deadline(deadline)
    }
});
