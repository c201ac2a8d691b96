//! shmring-zenoh: a bridge between shmring's local endpoints and Zenoh, so that a
//! channel, a topic or an RPC service reaches past one machine.
//!
//! ```no_run
//! use shmring::{ChannelBuilder, MessageReceiver};
//! use shmring_zenoh::{Bridge, Delivery};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Host A: whatever arrives on the local channel "telemetry" goes to Zenoh.
//! let session = shmring_zenoh::open(shmring_zenoh::peer_config(
//!     &["tcp/127.0.0.1:7447"], &[])?)?;
//! let bridge = Bridge::new(session);
//! let rx = ChannelBuilder::shm("telemetry").open()?.receiver()?;
//! let out = bridge.outbound(rx, "site/telemetry").delivery(Delivery::Reliable).start()?;
//!
//! // Host B: what arrives on the key goes into a local channel.
//! let session = shmring_zenoh::open(shmring_zenoh::peer_config(
//!     &[], &["tcp/127.0.0.1:7447"])?)?;
//! let bridge = Bridge::new(session);
//! let (tx, mut rx) = shmring::channel::pair(1 << 20)?;
//! let inbound = bridge.inbound("site/telemetry", tx).start()?;
//! while let Ok(message) = rx.recv_vec() { /* every message, in order, then Disconnected */ }
//! # let _ = (out, inbound); Ok(()) }
//! ```
//!
//! # Threads
//!
//! Each direction runs on a thread of its own (not on `shmring-tokio`): the local
//! endpoints block in shmring's own waits, and Zenoh's synchronous API
//! ([`zenoh::Wait`]) runs on Zenoh's internal runtime, so no async runtime of the
//! user's is needed. An [`Outbound`] thread receives from the local endpoint and
//! publishes: the message it waited for and every one waiting behind it, as one
//! [batch](wire) when there is more than one (so a busy stream pays Zenoh's cost
//! per publication once per batch, and an idle one still sends each message at
//! once). On the [`Inbound`] side, Zenoh's callback itself sends the message
//! into the local endpoint when it can do so at once (the next message of a
//! known source, room in the endpoint, nothing queued before it); anything else
//! goes, in order, to the inbound thread.
//!
//! On a machine with few cores, give the bridged local endpoints
//! [`WaitStrategy::Park`](shmring::WaitStrategy::Park): the default's spin before
//! sleeping takes the CPU Zenoh's own threads need (see `benches/README.md`).
//!
//! # Delivery
//!
//! - **Order** is kept per source (a source is one [`Outbound`]: one bridge's
//!   origin id and one stream id).
//! - [`Delivery::Reliable`] (the default): Zenoh's reliable channel with
//!   [`CongestionControl::Block`](zenoh::qos::CongestionControl::Block): a
//!   publisher waits for room rather than drop, and the inbound side waits for
//!   room in the local endpoint. [`Delivery::DropWhenCongested`]: Zenoh's
//!   `CongestionControl::Drop`, and the inbound side drops (and counts) when the
//!   local endpoint is full. Both are visible in the builders.
//! - **Numbered**: Zenoh is reliable per hop only, so every message carries its
//!   source's sequence number ([`wire`]); the inbound side reports a missing run
//!   as [`BridgeError::Gap`] (through [`Inbound::try_error`] and counted in
//!   [`InboundStats::gaps`]), never silently. A local broadcast subscriber that
//!   lagged skips its missed count of numbers, so its loss shows up as a gap too.
//! - **Credit** ([`OutboundBuilder::window`], `Reliable` only, 4096 messages
//!   by default): the inbound bridge acknowledges what it has delivered
//!   ([`InboundBuilder::ack_every`]); the outbound waits while `window` messages
//!   are unacknowledged, leaving the rest in the local ring, so a slow far
//!   receiver slows the sender. The credit is the most advanced acknowledgement of
//!   any inbound bridge; while no subscriber matches the key at all the outbound
//!   does not wait.
//! - **The hand-off**: the inbound side never blocks inside a Zenoh callback
//!   (that would stall the session's receive task, keep-alives included). The
//!   callback delivers with a non-blocking send when the message is the next of
//!   a known source and nothing waits before it; otherwise (a new source, a gap,
//!   an end of stream, a full local endpoint under `Reliable`) it appends to a
//!   bounded queue ([`InboundBuilder::handoff_capacity`] publications, a message
//!   or a batch each, 4096 by default) and returns. When the queue is full the
//!   callback drops the publication and counts it
//!   ([`InboundStats::handoff_dropped`]), and the sequence numbers make that a
//!   reported gap. It is the bridge's forwarding thread, never the callback, that
//!   blocks on a full local endpoint; while it holds queued messages, the
//!   callback queues behind them, so order holds. With credit, a source has at
//!   most its window in flight: keep the capacity at least the windows added up.
//!   (The capacity bounds what waits in the queue; the thread takes it all at
//!   once, so up to twice the capacity can be held in memory.)
//! - **Sources**: an inbound side follows at most
//!   [`InboundBuilder::max_sources`] at once (a peer on the key can make up any
//!   number); at the limit it forgets ended sources, then refuses new ones
//!   ([`BridgeError::TooManySources`], counted).
//!
//! # Liveness
//!
//! - **Orderly end in band**: when an outbound source ends (its local endpoint
//!   returns `Disconnected`, or [`Outbound::stop`]), the bridge publishes an
//!   end-of-stream message carrying the number of messages sent, on the same key
//!   and the same ordered path as the data.
//! - **Abrupt end by liveliness**: every outbound source holds a Zenoh liveliness
//!   token (`<key>/_shmring_live/<origin>/<stream>`, hex); the inbound side watches
//!   them. When a token goes without an end of stream, the source is ended after a
//!   short grace ([`InboundBuilder::liveliness_grace`], 50 ms by default) that
//!   lets data still queued behind it arrive (a token's removal is not ordered
//!   after data).
//! - When every source an inbound side has seen has ended
//!   ([`EndPolicy::AfterAllSources`], the default), it drops its local sender, so
//!   the local receiver gets every message delivered, then `Disconnected`.
//! - **Bounds**: a killed process (its TCP link closes at once): the token goes
//!   when Zenoh sees the link close, so `Disconnected` follows within the grace
//!   plus one forwarding tick (about 55 ms measured; the tests assert 2 s). A
//!   host or network lost: Zenoh notices at the lease the lost side declared (10 s
//!   by default, `transport/link/tx/lease` in its config, see [`peer_config`]),
//!   plus the same (a test stops a sender with a 1 s lease: ended after 1.06 s).
//!
//! # Loops and identity
//!
//! Every [`Bridge`] has a random 64-bit origin id, carried in every message's
//! header. A bridge drops messages carrying its own origin (counted in
//! [`InboundStats::echoes`]), so two bridges on one key, each both ways, do not
//! echo each other's publications back. An outbound publisher also delivers to
//! other Zenoh sessions only (`Locality::Remote`), so a bridge's own inbound side
//! in the same session never sees its publications, and its credit and matching
//! status count remote subscribers only. A bridge can be limited to an allow-list
//! of key expressions ([`Bridge::allow`]): a key outside it is refused with
//! [`BridgeError::KeyNotAllowed`]. Not covered: one local broadcast topic bridged
//! out and in by two bridges on the same key (the local hop does not carry the
//! origin); bridge a topic one way per key.
//!
//! # Security
//!
//! The bridge adds no authentication or encryption of its own: use Zenoh's (TLS
//! and mutual TLS on the links, user/password or public-key authentication, access
//! control lists in the config). This crate builds Zenoh with the TCP transport
//! only; add Zenoh's `transport_tls` feature to use TLS. A malformed payload on a
//! bridged key is a counted drop ([`BridgeError::Malformed`]), never a panic.

