//! Broadcast topics: in one process (delivery, policies, late joiners, the
//! publisher's departure and return, the read-only data segment, a mismatched
//! pair, random bytes written into both segments of a live topic), and across
//! real processes (this test binary started again with `--exact child_...` and
//! `SHMRING_TEST_CHILD` set; the `child_*` entry points return at once in the
//! normal suite): 1 publisher and 3 subscriber processes, gated and lossy, with
//! numbered, checksummed messages of varied sizes; SIGKILL of a subscriber and of
//! the publisher; a subscriber of another user (file modes) and a memfd topic
//! passed to a child (seals): both read, neither can publish. In place, on strict
//! topics: a publisher process writing and two subscriber processes reading in
//! place; SIGKILL of a subscriber holding a message read in place; the policy
//! error elsewhere.
//!
//! Sizes: the default suite streams `FAN_OUT_MESSAGES` messages; the `#[ignore]`d
//! run 10^6 (`cargo test -p shmring --test broadcast -- --ignored`).

mod common;

use std::os::unix::fs::FileExt;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::broadcast::{BroadcastBuilder, Policy, Publisher, Start, Subscriber, Topic};
use shmring::error::Corrupted;
use shmring::ring_core::LayoutError;
use shmring::segment::ObjectKind;
use shmring::{
    Error, RecvError, RecvTimeoutError, SegmentBuilder, SendError, SendTimeoutError, TryRecvError,
    TrySendError, WaitStrategy,
};

/// Messages per subscriber in the default fan-out runs, and in the ignored ones.
const FAN_OUT_MESSAGES: u64 = 20_000;
const FAN_OUT_MESSAGES_LONG: u64 = 1_000_000;
/// Largest message of the streams.
const MAX_LEN: usize = 700;
/// A bound on calls that should return long before it.
const LONG: Duration = Duration::from_secs(30);
/// The bound on "promptly": a `Disconnected` after a death, a freed slot.
const PROMPT: Duration = Duration::from_secs(2);

fn child_start() -> bool {
    child_start_within(Duration::from_secs(300))
}

/// Message `n` (0-based: the topic numbers it `n + 1`) of a stream.
fn message(n: u64) -> Vec<u8> {
    let mut v = vec![0u8; stream_len(n, MAX_LEN)];
    fill_stream(n, &mut v);
    v
}

/// Receives one message with `recv`, checks it is the topic's message numbered
/// as the subscriber expected it (`next_seq` before the call, after a `Lagged`),
/// and returns its 0-based number. `Lagged` adds to `missed`.
fn recv_checked(
    rx: &mut Subscriber,
    buf: &mut [u8],
    scratch: &mut Vec<u8>,
    missed: &mut u64,
    deadline: Option<Instant>,
) -> Result<u64, RecvTimeoutError> {
    loop {
        let expected = rx.next_seq();
        match rx.recv_deadline(buf, deadline) {
            Ok(n) => {
                let number = expected - 1;
                check_stream(number, MAX_LEN, &buf[..n], scratch)
                    .unwrap_or_else(|e| panic!("subscriber slot {}: {e}", rx.slot()));
                return Ok(number);
            }
            Err(RecvTimeoutError::Lagged { missed: m }) => {
                assert!(m > 0, "Lagged with nothing missed");
                assert_eq!(rx.next_seq(), expected + m, "the gap is the missed count");
                *missed += m;
            }
            Err(e) => return Err(e),
        }
    }
}

fn topic(tag: &str, policy: Policy, capacity: usize) -> (String, Topic) {
    let name = unique(tag);
    let topic = BroadcastBuilder::shm(&name)
        .capacity(capacity)
        .policy(policy)
        .subscriber_slots(4)
        .create()
        .unwrap();
    (name, topic)
}

// ---------------------------------------------------------------------------
// One process
// ---------------------------------------------------------------------------

