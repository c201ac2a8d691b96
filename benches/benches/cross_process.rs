//! Cross-process round trips of an 8-byte message, one benchmark per method:
//! criterion's `iter_custom` around the comparison program's runners (a fresh
//! child process pinned to the second CPU for every measurement, this process on
//! the first; the child's start-up and 100 warm-up round trips are not timed).
//!
//! For figures that alternate the methods in rounds, with percentiles and ratios,
//! run `cargo run --release -p shmring-benches` instead.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::Duration;

use criterion::{Criterion, criterion_group};
use shmring_benches::cross::{self, Method, Metric, SMALL, Support};

fn round_trips(c: &mut Criterion) {
    let cpus = cross::allowed_cpus().unwrap_or_default();
    let child_cpu = match cpus.as_slice() {
        [a, b, ..] => cross::pin_to(*a).ok().map(|()| *b),
        _ => None,
    };
    let mut group = c.benchmark_group("cross_process_round_trip_8B");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for method in Method::ALL {
        if !method.built() || method.supports(Metric::Rtt8) != Support::Yes {
            continue;
        }
        group.bench_function(method.key(), |b| {
            b.iter_custom(|iters| {
                cross::round_trip_batch(method, SMALL, iters.max(1), child_cpu)
                    .unwrap_or_else(|e| panic!("{}: {e}", method.name()))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, round_trips);

// criterion_main!, with the child's entry first: each measurement re-executes
// this binary as the child serving the method.
fn main() {
    cross::run_child_if_requested();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
