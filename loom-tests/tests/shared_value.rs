//! Loom models of the published value's seqlock: the real
//! `shmring_core::state::value` code on a [`LoomValue`] (its words loom atomics),
//! a [`LoomFutex`], and a flag standing in for the writer's liveness lock.
//!
//! The value is two words, each equal to the version written (version `v` is
//! `[v, v]`), so a torn copy shows as unequal words or words that are not its
//! version. Each model names the orderings it covers (ARCHITECTURE.md's
//! orderings table lists which model fails when each is weakened). Times
//! (release, 2 shared cores, each model alone, wall): see the table in
//! `loom-tests/src/lib.rs`.
#![cfg(shmring_loom)]

use std::num::NonZeroU32;

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use shmring_core::LayoutError;
use shmring_core::state::value::{self, ReadError, ValueRegion, ValueWriter};
use shmring_loom_tests::{Expired, LoomFutex, LoomValue, model};

/// The bytes of version `v`: two words equal to `v`.
fn version_bytes(v: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&v.to_ne_bytes());
    bytes[8..].copy_from_slice(&v.to_ne_bytes());
    bytes
}

/// Reads once; returns the version read (`None` for `NoValue`, `WriterDied` or
/// `Busy`, the errors a read may return here) after checking that the copy is
/// whole: both words equal to the version.
fn checked_read(value: &LoomValue) -> Option<u64> {
    let mut buf = [0u8; 16];
    match value::read(value, &mut buf, || value.writer_alive()) {
        Ok(v) => {
            assert_eq!(buf, version_bytes(v), "torn copy returned as version {v}");
            Some(v)
        }
        Err(ReadError::NoValue | ReadError::WriterDied { .. } | ReadError::Busy { .. }) => None,
        Err(e @ ReadError::Length { .. }) => panic!("{e}"),
    }
}

fn token(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A validated read is never torn and versions never go backwards: version 1 is
/// published before the threads start; a writer publishes version 2 while a
/// reader reads twice. Every `Ok` copy is its version's two equal words, and the
/// second read's version is not below the first's.
/// Covers: the writer's `fence(Release)` after its odd store with the reader's
/// `fence(Acquire)` after its copy (a copy overlapping the write is refused), the
/// final Release store of `seq` with the reader's first Acquire load (the words
/// of the version read are visible).
#[test]
fn a_validated_read_is_never_torn_and_versions_never_go_backwards() {
    model(|| {
        let value = LoomValue::new(16);
        let futex = loom::sync::Arc::new(LoomFutex::new());
        value.set_writer_alive(true);
        let mut writer = ValueWriter::claim(value.clone(), token(1)).unwrap();
        assert_eq!(writer.write(&version_bytes(1), &*futex), Ok(1));
        let f = futex.clone();
        let w = thread::spawn(move || {
            assert_eq!(writer.write(&version_bytes(2), &*f), Ok(2));
        });
        let first = checked_read(&value);
        let second = checked_read(&value);
        if let (Some(a), Some(b)) = (first, second) {
            assert!(b >= a, "version went back from {a} to {b}");
        }
        w.join().unwrap();
        assert_eq!(checked_read(&value), Some(2));
    });
}

/// A writer that dies in the middle of a write (after its odd store and one of
/// its two word stores) while a reader reads: the reader gets version 1 whole,
/// `WriterDied`, or `Busy`/`NoValue`, never the torn `[2, 1]`. Then a new writer
/// takes the role over while another reader reads: that reader gets
/// `WriterDied` (before the new writer's claim), `Busy`, or version 2 whole
/// (`seq` 3 kept odd, then 4), never a torn copy; afterwards every read is
/// version 2.
/// Covers: `begin` keeping a dead writer's odd `seq`, `read`'s liveness probe on
/// an odd `seq`, the claim pair (`claim_owner`'s Acquire) on take-over, and the
/// orderings of the first model once more across the take-over.
#[test]
fn a_writer_dead_mid_write_gives_writer_died_and_a_new_writer_repairs() {
    model(|| {
        let value = LoomValue::new(16);
        let futex = loom::sync::Arc::new(LoomFutex::new());
        value.set_writer_alive(true);
        let mut writer = ValueWriter::claim(value.clone(), token(1)).unwrap();
        writer.write(&version_bytes(1), &*futex).unwrap();
        let v = value.clone();
        let dying = thread::spawn(move || {
            writer.write_and_die(&version_bytes(2), 1);
            v.set_writer_alive(false);
        });
        if let Some(v) = checked_read(&value) {
            assert_eq!(v, 1);
        }
        dying.join().unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!(
                value::read(&value, &mut buf, || value.writer_alive()),
                Err(ReadError::WriterDied { seq: 3 })
            ),
            "a dead writer's odd seq not reported"
        );

        let (v, f) = (value.clone(), futex.clone());
        let repairer = thread::spawn(move || {
            v.set_writer_alive(true);
            // SAFETY: the previous writer's thread has ended (joined above) and
            // its handle is gone: it never writes again.
            let mut new = unsafe { ValueWriter::take_over(v.clone(), token(2), token(1)) }
                .expect("the dead writer's claim is taken over");
            assert_eq!(new.write(&version_bytes(2), &*f), Ok(2));
        });
        if let Some(v) = checked_read(&value) {
            assert_eq!(v, 2);
        }
        repairer.join().unwrap();
        assert_eq!(checked_read(&value), Some(2));
    });
}

