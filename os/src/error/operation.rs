//! One error type per message operation (crossbeam-channel's `err.rs` shape):
//! each names exactly what its call can return, so a loop over `try_recv` matches
//! `Empty` and `Disconnected` without an arm for setup errors. Every type converts
//! into the crate's [`Error`], so `?` in a function returning
//! [`Result`](crate::Result) keeps working.
//!
//! The outcomes a caller expects (full, empty, gone, too large, too small) are
//! small inline variants: the error path of a `try_` call allocates nothing. The
//! rare faults (corrupted shared state, a broken frame, a failed system call) are
//! boxed, so every `Result` stays three words (`Result<usize, TryRecvError>` is
//! 24 bytes).

use std::io;

use super::{Corrupted, Error, Role};

/// A segment whose shared state broke the protocol: a bug or a hostile peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupted segment {what}: {detail}")]
pub struct SegmentCorrupted {
    /// The segment name or path.
    pub what: String,
    /// What was found.
    pub detail: Corrupted,
}

/// A stream peer's frame longer than this end's largest message; the stream
/// cannot be resynchronised (every later receive returns this again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: the peer sent a frame of {len} bytes, more than the largest message {max}")]
pub struct FrameTooLong {
    /// The transport.
    pub what: String,
    /// Length in the frame's header.
    pub len: u64,
    /// Largest message this end accepts.
    pub max: usize,
}

/// A system call that failed during an operation (a liveness probe, a socket or
/// message-queue call).
#[derive(Debug, thiserror::Error)]
#[error("{op} on {what}: {source}")]
pub struct IoFailure {
    /// The operation that failed.
    pub op: &'static str,
    /// The segment, path or address.
    pub what: String,
    /// The system's error.
    pub source: io::Error,
}

impl Clone for IoFailure {
    /// The same operation and place; the source keeps its errno, or else its kind
    /// and message.
    fn clone(&self) -> Self {
        let source = match self.source.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::new(self.source.kind(), self.source.to_string()),
        };
        Self {
            op: self.op,
            what: self.what.clone(),
            source,
        }
    }
}

impl PartialEq for IoFailure {
    /// Same operation, place, and system error (errno, or kind and message).
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op
            && self.what == other.what
            && self.source.kind() == other.source.kind()
            && self.source.raw_os_error() == other.source.raw_os_error()
            && (self.source.raw_os_error().is_some()
                || self.source.to_string() == other.source.to_string())
    }
}

impl Eq for IoFailure {}

/// The rare faults, split from a crate [`Error`] once for every operation type.
enum Fault {
    Corrupted(Box<SegmentCorrupted>),
    FrameTooLong(Box<FrameTooLong>),
    Io(Box<IoFailure>),
}

impl Fault {
    /// `e` as a fault; an error no operation returns (a probe's `NotFound`, say)
    /// becomes an [`IoFailure`] that keeps its message.
    fn from_error(e: Error) -> Self {
        match e {
            Error::Corrupted { what, detail } => {
                Self::Corrupted(Box::new(SegmentCorrupted { what, detail }))
            }
            Error::FrameTooLong { what, len, max } => {
                Self::FrameTooLong(Box::new(FrameTooLong { what, len, max }))
            }
            Error::Io { op, what, source } => Self::Io(Box::new(IoFailure { op, what, source })),
            other => Self::Io(Box::new(IoFailure {
                op: "operation",
                what: String::new(),
                source: io::Error::other(other),
            })),
        }
    }

    /// A frame fault in an operation that cannot meet one: an I/O failure that
    /// keeps its message.
    fn io_only(self) -> Box<IoFailure> {
        match self {
            Self::Io(io) => io,
            Self::Corrupted(c) => Box::new(IoFailure {
                op: "operation",
                what: String::new(),
                source: io::Error::other(*c),
            }),
            Self::FrameTooLong(f) => Box::new(IoFailure {
                op: "operation",
                what: String::new(),
                source: io::Error::other(*f),
            }),
        }
    }
}

impl From<Box<SegmentCorrupted>> for Error {
    fn from(c: Box<SegmentCorrupted>) -> Self {
        let SegmentCorrupted { what, detail } = *c;
        Error::Corrupted { what, detail }
    }
}

impl From<Box<FrameTooLong>> for Error {
    fn from(f: Box<FrameTooLong>) -> Self {
        let FrameTooLong { what, len, max } = *f;
        Error::FrameTooLong { what, len, max }
    }
}

impl From<Box<IoFailure>> for Error {
    fn from(io: Box<IoFailure>) -> Self {
        let IoFailure { op, what, source } = *io;
        Error::Io { op, what, source }
    }
}

