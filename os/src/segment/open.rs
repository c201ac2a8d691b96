//! Opening a segment by name or from a descriptor, and the trust checks on what
//! was opened: owner, mode, size and seals.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::thread;
use std::time::{Duration, Instant};

use shmring_core::LayoutError;

use crate::error::{Error, Result};
use crate::readiness::BellSource;
use crate::sys::lock::{self, PRESENCE_LOCK};

use super::names::{Named, SHM_DIR, SHM_PREFIX, is_ours};
use super::{Contents, MAX_RACES, Segment, SegmentOptions, map_and_attach};

/// How long an open waits for a segment that is still being created (size zero or
/// magic not yet written) while another handle on it is alive: its creator.
const INIT_WAIT: Duration = Duration::from_secs(2);
/// How long an open waits for such a segment when no other handle on it is alive
/// (its creator may be between `shm_open` and taking its lock, or dead).
const INIT_GRACE: Duration = Duration::from_millis(20);
/// Pause between two attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// The kind word of the segment at `options`' name, if its file is a regular
/// file that starts with shmring's magic: to say what a segment of the wrong
/// size for its opener is (an event where a channel was asked for). The 16
/// bytes are read once and used for an error only. `None` for a memfd, a name
/// that cannot be opened or read, or a file without the magic.
pub(crate) fn peek_kind(options: &SegmentOptions) -> Option<u32> {
    let named = Named::new(&options.backing).ok()??;
    let file = named.open_peek().ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, 0).ok()?;
    let magic = u64::from_ne_bytes(head[..8].try_into().ok()?);
    let kind = u32::from_ne_bytes(head[12..].try_into().ok()?);
    (magic == shmring_core::layout::MAGIC).then_some(kind)
}

/// Takes ownership of the descriptor whose number a parent put in the
/// environment variable `var` (`pass_to` on a channel), and of the doorbells'
/// pipes if their numbers follow it (`fd,data-read,data-write,space-read,space-write`).
///
/// # Errors
/// [`Error::NotFound`] if the variable is unset, not numbers, or names no open
/// descriptor.
///
/// # Safety
/// The descriptor the variable names was passed to this process for the caller's
/// object, and nothing else in the process owns it: the returned handle closes it
/// when it drops. So call this at most once per variable.
pub(crate) unsafe fn inherited_fd(var: &str) -> Result<(OwnedFd, BellSource)> {
    let not_found = || Error::NotFound {
        what: format!("inherited descriptor in ${var}"),
    };
    let numbers: Vec<i32> = std::env::var(var)
        .ok()
        .and_then(|v| v.split(',').map(|n| n.parse().ok()).collect::<Option<_>>())
        .filter(|fds: &Vec<i32>| fds.iter().all(|&fd| fd >= 0))
        .ok_or_else(not_found)?;
    let (&fd, bells) = numbers.split_first().ok_or_else(not_found)?;
    // SAFETY: by the caller's contract, passed to us for this object and owned by
    // nothing else.
    let [fd] = unsafe { crate::sys::inherit::take_inherited([fd]) }.ok_or_else(not_found)?;
    let bells = match <[i32; 4]>::try_from(bells) {
        // SAFETY: as above, for the doorbells that came with it.
        Ok(bells) => match unsafe { crate::sys::inherit::take_inherited(bells) } {
            Some(bells) => BellSource::from_passed(bells.into()),
            None => BellSource::Unavailable {
                reason: format!("the doorbells in ${var} are not open"),
            },
        },
        Err(_) => BellSource::Unavailable {
            reason: format!("no doorbells were passed in ${var}"),
        },
    };
    Ok((fd, bells))
}

