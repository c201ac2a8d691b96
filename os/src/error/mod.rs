//! The errors of the `shmring` crate: [`Error`], which every call converts into,
//! and one type per message operation ([`TryRecvError`] and its kin), which the
//! endpoints return.

use std::io;

mod from_core;
mod operation;

pub use operation::{
    DecodeError, DecodeFailure, EncodeFailure, FrameTooLong, InvalidValue, IoFailure, RecvError,
    RecvTimeoutError, SegmentCorrupted, SendError, SendTimeoutError, TryRecvError, TrySendError,
    ValueProblem,
};

use shmring_core::{Corruption, LayoutError};

/// A channel endpoint's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The writing side.
    Sender,
    /// The reading side.
    Receiver,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        })
    }
}

/// Everything that can go wrong in `shmring`. Each variant names the problem and
/// carries the values that caused it; match on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A channel name that is empty, too long, or not a single path component.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A capacity that is not a power of two in the supported range.
    #[error(
        "invalid capacity {capacity}: must be a power of two from {} to {}",
        shmring_core::MIN_CAPACITY,
        shmring_core::MAX_CAPACITY
    )]
    InvalidCapacity {
        /// The capacity asked for.
        capacity: u64,
    },
    /// A create call found the name (or path) taken.
    #[error("{what} already exists")]
    AlreadyExists {
        /// The segment name or path.
        what: String,
    },
    /// An open call found no such segment.
    #[error("{what} not found")]
    NotFound {
        /// The segment name or path.
        what: String,
    },
    /// The operating system refused access (mode bits, owner).
    #[error("permission denied: {what}")]
    PermissionDenied {
        /// The segment name or path.
        what: String,
    },
    /// The segment belongs to another user, or others may write it, and the caller
    /// did not say to trust that.
    #[error(
        "untrusted segment {what}: owner uid {owner}, mode {mode:#o} (expected owner {expected_owner}, no bits outside {allowed_mode:#o})"
    )]
    Untrusted {
        /// The segment name or path.
        what: String,
        /// Owner found.
        owner: u32,
        /// Mode bits found.
        mode: u32,
        /// Owner expected.
        expected_owner: u32,
        /// Mode bits accepted.
        allowed_mode: u32,
    },
    /// The segment was written by an incompatible build (layout version, ring kind
    /// or byte order).
    #[error("incompatible layout in {what}: {source}")]
    IncompatibleLayout {
        /// The segment name or path.
        what: String,
        /// What the header says.
        source: LayoutError,
    },
    /// An `open_or_create` found an existing object that differs from what the
    /// builder asks for: another kind of object (`field` `"kind"`, the codes of
    /// [`shmring_core::layout`]: 1 SPSC ring, 2 MPMC ring, 3 event, 4 semaphore,
    /// 5 broadcast topic, 6 a topic's table, 7 shared mutex, 8 published value), another layout
    /// version (`"layout version"`), or another shape (`"capacity"`, `"slots"`,
    /// `"slot_size"`, `"endpoints"`, `"max_count"`, `"subscriber_slots"`,
    /// `"policy"` as [`Policy::word`](shmring_core::broadcast::Policy::word),
    /// `"cut_off_after_ms"`, a value's `"value_size"` and `"type_tag"`). Nothing
    /// was created or changed.
    #[error("{what} exists with {field} {found}, but {requested} was asked for")]
    Incompatible {
        /// The segment name or path.
        what: String,
        /// What differs.
        field: &'static str,
        /// The builder's value.
        requested: u64,
        /// The existing object's value.
        found: u64,
    },
    /// The segment's header or shared state is invalid: a bug or a hostile peer.
    #[error("corrupted segment {what}: {detail}")]
    Corrupted {
        /// The segment name or path.
        what: String,
        /// What was found.
        detail: Corrupted,
    },
    /// The object is too small (or large) to hold a ring.
    #[error("{what} has size {size}, expected {expected}")]
    BadSize {
        /// The segment name or path.
        what: String,
        /// Size found.
        size: u64,
        /// Size a ring needs (the least, when the header could not be read).
        expected: u64,
    },
    /// Space for the segment could not be reserved (a full `/dev/shm`: Docker's
    /// default is 64 MB; raise it with `--shm-size`).
    #[error("no space for {size} bytes in {what} (a full /dev/shm or file system?)")]
    NoSpace {
        /// The segment name or path.
        what: String,
        /// Bytes asked for.
        size: u64,
    },
    /// Another live endpoint holds the role.
    #[error("the {role} role is taken (owner token {owner})")]
    RoleTaken {
        /// The role asked for.
        role: Role,
        /// The token in the segment's owner word (the holder's process id).
        owner: u32,
    },
    /// The message is longer than the channel's largest message.
    #[error("message too large: {len} bytes, at most {max}")]
    MessageTooLarge {
        /// Length given.
        len: usize,
        /// Largest message the channel takes.
        max: usize,
    },
    /// The buffer is shorter than the next message; nothing was consumed.
    #[error("buffer too small: message is {len} bytes, buffer {buffer}")]
    BufferTooSmall {
        /// Length of the message.
        len: usize,
        /// Length of the buffer.
        buffer: usize,
    },
    /// No room for the message now (non-blocking call).
    #[error("channel full: {needed} bytes needed, {free} free")]
    Full {
        /// Bytes the message needs.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// No message now (non-blocking call).
    #[error("channel empty")]
    Empty,
    /// The peer has gone and the call cannot complete: a receiver found the channel
    /// empty after its sender left, or a sender found it full after its receiver
    /// left.
    #[error("disconnected: the {peer} has gone")]
    Disconnected {
        /// The role that is gone.
        peer: Role,
    },
    /// The timeout passed.
    #[error("timed out")]
    TimedOut,
    /// A [`Select`](crate::Select) asked to wait with no source and no
    /// deadline: it would wait for ever.
    #[error("a Select with no source and no deadline would wait for ever")]
    NothingToWaitFor,
    /// A broadcast subscriber fell behind: the publisher overwrote `missed`
    /// messages it had not read (a lossy topic, or a gated one that cut the
    /// subscriber off); the next receive returns the oldest message still held.
    #[error("lagged: {missed} messages overwritten unread")]
    Lagged {
        /// Messages skipped.
        missed: u64,
    },
    /// A broadcast publisher's grant or a subscriber's in-place read on a topic
    /// whose policy is not [`Policy::Strict`](shmring_core::broadcast::Policy):
    /// only a strict publisher never overwrites a message a subscriber holds.
    #[error("writing or reading in place needs a strict topic; this one is {policy:?}")]
    InPlaceNeedsStrict {
        /// The topic's policy.
        policy: shmring_core::broadcast::Policy,
    },
    /// A semaphore count past its maximum: a post on a semaphore at its maximum
    /// (nothing changed), an initial count over the maximum, or a maximum of 0 or
    /// over `SEMAPHORE_MAX_LIMIT` (then `max` is that limit).
    #[error("{what}: a count of {count} is over the maximum {max}")]
    CountOverflow {
        /// The semaphore.
        what: String,
        /// The count the call would have made (or the maximum asked for).
        count: u64,
        /// The largest count allowed.
        max: u32,
    },
    /// An MPMC slot count that is not a power of two from
    /// [`MIN_SLOTS`](shmring_core::mpmc::layout::MIN_SLOTS) to
    /// [`MAX_SLOTS`](shmring_core::mpmc::layout::MAX_SLOTS).
    #[error(
        "invalid slot count {slots}: must be a power of two from {} to {}",
        shmring_core::mpmc::layout::MIN_SLOTS,
        shmring_core::mpmc::layout::MAX_SLOTS
    )]
    InvalidSlotCount {
        /// The slot count asked for.
        slots: u64,
    },
    /// An MPMC slot size of zero or above `max`.
    #[error("invalid slot size {slot_size}: must be from 1 to {max}")]
    InvalidSlotSize {
        /// The slot size asked for.
        slot_size: u64,
        /// The largest slot size.
        max: u64,
    },
    /// An MPMC endpoint table size of zero or above `max`.
    #[error("invalid endpoint count {endpoints}: must be from 1 to {max}")]
    InvalidEndpointCount {
        /// The endpoint count asked for.
        endpoints: u64,
        /// The largest endpoint count.
        max: u64,
    },
    /// An MPMC shape whose segment would exceed `max` bytes.
    #[error("an MPMC segment of {size} bytes is over the largest, {max}")]
    SegmentTooLarge {
        /// Bytes the shape asked for would span.
        size: u64,
        /// The largest MPMC segment.
        max: u64,
    },
    /// Every entry of an MPMC channel's endpoint table is held by a live sender or
    /// receiver: no more can attach until one leaves (or dies).
    #[error("{what}: the endpoint table is full ({endpoints} live endpoints)")]
    EndpointTableFull {
        /// The segment.
        what: String,
        /// Entries in the table.
        endpoints: usize,
    },
    /// A shared mutex's slot count of zero or above `max`.
    #[error("invalid slot count {slots} for a shared mutex: must be from 1 to {max}")]
    InvalidMutexSlots {
        /// The slot count asked for.
        slots: u64,
        /// The most slots a mutex has.
        max: u64,
    },
    /// A shared mutex's holder died holding the lock (or one did earlier and
    /// nobody marked the value consistent since): what a
    /// [`LockError::OwnerDied`](crate::state::LockError::OwnerDied) becomes
    /// when converted, its guard dropped (the lock released, the value still
    /// marked).
    #[error("a holder of the lock died holding it: the value may be inconsistent")]
    OwnerDied,
    /// A shared mutex's lock is held by a live holder (a `try_lock`).
    #[error("the lock is held (state {state:#x})")]
    LockHeld {
        /// The lock word found.
        state: u32,
    },
    /// A shared mutex's handle asked to lock while its own guard lives.
    #[error("this handle holds the lock already")]
    AlreadyLocked,
    /// Every slot of a shared mutex's table is held by a live handle: no more
    /// can open it until one is dropped (or its process dies).
    #[error("{what}: all {slots} slots of the mutex are held by live handles")]
    SlotsFull {
        /// The segment.
        what: String,
        /// Slots in the table.
        slots: usize,
    },
    /// This platform lacks what the call needs (futex, memfd, OFD locks: Linux).
    #[error("unsupported on this platform: {what}")]
    Unsupported {
        /// What is missing.
        what: &'static str,
    },
    /// A transport address that does not parse, or names something the transport
    /// cannot use (a Unix socket path longer than `sun_path` holds, a TCP port out
    /// of range, an unknown scheme).
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nobody receives at the address yet: a socket path or port with no listener
    /// (`ECONNREFUSED`), a FIFO with no reader (`ENXIO`).
    #[error("connection refused: nobody receives at {what}")]
    ConnectionRefused {
        /// The address.
        what: String,
    },
    /// A path exists but is not the kind of file the transport uses (a regular
    /// file where a FIFO was expected).
    #[error("{what} is a {found}, not a {expected}")]
    WrongFileType {
        /// The path.
        what: String,
        /// The kind of file expected.
        expected: &'static str,
        /// The kind of file found.
        found: &'static str,
    },
    /// A system limit refuses what was asked: the limit's name, its value, and how
    /// to raise it.
    #[error("{what}: {requested} is over the system limit {limit} = {value}; {raise}")]
    LimitExceeded {
        /// What was being created.
        what: String,
        /// The limit: a `/proc/sys` file or an `RLIMIT_*` resource.
        limit: &'static str,
        /// Its value now.
        value: u64,
        /// What the call needed (in the limit's unit).
        requested: u64,
        /// How to raise it.
        raise: &'static str,
    },
    /// The peer sent a frame longer than this end's largest message: a peer with a
    /// larger limit, or not a shmring peer. The stream cannot be resynchronised;
    /// every later receive returns this error again.
    #[error("{what}: the peer sent a frame of {len} bytes, more than the largest message {max}")]
    FrameTooLong {
        /// The transport.
        what: String,
        /// Length in the frame's header.
        len: u64,
        /// Largest message this end accepts.
        max: usize,
    },
    /// A request/response message ([`rpc`](crate::rpc)) that breaks the wire
    /// format: shorter than its header, of an unknown kind or the wrong kind for
    /// its direction, or with a non-zero reserved field. A bug or not a shmring
    /// peer.
    #[error("malformed {what} of {len} bytes: {reason}")]
    MalformedFrame {
        /// What was expected: `"request"` or `"response"`.
        what: &'static str,
        /// Length of the message received.
        len: usize,
        /// What is wrong with it, with the offending value.
        reason: String,
    },
    /// A value that could not be encoded (the `serde` feature's
    /// `send_serialized` family).
    #[error("cannot encode the value: {failure}")]
    Encode {
        /// Why.
        failure: EncodeFailure,
    },
    /// A received message that is not a valid encoding of the type asked for
    /// (the `serde` feature's `recv_deserialized` family); it was consumed.
    #[error("undecodable message of {len} bytes: {failure}, at byte {position}")]
    Decode {
        /// Length of the message.
        len: usize,
        /// Bytes read when decoding stopped (see [`DecodeError::position`]).
        position: usize,
        /// What was wrong.
        failure: DecodeFailure,
    },
    /// The server's request handler failed ([`rpc`](crate::rpc)); its message.
    #[error("the server failed the request: {message}")]
    Remote {
        /// The handler's error, as the server wrote it (lossily decoded UTF-8).
        message: String,
    },
    /// A connection handshake failed (`crate::connection`): the peer is not a
    /// shmring peer of this protocol version, sent a field out of range or
    /// descriptors that fail the checks (unsealed, wrong size, too many), or the
    /// two sides' transport policies leave no transport. `found` and `expected`
    /// are the values compared (0 where the reason has none).
    #[error("handshake with {what} failed: {reason} (found {found}, expected {expected})")]
    Handshake {
        /// The peer: socket path or address.
        what: String,
        /// What was wrong.
        reason: &'static str,
        /// The value found.
        found: u64,
        /// The value expected.
        expected: u64,
    },
    /// A typed receive got a message that is not a valid value of its type
    /// ([`InvalidValue`]).
    #[error("a message of {len} bytes is not a {type_name} ({expected} bytes): {problem}")]
    InvalidValue {
        /// The type asked for.
        type_name: &'static str,
        /// Length of the message received.
        len: usize,
        /// Length of the type.
        expected: usize,
        /// What is wrong with it.
        problem: ValueProblem,
    },
    /// A published value has never been written.
    #[error("{what} holds no value yet")]
    NoValue {
        /// The segment name or path.
        what: String,
    },
    /// A published value's writer died in the middle of a write: no whole
    /// value can be read until a new writer writes one.
    #[error("the writer of {what} died in the middle of a write (seq {seq})")]
    WriterDied {
        /// The segment name or path.
        what: String,
        /// The odd `seq` word it left.
        seq: u64,
    },
    /// Every copy of a published value overlapped a write (a writer that
    /// rewrites it faster than it can be copied, or keeps it odd): try again.
    #[error("every one of {retries} reads of {what} overlapped a write")]
    ValueBusy {
        /// The segment name or path.
        what: String,
        /// Copies tried.
        retries: u32,
    },
    /// Bytes of another length than a published value's.
    #[error("{len} bytes for a value of {value_size} bytes")]
    ValueSize {
        /// Bytes given.
        len: usize,
        /// The value's size.
        value_size: usize,
    },
    /// Any other system call failure.
    #[error("{op} on {what}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The segment name or path.
        what: String,
        /// The system's error.
        source: io::Error,
    },
}

