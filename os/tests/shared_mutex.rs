//! A shared mutex (`SharedMutex`, the robust lock) across real processes (this
//! test binary started again with `--exact child_...` and `SHMRING_TEST_CHILD`
//! set; the `child_*` entry points return at once in the normal suite).
//!
//! - the bank balance: four processes each add 1 to a shared `u64` through the
//!   lock `ADDS` times, all at once: the final balance is exact (a lock that let
//!   two holders in loses additions);
//! - the holder SIGKILLed inside its critical section, `KILLS` times, a new
//!   holder process each time, with this process parked on the lock: the locker
//!   always gets `OwnerDied`, within `PEER_DEATH_BOUND` (plus slack) of the
//!   kill and with a median well under the periodic probe's (the holder's death
//!   bell wakes it), never hangs, and the inconsistent mark stays (every later locker,
//!   in either process, is told) until a holder calls `mark_consistent`;
//! - a hostile process scribbling the lock line, the slot table and the value:
//!   every call returns by its deadline with a guard, an error or a garbage
//!   value; nothing panics;
//! - the API's edges in one process (slots full naming the count, types and
//!   sizes checked, `try_lock` and a timed lock against a live holder, a
//!   detached guard taken back).
//!
//! Sizes: the default suite adds `ADDS` per process and kills `KILLS` holders;
//! the `#[ignore]`d runs (`cargo test -p shmring --test shared_mutex --
//! --ignored`) add `ADDS_LONG` and kill `KILLS_LONG`; `SHMRING_MUTEX_ADDS` and
//! `SHMRING_MUTEX_KILLS` set them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmring::channel::PEER_DEATH_BOUND;
use shmring::segment::ObjectState;
use shmring::state::{LockError, SharedMutex, SharedMutexBuilder};
use shmring::{Error, SegmentBuilder, inspect};

/// Additions per process in the default suite, and in the `#[ignore]`d run.
const ADDS: u64 = 200_000;
const ADDS_LONG: u64 = 1_000_000;
/// Processes adding.
const BANKERS: u64 = 4;
/// Holders killed in their critical section in the default suite, and in the
/// `#[ignore]`d run.
const KILLS: u64 = 200;
const KILLS_LONG: u64 = 1000;
/// What a death may take beyond `PEER_DEATH_BOUND` to be seen: the kernel's
/// teardown of the killed process (its locks go last) and scheduling on a
/// loaded machine.
const DEATH_SLACK: Duration = Duration::from_millis(400);
/// What a call may take beyond its deadline (scheduling on a loaded machine).
const DEADLINE_SLACK: Duration = Duration::from_millis(300);

/// Taken by the tests that keep processes spinning (the bankers, the
/// scribbler) and by the kill test, so that the kill test's latencies are the
/// death bell's, not the CPU time the other tests' processes take from it on a
/// two-core machine.
static SPINNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`SPINNING`] (a test that panicked holding it poisons nothing).
fn spinning() -> std::sync::MutexGuard<'static, ()> {
    SPINNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn child_start() -> bool {
    child_start_within(Duration::from_secs(1200))
}

