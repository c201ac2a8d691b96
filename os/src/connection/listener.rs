//! The listening side: binding a name (or a TCP port), accepting, and the
//! listener's half of the handshake.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::blocking::{WaitStrategy, deadline_after};
use crate::channel::{ChannelBuilder, Receiver, Sender};
use crate::error::{Error, Result};
use crate::options::SegmentBuilder as _;
use crate::sys::{self, UnixListenerFd, fdpass};

use super::handshake::{self, Hello, Reply, failed};
use super::{
    Connection, DEFAULT_CAPACITY, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CAPACITY, Endpoint,
    PeerCredentials, Transport, TransportPolicy, describe_unix, dir, effective_policy,
    parse_endpoint, segment_size, socket_path, tcp_setup, valid_capacity,
};

/// Options for [`Listener`]: directory, ring capacity, who may connect, which
/// transports are offered. Made by [`Listener::builder`].
#[derive(Debug, Clone)]
pub struct ListenerBuilder {
    address: String,
    directory: Option<PathBuf>,
    directory_mode: u32,
    socket_mode: u32,
    capacity: usize,
    max_capacity: usize,
    allowed_uids: Vec<u32>,
    policy: TransportPolicy,
    handshake_timeout: Duration,
    wait: WaitStrategy,
}

impl ListenerBuilder {
    /// The directory of the socket (default: `$XDG_RUNTIME_DIR/shmring`, or
    /// `/tmp/shmring-<euid>`). It is created `0o700` if missing (its parent must
    /// exist), then checked: a directory, not a symbolic link, owned by this
    /// process's uid, no mode bits outside [`directory_mode`](Self::directory_mode).
    pub fn directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.directory = Some(dir.into());
        self
    }

    /// The mode bits the socket directory may have (default `0o700`). To let
    /// clients of another uid in, open it up (`0o755`) and allow their uid
    /// ([`allow_uid`](Self::allow_uid)) and the socket's mode
    /// ([`socket_mode`](Self::socket_mode)).
    pub fn directory_mode(mut self, mode: u32) -> Self {
        self.directory_mode = mode & 0o7777;
        self
    }

    /// The socket file's mode (default `0o600`: only this uid may connect; the
    /// kernel checks write permission on it at `connect`).
    pub fn socket_mode(mut self, mode: u32) -> Self {
        self.socket_mode = mode & 0o777;
        self
    }

    /// The ring capacity of each direction, a power of two (default
    /// [`DEFAULT_CAPACITY`]); a client may ask for another, up to
    /// [`max_capacity`](Self::max_capacity). The largest message is half of it
    /// less 8 bytes, on every transport.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// The largest capacity a client may ask for (default
    /// [`DEFAULT_MAX_CAPACITY`]); a larger wish gets this.
    pub fn max_capacity(mut self, bytes: usize) -> Self {
        self.max_capacity = bytes;
        self
    }

    /// Lets clients of `uid` connect (checked with `SO_PEERCRED`). The listener's
    /// own effective uid is always allowed. A TCP listener has no credentials to
    /// check: anyone who reaches its port connects.
    pub fn allow_uid(mut self, uid: u32) -> Self {
        if !self.allowed_uids.contains(&uid) {
            self.allowed_uids.push(uid);
        }
        self
    }

    /// Which transports the listener offers (default [`TransportPolicy::Any`]).
    pub fn transport(mut self, policy: TransportPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long one client's handshake may take (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]): a client that stalls is dropped after it.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How the listener's ends of shared-memory connections wait (default
    /// [`WaitStrategy::SpinThenPark`]).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// Binds and listens.
    ///
    /// A socket file left by a listener that died is replaced (a connect to it is
    /// refused); a live one is not.
    ///
    /// # Errors
    /// [`Error::InvalidName`] or [`Error::InvalidAddress`]; [`Error::InvalidCapacity`];
    /// [`Error::Untrusted`] or [`Error::WrongFileType`] for a directory that fails
    /// the checks; [`Error::AlreadyExists`] if a live listener has the name (or
    /// the TCP port is taken); [`Error::Unsupported`] for
    /// [`TransportPolicy::SharedMemoryOnly`] with `SHMRING_NO_SHM` set;
    /// [`Error::PermissionDenied`]; [`Error::Io`].
    pub fn bind(&self) -> Result<Listener> {
        let policy = effective_policy(self.policy)?;
        for capacity in [self.capacity, self.max_capacity] {
            if !valid_capacity(capacity as u64) {
                return Err(Error::InvalidCapacity {
                    capacity: capacity as u64,
                });
            }
        }
        let config = ListenerConfig {
            capacity: self.capacity,
            max_capacity: self.max_capacity.max(self.capacity),
            allowed_uids: self.allowed_uids.clone(),
            policy,
            handshake_timeout: self.handshake_timeout,
            wait: self.wait,
        };
        match parse_endpoint(&self.address)? {
            Endpoint::Named(name) => {
                let dir = self.directory.clone().unwrap_or_else(dir::default_dir);
                dir::ensure(&dir, &[sys::euid()], self.directory_mode)?;
                let path = socket_path(&dir, &name);
                let what = describe_unix(&path);
                let fd = bind_unix(&path, &what)?;
                if self.socket_mode != 0o600 {
                    std::fs::set_permissions(
                        &path,
                        std::os::unix::fs::PermissionsExt::from_mode(self.socket_mode),
                    )
                    .map_err(|e| Error::io("chmod", &what, e))?;
                }
                Ok(Listener {
                    kind: ListenerKind::Unix(fd),
                    config,
                    what,
                })
            }
            Endpoint::Tcp { host, port } => {
                let what = format!("tcp listener {host}:{port}");
                let addrs: Vec<SocketAddr> = (host.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| Error::io("resolve", &what, e))?
                    .collect();
                let listener = std::net::TcpListener::bind(&addrs[..]).map_err(|e| {
                    match rustix::io::Errno::from_io_error(&e) {
                        Some(rustix::io::Errno::ADDRINUSE) => {
                            Error::AlreadyExists { what: what.clone() }
                        }
                        _ => sys::error("bind", what.as_str(), e),
                    }
                })?;
                listener
                    .set_nonblocking(true)
                    .map_err(|e| Error::io("fcntl(O_NONBLOCK)", &what, e))?;
                let what = listener
                    .local_addr()
                    .map_or(what, |a| format!("tcp listener {a}"));
                Ok(Listener {
                    kind: ListenerKind::Tcp(listener),
                    config,
                    what,
                })
            }
        }
    }
}

/// Binds the socket at `path`, replacing a stale socket file (one nobody listens
/// on) once.
fn bind_unix(path: &Path, what: &str) -> Result<UnixListenerFd> {
    match UnixListenerFd::bind(path, sys::SocketType::STREAM, what) {
        Err(Error::AlreadyExists { .. }) => {}
        other => return other,
    }
    // Something is at the path. A live listener answers a connect; a socket
    // file whose listener died refuses it (ECONNREFUSED).
    match sys::unix_connect(path, sys::SocketType::STREAM, what, |_| Ok(())) {
        Err(Error::ConnectionRefused { .. }) => {}
        Ok(_) => {
            return Err(Error::AlreadyExists {
                what: what.to_owned(),
            });
        }
        Err(e) => return Err(e),
    }
    // Remove it only if it is a socket file of ours (the directory is ours too).
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("lstat", what, e))?;
    if sys::file_kind(&meta) != "socket" || meta.uid() != sys::euid() {
        return Err(Error::AlreadyExists {
            what: what.to_owned(),
        });
    }
    std::fs::remove_file(path).map_err(|e| Error::io("unlink", what, e))?;
    UnixListenerFd::bind(path, sys::SocketType::STREAM, what)
}

