//! Typed values (the `zerocopy` feature): messages that are the bytes of one
//! plain-data value, checked by [`zerocopy`]'s traits instead of by hand.
//!
//! - [`TypedSender`]: `send_value(&T)` and its `try_`, `_timeout` and `_deadline`
//!   twins, for `T: IntoBytes + Immutable` (the value's bytes are the message).
//! - [`TypedReceiver`]: `recv_value::<T>()` and its twins for `T: FromBytes`
//!   (every bit pattern is a `T`): the message is received straight into the bytes
//!   of a `T` on the caller's stack, a copy, never a reference into shared memory;
//!   `recv_checked::<T>()` and its twins for `T: TryFromBytes` (a type with
//!   invariants: an enum, a `bool`): received as a copy, then the copy is
//!   validated, so a peer cannot change the value after the check.
//! - A typed grant ([`Sender::grant_value`], [`Publisher::grant_value`]): a `T`
//!   written in place in the ring, through a [`ValueGrant`].
//! - A typed read in place ([`Receiver::read_value`],
//!   [`Subscriber::read_value`] on a strict topic): a [`ValueRef`] that derefs
//!   to a `&T` in the ring, where the protocol keeps the writer off the bytes
//!   while they are borrowed.
//!
//! Both traits are implemented for every [`MessageSender`] and
//! [`MessageReceiver`] (every endpoint kind, every transport, boxed endpoints),
//! and, as the byte calls, every kind has their calls as inherent methods: no
//! import needed. Generic code over endpoints imports the traits.
//!
//! A typed message is a message like any other: a peer of any language that sends
//! the same bytes (a C `struct` of the same layout, the C++ wrapper's
//! `send_value<T>`) is understood.
//!
//! # Failures
//! A message whose length is not `size_of::<T>()`, or (for the checked calls)
//! whose bytes are not a valid `T`, is consumed and reported as
//! [`InvalidValue`] (in the receive error's
//! `InvalidValue` variant), naming the type and both lengths: a peer that sends
//! something else costs the receiver an error, never undefined behaviour or a
//! panic, and the next receive gets the next message.
//!
//! # Alignment
//! Frames are 8-aligned. The copying calls take a `T` of any alignment. The
//! in-place calls (grant, read) lend the ring's bytes as a `T`, which needs
//! `align_of::<T>() <= 8` ([`FRAME_ALIGN`]): a type that needs more is refused at
//! compile time (a `const` assertion), and is sent and received by copy instead.
//!
//! ```compile_fail
//! use shmring::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//!
//! #[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
//! #[zerocopy(crate = "shmring::zerocopy")]
//! #[repr(C, align(16))]
//! struct Wide([u64; 2]);
//!
//! # fn main() -> shmring::Result<()> {
//! let channel = shmring::ChannelBuilder::memfd().capacity(4096).create()?;
//! let mut tx = channel.sender()?;
//! tx.grant_value::<Wide>()?.commit(); // error: aligned to more than 8 bytes
//! # Ok(())
//! # }
//! ```
//!
//! The same type with `align(8)` is lent in place:
//!
//! ```
//! use shmring::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//!
//! #[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, PartialEq)]
//! #[zerocopy(crate = "shmring::zerocopy")]
//! #[repr(C, align(8))]
//! struct Wide([u64; 2]);
//!
//! # fn main() -> shmring::Result<()> {
//! let channel = shmring::ChannelBuilder::memfd().capacity(4096).create()?;
//! let (mut tx, mut rx) = (channel.sender()?, channel.receiver()?);
//! let mut grant = tx.grant_value::<Wide>()?;
//! grant.0 = [1, 2];
//! grant.commit();
//! let value = rx.read_value::<Wide>()?;
//! assert_eq!(*value, Wide([1, 2]));
//! value.release();
//! # Ok(())
//! # }
//! ```
//!
//! # Padding
//! [`IntoBytes`] refuses a struct with padding (padding bytes are uninitialised
//! memory, which must not be sent to another process). Make the padding explicit
//! fields, which the sender zeroes:
//!
//! ```
//! use shmring::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//!
//! // `#[repr(C)] struct Sample { id: u32, value: f64 }` has 4 bytes of padding
//! // after `id`, and `#[derive(IntoBytes)]` does not compile for it. Name them:
//! #[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, PartialEq)]
//! #[zerocopy(crate = "shmring::zerocopy")]
//! #[repr(C)]
//! struct Sample {
//!     id: u32,
//!     _pad: [u8; 4],
//!     value: f64,
//! }
//!
//! # fn main() -> shmring::Result<()> {
//! let channel = shmring::ChannelBuilder::memfd().capacity(4096).create()?;
//! let (mut tx, mut rx) = (channel.sender()?, channel.receiver()?);
//! tx.send_value(&Sample { id: 7, _pad: [0; 4], value: 2.5 })?;
//! let sample: Sample = rx.recv_value()?;
//! assert_eq!(sample.value, 2.5);
//! # Ok(())
//! # }
//! ```
//!
//! (`#[zerocopy(crate = "shmring::zerocopy")]` lets the derives find zerocopy
//! through this crate's re-export; a crate that depends on `zerocopy` itself,
//! with its `derive` feature, leaves it out.)

