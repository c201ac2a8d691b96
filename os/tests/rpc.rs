//! Request/response (`shmring::rpc`): an [`RpcClient`] in this process, an
//! [`RpcServer`] in a real separate process (this test binary started again
//! with `--exact child_...` and `SHMRING_TEST_CHILD` set; the `child_*` entry
//! points return at once in the normal suite), over two shared-memory channels,
//! one each way. And in one process over a Unix socket, with a hand-written
//! server that answers out of order.
//!
//! Covered: four threads with calls in flight at once, each response checked
//! against its request; a call that times out while the server is slow, whose
//! late response is not delivered to the next call; the server killed (SIGKILL)
//! while calls wait: `Disconnected` for all of them, promptly, and for later
//! calls; responses matched by id when they come in another order than the
//! requests; handler errors as `Error::Remote`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::rpc::{HEADER_LEN, RpcClient, RpcServer};
use shmring::transport::unix;
use shmring::{Channel, ChannelBuilder, Error};

/// Calls per thread in the concurrent test, and its threads.
const CALLS_PER_THREAD: u64 = 1_000;
const THREADS: u64 = 4;
/// A bound on calls that should return long before it.
const LONG: Duration = Duration::from_secs(30);
/// The bound on "promptly": `Disconnected` after a death.
const PROMPT: Duration = Duration::from_secs(2);

fn child_start() -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(Duration::from_secs(120));
    true
}

/// The two channels of one client/server pair, created here (the server opens
/// them): `<name>.req` carries requests, `<name>.resp` responses.
struct Channels {
    name: String,
    requests: Channel,
    responses: Channel,
}

impl Channels {
    fn create(tag: &str) -> Self {
        let name = unique(tag);
        let make = |suffix: &str| {
            ChannelBuilder::shm(format!("{name}.{suffix}"))
                .create()
                .unwrap_or_else(|e| panic!("create {name}.{suffix}: {e}"))
        };
        Self {
            requests: make("req"),
            responses: make("resp"),
            name,
        }
    }

    fn client(&self) -> RpcClient {
        RpcClient::new(
            self.requests.sender().expect("request sender"),
            self.responses.receiver().expect("response receiver"),
        )
    }

    /// Starts the echo server in a child; returns once it holds its ends.
    fn spawn_server(&self) -> Peer {
        let mut server = Peer::spawn("child_echo_server", &[("NAME", &self.name)]);
        server.expect("READY");
        server
    }
}

/// A request that names its thread and sequence number, of a length that varies
/// with them.
fn request(thread: u64, seq: u64) -> Vec<u8> {
    let len = 16 + (splitmix64(thread << 32 | seq) % 200) as usize;
    let mut bytes = vec![0u8; len];
    bytes[..8].copy_from_slice(&thread.to_le_bytes());
    bytes[8..16].copy_from_slice(&seq.to_le_bytes());
    fill_from_seed(splitmix64(seq ^ thread << 40), &mut bytes[16..]);
    bytes
}

fn fill_from_seed(seed: u64, out: &mut [u8]) {
    let mut rng = XorShift::new(seed);
    for b in out {
        *b = rng.next_u64() as u8;
    }
}

/// Child: the echo server. Opens `<NAME>.req` (receiver) and `<NAME>.resp`
/// (sender), reports `READY`, then answers until the client goes: a request
/// `sleep <ms> ...` is answered after sleeping that long (reporting `SLEEPING`
/// first), a request `fail ...` with an error, anything else with itself.
#[test]
fn child_echo_server() {
    if !child_start() {
        return;
    }
    let name = param("NAME");
    let open = |suffix: &str| {
        ChannelBuilder::shm(format!("{name}.{suffix}"))
            .open()
            .unwrap_or_else(|e| panic!("open {name}.{suffix}: {e}"))
    };
    let requests = open("req").receiver().expect("request receiver");
    let responses = open("resp").sender().expect("response sender");
    let mut server = RpcServer::new(requests, responses);
    report("READY", std::process::id());
    server
        .serve(|request: &[u8]| {
            if let Some(rest) = request.strip_prefix(b"sleep ") {
                let ms: u64 = std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| s.split(' ').next())
                    .and_then(|s| s.parse().ok())
                    .expect("sleep <ms>");
                report("SLEEPING", ms);
                thread::sleep(Duration::from_millis(ms));
            }
            if request.starts_with(b"fail") {
                return Err(format!("refused {} bytes", request.len()));
            }
            Ok(request.to_vec())
        })
        .expect("serve");
    assert_eq!(server.malformed(), 0);
    report("BYE", 0);
}

