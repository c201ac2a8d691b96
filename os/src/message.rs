//! The message API every endpoint kind and transport offers: [`MessageSender`]
//! and [`MessageReceiver`] (the table of implementations is in
//! [`transport`](crate::transport)). Below the kinds: each kind implements the
//! traits in its own module, and `transport`, `connection` and `rpc` build on them.
//!
//! Every implementation returns the same per-operation errors
//! ([`TrySendError`], [`SendTimeoutError`], [`TryRecvError`],
//! [`RecvTimeoutError`] and their untimed twins), each converting into the
//! crate's [`Error`](crate::Error).
//!
//! A kind writes its non-blocking attempt and one deadline form (`send_deadline`,
//! `recv_deadline`); the traits' provided methods derive the others (`send`,
//! `send_timeout`, `recv`, `recv_timeout`, the `recv_vec` family) once, and
//! [`message_sender!`] and [`message_receiver!`] implement the traits for a kind
//! and give it the derived calls as inherent methods, so that they need no import.
//! The iterators ([`Messages`], [`PendingMessages`]) and, with the `serde`
//! feature, the codec calls (`send_serialized`, `recv_deserialized` and kin) are
//! provided methods too.
//! With the `zerocopy` feature, the typed calls of `typed` are inherent too.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::blocking::deadline_after;
use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[cfg(feature = "serde")]
use crate::iter::DeserializedMessages;
use crate::iter::{Messages, PendingMessages};

/// The largest buffer a thread keeps between calls ([`with_scratch`]): an
/// endpoint whose largest message is longer gets a fresh buffer per call.
pub(crate) const SCRATCH_KEEP: usize = 1 << 20;

thread_local! {
    /// The thread's receive buffer ([`receive_with`]): as long as the largest
    /// message it was used for, so that it is zeroed once, not per call.
    static RECEIVE_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The thread's encoding buffer (the `serde` feature's sends), apart from
    /// the receive buffer: an encoding shortens its buffer to the value's length.
    static ENCODE_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on one of this thread's scratch buffers (`slot`: empty the first
/// time, as `f` left it after), keeping it for the next call if its capacity is
/// at most [`SCRATCH_KEEP`]. A nested call (a `Serialize` impl that sends) gets a
/// new, empty buffer, as does a call during the thread's exit.
pub(crate) fn with_scratch<T>(
    slot: &'static std::thread::LocalKey<Cell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> T,
) -> T {
    let mut buf = slot.try_with(Cell::take).unwrap_or_default();
    let out = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP {
        // After the thread's locals are gone the buffer is dropped instead.
        let _ = slot.try_with(|cell| cell.set(buf));
    }
    out
}

/// Runs `f` on this thread's encoding buffer ([`with_scratch`]).
#[cfg(feature = "serde")]
fn with_encode_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    with_scratch(&ENCODE_SCRATCH, f)
}

