//! How the broadcast ring reaches its shared words: [`BroadcastRegion`], with the
//! production [`RawBroadcastRegion`] over the two segments in mapped memory (the
//! model checks implement it over loom's atomics).

use super::Policy;
use super::layout::{OldestLine, PositionLine, SubscriberEntry, TableLine};
use crate::sync::AtomicU64;

/// Access to a topic's lines, subscriber entries and data words.
///
/// # Safety
///
/// Implementors promise, for as long as the value (or any clone of it) lives:
/// - [`capacity`](Self::capacity), [`slots`](Self::slots),
///   [`policy`](Self::policy) always return the same values, the capacity a power
///   of two within [`MIN_BROADCAST_CAPACITY`](super::layout::MIN_BROADCAST_CAPACITY)
///   `..=`[`MAX_BROADCAST_CAPACITY`](super::layout::MAX_BROADCAST_CAPACITY), the
///   slots within `1..=`[`MAX_SUBSCRIBERS`](super::layout::MAX_SUBSCRIBERS);
/// - [`word`](Self::word) returns, for each `offset` below `capacity()` that is a
///   multiple of 8, always the same atomic, and [`entry`](Self::entry) for each
///   slot below `slots()` always the same entry; the lines likewise.
///
/// The ring calls `word` and `entry` only with such arguments.
pub unsafe trait BroadcastRegion {
    /// The publisher's position line.
    fn positions(&self) -> &PositionLine;
    /// The publisher's oldest-position and claim line.
    fn oldest(&self) -> &OldestLine;
    /// The table's shared counters.
    fn table(&self) -> &TableLine;
    /// Subscriber entry `slot`.
    fn entry(&self, slot: usize) -> &SubscriberEntry;
    /// Subscriber slots (trusted: never re-read from shared memory).
    fn slots(&self) -> usize;
    /// Size of the data region in bytes (trusted).
    fn capacity(&self) -> usize;
    /// The topic's policy (trusted).
    fn policy(&self) -> Policy;
    /// The data word at `offset` in the data region.
    fn word(&self, offset: usize) -> &AtomicU64;
}

#[cfg(not(shmring_loom))]
pub use raw::{BroadcastConfig, BroadcastInfo, BroadcastSubscriberInfo, RawBroadcastRegion};

#[cfg(not(shmring_loom))]
mod raw {
    use core::ptr::{self, NonNull};

    use super::{BroadcastRegion, Policy};
    use crate::broadcast::layout::{
        BROADCAST_DATA_OFFSET, BROADCAST_FRAME_HEADER_SIZE, DataSegmentHeader, ENTRIES_OFFSET,
        ENTRY_SIZE, FRAME_SEQ_OFFSET, MAX_SUBSCRIBERS, OldestLine, POLICY_STRICT, PositionLine,
        SEQ_UNPUBLISHED, SubscriberEntry, TableLine, TableSegmentHeader, broadcast_max_message_len,
        check_broadcast_capacity, data_segment_size, table_segment_size,
    };
    use crate::error::LayoutError;
    use crate::layout::{
        LAYOUT_VERSION, MAGIC, RING_KIND_BROADCAST, RING_KIND_BROADCAST_TABLE, check_flags,
        check_identity, check_memory, u32_at, u64_at,
    };
    use crate::sync::{AtomicU64, Ordering};

