//! Loom model checks of `shmring-core`.
//!
//! Run with `RUSTFLAGS="--cfg shmring_loom" cargo test -p shmring-loom-tests --release`.
//! Under that cfg, core's [`sync`](shmring_core::sync) facade hands out loom's
//! atomics, and this crate supplies the two things core leaves to its caller:
//!
//! - [`LoomRegion`], a [`Region`] whose control block and frame words are loom
//!   atomics and whose data bytes are checked for races by loom, slot by slot;
//! - [`LoomFutex`], a [`Futex`] that compares and sleeps atomically (under a loom
//!   mutex, with a condition variable), as the kernel's futex does;
//! - [`LoomMpmcRegion`] and [`LoomLiveness`], the same for the MPMC ring: an
//!   [`MpmcRegion`](shmring_core::MpmcRegion) and a stand-in for the kernel's
//!   liveness marks;
//! - [`LoomObject`], an event's or semaphore's object layout of loom atomics
//!   (the protocols in `shmring_core::object` take its futex line);
//! - [`LoomValue`], a published value's lines and words of loom atomics, with
//!   a flag standing in for its writer's liveness lock;
//! - [`LoomBroadcastRegion`], a broadcast topic's lines, subscriber table and
//!   data words, all loom atomics (the broadcast ring reads and writes its data
//!   region only with atomic word accesses, by design: a lossy subscriber's copy
//!   races with the publisher's overwrite and is validated afterwards).
//!
//! The models themselves are in `tests/`. Without the cfg this crate is empty.
//!
//! # The models, their bounds and their times
//!
//! The budget every change keeps: at most about 20 s per model and about 6
//! minutes for the whole suite, in `--release` on the project's 2-core machines.
//! "Bound" is loom's preemption bound (`LOOM_MAX_PREEMPTIONS` overrides it for a
//! run). Times: each model run alone (`--exact`, one test thread), wall and user
//! seconds, measured 2026-12-06 on 2 cores that other builds were using at the same
//! time (so wall time is inflated; user time is the better guide).
//!
//! | model (`tests/spsc.rs`) | what it checks | bound | wall (user) s |
//! |---|---|---|---|
//! | `wrap_with_padding_keeps_order_and_bytes` | order and bytes across a wrap behind a padding frame | 3 | 1.2 (0.1) |
//! | `full_edge_and_short_commit` | the full and empty edges, a grant committed short | 3 | 7.7 (1.0) |
//! | `batch_is_published_at_once` | a batch's messages appear together, nothing after them | 3 | 0.0 (0.0) |
//! | `no_lost_wakeup_when_empty` | a consumer blocked on an empty ring is woken | 3 | 0.6 (0.1) |
//! | `no_lost_wakeup_when_full` | a producer blocked on a full ring is woken | 3 | 12.3 (3.1) |
//! | `armed_consumer_is_rung_for_every_message` | a consumer that arms its doorbell whenever the ring is empty is rung for every message | 3 | 0.2 (0.2) |
//! | `armed_producer_is_rung_when_room_appears` | a producer that arms its doorbell for room whenever the ring is full (four frames through three) is rung when the consumer releases | 3 | 7.6 (3.6) |
//! | `waits_time_out` | a passed deadline ends a wait | 3 | 0.0 (0.0) |
//! | `write_position_covers_committed_frames` | the published write position covers committed frames | 3 | 0.0 (0.0) |
//! | `producer_handover_appends_after_committed` | a second producer recovers the write position and appends | 3 | 0.0 (0.0) |
//! | `producer_recovery_sees_released_space` | a recovered producer writes only over bytes the consumer has finished copying | 3 | 0.0 (0.0) |
//! | `consumer_handover_skips_released` | a second consumer does not see released messages again | 3 | 0.0 (0.0) |
//! | `read_batch_then_reuse` | batched reads release once; the producer reuses only after | 3 | 18.3 (3.4) |
//! | `runs_across_a_wrap` | runs read by `pop`, `read` and `read_batch` across a wrap | 3 | 13.5 (2.0) |
//!
//! | model (`tests/mpmc.rs`) | what it checks | bound | wall (user) s |
//! |---|---|---|---|
//! | `two_by_two_capacity_2` | 2 producers × 2 consumers, blocking: exactly once, per-producer order, no lost wake-up | 1 | 26.7 (4.0) |
//! | `two_by_one_capacity_2_wraps` | 2 × 1, two messages each through two slots: laps, payload races | 1 | 1.3 (0.2) |
//! | `no_lost_wakeup_producer` | a producer blocked on a full ring is woken | 2 | 0.1 (0.0) |
//! | `armed_consumer_is_rung_for_every_message` | a consumer that arms its doorbell (never sleeping on the futex) is rung for each of three messages through two slots | 2 | 0.0 (0.0) |
//! | `armed_producer_is_rung_when_room_appears` | a producer that arms its doorbell for room (never sleeping on the futex) is rung when the consumer frees a slot, three messages through two slots | 2 | 0.1 (0.1) |
//! | `waiters_wake_the_others_before_sleeping` | a waiter notifies what it owes before it sleeps (neither side calls `wake` otherwise) | 2 | 0.0 (0.0) |
//! | `dead_producer_is_skipped` | a dead producer's claim is skipped once it is dead, and only then | 2 | 5.0 (0.7) |
//! | `dead_producer_two_consumers_agree` | two consumers racing to skip count one skip | 1 | 0.3 (0.0) |
//! | `dead_consumer_is_reclaimed` | a dead consumer's slot is reclaimed once it is dead, counted lost | 2 | 0.0 (0.0) |
//! | `live_consumer_is_not_reclaimed` | recovery at every stall never takes a live consumer's slot | 2 | 0.1 (0.0) |
//! | `live_consumer_is_not_reclaimed_in_the_claim_loop` | the same, each message taken through the claim loop rather than `pop`'s inline common case | 2 | 0.0 (0.0) |
//! | `live_producer_is_not_skipped` | recovery at every stall never skips a live producer | 2 | 0.7 (0.1) |
//! | `taken_over_entry_hands_on_the_dead_claim` | a take-over's intent clear carries the dead holder's copy to the reclaimer | 2 | 0.0 (0.0) |
//!
//! | model (`tests/event.rs`, `tests/semaphore.rs`) | what it checks | bound | wall (user) s |
//! |---|---|---|---|
//! | `notify_wakes_a_blocked_waiter_and_hands_over` | no lost wake-up; the waiter sees what the notifier wrote | 3 | 0.0 (0.0) |
//! | `key_then_condition_misses_no_notification` | a key taken before the condition check loses nothing | 3 | 0.0 (0.0) |
//! | `notify_all_wakes_every_waiter` | two counted waiters both wake | 3 | 0.4 (0.1) |
//! | `a_waiter_with_a_passed_deadline_times_out_or_is_notified` | the timeout path undoes the registration | 3 | 0.0 (0.0) |
//! | `post_wakes_a_blocked_waiter_and_hands_over` | no lost wake-up; the taker sees what the poster wrote | 3 | 0.0 (0.0) |
//! | `two_posts_wake_two_blocked_waiters` | one-waiter wake-ups with two sleepers | 3 | 4.0 (0.9) |
//! | `two_posters_two_takers_stay_within_zero_and_the_maximum` | the count never below 0 or above the maximum (4 threads, each call once: with retry loops it took 8 minutes) | 3 | 3.1 (0.6) |
//! | `a_waiter_with_a_passed_deadline_times_out_or_takes_the_unit` | the timeout path undoes the registration | 3 | 0.0 (0.0) |
//! | `an_opener_sees_the_whole_header` | the object header is published before its magic | 3 | 0.0 (0.0) |
//!
//! | model (`tests/broadcast.rs`: 64-byte region, 8-byte numbered messages) | what it checks | bound | wall (user) s |
//! |---|---|---|---|
//! | `lossy_reader_never_gets_a_torn_message` | a lossy publisher laps the region (four messages) while a subscriber reads: every message intact, numbers increasing, each gap the `Lagged` counts reported before it | 3 | 2.0 (1.0) |
//! | `gated_subscriber_reads_every_message` | a gated publisher retrying on `Full`: the subscriber gets all four, in order, intact, never `Lagged` | 3 | 1.2 (0.7) |
//! | `strict_subscriber_reads_every_message` | the same under `Policy::Strict` | 3 | 1.2 (0.6) |
//! | `joiner_is_never_lagged` | a subscriber joins (oldest) a gated topic that has lapped once while the publisher goes on: never `Lagged`, reads from where its join said, in order, intact | 3 | 0.2 (0.1) |
//! | `newest_joiner_starts_at_a_marked_boundary` | a subscriber joins a lossy topic at the newest message while three are published: a clean start, in order, intact | 2 | 0.9 (0.4) |
//! | `joiner_during_a_batch_starts_at_oldest` | a subscriber joins while a batch of four laps the region (`oldest` past `write_position`): no false `Corrupted`, in order, intact | 2 | 1.4 (0.6) |
//! | `no_lost_wakeup_of_a_subscriber` | a subscriber blocked in `wait_for_message` is woken by `notify` for each of two messages | 3 | 0.1 (0.0) |
//! | `no_lost_wakeup_of_a_gated_publisher` | a gated publisher sleeping on `space_signal` (four messages through room for two) is woken by `wake_publisher` | 3 | 1.8 (1.0) |
//! | `an_armed_gated_publisher_is_rung_when_room_appears` | the same publisher arming its doorbell (`arm_for_space`) instead of sleeping: a subscriber's `wake_publisher` rings it | 2 | 0.4 (0.2) |
//! | `a_subscriber_that_leaves_holds_nothing_back` | gated, two subscribers: one reads three messages while the other reads one and leaves; the publisher, held back by the leaver, joins its thread (the liveness answer) and goes on; the two wait for each other by the futex | 1 | 0.4 (0.2) |
//! | `a_dead_subscribers_slot_is_freed` | the same, the second dying (its handle kept from its drop): the publisher frees its slot (`free_slot`) | 1 | 0.1 (0.1) |
//!
//! | model (`tests/shared_value.rs`: a two-word value, version `v` = `[v, v]`) | what it checks | bound | wall (user) s |
//! |---|---|---|---|
//! | `a_validated_read_is_never_torn_and_versions_never_go_backwards` | a writer publishes version 2 over version 1 while a reader reads twice: every `Ok` copy whole, versions not decreasing | 3 | 0.0 (0.0) |
//! | `a_writer_dead_mid_write_gives_writer_died_and_a_new_writer_repairs` | a writer dies after its odd store and one word: `WriterDied`, never `[2, 1]`; a take-over's first write repairs (version 2 whole) | 3 | 0.0 (0.0) |
//! | `a_reader_waiting_for_the_next_version_is_woken` | no lost wake-up in `wait_for_version`; what the writer did before the version is visible | 3 | 0.0 (0.0) |
//! | `a_reader_with_a_passed_deadline_times_out_or_sees_the_version` | the timeout path undoes the registration | 3 | 0.0 (0.0) |
//! | `an_opener_sees_the_whole_state_header` | the state header is published before its magic | 3 | 0.3 (0.1) |
//!
//! The whole suite: `tests/spsc.rs` 53.7 s wall (10.2 s user, 13.3 s system), `tests/mpmc.rs` 30.6 s wall (4.8 s user, 6.3 s system), each binary with its default two test threads, after a build of about a minute; `tests/event.rs` and `tests/semaphore.rs` together under 10 s; `tests/broadcast.rs` 12.5 s wall (6.7 s user, 14.3 s system; broadcast times measured 2026-12-07).
#![cfg(shmring_loom)]

