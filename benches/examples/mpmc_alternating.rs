//! In-process MPMC throughput, shmring's MPMC ring against crossbeam's
//! `ArrayQueue`, run alternately: 8-byte messages, 1024 slots, `P` producer and
//! `C` consumer threads. On a shared, noisy machine the medians of many interleaved
//! runs are steadier than criterion's figures (benches/README.md and the MPMC
//! diaries in benches/notes/).
//!
//! ```text
//! mpmc_alternating alternate RUNS MESSAGES PRODUCERS CONSUMERS [WORD...]
//!     RUNS pairs of runs (ArrayQueue, then shmring); prints every pair with the
//!     failed polls of each (a receive that found nothing, a send that found no
//!     room), then the medians in ns per message and their ratio (ArrayQueue /
//!     shmring: >= 1 means shmring is at least as fast). Optional words:
//!     `shmring` or `array_queue` runs that side only (to profile it); `mixed`
//!     pins producer i and consumer i to the i-th allowed CPU (2x2 on two CPUs:
//!     one of each per core), `split` the producers to the first CPU and the
//!     consumers to the second (`mpmc_threads::Placement`).
//! mpmc_alternating single-shmring ROUNDS | single-array-queue ROUNDS
//!     one thread: ROUNDS times send 512 messages, then receive them. For
//!     instruction counts under callgrind: the difference between two ROUNDS
//!     values divided by the messages is the cost of one send and one receive.
//! ```
//!
//! Consumers poll and back off (crossbeam's `Backoff::snooze`) when empty,
//! producers when full, both queues alike, as in `benches/mpmc_threads.rs`.

use std::hint::black_box;
use std::num::NonZeroU32;

use crossbeam_queue::ArrayQueue;
use shmring_benches::mpmc_threads::{self as mpmc, HeapMpmc, Placement, Run, Threads};
use shmring_core::{MpmcConsumer, MpmcProducer};

const CAPACITY: usize = 1024;

#[inline(never)]
fn single_shmring(rounds: u64) -> u64 {
    let ring = HeapMpmc::new(CAPACITY, 2);
    // SAFETY: `tx` and `rx` are dropped before `ring` (declared after it).
    let region = unsafe { ring.region() };
    let token = NonZeroU32::new(1).unwrap();
    let mut tx = MpmcProducer::register(region.clone(), token).unwrap();
    let mut rx = MpmcConsumer::register(region.clone(), token).unwrap();
    let mut sum = 0u64;
    let mut buf = [0u8; 8];
    for k in 0..rounds {
        for i in 0..512u64 {
            tx.push(black_box(&(i + k).to_ne_bytes())).unwrap();
        }
        for _ in 0..512 {
            rx.pop(&mut buf).unwrap();
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
            // Optional words: one side only (to profile it: the other side's time
            // is NaN and its polls 0), and the placement.
            let words: Vec<&str> = args[6..].iter().map(String::as_str).collect();
            let only = |side| words.contains(&side);
            let placement = if words.contains(&"mixed") {
                Placement::Mixed
            } else if words.contains(&"split") {
                Placement::Split
            } else {
                Placement::Free
            };
            let threads = Threads {
                placement,
                ..Threads::free(producers, consumers, messages)
            };
            for _ in 0..runs {
                let a_run = if only("shmring") {
                    Run::default()
                } else {
                    mpmc::array_queue(CAPACITY, threads)
                };
                let s_run = if only("array_queue") {
                    Run::default()
                } else {
                    mpmc::shmring(CAPACITY, threads)
                };
                let (a, s) = (a_run.ns_per_message(), s_run.ns_per_message());
                let (a_empty, a_full) = (a_run.empty_polls, a_run.full_polls);
                let (s_empty, s_full, s_stalled) =
                    (s_run.empty_polls, s_run.full_polls, s_run.stalled);
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
                "{producers}x{consumers} {placement:?} medians of {runs}: array_queue {a:.1} ns/msg, \
                 shmring {s:.1} ns/msg, ratio (array_queue / shmring) {:.2}",
                a / s
            );
        }
        Some("single-shmring") => println!("{}", single_shmring(arg(&args, 2, "rounds"))),
        Some("single-array-queue") => {
            println!("{}", single_array_queue(arg(&args, 2, "rounds")))
        }
        _ => eprintln!(
            "usage: mpmc_alternating alternate RUNS MESSAGES PRODUCERS CONSUMERS [WORD...] \
             | single-shmring ROUNDS | single-array-queue ROUNDS"
        ),
    }
}
