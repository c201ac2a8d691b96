//! Helpers of the bridge's tests, after `os/tests/common/mod.rs` (the same child
//! process pattern: the test binary re-executes itself with `--exact child_...`
//! and an environment variable): child processes, deterministic checksummed
//! messages, free loopback ports, Zenoh sessions on loopback only.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Zenoh on loopback
// ---------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 free a moment ago (bound, read, closed).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A session that listens on 127.0.0.1:`port`, scouting off.
pub fn listening_session(port: u16) -> zenoh::Session {
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let config = shmring_zenoh::peer_config(&[&endpoint], &[]).expect("config");
    shmring_zenoh::open(config).expect("open listening session")
}

/// A session that connects to 127.0.0.1:`port`, scouting off, listening nowhere.
pub fn connecting_session(port: u16) -> zenoh::Session {
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let config = shmring_zenoh::peer_config(&[], &[&endpoint]).expect("config");
    shmring_zenoh::open(config).expect("open connecting session")
}

/// As [`connecting_session`], with a lease of `lease_ms` (how long the other side
/// waits, hearing nothing, before it closes the link).
pub fn connecting_session_with_lease(port: u16, lease_ms: u64) -> zenoh::Session {
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let mut config = shmring_zenoh::peer_config(&[], &[&endpoint]).expect("config");
    config
        .insert_json5("transport/link/tx/lease", &lease_ms.to_string())
        .expect("lease");
    shmring_zenoh::open(config).expect("open connecting session")
}

/// Sends `signal` (`STOP`, `CONT`, ...) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}: {status:?}");
}

