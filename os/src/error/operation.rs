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

use shmring_core::broadcast::Policy;

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

/// A message that is not a valid value of the type asked for
/// ([`recv_value`](crate::TypedReceiver::recv_value) and the other typed
/// receives): the peer sent other bytes than a `T`. The message is consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a message of {len} bytes is not a {type_name} ({expected} bytes): {problem}")]
pub struct InvalidValue {
    /// The type asked for (`std::any::type_name`).
    pub type_name: &'static str,
    /// Length of the message received.
    pub len: usize,
    /// Length of the type (`size_of`).
    pub expected: usize,
    /// What is wrong with it.
    pub problem: ValueProblem,
}

/// What makes a message not a valid value ([`InvalidValue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    /// Its length is not the type's.
    #[error("wrong length")]
    WrongLength,
    /// Its bytes are not a valid value: a bit pattern the type refuses (an enum
    /// discriminant it does not have, a `bool` that is not 0 or 1, a failed
    /// `#[zerocopy(validate)]`-style check of the type's own).
    #[error("invalid bit pattern")]
    InvalidBitPattern,
    /// Read in place, its bytes are not on the type's alignment.
    #[error("not aligned to {align} bytes")]
    Misaligned {
        /// The type's alignment.
        align: usize,
    },
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

/// Why a value could not be encoded (the `serde` feature's `send_serialized`
/// family): the type's `Serialize` asked for what postcard cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeFailure {
    /// A sequence or map that does not know its length before its first item
    /// (postcard writes the length first): a `Serialize` calling
    /// `serialize_seq(None)`, such as one over an iterator.
    #[error("a sequence or map of unknown length (postcard writes the length first)")]
    SeqLengthUnknown,
    /// The type's own `Serialize` returned an error (serde's `Error::custom`).
    #[error("the type's Serialize failed")]
    Custom,
    /// Something postcard does not encode (`collect_str` of a `Display` type
    /// without `alloc`, or a feature it never implements).
    #[error("postcard cannot encode the type")]
    Unsupported,
    /// Any other postcard error (its error type may grow).
    #[error("postcard failed to encode it")]
    Other,
}

/// What was wrong with a message that is not the postcard encoding of the type
/// asked for (the `serde` feature's `recv_deserialized` family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeFailure {
    /// The message ended inside a value (a length or field past its end).
    #[error("the message ended inside a value")]
    UnexpectedEnd,
    /// A variable-length integer longer than its type allows.
    #[error("a variable-length integer longer than its type allows")]
    BadVarint,
    /// A `bool` byte other than 0 or 1.
    #[error("a bool byte other than 0 or 1")]
    BadBool,
    /// A `char` that is not a Unicode scalar value.
    #[error("a char that is not a Unicode scalar value")]
    BadChar,
    /// A string that is not UTF-8.
    #[error("a string that is not UTF-8")]
    BadUtf8,
    /// An `Option` tag other than 0 or 1.
    #[error("an Option tag other than 0 or 1")]
    BadOption,
    /// An enum tag postcard refuses (postcard 1.1 does not return it: an
    /// unknown variant index is [`Custom`](Self::Custom)).
    #[error("an enum tag postcard refuses")]
    BadEnum,
    /// Bytes postcard's encoding does not allow (postcard 1.1 does not return
    /// it; kept for its later versions).
    #[error("bytes the type's encoding does not allow")]
    BadEncoding,
    /// The type's `Deserialize` refused what it read (serde's `Error::custom`
    /// and kin): an enum variant index the type does not have, a validating
    /// impl, a `#[serde(try_from)]` that failed.
    #[error("the type's Deserialize refused the value (an unknown enum variant, a failed check)")]
    Custom,
    /// The type needs a self-describing format (`deserialize_any`: internally
    /// tagged or untagged enums, `#[serde(flatten)]`), which postcard is not.
    #[error("the type needs a self-describing format, which postcard is not")]
    Unsupported,
    /// A whole value, then bytes left over: the peer sent another type, or more
    /// than one value.
    #[error("bytes left over after a whole value")]
    TrailingBytes,
    /// Any other postcard error (its error type may grow).
    #[error("postcard failed to decode it")]
    Other,
}

