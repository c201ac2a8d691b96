//! shmring: inter-process channels over a lock-free shared-memory ring.
//!
//! This crate will hold the operating-system side: shared-memory segments, blocking
//! waits on a futex, peer liveness, permissions and the fallback transports. For
//! now it re-exports the ring of [`shmring_core`], which everything here builds on.

pub use shmring_core as core;
