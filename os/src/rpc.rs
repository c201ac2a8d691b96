//! Request/response over any duplex message transport: [`RpcClient::call`] sends a
//! request and returns the matching response, with a timeout; [`RpcServer`]
//! answers requests with a handler.
//!
//! Both sides take one [`MessageSender`] and one [`MessageReceiver`]: two
//! shared-memory channels (one each way), the halves of a Unix, seqpacket or TCP
//! socket, two pipes. Every request carries an id, and its response carries the
//! same id back, so several calls can be in flight at once, from several threads,
//! and each gets its own response.
//!
//! # Wire format
//!
//! Every message is a 16-byte header, then the payload. All fields little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | request id (a response repeats its request's) |
//! | 8 | 4 | kind: 1 request, 2 response, 3 error response |
//! | 12 | 4 | reserved, 0 |
//! | 16 | rest | payload: the request, the response, or the handler's error message (UTF-8) |
//!
//! A message shorter than the header, of an unknown kind, of the wrong kind for its
//! direction, or with a non-zero reserved field is refused with
//! [`Error::MalformedFrame`]; nothing read from the peer is trusted further than
//! that.
//!
//! # How a client waits: leader and followers
//!
//! A client has no thread of its own. Each waiting caller either *leads* (holds
//! the receiver and reads responses, handing each to the caller whose id it
//! carries) or *follows* (sleeps on its own condition variable until its response
//! is handed over, or until it is asked to lead). When the leader's own response
//! arrives (or its deadline passes) it hands the receiver to one waiting follower.
//! A single call in flight therefore reads its own response on its own thread: no
//! thread hop, no extra wake-up, the same path as a bare receive. A dedicated
//! reader thread would cost every call a hand-over from that thread to the
//! caller's, and a thread per client.
//!
//! # Guarantees
//!
//! - A response is delivered only to the call whose id it carries. A response whose
//!   id matches no waiting call (a late response to a call that timed out, a
//!   duplicate, a hostile peer) is dropped and counted ([`RpcClient::discarded`]).
//! - A call that times out returns [`Error::TimedOut`]; its response, if it comes
//!   later, is dropped.
//! - When the peer goes (either direction returns [`Error::Disconnected`]), every
//!   waiting call and every later call returns `Disconnected`. A client does not
//!   reconnect: make a new one. A response that was already read is still
//!   delivered.
//! - A malformed response, or any other receive failure, breaks the client the
//!   same way: every waiting and later call returns that error.
//! - Memory is bounded: at most [`max_in_flight`](RpcClient::with_max_in_flight)
//!   calls wait at once; a further call waits for one to finish (within its own
//!   deadline).
//! - Responses to calls that timed out are read and dropped by the next call
//!   before it sends, when no call is reading, so that they cannot keep the
//!   server blocked on a full response direction. docs/design/rpc.md
//!   ("Abandoned responses") describes the case left: give every call a deadline
//!   when calls may time out.
//!
//! ```no_run
//! use shmring::ChannelBuilder;
//! use shmring::rpc::{RpcClient, RpcServer};
//! # fn main() -> shmring::Result<()> {
//! // Server process: creates both channels, answers until the client goes.
//! let requests = ChannelBuilder::shm("calc.req").create()?.receiver()?;
//! let responses = ChannelBuilder::shm("calc.resp").create()?.sender()?;
//! let mut server = RpcServer::new(requests, responses);
//! server.serve(|request: &[u8]| -> Result<Vec<u8>, String> {
//!     Ok(request.iter().rev().copied().collect())
//! })?;
//!
//! // Client process:
//! let requests = ChannelBuilder::shm("calc.req").open()?.sender()?;
//! let responses = ChannelBuilder::shm("calc.resp").open()?.receiver()?;
//! let client = RpcClient::new(requests, responses);
//! let reply = client.call_timeout(b"abc", std::time::Duration::from_secs(1))?;
//! assert_eq!(reply, b"cba");
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, Role};
use crate::message::{MessageReceiver, MessageSender};

thread_local! {
    /// The condition variable a call sleeps on while another caller leads: one
    /// per thread, reused by its calls (a thread makes one call at a time), so a
    /// call allocates nothing for it. A notification meant for an earlier call is
    /// a spurious wake-up to a later one, which re-checks its slot.
    static CALLER_WAKE: Arc<Condvar> = Arc::new(Condvar::new());
}

/// Length of the header in front of every request and response.
pub const HEADER_LEN: usize = 16;

/// The default bound on calls waiting at once on one client.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

const KIND_REQUEST: u32 = 1;
const KIND_RESPONSE: u32 = 2;
const KIND_ERROR: u32 = 3;