use std::cell::UnsafeCell;

use loom::sync::atomic::Ordering;
use loom::sync::{Arc, Condvar, Mutex};
use shmring_core::spsc::layout::Control;
use shmring_core::sync::AtomicU32;
use shmring_core::{Futex, Region, TimedOut};

struct Memory {
    control: Control,
    /// The state word of each 8-byte slot, when the slot holds a frame header.
    words: Vec<AtomicU32>,
    /// The run word of each 8-byte slot, when the slot holds a run frame's header.
    run_words: Vec<AtomicU32>,
    /// The data bytes themselves. Loom runs one thread at a time, so the raw
    /// accesses never overlap; `access` below is what loom checks.
    bytes: UnsafeCell<Box<[u8]>>,
    /// One loom cell per 8-byte slot: the ring's reads and writes of data bytes are
    /// recorded here, and loom reports any pair not ordered by happens-before.
    access: Vec<loom::cell::UnsafeCell<()>>,
    capacity: usize,
}

// SAFETY: the raw bytes are only touched by loom threads, which loom runs one at a
// time; their ordering is what `access` checks.
unsafe impl Sync for Memory {}
// SAFETY: as above.
unsafe impl Send for Memory {}

/// A ring's memory for the models: loom atomics and race-checked bytes.
#[derive(Clone)]
pub struct LoomRegion(Arc<Memory>);

