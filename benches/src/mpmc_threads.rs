//! In-process MPMC runs shared by the criterion bench `benches/mpmc_threads.rs`
//! and the alternating driver `examples/mpmc_alternating.rs`: `P` producer and
//! `C` consumer threads move 8-byte messages (a `u64` each) through one queue.
//!
//! [`run`] times from the moment every thread is ready to the moment the last
//! consumer has received its share, checks the sum of what the consumers received
//! and counts the polls that found nothing to do. Consumers poll and back off
//! (crossbeam's `Backoff::snooze`: spin, then yield the CPU) when empty, producers
//! when full. Yielding matters with more threads than cores: a thread descheduled
//! between claiming a slot and publishing it holds up the others.

use std::alloc::{self, Layout};
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use shmring_core::{
    MpmcConsumer, MpmcPopError, MpmcProducer, MpmcPushError, RawMpmcRegion, mpmc_segment_layout,
};

/// Why a try-send or try-receive did nothing this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Full (send), empty (receive), or another thread in the way: try again.
    Again,
    /// shmring only: an endpoint stopped mid-operation holds the way (`Stalled`).
    Stalled,
}

/// What one [`run`] measured (the default: nothing run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    /// From every thread ready to the last consumer done.
    pub elapsed: Duration,
    /// Messages moved: the share of each producer times the producers.
    pub messages: u64,
    /// Receives that found nothing (empty or, shmring, stalled or contended).
    pub empty_polls: u64,
    /// Sends that found no room (full or, shmring, stalled or contended).
    pub full_polls: u64,
    /// shmring only: `Stalled` answers to senders and receivers.
    pub stalled: u64,
}

impl Run {
    /// Elapsed nanoseconds per message; NaN when no message moved.
    pub fn ns_per_message(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.messages as f64
    }
}

/// Where a run's threads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the scheduler puts them.
    Free,
    /// Producer `i` and consumer `i` pinned to the `i`-th allowed CPU (modulo
    /// their number): on two CPUs with 2×2, one producer and one consumer per core.
    Mixed,
    /// Producers pinned to the first allowed CPU, consumers to the second.
    Split,
}

impl Placement {
    /// The CPU (from `cpus`, the allowed ones) of producer `index` (`consumer`
    /// false) or consumer `index`; `None` for [`Placement::Free`].
    fn cpu(self, cpus: &[usize], consumer: bool, index: usize) -> Option<usize> {
        match self {
            Placement::Free => None,
            Placement::Mixed => Some(cpus[index % cpus.len()]),
            Placement::Split => Some(cpus[usize::from(consumer) % cpus.len()]),
        }
    }
}

/// Pins the calling thread to `cpu`, if any.
///
/// # Panics
/// If the kernel refuses: a run that claims a placement must have it.
fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        crate::cross::pin_to(cpu).unwrap_or_else(|e| panic!("pinning to CPU {cpu}: {e}"));
    }
}

/// A thread's count, added to a shared counter when dropped.
struct Tally<'a>(u64, &'a AtomicU64);

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.1.fetch_add(self.0, Ordering::Relaxed);
    }
}

/// The threads of a run: how many of each, how many messages each producer
/// sends, and where the threads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads {
    /// Producer threads.
    pub producers: usize,
    /// Consumer threads (at least one).
    pub consumers: usize,
    /// Messages each producer sends.
    pub per_producer: u64,
    /// Where the threads go.
    pub placement: Placement,
}

impl Threads {
    /// `producers` × `consumers` threads wherever the scheduler puts them, moving
    /// `total` messages (rounded up to a multiple of the producers).
    pub fn free(producers: usize, consumers: usize, total: u64) -> Self {
        Self {
            producers,
            consumers,
            per_producer: total.max(1).div_ceil(producers as u64),
            placement: Placement::Free,
        }
    }
}

