//! Helpers shared by the integration tests: unique names, temporary
//! directories, roles, readiness; and, from `shmring-test-support` (shared with
//! the Zenoh bridge's tests), deterministic messages and child processes that
//! run one test of this binary.
//!
//! Each test file uses a part of this module only.
#![allow(dead_code)]

pub use shmring_test_support::{child::*, messages::*};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use shmring::{Error, WaitStrategy};

// ---------------------------------------------------------------------------
// Names, files, clocks
// ---------------------------------------------------------------------------

/// A channel name no other test (or test run) uses: `t-<pid>-<tag>-<n>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The file behind a named shm channel.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(format!("shmring.{name}"))
}

/// Asserts that the shm channel `name` left nothing in `/dev/shm`.
pub fn assert_no_shm(name: &str) {
    let path = shm_path(name);
    assert!(!path.exists(), "{} was left behind", path.display());
}

/// The doorbell FIFOs in `/dev/shm` of the segment `name` (data, space, and per
/// slot: `shmring-bell.<name>.<suffix>`).
pub fn bells_of(name: &str) -> Vec<PathBuf> {
    let prefix = format!("shmring-bell.{name}.");
    let mut bells: Vec<PathBuf> = std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name().to_str().is_some_and(|f| {
                        f.strip_prefix(&prefix).is_some_and(|rest| {
                            matches!(rest, "data" | "space")
                                || rest.strip_prefix("data.").is_some_and(|slot| {
                                    !slot.is_empty() && slot.bytes().all(|b| b.is_ascii_digit())
                                })
                        })
                    })
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    bells.sort();
    bells
}

/// Removes the segment `name` and its doorbells by hand: for what a killed
/// process created and could not remove.
pub fn remove_shm_with_bells(name: &str) {
    for bell in bells_of(name) {
        let _ = std::fs::remove_file(bell);
    }
    let _ = std::fs::remove_file(shm_path(name));
}

/// A directory under `std::env::temp_dir()`, removed with its contents on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("shmring-{}", unique(tag)));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process, so a
/// timestamp taken in one process can be compared with one taken in another.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Minimum, median and maximum of `samples` (sorted in place), for reports.
pub fn summary(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".to_owned();
    }
    samples.sort();
    format!(
        "n={} min={:?} median={:?} max={:?}",
        samples.len(),
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    )
}

/// A count from the environment variable `var`, else `default`.
pub fn count_from_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a count")),
        Err(_) => default,
    }
}

/// The seed of a randomised test: `SHMRING_TEST_SEED` if set, else from the clock.
/// Printed, so that a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("SHMRING_TEST_SEED") {
        Ok(v) => v.parse().expect("SHMRING_TEST_SEED is a u64"),
        Err(_) => monotonic_ns() ^ u64::from(std::process::id()) << 32,
    };
    eprintln!("{test}: seed {seed} (replay with SHMRING_TEST_SEED={seed})");
    seed
}

// ---------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------

/// Claims a role that is free or about to be: retries `RoleTaken` for up to 5 s.
///
/// The role's previous holder may be this process, whose lock description a
/// concurrently spawned child (another test's `fork`) holds a copy of until it
/// calls `exec`: a few milliseconds at most. A role that never comes free still
/// fails.
pub fn claim<T>(what: &str, f: impl FnMut() -> shmring::Result<T>) -> T {
    let what = format!("claiming {what}");
    until_unlocked(&what, |e| matches!(e, Error::RoleTaken { .. }), f)
}

/// Runs `f` until it does not fail with an error `locked` says a lock caused,
/// for up to 5 s: a lock this process released may still be held for a moment
/// by a concurrently spawned child between its `fork` and its `exec` (see
/// [`claim`]). Any other error, or a lock held past 5 s, fails.
pub fn until_unlocked<T>(
    what: &str,
    locked: impl Fn(&Error) -> bool,
    mut f: impl FnMut() -> shmring::Result<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Ok(t) => return t,
            Err(e) if locked(&e) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{what}: {e} ({e:?})"),
        }
    }
}

