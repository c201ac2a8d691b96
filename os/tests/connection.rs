//! Connections (`shmring::connection`): rendezvous, upgrade to shared memory,
//! fallback to the socket and TCP, the handshake's security checks, liveness
//! through the socket, many clients.
//!
//! The peer runs in a real separate process wherever the test is about two
//! processes (this test binary started again with `--exact child_...` and
//! `SHMRING_TEST_CHILD` set; the `child_*` entry points return at once in the
//! normal suite). Measurements (Disconnected latency) are printed to stderr: see
//! them with `--nocapture`. The full-size streams are `#[ignore]`d
//! (`-- --ignored`); the default suite sends 100 000 messages each way per
//! transport.

mod common;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::RecvTimeoutError;
use shmring::connection::{ConnectOptions, Connection, Listener, Transport, TransportPolicy};
use shmring::{Error, MessageReceiver, MessageSender};

/// Messages each way in the default suite, and in the `#[ignore]`d runs.
const MESSAGES: u64 = 100_000;
const MESSAGES_LONG: u64 = 1_000_000;
/// Largest message of the streams (a 64 KiB ring takes up to 32 760).
const STREAM_LIMIT: usize = 1024;
/// Ring capacity of the stream tests: small, so that the sender often waits.
const CAPACITY: usize = 64 * 1024;
/// Bound on calls that should return long before it.
const LONG: Duration = Duration::from_secs(30);
/// The bound on "promptly" for a Disconnected after a death.
const PROMPT: Duration = Duration::from_secs(1);
/// The handshake's protocol version (2: the doorbells ride on the reply).
const VERSION: u16 = 2;

fn child_start() -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(Duration::from_secs(120));
    true
}

/// A private socket directory for one test (`0700`, ours).
fn socket_dir(tag: &str) -> (TempDir, PathBuf) {
    let temp = TempDir::new(tag);
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = temp.path().join("sock");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    (temp, dir)
}

fn listener(dir: &Path, name: &str) -> Listener {
    Listener::builder(name)
        .directory(dir)
        .capacity(CAPACITY)
        .bind()
        .unwrap_or_else(|e| panic!("bind {name}: {e}"))
}

fn client(dir: &Path) -> ConnectOptions {
    ConnectOptions::new().directory(dir).timeout(LONG)
}

/// Sends `count` stream messages from one thread and receives `count` from the
/// peer in another, checking every byte; both directions at once.
fn exchange(conn: Connection, count: u64) -> Result<(), String> {
    let (mut tx, mut rx) = conn.split();
    let sender = thread::spawn(move || {
        let mut buf = vec![0u8; STREAM_LIMIT];
        for seq in 0..count {
            let len = stream_len(seq, STREAM_LIMIT);
            fill_stream(seq, &mut buf[..len]);
            tx.send_timeout(&buf[..len], LONG)
                .map_err(|e| format!("send {seq}: {e}"))?;
        }
        Ok::<_, String>(tx)
    });
    let mut buf = vec![0u8; rx.max_message_len()];
    let mut scratch = Vec::new();
    for seq in 0..count {
        let n = rx
            .recv_timeout(&mut buf, LONG)
            .map_err(|e| format!("recv {seq}: {e}"))?;
        check_stream(seq, STREAM_LIMIT, &buf[..n], &mut scratch)?;
    }
    let tx = sender.join().map_err(|_| "sender panicked".to_owned())??;
    // Both ends finish before either closes: drop the sender only after the
    // peer's last message arrived (it arrived: the loop above ended).
    drop(tx);
    // The peer closes after its own checks: its end of stream is Disconnected.
    match rx.recv_timeout(&mut buf, LONG) {
        Err(RecvTimeoutError::Disconnected) => Ok(()),
        other => Err(format!(
            "after the stream: {other:?}, expected Disconnected"
        )),
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::SharedMemory => "shm",
        Transport::UnixSocket => "unix",
        Transport::Tcp => "tcp",
    }
}

/// The stream over one transport: the parent listens, the child connects.
fn stream_test(tag: &str, count: u64, no_shm_in_child: bool, tcp: bool) {
    let (_temp, dir) = socket_dir(tag);
    let name = unique(tag);
    let listener = if tcp {
        Listener::builder("tcp://127.0.0.1:0")
            .capacity(CAPACITY)
            .bind()
            .expect("bind tcp")
    } else {
        listener(&dir, &name)
    };
    let address = match listener.local_addr() {
        Some(addr) => format!("tcp://{addr}"),
        None => name.clone(),
    };
    let dir_s = dir.display().to_string();
    let mut peer = Peer::spawn_with(
        "child_stream_client",
        &[("dir", &dir_s), ("address", &address), ("count", &count)],
        |cmd| {
            if no_shm_in_child {
                cmd.env("SHMRING_NO_SHM", "1");
            }
        },
    );
    let conn = listener.accept_timeout(LONG).expect("accept");
    let expected = if tcp {
        Transport::Tcp
    } else if no_shm_in_child {
        Transport::UnixSocket
    } else {
        Transport::SharedMemory
    };
    assert_eq!(conn.transport(), expected);
    assert_eq!(peer.expect("transport"), transport_name(expected));
    assert_eq!(conn.max_message_len(), CAPACITY / 2 - 8);
    if !tcp {
        let creds = conn
            .peer_credentials()
            .expect("a unix peer has credentials");
        assert_eq!(creds.pid, peer.pid());
    }
    let start = Instant::now();
    exchange(conn, count).unwrap_or_else(|e| panic!("server side: {e}"));
    eprintln!(
        "{tag}: {count} messages each way over {expected} in {:?}",
        start.elapsed()
    );
    assert_eq!(peer.expect("done"), "ok");
    peer.wait_ok();
}

