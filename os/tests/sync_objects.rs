//! Named events and semaphores: across real separate processes (this test binary,
//! started again with `--exact child_...` and `SHMRING_TEST_CHILD` set; the
//! `child_*` entry points return at once in the normal suite), timeouts, counts,
//! corrupted words and headers, and the naming, permission and cleanup rules they
//! share with channels.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::ring_core::LayoutError;
use shmring::{
    ChannelBuilder, Corrupted, Error, EventBuilder, SEMAPHORE_MAX_LIMIT, SegmentBuilder,
    SemaphoreBuilder,
};

/// A bound on calls that should return long before it.
const LONG: Duration = Duration::from_secs(10);
/// The bound on "promptly": a wake-up.
const PROMPT: Duration = Duration::from_secs(2);
/// Offsets in the object layout (ARCHITECTURE.md, "Segment layouts").
const KIND_OFFSET: u64 = 12;
const VERSION_OFFSET: u64 = 8;
const SIZE_OFFSET: u64 = 16;
const MAX_OFFSET: u64 = 20;
const FLAGS_OFFSET: u64 = 24;
const WORD_OFFSET: u64 = 128;

fn child_start() -> bool {
    if !is_child() {
        return false;
    }
    child_watchdog(Duration::from_secs(60));
    true
}

