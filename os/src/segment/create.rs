//! Creating a segment: a named one (reclaiming a dead one of the same name when
//! asked) or a memfd, sized, sealed, mapped and initialised.

use std::fs::{File, Permissions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use memmap2::MmapRaw;
use rustix::fs::FallocateFlags;
use rustix::io::Errno;
use shmring_core::{MpmcGeometry, RawMpmcRegion, RawRegion};

use crate::error::{Error, Result};
use crate::sys::lock::{self, PRESENCE_LOCK};

use crate::readiness::BellSource;

use super::names::{Named, is_ours, remove_with_bells_if_ours};
use super::open::euid;
use super::{Contents, Init, MAX_RACES, Segment, SegmentOptions, map};

pub(super) fn create_named<C: Contents>(
    named: Named,
    size: usize,
    options: &SegmentOptions,
    init: Init<'_, C>,
) -> Result<Segment<C>> {
    let what = named.what().to_owned();
    for _ in 0..MAX_RACES {
        let file = match named.create_excl() {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if options.reclaim {
                    remove_if_dead(&named)?;
                    continue;
                }
                return Err(Error::AlreadyExists { what });
            }
            Err(e) => return Err(Error::io(named.open_op(), what, e)),
        };
        // The lock first: from here on no reclaimer can remove the name. Before it, a
        // reclaimer may have found our fresh file with no handle alive and removed
        // it: then the name no longer refers to our file, and we start again.
        let locked = lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
            .map_err(|e| Error::io("F_OFD_SETLK", &what, e))?;
        if !locked || !is_ours(&named, &file).map_err(|e| Error::io("stat", &what, e))? {
            continue;
        }
        // The doorbells before the header is published, so that every opener
        // finds them. A failure leaves the endpoints polled (they say why).
        let bells = if C::DOORBELLS {
            named.make_bells(options.mode, euid())
        } else {
            BellSource::Unavailable {
                reason: "no waiters".to_owned(),
            }
        };
        return match finish_create_with(
            &file,
            &what,
            size,
            options.mode,
            options.prefault,
            Seal::No,
            init,
        ) {
            Ok((map, region)) => Ok(Segment {
                region,
                map,
                file,
                what,
                unlink: options.unlinks_on_drop().then_some(named),
                bells: bells.into(),
            }),
            Err(e) => {
                let _ = remove_with_bells_if_ours(&named, &file);
                Err(e)
            }
        };
    }
    Err(Error::AlreadyExists { what })
}

/// Removes `named` if no handle on it is alive. `Ok` when the name is gone (or was
/// gone already): the caller retries its exclusive create.
fn remove_if_dead(named: &Named) -> Result<()> {
    let what = named.what();
    let file = match named.open_rw() {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(named.open_op(), what, e)),
    };
    let free = lock::try_lock(file.as_fd(), PRESENCE_LOCK, true)
        .map_err(|e| Error::io("F_OFD_SETLK", what, e))?;
    if !free {
        return Err(Error::AlreadyExists {
            what: what.to_owned(),
        });
    }
    // Holding the exclusive lock, nobody can start using the file (they re-check
    // the name after taking their shared lock, and would fail to take it now).
    remove_with_bells_if_ours(named, &file).map_err(|e| Error::io(named.unlink_op(), what, e))?;
    drop(file);
    Ok(())
}

