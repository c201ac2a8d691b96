//! Local endpoint → Zenoh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmring::{MessageReceiver, RecvTimeoutError, TryRecvError};
use zenoh::Wait;
use zenoh::key_expr::KeyExpr;
use zenoh::qos::CongestionControl;
use zenoh::sample::Locality;

use crate::error::zenoh_err;
use crate::wire::{self, HEADER_LEN, Header, Kind};
use crate::{Bridge, BridgeError, Delivery};

/// How often a waiting outbound thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(50);

/// Builds an [`Outbound`] direction: [`Bridge::outbound`].
#[derive(Debug)]
pub struct OutboundBuilder<R> {
    bridge: Bridge,
    source: R,
    key: String,
    delivery: Delivery,
    stream: Option<u64>,
    express: bool,
    wait_for_subscriber: Option<Duration>,
    window: Option<Option<u64>>,
}

/// The default credit window of a [`Delivery::Reliable`] outbound, in messages.
pub const DEFAULT_WINDOW: u64 = 4096;

impl Bridge {
    /// Forwards every message of `source` (a channel or MPMC receiver, a topic
    /// subscriber: any [`MessageReceiver`]) to Zenoh on `key`.
    pub fn outbound<R>(&self, source: R, key: &str) -> OutboundBuilder<R>
    where
        R: MessageReceiver + Send + 'static,
    {
        OutboundBuilder {
            bridge: self.clone(),
            source,
            key: key.to_owned(),
            delivery: Delivery::Reliable,
            stream: None,
            express: false,
            wait_for_subscriber: None,
            window: None,
        }
    }
}

