//! Zenoh → local endpoint.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmring::{MessageSender, SendTimeoutError};
use zenoh::Wait;
use zenoh::sample::{Sample, SampleKind};

use crate::error::zenoh_err;
use crate::wire::{self, Kind};
use crate::{Bridge, BridgeError, Delivery};

/// How often a waiting inbound thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(50);
/// How long the forwarding thread spins for the next message before sleeping.
const SPIN: Duration = Duration::from_micros(50);
/// Errors kept for [`Inbound::try_error`] before more are only counted.
const ERROR_QUEUE: usize = 1024;

/// When an inbound direction ends by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EndPolicy {
    /// Once it has seen at least one source (a message or a liveliness token)
    /// and every source it has seen has ended (an end of stream, or its token
    /// gone): it then drops the local sender, so the local receiver gets
    /// `Disconnected` after every message delivered.
    #[default]
    AfterAllSources,
    /// Never: only [`Inbound::stop`] (or the local receiver going) ends it.
    Never,
}

/// Builds an [`Inbound`] direction: [`Bridge::inbound`].
#[derive(Debug)]
pub struct InboundBuilder<S> {
    bridge: Bridge,
    key: String,
    sink: S,
    delivery: Delivery,
    handoff_capacity: usize,
    grace: Duration,
    end: EndPolicy,
    ack_every: u64,
}

impl Bridge {
    /// Forwards every bridged message published on `key` (a key expression) into
    /// `sink` (a channel or MPMC sender, a topic publisher: any
    /// [`MessageSender`]).
    pub fn inbound<S>(&self, key: &str, sink: S) -> InboundBuilder<S>
    where
        S: MessageSender + Send + 'static,
    {
        InboundBuilder {
            bridge: self.clone(),
            key: key.to_owned(),
            sink,
            delivery: Delivery::Reliable,
            handoff_capacity: 4096,
            grace: Duration::from_millis(50),
            end: EndPolicy::AfterAllSources,
            ack_every: 128,
        }
    }
}

impl<S: MessageSender + Send + 'static> InboundBuilder<S> {
    /// [`Delivery::Reliable`] (the default: wait for room in the local endpoint)
    /// or [`Delivery::DropWhenCongested`] (drop and count when it is full).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Data messages the hand-off queue between Zenoh's callback and the
    /// forwarding thread holds (4096 by default, at least 1). When it is full the
    /// callback drops the message and counts it
    /// ([`InboundStats::handoff_dropped`]): it never blocks.
    pub fn handoff_capacity(mut self, messages: usize) -> Self {
        self.handoff_capacity = messages.max(1);
        self
    }

    /// How long after a source's liveliness token goes (without an end of
    /// stream) the source is ended: data still on its way meanwhile is delivered.
    /// 50 ms by default.
    pub fn liveliness_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// When the direction ends by itself ([`EndPolicy::AfterAllSources`] by
    /// default).
    pub fn end_policy(mut self, end: EndPolicy) -> Self {
        self.end = end;
        self
    }

    /// How often it acknowledges a source's messages (the credit of
    /// [`OutboundBuilder::window`](crate::OutboundBuilder::window)): every
    /// `messages` delivered (128 by default, at least 1), and whenever it has
    /// nothing to do. Keep it well below the sources' window.
    pub fn ack_every(mut self, messages: u64) -> Self {
        self.ack_every = messages.max(1);
        self
    }

    /// Declares the subscriber and the liveliness subscriber, and starts the
    /// forwarding thread.
    ///
    /// # Errors
    /// [`BridgeError::InvalidKey`], [`BridgeError::KeyNotAllowed`],
    /// [`BridgeError::Zenoh`] if a declaration fails, [`BridgeError::Thread`].
    pub fn start(self) -> Result<Inbound, BridgeError> {
        let key = self.bridge.check_key(&self.key)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            capacity: self.handoff_capacity,
            counters: Counters::default(),
        });
        let session = self.bridge.session.clone();
        let data_shared = shared.clone();
        let subscriber = session
            .declare_subscriber(key.clone())
            .callback(move |sample: Sample| data_shared.push(Item::Data(sample), true))
            .wait()
            .map_err(zenoh_err("declaring the subscriber"))?;
        let live_shared = shared.clone();
        let live_key = format!("{}/{}/*/*", key.as_str(), crate::LIVELINESS_CHUNK);
        let liveliness = session
            .liveliness()
            .declare_subscriber(live_key)
            .history(true)
            .callback(move |sample: Sample| {
                let token = sample.key_expr().as_str().to_owned();
                let item = match sample.kind() {
                    SampleKind::Put => Item::TokenUp(token),
                    SampleKind::Delete => Item::TokenGone(token),
                };
                live_shared.push(item, false);
            })
            .wait()
            .map_err(zenoh_err("declaring the liveliness subscriber"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (errors_tx, errors) = std::sync::mpsc::sync_channel(ERROR_QUEUE);
        let worker = Worker {
            sink: self.sink,
            origin: self.bridge.origin,
            delivery: self.delivery,
            grace: self.grace,
            end: self.end,
            shared: shared.clone(),
            stop: stop.clone(),
            errors: errors_tx,
            sources: HashMap::new(),
            lost: Vec::new(),
            batch: VecDeque::new(),
            session: session.clone(),
            ack_every: self.ack_every,
            ackers: HashMap::new(),
            _subscribers: (subscriber, liveliness),
        };
        let thread = std::thread::Builder::new()
            .name("shmring-zenoh in".to_owned())
            .spawn(move || worker.run())
            .map_err(BridgeError::Thread)?;
        Ok(Inbound {
            stop,
            shared,
            errors,
            thread: Some(thread),
        })
    }
}

