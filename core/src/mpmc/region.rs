//! How the MPMC ring reaches its shared words and slot bytes.
//!
//! The algorithm in [`crate::mpmc`] is written once against [`MpmcRegion`]. In
//! production the region is [`RawMpmcRegion`]: the layout in raw (usually shared,
//! mapped) memory. In the model checks it is a loom-owned structure.

use super::layout::{EndpointEntry, MpmcControl, MpmcGeometry, SlotHeader};

/// Access to an MPMC ring's control lines, endpoint table, slot headers and slot
/// payload bytes.
///
/// # Safety
///
/// Implementors promise, for as long as the value (or any clone of it) lives:
/// - [`geometry`](MpmcRegion::geometry) always returns the same value;
/// - [`control`](MpmcRegion::control) always returns the same control block;
/// - [`entry`](MpmcRegion::entry) returns, for each index below
///   `geometry().endpoints()`, always the same entry;
/// - [`slot`](MpmcRegion::slot) returns, for each index below `geometry().slots()`,
///   always the same header;
/// - [`payload`](MpmcRegion::payload) returns, for each such index, always the same
///   pointer, valid for reads and writes of `geometry().slot_size()` bytes from any
///   thread, not overlapping any other slot's payload or any atomic above.
///
/// The ring calls these only with indices in range.
pub unsafe trait MpmcRegion {
    /// The ring's shape (trusted: never re-read from shared memory).
    fn geometry(&self) -> MpmcGeometry;

    /// The tail, head and signal lines.
    fn control(&self) -> &MpmcControl;

    /// Endpoint table entry `index`.
    fn entry(&self, index: usize) -> &EndpointEntry;

    /// The header of slot `index`.
    fn slot(&self, index: usize) -> &SlotHeader;

    /// The payload bytes of slot `index`.
    fn payload(&self, index: usize) -> *mut u8;

    /// Called as the ring starts writing slot `index`'s payload. Raw memory does
    /// nothing; the loom region records a write to check for races.
    #[inline]
    fn will_write(&self, index: usize) {
        let _ = index;
    }

    /// Called as the ring starts reading slot `index`'s payload.
    #[inline]
    fn will_read(&self, index: usize) {
        let _ = index;
    }
}

#[cfg(not(shmring_loom))]
pub use raw::{MpmcEntryInfo, MpmcInfo, RawMpmcRegion};

#[cfg(not(shmring_loom))]
mod raw {
    use core::ptr::{self, NonNull};

    use super::MpmcRegion;
    use crate::error::LayoutError;
    use crate::layout::{
        LAYOUT_VERSION, MAGIC, RING_KIND_MPMC, check_flags, check_identity, check_memory, u32_at,
        u64_at,
    };
    use crate::mpmc::MpmcStats;
    use crate::mpmc::layout::{
        ENDPOINT_ENTRY_SIZE, EndpointEntry, INTENT_NONE, MPMC_TABLE_OFFSET, MpmcControl,
        MpmcGeometry, MpmcLayoutError, MpmcSegmentHeader, SlotHeader,
    };
    use crate::sync::Ordering;

    /// An MPMC ring's layout in raw memory: the production [`MpmcRegion`].
    ///
    /// Made by [`RawMpmcRegion::init`] (write a fresh layout) or
    /// [`RawMpmcRegion::attach`] (validate one another process wrote). It holds a
    /// pointer and the shape it validated; it never re-reads the header.
    #[derive(Debug, Clone)]
    pub struct RawMpmcRegion {
        base: NonNull<u8>,
        geometry: MpmcGeometry,
        flags: u32,
        /// `base + geometry.slots_offset()` and `geometry.slot_stride()`, cached:
        /// the hot path finds a slot with one multiply-add.
        slots: NonNull<u8>,
        stride: usize,
    }

