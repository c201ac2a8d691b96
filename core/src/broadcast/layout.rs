//! The broadcast topic's two layouts: the data segment (ring kind
//! [`RING_KIND_BROADCAST`](crate::layout::RING_KIND_BROADCAST)), written by the
//! publisher alone, and the subscriber table (kind
//! [`RING_KIND_BROADCAST_TABLE`](crate::layout::RING_KIND_BROADCAST_TABLE)), which
//! every subscriber writes.
//!
//! ```text
//! data segment
//! offset  size  what
//!      0   128  DataHeader      read-only after `init`; magic written last
//!    128   128  PositionLine    write_position (u64), write_seq (u64)
//!    256   128  OldestLine      oldest_position (u64), intent (u64), owner, claims, pid, epoch (u32)
//!    384     C  data region     frames: 16-byte header (state u32, 0 u32, seq u64) + payload
//!
//! subscriber table
//!      0   128  TableHeader     read-only after `init`; magic written last
//!    128   128  TableLine       joins, waiters, space_signal, subscribers (u32)
//!    256 128×N  SubscriberEntry cursor (u64), owner, claims, pid, data_signal, cut_off (u32)
//! ```
//!
//! ARCHITECTURE.md documents every byte; the constants below are the contract, and
//! compile-time assertions tie them to the structs.

use crate::layout::LineAligned;
use crate::sync::{AtomicU32, AtomicU64};

/// Offset of the data segment's [`PositionLine`].
pub const POSITION_LINE_OFFSET: usize = 128;
/// Offset of the data segment's [`OldestLine`].
pub const OLDEST_LINE_OFFSET: usize = 256;
/// Offset of the data region in the data segment; also the size of everything
/// before it.
pub const BROADCAST_DATA_OFFSET: usize = 384;

/// Offset of the table's [`TableLine`].
pub const TABLE_LINE_OFFSET: usize = 128;
/// Offset of the first [`SubscriberEntry`] in the table segment.
pub const ENTRIES_OFFSET: usize = 256;
/// Bytes each subscriber entry spans.
pub const ENTRY_SIZE: usize = 128;

/// Size of a broadcast frame header: the state word, a zero word, the sequence
/// number.
pub const BROADCAST_FRAME_HEADER_SIZE: usize = 16;
/// Offset of the sequence number in a frame header.
pub const FRAME_SEQ_OFFSET: usize = 8;

/// Bit 63 of a frame's sequence word: nothing is published here yet; the low bits are
/// the number the frame written here will carry. The publisher stores it into
/// the header after each frame before it publishes that frame, so the word at
/// every frame boundary a subscriber reaches holds either this or the number of
/// a published frame, never an older lap's payload. Sequence numbers start at 1
/// and stay below this bit.
pub const SEQ_UNPUBLISHED: u64 = 1 << 63;

/// Most subscriber slots a topic may have: the publisher keeps the slots it has cut
/// off in a bit set of this many bits (in its own memory, where no subscriber can
/// clear them).
pub const MAX_SUBSCRIBERS: usize = 256;

/// Smallest data region, 64 bytes (messages up to 16 bytes), as the SPSC ring's:
/// small enough for the model checks to lap it in a few messages.
pub const MIN_BROADCAST_CAPACITY: usize = 64;
/// Largest data region, 512 MiB, as the SPSC ring's.
pub const MAX_BROADCAST_CAPACITY: usize = 1 << 29;

/// Policy: the publisher never waits; a subscriber it laps is told how many it
/// missed.
pub const POLICY_LOSSY: u32 = 0;
/// Policy: the publisher waits for the slowest live subscriber, and cuts off one
/// that has not moved within the header's `cut_off_after_ms`.
pub const POLICY_GATED: u32 = 1;
/// Policy: the publisher waits for every live subscriber as long as it lives;
/// subscribers may read in place.
pub const POLICY_STRICT: u32 = 2;

