//! The comparison program.
//!
//! By default, the cross-process comparison: two real processes (this program and
//! a copy of itself, pinned to two CPUs) exchange messages through shmring under
//! each wait strategy, iceoryx2 (cargo feature `iceoryx2`), the kernel's
//! transports (Unix stream and `SOCK_SEQPACKET` sockets, TCP on 127.0.0.1, pipes,
//! FIFOs, POSIX message queues) and two references (the cache-line limit and a
//! raw futex ping-pong): round trips of 8 bytes and 1 KiB (p50, p99, p99.9, max),
//! one-way throughput of 8-byte messages (shmring message by message and in
//! batches against a bare ring) and bandwidth with 64 KiB messages; shmring on
//! tokio (`shmring_tokio`, parked and spinning) against tokio's `UnixStream`, and
//! a `shmring::Select` over 8 channels against one over 1. Methods
//! alternate in rounds (A B C … A B C …); the report gives each figure's median
//! over the rounds, its range, and its ratio to shmring busy-spin and to the
//! physical limit measured in the same round. It prints a table (or `--json`) and
//! writes `report.md`, `report.json` and `latency.svg` to a folder it names.
//!
//! `--in-process`: the in-process SPSC comparison (threads): shmring, rtrb and
//! crossbeam's ArrayQueue.

mod report;

use std::error::Error;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use shmring_benches::CONTENDERS;
use shmring_benches::cross::{self, Method, Metric, Plan, Support};

use report::{FanOutSeries, Figure, KillSeries, Machine, Results, Series, Settings, median, range};

const METHODS_HELP: &str = "\
Methods for --only (what each measures: r = round trips 8 B and 1 KiB, t = throughput of
8-byte messages, b = bandwidth with 64 KiB messages, f = fan-out, k = kill → Disconnected):
  busy-spin (r t b)   shmring, WaitStrategy::BusySpin; throughput: try_send / try_recv
  busy-spin-c (r)     as busy-spin, the child's echo loop in C through the C ABI (benches/c/echo.c:
                      recv / send on the message family's views, SHMRING_WAIT_BUSY_SPIN);
                      ÷ busy-spin: the C ABI's cost
  try-spin-c (r)      as busy-spin-c, the C loop spinning on try_recv / try_send instead
  busy-spin-cpp (r)   as busy-spin-c, the echo loop in C++ through the wrapper shmring.hpp
                      (benches/c/echo.cpp: receiver::recv / sender::send); ÷ busy-spin: the
                      cost of the C ABI and the wrapper
  spin-then-park (r)  shmring, the default WaitStrategy::SpinThenPark
  park (r)            shmring, WaitStrategy::Park
  readiness (r)       shmring, both sides in poll on readiness_fd (arm; if Armed, poll; try);
                      the builder's default (asymmetric) fences: every arm a membarrier
  readiness-sym (r)   as readiness, channels with asymmetric_fences(false)
  shmring-batch (t)   shmring, Sender::batch bursts of 64, Receiver::try_recv_batch
  rpc (r)             shmring::rpc, RpcClient::call / RpcServer::serve_one, busy-spin
  connection-shm (r)  shmring::connection upgraded to shared memory, busy-spin
  connection-socket (r) shmring::connection over its Unix socket (shared memory forbidden)
  broadcast (r)       shmring::broadcast publish-subscribe, two topics (one each way), one
                      subscriber each, Policy::Gated, busy-spin; ÷ busy-spin: a topic's cost
  async (r t)         shmring_tokio AsyncSender / AsyncReceiver on a current-thread tokio runtime
                      each side, parked (no spin: arm, then epoll_wait in the reactor); round
                      trips 8 B only; ÷ tokio-unix-socket; CPU time per message reported
  async-spin (r)      as async, each receiver spinning 50 µs (AsyncReceiver::spin) before it arms
  tokio-unix-socket (r t) tokio UnixStream both sides (readable/try_read, writable/try_write)
  select-8 (r)        the parent waits in one shmring::Select over 8 channels, the child echoes
                      on one picked by the message's number; the child waits in a Select over
                      its one channel; both parked in epoll; 8 B
  select-1 (r)        as select-8 over 1 channel: select-8's reference
  iceoryx2 (r)        iceoryx2 publish-subscribe (build with --features iceoryx2)
  unix-socket (r t b) Unix stream socket pair
  seqpacket (r t b)   Unix SOCK_SEQPACKET socket pair
  tcp (r t b)         TCP on 127.0.0.1, TCP_NODELAY
  pipe (r t b)        anonymous pipes
  fifo (r t b)        named pipes (mkfifo, 0600, in a fresh temporary folder)
  mq (r t)            POSIX message queues (64 KiB exceeds msgsize_max: skipped)
  futex (r)           reference: raw futex wait/wake ping-pong
  eventfd (r)         reference: two eventfds, each side polls then reads the other's
  cache-line (r)      reference: the physical limit, one cache line each way
  mpmc (t)            shmring MPMC channel: 2 producer, 2 consumer processes
  bare-ring (t b)     reference: a bare SPSC ring in shared memory
  fan-out (f)         shmring::broadcast, one publisher process to 1, 2 and 4 subscriber
                      processes, gated and lossy, 8-byte messages in batches, spin-then-park:
                      publisher's and each subscriber's rate, each one's loss; a tenth of
                      --messages a run, at most 3 rounds
  kill (k)            a peer SIGKILLed while the receiver is parked (futex) or armed (epoll):
                      SPSC, MPMC, connection; watcher thread off (before) and on (after)
