//! The socket watcher of a shared-memory connection: a thread blocked in `poll`
//! on the socket that sets the rings' peer-gone flags and wakes parked calls the
//! moment the peer goes.
//!
//! What the socket says, after the handshake (nothing else travels on it):
//! - end of stream (`read` returns 0; the peer's sending half shut its direction
//!   down): the peer's sender is gone; our receiver drains, then reports
//!   `Disconnected`.
//! - the byte [`RECEIVER_GONE`](super::handshake::RECEIVER_GONE): the peer's
//!   receiving half dropped; our sender reports `Disconnected` once the ring is
//!   full.
//! - hang-up or error (`POLLHUP`/`POLLERR`: the peer closed the socket, or died
//!   and the kernel closed it): both.
//!
//! Other bytes are ignored (a hostile peer gains nothing by sending them: it can
//! write anything into the rings anyway).

use std::os::fd::{AsFd, OwnedFd};

use rustix::event::{EventfdFlags, eventfd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::sys::{self, PollFlags};

use super::handshake::RECEIVER_GONE;

/// A running watcher; [`stop`](Watcher::stop) ends and joins it.
pub(crate) struct Watcher {
    peer_sender_gone: Arc<AtomicBool>,
    peer_receiver_gone: Arc<AtomicBool>,
    /// An eventfd: written to stop the thread.
    stop: Arc<OwnedFd>,
    thread: JoinHandle<()>,
    /// The process the thread runs in: a forked child inherits the handle but
    /// not the thread.
    pid: u32,
}

impl Watcher {
    /// Starts watching `socket` for the connection whose rings are `outgoing`
    /// (we send) and `incoming` (we receive).
    pub(crate) fn start(
        socket: Arc<OwnedFd>,
        outgoing: Channel,
        incoming: Channel,
        what: &str,
    ) -> Result<Self> {
        let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
        let stop = eventfd(0, flags).map_err(|e| Error::io("eventfd", what, e.into()))?;
        let stop = Arc::new(stop);
        let peer_sender_gone = Arc::new(AtomicBool::new(false));
        let peer_receiver_gone = Arc::new(AtomicBool::new(false));
        let state = Watch {
            socket,
            stop: Arc::clone(&stop),
            peer_sender_gone: Arc::clone(&peer_sender_gone),
            peer_receiver_gone: Arc::clone(&peer_receiver_gone),
            outgoing,
            incoming,
        };
        let thread = std::thread::Builder::new()
            .name("shmring-watch".to_owned())
            .spawn(move || state.run())
            .map_err(|e| Error::io("spawn watcher thread", what, e))?;
        Ok(Self {
            peer_sender_gone,
            peer_receiver_gone,
            stop,
            thread,
            pid: std::process::id(),
        })
    }

    /// The flag for our receiver: the peer's sender has gone.
    pub(crate) fn peer_sender_gone(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.peer_sender_gone)
    }

    /// The flag for our sender: the peer's receiver has gone.
    pub(crate) fn peer_receiver_gone(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.peer_receiver_gone)
    }

    /// Stops the thread and waits for it. In a forked child, which inherited
    /// the handle but not the thread, nothing: the stop eventfd is the parent's
    /// too (a write would stop the parent's thread), and joining a thread of
    /// another process fails (`EINVAL`; std panics).
    pub(crate) fn stop(self) {
        if self.pid != std::process::id() {
            std::mem::forget(self.thread);
            return;
        }
        let _ = rustix::io::write(&*self.stop, &1u64.to_ne_bytes());
        let _ = self.thread.join();
    }
}

/// The thread's state.
struct Watch {
    socket: Arc<OwnedFd>,
    stop: Arc<OwnedFd>,
    peer_sender_gone: Arc<AtomicBool>,
    peer_receiver_gone: Arc<AtomicBool>,
    outgoing: Channel,
    incoming: Channel,
}

impl Watch {
    fn run(self) {
        let mut end_seen = false;
        loop {
            // After the end of the stream the socket stays readable: ask only for
            // the hang-up (always reported) from then on.
            let events = if end_seen {
                PollFlags::empty()
            } else {
                PollFlags::IN | PollFlags::RDHUP
            };
            let polled = sys::wait_any([
                (self.socket.as_fd(), events),
                (self.stop.as_fd(), PollFlags::IN),
            ]);
            let Ok([revents, stop]) = polled else {
                // Cannot watch any more: say the peer has gone rather than let a
                // blocked call hang (the rings' lock probe would say so too if it
                // were true; a false "gone" only ends calls early).
                self.all_gone();
                return;
            };
            if !stop.is_empty() {
                return;
            }
            if revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                self.all_gone();
                return;
            }
            if revents.intersects(PollFlags::IN | PollFlags::RDHUP) {
                let mut buf = [0u8; 64];
                match sys::read(self.socket.as_fd(), &mut buf) {
                    Ok(0) => {
                        end_seen = true;
                        self.set(&self.peer_sender_gone, &self.incoming);
                    }
                    Ok(n) => {
                        if buf[..n].contains(&RECEIVER_GONE) {
                            self.set(&self.peer_receiver_gone, &self.outgoing);
                        }
                    }
                    Err(e) if sys::would_block(&e) => {}
                    Err(_) => {
                        self.all_gone();
                        return;
                    }
                }
            }
        }
    }

    /// Sets `flag` and wakes whoever is parked on `channel`.
    fn set(&self, flag: &AtomicBool, channel: &Channel) {
        // SYNC: SeqCst, then `wake_parked`'s fence and load of the signal words:
        // the store-buffer pairing with a parking call (`ParkFutex`,
        // blocking.rs).
        flag.store(true, Ordering::SeqCst);
        channel.wake_parked();
    }

    fn all_gone(&self) {
        self.set(&self.peer_sender_gone, &self.incoming);
        self.set(&self.peer_receiver_gone, &self.outgoing);
    }
}