/// No lost wake-up for a reader waiting for the next version: a reader blocked
/// in `wait_for_version(0)` (no deadline) and a writer publishing version 1.
/// A lost wake-up is a deadlock loom reports; the version returned is 1, what
/// the writer stored (Relaxed) before the write is visible, and a read then
/// gets the version whole.
/// Covers: the counted eventcount on `version_signal` (the fence pair of
/// `wait::register_waiter` / `wait::has_waiters` in `event::notify`), the
/// key's Acquire with `notify`'s Release increment, the final Release store of
/// `seq` with `version`'s Acquire load.
#[test]
fn a_reader_waiting_for_the_next_version_is_woken() {
    model(|| {
        let value = LoomValue::new(16);
        let futex = loom::sync::Arc::new(LoomFutex::new());
        let side = loom::sync::Arc::new(AtomicU32::new(0));
        value.set_writer_alive(true);
        let (v, f, d) = (value.clone(), futex.clone(), side.clone());
        let w = thread::spawn(move || {
            let mut writer = ValueWriter::claim(v, token(1)).unwrap();
            d.store(1, Ordering::Relaxed);
            assert_eq!(writer.write(&version_bytes(1), &*f), Ok(1));
        });
        assert_eq!(value::wait_for_version(&value, 0, &*futex, None), Ok(1));
        assert_eq!(
            side.load(Ordering::Relaxed),
            1,
            "version 1 seen, what its writer did before it not"
        );
        assert_eq!(checked_read(&value).unwrap_or(1), 1);
        w.join().unwrap();
        assert_eq!(value.control().signal.waiters.load(Ordering::Relaxed), 0);
    });
}

/// A reader whose deadline has passed against a writer: `Ok` only with a
/// published version, `TimedOut` otherwise, never a hang, registration undone.
/// Covers: the deadline path of `wait_for_version`.
#[test]
fn a_reader_with_a_passed_deadline_times_out_or_sees_the_version() {
    model(|| {
        let value = LoomValue::new(8);
        let futex = loom::sync::Arc::new(LoomFutex::new());
        let (v, f) = (value.clone(), futex.clone());
        let w = thread::spawn(move || {
            let mut writer = ValueWriter::claim(v, token(1)).unwrap();
            writer.write(&[1; 8], &*f).unwrap();
        });
        if let Ok(v) = value::wait_for_version(&value, 0, &*futex, Some(Expired)) {
            assert_eq!(v, 1);
            assert_eq!(value::version(&value), Some(1));
        }
        w.join().unwrap();
        assert_eq!(value.control().signal.waiters.load(Ordering::Relaxed), 0);
    });
}

/// An opener that finds the magic sees every header field the creator wrote
/// before it: one thread initialises a zeroed value, the other attaches until
/// it is no longer `Uninitialized`, and must then find the value's geometry.
/// Covers: `StateHeader::publish`'s Release store of the magic and
/// `StateHeader::attach`'s Acquire load of it.
#[test]
fn an_opener_sees_the_whole_state_header() {
    model(|| {
        let value = LoomValue::zeroed(24);
        let v = value.clone();
        let creator = thread::spawn(move || v.init());
        let info = loop {
            match value.attach() {
                Err(LayoutError::Uninitialized) => thread::yield_now(),
                other => break other,
            }
        };
        let info = info.expect("a published header is whole");
        assert_eq!(info.geometry.value_size(), 24);
        creator.join().unwrap();
    });
}
