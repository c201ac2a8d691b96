//! The SPSC segment layout: the bytes two processes (and two languages) agree on.
//!
//! ```text
//! offset  size  what
//!      0   128  Header          read-only after `init`; magic written last
//!    128   128  ProducerLine    write_position (u64), owner (u32), claims (u32), pid (u32)
//!    256   128  ConsumerLine    read_position (u64), owner (u32), claims (u32), pid (u32)
//!    384   128  SignalLine      data_signal (u32), space_signal (u32)
//!    512     C  data region     frames; C = capacity, a power of two
//! ```
//!
//! ARCHITECTURE.md documents every byte; the constants below are the contract, and
//! compile-time assertions tie them to the structs.

use core::alloc::Layout;

use crate::error::LayoutError;
use crate::layout::{LineAligned, SEGMENT_ALIGN};
use crate::sync::{AtomicU32, AtomicU64};

/// Offset of the [`Header`].
pub const HEADER_OFFSET: usize = 0;
/// Offset of the [`ProducerLine`].
pub const PRODUCER_LINE_OFFSET: usize = 128;
/// Offset of the [`ConsumerLine`].
pub const CONSUMER_LINE_OFFSET: usize = 256;
/// Offset of the [`SignalLine`].
pub const SIGNAL_LINE_OFFSET: usize = 384;
/// Offset of the data region; also the size of everything before it.
pub const DATA_OFFSET: usize = 512;

/// Size of a frame header: a `u32` state word and a `u32` run word (used by run
/// frames only, see [`FRAME_RUN`]).
pub const FRAME_HEADER_SIZE: usize = 8;
/// Every frame starts at a multiple of this, so payloads are 8-aligned.
pub const FRAME_ALIGN: usize = 8;

/// Smallest data region: four 16-byte frames.
pub const MIN_CAPACITY: usize = 64;
/// Largest data region, 512 MiB: the frame length field has 28 bits and the largest
/// message is half the capacity.
pub const MAX_CAPACITY: usize = 1 << 29;

/// Frame state bit: the frame is published. A zero word means "nothing here yet".
pub const FRAME_COMMITTED: u32 = 1 << 31;
/// Frame state bit: padding up to the end of the data region, not a message.
pub const FRAME_PADDING: u32 = 1 << 30;
/// Frame state bit: a consumer has released this message.
pub const FRAME_RELEASED: u32 = 1 << 29;
/// Frame state bit: a run of messages of one length packed under one header (a
/// batch writes them). The length field holds the run's payload bytes, `count *
/// stride`; the run word after the state word holds the message length (low 16
/// bits, [`RUN_LEN_MASK`]) and how many of the run's messages a consumer has
/// released (high 16 bits, [`RUN_RELEASED_SHIFT`]). Each message starts at a
/// multiple of 8 bytes after the header: `stride` is the length rounded up to 8.
pub const FRAME_RUN: u32 = 1 << 28;
/// Mask of the payload length in a frame state word.
pub const FRAME_LEN_MASK: u32 = FRAME_RUN - 1;
/// Mask of the message length in a run word.
pub const RUN_LEN_MASK: u32 = 0xffff;
/// Shift of the released count in a run word.
pub const RUN_RELEASED_SHIFT: u32 = 16;
/// Most messages in one run: the released count must fit its 16 bits.
pub const MAX_RUN_COUNT: u32 = 0xffff;

