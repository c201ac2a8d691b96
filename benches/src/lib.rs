//! Runners shared by the criterion benches and the comparison program.
//!
//! Each runner moves `count` 8-byte messages (a `u64` sequence) from one thread to
//! another through one queue and returns the time from the moment both threads are
//! ready to the moment the consumer has received the last message. The consumer
//! checks the sum of what it received before the time is reported.

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

/// shmring, message by message: `push` and `pop`.
pub fn shmring(count: u64, capacity_msgs: usize) -> Duration {
    let mut ring = HeapRing::new(capacity_msgs * SHMRING_FRAME);
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
/// store; the consumer reads in place and releases (its position is published
/// lazily in any case).
pub fn shmring_batched(count: u64, capacity_msgs: usize) -> Duration {
    let mut ring = HeapRing::new(capacity_msgs * SHMRING_FRAME);
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
        move || {
            let mut sum = 0u64;
            let mut got = 0;
            while got < count {
                match rx.read() {
                    Ok(msg) => {
                        let mut bytes = [0u8; 8];
                        bytes.copy_from_slice(&msg);
                        msg.release();
                        sum = sum.wrapping_add(u64::from_ne_bytes(bytes));
                        got += 1;
                    }
                    Err(shmring_core::ReadError::Empty) => spin_loop(),
                    Err(e) => panic!("read: {e}"),
                }
            }
            sum
        },
        count,
    )
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

/// The in-process contenders, shmring first.
pub const CONTENDERS: [Contender; 5] = [
    Contender {
        name: "shmring push/pop",
        run: shmring,
    },
    Contender {
        name: "shmring batch",
        run: shmring_batched,
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
];
