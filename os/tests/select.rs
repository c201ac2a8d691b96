//! `Select`: one wait over many endpoints of different kinds, plain descriptors
//! and timers, across real processes: every message once and in order from four
//! feeders of four kinds plus a ticking timer; SIGKILL of a feeder wakes a wait
//! and the source says `Disconnected` within the liveness bound; senders,
//! descriptors, timers, removal and the errors in one process.

mod common;

use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use shmring::{
    ChannelBuilder, Error, Interest, ReceiveReadiness, Select, TryRecvError, TrySendError,
};

/// Messages per feeder in the default run.
const MESSAGES: u64 = 5_000;
const LONG: Duration = Duration::from_secs(30);
/// The bound on `Disconnected` after a SIGKILL (step 3's: the doorbell hangs up
/// at once; a polled endpoint within `LIVENESS_INTERVAL`).
const PROMPT: Duration = Duration::from_secs(2);

fn child_start() -> bool {
    child_start_within(Duration::from_secs(120))
}

/// Child: opens `KIND` endpoint `NAME` (a channel, an MPMC channel, a topic's
/// publisher, or a connection to a Unix socket), reports READY, sends seq
/// messages `0..COUNT` with blocking sends, reports SENT, and if `HOLD` is 1
/// waits to be killed.
#[test]
fn child_feeder() {
    if !child_start() {
        return;
    }
    feed();
}

/// The receiving ends of the four kinds, made by the parent, with what keeps
/// their segments alive, and their feeders.
struct Receivers {
    all: Vec<Box<dyn ReceiveReadiness + Send>>,
    _guards: Vec<Box<dyn std::any::Any>>,
    feeders: Vec<Peer>,
}

/// Creates one endpoint of each kind and spawns a feeder for each, sending
/// `count` messages (and holding, if `hold`), each READY.
fn receivers_with_feeders(tag: &str, count: u64, hold: bool) -> Receivers {
    let name = unique(tag);
    let mut r = Receivers {
        all: Vec::new(),
        _guards: Vec::new(),
        feeders: Vec::new(),
    };
    for kind in FEED_KINDS {
        let name = format!("{name}-{kind}");
        let (rx, guard, feeder) = receiver_of_kind(kind, &name, || {
            Peer::spawn(
                "child_feeder",
                &[
                    ("KIND", &kind),
                    ("NAME", &name),
                    ("COUNT", &count),
                    ("HOLD", &u8::from(hold)),
                ],
            )
        });
        r.all.push(rx);
        r._guards.push(guard);
        r.feeders.push(feeder);
    }
    r
}

/// Four feeders of four kinds and a timer ticking every 5 ms: every message
/// comes once and in order from each, each source ends `Disconnected` once its
/// feeder exits, and the timer fires meanwhile.
#[test]
fn a_select_over_four_kinds_fed_by_four_processes_and_a_timer_gets_every_message_once() {
    let count = count_from_env("SHMRING_SELECT_MESSAGES", MESSAGES);
    let mut r = receivers_with_feeders("select-four", count, false);
    let mut select = Select::new().unwrap();
    let mut sources = Vec::new();
    for rx in &mut r.all {
        sources.push(select.recv(&mut **rx).unwrap());
    }
    let tick_every = Duration::from_millis(5);
    let tick = select.timer_after(tick_every);
    let mut next = vec![0u64; sources.len()];
    let mut done = vec![false; sources.len()];
    let (mut ticks, mut spurious) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + LONG;
    while done.iter().any(|d| !d) {
        let index = select.ready_deadline(Some(deadline)).unwrap();
        if index == tick {
            ticks += 1;
            select.reset_timer(tick, Instant::now() + tick_every);
            continue;
        }
        let which = sources.iter().position(|&s| s == index).unwrap();
        let rx = select.receiver(index).unwrap();
        let mut got_one = false;
        loop {
            match rx.try_recv(&mut buf) {
                Ok(len) => {
                    let seq = parse_seq(&buf[..len]).unwrap();
                    assert_eq!(seq, next[which], "{}: out of order", FEED_KINDS[which]);
                    next[which] += 1;
                    got_one = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    assert_eq!(
                        next[which], count,
                        "{}: disconnected early",
                        FEED_KINDS[which]
                    );
                    done[which] = true;
                    select.remove(index);
                    break;
                }
                Err(e) => panic!("{}: {e}", FEED_KINDS[which]),
            }
        }
        if !got_one && !done[which] {
            spurious += 1;
        }
    }
    for feeder in &mut r.feeders {
        feeder.wait_ok();
    }
    eprintln!("{count} messages from each of 4 kinds; {ticks} ticks, {spurious} empty wake-ups");
    assert!(ticks > 0, "the timer never fired");
}

