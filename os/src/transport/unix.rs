//! Unix domain stream sockets: messages framed on a byte stream, between processes
//! of one machine.
//!
//! A [`UnixListener`] binds a path (created `0600`, removed when the listener is
//! dropped) and accepts peers; [`connect`] opens a connection to one. A connection
//! is duplex: it comes as a [`UnixSender`] and a [`UnixReceiver`], which can live
//! in different threads; drop the one you do not need (dropping a half shuts its
//! direction down, so the peer sees the end of that direction at once).
//!
//! ```no_run
//! use shmring::transport::unix::{UnixListener, connect};
//! # fn main() -> shmring::Result<()> {
//! // Process A
//! let listener = UnixListener::bind("/run/user/1000/orders.sock")?;
//! let (_, mut rx) = listener.accept()?;
//! // Process B
//! let (mut tx, _) = connect("/run/user/1000/orders.sock")?;
//! tx.send(b"buy 100")?;
//! // Process A
//! let mut buf = vec![0u8; rx.max_message_len()];
//! let n = rx.recv(&mut buf)?;
//! # Ok(()) }
//! ```
//!
//! **Framing.** Each message is a 4-byte little-endian length and its bytes. A
//! receive buffer too small for the next message gets
//! [`Error::BufferTooSmall`](crate::error::Error::BufferTooSmall) and the message stays in
//! the receiver's own buffer for the next call: nothing is lost. A message the
//! kernel takes only part of (larger than the room in the socket buffer) is
//! *accepted*: its tail is kept by the sender and written before anything else
//! ([`UnixSender::pending_len`], [`UnixSender::flush`]).
//!
//! **Committed:** a message is committed when its whole frame is in the kernel:
//! when a blocking `send` returned, or a `try_send` or `send_deadline` returned
//! with [`pending_len`](UnixSender::pending_len) 0 (or a later call wrote the
//! tail). A Unix socket hands the bytes straight to the peer's receive queue: a
//! committed message is delivered even if the sender dies right after; the rest of
//! a partly written frame dies with it, and the receiver drops the truncated frame.
//!
//! **Liveness.** The end of the stream (the peer closed the socket, or died: the
//! kernel closes it) is [`Error::Disconnected`](crate::error::Error::Disconnected) after
//! every complete message; a sender gets it from `EPIPE`/`ECONNRESET`. Sends use
//! `MSG_NOSIGNAL`: no `SIGPIPE`.
//!
//! **Permissions.** The socket file is `0600`: only this uid (and root) may
//! connect; another uid gets [`Error::PermissionDenied`](crate::error::Error::PermissionDenied).
//! `bind` creates the file with `0777` less the umask, and the umask is
//! process-wide (setting it around `bind` would race with other threads). So the
//! listener binds, `chmod`s the file to `0600` (through an `O_PATH` descriptor,
//! after checking it is the socket just made and ours), and only then calls
//! `listen`: until `listen` every `connect` is refused (`ECONNREFUSED`), so the
//! short window under the umask's mode lets nobody in, and from then on the kernel
//! checks write permission on the file at each `connect`. (Linux also honours an
//! `fchmod` of the socket before `bind`, which is done as well; it is not
//! documented behaviour, so it is not relied on.)
//! Paths are limited to 107 bytes (`sun_path` holds 108 with the NUL); a longer one
//! is [`Error::InvalidAddress`](crate::error::Error::InvalidAddress).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::blocking::deadline_after;
use crate::error::Result;
use crate::sys::{self, UnixListenerFd, WriteMode};
use crate::transport::DEFAULT_MAX_MESSAGE_LEN;
use crate::transport::stream::{
    EndOfStream, FrameReader, FrameWriter, framed_receiver_methods, framed_sender_methods,
};

fn describe(path: &Path) -> String {
    format!("unix socket {}", path.display())
}

/// A listening Unix stream socket at a path. The socket file is created `0600` and
/// removed when the listener is dropped (connections already accepted live on).
#[derive(Debug)]
pub struct UnixListener {
    inner: UnixListenerFd,
    what: String,
}