/// Largest message a data region of `capacity` bytes carries: half of it, less the
/// frame header.
#[must_use]
pub const fn broadcast_max_message_len(capacity: usize) -> usize {
    capacity / 2 - BROADCAST_FRAME_HEADER_SIZE
}

/// Bytes the data segment of a `capacity`-byte region spans.
#[must_use]
pub const fn data_segment_size(capacity: usize) -> usize {
    BROADCAST_DATA_OFFSET + capacity
}

/// Bytes the subscriber table of `slots` entries spans.
#[must_use]
pub const fn table_segment_size(slots: usize) -> usize {
    ENTRIES_OFFSET + slots * ENTRY_SIZE
}

/// The data segment's first line.
///
/// Every field but `magic` is written once by `init` before `magic` is stored
/// (Release) and never changes after; `attach` reads each once and keeps its own
/// copy of what it needs.
#[derive(Debug)]
#[repr(C)]
pub struct DataHeader {
    /// [`MAGIC`](crate::layout::MAGIC) once initialised; zero before.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`](crate::layout::LAYOUT_VERSION).
    pub layout_version: u32,
    /// [`RING_KIND_BROADCAST`](crate::layout::RING_KIND_BROADCAST).
    pub ring_kind: u32,
    /// Size of the data region in bytes, a power of two.
    pub capacity: u64,
    /// [`BROADCAST_DATA_OFFSET`].
    pub data_offset: u64,
    /// Bytes the data segment spans: `data_offset + capacity`.
    pub segment_size: u64,
    /// [`BROADCAST_FRAME_HEADER_SIZE`].
    pub frame_header_size: u32,
    /// 8: every frame starts on an 8-byte boundary.
    pub frame_align: u32,
    /// [`broadcast_max_message_len`] of the capacity.
    pub max_message_len: u64,
    /// Protocol flags ([`FLAG_ASYMMETRIC_FENCES`](crate::layout::FLAG_ASYMMETRIC_FENCES)).
    pub flags: u32,
    /// [`POLICY_LOSSY`], [`POLICY_GATED`] or [`POLICY_STRICT`].
    pub policy: u32,
    /// Subscriber slots in the table.
    pub slots: u32,
    /// Gated: milliseconds a live subscriber may hold the publisher back without
    /// moving before it is cut off (0 under the other policies).
    pub cut_off_after_ms: u32,
    /// Random at create; the table's header carries the same.
    pub topic_id: u64,
}

/// The publisher's position line in the data segment: what it stores on every
/// publication.
#[derive(Debug)]
#[repr(C)]
pub struct PositionLine {
    /// End of the published frames (a frame boundary; monotonic byte count).
    pub write_position: AtomicU64,
    /// Messages published so far (the last one's sequence number; 0 before the
    /// first).
    pub write_seq: AtomicU64,
}

/// The publisher's slow line in the data segment: moved once per chunk of the
/// region, and at claims.
#[derive(Debug)]
#[repr(C)]
pub struct OldestLine {
    /// The oldest frame still intact (a frame boundary); the bytes below it may be
    /// overwritten. Stored before any of them is.
    pub oldest_position: AtomicU64,
    /// Gated: where the publisher is about to move `oldest_position` (a joiner
    /// starts at or past it).
    pub intent: AtomicU64,
    /// Claim word: 0 when no publisher holds the topic, else the holder's token.
    pub owner: AtomicU32,
    /// Claims so far (wrapping): non-zero says "a publisher has been here".
    pub claims: AtomicU32,
    /// The holder's pid after its claim, 0 after release: a hint, never trusted.
    pub pid: AtomicU32,
    /// One more at each publisher claim (wrapping): a subscriber sees a new
    /// publisher take over.
    pub epoch: AtomicU32,
}

/// The data segment's lines before the data region.
#[derive(Debug)]
#[repr(C)]
pub struct DataSegmentHeader {
    /// The header.
    pub header: LineAligned<DataHeader>,
    /// The publisher's positions.
    pub positions: LineAligned<PositionLine>,
    /// The oldest position, intent and claim.
    pub oldest: LineAligned<OldestLine>,
}

