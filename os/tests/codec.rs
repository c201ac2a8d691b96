//! The `serde` feature's codec across real processes: a struct of strings,
//! vectors, enums and options round trips from a child of each kind (SPSC
//! channel, MPMC channel, strict topic, Unix stream socket) through
//! `send_serialized` and `recv_deserialized` / `iter_deserialized`; a hostile
//! child sending garbage between valid values gets the receiver a typed
//! `Decode` error naming the message's length and the byte where decoding
//! stopped, and the receiver goes on with the next value. In one process: the
//! encode side's `MessageTooLarge` and `Encode`, and the `try_` and timed forms.
//!
//! These tests need the `serde` feature, which the crate's self dev-dependency
//! turns on: they run under a plain `cargo test --workspace`.

mod common;

use std::time::Duration;

use common::*;
use serde::{Deserialize, Serialize};
use shmring::{
    ChannelBuilder, DecodeError, DecodeFailure, EncodeFailure, MessageReceiver, MessageSender,
    RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError,
};

/// The kinds the hostile child sends on (a topic's subscriber decodes as a
/// channel's receiver does: the shared-memory path is covered by SPSC and MPMC).
const HOSTILE_KINDS: [&str; 3] = ["spsc", "mpmc", "unix"];
/// Values per round trip (each under the MPMC default slot of 256 bytes).
const VALUES: u64 = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Body {
    Ping,
    Text(String),
    Point { x: i64, y: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    seq: u64,
    name: String,
    tags: Vec<String>,
    samples: Vec<f64>,
    body: Body,
    note: Option<String>,
}

/// Record `seq`: every field varies with it (lengths, variants, `None`/`Some`).
fn record(seq: u64) -> Record {
    Record {
        seq,
        name: format!("r{seq}"),
        tags: (0..seq % 4).map(|i| format!("t{i}-é")).collect(),
        samples: (0..seq % 5)
            .map(|i| seq as f64 / (i as f64 + 1.0))
            .collect(),
        body: match seq % 3 {
            0 => Body::Ping,
            1 => Body::Text("ünïcode ✓".repeat((seq % 3) as usize)),
            _ => Body::Point {
                x: -(seq as i64),
                y: i64::MAX - seq as i64,
            },
        },
        note: (seq % 2 == 0).then(|| format!("even {seq}")),
    }
}

/// What the hostile child sends, in order: a valid value, or garbage with the
/// error it must cost the receiver.
enum Step {
    Value(Record),
    Garbage(Vec<u8>, DecodeError),
}

fn fault(bytes: &[u8], position: usize, failure: DecodeFailure) -> Step {
    let error = DecodeError {
        len: bytes.len(),
        position,
        failure,
    };
    Step::Garbage(bytes.to_vec(), error)
}

/// The hostile child's messages. `record(1)` encodes as `seq` (1 byte: 1), then
/// `name` (length 2, then "r1"), then the rest.
fn hostile_script() -> Vec<Step> {
    let good = postcard::to_allocvec(&record(1)).unwrap();
    assert_eq!(
        &good[..4],
        &[1, 2, b'r', b'1'],
        "the layout the faults assume"
    );
    let mut bad_utf8 = good.clone();
    bad_utf8[2] = 0xff;
    let mut trailing = good.clone();
    trailing.push(0);
    vec![
        Step::Value(record(0)),
        // Random-looking bytes: `seq`'s varint runs past 10 bytes.
        fault(&[0xff; 12], 10, DecodeFailure::BadVarint),
        Step::Value(record(1)),
        // `name` is not UTF-8: read to the end of the string.
        fault(&bad_utf8, 4, DecodeFailure::BadUtf8),
        Step::Value(record(2)),
        // Cut inside `name`: stopped after its length.
        fault(&good[..3], 2, DecodeFailure::UnexpectedEnd),
        Step::Value(record(3)),
        // A whole value, then a byte more.
        fault(&trailing, good.len(), DecodeFailure::TrailingBytes),
        Step::Value(record(4)),
        // Nothing at all.
        fault(&[], 0, DecodeFailure::UnexpectedEnd),
        Step::Value(record(5)),
    ]
}

fn child_start() -> bool {
    child_start_within(Duration::from_secs(120))
}

/// Child: opens `KIND` endpoint `NAME`, reports READY, then sends `record(0)`
/// to `record(COUNT - 1)` with `send_serialized` (`MODE` good), or the
/// [`hostile_script`] (`MODE` hostile: garbage with the bytes API), and leaves.
#[test]
fn child_codec_sender() {
    if !child_start() {
        return;
    }
    let mut tx = feeder_sender(&param("KIND"), &param("NAME"));
    report("READY", std::process::id());
    match param("MODE").as_str() {
        "good" => {
            for seq in 0..param_u64("COUNT") {
                tx.send_serialized(&record(seq)).unwrap();
            }
        }
        _ => {
            for step in hostile_script() {
                match step {
                    Step::Value(r) => tx.send_serialized(&r).unwrap(),
                    Step::Garbage(bytes, _) => tx.send(&bytes).unwrap(),
                }
            }
        }
    }
}

fn codec_child(kind: &str, name: &str, mode: &str) -> Peer {
    Peer::spawn(
        "child_codec_sender",
        &[
            ("KIND", &kind),
            ("NAME", &name),
            ("MODE", &mode),
            ("COUNT", &VALUES),
        ],
    )
}

#[test]
fn records_round_trip_from_a_child_of_every_kind() {
    for kind in FEED_KINDS {
        let name = unique(&format!("codec-{kind}"));
        let (mut rx, _guard, mut peer) =
            receiver_of_kind(kind, &name, || codec_child(kind, &name, "good"));
        // The first through the blocking call, the rest through the iterator.
        let first: Record = rx.recv_deserialized().unwrap();
        assert_eq!(first, record(0), "{kind}");
        let mut next = 1;
        for value in rx.iter_deserialized::<Record>() {
            let value = value.unwrap_or_else(|e| panic!("{kind}: value {next}: {e}"));
            assert_eq!(value, record(next), "{kind}");
            next += 1;
        }
        assert_eq!(next, VALUES, "{kind}: every value, then the end");
        peer.wait_ok();
    }
}

#[test]
fn a_hostile_child_costs_typed_decode_errors_and_the_receiver_goes_on() {
    for kind in HOSTILE_KINDS {
        let name = unique(&format!("codec-hostile-{kind}"));
        let (mut rx, _guard, mut peer) =
            receiver_of_kind(kind, &name, || codec_child(kind, &name, "hostile"));
        for (i, step) in hostile_script().into_iter().enumerate() {
            let got = rx.recv_deserialized::<Record>();
            match step {
                Step::Value(want) => assert_eq!(got, Ok(want), "{kind}: step {i}"),
                Step::Garbage(_, want) => {
                    assert_eq!(
                        got,
                        Err(RecvError::Decode(Box::new(want))),
                        "{kind}: step {i}"
                    );
                }
            }
        }
        assert_eq!(
            rx.recv_deserialized::<Record>(),
            Err(RecvError::Disconnected),
            "{kind}: the end"
        );
        peer.wait_ok();
    }
}

/// The iterator yields a decode error and goes on (in one process).
#[test]
fn iter_deserialized_yields_a_decode_error_and_goes_on() {
    let channel = ChannelBuilder::memfd().capacity(4096).create().unwrap();
    let (mut tx, mut rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
    tx.send_serialized(&record(7)).unwrap();
    tx.send(&[0xff; 12]).unwrap();
    tx.send_serialized(&record(8)).unwrap();
    drop(tx);
    let got: Vec<_> = rx.iter_deserialized::<Record>().collect();
    let garbage = DecodeError {
        len: 12,
        position: 10,
        failure: DecodeFailure::BadVarint,
    };
    assert_eq!(
        got,
        vec![
            Ok(record(7)),
            Err(RecvError::Decode(Box::new(garbage))),
            Ok(record(8))
        ]
    );
}

#[test]
fn a_value_longer_than_the_largest_message_is_message_too_large() {
    let channel = ChannelBuilder::memfd().capacity(4096).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let max = tx.max_message_len();
    let big = vec![7u8; max];
    // A `Vec<u8>` encodes as its length (a varint) then its bytes.
    let len = postcard::to_allocvec(&big).unwrap().len();
    assert!(len > max);
    assert_eq!(
        tx.send_serialized(&big),
        Err(SendError::MessageTooLarge { len, max })
    );
    assert_eq!(
        tx.try_send_serialized(&big),
        Err(TrySendError::MessageTooLarge { len, max })
    );
    // Nothing was sent.
    let mut rx = channel.receiver().unwrap();
    assert_eq!(
        rx.try_recv_deserialized::<Vec<u8>>(),
        Err(TryRecvError::Empty)
    );
}

/// A `Serialize` over an iterator does not know its length: postcard cannot
/// write it.
#[test]
fn a_value_postcard_cannot_write_is_an_encode_error() {
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..3u8).filter(|_| true))
        }
    }
    let channel = ChannelBuilder::memfd().capacity(4096).create().unwrap();
    let mut tx = channel.sender().unwrap();
    assert_eq!(
        tx.send_serialized(&Unsized),
        Err(SendError::Encode {
            failure: EncodeFailure::SeqLengthUnknown
        })
    );
    let e: shmring::Error = SendError::Encode {
        failure: EncodeFailure::SeqLengthUnknown,
    }
    .into();
    assert!(matches!(e, shmring::Error::Encode { .. }), "{e}");
}

