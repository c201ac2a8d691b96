//! Segment names: the name rules, the `/dev/shm` paths and `shm_open`, and a
//! named segment's reach to its file ([`Named`]): stat, unlink, whether the name
//! is still ours.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};
use crate::readiness::{Bell, BellSource};
use crate::sys::bell::FifoEnd;

use super::Backing;

/// Where named shared memory objects live on Linux.
pub(super) const SHM_DIR: &str = "/dev/shm";
/// Prefix of every shmring object in [`SHM_DIR`] (and of its `shm_open` name, after
/// the leading `/`).
pub(super) const SHM_PREFIX: &str = "shmring.";
/// Prefix of the doorbell FIFOs beside named segments in [`SHM_DIR`].
pub(crate) const BELL_PREFIX: &str = "shmring-bell.";
/// Longest segment name accepted, in bytes (the object's file name adds the prefix,
/// well within `NAME_MAX`).
const MAX_NAME_LEN: usize = 200;

/// A segment with a name in the file system: what create, open, reclaim and drop
/// need to reach it.
#[derive(Debug)]
pub(super) enum Named {
    Shm {
        /// `"/shmring.<name>"`, for `shm_unlink`.
        shm_name: CString,
        /// `/dev/shm/shmring.<name>`, which [`shm_open`] opens, and to compare the
        /// name's inode with ours.
        path: PathBuf,
        what: String,
    },
    File {
        /// Made absolute at creation, so a change of directory does not redirect it.
        path: PathBuf,
        what: String,
    },
}

impl Named {
    /// The name of `backing`, validated; `None` for a memfd.
    pub(super) fn new(backing: &Backing) -> Result<Option<Named>> {
        Ok(Some(match backing {
            Backing::Shm(name) => {
                validate_name(name)?;
                let object = format!("{SHM_PREFIX}{name}");
                let shm_name =
                    CString::new(format!("/{object}")).map_err(|_| Error::InvalidName {
                        name: name.clone(),
                        reason: "contains a NUL byte",
                    })?;
                Named::Shm {
                    shm_name,
                    path: Path::new(SHM_DIR).join(object),
                    what: format!("shm segment {name:?}"),
                }
            }
            Backing::File(path) => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                let what = format!("file {}", path.display());
                Named::File { path, what }
            }
            Backing::Memfd => return Ok(None),
        }))
    }

    pub(super) fn what(&self) -> &str {
        match self {
            Named::Shm { what, .. } | Named::File { what, .. } => what,
        }
    }

    /// The system call that opens it, for errors.
    pub(super) fn open_op(&self) -> &'static str {
        match self {
            Named::Shm { .. } => "shm_open",
            Named::File { .. } => "open",
        }
    }

    /// Creates it exclusively, read-write, close-on-exec, mode `0o600`.
    pub(super) fn create_excl(&self) -> io::Result<File> {
        match self {
            Named::Shm { path, .. } => {
                shm_open(path, OFlags::CREATE | OFlags::EXCL | OFlags::RDWR, 0o600)
            }
            // std opens close-on-exec; create_new is O_CREAT | O_EXCL.
            Named::File { path, .. } => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path),
        }
    }

    /// Opens it read-write, close-on-exec.
    pub(super) fn open_rw(&self) -> io::Result<File> {
        match self {
            Named::Shm { path, .. } => shm_open(path, OFlags::RDWR, 0),
            Named::File { path, .. } => OpenOptions::new().read(true).write(true).open(path),
        }
    }

    /// Opens it read-only, close-on-exec (a write-once segment's opener).
    pub(super) fn open_ro(&self) -> io::Result<File> {
        match self {
            Named::Shm { path, .. } => shm_open(path, OFlags::RDONLY, 0),
            Named::File { path, .. } => OpenOptions::new().read(true).open(path),
        }
    }

    /// Opens it read-only, non-blocking (a FIFO put under the name does not block
    /// the call) and close-on-exec: to read its first words for an error.
    pub(super) fn open_peek(&self) -> io::Result<File> {
        match self {
            Named::Shm { path, .. } => shm_open(path, OFlags::RDONLY | OFlags::NONBLOCK, 0),
            Named::File { path, .. } => OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path),
        }
    }

    /// The device and inode the name refers to now; `None` if it is gone. A shm
    /// object's name is not followed if it is a symbolic link (`shm_open` uses
    /// `O_NOFOLLOW`); a file's path is (as `open` follows it).
    pub(super) fn stat(&self) -> io::Result<Option<(u64, u64)>> {
        let meta = match self {
            Named::Shm { path, .. } => std::fs::symlink_metadata(path),
            Named::File { path, .. } => std::fs::metadata(path),
        };
        match meta {
            Ok(m) => Ok(Some((m.dev(), m.ino()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the name (`shm_unlink` or `unlink`).
    pub(super) fn unlink(&self) -> io::Result<()> {
        match self {
            Named::Shm { shm_name, .. } => Ok(rustix::shm::unlink(shm_name.as_c_str())?),
            Named::File { path, .. } => std::fs::remove_file(path),
        }
    }

    /// The path of the FIFO beside it for `bell`: `/dev/shm/shmring-bell.<name>.<bell>`
    /// (outside the `shmring.` prefix, so no segment name can collide with it)
    /// or `<path>.<bell>.bell`.
    pub(crate) fn bell_path(&self, bell: Bell) -> PathBuf {
        match self {
            Named::Shm { path, .. } => {
                let object = path.file_name().unwrap_or_default().as_bytes();
                let name = object.strip_prefix(SHM_PREFIX.as_bytes()).unwrap_or(object);
                let mut file = BELL_PREFIX.as_bytes().to_vec();
                file.extend_from_slice(name);
                file.push(b'.');
                file.extend_from_slice(bell.suffix().as_bytes());
                Path::new(SHM_DIR).join(std::ffi::OsStr::from_bytes(&file))
            }
            Named::File { path, .. } => {
                let mut file = path.clone().into_os_string();
                file.push(format!(".{}.bell", bell.suffix()));
                PathBuf::from(file)
            }
        }
    }

    /// Makes both doorbell FIFOs beside a segment just created (mode `mode`, as
    /// the segment), replacing leftovers of a segment of the same name that is
    /// gone (its creator holds the name now, so nobody else uses them). A failure
    /// leaves the endpoints polled, with the reason.
    pub(super) fn make_bells(&self, mode: u32, owner: u32) -> BellSource {
        for bell in [Bell::Data, Bell::Space] {
            let path = self.bell_path(bell);
            if let Err(e) = make_fifo(&path, mode) {
                remove_bells(self);
                return BellSource::Unavailable {
                    reason: format!("mkfifo {}: {e}", path.display()),
                };
            }
        }
        self.bell_source(owner, mode | 0o600)
    }

    /// The doorbell FIFOs beside an existing segment, to be checked on open as
    /// the segment was: owner `owner`, mode within `allowed_mode`.
    pub(super) fn bell_source(&self, owner: u32, allowed_mode: u32) -> BellSource {
        BellSource::Fifos {
            data: self.bell_path(Bell::Data),
            space: self.bell_path(Bell::Space),
            owner,
            allowed_mode,
        }
    }

    pub(super) fn unlink_op(&self) -> &'static str {
        match self {
            Named::Shm { .. } => "shm_unlink",
            Named::File { .. } => "unlink",
        }
    }
}

/// Checks a shared memory segment's name (before any system call).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 200 bytes"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else if name.contains('/') {
        "contains '/'"
    } else if name == "." || name == ".." {
        "is \".\" or \"..\""
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "contains a character other than ASCII letters, digits, '.', '_' and '-'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// `shm_open` as glibc makes it: `open` of the object's file in [`SHM_DIR`] with
/// `flags | O_NOFOLLOW | O_CLOEXEC` (a symbolic link planted at the name is not
/// followed) and `mode` (less the umask, on creation).
pub(super) fn shm_open(path: &Path, flags: OFlags, mode: u32) -> io::Result<File> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::open(
        path,
        flags,
        Mode::from_raw_mode(mode),
    )?))
}