/// An error of [`try_send`](crate::MessageSender::try_send) (and of the `try_`
/// grants and batches of a channel's sender).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// No room for the message now.
    #[error("channel full: {needed} bytes needed, {free} free")]
    Full {
        /// Bytes the message needs.
        needed: u64,
        /// Bytes free (0 where the transport cannot tell).
        free: u64,
    },
    /// No room, and the receiver has gone.
    #[error("disconnected: the receiver has gone")]
    Disconnected,
    /// The message is longer than the channel's largest message.
    #[error("message too large: {len} bytes, at most {max}")]
    MessageTooLarge {
        /// Length given.
        len: usize,
        /// Largest message the channel takes.
        max: usize,
    },
    /// The segment's shared state is invalid.
    #[error(transparent)]
    Corrupted(Box<SegmentCorrupted>),
    /// A system call failed.
    #[error(transparent)]
    Io(Box<IoFailure>),
}

/// An error of [`send`](crate::MessageSender::send): waiting as long as it takes,
/// it never finds the channel full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The receiver has gone while the channel was full.
    #[error("disconnected: the receiver has gone")]
    Disconnected,
    /// The message is longer than the channel's largest message.
    #[error("message too large: {len} bytes, at most {max}")]
    MessageTooLarge {
        /// Length given.
        len: usize,
        /// Largest message the channel takes.
        max: usize,
    },
    /// The segment's shared state is invalid.
    #[error(transparent)]
    Corrupted(Box<SegmentCorrupted>),
    /// A system call failed.
    #[error(transparent)]
    Io(Box<IoFailure>),
}

/// An error of [`send_timeout`](crate::MessageSender::send_timeout) and
/// [`send_deadline`](crate::MessageSender::send_deadline).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendTimeoutError {
    /// The deadline passed with the channel still full.
    #[error("timed out")]
    TimedOut,
    /// The receiver has gone while the channel was full.
    #[error("disconnected: the receiver has gone")]
    Disconnected,
    /// The message is longer than the channel's largest message.
    #[error("message too large: {len} bytes, at most {max}")]
    MessageTooLarge {
        /// Length given.
        len: usize,
        /// Largest message the channel takes.
        max: usize,
    },
    /// The segment's shared state is invalid.
    #[error(transparent)]
    Corrupted(Box<SegmentCorrupted>),
    /// A system call failed.
    #[error(transparent)]
    Io(Box<IoFailure>),
}

/// An error of [`try_recv`](crate::MessageReceiver::try_recv) (and of a
/// channel's `try_read` and `try_recv_batch`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// No message now.
    #[error("channel empty")]
    Empty,
    /// No message, and the sender has gone after everything it sent was received.
    #[error("disconnected: the sender has gone")]
    Disconnected,
    /// The buffer is shorter than the next message; nothing was consumed (where
    /// the transport can keep it: see its docs).
    #[error("buffer too small: message is {len} bytes, buffer {buffer}")]
    BufferTooSmall {
        /// Length of the message: the buffer needed.
        len: usize,
        /// Length of the buffer.
        buffer: usize,
    },
    /// A stream peer sent a frame longer than this end's largest message.
    #[error(transparent)]
    FrameTooLong(Box<FrameTooLong>),
    /// The segment's shared state is invalid.
    #[error(transparent)]
    Corrupted(Box<SegmentCorrupted>),
    /// A system call failed.
    #[error(transparent)]
    Io(Box<IoFailure>),
}

/// An error of [`recv`](crate::MessageReceiver::recv): waiting as long as it
/// takes, it never finds the channel empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The sender has gone and everything it sent was received.
    #[error("disconnected: the sender has gone")]
    Disconnected,
    /// The buffer is shorter than the next message; nothing was consumed.
    #[error("buffer too small: message is {len} bytes, buffer {buffer}")]
    BufferTooSmall {
        /// Length of the message: the buffer needed.
        len: usize,
        /// Length of the buffer.
        buffer: usize,
    },
    /// A stream peer sent a frame longer than this end's largest message.
    #[error(transparent)]
    FrameTooLong(Box<FrameTooLong>),
    /// The segment's shared state is invalid.
    #[error(transparent)]
    Corrupted(Box<SegmentCorrupted>),
    /// A system call failed.
    #[error(transparent)]
    Io(Box<IoFailure>),
}

/// An error of [`recv_timeout`](crate::MessageReceiver::recv_timeout) and
/// [`recv_deadline`](crate::MessageReceiver::recv_deadline).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// The deadline passed with no message.
    #[error("timed out")]
    TimedOut,
    /// The sender has gone and everything it sent was received.
    #[error("disconnected: the sender has gone")]
    Disconnected,
    /// The buffer is shorter than the next message; nothing was consumed.
    #[error("buffer too small: message is {len} bytes, buffer {buffer}")]
    BufferTooSmall {
        /// Length of the message: the buffer needed.
        len: usize,
        /// Length of the buffer.
        buffer: usize,
    },
    /// A stream peer sent a frame longer than this end's largest message.
    #[error(transparent)]
    FrameTooLong(Box<FrameTooLong>),
    /// The segment's shared state is invalid.
    #[error(transparent)]
    Corrupted(Box<SegmentCorrupted>),
    /// A system call failed.
    #[error(transparent)]
    Io(Box<IoFailure>),
}

