//! The C library as packaged: the shared object's SONAME and exported symbols,
//! `make -C ffi install` (its links, pkg-config files and CMake package), a static
//! link through `shmring-static.pc` that runs with the `.so` removed, and the CMake
//! example `examples/cmake` configured, built and run against an install.
//!
//! The tools (`readelf`, `nm`, `make`, `pkg-config`, `cmake`) are required under
//! `CI=true` (`.ci/run` installs them); elsewhere a test without one is skipped,
//! saying so.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{crate_dir, library, require, soversion};

/// The crate's version (the installed file's name ends with it).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs `command`, which must succeed; returns its stdout.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The SONAME of the ELF file at `path`, from `readelf -d`.
fn soname(path: &Path) -> Option<String> {
    let dynamic = run(Command::new("readelf").arg("-d").arg(path));
    dynamic
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|l| l.split(']').next())
        .map(str::to_owned)
}

/// The NEEDED entries of the ELF file at `path`, from `readelf -d`.
fn needed(path: &Path) -> Vec<String> {
    let dynamic = run(Command::new("readelf").arg("-d").arg(path));
    dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(str::to_owned))
        .collect()
}

/// The functions `include/shmring.h` declares: every `shmring_*` identifier
/// followed by `(`, outside comments (a function pointer type's name is followed
/// by `)`, a struct's by a space or `*`).
fn header_functions() -> BTreeSet<String> {
    let header =
        std::fs::read_to_string(crate_dir().join("include/shmring.h")).expect("read the header");
    // Drop /* */ and // comments.
    let mut code = String::with_capacity(header.len());
    let mut rest = header.as_str();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
            code.push(' ');
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
            code.push('\n');
        } else {
            let c = rest.chars().next().expect("not empty");
            code.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut functions = BTreeSet::new();
    for (at, _) in code.match_indices("shmring_") {
        if code[..at].ends_with(is_ident) {
            continue;
        }
        let name: String = code[at..].chars().take_while(|&c| is_ident(c)).collect();
        if code[at + name.len()..].trim_start().starts_with('(') {
            functions.insert(name);
        }
    }
    functions
}

/// `libshmring_c.so`'s SONAME is `libshmring_c.so.<ABI epoch>`: what a program
/// linked against it records, and what the install's link is named after.
#[test]
fn the_shared_object_has_the_abi_epoch_as_its_soname() {
    if !require("readelf") {
        return;
    }
    let so = &library().cdylib;
    assert_eq!(
        soname(so).as_deref(),
        Some(format!("libshmring_c.so.{}", soversion()).as_str()),
        "readelf -d {}",
        so.display()
    );
}

/// The shared object exports exactly the functions the header declares: every
/// `shmring_*` declared is defined in the `.so`, and nothing else is exported.
#[test]
fn the_exported_symbols_are_the_functions_the_header_declares() {
    if !require("nm") {
        return;
    }
    let so = &library().cdylib;
    let symbols = run(Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(so));
    let exported: BTreeSet<String> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect();
    let declared = header_functions();
    assert!(
        declared.len() > 100,
        "only {} functions found in the header: the parser is broken",
        declared.len()
    );
    let missing: Vec<_> = declared.difference(&exported).collect();
    let undeclared: Vec<_> = exported.difference(&declared).collect();
    assert!(
        missing.is_empty() && undeclared.is_empty(),
        "declared in shmring.h but not exported by {}: {missing:?}\n\
         exported but not declared: {undeclared:?}",
        so.display()
    );
}

/// A fresh directory for one test's install.
fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("shmring-packaging-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// `make -C ffi <target>` with the library cargo built for this test, `PREFIX`
/// and an optional `DESTDIR`.
fn make(target: &str, prefix: &Path, destdir: Option<&Path>) {
    let lib = library();
    let build = lib.cdylib.parent().expect("library dir");
    assert_eq!(
        lib.staticlib.parent(),
        Some(build),
        "the .so and the .a in different directories"
    );
    let mut command = Command::new("make");
    command
        .arg("-C")
        .arg(crate_dir())
        .arg(target)
        .arg(format!("BUILD={}", build.display()))
        .arg(format!("PREFIX={}", prefix.display()))
        .env_remove("MAKEFLAGS")
        .env_remove("LIBDIR")
        .env_remove("INCLUDEDIR")
        .env_remove("DESTDIR");
    if let Some(destdir) = destdir {
        command.arg(format!("DESTDIR={}", destdir.display()));
    }
    run(&mut command);
}

/// `make install` into `prefix` (no `DESTDIR`), for a build against it.
fn install(prefix: &Path) {
    make("install", prefix, None);
}

/// The `.so` files in `libdir`.
fn shared_objects(libdir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(libdir)
        .expect("read the libdir")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libshmring_c.so"))
        })
        .collect()
}

