//! The message family: one set of copying send and receive calls, with their
//! readiness calls, for every endpoint that sends or receives.
//!
//! A sending endpoint of any kind is a `shmring_msg_sender`: an address-based
//! transport's sender is one (`shmring_connect_sender`), and an SPSC sender, an
//! MPMC sender or a connection gives its view as one
//! (`shmring_sender_as_msg_sender`, `shmring_mpmc_sender_as_msg_sender`,
//! `shmring_connection_as_msg_sender`). Receiving endpoints likewise give a
//! `shmring_msg_receiver`. A view is the same handle, typed for these calls: it
//! needs no freeing, and lives as long as the handle it came from (close that one).
//!
//! The calls: `try_` never blocks; the plain form waits (by the endpoint's wait
//! strategy); `_timeout` waits at most `timeout_ms` milliseconds (relative, on
//! the monotonic clock; 0 gives up as soon as the call would wait, `UINT64_MAX`
//! waits without limit).
//!
//! **The peer's departure.** A `try_` call on a shared-memory endpoint (SPSC,
//! MPMC, a connection over shared memory) that finds the ring full (empty) asks
//! the system whether the peer is still there (a lock probe, one system call) at
//! most once per millisecond per endpoint, and reuses the last answer in between.
//! So for up to 1 ms after the peer has gone (closed or died), `try_` calls may
//! still return `SHMRING_E_FULL` (`SHMRING_E_EMPTY`); the first one after that
//! returns `SHMRING_E_DISCONNECTED`. The blocking and `_timeout` forms probe
//! before they wait and are woken by the departure: they return
//! `SHMRING_E_DISCONNECTED` at once. Making `try_` immediate too would cost a
//! system call on every empty poll, which the design avoids.

use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;

use shmring::{MessageReceiver, MessageSender, Readiness};

use crate::handle::{
    Access, call_endpoint, clear, deadline, message_bytes, receive_into, write_out,
};
use crate::mpmc::{MpmcRx, MpmcTx};
use crate::readiness::{WakeupsInfo, readiness_code, shmring_wakeups, value_or_code};
use crate::receiver::SpscReceiver;
use crate::sender::SpscSender;
use crate::status::{Failure, shmring_status};

/// A sending endpoint of any kind, for the `shmring_msg_sender_*` calls: a
/// transport's sender (free it with `shmring_msg_sender_close`), or the view of
/// another sending handle (`shmring_*_as_msg_sender`: free that handle instead).
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_msg_sender {
    _opaque: [u8; 0],
}

/// A receiving endpoint of any kind, for the `shmring_msg_receiver_*` calls: a
/// transport's receiver (free it with `shmring_msg_receiver_close`), or the view
/// of another receiving handle (`shmring_*_as_msg_receiver`).
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_msg_receiver {
    _opaque: [u8; 0],
}

/// A handle's value as seen by the message family: what it sends and receives
/// with, if anything.
pub(crate) trait Endpoint {
    fn sending(&mut self) -> Option<&mut dyn Sending> {
        None
    }
    fn receiving(&mut self) -> Option<&mut dyn Receiving> {
        None
    }
}

/// An endpoint's readiness descriptor and how it is woken (fixed for its life).
#[derive(Debug)]
pub(crate) struct ReadinessInfo {
    pub(crate) fd: c_int,
    pub(crate) wakeups: WakeupsInfo,
}

impl ReadinessInfo {
    pub(crate) fn new(fd: impl AsRawFd, wakeups: &shmring::Wakeups) -> Self {
        Self {
            fd: fd.as_raw_fd(),
            wakeups: WakeupsInfo::new(wakeups),
        }
    }
}

fn no_readiness() -> Failure {
    Failure::new(
        shmring_status::E_UNSUPPORTED,
        "this endpoint has no readiness descriptor (an address-based transport)",
    )
}