enum Item {
    Data(Sample),
    TokenUp(String),
    TokenGone(String),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    data: usize,
    /// The forwarding thread sleeps on `ready`: a push must notify.
    waiting: bool,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    bytes: AtomicU64,
    malformed: AtomicU64,
    echoes: AtomicU64,
    handoff_dropped: AtomicU64,
    local_full_dropped: AtomicU64,
    too_large: AtomicU64,
    gaps: AtomicU64,
    missing: AtomicU64,
    stale: AtomicU64,
    ended_in_band: AtomicU64,
    lost: AtomicU64,
    errors_dropped: AtomicU64,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock means a panic elsewhere while holding it; the queue
        // itself is still consistent (every change is one push or pop).
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Zenoh's callbacks: never blocks beyond the queue's short critical section.
    fn push(&self, item: Item, is_data: bool) {
        let mut queue = self.lock();
        if is_data {
            if queue.data >= self.capacity {
                drop(queue);
                self.counters
                    .handoff_dropped
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.data += 1;
        }
        queue.items.push_back(item);
        let wake = queue.waiting;
        drop(queue);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Moves everything queued into `batch` (empty), waiting until `until` at
    /// most for something. The batch in hand is not counted against the
    /// capacity: up to twice the capacity of data messages can be held.
    fn take_all(&self, batch: &mut VecDeque<Item>, until: Instant) {
        // A short spin first: a message usually follows the last one closely, and
        // sleeping on the condition variable costs a wake-up on each side.
        let spin_until = Instant::now() + SPIN;
        let mut queue = self.lock();
        while queue.items.is_empty() && Instant::now() < spin_until.min(until) {
            drop(queue);
            std::thread::yield_now();
            queue = self.lock();
        }
        loop {
            if !queue.items.is_empty() {
                std::mem::swap(&mut queue.items, batch);
                queue.data = 0;
                return;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            queue.waiting = true;
            queue = match self.ready.wait_timeout(queue, until - now) {
                Ok((queue, _)) => queue,
                Err(poisoned) => poisoned.into_inner().0,
            };
            queue.waiting = false;
        }
    }
}

/// What an inbound direction has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundStats {
    /// Messages sent into the local endpoint.
    pub delivered: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Payloads that were not valid bridged messages: dropped.
    pub malformed: u64,
    /// Messages carrying this bridge's own origin: dropped.
    pub echoes: u64,
    /// Messages the Zenoh callback dropped because the hand-off queue was full.
    pub handoff_dropped: u64,
    /// Messages dropped because the local endpoint was full
    /// ([`Delivery::DropWhenCongested`] only).
    pub local_full_dropped: u64,
    /// Messages longer than the local endpoint takes: dropped.
    pub too_large: u64,
    /// Gaps found ([`BridgeError::Gap`]).
    pub gaps: u64,
    /// Messages missing in those gaps, in total.
    pub missing: u64,
    /// Messages numbered before the one due: dropped.
    pub stale: u64,
    /// Sources that ended in band (an end of stream).
    pub ended_in_band: u64,
    /// Sources whose liveliness token went without an end of stream.
    pub lost: u64,
    /// Errors not kept because [`Inbound::try_error`] was not called often enough.
    pub errors_dropped: u64,
}

/// Why an inbound direction ended (without an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundEnd {
    /// Every source seen has ended ([`EndPolicy::AfterAllSources`]); the local
    /// sender was dropped.
    AllSourcesEnded,
    /// [`Inbound::stop`].
    Stopped,
    /// The local receiver has gone.
    LocalReceiverGone,
}

/// A running Zenoh → local direction. Dropping it stops it as
/// [`stop`](Self::stop) does.
#[derive(Debug)]
pub struct Inbound {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    errors: Receiver<BridgeError>,
    thread: Option<JoinHandle<Result<InboundEnd, BridgeError>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// Counters so far.
    pub fn stats(&self) -> InboundStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        InboundStats {
            delivered: get(&c.delivered),
            bytes: get(&c.bytes),
            malformed: get(&c.malformed),
            echoes: get(&c.echoes),
            handoff_dropped: get(&c.handoff_dropped),
            local_full_dropped: get(&c.local_full_dropped),
            too_large: get(&c.too_large),
            gaps: get(&c.gaps),
            missing: get(&c.missing),
            stale: get(&c.stale),
            ended_in_band: get(&c.ended_in_band),
            lost: get(&c.lost),
            errors_dropped: get(&c.errors_dropped),
        }
    }