With --in-process, --only takes parts of contender names and runs each alone.";

#[derive(Debug, Parser)]
#[command(
    name = "shmring-benches",
    about = "shmring against iceoryx2, the kernel's IPC and the hardware's limit, between two processes",
    after_help = METHODS_HELP
)]
struct Cli {
    /// A short run (about 20 s): 3 rounds, fewer round trips and messages.
    #[arg(long)]
    quick: bool,
    /// Alternating rounds [default: 5; in-process 7; --quick 3].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Round trips timed one by one per method, size and round (a tenth more
    /// untimed before, a fifth more timed as a batch after) [default: 10000;
    /// --quick 3000].
    #[arg(long, visible_alias = "samples", value_name = "N")]
    iterations: Option<u64>,
    /// 8-byte messages per throughput run of a shared-memory method; a kernel
    /// method moves a fiftieth, a bandwidth run one 2500th in 64 KiB messages
    /// [default: 10000000; --quick 3000000; in-process 10000000, --quick 1000000].
    #[arg(long, value_name = "N")]
    messages: Option<u64>,
    /// Only these methods (see below), as `--only pipe tcp` or `--only pipe,tcp`.
    #[arg(long, value_name = "METHOD", num_args = 1.., value_delimiter = ',')]
    only: Vec<String>,
    /// Kill → Disconnected trials per row, spread over the rounds, each with a
    /// fresh peer process [default: 50; --quick 20].
    #[arg(long, value_name = "N")]
    kill_trials: Option<u64>,
    /// Folder for report.md, report.json and latency.svg [default:
    /// target/shmring-report/<UTC time>/].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the JSON report to stdout instead of the table (progress stays on
    /// stderr).
    #[arg(long)]
    json: bool,
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
        return;
    }
    match cross_process(&cli) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("shmring-benches: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------
// Cross-process

/// The methods `--only` names (all built ones without it), and those it cannot
/// run in this build, with why.
/// Methods to run, and methods this build cannot run with why.
type Selection = (Vec<Method>, Vec<(Method, String)>);

fn select(only: &[String]) -> Result<Selection, Box<dyn Error>> {
    const NOT_BUILT: &str =
        "not in this build: iceoryx2 is behind the cargo feature `iceoryx2` (off by default)";
    for key in only {
        if !Method::ALL.iter().any(|m| m.key() == key) {
            return Err(format!("unknown method {key:?} for --only (see --help)").into());
        }
    }
    let wanted = |m: Method| only.is_empty() || only.iter().any(|k| k == m.key());
    let mut methods = Vec::new();
    let mut unbuilt = Vec::new();
    for m in Method::ALL.into_iter().filter(|&m| wanted(m)) {
        if m.built() {
            methods.push(m);
        } else if only.is_empty() {
            unbuilt.push((m, NOT_BUILT.to_owned()));
        } else {
            return Err(format!("{}: {NOT_BUILT}", m.key()).into());
        }
    }
    Ok((methods, unbuilt))
}

/// Runs the comparison and writes the report; `Ok(false)` if a method failed.
fn cross_process(cli: &Cli) -> Result<bool, Box<dyn Error>> {
    let started_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let wall = Instant::now();
    let rounds = cli.rounds.unwrap_or(if cli.quick { 3 } else { 5 }).max(1);
    let samples = cli
        .iterations
        .unwrap_or(if cli.quick { 3_000 } else { 10_000 })
        .max(1);
    let plan = Plan {
        warmup: (samples / 10).max(100),
        samples,
        batch: (samples / 5).max(100),
    };
    let messages_shm = cli
        .messages
        .unwrap_or(if cli.quick { 3_000_000 } else { 10_000_000 })
        .max(1000);
    let messages_kernel = (messages_shm / 50).max(1000);
    let bw_messages = (messages_shm / 2500).max(64);
    let (methods, unbuilt) = select(&cli.only)?;

    // What runs: every (metric, method) pair the method supports.
    let mut series = Vec::new();
    let mut skipped = Vec::new();
    for metric in Metric::ALL {
        for &method in &methods {
            match method.supports(metric) {
                Support::Yes => series.push(Series::new(method, metric)),
                Support::Skipped(reason) => skipped.push((method, metric, reason)),
                Support::No => {}
            }
        }
        for (method, reason) in &unbuilt {
            if method.supports(metric) == Support::Yes {
                skipped.push((*method, metric, reason.clone()));
            }
        }
    }

    // Placement: this process on the first allowed CPU, each child on the second.
    let cpus = cross::allowed_cpus()?;
    let cpus_allowed = cpus.len();
    let (parent_cpu, parent_pinned, child_cpu) = match cpus.as_slice() {
        [a, b, ..] => (Some(*a), cross::pin_to(*a).is_ok(), Some(*b)),
        _ => (None, false, None),
    };

    let mut out = std::io::stdout().lock();
    if !cli.json {
        writeln!(
            out,
            "shmring cross-process comparison: two real processes, this program and a copy of \
             itself\n(re-executed; spawning is never timed; a fresh child per method, metric and \
             round).\nPinning: parent → {}; each child pins itself to CPU {} (result below).\n\
             Round trips: {} untimed, {} timed one by one, {} timed as a batch, per method, size \
             and round.\nThroughput: {messages_shm} (shared memory) / {messages_kernel} (kernel) \
             8-byte messages a run; bandwidth: {bw_messages} × 64 KiB.\n{rounds} alternating \
             rounds: every method once a round, in the same order.\n",
            match parent_cpu {
                Some(cpu) if parent_pinned => format!("CPU {cpu}, pinned"),
                Some(cpu) => format!("CPU {cpu}, NOT pinned"),
                None => "NOT pinned (fewer than two CPUs allowed)".to_owned(),
            },
            child_cpu.map_or("-".to_owned(), |c| c.to_string()),
            plan.warmup,
            plan.samples,
            plan.batch,
        )?;
        out.flush()?;
    }

    let mut failed: Vec<(Method, Metric, String)> = Vec::new();
    let (mut children, mut children_pinned) = (0usize, 0usize);
    for round in 1..=rounds {
        for metric in Metric::ALL {
            let active: Vec<usize> = (0..series.len())
                .filter(|&i| {
                    let s = &series[i];
                    s.metric == metric
                        && !failed
                            .iter()
                            .any(|(m, x, _)| *m == s.method && *x == metric)
                })
                .collect();
            if active.is_empty() {
                continue;
            }
            eprint!("round {round}/{rounds} · {}:", metric.title());
            for i in active {
                let s = &mut series[i];
                let result = measure(
                    s,
                    plan,
                    messages_shm,
                    messages_kernel,
                    bw_messages,
                    child_cpu,
                );
                match result {
                    Ok((shown, pinned)) => {
                        eprint!(" {} {shown}", s.method.key());
                        children += 1;
                        children_pinned += usize::from(pinned);
                    }
                    Err(e) => {
                        eprint!(" {} FAILED", s.method.key());
                        failed.push((s.method, metric, e.to_string()));
                    }
                }
            }
            eprintln!();
        }
    }
    let fan_out_messages = (messages_shm / 10).max(10_000);
    let fan_out_rounds = rounds.min(3);
    let fan_out_ran = methods.contains(&Method::FanOut);
    let (fan_out, fan_out_failed) = if fan_out_ran {
        fan_out_rows(fan_out_messages, fan_out_rounds, child_cpu, &cpus)
    } else {
        (Vec::new(), Vec::new())
    };
    let (kill, kill_failed) = if methods.contains(&Method::Kill) {
        let trials = cli
            .kill_trials
            .unwrap_or(if cli.quick { 20 } else { 50 })
            .max(1);
        kill_rows(trials, rounds)
    } else {
        (Vec::new(), Vec::new())
    };
    series.retain(|s| {
        !failed
            .iter()
            .any(|(m, x, _)| *m == s.method && *x == s.metric)
    });
    for (method, metric, e) in &failed {
        eprintln!(
            "shmring-benches: {} / {}: {e}",
            method.name(),
            metric.title()
        );
    }

    let results = Results {
        series,
        kill,
        kill_failed,
        fan_out,
        fan_out_failed,
        fan_out_ran,
        skipped,
        failed,
        machine: machine(
            cpus_allowed,
            (parent_cpu, parent_pinned, child_cpu),
            children,
            children_pinned,
        ),
        settings: Settings {
            quick: cli.quick,
            rounds,
            rtt_warmup: plan.warmup,
            rtt_samples: plan.samples,
            rtt_batch: plan.batch,
            tput_messages_shm: messages_shm,
            tput_messages_kernel: messages_kernel,
            bw_messages,
            stream_warmup_fraction: 0.1,
            only: cli.only.clone(),
            features: if cfg!(feature = "iceoryx2") {
                vec!["iceoryx2".to_owned()]
            } else {
                Vec::new()
            },
            fan_out_messages,
            fan_out_rounds,
        },
        started_unix,
        wall_seconds: wall.elapsed().as_secs_f64(),
    };

    let dir = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(started_unix));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let json = results.json();
    std::fs::write(dir.join("report.json"), &json)?;
    std::fs::write(dir.join("report.md"), results.markdown())?;
    let plotted = report::plot(&results, &dir.join("latency.svg"));
    let written = format!(
        "Report written to {}: report.md, report.json{}",
        dir.display(),
        match &plotted {
            Ok(()) if results.series.iter().any(|s| s.pooled.is_some()) => ", latency.svg",
            _ => "",
        }
    );
    if cli.json {
        writeln!(out, "{json}")?;
        eprintln!("{written}");
    } else {
        writeln!(out, "Pinning: {}.\n", report::pinning(&results.machine))?;
        write!(out, "{}", results.text())?;
        writeln!(
            out,
            "Figures are from one run on a shared machine: absolute times move by ±25 % between \
             runs\nand machines. Compare the ratios, each taken against a reference measured in \
             the same\nround; treat p99.9 and max as indicative (host steal makes tails jump).\n"
        )?;
        writeln!(out, "{written}")?;
    }
    if let Err(e) = plotted {
        eprintln!("shmring-benches: the plot failed: {e}");
    }
    Ok(results.failed.is_empty()
        && results.kill_failed.is_empty()
        && results.fan_out_failed.is_empty())
}

