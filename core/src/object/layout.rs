//! The segment layout of events and semaphores (object layout version 1): a header
//! line and a line of futex words, 256 bytes.
//!
//! ```text
//! offset  size  what
//!      0     8  magic            crate::layout::MAGIC, written last (Release)
//!      8     4  layout_version   OBJECT_LAYOUT_VERSION (1)
//!     12     4  kind             OBJECT_KIND_EVENT (3) or OBJECT_KIND_SEMAPHORE (4)
//!     16     4  object_size      OBJECT_SIZE (256)
//!     20     4  max_count        semaphore: its maximum count; event: 0
//!     24     4  flags            0 (no flag is defined; others are refused)
//!     28   100  reserved         zero
//!    128     4  word             event: notification sequence; semaphore: count
//!    132     4  waiters          callers registered to sleep on `word`
//!    136   120  reserved         zero
//! ```
//!
//! The kind sits where a ring's `ring_kind` does (offset 12), so a ring opened as
//! an object, or an event as a semaphore, is refused with
//! [`LayoutError::WrongKind`].

use crate::error::LayoutError;
use crate::layout::{LineAligned, MAGIC, OBJECT_KIND_EVENT, OBJECT_KIND_SEMAPHORE, u32_at, u64_at};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Version of the event and semaphore layout (independent of the rings'
/// [`LAYOUT_VERSION`](crate::LAYOUT_VERSION)). An object of any other version is
/// refused with [`LayoutError::UnsupportedVersion`], which names both.
pub const OBJECT_LAYOUT_VERSION: u32 = 1;
/// Bytes an event or semaphore segment spans: two 128-byte lines.
pub const OBJECT_SIZE: usize = 256;
/// Offset of the futex word (the event's sequence, the semaphore's count).
pub const OBJECT_WORD_OFFSET: usize = 128;
/// Offset of the waiter count.
pub const OBJECT_WAITERS_OFFSET: usize = 132;
/// The largest maximum count of a semaphore (`i32::MAX`): a count word with the
/// sign bit set is never valid, so a hostile value cannot pass for a count.
pub const SEMAPHORE_MAX_LIMIT: u32 = i32::MAX as u32;

/// The header line of an event or semaphore. Every field but `magic` is written
/// once before `magic` is stored (Release) and never changes; [`ObjectLayout::attach`]
/// reads each once, after an Acquire load of `magic`. Atomics (loaded `Relaxed`)
/// rather than plain integers, so that a peer writing them concurrently is no data
/// race.
#[derive(Debug)]
#[repr(C)]
pub struct ObjectHeader {
    magic: AtomicU64,
    layout_version: AtomicU32,
    kind: AtomicU32,
    object_size: AtomicU32,
    max_count: AtomicU32,
    flags: AtomicU32,
}

/// The futex line: the words the event and semaphore protocols run on.
#[derive(Debug)]
#[repr(C)]
pub struct ObjectWords {
    /// The futex word: the event's sequence or the semaphore's count.
    pub word: AtomicU32,
    /// How many callers are registered to sleep on `word` (wrapping): a notifier
    /// or poster skips its wake-up when it reads zero.
    pub waiters: AtomicU32,
}

/// An event or semaphore as it lies in its segment.
#[derive(Debug)]
#[repr(C)]
pub struct ObjectLayout {
    header: LineAligned<ObjectHeader>,
    words: LineAligned<ObjectWords>,
}

// The layout is a contract with other processes and with C: pin every offset.
// (Under loom the atomics are loom's and the structs are never placed in shared
// memory, so the sizes differ and are not checked.)
#[cfg(not(shmring_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ObjectLayout>() == OBJECT_SIZE);
    assert!(align_of::<ObjectLayout>() == 128);
    assert!(offset_of!(ObjectLayout, header) == 0);
    assert!(offset_of!(ObjectLayout, words) == OBJECT_WORD_OFFSET);
    assert!(offset_of!(ObjectHeader, magic) == 0);
    assert!(offset_of!(ObjectHeader, layout_version) == 8);
    assert!(offset_of!(ObjectHeader, kind) == 12);
    assert!(offset_of!(ObjectHeader, object_size) == 16);
    assert!(offset_of!(ObjectHeader, max_count) == 20);
    assert!(offset_of!(ObjectHeader, flags) == 24);
    assert!(offset_of!(ObjectWords, word) == 0);
    assert!(offset_of!(ObjectWords, waiters) == 4);
    assert!(OBJECT_WORD_OFFSET + 4 == OBJECT_WAITERS_OFFSET);
};

/// What [`ObjectLayout::attach`] read from a valid header, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// [`OBJECT_KIND_EVENT`] or [`OBJECT_KIND_SEMAPHORE`].
    pub kind: u32,
    /// The semaphore's maximum count (`1..=SEMAPHORE_MAX_LIMIT`); 0 for an event.
    pub max_count: u32,
}

