//! The single-producer single-consumer ring of variable-length messages.
//!
//! # Frames
//!
//! The data region holds frames, each starting on an 8-byte boundary:
//!
//! ```text
//! +0  u32  state: 0 = nothing yet, else COMMITTED | [PADDING] | [RELEASED] | [RUN] | len
//! +4  u32  run word (run frames only): message length | released count << 16
//! +8  len payload bytes, then zero to 7 bytes up to the next multiple of 8
//! ```
//!
//! A frame never crosses the end of the data region: where a message does not fit
//! before it, a padding frame fills the rest and the message starts the next lap.
//!
//! A run frame (written only by a [`Batch`]) packs consecutive messages of one
//! length, each starting at a multiple of 8 after the header: an 8-byte message
//! takes 8 bytes instead of 16. The consumer hands them out one by one as if each
//! had a frame of its own; releasing one before the last records the count in the
//! run word, so that a successor resumes after it.
//!
//! # Publication (one cache line per small message)
//!
//! The producer fills a frame, writes a zero into the state word *after* it (the
//! next frame's header), then stores the frame's state word with Release. The
//! consumer polls the state word at its read position with Acquire: when it turns
//! non-zero the whole frame is visible. A small message and its header share a line,
//! so a message crosses between cores as one line; the consumer never reads the
//! producer's position to find a message (only, once per 2 KiB, as a hint for
//! prefetching: `PREFETCH_FAR`).
//!
//! The shared positions are for flow control. The producer reads `read_position`
//! only when its cached copy says the ring is full. The consumer publishes it
//! lazily: when it has released everything committed so far, after a quarter of the
//! capacity, or when the producer is waiting for space. While the producer runs
//! ahead, the position line changes hands once per quarter capacity, not per
//! message. Each released frame is also marked `RELEASED` in place, so a consumer
//! that takes over after a crash skips what was released but not yet published:
//! nothing is delivered twice.

mod batch;
pub(crate) mod claim;
mod consumer;
mod error;
mod frame;
mod grant;
pub mod layout;
mod message;
mod producer;
pub mod region;

pub use batch::{Batch, RunGrant};
pub use consumer::Consumer;
pub use error::{ClaimError, Corruption, PopError, PushError, ReadError, WaitError};
pub use grant::Grant;
use layout::FRAME_HEADER_SIZE;
pub use message::Message;
pub use producer::Producer;
pub use region::Region;
#[cfg(not(shmring_loom))]
pub use region::{RawRegion, SegmentInfo};

/// [`FRAME_HEADER_SIZE`] as a distance between positions.
const HEADER: u64 = FRAME_HEADER_SIZE as u64;

/// The largest position either side accepts from shared memory. Positions count
/// bytes since the ring was made; at 100 GB/s they would reach this after five
/// years. Below it, `position + 2 * capacity` and the like cannot overflow.
const MAX_POSITION: u64 = u64::MAX - 4 * layout::MAX_CAPACITY as u64;

/// Copies `src` into `dst`, of the same length. Most messages are small, and a
/// call to `memcpy` for 8 bytes costs more than the rest of a push: up to 16 bytes
/// are copied inline with at most two (overlapping) word moves.
#[inline(always)]
fn copy_message(dst: &mut [u8], src: &[u8]) {
    let len = src.len();
    if dst.len() == len && (8..=16).contains(&len) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[len - 8..].copy_from_slice(&src[len - 8..]);
    } else if dst.len() == len && (4..8).contains(&len) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[len - 4..].copy_from_slice(&src[len - 4..]);
    } else {
        dst.copy_from_slice(src);
    }
}
