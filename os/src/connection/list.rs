//! Listing the connection sockets in a listeners' directory ([`list_listeners`])
//! and whether a listener is behind each, without connecting to it.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The `__SO_ACCEPTCON` flag of `/proc/net/unix`: the socket listens.
const ACCEPTING: u64 = 0x0001_0000;

/// A connection socket file as [`list_listeners`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    /// The service's name (the file's, less `.sock`).
    pub name: String,
    /// The socket file.
    pub path: PathBuf,
    /// Its owner's uid.
    pub owner_uid: u32,
    /// Its permission bits.
    pub mode: u32,
    /// A listening socket is bound at this path (in this network namespace):
    /// `Some(false)` is a socket file its listener left behind (stale);
    /// `None` if `/proc/net/unix` could not be read, or the file is not a socket.
    pub listening: Option<bool>,
}

/// Lists the `*.sock` files in `dir` (default: the directory listeners bind in,
/// `$XDG_RUNTIME_DIR/shmring` or `/tmp/shmring-<euid>`), sorted by name, each
/// with whether a listener is bound to it. Read-only: the liveness comes from
/// the kernel's table of bound Unix sockets (`/proc/net/unix`), not from a
/// connection, so a listener sees nothing.
///
/// # Errors
/// [`Error::Io`] if `dir` cannot be read; a missing `dir` lists nothing.
pub fn list_listeners(dir: Option<&Path>) -> Result<Vec<ListenerStatus>> {
    let dir = dir.map_or_else(super::dir::default_dir, Path::to_path_buf);
    let what = dir.display().to_string();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read_dir", what, e)),
    };
    let bound = listening_paths().ok();
    let mut list = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read_dir", &what, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.as_bytes().strip_suffix(b".sock") else {
            continue;
        };
        let path = entry.path();
        // Removed since the directory was read: left out.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let is_socket = meta.file_type().is_socket();
        list.push(ListenerStatus {
            name: String::from_utf8_lossy(name).into_owned(),
            listening: bound
                .as_ref()
                .filter(|_| is_socket)
                .map(|b| b.iter().any(|p| p.as_os_str() == path.as_os_str())),
            owner_uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            path,
        });
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

/// The paths of the listening Unix sockets in `/proc/net/unix`.
fn listening_paths() -> io::Result<Vec<PathBuf>> {
    let table = std::fs::read("/proc/net/unix")?;
    Ok(parse_listening(&table))
}

/// `Num RefCount Protocol Flags Type St Inode Path`, one socket a line; the path
/// (absent for unnamed sockets) is the rest of the line after the seventh field.
fn parse_listening(table: &[u8]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for line in table.split(|&b| b == b'\n').skip(1) {
        let mut rest = line;
        let mut fields = Vec::with_capacity(7);
        for _ in 0..7 {
            let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
            rest = &rest[start..];
            let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let path = rest.strip_prefix(b" ").unwrap_or(rest);
        let flags = std::str::from_utf8(fields[3])
            .ok()
            .and_then(|f| u64::from_str_radix(f, 16).ok());
        if flags.is_some_and(|f| f & ACCEPTING != 0) && path.first() == Some(&b'/') {
            paths.push(PathBuf::from(std::ffi::OsStr::from_bytes(path)));
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_table_is_parsed() {
        let table = b"Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/user/1000/shmring/a b.sock\n\
0000000000000000: 00000002 00000000 00000000 0001 03 12346 /tmp/connected\n\
0000000000000000: 00000002 00000000 00010000 0001 01 12347 @abstract\n\
0000000000000000: 00000002 00000000 00010000 0001 01 12348\n\
garbage\n";
        assert_eq!(
            parse_listening(table),
            vec![PathBuf::from("/run/user/1000/shmring/a b.sock")]
        );
    }
}