/// The segment's first line: what a reader checks before it trusts anything else.
///
/// Every field but `magic` is written once by `init` before `magic` is stored
/// (Release) and never changes after; `attach` reads each once (after an Acquire
/// load of `magic`) and keeps its own copy of what it needs.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`](crate::layout::MAGIC) once the segment is initialised; zero before.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`](crate::layout::LAYOUT_VERSION).
    pub layout_version: u32,
    /// [`RING_KIND_SPSC`](crate::layout::RING_KIND_SPSC).
    pub ring_kind: u32,
    /// Size of the data region in bytes, a power of two.
    pub capacity: u64,
    /// [`DATA_OFFSET`].
    pub data_offset: u64,
    /// Bytes the layout spans: `data_offset + capacity`.
    pub segment_size: u64,
    /// [`FRAME_HEADER_SIZE`].
    pub frame_header_size: u32,
    /// [`FRAME_ALIGN`].
    pub frame_align: u32,
    /// Largest payload a frame may carry: `capacity / 2 - FRAME_HEADER_SIZE`.
    pub max_message_len: u64,
    /// Protocol flags ([`FLAG_ASYMMETRIC_FENCES`](crate::layout::FLAG_ASYMMETRIC_FENCES)); unknown bits are refused.
    pub flags: u32,
}

/// The producer's line.
#[derive(Debug)]
#[repr(C)]
pub struct ProducerLine {
    /// Position one past the last published frame (monotonic byte count). Published
    /// after the frames below it; a hint for observers and for recovery.
    pub write_position: AtomicU64,
    /// Claim word: 0 when no producer holds the segment, else the holder's token.
    pub owner: AtomicU32,
    /// How many producers have claimed the ring (wrapping). Non-zero tells an
    /// observer that a producer has been here, so "none now" means "gone", not
    /// "not yet".
    pub claims: AtomicU32,
    /// The holder's process id, for display and as a hint for death detection:
    /// written by the claimant after its claim, 0 at release (and while
    /// unclaimed). Wrong across pid namespaces and after pid reuse, and any peer
    /// may write it: never trusted for anything but a hint. Core never reads it.
    pub pid: AtomicU32,
}

/// The consumer's line.
#[derive(Debug)]
#[repr(C)]
pub struct ConsumerLine {
    /// Position below which every message is released and its bytes may be reused
    /// by the producer (monotonic byte count, a frame boundary).
    pub read_position: AtomicU64,
    /// Claim word: 0 when no consumer holds the segment, else the holder's token.
    pub owner: AtomicU32,
    /// How many consumers have claimed the ring (wrapping); as for the producer's.
    pub claims: AtomicU32,
    /// The holder's process id: a hint, as for the producer's.
    pub pid: AtomicU32,
}

/// The words of the wait/notify protocol (eventcounts; `u32` because a futex waits
/// on 32 bits). Bit 0 is [`ARMED`](crate::wait::ARMED) (reserved), bit 1
/// [`WAITING`](crate::wait::WAITING) ("a waiter is registered"), bits 2..32 count
/// notifications.
#[derive(Debug)]
#[repr(C)]
pub struct SignalLine {
    /// The consumer waits here for messages; the producer notifies after commits.
    pub data_signal: AtomicU32,
    /// The producer waits here for space; the consumer notifies after releases.
    pub space_signal: AtomicU32,
}

/// The three shared lines the protocol runs on (everything but the header).
#[derive(Debug)]
#[repr(C)]
pub struct Control {
    /// Written by the producer.
    pub producer: LineAligned<ProducerLine>,
    /// Written by the consumer.
    pub consumer: LineAligned<ConsumerLine>,
    /// Written by whichever side waits or wakes.
    pub signals: LineAligned<SignalLine>,
}

