//! The connecting side: [`ConnectOptions`], [`connect`], and the client's half
//! of the handshake with its checks of what the listener sends.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::blocking::{WaitStrategy, deadline_after};
use crate::channel::{ChannelBuilder, Receiver, Sender};
use crate::error::{Error, Result};
use crate::options::SegmentBuilder as _;
use crate::sys::{self, fdpass};

use super::handshake::{self, Hello, Reply, failed};
use super::{
    Connection, Endpoint, PeerCredentials, Transport, TransportPolicy, describe_unix, dir,
    effective_policy, parse_endpoint, segment_size, socket_path, tcp_setup, valid_capacity,
};

/// Options for connecting: directory, transport policy, capacity wish, timeout,
/// whom to trust as the server.
///
/// ```no_run
/// use shmring::connection::{ConnectOptions, Transport, TransportPolicy};
/// # fn main() -> shmring::Result<()> {
/// let conn = ConnectOptions::new()
///     .transport(TransportPolicy::SocketOnly)
///     .timeout(std::time::Duration::from_secs(2))
///     .connect("orders")?;
/// assert_eq!(conn.transport(), Transport::UnixSocket);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    directory: Option<PathBuf>,
    policy: TransportPolicy,
    capacity: usize,
    timeout: Option<Duration>,
    trusted_uids: Vec<u32>,
    wait: WaitStrategy,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectOptions {
    /// The defaults: the default directory, [`TransportPolicy::Any`], the
    /// listener's capacity, no timeout, trust servers of this uid and root.
    pub fn new() -> Self {
        Self {
            directory: None,
            policy: TransportPolicy::Any,
            capacity: 0,
            timeout: None,
            trusted_uids: vec![sys::euid(), 0],
            wait: WaitStrategy::default(),
        }
    }

    /// The directory of the listener's socket (default as
    /// [`ListenerBuilder::directory`](super::listener::ListenerBuilder::directory)). It is checked before connecting: a
    /// directory, not a symbolic link, owned by this uid, root or a trusted uid,
    /// not writable by group or others.
    pub fn directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.directory = Some(dir.into());
        self
    }

    /// Which transports this client accepts (default [`TransportPolicy::Any`]).
    pub fn transport(mut self, policy: TransportPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The ring capacity to ask for (a power of two; default: the listener's).
    /// The listener grants at most its `max_capacity`.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Gives up connecting (the TCP connect and the whole handshake) after
    /// `timeout` (default: none; a listener that never accepts keeps the call
    /// waiting, one that dies ends it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Trusts a listener running as `uid` (checked with `SO_PEERCRED`, and as
    /// the socket directory's owner). This uid and root are always trusted.
    pub fn trust_server_uid(mut self, uid: u32) -> Self {
        if !self.trusted_uids.contains(&uid) {
            self.trusted_uids.push(uid);
        }
        self
    }

    /// How this side's ends of a shared-memory connection wait (default
    /// [`WaitStrategy::SpinThenPark`]).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// Connects to `address`: a listener's name, or `tcp://host:port`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] or [`Error::InvalidAddress`]; [`Error::NotFound`]
    /// (no such socket or directory); [`Error::ConnectionRefused`] (nobody
    /// listens); [`Error::PermissionDenied`] (the directory or socket mode refuses
    /// us, or the listener refused our uid: the message names it);
    /// [`Error::Untrusted`] (a directory or server of an untrusted uid);
    /// [`Error::Handshake`] (not a shmring listener, descriptors that fail the
    /// checks, policies that leave no transport); [`Error::Unsupported`]
    /// (shared memory required but forbidden); [`Error::TimedOut`]; [`Error::Io`].
    pub fn connect(&self, address: &str) -> Result<Connection> {
        let policy = effective_policy(self.policy)?;
        if self.capacity != 0 && !valid_capacity(self.capacity as u64) {
            return Err(Error::InvalidCapacity {
                capacity: self.capacity as u64,
            });
        }
        let deadline = self.timeout.and_then(deadline_after);
        match parse_endpoint(address)? {
            Endpoint::Named(name) => {
                let dir = self.directory.clone().unwrap_or_else(dir::default_dir);
                dir::check(&dir, &self.trusted_uids, 0o755)?;
                let path = socket_path(&dir, &name);
                let what = describe_unix(&path);
                let fd = sys::unix_connect(&path, sys::SocketType::STREAM, &what, |_| Ok(()))?;
                let cred = fdpass::peer_credentials(fd.as_fd())
                    .map_err(|e| Error::io("SO_PEERCRED", &what, e))?;
                if !self.trusted_uids.contains(&cred.uid) {
                    return Err(Error::Untrusted {
                        what,
                        owner: cred.uid,
                        mode: 0,
                        expected_owner: sys::euid(),
                        allowed_mode: 0,
                    });
                }
                let peer = PeerCredentials {
                    pid: cred.pid,
                    uid: cred.uid,
                    gid: cred.gid,
                };
                self.client_handshake(
                    fd,
                    Transport::UnixSocket,
                    what,
                    policy,
                    deadline,
                    Some(peer),
                )
            }
            Endpoint::Tcp { host, port } => {
                if policy == TransportPolicy::SharedMemoryOnly {
                    return Err(failed(
                        &format!("tcp {host}:{port}"),
                        "shared memory is required and TCP cannot carry it",
                        0,
                        0,
                    ));
                }
                let what = format!("tcp {host}:{port}");
                let addrs: Vec<SocketAddr> = (host.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| Error::io("resolve", &what, e))?
                    .collect();
                let stream = match self.timeout {
                    None => std::net::TcpStream::connect(&addrs[..])
                        .map_err(|e| sys::error("connect", what.as_str(), e))?,
                    Some(timeout) => {
                        let mut last = None;
                        let mut connected = None;
                        for addr in &addrs {
                            match std::net::TcpStream::connect_timeout(addr, timeout) {
                                Ok(s) => {
                                    connected = Some(s);
                                    break;
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                                    last = Some(Error::TimedOut);
                                }
                                Err(e) => last = Some(sys::error("connect", what.as_str(), e)),
                            }
                        }
                        match connected {
                            Some(s) => s,
                            None => {
                                return Err(last.unwrap_or(Error::NotFound { what }));
                            }
                        }
                    }
                };
                let what = stream.peer_addr().map_or(what, |a| format!("tcp {a}"));
                let fd = tcp_setup(stream, &what)?;
                self.client_handshake(fd, Transport::Tcp, what, policy, deadline, None)
            }
        }
    }

    /// The client's side of the handshake.
    fn client_handshake(
        &self,
        fd: OwnedFd,
        transport: Transport,
        what: String,
        policy: TransportPolicy,
        deadline: Option<Instant>,
        peer: Option<PeerCredentials>,
    ) -> Result<Connection> {
        let sock = fd.as_fd();
        let policy = if transport == Transport::Tcp {
            TransportPolicy::SocketOnly
        } else {
            policy
        };
        let hello = Hello {
            version: handshake::VERSION,
            policy: handshake::policy_code(policy),
            reserved: 0,
            capacity: self.capacity as u64,
        };
        // A listener that refuses our uid writes its reply and closes without
        // reading: the hello may then fail (EPIPE) while the reply waits in our
        // receive queue. So read the reply before reporting a failed hello.
        let sent = handshake::write_all(sock, &hello.encode(), &[], deadline, &what);
        let mut reply = [0u8; handshake::REPLY_LEN];
        // Every descriptor that comes is owned here from the moment it arrives:
        // whatever goes wrong below, the ones not kept are closed.
        let mut fds = Vec::new();
        let read = handshake::read_exact(sock, &mut reply, Some(&mut fds), deadline, &what);
        let read = match (sent, read) {
            (Err(e), Err(_)) => return Err(e),
            // Only a refusal may come to a hello that did not go out.
            (Err(e), Ok(()))
                if Reply::decode(&reply)
                    .is_none_or(|r| r.decision != handshake::DECISION_REFUSED) =>
            {
                return Err(e);
            }
            (_, read) => read,
        };
        let outcome = read.and_then(|()| self.take_reply(&reply, fds, transport, policy, &what));
        let accepted = outcome.is_ok();
        let status = if accepted {
            handshake::ACK_ACCEPTED
        } else {
            handshake::ACK_REFUSED
        };
        // A refusal is best effort: the server may have closed already.
        let acked =
            handshake::write_all(sock, &handshake::encode_ack(status), &[], deadline, &what);
        let offer = outcome?;
        acked?;
        Ok(match offer {
            Offer::Rings(rings) => {
                let ClientRings { tx, rx, c2s, s2c } = *rings;
                Connection::over_rings(fd, tx, rx, c2s, s2c, what, peer)?
            }
            Offer::Stream { max_message_len } => {
                Connection::over_stream(fd, transport, max_message_len, what, peer)
            }
        })
    }

    /// Validates the server's reply and the descriptors that came with it.
    fn take_reply(
        &self,
        reply: &[u8; handshake::REPLY_LEN],
        fds: Vec<OwnedFd>,
        transport: Transport,
        policy: TransportPolicy,
        what: &str,
    ) -> Result<Offer> {
        let Some(reply) = Reply::decode(reply) else {
            return Err(failed(what, "not a shmring listener (bad magic)", 0, 0));
        };
        if reply.version != handshake::VERSION {
            return Err(failed(
                what,
                "the listener speaks another protocol version",
                reply.version.into(),
                handshake::VERSION.into(),
            ));
        }
        // Shared memory: the two memfds, then (unless the listener could make no
        // pipes) this side's ends of the four doorbells.
        let expect_fds = match reply.decision {
            handshake::DECISION_SHM if fds.len() == handshake::FDS_WITH_BELLS => {
                handshake::FDS_WITH_BELLS
            }
            handshake::DECISION_SHM => handshake::FDS_RINGS,
            _ => 0,
        };
        if fds.len() != expect_fds {
            return Err(failed(
                what,
                "the listener passed an unexpected number of descriptors",
                fds.len() as u64,
                expect_fds as u64,
            ));
        }
        match reply.decision {
            handshake::DECISION_REFUSED => Err(refusal(what, &reply)),
            handshake::DECISION_SOCKET | handshake::DECISION_SHM => {
                let capacity = reply.a;
                if !valid_capacity(capacity)
                    || (self.capacity != 0 && capacity > self.capacity as u64)
                {
                    return Err(failed(
                        what,
                        "the listener chose a capacity out of range",
                        capacity,
                        self.capacity as u64,
                    ));
                }
                let capacity = capacity as usize;
                let max_message_len = shmring_core::spsc::layout::max_message_len(capacity);
                if reply.max_message_len != max_message_len as u64 {
                    return Err(failed(
                        what,
                        "the listener's largest message does not match its capacity",
                        reply.max_message_len,
                        max_message_len as u64,
                    ));
                }
                if reply.decision == handshake::DECISION_SOCKET {
                    if policy == TransportPolicy::SharedMemoryOnly {
                        return Err(failed(
                            what,
                            "shared memory is required and the listener offers the socket",
                            handshake::DECISION_SOCKET.into(),
                            handshake::DECISION_SHM.into(),
                        ));
                    }
                    if reply.detail != 0 || reply.b != 0 {
                        return Err(failed(what, "reserved reply field not zero", reply.b, 0));
                    }
                    return Ok(Offer::Stream { max_message_len });
                }
                if policy == TransportPolicy::SocketOnly || transport != Transport::UnixSocket {
                    return Err(failed(
                        what,
                        "the listener offered shared memory, which this client forbids",
                        handshake::DECISION_SHM.into(),
                        handshake::DECISION_SOCKET.into(),
                    ));
                }
                let size = segment_size(capacity)? as u64;
                if reply.detail as usize != fds.len() {
                    return Err(failed(
                        what,
                        "the listener announced another descriptor count than it passed",
                        reply.detail.into(),
                        fds.len() as u64,
                    ));
                }
                if reply.b != size {
                    return Err(failed(
                        what,
                        "the listener announced descriptors of the wrong count or size",
                        reply.b,
                        size,
                    ));
                }
                self.map_rings(fds, size, capacity, what)
            }
            other => Err(failed(
                what,
                "unknown decision in the listener's reply",
                other.into(),
                handshake::DECISION_SHM.into(),
            )),
        }
    }

    /// Checks both memfds, maps them and claims this side's ends.
    fn map_rings(
        &self,
        fds: Vec<OwnedFd>,
        size: u64,
        capacity: usize,
        what: &str,
    ) -> Result<Offer> {
        let mut fds = fds.into_iter();
        let rings: Vec<OwnedFd> = fds.by_ref().take(handshake::FDS_RINGS).collect();
        let bells = handshake::client_bells(fds.collect(), what)?;
        let mut ids = Vec::with_capacity(2);
        for fd in &rings {
            ids.push(verify_memfd(fd.as_fd(), size, what)?);
        }
        if ids[0] == ids[1] {
            return Err(failed(
                what,
                "the listener passed the same memfd for both directions",
                ids[1].1,
                0,
            ));
        }
        let builder = ChannelBuilder::memfd().wait_strategy(self.wait);
        let mut rings = rings.into_iter();
        let [c2s_bells, s2c_bells] = bells;
        let c2s = builder.from_fd_with_bells(rings.next().expect("two descriptors"), c2s_bells)?;
        let s2c = builder.from_fd_with_bells(rings.next().expect("two descriptors"), s2c_bells)?;
        for channel in [&c2s, &s2c] {
            if channel.segment().capacity() != capacity {
                return Err(failed(
                    what,
                    "a ring's header disagrees with the announced capacity",
                    channel.segment().capacity() as u64,
                    capacity as u64,
                ));
            }
        }
        let tx = c2s.sender()?;
        let rx = s2c.receiver()?;
        Ok(Offer::Rings(Box::new(ClientRings { tx, rx, c2s, s2c })))
    }
}

/// What the client accepted.
enum Offer {
    Rings(Box<ClientRings>),
    Stream { max_message_len: usize },
}

/// The two rings the client mapped, with its own ends claimed.
struct ClientRings {
    tx: Sender,
    rx: Receiver,
    /// Client to server: we send.
    c2s: crate::channel::Channel,
    /// Server to client: we receive.
    s2c: crate::channel::Channel,
}

/// The error for a listener's refusal.
fn refusal(what: &str, reply: &Reply) -> Error {
    match reply.detail {
        handshake::REFUSED_UID => Error::PermissionDenied {
            what: format!(
                "{what}: the listener refused uid {} (SO_PEERCRED; it allows its own uid {} and \
                 the ones it was told)",
                reply.a, reply.b
            ),
        },
        handshake::REFUSED_VERSION => failed(
            what,
            "the listener refused our protocol version",
            reply.a,
            reply.b,
        ),
        handshake::REFUSED_POLICY => failed(
            what,
            "the two sides' transport policies leave no transport (found: ours, expected: the \
             listener's; 0 any, 1 shared memory only, 2 socket only)",
            reply.a,
            reply.b,
        ),
        handshake::REFUSED_NO_SHM => failed(
            what,
            "shared memory is required and the listener could not make a memfd",
            0,
            0,
        ),
        handshake::REFUSED_BAD_HELLO => failed(
            what,
            "the listener found our request malformed",
            reply.a,
            reply.b,
        ),
        other => failed(
            what,
            "the listener refused for an unknown reason",
            other.into(),
            0,
        ),
    }
}

/// Checks a received descriptor before it is mapped: a regular file that is a
/// memfd, sealed against shrinking, growing and further sealing, of exactly
/// `size` bytes. Returns its device and inode.
fn verify_memfd(fd: BorrowedFd<'_>, size: u64, what: &str) -> Result<(u64, u64)> {
    let meta = sys::metadata(fd).map_err(|e| Error::io("fstat", what, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::WrongFileType {
            what: format!("{what}: passed descriptor"),
            expected: "memfd",
            found: sys::file_kind(&meta),
        });
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| Error::io("readlink", what, e))?;
    if !link.as_os_str().as_encoded_bytes().starts_with(b"/memfd:") {
        return Err(failed(what, "a passed descriptor is not a memfd", 0, 0));
    }
    let seals = sys::memfd::seals(fd.as_fd()).map_or(0, |s| s.bits());
    let required = sys::memfd::SEALED.bits();
    if seals & required != required {
        return Err(failed(
            what,
            "a passed memfd is not sealed against shrinking, growing and resealing",
            seals.into(),
            required.into(),
        ));
    }
    if meta.len() != size {
        return Err(failed(
            what,
            "a passed memfd has the wrong size",
            meta.len(),
            size,
        ));
    }
    Ok((meta.dev(), meta.ino()))
}

/// Connects to `address` with the default [`ConnectOptions`]: a listener's name
/// (`"orders"`), or `tcp://host:port`.
///
/// # Errors
/// As [`ConnectOptions::connect`].
pub fn connect(address: &str) -> Result<Connection> {
    ConnectOptions::new().connect(address)
}

/// As [`connect`], giving up after `timeout` (the TCP connect and the whole
/// handshake) with [`Error::TimedOut`].
///
/// # Errors
/// As [`ConnectOptions::connect`].
pub fn connect_timeout(address: &str, timeout: Duration) -> Result<Connection> {
    ConnectOptions::new().timeout(timeout).connect(address)
}
