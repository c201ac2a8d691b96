//! Liveness marks the kernel removes when a process dies: open file description
//! (OFD) locks on single bytes of a segment's file.
//!
//! An OFD lock belongs to an open file description, not to a process: it is
//! released when the last descriptor referring to that description closes, which
//! the kernel does at exit, SIGKILL included. Descriptors inherited over `fork`,
//! `exec` or passed with `SCM_RIGHTS` share their description, and with it every
//! lock on it; so each endpoint locks through a description of its own, made by
//! [`reopen`] (opening `/proc/self/fd/N` makes a new description of the same file).
//!
//! Locks are advisory and touch no memory: the byte offsets below only name them.
//! They lie in the segment's first line, where nothing else would lock.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Every handle on a named segment holds a shared lock here while it lives; a
/// reclaimer takes it exclusively, which succeeds only when no handle is alive.
pub(crate) const PRESENCE_LOCK: u64 = 56;
/// The live sender holds an exclusive lock here (the producer owner word's offset).
pub(crate) const SENDER_LOCK: u64 = 136;
/// The live receiver holds an exclusive lock here (the consumer owner word's offset).
pub(crate) const RECEIVER_LOCK: u64 = 264;

/// Opens a new open file description of the file behind `fd` (read-write;
/// std opens close-on-exec), so that locks taken through it are this handle's alone.
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The one byte at `offset`, for a lock of `kind`. (rustix has no OFD locks:
/// these are libc's `fcntl`.)
fn flock(kind: libc::c_int, offset: u64) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: offset as libc::off_t,
        l_len: 1,
        // Must be 0 for OFD locks.
        l_pid: 0,
    }
}

/// Tries to take a lock on the byte at `offset` through `fd`'s description:
/// `exclusive` or shared. `Ok(false)` if another description holds a conflicting
/// lock. Never blocks.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, offset: u64, exclusive: bool) -> io::Result<bool> {
    let lock = flock(
        if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        },
        offset,
    );
    // SAFETY: `fd` is open for the call (borrowed); `lock` is a valid flock.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Whether a description other than `fd`'s holds any lock on the byte at `offset`.
/// A snapshot: true means the holder was alive at the time of the call.
pub(crate) fn is_locked(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let mut lock = flock(libc::F_WRLCK, offset);
    // SAFETY: as in `try_lock`; F_OFD_GETLK writes into `lock`.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if rc == 0 {
        Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Releases this description's lock on the byte at `offset` (an MPMC endpoint
/// that took an entry's lock and then could not register there).
pub(crate) fn unlock(fd: BorrowedFd<'_>, offset: u64) -> io::Result<()> {
    let lock = flock(libc::F_UNLCK, offset);
    // SAFETY: as in `try_lock`.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
