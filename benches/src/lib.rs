//! Runners shared by the criterion benches and the comparison program.
//!
//! Two comparisons live here:
//!
//! - **In-process** (this module's runners and [`CONTENDERS`]): each runner moves
//!   `count` 8-byte messages (a `u64` sequence) from one thread to another through
//!   one queue and returns the time from the moment both threads are ready to the
//!   moment the consumer has received the last message. The consumer checks the sum
//!   of what it received before the time is reported.
//! - **Cross-process** ([`cross`], the program's default): round trips (8 B and
//!   1 KiB), one-way throughput (8-byte messages) and bandwidth (64 KiB messages)
//!   between two real processes: shmring under each wait strategy and in batches,
//!   iceoryx2 (cargo feature `iceoryx2`), Unix stream and `SOCK_SEQPACKET` sockets,
//!   TCP on 127.0.0.1, pipes, FIFOs and POSIX message queues, against the
//!   cache-line limit, a raw futex and [`shared_bare`], a bare ring in shared
//!   memory.

pub mod cross;
pub mod mpmc_threads;

use std::alloc::{self, Layout};
use std::hint::spin_loop;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use shmring_core::{Consumer, PopError, Producer, PushError, RawRegion, segment_layout};

/// A shmring ring in heap memory, for in-process benchmarks.
#[derive(Debug)]
pub struct HeapRing {
    ptr: *mut u8,
    layout: Layout,
}

impl HeapRing {
    /// A ring whose data region holds `capacity` bytes.
    ///
    /// # Panics
    /// If `capacity` is not a valid ring capacity or memory runs out.
    pub fn new(capacity: usize) -> Self {
        let layout = segment_layout(capacity).expect("valid capacity");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Self { ptr, layout }
    }

    /// Writes a fresh layout and claims both sides.
    pub fn split(&mut self) -> (Producer<RawRegion>, Consumer<RawRegion>) {
        let capacity = self.layout.size() - shmring_core::DATA_OFFSET;
        // SAFETY: the allocation lives as long as `self`, which the caller keeps
        // beyond the handles (they borrow nothing, so the benches keep it in scope
        // for the whole run), and is touched only through the handles.
        let region = unsafe { RawRegion::init(self.ptr, self.layout.size(), capacity) }
            .expect("fresh layout");
        let one = NonZeroU32::new(1).expect("non-zero");
        (
            Producer::claim(region.clone(), one).expect("producer"),
            Consumer::claim(region, one).expect("consumer"),
        )
    }
}

impl Drop for HeapRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr, self.layout) };
    }
}

/// Bytes of ring an 8-byte message takes in shmring (header + payload).
pub const SHMRING_FRAME: usize = 16;

/// Messages per batch in the batched runners.
pub const BATCH: usize = 64;

fn expected_sum(count: u64) -> u64 {
    count.wrapping_mul(count.wrapping_sub(1)) / 2
}

/// Runs `produce` and `consume` on two threads, timing from a shared start.
fn two_threads(
    produce: impl FnOnce() + Send,
    consume: impl FnOnce() -> u64 + Send,
    count: u64,
) -> Duration {
    let barrier = Barrier::new(2);
    let (elapsed, sum) = thread::scope(|s| {
        let consumer = s.spawn(|| {
            barrier.wait();
            let start = Instant::now();
            let sum = consume();
            (start.elapsed(), sum)
        });
        barrier.wait();
        produce();
        consumer.join().expect("consumer thread")
    });
    assert_eq!(
        sum,
        expected_sum(count),
        "consumer received the wrong messages"
    );
    elapsed
}

/// shmring, message by message: `push` and `pop`, with room for `capacity_msgs`
/// messages (twice the bytes of an rtrb ring of as many `u64`).
pub fn shmring(count: u64, capacity_msgs: usize) -> Duration {
    shmring_in(count, capacity_msgs * SHMRING_FRAME)
}