/// The wait strategies, with names for messages and environment variables.
pub const STRATEGIES: [(&str, WaitStrategy); 3] = [
    ("busy", WaitStrategy::BusySpin),
    (
        "spin",
        WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(50),
        },
    ),
    ("park", WaitStrategy::Park),
];

/// The strategy named `name` in [`STRATEGIES`].
pub fn strategy(name: &str) -> WaitStrategy {
    STRATEGIES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no wait strategy {name:?}"))
        .1
}

// ---------------------------------------------------------------------------
// Privileges and facilities
// ---------------------------------------------------------------------------

/// In a child: drops this process's privileges to nobody (no supplementary
/// groups, gid and uid 65534, in that order).
pub fn become_nobody() {
    become_user(65534);
}

/// In a child: drops this process's privileges to `uid` (no supplementary
/// groups, gid and uid `uid`, in that order).
pub fn become_user(uid: u32) {
    // SAFETY: plain system calls with no memory arguments (setgroups with an empty
    // list passes a null pointer and a zero count).
    let (g, gid, uid_rc) = unsafe {
        (
            libc::setgroups(0, std::ptr::null()),
            libc::setgid(uid),
            libc::setuid(uid),
        )
    };
    assert_eq!(
        (g, gid, uid_rc),
        (0, 0, 0),
        "dropping privileges: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, uid);
}

/// Whether `CI=true` is set: then a test that cannot run here fails instead of
/// skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether the test may drop privileges (we are root). Otherwise: fails under
/// `CI=true`, else prints a skip notice.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let msg = format!("{test} needs root (to drop to nobody in a child)");
    assert!(!in_ci(), "{msg}, and CI=true: run the tests as root in CI");
    eprintln!("SKIPPED: {msg}");
    false
}

/// For a facility this machine lacks (`why`): fails under `CI=true`, else prints
/// a skip notice. Returns `false` (the caller returns).
pub fn facility_missing(test: &str, why: &str) -> bool {
    let msg = format!("{test}: {why}");
    assert!(!in_ci(), "{msg}, and CI=true: CI must provide it");
    eprintln!("SKIPPED: {msg}");
    false
}

/// Rewrites the layout version word (offset 8, in the machine's byte order, as
/// every segment kind has it) of the segment behind `path` to 3, as a peer built
/// for layout version 3 would have written it, and checks that `open` refuses
/// it with an error that names both versions.
pub fn assert_version_3_refused<T: std::fmt::Debug>(
    path: &Path,
    open: impl FnOnce() -> shmring::Result<T>,
) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all_at(&3u32.to_ne_bytes(), 8).unwrap();
    let current = shmring::ring_core::LAYOUT_VERSION;
    assert_eq!(current, 4, "this test is about layout version 4 meeting 3");
    match open() {
        Err(
            e @ shmring::Error::IncompatibleLayout {
                source:
                    shmring::ring_core::LayoutError::UnsupportedVersion {
                        found: 3,
                        supported,
                    },
                ..
            },
        ) if supported == current => {
            let text = e.to_string();
            assert!(
                text.contains("version 3") && text.contains("supports 4"),
                "the error names both versions: {text}"
            );
        }
        other => panic!("a segment of layout version 3 opened: {other:?}"),
    }
}

/// Sends `count` 8-byte messages through `tx`, receiving each through `rx` at
/// once (`try_recv`, which finds it), checking each, after one warm-up message;
/// returns how many system calls this thread made for the `count` messages.
pub fn system_calls_for_messages(
    tx: &mut impl shmring::MessageSender,
    rx: &mut impl shmring::MessageReceiver,
    count: u64,
) -> u64 {
    let mut buf = [0u8; 8];
    tx.send(b"warm").unwrap();
    rx.try_recv(&mut buf).unwrap();
    let before = shmring::system_calls_on_this_thread();
    for i in 0..count {
        tx.send(&i.to_le_bytes()).unwrap();
        let n = rx.try_recv(&mut buf).unwrap();
        assert_eq!(buf[..n], i.to_le_bytes());
    }
    shmring::system_calls_on_this_thread() - before
}

