//! The one place `shmring-core` takes its atomics from.
//!
//! Normally these are `core::sync::atomic`'s types. Built with `--cfg shmring_loom`
//! they are loom's, so that the model checks in `shmring-loom-tests` run the ring's
//! real algorithm under loom's scheduler and memory model. Nothing else in the crate
//! names an atomic type from anywhere else.
//!
//! The cfg is a bare `--cfg`, never a cargo feature: `cargo test --workspace` unifies
//! features, and a feature would put loom's atomics into every crate of the build.

#[cfg(not(shmring_loom))]
pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(shmring_loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Asks the CPU to start loading the cache line at `ptr` for reading. A hint: it
/// never faults and changes no memory. Nothing under loom.
#[inline(always)]
pub fn prefetch_read(ptr: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(shmring_loom)))]
    // SAFETY: prefetch is a hint that never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(shmring_loom))))]
    let _ = ptr;
}
