//! Gives `libshmring_c.so` its SONAME, `libshmring_c.so.<epoch>`, the ABI epoch in
//! `ffi/SOVERSION` (cargo sets none). The epoch is bumped on every removal or
//! signature change in the C ABI and kept on additions; `make -C ffi install` names
//! the installed file after it, and `tests/packaging.rs` reads the SONAME back.
//! The argument reaches the cdylib's link only: the rlib and the staticlib are not
//! linked by rustc, and a test binary is not a cdylib.

use std::path::Path;

fn main() {
    let path = Path::new("SOVERSION");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path).expect("read ffi/SOVERSION");
    let epoch = text.trim();
    assert!(
        !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()),
        "ffi/SOVERSION holds {epoch:?}, expected a number (the ABI epoch)"
    );
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF platforms; macOS names its dylibs with -install_name, not handled here.
    if target_os != "macos" && target_os != "ios" && target_os != "windows" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshmring_c.so.{epoch}");
    }
}