/// The sending side of an endpoint.
pub(crate) trait Sending {
    fn sender(&mut self) -> &mut dyn MessageSender;
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Err(no_readiness())
    }
    fn arm_for_space(&mut self, _len: usize) -> Result<Readiness, Failure> {
        Err(no_readiness())
    }
}

/// The receiving side of an endpoint.
pub(crate) trait Receiving {
    fn receiver(&mut self) -> &mut dyn MessageReceiver;
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Err(no_readiness())
    }
    fn arm_for_message(&mut self) -> Result<Readiness, Failure> {
        Err(no_readiness())
    }
}

/// Runs `body` on the sending side of the handle `sender`.
///
/// # Safety
/// `sender` is NULL or a live handle (or view) used by no other thread.
#[inline(always)]
unsafe fn on_sender(
    sender: *const shmring_msg_sender,
    want: Access,
    body: impl FnOnce(&mut dyn Sending) -> Result<(), Failure>,
) -> c_int {
    fn sending(s: Option<&mut dyn Sending>) -> Result<&mut dyn Sending, Failure> {
        s.ok_or_else(|| Failure::invalid("the handle passed as a shmring_msg_sender does not send"))
    }
    // SAFETY: delegated to the caller.
    unsafe {
        call_endpoint(sender, "sender", want, |e| {
            // The shared-memory kinds without a virtual call (`EndpointValue`).
            let e = match e.downcast::<SpscSender>() {
                Ok(v) => return body(sending(v.sending())?),
                Err(e) => e,
            };
            let e = match e.downcast::<MpmcTx>() {
                Ok(v) => return body(sending(v.sending())?),
                Err(e) => e,
            };
            body(sending(e.any().sending())?)
        })
    }
}

/// Runs `body` on the receiving side of the handle `receiver`.
///
/// # Safety
/// `receiver` is NULL or a live handle (or view) used by no other thread.
#[inline(always)]
unsafe fn on_receiver(
    receiver: *const shmring_msg_receiver,
    want: Access,
    body: impl FnOnce(&mut dyn Receiving) -> Result<(), Failure>,
) -> c_int {
    fn receiving(r: Option<&mut dyn Receiving>) -> Result<&mut dyn Receiving, Failure> {
        r.ok_or_else(|| {
            Failure::invalid("the handle passed as a shmring_msg_receiver does not receive")
        })
    }
    // SAFETY: delegated to the caller.
    unsafe {
        call_endpoint(receiver, "receiver", want, |e| {
            // The shared-memory kinds without a virtual call (`EndpointValue`).
            let e = match e.downcast::<SpscReceiver>() {
                Ok(v) => return body(receiving(v.receiving())?),
                Err(e) => e,
            };
            let e = match e.downcast::<MpmcRx>() {
                Ok(v) => return body(receiving(v.receiving())?),
                Err(e) => e,
            };
            body(receiving(e.any().receiving())?)
        })
    }
}

/// Stores the largest message the endpoint carries in `*out`. Allowed while a
/// grant is outstanding.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_max_message_len(
    sender: *const shmring_msg_sender,
    out: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        on_sender(sender, Access::Look, |s| {
            write_out(out, "out", s.sender().max_message_len())
        })
    }
}

/// The body of the copying sends.
///
/// # Safety
/// As `shmring_msg_sender_try_send`.
unsafe fn send_with<E>(
    sender: *mut shmring_msg_sender,
    data: *const c_void,
    len: usize,
    send: impl FnOnce(&mut dyn MessageSender, &[u8]) -> Result<(), E>,
) -> c_int
where
    Failure: From<E>,
{
    let body = |s: &mut dyn Sending| {
        let s = s.sender();
        // SAFETY: the caller's contract on `data` and `len`.
        let message = unsafe { message_bytes(data, len, s.max_message_len()) }?;
        Ok(send(s, message)?)
    };
    // SAFETY: the caller's contract on `sender`.
    unsafe { on_sender(sender, Access::Idle, body) }
}