impl UnixListener {
    /// Binds `path` (which must not exist) and listens.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`](crate::error::Error::InvalidAddress) for a path longer than
    /// 107 bytes, empty, or with a NUL; [`Error::AlreadyExists`](crate::error::Error::AlreadyExists)
    /// if the path exists (a stale socket of a listener that died must be removed
    /// first); [`Error::NotFound`](crate::error::Error::NotFound) if its directory does not
    /// exist; [`Error::PermissionDenied`](crate::error::Error::PermissionDenied);
    /// [`Error::Io`](crate::error::Error::Io).
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let what = describe(path);
        let inner = UnixListenerFd::bind(path, sys::SocketType::STREAM, &what)?;
        Ok(Self { inner, what })
    }

    /// The path the listener is bound to.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// Accepts one peer, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Io`](crate::error::Error::Io).
    pub fn accept(&self) -> Result<(UnixSender, UnixReceiver)> {
        self.accept_deadline(None)
    }

    /// As [`accept`](Self::accept), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and [`Error::TimedOut`](crate::error::Error::TimedOut).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(UnixSender, UnixReceiver)> {
        self.accept_deadline(deadline_after(timeout))
    }

    /// As [`accept`](Self::accept), giving up at `deadline` (`None`: never).
    ///
    /// # Errors
    /// As [`accept_timeout`](Self::accept_timeout).
    pub fn accept_deadline(&self, deadline: Option<Instant>) -> Result<(UnixSender, UnixReceiver)> {
        let fd = self.inner.accept(deadline, &self.what)?;
        Ok(halves(fd, self.what.clone()))
    }
}

/// Connects to the listener at `path`.
///
/// # Errors
/// [`Error::InvalidAddress`](crate::error::Error::InvalidAddress) (as for
/// [`UnixListener::bind`]); [`Error::NotFound`](crate::error::Error::NotFound) if nothing
/// is at the path; [`Error::ConnectionRefused`](crate::error::Error::ConnectionRefused) if
/// no listener is (a stale socket file, or not a socket);
/// [`Error::PermissionDenied`](crate::error::Error::PermissionDenied) for another uid's
/// socket; [`Error::Io`](crate::error::Error::Io).
pub fn connect(path: impl AsRef<Path>) -> Result<(UnixSender, UnixReceiver)> {
    let path = path.as_ref();
    let what = describe(path);
    let fd = sys::unix_connect(path, sys::SocketType::STREAM, &what, |_| Ok(()))?;
    Ok(halves(fd, what))
}

fn halves(fd: OwnedFd, what: String) -> (UnixSender, UnixReceiver) {
    let fd = Arc::new(fd);
    (
        UnixSender {
            writer: FrameWriter::new(
                Arc::clone(&fd),
                WriteMode::Socket,
                DEFAULT_MAX_MESSAGE_LEN,
                what.clone(),
            ),
        },
        UnixReceiver {
            reader: FrameReader::new(fd, EndOfStream::Eof, DEFAULT_MAX_MESSAGE_LEN, what),
        },
    )
}

/// The sending half of a Unix stream connection. Dropping it shuts the direction
/// down (`shutdown(SHUT_WR)`): the peer's receiver gets every message, then
/// `Disconnected`.
#[derive(Debug)]
pub struct UnixSender {
    writer: FrameWriter,
}

framed_sender_methods!(UnixSender);

impl UnixSender {
    /// The socket path of the connection.
    pub fn describe(&self) -> &str {
        self.writer.what()
    }
}

impl Drop for UnixSender {
    fn drop(&mut self) {
        // Runs before the writer's own drop: write what the kernel takes of a
        // pending tail first.
        let _ = self.writer.flush_deadline(Some(Instant::now()));
        sys::shutdown(self.writer.fd().as_fd(), sys::Shutdown::Write);
    }
}

/// The receiving half of a Unix stream connection. Dropping it shuts the direction
/// down (`shutdown(SHUT_RD)`): the peer's sender gets `Disconnected`.
#[derive(Debug)]
pub struct UnixReceiver {
    reader: FrameReader,
}

framed_receiver_methods!(UnixReceiver);

impl UnixReceiver {
    /// The socket path of the connection.
    pub fn describe(&self) -> &str {
        self.reader.what()
    }
}

impl Drop for UnixReceiver {
    fn drop(&mut self) {
        sys::shutdown(self.reader.fd().as_fd(), sys::Shutdown::Read);
    }
}