    /// The next problem found in the stream, if any: [`BridgeError::Gap`],
    /// [`BridgeError::Stale`], [`BridgeError::Malformed`],
    /// [`BridgeError::TooLargeForLocal`]. The first 1024 unread are kept.
    pub fn try_error(&self) -> Option<BridgeError> {
        self.errors.try_recv().ok()
    }

    /// As [`try_error`](Self::try_error), waiting up to `timeout` for one.
    pub fn error_timeout(&self, timeout: Duration) -> Option<BridgeError> {
        self.errors.recv_timeout(timeout).ok()
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the direction to end by itself.
    ///
    /// # Errors
    /// [`BridgeError::Local`] when the local endpoint failed.
    pub fn join(mut self) -> Result<InboundEnd, BridgeError> {
        self.join_thread()
    }

    /// Ends the direction (within 50 ms plus the message in hand): the
    /// subscribers are undeclared and the local sender dropped.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn stop(mut self) -> Result<InboundEnd, BridgeError> {
        self.stop.store(true, Ordering::Relaxed);
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<InboundEnd, BridgeError> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| BridgeError::Panicked("inbound"))?,
            None => Err(BridgeError::Panicked("inbound")),
        }
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = self.join_thread();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    next: u64,
    ended: bool,
    acked: u64,
}

const NEW_SOURCE: Source = Source {
    next: 0,
    ended: false,
    acked: 0,
};

struct Worker<S> {
    sink: S,
    origin: u64,
    delivery: Delivery,
    grace: Duration,
    end: EndPolicy,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    errors: SyncSender<BridgeError>,
    sources: HashMap<(u64, u64), Source>,
    /// Sources whose token went, and when their grace ends.
    lost: Vec<((u64, u64), Instant)>,
    /// Items taken from the hand-off queue, not yet handled.
    batch: VecDeque<Item>,
    session: zenoh::Session,
    ack_every: u64,
    /// Per source: the publisher of its acknowledgements (declared at its first
    /// message, on the key it arrived on).
    ackers: HashMap<(u64, u64), zenoh::pubsub::Publisher<'static>>,
    _subscribers: (zenoh::pubsub::Subscriber<()>, zenoh::pubsub::Subscriber<()>),
}

/// What delivering one message led to.
enum Flow {
    Continue,
    End(InboundEnd),
}

