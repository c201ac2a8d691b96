//! The address-based transports (`unix:`, `seqpacket:`, `tcp://`, `fifo:`, `mq:`,
//! `shm:`, `file:`) behind one message API: a listener hands out receivers, a
//! sender connects to an address.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{CString, c_char, c_int, c_void};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use shmring::transport::{self, Listener, MessageReceiver, MessageSender};

use crate::handle::{State, Stateful, call};
use crate::status::{Failure, guard, shmring_status};
use crate::{bytes_mut, message_bytes, out_ptr};

/// The longest address accepted (bytes, without the NUL).
const MAX_ADDRESS: usize = libc::PATH_MAX as usize + 16;

/// Where a transport receives: made by `shmring_listen` from an address, it hands
/// out a receiver per sender (`shmring_listener_accept`). Free it with
/// `shmring_listener_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
pub struct shmring_listener {
    state: Cell<State>,
    /// The resolved address, in the form `shmring_connect_sender` takes.
    address: CString,
    listener: UnsafeCell<Listener>,
}

/// The sending end of an address-based transport, made by
/// `shmring_connect_sender`. Free it with `shmring_msg_sender_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
pub struct shmring_msg_sender {
    state: Cell<State>,
    max_message_len: usize,
    sender: UnsafeCell<Box<dyn MessageSender + Send>>,
}

/// The receiving end of an address-based transport, made by
/// `shmring_listener_accept`. Free it with `shmring_msg_receiver_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
pub struct shmring_msg_receiver {
    state: Cell<State>,
    max_message_len: usize,
    receiver: UnsafeCell<Box<dyn MessageReceiver + Send>>,
}

impl std::fmt::Debug for shmring_listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shmring_listener")
            .field("state", &self.state.get())
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for shmring_msg_sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shmring_msg_sender")
            .field("state", &self.state.get())
            .field("max_message_len", &self.max_message_len)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for shmring_msg_receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shmring_msg_receiver")
            .field("state", &self.state.get())
            .field("max_message_len", &self.max_message_len)
            .finish_non_exhaustive()
    }
}

// A handle may move to another thread between calls.
const _: () = {
    const fn send<T: Send>() {}
    send::<shmring_listener>();
    send::<shmring_msg_sender>();
    send::<shmring_msg_receiver>();
};

impl Stateful for shmring_listener {
    const WHAT: &'static str = "listener";
    fn state(&self) -> &Cell<State> {
        &self.state
    }
}

impl Stateful for shmring_msg_sender {
    const WHAT: &'static str = "sender";
    fn state(&self) -> &Cell<State> {
        &self.state
    }
}

impl Stateful for shmring_msg_receiver {
    const WHAT: &'static str = "receiver";
    fn state(&self) -> &Cell<State> {
        &self.state
    }
}

impl shmring_listener {
    fn with_listener<R>(&self, f: impl FnOnce(&mut Listener) -> R) -> Result<R, Failure> {
        self.check_idle()?;
        // SAFETY: these handles are never borrowed and run no callbacks, and one
        // thread at a time calls them (the caller's contract): the only reference
        // while `f` runs.
        Ok(f(unsafe { &mut *self.listener.get() }))
    }
}

impl shmring_msg_sender {
    fn with_sender<R>(
        &self,
        f: impl FnOnce(&mut (dyn MessageSender + Send)) -> R,
    ) -> Result<R, Failure> {
        self.check_idle()?;
        // SAFETY: as in `shmring_listener::with_listener`.
        Ok(f(unsafe { &mut **self.sender.get() }))
    }
}

impl shmring_msg_receiver {
    fn with_receiver<R>(
        &self,
        f: impl FnOnce(&mut (dyn MessageReceiver + Send)) -> R,
    ) -> Result<R, Failure> {
        self.check_idle()?;
        // SAFETY: as in `shmring_listener::with_listener`.
        Ok(f(unsafe { &mut **self.receiver.get() }))
    }
}

/// The deadline `timeout_ms` milliseconds from now; `None` (no limit) when the
/// clock cannot express it (`UINT64_MAX`).
fn deadline(timeout_ms: u64) -> Option<Instant> {
    Instant::now().checked_add(Duration::from_millis(timeout_ms))
}

