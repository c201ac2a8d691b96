//! Readiness descriptors: the doorbell each endpoint can hand to an event loop,
//! where its doorbells come from (the rendezvous), and what wakes a waiter when
//! its peer dies (docs/design/readiness.md, decision 0005).
//!
//! A ring has two doorbells, one per waiting side: the **data** bell, which a
//! sender rings for a receiver armed for a message, and the **space** bell, which
//! a receiver rings for a sender armed for room. Each is a pipe: the waiter holds
//! the read end (its readiness descriptor), the ringer a write end. So the read
//! end becomes readable on a ring, and also hangs up when every ringer has gone:
//! one descriptor says "a message" and "the peer has gone".
//!
//! - **Named segments:** a FIFO beside the segment (`/dev/shm/shmring-bell.<name>.data`
//!   and `.space`; `<path>.data.bell` and `.space.bell` beside a file), created and
//!   removed with it, opened `O_NOFOLLOW` and checked like it (a FIFO, its owner,
//!   its mode). The waiter opens it read-only, the ringer read-write: no `ENXIO`
//!   before a waiter comes, no `SIGPIPE` after it went.
//! - **Descriptors that travel** (connections, a memfd handed to a child): an
//!   anonymous pipe per bell, passed with the segment. The ringer keeps a read end
//!   too, so a ring never raises `SIGPIPE`.
//! - **Neither** (a FIFO refused or missing, a memfd opened from a bare
//!   descriptor): the endpoint falls back to [`Wakeups::Polled`]: a private pipe
//!   that the process's watcher rings every
//!   [`LIVENESS_INTERVAL`](crate::LIVENESS_INTERVAL) while the endpoint is armed.
//!
//! Death wakes a futex sleeper through the process's one watcher thread
//! ([`watcher`]): it sees a doorbell hang up and wakes the parked calls, which
//! probe the liveness lock (the lock decides `Disconnected`, never the hang-up).

pub(crate) mod objects;
mod traits;
pub(crate) mod watcher;

pub use traits::{ConditionReadiness, Interest, ReceiveReadiness, SendReadiness};

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use shmring_core::sync::AtomicU32;

use crate::error::Role;
use crate::futex::{Notifier, SharedFutex};
use crate::sys::bell::{self, Drained, FifoEnd};

pub use shmring_core::Readiness;

/// How an endpoint's readiness descriptor learns of messages (or room) and of
/// its peer's death.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wakeups {
    /// The peer rings the descriptor; the peer's death hangs it up. An armed
    /// descriptor becomes readable at once on either.
    Doorbell,
    /// No doorbell could be shared with the peer (`reason` says why): the
    /// descriptor becomes readable every
    /// [`LIVENESS_INTERVAL`](crate::LIVENESS_INTERVAL) while armed, and on the
    /// peer's death within that interval of the kernel releasing its locks.
    Polled {
        /// Why there is no doorbell.
        reason: String,
    },
}

impl fmt::Display for Wakeups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wakeups::Doorbell => f.write_str("doorbell"),
            Wakeups::Polled { reason } => write!(f, "polled every 25 ms ({reason})"),
        }
    }
}

/// Which waiter a bell wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bell {
    /// Receivers armed for a message; senders ring it.
    Data,
    /// Senders armed for room; receivers ring it.
    Space,
}

impl Bell {
    /// The bell the holder of `role` waits on.
    pub(crate) fn waited_on_by(role: Role) -> Self {
        match role {
            Role::Sender => Bell::Space,
            Role::Receiver => Bell::Data,
        }
    }

    /// The other bell.
    fn other(self) -> Self {
        match self {
            Bell::Data => Bell::Space,
            Bell::Space => Bell::Data,
        }
    }

    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Bell::Data => "data",
            Bell::Space => "space",
        }
    }
}

/// A pipe's two ends, each present while this process holds it.
#[derive(Debug, Default)]
pub(crate) struct PipeEnds {
    pub(crate) read: Option<OwnedFd>,
    pub(crate) write: Option<OwnedFd>,
}

impl PipeEnds {
    /// A fresh pipe.
    pub(crate) fn new() -> io::Result<Self> {
        let (read, write) = bell::pipe()?;
        Ok(Self {
            read: Some(read),
            write: Some(write),
        })
    }
}

