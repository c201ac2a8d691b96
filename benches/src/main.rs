//! The comparison program.
//!
//! By default, the cross-process comparison: round trips of an 8-byte message
//! between two real processes (this program and a copy of itself, pinned to two
//! CPUs) through shmring under each wait strategy, the cache-line limit, a raw
//! futex, pipes and a Unix socket; and one-way throughput, shmring against a bare
//! ring of `u64` in shared memory. Methods alternate in rounds (A B C … A B C …);
//! the report gives each method's median over the rounds, its range, and its ratio
//! to a reference measured in the same round.
//!
//! `--in-process`: the in-process SPSC comparison (threads): shmring, rtrb and
//! crossbeam's ArrayQueue.

use std::error::Error;
use std::time::Duration;

use clap::Parser;
use hdrhistogram::Histogram;
use shmring_benches::CONTENDERS;
use shmring_benches::cross::{self, Plan, RoundTrip, Stream};

#[derive(Debug, Parser)]
#[command(
    name = "shmring-benches",
    about = "shmring against the cache-line limit and the kernel's IPC, between two processes",
    after_help = "Methods for --only: busy-spin, spin-then-park, park, cache-line, futex, pipe, \
                  unix-socket (round trips); tput-shmring, tput-bare (throughput). With \
                  --in-process, --only takes parts of contender names and runs each alone."
)]
struct Cli {
    /// A short run (seconds): 3 rounds, few samples and messages.
    #[arg(long)]
    quick: bool,
    /// Alternating rounds [default: 5; in-process 7; --quick 3].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Timed round trips per method and round [default: 50000; --quick 2000].
    #[arg(long, value_name = "N")]
    samples: Option<u64>,
    /// Messages per throughput run [default: 20000000; in-process 10000000; --quick 1000000].
    #[arg(long, value_name = "N")]
    messages: Option<u64>,
    /// Only these methods (comma-separated; see below).
    #[arg(long, value_name = "METHOD,...", value_delimiter = ',')]
    only: Vec<String>,
    /// Run the in-process comparison (two threads) instead.
    #[arg(long)]
    in_process: bool,
    /// In-process: queue capacity in messages [default: 4096].
    #[arg(long, value_name = "MSGS", requires = "in_process")]
    capacity: Option<usize>,
}