// ---------------------------------------------------------------------------
// Readiness descriptors
// ---------------------------------------------------------------------------

/// Whether `fd` becomes readable (or hangs up) within `timeout`: one `poll`, as
/// an event loop would make.
pub fn readable_within(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: `pfd` is one valid pollfd for the call; `fd` is open (borrowed).
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return n > 0;
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINTR),
            "poll failed"
        );
    }
}

/// The event loop a departure must end: arms `endpoint` until it says `Ready`,
/// waiting for its descriptor to become readable between tries, for up to
/// `timeout`; whether it did. A departure may take a moment to show in this
/// test process: a child another test spawns holds a copy of the departed
/// endpoint's lock description until its `exec` (see [`claim`]), and the probe
/// says "alive" until then; the doorbell's hang-up rings again after.
pub fn ready_within<R>(
    endpoint: &mut R,
    timeout: Duration,
    fd: impl for<'a> Fn(&'a R) -> std::os::fd::BorrowedFd<'a>,
    mut arm: impl FnMut(&mut R) -> shmring::Readiness,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !readable_within(fd(endpoint), left) {
            return false;
        }
        if arm(endpoint) == shmring::Readiness::Ready {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// In a child entry point: whether to run (this process is a child), with a
/// watchdog of `limit` so that an orphaned child cannot linger.
pub fn child_start_within(limit: Duration) -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(limit);
    true
}

/// The kinds a feeder process sends on in the `Select` and async tests: an SPSC
/// channel, an MPMC channel, a strict broadcast topic, a Unix stream socket.
pub const FEED_KINDS: [&str; 4] = ["spsc", "mpmc", "topic", "unix"];

/// Where the `unix` feeder kind's socket for `name` lives.
pub fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.sock"))
}

/// In a feeder process: a sender to the `kind` endpoint `name` that
/// [`receiver_of_kind`] made (its wait strategy parks).
pub fn feeder_sender(kind: &str, name: &str) -> Box<dyn shmring::MessageSender> {
    use shmring::SegmentBuilder;
    match kind {
        "spsc" => Box::new(claim("sender", || {
            shmring::ChannelBuilder::shm(name)
                .wait_strategy(WaitStrategy::Park)
                .open()?
                .sender()
        })),
        "mpmc" => Box::new(claim("sender", || {
            shmring::MpmcChannelBuilder::shm(name).open()?.sender()
        })),
        "topic" => Box::new(claim("publisher", || {
            shmring::BroadcastBuilder::shm(name).open()?.publisher()
        })),
        "unix" => Box::new(
            shmring::transport::unix::connect(socket_path(name))
                .unwrap()
                .0,
        ),
        other => panic!("feeder kind {other}"),
    }
}

/// In a feeder process: opens the `KIND` endpoint `NAME` ([`feeder_sender`]),
/// reports READY, sends [`seq_message`]s 0 to `COUNT` − 1, reports SENT, and, if
/// `HOLD` is 1, keeps its sender until the parent releases it; then it leaves
/// (the receiver sees `Disconnected` after the last message).
pub fn feed() {
    let count = param_u64("COUNT");
    let mut tx = feeder_sender(&param("KIND"), &param("NAME"));
    report("READY", std::process::id());
    let mut buf = Vec::new();
    for seq in 0..count {
        seq_message(seq, &mut buf);
        tx.send(&buf).unwrap_or_else(|e| panic!("send {seq}: {e}"));
    }
    report("SENT", count);
    if param_u64("HOLD") == 1 {
        wait_for_parent();
    }
}

