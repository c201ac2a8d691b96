//! Listing, inspecting and cleaning the shmring objects in `/dev/shm`
//! ([`list_objects`], [`inspect`], [`clean`], [`clean_stale`]): what each one's
//! header says and which of its liveness locks are held; and the doorbell FIFOs
//! left without their segment (orphans).
//!
//! Everything here reads files with `pread` (no mapping), opened with
//! `O_NONBLOCK | O_NOFOLLOW` (a FIFO or a link planted at a name neither blocks
//! nor redirects us), and validates each header with core's parsers, which check
//! exactly what `attach` checks. A header that fails gives an entry whose
//! [`ObjectStatus::state`] says what is wrong; nothing here writes a segment
//! (cleaning an orphan makes, and then removes, an empty file at its segment's
//! name: see [`clean`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use shmring_core::broadcast::layout::{ENTRIES_OFFSET, ENTRY_SIZE};
use shmring_core::broadcast::{BroadcastInfo, BroadcastSubscriberInfo, Policy};
use shmring_core::mpmc::layout::{MPMC_TABLE_OFFSET, ROLE_CONSUMER, ROLE_PRODUCER};
use shmring_core::mpmc::{MpmcEntryInfo, MpmcInfo, MpmcLayoutError};
use shmring_core::object::layout::{OBJECT_SIZE, ObjectSnapshot};
use shmring_core::state::mutex::{MUTEX_TABLE_OFFSET, MutexSlotSnapshot, MutexSnapshot};
use shmring_core::state::value::{VALUE_WRITER_LOCK, ValueSnapshot};
use shmring_core::{DATA_OFFSET, LayoutError, SegmentInfo};

use crate::broadcast::{PUBLISHER_LOCK, slot_lock};
use crate::error::{Error, Result};
use crate::readiness::{Bell, MAX_SLOT_BELLS, slot_bell_path};
use crate::sys::lock::{self, PRESENCE_LOCK, RECEIVER_LOCK, SENDER_LOCK};

use super::Backing;
use super::names::{
    BELL_PREFIX, Named, SHM_DIR, SHM_PREFIX, is_ours, remove_if_ours, remove_with_bells_if_ours,
    validate_name,
};

/// The suffix of a broadcast topic's subscriber table beside its data segment.
const TABLE_SUFFIX: &str = ".subs";
/// Bytes read from the start of every file to find its kind: enough for every
/// kind's fixed header (an SPSC header is the longest).
const PROBE_LEN: usize = DATA_OFFSET;

/// The kind of shmring object, from the kind word that every shmring header keeps
/// at the same offset (12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A single-producer single-consumer channel ([`ChannelBuilder`](crate::channel::ChannelBuilder)).
    Channel,
    /// A many-to-many channel ([`MpmcChannelBuilder`](crate::mpmc::MpmcChannelBuilder)).
    MpmcChannel,
    /// A broadcast topic ([`BroadcastBuilder`](crate::broadcast::BroadcastBuilder)):
    /// its data segment `<name>` and subscriber table `<name>.subs`, one object.
    BroadcastTopic,
    /// A named event ([`EventBuilder`](crate::event::EventBuilder)).
    Event,
    /// A named semaphore ([`SemaphoreBuilder`](crate::semaphore::SemaphoreBuilder)).
    Semaphore,
    /// A value published by one writer ([`SharedValueBuilder`](crate::state::SharedValueBuilder)).
    SharedValue,
    /// A value guarded by a robust lock ([`SharedMutexBuilder`](crate::state::SharedMutexBuilder)).
    SharedMutex,
    /// A kind word this version does not know (a newer shmring, or corruption).
    Unknown(u32),
}

impl ObjectKind {
    /// Reads the kind from the first 16 bytes of a header: the magic (in this
    /// machine's byte order), the layout version, then the kind word. `None`: no
    /// shmring magic. A table (kind 6) is a [`BroadcastTopic`](Self::BroadcastTopic).
    fn from_header(header: &[u8]) -> Option<Self> {
        use shmring_core::layout::{
            MAGIC, OBJECT_KIND_EVENT, OBJECT_KIND_SEMAPHORE, RING_KIND_BROADCAST,
            RING_KIND_BROADCAST_TABLE, RING_KIND_MPMC, RING_KIND_SPSC, STATE_KIND_MUTEX,
            STATE_KIND_VALUE,
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
            STATE_KIND_VALUE => Self::SharedValue,
            STATE_KIND_MUTEX => Self::SharedMutex,
            RING_KIND_BROADCAST | RING_KIND_BROADCAST_TABLE => Self::BroadcastTopic,
            other => Self::Unknown(other),
        })
    }
}

impl std::fmt::Display for ObjectKind {
    /// `spsc`, `mpmc`, `topic`, `event`, `semaphore`, `value`, `mutex`, or
    /// `unknown(N)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Channel => f.write_str("spsc"),
            Self::MpmcChannel => f.write_str("mpmc"),
            Self::BroadcastTopic => f.write_str("topic"),
            Self::Event => f.write_str("event"),
            Self::Semaphore => f.write_str("semaphore"),
            Self::SharedValue => f.write_str("value"),
            Self::SharedMutex => f.write_str("mutex"),
            Self::Unknown(kind) => write!(f, "unknown({kind})"),
        }
    }
}

/// A shmring object in `/dev/shm` as [`list_objects`] and [`inspect`] see it: a
/// snapshot (every count may move while it is read; the liveness locks are the
/// truth about holders, the pids only hints).
///
/// An **orphan** is what is left of an object whose segment is gone while its
/// doorbell FIFOs are not (its last holder killed after the segment was removed,
/// or the segment unlinked by hand): `kind` and `layout_version` `None`, `size`
/// 0, no `files`, the FIFOs in `bells`, and `state`
/// `Err(`[`ObjectError::OrphanBells`]`)` naming the missing segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStatus {
    /// The object's name (without the `shmring.` prefix; a topic's data segment's
    /// name, without `.subs`; an orphan's, see [`list_objects`]).
    pub name: String,
    /// What kind the header says it is (`None`: no shmring header could be read:
    /// too short, not yet initialised, another program's file, or corrupt; or
    /// no segment at all, an orphan).
    pub kind: Option<ObjectKind>,
    /// The header's layout version word (`None` if too short to have one).
    pub layout_version: Option<u32>,
    /// Bytes of its files together.
    pub size: u64,
    /// The first file's owner uid (an orphan: its first doorbell's).
    pub owner_uid: u32,
    /// The first file's permission bits (`st_mode & 0o7777`; an orphan: its
    /// first doorbell's).
    pub mode: u32,
    /// Its segment files (a topic: data then table) and their presence locks
    /// (none for an orphan).
    pub files: Vec<ObjectFile>,
    /// The doorbell FIFOs found beside it (`/dev/shm/shmring-bell.<segment>.data`,
    /// `.space`, and a topic table's `.data.<slot>`): they belong to it and
    /// [`clean`] removes them with it. An orphan's are all it has.
    pub bells: Vec<PathBuf>,
    /// No live holder: no file's presence lock and no role or entry lock is held
    /// (false when a lock could not be probed). An orphan: no process has one
    /// of its doorbells open (see [`list_objects`]; false when one could not be
    /// probed).
    pub stale: bool,
    /// What the header and the role locks say, or why they could not be read.
    pub state: std::result::Result<ObjectState, ObjectError>,
}

