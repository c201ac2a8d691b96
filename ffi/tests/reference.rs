//! The Doxygen reference (`make -C ffi doc`, `docs/Doxyfile`): it builds without a
//! warning, every function the header declares has its documented entry, and a
//! warning fails the build.
//!
//! `doxygen` and `make` are required under `CI=true` (`.ci/tools` installs them);
//! elsewhere the tests skip without them, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{crate_dir, require};

/// A fresh directory for one test's output.
fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("shmring-reference-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// `make -C ffi doc DOCDIR=<docdir>`, with `DOC_INPUT` replaced when given.
fn make_doc(docdir: &Path, input: Option<&Path>) -> Output {
    let mut command = Command::new("make");
    command
        .arg("-C")
        .arg(crate_dir())
        .arg("doc")
        .arg(format!("DOCDIR={}", docdir.display()))
        .env_remove("MAKEFLAGS");
    if let Some(input) = input {
        command.arg(format!("DOC_INPUT={}", input.display()));
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

/// The names of the functions `include/shmring.h` declares (`shmring_...(`
/// at the start of a declaration line, after its return type).
fn declared_functions() -> Vec<String> {
    let header = std::fs::read_to_string(crate_dir().join("include/shmring.h"))
        .expect("read include/shmring.h");
    let mut names: Vec<String> = header
        .lines()
        .filter(|l| !l.starts_with("///") && !l.starts_with(' ') && !l.starts_with('#'))
        .filter_map(|l| {
            let open = l.find('(')?;
            let name = l[..open].rsplit([' ', '*']).next()?;
            name.starts_with("shmring_").then(|| name.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The reference builds, without a warning (the Doxyfile fails on one), and its
/// page of `shmring.h` has a documented entry (a title and a description) for
/// every function the header declares, and the file's description with the SIGBUS
/// warning about untrusted peers.
#[test]
fn the_reference_builds_without_a_warning_and_documents_every_function() {
    if !(require("make") && require("doxygen")) {
        return;
    }
    let docdir = scratch("full");
    let output = make_doc(&docdir, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "make -C ffi doc failed ({}):\n{stderr}",
        output.status
    );
    assert!(
        !stderr.contains("warning") && !stderr.contains("error"),
        "doxygen complained:\n{stderr}"
    );
    let html = docdir.join("html");
    assert!(html.join("index.html").is_file(), "no index.html");
    let page =
        std::fs::read_to_string(html.join("shmring_8h.html")).expect("the page of shmring.h");
    assert!(page.contains("SIGBUS"), "the file description is missing");

    let functions = declared_functions();
    assert!(
        functions.len() > 100,
        "only {} functions found in the header: the parser is wrong",
        functions.len()
    );
    // Each member has a `memtitle` heading ending with its name, then its
    // description in a `memdoc` block: a paragraph when it is documented.
    let undocumented: Vec<&String> = functions
        .iter()
        .filter(|name| {
            let Some(at) = page.find(&format!("</span>{name}()</h2>")) else {
                return true;
            };
            let entry = &page[at + 1..];
            let entry = &entry[..entry.find("class=\"memtitle\"").unwrap_or(entry.len())];
            !entry.contains("<div class=\"memdoc\">\n<p")
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "no documented entry for {undocumented:?}"
    );
}

/// A header with an undocumented function fails the build: the reference cannot
/// silently lose a function's description.
#[test]
fn a_doxygen_warning_fails_the_build() {
    if !(require("make") && require("doxygen")) {
        return;
    }
    let dir = scratch("warning");
    let header = dir.join("undocumented.h");
    std::fs::write(
        &header,
        "/** \\file undocumented.h\n * \\brief A header with one undocumented function. */\n\
         int shmring_undocumented(void);\n",
    )
    .expect("write the header");
    let output = make_doc(&dir.join("doc"), Some(&header));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "make -C ffi doc succeeded on an undocumented function"
    );
    assert!(
        stderr.contains("shmring_undocumented"),
        "the failure does not name the function:\n{stderr}"
    );
}