/// A key no other test (or test run) uses.
pub fn unique_key(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmring-test/{}/{tag}/{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits (up to `limit`) until `count` liveliness tokens match `key_expr` as seen
/// from `session`: how a test knows that a peer's declarations (made before its
/// token) have reached this session.
pub fn wait_for_tokens(session: &zenoh::Session, key_expr: &str, count: usize, limit: Duration) {
    use zenoh::Wait;
    let deadline = Instant::now() + limit;
    loop {
        let replies = session
            .liveliness()
            .get(key_expr)
            .timeout(Duration::from_secs(1))
            .wait()
            .expect("liveliness get");
        let mut seen = 0;
        while let Ok(Some(_)) = replies.recv_timeout(Duration::from_secs(2)) {
            seen += 1;
        }
        if seen >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} tokens on {key_expr} not seen within {limit:?} (saw {seen})"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Deterministic messages
// ---------------------------------------------------------------------------

/// SplitMix64.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Stream messages of at least this many bytes start with the sequence number and
/// a checksum of the rest.
pub const STREAM_HEADER: usize = 16;

/// Length of stream message `seq` (0 to `max`, one in eight at most 16 bytes).
pub fn stream_len(seq: u64, max: usize) -> usize {
    let r = splitmix64(seq ^ 0x5eed_1e75);
    let limit = if r & 7 == 0 { max.min(16) } else { max };
    ((r >> 3) % (limit as u64 + 1)) as usize
}

/// FNV-1a over the bytes.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Stream message `seq` of a stream of messages up to `max` bytes.
pub fn stream_message(seq: u64, max: usize) -> Vec<u8> {
    let len = stream_len(seq, max);
    let mut out = vec![0u8; len];
    let mut x = splitmix64(seq);
    for b in out.iter_mut() {
        x = splitmix64(x);
        *b = x as u8;
    }
    if len >= STREAM_HEADER {
        let sum = checksum(&out[STREAM_HEADER..]);
        out[..8].copy_from_slice(&seq.to_le_bytes());
        out[8..16].copy_from_slice(&sum.to_le_bytes());
    }
    out
}

/// Checks that `got` is stream message `seq`: length, checksum, every byte.
pub fn check_stream(seq: u64, max: usize, got: &[u8]) -> Result<(), String> {
    let want = stream_message(seq, max);
    if got.len() != want.len() {
        let head = if got.len() >= 8 {
            format!("its seq field {:?}", &got[..8])
        } else {
            String::new()
        };
        return Err(format!(
            "message {seq}: length {} instead of {} {head}",
            got.len(),
            want.len()
        ));
    }
    if got.len() >= STREAM_HEADER {
        let sum = u64::from_le_bytes(got[8..16].try_into().expect("8 bytes"));
        if sum != checksum(&got[STREAM_HEADER..]) {
            return Err(format!("message {seq}: checksum mismatch"));
        }
    }
    if got != want {
        return Err(format!("message {seq}: bytes differ"));
    }
    Ok(())
}

/// A small numbered message: `seq` (8 bytes) then 0 to 56 pattern bytes.
pub fn seq_message(seq: u64) -> Vec<u8> {
    let extra = (splitmix64(seq) % 57) as usize;
    let mut out = seq.to_le_bytes().to_vec();
    out.extend((0..extra).map(|i| (seq as u8).wrapping_add(i as u8).wrapping_mul(31)));
    out
}

/// The number of a [`seq_message`], after checking it.
pub fn parse_seq(m: &[u8]) -> Result<u64, String> {
    if m.len() < 8 {
        return Err(format!("message of {} bytes: no sequence number", m.len()));
    }
    let seq = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
    if m != seq_message(seq) {
        return Err(format!("message {seq}: wrong length or bytes"));
    }
    Ok(seq)
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// Set in a child's environment: its `child_*` test runs; in the normal suite
/// those entry points return at once.
pub const CHILD_VAR: &str = "SHMRING_ZENOH_TEST_CHILD";
const PARAM_PREFIX: &str = "SHMRING_ZENOH_TEST_P_";
const MARK: &str = "@@";

/// Whether this process is a child started by [`Peer::spawn`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// A parameter given to this child.
pub fn param(key: &str) -> String {
    std::env::var(format!("{PARAM_PREFIX}{key}"))
        .unwrap_or_else(|_| panic!("child parameter {key} missing"))
}

/// A parameter parsed as a number.
pub fn param_u64(key: &str) -> u64 {
    param(key)
        .parse()
        .unwrap_or_else(|_| panic!("child parameter {key} is not a number"))
}

/// In a child: tells the parent `key value`.
pub fn report(key: &str, value: impl Display) {
    let line = format!("{MARK}{key} {value}\n");
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).expect("report to parent");
    out.flush().expect("report to parent");
}

/// In a child: blocks until the parent closes our standard input or dies.
pub fn wait_for_parent() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut sink);
}

/// In a child: exits after `limit` whatever happens.
pub fn child_watchdog(limit: Duration) {
    thread::spawn(move || {
        thread::sleep(limit);
        eprintln!(
            "child {}: watchdog fired after {limit:?}",
            std::process::id()
        );
        std::process::exit(3);
    });
}

/// A child process running one test of this binary, with its reports.
pub struct Peer {
    test: String,
    child: Child,
    stdin: Option<ChildStdin>,
    reports: mpsc::Receiver<(String, String)>,
    status: Option<ExitStatus>,
}

impl Peer {
    /// Runs the test `test` of this binary in a new process, `params` in its
    /// environment.
    pub fn spawn(test: &str, params: &[(&str, &dyn Display)]) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut command = Command::new(exe);
        command
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD_VAR, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in params {
            command.env(format!("{PARAM_PREFIX}{key}"), value.to_string());
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn child {test}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, reports) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    let report = &line[at + MARK.len()..];
                    let (key, value) = report.split_once(' ').unwrap_or((report, ""));
                    if tx.send((key.to_owned(), value.to_owned())).is_err() {
                        break;
                    }
                }
            }
        });
        Self {
            test: test.to_owned(),
            child,
            stdin,
            reports,
            status: None,
        }
    }

    /// Waits up to 60 s for the child's next report, which must be `key`.
    pub fn expect(&mut self, key: &str) -> String {
        match self.reports.recv_timeout(Duration::from_secs(60)) {
            Ok((k, v)) if k == key => v,
            Ok((k, v)) => panic!("child {}: expected report {key}, got {k} {v}", self.test),
            Err(e) => {
                let status = self.try_status();
                panic!(
                    "child {}: no report {key} ({e:?}); exit status {status:?}",
                    self.test
                )
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the child's standard input: its [`wait_for_parent`] returns.
    pub fn release(&mut self) {
        self.stdin = None;
    }

    /// SIGKILL (std's `Child::kill`), then reaps the child. Returns the instant
    /// before the signal.
    pub fn kill(&mut self) -> Instant {
        let at = Instant::now();
        self.child.kill().expect("kill child");
        let status = self.wait();
        assert_eq!(
            status.signal(),
            Some(9),
            "child {} ended by itself before the kill: {status:?}",
            self.test
        );
        at
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits (up to 60 s) for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("child {} did not exit", self.test);
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to exit and asserts it succeeded.
    pub fn wait_ok(&mut self) {
        let status = self.wait();
        assert!(
            status.success(),
            "child {} failed: {status:?} (its stderr is above)",
            self.test
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
