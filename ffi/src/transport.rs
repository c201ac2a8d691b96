//! The address-based transports (`unix:`, `seqpacket:`, `tcp://`, `fifo:`, `mq:`,
//! `shm:`, `file:`) behind one message API: a listener hands out receivers, a
//! sender connects to an address.

use std::ffi::{CString, c_char, c_int, c_void};

use shmring::transport::{self, MessageReceiver, MessageSender};

use crate::handle::{
    Kind, bytes_mut, c_string, c_utf8, call, close, construct, deadline, out_ptr, timeout,
};
use crate::message::{Endpoint, Receiving, Sending, shmring_msg_receiver, shmring_msg_sender};
use crate::status::{Failure, shmring_status};

/// The longest address accepted (bytes, without the NUL).
const MAX_ADDRESS: usize = libc::PATH_MAX as usize + 16;

/// Where a transport receives: made by `shmring_listen` from an address, it hands
/// out a receiver per sender (`shmring_listener_accept`). Free it with
/// `shmring_listener_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_listener {
    _opaque: [u8; 0],
}

/// The value of a `shmring_listener` handle.
#[derive(Debug)]
pub(crate) struct TransportListener {
    /// The resolved address, in the form `shmring_connect_sender` takes.
    address: CString,
    listener: transport::TransportListener,
}

/// The value of a `shmring_msg_sender` handle made by `shmring_connect_sender`.
pub(crate) struct TransportSender(Box<dyn MessageSender + Send>);

/// The value of a `shmring_msg_receiver` handle made by `shmring_listener_accept`.
pub(crate) struct TransportReceiver(Box<dyn MessageReceiver + Send>);

impl Kind for TransportListener {
    type C = shmring_listener;
    const WHAT: &'static str = "listener";
}

impl Kind for TransportSender {
    type C = shmring_msg_sender;
    const WHAT: &'static str = "transport sender";
    const ENDPOINT: bool = true;
}

impl Kind for TransportReceiver {
    type C = shmring_msg_receiver;
    const WHAT: &'static str = "transport receiver";
    const ENDPOINT: bool = true;
}

impl Endpoint for TransportListener {}

impl Endpoint for TransportSender {
    fn sending(&mut self) -> Option<&mut dyn Sending> {
        Some(self)
    }
}

impl Endpoint for TransportReceiver {
    fn receiving(&mut self) -> Option<&mut dyn Receiving> {
        Some(self)
    }
}

impl Sending for TransportSender {
    fn sender(&mut self) -> &mut dyn MessageSender {
        &mut *self.0
    }
}

impl Receiving for TransportReceiver {
    fn receiver(&mut self) -> &mut dyn MessageReceiver {
        &mut *self.0
    }
}

/// An address from C: UTF-8, at most `MAX_ADDRESS` bytes (the Rust library
/// parses the rest); `SHMRING_E_INVALID_ARGUMENT` otherwise.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
unsafe fn c_address<'a>(s: *const c_char) -> Result<&'a str, Failure> {
    let invalid = shmring_status::E_INVALID_ARGUMENT;
    // SAFETY: delegated to the caller.
    let bytes = unsafe { c_string(s, "address", MAX_ADDRESS, invalid) }?;
    c_utf8(bytes, "address", invalid)
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_listen(
    address: *const c_char,
    out: *mut *mut shmring_listener,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let listener = transport::listen(unsafe { c_address(address) }?)?;
        let address = CString::new(listener.address().to_string())
            .map_err(|_| Failure::invalid("the resolved address contains a NUL byte"))?;
        Ok(TransportListener { address, listener })
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_listener_address(
    listener: *const shmring_listener,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    let body = |h: &mut TransportListener| {
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_listener_accept(
    listener: *mut shmring_listener,
    timeout_ms: u64,
    out: *mut *mut shmring_msg_receiver,
) -> c_int {
    let body = |h: &mut TransportListener| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        let receiver = h.listener.accept_deadline(deadline(timeout_ms))?;
        let handle = crate::handle::new_handle(TransportReceiver(receiver));
        // SAFETY: as above.
        unsafe { out.write(handle) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(listener, body) }
}

/// Frees a listener: closes its socket, or drops the FIFO, queue or channel it
/// made if no receiver was handed out (a receiver handed out keeps working).
/// Socket paths are removed. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_listener_close(listener: *mut shmring_listener) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<TransportListener>(listener) }
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connect_sender(
    address: *const c_char,
    timeout_ms: u64,
    out: *mut *mut shmring_msg_sender,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let address = unsafe { c_address(address) }?;
        Ok(TransportSender(if timeout_ms == 0 {
            transport::connect_sender(address)?
        } else {
            transport::connect_sender_timeout(address, timeout(timeout_ms))?
        }))
    })
}

/// Frees a sender made by `shmring_connect_sender`; its receiver sees
/// `SHMRING_E_DISCONNECTED` once it has received everything sent. Closing NULL
/// does nothing; a view of another handle (`shmring_*_as_msg_sender`) is refused
/// with `SHMRING_E_INVALID_ARGUMENT` (close that handle).
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_msg_sender_close(sender: *mut shmring_msg_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<TransportSender>(sender) }
}

/// Frees a receiver (and the queue, channel or FIFO its listener made, once the
/// listener is closed too). Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_msg_receiver_close(receiver: *mut shmring_msg_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<TransportReceiver>(receiver) }
}