/// The `try_` and timed forms, and the boxed (`dyn`) endpoints, in one process.
#[test]
fn try_and_timed_forms() {
    let channel = ChannelBuilder::memfd().capacity(4096).create().unwrap();
    let mut tx: Box<dyn MessageSender> = Box::new(channel.sender().unwrap());
    let mut rx: Box<dyn MessageReceiver> = Box::new(channel.receiver().unwrap());
    assert_eq!(
        rx.try_recv_deserialized::<Record>(),
        Err(TryRecvError::Empty)
    );
    assert_eq!(
        rx.recv_deserialized_timeout::<Record>(Duration::from_millis(5)),
        Err(RecvTimeoutError::TimedOut)
    );
    tx.try_send_serialized(&record(1)).unwrap();
    tx.send_serialized_timeout(&record(2), Duration::from_secs(5))
        .unwrap();
    tx.send_serialized_deadline(&record(3), None).unwrap();
    assert_eq!(rx.try_recv_deserialized::<Record>(), Ok(record(1)));
    assert_eq!(
        rx.recv_deserialized_timeout::<Record>(Duration::from_secs(5)),
        Ok(record(2))
    );
    assert_eq!(rx.recv_deserialized_deadline::<Record>(None), Ok(record(3)));
    // A decode error converts into the crate's error with its values.
    tx.send(&[0xff; 12]).unwrap();
    let e: shmring::Error = rx.recv_deserialized::<Record>().unwrap_err().into();
    assert!(
        matches!(
            e,
            shmring::Error::Decode {
                len: 12,
                position: 10,
                failure: DecodeFailure::BadVarint
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "undecodable message of 12 bytes: a variable-length integer longer than its type allows, at byte 10"
    );
}