fn encode(out: &mut Vec<u8>, id: u64, kind: u32, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads and checks a header: returns the id, the kind and the payload. `what`
/// names the direction, for the error.
fn decode<'a>(frame: &'a [u8], what: &'static str) -> Result<(u64, u32, &'a [u8])> {
    let malformed = |reason: String| Error::MalformedFrame {
        what,
        len: frame.len(),
        reason,
    };
    let Some((header, payload)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(malformed(format!(
            "shorter than the {HEADER_LEN}-byte header"
        )));
    };
    let id = u64::from_le_bytes(header[0..8].try_into().expect("8 bytes"));
    let kind = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let reserved = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    if reserved != 0 {
        return Err(malformed(format!("reserved field is {reserved:#x}, not 0")));
    }
    if !(KIND_REQUEST..=KIND_ERROR).contains(&kind) {
        return Err(malformed(format!("unknown kind {kind}")));
    }
    Ok((id, kind, payload))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent state (every
    // update is a single assignment or map operation), so poisoning is ignored.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a call waits for: its outcome, once the leader has read it.
struct Slot {
    /// `Ok(response)`, or `Err(message)` for an error response.
    outcome: Option<std::result::Result<Vec<u8>, String>>,
    /// Signalled when `outcome` is set, or when this caller should lead.
    wake: Arc<Condvar>,
    /// Whether the caller sleeps on `wake` now (it is not sending, nor between
    /// checks): a leader stepping down hands over to such a caller.
    sleeping: bool,
}

fn set_sleeping(state: &mut State, id: u64, sleeping: bool) {
    if let Some(slot) = state.pending.get_mut(&id) {
        slot.sleeping = sleeping;
    }
}

/// Why a client is broken: every call returns this error from then on.
#[derive(Debug, Clone)]
enum Broken {
    Disconnected(Role),
    Malformed {
        what: &'static str,
        len: usize,
        reason: String,
    },
    Other(String),
}

impl Broken {
    fn from_error(e: &Error) -> Self {
        match e {
            Error::Disconnected { peer } => Broken::Disconnected(*peer),
            Error::MalformedFrame { what, len, reason } => Broken::Malformed {
                what,
                len: *len,
                reason: reason.clone(),
            },
            other => Broken::Other(other.to_string()),
        }
    }

    fn error(&self) -> Error {
        match self {
            Broken::Disconnected(peer) => Error::Disconnected { peer: *peer },
            Broken::Malformed { what, len, reason } => Error::MalformedFrame {
                what,
                len: *len,
                reason: reason.clone(),
            },
            Broken::Other(message) => Error::Io {
                op: "rpc receive",
                what: "an earlier failure of this client".to_owned(),
                source: std::io::Error::other(message.clone()),
            },
        }
    }
}

struct State {
    next_id: u64,
    pending: HashMap<u64, Slot>,
    /// Whether a caller holds the receiver and dispatches responses.
    leading: bool,
    broken: Option<Broken>,
    discarded: u64,
    /// Calls that timed out while waiting for their response, since the last
    /// drain: their responses may be waiting in the receiver.
    abandoned: u64,
}

impl State {
    /// The leader steps down: asks one caller still waiting to lead instead.
    fn resign(&mut self) {
        self.leading = false;
        // A caller not asleep yet checks `leading` before it sleeps, and leads.
        if let Some(slot) = self
            .pending
            .values()
            .find(|s| s.sleeping && s.outcome.is_none())
        {
            slot.wake.notify_one();
        }
    }

    fn break_with(&mut self, e: &Error) {
        if self.broken.is_none() {
            self.broken = Some(Broken::from_error(e));
        }
        for slot in self.pending.values() {
            slot.wake.notify_one();
        }
    }
}

/// The calling side of request/response: sends requests, returns the matching
/// responses. `Sync`: share it (`&RpcClient`, `Arc<RpcClient>`) between threads
/// to have several calls in flight. See the [module docs](self) for the
/// guarantees and how waiting callers share the receiver.
pub struct RpcClient {
    /// The sender and the buffer each request is encoded into.
    sender: Mutex<(Box<dyn MessageSender + Send>, Vec<u8>)>,
    /// The receiver and its buffer; only the leader locks it.
    receiver: Mutex<(Box<dyn MessageReceiver + Send>, Vec<u8>)>,
    state: Mutex<State>,
    /// Signalled when a call finishes, for callers waiting for room.
    room: Condvar,
    max_in_flight: usize,
    max_request_len: usize,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("RpcClient")
            .field("in_flight", &state.pending.len())
            .field("max_in_flight", &self.max_in_flight)
            .field("discarded", &state.discarded)
            .field("broken", &state.broken)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client sending requests through `sender` and reading responses from
    /// `receiver` (the server's ends are the other way round).
    pub fn new(
        sender: impl MessageSender + Send + 'static,
        receiver: impl MessageReceiver + Send + 'static,
    ) -> Self {
        Self::from_boxed(Box::new(sender), Box::new(receiver))
    }

    /// As [`new`](Self::new), from boxed transport halves.
    pub fn from_boxed(
        sender: Box<dyn MessageSender + Send>,
        receiver: Box<dyn MessageReceiver + Send>,
    ) -> Self {
        let max_request_len = sender.max_message_len().saturating_sub(HEADER_LEN);
        let receive_buffer = vec![0u8; receiver.max_message_len()];
        Self {
            sender: Mutex::new((sender, Vec::new())),
            receiver: Mutex::new((receiver, receive_buffer)),
            state: Mutex::new(State {
                next_id: 1,
                pending: HashMap::new(),
                leading: false,
                broken: None,
                discarded: 0,
                abandoned: 0,
            }),
            room: Condvar::new(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_request_len,
        }
    }

    /// Sets how many calls may wait at once (at least 1;
    /// [`DEFAULT_MAX_IN_FLIGHT`] by default). A call beyond it waits for one to
    /// finish.
    #[must_use]
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// The longest request: the sender's largest message less the
    /// [`HEADER_LEN`]-byte header.
    pub fn max_request_len(&self) -> usize {
        self.max_request_len
    }

    /// How many responses were dropped because their id matched no waiting call
    /// (late responses to calls that timed out, duplicates).
    pub fn discarded(&self) -> u64 {
        lock(&self.state).discarded
    }

    /// How many calls are waiting now.
    pub fn in_flight(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Sends `request` and waits for its response, as long as it takes.
    ///
    /// # Errors
    /// As [`call_deadline`](Self::call_deadline).
    pub fn call(&self, request: &[u8]) -> Result<Vec<u8>> {
        self.call_deadline(request, None)
    }

    /// Sends `request` and waits `timeout` at most for its response.
    ///
    /// # Errors
    /// As [`call_deadline`](Self::call_deadline).
    pub fn call_timeout(&self, request: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        self.call_deadline(request, Instant::now().checked_add(timeout))
    }

    /// Sends `request` and waits until `deadline` at most (`None`: no limit) for
    /// its response. There is no `try_` form: a response always takes a round
    /// trip; a deadline that has passed still sends if that does not block and
    /// returns a response that is already there.
    ///
    /// # Errors
    /// - [`Error::MessageTooLarge`]: `request` is longer than
    ///   [`max_request_len`](Self::max_request_len).
    /// - [`Error::TimedOut`]: the deadline passed (waiting for room, sending, or
    ///   waiting for the response); a response that comes later is dropped.
    /// - [`Error::Remote`]: the server's handler failed; carries its message.
    /// - [`Error::Disconnected`]: the server has gone (now or earlier).
    /// - [`Error::MalformedFrame`]: the server sent a message that breaks the wire
    ///   format (now or earlier).
    /// - the transport's errors.
    pub fn call_deadline(&self, request: &[u8], deadline: Option<Instant>) -> Result<Vec<u8>> {
        if request.len() > self.max_request_len {
            return Err(Error::MessageTooLarge {
                len: request.len(),
                max: self.max_request_len,
            });
        }
        self.drain_abandoned();
        let wake = CALLER_WAKE.with(Arc::clone);
        let id = self.register(&wake, deadline)?;
        if let Err(e) = self.send(id, request, deadline) {
            let mut state = lock(&self.state);
            if matches!(e, Error::Disconnected { .. }) {
                state.break_with(&e);
                self.room.notify_all();
            }
            self.finish(&mut state, id);
            return Err(e);
        }
        self.wait(id, &wake, deadline)
    }

    /// Takes an id and a slot, waiting for room if `max_in_flight` calls wait.
    fn register(&self, wake: &Arc<Condvar>, deadline: Option<Instant>) -> Result<u64> {
        let mut state = lock(&self.state);
        loop {
            if let Some(broken) = &state.broken {
                return Err(broken.error());
            }
            if state.pending.len() < self.max_in_flight {
                break;
            }
            state = match deadline {
                None => self
                    .room
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::TimedOut);
                    }
                    self.room
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        let id = state.next_id;
        state.next_id = id.wrapping_add(1);
        state.pending.insert(
            id,
            Slot {
                outcome: None,
                wake: Arc::clone(wake),
                sleeping: false,
            },
        );
        Ok(id)
    }

    fn send(&self, id: u64, request: &[u8], deadline: Option<Instant>) -> Result<()> {
        let mut guard = lock(&self.sender);
        let (sender, frame) = &mut *guard;
        encode(frame, id, KIND_REQUEST, request);
        Ok(sender.send_deadline(frame, deadline)?)
    }

    /// Removes call `id`: its response, if one comes, will be dropped.
    fn finish(&self, state: &mut State, id: u64) {
        state.pending.remove(&id);
        self.room.notify_one();
    }

    /// Waits for call `id`'s outcome, following or leading.
    fn wait(&self, id: u64, wake: &Condvar, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let mut state = lock(&self.state);
        loop {
            let slot = state
                .pending
                .get_mut(&id)
                .expect("a waiting call keeps its slot");
            if let Some(outcome) = slot.outcome.take() {
                self.finish(&mut state, id);
                return outcome.map_err(|message| Error::Remote { message });
            }
            if let Some(broken) = &state.broken {
                let e = broken.error();
                self.finish(&mut state, id);
                return Err(e);
            }
            if !state.leading {
                state.leading = true;
                drop(state);
                return self.lead(id, deadline);
            }
            let left = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.finish(&mut state, id);
                        state.abandoned += 1;
                        return Err(Error::TimedOut);
                    }
                    Some(left)
                }
            };
            set_sleeping(&mut state, id, true);
            state = match left {
                None => wake.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    wake.wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            set_sleeping(&mut state, id, false);
        }
    }

    /// As the leader: reads responses, handing each to its caller, until call
    /// `id`'s own comes, its deadline passes or the receiver fails; then steps
    /// down.
    fn lead(&self, id: u64, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let mut guard = lock(&self.receiver);
        let (receiver, buf) = &mut *guard;
        loop {
            let received = receiver.recv_deadline(buf, deadline).map_err(Error::from);
            let mut state = lock(&self.state);
            let failure = match received {
                Ok(n) => match dispatch(&mut state, &buf[..n.min(buf.len())], Some(id)) {
                    Ok(None) => continue,
                    Ok(Some(outcome)) => {
                        self.finish(&mut state, id);
                        state.resign();
                        return outcome.map_err(|message| Error::Remote { message });
                    }
                    Err(e) => e,
                },
                Err(Error::TimedOut) => {
                    self.finish(&mut state, id);
                    state.abandoned += 1;
                    state.resign();
                    return Err(Error::TimedOut);
                }
                Err(e) => e,
            };
            state.break_with(&failure);
            self.finish(&mut state, id);
            state.resign();
            self.room.notify_all();
            return Err(failure);
        }
    }

    /// Before a send: when calls have timed out since their responses were last
    /// looked for and nobody leads, reads (without waiting) the responses that are
    /// there, at most [`DRAIN_LIMIT`], so that abandoned responses do not keep a
    /// server blocked on a full response direction.
    fn drain_abandoned(&self) {
        {
            let mut state = lock(&self.state);
            if state.abandoned == 0 || state.leading || state.broken.is_some() {
                return;
            }
            state.leading = true;
            state.abandoned = 0;
        }
        let mut guard = lock(&self.receiver);
        let (receiver, buf) = &mut *guard;
        for _ in 0..DRAIN_LIMIT {
            let received = receiver.try_recv(buf).map_err(Error::from);
            let mut state = lock(&self.state);
            let failure = match received {
                Ok(n) => match dispatch(&mut state, &buf[..n.min(buf.len())], None) {
                    Ok(_) => continue,
                    Err(e) => e,
                },
                Err(Error::Empty) => break,
                Err(e) => e,
            };
            state.break_with(&failure);
            self.room.notify_all();
            break;
        }
        lock(&self.state).resign();
    }
}

/// At most this many responses are read by one [`RpcClient::drain_abandoned`].
const DRAIN_LIMIT: usize = 64;

/// Hands the response in `frame` to its call: returns its outcome if it is call
/// `own`'s, puts it in the call's slot if another call waits for it, and drops
/// and counts it otherwise.
fn dispatch(
    state: &mut State,
    frame: &[u8],
    own: Option<u64>,
) -> Result<Option<std::result::Result<Vec<u8>, String>>> {
    let (from, kind, payload) = decode(frame, "response")?;
    let outcome = match kind {
        KIND_RESPONSE => Ok(payload.to_vec()),
        KIND_ERROR => Err(String::from_utf8_lossy(payload).into_owned()),
        _ => {
            return Err(Error::MalformedFrame {
                what: "response",
                len: frame.len(),
                reason: format!("kind {kind} where a response was expected"),
            });
        }
    };
    if own == Some(from) {
        return Ok(Some(outcome));
    }
    match state.pending.get_mut(&from) {
        Some(slot) if slot.outcome.is_none() => {
            slot.outcome = Some(outcome);
            slot.wake.notify_one();
        }
        _ => state.discarded += 1,
    }
    Ok(None)
}

/// The answering side of request/response: reads requests, calls a handler,
/// sends each response back with its request's id. One thread serves; run
/// several servers (on several transport pairs) for parallel handlers, or
/// [`split`](Self::split) it to answer requests later and out of order.
pub struct RpcServer {
    requests: RpcRequests,
    responder: RpcResponder,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("response_pending", &!self.responder.frame.is_empty())
            .field("malformed", &self.requests.malformed)
            .finish_non_exhaustive()
    }
}

impl RpcServer {
    /// A server reading requests from `receiver` and sending responses through
    /// `sender` (the client's ends are the other way round).
    pub fn new(
        receiver: impl MessageReceiver + Send + 'static,
        sender: impl MessageSender + Send + 'static,
    ) -> Self {
        Self::from_boxed(Box::new(receiver), Box::new(sender))
    }

    /// As [`new`](Self::new), from boxed transport halves.
    pub fn from_boxed(
        receiver: Box<dyn MessageReceiver + Send>,
        sender: Box<dyn MessageSender + Send>,
    ) -> Self {
        let buffer = vec![0u8; receiver.max_message_len()];
        let max_response_len = sender.max_message_len().saturating_sub(HEADER_LEN);
        Self {
            requests: RpcRequests {
                receiver,
                buffer,
                malformed: 0,
            },
            responder: RpcResponder {
                sender,
                frame: Vec::new(),
                max_response_len,
            },
        }
    }

    /// Its two halves: [`RpcRequests`] takes requests, [`RpcResponder`]
    /// answers them by id, in any order and from any thread, so that calls can
    /// be answered concurrently (a handler that hands each request to a pool, a
    /// bridge that forwards each one). A response this server could not send
    /// yet goes with the responder and is sent before its first answer.
    pub fn split(self) -> (RpcRequests, RpcResponder) {
        (self.requests, self.responder)
    }

    /// The longest response: the sender's largest message less the header. A
    /// longer one is replaced by an error response saying so.
    pub fn max_response_len(&self) -> usize {
        self.responder.max_response_len
    }

    /// How many malformed requests [`serve`](Self::serve) skipped.
    pub fn malformed(&self) -> u64 {
        self.requests.malformed
    }

    /// Answers one request, waiting as long as it takes for it.
    ///
    /// # Errors
    /// As [`serve_one_deadline`](Self::serve_one_deadline).
    pub fn serve_one<E: Display>(
        &mut self,
        handler: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, E>,
    ) -> Result<()> {
        self.serve_one_deadline(handler, None)
    }

    /// Answers one request, waiting `timeout` at most.
    ///
    /// # Errors
    /// As [`serve_one_deadline`](Self::serve_one_deadline).
    pub fn serve_one_timeout<E: Display>(
        &mut self,
        handler: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, E>,
        timeout: Duration,
    ) -> Result<()> {
        self.serve_one_deadline(handler, Instant::now().checked_add(timeout))
    }

    /// Answers one request if one is there now.
    ///
    /// # Errors
    /// As [`serve_one_deadline`](Self::serve_one_deadline), [`Error::Empty`]
    /// instead of `TimedOut` when no request is there, and `Full` when a response
    /// left over from an earlier call cannot be sent yet.
    pub fn try_serve_one<E: Display>(
        &mut self,
        handler: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, E>,
    ) -> Result<()> {
        self.responder.flush(None, true)?;
        let n = self.requests.receiver.try_recv(&mut self.requests.buffer)?;
        self.answer(n, handler)?;
        self.responder.flush(None, true)
    }

    /// Waits until `deadline` at most (`None`: no limit) for one request, calls
    /// `handler` with it, and sends its result back: `Ok(response)` as a
    /// response, `Err(e)` as an error response carrying `e.to_string()`, which the
    /// client's call returns as [`Error::Remote`].
    ///
    /// A response that cannot be sent before the deadline is kept and sent first
    /// by the next call: nothing is lost, nothing is sent twice.
    ///
    /// # Errors
    /// - [`Error::TimedOut`]: no request before the deadline, or the response
    ///   could not be sent before it (it stays pending).
    /// - [`Error::Disconnected`]: the client has gone.
    /// - [`Error::MalformedFrame`]: the message received breaks the wire format;
    ///   it is consumed, and the server can go on.
    /// - the transport's errors.
    pub fn serve_one_deadline<E: Display>(
        &mut self,
        handler: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, E>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.responder.flush(deadline, false)?;
        let n = self
            .requests
            .receiver
            .recv_deadline(&mut self.requests.buffer, deadline)?;
        self.answer(n, handler)?;
        self.responder.flush(deadline, false)
    }

    /// Answers requests until the client goes: returns `Ok` on
    /// [`Error::Disconnected`]. Malformed requests are skipped and counted
    /// ([`malformed`](Self::malformed)).
    ///
    /// # Errors
    /// Any other error of [`serve_one`](Self::serve_one).
    pub fn serve<E: Display>(
        &mut self,
        mut handler: impl FnMut(&[u8]) -> std::result::Result<Vec<u8>, E>,
    ) -> Result<()> {
        loop {
            match self.serve_one(&mut handler) {
                Ok(()) => {}
                Err(Error::MalformedFrame { .. }) => self.requests.malformed += 1,
                Err(Error::Disconnected { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Decodes the request in the receive buffer's first `n` bytes, runs
    /// `handler`, and encodes the response into the responder's frame.
    fn answer<E: Display>(
        &mut self,
        n: usize,
        handler: impl FnOnce(&[u8]) -> std::result::Result<Vec<u8>, E>,
    ) -> Result<()> {
        let (id, payload) = self.requests.decode(n)?;
        match handler(payload) {
            Ok(response) => self.responder.encode::<E>(id, Ok(&response)),
            Err(e) => self.responder.encode(id, Err(&e)),
        }
        Ok(())
    }
}

/// A request taken by [`RpcRequests`], to be answered through
/// [`RpcResponder::respond_deadline`] with its `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRequest {
    /// The id its response must carry.
    pub id: u64,
    /// The request as the client sent it.
    pub payload: Vec<u8>,
}

/// The requests half of a [`split`](RpcServer::split) server.
pub struct RpcRequests {
    receiver: Box<dyn MessageReceiver + Send>,
    /// The receive buffer.
    buffer: Vec<u8>,
    malformed: u64,
}

impl std::fmt::Debug for RpcRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcRequests")
            .field("malformed", &self.malformed)
            .finish_non_exhaustive()
    }
}

impl RpcRequests {
    /// Waits until `deadline` at most (`None`: no limit) for the next request.
    ///
    /// # Errors
    /// - [`Error::TimedOut`]: none before the deadline.
    /// - [`Error::Disconnected`]: the client has gone.
    /// - [`Error::MalformedFrame`]: the message received breaks the wire format
    ///   (counted in [`malformed`](Self::malformed)); it is consumed, and the
    ///   next call goes on.
    /// - the transport's errors.
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<RpcRequest> {
        let n = self.receiver.recv_deadline(&mut self.buffer, deadline)?;
        self.take(n)
    }

    /// The next request if one is there now.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline), [`Error::Empty`] instead of
    /// `TimedOut`.
    pub fn try_recv(&mut self) -> Result<RpcRequest> {
        let n = self.receiver.try_recv(&mut self.buffer)?;
        self.take(n)
    }

    /// How many malformed requests were skipped.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    fn take(&mut self, n: usize) -> Result<RpcRequest> {
        match self.decode(n) {
            Ok((id, payload)) => Ok(RpcRequest {
                id,
                payload: payload.to_vec(),
            }),
            Err(e) => {
                self.malformed += 1;
                Err(e)
            }
        }
    }

    /// Checks the request in the buffer's first `n` bytes: its id and payload.
    fn decode(&self, n: usize) -> Result<(u64, &[u8])> {
        let frame = &self.buffer[..n.min(self.buffer.len())];
        let (id, kind, payload) = decode(frame, "request")?;
        if kind != KIND_REQUEST {
            return Err(Error::MalformedFrame {
                what: "request",
                len: n,
                reason: format!("kind {kind} where a request was expected"),
            });
        }
        Ok((id, payload))
    }
}

/// The responses half of a [`split`](RpcServer::split) server: answers
/// requests by id, in any order.
pub struct RpcResponder {
    sender: Box<dyn MessageSender + Send>,
    /// The response being sent; not empty while a response is left to send (its
    /// send timed out), which the next call sends first.
    frame: Vec<u8>,
    max_response_len: usize,
}

impl std::fmt::Debug for RpcResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcResponder")
            .field("response_pending", &!self.frame.is_empty())
            .field("max_response_len", &self.max_response_len)
            .finish_non_exhaustive()
    }
}

