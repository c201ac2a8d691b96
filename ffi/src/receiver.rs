//! The receiving side: copying receives, zero-copy reads, batches.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::time::Duration;

use shmring::{Received, Receiver};

use crate::channel::{channel_ref, shmring_channel};
use crate::handle::{State, Stateful, call, in_callback};
use crate::out_ptr;
use crate::readiness::{WakeupsInfo, readiness_code, shmring_wakeups, value_or_code};
use crate::status::{Failure, guard, shmring_status};

/// The receiving side of a channel (one per channel at a time, across all
/// processes). Make it with `shmring_receiver_new`, free it with
/// `shmring_receiver_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
pub struct shmring_receiver {
    state: Cell<State>,
    /// Cached: readable in every state.
    max_message_len: usize,
    /// Cached (fixed for the endpoint's life): readable in every state. The
    /// descriptor is owned by `receiver`.
    readiness_fd: c_int,
    /// Cached, as `readiness_fd`.
    wakeups: WakeupsInfo,
    /// The outstanding read (state `Borrowed`). Its `'static` borrow of `receiver`
    /// is kept honest by the state flag: it is taken out (release, unread, close)
    /// before `receiver` is used again or dropped. Declared first: dropped first.
    read: UnsafeCell<Option<Received<'static>>>,
    receiver: UnsafeCell<Receiver>,
}

impl std::fmt::Debug for shmring_receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shmring_receiver")
            .field("state", &self.state.get())
            .field("max_message_len", &self.max_message_len)
            .field("readiness_fd", &self.readiness_fd)
            .field("wakeups", &self.wakeups)
            .finish_non_exhaustive()
    }
}

// A handle may move to another thread between calls.
const _: () = {
    const fn send<T: Send>() {}
    send::<shmring_receiver>();
};

impl Stateful for shmring_receiver {
    const WHAT: &'static str = "receiver";
    fn state(&self) -> &Cell<State> {
        &self.state
    }
}

/// The callback of `shmring_receiver_try_recv_batch`: called once per message, in
/// order, with the caller's `context` and the message's `len` bytes at `data`
/// (valid during the call only). It must not unwind or `longjmp` out; calls on the
/// same receiver from inside it return `SHMRING_E_BUSY`.
pub type shmring_recv_fn =
    Option<unsafe extern "C" fn(context: *mut c_void, data: *const u8, len: usize)>;

impl shmring_receiver {
    /// Runs `f` on the endpoint if no read or callback holds it.
    fn with_receiver<R>(&self, f: impl FnOnce(&mut Receiver) -> R) -> Result<R, Failure> {
        self.check_idle()?;
        // SAFETY: Idle: no read borrows the receiver and no other call on this
        // handle is running (one thread at a time, the caller's contract; calls
        // from a batch callback see `InCallback` and stop above). So this is the
        // only reference while `f` runs.
        Ok(f(unsafe { &mut *self.receiver.get() }))
    }

