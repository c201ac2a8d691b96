//! Unix domain `SOCK_SEQPACKET` sockets: the kernel keeps message boundaries, no
//! framing; between processes of one machine.
//!
//! The API mirrors [`unix`](super::unix): a [`SeqpacketListener`] binds a path
//! (created `0600`, at most 107 bytes, removed on drop) and accepts peers,
//! [`connect`] opens a connection, and a connection is a [`SeqpacketSender`] and a
//! [`SeqpacketReceiver`].
//!
//! **Largest message:** the kernel refuses a packet longer than the sending
//! socket's `SO_SNDBUF` less 32 bytes: 212 960 bytes with Linux's default
//! `net.core.wmem_default` (212 992). [`SeqpacketSender::with_max_message_len`]
//! raises the socket's buffer for more, within `net.core.wmem_max`.
//!
//! **Receiving.** With a buffer shorter than this end's largest message, a
//! receive first peeks at the next packet's length (`MSG_PEEK | MSG_TRUNC`), so a
//! buffer too small gets [`Error::BufferTooSmall`]
//! and the packet stays queued. A packet of zero bytes is a message; the end of
//! the connection also reads as zero bytes, and the two are told apart by the
//! credentials the kernel attaches to every packet (`SO_PASSCRED` is set on both
//! ends): the end carries none. A receive makes no room for control data, so the
//! kernel flags a packet's credentials as truncated (`MSG_CTRUNC`) instead of
//! writing them, and discards descriptors a peer passes (`SCM_RIGHTS`) without
//! installing them.
//!
//! **Committed:** a message is committed when `send` (or `try_send`) returned: the
//! kernel put the whole packet in the peer's receive queue, where it stays if the
//! sender dies. **Liveness:** the peer's end (closed or died) is
//! [`Error::Disconnected`] after every queued packet;
//! a sender gets it from `EPIPE`/`ECONNRESET` (sends use `MSG_NOSIGNAL`).

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::blocking::deadline_after;
use crate::error::{Error, RecvTimeoutError, Result, Role, SendTimeoutError};
use crate::message::{message_receiver, message_sender};
use rustix::io::Errno;
use rustix::net::sockopt;
use rustix::net::{RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendFlags, SocketType};

use crate::sys::{self, PollFlags, Shutdown, UnixListenerFd};

/// Bytes the kernel keeps of `SO_SNDBUF` for a packet's bookkeeping.
const SNDBUF_OVERHEAD: usize = 32;

fn describe(path: &Path) -> String {
    format!("seqpacket socket {}", path.display())
}

/// A listening `SOCK_SEQPACKET` socket at a path, created `0600` and removed on
/// drop.
#[derive(Debug)]
pub struct SeqpacketListener {
    inner: UnixListenerFd,
    what: String,
}

impl SeqpacketListener {
    /// Binds `path` (which must not exist) and listens.
    ///
    /// # Errors
    /// As [`UnixListener::bind`](super::unix::UnixListener::bind).
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let what = describe(path);
        let inner = UnixListenerFd::bind(path, SocketType::SEQPACKET, &what)?;
        Ok(Self { inner, what })
    }

    /// The path the listener is bound to.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// Accepts one peer, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn accept(&self) -> Result<(SeqpacketSender, SeqpacketReceiver)> {
        self.accept_deadline(None)
    }

    /// As [`accept`](Self::accept), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and [`Error::TimedOut`].
    pub fn accept_timeout(
        &self,
        timeout: Duration,
    ) -> Result<(SeqpacketSender, SeqpacketReceiver)> {
        self.accept_deadline(deadline_after(timeout))
    }

    /// As [`accept`](Self::accept), giving up at `deadline` (`None`: never).
    ///
    /// # Errors
    /// As [`accept_timeout`](Self::accept_timeout).
    pub fn accept_deadline(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(SeqpacketSender, SeqpacketReceiver)> {
        let fd = self.inner.accept(deadline, &self.what)?;
        pass_credentials(fd.as_fd())
            .map_err(|e| sys::error("setsockopt", self.what.as_str(), e))?;
        halves(fd, self.what.clone())
    }
}