/// The broadcast fan-out rows: each row once a round, `messages` a run.
fn fan_out_rows(
    messages: u64,
    rounds: usize,
    child_cpu: Option<usize>,
    cpus: &[usize],
) -> (Vec<FanOutSeries>, Vec<(cross::fanout::Row, String)>) {
    use cross::fanout::{Row, run};
    let mut series: Vec<FanOutSeries> = Row::all()
        .into_iter()
        .map(|row| FanOutSeries {
            row,
            runs: Vec::new(),
        })
        .collect();
    let mut failed: Vec<(Row, String)> = Vec::new();
    for round in 1..=rounds {
        eprint!("round {round}/{rounds} · broadcast fan-out ({messages} messages a run):");
        for f in &mut series {
            if failed.iter().any(|(r, _)| *r == f.row) {
                continue;
            }
            match run(f.row, messages, child_cpu, cpus) {
                Ok(run) => {
                    eprint!(" {} {:.1}M/s", f.row.key(), run.publisher_rate() / 1e6);
                    f.runs.push(run);
                }
                Err(e) => {
                    eprint!(" {} FAILED", f.row.key());
                    failed.push((f.row, e.to_string()));
                }
            }
        }
        eprintln!();
    }
    series.retain(|f| !f.runs.is_empty() && !failed.iter().any(|(r, _)| *r == f.row));
    (series, failed)
}

