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
/// How long after its last acknowledgement an idle inbound side repeats it.
const ACK_REPEAT: Duration = Duration::from_secs(1);
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
    max_sources: usize,
}

/// The default of [`InboundBuilder::max_sources`].
pub const DEFAULT_MAX_SOURCES: usize = 1024;

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
            max_sources: DEFAULT_MAX_SOURCES,
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

    /// Publications (a message or a batch each) the hand-off queue between
    /// Zenoh's callback and the forwarding thread holds (4096 by default, at
    /// least 1). The callback queues what it cannot deliver at once; when the
    /// queue is full it drops the publication and counts it
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

    /// How many sources (an outbound side's stream: origin and stream ids) it
    /// follows at once, [`DEFAULT_MAX_SOURCES`] by default, at least 1. Each
    /// costs a little memory and an acknowledgement publisher; a peer on the key
    /// can make up as many as it likes. When a new source comes at the limit,
    /// the ended sources are forgotten; if none has ended, the new source's
    /// message is dropped and counted ([`InboundStats::sources_refused`],
    /// [`BridgeError::TooManySources`]).
    pub fn max_sources(mut self, sources: usize) -> Self {
        self.max_sources = sources.max(1);
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
        let common = Arc::new(Common {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            capacity: self.handoff_capacity,
            counters: Counters::default(),
            stop: AtomicBool::new(false),
        });
        let (errors_tx, errors) = std::sync::mpsc::sync_channel(ERROR_QUEUE);
        let state = Arc::new(Mutex::new(Delivering {
            sink: Some(self.sink),
            origin: self.bridge.origin,
            delivery: self.delivery,
            ack_every: self.ack_every,
            max_sources: self.max_sources,
            common: common.clone(),
            errors: errors_tx,
            sources: HashMap::new(),
            ackers: HashMap::new(),
        }));
        let session = self.bridge.session.clone();
        let (data_common, data_state) = (common.clone(), state.clone());
        let subscriber = session
            .declare_subscriber(key.clone())
            .callback(move |sample: Sample| on_sample(&data_common, &data_state, sample))
            .wait()
            .map_err(zenoh_err("declaring the subscriber"))?;
        let live_common = common.clone();
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
                live_common.push(live_common.lock(), item);
            })
            .wait()
            .map_err(zenoh_err("declaring the liveliness subscriber"))?;
        let worker = Worker {
            common: common.clone(),
            state,
            grace: self.grace,
            end: self.end,
            lost: Vec::new(),
            batch: VecDeque::new(),
            session: session.clone(),
            _subscribers: (subscriber, liveliness),
        };
        let thread = std::thread::Builder::new()
            .name("shmring-zenoh in".to_owned())
            .spawn(move || worker.run())
            .map_err(BridgeError::Thread)?;
        Ok(Inbound {
            common,
            errors,
            thread: Some(thread),
        })
    }
}

/// The subscriber's callback. When nothing waits in the hand-off queue and
/// nobody else is delivering, it delivers the message itself with a
/// non-blocking send (the common case: no thread hand-off on the way). Anything
/// else, or a local endpoint without room, goes to the queue, in order, for the
/// forwarding thread. It never blocks beyond two short critical sections.
fn on_sample<S: MessageSender>(common: &Common, state: &Mutex<Delivering<S>>, sample: Sample) {
    let queue = common.lock();
    // Order: the queue is empty, and holding its lock keeps it so; the state's
    // lock is free, so the forwarding thread holds no batch taken from the queue
    // (it takes batches only while holding the state, and hands the state back
    // only with the queue seen empty). So this message is the next one.
    if queue.items.is_empty()
        && let Ok(mut state) = state.try_lock()
        && state.deliver_now(&sample)
    {
        return;
    }
    common.push(queue, Item::Data(sample));
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
    sources_refused: AtomicU64,
    errors_dropped: AtomicU64,
}

/// What the callbacks, the forwarding thread and the [`Inbound`] handle share.
struct Common {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    counters: Counters,
    stop: AtomicBool,
}

