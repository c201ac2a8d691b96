//! Descriptors and Unix sockets, for the kernel transports and connections:
//! non-blocking descriptors, writes that cannot raise `SIGPIPE`, Unix socket
//! addresses and the listening socket behind
//! [`unix`](crate::transport::unix) and [`seqpacket`](crate::transport::seqpacket).

use std::ffi::CString;
use std::fs::Metadata;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SendAncillaryBuffer, SendFlags, SocketAddrUnix, SocketFlags};
pub(crate) use rustix::net::{Shutdown, SocketType};

use super::poll::{PollFlags, wait_for};
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

/// The Unix socket address of `path`, or [`Error::InvalidAddress`].
pub(crate) fn sockaddr_un(path: &Path) -> Result<SocketAddrUnix> {
    let invalid = |reason| Error::InvalidAddress {
        address: path.display().to_string(),
        reason,
    };
    if let Some(reason) = socket_path_problem(path) {
        return Err(invalid(reason));
    }
    SocketAddrUnix::new(path).map_err(|_| invalid("not a Unix socket path"))
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
    rustix::process::geteuid().as_raw()
}

/// Maps a failed system call on `what` to the named variants: those of
/// [`Error::io`], and `ECONNREFUSED`/`ENXIO` (nobody receives there).
pub(crate) fn error(op: &'static str, what: impl Into<String>, source: io::Error) -> Error {
    match Errno::from_io_error(&source) {
        Some(Errno::CONNREFUSED) | Some(Errno::NXIO) => {
            Error::ConnectionRefused { what: what.into() }
        }
        _ => Error::io(op, what, source),
    }
}

/// Sets or clears `O_NONBLOCK` on the open file description of `fd`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let mut wanted = flags;
    wanted.set(OFlags::NONBLOCK, on);
    if wanted != flags {
        rustix::fs::fcntl_setfl(fd, wanted)?;
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
    // A whole, valid `sigaction` for the call to overwrite (its values do not matter).
    let mut old = libc::sigaction {
        sa_sigaction: libc::SIG_DFL,
        sa_mask: sigpipe_set(),
        sa_flags: 0,
        sa_restorer: None,
    };
    // SAFETY: a null new action only queries the current one into `old`, a valid
    // sigaction writable for its size across the call.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    rc == 0 && old.sa_sigaction == libc::SIG_IGN
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
    let mut slots = [IoSlice::new(&[]); MAX_SLICES];
    let mut n = 0;
    for b in bufs.iter().filter(|b| !b.is_empty()) {
        slots[n] = IoSlice::new(b);
        n += 1;
    }
    let iov = &slots[..n];
    if iov.is_empty() {
        return Ok(0);
    }
    loop {
        super::count::one();
        let result = match mode {
            WriteMode::Socket => rustix::net::sendmsg(
                fd,
                iov,
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ),
            WriteMode::PipeIgnoring => rustix::io::writev(fd, iov),
            WriteMode::PipeMasked => writev_sigpipe_masked(fd, iov),
        };
        match result {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// A signal set holding `SIGPIPE` alone.
fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `set` is an all-zero (empty, on Linux) set, writable; SIGPIPE is a
    // valid signal.
    unsafe { libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE) };
    // SAFETY: all zero is a valid sigset_t (a plain C struct), then sigaddset
    // set one bit in it.
    unsafe { set.assume_init() }
}

/// `pthread_sigmask(how, set)` on this thread's mask; returns the mask it replaced.
fn thread_sigmask(how: libc::c_int, set: &libc::sigset_t) -> libc::sigset_t {
    // Overwritten by the call; any valid set will do.
    let mut old = *set;
    // SAFETY: `set` and `old` are valid sets, alive across the call (`old`
    // writable); the mask changed is this thread's.
    unsafe { libc::pthread_sigmask(how, set, &mut old) };
    old
}

/// `writev` with `SIGPIPE` blocked in this thread. A write to a pipe without
/// readers raises `SIGPIPE` at the writing thread; blocked, it stays pending, and
/// is consumed here with `sigtimedwait` before the old mask is restored, unless
/// one was already pending before the write (that one is not ours to take).
fn writev_sigpipe_masked(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> rustix::io::Result<usize> {
    let pipe_set = sigpipe_set();
    // Written by the call below before it is read; any valid set will do.
    let mut pending = pipe_set;
    let old = thread_sigmask(libc::SIG_BLOCK, &pipe_set);
    // SAFETY: `pending` is ours and writable.
    unsafe { libc::sigpending(&mut pending) };
    // SAFETY: `pending` is an initialised set.
    let was_pending = unsafe { libc::sigismember(&pending, libc::SIGPIPE) } == 1;
    let result = rustix::io::writev(fd, iov);
    if !was_pending && result == Err(Errno::PIPE) {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: with a zero timeout, only dequeues the SIGPIPE the write made
        // pending (blocked, it was not delivered); no siginfo is asked for.
        unsafe { libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero) };
    }
    // Restores this thread's mask from `old`, which the first call returned.
    thread_sigmask(libc::SIG_SETMASK, &old);
    result
}

/// Reads what is there now into `buf` (the descriptor is non-blocking).
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        super::count::one();
        match rustix::io::read(fd, &mut *buf) {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Whether `e` says the peer has gone (a write to a closed reader, a reset).
pub(crate) fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::PIPE)
            | Some(Errno::CONNRESET)
            | Some(Errno::NOTCONN)
            | Some(Errno::CONNABORTED)
            // TCP: keep-alive probes or retransmissions went unanswered.
            | Some(Errno::TIMEDOUT)
            | Some(Errno::HOSTUNREACH)
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
pub(crate) fn unix_socket(kind: SocketType) -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        kind,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
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
    pub(crate) fn bind(path: &Path, kind: SocketType, what: &str) -> Result<Self> {
        let addr = sockaddr_un(path)?;
        let fd = unix_socket(kind).map_err(|e| error("socket", what, e))?;
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600));
        match rustix::net::bind(&fd, &addr) {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => {
                return Err(Error::AlreadyExists {
                    what: what.to_owned(),
                });
            }
            Err(e) => return Err(error("bind", what, e.into())),
        }
        // The file exists now: if anything below fails, remove it (if it is ours).
        let id = match restrict_socket_file(path, what) {
            Ok(id) => id,
            Err(e) => {
                let _ = rustix::fs::unlink(path);
                return Err(e);
            }
        };
        let listener = Self {
            fd,
            path: path.to_owned(),
            id,
        };
        rustix::net::listen(&listener.fd, 16).map_err(|e| error("listen", what, e.into()))?;
        Ok(listener)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection, waiting until `deadline`; returns it non-blocking
    /// and close-on-exec.
    pub(crate) fn accept(&self, deadline: Option<Instant>, what: &str) -> Result<OwnedFd> {
        loop {
            let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
            match rustix::net::accept_with(&self.fd, flags) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN) | Err(Errno::CONNABORTED) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(error("accept", what, e.into())),
            }
            match wait_for(self.fd.as_fd(), PollFlags::IN, deadline) {
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
fn restrict_socket_file(path: &Path, what: &str) -> Result<(u64, u64)> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| error("open(O_PATH)", what, e.into()))?;
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
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(proc_path.as_str(), Mode::from_raw_mode(0o600))
        .map_err(|e| error("chmod", what, e.into()))?;
    Ok((meta.dev(), meta.ino()))
}

