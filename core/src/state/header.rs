//! The header both shared-state kinds share (line 0, bytes 0..128), and their
//! geometry: where the value lies and how long the segment is, from the value's
//! size and (for the mutex) its slots.
//!
//! ```text
//! offset size what
//!      0    8 magic           MAGIC, stored last at init (Release), loaded Acquire by attach
//!      8    4 layout_version  LAYOUT_VERSION (4)
//!     12    4 kind            STATE_KIND_MUTEX (7) or STATE_KIND_VALUE (8)
//!     16    4 flags           KNOWN_FLAGS only (FLAG_ASYMMETRIC_FENCES)
//!     20    4 value_size      1..=MAX_STATE_VALUE_SIZE
//!     24    4 slots           mutex: 1..=MAX_STATE_SLOTS; value: 0
//!     28    4 reserved        zero
//!     32    8 segment_size    the segment's length, checked against the mapping's
//!     40    8 type_tag        0: untyped bytes; else a fingerprint of the value's type
//!     48   80 reserved        zero
//! ```
//!
//! Every field but `magic` is written once before `magic` and never changes;
//! [`StateHeader::attach`] reads each once, validates it, and returns its own
//! copy ([`StateInfo`]), which the handles keep: the header is never read again.
//! The value area starts at [`StateGeometry::value_offset`] (a multiple of 128)
//! and spans `value_size` rounded up to 8 bytes: both protocols copy the value
//! as 64-bit atomic words. The design is `docs/design/shared-state.md`.

use crate::error::LayoutError;
use crate::layout::{
    LAYOUT_VERSION, MAGIC, STATE_KIND_MUTEX, STATE_KIND_VALUE, check_flags, check_identity, u32_at,
    u64_at,
};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Bytes of the common header line.
pub const STATE_HEADER_SIZE: usize = 128;
/// The largest value a shared state carries: 1 MiB.
pub const MAX_STATE_VALUE_SIZE: u32 = 1 << 20;
/// The most slots (handles at once) a shared mutex has.
pub const MAX_STATE_SLOTS: u32 = 64;
/// Where a kind's own line starts (the seqlock's words, the lock's words).
pub const STATE_CONTROL_OFFSET: usize = 128;
/// Where the mutex's slot table starts (one 128-byte entry per slot).
pub const STATE_TABLE_OFFSET: usize = 256;
/// Bytes of a mutex slot table entry.
pub const STATE_SLOT_SIZE: usize = 128;

/// The common header of a shared state, as it lies in its segment. Atomics
/// (loaded `Relaxed` after the `Acquire` of `magic`) rather than plain integers,
/// so that a peer writing them concurrently is no data race.
#[derive(Debug)]
#[repr(C)]
pub struct StateHeader {
    magic: AtomicU64,
    layout_version: AtomicU32,
    kind: AtomicU32,
    flags: AtomicU32,
    value_size: AtomicU32,
    slots: AtomicU32,
    reserved: AtomicU32,
    segment_size: AtomicU64,
    type_tag: AtomicU64,
}

// The layout is a contract with other processes and with C: pin every offset.
// (Under loom the atomics are loom's, never placed in shared memory.)
#[cfg(not(shmring_loom))]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(StateHeader, magic) == 0);
    assert!(offset_of!(StateHeader, layout_version) == 8);
    assert!(offset_of!(StateHeader, kind) == 12);
    assert!(offset_of!(StateHeader, flags) == 16);
    assert!(offset_of!(StateHeader, value_size) == 20);
    assert!(offset_of!(StateHeader, slots) == 24);
    assert!(offset_of!(StateHeader, reserved) == 28);
    assert!(offset_of!(StateHeader, segment_size) == 32);
    assert!(offset_of!(StateHeader, type_tag) == 40);
    assert!(core::mem::size_of::<StateHeader>() <= STATE_HEADER_SIZE);
};