/// Child: adds 1 to the balance of mutex `NAME` `ADDS` times, each under the
/// lock, the read and the write apart (a second holder in between would lose
/// an addition). Reports READY, then spins until `START_NS` (every banker
/// starts at once; it reports LATE if it arrived after it); reports DONE with
/// how many times it found the lock held.
#[test]
fn child_banker() {
    if !child_start() {
        return;
    }
    let balance = SharedMutexBuilder::shm(param("NAME"))
        .open::<u64>()
        .unwrap();
    let adds = param_u64("ADDS");
    let start = param_u64("START_NS");
    report(
        if monotonic_ns() < start {
            "READY"
        } else {
            "LATE"
        },
        0,
    );
    while monotonic_ns() < start {
        std::hint::spin_loop();
    }
    let mut contended = 0u64;
    for _ in 0..adds {
        let mut guard = match balance.try_lock() {
            Ok(guard) => guard,
            Err(LockError::WouldBlock { .. }) => {
                contended += 1;
                balance.lock().expect("no holder dies here")
            }
            Err(e) => panic!("try_lock: {e}"),
        };
        let seen = *guard;
        std::hint::black_box(&mut *guard);
        *guard = seen + 1;
        drop(guard);
        // Some work outside the lock: the bankers' runs span several time
        // slices and overlap even on a loaded machine.
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
    report("DONE", contended);
    wait_for_parent();
}

fn bank_balance(adds: u64) {
    let _spinning = spinning();
    let name = unique("mutex-bank");
    let balance = SharedMutexBuilder::shm(&name).create::<u64>().unwrap();
    // Late enough for every banker to be spinning (each says so).
    let start = monotonic_ns() + 2_000_000_000;
    let mut bankers: Vec<Peer> = (0..BANKERS)
        .map(|_| {
            Peer::spawn(
                "child_banker",
                &[("NAME", &name), ("ADDS", &adds), ("START_NS", &start)],
            )
        })
        .collect();
    for b in &mut bankers {
        b.expect("READY");
    }
    let started = Instant::now();
    let mut contended = 0u64;
    for b in &mut bankers {
        let done = b.next_report(Duration::from_secs(1200));
        let Some((key, value)) = done else {
            panic!("a banker ended without DONE")
        };
        assert_eq!(key, "DONE");
        contended += value.parse::<u64>().unwrap();
        b.release();
        b.wait_ok();
    }
    let guard = balance.lock().expect("nobody died");
    eprintln!(
        "{BANKERS} processes × {adds} additions in {:?}, {contended} found the lock held",
        started.elapsed()
    );
    assert_eq!(*guard, BANKERS * adds, "additions lost");
    assert!(contended > 0, "the bankers never contended: nothing tested");
}

/// Four processes add 1 each `ADDS` times through the lock, all at once: the
/// balance is exactly their sum.
#[test]
fn four_processes_adding_through_the_lock_keep_the_balance_exact() {
    bank_balance(count_from_env("SHMRING_MUTEX_ADDS", ADDS));
}

/// As the default run, with 10^6 additions per process.
#[test]
#[ignore = "long run: 4 × 10^6 additions"]
fn four_processes_adding_through_the_lock_keep_the_balance_exact_long() {
    bank_balance(count_from_env("SHMRING_MUTEX_ADDS", ADDS_LONG));
}

/// The value of the kill test: `[k, k]` when whole; a holder writes `k` into
/// the first word, then loops writing the second, and is killed there.
type Pair = [u64; 2];

/// Child: locks mutex `NAME` (reporting GOT `clean` or `died`), writes `[K, 0]`
/// (the first half of an update), reports LOCKED and stays in its critical
/// section, writing, until it is killed.
#[test]
fn child_holder() {
    if !child_start() {
        return;
    }
    let pair = SharedMutexBuilder::shm(param("NAME"))
        .open::<Pair>()
        .unwrap();
    let k = param_u64("K");
    let (mut guard, got) = match pair.lock_timeout(Duration::from_secs(30)) {
        Ok(guard) => (guard, "clean"),
        Err(LockError::OwnerDied(guard)) => (guard, "died"),
        Err(e) => panic!("lock: {e}"),
    };
    report("GOT", got);
    guard[0] = k;
    guard[1] = 0;
    report("LOCKED", k);
    let mut n = 0u64;
    loop {
        n = n.wrapping_add(1);
        guard[1] = std::hint::black_box(n);
    }
}

/// Whether the lock word of mutex `name` has its sleepers' bit set.
fn sleeper_marked(name: &str) -> bool {
    match inspect(name).map(|s| s.state) {
        Ok(Ok(ObjectState::SharedMutex(m))) => m.waiters,
        other => panic!("{name} is a mutex: {other:?}"),
    }
}

fn holders_killed_in_their_critical_section(kills: u64) {
    let _spinning = spinning();
    let name = unique("mutex-kill");
    let mut pair = SharedMutexBuilder::shm(&name).create::<Pair>().unwrap();
    let mut rng = XorShift::new(seed("mutex-kill"));
    // The mark left by the previous round: whether the next holder must be told.
    let mut marked = false;
    let mut latencies = Vec::new();
    for k in 1..=kills {
        let mut holder = Peer::spawn("child_holder", &[("NAME", &name), ("K", &k)]);
        let expected = if marked { "died" } else { "clean" };
        assert_eq!(holder.expect("GOT"), expected, "round {k}: the mark");
        assert_eq!(holder.expect("LOCKED"), k.to_string());
        // Park a locker of this process on the lock, then kill the holder.
        let locker = std::thread::scope(|scope| {
            let pair = &mut pair;
            let parked = scope.spawn(move || {
                let got = pair.lock_timeout(Duration::from_secs(20));
                let returned = Instant::now();
                let outcome = match got {
                    Err(LockError::OwnerDied(mut guard)) => {
                        let taken_from = guard.taken_from();
                        let half = *guard;
                        // Every other round repairs and marks; the others leave
                        // the mark for the next holder.
                        if k % 2 == 0 {
                            guard[1] = guard[0];
                            guard.mark_consistent().unwrap();
                        }
                        Ok((taken_from, half))
                    }
                    Ok(_) => Err("a clean guard after the holder died".to_owned()),
                    Err(e) => Err(format!("{e}")),
                };
                (outcome, returned)
            });
            // Parked for sure: the lock word shows a sleeper (a locker marks it
            // after probing the holder and watching its death bell, just before
            // it sleeps), then a random moment later.
            let parked_by = Instant::now() + Duration::from_secs(10);
            while !sleeper_marked(&name) {
                assert!(
                    Instant::now() < parked_by,
                    "round {k}: the locker never parked"
                );
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_micros(rng.below(5000)));
            let killed = holder.kill_now();
            let (outcome, returned) = parked.join().unwrap();
            (outcome, returned.saturating_duration_since(killed))
        });
        holder.wait();
        let (outcome, after_kill) = locker;
        let (taken_from, half) = outcome.unwrap_or_else(|e| panic!("round {k}: {e}"));
        assert!(taken_from.is_some(), "round {k}: not taken from the dead");
        assert_eq!(half[0], k, "round {k}: the dead holder's write not seen");
        assert!(
            after_kill <= PEER_DEATH_BOUND + DEATH_SLACK,
            "round {k}: the death took {after_kill:?} to be seen"
        );
        latencies.push(after_kill);
        marked = k % 2 == 1;
        assert_eq!(pair.is_inconsistent(), marked, "round {k}: the mark");
        // This process is told too, as long as the mark stays.
        match pair.try_lock() {
            Ok(guard) => assert!(!marked, "round {k}: clean while marked ({guard:?})"),
            Err(LockError::OwnerDied(guard)) => {
                assert!(marked, "round {k}: OwnerDied with no mark");
                assert_eq!(guard.taken_from(), None, "nobody died this time");
            }
            Err(e) => panic!("round {k}: try_lock: {e}"),
        }
    }
    assert_eq!(pair.deaths(), kills as u32);
    // The listing says the same, and names the dead holders' slots as free.
    let Ok(ObjectState::SharedMutex(listed)) = inspect(&name).unwrap().state else {
        panic!("{name} is a mutex")
    };
    assert_eq!((listed.deaths, listed.inconsistent), (kills as u32, marked));
    assert_eq!(listed.locked_by, None);
    assert!(
        listed
            .slots
            .iter()
            .all(|s| s.holder.live == (s.slot == pair.slot()))
    );
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "{kills} holders killed in their critical section: each death seen by the \
         parked locker in {median:?} (median), {:?} on average, {:?} at worst",
        latencies.iter().sum::<Duration>() / kills as u32,
        latencies[latencies.len() - 1],
    );
    // The death bell's claim, loosely (as the channels' in readiness.rs): the
    // kill comes at a random phase of the periodic probe, which alone gives a
    // median near half the interval; the hang-up gives well under a
    // millisecond, and a quarter of the interval leaves room for a loaded
    // machine.
    let bound = shmring::channel::LIVENESS_INTERVAL / 4;
    assert!(
        median < bound,
        "median kill -> OwnerDied {median:?}, not under {bound:?}: the holder's death \
         bell did not wake the parked locker"
    );
}

