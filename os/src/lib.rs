//! shmring: inter-process channels over a lock-free shared-memory ring.
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_os = "linux"))]
compile_error!("shmring needs Linux (futex, memfd, OFD locks); other systems are not supported yet");

pub mod error;
mod lock;
pub mod segment;

pub use error::{Corrupted, Error, Result, Role};
pub use shmring_core as core;