/// `make install` with `DESTDIR` and `PREFIX`: the real file
/// `libshmring_c.so.<epoch>.<version>`, the links `libshmring_c.so.<epoch>` (the
/// SONAME) and `libshmring_c.so` (for `-lshmring_c`), the archive, the headers (C and C++),
/// both pkg-config files and the CMake package, all naming `PREFIX` (not the
/// staging directory); `make uninstall` removes every file.
#[test]
fn make_install_lays_out_the_links_and_the_packages() {
    if !require("make") {
        return;
    }
    let dir = scratch("layout");
    let stage = dir.join("stage");
    let prefix = Path::new("/opt/shmring-test");
    make("install", prefix, Some(&stage));
    let root = stage.join(prefix.strip_prefix("/").expect("absolute"));
    let lib = root.join("lib");
    let epoch = soversion();
    let real = format!("libshmring_c.so.{epoch}.{VERSION}");
    let so_epoch = format!("libshmring_c.so.{epoch}");

    let meta = std::fs::symlink_metadata(lib.join(&real)).expect("the real file");
    assert!(meta.file_type().is_file(), "{real} is a regular file");
    let link = |name: &str| {
        std::fs::read_link(lib.join(name)).unwrap_or_else(|e| panic!("{name} is a link: {e}"))
    };
    assert_eq!(link(&so_epoch), Path::new(&real));
    assert_eq!(link("libshmring_c.so"), Path::new(&so_epoch));
    assert!(lib.join("libshmring_c.a").is_file());
    assert!(root.join("include/shmring.h").is_file());
    assert!(root.join("include/shmring.hpp").is_file());

    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let pc = read(&lib.join("pkgconfig/shmring.pc"));
    assert!(pc.contains("prefix=/opt/shmring-test\n"), "{pc}");
    assert!(pc.contains("Libs: -L${libdir} -lshmring_c\n"), "{pc}");
    let static_pc = read(&lib.join("pkgconfig/shmring-static.pc"));
    let libs = static_pc
        .lines()
        .find_map(|l| l.strip_prefix("Libs: -L${libdir} -l:libshmring_c.a "))
        .unwrap_or_else(|| panic!("no static Libs line:\n{static_pc}"));
    assert!(
        libs.split(' ').all(|l| l.starts_with("-l")) && libs.contains("-lc"),
        "the native libraries: {libs:?}"
    );
    assert!(
        !static_pc.contains('@'),
        "an unfilled template:\n{static_pc}"
    );
    let config = read(&lib.join("cmake/shmring/shmringConfig.cmake"));
    assert!(
        config.contains(&format!("\"/opt/shmring-test/lib/{so_epoch}\"")),
        "{config}"
    );
    assert!(!config.contains('@'), "an unfilled template:\n{config}");
    let version = read(&lib.join("cmake/shmring/shmringConfigVersion.cmake"));
    assert!(
        version.contains(&format!("set(PACKAGE_VERSION \"{VERSION}\")")),
        "{version}"
    );

    make("uninstall", prefix, Some(&stage));
    let left: Vec<_> = walk(&stage).into_iter().filter(|p| !p.is_dir()).collect();
    assert!(left.is_empty(), "left after uninstall: {left:?}");
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a directory") {
        let path = entry.expect("a directory entry").path();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            paths.extend(walk(&path));
        }
        paths.push(path);
    }
    paths
}

/// `pkg-config <args>` over the install at `prefix` alone.
fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let flags = run(Command::new("pkg-config")
        .args(args)
        .env("PKG_CONFIG_LIBDIR", prefix.join("lib/pkgconfig"))
        .env_remove("PKG_CONFIG_PATH"));
    flags.split_whitespace().map(str::to_owned).collect()
}