#[test]
fn child_stream_client() {
    if !child_start() {
        return;
    }
    let dir = PathBuf::from(param("dir"));
    let conn = client(&dir)
        .connect(&param("address"))
        .unwrap_or_else(|e| panic!("connect: {e}"));
    report("transport", transport_name(conn.transport()));
    match exchange(conn, param_u64("count")) {
        Ok(()) => report("done", "ok"),
        Err(e) => report("done", e),
    }
}

#[test]
fn shared_memory_stream_both_ways_across_processes() {
    stream_test("shm", MESSAGES, false, false);
}

#[test]
fn socket_stream_both_ways_when_shm_is_forbidden() {
    stream_test("noshm", MESSAGES, true, false);
}

#[test]
fn tcp_stream_both_ways_on_loopback() {
    stream_test("tcp", MESSAGES, false, true);
}

#[test]
#[ignore = "long: a million messages each way per transport"]
fn long_streams_on_every_transport() {
    stream_test("shm-long", MESSAGES_LONG, false, false);
    stream_test("noshm-long", MESSAGES_LONG, true, false);
    stream_test("tcp-long", MESSAGES_LONG, false, true);
}

// ---------------------------------------------------------------------------
// In one process: policies, names, directories, drops
// ---------------------------------------------------------------------------

/// Accepts on a thread while `f` connects; returns both ends.
fn pair(
    listener: Listener,
    connect: impl FnOnce() -> shmring::Result<Connection>,
) -> (
    shmring::Result<Connection>,
    shmring::Result<Connection>,
    Listener,
) {
    let server = thread::spawn(move || {
        let r = listener.accept_timeout(Duration::from_secs(5));
        (r, listener)
    });
    let c = connect();
    let (s, listener) = server.join().unwrap();
    (s, c, listener)
}

/// Accepts on a thread until stopped, counting what `accept` hands out: for
/// clients the listener must refuse (they are skipped, so `accept` never returns
/// them), however long they take to come.
struct Acceptor {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<(usize, Listener)>,
}

impl Acceptor {
    fn start(listener: Listener) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut accepted = 0;
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept_timeout(Duration::from_millis(20)) {
                    Ok(_) => accepted += 1,
                    Err(Error::TimedOut) => {}
                    Err(e) => panic!("accept: {e}"),
                }
            }
            (accepted, listener)
        });
        Self { stop, thread }
    }

    fn stop(self) -> (usize, Listener) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("acceptor thread")
    }
}

