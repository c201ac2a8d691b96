//! Two threads, millions of messages of varied sizes, every one checked: sequence
//! number, length and a checksum of its bytes. Mixes the copying and zero-copy
//! calls and batches on the producer side, pop and read/release on the consumer.

mod common;

use std::thread;

use common::ring;
use shmring_core::{Consumer, PopError, Producer, PushError, RawRegion, ReadError};

/// Message `seq`: its length (0..=96, mostly small) and its bytes. The first 8
/// bytes (when there is room) carry `seq`; the rest follow from it.
fn message_len(seq: u64) -> usize {
    let h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58; // 0..64
    if h < 48 {
        (h % 16) as usize
    } else {
        16 + (h as usize - 48) * 5
    }
}

fn fill(seq: u64, out: &mut [u8]) {
    let mut x = seq ^ 0xa076_1d64_78bd_642f;
    for (i, b) in out.iter_mut().enumerate() {
        if i % 8 == 0 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        *b = (x >> ((i % 8) * 8)) as u8;
    }
    if out.len() >= 8 {
        out[..8].copy_from_slice(&seq.to_le_bytes());
    }
}

fn check(seq: u64, got: &[u8]) {
    assert_eq!(got.len(), message_len(seq), "length of message {seq}");
    let mut expected = [0u8; 128];
    fill(seq, &mut expected[..got.len()]);
    assert!(got == &expected[..got.len()], "bytes of message {seq}");
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

fn produce(mut tx: Producer<RawRegion>, count: u64) {
    let mut buf = [0u8; 128];
    let mut seq = 0;
    let mut spins = 0;
    while seq < count {
        let len = message_len(seq);
        let result = match seq % 3 {
            0 => {
                fill(seq, &mut buf[..len]);
                tx.push(&buf[..len]).map(|()| 1)
            }
            1 => tx.grant(len + 7).map(|mut g| {
                fill(seq, &mut g[..len]);
                g.commit(len);
                1
            }),
            _ => {
                // A batch of up to four.
                let mut batch = tx.batch();
                let mut n = 0;
                while n < 4 && seq + n < count {
                    let len = message_len(seq + n);
                    fill(seq + n, &mut buf[..len]);
                    match batch.push(&buf[..len]) {
                        Ok(()) => n += 1,
                        Err(PushError::Full { .. }) => break,
                        Err(e) => panic!("batch push: {e}"),
                    }
                }
                if n == 0 {
                    Err(PushError::Full { needed: 0, free: 0 })
                } else {
                    Ok(n)
                }
            }
        };
        match result {
            Ok(n) => {
                seq += n;
                spins = 0;
            }
            Err(PushError::Full { .. }) => backoff(&mut spins),
            Err(e) => panic!("producer: {e}"),
        }
    }
}

fn consume(mut rx: Consumer<RawRegion>, count: u64) {
    let mut buf = [0u8; 128];
    let mut seq = 0;
    let mut spins = 0;
    while seq < count {
        let got = if seq % 2 == 0 {
            match rx.pop(&mut buf) {
                Ok(n) => {
                    check(seq, &buf[..n]);
                    true
                }
                Err(PopError::Empty) => false,
                Err(e) => panic!("consumer: {e}"),
            }
        } else {
            match rx.read() {
                Ok(msg) => {
                    check(seq, &msg);
                    msg.release();
                    true
                }
                Err(ReadError::Empty) => false,
                Err(e) => panic!("consumer: {e}"),
            }
        };
        if got {
            seq += 1;
            spins = 0;
        } else {
            backoff(&mut spins);
        }
    }
    assert_eq!(
        rx.pop(&mut buf),
        Err(PopError::Empty),
        "nothing after the last"
    );
}

fn stress(capacity: usize, count: u64) {
    let (_mem, tx, rx) = ring(capacity);
    thread::scope(|s| {
        s.spawn(move || produce(tx, count));
        s.spawn(move || consume(rx, count));
    });
}

#[test]
fn ten_million_messages_through_64_kib() {
    // Under Miri, which interleaves the threads itself and checks every access for
    // data races: a few thousand (the name states the native count).
    stress(1 << 16, if cfg!(miri) { 3_000 } else { 10_000_000 });
}

#[test]
fn one_million_messages_through_a_small_ring() {
    // 256 bytes: the ring is full or empty most of the time, and wraps constantly.
    stress(256, if cfg!(miri) { 2_000 } else { 1_000_000 });
}

#[test]
#[ignore = "long: run with --ignored"]
fn two_hundred_million_messages() {
    stress(1 << 16, 200_000_000);
    stress(256, 20_000_000);
}