pub(super) fn create_memfd<C: Contents>(
    size: usize,
    options: &SegmentOptions,
    init: Init<'_, C>,
) -> Result<Segment<C>> {
    let what = "memfd".to_owned();
    let fd = crate::sys::memfd::create(c"shmring").map_err(|e| match e.kind() {
        io::ErrorKind::Unsupported => Error::Unsupported {
            what: "memfd_create",
        },
        _ => Error::io("memfd_create", &what, e),
    })?;
    let file = File::from(fd);
    // Harmless for a memfd (no name, no reclaimer), and uniform: every Segment holds
    // its presence lock.
    lock::try_lock(file.as_fd(), PRESENCE_LOCK, false)
        .map_err(|e| Error::io("F_OFD_SETLK", &what, e))?;
    // Only holders of the descriptor reach a memfd: its mode only matters to the
    // reopen through /proc/self/fd that every endpoint makes for its own lock, and
    // must not refuse a holder of another uid.
    let seal = if options.read_only {
        Seal::ResizeThenWrites
    } else {
        Seal::Resize
    };
    let (map, region) =
        finish_create_with(&file, &what, size, 0o666, options.prefault, seal, init)?;
    let bells = if C::DOORBELLS {
        BellSource::new_pipes()
    } else {
        BellSource::Unavailable {
            reason: "no waiters".to_owned(),
        }
    };
    Ok(Segment {
        region,
        map,
        file,
        what,
        unlink: None,
        bells: bells.into(),
    })
}

/// Sets the mode, reserves `size` bytes, seals a memfd, maps and initialises a ring.
#[cfg(test)]
pub(super) fn finish_create(
    file: &File,
    what: &str,
    size: usize,
    capacity: usize,
    options: &SegmentOptions,
    seal: bool,
) -> Result<(MmapRaw, RawRegion)> {
    let init = |map: &MmapRaw, what: &str| init_ring(map, what, capacity, options);
    let seal = if seal { Seal::Resize } else { Seal::No };
    finish_create_with(
        file,
        what,
        size,
        options.mode,
        options.prefault,
        seal,
        &init,
    )
}

/// How a created memfd is sealed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seal {
    /// Not at all (a named segment or a file).
    No,
    /// Against resizing, before it is mapped ([`crate::sys::memfd::SEALED`]).
    Resize,
    /// Against resizing before it is mapped, and against every later writable
    /// mapping or write (`F_SEAL_FUTURE_WRITE`) once its creator has mapped and
    /// initialised it: a write-once segment (`SegmentOptions::read_only`).
    ResizeThenWrites,
}

/// Sets the permission bits to `mode`, reserves `size` bytes, seals a memfd, maps
/// (with `MAP_POPULATE` if `prefault`) and initialises with `init`.
fn finish_create_with<C>(
    file: &File,
    what: &str,
    size: usize,
    mode: u32,
    prefault: bool,
    seal: Seal,
    init: Init<'_, C>,
) -> Result<(MmapRaw, C)> {
    file.set_permissions(Permissions::from_mode(mode & 0o777))
        .map_err(|e| Error::io("fchmod", what, e))?;
    allocate(file, size, what)?;
    let sealed = match seal {
        Seal::No => Ok(()),
        Seal::Resize => crate::sys::memfd::seal(file.as_fd()),
        Seal::ResizeThenWrites => crate::sys::memfd::seal_resize(file.as_fd()),
    };
    sealed.map_err(|e| Error::io("F_ADD_SEALS", what, e))?;
    let map = map(file, size, prefault, false, what)?;
    let contents = init(&map, what)?;
    if seal == Seal::ResizeThenWrites {
        // Our mapping stays writable; every later one (and `write`) is refused.
        crate::sys::memfd::seal_future_writes(file.as_fd())
            .map_err(|e| Error::io("F_ADD_SEALS", what, e))?;
    }
    Ok((map, contents))
}

/// The header flags a ring created with `options` carries: the asymmetric fence
/// pair if asked for and this process could register for `membarrier`.
pub(crate) fn fence_flags(options: &SegmentOptions) -> u32 {
    if options.asymmetric_fences && crate::futex::register_membarrier() {
        shmring_core::FLAG_ASYMMETRIC_FENCES
    } else {
        0
    }
}

/// Initialises a fresh ring of `capacity` bytes in `map`.
pub(super) fn init_ring(
    map: &MmapRaw,
    what: &str,
    capacity: usize,
    options: &SegmentOptions,
) -> Result<RawRegion> {
    let flags = fence_flags(options);
    // SAFETY: `map` is a fresh shared read-write mapping of `size` bytes (page
    // aligned, so 128-aligned) that the Segment will own alongside the region;
    // nobody else touches it during init (an opener does not use a segment before
    // its magic is published); afterwards this process touches it only through
    // shmring handles.
    unsafe { RawRegion::init_with_flags(map.as_mut_ptr(), map.len(), capacity, flags) }
        .map_err(|e| Error::layout(what, e))
}

