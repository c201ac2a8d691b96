//! A slot's state word (its sequence number and the length of the message in it,
//! [`MpmcGeometry::slot_state`](super::layout::MpmcGeometry::slot_state)), read
//! through the endpoint's trusted shape, and the copy of a payload.

use super::MpmcRegion;
use super::endpoint::Endpoint;
use super::error::MpmcCorruption;

/// Copies `len` bytes from `src` to `dst`. Messages of 8 to 16 bytes take two
/// (possibly overlapping) 8-byte moves inline: for them a `memcpy` call costs more
/// than the copy (benches/notes/2026-11-25-mpmc-inline-common-path.md).
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `len` bytes, and the two ranges
/// do not overlap.
#[inline(always)]
pub(super) unsafe fn copy_message(src: *const u8, dst: *mut u8, len: usize) {
    if (8..=16).contains(&len) {
        // SAFETY: `0 + 8 <= len` and `len - 8 + 8 == len`: both 8-byte moves are
        // within the `len` bytes the caller vouches for (unaligned accesses).
        unsafe {
            let first = src.cast::<u64>().read_unaligned();
            let last = src.add(len - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(first);
            dst.add(len - 8).cast::<u64>().write_unaligned(last);
        }
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    }
}

impl<R: MpmcRegion> Endpoint<R> {
    #[inline]
    pub(super) fn index(&self, position: u64) -> usize {
        (position & self.mask) as usize
    }

    /// The slot state word for sequence number `seq` and length `len`
    /// (`MpmcGeometry::slot_state`).
    #[inline]
    pub(super) fn state(&self, seq: u64, len: u64) -> u64 {
        (seq << self.len_bits) | len
    }

    /// The sequence number in `state` minus `position`, as a signed number: the
    /// sequence number is kept modulo `2^(64 - len_bits)`, so the subtraction is
    /// done in the word's upper bits and shifted down arithmetically (the length
    /// bits below cannot borrow from it).
    #[inline]
    pub(super) fn diff(&self, position: u64, state: u64) -> i64 {
        (state.wrapping_sub(position << self.len_bits) as i64) >> self.len_bits
    }

    /// The length field of `state`.
    #[inline]
    pub(super) fn len_of(&self, state: u64) -> u32 {
        // At most 25 bits (`len_bits` of a 16 MiB slot).
        (state & self.len_mask) as u32
    }

    /// Whether `state` can be the state word of `position`'s slot at all: every
    /// sequence number the protocol writes there is `≡ position` or
    /// `≡ position + 1` modulo the slot count (which divides `2^(64 - len_bits)`).
    #[inline]
    pub(super) fn check_seq(&self, position: u64, state: u64) -> Result<(), MpmcCorruption> {
        if (self.diff(position, state) as u64) & self.mask <= 1 {
            Ok(())
        } else {
            Err(MpmcCorruption::BadSequence {
                position,
                seq: state >> self.len_bits,
            })
        }
    }
}