/// A received message that is not a valid encoding of the type asked for: a peer
/// sending another type, another version of it, or garbage. The message was
/// consumed; the next receive returns the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("undecodable message of {len} bytes: {failure}, at byte {position}")]
pub struct DecodeError {
    /// Length of the message.
    pub len: usize,
    /// Bytes read when decoding stopped: the fault is in the bytes just before
    /// (for [`UnexpectedEnd`](DecodeFailure::UnexpectedEnd), `len` or where a
    /// length that runs past the end was read; for
    /// [`TrailingBytes`](DecodeFailure::TrailingBytes), where the value ended).
    pub position: usize,
    /// What was wrong.
    pub failure: DecodeFailure,
}

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

impl From<Box<InvalidValue>> for Error {
    fn from(v: Box<InvalidValue>) -> Self {
        let InvalidValue {
            type_name,
            len,
            expected,
            problem,
        } = *v;
        Error::InvalidValue {
            type_name,
            len,
            expected,
            problem,
        }
    }
}

impl From<Box<IoFailure>> for Error {
    fn from(io: Box<IoFailure>) -> Self {
        let IoFailure { op, what, source } = *io;
        Error::Io { op, what, source }
    }
}

/// Defines a send error: the variants given, then those every send error has
/// (which are [`SendError`]'s).
macro_rules! send_error {
    ($(#[$attr:meta])* pub enum $name:ident { $($own:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum $name {
            $($own)*
            /// The channel was full and the receiver has gone.
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
            /// A broadcast grant or in-place read on a topic whose policy is
            /// not strict. Channels never return it.
            #[error("writing or reading in place needs a strict topic; this one is {policy:?}")]
            InPlaceNeedsStrict {
                /// The topic's policy.
                policy: Policy,
            },
            /// The value could not be encoded (only the `serde` feature's
            /// `send_serialized` family returns it).
            #[error("cannot encode the value: {failure}")]
            Encode {
                /// Why.
                failure: EncodeFailure,
            },
            /// The segment's shared state is invalid.
            #[error(transparent)]
            Corrupted(Box<SegmentCorrupted>),
            /// A system call failed.
            #[error(transparent)]
            Io(Box<IoFailure>),
        }
    };
}

/// Defines a receive error: the variants given, then those every receive error
/// has (which are [`RecvError`]'s).
macro_rules! recv_error {
    ($(#[$attr:meta])* pub enum $name:ident { $($own:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum $name {
            $($own)*
            /// No message, and the sender has gone after everything it sent was
            /// received.
            #[error("disconnected: the sender has gone")]
            Disconnected,
            /// A broadcast subscriber fell behind: the publisher overwrote
            /// `missed` messages it had not read (a lossy topic, or a gated one
            /// that cut it off); the next call returns the oldest message still
            /// held. Channels never return it.
            #[error("lagged: {missed} messages overwritten unread")]
            Lagged {
                /// Messages skipped.
                missed: u64,
            },
            /// The buffer is shorter than the next message; nothing was consumed
            /// (where the transport can keep it: see its docs).
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
            /// A typed receive got a message that is not a valid value of its
            /// type (consumed). Byte receives never return it.
            #[error(transparent)]
            InvalidValue(Box<InvalidValue>),
            /// A broadcast grant or in-place read on a topic whose policy is
            /// not strict. Channels never return it.
            #[error("writing or reading in place needs a strict topic; this one is {policy:?}")]
            InPlaceNeedsStrict {
                /// The topic's policy.
                policy: Policy,
            },
            /// The message is not a valid encoding of the type asked for; it
            /// was consumed (only the `serde` feature's `recv_deserialized`
            /// family returns it).
            #[error(transparent)]
            Decode(Box<DecodeError>),
            /// The segment's shared state is invalid.
            #[error(transparent)]
            Corrupted(Box<SegmentCorrupted>),
            /// A system call failed.
            #[error(transparent)]
            Io(Box<IoFailure>),
        }
    };
}

send_error! {
    /// An error of [`try_send`](crate::MessageSender::try_send) (and of the `try_`
    /// grants and batches of a channel's sender).
    pub enum TrySendError {
        /// No room for the message now.
        #[error("channel full: {needed} bytes needed, {free} free")]
        Full {
            /// Bytes the message needs.
            needed: u64,
            /// Bytes free (0 where the transport cannot tell).
            free: u64,
        },
    }
}