/// The shape of a shared state: its kind, its value's size and (mutex) its
/// slots. Made only by [`StateGeometry::new`], which checks every range, so the
/// offsets it computes are in bounds and never overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateGeometry {
    kind: u32,
    value_size: u32,
    slots: u32,
}

impl StateGeometry {
    /// The geometry of a state of `kind` ([`STATE_KIND_MUTEX`] or
    /// [`STATE_KIND_VALUE`]) carrying `value_size` bytes, with `slots` handle
    /// slots (mutex: `1..=MAX_STATE_SLOTS`; value: 0).
    ///
    /// # Errors
    /// [`LayoutError::WrongKind`] for another kind; [`LayoutError::OutOfRange`]
    /// naming `value_size` or `slots`.
    pub fn new(kind: u32, value_size: u32, slots: u32) -> Result<Self, LayoutError> {
        let slot_range = match kind {
            STATE_KIND_MUTEX => 1..=MAX_STATE_SLOTS,
            STATE_KIND_VALUE => 0..=0,
            found => {
                return Err(LayoutError::WrongKind {
                    found,
                    expected: STATE_KIND_VALUE,
                });
            }
        };
        if !(1..=MAX_STATE_VALUE_SIZE).contains(&value_size) {
            return Err(LayoutError::OutOfRange {
                field: "value_size",
                found: value_size.into(),
                min: 1,
                max: MAX_STATE_VALUE_SIZE.into(),
            });
        }
        if !slot_range.contains(&slots) {
            return Err(LayoutError::OutOfRange {
                field: "slots",
                found: slots.into(),
                min: (*slot_range.start()).into(),
                max: (*slot_range.end()).into(),
            });
        }
        Ok(Self {
            kind,
            value_size,
            slots,
        })
    }

    /// The kind.
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// The value's size in bytes.
    pub fn value_size(&self) -> usize {
        self.value_size as usize
    }

    /// The mutex's slots (0 for a value).
    pub fn slots(&self) -> usize {
        self.slots as usize
    }

    /// Where the value starts: 256 for a value, `256 + 128 × slots` for a mutex
    /// (after its slot table). A multiple of 128.
    pub fn value_offset(&self) -> usize {
        STATE_TABLE_OFFSET + STATE_SLOT_SIZE * self.slots()
    }

    /// How many 64-bit words the value spans (`value_size` rounded up to 8).
    pub fn value_words(&self) -> usize {
        self.value_size().div_ceil(8)
    }

    /// The segment's length: the value's offset plus its words.
    pub fn segment_size(&self) -> usize {
        self.value_offset() + 8 * self.value_words()
    }

    /// The byte of the segment's file a liveness lock on mutex slot `slot` is
    /// taken on (its table entry's first byte); `None` past the table.
    pub fn slot_lock_byte(&self, slot: usize) -> Option<u64> {
        (slot < self.slots()).then(|| (STATE_TABLE_OFFSET + STATE_SLOT_SIZE * slot) as u64)
    }
}

/// What [`StateHeader::attach`] read from a valid header, once: the copy the
/// handles keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateInfo {
    /// The validated kind, value size and slots.
    pub geometry: StateGeometry,
    /// Protocol flags (a subset of [`KNOWN_FLAGS`](crate::layout::KNOWN_FLAGS)).
    pub flags: u32,
    /// 0 for untyped bytes; else the creator's fingerprint of the value's type,
    /// which a typed opener compares with its own.
    pub type_tag: u64,
}

impl StateHeader {
    /// A header whose every byte is zero, as a fresh mapping holds it (for the
    /// model checks and tests).
    pub fn new() -> Self {
        Self {
            magic: AtomicU64::new(0),
            layout_version: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            value_size: AtomicU32::new(0),
            slots: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            segment_size: AtomicU64::new(0),
            type_tag: AtomicU64::new(0),
        }
    }

