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

use std::time::{Duration, Instant};

use crate::blocking::deadline_after;
use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

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

    /// Receives the next message into a new `Vec`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), without `BufferTooSmall`.
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, RecvTimeoutError> {
        let mut buf = vec![0u8; self.max_message_len()];
        let n = self.recv_deadline(&mut buf, deadline)?;
        buf.truncate(n);
        Ok(buf)
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
    };
}

/// Implements [`MessageReceiver`] for `$ty` from its inherent `max_message_len`,
/// `try_recv` and `recv_deadline` (and the trait items given in braces: a
/// `recv_vec_deadline` of the kind's own), and gives `$ty` the derived `recv`,
/// `recv_timeout` and `recv_vec` family as inherent methods (the trait's, callable
/// without importing it).
macro_rules! message_receiver {
    ($ty:ty $({ $($own:tt)* })?) => {
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
        }
    };
}

pub(crate) use {message_receiver, message_sender};
