//! The one conversion of each `shmring_core` ring error into this crate's errors.
//! The segment is named by `what`, copied only when the error is a corruption.
//! The endpoints call these and match nothing of core's errors themselves, except
//! the outcomes that steer a loop (a full ring waits, an empty one probes the peer).

use shmring_core::{
    ClaimError, Corruption, LayoutError, MpmcCorruption, PopError, PushError, ReadError, WaitError,
};

use super::operation::{SegmentCorrupted, TryRecvError, TrySendError};
use super::{Corrupted, Error, Role};

impl From<Corruption> for Corrupted {
    fn from(c: Corruption) -> Self {
        Corrupted::Ring(c)
    }
}

impl From<MpmcCorruption> for Corrupted {
    fn from(c: MpmcCorruption) -> Self {
        Corrupted::Mpmc(c)
    }
}

impl From<shmring_core::broadcast::BroadcastCorruption> for Corrupted {
    fn from(c: shmring_core::broadcast::BroadcastCorruption) -> Self {
        Corrupted::Broadcast(c)
    }
}

impl SegmentCorrupted {
    /// `what` showed `detail`.
    pub(crate) fn boxed(what: &str, detail: impl Into<Corrupted>) -> Box<Self> {
        Box::new(Self {
            what: what.to_owned(),
            detail: detail.into(),
        })
    }
}

impl TrySendError {
    /// A push refused by the SPSC ring of `what`.
    pub(crate) fn from_push(e: PushError, what: &str) -> Self {
        match e {
            PushError::TooLarge { len, max } => Self::MessageTooLarge { len, max },
            PushError::Full { needed, free } => Self::Full { needed, free },
            PushError::Corrupted(c) => Self::Corrupted(SegmentCorrupted::boxed(what, c)),
        }
    }
}

impl TryRecvError {
    /// A pop refused by the SPSC ring of `what`.
    pub(crate) fn from_pop(e: PopError, what: &str) -> Self {
        match e {
            PopError::Empty => Self::Empty,
            PopError::BufferTooSmall { len, buffer } => Self::BufferTooSmall { len, buffer },
            PopError::Corrupted(c) => Self::Corrupted(SegmentCorrupted::boxed(what, c)),
        }
    }

    /// An in-place read refused by the SPSC ring of `what`.
    pub(crate) fn from_read(e: ReadError, what: &str) -> Self {
        match e {
            ReadError::Empty => Self::Empty,
            ReadError::Corrupted(c) => Self::Corrupted(SegmentCorrupted::boxed(what, c)),
        }
    }
}

impl Error {
    /// A parked wait on the SPSC ring of `what` that ended: `None` when it timed
    /// out (the blocking driver decides what a timeout means), else the error.
    pub(crate) fn from_wait(e: WaitError, what: &str) -> Option<Self> {
        match e {
            WaitError::TimedOut => None,
            WaitError::TooLarge { len, max } => Some(Error::MessageTooLarge { len, max }),
            WaitError::Corrupted(c) => Some(Error::corrupted(what, c)),
        }
    }

    /// `what` showed `detail`.
    pub(crate) fn corrupted(what: &str, detail: impl Into<Corrupted>) -> Self {
        Error::Corrupted {
            what: what.to_owned(),
            detail: detail.into(),
        }
    }

    /// Maps a layout error found in `what`: an incompatible build's segment, or a
    /// corrupt one.
    pub(crate) fn layout(what: impl Into<String>, e: LayoutError) -> Self {
        let what = what.into();
        match e {
            LayoutError::UnsupportedVersion { .. }
            | LayoutError::WrongKind { .. }
            | LayoutError::ForeignByteOrder => Self::IncompatibleLayout { what, source: e },
            LayoutError::TooSmall { len, required } => Self::BadSize {
                what,
                size: len as u64,
                expected: required,
            },
            _ => Self::Corrupted {
                what,
                detail: Corrupted::Header(e),
            },
        }
    }

    /// Maps a failed claim of `role` on `what`.
    pub(crate) fn claim(what: impl Into<String>, role: Role, e: ClaimError) -> Self {
        match e {
            ClaimError::Taken { owner } => Self::RoleTaken { role, owner },
            ClaimError::Corrupted(c) => Self::Corrupted {
                what: what.into(),
                detail: Corrupted::Ring(c),
            },
        }
    }
}

impl Error {
    /// A published value's read error, on the segment `what`.
    pub(crate) fn value_read(what: &str, e: shmring_core::state::value::ReadError) -> Self {
        use shmring_core::state::value::ReadError as R;
        match e {
            R::NoValue => Self::NoValue {
                what: what.to_owned(),
            },
            R::WriterDied { seq } => Self::WriterDied {
                what: what.to_owned(),
                seq,
            },
            R::Busy { retries } => Self::ValueBusy {
                what: what.to_owned(),
                retries,
            },
            R::Length { len, value_size } => Self::ValueSize { len, value_size },
        }
    }

    /// A published value's write error.
    pub(crate) fn value_write(e: shmring_core::state::value::WriteError) -> Self {
        use shmring_core::state::value::WriteError as W;
        match e {
            W::Length { len, value_size } => Self::ValueSize { len, value_size },
        }
    }
}