/// Initialises a fresh MPMC ring of `geometry` in `map`.
pub(super) fn init_mpmc(
    map: &MmapRaw,
    what: &str,
    geometry: &MpmcGeometry,
    options: &SegmentOptions,
) -> Result<RawMpmcRegion> {
    let flags = fence_flags(options);
    // SAFETY: `map` is a fresh shared read-write mapping of at least the layout's
    // size (page aligned, so 128-aligned) that the Segment will own alongside the
    // region; nobody uses it before its magic is published; afterwards this process
    // touches it only through shmring handles.
    unsafe {
        RawMpmcRegion::init_with_flags(
            map.as_mut_ptr(),
            map.len(),
            geometry.slots(),
            geometry.slot_size(),
            geometry.endpoints(),
            flags,
        )
    }
    .map_err(|e| Error::layout(what, super::mpmc_header_error(e)))
}

/// `posix_fallocate(fd, 0, size)`: reserves the pages (tmpfs included), so a full
/// file system fails here and not with `SIGBUS` on first touch. Made as glibc
/// makes it: `fallocate`, and where the file system has none (`EOPNOTSUPP`), a
/// zero byte written into each block of the fresh (all-zero) file.
fn allocate(file: &File, size: usize, what: &str) -> Result<()> {
    let no_space = || Error::NoSpace {
        what: what.to_owned(),
        size: size as u64,
    };
    let len = i64::try_from(size).map_err(|_| no_space())? as u64;
    let result = loop {
        match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
            Err(Errno::INTR) => continue,
            Err(Errno::OPNOTSUPP) => {
                break file
                    .metadata()
                    .and_then(|meta| write_each_block(file, len, meta.blksize()));
            }
            other => break other.map_err(io::Error::from),
        }
    };
    result.map_err(|e| match Errno::from_io_error(&e) {
        Some(Errno::NOSPC) => no_space(),
        _ => Error::io("posix_fallocate", what, e),
    })
}

/// glibc's `posix_fallocate` without `fallocate`: a zero byte written at the start
/// of each block and at the last byte. Only for a fresh file, whose bytes are all
/// zero. The step is the file's `st_blksize` (`blksize`) capped at 4096 and at
/// least 512, as glibc caps its block size: `st_blksize` is the preferred I/O size,
/// not the allocation unit (NFS, the usual file system without `fallocate`, says
/// 1 MiB), and a larger step would leave pages unreserved.
fn write_each_block(file: &File, len: u64, blksize: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(());
    }
    let block = blksize.clamp(512, 4096);
    for offset in (0..len).step_by(block as usize) {
        file.write_all_at(&[0], offset)?;
    }
    file.write_all_at(&[0], len - 1)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// The fallback of file systems without `fallocate` sizes the file, allocates
    /// every page and leaves every byte zero, also where the file system reports a
    /// large preferred I/O size (NFS: 1 MiB); a tmpfs or a disk file system with
    /// `fallocate` gets the same from `allocate`.
    #[test]
    fn allocate_and_its_fallback_size_and_reserve_the_file() {
        let size: u64 = 16 * 4096 + 100;
        for fallback in [None, Some(4096), Some(1 << 20)] {
            let fd = crate::sys::memfd::create(c"alloc-test").unwrap();
            let file = File::from(fd);
            if let Some(blksize) = fallback {
                write_each_block(&file, size, blksize).unwrap();
            } else {
                allocate(&file, size as usize, "test").unwrap();
            }
            let meta = file.metadata().unwrap();
            assert_eq!(meta.len(), size, "fallback {fallback:?}");
            assert!(
                meta.blocks() * 512 >= size,
                "fallback {fallback:?}: {meta:?}"
            );
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes).unwrap();
            assert!(bytes.iter().all(|&b| b == 0), "fallback {fallback:?}");
        }
    }
}
