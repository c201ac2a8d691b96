//! Two processes, each with its own Zenoh session, connected over loopback
//! (`tcp/127.0.0.1:<free port>`, scouting off): shm → Zenoh → shm.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmring::RecvTimeoutError;
use shmring_zenoh::{Bridge, InboundEnd, OutboundEnd};

/// Messages of the long run (`SHMRING_ZENOH_TEST_COUNT` overrides).
fn count() -> u64 {
    std::env::var("SHMRING_ZENOH_TEST_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}
/// Largest message of the long run.
const MAX_LEN: usize = 8192;
/// The bound the tests hold a killed process's end to (the crate docs state
/// about 0.2 s: the link closes at once, then the grace and a tick).
const KILL_BOUND: Duration = Duration::from_secs(2);

/// Child: a local channel whose receiver is bridged out on KEY; sends COUNT
/// stream messages, drops the sender (an orderly end), waits for the bridge to
/// publish the end of stream, then for the parent.
#[test]
fn child_sender() {
    if !is_child() {
        return;
    }
    child_watchdog(Duration::from_secs(300));
    let session = connecting_session(param_u64("PORT") as u16);
    let bridge = Bridge::new(session);
    let (mut tx, rx) = shmring::channel::pair(1 << 20).expect("pair");
    let out = bridge
        .outbound(rx, &param("KEY"))
        .wait_for_subscriber(Duration::from_secs(30))
        .start()
        .expect("outbound");
    let count = param_u64("COUNT");
    let max = param_u64("MAX") as usize;
    for seq in 0..count {
        tx.send(&stream_message(seq, max)).expect("local send");
    }
    drop(tx);
    let end = out.join().expect("outbound ends cleanly");
    assert_eq!(end, OutboundEnd::SourceDisconnected { sent: count });
    report("sent", count);
    wait_for_parent();
}

#[test]
fn hundred_thousand_numbered_checksummed_messages_across_two_processes() {
    let count = count();
    let port = free_port();
    let key = unique_key("long");
    let session = listening_session(port);
    let bridge = Bridge::new(session);
    let (tx, mut rx) = shmring::channel::pair(1 << 20).expect("pair");
    let inbound = bridge.inbound(&key, tx).start().expect("inbound");
    let mut child = Peer::spawn(
        "child_sender",
        &[
            ("PORT", &port),
            ("KEY", &key),
            ("COUNT", &count),
            ("MAX", &MAX_LEN),
        ],
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let mut bytes = 0u64;
    let mut scratch = Vec::new();
    for seq in 0..count {
        let got = match rx.recv_vec_deadline(Some(deadline)) {
            Ok(got) => got,
            Err(e) => panic!(
                "message {seq} of {count}: {e}; inbound {:?}; first error {:?}",
                inbound.stats(),
                inbound.try_error()
            ),
        };
        if let Err(problem) = check_stream(seq, MAX_LEN, &got, &mut scratch) {
            panic!("{problem}; inbound {:?}", inbound.stats());
        }
        bytes += got.len() as u64;
    }
    let elapsed = started.elapsed();
    match rx.recv_vec_deadline(Some(Instant::now() + Duration::from_secs(30))) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("after {count} messages: {other:?}, not Disconnected"),
    }
    assert_eq!(child.expect("sent"), count.to_string());
    let stats = inbound.stats();
    assert_eq!(stats.delivered, count);
    assert_eq!(stats.bytes, bytes);
    assert_eq!(
        (
            stats.gaps,
            stats.malformed,
            stats.handoff_dropped,
            stats.stale
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    assert_eq!((stats.ended_in_band, stats.lost), (1, 0));
    assert!(inbound.try_error().is_none());
    assert_eq!(
        inbound.join().expect("inbound"),
        InboundEnd::AllSourcesEnded
    );
    child.release();
    child.wait_ok();
    eprintln!(
        "{count} messages, {bytes} bytes in {elapsed:?} ({:.0} msg/s, {:.1} MB/s)",
        count as f64 / elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6
    );
}

/// Child: bridges a local channel out on KEY and sends numbered messages as fast
/// as the bridge takes them, until killed.
#[test]
fn child_endless_sender() {
    if !is_child() {
        return;
    }
    child_watchdog(Duration::from_secs(120));
    let port = param_u64("PORT") as u16;
    let session = match param_opt("LEASE_MS") {
        Some(lease) => connecting_session_with_lease(port, lease.parse().expect("LEASE_MS")),
        None => connecting_session(port),
    };
    let bridge = Bridge::new(session);
    let (mut tx, rx) = shmring::channel::pair(1 << 16).expect("pair");
    let _out = bridge
        .outbound(rx, &param("KEY"))
        .wait_for_subscriber(Duration::from_secs(30))
        .start()
        .expect("outbound");
    report("started", 0);
    let mut message = Vec::new();
    for seq in 0.. {
        seq_message(seq, &mut message);
        tx.send(&message).expect("local send");
    }
}

/// Receives the numbered messages still arriving (from `*next` on, in order)
/// until `Disconnected`, within 30 s of `since`; returns when it came.
fn rest_then_disconnected(
    rx: &mut shmring::Receiver,
    next: &mut u64,
    since: Instant,
    inbound: &shmring_zenoh::Inbound,
    what: &str,
) -> Instant {
    loop {
        match rx.recv_vec_deadline(Some(since + Duration::from_secs(30))) {
            Ok(got) => {
                assert_eq!(parse_seq(&got), Ok(*next));
                *next += 1;
            }
            Err(RecvTimeoutError::Disconnected) => return Instant::now(),
            Err(e) => panic!(
                "{what}: after {next} messages: {e}, not Disconnected; {:?}",
                inbound.stats()
            ),
        }
    }
}

/// Receives 2,000 stream messages on `rx` (traffic first), kills `child` in the
/// middle of the stream, then receives every message that arrived, in order and
/// none missing, until `Disconnected`, which must come within [`KILL_BOUND`] of
/// the kill. Returns how many messages were received in all.
fn traffic_then_kill(
    what: &str,
    rx: &mut shmring::Receiver,
    child: &mut Peer,
    inbound: &shmring_zenoh::Inbound,
) -> u64 {
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < 2000 {
        let got = rx
            .recv_vec_deadline(Some(deadline))
            .expect("traffic before the kill");
        assert_eq!(parse_seq(&got), Ok(next));
        next += 1;
    }
    let killed_at = child.kill();
    let ended_at = rest_then_disconnected(rx, &mut next, killed_at, inbound, what);
    let took = ended_at - killed_at;
    eprintln!("{what} -> Disconnected in {took:?}, after {next} messages");
    assert!(
        took < KILL_BOUND,
        "{what}: Disconnected {took:?} after the kill, bound {KILL_BOUND:?}"
    );
    next
}

#[test]
fn sigkill_of_the_sending_process_gives_every_delivered_message_then_disconnected() {
    let port = free_port();
    let key = unique_key("kill");
    let session = listening_session(port);
    let bridge = Bridge::new(session);
    let (tx, mut rx) = shmring::channel::pair(1 << 20).expect("pair");
    let inbound = bridge.inbound(&key, tx).start().expect("inbound");
    let mut child = Peer::spawn("child_endless_sender", &[("PORT", &port), ("KEY", &key)]);
    child.expect("started");
    let next = traffic_then_kill("kill", &mut rx, &mut child, &inbound);
    let stats = inbound.stats();
    assert_eq!(stats.delivered, next);
    assert_eq!(
        (stats.gaps, stats.malformed, stats.ended_in_band, stats.lost),
        (0, 0, 0, 1),
        "{stats:?}"
    );
    assert_eq!(
        inbound.join().expect("inbound"),
        InboundEnd::AllSourcesEnded
    );
}

/// Child: bridges KEY in, into a local channel; reads COUNT messages, checks
/// them, expects Disconnected, reports.
#[test]
fn child_remote_subscriber() {
    if !is_child() {
        return;
    }
    child_watchdog(Duration::from_secs(120));
    let session = connecting_session(param_u64("PORT") as u16);
    let key = param("KEY");
    let bridge = Bridge::new(session.clone());
    let (tx, mut rx) = shmring::channel::pair(1 << 20).expect("pair");
    let inbound = bridge.inbound(&key, tx).start().expect("inbound");
    // Declared after the subscriber: when the parent sees it, it has the subscriber.
    use zenoh::Wait;
    let _ready = session
        .liveliness()
        .declare_token(format!("{key}/ready/{}", param("N")))
        .wait()
        .expect("token");
    let count = param_u64("COUNT");
    let deadline = Instant::now() + Duration::from_secs(60);
    for seq in 0..count {
        let got = rx.recv_vec_deadline(Some(deadline)).expect("message");
        assert_eq!(parse_seq(&got), Ok(seq));
    }
    match rx.recv_vec_deadline(Some(Instant::now() + Duration::from_secs(30))) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("after {count}: {other:?}"),
    }
    let stats = inbound.stats();
    assert_eq!(
        (stats.delivered, stats.gaps, stats.ended_in_band),
        (count, 0, 1),
        "{stats:?}"
    );
    report("received", count);
    wait_for_parent();
}

#[test]
fn a_topic_reaches_two_remote_subscribers() {
    use shmring::broadcast::{BroadcastBuilder, Policy, Start};
    let port = free_port();
    let key = unique_key("topic");
    let session = listening_session(port);
    let bridge = Bridge::new(session.clone());
    let count = 5000u64;
    let mut children: Vec<Peer> = (0..2)
        .map(|n| {
            Peer::spawn(
                "child_remote_subscriber",
                &[("PORT", &port), ("KEY", &key), ("COUNT", &count), ("N", &n)],
            )
        })
        .collect();
    wait_for_tokens(
        &session,
        &format!("{key}/ready/*"),
        2,
        Duration::from_secs(60),
    );
    let topic = BroadcastBuilder::memfd()
        .capacity(1 << 20)
        .policy(Policy::Strict)
        .create()
        .expect("topic");
    let mut publisher = topic.publisher().expect("publisher");
    let subscriber = topic.subscriber(Start::Oldest).expect("subscriber");
    let out = bridge.outbound(subscriber, &key).start().expect("outbound");
    let mut message = Vec::new();
    for seq in 0..count {
        seq_message(seq, &mut message);
        publisher.send(&message).expect("publish");
    }
    drop(publisher);
    assert_eq!(
        out.join().expect("outbound"),
        OutboundEnd::SourceDisconnected { sent: count }
    );
    for child in &mut children {
        assert_eq!(child.expect("received"), count.to_string());
        child.release();
    }
    for child in &mut children {
        child.wait_ok();
    }
}

/// Child: a local RPC server (reverses the request; "fail" → an error) exported
/// on KEY.
#[test]
fn child_rpc_server() {
    if !is_child() {
        return;
    }
    child_watchdog(Duration::from_secs(120));
    let session = connecting_session(param_u64("PORT") as u16);
    let key = param("KEY");
    let bridge = Bridge::new(session.clone());
    let (req_tx, req_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let (resp_tx, resp_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let server_thread = std::thread::spawn(move || {
        let mut server = shmring::RpcServer::new(req_rx, resp_tx);
        server.serve(|request: &[u8]| -> Result<Vec<u8>, String> {
            if request == b"fail" {
                Err("the handler refused".to_owned())
            } else {
                Ok(request.iter().rev().copied().collect())
            }
        })
    });
    let client = shmring::RpcClient::new(req_tx, resp_rx);
    let export = bridge
        .export_rpc(&key, client, Duration::from_secs(5), 2)
        .expect("export");
    use zenoh::Wait;
    let _ready = session
        .liveliness()
        .declare_token(format!("{key}/ready"))
        .wait()
        .expect("token");
    wait_for_parent();
    report("answered", export.answered());
    drop(export);
    server_thread
        .join()
        .expect("server thread")
        .expect("server");
}

#[test]
fn an_rpc_call_across() {
    let port = free_port();
    let key = unique_key("rpc");
    let session = listening_session(port);
    let bridge = Bridge::new(session.clone());
    let mut child = Peer::spawn("child_rpc_server", &[("PORT", &port), ("KEY", &key)]);
    wait_for_tokens(
        &session,
        &format!("{key}/ready"),
        1,
        Duration::from_secs(60),
    );
    let (req_tx, req_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let (resp_tx, resp_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let import = bridge
        .import_rpc(
            &key,
            shmring::RpcServer::new(req_rx, resp_tx),
            Duration::from_secs(5),
        )
        .expect("import");
    let client = shmring::RpcClient::new(req_tx, resp_rx);
    for n in 0..100u32 {
        let request = format!("request {n}");
        let reply = client
            .call_timeout(request.as_bytes(), Duration::from_secs(10))
            .expect("call");
        let want: Vec<u8> = request.bytes().rev().collect();
        assert_eq!(reply, want);
    }
    match client.call_timeout(b"fail", Duration::from_secs(10)) {
        Err(shmring::Error::Remote { message }) => {
            assert!(message.contains("the handler refused"), "{message}")
        }
        other => panic!("a failing handler: {other:?}"),
    }
    assert_eq!(import.calls(), 101);
    child.release();
    assert_eq!(child.expect("answered"), "101");
    child.wait_ok();
    drop(client);
    import.join().expect("import ends when its clients go");
}

/// Child: a bridge process of its own: opens the shm channel NAME (made by the
/// parent) as its receiver and bridges it out on KEY, until killed.
#[test]
fn child_bridge_process() {
    if !is_child() {
        return;
    }
    child_watchdog(Duration::from_secs(120));
    let session = connecting_session(param_u64("PORT") as u16);
    let bridge = Bridge::new(session);
    let rx = shmring::ChannelBuilder::shm(param("NAME"))
        .open()
        .expect("open")
        .receiver()
        .expect("receiver");
    let _out = bridge
        .outbound(rx, &param("KEY"))
        .wait_for_subscriber(Duration::from_secs(30))
        .start()
        .expect("outbound");
    report("bridging", 0);
    wait_for_parent();
}

#[test]
fn sigkill_of_a_bridge_process_gives_every_delivered_message_then_disconnected() {
    let port = free_port();
    let key = unique_key("bridge-kill");
    let name = format!("zb-{}-{}", std::process::id(), port);
    // The sender: a thread of this process, on a shm channel the bridge process opens.
    let channel = shmring::ChannelBuilder::shm(name.clone())
        .capacity(1 << 16)
        .create()
        .expect("create");
    let mut tx = channel.sender().expect("sender");
    let bridge = Bridge::new(listening_session(port));
    let (local_tx, mut rx) = shmring::channel::pair(1 << 20).expect("pair");
    let inbound = bridge.inbound(&key, local_tx).start().expect("inbound");
    let mut child = Peer::spawn(
        "child_bridge_process",
        &[("PORT", &port), ("KEY", &key), ("NAME", &name)],
    );
    child.expect("bridging");
    let sender = std::thread::spawn(move || {
        // Until the bridge process's receiver is gone (then the ring fills: Disconnected).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seq = 0u64;
        let mut message = Vec::new();
        while Instant::now() < deadline {
            seq_message(seq, &mut message);
            match tx.send_timeout(&message, Duration::from_secs(5)) {
                Ok(()) => seq += 1,
                Err(_) => break,
            }
        }
        seq
    });
    let next = traffic_then_kill("bridge kill", &mut rx, &mut child, &inbound);
    let sent = sender.join().expect("sender thread");
    assert!(
        sent >= next,
        "the sender sent {sent}, the receiver got {next}"
    );
    let stats = inbound.stats();
    assert_eq!(
        (stats.delivered, stats.gaps, stats.lost),
        (next, 0, 1),
        "{stats:?}"
    );
    assert_eq!(
        inbound.join().expect("inbound"),
        InboundEnd::AllSourcesEnded
    );
}

/// A host lost: the sending process stopped (SIGSTOP) keeps its TCP link open but
/// sends nothing, keep-alives included, as a host cut off would. The far side
/// notices at the lease the sender's session declared (1 s here, 10 s by
/// default), and the receiver gets every message that arrived, then
/// `Disconnected`, within the lease plus 2 s.
#[test]
fn a_silent_sender_is_ended_at_its_lease() {
    const LEASE: Duration = Duration::from_millis(1000);
    let port = free_port();
    let key = unique_key("lease");
    let session = listening_session(port);
    let bridge = Bridge::new(session);
    let (tx, mut rx) = shmring::channel::pair(1 << 20).expect("pair");
    let inbound = bridge.inbound(&key, tx).start().expect("inbound");
    let lease_ms = LEASE.as_millis() as u64;
    let mut child = Peer::spawn(
        "child_endless_sender",
        &[("PORT", &port), ("KEY", &key), ("LEASE_MS", &lease_ms)],
    );
    child.expect("started");
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < 2000 {
        let got = rx
            .recv_vec_deadline(Some(deadline))
            .expect("traffic before the stop");
        assert_eq!(parse_seq(&got), Ok(next));
        next += 1;
    }
    let stopped_at = Instant::now();
    signal(child.pid(), "STOP");
    let ended_at = rest_then_disconnected(&mut rx, &mut next, stopped_at, &inbound, "stop");
    let took = ended_at - stopped_at;
    eprintln!("stop -> Disconnected in {took:?} (lease {LEASE:?}), after {next} messages");
    assert!(
        took >= LEASE / 2,
        "ended {took:?} after the stop: before the lease could pass?"
    );
    assert!(
        took < LEASE + Duration::from_secs(2),
        "Disconnected {took:?} after the stop, lease {LEASE:?}"
    );
    let stats = inbound.stats();
    assert_eq!(
        (stats.delivered, stats.gaps, stats.lost),
        (next, 0, 1),
        "{stats:?}"
    );
    child.kill();
}
