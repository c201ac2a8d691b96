//! Async receive and send on tokio across real processes: a stream from a
//! blocking sender in order on both runtimes; a receive cancelled at random in
//! `tokio::select!` loses nothing; SIGKILL of the peer of an awaited receive
//! gives `Disconnected` within the liveness bound, for every kind; an async
//! sender waits for room that another process makes.

#[path = "../../os/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use shmring::{ChannelBuilder, ReceiveReadiness, RecvError};
use shmring_tokio::{AsyncReceiver, AsyncSender};

/// Messages of the stream test (the 10^6), and of the cancellation
/// test (10^5).
const STREAM_MESSAGES: u64 = 1_000_000;
const CANCEL_MESSAGES: u64 = 100_000;
const LONG: Duration = Duration::from_secs(60);
/// The bound on `Disconnected` after a SIGKILL.
const PROMPT: Duration = Duration::from_secs(2);

fn child_start() -> bool {
    child_start_within(Duration::from_secs(180))
}

/// Child: opens `KIND` endpoint `NAME` (`spsc`, `mpmc`, `topic`, `unix`),
/// reports READY, sends seq messages `0..COUNT` with the blocking `send` (its
/// wait strategy parks; sleeping 50 µs before every `PAUSE_EVERY`th, if not 0),
/// reports SENT, and if `HOLD` is 1 waits to be killed.
#[test]
fn child_blocking_sender() {
    if !child_start() {
        return;
    }
    let mut tx = feeder_sender(&param("KIND"), &param("NAME"));
    report("READY", std::process::id());
    let mut buf = Vec::new();
    let pause_every = param_u64("PAUSE_EVERY");
    for seq in 0..param_u64("COUNT") {
        if pause_every != 0 && seq % pause_every == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
        seq_message(seq, &mut buf);
        tx.send(&buf).unwrap_or_else(|e| panic!("send {seq}: {e}"));
    }
    report("SENT", param_u64("COUNT"));
    if param_u64("HOLD") == 1 {
        wait_for_parent();
    }
}

/// Child: opens SPSC channel `NAME`, receives seq messages `0..COUNT` with
/// the blocking `recv`, sleeping 1 ms every 64 (so that the sender's ring
/// fills), checks them, reports GOT.
#[test]
fn child_slow_receiver() {
    if !child_start() {
        return;
    }
    let mut rx = claim("receiver", || {
        ChannelBuilder::shm(param("NAME")).open()?.receiver()
    });
    report("READY", std::process::id());
    let mut buf = vec![0u8; rx.max_message_len()];
    let count = param_u64("COUNT");
    for seq in 0..count {
        if seq % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(parse_seq(&buf[..len]).unwrap(), seq);
    }
    report("GOT", count);
}

/// A receiving endpoint of `kind` made by the parent with a feeder process
/// sending `count` messages; the returned guard keeps the segment alive.
fn receiver_with_feeder(
    kind: &str,
    tag: &str,
    count: u64,
    hold: bool,
    pause_every: u64,
) -> (
    Box<dyn ReceiveReadiness + Send>,
    Box<dyn std::any::Any>,
    Peer,
) {
    let name = unique(tag);
    receiver_of_kind(kind, &name, || {
        Peer::spawn(
            "child_blocking_sender",
            &[
                ("KIND", &kind),
                ("NAME", &name),
                ("COUNT", &count),
                ("HOLD", &u8::from(hold)),
                ("PAUSE_EVERY", &pause_every),
            ],
        )
    })
}

/// Receives `count` seq messages in order through `rx`, then `Disconnected`.
async fn receive_stream(rx: &mut AsyncReceiver<Box<dyn ReceiveReadiness + Send>>, count: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    for seq in 0..count {
        let len = rx
            .recv(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("message {seq}: {e}"));
        assert_eq!(parse_seq(&buf[..len]).unwrap(), seq, "out of order");
    }
    assert!(matches!(
        rx.recv(&mut buf).await,
        Err(RecvError::Disconnected)
    ));
}

