//! Request/response over two channels (`shmring::rpc`): a client sends a request
//! and waits for the matching response; a server answers requests with a C
//! handler.
//!
//! Both sides are made from two channel handles: the client claims the sender of
//! the request channel and the receiver of the response channel, the server the
//! other two ends. The wire format, the ids that match responses to calls, and
//! what happens to late responses are those of the Rust library (module
//! `shmring::rpc`; docs/design/rpc.md).

use std::ffi::{c_int, c_void};

use shmring::rpc::{HEADER_LEN, RpcClient, RpcServer};
use shmring::transport::{MessageReceiver, MessageSender};

use crate::channel::{Spsc, shmring_channel};
use crate::handle::{
    Access, Header, Kind, State, bytes_mut, call_in, call_ref, clear, close, construct, deadline,
    message_bytes, out_ptr, shared, write_out,
};
use crate::message::Endpoint;
use crate::status::{Failure, shmring_status};

/// The calling side of request/response. Make it with `shmring_rpc_client_new`,
/// free it with `shmring_rpc_client_close`.
///
/// Unlike the other handles, a client may be used by several threads at once:
/// each `shmring_rpc_call` gets its own response (calls in flight at once are told
/// apart by ids). Only `shmring_rpc_client_close` must run alone.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_rpc_client {
    _opaque: [u8; 0],
}

/// The answering side of request/response. Make it with `shmring_rpc_server_new`,
/// free it with `shmring_rpc_server_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_rpc_server {
    _opaque: [u8; 0],
}

/// The value of a `shmring_rpc_client` handle. Shared (`call_ref` only).
#[derive(Debug)]
pub(crate) struct Client {
    client: RpcClient,
    /// The longest response: the response channel's largest message less the
    /// header.
    max_response_len: usize,
}

/// The value of a `shmring_rpc_server` handle.
pub(crate) struct Server {
    /// The buffer the handler writes its response (or error message) into:
    /// `max_response_len` bytes, initialised once.
    response: Vec<u8>,
    server: RpcServer,
}

impl Kind for Client {
    type C = shmring_rpc_client;
    const WHAT: &'static str = "rpc client";
}

impl Kind for Server {
    type C = shmring_rpc_server;
    const WHAT: &'static str = "rpc server";
}

impl Endpoint for Client {}
impl Endpoint for Server {}

// A client is shared between threads; a server may move to another thread between
// calls.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Client>();
    send::<Server>();
};

/// The handler of `shmring_rpc_serve_one`, called once per request with:
///
/// - `context`: the pointer given to `shmring_rpc_serve_one`, untouched;
/// - `request`, `request_len`: the request's bytes, valid during the call only
///   (`request` is never NULL, even when `request_len` is 0);
/// - `response`, `response_cap`: a buffer of the library's, `response_cap` bytes
///   (the server's `shmring_rpc_server_max_response_len`), valid during the call
///   only, to write the response into;
/// - `response_len`: where the handler stores how many bytes of `response` it
///   wrote (0 when it does not store anything).
///
/// Return 0 to send `response[0 .. *response_len]` as the response. Return any
/// other value to send an error response instead: `response[0 .. *response_len]`
/// is then the error message (UTF-8, no NUL needed; invalid UTF-8 is replaced),
/// which the client's call returns as `SHMRING_E_REMOTE` with the message in
/// `shmring_last_error_message`.
///
/// The handler must not unwind (a C++ exception) or `longjmp` out, and must not
/// write beyond `response_cap` bytes. A `*response_len` above `response_cap` is
/// not trusted: the client gets an error response, and `shmring_rpc_serve_one`
/// returns `SHMRING_E_INVALID_ARGUMENT`. Calls on the same server from inside the
/// handler return `SHMRING_E_BUSY`; other handles (a client, a channel) may be
/// used.
pub type shmring_rpc_handler_fn = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        request: *const u8,
        request_len: usize,
        response: *mut u8,
        response_cap: usize,
        response_len: *mut usize,
    ) -> c_int,
>;