/// An address from C: UTF-8, non-empty, at most `MAX_ADDRESS` bytes (the Rust
/// library parses the rest).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
unsafe fn c_address<'a>(s: *const c_char) -> Result<&'a str, Failure> {
    if s.is_null() {
        return Err(Failure::null("address"));
    }
    // SAFETY: a NUL-terminated string (the caller's contract): strnlen reads up to
    // its NUL or `MAX_ADDRESS + 1` bytes, whichever comes first.
    let len = unsafe { libc::strnlen(s, MAX_ADDRESS + 1) };
    if len > MAX_ADDRESS {
        return Err(Failure::invalid(format!(
            "address is longer than {MAX_ADDRESS} bytes"
        )));
    }
    // SAFETY: the `len` bytes before the NUL, just measured.
    let bytes = unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|_| {
        Failure::invalid(format!(
            "address {:?} is not UTF-8",
            String::from_utf8_lossy(bytes)
        ))
    })
}

/// Starts receiving at `address` (`"unix:/path"`, `"seqpacket:/path"`,
/// `"tcp://host:port"` (port 0: any free port; `tcp://:port` is 127.0.0.1),
/// `"fifo:/path"`, `"mq:name"`, `"shm:name"`, `"file:/path"`): binds the socket,
/// or creates the FIFO, queue or channel (removed again when the listener and the
/// receiver it gave are closed). `shmring_listener_accept` then gives receivers.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` (NULL, not UTF-8, an unknown scheme,
/// an empty path, a socket path over 107 bytes, a bad port, a path of the wrong
/// file type); `SHMRING_E_INVALID_NAME` (a queue or channel name breaking the name
/// rules); `SHMRING_E_ALREADY_EXISTS`; `SHMRING_E_NO_SPACE` (also a system limit,
/// e.g. on message queues); `SHMRING_E_PERMISSION_DENIED`; `SHMRING_E_IO`.
///
/// # Safety
/// - `address` is NULL or a NUL-terminated string.
/// - `out` is NULL or points to a writable `shmring_listener *`; it receives the
///   new handle (owned by the caller: free it with `shmring_listener_close`), or
///   NULL on failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_listen(
    address: *const c_char,
    out: *mut *mut shmring_listener,
) -> c_int {
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's contract.
        let address = unsafe { c_address(address) }?;
        let listener = transport::listen(address)?;
        let resolved = CString::new(listener.address().to_string())
            .map_err(|_| Failure::invalid("the resolved address contains a NUL byte"))?;
        let handle = Box::new(shmring_listener {
            state: Cell::new(State::Idle),
            address: resolved,
            listener: UnsafeCell::new(listener),
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Copies the address senders connect to (NUL-terminated, in the form
/// `shmring_connect_sender` takes; for `tcp://host:0`, with the port picked) into
/// `buf`. `*out_len` receives its length without the NUL, as `strlen` would: `buf`
/// needs `*out_len + 1` bytes.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_BUFFER_TOO_SMALL` (`buf_len` is at most `*out_len`;
/// nothing written to `buf`); `SHMRING_E_INVALID_ARGUMENT` (NULL `listener` or
/// `out_len`, or NULL `buf` with a non-zero `buf_len`).
///
/// # Safety
/// - `listener` is NULL or a live listener handle.
/// - `buf` is NULL only if `buf_len` is 0, else points to `buf_len` writable bytes.
/// - `out_len` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_listener_address(
    listener: *const shmring_listener,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    let body = |h: &shmring_listener| {
        let out_len = out_ptr(out_len, "out_len")?;
        let address = h.address.as_bytes_with_nul();
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_len.write(address.len() - 1) };
        // SAFETY: the caller's contract on `buf`.
        let buf = unsafe { bytes_mut(buf.cast::<c_void>(), buf_len, "buf") }?;
        if buf.len() < address.len() {
            return Err(Failure::new(
                shmring_status::E_BUFFER_TOO_SMALL,
                format!(
                    "the address needs {} bytes with its NUL, the buffer has {}",
                    address.len(),
                    buf.len()
                ),
            ));
        }
        buf[..address.len()].copy_from_slice(address);
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(listener, body) }
}

/// Waits for the next sender and returns the receiver for it in `*out`, waiting
/// `timeout_ms` milliseconds at most (0: only if one is there now; `UINT64_MAX`:
/// without limit). For a FIFO, queue or channel the listener has one receiver,
/// handed out at once by the first call.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_TIMED_OUT`; `SHMRING_E_ROLE_TAKEN` (a second call on a
/// FIFO, queue or channel listener); `SHMRING_E_IO`; `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// - `listener` is NULL or a live listener handle.
/// - `out` is NULL or points to a writable `shmring_msg_receiver *`; it receives
///   the new handle (owned by the caller: free it with
///   `shmring_msg_receiver_close`), or NULL on failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_listener_accept(
    listener: *mut shmring_listener,
    timeout_ms: u64,
    out: *mut *mut shmring_msg_receiver,
) -> c_int {
    let body = |h: &shmring_listener| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        let receiver = h.with_listener(|l| l.accept_deadline(deadline(timeout_ms)))??;
        let handle = Box::new(shmring_msg_receiver {
            state: Cell::new(State::Idle),
            max_message_len: receiver.max_message_len(),
            receiver: UnsafeCell::new(receiver),
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(listener, body) }
}

/// Frees a handle made by `Box::into_raw`, unless NULL.
///
/// # Safety
/// `ptr` is NULL or made by `Box::into_raw` and not freed yet, not used by any
/// thread during or after this call.
unsafe fn close<H>(ptr: *mut H) -> c_int {
    let Some(ptr) = NonNull::new(ptr) else {
        return shmring_status::OK.code();
    };
    guard(|| {
        // SAFETY: made by `Box::into_raw`, given back by its owner: freed once,
        // here.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
        Ok(())
    })
}

/// Frees a listener: closes its socket, or drops the FIFO, queue or channel it
/// made if no receiver was handed out (a receiver handed out keeps working).
/// Socket paths are removed. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `listener` is NULL or a live listener handle, not used by any thread during or
/// after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_listener_close(listener: *mut shmring_listener) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close(listener) }
}

/// Opens a sender to the receiver at `address` (the forms of `shmring_listen`)
/// and returns it in `*out`. With `timeout_ms` 0 it tries once; otherwise it
/// tries again while nobody receives there yet, for `timeout_ms` milliseconds at
/// most (`UINT64_MAX`: without limit).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_FOUND` (nobody receives there: no such socket,
/// queue or channel, or a refused connection) when `timeout_ms` is 0;
/// `SHMRING_E_TIMED_OUT` when nobody came within a non-zero timeout;
/// `SHMRING_E_INVALID_ARGUMENT` (as `shmring_listen`); `SHMRING_E_INVALID_NAME`;
/// `SHMRING_E_PERMISSION_DENIED`; `SHMRING_E_ROLE_TAKEN` (a channel's sender is
/// taken); `SHMRING_E_IO`.
///
/// # Safety
/// - `address` is NULL or a NUL-terminated string.
/// - `out` is NULL or points to a writable `shmring_msg_sender *`; it receives the
///   new handle (owned by the caller: free it with `shmring_msg_sender_close`), or
///   NULL on failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connect_sender(
    address: *const c_char,
    timeout_ms: u64,
    out: *mut *mut shmring_msg_sender,
) -> c_int {
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's contract.
        let address = unsafe { c_address(address) }?;
        let sender = if timeout_ms == 0 {
            transport::connect_sender(address)?
        } else {
            transport::connect_sender_timeout(address, Duration::from_millis(timeout_ms))?
        };
        let handle = Box::new(shmring_msg_sender {
            state: Cell::new(State::Idle),
            max_message_len: sender.max_message_len(),
            sender: UnsafeCell::new(sender),
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Frees a sender; its receiver sees `SHMRING_E_DISCONNECTED` once it has
/// received everything sent. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `sender` is NULL or a live sender handle, not used by any thread during or
/// after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_msg_sender_close(sender: *mut shmring_msg_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close(sender) }
}

/// Stores the largest message the transport carries in `*out`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `sender` is NULL or a live sender handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_sender_max_message_len(
    sender: *const shmring_msg_sender,
    out: *mut usize,
) -> c_int {
    let body = |h: &shmring_msg_sender| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(h.max_message_len) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(sender, body) }
}

