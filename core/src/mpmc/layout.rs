//! The MPMC segment layout: the bytes every producer and consumer process agrees on.
//!
//! ```text
//! offset        size        what
//!      0         128        MpmcHeader      read-only after `init`; magic written last
//!    128         128        tail line       tail (u64): next position to claim for sending
//!    256         128        head line       head (u64): next position to claim for receiving
//!    384         128        signal line     data_signal (u32), space_signal (u32),
//!                                           skipped (u64), lost (u64),
//!                                           producers_registered (u64),
//!                                           consumers_registered (u64)
//!    512     E * 128        endpoint table  one 128-byte entry per endpoint
//!    512 + E*128  S * stride  slots         S = slot count, a power of two
//! ```
//!
//! A slot is an 8-byte state word (the slot's sequence number and the length of the
//! message in it, [`MpmcGeometry::slot_state`]) followed by `slot_size` payload
//! bytes rounded up to 8: 16 bytes in all for 8-byte messages, four slots to a
//! cache line. ARCHITECTURE.md ("MPMC segment")
//! documents every byte; the constants below are the contract, and compile-time
//! assertions tie them to the structs.
//!
//! [`MpmcLayoutError`] says why a shape or a header was refused. It lives here,
//! beside the limits it names: the ring's other errors (`error.rs`) need nothing
//! from the layout, and the layout nothing from them.

use core::alloc::Layout;
use core::fmt;

use crate::error::LayoutError;
use crate::layout::{LineAligned, SEGMENT_ALIGN};
use crate::sync::{AtomicU32, AtomicU64};

/// Offset of the [`MpmcHeader`].
pub const MPMC_HEADER_OFFSET: usize = 0;
/// Offset of the tail line ([`MpmcControl::tail`]).
pub const MPMC_TAIL_OFFSET: usize = 128;
/// Offset of the head line ([`MpmcControl::head`]).
pub const MPMC_HEAD_OFFSET: usize = 256;
/// Offset of the signal and statistics line ([`MpmcSignals`]).
pub const MPMC_SIGNAL_OFFSET: usize = 384;
/// Offset of the endpoint table.
pub const MPMC_TABLE_OFFSET: usize = 512;
/// Bytes of one endpoint table entry (its own pair of 64-byte lines).
pub const ENDPOINT_ENTRY_SIZE: usize = 128;
/// Bytes of a slot's header: its state word (u64).
pub const SLOT_HEADER_SIZE: usize = 8;
/// Slot strides are multiples of this, so every slot header is 8-aligned.
pub const SLOT_ALIGN: usize = 8;

/// Fewest slots: two (the slot protocol tells "free for position P" from "full for
/// P" by `seq == P` versus `seq == P + 1`, which needs two slots to be unambiguous).
pub const MIN_SLOTS: usize = 2;
/// Most slots: 2^24.
pub const MAX_SLOTS: usize = 1 << 24;
/// Largest slot payload: 16 MiB.
pub const MAX_SLOT_SIZE: usize = 1 << 24;
/// Fewest endpoints in the table.
pub const MIN_ENDPOINTS: usize = 1;
/// Most endpoints in the table (128 KiB of table).
pub const MAX_ENDPOINTS: usize = 1024;
/// Largest segment a layout may span: 2^40 bytes.
pub const MAX_MPMC_SEGMENT: u64 = 1 << 40;

/// `EndpointEntry::role` of a free entry.
pub const ROLE_NONE: u32 = 0;
/// `EndpointEntry::role` of a producer's entry.
pub const ROLE_PRODUCER: u32 = 1;
/// `EndpointEntry::role` of a consumer's entry.
pub const ROLE_CONSUMER: u32 = 2;
/// `EndpointEntry::intent` when the endpoint claims nothing.
pub const INTENT_NONE: u64 = u64::MAX;

