//! Typed values against bytes, in one thread with no peer: a 32-byte `#[repr(C)]`
//! struct sent with `try_send_value` and received with `try_recv_value`, against
//! `try_send` and `try_recv` of the same 32 bytes on the same kind of channel, in
//! the same run; and the same struct granted and read in place (`try_grant_value`,
//! `try_read_value`) against the byte grant and read. The typed calls add the
//! value's byte view (free), a zeroed receive buffer and a length check: the
//! ratio of the medians is their cost.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shmring::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use shmring::{ChannelBuilder, Receiver, SegmentBuilder, Sender, WaitStrategy};

const CAPACITY: usize = 4096;

/// 32 bytes, no padding.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq)]
#[zerocopy(crate = "shmring::zerocopy")]
#[repr(C)]
struct Sample {
    seq: u64,
    id: u32,
    flags: u32,
    value: f64,
    tag: [u8; 8],
}

const SAMPLE: Sample = Sample {
    seq: 7,
    id: 3,
    flags: 1,
    value: 2.5,
    tag: *b"shmring!",
};

fn pair() -> (Sender, Receiver) {
    let channel = ChannelBuilder::memfd()
        .capacity(CAPACITY)
        .wait_strategy(WaitStrategy::BusySpin)
        .create()
        .expect("channel");
    (
        channel.sender().expect("sender"),
        channel.receiver().expect("receiver"),
    )
}

fn copies(c: &mut Criterion) {
    let mut group = c.benchmark_group("copy_32B");
    let (mut tx, mut rx) = pair();
    // Sanity: the two APIs carry the same bytes.
    tx.try_send_value(&SAMPLE).expect("send");
    let mut buf = [0u8; 32];
    assert_eq!(rx.try_recv(&mut buf).expect("recv"), 32);
    assert_eq!(&buf, SAMPLE.as_bytes());
    let bytes: [u8; 32] = buf;
    group.bench_function("bytes", |b| {
        b.iter(|| {
            tx.try_send(black_box(&bytes)).expect("send");
            black_box(rx.try_recv(&mut buf).expect("recv"));
            black_box(&buf);
        });
    });
    group.bench_function("typed", |b| {
        b.iter(|| {
            tx.try_send_value(black_box(&SAMPLE)).expect("send");
            black_box(rx.try_recv_value::<Sample>().expect("recv"));
        });
    });
    let mut sample = SAMPLE;
    group.bench_function("typed_into", |b| {
        b.iter(|| {
            tx.try_send_value(black_box(&SAMPLE)).expect("send");
            rx.try_recv_value_into(&mut sample).expect("recv");
            black_box(&sample);
        });
    });
    group.finish();
}

fn in_place(c: &mut Criterion) {
    let mut group = c.benchmark_group("in_place_32B");
    let (mut tx, mut rx) = pair();
    group.bench_function("bytes", |b| {
        b.iter(|| {
            let mut grant = tx.try_grant(32).expect("grant");
            grant.copy_from_slice(black_box(SAMPLE.as_bytes()));
            grant.commit(32);
            let message = rx.try_read().expect("read");
            black_box(&message[..]);
            message.release();
        });
    });
    group.bench_function("typed", |b| {
        b.iter(|| {
            let mut grant = tx.try_grant_value::<Sample>().expect("grant");
            *grant = black_box(SAMPLE);
            grant.commit();
            let value = rx.try_read_value::<Sample>().expect("read");
            black_box(&*value);
            value.release();
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = copies, in_place
}
criterion_main!(benches);