/// Whether `name` refers to the file open as `file`.
pub(super) fn is_ours(named: &Named, file: &File) -> io::Result<bool> {
    let ours = file.metadata()?;
    Ok(named.stat()? == Some((ours.dev(), ours.ino())))
}

/// Removes `named` if it still refers to `file`. Our presence lock keeps reclaimers
/// off the name between the check and the removal.
pub(super) fn remove_if_ours(named: &Named, file: &File) -> io::Result<()> {
    if is_ours(named, file)? {
        match named.unlink() {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes `named` and its doorbells if the name still refers to `file`, the
/// doorbells first: while the name is ours (and our presence lock keeps
/// reclaimers off it), no creator can make a segment of that name, so the
/// doorbells removed are this segment's, never those of a newer segment of the
/// same name made once the name is gone.
pub(super) fn remove_with_bells_if_ours(named: &Named, file: &File) -> io::Result<()> {
    if is_ours(named, file)? {
        remove_bells(named);
        match named.unlink() {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Makes a doorbell FIFO at `path` with permission bits `mode`, replacing a
/// leftover of a segment of the same name that is gone (its creator holds the
/// name now, so nobody else uses it).
pub(crate) fn make_fifo(path: &Path, mode: u32) -> io::Result<()> {
    crate::sys::bell::mkfifo(path, 0o600).or_else(|e| {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
        std::fs::remove_file(path)?;
        crate::sys::bell::mkfifo(path, 0o600)
    })?;
    // The mode through a descriptor of the FIFO just made (never a path that
    // could be swapped in between).
    let (fd, _, _) = crate::sys::bell::open_fifo(path, FifoEnd::Waiter)?;
    crate::sys::bell::chmod(std::os::fd::AsFd::as_fd(&fd), mode & 0o777)
}

/// Removes the doorbell FIFOs beside `named` (errors ignored: they may never
/// have been made), and a broadcast table's per-subscriber data FIFOs
/// (`crate::readiness::slot_bell_path`), slot 0 upwards until one is missing.
pub(super) fn remove_bells(named: &Named) {
    for bell in [Bell::Data, Bell::Space] {
        let _ = std::fs::remove_file(named.bell_path(bell));
    }
    let data = named.bell_path(Bell::Data);
    for slot in 0..crate::readiness::MAX_SLOT_BELLS {
        if std::fs::remove_file(crate::readiness::slot_bell_path(&data, slot))
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            break;
        }
    }
}