fn stream_on(runtime: tokio::runtime::Runtime, tag: &str) {
    let count = count_from_env("SHMRING_ASYNC_MESSAGES", STREAM_MESSAGES);
    let (rx, _guard, mut peer) = receiver_with_feeder("spsc", tag, count, false, 0);
    let start = Instant::now();
    runtime.block_on(async {
        let mut rx = AsyncReceiver::new(rx).unwrap();
        receive_stream(&mut rx, count).await;
    });
    eprintln!("{tag}: {count} messages in {:?}", start.elapsed());
    peer.wait_ok();
}

/// 10^6 messages from a blocking sender in another process, received on a
/// current-thread runtime: all, in order, then `Disconnected`.
#[test]
fn an_async_receiver_gets_a_blocking_senders_stream_in_order_current_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    stream_on(runtime, "async-stream-ct");
}

/// As above on a multi-thread runtime (the receive moves between workers).
#[test]
fn an_async_receiver_gets_a_blocking_senders_stream_in_order_multi_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .unwrap();
    stream_on(runtime, "async-stream-mt");
}

/// A receive raced in `tokio::select!` against a timer of random length (0
/// to 50 µs) or a yield, 10^5 messages from a sender that pauses every 8
/// (so that many receives are pending, armed, when cancelled): every message
/// arrives once and in order however many receives were cancelled.
#[test]
fn a_cancelled_receive_loses_nothing() {
    let count = count_from_env("SHMRING_ASYNC_CANCEL_MESSAGES", CANCEL_MESSAGES);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for kind in ["spsc", "unix"] {
        let (rx, _guard, mut peer) = receiver_with_feeder(kind, "async-cancel", count, false, 8);
        let mut rng = XorShift::new(seed(&format!("a_cancelled_receive_loses_nothing {kind}")));
        let cancelled = runtime.block_on(async {
            let mut rx = AsyncReceiver::new(rx).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let (mut next, mut cancelled) = (0u64, 0u64);
            while next < count {
                let pause = rng.below(3);
                let micros = rng.below(50);
                tokio::select! {
                    got = rx.recv(&mut buf) => {
                        let len = got.unwrap_or_else(|e| panic!("{kind} message {next}: {e}"));
                        assert_eq!(parse_seq(&buf[..len]).unwrap(), next, "{kind}: lost or repeated");
                        next += 1;
                    }
                    () = async {
                        if pause == 0 {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(Duration::from_micros(micros)).await;
                        }
                    } => cancelled += 1,
                }
            }
            assert!(matches!(
                rx.recv(&mut buf).await,
                Err(RecvError::Disconnected)
            ));
            cancelled
        });
        eprintln!("{kind}: {count} messages, {cancelled} receives cancelled");
        assert!(cancelled > 0, "{kind}: no receive was ever cancelled");
        peer.wait_ok();
    }
}

/// For every kind: the feeder sends nothing and is SIGKILLed while the
/// parent awaits a receive; it returns `Disconnected` within `PROMPT`.
#[test]
fn sigkill_of_the_sender_ends_an_awaited_receive_with_disconnected() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for kind in ["spsc", "mpmc", "topic", "unix"] {
        let (rx, _guard, mut peer) = receiver_with_feeder(kind, "async-kill", 0, true, 0);
        peer.expect("SENT");
        let pid = peer.pid();
        let latency = runtime.block_on(async {
            let mut rx = AsyncReceiver::new(rx).unwrap();
            let killer = async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                // SAFETY: kill(2) on our own child, not reaped yet.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
                Instant::now()
            };
            let mut buf = [0u8; 64];
            let (got, killed_at) =
                tokio::join!(tokio::time::timeout(LONG, rx.recv(&mut buf)), killer);
            let got =
                got.unwrap_or_else(|_| panic!("{kind}: still waiting {LONG:?} after the kill"));
            assert!(
                matches!(got, Err(RecvError::Disconnected)),
                "{kind}: {got:?}"
            );
            killed_at.elapsed()
        });
        eprintln!("{kind}: Disconnected {latency:?} after the kill");
        assert!(latency < PROMPT, "{kind}: {latency:?}");
        let _ = peer.wait();
    }
}

