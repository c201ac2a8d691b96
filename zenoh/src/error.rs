//! The bridge's error type.

use crate::wire::WireError;

/// Everything the bridge reports: setup failures, what the inbound side found in
/// the stream (gaps, malformed payloads), and why a direction ended.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A key expression that Zenoh refuses.
    #[error("invalid key expression {key:?}: {reason}")]
    InvalidKey {
        /// The key expression given.
        key: String,
        /// Zenoh's reason.
        reason: String,
    },
    /// A key expression outside the bridge's allow-list.
    #[error("key expression {key:?} is not in the bridge's allow-list")]
    KeyNotAllowed {
        /// The key expression given.
        key: String,
    },
    /// A Zenoh operation failed (declaring, publishing, querying, opening).
    #[error("zenoh: {operation} failed: {reason}")]
    Zenoh {
        /// What the bridge was doing.
        operation: &'static str,
        /// Zenoh's error, as text (Zenoh's error type is a boxed trait object).
        reason: String,
    },
    /// A Zenoh payload on a bridged key that is not a valid bridged message:
    /// dropped and counted ([`InboundStats::malformed`](crate::InboundStats::malformed)).
    #[error("malformed payload of {len} bytes on {key}: {problem}")]
    Malformed {
        /// The key it arrived on.
        key: String,
        /// Its length.
        len: usize,
        /// What is wrong with it.
        problem: WireError,
    },
    /// Messages of one source went missing: the next one carried `got` where
    /// `expected` was due (`got - expected` messages lost in Zenoh, by a
    /// drop-when-congested hop, a full hand-off queue, or a lagging local
    /// subscriber at the source). The message carrying `got` is delivered.
    #[error("gap in stream {stream:#x} of origin {origin:#x}: expected {expected}, got {got}")]
    Gap {
        /// The source's bridge.
        origin: u64,
        /// The source's stream.
        stream: u64,
        /// The sequence number due.
        expected: u64,
        /// The sequence number that came.
        got: u64,
    },
    /// A message numbered before the one due (a duplicate or a reordering): dropped.
    #[error(
        "stale message in stream {stream:#x} of origin {origin:#x}: expected {expected}, got {got}"
    )]
    Stale {
        /// The source's bridge.
        origin: u64,
        /// The source's stream.
        stream: u64,
        /// The sequence number due.
        expected: u64,
        /// The sequence number that came.
        got: u64,
    },
    /// A message from a new source when the inbound side already follows its
    /// limit of live sources ([`InboundBuilder::max_sources`](crate::InboundBuilder::max_sources)):
    /// dropped and counted. Ended sources are forgotten first to make room.
    #[error(
        "stream {stream:#x} of origin {origin:#x} refused: already following {max} live sources"
    )]
    TooManySources {
        /// The refused source's bridge.
        origin: u64,
        /// The refused source's stream.
        stream: u64,
        /// The limit.
        max: usize,
    },
    /// A message longer than the local endpoint takes: dropped and counted.
    #[error("a {len}-byte message does not fit the local endpoint (at most {max})")]
    TooLargeForLocal {
        /// Its length.
        len: usize,
        /// The local endpoint's largest message.
        max: usize,
    },
    /// The local side failed (a shmring error other than the expected ends).
    #[error("local endpoint: {0}")]
    Local(#[from] shmring::Error),
    /// A remote RPC call failed or timed out.
    #[error("remote call on {key}: {reason}")]
    Remote {
        /// The key of the queryable.
        key: String,
        /// What happened.
        reason: String,
    },
    /// The bridge's own thread could not be started.
    #[error("cannot start the bridge's thread: {0}")]
    Thread(std::io::Error),
    /// The bridge's thread panicked (a bug in the bridge).
    #[error("the bridge's {0} thread panicked")]
    Panicked(&'static str),
}

/// Turns Zenoh's boxed error into a [`BridgeError::Zenoh`].
pub(crate) fn zenoh_err(operation: &'static str) -> impl FnOnce(zenoh::Error) -> BridgeError {
    move |e| BridgeError::Zenoh {
        operation,
        reason: e.to_string(),
    }
}