impl RpcResponder {
    /// The longest response (see [`RpcServer::max_response_len`]).
    pub fn max_response_len(&self) -> usize {
        self.max_response_len
    }

    /// Answers request `id`: `Ok(response)` as a response, `Err(e)` as an
    /// error response carrying `e.to_string()` (the client's call returns it as
    /// [`Error::Remote`]); a response longer than
    /// [`max_response_len`](Self::max_response_len) becomes an error response
    /// saying so. Waits until `deadline` at most (`None`: no limit) for room.
    ///
    /// A response the server had left to send when it was split goes first.
    ///
    /// # Errors
    /// - [`Error::TimedOut`]: no room before the deadline; this response was
    ///   not sent: call again with it.
    /// - [`Error::Disconnected`]: the client has gone.
    /// - the transport's errors.
    pub fn respond_deadline<E: Display>(
        &mut self,
        id: u64,
        result: std::result::Result<&[u8], E>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.flush(deadline, false)?;
        self.encode(id, result.as_ref().map(|r| *r));
        let sent = self.flush(deadline, false);
        if sent.is_err() {
            self.frame.clear();
        }
        sent
    }

    /// Encodes the answer to request `id` into the frame (empty before).
    fn encode<E: Display>(&mut self, id: u64, result: std::result::Result<&[u8], &E>) {
        match result {
            Ok(response) if response.len() <= self.max_response_len => {
                encode(&mut self.frame, id, KIND_RESPONSE, response);
            }
            Ok(response) => {
                let message = format!(
                    "response too large: {} bytes, at most {}",
                    response.len(),
                    self.max_response_len
                );
                encode(&mut self.frame, id, KIND_ERROR, message.as_bytes());
            }
            Err(e) => {
                let mut message = e.to_string();
                if message.len() > self.max_response_len {
                    let mut end = self.max_response_len;
                    while !message.is_char_boundary(end) {
                        end -= 1;
                    }
                    message.truncate(end);
                }
                encode(&mut self.frame, id, KIND_ERROR, message.as_bytes());
            }
        }
    }

