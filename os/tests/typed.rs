//! Typed values (the `zerocopy` feature), across real processes (this test binary
//! started again with `--exact child_...` and `SHMRING_TEST_CHILD` set; the
//! `child_*` entry points return at once in the normal suite): values sent by a
//! feeder process come back equal through an SPSC channel, an MPMC channel, a
//! strict topic's subscriber and a Unix socket transport; a hostile feeder's
//! bytes that are not a `T` (too short, too long, an enum discriminant or a
//! `bool` the type does not have) get the receiver a typed error naming the type
//! and the lengths, each message consumed, never a panic; a value granted in
//! place by one process is read in place by another. In one process: the typed
//! grant and read of a strict topic, and a wrong-length message read in place.

mod common;

use std::time::Duration;

use common::*;
use shmring::broadcast::{BroadcastBuilder, Policy, Start};
use shmring::zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, TryFromBytes};
use shmring::{
    ChannelBuilder, InvalidValue, MessageSender, RecvTimeoutError, SegmentBuilder, TryRecvError,
    TypedReceiver, TypedSender, ValueProblem, WaitStrategy,
};

const LONG: Duration = Duration::from_secs(30);
/// Values per feeder.
const VALUES: u64 = 2_000;

fn child_start() -> bool {
    child_start_within(Duration::from_secs(120))
}

/// A 32-byte plain value: every bit pattern is one, padding made a field.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy, PartialEq)]
#[zerocopy(crate = "shmring::zerocopy")]
#[repr(C)]
struct Sample {
    seq: u64,
    id: u32,
    _pad: [u8; 4],
    value: f64,
    tag: [u8; 8],
}

fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        id: (seq as u32).wrapping_mul(2_654_435_761),
        _pad: [0; 4],
        value: seq as f64 * 0.5,
        tag: seq.to_le_bytes().map(|b| b ^ 0x5a),
    }
}

/// A mode: three of the 256 values of its byte.
#[allow(
    dead_code,
    reason = "the other modes are the bytes the receiver must accept"
)]
#[derive(TryFromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy, PartialEq)]
#[zerocopy(crate = "shmring::zerocopy")]
#[repr(u8)]
enum Mode {
    Idle = 0,
    Run = 1,
    Stop = 2,
}

/// An 8-byte value with invariants: the mode and the flag refuse most bytes.
#[derive(TryFromBytes, IntoBytes, Immutable, KnownLayout, Debug, Clone, Copy, PartialEq)]
#[zerocopy(crate = "shmring::zerocopy")]
#[repr(C)]
struct Command {
    seq: u32,
    mode: Mode,
    urgent: bool,
    _pad: [u8; 2],
}

const GOOD_COMMAND: Command = Command {
    seq: 9,
    mode: Mode::Stop,
    urgent: true,
    _pad: [0; 2],
};

/// Child: opens `KIND` endpoint `NAME` through the feeder maker, reports READY,
/// sends `sample(0..COUNT)` with `send_value` through the boxed sender (the
/// trait's calls), and exits.
#[test]
fn child_typed_feeder() {
    if !child_start() {
        return;
    }
    let mut tx = feeder_sender(&param("KIND"), &param("NAME"));
    report("READY", std::process::id());
    for seq in 0..param_u64("COUNT") {
        tx.send_value(&sample(seq))
            .unwrap_or_else(|e| panic!("send_value {seq}: {e}"));
    }
}

/// Values sent by another process come back equal, in order, through each kind
/// a feeder sends on (SPSC, MPMC, strict topic, Unix socket), received through
/// the boxed receiver's trait calls; then `Disconnected`.
#[test]
fn values_round_trip_through_every_kind_across_processes() {
    let name = unique("typed-trip");
    for kind in FEED_KINDS {
        let name = format!("{name}-{kind}");
        let (mut rx, _guard, mut feeder) = receiver_of_kind(kind, &name, || {
            Peer::spawn(
                "child_typed_feeder",
                &[("KIND", &kind), ("NAME", &name), ("COUNT", &VALUES)],
            )
        });
        for seq in 0..VALUES {
            let got: Sample = rx
                .recv_value_timeout(LONG)
                .unwrap_or_else(|e| panic!("{kind}: value {seq}: {e}"));
            assert_eq!(got, sample(seq), "{kind}: value {seq}");
        }
        feeder.wait_ok();
        match rx.recv_value_timeout::<Sample>(LONG) {
            Err(RecvTimeoutError::Disconnected) => {}
            other => panic!("{kind}: after the last value: {other:?}"),
        }
    }
}

