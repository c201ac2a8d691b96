//! The message API every endpoint kind and transport offers: [`MessageSender`]
//! and [`MessageReceiver`] (the table of implementations is in
//! [`transport`](crate::transport)). Below the kinds: each kind implements the
//! traits in its own module, and `transport`, `connection` and `rpc` build on them.
//!
//! Every implementation returns the same per-operation errors
//! ([`TrySendError`], [`SendTimeoutError`], [`TryRecvError`],
//! [`RecvTimeoutError`] and their untimed twins), each converting into the
//! crate's [`Error`](crate::Error).

use std::time::{Duration, Instant};

use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

/// The sending half of a message transport.
pub trait MessageSender {
    /// The largest message this transport carries.
    fn max_message_len(&self) -> usize;

    /// Sends `message` if that can be done now without blocking.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when it would block;
    /// [`TrySendError::MessageTooLarge`]; [`TrySendError::Disconnected`] when the
    /// receiver has gone; [`TrySendError::Corrupted`] (shared-memory kinds);
    /// [`TrySendError::Io`].
    fn try_send(&mut self, message: &[u8]) -> Result<(), TrySendError>;

    /// Sends `message`, waiting until `deadline` at most (`None`: no limit).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), [`SendTimeoutError::TimedOut`] instead of
    /// `Full`.
    fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError>;

    /// Sends `message`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline), without `TimedOut`.
    fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.send_deadline(message, None)
            .map_err(SendError::untimed)
    }

    /// Sends `message`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline).
    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.send_deadline(message, Instant::now().checked_add(timeout))
    }
}

/// The receiving half of a message transport.
pub trait MessageReceiver {
    /// The largest message this transport carries.
    fn max_message_len(&self) -> usize;

    /// Receives the next message into `buf` if one is there now; returns its length.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when none is there; [`TryRecvError::BufferTooSmall`]
    /// (the message stays, where the transport can keep it: see its docs);
    /// [`TryRecvError::Disconnected`] when the sender has gone and everything it
    /// sent was received; [`TryRecvError::FrameTooLong`] (stream transports);
    /// [`TryRecvError::Corrupted`] (shared-memory kinds); [`TryRecvError::Io`].
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError>;

    /// Receives the next message into `buf`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), [`RecvTimeoutError::TimedOut`] instead of
    /// `Empty`.
    fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError>;

    /// Receives the next message into `buf`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `TimedOut`.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_deadline(buf, None).map_err(RecvError::untimed)
    }

    /// Receives the next message into `buf`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_deadline(buf, Instant::now().checked_add(timeout))
    }

    /// Receives the next message into a new `Vec`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `BufferTooSmall`.
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvTimeoutError> {
        let mut buf = vec![0u8; self.max_message_len()];
        let n = self.recv_deadline(&mut buf, deadline)?;
        buf.truncate(n);
        Ok(buf)
    }
}
