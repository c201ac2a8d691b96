//! Connections ([`shmring::connection`]): the parent binds a [`Listener`] in a
//! fresh private folder, the child [`connect`](shmring::connection::ConnectOptions::connect)s
//! to it, and the round trips run over the [`Connection`] they get.
//!
//! - `connection-shm` ([`Method::ConnectionShm`]): both sides require shared
//!   memory, so the connection is upgraded to two memfd rings (4 KiB, as the
//!   busy-spin row's) with [`WaitStrategy::BusySpin`] on both ends. Its round trip
//!   against [`Method::ShmringBusySpin`] is the connection layer's cost on the
//!   fast path (the liveness flags the watcher thread keeps, the dispatch between
//!   transports).
//! - `connection-socket` ([`Method::ConnectionSocket`]): both sides forbid shared
//!   memory, so the messages go length-framed over the Unix stream socket (the
//!   fallback). Its round trip against [`Method::UnixStream`] is the framing's
//!   cost over a bare socket pair.
//!
//! Each side checks that it got the transport the row names: a row never
//! measures the other transport by accident.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use shmring::WaitStrategy;
use shmring::connection::{ConnectOptions, Connection, Listener, Transport, TransportPolicy};

use super::{
    ChildGuard, Duplex, Method, NAME_VAR, PATIENCE, ROUND_TRIP_CAPACITY, Result, env_string,
    unique_tag,
};

/// The listener's name in its folder.
const NAME: &str = "bench";

/// Both ends wait as the busy-spin row's channels do (no effect on a socket).
const WAIT: WaitStrategy = WaitStrategy::BusySpin;

/// The row's transport policy (both sides) and the transport it must give.
fn policy(method: Method) -> Result<(TransportPolicy, Transport)> {
    match method {
        Method::ConnectionShm => Ok((TransportPolicy::SharedMemoryOnly, Transport::SharedMemory)),
        Method::ConnectionSocket => Ok((TransportPolicy::SocketOnly, Transport::UnixSocket)),
        other => Err(format!("{} is not a connection row", other.name()).into()),
    }
}

fn check_transport(connection: &Connection, expected: Transport) -> Result<()> {
    if connection.transport() != expected {
        return Err(format!(
            "the connection runs over {}, the row needs {expected}",
            connection.transport()
        )
        .into());
    }
    Ok(())
}

/// One side's connection, for round trips. No call sets a deadline, as for the
/// busy-spin row: a peer that dies is seen at once (the connection's watcher, or
/// the socket's end), and the child's watchdog ends a child that hangs.
pub(super) struct ConnectionDuplex(Connection);

impl Duplex for ConnectionDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.0.send(msg)?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let n = self.0.recv(buf)?;
        if n != buf.len() {
            return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
        }
        Ok(())
    }
}

/// The parent's listener and its folder (removed on drop, after the listener
/// has removed its socket).
pub(super) struct Rendezvous {
    listener: Option<Listener>,
    dir: PathBuf,
    expected: Transport,
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        drop(self.listener.take());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Binds the row's listener in a fresh folder and tells the child where
/// ([`NAME_VAR`]).
pub(super) fn parent(method: Method, command: &mut Command) -> Result<Rendezvous> {
    let (policy, expected) = policy(method)?;
    let dir = std::env::temp_dir().join(format!("shmring-bench-conn-{}", unique_tag()));
    let mut rendezvous = Rendezvous {
        listener: None,
        dir: dir.clone(),
        expected,
    };
    rendezvous.listener = Some(
        Listener::builder(NAME)
            .directory(&dir)
            .capacity(ROUND_TRIP_CAPACITY)
            .transport(policy)
            .wait_strategy(WAIT)
            .bind()?,
    );
    command.env(NAME_VAR, &dir);
    Ok(rendezvous)
}

impl Rendezvous {
    /// Accepts the spawned child's connection, failing early if the child exits
    /// first or does not come within [`PATIENCE`].
    pub(super) fn accept(&self, child: &mut ChildGuard) -> Result<ConnectionDuplex> {
        let listener = self.listener.as_ref().expect("bound until dropped");
        let since = std::time::Instant::now();
        loop {
            match listener.accept_timeout(Duration::from_millis(20)) {
                Ok(connection) => {
                    check_transport(&connection, self.expected)?;
                    return Ok(ConnectionDuplex(connection));
                }
                Err(shmring::Error::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(status) = child.try_wait()? {
                return Err(format!("the child exited before it connected: {status}").into());
            }
            if since.elapsed() > PATIENCE {
                return Err(format!("the child did not connect in {PATIENCE:?}").into());
            }
        }
    }
}

/// The child's connection to the parent's listener.
pub(super) fn child(method: Method) -> Result<ConnectionDuplex> {
    let (policy, expected) = policy(method)?;
    let dir = PathBuf::from(env_string(NAME_VAR)?);
    let connection = ConnectOptions::new()
        .directory(dir)
        .transport(policy)
        .wait_strategy(WAIT)
        .timeout(PATIENCE)
        .connect(NAME)?;
    check_transport(&connection, expected)?;
    Ok(ConnectionDuplex(connection))
}
