//! How the ring reaches its shared words and data bytes.
//!
//! The algorithm in [`crate::spsc`] is written once against [`Region`]. In
//! production the region is [`RawRegion`]: the segment layout in raw (usually
//! shared, mapped) memory. In the model checks it is a loom-owned structure whose
//! atomics are loom's and whose byte accesses loom checks for races.

use super::layout::Control;
use crate::sync::AtomicU32;

/// Access to a ring's control block, frame words and data bytes.
///
/// # Safety
///
/// Implementors promise, for as long as the value (or any clone of it) lives:
/// - [`capacity`](Region::capacity) always returns the same power of two within
///   [`MIN_CAPACITY`](crate::MIN_CAPACITY)`..=`[`MAX_CAPACITY`](crate::MAX_CAPACITY);
/// - [`data`](Region::data) always returns the same pointer, aligned to 8, valid for
///   reads and writes of `capacity()` bytes from any thread;
/// - [`frame_word`](Region::frame_word) and [`run_word`](Region::run_word) return,
///   for each `offset` below `capacity()` that is a multiple of 8, always the same
///   atomic (two different ones);
/// - [`control`](Region::control) always returns the same control block.
///
/// The ring calls `frame_word` only with such offsets and touches only
/// `data()..data() + capacity()`.
pub unsafe trait Region {
    /// The producer, consumer and signal lines.
    fn control(&self) -> &Control;

    /// Size of the data region in bytes (trusted: never re-read from shared memory).
    fn capacity(&self) -> usize;

    /// The state word of the frame header at `offset` in the data region.
    fn frame_word(&self, offset: usize) -> &AtomicU32;

    /// The run word of the frame header at `offset` (the header's second `u32`,
    /// meaningful in run frames only: see [`FRAME_RUN`](crate::spsc::layout::FRAME_RUN)).
    fn run_word(&self, offset: usize) -> &AtomicU32;

    /// Start of the data region.
    fn data(&self) -> *mut u8;

    /// Called as the ring starts and finishes writing `len` data bytes at `offset`
    /// (for a grant: when it is made and when it is committed). Raw memory does
    /// nothing; the loom region records a write to check for races.
    #[inline]
    fn will_write(&self, offset: usize, len: usize) {
        let _ = (offset, len);
    }

    /// Called as the ring starts and finishes reading `len` data bytes at `offset`
    /// (for a borrowed message: when it is borrowed and when it is released).
    #[inline]
    fn will_read(&self, offset: usize, len: usize) {
        let _ = (offset, len);
    }
}

#[cfg(not(shmring_loom))]
pub use raw::{RawRegion, SegmentInfo};

#[cfg(not(shmring_loom))]
mod raw {
    use core::ptr::{self, NonNull};

    use super::Region;
    use crate::error::LayoutError;
    use crate::layout::{
        LAYOUT_VERSION, MAGIC, RING_KIND_SPSC, check_flags, check_identity, check_memory, u32_at,
        u64_at,
    };
    use crate::spsc::layout::{
        CONSUMER_LINE_OFFSET, Control, DATA_OFFSET, FRAME_ALIGN, FRAME_HEADER_SIZE,
        PRODUCER_LINE_OFFSET, SegmentHeader, check_capacity, max_message_len,
    };
    use crate::sync::{AtomicU32, Ordering};

    /// A ring's layout in raw memory: the production [`Region`].
    ///
    /// Made by [`RawRegion::init`] (write a fresh layout) or [`RawRegion::attach`]
    /// (validate one another process wrote). It holds a pointer and the capacity it
    /// validated; it never re-reads the header, so a peer that rewrites the header
    /// later cannot change the bounds the ring checks against.
    ///
    /// Clones are cheap and refer to the same memory; the claim words in the segment
    /// keep a second producer or consumer out.
    #[derive(Debug, Clone)]
    pub struct RawRegion {
        segment: NonNull<SegmentHeader>,
        capacity: usize,
        flags: u32,
    }

    // SAFETY: a RawRegion is a pointer to memory the caller of `init`/`attach`
    // promised stays valid; every access through it is atomic or confined by the
    // ring protocol to one side, so moving it or sharing it across threads is sound.
    unsafe impl Send for RawRegion {}
    // SAFETY: as for Send: `&RawRegion` only hands out atomics and the data pointer.
    unsafe impl Sync for RawRegion {}