send_error! {
    /// An error of [`send`](crate::MessageSender::send): waiting as long as it
    /// takes, it never finds the channel full.
    pub enum SendError {}
}

send_error! {
    /// An error of [`send_timeout`](crate::MessageSender::send_timeout) and
    /// [`send_deadline`](crate::MessageSender::send_deadline).
    pub enum SendTimeoutError {
        /// The deadline passed with the channel still full.
        #[error("timed out")]
        TimedOut,
    }
}

recv_error! {
    /// An error of [`try_recv`](crate::MessageReceiver::try_recv) (and of a
    /// channel's `try_read` and `try_recv_batch`).
    pub enum TryRecvError {
        /// No message now.
        #[error("channel empty")]
        Empty,
    }
}

recv_error! {
    /// An error of [`recv`](crate::MessageReceiver::recv): waiting as long as it
    /// takes, it never finds the channel empty.
    pub enum RecvError {}
}

recv_error! {
    /// An error of [`recv_timeout`](crate::MessageReceiver::recv_timeout) and
    /// [`recv_deadline`](crate::MessageReceiver::recv_deadline).
    pub enum RecvTimeoutError {
        /// The deadline passed with no message.
        #[error("timed out")]
        TimedOut,
    }
}

// The untimed types hold exactly the variants their family shares: a `try_` or
// timed type is its untimed twin plus one variant (`Full`, `Empty`, `TimedOut`).
// Every conversion below maps that shared part with one of these two macros, and
// handles the extra variant itself.

/// Matches `$e`, a send error of type `$from`, onto `$to`: the variants every send
/// error has ([`SendError`]'s) to their namesakes, any other by the arms given.
macro_rules! map_send {
    ($e:expr, $from:ident => $to:ident $(, $pat:pat => $out:expr)* $(,)?) => {
        match $e {
            $from::Disconnected => $to::Disconnected,
            $from::MessageTooLarge { len, max } => $to::MessageTooLarge { len, max },
            $from::InPlaceNeedsStrict { policy } => $to::InPlaceNeedsStrict { policy },
            $from::Encode { failure } => $to::Encode { failure },
            $from::Corrupted(c) => $to::Corrupted(c),
            $from::Io(io) => $to::Io(io),
            $($pat => $out,)*
        }
    };
}

/// As [`map_send`] for receive errors ([`RecvError`]'s variants).
macro_rules! map_recv {
    ($e:expr, $from:ident => $to:ident $(, $pat:pat => $out:expr)* $(,)?) => {
        match $e {
            $from::Disconnected => $to::Disconnected,
            $from::Lagged { missed } => $to::Lagged { missed },
            $from::BufferTooSmall { len, buffer } => $to::BufferTooSmall { len, buffer },
            $from::InPlaceNeedsStrict { policy } => $to::InPlaceNeedsStrict { policy },
            $from::FrameTooLong(f) => $to::FrameTooLong(f),
            $from::Decode(d) => $to::Decode(d),
            $from::InvalidValue(v) => $to::InvalidValue(v),
            $from::Corrupted(c) => $to::Corrupted(c),
            $from::Io(io) => $to::Io(io),
            $($pat => $out,)*
        }
    };
}

// Crate-internal: an operation built on calls that return the crate's `Error`
// (the blocking driver, a transport's system calls) maps it once, at its end.

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
    /// The shared part of every send operation's `from_error`.
    fn from_error(e: Error) -> Self {
        match e {
            Error::Disconnected { .. } => Self::Disconnected,
            Error::MessageTooLarge { len, max } => Self::MessageTooLarge { len, max },
            Error::InPlaceNeedsStrict { policy } => Self::InPlaceNeedsStrict { policy },
            Error::Encode { failure } => Self::Encode { failure },
            e => match Fault::from_error(e) {
                Fault::Corrupted(c) => Self::Corrupted(c),
                f => Self::Io(f.io_only()),
            },
        }
    }

    /// The error of a send without a deadline, which cannot time out.
    pub(crate) fn untimed(e: SendTimeoutError) -> Self {
        // Only a deadline makes a timeout (`blocking::block`, the kernel's timed
        // calls): a send with none never gets one. Should a kernel call say
        // otherwise, the caller gets its errno, not a panic.
        map_send!(e, SendTimeoutError => Self,
            SendTimeoutError::TimedOut => Self::Io(untimed_timeout("send")))
    }
}

