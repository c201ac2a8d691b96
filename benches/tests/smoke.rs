//! The benchmark runners run, check what they moved, and report positive numbers.
//! Smoke tests, not timing tests: no test here asserts a speed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use shmring_benches::{CONTENDERS, bare_round_trips, shmring_round_trips};

/// The tests spin on both CPUs: one at a time, or a spinning thread of one test
/// starves the processes of another.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn every_contender_moves_its_messages() {
    let _serial = serial();
    for contender in CONTENDERS {
        for capacity in [64, 4096] {
            let t = (contender.run)(100_000, capacity);
            assert!(t.as_nanos() > 0, "{} reported no time", contender.name);
        }
    }
}

#[test]
fn round_trips_run() {
    let _serial = serial();
    assert!(shmring_round_trips(10_000).as_nanos() > 0);
    assert!(bare_round_trips(10_000).as_nanos() > 0);
}

/// A fresh folder for one test's report, removed by the test.
fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shmring-benches-smoke-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the program with `args`; returns its standard output (it must succeed).
fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_shmring-benches"))
        .args(args)
        .output()
        .expect("run shmring-benches");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "shmring-benches {args:?} failed: {}\n{out}\n{err}",
        output.status
    );
    out
}

#[test]
fn quick_json_of_two_methods_has_every_record() {
    let _serial = serial();
    let dir = out_dir("json");
    let out = run(&[
        "--quick",
        "--only",
        "pipe",
        "unix-socket",
        "--json",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    let report: Value = serde_json::from_str(&out).expect("stdout is the JSON report");
    let rounds = report["settings"]["rounds"].as_u64().expect("rounds");
    assert!(rounds >= 1);
    let records = report["records"].as_array().expect("records");
    let metrics = [
        "rtt_8B_p50_ns",
        "rtt_8B_p99_ns",
        "rtt_8B_p999_ns",
        "rtt_8B_max_ns",
        "rtt_8B_batch_mean_ns",
        "rtt_1KiB_p50_ns",
        "rtt_1KiB_p99_ns",
        "rtt_1KiB_p999_ns",
        "rtt_1KiB_max_ns",
        "tput_8B_msg_per_s",
        "bw_64KiB_GB_per_s",
    ];
    for method in ["pipe", "unix-socket"] {
        for metric in metrics {
            let record = records
                .iter()
                .find(|r| r["method"] == method && r["metric"] == metric)
                .unwrap_or_else(|| panic!("no {method} {metric} record in\n{out}"));
            let positive = |v: &Value| v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite());
            assert!(positive(&record["value"]), "{record}");
            let per_round = record["rounds"].as_array().expect("rounds");
            assert_eq!(per_round.len() as u64, rounds, "{record}");
            assert!(per_round.iter().all(positive), "{record}");
            // Only two methods ran: no reference, so no ratio.
            assert!(record["vs_limit"].is_null(), "{record}");
        }
    }
    // Nothing else ran.
    assert!(
        records
            .iter()
            .all(|r| r["method"] == "pipe" || r["method"] == "unix-socket")
    );
    assert!(report["failed"].as_array().expect("failed").is_empty());
    let machine = &report["machine"];
    assert!(machine["cpu_model"].is_string() && machine["kernel"].is_string());
    for file in ["report.json", "report.md", "latency.svg"] {
        let len = std::fs::metadata(dir.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .len();
        assert!(len > 0, "{file} is empty");
    }
    // Only kernel paths ran: the plot has their row of panels and no other.
    let svg = std::fs::read_to_string(dir.join("latency.svg")).expect("latency.svg");
    for panel in [
        "kernel paths · round trip, 8 B",
        "kernel paths · round trip, 1 KiB",
    ] {
        assert!(svg.contains(panel), "no panel {panel:?} in latency.svg");
    }
    assert!(
        !svg.contains("shared memory"),
        "a shared-memory row without its methods"
    );
    let written: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json"))
            .expect("report.json parses");
    assert_eq!(written, report, "report.json differs from the printed JSON");
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The report line that starts with `name` after the line that starts with
/// `table` (the table's heading).
fn row<'a>(out: &'a str, table: &str, name: &str) -> &'a str {
    out.lines()
        .skip_while(|line| !line.starts_with(table))
        .find(|line| line.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} row in the {table:?} table:\n{out}"))
}

#[test]
fn the_table_compares_against_the_references() {
    let _serial = serial();
    let dir = out_dir("table");
    let out = run(&[
        "--quick",
        "--rounds",
        "2",
        "--only",
        "busy-spin,cache-line,bare-ring",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    for (table, name) in [
        ("round trip, 8 B", "shmring busy-spin"),
        ("round trip, 8 B", "cache-line limit"),
        ("round trip, 1 KiB", "shmring busy-spin"),
        ("throughput, 8 B", "shmring busy-spin"),
        ("throughput, 8 B", "bare SPSC ring"),
        ("bandwidth, 64 KiB", "bare SPSC ring"),
    ] {
        let line = row(&out, table, name);
        assert!(line.contains('x'), "{table} / {name}: no ratio in {line:?}");
    }
    assert!(out.contains("Pinning:"), "no pinning report:\n{out}");
    for ratio in [
        "shmring busy-spin p50 / cache-line limit p50",
        "shmring 8 B throughput / bare ring throughput",
    ] {
        assert!(out.contains(ratio), "no {ratio:?} ratio:\n{out}");
    }
    assert!(out.contains(&format!("Report written to {}", dir.display())));
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The request/response row runs (client and server in two processes, every
/// echo checked) and is compared with shmring busy-spin, round by round.
#[test]
fn the_rpc_row_is_compared_with_busy_spin() {
    let _serial = serial();
    let dir = out_dir("rpc");
    let out = run(&[
        "--quick",
        "--rounds",
        "1",
        "--iterations",
        "500",
        "--messages",
        "100000",
        "--only",
        "rpc,busy-spin",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    for table in ["round trip, 8 B", "round trip, 1 KiB"] {
        let line = row(&out, table, "shmring rpc busy-spin");
        assert!(line.contains('x'), "{table}: no ratio in {line:?}");
    }
    let ratio = out
        .lines()
        .find_map(|line| {
            line.trim().strip_prefix(
                "shmring rpc p50 / shmring busy-spin p50 (8 B round trip, both busy-spin): ",
            )
        })
        .unwrap_or_else(|| panic!("no rpc ratio:\n{out}"));
    let ratio: f64 = ratio.parse().unwrap_or_else(|_| panic!("ratio {ratio:?}"));
    assert!(ratio > 0.0 && ratio.is_finite(), "{ratio}");
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The broadcast round-trip row runs (two topics, the child echoing, every echo
/// checked), is compared with shmring busy-spin round by round, and is drawn in
/// the plot's shared-memory row.
#[test]
fn the_broadcast_row_is_compared_with_busy_spin_and_plotted() {
    let _serial = serial();
    let dir = out_dir("broadcast");
    let out = run(&[
        "--quick",
        "--rounds",
        "1",
        "--iterations",
        "500",
        "--messages",
        "100000",
        "--only",
        "broadcast,busy-spin",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    for table in ["round trip, 8 B", "round trip, 1 KiB"] {
        let line = row(&out, table, "shmring broadcast busy-spin");
        assert!(line.contains('x'), "{table}: no ratio in {line:?}");
    }
    let label = "shmring broadcast busy-spin p50 / shmring busy-spin p50 (8 B round trip; one \
                 subscriber, gated): ";
    let ratio = out
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} ratio:\n{out}"));
    let ratio: f64 = ratio.parse().unwrap_or_else(|_| panic!("ratio {ratio:?}"));
    assert!(ratio > 0.0 && ratio.is_finite(), "{ratio}");
    if !cfg!(feature = "iceoryx2") {
        assert!(
            out.contains(
                "shmring broadcast busy-spin p50 / iceoryx2 p50 (8 B round trip; both \
                 publish-subscribe): not measured"
            ),
            "no unmeasured iceoryx2 ratio:\n{out}"
        );
    }
    let svg = std::fs::read_to_string(dir.join("latency.svg")).expect("latency.svg");
    assert!(
        svg.contains("shared memory · round trip, 8 B"),
        "no shared-memory row"
    );
    assert!(
        svg.contains("shmring broadcast busy-spin"),
        "no broadcast curve in the legend"
    );
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The broadcast fan-out runs every row (one publisher process to 1, 2 and 4
/// subscriber processes, gated and lossy, every message checked by every
/// subscriber) and reports the publisher's rate, each subscriber's, and each
/// one's loss: none on a gated topic, and where each process ran.
#[test]
fn the_fan_out_reports_every_subscriber() {
    let _serial = serial();
    let dir = out_dir("fan-out");
    let out = run(&[
        "--rounds",
        "1",
        "--messages",
        "100000",
        "--only",
        "fan-out",
        "--json",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    let report: Value = serde_json::from_str(&out).expect("stdout is the JSON report");
    assert!(report["failed"].as_array().expect("failed").is_empty());
    let rows = report["fan_out"].as_array().expect("fan_out");
    let positive = |v: &Value| v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite());
    let peers: &[&str] = if cfg!(feature = "iceoryx2") {
        &["shmring broadcast", "iceoryx2 pub-sub"]
    } else {
        &["shmring broadcast"]
    };
    for (peer, policy, n) in peers.iter().flat_map(|peer| {
        ["gated", "lossy"]
            .into_iter()
            .flat_map(move |policy| [1usize, 2, 4].map(|n| (*peer, policy, n)))
    }) {
        {
            let row = rows
                .iter()
                .find(|r| r["peer"] == peer && r["policy"] == policy && r["subscribers"] == n)
                .unwrap_or_else(|| panic!("no {peer} {policy} {n} row in\n{out}"));
            assert!(positive(&row["publisher_msg_per_s"]), "{row}");
            let rates = row["subscriber_msg_per_s"].as_array().expect("rates");
            assert_eq!(rates.len(), n, "{row}");
            assert!(rates.iter().all(positive), "{row}");
            let missed = row["subscriber_missed"].as_array().expect("missed");
            assert_eq!(missed.len(), n, "{row}");
            if policy == "gated" {
                let lost: Vec<u64> = missed
                    .iter()
                    .flat_map(|m| m.as_array().expect("rounds").iter())
                    .map(|m| m.as_u64().expect("a count"))
                    .collect();
                assert!(lost.iter().all(|&m| m == 0), "{row}");
            }
            let placement = row["placement"].as_str().expect("placement");
            assert!(placement.contains("publisher"), "{row}");
        }
    }
    let markdown = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(markdown.contains("### broadcast fan-out, 8 B messages (spin-then-park)"));
    if !cfg!(feature = "iceoryx2") {
        assert!(markdown.contains(
            "iceoryx2 pub-sub / broadcast fan-out (1, 2, 4 subscribers): not in this build"
        ));
    }
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The C and C++ peers' rows run (the child's echo loop in C through the C ABI, or
/// in C++ through the wrapper, every ping checked there, every echo in the parent)
/// and are compared with shmring busy-spin, round by round.
#[test]
fn the_c_and_cpp_rows_are_compared_with_busy_spin() {
    let _serial = serial();
    let dir = out_dir("c-abi");
    let out = run(&[
        "--quick",
        "--rounds",
        "1",
        "--iterations",
        "500",
        "--only",
        "busy-spin,busy-spin-c,try-spin-c,busy-spin-cpp",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    for table in ["round trip, 8 B", "round trip, 1 KiB"] {
        for name in [
            "shmring C ABI busy-spin",
            "shmring C ABI try_ spin",
            "shmring C++ wrapper busy-spin",
        ] {
            let line = row(&out, table, name);
            assert!(line.contains('x'), "{table} / {name}: no ratio in {line:?}");
        }
    }
    for label in [
        "shmring C ABI busy-spin p50 / shmring busy-spin p50 (8 B round trip; a C echo loop, blocking calls): ",
        "shmring C ABI busy-spin p50 / shmring busy-spin p50 (1 KiB round trip; a C echo loop, blocking calls): ",
        "shmring C ABI try_ spin p50 / shmring busy-spin p50 (8 B round trip; a C try_ loop): ",
        "shmring C++ wrapper busy-spin p50 / shmring busy-spin p50 (8 B round trip; a C++ echo loop, blocking calls): ",
        "shmring C++ wrapper busy-spin p50 / shmring busy-spin p50 (1 KiB round trip; a C++ echo loop, blocking calls): ",
    ] {
        let ratio = out
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} ratio:\n{out}"));
        let ratio: f64 = ratio.parse().unwrap_or_else(|_| panic!("ratio {ratio:?}"));
        assert!(ratio > 0.0 && ratio.is_finite(), "{label}{ratio}");
    }
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The MPMC row runs (2 producer and 2 consumer processes, every message checked)
/// and is compared with shmring busy-spin's throughput.
#[test]
fn the_mpmc_row_is_compared_with_busy_spin() {
    let _serial = serial();
    let dir = out_dir("mpmc");
    let out = run(&[
        "--quick",
        "--rounds",
        "1",
        "--iterations",
        "500",
        "--messages",
        "200000",
        "--only",
        "mpmc,busy-spin",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    let line = row(&out, "throughput, 8 B", "shmring MPMC 2x2");
    assert!(line.contains('x'), "no ratio in {line:?}");
    let ratio = out
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("shmring MPMC 2x2 throughput / shmring busy-spin throughput (8 B): ")
        })
        .unwrap_or_else(|| panic!("no MPMC ratio:\n{out}"));
    let ratio: f64 = ratio.parse().unwrap_or_else(|_| panic!("ratio {ratio:?}"));
    assert!(ratio > 0.0 && ratio.is_finite(), "{ratio}");
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The connection rows run (a listener in the parent, the child connecting; over
/// shared memory, then over the Unix socket; every echo checked) and are compared
/// with shmring busy-spin and with the Unix stream socket, round by round.
#[test]
fn the_connection_rows_are_compared_with_busy_spin_and_the_socket() {
    let _serial = serial();
    let dir = out_dir("connection");
    let out = run(&[
        "--quick",
        "--rounds",
        "1",
        "--iterations",
        "500",
        "--messages",
        "100000",
        "--only",
        "connection-shm,connection-socket,busy-spin,unix-socket",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    for table in ["round trip, 8 B", "round trip, 1 KiB"] {
        for name in [
            "shmring connection shm busy-spin",
            "shmring connection unix socket",
        ] {
            let line = row(&out, table, name);
            assert!(line.contains('x'), "{table}: no ratio in {line:?}");
        }
    }
    for label in [
        "shmring connection shm p50 / shmring busy-spin p50 (8 B round trip, both busy-spin): ",
        "shmring connection unix socket p50 / unix stream socket p50 (8 B round trip): ",
    ] {
        let ratio = out
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} ratio:\n{out}"));
        let ratio: f64 = ratio.parse().unwrap_or_else(|_| panic!("ratio {ratio:?}"));
        assert!(ratio > 0.0 && ratio.is_finite(), "{ratio}");
    }
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

#[test]
fn the_in_process_comparison_still_runs() {
    let _serial = serial();
    let output = Command::new(env!("CARGO_BIN_EXE_shmring-benches"))
        .args(["--in-process", "--messages", "100000", "--rounds", "1"])
        .output()
        .expect("run shmring-benches --in-process");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}\n{out}", output.status);
    for contender in CONTENDERS {
        let line = row(&out, "queue", contender.name);
        let numbers: Vec<f64> = line[contender.name.len()..]
            .split(|c: char| c.is_whitespace() || c == 'x')
            .flat_map(|token| token.split(".."))
            .filter_map(|token| token.parse::<f64>().ok())
            .collect();
        assert!(
            !numbers.is_empty() && numbers.iter().all(|&n| n > 0.0 && n.is_finite()),
            "{}: {line}",
            contender.name
        );
    }
}

/// The readiness rows run against the eventfd reference (every echo checked),
/// the system calls per message are counted on both sides, and the kill rows
/// report a latency for every row (each trial a real peer process SIGKILLed).
#[test]
fn the_readiness_and_kill_rows_run() {
    let _serial = serial();
    let dir = out_dir("readiness");
    let out = run(&[
        "--quick",
        "--rounds",
        "1",
        "--iterations",
        "300",
        "--messages",
        "100000",
        "--kill-trials",
        "2",
        "--only",
        "readiness,readiness-sym,eventfd,busy-spin,kill",
        "--json",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    let report: Value = serde_json::from_str(&out).expect("stdout is the JSON report");
    let records = report["records"].as_array().expect("records");
    let value = |method: &str, metric: &str| {
        records
            .iter()
            .find(|r| r["method"] == method && r["metric"] == metric)
            .and_then(|r| r["value"].as_f64())
            .unwrap_or_else(|| panic!("no {method} {metric} record in\n{out}"))
    };
    for method in ["readiness", "readiness-sym", "eventfd"] {
        for metric in ["rtt_8B_p50_ns", "rtt_1KiB_p50_ns"] {
            let v = value(method, metric);
            assert!(v > 0.0 && v.is_finite(), "{method} {metric}: {v}");
        }
    }
    // Counted on both sides: a number, zero or more (the readiness rows make
    // system calls by design; busy-spin throughput is expected to make none).
    for (method, metric) in [
        ("readiness", "rtt_8B_syscalls_parent"),
        ("readiness", "rtt_8B_syscalls_child"),
        ("busy-spin", "tput_8B_syscalls_parent"),
        ("busy-spin", "tput_8B_syscalls_child"),
    ] {
        let v = value(method, metric);
        assert!(v >= 0.0 && v.is_finite(), "{method} {metric}: {v}");
    }
    assert!(value("readiness", "rtt_8B_syscalls_parent") > 0.0);
    let ratio = report["key_ratios"]
        .as_array()
        .expect("key_ratios")
        .iter()
        .find(|r| r["name"] == "shmring readiness fd p50 / eventfd ping-pong p50 (8 B round trip)")
        .and_then(|r| r["value"].as_f64())
        .unwrap_or_else(|| panic!("no readiness / eventfd ratio:\n{out}"));
    assert!(ratio > 0.0 && ratio.is_finite(), "{ratio}");
    let kill = report["kill"].as_array().expect("kill");
    assert_eq!(kill.len(), 12, "{out}");
    for row in kill {
        assert_eq!(row["trials"], 2, "{row}");
        for key in ["p50_ns", "p99_ns", "max_ns"] {
            let v = row[key].as_f64().unwrap_or(0.0);
            assert!(v > 0.0 && v.is_finite(), "{row}");
        }
        assert!(row["peer_rss_kib"].as_u64().is_some_and(|k| k > 0), "{row}");
    }
    assert!(report["failed"].as_array().expect("failed").is_empty());
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}

/// The tokio and Select rows run (two processes each, every echo and message
/// checked, the Select's echo on the lane its number picks), report positive
/// latencies, rates and CPU times, and are compared with their references.
#[test]
fn the_async_and_select_rows_run() {
    let _serial = serial();
    let dir = out_dir("async");
    let out = run(&[
        "--quick",
        "--rounds",
        "1",
        "--iterations",
        "300",
        "--messages",
        "100000",
        "--only",
        "async,async-spin,tokio-unix-socket,select-8,select-1",
        "--json",
        "--out",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]);
    let report: Value = serde_json::from_str(&out).expect("stdout is the JSON report");
    let records = report["records"].as_array().expect("records");
    let value = |method: &str, metric: &str| {
        records
            .iter()
            .find(|r| r["method"] == method && r["metric"] == metric)
            .and_then(|r| r["value"].as_f64())
            .unwrap_or_else(|| panic!("no {method} {metric} record in\n{out}"))
    };
    for method in [
        "async",
        "async-spin",
        "tokio-unix-socket",
        "select-8",
        "select-1",
    ] {
        for metric in [
            "rtt_8B_p50_ns",
            "rtt_8B_cpu_parent_ns",
            "rtt_8B_cpu_child_ns",
        ] {
            let v = value(method, metric);
            assert!(v > 0.0 && v.is_finite(), "{method} {metric}: {v}");
        }
    }
    for method in ["async", "tokio-unix-socket"] {
        let v = value(method, "tput_8B_msg_per_s");
        assert!(v > 0.0 && v.is_finite(), "{method} throughput: {v}");
    }
    let ratio = |name: &str| {
        report["key_ratios"]
            .as_array()
            .expect("key_ratios")
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["value"].as_f64())
            .unwrap_or_else(|| panic!("no {name:?} ratio:\n{out}"))
    };
    for name in [
        "shmring tokio, parked p50 / tokio UnixStream p50 (8 B round trip, both async)",
        "shmring tokio, parked throughput / tokio UnixStream throughput (8 B, both async)",
        "shmring Select over 8 channels p50 / over 1 channel p50 (8 B round trip)",
    ] {
        let r = ratio(name);
        assert!(r > 0.0 && r.is_finite(), "{name}: {r}");
    }
    assert!(report["failed"].as_array().expect("failed").is_empty());
    std::fs::remove_dir_all(&dir).expect("remove the report folder");
}