/// The file behind `given` through an open file description of our own, holding
/// this handle's presence lock; `given` is closed.
///
/// The lock must not go on `given`'s description: that description is shared with
/// every descriptor duplicated from it (the caller's own, when it passed a
/// duplicate, as the C API does), so a lock there would outlive this handle and a
/// failed open, making the segment look alive to reclaim and listing (and a later
/// open wait for a creator) while the caller keeps its descriptor.
///
/// If this process cannot open the file itself (reopening through
/// `/proc/self/fd` checks the file's mode: another uid's `0o600` object handed
/// over; or `/proc` is not mounted, as in a minimal chroot), `given` is kept and no
/// presence lock is taken: the segment then looks dead to a reclaimer, which may
/// remove its name; the file stays valid for us. A channel's endpoints reopen the
/// same way for their role locks and fail there: without `/proc`, a channel
/// opened from a descriptor opens, but none of its endpoints can be claimed.
pub(super) fn own_description(given: File, what: &str) -> Result<File> {
    let file = match lock::reopen(given.as_fd()) {
        Ok(own) => own,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::NotFound
                    | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(given);
        }
        Err(e) => return Err(Error::io("reopen", what, e)),
    };
    drop(given);
    // A false result means a reclaimer holds the lock exclusively and is about to
    // remove the segment's name; the file itself stays valid for us, and the peer
    // that handed it over keeps it alive.
    lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
        .map_err(|e| Error::io("F_OFD_SETLK", what, e))?;
    Ok(file)
}

/// What one open attempt came to.
enum Attempt<C> {
    Ready(Segment<C>),
    /// Lost a race with a reclaimer (or a creator's cleanup): start again.
    Raced(Error),
    /// The segment is still being created; `creator_alive` if another handle on it
    /// is alive.
    Initializing {
        error: Error,
        creator_alive: bool,
    },
}

pub(super) fn open_named<C: Contents>(
    named: Named,
    options: &SegmentOptions,
) -> Result<Segment<C>> {
    let start = Instant::now();
    let mut races = 0;
    loop {
        match open_attempt(&named, options)? {
            Attempt::Ready(segment) => return Ok(segment),
            Attempt::Raced(error) => {
                races += 1;
                if races >= MAX_RACES {
                    return Err(error);
                }
            }
            Attempt::Initializing {
                error,
                creator_alive,
            } => {
                let budget = if creator_alive { INIT_WAIT } else { INIT_GRACE };
                if start.elapsed() >= budget {
                    return Err(error);
                }
            }
        }
        thread::sleep(RETRY_PAUSE);
    }
}

fn open_attempt<C: Contents>(named: &Named, options: &SegmentOptions) -> Result<Attempt<C>> {
    let what = named.what();
    let file = if options.read_only {
        named.open_ro()
    } else {
        named.open_rw()
    }
    .map_err(|e| Error::io(named.open_op(), what, e))?;
    let gone = || Error::NotFound {
        what: what.to_owned(),
    };
    // Shared lock, then the name check: a reclaimer (exclusive lock) is either done
    // (the name no longer refers to this file) or cannot start.
    let locked = lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
        .map_err(|e| Error::io("F_OFD_SETLK", what, e))?;
    if !locked || !is_ours(named, &file).map_err(|e| Error::io("stat", what, e))? {
        return Ok(Attempt::Raced(gone()));
    }
    let meta = file.metadata().map_err(|e| Error::io("fstat", what, e))?;
    check_trust(&meta, options, what)?;
    let creator_alive = || lock::is_locked(file.as_fd(), PRESENCE_LOCK).unwrap_or(false);
    if meta.size() == 0 && meta.file_type().is_file() {
        // Created, not yet sized.
        return Ok(Attempt::Initializing {
            error: Error::BadSize {
                what: what.to_owned(),
                size: 0,
                expected: C::MIN_SIZE,
            },
            creator_alive: creator_alive(),
        });
    }
    let len = check_size::<C>(&meta, what)?;
    // `len` is the size validated above.
    let (map, region) = map_and_attach::<C>(&file, len, options.prefault, options.read_only, what)?;
    let region = match region {
        Ok(region) => region,
        Err(LayoutError::Uninitialized) => {
            return Ok(Attempt::Initializing {
                error: Error::layout(what, LayoutError::Uninitialized),
                creator_alive: creator_alive(),
            });
        }
        Err(e) => return Err(Error::layout(what, e)),
    };
    let bells = if C::DOORBELLS {
        named.bell_source(options.owner.unwrap_or_else(euid), options.allowed_mode)
    } else {
        BellSource::Unavailable {
            reason: "no waiters".to_owned(),
        }
    };
    Ok(Attempt::Ready(Segment {
        region,
        map,
        file,
        what: what.to_owned(),
        unlink: None,
        bells: bells.into(),
    }))
}

