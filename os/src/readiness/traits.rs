//! What an event loop needs of an endpoint, one trait per direction:
//! [`ReceiveReadiness`] and [`SendReadiness`], implemented by every receiving and
//! sending kind, so that [`Select`](crate::Select) and async wrappers (the
//! `shmring-tokio` crate) serve all of them with one loop:
//!
//! ```text
//! loop {
//!     try the call                         → done, unless Empty / Full
//!     arm                                  → Ready: try again
//!     wait until the descriptor is ready   (Armed)
//! }
//! ```
//!
//! Shared-memory endpoints wait on their doorbell (readable on a ring or on the
//! peer's death: [`Wakeups`](super::Wakeups)); the transports on their own socket,
//! pipe or queue descriptor (readable for a message, writable for room), which
//! needs no arming beyond looking at what the endpoint has buffered.

use std::os::fd::{AsFd, BorrowedFd};

use crate::error::Result;
use crate::message::{MessageReceiver, MessageSender};

use super::Readiness;

/// Which readiness of a descriptor means "try again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (every doorbell, every receiving transport).
    Readable,
    /// Writable (a sending socket, pipe, FIFO or message queue).
    Writable,
}

/// A receiver an event loop can wait on: a descriptor, and an arming that says
/// whether to wait on it.
///
/// The loop: [`try_recv`](MessageReceiver::try_recv) until
/// [`TryRecvError::Empty`](crate::TryRecvError::Empty); then
/// [`arm_for_message`](Self::arm_for_message): on [`Readiness::Ready`] try
/// again, on [`Readiness::Armed`] wait until [`readiness_fd`](Self::readiness_fd)
/// is readable, then try again. A peer's departure (its death included) makes it
/// readable too, and the next try says
/// [`Disconnected`](crate::TryRecvError::Disconnected). A wake-up may be
/// spurious (the try then finds nothing): arm again. Edge-triggered loops (an
/// async reactor) must clear their readiness before they try, never after they
/// arm.
pub trait ReceiveReadiness: MessageReceiver {
    /// The descriptor to wait on (readable): a doorbell, or the transport's own.
    /// Do not read it.
    fn readiness_fd(&self) -> BorrowedFd<'_>;

    /// Arms [`readiness_fd`](Self::readiness_fd) for the next message:
    /// [`Readiness::Ready`] if a receive would do something now (a message, or
    /// the peer's departure), else [`Readiness::Armed`]. Never blocks.
    ///
    /// # Errors
    /// The endpoint's: [`Error::Corrupted`](crate::Error::Corrupted),
    /// [`Error::Io`](crate::Error::Io).
    fn arm_for_message(&mut self) -> Result<Readiness>;
}

/// A sender an event loop can wait on for room, as [`ReceiveReadiness`] for
/// messages: try until [`TrySendError::Full`](crate::TrySendError::Full), arm,
/// wait until [`send_readiness_fd`](Self::send_readiness_fd) shows
/// [`send_interest`](Self::send_interest), try again.
pub trait SendReadiness: MessageSender {
    /// The descriptor to wait on: a doorbell (readable), or the transport's own
    /// (writable). Do not read or write it.
    fn send_readiness_fd(&self) -> BorrowedFd<'_>;

    /// Which readiness of [`send_readiness_fd`](Self::send_readiness_fd) to wait
    /// for.
    fn send_interest(&self) -> Interest {
        Interest::Readable
    }

    /// Arms [`send_readiness_fd`](Self::send_readiness_fd) for room for a
    /// message of `len` bytes: [`Readiness::Ready`] if it fits now (or the
    /// receiver has gone), else [`Readiness::Armed`]. Never blocks. A transport
    /// whose kernel does not say how much room it has is always `Armed`: its
    /// descriptor is writable at once if there is room.
    ///
    /// # Errors
    /// The endpoint's: [`Error::MessageTooLarge`](crate::Error::MessageTooLarge),
    /// [`Error::Corrupted`](crate::Error::Corrupted), [`Error::Io`](crate::Error::Io).
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness>;
}

impl<T: ReceiveReadiness + ?Sized> ReceiveReadiness for Box<T> {
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        (**self).readiness_fd()
    }
    fn arm_for_message(&mut self) -> Result<Readiness> {
        (**self).arm_for_message()
    }
}

impl<T: SendReadiness + ?Sized> SendReadiness for Box<T> {
    fn send_readiness_fd(&self) -> BorrowedFd<'_> {
        (**self).send_readiness_fd()
    }
    fn send_interest(&self) -> Interest {
        (**self).send_interest()
    }
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        (**self).arm_for_space(len)
    }
}

/// A condition an event loop can wait on that is not a message or room: an
/// event's notification ([`EventWaiter`](crate::EventWaiter)), a semaphore's
/// unit ([`SemaphoreWaiter`](crate::SemaphoreWaiter)). The loop:
/// [`try_take`](Self::try_take) until it says `false`; arm; on
/// [`Readiness::Armed`] wait until [`readiness_fd`](Self::readiness_fd) is
/// readable; take again.
pub trait ConditionReadiness {
    /// Takes what the condition offers if it holds now: an event's
    /// notification (the waiter's key moves on), a semaphore's unit. `false`
    /// if there is none. Never blocks.
    ///
    /// # Errors
    /// The waiter's ([`Error::Corrupted`](crate::Error::Corrupted)).
    fn try_take(&mut self) -> Result<bool>;

    /// The descriptor to wait on (readable). Do not read it.
    fn readiness_fd(&self) -> BorrowedFd<'_>;

