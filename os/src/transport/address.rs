//! Addresses naming a transport and where it is, so that a program switches
//! method by changing a string: [`connect_sender`] and [`listen`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::blocking::deadline_after;
use crate::channel::ChannelBuilder;
use crate::error::{Error, Result, Role};
use crate::options::SegmentBuilder as _;
use crate::readiness::{ReceiveReadiness, SendReadiness};
use crate::sys;
use crate::transport::fifo::{FifoReceiver, FifoSender};
use crate::transport::mq::MqBuilder;
use crate::transport::seqpacket::SeqpacketListener;
use crate::transport::tcp::TcpListener;
use crate::transport::unix::UnixListener;

/// How often [`connect_sender_timeout`] tries again while nobody receives yet.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

const SCHEMES: &str = "expected unix:<path>, seqpacket:<path>, tcp://<host>:<port>, \
                       fifo:<path>, mq:<name>, shm:<name> or file:<path>";

/// A parsed transport address.
///
/// | form | transport |
/// |---|---|
/// | `unix:/path` | [`unix`](super::unix) stream socket (path ≤ 107 bytes) |
/// | `seqpacket:/path` | [`seqpacket`](super::seqpacket) socket (path ≤ 107 bytes) |
/// | `tcp://host:port` | [`tcp`](super::tcp); `tcp://:port` is 127.0.0.1; `[::1]` for IPv6 |
/// | `fifo:/path` | [`fifo`](super::fifo) |
/// | `mq:name` | [`mq`](super::mq) queue `/shmring.<name>` |
/// | `shm:name` | shared-memory channel ([`ChannelBuilder::shm`], 64 KiB ring) |
/// | `file:/path` | file-backed channel ([`ChannelBuilder::file`], 64 KiB ring) |
///
/// Anonymous pipes have no address: see [`pipe`](super::pipe).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Address {
    /// A Unix stream socket path.
    Unix(PathBuf),
    /// A Unix `SOCK_SEQPACKET` socket path.
    Seqpacket(PathBuf),
    /// A TCP host (name or address, without IPv6 brackets) and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port (0 when listening: any free port).
        port: u16,
    },
    /// A FIFO path.
    Fifo(PathBuf),
    /// A POSIX message queue name.
    Mq(String),
    /// A shared-memory channel name.
    Shm(String),
    /// A file-backed channel path.
    File(PathBuf),
}

fn invalid(address: &str, reason: &'static str) -> Error {
    Error::InvalidAddress {
        address: address.to_owned(),
        reason,
    }
}

fn path(address: &str, rest: &str) -> Result<PathBuf> {
    if rest.is_empty() {
        return Err(invalid(address, "empty path"));
    }
    if rest.contains('\0') {
        return Err(invalid(address, "contains a NUL byte"));
    }
    Ok(PathBuf::from(rest))
}

fn socket_path(address: &str, rest: &str) -> Result<PathBuf> {
    let path = path(address, rest)?;
    match sys::socket_path_problem(&path) {
        Some(reason) => Err(invalid(address, reason)),
        None => Ok(path),
    }
}

fn tcp(address: &str, rest: &str) -> Result<Address> {
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(invalid(address, "no port: expected tcp://<host>:<port>"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(address, "the port is not a number from 0 to 65535"))?;
    let host = if host.is_empty() {
        "127.0.0.1"
    } else if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .ok_or_else(|| invalid(address, "an IPv6 host needs its closing ']'"))?
    } else if host.contains(':') {
        return Err(invalid(
            address,
            "an IPv6 host goes in brackets: tcp://[::1]:<port>",
        ));
    } else {
        host
    };
    if host.is_empty() || host.contains(['/', '\0', ' ']) {
        return Err(invalid(address, "not a host name or address"));
    }
    Ok(Address::Tcp {
        host: host.to_owned(),
        port,
    })
}