    // SAFETY: a pointer to memory the caller of `init`/`attach` promised stays
    // valid; every access through it is atomic, or to slot payload bytes that the
    // slot protocol gives to one endpoint at a time.
    unsafe impl Send for RawMpmcRegion {}
    // SAFETY: as for Send: `&RawMpmcRegion` only hands out atomics and pointers.
    unsafe impl Sync for RawMpmcRegion {}

    /// The header's fields, each read once from the segment.
    struct HeaderFields {
        magic: u64,
        version: u32,
        kind: u32,
        slot_count: u64,
        slot_size: u32,
        slot_stride: u32,
        endpoint_count: u32,
        entry_size: u32,
        table_offset: u64,
        slots_offset: u64,
        segment_size: u64,
        flags: u32,
    }

    impl HeaderFields {
        /// Checks, in order: magic, layout version, ring kind, slot count, slot
        /// size, endpoint count, every derived field, flags, then that `len` bytes
        /// hold the whole layout.
        fn validate(&self, len: u64) -> Result<MpmcGeometry, MpmcLayoutError> {
            check_identity(self.magic, self.version, self.kind, RING_KIND_MPMC)?;
            let slots = usize::try_from(self.slot_count).map_err(|_| {
                MpmcLayoutError::InvalidSlotCount {
                    slots: self.slot_count,
                }
            })?;
            let geometry =
                MpmcGeometry::new(slots, self.slot_size as usize, self.endpoint_count as usize)?;
            let expect = |field, found: u64, expected: u64| {
                if found == expected {
                    Ok(())
                } else {
                    Err(MpmcLayoutError::Segment(LayoutError::HeaderMismatch {
                        field,
                        found,
                        expected,
                    }))
                }
            };
            expect(
                "slot_stride",
                self.slot_stride.into(),
                geometry.slot_stride() as u64,
            )?;
            expect(
                "entry_size",
                self.entry_size.into(),
                ENDPOINT_ENTRY_SIZE as u64,
            )?;
            expect("table_offset", self.table_offset, MPMC_TABLE_OFFSET as u64)?;
            expect(
                "slots_offset",
                self.slots_offset,
                geometry.slots_offset() as u64,
            )?;
            let size = geometry.segment_size() as u64;
            expect("segment_size", self.segment_size, size)?;
            check_flags(self.flags)?;
            if len < size {
                return Err(LayoutError::TooSmall {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    required: size,
                }
                .into());
            }
            Ok(geometry)
        }
    }