/// Receives one message with `recv` (a `try_recv` or `recv_deadline` into the
/// buffer it is given, `max` bytes long) and returns `f` of its bytes. The buffer
/// is this thread's scratch buffer when `max` is at most [`SCRATCH_KEEP`] (no
/// allocation after the first call), else a fresh one of `max` bytes (zeroed
/// lazily by the system: only the pages the message fills are touched).
pub(crate) fn receive_with<E, T>(
    max: usize,
    recv: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, E> {
    let take = |buf: &mut [u8]| {
        let n = recv(buf)?;
        // A receive returns at most the buffer's length; `min` keeps a bug in a
        // kind from becoming a panic here.
        Ok(f(&buf[..n.min(buf.len())]))
    };
    if max <= SCRATCH_KEEP {
        with_scratch(&RECEIVE_SCRATCH, |scratch| {
            if scratch.len() < max {
                scratch.resize(max, 0);
            }
            take(&mut scratch[..max])
        })
    } else {
        take(&mut vec![0u8; max])
    }
}

/// Receives one message from `rx`, waiting until `deadline` at most, and decodes
/// it as a `T` ([`MessageReceiver::recv_deserialized_deadline`], for receivers of
/// any size).
#[cfg(feature = "serde")]
pub(crate) fn recv_decoded<R: MessageReceiver + ?Sized, T: serde::de::DeserializeOwned>(
    rx: &mut R,
    deadline: Option<Instant>,
) -> Result<T, RecvTimeoutError> {
    receive_with(
        rx.max_message_len(),
        |buf| rx.recv_deadline(buf, deadline),
        crate::codec::decode::<T>,
    )?
    .map_err(RecvTimeoutError::Decode)
}

/// The sending half of a message transport.
pub trait MessageSender {
    /// The largest message this transport carries.
    fn max_message_len(&self) -> usize;

    /// Sends `message` if that can be done now without blocking.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when it would block;
    /// [`TrySendError::MessageTooLarge`]; [`TrySendError::Disconnected`] when the
    /// receiver has gone; [`TrySendError::Corrupted`] (shared-memory kinds);
    /// [`TrySendError::Io`].
    fn try_send(&mut self, message: &[u8]) -> Result<(), TrySendError>;

    /// Sends `message`, waiting until `deadline` at most (`None`: no limit).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send), [`SendTimeoutError::TimedOut`] instead of
    /// `Full`.
    fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError>;

    /// Sends `message`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline), without `TimedOut`.
    fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.send_deadline(message, None)
            .map_err(SendError::untimed)
    }

    /// Sends `message`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline).
    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.send_deadline(message, deadline_after(timeout))
    }

    /// Sends `value` encoded with postcard ([`codec`](crate::codec)) if that can
    /// be done now without blocking. The encoding goes through the thread's
    /// scratch buffer: no allocation once it has grown.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send); [`TrySendError::Encode`] when the value
    /// cannot be encoded; `MessageTooLarge` (with the encoded length) when its
    /// encoding is longer than [`max_message_len`](Self::max_message_len).
    #[cfg(feature = "serde")]
    fn try_send_serialized<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TrySendError>
    where
        Self: Sized,
    {
        let max = self.max_message_len();
        with_encode_scratch(|buf| {
            crate::codec::encode(value, max, buf)?;
            self.try_send(buf)
        })
    }

    /// Sends `value` encoded with postcard, waiting until `deadline` at most
    /// (`None`: no limit).
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline); `Encode` and `MessageTooLarge`
    /// as [`try_send_serialized`](Self::try_send_serialized).
    #[cfg(feature = "serde")]
    fn send_serialized_deadline<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError>
    where
        Self: Sized,
    {
        let max = self.max_message_len();
        with_encode_scratch(|buf| {
            crate::codec::encode(value, max, buf)?;
            self.send_deadline(buf, deadline)
        })
    }

    /// Sends `value` encoded with postcard, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`send_serialized_deadline`](Self::send_serialized_deadline), without
    /// `TimedOut`.
    #[cfg(feature = "serde")]
    fn send_serialized<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SendError>
    where
        Self: Sized,
    {
        self.send_serialized_deadline(value, None)
            .map_err(SendError::untimed)
    }

    /// Sends `value` encoded with postcard, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`send_serialized_deadline`](Self::send_serialized_deadline).
    #[cfg(feature = "serde")]
    fn send_serialized_timeout<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError>
    where
        Self: Sized,
    {
        self.send_serialized_deadline(value, deadline_after(timeout))
    }
}

/// The receiving half of a message transport.
pub trait MessageReceiver {
    /// The largest message this transport carries.
    fn max_message_len(&self) -> usize;

    /// Receives the next message into `buf` if one is there now; returns its length.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when none is there; [`TryRecvError::BufferTooSmall`]
    /// (the message stays, where the transport can keep it: see its docs);
    /// [`TryRecvError::Disconnected`] when the sender has gone and everything it
    /// sent was received; [`TryRecvError::FrameTooLong`] (stream transports);
    /// [`TryRecvError::Corrupted`] (shared-memory kinds); [`TryRecvError::Io`].
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError>;

    /// Receives the next message into `buf`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), [`RecvTimeoutError::TimedOut`] instead of
    /// `Empty`.
    fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError>;