#[test]
fn concurrent_calls_across_processes_get_their_own_responses() {
    let channels = Channels::create("rpc-many");
    let mut server = channels.spawn_server();
    let client = channels.client();
    let most_in_flight = AtomicUsize::new(0);
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..THREADS {
            let (client, most_in_flight) = (&client, &most_in_flight);
            s.spawn(move || {
                for seq in 0..CALLS_PER_THREAD {
                    let request = request(t, seq);
                    let response = client
                        .call_timeout(&request, LONG)
                        .unwrap_or_else(|e| panic!("thread {t} call {seq}: {e}"));
                    assert!(
                        response == request,
                        "thread {t} call {seq}: got another call's response ({} bytes, thread {:?} seq {:?})",
                        response.len(),
                        response.get(..8),
                        response.get(8..16)
                    );
                    most_in_flight.fetch_max(client.in_flight() + 1, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = start.elapsed();
    eprintln!(
        "{} calls from {THREADS} threads in {elapsed:?} ({:?} per call), up to about {} in flight",
        THREADS * CALLS_PER_THREAD,
        elapsed / (THREADS * CALLS_PER_THREAD) as u32,
        most_in_flight.load(Ordering::Relaxed)
    );
    assert_eq!(client.discarded(), 0);
    assert_eq!(client.in_flight(), 0);

    // A handler error comes back as Error::Remote, and the client goes on.
    match client.call_timeout(b"fail please", LONG) {
        Err(Error::Remote { message }) => assert_eq!(message, "refused 11 bytes"),
        other => panic!("expected Remote, got {other:?}"),
    }
    assert_eq!(client.call_timeout(b"after", LONG).unwrap(), b"after");

    // The client goes: the server's serve returns Ok and the child exits.
    drop(client);
    server.expect("BYE");
    server.wait_ok();
}

#[test]
fn timed_out_call_and_its_late_response_is_not_delivered_to_the_next() {
    let channels = Channels::create("rpc-timeout");
    let mut server = channels.spawn_server();
    let client = channels.client();
    assert_eq!(client.call_timeout(b"warm-up", LONG).unwrap(), b"warm-up");

    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    match client.call_timeout(b"sleep 1000 slow", timeout) {
        Err(Error::TimedOut) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }
    let waited = start.elapsed();
    assert_eq!(server.expect("SLEEPING"), "1000");
    eprintln!("timed out after {waited:?} (timeout {timeout:?})");
    assert!(
        waited < Duration::from_millis(900),
        "the call waited {waited:?}, for the slow response rather than its timeout"
    );
    assert_eq!(client.in_flight(), 0);

    // The next call is answered after the slow one: the late response comes
    // first, and must not be taken for this call's.
    let response = client.call_timeout(b"next", LONG).expect("next call");
    assert_eq!(
        response, b"next",
        "the late response was delivered to the next call"
    );
    assert_eq!(client.discarded(), 1);

    // A zero timeout times out at once when the response is not already there.
    assert!(matches!(
        client.call_timeout(b"sleep 200 zero", Duration::ZERO),
        Err(Error::TimedOut)
    ));
    assert_eq!(client.call_timeout(b"last", LONG).unwrap(), b"last");
    assert_eq!(client.discarded(), 2);

    drop(client);
    server.expect("SLEEPING");
    server.expect("BYE");
    server.wait_ok();
}

#[test]
fn killed_server_disconnects_every_waiting_call() {
    const WAITING: usize = 3;
    let channels = Channels::create("rpc-kill");
    let mut server = channels.spawn_server();
    let client = channels.client();
    let ready = Barrier::new(WAITING + 1);
    thread::scope(|s| {
        let waiting: Vec<_> = (0..WAITING)
            .map(|i| {
                let (client, ready) = (&client, &ready);
                s.spawn(move || {
                    ready.wait();
                    let result = client.call_timeout(format!("sleep 60000 {i}").as_bytes(), LONG);
                    (result, Instant::now())
                })
            })
            .collect();
        ready.wait();
        // The server is inside the handler of one call; all wait.
        server.expect("SLEEPING");
        let deadline = Instant::now() + LONG;
        while client.in_flight() < WAITING {
            assert!(Instant::now() < deadline, "the calls never got in flight");
            thread::sleep(Duration::from_millis(1));
        }
        let killed_at = server.kill();
        for (i, handle) in waiting.into_iter().enumerate() {
            let (result, returned_at) = handle.join().expect("calling thread");
            let latency = returned_at.saturating_duration_since(killed_at);
            eprintln!("call {i}: {result:?} {latency:?} after the kill");
            assert!(
                matches!(result, Err(Error::Disconnected { .. })),
                "call {i}: expected Disconnected, got {result:?}"
            );
            assert!(
                latency < PROMPT,
                "call {i}: Disconnected {latency:?} after the kill"
            );
        }
    });
    // Later calls fail at once as well.
    assert!(matches!(
        client.call_timeout(b"later", LONG),
        Err(Error::Disconnected { .. })
    ));
    assert_eq!(client.in_flight(), 0);
}

// ---------------------------------------------------------------------------
// In one process, over a Unix socket
// ---------------------------------------------------------------------------

/// A connected Unix socket: (client's sender and receiver, server's).
#[allow(clippy::type_complexity)]
fn unix_pair(
    dir: &TempDir,
) -> (
    (unix::UnixSender, unix::UnixReceiver),
    (unix::UnixSender, unix::UnixReceiver),
) {
    let path = dir.path().join("rpc.sock");
    let listener = unix::UnixListener::bind(&path).expect("bind");
    let client = unix::connect(&path).expect("connect");
    let server = listener.accept_timeout(LONG).expect("accept");
    (client, server)
}

#[test]
fn unix_socket_calls_from_several_threads() {
    let dir = TempDir::new("rpc-unix");
    let ((ctx, crx), (stx, srx)) = unix_pair(&dir);
    let server = thread::spawn(move || {
        let mut server = RpcServer::new(srx, stx);
        let mut served = 0u64;
        server
            .serve(|request: &[u8]| {
                served += 1;
                Ok::<_, String>(request.iter().rev().copied().collect())
            })
            .expect("serve");
        served
    });
    let client = Arc::new(RpcClient::new(ctx, crx).with_max_in_flight(2));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for seq in 0..250 {
                    let request = request(t, seq);
                    let response = client.call_timeout(&request, LONG).expect("call");
                    let expected: Vec<u8> = request.iter().rev().copied().collect();
                    assert_eq!(response, expected, "thread {t} call {seq}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("calling thread");
    }
    assert_eq!(client.discarded(), 0);
    drop(client);
    assert_eq!(server.join().expect("server"), THREADS * 250);
}

/// The documented wire format, written by hand: id, kind, reserved, payload.
fn frame(id: u64, kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER_LEN + payload.len());
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&kind.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn responses_in_another_order_reach_their_own_calls() {
    const CALLS: usize = 4;
    let dir = TempDir::new("rpc-order");
    let ((ctx, crx), (mut stx, mut srx)) = unix_pair(&dir);
    // A server that reads every request first, then answers them last first.
    let server = thread::spawn(move || {
        let mut requests = Vec::new();
        for _ in 0..CALLS {
            let bytes = srx
                .recv_vec_deadline(Instant::now().checked_add(LONG))
                .expect("recv");
            assert!(bytes.len() >= HEADER_LEN, "short request");
            let id = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            let kind = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            assert_eq!(kind, 1, "kind of a request");
            requests.push((id, bytes[HEADER_LEN..].to_vec()));
        }
        for (id, payload) in requests.into_iter().rev() {
            let mut answer = b"re: ".to_vec();
            answer.extend_from_slice(&payload);
            stx.send(&frame(id, 2, &answer)).expect("send");
        }
        // A stray response to no call: dropped by the client.
        stx.send(&frame(u64::MAX, 2, b"stray")).expect("send");
        (stx, srx)
    });
    let client = RpcClient::new(ctx, crx);
    thread::scope(|s| {
        for i in 0..CALLS {
            let client = &client;
            s.spawn(move || {
                let request = format!("call {i}");
                let response = client.call_timeout(request.as_bytes(), LONG).expect("call");
                assert_eq!(response, format!("re: call {i}").as_bytes());
            });
        }
    });
    let _server_ends = server.join().expect("server");
    // The stray response is read by the next call's leader, and dropped.
    assert!(matches!(
        client.call_timeout(b"unanswered", Duration::from_millis(100)),
        Err(Error::TimedOut)
    ));
    assert_eq!(client.discarded(), 1);
}