/// What a checked receive of a `Command` must say of a hostile message: the
/// length and problem of its `InvalidValue` (`None`: the value itself).
type Verdict = Option<(usize, ValueProblem)>;

/// The hostile feeder's messages, in order, with their verdicts.
fn hostile_messages() -> Vec<(Vec<u8>, Verdict)> {
    let good = GOOD_COMMAND.as_bytes().to_vec();
    let mut bad_mode = good.clone();
    bad_mode[4] = 7;
    let mut bad_bool = good.clone();
    bad_bool[5] = 2;
    vec![
        (vec![1, 2, 3], Some((3, ValueProblem::WrongLength))),
        (vec![0xee; 40], Some((40, ValueProblem::WrongLength))),
        (Vec::new(), Some((0, ValueProblem::WrongLength))),
        (bad_mode, Some((8, ValueProblem::InvalidBitPattern))),
        (bad_bool, Some((8, ValueProblem::InvalidBitPattern))),
        (good, None),
    ]
}

/// Child: opens `KIND` endpoint `NAME`, reports READY, sends the
/// [`hostile_messages`] as raw bytes, and exits.
#[test]
fn child_hostile_feeder() {
    if !child_start() {
        return;
    }
    let mut tx = feeder_sender(&param("KIND"), &param("NAME"));
    report("READY", std::process::id());
    for (bytes, _) in hostile_messages() {
        MessageSender::send(&mut tx, &bytes).unwrap();
    }
}

/// A peer that sends bytes that are not a `Command` (too short, too long,
/// empty, a mode byte the enum does not have, a `bool` of 2) gets the receiver
/// `InvalidValue` naming the type, the length got and the length expected, for
/// each message in turn (each consumed: the next call gets the next message),
/// then the good value; through every kind a feeder sends on.
#[test]
fn a_hostile_peer_gets_the_receiver_a_typed_error_per_bad_message() {
    let name = unique("typed-hostile");
    for kind in FEED_KINDS {
        let name = format!("{name}-{kind}");
        let (mut rx, _guard, mut feeder) = receiver_of_kind(kind, &name, || {
            Peer::spawn("child_hostile_feeder", &[("KIND", &kind), ("NAME", &name)])
        });
        for (i, (_, expected)) in hostile_messages().into_iter().enumerate() {
            let got = rx.recv_checked_timeout::<Command>(LONG);
            match (got, expected) {
                (Ok(command), None) => assert_eq!(command, GOOD_COMMAND, "{kind}"),
                (Err(RecvTimeoutError::InvalidValue(e)), Some((len, problem))) => {
                    assert_eq!(
                        *e,
                        InvalidValue {
                            type_name: std::any::type_name::<Command>(),
                            len,
                            expected: 8,
                            problem,
                        },
                        "{kind}: message {i}"
                    );
                    assert!(e.to_string().contains("Command"), "{e}");
                }
                (other, expected) => {
                    panic!("{kind}: message {i}: got {other:?}, expected {expected:?}")
                }
            }
        }
        feeder.wait_ok();
    }
}

/// Child: opens the SPSC channel `NAME`, reports READY, writes `sample(0..COUNT)`
/// in place through typed grants, and exits.
#[test]
fn child_grants_values() {
    if !child_start() {
        return;
    }
    let mut tx = claim("sender", || {
        ChannelBuilder::shm(param("NAME"))
            .wait_strategy(WaitStrategy::Park)
            .open()?
            .sender()
    });
    report("READY", std::process::id());
    for seq in 0..param_u64("COUNT") {
        let mut grant = tx.grant_value::<Sample>().unwrap();
        assert_eq!(*grant, Sample::new_zeroed(), "a grant starts zeroed");
        grant.seq = seq;
        *grant = sample(seq);
        grant.commit();
    }
}