#[derive(Debug, Clone)]
struct ListenerConfig {
    capacity: usize,
    max_capacity: usize,
    allowed_uids: Vec<u32>,
    policy: TransportPolicy,
    handshake_timeout: Duration,
    wait: WaitStrategy,
}

#[derive(Debug)]
enum ListenerKind {
    Unix(UnixListenerFd),
    Tcp(std::net::TcpListener),
}

/// A named service that clients [`connect`](super::connect::connect) to: each accepted client is a
/// [`Connection`] with rings of its own (or a socket, see the module doc).
///
/// The socket file is removed when the listener drops; connections already
/// accepted live on. `Send` and `Sync`: several threads may accept at once.
#[derive(Debug)]
pub struct Listener {
    kind: ListenerKind,
    config: ListenerConfig,
    what: String,
}

impl Listener {
    /// Binds `address` with the default options: a name (`"orders"`, see
    /// [`ListenerBuilder::directory`]) or `tcp://host:port` (`tcp://:0`: a free
    /// port on 127.0.0.1).
    ///
    /// # Errors
    /// As [`ListenerBuilder::bind`].
    pub fn bind(address: &str) -> Result<Self> {
        Self::builder(address).bind()
    }

    /// Options for binding `address`.
    pub fn builder(address: &str) -> ListenerBuilder {
        ListenerBuilder {
            address: address.to_owned(),
            directory: None,
            directory_mode: 0o700,
            socket_mode: 0o600,
            capacity: DEFAULT_CAPACITY,
            max_capacity: DEFAULT_MAX_CAPACITY,
            allowed_uids: vec![sys::euid()],
            policy: TransportPolicy::Any,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            wait: WaitStrategy::default(),
        }
    }