    /// [`Readiness::Ready`] if the condition holds now, else
    /// [`Readiness::Armed`]. Never blocks.
    ///
    /// # Errors
    /// The waiter's ([`Error::Corrupted`](crate::Error::Corrupted),
    /// [`Error::Io`](crate::Error::Io)).
    fn arm(&mut self) -> Result<Readiness>;
}

impl ConditionReadiness for crate::event::EventWaiter {
    fn try_take(&mut self) -> Result<bool> {
        Ok(self.take_notification())
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        crate::event::EventWaiter::readiness_fd(self)
    }
    fn arm(&mut self) -> Result<Readiness> {
        crate::event::EventWaiter::arm(self)
    }
}

impl ConditionReadiness for crate::semaphore::SemaphoreWaiter {
    fn try_take(&mut self) -> Result<bool> {
        match self.try_wait() {
            Ok(()) => Ok(true),
            Err(crate::Error::Empty) => Ok(false),
            Err(e) => Err(e),
        }
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        crate::semaphore::SemaphoreWaiter::readiness_fd(self)
    }
    fn arm(&mut self) -> Result<Readiness> {
        crate::semaphore::SemaphoreWaiter::arm(self)
    }
}

/// Implements [`ReceiveReadiness`] for shared-memory kinds from their inherent
/// `readiness_fd` and `arm_for_message`.
macro_rules! receive_readiness {
    ($($ty:ty),*) => {$(
        impl ReceiveReadiness for $ty {
            fn readiness_fd(&self) -> BorrowedFd<'_> {
                <$ty>::readiness_fd(self)
            }
            fn arm_for_message(&mut self) -> Result<Readiness> {
                <$ty>::arm_for_message(self)
            }
        }
    )*};
}

receive_readiness!(
    crate::channel::Receiver,
    crate::mpmc::MpmcReceiver,
    crate::broadcast::Subscriber,
    crate::connection::Connection,
    crate::connection::ConnectionReceiver
);

impl SendReadiness for crate::channel::Sender {
    fn send_readiness_fd(&self) -> BorrowedFd<'_> {
        self.readiness_fd()
    }
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        crate::channel::Sender::arm_for_space(self, len)
    }
}

impl SendReadiness for crate::broadcast::Publisher {
    fn send_readiness_fd(&self) -> BorrowedFd<'_> {
        self.readiness_fd()
    }
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        crate::broadcast::Publisher::arm_for_space(self, len)
    }
}

impl SendReadiness for crate::mpmc::MpmcSender {
    fn send_readiness_fd(&self) -> BorrowedFd<'_> {
        self.readiness_fd()
    }
    /// A slot holds any message up to the largest: `len` is not looked at.
    fn arm_for_space(&mut self, _len: usize) -> Result<Readiness> {
        crate::mpmc::MpmcSender::arm_for_space(self)
    }
}

impl SendReadiness for crate::connection::Connection {
    fn send_readiness_fd(&self) -> BorrowedFd<'_> {
        crate::connection::Connection::send_readiness_fd(self)
    }
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        crate::connection::Connection::arm_for_space(self, len)
    }
}

impl SendReadiness for crate::connection::ConnectionSender {
    fn send_readiness_fd(&self) -> BorrowedFd<'_> {
        self.readiness_fd()
    }
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
        crate::connection::ConnectionSender::arm_for_space(self, len)
    }
}

/// Implements [`ReceiveReadiness`] for transports whose descriptor is readable
/// when a message may have come; `$buffered` says whether one is here already
/// (read from the descriptor earlier and kept).
macro_rules! transport_receive_readiness {
    ($($ty:ty => $buffered:expr),* $(,)?) => {$(
        impl ReceiveReadiness for $ty {
            fn readiness_fd(&self) -> BorrowedFd<'_> {
                AsFd::as_fd(self)
            }
            fn arm_for_message(&mut self) -> Result<Readiness> {
                let buffered: fn(&$ty) -> bool = $buffered;
                Ok(if buffered(self) {
                    Readiness::Ready
                } else {
                    Readiness::Armed
                })
            }
        }
    )*};
}

transport_receive_readiness!(
    crate::transport::unix::UnixReceiver => |rx| rx.has_frame(),
    crate::transport::tcp::TcpReceiver => |rx| rx.has_frame(),
    crate::transport::pipe::PipeReceiver => |rx| rx.has_frame(),
    crate::transport::fifo::FifoReceiver => |rx| rx.has_frame(),
    crate::transport::seqpacket::SeqpacketReceiver => |_| false,
    crate::transport::mq::MqReceiver => |rx| rx.has_stashed(),
);

/// Implements [`SendReadiness`] for transports whose descriptor is writable when
/// the kernel may take more (always `Armed`: only the kernel knows its room).
macro_rules! transport_send_readiness {
    ($($ty:ty),*) => {$(
        impl SendReadiness for $ty {
            fn send_readiness_fd(&self) -> BorrowedFd<'_> {
                AsFd::as_fd(self)
            }
            fn send_interest(&self) -> Interest {
                Interest::Writable
            }
            fn arm_for_space(&mut self, len: usize) -> Result<Readiness> {
                let max = MessageSender::max_message_len(self);
                if len > max {
                    return Err(crate::Error::MessageTooLarge { len, max });
                }
                Ok(Readiness::Armed)
            }
        }
    )*};
}

transport_send_readiness!(
    crate::transport::unix::UnixSender,
    crate::transport::tcp::TcpSender,
    crate::transport::pipe::PipeSender,
    crate::transport::fifo::FifoSender,
    crate::transport::seqpacket::SeqpacketSender,
    crate::transport::mq::MqSender
);