impl TrySendError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::Full { needed, free } => Self::Full { needed, free },
            e => map_send!(SendError::from_error(e), SendError => Self),
        }
    }
}

impl SendTimeoutError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::TimedOut => Self::TimedOut,
            e => SendError::from_error(e).into(),
        }
    }
}

impl RecvError {
    /// The shared part of every receive operation's `from_error`.
    fn from_error(e: Error) -> Self {
        match e {
            Error::Disconnected { .. } => Self::Disconnected,
            Error::Lagged { missed } => Self::Lagged { missed },
            Error::BufferTooSmall { len, buffer } => Self::BufferTooSmall { len, buffer },
            Error::InPlaceNeedsStrict { policy } => Self::InPlaceNeedsStrict { policy },
            Error::Decode {
                len,
                position,
                failure,
            } => Self::Decode(Box::new(DecodeError {
                len,
                position,
                failure,
            })),
            Error::InvalidValue {
                type_name,
                len,
                expected,
                problem,
            } => Self::InvalidValue(Box::new(InvalidValue {
                type_name,
                len,
                expected,
                problem,
            })),
            e => match Fault::from_error(e) {
                Fault::Corrupted(c) => Self::Corrupted(c),
                Fault::FrameTooLong(f) => Self::FrameTooLong(f),
                Fault::Io(io) => Self::Io(io),
            },
        }
    }

    /// The error of a receive without a deadline, which cannot time out.
    pub(crate) fn untimed(e: RecvTimeoutError) -> Self {
        // As in `SendError::untimed`.
        map_recv!(e, RecvTimeoutError => Self,
            RecvTimeoutError::TimedOut => Self::Io(untimed_timeout("receive")))
    }
}

impl TryRecvError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::Empty => Self::Empty,
            e => RecvError::from_error(e).into(),
        }
    }

    /// The error as a blocking receive's, `None` for `Empty` (which a blocking
    /// receive waits out).
    pub(crate) fn into_recv(self) -> Option<RecvError> {
        Some(map_recv!(self, TryRecvError => RecvError, TryRecvError::Empty => return None))
    }
}

impl RecvTimeoutError {
    pub(crate) fn from_error(e: Error) -> Self {
        match e {
            Error::TimedOut => Self::TimedOut,
            e => RecvError::from_error(e).into(),
        }
    }
}

impl From<SendError> for SendTimeoutError {
    fn from(e: SendError) -> Self {
        map_send!(e, SendError => Self)
    }
}

impl From<SendError> for TrySendError {
    fn from(e: SendError) -> Self {
        map_send!(e, SendError => Self)
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        map_recv!(e, RecvError => Self)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        map_recv!(e, RecvError => Self)
    }
}

/// Each error to its namesake, for code that waits by itself (an async sender)
/// and meets the crate's [`Error`] on the way (an arming); one a send cannot
/// return (`Full`, `TimedOut`) becomes an I/O failure that keeps its message.
impl From<Error> for SendError {
    fn from(e: Error) -> Self {
        SendError::from_error(e)
    }
}

/// As `From<Error> for SendError`, for receives (`Empty` is not one).
impl From<Error> for RecvError {
    fn from(e: Error) -> Self {
        RecvError::from_error(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Disconnected => Error::Disconnected {
                peer: Role::Receiver,
            },
            SendError::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
            SendError::InPlaceNeedsStrict { policy } => Error::InPlaceNeedsStrict { policy },
            SendError::Encode { failure } => Error::Encode { failure },
            SendError::Corrupted(c) => c.into(),
            SendError::Io(io) => io.into(),
        }
    }
}

impl From<TrySendError> for Error {
    fn from(e: TrySendError) -> Self {
        map_send!(e, TrySendError => SendError,
            TrySendError::Full { needed, free } => return Error::Full { needed, free })
        .into()
    }
}

impl From<SendTimeoutError> for Error {
    fn from(e: SendTimeoutError) -> Self {
        map_send!(e, SendTimeoutError => SendError,
            SendTimeoutError::TimedOut => return Error::TimedOut)
        .into()
    }
}

