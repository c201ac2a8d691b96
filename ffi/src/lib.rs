//! The C ABI of shmring. It starts with the version query; the channel calls follow
//! once the `shmring` crate has channels to export.

/// The layout version this library reads and writes (see ARCHITECTURE.md).
#[unsafe(no_mangle)]
pub extern "C" fn shmring_layout_version() -> u32 {
    shmring_core::LAYOUT_VERSION
}