/// The MPMC segment's first line. The first 16 bytes are those of every shmring
/// segment (magic, layout version, ring kind), so a reader tells the kinds apart.
///
/// Every field but `magic` is written once by `init` before `magic` is stored
/// (Release) and never changes after; `attach` reads each once (after an Acquire
/// load of `magic`) and keeps its own copy.
#[derive(Debug)]
#[repr(C)]
pub struct MpmcHeader {
    /// [`MAGIC`](crate::layout::MAGIC) once initialised; zero before.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`](crate::layout::LAYOUT_VERSION).
    pub layout_version: u32,
    /// [`RING_KIND_MPMC`](crate::layout::RING_KIND_MPMC).
    pub ring_kind: u32,
    /// Number of slots, a power of two within [`MIN_SLOTS`]`..=`[`MAX_SLOTS`].
    pub slot_count: u64,
    /// Largest payload of one slot, `1..=`[`MAX_SLOT_SIZE`].
    pub slot_size: u32,
    /// Bytes from one slot to the next: [`SLOT_HEADER_SIZE`] + `slot_size` rounded
    /// up to [`SLOT_ALIGN`].
    pub slot_stride: u32,
    /// Entries in the endpoint table, within [`MIN_ENDPOINTS`]`..=`[`MAX_ENDPOINTS`].
    pub endpoint_count: u32,
    /// [`ENDPOINT_ENTRY_SIZE`].
    pub entry_size: u32,
    /// [`MPMC_TABLE_OFFSET`].
    pub table_offset: u64,
    /// Offset of slot 0: `table_offset + endpoint_count * entry_size`.
    pub slots_offset: u64,
    /// Bytes the layout spans: `slots_offset + slot_count * slot_stride`.
    pub segment_size: u64,
    /// Protocol flags ([`FLAG_ASYMMETRIC_FENCES`](crate::FLAG_ASYMMETRIC_FENCES));
    /// unknown bits are refused.
    pub flags: u32,
}

/// The words of the wait/notify protocol, the recovery statistics and the
/// registration counts. The signal words are eventcounts as in SPSC segments
/// ([`SignalLine`](crate::spsc::layout::SignalLine): bit 0 reserved, bit 1 a waiter,
/// bits 2..32 a count).
#[derive(Debug)]
#[repr(C)]
pub struct MpmcSignals {
    /// Consumers wait here for messages; producers notify after publishing.
    pub data_signal: AtomicU32,
    /// Producers wait here for space; consumers notify after freeing slots.
    pub space_signal: AtomicU32,
    /// Claims of dead producers skipped by consumers (each slot counted once).
    pub skipped: AtomicU64,
    /// Messages lost with a consumer that died between claiming and freeing them,
    /// freed by a recoverer (each counted once).
    pub lost: AtomicU64,
    /// How many producers have registered in the table, ever (wrapping): unlike
    /// the entries' role words, which the next holder of an entry overwrites, it
    /// survives entry reuse, so "none alive" tells "gone" from "not yet".
    pub producers_registered: AtomicU64,
    /// How many consumers have registered, ever; as for `producers_registered`.
    pub consumers_registered: AtomicU64,
}

/// The shared lines the protocol runs on, between the header and the table.
#[derive(Debug)]
#[repr(C)]
pub struct MpmcControl {
    /// Next position a producer claims (monotonic, wrapping u64).
    pub tail: LineAligned<AtomicU64>,
    /// Next position a consumer claims (monotonic, wrapping u64).
    pub head: LineAligned<AtomicU64>,
    /// Signals and statistics.
    pub signals: LineAligned<MpmcSignals>,
}

impl MpmcControl {
    /// A control block for a fresh ring: positions zero, nobody waiting.
    pub fn new() -> Self {
        Self {
            tail: LineAligned(AtomicU64::new(0)),
            head: LineAligned(AtomicU64::new(0)),
            signals: LineAligned(MpmcSignals {
                data_signal: AtomicU32::new(0),
                space_signal: AtomicU32::new(0),
                skipped: AtomicU64::new(0),
                lost: AtomicU64::new(0),
                producers_registered: AtomicU64::new(0),
                consumers_registered: AtomicU64::new(0),
            }),
        }
    }
}