impl Address {
    /// Parses `address` (see the table above).
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] naming what is wrong (an unknown scheme, an empty
    /// path, a socket path over 107 bytes, a port out of range, a pipe, which has
    /// no address); [`Error::InvalidName`] for a queue or channel name that breaks
    /// the name rules.
    pub fn parse(address: &str) -> Result<Self> {
        let (scheme, rest) = address
            .split_once(':')
            .ok_or_else(|| invalid(address, SCHEMES))?;
        match scheme {
            "unix" => Ok(Self::Unix(socket_path(address, rest)?)),
            "seqpacket" => Ok(Self::Seqpacket(socket_path(address, rest)?)),
            "tcp" => match rest.strip_prefix("//") {
                Some(rest) => tcp(address, rest),
                None => Err(invalid(address, "expected tcp://<host>:<port>")),
            },
            "fifo" => Ok(Self::Fifo(path(address, rest)?)),
            "file" => Ok(Self::File(path(address, rest)?)),
            "mq" => {
                super::mq::validate_name(rest)?;
                Ok(Self::Mq(rest.to_owned()))
            }
            "shm" => {
                // Shared-memory channel names follow the same rules.
                super::mq::validate_name(rest)?;
                Ok(Self::Shm(rest.to_owned()))
            }
            "pipe" => Err(invalid(
                address,
                "an anonymous pipe has no address: use transport::pipe::spawn and \
                 transport::pipe::from_env",
            )),
            _ => Err(invalid(address, SCHEMES)),
        }
    }
}

impl FromStr for Address {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |f: &mut fmt::Formatter<'_>, scheme: &str, path: &Path| {
            write!(f, "{scheme}:{}", path.display())
        };
        match self {
            Self::Unix(path) => p(f, "unix", path),
            Self::Seqpacket(path) => p(f, "seqpacket", path),
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Fifo(path) => p(f, "fifo", path),
            Self::Mq(name) => write!(f, "mq:{name}"),
            Self::Shm(name) => write!(f, "shm:{name}"),
            Self::File(path) => p(f, "file", path),
        }
    }
}

/// Opens a sender to the receiver at `address`, whatever its transport, at once.
///
/// # Errors
/// As [`Address::parse`]; then the transport's own: [`Error::NotFound`] and
/// [`Error::ConnectionRefused`] while nobody receives there (see
/// [`connect_sender_timeout`] to wait), [`Error::PermissionDenied`],
/// [`Error::RoleTaken`], [`Error::Io`].
pub fn connect_sender(address: &str) -> Result<Box<dyn SendReadiness + Send>> {
    connect(&Address::parse(address)?)
}

/// As [`connect_sender`], trying again while nobody receives there yet
/// (`NotFound`, `ConnectionRefused`) for up to `timeout`.
///
/// # Errors
/// As [`connect_sender`], and [`Error::TimedOut`].
pub fn connect_sender_timeout(
    address: &str,
    timeout: Duration,
) -> Result<Box<dyn SendReadiness + Send>> {
    connect_sender_deadline(address, deadline_after(timeout))
}

