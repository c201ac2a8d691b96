//! The broadcast ring: one publisher, up to `N` subscribers, each of which sees
//! every message, over a topic's two segments (a data segment only the publisher
//! writes, and a subscriber table every subscriber writes).
//!
//! Frames are the SPSC ring's in spirit: variable-length, 8-aligned, never crossing
//! the data region's end (a padding frame fills it; a last 8 bytes, too short for a
//! header, hold no frame and both sides skip them), with a 16-byte header: the
//! state word (`COMMITTED`, `PADDING`, the length), a zero word, and the message's
//! 64-bit sequence number (1, 2, 3 …). **The sequence word publishes the frame**:
//! the publisher stores it last, with Release, and a subscriber polls the sequence
//! word at its position for the number it expects (Acquire), so a round trip moves
//! one line, as the SPSC ring's does (decision 0001). Before it publishes a frame,
//! the publisher marks the next frame's sequence word
//! [`SEQ_UNPUBLISHED`](layout::SEQ_UNPUBLISHED) with the number that frame will
//! carry: the word at every frame boundary a subscriber reaches is a mark or a
//! published number, never an older lap's payload (which could hold any number).
//!
//! The publisher moves `oldest_position`, the oldest intact frame, ahead of the
//! bytes it is about to overwrite, in chunks of an eighth of the region, and fences
//! (Release) before it writes them. A subscriber copies a message with atomic word
//! loads, fences (Acquire) and re-reads `oldest_position`: if the frame is still at
//! or above it, the copy is intact (decision 0006). A subscriber that finds at its
//! position an intact frame numbered beyond what it expected reports how many it
//! missed ([`BroadcastRecvError::Lagged`]) and reads that frame next.
//!
//! Under [`Policy::Gated`] and [`Policy::Strict`] the publisher does not move
//! `oldest_position` past a live subscriber's published cursor; it caches the
//! slowest cursor, so its common path reads no subscriber line. docs/design/broadcast.md
//! has the protocol and its argument, ARCHITECTURE.md the bytes and orderings.

#[cfg(not(shmring_loom))]
mod in_place;
pub mod layout;
mod publisher;
pub mod region;
mod subscriber;

use core::fmt;

#[cfg(not(shmring_loom))]
pub use in_place::{BroadcastGrant, BroadcastMessage};
pub use publisher::BroadcastPublisher;
pub use region::BroadcastRegion;
#[cfg(not(shmring_loom))]
pub use region::{BroadcastConfig, BroadcastInfo, BroadcastSubscriberInfo, RawBroadcastRegion};
pub use subscriber::{BroadcastSubscriber, Start};

use crate::spsc::layout::{FRAME_COMMITTED, FRAME_LEN_MASK, FRAME_PADDING};
use crate::sync::{AtomicU64, Ordering};
use layout::{
    BROADCAST_FRAME_HEADER_SIZE, FRAME_SEQ_OFFSET, POLICY_GATED, POLICY_LOSSY, POLICY_STRICT,
};

/// What the publisher does when a subscriber falls a whole region behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Never wait: overwrite, and the lapped subscriber gets
    /// [`BroadcastRecvError::Lagged`].
    Lossy,
    /// Wait for the slowest live subscriber; cut off one that does not move within
    /// the topic's bound (it then reads as a lossy subscriber does).
    Gated,
    /// Wait for every live subscriber as long as it lives; subscribers may read in
    /// place ([`BroadcastSubscriber::read`], [`BroadcastPublisher::grant`]).
    Strict,
}

impl Policy {
    /// The policy's word in the headers.
    #[must_use]
    pub const fn word(self) -> u32 {
        match self {
            Self::Lossy => POLICY_LOSSY,
            Self::Gated => POLICY_GATED,
            Self::Strict => POLICY_STRICT,
        }
    }

    /// The policy a header word names, if any.
    #[must_use]
    pub const fn from_word(word: u32) -> Option<Self> {
        match word {
            POLICY_LOSSY => Some(Self::Lossy),
            POLICY_GATED => Some(Self::Gated),
            POLICY_STRICT => Some(Self::Strict),
            _ => None,
        }
    }

    /// Whether the publisher waits for subscribers.
    #[must_use]
    pub const fn waits(self) -> bool {
        !matches!(self, Self::Lossy)
    }
}

/// What a broadcast endpoint found wrong in the shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastCorruption {
    /// An intact frame's state word is not one the publisher writes.
    BadFrame {
        /// The frame's position.
        position: u64,
        /// The state word.
        word: u32,
    },
    /// An intact frame carries a sequence number below the one expected there.
    BadSequence {
        /// The frame's position.
        position: u64,
        /// The number found.
        found: u64,
        /// The number expected (at least).
        expected: u64,
    },
    /// A position word of the publisher's lines is impossible (not a multiple of
    /// 8, or out of order with the others).
    BadPosition {
        /// Which word.
        field: &'static str,
        /// The value found.
        found: u64,
    },
}