impl<R: MessageReceiver + Send + 'static> OutboundBuilder<R> {
    /// [`Delivery::Reliable`] (the default) or [`Delivery::DropWhenCongested`].
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// The stream id (by default the bridge's next one); unique within the bridge.
    pub fn stream_id(mut self, stream: u64) -> Self {
        self.stream = Some(stream);
        self
    }

    /// Zenoh's `express`: every message is sent at once, not batched (lower
    /// latency, lower throughput). Off by default.
    pub fn express(mut self, express: bool) -> Self {
        self.express = express;
        self
    }

    /// End-to-end flow control: at most `window` messages published and not yet
    /// acknowledged by a bridge's inbound side; the outbound waits for credit (the
    /// messages wait in the local endpoint, whose sender then blocks or finds it
    /// full). `None` turns it off. Default: [`DEFAULT_WINDOW`] for
    /// [`Delivery::Reliable`], `None` for [`Delivery::DropWhenCongested`].
    ///
    /// The credit is the most advanced acknowledgement of any inbound bridge (the
    /// fastest one paces the stream; a slower one may see gaps). While no Zenoh
    /// subscriber matches the key at all, the outbound does not wait (Zenoh drops
    /// what nobody subscribes to). A matching subscriber that is not a bridge never
    /// acknowledges: give such a stream `window(None)`.
    pub fn window(mut self, window: Option<u64>) -> Self {
        self.window = Some(window.map(|w| w.max(1)));
        self
    }

    /// Before forwarding the first message, waits up to `timeout` for a matching
    /// Zenoh subscriber (Zenoh drops a publication nobody subscribes to). After the
    /// timeout it forwards anyway.
    pub fn wait_for_subscriber(mut self, timeout: Duration) -> Self {
        self.wait_for_subscriber = Some(timeout);
        self
    }

    /// Declares the publisher and the source's liveliness token, and starts the
    /// forwarding thread.
    ///
    /// # Errors
    /// [`BridgeError::InvalidKey`], [`BridgeError::KeyNotAllowed`],
    /// [`BridgeError::Zenoh`] if a declaration fails, [`BridgeError::Thread`].
    pub fn start(self) -> Result<Outbound, BridgeError> {
        let key = self.bridge.check_key(&self.key)?;
        let origin = self.bridge.origin;
        let stream = self.stream.unwrap_or_else(|| self.bridge.new_stream_id());
        let session = self.bridge.session.clone();
        let congestion = match self.delivery {
            Delivery::Reliable => CongestionControl::Block,
            Delivery::DropWhenCongested => CongestionControl::Drop,
        };
        let publisher = session
            .declare_publisher(key.clone())
            // Only other sessions: the bridge's own inbound side on this key gets
            // nothing of it, and the credit and the matching status count remote
            // subscribers only.
            .allowed_destination(Locality::Remote)
            .congestion_control(congestion)
            .express(self.express)
            .wait()
            .map_err(zenoh_err("declaring the publisher"))?;
        let token = session
            .liveliness()
            .declare_token(crate::token_key(key.as_str(), origin, stream))
            .wait()
            .map_err(zenoh_err("declaring the liveliness token"))?;
        let window = self.window.unwrap_or(match self.delivery {
            Delivery::Reliable => Some(DEFAULT_WINDOW),
            Delivery::DropWhenCongested => None,
        });
        let credit = Arc::new(Credit {
            acked: AtomicU64::new(0),
            thread: OnceLock::new(),
        });
        let acks = match window {
            None => None,
            Some(_) => {
                let credit = credit.clone();
                let ack_key = crate::ack_key(key.as_str(), origin, stream);
                let subscriber = session
                    .declare_subscriber(ack_key)
                    .callback(move |sample: zenoh::sample::Sample| {
                        let bytes = sample.payload().to_bytes();
                        if let Ok((header, _)) = wire::decode(&bytes)
                            && header.kind == Kind::Ack
                            && header.stream == stream
                        {
                            credit.acked.fetch_max(header.seq, Ordering::AcqRel);
                            if let Some(thread) = credit.thread.get() {
                                thread.unpark();
                            }
                        }
                    })
                    .wait()
                    .map_err(zenoh_err("declaring the acknowledgement subscriber"))?;
                Some(subscriber)
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            window,
            credit: credit.clone(),
            _acks: acks,
            source: self.source,
            publisher,
            _token: token,
            origin,
            stream,
            stop: stop.clone(),
            counters: counters.clone(),
            wait_for_subscriber: self.wait_for_subscriber,
        };
        let thread = std::thread::Builder::new()
            .name(format!("shmring-zenoh out {stream:x}"))
            .spawn(move || worker.run())
            .map_err(BridgeError::Thread)?;
        let _ = credit.thread.set(thread.thread().clone());
        Ok(Outbound {
            key,
            stream,
            stop,
            counters,
            thread: Some(thread),
        })
    }
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    bytes: AtomicU64,
    lagged: AtomicU64,
    credit_waits: AtomicU64,
    publications: AtomicU64,
}

/// The credit the acknowledgement callback hands the forwarding thread.
struct Credit {
    acked: AtomicU64,
    thread: OnceLock<std::thread::Thread>,
}

/// What an outbound direction has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundStats {
    /// Data messages published.
    pub sent: u64,
    /// Their bytes (local messages, headers not counted).
    pub bytes: u64,
    /// Messages a lagging local broadcast subscriber missed (their sequence
    /// numbers are skipped, so the far side reports them as a gap).
    pub lagged: u64,
    /// Times the thread waited for credit ([`OutboundBuilder::window`]).
    pub credit_waits: u64,
    /// Zenoh publications of data: one per message while the stream is idle,
    /// one per [batch](crate::wire) of the messages found waiting while it is
    /// busy.
    pub publications: u64,
}

/// Why an outbound direction ended (without an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundEnd {
    /// The local source disconnected; the end of stream went out after `sent`
    /// messages.
    SourceDisconnected {
        /// Data messages published.
        sent: u64,
    },
    /// [`Outbound::stop`]; the end of stream went out after `sent` messages.
    Stopped {
        /// Data messages published.
        sent: u64,
    },
}