// Crate-internal: an operation built on calls that return the crate's `Error`
// (the blocking driver, a transport's system calls) maps it once, at its end.

impl TrySendError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::Full { needed, free } => Self::Full { needed, free },
            Error::Disconnected { .. } => Self::Disconnected,
            Error::MessageTooLarge { len, max } => Self::MessageTooLarge { len, max },
            e => match Fault::from_error(e) {
                Fault::Corrupted(c) => Self::Corrupted(c),
                f => Self::Io(f.io_only()),
            },
        }
    }
}

impl SendTimeoutError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::TimedOut => Self::TimedOut,
            Error::Disconnected { .. } => Self::Disconnected,
            Error::MessageTooLarge { len, max } => Self::MessageTooLarge { len, max },
            e => match Fault::from_error(e) {
                Fault::Corrupted(c) => Self::Corrupted(c),
                f => Self::Io(f.io_only()),
            },
        }
    }
}

/// A timeout reported to a call that set no deadline (which the waiting code
/// never does): an `ETIMEDOUT` failure of the operation `op`.
fn untimed_timeout(op: &'static str) -> Box<IoFailure> {
    Box::new(IoFailure {
        op,
        what: "a call without a deadline".to_owned(),
        source: io::Error::from(io::ErrorKind::TimedOut),
    })
}

impl SendError {
    /// The error of a send without a deadline, which cannot time out.
    pub(crate) fn untimed(e: SendTimeoutError) -> Self {
        match e {
            SendTimeoutError::Disconnected => Self::Disconnected,
            SendTimeoutError::MessageTooLarge { len, max } => Self::MessageTooLarge { len, max },
            SendTimeoutError::Corrupted(c) => Self::Corrupted(c),
            SendTimeoutError::Io(io) => Self::Io(io),
            // Only a deadline makes a timeout (`blocking::block`, the kernel's
            // timed calls): a send with none never gets here. Should a kernel
            // call say otherwise, the caller gets its errno, not a panic.
            SendTimeoutError::TimedOut => Self::Io(untimed_timeout("send")),
        }
    }
}

impl TryRecvError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::Empty => Self::Empty,
            Error::Disconnected { .. } => Self::Disconnected,
            Error::BufferTooSmall { len, buffer } => Self::BufferTooSmall { len, buffer },
            e => match Fault::from_error(e) {
                Fault::Corrupted(c) => Self::Corrupted(c),
                Fault::FrameTooLong(f) => Self::FrameTooLong(f),
                Fault::Io(io) => Self::Io(io),
            },
        }
    }
}

impl RecvTimeoutError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::TimedOut => Self::TimedOut,
            Error::Disconnected { .. } => Self::Disconnected,
            Error::BufferTooSmall { len, buffer } => Self::BufferTooSmall { len, buffer },
            e => match Fault::from_error(e) {
                Fault::Corrupted(c) => Self::Corrupted(c),
                Fault::FrameTooLong(f) => Self::FrameTooLong(f),
                Fault::Io(io) => Self::Io(io),
            },
        }
    }
}

impl RecvError {
    /// The error of a receive without a deadline, which cannot time out.
    pub(crate) fn untimed(e: RecvTimeoutError) -> Self {
        match e {
            RecvTimeoutError::Disconnected => Self::Disconnected,
            RecvTimeoutError::BufferTooSmall { len, buffer } => {
                Self::BufferTooSmall { len, buffer }
            }
            RecvTimeoutError::FrameTooLong(f) => Self::FrameTooLong(f),
            RecvTimeoutError::Corrupted(c) => Self::Corrupted(c),
            RecvTimeoutError::Io(io) => Self::Io(io),
            // As in `SendError::untimed`.
            RecvTimeoutError::TimedOut => Self::Io(untimed_timeout("receive")),
        }
    }
}

impl From<SendError> for SendTimeoutError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Disconnected => Self::Disconnected,
            SendError::MessageTooLarge { len, max } => Self::MessageTooLarge { len, max },
            SendError::Corrupted(c) => Self::Corrupted(c),
            SendError::Io(io) => Self::Io(io),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => Self::Disconnected,
            RecvError::BufferTooSmall { len, buffer } => Self::BufferTooSmall { len, buffer },
            RecvError::FrameTooLong(f) => Self::FrameTooLong(f),
            RecvError::Corrupted(c) => Self::Corrupted(c),
            RecvError::Io(io) => Self::Io(io),
        }
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => Self::Disconnected,
            RecvError::BufferTooSmall { len, buffer } => Self::BufferTooSmall { len, buffer },
            RecvError::FrameTooLong(f) => Self::FrameTooLong(f),
            RecvError::Corrupted(c) => Self::Corrupted(c),
            RecvError::Io(io) => Self::Io(io),
        }
    }
}