/// Makes the receiving end of `kind` named `name` (a topic strict, subscribed
/// from the oldest message), and starts its feeder with `spawn` (for `unix`
/// between bind and accept); waits for the feeder's READY. Returns the
/// receiver, what keeps its segment alive, and the feeder.
pub fn receiver_of_kind(
    kind: &str,
    name: &str,
    spawn: impl FnOnce() -> Peer,
) -> (
    Box<dyn shmring::ReceiveReadiness + Send>,
    Box<dyn std::any::Any>,
    Peer,
) {
    use shmring::broadcast::{Policy, Start};
    let (rx, guard, mut peer): (
        Box<dyn shmring::ReceiveReadiness + Send>,
        Box<dyn std::any::Any>,
        Peer,
    ) = match kind {
        "spsc" => {
            let chan = shmring::ChannelBuilder::shm(name).create().unwrap();
            (Box::new(chan.receiver().unwrap()), Box::new(chan), spawn())
        }
        "mpmc" => {
            let chan = shmring::MpmcChannelBuilder::shm(name).create().unwrap();
            (Box::new(chan.receiver().unwrap()), Box::new(chan), spawn())
        }
        "topic" => {
            let topic = shmring::BroadcastBuilder::shm(name)
                .policy(Policy::Strict)
                .create()
                .unwrap();
            let subscriber = topic.subscriber(Start::Oldest).unwrap();
            (Box::new(subscriber), Box::new(topic), spawn())
        }
        "unix" => {
            let listener = shmring::transport::unix::UnixListener::bind(socket_path(name)).unwrap();
            let peer = spawn();
            let (_, rx) = listener
                .accept_deadline(Some(Instant::now() + Duration::from_secs(60)))
                .unwrap();
            (Box::new(rx), Box::new(listener), peer)
        }
        other => panic!("feeder kind {other}"),
    };
    peer.expect("READY");
    (rx, guard, peer)
}

// ---------------------------------------------------------------------------
// Objects held by children, for the listing and cleaning tests (os and cli)
// ---------------------------------------------------------------------------

/// The object kinds by their listing names.
pub const KINDS: [&str; 7] = [
    "spsc",
    "mpmc",
    "topic",
    "event",
    "semaphore",
    "value",
    "mutex",
];

/// Creates an object of `kind` (one of [`KINDS`]) named `name` and holds every
/// role of it: SPSC sender and receiver; an MPMC sender and receiver; a gated
/// topic's publisher and one subscriber, one message sent; an event; a
/// semaphore (2 of 5); a published value's writer, one version written; a
/// shared mutex's handle (its slot) holding the lock. Dropping the box releases
/// it all (the mutex's slot; its lock word keeps the released slot's id).
pub fn hold_object(kind: &str, name: &str) -> Box<dyn std::any::Any> {
    use shmring::broadcast::{BroadcastBuilder, Policy, Start};
    use shmring::channel::ChannelBuilder;
    use shmring::event::EventBuilder;
    use shmring::mpmc::MpmcChannelBuilder;
    use shmring::semaphore::SemaphoreBuilder;
    match kind {
        "spsc" => {
            let channel = ChannelBuilder::shm(name).create().unwrap();
            let tx = channel.sender().unwrap();
            let rx = channel.receiver().unwrap();
            Box::new((channel, tx, rx))
        }
        "mpmc" => {
            let channel = MpmcChannelBuilder::shm(name).create().unwrap();
            let tx = channel.sender().unwrap();
            let rx = channel.receiver().unwrap();
            Box::new((channel, tx, rx))
        }
        "topic" => {
            let topic = BroadcastBuilder::shm(name)
                .policy(Policy::Gated)
                .create()
                .unwrap();
            let mut tx = topic.publisher().unwrap();
            let rx = topic.subscriber(Start::Oldest).unwrap();
            tx.send(b"unread").unwrap();
            Box::new((topic, tx, rx))
        }
        "event" => Box::new(EventBuilder::shm(name).create().unwrap()),
        "semaphore" => Box::new(
            SemaphoreBuilder::shm(name)
                .initial(2)
                .max(5)
                .create()
                .unwrap(),
        ),
        "value" => {
            let value = shmring::state::SharedValueBuilder::shm(name)
                .create_bytes(64)
                .unwrap();
            let mut writer = value.writer().unwrap();
            writer.write_bytes(&[7; 64]).unwrap();
            Box::new((value, writer))
        }
        "mutex" => {
            let mutex = shmring::state::SharedMutexBuilder::shm(name)
                .create_bytes(16)
                .unwrap();
            // The guard borrows the handle: it is forgotten (the lock stays
            // held until the handle drops, then reads as its holder gone).
            std::mem::forget(mutex.lock().unwrap());
            Box::new(mutex)
        }
        other => panic!("unknown kind {other}"),
    }
}

