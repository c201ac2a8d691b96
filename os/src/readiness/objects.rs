//! Readiness for events and semaphores: each armed waiter's private pipe, and
//! the one thread per process that waits in `futex_waitv` on the words of
//! every armed event and semaphore and rings the pipe when the word moves
//! (decision 0007).
//!
//! An event or semaphore has any number of waiters in any process and no
//! doorbell a notifier could find, but it does have a futex word that every
//! notification changes and a count of waiters that makes the notifier wake
//! it. So the thread counts itself as one waiter per armed registration
//! ([`count_waiter`]), re-checks the word after counting (the counted form of
//! the eventcount: no lost wake-up), and sleeps on all the words at once, plus
//! a word of its own that a new or withdrawn registration moves.
//!
//! A registration fires when its word has moved past the waiter's key (an
//! event: the sequence differs from the key; a semaphore: the count is
//! non-zero); it is then rung once and dropped, and the waiter arms again
//! after acting. A semaphore's `post` wakes one sleeper: if that was this
//! thread, a blocked waiter elsewhere may still sleep while the armed one does
//! not take the unit, so after firing a semaphore's registrations the thread
//! passes the wake-up on (`FUTEX_WAKE` of one) when others are counted.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rustix::thread::futex::{self, Wait, WaitFlags, WaitPtr, WaitvFlags};
use shmring_core::object::{count_waiter, uncount_waiter};

use crate::futex::SharedFutex;
use crate::sync_object::ObjectSegment;
use crate::sys::bell::{self, Drained};

/// `futex_waitv` takes at most this many words; one is the thread's own.
const MAX_WORDS: usize = 128;

/// What moves an armed registration's word past its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    /// An event: a notification made after this sequence number (the key).
    NotifiedSince(u32),
    /// A semaphore: a non-zero count.
    UnitAvailable,
}

impl Condition {
    /// The value the word holds while the condition does not (the futex's
    /// expected value).
    fn waiting_value(self) -> u32 {
        match self {
            Condition::NotifiedSince(key) => key,
            Condition::UnitAvailable => 0,
        }
    }
}

/// An armed wait as the thread holds it.
struct Registration {
    segment: ObjectSegment,
    condition: Condition,
    ring: Arc<OwnedFd>,
    /// Counted in the object's `waiters` (done by the thread, before it
    /// re-checks the word).
    counted: bool,
}

impl Registration {
    fn holds(&self) -> bool {
        let word = self.segment.contents().words().word.load(Ordering::Acquire);
        // SYNC: Acquire pairs with the notifier's Release update of the word
        // (`event::notify`, `semaphore::post`): the waiter that acts on the
        // ring sees what the notifier did before (it re-reads the word itself
        // with Acquire too).
        word != self.condition.waiting_value()
    }

    fn release(self) {
        if self.counted {
            uncount_waiter(self.segment.contents().words());
        }
    }
}

struct Shared {
    registrations: Mutex<HashMap<u64, Registration>>,
    /// The thread's own word: moved (and woken) by every new or withdrawn
    /// registration, so that the thread looks again.
    changes: AtomicU32,
    next_id: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Registration>> {
        self.registrations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self) {
        // Release: pairs with the thread's Acquire load before it collects the
        // registrations (the mutex orders them anyway; the word is the wake-up).
        self.changes.fetch_add(1, Ordering::Release);
        let _ = futex::wake(&self.changes, futex::Flags::PRIVATE, 1);
    }
}

/// The process's thread, started at the first arming (`None`: it could not
/// start, and armed waiters are rung by nobody: their arming fails).
fn thread() -> Option<&'static Arc<Shared>> {
    static THREAD: OnceLock<Option<Arc<Shared>>> = OnceLock::new();
    THREAD
        .get_or_init(|| {
            let shared = Arc::new(Shared {
                registrations: Mutex::new(HashMap::new()),
                changes: AtomicU32::new(0),
                next_id: AtomicU64::new(1),
            });
            let running = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("shmring-objects".to_owned())
                .spawn(move || run(&running))
                .ok()
                .map(|_| shared)
        })
        .as_ref()
}

