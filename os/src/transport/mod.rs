//! One message API over every transport: [`MessageSender`] and [`MessageReceiver`].
//!
//! The shared-memory channels ([`Sender`](crate::Sender), [`Receiver`](crate::Receiver))
//! implement them, and so does each fallback transport, so code written against the
//! traits (or against `Box<dyn MessageSender + Send>`) switches method without
//! change. Every transport keeps message boundaries, checks the largest message at
//! the call ([`Error::MessageTooLarge`]), and reports a peer that has gone as
//! [`Error::Disconnected`]. [`connect_sender`] and [`listen`] pick the transport
//! from an address string ([`Address`]); each transport can also be used through
//! its own types, in its module.
//!
//! | method | module, address | seed method | direction | scope | message or stream | largest message |
//! |---|---|---|---|---|---|---|
//! | shared-memory ring | [`ChannelBuilder::shm`](crate::ChannelBuilder::shm), [`memfd`](crate::ChannelBuilder::memfd); `shm:name` | shared memory | one-way (a channel each way for duplex) | same machine | message | capacity / 2 − 8 (32 760 in the 64 KiB default ring) |
//! | file-backed ring | [`ChannelBuilder::file`](crate::ChannelBuilder::file); `file:/path` | memory-mapped file | one-way | same machine | message | as above |
//! | Unix stream socket | [`unix`]; `unix:/path` | socket | duplex | same machine | stream, length-framed | [`DEFAULT_MAX_MESSAGE_LEN`] (1 MiB), settable up to 4 GiB − 1 |
//! | Unix seqpacket socket | [`seqpacket`]; `seqpacket:/path` | socket | duplex | same machine | message | `SO_SNDBUF` − 32 (212 960 by default) |
//! | TCP | [`tcp`]; `tcp://host:port` | socket | duplex | another host | stream, length-framed | 1 MiB, settable |
//! | anonymous pipe | [`pipe`] (no address) | pipe | one-way; [`pipe::spawn`] makes two for duplex | parent and child | stream, length-framed | 1 MiB, settable |
//! | named pipe | [`fifo`]; `fifo:/path` | named pipe | one-way | same machine | stream, length-framed | 1 MiB, settable |
//! | POSIX message queue | [`mq`]; `mq:name` | message queue | one-way | same machine | message | `mq_msgsize` (8192 by default, up to `/proc/sys/fs/mqueue/msgsize_max`) |
//!
//! What survives a peer's death (SIGKILL): every transport delivers every
//! *committed* message, then `Disconnected`. A message is committed when the send
//! call that sent it returned, with two refinements: on the stream transports
//! (Unix stream, TCP, pipes, FIFOs) a message the kernel took only part of is
//! accepted but committed only once its last byte is written (a blocking `send`
//! always returns with it written; see `pending_len` on their senders); and on TCP
//! a committed message is in the *local* kernel, delivered unless the connection
//! is reset or the network fails. Each module says more.
//!
//! ```no_run
//! use shmring::transport::{connect_sender, listen};
//! # fn main() -> shmring::Result<()> {
//! // Receiver: "unix:/tmp/a.sock", "tcp://127.0.0.1:9000", "mq:jobs", "shm:jobs", ...
//! let mut listener = listen("mq:jobs")?;
//! // Sender, in another process:
//! let mut tx = connect_sender("mq:jobs")?;
//! tx.send(b"job 1")?;
//! // Receiver:
//! let mut rx = listener.accept()?;
//! let job = rx.recv_vec_deadline(None)?;
//! # Ok(()) }
//! ```

pub mod address;
pub mod fifo;
pub mod mq;
pub mod pipe;
pub mod seqpacket;
pub(crate) mod stream;
pub(crate) mod sys;
pub mod tcp;
pub mod unix;

pub use address::{Address, Listener, connect_sender, connect_sender_timeout, listen};

/// The default largest message of the length-framed transports (Unix stream
/// sockets, TCP, pipes, FIFOs): 1 MiB. Each end can set its own
/// (`with_max_message_len`); a receiver refuses a longer frame
/// ([`Error::FrameTooLong`]), which bounds what a peer can make it allocate.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1 << 20;

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

impl MessageSender for crate::Sender {
    fn max_message_len(&self) -> usize {
        crate::Sender::max_message_len(self)
    }
    fn try_send(&mut self, message: &[u8]) -> Result<()> {
        crate::Sender::try_send(self, message)
    }
    fn send_deadline(&mut self, message: &[u8], deadline: Option<Instant>) -> Result<()> {
        crate::Sender::send_deadline(self, message, deadline)
    }
}

impl MessageReceiver for crate::Receiver {
    fn max_message_len(&self) -> usize {
        crate::Receiver::max_message_len(self)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        crate::Receiver::try_recv(self, buf)
    }
    fn recv_deadline(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        crate::Receiver::recv_deadline(self, buf, deadline)
    }
    fn recv_vec_deadline(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let message = match deadline {
            None => self.read()?,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.read_timeout(left)?
            }
        };
        let bytes = message.to_vec();
        message.release();
        Ok(bytes)
    }
}
