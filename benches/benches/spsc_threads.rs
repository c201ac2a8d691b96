//! In-process SPSC throughput of 8-byte messages between two threads: shmring
//! against rtrb and crossbeam's ArrayQueue, same capacity in messages (shmring
//! also at the same capacity in bytes: half the messages, since its frames take 16
//! bytes to rtrb's 8; see `shmring_benches::CONTENDERS`).
//!
//! Criterion runs one benchmark after another; for ratios robust to drift on a
//! shared machine, `cargo run --release -p shmring-benches` alternates them.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shmring_benches::CONTENDERS;

fn spsc_threads(c: &mut Criterion) {
    for capacity in [4096usize, 64] {
        let mut group = c.benchmark_group(format!("spsc_u64_capacity_{capacity}"));
        group.throughput(Throughput::Elements(1));
        for contender in CONTENDERS {
            group.bench_function(contender.name, |b| {
                b.iter_custom(|iters| (contender.run)(iters.max(1), capacity));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, spsc_threads);
criterion_main!(benches);