fn main() {
    // A copy of this program started by the comparison serves its method and exits.
    cross::run_child_if_requested();
    let cli = Cli::parse();
    if cli.in_process {
        in_process(&cli);
    } else if let Err(e) = cross_process(&cli) {
        eprintln!("shmring-benches: {e}");
        std::process::exit(1);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    (lo, hi)
}

/// A duration in nanoseconds, in a unit that keeps three or four digits.
fn fmt_ns(ns: f64) -> String {
    let (value, unit) = unit_for(ns);
    format!("{:.*} {unit}", decimals(ns), ns / value)
}

fn fmt_ns_range(lo: f64, hi: f64) -> String {
    let (value, unit) = unit_for(hi);
    let d = decimals(hi);
    format!("{:.*}..{:.*} {unit}", d, lo / value, d, hi / value)
}

fn unit_for(ns: f64) -> (f64, &'static str) {
    if ns < 10_000.0 {
        (1.0, "ns")
    } else if ns < 1_000_000.0 {
        (1_000.0, "µs")
    } else {
        (1_000_000.0, "ms")
    }
}

fn decimals(ns: f64) -> usize {
    if ns < 10_000.0 {
        0
    } else if ns < 1_000_000.0 {
        1
    } else {
        2
    }
}

// ---------------------------------------------------------------------------
// Cross-process

/// What a round-trip method gathered over the rounds.
struct RoundTripStats {
    method: RoundTrip,
    /// Each round's p50, ns.
    p50: Vec<f64>,
    /// Each round's batch mean, ns.
    batch: Vec<f64>,
    /// Every round's samples together.
    all: Histogram<u64>,
}

fn select(only: &[String]) -> Result<(Vec<RoundTrip>, Vec<Stream>), Box<dyn Error>> {
    if only.is_empty() {
        return Ok((RoundTrip::ALL.to_vec(), Stream::ALL.to_vec()));
    }
    for key in only {
        let known = RoundTrip::ALL.iter().any(|m| m.key() == key)
            || Stream::ALL.iter().any(|m| m.key() == key);
        if !known {
            return Err(format!("unknown method {key:?} for --only (see --help)").into());
        }
    }
    let wanted = |key: &str| only.iter().any(|k| k == key);
    Ok((
        RoundTrip::ALL
            .into_iter()
            .filter(|m| wanted(m.key()))
            .collect(),
        Stream::ALL
            .into_iter()
            .filter(|m| wanted(m.key()))
            .collect(),
    ))
}

fn cross_process(cli: &Cli) -> Result<(), Box<dyn Error>> {
    let rounds = cli.rounds.unwrap_or(if cli.quick { 3 } else { 5 }).max(1);
    let samples = cli
        .samples
        .unwrap_or(if cli.quick { 2_000 } else { 50_000 })
        .max(1);
    let messages = cli
        .messages
        .unwrap_or(if cli.quick { 1_000_000 } else { 20_000_000 })
        .max(1);
    let plan = Plan {
        warmup: (samples / 10).max(100),
        samples,
        batch: (samples / 5).max(100),
    };
    let (round_trips, streams) = select(&cli.only)?;

    // Placement: this process on the first allowed CPU, each child on the second.
    let cpus = cross::allowed_cpus()?;
    let (parent_pin, child_cpu) = match cpus.as_slice() {
        [a, b, ..] => (
            format!(
                "parent → CPU {a}: {}",
                match cross::pin_to(*a) {
                    Ok(()) => "pinned".to_owned(),
                    Err(e) => format!("NOT pinned ({e})"),
                }
            ),
            Some(*b),
        ),
        _ => (
            format!(
                "NOT pinned: only {} CPU allowed, the two processes share it",
                cpus.len()
            ),
            None,
        ),
    };

    println!("shmring cross-process comparison: two real processes, this program and a copy");
    println!(
        "of itself (re-executed; spawning is never timed, a fresh child per method and round)."
    );
    println!(
        "Pinning: {parent_pin}; each child pins itself to CPU {} (result after the run).",
        child_cpu.map_or("-".to_owned(), |c| c.to_string())
    );
    if !round_trips.is_empty() {
        println!(
            "Round trip: the parent sends an 8-byte message, the child echoes it back, the parent"
        );
        println!(
            "times the pair ({} warm-up, then {} timed one by one into a histogram, clock reads",
            plan.warmup, plan.samples
        );
        println!(
            "included; then a batch of {} timed as one, whose mean has no clock read in it).",
            plan.batch
        );
    }
    if !streams.is_empty() {
        println!(
            "Throughput: {messages} 8-byte messages a run, child to parent, the parent checking their order."
        );
    }
    println!("{rounds} alternating rounds: every method once a round, in the same order.\n");

    let mut stats: Vec<RoundTripStats> = round_trips
        .iter()
        .map(|&method| {
            Ok(RoundTripStats {
                method,
                p50: Vec::new(),
                batch: Vec::new(),
                all: Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
            })
        })
        .collect::<Result<_, hdrhistogram::CreationError>>()?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); streams.len()];
    let (mut children, mut pinned_children) = (0usize, 0usize);

    for round in 1..=rounds {
        eprint!("round {round}/{rounds}:");
        for s in &mut stats {
            let run = cross::round_trips(s.method, plan, child_cpu)
                .map_err(|e| format!("{}: {e}", s.method.name()))?;
            let p50 = run.histogram.value_at_quantile(0.5) as f64;
            eprint!(" {} {}", s.method.key(), fmt_ns(p50));
            s.p50.push(p50);
            s.batch.push(run.batch_mean_ns);
            s.all.add(&run.histogram)?;
            children += 1;
            pinned_children += usize::from(run.child_pinned);
        }
        for (i, &method) in streams.iter().enumerate() {
            let run = cross::stream(method, messages, child_cpu)
                .map_err(|e| format!("{} throughput: {e}", method.name()))?;
            let rate = messages as f64 / run.elapsed.as_secs_f64() / 1e6;
            eprint!(" {} {rate:.1} M/s", method.key());
            rates[i].push(rate);
            children += 1;
            pinned_children += usize::from(run.child_pinned);
        }
        eprintln!();
    }

    println!(
        "Pinning: {parent_pin}; children → CPU {}: {pinned_children} of {children} pinned.\n",
        child_cpu.map_or("-".to_owned(), |c| c.to_string())
    );
    if !stats.is_empty() {
        report_round_trips(&stats, rounds);
    }
    if !streams.is_empty() {
        report_streams(&streams, &rates, messages);
    }
    println!(
        "Figures are from one run on a shared machine: absolute times move by ±25 % between runs"
    );
    println!(
        "and machines. Compare the ratios, each taken against a reference measured in the same"
    );
    println!("round; treat p99.9 and max as indicative (host steal makes tails jump).");
    Ok(())
}

/// Per-round ratios of `a`'s p50 to `b`'s, and their median.
fn p50_ratio(stats: &[RoundTripStats], a: RoundTrip, b: RoundTrip) -> Option<f64> {
    let find = |m: RoundTrip| stats.iter().find(|s| s.method == m);
    let (a, b) = (find(a)?, find(b)?);
    let per_round: Vec<f64> = a.p50.iter().zip(&b.p50).map(|(x, y)| x / y).collect();
    Some(median(&per_round))
}

