//! shmring: inter-process communication over a lock-free shared-memory ring,
//! with the classic IPC methods behind the same message API.
//!
//! # Which API do I use
//!
//! | you want | use | example |
//! |---|---|---|
//! | one writer, one reader, fastest | [`channel`]: [`ChannelBuilder`], [`Sender`], [`Receiver`] | [below](#a-channel) |
//! | many writers, many readers, each message to one | [`mpmc`]: [`MpmcChannelBuilder`] | [below](#many-to-many) |
//! | one publisher, many subscribers, each sees every message | [`broadcast`]: [`BroadcastBuilder`], [`Topic`] | [below](#publish-subscribe) |
//! | a service that clients connect to, duplex, upgraded to shared memory | [`connection`]: [`Listener`], [`connect`] | [below](#connections) |
//! | pick the transport by an address (`unix:`, `tcp://`, `mq:`, `fifo:`, `shm:` ...) | [`transport`]: [`transport::listen`], [`transport::connect_sender`] | [below](#any-transport-by-address) |
//! | request and response | [`rpc`]: [`RpcClient`], [`RpcServer`] | [below](#request-and-response) |
//! | wake another process, count units | [`event`], [`semaphore`] | [below](#events-and-semaphores) |
//! | one writer publishes a value, many read its latest version | [`state`]: [`SharedValueBuilder`], [`SharedValue`] | [`state`]'s docs |
//! | a value several processes update under a lock that survives its holder's death | [`state`]: [`SharedMutexBuilder`], [`SharedMutex`] | [`SharedMutex`]'s docs |
//! | typed `#[repr(C)]` values, zero-copy | [`typed`] (feature `zerocopy`) | [below](#typed-values) |
//! | any `serde` type | [`codec`] (feature `serde`) | [below](#serde-values) |
//! | many sources at once, or async | [`Select`]; the `shmring-tokio` crate | [below](#waiting-on-many-or-async) |
//!
//! Every receiver and sender, whatever its kind or transport, implements
//! [`MessageReceiver`] / [`MessageSender`]: `try_`, blocking, `_timeout`
//! (`Duration`) and `_deadline` (`Option<Instant>`) forms, `iter()` and
//! `try_iter()`, and the typed and serde calls with their features. The contract
//! (layouts, protocols, orderings, threat model, what is delivered after a crash)
//! is [`architecture`], the design notes are in `docs/` of the repository.
//!
//! # A channel
//!
//! ```no_run
//! use shmring::ChannelBuilder;
//! # fn main() -> shmring::Result<()> {
//! // In one process:
//! let mut tx = ChannelBuilder::shm("telemetry").capacity(1 << 20).create()?.sender()?;
//! tx.send(b"hello")?;
//! // In another:
//! let mut rx = ChannelBuilder::shm("telemetry").open()?.receiver()?;
//! for message in rx.iter() {
//!     println!("{:?}", message?);          // ends when the sender has gone
//! }
//! // Two threads of one process: shmring::channel::pair(1 << 16)?
//! # Ok(()) }
//! ```
//!
//! - **Fast path**: a message is a frame in the ring; when nobody waits, sending and
//!   receiving make no system call.
//! - **Blocking**: how a blocked call waits is a [`WaitStrategy`]: spin, spin then
//!   sleep on a futex (the default), or sleep.
//! - **Liveness**: each endpoint holds a lock the kernel drops when its process dies
//!   (SIGKILL included). A receiver whose sender has gone gets every message the
//!   sender committed, then [`Error::Disconnected`]; a blocked call sees a death
//!   within [`PEER_DEATH_BOUND`](channel::PEER_DEATH_BOUND). A role whose holder died
//!   can be claimed again; what a dead receiver read but did not release is
//!   delivered to the next one.
//! - **Two processes started in any order**: `open_or_create` on every builder.
//! - **Trust**: the segment is validated on open (owner, mode, size, then every
//!   header field), and the ring validates every position and length it reads. A
//!   hostile peer can send garbage bytes or cause [`Error::Corrupted`], never an
//!   out-of-bounds access.
//!
//! # Many to many
//!
//! ```no_run
//! use shmring::MpmcChannelBuilder;
//! # fn main() -> shmring::Result<()> {
//! let jobs = MpmcChannelBuilder::shm("jobs").open_or_create()?;
//! jobs.sender()?.send(b"resize img-17")?;  // any number of processes send
//! let mut worker = jobs.receiver()?;        // and receive: each job to one worker
//! let job = worker.recv_vec()?;
//! # let _ = job; Ok(()) }
//! ```
//!
//! # Publish-subscribe
//!
//! ```no_run
//! use shmring::broadcast::{BroadcastBuilder, Policy, Start};
//! # fn main() -> shmring::Result<()> {
//! let topic = BroadcastBuilder::shm("quotes").policy(Policy::Lossy).open_or_create()?;
//! let mut publisher = topic.publisher()?;
//! let reached = publisher.send(b"EURUSD 1.0842")?; // how many subscribers
//! // In each subscriber process:
//! let mut quotes = BroadcastBuilder::shm("quotes").open()?.subscriber(Start::Newest)?;
//! let quote = quotes.recv_vec()?;                    // or Lagged { missed } if lapped
//! # let _ = (reached, quote); Ok(()) }
//! ```
//!
//! # Connections
//!
//! ```no_run
//! use shmring::{Listener, connect};
//! # fn main() -> shmring::Result<()> {
//! let listener = Listener::bind("orders")?;  // the service
//! let mut client = connect("orders")?;       // a client, in another process
//! client.send(b"buy 100")?;
//! let mut conn = listener.accept()?;         // the service: a duplex Connection
//! let order = conn.recv_vec()?;
//! conn.send(b"done")?;
//! # let _ = order; Ok(()) }
//! ```
//!
//! # Any transport by address
//!
//! ```no_run
//! use shmring::transport::{connect_sender, listen};
//! # fn main() -> shmring::Result<()> {
//! // "unix:/run/app/jobs.sock", "tcp://127.0.0.1:9000", "mq:jobs", "fifo:/tmp/jobs", "shm:jobs"
//! let mut listener = listen("mq:jobs")?;
//! let mut tx = connect_sender("mq:jobs")?;  // in the other process
//! tx.send(b"job 1")?;
//! let mut rx = listener.accept()?;
//! let job = rx.recv_vec()?;
//! # let _ = job; Ok(()) }
//! ```
//!
//! # Request and response
//!
//! ```no_run
//! use shmring::{ChannelBuilder, RpcClient, RpcServer};
//! # fn main() -> shmring::Result<()> {
//! let (requests, responses) = (ChannelBuilder::shm("rq").create()?, ChannelBuilder::shm("rs").create()?);
//! // The server, in one process:
//! let mut server = RpcServer::new(requests.receiver()?, responses.sender()?);
//! std::thread::spawn(move || server.serve(|req| Ok::<_, String>(req.to_ascii_uppercase())));
//! // A client, in another (the same channels, opened):
//! let client = RpcClient::new(requests.sender()?, responses.receiver()?);
//! assert_eq!(client.call(b"ping")?, b"PING");
//! # Ok(()) }
//! ```
//!
//! # Events and semaphores
//!
//! ```no_run
//! use shmring::{EventBuilder, SemaphoreBuilder};
//! # fn main() -> shmring::Result<()> {
//! let changed = EventBuilder::shm("config-changed").open_or_create()?;
//! changed.notify_all();                     // wakes every waiter, in every process
//! let slots = SemaphoreBuilder::shm("gpu-slots").max(4).initial(4).open_or_create()?;
//! slots.wait()?;                            // take a unit ...
//! slots.post()?;                            // ... and give it back
//! # Ok(()) }
//! ```
//!
//! # Typed values
//!
//! With the `zerocopy` feature, any type that is plain bytes goes as itself:
//!
//! ```no_run
//! # #[cfg(feature = "zerocopy")] {
//! use shmring::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//! #[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
//! #[zerocopy(crate = "shmring::zerocopy")]
//! #[repr(C)]
//! struct Tick { seq: u64, price: f64, qty: u32, _pad: [u8; 4] } // padding as a field
//! # fn run() -> shmring::Result<()> {
//! let (mut tx, mut rx) = shmring::channel::pair(1 << 16)?;
//! tx.send_value(&Tick { seq: 1, price: 2.5, qty: 10, _pad: [0; 4] })?;
//! let tick: Tick = rx.recv_value()?; // wrong bytes: RecvError::InvalidValue
//! # let _ = tick; Ok(()) }
//! # }
//! ```
//!
//! `recv_checked` for types with invalid bit patterns (enums, `bool`);
//! `grant_value` / `read_value` write and read in place where the writer cannot
//! overwrite (SPSC, strict topics). See [`typed`].
//!
//! # Serde values
//!
//! With the `serde` feature, any `Serialize` type, encoded with postcard:
//!
//! ```no_run
//! # #[cfg(feature = "serde")] {
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Order { symbol: String, qty: u32 }
//! # fn run() -> shmring::Result<()> {
//! let (mut tx, mut rx) = shmring::channel::pair(1 << 16)?;
//! tx.send_serialized(&Order { symbol: "ACME".into(), qty: 100 })?;
//! let order: Order = rx.recv_deserialized()?; // garbage: RecvError::Decode (length, position)
//! # let _ = order; Ok(()) }
//! # }
//! ```
//!
//! # Waiting on many, or async
//!
//! ```no_run
//! use shmring::{ChannelBuilder, Select};
//! # fn main() -> shmring::Result<()> {
//! let (a, b) = (ChannelBuilder::shm("a").open()?, ChannelBuilder::shm("b").open()?);
//! let (mut rx_a, mut rx_b) = (a.receiver()?, b.receiver()?);
//! let mut select = Select::new()?;
//! select.recv(&mut rx_a)?;
//! select.recv(&mut rx_b)?;
//! let ready = select.ready()?;              // the number of a ready source
//! let mut buf = [0u8; 256];
//! let got = select.receiver(ready).unwrap().try_recv(&mut buf); // Empty: taken already
//! # let _ = got; Ok(()) }
//! ```
//!
//! [`Select`] also takes senders (room), event and semaphore waiters, plain
//! descriptors and timers. On tokio, the `shmring-tokio` crate's `AsyncReceiver`,
//! `AsyncSender` and `AsyncWaiter` await the same sources, cancellation-safe.
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
//! 7. the kinds: [`channel`], [`mpmc`], [`broadcast`], [`event`], [`semaphore`]
//!    (the last two over one synchronisation object), [`state`].
//! 8. [`transport`], then [`connection`], then [`rpc`].
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::multiple_unsafe_ops_per_block)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shmring needs Linux (futex, memfd, OFD locks); other systems are not supported yet"
);