pub mod error;
mod inbound;
mod outbound;
pub mod rpc;
pub mod wire;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use zenoh::Wait;
use zenoh::key_expr::{KeyExpr, OwnedKeyExpr};

pub use error::BridgeError;
pub use inbound::{
    DEFAULT_MAX_SOURCES, EndPolicy, Inbound, InboundBuilder, InboundEnd, InboundStats,
};
pub use outbound::{DEFAULT_WINDOW, Outbound, OutboundBuilder, OutboundEnd, OutboundStats};
pub use rpc::{IMPORT_MAX_IN_FLIGHT, RpcExport, RpcImport};
pub use zenoh;

/// The chunk between a bridged key and a source's liveliness token.
pub const LIVELINESS_CHUNK: &str = "_shmring_live";
/// The chunk between a bridged key and a source's acknowledgement key.
pub const ACK_CHUNK: &str = "_shmring_ack";

/// How a direction behaves when the next hop has no room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Wait for room: Zenoh's `CongestionControl::Block` on the publisher, a
    /// blocking send into the local endpoint on the inbound side.
    #[default]
    Reliable,
    /// Drop when there is no room: Zenoh's `CongestionControl::Drop`, a
    /// non-blocking send into the local endpoint (a drop is counted, and the
    /// far side sees a [`BridgeError::Gap`]).
    DropWhenCongested,
}

/// One end of the bridge in a Zenoh session: makes [`Outbound`], [`Inbound`],
/// [`RpcExport`] and [`RpcImport`] directions that share its origin id and its
/// allow-list.
#[derive(Debug, Clone)]
pub struct Bridge {
    session: zenoh::Session,
    origin: u64,
    allow: Option<Arc<Vec<OwnedKeyExpr>>>,
    next_stream: Arc<AtomicU64>,
}

