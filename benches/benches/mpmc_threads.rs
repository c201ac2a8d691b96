//! In-process MPMC throughput of 8-byte messages: shmring's MPMC ring (over a
//! heap buffer) against crossbeam's `ArrayQueue` and `crossbeam_channel::bounded`,
//! same capacity (1024 messages), with 1×1 and 2×2 producer × consumer threads.
//!
//! Each run moves `iters` messages in total (split evenly among the producers) and
//! is timed from the moment every thread is ready to the moment the last consumer
//! has received its share; the consumers check the sum of what they received
//! (the runner is `shmring_benches::mpmc_threads::run`, shared with
//! `examples/mpmc_alternating.rs`). Consumers poll (`try_recv`, `pop`) and back
//! off (crossbeam's `Backoff::snooze`: spin, then yield the CPU) when empty;
//! shmring's and `ArrayQueue`'s producers back off the same way when full, the
//! channel's use its blocking `send` (which spins briefly before parking).
//! Yielding matters with more threads than cores: a thread descheduled between
//! claiming a slot and publishing it holds up the others.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shmring_benches::mpmc_threads::{self as mpmc, Miss, Placement};

const CAPACITY: usize = 1024;

fn shmring(per_producer: u64, producers: usize, consumers: usize) -> Duration {
    mpmc::shmring(
        Placement::Free,
        CAPACITY,
        per_producer,
        producers,
        consumers,
    )
    .elapsed
}

fn array_queue(per_producer: u64, producers: usize, consumers: usize) -> Duration {
    mpmc::array_queue(
        Placement::Free,
        CAPACITY,
        per_producer,
        producers,
        consumers,
    )
    .elapsed
}

fn channel(per_producer: u64, producers: usize, consumers: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    mpmc::run(
        Placement::Free,
        per_producer,
        producers,
        consumers,
        || {
            let tx = tx.clone();
            move |v: u64| {
                tx.send(v).unwrap();
                Ok(())
            }
        },
        || {
            let rx = rx.clone();
            move || rx.try_recv().map_err(|_| Miss::Again)
        },
    )
    .elapsed
}

/// Moves `per_producer` messages from each producer; returns the elapsed time.
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
                // `iters` messages in all, rounded up to a multiple of the producers.
                let per_producer = |iters: u64| iters.max(1).div_ceil(producers as u64);
                b.iter_custom(|iters| runner(per_producer(iters), producers, consumers));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, mpmc_threads);
criterion_main!(benches);