impl fmt::Display for BroadcastCorruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadFrame { position, word } => {
                write!(f, "bad frame header {word:#010x} at position {position}")
            }
            Self::BadSequence {
                position,
                found,
                expected,
            } => write!(
                f,
                "frame at position {position} has sequence number {found}, expected {expected}"
            ),
            Self::BadPosition { field, found } => write!(f, "impossible {field} {found}"),
        }
    }
}

impl core::error::Error for BroadcastCorruption {}

/// Why a message was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastPublishError {
    /// The message is longer than the topic carries.
    MessageTooLarge {
        /// Its length.
        len: usize,
        /// The largest the topic carries.
        max: usize,
    },
    /// Gated and strict topics: the subscriber in `slot` has not read the frames
    /// the message would overwrite. Wait for room, ask whether that subscriber
    /// lives ([`BroadcastPublisher::free_slot`]), or cut it off
    /// ([`BroadcastPublisher::cut_off`]).
    Full {
        /// The slot of the slowest subscriber.
        slot: usize,
    },
    /// The publisher's own frames or lines were found damaged.
    Corrupted(BroadcastCorruption),
    /// Writing in place needs a strict topic.
    InPlaceNeedsStrict {
        /// The topic's policy.
        policy: Policy,
    },
}

impl fmt::Display for BroadcastPublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageTooLarge { len, max } => {
                write!(f, "message too large: {len} bytes, at most {max}")
            }
            Self::Full { slot } => write!(f, "full: subscriber slot {slot} has not read"),
            Self::Corrupted(c) => write!(f, "corrupted topic: {c}"),
            Self::InPlaceNeedsStrict { policy } => {
                write!(
                    f,
                    "writing in place needs a strict topic (this one is {policy:?})"
                )
            }
        }
    }
}

impl core::error::Error for BroadcastPublishError {}

/// Why no message was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastRecvError {
    /// Nothing published past this subscriber's position yet.
    Empty,
    /// The publisher overwrote `missed` messages this subscriber had not read; the
    /// next call returns the oldest one still intact.
    Lagged {
        /// Messages skipped.
        missed: u64,
    },
    /// The message is `len` bytes, more than the buffer's `capacity`; it stays
    /// unread.
    BufferTooSmall {
        /// The message's length.
        len: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// An intact frame is not one the publisher writes.
    Corrupted(BroadcastCorruption),
    /// Reading in place needs a strict topic.
    InPlaceNeedsStrict {
        /// The topic's policy.
        policy: Policy,
    },
}

impl fmt::Display for BroadcastRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "no message"),
            Self::Lagged { missed } => write!(f, "lagged: {missed} messages overwritten unread"),
            Self::BufferTooSmall { len, capacity } => {
                write!(
                    f,
                    "buffer too small: the message is {len} bytes, the buffer {capacity}"
                )
            }
            Self::Corrupted(c) => write!(f, "corrupted topic: {c}"),
            Self::InPlaceNeedsStrict { policy } => {
                write!(
                    f,
                    "reading in place needs a strict topic (this one is {policy:?})"
                )
            }
        }
    }
}

impl core::error::Error for BroadcastRecvError {}

/// Why the publisher's role could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastClaimError {
    /// Another publisher holds it.
    Taken {
        /// The token in the owner word.
        owner: u32,
    },
    /// The last publisher's lines are impossible (the claim is given back).
    Corrupted(BroadcastCorruption),
}

impl fmt::Display for BroadcastClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Taken { owner } => write!(f, "publisher already claimed (owner token {owner})"),
            Self::Corrupted(c) => write!(f, "corrupted topic: {c}"),
        }
    }
}

impl core::error::Error for BroadcastClaimError {}

/// Why a subscriber could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastJoinError {
    /// Every slot of the table is held.
    NoFreeSlot {
        /// The table's slots.
        slots: usize,
    },
    /// The slot asked for is not free (held by `owner`).
    SlotTaken {
        /// The slot.
        slot: usize,
        /// The token in its owner word.
        owner: u32,
    },
    /// The publisher's lines are damaged.
    Corrupted(BroadcastCorruption),
}

impl fmt::Display for BroadcastJoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFreeSlot { slots } => write!(f, "all {slots} subscriber slots are taken"),
            Self::SlotTaken { slot, owner } => {
                write!(f, "subscriber slot {slot} is taken (owner token {owner})")
            }
            Self::Corrupted(c) => write!(f, "corrupted topic: {c}"),
        }
    }
}

impl core::error::Error for BroadcastJoinError {}

/// Bytes of a frame header.
const HEADER: u64 = BROADCAST_FRAME_HEADER_SIZE as u64;

/// Bytes a frame with a `len`-byte payload spans.
#[inline]
const fn frame_size(len: u64) -> u64 {
    (len + HEADER + 7) & !7
}