/// Connects to the listener at `path`.
///
/// # Errors
/// As [`unix::connect`](super::unix::connect).
pub fn connect(path: impl AsRef<Path>) -> Result<(SeqpacketSender, SeqpacketReceiver)> {
    let path = path.as_ref();
    let what = describe(path);
    let fd = sys::unix_connect(path, SocketType::SEQPACKET, &what, pass_credentials)?;
    halves(fd, what)
}

fn pass_credentials(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(sockopt::set_socket_passcred(fd, true)?)
}

/// The largest packet the socket sends: its `SO_SNDBUF` less the kernel's 32.
fn send_limit(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let sndbuf = sockopt::socket_send_buffer_size(fd)?;
    Ok(sndbuf.saturating_sub(SNDBUF_OVERHEAD))
}

fn halves(fd: OwnedFd, what: String) -> Result<(SeqpacketSender, SeqpacketReceiver)> {
    let max = send_limit(fd.as_fd()).map_err(|e| sys::error("getsockopt", what.as_str(), e))?;
    let fd = Arc::new(fd);
    Ok((
        SeqpacketSender {
            fd: Arc::clone(&fd),
            max,
            gone: false,
            what: what.clone(),
        },
        SeqpacketReceiver {
            fd,
            max,
            ended: false,
            what,
        },
    ))
}

/// The sending half of a `SOCK_SEQPACKET` connection. Dropping it shuts the
/// direction down: the peer's receiver gets every packet, then `Disconnected`.
#[derive(Debug)]
pub struct SeqpacketSender {
    fd: Arc<OwnedFd>,
    max: usize,
    gone: bool,
    what: String,
}

impl SeqpacketSender {
    /// The largest message: `SO_SNDBUF` less 32 bytes, or less if
    /// [`with_max_message_len`](Self::with_max_message_len) set less.
    pub fn max_message_len(&self) -> usize {
        self.max
    }

    /// Sets the largest message, raising the socket's send buffer if it is too
    /// small for it.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] naming `/proc/sys/net/core/wmem_max` if the kernel
    /// caps the buffer below what `max` needs; [`Error::Io`].
    pub fn with_max_message_len(mut self, max: usize) -> Result<Self> {
        let fd = self.fd.as_fd();
        let io = |e| sys::error("setsockopt(SO_SNDBUF)", self.what.as_str(), e);
        if send_limit(fd).map_err(io)? < max {
            // The kernel doubles the value asked for (its bookkeeping), capped at
            // twice wmem_max.
            let want = (max + SNDBUF_OVERHEAD).div_ceil(2);
            let want = want.min(i32::MAX as usize);
            sockopt::set_socket_send_buffer_size(fd, want).map_err(|e| io(e.into()))?;
            let got = send_limit(fd).map_err(io)?;
            if got < max {
                let wmem_max = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                return Err(Error::LimitExceeded {
                    what: self.what.clone(),
                    limit: "/proc/sys/net/core/wmem_max",
                    value: wmem_max,
                    requested: want as u64,
                    raise: "raise it with `sysctl net.core.wmem_max=<bytes>` (as root)",
                });
            }
        }
        self.max = max;
        Ok(self)
    }

    fn send_now(&mut self, message: &[u8]) -> Result<bool> {
        if message.len() > self.max {
            return Err(Error::MessageTooLarge {
                len: message.len(),
                max: self.max,
            });
        }
        if self.gone {
            return Err(Error::Disconnected {
                peer: Role::Receiver,
            });
        }
        match send_packet(self.fd.as_fd(), message) {
            Ok(_) => Ok(true),
            Err(e) if sys::would_block(&e) => Ok(false),
            Err(e) if sys::is_peer_gone(&e) => {
                self.gone = true;
                Err(Error::Disconnected {
                    peer: Role::Receiver,
                })
            }
            Err(e) if Errno::from_io_error(&e) == Some(Errno::MSGSIZE) => {
                Err(Error::MessageTooLarge {
                    len: message.len(),
                    max: self.max,
                })
            }
            Err(e) => Err(sys::error("sendmsg", self.what.as_str(), e)),
        }
    }