mod blocking;
pub mod broadcast;
pub mod channel;
#[cfg(feature = "serde")]
pub mod codec;
pub mod connection;
pub mod error;
pub mod event;
mod futex;
pub mod iter;
mod message;
pub mod mpmc;
pub mod options;
mod readiness;
pub mod rpc;
pub mod segment;
mod select;
pub mod semaphore;
pub mod state;
mod sync_object;
mod sys;
pub mod transport;
#[cfg(feature = "zerocopy")]
pub mod typed;

/// The contract: `ARCHITECTURE.md` of the repository (layouts, protocols,
/// orderings, threat model, delivery semantics).
#[doc = include_str!("../../ARCHITECTURE.md")]
pub mod architecture {}

pub use blocking::{LIVENESS_INTERVAL, WaitStrategy};
pub use broadcast::{BroadcastBuilder, InPlaceMessage, PublishGrant, Publisher, Subscriber, Topic};
pub use channel::{Channel, ChannelBuilder, Received, Receiver, SendGrant, Sender};
pub use connection::{Connection, Listener, connect};
pub use error::{
    Corrupted, DecodeError, DecodeFailure, EncodeFailure, Error, FrameTooLong, InvalidValue,
    IoFailure, RecvError, RecvTimeoutError, Result, Role, SegmentCorrupted, SendError,
    SendTimeoutError, TryRecvError, TrySendError, ValueProblem,
};
pub use event::{Event, EventBuilder, EventKey, EventWaiter};
#[cfg(feature = "serde")]
pub use iter::DeserializedMessages;
pub use iter::{Messages, PendingMessages};
pub use message::{MessageReceiver, MessageSender};
pub use mpmc::{MpmcChannel, MpmcChannelBuilder, MpmcReceiver, MpmcSender, MpmcStats};
pub use options::SegmentBuilder;
pub use readiness::watcher::NO_WATCHER_VAR;
pub use readiness::{
    ConditionReadiness, Interest, Readiness, ReceiveReadiness, SendReadiness, Wakeups,
};
pub use rpc::{RpcClient, RpcRequest, RpcRequests, RpcResponder, RpcServer};
pub use segment::{Segment, SegmentOptions, clean, clean_stale, inspect, list_objects};
pub use select::Select;
pub use semaphore::{SEMAPHORE_MAX_LIMIT, Semaphore, SemaphoreBuilder, SemaphoreWaiter};
/// The `shmring-core` crate (no_std, no allocation): the ring algorithms over
/// caller-provided memory, the segment layouts and their constants
/// (`LAYOUT_VERSION`, `MIN_CAPACITY`, [`LayoutError`](ring_core::LayoutError)),
/// for code that checks a segment's bytes or builds its own regions. Named so it
/// does not read like `::core`.
pub use shmring_core as ring_core;
pub use state::{
    SharedMutex, SharedMutexBuilder, SharedMutexGuard, SharedValue, SharedValueBuilder,
    SharedValueWriter,
};
pub use sync_object::{OBJECT_LAYOUT_VERSION, OBJECT_SIZE};
pub use sys::count::system_calls_on_this_thread;
#[cfg(feature = "zerocopy")]
pub use typed::{TypedReceiver, TypedSender, ValueGrant, ValueRef};
/// The `zerocopy` crate this one is built with (the `zerocopy` feature): its
/// traits bound the typed calls, and its derives reach it through
/// `#[zerocopy(crate = "shmring::zerocopy")]`.
#[cfg(feature = "zerocopy")]
pub use zerocopy;