/// Copies `len` bytes at `data` out as one message if that can be done now;
/// never blocks. On a shared-memory ring, messages queue while there is room
/// whether or not a receiver is attached.
///
/// # Returns
/// `SHMRING_OK` (committed: delivered to a receiver even if this process dies
/// now); `SHMRING_E_FULL`; `SHMRING_E_DISCONNECTED` (the receiver has gone; on
/// shared memory a `try_` call asks the system whether the peer is there at most
/// once per millisecond, so it may return `SHMRING_E_FULL` for up to 1 ms after
/// the receiver went, where `shmring_msg_sender_send` notices at once);
/// `SHMRING_E_MESSAGE_TOO_LARGE`; `SHMRING_E_CORRUPTED`; `SHMRING_E_BUSY` (a
/// grant outstanding on an SPSC sender); `SHMRING_E_IO` (socket transports);
/// `SHMRING_E_INVALID_ARGUMENT` (NULL `data` with a non-zero `len`, `len` beyond
/// `PTRDIFF_MAX`, a handle that does not send).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_try_send(
    sender: *mut shmring_msg_sender,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(sender, data, len, |s, m| s.try_send(m)) }
}

/// As `shmring_msg_sender_try_send`, waiting for room instead of returning
/// `SHMRING_E_FULL`, as long as it takes, by the endpoint's wait strategy (the
/// `wait_strategy` option of a shared-memory endpoint; in the kernel for a
/// socket, pipe or queue transport).
///
/// # Returns
/// As `shmring_msg_sender_try_send` but `SHMRING_E_FULL`;
/// `SHMRING_E_DISCONNECTED` as soon as the receiver goes while there is no room.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_send(
    sender: *mut shmring_msg_sender,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(sender, data, len, |s, m| s.send_deadline(m, None)) }
}

/// As `shmring_msg_sender_send`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_send_timeout(
    sender: *mut shmring_msg_sender,
    data: *const c_void,
    len: usize,
    timeout_ms: u64,
) -> c_int {
    let deadline = deadline(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { send_with(sender, data, len, |s, m| s.send_deadline(m, deadline)) }
}

/// The sender's readiness descriptor for room, for `epoll`, `poll` or `select`:
/// it becomes readable (`EPOLLIN`, or `EPOLLHUP`) after
/// `shmring_msg_sender_arm_for_space` returned `SHMRING_ARMED`, when the receiver
/// frees room, when the receiver goes (closes or dies), or every 25 ms for a
/// polled endpoint (`shmring_msg_sender_wakeups`). The senders of one MPMC
/// channel share a doorbell: one may take another's wake-up, so each sends until
/// `SHMRING_E_FULL` and arms again.
///
/// The descriptor belongs to the handle: the same for its life, closed by its
/// `_close` (remove it from your `epoll` set first). Never read it (arming drains
/// it) and never close it. Allowed while a grant is outstanding.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_UNSUPPORTED` for an address-based
/// transport's sender; `SHMRING_E_INVALID_ARGUMENT` for a NULL `sender`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_readiness_fd(
    sender: *const shmring_msg_sender,
) -> c_int {
    value_or_code(|fd| {
        // SAFETY: the caller's contract.
        unsafe {
            on_sender(sender, Access::Look, |s| {
                *fd = s.readiness()?.fd;
                Ok(())
            })
        }
    })
}

/// Arms the readiness descriptor (`shmring_msg_sender_readiness_fd`) for room for
/// a message of `len` bytes. Never blocks; with nobody armed, sending and
/// receiving make no system call for it.
///
/// The loop: when the descriptor is readable, send with
/// `shmring_msg_sender_try_send` until `SHMRING_E_FULL`, then arm: on
/// `SHMRING_READY` send again, on `SHMRING_ARMED` go back to the event loop.
///
/// # Returns
/// `SHMRING_READY` (1): the message fits now, or the receiver has gone (the next
/// send says which); `SHMRING_ARMED` (2): the descriptor becomes readable when
/// that may have changed; or a negative code: `SHMRING_E_MESSAGE_TOO_LARGE`,
/// `SHMRING_E_UNSUPPORTED` (no descriptor), `SHMRING_E_BUSY` (grant
/// outstanding), `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_arm_for_space(
    sender: *mut shmring_msg_sender,
    len: usize,
) -> c_int {
    value_or_code(|readiness| {
        // SAFETY: the caller's contract.
        unsafe {
            on_sender(sender, Access::Idle, |s| {
                *readiness = readiness_code(s.arm_for_space(len)?);
                Ok(())
            })
        }
    })
}

