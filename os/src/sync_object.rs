//! What events and semaphores share: their segment layout (a header line and a line
//! of futex words), its validation, creating and opening it (with the
//! [`SegmentOptions`] every segment has), and their waits.
//!
//! ```text
//! offset  size  what
//!      0     8  magic            shmring_core::layout::MAGIC, written last (Release)
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

use std::fmt;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use memmap2::MmapRaw;
use shmring_core::LayoutError;
use shmring_core::layout::{LineAligned, MAGIC, OBJECT_KIND_EVENT, OBJECT_KIND_SEMAPHORE};
use shmring_core::sync::{AtomicU32, AtomicU64};
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::segment::SegmentOptions;
use crate::segment::{Contents, Segment};

/// Version of the event and semaphore layout (independent of the ring's
/// [`LAYOUT_VERSION`](shmring_core::LAYOUT_VERSION)).
pub const OBJECT_LAYOUT_VERSION: u32 = 1;
/// Bytes an event or semaphore segment spans: two 128-byte lines.
pub const OBJECT_SIZE: usize = 256;
/// Offset of the futex word (the event's sequence, the semaphore's count).
pub(crate) const OBJECT_WORD_OFFSET: usize = 128;
/// Offset of the waiter count.
pub(crate) const OBJECT_WAITERS_OFFSET: usize = 132;
/// The largest maximum count of a semaphore (`i32::MAX`): a count word with the
/// sign bit set is never valid, so a hostile value cannot pass for a count.
pub const SEMAPHORE_MAX_LIMIT: u32 = i32::MAX as u32;

/// The header line of an event or semaphore. Every field but `magic` is written
/// once before `magic` is stored (Release) and never changes; `attach` reads each
/// once, after an Acquire load of `magic`. Atomics (loaded `Relaxed`) rather than
/// plain integers, so that a peer writing them concurrently is no data race.
#[repr(C)]
struct ObjectHeader {
    magic: AtomicU64,
    layout_version: AtomicU32,
    kind: AtomicU32,
    object_size: AtomicU32,
    max_count: AtomicU32,
    flags: AtomicU32,
}

/// The futex line.
#[repr(C)]
pub(crate) struct ObjectWords {
    /// The futex word: the event's sequence or the semaphore's count.
    pub(crate) word: AtomicU32,
    /// How many callers are registered to sleep on `word` (wrapping): a notifier
    /// or poster skips its `FUTEX_WAKE` when it reads zero.
    pub(crate) waiters: AtomicU32,
}

#[repr(C)]
struct ObjectLayout {
    header: LineAligned<ObjectHeader>,
    words: LineAligned<ObjectWords>,
}

#[cfg(not(shmring_loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
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

/// A validated event or semaphore in a mapping: a pointer to its layout and the
/// header values read once at attach time.
pub(crate) struct ObjectView {
    layout: NonNull<ObjectLayout>,
    kind: u32,
    max_count: u32,
}

// SAFETY: the view only reaches shared memory through atomics (the header fields
// and the words), which any thread may use; the mapping it points into is owned by
// the Segment that owns the view, so it lives as long as the view.
unsafe impl Send for ObjectView {}
// SAFETY: as for Send: every access through a shared reference is atomic.
unsafe impl Sync for ObjectView {}

impl ObjectView {
    /// A view of the object in `map` whose header is still to be written (`init`)
    /// or read (`attach_object`): size and alignment checked.
    fn unchecked(map: &MmapRaw) -> std::result::Result<ObjectView, LayoutError> {
        Ok(ObjectView {
            layout: check_memory(map)?,
            kind: 0,
            max_count: 0,
        })
    }

    /// The object's layout: the one place its memory is reached.
    fn layout(&self) -> &ObjectLayout {
        // SAFETY: `layout` points to an ObjectLayout in bounds and aligned
        // (`check_memory` checked the mapping's size and alignment when the view
        // was made) in a mapping that outlives the view: the owning Segment keeps
        // it mapped while the view lives, and `init` and `attach_object` use their
        // view only while they borrow the mapping (the caller's contract). Only
        // atomics are reached through the reference, so a peer writing the words
        // concurrently is no data race.
        unsafe { self.layout.as_ref() }
    }

    /// The futex line.
    pub(crate) fn words(&self) -> &ObjectWords {
        &self.layout().words.0
    }

    /// The maximum count read from the header at attach time (0 for an event).
    pub(crate) fn max_count(&self) -> u32 {
        self.max_count
    }

    /// Writes a fresh object of `kind` into `map` (a new mapping of at least
    /// [`OBJECT_SIZE`] bytes that nobody else uses yet) and publishes it.
    pub(crate) fn init(
        map: &MmapRaw,
        kind: u32,
        max_count: u32,
        word: u32,
    ) -> std::result::Result<ObjectView, LayoutError> {
        // The mapping is fresh (zero-filled): nobody else reads it before `magic`.
        let view = ObjectView {
            kind,
            max_count,
            ..ObjectView::unchecked(map)?
        };
        let object = view.layout();
        let header = &object.header.0;
        header
            .layout_version
            .store(OBJECT_LAYOUT_VERSION, Ordering::Relaxed);
        header.kind.store(kind, Ordering::Relaxed);
        header
            .object_size
            .store(OBJECT_SIZE as u32, Ordering::Relaxed);
        header.max_count.store(max_count, Ordering::Relaxed);
        header.flags.store(0, Ordering::Relaxed);
        object.words.0.word.store(word, Ordering::Relaxed);
        object.words.0.waiters.store(0, Ordering::Relaxed);
        // SYNC: Release pairs with the Acquire load of `magic` in `attach`: an
        // opener that sees the magic sees every field above.
        header.magic.store(MAGIC, Ordering::Release);
        Ok(view)
    }
}

