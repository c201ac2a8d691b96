#!/usr/bin/env python3
"""Weaken every memory ordering and fence in core/src once; say which loom model catches each.

The claim checked: every ordering in `shmring-core`, weakened once, makes a named
loom model fail, or `loom-tests/mutations.toml` explains why no model can and what
covers it instead. The script finds the orderings itself (every `Ordering::Acquire`,
`Release`, `AcqRel` and `SeqCst` in the code of `core/src/**.rs`, each side of a
compare-exchange separately, and every call of a function whose name ends in
`fence`: `fence`, `waiter_fence`, `notifier_fence`), so an ordering added later is
checked without editing it.

Each mutation is applied to a scratch copy of the tree (the files git tracks plus
untracked, not ignored ones, so uncommitted changes are checked too; your tree is
never written), the loom tests are built, and the models are run one at a time
(a deadlocked loom model aborts its whole test binary), each under a timeout: first
the models `mutations.toml` expects to catch it, then, if none failed, the rest of
the suite until one fails. The unmutated suite is run first, model by model as
each is first needed, to be sure the models pass without the mutation and to size
the timeouts.

Weakenings: Acquire and Release -> Relaxed; AcqRel -> Acquire and -> Release (two
mutations); SeqCst -> the weakest ordering the operation still allows (load ->
Acquire, store -> Release, read-modify-write -> AcqRel); a compare-exchange's
failure ordering Acquire -> Relaxed; a fence -> removed, and a SeqCst fence also
-> AcqRel; a `*_fence()` call -> removed.

Usage (from anywhere in the repository; python3 >= 3.11, standard library only):

    loom-tests/mutate.py --list               # the mutations; nothing is built
    loom-tests/mutate.py                      # the whole run; writes loom-tests/MUTATIONS.md
    loom-tests/mutate.py --skip-explained     # leaves out what mutations.toml explains
    loom-tests/mutate.py --filter recover     # mutations whose file or fn contains
                                              # "recover" (repeatable); writes
                                              # <target-dir>/mutate/MUTATIONS-filtered.md

How long it takes: the first build compiles loom and the workspace without LTO
(about 2 minutes); then each mutation rebuilds in 5 to 10 s. A mutation a model
catches costs that model's run, usually seconds. A mutation nothing catches (the
explained ones included, unless --skip-explained) runs every model of each test
binary it changed. With the models within the loom budget of issue 16 (~20 s
each) and unchanged binaries skipped, the whole run of 77 mutations took 8 to 18
minutes in December 2026 (2 shared cores; the longer figure with builds beside
it).
A test binary the mutation leaves byte-identical is not run (its models cannot
change), and the unmutated models' times are cached by binary hash in
<target-dir>/mutate/.
Ctrl-C stops it cleanly: the scratch tree is the only thing ever mutated, and no
table is written.

Run it by hand after changing an ordering or a model, not in CI, and commit the
table it writes. It exits 1 if a mutation is NOT CAUGHT (no model fails and
mutations.toml gives no explanation) or the run was interrupted, 2 on an error
(the unmutated tree does not build or an unmutated model fails).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ORDERINGS = ("Relaxed", "Acquire", "Release", "AcqRel", "SeqCst")
RMW = {
    "swap", "fetch_add", "fetch_sub", "fetch_and", "fetch_or", "fetch_xor",
    "fetch_nand", "fetch_max", "fetch_min",
}
CAS = {"compare_exchange", "compare_exchange_weak"}


# ---------------------------------------------------------------------------
# A small Rust lexer: identifiers, punctuation, literals; comments dropped.


@dataclass
class Tok:
    kind: str  # "id", "punct", "lit"
    text: str
    start: int
    end: int
    line: int


def lex(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n, line = 0, len(src), 1

    def add(kind: str, a: int, b: int, ln: int) -> None:
        toks.append(Tok(kind, src[a:b], a, b, ln))

    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            line += src.count("\n", i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")
        ):
            close = '"' + m.group(1)
            j = src.find(close, m.end())
            j = n if j < 0 else j + len(close)
            line += src.count("\n", i, j)
            add("lit", i, j, line)
            i = j
        elif c == '"' or (c == "b" and src.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            start_line = line
            while j < n and src[j] != '"':
                if src[j] == "\\":
                    j += 1
                j += 1
            j += 1
            line += src.count("\n", i, j)
            add("lit", i, j, start_line)
            i = j
        elif c == "'" or (c == "b" and src.startswith("b'", i)):
            j = i + (2 if c == "b" else 1)
            if j < n and src[j] == "\\":  # escaped char literal
                k = src.find("'", j + 2)
                add("lit", i, k + 1, line)
                i = k + 1
            elif j + 1 < n and src[j + 1] == "'":  # 'x'
                add("lit", i, j + 2, line)
                i = j + 2
            else:  # lifetime or label
                k = j
                while k < n and (src[k].isalnum() or src[k] == "_"):
                    k += 1
                add("lit", i, k, line)
                i = k
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            add("id", i, j, line)
            i = j
        elif c.isdigit():
            j = i
            while j < n and (src[j].isalnum() or src[j] in "_."):
                if src[j] == "." and not (j + 1 < n and src[j + 1].isdigit()):
                    break
                j += 1
            add("lit", i, j, line)
            i = j
        else:
            two = src[i : i + 2]
            if two in ("::", "->", "=>"):
                add("punct", i, i + 2, line)
                i += 2
            else:
                add("punct", i, i + 1, line)
                i += 1
    return toks


# ---------------------------------------------------------------------------
# Finding the mutations.


@dataclass
class Scope:
    kind: str  # "fn", "impl", "trait", "mod", "macro", "block"
    name: str
    cfg: set[str]


@dataclass
class Mutation:
    file: str  # relative to core/src
    fn: str
    line: int
    site: str  # "Acquire#1", "fence(SeqCst)#1", "waiter_fence()#1"
    op: str  # "load", "store", "rmw", "cas success", "cas failure", "fence", "call", "?"
    original: str
    weakened: str
    start: int  # byte span replaced in the file
    end: int
    replacement: str
    loom_compiled: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.fn}:{self.site}:{self.weakened}"

    @property
    def describe(self) -> str:
        if self.op == "call" or self.weakened == "removed":
            return f"`{self.original}` removed"
        if self.op == "fence":
            return f"`{self.original}` -> `{self.original.split('(')[0]}({self.weakened})`"
        return f"{self.op} {self.original} -> {self.weakened}"


def header_info(header: list[Tok]) -> tuple[str, str, set[str]]:
    """What a `{` opens, from the tokens since the previous `;`, `{` or `}`."""
    cfg: set[str] = set()
    texts = [t.text for t in header]
    for k in range(len(texts) - 2):
        if texts[k] == "#" and texts[k + 1] == "[" and texts[k + 2] == "cfg":
            depth, j, pred = 0, k + 3, []
            while j < len(texts):
                if texts[j] == "[":
                    depth += 1
                if texts[j] == "]":
                    if depth == 0:
                        break
                    depth -= 1
                pred.append(texts[j])
                j += 1
            p = "".join(pred)
            if "shmring_loom" in p:
                cfg.add("not_loom" if "not(shmring_loom" in p else "loom_only")
            if p == "(test)":
                cfg.add("test")
    for k, t in enumerate(texts):
        if t == "fn" and k + 1 < len(texts) and header[k + 1].kind == "id":
            return "fn", texts[k + 1], cfg
    for k, t in enumerate(texts):
        if t == "macro_rules" and k + 2 < len(texts):
            return "macro", texts[k + 2] + "!", cfg
        if t in ("trait", "mod") and k + 1 < len(texts):
            return t, texts[k + 1], cfg
        if t == "impl":
            rest = texts[k + 1 :]
            if rest and rest[0] == "<":  # generics
                depth = 0
                for j, x in enumerate(rest):
                    depth += {"<": 1, ">": -1}.get(x, 0)
                    if depth == 0:
                        rest = rest[j + 1 :]
                        break
            if "for" in rest:
                rest = rest[rest.index("for") + 1 :]
            name = ""
            for x in rest:
                if x in ("<", "where"):
                    break
                if x[0].isalpha() or x[0] == "_":
                    name = x
            return "impl", name, cfg
    return "block", "", cfg


def matching(toks: list[Tok], k: int) -> int:
    """Index of the delimiter closing the one at `k`."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    opener, closer, depth = toks[k].text, pairs[toks[k].text], 0
    for j in range(k, len(toks)):
        if toks[j].text == opener:
            depth += 1
        elif toks[j].text == closer:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {opener} at line {toks[k].line}")


