//! In-process MPMC throughput, shmring's MPMC ring against crossbeam's
//! `ArrayQueue`, run alternately: 8-byte messages, 1024 slots, `P` producer and
//! `C` consumer threads. On a shared, noisy machine the medians of many interleaved
//! runs are steadier than criterion's figures (ARCHITECTURE.md, "Performance notes
//! (MPMC, in-process)").
//!
//! ```text
//! mpmc_alternating alternate RUNS MESSAGES PRODUCERS CONSUMERS [shmring|array_queue]
//!     RUNS pairs of runs (ArrayQueue, then shmring); prints every pair with the
//!     failed polls of each (a receive that found nothing, a send that found no
//!     room), then the medians in ns per message and their ratio (ArrayQueue /
//!     shmring: >= 1 means shmring is at least as fast). With a last argument,
//!     runs that side only (to profile it).
//! mpmc_alternating single-shmring ROUNDS | single-array-queue ROUNDS
//!     one thread: ROUNDS times send 512 messages, then receive them. For
//!     instruction counts under callgrind: the difference between two ROUNDS
//!     values divided by the messages is the cost of one send and one receive.
//! ```
//!
//! Consumers poll and back off (crossbeam's `Backoff::snooze`) when empty,
//! producers when full, both queues alike, as in `benches/mpmc_threads.rs`.

use std::alloc::{self, Layout};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use shmring_core::{
    MpmcConsumer, MpmcProducer, RawMpmcRegion, RecvError, SendError, mpmc_segment_layout,
};

const CAPACITY: usize = 1024;

/// Failed calls in the current run, by kind: a receive that found nothing (empty
/// or, shmring, stalled or contended), a send that found no room (full, or
/// shmring stalled or contended). Each thread counts locally and adds at its end.
static EMPTY_POLLS: AtomicU64 = AtomicU64::new(0);
static FULL_POLLS: AtomicU64 = AtomicU64::new(0);
/// shmring only: `Stalled` answers to receivers and senders.
static STALLED: AtomicU64 = AtomicU64::new(0);

/// A thread's count, added to `counter` when dropped.
struct Tally<'a>(u64, &'a AtomicU64);

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.1.fetch_add(self.0, Ordering::Relaxed);
    }
}

/// An MPMC segment in heap memory.
struct HeapMpmc {
    ptr: *mut u8,
    layout: Layout,
    region: RawMpmcRegion,
}

