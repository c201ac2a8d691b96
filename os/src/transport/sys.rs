//! System-call helpers shared by the kernel transports: non-blocking descriptors,
//! `poll` against a deadline, writes that cannot raise `SIGPIPE`, Unix socket
//! addresses and the listening socket behind [`unix`](super::unix) and
//! [`seqpacket`](super::seqpacket).

use std::ffi::CString;
use std::fs::Metadata;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};

/// Longest Unix socket path, in bytes: `sun_path` holds 108 bytes with the NUL.
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// Why a Unix socket path is refused (before any system call), if it is.
pub(crate) fn socket_path_problem(path: &Path) -> Option<&'static str> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        Some("empty path")
    } else if bytes.contains(&0) {
        Some("contains a NUL byte")
    } else if bytes.len() > MAX_SOCKET_PATH {
        Some(
            "longer than 107 bytes: a Unix socket path must fit in sun_path (108 bytes \
             with its NUL); use a shorter directory",
        )
    } else {
        None
    }
}

/// The `sockaddr_un` for `path`, or [`Error::InvalidAddress`].
pub(crate) fn sockaddr_un(path: &Path) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    if let Some(reason) = socket_path_problem(path) {
        return Err(Error::InvalidAddress {
            address: path.display().to_string(),
            reason,
        });
    }
    // SAFETY: `sockaddr_un` is a plain C struct for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// A path as a C string, or [`Error::InvalidAddress`] if it holds a NUL byte.
pub(crate) fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidAddress {
        address: path.display().to_string(),
        reason: "contains a NUL byte",
    })
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Maps a failed system call on `what` to the named variants: those of
/// [`Error::io`], and `ECONNREFUSED`/`ENXIO` (nobody receives there).
pub(crate) fn error(op: &'static str, what: impl Into<String>, source: io::Error) -> Error {
    match source.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ENXIO) => {
            Error::ConnectionRefused { what: what.into() }
        }
        _ => Error::io(op, what, source),
    }
}

/// The value of a system call that returns -1 and sets `errno` on failure.
pub(crate) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// As [`cvt`], for calls returning a byte count.
pub(crate) fn cvt_size(rc: libc::ssize_t) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Takes ownership of a descriptor a system call just returned.
pub(crate) fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by a successful system call: it is open and
    // nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets or clears `O_NONBLOCK` on the open file description of `fd`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL on a descriptor open for the duration of the borrow.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted != flags {
        // SAFETY: F_SETFL with an integer argument on an open descriptor.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, wanted) })?;
    }
    Ok(())
}

/// `fstat` of a borrowed descriptor, as std's metadata.
pub(crate) fn metadata(fd: BorrowedFd<'_>) -> io::Result<Metadata> {
    std::fs::File::from(fd.try_clone_to_owned()?).metadata()
}

/// The kind of a file, in words, for [`Error::WrongFileType`].
pub(crate) fn file_kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_file() {
        "regular file"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "file of an unknown kind"
    }
}

/// Milliseconds to pass to `poll` to wait until `deadline` (rounded up, so the
/// wait never ends before it); -1 for no deadline.
fn poll_timeout(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as libc::c_int
        }
    }
}

/// Waits until `fd` reports one of `events` (or an error or hang-up, which `poll`
/// always reports) or `deadline` passes. Returns the events seen, or `None` once
/// the deadline has passed.
pub(crate) fn wait_for(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> io::Result<Option<libc::c_short>> {
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd, alive across the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, poll_timeout(deadline)) };
        match rc {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => {} // Timed out: the loop checks the deadline (poll may wake early).
            _ => return Ok(Some(pfd.revents)),
        }
    }
}

/// The events `fd` reports now (a non-blocking `poll`).
pub(crate) fn poll_now(fd: BorrowedFd<'_>, events: libc::c_short) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd, alive across the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        if rc >= 0 {
            return Ok(pfd.revents);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

// ---------------------------------------------------------------------------
// Writes that cannot raise SIGPIPE
// ---------------------------------------------------------------------------

/// How a descriptor is written without `SIGPIPE` killing the process when its
/// reader has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// A socket: `sendmsg` with `MSG_NOSIGNAL`.
    Socket,
    /// A pipe or FIFO, in a process that ignores `SIGPIPE` (checked when the
    /// endpoint was made): a plain `writev`, which fails with `EPIPE`.
    PipeIgnoring,
    /// A pipe or FIFO in a process that does not ignore `SIGPIPE` (a C program
    /// using the library): `writev` with `SIGPIPE` blocked in the calling thread,
    /// and a `SIGPIPE` the write raised consumed before it is unblocked.
    PipeMasked,
}