#[test]
fn default_directory_and_policies() {
    let name = unique("default");
    let listener = Listener::bind(&name).expect("bind in the default directory");
    let path = listener
        .path()
        .expect("a named listener has a path")
        .to_owned();
    let meta = std::fs::symlink_metadata(path.parent().unwrap()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let (s, c, listener) = pair(listener, || shmring::connect(&name));
    let (s, c) = (s.unwrap(), c.unwrap());
    drop((s, c));
    let (s, c, listener) = pair(listener, || {
        shmring::connection::connect_timeout(&name, Duration::from_secs(5))
    });
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(s.transport(), Transport::SharedMemory);
    assert_eq!(c.transport(), Transport::SharedMemory);
    c.send(b"ping").unwrap();
    assert_eq!(s.recv_vec_timeout(LONG).unwrap(), b"ping");
    s.send(b"pong").unwrap();
    assert_eq!(c.recv_vec_timeout(LONG).unwrap(), b"pong");
    // A client that forbids shared memory gets the socket, with the same API.
    let (s, c, listener) = pair(listener, || {
        ConnectOptions::new()
            .transport(TransportPolicy::SocketOnly)
            .connect(&name)
    });
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(c.transport(), Transport::UnixSocket);
    assert_eq!(s.transport(), Transport::UnixSocket);
    assert_eq!(s.max_message_len(), c.max_message_len());
    MessageSender::send(&mut c, b"over the socket").unwrap();
    assert_eq!(
        MessageReceiver::recv_vec_deadline(&mut s, None).unwrap(),
        b"over the socket"
    );
    // Shared memory required by the client, refused by the listener's policy.
    drop(listener);
    let listener = Listener::builder(&name)
        .transport(TransportPolicy::SocketOnly)
        .bind()
        .unwrap();
    let acceptor = Acceptor::start(listener);
    let c = ConnectOptions::new()
        .transport(TransportPolicy::SharedMemoryOnly)
        .timeout(LONG)
        .connect(&name);
    let (accepted, listener) = acceptor.stop();
    assert_eq!(accepted, 0, "the refused client is not handed out");
    match c {
        Err(Error::Handshake { reason, .. }) => {
            assert!(reason.contains("policies"), "{reason}")
        }
        other => panic!("expected a handshake refusal, got {other:?}"),
    }
    drop(listener);
    assert!(!path.exists(), "the socket file is removed on drop");
}

#[test]
fn names_directories_and_stale_sockets() {
    let (_temp, dir) = socket_dir("names");
    // Invalid names.
    assert!(matches!(
        Listener::builder("a/b").directory(&dir).bind(),
        Err(Error::InvalidName { .. })
    ));
    // A live listener keeps its name.
    let name = unique("taken");
    let first = listener(&dir, &name);
    assert!(matches!(
        Listener::builder(&name).directory(&dir).bind(),
        Err(Error::AlreadyExists { .. })
    ));
    // A stale socket file (its listener died) is replaced.
    let stale = unique("stale");
    let path = dir.join(format!("{stale}.sock"));
    drop(StdUnixListener::bind(&path).unwrap()); // std leaves the file behind
    assert!(path.exists());
    let replaced = listener(&dir, &stale);
    let (s, c, _replaced) = pair(replaced, || client(&dir).connect(&stale));
    assert!(s.is_ok() && c.is_ok());
    drop(first);
    // Nobody listens: refused, or not found.
    assert!(matches!(
        client(&dir).connect(&unique("nobody")),
        Err(Error::NotFound { .. })
    ));
    // A directory others may write is refused, on both sides.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    match Listener::builder(&unique("open")).directory(&dir).bind() {
        Err(Error::Untrusted { mode, .. }) => assert_eq!(mode, 0o777),
        other => panic!("expected Untrusted, got {other:?}"),
    }
    assert!(matches!(
        client(&dir).connect(&stale),
        Err(Error::Untrusted { .. })
    ));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A symbolic link is refused.
    let link = dir.with_file_name("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    assert!(matches!(
        Listener::builder(&unique("link")).directory(&link).bind(),
        Err(Error::WrongFileType { .. })
    ));
}

#[test]
fn a_clean_drop_disconnects_the_peer_at_once() {
    let (_temp, dir) = socket_dir("drop");
    let name = unique("drop");
    let (s, c, listener) = pair(listener(&dir, &name), || client(&dir).connect(&name));
    let (s, mut c) = (s.unwrap(), c.unwrap());
    let waiter = thread::spawn(move || {
        let start = Instant::now();
        let r = c.recv_vec_timeout(LONG);
        (r, start.elapsed(), c)
    });
    thread::sleep(Duration::from_millis(50));
    let dropped = Instant::now();
    drop(s);
    let (r, _, _c) = waiter.join().unwrap();
    let latency = dropped.elapsed();
    assert!(
        matches!(&r, Err(e) if matches!(Error::from(e.clone()), Error::Disconnected { .. })),
        "{r:?}"
    );
    eprintln!("clean drop: Disconnected after {latency:?}");
    assert!(latency < PROMPT);

    // The receiving half alone: the peer's sender, blocked on a full ring,
    // learns at once.
    let (s, c, _listener) = pair(listener, || client(&dir).connect(&name));
    let (s, c) = (s.unwrap(), c.unwrap());
    let (mut ctx, _crx) = c.split();
    let (_stx, srx) = s.split();
    let message = vec![7u8; 1000];
    while ctx.try_send(&message).is_ok() {}
    let blocked = thread::spawn(move || {
        let r = ctx.send_timeout(&message, LONG);
        (r, ctx)
    });
    thread::sleep(Duration::from_millis(50));
    let dropped = Instant::now();
    drop(srx);
    let (r, _ctx) = blocked.join().unwrap();
    let latency = dropped.elapsed();
    assert!(
        matches!(&r, Err(e) if matches!(Error::from(e.clone()), Error::Disconnected { .. })),
        "a sender on a full ring whose peer's receiver dropped: {r:?}"
    );
    eprintln!("receiving half dropped: the blocked sender saw Disconnected after {latency:?}");
    assert!(latency < PROMPT);
}

