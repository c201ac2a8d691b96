//! A published value's costs, in one process: the seqlock read of a 64-byte value
//! (`[u64; 8]`) with no writer active, a write with no reader waiting (with the
//! asymmetric fence pair, the default, and with full fences), and a plain 64-byte
//! copy as the floor. Issue 23, step 9 (docs/design/shared-state.md, "Measure").
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shmring::SegmentBuilder;
use shmring::state::SharedValueBuilder;

type Words = [u64; 8];

fn costs(c: &mut Criterion) {
    let mut group = c.benchmark_group("shared_value_64B");
    let value = SharedValueBuilder::memfd()
        .create::<Words>()
        .expect("value");
    let mut writer = value.writer().expect("writer");
    writer.write(&[1; 8]).expect("write");
    group.bench_function("read", |b| {
        b.iter(|| black_box(value.read().expect("read")));
    });
    group.bench_function("write (asymmetric fences)", |b| {
        b.iter(|| writer.write(black_box(&[2; 8])).expect("write"));
    });
    let symmetric = SharedValueBuilder::memfd()
        .asymmetric_fences(false)
        .create::<Words>()
        .expect("value");
    let mut symmetric_writer = symmetric.writer().expect("writer");
    group.bench_function("write (full fences)", |b| {
        b.iter(|| symmetric_writer.write(black_box(&[3; 8])).expect("write"));
    });
    let source: Words = [4; 8];
    group.bench_function("copy 64 B (reference)", |b| {
        b.iter(|| black_box(*black_box(&source)));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = costs
}
criterion_main!(benches);
