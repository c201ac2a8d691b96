//! The committed header `include/shmring.h` is what cbindgen makes of the crate
//! today. `SHMRING_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("read ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");

    let path = crate_dir.join("include/shmring.h");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if generated == committed {
        return;
    }
    if std::env::var_os("SHMRING_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).expect("create ffi/include");
        std::fs::write(&path, &generated).expect("write ffi/include/shmring.h");
        eprintln!("rewrote {}", path.display());
        return;
    }
    let first_difference = generated
        .lines()
        .zip(committed.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
    panic!(
        "ffi/include/shmring.h is out of date (first difference at line {}: generated {:?}, \
         committed {:?}).\nRegenerate it with:\n\n    SHMRING_BLESS=1 cargo test -p shmring-ffi --test header\n",
        first_difference + 1,
        generated.lines().nth(first_difference).unwrap_or("<end>"),
        committed.lines().nth(first_difference).unwrap_or("<end>"),
    );
}