#[test]
fn connection_halves_plug_into_rpc() {
    let (_temp, dir) = socket_dir("rpc");
    let name = unique("rpc");
    let (s, c, _listener) = pair(listener(&dir, &name), || client(&dir).connect(&name));
    let (server_tx, server_rx) = s.unwrap().split();
    let (client_tx, client_rx) = c.unwrap().split();
    let server = thread::spawn(move || {
        let mut server = shmring::RpcServer::new(server_rx, server_tx);
        // Serves until the client's connection closes.
        server
            .serve(|request: &[u8]| -> Result<Vec<u8>, String> { Ok(request.to_ascii_uppercase()) })
    });
    let client = shmring::RpcClient::new(client_tx, client_rx);
    for i in 0..100 {
        let request = format!("call {i}");
        let reply = client.call_timeout(request.as_bytes(), LONG).unwrap();
        assert_eq!(reply, request.to_ascii_uppercase().as_bytes());
    }
    drop(client);
    let served = server.join().unwrap();
    assert!(
        matches!(served, Ok(()) | Err(Error::Disconnected { .. })),
        "the server ends when the client goes: {served:?}"
    );
}

// ---------------------------------------------------------------------------
// Many clients
// ---------------------------------------------------------------------------

#[test]
fn child_echo_client() {
    if !child_start() {
        return;
    }
    let dir = PathBuf::from(param("dir"));
    let id = param_u64("id");
    let count = param_u64("count");
    let mut conn = client(&dir).connect(&param("name")).expect("connect");
    report("transport", transport_name(conn.transport()));
    for i in 0..count {
        let m = format!("client {id} message {i}");
        conn.send_timeout(m.as_bytes(), LONG).unwrap();
        let back = conn.recv_vec_timeout(LONG).unwrap();
        assert_eq!(back, m.as_bytes(), "echo of {m}");
    }
    report("done", id);
}

#[test]
fn a_listener_serves_many_clients_each_with_its_rings() {
    let (_temp, dir) = socket_dir("many");
    let name = unique("many");
    let listener = listener(&dir, &name);
    // Nobody there: the non-blocking and the timed accept.
    assert!(matches!(listener.try_accept(), Err(Error::Empty)));
    let start = Instant::now();
    assert!(matches!(
        listener.accept_timeout(Duration::from_millis(20)),
        Err(Error::TimedOut)
    ));
    assert!(start.elapsed() >= Duration::from_millis(20));

    let dir_s = dir.display().to_string();
    let count = 1000u64;
    let mut peers: Vec<Peer> = (0..3u64)
        .map(|id| {
            Peer::spawn(
                "child_echo_client",
                &[
                    ("dir", &dir_s),
                    ("name", &name),
                    ("id", &id),
                    ("count", &count),
                ],
            )
        })
        .collect();
    let mut servers = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut conn = listener.accept_timeout(LONG).expect("accept");
        assert_eq!(conn.transport(), Transport::SharedMemory);
        pids.push(conn.peer_credentials().unwrap().pid);
        servers.push(thread::spawn(move || {
            for _ in 0..count {
                let m = conn.recv_vec_timeout(LONG).unwrap();
                conn.send_timeout(&m, LONG).unwrap();
            }
            conn
        }));
    }
    pids.sort();
    let mut expected: Vec<i32> = peers.iter().map(Peer::pid).collect();
    expected.sort();
    assert_eq!(pids, expected, "one connection per client");
    for peer in &mut peers {
        assert_eq!(peer.expect("transport"), "shm");
    }
    let mut done: Vec<String> = peers.iter_mut().map(|p| p.expect("done")).collect();
    done.sort();
    assert_eq!(done, ["0", "1", "2"]);
    for server in servers {
        server.join().expect("server thread");
    }
    for peer in &mut peers {
        peer.wait_ok();
    }
    // With a client waiting, try_accept takes it.
    let mut peer = Peer::spawn(
        "child_echo_client",
        &[("dir", &dir_s), ("name", &name), ("id", &9), ("count", &1)],
    );
    let deadline = Instant::now() + LONG;
    let mut conn = loop {
        match listener.try_accept() {
            Ok(conn) => break conn,
            Err(Error::Empty) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("try_accept: {e}"),
        }
    };
    let m = conn.recv_vec_timeout(LONG).unwrap();
    conn.send(&m).unwrap();
    assert_eq!(peer.expect("transport"), "shm");
    assert_eq!(peer.expect("done"), "9");
    peer.wait_ok();
}

// ---------------------------------------------------------------------------
// Security: credentials, directory mode, descriptors
// ---------------------------------------------------------------------------

#[test]
fn child_connect_as_nobody() {
    if !child_start() {
        return;
    }
    become_nobody();
    let dir = PathBuf::from(param("dir"));
    let opts = client(&dir).timeout(Duration::from_secs(10));
    match opts.connect(&param("refused")) {
        Ok(conn) => report("refused", format!("connected over {}", conn.transport())),
        Err(e @ Error::PermissionDenied { .. }) => report("refused", format!("denied {e}")),
        Err(e) => report("refused", format!("other {e:?}")),
    }
    let allowed = param("allowed");
    if allowed.is_empty() {
        return;
    }
    let mut conn = opts
        .connect(&allowed)
        .expect("connect to the listener that allows us");
    report("transport", transport_name(conn.transport()));
    let m = conn.recv_vec_timeout(LONG).unwrap();
    conn.send(&m).unwrap();
    report("done", "ok");
}

