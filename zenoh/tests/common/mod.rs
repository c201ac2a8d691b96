//! Helpers of the bridge's tests: free loopback ports, Zenoh sessions on loopback
//! only, keys, liveliness tokens; and, from `shmring-test-support` (shared with
//! the os tests), child processes (the test binary re-executes itself with
//! `--exact child_...`) and deterministic checksummed messages.
#![allow(dead_code)]

// Not every test file uses them (`stream.rs` uses neither).
#[allow(unused_imports)]
pub use shmring_test_support::{child::*, messages::*};

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
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

/// Sends `signal` (`STOP`, `CONT`, ...) to `pid` ([`Peer::pid`]) with kill(1).
pub fn signal(pid: i32, signal: &str) {
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