impl From<RecvError> for Error {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => Error::Disconnected { peer: Role::Sender },
            RecvError::Lagged { missed } => Error::Lagged { missed },
            RecvError::BufferTooSmall { len, buffer } => Error::BufferTooSmall { len, buffer },
            RecvError::InPlaceNeedsStrict { policy } => Error::InPlaceNeedsStrict { policy },
            RecvError::FrameTooLong(f) => f.into(),
            RecvError::Decode(d) => {
                let DecodeError {
                    len,
                    position,
                    failure,
                } = *d;
                Error::Decode {
                    len,
                    position,
                    failure,
                }
            }
            RecvError::InvalidValue(v) => v.into(),
            RecvError::Corrupted(c) => c.into(),
            RecvError::Io(io) => io.into(),
        }
    }
}

impl From<TryRecvError> for Error {
    fn from(e: TryRecvError) -> Self {
        map_recv!(e, TryRecvError => RecvError, TryRecvError::Empty => return Error::Empty).into()
    }
}

impl From<RecvTimeoutError> for Error {
    fn from(e: RecvTimeoutError) -> Self {
        map_recv!(e, RecvTimeoutError => RecvError,
            RecvTimeoutError::TimedOut => return Error::TimedOut)
        .into()
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

    /// Each type's own variant keeps its meaning through the shared mappings:
    /// `Full`, `Empty` and `TimedOut` into the crate's error and back, a timeout
    /// without a deadline an `ETIMEDOUT` failure, the shared variants unchanged.
    #[test]
    fn own_variants_survive_the_shared_mappings() {
        let e: Error = TrySendError::Full { needed: 9, free: 2 }.into();
        assert!(matches!(e, Error::Full { needed: 9, free: 2 }));
        assert_eq!(
            TrySendError::from_error(e),
            TrySendError::Full { needed: 9, free: 2 }
        );
        let e: Error = TryRecvError::Empty.into();
        assert!(matches!(e, Error::Empty));
        assert_eq!(TryRecvError::from_error(e), TryRecvError::Empty);
        let e: Error = SendTimeoutError::TimedOut.into();
        assert_eq!(SendTimeoutError::from_error(e), SendTimeoutError::TimedOut);
        let e: Error = RecvTimeoutError::TimedOut.into();
        assert_eq!(RecvTimeoutError::from_error(e), RecvTimeoutError::TimedOut);
        // A kind an operation cannot return becomes an I/O failure, not a panic.
        assert!(matches!(
            SendTimeoutError::from_error(Error::Empty),
            SendTimeoutError::Io(_)
        ));
        assert!(matches!(
            TryRecvError::from_error(Error::TimedOut),
            TryRecvError::Io(_)
        ));
        match SendError::untimed(SendTimeoutError::TimedOut) {
            SendError::Io(io) => assert_eq!(io.source.kind(), io::ErrorKind::TimedOut),
            other => panic!("untimed timeout: {other:?}"),
        }
        match RecvError::untimed(RecvTimeoutError::TimedOut) {
            RecvError::Io(io) => assert_eq!(io.op, "receive"),
            other => panic!("untimed timeout: {other:?}"),
        }
        assert_eq!(
            SendError::untimed(SendTimeoutError::MessageTooLarge { len: 9, max: 8 }),
            SendError::MessageTooLarge { len: 9, max: 8 }
        );
        assert_eq!(
            RecvTimeoutError::from(RecvError::BufferTooSmall { len: 9, buffer: 4 }),
            RecvTimeoutError::BufferTooSmall { len: 9, buffer: 4 }
        );
        let e: Error = SendError::Disconnected.into();
        assert!(matches!(
            e,
            Error::Disconnected {
                peer: Role::Receiver
            }
        ));
        let e: Error = RecvTimeoutError::Disconnected.into();
        assert!(matches!(e, Error::Disconnected { peer: Role::Sender }));
        // A typed receive's invalid value keeps its type, lengths and problem.
        let invalid = InvalidValue {
            type_name: "u64",
            len: 3,
            expected: 8,
            problem: ValueProblem::WrongLength,
        };
        let e: Error = TryRecvError::InvalidValue(Box::new(invalid.clone())).into();
        assert!(matches!(
            e,
            Error::InvalidValue {
                len: 3,
                expected: 8,
                ..
            }
        ));
        assert_eq!(
            RecvTimeoutError::from_error(e),
            RecvTimeoutError::InvalidValue(Box::new(invalid.clone()))
        );
        assert_eq!(
            invalid.to_string(),
            "a message of 3 bytes is not a u64 (8 bytes): wrong length"
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
