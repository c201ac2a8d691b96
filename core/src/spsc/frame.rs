//! The frame codec: the size of a frame, and the check of every state and run word
//! read from the data region (the format is in the [module docs](super)).

use super::layout::{
    self, FRAME_COMMITTED, FRAME_LEN_MASK, FRAME_PADDING, FRAME_RELEASED, FRAME_RUN, MAX_RUN_COUNT,
    RUN_LEN_MASK, RUN_RELEASED_SHIFT, max_message_len,
};
use super::{Corruption, HEADER, Region};

/// Bytes a frame with a `len`-byte payload spans.
#[inline]
pub(super) const fn frame_size(len: u64) -> u64 {
    (len + HEADER + 7) & !7
}

/// Bytes a `len`-byte message spans inside a run: its length rounded up to 8.
#[inline]
pub(super) const fn stride(len: u64) -> u64 {
    (len + 7) & !7
}

/// A decoded, validated frame state word.
#[derive(Clone, Copy)]
pub(super) enum Frame {
    /// A message of `len` bytes, not yet released.
    Message { len: u32 },
    /// A released message or padding: skip `size` bytes.
    Skip { size: u64 },
    /// A run of messages (not all released) with `total` payload bytes; its run
    /// word is still to be read and checked.
    Run { total: u32 },
}

/// What both sides know about the data region, copied once from the trusted region.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub(super) capacity: u64,
    pub(super) mask: u64,
    pub(super) max_len: u64,
}

impl Geometry {
    pub(super) fn of<R: Region>(region: &R) -> Self {
        let capacity = region.capacity();
        debug_assert!(capacity.is_power_of_two());
        Self {
            capacity: capacity as u64,
            mask: capacity as u64 - 1,
            max_len: max_message_len(capacity) as u64,
        }
    }

    #[inline]
    pub(super) fn offset(&self, position: u64) -> usize {
        (position & self.mask) as usize
    }

    /// Validates the state `word` of the frame at `position`; `None` if empty.
    /// Every frame this accepts lies within the data region and its payload within
    /// the largest message.
    #[inline]
    pub(super) fn decode(&self, position: u64, word: u32) -> Result<Option<Frame>, Corruption> {
        if word == 0 {
            return Ok(None);
        }
        let bad = word & FRAME_COMMITTED == 0
            || word & (FRAME_PADDING | FRAME_RELEASED) == FRAME_PADDING | FRAME_RELEASED
            || word & (FRAME_PADDING | FRAME_RUN) == FRAME_PADDING | FRAME_RUN;
        if bad {
            return Err(Corruption::BadFrameHeader { position, word });
        }
        let len = word & FRAME_LEN_MASK;
        let size = frame_size(len.into());
        let tail = self.capacity - (position & self.mask);
        if word & FRAME_PADDING != 0 {
            if size != tail {
                return Err(Corruption::BadPadding {
                    position,
                    size,
                    expected: tail,
                });
            }
            return Ok(Some(Frame::Skip { size }));
        }
        let limit = self.max_len.min(tail - HEADER);
        if u64::from(len) > limit {
            return Err(Corruption::FrameTooLong {
                position,
                len,
                limit,
            });
        }
        if word & FRAME_RELEASED != 0 {
            Ok(Some(Frame::Skip { size }))
        } else if word & FRAME_RUN != 0 {
            Ok(Some(Frame::Run { total: len }))
        } else {
            Ok(Some(Frame::Message { len }))
        }
    }

    /// Validates the run word `run` of the run frame at `position`, whose state word
    /// `word` announced `total` payload bytes (already checked by `decode`): returns
    /// `(len, count, released)`, with `1 <= len`, `count * stride(len) == total` and
    /// `released < count`.
    pub(super) fn decode_run(
        &self,
        position: u64,
        word: u32,
        total: u32,
        run: u32,
    ) -> Result<(u32, u32, u32), Corruption> {
        let len = run & RUN_LEN_MASK;
        let released = run >> RUN_RELEASED_SHIFT;
        let bad = Corruption::BadRun {
            position,
            word,
            run_word: run,
        };
        if len == 0 || u64::from(len) > self.max_len {
            return Err(bad);
        }
        let stride = stride(len.into()) as u32;
        // 8-byte multiples: a shift for the common power-of-two strides.
        let count = if stride.is_power_of_two() {
            total >> stride.trailing_zeros()
        } else {
            total / stride
        };
        if count * stride != total {
            return Err(bad);
        }
        if count > MAX_RUN_COUNT || released >= count {
            return Err(bad);
        }
        Ok((len, count, released))
    }

    /// The common case of [`Geometry::decode`] and the window check after it: the
    /// state `word` of the frame at `position` is a committed message, neither
    /// padding nor released, whose payload lies within the data region and the
    /// largest message, and whose frame ends at or below `limit`. Returns its
    /// length; `None` for anything else (empty, skippable or invalid), which the
    /// caller then decodes in full. It accepts exactly the messages `decode` and
    /// the window check accept.
    #[inline(always)]
    pub(super) fn plain_message(&self, position: u64, word: u32, limit: u64) -> Option<u32> {
        // A plain message's word is COMMITTED | len, PADDING and RELEASED clear:
        // less COMMITTED it is `len`. Any other word (empty, not committed, padding
        // released or a run) leaves at least FRAME_RUN, more than any payload limit
        // (see the assertion below), so one compare checks the flags and the length.
        let len = word.wrapping_sub(FRAME_COMMITTED);
        // `tail - HEADER` in `decode`: the payload ends within the data region.
        let room = self.capacity - (position & self.mask) - HEADER;
        if u64::from(len) <= self.max_len.min(room) && position + frame_size(len.into()) <= limit {
            Some(len)
        } else {
            None
        }
    }
}

// `Geometry::plain_message` relies on every payload limit being below the flag bits.
const _: () = assert!(max_message_len(layout::MAX_CAPACITY) < FRAME_RUN as usize);
// Every flag lies above the length field.
const _: () = assert!(FRAME_LEN_MASK == FRAME_RUN - 1 && FRAME_RUN < FRAME_RELEASED);
