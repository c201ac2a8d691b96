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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

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

/// `fcntl(fd, F_OFD_SETLK, lock)`, or with `query` `F_OFD_GETLK`, which writes
/// the conflicting lock (or `F_UNLCK`) into `lock`.
fn ofd_fcntl(fd: BorrowedFd<'_>, query: bool, lock: &mut libc::flock) -> io::Result<()> {
    let cmd = if query {
        libc::F_OFD_GETLK
    } else {
        libc::F_OFD_SETLK
    };
    super::count::one();
    // SAFETY: `fd` is open for the call (borrowed); `lock` is a valid flock,
    // readable and writable for its size across the call, which is all the OFD
    // lock commands touch (they lock no memory: the offsets only name bytes of
    // the file).
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, lock) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Tries to take a lock on the byte at `offset` through `fd`'s description:
/// `exclusive` or shared. `Ok(false)` if another description holds a conflicting
/// lock. Never blocks.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, offset: u64, exclusive: bool) -> io::Result<bool> {
    let kind = if exclusive {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    };
    match ofd_fcntl(fd, false, &mut flock(kind, offset)) {
        Ok(()) => Ok(true),
        Err(e) => match rustix::io::Errno::from_io_error(&e) {
            Some(rustix::io::Errno::AGAIN) | Some(rustix::io::Errno::ACCESS) => Ok(false),
            _ => Err(e),
        },
    }
}

/// Whether a description other than `fd`'s holds any lock on the byte at `offset`.
/// A snapshot: true means the holder was alive at the time of the call.
pub(crate) fn is_locked(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let mut lock = flock(libc::F_WRLCK, offset);
    ofd_fcntl(fd, true, &mut lock)?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// Releases this description's lock on the byte at `offset` (an MPMC endpoint
/// that took an entry's lock and then could not register there).
pub(crate) fn unlock(fd: BorrowedFd<'_>, offset: u64) -> io::Result<()> {
    ofd_fcntl(fd, false, &mut flock(libc::F_UNLCK, offset))
}

/// A lock this process took on the byte at `offset` through a description of its
/// own, released explicitly when dropped, before the description closes. Closing
/// alone releases an OFD lock only when the last descriptor of the description
/// goes: a child forked meanwhile holds a copy, and would keep the lock (and the
/// holder "alive") for as long as it lives.
#[derive(Debug)]
pub(crate) struct HeldLock {
    file: File,
    offset: u64,
}

impl HeldLock {
    /// The lock on `offset` that `file`'s description holds.
    pub(crate) fn new(file: File, offset: u64) -> Self {
        Self { file, offset }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // Nothing to do on failure: the description's close still releases it
        // once no forked copy is left.
        let _ = unlock(self.file.as_fd(), self.offset);
    }
}