impl WriteMode {
    /// The mode for a pipe or FIFO in this process now.
    pub(crate) fn for_pipe() -> Self {
        if sigpipe_ignored() {
            Self::PipeIgnoring
        } else {
            Self::PipeMasked
        }
    }
}

/// Whether `SIGPIPE`'s disposition in this process is `SIG_IGN` (Rust's runtime
/// sets it so before `main` in every Rust executable; a C program's default is to
/// die).
pub(crate) fn sigpipe_ignored() -> bool {
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are valid;
    // a null new action only queries the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Writes the slices (at most 4) in order with one system call
/// (`writev`/`sendmsg`), without blocking (the descriptor is non-blocking) and
/// without raising `SIGPIPE`. Returns the bytes written.
pub(crate) fn write_vectored(
    fd: BorrowedFd<'_>,
    mode: WriteMode,
    bufs: &[&[u8]],
) -> io::Result<usize> {
    const MAX_SLICES: usize = 4;
    assert!(bufs.len() <= MAX_SLICES, "at most {MAX_SLICES} slices");
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut slots = [empty; MAX_SLICES];
    let mut n = 0;
    for b in bufs.iter().filter(|b| !b.is_empty()) {
        slots[n] = libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        };
        n += 1;
    }
    let iov = &slots[..n];
    if iov.is_empty() {
        return Ok(0);
    }
    loop {
        let result = match mode {
            WriteMode::Socket => {
                // SAFETY: `msghdr` is a plain C struct for which all-zero bytes are
                // valid (no name, no control data).
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = iov.len() as _;
                // SAFETY: `msg` points at `iov`, whose entries point at the caller's
                // slices; all are alive across the call, and sendmsg only reads them.
                cvt_size(unsafe {
                    libc::sendmsg(
                        fd.as_raw_fd(),
                        &msg,
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                })
            }
            WriteMode::PipeIgnoring => writev(fd, iov),
            WriteMode::PipeMasked => writev_sigpipe_masked(fd, iov),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn writev(fd: BorrowedFd<'_>, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: `iov` entries point at slices alive across the call; writev only
    // reads them.
    cvt_size(unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) })
}

/// `writev` with `SIGPIPE` blocked in this thread. A write to a pipe without
/// readers raises `SIGPIPE` at the writing thread; blocked, it stays pending, and
/// is consumed here with `sigtimedwait` before the old mask is restored, unless
/// one was already pending before the write (that one is not ours to take).
fn writev_sigpipe_masked(fd: BorrowedFd<'_>, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: the sigset functions initialise and fill sets we own; the masks are
    // this thread's; `sigtimedwait` with a zero timeout only dequeues a pending
    // SIGPIPE (which the block makes pending instead of delivered).
    unsafe {
        let mut pipe_set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_set);
        libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_set, &mut old);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pending);
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let result = writev(fd, iov);
        if !was_pending && matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

/// Reads what is there now into `buf` (the descriptor is non-blocking).
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is writable for its length across the call.
        let rc = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_size(rc) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether `e` says the peer has gone (a write to a closed reader, a reset).
pub(crate) fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE)
            | Some(libc::ECONNRESET)
            | Some(libc::ENOTCONN)
            | Some(libc::ECONNABORTED)
            // TCP: keep-alive probes or retransmissions went unanswered.
            | Some(libc::ETIMEDOUT)
            | Some(libc::EHOSTUNREACH)
    )
}

/// Whether `e` says the call would block.
pub(crate) fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

// ---------------------------------------------------------------------------
// Unix socket listeners (stream and seqpacket)
// ---------------------------------------------------------------------------

/// A new close-on-exec, non-blocking `AF_UNIX` socket of type `kind`.
pub(crate) fn unix_socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory arguments.
    owned(unsafe {
        libc::socket(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })
}

/// A listening Unix socket bound to a path that it removes on drop (if the path
/// still names the socket it bound).
#[derive(Debug)]
pub(crate) struct UnixListenerFd {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file bound at `path`.
    id: (u64, u64),
}