    /// Sends the pending response, if any.
    fn flush(&mut self, deadline: Option<Instant>, try_only: bool) -> Result<()> {
        if self.frame.is_empty() {
            return Ok(());
        }
        if try_only {
            self.sender.try_send(&self.frame)?;
        } else {
            self.sender.send_deadline(&self.frame, deadline)?;
        }
        self.frame.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An in-memory transport half over `std::sync::mpsc`, for frame-level tests.
    struct MemSender(mpsc::Sender<Vec<u8>>);
    struct MemReceiver(mpsc::Receiver<Vec<u8>>);

    use crate::error::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};

    fn mem_pair() -> (MemSender, MemReceiver) {
        let (tx, rx) = mpsc::channel();
        (MemSender(tx), MemReceiver(rx))
    }

    impl MessageSender for MemSender {
        fn max_message_len(&self) -> usize {
            256
        }
        fn try_send(&mut self, message: &[u8]) -> std::result::Result<(), TrySendError> {
            self.0
                .send(message.to_vec())
                .map_err(|_| TrySendError::Disconnected)
        }
        fn send_deadline(
            &mut self,
            message: &[u8],
            _: Option<Instant>,
        ) -> std::result::Result<(), SendTimeoutError> {
            self.0
                .send(message.to_vec())
                .map_err(|_| SendTimeoutError::Disconnected)
        }
    }