    /// Sends `message` as one packet if the kernel takes it now; never blocks.
    ///
    /// # Errors
    /// [`TrySendError::Full`](crate::error::TrySendError::Full) (with `free: 0`: the kernel does not say how much room it
    /// has); [`TrySendError::MessageTooLarge`](crate::error::TrySendError::MessageTooLarge); [`TrySendError::Disconnected`](crate::error::TrySendError::Disconnected) once the receiver
    /// has gone; [`TrySendError::Io`](crate::error::TrySendError::Io).
    pub fn try_send(
        &mut self,
        message: &[u8],
    ) -> std::result::Result<(), crate::error::TrySendError> {
        self.try_send_inner(message)
            .map_err(crate::error::TrySendError::from_error)
    }

    fn try_send_inner(&mut self, message: &[u8]) -> Result<()> {
        if self.send_now(message)? {
            Ok(())
        } else {
            Err(Error::Full {
                needed: message.len() as u64,
                free: 0,
            })
        }
    }

    /// Sends `message`, waiting for room until `deadline` at most (`None`: as
    /// long as it takes).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), [`SendTimeoutError::TimedOut`] instead of `Full`.
    pub fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> std::result::Result<(), SendTimeoutError> {
        loop {
            if self
                .send_now(message)
                .map_err(SendTimeoutError::from_error)?
            {
                return Ok(());
            }
            match sys::wait_for(self.fd.as_fd(), PollFlags::OUT, deadline) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(SendTimeoutError::TimedOut),
                Err(e) => {
                    let e = sys::error("poll", self.what.as_str(), e);
                    return Err(SendTimeoutError::from_error(e));
                }
            }
        }
    }
}

impl Drop for SeqpacketSender {
    fn drop(&mut self) {
        sys::shutdown(self.fd.as_fd(), Shutdown::Write);
    }
}

/// The socket, for polling (an event loop).
impl AsFd for SeqpacketSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

message_sender!(SeqpacketSender);

/// The receiving half of a `SOCK_SEQPACKET` connection. Dropping it shuts the
/// direction down: the peer's sender gets `Disconnected`.
#[derive(Debug)]
pub struct SeqpacketReceiver {
    fd: Arc<OwnedFd>,
    max: usize,
    /// The peer's end was read (sticky).
    ended: bool,
    what: String,
}

/// What one `recvmsg` found.
enum Packet {
    /// A packet of this length (its bytes, or as many as fitted, are in the buffer).
    Message(usize),
    /// The peer's end.
    End,
    /// Nothing queued.
    Nothing,
}

impl SeqpacketReceiver {
    /// The largest message this end expects: its own socket's `SO_SNDBUF` less 32
    /// bytes (a peer's is the same unless it raised it), or what
    /// [`with_max_message_len`](Self::with_max_message_len) set.
    pub fn max_message_len(&self) -> usize {
        self.max
    }