/// One segment file of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Some handle (a channel, an endpoint, a creator) holds its presence lock
    /// (`None`: it could not be probed).
    pub handles_alive: Option<bool>,
}

/// A role's holder: whether one holds the role's liveness lock, and the pid the
/// layout records for it (a hint: the lock is the truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// A process holds the role's lock.
    pub live: bool,
    /// The pid the layout records for the role (its pid word, or where the
    /// layout has none or it is 0, the owner word, which `shmring` fills with
    /// the holder's pid), if non-zero.
    pub pid: Option<u32>,
}

/// What a valid object's header and locks say, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    /// A single-producer single-consumer channel.
    Channel(ChannelState),
    /// A many-to-many channel.
    MpmcChannel(MpmcState),
    /// A broadcast topic.
    BroadcastTopic(TopicState),
    /// An event.
    Event(EventState),
    /// A semaphore.
    Semaphore(SemaphoreState),
    /// A published value.
    SharedValue(ValueState),
    /// A shared mutex.
    SharedMutex(MutexState),
}

impl ObjectState {
    /// Whether a role or entry lock is held.
    fn any_role_live(&self) -> bool {
        match self {
            Self::Channel(c) => c.sender.live || c.receiver.live,
            Self::MpmcChannel(m) => m.endpoints.iter().any(|e| e.holder.live),
            Self::BroadcastTopic(t) => {
                t.publisher.live || t.subscribers.iter().any(|s| s.holder.live)
            }
            Self::SharedValue(v) => v.writer.live,
            Self::SharedMutex(m) => m.slots.iter().any(|s| s.holder.live),
            Self::Event(_) | Self::Semaphore(_) => false,
        }
    }

    /// How full a ring is: an SPSC channel's bytes not yet released of its
    /// capacity; an MPMC channel's messages claimed by producers and not yet by
    /// consumers, of its slots; a topic's bytes between its oldest intact frame
    /// and its write position, of its capacity. `None` for events and
    /// semaphores.
    pub fn fill(&self) -> Option<Fill> {
        let (used, capacity, unit) = match self {
            Self::Channel(c) => (c.used, c.header.capacity as u64, FillUnit::Bytes),
            Self::MpmcChannel(m) => (m.used, m.header.geometry.slots() as u64, FillUnit::Messages),
            Self::BroadcastTopic(t) => {
                let capacity = t.header.config.capacity as u64;
                let held = t
                    .header
                    .write_position
                    .saturating_sub(t.header.oldest_position);
                (held.min(capacity), capacity, FillUnit::Bytes)
            }
            Self::Event(_) | Self::Semaphore(_) | Self::SharedValue(_) | Self::SharedMutex(_) => {
                return None;
            }
        };
        Some(Fill {
            used,
            capacity,
            unit,
        })
    }

    /// What a ring has carried since it was made, as its positions say: read it
    /// twice and divide the differences by the time between for rates. Read-only,
    /// like the rest of the listing: sampling takes no role and moves nothing.
    ///
    /// An SPSC channel counts bytes only (its write position: frame headers and
    /// padding included; its layout does not count messages); an MPMC channel
    /// counts messages only (its tail: claims by producers, its slots are fixed
    /// size); a topic counts both (its write position and its publication
    /// sequence); a published value counts messages (its versions: `seq / 2`).
    /// `None` for events and semaphores. A hostile peer can make the
    /// numbers go backwards: a reader of two samples must check.
    pub fn progress(&self) -> Option<Progress> {
        Some(match self {
            Self::Channel(c) => Progress {
                bytes: Some(c.header.write_position),
                messages: None,
            },
            Self::MpmcChannel(m) => Progress {
                bytes: None,
                messages: Some(m.header.tail),
            },
            Self::BroadcastTopic(t) => Progress {
                bytes: Some(t.header.write_position),
                messages: Some(t.header.write_seq),
            },
            Self::SharedValue(v) => Progress {
                bytes: None,
                messages: Some(v.header.seq / 2),
            },
            Self::Event(_) | Self::Semaphore(_) | Self::SharedMutex(_) => return None,
        })
    }
}

/// What a ring has carried so far ([`ObjectState::progress`]): monotonic
/// counters, where its layout keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written to the data region, frame overhead included.
    pub bytes: Option<u64>,
    /// Messages written.
    pub messages: Option<u64>,
}

/// A ring's fill level ([`ObjectState::fill`]): a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// In use.
    pub used: u64,
    /// Of.
    pub capacity: u64,
    /// What `used` and `capacity` count.
    pub unit: FillUnit,
}

/// What a [`Fill`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillUnit {
    /// Bytes of the data region (SPSC channels, topics).
    Bytes,
    /// Messages, one per slot (MPMC channels).
    Messages,
}

/// An SPSC channel's header and roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelState {
    /// The validated header: capacity, positions, owner words, flags.
    pub header: SegmentInfo,
    /// Bytes not yet released by a receiver (write less read position, 0 if that
    /// would be negative).
    pub used: u64,
    /// The sender (lock byte 136; its pid word, else its owner word).
    pub sender: Holder,
    /// The receiver (lock byte 264).
    pub receiver: Holder,
}

/// An MPMC channel's header, counters and registered endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpmcState {
    /// The validated shape, flags and counters (recovered: `skipped`, `lost`).
    pub header: MpmcInfo,
    /// Messages claimed by producers and not yet by consumers (tail less head,
    /// at most the slot count).
    pub used: u64,
    /// The endpoint table's entries that are held or were ever used, by index.
    pub endpoints: Vec<MpmcEndpoint>,
}

/// An entry of an MPMC channel's endpoint table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpmcEndpoint {
    /// Its index in the table (its lock byte is `512 + 128 index`).
    pub index: usize,
    /// The role word: producer, consumer, or none.
    pub role: MpmcRole,
    /// Whether its lock is held, and the pid it recorded.
    pub holder: Holder,
    /// The words as read (intent, owner, generation, pid).
    pub entry: MpmcEntryInfo,
}

/// An MPMC entry's role word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcRole {
    /// Free (0).
    None,
    /// A producer (1).
    Producer,
    /// A consumer (2).
    Consumer,
    /// Another value (corruption).
    Invalid(u32),
}

/// A broadcast topic's headers, publisher and subscriber slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// The validated configuration of both headers and their shared words.
    pub header: BroadcastInfo,
    /// The publisher (lock byte 128 of the table; its pid from the data
    /// segment's pid word, offset 280, else its owner word, which holds its pid).
    pub publisher: Holder,
    /// The slots that are held or claimed, by slot.
    pub subscribers: Vec<SubscriberStatus>,
}

/// One subscriber slot of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberStatus {
    /// The slot (its lock byte is `256 + 128 slot` of the table).
    pub slot: usize,
    /// Whether its lock is held, and the pid it recorded.
    pub holder: Holder,
    /// Gated or strict: bytes published past its cursor (a lossy subscriber
    /// publishes no cursor: `None`).
    pub lag: Option<u64>,
    /// The words as read (cursor, claims, cut-off).
    pub entry: BroadcastSubscriberInfo,
}

