//! The message API every endpoint kind and transport offers: [`MessageSender`]
//! and [`MessageReceiver`] (the table of implementations is in
//! [`transport`](crate::transport)). Below the kinds: each kind implements the
//! traits in its own module, and `transport`, `connection` and `rpc` build on them.

use std::time::{Duration, Instant};

#[allow(unused_imports, reason = "named by the doc links")]
use crate::error::Error;
use crate::error::Result;

/// The sending half of a message transport.
pub trait MessageSender {
    /// The largest message this transport carries.
    fn max_message_len(&self) -> usize;

    /// Sends `message` if that can be done now without blocking.
    ///
    /// # Errors
    /// [`Error::Full`] when it would block; [`Error::MessageTooLarge`];
    /// [`Error::Disconnected`] when the receiver has gone; others per transport.
    fn try_send(&mut self, message: &[u8]) -> Result<()>;

    /// Sends `message`, waiting until `deadline` at most (`None`: no limit).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), [`Error::TimedOut`] instead of `Full`.
    fn send_deadline(&mut self, message: &[u8], deadline: Option<Instant>) -> Result<()>;

    /// Sends `message`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline).
    fn send(&mut self, message: &[u8]) -> Result<()> {
        self.send_deadline(message, None)
    }

    /// Sends `message`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline).
    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()> {
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
    /// [`Error::Empty`] when none is there; [`Error::BufferTooSmall`] (the message
    /// stays, where the transport can keep it: see its docs);
    /// [`Error::Disconnected`] when the sender has gone and everything it sent was
    /// received.
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Receives the next message into `buf`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), [`Error::TimedOut`] instead of `Empty`.
    fn recv_deadline(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize>;

    /// Receives the next message into `buf`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_deadline(buf, None)
    }

    /// Receives the next message into `buf`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_deadline(buf, Instant::now().checked_add(timeout))
    }

    /// Receives the next message into a new `Vec`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    fn recv_vec_deadline(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.max_message_len()];
        let n = self.recv_deadline(&mut buf, deadline)?;
        buf.truncate(n);
        Ok(buf)
    }
}