    /// Makes a read with `make`, keeps it, and stores its address and length.
    fn borrow(
        &self,
        out_data: *mut *const u8,
        out_len: *mut usize,
        make: impl FnOnce(&'static mut Receiver) -> shmring::Result<Received<'static>>,
    ) -> Result<(), Failure> {
        let out_data = out_ptr(out_data, "out_data")?;
        let out_len = out_ptr(out_len, "out_len")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe {
            out_data.write(std::ptr::null());
            out_len.write(0);
        }
        self.check_idle()?;
        // SAFETY: Idle, as in `with_receiver`: the only reference. The `'static`
        // lifetime is the state flag's promise: the message read through it is
        // stored in `self.read` with the state `Borrowed` until it is taken out
        // again (release, unread, close), and nothing else touches
        // `self.receiver` meanwhile.
        let receiver: &'static mut Receiver = unsafe { &mut *self.receiver.get() };
        let message = make(receiver)?;
        let (data, len) = (message.as_ptr(), message.len());
        // SAFETY: Idle until the next line: nothing else refers to the cell.
        unsafe { *self.read.get() = Some(message) };
        self.state.set(State::Borrowed);
        // SAFETY: as above.
        unsafe {
            out_data.write(data);
            out_len.write(len);
        }
        Ok(())
    }

    /// Releases the outstanding read (`true`) or leaves it in the ring (`false`).
    fn finish(&self, release: bool) -> Result<(), Failure> {
        match self.state.get() {
            State::Borrowed => {}
            State::Idle => {
                return Err(Failure::new(
                    shmring_status::E_NOT_BORROWED,
                    "no read is outstanding on this receiver",
                ));
            }
            State::InCallback => return Err(in_callback(Self::WHAT)),
            State::Poisoned => return self.check_idle(),
        }
        // SAFETY: Borrowed: the cell holds the message, and this call is the only
        // one on the handle.
        let message = unsafe { (*self.read.get()).take() };
        self.state.set(State::Idle);
        if let (true, Some(message)) = (release, message) {
            message.release();
        }
        Ok(())
    }
}

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
/// - `channel` is NULL or a live channel handle.
/// - `out` is NULL or points to a writable `shmring_receiver *`; it receives the
///   new handle (owned by the caller: free it with `shmring_receiver_close`), or
///   NULL on failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_new(
    channel: *const shmring_channel,
    out: *mut *mut shmring_receiver,
) -> c_int {
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's contract.
        let channel = unsafe { channel_ref(channel) }?;
        let receiver = channel.channel.receiver()?;
        let handle = Box::new(shmring_receiver {
            state: Cell::new(State::Idle),
            max_message_len: receiver.max_message_len(),
            readiness_fd: receiver.readiness_fd().as_raw_fd(),
            wakeups: WakeupsInfo::new(receiver.wakeups()),
            read: UnsafeCell::new(None),
            receiver: UnsafeCell::new(receiver),
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
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
/// `receiver` is NULL or a live receiver handle, not used by any thread during or
/// after this call (but for the refused call from its own callback). Pointers
/// from an outstanding read become invalid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_receiver_close(receiver: *mut shmring_receiver) -> c_int {
    let Some(ptr) = NonNull::new(receiver) else {
        return shmring_status::OK.code();
    };
    guard(|| {
        // SAFETY: a live handle (the caller's contract); a shared reference, as
        // the batch call that may be running holds.
        let handle = unsafe { ptr.as_ref() };
        if handle.state.get() == State::InCallback {
            return Err(in_callback(shmring_receiver::WHAT));
        }
        // SAFETY: no other call is running on the handle (checked above for the
        // callback; the caller's contract otherwise): the cell is ours. The read
        // borrows the receiver, so it goes first.
        unsafe { *handle.read.get() = None };
        // SAFETY: made by `Box::into_raw` in `shmring_receiver_new`, given back by
        // its owner: freed once, here.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
        Ok(())
    })
}

/// Stores the largest message the channel takes in `*out`: a receive buffer this
/// long never gets `SHMRING_E_BUFFER_TOO_SMALL`. Allowed while a read is
/// outstanding.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `receiver` is NULL or a live receiver handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_max_message_len(
    receiver: *const shmring_receiver,
    out: *mut usize,
) -> c_int {
    let body = |h: &shmring_receiver| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(h.max_message_len) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(receiver, body) }
}

/// Stores in `*out` whether a sender holds the other end now (a snapshot).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_BUSY` (read outstanding), `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `receiver` is NULL or a live receiver handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_is_sender_connected(
    receiver: *mut shmring_receiver,
    out: *mut bool,
) -> c_int {
    let body = |h: &shmring_receiver| {
        let out = out_ptr(out, "out")?;
        let connected = h.with_receiver(|r| r.is_sender_connected())??;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(connected) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(receiver, body) }
}

/// The receiver's readiness descriptor, for `epoll`, `poll` or `select`: it becomes
/// readable (`EPOLLIN`, or `EPOLLHUP`) after `shmring_receiver_arm_for_message`
/// returned `SHMRING_ARMED`, when a message arrives, when the sender goes (closes
/// or dies: then `shmring_receiver_try_recv` drains what it committed and returns
/// `SHMRING_E_DISCONNECTED`), or every 25 ms for a polled receiver
/// (`shmring_receiver_wakeups`).
///
/// The descriptor belongs to the receiver: the same for the handle's life, closed
/// by `shmring_receiver_close` (remove it from your `epoll` set first). Never read
/// it (arming drains it) and never close it. Allowed while a read is outstanding.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_INVALID_ARGUMENT` for a NULL `receiver`.
///
/// # Safety
/// `receiver` is NULL or a live receiver handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_readiness_fd(receiver: *const shmring_receiver) -> c_int {
    value_or_code(|fd| {
        let body = |h: &shmring_receiver| {
            *fd = h.readiness_fd;
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(receiver, body) }
    })
}

