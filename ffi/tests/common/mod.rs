//! Helpers of the C tests: the library's location, compiling C programs, running
//! them with a deadline, unique names, and the message pattern of
//! `tests/c/pattern.h`.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The crate's directory (`ffi/`).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `libshmring_c.so` and `libshmring_c.a` as cargo built them for this profile.
#[derive(Debug)]
pub struct Library {
    pub cdylib: PathBuf,
    pub staticlib: PathBuf,
}

/// Asks cargo for the library's artefacts: `cargo build -p shmring-ffi --lib` in
/// this test's target directory and profile, which is a no-op when `cargo test`
/// has just built them (it writes the cdylib and staticlib into `deps/` without
/// copying them up, and another profile's build may have overwritten those since,
/// so their paths are taken from cargo's report, never guessed).
pub fn library() -> &'static Library {
    static LIBRARY: OnceLock<Library> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile dir>/deps/<test binary>
        let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("release") => "release",
            _ => "test",
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "-p",
                "shmring-ffi",
                "--lib",
                "--message-format=json",
            ])
            .args(["--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(crate_dir())
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(output.status.success(), "cargo build -p shmring-ffi failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut cdylib = None;
        let mut staticlib = None;
        for line in stdout.lines().filter(|l| {
            l.contains("\"reason\":\"compiler-artifact\"") && l.contains("\"name\":\"shmring_c\"")
        }) {
            for path in line.split('"').filter(|s| s.starts_with('/')) {
                if path.ends_with("/libshmring_c.so") {
                    cdylib = Some(PathBuf::from(path));
                } else if path.ends_with("/libshmring_c.a") {
                    staticlib = Some(PathBuf::from(path));
                }
            }
        }
        Library {
            cdylib: cdylib.expect("cargo reported no libshmring_c.so"),
            staticlib: staticlib.expect("cargo reported no libshmring_c.a"),
        }
    })
}

/// How a C program links the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `-lshmring_c` against the cdylib, found at run time through an rpath.
    Shared,
    /// The staticlib and the system libraries Rust's std needs.
    Static,
}

/// Compiles `tests/c/<source>` (C11, or C++17 with g++ for `.cpp`) with every warning an
/// error, once per test process; returns the executable. A `source` with a `/` is
/// relative to the crate's directory instead (`examples/<name>.c`).
pub fn compile(source: &str, link: Link) -> PathBuf {
    static BUILT: Mutex<Vec<(String, Link, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, exe)) = built.iter().find(|(s, l, _)| s == source && *l == link) {
        return exe.clone();
    }
    let lib = library();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shmring-ffi-c");
    std::fs::create_dir_all(&out_dir).expect("create the C output directory");
    let path = if source.contains('/') {
        crate_dir().join(source)
    } else {
        crate_dir().join("tests/c").join(source)
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a source file name");
    let exe = out_dir.join(format!(
        "{stem}-{}-{}",
        if link == Link::Shared { "so" } else { "a" },
        std::process::id()
    ));
    let cpp = source.ends_with(".cpp");
    let mut cmd = Command::new(if cpp { "g++" } else { "cc" });
    if cpp {
        cmd.args(["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]);
    } else {
        cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]);
    }
    cmd.args(["-O2", "-g"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(&path)
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Shared => {
            let dir = &shared_dir(&out_dir);
            cmd.arg("-L")
                .arg(dir)
                .arg("-lshmring_c")
                .arg(format!("-Wl,-rpath,{}", dir.display()));
        }
        Link::Static => {
            cmd.arg(&lib.staticlib).args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ]);
        }
    }
    let output = cmd.output().expect("run the C compiler");
    assert!(
        output.status.success(),
        "compiling {source} failed: {cmd:?}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    built.push((source.to_owned(), link, exe.clone()));
    exe
}

/// The ABI epoch (`ffi/SOVERSION`), which build.rs puts in the SONAME
/// `libshmring_c.so.<epoch>`.
pub fn soversion() -> String {
    let path = crate_dir().join("SOVERSION");
    let text = std::fs::read_to_string(&path).expect("read ffi/SOVERSION");
    text.trim().to_owned()
}

