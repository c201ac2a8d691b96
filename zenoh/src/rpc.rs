//! Request/response across Zenoh: shmring's [`RpcClient`] on one host calls an
//! [`RpcServer`] on another, through a Zenoh queryable.
//!
//! - [`Bridge::export_rpc`] (the server's host): a Zenoh queryable on a key whose
//!   queries are made calls of a local [`RpcClient`] (connected to the local
//!   server), each with a timeout; the response is the query's reply, a remote
//!   error (the handler's `Err`) an error reply.
//! - [`Bridge::import_rpc`] (the client's host): serves a local [`RpcServer`]
//!   (the endpoints local clients call) by a Zenoh `get` on the key, with a
//!   timeout; the first reply is the response, an error reply or no reply an
//!   error response, which the local client's call returns as
//!   [`shmring::Error::Remote`].
//!
//! Requests and responses travel as they are (no bridge header): a query is
//! answered once, so neither numbering nor end-of-stream applies. An import
//! serves one call at a time; an export runs `workers` calls at once. The
//! queryable's callback never blocks: it hands the query to the export's
//! workers through a bounded queue and, when that is full, drops it (counted in
//! [`RpcExport::refused`]; the caller's `get` ends with no reply, which its import
//! turns into an error response).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmring::{RpcClient, RpcServer};
use zenoh::Wait;
use zenoh::key_expr::KeyExpr;
use zenoh::query::Query;

use crate::error::zenoh_err;
use crate::{Bridge, BridgeError};

/// How often a waiting thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(50);

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
    /// `key` on Zenoh, each query within `timeout`, one at a time.
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
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let session = self.session.clone();
        let (thread_stop, thread_calls, thread_key) = (stop.clone(), calls.clone(), key.clone());
        let thread = std::thread::Builder::new()
            .name("shmring-zenoh rpc import".to_owned())
            .spawn(move || {
                import_worker(
                    server,
                    &session,
                    &thread_key,
                    timeout,
                    &thread_stop,
                    &thread_calls,
                )
            })
            .map_err(BridgeError::Thread)?;
        Ok(RpcImport {
            key,
            stop,
            calls,
            thread: Some(thread),
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

fn import_worker(
    mut server: RpcServer,
    session: &zenoh::Session,
    key: &KeyExpr<'static>,
    timeout: Duration,
    stop: &AtomicBool,
    calls: &AtomicU64,
) -> Result<(), BridgeError> {
    let handler = |request: &[u8]| -> Result<Vec<u8>, String> {
        calls.fetch_add(1, Ordering::Relaxed);
        let replies = session
            .get(key.clone())
            .payload(request.to_vec())
            .timeout(timeout)
            .wait()
            .map_err(|e| format!("zenoh get on {key}: {e}"))?;
        let deadline = Instant::now() + timeout + TICK;
        match replies.recv_deadline(deadline) {
            Ok(Some(reply)) => match reply.result() {
                Ok(sample) => Ok(sample.payload().to_bytes().into_owned()),
                Err(error) => {
                    Err(String::from_utf8_lossy(&error.payload().to_bytes()).into_owned())
                }
            },
            Ok(None) | Err(_) => Err(format!("no reply on {key} within {timeout:?}")),
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match server.serve_one_deadline(handler, Instant::now().checked_add(TICK)) {
            Ok(()) | Err(shmring::Error::TimedOut) | Err(shmring::Error::MalformedFrame { .. }) => {
            }
            Err(shmring::Error::Disconnected { .. }) => return Ok(()),
            Err(other) => return Err(BridgeError::Local(other)),
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
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<(), BridgeError>>>,
}

impl RpcImport {
    /// The key it queries.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// Calls forwarded so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Waits until the local clients have gone.
    ///
    /// # Errors
    /// [`BridgeError::Local`] when the local endpoints failed.
    pub fn join(mut self) -> Result<(), BridgeError> {
        self.join_thread()
    }

    /// Stops serving (within 50 ms plus the call in hand).
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn stop(mut self) -> Result<(), BridgeError> {
        self.stop.store(true, Ordering::Relaxed);
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<(), BridgeError> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| BridgeError::Panicked("rpc import"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RpcImport {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.join_thread();
    }
}