    /// The header's fields, each read once from the segment.
    struct HeaderFields {
        magic: u64,
        version: u32,
        kind: u32,
        capacity: u64,
        data_offset: u64,
        segment_size: u64,
        frame_header_size: u32,
        frame_align: u32,
        max_message_len: u64,
        flags: u32,
    }

    impl HeaderFields {
        /// Checks, in order: magic (zero, byte-swapped or other), layout version,
        /// ring kind, capacity, every derived field, then that `len` bytes hold the
        /// whole layout. Returns the capacity.
        fn validate(&self, len: u64) -> Result<usize, LayoutError> {
            check_identity(self.magic, self.version, self.kind, RING_KIND_SPSC)?;
            let capacity = self.capacity;
            let capacity_usize =
                usize::try_from(capacity).map_err(|_| LayoutError::InvalidCapacity { capacity })?;
            check_capacity(capacity_usize)
                .map_err(|_| LayoutError::InvalidCapacity { capacity })?;
            let expect = |field, found: u64, expected: u64| {
                if found == expected {
                    Ok(())
                } else {
                    Err(LayoutError::HeaderMismatch {
                        field,
                        found,
                        expected,
                    })
                }
            };
            let size = DATA_OFFSET as u64 + capacity;
            expect("data_offset", self.data_offset, DATA_OFFSET as u64)?;
            expect("segment_size", self.segment_size, size)?;
            expect(
                "frame_header_size",
                self.frame_header_size.into(),
                FRAME_HEADER_SIZE as u64,
            )?;
            expect("frame_align", self.frame_align.into(), FRAME_ALIGN as u64)?;
            expect(
                "max_message_len",
                self.max_message_len,
                max_message_len(capacity_usize) as u64,
            )?;
            check_flags(self.flags)?;
            if len < size {
                return Err(LayoutError::TooSmall {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    required: size,
                });
            }
            Ok(capacity_usize)
        }
    }

