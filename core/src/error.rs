//! The errors both rings share: why a segment could not be initialised or
//! attached, and a wait's deadline passing. Each ring's own errors are in its module
//! ([`crate::spsc`], [`crate::mpmc`]). Each variant names the problem and carries
//! the values that caused it.

use core::fmt;

/// Why a segment could not be initialised or attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The capacity is not a power of two within `MIN_CAPACITY..=MAX_CAPACITY`.
    InvalidCapacity {
        /// The capacity asked for, or found in the header.
        capacity: u64,
    },
    /// The memory is shorter than the layout needs.
    TooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes the layout needs.
        required: u64,
    },
    /// The memory does not start on a [`SEGMENT_ALIGN`](crate::SEGMENT_ALIGN) boundary.
    Misaligned {
        /// The address given.
        addr: usize,
        /// The alignment needed.
        align: usize,
    },
    /// The magic word is zero: nobody has finished initialising the segment.
    Uninitialized,
    /// The magic word is not shmring's.
    BadMagic {
        /// The word found.
        found: u64,
    },
    /// The segment was written by a machine of the other byte order.
    ForeignByteOrder,
    /// The segment has another layout version.
    UnsupportedVersion {
        /// The version found.
        found: u32,
        /// The version this build understands.
        supported: u32,
    },
    /// The segment holds another kind of ring.
    WrongKind {
        /// The kind found.
        found: u32,
        /// The kind expected.
        expected: u32,
    },
    /// A header field does not have the value the layout and capacity imply.
    HeaderMismatch {
        /// Which field.
        field: &'static str,
        /// The value found.
        found: u64,
        /// The value expected.
        expected: u64,
    },
    /// A value asked for, or found in a header, lies outside its range (a
    /// broadcast topic's subscriber slots, its policy).
    OutOfRange {
        /// Which value.
        field: &'static str,
        /// The value.
        found: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidCapacity { capacity } => write!(
                f,
                "invalid capacity {capacity}: must be a power of two from {} to {}",
                crate::MIN_CAPACITY,
                crate::MAX_CAPACITY
            ),
            Self::TooSmall { len, required } => {
                write!(f, "memory too small: {len} bytes, layout needs {required}")
            }
            Self::Misaligned { addr, align } => {
                write!(f, "memory at {addr:#x} is not aligned to {align} bytes")
            }
            Self::Uninitialized => write!(f, "segment not initialised (magic is zero)"),
            Self::BadMagic { found } => write!(f, "not a shmring segment (magic {found:#018x})"),
            Self::ForeignByteOrder => write!(f, "segment written with the other byte order"),
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "incompatible layout version {found} (this build supports {supported})"
            ),
            Self::WrongKind { found, expected } => {
                write!(f, "wrong ring kind {found} (expected {expected})")
            }
            Self::HeaderMismatch {
                field,
                found,
                expected,
            } => write!(
                f,
                "corrupted header: {field} is {found}, expected {expected}"
            ),
            Self::OutOfRange {
                field,
                found,
                min,
                max,
            } => write!(f, "{field} {found} out of range {min}..={max}"),
        }
    }
}

/// The deadline of a wait passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out")
    }
}

impl core::error::Error for LayoutError {}
impl core::error::Error for TimedOut {}