/// A running local → Zenoh direction. Dropping it stops it as
/// [`stop`](Self::stop) does.
#[derive(Debug)]
pub struct Outbound {
    key: KeyExpr<'static>,
    stream: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<Result<OutboundEnd, BridgeError>>>,
}

impl Outbound {
    /// The key it publishes on.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// Its stream id.
    pub fn stream_id(&self) -> u64 {
        self.stream
    }

    /// Counters so far.
    pub fn stats(&self) -> OutboundStats {
        OutboundStats {
            sent: self.counters.sent.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
            lagged: self.counters.lagged.load(Ordering::Relaxed),
            credit_waits: self.counters.credit_waits.load(Ordering::Relaxed),
            publications: self.counters.publications.load(Ordering::Relaxed),
        }
    }

    /// Whether the thread has ended (the source disconnected, or an error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the source to end and the end of stream to go out.
    ///
    /// # Errors
    /// What ended the thread: [`BridgeError::Local`] for a failing local
    /// endpoint, [`BridgeError::Zenoh`] for a failed publication (the liveliness
    /// token then goes without an end of stream: the far side sees an abrupt end).
    pub fn join(mut self) -> Result<OutboundEnd, BridgeError> {
        self.join_thread()
    }

    /// Asks the thread to end: it publishes the end of stream after the message
    /// in hand (messages still in the local endpoint stay there), then returns.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn stop(mut self) -> Result<OutboundEnd, BridgeError> {
        self.stop.store(true, Ordering::Relaxed);
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<OutboundEnd, BridgeError> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| BridgeError::Panicked("outbound"))?,
            None => Err(BridgeError::Panicked("outbound")),
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = self.join_thread();
        }
    }
}

struct Worker<R> {
    window: Option<u64>,
    credit: Arc<Credit>,
    _acks: Option<zenoh::pubsub::Subscriber<()>>,
    source: R,
    publisher: zenoh::pubsub::Publisher<'static>,
    _token: zenoh::liveliness::LivelinessToken,
    origin: u64,
    stream: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    wait_for_subscriber: Option<Duration>,
}

/// What the local endpoint said after the messages of a batch.
enum AfterBatch {
    Disconnected,
    Lagged(u64),
}