/// Size and alignment of the mapping.
fn check_memory(map: &MmapRaw) -> std::result::Result<NonNull<ObjectLayout>, LayoutError> {
    if map.len() < OBJECT_SIZE {
        return Err(LayoutError::TooSmall {
            len: map.len(),
            required: OBJECT_SIZE as u64,
        });
    }
    let ptr = map.as_mut_ptr();
    if ptr as usize % 128 != 0 {
        return Err(LayoutError::Misaligned {
            addr: ptr as usize,
            align: 128,
        });
    }
    NonNull::new(ptr.cast::<ObjectLayout>()).ok_or(LayoutError::Misaligned {
        addr: 0,
        align: 128,
    })
}

/// Checks each header field of the object at `map` (each read once).
fn attach_object(map: &MmapRaw) -> std::result::Result<ObjectView, LayoutError> {
    let view = ObjectView::unchecked(map)?;
    let header = &view.layout().header.0;
    // SYNC: Acquire pairs with the Release store of `magic` in `init`.
    let magic = header.magic.load(Ordering::Acquire);
    if magic == 0 {
        return Err(LayoutError::Uninitialized);
    }
    if magic == MAGIC.swap_bytes() {
        return Err(LayoutError::ForeignByteOrder);
    }
    if magic != MAGIC {
        return Err(LayoutError::BadMagic { found: magic });
    }
    let kind = header.kind.load(Ordering::Relaxed);
    let version = header.layout_version.load(Ordering::Relaxed);
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
    let size = header.object_size.load(Ordering::Relaxed);
    if size != OBJECT_SIZE as u32 {
        return Err(LayoutError::HeaderMismatch {
            field: "object_size",
            found: size.into(),
            expected: OBJECT_SIZE as u64,
        });
    }
    let max_count = header.max_count.load(Ordering::Relaxed);
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
    let flags = header.flags.load(Ordering::Relaxed);
    if flags != 0 {
        return Err(LayoutError::HeaderMismatch {
            field: "flags",
            found: flags.into(),
            expected: 0,
        });
    }
    Ok(ObjectView {
        kind,
        max_count,
        ..view
    })
}

impl Contents for ObjectView {
    const MIN_SIZE: u64 = OBJECT_SIZE as u64;
    const MAX_SIZE: u64 = OBJECT_SIZE as u64;

    unsafe fn attach(map: &MmapRaw) -> std::result::Result<Self, LayoutError> {
        attach_object(map)
    }

    fn summary(&self) -> (&'static str, u64) {
        ("kind", self.kind.into())
    }
}

/// A mapped event or semaphore segment, shared by the clones of one handle.
pub(crate) type ObjectSegment = Arc<Segment<ObjectView>>;

/// Creates a segment with a fresh object of `kind`.
pub(crate) fn create_object(
    options: &SegmentOptions,
    kind: u32,
    max_count: u32,
    word: u32,
) -> Result<ObjectSegment> {
    let init = |map: &MmapRaw, what: &str| {
        ObjectView::init(map, kind, max_count, word)
            .map_err(|e| crate::error::Error::layout(what, e))
    };
    Ok(Arc::new(Segment::create_with(options, OBJECT_SIZE, &init)?))
}

/// Opens an existing object, which must be of `kind`.
pub(crate) fn open_object(options: &SegmentOptions, kind: u32) -> Result<ObjectSegment> {
    check_kind(Segment::open_with(options)?, kind)
}

/// Opens the object behind a handed-over descriptor, which must be of `kind`.
pub(crate) fn open_object_fd(
    options: &SegmentOptions,
    fd: OwnedFd,
    kind: u32,
) -> Result<ObjectSegment> {
    check_kind(Segment::from_fd_with(fd, options)?, kind)
}

fn check_kind(segment: Segment<ObjectView>, kind: u32) -> Result<ObjectSegment> {
    let found = segment.contents().kind;
    if found != kind {
        return Err(crate::error::Error::layout(
            segment.describe(),
            LayoutError::WrongKind {
                found,
                expected: kind,
            },
        ));
    }
    Ok(Arc::new(segment))
}

/// `FUTEX_WAKE` of at most `count` waiters on `word` (shared, not private: the
/// waiters may be in other processes).
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32, count: i32) {
    crate::sys::futex::wake(word, count.max(0) as u32);
}

/// A registration in an object's waiter count, undone on drop.
pub(crate) struct Registered<'a>(&'a AtomicU32);

impl<'a> Registered<'a> {
    pub(crate) fn new(waiters: &'a AtomicU32) -> Self {
        // SYNC: SeqCst, with the waiter's SeqCst re-load of the word after it and
        // the notifier's SeqCst update of the word before its SeqCst load of
        // `waiters`: either the notifier sees this registration (and wakes), or
        // the waiter's re-load sees the update (and does not sleep).
        waiters.fetch_add(1, Ordering::SeqCst);
        Self(waiters)
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        // Wrapping: a hostile value only costs notifiers a useless FUTEX_WAKE.
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Describes a handle for `Debug`.
pub(crate) fn debug_object(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    segment: &ObjectSegment,
) -> fmt::Result {
    f.debug_struct(name)
        .field("what", &segment.describe())
        .field(
            "word",
            &segment.contents().words().word.load(Ordering::Relaxed),
        )
        .finish_non_exhaustive()
}
