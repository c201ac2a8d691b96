//! Iterators over a receiver's messages, for every kind and transport at once
//! (they are built on [`MessageReceiver`]): [`Messages`] blocks for each message
//! (`for message in rx.iter()`, or `for message in &mut rx`), [`PendingMessages`]
//! takes what is there now (`rx.try_iter()`).
//!
//! # Items: `Result<Vec<u8>, RecvError>`, not `Vec<u8>`
//! crossbeam's `iter()` yields plain values because disconnection is the only
//! way its receive can fail. Ours can fail in other ways a caller must see: a
//! lossy subscriber's [`Lagged`](RecvError::Lagged) (messages it never got), a
//! corrupted segment, a broken stream, a failed system call. An iterator of plain
//! values would have to hide them, or end without saying why. So each item is a
//! `Result`; a loop that wants plain values writes `let message = message?;`.
//!
//! # When they end
//! Both end, yielding nothing more, when the sender has gone and everything it
//! sent was received ([`Disconnected`](RecvError::Disconnected), not yielded).
//! After an error the receiver can go past ([`Lagged`](RecvError::Lagged): the
//! next receive returns the oldest message still held; a
//! [`Decode`](RecvError::Decode) error of the codec iterator: the message was
//! consumed) they go on. After any other error they end, having yielded it once:
//! a corrupted segment or a broken stream would return the same error for ever,
//! and a loop that skipped errors would spin on it. Call `iter()` again to try
//! once more.

use std::iter::FusedIterator;

use crate::error::RecvError;
use crate::message::{MessageReceiver, receive_with};

/// Whether an iterator ends after yielding `e`: all but the errors the receiver
/// goes past (the message lost or consumed, the next one there to receive).
fn ends_iteration(e: &RecvError) -> bool {
    !matches!(e, RecvError::Lagged { .. } | RecvError::Decode(_))
}

/// The item of an iterator whose receive returned `e` (`None`: the sender has
/// gone), and sets `ended` when the iterator must stop after it.
fn yield_error<T>(e: RecvError, ended: &mut bool) -> Option<Result<T, RecvError>> {
    if matches!(e, RecvError::Disconnected) {
        *ended = true;
        return None;
    }
    *ended = ends_iteration(&e);
    Some(Err(e))
}

/// Receives each message as it comes, blocking for the next, until the sender
/// has gone and everything it sent was received: what
/// [`MessageReceiver::iter`], each kind's inherent `iter()` and `for message in
/// &mut rx` return.
///
/// Each item is the message, in a `Vec` of its length, or the error of its
/// receive; see the [module docs](crate::iter) for why items are `Result`s and
/// which errors end the iteration. Fused: after `None`, always `None`.
///
/// # Examples
/// ```
/// # fn main() -> shmring::Result<()> {
/// use shmring::ChannelBuilder;
/// let channel = ChannelBuilder::memfd().capacity(4096).create()?;
/// let (mut tx, mut rx) = (channel.sender()?, channel.receiver()?);
/// tx.send(b"one")?;
/// tx.send(b"two")?;
/// drop(tx); // the sender leaves: the loop ends after the last message
/// let mut got = Vec::new();
/// for message in rx.iter() {
///     got.push(message?);
/// }
/// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "iterators do nothing unless iterated"]
pub struct Messages<'a, R: MessageReceiver + ?Sized> {
    rx: &'a mut R,
    ended: bool,
}

impl<'a, R: MessageReceiver + ?Sized> Messages<'a, R> {
    pub(crate) fn new(rx: &'a mut R) -> Self {
        Self { rx, ended: false }
    }
}

impl<R: MessageReceiver + ?Sized> Iterator for Messages<'_, R> {
    type Item = Result<Vec<u8>, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        match self.rx.recv_vec() {
            Ok(message) => Some(Ok(message)),
            Err(e) => yield_error(e, &mut self.ended),
        }
    }
}

impl<R: MessageReceiver + ?Sized> FusedIterator for Messages<'_, R> {}

/// The messages there now, without blocking: what
/// [`MessageReceiver::try_iter`] and each kind's inherent `try_iter()` return.
/// It ends at the first receive that finds nothing (`Empty`) or finds the sender
/// gone (`Disconnected`); a message sent after that is not yielded (call
/// `try_iter()` again).
///
/// Items and errors as [`Messages`]' (see the [module docs](crate::iter)).
/// Each message is received into the thread's scratch buffer and copied out into
/// a `Vec` of its length. Fused.
///
/// # Examples
/// ```
/// # fn main() -> shmring::Result<()> {
/// use shmring::ChannelBuilder;
/// let channel = ChannelBuilder::memfd().capacity(4096).create()?;
/// let (mut tx, mut rx) = (channel.sender()?, channel.receiver()?);
/// tx.send(b"one")?;
/// tx.send(b"two")?;
/// // The sender stays: the drain ends at the first empty receive.
/// let drained: Vec<Vec<u8>> = rx.try_iter().collect::<Result<_, _>>()?;
/// assert_eq!(drained.len(), 2);
/// assert!(rx.try_iter().next().is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "iterators do nothing unless iterated"]
pub struct PendingMessages<'a, R: MessageReceiver + ?Sized> {
    rx: &'a mut R,
    ended: bool,
}

impl<'a, R: MessageReceiver + ?Sized> PendingMessages<'a, R> {
    pub(crate) fn new(rx: &'a mut R) -> Self {
        Self { rx, ended: false }
    }
}