    /// The socket path, for a named listener.
    pub fn path(&self) -> Option<&Path> {
        match &self.kind {
            ListenerKind::Unix(fd) => Some(fd.path()),
            ListenerKind::Tcp(_) => None,
        }
    }

    /// The address listened on, for a TCP listener (the port chosen for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.kind {
            ListenerKind::Unix(_) => None,
            ListenerKind::Tcp(l) => l.local_addr().ok(),
        }
    }

    /// Accepts the next client, waiting as long as it takes.
    ///
    /// A client that fails the handshake (a uid not allowed, not a shmring
    /// client, a policy that leaves no transport, a stall longer than the
    /// handshake timeout) is told why where possible, closed, and skipped: the call
    /// goes on waiting for the next.
    ///
    /// # Errors
    /// [`Error::Io`] if accepting fails (a client's failed handshake is not an
    /// error of the call).
    pub fn accept(&self) -> Result<Connection> {
        self.accept_deadline(None)
    }

    /// As [`accept`](Self::accept), giving up after `timeout` with
    /// [`Error::TimedOut`].
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and [`Error::TimedOut`].
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection> {
        self.accept_deadline(deadline_after(timeout))
    }

    /// Accepts a client that is waiting now: [`Error::Empty`] if none is. A
    /// waiting client is handshaken, which takes a round trip (bounded by the
    /// handshake timeout).
    ///
    /// # Errors
    /// [`Error::Empty`]; as [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<Connection> {
        match self.accept_deadline(Some(Instant::now())) {
            Err(Error::TimedOut) => Err(Error::Empty),
            other => other,
        }
    }

    /// As [`accept`](Self::accept), giving up at `deadline` (`None`: never).
    ///
    /// # Errors
    /// As [`accept_timeout`](Self::accept_timeout).
    pub fn accept_deadline(&self, deadline: Option<Instant>) -> Result<Connection> {
        loop {
            let (fd, what, transport) = self.accept_socket(deadline)?;
            // A client that has connected gets its handshake time even when the
            // caller's deadline is near (a `try_accept` included).
            let handshake_deadline = deadline_after(self.config.handshake_timeout);
            if let Ok(connection) =
                server_handshake(fd, transport, what, &self.config, handshake_deadline)
            {
                return Ok(connection);
            }
        }
    }

    fn accept_socket(&self, deadline: Option<Instant>) -> Result<(OwnedFd, String, Transport)> {
        match &self.kind {
            ListenerKind::Unix(fd) => {
                let accepted = fd.accept(deadline, &self.what)?;
                Ok((accepted, self.what.clone(), Transport::UnixSocket))
            }
            ListenerKind::Tcp(listener) => loop {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        let what = format!("tcp {peer}");
                        let fd = tcp_setup(stream, &what)?;
                        return Ok((fd, what, Transport::Tcp));
                    }
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
                match sys::wait_for(listener.as_fd(), sys::PollFlags::IN, deadline) {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(Error::TimedOut),
                    Err(e) => return Err(sys::error("poll", self.what.as_str(), e)),
                }
            },
        }
    }
}

