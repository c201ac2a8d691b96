//! The receive iterators (`iter`, `try_iter`, `for message in &mut rx`) across
//! real processes: a feeder child of each kind (SPSC channel, MPMC channel,
//! strict topic, Unix stream socket) sends numbered messages; `iter()` gets every
//! one in order and ends when the feeder leaves; `try_iter()` drains what is there
//! and stops while the feeder stays. A lossy subscriber's `Lagged` is yielded, not
//! swallowed, and the iteration goes on past it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmring::broadcast::{Policy, Start};
use shmring::{
    BroadcastBuilder, ChannelBuilder, MessageReceiver, MpmcReceiver, Receiver, RecvError,
    Subscriber, TryRecvError,
};

fn child_start() -> bool {
    child_start_within(Duration::from_secs(120))
}

/// Child: a feeder ([`feed`]).
#[test]
fn child_iter_feeder() {
    if !child_start() {
        return;
    }
    feed();
}

/// Spawns the feeder of `kind` on `name`, sending `count` messages, holding its
/// sender until released if `hold`.
fn feeder(kind: &str, name: &str, count: u64, hold: bool) -> Peer {
    Peer::spawn(
        "child_iter_feeder",
        &[
            ("KIND", &kind),
            ("NAME", &name),
            ("COUNT", &count),
            ("HOLD", &u8::from(hold)),
        ],
    )
}

/// Checks that `messages` are seq messages 0, 1, 2, … in order, `count` of them.
fn assert_in_order(kind: &str, messages: &[Vec<u8>], count: u64) {
    assert_eq!(messages.len() as u64, count, "{kind}: message count");
    for (i, m) in messages.iter().enumerate() {
        let seq = parse_seq(m).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(seq, i as u64, "{kind}: out of order");
    }
}

#[test]
fn iter_gets_every_message_in_order_then_ends_when_the_sender_leaves() {
    const COUNT: u64 = 3_000;
    for kind in FEED_KINDS {
        let name = unique(&format!("iter-{kind}"));
        let (mut rx, _guard, mut peer) =
            receiver_of_kind(kind, &name, || feeder(kind, &name, COUNT, false));
        let mut got = Vec::new();
        for message in rx.iter() {
            got.push(message.unwrap_or_else(|e| panic!("{kind}: {e}")));
        }
        assert_in_order(kind, &got, COUNT);
        peer.wait_ok();
        // Ended at `Disconnected`, which it did not yield: the receiver says so.
        assert_eq!(
            rx.try_recv(&mut [0u8; 128]),
            Err(TryRecvError::Disconnected),
            "{kind}"
        );
    }
}

#[test]
fn a_for_loop_over_a_concrete_receiver_ends_when_the_sender_leaves() {
    const COUNT: u64 = 1_000;
    let name = unique("iter-loop");
    let channel = ChannelBuilder::shm(&name).create().unwrap();
    let mut rx: Receiver = channel.receiver().unwrap();
    let mut peer = feeder("spsc", &name, COUNT, false);
    peer.expect("READY");
    let mut got = Vec::new();
    for message in &mut rx {
        got.push(message.unwrap());
    }
    assert_in_order("spsc", &got, COUNT);
    peer.wait_ok();
}

/// The receive-only kinds loop with `for message in &mut rx`; a duplex
/// `Connection` does not (it could not answer inside the loop).
#[test]
fn receive_only_kinds_are_into_iterator() {
    fn loops<T>()
    where
        for<'a> &'a mut T: IntoIterator<Item = Result<Vec<u8>, RecvError>>,
    {
    }
    loops::<Receiver>();
    loops::<MpmcReceiver>();
    loops::<Subscriber>();
    loops::<shmring::connection::ConnectionReceiver>();
    loops::<shmring::transport::unix::UnixReceiver>();
    loops::<shmring::transport::seqpacket::SeqpacketReceiver>();
}

#[test]
fn try_iter_drains_what_is_there_and_stops_while_the_sender_stays() {
    // Fewer than any kind's capacity: the feeder sends them all without waiting.
    const COUNT: u64 = 16;
    for kind in FEED_KINDS {
        let name = unique(&format!("try-iter-{kind}"));
        let (mut rx, _guard, mut peer) =
            receiver_of_kind(kind, &name, || feeder(kind, &name, COUNT, true));
        peer.expect("SENT");
        let got: Vec<Vec<u8>> = rx
            .try_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_in_order(kind, &got, COUNT);
        // It stopped at `Empty`: the sender is still there.
        assert_eq!(
            rx.try_recv(&mut [0u8; 128]),
            Err(TryRecvError::Empty),
            "{kind}"
        );
        assert!(rx.try_iter().next().is_none(), "{kind}: nothing more now");
        peer.release();
        peer.wait_ok();
        // The feeder gone: the drain ends at once, yielding nothing.
        assert!(rx.try_iter().next().is_none(), "{kind}: after the feeder");
        // A failed non-blocking call probes the peer at most every millisecond
        // (`TRY_LIVENESS_INTERVAL`; within it the last verdict stands): `Empty`
        // until the next probe, then `Disconnected`, well within 1 s.
        let deadline = Instant::now() + Duration::from_secs(1);
        let last = loop {
            match rx.try_recv(&mut [0u8; 128]) {
                Err(TryRecvError::Empty) if Instant::now() < deadline => std::thread::yield_now(),
                other => break other,
            }
        };
        assert_eq!(last, Err(TryRecvError::Disconnected), "{kind}");
    }
}

/// A lossy topic and a subscriber from its oldest message.
fn lapped_subscriber(tag: &str) -> (shmring::Topic, Subscriber) {
    let topic = BroadcastBuilder::shm(unique(tag))
        .capacity(1024)
        .policy(Policy::Lossy)
        .subscriber_slots(4)
        .create()
        .unwrap();
    let rx = topic.subscriber(Start::Oldest).unwrap();
    (topic, rx)
}

/// Checks a lapped subscriber's items: `Lagged { missed }` first, then the
/// messages from `missed` on, in order, up to 199.
fn assert_lagged_then_in_order(items: Vec<Result<Vec<u8>, RecvError>>) {
    let missed = match &items[0] {
        Err(RecvError::Lagged { missed }) => *missed,
        other => panic!("expected Lagged first, got {other:?}"),
    };
    assert!(missed > 0 && missed < 200, "missed {missed}");
    let numbers: Vec<u64> = items[1..]
        .iter()
        .map(|m| {
            let m = m.as_ref().expect("a message after the lag");
            u64::from_le_bytes(m[..8].try_into().unwrap())
        })
        .collect();
    assert_eq!(numbers, (missed..200).collect::<Vec<_>>());
}

/// 64 bytes starting with `n`.
fn numbered(n: u64) -> [u8; 64] {
    let mut m = [0u8; 64];
    m[..8].copy_from_slice(&n.to_le_bytes());
    m
}

#[test]
fn a_lossy_subscriber_is_told_it_lagged_and_the_iteration_goes_on() {
    // try_iter, the publisher staying.
    let (topic, mut rx) = lapped_subscriber("iter-lag-try");
    let mut tx = topic.publisher().unwrap();
    for n in 0..200 {
        tx.try_send(&numbered(n)).unwrap();
    }
    assert_lagged_then_in_order(rx.try_iter().collect());
    drop(tx);
    // iter, the publisher gone after its last message.
    let (topic, mut rx) = lapped_subscriber("iter-lag");
    let mut tx = topic.publisher().unwrap();
    for n in 0..200 {
        tx.try_send(&numbered(n)).unwrap();
    }
    drop(tx);
    assert_lagged_then_in_order(rx.iter().collect());
}