impl HeapMpmc {
    fn new(endpoints: usize) -> Self {
        let layout = mpmc_segment_layout(CAPACITY, 8, endpoints).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        // SAFETY: the allocation lives until `drop`, after every handle made from
        // the region (each run ends before its `HeapMpmc` is dropped), and is
        // touched only through the region.
        let region = unsafe { RawMpmcRegion::init(ptr, layout.size(), CAPACITY, 8, endpoints) }
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

/// Moves `total` messages (`0..total`, split among the producers) from
/// `producers` senders to `consumers` receivers; returns ns per message. `recv`
/// returns `None` when nothing is there now.
fn run<S, R>(
    total: u64,
    producers: usize,
    consumers: usize,
    mut make_sender: impl FnMut() -> S,
    mut make_receiver: impl FnMut() -> R,
) -> f64
where
    S: FnMut(u64) + Send,
    R: FnMut() -> Option<u64> + Send,
{
    let per = total / producers as u64;
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
                    let mut empty = Tally(0, &EMPTY_POLLS);
                    let backoff = Backoff::new();
                    loop {
                        match recv() {
                            Some(v) => {
                                backoff.reset();
                                local = local.wrapping_add(v);
                                count += 1;
                                if count == 256 {
                                    received.fetch_add(count, Ordering::Relaxed);
                                    count = 0;
                                }
                            }
                            None => {
                                empty.0 += 1;
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
    elapsed.as_nanos() as f64 / total as f64
}

fn shmring(total: u64, producers: usize, consumers: usize) -> f64 {
    let ring = HeapMpmc::new(producers + consumers);
    let token = NonZeroU32::new(1).unwrap();
    run(
        total,
        producers,
        consumers,
        || {
            let mut tx = MpmcProducer::register(ring.region.clone(), token).unwrap();
            let (mut full, mut stalled) = (Tally(0, &FULL_POLLS), Tally(0, &STALLED));
            move |v: u64| {
                let (full, stalled) = (&mut full, &mut stalled);
                let backoff = Backoff::new();
                loop {
                    match tx.try_send(&v.to_ne_bytes()) {
                        Ok(()) => return,
                        Err(SendError::Full | SendError::Contended) => full.0 += 1,
                        Err(SendError::Stalled { .. }) => {
                            full.0 += 1;
                            stalled.0 += 1;
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                    backoff.snooze();
                }
            }
        },
        || {
            let mut rx = MpmcConsumer::register(ring.region.clone(), token).unwrap();
            let mut stalled = Tally(0, &STALLED);
            move || {
                let stalled = &mut stalled;
                let mut buf = [0u8; 8];
                match rx.try_recv(&mut buf) {
                    Ok(_) => Some(u64::from_ne_bytes(buf)),
                    Err(RecvError::Empty | RecvError::Contended) => None,
                    Err(RecvError::Stalled { .. }) => {
                        stalled.0 += 1;
                        None
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
        },
    )
}

fn array_queue(total: u64, producers: usize, consumers: usize) -> f64 {
    let queue = ArrayQueue::new(CAPACITY);
    run(
        total,
        producers,
        consumers,
        || {
            let queue = &queue;
            let mut full = Tally(0, &FULL_POLLS);
            move |v: u64| {
                let full = &mut full;
                let backoff = Backoff::new();
                while queue.push(v).is_err() {
                    full.0 += 1;
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

#[inline(never)]
fn single_shmring(rounds: u64) -> u64 {
    let ring = HeapMpmc::new(2);
    let token = NonZeroU32::new(1).unwrap();
    let mut tx = MpmcProducer::register(ring.region.clone(), token).unwrap();
    let mut rx = MpmcConsumer::register(ring.region.clone(), token).unwrap();
    let mut sum = 0u64;
    let mut buf = [0u8; 8];
    for k in 0..rounds {
        for i in 0..512u64 {
            tx.try_send(black_box(&(i + k).to_ne_bytes())).unwrap();
        }
        for _ in 0..512 {
            rx.try_recv(&mut buf).unwrap();
            sum = sum.wrapping_add(u64::from_ne_bytes(buf));
        }
    }
    sum
}

#[inline(never)]
fn single_array_queue(rounds: u64) -> u64 {
    let queue = ArrayQueue::new(CAPACITY);
    let mut sum = 0u64;
    for k in 0..rounds {
        for i in 0..512u64 {
            queue.push(black_box(i + k)).unwrap();
        }
        for _ in 0..512 {
            sum = sum.wrapping_add(queue.pop().unwrap());
        }
    }
    sum
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn arg(args: &[String], index: usize, what: &str) -> u64 {
    args.get(index)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("argument {index} ({what}): a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("alternate") => {
            let runs = arg(&args, 2, "runs");
            let messages = arg(&args, 3, "messages");
            let producers = arg(&args, 4, "producers") as usize;
            let consumers = arg(&args, 5, "consumers") as usize;
            let (mut aq, mut shm) = (Vec::new(), Vec::new());
            let polls =
                || [&EMPTY_POLLS, &FULL_POLLS, &STALLED].map(|c| c.swap(0, Ordering::Relaxed));
            // An optional last argument runs one side only (to profile it).
            let only = args.get(6).map(String::as_str);
            for _ in 0..runs {
                let a = if only == Some("shmring") {
                    f64::NAN
                } else {
                    array_queue(messages, producers, consumers)
                };
                let [a_empty, a_full, _] = polls();
                let s = if only == Some("array_queue") {
                    f64::NAN
                } else {
                    shmring(messages, producers, consumers)
                };
                let [s_empty, s_full, s_stalled] = polls();
                println!(
                    "array_queue {a:6.1}  shmring {s:6.1}   (empty/full polls: \
                     array_queue {a_empty}/{a_full}, shmring {s_empty}/{s_full}, \
                     {s_stalled} stalled)"
                );
                aq.push(a);
                shm.push(s);
            }
            let (a, s) = (median(&mut aq), median(&mut shm));
            println!(
                "{producers}x{consumers} medians of {runs}: array_queue {a:.1} ns/msg, \
                 shmring {s:.1} ns/msg, ratio (array_queue / shmring) {:.2}",
                a / s
            );
        }
        Some("single-shmring") => println!("{}", single_shmring(arg(&args, 2, "rounds"))),
        Some("single-array-queue") => {
            println!("{}", single_array_queue(arg(&args, 2, "rounds")))
        }
        _ => eprintln!(
            "usage: mpmc_alternating alternate RUNS MESSAGES PRODUCERS CONSUMERS \
             | single-shmring ROUNDS | single-array-queue ROUNDS"
        ),
    }
}