/// An event's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventState {
    /// The notification sequence.
    pub sequence: u32,
    /// Callers registered to sleep on it.
    pub waiters: u32,
}

/// A semaphore's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemaphoreState {
    /// The count.
    pub value: u32,
    /// Its maximum.
    pub max: u32,
    /// Callers registered to sleep on it.
    pub waiters: u32,
}

/// A published value's header, seqlock words and writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueState {
    /// The validated header (value size, flags, type tag) and the words as read
    /// (`seq`, the writer's owner and pid words, `version_signal`, `waiters`).
    pub header: ValueSnapshot,
    /// The version published (`seq / 2`); `None` before the first write.
    pub version: Option<u64>,
    /// A write is in progress, or its writer died in it (`seq` odd).
    pub writing: bool,
    /// The writer (lock byte 136; its pid word, else its owner word).
    pub writer: Holder,
}

/// A shared mutex's header, lock word and slot table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutexState {
    /// The validated header (value size, slots, flags, type tag) and the lock
    /// line as read (`state`, `inconsistent`, `deaths`).
    pub header: MutexSnapshot,
    /// The slot the lock word names as the lock's holder (`None`: free, or a
    /// word naming no slot); it may be past the table (a hostile word).
    pub locked_by: Option<usize>,
    /// The holder the lock word names, if its slot is in the table: whether its
    /// slot's lock is held and the pid recorded there. A holder that is not
    /// live is dead: the next locker takes the lock over.
    pub locker: Option<Holder>,
    /// A locker sleeps on the word (`WAITERS`, bit 31).
    pub waiters: bool,
    /// The value is marked inconsistent (a holder died holding the lock and
    /// nobody has marked it consistent since).
    pub inconsistent: bool,
    /// Holders found dead and taken over from (wrapping).
    pub deaths: u32,
    /// The slots that are held or were ever claimed, by slot.
    pub slots: Vec<MutexSlotStatus>,
}

/// One slot of a shared mutex's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexSlotStatus {
    /// The slot (its lock byte is `256 + 128 slot`).
    pub slot: usize,
    /// Whether its lock is held (a live handle), and the pid it recorded.
    pub holder: Holder,
    /// The words as read (owner, generation, pid).
    pub entry: MutexSlotSnapshot,
}

/// Why an object's state could not be read: the verdict on a corrupt, foreign,
/// partial or unreadable object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A system call failed on one of its files.
    #[error("{op} {path}: {error}")]
    Io {
        /// The call.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error's text.
        error: String,
    },
    /// The name is not a regular file (a FIFO, a directory, a device).
    #[error("{path} is not a regular file")]
    NotRegularFile {
        /// The file.
        path: PathBuf,
    },
    /// The header failed validation.
    #[error("invalid header: {0}")]
    Layout(#[from] LayoutError),
    /// An MPMC header failed validation.
    #[error("invalid MPMC header: {0}")]
    MpmcLayout(#[from] MpmcLayoutError),
    /// One of a topic's two files is missing (a crash between creating or
    /// removing them).
    #[error("the topic's {missing} is missing")]
    MissingPart {
        /// `"data segment"` or `"subscriber table"`.
        missing: &'static str,
    },
    /// A kind word this version does not know.
    #[error("unknown kind {0}")]
    UnknownKind(u32),
    /// An orphan: only doorbell FIFOs are left, beside a segment that is gone
    /// (removed while a holder lived, or unlinked by hand). The entry's
    /// [`bells`](ObjectStatus::bells) are those FIFOs and it has no files.
    #[error("only doorbells are left: no segment {segment}")]
    OrphanBells {
        /// The segment they were made beside (`/dev/shm/shmring.<segment>`),
        /// which does not exist.
        segment: PathBuf,
    },
}

/// Lists the shmring objects in `/dev/shm` (files named `shmring.*`), one entry
/// per object (a topic's `<name>` and `<name>.subs` together), sorted by name.
/// Doorbell FIFOs (`shmring-bell.*`) are attributed to their object
/// ([`ObjectStatus::bells`]), not listed.
///
/// **Orphans.** Doorbells whose segment is gone (no `/dev/shm/shmring.<segment>`,
/// checked after the directory is read) are listed as an orphan entry per
/// segment (see [`ObjectStatus`]), under the segment's name; a broadcast table's
/// (those with subscriber slot FIFOs, beside a `<topic>.subs`) under the topic's
/// name unless another entry has that name, as a lone table is. Only FIFOs with
/// a doorbell's name count (`<segment>.data`, `.space`, `.data.<slot>`); another
/// file there is not ours and is left out. An orphan's doorbells have no lock to
/// probe: it is stale unless a process has one of them open, which is found by
/// opening each write-only and non-blocking (it fails, changing nothing, when no
/// process has it open: every waiter and every ringer of a doorbell holds it
/// open for reading). When one does, that open succeeds and is closed at once: a
/// waiter with no ringer then sees one hang-up, which to a waiter only means
/// "look again". A bell beside an existing segment is never an orphan.
///
/// Each header is read with `pread` (no mapping) and validated by core's parser
/// for its kind; every liveness lock the library takes on the file (presence,
/// roles, MPMC entries, topic publisher and subscriber slots) is probed with
/// `F_OFD_GETLK`. An entry that cannot be opened, read or validated is listed with
/// the reason in [`ObjectStatus::state`]; one removed while the list is made is
/// left out. Files and memfd segments are not listed.
///
/// # Errors
/// [`Error::NotFound`] or [`Error::Io`] if `/dev/shm` cannot be read.
///
/// # Examples
/// ```
/// # fn main() -> shmring::Result<()> {
/// for object in shmring::list_objects()? {
///     let kind = object.kind.map_or("?".to_owned(), |k| k.to_string());
///     let fill = object.state.as_ref().ok().and_then(|s| s.fill());
///     let verdict = match &object.state {
///         Ok(_) if object.stale => "stale".to_owned(),
///         Ok(_) => "live".to_owned(),
///         Err(e) => e.to_string(),
///     };
///     println!("{kind:9} {:30} {fill:?} {verdict}", object.name);
/// }
/// # Ok(())
/// # }
/// ```
pub fn list_objects() -> Result<Vec<ObjectStatus>> {
    let mut probes = Vec::new();
    let mut bells = Vec::new();
    for (file_name, path) in shm_dir()? {
        let file_name = file_name.as_bytes();
        if let Some(name) = file_name.strip_prefix(SHM_PREFIX.as_bytes()) {
            let name = String::from_utf8_lossy(name).into_owned();
            // An entry removed since the directory was read is left out.
            if let Some(probe) = FileProbe::read(name, path) {
                probes.push(probe);
            }
        } else if let Some((segment, slot)) = bell_segment(file_name) {
            bells.extend(BellFile::read(path, segment, slot));
        }
    }
    Ok(objects(probes, bells))
}

/// The names and paths in `/dev/shm`.
fn shm_dir() -> Result<Vec<(std::ffi::OsString, PathBuf)>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::io("read_dir", SHM_DIR, e))?;
    let mut entries = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| Error::io("read_dir", SHM_DIR, e))?;
        entries.push((entry.file_name(), entry.path()));
    }
    Ok(entries)
}