impl From<TrySendError> for Error {
    fn from(e: TrySendError) -> Self {
        match e {
            TrySendError::Full { needed, free } => Error::Full { needed, free },
            TrySendError::Disconnected => Error::Disconnected {
                peer: Role::Receiver,
            },
            TrySendError::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
            TrySendError::Corrupted(c) => c.into(),
            TrySendError::Io(io) => io.into(),
        }
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        SendTimeoutError::from(e).into()
    }
}

impl From<SendTimeoutError> for Error {
    fn from(e: SendTimeoutError) -> Self {
        match e {
            SendTimeoutError::TimedOut => Error::TimedOut,
            SendTimeoutError::Disconnected => Error::Disconnected {
                peer: Role::Receiver,
            },
            SendTimeoutError::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
            SendTimeoutError::Corrupted(c) => c.into(),
            SendTimeoutError::Io(io) => io.into(),
        }
    }
}

impl From<TryRecvError> for Error {
    fn from(e: TryRecvError) -> Self {
        match e {
            TryRecvError::Empty => Error::Empty,
            TryRecvError::Disconnected => Error::Disconnected { peer: Role::Sender },
            TryRecvError::BufferTooSmall { len, buffer } => Error::BufferTooSmall { len, buffer },
            TryRecvError::FrameTooLong(f) => f.into(),
            TryRecvError::Corrupted(c) => c.into(),
            TryRecvError::Io(io) => io.into(),
        }
    }
}

impl From<RecvError> for Error {
    fn from(e: RecvError) -> Self {
        RecvTimeoutError::from(e).into()
    }
}

impl From<RecvTimeoutError> for Error {
    fn from(e: RecvTimeoutError) -> Self {
        match e {
            RecvTimeoutError::TimedOut => Error::TimedOut,
            RecvTimeoutError::Disconnected => Error::Disconnected { peer: Role::Sender },
            RecvTimeoutError::BufferTooSmall { len, buffer } => {
                Error::BufferTooSmall { len, buffer }
            }
            RecvTimeoutError::FrameTooLong(f) => f.into(),
            RecvTimeoutError::Corrupted(c) => c.into(),
            RecvTimeoutError::Io(io) => io.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hot calls' results stay three words: no payload inline beyond two.
    #[test]
    fn results_are_small() {
        assert_eq!(size_of::<std::result::Result<usize, TryRecvError>>(), 24);
        assert_eq!(size_of::<std::result::Result<(), TrySendError>>(), 24);
        assert_eq!(
            size_of::<std::result::Result<usize, RecvTimeoutError>>(),
            24
        );
        assert_eq!(size_of::<std::result::Result<(), SendTimeoutError>>(), 24);
    }

    /// Lowercase, no trailing punctuation, and the values that caused it.
    #[test]
    fn display_names_the_values() {
        let e = TrySendError::MessageTooLarge { len: 9, max: 8 };
        assert_eq!(e.to_string(), "message too large: 9 bytes, at most 8");
        let e = TryRecvError::BufferTooSmall { len: 9, buffer: 4 };
        assert_eq!(
            e.to_string(),
            "buffer too small: message is 9 bytes, buffer 4"
        );
        assert_eq!(TryRecvError::Empty.to_string(), "channel empty");
        assert_eq!(
            RecvTimeoutError::Disconnected.to_string(),
            "disconnected: the sender has gone"
        );
    }

    /// Into the crate's error and back: the same variant, the role filled in.
    #[test]
    fn round_trip_through_the_crate_error() {
        let e: Error = TrySendError::Disconnected.into();
        assert!(matches!(
            e,
            Error::Disconnected {
                peer: Role::Receiver
            }
        ));
        assert_eq!(TrySendError::from_error(e), TrySendError::Disconnected);
        let e: Error = TryRecvError::BufferTooSmall { len: 9, buffer: 4 }.into();
        assert!(matches!(e, Error::BufferTooSmall { len: 9, buffer: 4 }));
        let io = TryRecvError::Io(Box::new(IoFailure {
            op: "recv",
            what: "x".into(),
            source: io::Error::from_raw_os_error(libc::EBADF),
        }));
        assert_eq!(io.clone(), io);
        let e: Error = io.into();
        assert!(matches!(e, Error::Io { op: "recv", .. }));
    }
}