impl Common {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock means a panic elsewhere while holding it; the queue
        // itself is still consistent (every change is one push or one swap).
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `item` (the callbacks): a data message is dropped and counted
    /// when the queue holds its capacity of them.
    fn push(&self, mut queue: MutexGuard<'_, Queue>, item: Item) {
        if matches!(item, Item::Data(_)) {
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

    /// Waits until something is queued or `until`, whichever is first; takes
    /// nothing.
    fn wait_for_items(&self, until: Instant) {
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
            let now = Instant::now();
            if !queue.items.is_empty() || now >= until {
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

    /// Moves everything queued into `batch` (empty); false if there was
    /// nothing. The batch in hand is not counted against the capacity: up to
    /// twice the capacity of data messages can be held.
    fn take_all(&self, batch: &mut VecDeque<Item>) -> bool {
        let mut queue = self.lock();
        if queue.items.is_empty() {
            return false;
        }
        std::mem::swap(&mut queue.items, batch);
        queue.data = 0;
        true
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
    /// Publications (a message or a batch each) carrying this bridge's own
    /// origin: dropped.
    pub echoes: u64,
    /// Publications (a message or a batch each) the Zenoh callback dropped
    /// because the hand-off queue was full.
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
    /// Publications whose messages are all numbered before the one due (or
    /// come after their source's end): dropped.
    pub stale: u64,
    /// Sources that ended in band (an end of stream).
    pub ended_in_band: u64,
    /// Sources whose liveliness token went without an end of stream.
    pub lost: u64,
    /// Messages and liveliness tokens of new sources refused at
    /// [`InboundBuilder::max_sources`].
    pub sources_refused: u64,
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
    common: Arc<Common>,
    errors: Receiver<BridgeError>,
    thread: Option<JoinHandle<Result<InboundEnd, BridgeError>>>,
}

impl std::fmt::Debug for Common {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Common")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// Counters so far.
    pub fn stats(&self) -> InboundStats {
        let c = &self.common.counters;
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
            sources_refused: get(&c.sources_refused),
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
        self.common.stop.store(true, Ordering::Relaxed);
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
            self.common.stop.store(true, Ordering::Relaxed);
            let _ = self.join_thread();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    next: u64,
    ended: bool,
    acked: u64,
    /// When it was last acknowledged.
    acked_at: Option<Instant>,
}

const NEW_SOURCE: Source = Source {
    next: 0,
    ended: false,
    acked: 0,
    acked_at: None,
};

/// Whoever holds this delivers: a Zenoh callback (only the next message, only
/// without waiting) or the forwarding thread (everything else).
struct Delivering<S> {
    /// `None` once the direction has ended: the local receiver then sees
    /// `Disconnected`, whatever callback is still running.
    sink: Option<S>,
    origin: u64,
    delivery: Delivery,
    ack_every: u64,
    max_sources: usize,
    common: Arc<Common>,
    errors: SyncSender<BridgeError>,
    sources: HashMap<(u64, u64), Source>,
    /// Per source: the publisher of its acknowledgements (declared by the
    /// forwarding thread at its first message, on the key it arrived on).
    ackers: HashMap<(u64, u64), zenoh::pubsub::Publisher<'static>>,
}

/// The forwarding thread.
struct Worker<S> {
    common: Arc<Common>,
    state: Arc<Mutex<Delivering<S>>>,
    grace: Duration,
    end: EndPolicy,
    /// Sources whose token went, and when their grace ends.
    lost: Vec<((u64, u64), Instant)>,
    /// Items taken from the hand-off queue, not yet handled.
    batch: VecDeque<Item>,
    session: zenoh::Session,
    _subscribers: (zenoh::pubsub::Subscriber<()>, zenoh::pubsub::Subscriber<()>),
}

/// What delivering one message led to.
enum Flow {
    Continue,
    End(InboundEnd),
}

/// Locks the delivering state. A poisoned lock means a panic while delivering;
/// the counters and the sources are updated after each message, so they stay
/// consistent.
fn lock_state<S>(state: &Mutex<Delivering<S>>) -> MutexGuard<'_, Delivering<S>> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: MessageSender> Worker<S> {
    fn run(mut self) -> Result<InboundEnd, BridgeError> {
        let end = self.forward();
        // Undeclare first (no more callbacks), then drop the local sender so the
        // local receiver sees `Disconnected` now, not when Zenoh drops the
        // callbacks.
        let Worker {
            state,
            _subscribers,
            ..
        } = self;
        drop(_subscribers);
        let mut state = lock_state(&state);
        state.sink = None;
        state.ackers.clear();
        end
    }

    fn forward(&mut self) -> Result<InboundEnd, BridgeError> {
        loop {
            if self.common.stop.load(Ordering::Relaxed) {
                return Ok(InboundEnd::Stopped);
            }
            let mut until = Instant::now() + TICK;
            if let Some(first) = self.lost.iter().map(|(_, at)| *at).min() {
                until = until.min(first);
            }
            self.common.wait_for_items(until);
            let state = self.state.clone();
            let mut state = lock_state(&state);
            // Take batches while holding the state, until the queue is seen
            // empty: only then may a callback deliver directly again.
            let mut idle = true;
            while self.common.take_all(&mut self.batch) {
                idle = false;
                while let Some(item) = self.batch.pop_front() {
                    if let Flow::End(end) = self.handle(&mut state, item)? {
                        return Ok(end);
                    }
                }
            }
            if idle {
                state.ack_idle();
            }
            let now = Instant::now();
            let mut i = 0;
            while i < self.lost.len() {
                if self.lost[i].1 <= now {
                    let (id, _) = self.lost.swap_remove(i);
                    if let Some(source) = state.sources.get_mut(&id)
                        && !source.ended
                    {
                        source.ended = true;
                        self.common.counters.lost.fetch_add(1, Ordering::Relaxed);
                        state.ackers.remove(&id);
                    }
                } else {
                    i += 1;
                }
            }
            if self.end == EndPolicy::AfterAllSources
                && !state.sources.is_empty()
                && state.sources.values().all(|s| s.ended)
            {
                return Ok(InboundEnd::AllSourcesEnded);
            }
        }
    }

    fn handle(&mut self, state: &mut Delivering<S>, item: Item) -> Result<Flow, BridgeError> {
        match item {
            Item::Data(sample) => {
                let (flow, new_source) = state.on_data(&sample)?;
                if let Some((id, key)) = new_source {
                    self.declare_acker(state, id, &key);
                }
                Ok(flow)
            }
            Item::TokenUp(key) => {
                if let Some(id) = crate::parse_token_key(&key)
                    && id.0 != state.origin
                {
                    state.admit(id);
                }
                Ok(Flow::Continue)
            }
            Item::TokenGone(key) => {
                if let Some(id) = crate::parse_token_key(&key)
                    && state.sources.get(&id).is_some_and(|s| !s.ended)
                {
                    self.lost.push((id, Instant::now() + self.grace));
                }
                Ok(Flow::Continue)
            }
        }
    }

    fn declare_acker(&self, state: &mut Delivering<S>, id: (u64, u64), key: &str) {
        let ack_key = crate::ack_key(key, id.0, id.1);
        // Acknowledgements are published from Zenoh's callback too: never block
        // there. One dropped is made good by the next (each carries the count).
        let publisher = self
            .session
            .declare_publisher(ack_key)
            .congestion_control(zenoh::qos::CongestionControl::Drop)
            .wait();
        match publisher {
            Ok(publisher) => {
                state.ackers.insert(id, publisher);
            }
            Err(e) => state.report(zenoh_err("declaring an acknowledgement publisher")(e)),
        }
    }
}

impl<S: MessageSender> Delivering<S> {
    /// The callback's fast path: delivers `sample` if it is the next data
    /// message (or batch) of a known source and the local endpoint takes it now
    /// (or drops it, [`Delivery::DropWhenCongested`]). False for anything else,
    /// with nothing changed but the messages of a batch already delivered
    /// (recorded in their source): the forwarding thread then handles the
    /// sample in full, and skips those.
    fn deliver_now(&mut self, sample: &Sample) -> bool {
        if sample.kind() != SampleKind::Put {
            return false;
        }
        let bytes = sample.payload().to_bytes();
        let Ok((header, body)) = wire::decode(&bytes) else {
            return false;
        };
        let id = (header.origin, header.stream);
        if !matches!(header.kind, Kind::Data | Kind::Batch)
            || header.origin == self.origin
            || !self.ackers.contains_key(&id)
        {
            return false;
        }
        let Some(source) = self.sources.get(&id) else {
            return false;
        };
        if source.ended || header.seq != source.next {
            return false;
        }
        if header.kind == Kind::Data {
            return self.try_deliver(id, body);
        }
        wire::records(body).all(|message| self.try_deliver(id, message))
    }

    /// Sends one message of source `id` without waiting: true if it was
    /// delivered (or dropped and counted, [`Delivery::DropWhenCongested`]).
    fn try_deliver(&mut self, id: (u64, u64), message: &[u8]) -> bool {
        let Some(sink) = self.sink.as_mut() else {
            return false;
        };
        let counters = &self.common.counters;
        match sink.try_send(message) {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                counters
                    .bytes
                    .fetch_add(message.len() as u64, Ordering::Relaxed);
            }
            Err(shmring::TrySendError::Full { .. })
                if self.delivery == Delivery::DropWhenCongested =>
            {
                counters.local_full_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => return false,
        }
        self.delivered(id);
        true
    }

    /// Message `id.next` is done with (delivered or dropped): the next is due,
    /// and an acknowledgement if `ack_every` are unacknowledged.
    fn delivered(&mut self, id: (u64, u64)) {
        if let Some(source) = self.sources.get_mut(&id) {
            source.next = source.next.saturating_add(1);
            if source.next - source.acked >= self.ack_every {
                self.ack(id);
            }
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
        source.acked_at = Some(Instant::now());
        if let Err(e) = publisher.put(payload.to_vec()).wait() {
            let error = zenoh_err("publishing an acknowledgement")(e);
            self.report(error);
        }
    }

    /// With nothing to do: acknowledges every live source with unacknowledged
    /// deliveries, and repeats the last acknowledgement of one not acknowledged
    /// for [`ACK_REPEAT`] (acknowledgements are dropped rather than block a
    /// callback: a sender waiting for credit must not wait for one that was
    /// lost).
    fn ack_idle(&mut self) {
        let due: Vec<(u64, u64)> = self
            .sources
            .iter()
            .filter(|(_, s)| {
                !s.ended
                    && (s.next > s.acked || s.acked_at.is_some_and(|at| at.elapsed() >= ACK_REPEAT))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.ack(id);
        }
    }

    /// Source `id`, followed from now on if it is new and there is room (see
    /// [`InboundBuilder::max_sources`]); `None` if it is refused.
    fn admit(&mut self, id: (u64, u64)) -> Option<Source> {
        if let Some(source) = self.sources.get(&id) {
            return Some(*source);
        }
        if self.sources.len() >= self.max_sources {
            self.sources.retain(|_, source| !source.ended);
        }
        if self.sources.len() >= self.max_sources {
            self.common
                .counters
                .sources_refused
                .fetch_add(1, Ordering::Relaxed);
            self.report(BridgeError::TooManySources {
                origin: id.0,
                stream: id.1,
                max: self.max_sources,
            });
            return None;
        }
        self.sources.insert(id, NEW_SOURCE);
        Some(NEW_SOURCE)
    }

    fn report(&self, error: BridgeError) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.errors.try_send(error)
        {
            self.common
                .counters
                .errors_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The forwarding thread's full path for one data sample. Returns what
    /// follows, and a source that needs an acknowledgement publisher (its id and
    /// the key it arrived on).
    #[allow(clippy::type_complexity)]
    fn on_data(
        &mut self,
        sample: &Sample,
    ) -> Result<(Flow, Option<((u64, u64), String)>), BridgeError> {
        let common = self.common.clone();
        let counters = &common.counters;
        if sample.kind() != SampleKind::Put {
            // A delete on a bridged key carries no message: not ours.
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            self.report(BridgeError::Malformed {
                key: sample.key_expr().as_str().to_owned(),
                len: 0,
                problem: wire::WireError::TooShort { len: 0 },
            });
            return Ok((Flow::Continue, None));
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
                return Ok((Flow::Continue, None));
            }
        };
        if header.origin == self.origin {
            counters.echoes.fetch_add(1, Ordering::Relaxed);
            return Ok((Flow::Continue, None));
        }
        let id = (header.origin, header.stream);
        let Some(source) = self.admit(id) else {
            return Ok((Flow::Continue, None));
        };
        let expected = source.next;
        let count = wire::message_count(header.kind, body);
        // A batch that starts before the message due and ends after it: the
        // callback delivered its first part before the local endpoint filled.
        let done = if header.seq < expected && header.seq.saturating_add(count) > expected {
            expected - header.seq
        } else {
            0
        };
        if source.ended || (header.seq < expected && done == 0) {
            // Before the one due, or after the source's end (in band, or its
            // token gone and the grace passed).
            counters.stale.fetch_add(1, Ordering::Relaxed);
            self.report(BridgeError::Stale {
                origin: header.origin,
                stream: header.stream,
                expected,
                got: header.seq,
            });
            return Ok((Flow::Continue, None));
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
                self.sources.insert(
                    id,
                    Source {
                        next: header.seq,
                        ended: true,
                        ..source
                    },
                );
                self.common
                    .counters
                    .ended_in_band
                    .fetch_add(1, Ordering::Relaxed);
                self.ackers.remove(&id);
                Ok((Flow::Continue, None))
            }
            Kind::Data | Kind::Batch => {
                self.sources.insert(
                    id,
                    Source {
                        next: header.seq + done,
                        ..source
                    },
                );
                let new_source = (!self.ackers.contains_key(&id))
                    .then(|| (id, sample.key_expr().as_str().to_owned()));
                let flow = if header.kind == Kind::Data {
                    self.deliver_counted(id, body)?
                } else {
                    let mut flow = Flow::Continue;
                    for message in
                        wire::records(body).skip(usize::try_from(done).unwrap_or(usize::MAX))
                    {
                        flow = self.deliver_counted(id, message)?;
                        if let Flow::End(_) = flow {
                            break;
                        }
                    }
                    flow
                };
                Ok((flow, new_source))
            }
            Kind::Ack => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                self.report(BridgeError::Malformed {
                    key: sample.key_expr().as_str().to_owned(),
                    len: bytes.len(),
                    problem: wire::WireError::MisplacedAck,
                });
                Ok((Flow::Continue, None))
            }
        }
    }

    /// [`deliver`](Self::deliver), then the source's next message is due.
    fn deliver_counted(&mut self, id: (u64, u64), message: &[u8]) -> Result<Flow, BridgeError> {
        let flow = self.deliver(message)?;
        if let Flow::Continue = flow {
            self.delivered(id);
        }
        Ok(flow)
    }

    /// Sends `body` into the local endpoint as the delivery policy says: waits
    /// for room ([`Delivery::Reliable`], looking at the stop flag every tick) or
    /// drops and counts.
    fn deliver(&mut self, body: &[u8]) -> Result<Flow, BridgeError> {
        let Some(sink) = self.sink.as_mut() else {
            return Ok(Flow::End(InboundEnd::Stopped));
        };
        let counters = &self.common.counters;
        let sent = if self.delivery == Delivery::DropWhenCongested {
            match sink.try_send(body) {
                Ok(()) => Ok(()),
                Err(shmring::TrySendError::Full { .. }) => {
                    counters.local_full_dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(Flow::Continue);
                }
                Err(shmring::TrySendError::Disconnected) => Err(SendTimeoutError::Disconnected),
                Err(shmring::TrySendError::MessageTooLarge { len, max }) => {
                    Err(SendTimeoutError::MessageTooLarge { len, max })
                }
                Err(other) => return Err(BridgeError::Local(other.into())),
            }
        } else {
            loop {
                match sink.send_deadline(body, Some(Instant::now() + TICK)) {
                    Err(SendTimeoutError::TimedOut) => {
                        if self.common.stop.load(Ordering::Relaxed) {
                            return Ok(Flow::End(InboundEnd::Stopped));
                        }
                    }
                    other => break other,
                }
            }
        };
        match sent {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                counters
                    .bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                Ok(Flow::Continue)
            }
            Err(SendTimeoutError::Disconnected) => Ok(Flow::End(InboundEnd::LocalReceiverGone)),
            Err(SendTimeoutError::MessageTooLarge { len, max }) => {
                counters.too_large.fetch_add(1, Ordering::Relaxed);
                self.report(BridgeError::TooLargeForLocal { len, max });
                Ok(Flow::Continue)
            }
            Err(other) => Err(BridgeError::Local(shmring::Error::from(other))),
        }
    }
}