/// The common body of the sends.
///
/// # Safety
/// As the exported functions.
unsafe fn send_with<E>(
    sender: *mut shmring_msg_sender,
    data: *const c_void,
    len: usize,
    send: impl FnOnce(&mut (dyn MessageSender + Send), &[u8]) -> Result<(), E>,
) -> c_int
where
    Failure: From<E>,
{
    let body = |h: &shmring_msg_sender| {
        // SAFETY: the caller's contract on `data` and `len`.
        let message = unsafe { message_bytes(data, len, h.max_message_len) }?;
        Ok(h.with_sender(|s| send(s, message))??)
    };
    // SAFETY: delegated to the caller.
    unsafe { call(sender, body) }
}

/// Sends `len` bytes at `data` as one message if that can be done now without
/// blocking.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_FULL`; `SHMRING_E_DISCONNECTED` (the receiver has
/// gone); `SHMRING_E_MESSAGE_TOO_LARGE`; `SHMRING_E_IO`;
/// `SHMRING_E_INVALID_ARGUMENT`. On the stream transports (Unix stream sockets,
/// TCP, FIFOs) a message the kernel took only part of is accepted (`SHMRING_OK`)
/// and its rest written by the next call.
///
/// # Safety
/// - `sender` is NULL or a live sender handle.
/// - `data` is NULL only if `len` is 0, else points to `len` readable bytes.
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