/// Best effort: tells a refused client why, without waiting.
fn refuse(fd: BorrowedFd<'_>, reason: u32, found: u64, expected: u64) {
    let reply = Reply::refused(reason, found, expected).encode();
    let _ = fdpass::send_with_fds(fd, &reply, &[]);
}

/// The listener's side of the handshake on an accepted socket.
fn server_handshake(
    fd: OwnedFd,
    transport: Transport,
    what: String,
    config: &ListenerConfig,
    deadline: Option<Instant>,
) -> Result<Connection> {
    let sock = fd.as_fd();
    let mut peer = None;
    if transport == Transport::UnixSocket {
        let cred =
            fdpass::peer_credentials(sock).map_err(|e| Error::io("SO_PEERCRED", &what, e))?;
        if !config.allowed_uids.contains(&cred.uid) {
            refuse(
                sock,
                handshake::REFUSED_UID,
                cred.uid.into(),
                sys::euid().into(),
            );
            return Err(Error::PermissionDenied {
                what: format!("{what}: client uid {} is not allowed", cred.uid),
            });
        }
        peer = Some(cred);
    }
    let mut hello = [0u8; handshake::HELLO_LEN];
    handshake::read_exact(sock, &mut hello, None, deadline, &what)?;
    let Some(hello) = Hello::decode(&hello) else {
        refuse(sock, handshake::REFUSED_BAD_HELLO, 0, 0);
        return Err(failed(&what, "not a shmring client (bad magic)", 0, 0));
    };
    if hello.version != handshake::VERSION {
        refuse(
            sock,
            handshake::REFUSED_VERSION,
            hello.version.into(),
            handshake::VERSION.into(),
        );
        return Err(failed(
            &what,
            "the client speaks another protocol version",
            hello.version.into(),
            handshake::VERSION.into(),
        ));
    }
    let bad_field = if hello.reserved != 0 {
        Some(("reserved field not zero", u64::from(hello.reserved)))
    } else if hello.capacity != 0 && !valid_capacity(hello.capacity) {
        Some(("capacity not a supported power of two", hello.capacity))
    } else {
        None
    };
    let client_policy = match (handshake::policy_from_code(hello.policy), bad_field) {
        (Some(policy), None) => policy,
        (None, _) => {
            refuse(sock, handshake::REFUSED_BAD_HELLO, hello.policy.into(), 0);
            return Err(failed(
                &what,
                "unknown transport policy",
                hello.policy.into(),
                0,
            ));
        }
        (Some(_), Some((reason, found))) => {
            refuse(sock, handshake::REFUSED_BAD_HELLO, found, 0);
            return Err(failed(&what, reason, found, 0));
        }
    };
    let capacity = match hello.capacity {
        0 => config.capacity,
        wanted => (wanted as usize).min(config.max_capacity),
    };
    let max_message_len = shmring_core::spsc::layout::max_message_len(capacity);
    let shm_allowed = transport == Transport::UnixSocket
        && client_policy != TransportPolicy::SocketOnly
        && config.policy != TransportPolicy::SocketOnly;
    let shm_required = client_policy == TransportPolicy::SharedMemoryOnly
        || config.policy == TransportPolicy::SharedMemoryOnly;
    if shm_required && !shm_allowed {
        refuse(
            sock,
            handshake::REFUSED_POLICY,
            handshake::policy_code(client_policy).into(),
            handshake::policy_code(config.policy).into(),
        );
        return Err(failed(
            &what,
            "the two sides' transport policies leave no transport",
            handshake::policy_code(client_policy).into(),
            handshake::policy_code(config.policy).into(),
        ));
    }
    let rings = if shm_allowed {
        match ServerRings::create(capacity, config.wait) {
            Ok(rings) => Some(rings),
            Err(_) if shm_required => {
                refuse(sock, handshake::REFUSED_NO_SHM, 0, 0);
                return Err(failed(
                    &what,
                    "shared memory is required and no memfd could be made",
                    0,
                    0,
                ));
            }
            // The fallback: memfd refused, no memory.
            Err(_) => None,
        }
    } else {
        None
    };
    let client_bells = rings
        .as_ref()
        .and_then(|r| handshake::take_client_bells(&r.c2s, &r.s2c));
    let reply = Reply {
        version: handshake::VERSION,
        decision: if rings.is_some() {
            handshake::DECISION_SHM
        } else {
            handshake::DECISION_SOCKET
        },
        detail: match (&rings, &client_bells) {
            (Some(_), Some(_)) => handshake::FDS_WITH_BELLS as u32,
            (Some(_), None) => handshake::FDS_RINGS as u32,
            (None, _) => 0,
        },
        a: capacity as u64,
        b: if rings.is_some() {
            segment_size(capacity)? as u64
        } else {
            0
        },
        max_message_len: max_message_len as u64,
    };
    match &rings {
        Some(rings) => {
            let mut fds = vec![rings.c2s.segment().fd(), rings.s2c.segment().fd()];
            fds.extend(client_bells.iter().flatten().map(AsFd::as_fd));
            handshake::write_all(sock, &reply.encode(), &fds, deadline, &what)?;
            // Our copies of the client's ends go now: the client's death hangs
            // our doorbells up.
            drop(client_bells);
        }
        None => handshake::write_all(sock, &reply.encode(), &[], deadline, &what)?,
    }
    let mut ack = [0u8; handshake::ACK_LEN];
    handshake::read_exact(sock, &mut ack, None, deadline, &what)?;
    match handshake::decode_ack(&ack) {
        Some(handshake::ACK_ACCEPTED) => {}
        Some(status) => {
            return Err(failed(
                &what,
                "the client refused the listener's offer",
                status.into(),
                handshake::ACK_ACCEPTED.into(),
            ));
        }
        None => return Err(failed(&what, "malformed ack", 0, 0)),
    }
    let peer = peer.map(|c| PeerCredentials {
        pid: c.pid,
        uid: c.uid,
        gid: c.gid,
    });
    match rings {
        Some(rings) => {
            let ServerRings { c2s, s2c, tx, rx } = rings;
            Connection::over_rings(fd, tx, rx, s2c, c2s, what, peer)
        }
        None => Ok(Connection::over_stream(
            fd,
            transport,
            max_message_len,
            what,
            peer,
        )),
    }
}

/// The two rings the listener makes for a client, with its own ends claimed.
struct ServerRings {
    /// Client to server: the listener receives.
    c2s: crate::channel::Channel,
    /// Server to client: the listener sends.
    s2c: crate::channel::Channel,
    tx: Sender,
    rx: Receiver,
}

impl ServerRings {
    fn create(capacity: usize, wait: WaitStrategy) -> Result<Self> {
        let builder = ChannelBuilder::memfd()
            .capacity(capacity)
            .wait_strategy(wait);
        let c2s = builder.create()?;
        let s2c = builder.create()?;
        let rx = c2s.receiver()?;
        let tx = s2c.sender()?;
        Ok(Self { c2s, s2c, tx, rx })
    }
}