    /// What a topic is made with.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BroadcastConfig {
        /// Size of the data region, a power of two.
        pub capacity: usize,
        /// Subscriber slots, `1..=MAX_SUBSCRIBERS`.
        pub slots: usize,
        /// The policy.
        pub policy: Policy,
        /// Gated: milliseconds a live subscriber may hold the publisher back
        /// without moving before it is cut off (ignored under the other policies).
        pub cut_off_after_ms: u32,
        /// Protocol flags ([`FLAG_ASYMMETRIC_FENCES`](crate::layout::FLAG_ASYMMETRIC_FENCES)).
        pub flags: u32,
        /// The pair's identity, random at create.
        pub topic_id: u64,
    }

    impl BroadcastConfig {
        fn check(&self) -> Result<(), LayoutError> {
            check_broadcast_capacity(self.capacity)?;
            check_slots(self.slots as u64)?;
            check_flags(self.flags)
        }
    }

    fn check_slots(slots: u64) -> Result<(), LayoutError> {
        if (1..=MAX_SUBSCRIBERS as u64).contains(&slots) {
            Ok(())
        } else {
            Err(LayoutError::OutOfRange {
                field: "subscriber slots",
                found: slots,
                min: 1,
                max: MAX_SUBSCRIBERS as u64,
            })
        }
    }

    fn expect(field: &'static str, found: u64, expected: u64) -> Result<(), LayoutError> {
        if found == expected {
            Ok(())
        } else {
            Err(LayoutError::HeaderMismatch {
                field,
                found,
                expected,
            })
        }
    }

    /// A topic's two segments in raw memory: the production [`BroadcastRegion`].
    ///
    /// Made by [`init`](Self::init) (write both fresh layouts) or
    /// [`attach`](Self::attach) (validate a pair another process wrote). It keeps
    /// the pointers and its own copies of what it validated; it never re-reads
    /// either header. The data segment may be mapped read-only in a subscriber:
    /// a subscriber only loads from it.
    #[derive(Debug, Clone)]
    pub struct RawBroadcastRegion {
        data: NonNull<DataSegmentHeader>,
        table: NonNull<TableSegmentHeader>,
        config: BroadcastConfig,
    }

    // SAFETY: a RawBroadcastRegion is two pointers to memory the caller of `init` /
    // `attach` promised stays valid; every access through it is atomic, so moving
    // or sharing it across threads is sound.
    unsafe impl Send for RawBroadcastRegion {}
    // SAFETY: as for Send: `&RawBroadcastRegion` hands out atomics only.
    unsafe impl Sync for RawBroadcastRegion {}

    /// The data header's fields, each read once.
    struct DataFields {
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
        policy: u32,
        slots: u32,
        cut_off_after_ms: u32,
        topic_id: u64,
    }

    impl DataFields {
        /// Checks, in order: magic, version, kind, capacity, the derived fields,
        /// flags, policy, slots, then that `len` bytes hold the segment.
        fn validate(&self, len: u64) -> Result<BroadcastConfig, LayoutError> {
            check_identity(self.magic, self.version, self.kind, RING_KIND_BROADCAST)?;
            let capacity =
                usize::try_from(self.capacity).map_err(|_| LayoutError::InvalidCapacity {
                    capacity: self.capacity,
                })?;
            check_broadcast_capacity(capacity)?;
            let size = data_segment_size(capacity) as u64;
            expect(
                "data_offset",
                self.data_offset,
                BROADCAST_DATA_OFFSET as u64,
            )?;
            expect("segment_size", self.segment_size, size)?;
            expect(
                "frame_header_size",
                self.frame_header_size.into(),
                BROADCAST_FRAME_HEADER_SIZE as u64,
            )?;
            expect("frame_align", self.frame_align.into(), 8)?;
            expect(
                "max_message_len",
                self.max_message_len,
                broadcast_max_message_len(capacity) as u64,
            )?;
            check_flags(self.flags)?;
            let policy = Policy::from_word(self.policy).ok_or(LayoutError::OutOfRange {
                field: "policy",
                found: self.policy.into(),
                min: 0,
                max: POLICY_STRICT.into(),
            })?;
            check_slots(self.slots.into())?;
            if len < size {
                return Err(LayoutError::TooSmall {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    required: size,
                });
            }
            Ok(BroadcastConfig {
                capacity,
                slots: self.slots as usize,
                policy,
                cut_off_after_ms: self.cut_off_after_ms,
                flags: self.flags,
                topic_id: self.topic_id,
            })
        }
    }

    /// The table header's fields, each read once.
    struct TableFields {
        magic: u64,
        version: u32,
        kind: u32,
        capacity: u64,
        slots: u32,
        policy: u32,
        segment_size: u64,
        topic_id: u64,
    }

    impl TableFields {
        /// Checks, in order: magic, version, kind, then that capacity, slots,
        /// policy, size and topic id match the data segment's `config`, then that
        /// `len` bytes hold the table.
        fn validate(&self, config: &BroadcastConfig, len: u64) -> Result<(), LayoutError> {
            check_identity(
                self.magic,
                self.version,
                self.kind,
                RING_KIND_BROADCAST_TABLE,
            )?;
            expect("table capacity", self.capacity, config.capacity as u64)?;
            expect("table slots", self.slots.into(), config.slots as u64)?;
            expect(
                "table policy",
                self.policy.into(),
                config.policy.word().into(),
            )?;
            let table_size = table_segment_size(config.slots) as u64;
            expect("table segment_size", self.segment_size, table_size)?;
            expect("table topic_id", self.topic_id, config.topic_id)?;
            if len < table_size {
                return Err(LayoutError::TooSmall {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    required: table_size,
                });
            }
            Ok(())
        }
    }

    /// What copies of a topic's two headers say, without mapping them: the
    /// validated configuration and a snapshot of the shared words (each a hint:
    /// they move while they are read; the liveness locks decide who is alive).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BroadcastInfo {
        /// What the topic was made with, as validated.
        pub config: BroadcastConfig,
        /// End of the published frames.
        pub write_position: u64,
        /// Messages published so far.
        pub write_seq: u64,
        /// The oldest intact frame.
        pub oldest_position: u64,
        /// Gated: where `oldest_position` is about to go.
        pub intent: u64,
        /// The publisher's claim word: 0 free, else its token.
        pub publisher_owner: u32,
        /// Publisher claims so far (wrapping).
        pub publisher_claims: u32,
        /// The publisher's pid as it wrote it (a hint), 0 if none.
        pub publisher_pid: u32,
        /// One more at each publisher claim (wrapping).
        pub epoch: u32,
        /// Joins so far (wrapping).
        pub joins: u32,
        /// Subscribers registered on their `data_signal`.
        pub waiters: u32,
        /// The gated publisher's eventcount word.
        pub space_signal: u32,
        /// Subscribers joined and not left (a dead one counts until its slot is freed).
        pub subscribers: u32,
    }

    impl BroadcastInfo {
        /// Validates the data header in `data` (a copy of the data segment's first
        /// [`BROADCAST_DATA_OFFSET`] bytes or more, of a segment `data_len` long)
        /// and the table header in `table` (the first [`ENTRIES_OFFSET`] bytes or
        /// more, of `table_len`) as [`RawBroadcastRegion::attach`] does, and reads
        /// the shared words. For tools that list segments (read with `pread`).
        ///
        /// # Errors
        /// As [`RawBroadcastRegion::attach`]; [`LayoutError::TooSmall`] if a copy
        /// is shorter than its header.
        pub fn parse(
            data: &[u8],
            data_len: u64,
            table: &[u8],
            table_len: u64,
        ) -> Result<Self, LayoutError> {
            for (bytes, required) in [(data, BROADCAST_DATA_OFFSET), (table, ENTRIES_OFFSET)] {
                if bytes.len() < required {
                    return Err(LayoutError::TooSmall {
                        len: bytes.len(),
                        required: required as u64,
                    });
                }
            }
            let config = DataFields {
                magic: u64_at(data, 0),
                version: u32_at(data, 8),
                kind: u32_at(data, 12),
                capacity: u64_at(data, 16),
                data_offset: u64_at(data, 24),
                segment_size: u64_at(data, 32),
                frame_header_size: u32_at(data, 40),
                frame_align: u32_at(data, 44),
                max_message_len: u64_at(data, 48),
                flags: u32_at(data, 56),
                policy: u32_at(data, 60),
                slots: u32_at(data, 64),
                cut_off_after_ms: u32_at(data, 68),
                topic_id: u64_at(data, 72),
            }
            .validate(data_len)?;
            TableFields {
                magic: u64_at(table, 0),
                version: u32_at(table, 8),
                kind: u32_at(table, 12),
                capacity: u64_at(table, 16),
                slots: u32_at(table, 24),
                policy: u32_at(table, 28),
                segment_size: u64_at(table, 32),
                topic_id: u64_at(table, 40),
            }
            .validate(&config, table_len)?;
            Ok(Self {
                config,
                write_position: u64_at(data, 128),
                write_seq: u64_at(data, 136),
                oldest_position: u64_at(data, 256),
                intent: u64_at(data, 264),
                publisher_owner: u32_at(data, 272),
                publisher_claims: u32_at(data, 276),
                publisher_pid: u32_at(data, 280),
                epoch: u32_at(data, 284),
                joins: u32_at(table, 128),
                waiters: u32_at(table, 132),
                space_signal: u32_at(table, 136),
                subscribers: u32_at(table, 140),
            })
        }
    }

    /// What a copy of one subscriber entry (its [`ENTRY_SIZE`] bytes at
    /// `ENTRIES_OFFSET + ENTRY_SIZE * slot` of the table) says; every word a hint.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BroadcastSubscriberInfo {
        /// Gated: the position below which it has read everything.
        pub cursor: u64,
        /// The claim word: 0 free, else the holder's token.
        pub owner: u32,
        /// Claims of the slot (wrapping).
        pub claims: u32,
        /// The holder's pid as it wrote it, 0 if none.
        pub pid: u32,
        /// Its eventcount word.
        pub data_signal: u32,
        /// Non-zero once a gated publisher cut it off.
        pub cut_off: u32,
    }

    impl BroadcastSubscriberInfo {
        /// Reads an entry from `bytes` (missing bytes read as 0).
        pub fn parse(bytes: &[u8]) -> Self {
            Self {
                cursor: u64_at(bytes, 0),
                owner: u32_at(bytes, 8),
                claims: u32_at(bytes, 12),
                pid: u32_at(bytes, 16),
                data_signal: u32_at(bytes, 20),
                cut_off: u32_at(bytes, 24),
            }
        }
    }

    impl RawBroadcastRegion {
        /// Writes a fresh topic: the data segment in `data_len` bytes at `data`, the
        /// subscriber table in `table_len` bytes at `table`. Zeroes both, writes
        /// the headers, and stores each magic last (Release), the table's first.
        ///
        /// # Errors
        /// [`LayoutError::InvalidCapacity`], [`LayoutError::OutOfRange`] (slots),
        /// [`LayoutError::HeaderMismatch`] (an unknown flag),
        /// [`LayoutError::Misaligned`] or [`LayoutError::TooSmall`].
        ///
        /// # Safety
        /// - both pointers are valid for reads and writes of their lengths for as
        ///   long as the returned region, its clones and every handle made from
        ///   them live, and the two ranges do not overlap;
        /// - nothing else touches those bytes while `init` runs;
        /// - afterwards this process touches them only through shmring handles.
        pub unsafe fn init(
            data: *mut u8,
            data_len: usize,
            table: *mut u8,
            table_len: usize,
            config: BroadcastConfig,
        ) -> Result<Self, LayoutError> {
            config.check()?;
            let data_size = data_segment_size(config.capacity);
            let table_size = table_segment_size(config.slots);
            check_memory(data, data_len, data_size as u64)?;
            check_memory(table, table_len, table_size as u64)?;
            let cut_off_after_ms = match config.policy {
                Policy::Gated => config.cut_off_after_ms,
                Policy::Lossy | Policy::Strict => 0,
            };
            // SAFETY: both ranges are within the caller's lengths (checked),
            // writable, and untouched by anyone else during init.
            unsafe {
                ptr::write_bytes(data, 0, data_size);
                ptr::write_bytes(table, 0, table_size);
            }
            let d = data.cast::<DataSegmentHeader>();
            let t = table.cast::<TableSegmentHeader>();
            // SAFETY: aligned (checked) and in bounds; plain integers written through
            // raw pointers before the magic words publish them.
            unsafe {
                let h = &raw mut (*t).header.0;
                (&raw mut (*h).layout_version).write(LAYOUT_VERSION);
                (&raw mut (*h).ring_kind).write(RING_KIND_BROADCAST_TABLE);
                (&raw mut (*h).capacity).write(config.capacity as u64);
                (&raw mut (*h).slots).write(config.slots as u32);
                (&raw mut (*h).policy).write(config.policy.word());
                (&raw mut (*h).segment_size).write(table_size as u64);
                (&raw mut (*h).topic_id).write(config.topic_id);
                // SYNC: Release pairs with the Acquire load of `magic` in `attach`.
                (*h).magic.store(MAGIC, Ordering::Release);

                let h = &raw mut (*d).header.0;
                (&raw mut (*h).layout_version).write(LAYOUT_VERSION);
                (&raw mut (*h).ring_kind).write(RING_KIND_BROADCAST);
                (&raw mut (*h).capacity).write(config.capacity as u64);
                (&raw mut (*h).data_offset).write(BROADCAST_DATA_OFFSET as u64);
                (&raw mut (*h).segment_size).write(data_size as u64);
                (&raw mut (*h).frame_header_size).write(BROADCAST_FRAME_HEADER_SIZE as u32);
                (&raw mut (*h).frame_align).write(8);
                (&raw mut (*h).max_message_len)
                    .write(broadcast_max_message_len(config.capacity) as u64);
                (&raw mut (*h).flags).write(config.flags);
                (&raw mut (*h).policy).write(config.policy.word());
                (&raw mut (*h).slots).write(config.slots as u32);
                (&raw mut (*h).cut_off_after_ms).write(cut_off_after_ms);
                (&raw mut (*h).topic_id).write(config.topic_id);
                // The first frame's sequence word: unpublished, to carry 1.
                data.add(BROADCAST_DATA_OFFSET + FRAME_SEQ_OFFSET)
                    .cast::<u64>()
                    .write(SEQ_UNPUBLISHED | 1);
                // SYNC: Release pairs with the Acquire load of `magic` in `attach`.
                (*h).magic.store(MAGIC, Ordering::Release);
            }
            Ok(Self {
                // SAFETY: checked non-null in `check_memory`.
                data: unsafe { NonNull::new_unchecked(d) },
                // SAFETY: as above.
                table: unsafe { NonNull::new_unchecked(t) },
                config: BroadcastConfig {
                    cut_off_after_ms,
                    ..config
                },
            })
        }

        /// Validates the pair found at `data` and `table` and returns a region over
        /// it. Each header field is read once; the data header is checked as the
        /// SPSC header is (magic, version, kind, capacity, derived fields, flags,
        /// then policy and slots), then the table's header against it (magic,
        /// version, kind, then capacity, slots, policy, size and topic id must
        /// match).
        ///
        /// # Errors
        /// A distinct [`LayoutError`] for each mismatch, with the value found.
        ///
        /// # Safety
        /// As for [`init`](Self::init), except that other processes use the memory;
        /// `data` may be mapped read-only if this process only subscribes.
        pub unsafe fn attach(
            data: *mut u8,
            data_len: usize,
            table: *mut u8,
            table_len: usize,
        ) -> Result<Self, LayoutError> {
            check_memory(data, data_len, BROADCAST_DATA_OFFSET as u64)?;
            check_memory(table, table_len, ENTRIES_OFFSET as u64)?;
            let d = data.cast::<DataSegmentHeader>();
            let t = table.cast::<TableSegmentHeader>();
            // SAFETY: aligned, in bounds (checked); the magic is an atomic, the
            // other fields are read once each with volatile reads into copies.
            let fields = unsafe {
                let h = &raw const (*d).header.0;
                DataFields {
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
                    policy: (&raw const (*h).policy).read_volatile(),
                    slots: (&raw const (*h).slots).read_volatile(),
                    cut_off_after_ms: (&raw const (*h).cut_off_after_ms).read_volatile(),
                    topic_id: (&raw const (*h).topic_id).read_volatile(),
                }
            };
            let config = fields.validate(data_len as u64)?;
            // SAFETY: as above, for the table's header.
            let (magic, version, kind, capacity, slots, policy, size, topic_id) = unsafe {
                let h = &raw const (*t).header.0;
                (
                    // SYNC: Acquire pairs with the Release store of `magic` in `init`.
                    (*h).magic.load(Ordering::Acquire),
                    (&raw const (*h).layout_version).read_volatile(),
                    (&raw const (*h).ring_kind).read_volatile(),
                    (&raw const (*h).capacity).read_volatile(),
                    (&raw const (*h).slots).read_volatile(),
                    (&raw const (*h).policy).read_volatile(),
                    (&raw const (*h).segment_size).read_volatile(),
                    (&raw const (*h).topic_id).read_volatile(),
                )
            };
            TableFields {
                magic,
                version,
                kind,
                capacity,
                slots,
                policy,
                segment_size: size,
                topic_id,
            }
            .validate(&config, table_len as u64)?;
            Ok(Self {
                // SAFETY: checked non-null in `check_memory`.
                data: unsafe { NonNull::new_unchecked(d) },
                // SAFETY: as above.
                table: unsafe { NonNull::new_unchecked(t) },
                config,
            })
        }

        /// What the topic was made with (as validated).
        #[must_use]
        pub fn config(&self) -> BroadcastConfig {
            self.config
        }

        /// Whether the topic's waiters use asymmetric fences.
        #[must_use]
        pub fn flags(&self) -> u32 {
            self.config.flags
        }

        /// Start of the data region (for reads and writes in place).
        pub(crate) fn data_ptr(&self) -> *mut u8 {
            self.data_start()
        }

        fn data_start(&self) -> *mut u8 {
            // SAFETY: the data region follows the header lines, within the
            // segment (checked at init/attach).
            unsafe { self.data.as_ptr().cast::<u8>().add(BROADCAST_DATA_OFFSET) }
        }
    }

    // SAFETY: the capacity, slots and policy are copies validated once; `word`
    // and `entry` compute fixed addresses within the two segments (the caller of
    // `init`/`attach` promised them valid) for the offsets the ring passes.
    unsafe impl BroadcastRegion for RawBroadcastRegion {
        #[inline]
        fn positions(&self) -> &PositionLine {
            // SAFETY: within the live, validated data segment.
            unsafe { &self.data.as_ref().positions }
        }

        #[inline]
        fn oldest(&self) -> &OldestLine {
            // SAFETY: as above.
            unsafe { &self.data.as_ref().oldest }
        }

        #[inline]
        fn table(&self) -> &TableLine {
            // SAFETY: within the live, validated table segment.
            unsafe { &self.table.as_ref().line }
        }

        #[inline]
        fn entry(&self, slot: usize) -> &SubscriberEntry {
            debug_assert!(slot < self.config.slots);
            // SAFETY: slot < slots (the ring's promise): the entry lies within the
            // table (its size checked at init/attach), 128-aligned.
            unsafe {
                &*self
                    .table
                    .as_ptr()
                    .cast::<u8>()
                    .add(ENTRIES_OFFSET + slot * ENTRY_SIZE)
                    .cast::<SubscriberEntry>()
            }
        }

        #[inline]
        fn slots(&self) -> usize {
            self.config.slots
        }

        #[inline]
        fn capacity(&self) -> usize {
            self.config.capacity
        }

        #[inline]
        fn policy(&self) -> Policy {
            self.config.policy
        }

        #[inline]
        fn word(&self, offset: usize) -> &AtomicU64 {
            debug_assert!(offset < self.config.capacity && offset % 8 == 0);
            // SAFETY: offset < capacity, a multiple of 8 (the ring's promise), and
            // the region starts 128-aligned: an aligned u64 inside the data region,
            // only ever accessed atomically.
            unsafe { &*self.data_start().add(offset).cast::<AtomicU64>() }
        }
    }
}