/// Compiles `examples/cmake/main.c` with `flags` into `exe`.
fn compile_example(flags: &[String], exe: &Path) {
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg(crate_dir().join("examples/cmake/main.c"))
        .arg("-o")
        .arg(exe)
        .args(flags));
}

/// Runs the example program at `exe` (with `LD_LIBRARY_PATH` if given): a message
/// sent and received through a channel.
fn run_example(exe: &Path, ld_library_path: Option<&Path>) {
    let mut command = Command::new(exe);
    if let Some(dir) = ld_library_path {
        command.env("LD_LIBRARY_PATH", dir);
    }
    let stdout = run(&mut command);
    assert!(
        stdout.starts_with("ok: hello through shared memory"),
        "{}: {stdout}",
        exe.display()
    );
}

/// Linked through `pkg-config --static --cflags --libs shmring-static` against an
/// install, the program contains the archive: it runs with every
/// `libshmring_c.so*` removed, and records no `libshmring_c` as NEEDED. The same
/// program linked through `shmring.pc` records the SONAME and runs through the
/// links first.
#[test]
fn a_static_link_through_pkg_config_runs_with_the_shared_object_removed() {
    if !(require("make") && require("pkg-config") && require("readelf")) {
        return;
    }
    let dir = scratch("pkgconfig");
    let prefix = dir.join("prefix");
    install(&prefix);
    let libdir = prefix.join("lib");

    let shared = dir.join("example-shared");
    compile_example(
        &pkg_config(&prefix, &["--cflags", "--libs", "shmring"]),
        &shared,
    );
    let so_epoch = format!("libshmring_c.so.{}", soversion());
    assert!(
        needed(&shared).contains(&so_epoch),
        "{:?}, expected {so_epoch}",
        needed(&shared)
    );
    run_example(&shared, Some(&libdir));

    let flags = pkg_config(
        &prefix,
        &["--static", "--cflags", "--libs", "shmring-static"],
    );
    assert!(flags.iter().any(|f| f == "-l:libshmring_c.a"), "{flags:?}");
    let program = dir.join("example-static");
    compile_example(&flags, &program);
    let removed = shared_objects(&libdir);
    assert_eq!(removed.len(), 3, "{removed:?}");
    for so in &removed {
        std::fs::remove_file(so).expect("remove a .so");
    }
    let needs = needed(&program);
    assert!(
        !needs.iter().any(|n| n.starts_with("libshmring_c")),
        "the static program needs {needs:?}"
    );
    run_example(&program, Some(&libdir));
    // The shared one cannot run now: the removal was real.
    let status = Command::new(&shared)
        .env("LD_LIBRARY_PATH", &libdir)
        .output()
        .expect("run the shared example");
    assert!(!status.status.success(), "ran without its .so");
}

/// `examples/cmake` configured against an install (`find_package(shmring 0.1)`),
/// built and run, with `shmring::shmring` (records the SONAME) and with
/// `shmring::static` (records no `libshmring_c`).
#[test]
fn the_cmake_example_finds_the_package_builds_and_runs() {
    if !(require("make") && require("cmake") && require("readelf")) {
        return;
    }
    let dir = scratch("cmake");
    let prefix = dir.join("prefix");
    install(&prefix);
    for (variant, static_link) in [("shared", false), ("static", true)] {
        let build = dir.join(format!("build-{variant}"));
        run(Command::new("cmake")
            .arg("-S")
            .arg(crate_dir().join("examples/cmake"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg(format!(
                "-DSHMRING_EXAMPLE_STATIC={}",
                if static_link { "ON" } else { "OFF" }
            ))
            .arg("-DCMAKE_C_FLAGS=-Wall -Wextra -Wpedantic -Werror"));
        run(Command::new("cmake").arg("--build").arg(&build));
        let exe = build.join("shmring_example");
        let needs = needed(&exe);
        let links_so = needs.iter().any(|n| n.starts_with("libshmring_c"));
        if static_link {
            assert!(!links_so, "{variant}: needs {needs:?}");
        } else {
            let so_epoch = format!("libshmring_c.so.{}", soversion());
            assert!(needs.contains(&so_epoch), "{variant}: needs {needs:?}");
        }
        // No LD_LIBRARY_PATH: CMake's build rpath finds the install.
        run_example(&exe, None);
    }
}
