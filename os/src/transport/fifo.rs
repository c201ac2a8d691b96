//! Named pipes (FIFOs): a pipe at a path, for processes that are not parent and
//! child.
//!
//! The receiver makes the FIFO ([`FifoReceiver::create`]: mode `0600`, removed
//! when the receiver is dropped) and reads it; a sender opens it
//! ([`FifoSender::open`]) and writes. One sender at a time: two writers' frames
//! could interleave (see [`pipe`](super::pipe) for the framing, which is the
//! same).
//!
//! ```no_run
//! use shmring::transport::fifo::{FifoReceiver, FifoSender};
//! # fn main() -> shmring::Result<()> {
//! // Process A
//! let mut rx = FifoReceiver::create("/run/user/1000/jobs.fifo")?;
//! // Process B
//! let mut tx = FifoSender::open_timeout("/run/user/1000/jobs.fifo", std::time::Duration::from_secs(5))?;
//! tx.send(b"job 1")?;
//! // Process A
//! let job = rx.recv_vec_deadline(None)?;
//! # Ok(()) }
//! ```
//!
//! **Permissions.** `mkfifo` applies the umask to the mode it is given, so the
//! FIFO is made with `0600` and then `fchmod`ed to exactly `0600` through the
//! reader's descriptor. Opening refuses a path that is not a FIFO
//! ([`Error::WrongFileType`]) or a FIFO that is not ours or that others may open
//! ([`Error::Untrusted`]); another uid opening ours gets
//! [`Error::PermissionDenied`] from the kernel.
//!
//! **Opening.** The reader opens first, non-blocking (`O_RDONLY | O_NONBLOCK`);
//! a writer's non-blocking open fails with `ENXIO` while no reader has the FIFO
//! open: [`FifoSender::open`] reports [`Error::ConnectionRefused`],
//! [`FifoSender::open_timeout`] retries until its deadline.
//!
//! **Liveness.** Before any writer has opened the FIFO, `read` returns 0 (end of
//! file) just as after the last one closed; Linux tells the two apart with
//! `POLLHUP`, which it reports only once a writer has come and gone since the
//! reader opened. So a receiver waiting for its first writer gets `Empty` /
//! `TimedOut`, and one whose writer has closed or died gets
//! [`Error::Disconnected`] after every complete message. A writer gets
//! `Disconnected` from `EPIPE` once the reader has gone (`SIGPIPE` handled as for
//! [`pipe`](super::pipe)). **Committed:** as for [`pipe`](super::pipe): the whole
//! frame is in the FIFO, which keeps it while the reader has it open.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::blocking::deadline_after;
use crate::error::{Error, Result};
use crate::transport::DEFAULT_MAX_MESSAGE_LEN;
use crate::transport::stream::{
    EndOfStream, FrameReader, FrameWriter, framed_receiver_methods, framed_sender_methods,
};
use rustix::fs::{Mode, OFlags};

use crate::sys::{self, WriteMode};

/// How often an open waiting for a reader (or for the FIFO to exist) tries again.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

fn describe(path: &Path) -> String {
    format!("fifo {}", path.display())
}

fn c_path(path: &Path) -> Result<CString> {
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidAddress {
            address: String::new(),
            reason: "empty path",
        });
    }
    sys::c_path(path)
}

/// Opens `path` with `flags` (plus no-follow, close-on-exec, non-blocking).
fn open(path: &CString, flags: OFlags) -> std::io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    Ok(rustix::fs::open(path.as_c_str(), flags, Mode::empty())?)
}

/// Checks an opened FIFO: a FIFO, ours, and closed to others. Returns its device
/// and inode.
fn check(fd: &OwnedFd, what: &str) -> Result<(u64, u64)> {
    let meta = sys::metadata(fd.as_fd()).map_err(|e| sys::error("fstat", what, e))?;
    if !meta.file_type().is_fifo() {
        return Err(Error::WrongFileType {
            what: what.to_owned(),
            expected: "FIFO",
            found: sys::file_kind(&meta),
        });
    }
    let mode = meta.mode() & 0o7777;
    if meta.uid() != sys::euid() || mode & 0o077 != 0 {
        return Err(Error::Untrusted {
            what: what.to_owned(),
            owner: meta.uid(),
            mode,
            expected_owner: sys::euid(),
            allowed_mode: 0o600,
        });
    }
    Ok((meta.dev(), meta.ino()))
}

/// The path's file kind without following a link, for an error naming it.
fn kind_at(path: &Path) -> Option<&'static str> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    (!meta.file_type().is_fifo()).then(|| sys::file_kind(&meta))
}

/// The reading end of a FIFO.
#[derive(Debug)]
pub struct FifoReceiver {
    reader: FrameReader,
    path: PathBuf,
    /// Device and inode of the FIFO we made, to remove on drop.
    created: Option<(u64, u64)>,
}

framed_receiver_methods!(FifoReceiver);