#[test]
fn the_credential_check_refuses_another_uid() {
    if !root_or_skip("the_credential_check_refuses_another_uid") {
        return;
    }
    let (_temp, dir) = socket_dir("cred");
    // Opened up: nobody may reach the socket, so a refusal can only come from
    // the listener's SO_PEERCRED check.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = unique("cred-refused");
    let allowed = unique("cred-allowed");
    let refusing = Listener::builder(&refused)
        .directory(&dir)
        .directory_mode(0o755)
        .socket_mode(0o777)
        .bind()
        .unwrap();
    let allowing = Listener::builder(&allowed)
        .directory(&dir)
        .directory_mode(0o755)
        .socket_mode(0o777)
        .allow_uid(65534)
        .bind()
        .unwrap();
    let path = refusing.path().unwrap();
    assert_eq!(
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
        0o777
    );
    let dir_s = dir.display().to_string();
    let mut peer = Peer::spawn(
        "child_connect_as_nobody",
        &[
            ("dir", &dir_s),
            ("refused", &refused),
            ("allowed", &allowed),
        ],
    );
    let acceptor = Acceptor::start(refusing);
    let verdict = peer.expect("refused");
    let (accepted, _refusing) = acceptor.stop();
    assert_eq!(accepted, 0, "the refused client is not handed out");
    assert!(
        verdict.starts_with("denied") && verdict.contains("uid 65534"),
        "the client should be refused by uid: {verdict}"
    );
    // Allowed, the same uid gets shared memory (the memfds reach another uid).
    let mut conn = allowing.accept_timeout(LONG).expect("accept nobody");
    assert_eq!(conn.peer_credentials().unwrap().uid, 65534);
    assert_eq!(conn.transport(), Transport::SharedMemory);
    conn.send(b"hello nobody").unwrap();
    assert_eq!(conn.recv_vec_timeout(LONG).unwrap(), b"hello nobody");
    assert_eq!(peer.expect("transport"), "shm");
    assert_eq!(peer.expect("done"), "ok");
    peer.wait_ok();
}

#[test]
fn the_directory_mode_refuses_another_uid() {
    if !root_or_skip("the_directory_mode_refuses_another_uid") {
        return;
    }
    let (_temp, dir) = socket_dir("dirmode");
    let name = unique("dirmode");
    // The socket and the uid allow nobody; the 0700 directory does not.
    let _listener = Listener::builder(&name)
        .directory(&dir)
        .socket_mode(0o777)
        .allow_uid(65534)
        .bind()
        .unwrap();
    let dir_s = dir.display().to_string();
    let mut peer = Peer::spawn(
        "child_connect_as_nobody",
        &[("dir", &dir_s), ("refused", &name), ("allowed", &"")],
    );
    let verdict = peer.expect("refused");
    assert!(
        verdict.starts_with("denied") && !verdict.contains("uid 65534"),
        "the client should be refused by the directory mode: {verdict}"
    );
    peer.wait_ok();
}

/// The handshake constants, from docs/design/connection-handshake.md.
const MAGIC: &[u8; 8] = b"shmrconn";

/// A memfd of `size` bytes, sealed with `seals` (0: unsealed).
fn memfd(size: u64, seals: i32) -> OwnedFd {
    let name = CString::new("fake").unwrap();
    // SAFETY: the name is NUL-terminated.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    assert!(fd >= 0);
    // SAFETY: just created, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain calls on an open descriptor.
    unsafe {
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), size as i64), 0);
        if seals != 0 {
            assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals), 0);
        }
    }
    fd
}

