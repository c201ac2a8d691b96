//! The errors of the MPMC ring's operations: registering, sending, receiving,
//! waiting, and what a hostile peer can leave in the slots. Each variant names the
//! problem and carries the values that caused it. The errors of a segment's shape
//! ([`MpmcLayoutError`](super::layout::MpmcLayoutError)) are in the layout, beside
//! the limits they name.

use core::fmt;

use crate::error::TimedOut;

/// What an MPMC endpoint found in shared memory that the protocol cannot produce:
/// the mark of a buggy or hostile peer. Nothing was read or written out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcCorruption {
    /// A slot's sequence number is neither "free" nor "full" for any position that
    /// maps to that slot.
    BadSequence {
        /// The position whose slot was read.
        position: u64,
        /// The sequence number found.
        seq: u64,
    },
    /// A published message's length exceeds the slot size. (The slot was consumed
    /// and freed: the ring moves on.)
    BadLength {
        /// The message's position.
        position: u64,
        /// The length found.
        len: u32,
        /// The slot size.
        max: usize,
    },
}

impl fmt::Display for MpmcCorruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadSequence { position, seq } => {
                write!(f, "bad sequence number {seq} for position {position}")
            }
            Self::BadLength { position, len, max } => write!(
                f,
                "message at position {position} claims {len} bytes, slots hold {max}"
            ),
        }
    }
}

/// Why an endpoint could not register in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcRegisterError {
    /// Every entry of the table is held.
    TableFull {
        /// Entries in the table.
        endpoints: usize,
    },
    /// The entry index is beyond the table.
    EntryOutOfRange {
        /// The index asked for.
        entry: usize,
        /// Entries in the table.
        endpoints: usize,
    },
    /// The entry is held by someone else (or, for a take-over, by someone other
    /// than the expected previous holder).
    Taken {
        /// The entry.
        entry: usize,
        /// The owner word found.
        owner: u32,
    },
}

impl fmt::Display for MpmcRegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TableFull { endpoints } => {
                write!(f, "endpoint table full ({endpoints} entries)")
            }
            Self::EntryOutOfRange { entry, endpoints } => write!(
                f,
                "endpoint entry {entry} out of range (table has {endpoints})"
            ),
            Self::Taken { entry, owner } => {
                write!(f, "endpoint entry {entry} is held (owner token {owner})")
            }
        }
    }
}

/// Why a message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcPushError {
    /// The message is longer than a slot.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// The slot size.
        max: usize,
    },
    /// Every slot holds an unconsumed message.
    Full,
    /// The slot for `position` still holds the message of the previous lap, which a
    /// consumer claimed and has not freed: it is copying, or it died. After the
    /// caller's bound, [`MpmcProducer::reclaim_from_dead_consumer`](super::MpmcProducer::reclaim_from_dead_consumer)
    /// frees it if that consumer is dead.
    Stalled {
        /// The position the producer wants to claim.
        position: u64,
    },
    /// Other endpoints (or a hostile peer) kept moving the positions through a
    /// bounded number of attempts; try again.
    Contended,
    /// The shared state is invalid.
    Corrupted(MpmcCorruption),
}

impl fmt::Display for MpmcPushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "message too large: {len} bytes, slots hold {max}")
            }
            Self::Full => write!(f, "ring full"),
            Self::Stalled { position } => write!(
                f,
                "slot for position {position} still held by a consumer of the previous lap"
            ),
            Self::Contended => write!(f, "contended: positions kept moving"),
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

/// Why no message could be received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcPopError {
    /// No message is published or claimed.
    Empty,
    /// The next message does not fit the buffer; nothing was consumed.
    BufferTooSmall {
        /// Length of the message.
        len: usize,
        /// Length of the buffer.
        buffer: usize,
    },
    /// A producer claimed `position` and has not published it: it is writing, or
    /// it died. After the caller's bound,
    /// [`MpmcConsumer::skip_dead_producer`](super::MpmcConsumer::skip_dead_producer)
    /// skips it if that producer is dead.
    Stalled {
        /// The position waited for.
        position: u64,
    },
    /// Other endpoints (or a hostile peer) kept moving the positions through a
    /// bounded number of attempts; try again.
    Contended,
    /// The shared state is invalid.
    Corrupted(MpmcCorruption),
}

impl fmt::Display for MpmcPopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "ring empty"),
            Self::BufferTooSmall { len, buffer } => write!(
                f,
                "buffer too small: message is {len} bytes, buffer {buffer}"
            ),
            Self::Stalled { position } => write!(
                f,
                "position {position} claimed by a producer and not yet published"
            ),
            Self::Contended => write!(f, "contended: positions kept moving"),
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

/// Why a blocking MPMC wait ended without its condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcWaitError {
    /// The deadline passed.
    TimedOut,
    /// The shared state is invalid.
    Corrupted(MpmcCorruption),
}

impl fmt::Display for MpmcWaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => write!(f, "timed out"),
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

impl From<TimedOut> for MpmcWaitError {
    fn from(_: TimedOut) -> Self {
        Self::TimedOut
    }
}

impl core::error::Error for MpmcCorruption {}
impl core::error::Error for MpmcRegisterError {}
impl core::error::Error for MpmcPushError {}
impl core::error::Error for MpmcPopError {}
impl core::error::Error for MpmcWaitError {}