    impl MessageReceiver for MemReceiver {
        fn max_message_len(&self) -> usize {
            256
        }
        fn try_recv(&mut self, buf: &mut [u8]) -> std::result::Result<usize, TryRecvError> {
            match self.0.try_recv() {
                Ok(m) => {
                    buf[..m.len()].copy_from_slice(&m);
                    Ok(m.len())
                }
                Err(mpsc::TryRecvError::Empty) => Err(TryRecvError::Empty),
                Err(mpsc::TryRecvError::Disconnected) => Err(TryRecvError::Disconnected),
            }
        }
        fn recv_deadline(
            &mut self,
            buf: &mut [u8],
            deadline: Option<Instant>,
        ) -> std::result::Result<usize, RecvTimeoutError> {
            let m = match deadline {
                None => self.0.recv().map_err(|_| RecvTimeoutError::Disconnected)?,
                Some(d) => self
                    .0
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                    .map_err(|e| match e {
                        mpsc::RecvTimeoutError::Timeout => RecvTimeoutError::TimedOut,
                        mpsc::RecvTimeoutError::Disconnected => RecvTimeoutError::Disconnected,
                    })?,
            };
            buf[..m.len()].copy_from_slice(&m);
            Ok(m.len())
        }
    }

    fn frame(id: u64, kind: u32, reserved: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&id.to_le_bytes());
        f.extend_from_slice(&kind.to_le_bytes());
        f.extend_from_slice(&reserved.to_le_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn wire_format_is_little_endian_with_a_16_byte_header() {
        let mut out = Vec::new();
        encode(&mut out, 0x0102_0304_0506_0708, KIND_ERROR, b"xy");
        assert_eq!(
            out,
            [8, 7, 6, 5, 4, 3, 2, 1, 3, 0, 0, 0, 0, 0, 0, 0, b'x', b'y']
        );
        assert_eq!(
            decode(&out, "response").unwrap(),
            (0x0102_0304_0506_0708, KIND_ERROR, &b"xy"[..])
        );
    }

    #[test]
    fn decode_refuses_short_unknown_and_reserved() {
        for (bytes, reason) in [
            (vec![0u8; 15], "shorter than the 16-byte header"),
            (frame(1, 0, 0, b""), "unknown kind 0"),
            (frame(1, 4, 0, b""), "unknown kind 4"),
            (frame(1, 2, 9, b""), "reserved field is 0x9, not 0"),
        ] {
            match decode(&bytes, "response") {
                Err(Error::MalformedFrame {
                    what,
                    len,
                    reason: r,
                }) => {
                    assert_eq!((what, len, r.as_str()), ("response", bytes.len(), reason));
                }
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_and_duplicate_ids_are_discarded_never_delivered() {
        let (req_tx, mut req_rx) = mem_pair();
        let (mut resp_tx, resp_rx) = mem_pair();
        let client = RpcClient::new(req_tx, resp_rx);
        // A response to no call; then, once the request is seen, its response
        // twice.
        resp_tx
            .send(&frame(77, KIND_RESPONSE, 0, b"stray"))
            .unwrap();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let n = req_rx.recv(&mut buf).unwrap();
            let (id, kind, payload) = decode(&buf[..n], "request").unwrap();
            assert_eq!((kind, payload), (KIND_REQUEST, &b"ping"[..]));
            resp_tx.send(&frame(id, KIND_RESPONSE, 0, b"pong")).unwrap();
            resp_tx
                .send(&frame(id, KIND_RESPONSE, 0, b"again"))
                .unwrap();
            let n = req_rx.recv(&mut buf).unwrap();
            let (id2, _, _) = decode(&buf[..n], "request").unwrap();
            resp_tx
                .send(&frame(id2, KIND_ERROR, 0, b"no such thing"))
                .unwrap();
        });
        assert_eq!(client.call(b"ping").unwrap(), b"pong");
        match client.call(b"second") {
            Err(Error::Remote { message }) => assert_eq!(message, "no such thing"),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
        // The stray (77) and the duplicate ("again").
        assert_eq!(client.discarded(), 2);
        assert_eq!(client.in_flight(), 0);
    }

    #[test]
    fn responses_of_timed_out_calls_are_drained_before_the_next_send() {
        let (req_tx, mut req_rx) = mem_pair();
        let (mut resp_tx, resp_rx) = mem_pair();
        let client = RpcClient::new(req_tx, resp_rx);
        assert!(matches!(
            client.call_timeout(b"slow", Duration::from_millis(10)),
            Err(Error::TimedOut)
        ));
        let mut buf = [0u8; 256];
        let n = req_rx.recv(&mut buf).unwrap();
        let (slow, _, _) = decode(&buf[..n], "request").unwrap();
        resp_tx
            .send(&frame(slow, KIND_RESPONSE, 0, b"late"))
            .unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let n = req_rx.recv(&mut buf).unwrap();
                // The late response was read and dropped before this request
                // was sent.
                assert_eq!(client.discarded(), 1);
                let (id, _, payload) = decode(&buf[..n], "request").unwrap();
                assert_eq!(payload, b"next");
                resp_tx
                    .send(&frame(id, KIND_RESPONSE, 0, b"fresh"))
                    .unwrap();
            });
            assert_eq!(client.call(b"next").unwrap(), b"fresh");
        });
        assert_eq!(client.discarded(), 1);
    }

    #[test]
    fn a_malformed_response_breaks_the_client() {
        let (req_tx, _req_rx) = mem_pair();
        let (mut resp_tx, resp_rx) = mem_pair();
        let client = RpcClient::new(req_tx, resp_rx);
        resp_tx.send(&[1, 2, 3]).unwrap();
        for _ in 0..2 {
            match client.call_timeout(b"x", Duration::from_secs(5)) {
                Err(Error::MalformedFrame { what, len, .. }) => {
                    assert_eq!((what, len), ("response", 3));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_request_where_a_response_belongs_is_malformed() {
        let (req_tx, _req_rx) = mem_pair();
        let (mut resp_tx, resp_rx) = mem_pair();
        let client = RpcClient::new(req_tx, resp_rx);
        resp_tx.send(&frame(1, KIND_REQUEST, 0, b"")).unwrap();
        assert!(matches!(
            client.call(b"x"),
            Err(Error::MalformedFrame {
                what: "response",
                ..
            })
        ));
    }

    #[test]
    fn server_skips_malformed_requests_and_answers_errors() {
        let (mut req_tx, req_rx) = mem_pair();
        let (resp_tx, mut resp_rx) = mem_pair();
        let mut server = RpcServer::new(req_rx, resp_tx);
        req_tx.send(&[0u8; 4]).unwrap();
        req_tx.send(&frame(5, KIND_RESPONSE, 0, b"")).unwrap();
        req_tx.send(&frame(6, KIND_REQUEST, 0, b"ok")).unwrap();
        req_tx.send(&frame(7, KIND_REQUEST, 0, b"fail")).unwrap();
        req_tx.send(&frame(8, KIND_REQUEST, 0, b"big")).unwrap();
        drop(req_tx);
        server
            .serve(|req: &[u8]| match req {
                b"fail" => Err("handler failed"),
                b"big" => Ok(vec![0u8; 256 - HEADER_LEN + 1]),
                _ => Ok(req.to_vec()),
            })
            .unwrap();
        assert_eq!(server.malformed(), 2);
        let mut buf = [0u8; 256];
        let n = resp_rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], frame(6, KIND_RESPONSE, 0, b"ok"));
        let n = resp_rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], frame(7, KIND_ERROR, 0, b"handler failed"));
        // A response longer than the transport carries becomes an error response.
        assert_eq!(server.max_response_len(), 256 - HEADER_LEN);
        let n = resp_rx.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            frame(
                8,
                KIND_ERROR,
                0,
                b"response too large: 241 bytes, at most 240"
            )
        );
    }

    #[test]
    fn a_split_server_answers_out_of_order_and_each_call_gets_its_own() {
        let (req_tx, req_rx) = mem_pair();
        let (resp_tx, resp_rx) = mem_pair();
        let client = Arc::new(RpcClient::new(req_tx, resp_rx));
        let (mut requests, mut responder) = RpcServer::new(req_rx, resp_tx).split();
        let calls: Vec<_> = [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
            .into_iter()
            .map(|request| {
                let client = client.clone();
                std::thread::spawn(move || {
                    (
                        request.clone(),
                        client.call_timeout(&request, Duration::from_secs(10)),
                    )
                })
            })
            .collect();
        let mut taken: Vec<RpcRequest> = (0..3)
            .map(|_| requests.recv_deadline(None).expect("a request"))
            .collect();
        // Answered last first, the middle one with an error.
        taken.reverse();
        for request in &taken {
            let result = if request.payload == b"second" {
                Err("refused")
            } else {
                Ok(&request.payload[..])
            };
            responder
                .respond_deadline(request.id, result, None)
                .expect("respond");
        }
        for call in calls {
            let (request, result) = call.join().expect("caller");
            if request == b"second" {
                match result {
                    Err(Error::Remote { message }) => assert_eq!(message, "refused"),
                    other => panic!("second: {other:?}"),
                }
            } else {
                assert_eq!(result.expect("response"), request);
            }
        }
        drop(client);
        assert!(matches!(
            requests.recv_deadline(None),
            Err(Error::Disconnected { .. })
        ));
        assert_eq!(requests.malformed(), 0);
    }

    #[test]
    fn a_split_server_counts_and_skips_malformed_requests() {
        let (mut req_tx, req_rx) = mem_pair();
        let (resp_tx, _resp_rx) = mem_pair();
        let (mut requests, _responder) = RpcServer::new(req_rx, resp_tx).split();
        req_tx.send(&[0u8; 4]).unwrap();
        req_tx.send(&frame(9, KIND_REQUEST, 0, b"ok")).unwrap();
        assert!(matches!(
            requests.try_recv(),
            Err(Error::MalformedFrame { .. })
        ));
        assert_eq!(
            requests.try_recv().expect("the good one"),
            RpcRequest {
                id: 9,
                payload: b"ok".to_vec()
            }
        );
        assert_eq!(requests.malformed(), 1);
        assert!(matches!(requests.try_recv(), Err(Error::Empty)));
    }

    #[test]
    fn request_too_large_is_refused_at_the_call() {
        let (req_tx, _req_rx) = mem_pair();
        let (_resp_tx, resp_rx) = mem_pair();
        let client = RpcClient::new(req_tx, resp_rx);
        let max = client.max_request_len();
        assert_eq!(max, 256 - HEADER_LEN);
        assert!(matches!(
            client.call(&vec![0u8; max + 1]),
            Err(Error::MessageTooLarge { len, max: m }) if len == max + 1 && m == max
        ));
    }

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RpcClient>();
        fn check_send<T: Send>() {}
        check_send::<RpcServer>();
    }
}