    /// Writes every field but `magic`: the first half of a kind's init, which
    /// then writes its own words and calls [`publish`](Self::publish). Call only
    /// on a header nobody else reads yet (attach refuses it until the magic).
    ///
    /// # Errors
    /// [`LayoutError::HeaderMismatch`] (field `flags`) for an unknown flag.
    pub fn write(
        &self,
        geometry: &StateGeometry,
        flags: u32,
        type_tag: u64,
    ) -> Result<(), LayoutError> {
        check_flags(flags)?;
        // Relaxed (every store): published by the Release store of `magic`.
        self.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        self.kind.store(geometry.kind, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
        self.value_size
            .store(geometry.value_size, Ordering::Relaxed);
        self.slots.store(geometry.slots, Ordering::Relaxed);
        self.reserved.store(0, Ordering::Relaxed);
        self.segment_size
            .store(geometry.segment_size() as u64, Ordering::Relaxed);
        self.type_tag.store(type_tag, Ordering::Relaxed);
        Ok(())
    }

    /// Publishes the state: stores the magic, last.
    pub fn publish(&self) {
        // SYNC: Release pairs with the Acquire load of `magic` in `attach`: an
        // opener that sees the magic sees the header fields and the kind's words
        // written before it.
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// Reads each field once and validates it for a state of `kind` in a
    /// segment `segment_len` bytes long: magic, version (naming both on a
    /// mismatch), kind, flags, value size, slots, and `segment_size`, which must
    /// equal both what the geometry computes and `segment_len`.
    ///
    /// # Errors
    /// [`LayoutError::Uninitialized`], [`LayoutError::ForeignByteOrder`],
    /// [`LayoutError::BadMagic`], [`LayoutError::UnsupportedVersion`],
    /// [`LayoutError::WrongKind`], [`LayoutError::HeaderMismatch`] (`flags`,
    /// `segment_size`, `segment length`), [`LayoutError::OutOfRange`]
    /// (`value_size`, `slots`).
    pub fn attach(&self, kind: u32, segment_len: u64) -> Result<StateInfo, LayoutError> {
        StateFields {
            // SYNC: Acquire pairs with the Release store of `magic` in `publish`.
            magic: self.magic.load(Ordering::Acquire),
            // Relaxed (every field below): ordered after the magic by its Acquire.
            version: self.layout_version.load(Ordering::Relaxed),
            kind: self.kind.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed),
            value_size: self.value_size.load(Ordering::Relaxed),
            slots: self.slots.load(Ordering::Relaxed),
            segment_size: self.segment_size.load(Ordering::Relaxed),
            type_tag: self.type_tag.load(Ordering::Relaxed),
        }
        .validate(kind, segment_len)
    }
}

impl Default for StateHeader {
    fn default() -> Self {
        Self::new()
    }
}

/// A state header's fields, each read once.
struct StateFields {
    magic: u64,
    version: u32,
    kind: u32,
    flags: u32,
    value_size: u32,
    slots: u32,
    segment_size: u64,
    type_tag: u64,
}

impl StateFields {
    fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            magic: u64_at(bytes, 0),
            version: u32_at(bytes, 8),
            kind: u32_at(bytes, 12),
            flags: u32_at(bytes, 16),
            value_size: u32_at(bytes, 20),
            slots: u32_at(bytes, 24),
            segment_size: u64_at(bytes, 32),
            type_tag: u64_at(bytes, 40),
        }
    }

    fn validate(&self, kind: u32, segment_len: u64) -> Result<StateInfo, LayoutError> {
        check_identity(self.magic, self.version, self.kind, kind)?;
        check_flags(self.flags)?;
        let geometry = StateGeometry::new(kind, self.value_size, self.slots)?;
        let size = geometry.segment_size() as u64;
        if self.segment_size != size {
            return Err(LayoutError::HeaderMismatch {
                field: "segment_size",
                found: self.segment_size,
                expected: size,
            });
        }
        if segment_len != size {
            return Err(LayoutError::HeaderMismatch {
                field: "segment length",
                found: segment_len,
                expected: size,
            });
        }
        Ok(StateInfo {
            geometry,
            flags: self.flags,
            type_tag: self.type_tag,
        })
    }
}