/// Where a segment's doorbells come from.
#[derive(Debug)]
pub(crate) enum BellSource {
    /// FIFOs beside a named segment, checked on open against the segment's trust
    /// rules.
    Fifos {
        data: PathBuf,
        space: PathBuf,
        owner: u32,
        allowed_mode: u32,
    },
    /// Pipes handed over with the segment (or made with it).
    Pipes { data: PipeEnds, space: PipeEnds },
    /// None: endpoints fall back to [`Wakeups::Polled`].
    Unavailable { reason: String },
}

impl BellSource {
    /// Fresh pipes for both bells (a memfd's); [`BellSource::Unavailable`] if the
    /// process is out of descriptors.
    pub(crate) fn new_pipes() -> Self {
        match (PipeEnds::new(), PipeEnds::new()) {
            (Ok(data), Ok(space)) => BellSource::Pipes { data, space },
            (Err(e), _) | (_, Err(e)) => BellSource::Unavailable {
                reason: format!("pipe: {e}"),
            },
        }
    }

    fn pipe(&self, which: Bell) -> Option<&PipeEnds> {
        match (self, which) {
            (BellSource::Pipes { data, .. }, Bell::Data) => Some(data),
            (BellSource::Pipes { space, .. }, Bell::Space) => Some(space),
            _ => None,
        }
    }