#[test]
fn every_subscriber_gets_every_message_in_order_gated() {
    for builder in [
        BroadcastBuilder::memfd(),
        BroadcastBuilder::shm(unique("gated")),
    ] {
        let topic = builder
            .capacity(4096)
            .policy(Policy::Gated)
            .create()
            .unwrap();
        let mut tx = topic.publisher().unwrap();
        let mut subs: Vec<Subscriber> = (0..2)
            .map(|_| topic.subscriber(Start::Oldest).unwrap())
            .collect();
        let mut buf = vec![0u8; topic.max_message_len()];
        let mut scratch = Vec::new();
        let mut next = [0u64; 2];
        for n in 0..3000 {
            // The ring holds a few messages only: read when full.
            loop {
                match tx.try_send(&message(n)) {
                    Ok(reached) => {
                        assert_eq!(reached, 2);
                        break;
                    }
                    Err(TrySendError::Full { .. }) => {
                        for (i, rx) in subs.iter_mut().enumerate() {
                            while let Ok(len) = rx.try_recv(&mut buf) {
                                check_stream(next[i], MAX_LEN, &buf[..len], &mut scratch).unwrap();
                                next[i] += 1;
                            }
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        for (i, rx) in subs.iter_mut().enumerate() {
            let mut missed = 0;
            while next[i] < 3000 {
                let got = recv_checked(rx, &mut buf, &mut scratch, &mut missed, None).unwrap();
                assert_eq!(got, next[i]);
                next[i] += 1;
            }
            assert_eq!(missed, 0, "a gated subscriber lagged");
            assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        }
    }
}

#[test]
fn a_lapped_lossy_subscriber_is_told_how_many_it_missed() {
    let (_name, topic) = topic("lossy", Policy::Lossy, 1024);
    let mut tx = topic.publisher().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let numbered = |n: u64| {
        let mut m = [0u8; 64];
        m[..8].copy_from_slice(&n.to_le_bytes());
        m
    };
    for n in 0..200 {
        // A lossy publisher never waits.
        tx.try_send(&numbered(n)).unwrap();
    }
    let mut buf = vec![0u8; topic.max_message_len()];
    let missed = match rx.try_recv(&mut buf) {
        Err(TryRecvError::Lagged { missed }) => missed,
        other => panic!("expected Lagged, got {other:?}"),
    };
    assert!(missed > 0 && missed < 200, "missed {missed}");
    assert_eq!(rx.next_seq(), missed + 1);
    // Then every message still held, in order, from the one after the gap.
    let mut last = missed - 1;
    while let Ok(n) = rx.try_recv(&mut buf) {
        assert_eq!(n, 64);
        let number = u64::from_le_bytes(buf[..8].try_into().unwrap());
        assert_eq!(number, last + 1);
        last = number;
    }
    assert_eq!(last, 199);
}

#[test]
fn late_joiners_start_at_the_newest_or_the_oldest_held() {
    let (_name, topic) = topic("late", Policy::Lossy, 4096);
    let mut tx = topic.publisher().unwrap();
    for n in 0..5 {
        tx.send(&message(n)).unwrap();
    }
    let mut oldest = topic.subscriber(Start::Oldest).unwrap();
    let mut newest = topic.subscriber(Start::Newest).unwrap();
    let mut buf = vec![0u8; topic.max_message_len()];
    assert_eq!(newest.try_recv(&mut buf), Err(TryRecvError::Empty));
    assert_eq!(oldest.next_seq(), 1, "the whole history is held");
    tx.send(&message(5)).unwrap();
    let (mut scratch, mut missed) = (Vec::new(), 0);
    let got = recv_checked(&mut newest, &mut buf, &mut scratch, &mut missed, None).unwrap();
    assert_eq!(got, 5);
    for n in 0..6 {
        assert_eq!(
            recv_checked(&mut oldest, &mut buf, &mut scratch, &mut missed, None).unwrap(),
            n
        );
    }
    // Once the history was overwritten, Oldest starts at the oldest still held.
    for n in 6..200 {
        tx.send(&message(n)).unwrap();
    }
    let late = topic.subscriber(Start::Oldest).unwrap();
    assert!(late.next_seq() > 1, "starts past what was overwritten");
    assert!(late.next_seq() <= 200);
}

#[test]
fn a_gated_publisher_cuts_off_a_subscriber_that_does_not_move() {
    let topic = BroadcastBuilder::shm(unique("cut"))
        .capacity(1024)
        .policy(Policy::Gated)
        .cut_off_after(Duration::from_millis(50))
        .wait_strategy(WaitStrategy::Park)
        .create()
        .unwrap();
    let mut tx = topic.publisher().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let mut sent = 0;
    while tx.try_send(&[7u8; 100]).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    // Held back by a live subscriber: the send waits for the cut-off, then goes.
    let start = Instant::now();
    tx.send_timeout(&[8u8; 100], LONG).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "{:?}",
        start.elapsed()
    );
    for _ in 0..50 {
        tx.send_timeout(&[9u8; 100], LONG).unwrap();
    }
    // It reads on as a lossy subscriber: told what it missed.
    let mut buf = vec![0u8; 512];
    let mut lagged = false;
    loop {
        match rx.try_recv(&mut buf) {
            Ok(_) => {}
            Err(TryRecvError::Lagged { missed }) => {
                assert!(missed > 0);
                lagged = true;
            }
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lagged, "the cut-off subscriber was never told it lagged");
}

#[test]
fn a_strict_publisher_waits_for_a_live_subscriber() {
    let (_name, topic) = topic("strict", Policy::Strict, 1024);
    let mut tx = topic.publisher().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    while tx.try_send(&[1u8; 100]).is_ok() {}
    assert_eq!(
        tx.send_timeout(&[1u8; 100], Duration::from_millis(60)),
        Err(SendTimeoutError::TimedOut)
    );
    let mut buf = [0u8; 128];
    rx.try_recv(&mut buf).unwrap();
    while rx.try_recv(&mut buf).is_ok() {}
    tx.send_timeout(&[1u8; 100], LONG).unwrap();
}

/// A strict publisher parked behind a subscriber that never reads is woken by
/// that subscriber's leaving, not by its next liveness probe (every
/// `LIVENESS_INTERVAL`, 25 ms): the median of seven trials' latencies from the
/// drop to the send's return is under 5 ms (without the wake-up: about 20 ms).
#[test]
fn a_subscriber_leaving_wakes_a_parked_strict_publisher() {
    let (_name, topic) = topic("leave-wakes", Policy::Strict, 1024);
    let mut tx = topic.publisher().unwrap();
    let mut latencies = Vec::new();
    for _ in 0..7 {
        let rx = topic.subscriber(Start::Newest).unwrap();
        while tx.try_send(&[1u8; 100]).is_ok() {}
        let sender = thread::spawn(move || {
            tx.send_timeout(&[2u8; 100], LONG).unwrap();
            (Instant::now(), tx)
        });
        // Long enough for the send to park (a probe finds the holder alive).
        thread::sleep(Duration::from_millis(30));
        let left = Instant::now();
        drop(rx);
        let (sent, back) = sender.join().unwrap();
        tx = back;
        latencies.push(sent.saturating_duration_since(left));
    }
    latencies.sort();
    assert!(
        latencies[3] < Duration::from_millis(5),
        "drop -> send latencies {latencies:?}"
    );
}

/// Writes message `n` of the stream in place (a grant of the largest length,
/// committed at the message's); returns the subscribers it reached.
fn publish_in_place(tx: &mut Publisher, n: u64) -> u32 {
    let mut grant = tx.grant_timeout(MAX_LEN, LONG).unwrap();
    let len = stream_len(n, MAX_LEN);
    fill_stream(n, &mut grant[..len]);
    grant.commit(len)
}

#[test]
fn a_strict_topic_is_written_and_read_in_place() {
    let (_name, topic) = topic("inplace1", Policy::Strict, 4096);
    let mut tx = topic.publisher().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    assert!(matches!(rx.try_read(), Err(TryRecvError::Empty)));
    let mut scratch = Vec::new();
    for n in 0..200 {
        assert_eq!(publish_in_place(&mut tx, n), 1);
        // Dropped unreleased: the same message again.
        let seq = rx.try_read().unwrap().seq();
        assert_eq!(seq, n + 1);
        let message = rx.read_timeout(LONG).unwrap();
        assert_eq!(message.seq(), seq, "a dropped message is read again");
        check_stream(n, MAX_LEN, &message, &mut scratch).unwrap();
        message.release();
        assert_eq!(rx.next_seq(), n + 2);
    }
    // A grant dropped publishes nothing.
    let grant = tx.try_grant(8).unwrap();
    assert_eq!(grant.len(), 8);
    let _ = grant;
    assert!(matches!(rx.try_read(), Err(TryRecvError::Empty)));
    // A strict publisher waits for the subscriber's release.
    while tx.try_grant(MAX_LEN).is_ok_and(|g| g.commit(1) == 1) {}
    assert!(matches!(
        tx.grant_timeout(MAX_LEN, Duration::from_millis(50)),
        Err(SendTimeoutError::TimedOut)
    ));
    // Read and released, all of them: room again.
    let mut read = 0;
    while let Ok(message) = rx.try_read() {
        assert_eq!(message.len(), 1);
        message.release();
        read += 1;
    }
    assert!(read > 1);
    tx.grant_timeout(MAX_LEN, LONG).unwrap().commit(1);
}

#[test]
fn in_place_needs_a_strict_topic() {
    for policy in [Policy::Lossy, Policy::Gated] {
        let (_name, topic) = topic("notstrict", policy, 4096);
        let mut tx = topic.publisher().unwrap();
        let mut rx = topic.subscriber(Start::Oldest).unwrap();
        let error = tx.try_grant(8).unwrap_err();
        assert_eq!(error, TrySendError::InPlaceNeedsStrict { policy });
        assert_eq!(
            error.to_string(),
            format!("writing or reading in place needs a strict topic; this one is {policy:?}")
        );
        assert_eq!(
            tx.grant(8).unwrap_err(),
            SendError::InPlaceNeedsStrict { policy }
        );
        assert_eq!(
            tx.grant_timeout(8, LONG).unwrap_err(),
            SendTimeoutError::InPlaceNeedsStrict { policy }
        );
        // There is a message, and still the read is refused.
        tx.send(b"copied").unwrap();
        assert_eq!(
            rx.try_read().unwrap_err(),
            TryRecvError::InPlaceNeedsStrict { policy }
        );
        assert_eq!(
            rx.read().unwrap_err(),
            RecvError::InPlaceNeedsStrict { policy }
        );
        assert_eq!(
            rx.read_timeout(LONG).unwrap_err(),
            RecvTimeoutError::InPlaceNeedsStrict { policy }
        );
        assert!(matches!(
            Error::from(rx.read().unwrap_err()),
            Error::InPlaceNeedsStrict { policy: p } if p == policy
        ));
        // The copying calls still work.
        let mut buf = [0u8; 16];
        assert_eq!(rx.try_recv(&mut buf), Ok(6));
    }
}

#[test]
fn subscribers_drain_then_disconnect_and_a_new_publisher_continues() {
    let (_name, topic) = topic("leave", Policy::Gated, 4096);
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let mut buf = vec![0u8; topic.max_message_len()];
    // No publisher ever: empty, not disconnected.
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    let mut tx = topic.publisher().unwrap();
    assert!(matches!(topic.publisher(), Err(Error::RoleTaken { .. })));
    for n in 0..3 {
        tx.send(&message(n)).unwrap();
    }
    drop(tx);
    let (mut scratch, mut missed) = (Vec::new(), 0);
    for n in 0..3 {
        assert_eq!(
            recv_checked(&mut rx, &mut buf, &mut scratch, &mut missed, None).unwrap(),
            n
        );
    }
    assert_eq!(
        rx.recv_timeout(&mut buf, LONG),
        Err(RecvTimeoutError::Disconnected)
    );
    let mut tx = topic.publisher().unwrap();
    assert_eq!(tx.next_seq(), 4);
    tx.send(&message(3)).unwrap();
    assert_eq!(
        recv_checked(&mut rx, &mut buf, &mut scratch, &mut missed, None).unwrap(),
        3
    );
}

#[test]
fn batches_go_in_order() {
    let (_name, topic) = topic("batch", Policy::Gated, 1024);
    let mut tx = topic.publisher().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let messages: Vec<Vec<u8>> = (0..40u64).map(|n| [n.to_le_bytes(); 5].concat()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let went = tx.try_send_batch(&refs).unwrap();
    assert!(went > 0 && went < 40, "{went}");
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        (0..40)
            .map(|_| {
                let n = rx.recv_timeout(&mut buf, LONG).unwrap();
                buf[..n].to_vec()
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(
        tx.send_batch_deadline(&refs[went..], Some(Instant::now() + LONG)),
        Ok(40 - went)
    );
    assert_eq!(reader.join().unwrap(), messages);
}

/// Both segments are made and removed together.
#[test]
fn a_topic_is_two_segments_removed_together() {
    let name = unique("pair");
    let topic = BroadcastBuilder::shm(&name).create().unwrap();
    assert!(shm_path(&name).exists());
    assert!(shm_path(&format!("{name}.subs")).exists());
    let listed = shmring::list_objects().unwrap();
    let kind = |n: &str| listed.iter().find(|s| s.name == n).and_then(|s| s.kind);
    assert_eq!(kind(&name), Some(ObjectKind::BroadcastTopic));
    // One object: the table is not an entry of its own.
    assert_eq!(kind(&format!("{name}.subs")), None);
    drop(topic);
    assert_no_shm(&name);
    assert_no_shm(&format!("{name}.subs"));
}

/// Child: creates topic `NAME` (a publisher and a subscriber on it, a message
/// sent), reports READY, and waits to be killed: a crash leaves both segments.
#[test]
fn child_topic_creator() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).create().unwrap();
    let mut tx = topic.publisher().unwrap();
    let _rx = topic.subscriber(Start::Oldest).unwrap();
    tx.send(b"from the dead").unwrap();
    report("READY", std::process::id());
    wait_for_parent();
}

/// A topic left by a killed creator is reclaimed as one: `create` refuses it
/// without `reclaim`, and while its creator lives; with `reclaim` the two
/// segments are replaced by a fresh, empty topic. A table left alone (a crash
/// between the table and the data segment) is reclaimed too.
#[test]
fn a_dead_topic_is_reclaimed_as_one() {
    let name = unique("reclaim");
    let mut child = Peer::spawn("child_topic_creator", &[("NAME", &name)]);
    child.expect("READY");
    let builder = BroadcastBuilder::shm(&name);
    assert!(matches!(
        builder.clone().reclaim(true).create(),
        Err(Error::AlreadyExists { .. })
    ));
    child.kill();
    assert!(matches!(builder.create(), Err(Error::AlreadyExists { .. })));
    let topic = builder.clone().reclaim(true).create().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    topic.publisher().unwrap().send(b"fresh").unwrap();
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"fresh");
    drop(rx);
    drop(topic);
    assert_no_shm(&name);
    assert_no_shm(&format!("{name}.subs"));

    // Only the table: the data segment never made.
    let mut child = Peer::spawn("child_topic_creator", &[("NAME", &name)]);
    child.expect("READY");
    child.kill();
    std::fs::remove_file(shm_path(&name)).unwrap();
    assert!(matches!(builder.open(), Err(Error::NotFound { .. })));
    let topic = builder.clone().reclaim(true).create().unwrap();
    topic.publisher().unwrap().send(b"again").unwrap();
}

/// `open_or_create` creates once, then opens.
#[test]
fn open_or_create_creates_then_opens() {
    let name = unique("ooc");
    let first = BroadcastBuilder::shm(&name).open_or_create().unwrap();
    let second = BroadcastBuilder::shm(&name).open_or_create().unwrap();
    assert_eq!(first.topic_id(), second.topic_id());
    drop((first, second));
    // Racing: one creates, every other opens what it made.
    let name = unique("ooc-race");
    let ids: Vec<u64> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| BroadcastBuilder::shm(&name).open_or_create().unwrap()))
            .collect();
        let topics: Vec<Topic> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        topics.iter().map(Topic::topic_id).collect()
    });
    assert!(ids.iter().all(|&id| id == ids[0]), "{ids:x?}");
}

/// A data segment and a table of two topics are refused.
#[test]
fn a_mismatched_pair_is_refused() {
    let dir = TempDir::new("mismatch");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let ta = BroadcastBuilder::file(&a).create().unwrap();
    let tb = BroadcastBuilder::file(&b).create().unwrap();
    assert_ne!(ta.topic_id(), tb.topic_id());
    drop((ta, tb));
    std::fs::copy(b.with_extension("subs"), a.with_extension("subs")).unwrap();
    match BroadcastBuilder::file(&a).open() {
        Err(Error::Corrupted {
            detail:
                Corrupted::Header(LayoutError::HeaderMismatch {
                    field: "table topic_id",
                    ..
                }),
            ..
        }) => {}
        other => panic!("expected a topic id mismatch, got {other:?}"),
    }
}

/// Subscribers read the data segment through a read-only mapping (and write the
/// table): an opener maps it only so; its creator maps it read-only for
/// subscribers and writable for the publisher.
#[test]
fn subscribers_map_the_data_read_only() {
    let (opened_name, created_name) = (unique("ro"), unique("ro-creator"));
    let _created = BroadcastBuilder::shm(&opened_name).create().unwrap();
    let opened = BroadcastBuilder::shm(&opened_name).open().unwrap();
    let _rx = opened.subscriber(Start::Newest).unwrap();
    let creator = BroadcastBuilder::shm(&created_name).create().unwrap();
    let _tx = creator.publisher().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let perms = |name: &str| -> Vec<String> {
        let path = shm_path(name);
        let mut found: Vec<String> = maps
            .lines()
            .filter(|l| l.ends_with(&*path.to_string_lossy()))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
            .collect();
        found.sort();
        found.dedup();
        found
    };
    // The opened name is mapped by its creator too (this process): both views.
    assert_eq!(perms(&opened_name), ["r--s", "rw-s"]);
    assert_eq!(perms(&created_name), ["r--s", "rw-s"]);
    assert_eq!(perms(&format!("{opened_name}.subs")), ["rw-s"]);
    // Without its creator here, an opener's view is read-only only: a child.
    let mut child = Peer::spawn("child_maps", &[("NAME", &created_name)]);
    assert_eq!(child.expect("DATA"), "r--s");
    assert_eq!(child.expect("TABLE"), "rw-s");
    child.wait_ok();
}

/// Child: opens topic `NAME`, subscribes, and reports how its data segment
/// (`DATA`) and table (`TABLE`) are mapped.
#[test]
fn child_maps() {
    if !child_start() {
        return;
    }
    let name = param("NAME");
    let topic = BroadcastBuilder::shm(&name).open().unwrap();
    let _rx = topic.subscriber(Start::Newest).unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for (key, name) in [("DATA", name.clone()), ("TABLE", format!("{name}.subs"))] {
        let path = shm_path(&name);
        let mut found: Vec<&str> = maps
            .lines()
            .filter(|l| l.ends_with(&*path.to_string_lossy()))
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        found.dedup();
        report(key, found.join(","));
    }
}

/// A memfd topic's data memfd is sealed against writes once its creator mapped
/// it: a holder of its descriptor can neither write it nor map it writable, so it
/// cannot publish; it can subscribe.
#[test]
fn a_memfd_topic_is_sealed_against_other_writers() {
    let topic = BroadcastBuilder::memfd().create().unwrap();
    let tx = topic.publisher().unwrap();
    let (data, table) = topic.fds();
    let data = data.try_clone_to_owned().unwrap();
    let file = std::fs::File::from(data.try_clone().unwrap());
    let e = file.write_at(b"x", 512).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    let other = BroadcastBuilder::memfd()
        .from_fds(data, table.try_clone_to_owned().unwrap())
        .unwrap();
    drop(tx);
    assert!(matches!(
        other.publisher(),
        Err(Error::PermissionDenied { .. })
    ));
    let mut rx = other.subscriber(Start::Newest).unwrap();
    let mut tx = topic.publisher().unwrap();
    tx.send(b"sealed").unwrap();
    let mut buf = [0u8; 16];
    let n = rx.recv_timeout(&mut buf, LONG).unwrap();
    assert_eq!(&buf[..n], b"sealed");
}

/// One `send_timeout` of message `round` and one `recv_timeout`, each bounded
/// by `bound`, on a topic someone is corrupting: asserts both returned by their
/// deadlines (with slack for a loaded machine); returns whether each succeeded.
fn send_and_receive_by_deadlines(
    tx: &mut Publisher,
    rx: &mut Subscriber,
    buf: &mut [u8],
    round: u64,
    bound: Duration,
) -> (bool, bool) {
    let start = Instant::now();
    let sent = tx.send_timeout(&message(round), bound).is_ok();
    let received = rx.recv_timeout(buf, bound).is_ok();
    assert!(
        start.elapsed() < bound * 2 + PROMPT,
        "two calls of {bound:?} took {:?}",
        start.elapsed()
    );
    (sent, received)
}

/// Random bytes written into both segments of a live topic (as a hostile
/// process of the same user could): every call returns, with a message or an
/// error, by its deadline; none panics.
#[test]
fn hostile_bytes_cost_errors_only() {
    for policy in [Policy::Lossy, Policy::Gated] {
        let (name, topic) = topic("hostile", policy, 1024);
        let mut tx = topic.publisher().unwrap();
        let mut rx = topic.subscriber(Start::Oldest).unwrap();
        let data = std::fs::File::options()
            .write(true)
            .open(shm_path(&name))
            .unwrap();
        let table = std::fs::File::options()
            .write(true)
            .open(shm_path(&format!("{name}.subs")))
            .unwrap();
        let (data_len, table_len) = (
            data.metadata().unwrap().len(),
            table.metadata().unwrap().len(),
        );
        let mut rng = XorShift::new(seed("hostile_bytes_cost_errors_only"));
        let mut buf = vec![0u8; topic.max_message_len()];
        let (mut sent, mut received, mut errors) = (0, 0, 0);
        for round in 0..300u64 {
            // A few random words at random offsets (the headers included).
            for _ in 0..4 {
                let (file, len) = if rng.below(2) == 0 {
                    (&data, data_len)
                } else {
                    (&table, table_len)
                };
                let at = rng.below(len / 8) * 8;
                file.write_at(&rng.next_u64().to_ne_bytes(), at).unwrap();
            }
            let (went, came) = send_and_receive_by_deadlines(
                &mut tx,
                &mut rx,
                &mut buf,
                round,
                Duration::from_millis(5),
            );
            sent += u64::from(went);
            received += u64::from(came);
            errors += u64::from(!went) + u64::from(!came);
        }
        eprintln!("{policy:?}: sent {sent}, received {received}, errors {errors}");
    }
}

/// Child: writes random words at random 8-aligned offsets of both segments of
/// topic `NAME` (headers included), `SHMRING_TEST_SEED` seeding it, until killed.
#[test]
fn child_hostile_writer() {
    if !child_start() {
        return;
    }
    let name = param("NAME");
    let open = |path| std::fs::File::options().write(true).open(path).unwrap();
    let files = [
        open(shm_path(&name)),
        open(shm_path(&format!("{name}.subs"))),
    ];
    let lens: Vec<u64> = files.iter().map(|f| f.metadata().unwrap().len()).collect();
    let mut rng = XorShift::new(param_u64("SEED"));
    report("READY", std::process::id());
    loop {
        let which = usize::try_from(rng.below(2)).unwrap();
        // One word in eight anywhere (headers too), the rest past the first
        // 256 bytes (frames, cursors): a header hit ends most calls in an error
        // at once, and the frames and cursors deserve the traffic.
        let skip = if rng.below(8) == 0 { 0 } else { 256 / 8 };
        let at = (skip + rng.below(lens[which] / 8 - skip)) * 8;
        files[which]
            .write_at(&rng.next_u64().to_ne_bytes(), at)
            .unwrap();
        // About 1 000 words a second: a steady trickle, not a flood.
        thread::sleep(Duration::from_millis(1));
    }
}

/// A hostile process writes random words into both segments while a publisher
/// and a subscriber (of each policy) run calls with deadlines: every call
/// returns, with a message or an error, by its deadline; none panics.
#[test]
fn a_concurrent_hostile_writer_costs_errors_only() {
    for policy in [Policy::Lossy, Policy::Gated, Policy::Strict] {
        let (name, topic) = topic("hostile-proc", policy, 1024);
        let mut tx = topic.publisher().unwrap();
        let mut rx = topic.subscriber(Start::Oldest).unwrap();
        let mut writer = Peer::spawn(
            "child_hostile_writer",
            &[
                ("NAME", &name),
                ("SEED", &seed(&format!("hostile writer {policy:?}"))),
            ],
        );
        writer.expect("READY");
        let mut buf = vec![0u8; topic.max_message_len()];
        let (mut sent, mut received, mut errors) = (0, 0, 0);
        let bound = Duration::from_millis(2);
        let until = Instant::now() + Duration::from_millis(400);
        let mut round = 0;
        while Instant::now() < until {
            let (went, came) =
                send_and_receive_by_deadlines(&mut tx, &mut rx, &mut buf, round, bound);
            sent += u64::from(went);
            received += u64::from(came);
            errors += u64::from(!went) + u64::from(!came);
            round += 1;
        }
        writer.kill();
        eprintln!("{policy:?}: {round} rounds, sent {sent}, received {received}, errors {errors}");
        assert!(round > 0);
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Child: opens topic `NAME`, subscribes from the oldest message, reports READY,
/// and receives until `Disconnected`: reports the messages received, the missed
/// count, and the last number, after checking every message and the order.
#[test]
fn child_subscriber() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    report("READY", rx.slot());
    let mut buf = vec![0u8; topic.max_message_len()];
    let (mut scratch, mut missed, mut received) = (Vec::new(), 0, 0u64);
    let mut last: Option<u64> = None;
    loop {
        match recv_checked(&mut rx, &mut buf, &mut scratch, &mut missed, None) {
            Ok(n) => {
                let expected = last.map_or(0, |l| l + 1);
                assert!(n >= expected, "message {n} after {last:?}: out of order");
                last = Some(n);
                received += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    report("RECEIVED", received);
    report("MISSED", missed);
    report("LAST", last.map_or(-1, |l| l as i64));
}

/// Child: opens topic `NAME`, subscribes, reports READY, and never reads.
#[test]
fn child_stuck_subscriber() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let _rx = topic.subscriber(Start::Oldest).unwrap();
    report("READY", std::process::id());
    wait_for_parent();
}

/// Child: opens topic `NAME`, claims its publisher, sends messages `START..END`,
/// reports SENT, and waits to be killed.
#[test]
fn child_publisher() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let mut tx = claim("publisher", || topic.publisher());
    for n in param_u64("START")..param_u64("END") {
        tx.send_timeout(&message(n), LONG).unwrap();
    }
    report("SENT", tx.next_seq() - 1);
    wait_for_parent();
}

/// Child: opens the topic (`NAME`, as nobody trusting root's `0o666` table; or
/// the memfd topic in `SHMRING_TEST_TOPIC`), subscribes, reports whether it could
/// claim the publisher, which nobody holds (`PUBLISH`), then receives one message
/// (`GOT`).
#[test]
fn child_foreign_subscriber() {
    if !child_start() {
        return;
    }
    let topic = if std::env::var_os("SHMRING_TEST_TOPIC").is_some() {
        // SAFETY: the parent passed these two descriptors for this topic.
        unsafe { BroadcastBuilder::memfd().from_env("SHMRING_TEST_TOPIC") }.unwrap()
    } else {
        become_nobody();
        BroadcastBuilder::shm(param("NAME"))
            .trust_owner(0)
            .allow_mode(0o666)
            .open()
            .unwrap()
    };
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let publish = match topic.publisher() {
        Ok(_) => "claimed".to_owned(),
        Err(Error::PermissionDenied { .. }) => "PermissionDenied".to_owned(),
        Err(e) => format!("{e:?}"),
    };
    report("PUBLISH", publish);
    let mut buf = [0u8; 64];
    let n = rx.recv_timeout(&mut buf, LONG).unwrap();
    report("GOT", String::from_utf8_lossy(&buf[..n]));
}

/// A subscriber of another user joins a named topic whose table it may write
/// (`0o666`) but whose data it may not (`data_mode(0o644)`): it reads, and
/// cannot publish.
#[test]
fn a_subscriber_of_another_user_reads_but_cannot_publish() {
    if !root_or_skip("a_subscriber_of_another_user_reads_but_cannot_publish") {
        return;
    }
    let name = unique("foreign");
    let topic = BroadcastBuilder::shm(&name)
        .mode(0o666)
        .data_mode(0o644)
        .create()
        .unwrap();
    let mut child = Peer::spawn("child_foreign_subscriber", &[("NAME", &name)]);
    assert_eq!(child.expect("PUBLISH"), "PermissionDenied");
    let mut tx = topic.publisher().unwrap();
    tx.send(b"to nobody").unwrap();
    assert_eq!(child.expect("GOT"), "to nobody");
    child.wait_ok();
}

/// A memfd topic passed to a child (`pass_to`, `from_env`: two descriptors): the
/// child subscribes and reads, and cannot publish (the data memfd is sealed).
#[test]
fn a_memfd_topic_passed_to_a_child() {
    let topic = BroadcastBuilder::memfd().create().unwrap();
    let mut child = Peer::spawn_with("child_foreign_subscriber", &[], |command| {
        topic.pass_to(command, "SHMRING_TEST_TOPIC")
    });
    assert_eq!(child.expect("PUBLISH"), "PermissionDenied");
    let mut tx = topic.publisher().unwrap();
    tx.send(b"to a child").unwrap();
    assert_eq!(child.expect("GOT"), "to a child");
    child.wait_ok();
}

fn fan_out(policy: Policy, capacity: usize, count: u64) {
    let (name, topic) = topic("fan", policy, capacity);
    let mut tx = topic.publisher().unwrap();
    let mut children: Vec<Peer> = (0..3)
        .map(|_| Peer::spawn("child_subscriber", &[("NAME", &name)]))
        .collect();
    for child in &mut children {
        child.expect("READY");
    }
    let start = Instant::now();
    for n in 0..count {
        let reached = tx.send_timeout(&message(n), LONG).unwrap();
        assert_eq!(reached, 3);
    }
    drop(tx);
    for child in &mut children {
        let received: u64 = child.expect("RECEIVED").parse().unwrap();
        let missed: u64 = child.expect("MISSED").parse().unwrap();
        let last: i64 = child.expect("LAST").parse().unwrap();
        child.wait_ok();
        assert_eq!(last, count as i64 - 1, "the last message arrives");
        match policy {
            Policy::Lossy => assert_eq!(received + missed, count, "gaps are the missed counts"),
            Policy::Gated | Policy::Strict => {
                assert_eq!((received, missed), (count, 0), "all, exactly once");
            }
        }
        eprintln!("{policy:?}: received {received}, missed {missed}");
    }
    eprintln!(
        "{policy:?}: {count} messages to 3 processes in {:?}",
        start.elapsed()
    );
}

#[test]
fn gated_fan_out_to_three_processes() {
    fan_out(
        Policy::Gated,
        64 * 1024,
        count_from_env("SHMRING_BROADCAST_MESSAGES", FAN_OUT_MESSAGES),
    );
}

#[test]
fn lossy_fan_out_to_three_processes() {
    fan_out(
        Policy::Lossy,
        8 * 1024,
        count_from_env("SHMRING_BROADCAST_MESSAGES", FAN_OUT_MESSAGES),
    );
}

#[test]
#[ignore]
fn gated_fan_out_long() {
    fan_out(Policy::Gated, 64 * 1024, FAN_OUT_MESSAGES_LONG);
}

#[test]
#[ignore]
fn lossy_fan_out_long() {
    fan_out(Policy::Lossy, 8 * 1024, FAN_OUT_MESSAGES_LONG);
}

/// A gated publisher held back by a subscriber that is SIGKILLed frees its slot
/// and goes on, well before the cut-off bound (a minute here).
#[test]
fn a_killed_subscriber_does_not_hold_a_gated_publisher() {
    let name = unique("killsub");
    let topic = BroadcastBuilder::shm(&name)
        .capacity(4096)
        .policy(Policy::Gated)
        .cut_off_after(Duration::from_secs(60))
        .create()
        .unwrap();
    let mut tx = topic.publisher().unwrap();
    let mut stuck = Peer::spawn("child_stuck_subscriber", &[("NAME", &name)]);
    stuck.expect("READY");
    let mut sent = 0;
    while tx.try_send(&message(sent)).is_ok() {
        sent += 1;
    }
    assert_eq!(
        tx.send_timeout(&message(sent), Duration::from_millis(50)),
        Err(SendTimeoutError::TimedOut),
        "held back by the live subscriber"
    );
    stuck.kill();
    let start = Instant::now();
    tx.send_timeout(&message(sent), PROMPT).unwrap();
    eprintln!("freed the dead subscriber's slot in {:?}", start.elapsed());
    assert_eq!(tx.subscribers(), 0);
}

/// A lossy publisher, never held back, counts a killed subscriber until
/// `free_dead_subscribers` frees its slot (a live one's is kept).
#[test]
fn a_lossy_publisher_frees_the_slots_of_dead_subscribers() {
    let (name, topic) = topic("reap", Policy::Lossy, 4096);
    let mut tx = topic.publisher().unwrap();
    let _live = topic.subscriber(Start::Newest).unwrap();
    let mut stuck = Peer::spawn("child_stuck_subscriber", &[("NAME", &name)]);
    stuck.expect("READY");
    assert_eq!(tx.send(b"two").unwrap(), 2);
    assert_eq!(tx.free_dead_subscribers().unwrap(), 0);
    stuck.kill();
    assert_eq!(tx.send(b"still two").unwrap(), 2);
    assert_eq!(tx.free_dead_subscribers().unwrap(), 1);
    assert_eq!(tx.send(b"one").unwrap(), 1);
}

/// A SIGKILLed publisher: its subscribers get every message it sent, then
/// `Disconnected`; a new publisher (another process) follows with no gap.
#[test]
fn a_killed_publisher_is_drained_then_replaced() {
    let (name, topic) = topic("killpub", Policy::Gated, 16 * 1024);
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let mut first = Peer::spawn(
        "child_publisher",
        &[("NAME", &name), ("START", &0), ("END", &500)],
    );
    // It sends more than the ring holds: read while it does.
    let mut buf = vec![0u8; topic.max_message_len()];
    let (mut scratch, mut missed) = (Vec::new(), 0);
    for n in 0..500 {
        let deadline = Some(Instant::now() + LONG);
        assert_eq!(
            recv_checked(&mut rx, &mut buf, &mut scratch, &mut missed, deadline).unwrap(),
            n
        );
    }
    assert_eq!(first.expect("SENT"), "500");
    first.kill();
    let start = Instant::now();
    assert_eq!(
        rx.recv_timeout(&mut buf, LONG),
        Err(RecvTimeoutError::Disconnected)
    );
    assert!(start.elapsed() < PROMPT, "{:?}", start.elapsed());
    let mut second = Peer::spawn(
        "child_publisher",
        &[("NAME", &name), ("START", &500), ("END", &800)],
    );
    // Until it claims, a receive says `Disconnected` again (the lock decides):
    // wait for the claim, not for a child's start to beat a probe.
    let claimed_by = Instant::now() + LONG;
    while !topic.publisher_alive().unwrap() {
        assert!(
            Instant::now() < claimed_by,
            "the second publisher never claimed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for n in 500..800 {
        let deadline = Some(Instant::now() + LONG);
        assert_eq!(
            recv_checked(&mut rx, &mut buf, &mut scratch, &mut missed, deadline).unwrap(),
            n
        );
    }
    assert_eq!(second.expect("SENT"), "800");
    assert_eq!(missed, 0);
    second.kill();
}

/// With a doorbell for every slot held by the publisher (a named topic) and a
/// subscriber that armed once and was rung, 10,000 messages sent and received
/// with nobody armed cost this thread no system call; the armed one cost one
/// ring.
#[test]
fn no_system_call_per_message_while_nobody_is_armed() {
    let (_name, topic) = topic("nosyscall", Policy::Lossy, 64 * 1024);
    let mut tx = topic.publisher().unwrap();
    let mut rx = topic.subscriber(Start::Newest).unwrap();
    assert_eq!(*rx.wakeups(), shmring::Wakeups::Doorbell);
    assert_eq!(rx.arm_for_message().unwrap(), shmring::Readiness::Armed);
    let before = shmring::system_calls_on_this_thread();
    tx.send(b"ring").unwrap();
    assert_eq!(shmring::system_calls_on_this_thread() - before, 1);
    let mut buf = [0u8; 8];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 4);
    assert_eq!(system_calls_for_messages(&mut tx, &mut rx, 10_000), 0);
}

/// Child: opens topic `NAME`, subscribes from the oldest message, reports READY,
/// and reads in place until `Disconnected`, checking that every message is the
/// next one (none missed, none twice) and intact; reports RECEIVED.
#[test]
fn child_in_place_subscriber() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    let slot = rx.slot();
    report("READY", slot);
    let mut scratch = Vec::new();
    let mut received = 0u64;
    loop {
        let expected = rx.next_seq();
        match rx.read_timeout(LONG) {
            Ok(message) => {
                assert_eq!(message.seq(), expected, "in order, none missed");
                check_stream(expected - 1, MAX_LEN, &message, &mut scratch)
                    .unwrap_or_else(|e| panic!("subscriber slot {slot}: {e}"));
                message.release();
                received += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    report("RECEIVED", received);
}

/// Child: opens topic `NAME`, subscribes from the oldest message, reports READY,
/// reads one message in place, checks it, reports HOLDING (its sequence number)
/// and holds it, unreleased, until killed.
#[test]
fn child_in_place_holder() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let mut rx = topic.subscriber(Start::Oldest).unwrap();
    report("READY", rx.slot());
    let message = rx.read_timeout(LONG).unwrap();
    check_stream(message.seq() - 1, MAX_LEN, &message, &mut Vec::new()).unwrap();
    report("HOLDING", message.seq());
    // Held, unreleased, until the parent kills us.
    wait_for_parent();
    assert!(!message.is_empty());
}

/// Child: opens topic `NAME`, claims its publisher, writes messages `0..COUNT`
/// in place, checking each reached `SUBSCRIBERS`, reports SENT and waits.
#[test]
fn child_in_place_publisher() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).open().unwrap();
    let mut tx = claim("publisher", || topic.publisher());
    let subscribers = param_u64("SUBSCRIBERS") as u32;
    for n in 0..param_u64("COUNT") {
        assert_eq!(publish_in_place(&mut tx, n), subscribers, "message {n}");
    }
    report("SENT", tx.next_seq() - 1);
    wait_for_parent();
}

/// A strict topic written in place by a publisher process and read in place by
/// two subscriber processes: each gets every message, in order, intact.
#[test]
fn in_place_across_processes() {
    let (name, _topic) = topic("inplace", Policy::Strict, 16 * 1024);
    let count = count_from_env("SHMRING_BROADCAST_MESSAGES", FAN_OUT_MESSAGES);
    let mut subscribers: Vec<Peer> = (0..2)
        .map(|_| Peer::spawn("child_in_place_subscriber", &[("NAME", &name)]))
        .collect();
    for child in &mut subscribers {
        child.expect("READY");
    }
    let mut publisher = Peer::spawn(
        "child_in_place_publisher",
        &[("NAME", &name), ("COUNT", &count), ("SUBSCRIBERS", &2)],
    );
    assert_eq!(publisher.expect("SENT"), count.to_string());
    publisher.release();
    publisher.wait_ok();
    for child in &mut subscribers {
        assert_eq!(child.expect("RECEIVED"), count.to_string());
        child.wait_ok();
    }
}

/// A subscriber SIGKILLed while it holds a message read in place does not hold
/// a strict publisher: the publisher, held back by it, finds it dead, frees its
/// slot and goes on; the other subscriber gets every message.
#[test]
fn a_subscriber_killed_mid_read_in_place_does_not_hold_a_strict_publisher() {
    let (name, topic) = topic("killread", Policy::Strict, 4096);
    let mut tx = topic.publisher().unwrap();
    let mut holder = Peer::spawn("child_in_place_holder", &[("NAME", &name)]);
    holder.expect("READY");
    let mut reader = Peer::spawn("child_in_place_subscriber", &[("NAME", &name)]);
    reader.expect("READY");
    assert_eq!(publish_in_place(&mut tx, 0), 2);
    assert_eq!(holder.expect("HOLDING"), "1");
    // The holder never moves past message 1: the ring fills within a lap.
    let mut sent = 1;
    loop {
        let mut grant = match tx.grant_timeout(MAX_LEN, Duration::from_millis(100)) {
            Ok(grant) => grant,
            Err(SendTimeoutError::TimedOut) => break,
            Err(e) => panic!("{e}"),
        };
        let len = stream_len(sent, MAX_LEN);
        fill_stream(sent, &mut grant[..len]);
        assert_eq!(grant.commit(len), 2);
        sent += 1;
        assert!(sent < 100, "the holder never held the publisher back");
    }
    holder.kill();
    let start = Instant::now();
    let mut grant = tx.grant_timeout(MAX_LEN, PROMPT).unwrap();
    eprintln!("freed the dead holder's slot in {:?}", start.elapsed());
    let len = stream_len(sent, MAX_LEN);
    fill_stream(sent, &mut grant[..len]);
    assert_eq!(grant.commit(len), 1, "the dead holder's slot is freed");
    sent += 1;
    let count = 2000;
    while sent < count {
        assert_eq!(publish_in_place(&mut tx, sent), 1);
        sent += 1;
    }
    drop(tx);
    assert_eq!(reader.expect("RECEIVED"), count.to_string());
    reader.wait_ok();
}