/// [`shmring`] in as many bytes as rtrb's ring of `capacity_msgs` `u64`s (room for
/// half as many messages).
pub fn shmring_equal_bytes(count: u64, capacity_msgs: usize) -> Duration {
    shmring_in(count, capacity_msgs * 8)
}

fn shmring_in(count: u64, ring_bytes: usize) -> Duration {
    let mut ring = HeapRing::new(ring_bytes);
    let (mut tx, mut rx) = ring.split();
    two_threads(
        move || {
            for i in 0..count {
                let bytes = i.to_ne_bytes();
                loop {
                    match tx.push(&bytes) {
                        Ok(()) => break,
                        Err(PushError::Full { .. }) => spin_loop(),
                        Err(e) => panic!("push: {e}"),
                    }
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut buf = [0u8; 8];
            let mut got = 0;
            while got < count {
                match rx.pop(&mut buf) {
                    Ok(_) => {
                        sum = sum.wrapping_add(u64::from_ne_bytes(buf));
                        got += 1;
                    }
                    Err(PopError::Empty) => spin_loop(),
                    Err(e) => panic!("pop: {e}"),
                }
            }
            sum
        },
        count,
    )
}

/// shmring with the batch API: the producer publishes [`BATCH`] messages with one
/// store; the consumer reads up to [`BATCH`] in place and releases them with one.
/// Room for `capacity_msgs` messages.
pub fn shmring_batched(count: u64, capacity_msgs: usize) -> Duration {
    shmring_batched_in(count, capacity_msgs * SHMRING_FRAME)
}

/// [`shmring_batched`] in as many bytes as rtrb's ring of `capacity_msgs` `u64`s.
pub fn shmring_batched_equal_bytes(count: u64, capacity_msgs: usize) -> Duration {
    shmring_batched_in(count, capacity_msgs * 8)
}

fn shmring_batched_in(count: u64, ring_bytes: usize) -> Duration {
    let mut ring = HeapRing::new(ring_bytes);
    let (mut tx, mut rx) = ring.split();
    two_threads(
        move || {
            let mut i = 0;
            while i < count {
                let mut batch = tx.batch();
                let end = (i + BATCH as u64).min(count);
                while i < end {
                    match batch.push(&i.to_ne_bytes()) {
                        Ok(()) => i += 1,
                        Err(PushError::Full { .. }) => break,
                        Err(e) => panic!("push: {e}"),
                    }
                }
                drop(batch);
                if i < end {
                    spin_loop();
                }
            }
        },
        move || consume_batches(&mut rx, count),
        count,
    )
}

/// shmring with the zero-copy batch API, as rtrb's chunks: the producer reserves up
/// to [`BATCH`] 8-byte messages at once (`Batch::grant_run`), writes them in place
/// and publishes them with one store; the consumer reads up to [`BATCH`] in place
/// and releases them with one. Room for `capacity_msgs` messages of 16-byte frames
/// (a run packs them at 8 bytes each, so the ring holds twice as many).
pub fn shmring_run_grant(count: u64, capacity_msgs: usize) -> Duration {
    shmring_run_grant_in(count, capacity_msgs * SHMRING_FRAME)
}

/// [`shmring_run_grant`] in as many bytes as rtrb's ring of `capacity_msgs` `u64`s
/// (in runs, as many messages).
pub fn shmring_run_grant_equal_bytes(count: u64, capacity_msgs: usize) -> Duration {
    shmring_run_grant_in(count, capacity_msgs * 8)
}

fn shmring_run_grant_in(count: u64, ring_bytes: usize) -> Duration {
    let mut ring = HeapRing::new(ring_bytes);
    let (mut tx, mut rx) = ring.split();
    two_threads(
        move || {
            let mut i = 0;
            while i < count {
                let mut batch = tx.batch();
                let want = (count - i).min(BATCH as u64) as usize;
                match batch.grant_run(8, want) {
                    Ok(mut grant) => {
                        let n = grant.count();
                        for (k, message) in grant.messages_mut().enumerate() {
                            message.copy_from_slice(&(i + k as u64).to_ne_bytes());
                        }
                        grant.commit(n);
                        i += n as u64;
                    }
                    Err(PushError::Full { .. }) => {
                        drop(batch);
                        spin_loop();
                    }
                    Err(e) => panic!("grant_run: {e}"),
                }
            }
        },
        move || consume_batches(&mut rx, count),
        count,
    )
}

/// The consumer of the batched runners: `read_batch` of up to [`BATCH`].
fn consume_batches(rx: &mut Consumer<RawRegion>, count: u64) -> u64 {
    let mut sum = 0u64;
    let mut got = 0;
    while got < count {
        let n = rx
            .read_batch(BATCH, |msg| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(msg);
                sum = sum.wrapping_add(u64::from_ne_bytes(bytes));
            })
            .expect("read_batch");
        if n == 0 {
            spin_loop();
        }
        got += n as u64;
    }
    sum
}

/// rtrb, item by item: `push` and `pop`.
pub fn rtrb(count: u64, capacity_msgs: usize) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(capacity_msgs);
    two_threads(
        move || {
            for i in 0..count {
                while tx.push(i).is_err() {
                    spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < count {
                match rx.pop() {
                    Ok(v) => {
                        sum = sum.wrapping_add(v);
                        got += 1;
                    }
                    Err(_) => spin_loop(),
                }
            }
            sum
        },
        count,
    )
}

/// rtrb with its chunk API, up to [`BATCH`] items a chunk on both sides.
pub fn rtrb_chunks(count: u64, capacity_msgs: usize) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(capacity_msgs);
    two_threads(
        move || {
            let mut i = 0u64;
            while i < count {
                let n = tx.slots().min(BATCH).min((count - i) as usize);
                if n == 0 {
                    spin_loop();
                    continue;
                }
                let chunk = tx.write_chunk_uninit(n).expect("slots checked");
                let written = chunk.fill_from_iter(i..);
                i += written as u64;
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0u64;
            while got < count {
                let n = rx.slots().min(BATCH);
                if n == 0 {
                    spin_loop();
                    continue;
                }
                let chunk = rx.read_chunk(n).expect("slots checked");
                let (a, b) = chunk.as_slices();
                for v in a.iter().chain(b) {
                    sum = sum.wrapping_add(*v);
                }
                chunk.commit_all();
                got += n as u64;
            }
            sum
        },
        count,
    )
}

/// crossbeam's `ArrayQueue` (a bounded MPMC queue) used by one producer and one
/// consumer.
pub fn array_queue(count: u64, capacity_msgs: usize) -> Duration {
    let queue = ArrayQueue::<u64>::new(capacity_msgs);
    two_threads(
        || {
            for i in 0..count {
                let mut v = i;
                while let Err(back) = queue.push(v) {
                    v = back;
                    spin_loop();
                }
            }
        },
        || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < count {
                match queue.pop() {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        got += 1;
                    }
                    None => spin_loop(),
                }
            }
            sum
        },
        count,
    )
}