use std::any::type_name;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, TryFromBytes};

use crate::blocking::deadline_after;
use crate::broadcast::{InPlaceMessage, PublishGrant, Publisher, Subscriber};
use crate::channel::{Received, Receiver, SendGrant, Sender};
use crate::error::{
    InvalidValue, IoFailure, RecvError, RecvTimeoutError, SendError, SendTimeoutError,
    TryRecvError, TrySendError, ValueProblem,
};
use crate::message::{MessageReceiver, MessageSender};

/// Alignment of every frame's payload in the shared-memory rings (SPSC and
/// broadcast): the largest alignment a type read or written in place may need.
pub const FRAME_ALIGN: usize = 8;

/// Typed sends over any [`MessageSender`]: the message is the bytes of one value.
pub trait TypedSender: MessageSender {
    /// Sends the bytes of `value` if that can be done now without blocking.
    ///
    /// # Errors
    /// As [`try_send`](MessageSender::try_send) (`MessageTooLarge` when
    /// `size_of_val(value)` is over the largest message).
    #[inline]
    fn try_send_value<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TrySendError> {
        self.try_send(value.as_bytes())
    }

    /// Sends the bytes of `value`, waiting until `deadline` at most (`None`: no
    /// limit).
    ///
    /// # Errors
    /// As [`send_deadline`](MessageSender::send_deadline).
    #[inline]
    fn send_value_deadline<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        self.send_deadline(value.as_bytes(), deadline)
    }

    /// Sends the bytes of `value`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`send`](MessageSender::send).
    #[inline]
    fn send_value<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), SendError> {
        self.send(value.as_bytes())
    }

    /// Sends the bytes of `value`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`send_timeout`](MessageSender::send_timeout).
    #[inline]
    fn send_value_timeout<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.send_timeout(value.as_bytes(), timeout)
    }
}

impl<S: MessageSender + ?Sized> TypedSender for S {}

/// Typed receives over any [`MessageReceiver`]: each message is the bytes of one
/// value, received by copy.
pub trait TypedReceiver: MessageReceiver {
    /// Receives the next message as a `T`, if one is there now.
    ///
    /// # Errors
    /// As [`try_recv`](MessageReceiver::try_recv) without `BufferTooSmall`;
    /// [`TryRecvError::InvalidValue`] (consumed) when its length is not
    /// `size_of::<T>()`.
    #[inline]
    fn try_recv_value<T: FromBytes>(&mut self) -> Result<T, TryRecvError> {
        recv_value_with(self, |rx, buf| rx.try_recv(buf))
    }

    /// Receives the next message into `value`, if one is there now: as
    /// [`try_recv_value`](Self::try_recv_value) without zeroing a fresh `T` and
    /// moving it out (the hot path's form, as `try_recv` into a reused buffer).
    /// On an error `value` may hold some of the message's bytes.
    ///
    /// # Errors
    /// As [`try_recv_value`](Self::try_recv_value).
    #[inline]
    fn try_recv_value_into<T: FromBytes + IntoBytes>(
        &mut self,
        value: &mut T,
    ) -> Result<(), TryRecvError> {
        recv_exact(self, value.as_mut_bytes(), type_name::<T>(), |rx, buf| {
            rx.try_recv(buf)
        })
    }

    /// As [`try_recv_value_into`](Self::try_recv_value_into), waiting until
    /// `deadline` at most.
    ///
    /// # Errors
    /// As [`try_recv_value`](Self::try_recv_value), `TimedOut` instead of `Empty`.
    #[inline]
    fn recv_value_into_deadline<T: FromBytes + IntoBytes>(
        &mut self,
        value: &mut T,
        deadline: Option<Instant>,
    ) -> Result<(), RecvTimeoutError> {
        recv_exact(self, value.as_mut_bytes(), type_name::<T>(), |rx, buf| {
            rx.recv_deadline(buf, deadline)
        })
    }

    /// As [`try_recv_value_into`](Self::try_recv_value_into), waiting as long
    /// as it takes.
    ///
    /// # Errors
    /// As [`recv_value_into_deadline`](Self::recv_value_into_deadline), without
    /// `TimedOut`.
    #[inline]
    fn recv_value_into<T: FromBytes + IntoBytes>(
        &mut self,
        value: &mut T,
    ) -> Result<(), RecvError> {
        self.recv_value_into_deadline(value, None)
            .map_err(RecvError::untimed)
    }

    /// As [`try_recv_value_into`](Self::try_recv_value_into), waiting `timeout`
    /// at most.
    ///
    /// # Errors
    /// As [`recv_value_into_deadline`](Self::recv_value_into_deadline).
    #[inline]
    fn recv_value_into_timeout<T: FromBytes + IntoBytes>(
        &mut self,
        value: &mut T,
        timeout: Duration,
    ) -> Result<(), RecvTimeoutError> {
        self.recv_value_into_deadline(value, deadline_after(timeout))
    }