impl std::fmt::Debug for LoomRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoomRegion")
            .field("capacity", &self.0.capacity)
            .finish()
    }
}

impl LoomRegion {
    /// A fresh, empty ring of `capacity` data bytes (call inside `loom::model`).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity.is_power_of_two() && capacity >= shmring_core::MIN_CAPACITY);
        let slots = capacity / 8;
        Self(Arc::new(Memory {
            control: Control::new(),
            words: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            run_words: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            bytes: UnsafeCell::new(vec![0; capacity].into_boxed_slice()),
            access: (0..slots)
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
            capacity,
        }))
    }

    fn slots(offset: usize, len: usize) -> std::ops::Range<usize> {
        offset / 8..(offset + len).div_ceil(8)
    }
}

// SAFETY: capacity is a checked power of two and never changes; `data` is the same
// boxed slice of `capacity` bytes for the region's life; `frame_word` indexes a
// fixed vector (and panics, rather than misbehaving, off the grid).
unsafe impl Region for LoomRegion {
    fn control(&self) -> &Control {
        &self.0.control
    }

    fn capacity(&self) -> usize {
        self.0.capacity
    }

    fn frame_word(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 8 == 0, "frame word off the 8-byte grid: {offset}");
        &self.0.words[offset / 8]
    }

    fn run_word(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 8 == 0, "run word off the 8-byte grid: {offset}");
        &self.0.run_words[offset / 8]
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: a pointer into the boxed slice, which lives as long as the Arc; no
        // reference to the slice is kept.
        unsafe { (*self.0.bytes.get()).as_mut_ptr() }
    }

    fn will_write(&self, offset: usize, len: usize) {
        for slot in Self::slots(offset, len) {
            self.0.access[slot].with_mut(|_| ());
        }
    }

    fn will_read(&self, offset: usize, len: usize) {
        for slot in Self::slots(offset, len) {
            self.0.access[slot].with(|_| ());
        }
    }
}

