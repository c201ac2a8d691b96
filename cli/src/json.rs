//! The tool's one data model, serialised for `--json` and read by the text
//! output: schema 1, documented in `cli/README.md`. The library's types carry
//! no serde; this is where their fields get stable names.

use serde::Serialize;
use serde_json::{Map, Value, json};
use shmring::connection::ListenerStatus;
use shmring::segment::{
    FillUnit, Holder, MpmcRole, ObjectError, ObjectFile, ObjectState, ObjectStatus,
};

/// The schema's version: every document carries it as `"schema"`.
pub const SCHEMA: u32 = 1;

/// The kind the tool gives doorbell FIFOs left without their segment.
pub const ORPHAN_BELLS: &str = "doorbells";

/// One object, as `ls` lists it and `inspect` shows it.
#[derive(Debug, Serialize)]
pub struct Object {
    pub name: String,
    /// `spsc`, `mpmc`, `topic`, `event`, `semaphore`, `value`, `unknown(N)`,
    /// `doorbells` (FIFOs left without their segment); null when the kind word
    /// could not be read.
    pub kind: Option<String>,
    pub layout_version: Option<u32>,
    /// Bytes, all its files together.
    pub size: u64,
    pub owner_uid: u32,
    /// Permission bits in octal, as `ls -l` would give them to chmod: "0600".
    pub mode: String,
    /// No live process holds it (no presence, role or slot lock held).
    pub stale: bool,
    /// The header passed validation.
    pub valid: bool,
    /// Why not, when not valid.
    pub error: Option<String>,
    pub fill: Option<Fill>,
    /// Every role, endpoint entry or subscriber slot in use or recorded.
    pub holders: Vec<HolderEntry>,
    pub files: Vec<File>,
    /// Doorbell FIFOs beside it.
    pub bells: Vec<String>,
    /// `inspect` only: every header field of its kind, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Fill {
    pub used: u64,
    pub capacity: u64,
    /// `bytes` or `messages`.
    pub unit: &'static str,
}

#[derive(Debug, Serialize)]
pub struct HolderEntry {
    /// `sender`, `receiver`, `producer`, `consumer`, `publisher`, `subscriber`,
    /// `writer` (a published value's),
    /// `none` (an MPMC entry used before and free now), `invalid(N)`.
    pub role: String,
    /// The MPMC entry's index or the subscriber's slot.
    pub index: Option<usize>,
    /// Its liveness lock is held (the truth).
    pub live: bool,
    /// The pid its layout records (a hint).
    pub pid: Option<u32>,
    /// Gated or strict subscribers: bytes published past its cursor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct File {
    pub path: String,
    pub size: u64,
    /// A handle's presence lock is held on it; null if that could not be probed.
    pub held: Option<bool>,
}

/// A connection socket in the listeners' directory.
#[derive(Debug, Serialize)]
pub struct Socket {
    pub name: String,
    pub path: String,
    pub owner_uid: u32,
    pub mode: String,
    /// A listener is bound to it; null when that could not be read.
    pub listening: Option<bool>,
}