    /// Receives the next message as a `T`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_recv_value`](Self::try_recv_value), `TimedOut` instead of `Empty`.
    #[inline]
    fn recv_value_deadline<T: FromBytes>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, RecvTimeoutError> {
        recv_value_with(self, |rx, buf| rx.recv_deadline(buf, deadline))
    }

    /// Receives the next message as a `T`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`recv_value_deadline`](Self::recv_value_deadline), without `TimedOut`.
    #[inline]
    fn recv_value<T: FromBytes>(&mut self) -> Result<T, RecvError> {
        self.recv_value_deadline(None).map_err(RecvError::untimed)
    }

    /// Receives the next message as a `T`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`recv_value_deadline`](Self::recv_value_deadline).
    #[inline]
    fn recv_value_timeout<T: FromBytes>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError> {
        self.recv_value_deadline(deadline_after(timeout))
    }

    /// Receives the next message as a `T` that not every bit pattern is, if one
    /// is there now: copied, then the copy validated.
    ///
    /// # Errors
    /// As [`try_recv_value`](Self::try_recv_value); `InvalidValue` (consumed)
    /// with [`ValueProblem::InvalidBitPattern`] when the bytes are not a valid `T`.
    #[inline]
    fn try_recv_checked<T: TryFromBytes>(&mut self) -> Result<T, TryRecvError> {
        recv_checked_with(self, |rx, buf| rx.try_recv(buf))
    }

    /// As [`try_recv_checked`](Self::try_recv_checked), waiting until `deadline`
    /// at most.
    ///
    /// # Errors
    /// As [`try_recv_checked`](Self::try_recv_checked), `TimedOut` instead of
    /// `Empty`.
    #[inline]
    fn recv_checked_deadline<T: TryFromBytes>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, RecvTimeoutError> {
        recv_checked_with(self, |rx, buf| rx.recv_deadline(buf, deadline))
    }

    /// As [`try_recv_checked`](Self::try_recv_checked), waiting as long as it
    /// takes.
    ///
    /// # Errors
    /// As [`recv_checked_deadline`](Self::recv_checked_deadline), without
    /// `TimedOut`.
    #[inline]
    fn recv_checked<T: TryFromBytes>(&mut self) -> Result<T, RecvError> {
        self.recv_checked_deadline(None).map_err(RecvError::untimed)
    }

    /// As [`try_recv_checked`](Self::try_recv_checked), waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`recv_checked_deadline`](Self::recv_checked_deadline).
    #[inline]
    fn recv_checked_timeout<T: TryFromBytes>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError> {
        self.recv_checked_deadline(deadline_after(timeout))
    }
}

impl<R: MessageReceiver + ?Sized> TypedReceiver for R {}

/// A receive error that a typed receive builds on: it may say the buffer was too
/// small, and it can carry an [`InvalidValue`].
trait ValueRecvError: Sized {
    /// The length of the message that did not fit, if that is the error.
    fn too_small(&self) -> Option<usize>;
    fn invalid(value: InvalidValue) -> Self;
    fn lagged(missed: u64) -> Self;
}

impl ValueRecvError for TryRecvError {
    fn too_small(&self) -> Option<usize> {
        match self {
            Self::BufferTooSmall { len, .. } => Some(*len),
            _ => None,
        }
    }
    fn invalid(value: InvalidValue) -> Self {
        Self::InvalidValue(Box::new(value))
    }
    fn lagged(missed: u64) -> Self {
        Self::Lagged { missed }
    }
}

impl ValueRecvError for RecvTimeoutError {
    fn too_small(&self) -> Option<usize> {
        match self {
            Self::BufferTooSmall { len, .. } => Some(*len),
            _ => None,
        }
    }
    fn invalid(value: InvalidValue) -> Self {
        Self::InvalidValue(Box::new(value))
    }
    fn lagged(missed: u64) -> Self {
        Self::Lagged { missed }
    }
}

/// The bytes of one `T`, zeroed: a receive buffer that becomes the `T` without a
/// second copy.
struct ValueBytes<T>(MaybeUninit<T>);

impl<T> ValueBytes<T> {
    #[inline]
    fn zeroed() -> Self {
        Self(MaybeUninit::zeroed())
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the `size_of::<T>()` bytes at the pointer are ours (borrowed
        // through `self`) and initialised: zeroed at creation (padding too: the
        // whole `MaybeUninit` was), then written only as `u8` through
        // `bytes_mut`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), size_of::<T>()) }
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), size_of::<T>()) }
    }

    #[inline]
    fn into_value(self) -> T
    where
        T: FromBytes,
    {
        // SAFETY: every byte is initialised (see `bytes`), and `T: FromBytes`
        // makes any initialised bytes a valid `T`.
        unsafe { self.0.assume_init() }
    }
}

/// An [`InvalidValue`] for a message of `len` bytes read as a `T`.
fn invalid<T>(len: usize, problem: ValueProblem) -> InvalidValue {
    InvalidValue {
        type_name: type_name::<T>(),
        len,
        expected: size_of::<T>(),
        problem,
    }
}

