//! Loom models of the event protocol: the real `shmring_core::object::event`
//! code on a [`LoomObject`], loom's atomics, a [`LoomFutex`] per object.
//!
//! Each model names the orderings it covers (`docs/design/events-and-semaphores.md`
//! lists which model fails when each is weakened). Bounds and times (release, 2
//! cores shared with other builds at a load of about 4, preemption bound 3 (the
//! `model` default), each model alone, wall / user; the rest of the wall time is
//! loom's system time):
//!
//! | model | threads | time |
//! |---|---|---|
//! | `notify_wakes_a_blocked_waiter_and_hands_over` | 2 | < 0.01 s / < 0.01 s |
//! | `key_then_condition_misses_no_notification` | 2 | 0.01 s / < 0.01 s |
//! | `notify_all_wakes_every_waiter` | 3 | 0.35 s / 0.06 s |
//! | `a_waiter_with_a_passed_deadline_times_out_or_is_notified` | 2 | < 0.01 s / < 0.01 s |
#![cfg(shmring_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use shmring_core::layout::OBJECT_KIND_EVENT;
use shmring_core::object::event::{self, Wake};
use shmring_core::object::waiters;
use shmring_loom_tests::{Expired, LoomFutex, LoomObject, model};

fn event() -> (LoomObject, Arc<LoomFutex>) {
    (
        LoomObject::new(OBJECT_KIND_EVENT, 0, 0),
        Arc::new(LoomFutex::new()),
    )
}

/// No lost wake-up, and a notification publishes what the notifier wrote before
/// it: a waiter blocked on key 0 (no deadline) and a notifier that writes a
/// value (Relaxed) and then notifies one. A lost wake-up is a deadlock loom
/// reports; a stale value fails the assertion.
/// Covers: the fence pair of `wait::register_waiter` / `wait::has_waiters`
/// (store-buffer), `notify`'s Release increment, `is_notified_since`'s Acquire
/// load (both checks of `wait_from`), `Futex::wake_one`.
#[test]
fn notify_wakes_a_blocked_waiter_and_hands_over() {
    model(|| {
        let (object, futex) = event();
        let data = Arc::new(AtomicU32::new(0));
        let (o, f, d) = (object.clone(), futex.clone(), data.clone());
        let notifier = thread::spawn(move || {
            d.store(1, Ordering::Relaxed);
            event::notify(o.words(), &*f, Wake::One);
        });
        assert_eq!(event::wait_from(object.words(), 0, &*futex, None), Ok(()));
        assert_eq!(data.load(Ordering::Relaxed), 1, "notified, data not seen");
        notifier.join().unwrap();
        assert_eq!(waiters(object.words()), 0);
    });
}

/// The key taken before the condition: a waiter takes its key, checks a flag,
/// and waits from the key only if the flag is not set; the notifier sets the
/// flag (Relaxed) and notifies all. If the key already counts the notification
/// but the flag check missed it, the waiter would wait for a notification that
/// was made: a deadlock.
/// Covers: `key`'s Acquire load with `notify`'s Release increment; the fence pair.
#[test]
fn key_then_condition_misses_no_notification() {
    model(|| {
        let (object, futex) = event();
        let flag = Arc::new(AtomicU32::new(0));
        let (o, f, fl) = (object.clone(), futex.clone(), flag.clone());
        let notifier = thread::spawn(move || {
            fl.store(1, Ordering::Relaxed);
            event::notify(o.words(), &*f, Wake::All);
        });
        let key = event::key(object.words());
        if flag.load(Ordering::Relaxed) == 0 {
            assert_eq!(event::wait_from(object.words(), key, &*futex, None), Ok(()));
            assert_eq!(flag.load(Ordering::Relaxed), 1);
        }
        notifier.join().unwrap();
    });
}

/// Two waiters counted in `waiters`, one `notify_all`: both return (the count,
/// not a bit, keeps the second visible to the notifier whatever the first did).
/// Covers: the counted registration with two waiters (its increments and
/// decrements), `Futex::wake`.
#[test]
fn notify_all_wakes_every_waiter() {
    model(|| {
        let (object, futex) = event();
        let waiters_threads: Vec<_> = (0..2)
            .map(|_| {
                let (o, f) = (object.clone(), futex.clone());
                thread::spawn(move || event::wait_from(o.words(), 0, &*f, None))
            })
            .collect();
        event::notify(object.words(), &*futex, Wake::All);
        for t in waiters_threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(waiters(object.words()), 0);
    });
}

/// A waiter whose deadline has passed (the model's [`Expired`]) against a
/// notifier: it returns `Ok` only if the sequence moved, `TimedOut` otherwise,
/// never hangs, and undoes its registration either way.
/// Covers: the deadline path of `wait_from` and the drop of the registration.
#[test]
fn a_waiter_with_a_passed_deadline_times_out_or_is_notified() {
    model(|| {
        let (object, futex) = event();
        let (o, f) = (object.clone(), futex.clone());
        let notifier = thread::spawn(move || event::notify(o.words(), &*f, Wake::One));
        let result = event::wait_from(object.words(), 0, &*futex, Some(Expired));
        // `Ok` only once notified; else `Err(TimedOut)`, the only error.
        if result.is_ok() {
            assert!(event::is_notified_since(object.words(), 0));
        }
        notifier.join().unwrap();
        assert_eq!(waiters(object.words()), 0);
        assert!(event::is_notified_since(object.words(), 0));
    });
}
