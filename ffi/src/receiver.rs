//! The receiving side of an SPSC channel: zero-copy reads and batches. Its
//! copying receives and readiness calls are the message family's
//! (`shmring_receiver_as_msg_receiver`).

use std::ffi::{c_int, c_void};

use shmring::{Readiness, Receiver};

use crate::channel::{Spsc, shmring_channel};
use crate::handle::{
    Access, Header, Kind, State, call, call_in, close, construct, out_ptr, shared, timeout,
};
use crate::loan::{Lends, end_loan, lent, read_with, take_loan};
use crate::message::{Endpoint, ReadinessInfo, Receiving, shmring_msg_receiver};
use crate::status::{Failure, shmring_status};

/// The receiving side of a channel (one per channel at a time, across all
/// processes). Make it with `shmring_receiver_new`, free it with
/// `shmring_receiver_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_receiver {
    _opaque: [u8; 0],
}

/// The value of a `shmring_receiver` handle.
#[derive(Debug)]
pub(crate) struct SpscReceiver {
    receiver: Receiver,
    readiness: ReadinessInfo,
    /// The outstanding read (state `Borrowed`): its bytes' address and length.
    /// Nothing borrows `receiver` meanwhile: the release reads the same message
    /// again (it stays first in the ring until released) and releases that.
    read: Option<(usize, usize)>,
}

impl Lends for SpscReceiver {
    fn loan(&mut self) -> &mut Option<(usize, usize)> {
        &mut self.read
    }
}

impl Kind for SpscReceiver {
    type C = shmring_receiver;
    const WHAT: &'static str = "receiver";
    const LENDS: &'static str = "read";
    const FINISH: &'static str = "release or unread the outstanding message";
    const ENDPOINT: bool = true;
}

impl Endpoint for SpscReceiver {
    fn receiving(&mut self) -> Option<&mut dyn Receiving> {
        Some(self)
    }
}

impl Receiving for SpscReceiver {
    fn receiver(&mut self) -> &mut dyn shmring::MessageReceiver {
        &mut self.receiver
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.readiness)
    }
    fn arm_for_message(&mut self) -> Result<Readiness, Failure> {
        Ok(self.receiver.arm_for_message()?)
    }
}

/// The callback of `shmring_receiver_try_recv_batch`: called once per message, in
/// order, with the caller's `context` and the message's `len` bytes at `data`
/// (valid during the call only). It must not unwind or `longjmp` out; calls on the
/// same receiver from inside it return `SHMRING_E_BUSY`.
pub type shmring_recv_fn =
    Option<unsafe extern "C" fn(context: *mut c_void, data: *const u8, len: usize)>;

/// Claims the receiving side of `channel` and returns it in `*out`. Reading starts
/// at the first message no earlier receiver released: what a receiver read but did
/// not release before it died is delivered again. The receiver keeps the segment
/// mapped: `channel` may be closed before it.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_ROLE_TAKEN` while another live receiver holds the
/// role; `SHMRING_E_UNSUPPORTED` (see `shmring_sender_new`); `SHMRING_E_CORRUPTED`,
/// `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_new(
    channel: *const shmring_channel,
    out: *mut *mut shmring_receiver,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let receiver = unsafe { shared::<Spsc>(channel) }?.channel.receiver()?;
        Ok(SpscReceiver {
            readiness: ReadinessInfo::new(receiver.readiness_fd(), receiver.wakeups()),
            receiver,
            read: None,
        })
    })
}

/// Frees a receiver and gives up the role. An outstanding read is left in the
/// ring (the next receiver gets it). Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_BUSY` (nothing freed) when called from inside the
/// receiver's own batch callback.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_receiver_close(receiver: *mut shmring_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<SpscReceiver>(receiver) }
}

/// The receiver as a `shmring_msg_receiver`, for the message family's calls
/// (copying receives, readiness). The same handle: never close the view, close
/// `receiver`. NULL for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_receiver_as_msg_receiver(
    receiver: *mut shmring_receiver,
) -> *mut shmring_msg_receiver {
    receiver.cast()
}

/// Stores in `*out` whether a sender holds the other end now (a snapshot).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_BUSY` (read outstanding), `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_is_sender_connected(
    receiver: *mut shmring_receiver,
    out: *mut bool,
) -> c_int {
    let body = |h: &mut SpscReceiver| {
        let out = out_ptr(out, "out")?;
        let connected = h.receiver.is_sender_connected()?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(connected) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(receiver, body) }
}