impl<R: MessageReceiver> Worker<R> {
    /// Publishes the message in `scratch[..len]` (number `seq`), with every
    /// message waiting behind it in the local endpoint, as one Zenoh message: a
    /// batch when there is more than one. It stops at [`wire::MAX_BATCH_BYTES`],
    /// at the credit's `limit`, or when the local endpoint has nothing more now.
    /// Returns how many it published, and what ended the batch if the local
    /// endpoint said something besides "empty" (to be handled after it).
    fn publish_from(
        &mut self,
        scratch: &mut [u8],
        len: usize,
        seq: u64,
        limit: Option<u64>,
    ) -> Result<(u64, Option<AfterBatch>), BridgeError> {
        let first = scratch.get(..len).unwrap_or(scratch);
        let mut payload = Vec::with_capacity(HEADER_LEN + len);
        payload.extend_from_slice(&[0u8; HEADER_LEN]);
        payload.extend_from_slice(first);
        let mut bytes = len as u64;
        let mut count = 1u64;
        let mut after = None;
        while payload.len() < wire::MAX_BATCH_BYTES && limit.is_none_or(|limit| seq + count < limit)
        {
            match self.source.try_recv(scratch) {
                Ok(next_len) => {
                    if count == 1 {
                        // The first message becomes the batch's first record.
                        let prefix = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes();
                        payload.splice(HEADER_LEN..HEADER_LEN, prefix);
                    }
                    wire::push_record(&mut payload, scratch.get(..next_len).unwrap_or(scratch));
                    bytes += next_len as u64;
                    count += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    after = Some(AfterBatch::Disconnected);
                    break;
                }
                Err(TryRecvError::Lagged { missed }) => {
                    after = Some(AfterBatch::Lagged(missed));
                    break;
                }
                Err(other) => return Err(BridgeError::Local(other.into())),
            }
        }
        let header = Header {
            kind: if count == 1 { Kind::Data } else { Kind::Batch },
            origin: self.origin,
            stream: self.stream,
            seq,
        };
        let mut head = [0u8; HEADER_LEN];
        wire::encode_header(&header, &mut head);
        payload[..HEADER_LEN].copy_from_slice(&head);
        self.publisher
            .put(payload)
            .wait()
            .map_err(zenoh_err("publishing"))?;
        self.counters.sent.fetch_add(count, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.counters.publications.fetch_add(1, Ordering::Relaxed);
        Ok((count, after))
    }

    /// Waits until message `seq` is within the window, the stop flag, or no
    /// subscriber matches (then it raises the credit itself: nobody to wait for).
    fn wait_for_credit(&self, seq: u64, window: u64) -> Result<(), BridgeError> {
        self.counters.credit_waits.fetch_add(1, Ordering::Relaxed);
        let mut next_check = Instant::now() + TICK;
        while seq
            >= self
                .credit
                .acked
                .load(Ordering::Acquire)
                .saturating_add(window)
        {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if Instant::now() >= next_check {
                let matching = self
                    .publisher
                    .matching_status()
                    .wait()
                    .map_err(zenoh_err("reading the matching status"))?;
                if !matching.matching() {
                    self.credit.acked.fetch_max(seq + 1, Ordering::AcqRel);
                    return Ok(());
                }
                next_check = Instant::now() + TICK;
            }
            std::thread::park_timeout(Duration::from_millis(5));
        }
        Ok(())
    }

    fn run(mut self) -> Result<OutboundEnd, BridgeError> {
        if let Some(timeout) = self.wait_for_subscriber {
            let until = Instant::now() + timeout;
            while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                let matching = self
                    .publisher
                    .matching_status()
                    .wait()
                    .map_err(zenoh_err("reading the matching status"))?;
                if matching.matching() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut scratch = vec![0u8; self.source.max_message_len()];
        let mut seq: u64 = 0;
        let end = loop {
            if self.stop.load(Ordering::Relaxed) {
                break OutboundEnd::Stopped { sent: seq };
            }
            let limit = self.window.map(|window| {
                self.credit
                    .acked
                    .load(Ordering::Acquire)
                    .saturating_add(window)
            });
            if let (Some(window), Some(limit)) = (self.window, limit)
                && seq >= limit
            {
                self.wait_for_credit(seq, window)?;
                continue;
            }
            let next = match self
                .source
                .recv_deadline(&mut scratch, Some(Instant::now() + TICK))
            {
                Ok(len) => {
                    let (count, after) = self.publish_from(&mut scratch, len, seq, limit)?;
                    seq += count;
                    after
                }
                Err(RecvTimeoutError::TimedOut) => None,
                Err(RecvTimeoutError::Disconnected) => Some(AfterBatch::Disconnected),
                Err(RecvTimeoutError::Lagged { missed }) => Some(AfterBatch::Lagged(missed)),
                Err(other) => return Err(BridgeError::Local(other.into())),
            };
            match next {
                None => {}
                Some(AfterBatch::Disconnected) => {
                    break OutboundEnd::SourceDisconnected { sent: seq };
                }
                Some(AfterBatch::Lagged(missed)) => {
                    seq += missed;
                    self.counters.lagged.fetch_add(missed, Ordering::Relaxed);
                }
            }
        };
        let header = Header {
            kind: Kind::EndOfStream,
            origin: self.origin,
            stream: self.stream,
            seq,
        };
        let mut payload = [0u8; HEADER_LEN];
        wire::encode_header(&header, &mut payload);
        self.publisher
            .put(payload.to_vec())
            .wait()
            .map_err(zenoh_err("publishing the end of stream"))?;
        Ok(end)
    }
}