def receiver_start(toks: list[Tok], k: int) -> int | None:
    """Start of the expression before the `.` or `::` at `k` (`a.b().c`), or None."""
    j = k - 1
    while j >= 0:
        t = toks[j]
        if t.text in (")", "]"):
            depth = 0
            while j >= 0:
                depth += {")": 1, "]": 1, "(": -1, "[": -1}.get(toks[j].text, 0)
                if depth == 0:
                    break
                j -= 1
            j -= 1
            continue
        if t.kind != "id":
            return None
        if j > 0 and toks[j - 1].text in (".", "::"):
            j -= 2
            continue
        return j
    return None


def weakenings(op: str, order: str) -> list[str]:
    if op == "fence":
        return {"SeqCst": ["removed", "AcqRel"], "AcqRel": ["removed", "Acquire", "Release"]}.get(
            order, ["removed"]
        )
    if order in ("Acquire", "Release"):
        return ["Relaxed"]
    if order == "AcqRel":
        return ["Acquire", "Release"]
    if order == "SeqCst":
        return {"load": ["Acquire"], "store": ["Release"], "cas failure": ["Acquire"]}.get(
            op, ["AcqRel"]
        )
    return []


def enumerate_file(path: Path, rel: str, ambiguous: list[str]) -> list[Mutation]:
    src = path.read_text()
    toks = lex(src)
    out: list[Mutation] = []
    scopes: list[Scope] = []
    # Open delimiters: [kind, callee, argument index, token index].
    delims: list[list] = []
    boundary = -1  # index of the last `;`, `{` or `}`
    counters: dict[tuple[str, str], int] = {}

    def fn_name() -> str:
        name, owner = "", ""
        for s in reversed(scopes):
            if not name and s.kind == "fn":
                name = s.name
            elif name and s.kind in ("impl", "trait", "macro"):
                owner = s.name
                break
        if not name:
            return "(no fn)"
        return f"{owner}::{name}" if owner else name

    def cfgs() -> set[str]:
        c: set[str] = set()
        for s in scopes:
            c |= s.cfg
        # attributes on the statement itself
        c |= header_info(toks[boundary + 1 : k])[2]
        return c

    def add(op: str, original: str, start: int, end: int, line: int, site_kind: str,
            replace_with: list[tuple[str, str]]) -> None:
        fn = fn_name()
        key = (fn, site_kind)
        counters[key] = counters.get(key, 0) + 1
        site = f"{site_kind}#{counters[key]}"
        c = cfgs()
        for weakened, repl in replace_with:
            m = Mutation(rel, fn, line, site, op, original, weakened, start, end, repl,
                         loom_compiled="not_loom" not in c and "test" not in c)
            if "loom_only" in c:
                m.notes.append("in code compiled only under cfg(shmring_loom)")
            out.append(m)

    k = 0
    while k < len(toks):
        t = toks[k]
        if t.text in ("(", "[", "{"):
            callee = toks[k - 1].text if k > 0 and toks[k - 1].kind == "id" else ""
            if t.text == "{":
                kind, name, cfg = header_info(toks[boundary + 1 : k])
                scopes.append(Scope(kind, name, cfg))
                boundary = k
            delims.append([t.text, callee, 0, k])
        elif t.text in (")", "]", "}"):
            if delims:
                delims.pop()
            if t.text == "}":
                if scopes:
                    scopes.pop()
                boundary = k
        elif t.text == ",":
            if delims:
                delims[-1][2] += 1
        elif t.text == ";":
            boundary = k
        elif (
            t.kind == "id"
            and t.text == "Ordering"
            and k + 2 < len(toks)
            and toks[k + 1].text == "::"
            and toks[k + 2].text in ORDERINGS
        ):
            order = toks[k + 2].text
            call = delims[-1] if delims and delims[-1][0] == "(" else None
            callee, arg = (call[1], call[2]) if call else ("", 0)
            if callee.endswith("fence"):
                op = "fence"
            elif callee == "load":
                op = "load"
            elif callee == "store":
                op = "store"
            elif callee in RMW:
                op = "rmw"
            elif callee in CAS:
                op = "cas success" if arg == 2 else "cas failure" if arg == 3 else "?"
            elif callee == "fetch_update":
                op = "cas success" if arg == 0 else "cas failure" if arg == 1 else "?"
            else:
                op = "?"
            if order != "Relaxed":
                if op == "?":
                    ambiguous.append(
                        f"{rel}:{t.line}: Ordering::{order} outside a known atomic call "
                        f"(in `{callee or 'no call'}`, argument {arg}); weakened as an access"
                    )
                if op == "fence":
                    # The whole call, path included, is the span.
                    open_k = call[3]
                    first = open_k - 1
                    if open_k >= 2 and toks[open_k - 2].text == "::":
                        first = receiver_start(toks, open_k - 2) or first
                    close_k = matching(toks, open_k)
                    s, e = toks[first].start, toks[close_k].end
                    text = src[s:e]
                    reps = [
                        (w, "()" if w == "removed" else text.replace(f"Ordering::{order}",
                                                                     f"Ordering::{w}"))
                        for w in weakenings("fence", order)
                    ]
                    add("fence", f"{callee}({order})", s, e, t.line, f"{callee}({order})", reps)
                else:
                    reps = [(w, f"Ordering::{w}") for w in weakenings(op, order)]
                    add(op if op != "?" else "access", order, t.start, toks[k + 2].end, t.line,
                        order, reps)
            k += 3
            continue
        elif (
            t.kind == "id"
            and t.text.endswith("fence")
            and k + 2 < len(toks)
            and toks[k + 1].text == "("
            and toks[k + 2].text != "Ordering"
            and not (k > 0 and toks[k - 1].text == "fn")
            and t.text == "fence"
        ):
            ambiguous.append(f"{rel}:{t.line}: `fence(` without an `Ordering::` argument: not mutated")
        elif t.kind == "id" and t.text in ORDERINGS and not (k > 0 and toks[k - 1].text == "::"):
            if t.text != "Relaxed" and not (k > 0 and toks[k - 1].text in ("use", "{", ",")):
                ambiguous.append(f"{rel}:{t.line}: bare `{t.text}` (not `Ordering::{t.text}`): not mutated")
        elif (
            t.kind == "id"
            and t.text.endswith("fence")
            and t.text != "fence"
            and k + 1 < len(toks)
            and toks[k + 1].text == "("
            and not (k > 0 and toks[k - 1].text == "fn")
        ):
            # A call of a fence wrapper (`futex.waiter_fence()`): removed.
            first = receiver_start(toks, k - 1) if k > 0 and toks[k - 1].text in (".", "::") else k
            if first is None:
                ambiguous.append(f"{rel}:{t.line}: `{t.text}(` with a receiver not understood: not mutated")
            else:
                close_k = matching(toks, k + 1)
                s, e = toks[first].start, toks[close_k].end
                add("call", src[s:e], s, e, t.line, f"{t.text}()", [("removed", "()")])
        k += 1
    return out


