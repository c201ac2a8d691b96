//! The private directory that holds the listeners' sockets.
//!
//! `$XDG_RUNTIME_DIR/shmring`, or `/tmp/shmring-<euid>` where `XDG_RUNTIME_DIR`
//! is unset, or a directory the caller names. Before a socket is bound or
//! connected in it, the directory is checked with `lstat`: a directory (not a
//! symbolic link), owned by the expected uid, with no permission bits outside the
//! allowed mode (default `0o700`). In a shared `/tmp` anyone can make
//! `/tmp/shmring-1000` first; the check refuses such a directory instead of
//! binding (or connecting) in it.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys;

/// The environment variable that names the runtime directory.
const RUNTIME_DIR_VAR: &str = "XDG_RUNTIME_DIR";

/// The directory used when none is configured: `$XDG_RUNTIME_DIR/shmring`, else
/// `/tmp/shmring-<euid>`.
pub(crate) fn default_dir() -> PathBuf {
    match std::env::var_os(RUNTIME_DIR_VAR).filter(|v| !v.is_empty()) {
        Some(runtime) => Path::new(&runtime).join("shmring"),
        None => PathBuf::from(format!("/tmp/shmring-{}", sys::euid())),
    }
}

/// Creates `dir` (mode `0o700`) if it is missing, then checks it as [`check`]
/// does. Only the last component is created: its parent must exist.
pub(crate) fn ensure(dir: &Path, owners: &[u32], allowed_mode: u32) -> Result<()> {
    let what = describe(dir);
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("mkdir", what, e)),
    }
    check(dir, owners, allowed_mode)
}

/// Checks with `lstat` that `dir` is a directory, not a symbolic link, owned by
/// one of `owners`, with no permission bits outside `allowed_mode`.
///
/// # Errors
/// [`Error::NotFound`]; [`Error::WrongFileType`] (a symbolic link or not a
/// directory); [`Error::Untrusted`] naming the owner and mode found.
pub(crate) fn check(dir: &Path, owners: &[u32], allowed_mode: u32) -> Result<()> {
    let what = describe(dir);
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io("lstat", &what, e))?;
    if !meta.file_type().is_dir() {
        return Err(Error::WrongFileType {
            what,
            expected: "directory",
            found: sys::file_kind(&meta),
        });
    }
    let mode = meta.mode() & 0o7777;
    if !owners.contains(&meta.uid()) || mode & !allowed_mode != 0 {
        return Err(Error::Untrusted {
            what,
            owner: meta.uid(),
            mode,
            expected_owner: owners.first().copied().unwrap_or_else(sys::euid),
            allowed_mode,
        });
    }
    Ok(())
}

fn describe(dir: &Path) -> String {
    format!("socket directory {}", dir.display())
}