/// Makes a client on `requests` (sending) and `responses` (receiving) and returns
/// it in `*out`. The channels are not consumed: the client claims the sender of
/// `requests` and the receiver of `responses` and keeps both segments mapped, so
/// both channel handles may be closed right after. Waiting for a response uses the
/// response channel's wait strategy.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_ROLE_TAKEN` (either role is held by another live
/// endpoint; nothing is claimed then); `SHMRING_E_UNSUPPORTED`,
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_IO` (as `shmring_sender_new`);
/// `SHMRING_E_INVALID_ARGUMENT` (a NULL pointer).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_rpc_client_new(
    requests: *const shmring_channel,
    responses: *const shmring_channel,
    out: *mut *mut shmring_rpc_client,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let (requests, responses) =
            unsafe { (shared::<Spsc>(requests)?, shared::<Spsc>(responses)?) };
        let sender = requests.channel.sender()?;
        let receiver = responses.channel.receiver()?;
        let max_response_len =
            MessageReceiver::max_message_len(&receiver).saturating_sub(HEADER_LEN);
        Ok(Client {
            client: RpcClient::new(sender, receiver),
            max_response_len,
        })
    })
}

/// Frees a client and gives up both roles; the server then sees
/// `SHMRING_E_DISCONNECTED`. Responses still on their way are dropped. Closing
/// NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_rpc_client_close(client: *mut shmring_rpc_client) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Client>(client) }
}

/// Stores the longest request the client sends in `*out`: the request channel's
/// largest message less the 16-byte header.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_rpc_client_max_request_len(
    client: *const shmring_rpc_client,
    out: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(client, |c: &Client| {
            write_out(out, "out", c.client.max_request_len())
        })
    }
}

/// Stores the longest response the client can receive in `*out`: the response
/// channel's largest message less the 16-byte header. A response buffer this
/// long never gets `SHMRING_E_BUFFER_TOO_SMALL`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_rpc_client_max_response_len(
    client: *const shmring_rpc_client,
    out: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(client, |c: &Client| {
            write_out(out, "out", c.max_response_len)
        })
    }
}

/// Sends the `request_len` bytes at `request` as a request and waits
/// `timeout_ms` milliseconds at most (`UINT64_MAX`: without limit; 0: sends if
/// that does not block, and takes a response only if it is already there) for its
/// response, which is copied into `response`; `*response_len` receives its
/// length. Thread-safe: several threads may call the same client at once, and
/// each gets the response to its own request.
///
/// # Returns
/// - `SHMRING_OK`: `response[0 .. *response_len]` is the response.
/// - `SHMRING_E_REMOTE`: the server's handler failed; `shmring_last_error_message`
///   has its message.
/// - `SHMRING_E_BUFFER_TOO_SMALL`: the response is longer than `response_cap`;
///   `*response_len` is its length. Unlike a channel receive, the response is
///   **lost** (the server did the work; the call is over). Size the buffer with
///   `shmring_rpc_client_max_response_len` to never see this.
/// - `SHMRING_E_TIMED_OUT`: no response in time (or no room to send). A response
///   that comes later is dropped: the client never hands it to another call.
/// - `SHMRING_E_DISCONNECTED`: the server has gone (now or earlier); every later
///   call fails the same way: make a new client.
/// - `SHMRING_E_CORRUPTED`: the server sent a message that breaks the wire format;
///   every later call fails the same way.
/// - `SHMRING_E_MESSAGE_TOO_LARGE`: `request_len` is above
///   `shmring_rpc_client_max_request_len` (nothing sent).
/// - `SHMRING_E_IO`; `SHMRING_E_INVALID_ARGUMENT` (NULL `client` or
///   `response_len`, NULL `request` or `response` with a non-zero length).
///
/// `*response_len` is 0 after a failure but `SHMRING_E_BUFFER_TOO_SMALL`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_rpc_call(
    client: *const shmring_rpc_client,
    request: *const c_void,
    request_len: usize,
    response: *mut c_void,
    response_cap: usize,
    response_len: *mut usize,
    timeout_ms: u64,
) -> c_int {
    let deadline = deadline(timeout_ms);
    let body = |client: &Client| {
        let response_len = out_ptr(response_len, "response_len")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { response_len.write(0) };
        // SAFETY: the caller's contract on `response`.
        let buf = unsafe { bytes_mut(response, response_cap, "response") }?;
        let max = client.client.max_request_len();
        // SAFETY: the caller's contract on `request`.
        let request = unsafe { message_bytes(request, request_len, max) }?;
        let reply = client.client.call_deadline(request, deadline)?;
        if reply.len() > buf.len() {
            // SAFETY: as above.
            unsafe { response_len.write(reply.len()) };
            return Err(Failure::new(
                shmring_status::E_BUFFER_TOO_SMALL,
                format!(
                    "the response of {} bytes does not fit the buffer of {}: it is lost \
                     (size the buffer with shmring_rpc_client_max_response_len)",
                    reply.len(),
                    buf.len()
                ),
            ));
        }
        buf[..reply.len()].copy_from_slice(&reply);
        // SAFETY: as above.
        unsafe { response_len.write(reply.len()) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe {
        clear(response_len);
        call_ref(client, body)
    }
}

/// Makes a server on `requests` (receiving) and `responses` (sending) and returns
/// it in `*out`. The channels are not consumed: the server claims the receiver of
/// `requests` and the sender of `responses` and keeps both segments mapped, so
/// both channel handles may be closed right after. Waiting for a request uses the
/// request channel's wait strategy.
///
/// # Returns
/// As `shmring_rpc_client_new`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_rpc_server_new(
    requests: *const shmring_channel,
    responses: *const shmring_channel,
    out: *mut *mut shmring_rpc_server,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let (requests, responses) =
            unsafe { (shared::<Spsc>(requests)?, shared::<Spsc>(responses)?) };
        let receiver = requests.channel.receiver()?;
        let sender = responses.channel.sender()?;
        let max_response_len = MessageSender::max_message_len(&sender).saturating_sub(HEADER_LEN);
        let server = RpcServer::new(receiver, sender);
        debug_assert_eq!(server.max_response_len(), max_response_len);
        Ok(Server {
            response: vec![0u8; max_response_len],
            server,
        })
    })
}

/// Frees a server and gives up both roles; its client's calls then return
/// `SHMRING_E_DISCONNECTED`. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_BUSY` (nothing freed) when called from inside the
/// server's own handler.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_rpc_server_close(server: *mut shmring_rpc_server) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Server>(server) }
}