/// Receives one message into `dst` (the bytes of a `T`) by `recv`, and checks
/// that it filled `dst` exactly. A longer message stays in every transport
/// (`BufferTooSmall`): it is taken out here by one non-blocking receive into a
/// buffer of its length (at most the largest message), so that a peer's wrong
/// message costs one error, not a receiver stuck on it; should that receive find
/// a message of the right length instead (another MPMC receiver took the long
/// one), it is the value.
#[inline]
fn recv_exact<R, E>(
    rx: &mut R,
    dst: &mut [u8],
    type_name: &'static str,
    recv: impl FnOnce(&mut R, &mut [u8]) -> Result<usize, E>,
) -> Result<(), E>
where
    R: MessageReceiver + ?Sized,
    E: ValueRecvError,
{
    let mut len = match recv(rx, dst) {
        Ok(n) if n == dst.len() => return Ok(()),
        Ok(n) => n,
        Err(e) => match e.too_small() {
            Some(len) => len,
            None => return Err(e),
        },
    };
    if len > dst.len() {
        let mut whole = vec![0u8; len.min(rx.max_message_len())];
        match rx.try_recv(&mut whole) {
            Ok(n) if n == dst.len() => {
                dst.copy_from_slice(&whole[..n]);
                return Ok(());
            }
            Ok(n) => len = n,
            // A lossy subscriber lapped in between: the long message is gone, and
            // the count of missed messages is the news.
            Err(TryRecvError::Lagged { missed }) => return Err(E::lagged(missed)),
            // Taken by another receiver, or gone with the peer: the long message
            // is still what this call saw.
            Err(_) => {}
        }
    }
    Err(E::invalid(InvalidValue {
        type_name,
        len,
        expected: dst.len(),
        problem: ValueProblem::WrongLength,
    }))
}

#[inline]
fn recv_value_with<R, T, E>(
    rx: &mut R,
    recv: impl FnOnce(&mut R, &mut [u8]) -> Result<usize, E>,
) -> Result<T, E>
where
    R: MessageReceiver + ?Sized,
    T: FromBytes,
    E: ValueRecvError,
{
    let mut value = ValueBytes::<T>::zeroed();
    recv_exact(rx, value.bytes_mut(), type_name::<T>(), recv)?;
    Ok(value.into_value())
}

#[inline]
fn recv_checked_with<R, T, E>(
    rx: &mut R,
    recv: impl FnOnce(&mut R, &mut [u8]) -> Result<usize, E>,
) -> Result<T, E>
where
    R: MessageReceiver + ?Sized,
    T: TryFromBytes,
    E: ValueRecvError,
{
    let mut value = ValueBytes::<T>::zeroed();
    recv_exact(rx, value.bytes_mut(), type_name::<T>(), recv)?;
    // The copy is ours: validated here, it cannot change after the check.
    T::try_read_from_bytes(value.bytes()).map_err(|_| {
        E::invalid(invalid::<T>(
            size_of::<T>(),
            ValueProblem::InvalidBitPattern,
        ))
    })
}

mod sealed {
    /// The byte grants a [`ValueGrant`](super::ValueGrant) wraps.
    pub trait Grant: core::ops::DerefMut<Target = [u8]> {
        /// What committing returns.
        type Committed;
        fn commit(self, len: usize) -> Self::Committed;
    }

    /// The in-place messages a [`ValueRef`](super::ValueRef) wraps.
    pub trait Message: core::ops::Deref<Target = [u8]> {
        fn release(self);
    }
}

impl sealed::Grant for SendGrant<'_> {
    type Committed = ();
    fn commit(self, len: usize) {
        SendGrant::commit(self, len);
    }
}

impl sealed::Grant for PublishGrant<'_> {
    type Committed = u32;
    fn commit(self, len: usize) -> u32 {
        PublishGrant::commit(self, len)
    }
}

impl sealed::Message for Received<'_> {
    fn release(self) {
        Received::release(self);
    }
}

impl sealed::Message for InPlaceMessage<'_> {
    fn release(self) {
        InPlaceMessage::release(self);
    }
}

/// Refuses, at compile time, a `T` that a frame cannot hold in place.
const fn assert_frame_aligned<T>() {
    assert!(
        align_of::<T>() <= FRAME_ALIGN,
        "a type aligned to more than 8 bytes cannot be written or read in place in a frame: send and receive it by copy (send_value, recv_value)"
    );
}

/// A `T` lent in place in the ring: a byte grant of `size_of::<T>()` bytes seen
/// as a `T`, zeroed. Derefs to the `T`; [`commit`](Self::commit) publishes it,
/// dropping it publishes nothing (as the byte grants).
///
/// The bytes are shared memory: a peer that breaks the protocol can write them
/// while this grant holds them, which `T: FromBytes` makes harmless to this
/// process (whatever is there is a valid `T`); the message it sends then carries
/// those bytes.
pub struct ValueGrant<G: sealed::Grant, T> {
    grant: G,
    /// The grant's first bytes as a `T`: checked for size and alignment when
    /// made; the bytes stay where they are (in the mapping) while `grant` lives.
    value: NonNull<T>,
    _value: PhantomData<T>,
}

