//! Loom models of the counting semaphore protocol: the real
//! `shmring_core::object::semaphore` code on a [`LoomObject`], loom's atomics, a
//! [`LoomFutex`] per object.
//!
//! Each model names the orderings it covers (`docs/design/events-and-semaphores.md`
//! lists which model fails when each is weakened). Bounds and times (release, 2
//! cores shared with other builds at a load of about 4, preemption bound 3 (the
//! `model` default), each model alone, wall / user; the rest of the wall time is
//! loom's system time):
//!
//! | model | threads | time |
//! |---|---|---|
//! | `post_wakes_a_blocked_waiter_and_hands_over` | 2 | < 0.01 s / < 0.01 s |
//! | `two_posts_wake_two_blocked_waiters` | 3 | 4.0 s / 0.9 s |
//! | `two_posters_two_takers_stay_within_zero_and_the_maximum` | 4 | 3.1 s / 0.6 s |
//! | `a_waiter_with_a_passed_deadline_times_out_or_takes_the_unit` | 2 | < 0.01 s / < 0.01 s |
//! | `an_opener_sees_the_whole_header` | 2 | < 0.01 s / < 0.01 s |
#![cfg(shmring_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use shmring_core::LayoutError;
use shmring_core::layout::OBJECT_KIND_SEMAPHORE;
use shmring_core::object::layout::ObjectInfo;
use shmring_core::object::semaphore::{self, SemaphoreError};
use shmring_core::object::waiters;
use shmring_loom_tests::{Expired, LoomFutex, LoomObject, model};

fn semaphore(max: u32, initial: u32) -> (LoomObject, Arc<LoomFutex>) {
    (
        LoomObject::new(OBJECT_KIND_SEMAPHORE, max, initial),
        Arc::new(LoomFutex::new()),
    )
}

/// No lost wake-up, and a unit hands over what its poster wrote: a waiter blocked
/// on a zero count (no deadline) and a poster that writes a value (Relaxed) and
/// posts. A lost wake-up is a deadlock loom reports; a stale value fails the
/// assertion.
/// Covers: the fence pair of `wait::register_waiter` / `wait::has_waiters`
/// (store-buffer), `post`'s Release swap, `try_take`'s Acquire swap,
/// `Futex::wake_one`.
#[test]
fn post_wakes_a_blocked_waiter_and_hands_over() {
    model(|| {
        let (object, futex) = semaphore(1, 0);
        let data = Arc::new(AtomicU32::new(0));
        let (o, f, d) = (object.clone(), futex.clone(), data.clone());
        let poster = thread::spawn(move || {
            d.store(1, Ordering::Relaxed);
            semaphore::post(o.words(), 1, &*f).unwrap();
        });
        assert_eq!(semaphore::wait(object.words(), 1, &*futex, None), Ok(()));
        assert_eq!(
            data.load(Ordering::Relaxed),
            1,
            "took the unit, data not seen"
        );
        poster.join().unwrap();
        assert_eq!(semaphore::value(object.words(), 1), Ok(0));
        assert_eq!(waiters(object.words()), 0);
    });
}

/// Two blocked waiters, two posts each waking one (`FUTEX_WAKE` of 1): both
/// waiters return. A count of waiters, unlike the rings' `WAITING` bit, stays
/// non-zero for the second waiter after the first post's wake-up.
/// Covers: the counted registration with two waiters, `Futex::wake_one`.
#[test]
fn two_posts_wake_two_blocked_waiters() {
    model(|| {
        let (object, futex) = semaphore(2, 0);
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let (o, f) = (object.clone(), futex.clone());
                thread::spawn(move || semaphore::wait(o.words(), 2, &*f, None))
            })
            .collect();
        semaphore::post(object.words(), 2, &*futex).unwrap();
        semaphore::post(object.words(), 2, &*futex).unwrap();
        for t in takers {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(semaphore::value(object.words(), 2), Ok(0));
        assert_eq!(waiters(object.words()), 0);
    });
}

/// Counts never negative nor past the limit: maximum 1, initial count 1, two
/// posters and two takers, each calling once without retrying. A post fails only
/// as `Full`, a take only as `Empty`, every call sees a count in 0..=1 (else it
/// reports `CountOutOfRange`), and the count left is the initial one plus the
/// posts made minus the takes made: no unit lost, duplicated, or past the limit.
/// (No retry loops: the blocking paths are the other models'; loops of four
/// threads take minutes.)
/// Covers: the compare-and-swaps of `post` and `try_take` and their bounds checks.
#[test]
fn two_posters_two_takers_stay_within_zero_and_the_maximum() {
    model(|| {
        let (object, futex) = semaphore(1, 1);
        let mut calls: Vec<_> = (0..2)
            .map(|_| {
                let (o, f) = (object.clone(), futex.clone());
                thread::spawn(move || match semaphore::post(o.words(), 1, &*f) {
                    Ok(()) => 1,
                    Err(SemaphoreError::Full { max: 1 }) => 0,
                    Err(e) => panic!("post: {e}"),
                })
            })
            .collect();
        let o = object.clone();
        let take = move || match semaphore::try_take(o.words(), 1) {
            Ok(()) => -1,
            Err(SemaphoreError::Empty) => 0,
            Err(e) => panic!("try_take: {e}"),
        };
        calls.push(thread::spawn(take.clone()));
        let mut count: i32 = 1 + take();
        for call in calls {
            count += call.join().unwrap();
        }
        assert!((0..=1).contains(&count), "count {count}");
        assert_eq!(semaphore::value(object.words(), 1), Ok(count as u32));
    });
}

/// A waiter whose deadline has passed (the model's [`Expired`]) against a
/// poster: `Ok` having taken the unit, or `TimedOut` leaving it, never hangs, and
/// undoes its registration either way.
/// Covers: the deadline path of `wait` and the drop of the registration.
#[test]
fn a_waiter_with_a_passed_deadline_times_out_or_takes_the_unit() {
    model(|| {
        let (object, futex) = semaphore(1, 0);
        let (o, f) = (object.clone(), futex.clone());
        let poster = thread::spawn(move || semaphore::post(o.words(), 1, &*f));
        let result = semaphore::wait(object.words(), 1, &*futex, Some(Expired));
        assert_eq!(poster.join().unwrap(), Ok(()));
        let left = match result {
            Ok(()) => 0,
            Err(SemaphoreError::TimedOut) => 1,
            Err(e) => panic!("wait: {e}"),
        };
        assert_eq!(semaphore::value(object.words(), 1), Ok(left));
        assert_eq!(waiters(object.words()), 0);
    });
}

/// An opener that finds the magic sees every header field the creator wrote
/// before it: one thread initialises a zeroed object, the other attaches until
/// it is no longer `Uninitialized`.
/// Covers: `ObjectLayout::init`'s Release store of the magic and `attach`'s
/// Acquire load of it.
#[test]
fn an_opener_sees_the_whole_header() {
    model(|| {
        let object = LoomObject::zeroed();
        let o = object.clone();
        let creator = thread::spawn(move || o.layout().init(OBJECT_KIND_SEMAPHORE, 3, 0));
        let info = loop {
            match object.layout().attach() {
                Err(LayoutError::Uninitialized) => thread::yield_now(),
                other => break other,
            }
        };
        assert_eq!(
            info,
            Ok(ObjectInfo {
                kind: OBJECT_KIND_SEMAPHORE,
                max_count: 3
            })
        );
        creator.join().unwrap();
    });
}