/// A directory of this test process under `out_dir` where `libshmring_c.so` and
/// `libshmring_c.so.<epoch>` (the SONAME, which a program linked to it loads) link
/// to the cdylib cargo built: the build tree has no file named after the SONAME.
fn shared_dir(out_dir: &Path) -> PathBuf {
    let dir = out_dir.join(format!("lib-{}", std::process::id()));
    if !dir.exists() {
        std::fs::create_dir_all(&dir).expect("create the library link directory");
        for name in [
            "libshmring_c.so".to_owned(),
            format!("libshmring_c.so.{}", soversion()),
        ] {
            std::os::unix::fs::symlink(&library().cdylib, dir.join(name)).expect("link the cdylib");
        }
    }
    dir
}

/// Whether `program` runs (for optional tools: g++, valgrind).
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the tool `program` is here for a test that needs it: without it, the
/// test fails under `CI=true` (`.ci/run` installs the tools) and is skipped, saying
/// so, otherwise.
pub fn require(program: &str) -> bool {
    if have(program) {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{program} is missing, and CI=true"
    );
    eprintln!("skipped: no {program}");
    false
}

/// Waits for `child` up to `limit`, killing it then; returns its output.
pub fn wait_with_deadline(mut child: Child, limit: Duration, what: &str) -> Output {
    // Drain the pipes on threads, so that a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Asserts that a C program succeeded, showing its output if not; returns stdout.
pub fn expect_success(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A channel name no other test (or run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-ffi-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The messages of `tests/c/pattern.h`, in Rust.
pub mod pattern {
    pub const HEADER: usize = 12;

    pub fn mix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    pub fn len(i: u64, max_len: usize) -> usize {
        HEADER + (mix(i) % (max_len - HEADER + 1) as u64) as usize
    }

    pub fn fnv1a(data: &[u8]) -> u32 {
        data.iter().fold(2_166_136_261u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(16_777_619)
        })
    }

    fn payload_byte(seed: u64, j: usize) -> u8 {
        ((seed >> (8 * (j % 8))) ^ j as u64) as u8
    }

    /// Writes message `i` into `out` (its whole length); returns its checksum.
    pub fn fill(out: &mut [u8], i: u64) -> u32 {
        let seed = mix(i ^ 0x5555);
        for (j, b) in out.iter_mut().enumerate().skip(HEADER) {
            *b = payload_byte(seed, j);
        }
        let sum = fnv1a(&out[HEADER..]);
        out[..8].copy_from_slice(&i.to_le_bytes());
        out[8..12].copy_from_slice(&sum.to_le_bytes());
        sum
    }

    /// Checks that `data` is message `i`; returns its checksum.
    pub fn check(data: &[u8], i: u64, max_len: usize) -> Result<u32, String> {
        if data.len() != len(i, max_len) {
            return Err(format!(
                "message {i}: {} bytes, expected {}",
                data.len(),
                len(i, max_len)
            ));
        }
        let seq = u64::from_le_bytes(data[..8].try_into().unwrap());
        if seq != i {
            return Err(format!("message {i}: sequence number {seq}"));
        }
        let sum = u32::from_le_bytes(data[8..12].try_into().unwrap());
        if fnv1a(&data[HEADER..]) != sum {
            return Err(format!("message {i}: checksum mismatch"));
        }
        let seed = mix(i ^ 0x5555);
        if let Some(j) = (HEADER..data.len()).find(|&j| data[j] != payload_byte(seed, j)) {
            return Err(format!("message {i}: byte {j} differs"));
        }
        Ok(sum)
    }

    /// The sum of the checksums of messages `0..count`.
    pub fn total(count: u64, max_len: usize) -> u64 {
        let mut buf = vec![0u8; max_len];
        (0..count)
            .map(|i| u64::from(fill(&mut buf[..len(i, max_len)], i)))
            .sum()
    }
}