/// The kill → `Disconnected` rows: `trials` per row, spread over `rounds`
/// alternating rounds (every row once a round, a fresh measuring child each).
fn kill_rows(trials: u64, rounds: usize) -> (Vec<KillSeries>, Vec<(cross::kill::Row, String)>) {
    use cross::kill::{Row, trials as run_trials};
    let per_round = trials.div_ceil(rounds as u64).max(1);
    let mut series: Vec<KillSeries> = Row::ALL
        .iter()
        .map(|&row| KillSeries {
            row,
            latencies_ns: Vec::new(),
            peer_rss_kib: Vec::new(),
            round_p50_ns: Vec::new(),
        })
        .collect();
    let mut failed: Vec<(Row, String)> = Vec::new();
    for round in 1..=rounds {
        eprint!("round {round}/{rounds} · kill → Disconnected ({per_round} trials a row):");
        for k in &mut series {
            if failed.iter().any(|(r, _)| *r == k.row) {
                continue;
            }
            match run_trials(k.row, per_round) {
                Ok(run) => {
                    let mut v: Vec<f64> = run.latencies_ns.iter().map(|&x| x as f64).collect();
                    v.sort_by(f64::total_cmp);
                    let p50 = median(&v);
                    eprint!(" {} {}", k.row.key(), format_ns(p50));
                    k.round_p50_ns.push(p50);
                    k.latencies_ns.extend(run.latencies_ns);
                    k.peer_rss_kib.extend(run.peer_rss_kib);
                }
                Err(e) => {
                    eprint!(" {} FAILED", k.row.key());
                    failed.push((k.row, e.to_string()));
                }
            }
        }
        eprintln!();
    }
    series.retain(|k| !k.latencies_ns.is_empty() && !failed.iter().any(|(r, _)| *r == k.row));
    (series, failed)
}