/// Stores in `*out` how the readiness descriptor is woken:
/// `SHMRING_WAKEUPS_DOORBELL` (by the peer) or `SHMRING_WAKEUPS_POLLED` (every
/// 25 ms while armed, where no doorbell could be shared). If `out_reason` is not
/// NULL, `*out_reason` receives why it is polled (`""` for a doorbell): a
/// NUL-terminated string owned by the handle, valid until its `_close`. Fixed for
/// the handle's life; allowed while a grant is outstanding.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_UNSUPPORTED` (no descriptor);
/// `SHMRING_E_INVALID_ARGUMENT` for a NULL `sender` or `out`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_wakeups(
    sender: *const shmring_msg_sender,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract (all three pointers).
    unsafe {
        on_sender(sender, Access::Look, |s| {
            s.readiness()?.wakeups.write(out, out_reason)
        })
    }
}

/// Stores the largest message the endpoint carries in `*out`. Allowed while a
/// read is outstanding.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_max_message_len(
    receiver: *const shmring_msg_receiver,
    out: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        on_receiver(receiver, Access::Look, |r| {
            write_out(out, "out", r.receiver().max_message_len())
        })
    }
}

/// The body of the copying receives.
///
/// # Safety
/// As `shmring_msg_receiver_try_recv`.
unsafe fn recv_with<E>(
    receiver: *mut shmring_msg_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    recv: impl FnOnce(&mut dyn MessageReceiver, &mut [u8]) -> Result<usize, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    let body = |r: &mut dyn Receiving| {
        let r = r.receiver();
        // SAFETY: the caller's contract on `buf`, `buf_len` and `out_len`.
        unsafe {
            receive_into(buf, buf_len, out_len, |b| {
                recv(r, b).map_err(shmring::Error::from)
            })
        }
    };
    // SAFETY: the caller's contract on `out_len` and `receiver`.
    unsafe {
        clear(out_len);
        on_receiver(receiver, Access::Idle, body)
    }
}

/// Copies the next message into `buf` and consumes it, if there is one now; never
/// blocks. `*out_len` receives its length.
///
/// `buf` may be NULL with `buf_len` 0: a probe that consumes only an empty message
/// and otherwise reports the next one's length (`SHMRING_E_BUFFER_TOO_SMALL`).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_EMPTY`; `SHMRING_E_DISCONNECTED` (empty, and the
/// sender has gone after everything it sent was received; on shared memory a
/// `try_` call asks the system whether the peer is there at most once per
/// millisecond, so it may return `SHMRING_E_EMPTY` for up to 1 ms after the
/// sender went, where `shmring_msg_receiver_recv` notices at once); `SHMRING_E_BUFFER_TOO_SMALL`
/// (`*out_len` is the length needed; nothing consumed on a shared-memory ring, a
/// datagram transport may drop it: see the transport's docs); `SHMRING_E_LAGGED`
/// (a broadcast subscriber the publisher lapped: `*out_len` is how many messages
/// it missed; the next receive returns the oldest one still held);
/// `SHMRING_E_CORRUPTED`; `SHMRING_E_BUSY` (a read outstanding on an SPSC
/// receiver); `SHMRING_E_IO`; `SHMRING_E_INVALID_ARGUMENT` (NULL `buf` with a
/// non-zero `buf_len`, `buf_len` beyond `PTRDIFF_MAX`, NULL `out_len`, a handle
/// that does not receive). `*out_len` is 0 after other failures.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_try_recv(
    receiver: *mut shmring_msg_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { recv_with(receiver, buf, buf_len, out_len, |r, b| r.try_recv(b)) }
}