/// Inspects the object `name` (a topic's name, or its table's `<name>.subs`):
/// the same snapshot as its [`list_objects`] entry, with every header field in
/// [`ObjectStatus::state`].
///
/// An orphan (see [`list_objects`]) is found by its entry's name, or by its
/// segment's name (a topic's table's orphan by `<name>.subs` too).
///
/// # Errors
/// [`Error::InvalidName`]; [`Error::NotFound`] if no `shmring.<name>` (nor its
/// table) exists and no doorbell of either is left; [`Error::Io`] if `/dev/shm`
/// cannot be read.
pub fn inspect(name: &str) -> Result<ObjectStatus> {
    validate_name(name)?;
    let base = name.strip_suffix(TABLE_SUFFIX).unwrap_or(name);
    let mut probes = Vec::new();
    for candidate in [
        name.to_owned(),
        base.to_owned(),
        format!("{base}{TABLE_SUFFIX}"),
    ] {
        if probes.iter().any(|p: &FileProbe| p.name == candidate) {
            continue;
        }
        if let Some(probe) = FileProbe::read(candidate.clone(), shm_file(&candidate)) {
            probes.push(probe);
        }
    }
    // The doorbells beside the same names, for orphans.
    let candidates = [name, base, &format!("{base}{TABLE_SUFFIX}")].map(str::to_owned);
    let mut bells = Vec::new();
    for (file_name, path) in shm_dir()? {
        if let Some((segment, slot)) = bell_segment(file_name.as_bytes()) {
            if candidates.contains(&segment) {
                bells.extend(BellFile::read(path, segment, slot));
            }
        }
    }
    let mut list = objects(probes, bells);
    // The exact name first: `<name>.subs` may be an object of its own.
    let orphan_of_name = Err(ObjectError::OrphanBells {
        segment: shm_file(name),
    });
    let at = list.iter().position(|s| s.name == name).or_else(|| {
        list.iter().position(|s| {
            s.name == base
                && (s.kind == Some(ObjectKind::BroadcastTopic) || s.state == orphan_of_name)
        })
    });
    match at {
        Some(at) => Ok(list.swap_remove(at)),
        None => Err(Error::NotFound {
            what: name.to_owned(),
        }),
    }
}

/// `/dev/shm/shmring.<name>`.
fn shm_file(name: &str) -> PathBuf {
    Path::new(SHM_DIR).join(format!("{SHM_PREFIX}{name}"))
}

/// One file's opening and first bytes.
struct FileProbe {
    name: String,
    path: PathBuf,
    size: u64,
    owner_uid: u32,
    mode: u32,
    /// The open file, or why it could not be opened or read.
    file: std::result::Result<File, ObjectError>,
    header: Vec<u8>,
    kind: Option<ObjectKind>,
    /// Its raw kind word says "subscriber table".
    is_table: bool,
}

impl FileProbe {
    /// Opens `path` read-only, non-blocking and without following a link, and
    /// reads its first bytes; `None` if it no longer exists.
    fn read(name: String, path: PathBuf) -> Option<Self> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(|file| file.metadata().map(|meta| (file, meta)));
        let (file, meta) = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                let meta = std::fs::symlink_metadata(&path).ok();
                let error = ObjectError::Io {
                    op: "open",
                    path: path.clone(),
                    error: e.to_string(),
                };
                return Some(Self {
                    name,
                    size: meta.as_ref().map_or(0, |m| m.size()),
                    owner_uid: meta.as_ref().map_or(0, |m| m.uid()),
                    mode: meta.as_ref().map_or(0, |m| m.mode() & 0o7777),
                    path,
                    file: Err(error),
                    header: Vec::new(),
                    kind: None,
                    is_table: false,
                });
            }
        };
        let mut probe = Self {
            name,
            size: meta.size(),
            owner_uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            file: Ok(file),
            header: Vec::new(),
            kind: None,
            is_table: false,
            path,
        };
        if !meta.file_type().is_file() {
            probe.file = Err(ObjectError::NotRegularFile {
                path: probe.path.clone(),
            });
            return Some(probe);
        }
        if let Ok(file) = &probe.file {
            match read_at(file, 0, PROBE_LEN, &probe.path) {
                Ok(header) => {
                    probe.kind = ObjectKind::from_header(&header);
                    probe.is_table = probe.kind.is_some()
                        && u32_word(&header, 12)
                            == Some(shmring_core::layout::RING_KIND_BROADCAST_TABLE);
                    probe.header = header;
                }
                Err(e) => probe.file = Err(e),
            }
        }
        Some(probe)
    }

    /// Whether another description holds a lock on byte `offset` of this file.
    fn locked(&self, offset: u64) -> std::result::Result<bool, ObjectError> {
        let file = self.file.as_ref().map_err(Clone::clone)?;
        lock::is_locked(file.as_fd(), offset).map_err(|e| ObjectError::Io {
            op: "fcntl(F_OFD_GETLK)",
            path: self.path.clone(),
            error: e.to_string(),
        })
    }

    /// `len` bytes from `offset` (fewer at the end of the file).
    fn bytes(&self, offset: u64, len: usize) -> std::result::Result<Vec<u8>, ObjectError> {
        let file = self.file.as_ref().map_err(Clone::clone)?;
        read_at(file, offset, len, &self.path)
    }

    fn layout_version(&self) -> Option<u32> {
        u32_word(&self.header, 8)
    }
}