impl Object {
    /// The listing's entry; with `details`, every header field too.
    pub fn new(status: &ObjectStatus, details: bool) -> Self {
        let (valid, error) = match &status.state {
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        let state = status.state.as_ref().ok();
        Self {
            name: status.name.clone(),
            kind: match (&status.state, status.kind) {
                (Err(ObjectError::OrphanBells { .. }), _) => Some(ORPHAN_BELLS.to_owned()),
                (_, kind) => kind.map(|k| k.to_string()),
            },
            layout_version: status.layout_version,
            size: status.size,
            owner_uid: status.owner_uid,
            mode: format!("{:04o}", status.mode & 0o7777),
            stale: status.stale,
            valid,
            error,
            fill: state.and_then(fill),
            holders: state.map(holders).unwrap_or_default(),
            files: status.files.iter().map(File::new).collect(),
            bells: status
                .bells
                .iter()
                .map(|b| b.display().to_string())
                .collect(),
            details: if details {
                state.map(header_fields)
            } else {
                None
            },
        }
    }
}

impl File {
    fn new(file: &ObjectFile) -> Self {
        Self {
            path: file.path.display().to_string(),
            size: file.size,
            held: file.handles_alive,
        }
    }
}

impl Socket {
    pub fn new(listener: &ListenerStatus) -> Self {
        Self {
            name: listener.name.clone(),
            path: listener.path.display().to_string(),
            owner_uid: listener.owner_uid,
            mode: format!("{:04o}", listener.mode & 0o7777),
            listening: listener.listening,
        }
    }
}

pub fn fill(state: &ObjectState) -> Option<Fill> {
    state.fill().map(|f| Fill {
        used: f.used,
        capacity: f.capacity,
        unit: match f.unit {
            FillUnit::Bytes => "bytes",
            FillUnit::Messages => "messages",
        },
    })
}

fn holder(role: &str, index: Option<usize>, h: Holder) -> HolderEntry {
    HolderEntry {
        role: role.to_owned(),
        index,
        live: h.live,
        pid: h.pid,
        lag: None,
    }
}

fn holders(state: &ObjectState) -> Vec<HolderEntry> {
    match state {
        ObjectState::Channel(c) => vec![
            holder("sender", None, c.sender),
            holder("receiver", None, c.receiver),
        ],
        ObjectState::MpmcChannel(m) => m
            .endpoints
            .iter()
            .map(|e| {
                let role = match e.role {
                    MpmcRole::None => "none".to_owned(),
                    MpmcRole::Producer => "producer".to_owned(),
                    MpmcRole::Consumer => "consumer".to_owned(),
                    MpmcRole::Invalid(n) => format!("invalid({n})"),
                };
                holder(&role, Some(e.index), e.holder)
            })
            .collect(),
        ObjectState::BroadcastTopic(t) => std::iter::once(holder("publisher", None, t.publisher))
            .chain(t.subscribers.iter().map(|s| HolderEntry {
                lag: s.lag,
                ..holder("subscriber", Some(s.slot), s.holder)
            }))
            .collect(),
        ObjectState::SharedValue(v) => vec![holder("writer", None, v.writer)],
        // The lock's holder first (its slot as index), then every slot in use.
        ObjectState::SharedMutex(m) => m
            .locker
            .map(|h| holder("locker", m.locked_by, h))
            .into_iter()
            .chain(
                m.slots
                    .iter()
                    .map(|s| holder("slot", Some(s.slot), s.holder)),
            )
            .collect(),
        ObjectState::Event(_) | ObjectState::Semaphore(_) => Vec::new(),
    }
}

/// Every header field of the object's kind, by the name its layout gives it.
pub fn header_fields(state: &ObjectState) -> Map<String, Value> {
    let value = match state {
        ObjectState::Channel(c) => {
            let h = &c.header;
            json!({
                "capacity": h.capacity,
                "write_position": h.write_position,
                "read_position": h.read_position,
                "used": c.used,
                "producer_owner": h.producer_owner,
                "consumer_owner": h.consumer_owner,
                "producer_pid": h.producer_pid,
                "consumer_pid": h.consumer_pid,
                "flags": h.flags,
            })
        }
        ObjectState::MpmcChannel(m) => {
            let h = &m.header;
            json!({
                "slots": h.geometry.slots(),
                "slot_size": h.geometry.slot_size(),
                "endpoints": h.geometry.endpoints(),
                "flags": h.flags,
                "tail": h.tail,
                "head": h.head,
                "used": m.used,
                "data_signal": h.data_signal,
                "space_signal": h.space_signal,
                "recovered_skipped": h.skipped,
                "lost": h.lost,
                "producers_registered": h.producers_registered,
                "consumers_registered": h.consumers_registered,
                "entries": m.endpoints.iter().map(|e| json!({
                    "index": e.index,
                    "intent": e.entry.intent,
                    "owner": e.entry.owner,
                    "role": e.entry.role,
                    "generation": e.entry.generation,
                    "pid": e.entry.pid,
                })).collect::<Vec<_>>(),
            })
        }
        ObjectState::BroadcastTopic(t) => {
            let h = &t.header;
            json!({
                "capacity": h.config.capacity,
                "slots": h.config.slots,
                "policy": format!("{:?}", h.config.policy).to_lowercase(),
                "cut_off_after_ms": h.config.cut_off_after_ms,
                "flags": h.config.flags,
                "topic_id": h.config.topic_id,
                "write_position": h.write_position,
                "write_seq": h.write_seq,
                "oldest_position": h.oldest_position,
                "intent": h.intent,
                "publisher_owner": h.publisher_owner,
                "publisher_claims": h.publisher_claims,
                "publisher_pid": h.publisher_pid,
                "epoch": h.epoch,
                "joins": h.joins,
                "waiters": h.waiters,
                "space_signal": h.space_signal,
                "subscribers": h.subscribers,
                "subscriber_slots": t.subscribers.iter().map(|s| json!({
                    "slot": s.slot,
                    "cursor": s.entry.cursor,
                    "lag": s.lag,
                    "owner": s.entry.owner,
                    "claims": s.entry.claims,
                    "pid": s.entry.pid,
                    "data_signal": s.entry.data_signal,
                    "cut_off": s.entry.cut_off != 0,
                })).collect::<Vec<_>>(),
            })
        }
        ObjectState::Event(e) => json!({
            "sequence": e.sequence,
            "waiters": e.waiters,
        }),
        ObjectState::Semaphore(s) => json!({
            "value": s.value,
            "max": s.max,
            "waiters": s.waiters,
        }),
        ObjectState::SharedValue(v) => {
            let h = &v.header;
            json!({
                "value_size": h.info.geometry.value_size(),
                "flags": h.info.flags,
                "type_tag": h.info.type_tag,
                "seq": h.seq,
                "version": v.version,
                "writing": v.writing,
                "writer_owner": h.writer_owner,
                "writer_pid": h.writer_pid,
                "version_signal": h.version_signal,
                "waiters": h.waiters,
            })
        }
        ObjectState::SharedMutex(m) => {
            let h = &m.header;
            json!({
                "value_size": h.info.geometry.value_size(),
                "slots": h.info.geometry.slots(),
                "flags": h.info.flags,
                "type_tag": h.info.type_tag,
                "state": h.state,
                "locked_by": m.locked_by,
                "waiters": m.waiters,
                "inconsistent": m.inconsistent,
                "deaths": m.deaths,
                "slot_table": m.slots.iter().map(|s| json!({
                    "slot": s.slot,
                    "owner": s.entry.owner,
                    "generation": s.entry.generation,
                    "pid": s.entry.pid,
                    "live": s.holder.live,
                })).collect::<Vec<_>>(),
            })
        }
    };
    let Value::Object(map) = value else {
        return Map::new(); // every arm builds an object
    };
    map
}
