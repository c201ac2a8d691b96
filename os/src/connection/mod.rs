//! Connections: a named rendezvous on a Unix socket that upgrades to a pair of
//! shared-memory rings, or carries the messages over the socket (or TCP) when
//! shared memory cannot be had.
//!
//! A service binds a name; a client connects to it; each gets a duplex
//! [`Connection`]:
//!
//! ```no_run
//! use shmring::{Listener, connect};
//! # fn main() -> shmring::Result<()> {
//! // The service:
//! let listener = Listener::bind("orders")?;
//! // A client, in another process:
//! let mut client = connect("orders")?;
//! client.send(b"buy 100")?;
//! // The service:
//! let mut conn = listener.accept()?;
//! let order = conn.recv_vec()?;
//! conn.send(b"done")?;
//! # Ok(()) }
//! ```
//!
//! - **Rendezvous.** The listener's socket is `<dir>/<name>.sock` in a private
//!   directory: `$XDG_RUNTIME_DIR/shmring`, or `/tmp/shmring-<euid>` where
//!   `XDG_RUNTIME_DIR` is unset, or one the caller names. The directory is checked
//!   before use (a directory, not a symlink, owned by us, mode within `0o700`), the
//!   socket file is `0600`, and the listener checks every client's uid with
//!   `SO_PEERCRED` against an allow-list (default: its own uid). The client checks
//!   the server's uid the same way (its own uid, root, or ones it trusts).
//! - **Upgrade.** The listener creates two rings in anonymous memfds, sealed against
//!   shrinking and growing, and passes them over the socket (`SCM_RIGHTS`). The
//!   client checks that exactly two descriptors came, each a memfd sealed with
//!   `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, of the announced size, before it
//!   maps them. Nothing is ever named in `/dev/shm`: nothing to clean after a
//!   crash, and the container's `/dev/shm` size limit does not apply.
//! - **Fallback.** Where a memfd cannot be had (refused, no memory) or shared
//!   memory is forbidden ([`TransportPolicy::SocketOnly`], or the environment
//!   variable `SHMRING_NO_SHM=1` on either side), the messages go over the socket
//!   itself, length-framed as in [`transport::unix`](crate::transport::unix).
//!   `tcp://host:port` addresses use TCP. [`Connection::transport`] says which.
//! - **Liveness.** The socket stays open beside the rings. A watcher thread per
//!   connection sees its end (the peer closed it, or died and the kernel closed it)
//!   and wakes any call parked on the rings: the call returns
//!   [`Error::Disconnected`] at once (after the messages the peer committed), not
//!   after the rings' 25 ms lock probe.
//! - **Many clients.** Each accepted client gets its own pair of rings. Accepting
//!   blocks, times out, or does not wait ([`Listener::try_accept`]).
//!
//! Not to be confused with [`TransportListener`](crate::transport::TransportListener)
//! ([`transport::listen`](crate::transport::listen)): the same rendezvous in its
//! other shape, one-way, on the exact kernel mechanism its address names
//! (`unix:`, `tcp://`, `mq:`, `shm:`...), with no handshake and no upgrade. Use a
//! [`Listener`] for anything duplex or request/response on one machine, the
//! transports to pick the mechanism yourself or for one-way streams; the
//! [`transport`](crate::transport) module's table sets them side by side.
//!
//! TCP has no authentication and no encryption: anyone who reaches the port can
//! connect (`tcp://:port` listens on 127.0.0.1 only). See
//! [`transport::tcp`](crate::transport::tcp).
//!
//! docs/design/connection-handshake.md has the handshake byte by byte.

mod connect;
mod dir;
mod duplex;
mod handshake;
mod list;
mod listener;
mod watcher;

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys;
use crate::transport::address::Address;

pub use connect::{ConnectOptions, connect, connect_timeout};
pub use duplex::{Connection, ConnectionReceiver, ConnectionSender, PeerCredentials};
pub use list::{ListenerStatus, list_listeners};
pub use listener::{Listener, ListenerBuilder};

/// The environment variable that forbids shared memory: set to anything but
/// empty or `0`, connections (and listeners) in this process run over the socket.
/// A connection that requires shared memory then fails.
pub const NO_SHM_ENV: &str = "SHMRING_NO_SHM";

/// The ring capacity a listener offers by default: 256 KiB per direction.
pub const DEFAULT_CAPACITY: usize = 1 << 18;