/// As [`connect_sender`], trying again while nobody receives there yet
/// (`NotFound`, `ConnectionRefused`) until `deadline` (`None`: as long as it
/// takes).
///
/// # Errors
/// As [`connect_sender`], and [`Error::TimedOut`].
pub fn connect_sender_deadline(
    address: &str,
    deadline: Option<Instant>,
) -> Result<Box<dyn SendReadiness + Send>> {
    let address = Address::parse(address)?;
    loop {
        match connect(&address) {
            Err(Error::NotFound { .. } | Error::ConnectionRefused { .. }) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Err(Error::TimedOut);
                }
                let pause = deadline.map_or(RETRY_PAUSE, |d| RETRY_PAUSE.min(d - now));
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
}

fn connect(address: &Address) -> Result<Box<dyn SendReadiness + Send>> {
    Ok(match address {
        Address::Unix(path) => Box::new(super::unix::connect(path)?.0),
        Address::Seqpacket(path) => Box::new(super::seqpacket::connect(path)?.0),
        Address::Tcp { host, port } => Box::new(super::tcp::connect((host.as_str(), *port))?.0),
        Address::Fifo(path) => Box::new(FifoSender::open(path)?),
        Address::Mq(name) => Box::new(MqBuilder::new(name).open_sender()?),
        Address::Shm(name) => Box::new(ChannelBuilder::shm(name).open()?.sender()?),
        Address::File(path) => Box::new(ChannelBuilder::file(path).open()?.sender()?),
    })
}

/// Starts receiving at `address`: binds the socket, or creates the FIFO, queue or
/// channel (removed again when the listener and the receiver it gave are
/// dropped). [`TransportListener::accept`] then gives the receiver.
///
/// # Errors
/// As [`Address::parse`]; then the transport's own: [`Error::AlreadyExists`],
/// [`Error::LimitExceeded`], [`Error::PermissionDenied`], [`Error::Io`].
pub fn listen(address: &str) -> Result<TransportListener> {
    let address = Address::parse(address)?;
    let kind = match &address {
        Address::Unix(path) => Kind::Unix(UnixListener::bind(path)?),
        Address::Seqpacket(path) => Kind::Seqpacket(SeqpacketListener::bind(path)?),
        Address::Tcp { host, port } => Kind::Tcp(TcpListener::bind((host.as_str(), *port))?),
        Address::Fifo(path) => Kind::Once(Some(Box::new(FifoReceiver::create(path)?))),
        Address::Mq(name) => Kind::Once(Some(Box::new(MqBuilder::new(name).create_receiver()?))),
        Address::Shm(name) => Kind::Once(Some(Box::new(
            ChannelBuilder::shm(name).create()?.receiver()?,
        ))),
        Address::File(path) => Kind::Once(Some(Box::new(
            ChannelBuilder::file(path)
                .unlink_on_drop(true)
                .create()?
                .receiver()?,
        ))),
    };
    let address = match (&kind, address) {
        (Kind::Tcp(listener), Address::Tcp { host, .. }) => Address::Tcp {
            host,
            port: listener.local_addr().port(),
        },
        (_, address) => address,
    };
    Ok(TransportListener { kind, address })
}

enum Kind {
    Unix(UnixListener),
    Seqpacket(SeqpacketListener),
    Tcp(TcpListener),
    /// A FIFO, queue or channel: one receiver, made at once.
    Once(Option<Box<dyn ReceiveReadiness + Send>>),
}

/// Where [`listen`] receives: accepts the sender's connection (sockets) or hands
/// out the receiver it made (FIFO, queue, channel).
pub struct TransportListener {
    kind: Kind,
    address: Address,
}

impl fmt::Debug for TransportListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportListener")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl TransportListener {
    /// The address senders connect to, in the form [`connect_sender`] takes (for
    /// `tcp://host:0`, with the port picked).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The receiver for the next sender, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] on a second call for a FIFO, queue or channel (it has
    /// one receiver); [`Error::Io`].
    pub fn accept(&mut self) -> Result<Box<dyn ReceiveReadiness + Send>> {
        self.accept_deadline(None)
    }

    /// As [`accept`](Self::accept), giving up after `timeout`.
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and [`Error::TimedOut`].
    pub fn accept_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Box<dyn ReceiveReadiness + Send>> {
        self.accept_deadline(deadline_after(timeout))
    }

    /// As [`accept`](Self::accept), giving up at `deadline` (`None`: never). A
    /// socket connection's sending half is dropped (shut down).
    ///
    /// # Errors
    /// As [`accept_timeout`](Self::accept_timeout).
    pub fn accept_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Box<dyn ReceiveReadiness + Send>> {
        Ok(match &mut self.kind {
            Kind::Unix(listener) => Box::new(listener.accept_deadline(deadline)?.1),
            Kind::Seqpacket(listener) => Box::new(listener.accept_deadline(deadline)?.1),
            Kind::Tcp(listener) => Box::new(listener.accept_deadline(deadline)?.1),
            Kind::Once(receiver) => receiver.take().ok_or(Error::RoleTaken {
                role: Role::Receiver,
                owner: std::process::id(),
            })?,
        })
    }
}