/// A futex for the models: `wait` compares the word and sleeps under one mutex, and
/// `wake` takes the same mutex, so a wake between the compare and the sleep cannot
/// be lost, which is the guarantee the kernel's futex gives.
///
/// It is also the armed waiter's doorbell, as an eventfd is: `ring_doorbell` adds
/// one to a counter, and [`LoomFutex::wait_doorbell`] sleeps until the counter is
/// non-zero and drains it (an eventfd `read`). A ring that never comes leaves the
/// waiter asleep, which loom reports as a deadlock.
#[derive(Debug, Default)]
pub struct LoomFutex {
    lock: Mutex<()>,
    cond: Condvar,
    rings: Mutex<u64>,
    bell: Condvar,
}

impl LoomFutex {
    /// A futex with nobody waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sleeps until the doorbell has been rung since the last call, then drains
    /// it (as a blocking `read` of an eventfd, or `poll` then `read`).
    pub fn wait_doorbell(&self) {
        let mut rings = self.rings.lock().unwrap();
        while *rings == 0 {
            rings = self.bell.wait(rings).unwrap();
        }
        *rings = 0;
    }
}

/// A model deadline that has always passed: a wait given `Some(Expired)` returns
/// `TimedOut` at once.
#[derive(Debug, Clone, Copy)]
pub struct Expired;