/// Stores the longest response the server sends in `*out`: the response
/// channel's largest message less the 16-byte header. It is the `response_cap`
/// every handler call gets.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_rpc_server_max_response_len(
    server: *const shmring_rpc_server,
    out: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call_ref(server, |h: &Server| write_out(out, "out", h.response.len())) }
}

/// Waits `timeout_ms` milliseconds at most (0: only if a request is there now;
/// `UINT64_MAX`: without limit) for one request, calls `handler` with it (see
/// `shmring_rpc_handler_fn` for the contract), and sends the handler's response or
/// error message back.
///
/// # Returns
/// - `SHMRING_OK`: a request was answered (with a response or an error
///   response).
/// - `SHMRING_E_TIMED_OUT`: no request in time; or the answer could not be sent
///   in time: it is kept and sent first by the next call (nothing lost, nothing
///   sent twice).
/// - `SHMRING_E_DISCONNECTED`: the client has gone.
/// - `SHMRING_E_CORRUPTED`: the message received breaks the wire format; it is
///   consumed, nobody is answered, and the server can go on.
/// - `SHMRING_E_INVALID_ARGUMENT`: NULL `server` or `handler`; or the handler
///   stored a `*response_len` above `response_cap` (the client got an error
///   response saying so).
/// - `SHMRING_E_BUSY`: called from inside the server's own handler.
/// - `SHMRING_E_IO`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_rpc_serve_one(
    server: *mut shmring_rpc_server,
    handler: shmring_rpc_handler_fn,
    context: *mut c_void,
    timeout_ms: u64,
) -> c_int {
    let deadline = deadline(timeout_ms);
    let body = |h: &mut Server, header: &Header| {
        let handler = handler.ok_or_else(|| Failure::null("handler"))?;
        // What the handler did wrong, if anything, for the caller.
        let mut misuse = None;
        let Server {
            server,
            response: buffer,
        } = h;
        let answer = |request: &[u8]| -> Result<Vec<u8>, String> {
            let cap = buffer.len();
            let mut len = 0usize;
            // Calls from the handler see this and stop at the state check.
            header.set_state(State::InCallback);
            // SAFETY: the handler's contract: it gets the request's bytes (valid
            // during the call; a non-null pointer even when empty), the buffer's
            // `cap` writable bytes, and a local to store the length in.
            let rc = unsafe {
                handler(
                    context,
                    request.as_ptr(),
                    request.len(),
                    buffer.as_mut_ptr(),
                    cap,
                    &mut len,
                )
            };
            header.set_state(State::Idle);
            if len > cap {
                let message = format!(
                    "the server's handler reported a {} of {len} bytes in a buffer of {cap}",
                    if rc == 0 { "response" } else { "error message" }
                );
                misuse = Some(message.clone());
                return Err(message);
            }
            if rc == 0 {
                Ok(buffer[..len].to_vec())
            } else {
                Err(String::from_utf8_lossy(&buffer[..len]).into_owned())
            }
        };
        server.serve_one_deadline(answer, deadline)?;
        match misuse {
            Some(message) => Err(Failure::invalid(message)),
            None => Ok(()),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { call_in(server, Access::Idle, body) }
}
