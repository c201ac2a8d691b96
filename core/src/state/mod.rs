//! Shared state (issue 23): a value published by one writer under a seqlock
//! ([`value`], kind [`STATE_KIND_VALUE`](crate::layout::STATE_KIND_VALUE)) and a
//! value guarded by a robust lock ([`mutex`], kind
//! [`STATE_KIND_MUTEX`](crate::layout::STATE_KIND_MUTEX)), over one common
//! header ([`header`]) and its geometry. Both carry a plain-data value of
//! `value_size` bytes, copied as 64-bit atomic words. The design and its
//! reasoning: `docs/design/shared-state.md`.
//!
//! As everywhere in core: no system call. A reader that must sleep, or a writer
//! that wakes, calls the caller's [`Futex`](crate::Futex); whether a writer is
//! alive is the caller's to say (the `shmring` crate: its liveness lock).

pub mod header;
pub mod mutex;
pub mod value;
