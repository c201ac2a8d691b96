//! Readiness descriptors: an armed endpoint's descriptor becomes readable on a
//! message (or room), on the peer's departure or death, and never while nothing
//! changed; the doorbells' files live and go with their segment; endpoints
//! without a doorbell fall back to polling and say so.
//!
//! Cross-process runs (a receiver in an `epoll` loop, kills while armed or
//! parked) are in `processes.rs`-style children below.

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use shmring::{ChannelBuilder, Readiness, TryRecvError, TrySendError, Wakeups};

/// How long a descriptor that must stay quiet is watched.
const QUIET: Duration = Duration::from_millis(50);

fn bell_paths(name: &str) -> [std::path::PathBuf; 2] {
    ["data", "space"]
        .map(|b| std::path::Path::new("/dev/shm").join(format!("shmring-bell.{name}.{b}")))
}

#[test]
fn an_armed_receiver_is_readable_after_a_message_and_quiet_before() {
    let name = unique("ready-rx");
    let channel = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    assert_eq!(*rx.wakeups(), Wakeups::Doorbell);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(rx.readiness_fd(), QUIET),
        "readable with nothing sent"
    );
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        tx.send(b"one").unwrap();
        tx
    });
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "no ring after a message"
    );
    let _tx = sender.join().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 3);
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(rx.readiness_fd(), QUIET),
        "readable after draining and arming"
    );
}

#[test]
fn arming_with_a_message_waiting_says_ready() {
    let channel = ChannelBuilder::shm(unique("ready-now")).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    tx.send(b"x").unwrap();
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Ready);
}

#[test]
fn an_armed_sender_is_readable_when_room_appears() {
    let channel = ChannelBuilder::shm(unique("ready-tx"))
        .capacity(4096)
        .create()
        .unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let message = [7u8; 1000];
    while tx.try_send(&message).is_ok() {}
    assert!(matches!(
        tx.try_send(&message),
        Err(TrySendError::Full { .. })
    ));
    assert_eq!(tx.arm_for_space(message.len()).unwrap(), Readiness::Armed);
    assert!(
        !readable_within(tx.readiness_fd(), QUIET),
        "readable while full"
    );
    let mut buf = [0u8; 1024];
    // Each release the receiver publishes to an armed sender rings it; room for
    // this message may take two (the wrap's padding).
    let mut ready = false;
    for _ in 0..4 {
        rx.try_recv(&mut buf).unwrap();
        assert!(
            readable_within(tx.readiness_fd(), PROMPT_WAKE),
            "no ring after a release"
        );
        if tx.arm_for_space(message.len()).unwrap() == Readiness::Ready {
            ready = true;
            break;
        }
    }
    assert!(ready, "the message never fitted");
    tx.try_send(&message).unwrap();
}

#[test]
fn a_departing_sender_makes_the_armed_receiver_readable_then_disconnected() {
    let channel = ChannelBuilder::shm(unique("ready-gone")).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    tx.send(b"last").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 4);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    drop(tx);
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "departure did not ring"
    );
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Ready);
    assert!(matches!(
        rx.try_recv(&mut buf),
        Err(TryRecvError::Disconnected)
    ));
}

#[test]
fn the_doorbell_fifos_live_and_go_with_the_segment() {
    let name = unique("ready-files");
    let channel = ChannelBuilder::shm(&name).create().unwrap();
    for path in bell_paths(&name) {
        let meta =
            std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        use std::os::unix::fs::FileTypeExt;
        assert!(
            meta.file_type().is_fifo(),
            "{} is not a FIFO",
            path.display()
        );
    }
    drop(channel);
    for path in bell_paths(&name) {
        assert!(!path.exists(), "{} left behind", path.display());
    }
}

#[test]
fn a_missing_doorbell_falls_back_to_polling_and_says_why() {
    let name = unique("ready-polled");
    let channel = ChannelBuilder::shm(&name).create().unwrap();
    for path in bell_paths(&name) {
        std::fs::remove_file(path).unwrap();
    }
    let opened = ChannelBuilder::shm(&name).open().unwrap();
    let mut rx = opened.receiver().unwrap();
    let mut tx = channel.sender().unwrap();
    match rx.wakeups() {
        Wakeups::Polled { reason } => assert!(reason.contains("shmring-bell"), "{reason}"),
        other => panic!("a receiver without a FIFO reports {other:?}"),
    }
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    tx.send(b"late").unwrap();
    // Polled: readable within an interval of the watcher's tick, not at once.
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "polled descriptor never readable"
    );
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 4);
}

/// A wake-up that must come: generous, so a loaded machine does not fail it.
const PROMPT_WAKE: Duration = Duration::from_secs(2);

#[test]
fn an_armed_mpmc_receiver_is_readable_after_a_message_and_on_the_last_senders_departure() {
    let channel = shmring::MpmcChannelBuilder::shm(unique("ready-mpmc"))
        .slots(4)
        .slot_size(16)
        .create()
        .unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    assert_eq!(*rx.wakeups(), Wakeups::Doorbell);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(rx.readiness_fd(), QUIET),
        "readable with nothing sent"
    );
    tx.send(b"m").unwrap();
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "no ring after a message"
    );
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Ready);
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 1);
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Armed);
    drop(tx);
    assert!(
        readable_within(rx.readiness_fd(), PROMPT_WAKE),
        "departure did not ring"
    );
    assert_eq!(rx.arm_for_message().unwrap(), Readiness::Ready);
    assert!(matches!(
        rx.try_recv(&mut buf),
        Err(shmring::TryRecvError::Disconnected)
    ));
}

#[test]
fn an_armed_mpmc_sender_is_readable_when_a_slot_frees() {
    let channel = shmring::MpmcChannelBuilder::shm(unique("ready-mpmc-tx"))
        .slots(2)
        .slot_size(16)
        .create()
        .unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    tx.send(b"1").unwrap();
    tx.send(b"2").unwrap();
    assert_eq!(tx.arm_for_space().unwrap(), Readiness::Armed);
    assert!(
        !readable_within(tx.readiness_fd(), QUIET),
        "readable while full"
    );
    let mut buf = [0u8; 16];
    rx.try_recv(&mut buf).unwrap();
    assert!(
        readable_within(tx.readiness_fd(), PROMPT_WAKE),
        "no ring after a slot freed"
    );
    assert_eq!(tx.arm_for_space().unwrap(), Readiness::Ready);
}