impl ObjectLayout {
    /// An object whose every byte is zero, as a fresh mapping holds it: not yet
    /// initialised (for the model checks and tests; a segment is initialised in
    /// place with [`init`](Self::init)).
    pub fn new() -> Self {
        Self {
            header: LineAligned(ObjectHeader {
                magic: AtomicU64::new(0),
                layout_version: AtomicU32::new(0),
                kind: AtomicU32::new(0),
                object_size: AtomicU32::new(0),
                max_count: AtomicU32::new(0),
                flags: AtomicU32::new(0),
            }),
            words: LineAligned(ObjectWords {
                word: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
            }),
        }
    }

    /// The futex line.
    #[inline]
    pub fn words(&self) -> &ObjectWords {
        &self.words.0
    }

    /// Writes a fresh object of `kind` (its maximum count and first word) and
    /// publishes it by storing the magic last. Call only on an object nobody else
    /// reads yet (a fresh mapping: `attach` refuses it until the magic is stored).
    pub fn init(&self, kind: u32, max_count: u32, word: u32) {
        let header = &self.header.0;
        header
            .layout_version
            .store(OBJECT_LAYOUT_VERSION, Ordering::Relaxed);
        header.kind.store(kind, Ordering::Relaxed);
        header
            .object_size
            .store(OBJECT_SIZE as u32, Ordering::Relaxed);
        header.max_count.store(max_count, Ordering::Relaxed);
        header.flags.store(0, Ordering::Relaxed);
        self.words.0.word.store(word, Ordering::Relaxed);
        self.words.0.waiters.store(0, Ordering::Relaxed);
        // SYNC: Release pairs with the Acquire load of `magic` in `attach`: an
        // opener that sees the magic sees every field above.
        header.magic.store(MAGIC, Ordering::Release);
    }

    /// Checks each header field (each read once) and returns the kind and the
    /// maximum count, which the caller keeps: they are never read again.
    ///
    /// # Errors
    /// [`LayoutError::Uninitialized`] (magic zero), [`LayoutError::ForeignByteOrder`],
    /// [`LayoutError::BadMagic`], [`LayoutError::WrongKind`] (not an object),
    /// [`LayoutError::UnsupportedVersion`] (another object layout version: found
    /// and supported), [`LayoutError::HeaderMismatch`] (`object_size`,
    /// `max_count` or `flags`).
    pub fn attach(&self) -> Result<ObjectInfo, LayoutError> {
        let header = &self.header.0;
        ObjectFields {
            // SYNC: Acquire pairs with the Release store of `magic` in `init`.
            magic: header.magic.load(Ordering::Acquire),
            // Relaxed (every field below): ordered after the magic by its Acquire.
            version: header.layout_version.load(Ordering::Relaxed),
            kind: header.kind.load(Ordering::Relaxed),
            size: header.object_size.load(Ordering::Relaxed),
            max_count: header.max_count.load(Ordering::Relaxed),
            flags: header.flags.load(Ordering::Relaxed),
        }
        .validate()
    }
}

/// An object header's fields, each read once.
struct ObjectFields {
    magic: u64,
    version: u32,
    kind: u32,
    size: u32,
    max_count: u32,
    flags: u32,
}

impl ObjectFields {
    /// Checks, in order: magic, kind, version, size, maximum count, flags.
    fn validate(&self) -> Result<ObjectInfo, LayoutError> {
        let Self {
            magic,
            version,
            kind,
            size,
            max_count,
            flags,
        } = *self;
        if magic == 0 {
            return Err(LayoutError::Uninitialized);
        }
        if magic == MAGIC.swap_bytes() {
            return Err(LayoutError::ForeignByteOrder);
        }
        if magic != MAGIC {
            return Err(LayoutError::BadMagic { found: magic });
        }
        if kind != OBJECT_KIND_EVENT && kind != OBJECT_KIND_SEMAPHORE {
            return Err(LayoutError::WrongKind {
                found: kind,
                expected: OBJECT_KIND_EVENT,
            });
        }
        if version != OBJECT_LAYOUT_VERSION {
            return Err(LayoutError::UnsupportedVersion {
                found: version,
                supported: OBJECT_LAYOUT_VERSION,
            });
        }
        if size != OBJECT_SIZE as u32 {
            return Err(LayoutError::HeaderMismatch {
                field: "object_size",
                found: size.into(),
                expected: OBJECT_SIZE as u64,
            });
        }
        let max_ok = match kind {
            OBJECT_KIND_SEMAPHORE => (1..=SEMAPHORE_MAX_LIMIT).contains(&max_count),
            _ => max_count == 0,
        };
        if !max_ok {
            return Err(LayoutError::HeaderMismatch {
                field: "max_count",
                found: max_count.into(),
                expected: if kind == OBJECT_KIND_SEMAPHORE {
                    SEMAPHORE_MAX_LIMIT.into()
                } else {
                    0
                },
            });
        }
        if flags != 0 {
            return Err(LayoutError::HeaderMismatch {
                field: "flags",
                found: flags.into(),
                expected: 0,
            });
        }
        Ok(ObjectInfo { kind, max_count })
    }
}

