//! The process's one watcher thread: death as a wake-up for calls parked on the
//! futex, and the periodic fallback for armed descriptors.
//!
//! Started by the first endpoint that parks or arms, it waits in `epoll` on the
//! doorbells of every registered endpoint, for a hang-up only (every ringer gone:
//! the peer's process died or dropped its endpoint). On one it sets the
//! endpoint's hang-up hint and wakes the calls parked on the endpoint's segment;
//! they probe the liveness lock at the short interval, and the lock decides.
//!
//! While any registered endpoint is armed it also ticks every
//! [`LIVENESS_INTERVAL`]: it probes each armed endpoint's peer and rings the
//! endpoint's own doorbell once it finds the peer gone with no hang-up seen (a
//! forked or hostile process may hold the ringer's end open), and rings a polled
//! endpoint's doorbell every tick. That is the bound an armed descriptor gets when
//! no hang-up can come, the same as a parked call's own probe.
//!
//! A forked child has no watcher thread (threads do not survive `fork`): the first
//! registration in the child starts its own.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::blocking::LIVENESS_INTERVAL;
use crate::sys::bell::{self, Watch};
use crate::sys::{PollFlags, poll_now};

/// What the watcher does for an endpoint when its peer may have gone.
pub(crate) struct Probe {
    /// Whether the peer is gone now (the liveness-lock probe).
    pub(crate) peer_gone: Box<dyn Fn() -> bool + Send + Sync>,
    /// Wakes the calls parked on the endpoint's segment, in every process.
    pub(crate) wake_parked: Box<dyn Fn() + Send + Sync>,
    /// For a doorbell shared by several waiters (an MPMC side): whether the
    /// shared `ARMED` bit is clear. Another waiter may have drained the ring
    /// meant for this one and died before arming again; an armed endpoint that
    /// finds the bit clear on a tick is rung, at worst for nothing.
    pub(crate) arming_consumed: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

/// An endpoint as the watcher sees it.
pub(crate) struct Target {
    pub(crate) doorbell: Arc<OwnedFd>,
    pub(crate) private_writer: Option<Arc<OwnedFd>>,
    pub(crate) hung_up: Arc<AtomicBool>,
    /// Set when a tick's probe found the peer gone (and rang the doorbell for
    /// it), cleared when one finds it alive: with `hung_up`, the endpoint's hint.
    pub(crate) found_gone: Arc<AtomicBool>,
    pub(crate) probe: Probe,
}

struct Entry {
    target: Target,
    /// The endpoint has armed its descriptor: tick for it.
    armed: AtomicBool,
}

/// An endpoint's registration; dropping it ends the watch.
pub(crate) struct Registration {
    token: u64,
    entry: Arc<Entry>,
    watcher: Arc<Shared>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Whether the endpoint waits by arming its descriptor (the watcher ticks
    /// for it) or by parking (it probes for itself).
    pub(crate) fn set_armed(&self, armed: bool) {
        // Relaxed: a hint for the next tick; the tick's probe decides.
        if !self.entry.armed.swap(armed, Ordering::Relaxed) && armed {
            self.watcher.nudge();
        }
    }
}

impl Drop for Registration {
    /// Ends the watch; the last registration of the process stops the thread and
    /// joins it (so a process that closed its endpoints exits with no thread of
    /// ours left, and leaves nothing for a leak checker). A registration a forked
    /// child inherited only leaves its copy of the table: the `epoll` instance is
    /// the parent's too.
    fn drop(&mut self) {
        let mut global = WATCHER.lock().unwrap_or_else(PoisonError::into_inner);
        let ours = self.watcher.pid == std::process::id();
        let left = {
            let mut entries = self.watcher.lock();
            entries.remove(&self.token);
            entries.len()
        };
        if !ours {
            return;
        }
        bell::epoll_forget(
            self.watcher.epoll.as_fd(),
            self.entry.target.doorbell.as_fd(),
        );
        let current = global
            .as_ref()
            .is_some_and(|g| Arc::ptr_eq(&g.shared, &self.watcher));
        if left == 0 && current {
            let stopped = global.take();
            drop(global);
            if let Some(Global {
                shared,
                thread: Some(thread),
                ..
            }) = stopped
            {
                // Relaxed: the nudge's write and the thread's read of the pipe
                // order it.
                shared.stop.store(true, Ordering::Relaxed);
                shared.nudge();
                let _ = thread.join();
            }
        }
    }
}

/// The watcher's state shared with registrations.
struct Shared {
    /// The process that started it.
    pid: u32,
    /// Set when the last registration goes: the thread returns.
    stop: AtomicBool,
    epoll: OwnedFd,
    /// An eventfd-like pipe that wakes the thread (a new armed endpoint).
    wake_read: OwnedFd,
    wake_write: OwnedFd,
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nudge(&self) {
        bell::ring(self.wake_write.as_fd());
    }
}

/// The token of the watcher's own wake-up pipe.
const WAKE_TOKEN: u64 = 0;

/// The process's watcher: the process it was started in (a forked child starts
/// its own), its shared state, and the next token.
struct Global {
    pid: u32,
    shared: Arc<Shared>,
    next_token: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

static WATCHER: Mutex<Option<Global>> = Mutex::new(None);

/// Registers `target` (armed or not), starting the watcher if this process has
/// none. `None` if it cannot be started (out of descriptors or threads): the
/// endpoint keeps its own periodic probe.
pub(crate) fn register(target: Target, armed: bool) -> Option<Registration> {
    if disabled() {
        return None;
    }
    let mut global = WATCHER.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if global.as_ref().is_none_or(|g| g.pid != pid) {
        let (shared, thread) = start(pid)?;
        *global = Some(Global {
            pid,
            shared,
            next_token: WAKE_TOKEN + 1,
            thread: Some(thread),
        });
    }
    let global = global.as_mut()?;
    let token = global.next_token;
    global.next_token += 1;
    let shared = Arc::clone(&global.shared);
    let entry = Arc::new(Entry {
        target,
        armed: AtomicBool::new(armed),
    });
    shared.lock().insert(token, Arc::clone(&entry));
    if bell::epoll_watch(
        shared.epoll.as_fd(),
        entry.target.doorbell.as_fd(),
        token,
        Watch::HangUpOnce,
        false,
    )
    .is_err()
    {
        shared.lock().remove(&token);
        return None;
    }
    shared.nudge();
    Some(Registration {
        token,
        entry,
        watcher: shared,
    })
}

/// The environment variable that turns the watcher off for the process (read
/// once): deaths are then seen by the periodic probe only, as before the
/// watcher existed. For measuring what it gains, and for a process that may not
/// start threads.
pub const NO_WATCHER_VAR: &str = "SHMRING_NO_WATCHER";

fn disabled() -> bool {
    static DISABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DISABLED.get_or_init(|| std::env::var_os(NO_WATCHER_VAR).is_some_and(|v| v == "1"))
}

fn start(pid: u32) -> Option<(Arc<Shared>, std::thread::JoinHandle<()>)> {
    let epoll = bell::epoll_create().ok()?;
    let (wake_read, wake_write) = bell::pipe().ok()?;
    bell::epoll_watch(
        epoll.as_fd(),
        wake_read.as_fd(),
        WAKE_TOKEN,
        Watch::Readable,
        false,
    )
    .ok()?;
    let shared = Arc::new(Shared {
        pid,
        stop: AtomicBool::new(false),
        epoll,
        wake_read,
        wake_write,
        entries: Mutex::new(HashMap::new()),
    });
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("shmring-watcher".to_owned())
        .spawn(move || run(&thread_shared))
        .ok()?;
    Some((shared, thread))
}

/// The thread: wait for hang-ups (and, while anything is armed or hung up, tick).
fn run(shared: &Shared) {
    let mut events = Vec::new();
    let mut last_tick = Instant::now();
    loop {
        let ticking = shared.lock().values().any(|e| {
            // Relaxed: hints; a tick looks again.
            e.armed.load(Ordering::Relaxed) || e.target.hung_up.load(Ordering::Relaxed)
        });
        let until = ticking.then(|| last_tick + LIVENESS_INTERVAL);
        if bell::epoll_wait(shared.epoll.as_fd(), until, &mut events).is_err() {
            // Cannot watch: endpoints keep their own periodic probes.
            std::thread::sleep(LIVENESS_INTERVAL);
            continue;
        }
        for &(token, hung_up) in &events {
            if token == WAKE_TOKEN {
                let _ = bell::drain(shared.wake_read.as_fd());
                // Relaxed: ordered by the pipe (see `Drop for Registration`).
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            let entry = shared.lock().get(&token).cloned();
            if let (Some(entry), true) = (entry, hung_up) {
                // SYNC: SeqCst, then the wake's fence and load of the signal
                // words: the store-buffer pairing with a parking call
                // (`ParkFutex`, blocking.rs), which loads the hint after it
                // registered as a waiter.
                entry.target.hung_up.store(true, Ordering::SeqCst);
                (entry.target.probe.wake_parked)();
            }
        }
        if ticking
            && last_tick.elapsed() >= LIVENESS_INTERVAL.saturating_sub(Duration::from_millis(1))
        {
            last_tick = Instant::now();
            tick(shared);
        }
    }
}

/// Every [`LIVENESS_INTERVAL`] while anything is armed or hung up.
fn tick(shared: &Shared) {
    let entries: Vec<(u64, Arc<Entry>)> = shared
        .lock()
        .iter()
        .map(|(token, entry)| (*token, Arc::clone(entry)))
        .collect();
    for (token, entry) in entries {
        let target = &entry.target;
        // A hang-up that has ended (a new ringer opened the FIFO): watch for the
        // next one.
        if target.hung_up.load(Ordering::Relaxed) {
            let hup = poll_now(target.doorbell.as_fd(), PollFlags::empty())
                .map_or(true, |events| events.contains(PollFlags::HUP));
            if !hup {
                target.hung_up.store(false, Ordering::SeqCst);
                let _ = bell::epoll_watch(
                    shared.epoll.as_fd(),
                    target.doorbell.as_fd(),
                    token,
                    Watch::HangUpOnce,
                    true,
                );
            }
        }
        if !entry.armed.load(Ordering::Relaxed) {
            continue;
        }
        if let Some(writer) = &target.private_writer {
            // Polled: the descriptor is readable every interval while armed.
            bell::ring(writer.as_fd());
            continue;
        }
        // A hung-up doorbell is readable already, but an edge-triggered loop
        // (an async reactor) saw that once: if its arming then found the peer's
        // lock still held (a dying process closes its descriptors one by one),
        // only a new ring wakes it. So the probe below runs for it too.
        if target.probe.arming_consumed.as_ref().is_some_and(|f| f()) {
            let _ = bell::ring_own(target.doorbell.as_fd());
        }
        if (target.probe.peer_gone)() {
            // SYNC: SeqCst, then the wake's fence: as for a hang-up (`run`).
            if !target.found_gone.swap(true, Ordering::SeqCst) {
                let _ = bell::ring_own(target.doorbell.as_fd());
                (target.probe.wake_parked)();
            }
        } else {
            target.found_gone.store(false, Ordering::SeqCst);
        }
    }
}