/// Sends `bytes` with `fds` attached over the raw socket.
fn send_with_fds(sock: &impl AsRawFd, bytes: &[u8], fds: &[i32]) {
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers below live across sendmsg;
    // the control buffer (128 bytes) holds a header and up to 16 ints.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let data_len = (fds.len() * 4) as u32;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(data_len) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as usize;
        let data = libc::CMSG_DATA(cmsg).cast::<i32>();
        for (i, fd) in fds.iter().enumerate() {
            data.add(i).write_unaligned(*fd);
        }
        let n = libc::sendmsg(sock.as_raw_fd(), &msg, 0);
        assert_eq!(
            n,
            bytes.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

/// The size of a ring segment of `capacity` bytes (header 512 bytes + data).
fn ring_size(capacity: u64) -> u64 {
    shmring::ring_core::spsc::layout::segment_layout(capacity as usize)
        .unwrap()
        .size() as u64
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A fake listener that reads the hello, then replies "shared memory" with the
/// given descriptors and announced size; returns what the client reported.
fn fake_listener_case(dir: &Path, case: &str, fds: Vec<OwnedFd>, announced: u64) -> Error {
    let name = unique(case);
    let path = dir.join(format!("{name}.sock"));
    let server = StdUnixListener::bind(&path).unwrap();
    let capacity = 4096u64;
    let fake = thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut sock, _) = server.accept().unwrap();
        let mut hello = [0u8; 24];
        sock.read_exact(&mut hello).unwrap();
        assert_eq!(&hello[..8], MAGIC);
        let mut reply = Vec::new();
        reply.extend_from_slice(MAGIC);
        reply.extend_from_slice(&VERSION.to_le_bytes());
        reply.extend_from_slice(&1u16.to_le_bytes()); // shared memory
        reply.extend_from_slice(&2u32.to_le_bytes()); // two descriptors
        reply.extend_from_slice(&capacity.to_le_bytes());
        reply.extend_from_slice(&announced.to_le_bytes());
        reply.extend_from_slice(&(capacity / 2 - 8).to_le_bytes());
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        send_with_fds(&sock, &reply, &raw);
        drop(fds);
        // The client refuses in its ack.
        let mut ack = [0u8; 16];
        let _ = sock.read_exact(&mut ack);
        let _ = sock.flush();
        ack
    });
    let err = ConnectOptions::new()
        .directory(dir)
        .timeout(Duration::from_secs(10))
        .connect(&name)
        .expect_err("the client must refuse");
    let ack = fake.join().unwrap();
    assert_eq!(&ack[..8], MAGIC, "{case}: the client acks its refusal");
    assert_eq!(u16::from_le_bytes([ack[10], ack[11]]), 1, "{case}: refused");
    err
}

#[test]
fn child_fake_listener_cases() {
    if !child_start() {
        return;
    }
    let dir = PathBuf::from(param("dir"));
    let size = ring_size(4096);
    let sealed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    let before = open_fds();
    let cases: Vec<(&str, Vec<OwnedFd>, u64)> = vec![
        ("unsealed", vec![memfd(size, 0), memfd(size, 0)], size),
        (
            "no-seal-seal",
            vec![
                memfd(size, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW),
                memfd(size, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW),
            ],
            size,
        ),
        (
            "three",
            vec![
                memfd(size, sealed),
                memfd(size, sealed),
                memfd(size, sealed),
            ],
            size,
        ),
        ("seven", (0..7).map(|_| memfd(size, sealed)).collect(), size),
        ("one", vec![memfd(size, sealed)], size),
        (
            "wrong-size",
            vec![memfd(size * 2, sealed), memfd(size * 2, sealed)],
            size,
        ),
        (
            "announced-wrong",
            vec![memfd(size * 2, sealed), memfd(size * 2, sealed)],
            size * 2,
        ),
    ];
    for (case, fds, announced) in cases {
        let err = fake_listener_case(&dir, case, fds, announced);
        report(case, format!("{err}"));
    }
    // Every descriptor that came was closed.
    report("fds", format!("{} {}", before, open_fds()));
}

#[test]
fn unexpected_or_unsealed_descriptors_are_refused_and_closed() {
    let (_temp, dir) = socket_dir("fds");
    let dir_s = dir.display().to_string();
    let mut peer = Peer::spawn("child_fake_listener_cases", &[("dir", &dir_s)]);
    let expect = |peer: &mut Peer, case: &str, needle: &str| {
        let err = peer.expect(case);
        eprintln!("{case}: {err}");
        assert!(err.contains(needle), "{case}: {err}");
    };
    expect(&mut peer, "unsealed", "not sealed");
    expect(&mut peer, "no-seal-seal", "not sealed");
    expect(
        &mut peer,
        "three",
        "unexpected number of descriptors (found 3, expected 2)",
    );
    expect(&mut peer, "seven", "MSG_CTRUNC");
    expect(
        &mut peer,
        "one",
        "unexpected number of descriptors (found 1, expected 2)",
    );
    expect(&mut peer, "wrong-size", "wrong size");
    expect(&mut peer, "announced-wrong", "wrong count or size");
    let fds = peer.expect("fds");
    let (before, after) = fds.split_once(' ').unwrap();
    assert_eq!(before, after, "descriptors leaked: before and after");
    peer.wait_ok();
}

/// The descriptors of this process whose `/proc/self/fd` link contains `needle`.
fn fds_linking_to(needle: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy().contains(needle))
        .count()
}

