//! What every shmring segment shares: its first words (the magic, the layout
//! version and the kind), the protocol flags, the alignment, and the 128-byte line
//! each group of shared words sits alone on.
//!
//! After its first 16 bytes each kind has a layout of its own: the SPSC ring's in
//! [`crate::spsc::layout`], the MPMC ring's in [`crate::mpmc::layout`], the named
//! events' and semaphores' in [`crate::object::layout`]
//! (`docs/design/events-and-semaphores.md`).

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