impl Futex for LoomFutex {
    type Deadline = Expired;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Expired>,
    ) -> Result<(), TimedOut> {
        // The deadline is checked first, whatever the word holds (the trait's rule).
        if deadline.is_some() {
            return Err(TimedOut);
        }
        let guard = self.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return Ok(());
        }
        drop(self.cond.wait(guard).unwrap());
        Ok(())
    }

    fn wake(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap();
        self.cond.notify_all();
    }

    /// Wakes one sleeper, as `FUTEX_WAKE` of 1 does. Faithful only if the futex
    /// serves one word (each model gives each word a futex of its own), since the
    /// kernel wakes one waiter *on that word*.
    fn wake_one(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap();
        self.cond.notify_one();
    }

    /// One doorbell serves every word of a model.
    fn has_doorbell(&self, _word: &AtomicU32) -> bool {
        true
    }

    /// Adds one to the doorbell's counter (an eventfd `write`) and wakes its
    /// sleeper.
    fn ring_doorbell(&self, _word: &AtomicU32) {
        *self.rings.lock().unwrap() += 1;
        self.bell.notify_all();
    }
}

/// An event's or semaphore's memory for the models: core's
/// [`ObjectLayout`](shmring_core::object::layout::ObjectLayout) of loom atomics,
/// initialised as a creator does it, shared by the model's threads.
#[derive(Debug, Clone)]
pub struct LoomObject(Arc<shmring_core::object::layout::ObjectLayout>);

impl LoomObject {
    /// A fresh object of `kind` with its maximum count and first word, attached
    /// as an opener does it (call inside `loom::model`).
    pub fn new(kind: u32, max_count: u32, word: u32) -> Self {
        let object = shmring_core::object::layout::ObjectLayout::new();
        object.init(kind, max_count, word);
        object.attach().expect("a fresh object attaches");
        Self(Arc::new(object))
    }

    /// An object whose bytes are all zero, for a model to `init` and `attach`
    /// from different threads.
    pub fn zeroed() -> Self {
        Self(Arc::new(shmring_core::object::layout::ObjectLayout::new()))
    }

    /// The layout (its header and its futex line).
    pub fn layout(&self) -> &shmring_core::object::layout::ObjectLayout {
        &self.0
    }

    /// The futex line.
    pub fn words(&self) -> &shmring_core::object::layout::ObjectWords {
        self.0.words()
    }
}

/// Runs `f` under loom with a preemption bound (3 unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise), so that every model finishes in seconds to minutes.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_bounded(3, f);
}

/// Runs `f` under loom with preemption bound `bound` (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise).
pub fn model_bounded<F>(bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(f);
}

pub use mpmc::{LoomLiveness, LoomMpmcRegion};

mod mpmc {
    use std::cell::UnsafeCell;

    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use shmring_core::mpmc::layout::{EndpointEntry, MpmcControl, SlotHeader};
    use shmring_core::{Liveness, MpmcGeometry, MpmcRegion};

