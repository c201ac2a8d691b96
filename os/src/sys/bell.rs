//! The doorbells' system calls: FIFOs beside named segments, anonymous pipes,
//! ringing (a one-byte non-blocking write), draining, and the `epoll` instance
//! of the process's watcher thread (`crate::readiness`).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::event::epoll;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;

/// Makes a FIFO at `path` with permission bits `mode` (the umask applies, as to
/// the segment; the caller sets the final mode with [`chmod`]).
pub(crate) fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(mode),
        0,
    )?;
    Ok(())
}

/// Sets `fd`'s permission bits (`fchmod`).
pub(crate) fn chmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// Which end of a FIFO an endpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FifoEnd {
    /// The waiter's: read-only, so that the FIFO hangs up when every ringer is gone.
    Waiter,
    /// The ringer's: read-write (fifo(7)), so that opening it never fails with
    /// `ENXIO` while no waiter has it open, and a ring never raises `SIGPIPE` once
    /// the waiter has gone (the ringer is a reader too).
    Ringer,
}

/// Opens the FIFO at `path` non-blocking and close-on-exec, without following a
/// symbolic link at the name, and returns it with its owner and mode, after
/// checking that it is a FIFO (`ErrorKind::InvalidInput` otherwise).
pub(crate) fn open_fifo(path: &Path, end: FifoEnd) -> io::Result<(OwnedFd, u32, u32)> {
    let access = match end {
        FifoEnd::Waiter => OFlags::RDONLY,
        FifoEnd::Ringer => OFlags::RDWR,
    };
    let flags = access | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    let meta = super::metadata(fd.as_fd())?;
    if !meta.file_type().is_fifo_kind() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a {}, not a FIFO",
                path.display(),
                super::file_kind(&meta)
            ),
        ));
    }
    Ok((fd, meta.uid(), meta.mode() & 0o7777))
}

/// Whether some process has the FIFO at `path` open for reading: every waiter
/// (read-only) and every ringer (read-write) of a doorbell does. Tried by
/// opening it write-only and non-blocking (`O_NOFOLLOW`, `O_NOCTTY`), which fails
/// with `ENXIO`, changing nothing, exactly when no reader has it open; otherwise
/// the descriptor is closed at once, which a waiter with no ringer sees as one
/// hang-up (to a doorbell's waiter, a "look again"). `ENXIO` also comes from a
/// socket, and a regular file opens: the caller checks the file's type.
pub(crate) fn fifo_has_reader(path: &Path) -> io::Result<bool> {
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY;
    match rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()) {
        Ok(_) => Ok(true),
        Err(Errno::NXIO) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `FileType::is_fifo` under a name that says what it checks.
trait FifoKind {
    fn is_fifo_kind(&self) -> bool;
}

impl FifoKind for std::fs::FileType {
    fn is_fifo_kind(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

/// An anonymous pipe, both ends non-blocking and close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(
        PipeFlags::NONBLOCK | PipeFlags::CLOEXEC,
    )?)
}

/// Rings a doorbell: writes one byte to `fd` (non-blocking). A full pipe
/// (`EAGAIN`) is already readable, so it counts as rung; any other error (the
/// waiter's end gone) means nobody is left to wake, and is ignored too.
pub(crate) fn ring(fd: BorrowedFd<'_>) {
    super::count::one();
    let _ = rustix::io::write(fd, &[1]);
}

/// What draining a doorbell found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Nothing was pending.
    Empty,
    /// It had been rung (one or more bytes read).
    Rung,
    /// Every ringer has gone (end of file), after whatever was pending (rung or
    /// not).
    HungUp,
}

/// Reads everything pending on a non-blocking doorbell `fd`.
pub(crate) fn drain(fd: BorrowedFd<'_>) -> io::Result<Drained> {
    let mut buf = [0u8; 256];
    let mut drained = Drained::Empty;
    loop {
        super::count::one();
        match rustix::io::read(fd, &mut buf) {
            // Read on to `EAGAIN` or the end: a ring may come with a hang-up (a
            // departure rings, then closes), which only the end of file shows.
            Ok(0) => return Ok(Drained::HungUp),
            Ok(_) => drained = Drained::Rung,
            Err(Errno::AGAIN) => return Ok(drained),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Rings the doorbell whose read end is `fd` from this process, which holds no
/// write end of it: opens another description of the same pipe or FIFO for
/// writing through `/proc/self/fd` (no name to race on), writes a byte, closes it.
/// Closing it again leaves a FIFO whose ringers have all gone hung up.
pub(crate) fn ring_own(fd: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let writer = rustix::fs::open(
        path.as_str(),
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    ring(writer.as_fd());
    Ok(())
}

/// A read end of the pipe whose write end is `fd`, opened afresh through
/// `/proc/self/fd`: held by a ringer that was given only the write end, so that
/// a ring never raises `SIGPIPE` once the waiter has gone.
pub(crate) fn reader_of(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The watcher's `epoll` instance.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    Ok(epoll::create(epoll::CreateFlags::CLOEXEC)?)
}

/// What an `epoll` instance watches a descriptor for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// A hang-up (or an error), reported once; [`epoll_watch`] with `again`
    /// watches it once more.
    HangUpOnce,
    /// Readability, level-triggered (the watcher's own wake-up, a `Select`).
    Readable,
    /// Writability, level-triggered (a `Select` waiting for a transport's room).
    Writable,
}

/// Watches `fd` under `token` for `what`; `again`: `fd` is watched already
/// (its one-shot hang-up was reported), watch it anew.
pub(crate) fn epoll_watch(
    epoll: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    token: u64,
    what: Watch,
    again: bool,
) -> io::Result<()> {
    let flags = match what {
        Watch::HangUpOnce => epoll::EventFlags::ONESHOT,
        Watch::Readable => epoll::EventFlags::IN,
        Watch::Writable => epoll::EventFlags::OUT,
    };
    let data = epoll::EventData::new_u64(token);
    if again {
        epoll::modify(epoll, fd, data, flags)?;
    } else {
        epoll::add(epoll, fd, data, flags)?;
    }
    Ok(())
}

/// Stops watching `fd`.
pub(crate) fn epoll_forget(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    let _ = epoll::delete(epoll, fd);
}

/// Waits until `deadline` at most (`None`: as long as it takes) for events;
/// returns the tokens reported, with whether each was a hang-up or an error.
pub(crate) fn epoll_wait(
    epoll: BorrowedFd<'_>,
    deadline: Option<std::time::Instant>,
    out: &mut Vec<(u64, bool)>,
) -> io::Result<()> {
    out.clear();
    let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
    let timeout = super::poll::poll_timeout(deadline);
    super::count::one();
    match epoll::wait(
        epoll,
        rustix::buffer::spare_capacity(&mut events),
        timeout.as_ref(),
    ) {
        Ok(_) | Err(Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    for event in &events {
        // Copies: the kernel's record is packed.
        let (flags, data) = (event.flags, event.data);
        let hung_up = flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR);
        out.push((data.u64(), hung_up));
    }
    Ok(())
}
