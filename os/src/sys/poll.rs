//! `poll` against a deadline.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

pub(crate) use rustix::event::PollFlags;
use rustix::event::{PollFd, poll};
use rustix::io::Errno;
use rustix::time::Timespec;

/// The time left until `deadline` (`None`: no deadline, wait as long as it takes).
pub(crate) fn poll_timeout(deadline: Option<Instant>) -> Option<Timespec> {
    deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        })
    })
}

/// Waits until `fd` reports one of `events` (or an error or hang-up, which `poll`
/// always reports) or `deadline` passes. Returns the events seen, or `None` once
/// the deadline has passed.
pub(crate) fn wait_for(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> io::Result<Option<PollFlags>> {
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        super::count::one();
        match poll(&mut fds, poll_timeout(deadline).as_ref()) {
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
            Ok(0) => {} // Timed out: the loop checks the deadline (poll may wake early).
            Ok(_) => return Ok(Some(fds[0].revents())),
        }
    }
}

/// The events `fd` reports now (a non-blocking `poll`).
pub(crate) fn poll_now(fd: BorrowedFd<'_>, events: PollFlags) -> io::Result<PollFlags> {
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        super::count::one();
        match poll(&mut fds, Some(&zero)) {
            Ok(_) => return Ok(fds[0].revents()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until one of `fds` reports one of its events (or an error or hang-up),
/// as long as it takes; returns each one's events, in order.
pub(crate) fn wait_any<const N: usize>(
    fds: [(BorrowedFd<'_>, PollFlags); N],
) -> io::Result<[PollFlags; N]> {
    let mut pfds = fds.map(|(fd, events)| PollFd::from_borrowed_fd(fd, events));
    loop {
        super::count::one();
        match poll(&mut pfds, None) {
            Ok(_) => return Ok(std::array::from_fn(|i| pfds[i].revents())),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
