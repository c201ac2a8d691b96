//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: a barrier on every CPU running
//! a registered process.

use std::sync::OnceLock;

use rustix::thread::{MembarrierCommand, membarrier};

/// Registers this process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (once per process):
/// from then on, another process's expedited barrier also runs on this process's
/// threads. `false` if the kernel (before 4.16) or a seccomp filter refuses it.
pub(crate) fn register_global_expedited() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok())
}

/// A barrier on every CPU that runs a registered process. `false` if the kernel
/// refused it.
#[inline]
pub(crate) fn global_expedited() -> bool {
    super::count::one();
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}