    /// What a copy of a segment's first bytes says about it, without mapping it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SegmentInfo {
        /// Size of the data region.
        pub capacity: usize,
        /// The producer's published position (a hint: it may lag by one commit).
        pub write_position: u64,
        /// The consumer's published position.
        pub read_position: u64,
        /// The producer's claim word: 0 when free.
        pub producer_owner: u32,
        /// The consumer's claim word: 0 when free.
        pub consumer_owner: u32,
        /// The producer's pid word (a hint, written by `shmring` after its claim,
        /// 0 after its release).
        pub producer_pid: u32,
        /// The consumer's pid word, as the producer's.
        pub consumer_pid: u32,
        /// The header's protocol flags.
        pub flags: u32,
    }

    impl SegmentInfo {
        /// Validates the header in `bytes`, a copy of a segment's first
        /// [`DATA_OFFSET`] (or more) bytes, of a segment `segment_len` bytes long, as
        /// [`RawRegion::attach`] would, and reads the shared positions. For tools
        /// that list segments (read with `pread`, no mapping needed).
        ///
        /// # Errors
        /// As [`RawRegion::attach`]; [`LayoutError::TooSmall`] if `bytes` is
        /// shorter than [`DATA_OFFSET`].
        pub fn parse(bytes: &[u8], segment_len: u64) -> Result<Self, LayoutError> {
            if bytes.len() < DATA_OFFSET {
                return Err(LayoutError::TooSmall {
                    len: bytes.len(),
                    required: DATA_OFFSET as u64,
                });
            }
            let u64_at = |at| u64_at(bytes, at);
            let u32_at = |at| u32_at(bytes, at);
            let fields = HeaderFields {
                magic: u64_at(0),
                version: u32_at(8),
                kind: u32_at(12),
                capacity: u64_at(16),
                data_offset: u64_at(24),
                segment_size: u64_at(32),
                frame_header_size: u32_at(40),
                frame_align: u32_at(44),
                max_message_len: u64_at(48),
                flags: u32_at(56),
            };
            let capacity = fields.validate(segment_len)?;
            Ok(Self {
                capacity,
                write_position: u64_at(PRODUCER_LINE_OFFSET),
                read_position: u64_at(CONSUMER_LINE_OFFSET),
                producer_owner: u32_at(PRODUCER_LINE_OFFSET + 8),
                consumer_owner: u32_at(CONSUMER_LINE_OFFSET + 8),
                producer_pid: u32_at(PRODUCER_LINE_OFFSET + 16),
                consumer_pid: u32_at(CONSUMER_LINE_OFFSET + 16),
                flags: fields.flags,
            })
        }
    }

    impl RawRegion {
        /// Writes a fresh, empty ring of `capacity` data bytes into `len` bytes at
        /// `ptr`: zeroes the control lines and the data region, writes the header and
        /// stores the magic word last (Release), so an attacher that sees the magic
        /// (Acquire) sees the whole header.
        ///
        /// # Errors
        /// [`LayoutError::InvalidCapacity`], [`LayoutError::Misaligned`] (not on a
        /// 128-byte boundary) or [`LayoutError::TooSmall`].
        ///
        /// # Safety
        /// - `ptr` is valid for reads and writes of `len` bytes for as long as the
        ///   returned region, its clones, and every handle made from them live;
        /// - nothing else reads or writes those bytes while `init` runs;
        /// - afterwards, this process touches them only through shmring handles
        ///   (other processes are outside this contract: see the threat model in
        ///   ARCHITECTURE.md).
        pub unsafe fn init(ptr: *mut u8, len: usize, capacity: usize) -> Result<Self, LayoutError> {
            // SAFETY: the caller's contract is ours.
            unsafe { Self::init_with_flags(ptr, len, capacity, 0) }
        }

        /// As [`RawRegion::init`], with protocol `flags` in the header
        /// ([`FLAG_ASYMMETRIC_FENCES`](crate::layout::FLAG_ASYMMETRIC_FENCES)).
        ///
        /// # Errors
        /// As [`RawRegion::init`]; [`LayoutError::HeaderMismatch`] for an unknown flag.
        ///
        /// # Safety
        /// As for [`RawRegion::init`].
        pub unsafe fn init_with_flags(
            ptr: *mut u8,
            len: usize,
            capacity: usize,
            flags: u32,
        ) -> Result<Self, LayoutError> {
            check_capacity(capacity)?;
            check_flags(flags)?;
            let size = DATA_OFFSET + capacity;
            check_memory(ptr, len, size as u64)?;
            // SAFETY: `ptr..ptr + size` is within the caller's `len` bytes (checked
            // above), writable, and not accessed by anyone else during init.
            unsafe { ptr::write_bytes(ptr, 0, size) };
            let segment = ptr.cast::<SegmentHeader>();
            // SAFETY: aligned (checked) and in bounds; the fields are plain integers
            // written through raw pointers before the magic publishes them.
            unsafe {
                let h = &raw mut (*segment).header.0;
                (&raw mut (*h).layout_version).write(LAYOUT_VERSION);
                (&raw mut (*h).ring_kind).write(RING_KIND_SPSC);
                (&raw mut (*h).capacity).write(capacity as u64);
                (&raw mut (*h).data_offset).write(DATA_OFFSET as u64);
                (&raw mut (*h).segment_size).write(size as u64);
                (&raw mut (*h).frame_header_size).write(FRAME_HEADER_SIZE as u32);
                (&raw mut (*h).frame_align).write(FRAME_ALIGN as u32);
                (&raw mut (*h).max_message_len).write(max_message_len(capacity) as u64);
                (&raw mut (*h).flags).write(flags);
                // SYNC: Release pairs with the Acquire load of `magic` in `attach`:
                // an attacher that sees the magic sees every field written above.
                (*h).magic.store(MAGIC, Ordering::Release);
            }
            Ok(Self {
                // SAFETY: checked non-null in `check_memory`.
                segment: unsafe { NonNull::new_unchecked(segment) },
                capacity,
                flags,
            })
        }

        /// Validates the layout found in `len` bytes at `ptr` and returns a region
        /// over it.
        ///
        /// Each header field is read once; the checks, in order: alignment, room for
        /// the header, magic (zero, byte-swapped or other), layout version, ring kind,
        /// capacity, then every derived field, then that the memory holds the whole
        /// layout. The capacity is copied into the region and never read again.
        ///
        /// # Errors
        /// A distinct [`LayoutError`] for each mismatch, with the value found.
        ///
        /// # Safety
        /// As for [`RawRegion::init`], except that other processes may be using the
        /// memory (that is the point): `ptr` is valid for reads and writes of `len`
        /// bytes for as long as the region and its handles live, and this process
        /// touches them only through shmring handles.
        pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<Self, LayoutError> {
            check_memory(ptr, len, DATA_OFFSET as u64)?;
            let segment = ptr.cast::<SegmentHeader>();
            // SAFETY: aligned, in bounds (checked); the magic is an atomic, and the
            // other fields are read with volatile reads, once each, into copies:
            // another process may write them at any time and we must not assume
            // they stay put.
            let fields = unsafe {
                let h = &raw const (*segment).header.0;
                HeaderFields {
                    // SYNC: Acquire pairs with the Release store of `magic` in `init`.
                    magic: (*h).magic.load(Ordering::Acquire),
                    version: (&raw const (*h).layout_version).read_volatile(),
                    kind: (&raw const (*h).ring_kind).read_volatile(),
                    capacity: (&raw const (*h).capacity).read_volatile(),
                    data_offset: (&raw const (*h).data_offset).read_volatile(),
                    segment_size: (&raw const (*h).segment_size).read_volatile(),
                    frame_header_size: (&raw const (*h).frame_header_size).read_volatile(),
                    frame_align: (&raw const (*h).frame_align).read_volatile(),
                    max_message_len: (&raw const (*h).max_message_len).read_volatile(),
                    flags: (&raw const (*h).flags).read_volatile(),
                }
            };
            let capacity = fields.validate(len as u64)?;
            Ok(Self {
                // SAFETY: checked non-null in `check_memory`.
                segment: unsafe { NonNull::new_unchecked(segment) },
                capacity,
                flags: fields.flags,
            })
        }

        /// Size of the data region.
        pub fn capacity(&self) -> usize {
            self.capacity
        }

        /// The header's protocol flags, as validated at `init` or `attach`.
        pub fn flags(&self) -> u32 {
            self.flags
        }

        /// Largest message this ring takes.
        pub fn max_message_len(&self) -> usize {
            max_message_len(self.capacity)
        }

        /// Bytes the layout spans (header lines plus data region).
        pub fn segment_size(&self) -> usize {
            DATA_OFFSET + self.capacity
        }
    }

    // SAFETY: the capacity was validated (power of two in range) and is never
    // re-read; `init`/`attach`'s contracts keep `DATA_OFFSET + capacity` bytes
    // valid; the data region starts at a 128-aligned address + 512, so every
    // 8-aligned offset below `capacity` holds an aligned 4-byte atomic.
    unsafe impl Region for RawRegion {
        #[inline]
        fn control(&self) -> &Control {
            // SAFETY: in bounds and aligned (see the impl's SAFETY); shared access
            // to atomics is always sound.
            unsafe { &(*self.segment.as_ptr()).control }
        }

        #[inline]
        fn capacity(&self) -> usize {
            self.capacity
        }

        #[inline]
        fn frame_word(&self, offset: usize) -> &AtomicU32 {
            debug_assert!(offset < self.capacity && offset % FRAME_ALIGN == 0);
            // SAFETY: the ring passes offsets below `capacity` and on the 8-byte grid
            // (the trait's contract), so the word is in bounds and aligned; the bytes
            // are only ever accessed as this atomic while they hold a frame header.
            unsafe { &*self.data().add(offset).cast::<AtomicU32>() }
        }

        #[inline]
        fn run_word(&self, offset: usize) -> &AtomicU32 {
            debug_assert!(offset < self.capacity && offset % FRAME_ALIGN == 0);
            // SAFETY: as in `frame_word`: 4 bytes further, still within the 8-byte
            // header, which lies within the data region (capacity is a multiple of 8).
            unsafe { &*self.data().add(offset + 4).cast::<AtomicU32>() }
        }

        #[inline]
        fn data(&self) -> *mut u8 {
            // SAFETY: DATA_OFFSET is within the validated segment.
            unsafe { self.segment.as_ptr().cast::<u8>().add(DATA_OFFSET) }
        }
    }
}
