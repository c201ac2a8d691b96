//! The bridge against raw Zenoh and shmring's TCP transport, two processes over
//! loopback (`tcp/127.0.0.1`, scouting off), the bridge embedded in both:
//! throughput (N messages of S bytes, one way) and round trip (ping-pong).
//!
//! ```sh
//! cd zenoh && cargo run --release --example bench             # N=100000 S=256 M=2000
//! BENCH_N=200000 BENCH_S=1024 cargo run --release --example bench
//! ```
//!
//! One run per case: on a shared machine, repeat and read the spread
//! (`BENCHMARKING.md`). The four-process topology (sender, bridge, bridge,
//! receiver) is measured after the rounds, its throughput only.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmring::{MessageReceiver, MessageSender};
use shmring_zenoh::zenoh::Wait;
use shmring_zenoh::zenoh::qos::CongestionControl;
use shmring_zenoh::{Bridge, open, peer_config};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn listening(port: u16) -> zenoh::Session {
    open(peer_config(&[&format!("tcp/127.0.0.1:{port}")], &[]).expect("config")).expect("open")
}

fn connecting(port: u16) -> zenoh::Session {
    open(peer_config(&[], &[&format!("tcp/127.0.0.1:{port}")]).expect("config")).expect("open")
}

use shmring_zenoh::zenoh;

/// Whether the bridge cases' local channels park at once ("bridge-park"), set
/// by the parent for each case and passed to its children as `BENCH_WAIT`.
static PARK: AtomicBool = AtomicBool::new(false);

/// A local channel for the bridge's cases: its endpoints wait as
/// [`WaitStrategy::default`](shmring::WaitStrategy) says (spin 50 µs, then
/// sleep), or sleep at once in the "bridge-park" cases (on two cores a
/// spinning endpoint takes the CPU Zenoh's threads need).
/// `BENCH_FENCES=full` turns the asymmetric fences off.
fn local_pair(capacity: usize) -> shmring::Result<(shmring::Sender, shmring::Receiver)> {
    use shmring::SegmentBuilder;
    let park = PARK.load(Ordering::Relaxed) || std::env::var("BENCH_WAIT").as_deref() == Ok("park");
    let wait = if park {
        shmring::WaitStrategy::Park
    } else {
        shmring::WaitStrategy::default()
    };
    let channel = shmring::ChannelBuilder::memfd()
        .capacity(capacity)
        .wait_strategy(wait)
        .asymmetric_fences(std::env::var("BENCH_FENCES").as_deref() != Ok("full"))
        .create()?;
    Ok((channel.sender()?, channel.receiver()?))
}

/// A child running `role`; its stdout lines are its reports.
struct Child {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn spawn(role: &str, port: u16, port2: u16) -> Child {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env("BENCH_CHILD", role)
            .env("BENCH_PORT", port.to_string())
            .env("BENCH_PORT2", port2.to_string())
            .env(
                "BENCH_WAIT",
                if PARK.load(Ordering::Relaxed) {
                    "park"
                } else {
                    "spin"
                },
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Child { child, lines }
    }

    fn spawn_named(role: &str, port: u16, name: &str) -> Child {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env("BENCH_CHILD", role)
            .env("BENCH_PORT", port.to_string())
            .env("BENCH_NAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Child { child, lines }
    }

    fn expect(&mut self, what: &str) {
        match self.lines.next() {
            Some(Ok(line)) if line == what => {}
            other => panic!("child: expected {what}, got {other:?}"),
        }
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "child failed: {status:?}");
    }
}

fn say(what: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what}").expect("stdout");
    out.flush().expect("flush");
}