def enumerate_mutations(root: Path) -> tuple[list[Mutation], list[str]]:
    ambiguous: list[str] = []
    muts: list[Mutation] = []
    src = root / "core" / "src"
    for path in sorted(src.rglob("*.rs")):
        muts += enumerate_file(path, str(path.relative_to(src)), ambiguous)
    ids = [m.id for m in muts]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        fail(f"mutation ids not unique: {sorted(dup)}")
    return muts, ambiguous


# ---------------------------------------------------------------------------
# Running.


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float | None = None):
    """Runs cmd in its own process group; (returncode or None on timeout, output, seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, errors="replace", start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out, time.monotonic() - t0
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise


def classify(rc: int | None, output: str) -> str:
    if rc is None:
        return "timeout"
    if "Causality violation" in output:
        return "race"
    if "deadlock" in output:
        return "deadlock"
    if "exceeded maximum number of branches" in output:
        return "branch limit"
    m = re.search(r"panicked at [^\n]*\n([^\n]*)", output)
    if m and m.group(1).strip():
        msg = m.group(1).strip().replace("|", "/")
        return "panic: " + (msg[:70] + "..." if len(msg) > 70 else msg)
    return "panic" if rc != -signal.SIGABRT else "abort"


class Runner:
    def __init__(self, args, root: Path):
        self.args = args
        self.root = root
        self.target = Path(args.target_dir).resolve()
        self.tree = self.target / "mutate" / "tree"
        self.logs = self.target / "mutate" / "logs"
        self.env = dict(os.environ, CARGO_TARGET_DIR=str(self.target),
                        RUSTFLAGS="--cfg shmring_loom")
        if not args.ci_profile:
            # `cargo test --release` builds with the bench profile, which inherits
            # release's LTO and single codegen unit: minutes per mutation. The
            # models' semantics do not depend on them; only the build time does.
            for profile in ("RELEASE", "BENCH"):
                self.env[f"CARGO_PROFILE_{profile}_LTO"] = "false"
                self.env[f"CARGO_PROFILE_{profile}_CODEGEN_UNITS"] = "16"
                self.env[f"CARGO_PROFILE_{profile}_INCREMENTAL"] = "true"
        self.baseline_bins: dict[str, Path] = {}  # binary stem -> copy of unmutated binary
        self.models: list[tuple[str, str]] = []  # (binary stem, model)
        self.baseline_time: dict[tuple[str, str], float] = {}
        self.baseline_hash: dict[str, str] = {}

    def copy_tree(self) -> None:
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=self.root, check=True, capture_output=True,
        ).stdout.decode().split("\0")
        if self.tree.exists():
            shutil.rmtree(self.tree)
        for f in filter(None, files):
            src = self.root / f
            if src.is_file():
                dst = self.tree / f
                dst.parent.mkdir(parents=True, exist_ok=True)
                # A fresh mtime: cargo decides freshness by mtimes, and the last
                # build in this target directory may be of a mutant.
                shutil.copy(src, dst)
        self.logs.mkdir(parents=True, exist_ok=True)

    def build(self) -> tuple[dict[str, Path] | None, str, float]:
        rc, out, secs = run(
            ["cargo", "test", "-p", "shmring-loom-tests", "--release", "--no-run",
             "--message-format=json-render-diagnostics"],
            self.tree, self.env,
        )
        if rc != 0:
            return None, out, secs
        bins: dict[str, Path] = {}
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg[
                    "profile"]["test"] and msg["target"]["kind"] == ["test"]:
                bins[msg["target"]["name"]] = Path(msg["executable"])
        return bins, out, secs

    def setup(self) -> None:
        self.copy_tree()
        print("building the unmutated tree ...", flush=True)
        bins, out, secs = self.build()
        if bins is None:
            sys.stderr.write(out[-4000:])
            fail("the unmutated tree does not build")
        print(f"  built in {secs:.0f} s", flush=True)
        self.build_secs = secs
        keep = self.target / "mutate" / "baseline"
        keep.mkdir(parents=True, exist_ok=True)
        for stem, exe in sorted(bins.items()):
            copy = keep / stem
            shutil.copy2(exe, copy)
            self.baseline_bins[stem] = copy
            self.baseline_hash[stem] = digest(copy)
            rc, out, _ = run([str(copy), "--list"], self.tree)
            for line in out.splitlines():
                if line.endswith(": test"):
                    self.models.append((stem, line[: -len(": test")]))
        print(f"  {len(self.models)} models: " + ", ".join(m for _, m in self.models), flush=True)

    def run_model(self, exe: Path, model: str, timeout: float):
        rc, out, secs = run([str(exe), "--exact", model, "--test-threads=1", "--nocapture"],
                            self.tree, timeout=timeout)
        if rc == 0 and "test result: ok. 1 passed" not in out:
            fail(f"{exe.name} --exact {model} ran no test: is the model renamed?")
        return rc, out, secs

    def baseline(self, stem: str, model: str) -> float:
        key = (stem, model)
        cache = self.target / "mutate" / "baseline-times.json"
        cached = json.loads(cache.read_text()) if cache.exists() else {}
        ckey = f"{self.baseline_hash[stem]}:{model}"
        if key not in self.baseline_time and ckey in cached:
            self.baseline_time[key] = cached[ckey]
        if key not in self.baseline_time:
            print(f"    baseline {model} ...", end=" ", flush=True)
            rc, out, secs = self.run_model(self.baseline_bins[stem], model, self.args.baseline_timeout)
            if rc != 0:
                (self.logs / f"baseline-{model}.log").write_text(out)
                fail(
                    f"the unmutated model {model} fails ({classify(rc, out)}); "
                    f"log in {self.logs}/baseline-{model}.log")
            print(f"passes in {secs:.0f} s", flush=True)
            self.baseline_time[key] = secs
            cached[ckey] = secs
            cache.write_text(json.dumps(cached, indent=1))
        return self.baseline_time[key]

    def order(self, m: Mutation, expect: list[str]) -> list[tuple[str, str]]:
        known = {name for _, name in self.models}
        for e in expect:
            if e not in known:
                print(f"  warning: mutations.toml expects unknown model {e!r}", flush=True)
        first = [x for e in expect for x in self.models if x[1] == e]
        kind = m.file.split("/")[0]  # "spsc", "mpmc", or a file of both
        rest = [x for x in self.models if x not in first]
        # The binary of the mutated file's kind first, then the fastest models.
        cache = self.target / "mutate" / "baseline-times.json"
        cached = json.loads(cache.read_text()) if cache.exists() else {}

        def known_time(x: tuple[str, str]) -> float:
            return cached.get(f"{self.baseline_hash[x[0]]}:{x[1]}", float("inf"))

        rest.sort(key=lambda x: (x[0] != kind, known_time(x), self.models.index(x)))
        return first + rest

    def mutate(self, m: Mutation, expect: list[str]) -> tuple[str, list[tuple[str, str]]]:
        """Applies, builds and runs one mutation; (verdict, [(model, how)])."""
        path = self.tree / "core" / "src" / m.file
        original = path.read_text()
        try:
            assert original[m.start : m.end] in (m.original, f"Ordering::{m.original}") or \
                m.op in ("fence", "call"), (m.id, original[m.start : m.end])
            path.write_text(original[: m.start] + m.replacement + original[m.end :])
            bins, out, secs = self.build()
            print(f"  build {secs:.0f} s", flush=True)
            self.build_times.append(secs)
            if bins is None:
                (self.logs / f"{safe(m.id)}.build.log").write_text(out)
                return "does not compile", []
            if all(digest(exe) == self.baseline_hash.get(stem) for stem, exe in bins.items()):
                # The weakened code is not in the models' build (cfg'd out, or never
                # instantiated): no model can see it.
                print("  the test binaries are unchanged", flush=True)
                return "no effect", []
            caught: list[tuple[str, str]] = []
            unchanged = {stem for stem, exe in bins.items()
                         if digest(exe) == self.baseline_hash.get(stem)}
            if unchanged:
                print(f"  unchanged, not run: {', '.join(sorted(unchanged))}", flush=True)
            for stem, model in self.order(m, expect):
                if stem in unchanged:
                    # A test binary the mutation left byte-identical cannot fail.
                    continue
                base = self.baseline(stem, model)
                timeout = self.args.timeout or max(60.0, 4 * base + 30)
                rc, out, msecs = self.run_model(bins[stem], model, timeout)
                if rc == 0:
                    print(f"    {model}: passes ({msecs:.0f} s)", flush=True)
                    continue
                how = classify(rc, out)
                print(f"    {model}: FAILS, {how} ({msecs:.0f} s)", flush=True)
                (self.logs / f"{safe(m.id)}.{model}.log").write_text(out)
                caught.append((model, how))
                if not self.args.all_models:
                    break
            return ("caught" if caught else "not caught"), caught
        finally:
            path.write_text(original)


def fail(message: str) -> None:
    print(f"mutate.py: {message}", file=sys.stderr)
    sys.exit(2)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.#-]+", "_", s)


def git(root: Path, *a: str) -> str:
    return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True).stdout.strip()


def loom_version(root: Path) -> str:
    lock = (root / "Cargo.lock").read_text()
    m = re.search(r'name = "loom"\nversion = "([^"]+)"', lock)
    return m.group(1) if m else "?"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--list", action="store_true", help="print the mutations and exit")
    ap.add_argument("--filter", action="append",
                    help="only mutations whose file or fn contains this (repeatable: any)")
    ap.add_argument("--all-models", action="store_true",
                    help="run every model on every mutation and list every failure")
    ap.add_argument("--skip-explained", action="store_true",
                    help="do not run mutations that mutations.toml explains")
    ap.add_argument("--out", help="the table's path (default loom-tests/MUTATIONS.md, or "
                    "<target-dir>/mutate/MUTATIONS-filtered.md with --filter)")
    ap.add_argument("--target-dir", help="cargo's target directory; the scratch tree and "
                    "logs go in its mutate/ (default <repo>/target/loom-mutants)")
    ap.add_argument("--timeout", type=float,
                    help="seconds per mutated model run (default 4 x its unmutated time + 30 s, "
                    "at least 60 s)")
    ap.add_argument("--baseline-timeout", type=float, default=900,
                    help="seconds per unmutated model run (default 900)")
    ap.add_argument("--ci-profile", action="store_true",
                    help="build with the workspace's release profile as CI does (LTO, one "
                    "codegen unit: slower builds); by default LTO is off, 16 codegen units, "
                    "incremental")
    ap.add_argument("--expectations", help="default loom-tests/mutations.toml")
    args = ap.parse_args()

    root = Path(git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel"))
    args.target_dir = args.target_dir or str(root / "target" / "loom-mutants")
    muts, ambiguous = enumerate_mutations(root)
    exp_path = Path(args.expectations) if args.expectations else root / "loom-tests" / "mutations.toml"
    expectations = tomllib.loads(exp_path.read_text()) if exp_path.exists() else {}
    ids = {m.id for m in muts}
    stale = sorted(k for k in expectations if k not in ids)

    selected = [m for m in muts if not args.filter
                or any(f in m.file or f in m.fn for f in args.filter)]
    for a in ambiguous:
        print(f"ambiguous: {a}", file=sys.stderr)
    for s in stale:
        print(f"warning: {exp_path.name} names a mutation that no longer exists: {s}", file=sys.stderr)

    if args.list:
        for m in selected:
            e = expectations.get(m.id, {})
            mark = "expect " + ", ".join(e["expect"]) if e.get("expect") else (
                "explained" if e.get("explained") else "")
            flags = "" if m.loom_compiled else " [not compiled under loom]"
            flags += "".join(f" [{x}]" for x in m.notes)
            print(f"{m.file}:{m.line}\t{m.id}\t{m.describe}{flags}\t{mark}")
        sites = len({(m.file, m.fn, m.site) for m in selected})
        print(f"{len(selected)} mutations of {sites} sites", file=sys.stderr)
        return 0

    out_path = Path(args.out) if args.out else (
        Path(args.target_dir) / "mutate" / "MUTATIONS-filtered.md" if args.filter
        else root / "loom-tests" / "MUTATIONS.md")
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    t_start = time.monotonic()
    runner = Runner(args, root)
    runner.build_times = []
    rows: list[tuple[Mutation, str]] = []
    counts = {"caught": 0, "explained": 0, "not caught": 0, "does not compile": 0}
    interrupted = False
    try:
        if any(m.loom_compiled for m in selected):
            runner.setup()
        for n, m in enumerate(selected, 1):
            e = expectations.get(m.id, {})
            explained = e.get("explained")
            print(f"[{n}/{len(selected)}] {m.id} (line {m.line})", flush=True)
            if not m.loom_compiled or (explained and args.skip_explained):
                verdict, caught = "not run", []
                print("  not compiled under loom" if not m.loom_compiled else "  explained, skipped",
                      flush=True)
            else:
                t0 = time.monotonic()
                verdict, caught = runner.mutate(m, e.get("expect", []))
                print(f"  {verdict} in {time.monotonic() - t0:.0f} s", flush=True)
            if verdict == "caught":
                result = "caught by " + ", ".join(f"`{mo}` ({how})" for mo, how in caught)
                if explained:
                    result += " (mutations.toml explains it as uncaught: update it)"
                counts["caught"] += 1
            elif verdict == "does not compile":
                result = "does not compile"
                counts["does not compile"] += 1
            elif explained:
                pre = "not compiled under loom; " if not m.loom_compiled else (
                    "not run; " if verdict == "not run" else
                    "the test binaries are unchanged; " if verdict == "no effect" else "")
                result = f"explained: {pre}{' '.join(explained.split())}"
                counts["explained"] += 1
            else:
                result = "**NOT CAUGHT**" + (
                    " (not compiled under loom)" if not m.loom_compiled else
                    " (the test binaries are unchanged)" if verdict == "no effect" else "")
                counts["not caught"] += 1
            rows.append((m, result))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; the table below is partial and no file is written", flush=True)

    total = time.monotonic() - t_start
    dirty = "-dirty" if git(root, "status", "--porcelain", "--untracked-files=no") else ""
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Mutation table: each ordering in `core/src` weakened once",
        "",
        f"Written by `loom-tests/mutate.py{''.join(' --filter ' + f for f in args.filter or [])}"
        f"{' --all-models' if args.all_models else ''}"
        f"{' --skip-explained' if args.skip_explained else ''}"
        f"{' --ci-profile' if args.ci_profile else ''}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"{git(root, 'rev-parse', '--short', 'HEAD')}{dirty}, {rustc}, loom {loom_version(root)}, "
        + (f"{total / 60:.0f} min in all" if total >= 120 else f"{total:.0f} s in all")
        + (f" (builds {sum(runner.build_times) / max(1, len(runner.build_times)):.0f} s each)"
           if runner.build_times else "") + "."
        + (f" LOOM_MAX_PREEMPTIONS={os.environ['LOOM_MAX_PREEMPTIONS']} overrides the models' "
           "bounds." if "LOOM_MAX_PREEMPTIONS" in os.environ else ""),
        "A model named is the first that failed (expected models first, see "
        "`loom-tests/mutations.toml`); explanations are that file's.",
        "",
        "| file | fn | line | mutation | result |",
        "|---|---|---|---|---|",
    ]
    for m, result in rows:
        lines.append(f"| {m.file} | `{m.fn}` | {m.line} | {m.describe.replace('|', '/')} | {result} |")
    lines += [
        "",
        f"caught {counts['caught']} / explained {counts['explained']} / not caught "
        f"{counts['not caught']} / does not compile {counts['does not compile']} / total {len(rows)}"
        + (f" (of {len(selected)}: interrupted)" if interrupted else ""),
    ]
    if ambiguous:
        lines += ["", "Not mutated (the enumerator could not place them):", ""]
        lines += [f"- {a}" for a in ambiguous]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not interrupted:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text)
        print(f"written to {out_path}")
    return 1 if counts["not caught"] or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