    /// Receives the next message into `buf`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `TimedOut`.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_deadline(buf, None).map_err(RecvError::untimed)
    }

    /// Receives the next message into `buf`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_deadline(buf, deadline_after(timeout))
    }

    /// Receives the next message into a new `Vec` of its length, waiting until
    /// `deadline` at most. Unless the kind has a way of its own, the message is
    /// received into a buffer of the largest message's length kept per thread
    /// (up to 1 MiB; a larger one is allocated per call), then copied out.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `BufferTooSmall`.
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvTimeoutError> {
        // Received into the thread's scratch buffer, copied out at its length.
        receive_with(
            self.max_message_len(),
            |buf| self.recv_deadline(buf, deadline),
            <[u8]>::to_vec,
        )
    }

    /// Receives the next message into a new `Vec`, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`recv_vec_deadline`](Self::recv_vec_deadline), without `TimedOut`.
    fn recv_vec(&mut self) -> Result<Vec<u8>, RecvError> {
        self.recv_vec_deadline(None).map_err(RecvError::untimed)
    }

    /// Receives the next message into a new `Vec`, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`recv_vec_deadline`](Self::recv_vec_deadline).
    fn recv_vec_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_vec_deadline(deadline_after(timeout))
    }

    /// An iterator that receives each message as it comes (blocking), ending when
    /// the sender has gone and everything it sent was received: `for message in
    /// rx.iter()`. See [`Messages`] for its items and when it ends.
    fn iter(&mut self) -> Messages<'_, Self>
    where
        Self: Sized,
    {
        Messages::new(self)
    }

    /// An iterator over the messages there now, without blocking: it ends at the
    /// first `Empty` (or `Disconnected`). See [`PendingMessages`].
    fn try_iter(&mut self) -> PendingMessages<'_, Self>
    where
        Self: Sized,
    {
        PendingMessages::new(self)
    }

    /// Receives the next message if one is there now and decodes it as a `T`
    /// with postcard ([`codec`](crate::codec)), through the thread's scratch
    /// buffer.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), without `BufferTooSmall`;
    /// [`TryRecvError::Decode`] when the message is not a `T` (it is consumed:
    /// the next call returns the next message).
    #[cfg(feature = "serde")]
    fn try_recv_deserialized<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, TryRecvError>
    where
        Self: Sized,
    {
        receive_with(
            self.max_message_len(),
            |buf| self.try_recv(buf),
            crate::codec::decode::<T>,
        )?
        .map_err(TryRecvError::Decode)
    }

    /// Receives the next message, waiting until `deadline` at most, and decodes
    /// it as a `T`.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `BufferTooSmall`;
    /// `Decode` as [`try_recv_deserialized`](Self::try_recv_deserialized).
    #[cfg(feature = "serde")]
    fn recv_deserialized_deadline<T: serde::de::DeserializeOwned>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, RecvTimeoutError>
    where
        Self: Sized,
    {
        recv_decoded(self, deadline)
    }

    /// Receives the next message, waiting as long as it takes, and decodes it as
    /// a `T`.
    ///
    /// # Errors
    /// As [`recv_deserialized_deadline`](Self::recv_deserialized_deadline),
    /// without `TimedOut`.
    #[cfg(feature = "serde")]
    fn recv_deserialized<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, RecvError>
    where
        Self: Sized,
    {
        self.recv_deserialized_deadline(None)
            .map_err(RecvError::untimed)
    }

    /// Receives the next message, waiting `timeout` at most, and decodes it as a
    /// `T`.
    ///
    /// # Errors
    /// As [`recv_deserialized_deadline`](Self::recv_deserialized_deadline).
    #[cfg(feature = "serde")]
    fn recv_deserialized_timeout<T: serde::de::DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError>
    where
        Self: Sized,
    {
        self.recv_deserialized_deadline(deadline_after(timeout))
    }

    /// An iterator that receives each message as it comes and decodes it as a
    /// `T`, as [`iter`](Self::iter) does for bytes: a message that is not a `T`
    /// is yielded as a `Decode` error and the iteration goes on. See
    /// [`DeserializedMessages`].
    #[cfg(feature = "serde")]
    fn iter_deserialized<T: serde::de::DeserializeOwned>(
        &mut self,
    ) -> DeserializedMessages<'_, Self, T>
    where
        Self: Sized,
    {
        DeserializedMessages::new(self)
    }
}

/// A boxed sender (what [`connect_sender`](crate::transport::connect_sender)
/// returns) is a sender.
impl<T: MessageSender + ?Sized> MessageSender for Box<T> {
    fn max_message_len(&self) -> usize {
        (**self).max_message_len()
    }
    fn try_send(&mut self, message: &[u8]) -> Result<(), TrySendError> {
        (**self).try_send(message)
    }
    fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        (**self).send_deadline(message, deadline)
    }
}

