//! The robust lock of a `SharedMutex` (issue 23), uncontended: one thread locks
//! and unlocks, nobody waits. Core's protocol (`RobustLock::try_lock`, the
//! `shmring` crate's first step of every lock, then `unlock`) on its lock line
//! and a one-slot table in a shared anonymous mapping, against glibc's robust
//! process-shared `pthread_mutex` (`PTHREAD_PROCESS_SHARED`,
//! `PTHREAD_MUTEX_ROBUST`) in the same kind of memory, in the same run. The
//! ratio is the figure to quote (target ≤ 1.1×; `/work/shared/BENCHMARKING.md`
//! in the project's notes: ratios from one run only).
//!
//! Run: `cargo bench -p shmring-benches --bench shared_mutex -- --warm-up-time 1
//! --measurement-time 4`.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::num::NonZeroU32;
use std::ptr::{self, NonNull};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use shmring_core::state::mutex::{
    Acquired, MUTEX_LINE_OFFSET, MUTEX_TABLE_OFFSET, MutexLine, MutexSlot, RobustLock,
};
use shmring_core::sync::AtomicU32;
use shmring_core::{Futex, TimedOut};

const MAP_LEN: usize = 4096;

/// A shared anonymous mapping of one page (page-aligned, so 128-byte aligned),
/// zeroed by the kernel, unmapped on drop.
struct Mapping(NonNull<u8>);

impl Mapping {
    fn new() -> Self {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        Self(NonNull::new(p.cast()).expect("mmap returned null"))
    }

    fn at<T>(&self, offset: usize) -> *mut T {
        assert!(offset + size_of::<T>() <= MAP_LEN);
        assert_eq!(offset % align_of::<T>(), 0);
        // SAFETY: in bounds (checked above).
        unsafe { self.0.as_ptr().add(offset).cast() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once; nothing borrows it any more.
        unsafe { libc::munmap(self.0.as_ptr().cast(), MAP_LEN) };
    }
}

/// The Linux futex on a shared word (the `shmring` crate's own is private): an
/// uncontended unlock never calls it.
struct SysFutex;

impl Futex for SysFutex {
    type Deadline = Instant;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        let timeout = match deadline {
            Some(d) => {
                let left = d.checked_duration_since(Instant::now()).ok_or(TimedOut)?;
                Some(libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos().into(),
                })
            }
            None => None,
        };
        let ts = timeout.as_ref().map_or(ptr::null(), ptr::from_ref);
        // SAFETY: a futex wait on a live word, with a valid or null timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts,
            )
        };
        Ok(())
    }

    fn wake(&self, word: &AtomicU32) {
        // SAFETY: a futex wake on a live word.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
    }

    fn wake_one(&self, word: &AtomicU32) {
        // SAFETY: a futex wake on a live word.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
    }
}

/// A robust process-shared `pthread_mutex` initialised in place at `m`.
///
/// # Safety
/// `m` points to writable, suitably aligned memory that nothing else uses.
unsafe fn robust_pthread_mutex(m: *mut libc::pthread_mutex_t) {
    // SAFETY: the attribute object lives on this stack frame and is destroyed
    // once; `m` is valid per the caller.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
        assert_eq!(
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            0
        );
        assert_eq!(
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
            0
        );
        assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
        assert_eq!(libc::pthread_mutexattr_destroy(&mut attr), 0);
    }
}

fn uncontended(c: &mut Criterion) {
    let ours = Mapping::new();
    let theirs = Mapping::new();
    // SAFETY: the zeroed mapping holds a free lock line and a free slot (all
    // atomics, every bit pattern valid); they live as long as `ours`, which
    // outlives every use below.
    let (line, table) = unsafe {
        (
            &*ours.at::<MutexLine>(MUTEX_LINE_OFFSET),
            std::slice::from_raw_parts(ours.at::<MutexSlot>(MUTEX_TABLE_OFFSET), 1),
        )
    };
    let lock = RobustLock::new(line, table);
    let id = lock
        .claim_slot(0, 0, NonZeroU32::new(std::process::id()).expect("pid"))
        .expect("slot");
    let pm = theirs.at::<libc::pthread_mutex_t>(MUTEX_LINE_OFFSET);
    // SAFETY: `pm` lies in our own mapping, aligned (checked by `at`), unused.
    unsafe { robust_pthread_mutex(pm) };

    let mut group = c.benchmark_group("shared_mutex_uncontended_lock_unlock");
    let mut ours_count = 0u64;
    group.bench_function("shmring_robust_lock", |b| {
        b.iter(|| {
            let got = lock.try_lock(black_box(id)).expect("free");
            debug_assert_eq!(got, Acquired::Clean);
            lock.unlock(id, &SysFutex).expect("held");
            ours_count += 1;
        });
    });
    let mut theirs_count = 0u64;
    group.bench_function("glibc_robust_pshared_pthread_mutex", |b| {
        b.iter(|| {
            // SAFETY: an initialised mutex in a live mapping, this thread only.
            unsafe {
                assert_eq!(libc::pthread_mutex_lock(black_box(pm)), 0);
                assert_eq!(libc::pthread_mutex_unlock(pm), 0);
            }
            theirs_count += 1;
        });
    });
    group.finish();

    // Correctness before speed: both locks are free again and nothing died.
    assert!(ours_count > 0 && theirs_count > 0);
    assert_eq!(lock.owner(), None);
    assert_eq!((lock.deaths(), lock.is_inconsistent()), (0, false));
    assert_eq!(lock.try_lock(id), Ok(Acquired::Clean));
    lock.unlock(id, &SysFutex).expect("held");
    // SAFETY: as above; destroyed once, unlocked.
    unsafe {
        assert_eq!(libc::pthread_mutex_trylock(pm), 0);
        assert_eq!(libc::pthread_mutex_unlock(pm), 0);
        assert_eq!(libc::pthread_mutex_destroy(pm), 0);
    }
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