/// Writes `bytes` at `offset` of the shm object `name` (through the file: the same
/// pages every mapping of it shows).
fn poke(name: &str, offset: u64, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// Waits (up to `LONG`) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LONG, "{what}: not after {LONG:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Lets `command`'s child inherit `fd` under its own number, named in `var`.
fn pass_fd(command: &mut std::process::Command, fd: i32, var: &str) {
    use std::os::unix::process::CommandExt;
    command.env(var, fd.to_string());
    // SAFETY: runs between fork and exec and calls only fcntl (async-signal-safe).
    unsafe {
        command.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// In a child: the descriptor passed in `var`.
fn inherited_fd(var: &str) -> OwnedFd {
    let fd: i32 = std::env::var(var).unwrap().parse().unwrap();
    // SAFETY: the parent passed this descriptor to us for this object; this is the
    // one place that takes it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---------------------------------------------------------------------------
// Child entry points
// ---------------------------------------------------------------------------

/// Child: opens event `NAME` (or the memfd in `SHMRING_TEST_FD` if `MEMFD` is 1),
/// takes a key, reports `READY`, waits up to `WAIT_MS` for a notification after
/// the key, and reports `WOKE` or `TIMEDOUT` (with the elapsed milliseconds).
#[test]
fn child_event_waiter() {
    if !child_start() {
        return;
    }
    let event = if param_u64("MEMFD") == 1 {
        EventBuilder::memfd()
            .from_fd(inherited_fd("SHMRING_TEST_FD"))
            .unwrap()
    } else {
        EventBuilder::shm(param("NAME")).open().unwrap()
    };
    let key = event.prepare();
    report("READY", std::process::id());
    let start = Instant::now();
    match event.wait_from_timeout(key, Duration::from_millis(param_u64("WAIT_MS"))) {
        Ok(()) => report("WOKE", start.elapsed().as_millis()),
        Err(Error::TimedOut) => report("TIMEDOUT", start.elapsed().as_millis()),
        Err(e) => panic!("wait: {e}"),
    }
}

/// Child: posts semaphore `NAME` `K` times, one every `PAUSE_US` microseconds.
#[test]
fn child_sem_poster() {
    if !child_start() {
        return;
    }
    let sem = SemaphoreBuilder::shm(param("NAME")).open().unwrap();
    let pause = Duration::from_micros(param_u64("PAUSE_US"));
    for _ in 0..param_u64("K") {
        sem.post().unwrap();
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }
    report("POSTED", param_u64("K"));
}

/// Child: takes `K` units of semaphore `NAME` (each wait bounded by 10 s), then
/// tries once more; reports `TOOK <k>` and `EXTRA <Ok|Empty|...>`.
#[test]
fn child_sem_taker() {
    if !child_start() {
        return;
    }
    let sem = SemaphoreBuilder::shm(param("NAME")).open().unwrap();
    report("READY", std::process::id());
    let k = param_u64("K");
    for i in 0..k {
        sem.wait_timeout(LONG)
            .unwrap_or_else(|e| panic!("wait {i} of {k}: {e}"));
    }
    report("TOOK", k);
    let extra = match sem.try_wait() {
        Ok(()) => "Ok".to_owned(),
        Err(Error::Empty) => "Empty".to_owned(),
        Err(e) => format!("{e:?}"),
    };
    report("EXTRA", extra);
}

/// Child: drops to nobody and opens the event `NAME` (mode 0600, root's) and the
/// semaphore `NAME` trusting uid 0; reports `EVENT` and `SEMAPHORE` results.
#[test]
fn child_open_as_nobody() {
    if !child_start() {
        return;
    }
    become_nobody();
    let name = param("NAME");
    let event = EventBuilder::shm(&name).trust_owner(0).open();
    report("EVENT", format!("{:?}", event.map(drop)));
    let sem = SemaphoreBuilder::shm(param("SEM")).trust_owner(0).open();
    report("SEMAPHORE", format!("{:?}", sem.map(drop)));
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

#[test]
fn event_waiter_in_another_process_is_woken_by_notify_one() {
    let name = unique("ev-one");
    let event = EventBuilder::shm(&name).create().unwrap();
    let mut child = Peer::spawn(
        "child_event_waiter",
        &[("NAME", &name), ("MEMFD", &0), ("WAIT_MS", &10_000)],
    );
    child.expect("READY");
    // The child is registered; give it time to go to sleep in the kernel.
    eventually("child registered", || event.waiters() == 1);
    thread::sleep(Duration::from_millis(20));
    let notified = Instant::now();
    event.notify_one();
    let (key, ms) = child.next_report(PROMPT).expect("a report");
    assert_eq!(key, "WOKE", "after {ms} ms");
    eprintln!("woken after {:?}", notified.elapsed());
    child.wait_ok();
    assert_eq!(event.waiters(), 0);
}

#[test]
fn notify_one_releases_one_sleeper_and_notify_all_the_rest() {
    let name = unique("ev-all");
    let event = EventBuilder::shm(&name).create().unwrap();
    let mut children: Vec<Peer> = (0..3)
        .map(|_| {
            Peer::spawn(
                "child_event_waiter",
                &[("NAME", &name), ("MEMFD", &0), ("WAIT_MS", &10_000)],
            )
        })
        .collect();
    for child in &mut children {
        child.expect("READY");
    }
    eventually("three waiters registered", || event.waiters() == 3);
    thread::sleep(Duration::from_millis(50));

    event.notify_one();
    thread::sleep(Duration::from_millis(200));
    let woken: Vec<usize> = (0..3)
        .filter(|&i| matches!(children[i].next_report(Duration::from_millis(1)), Some((k, _)) if k == "WOKE"))
        .collect();
    assert_eq!(woken.len(), 1, "notify_one released {woken:?}");
    assert_eq!(event.waiters(), 2);

    event.notify_all();
    for (i, child) in children.iter_mut().enumerate() {
        if !woken.contains(&i) {
            let (key, _) = child.next_report(PROMPT).expect("woken by notify_all");
            assert_eq!(key, "WOKE");
        }
        child.wait_ok();
    }
    assert_eq!(event.waiters(), 0);
}

#[test]
fn event_memfd_handed_to_a_child() {
    let event = EventBuilder::memfd().create().unwrap();
    assert_eq!(event.describe(), "memfd");
    let fd = event.fd().as_raw_fd();
    let mut child = Peer::spawn_with(
        "child_event_waiter",
        &[("NAME", &"-"), ("MEMFD", &1), ("WAIT_MS", &10_000)],
        |command| pass_fd(command, fd, "SHMRING_TEST_FD"),
    );
    child.expect("READY");
    eventually("child registered", || event.waiters() == 1);
    event.notify_all();
    assert_eq!(child.next_report(PROMPT).expect("report").0, "WOKE");
    child.wait_ok();
}

#[test]
fn event_wait_times_out_without_a_notification() {
    let name = unique("ev-timeout");
    let event = EventBuilder::shm(&name).create().unwrap();
    // In another process.
    let mut child = Peer::spawn(
        "child_event_waiter",
        &[("NAME", &name), ("MEMFD", &0), ("WAIT_MS", &100)],
    );
    child.expect("READY");
    let (key, ms) = child.next_report(LONG).expect("report");
    assert_eq!(key, "TIMEDOUT");
    let ms: u64 = ms.parse().unwrap();
    assert!((100..2_000).contains(&ms), "timed out after {ms} ms");
    child.wait_ok();

    // Here, every variant.
    let start = Instant::now();
    assert!(matches!(
        event.wait_timeout(Duration::from_millis(30)),
        Err(Error::TimedOut)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(matches!(
        event.wait_deadline(Some(Instant::now() + Duration::from_millis(10))),
        Err(Error::TimedOut)
    ));
    let key = event.prepare();
    assert!(matches!(
        event.wait_from_deadline(key, Some(Instant::now())),
        Err(Error::TimedOut)
    ));
    assert_eq!(event.waiters(), 0);
    // No deadline: waits for the notification, however long.
    thread::scope(|scope| {
        scope.spawn(|| {
            eventually("a waiter", || event.waiters() == 1);
            event.notify_all();
        });
        event.wait_deadline(None).unwrap();
    });
    let key = event.prepare();
    event.notify_all();
    event.wait_from_deadline(key, None).unwrap();
}

#[test]
fn a_notification_is_not_stored_but_a_key_sees_it() {
    let event = EventBuilder::shm(unique("ev-before")).create().unwrap();
    // Nobody waits: the notification is not stored for a later wait.
    event.notify_all();
    event.notify_one();
    assert!(matches!(
        event.wait_timeout(Duration::from_millis(20)),
        Err(Error::TimedOut)
    ));
    // A key taken before the notification sees it: no lost wake-up between a
    // caller's check and its sleep.
    let key = event.prepare();
    assert!(!event.is_notified_since(key));
    event.notify_one();
    assert!(event.is_notified_since(key));
    let start = Instant::now();
    event.wait_from(key).unwrap();
    event.wait_from_timeout(key, LONG).unwrap();
    assert!(start.elapsed() < PROMPT);
}

#[test]
fn event_threads_of_one_process_and_a_clone() {
    let event = EventBuilder::shm(unique("ev-threads")).create().unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let event = event.clone();
            let key = event.prepare();
            thread::spawn(move || event.wait_from_timeout(key, LONG))
        })
        .collect();
    eventually("four waiters", || event.waiters() == 4);
    event.notify_all();
    for w in waiters {
        w.join().unwrap().unwrap();
    }
}

// ---------------------------------------------------------------------------
// Semaphores
// ---------------------------------------------------------------------------

#[test]
fn semaphore_counts_across_processes() {
    const K: u64 = 2_000;
    let name = unique("sem-count");
    let sem = SemaphoreBuilder::shm(&name).create().unwrap();
    // The taker starts first: it sleeps on a zero count and is woken by posts made
    // in another process.
    let mut taker = Peer::spawn("child_sem_taker", &[("NAME", &name), ("K", &K)]);
    taker.expect("READY");
    let mut poster = Peer::spawn(
        "child_sem_poster",
        &[("NAME", &name), ("K", &K), ("PAUSE_US", &0)],
    );
    assert_eq!(poster.expect("POSTED"), K.to_string());
    assert_eq!(taker.expect("TOOK"), K.to_string());
    assert_eq!(taker.expect("EXTRA"), "Empty");
    poster.wait_ok();
    taker.wait_ok();
    assert_eq!(sem.value().unwrap(), 0);
    assert!(matches!(sem.try_wait(), Err(Error::Empty)));
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn semaphore_sleeper_is_woken_by_a_slow_poster() {
    let name = unique("sem-slow");
    let sem = SemaphoreBuilder::shm(&name).create().unwrap();
    let mut poster = Peer::spawn(
        "child_sem_poster",
        &[("NAME", &name), ("K", &5), ("PAUSE_US", &20_000)],
    );
    for _ in 0..5 {
        sem.wait_timeout(LONG).unwrap();
    }
    poster.expect("POSTED");
    poster.wait_ok();
    assert!(matches!(sem.try_wait(), Err(Error::Empty)));
}

#[test]
fn a_killed_waiter_takes_nothing_and_a_taken_unit_is_not_returned() {
    let name = unique("sem-kill");
    let sem = SemaphoreBuilder::shm(&name).initial(1).create().unwrap();
    // The child takes the one unit, then sleeps for a second one; we kill it there.
    let mut child = Peer::spawn("child_sem_taker", &[("NAME", &name), ("K", &2)]);
    child.expect("READY");
    eventually("child asleep on the semaphore", || {
        sem.waiters() == 1 && sem.value().unwrap() == 0
    });
    child.kill();
    // Its registration stays (it costs posters a system call), the unit it took is
    // gone (as with POSIX semaphores), and a post is not swallowed by the dead.
    assert_eq!(sem.waiters(), 1);
    assert_eq!(sem.value().unwrap(), 0);
    sem.post().unwrap();
    assert_eq!(sem.value().unwrap(), 1);
    sem.try_wait().unwrap();
    assert!(matches!(sem.try_wait(), Err(Error::Empty)));
}

#[test]
fn semaphore_try_wait_timeouts_and_value() {
    let sem = SemaphoreBuilder::shm(unique("sem-try"))
        .initial(2)
        .create()
        .unwrap();
    assert_eq!(sem.value().unwrap(), 2);
    assert_eq!(sem.max(), SEMAPHORE_MAX_LIMIT);
    sem.try_wait().unwrap();
    sem.wait().unwrap();
    assert!(matches!(sem.try_wait(), Err(Error::Empty)));
    let start = Instant::now();
    assert!(matches!(
        sem.wait_timeout(Duration::from_millis(30)),
        Err(Error::TimedOut)
    ));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(30) && waited < PROMPT,
        "{waited:?}"
    );
    assert!(matches!(
        sem.wait_deadline(Some(Instant::now())),
        Err(Error::TimedOut)
    ));
    assert_eq!(sem.waiters(), 0);
    sem.post().unwrap();
    assert_eq!(sem.value().unwrap(), 1);
    sem.wait_deadline(Some(Instant::now())).unwrap();
    // No deadline: waits for the post, however long.
    thread::scope(|scope| {
        scope.spawn(|| {
            eventually("a waiter", || sem.waiters() == 1);
            sem.post().unwrap();
        });
        sem.wait_deadline(None).unwrap();
    });
}

#[test]
fn semaphore_post_overflow_and_bad_counts() {
    let sem = SemaphoreBuilder::shm(unique("sem-max"))
        .initial(2)
        .max(2)
        .create()
        .unwrap();
    match sem.post() {
        Err(Error::CountOverflow { count, max, .. }) => assert_eq!((count, max), (3, 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(sem.value().unwrap(), 2);
    sem.try_wait().unwrap();
    sem.post().unwrap();

    for (initial, max, count, limit) in [
        (3, 2, 3, 2),
        (0, 0, 0, SEMAPHORE_MAX_LIMIT),
        (
            0,
            SEMAPHORE_MAX_LIMIT + 1,
            u64::from(SEMAPHORE_MAX_LIMIT) + 1,
            SEMAPHORE_MAX_LIMIT,
        ),
    ] {
        let name = unique("sem-bad");
        match SemaphoreBuilder::shm(&name)
            .initial(initial)
            .max(max)
            .create()
        {
            Err(Error::CountOverflow {
                count: c, max: m, ..
            }) => assert_eq!((c, m), (count, limit)),
            other => panic!("initial {initial} max {max}: {other:?}"),
        }
        assert_no_shm(&name);
    }

    // The largest maximum.
    let sem = SemaphoreBuilder::shm(unique("sem-limit"))
        .initial(SEMAPHORE_MAX_LIMIT)
        .create()
        .unwrap();
    assert!(matches!(
        sem.post(),
        Err(Error::CountOverflow {
            max: SEMAPHORE_MAX_LIMIT,
            ..
        })
    ));
}

#[test]
fn corrupted_count_is_reported_never_waited_on() {
    let name = unique("sem-corrupt");
    let sem = SemaphoreBuilder::shm(&name).max(10).create().unwrap();
    for bad in [11u32, 0x8000_0000, u32::MAX] {
        poke(&name, WORD_OFFSET, &bad.to_ne_bytes());
        let start = Instant::now();
        for result in [
            sem.value().map(drop),
            sem.try_wait(),
            sem.post(),
            sem.wait_timeout(LONG),
            sem.wait(),
        ] {
            match result {
                Err(Error::Corrupted {
                    detail: Corrupted::CountOutOfRange { found, max: 10 },
                    ..
                }) => assert_eq!(found, bad),
                other => panic!("count {bad:#x}: {other:?}"),
            }
        }
        assert!(start.elapsed() < PROMPT);
    }
    // Repaired, it works again.
    poke(&name, WORD_OFFSET, &1u32.to_ne_bytes());
    sem.try_wait().unwrap();
}

/// Maps the first 256 bytes of the shm object `name` (a hostile peer's view).
struct RawMap(*mut u8);

// SAFETY: the mapping is only used through atomic futex calls and volatile writes.
unsafe impl Send for RawMap {}

impl RawMap {
    fn new(name: &str) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(shm_path(name))
            .unwrap();
        // SAFETY: a fresh shared mapping of 256 bytes of an open file; no existing
        // memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                256,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Self(ptr.cast())
    }

    /// A spurious wake-up of every sleeper on the word at `WORD_OFFSET` (the
    /// word's value unchanged).
    fn wake_word(&self) {
        // SAFETY: the address lies within our live mapping; FUTEX_WAKE reads nothing.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.0.add(WORD_OFFSET as usize),
                libc::FUTEX_WAKE,
                i32::MAX,
            );
        }
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.0.cast(), 256) };
    }
}

/// Runs `f` while another thread wakes every sleeper on the object `name`'s word,
/// again and again, without changing it (spurious wake-ups).
fn with_spurious_wakes<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let map = RawMap::new(name);
    let waker = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut wakes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                map.wake_word();
                wakes += 1;
                thread::sleep(Duration::from_micros(200));
            }
            wakes
        })
    };
    let result = f();
    stop.store(true, Ordering::Relaxed);
    let wakes = waker.join().unwrap();
    assert!(wakes > 10, "only {wakes} spurious wake-ups");
    result
}