/// An async sender on a small ring waits for room that a slow receiver in
/// another process makes: every message arrives in order.
#[test]
fn an_async_sender_waits_for_room_another_process_makes() {
    let count = 20_000;
    let name = unique("async-send");
    let chan = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let tx = chan.sender().unwrap();
    let mut peer = Peer::spawn("child_slow_receiver", &[("NAME", &name), ("COUNT", &count)]);
    peer.expect("READY");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut tx = AsyncSender::new(tx).unwrap();
        let mut buf = Vec::new();
        for seq in 0..count {
            seq_message(seq, &mut buf);
            tx.send(&buf).await.unwrap();
        }
    });
    assert_eq!(peer.expect("GOT"), count.to_string());
    peer.wait_ok();
}

/// Child: opens event `EVENT` and semaphore `SEM`, reports READY, then
/// `ROUNDS` times: notifies the event (`notify_all`) and posts the semaphore,
/// 1 ms apart; reports DONE.
#[test]
fn child_object_notifier() {
    if !child_start() {
        return;
    }
    let event = shmring::EventBuilder::shm(param("EVENT")).open().unwrap();
    let semaphore = shmring::SemaphoreBuilder::shm(param("SEM")).open().unwrap();
    report("READY", std::process::id());
    wait_for_parent();
    for _ in 0..param_u64("ROUNDS") {
        std::thread::sleep(Duration::from_millis(1));
        event.notify_all();
        semaphore.post().unwrap();
    }
    report("DONE", param_u64("ROUNDS"));
}

/// An event and a semaphore awaited on tokio, notified and posted by another
/// process: every unit posted is acquired, and the event's waits return (each
/// for a notification after the previous one); a wait raced against a short
/// timer and cancelled takes nothing.
#[test]
fn events_and_semaphores_are_awaitable() {
    let rounds = 200u64;
    let name = unique("async-objects");
    let event = shmring::EventBuilder::shm(format!("{name}-ev"))
        .create()
        .unwrap();
    let semaphore = shmring::SemaphoreBuilder::shm(format!("{name}-sem"))
        .create()
        .unwrap();
    let mut peer = Peer::spawn(
        "child_object_notifier",
        &[
            ("EVENT", &format!("{name}-ev")),
            ("SEM", &format!("{name}-sem")),
            ("ROUNDS", &rounds),
        ],
    );
    peer.expect("READY");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (acquired, notified) = runtime.block_on(async {
        let mut units = shmring_tokio::AsyncWaiter::new(semaphore.waiter().unwrap()).unwrap();
        let mut events = shmring_tokio::AsyncWaiter::new(event.waiter().unwrap()).unwrap();
        // Cancelled waits take nothing.
        for _ in 0..5 {
            assert!(
                tokio::time::timeout(Duration::from_millis(2), units.acquire())
                    .await
                    .is_err()
            );
        }
        peer.release();
        let (mut acquired, mut notified) = (0u64, 0u64);
        while acquired < rounds {
            tokio::select! {
                got = units.acquire() => { got.unwrap(); acquired += 1; }
                got = events.notified() => { got.unwrap(); notified += 1; }
            }
        }
        (acquired, notified)
    });
    assert_eq!(peer.expect("DONE"), rounds.to_string());
    peer.wait_ok();
    eprintln!("{acquired} units acquired, {notified} notifications seen");
    assert_eq!(semaphore.value().unwrap(), 0, "a unit was left or lost");
    assert!(notified > 0);
}
