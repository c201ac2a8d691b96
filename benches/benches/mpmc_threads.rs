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
use shmring_benches::mpmc_threads::{self as mpmc, Miss, Threads};

const CAPACITY: usize = 1024;

fn shmring(threads: Threads) -> Duration {
    mpmc::shmring(CAPACITY, threads).elapsed
}

fn array_queue(threads: Threads) -> Duration {
    mpmc::array_queue(CAPACITY, threads).elapsed
}

fn channel(threads: Threads) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    mpmc::run(
        threads,
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

/// Runs the threads; returns the elapsed time.
type Runner = fn(Threads) -> Duration;

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
                b.iter_custom(|iters| runner(Threads::free(producers, consumers, iters)));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, mpmc_threads);
criterion_main!(benches);