impl Default for MpmcControl {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything before the endpoint table, as it lies in the segment.
#[derive(Debug)]
#[repr(C)]
pub struct MpmcSegmentHeader {
    /// The header line.
    pub header: LineAligned<MpmcHeader>,
    /// The tail, head and signal lines.
    pub control: MpmcControl,
}

/// One endpoint's entry in the table, alone on its 128 bytes: written by its
/// endpoint, read by the others only when they find a slot stalled.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct EndpointEntry {
    /// Position the endpoint is looking at to claim, is claiming or holds (a
    /// producer: sending into; a consumer: receiving from), or, after the
    /// operation, the one it last held; [`INTENT_NONE`] when none.
    pub intent: AtomicU64,
    /// Claim word: 0 when free, else the holder's token.
    pub owner: AtomicU32,
    /// [`ROLE_NONE`], [`ROLE_PRODUCER`] or [`ROLE_CONSUMER`].
    pub role: AtomicU32,
    /// Incremented (wrapping) at every registration into this entry.
    pub generation: AtomicU32,
    /// The holder's process id, for display and as a hint for death detection:
    /// written by the caller after it registers (the `shmring` crate does), cleared
    /// to 0 by core when the endpoint is dropped. Wrong across pid namespaces and
    /// after pid reuse, and any peer may write it: a hint only. Core never reads
    /// it.
    pub pid: AtomicU32,
}

impl EndpointEntry {
    /// A free entry.
    pub fn new() -> Self {
        Self {
            intent: AtomicU64::new(INTENT_NONE),
            owner: AtomicU32::new(0),
            role: AtomicU32::new(ROLE_NONE),
            generation: AtomicU32::new(0),
            pid: AtomicU32::new(0),
        }
    }
}

impl Default for EndpointEntry {
    fn default() -> Self {
        Self::new()
    }
}

/// A slot's header: one word holding its sequence number and the length of the
/// message in it ([`MpmcGeometry::slot_state`] has the encoding), so that a
/// producer publishes both with one store and a consumer reads both with one load.
///
/// For position `P` held by this slot, with `seq` the sequence number: `seq == P`
/// means free for `P`; `seq == P + 1` means the message for `P` is published (its
/// length in the length field); a consumer that has copied it stores `P + slots`
/// (free for the next lap). The length field is zero but in published slots.
#[derive(Debug)]
#[repr(C)]
pub struct SlotHeader {
    /// The state word: `seq << len_bits | len`.
    pub state: AtomicU64,
}

impl SlotHeader {
    /// A header holding `state` (a fresh ring's slot `i` holds
    /// `geometry.slot_state(i, 0)`: free for position `i`).
    pub fn new(state: u64) -> Self {
        Self {
            state: AtomicU64::new(state),
        }
    }
}

#[cfg(not(shmring_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<MpmcSegmentHeader>() == MPMC_TABLE_OFFSET);
    assert!(align_of::<MpmcSegmentHeader>() == SEGMENT_ALIGN);
    assert!(offset_of!(MpmcSegmentHeader, header) == MPMC_HEADER_OFFSET);
    assert!(offset_of!(MpmcSegmentHeader, control.tail) == MPMC_TAIL_OFFSET);
    assert!(offset_of!(MpmcSegmentHeader, control.head) == MPMC_HEAD_OFFSET);
    assert!(offset_of!(MpmcSegmentHeader, control.signals) == MPMC_SIGNAL_OFFSET);
    assert!(offset_of!(MpmcHeader, magic) == 0);
    assert!(offset_of!(MpmcHeader, layout_version) == 8);
    assert!(offset_of!(MpmcHeader, ring_kind) == 12);
    assert!(offset_of!(MpmcHeader, slot_count) == 16);
    assert!(offset_of!(MpmcHeader, slot_size) == 24);
    assert!(offset_of!(MpmcHeader, slot_stride) == 28);
    assert!(offset_of!(MpmcHeader, endpoint_count) == 32);
    assert!(offset_of!(MpmcHeader, entry_size) == 36);
    assert!(offset_of!(MpmcHeader, table_offset) == 40);
    assert!(offset_of!(MpmcHeader, slots_offset) == 48);
    assert!(offset_of!(MpmcHeader, segment_size) == 56);
    assert!(offset_of!(MpmcHeader, flags) == 64);
    assert!(offset_of!(MpmcSignals, data_signal) == 0);
    assert!(offset_of!(MpmcSignals, space_signal) == 4);
    assert!(offset_of!(MpmcSignals, skipped) == 8);
    assert!(offset_of!(MpmcSignals, lost) == 16);
    assert!(offset_of!(MpmcSignals, producers_registered) == 24);
    assert!(offset_of!(MpmcSignals, consumers_registered) == 32);
    assert!(size_of::<EndpointEntry>() == ENDPOINT_ENTRY_SIZE);
    assert!(offset_of!(EndpointEntry, intent) == 0);
    assert!(offset_of!(EndpointEntry, owner) == 8);
    assert!(offset_of!(EndpointEntry, role) == 12);
    assert!(offset_of!(EndpointEntry, generation) == 16);
    assert!(offset_of!(EndpointEntry, pid) == 20);
    assert!(size_of::<SlotHeader>() == SLOT_HEADER_SIZE);
    assert!(offset_of!(SlotHeader, state) == 0);
};