#[test]
fn descriptors_a_client_attaches_are_never_installed_by_the_listener() {
    use std::io::{Read, Write};
    let (_temp, dir) = socket_dir("client-fds");
    let name = unique("client-fds");
    let listener = listener(&dir, &name);
    let acceptor = Acceptor::start(listener);
    let tag = format!("attached-{}", std::process::id());
    let mut sock = std::os::unix::net::UnixStream::connect(dir.join(format!("{name}.sock")))
        .expect("raw connect");
    let mut hello = Vec::new();
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&VERSION.to_le_bytes());
    hello.extend_from_slice(&0u16.to_le_bytes()); // any transport
    hello.extend_from_slice(&0u32.to_le_bytes());
    hello.extend_from_slice(&0u64.to_le_bytes());
    {
        let cname = CString::new(tag.clone()).unwrap();
        // SAFETY: the name is NUL-terminated.
        let raw = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: just created, owned by nobody else.
        let attached = unsafe { OwnedFd::from_raw_fd(raw) };
        send_with_fds(&sock, &hello, &[attached.as_raw_fd(), attached.as_raw_fd()]);
    } // our copy is closed: any left would be the listener's
    let mut reply = [0u8; 40];
    sock.read_exact(&mut reply).expect("the listener replies");
    assert_eq!(&reply[..8], MAGIC);
    // The listener has read the hello (it replied); it read it without room for
    // control data, so the kernel discarded the descriptors.
    assert_eq!(
        fds_linking_to(&tag),
        0,
        "a client's descriptor was installed"
    );
    let mut ack = Vec::new();
    ack.extend_from_slice(MAGIC);
    ack.extend_from_slice(&VERSION.to_le_bytes());
    ack.extend_from_slice(&1u16.to_le_bytes()); // refused
    ack.extend_from_slice(&0u32.to_le_bytes());
    sock.write_all(&ack).unwrap();
    // The refusing client is skipped. (Its refusal arrives after the read above:
    // wait for the listener to see it, then for nothing to come out.)
    let mut end = [0u8; 1];
    assert_eq!(sock.read(&mut end).unwrap(), 0, "the listener closes");
    assert_eq!(acceptor.stop().0, 0);
}

#[test]
fn a_foreign_or_malformed_hello_is_refused_with_its_reason() {
    use std::io::{Read, Write};
    let (_temp, dir) = socket_dir("hello");
    let name = unique("hello");
    let listener = listener(&dir, &name);
    let hello = |magic: &[u8; 8], version: u16, policy: u16, reserved: u32, capacity: u64| {
        let mut b = Vec::new();
        b.extend_from_slice(magic);
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&policy.to_le_bytes());
        b.extend_from_slice(&reserved.to_le_bytes());
        b.extend_from_slice(&capacity.to_le_bytes());
        b
    };
    // (hello, reason code, value found)
    let cases = [
        (hello(b"notshmrg", VERSION, 0, 0, 0), 3u32, 0u64),
        (hello(MAGIC, 1, 0, 0, 0), 2, 1),
        (hello(MAGIC, VERSION, 7, 0, 0), 3, 7),
        (hello(MAGIC, VERSION, 0, 1, 0), 3, 1),
        (hello(MAGIC, VERSION, 0, 0, 1000), 3, 1000),
    ];
    let n = cases.len();
    let acceptor = Acceptor::start(listener);
    for (bytes, reason, found) in cases {
        let mut sock = std::os::unix::net::UnixStream::connect(dir.join(format!("{name}.sock")))
            .expect("raw connect");
        sock.write_all(&bytes).unwrap();
        let mut reply = [0u8; 40];
        sock.read_exact(&mut reply).expect("a refusal reply");
        assert_eq!(&reply[..8], MAGIC);
        assert_eq!(u16::from_le_bytes([reply[10], reply[11]]), 3, "refused");
        assert_eq!(
            u32::from_le_bytes(reply[12..16].try_into().unwrap()),
            reason
        );
        assert_eq!(u64::from_le_bytes(reply[16..24].try_into().unwrap()), found);
    }
    assert_eq!(acceptor.stop().0, 0, "all {n} skipped");
}

// ---------------------------------------------------------------------------
// Peer death
// ---------------------------------------------------------------------------