/// As `shmring_msg_sender_try_send`, waiting for room as long as it takes
/// instead of returning `SHMRING_E_FULL`.
///
/// # Safety
/// As `shmring_msg_sender_try_send`.
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
/// `SHMRING_E_TIMED_OUT` (`UINT64_MAX`: without limit).
///
/// # Safety
/// As `shmring_msg_sender_try_send`.
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

/// Frees a receiver (and the queue, channel or FIFO its listener made, once the
/// listener is closed too). Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `receiver` is NULL or a live receiver handle, not used by any thread during or
/// after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_msg_receiver_close(receiver: *mut shmring_msg_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close(receiver) }
}

/// Stores the largest message the transport carries in `*out`: a receive buffer
/// this long never gets `SHMRING_E_BUFFER_TOO_SMALL`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `receiver` is NULL or a live receiver handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_max_message_len(
    receiver: *const shmring_msg_receiver,
    out: *mut usize,
) -> c_int {
    let body = |h: &shmring_msg_receiver| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(h.max_message_len) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(receiver, body) }
}

/// The common body of the receives.
///
/// # Safety
/// As the exported functions.
unsafe fn recv_with<E>(
    receiver: *mut shmring_msg_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    recv: impl FnOnce(&mut (dyn MessageReceiver + Send), &mut [u8]) -> Result<usize, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    let body = |h: &shmring_msg_receiver| {
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

/// Copies the next message into `buf`, if there is one now; never blocks.
/// `*out_len` receives its length.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_EMPTY`; `SHMRING_E_DISCONNECTED` (the sender has gone
/// and everything it sent was received); `SHMRING_E_BUFFER_TOO_SMALL` (`*out_len`
/// is the length needed; nothing is consumed: the message stays for the next
/// call); `SHMRING_E_CORRUPTED` (a stream peer sent a
/// frame longer than the largest message: every later call fails too);
/// `SHMRING_E_IO`; `SHMRING_E_INVALID_ARGUMENT`. `*out_len` is 0 after other
/// failures.
///
/// # Safety
/// - `receiver` is NULL or a live receiver handle.
/// - `buf` is NULL only if `buf_len` is 0, else points to `buf_len` writable bytes.
/// - `out_len` is NULL or writable.
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

/// As `shmring_msg_receiver_try_recv`, waiting for a message as long as it takes
/// instead of returning `SHMRING_E_EMPTY`.
///
/// # Safety
/// As `shmring_msg_receiver_try_recv`.
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
/// `SHMRING_E_TIMED_OUT` (`UINT64_MAX`: without limit).
///
/// # Safety
/// As `shmring_msg_receiver_try_recv`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_msg_receiver_recv_timeout(
    receiver: *mut shmring_msg_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    timeout_ms: u64,
) -> c_int {
    let deadline = deadline(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        recv_with(receiver, buf, buf_len, out_len, |r, b| {
            r.recv_deadline(b, deadline)
        })
    }
}
