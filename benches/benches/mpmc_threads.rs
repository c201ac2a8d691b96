//! In-process MPMC throughput of 8-byte messages: shmring's MPMC ring (over a
//! heap buffer) against crossbeam's `ArrayQueue` and `crossbeam_channel::bounded`,
//! same capacity (1024 messages), with 1×1 and 2×2 producer × consumer threads.
//!
//! Each run moves `iters` messages in total (split evenly among the producers) and
//! is timed from the moment every thread is ready to the moment the last consumer
//! has received its share; the consumers check the sum of what they received.
//! Consumers poll (`try_recv`, `pop`) and back off (crossbeam's `Backoff::snooze`:
//! spin, then yield the CPU) when empty; shmring's and `ArrayQueue`'s producers
//! back off the same way when full, the channel's use its blocking `send` (which
//! spins briefly before parking). Yielding matters with more threads than cores: a
//! thread descheduled between claiming a slot and publishing it holds up the others.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::alloc::{self, Layout};
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use shmring_core::{
    MpmcConsumer, MpmcProducer, RawMpmcRegion, RecvError, SendError, mpmc_segment_layout,
};

const CAPACITY: usize = 1024;

/// Runs `producers` threads calling `send(i)` for their share of `0..total` and
/// `consumers` threads calling `recv()` until all `total` have been received;
/// returns the elapsed time. `recv` returns `None` when nothing is there now.
fn run<S, R>(
    total: u64,
    producers: usize,
    consumers: usize,
    mut make_sender: impl FnMut() -> S,
    mut make_receiver: impl FnMut() -> R,
) -> Duration
where
    S: FnMut(u64) + Send,
    R: FnMut() -> Option<u64> + Send,
{
    let per = total.div_ceil(producers as u64);
    let total = per * producers as u64;
    let barrier = Barrier::new(producers + consumers + 1);
    let received = AtomicU64::new(0);
    let sum = AtomicU64::new(0);
    let elapsed = thread::scope(|s| {
        for p in 0..producers as u64 {
            let mut send = make_sender();
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in p * per..(p + 1) * per {
                    send(i);
                }
            });
        }
        let done: Vec<_> = (0..consumers)
            .map(|_| {
                let mut recv = make_receiver();
                let (barrier, received, sum) = (&barrier, &received, &sum);
                s.spawn(move || {
                    barrier.wait();
                    let (mut count, mut local) = (0u64, 0u64);
                    let backoff = Backoff::new();
                    loop {
                        match recv() {
                            Some(v) => {
                                backoff.reset();
                                local = local.wrapping_add(v);
                                count += 1;
                                // Publish progress now and then, and at the end.
                                if count == 256 {
                                    received.fetch_add(count, Ordering::Relaxed);
                                    count = 0;
                                }
                            }
                            None => {
                                if count != 0 {
                                    received.fetch_add(count, Ordering::Relaxed);
                                    count = 0;
                                }
                                if received.load(Ordering::Relaxed) >= total {
                                    break;
                                }
                                backoff.snooze();
                            }
                        }
                    }
                    sum.fetch_add(local, Ordering::Relaxed);
                    Instant::now()
                })
            })
            .collect();
        // Before the barrier: a consumer may finish before this thread returns
        // from it (the clock counts the barrier's release, a few microseconds).
        let start = Instant::now();
        barrier.wait();
        let end = done.into_iter().map(|h| h.join().unwrap()).max().unwrap();
        end - start
    });
    assert_eq!(
        sum.load(Ordering::Relaxed),
        total.wrapping_mul(total - 1) / 2,
        "messages lost or duplicated"
    );
    elapsed
}

/// An MPMC segment in heap memory.
struct HeapMpmc {
    ptr: *mut u8,
    layout: Layout,
    region: RawMpmcRegion,
}

impl HeapMpmc {
    fn new(slots: usize, endpoints: usize) -> Self {
        let layout = mpmc_segment_layout(slots, 8, endpoints).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        // SAFETY: the allocation lives until `drop`, after every handle made from
        // the region (the runs end before the `HeapMpmc` is dropped), and is
        // touched only through the region.
        let region = unsafe { RawMpmcRegion::init(ptr, layout.size(), slots, 8, endpoints) }
            .expect("fresh layout");
        Self {
            ptr,
            layout,
            region,
        }
    }
}

impl Drop for HeapMpmc {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr, self.layout) };
    }
}

fn shmring(total: u64, producers: usize, consumers: usize) -> Duration {
    let ring = HeapMpmc::new(CAPACITY, producers + consumers);
    let token = NonZeroU32::new(1).unwrap();
    run(
        total,
        producers,
        consumers,
        || {
            let mut tx = MpmcProducer::register(ring.region.clone(), token).unwrap();
            move |v: u64| {
                let backoff = Backoff::new();
                loop {
                    match tx.try_send(&v.to_ne_bytes()) {
                        Ok(()) => return,
                        Err(SendError::Full | SendError::Stalled { .. } | SendError::Contended) => {
                            backoff.snooze()
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                }
            }
        },
        || {
            let mut rx = MpmcConsumer::register(ring.region.clone(), token).unwrap();
            move || {
                let mut buf = [0u8; 8];
                match rx.try_recv(&mut buf) {
                    Ok(_) => Some(u64::from_ne_bytes(buf)),
                    Err(RecvError::Empty | RecvError::Stalled { .. } | RecvError::Contended) => {
                        None
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
        },
    )
}

fn array_queue(total: u64, producers: usize, consumers: usize) -> Duration {
    let queue = ArrayQueue::new(CAPACITY);
    run(
        total,
        producers,
        consumers,
        || {
            let queue = &queue;
            move |v: u64| {
                let backoff = Backoff::new();
                while queue.push(v).is_err() {
                    backoff.snooze();
                }
            }
        },
        || {
            let queue = &queue;
            move || queue.pop()
        },
    )
}

fn channel(total: u64, producers: usize, consumers: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    run(
        total,
        producers,
        consumers,
        || {
            let tx = tx.clone();
            move |v: u64| tx.send(v).unwrap()
        },
        || {
            let rx = rx.clone();
            move || rx.try_recv().ok()
        },
    )
}

type Runner = fn(u64, usize, usize) -> Duration;

fn mpmc_threads(c: &mut Criterion) {
    let contenders: [(&str, Runner); 3] = [
        ("shmring_mpmc", shmring),
        ("crossbeam_array_queue", array_queue),
        ("crossbeam_channel_bounded", channel),
    ];
    for (producers, consumers) in [(1, 1), (2, 2)] {
        let mut group = c.benchmark_group(format!("mpmc_u64_{producers}x{consumers}"));
        group.throughput(Throughput::Elements(1));
        for (name, runner) in contenders {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| runner(iters.max(1), producers, consumers));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, mpmc_threads);
criterion_main!(benches);