/// One run of `series`' method and metric; records its figures. Returns what to
/// show as progress and whether the child pinned itself.
fn measure(
    series: &mut Series,
    plan: Plan,
    messages_shm: u64,
    messages_kernel: u64,
    bw_messages: u64,
    child_cpu: Option<usize>,
) -> cross::Result<(String, bool)> {
    let (method, metric) = (series.method, series.metric);
    if metric.is_round_trip() {
        let run = cross::round_trips(method, metric.size(), plan, child_cpu)?;
        let h = &run.histogram;
        let p50 = h.value_at_quantile(0.5) as f64;
        series.push(Figure::P50, p50);
        series.push(Figure::P99, h.value_at_quantile(0.99) as f64);
        series.push(Figure::P999, h.value_at_quantile(0.999) as f64);
        series.push(Figure::Max, h.max() as f64);
        series.push(Figure::Mean, run.batch_mean_ns);
        series.push(Figure::CallsParent, run.system_calls.parent);
        series.push(Figure::CallsChild, run.system_calls.child);
        series.push(Figure::CpuParent, run.cpu.parent);
        series.push(Figure::CpuChild, run.cpu.child);
        if let Some(pooled) = &mut series.pooled {
            pooled.add(h)?;
        }
        Ok((format_ns(p50), run.child_pinned))
    } else {
        let messages = match (metric, method.scope()) {
            (Metric::Bw64K, _) => bw_messages,
            (_, scope) if scope.starts_with("kernel") => messages_kernel,
            _ => messages_shm,
        };
        let run = cross::stream(method, metric.size(), messages, child_cpu)?;
        series.push(Figure::CallsParent, run.system_calls.parent);
        series.push(Figure::CallsChild, run.system_calls.child);
        series.push(Figure::CpuParent, run.cpu.parent);
        series.push(Figure::CpuChild, run.cpu.child);
        let rate = run.rate();
        Ok(if metric == Metric::Tput8 {
            series.push(Figure::Rate, rate);
            (format!("{:.1}M/s", rate / 1e6), run.child_pinned)
        } else {
            let bytes = rate * metric.size() as f64;
            series.push(Figure::Rate, bytes);
            (format!("{:.2}GB/s", bytes / 1e9), run.child_pinned)
        })
    }
}