/// A boxed receiver (what [`TransportListener::accept`](crate::transport::TransportListener::accept)
/// returns) is a receiver.
impl<T: MessageReceiver + ?Sized> MessageReceiver for Box<T> {
    fn max_message_len(&self) -> usize {
        (**self).max_message_len()
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        (**self).try_recv(buf)
    }
    fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        (**self).recv_deadline(buf, deadline)
    }
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvTimeoutError> {
        (**self).recv_vec_deadline(deadline)
    }
}

/// Implements [`MessageSender`] for `$ty` from its inherent `max_message_len`,
/// `try_send` and `send_deadline`, and gives `$ty` the derived `send` and
/// `send_timeout` as inherent methods (the trait's, callable without importing
/// it).
macro_rules! message_sender {
    ($ty:ty) => {
        impl $crate::message::MessageSender for $ty {
            fn max_message_len(&self) -> usize {
                <$ty>::max_message_len(self)
            }
            fn try_send(
                &mut self,
                message: &[u8],
            ) -> ::std::result::Result<(), $crate::error::TrySendError> {
                <$ty>::try_send(self, message)
            }
            fn send_deadline(
                &mut self,
                message: &[u8],
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<(), $crate::error::SendTimeoutError> {
                <$ty>::send_deadline(self, message, deadline)
            }
        }

        impl $ty {
            /// Sends `message`, waiting as long as it takes
            /// ([`MessageSender::send`](crate::MessageSender::send)).
            ///
            /// # Errors
            /// As [`send_deadline`](Self::send_deadline), without `TimedOut`.
            pub fn send(
                &mut self,
                message: &[u8],
            ) -> ::std::result::Result<(), $crate::error::SendError> {
                $crate::message::MessageSender::send(self, message)
            }

            /// As [`send`](Self::send), giving up after `timeout` with
            /// [`SendTimeoutError::TimedOut`](crate::error::SendTimeoutError::TimedOut).
            ///
            /// # Errors
            /// As [`send_deadline`](Self::send_deadline).
            pub fn send_timeout(
                &mut self,
                message: &[u8],
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<(), $crate::error::SendTimeoutError> {
                $crate::message::MessageSender::send_timeout(self, message, timeout)
            }
        }

        #[cfg(feature = "zerocopy")]
        $crate::typed::typed_sender!($ty);
        $crate::message::codec_sender_methods!($ty);
    };
}

/// Gives `$ty`, a [`MessageSender`], the trait's codec calls as inherent methods
/// (with the `serde` feature; nothing without it).
macro_rules! codec_sender_methods {
    ($ty:ty) => {
        #[cfg(feature = "serde")]
        impl $ty {
            /// Sends `value` encoded with postcard if that can be done now
            /// ([`MessageSender::try_send_serialized`](crate::MessageSender::try_send_serialized)).
            ///
            /// # Errors
            /// As `try_send`; `Encode`; `MessageTooLarge` with the encoded length.
            pub fn try_send_serialized<T: ::serde::Serialize + ?Sized>(
                &mut self,
                value: &T,
            ) -> ::std::result::Result<(), $crate::error::TrySendError> {
                $crate::message::MessageSender::try_send_serialized(self, value)
            }

            /// Sends `value` encoded with postcard, waiting as long as it takes
            /// ([`MessageSender::send_serialized`](crate::MessageSender::send_serialized)).
            ///
            /// # Errors
            /// As `send`; `Encode`; `MessageTooLarge` with the encoded length.
            pub fn send_serialized<T: ::serde::Serialize + ?Sized>(
                &mut self,
                value: &T,
            ) -> ::std::result::Result<(), $crate::error::SendError> {
                $crate::message::MessageSender::send_serialized(self, value)
            }

            /// As [`send_serialized`](Self::send_serialized), giving up after
            /// `timeout`.
            ///
            /// # Errors
            /// As `send_timeout`; `Encode`; `MessageTooLarge`.
            pub fn send_serialized_timeout<T: ::serde::Serialize + ?Sized>(
                &mut self,
                value: &T,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<(), $crate::error::SendTimeoutError> {
                $crate::message::MessageSender::send_serialized_timeout(self, value, timeout)
            }

            /// As [`send_serialized`](Self::send_serialized), giving up at
            /// `deadline` (`None`: never).
            ///
            /// # Errors
            /// As `send_deadline`; `Encode`; `MessageTooLarge`.
            pub fn send_serialized_deadline<T: ::serde::Serialize + ?Sized>(
                &mut self,
                value: &T,
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<(), $crate::error::SendTimeoutError> {
                $crate::message::MessageSender::send_serialized_deadline(self, value, deadline)
            }
        }
    };
}

/// Implements [`MessageReceiver`] for `$ty` from its inherent `max_message_len`,
/// `try_recv` and `recv_deadline` (and the trait items given in braces: a
/// `recv_vec_deadline` of the kind's own), and gives `$ty` the derived `recv`,
/// `recv_timeout` and `recv_vec` family as inherent methods (the trait's, callable
/// without importing it).
///
/// A receive-only kind also gets `impl IntoIterator for &mut $ty` (`for message
/// in &mut rx`, as [`iter`](MessageReceiver::iter)); a duplex endpoint is given as
/// `duplex $ty` and does not: a `for` loop over it would hold it for the whole
/// loop, leaving no way to answer inside it.
macro_rules! message_receiver {
    (duplex $ty:ty $({ $($own:tt)* })?) => {
        $crate::message::message_receiver!(@impl $ty $({ $($own)* })?);
    };
    ($ty:ty $({ $($own:tt)* })?) => {
        $crate::message::message_receiver!(@impl $ty $({ $($own)* })?);

        /// Receives each message as it comes, as
        /// [`iter`](crate::MessageReceiver::iter) (`for message in &mut rx`).
        impl<'a> ::std::iter::IntoIterator for &'a mut $ty {
            type Item = ::std::result::Result<::std::vec::Vec<u8>, $crate::error::RecvError>;
            type IntoIter = $crate::iter::Messages<'a, $ty>;
            fn into_iter(self) -> Self::IntoIter {
                $crate::iter::Messages::new(self)
            }
        }
    };
    (@impl $ty:ty $({ $($own:tt)* })?) => {
        impl $crate::message::MessageReceiver for $ty {
            fn max_message_len(&self) -> usize {
                <$ty>::max_message_len(self)
            }
            fn try_recv(
                &mut self,
                buf: &mut [u8],
            ) -> ::std::result::Result<usize, $crate::error::TryRecvError> {
                <$ty>::try_recv(self, buf)
            }
            fn recv_deadline(
                &mut self,
                buf: &mut [u8],
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<usize, $crate::error::RecvTimeoutError> {
                <$ty>::recv_deadline(self, buf, deadline)
            }
            $($($own)*)?
        }

        impl $ty {
            /// Receives the next message into `buf`, waiting as long as it takes;
            /// returns its length
            /// ([`MessageReceiver::recv`](crate::MessageReceiver::recv)).
            ///
            /// # Errors
            /// As [`recv_deadline`](Self::recv_deadline), without `TimedOut`.
            pub fn recv(
                &mut self,
                buf: &mut [u8],
            ) -> ::std::result::Result<usize, $crate::error::RecvError> {
                $crate::message::MessageReceiver::recv(self, buf)
            }

            /// As [`recv`](Self::recv), giving up after `timeout` with
            /// [`RecvTimeoutError::TimedOut`](crate::error::RecvTimeoutError::TimedOut).
            ///
            /// # Errors
            /// As [`recv_deadline`](Self::recv_deadline).
            pub fn recv_timeout(
                &mut self,
                buf: &mut [u8],
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<usize, $crate::error::RecvTimeoutError> {
                $crate::message::MessageReceiver::recv_timeout(self, buf, timeout)
            }

            /// Receives the next message into a new `Vec` of its length, waiting
            /// as long as it takes.
            ///
            /// # Errors
            /// As [`recv`](Self::recv), without `BufferTooSmall`.
            pub fn recv_vec(
                &mut self,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::error::RecvError> {
                $crate::message::MessageReceiver::recv_vec(self)
            }

            /// As [`recv_vec`](Self::recv_vec), giving up after `timeout`.
            ///
            /// # Errors
            /// As [`recv_timeout`](Self::recv_timeout), without `BufferTooSmall`.
            pub fn recv_vec_timeout(
                &mut self,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::error::RecvTimeoutError>
            {
                $crate::message::MessageReceiver::recv_vec_timeout(self, timeout)
            }

            /// As [`recv_vec`](Self::recv_vec), giving up at `deadline` (`None`:
            /// never).
            ///
            /// # Errors
            /// As [`recv_deadline`](Self::recv_deadline), without `BufferTooSmall`.
            pub fn recv_vec_deadline(
                &mut self,
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::error::RecvTimeoutError>
            {
                $crate::message::MessageReceiver::recv_vec_deadline(self, deadline)
            }

            /// An iterator that receives each message as it comes (blocking),
            /// ending when the sender has gone and everything it sent was
            /// received ([`MessageReceiver::iter`](crate::MessageReceiver::iter);
            /// see [`Messages`](crate::Messages) for its items).
            pub fn iter(&mut self) -> $crate::iter::Messages<'_, Self> {
                $crate::iter::Messages::new(self)
            }

            /// An iterator over the messages there now, without blocking
            /// ([`MessageReceiver::try_iter`](crate::MessageReceiver::try_iter);
            /// see [`PendingMessages`](crate::PendingMessages)).
            pub fn try_iter(&mut self) -> $crate::iter::PendingMessages<'_, Self> {
                $crate::iter::PendingMessages::new(self)
            }
        }

        #[cfg(feature = "serde")]
        impl $ty {
            /// Receives the next message if one is there now and decodes it as a
            /// `T` with postcard
            /// ([`MessageReceiver::try_recv_deserialized`](crate::MessageReceiver::try_recv_deserialized)).
            ///
            /// # Errors
            /// As `try_recv`, without `BufferTooSmall`; `Decode` (the message
            /// was consumed).
            pub fn try_recv_deserialized<T: ::serde::de::DeserializeOwned>(
                &mut self,
            ) -> ::std::result::Result<T, $crate::error::TryRecvError> {
                $crate::message::MessageReceiver::try_recv_deserialized(self)
            }

            /// Receives the next message, waiting as long as it takes, and
            /// decodes it as a `T`
            /// ([`MessageReceiver::recv_deserialized`](crate::MessageReceiver::recv_deserialized)).
            ///
            /// # Errors
            /// As `recv`, without `BufferTooSmall`; `Decode`.
            pub fn recv_deserialized<T: ::serde::de::DeserializeOwned>(
                &mut self,
            ) -> ::std::result::Result<T, $crate::error::RecvError> {
                $crate::message::MessageReceiver::recv_deserialized(self)
            }

            /// As [`recv_deserialized`](Self::recv_deserialized), giving up
            /// after `timeout`.
            ///
            /// # Errors
            /// As `recv_timeout`, without `BufferTooSmall`; `Decode`.
            pub fn recv_deserialized_timeout<T: ::serde::de::DeserializeOwned>(
                &mut self,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<T, $crate::error::RecvTimeoutError> {
                $crate::message::MessageReceiver::recv_deserialized_timeout(self, timeout)
            }

            /// As [`recv_deserialized`](Self::recv_deserialized), giving up at
            /// `deadline` (`None`: never).
            ///
            /// # Errors
            /// As `recv_deadline`, without `BufferTooSmall`; `Decode`.
            pub fn recv_deserialized_deadline<T: ::serde::de::DeserializeOwned>(
                &mut self,
                deadline: ::std::option::Option<::std::time::Instant>,
            ) -> ::std::result::Result<T, $crate::error::RecvTimeoutError> {
                $crate::message::MessageReceiver::recv_deserialized_deadline(self, deadline)
            }

            /// Receives each message as it comes and decodes it as a `T`
            /// ([`MessageReceiver::iter_deserialized`](crate::MessageReceiver::iter_deserialized)).
            pub fn iter_deserialized<T: ::serde::de::DeserializeOwned>(
                &mut self,
            ) -> $crate::iter::DeserializedMessages<'_, Self, T> {
                $crate::iter::DeserializedMessages::new(self)
            }
        }

        #[cfg(feature = "zerocopy")]
        $crate::typed::typed_receiver!($ty);
    };
}

pub(crate) use {codec_sender_methods, message_receiver, message_sender};