/// The shape of an MPMC ring, validated: slot count, slot payload size, endpoint
/// table size, and every offset derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpmcGeometry {
    slots: usize,
    slot_size: usize,
    endpoints: usize,
}

impl MpmcGeometry {
    /// Checks a requested shape.
    ///
    /// # Errors
    /// [`MpmcLayoutError::InvalidSlotCount`] unless `slots` is a power of two within
    /// [`MIN_SLOTS`]`..=`[`MAX_SLOTS`]; [`MpmcLayoutError::InvalidSlotSize`] unless
    /// `slot_size` is within `1..=`[`MAX_SLOT_SIZE`];
    /// [`MpmcLayoutError::InvalidEndpointCount`] unless `endpoints` is within
    /// [`MIN_ENDPOINTS`]`..=`[`MAX_ENDPOINTS`]; [`MpmcLayoutError::SegmentTooLarge`]
    /// beyond [`MAX_MPMC_SEGMENT`] bytes or the address space.
    pub const fn new(
        slots: usize,
        slot_size: usize,
        endpoints: usize,
    ) -> Result<Self, MpmcLayoutError> {
        if !slots.is_power_of_two() || slots < MIN_SLOTS || slots > MAX_SLOTS {
            return Err(MpmcLayoutError::InvalidSlotCount {
                slots: slots as u64,
            });
        }
        if slot_size == 0 || slot_size > MAX_SLOT_SIZE {
            return Err(MpmcLayoutError::InvalidSlotSize {
                slot_size: slot_size as u64,
                max: MAX_SLOT_SIZE as u64,
            });
        }
        if endpoints < MIN_ENDPOINTS || endpoints > MAX_ENDPOINTS {
            return Err(MpmcLayoutError::InvalidEndpointCount {
                endpoints: endpoints as u64,
                max: MAX_ENDPOINTS as u64,
            });
        }
        let geometry = Self {
            slots,
            slot_size,
            endpoints,
        };
        // Each factor is at most 2^24 + 8, so the products fit in u64.
        let size = geometry.segment_size_u64();
        if size > MAX_MPMC_SEGMENT || size > isize::MAX as u64 {
            return Err(MpmcLayoutError::SegmentTooLarge { size });
        }
        Ok(geometry)
    }

    /// Number of slots (a power of two).
    pub const fn slots(&self) -> usize {
        self.slots
    }

    /// Largest payload of one slot.
    pub const fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Entries in the endpoint table.
    pub const fn endpoints(&self) -> usize {
        self.endpoints
    }

    /// Bits of a slot's state word that hold the message length: enough for
    /// `slot_size` (4 for 8-byte slots, 25 for 16 MiB slots). The other
    /// `64 - len_bits` hold the sequence number, modulo `2^(64 - len_bits)`.
    pub const fn len_bits(&self) -> u32 {
        usize::BITS - self.slot_size.leading_zeros()
    }

    /// The state word of a slot whose sequence number is `seq` and whose message is
    /// `len` bytes long (`len` below `2^len_bits`): `seq << len_bits | len`. The
    /// shift drops the top `len_bits` bits of `seq`; wrapping arithmetic on
    /// positions carries over.
    pub const fn slot_state(&self, seq: u64, len: u64) -> u64 {
        (seq << self.len_bits()) | len
    }

    /// Bytes from one slot to the next.
    pub const fn slot_stride(&self) -> usize {
        SLOT_HEADER_SIZE + self.slot_size.next_multiple_of(SLOT_ALIGN)
    }

