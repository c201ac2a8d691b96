//! The benchmark runners run, check what they moved, and report positive numbers.
//! Smoke tests, not timing tests: no test here asserts a speed.

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use shmring_benches::cross::{RoundTrip, Stream};
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

/// The numbers in `line` after its first `skip` characters (ranges such as
/// `337..349` give two; units and ratios' `x` are dropped).
fn numbers(line: &str, skip: usize) -> Vec<f64> {
    line[skip..]
        .split(|c: char| c.is_whitespace() || c == 'x')
        .flat_map(|token| token.split(".."))
        .filter_map(|token| token.parse::<f64>().ok())
        .collect()
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
fn the_quick_cross_process_comparison_reports_every_method() {
    let _serial = serial();
    let output = Command::new(env!("CARGO_BIN_EXE_shmring-benches"))
        .arg("--quick")
        .output()
        .expect("run shmring-benches --quick");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "shmring-benches --quick failed: {}\n{out}\n{err}",
        output.status
    );
    for method in RoundTrip::ALL {
        let line = row(&out, "round trip, 8 bytes", method.name());
        let numbers = numbers(line, method.name().len());
        // p50, its range (two), p99, p99.9, max, batch mean, ratio to the limit.
        assert_eq!(numbers.len(), 8, "{method:?}: {line}");
        assert!(
            numbers.iter().all(|&n| n > 0.0 && n.is_finite()),
            "{method:?}: {line}"
        );
    }
    for method in Stream::ALL {
        let line = row(&out, "one-way throughput", method.name());
        let numbers = numbers(line, line.find(')').map_or(method.name().len(), |i| i + 1));
        // M msg/s, its range (two), ratio to the bare ring.
        assert_eq!(numbers.len(), 4, "{method:?}: {line}");
        assert!(
            numbers.iter().all(|&n| n > 0.0 && n.is_finite()),
            "{method:?}: {line}"
        );
    }
    assert!(out.contains("Pinning:"), "no pinning report:\n{out}");
    for target in [
        "shmring busy-spin / cache-line limit",
        "shmring / bare ring",
    ] {
        assert!(out.contains(target), "no {target:?} ratio:\n{out}");
    }
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
        let numbers = numbers(line, contender.name.len());
        assert!(
            !numbers.is_empty() && numbers.iter().all(|&n| n > 0.0 && n.is_finite()),
            "{}: {line}",
            contender.name
        );
    }
}