fn format_ns(ns: f64) -> String {
    if ns < 10_000.0 {
        format!("{ns:.0}ns")
    } else {
        format!("{:.1}µs", ns / 1000.0)
    }
}

/// `target/shmring-report/<UTC time>` in the target folder this program was built
/// in (found from its own path), or under `./target` if it is not in one.
fn default_out_dir(started_unix: u64) -> PathBuf {
    let target = std::env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?;
        (target.join("CACHEDIR.TAG").exists() || target.file_name()? == "target")
            .then(|| target.to_path_buf())
    });
    target
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("shmring-report")
        .join(report::stamp_string(started_unix))
}

/// The machine, for the report.
fn machine(
    cpus_allowed: usize,
    (parent_cpu, parent_pinned, child_cpu): (Option<usize>, bool, Option<usize>),
    children: usize,
    children_pinned: usize,
) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let mut cores = std::collections::BTreeSet::new();
    let (mut package, mut core) = (None, None);
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => (package, core) = (None, None),
            "physical id" => package = Some(value.trim().to_owned()),
            "core id" => core = Some(value.trim().to_owned()),
            _ => continue,
        }
        if let (Some(p), Some(c)) = (&package, &core) {
            cores.insert((p.clone(), c.clone()));
        }
    }
    // SAFETY: sysconf only reads a system constant.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    Machine {
        cpu_model,
        cpus_online: usize::try_from(online).unwrap_or(0),
        cpu_cores: if cores.is_empty() {
            usize::try_from(online).unwrap_or(0)
        } else {
            cores.len()
        },
        cpus_allowed,
        kernel: uname(),
        parent_cpu: parent_cpu.filter(|_| parent_pinned),
        parent_pinned,
        child_cpu,
        children,
        children_pinned,
        mq_msgsize_max: std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    }
}

/// uname's system, release, version and machine.
fn uname() -> String {
    // SAFETY: utsname is plain bytes; all-zero is valid.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a live utsname the call fills.
    if unsafe { libc::uname(&mut u) } == -1 {
        return "unknown".to_owned();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.version),
        field(&u.machine)
    )
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
            eprint!(" {}", three_digits(rate));
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
            "{:<24} {:>12} {:>18} {:>15}x",
            c.name,
            three_digits(median(&rates[i])),
            format!("{}..{}", three_digits(lo), three_digits(hi)),
            three_digits(median(&ratios[i]))
        );
    }
    println!(
        "\n(ratio: the contender's rate over shmring push/pop's in the same round; median of rounds)"
    );
    // The targets, each a ratio of rates within one round, median of rounds.
    let index = |name: &str| {
        CONTENDERS
            .iter()
            .position(|c| c.name == name)
            .expect("a contender of that name")
    };
    let targets = [
        ("shmring push/pop =msgs", "rtrb push/pop", "target >= 1"),
        ("shmring run grant =msgs", "rtrb chunks", "target >= 1"),
        ("shmring batch =msgs", "rtrb chunks", ""),
        ("shmring push/pop =bytes", "rtrb push/pop", ""),
        ("shmring batch =bytes", "rtrb chunks", ""),
        ("shmring run grant =bytes", "rtrb chunks", ""),
        ("shmring push/pop =msgs", "crossbeam ArrayQueue", ""),
    ];
    println!();
    for (ours, theirs, note) in targets {
        let (a, b) = (index(ours), index(theirs));
        let per_round: Vec<f64> = rates[a].iter().zip(&rates[b]).map(|(x, y)| x / y).collect();
        println!(
            "{:<50} {:>6.2}x  {note}",
            format!("{ours} / {theirs}"),
            median(&per_round)
        );
    }
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

/// `x` with three significant digits (at least one decimal), so that a rate
/// measured on a starved machine (0.004 M msg/s) does not print as zero.
fn three_digits(x: f64) -> String {
    if !x.is_finite() || x <= 0.0 {
        return format!("{x}");
    }
    let decimals = (2 - x.log10().floor() as i32).max(1) as usize;
    format!("{x:.decimals$}")
}