/// A holder process SIGKILLed in its critical section, `KILLS` times, a new one
/// each round, with a locker of this process parked on the lock: the locker gets
/// `OwnerDied` every time, with the dead holder's half-update visible, within
/// `PEER_DEATH_BOUND` plus slack; the inconsistent mark stays until
/// `mark_consistent` (the next holder process, and this process's `try_lock`,
/// are told while it stays, and not after).
#[test]
fn a_holder_killed_in_its_critical_section_gives_the_next_locker_owner_died() {
    holders_killed_in_their_critical_section(count_from_env("SHMRING_MUTEX_KILLS", KILLS));
}

/// As the default run, with `KILLS_LONG` kills.
#[test]
#[ignore = "long run: 1000 holders killed"]
fn a_holder_killed_in_its_critical_section_gives_the_next_locker_owner_died_long() {
    holders_killed_in_their_critical_section(count_from_env("SHMRING_MUTEX_KILLS", KILLS_LONG));
}

/// Child: scribbles random words over the lock line, the slot table and the
/// value of the segment file `PATH` (`pwrite`, as any process that can open it
/// could) until the parent closes its input.
#[test]
fn child_scribbler() {
    if !child_start() {
        return;
    }
    scribble_until_released(4, |rng| {
        u64::from(match rng.below(6) {
            0 => 0,
            1 => rng.next_u64() as u32 | 0x8000_0000, // WAITERS and any owner
            2 => (rng.below(4) as u32) << 16 | rng.below(4) as u32, // a plausible id
            3 => rng.below(3) as u32,
            _ => rng.next_u64() as u32,
        })
    });
}