fn wait_for_parent() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn wait_matching(publisher: &zenoh::pubsub::Publisher<'_>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !publisher
        .matching_status()
        .wait()
        .expect("matching")
        .matching()
    {
        assert!(Instant::now() < deadline, "no subscriber");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn child(role: &str) {
    let port = env("BENCH_PORT", 0) as u16;
    let port2 = env("BENCH_PORT2", 0) as u16;
    let (n, s) = (env("BENCH_N", 100_000), env("BENCH_S", 256) as usize);
    let payload = vec![0x5au8; s];
    match role {
        "raw-send" => {
            let session = connecting(port);
            let publisher = session
                .declare_publisher("bench/data")
                .congestion_control(CongestionControl::Block)
                .wait()
                .expect("publisher");
            wait_matching(&publisher);
            for _ in 0..n {
                publisher.put(payload.clone()).wait().expect("put");
            }
            say("done");
            wait_for_parent();
        }
        "bridge-send" => {
            let bridge = Bridge::new(connecting(port));
            let (mut tx, rx) = local_pair(1 << 20).expect("pair");
            let window = match env("BENCH_WINDOW", shmring_zenoh::DEFAULT_WINDOW) {
                0 => None,
                w => Some(w),
            };
            let out = bridge
                .outbound(rx, "bench/data")
                .window(window)
                .wait_for_subscriber(Duration::from_secs(30))
                .start()
                .expect("outbound");
            for _ in 0..n {
                tx.send(&payload).expect("send");
            }
            drop(tx);
            let stats = out.stats();
            out.join().expect("outbound");
            eprintln!("outbound: {stats:?}");
            say("done");
            wait_for_parent();
        }
        "tcp-send" => {
            let mut tx = shmring::transport::connect_sender(&format!("tcp://127.0.0.1:{port}"))
                .expect("connect");
            for _ in 0..n {
                tx.send(&payload).expect("send");
            }
            say("done");
            wait_for_parent();
        }
        "raw-echo" | "raw-thread-echo" => {
            let session = connecting(port);
            let pong = session
                .declare_publisher("bench/pong")
                .express(true)
                .wait()
                .expect("pong");
            let ping = session.declare_subscriber("bench/ping");
            if role == "raw-echo" {
                // Answers inside Zenoh's callback: the fastest a Zenoh
                // application can.
                let _sub = ping
                    .callback(move |sample| {
                        let _ = pong.put(sample.payload().clone()).wait();
                    })
                    .wait()
                    .expect("ping");
                say("ready");
                wait_for_parent();
            } else {
                // Answers from a thread of its own, as the bridge's local peer
                // does: a subscriber with a queue.
                let ping = ping.wait().expect("ping");
                std::thread::spawn(move || {
                    while let Ok(sample) = ping.recv() {
                        if pong.put(sample.payload().clone()).wait().is_err() {
                            break;
                        }
                    }
                });
                say("ready");
                wait_for_parent();
            }
        }
        "bridge-echo" => {
            let bridge = Bridge::new(connecting(port));
            let (ping_tx, mut ping_rx) = local_pair(1 << 16).expect("pair");
            let (mut pong_tx, pong_rx) = local_pair(1 << 16).expect("pair");
            let _in = bridge
                .inbound("bench/ping", ping_tx)
                .start()
                .expect("inbound");
            let _out = bridge
                .outbound(pong_rx, "bench/pong")
                .express(true)
                .start()
                .expect("outbound");
            std::thread::spawn(move || {
                while let Ok(m) = ping_rx.recv_vec() {
                    if pong_tx.send(&m).is_err() {
                        break;
                    }
                }
            });
            say("ready");
            wait_for_parent();
        }
        "tcp-echo" => {
            let mut listener =
                shmring::transport::listen(&format!("tcp://127.0.0.1:{port2}")).expect("listen");
            say("ready");
            let mut pong = shmring::transport::connect_sender(&format!("tcp://127.0.0.1:{port}"))
                .expect("connect");
            let mut ping = listener.accept().expect("accept");
            while let Ok(m) = ping.recv_vec() {
                if pong.send(&m).is_err() {
                    break;
                }
            }
        }
        // The four-process topology: sender, bridge, bridge, receiver.
        "shm-send" => {
            let name = std::env::var("BENCH_NAME").expect("BENCH_NAME");
            let mut tx = shmring::ChannelBuilder::shm(name)
                .open()
                .expect("open")
                .sender()
                .expect("sender");
            say("ready");
            for _ in 0..n {
                tx.send(&payload).expect("send");
            }
            say("done");
            wait_for_parent();
        }
        "bridge-out" => {
            let name = std::env::var("BENCH_NAME").expect("BENCH_NAME");
            let bridge = Bridge::new(listening(port));
            let rx = shmring::ChannelBuilder::shm(name)
                .open()
                .expect("open")
                .receiver()
                .expect("receiver");
            let out = bridge
                .outbound(rx, "bench/four")
                .wait_for_subscriber(Duration::from_secs(30))
                .start()
                .expect("outbound");
            say("ready");
            out.join().expect("outbound");
            wait_for_parent();
        }
        "bridge-in" => {
            let name = std::env::var("BENCH_NAME").expect("BENCH_NAME");
            let bridge = Bridge::new(connecting(port));
            let tx = shmring::ChannelBuilder::shm(name)
                .open()
                .expect("open")
                .sender()
                .expect("sender");
            let inbound = bridge.inbound("bench/four", tx).start().expect("inbound");
            say("ready");
            inbound.join().expect("inbound");
            wait_for_parent();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Throughput through sender → bridge → bridge → receiver, four processes.
fn four_processes(n: u64) -> f64 {
    let port = free_port();
    let tag = format!("zbench-{}-{port}", std::process::id());
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let chan_a = shmring::ChannelBuilder::shm(a.clone())
        .capacity(1 << 20)
        .create()
        .expect("create a");
    let chan_b = shmring::ChannelBuilder::shm(b.clone())
        .capacity(1 << 20)
        .create()
        .expect("create b");
    let mut rx = chan_b.receiver().expect("receiver");
    // The bridge that listens first, then the one that connects to it.
    let mut bridge_out = Child::spawn_named("bridge-out", port, &a);
    bridge_out.expect("ready");
    let mut bridge_in = Child::spawn_named("bridge-in", port, &b);
    bridge_in.expect("ready");
    let mut sender = Child::spawn_named("shm-send", port, &a);
    sender.expect("ready");
    rx.recv_vec_timeout(Duration::from_secs(60)).expect("first");
    let first = Instant::now();
    for _ in 1..n {
        rx.recv_vec_timeout(Duration::from_secs(60))
            .expect("message");
    }
    let last = Instant::now();
    sender.expect("done");
    sender.finish();
    bridge_out.finish();
    bridge_in.finish();
    drop((chan_a, chan_b));
    (n - 1) as f64 / (last - first).as_secs_f64()
}

/// Messages per second from the first message received to the last.
fn throughput(kind: &str, n: u64) -> f64 {
    let port = free_port();
    PARK.store(kind == "bridge-park", Ordering::Relaxed);
    let kind = kind.strip_suffix("-park").unwrap_or(kind);
    match kind {
        "raw" => {
            let session = listening(port);
            let count = Arc::new(AtomicU64::new(0));
            let (first_tx, first_rx) = std::sync::mpsc::channel::<Instant>();
            let (last_tx, last_rx) = std::sync::mpsc::channel::<Instant>();
            let c = count.clone();
            let _sub = session
                .declare_subscriber("bench/data")
                .callback(move |_sample| {
                    let k = c.fetch_add(1, Ordering::Relaxed) + 1;
                    if k == 1 {
                        let _ = first_tx.send(Instant::now());
                    }
                    if k == n {
                        let _ = last_tx.send(Instant::now());
                    }
                })
                .wait()
                .expect("sub");
            let mut child = Child::spawn("raw-send", port, 0);
            let first = first_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("first");
            let last = last_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("last");
            child.expect("done");
            child.finish();
            (n - 1) as f64 / (last - first).as_secs_f64()
        }
        "bridge" => {
            let bridge = Bridge::new(listening(port));
            let (tx, mut rx) = local_pair(1 << 20).expect("pair");
            let inbound = bridge.inbound("bench/data", tx).start().expect("inbound");
            let mut child = Child::spawn("bridge-send", port, 0);
            rx.recv_vec_timeout(Duration::from_secs(60)).expect("first");
            let first = Instant::now();
            for _ in 1..n {
                rx.recv_vec_timeout(Duration::from_secs(60))
                    .expect("message");
            }
            let last = Instant::now();
            assert_eq!(inbound.stats().gaps, 0);
            child.expect("done");
            child.finish();
            (n - 1) as f64 / (last - first).as_secs_f64()
        }
        "tcp" => {
            let mut listener =
                shmring::transport::listen(&format!("tcp://127.0.0.1:{port}")).expect("listen");
            let mut child = Child::spawn("tcp-send", port, 0);
            let mut rx = listener.accept().expect("accept");
            rx.recv_vec().expect("first");
            let first = Instant::now();
            for _ in 1..n {
                rx.recv_vec().expect("message");
            }
            let last = Instant::now();
            child.expect("done");
            child.finish();
            (n - 1) as f64 / (last - first).as_secs_f64()
        }
        other => panic!("{other}"),
    }
}

/// Median round trip of `m` ping-pongs (after 100 not counted).
fn round_trip(kind: &str, m: usize, s: usize) -> Duration {
    let port = free_port();
    let payload = vec![0xa5u8; s];
    let mut samples = Vec::with_capacity(m);
    PARK.store(kind == "bridge-park", Ordering::Relaxed);
    let kind = kind.strip_suffix("-park").unwrap_or(kind);
    match kind {
        "raw" | "raw-thread" => {
            let session = listening(port);
            let pong = session
                .declare_subscriber("bench/pong")
                .wait()
                .expect("pong");
            let ping = session
                .declare_publisher("bench/ping")
                .express(true)
                .wait()
                .expect("ping");
            let mut child = Child::spawn(&format!("{kind}-echo"), port, 0);
            child.expect("ready");
            wait_matching(&ping);
            for i in 0..m + 100 {
                let t = Instant::now();
                ping.put(payload.clone()).wait().expect("put");
                pong.recv_timeout(Duration::from_secs(5))
                    .expect("recv")
                    .expect("pong");
                if i >= 100 {
                    samples.push(t.elapsed());
                }
            }
            child.finish();
        }
        "bridge" => {
            let bridge = Bridge::new(listening(port));
            let (pong_tx, mut pong_rx) = local_pair(1 << 16).expect("pair");
            let (mut ping_tx, ping_rx) = local_pair(1 << 16).expect("pair");
            let _in = bridge
                .inbound("bench/pong", pong_tx)
                .start()
                .expect("inbound");
            let mut child = Child::spawn("bridge-echo", port, 0);
            child.expect("ready");
            let _out = bridge
                .outbound(ping_rx, "bench/ping")
                .express(true)
                .wait_for_subscriber(Duration::from_secs(30))
                .start()
                .expect("outbound");
            for i in 0..m + 100 {
                let t = Instant::now();
                ping_tx.send(&payload).expect("send");
                pong_rx
                    .recv_vec_timeout(Duration::from_secs(5))
                    .expect("pong");
                if i >= 100 {
                    samples.push(t.elapsed());
                }
            }
            child.finish();
        }
        "tcp" => {
            let port2 = free_port();
            let mut listener =
                shmring::transport::listen(&format!("tcp://127.0.0.1:{port}")).expect("listen");
            let mut child = Child::spawn("tcp-echo", port, port2);
            child.expect("ready");
            let mut ping = shmring::transport::connect_sender(&format!("tcp://127.0.0.1:{port2}"))
                .expect("connect");
            let mut pong = listener.accept().expect("accept");
            for i in 0..m + 100 {
                let t = Instant::now();
                ping.send(&payload).expect("send");
                pong.recv_vec().expect("pong");
                if i >= 100 {
                    samples.push(t.elapsed());
                }
            }
            drop(ping);
            child.finish();
        }
        other => panic!("{other}"),
    }
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    if let Ok(role) = std::env::var("BENCH_CHILD") {
        child(&role);
        return;
    }
    let (n, s, m) = (
        env("BENCH_N", 100_000),
        env("BENCH_S", 256),
        env("BENCH_M", 2000) as usize,
    );
    println!(
        "two processes over tcp/127.0.0.1, {n} messages of {s} bytes one way; {m} round trips"
    );
    let rounds = env("BENCH_ROUNDS", 3);
    println!("{rounds} rounds, the cases alternating within each; medians over the rounds");
    // Round trips also against a Zenoh application that answers from a thread
    // of its own (the raw case answers inside Zenoh's callback).
    let kinds = ["raw", "bridge", "bridge-park", "tcp", "raw-thread"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut rtts: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    // BENCH_ONLY=bridge (or raw, tcp): that case's throughput alone, for a
    // profiler; BENCH_ONLY=rtt-bridge (...): its round trip alone.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        for _ in 0..rounds {
            match only.strip_prefix("rtt-") {
                Some(kind) => println!(
                    "{kind}: round trip {:.1} µs",
                    round_trip(kind, m, s as usize).as_secs_f64() * 1e6
                ),
                None => println!("{only}: {:.0} msg/s", throughput(&only, n)),
            }
        }
        return;
    }
    for round in 0..rounds {
        for (k, kind) in kinds.iter().enumerate().take(4) {
            rates[k].push(throughput(kind, n));
        }
        for (k, kind) in kinds.iter().enumerate() {
            rtts[k].push(round_trip(kind, m, s as usize).as_secs_f64());
        }
        let r = round as usize;
        println!(
            "round {round}: bridge ÷ raw throughput {:.2}, round trip {:.2}; bridge-park ÷ raw throughput {:.2}, round trip {:.2}",
            rates[1][r] / rates[0][r],
            rtts[1][r] / rtts[0][r],
            rates[2][r] / rates[0][r],
            rtts[2][r] / rtts[0][r]
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut four: Vec<f64> = (0..rounds).map(|_| four_processes(n)).collect();
    let four = median(&mut four);
    let rate: Vec<f64> = rates
        .iter_mut()
        .filter(|v| !v.is_empty())
        .map(median)
        .collect();
    let rtt: Vec<f64> = rtts.iter_mut().map(median).collect();
    for (k, kind) in kinds.iter().enumerate() {
        if rate.get(k).is_some_and(|r| r.is_finite()) {
            println!(
                "{kind:>11}: throughput {:>10.0} msg/s {:>8.1} MB/s; round trip median {:>8.1} µs",
                rate[k],
                rate[k] * s as f64 / 1e6,
                rtt[k] * 1e6
            );
        } else {
            println!("{kind:>11}: round trip median {:>8.1} µs", rtt[k] * 1e6);
        }
    }
    println!(
        "four processes (sender, bridge, bridge, receiver): {four:>10.0} msg/s {:>8.1} MB/s, {:.2}× the embedded bridge",
        four * s as f64 / 1e6,
        four / rate[1]
    );
    for (k, kind) in [(1, "bridge"), (2, "bridge-park")] {
        println!(
            "{kind} ÷ raw zenoh: throughput {:.2}× (target ≥ 0.8), round trip {:.2}× (target ≤ 1.2), {:.2}× the raw answer from a thread; ÷ shmring tcp: throughput {:.2}×, round trip {:.2}×",
            rate[k] / rate[0],
            rtt[k] / rtt[0],
            rtt[k] / rtt[4],
            rate[k] / rate[3],
            rtt[k] / rtt[3]
        );
    }
}