/// The largest ring capacity a listener grants a client that asks, by default:
/// 16 MiB per direction.
pub const DEFAULT_MAX_CAPACITY: usize = 1 << 24;

/// How long a listener waits for one client's handshake, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection's messages travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A pair of shared-memory rings (memfds), with the Unix socket beside them for
    /// liveness.
    SharedMemory,
    /// The Unix socket itself, length-framed.
    UnixSocket,
    /// A TCP connection, length-framed.
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::SharedMemory => "shared memory",
            Transport::UnixSocket => "unix socket",
            Transport::Tcp => "tcp",
        })
    }
}

/// Which transports a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransportPolicy {
    /// Shared memory if both sides can, else the socket (the default).
    #[default]
    Any,
    /// Shared memory or nothing: a connection that cannot have it fails.
    SharedMemoryOnly,
    /// Never shared memory: the socket (what `SHMRING_NO_SHM=1` makes of `Any`).
    SocketOnly,
}

/// The policy after the environment: `SHMRING_NO_SHM` turns `Any` into
/// `SocketOnly`, and refuses `SharedMemoryOnly`.
fn effective_policy(policy: TransportPolicy) -> Result<TransportPolicy> {
    let forbidden = std::env::var_os(NO_SHM_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    match (policy, forbidden) {
        (TransportPolicy::Any, true) => Ok(TransportPolicy::SocketOnly),
        (TransportPolicy::SharedMemoryOnly, true) => Err(Error::Unsupported {
            what: "shared memory, which this connection requires, is forbidden by SHMRING_NO_SHM",
        }),
        (policy, _) => Ok(policy),
    }
}

/// Where a listener listens or a client connects, parsed.
enum Endpoint {
    /// A name in a socket directory.
    Named(String),
    /// `tcp://host:port`.
    Tcp { host: String, port: u16 },
}

fn parse_endpoint(address: &str) -> Result<Endpoint> {
    if address.starts_with("tcp://") {
        match Address::parse(address)? {
            Address::Tcp { host, port } => Ok(Endpoint::Tcp { host, port }),
            _ => unreachable!("a tcp:// address parses as Tcp"),
        }
    } else {
        crate::segment::names::validate_name(address)?;
        Ok(Endpoint::Named(address.to_owned()))
    }
}

fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

fn describe_unix(path: &Path) -> String {
    format!("connection socket {}", path.display())
}

/// Capacity rules shared by both sides: a power of two the ring supports.
fn valid_capacity(capacity: u64) -> bool {
    usize::try_from(capacity).is_ok_and(|c| shmring_core::spsc::layout::check_capacity(c).is_ok())
}

fn segment_size(capacity: usize) -> Result<usize> {
    shmring_core::spsc::layout::segment_layout(capacity)
        .map(|l| l.size())
        .map_err(|_| Error::InvalidCapacity {
            capacity: capacity as u64,
        })
}

/// Non-blocking, `TCP_NODELAY`, keep-alive (as [`transport::tcp`](crate::transport::tcp)).
fn tcp_setup(stream: std::net::TcpStream, what: &str) -> Result<OwnedFd> {
    let setup = |stream: &std::net::TcpStream| -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        sys::set_tcp_keepalive(stream.as_fd())
    };
    setup(&stream).map_err(|e| sys::error("setsockopt", what, e))?;
    Ok(OwnedFd::from(stream))
}

#[cfg(test)]
mod tests {
    use super::handshake::{Hello, Reply};
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn halves_are_send() {
        assert_send::<ConnectionSender>();
        assert_send::<ConnectionReceiver>();
        assert_send::<Connection>();
        assert_send::<Listener>();
    }

    #[test]
    fn records_round_trip() {
        let hello = Hello {
            version: handshake::VERSION,
            policy: 1,
            reserved: 0,
            capacity: 4096,
        };
        assert_eq!(Hello::decode(&hello.encode()), Some(hello));
        let reply = Reply::refused(handshake::REFUSED_UID, 65534, 0);
        assert_eq!(Reply::decode(&reply.encode()), Some(reply));
        assert_eq!(
            handshake::decode_ack(&handshake::encode_ack(handshake::ACK_REFUSED)),
            Some(handshake::ACK_REFUSED)
        );
        let mut bad = hello.encode();
        bad[0] ^= 1;
        assert_eq!(Hello::decode(&bad), None);
    }
}