impl Bridge {
    /// A bridge on `session` with a random origin id and no allow-list.
    pub fn new(session: zenoh::Session) -> Self {
        Bridge {
            session,
            origin: random_u64(),
            allow: None,
            next_stream: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Sets the origin id (by default random). Two bridges on one key must have
    /// different ones.
    pub fn with_origin(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }

    /// Limits the bridge to keys included in one of `key_exprs`: any direction on
    /// another key is refused with [`BridgeError::KeyNotAllowed`].
    ///
    /// # Errors
    /// [`BridgeError::InvalidKey`] for a key expression Zenoh refuses.
    pub fn allow<I, S>(mut self, key_exprs: I) -> Result<Self, BridgeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for key in key_exprs {
            let key = key.as_ref();
            let owned = OwnedKeyExpr::autocanonize(key.to_owned()).map_err(|e| {
                BridgeError::InvalidKey {
                    key: key.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            list.push(owned);
        }
        self.allow = Some(Arc::new(list));
        Ok(self)
    }

    /// This bridge's origin id.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The Zenoh session.
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// Checks `key` against Zenoh's syntax and the allow-list.
    pub(crate) fn check_key(&self, key: &str) -> Result<KeyExpr<'static>, BridgeError> {
        let parsed =
            KeyExpr::autocanonize(key.to_owned()).map_err(|e| BridgeError::InvalidKey {
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
        if let Some(allow) = &self.allow
            && !allow.iter().any(|allowed| allowed.includes(&parsed))
        {
            return Err(BridgeError::KeyNotAllowed {
                key: key.to_owned(),
            });
        }
        Ok(parsed)
    }

    pub(crate) fn new_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }
}

/// A random 64-bit number (std's per-process random hash keys, the time, the
/// process id and a counter): enough for origin ids, not for secrets.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

/// A peer-mode Zenoh configuration that listens on `listen` and connects to
/// `connect` (endpoints such as `tcp/127.0.0.1:7447`), with multicast and gossip
/// scouting off: the session talks to exactly the endpoints given. The lease
/// (how long a silent peer lasts) stays Zenoh's default, 10 s; change it with
/// `config.insert_json5("transport/link/tx/lease", "2000")` (milliseconds).
///
/// # Errors
/// [`BridgeError::Zenoh`] when Zenoh refuses an endpoint.
pub fn peer_config(listen: &[&str], connect: &[&str]) -> Result<zenoh::Config, BridgeError> {
    let quote = |list: &[&str]| -> String {
        let items: Vec<String> = list.iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", items.join(","))
    };
    let json = format!(
        r#"{{
            mode: "peer",
            listen: {{ endpoints: {} }},
            connect: {{ endpoints: {} }},
            scouting: {{ multicast: {{ enabled: false }}, gossip: {{ enabled: false }} }},
        }}"#,
        quote(listen),
        quote(connect)
    );
    zenoh::Config::from_json5(&json).map_err(error::zenoh_err("reading the configuration"))
}

/// Opens a Zenoh session (synchronously).
///
/// # Errors
/// [`BridgeError::Zenoh`] when Zenoh cannot open it (an endpoint taken, ...).
pub fn open(config: zenoh::Config) -> Result<zenoh::Session, BridgeError> {
    zenoh::open(config)
        .wait()
        .map_err(error::zenoh_err("opening the session"))
}

/// The liveliness token key of a source.
pub(crate) fn token_key(key: &str, origin: u64, stream: u64) -> String {
    format!("{key}/{LIVELINESS_CHUNK}/{origin:016x}/{stream:016x}")
}

/// The key a source's acknowledgements travel on.
pub(crate) fn ack_key(key: &str, origin: u64, stream: u64) -> String {
    format!("{key}/{ACK_CHUNK}/{origin:016x}/{stream:016x}")
}

/// The (origin, stream) of a liveliness token key made by [`token_key`].
pub(crate) fn parse_token_key(key: &str) -> Option<(u64, u64)> {
    let mut chunks = key.rsplit('/');
    let stream = u64::from_str_radix(chunks.next()?, 16).ok()?;
    let origin = u64::from_str_radix(chunks.next()?, 16).ok()?;
    (chunks.next()? == LIVELINESS_CHUNK).then_some((origin, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_keys_round_trip_and_reject_others() {
        let key = token_key("a/b", 0xdead, 7);
        assert_eq!(parse_token_key(&key), Some((0xdead, 7)));
        assert_eq!(parse_token_key("a/b/c"), None);
        assert_eq!(parse_token_key("a/x/0/1"), None);
        assert_eq!(parse_token_key("zz"), None);
    }

    #[test]
    fn peer_config_parses() {
        assert!(peer_config(&["tcp/127.0.0.1:0"], &["tcp/127.0.0.1:1"]).is_ok());
    }
}