/// One contender in the in-process comparison.
#[derive(Debug, Clone, Copy)]
pub struct Contender {
    /// Name in reports.
    pub name: &'static str,
    /// Moves `count` messages through a queue of `capacity_msgs` messages.
    pub run: fn(u64, usize) -> Duration,
}

/// The in-process contenders, shmring first. "=msgs": room for as many messages as
/// the others (16-byte frames: twice rtrb's bytes); "=bytes": as many bytes as
/// rtrb's ring (half the messages). The targets compare at equal messages.
pub const CONTENDERS: [Contender; 10] = [
    Contender {
        name: "shmring push/pop =msgs",
        run: shmring,
    },
    Contender {
        name: "shmring batch =msgs",
        run: shmring_batched,
    },
    Contender {
        name: "shmring run grant =msgs",
        run: shmring_run_grant,
    },
    Contender {
        name: "shmring push/pop =bytes",
        run: shmring_equal_bytes,
    },
    Contender {
        name: "shmring batch =bytes",
        run: shmring_batched_equal_bytes,
    },
    Contender {
        name: "shmring run grant =bytes",
        run: shmring_run_grant_equal_bytes,
    },
    Contender {
        name: "rtrb push/pop",
        run: rtrb,
    },
    Contender {
        name: "rtrb chunks",
        run: rtrb_chunks,
    },
    Contender {
        name: "crossbeam ArrayQueue",
        run: array_queue,
    },
    Contender {
        name: "bare two-line ring",
        run: bare_ring,
    },
];