impl<S: MessageSender> Worker<S> {
    fn run(mut self) -> Result<InboundEnd, BridgeError> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(InboundEnd::Stopped);
            }
            let mut until = Instant::now() + TICK;
            if let Some(first) = self.lost.iter().map(|(_, at)| *at).min() {
                until = until.min(first);
            }
            if self.batch.is_empty() {
                self.shared.take_all(&mut self.batch, until);
            }
            let flow = match self.batch.pop_front() {
                Some(Item::Data(sample)) => self.on_data(&sample)?,
                Some(Item::TokenUp(key)) => {
                    if let Some(id) = crate::parse_token_key(&key)
                        && id.0 != self.origin
                    {
                        self.sources.entry(id).or_insert(NEW_SOURCE);
                    }
                    Flow::Continue
                }
                Some(Item::TokenGone(key)) => {
                    if let Some(id) = crate::parse_token_key(&key)
                        && self.sources.get(&id).is_some_and(|s| !s.ended)
                    {
                        self.lost.push((id, Instant::now() + self.grace));
                    }
                    Flow::Continue
                }
                None => {
                    self.ack_idle();
                    Flow::Continue
                }
            };
            if let Flow::End(end) = flow {
                return Ok(end);
            }
            let now = Instant::now();
            let mut i = 0;
            while i < self.lost.len() {
                if self.lost[i].1 <= now {
                    let (id, _) = self.lost.swap_remove(i);
                    if let Some(source) = self.sources.get_mut(&id)
                        && !source.ended
                    {
                        source.ended = true;
                        self.shared.counters.lost.fetch_add(1, Ordering::Relaxed);
                        self.ackers.remove(&id);
                    }
                } else {
                    i += 1;
                }
            }
            if self.end == EndPolicy::AfterAllSources
                && !self.sources.is_empty()
                && self.sources.values().all(|s| s.ended)
            {
                return Ok(InboundEnd::AllSourcesEnded);
            }
        }
    }

    fn declare_acker(&mut self, id: (u64, u64), key: &str) {
        let ack_key = crate::ack_key(key, id.0, id.1);
        match self.session.declare_publisher(ack_key).wait() {
            Ok(publisher) => {
                self.ackers.insert(id, publisher);
            }
            Err(e) => self.report(zenoh_err("declaring an acknowledgement publisher")(e)),
        }
    }

    /// Acknowledges what was delivered of source `id`.
    fn ack(&mut self, id: (u64, u64)) {
        let Some(source) = self.sources.get_mut(&id) else {
            return;
        };
        let Some(publisher) = self.ackers.get(&id) else {
            return;
        };
        let header = wire::Header {
            kind: Kind::Ack,
            origin: self.origin,
            stream: id.1,
            seq: source.next,
        };
        let mut payload = [0u8; wire::HEADER_LEN];
        wire::encode_header(&header, &mut payload);
        source.acked = source.next;
        if let Err(e) = publisher.put(payload.to_vec()).wait() {
            let error = zenoh_err("publishing an acknowledgement")(e);
            self.report(error);
        }
    }

    /// With nothing to do: acknowledges every live source with unacknowledged
    /// deliveries.
    fn ack_idle(&mut self) {
        let due: Vec<(u64, u64)> = self
            .sources
            .iter()
            .filter(|(_, s)| !s.ended && s.next > s.acked)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.ack(id);
        }
    }

    fn report(&self, error: BridgeError) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.errors.try_send(error)
        {
            self.shared
                .counters
                .errors_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_data(&mut self, sample: &Sample) -> Result<Flow, BridgeError> {
        let counters = &self.shared.counters;
        if sample.kind() != SampleKind::Put {
            // A delete on a bridged key carries no message: not ours.
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            self.report(BridgeError::Malformed {
                key: sample.key_expr().as_str().to_owned(),
                len: 0,
                problem: wire::WireError::TooShort { len: 0 },
            });
            return Ok(Flow::Continue);
        }
        let bytes = sample.payload().to_bytes();
        let (header, body) = match wire::decode(&bytes) {
            Ok(decoded) => decoded,
            Err(problem) => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                self.report(BridgeError::Malformed {
                    key: sample.key_expr().as_str().to_owned(),
                    len: bytes.len(),
                    problem,
                });
                return Ok(Flow::Continue);
            }
        };
        if header.origin == self.origin {
            counters.echoes.fetch_add(1, Ordering::Relaxed);
            return Ok(Flow::Continue);
        }
        let id = (header.origin, header.stream);
        let mut source = *self.sources.entry(id).or_insert(NEW_SOURCE);
        if source.ended {
            // After its end (in band, or its token gone and the grace passed).
            counters.stale.fetch_add(1, Ordering::Relaxed);
            let expected = source.next;
            self.report(BridgeError::Stale {
                origin: header.origin,
                stream: header.stream,
                expected,
                got: header.seq,
            });
            return Ok(Flow::Continue);
        }
        let expected = source.next;
        if header.seq < expected {
            counters.stale.fetch_add(1, Ordering::Relaxed);
            self.report(BridgeError::Stale {
                origin: header.origin,
                stream: header.stream,
                expected,
                got: header.seq,
            });
            return Ok(Flow::Continue);
        }
        if header.seq > expected {
            counters.gaps.fetch_add(1, Ordering::Relaxed);
            counters
                .missing
                .fetch_add(header.seq - expected, Ordering::Relaxed);
            self.report(BridgeError::Gap {
                origin: header.origin,
                stream: header.stream,
                expected,
                got: header.seq,
            });
        }
        match header.kind {
            Kind::EndOfStream => {
                source.next = header.seq;
                source.ended = true;
                counters.ended_in_band.fetch_add(1, Ordering::Relaxed);
                self.sources.insert(id, source);
                self.lost.retain(|(lost, _)| *lost != id);
                self.ackers.remove(&id);
                Ok(Flow::Continue)
            }
            Kind::Data => {
                source.next = header.seq.saturating_add(1);
                self.sources.insert(id, source);
                if !self.ackers.contains_key(&id) {
                    self.declare_acker(id, sample.key_expr().as_str());
                }
                let flow = self.deliver(body)?;
                if source.next - source.acked >= self.ack_every {
                    self.ack(id);
                }
                Ok(flow)
            }
            Kind::Ack => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                self.report(BridgeError::Malformed {
                    key: sample.key_expr().as_str().to_owned(),
                    len: bytes.len(),
                    problem: wire::WireError::MisplacedAck,
                });
                Ok(Flow::Continue)
            }
        }
    }

    fn deliver(&mut self, body: &[u8]) -> Result<Flow, BridgeError> {
        let counters = &self.shared.counters;
        if self.delivery == Delivery::DropWhenCongested {
            return match self.sink.try_send(body) {
                Ok(()) => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    counters
                        .bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    Ok(Flow::Continue)
                }
                Err(shmring::TrySendError::Full { .. }) => {
                    counters.local_full_dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(Flow::Continue)
                }
                Err(shmring::TrySendError::Disconnected) => {
                    Ok(Flow::End(InboundEnd::LocalReceiverGone))
                }
                Err(shmring::TrySendError::MessageTooLarge { len, max }) => {
                    counters.too_large.fetch_add(1, Ordering::Relaxed);
                    self.report(BridgeError::TooLargeForLocal { len, max });
                    Ok(Flow::Continue)
                }
                Err(other) => Err(BridgeError::Local(other.into())),
            };
        }
        loop {
            match self.sink.send_deadline(body, Some(Instant::now() + TICK)) {
                Ok(()) => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    counters
                        .bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    return Ok(Flow::Continue);
                }
                Err(SendTimeoutError::TimedOut) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Ok(Flow::End(InboundEnd::Stopped));
                    }
                }
                Err(SendTimeoutError::Disconnected) => {
                    return Ok(Flow::End(InboundEnd::LocalReceiverGone));
                }
                Err(SendTimeoutError::MessageTooLarge { len, max }) => {
                    counters.too_large.fetch_add(1, Ordering::Relaxed);
                    self.report(BridgeError::TooLargeForLocal { len, max });
                    return Ok(Flow::Continue);
                }
                Err(other) => return Err(BridgeError::Local(shmring::Error::from(other))),
            }
        }
    }
}