impl<G: sealed::Grant, T: FromBytes + IntoBytes + KnownLayout> ValueGrant<G, T> {
    /// Sees `grant` (of `size_of::<T>()` bytes) as a zeroed `T`, or gives it
    /// back (dropped: nothing published) with the failure.
    fn new(mut grant: G) -> Result<Self, InvalidValue> {
        const { assert_frame_aligned::<T>() };
        let len = grant.len();
        let value = match T::mut_from_prefix(&mut grant) {
            Ok((value, _)) => {
                value.as_mut_bytes().fill(0);
                NonNull::from(value)
            }
            Err(e) => {
                let problem = match e {
                    zerocopy::ConvertError::Alignment(_) => ValueProblem::Misaligned {
                        align: align_of::<T>(),
                    },
                    _ => ValueProblem::WrongLength,
                };
                return Err(invalid::<T>(len, problem));
            }
        };
        Ok(Self {
            grant,
            value,
            _value: PhantomData,
        })
    }

    /// Publishes the value as one message of `size_of::<T>()` bytes and wakes the
    /// receivers; returns what the byte grant's `commit` returns (a publisher's:
    /// the number of subscribers joined).
    pub fn commit(self) -> G::Committed {
        self.grant.commit(size_of::<T>())
    }
}

/// A failed cast of a grant the ring lent for `size_of::<T>()` bytes, which
/// frames make impossible (8-aligned, the length asked for): reported as an I/O
/// failure that keeps its message, as the crate does for errors an operation
/// cannot otherwise return.
fn grant_failure(e: InvalidValue) -> Box<IoFailure> {
    Box::new(IoFailure {
        op: "grant a value",
        what: e.type_name.to_owned(),
        source: std::io::Error::other(e),
    })
}

impl<G: sealed::Grant, T> Deref for ValueGrant<G, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `value` points to `size_of::<T>()` bytes of the grant, checked
        // for size and alignment when made, a valid `T` (zeroed, then written
        // only as a `T`; `T: FromBytes` for a peer's writes); the grant keeps
        // them lent to us, and the borrow of `self` stands for it.
        unsafe { self.value.as_ref() }
    }
}

impl<G: sealed::Grant, T> DerefMut for ValueGrant<G, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the mutable borrow of `self` makes it the only
        // borrow of the grant's bytes in this process.
        unsafe { self.value.as_mut() }
    }
}

impl<G: sealed::Grant + std::fmt::Debug, T> std::fmt::Debug for ValueGrant<G, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueGrant")
            .field("type", &type_name::<T>())
            .field("grant", &self.grant)
            .finish()
    }
}

/// A message borrowed in place as a `T` (an SPSC receiver's or a strict
/// subscriber's read). Derefs to the `T`; [`release`](Self::release) consumes
/// it, dropping it leaves it to be read again (as the byte reads).
///
/// # The bytes are shared memory
/// The protocol keeps the writer off a message until it is released, so an
/// honest peer never changes it under the reader. A peer that breaks the protocol
/// can: the value's bytes may then change while borrowed. That is why `T` must
/// be [`FromBytes`]: whatever the bytes become, they are a valid `T`, so this
/// process meets no undefined behaviour, but two reads of one field may differ,
/// and a check made on the value may no longer hold for its use. Copy out
/// (`*value`, or [`recv_value`](TypedReceiver::recv_value)) before validating
/// anything that must stay true.
pub struct ValueRef<M: sealed::Message, T> {
    message: M,
    /// The message's bytes as a `T`: checked for size and alignment when made;
    /// they stay in the mapping while `message` lives.
    value: NonNull<T>,
    _value: PhantomData<T>,
}

impl<M: sealed::Message, T: FromBytes + KnownLayout + Immutable> ValueRef<M, T> {
    /// Sees `message` as a `T`; one that is not (length, alignment) is released
    /// and reported.
    fn new(message: M) -> Result<Self, InvalidValue> {
        const { assert_frame_aligned::<T>() };
        let value = match T::ref_from_bytes(&message) {
            Ok(value) => NonNull::from(value),
            Err(e) => {
                let problem = match e {
                    zerocopy::ConvertError::Alignment(_) => ValueProblem::Misaligned {
                        align: align_of::<T>(),
                    },
                    _ => ValueProblem::WrongLength,
                };
                let e = invalid::<T>(message.len(), problem);
                message.release();
                return Err(e);
            }
        };
        Ok(Self {
            message,
            value,
            _value: PhantomData,
        })
    }

    /// Consumes the message and wakes a writer waiting for room.
    pub fn release(self) {
        self.message.release();
    }

    /// The message (its bytes; a subscriber's message also has its sequence
    /// number).
    pub fn message(&self) -> &M {
        &self.message
    }
}

impl<M: sealed::Message, T> Deref for ValueRef<M, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `value` points to the message's `size_of::<T>()` bytes, checked
        // for size and alignment when made, and a valid `T` whatever they hold
        // (`T: FromBytes`; see the type's docs for a peer writing them); the
        // message keeps them lent to us while `self` is borrowed.
        unsafe { self.value.as_ref() }
    }
}