/// Entries of /dev/shm.
fn dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// New entries in /dev/shm that this test or its child could have made: any,
/// except the uniquely named segments of other test processes
/// (`shmring.t-<pid>-...` of another pid), which run beside us.
fn new_shm_entries(before: &[String], child: i32) -> Vec<String> {
    let own = [std::process::id() as i32, child];
    dev_shm()
        .into_iter()
        .filter(|e| !before.contains(e))
        .filter(|e| {
            let pid = e
                .strip_prefix("shmring.t-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            pid.is_none_or(|p| own.contains(&p))
        })
        .collect()
}

#[test]
fn child_listen_and_hold() {
    if !child_start() {
        return;
    }
    let dir = PathBuf::from(param("dir"));
    let listener = listener(&dir, &param("name"));
    report("ready", "");
    let conn = listener.accept_timeout(LONG).expect("accept");
    report("accepted", transport_name(conn.transport()));
    wait_for_parent();
}

#[test]
fn child_connect_and_hold() {
    if !child_start() {
        return;
    }
    let dir = PathBuf::from(param("dir"));
    let conn = client(&dir).connect(&param("name")).expect("connect");
    report("connected", transport_name(conn.transport()));
    wait_for_parent();
}

const DEATH_TRIALS: usize = 3;

#[test]
fn a_killed_server_disconnects_a_client_blocked_in_recv_at_once() {
    let mut latencies = Vec::new();
    for _ in 0..DEATH_TRIALS {
        let (_temp, dir) = socket_dir("kill-server");
        let name = unique("kill-server");
        let before = dev_shm();
        let dir_s = dir.display().to_string();
        let mut peer = Peer::spawn("child_listen_and_hold", &[("dir", &dir_s), ("name", &name)]);
        peer.expect("ready");
        let mut conn = client(&dir).connect(&name).expect("connect");
        assert_eq!(peer.expect("accepted"), "shm");
        assert_eq!(conn.transport(), Transport::SharedMemory);
        let blocked = thread::spawn(move || {
            let r = conn.recv_vec_timeout(LONG);
            (r, Instant::now())
        });
        // Let it park on the ring's futex.
        thread::sleep(Duration::from_millis(100));
        let killed = peer.kill_now();
        let (r, returned) = blocked.join().unwrap();
        let latency = returned.duration_since(killed);
        assert!(
            matches!(&r, Err(e) if matches!(Error::from(e.clone()), Error::Disconnected { .. })),
            "the survivor gets Disconnected: {r:?}"
        );
        assert!(latency < PROMPT, "Disconnected after {latency:?}");
        latencies.push(latency);
        peer.wait();
        let left = new_shm_entries(&before, peer.pid());
        assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    }
    eprintln!(
        "server killed, client blocked in recv: Disconnected after {}",
        summary(&mut latencies)
    );
}

#[test]
fn a_killed_client_disconnects_a_server_blocked_in_send_at_once() {
    let mut latencies = Vec::new();
    for _ in 0..DEATH_TRIALS {
        let (_temp, dir) = socket_dir("kill-client");
        let name = unique("kill-client");
        let before = dev_shm();
        let listener = listener(&dir, &name);
        let dir_s = dir.display().to_string();
        let mut peer = Peer::spawn(
            "child_connect_and_hold",
            &[("dir", &dir_s), ("name", &name)],
        );
        let mut conn = listener.accept_timeout(LONG).expect("accept");
        assert_eq!(peer.expect("connected"), "shm");
        let message = vec![1u8; 1000];
        while conn.try_send(&message).is_ok() {}
        let blocked = thread::spawn(move || {
            let r = conn.send_timeout(&message, LONG);
            (r, Instant::now())
        });
        thread::sleep(Duration::from_millis(100));
        let killed = peer.kill_now();
        let (r, returned) = blocked.join().unwrap();
        let latency = returned.duration_since(killed);
        assert!(
            matches!(&r, Err(e) if matches!(Error::from(e.clone()), Error::Disconnected { .. })),
            "the survivor gets Disconnected: {r:?}"
        );
        assert!(latency < PROMPT, "Disconnected after {latency:?}");
        latencies.push(latency);
        peer.wait();
        let left = new_shm_entries(&before, peer.pid());
        assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    }
    eprintln!(
        "client killed, server blocked in send: Disconnected after {}",
        summary(&mut latencies)
    );
}

/// Both ends' readiness descriptors over shared memory: each side is rung for a
/// message from the other, and the client's descriptor becomes readable (then
/// `Disconnected`) when the server drops: its doorbell ends travelled in the
/// handshake, and the server kept none of the client's.
#[test]
fn readiness_descriptors_over_shared_memory_ring_and_hang_up() {
    use shmring::{Readiness, Wakeups};
    let (_temp, dir) = socket_dir("ready");
    let name = unique("ready");
    let (s, c, _listener) = pair(listener(&dir, &name), || client(&dir).connect(&name));
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(c.transport(), Transport::SharedMemory);
    assert_eq!(*c.wakeups(), Wakeups::Doorbell);
    assert_eq!(*s.wakeups(), Wakeups::Doorbell);
    assert_eq!(c.arm_for_message().unwrap(), Readiness::Armed);
    assert_eq!(s.arm_for_message().unwrap(), Readiness::Armed);
    assert!(!readable_within(
        c.readiness_fd(),
        Duration::from_millis(30)
    ));
    s.send(b"to the client").unwrap();
    c.send(b"to the server").unwrap();
    assert!(readable_within(c.readiness_fd(), PROMPT), "client not rung");
    assert!(readable_within(s.readiness_fd(), PROMPT), "server not rung");
    assert_eq!(c.recv_vec().unwrap(), b"to the client");
    assert_eq!(s.recv_vec().unwrap(), b"to the server");
    assert_eq!(c.arm_for_message().unwrap(), Readiness::Armed);
    drop(s);
    assert!(
        ready_within(
            &mut c,
            PROMPT,
            |c: &Connection| c.readiness_fd(),
            |c| c.arm_for_message().unwrap()
        ),
        "the server's drop did not wake the client"
    );
    assert!(matches!(
        c.try_recv(&mut [0u8; 64]),
        Err(shmring::TryRecvError::Disconnected)
    ));
}