fn run(shared: &Shared) {
    let mut held: Vec<ObjectSegment> = Vec::new();
    let mut waits: Vec<Wait> = Vec::new();
    loop {
        // Acquire: pairs with `changed`'s Release; read before the
        // registrations, so a change after it makes the wait return at once.
        let seen = shared.changes.load(Ordering::Acquire);
        held.clear();
        waits.clear();
        let mut own = Wait::new();
        own.uaddr = WaitPtr::new(shared.changes.as_ptr().cast());
        own.val = u64::from(seen);
        own.flags = WaitFlags::SIZE_U32 | WaitFlags::PRIVATE;
        waits.push(own);
        let mut overflow = false;
        {
            let mut registrations = shared.lock();
            let mut fired = Vec::new();
            for (&id, registration) in registrations.iter_mut() {
                if !registration.counted {
                    count_waiter(
                        registration.segment.contents().words(),
                        &SharedFutex::default(),
                    );
                    registration.counted = true;
                }
                // Checked after counting: the eventcount's re-check.
                if registration.holds() {
                    fired.push(id);
                }
            }
            for id in fired {
                let Some(registration) = registrations.remove(&id) else {
                    continue;
                };
                bell::ring(registration.ring.as_fd());
                let semaphore = Arc::clone(&registration.segment);
                let condition = registration.condition;
                registration.release();
                if condition == Condition::UnitAvailable {
                    pass_on(&semaphore);
                }
            }
            for registration in registrations.values() {
                if waits.len() == MAX_WORDS {
                    overflow = true;
                    break;
                }
                let word = &registration.segment.contents().words().word;
                let mut wait = Wait::new();
                wait.uaddr = WaitPtr::new(word.as_ptr().cast());
                wait.val = u64::from(registration.condition.waiting_value());
                wait.flags = WaitFlags::SIZE_U32;
                waits.push(wait);
                held.push(Arc::clone(&registration.segment));
            }
        }
        // Words past the 127th are looked at every 25 ms.
        let timeout = overflow.then_some(futex::Timespec {
            tv_sec: 0,
            tv_nsec: 25_000_000,
        });
        crate::sys::count::one();
        // Ok: a word was woken; EAGAIN: a word did not hold its value; EINTR;
        // ETIMEDOUT: the overflow's tick. Each: look again. `held` keeps every
        // word's mapping alive while the kernel may read it.
        let deadline = timeout.map(|t| absolute(&t));
        let _ = futex::waitv(
            &waits,
            WaitvFlags::empty(),
            deadline.as_ref(),
            rustix::time::ClockId::Monotonic,
        );
    }
}

/// `now + timeout` on the monotonic clock (`futex_waitv` takes an absolute
/// time).
fn absolute(timeout: &futex::Timespec) -> futex::Timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let nanos = now.tv_nsec + timeout.tv_nsec;
    futex::Timespec {
        tv_sec: now.tv_sec + timeout.tv_sec + nanos / 1_000_000_000,
        tv_nsec: nanos % 1_000_000_000,
    }
}

/// After this thread fired a semaphore's registrations (and so perhaps took
/// the one wake-up a `post` made): wakes one more sleeper if any is counted.
fn pass_on(segment: &ObjectSegment) {
    let words = segment.contents().words();
    // Relaxed: a hint; a useless wake-up costs a system call, never a unit.
    if words.waiters.load(Ordering::Relaxed) != 0 {
        crate::sys::futex::wake(&words.word, 1);
    }
}

/// A waiter's readiness: its private pipe, and its registration with the
/// thread while armed.
pub(crate) struct ObjectBell {
    read: OwnedFd,
    ring: Arc<OwnedFd>,
    armed: Option<u64>,
}

impl std::fmt::Debug for ObjectBell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBell")
            .field("armed", &self.armed.is_some())
            .finish_non_exhaustive()
    }
}

impl ObjectBell {
    /// A fresh pipe.
    pub(crate) fn new() -> io::Result<Self> {
        let (read, write) = bell::pipe()?;
        Ok(Self {
            read,
            ring: Arc::new(write),
            armed: None,
        })
    }

    /// The readiness descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Drains the pipe, withdraws the last registration, and, unless `holds`
    /// says the condition holds already (checked after the registration, so a
    /// change in between is not lost: the thread checks too), registers for
    /// `condition` on `segment`. Returns whether it holds.
    pub(crate) fn arm(
        &mut self,
        segment: &ObjectSegment,
        condition: Condition,
        holds: impl Fn() -> bool,
    ) -> io::Result<bool> {
        let (Drained::Empty | Drained::Rung) = bell::drain(self.read.as_fd())? else {
            // Our own write end is open: the pipe cannot hang up.
            return Err(io::Error::other("an object's doorbell hung up"));
        };
        self.disarm();
        if holds() {
            return Ok(true);
        }
        let shared = thread()
            .ok_or_else(|| io::Error::other("the shmring-objects thread could not be started"))?;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        shared.lock().insert(
            id,
            Registration {
                segment: Arc::clone(segment),
                condition,
                ring: Arc::clone(&self.ring),
                counted: false,
            },
        );
        self.armed = Some(id);
        shared.changed();
        Ok(false)
    }

    /// Withdraws the registration, if still there.
    pub(crate) fn disarm(&mut self) {
        let (Some(id), Some(shared)) = (self.armed.take(), thread()) else {
            return;
        };
        let removed = shared.lock().remove(&id);
        if let Some(registration) = removed {
            registration.release();
            shared.changed();
        }
    }
}

impl Drop for ObjectBell {
    fn drop(&mut self) {
        self.disarm();
    }
}