/// What both sides know about the data region, from the trusted region.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    capacity: u64,
    mask: u64,
    max_len: u64,
}

/// A decoded, checked frame state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// A message of `len` bytes.
    Message { len: u32 },
    /// Padding up to the region's end: skip `size` bytes.
    Padding { size: u64 },
}

impl Geometry {
    fn of<R: BroadcastRegion>(region: &R) -> Self {
        let capacity = region.capacity() as u64;
        Self {
            capacity,
            mask: capacity - 1,
            max_len: layout::broadcast_max_message_len(region.capacity()) as u64,
        }
    }

    #[inline]
    fn offset(&self, position: u64) -> usize {
        (position & self.mask) as usize
    }

    /// Bytes from `position` to the region's end.
    #[inline]
    fn tail(&self, position: u64) -> u64 {
        self.capacity - (position & self.mask)
    }

    /// Whether `position` is too close to the region's end for a frame header
    /// (8 bytes left): both sides skip to the next lap without reading it.
    #[inline]
    fn no_frame_at(&self, position: u64) -> bool {
        self.tail(position) < HEADER
    }

    /// Checks the state `word` of a frame at `position`: a frame the publisher
    /// writes lies within the region and carries at most the largest message.
    #[inline]
    fn decode(&self, position: u64, word: u32) -> Result<Frame, BroadcastCorruption> {
        let bad = BroadcastCorruption::BadFrame { position, word };
        if word & FRAME_COMMITTED == 0
            || word & !(FRAME_COMMITTED | FRAME_PADDING | FRAME_LEN_MASK) != 0
        {
            return Err(bad);
        }
        let len = u64::from(word & FRAME_LEN_MASK);
        let size = frame_size(len);
        let tail = self.tail(position);
        if word & FRAME_PADDING != 0 {
            return if size == tail {
                Ok(Frame::Padding { size })
            } else {
                Err(bad)
            };
        }
        if len > self.max_len || size > tail {
            return Err(bad);
        }
        Ok(Frame::Message { len: len as u32 })
    }
}

/// The state word at `position`. Relaxed: what it is worth is decided by the
/// caller's ordering (the sequence word's Acquire, the `oldest` re-check).
#[inline]
fn state_word<R: BroadcastRegion>(region: &R, geo: Geometry, position: u64) -> u32 {
    // Little- or big-endian, the state word is the first 4 bytes of the header's
    // first u64: the low half on little-endian machines, the high half otherwise.
    let word = region.word(geo.offset(position)).load(Ordering::Relaxed);
    header_state(word)
}

#[inline]
const fn header_state(word: u64) -> u32 {
    let bytes = word.to_ne_bytes();
    u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[inline]
const fn header_first_word(state: u32) -> u64 {
    let s = state.to_ne_bytes();
    u64::from_ne_bytes([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
}

/// The sequence word of the frame at `position`.
#[inline]
fn seq_word<R: BroadcastRegion>(region: &R, geo: Geometry, position: u64) -> &AtomicU64 {
    region.word(geo.offset(position) + FRAME_SEQ_OFFSET)
}

/// Copies `dst.len()` payload bytes of the frame at `offset` out with atomic word
/// loads (the publisher may be overwriting them: the caller validates afterwards).
/// Whole words as fixed-size moves (no `memcpy` call per word), the last part
/// word alone.
#[inline]
fn load_payload<R: BroadcastRegion>(region: &R, offset: usize, dst: &mut [u8]) {
    let mut at = offset + BROADCAST_FRAME_HEADER_SIZE;
    let mut words = dst.chunks_exact_mut(8);
    for chunk in &mut words {
        // Relaxed: validated by the caller's fence and `oldest` re-check.
        let word = region.word(at).load(Ordering::Relaxed);
        chunk.copy_from_slice(&word.to_ne_bytes());
        at += 8;
    }
    let rest = words.into_remainder();
    if !rest.is_empty() {
        // Relaxed: as above.
        let word = region.word(at).load(Ordering::Relaxed).to_ne_bytes();
        rest.copy_from_slice(&word[..rest.len()]);
    }
}

/// Writes `src` as the payload of the frame at `offset` with atomic word stores
/// (a lapped subscriber may be reading them), zero-padding the last word.
#[inline]
fn store_payload<R: BroadcastRegion>(region: &R, offset: usize, src: &[u8]) {
    let mut at = offset + BROADCAST_FRAME_HEADER_SIZE;
    let mut words = src.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Relaxed: published by the Release store of the frame's sequence word.
        region
            .word(at)
            .store(u64::from_ne_bytes(word), Ordering::Relaxed);
        at += 8;
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        // Relaxed: as above.
        region
            .word(at)
            .store(u64::from_ne_bytes(word), Ordering::Relaxed);
    }
}

#[cfg(all(test, not(shmring_loom)))]
mod tests;
