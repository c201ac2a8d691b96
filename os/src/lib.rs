//! shmring: inter-process channels over a lock-free shared-memory ring.
//!
//! A [`ChannelBuilder`] creates or opens a channel: one single-producer
//! single-consumer ring ([`shmring_core`]) in a shared-memory segment, backed by
//! named POSIX shared memory, an anonymous memfd, or a regular file. Each side claims
//! its role once: a [`Sender`] and a [`Receiver`], in two processes (or threads).
//!
//! - **Fast path**: a message is a frame in the ring; when nobody waits, sending and
//!   receiving make no system call.
//! - **Blocking**: every blocking call has a `_timeout` (and `_deadline`) variant and
//!   a `try_` twin that never blocks. How a blocked call waits is a
//!   [`WaitStrategy`]: spin, spin then sleep on a futex (the default), or sleep.
//! - **Liveness**: each endpoint holds a lock the kernel drops when its process dies
//!   (SIGKILL included). A receiver whose sender has gone gets every message the
//!   sender committed, then [`Error::Disconnected`]; a sender whose receiver has gone
//!   gets `Disconnected` instead of waiting on a full ring forever; a blocked call
//!   sees a death within [`PEER_DEATH_BOUND`](channel::PEER_DEATH_BOUND) of the
//!   kernel releasing the dead process's lock. A role whose
//!   holder died can be claimed again; what a dead receiver read but did not release
//!   is delivered to the next one.
//! - **Events and semaphores**: an [`EventBuilder`] or [`SemaphoreBuilder`] makes a
//!   named [`Event`] (notify one or all; wait, with a key for waits that cannot miss
//!   a notification) or counting [`Semaphore`] in shared memory, one futex word each,
//!   with the channels' naming, permission and cleanup rules.
//! - **Many to many**: an [`MpmcChannelBuilder`] makes a channel that any number of
//!   processes send into and receive from (fixed-size slots; each message goes to
//!   one receiver); an endpoint that dies holding a slot is recovered after a
//!   bound and counted ([`mpmc`]).
//! - **Trust**: the segment is validated on open (owner, mode, size, then every
//!   header field), and the ring validates every position and length it reads. A
//!   hostile peer can send garbage bytes or cause [`Error::Corrupted`], never an
//!   out-of-bounds access. ARCHITECTURE.md has the threat model.
//!
//! ```no_run
//! use shmring::ChannelBuilder;
//! # fn main() -> shmring::Result<()> {
//! // In one process:
//! let mut tx = ChannelBuilder::shm("telemetry").capacity(1 << 20).create()?.sender()?;
//! tx.send(b"hello")?;
//! // In another:
//! let mut rx = ChannelBuilder::shm("telemetry").open()?.receiver()?;
//! let mut buf = vec![0u8; rx.max_message_len()];
//! let n = rx.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! # Ok(()) }
//! ```
//!
//! Linux only: the crate uses the futex, memfd and OFD locks, and does not build
//! elsewhere.
//!
//! # Floors
//!
//! The modules stand in floors, lowest first; a module imports only from its own
//! floor and those below (doc links aside), and names each item by its own
//! module's path, so the `use` lines show the floors:
//!
//! 1. [`error`]: the error types every floor returns.
//! 2. the system calls: the futex (`futex`), OFD locks, fd passing, polling and
//!    credentials.
//! 3. the endpoint runtime: the [`WaitStrategy`], deadlines, the peer's liveness
//!    and the blocking driver (`blocking`).
//! 4. [`segment`]: names, create, open and trust checks, listing, the mapping,
//!    and the [`SegmentOptions`] a segment is created and opened with.
//! 5. the message traits, [`MessageSender`] and [`MessageReceiver`].
//! 6. [`options`]: the builder setters, defined once ([`SegmentBuilder`]).
//! 7. the kinds: [`channel`], [`mpmc`], [`event`], [`semaphore`] (the last two
//!    over one synchronisation object).
//! 8. [`transport`], then [`connection`], then [`rpc`].
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::multiple_unsafe_ops_per_block)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shmring needs Linux (futex, memfd, OFD locks); other systems are not supported yet"
);

mod blocking;
pub mod channel;
pub mod connection;
pub mod error;
pub mod event;
mod futex;
mod message;
pub mod mpmc;
pub mod options;
mod readiness;
pub mod rpc;
pub mod segment;
pub mod semaphore;
mod sync_object;
mod sys;
pub mod transport;

pub use blocking::WaitStrategy;
pub use channel::{Channel, ChannelBuilder, Received, Receiver, SendGrant, Sender};
pub use connection::{Connection, Listener, connect};
pub use error::{
    Corrupted, Error, FrameTooLong, IoFailure, RecvError, RecvTimeoutError, Result, Role,
    SegmentCorrupted, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use event::{Event, EventBuilder, EventKey};
pub use message::{MessageReceiver, MessageSender};
pub use mpmc::{MpmcChannel, MpmcChannelBuilder, MpmcReceiver, MpmcSender, MpmcStats};
pub use options::SegmentBuilder;
pub use readiness::watcher::NO_WATCHER_VAR;
pub use readiness::{Readiness, Wakeups};
pub use rpc::{RpcClient, RpcServer};
pub use segment::{Segment, SegmentOptions, list_segments};
pub use semaphore::{SEMAPHORE_MAX_LIMIT, Semaphore, SemaphoreBuilder};
pub use shmring_core as core;
pub use sync_object::{OBJECT_LAYOUT_VERSION, OBJECT_SIZE};
pub use sys::count::system_calls_on_this_thread;
