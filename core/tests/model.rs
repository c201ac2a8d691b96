//! Model-based property test: random sequences of push, pop, grant, commit, read,
//! release and batches with random sizes, checked against a `VecDeque`.

mod common;

use std::collections::VecDeque;

use common::ring;
use proptest::prelude::*;
use shmring_core::{PopError, PushError, ReadError};

#[derive(Debug, Clone)]
enum Op {
    Push {
        len: usize,
        seed: u8,
    },
    /// Grant `len`, write, commit `used` (clamped to `len`), or drop uncommitted.
    Grant {
        len: usize,
        used: usize,
        commit: bool,
        seed: u8,
    },
    Pop {
        buf: usize,
    },
    /// Read in place; release or drop.
    Read {
        release: bool,
    },
    Batch {
        lens: Vec<usize>,
        seed: u8,
    },
    /// Read up to `max` in place and release them together.
    ReadBatch {
        max: usize,
    },
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    // Sizes around the interesting edges: tiny, mid, near and beyond the largest.
    let len = prop_oneof![0..16usize, 0..=max, (max - 8)..=(max + 2)];
    prop_oneof![
        3 => (len.clone(), any::<u8>()).prop_map(|(len, seed)| Op::Push { len, seed }),
        2 => (len.clone(), 0..=max + 2, any::<bool>(), any::<u8>())
            .prop_map(|(len, used, commit, seed)| Op::Grant { len, used, commit, seed }),
        3 => (0..=max + 8).prop_map(|buf| Op::Pop { buf }),
        2 => any::<bool>().prop_map(|release| Op::Read { release }),
        1 => (prop::collection::vec(0..24usize, 0..5), any::<u8>())
            .prop_map(|(lens, seed)| Op::Batch { lens, seed }),
        1 => (0..6usize).prop_map(|max| Op::ReadBatch { max }),
    ]
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(7)))
        .collect()
}

fn run(capacity: usize, ops: Vec<Op>) {
    let (_mem, mut tx, mut rx) = ring(capacity);
    let max = tx.max_message_len();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    for op in ops {
        match op {
            Op::Push { len, seed } => {
                let msg = bytes(len, seed);
                match tx.push(&msg) {
                    Ok(()) => model.push_back(msg),
                    Err(PushError::TooLarge { len: l, max: m }) => {
                        assert!(len > max && l == len && m == max)
                    }
                    Err(PushError::Full { needed, free }) => {
                        // Once everything is consumed, anything up to the largest
                        // message fits.
                        assert!(!model.is_empty(), "full with nothing pending");
                        assert!(needed > free);
                    }
                    Err(e) => panic!("push: {e}"),
                }
            }
            Op::Grant {
                len,
                used,
                commit,
                seed,
            } => match tx.grant(len) {
                Ok(mut grant) => {
                    assert!(len <= max);
                    assert_eq!(grant.len(), len);
                    let used = used.min(len);
                    let msg = bytes(used, seed);
                    grant[..used].copy_from_slice(&msg);
                    if commit {
                        grant.commit(used);
                        model.push_back(msg);
                    }
                }
                Err(PushError::TooLarge { .. }) => assert!(len > max),
                Err(PushError::Full { .. }) => assert!(!model.is_empty()),
                Err(e) => panic!("grant: {e}"),
            },
            Op::Pop { buf } => {
                let mut out = vec![0u8; buf];
                match rx.pop(&mut out) {
                    Ok(n) => assert_eq!(out[..n], model.pop_front().unwrap()),
                    Err(PopError::Empty) => assert!(model.is_empty()),
                    Err(PopError::BufferTooSmall { len, buffer }) => {
                        assert_eq!(len, model.front().unwrap().len());
                        assert!(buffer < len && buffer == buf);
                    }
                    Err(e) => panic!("pop: {e}"),
                }
            }
            Op::Read { release } => match rx.read() {
                Ok(msg) => {
                    assert_eq!(*msg, model.front().unwrap()[..]);
                    if release {
                        msg.release();
                        model.pop_front();
                    }
                }
                Err(ReadError::Empty) => assert!(model.is_empty()),
                Err(e) => panic!("read: {e}"),
            },
            Op::Batch { lens, seed } => {
                let mut batch = tx.batch();
                let mut staged = Vec::new();
                for (i, len) in lens.into_iter().enumerate() {
                    let msg = bytes(len, seed.wrapping_add(i as u8));
                    match batch.push(&msg) {
                        Ok(()) => staged.push(msg),
                        Err(PushError::Full { .. }) => break,
                        Err(e) => panic!("batch push: {e}"),
                    }
                }
                // Nothing of the batch is visible before it is published.
                drop(batch);
                model.extend(staged);
            }
            Op::ReadBatch { max } => {
                let mut got = Vec::new();
                let n = rx.read_batch(max, |m| got.push(m.to_vec())).unwrap();
                assert_eq!(n, got.len());
                assert!(
                    n == max.min(model.len()),
                    "read {n} of {} (max {max})",
                    model.len()
                );
                for m in got {
                    assert_eq!(m, model.pop_front().unwrap());
                }
            }
        }
    }
    // Drain: everything committed comes out, in order, once.
    let mut out = vec![0u8; max];
    while let Some(expected) = model.pop_front() {
        let n = rx.pop(&mut out).unwrap();
        assert_eq!(out[..n], expected);
    }
    assert_eq!(rx.pop(&mut out), Err(PopError::Empty));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ring_behaves_like_a_queue_64(ops in prop::collection::vec(op(24), 1..300)) {
        run(64, ops);
    }

    #[test]
    fn ring_behaves_like_a_queue_256(ops in prop::collection::vec(op(120), 1..300)) {
        run(256, ops);
    }

    #[test]
    fn ring_behaves_like_a_queue_4096(ops in prop::collection::vec(op(2040), 1..300)) {
        run(4096, ops);
    }
}
