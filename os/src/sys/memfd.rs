//! Anonymous shared memory (`memfd_create`) and its seals.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

/// The seals of a segment's memfd: it can neither shrink, nor grow, nor take or
/// lose seals.
pub(crate) const SEALED: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// A new memfd, close-on-exec, that can be sealed.
pub(crate) fn create(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::memfd_create(
        name,
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?)
}

/// Adds [`SEALED`] to a memfd.
pub(crate) fn seal(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fcntl_add_seals(fd, SEALED)?)
}

/// Seals a memfd against shrinking and growing only, leaving it open to
/// [`seal_future_writes`].
pub(crate) fn seal_resize(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fcntl_add_seals(
        fd,
        SealFlags::SHRINK.union(SealFlags::GROW),
    )?)
}

/// Seals a memfd against every later write and writable shared mapping
/// (`F_SEAL_FUTURE_WRITE`, Linux 5.1; mappings made before stay writable) and
/// against further seals.
pub(crate) fn seal_future_writes(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fcntl_add_seals(
        fd,
        SealFlags::FUTURE_WRITE.union(SealFlags::SEAL),
    )?)
}

/// The seals of `fd` (`EINVAL` for a file that cannot be sealed).
pub(crate) fn seals(fd: BorrowedFd<'_>) -> io::Result<SealFlags> {
    Ok(rustix::fs::fcntl_get_seals(fd)?)
}
