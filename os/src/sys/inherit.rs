//! Descriptors handed to a child process over `exec`: the parent clears
//! close-on-exec in the child only, and the child takes ownership of the numbers
//! it was told.

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

use super::fd::clear_cloexec;

/// Lets the child that `command` spawns inherit `fds`: their close-on-exec flag is
/// cleared in the child, between fork and exec, and stays set in this process.
/// The caller keeps the descriptors open until the command is spawned.
pub(crate) fn inherit_in_child<const N: usize>(command: &mut Command, fds: [RawFd; N]) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec; it makes only
    // `fcntl` system calls (async-signal-safe) and allocates nothing.
    unsafe {
        command.pre_exec(move || fds.into_iter().try_for_each(clear_cloexec_in_child));
    }
}

fn clear_cloexec_in_child(fd: RawFd) -> io::Result<()> {
    // SAFETY: in the child, `fd` is open: inherited from the parent, whose handle
    // keeps it open until the spawn; the borrow ends with this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    clear_cloexec(fd)
}

/// Whether `fd` names an open descriptor of this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes a plain number and only asks whether it is open.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// Takes ownership of the inherited descriptor `fd`, if it is open.
///
/// # Safety
/// `fd` was passed to this process for the caller's object, and nothing else in
/// the process owns it: the returned handle closes it when it drops.
pub(crate) unsafe fn take_inherited(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: open (checked), and by the caller's contract owned by nothing else.
    is_open(fd).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}