pub(super) fn euid() -> u32 {
    crate::sys::euid()
}

/// Owner and mode checks of an opened segment.
fn check_trust(meta: &std::fs::Metadata, options: &SegmentOptions, what: &str) -> Result<()> {
    let expected_owner = options.owner.unwrap_or_else(euid);
    let mode = meta.mode() & 0o7777;
    if !is_trusted(meta.uid(), mode, expected_owner, options.allowed_mode) {
        return Err(Error::Untrusted {
            what: what.to_owned(),
            owner: meta.uid(),
            mode,
            expected_owner,
            allowed_mode: options.allowed_mode,
        });
    }
    Ok(())
}

/// The trust rule for a file beside a segment or the segment itself: owned by
/// `expected_owner`, and no permission bit outside `allowed_mode`.
pub(crate) fn is_trusted(owner: u32, mode: u32, expected_owner: u32, allowed_mode: u32) -> bool {
    owner == expected_owner && mode & !allowed_mode & 0o777 == 0
}

fn page_size() -> u64 {
    // Not rustix's `param::page_size`, which parses the auxiliary vector and
    // faults under valgrind.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Checks that the file is a regular file whose size can hold `C`'s header and at
/// most the largest `C` (for a ring: the largest ring); returns the size to map.
pub(super) fn check_size<C: Contents>(meta: &std::fs::Metadata, what: &str) -> Result<usize> {
    if !meta.file_type().is_file() {
        return Err(Error::Io {
            op: "fstat",
            what: what.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let size = meta.size();
    let page = page_size();
    let max = C::MAX_SIZE.div_ceil(page) * page;
    let expected = if size < C::MIN_SIZE {
        C::MIN_SIZE
    } else if size > max {
        max
    } else {
        return usize::try_from(size).map_err(|_| Error::BadSize {
            what: what.to_owned(),
            size,
            expected: max,
        });
    };
    Err(Error::BadSize {
        what: what.to_owned(),
        size,
        expected,
    })
}

/// Describes a handed-over descriptor from its `/proc/self/fd` link, and tells
/// whether it is a memfd.
pub(super) fn describe_fd(file: &File) -> (String, bool) {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
    match link {
        Ok(target) => {
            let bytes = target.as_os_str().as_bytes();
            if bytes.starts_with(b"/memfd:") {
                ("memfd".to_owned(), true)
            } else if let Some(name) = target
                .strip_prefix(SHM_DIR)
                .ok()
                .and_then(|rest| rest.to_str())
                .and_then(|rest| rest.strip_prefix(SHM_PREFIX))
            {
                (format!("shm segment {name:?}"), false)
            } else {
                (format!("file {}", target.display()), false)
            }
        }
        Err(_) => (format!("segment fd {}", file.as_raw_fd()), false),
    }
}

/// A memfd must be sealed against shrinking; other descriptors are accepted.
pub(super) fn check_seals(file: &File, what: &str, is_memfd: bool) -> Result<()> {
    let seals = match crate::sys::memfd::seals(file.as_fd()) {
        Ok(seals) => seals,
        // Not a sealable file (a regular file on disk).
        Err(e) if e.kind() == io::ErrorKind::InvalidInput && !is_memfd => return Ok(()),
        Err(e) => return Err(Error::io("F_GET_SEALS", what, e)),
    };
    if seals.contains(rustix::fs::SealFlags::SHRINK) || !is_memfd {
        // A named shared memory object (tmpfs) reports seals too, but can never be
        // sealed (F_SEAL_SEAL from birth): it carries the documented hazard.
        return Ok(());
    }
    Err(Error::Io {
        op: "F_GET_SEALS",
        what: what.to_owned(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "memfd not sealed against shrinking (F_SEAL_SHRINK): a peer could truncate it under our mapping",
        ),
    })
}
