//! Child processes that run one test of this test binary.
//!
//! A test spawns a [`Peer`]: this binary again, with `--exact <test>`, the
//! marker [`CHILD_VAR`] and the parameters in its environment. The child's entry
//! point is a test named `child_...` that returns at once unless [`is_child`];
//! in the child it reads its [`param`]s, [`report`]s `key value` lines to the
//! parent, and may [`wait_for_parent`] until [`Peer::release`].
//!
//! The marker's name is fixed: the os tests and the Zenoh bridge's tests run in
//! different binaries, so they cannot mistake each other's children.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// Set in a child's environment: the child entry point named on its command line
/// runs; in the normal suite those entry points return at once.
pub const CHILD_VAR: &str = "SHMRING_TEST_CHILD";
/// Prefix of the child's parameters in its environment: [`Peer::spawn`]'s
/// parameter `KEY` is the variable `SHMRING_TEST_P_KEY`.
pub const PARAM_PREFIX: &str = "SHMRING_TEST_P_";
/// Marks a report line in a child's standard output (the test harness writes there
/// too, sometimes on the same line).
const MARK: &str = "@@";
/// How long [`Peer::expect`] waits for a report, and [`Peer::wait`] for an exit.
const PATIENCE: Duration = Duration::from_secs(60);

/// Whether this process is a child started by [`Peer::spawn`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// A parameter given to this child by [`Peer::spawn`], if it was given.
pub fn param_opt(key: &str) -> Option<String> {
    std::env::var(format!("{PARAM_PREFIX}{key}")).ok()
}

/// A parameter given to this child by [`Peer::spawn`]; panics if it is missing.
pub fn param(key: &str) -> String {
    param_opt(key).unwrap_or_else(|| panic!("child parameter {key} missing"))
}

/// A parameter parsed as a number; panics if it is missing or not a number.
pub fn param_u64(key: &str) -> u64 {
    param(key)
        .parse()
        .unwrap_or_else(|_| panic!("child parameter {key} is not a number"))
}

/// In a child: tells the parent `key value` (one line, one `write`).
pub fn report(key: &str, value: impl Display) {
    let line = format!("{MARK}{key} {value}\n");
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).expect("report to parent");
    out.flush().expect("report to parent");
}

/// In a child: blocks until the parent closes our standard input
/// ([`Peer::release`]) or dies.
pub fn wait_for_parent() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut sink);
}

/// In a child: exits the process (status 3) after `limit` whatever happens, so
/// that a child whose parent vanished cannot linger.
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
///
/// Dropped while the child still runs (a failed test), it kills and reaps it.
#[derive(Debug)]
pub struct Peer {
    test: String,
    child: Child,
    stdin: Option<ChildStdin>,
    reports: mpsc::Receiver<(String, String)>,
    status: Option<ExitStatus>,
}

impl Peer {
    /// Runs the test `test` of this binary in a new process with [`CHILD_VAR`]
    /// set and `params` in its environment (see [`param`]).
    pub fn spawn(test: &str, params: &[(&str, &dyn Display)]) -> Self {
        Self::spawn_with(test, params, |_| {})
    }

    /// As [`spawn`](Self::spawn), letting `customize` adjust the command (pass a
    /// descriptor, change the user...).
    pub fn spawn_with(
        test: &str,
        params: &[(&str, &dyn Display)],
        customize: impl FnOnce(&mut Command),
    ) -> Self {
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
        customize(&mut command);
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

    /// The child's process id (as `pid_t`, the type the system calls take).
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a process id fits in pid_t")
    }

    /// The next report, or `None` if the child closed its output (exited) or
    /// `timeout` passed.
    pub fn next_report(&mut self, timeout: Duration) -> Option<(String, String)> {
        self.reports.recv_timeout(timeout).ok()
    }

    /// Every report the child makes until it closes its output (exits).
    pub fn remaining_reports(&mut self) -> Vec<(String, String)> {
        self.reports.iter().collect()
    }

    /// Waits up to 60 s for the child's next report, which must be `key`; returns
    /// its value.
    pub fn expect(&mut self, key: &str) -> String {
        match self.reports.recv_timeout(PATIENCE) {
            Ok((k, v)) if k == key => v,
            Ok((k, v)) => panic!(
                "child {} (pid {}): expected report {key}, got {k} {v}",
                self.test,
                self.pid()
            ),
            Err(e) => {
                let status = self.try_status();
                panic!(
                    "child {} (pid {}): no report {key} ({e:?}); exit status {status:?}",
                    self.test,
                    self.pid()
                )
            }
        }
    }

    /// Closes the child's standard input: [`wait_for_parent`] returns there.
    pub fn release(&mut self) {
        self.stdin = None;
    }

    /// Sends SIGKILL; returns the instant just before the signal was sent. The
    /// child is not reaped: call [`wait`](Self::wait).
    pub fn kill_now(&self) -> Instant {
        let at = Instant::now();
        // The child is not reaped yet (`wait` takes `&mut self`), so the pid
        // still names it.
        let pid = Pid::from_raw(self.pid()).expect("a child's pid is positive");
        kill_process(pid, Signal::KILL)
            .unwrap_or_else(|e| panic!("kill child {} (pid {}): {e}", self.test, self.pid()));
        at
    }

    /// SIGKILL, then reaps the child (its descriptors, and with them its locks,
    /// are gone when this returns). Returns the instant before the signal.
    pub fn kill(&mut self) -> Instant {
        let at = self.kill_now();
        let status = self.wait();
        assert_eq!(
            status.signal(),
            Some(Signal::KILL.as_raw()),
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

    /// Waits (up to 60 s) for the child to exit; returns its status.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("child {} (pid {}) did not exit", self.test, self.pid());
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to exit and asserts it succeeded.
    pub fn wait_ok(&mut self) {
        let status = self.wait();
        assert!(
            status.success(),
            "child {} (pid {}) failed: {status:?} (its stderr is above)",
            self.test,
            self.pid()
        );
    }
}

impl Drop for Peer {
    /// A child still running when its test ends (a failure) is killed and reaped.
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
