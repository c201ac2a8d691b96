//! POSIX message queues, which rustix does not cover: libc's `mq_*` calls, behind
//! this one wrapper. On Linux a queue descriptor is a file descriptor: it is held
//! as an `OwnedFd`, and closing it is `mq_close`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime};

use rustix::io::Errno;

/// An `mq_attr` with the given size limits (the flags and count are ignored by
/// `mq_open`, and written by `mq_getattr`).
fn attributes(maxmsg: usize, msgsize: usize) -> libc::mq_attr {
    // SAFETY: `mq_attr` is a plain C struct (integers and reserved padding) for
    // which all-zero bytes are valid.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    attr.mq_maxmsg = maxmsg.min(libc::c_long::MAX as usize) as libc::c_long;
    attr.mq_msgsize = msgsize.min(libc::c_long::MAX as usize) as libc::c_long;
    attr
}

/// `mq_open(name, flags)`, close-on-exec. With `create`, `O_CREAT | O_EXCL` with
/// mode `0600` and that capacity and largest message.
pub(crate) fn open(
    name: &CStr,
    flags: libc::c_int,
    create: Option<(usize, usize)>,
) -> io::Result<OwnedFd> {
    let (flags, mut attr) = match create {
        Some((capacity, msgsize)) => (
            flags | libc::O_CREAT | libc::O_EXCL,
            attributes(capacity, msgsize),
        ),
        None => (flags, attributes(0, 0)),
    };
    // SAFETY: `name` is NUL-terminated and `attr` a valid mq_attr, both alive
    // across the call; the variadic mode and attribute pointer are what O_CREAT
    // expects (and are ignored without it).
    let mqd = unsafe {
        libc::mq_open(
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            0o600 as libc::mode_t,
            &raw mut attr,
        )
    };
    if mqd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `mqd` was just returned by mq_open: an open descriptor owned by
    // nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(mqd) })
}

/// `mq_unlink(name)`.
pub(crate) fn unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and alive across the call.
    if unsafe { libc::mq_unlink(name.as_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The queue's largest message (`mq_msgsize`, from `mq_getattr`).
pub(crate) fn msgsize(mqd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut attr = attributes(0, 0);
    // SAFETY: `mqd` is an open queue descriptor; `attr` is writable across the call.
    if unsafe { libc::mq_getattr(mqd.as_raw_fd(), &mut attr) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr.mq_msgsize.max(0) as usize)
}

/// `deadline` (a time since the epoch on `CLOCK_REALTIME`) as the mq calls take it.
fn timespec(deadline: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: deadline.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: deadline.subsec_nanos().into(),
    }
}

/// Now on `CLOCK_REALTIME`, since the epoch (the mq calls' clock).
pub(crate) fn realtime_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `mq_timedsend` of `message` with priority 0, until `deadline` (on
/// `CLOCK_REALTIME`, since the epoch; one in the past fails at once if full).
pub(crate) fn timedsend(
    mqd: BorrowedFd<'_>,
    message: &[u8],
    deadline: Duration,
) -> Result<(), Errno> {
    let abs = timespec(deadline);
    super::count::one();
    // SAFETY: `message` is readable for its length and `abs` is a valid timespec,
    // both alive across the call.
    let rc = unsafe {
        libc::mq_timedsend(
            mqd.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            &abs,
        )
    };
    if rc == -1 {
        return Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    Ok(())
}

/// `mq_timedreceive` into `buf`, until `deadline` (as [`timedsend`]'s). The
/// message's length.
pub(crate) fn timedreceive(
    mqd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Duration,
) -> Result<usize, Errno> {
    let abs = timespec(deadline);
    super::count::one();
    // SAFETY: `buf` is writable for its length and `abs` is a valid timespec, both
    // alive across the call; a null priority is allowed.
    let rc = unsafe {
        libc::mq_timedreceive(
            mqd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            std::ptr::null_mut(),
            &abs,
        )
    };
    if rc < 0 {
        return Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    Ok(rc as usize)
}