impl StateInfo {
    /// Validates the header in `bytes` (a copy of a segment's first bytes, read
    /// with `pread`) of a segment `segment_len` bytes long, of either state kind,
    /// as [`StateHeader::attach`] does. For tools that list segments.
    ///
    /// # Errors
    /// As [`StateHeader::attach`] (a kind other than 7 and 8 is
    /// [`LayoutError::WrongKind`] naming [`STATE_KIND_VALUE`]);
    /// [`LayoutError::TooSmall`] if `bytes` is shorter than the header.
    pub fn parse(bytes: &[u8], segment_len: u64) -> Result<Self, LayoutError> {
        if bytes.len() < STATE_HEADER_SIZE {
            return Err(LayoutError::TooSmall {
                len: bytes.len(),
                required: STATE_HEADER_SIZE as u64,
            });
        }
        let fields = StateFields::from_bytes(bytes);
        let kind = match fields.kind {
            STATE_KIND_MUTEX => STATE_KIND_MUTEX,
            _ => STATE_KIND_VALUE,
        };
        fields.validate(kind, segment_len)
    }
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use super::*;
    use crate::layout::FLAG_ASYMMETRIC_FENCES;

    fn header_bytes(kind: u32, value_size: u32, slots: u32) -> ([u8; 128], u64) {
        let header = StateHeader::new();
        let geometry = StateGeometry::new(kind, value_size, slots).unwrap();
        header.write(&geometry, 0, 99).unwrap();
        header.publish();
        let mut bytes = [0u8; 128];
        // SAFETY: the header is 48 bytes of plain atomics, read as bytes after
        // every store (single-threaded).
        let raw = unsafe {
            core::slice::from_raw_parts(
                (&raw const header).cast::<u8>(),
                core::mem::size_of::<StateHeader>(),
            )
        };
        bytes[..raw.len()].copy_from_slice(raw);
        (bytes, geometry.segment_size() as u64)
    }

    #[test]
    fn geometry_places_the_value_after_the_table_and_rounds_to_words() {
        let value = StateGeometry::new(STATE_KIND_VALUE, 13, 0).unwrap();
        assert_eq!(value.value_offset(), 256);
        assert_eq!(value.value_words(), 2);
        assert_eq!(value.segment_size(), 272);
        assert_eq!(value.slot_lock_byte(0), None);
        let mutex = StateGeometry::new(STATE_KIND_MUTEX, 8, 3).unwrap();
        assert_eq!(mutex.value_offset(), 256 + 3 * 128);
        assert_eq!(mutex.segment_size(), 256 + 3 * 128 + 8);
        assert_eq!(mutex.slot_lock_byte(2), Some(256 + 256));
        assert_eq!(mutex.slot_lock_byte(3), None);
        let largest = StateGeometry::new(STATE_KIND_MUTEX, MAX_STATE_VALUE_SIZE, 64).unwrap();
        assert_eq!(
            largest.segment_size(),
            256 + 64 * 128 + MAX_STATE_VALUE_SIZE as usize
        );
    }

    #[test]
    fn geometry_refuses_sizes_slots_and_kinds_out_of_range() {
        for (kind, size, slots, field, found) in [
            (STATE_KIND_VALUE, 0, 0, "value_size", 0),
            (
                STATE_KIND_VALUE,
                MAX_STATE_VALUE_SIZE + 1,
                0,
                "value_size",
                1 << 20 | 1,
            ),
            (STATE_KIND_VALUE, 8, 1, "slots", 1),
            (STATE_KIND_MUTEX, 8, 0, "slots", 0),
            (STATE_KIND_MUTEX, 8, 65, "slots", 65),
        ] {
            assert!(
                matches!(
                    StateGeometry::new(kind, size, slots),
                    Err(LayoutError::OutOfRange { field: f, found: x, .. }) if f == field && x == found
                ),
                "{kind} {size} {slots}"
            );
        }
        assert_eq!(
            StateGeometry::new(3, 8, 0),
            Err(LayoutError::WrongKind {
                found: 3,
                expected: STATE_KIND_VALUE
            })
        );
    }

