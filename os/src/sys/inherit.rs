//! Descriptors handed to a child process over `exec`: the parent clears
//! close-on-exec in the child only, and the child takes ownership of the numbers
//! it was told.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::Command;

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

/// `fcntl(fd, F_GETFD)`, or with `set` `fcntl(fd, F_SETFD, set)`: the descriptor
/// flags of a number (-1 and `errno` if it is not open).
fn fd_flags(fd: RawFd, set: Option<libc::c_int>) -> libc::c_int {
    let (cmd, arg) = match set {
        None => (libc::F_GETFD, 0),
        Some(flags) => (libc::F_SETFD, flags),
    };
    // SAFETY: F_GETFD and F_SETFD take a plain number and an int and touch no
    // memory; on a number that is not open they fail with EBADF. Nothing is
    // borrowed or owned through the number: F_GETFD only asks, and F_SETFD is
    // made only in a spawned child, on the descriptors it is to inherit (open
    // there: the parent's handles keep them open until the spawn).
    unsafe { libc::fcntl(fd, cmd, arg) }
}

fn clear_cloexec_in_child(fd: RawFd) -> io::Result<()> {
    let flags = fd_flags(fd, None);
    if flags == -1 || fd_flags(fd, Some(flags & !libc::FD_CLOEXEC)) == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `fd` names an open descriptor of this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    fd >= 0 && fd_flags(fd, None) != -1
}

/// Takes ownership of the inherited descriptors `fds`, if all of them are open.
///
/// # Safety
/// `fds` are distinct, were passed to this process for the caller's object, and
/// nothing else in the process owns them: the returned handles close them when
/// they drop.
pub(crate) unsafe fn take_inherited<const N: usize>(fds: [RawFd; N]) -> Option<[OwnedFd; N]> {
    if !fds.into_iter().all(is_open) {
        return None;
    }
    // SAFETY: each is open (checked), and by the caller's contract distinct and
    // owned by nothing else.
    Some(fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))
}