/// What a copy of an event's or semaphore's [`OBJECT_SIZE`] bytes says, without
/// mapping it: the validated header and a snapshot of its two words (hints: they
/// move while they are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSnapshot {
    /// The validated kind and maximum count.
    pub info: ObjectInfo,
    /// The futex word: the event's sequence, the semaphore's count.
    pub word: u32,
    /// Callers registered to sleep on `word` (wrapping).
    pub waiters: u32,
}

impl ObjectSnapshot {
    /// Validates the header in `bytes` (read with `pread`) of a segment
    /// `segment_len` bytes long, as [`ObjectLayout::attach`] does (and that the
    /// segment holds the whole object), and reads the words. For tools that list
    /// segments.
    ///
    /// # Errors
    /// As [`ObjectLayout::attach`]; [`LayoutError::TooSmall`] if `bytes` or the
    /// segment is shorter than [`OBJECT_SIZE`].
    pub fn parse(bytes: &[u8], segment_len: u64) -> Result<Self, LayoutError> {
        if bytes.len() < OBJECT_SIZE || segment_len < OBJECT_SIZE as u64 {
            return Err(LayoutError::TooSmall {
                len: bytes
                    .len()
                    .min(usize::try_from(segment_len).unwrap_or(usize::MAX)),
                required: OBJECT_SIZE as u64,
            });
        }
        let info = ObjectFields {
            magic: u64_at(bytes, 0),
            version: u32_at(bytes, 8),
            kind: u32_at(bytes, 12),
            size: u32_at(bytes, 16),
            max_count: u32_at(bytes, 20),
            flags: u32_at(bytes, 24),
        }
        .validate()?;
        Ok(Self {
            info,
            word: u32_at(bytes, OBJECT_WORD_OFFSET),
            waiters: u32_at(bytes, OBJECT_WAITERS_OFFSET),
        })
    }
}

impl Default for ObjectLayout {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use super::*;

    fn made(kind: u32, max: u32) -> ObjectLayout {
        let object = ObjectLayout::new();
        object.init(kind, max, 0);
        object
    }

    #[test]
    fn a_fresh_object_attaches_with_its_kind_and_maximum() {
        assert_eq!(
            made(OBJECT_KIND_SEMAPHORE, 5).attach(),
            Ok(ObjectInfo {
                kind: OBJECT_KIND_SEMAPHORE,
                max_count: 5
            })
        );
        assert_eq!(
            made(OBJECT_KIND_EVENT, 0).attach(),
            Ok(ObjectInfo {
                kind: OBJECT_KIND_EVENT,
                max_count: 0
            })
        );
        assert_eq!(
            ObjectLayout::new().attach(),
            Err(LayoutError::Uninitialized)
        );
    }

    #[test]
    fn a_peer_of_another_object_version_is_refused_naming_both() {
        let object = made(OBJECT_KIND_EVENT, 0);
        object.header.layout_version.store(2, Ordering::Relaxed);
        let err = object.attach().unwrap_err();
        assert_eq!(
            err,
            LayoutError::UnsupportedVersion {
                found: 2,
                supported: OBJECT_LAYOUT_VERSION
            }
        );
        extern crate std;
        use std::string::ToString;
        assert_eq!(
            err.to_string(),
            "incompatible layout version 2 (this build supports 1)"
        );
    }

    #[test]
    fn hostile_header_fields_are_refused_each_with_its_error() {
        let object = made(OBJECT_KIND_SEMAPHORE, 3);
        object
            .header
            .magic
            .store(MAGIC.swap_bytes(), Ordering::Relaxed);
        assert_eq!(object.attach(), Err(LayoutError::ForeignByteOrder));
        object.header.magic.store(7, Ordering::Relaxed);
        assert_eq!(object.attach(), Err(LayoutError::BadMagic { found: 7 }));

        let object = made(1, 3);
        assert_eq!(
            object.attach(),
            Err(LayoutError::WrongKind {
                found: 1,
                expected: OBJECT_KIND_EVENT
            })
        );

        let object = made(OBJECT_KIND_SEMAPHORE, 3);
        object.header.object_size.store(4096, Ordering::Relaxed);
        assert!(matches!(
            object.attach(),
            Err(LayoutError::HeaderMismatch {
                field: "object_size",
                found: 4096,
                ..
            })
        ));

        for max in [0, SEMAPHORE_MAX_LIMIT + 1, u32::MAX] {
            let object = made(OBJECT_KIND_SEMAPHORE, max);
            assert!(
                matches!(
                    object.attach(),
                    Err(LayoutError::HeaderMismatch { field: "max_count", found, .. })
                        if found == u64::from(max)
                ),
                "max {max}"
            );
        }
        let object = made(OBJECT_KIND_EVENT, 1);
        assert!(matches!(
            object.attach(),
            Err(LayoutError::HeaderMismatch {
                field: "max_count",
                ..
            })
        ));

        let object = made(OBJECT_KIND_EVENT, 0);
        object.header.flags.store(1, Ordering::Relaxed);
        assert!(matches!(
            object.attach(),
            Err(LayoutError::HeaderMismatch {
                field: "flags",
                found: 1,
                ..
            })
        ));
    }
}