impl Control {
    /// A control block for a fresh ring: positions zero, no owners, no waiters.
    pub fn new() -> Self {
        Self {
            producer: LineAligned(ProducerLine {
                write_position: AtomicU64::new(0),
                owner: AtomicU32::new(0),
                claims: AtomicU32::new(0),
                pid: AtomicU32::new(0),
            }),
            consumer: LineAligned(ConsumerLine {
                read_position: AtomicU64::new(0),
                owner: AtomicU32::new(0),
                claims: AtomicU32::new(0),
                pid: AtomicU32::new(0),
            }),
            signals: LineAligned(SignalLine {
                data_signal: AtomicU32::new(0),
                space_signal: AtomicU32::new(0),
            }),
        }
    }
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything before the data region, as it lies in the segment.
#[derive(Debug)]
#[repr(C)]
pub struct SegmentHeader {
    /// The header line.
    pub header: LineAligned<Header>,
    /// The producer, consumer and signal lines.
    pub control: Control,
}

// The layout is a contract with other processes and with C: pin every offset.
// (Under loom the atomics are loom's and the structs are never placed in shared
// memory, so the sizes differ and are not checked.)
#[cfg(not(shmring_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SegmentHeader>() == DATA_OFFSET);
    assert!(align_of::<SegmentHeader>() == SEGMENT_ALIGN);
    assert!(offset_of!(SegmentHeader, header) == HEADER_OFFSET);
    assert!(offset_of!(SegmentHeader, control.producer) == PRODUCER_LINE_OFFSET);
    assert!(offset_of!(SegmentHeader, control.consumer) == CONSUMER_LINE_OFFSET);
    assert!(offset_of!(SegmentHeader, control.signals) == SIGNAL_LINE_OFFSET);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, layout_version) == 8);
    assert!(offset_of!(Header, ring_kind) == 12);
    assert!(offset_of!(Header, capacity) == 16);
    assert!(offset_of!(Header, data_offset) == 24);
    assert!(offset_of!(Header, segment_size) == 32);
    assert!(offset_of!(Header, frame_header_size) == 40);
    assert!(offset_of!(Header, frame_align) == 44);
    assert!(offset_of!(Header, max_message_len) == 48);
    assert!(offset_of!(Header, flags) == 56);
    assert!(offset_of!(ProducerLine, write_position) == 0);
    assert!(offset_of!(ProducerLine, owner) == 8);
    assert!(offset_of!(ProducerLine, claims) == 12);
    assert!(offset_of!(ProducerLine, pid) == 16);
    assert!(offset_of!(ConsumerLine, read_position) == 0);
    assert!(offset_of!(ConsumerLine, owner) == 8);
    assert!(offset_of!(ConsumerLine, claims) == 12);
    assert!(offset_of!(ConsumerLine, pid) == 16);
    assert!(offset_of!(SignalLine, data_signal) == 0);
    assert!(offset_of!(SignalLine, space_signal) == 4);
    assert!(size_of::<AtomicU32>() == 4 && align_of::<AtomicU32>() == 4);
    assert!(size_of::<AtomicU64>() == 8 && align_of::<AtomicU64>() == 8);
};

/// Checks a requested capacity: a power of two within
/// [`MIN_CAPACITY`]`..=`[`MAX_CAPACITY`].
pub fn check_capacity(capacity: usize) -> Result<(), LayoutError> {
    if capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(LayoutError::InvalidCapacity {
            capacity: capacity as u64,
        })
    }
}

/// Size and alignment of a segment whose data region holds `capacity` bytes.
///
/// # Errors
/// [`LayoutError::InvalidCapacity`] unless `capacity` is a power of two within
/// [`MIN_CAPACITY`]`..=`[`MAX_CAPACITY`].
///
/// # Examples
/// ```
/// let layout = shmring_core::segment_layout(4096)?;
/// assert_eq!(layout.size(), 512 + 4096);
/// assert_eq!(layout.align(), 128);
/// # Ok::<(), shmring_core::LayoutError>(())
/// ```
pub fn segment_layout(capacity: usize) -> Result<Layout, LayoutError> {
    check_capacity(capacity)?;
    Layout::from_size_align(DATA_OFFSET + capacity, SEGMENT_ALIGN).map_err(|_| {
        LayoutError::InvalidCapacity {
            capacity: capacity as u64,
        }
    })
}

/// The largest payload a ring of `capacity` bytes accepts: half the data region
/// less one frame header. A frame that size always fits once the consumer has caught
/// up, wherever the write position stands (padding included).
pub const fn max_message_len(capacity: usize) -> usize {
    capacity / 2 - FRAME_HEADER_SIZE
}
