//! Request/response across Zenoh: shmring's [`RpcClient`] on one host calls an
//! [`RpcServer`] on another, through a Zenoh queryable.
//!
//! - [`Bridge::export_rpc`] (the server's host): a Zenoh queryable on a key whose
//!   queries are made calls of a local [`RpcClient`] (connected to the local
//!   server), each with a timeout; the response is the query's reply, a remote
//!   error (the handler's `Err`) an error reply.
//! - [`Bridge::import_rpc`] (the client's host): serves a local [`RpcServer`]
//!   (the endpoints local clients call) by a Zenoh `get` on the key per request,
//!   with a timeout; the first reply is the response, an error reply or no reply
//!   an error response, which the local client's call returns as
//!   [`shmring::Error::Remote`].
//!
//! Requests and responses travel as they are (no bridge header): a query is
//! answered once, so neither numbering nor end-of-stream applies. An import has
//! up to [`IMPORT_MAX_IN_FLIGHT`] queries out at once (the server is
//! [split](RpcServer::split): one thread takes requests and sends the queries,
//! Zenoh's callbacks hand the replies to a second that answers, in the order
//! they come); an export runs `workers` calls at once. The
//! queryable's callback never blocks: it hands the query to the export's
//! workers through a bounded queue and, when that is full, drops it (counted in
//! [`RpcExport::refused`]; the caller's `get` ends with no reply, which its import
//! turns into an error response).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmring::{RpcClient, RpcRequests, RpcResponder, RpcServer};
use zenoh::Wait;
use zenoh::key_expr::KeyExpr;
use zenoh::query::Query;

use crate::error::zenoh_err;
use crate::{Bridge, BridgeError};

/// How often a waiting thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(50);

/// The most queries an [`RpcImport`] has out at once; a further request waits
/// in the local endpoint until one is answered.
pub const IMPORT_MAX_IN_FLIGHT: usize = 1024;

impl Bridge {
    /// Answers Zenoh queries on `key` by calling `client` (connected to a local
    /// [`RpcServer`]), each call within `timeout`, with `workers` calls at most in
    /// flight (at least 1) and up to `4 × workers` queries waiting.
    ///
    /// # Errors
    /// [`BridgeError::InvalidKey`], [`BridgeError::KeyNotAllowed`],
    /// [`BridgeError::Zenoh`], [`BridgeError::Thread`].
    pub fn export_rpc(
        &self,
        key: &str,
        client: RpcClient,
        timeout: Duration,
        workers: usize,
    ) -> Result<RpcExport, BridgeError> {
        let key = self.check_key(key)?;
        let workers = workers.max(1);
        let shared = Arc::new(ExportShared {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity: 4 * workers,
            refused: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let callback_shared = shared.clone();
        let queryable = self
            .session
            .declare_queryable(key.clone())
            .callback(move |query: Query| callback_shared.push(query))
            .wait()
            .map_err(zenoh_err("declaring the queryable"))?;
        let client = Arc::new(client);
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let (shared, client) = (shared.clone(), client.clone());
            let thread = std::thread::Builder::new()
                .name(format!("shmring-zenoh rpc export {n}"))
                .spawn(move || export_worker(&shared, &client, timeout))
                .map_err(BridgeError::Thread)?;
            threads.push(thread);
        }
        Ok(RpcExport {
            key,
            shared,
            threads,
            _queryable: queryable,
        })
    }

    /// Serves `server` (the local endpoints local [`RpcClient`]s call) by querying
    /// `key` on Zenoh, each query within `timeout`, up to
    /// [`IMPORT_MAX_IN_FLIGHT`] at once.
    ///
    /// # Errors
    /// [`BridgeError::InvalidKey`], [`BridgeError::KeyNotAllowed`],
    /// [`BridgeError::Thread`].
    pub fn import_rpc(
        &self,
        key: &str,
        server: RpcServer,
        timeout: Duration,
    ) -> Result<RpcImport, BridgeError> {
        let key = self.check_key(key)?;
        let shared = Arc::new(ImportShared {
            stop: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            in_flight: Mutex::new(0),
            room: Condvar::new(),
        });
        let (requests, responder) = server.split();
        let (answers_tx, answers) = std::sync::mpsc::channel();
        let answering = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("shmring-zenoh rpc import answers".to_owned())
                .spawn(move || answer_imported(responder, &answers, &shared))
                .map_err(BridgeError::Thread)?
        };
        let querying = {
            let (session, shared, key) = (self.session.clone(), shared.clone(), key.clone());
            std::thread::Builder::new()
                .name("shmring-zenoh rpc import".to_owned())
                .spawn(move || {
                    let querier = Querier {
                        session: &session,
                        key: &key,
                        timeout,
                        shared: &shared,
                        answers: answers_tx,
                    };
                    querier.run(requests)
                })
                .map_err(BridgeError::Thread)?
        };
        Ok(RpcImport {
            key,
            shared,
            threads: Some((querying, answering)),
        })
    }
}