fn report_round_trips(stats: &[RoundTripStats], rounds: usize) {
    println!(
        "{:<24} {:>9} {:>16} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "round trip, 8 bytes", "p50", "p50 range", "p99", "p99.9", "max", "batch", "vs limit"
    );
    for s in stats {
        let (lo, hi) = range(&s.p50);
        let vs_limit = p50_ratio(stats, s.method, RoundTrip::CacheLine)
            .map_or("-".to_owned(), |r| format!("{r:.2}x"));
        println!(
            "{:<24} {:>9} {:>16} {:>9} {:>9} {:>9} {:>9} {:>9}",
            s.method.name(),
            fmt_ns(median(&s.p50)),
            fmt_ns_range(lo, hi),
            fmt_ns(s.all.value_at_quantile(0.99) as f64),
            fmt_ns(s.all.value_at_quantile(0.999) as f64),
            fmt_ns(s.all.max() as f64),
            fmt_ns(median(&s.batch)),
            vs_limit,
        );
    }
    println!(
        "(p50: median of the {rounds} rounds' p50s, range: lowest..highest of them; p99, p99.9, max:"
    );
    println!(
        " all rounds' samples together; batch: median of the rounds' batch means; vs limit: p50"
    );
    println!(" over the cache-line limit's p50 in the same round, median of the rounds)\n");

    let targets = [
        (RoundTrip::ShmringBusySpin, RoundTrip::CacheLine, "<=", 1.15),
        (RoundTrip::ShmringPark, RoundTrip::Futex, "<=", 1.1),
        (RoundTrip::Pipe, RoundTrip::ShmringBusySpin, ">=", 25.0),
    ];
    let mut printed = false;
    for (a, b, cmp, target) in targets {
        let Some(r) = p50_ratio(stats, a, b) else {
            continue;
        };
        if !printed {
            println!("Targets (p50 over p50 in the same round, median of the rounds):");
            printed = true;
        }
        let met = if cmp == "<=" {
            r <= target
        } else {
            r >= target
        };
        println!(
            "  {:<42} {:>7.2}   target {} {}: {}",
            format!("{} / {}", a.name(), b.name()),
            r,
            if cmp == "<=" { "≤" } else { "≥" },
            target,
            if met { "met" } else { "NOT met" }
        );
    }
    if printed {
        println!();
    }
}

fn report_streams(streams: &[Stream], rates: &[Vec<f64>], messages: u64) {
    println!(
        "{:<42} {:>9} {:>14} {:>9}",
        "one-way throughput, 8-byte messages", "M msg/s", "range", "vs bare"
    );
    let bare = streams.iter().position(|&m| m == Stream::Bare);
    for (i, method) in streams.iter().enumerate() {
        let (lo, hi) = range(&rates[i]);
        let vs_bare = bare.map_or("-".to_owned(), |b| {
            let per_round: Vec<f64> = rates[i].iter().zip(&rates[b]).map(|(x, y)| x / y).collect();
            format!("{:.2}x", median(&per_round))
        });
        let label = match method {
            Stream::Shmring => "shmring busy-spin (try_send / try_recv)".to_owned(),
            Stream::Bare => format!(
                "{} ({} slots)",
                method.name(),
                shmring_benches::shared_bare::CAPACITY
            ),
        };
        println!(
            "{:<42} {:>9.1} {:>14} {:>9}",
            label,
            median(&rates[i]),
            format!("{lo:.1}..{hi:.1}"),
            vs_bare
        );
    }
    println!(
        "(median of the rounds, {messages} messages a run, same capacity in messages; vs bare: rate"
    );
    println!(" over the bare ring's in the same round, median of the rounds)");
    if let (Some(s), Some(b)) = (streams.iter().position(|&m| m == Stream::Shmring), bare) {
        let per_round: Vec<f64> = rates[s].iter().zip(&rates[b]).map(|(x, y)| x / y).collect();
        let r = median(&per_round);
        println!(
            "Target: shmring / bare ring throughput {r:.2}, target ≥ 1.0: {}",
            if r >= 1.0 { "met" } else { "NOT met" }
        );
    }
    println!();
}

// ---------------------------------------------------------------------------
// In-process

fn in_process(cli: &Cli) {
    let count = cli
        .messages
        .unwrap_or(if cli.quick { 1_000_000 } else { 10_000_000 })
        .max(1);
    let rounds = cli.rounds.unwrap_or(if cli.quick { 3 } else { 7 }).max(1);
    let capacity = cli.capacity.unwrap_or(4096);
    if !cli.only.is_empty() {
        // Profiling aid: the contenders named, each alone, no comparison.
        for c in CONTENDERS
            .iter()
            .filter(|c| cli.only.iter().any(|part| c.name.contains(part.as_str())))
        {
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
        let (lo, hi) = range(&rates[i]);
        println!(
            "{:<24} {:>12.1} {:>18} {:>15.2}x",
            c.name,
            median(&rates[i]),
            format!("{lo:.1}..{hi:.1}"),
            median(&ratios[i])
        );
    }
    println!(
        "\n(ratio: the contender's rate over shmring push/pop's in the same round; median of rounds)"
    );
    in_process_round_trips(count / 20, rounds);
}

/// Ping-pong latency between two threads: shmring's one-line publication against
/// the two-line design.
fn in_process_round_trips(count: u64, rounds: usize) {
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
        median(&ours)
    );
    println!(
        "{:<38} {:>8.0} ns",
        "bare two-line ring (position polled)",
        median(&bare)
    );
    println!(
        "{:<38} {:>8.2}x",
        "shmring / two-line, median of rounds",
        median(&ratio)
    );
}