/// The reference design shmring is measured against: a bare SPSC ring of `u64` in
/// the classic two-line layout (head and tail each on its own 128-byte line, each
/// side caching the other's index), where the consumer learns of new items by
/// reading the producer's position. It moves fixed-size items only and is not
/// hardened: a yardstick, not a transport.
pub mod bare {
    use std::cell::UnsafeCell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use crossbeam_utils::CachePadded;

    struct Shared {
        head: CachePadded<AtomicU64>,
        tail: CachePadded<AtomicU64>,
        slots: Box<[UnsafeCell<u64>]>,
    }

    // SAFETY: a slot is written by the producer only while it is outside
    // [head, tail) and read by the consumer only while inside, with Release/Acquire
    // on the indices ordering the two.
    unsafe impl Sync for Shared {}

    /// The writing side.
    pub struct Sender {
        shared: Arc<Shared>,
        tail: u64,
        head_cache: u64,
    }

    /// The reading side.
    pub struct Receiver {
        shared: Arc<Shared>,
        head: u64,
        tail_cache: u64,
    }

    impl std::fmt::Debug for Sender {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Sender").field("tail", &self.tail).finish()
        }
    }

    impl std::fmt::Debug for Receiver {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Receiver")
                .field("head", &self.head)
                .finish()
        }
    }

    /// A ring of `capacity` items (a power of two).
    pub fn ring(capacity: usize) -> (Sender, Receiver) {
        assert!(capacity.is_power_of_two());
        let shared = Arc::new(Shared {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            slots: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
        });
        (
            Sender {
                shared: shared.clone(),
                tail: 0,
                head_cache: 0,
            },
            Receiver {
                shared,
                head: 0,
                tail_cache: 0,
            },
        )
    }

    impl Sender {
        /// Pushes `v`; `false` when full.
        #[inline]
        pub fn push(&mut self, v: u64) -> bool {
            let cap = self.shared.slots.len() as u64;
            if self.tail - self.head_cache == cap {
                self.head_cache = self.shared.head.load(Ordering::Acquire);
                if self.tail - self.head_cache == cap {
                    return false;
                }
            }
            let slot = &self.shared.slots[(self.tail & (cap - 1)) as usize];
            // SAFETY: the slot is outside [head, tail): the consumer does not read it.
            unsafe { *slot.get() = v };
            self.tail += 1;
            self.shared.tail.store(self.tail, Ordering::Release);
            true
        }
    }

    impl Receiver {
        /// Pops an item, if any.
        #[inline]
        pub fn pop(&mut self) -> Option<u64> {
            if self.head == self.tail_cache {
                self.tail_cache = self.shared.tail.load(Ordering::Acquire);
                if self.head == self.tail_cache {
                    return None;
                }
            }
            let cap = self.shared.slots.len() as u64;
            let slot = &self.shared.slots[(self.head & (cap - 1)) as usize];
            // SAFETY: the slot is inside [head, tail): the producer does not write it.
            let v = unsafe { *slot.get() };
            self.head += 1;
            self.shared.head.store(self.head, Ordering::Release);
            Some(v)
        }
    }
}