/// A value granted in place by one process is read in place by another: the
/// `&Sample` is the message's bytes in the ring (the same address), 8-aligned,
/// equal to what was written; a read not released is read again.
#[test]
fn an_spsc_value_written_in_place_is_read_in_place_by_another_process() {
    let name = unique("typed-inplace");
    let channel = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let mut rx = channel.receiver().unwrap();
    let mut feeder = Peer::spawn(
        "child_grants_values",
        &[("NAME", &name), ("COUNT", &VALUES)],
    );
    feeder.expect("READY");
    for seq in 0..VALUES {
        let value = rx.read_value_timeout::<Sample>(LONG).unwrap();
        let at = std::ptr::from_ref::<Sample>(&value).cast::<u8>();
        assert_eq!(
            at,
            value.message().as_ptr(),
            "the value is the ring's bytes"
        );
        assert_eq!(at as usize % 8, 0);
        assert_eq!(*value, sample(seq));
        if seq == 0 {
            // `value` not released (its borrow ends unused): the next read gets
            // the same message.
            assert_eq!(*rx.read_value_timeout::<Sample>(LONG).unwrap(), sample(0));
            rx.read_value_timeout::<Sample>(LONG).unwrap().release();
        } else {
            value.release();
        }
    }
    feeder.wait_ok();
}

/// A message of another length read in place as a `T` is refused with
/// `InvalidValue` and released: the next read gets the next message. On SPSC and
/// on a strict topic (where a typed grant writes the value).
#[test]
fn a_wrong_length_read_in_place_is_refused_and_released() {
    let channel = ChannelBuilder::memfd().capacity(4096).create().unwrap();
    let (mut tx, mut rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
    tx.send(&[7; 12]).unwrap();
    tx.send_value(&sample(3)).unwrap();
    match rx.try_read_value::<Sample>() {
        Err(TryRecvError::InvalidValue(e)) => {
            assert_eq!(
                (e.len, e.expected, e.problem),
                (12, 32, ValueProblem::WrongLength)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(*rx.try_read_value::<Sample>().unwrap(), sample(3));

    let topic = BroadcastBuilder::memfd()
        .policy(Policy::Strict)
        .capacity(4096)
        .create()
        .unwrap();
    let mut publisher = topic.publisher().unwrap();
    let mut subscriber = topic.subscriber(Start::Oldest).unwrap();
    publisher.send(&[1; 31]).unwrap();
    let mut grant = publisher.try_grant_value::<Sample>().unwrap();
    *grant = sample(5);
    assert_eq!(grant.commit(), 1, "one subscriber joined");
    match subscriber.try_read_value::<Sample>() {
        Err(TryRecvError::InvalidValue(e)) => assert_eq!((e.len, e.expected), (31, 32)),
        other => panic!("{other:?}"),
    }
    let value = subscriber.try_read_value::<Sample>().unwrap();
    assert_eq!(*value, sample(5));
    assert_eq!(value.message().seq(), 2);
    value.release();
    // The inherent calls and the trait's are the same calls.
    publisher.send_value(&sample(6)).unwrap();
    assert_eq!(
        TypedReceiver::try_recv_value::<Sample>(&mut subscriber).unwrap(),
        sample(6)
    );
}

/// Receiving into a value of the caller's: every form fills it with the next
/// value; a message of another length is consumed and reported, the value
/// after it arrives.
#[test]
fn values_are_received_into_the_callers_value() {
    let (mut tx, mut rx) = shmring::channel::pair(1 << 12).unwrap();
    let mut value = sample(0);
    for seq in 1..=3 {
        tx.send_value(&sample(seq)).unwrap();
    }
    tx.send(b"not a sample").unwrap();
    tx.send_value(&sample(4)).unwrap();
    rx.try_recv_value_into(&mut value).unwrap();
    assert_eq!(value, sample(1));
    rx.recv_value_into(&mut value).unwrap();
    assert_eq!(value, sample(2));
    rx.recv_value_into_timeout(&mut value, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(value, sample(3));
    match rx.try_recv_value_into(&mut value) {
        Err(TryRecvError::InvalidValue(invalid)) => {
            assert_eq!(invalid.len, 12);
            assert_eq!(invalid.expected, std::mem::size_of::<Sample>());
        }
        other => panic!("a 12-byte message as a Sample: {other:?}"),
    }
    rx.recv_value_into_deadline(&mut value, None).unwrap();
    assert_eq!(value, sample(4));
    assert!(matches!(
        rx.try_recv_value_into(&mut value),
        Err(TryRecvError::Empty)
    ));
}