    struct MpmcMemory {
        geometry: MpmcGeometry,
        control: MpmcControl,
        entries: Vec<EndpointEntry>,
        slots: Vec<SlotHeader>,
        /// The payload bytes, `slot_size` per slot. Loom runs one thread at a time,
        /// so the raw accesses never overlap; `access` below is what loom checks.
        bytes: UnsafeCell<Box<[u8]>>,
        /// One loom cell per slot: the ring's payload reads and writes are recorded
        /// here, and loom reports any pair not ordered by happens-before.
        access: Vec<loom::cell::UnsafeCell<()>>,
    }

    // SAFETY: the raw bytes are only touched by loom threads, which loom runs one
    // at a time; their ordering is what `access` checks.
    unsafe impl Sync for MpmcMemory {}
    // SAFETY: as above.
    unsafe impl Send for MpmcMemory {}

    /// An MPMC ring's memory for the models: loom atomics and race-checked payloads.
    #[derive(Clone)]
    pub struct LoomMpmcRegion(Arc<MpmcMemory>);

    impl std::fmt::Debug for LoomMpmcRegion {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LoomMpmcRegion")
                .field("geometry", &self.0.geometry)
                .finish()
        }
    }

    impl LoomMpmcRegion {
        /// A fresh, empty ring (call inside `loom::model`).
        pub fn new(slots: usize, slot_size: usize, endpoints: usize) -> Self {
            let geometry = MpmcGeometry::new(slots, slot_size, endpoints).unwrap();
            Self(Arc::new(MpmcMemory {
                geometry,
                control: MpmcControl::new(),
                entries: (0..endpoints).map(|_| EndpointEntry::new()).collect(),
                slots: (0..slots as u64)
                    .map(|i| SlotHeader::new(geometry.slot_state(i, 0)))
                    .collect(),
                bytes: UnsafeCell::new(vec![0; slots * slot_size].into_boxed_slice()),
                access: (0..slots)
                    .map(|_| loom::cell::UnsafeCell::new(()))
                    .collect(),
            }))
        }
    }

    // SAFETY: the geometry is fixed at creation; entries and slot headers are
    // fixed vectors of the sizes it names (indexing panics, rather than
    // misbehaving, out of range); payload `i` is `slot_size` bytes of one boxed
    // slice, disjoint from the others.
    unsafe impl MpmcRegion for LoomMpmcRegion {
        fn geometry(&self) -> MpmcGeometry {
            self.0.geometry
        }

        fn control(&self) -> &MpmcControl {
            &self.0.control
        }

        fn entry(&self, index: usize) -> &EndpointEntry {
            &self.0.entries[index]
        }

        fn slot(&self, index: usize) -> &SlotHeader {
            &self.0.slots[index]
        }

        fn payload(&self, index: usize) -> *mut u8 {
            assert!(index < self.0.slots.len());
            // SAFETY: a pointer into the boxed slice, which lives as long as the
            // Arc; no reference to the slice is kept.
            unsafe {
                (*self.0.bytes.get())
                    .as_mut_ptr()
                    .add(index * self.0.geometry.slot_size())
            }
        }

        fn will_write(&self, index: usize) {
            self.0.access[index].with_mut(|_| ());
        }

        fn will_read(&self, index: usize) {
            self.0.access[index].with(|_| ());
        }
    }

    /// A stand-in for the kernel's liveness marks: one flag per table entry, set
    /// "dead" by the endpoint itself as the last thing it does (as the kernel
    /// releases a dead process's lock after its last instruction).
    #[derive(Debug, Clone)]
    pub struct LoomLiveness(Arc<Vec<AtomicBool>>);

    impl LoomLiveness {
        /// Every entry alive.
        pub fn new(endpoints: usize) -> Self {
            Self(Arc::new(
                (0..endpoints).map(|_| AtomicBool::new(false)).collect(),
            ))
        }

        /// Marks `entry` dead. Call only when the endpoint in it will never touch
        /// the ring again (its handle leaked, its thread about to end).
        pub fn kill(&self, entry: usize) {
            // Release: the endpoint's last accesses happen before a recoverer that
            // sees it dead (the kernel's lock release does this for a process).
            self.0[entry].store(true, Ordering::Release);
        }

        /// Marks `entry` alive again: a new endpoint has taken it over (as the
        /// `shmring` crate's new holder takes the entry's lock).
        pub fn revive(&self, entry: usize) {
            // Relaxed: what a recoverer may conclude from "alive" is only to wait.
            self.0[entry].store(false, Ordering::Relaxed);
        }
    }

    // SAFETY: an entry reads dead only after `kill`, whose contract is that the
    // endpoint never touches the ring again.
    unsafe impl Liveness for LoomLiveness {
        fn is_alive(&self, entry: usize) -> bool {
            // Acquire pairs with the Release in `kill`.
            !self.0[entry].load(Ordering::Acquire)
        }
    }
}