/// The subscriber table's first line.
#[derive(Debug)]
#[repr(C)]
pub struct TableHeader {
    /// [`MAGIC`](crate::layout::MAGIC) once initialised; zero before.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`](crate::layout::LAYOUT_VERSION).
    pub layout_version: u32,
    /// [`RING_KIND_BROADCAST_TABLE`](crate::layout::RING_KIND_BROADCAST_TABLE).
    pub ring_kind: u32,
    /// The data region's capacity (as the data segment's header).
    pub capacity: u64,
    /// Subscriber slots (as the data segment's header).
    pub slots: u32,
    /// The policy (as the data segment's header).
    pub policy: u32,
    /// Bytes the table spans: [`table_segment_size`] of `slots`.
    pub segment_size: u64,
    /// As the data segment's.
    pub topic_id: u64,
}

/// The table's shared line: counters every subscriber writes.
#[derive(Debug)]
#[repr(C)]
pub struct TableLine {
    /// One more at every join (wrapping): a gated publisher that sees it move
    /// rescans the table.
    pub joins: AtomicU32,
    /// Subscribers registered on their `data_signal` (waiting or armed): the
    /// publisher walks the entries to notify them only while this is not zero.
    pub waiters: AtomicU32,
    /// Eventcount a gated publisher waits on for room (the SPSC signal bits).
    pub space_signal: AtomicU32,
    /// Subscribers joined and not left (a dead one counts until its slot is freed).
    pub subscribers: AtomicU32,
}

/// One subscriber's entry in the table.
#[derive(Debug)]
#[repr(C)]
pub struct SubscriberEntry {
    /// Gated: the position below which this subscriber has read everything
    /// (published lazily).
    pub cursor: AtomicU64,
    /// Claim word: 0 when the slot is free, else the holder's token.
    pub owner: AtomicU32,
    /// Claims of this slot so far (wrapping).
    pub claims: AtomicU32,
    /// The holder's pid: a hint, never trusted.
    pub pid: AtomicU32,
    /// Eventcount this subscriber waits on for messages (the SPSC signal bits).
    pub data_signal: AtomicU32,
    /// Non-zero once a gated publisher has cut this subscriber off (informational:
    /// the publisher keeps its own record).
    pub cut_off: AtomicU32,
}

/// The table's lines before the entries.
#[derive(Debug)]
#[repr(C)]
pub struct TableSegmentHeader {
    /// The header.
    pub header: LineAligned<TableHeader>,
    /// The shared counters.
    pub line: LineAligned<TableLine>,
}

