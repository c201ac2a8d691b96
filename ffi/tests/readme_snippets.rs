//! Every C snippet of the READMEs (each ```` ```c ```` block of `README.md` and
//! `ffi/README.md`) compiles against `include/shmring.h` with
//! `cc -std=c11 -Wall -Wextra -Wpedantic -Werror -c`, so the snippets cannot rot.
//!
//! The convention, one snippet at a time:
//! - a snippet with an `#include` is a whole translation unit, compiled as it is;
//! - any other snippet is a fragment of a function body: it is compiled as the body
//!   of `int snippet(void) { ... return 0; }`, after `<shmring.h>`, `<stdint.h>`,
//!   `<stdio.h>`, `<string.h>` and the `#define`s of the whole snippets above it in
//!   the same file (so a page defines its shorthand once, as ffi/README.md does
//!   with `CHECK`). A fragment declares the variables it uses.
//!
//! Errors are reported at the README's own lines (a `#line` directive precedes
//! each snippet).
//!
//! The ```` ```cpp ```` blocks of `ffi/README.md` are whole C++ translation units
//! against `include/shmring.hpp`, compiled with
//! `g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -c`.

mod common;

use std::path::Path;
use std::process::Command;

use common::crate_dir;

/// One fenced block: the 1-based line of its first code line, its text.
struct Snippet {
    line: usize,
    text: String,
}

/// The blocks of `markdown` fenced as ```` ```<language> ````.
fn blocks(markdown: &str, language: &str) -> Vec<Snippet> {
    let fence = format!("```{language}");
    let mut snippets = Vec::new();
    let mut open: Option<Snippet> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.trim_end()) {
            (None, l) if l == fence => {
                open = Some(Snippet {
                    line: i + 2,
                    text: String::new(),
                })
            }
            (Some(_), "```") => snippets.extend(open.take()),
            (Some(snippet), _) => {
                snippet.text.push_str(line);
                snippet.text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(open.is_none(), "an unclosed {fence} block");
    snippets
}

/// The `#define` directives of `code`, continuation lines included.
fn defines(code: &str) -> String {
    let mut out = String::new();
    let mut continued = false;
    for line in code.lines() {
        if continued || line.trim_start().starts_with("#define") {
            out.push_str(line);
            out.push('\n');
            continued = line.ends_with('\\');
        }
    }
    out
}

/// Compiles the snippets of the README at `relative` (to the workspace root);
/// returns how many there were and the failures, each with its line.
fn compile_snippets(relative: &str) -> (usize, Vec<String>) {
    let root = crate_dir().parent().expect("the workspace root");
    let markdown = std::fs::read_to_string(root.join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("shmring-readme-snippets-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("create the output directory");
    let snippets = blocks(&markdown, "c");
    let mut page_defines = String::new();
    let mut failures = Vec::new();
    for snippet in &snippets {
        let place = format!("#line {} \"{relative}\"\n", snippet.line);
        let source = if snippet.text.contains("#include") {
            page_defines.push_str(&defines(&snippet.text));
            format!("{place}{}", snippet.text)
        } else {
            format!(
                "#include <shmring.h>\n#include <stdint.h>\n#include <stdio.h>\n\
                 #include <string.h>\n{page_defines}\nint snippet(void);\n\
                 int snippet(void) {{\n{place}{}\n    return 0;\n}}\n",
                snippet.text
            )
        };
        let name = relative.replace('/', "_").replace(".md", "");
        let path = out_dir.join(format!("{name}-{}.c", snippet.line));
        std::fs::write(&path, &source).expect("write the snippet");
        let output = compile_object("cc", "-std=c11", &path);
        if !output.status.success() {
            failures.push(format!(
                "{relative}:{}: the C snippet does not compile ({}):\n{}",
                snippet.line,
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    (snippets.len(), failures)
}

/// Compiles `source` to an object beside it with `compiler` in the language
/// standard `std`, every warning an error, against `ffi/include`.
fn compile_object(compiler: &str, std: &str, source: &Path) -> std::process::Output {
    Command::new(compiler)
        .args([std, "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-c"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(source)
        .arg("-o")
        .arg(source.with_extension("o"))
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"))
}

#[test]
fn the_readme_c_snippets_compile() {
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for readme in ["README.md", "ffi/README.md"] {
        let (count, failed) = compile_snippets(readme);
        counts.push((readme, count));
        failures.extend(failed);
    }
    // ffi/README.md is the C page: it has snippets, so finding none means the
    // extraction broke.
    assert!(
        counts.iter().any(|&(r, n)| r == "ffi/README.md" && n >= 5),
        "too few ```c blocks found: {counts:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("compiled: {counts:?}");
}

#[test]
fn the_readme_cpp_snippets_compile() {
    if !common::require("g++") {
        return;
    }
    let relative = "ffi/README.md";
    let markdown = std::fs::read_to_string(crate_dir().join("README.md")).expect("read the README");
    let snippets = blocks(&markdown, "cpp");
    assert!(!snippets.is_empty(), "no ```cpp block in {relative}");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("shmring-readme-snippets-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("create the output directory");
    for snippet in &snippets {
        let path = out_dir.join(format!("ffi_README-{}.cpp", snippet.line));
        let source = format!("#line {} \"{relative}\"\n{}", snippet.line, snippet.text);
        std::fs::write(&path, source).expect("write the snippet");
        let output = compile_object("g++", "-std=c++17", &path);
        assert!(
            output.status.success(),
            "{relative}:{}: the C++ snippet does not compile ({}):\n{}",
            snippet.line,
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