/// Asserts that a call that started at `started` with `deadline` returned by it
/// (plus slack).
fn by_deadline(started: Instant, deadline: Instant, what: &str) {
    let now = Instant::now();
    assert!(
        now <= deadline + DEADLINE_SLACK,
        "{what} returned {:?} after its deadline ({:?} in all)",
        now - deadline,
        now - started
    );
}

/// A hostile process scribbles the lock line, the slot table and the value
/// while this process opens, locks (timed and `try_lock`), changes the value,
/// marks it consistent and unlocks, in two threads with a handle each: every
/// call returns by its deadline with a guard, an allowed error or a garbage
/// value, and nothing panics.
#[test]
fn a_hostile_scribbler_costs_errors_or_garbage_and_every_lock_ends_by_its_deadline() {
    let _spinning = spinning();
    let name = unique("mutex-hostile");
    let _creator = SharedMutexBuilder::shm(&name)
        .slots(4)
        .asymmetric_fences(false)
        .create::<[u64; 4]>()
        .unwrap();
    let seed = seed("mutex-hostile");
    let mut scribbler = Peer::spawn(
        "child_scribbler",
        &[("PATH", &shm_path(&name).display()), ("SEED", &seed)],
    );
    scribbler.expect("READY");
    let lockers: Vec<_> = (0..2)
        .map(|t| {
            let name = name.clone();
            std::thread::spawn(move || {
                let (mut guards, mut errors, mut opens) = (0u64, 0u64, 0u64);
                let end = Instant::now() + Duration::from_secs(2);
                while Instant::now() < end {
                    // Open afresh: the table may be scribbled full.
                    let started = Instant::now();
                    let mutex = match SharedMutexBuilder::shm(&name).open::<[u64; 4]>() {
                        Ok(mutex) => mutex,
                        Err(Error::SlotsFull { slots: 4, .. }) => {
                            errors += 1;
                            continue;
                        }
                        Err(e) => panic!("open: {e}"),
                    };
                    by_deadline(started, started, "open");
                    opens += 1;
                    for round in 0..20u64 {
                        let started = Instant::now();
                        let deadline = started + Duration::from_millis(3);
                        let got = if (round + t) % 2 == 0 {
                            mutex.lock_deadline(Some(deadline))
                        } else {
                            mutex.try_lock()
                        };
                        by_deadline(started, deadline, "a lock");
                        let mut guard = match got {
                            Ok(guard) => guard,
                            Err(LockError::OwnerDied(guard)) => guard,
                            Err(LockError::TimedOut { .. } | LockError::WouldBlock { .. }) => {
                                errors += 1;
                                continue;
                            }
                            Err(LockError::AlreadyHeld) => panic!("no guard of ours lives"),
                        };
                        guards += 1;
                        // Garbage in, garbage out: any words are a [u64; 4].
                        guard[0] = guard[0].wrapping_add(1);
                        guard[3] = guard[1] ^ guard[2];
                        match guard.mark_consistent() {
                            Ok(()) | Err(Error::Corrupted { .. }) => {}
                            Err(e) => panic!("mark_consistent: {e}"),
                        }
                        match guard.unlock() {
                            Ok(()) | Err(Error::Corrupted { .. }) => {}
                            Err(e) => panic!("unlock: {e}"),
                        }
                    }
                }
                (guards, errors, opens)
            })
        })
        .collect();
    let mut total = (0, 0, 0);
    for l in lockers {
        let (g, e, o) = l.join().unwrap();
        total = (total.0 + g, total.1 + e, total.2 + o);
    }
    scribbler.release();
    let writes: u64 = scribbler.expect("WRITES").parse().unwrap();
    scribbler.wait_ok();
    eprintln!(
        "{writes} hostile writes: {} guards, {} errors, {} opens",
        total.0, total.1, total.2
    );
    assert!(writes > 0 && total.0 > 0 && total.2 > 0);
}