// The offsets hold for the real atomics (loom's are larger: its models never map
// a segment).
#[cfg(not(shmring_loom))]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<DataSegmentHeader>() == BROADCAST_DATA_OFFSET);
    assert!(offset_of!(DataSegmentHeader, positions) == POSITION_LINE_OFFSET);
    assert!(offset_of!(DataSegmentHeader, oldest) == OLDEST_LINE_OFFSET);
    assert!(offset_of!(DataHeader, layout_version) == 8);
    assert!(offset_of!(DataHeader, ring_kind) == 12);
    assert!(offset_of!(DataHeader, capacity) == 16);
    assert!(offset_of!(DataHeader, data_offset) == 24);
    assert!(offset_of!(DataHeader, segment_size) == 32);
    assert!(offset_of!(DataHeader, frame_header_size) == 40);
    assert!(offset_of!(DataHeader, frame_align) == 44);
    assert!(offset_of!(DataHeader, max_message_len) == 48);
    assert!(offset_of!(DataHeader, flags) == 56);
    assert!(offset_of!(DataHeader, policy) == 60);
    assert!(offset_of!(DataHeader, slots) == 64);
    assert!(offset_of!(DataHeader, cut_off_after_ms) == 68);
    assert!(offset_of!(DataHeader, topic_id) == 72);
    assert!(offset_of!(PositionLine, write_seq) == 8);
    assert!(offset_of!(OldestLine, intent) == 8);
    assert!(offset_of!(OldestLine, owner) == 16);
    assert!(offset_of!(OldestLine, claims) == 20);
    assert!(offset_of!(OldestLine, pid) == 24);
    assert!(offset_of!(OldestLine, epoch) == 28);
    assert!(size_of::<TableSegmentHeader>() == ENTRIES_OFFSET);
    assert!(offset_of!(TableSegmentHeader, line) == TABLE_LINE_OFFSET);
    assert!(offset_of!(TableHeader, capacity) == 16);
    assert!(offset_of!(TableHeader, slots) == 24);
    assert!(offset_of!(TableHeader, policy) == 28);
    assert!(offset_of!(TableHeader, segment_size) == 32);
    assert!(offset_of!(TableHeader, topic_id) == 40);
    assert!(offset_of!(TableLine, waiters) == 4);
    assert!(offset_of!(TableLine, space_signal) == 8);
    assert!(offset_of!(TableLine, subscribers) == 12);
    assert!(size_of::<LineAligned<SubscriberEntry>>() == ENTRY_SIZE);
    assert!(offset_of!(SubscriberEntry, owner) == 8);
    assert!(offset_of!(SubscriberEntry, claims) == 12);
    assert!(offset_of!(SubscriberEntry, pid) == 16);
    assert!(offset_of!(SubscriberEntry, data_signal) == 20);
    assert!(offset_of!(SubscriberEntry, cut_off) == 24);
    assert!(broadcast_max_message_len(MIN_BROADCAST_CAPACITY) >= 8);
};

impl PositionLine {
    /// The line of a fresh topic: nothing published.
    #[must_use]
    pub fn new() -> Self {
        Self {
            write_position: AtomicU64::new(0),
            write_seq: AtomicU64::new(0),
        }
    }
}

impl Default for PositionLine {
    fn default() -> Self {
        Self::new()
    }
}

impl OldestLine {
    /// The line of a fresh topic: nothing overwritten, no publisher.
    #[must_use]
    pub fn new() -> Self {
        Self {
            oldest_position: AtomicU64::new(0),
            intent: AtomicU64::new(0),
            owner: AtomicU32::new(0),
            claims: AtomicU32::new(0),
            pid: AtomicU32::new(0),
            epoch: AtomicU32::new(0),
        }
    }
}

impl Default for OldestLine {
    fn default() -> Self {
        Self::new()
    }
}

impl TableLine {
    /// The line of a fresh table: no joins, waiters or subscribers.
    #[must_use]
    pub fn new() -> Self {
        Self {
            joins: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            space_signal: AtomicU32::new(0),
            subscribers: AtomicU32::new(0),
        }
    }
}

impl Default for TableLine {
    fn default() -> Self {
        Self::new()
    }
}

impl SubscriberEntry {
    /// A free entry.
    #[must_use]
    pub fn new() -> Self {
        Self {
            cursor: AtomicU64::new(0),
            owner: AtomicU32::new(0),
            claims: AtomicU32::new(0),
            pid: AtomicU32::new(0),
            data_signal: AtomicU32::new(0),
            cut_off: AtomicU32::new(0),
        }
    }
}

impl Default for SubscriberEntry {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks a data region capacity: a power of two within
/// [`MIN_BROADCAST_CAPACITY`]`..=`[`MAX_BROADCAST_CAPACITY`].
///
/// # Errors
/// [`LayoutError::InvalidCapacity`](crate::LayoutError::InvalidCapacity).
pub fn check_broadcast_capacity(capacity: usize) -> Result<(), crate::LayoutError> {
    if capacity.is_power_of_two()
        && (MIN_BROADCAST_CAPACITY..=MAX_BROADCAST_CAPACITY).contains(&capacity)
    {
        Ok(())
    } else {
        Err(crate::LayoutError::InvalidCapacity {
            capacity: capacity as u64,
        })
    }
}