/// Arms the readiness descriptor (`shmring_receiver_readiness_fd`) for the next
/// message. Never blocks; with nobody armed, sending and receiving make no system
/// call for it.
///
/// The loop: when the descriptor is readable, receive with
/// `shmring_receiver_try_recv` until `SHMRING_E_EMPTY`, then arm: on
/// `SHMRING_READY` receive again, on `SHMRING_ARMED` go back to the event loop.
///
/// # Returns
/// `SHMRING_READY` (1): a message is there now, or the sender has gone (the next
/// receive says which); `SHMRING_ARMED` (2): the descriptor becomes readable when
/// that may have changed; or a negative code: `SHMRING_E_BUSY` (read
/// outstanding), `SHMRING_E_IO` (draining the descriptor or the liveness probe
/// failed), `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `receiver` is NULL or a live receiver handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_arm_for_message(
    receiver: *mut shmring_receiver,
) -> c_int {
    value_or_code(|readiness| {
        let body = |h: &shmring_receiver| {
            *readiness = readiness_code(h.with_receiver(Receiver::arm_for_message)??);
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(receiver, body) }
    })
}

/// Stores in `*out` how the readiness descriptor is woken: `SHMRING_WAKEUPS_DOORBELL`
/// (by the sender) or `SHMRING_WAKEUPS_POLLED` (every 25 ms while armed, where no
/// doorbell could be shared). If `out_reason` is not NULL, `*out_reason` receives
/// why it is polled (`""` for a doorbell): a NUL-terminated string owned by the
/// receiver, valid until `shmring_receiver_close`. Fixed for the handle's life;
/// allowed while a read is outstanding.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` for a NULL `receiver` or `out`.
///
/// # Safety
/// `receiver` is NULL or a live receiver handle; `out` and `out_reason` are NULL
/// or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_wakeups(
    receiver: *const shmring_receiver,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract on `out` and `out_reason`.
    let body = |h: &shmring_receiver| unsafe { h.wakeups.write(out, out_reason) };
    // SAFETY: the caller's contract.
    unsafe { call(receiver, body) }
}

/// The common body of the copying receives.
///
/// # Safety
/// As the exported functions.
unsafe fn recv_with<E>(
    receiver: *mut shmring_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    recv: impl FnOnce(&mut Receiver, &mut [u8]) -> Result<usize, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    let body = |h: &shmring_receiver| {
        // SAFETY: the caller's contract on `buf`, `buf_len` and `out_len`.
        unsafe {
            crate::receive_into(buf, buf_len, out_len, |b| {
                h.with_receiver(|r| recv(r, b).map_err(shmring::Error::from))
            })
        }
    };
    // SAFETY: delegated to the caller.
    unsafe { call(receiver, body) }
}

/// Copies the next message into `buf` and consumes it, if there is one now; never
/// blocks. `*out_len` receives its length.
///
/// `buf` may be NULL with `buf_len` 0: a probe that consumes only an empty message
/// and otherwise reports the next one's length (`SHMRING_E_BUFFER_TOO_SMALL`).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_EMPTY`; `SHMRING_E_DISCONNECTED` (empty, and the sender
/// has gone after everything it committed was received); `SHMRING_E_BUFFER_TOO_SMALL`
/// (nothing consumed; `*out_len` is the length needed); `SHMRING_E_CORRUPTED`;
/// `SHMRING_E_BUSY` (read outstanding); `SHMRING_E_INVALID_ARGUMENT`. `*out_len`
/// is 0 after other failures.
///
/// # Safety
/// - `receiver` is NULL or a live receiver handle.
/// - `buf` is NULL only if `buf_len` is 0, else points to `buf_len` writable bytes.
/// - `out_len` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_try_recv(
    receiver: *mut shmring_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { recv_with(receiver, buf, buf_len, out_len, |r, b| r.try_recv(b)) }
}

/// As `shmring_receiver_try_recv`, waiting for a message (by the wait strategy)
/// instead of returning `SHMRING_E_EMPTY`. A receiver whose sender has not attached
/// yet waits for it.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_DISCONNECTED` once the sender has gone and everything
/// it committed was received; the other codes of `shmring_receiver_try_recv` but
/// `SHMRING_E_EMPTY`.
///
/// # Safety
/// As `shmring_receiver_try_recv`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_recv(
    receiver: *mut shmring_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { recv_with(receiver, buf, buf_len, out_len, |r, b| r.recv(b)) }
}