/// The API's edges in one process: slots full naming the count (and free again
/// once a handle drops), typed opens of another size or type refused naming the
/// field, bytes and typed handles agree, `try_lock` against a live holder is
/// `WouldBlock` and a timed lock `TimedOut` at its deadline, `open_or_create`
/// compares the slots.
#[test]
fn slots_types_and_a_live_holder() {
    let name = unique("mutex-api");
    let a = SharedMutexBuilder::shm(&name)
        .slots(2)
        .create::<[u64; 2]>()
        .unwrap();
    let b = SharedMutexBuilder::shm(&name).open::<[u64; 2]>().unwrap();
    assert_eq!((a.slot(), b.slot(), a.slots()), (0, 1, 2));
    assert!(matches!(
        SharedMutexBuilder::shm(&name).open_bytes(),
        Err(Error::SlotsFull { slots: 2, .. })
    ));
    {
        let mut guard = a.lock().unwrap();
        assert!(matches!(a.try_lock(), Err(LockError::AlreadyHeld)));
        assert!(matches!(a.lock(), Err(LockError::AlreadyHeld)));
        guard[0] = 7;
        guard[1] = 9;
        assert!(matches!(b.try_lock(), Err(LockError::WouldBlock { .. })));
        let started = Instant::now();
        let timeout = Duration::from_millis(60);
        assert!(matches!(
            b.lock_timeout(timeout),
            Err(LockError::TimedOut { .. })
        ));
        let took = started.elapsed();
        assert!(
            took >= timeout && took < timeout + DEADLINE_SLACK,
            "{took:?}"
        );
    }
    drop(b);
    let bytes = SharedMutexBuilder::shm(&name).open_bytes().unwrap();
    assert_eq!(bytes.slot(), 1, "the dropped handle's slot is free again");
    {
        let guard = bytes.try_lock().unwrap();
        assert_eq!(guard[..8], 7u64.to_ne_bytes());
        assert_eq!(guard.len(), 16);
    }
    drop(bytes);
    assert!(matches!(
        SharedMutexBuilder::shm(&name).open::<[u64; 3]>(),
        Err(Error::Incompatible {
            field: "value_size",
            requested: 24,
            found: 16,
            ..
        })
    ));
    assert!(matches!(
        SharedMutexBuilder::shm(&name).open::<[i64; 2]>(),
        Err(Error::Incompatible {
            field: "type_tag",
            ..
        })
    ));
    assert!(matches!(
        SharedMutexBuilder::shm(&name).open_or_create::<[u64; 2]>(),
        Err(Error::Incompatible {
            field: "slots",
            requested: 16,
            found: 2,
            ..
        })
    ));
    assert!(matches!(
        SharedMutexBuilder::shm(unique("mutex-slots"))
            .slots(65)
            .create_bytes(8),
        Err(Error::InvalidMutexSlots { slots: 65, max: 64 })
    ));
    assert!(matches!(
        SharedMutexBuilder::memfd().create_bytes(0),
        Err(Error::ValueSize { len: 0, .. })
    ));
    assert!(!a.is_inconsistent());
    assert_eq!(a.deaths(), 0);
    // Created without the asymmetric fences' flag: the lock has no fence pair.
    let Ok(ObjectState::SharedMutex(listed)) = inspect(&name).unwrap().state else {
        panic!("{name} is a mutex")
    };
    assert_eq!(listed.header.info.flags, 0);
    let memfd = SharedMutexBuilder::memfd().create::<u64>().unwrap();
    let fd = memfd.fd().try_clone_to_owned().unwrap();
    let other: SharedMutex<u64> = SharedMutexBuilder::memfd()
        .from_fd(fd)
        .unwrap()
        .typed()
        .unwrap();
    *other.lock().unwrap() = 3;
    drop(other);
    assert_eq!(*memfd.lock().unwrap(), 3);
    drop(a.lock().unwrap());
}

