//! What every shmring segment shares: its first words (the magic, the layout
//! version and the kind), the protocol flags, the alignment, and the 128-byte line
//! each group of shared words sits alone on.
//!
//! After its first 16 bytes each kind has a layout of its own: the SPSC ring's in
//! [`crate::spsc::layout`], the MPMC ring's in [`crate::mpmc::layout`], the named
//! events' and semaphores' in [`crate::object::layout`]
//! (`docs/design/events-and-semaphores.md`), the shared states' (a robust
//! mutex, a published value) in [`crate::state::header`]
//! (`docs/design/shared-state.md`).

use crate::error::LayoutError;

/// The first word of every shmring segment, in the byte order of the process that
/// wrote it. A reader that finds its byte-swapped value was written by a machine of
/// the other endianness.
pub const MAGIC: u64 = 0x7368_6d72_696e_6701;

/// The version of this layout. Any change to an offset, a field's meaning or the
/// frame format changes it; `attach` refuses every other version. Version 4 added
/// the holder's pid to each SPSC role's line, per-role registration counts to the
/// MPMC signal line, and the reserved [`ARMED`](crate::wait::ARMED) bit of the
/// signal words (moving the notification count up one bit); CHANGELOG.md lists
/// every byte.
pub const LAYOUT_VERSION: u32 = 4;

/// Ring kind: single producer, single consumer, messages
/// of variable length.
pub const RING_KIND_SPSC: u32 = 1;

/// Multiple producers, multiple consumers, fixed-size slots (the
/// [`mpmc`](crate::mpmc) ring; its layout is in [`crate::mpmc::layout`]).
pub const RING_KIND_MPMC: u32 = 2;

/// Object kind (same field as the ring kind): a named event, an eventcount over
/// one futex word (the `shmring` crate's `Event`). Its layout is not a ring's:
/// [`crate::object::layout`].
pub const OBJECT_KIND_EVENT: u32 = 3;
/// Object kind: a named counting semaphore over one futex word (the `shmring`
/// crate's `Semaphore`).
pub const OBJECT_KIND_SEMAPHORE: u32 = 4;
/// Ring kind: a broadcast topic's data segment (one publisher, many subscribers;
/// [`crate::broadcast::layout`]).
pub const RING_KIND_BROADCAST: u32 = 5;
/// Ring kind: a broadcast topic's subscriber table.
pub const RING_KIND_BROADCAST_TABLE: u32 = 6;
/// State kind: a value guarded by a robust process-shared lock (`SharedMutex`;
/// the common header is [`crate::state::header`]).
pub const STATE_KIND_MUTEX: u32 = 7;
/// State kind: a value published by one writer under a seqlock (`SharedValue`;
/// [`crate::state::value`]).
pub const STATE_KIND_VALUE: u32 = 8;

/// Header flag: waiters on this segment's signal words issue a barrier on every
/// CPU (Linux `membarrier`) between registering and re-checking the ring, so
/// notifiers may order their publication before their check for waiters with a
/// compiler fence alone (see [`Futex::notifier_fence`](crate::Futex::notifier_fence)).
/// Every process that uses the segment must honour it or refuse the segment.
pub const FLAG_ASYMMETRIC_FENCES: u32 = 1;
/// Every flag this version knows; `attach` refuses others.
pub const KNOWN_FLAGS: u32 = FLAG_ASYMMETRIC_FENCES;

/// Alignment the segment needs (the lines are 128 bytes: two 64-byte lines, since
/// x86's adjacent-line prefetcher and Apple's 128-byte lines both pair them).
pub const SEGMENT_ALIGN: usize = 128;
/// A `repr(C)` wrapper that puts `T` alone on a 128-byte line at a fixed offset.
///
/// Unlike `crossbeam_utils::CachePadded`, whose size depends on the target, this is
/// 128 bytes everywhere, so another process or a C program computes the same offsets.
/// It derefs to `T`, so `control.producer.owner` reads through it.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct LineAligned<T>(pub T);

impl<T> core::ops::Deref for LineAligned<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> core::ops::DerefMut for LineAligned<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Checks memory offered for a segment: non-null, on a [`SEGMENT_ALIGN`] boundary,
/// at least `required` bytes.
#[cfg(not(shmring_loom))]
pub(crate) fn check_memory(ptr: *mut u8, len: usize, required: u64) -> Result<(), LayoutError> {
    if ptr.is_null() || (ptr as usize) % SEGMENT_ALIGN != 0 {
        return Err(LayoutError::Misaligned {
            addr: ptr as usize,
            align: SEGMENT_ALIGN,
        });
    }
    if (len as u64) < required {
        return Err(LayoutError::TooSmall { len, required });
    }
    Ok(())
}

/// Checks a header's flags against [`KNOWN_FLAGS`].
pub(crate) fn check_flags(flags: u32) -> Result<(), LayoutError> {
    if flags & !KNOWN_FLAGS != 0 {
        return Err(LayoutError::HeaderMismatch {
            field: "flags",
            found: flags.into(),
            expected: u64::from(flags & KNOWN_FLAGS),
        });
    }
    Ok(())
}

/// The native-endian `u64` at byte `at` of `bytes`, a copy of a segment's
/// header read without mapping it (`pread`); 0 past the end (the parsers check
/// the length first, so that is never taken for a field).
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at.wrapping_add(8))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// The native-endian `u32` at byte `at` of `bytes`, as [`u64_at`].
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at.wrapping_add(4))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// Checks a segment's first words, in order: the magic (zero, byte-swapped or
/// other), the layout version, the kind.
///
/// # Errors
/// [`LayoutError::Uninitialized`], [`LayoutError::ForeignByteOrder`],
/// [`LayoutError::BadMagic`], [`LayoutError::UnsupportedVersion`],
/// [`LayoutError::WrongKind`], in that order.
pub fn check_identity(
    magic: u64,
    version: u32,
    kind: u32,
    expected_kind: u32,
) -> Result<(), LayoutError> {
    match magic {
        MAGIC => {}
        0 => return Err(LayoutError::Uninitialized),
        m if m == MAGIC.swap_bytes() => return Err(LayoutError::ForeignByteOrder),
        found => return Err(LayoutError::BadMagic { found }),
    }
    if version != LAYOUT_VERSION {
        return Err(LayoutError::UnsupportedVersion {
            found: version,
            supported: LAYOUT_VERSION,
        });
    }
    if kind != expected_kind {
        return Err(LayoutError::WrongKind {
            found: kind,
            expected: expected_kind,
        });
    }
    Ok(())
}