/// As `shmring_msg_receiver_try_recv`, waiting for a message instead of returning
/// `SHMRING_E_EMPTY`, as long as it takes, by the endpoint's wait strategy (as
/// `shmring_msg_sender_send`). A receiver whose sender has not attached yet waits for it.
///
/// # Returns
/// As `shmring_msg_receiver_try_recv` but `SHMRING_E_EMPTY`;
/// `SHMRING_E_DISCONNECTED` as soon as the sender has gone and everything it sent
/// was received.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_recv(
    receiver: *mut shmring_msg_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        recv_with(receiver, buf, buf_len, out_len, |r, b| {
            r.recv_deadline(b, None)
        })
    }
}

/// As `shmring_msg_receiver_recv`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_recv_timeout(
    receiver: *mut shmring_msg_receiver,
    buf: *mut c_void,
    buf_len: usize,
    timeout_ms: u64,
    out_len: *mut usize,
) -> c_int {
    let deadline = deadline(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        recv_with(receiver, buf, buf_len, out_len, |r, b| {
            r.recv_deadline(b, deadline)
        })
    }
}

/// The receiver's readiness descriptor, for `epoll`, `poll` or `select`: it
/// becomes readable (`EPOLLIN`, or `EPOLLHUP`) after
/// `shmring_msg_receiver_arm_for_message` returned `SHMRING_ARMED`, when a
/// message arrives, when the sender goes (every sender, for MPMC), or every 25 ms
/// for a polled endpoint (`shmring_msg_receiver_wakeups`). The receivers of one
/// MPMC channel share a doorbell: one may take another's wake-up (and the message
/// with it), so each receives until `SHMRING_E_EMPTY` and arms again.
///
/// Owned by the handle, as `shmring_msg_sender_readiness_fd`'s. Allowed while a
/// read is outstanding.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_UNSUPPORTED` for an address-based
/// transport's receiver; `SHMRING_E_INVALID_ARGUMENT` for a NULL `receiver`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_readiness_fd(
    receiver: *const shmring_msg_receiver,
) -> c_int {
    value_or_code(|fd| {
        // SAFETY: the caller's contract.
        unsafe {
            on_receiver(receiver, Access::Look, |r| {
                *fd = r.readiness()?.fd;
                Ok(())
            })
        }
    })
}

/// Arms the readiness descriptor (`shmring_msg_receiver_readiness_fd`) for a
/// message. Never blocks. The loop: when the descriptor is readable, receive with
/// `shmring_msg_receiver_try_recv` until `SHMRING_E_EMPTY`, then arm: on
/// `SHMRING_READY` receive again, on `SHMRING_ARMED` go back to the event loop.
///
/// # Returns
/// `SHMRING_READY` (1): a message is there now, or the sender has gone (the next
/// receive says which); `SHMRING_ARMED` (2); or a negative code:
/// `SHMRING_E_UNSUPPORTED` (no descriptor), `SHMRING_E_BUSY` (read outstanding),
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_arm_for_message(
    receiver: *mut shmring_msg_receiver,
) -> c_int {
    value_or_code(|readiness| {
        // SAFETY: the caller's contract.
        unsafe {
            on_receiver(receiver, Access::Idle, |r| {
                *readiness = readiness_code(r.arm_for_message()?);
                Ok(())
            })
        }
    })
}

/// As `shmring_msg_sender_wakeups`, for the receiver's descriptor.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_wakeups(
    receiver: *const shmring_msg_receiver,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract (all three pointers).
    unsafe {
        on_receiver(receiver, Access::Look, |r| {
            r.readiness()?.wakeups.write(out, out_reason)
        })
    }
}