pub use broadcast::LoomBroadcastRegion;

mod broadcast {
    use loom::sync::Arc;
    use shmring_core::broadcast::layout::{
        FRAME_SEQ_OFFSET, MAX_SUBSCRIBERS, MIN_BROADCAST_CAPACITY, OldestLine, PositionLine,
        SEQ_UNPUBLISHED, SubscriberEntry, TableLine,
    };
    use shmring_core::broadcast::{BroadcastRegion, Policy};
    use shmring_core::sync::AtomicU64;

    struct BroadcastMemory {
        positions: PositionLine,
        oldest: OldestLine,
        table: TableLine,
        entries: Vec<SubscriberEntry>,
        /// The data region, one loom atomic per 8-byte word.
        words: Vec<AtomicU64>,
        capacity: usize,
        policy: Policy,
    }

    /// A broadcast topic's two segments for the models: loom atomics throughout.
    #[derive(Clone)]
    pub struct LoomBroadcastRegion(Arc<BroadcastMemory>);

    impl std::fmt::Debug for LoomBroadcastRegion {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LoomBroadcastRegion")
                .field("capacity", &self.0.capacity)
                .field("slots", &self.0.entries.len())
                .field("policy", &self.0.policy)
                .finish()
        }
    }

    impl LoomBroadcastRegion {
        /// A fresh topic of `capacity` data bytes and `slots` subscriber slots,
        /// as `RawBroadcastRegion::init` writes it (call inside `loom::model`).
        pub fn new(capacity: usize, slots: usize, policy: Policy) -> Self {
            assert!(capacity.is_power_of_two() && capacity >= MIN_BROADCAST_CAPACITY);
            assert!((1..=MAX_SUBSCRIBERS).contains(&slots));
            let words: Vec<AtomicU64> = (0..capacity / 8).map(|_| AtomicU64::new(0)).collect();
            // The first frame's sequence word: unpublished, to carry 1 (as `init`).
            words[FRAME_SEQ_OFFSET / 8]
                .store(SEQ_UNPUBLISHED | 1, loom::sync::atomic::Ordering::Relaxed);
            Self(Arc::new(BroadcastMemory {
                positions: PositionLine::new(),
                oldest: OldestLine::new(),
                table: TableLine::new(),
                entries: (0..slots).map(|_| SubscriberEntry::new()).collect(),
                words,
                capacity,
                policy,
            }))
        }
    }

    // SAFETY: capacity (a checked power of two within the bounds), slots (checked)
    // and policy are fixed at creation; the lines, entries and words are fixed
    // fields and vectors of the Arc'd memory, so each accessor returns the same
    // atomic for the same argument (indexing panics, rather than misbehaving,
    // out of range or off the 8-byte grid).
    unsafe impl BroadcastRegion for LoomBroadcastRegion {
        fn positions(&self) -> &PositionLine {
            &self.0.positions
        }

        fn oldest(&self) -> &OldestLine {
            &self.0.oldest
        }

        fn table(&self) -> &TableLine {
            &self.0.table
        }

        fn entry(&self, slot: usize) -> &SubscriberEntry {
            &self.0.entries[slot]
        }

        fn slots(&self) -> usize {
            self.0.entries.len()
        }

        fn capacity(&self) -> usize {
            self.0.capacity
        }

        fn policy(&self) -> Policy {
            self.0.policy
        }

        fn word(&self, offset: usize) -> &AtomicU64 {
            assert!(offset % 8 == 0, "data word off the 8-byte grid: {offset}");
            &self.0.words[offset / 8]
        }
    }
}