    #[test]
    fn a_written_header_attaches_and_parses_with_its_values() {
        let header = StateHeader::new();
        let geometry = StateGeometry::new(STATE_KIND_VALUE, 64, 0).unwrap();
        assert_eq!(
            header.attach(STATE_KIND_VALUE, 320),
            Err(LayoutError::Uninitialized)
        );
        header
            .write(&geometry, FLAG_ASYMMETRIC_FENCES, 0xabcd)
            .unwrap();
        header.publish();
        let info = header.attach(STATE_KIND_VALUE, 320).unwrap();
        assert_eq!(info.geometry, geometry);
        assert_eq!(
            (info.flags, info.type_tag),
            (FLAG_ASYMMETRIC_FENCES, 0xabcd)
        );
        assert_eq!(
            header.attach(STATE_KIND_MUTEX, 320),
            Err(LayoutError::WrongKind {
                found: STATE_KIND_VALUE,
                expected: STATE_KIND_MUTEX
            })
        );
        assert_eq!(
            header.attach(STATE_KIND_VALUE, 4096),
            Err(LayoutError::HeaderMismatch {
                field: "segment length",
                found: 4096,
                expected: 320
            })
        );
        let (bytes, len) = header_bytes(STATE_KIND_MUTEX, 24, 2);
        let parsed = StateInfo::parse(&bytes, len).unwrap();
        assert_eq!(parsed.geometry.slots(), 2);
        assert_eq!(parsed.type_tag, 99);
        assert!(matches!(
            StateInfo::parse(&bytes[..64], len),
            Err(LayoutError::TooSmall { len: 64, .. })
        ));
    }

    #[test]
    fn hostile_header_fields_are_refused_each_with_its_error() {
        let (good, len) = header_bytes(STATE_KIND_VALUE, 16, 0);
        let with = |at: usize, value: &[u8]| {
            let mut bytes = good;
            bytes[at..at + value.len()].copy_from_slice(value);
            StateInfo::parse(&bytes, len)
        };
        assert_eq!(
            with(0, &MAGIC.swap_bytes().to_ne_bytes()),
            Err(LayoutError::ForeignByteOrder)
        );
        assert_eq!(
            with(0, &7u64.to_ne_bytes()),
            Err(LayoutError::BadMagic { found: 7 })
        );
        assert_eq!(
            with(8, &3u32.to_ne_bytes()),
            Err(LayoutError::UnsupportedVersion {
                found: 3,
                supported: LAYOUT_VERSION
            })
        );
        assert_eq!(
            with(12, &2u32.to_ne_bytes()),
            Err(LayoutError::WrongKind {
                found: 2,
                expected: STATE_KIND_VALUE
            })
        );
        assert!(matches!(
            with(16, &2u32.to_ne_bytes()),
            Err(LayoutError::HeaderMismatch {
                field: "flags",
                found: 2,
                ..
            })
        ));
        assert!(matches!(
            with(20, &u32::MAX.to_ne_bytes()),
            Err(LayoutError::OutOfRange {
                field: "value_size",
                ..
            })
        ));
        assert!(matches!(
            with(24, &1u32.to_ne_bytes()),
            Err(LayoutError::OutOfRange {
                field: "slots",
                found: 1,
                ..
            })
        ));
        assert!(matches!(
            with(32, &u64::MAX.to_ne_bytes()),
            Err(LayoutError::HeaderMismatch {
                field: "segment_size",
                found: u64::MAX,
                ..
            })
        ));
        // A value size that moves the segment's end: the length no longer matches.
        assert!(matches!(
            with(20, &1000u32.to_ne_bytes()),
            Err(LayoutError::HeaderMismatch {
                field: "segment_size",
                ..
            })
        ));
    }
}