    /// Offset of endpoint entry `index` in the segment (not checked against the
    /// table size). The `shmring` crate locks a byte range here as the endpoint's
    /// liveness mark.
    pub const fn entry_offset(&self, index: usize) -> usize {
        MPMC_TABLE_OFFSET + index * ENDPOINT_ENTRY_SIZE
    }

    /// Offset of slot 0 (a multiple of 128).
    pub const fn slots_offset(&self) -> usize {
        self.entry_offset(self.endpoints)
    }

    /// Offset of slot `index`'s header (not checked against the slot count).
    pub const fn slot_offset(&self, index: usize) -> usize {
        self.slots_offset() + index * self.slot_stride()
    }

    const fn segment_size_u64(&self) -> u64 {
        self.slots_offset() as u64 + self.slots as u64 * self.slot_stride() as u64
    }

    /// Bytes the layout spans.
    pub const fn segment_size(&self) -> usize {
        self.segment_size_u64() as usize
    }

    /// Size and alignment of the segment.
    pub const fn layout(&self) -> Layout {
        match Layout::from_size_align(self.segment_size(), SEGMENT_ALIGN) {
            Ok(layout) => layout,
            // `new` bounded the size by isize::MAX and the alignment is a power of two.
            Err(_) => panic!("MpmcGeometry::new checked the size"),
        }
    }
}

/// Size and alignment of an MPMC segment of `slots` slots of `slot_size` payload
/// bytes and an endpoint table of `endpoints` entries.
///
/// # Errors
/// As [`MpmcGeometry::new`].
///
/// # Examples
/// ```
/// let layout = shmring_core::mpmc_segment_layout(4, 8, 2)?;
/// // 512 bytes of lines, 2 entries of 128 bytes, 4 slots of 8 + 8 bytes.
/// assert_eq!(layout.size(), 512 + 2 * 128 + 4 * 16);
/// assert_eq!(layout.align(), 128);
/// # Ok::<(), shmring_core::MpmcLayoutError>(())
/// ```
pub fn mpmc_segment_layout(
    slots: usize,
    slot_size: usize,
    endpoints: usize,
) -> Result<Layout, MpmcLayoutError> {
    Ok(MpmcGeometry::new(slots, slot_size, endpoints)?.layout())
}

/// Why an MPMC segment could not be laid out, initialised or attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcLayoutError {
    /// The slot count is not a power of two within `MIN_SLOTS..=MAX_SLOTS`.
    InvalidSlotCount {
        /// The count asked for, or found in the header.
        slots: u64,
    },
    /// The slot payload size is zero or above `MAX_SLOT_SIZE`.
    InvalidSlotSize {
        /// The size asked for, or found in the header.
        slot_size: u64,
        /// The largest allowed.
        max: u64,
    },
    /// The endpoint count is zero or above `MAX_ENDPOINTS`.
    InvalidEndpointCount {
        /// The count asked for, or found in the header.
        endpoints: u64,
        /// The largest allowed.
        max: u64,
    },
    /// The layout would span more than `MAX_MPMC_SEGMENT` bytes or the address space.
    SegmentTooLarge {
        /// Bytes it would span.
        size: u64,
    },
    /// A problem every segment kind shares: alignment, size, magic, version, ring
    /// kind, a header field that disagrees with the shape, an unknown flag.
    Segment(LayoutError),
}

impl From<LayoutError> for MpmcLayoutError {
    fn from(e: LayoutError) -> Self {
        Self::Segment(e)
    }
}

impl fmt::Display for MpmcLayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidSlotCount { slots } => write!(
                f,
                "invalid slot count {slots}: must be a power of two from {} to {}",
                MIN_SLOTS, MAX_SLOTS
            ),
            Self::InvalidSlotSize { slot_size, max } => {
                write!(f, "invalid slot size {slot_size}: must be from 1 to {max}")
            }
            Self::InvalidEndpointCount { endpoints, max } => write!(
                f,
                "invalid endpoint count {endpoints}: must be from 1 to {max}"
            ),
            Self::SegmentTooLarge { size } => {
                write!(f, "segment of {size} bytes is too large")
            }
            Self::Segment(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for MpmcLayoutError {}