#[test]
fn spurious_wakes_are_not_reported_and_deadlines_hold() {
    let sem_name = unique("sem-spurious");
    let sem = SemaphoreBuilder::shm(&sem_name).create().unwrap();
    let start = Instant::now();
    let result = with_spurious_wakes(&sem_name, || sem.wait_timeout(Duration::from_millis(100)));
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < PROMPT,
        "{waited:?}"
    );
    assert_eq!(sem.waiters(), 0);

    let ev_name = unique("ev-spurious");
    let event = EventBuilder::shm(&ev_name).create().unwrap();
    let start = Instant::now();
    let result = with_spurious_wakes(&ev_name, || event.wait_timeout(Duration::from_millis(100)));
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < PROMPT,
        "{waited:?}"
    );
}

// ---------------------------------------------------------------------------
// Headers, names, permissions, cleanup
// ---------------------------------------------------------------------------

#[test]
fn headers_are_validated_on_open() {
    let name = unique("hdr");
    let _sem = SemaphoreBuilder::shm(&name)
        .max(5)
        .unlink_on_drop(true)
        .create()
        .unwrap();
    SemaphoreBuilder::shm(&name).open().unwrap();
    // The wrong kind: a semaphore opened as an event, and the reverse.
    match EventBuilder::shm(&name).open() {
        Err(Error::IncompatibleLayout {
            source:
                LayoutError::WrongKind {
                    found: 4,
                    expected: 3,
                },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let ev_name = unique("hdr-ev");
    let _event = EventBuilder::shm(&ev_name).create().unwrap();
    assert!(matches!(
        SemaphoreBuilder::shm(&ev_name).open(),
        Err(Error::IncompatibleLayout {
            source: LayoutError::WrongKind {
                found: 3,
                expected: 4
            },
            ..
        })
    ));
    // A channel is not an event: its kind word says so (a large one is refused
    // by its size first).
    let ch_name = unique("hdr-ch");
    let _channel = ChannelBuilder::shm(&ch_name).capacity(64).create().unwrap();
    assert!(matches!(
        EventBuilder::shm(&ch_name).open(),
        Err(Error::IncompatibleLayout {
            source: LayoutError::WrongKind {
                found: 1,
                expected: 3
            },
            ..
        })
    ));
    let big_name = unique("hdr-big");
    let _big = ChannelBuilder::shm(&big_name)
        .capacity(1 << 16)
        .create()
        .unwrap();
    assert!(matches!(
        EventBuilder::shm(&big_name).open(),
        Err(Error::BadSize { .. })
    ));

    type Check = fn(&Error) -> bool;
    let cases: [(u64, u32, Check); 5] = [
        (VERSION_OFFSET, 99, |e| {
            matches!(
                e,
                Error::IncompatibleLayout {
                    source: LayoutError::UnsupportedVersion { found: 99, .. },
                    ..
                }
            )
        }),
        (KIND_OFFSET, 1, |e| {
            matches!(
                e,
                Error::IncompatibleLayout {
                    source: LayoutError::WrongKind { found: 1, .. },
                    ..
                }
            )
        }),
        (SIZE_OFFSET, 512, |e| {
            matches!(
                e,
                Error::Corrupted {
                    detail: Corrupted::Header(LayoutError::HeaderMismatch {
                        field: "object_size",
                        ..
                    }),
                    ..
                }
            )
        }),
        (MAX_OFFSET, 0x8000_0000, |e| {
            matches!(
                e,
                Error::Corrupted {
                    detail: Corrupted::Header(LayoutError::HeaderMismatch {
                        field: "max_count",
                        ..
                    }),
                    ..
                }
            )
        }),
        (FLAGS_OFFSET, 1, |e| {
            matches!(
                e,
                Error::Corrupted {
                    detail: Corrupted::Header(LayoutError::HeaderMismatch { field: "flags", .. }),
                    ..
                }
            )
        }),
    ];
    let mut original = [0u8; 4];
    for (offset, value, check) in cases {
        let file = std::fs::File::open(shm_path(&name)).unwrap();
        file.read_exact_at(&mut original, offset).unwrap();
        poke(&name, offset, &value.to_ne_bytes());
        match SemaphoreBuilder::shm(&name).open() {
            Err(e) if check(&e) => {}
            other => panic!("offset {offset} = {value:#x}: {other:?}"),
        }
        poke(&name, offset, &original);
        SemaphoreBuilder::shm(&name).open().unwrap();
    }
    // Bad magic; then truncated.
    poke(&name, 0, &0x0123_4567_89ab_cdefu64.to_ne_bytes());
    assert!(matches!(
        SemaphoreBuilder::shm(&name).open(),
        Err(Error::Corrupted {
            detail: Corrupted::Header(LayoutError::BadMagic { .. }),
            ..
        })
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap()
        .set_len(100)
        .unwrap();
    assert!(matches!(
        SemaphoreBuilder::shm(&name).open(),
        Err(Error::BadSize {
            size: 100,
            expected: 256,
            ..
        })
    ));
}

#[test]
fn names_exist_missing_and_cleanup() {
    for bad in ["", "a/b", "..", "sp ace"] {
        assert!(matches!(
            EventBuilder::shm(bad).create(),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            EventBuilder::shm(bad).open(),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            SemaphoreBuilder::shm(bad).create(),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            SemaphoreBuilder::shm(bad).open(),
            Err(Error::InvalidName { .. })
        ));
    }
    assert!(matches!(
        EventBuilder::memfd().open(),
        Err(Error::InvalidName { .. })
    ));

    let name = unique("names");
    assert!(matches!(
        EventBuilder::shm(&name).open(),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        SemaphoreBuilder::shm(&name).open(),
        Err(Error::NotFound { .. })
    ));
    let event = EventBuilder::shm(&name).create().unwrap();
    assert!(matches!(
        EventBuilder::shm(&name).create(),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        SemaphoreBuilder::shm(&name).create(),
        Err(Error::AlreadyExists { .. })
    ));
    // A live object is never reclaimed.
    assert!(matches!(
        EventBuilder::shm(&name).reclaim(true).create(),
        Err(Error::AlreadyExists { .. })
    ));
    let opened = EventBuilder::shm(&name).open().unwrap();
    // Unlink on drop (the default for shm): the name goes with the creator's
    // handle; an opener keeps its mapping.
    drop(event);
    assert_no_shm(&name);
    opened.notify_all();

    // Kept, then reclaimed once no handle is alive.
    let kept = SemaphoreBuilder::shm(&name)
        .unlink_on_drop(false)
        .initial(3)
        .create()
        .unwrap();
    drop(kept);
    assert!(shm_path(&name).exists());
    assert_eq!(
        SemaphoreBuilder::shm(&name)
            .open()
            .unwrap()
            .value()
            .unwrap(),
        3
    );
    assert!(matches!(
        SemaphoreBuilder::shm(&name).create(),
        Err(Error::AlreadyExists { .. })
    ));
    let fresh = SemaphoreBuilder::shm(&name).reclaim(true).create().unwrap();
    assert_eq!(fresh.value().unwrap(), 0);
    drop(fresh);
    assert_no_shm(&name);

    // A file-backed semaphore persists its count.
    let dir = TempDir::new("sem-file");
    let path = dir.path().join("sem");
    let sem = SemaphoreBuilder::file(&path).initial(1).create().unwrap();
    sem.post().unwrap();
    drop(sem);
    assert_eq!(
        SemaphoreBuilder::file(&path)
            .open()
            .unwrap()
            .value()
            .unwrap(),
        2
    );
}

#[test]
fn modes_and_owners_are_checked() {
    let name = unique("mode");
    let loose = EventBuilder::shm(&name).mode(0o666).create().unwrap();
    match EventBuilder::shm(&name).open() {
        Err(Error::Untrusted { mode, .. }) => assert_eq!(mode, 0o666),
        other => panic!("{other:?}"),
    }
    EventBuilder::shm(&name).allow_mode(0o666).open().unwrap();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    assert!(matches!(
        EventBuilder::shm(&name)
            .allow_mode(0o666)
            .trust_owner(me.wrapping_add(1))
            .open(),
        Err(Error::Untrusted { .. })
    ));
    drop(loose);

    let sem_name = unique("mode-sem");
    let _sem = SemaphoreBuilder::shm(&sem_name)
        .mode(0o640)
        .create()
        .unwrap();
    let meta = std::fs::metadata(shm_path(&sem_name)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o640
    );
    SemaphoreBuilder::shm(&sem_name).open().unwrap();
}

#[test]
fn another_user_is_refused_by_the_mode() {
    if !root_or_skip("another_user_is_refused_by_the_mode") {
        return;
    }
    let name = unique("nobody-ev");
    let sem_name = unique("nobody-sem");
    let _event = EventBuilder::shm(&name).create().unwrap();
    let _sem = SemaphoreBuilder::shm(&sem_name).create().unwrap();
    let mut child = Peer::spawn(
        "child_open_as_nobody",
        &[("NAME", &name), ("SEM", &sem_name)],
    );
    let event = child.expect("EVENT");
    let sem = child.expect("SEMAPHORE");
    assert!(event.contains("PermissionDenied"), "{event}");
    assert!(sem.contains("PermissionDenied"), "{sem}");
    child.wait_ok();
}

#[test]
fn listed_objects_name_their_kind() {
    use shmring::segment::ObjectKind;
    let (event_name, sem_name, mpmc_name, channel_name) = (
        unique("list-ev"),
        unique("list-sem"),
        unique("list-mpmc"),
        unique("list-ch"),
    );
    let _event = EventBuilder::shm(&event_name).create().unwrap();
    let _sem = SemaphoreBuilder::shm(&sem_name).create().unwrap();
    let _mpmc = shmring::MpmcChannelBuilder::shm(&mpmc_name)
        .create()
        .unwrap();
    let _channel = ChannelBuilder::shm(&channel_name).create().unwrap();
    let listed = shmring::list_objects().unwrap();
    let kind_of = |name: &str| {
        let status = listed
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        (status.kind, status.state.is_ok())
    };
    assert_eq!(kind_of(&event_name), (Some(ObjectKind::Event), true));
    assert_eq!(kind_of(&sem_name), (Some(ObjectKind::Semaphore), true));
    assert_eq!(kind_of(&mpmc_name), (Some(ObjectKind::MpmcChannel), true));
    assert_eq!(kind_of(&channel_name), (Some(ObjectKind::Channel), true));
}