impl<M: sealed::Message + std::fmt::Debug, T> std::fmt::Debug for ValueRef<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueRef")
            .field("type", &type_name::<T>())
            .field("message", &self.message)
            .finish()
    }
}

// SAFETY: a `ValueGrant` is its grant plus a pointer into the grant's bytes,
// used only through the grant's borrow: it may cross threads when the grant and
// a `T` may.
unsafe impl<G: sealed::Grant + Send, T: Send> Send for ValueGrant<G, T> {}
// SAFETY: as for `Send`; shared, it gives out `&T` only.
unsafe impl<G: sealed::Grant + Sync, T: Sync> Sync for ValueGrant<G, T> {}
// SAFETY: as for `ValueGrant`; it gives out `&T` only.
unsafe impl<M: sealed::Message + Send, T: Sync> Send for ValueRef<M, T> {}
// SAFETY: as for `Send`.
unsafe impl<M: sealed::Message + Sync, T: Sync> Sync for ValueRef<M, T> {}

/// The typed grant and in-place read of a kind that has byte ones: the same
/// calls, the message seen as a `T`.
macro_rules! typed_grants {
    ($ty:ty, $grant:ident, $send_error:ident) => {
        impl $ty {
            /// Lends a zeroed `T` in place in the ring, if there is room now:
            /// [`ValueGrant::commit`] publishes it. `T` must be aligned to 8
            /// bytes at most (checked at compile time).
            ///
            /// # Errors
            /// As [`try_grant`](Self::try_grant) of `size_of::<T>()` bytes.
            pub fn try_grant_value<T: FromBytes + IntoBytes + KnownLayout>(
                &mut self,
            ) -> Result<ValueGrant<$grant<'_>, T>, TrySendError> {
                ValueGrant::new(self.try_grant(size_of::<T>())?)
                    .map_err(|e| TrySendError::Io(grant_failure(e)))
            }

            /// As [`try_grant_value`](Self::try_grant_value), waiting for room.
            ///
            /// # Errors
            /// As [`grant`](Self::grant).
            pub fn grant_value<T: FromBytes + IntoBytes + KnownLayout>(
                &mut self,
            ) -> Result<ValueGrant<$grant<'_>, T>, SendError> {
                ValueGrant::new(self.grant(size_of::<T>())?)
                    .map_err(|e| SendError::Io(grant_failure(e)))
            }

            /// As [`grant_value`](Self::grant_value), giving up after `timeout`.
            ///
            /// # Errors
            /// As [`grant_timeout`](Self::grant_timeout).
            pub fn grant_value_timeout<T: FromBytes + IntoBytes + KnownLayout>(
                &mut self,
                timeout: Duration,
            ) -> Result<ValueGrant<$grant<'_>, T>, $send_error> {
                ValueGrant::new(self.grant_timeout(size_of::<T>(), timeout)?)
                    .map_err(|e| $send_error::Io(grant_failure(e)))
            }
        }
    };
}

typed_grants!(Sender, SendGrant, SendTimeoutError);
typed_grants!(Publisher, PublishGrant, SendTimeoutError);

/// The typed in-place read of a kind that has a byte one.
macro_rules! typed_reads {
    ($ty:ty, $message:ident) => {
        impl $ty {
            /// Borrows the next message in place as a `T`, if there is one now;
            /// [`ValueRef::release`] consumes it. `T` must be aligned to 8 bytes
            /// at most (checked at compile time); see [`ValueRef`] for what a
            /// peer writing the bytes means.
            ///
            /// # Errors
            /// As [`try_read`](Self::try_read); `InvalidValue` (the message
            /// released) when its length is not `size_of::<T>()`.
            pub fn try_read_value<T: FromBytes + KnownLayout + Immutable>(
                &mut self,
            ) -> Result<ValueRef<$message<'_>, T>, TryRecvError> {
                ValueRef::new(self.try_read()?).map_err(TryRecvError::invalid)
            }

            /// As [`try_read_value`](Self::try_read_value), waiting for a message.
            ///
            /// # Errors
            /// As [`read`](Self::read); `InvalidValue` as `try_read_value`.
            pub fn read_value<T: FromBytes + KnownLayout + Immutable>(
                &mut self,
            ) -> Result<ValueRef<$message<'_>, T>, RecvError> {
                ValueRef::new(self.read()?).map_err(|e| RecvError::InvalidValue(Box::new(e)))
            }

            /// As [`read_value`](Self::read_value), giving up after `timeout`.
            ///
            /// # Errors
            /// As [`read_timeout`](Self::read_timeout); `InvalidValue` as
            /// `try_read_value`.
            pub fn read_value_timeout<T: FromBytes + KnownLayout + Immutable>(
                &mut self,
                timeout: Duration,
            ) -> Result<ValueRef<$message<'_>, T>, RecvTimeoutError> {
                ValueRef::new(self.read_timeout(timeout)?).map_err(RecvTimeoutError::invalid)
            }
        }
    };
}

typed_reads!(Receiver, Received);
typed_reads!(Subscriber, InPlaceMessage);

