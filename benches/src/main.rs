//! The comparison program. Until the cross-process comparison lands, it runs the
//! in-process SPSC comparison: 8-byte messages between two threads through shmring,
//! rtrb and crossbeam's ArrayQueue, in alternating rounds (A B C … A B C …), and
//! reports each contender's median throughput, its range over the rounds, and its
//! ratio to shmring measured round by round.

use std::time::Duration;

use shmring_benches::CONTENDERS;

struct Args {
    count: u64,
    rounds: usize,
    capacity: usize,
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut only = None;
    let mut count = 10_000_000u64;
    let mut rounds = 7usize;
    let mut capacity = 4096usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--quick" => {
                count = 1_000_000;
                rounds = 3;
            }
            "--messages" => count = value("--messages"),
            "--rounds" => rounds = value("--rounds") as usize,
            "--capacity" => capacity = value("--capacity") as usize,
            "--only" => only = Some(args.next().expect("--only needs a name")),
            "--help" | "-h" => {
                println!(
                    "usage: shmring-benches [--quick] [--messages N] [--rounds N] [--capacity MSGS] [--only NAME-PART]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (try --help)"),
        }
    }
    Args {
        count,
        rounds: rounds.max(1),
        capacity,
        only,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let Args {
        count,
        rounds,
        capacity,
        only,
    } = parse_args();
    if let Some(only) = only {
        // Profiling aid: one contender alone, no comparison.
        for c in CONTENDERS.iter().filter(|c| c.name.contains(only.as_str())) {
            let t = (c.run)(count, capacity);
            println!(
                "{}: {:.1} M msg/s",
                c.name,
                count as f64 / t.as_secs_f64() / 1e6
            );
        }
        return;
    }
    println!(
        "In-process SPSC throughput, 8-byte messages, two threads, capacity {capacity} messages,"
    );
    println!("{count} messages a run, {rounds} alternating rounds.\n");
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
    // Warm-up: one short run each.
    for c in CONTENDERS {
        (c.run)(count / 10 + 1, capacity);
    }
    for round in 1..=rounds {
        let times: Vec<Duration> = CONTENDERS
            .iter()
            .map(|c| (c.run)(count, capacity))
            .collect();
        eprint!("round {round}/{rounds}:");
        for (i, t) in times.iter().enumerate() {
            let rate = count as f64 / t.as_secs_f64() / 1e6;
            rates[i].push(rate);
            ratios[i].push(times[0].as_secs_f64() / t.as_secs_f64());
            eprint!(" {:.1}", rate);
        }
        eprintln!(" M msg/s");
    }
    println!(
        "{:<24} {:>12} {:>18} {:>16}",
        "queue", "M msg/s", "range", "vs shmring push"
    );
    for (i, c) in CONTENDERS.iter().enumerate() {
        let lo = rates[i].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rates[i].iter().copied().fold(0.0, f64::max);
        let m = median(&mut rates[i]);
        let r = median(&mut ratios[i]);
        println!(
            "{:<24} {:>12.1} {:>18} {:>15.2}x",
            c.name,
            m,
            format!("{lo:.1}..{hi:.1}"),
            r
        );
    }
    println!(
        "\n(ratio: the contender's rate over shmring push/pop's in the same round; median of rounds)"
    );
    round_trips(count / 20, rounds);
}

/// Ping-pong latency: shmring's one-line publication against the two-line design.
fn round_trips(count: u64, rounds: usize) {
    let count = count.max(1000);
    println!("\nRound trip of an 8-byte message between two threads, busy-spin, {count} a run:");
    shmring_benches::shmring_round_trips(count / 10);
    shmring_benches::bare_round_trips(count / 10);
    let (mut ours, mut bare, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = shmring_benches::shmring_round_trips(count).as_secs_f64() * 1e9 / count as f64;
        let b = shmring_benches::bare_round_trips(count).as_secs_f64() * 1e9 / count as f64;
        ours.push(a);
        bare.push(b);
        ratio.push(a / b);
    }
    println!(
        "{:<38} {:>8.0} ns",
        "shmring (frame header polled)",
        median(&mut ours)
    );
    println!(
        "{:<38} {:>8.0} ns",
        "bare two-line ring (position polled)",
        median(&mut bare)
    );
    println!(
        "{:<38} {:>8.2}x",
        "shmring / two-line, median of rounds",
        median(&mut ratio)
    );
}