    /// Sets the largest message this end expects: receives into buffers at least
    /// this long skip the peek at the length.
    pub fn with_max_message_len(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// One non-blocking `recvmsg` into `buf` with `flags` (plus `MSG_TRUNC`, so the
    /// packet's whole length is returned), with no room for control data: a
    /// packet's credentials show as `MSG_CTRUNC`, and descriptors passed along are
    /// discarded by the kernel.
    fn recv_packet(&mut self, buf: &mut [u8], flags: RecvFlags) -> Result<Packet> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut no_control = RecvAncillaryBuffer::default();
        let flags = flags | RecvFlags::DONTWAIT | RecvFlags::TRUNC;
        let msg = loop {
            match rustix::net::recvmsg(self.fd.as_fd(), &mut iov, &mut no_control, flags) {
                Ok(msg) => break msg,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    let e = io::Error::from(e);
                    if sys::would_block(&e) {
                        return Ok(Packet::Nothing);
                    } else if sys::is_peer_gone(&e) {
                        return Ok(Packet::End);
                    }
                    return Err(sys::error("recvmsg", self.what.as_str(), e));
                }
            }
        };
        // The end of the stream comes with no control data; every packet with
        // its credentials, which did not fit.
        let credentials = msg.flags.contains(ReturnFlags::CTRUNC);
        if msg.bytes == 0 && !credentials {
            return Ok(Packet::End);
        }
        Ok(Packet::Message(msg.bytes))
    }

    /// Receives the next packet into `buf` if one is queued now; returns its length.
    /// Never blocks.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`](crate::error::TryRecvError::Empty); [`TryRecvError::BufferTooSmall`](crate::error::TryRecvError::BufferTooSmall) (the packet stays queued);
    /// [`TryRecvError::Disconnected`](crate::error::TryRecvError::Disconnected) once the sender has gone and every packet it sent
    /// was received; [`TryRecvError::FrameTooLong`](crate::error::TryRecvError::FrameTooLong) for a packet longer than a buffer of
    /// at least [`max_message_len`](Self::max_message_len) bytes (a peer with a
    /// larger limit: that packet is lost); [`TryRecvError::Io`](crate::error::TryRecvError::Io).
    pub fn try_recv(
        &mut self,
        buf: &mut [u8],
    ) -> std::result::Result<usize, crate::error::TryRecvError> {
        self.try_recv_inner(buf)
            .map_err(crate::error::TryRecvError::from_error)
    }

    fn try_recv_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.ended {
            return Err(Error::Disconnected { peer: Role::Sender });
        }
        if buf.len() < self.max {
            match self.recv_packet(&mut [], RecvFlags::PEEK)? {
                Packet::Message(len) if len > buf.len() => {
                    return Err(Error::BufferTooSmall {
                        len,
                        buffer: buf.len(),
                    });
                }
                Packet::Message(_) => {}
                Packet::End => {
                    self.ended = true;
                    return Err(Error::Disconnected { peer: Role::Sender });
                }
                Packet::Nothing => return Err(Error::Empty),
            }
        }
        match self.recv_packet(buf, RecvFlags::empty())? {
            Packet::Message(len) if len > buf.len() => Err(Error::FrameTooLong {
                what: self.what.clone(),
                len: len as u64,
                max: buf.len(),
            }),
            Packet::Message(len) => Ok(len),
            Packet::End => {
                self.ended = true;
                Err(Error::Disconnected { peer: Role::Sender })
            }
            Packet::Nothing => Err(Error::Empty),
        }
    }

    fn wait_readable(&self, deadline: Option<Instant>) -> Result<()> {
        match sys::wait_for(self.fd.as_fd(), PollFlags::IN, deadline) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::TimedOut),
            Err(e) => Err(sys::error("poll", self.what.as_str(), e)),
        }
    }

    /// Receives the next packet into `buf`, waiting until `deadline` at most
    /// (`None`: as long as it takes); returns its length.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), [`RecvTimeoutError::TimedOut`] instead of `Empty`.
    pub fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> std::result::Result<usize, RecvTimeoutError> {
        loop {
            match self.try_recv_inner(buf) {
                Err(Error::Empty) => self
                    .wait_readable(deadline)
                    .map_err(RecvTimeoutError::from_error)?,
                other => return other.map_err(RecvTimeoutError::from_error),
            }
        }
    }
}

/// Sends `message` as one packet (an empty one too), without blocking or `SIGPIPE`.
fn send_packet(fd: BorrowedFd<'_>, message: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(fd, message, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Err(Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}

impl Drop for SeqpacketReceiver {
    fn drop(&mut self) {
        sys::shutdown(self.fd.as_fd(), Shutdown::Read);
    }
}

/// The socket, for polling (an event loop).
impl AsFd for SeqpacketReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

message_receiver!(SeqpacketReceiver {
    /// Each packet into a `Vec` of its length (peeked first).
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> std::result::Result<Vec<u8>, RecvTimeoutError> {
        loop {
            if self.ended {
                return Err(RecvTimeoutError::Disconnected);
            }
            let peeked = self.recv_packet(&mut [], RecvFlags::PEEK);
            match peeked.map_err(RecvTimeoutError::from_error)? {
                Packet::Message(len) => {
                    let mut buf = vec![0u8; len];
                    // Only this receiver takes packets: the peeked one is next.
                    let n = self
                        .try_recv_inner(&mut buf)
                        .map_err(RecvTimeoutError::from_error)?;
                    buf.truncate(n);
                    return Ok(buf);
                }
                Packet::End => {
                    self.ended = true;
                    return Err(RecvTimeoutError::Disconnected);
                }
                Packet::Nothing => self
                    .wait_readable(deadline)
                    .map_err(RecvTimeoutError::from_error)?,
            }
        }
    }
});