/// Borrows the next message in place, if there is one now; never blocks.
/// `*out_data` and `*out_len` receive its address and length.
///
/// The bytes stay valid until `shmring_receiver_release` (consumes the message) or
/// `shmring_receiver_unread` (leaves it to be read again); until then every other
/// call on this receiver returns `SHMRING_E_BUSY`, but `shmring_receiver_close`
/// and the message family's `_max_message_len`, `_readiness_fd` and `_wakeups`. A hostile sender could change
/// the bytes while you read them: copy before validating, if that matters.
///
/// Releasing only after processing gives at-least-once delivery: if this process
/// dies before the release, the next receiver gets the message again.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_EMPTY`, `SHMRING_E_DISCONNECTED`,
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_BUSY` (a read is already outstanding),
/// `SHMRING_E_INVALID_ARGUMENT`. On failure `*out_data` is NULL and `*out_len` 0.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_try_read(
    receiver: *mut shmring_receiver,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        read_with(receiver, out_data, out_len, |h: &mut SpscReceiver| {
            h.receiver.try_read().map(lent)
        })
    }
}

/// As `shmring_receiver_try_read`, waiting for a message.
///
/// # Returns
/// As `shmring_receiver_try_read` but `SHMRING_E_EMPTY` (as
/// `shmring_msg_receiver_recv`).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_read(
    receiver: *mut shmring_receiver,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        read_with(receiver, out_data, out_len, |h: &mut SpscReceiver| {
            h.receiver.read().map(lent)
        })
    }
}

/// As `shmring_receiver_read`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT` (as `shmring_msg_receiver_recv_timeout`).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_read_timeout(
    receiver: *mut shmring_receiver,
    timeout_ms: u64,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    let timeout = timeout(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        read_with(receiver, out_data, out_len, |h: &mut SpscReceiver| {
            h.receiver.read_timeout(timeout).map(lent)
        })
    }
}

/// Consumes the outstanding read message (its bytes may be reused by the sender;
/// no later receiver sees it) and wakes a sender waiting for room. Its pointer is
/// invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no read outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_release(receiver: *mut shmring_receiver) -> c_int {
    let body = |h: &mut SpscReceiver, header: &Header| {
        let (data, len) = take_loan(h, header);
        // The same message again: still first in the ring, as nothing consumed it.
        let message = h.receiver.try_read()?;
        if (message.as_ptr() as usize, message.len()) != (data, len) {
            return Err(Failure::new(
                shmring_status::E_CORRUPTED,
                "the message read changed before its release (a hostile sender?): nothing released",
            ));
        }
        message.release();
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call_in(receiver, Access::Borrowed, body) }
}

/// Ends the outstanding read without consuming the message: the next read or
/// receive returns it again. Its pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no read outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_unread(receiver: *mut shmring_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { end_loan::<SpscReceiver>(receiver) }
}

/// Reads up to `max` messages in place, calling `callback(context, data, len)` on
/// each in order, then consumes them all with one publication and wakes a sender
/// waiting for room; never blocks. `*out_count` receives how many were read.
///
/// If this process dies while the callback runs, every message of the call is
/// delivered again to the next receiver.
///
/// # Returns
/// `SHMRING_OK` (at least one message); `SHMRING_E_EMPTY`;
/// `SHMRING_E_DISCONNECTED` (empty and the sender gone); `SHMRING_E_CORRUPTED`;
/// `SHMRING_E_BUSY` (read outstanding, or called from inside a callback);
/// `SHMRING_E_INVALID_ARGUMENT` (NULL callback or out-pointer, `max` 0).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_try_recv_batch(
    receiver: *mut shmring_receiver,
    max: usize,
    callback: shmring_recv_fn,
    context: *mut c_void,
    out_count: *mut usize,
) -> c_int {
    let body = |h: &mut SpscReceiver, header: &Header| {
        let out_count = out_ptr(out_count, "out_count")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_count.write(0) };
        let Some(callback) = callback else {
            return Err(Failure::null("callback"));
        };
        if max == 0 {
            return Err(Failure::invalid("max is 0"));
        }
        let mut each = |message: &[u8]| {
            // SAFETY: the caller vouches for `callback` and `context`; the
            // message's bytes are valid during the call.
            unsafe { callback(context, message.as_ptr(), message.len()) }
        };
        // Calls from the callback see this and stop at the state check.
        header.set_state(State::InCallback);
        // Empty and sender-gone are errors of their own (`Empty`,
        // `Disconnected`), mapped to their codes below.
        let result = h.receiver.try_recv_batch(max, &mut each);
        header.set_state(State::Idle);
        let n = result?;
        if n == 0 {
            return Err(Failure::plain(shmring_status::E_EMPTY));
        }
        // SAFETY: as above.
        unsafe { out_count.write(n) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call_in(receiver, Access::Idle, body) }
}