/// A feeder of each kind that sends nothing and is SIGKILLed while the parent
/// waits in a `Select`: the wait wakes and the source says `Disconnected`
/// within `PROMPT` of the kill.
#[test]
fn sigkill_of_a_feeder_wakes_a_select_with_disconnected() {
    let r = receivers_with_feeders("select-kill", 0, true);
    let Receivers {
        mut all, feeders, ..
    } = r;
    for (which, (rx, feeder)) in all.iter_mut().zip(&feeders).enumerate() {
        let mut select = Select::new().unwrap();
        let index = select.recv(&mut **rx).unwrap();
        let pid = feeder.pid();
        thread::scope(|s| {
            let killer = s.spawn(move || {
                thread::sleep(Duration::from_millis(20));
                // SAFETY: kill(2) on our own child's pid; it is not reaped yet.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
                Instant::now()
            });
            let mut buf = [0u8; 64];
            loop {
                assert_eq!(select.ready_timeout(LONG).unwrap(), index);
                match select.receiver(index).unwrap().try_recv(&mut buf) {
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) => {}
                    other => panic!("{}: {other:?}", FEED_KINDS[which]),
                }
            }
            let disconnected_at = Instant::now();
            let killed_at = killer.join().unwrap();
            assert!(
                disconnected_at - killed_at < PROMPT,
                "{}: Disconnected {:?} after the kill",
                FEED_KINDS[which],
                disconnected_at - killed_at
            );
        });
    }
    for mut feeder in feeders {
        let _ = feeder.wait();
    }
}

/// In one process: a sender waits for room, a pipe for a byte, a timer for
/// its instant; each becomes ready when (and only when) its condition holds; a
/// descriptor added twice is watched twice; removal stops a source.
#[test]
fn senders_descriptors_and_timers_are_ready_when_their_condition_holds() {
    let chan = ChannelBuilder::shm(unique("select-mix"))
        .capacity(1024)
        .create()
        .unwrap();
    let (mut tx, mut rx) = (chan.sender().unwrap(), chan.receiver().unwrap());
    let message = [7u8; 100];
    while tx.try_send(&message).is_ok() {}
    assert!(matches!(
        tx.try_send(&message),
        Err(TrySendError::Full { .. })
    ));
    let (pipe_read, pipe_write) = rustix::pipe::pipe().unwrap();
    let mut select = Select::new().unwrap();
    let room = select.send(&mut tx, message.len()).unwrap();
    let byte = select.fd(pipe_read.as_fd(), Interest::Readable).unwrap();
    let byte_again = select.fd(pipe_read.as_fd(), Interest::Readable).unwrap();
    let timer = select.timer_after(Duration::from_millis(40));

    // Nothing yet: the timer comes first, not before its instant.
    let start = Instant::now();
    assert_eq!(select.ready_timeout(LONG).unwrap(), timer);
    assert!(start.elapsed() >= Duration::from_millis(40));
    select.remove(timer);
    assert!(matches!(
        select.ready_timeout(Duration::from_millis(20)),
        Err(Error::TimedOut)
    ));

    // A byte in the pipe: both registrations of it.
    rustix::io::write(&pipe_write, b"x").unwrap();
    let first = select.ready_timeout(LONG).unwrap();
    assert!(first == byte || first == byte_again);
    assert_eq!(select.all_ready(), &[byte, byte_again]);
    // In turn: the other one next.
    let second = select.ready_timeout(LONG).unwrap();
    assert_ne!(first, second);
    select.remove(byte);
    select.remove(byte_again);

    // Room: the receiver takes messages in another thread, one every 10 ms. A
    // ring says "may have changed": the freed room can be too little (the
    // frame wraps), and then the send is tried again after the next.
    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 128];
            for _ in 0..3 {
                thread::sleep(Duration::from_millis(10));
                rx.try_recv(&mut buf).unwrap();
            }
        });
        let mut wakes = 0;
        loop {
            assert_eq!(select.ready_timeout(LONG).unwrap(), room);
            wakes += 1;
            match select.sender(room).unwrap().try_send(&message) {
                Ok(()) => break,
                Err(TrySendError::Full { .. }) if wakes < 3 => {}
                other => panic!("after {wakes} wake-ups: {other:?}"),
            }
        }
    });
    drop(select);
    drop(pipe_write);
}

