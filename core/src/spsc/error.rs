//! The SPSC ring's errors, one type per kind of operation. Each variant names the
//! problem and carries the values that caused it.

use core::fmt;

use crate::error::TimedOut;

/// What a side found in shared memory that the protocol cannot produce: the mark of
/// a buggy or hostile peer. The values seen are carried; nothing was read or written
/// out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// A frame state word that is not zero and not a valid state.
    BadFrameHeader {
        /// Position of the frame.
        position: u64,
        /// The word read.
        word: u32,
    },
    /// A message frame longer than the largest message or than the room left before
    /// the end of the data region.
    FrameTooLong {
        /// Position of the frame.
        position: u64,
        /// Payload length in the header.
        len: u32,
        /// The most the frame could hold there.
        limit: u64,
    },
    /// A padding frame that does not end exactly at the end of the data region.
    BadPadding {
        /// Position of the frame.
        position: u64,
        /// Bytes the padding frame spans.
        size: u64,
        /// Bytes left to the end of the data region.
        expected: u64,
    },
    /// A frame that ends beyond what the producer may have written.
    FrameBeyondWindow {
        /// Position of the frame.
        position: u64,
        /// Position where it ends.
        end: u64,
        /// The furthest a frame may end.
        limit: u64,
    },
    /// A run frame whose run word does not fit its state word: a message length of
    /// zero or beyond the largest message, a payload that is not a whole number of
    /// strides, or a released count not below the run's message count.
    BadRun {
        /// Position of the frame.
        position: u64,
        /// The state word read.
        word: u32,
        /// The run word read.
        run_word: u32,
    },
    /// The consumer's published position moved backwards, past the producer, or off
    /// the 8-byte grid.
    ReadPosition {
        /// The position read.
        found: u64,
        /// The least it could have been.
        min: u64,
        /// The most it could have been.
        max: u64,
    },
    /// The producer's published position moved backwards, ran more than the capacity
    /// ahead, or left the 8-byte grid.
    WritePosition {
        /// The position read.
        found: u64,
        /// The least it could have been.
        min: u64,
        /// The most it could have been.
        max: u64,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadFrameHeader { position, word } => {
                write!(f, "bad frame header {word:#010x} at position {position}")
            }
            Self::FrameTooLong {
                position,
                len,
                limit,
            } => write!(
                f,
                "frame at position {position} claims {len} bytes, at most {limit} fit"
            ),
            Self::BadPadding {
                position,
                size,
                expected,
            } => write!(
                f,
                "padding frame at position {position} spans {size} bytes, expected {expected}"
            ),
            Self::FrameBeyondWindow {
                position,
                end,
                limit,
            } => write!(
                f,
                "frame at position {position} ends at {end}, beyond the writable limit {limit}"
            ),
            Self::BadRun {
                position,
                word,
                run_word,
            } => write!(
                f,
                "bad run at position {position}: state word {word:#010x}, run word {run_word:#010x}"
            ),
            Self::ReadPosition { found, min, max } => write!(
                f,
                "read position {found} out of range {min}..={max} or misaligned"
            ),
            Self::WritePosition { found, min, max } => write!(
                f,
                "write position {found} out of range {min}..={max} or misaligned"
            ),
        }
    }
}

/// Why a producer or consumer could not claim its side of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// Another handle holds the role.
    Taken {
        /// The token in the owner word.
        owner: u32,
    },
    /// The shared state could not be recovered (the claim is given back).
    Corrupted(Corruption),
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Taken { owner } => write!(f, "role already taken (owner token {owner})"),
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

/// Why a message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The message is longer than the ring's largest message.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Largest message this ring takes.
        max: usize,
    },
    /// Not enough free space now.
    Full {
        /// Bytes the frame needs (padding and the next frame header included).
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// The consumer's shared state is invalid.
    Corrupted(Corruption),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "message too large: {len} bytes, at most {max}")
            }
            Self::Full { needed, free } => {
                write!(f, "ring full: {needed} bytes needed, {free} free")
            }
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

/// Why no message could be borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// No message is committed.
    Empty,
    /// The next frame is invalid.
    Corrupted(Corruption),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "ring empty"),
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

/// Why no message could be copied out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopError {
    /// No message is committed.
    Empty,
    /// The next message does not fit the buffer; nothing was consumed.
    BufferTooSmall {
        /// Length of the message.
        len: usize,
        /// Length of the buffer.
        buffer: usize,
    },
    /// The next frame is invalid.
    Corrupted(Corruption),
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "ring empty"),
            Self::BufferTooSmall { len, buffer } => write!(
                f,
                "buffer too small: message is {len} bytes, buffer {buffer}"
            ),
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

impl From<ReadError> for PopError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Empty => Self::Empty,
            ReadError::Corrupted(c) => Self::Corrupted(c),
        }
    }
}

/// Why a blocking wait ended without its condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    TimedOut,
    /// The message waited for is longer than the ring's largest message.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Largest message this ring takes.
        max: usize,
    },
    /// The peer's shared state is invalid.
    Corrupted(Corruption),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => write!(f, "timed out"),
            Self::TooLarge { len, max } => {
                write!(f, "message too large: {len} bytes, at most {max}")
            }
            Self::Corrupted(c) => write!(f, "corrupted ring: {c}"),
        }
    }
}

impl From<TimedOut> for WaitError {
    fn from(_: TimedOut) -> Self {
        Self::TimedOut
    }
}

impl core::error::Error for Corruption {}
impl core::error::Error for ClaimError {}
impl core::error::Error for PushError {}
impl core::error::Error for ReadError {}
impl core::error::Error for PopError {}
impl core::error::Error for WaitError {}