impl UnixListenerFd {
    /// Binds a socket of type `kind` to `path` (which must not exist) with mode
    /// `0600`, then listens.
    ///
    /// `bind` creates the socket file with the mode `0777` less the umask; the
    /// umask is process-wide, so changing it around `bind` would race with other
    /// threads. Instead the file is bound, `chmod`ed to `0600` through an `O_PATH`
    /// descriptor (checked to be the socket just created, owned by us), and only
    /// then does the socket `listen`: before `listen`, every `connect` is refused
    /// (`ECONNREFUSED`), so nobody connects through the wider mode of the short
    /// window, and after it the kernel checks write permission on the file at
    /// every `connect`. (Linux also honours an `fchmod` of the socket descriptor
    /// before `bind`, which is done too, but that is not documented behaviour.)
    pub(crate) fn bind(path: &Path, kind: libc::c_int, what: &str) -> Result<Self> {
        let (addr, len) = sockaddr_un(path)?;
        let fd = unix_socket(kind).map_err(|e| error("socket", what, e))?;
        // SAFETY: fchmod on an open descriptor; no memory arguments.
        unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) };
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes, alive across the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if let Err(e) = cvt(rc) {
            return Err(match e.raw_os_error() {
                Some(libc::EADDRINUSE) => Error::AlreadyExists {
                    what: what.to_owned(),
                },
                _ => error("bind", what, e),
            });
        }
        // The file exists now: if anything below fails, remove it (if it is ours).
        let cpath = c_path(path)?;
        let id = match restrict_socket_file(&cpath, what) {
            Ok(id) => id,
            Err(e) => {
                // SAFETY: `cpath` is a NUL-terminated path alive across the call.
                unsafe { libc::unlink(cpath.as_ptr()) };
                return Err(e);
            }
        };
        let listener = Self {
            fd,
            path: path.to_owned(),
            id,
        };
        // SAFETY: listen on an open socket; no memory arguments.
        cvt(unsafe { libc::listen(listener.fd.as_raw_fd(), 16) })
            .map_err(|e| error("listen", what, e))?;
        Ok(listener)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection, waiting until `deadline`; returns it non-blocking
    /// and close-on-exec.
    pub(crate) fn accept(&self, deadline: Option<Instant>, what: &str) -> Result<OwnedFd> {
        loop {
            // SAFETY: accept4 with null address arguments: nothing is written back.
            let rc = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                )
            };
            match owned(rc) {
                Ok(fd) => return Ok(fd),
                Err(e) if would_block(&e) || e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(error("accept", what, e)),
            }
            match wait_for(self.fd.as_fd(), libc::POLLIN, deadline) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(Error::TimedOut),
                Err(e) => return Err(error("poll", what, e)),
            }
        }
    }
}

impl Drop for UnixListenerFd {
    fn drop(&mut self) {
        // Remove the path only if it still names our socket file (not one another
        // listener bound after someone removed ours).
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Sets the socket file just bound at `path` to `0600` through an `O_PATH`
/// descriptor, after checking that it is a socket we own; returns its device and
/// inode.
fn restrict_socket_file(path: &std::ffi::CStr, what: &str) -> Result<(u64, u64)> {
    // SAFETY: `path` is NUL-terminated and alive across the call.
    let fd = owned(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
    .map_err(|e| error("open(O_PATH)", what, e))?;
    let meta = metadata(fd.as_fd()).map_err(|e| error("fstat", what, e))?;
    if file_kind(&meta) != "socket" || meta.uid() != euid() {
        return Err(Error::Untrusted {
            what: what.to_owned(),
            owner: meta.uid(),
            mode: meta.mode() & 0o7777,
            expected_owner: euid(),
            allowed_mode: 0o600,
        });
    }
    // An O_PATH descriptor cannot be fchmod'ed; its /proc/self/fd link can be
    // chmod'ed, and reaches exactly the inode it refers to.
    let proc_path =
        CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a /proc path");
    // SAFETY: `proc_path` is NUL-terminated and alive across the call.
    cvt(unsafe { libc::chmod(proc_path.as_ptr(), 0o600) }).map_err(|e| error("chmod", what, e))?;
    Ok((meta.dev(), meta.ino()))
}

/// Connects a new socket of type `kind` to the listener at `path`. Returns it
/// non-blocking and close-on-exec; `prepare` runs on it before `connect` (socket
/// options the accepted side must see from the first message).
pub(crate) fn unix_connect(
    path: &Path,
    kind: libc::c_int,
    what: &str,
    prepare: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> Result<OwnedFd> {
    let (addr, len) = sockaddr_un(path)?;
    let fd = unix_socket(kind).map_err(|e| error("socket", what, e))?;
    prepare(fd.as_fd()).map_err(|e| error("setsockopt", what, e))?;
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes, alive across the call.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        match cvt(rc) {
            Ok(_) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A full backlog: the listener is alive but has not accepted yet.
            Err(e) if would_block(&e) => {
                return Err(Error::ConnectionRefused {
                    what: what.to_owned(),
                });
            }
            Err(e) => return Err(error("connect", what, e)),
        }
    }
}

/// `shutdown(how)` on a socket, ignoring errors (the peer may be gone).
pub(crate) fn shutdown(fd: BorrowedFd<'_>, how: libc::c_int) {
    // SAFETY: shutdown on an open descriptor; no memory arguments.
    unsafe { libc::shutdown(fd.as_raw_fd(), how) };
}

/// The integer socket option `name` at `level`.
pub(crate) fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of their sizes across the call.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Sets the integer socket option `name` at `level`.
pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is readable for its size across the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}