impl<R: MessageReceiver + ?Sized> Iterator for PendingMessages<'_, R> {
    type Item = Result<Vec<u8>, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let rx = &mut *self.rx;
        match receive_with(rx.max_message_len(), |buf| rx.try_recv(buf), <[u8]>::to_vec) {
            Ok(message) => Some(Ok(message)),
            Err(e) => match e.into_recv() {
                // `Empty`: nothing more now.
                None => {
                    self.ended = true;
                    None
                }
                Some(e) => yield_error(e, &mut self.ended),
            },
        }
    }
}

impl<R: MessageReceiver + ?Sized> FusedIterator for PendingMessages<'_, R> {}

/// Receives each message as it comes and decodes it as a `T` (the `serde`
/// feature): what [`MessageReceiver::iter_deserialized`] returns. As
/// [`Messages`], with values for bytes: it ends when the sender has gone and
/// everything it sent was received; a message that is not a `T` is yielded as
/// [`RecvError::Decode`] and the iteration goes on (the message was consumed);
/// other errors as in the [module docs](crate::iter).
#[cfg(feature = "serde")]
#[must_use = "iterators do nothing unless iterated"]
pub struct DeserializedMessages<'a, R: MessageReceiver + ?Sized, T> {
    rx: &'a mut R,
    ended: bool,
    _type: std::marker::PhantomData<fn() -> T>,
}

#[cfg(feature = "serde")]
impl<'a, R: MessageReceiver + ?Sized, T> DeserializedMessages<'a, R, T> {
    pub(crate) fn new(rx: &'a mut R) -> Self {
        Self {
            rx,
            ended: false,
            _type: std::marker::PhantomData,
        }
    }
}

#[cfg(feature = "serde")]
impl<R: MessageReceiver + ?Sized, T> std::fmt::Debug for DeserializedMessages<'_, R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeserializedMessages")
            .field("type", &std::any::type_name::<T>())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
impl<R: MessageReceiver + ?Sized, T: serde::de::DeserializeOwned> Iterator
    for DeserializedMessages<'_, R, T>
{
    type Item = Result<T, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        match crate::message::recv_decoded(self.rx, None).map_err(RecvError::untimed) {
            Ok(value) => Some(Ok(value)),
            Err(e) => yield_error(e, &mut self.ended),
        }
    }
}

#[cfg(feature = "serde")]
impl<R: MessageReceiver + ?Sized, T: serde::de::DeserializeOwned> FusedIterator
    for DeserializedMessages<'_, R, T>
{
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Instant;

    use super::*;
    use crate::error::{IoFailure, RecvTimeoutError, TryRecvError};

    /// A receiver that returns the results it was given, then `Empty` (a try) or
    /// `Disconnected` (a blocking receive).
    struct Scripted(VecDeque<Result<&'static [u8], RecvError>>);

    impl MessageReceiver for Scripted {
        fn max_message_len(&self) -> usize {
            16
        }
        fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
            match self.0.pop_front() {
                None => Err(TryRecvError::Empty),
                Some(Ok(m)) => {
                    buf[..m.len()].copy_from_slice(m);
                    Ok(m.len())
                }
                Some(Err(e)) => Err(e.into()),
            }
        }
        fn recv_deadline(
            &mut self,
            buf: &mut [u8],
            _deadline: Option<Instant>,
        ) -> Result<usize, RecvTimeoutError> {
            match self.try_recv(buf) {
                Ok(n) => Ok(n),
                Err(e) => Err(e.into_recv().unwrap_or(RecvError::Disconnected).into()),
            }
        }
    }

    fn io_failure() -> RecvError {
        RecvError::Io(Box::new(IoFailure {
            op: "recv",
            what: "scripted".into(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        }))
    }

    fn script() -> Scripted {
        Scripted(VecDeque::from([
            Ok(&b"a"[..]),
            Err(RecvError::Lagged { missed: 3 }),
            Ok(&b"b"[..]),
            Err(io_failure()),
            Ok(&b"never"[..]),
        ]))
    }

    /// `Lagged` is yielded and the iteration goes on; an I/O failure is yielded
    /// and ends it (the message after it is not received): in both iterators.
    #[test]
    fn a_lag_is_yielded_and_passed_a_fault_yielded_and_final() {
        let want = vec![
            Ok(b"a".to_vec()),
            Err(RecvError::Lagged { missed: 3 }),
            Ok(b"b".to_vec()),
            Err(io_failure()),
        ];
        let mut rx = script();
        assert_eq!(rx.iter().collect::<Vec<_>>(), want);
        assert_eq!(rx.0.len(), 1, "nothing received after the fault");
        let mut rx = script();
        let mut it = rx.try_iter();
        assert_eq!(it.by_ref().collect::<Vec<_>>(), want);
        assert!(it.next().is_none(), "fused");
    }

    /// `Disconnected` and `Empty` end the iterators without being yielded.
    #[test]
    fn the_end_is_not_an_item() {
        let mut rx = Scripted(VecDeque::from([Ok(&b"x"[..])]));
        assert_eq!(rx.iter().collect::<Vec<_>>(), vec![Ok(b"x".to_vec())]);
        let mut rx = Scripted(VecDeque::from([
            Ok(&b"x"[..]),
            Err(RecvError::Disconnected),
            Ok(&b"y"[..]),
        ]));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![Ok(b"x".to_vec())]);
        assert_eq!(rx.0.len(), 1, "nothing received after Disconnected");
    }
}