/// As `shmring_receiver_recv`, giving up after `timeout_ms` milliseconds
/// (relative, monotonic clock) with `SHMRING_E_TIMED_OUT`. 0 gives up as soon as
/// the call would wait (after a brief spin); a timeout too large for the clock
/// (`UINT64_MAX`) waits without limit.
///
/// # Safety
/// As `shmring_receiver_try_recv`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_recv_timeout(
    receiver: *mut shmring_receiver,
    buf: *mut c_void,
    buf_len: usize,
    timeout_ms: u64,
    out_len: *mut usize,
) -> c_int {
    let timeout = Duration::from_millis(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        recv_with(receiver, buf, buf_len, out_len, |r, b| {
            r.recv_timeout(b, timeout)
        })
    }
}

/// The common body of the read calls.
///
/// # Safety
/// As the exported functions.
unsafe fn read_with<E>(
    receiver: *mut shmring_receiver,
    out_data: *mut *const u8,
    out_len: *mut usize,
    make: impl FnOnce(&'static mut Receiver) -> Result<Received<'static>, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    // SAFETY: delegated to the caller.
    unsafe {
        call(receiver, |h| {
            h.borrow(out_data, out_len, |r| make(r).map_err(shmring::Error::from))
        })
    }
}

/// Borrows the next message in place, if there is one now; never blocks.
/// `*out_data` and `*out_len` receive its address and length.
///
/// The bytes stay valid until `shmring_receiver_release` (consumes the message) or
/// `shmring_receiver_unread` (leaves it to be read again); until then every other
/// call on this receiver but `shmring_receiver_max_message_len` and
/// `shmring_receiver_close` returns `SHMRING_E_BUSY`. A hostile sender could change
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
/// - `receiver` is NULL or a live receiver handle.
/// - `out_data` and `out_len` are NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_try_read(
    receiver: *mut shmring_receiver,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { read_with(receiver, out_data, out_len, |r| r.try_read()) }
}

/// As `shmring_receiver_try_read`, waiting for a message.
///
/// # Returns
/// As `shmring_receiver_recv`, without `SHMRING_E_BUFFER_TOO_SMALL`.
///
/// # Safety
/// As `shmring_receiver_try_read`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_read(
    receiver: *mut shmring_receiver,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { read_with(receiver, out_data, out_len, |r| r.read()) }
}

/// As `shmring_receiver_read`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT` (as `shmring_receiver_recv_timeout`).
///
/// # Safety
/// As `shmring_receiver_try_read`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_read_timeout(
    receiver: *mut shmring_receiver,
    timeout_ms: u64,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    let timeout = Duration::from_millis(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { read_with(receiver, out_data, out_len, |r| r.read_timeout(timeout)) }
}

/// Consumes the outstanding read message (its bytes may be reused by the sender;
/// no later receiver sees it) and wakes a sender waiting for room. Its pointer is
/// invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no read outstanding).
///
/// # Safety
/// `receiver` is NULL or a live receiver handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_release(receiver: *mut shmring_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call(receiver, |h| h.finish(true)) }
}

/// Ends the outstanding read without consuming the message: the next read or
/// receive returns it again. Its pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no read outstanding).
///
/// # Safety
/// `receiver` is NULL or a live receiver handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_unread(receiver: *mut shmring_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call(receiver, |h| h.finish(false)) }
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
/// - `receiver` is NULL or a live receiver handle.
/// - `callback` is NULL or a function that is safe to call with `context` and any
///   message; it must not unwind or `longjmp` out.
/// - `out_count` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_receiver_try_recv_batch(
    receiver: *mut shmring_receiver,
    max: usize,
    callback: shmring_recv_fn,
    context: *mut c_void,
    out_count: *mut usize,
) -> c_int {
    let body = |h: &shmring_receiver| {
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
        let result = h.with_receiver(|r| {
            // Calls from the callback see this and stop at the state check.
            h.state.set(State::InCallback);
            // Empty and sender-gone are errors of their own (`Empty`,
            // `Disconnected`), mapped to their codes below.
            let result = r.try_recv_batch(max, &mut each);
            h.state.set(State::Idle);
            result
        })?;
        let n = result?;
        if n == 0 {
            return Err(Failure::plain(shmring_status::E_EMPTY));
        }
        // SAFETY: as above.
        unsafe { out_count.write(n) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(receiver, body) }
}
