//! What the inbound side does with what Zenoh brings: malformed payloads, gaps,
//! its own echoes, keys outside the allow-list. A raw Zenoh session (a second
//! session of this process, connected over loopback) plays the hostile or lossy
//! peer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmring::RecvTimeoutError;
use shmring_zenoh::wire::{self, Header, Kind, WireError};
use shmring_zenoh::{Bridge, BridgeError, InboundEnd};
use zenoh::Wait;

/// A listening session with a bridge inbound on a fresh key into a local
/// channel, and a raw session connected to it that sees the inbound's subscriber.
struct Rig {
    key: String,
    inbound: shmring_zenoh::Inbound,
    rx: shmring::Receiver,
    raw: zenoh::Session,
    _bridge: Bridge,
}

fn rig(tag: &str) -> Rig {
    rig_with(tag, 1 << 16, |inbound| inbound)
}

/// As [`rig`], with a local channel of `capacity` bytes and the inbound built
/// as `build` says.
fn rig_with(
    tag: &str,
    capacity: usize,
    build: impl FnOnce(
        shmring_zenoh::InboundBuilder<shmring::Sender>,
    ) -> shmring_zenoh::InboundBuilder<shmring::Sender>,
) -> Rig {
    let port = free_port();
    let key = unique_key(tag);
    let bridge = Bridge::new(listening_session(port));
    let (tx, rx) = shmring::channel::pair(capacity).expect("pair");
    let inbound = build(bridge.inbound(&key, tx)).start().expect("inbound");
    let raw = connecting_session(port);
    // The raw session's publications reach the inbound once its subscriber is known.
    let publisher = raw
        .declare_publisher(key.clone())
        .wait()
        .expect("publisher");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !publisher
        .matching_status()
        .wait()
        .expect("matching")
        .matching()
    {
        assert!(
            Instant::now() < deadline,
            "the raw session never saw the inbound's subscriber"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Rig {
        key,
        inbound,
        rx,
        raw,
        _bridge: bridge,
    }
}

fn put(rig: &Rig, payload: Vec<u8>) {
    rig.raw.put(rig.key.clone(), payload).wait().expect("put");
}

/// A batch of `messages` numbered from `seq`.
fn batch(origin: u64, seq: u64, messages: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for message in messages {
        wire::push_record(&mut body, message);
    }
    wire::encode(
        &Header {
            kind: Kind::Batch,
            origin,
            stream: 1,
            seq,
        },
        &body,
    )
}

fn data(origin: u64, seq: u64, body: &[u8]) -> Vec<u8> {
    wire::encode(
        &Header {
            kind: Kind::Data,
            origin,
            stream: 1,
            seq,
        },
        body,
    )
}

fn end(origin: u64, seq: u64) -> Vec<u8> {
    wire::encode(
        &Header {
            kind: Kind::EndOfStream,
            origin,
            stream: 1,
            seq,
        },
        b"",
    )
}

fn expect_disconnected(rx: &mut shmring::Receiver) {
    match rx.recv_vec_deadline(Some(Instant::now() + Duration::from_secs(10))) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[test]
fn malformed_payloads_are_counted_drops_with_typed_errors_not_panics() {
    let mut rig = rig("malformed");
    let good = data(42, 0, b"the one good message");
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let mut bad_version = good.clone();
    bad_version[4] = 200;
    let mut bad_kind = good.clone();
    bad_kind[5] = 77;
    let mut reserved = good.clone();
    reserved[6] = 1;
    let mut end_with_body = end(42, 1);
    end_with_body.push(0);
    let misplaced_ack = wire::encode(
        &Header {
            kind: Kind::Ack,
            origin: 42,
            stream: 1,
            seq: 0,
        },
        b"",
    );
    let mut bad_batch = batch(42, 0, &[b"one".to_vec(), b"two".to_vec()]);
    bad_batch.pop();
    let malformed = [
        Vec::new(),
        b"short".to_vec(),
        bad_magic,
        bad_version,
        bad_kind,
        reserved,
        end_with_body,
        misplaced_ack,
        bad_batch,
    ];
    for payload in &malformed {
        put(&rig, payload.clone());
    }
    put(&rig, good);
    put(&rig, end(42, 1));
    let got = rig
        .rx
        .recv_vec_timeout(Duration::from_secs(10))
        .expect("the good message");
    assert_eq!(got, b"the one good message");
    expect_disconnected(&mut rig.rx);
    let stats = rig.inbound.stats();
    assert_eq!(
        (stats.malformed, stats.delivered, stats.gaps),
        (malformed.len() as u64, 1, 0),
        "{stats:?}"
    );
    let mut problems = Vec::new();
    while let Some(error) = rig.inbound.try_error() {
        match error {
            BridgeError::Malformed { problem, .. } => problems.push(problem),
            other => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(
        problems,
        [
            WireError::TooShort { len: 0 },
            WireError::TooShort { len: 5 },
            WireError::BadMagic { found: *b"XHZB" },
            WireError::UnsupportedVersion { found: 200 },
            WireError::UnknownKind { found: 77 },
            WireError::Reserved { found: 1 },
            WireError::EndWithPayload { len: 1 },
            WireError::MisplacedAck,
            WireError::BadBatch { len: 13, at: 7 },
        ]
    );
    assert_eq!(
        rig.inbound.join().expect("inbound"),
        InboundEnd::AllSourcesEnded
    );
}

#[test]
fn a_gap_is_a_typed_error_and_the_rest_is_delivered() {
    let mut rig = rig("gap");
    for seq in [0, 1, 4, 5] {
        put(&rig, data(7, seq, &seq.to_le_bytes()));
    }
    put(&rig, data(7, 3, b"stale")); // before the one due: dropped
    put(&rig, end(7, 8)); // 6 and 7 never came: a gap at the tail
    for seq in [0u64, 1, 4, 5] {
        let got = rig
            .rx
            .recv_vec_timeout(Duration::from_secs(10))
            .expect("message");
        assert_eq!(got, seq.to_le_bytes());
    }
    expect_disconnected(&mut rig.rx);
    let errors: Vec<String> = std::iter::from_fn(|| rig.inbound.try_error())
        .map(|e| e.to_string())
        .collect();
    let want = [
        BridgeError::Gap {
            origin: 7,
            stream: 1,
            expected: 2,
            got: 4,
        }
        .to_string(),
        BridgeError::Stale {
            origin: 7,
            stream: 1,
            expected: 6,
            got: 3,
        }
        .to_string(),
        BridgeError::Gap {
            origin: 7,
            stream: 1,
            expected: 6,
            got: 8,
        }
        .to_string(),
    ];
    assert_eq!(errors, want);
    let stats = rig.inbound.stats();
    assert_eq!(
        (stats.gaps, stats.missing, stats.stale, stats.delivered),
        (2, 4, 1, 4),
        "{stats:?}"
    );
}

#[test]
fn a_bridge_drops_its_own_messages_and_another_bridge_takes_them() {
    // Bridge A spans two sessions (one origin): what A publishes from one comes
    // back to A's inbound side in the other, and must be dropped there. Bridge B
    // (another origin) takes it.
    let port = free_port();
    let key = unique_key("echo");
    let a_out_side = Bridge::new(listening_session(port));
    let a_in_side = Bridge::new(connecting_session(port)).with_origin(a_out_side.origin());
    let b = Bridge::new(connecting_session(port));
    assert_ne!(a_out_side.origin(), b.origin());
    let (a_in_tx, mut a_in_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let (b_in_tx, mut b_in_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let a_in = a_in_side.inbound(&key, a_in_tx).start().expect("a inbound");
    let b_in = b.inbound(&key, b_in_tx).start().expect("b inbound");
    // Both subscribers known to A's publishing session before anything is sent:
    // each session declares a token after its subscriber, on the same link.
    let _a_ready = a_in_side
        .session()
        .liveliness()
        .declare_token(format!("{key}/ready/a"))
        .wait()
        .expect("token");
    let _b_ready = b
        .session()
        .liveliness()
        .declare_token(format!("{key}/ready/b"))
        .wait()
        .expect("token");
    wait_for_tokens(
        a_out_side.session(),
        &format!("{key}/ready/*"),
        2,
        Duration::from_secs(30),
    );
    let (mut a_out_tx, a_out_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let a_out = a_out_side
        .outbound(a_out_rx, &key)
        .start()
        .expect("a outbound");
    for n in 0..10u8 {
        shmring::MessageSender::send(&mut a_out_tx, &[n]).expect("send");
    }
    drop(a_out_tx);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a_out.is_finished() {
        assert!(Instant::now() < deadline, "A's outbound never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The messages went out one by one or in batches: one publication each,
    // and the end of stream.
    let publications = a_out.stats().publications + 1;
    a_out.join().expect("a outbound");
    for n in 0..10u8 {
        assert_eq!(
            b_in_rx
                .recv_vec_timeout(Duration::from_secs(10))
                .expect("b gets A's"),
            [n]
        );
    }
    expect_disconnected(&mut b_in_rx);
    // A's inbound side received A's publications and dropped them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a_in.stats().echoes < publications {
        assert!(Instant::now() < deadline, "A's echoes: {:?}", a_in.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(a_in.stats().echoes, publications);
    assert_eq!(a_in.stats().delivered, 0);
    let mut buf = [0u8; 64];
    assert_eq!(
        a_in_rx.try_recv(&mut buf),
        Err(shmring::TryRecvError::Empty)
    );
    assert_eq!(b_in.join().expect("b"), InboundEnd::AllSourcesEnded);
}

#[test]
fn keys_outside_the_allow_list_are_refused() {
    let port = free_port();
    let bridge = Bridge::new(listening_session(port))
        .allow(["site/a/**", "site/b"])
        .expect("allow");
    let (tx, rx) = shmring::channel::pair(1 << 12).expect("pair");
    match bridge.outbound(rx, "site/c").start() {
        Err(BridgeError::KeyNotAllowed { key }) => assert_eq!(key, "site/c"),
        other => panic!("site/c: {other:?}"),
    }
    match bridge.inbound("site/**", tx).start() {
        Err(BridgeError::KeyNotAllowed { key }) => assert_eq!(key, "site/**"),
        other => panic!("site/**: {other:?}"),
    }
    let (tx, _rx) = shmring::channel::pair(1 << 12).expect("pair");
    bridge
        .inbound("site/a/x/*", tx)
        .start()
        .expect("inside the list")
        .stop()
        .expect("stop");
    assert!(matches!(
        Bridge::new(listening_session(free_port())).allow(["bad//key"]),
        Err(BridgeError::InvalidKey { .. })
    ));
}

#[test]
fn the_largest_sequence_number_is_a_gap_not_an_overflow() {
    let mut rig = rig("overflow");
    put(&rig, data(9, 0, b"first"));
    put(&rig, data(9, u64::MAX, b"last"));
    put(&rig, end(9, u64::MAX));
    for want in [&b"first"[..], b"last"] {
        let got = rig
            .rx
            .recv_vec_timeout(Duration::from_secs(10))
            .expect("message");
        assert_eq!(got, want);
    }
    expect_disconnected(&mut rig.rx);
    match rig.inbound.try_error() {
        Some(BridgeError::Gap {
            expected: 1,
            got: u64::MAX,
            ..
        }) => {}
        other => panic!("expected the gap, got {other:?}"),
    }
    assert_eq!(rig.inbound.stats().delivered, 2);
}

#[test]
fn a_batch_is_delivered_in_order_also_when_the_local_endpoint_fills_partway() {
    // A local ring of 4 KiB takes a few dozen of these messages: the Zenoh
    // callback delivers the first ones at once, the forwarding thread the rest
    // as the receiver makes room. None twice, none lost, none reported stale.
    let mut rig = rig_with("batch", 4096, |inbound| inbound);
    let messages: Vec<Vec<u8>> = (0..400u32)
        .map(|n| {
            let mut m = n.to_le_bytes().to_vec();
            m.resize(4 + (n as usize % 97), n as u8);
            m
        })
        .collect();
    put(&rig, data(5, 0, &messages[0]));
    put(&rig, batch(5, 1, &messages[1..250]));
    put(&rig, batch(5, 250, &messages[250..]));
    put(&rig, end(5, 400));
    std::thread::sleep(Duration::from_millis(200));
    for (n, want) in messages.iter().enumerate() {
        let got = rig
            .rx
            .recv_vec_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("message {n}: {e}"));
        assert_eq!(&got, want, "message {n}");
    }
    expect_disconnected(&mut rig.rx);
    let stats = rig.inbound.stats();
    assert_eq!(
        (stats.delivered, stats.gaps, stats.stale, stats.malformed),
        (400, 0, 0, 0),
        "{stats:?}"
    );
    assert!(rig.inbound.try_error().is_none());
}

#[test]
fn new_sources_past_the_limit_are_refused_until_one_ends() {
    let mut rig = rig_with("sources", 1 << 16, |inbound| inbound.max_sources(2));
    put(&rig, data(1, 0, b"one"));
    put(&rig, data(2, 0, b"two"));
    put(&rig, data(3, 0, b"refused"));
    put(&rig, end(1, 1));
    put(&rig, data(3, 0, b"three")); // source 1 has ended: forgotten, room made
    for want in [&b"one"[..], b"two", b"three"] {
        let got = rig
            .rx
            .recv_vec_timeout(Duration::from_secs(10))
            .expect("message");
        assert_eq!(got, want);
    }
    match rig.inbound.error_timeout(Duration::from_secs(10)) {
        Some(BridgeError::TooManySources {
            origin: 3,
            stream: 1,
            max: 2,
        }) => {}
        other => panic!("expected TooManySources, got {other:?}"),
    }
    let stats = rig.inbound.stats();
    assert_eq!(
        (stats.sources_refused, stats.delivered),
        (1, 3),
        "{stats:?}"
    );
}