fn u32_word(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The entries for the segment files `probes` and the doorbell FIFOs `bells`
/// found: one per object of the files (with the doorbells beside each,
/// [`bells_of`]), and one per segment that has doorbells here and no file now
/// (an orphan); sorted by name.
fn objects(probes: Vec<FileProbe>, bells: Vec<BellFile>) -> Vec<ObjectStatus> {
    let files: BTreeSet<String> = probes.iter().map(|p| p.name.clone()).collect();
    let mut orphaned: BTreeMap<String, Vec<BellFile>> = BTreeMap::new();
    for bell in bells {
        if !files.contains(&bell.segment) {
            orphaned.entry(bell.segment.clone()).or_default().push(bell);
        }
    }
    // Gone now, not only missing from the directory as it was read: a segment
    // made since then has its doorbells back (they are its own).
    orphaned.retain(|segment, _| {
        std::fs::symlink_metadata(shm_file(segment))
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
    });
    let taken = |n: &str| files.contains(n) || orphaned.contains_key(n);
    let mut list = group(probes, &taken);
    let named: Vec<(String, String)> = orphaned
        .iter()
        .map(|(segment, bells)| {
            let is_table = bells.iter().any(|b| b.slot.is_some());
            let name = match segment.strip_suffix(TABLE_SUFFIX) {
                Some(base) if is_table && !taken(base) => base.to_owned(),
                _ => segment.clone(),
            };
            (segment.clone(), name)
        })
        .collect();
    for (segment, name) in named {
        let bells = orphaned.remove(&segment).unwrap_or_default();
        list.push(status_of_orphan(name, &segment, bells));
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// Makes one entry per object of the files `probes`: a topic's table joins its
/// data segment (a table whose data segment is gone, or the reverse, is an entry
/// of its own that says so, under the topic's name unless `taken` says another
/// entry has that name).
fn group(probes: Vec<FileProbe>, taken: &dyn Fn(&str) -> bool) -> Vec<ObjectStatus> {
    let mut by_name: BTreeMap<String, FileProbe> =
        probes.into_iter().map(|p| (p.name.clone(), p)).collect();
    let mut list = Vec::new();
    let names: Vec<String> = by_name.keys().cloned().collect();
    for name in names {
        let Some(probe) = by_name.remove(&name) else {
            continue; // a table, taken with its data segment
        };
        if probe.is_table {
            // Its data segment sorts before it, so it would have been taken
            // already: there is none. Listed under the topic's name, unless
            // another object has that name.
            let entry_name = match name.strip_suffix(TABLE_SUFFIX) {
                Some(base) if !taken(base) => base.to_owned(),
                _ => name,
            };
            list.push(status_of_topic(entry_name, None, Some(probe)));
            continue;
        }
        if probe.kind == Some(ObjectKind::BroadcastTopic) {
            let table_name = format!("{name}{TABLE_SUFFIX}");
            let table = match by_name.get(&table_name) {
                Some(t) if t.is_table => by_name.remove(&table_name),
                _ => None,
            };
            list.push(status_of_topic(name, Some(probe), table));
            continue;
        }
        list.push(status_of_single(probe));
    }
    list
}

/// A doorbell FIFO's file name in `/dev/shm`, parsed: the segment it is beside,
/// and the subscriber slot for a broadcast table's slot FIFO. `None` for a name
/// no doorbell has (`shmring-bell.<segment>.data`, `.space` or `.data.<slot>`,
/// `<segment>` a valid name, `<slot>` in decimal below the most slots).
fn bell_segment(file_name: &[u8]) -> Option<(String, Option<usize>)> {
    let rest = std::str::from_utf8(file_name.strip_prefix(BELL_PREFIX.as_bytes())?).ok()?;
    let (segment, slot) = match rest
        .strip_suffix(".data")
        .or_else(|| rest.strip_suffix(".space"))
    {
        Some(segment) => (segment, None),
        None => {
            let (head, digits) = rest.rsplit_once('.')?;
            let slot = digits
                .parse::<usize>()
                .ok()
                .filter(|&n| n < MAX_SLOT_BELLS && n.to_string() == digits)?;
            (head.strip_suffix(".data")?, Some(slot))
        }
    };
    validate_name(segment).ok()?;
    Some((segment.to_owned(), slot))
}

/// A doorbell FIFO found in `/dev/shm` (`lstat`: never a link's target).
struct BellFile {
    path: PathBuf,
    /// The segment it is beside.
    segment: String,
    /// A broadcast table's subscriber slot FIFO: its slot.
    slot: Option<usize>,
    owner_uid: u32,
    mode: u32,
}

impl BellFile {
    /// `None` if `path` is gone or is not a FIFO (not a doorbell: left alone).
    fn read(path: PathBuf, segment: String, slot: Option<usize>) -> Option<Self> {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::symlink_metadata(&path).ok()?;
        meta.file_type().is_fifo().then(|| Self {
            path,
            segment,
            slot,
            owner_uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        })
    }
}

/// The entry of the orphaned doorbells `bells` of the missing segment `segment`.
fn status_of_orphan(name: String, segment: &str, mut bells: Vec<BellFile>) -> ObjectStatus {
    bells.sort_by(|a, b| (a.slot, &a.path).cmp(&(b.slot, &b.path)));
    // Not held: no process has any of them open (an error: not known, not stale).
    let stale = bells
        .iter()
        .all(|b| crate::sys::bell::fifo_has_reader(&b.path).is_ok_and(|open| !open));
    ObjectStatus {
        name,
        kind: None,
        layout_version: None,
        size: 0,
        owner_uid: bells.first().map_or(0, |b| b.owner_uid),
        mode: bells.first().map_or(0, |b| b.mode),
        files: Vec::new(),
        bells: bells.into_iter().map(|b| b.path).collect(),
        stale,
        state: Err(ObjectError::OrphanBells {
            segment: shm_file(segment),
        }),
    }
}

/// The doorbells that exist beside segment `name` (and its slot bells, for a
/// table).
fn bells_of(name: &str) -> Vec<PathBuf> {
    let Ok(Some(named)) = Named::new(&Backing::Shm(name.to_owned())) else {
        return Vec::new();
    };
    let exists = |p: &PathBuf| std::fs::symlink_metadata(p).is_ok();
    let mut bells: Vec<PathBuf> = [Bell::Data, Bell::Space]
        .into_iter()
        .map(|b| named.bell_path(b))
        .filter(exists)
        .collect();
    let data = named.bell_path(Bell::Data);
    for slot in 0..MAX_SLOT_BELLS {
        let path = slot_bell_path(&data, slot);
        if !exists(&path) {
            break;
        }
        bells.push(path);
    }
    bells
}

fn object_file(probe: &FileProbe) -> ObjectFile {
    ObjectFile {
        path: probe.path.clone(),
        size: probe.size,
        handles_alive: probe.locked(PRESENCE_LOCK).ok(),
    }
}

/// Whether nothing holds the object: every file probed and unheld, no role live.
fn is_stale(files: &[ObjectFile], state: &std::result::Result<ObjectState, ObjectError>) -> bool {
    files.iter().all(|f| f.handles_alive == Some(false))
        && state.as_ref().map_or(true, |s| !s.any_role_live())
}

fn holder(probe: &FileProbe, offset: u64, pid: u32) -> std::result::Result<Holder, ObjectError> {
    Ok(Holder {
        live: probe.locked(offset)?,
        pid: (pid != 0).then_some(pid),
    })
}

/// A role's pid word if written, else its owner word: `shmring`'s token in
/// owner words is the holder's pid.
fn pid_or(pid: u32, owner: u32) -> u32 {
    if pid != 0 { pid } else { owner }
}

fn status_of_single(probe: FileProbe) -> ObjectStatus {
    let files = vec![object_file(&probe)];
    let state = match &probe.file {
        Ok(_) => state_of_single(&probe),
        Err(e) => Err(e.clone()),
    };
    ObjectStatus {
        stale: is_stale(&files, &state),
        name: probe.name.clone(),
        kind: probe.kind,
        layout_version: probe.layout_version(),
        size: probe.size,
        owner_uid: probe.owner_uid,
        mode: probe.mode,
        bells: bells_of(&probe.name),
        files,
        state,
    }
}

fn state_of_single(probe: &FileProbe) -> std::result::Result<ObjectState, ObjectError> {
    let header = &probe.header;
    match probe.kind {
        // No shmring magic: the SPSC parser says what is wrong (too short,
        // uninitialised, foreign byte order, bad magic).
        Some(ObjectKind::Channel) | None => {
            let info = SegmentInfo::parse(header, probe.size)?;
            Ok(ObjectState::Channel(ChannelState {
                used: info.write_position.saturating_sub(info.read_position),
                sender: holder(
                    probe,
                    SENDER_LOCK,
                    pid_or(info.producer_pid, info.producer_owner),
                )?,
                receiver: holder(
                    probe,
                    RECEIVER_LOCK,
                    pid_or(info.consumer_pid, info.consumer_owner),
                )?,
                header: info,
            }))
        }
        Some(ObjectKind::MpmcChannel) => {
            let info = MpmcInfo::parse(header, probe.size)?;
            let geometry = info.geometry;
            let table = probe.bytes(
                MPMC_TABLE_OFFSET as u64,
                geometry.entry_offset(geometry.endpoints()) - MPMC_TABLE_OFFSET,
            )?;
            let mut endpoints = Vec::new();
            for index in 0..geometry.endpoints() {
                let at = geometry.entry_offset(index) - MPMC_TABLE_OFFSET;
                let entry = MpmcEntryInfo::parse(table.get(at..).unwrap_or_default());
                let holder = holder(probe, geometry.entry_offset(index) as u64, entry.pid)?;
                if !holder.live && entry.generation == 0 && entry.owner == 0 {
                    continue; // never used
                }
                let role = match entry.role {
                    0 => MpmcRole::None,
                    ROLE_PRODUCER => MpmcRole::Producer,
                    ROLE_CONSUMER => MpmcRole::Consumer,
                    other => MpmcRole::Invalid(other),
                };
                endpoints.push(MpmcEndpoint {
                    index,
                    role,
                    holder,
                    entry,
                });
            }
            Ok(ObjectState::MpmcChannel(MpmcState {
                used: info
                    .tail
                    .saturating_sub(info.head)
                    .min(geometry.slots() as u64),
                endpoints,
                header: info,
            }))
        }
        Some(ObjectKind::Event | ObjectKind::Semaphore) => {
            let snapshot =
                ObjectSnapshot::parse(header.get(..OBJECT_SIZE).unwrap_or(header), probe.size)?;
            Ok(if probe.kind == Some(ObjectKind::Event) {
                ObjectState::Event(EventState {
                    sequence: snapshot.word,
                    waiters: snapshot.waiters,
                })
            } else {
                ObjectState::Semaphore(SemaphoreState {
                    value: snapshot.word,
                    max: snapshot.info.max_count,
                    waiters: snapshot.waiters,
                })
            })
        }
        Some(ObjectKind::SharedValue) => {
            let snapshot = ValueSnapshot::parse(header, probe.size)?;
            Ok(ObjectState::SharedValue(ValueState {
                version: (snapshot.seq != 0).then_some(snapshot.seq / 2),
                writing: snapshot.seq & 1 != 0,
                writer: holder(
                    probe,
                    VALUE_WRITER_LOCK,
                    pid_or(snapshot.writer_pid, snapshot.writer_owner),
                )?,
                header: snapshot,
            }))
        }
        Some(ObjectKind::SharedMutex) => mutex_state(probe),
        // `group` sends topics to `status_of_topic`.
        Some(ObjectKind::BroadcastTopic) => Err(ObjectError::MissingPart {
            missing: "subscriber table",
        }),
        Some(ObjectKind::Unknown(kind)) => Err(ObjectError::UnknownKind(kind)),
    }
}

fn mutex_state(probe: &FileProbe) -> std::result::Result<ObjectState, ObjectError> {
    let header = MutexSnapshot::parse(&probe.header, probe.size)?;
    let geometry = header.info.geometry;
    // The slots lie between the table's offset and the value's.
    let table = probe.bytes(
        MUTEX_TABLE_OFFSET as u64,
        geometry.value_offset() - MUTEX_TABLE_OFFSET,
    )?;
    let mut slots = Vec::new();
    for slot in 0..geometry.slots() {
        let (Some(entry), Some(byte)) = (header.slot(&table, slot), geometry.slot_lock_byte(slot))
        else {
            continue; // the file ended early: reported by the header's checks
        };
        let holder = holder(probe, byte, pid_or(entry.pid, entry.owner))?;
        if !holder.live && entry.generation == 0 && entry.owner == 0 {
            continue; // never used
        }
        slots.push(MutexSlotStatus {
            slot,
            holder,
            entry,
        });
    }
    let locked_by = header.owner().map(|id| id.slot());
    let locker = match locked_by.and_then(|slot| slots.iter().find(|s| s.slot == slot)) {
        // A lock word of another generation than the slot's: its holder has gone.
        Some(s)
            if header.owner().map(|id| id.generation()) == Some(s.entry.generation & 0x7fff) =>
        {
            Some(s.holder)
        }
        Some(s) => Some(Holder {
            live: false,
            pid: s.holder.pid,
        }),
        None => locked_by.map(|_| Holder {
            live: false,
            pid: None,
        }),
    };
    Ok(ObjectState::SharedMutex(MutexState {
        locked_by,
        locker,
        waiters: header.waiters(),
        inconsistent: header.is_inconsistent(),
        deaths: header.deaths,
        slots,
        header,
    }))
}

fn status_of_topic(
    name: String,
    data: Option<FileProbe>,
    table: Option<FileProbe>,
) -> ObjectStatus {
    let present: Vec<&FileProbe> = data.iter().chain(table.iter()).collect();
    let files: Vec<ObjectFile> = present.iter().map(|p| object_file(p)).collect();
    let first = present[0];
    let mut bells = bells_of(&first.name);
    if let (Some(_), Some(table)) = (&data, &table) {
        bells.extend(bells_of(&table.name));
    }
    let state = match (&data, &table) {
        (Some(data), Some(table)) => topic_state(data, table),
        (None, _) => Err(ObjectError::MissingPart {
            missing: "data segment",
        }),
        (_, None) => Err(ObjectError::MissingPart {
            missing: "subscriber table",
        }),
    };
    ObjectStatus {
        stale: is_stale(&files, &state),
        kind: Some(ObjectKind::BroadcastTopic),
        layout_version: first.layout_version(),
        size: present.iter().map(|p| p.size).sum(),
        owner_uid: first.owner_uid,
        mode: first.mode,
        name,
        bells,
        files,
        state,
    }
}

fn topic_state(
    data: &FileProbe,
    table: &FileProbe,
) -> std::result::Result<ObjectState, ObjectError> {
    data.file.as_ref().map_err(Clone::clone)?;
    table.file.as_ref().map_err(Clone::clone)?;
    let info = BroadcastInfo::parse(&data.header, data.size, &table.header, table.size)?;
    let slots = info.config.slots;
    let entries = table.bytes(ENTRIES_OFFSET as u64, slots * ENTRY_SIZE)?;
    let mut subscribers = Vec::new();
    for slot in 0..slots {
        let entry =
            BroadcastSubscriberInfo::parse(entries.get(slot * ENTRY_SIZE..).unwrap_or_default());
        let holder = holder(table, slot_lock(slot), entry.pid)?;
        if !holder.live && entry.owner == 0 {
            continue; // free
        }
        let lag = match info.config.policy {
            Policy::Lossy => None,
            Policy::Gated | Policy::Strict => {
                Some(info.write_position.saturating_sub(entry.cursor))
            }
        };
        subscribers.push(SubscriberStatus {
            slot,
            holder,
            lag,
            entry,
        });
    }
    Ok(ObjectState::BroadcastTopic(TopicState {
        // The data segment's pid word (written by the publisher after its claim,
        // 0 at release); else the owner word, the publisher's token, its pid too
        // (a topic written by an earlier build of this round left the word 0).
        publisher: holder(
            table,
            PUBLISHER_LOCK,
            pid_or(info.publisher_pid, info.publisher_owner),
        )?,
        subscribers,
        header: info,
    }))
}

/// Reads up to `len` bytes from `offset` (fewer at the end of the file).
fn read_at(
    file: &File,
    offset: u64,
    len: usize,
    path: &Path,
) -> std::result::Result<Vec<u8>, ObjectError> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(ObjectError::Io {
                    op: "pread",
                    path: path.to_owned(),
                    error: e.to_string(),
                });
            }
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// What [`clean`] did with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanOutcome {
    /// Removed: these files (its segments, then its doorbells; an orphan: its
    /// doorbells).
    Removed(Vec<PathBuf>),
    /// Kept, and why.
    Kept(KeptReason),
}

/// Why [`clean`] kept an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeptReason {
    /// A live process holds the lock on byte `lock` of `path` (56: a handle's
    /// presence; the others: a role, an MPMC entry, a topic's publisher or a
    /// subscriber slot).
    #[error("held: a live process holds lock byte {lock} of {path}")]
    Held {
        /// The file.
        path: PathBuf,
        /// The lock byte.
        lock: u64,
    },
    /// No such object (removed meanwhile, by its last holder or another cleaner).
    #[error("not found")]
    NotFound,
    /// A file name the library cannot make or remove as shared memory (another
    /// program's file under the `shmring.` prefix: left alone).
    #[error("{name:?} is not a shmring name")]
    InvalidName {
        /// The name, without the prefix.
        name: String,
    },
    /// One of its files is not a regular file (not a shmring segment: left alone).
    #[error("{path} is not a regular file")]
    NotRegularFile {
        /// The file.
        path: PathBuf,
    },
    /// An orphan's doorbell is open in some process (a waiter or a ringer of
    /// the object whose segment was removed under it, which may still use it).
    #[error("{path} is open in a live process")]
    BellOpen {
        /// The FIFO.
        path: PathBuf,
    },
    /// An orphan's segment name is taken again (an object of that name was
    /// created meanwhile, or is being created): the doorbells are its own now.
    #[error("{path} exists again: the doorbells are its own")]
    NameTaken {
        /// The segment's path.
        path: PathBuf,
    },
    /// A file at a doorbell's name is not a FIFO (not a shmring doorbell: left
    /// alone).
    #[error("{path} is not a FIFO")]
    NotFifo {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be opened, locked or removed (another user's, say).
    #[error("{op} {path}: {error}")]
    Io {
        /// The call.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error's text.
        error: String,
    },
}

/// One object [`clean_stale`] tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// The object's name.
    pub name: String,
    /// What was done.
    pub outcome: CleanOutcome,
}

/// Removes the object `name` (all its files: both of a topic's, and every
/// doorbell FIFO beside them) if, and only if, no live process holds it.
///
/// The decision is the one a creator's `reclaim` makes, by the same mechanism:
/// each of the object's files is opened read-write and its presence lock (byte
/// 56, which every handle on a segment holds shared while it lives) is taken
/// **exclusively**, without blocking; that succeeds only when no handle on it is
/// alive anywhere. The role and entry locks the listing saw are then probed too
/// (a holder also holds presence, so this only reports a stranger's lock). With
/// every file's exclusive lock held, the names are removed (each only if it
/// still refers to the file locked) and the locks dropped.
///
/// Race-free against a process that attaches meanwhile: an opener takes its
/// shared presence lock and *then* checks that the name still refers to the file
/// it opened. If it got its lock first, ours fails and the object is kept
/// ([`KeptReason::Held`]); if ours came first, its lock fails, or it finds the
/// name gone, and it starts again and finds no object. A process that creates
/// the name afresh after the removal gets a new file, untouched. As with a
/// reclaiming creator, a creator caught between making the file and taking its
/// presence lock (a few system calls) sees the name taken: its `create` fails
/// with [`Error::AlreadyExists`], or succeeds on a retry after the removal.
/// Each file's doorbells are removed before its name, while no creator can make
/// a new object of that name (whose doorbells they would be).
///
/// **An orphan** (doorbells whose segment is gone, see [`list_objects`]) is
/// removed by holding its segment's name meanwhile: an empty file is made at
/// `/dev/shm/shmring.<segment>` exclusively and its presence lock taken
/// exclusively, so no object of that name can be created (an exclusive create
/// finds the name taken, a reclaimer cannot take the lock, an opener finds no
/// segment); each doorbell is then checked (a FIFO, not a link, not open in any
/// process: [`KeptReason::NotFifo`], [`KeptReason::BellOpen`]) and removed if the
/// name still refers to the FIFO checked, and the empty file is removed last. If
/// the segment exists again, the doorbells are its own and are kept
/// ([`KeptReason::NameTaken`]). A creator that comes while the name is held sees
/// it taken, as above; `open_or_create` waits for it as for a creator caught
/// half-way. Should another process hold a lock on the empty file throughout
/// (tens of milliseconds), the file is left, stale and empty, for a later clean
/// ([`KeptReason::Held`]).
///
/// # Errors
/// [`Error::InvalidName`]. Everything else (not found, held, unreadable) is a
/// [`CleanOutcome::Kept`] with the reason.
pub fn clean(name: &str) -> Result<CleanOutcome> {
    let status = match inspect(name) {
        Ok(status) => status,
        Err(Error::NotFound { .. }) => return Ok(CleanOutcome::Kept(KeptReason::NotFound)),
        Err(e) => return Err(e),
    };
    Ok(clean_status(&status))
}

/// Removes the object of a listing's entry, as [`clean`] says.
fn clean_status(status: &ObjectStatus) -> CleanOutcome {
    let cleaned = match &status.state {
        Err(ObjectError::OrphanBells { segment }) => clean_orphan(status, segment),
        _ => clean_locked(status),
    };
    match cleaned {
        Ok(removed) => CleanOutcome::Removed(removed),
        Err(reason) => CleanOutcome::Kept(reason),
    }
}

/// Cleans every object [`list_objects`] finds stale and `select` accepts (a
/// filter by name or kind; `|_| true` for all), as [`clean`] does, which checks
/// again under the locks: one attached to since the listing is kept.
///
/// # Errors
/// As [`list_objects`].
pub fn clean_stale(mut select: impl FnMut(&ObjectStatus) -> bool) -> Result<Vec<CleanReport>> {
    let mut reports = Vec::new();
    for status in list_objects()?.into_iter().filter(|s| s.stale && select(s)) {
        let outcome = clean_status(&status);
        reports.push(CleanReport {
            name: status.name,
            outcome,
        });
    }
    Ok(reports)
}

/// Takes every file's presence lock exclusively, checks the role locks, then
/// removes each file's doorbells and name; the reason it kept the object
/// otherwise.
fn clean_locked(status: &ObjectStatus) -> std::result::Result<Vec<PathBuf>, KeptReason> {
    let io = |op, path: &Path, e: io::Error| KeptReason::Io {
        op,
        path: path.to_owned(),
        error: e.to_string(),
    };
    let mut locked = Vec::new();
    for file in &status.files {
        let path = &file.path;
        let segment = path
            .file_name()
            .and_then(|f| f.as_bytes().strip_prefix(SHM_PREFIX.as_bytes()))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let named = match Named::new(&Backing::Shm(segment.clone())) {
            Ok(Some(named)) => named,
            _ => return Err(KeptReason::InvalidName { name: segment }),
        };
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let handle = match opened {
            Ok(handle) => handle,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(KeptReason::NotFound),
            Err(e) => return Err(io("open", path, e)),
        };
        let meta = handle.metadata().map_err(|e| io("fstat", path, e))?;
        if !meta.file_type().is_file() {
            return Err(KeptReason::NotRegularFile { path: path.clone() });
        }
        let free = lock::try_lock(handle.as_fd(), PRESENCE_LOCK, true)
            .map_err(|e| io("fcntl(F_OFD_SETLK)", path, e))?;
        if !free {
            return Err(KeptReason::Held {
                path: path.clone(),
                lock: PRESENCE_LOCK,
            });
        }
        locked.push((named, handle, path.clone()));
    }
    // Every presence lock is ours: no shmring handle can start using the files.
    // A role lock still held would be a stranger's (or a forked copy's): keep it.
    for (offset, index) in role_locks(status) {
        let (_, handle, path) = &locked[index];
        let held = lock::is_locked(handle.as_fd(), offset)
            .map_err(|e| io("fcntl(F_OFD_GETLK)", path, e))?;
        if held {
            return Err(KeptReason::Held {
                path: path.clone(),
                lock: offset,
            });
        }
    }
    let mut removed = Vec::new();
    for (named, handle, path) in &locked {
        remove_with_bells_if_ours(named, handle).map_err(|e| io(named.unlink_op(), path, e))?;
        removed.push(path.clone());
    }
    removed.extend(status.bells.iter().cloned());
    Ok(removed)
}

/// How long [`clean_orphan`] tries to take the presence lock of the empty file
/// it made at an orphan's segment name (an opener that came meanwhile holds it
/// shared for a few system calls), and its pause between tries.
const HOLD_TRIES: u32 = 50;
const HOLD_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// The name of an orphan's segment held by an empty file made there exclusively,
/// whose presence lock this description holds exclusively: no object of that
/// name can be created meanwhile. Dropping it removes the file (the name is ours
/// until then: nobody else can remove it while we hold the lock).
struct NameHold {
    named: Named,
    file: File,
}

impl NameHold {
    /// Makes the file at `named` and takes its lock; the reason if it cannot.
    fn take(named: Named, segment: &Path) -> std::result::Result<Self, KeptReason> {
        let io = |op, e: io::Error| KeptReason::Io {
            op,
            path: segment.to_owned(),
            error: e.to_string(),
        };
        let taken = || KeptReason::NameTaken {
            path: segment.to_owned(),
        };
        let file = match named.create_excl() {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(taken()),
            Err(e) => return Err(io(named.open_op(), e)),
        };
        for _ in 0..HOLD_TRIES {
            let locked = lock::try_lock(file.as_fd(), PRESENCE_LOCK, true)
                .map_err(|e| io("fcntl(F_OFD_SETLK)", e))?;
            // Before the lock, a reclaimer (or a cleaner) may have removed our
            // file, and a creator made the name anew: not ours to touch.
            if !is_ours(&named, &file).map_err(|e| io("stat", e))? {
                return Err(taken());
            }
            if locked {
                return Ok(Self { named, file });
            }
            std::thread::sleep(HOLD_PAUSE);
        }
        Err(KeptReason::Held {
            path: segment.to_owned(),
            lock: PRESENCE_LOCK,
        })
    }
}

impl Drop for NameHold {
    fn drop(&mut self) {
        let _ = remove_if_ours(&self.named, &self.file);
    }
}

/// Removes an orphan's doorbells while holding its segment's name ([`NameHold`]):
/// every one a FIFO beside `segment`, not open in any process, checked before
/// any is removed; each removed only if its name still refers to the FIFO
/// checked. The paths removed, or the reason all were kept.
fn clean_orphan(
    status: &ObjectStatus,
    segment: &Path,
) -> std::result::Result<Vec<PathBuf>, KeptReason> {
    let io = |op, path: &Path, e: io::Error| KeptReason::Io {
        op,
        path: path.to_owned(),
        error: e.to_string(),
    };
    let name = segment
        .file_name()
        .and_then(|f| f.as_bytes().strip_prefix(SHM_PREFIX.as_bytes()))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let invalid = || KeptReason::InvalidName { name: name.clone() };
    let named = match Named::new(&Backing::Shm(name.clone())) {
        Ok(Some(named)) if shm_file(&name) == segment => named,
        _ => return Err(invalid()),
    };
    let _hold = NameHold::take(named, segment)?;
    let mut checked = Vec::new();
    for path in &status.bells {
        // Only a doorbell's name beside this segment, in /dev/shm.
        let ours = path.parent() == Some(Path::new(SHM_DIR))
            && path
                .file_name()
                .and_then(|f| bell_segment(f.as_bytes()))
                .is_some_and(|(s, _)| s == name);
        if !ours {
            return Err(invalid());
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("lstat", path, e)),
        };
        let not_fifo = || KeptReason::NotFifo { path: path.clone() };
        if !std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
            return Err(not_fifo());
        }
        match crate::sys::bell::fifo_has_reader(path) {
            Ok(false) => {}
            Ok(true) => return Err(KeptReason::BellOpen { path: path.clone() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("open", path, e)),
        }
        checked.push((path, meta.dev(), meta.ino()));
    }
    let mut removed = Vec::new();
    for (path, dev, ino) in checked {
        // Still the FIFO checked (a name in the sticky /dev/shm is replaced only
        // by its owner; this narrows what is left to that owner's own race).
        match std::fs::symlink_metadata(path) {
            Ok(meta) if (meta.dev(), meta.ino()) == (dev, ino) => {}
            Ok(_) => return Err(KeptReason::NotFifo { path: path.clone() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("lstat", path, e)),
        }
        match std::fs::remove_file(path) {
            Ok(()) => removed.push(path.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("unlink", path, e)),
        }
    }
    Ok(removed)
}

/// The role and entry lock bytes the listing knows for `status`, each with the
/// index of the file in `status.files` it is on.
fn role_locks(status: &ObjectStatus) -> Vec<(u64, usize)> {
    match &status.state {
        Ok(ObjectState::Channel(_)) => vec![(SENDER_LOCK, 0), (RECEIVER_LOCK, 0)],
        Ok(ObjectState::MpmcChannel(m)) => {
            let g = m.header.geometry;
            (0..g.endpoints())
                .map(|i| (g.entry_offset(i) as u64, 0))
                .collect()
        }
        Ok(ObjectState::BroadcastTopic(t)) => std::iter::once(PUBLISHER_LOCK)
            .chain((0..t.header.config.slots).map(slot_lock))
            .map(|offset| (offset, 1))
            .collect(),
        Ok(ObjectState::SharedValue(_)) => vec![(VALUE_WRITER_LOCK, 0)],
        Ok(ObjectState::SharedMutex(m)) => {
            let g = m.header.info.geometry;
            (0..g.slots())
                .filter_map(|slot| g.slot_lock_byte(slot))
                .map(|byte| (byte, 0))
                .collect()
        }
        Ok(ObjectState::Event(_) | ObjectState::Semaphore(_)) | Err(_) => Vec::new(),
    }
}
