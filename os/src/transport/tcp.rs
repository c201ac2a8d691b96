//! TCP: messages framed on a byte stream, to a process on another host.
//!
//! A [`TcpListener`] listens on a port and accepts peers; [`connect`] opens a
//! connection to one. A connection is a [`TcpSender`] and a [`TcpReceiver`], with
//! the framing, buffering and partial-frame rules of [`unix`](super::unix)
//! (4-byte little-endian length prefix; a buffer too small keeps the message;
//! [`TcpSender::pending_len`]). `TCP_NODELAY` is set: a message leaves at once
//! instead of waiting to be coalesced with the next.
//!
//! **No authentication, no encryption.** Anyone who can reach the port can
//! connect, and the first to connect is the peer [`accept`](TcpListener::accept)
//! returns; anyone on the path can read and change the bytes. So
//! [`TcpListener::bind_loopback`] (and the `tcp://:port` address) listen on
//! 127.0.0.1 only, reachable from this machine alone; listening on another
//! interface takes naming it ([`TcpListener::bind`] with `0.0.0.0:port` or an
//! interface's address), which exposes the port to every host that can route to
//! it: use a firewall, a VPN or an SSH tunnel, or put TLS in front.
//!
//! **Committed:** a message is committed when its whole frame is in the local
//! kernel's send buffer (a blocking `send` returned, or `pending_len` is 0). The
//! kernel delivers it after the sender dies (closing the socket sends what is
//! buffered, then FIN) unless the connection is reset: if the dying process had
//! unread incoming data, Linux resets the connection instead, and what was in
//! flight is lost; a one-way sender never has any. A network failure loses what
//! is in flight too. **Liveness:** FIN (the peer closed or died) is
//! [`Error::Disconnected`] after every complete
//! message; a reset is `Disconnected` at once. Keep-alive probes (after 10 s idle,
//! every 5 s, 3 unanswered) notice a peer host that vanished without closing.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::blocking::deadline_after;
use crate::error::{Error, Result};
use crate::sys::{self, WriteMode};
use crate::transport::DEFAULT_MAX_MESSAGE_LEN;
use crate::transport::stream::{
    EndOfStream, FrameReader, FrameWriter, framed_receiver_methods, framed_sender_methods,
};

fn describe(addr: &SocketAddr) -> String {
    format!("tcp {addr}")
}

fn describe_all(addrs: &[SocketAddr]) -> String {
    match addrs {
        [one] => describe(one),
        _ => format!(
            "tcp {}",
            addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

fn resolve(addr: impl ToSocketAddrs) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Error::Io {
            op: "resolve",
            what: "tcp address".to_owned(),
            source: e,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::NotFound {
            what: "tcp address (the name resolves to no address)".to_owned(),
        });
    }
    Ok(addrs)
}

fn map_bind(what: String, e: std::io::Error) -> Error {
    match rustix::io::Errno::from_io_error(&e) {
        Some(rustix::io::Errno::ADDRINUSE) => Error::AlreadyExists { what },
        _ => sys::error("bind", what, e),
    }
}

/// A listening TCP socket.
#[derive(Debug)]
pub struct TcpListener {
    inner: std::net::TcpListener,
    what: String,
}

impl TcpListener {
    /// Listens on `port` of the loopback interface (127.0.0.1): reachable from
    /// this machine only. Port 0 picks a free port: see
    /// [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the port is taken;
    /// [`Error::PermissionDenied`] for a port below 1024 without the privilege;
    /// [`Error::Io`].
    pub fn bind_loopback(port: u16) -> Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Listens on `addr` as given: `0.0.0.0:port` or an interface's address
    /// exposes the port to other hosts, with no authentication (see the module
    /// docs).
    ///
    /// # Errors
    /// As [`bind_loopback`](Self::bind_loopback); [`Error::Io`] if the name does not
    /// resolve.
    pub fn bind(addr: impl ToSocketAddrs) -> Result<Self> {
        let addrs = resolve(addr)?;
        let inner = std::net::TcpListener::bind(&addrs[..])
            .map_err(|e| map_bind(describe_all(&addrs), e))?;
        let local = inner
            .local_addr()
            .map_err(|e| sys::error("getsockname", describe_all(&addrs), e))?;
        let what = describe(&local);
        inner
            .set_nonblocking(true)
            .map_err(|e| sys::error("fcntl(O_NONBLOCK)", what.as_str(), e))?;
        Ok(Self { inner, what })
    }

    /// The address the listener is bound to (with the port picked for port 0).
    ///
    /// # Panics
    /// Never in practice: the address was read once at bind time.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .local_addr()
            .expect("getsockname on a bound listener")
    }

    /// Accepts one peer, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn accept(&self) -> Result<(TcpSender, TcpReceiver)> {
        self.accept_deadline(None)
    }

    /// As [`accept`](Self::accept), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and [`Error::TimedOut`].
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(TcpSender, TcpReceiver)> {
        self.accept_deadline(deadline_after(timeout))
    }

    /// As [`accept`](Self::accept), giving up at `deadline` (`None`: never).
    ///
    /// # Errors
    /// As [`accept_timeout`](Self::accept_timeout).
    pub fn accept_deadline(&self, deadline: Option<Instant>) -> Result<(TcpSender, TcpReceiver)> {
        loop {
            match self.inner.accept() {
                Ok((stream, peer)) => return halves(stream, describe(&peer)),
                Err(e) if sys::would_block(&e) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if rustix::io::Errno::from_io_error(&e)
                        == Some(rustix::io::Errno::CONNABORTED) =>
                {
                    continue;
                }
                Err(e) => return Err(sys::error("accept", self.what.as_str(), e)),
            }
            match sys::wait_for(self.inner.as_fd(), sys::PollFlags::IN, deadline) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(Error::TimedOut),
                Err(e) => return Err(sys::error("poll", self.what.as_str(), e)),
            }
        }
    }
}