struct ExportShared {
    queue: Mutex<VecDeque<Query>>,
    ready: Condvar,
    capacity: usize,
    refused: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

impl ExportShared {
    fn push(&self, query: Query) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= self.capacity {
            drop(queue);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return; // dropping the query ends it with no reply
        }
        queue.push_back(query);
        drop(queue);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<Query> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(query) = queue.pop_front() {
                return Some(query);
            }
            queue = match self.ready.wait_timeout(queue, TICK) {
                Ok((queue, _)) => queue,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

fn export_worker(shared: &ExportShared, client: &RpcClient, timeout: Duration) {
    while let Some(query) = shared.pop() {
        let request = query
            .payload()
            .map(|p| p.to_bytes().into_owned())
            .unwrap_or_default();
        let replied = match client.call_timeout(&request, timeout) {
            Ok(response) => query.reply(query.key_expr().clone(), response).wait(),
            Err(error) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                query.reply_err(error.to_string()).wait()
            }
        };
        if replied.is_ok() {
            shared.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the import's two threads share.
struct ImportShared {
    stop: AtomicBool,
    calls: AtomicU64,
    /// Queries out, not yet answered.
    in_flight: Mutex<usize>,
    room: Condvar,
}

impl ImportShared {
    /// One query fewer out.
    fn answered(&self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *in_flight = in_flight.saturating_sub(1);
        drop(in_flight);
        self.room.notify_one();
    }

    /// Waits until fewer than [`IMPORT_MAX_IN_FLIGHT`] queries are out; false
    /// if stopped meanwhile. Only the querying thread adds queries, so there is
    /// still room when it sends the next.
    fn wait_for_room(&self) -> bool {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *in_flight >= IMPORT_MAX_IN_FLIGHT {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            in_flight = match self.room.wait_timeout(in_flight, TICK) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// One query more out.
    fn sent(&self) {
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
}

/// A request's answer: its id, and the response or the error's text.
type Answer = (u64, Result<Vec<u8>, String>);

/// The query of one request, held by its reply callback: the first reply is
/// the answer; if the query ends with none (timeout, no queryable, a failed
/// `get`), dropping the callback answers with an error.
struct PendingQuery {
    id: u64,
    answered: AtomicBool,
    answers: std::sync::mpsc::Sender<Answer>,
    shared: Arc<ImportShared>,
    /// The error answer if no reply comes.
    no_reply: String,
}

impl PendingQuery {
    fn answer(&self, result: Result<Vec<u8>, String>) {
        if self.answered.swap(true, Ordering::AcqRel) {
            return; // a second reply: the first one was the answer
        }
        // The answering thread gone means the import is ending: nobody to tell.
        let _ = self.answers.send((self.id, result));
        self.shared.answered();
    }

    fn on_reply(&self, reply: zenoh::query::Reply) {
        let result = match reply.result() {
            Ok(sample) => Ok(sample.payload().to_bytes().into_owned()),
            Err(error) => Err(String::from_utf8_lossy(&error.payload().to_bytes()).into_owned()),
        };
        self.answer(result);
    }
}

impl Drop for PendingQuery {
    fn drop(&mut self) {
        let no_reply = std::mem::take(&mut self.no_reply);
        self.answer(Err(no_reply));
    }
}

/// The import's querying thread.
struct Querier<'a> {
    session: &'a zenoh::Session,
    key: &'a KeyExpr<'static>,
    timeout: Duration,
    shared: &'a Arc<ImportShared>,
    answers: std::sync::mpsc::Sender<Answer>,
}

impl Querier<'_> {
    /// Takes local requests and sends a query for each, until the local
    /// clients have gone or the import is stopped.
    fn run(self, mut requests: RpcRequests) -> Result<(), BridgeError> {
        loop {
            if self.shared.stop.load(Ordering::Relaxed) || !self.shared.wait_for_room() {
                return Ok(());
            }
            let request = match requests.recv_deadline(Instant::now().checked_add(TICK)) {
                Ok(request) => request,
                Err(shmring::Error::TimedOut | shmring::Error::MalformedFrame { .. }) => continue,
                Err(shmring::Error::Disconnected { .. }) => return Ok(()),
                Err(other) => return Err(BridgeError::Local(other)),
            };
            self.shared.calls.fetch_add(1, Ordering::Relaxed);
            self.shared.sent();
            let pending = PendingQuery {
                id: request.id,
                answered: AtomicBool::new(false),
                answers: self.answers.clone(),
                shared: self.shared.clone(),
                no_reply: format!("no reply on {} within {:?}", self.key, self.timeout),
            };
            // A failed `get` drops the callback, whose query answers with an
            // error: the local call never waits past its own deadline.
            let _ = self
                .session
                .get(self.key.clone())
                .payload(request.payload)
                .timeout(self.timeout)
                .callback(move |reply| pending.on_reply(reply))
                .wait();
        }
    }
}

/// The import's answering thread: sends each answer as it comes, until every
/// query has been answered and the querying thread has ended, or the import is
/// stopped.
fn answer_imported(
    mut responder: RpcResponder,
    answers: &std::sync::mpsc::Receiver<Answer>,
    shared: &ImportShared,
) -> Result<(), BridgeError> {
    loop {
        let (id, result) = match answers.recv_timeout(TICK) {
            Ok(answer) => answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if shared.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let result = result.as_deref().map_err(String::as_str);
        loop {
            match responder.respond_deadline(id, result, Instant::now().checked_add(TICK)) {
                Ok(()) => break,
                Err(shmring::Error::TimedOut) => {
                    if shared.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                // The local clients have gone: the rest is answered to nobody.
                Err(shmring::Error::Disconnected { .. }) => return Ok(()),
                Err(other) => return Err(BridgeError::Local(other)),
            }
        }
    }
}

/// A running export (a Zenoh queryable answering with a local RPC client).
/// Dropping it undeclares the queryable and stops its workers.
#[derive(Debug)]
pub struct RpcExport {
    key: KeyExpr<'static>,
    shared: Arc<ExportShared>,
    threads: Vec<JoinHandle<()>>,
    _queryable: zenoh::query::Queryable<()>,
}

impl std::fmt::Debug for ExportShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportShared")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl RpcExport {
    /// The key of the queryable.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// Queries answered (a response or an error reply sent).
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::Relaxed)
    }

    /// Queries whose local call failed (answered with an error reply).
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Queries dropped because the queue to the workers was full.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for RpcExport {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.ready.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A running import (a local RPC server answered by Zenoh queries). Dropping it
/// stops it as [`stop`](Self::stop) does.
#[derive(Debug)]
pub struct RpcImport {
    key: KeyExpr<'static>,
    shared: Arc<ImportShared>,
    /// The querying thread and the answering thread.
    #[allow(clippy::type_complexity)]
    threads: Option<(
        JoinHandle<Result<(), BridgeError>>,
        JoinHandle<Result<(), BridgeError>>,
    )>,
}

impl std::fmt::Debug for ImportShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportShared")
            .field("calls", &self.calls.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RpcImport {
    /// The key it queries.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// Calls forwarded so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    /// Queries out now, not yet answered.
    pub fn in_flight(&self) -> usize {
        *self
            .shared
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the local clients have gone and every query sent has been
    /// answered (or has timed out).
    ///
    /// # Errors
    /// [`BridgeError::Local`] when the local endpoints failed.
    pub fn join(mut self) -> Result<(), BridgeError> {
        self.join_threads()
    }

    /// Stops serving (within 50 ms plus the call in hand); queries still out
    /// are not answered.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn stop(mut self) -> Result<(), BridgeError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.join_threads()
    }

    fn join_threads(&mut self) -> Result<(), BridgeError> {
        let Some((querying, answering)) = self.threads.take() else {
            return Ok(());
        };
        let queried = querying
            .join()
            .map_err(|_| BridgeError::Panicked("rpc import"))?;
        let answered = answering
            .join()
            .map_err(|_| BridgeError::Panicked("rpc import answers"))?;
        queried.and(answered)
    }
}

impl Drop for RpcImport {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.join_threads();
    }
}