impl FifoReceiver {
    /// Makes a FIFO at `path` (mode `0600`) and opens it for reading. The FIFO is
    /// removed when the receiver is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] for an empty path or one with a NUL;
    /// [`Error::AlreadyExists`] if the path exists (a FIFO left by a receiver
    /// that died can be taken with [`open`](Self::open)); [`Error::NotFound`] if
    /// its directory does not; [`Error::PermissionDenied`]; [`Error::Io`].
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let what = describe(path);
        let cpath = c_path(path)?;
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            cpath.as_c_str(),
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| sys::error("mkfifo", what.as_str(), e.into()))?;
        let opened = open(&cpath, OFlags::RDONLY)
            .map_err(|e| sys::error("open", what.as_str(), e))
            .and_then(|fd| {
                // The umask may have taken bits off 0600: set exactly 0600.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
                    .map_err(|e| sys::error("fchmod", what.as_str(), e.into()))?;
                let id = check(&fd, &what)?;
                Ok((fd, id))
            });
        let (fd, id) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                // Remove what mkfifo made, unless the name now names something else.
                if kind_at(path).is_none() {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
        };
        Ok(Self::new(fd, path, what, Some(id)))
    }

    /// Opens an existing FIFO at `path` for reading (one a receiver that died left
    /// behind, or one made by someone else of this uid). It is not removed on
    /// drop.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongFileType`] if the path is not a FIFO;
    /// [`Error::Untrusted`] if it is not ours or others may open it;
    /// [`Error::Io`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let what = describe(path);
        if let Some(found) = kind_at(path) {
            return Err(Error::WrongFileType {
                what,
                expected: "FIFO",
                found,
            });
        }
        let fd = open(&c_path(path)?, OFlags::RDONLY)
            .map_err(|e| sys::error("open", what.as_str(), e))?;
        check(&fd, &what)?;
        Ok(Self::new(fd, path, what, None))
    }

    fn new(fd: OwnedFd, path: &Path, what: String, created: Option<(u64, u64)>) -> Self {
        Self {
            reader: FrameReader::new(
                Arc::new(fd),
                EndOfStream::FifoHangup,
                DEFAULT_MAX_MESSAGE_LEN,
                what,
            ),
            path: path.to_owned(),
            created,
        }
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FifoReceiver {
    fn drop(&mut self) {
        if let Some(id) = self.created {
            let ours = std::fs::symlink_metadata(&self.path)
                .is_ok_and(|meta| (meta.dev(), meta.ino()) == id);
            if ours {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// The writing end of a FIFO.
#[derive(Debug)]
pub struct FifoSender {
    writer: FrameWriter,
    path: PathBuf,
}

framed_sender_methods!(FifoSender);

impl FifoSender {
    /// Opens the FIFO at `path` for writing; a receiver must have it open.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::ConnectionRefused`] if no receiver has it
    /// open; [`Error::WrongFileType`] if the path is not a FIFO;
    /// [`Error::Untrusted`] if it is not ours or others may open it;
    /// [`Error::PermissionDenied`] for another uid's FIFO; [`Error::Io`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_once(path.as_ref())
    }

    /// As [`open`](Self::open), waiting up to `timeout` for the FIFO to exist and
    /// a receiver to open it.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`Error::TimedOut`] instead of `NotFound` and
    /// `ConnectionRefused`.
    pub fn open_timeout(path: impl AsRef<Path>, timeout: Duration) -> Result<Self> {
        Self::open_deadline(path, deadline_after(timeout))
    }

    /// As [`open_timeout`](Self::open_timeout), giving up at `deadline` (`None`:
    /// waiting as long as it takes).
    ///
    /// # Errors
    /// As [`open_timeout`](Self::open_timeout).
    pub fn open_deadline(path: impl AsRef<Path>, deadline: Option<Instant>) -> Result<Self> {
        loop {
            match Self::open_once(path.as_ref()) {
                Err(Error::NotFound { .. } | Error::ConnectionRefused { .. }) => {
                    let pause = match deadline {
                        Some(deadline) => {
                            let now = Instant::now();
                            if now >= deadline {
                                return Err(Error::TimedOut);
                            }
                            RETRY_PAUSE.min(deadline - now)
                        }
                        None => RETRY_PAUSE,
                    };
                    std::thread::sleep(pause);
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Self> {
        let what = describe(path);
        let cpath = c_path(path)?;
        // Refuse a path that is not a FIFO before opening it: opening a device or
        // a regular file for writing is not harmless.
        if let Some(found) = kind_at(path) {
            return Err(Error::WrongFileType {
                what,
                expected: "FIFO",
                found,
            });
        }
        let fd = open(&cpath, OFlags::WRONLY).map_err(|e| sys::error("open", what.as_str(), e))?;
        check(&fd, &what)?;
        Ok(Self {
            writer: FrameWriter::new(
                Arc::new(fd),
                WriteMode::for_pipe(),
                DEFAULT_MAX_MESSAGE_LEN,
                what,
            ),
            path: path.to_owned(),
        })
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