/// In a child (a test named `child_holder` that calls only this): holds
/// [`hold_object`] of kind `KIND` named `NAME`, reports READY with its pid, and
/// waits for the parent (or to be killed).
pub fn hold_object_child() {
    if !child_start_within(Duration::from_secs(120)) {
        return;
    }
    let held = hold_object(&param("KIND"), &param("NAME"));
    report("READY", std::process::id());
    wait_for_parent();
    drop(held);
}

/// Spawns this binary's `child_holder` test ([`hold_object_child`]) on an object
/// of `kind` named `name`; the child and its pid, once it holds the object.
pub fn spawn_holder(kind: &str, name: &str) -> (Peer, u32) {
    let mut child = Peer::spawn("child_holder", &[("KIND", &kind), ("NAME", &name)]);
    let pid = child.expect("READY").parse().unwrap();
    (child, pid)
}

/// In a child: attaches to the SPSC channel `name` over and over until it is
/// gone (or 30 s), each time checking, while it holds the handle, that the name
/// still refers to a file, and pausing `gap` after each release (a cleaner that
/// lists before it locks needs a free moment at both). Reports READY, ATTACHED at
/// the first attachment, and
/// DONE with "<attachments> <removals seen while holding one>", then waits for
/// the parent.
pub fn attach_until_gone(name: &str, gap: Duration) {
    let path = shm_path(name);
    report("READY", std::process::id());
    let (mut attached, mut violations) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match shmring::channel::ChannelBuilder::shm(name).open() {
            Ok(channel) => {
                if attached == 0 {
                    report("ATTACHED", 1);
                }
                attached += 1;
                for _ in 0..2 {
                    if !path.exists() {
                        violations += 1;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                drop(channel);
                std::thread::sleep(gap);
            }
            Err(Error::NotFound { .. }) => break,
            Err(e) => panic!("attach: {e}"),
        }
    }
    report("DONE", format!("{attached} {violations}"));
    wait_for_parent();
}

/// In a child: scribbles random words (`word_len` bytes: 4 or 8, aligned) over
/// the segment file `PATH` past its header line (`pwrite`, as any process that
/// can open it could), each word `pick`ed from the seeded generator (`SEED`),
/// until the parent closes its input; reports READY first and WRITES at the end.
pub fn scribble_until_released(word_len: u64, mut pick: impl FnMut(&mut XorShift) -> u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(param("PATH"))
        .unwrap();
    let len = file.metadata().unwrap().len();
    let mut rng = XorShift::new(param_u64("SEED"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    thread::spawn(move || {
        wait_for_parent();
        s.store(true, Ordering::Relaxed);
    });
    report("READY", std::process::id());
    let mut writes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let at = 128 + word_len * rng.below((len - 128) / word_len);
        let word = pick(&mut rng).to_ne_bytes();
        file.write_all_at(&word[..word_len as usize], at).unwrap();
        writes += 1;
    }
    report("WRITES", writes);
}