pub use value::LoomValue;

mod value {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use shmring_core::LayoutError;
    use shmring_core::layout::STATE_KIND_VALUE;
    use shmring_core::state::header::{StateGeometry, StateInfo};
    use shmring_core::state::value::{ValueControl, ValueLayout, ValueRegion, init};

    struct ValueMemory {
        layout: ValueLayout,
        words: Vec<AtomicU64>,
        geometry: StateGeometry,
        /// The writer's liveness lock: held (true) while a writer's process lives.
        writer_alive: AtomicBool,
    }

    /// A published value's memory for the models: core's
    /// [`ValueLayout`] and value words of loom atomics, initialised and attached
    /// as a creator and an opener do it, and a stand-in for the writer's
    /// liveness lock ([`LoomValue::writer_alive`]).
    #[derive(Clone)]
    pub struct LoomValue(Arc<ValueMemory>);

    impl std::fmt::Debug for LoomValue {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LoomValue")
                .field("geometry", &self.0.geometry)
                .finish_non_exhaustive()
        }
    }

    impl LoomValue {
        /// A fresh, never written value of `value_size` bytes, initialised and
        /// attached as a creator and an opener do it (call inside `loom::model`).
        pub fn new(value_size: u32) -> Self {
            let value = Self::zeroed(value_size);
            value.init();
            let info = value.attach().expect("a fresh value attaches");
            assert_eq!(info.geometry.value_size(), value_size as usize);
            value
        }

        /// A value whose bytes are all zero, for a model to [`init`](Self::init)
        /// and [`attach`](Self::attach) from different threads.
        pub fn zeroed(value_size: u32) -> Self {
            let geometry =
                StateGeometry::new(STATE_KIND_VALUE, value_size, 0).expect("a valid value size");
            Self(Arc::new(ValueMemory {
                layout: ValueLayout::new(),
                words: (0..geometry.value_words())
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                geometry,
                writer_alive: AtomicBool::new(false),
            }))
        }

        /// Initialises the value as its creator does (core's `value::init`: the
        /// header, the words, the magic last), untyped and without flags.
        pub fn init(&self) {
            let info = StateInfo {
                geometry: self.0.geometry,
                flags: 0,
                type_tag: 0,
            };
            init(&self.0.layout, &self.0.words, &info).expect("init");
        }

        /// Validates the header as an opener does (`StateHeader::attach`).
        ///
        /// # Errors
        /// As `StateHeader::attach`: `Uninitialized` before the magic.
        pub fn attach(&self) -> Result<StateInfo, LayoutError> {
            self.0
                .layout
                .header
                .attach(STATE_KIND_VALUE, self.0.geometry.segment_size() as u64)
        }

        /// Whether the writer's process lives (its liveness lock is held).
        pub fn writer_alive(&self) -> bool {
            // SeqCst: a lock system call orders everything around it.
            self.0.writer_alive.load(Ordering::SeqCst)
        }

        /// The writer's process starts (takes the lock: before its claim) or dies
        /// (the kernel drops the lock: after its last store).
        pub fn set_writer_alive(&self, alive: bool) {
            // SeqCst: as a lock system call.
            self.0.writer_alive.store(alive, Ordering::SeqCst);
        }
    }

    impl ValueRegion for LoomValue {
        fn control(&self) -> &ValueControl {
            &self.0.layout.control
        }

        fn words(&self) -> &[AtomicU64] {
            &self.0.words
        }

        fn value_size(&self) -> usize {
            self.0.geometry.value_size()
        }
    }
}