/// What a [`Error::Corrupted`] segment showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Corrupted {
    /// A header field that the layout does not allow.
    #[error("{0}")]
    Header(LayoutError),
    /// Shared ring state (a position or frame) that the protocol cannot produce.
    #[error("{0}")]
    Ring(Corruption),
    /// MPMC ring state (a slot's sequence number or length) that the protocol
    /// cannot produce.
    #[error("{0}")]
    Mpmc(shmring_core::MpmcCorruption),
    /// Broadcast topic state (a frame, a sequence number, a position) that the
    /// protocol cannot produce.
    #[error("{0}")]
    Broadcast(shmring_core::broadcast::BroadcastCorruption),
    /// A semaphore count word above the semaphore's maximum.
    #[error("count {found} is over the maximum {max}")]
    CountOutOfRange {
        /// The word read.
        found: u32,
        /// The maximum from the header.
        max: u32,
    },
    /// A shared mutex's lock word did not hold this handle's id while it held
    /// the lock (a peer wrote it): the lock may have been held twice.
    #[error("the lock word {state:#x} is not this handle's id {id:#x}")]
    LockNotHeld {
        /// The word found.
        state: u32,
        /// This handle's id.
        id: u32,
    },
    /// A shared word that changed between every load and compare-and-swap of
    /// `attempts` attempts in a row: a peer writing it continuously.
    #[error("the {word} changed under {attempts} attempts in a row")]
    WordUnstable {
        /// Which word.
        word: &'static str,
        /// Attempts made.
        attempts: u32,
    },
}

impl Error {
    /// An [`Error::Io`], or the named variant for the errno values that have one
    /// (`ENOENT`, `EEXIST`, `EACCES`/`EPERM`, `ENOSPC`).
    pub(crate) fn io(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        match source.raw_os_error() {
            Some(libc::ENOENT) => Self::NotFound { what },
            Some(libc::EEXIST) => Self::AlreadyExists { what },
            Some(libc::EACCES) | Some(libc::EPERM) => Self::PermissionDenied { what },
            _ => Self::Io { op, what, source },
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
