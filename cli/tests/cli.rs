//! The `shmring` tool across real processes: objects of every kind held by
//! child processes (some killed), the tool run as its own process on them, its
//! JSON read back. The children are this test binary re-run on one `child_*`
//! test (the os crate's `tests/common`).

#[path = "../../os/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn child_start() -> bool {
    child_start_within(Duration::from_secs(120))
}

/// Runs the tool with `args`; its output (the test fails if it does not exit
/// within a minute: `watch` is bounded by `--count`).
fn shmring(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmring"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run shmring");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shmring {args:?} did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("output")
}

/// Runs the tool, requires exit status `code`, parses its stdout as one JSON
/// document.
fn shmring_json(args: &[&str], code: i32) -> Value {
    let out = shmring(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "shmring {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shmring {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The `ls --json` objects whose names match `glob`, by name.
fn listed(glob: &str) -> BTreeMap<String, Value> {
    let doc = shmring_json(&["ls", "--json", "--name", glob], 0);
    assert_eq!(doc["schema"], 1);
    doc["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_owned(), o.clone()))
        .collect()
}

/// Child: common's `hold_object_child` (spawned by `spawn_holder`).
#[test]
fn child_holder() {
    hold_object_child();
}

/// The pids of `object`'s holders, live (`true`) or recorded by a dead one.
fn holder_pids(object: &Value) -> Vec<(bool, Option<u64>)> {
    object["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["live"].as_bool().unwrap(), h["pid"].as_u64()))
        .collect()
}

/// One object of each kind held by a live child and one by a killed child:
/// `ls --json` gives each its kind, the live ones not stale with every holder
/// live under the child's pid, the killed ones stale with every holder dead
/// (the dead pid still recorded where the layout keeps one); a topic is one
/// entry of two files. Then `clean --stale NAME…` over all of them removes
/// exactly the stale ones and keeps the live ones, and `ls` agrees.
#[test]
fn ls_json_shows_kinds_liveness_and_pids_and_clean_stale_removes_only_the_stale() {
    let tag = unique("ls");
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for kind in KINDS {
        let name = format!("{tag}-live-{kind}");
        let (child, pid) = spawn_holder(kind, &name);
        live.push((kind, name, pid, child));
        let name = format!("{tag}-dead-{kind}");
        let (mut child, pid) = spawn_holder(kind, &name);
        child.kill();
        dead.push((kind, name, pid));
    }
    let objects = listed(&format!("{tag}-*"));
    assert_eq!(objects.len(), 2 * KINDS.len(), "{:#?}", objects.keys());
    for (kind, name, pid, _) in &live {
        let o = &objects[name];
        assert_eq!(o["kind"], *kind, "{name}");
        assert_eq!(o["valid"], true, "{name}: {o}");
        assert_eq!(o["stale"], false, "{name}");
        assert!(o["layout_version"].is_u64(), "{name}");
        let pids = holder_pids(o);
        match *kind {
            "event" | "semaphore" => assert!(pids.is_empty(), "{name}: {o}"),
            "value" => assert_eq!(pids, vec![(true, Some(u64::from(*pid)))], "{name}: {o}"),
            // A topic: its publisher and one subscriber.
            _ => assert_eq!(pids, vec![(true, Some(u64::from(*pid))); 2], "{name}: {o}"),
        }
        if *kind == "topic" {
            assert_eq!(o["files"].as_array().unwrap().len(), 2, "{o}");
        }
    }
    for (kind, name, pid) in &dead {
        let o = &objects[name];
        assert_eq!(o["kind"], *kind, "{name}");
        assert_eq!(o["stale"], true, "{name}");
        for (is_live, recorded) in holder_pids(o) {
            assert!(!is_live, "{name}: {o}");
            if let Some(recorded) = recorded {
                assert_eq!(recorded, u64::from(*pid), "{name}: {o}");
            }
        }
    }
    // The text listing says the same.
    let out = shmring(&["ls", "--name", &format!("{tag}-*")]);
    let text = String::from_utf8(out.stdout).unwrap();
    for (_, name, _) in &dead {
        let line = text.lines().find(|l| l.contains(name.as_str())).unwrap();
        assert!(line.trim_end().ends_with("stale"), "{line}");
    }

    let mut args = vec!["clean", "--stale", "--json"];
    args.extend(live.iter().map(|(_, n, _, _)| n.as_str()));
    args.extend(dead.iter().map(|(_, n, _)| n.as_str()));
    let doc = shmring_json(&args, 0);
    let outcomes: BTreeMap<&str, &str> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    for (_, name, _) in &dead {
        assert_eq!(outcomes[name.as_str()], "removed", "{doc}");
    }
    for (_, name, _, _) in &live {
        assert_eq!(outcomes[name.as_str()], "kept", "{doc}");
    }
    let left: Vec<String> = listed(&format!("{tag}-*")).into_keys().collect();
    let mut expected: Vec<String> = live.iter().map(|(_, n, _, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(left, expected);
    for (_, _, _, child) in &mut live {
        child.release();
        assert!(child.wait().success());
    }
    assert!(
        listed(&format!("{tag}-*")).is_empty(),
        "released objects are removed"
    );
}

/// Child: common's `attach_until_gone` on `NAME`, pausing 2 ms between
/// attachments: the tool lists (is it stale?) before it locks, so it needs a free
/// moment at both, and the race stays: it reattaches during the tool's runs.
#[test]
fn child_attacher() {
    if !child_start() {
        return;
    }
    attach_until_gone(&param("NAME"), Duration::from_millis(2));
}

/// A stale channel another process keeps attaching to while `clean --stale`
/// runs over and over: while an attachment holds it, the tool keeps it; once
/// it removes it, no attacher ever held a handle on the removed name.
#[test]
fn clean_stale_never_removes_an_object_a_process_attaches_to() {
    let name = unique("race");
    let (mut creator, _) = spawn_holder("spsc", &name);
    creator.kill();
    let mut attacher = Peer::spawn("child_attacher", &[("NAME", &name)]);
    attacher.expect("READY");
    attacher.expect("ATTACHED");
    let (mut kept, mut removed) = (0u32, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !removed {
        let doc = shmring_json(&["clean", "--stale", "--json", &name], 0);
        match doc["results"][0]["outcome"].as_str() {
            Some("removed") => removed = true,
            Some("kept") => kept += 1,
            other => panic!("{other:?}: {doc}"),
        }
    }
    assert!(removed, "removed once free (kept {kept} times)");
    let done = attacher.expect("DONE");
    let (attached, violations) = done.split_once(' ').unwrap();
    assert!(
        attached.parse::<u64>().unwrap() > 0,
        "the attacher attached"
    );
    assert_eq!(violations, "0", "a name removed under a live handle");
    attacher.release();
    assert!(attacher.wait().success());
    assert_no_shm(&name);
}

/// Child: creates `KIND` (`topic`: lossy, `spsc` or `mpmc`) named `NAME` and sends
/// `RATE` messages per second, paced against the clock (a late sender catches
/// up) until killed (a minute at most); a channel's child drains what it sends.
#[test]
fn child_paced_sender() {
    if !child_start() {
        return;
    }
    use shmring::broadcast::{BroadcastBuilder, Policy};
    use shmring::channel::ChannelBuilder;
    use shmring::mpmc::MpmcChannelBuilder;
    use shmring::{MessageReceiver, MessageSender};
    let name = param("NAME");
    let rate = param_u64("RATE") as f64;
    // The object, its sender and (a channel's) the receiver that drains it.
    type Drain = Option<Box<dyn MessageReceiver>>;
    let (_object, mut tx, mut rx): (Box<dyn std::any::Any>, Box<dyn MessageSender>, Drain) =
        match param("KIND").as_str() {
            "topic" => {
                let topic = BroadcastBuilder::shm(&name)
                    .policy(Policy::Lossy)
                    .create()
                    .unwrap();
                let publisher = topic.publisher().unwrap();
                (Box::new(topic), Box::new(publisher), None)
            }
            "spsc" => {
                let channel = ChannelBuilder::shm(&name).create().unwrap();
                let (tx, rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
                (Box::new(channel), Box::new(tx), Some(Box::new(rx)))
            }
            "mpmc" => {
                let channel = MpmcChannelBuilder::shm(&name).create().unwrap();
                let (tx, rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
                (Box::new(channel), Box::new(tx), Some(Box::new(rx)))
            }
            other => panic!("unknown kind {other}"),
        };
    let mut buf = vec![0; 4096];
    let mut send = || {
        tx.send(&[7; 48]).unwrap();
        if let Some(rx) = &mut rx {
            rx.try_recv(&mut buf).unwrap();
        }
    };
    report("READY", std::process::id());
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(60) {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            send();
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// `watch --json` on a topic and on an MPMC channel fed at a known rate by
/// another process: the median of its per-interval message rates is within
/// 20 % of the sender's; a topic's bytes/s is at least its payload's.
#[test]
fn watch_reports_the_rate_of_a_known_sender_within_20_percent() {
    const RATE: u64 = 2000;
    for kind in ["topic", "mpmc", "spsc"] {
        let name = unique(&format!("watch-{kind}"));
        let mut sender = Peer::spawn(
            "child_paced_sender",
            &[("KIND", &kind), ("NAME", &name), ("RATE", &RATE)],
        );
        sender.expect("READY");
        let out = shmring(&[
            "watch",
            &name,
            "--json",
            "--interval",
            "0.4",
            "--count",
            "6",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6, "{lines:?}");
        let median = |field: &str| {
            let mut rates: Vec<f64> = lines.iter().filter_map(|l| l[field].as_f64()).collect();
            rates.sort_by(f64::total_cmp);
            rates.get(rates.len() / 2).copied()
        };
        let (messages, bytes) = (median("messages_per_s"), median("bytes_per_s"));
        if kind == "spsc" {
            assert_eq!(messages, None, "an SPSC channel counts bytes only");
        } else {
            let median = messages.expect("a message rate");
            let error = (median - RATE as f64).abs() / RATE as f64;
            assert!(
                error <= 0.2,
                "{kind}: median {median} msg/s, sent {RATE}/s: {lines:?}"
            );
        }
        if kind == "mpmc" {
            assert_eq!(bytes, None, "an MPMC channel counts messages only");
        } else {
            // Each 48-byte payload is framed: at least its bytes, at most
            // twice (a frame header, padding).
            let per_message = bytes.expect("a byte rate") / RATE as f64;
            assert!(
                (48.0 * 0.8..=96.0 * 1.2).contains(&per_message),
                "{kind}: {per_message} bytes per message: {lines:?}"
            );
        }
        for l in &lines {
            assert_eq!(l["stale"], false);
            assert_eq!(l["name"], name.as_str());
        }
        // It sends until killed (a minute at most).
        sender.kill();
        assert!(shmring(&["clean", &name]).status.success());
    }
}

/// `inspect` on random bytes under a shmring name (and a file too short for any
/// header): exit status 4, the name and what is wrong on stderr, `valid: false`
/// with the error in JSON; `ls` lists it as invalid and still exits 0; a name
/// that does not exist is status 3, an impossible name status 2.
#[test]
fn inspect_of_random_bytes_exits_with_an_error_message_and_code() {
    let mut rng = XorShift::new(seed("inspect_random"));
    let tag = unique("random");
    for (i, len) in [4096usize, 600, 17, 0].into_iter().enumerate() {
        let name = format!("{tag}-{i}");
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        std::fs::write(shm_path(&name), &bytes).unwrap();
        let out = shmring(&["inspect", &name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{name} ({len} bytes): {stderr}");
        assert!(
            stderr.starts_with("shmring: ") && stderr.contains(&name),
            "{stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("INVALID"), "{stdout}");
        let doc = shmring_json(&["inspect", "--json", &name], 4);
        assert_eq!(doc["object"]["valid"], false, "{doc}");
        assert!(
            doc["object"]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
        );
        std::fs::remove_file(shm_path(&name)).unwrap();
    }
    let name = format!("{tag}-listed");
    std::fs::write(shm_path(&name), [0xa5u8; 1024]).unwrap();
    let objects = listed(&name);
    assert_eq!(objects[&name]["valid"], false);
    std::fs::remove_file(shm_path(&name)).unwrap();

    let out = shmring(&["inspect", &format!("{tag}-absent")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such object"));
    assert_eq!(shmring(&["inspect", "a/b"]).status.code(), Some(2));
}

/// `inspect --json` on a live object of each kind: valid, exit 0, and the
/// header fields of its kind in `details`; the text form says `valid`.
#[test]
fn inspect_shows_each_kinds_header_fields() {
    let expected: [(&str, &[&str]); 7] = [
        (
            "spsc",
            &[
                "capacity",
                "write_position",
                "read_position",
                "producer_pid",
            ],
        ),
        (
            "mpmc",
            &["slots", "slot_size", "tail", "head", "lost", "entries"],
        ),
        (
            "topic",
            &["capacity", "policy", "write_seq", "subscriber_slots"],
        ),
        ("event", &["sequence", "waiters"]),
        ("semaphore", &["value", "max", "waiters"]),
        (
            "value",
            &["value_size", "seq", "version", "writing", "writer_pid"],
        ),
        (
            "mutex",
            &[
                "value_size",
                "slots",
                "state",
                "locked_by",
                "waiters",
                "inconsistent",
                "deaths",
                "slot_table",
            ],
        ),
    ];
    for (kind, fields) in expected {
        let name = unique(&format!("inspect-{kind}"));
        let (mut child, _) = spawn_holder(kind, &name);
        let doc = shmring_json(&["inspect", "--json", &name], 0);
        let details = doc["object"]["details"].as_object().expect("details");
        for field in fields {
            assert!(details.contains_key(*field), "{kind}: no {field} in {doc}");
        }
        if kind == "value" {
            assert_eq!(
                (details["version"].as_u64(), details["writing"].as_bool()),
                (Some(1), Some(false))
            );
        }
        if kind == "mutex" {
            assert_eq!(
                (
                    details["locked_by"].as_u64(),
                    details["inconsistent"].as_bool()
                ),
                (Some(0), Some(false))
            );
        }
        if kind == "semaphore" {
            assert_eq!(
                (details["value"].as_u64(), details["max"].as_u64()),
                (Some(2), Some(5))
            );
        }
        let out = shmring(&["inspect", &name]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("verdict:        valid"), "{text}");
        child.release();
        assert!(child.wait().success());
    }
}

/// `clean` of a named live object keeps it and exits 5; of a missing one, 3;
/// `--dry-run` removes nothing and says what it would; usage errors exit 2.
#[test]
fn clean_exit_codes_and_dry_run() {
    let name = unique("clean-codes");
    let (mut holder, _) = spawn_holder("event", &name);
    let doc = shmring_json(&["clean", "--json", &name], 5);
    assert_eq!(doc["results"][0]["outcome"], "kept", "{doc}");
    holder.kill();
    let doc = shmring_json(&["clean", "--dry-run", "--json", &name], 0);
    assert_eq!(doc["results"][0]["outcome"], "would_remove", "{doc}");
    assert!(shm_path(&name).exists(), "a dry run removed it");
    let doc = shmring_json(&["clean", "--json", &name], 0);
    assert_eq!(doc["results"][0]["outcome"], "removed", "{doc}");
    assert_no_shm(&name);
    let doc = shmring_json(&["clean", "--json", &name], 3);
    assert_eq!(doc["results"][0]["outcome"], "not_found", "{doc}");
    assert_eq!(
        shmring(&["clean"]).status.code(),
        Some(2),
        "neither names nor --stale"
    );

    // --stale --name GLOB: only the stale objects the glob matches.
    let tag = unique("glob");
    for suffix in ["a1", "a2", "b1"] {
        let (mut holder, _) = spawn_holder("semaphore", &format!("{tag}-{suffix}"));
        holder.kill();
    }
    let doc = shmring_json(
        &["clean", "--stale", "--json", "--name", &format!("{tag}-a*")],
        0,
    );
    assert_eq!(doc["results"].as_array().unwrap().len(), 2, "{doc}");
    let left: Vec<String> = listed(&format!("{tag}-*")).into_keys().collect();
    assert_eq!(left, [format!("{tag}-b1")]);
    assert!(shmring(&["clean", &format!("{tag}-b1")]).status.success());
    assert_eq!(
        shmring(&["watch", &name, "--interval", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(
        shmring(&["watch", &name, "--count", "1"]).status.code(),
        Some(3)
    );
}

/// Every command's `--help` shows an example; `man` prints a roff page for the
/// tool and for each command.
#[test]
fn help_has_examples_and_man_pages_render() {
    for command in ["ls", "inspect", "watch", "clean", "man"] {
        let out = shmring(&[command, "--help"]);
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Examples:\n  shmring "), "{command}: {help}");
    }
    let out = shmring(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH shmring"),
        "{page}"
    );
    for command in ["ls", "inspect", "watch", "clean"] {
        assert!(page.contains(command), "the page names {command}");
        let out = shmring(&["man", command]);
        let page = String::from_utf8(out.stdout).unwrap();
        assert!(page.contains(&format!(".TH shmring-{command}")), "{page}");
    }
    assert_eq!(shmring(&["man", "nope"]).status.code(), Some(2));
}

/// `ls --json --sockets DIR` lists the connection sockets of a listeners'
/// directory: one bound by a listener `listening`, one its listener left behind
/// not; `--kind socket` lists sockets only, `--stale` only the left-behind one.
#[test]
fn ls_lists_connection_sockets_with_their_listeners() {
    use std::os::unix::fs::PermissionsExt;
    let temp = TempDir::new("cli-sockets");
    let dir = temp.path().join("sock");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _listener = shmring::Listener::builder("live")
        .directory(&dir)
        .bind()
        .unwrap();
    // A socket file whose listener is gone (std's listener does not unlink).
    drop(std::os::unix::net::UnixListener::bind(dir.join("left.sock")).unwrap());
    let dir = dir.to_str().unwrap();
    let sockets = |extra: &[&str]| {
        let mut args = vec!["ls", "--json", "--sockets", dir];
        args.extend(extra);
        let doc = shmring_json(&args, 0);
        let seen: Vec<(String, Value)> = doc["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["listening"].clone(),
                )
            })
            .collect();
        (seen, doc["objects"].as_array().unwrap().len())
    };
    let (seen, _) = sockets(&[]);
    assert_eq!(
        seen,
        [
            ("left".to_owned(), Value::Bool(false)),
            ("live".to_owned(), Value::Bool(true))
        ]
    );
    let (seen, objects) = sockets(&["--kind", "socket"]);
    assert_eq!((seen.len(), objects), (2, 0));
    let (seen, _) = sockets(&["--stale"]);
    assert_eq!(seen, [("left".to_owned(), Value::Bool(false))]);
}

/// A doorbell FIFO left without its segment (made here by hand, as a crash
/// between removing a segment and its doorbells would leave it): `ls --kind
/// doorbells` lists it as kind `doorbells`, stale, with the FIFO in `bells`;
/// `clean --stale` removes it.
#[test]
fn orphan_doorbells_are_listed_and_cleaned() {
    let name = unique("orphan");
    let fifo = std::path::Path::new("/dev/shm").join(format!("shmring-bell.{name}.data"));
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c_path` is a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let doc = shmring_json(&["ls", "--json", "--kind", "doorbells"], 0);
    let entry = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} is listed: {doc}"));
    assert_eq!(entry["kind"], "doorbells", "{entry}");
    assert_eq!(entry["stale"], true, "{entry}");
    assert_eq!(entry["bells"][0], fifo.to_str().unwrap(), "{entry}");
    let doc = shmring_json(&["clean", "--stale", "--json", "--name", &name], 0);
    assert_eq!(doc["results"][0]["outcome"], "removed", "{doc}");
    assert!(!fifo.exists(), "the FIFO is removed");
}

/// `shmring bridge` (feature `bridge`) as two processes over loopback: one
/// carries a local channel out to a Zenoh key, the other carries that key into
/// another local channel. Every message arrives in order; SIGINT makes the
/// outbound process send its end of stream, print its final counts as JSON and
/// exit 0; the inbound process then ends by itself (every source ended) and the
/// local receiver gets `Disconnected`.
#[cfg(feature = "bridge")]
#[test]
fn bridge_carries_a_channel_across_and_ends_in_order_on_sigint() {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Stdio};

    use shmring::{ChannelBuilder, RecvTimeoutError};

    /// The tool's JSON lines on stdout, read on a thread of their own.
    fn events(child: &mut Child) -> std::sync::mpsc::Receiver<Value> {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let doc: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if tx.send(doc).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// The next event of `kind`, skipping others, within 60 s.
    fn next_event(events: &std::sync::mpsc::Receiver<Value>, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let doc = events
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no {kind:?} event within 60 s: {e}"));
            assert_eq!(doc["schema"], 1, "{doc}");
            if doc["event"] == kind {
                return doc;
            }
        }
    }

    fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("shmring bridge did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (from, to) = (unique("bridge-from"), unique("bridge-to"));
    let key = format!("shmring-cli-test/{from}");
    let from_channel = ChannelBuilder::shm(&from).create().expect("create from");
    let to_channel = ChannelBuilder::shm(&to).create().expect("create to");
    let mut tx = from_channel.sender().expect("sender");
    let mut rx = to_channel.receiver().expect("receiver");
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_shmring"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run shmring bridge")
    };
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let mut out = spawn(&[
        "bridge",
        "--json",
        "--listen",
        &endpoint,
        "--out",
        &format!("spsc:{from}={key}"),
    ]);
    let out_events = events(&mut out);
    let started = next_event(&out_events, "started");
    assert_eq!(
        (&started["direction"], &started["object"], &started["key"]),
        (
            &Value::from("out"),
            &Value::from(from.as_str()),
            &Value::from(key.as_str())
        ),
        "{started}"
    );
    let mut inn = spawn(&[
        "bridge",
        "--json",
        "--connect",
        &endpoint,
        "--in",
        &format!("{key}=spsc:{to}"),
    ]);
    let in_events = events(&mut inn);
    next_event(&in_events, "started");
    // Zenoh drops what nobody subscribes to: send until the first one arrives,
    // then count from the message it carries.
    let mut buf = [0u8; 64];
    let mut next = 0u32;
    let first = loop {
        tx.send(&next.to_le_bytes()).expect("send");
        next += 1;
        match rx.recv_timeout(&mut buf, Duration::from_millis(50)) {
            Ok(n) => break u32::from_le_bytes(buf[..n].try_into().expect("4 bytes")),
            Err(RecvTimeoutError::TimedOut) => {}
            Err(e) => panic!("receive: {e}"),
        }
        assert!(next < 2000, "nothing crossed the bridge in 100 s");
    };
    for n in next..next + 1000 {
        tx.send(&n.to_le_bytes()).expect("send");
    }
    let last = next + 1000;
    for want in first + 1..last {
        let n = rx
            .recv_timeout(&mut buf, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("message {want}: {e}"));
        assert_eq!(
            u32::from_le_bytes(buf[..n].try_into().expect("4 bytes")),
            want
        );
    }
    // SAFETY: kill(2) with a live child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(out.id() as i32, libc::SIGINT) }, 0);
    next_event(&out_events, "signalled");
    let ended = next_event(&out_events, "ended");
    assert_eq!(
        ended["end"],
        format!("Stopped {{ sent: {last} }}"),
        "{ended}"
    );
    assert_eq!(ended["stats"]["sent"], last, "{ended}");
    assert!(exit_within(&mut out, Duration::from_secs(30)).success());
    // The far side saw an orderly end: its direction ends by itself.
    let ended = next_event(&in_events, "ended");
    assert_eq!(ended["end"], "AllSourcesEnded", "{ended}");
    assert_eq!(ended["stats"]["ended_in_band"], 1, "{ended}");
    // Messages sent before the inbound's subscriber was known: one gap.
    let gaps = u64::from(first != 0);
    assert_eq!(ended["stats"]["gaps"], gaps, "first {first}: {ended}");
    assert_eq!(ended["stats"]["delivered"], last - first, "{ended}");
    assert!(exit_within(&mut inn, Duration::from_secs(30)).success());
    match rx.recv_timeout(&mut buf, Duration::from_secs(10)) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
}
