//! Listing the shmring segments in `/dev/shm` ([`list_segments`]) and what each
//! one's header and locks say.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use shmring_core::{DATA_OFFSET, SegmentInfo};

use crate::error::{Error, Result};
use crate::sys::lock::{self, PRESENCE_LOCK, RECEIVER_LOCK, SENDER_LOCK};

use super::names::{SHM_DIR, SHM_PREFIX};

/// A shmring shared memory segment as [`list_segments`] sees it.
#[derive(Debug, Clone)]
pub struct SegmentStatus {
    /// The segment's name (without the `shmring.` prefix of its file name).
    pub name: String,
    /// Size of the object in bytes.
    pub size: u64,
    /// Owner's uid.
    pub owner_uid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// What kind of object the header says it is (`None`: no shmring header could
    /// be read: too short, not yet initialised, or another program's file).
    pub kind: Option<SegmentKind>,
    /// For a channel ([`SegmentKind::Channel`]): what its header and locks say, or
    /// why they could not be read. For the other kinds: an error naming the kind
    /// (only channels are inspected further).
    pub state: Result<SegmentState, String>,
}

/// The kind of shmring object in a segment, from the kind word that every
/// shmring header keeps at the same offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A single-producer single-consumer channel ([`ChannelBuilder`](crate::channel::ChannelBuilder)).
    Channel,
    /// A many-to-many channel ([`MpmcChannelBuilder`](crate::mpmc::MpmcChannelBuilder)).
    MpmcChannel,
    /// A named event ([`EventBuilder`](crate::event::EventBuilder)).
    Event,
    /// A named semaphore ([`SemaphoreBuilder`](crate::semaphore::SemaphoreBuilder)).
    Semaphore,
    /// A kind word this version does not know (a newer shmring, or corruption).
    Unknown(u32),
}

impl SegmentKind {
    /// Reads the kind from the first 16 bytes of a header: the magic (in this
    /// machine's byte order), the layout version, then the kind word.
    fn from_header(header: &[u8]) -> Option<Self> {
        use shmring_core::layout::{
            MAGIC, OBJECT_KIND_EVENT, OBJECT_KIND_SEMAPHORE, RING_KIND_MPMC, RING_KIND_SPSC,
        };
        let magic = u64::from_ne_bytes(header.get(0..8)?.try_into().ok()?);
        if magic != MAGIC {
            return None;
        }
        let kind = u32::from_ne_bytes(header.get(12..16)?.try_into().ok()?);
        Some(match kind {
            RING_KIND_SPSC => Self::Channel,
            RING_KIND_MPMC => Self::MpmcChannel,
            OBJECT_KIND_EVENT => Self::Event,
            OBJECT_KIND_SEMAPHORE => Self::Semaphore,
            other => Self::Unknown(other),
        })
    }
}

/// What a listed segment's header and locks say (a snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentState {
    /// Bytes in the ring's data region.
    pub capacity: usize,
    /// Bytes of messages not yet released by a receiver (the producer's published
    /// position less the consumer's, zero if that would be negative).
    pub used: u64,
    /// A sender holds its lock.
    pub sender_alive: bool,
    /// A receiver holds its lock.
    pub receiver_alive: bool,
    /// Some handle on the segment (a channel, an endpoint, a creator) is alive.
    pub handles_alive: bool,
}

/// Lists the shmring segments in `/dev/shm` (file names starting with `shmring.`),
/// sorted by name.
///
/// Each header is read with `pread` (no mapping) and validated by
/// [`SegmentInfo::parse`]; the sender, receiver and presence locks are probed with
/// `F_OFD_GETLK`. An entry that cannot be opened or read is listed with the error's
/// text in [`SegmentStatus::state`]; one removed while the list is made is left
/// out. Files and memfd segments are not listed.
///
/// # Errors
/// [`Error::NotFound`] or [`Error::Io`] if `/dev/shm` cannot be read.
pub fn list_segments() -> Result<Vec<SegmentStatus>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::io("read_dir", SHM_DIR, e))?;
    let mut list = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| Error::io("read_dir", SHM_DIR, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.as_bytes().strip_prefix(SHM_PREFIX.as_bytes()) else {
            continue;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        // An entry removed since the directory was read is left out.
        if let Some(status) = status_of(name, &entry.path()) {
            list.push(status);
        }
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

fn status_of(name: String, path: &Path) -> Option<SegmentStatus> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|file| file.metadata().map(|meta| (file, meta)));
    match opened {
        Ok((file, meta)) => {
            let (kind, state) = probe(&file, &meta);
            Some(SegmentStatus {
                name,
                size: meta.size(),
                owner_uid: meta.uid(),
                mode: meta.mode() & 0o7777,
                kind,
                state,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            let meta = std::fs::symlink_metadata(path).ok();
            Some(SegmentStatus {
                name,
                size: meta.as_ref().map_or(0, |m| m.size()),
                owner_uid: meta.as_ref().map_or(0, |m| m.uid()),
                mode: meta.as_ref().map_or(0, |m| m.mode() & 0o7777),
                kind: None,
                state: Err(e.to_string()),
            })
        }
    }
}

fn probe(
    file: &File,
    meta: &std::fs::Metadata,
) -> (Option<SegmentKind>, Result<SegmentState, String>) {
    if !meta.file_type().is_file() {
        return (None, Err("not a regular file".to_owned()));
    }
    let mut header = [0u8; DATA_OFFSET];
    let n = match read_full_at(file, &mut header) {
        Ok(n) => n,
        Err(e) => return (None, Err(format!("pread: {e}"))),
    };
    let kind = SegmentKind::from_header(&header[..n]);
    let state = match kind {
        Some(SegmentKind::Channel) | None => probe_channel(file, meta, &header[..n]),
        Some(other) => Err(format!("{other:?}: only channels are inspected")),
    };
    (kind, state)
}

fn probe_channel(
    file: &File,
    meta: &std::fs::Metadata,
    header: &[u8],
) -> Result<SegmentState, String> {
    let info = SegmentInfo::parse(header, meta.size()).map_err(|e| e.to_string())?;
    let locked =
        |offset| lock::is_locked(file.as_fd(), offset).map_err(|e| format!("F_OFD_GETLK: {e}"));
    Ok(SegmentState {
        capacity: info.capacity,
        used: info.write_position.saturating_sub(info.read_position),
        sender_alive: locked(SENDER_LOCK)?,
        receiver_alive: locked(RECEIVER_LOCK)?,
        handles_alive: locked(PRESENCE_LOCK)?,
    })
}

/// Reads from offset 0 until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
