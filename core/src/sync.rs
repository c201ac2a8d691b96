//! The one place `shmring-core` takes its atomics from.
//!
//! Normally these are `core::sync::atomic`'s types. Built with `--cfg shmring_loom`
//! they are loom's, so that the model checks in `shmring-loom-tests` run the ring's
//! real algorithm under loom's scheduler and memory model. Nothing else in the crate
//! names an atomic type from anywhere else.
//!
//! The cfg is a bare `--cfg`, never a cargo feature: `cargo test --workspace` unifies
//! features, and a feature would put loom's atomics into every crate of the build.
//!
//! `core/clippy.toml` forbids `core::sync::atomic`'s types and `fence` everywhere
//! else in the crate. A re-export would carry the forbidden type with it, so the
//! atomics here are `repr(transparent)` wrappers of `core`'s, with the methods the
//! shmring crates call, each forwarding inline: the same layout and the same code.

#[cfg(not(shmring_loom))]
pub use core::sync::atomic::Ordering;
#[cfg(not(shmring_loom))]
pub use native::{AtomicU32, AtomicU64, fence};

#[cfg(shmring_loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(shmring_loom))]
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
mod native {
    use core::fmt;
    use core::sync::atomic::{self, Ordering};

    /// A memory fence: `core::sync::atomic::fence`.
    #[inline(always)]
    pub fn fence(order: Ordering) {
        atomic::fence(order);
    }

    macro_rules! atomic_int {
        ($name:ident, $int:ty) => {
            #[doc = concat!("`core::sync::atomic::", stringify!($name), "`, with the same layout.")]
            #[repr(transparent)]
            #[derive(Default)]
            pub struct $name(atomic::$name);

            impl $name {
                /// A new atomic holding `value`.
                #[inline(always)]
                pub const fn new(value: $int) -> Self {
                    Self(atomic::$name::new(value))
                }

                /// Loads the value.
                #[inline(always)]
                pub fn load(&self, order: Ordering) -> $int {
                    self.0.load(order)
                }

                /// Stores `value`.
                #[inline(always)]
                pub fn store(&self, value: $int, order: Ordering) {
                    self.0.store(value, order);
                }

                /// Stores `value`, returning the previous value.
                #[inline(always)]
                pub fn swap(&self, value: $int, order: Ordering) -> $int {
                    self.0.swap(value, order)
                }

                /// Stores `new` if the value is `current`; returns the previous value,
                /// `Ok` if it was `current`.
                ///
                /// # Errors
                /// The value found, if it was not `current`.
                #[inline(always)]
                pub fn compare_exchange(
                    &self,
                    current: $int,
                    new: $int,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$int, $int> {
                    self.0.compare_exchange(current, new, success, failure)
                }

                /// Adds `value` (wrapping), returning the previous value.
                #[inline(always)]
                pub fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                    self.0.fetch_add(value, order)
                }

                /// Subtracts `value` (wrapping), returning the previous value.
                #[inline(always)]
                pub fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                    self.0.fetch_sub(value, order)
                }

                /// Sets the bits of `value`, returning the previous value.
                #[inline(always)]
                pub fn fetch_or(&self, value: $int, order: Ordering) -> $int {
                    self.0.fetch_or(value, order)
                }

                /// Clears the bits not in `value`, returning the previous value.
                #[inline(always)]
                pub fn fetch_and(&self, value: $int, order: Ordering) -> $int {
                    self.0.fetch_and(value, order)
                }

                /// A pointer to the value (for a system call such as a futex's).
                #[inline(always)]
                pub const fn as_ptr(&self) -> *mut $int {
                    self.0.as_ptr()
                }

                /// The value, through an exclusive borrow.
                #[inline(always)]
                pub fn get_mut(&mut self) -> &mut $int {
                    self.0.get_mut()
                }
            }

            impl fmt::Debug for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    fmt::Debug::fmt(&self.0, f)
                }
            }
        };
    }

    atomic_int!(AtomicU32, u32);
    atomic_int!(AtomicU64, u64);
}

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