    /// The descriptors to hand a child or a peer with the segment, in the order
    /// [`BellSource::from_passed`] takes them: data read, data write, space read,
    /// space write. Empty unless the bells are pipes this process still holds.
    pub(crate) fn passable(&self) -> Vec<BorrowedFd<'_>> {
        match self {
            BellSource::Pipes { data, space } => {
                let all = [
                    data.read.as_ref(),
                    data.write.as_ref(),
                    space.read.as_ref(),
                    space.write.as_ref(),
                ];
                if all.iter().all(Option::is_some) {
                    all.into_iter().flatten().map(AsFd::as_fd).collect()
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    /// Takes out the ends a peer of role `peer` needs (the read end of the bell
    /// it waits on, the write end of the one it rings), to pass to it: this
    /// process no longer holds them, so that the peer's death hangs our doorbell
    /// up. `None` unless both are here.
    pub(crate) fn take_for_peer(&mut self, peer: Role) -> Option<[OwnedFd; 2]> {
        let BellSource::Pipes { data, space } = self else {
            return None;
        };
        let (waited, rung) = match Bell::waited_on_by(peer) {
            Bell::Data => (data, space),
            Bell::Space => (space, data),
        };
        if waited.read.is_none() || rung.write.is_none() {
            return None;
        }
        Some([waited.read.take()?, rung.write.take()?])
    }

    /// The bells of a segment whose ends for `role` were passed as
    /// [`take_for_peer`](Self::take_for_peer) took them out.
    pub(crate) fn for_role(role: Role, [read, write]: [OwnedFd; 2]) -> Self {
        let waited = PipeEnds {
            read: Some(read),
            write: None,
        };
        let rung = PipeEnds {
            read: None,
            write: Some(write),
        };
        let (data, space) = match Bell::waited_on_by(role) {
            Bell::Data => (waited, rung),
            Bell::Space => (rung, waited),
        };
        BellSource::Pipes { data, space }
    }

    /// Pipes passed by [`BellSource::passable`]'s order; anything else (fewer
    /// than four, or not pipes) is [`BellSource::Unavailable`].
    pub(crate) fn from_passed(fds: Vec<OwnedFd>) -> Self {
        let all_pipes = fds.len() == 4
            && fds.iter().all(|fd| {
                crate::sys::metadata(fd.as_fd()).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_fifo()
                })
            });
        if !all_pipes {
            return BellSource::Unavailable {
                reason: format!(
                    "{} descriptors passed for the doorbells, not four pipes",
                    fds.len()
                ),
            };
        }
        let mut fds = fds.into_iter().map(Some);
        let mut next = || fds.next().flatten();
        let data = PipeEnds {
            read: next(),
            write: next(),
        };
        let space = PipeEnds {
            read: next(),
            write: next(),
        };
        BellSource::Pipes { data, space }
    }

    /// The doorbells of an endpoint of `role`: the read end of the bell it waits
    /// on, and a ringer's end of the other. Falls back to a private pipe (polled)
    /// where the bell it waits on cannot be had; a missing ringer's end only costs
    /// the peer its doorbell (the peer then falls back by the watcher's check).
    ///
    /// # Errors
    /// Only if the process cannot make even the private pipe (out of descriptors).
    pub(crate) fn endpoint_bells(&self, role: Role) -> io::Result<Bells> {
        let waits_on = Bell::waited_on_by(role);
        let rings = waits_on.other();
        let (doorbell, ringer) = match self {
            BellSource::Fifos {
                data,
                space,
                owner,
                allowed_mode,
            } => {
                let path = |b: Bell| if b == Bell::Data { data } else { space };
                let open = |b: Bell, end| open_checked(path(b), end, *owner, *allowed_mode);
                (
                    open(waits_on, FifoEnd::Waiter),
                    open(rings, FifoEnd::Ringer).ok(),
                )
            }
            BellSource::Pipes { .. } => {
                let dup = |fd: Option<&OwnedFd>| -> io::Result<OwnedFd> {
                    fd.ok_or_else(|| io::Error::other("end not held"))?
                        .try_clone()
                };
                let waited = self.pipe(waits_on).expect("pipes have both bells");
                let rung = self.pipe(rings).expect("pipes have both bells");
                let doorbell = dup(waited.read.as_ref())
                    .map_err(|e| format!("no doorbell passed for this side: {e}"));
                // The ringer keeps a read end too, so that a ring never raises
                // SIGPIPE: its own copy, or one opened afresh from the write end.
                let ringer = dup(rung.write.as_ref()).and_then(|write| {
                    let reader = match rung.read.as_ref() {
                        Some(read) => read.try_clone()?,
                        None => bell::reader_of(write.as_fd())?,
                    };
                    Ok(Ringer {
                        write,
                        _reader: Some(reader),
                    })
                });
                return Bells::from_parts(doorbell, ringer.ok());
            }
            BellSource::Unavailable { reason } => (Err(reason.clone()), None),
        };
        let ringer = ringer.map(|write| Ringer {
            write,
            _reader: None,
        });
        Bells::from_parts(doorbell, ringer)
    }
}

/// The most per-slot doorbells a segment can have: a broadcast table's most
/// slots (a shared mutex has fewer).
pub(crate) const MAX_SLOT_BELLS: usize = shmring_core::broadcast::layout::MAX_SUBSCRIBERS;
const _: () = assert!(shmring_core::state::header::MAX_STATE_SLOTS as usize <= MAX_SLOT_BELLS);

/// The data FIFO of broadcast subscriber slot `slot` (or shared mutex slot
/// `slot`), beside the segment's data FIFO at `data`: `<data>.<slot>`
/// (`/dev/shm/shmring-bell.<name>.subs.data.3`).
pub(crate) fn slot_bell_path(data: &Path, slot: usize) -> PathBuf {
    let mut path = data.as_os_str().to_owned();
    path.push(format!(".{slot}"));
    PathBuf::from(path)
}

impl BellSource {
    /// A broadcast topic's per-subscriber doorbells, beside its table (whose
    /// bells these are), or a shared mutex's per-slot death bells: makes the
    /// data FIFO of each of `slots` slots, mode `mode`, as [`BellSource::Fifos`]
    /// are made. The reason, if they cannot be (the topic's endpoints are then
    /// polled; the mutex's lockers probe).
    pub(crate) fn make_slot_bells(&self, slots: usize, mode: u32) -> Result<(), String> {
        let data = match self {
            BellSource::Fifos { data, .. } => data,
            BellSource::Pipes { .. } => {
                return Err("a memfd topic has no per-subscriber doorbells".to_owned());
            }
            BellSource::Unavailable { reason } => return Err(reason.clone()),
        };
        for slot in 0..slots {
            let path = slot_bell_path(data, slot);
            crate::segment::names::make_fifo(&path, mode)
                .map_err(|e| format!("mkfifo {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The bells of broadcast subscriber slot `slot`, for a topic whose table has
    /// these bells: its own data FIFO (one waiter each: a ring is never taken by
    /// another subscriber), and the table's space FIFO, shared (one waiter: the
    /// publisher). Anything but FIFOs is [`BellSource::Unavailable`]: a memfd
    /// topic's endpoints are polled.
    pub(crate) fn for_slot(&self, slot: usize) -> BellSource {
        match self {
            BellSource::Fifos {
                data,
                space,
                owner,
                allowed_mode,
            } => BellSource::Fifos {
                data: slot_bell_path(data, slot),
                space: space.clone(),
                owner: *owner,
                allowed_mode: *allowed_mode,
            },
            BellSource::Pipes { .. } => BellSource::Unavailable {
                reason: "a memfd topic has no per-subscriber doorbells".to_owned(),
            },
            BellSource::Unavailable { reason } => BellSource::Unavailable {
                reason: reason.clone(),
            },
        }
    }

    /// A broadcast publisher's doorbells, for a topic whose table has these
    /// bells: the table's space FIFO, waited on (its one waiter: the
    /// publisher; every subscriber rings it, [`for_slot`](Self::for_slot)),
    /// and no ringer (it rings each subscriber's own FIFO). Anything but FIFOs
    /// is polled, as a memfd topic's subscribers are.
    ///
    /// # Errors
    /// Only if the process cannot make even the private pipe.
    pub(crate) fn publisher_bells(&self) -> io::Result<Bells> {
        let doorbell = match self {
            BellSource::Fifos {
                space,
                owner,
                allowed_mode,
                ..
            } => open_checked(space, FifoEnd::Waiter, *owner, *allowed_mode),
            BellSource::Pipes { .. } => Err("a memfd topic has no publisher doorbell".to_owned()),
            BellSource::Unavailable { reason } => Err(reason.clone()),
        };
        Bells::from_parts(doorbell, None)
    }

    /// A ringer's end of FIFO bell `which`, opened and checked; `None` where it
    /// cannot be (its waiters then fall back to the watcher's tick).
    pub(crate) fn open_ringer(&self, which: Bell) -> Option<OwnedFd> {
        self.open_fifo_end(which, FifoEnd::Ringer)
    }

    /// FIFO bell `which` as a death watch: its waiter's end, with no ringer and
    /// no private pipe, for a process that only wants to hear the hang-up of
    /// whoever holds the ringer's end (a shared mutex's holder, whose handle
    /// holds its slot's bell). `None` where it cannot be had: the caller keeps
    /// its own periodic probe.
    pub(crate) fn death_watch(&self, which: Bell) -> Option<Bells> {
        let fd = self.open_fifo_end(which, FifoEnd::Waiter)?;
        Bells::from_parts(Ok(fd), None).ok()
    }

    fn open_fifo_end(&self, which: Bell, end: FifoEnd) -> Option<OwnedFd> {
        let BellSource::Fifos {
            data,
            space,
            owner,
            allowed_mode,
        } = self
        else {
            return None;
        };
        let path = if which == Bell::Data { data } else { space };
        open_checked(path, end, *owner, *allowed_mode).ok()
    }
}

/// Opens the FIFO at `path` as `end` and checks it like a segment: owner
/// `owner`, no permission bit outside `allowed_mode`. The reason, if not.
fn open_checked(
    path: &Path,
    end: FifoEnd,
    owner: u32,
    allowed_mode: u32,
) -> Result<OwnedFd, String> {
    let shown = path.display();
    let (fd, uid, mode) = bell::open_fifo(path, end).map_err(|e| format!("{shown}: {e}"))?;
    if !crate::segment::is_trusted(uid, mode, owner, allowed_mode) {
        return Err(format!(
            "{shown}: owner {uid} mode {mode:o}, expected owner {owner} and mode within {allowed_mode:o}"
        ));
    }
    Ok(fd)
}

/// A ringer's end of a bell.
#[derive(Debug)]
struct Ringer {
    write: OwnedFd,
    /// A read end held so that a ring never raises `SIGPIPE` (anonymous pipes; a
    /// FIFO's ringer opens read-write instead).
    _reader: Option<OwnedFd>,
}

/// An endpoint's doorbells: the one it waits on (its readiness descriptor) and
/// the one it rings.
#[derive(Debug)]
pub(crate) struct Bells {
    doorbell: Arc<OwnedFd>,
    /// The write end of the private pipe of a polled endpoint (held so that the
    /// pipe never hangs up; the watcher rings through it).
    private_writer: Option<Arc<OwnedFd>>,
    ringer: Option<Ringer>,
    wakeups: Wakeups,
    /// Set by the watcher when the doorbell hung up (every ringer gone): the
    /// endpoint's peer is probably leaving, so its blocked calls probe the lock
    /// at the short interval. A hint; the lock decides.
    hung_up: Arc<AtomicBool>,
    /// Set by the watcher when its periodic probe found the peer gone though no
    /// hang-up came (another process holds a ringer's end): the same hint.
    found_gone: Arc<AtomicBool>,
    /// The registration with the process's watcher, made on first need.
    watched: Option<watcher::Registration>,
}

impl Bells {
    fn from_parts(doorbell: Result<OwnedFd, String>, ringer: Option<Ringer>) -> io::Result<Self> {
        let (doorbell, private_writer, wakeups) = match doorbell {
            Ok(fd) => (fd, None, Wakeups::Doorbell),
            Err(reason) => {
                let (read, write) = bell::pipe()?;
                (read, Some(Arc::new(write)), Wakeups::Polled { reason })
            }
        };
        Ok(Self {
            doorbell: Arc::new(doorbell),
            private_writer,
            ringer,
            wakeups,
            hung_up: Arc::new(AtomicBool::new(false)),
            found_gone: Arc::new(AtomicBool::new(false)),
            watched: None,
        })
    }

    /// The readiness descriptor: readable when rung or hung up.
    pub(crate) fn doorbell(&self) -> BorrowedFd<'_> {
        self.doorbell.as_fd()
    }

    /// How the descriptor is woken.
    pub(crate) fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    /// `futex`, ringing this endpoint's peer's doorbell for waiters armed on
    /// `word` (the word this endpoint notifies).
    pub(crate) fn notifier<'a>(&'a self, futex: SharedFutex, word: &'a AtomicU32) -> Notifier<'a> {
        Notifier::new(futex, word, self.ringer.as_ref().map(|r| r.write.as_fd()))
    }

    /// Rings the peer's doorbell once, whatever its arming: a departure, so that
    /// an armed peer looks (and finds the claim released).
    pub(crate) fn ring_peer(&self) {
        if let Some(ringer) = &self.ringer {
            bell::ring(ringer.write.as_fd());
        }
    }

    /// Before an arming: drains the doorbell, and says whether the peer looks
    /// gone: the doorbell hung up (every ringer gone), or it was rung and
    /// `leaving` says the peer released its claim (a departure rings once). The
    /// caller then probes the lock, which decides.
    pub(crate) fn drain_for_arming(&self, leaving: impl FnOnce() -> bool) -> io::Result<bool> {
        Ok(match bell::drain(self.doorbell.as_fd())? {
            Drained::HungUp => true,
            Drained::Rung => leaving(),
            Drained::Empty => false,
        })
    }

    /// Whether the watcher thinks the peer may be gone: it saw the doorbell hang
    /// up (and no ringer come back since), or its probe found the peer gone. A
    /// hint that makes the lock probe due; the lock decides. SeqCst: the store-buffer pairing with the watcher's
    /// store and wake (`crate::blocking::ParkFutex`).
    pub(crate) fn gone_hint(&self) -> bool {
        self.hung_up.load(Ordering::SeqCst) || self.found_gone.load(Ordering::SeqCst)
    }

    /// Takes the watcher's "found gone" hint (clears it): for a waiter whose
    /// peer changes (a broadcast publisher's holder), so that the watcher's
    /// next finding rings the doorbell again once the last one was acted on.
    pub(crate) fn take_found_gone(&self) -> bool {
        // SeqCst: as `gone_hint`.
        self.found_gone.swap(false, Ordering::SeqCst)
    }

    /// Registers the endpoint with the process's watcher, once: from then on a
    /// hang-up of its doorbell wakes `wake` (the calls parked on the segment's
    /// words), and while `armed` it probes `peer_gone` every interval and rings
    /// the doorbell when the peer has gone (or every interval, if polled). A
    /// watcher that cannot start leaves the endpoint to its own periodic probe.
    pub(crate) fn watch(&mut self, armed: bool, probe: impl FnOnce() -> watcher::Probe) {
        match &self.watched {
            Some(registration) => registration.set_armed(armed),
            None => {
                let target = watcher::Target {
                    doorbell: Arc::clone(&self.doorbell),
                    private_writer: self.private_writer.clone(),
                    hung_up: Arc::clone(&self.hung_up),
                    found_gone: Arc::clone(&self.found_gone),
                    probe: probe(),
                };
                self.watched = watcher::register(target, armed);
            }
        }
    }
}
