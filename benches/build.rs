//! Compiles `c/echo.c`, the C peer of the comparison program's `busy-spin-c`
//! method, against the C header `ffi/include/shmring.h` (C11, every warning an
//! error). Its `shmring_*` calls are resolved by the `shmring-ffi` rlib the
//! program depends on (`src/cross/c_peer.rs`).

fn main() {
    println!("cargo:rerun-if-changed=c/echo.c");
    println!("cargo:rerun-if-changed=c/echo.h");
    println!("cargo:rerun-if-changed=../ffi/include/shmring.h");
    cc::Build::new()
        .file("c/echo.c")
        .include("../ffi/include")
        .std("c11")
        .warnings(true)
        .extra_warnings(true)
        .flag("-Wpedantic")
        .warnings_into_errors(true)
        .compile("shmring_bench_c");
}