/// Runs `threads.producers` threads sending `per_producer` messages each
/// (producer `p` sends `p * per_producer..(p + 1) * per_producer`) and
/// `threads.consumers` threads receiving until all have arrived, placed as
/// `threads.placement` says. `make_sender` and `make_receiver` are called once per
/// thread, before the threads start; a sender or receiver returns a [`Miss`] when
/// it did nothing this time.
///
/// # Panics
/// If the consumers received the wrong messages ("messages lost or duplicated"),
/// there are no consumers, or a placement's pinning fails.
pub fn run<S, R>(
    threads: Threads,
    mut make_sender: impl FnMut() -> S,
    mut make_receiver: impl FnMut() -> R,
) -> Run
where
    S: FnMut(u64) -> Result<(), Miss> + Send,
    R: FnMut() -> Result<u64, Miss> + Send,
{
    let Threads {
        producers,
        consumers,
        per_producer: per,
        placement,
    } = threads;
    let total = per * producers as u64;
    let barrier = Barrier::new(producers + consumers + 1);
    let received = AtomicU64::new(0);
    let sum = AtomicU64::new(0);
    let [empty_polls, full_polls, stalled] = [(); 3].map(|()| AtomicU64::new(0));
    let cpus = match placement {
        Placement::Free => Vec::new(),
        _ => crate::cross::allowed_cpus().expect("sched_getaffinity"),
    };
    let cpus = &cpus;
    let elapsed = thread::scope(|s| {
        for p in 0..producers as u64 {
            let mut send = make_sender();
            let (barrier, full_polls, stalled) = (&barrier, &full_polls, &stalled);
            s.spawn(move || {
                pin(placement.cpu(cpus, false, p as usize));
                let mut full = Tally(0, full_polls);
                let mut stalls = Tally(0, stalled);
                barrier.wait();
                for i in p * per..(p + 1) * per {
                    let backoff = Backoff::new();
                    while let Err(miss) = send(i) {
                        full.0 += 1;
                        if miss == Miss::Stalled {
                            stalls.0 += 1;
                        }
                        backoff.snooze();
                    }
                }
            });
        }
        let done: Vec<_> = (0..consumers)
            .map(|c| {
                let mut recv = make_receiver();
                let (barrier, received, sum) = (&barrier, &received, &sum);
                let (empty_polls, stalled) = (&empty_polls, &stalled);
                s.spawn(move || {
                    pin(placement.cpu(cpus, true, c));
                    let mut empty = Tally(0, empty_polls);
                    let mut stalls = Tally(0, stalled);
                    barrier.wait();
                    let (mut count, mut local) = (0u64, 0u64);
                    let backoff = Backoff::new();
                    loop {
                        match recv() {
                            Ok(v) => {
                                backoff.reset();
                                local = local.wrapping_add(v);
                                count += 1;
                                // Publish progress now and then, and at the end.
                                if count == 256 {
                                    received.fetch_add(count, Ordering::Relaxed);
                                    count = 0;
                                }
                            }
                            Err(miss) => {
                                empty.0 += 1;
                                if miss == Miss::Stalled {
                                    stalls.0 += 1;
                                }
                                if count != 0 {
                                    received.fetch_add(count, Ordering::Relaxed);
                                    count = 0;
                                }
                                if received.load(Ordering::Relaxed) >= total {
                                    break;
                                }
                                backoff.snooze();
                            }
                        }
                    }
                    sum.fetch_add(local, Ordering::Relaxed);
                    Instant::now()
                })
            })
            .collect();
        // Before the barrier: a consumer may finish before this thread returns
        // from it (the clock counts the barrier's release, a few microseconds).
        let start = Instant::now();
        barrier.wait();
        let end = done.into_iter().map(|h| h.join().unwrap()).max().unwrap();
        end - start
    });
    assert_eq!(
        sum.load(Ordering::Relaxed),
        total.wrapping_mul(total - 1) / 2,
        "messages lost or duplicated"
    );
    Run {
        elapsed,
        messages: total,
        empty_polls: empty_polls.into_inner(),
        full_polls: full_polls.into_inner(),
        stalled: stalled.into_inner(),
    }
}

/// An MPMC segment of 8-byte slots in heap memory.
#[derive(Debug)]
pub struct HeapMpmc {
    ptr: *mut u8,
    layout: Layout,
    region: RawMpmcRegion,
}

impl HeapMpmc {
    /// A segment of `slots` 8-byte slots with room for `endpoints` endpoints.
    ///
    /// # Panics
    /// If the geometry is invalid or memory runs out.
    pub fn new(slots: usize, endpoints: usize) -> Self {
        let layout = mpmc_segment_layout(slots, 8, endpoints).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        // SAFETY: the allocation lives until `drop`, after every handle made from
        // the region (`region`'s callers promise it), and is touched only through
        // the region.
        let region = unsafe { RawMpmcRegion::init(ptr, layout.size(), slots, 8, endpoints) }
            .expect("fresh layout");
        Self {
            ptr,
            layout,
            region,
        }
    }

    /// The segment's region, to register endpoints on.
    ///
    /// # Safety
    /// Every clone of the region and every handle made from it must be dropped
    /// before `self` (which frees the memory they point into).
    pub unsafe fn region(&self) -> &RawMpmcRegion {
        &self.region
    }
}

impl Drop for HeapMpmc {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr, self.layout) };
    }
}

/// [`run`] over shmring's MPMC ring of `capacity` slots in heap memory.
pub fn shmring(capacity: usize, threads: Threads) -> Run {
    let ring = HeapMpmc::new(capacity, threads.producers + threads.consumers);
    // SAFETY: the handles live in the run's threads, which end before `ring`.
    let region = unsafe { ring.region() };
    let token = NonZeroU32::new(1).unwrap();
    run(
        threads,
        || {
            let mut tx = MpmcProducer::register(region.clone(), token).unwrap();
            move |v: u64| match tx.push(&v.to_ne_bytes()) {
                Ok(()) => Ok(()),
                Err(MpmcPushError::Full | MpmcPushError::Contended) => Err(Miss::Again),
                Err(MpmcPushError::Stalled { .. }) => Err(Miss::Stalled),
                Err(e) => panic!("send: {e}"),
            }
        },
        || {
            let mut rx = MpmcConsumer::register(region.clone(), token).unwrap();
            move || {
                let mut buf = [0u8; 8];
                match rx.pop(&mut buf) {
                    Ok(_) => Ok(u64::from_ne_bytes(buf)),
                    Err(MpmcPopError::Empty | MpmcPopError::Contended) => Err(Miss::Again),
                    Err(MpmcPopError::Stalled { .. }) => Err(Miss::Stalled),
                    Err(e) => panic!("recv: {e}"),
                }
            }
        },
    )
}

/// [`run`] over crossbeam's `ArrayQueue` of `capacity` slots.
pub fn array_queue(capacity: usize, threads: Threads) -> Run {
    let queue = ArrayQueue::new(capacity);
    run(
        threads,
        || {
            let queue = &queue;
            move |v: u64| queue.push(v).map_err(|_| Miss::Again)
        },
        || {
            let queue = &queue;
            move || queue.pop().ok_or(Miss::Again)
        },
    )
}
