//! What events and semaphores share: their segment (with the [`SegmentOptions`]
//! every segment has), creating and opening it. The layout, its validation and the
//! protocols on its words are core's ([`shmring_core::object`]).

use std::fmt;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use memmap2::MmapRaw;
use shmring_core::LayoutError;
use shmring_core::object::layout::ObjectLayout;
pub(crate) use shmring_core::object::layout::ObjectWords;
pub use shmring_core::object::layout::{OBJECT_LAYOUT_VERSION, OBJECT_SIZE};
use shmring_core::sync::Ordering;

use crate::error::Result;
use crate::segment::SegmentOptions;
use crate::segment::{Contents, Segment};

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
        self.layout().words()
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
        view.layout().init(kind, max_count, word);
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

/// Checks each header field of the object at `map` (each read once, by core).
fn attach_object(map: &MmapRaw) -> std::result::Result<ObjectView, LayoutError> {
    let view = ObjectView::unchecked(map)?;
    let info = view.layout().attach()?;
    Ok(ObjectView {
        kind: info.kind,
        max_count: info.max_count,
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