/// A detached guard (`SharedMutexGuard::detach`): the handle keeps the lock
/// (its own lock calls are `AlreadyHeld`, another handle's `WouldBlock`),
/// `reattach` gives the one guard back (then `None`: never two guards), its
/// writes stay; dropping a handle with its lock detached leaves the lock to be
/// taken over as from a dead holder.
#[test]
fn detached_guard_keeps_the_lock_until_reattached() {
    let name = unique("mutex-detach");
    let a = SharedMutexBuilder::shm(&name).create::<u64>().unwrap();
    let b = SharedMutexBuilder::shm(&name).open::<u64>().unwrap();
    assert!(a.reattach().is_none(), "no lock detached yet");
    let mut guard = a.lock().unwrap();
    *guard = 41;
    guard.detach();
    assert!(matches!(a.try_lock(), Err(LockError::AlreadyHeld)));
    assert!(matches!(b.try_lock(), Err(LockError::WouldBlock { .. })));
    let mut guard = a.reattach().expect("the detached lock");
    assert!(a.reattach().is_none(), "one guard at a time");
    assert_eq!(guard.taken_from(), None);
    *guard += 1;
    guard.unlock().unwrap();
    assert!(a.reattach().is_none(), "unlocked");
    assert_eq!(*b.try_lock().unwrap(), 42);

    // Dropped with the lock detached: taken over as from a dead holder.
    let c = SharedMutexBuilder::shm(&name).open::<u64>().unwrap();
    c.lock().unwrap().detach();
    drop(c);
    match b.lock_timeout(PEER_DEATH_BOUND + DEADLINE_SLACK) {
        Err(LockError::OwnerDied(mut guard)) => {
            assert_eq!(*guard, 42);
            guard.mark_consistent().unwrap();
        }
        other => panic!("{other:?}"),
    }
    assert!(b.try_lock().is_ok());
}