/// Gives `$ty` (a [`MessageSender`]) the typed sends of [`TypedSender`] as
/// inherent methods, callable without importing the trait.
macro_rules! typed_sender {
    ($ty:ty) => {
        impl $ty {
            /// Sends the bytes of `value` if that can be done now
            /// ([`TypedSender::try_send_value`](crate::TypedSender::try_send_value)).
            ///
            /// # Errors
            /// As [`try_send`](Self::try_send).
            #[inline]
            pub fn try_send_value<T>(
                &mut self,
                value: &T,
            ) -> ::std::result::Result<(), $crate::error::TrySendError>
            where
                T: $crate::zerocopy::IntoBytes + $crate::zerocopy::Immutable + ?Sized,
            {
                $crate::typed::TypedSender::try_send_value(self, value)
            }

            /// Sends the bytes of `value`, waiting until `deadline` at most
            /// ([`TypedSender::send_value_deadline`](crate::TypedSender::send_value_deadline)).
            ///
            /// # Errors
            /// As [`send_deadline`](Self::send_deadline).
            #[inline]
            pub fn send_value_deadline<T>(
                &mut self,
                value: &T,
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<(), $crate::error::SendTimeoutError>
            where
                T: $crate::zerocopy::IntoBytes + $crate::zerocopy::Immutable + ?Sized,
            {
                $crate::typed::TypedSender::send_value_deadline(self, value, deadline)
            }

            /// Sends the bytes of `value`, waiting as long as it takes
            /// ([`TypedSender::send_value`](crate::TypedSender::send_value)).
            ///
            /// # Errors
            /// As [`send_deadline`](Self::send_deadline), without `TimedOut`.
            #[inline]
            pub fn send_value<T>(
                &mut self,
                value: &T,
            ) -> ::std::result::Result<(), $crate::error::SendError>
            where
                T: $crate::zerocopy::IntoBytes + $crate::zerocopy::Immutable + ?Sized,
            {
                $crate::typed::TypedSender::send_value(self, value)
            }

            /// Sends the bytes of `value`, waiting `timeout` at most
            /// ([`TypedSender::send_value_timeout`](crate::TypedSender::send_value_timeout)).
            ///
            /// # Errors
            /// As [`send_deadline`](Self::send_deadline).
            #[inline]
            pub fn send_value_timeout<T>(
                &mut self,
                value: &T,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<(), $crate::error::SendTimeoutError>
            where
                T: $crate::zerocopy::IntoBytes + $crate::zerocopy::Immutable + ?Sized,
            {
                $crate::typed::TypedSender::send_value_timeout(self, value, timeout)
            }
        }
    };
}

/// Gives `$ty` (a [`MessageReceiver`]) the typed receives of [`TypedReceiver`]
/// as inherent methods, callable without importing the trait.
macro_rules! typed_receiver {
    ($ty:ty) => {
        impl $ty {
            /// Receives the next message as a `T`, if one is there now
            /// ([`TypedReceiver::try_recv_value`](crate::TypedReceiver::try_recv_value)).
            ///
            /// # Errors
            /// As [`try_recv`](Self::try_recv) without `BufferTooSmall`;
            /// `InvalidValue` (consumed) when its length is not `size_of::<T>()`.
            #[inline]
            pub fn try_recv_value<T: $crate::zerocopy::FromBytes>(
                &mut self,
            ) -> ::std::result::Result<T, $crate::error::TryRecvError> {
                $crate::typed::TypedReceiver::try_recv_value(self)
            }

            /// Receives the next message into `value`, if one is there now
            /// ([`TypedReceiver::try_recv_value_into`](crate::TypedReceiver::try_recv_value_into)).
            ///
            /// # Errors
            /// As [`try_recv_value`](Self::try_recv_value).
            #[inline]
            pub fn try_recv_value_into<T>(
                &mut self,
                value: &mut T,
            ) -> ::std::result::Result<(), $crate::error::TryRecvError>
            where
                T: $crate::zerocopy::FromBytes + $crate::zerocopy::IntoBytes,
            {
                $crate::typed::TypedReceiver::try_recv_value_into(self, value)
            }

            /// Receives the next message into `value`, waiting until `deadline`
            /// at most
            /// ([`TypedReceiver::recv_value_into_deadline`](crate::TypedReceiver::recv_value_into_deadline)).
            ///
            /// # Errors
            /// As [`try_recv_value`](Self::try_recv_value), `TimedOut` instead of
            /// `Empty`.
            #[inline]
            pub fn recv_value_into_deadline<T>(
                &mut self,
                value: &mut T,
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<(), $crate::error::RecvTimeoutError>
            where
                T: $crate::zerocopy::FromBytes + $crate::zerocopy::IntoBytes,
            {
                $crate::typed::TypedReceiver::recv_value_into_deadline(self, value, deadline)
            }

            /// Receives the next message into `value`, waiting as long as it
            /// takes
            /// ([`TypedReceiver::recv_value_into`](crate::TypedReceiver::recv_value_into)).
            ///
            /// # Errors
            /// As [`recv_value_into_deadline`](Self::recv_value_into_deadline),
            /// without `TimedOut`.
            #[inline]
            pub fn recv_value_into<T>(
                &mut self,
                value: &mut T,
            ) -> ::std::result::Result<(), $crate::error::RecvError>
            where
                T: $crate::zerocopy::FromBytes + $crate::zerocopy::IntoBytes,
            {
                $crate::typed::TypedReceiver::recv_value_into(self, value)
            }

            /// Receives the next message into `value`, waiting `timeout` at
            /// most
            /// ([`TypedReceiver::recv_value_into_timeout`](crate::TypedReceiver::recv_value_into_timeout)).
            ///
            /// # Errors
            /// As [`recv_value_into_deadline`](Self::recv_value_into_deadline).
            #[inline]
            pub fn recv_value_into_timeout<T>(
                &mut self,
                value: &mut T,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<(), $crate::error::RecvTimeoutError>
            where
                T: $crate::zerocopy::FromBytes + $crate::zerocopy::IntoBytes,
            {
                $crate::typed::TypedReceiver::recv_value_into_timeout(self, value, timeout)
            }

            /// Receives the next message as a `T`, waiting until `deadline` at
            /// most
            /// ([`TypedReceiver::recv_value_deadline`](crate::TypedReceiver::recv_value_deadline)).
            ///
            /// # Errors
            /// As [`try_recv_value`](Self::try_recv_value), `TimedOut` instead of
            /// `Empty`.
            #[inline]
            pub fn recv_value_deadline<T: $crate::zerocopy::FromBytes>(
                &mut self,
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<T, $crate::error::RecvTimeoutError> {
                $crate::typed::TypedReceiver::recv_value_deadline(self, deadline)
            }

            /// Receives the next message as a `T`, waiting as long as it takes
            /// ([`TypedReceiver::recv_value`](crate::TypedReceiver::recv_value)).
            ///
            /// # Errors
            /// As [`recv_value_deadline`](Self::recv_value_deadline), without
            /// `TimedOut`.
            #[inline]
            pub fn recv_value<T: $crate::zerocopy::FromBytes>(
                &mut self,
            ) -> ::std::result::Result<T, $crate::error::RecvError> {
                $crate::typed::TypedReceiver::recv_value(self)
            }

            /// Receives the next message as a `T`, waiting `timeout` at most
            /// ([`TypedReceiver::recv_value_timeout`](crate::TypedReceiver::recv_value_timeout)).
            ///
            /// # Errors
            /// As [`recv_value_deadline`](Self::recv_value_deadline).
            #[inline]
            pub fn recv_value_timeout<T: $crate::zerocopy::FromBytes>(
                &mut self,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<T, $crate::error::RecvTimeoutError> {
                $crate::typed::TypedReceiver::recv_value_timeout(self, timeout)
            }

            /// Receives the next message as a `T` with invariants, if one is there
            /// now: copied, then the copy validated
            /// ([`TypedReceiver::try_recv_checked`](crate::TypedReceiver::try_recv_checked)).
            ///
            /// # Errors
            /// As [`try_recv_value`](Self::try_recv_value); `InvalidValue`
            /// (consumed) when the bytes are not a valid `T`.
            #[inline]
            pub fn try_recv_checked<T: $crate::zerocopy::TryFromBytes>(
                &mut self,
            ) -> ::std::result::Result<T, $crate::error::TryRecvError> {
                $crate::typed::TypedReceiver::try_recv_checked(self)
            }

            /// As [`try_recv_checked`](Self::try_recv_checked), waiting until
            /// `deadline` at most.
            ///
            /// # Errors
            /// As [`try_recv_checked`](Self::try_recv_checked), `TimedOut` instead
            /// of `Empty`.
            #[inline]
            pub fn recv_checked_deadline<T: $crate::zerocopy::TryFromBytes>(
                &mut self,
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<T, $crate::error::RecvTimeoutError> {
                $crate::typed::TypedReceiver::recv_checked_deadline(self, deadline)
            }

            /// As [`try_recv_checked`](Self::try_recv_checked), waiting as long as
            /// it takes.
            ///
            /// # Errors
            /// As [`recv_checked_deadline`](Self::recv_checked_deadline), without
            /// `TimedOut`.
            #[inline]
            pub fn recv_checked<T: $crate::zerocopy::TryFromBytes>(
                &mut self,
            ) -> ::std::result::Result<T, $crate::error::RecvError> {
                $crate::typed::TypedReceiver::recv_checked(self)
            }

            /// As [`try_recv_checked`](Self::try_recv_checked), waiting `timeout`
            /// at most.
            ///
            /// # Errors
            /// As [`recv_checked_deadline`](Self::recv_checked_deadline).
            #[inline]
            pub fn recv_checked_timeout<T: $crate::zerocopy::TryFromBytes>(
                &mut self,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<T, $crate::error::RecvTimeoutError> {
                $crate::typed::TypedReceiver::recv_checked_timeout(self, timeout)
            }
        }
    };
}

pub(crate) use {typed_receiver, typed_sender};

// The publisher implements `MessageSender` by hand (its sends return the number
// of subscribers joined), outside `message_sender!`.
typed_sender!(Publisher);