/// Connects to `addr` (each address it resolves to in turn).
///
/// # Errors
/// [`Error::ConnectionRefused`] if nothing listens there; [`Error::Io`] (a name
/// that does not resolve, an unreachable host).
pub fn connect(addr: impl ToSocketAddrs) -> Result<(TcpSender, TcpReceiver)> {
    let addrs = resolve(addr)?;
    let stream = std::net::TcpStream::connect(&addrs[..])
        .map_err(|e| sys::error("connect", describe_all(&addrs), e))?;
    let peer = stream.peer_addr().ok();
    halves(
        stream,
        peer.map_or_else(|| describe_all(&addrs), |p| describe(&p)),
    )
}

/// As [`connect`], giving up on each address after `timeout`.
///
/// # Errors
/// As [`connect`], and [`Error::TimedOut`].
pub fn connect_timeout(
    addr: impl ToSocketAddrs,
    timeout: Duration,
) -> Result<(TcpSender, TcpReceiver)> {
    let addrs = resolve(addr)?;
    let mut last = None;
    for addr in &addrs {
        match std::net::TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return halves(stream, describe(addr)),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => last = Some(Error::TimedOut),
            Err(e) => last = Some(sys::error("connect", describe(addr), e)),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

fn halves(stream: std::net::TcpStream, what: String) -> Result<(TcpSender, TcpReceiver)> {
    let setup = |stream: &std::net::TcpStream| -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        sys::set_tcp_keepalive(stream.as_fd())
    };
    setup(&stream).map_err(|e| sys::error("setsockopt", what.as_str(), e))?;
    let fd = Arc::new(OwnedFd::from(stream));
    Ok((
        TcpSender {
            writer: FrameWriter::new(
                Arc::clone(&fd),
                WriteMode::Socket,
                DEFAULT_MAX_MESSAGE_LEN,
                what.clone(),
            ),
        },
        TcpReceiver {
            reader: FrameReader::new(fd, EndOfStream::Eof, DEFAULT_MAX_MESSAGE_LEN, what),
        },
    ))
}

/// The sending half of a TCP connection. Dropping it shuts the direction down
/// (FIN): the peer's receiver gets every message, then `Disconnected`.
#[derive(Debug)]
pub struct TcpSender {
    writer: FrameWriter,
}

framed_sender_methods!(TcpSender);

impl TcpSender {
    /// The peer's address, for messages.
    pub fn describe(&self) -> &str {
        self.writer.what()
    }
}

impl Drop for TcpSender {
    fn drop(&mut self) {
        let _ = self.writer.flush_deadline(Some(Instant::now()));
        sys::shutdown(self.writer.fd().as_fd(), sys::Shutdown::Write);
    }
}

/// The receiving half of a TCP connection.
///
/// Dropping it while the sending half lives does not tell the peer (TCP has no
/// such signal): its sender finds out when the whole connection is closed.
#[derive(Debug)]
pub struct TcpReceiver {
    reader: FrameReader,
}

framed_receiver_methods!(TcpReceiver);

impl TcpReceiver {
    /// The peer's address, for messages.
    pub fn describe(&self) -> &str {
        self.reader.what()
    }
}