/// The errors: no source and no deadline; a receiver that stays empty times
/// out at its deadline, not before.
#[test]
fn an_empty_select_refuses_to_wait_for_ever_and_a_quiet_one_times_out() {
    let mut empty = Select::new().unwrap();
    assert!(matches!(empty.ready(), Err(Error::NothingToWaitFor)));
    assert!(matches!(
        empty.ready_timeout(Duration::from_millis(5)),
        Err(Error::TimedOut)
    ));
    let chan = ChannelBuilder::shm(unique("select-quiet"))
        .create()
        .unwrap();
    let _tx = chan.sender().unwrap();
    let mut rx = chan.receiver().unwrap();
    let mut select = Select::new().unwrap();
    select.recv(&mut rx).unwrap();
    let start = Instant::now();
    assert!(matches!(
        select.ready_timeout(Duration::from_millis(30)),
        Err(Error::TimedOut)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

/// Child: opens event `EVENT` and semaphore `SEM`, reports READY, waits for
/// the parent's go, then notifies the event once (`notify_one`) and, 20 ms
/// later, posts the semaphore once; reports DONE.
#[test]
fn child_notifier() {
    if !child_start() {
        return;
    }
    let event = shmring::EventBuilder::shm(param("EVENT")).open().unwrap();
    let semaphore = shmring::SemaphoreBuilder::shm(param("SEM")).open().unwrap();
    report("READY", std::process::id());
    wait_for_parent();
    event.notify_one();
    thread::sleep(Duration::from_millis(20));
    semaphore.post().unwrap();
    report("DONE", 1);
}

/// An event waiter and a semaphore waiter in one `Select` with a channel,
/// rung by another process: each is ready only after its notification or
/// post, the notification is taken once, and the unit is taken by the waiter.
#[test]
fn event_and_semaphore_waiters_are_selectable_across_processes() {
    let name = unique("select-objects");
    let event = shmring::EventBuilder::shm(format!("{name}-ev"))
        .create()
        .unwrap();
    let semaphore = shmring::SemaphoreBuilder::shm(format!("{name}-sem"))
        .create()
        .unwrap();
    let chan = ChannelBuilder::shm(format!("{name}-chan"))
        .create()
        .unwrap();
    let _tx = chan.sender().unwrap();
    let mut rx = chan.receiver().unwrap();
    let mut notified = event.waiter().unwrap();
    let mut units = semaphore.waiter().unwrap();
    let mut child = Peer::spawn(
        "child_notifier",
        &[
            ("EVENT", &format!("{name}-ev")),
            ("SEM", &format!("{name}-sem")),
        ],
    );
    child.expect("READY");
    let mut select = Select::new().unwrap();
    let from_rx = select.recv(&mut rx).unwrap();
    let on_event = select.waiter(&mut notified).unwrap();
    let on_unit = select.waiter(&mut units).unwrap();
    // Nothing yet.
    assert!(matches!(
        select.ready_timeout(Duration::from_millis(30)),
        Err(Error::TimedOut)
    ));
    child.release();
    assert_eq!(
        select.ready_timeout(LONG).unwrap(),
        on_event,
        "the event comes first"
    );
    // Not taken: still ready. Taken once, then not again.
    assert_eq!(select.ready_timeout(LONG).unwrap(), on_event);
    let waiter = select.condition(on_event).unwrap();
    assert!(waiter.try_take().unwrap(), "the notification was lost");
    assert!(!waiter.try_take().unwrap(), "taken twice");
    // Then the unit, 20 ms later.
    assert_eq!(select.ready_timeout(LONG).unwrap(), on_unit);
    let waiter = select.condition(on_unit).unwrap();
    assert!(waiter.try_take().unwrap(), "the unit was not there");
    assert!(!waiter.try_take().unwrap(), "two units from one post");
    assert!(matches!(
        select.ready_timeout(Duration::from_millis(30)),
        Err(Error::TimedOut)
    ));
    assert_ne!(on_unit, from_rx);
    drop(select);
    assert_eq!(child.expect("DONE"), "1");
    child.wait_ok();
    // Disarmed waiters leave no count behind (the thread withdraws its own).
    drop(notified);
    drop(units);
    let settle = Instant::now() + PROMPT;
    while (event.waiters(), semaphore.waiters()) != (0, 0) && Instant::now() < settle {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!((event.waiters(), semaphore.waiters()), (0, 0));
}

/// A blocked `Semaphore::wait` is not left asleep behind an armed waiter that
/// does not take the unit: a `post` wakes one sleeper, which may be the
/// process's objects thread; it passes the wake-up on. Twenty rounds, so that
/// both orders come up.
#[test]
fn a_blocked_semaphore_wait_gets_the_unit_an_armed_waiter_leaves() {
    let semaphore = shmring::SemaphoreBuilder::shm(unique("select-pass-on"))
        .create()
        .unwrap();
    let mut armed = semaphore.waiter().unwrap();
    for round in 0..20 {
        assert_eq!(armed.arm().unwrap(), shmring::Readiness::Armed);
        let blocked = semaphore.clone();
        let waiting = thread::spawn(move || blocked.wait_timeout(LONG));
        // Until both the blocked thread and the objects thread are counted.
        let settle = Instant::now() + PROMPT;
        while semaphore.waiters() < 2 && Instant::now() < settle {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(semaphore.waiters(), 2, "round {round}");
        thread::sleep(Duration::from_millis(2));
        let posted = Instant::now();
        semaphore.post().unwrap();
        waiting.join().unwrap().unwrap();
        assert!(
            posted.elapsed() < PROMPT,
            "round {round}: {:?}",
            posted.elapsed()
        );
        // The unit went to the blocked wait: the armed waiter finds none.
        assert!(matches!(armed.try_wait(), Err(Error::Empty)));
    }
}

/// A wait re-arms only the sources whose arming was spent: over eight quiet
/// channels and one busy one, a wait costs a few system calls, not eight
/// armings (each a drain and, with asymmetric fences, a `membarrier`).
#[test]
fn a_wait_arms_only_what_was_reported() {
    let name = unique("select-arms");
    let channels: Vec<_> = (0..8)
        .map(|i| ChannelBuilder::shm(format!("{name}-{i}")).create().unwrap())
        .collect();
    let mut senders: Vec<_> = channels.iter().map(|c| c.sender().unwrap()).collect();
    let mut receivers: Vec<_> = channels.iter().map(|c| c.receiver().unwrap()).collect();
    let mut select = Select::new().unwrap();
    let busy = {
        let mut indices = Vec::new();
        for rx in &mut receivers {
            indices.push(select.recv(rx).unwrap());
        }
        indices[3]
    };
    // The first wait arms all eight.
    assert!(matches!(
        select.ready_timeout(Duration::ZERO),
        Err(Error::TimedOut)
    ));
    let rounds = 200u64;
    let mut buf = [0u8; 64];
    let before = shmring::system_calls_on_this_thread();
    for round in 0..rounds {
        senders[3].try_send(&round.to_le_bytes()).unwrap();
        assert_eq!(select.ready_timeout(LONG).unwrap(), busy);
        let rx = select.receiver(busy).unwrap();
        assert_eq!(rx.try_recv(&mut buf).unwrap(), 8);
    }
    let per_wait = (shmring::system_calls_on_this_thread() - before) as f64 / rounds as f64;
    eprintln!("{per_wait:.1} system calls per message (send, wait, receive)");
    assert!(
        per_wait < 8.0,
        "{per_wait:.1} system calls per message: every source re-armed?"
    );
}