    /// What a copy of an MPMC segment's first [`MPMC_TABLE_OFFSET`] (or more)
    /// bytes says about it, without mapping it: the validated shape and a
    /// snapshot of the shared counters (each a hint: they move while it is read).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MpmcInfo {
        /// The validated shape.
        pub geometry: MpmcGeometry,
        /// The header's protocol flags.
        pub flags: u32,
        /// Next position producers claim.
        pub tail: u64,
        /// Next position consumers claim.
        pub head: u64,
        /// The consumers' eventcount word.
        pub data_signal: u32,
        /// The producers' eventcount word.
        pub space_signal: u32,
        /// Dead producers' claims skipped by consumers.
        pub skipped: u64,
        /// Messages lost with dead consumers.
        pub lost: u64,
        /// Producer registrations, ever (wrapping).
        pub producers_registered: u64,
        /// Consumer registrations, ever (wrapping).
        pub consumers_registered: u64,
    }

    impl MpmcInfo {
        /// Validates the header in `bytes` (read with `pread`) of a segment
        /// `segment_len` bytes long, as [`RawMpmcRegion::attach`] does, and reads
        /// the counters. For tools that list segments.
        ///
        /// # Errors
        /// As [`RawMpmcRegion::attach`]; `Segment(TooSmall)` if `bytes` is shorter
        /// than [`MPMC_TABLE_OFFSET`].
        pub fn parse(bytes: &[u8], segment_len: u64) -> Result<Self, MpmcLayoutError> {
            if bytes.len() < MPMC_TABLE_OFFSET {
                return Err(LayoutError::TooSmall {
                    len: bytes.len(),
                    required: MPMC_TABLE_OFFSET as u64,
                }
                .into());
            }
            let fields = HeaderFields {
                magic: u64_at(bytes, 0),
                version: u32_at(bytes, 8),
                kind: u32_at(bytes, 12),
                slot_count: u64_at(bytes, 16),
                slot_size: u32_at(bytes, 24),
                slot_stride: u32_at(bytes, 28),
                endpoint_count: u32_at(bytes, 32),
                entry_size: u32_at(bytes, 36),
                table_offset: u64_at(bytes, 40),
                slots_offset: u64_at(bytes, 48),
                segment_size: u64_at(bytes, 56),
                flags: u32_at(bytes, 64),
            };
            let geometry = fields.validate(segment_len)?;
            Ok(Self {
                geometry,
                flags: fields.flags,
                tail: u64_at(bytes, 128),
                head: u64_at(bytes, 256),
                data_signal: u32_at(bytes, 384),
                space_signal: u32_at(bytes, 388),
                skipped: u64_at(bytes, 392),
                lost: u64_at(bytes, 400),
                producers_registered: u64_at(bytes, 408),
                consumers_registered: u64_at(bytes, 416),
            })
        }
    }

    /// What a copy of one endpoint entry (128 bytes at
    /// [`MpmcGeometry::entry_offset`]) says; every word a hint (the entry's lock
    /// decides whether its holder lives).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MpmcEntryInfo {
        /// The position looked at, claimed or last claimed; [`INTENT_NONE`] if none.
        pub intent: u64,
        /// The holder's token, 0 if free.
        pub owner: u32,
        /// 0 none, 1 producer, 2 consumer.
        pub role: u32,
        /// Registrations in this entry (wrapping).
        pub generation: u32,
        /// The holder's pid as it wrote it, 0 if none.
        pub pid: u32,
    }

    impl MpmcEntryInfo {
        /// Reads an entry from `bytes` (its 128 bytes; missing bytes read as 0).
        pub fn parse(bytes: &[u8]) -> Self {
            Self {
                intent: u64_at(bytes, 0),
                owner: u32_at(bytes, 8),
                role: u32_at(bytes, 12),
                generation: u32_at(bytes, 16),
                pid: u32_at(bytes, 20),
            }
        }
    }

    impl RawMpmcRegion {
        /// A region over `base`, whose layout has been checked to hold `geometry`.
        fn new(base: NonNull<u8>, geometry: MpmcGeometry, flags: u32) -> Self {
            // SAFETY: the slots start within the checked segment.
            let slots = unsafe { base.add(geometry.slots_offset()) };
            Self {
                base,
                geometry,
                flags,
                slots,
                stride: geometry.slot_stride(),
            }
        }

        /// Writes a fresh, empty MPMC ring into `len` bytes at `ptr`: zeroes the
        /// layout, marks every slot free for its first position and every entry
        /// free, writes the header and stores the magic word last (Release).
        ///
        /// # Errors
        /// [`MpmcLayoutError::InvalidSlotCount`], [`InvalidSlotSize`](MpmcLayoutError::InvalidSlotSize),
        /// [`InvalidEndpointCount`](MpmcLayoutError::InvalidEndpointCount),
        /// [`SegmentTooLarge`](MpmcLayoutError::SegmentTooLarge), or
        /// [`Segment`](MpmcLayoutError::Segment) with [`LayoutError::Misaligned`]
        /// (not on a 128-byte boundary) or [`LayoutError::TooSmall`].
        ///
        /// # Safety
        /// - `ptr` is valid for reads and writes of `len` bytes for as long as the
        ///   returned region, its clones, and every handle made from them live;
        /// - nothing else reads or writes those bytes while `init` runs;
        /// - afterwards, this process touches them only through shmring handles.
        pub unsafe fn init(
            ptr: *mut u8,
            len: usize,
            slots: usize,
            slot_size: usize,
            endpoints: usize,
        ) -> Result<Self, MpmcLayoutError> {
            // SAFETY: the caller's contract is ours.
            unsafe { Self::init_with_flags(ptr, len, slots, slot_size, endpoints, 0) }
        }

        /// As [`RawMpmcRegion::init`], with protocol `flags` in the header
        /// ([`FLAG_ASYMMETRIC_FENCES`](crate::FLAG_ASYMMETRIC_FENCES)).
        ///
        /// # Errors
        /// As [`RawMpmcRegion::init`]; `Segment(HeaderMismatch)` for an unknown flag.
        ///
        /// # Safety
        /// As for [`RawMpmcRegion::init`].
        pub unsafe fn init_with_flags(
            ptr: *mut u8,
            len: usize,
            slots: usize,
            slot_size: usize,
            endpoints: usize,
            flags: u32,
        ) -> Result<Self, MpmcLayoutError> {
            let geometry = MpmcGeometry::new(slots, slot_size, endpoints)?;
            check_flags(flags)?;
            let size = geometry.segment_size();
            check_memory(ptr, len, size as u64)?;
            // SAFETY: `ptr..ptr + size` is within the caller's `len` bytes (checked
            // above), writable, and not accessed by anyone else during init.
            unsafe { ptr::write_bytes(ptr, 0, size) };
            // SAFETY: non-null (checked in `check_memory`).
            let base = unsafe { NonNull::new_unchecked(ptr) };
            let region = Self::new(base, geometry, flags);
            // Nobody else sees the memory yet: Relaxed stores, published by the
            // Release store of the magic below.
            for index in 0..endpoints {
                region
                    .entry(index)
                    .intent
                    .store(INTENT_NONE, Ordering::Relaxed);
            }
            for index in 0..slots {
                region
                    .slot(index)
                    .state
                    .store(geometry.slot_state(index as u64, 0), Ordering::Relaxed);
            }
            let segment = ptr.cast::<MpmcSegmentHeader>();
            // SAFETY: aligned (checked) and in bounds; the fields are plain integers
            // written through raw pointers before the magic publishes them.
            unsafe {
                let h = &raw mut (*segment).header.0;
                (&raw mut (*h).layout_version).write(LAYOUT_VERSION);
                (&raw mut (*h).ring_kind).write(RING_KIND_MPMC);
                (&raw mut (*h).slot_count).write(slots as u64);
                (&raw mut (*h).slot_size).write(slot_size as u32);
                (&raw mut (*h).slot_stride).write(geometry.slot_stride() as u32);
                (&raw mut (*h).endpoint_count).write(endpoints as u32);
                (&raw mut (*h).entry_size).write(ENDPOINT_ENTRY_SIZE as u32);
                (&raw mut (*h).table_offset).write(MPMC_TABLE_OFFSET as u64);
                (&raw mut (*h).slots_offset).write(geometry.slots_offset() as u64);
                (&raw mut (*h).segment_size).write(size as u64);
                (&raw mut (*h).flags).write(flags);
                // SYNC: Release pairs with the Acquire load of `magic` in `attach`:
                // an attacher that sees the magic sees the header, the free slots
                // and the free entries written above.
                (*h).magic.store(MAGIC, Ordering::Release);
            }
            Ok(region)
        }

        /// Validates the MPMC layout found in `len` bytes at `ptr` and returns a
        /// region over it. Each header field is read once and checked (see
        /// docs/design/mpmc.md for the order); the shape is copied into the region and
        /// never read again.
        ///
        /// # Errors
        /// A distinct [`MpmcLayoutError`] for each mismatch, with the value found;
        /// an SPSC segment gives `Segment(WrongKind { found: 1, expected: 2 })`.
        ///
        /// # Safety
        /// As for [`RawMpmcRegion::init`], except that other processes may be using
        /// the memory: `ptr` is valid for reads and writes of `len` bytes for as long
        /// as the region and its handles live, and this process touches them only
        /// through shmring handles.
        pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<Self, MpmcLayoutError> {
            check_memory(ptr, len, MPMC_TABLE_OFFSET as u64)?;
            let segment = ptr.cast::<MpmcSegmentHeader>();
            // SAFETY: aligned and at least MPMC_TABLE_OFFSET bytes (checked). Volatile
            // reads, once each, into copies: another process may write them at any
            // time.
            let fields = unsafe {
                let h = &raw const (*segment).header.0;
                HeaderFields {
                    // SYNC: Acquire pairs with the Release store of `magic` in `init`.
                    magic: (*h).magic.load(Ordering::Acquire),
                    version: (&raw const (*h).layout_version).read_volatile(),
                    kind: (&raw const (*h).ring_kind).read_volatile(),
                    slot_count: (&raw const (*h).slot_count).read_volatile(),
                    slot_size: (&raw const (*h).slot_size).read_volatile(),
                    slot_stride: (&raw const (*h).slot_stride).read_volatile(),
                    endpoint_count: (&raw const (*h).endpoint_count).read_volatile(),
                    entry_size: (&raw const (*h).entry_size).read_volatile(),
                    table_offset: (&raw const (*h).table_offset).read_volatile(),
                    slots_offset: (&raw const (*h).slots_offset).read_volatile(),
                    segment_size: (&raw const (*h).segment_size).read_volatile(),
                    flags: (&raw const (*h).flags).read_volatile(),
                }
            };
            let geometry = fields.validate(len as u64)?;
            // SAFETY: checked non-null in `check_memory`.
            let base = unsafe { NonNull::new_unchecked(ptr) };
            Ok(Self::new(base, geometry, fields.flags))
        }

        /// The header's protocol flags, as validated at `init` or `attach`.
        pub fn flags(&self) -> u32 {
            self.flags
        }

        /// Bytes the layout spans.
        pub fn segment_size(&self) -> usize {
            self.geometry.segment_size()
        }

        /// The recovery statistics.
        pub fn stats(&self) -> MpmcStats {
            MpmcStats::read(self.control())
        }
    }

    // SAFETY: the geometry was validated and is never re-read; `init`/`attach`'s
    // contracts keep `segment_size()` bytes valid; the base is 128-aligned, entries
    // are 128 bytes from offset 512, slots start on a multiple of 128 with an
    // 8-multiple stride, so every atomic handed out is in bounds and aligned, and
    // payloads (after each 8-byte slot header, `slot_size` bytes, within the
    // stride) do not overlap anything else.
    unsafe impl MpmcRegion for RawMpmcRegion {
        #[inline]
        fn geometry(&self) -> MpmcGeometry {
            self.geometry
        }

        #[inline]
        fn control(&self) -> &MpmcControl {
            // SAFETY: in bounds and aligned (see the impl's SAFETY); shared access
            // to atomics is always sound.
            unsafe { &(*self.base.as_ptr().cast::<MpmcSegmentHeader>()).control }
        }

        #[inline]
        fn entry(&self, index: usize) -> &EndpointEntry {
            debug_assert!(index < self.geometry.endpoints());
            // SAFETY: the ring passes indices below the endpoint count (trait
            // contract): in bounds and 128-aligned.
            unsafe {
                &*self
                    .base
                    .as_ptr()
                    .add(self.geometry.entry_offset(index))
                    .cast::<EndpointEntry>()
            }
        }

        #[inline]
        fn slot(&self, index: usize) -> &SlotHeader {
            debug_assert!(index < self.geometry.slots());
            // SAFETY: the ring passes indices below the slot count: in bounds and
            // 8-aligned.
            unsafe {
                &*self
                    .slots
                    .as_ptr()
                    .add(index * self.stride)
                    .cast::<SlotHeader>()
            }
        }

        #[inline]
        fn payload(&self, index: usize) -> *mut u8 {
            debug_assert!(index < self.geometry.slots());
            // SAFETY: as for `slot`: the payload follows the header within the stride.
            unsafe {
                self.slots
                    .as_ptr()
                    .add(index * self.stride + super::super::layout::SLOT_HEADER_SIZE)
            }
        }
    }
}