/// Connects a new socket of type `kind` to the listener at `path`. Returns it
/// non-blocking and close-on-exec; `prepare` runs on it before `connect` (socket
/// options the accepted side must see from the first message).
pub(crate) fn unix_connect(
    path: &Path,
    kind: SocketType,
    what: &str,
    prepare: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> Result<OwnedFd> {
    let addr = sockaddr_un(path)?;
    let fd = unix_socket(kind).map_err(|e| error("socket", what, e))?;
    prepare(fd.as_fd()).map_err(|e| error("setsockopt", what, e))?;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::INTR) => continue,
            // A full backlog: the listener is alive but has not accepted yet.
            Err(Errno::AGAIN) => {
                return Err(Error::ConnectionRefused {
                    what: what.to_owned(),
                });
            }
            Err(e) => return Err(error("connect", what, e.into())),
        }
    }
}

/// `shutdown(how)` on a socket, ignoring errors (the peer may be gone).
pub(crate) fn shutdown(fd: BorrowedFd<'_>, how: Shutdown) {
    let _ = rustix::net::shutdown(fd, how);
}

/// Turns on TCP keep-alive on `fd`: probes after 10 s idle, 5 s apart, 3 unanswered
/// end the connection (a peer that vanishes without a reset is noticed).
pub(crate) fn set_tcp_keepalive(fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::sockopt;
    use std::time::Duration;
    sockopt::set_socket_keepalive(fd, true)?;
    sockopt::set_tcp_keepidle(fd, Duration::from_secs(10))?;
    sockopt::set_tcp_keepintvl(fd, Duration::from_secs(5))?;
    sockopt::set_tcp_keepcnt(fd, 3)?;
    Ok(())
}
