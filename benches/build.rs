//! Compiles the comparison program's foreign peers (`src/cross/c_peer.rs`), every
//! warning an error: `c/echo.c`, the C peer of `busy-spin-c`, against the C header
//! `ffi/include/shmring.h` (C11), and `c/echo.cpp`, the C++ peer of
//! `busy-spin-cpp`, against the C++ wrapper `ffi/include/shmring.hpp` (C++17; `cc`
//! links the C++ standard library). Their `shmring_*` calls are resolved by the
//! `shmring-ffi` rlib the program depends on.

fn main() {
    for path in [
        "c/echo.c",
        "c/echo.cpp",
        "c/echo.h",
        "../ffi/include/shmring.h",
        "../ffi/include/shmring.hpp",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    cc::Build::new()
        .file("c/echo.c")
        .include("../ffi/include")
        .std("c11")
        .warnings(true)
        .extra_warnings(true)
        .flag("-Wpedantic")
        .warnings_into_errors(true)
        .compile("shmring_bench_c");
    cc::Build::new()
        .cpp(true)
        .file("c/echo.cpp")
        .include("../ffi/include")
        .std("c++17")
        .warnings(true)
        .extra_warnings(true)
        .flag("-Wpedantic")
        .warnings_into_errors(true)
        .compile("shmring_bench_cpp");
}