/// The bare two-line ring of `u64` ([`bare`]), item by item.
pub fn bare_ring(count: u64, capacity_msgs: usize) -> Duration {
    let (mut tx, mut rx) = bare::ring(capacity_msgs);
    two_threads(
        move || {
            for i in 0..count {
                while !tx.push(i) {
                    spin_loop();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < count {
                match rx.pop() {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        got += 1;
                    }
                    None => spin_loop(),
                }
            }
            sum
        },
        count,
    )
}

/// Round trips between two threads over a pair of queues: one thread sends a
/// number, the other echoes it back, `count` times. Returns the total time.
fn ping_pong<S: Send, R: Send>(
    count: u64,
    (mut ping_tx, mut ping_rx): (S, R),
    (mut pong_tx, mut pong_rx): (S, R),
    send: fn(&mut S, u64),
    recv: fn(&mut R) -> u64,
) -> Duration {
    let barrier = Barrier::new(2);
    thread::scope(|s| {
        let barrier = &barrier;
        s.spawn(move || {
            barrier.wait();
            for _ in 0..count {
                let v = recv(&mut ping_rx);
                send(&mut pong_tx, v + 1);
            }
        });
        barrier.wait();
        let start = Instant::now();
        for i in 0..count {
            send(&mut ping_tx, i);
            assert_eq!(recv(&mut pong_rx), i + 1, "echo of round trip {i}");
        }
        start.elapsed()
    })
}

/// Round-trip time of an 8-byte message through two shmring rings (busy-spin).
pub fn shmring_round_trips(count: u64) -> Duration {
    let (mut a, mut b) = (HeapRing::new(4096), HeapRing::new(4096));
    fn send(tx: &mut Producer<RawRegion>, v: u64) {
        while tx.push(&v.to_ne_bytes()).is_err() {
            spin_loop();
        }
    }
    fn recv(rx: &mut Consumer<RawRegion>) -> u64 {
        let mut buf = [0u8; 8];
        loop {
            match rx.pop(&mut buf) {
                Ok(_) => return u64::from_ne_bytes(buf),
                Err(PopError::Empty) => spin_loop(),
                Err(e) => panic!("pop: {e}"),
            }
        }
    }
    ping_pong(count, a.split(), b.split(), send, recv)
}

/// Round-trip time of a `u64` through two bare two-line rings (busy-spin).
pub fn bare_round_trips(count: u64) -> Duration {
    fn send(tx: &mut bare::Sender, v: u64) {
        while !tx.push(v) {
            spin_loop();
        }
    }
    fn recv(rx: &mut bare::Receiver) -> u64 {
        loop {
            if let Some(v) = rx.pop() {
                return v;
            }
            spin_loop();
        }
    }
    ping_pong(count, bare::ring(256), bare::ring(256), send, recv)
}

/// The bare SPSC ring of `u64` of the cross-process throughput comparison: the
/// reference of BENCHMARKING.md's "23 M msg/s across processes, capacity 4096".
///
/// The classic two-index design, laid out in shared memory: the producer's count
/// (`tail`) and the consumer's count (`head`) each on a line of its own, each side
/// keeping a private copy of the other's count and re-reading the shared one only
/// when the copy says full (producer) or empty (consumer). Every push and pop
/// publishes its count, so the two lines change hands as often as the items do.
/// Fixed-size items only and not hardened against a hostile peer: a yardstick.
///
/// Every field is an atomic and all-zero bytes are an empty ring, so a fresh
/// shared mapping (a memfd that `ftruncate` zero-filled) is one, and each process
/// works on it through a plain `&SharedRing` into its own mapping.
pub mod shared_bare {
    use std::fmt;
    use std::sync::atomic::{AtomicU64, Ordering};

    use crossbeam_utils::CachePadded;

    /// Slots in the ring.
    pub const CAPACITY: usize = 4096;
    const MASK: u64 = CAPACITY as u64 - 1;

    /// The ring as it lies in shared memory.
    #[repr(C)]
    pub struct SharedRing {
        /// Items pushed so far: stored by the producer only (Release), loaded by the
        /// consumer (Acquire).
        tail: CachePadded<AtomicU64>,
        /// Items popped so far: stored by the consumer only (Release), loaded by the
        /// producer (Acquire).
        head: CachePadded<AtomicU64>,
        /// Item `i` lives in slot `i % CAPACITY`. Relaxed accesses (plain moves on
        /// x86): the Release/Acquire pairs on the counts order them.
        slots: [AtomicU64; CAPACITY],
    }

    impl fmt::Debug for SharedRing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SharedRing")
                .field("head", &self.head.load(Ordering::Relaxed))
                .field("tail", &self.tail.load(Ordering::Relaxed))
                .finish_non_exhaustive()
        }
    }

    /// The writing side: one per ring, in one process.
    #[derive(Debug)]
    pub struct Sender<'a> {
        ring: &'a SharedRing,
        /// Our count, the truth (only we store `ring.tail`).
        tail: u64,
        /// The consumer's count as last read: it only grows, so a stale copy
        /// under-estimates the room, never over-estimates it.
        head_cache: u64,
    }

    /// The reading side: one per ring, in one process.
    #[derive(Debug)]
    pub struct Receiver<'a> {
        ring: &'a SharedRing,
        /// Our count, the truth (only we store `ring.head`).
        head: u64,
        /// The producer's count as last read: a stale copy under-estimates what
        /// is there to read.
        tail_cache: u64,
    }

    impl<'a> Sender<'a> {
        /// The producer of `ring`, resuming at its current count.
        pub fn new(ring: &'a SharedRing) -> Self {
            // Relaxed: only this side ever stores `tail`.
            let tail = ring.tail.load(Ordering::Relaxed);
            // Acquire: as in `push`.
            let head_cache = ring.head.load(Ordering::Acquire);
            Self {
                ring,
                tail,
                head_cache,
            }
        }

        /// Pushes `v`; `false` when the ring is full.
        #[inline]
        pub fn push(&mut self, v: u64) -> bool {
            if self.tail - self.head_cache == CAPACITY as u64 {
                // Acquire pairs with the consumer's Release store of `head`: its
                // loads of the slots it freed happened before we overwrite them.
                self.head_cache = self.ring.head.load(Ordering::Acquire);
                if self.tail - self.head_cache == CAPACITY as u64 {
                    return false;
                }
            }
            // Relaxed: the slot is outside [head, tail), the consumer does not read
            // it until the Release store below publishes it.
            self.ring.slots[(self.tail & MASK) as usize].store(v, Ordering::Relaxed);
            self.tail += 1;
            // Release: the slot's value is visible to whoever loads this count with
            // Acquire.
            self.ring.tail.store(self.tail, Ordering::Release);
            true
        }
    }

    impl<'a> Receiver<'a> {
        /// The consumer of `ring`, resuming at its current count.
        pub fn new(ring: &'a SharedRing) -> Self {
            // Relaxed: only this side ever stores `head`.
            let head = ring.head.load(Ordering::Relaxed);
            // Acquire: as in `pop`.
            let tail_cache = ring.tail.load(Ordering::Acquire);
            Self {
                ring,
                head,
                tail_cache,
            }
        }

        /// Pops the oldest item, if any.
        #[inline]
        pub fn pop(&mut self) -> Option<u64> {
            if self.head == self.tail_cache {
                // Acquire pairs with the producer's Release store of `tail`: the
                // slots it published are visible.
                self.tail_cache = self.ring.tail.load(Ordering::Acquire);
                if self.head == self.tail_cache {
                    return None;
                }
            }
            // Relaxed: the slot is inside [head, tail), published by the Acquire
            // load above (now or on an earlier call); the producer leaves it alone
            // until our Release store below frees it.
            let v = self.ring.slots[(self.head & MASK) as usize].load(Ordering::Relaxed);
            self.head += 1;
            // Release: our load of the slot happens before the producer reuses it.
            self.ring.head.store(self.head, Ordering::Release);
            Some(v)
        }
    }
}
