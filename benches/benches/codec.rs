//! The `serde` feature's cost per message, in one thread with no peer:
//! `try_send_serialized` then `try_recv_deserialized` of a small struct on one
//! SPSC channel, against `try_send` then `try_recv` of bytes of the same length
//! (the bytes API), and postcard's encode and decode alone (no channel). Two
//! structs: `Tick`, numbers and an enum (decoding allocates nothing), and
//! `Quote`, which adds a short `String` (decoding allocates it).
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use shmring::{ChannelBuilder, Receiver, SegmentBuilder, Sender, WaitStrategy};

const CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tick {
    id: u64,
    price: f64,
    qty: u32,
    side: Side,
    venue: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    id: u64,
    price: f64,
    qty: u32,
    side: Side,
    symbol: String,
}

fn tick() -> Tick {
    Tick {
        id: 123_456_789,
        price: 101.25,
        qty: 300,
        side: Side::Sell,
        venue: 7,
    }
}

fn quote() -> Quote {
    Quote {
        id: 123_456_789,
        price: 101.25,
        qty: 300,
        side: Side::Buy,
        symbol: "SHMRING".to_owned(),
    }
}

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

/// The bytes API with a message as long as `value`'s encoding, then the codec
/// calls with `value`, then postcard alone; each checked once first.
fn compare<T>(c: &mut Criterion, name: &str, value: T)
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let encoded = postcard::to_allocvec(&value).expect("encode");
    let len = encoded.len();
    let (mut tx, mut rx) = pair();
    tx.try_send_serialized(&value).expect("send");
    assert_eq!(rx.try_recv_deserialized::<T>().expect("recv"), value);

    let mut group = c.benchmark_group(format!("codec_{name}_{len}B"));
    let mut buf = vec![0u8; len];
    group.bench_function("bytes_try_send_try_recv", |b| {
        b.iter(|| {
            tx.try_send(black_box(&encoded)).expect("send");
            black_box(rx.try_recv(&mut buf).expect("recv"));
        });
    });
    group.bench_function("try_send_serialized_try_recv_deserialized", |b| {
        b.iter(|| {
            tx.try_send_serialized(black_box(&value)).expect("send");
            black_box(rx.try_recv_deserialized::<T>().expect("recv"));
        });
    });
    let mut scratch = vec![0u8; len];
    group.bench_function("postcard_encode_decode_only", |b| {
        b.iter(|| {
            let bytes = postcard::to_slice(black_box(&value), &mut scratch).expect("encode");
            black_box(postcard::from_bytes::<T>(bytes).expect("decode"));
        });
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    compare(c, "tick", tick());
    compare(c, "quote", quote());
}

criterion_group!(benches, codec);
criterion_main!(benches);
