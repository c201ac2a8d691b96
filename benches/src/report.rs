//! The comparison's results and their forms: the terminal table, `report.md`,
//! `report.json` and `latency.svg`.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;
use shmring_benches::cross::fanout::{self, FanOutRun};
use shmring_benches::cross::kill::{Kind, Row, Wait};
use shmring_benches::cross::{Method, Metric};

/// One figure of a method and metric, measured once a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Median round trip of the round's histogram, ns.
    P50,
    /// 99th percentile, ns.
    P99,
    /// 99.9th percentile, ns.
    P999,
    /// Longest round trip, ns.
    Max,
    /// Mean of the round trips timed as one batch (no clock read each), ns.
    Mean,
    /// Messages per second (throughput) or bytes per second (bandwidth).
    Rate,
    /// System calls shmring counted on the parent's thread, per round trip or
    /// message (the receiver of a throughput run).
    CallsParent,
    /// The same on the child's thread (the sender of a throughput run).
    CallsChild,
    /// CPU time of the parent's process per round trip or message, ns (the
    /// receiver of a throughput run).
    CpuParent,
    /// The same of the child's process (the sender of a throughput run).
    CpuChild,
}

impl Figure {
    /// The round-trip figures, in table order.
    pub const ROUND_TRIP: [Self; 5] = [Self::P50, Self::P99, Self::P999, Self::Max, Self::Mean];

    fn key(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P99 => "p99",
            Self::P999 => "p999",
            Self::Max => "max",
            Self::Mean => "batch_mean",
            Self::Rate => "rate",
            Self::CallsParent => "syscalls_parent",
            Self::CallsChild => "syscalls_child",
            Self::CpuParent => "cpu_parent",
            Self::CpuChild => "cpu_child",
        }
    }
}

/// What one method measured for one metric over the rounds.
#[derive(Debug)]
pub struct Series {
    pub method: Method,
    pub metric: Metric,
    /// Each figure's value in each round (ns, msg/s or bytes/s), rounds in order.
    pub rounds: Vec<(Figure, Vec<f64>)>,
    /// Round trips: every round's samples together (for the plot).
    pub pooled: Option<Histogram<u64>>,
}

impl Series {
    /// An empty series for `method` and `metric`.
    pub fn new(method: Method, metric: Metric) -> Self {
        let figures: &[Figure] = if metric.is_round_trip() {
            &Figure::ROUND_TRIP
        } else {
            &[Figure::Rate]
        };
        let calls: &[Figure] = if method.counts_system_calls() {
            &[Figure::CallsParent, Figure::CallsChild]
        } else {
            &[]
        };
        let cpu: &[Figure] = if method.reports_cpu_time() {
            &[Figure::CpuParent, Figure::CpuChild]
        } else {
            &[]
        };
        Self {
            method,
            metric,
            rounds: figures
                .iter()
                .chain(calls)
                .chain(cpu)
                .map(|&f| (f, Vec::new()))
                .collect(),
            pooled: metric
                .is_round_trip()
                .then(shmring_benches::cross::new_histogram),
        }
    }

    /// Records one round's value of `figure`.
    pub fn push(&mut self, figure: Figure, value: f64) {
        if let Some((_, v)) = self.rounds.iter_mut().find(|(f, _)| *f == figure) {
            v.push(value);
        }
    }

    /// The rounds' values of `figure`.
    pub fn values(&self, figure: Figure) -> &[f64] {
        self.rounds
            .iter()
            .find(|(f, _)| *f == figure)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The headline figure: p50 for round trips, the rate otherwise.
    pub fn headline(&self) -> Figure {
        if self.metric.is_round_trip() {
            Figure::P50
        } else {
            Figure::Rate
        }
    }
}

/// Where and how the run happened.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs online (logical).
    pub cpus_online: usize,
    /// Distinct (physical id, core id) pairs in /proc/cpuinfo.
    pub cpu_cores: usize,
    /// CPUs this process was allowed to run on.
    pub cpus_allowed: usize,
    /// uname: system, release, version, machine.
    pub kernel: String,
    /// The parent's CPU, if it was pinned.
    pub parent_cpu: Option<usize>,
    /// Whether pinning the parent succeeded.
    pub parent_pinned: bool,
    /// The CPU each child was asked to pin itself to.
    pub child_cpu: Option<usize>,
    /// Children spawned.
    pub children: usize,
    /// Children that said they pinned themselves.
    pub children_pinned: usize,
    /// /proc/sys/fs/mqueue/msgsize_max.
    pub mq_msgsize_max: Option<usize>,
}

/// How much was measured.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub rounds: usize,
    /// Untimed round trips before the timed ones, per method, size and round.
    pub rtt_warmup: u64,
    /// Round trips timed one by one into the histogram.
    pub rtt_samples: u64,
    /// Round trips timed together after them (the batch mean).
    pub rtt_batch: u64,
    /// Messages per 8-byte throughput run, shared-memory methods.
    pub tput_messages_shm: u64,
    /// Messages per 8-byte throughput run, kernel methods.
    pub tput_messages_kernel: u64,
    /// 64 KiB messages per bandwidth run.
    pub bw_messages: u64,
    /// Of each throughput or bandwidth run, the untimed first part.
    pub stream_warmup_fraction: f64,
    /// `--only`, as given.
    pub only: Vec<String>,
    /// Cargo features of this build.
    pub features: Vec<String>,
    /// Messages per broadcast fan-out run.
    pub fan_out_messages: u64,
    /// Rounds of the fan-out (at most 3: it runs short).
    pub fan_out_rounds: usize,
}

/// The kill → `Disconnected` trials of one row, every round's together.
#[derive(Debug)]
pub struct KillSeries {
    pub row: Row,
    /// Latencies, ns, in the order measured.
    pub latencies_ns: Vec<u64>,
    /// The peer's RSS before each kill, KiB.
    pub peer_rss_kib: Vec<u64>,
    /// Each round's median latency, ns.
    pub round_p50_ns: Vec<f64>,
}

impl KillSeries {
    /// The `q` quantile of the latencies (nearest rank), ns.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v = self.latencies_ns.clone();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64
    }
}

/// The broadcast fan-out runs of one row, round by round.
#[derive(Debug)]
pub struct FanOutSeries {
    pub row: fanout::Row,
    /// Each round's run.
    pub runs: Vec<FanOutRun>,
}

impl FanOutSeries {
    /// The publisher's rates, msg/s, round by round.
    pub fn publisher_rates(&self) -> Vec<f64> {
        self.runs.iter().map(FanOutRun::publisher_rate).collect()
    }

    /// Subscriber `i`'s rates, msg/s, round by round.
    pub fn subscriber_rates(&self, i: usize) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|r| Some(r.subscribers.get(i)?.rate()))
            .collect()
    }

    /// Subscriber `i`'s losses (messages missed), round by round.
    pub fn subscriber_missed(&self, i: usize) -> Vec<u64> {
        self.runs
            .iter()
            .filter_map(|r| Some(r.subscribers.get(i)?.missed))
            .collect()
    }

    /// Where the processes of the last round ran.
    pub fn placement(&self, machine: &Machine) -> String {
        let Some(run) = self.runs.last() else {
            return String::new();
        };
        let cpu = |c: Option<usize>| c.map_or("?".to_owned(), |c| c.to_string());
        let publisher = match machine.parent_cpu {
            Some(c) => format!("publisher CPU {c} (pinned)"),
            None => format!(
                "publisher unpinned (last on CPU {})",
                cpu(run.publisher_cpu)
            ),
        };
        let last = run
            .subscribers
            .iter()
            .map(|s| cpu(s.last_cpu))
            .collect::<Vec<_>>()
            .join("/");
        let subscribers = if run.subscribers.iter().all(|s| s.pinned) {
            format!("subscriber CPU {last} (pinned)")
        } else {
            let mut allowed: Vec<usize> = run
                .subscribers
                .iter()
                .flat_map(|s| s.allowed.iter().copied())
                .collect();
            allowed.sort_unstable();
            allowed.dedup();
            let allowed = allowed
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",");
            format!("subscribers unpinned (allowed CPUs {allowed}; last on {last})")
        };
        format!("{publisher}; {subscribers}")
    }
}

/// Everything a run produced.
#[derive(Debug)]
pub struct Results {
    pub series: Vec<Series>,
    /// Kill → `Disconnected`, one per row measured.
    pub kill: Vec<KillSeries>,
    /// (row, error): kill rows that failed (dropped from later rounds).
    pub kill_failed: Vec<(Row, String)>,
    /// The broadcast fan-out, one per row measured.
    pub fan_out: Vec<FanOutSeries>,
    /// (row, error): fan-out rows that failed (dropped from later rounds).
    pub fan_out_failed: Vec<(fanout::Row, String)>,
    /// Whether the fan-out was asked for (its iceoryx2 rows are then reported as
    /// not measured).
    pub fan_out_ran: bool,
    /// (method, metric, reason): not measured here.
    pub skipped: Vec<(Method, Metric, String)>,
    /// (method, metric, error): a run failed; the method was dropped from the
    /// later rounds of that metric.
    pub failed: Vec<(Method, Metric, String)>,
    pub machine: Machine,
    pub settings: Settings,
    /// Seconds since the epoch at the start.
    pub started_unix: u64,
    /// Wall time of the whole comparison, seconds.
    pub wall_seconds: f64,
}

pub fn median(v: &[f64]) -> f64 {
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

pub fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

impl Results {
    pub fn find(&self, method: Method, metric: Metric) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.method == method && s.metric == metric)
    }

    /// Median over the rounds of `series`' `figure` over `reference`'s in the
    /// same round.
    pub fn ratio(&self, series: &Series, figure: Figure, reference: Method) -> Option<f64> {
        let reference = self.find(reference, series.metric)?;
        let per_round: Vec<f64> = series
            .values(figure)
            .iter()
            .zip(reference.values(figure))
            .map(|(a, b)| a / b)
            .collect();
        (!per_round.is_empty()).then(|| median(&per_round))
    }

    /// Median over the rounds of `a`'s headline figure over `b`'s, same metric.
    pub fn headline_ratio(&self, metric: Metric, a: Method, b: Method) -> Option<f64> {
        let a = self.find(a, metric)?;
        self.ratio(a, a.headline(), b)
    }

    /// The ratios the closing note quotes, in order: (label, value).
    pub fn key_ratios(&self) -> Vec<(&'static str, Option<f64>)> {
        use Method::*;
        let rtt = Metric::Rtt8;
        vec![
            (
                "shmring busy-spin p50 / cache-line limit p50 (8 B round trip)",
                self.headline_ratio(rtt, ShmringBusySpin, CacheLine),
            ),
            (
                "shmring C ABI busy-spin p50 / shmring busy-spin p50 (8 B round trip; a C echo loop, blocking calls)",
                self.headline_ratio(rtt, CAbiBusySpin, ShmringBusySpin),
            ),
            (
                "shmring C ABI busy-spin p50 / shmring busy-spin p50 (1 KiB round trip; a C echo loop, blocking calls)",
                self.headline_ratio(Metric::Rtt1K, CAbiBusySpin, ShmringBusySpin),
            ),
            (
                "shmring C ABI try_ spin p50 / shmring busy-spin p50 (8 B round trip; a C try_ loop)",
                self.headline_ratio(rtt, CAbiTrySpin, ShmringBusySpin),
            ),
            (
                "shmring C++ wrapper busy-spin p50 / shmring busy-spin p50 (8 B round trip; a C++ echo loop, blocking calls)",
                self.headline_ratio(rtt, CppAbiBusySpin, ShmringBusySpin),
            ),
            (
                "shmring C++ wrapper busy-spin p50 / shmring busy-spin p50 (1 KiB round trip; a C++ echo loop, blocking calls)",
                self.headline_ratio(Metric::Rtt1K, CppAbiBusySpin, ShmringBusySpin),
            ),
            (
                "pipe p50 / shmring busy-spin p50 (8 B round trip)",
                self.headline_ratio(rtt, Pipe, ShmringBusySpin),
            ),
            (
                "unix stream socket p50 / shmring busy-spin p50 (8 B round trip)",
                self.headline_ratio(rtt, UnixStream, ShmringBusySpin),
            ),
            (
                "shmring 8 B throughput / bare ring throughput",
                self.headline_ratio(Metric::Tput8, ShmringBusySpin, BareRing),
            ),
            (
                "shmring busy-spin p50 / iceoryx2 p50 (8 B round trip)",
                self.headline_ratio(rtt, ShmringBusySpin, Iceoryx2),
            ),
            (
                "shmring broadcast busy-spin p50 / shmring busy-spin p50 (8 B round trip; one subscriber, gated)",
                self.headline_ratio(rtt, Broadcast, ShmringBusySpin),
            ),
            (
                "shmring broadcast busy-spin p50 / iceoryx2 p50 (8 B round trip; both publish-subscribe)",
                self.headline_ratio(rtt, Broadcast, Iceoryx2),
            ),
            (
                "shmring event p50 / futex ping-pong p50 (8 B round trip)",
                self.headline_ratio(rtt, Event, Futex),
            ),
            (
                "shmring semaphore p50 / futex ping-pong p50 (8 B round trip)",
                self.headline_ratio(rtt, Semaphore, Futex),
            ),
            (
                "shmring MPMC 2x2 throughput / shmring busy-spin throughput (8 B)",
                self.headline_ratio(Metric::Tput8, Mpmc, ShmringBusySpin),
            ),
            (
                "shmring rpc p50 / shmring busy-spin p50 (8 B round trip, both busy-spin)",
                self.headline_ratio(rtt, Rpc, ShmringBusySpin),
            ),
            (
                "shmring connection shm p50 / shmring busy-spin p50 (8 B round trip, both busy-spin)",
                self.headline_ratio(rtt, ConnectionShm, ShmringBusySpin),
            ),
            (
                "shmring connection unix socket p50 / unix stream socket p50 (8 B round trip)",
                self.headline_ratio(rtt, ConnectionSocket, UnixStream),
            ),
            (
                "shmring readiness fd p50 / eventfd ping-pong p50 (8 B round trip)",
                self.headline_ratio(rtt, Readiness, EventFd),
            ),
            (
                "shmring readiness fd p50 / eventfd ping-pong p50 (1 KiB round trip)",
                self.headline_ratio(Metric::Rtt1K, Readiness, EventFd),
            ),
            (
                "shmring readiness fd, sym fences p50 / eventfd ping-pong p50 (8 B round trip)",
                self.headline_ratio(rtt, ReadinessSymmetric, EventFd),
            ),
            (
                "shmring readiness fd, sym fences p50 / shmring readiness fd p50 (8 B round trip)",
                self.headline_ratio(rtt, ReadinessSymmetric, Readiness),
            ),
            (
                "shmring park p50 / futex ping-pong p50 (8 B round trip)",
                self.headline_ratio(rtt, ShmringPark, Futex),
            ),
            (
                "eventfd ping-pong p50 / futex ping-pong p50 (8 B round trip)",
                self.headline_ratio(rtt, EventFd, Futex),
            ),
            (
                "shmring tokio, parked p50 / tokio UnixStream p50 (8 B round trip, both async)",
                self.headline_ratio(rtt, AsyncPark, AsyncUnixStream),
            ),
            (
                "shmring tokio, spin 50 µs then park p50 / tokio UnixStream p50 (8 B round trip)",
                self.headline_ratio(rtt, AsyncSpin, AsyncUnixStream),
            ),
            (
                "shmring tokio, parked p50 / shmring park p50 (8 B round trip; async over blocking)",
                self.headline_ratio(rtt, AsyncPark, ShmringPark),
            ),
            (
                "tokio UnixStream p50 / unix stream socket p50 (8 B round trip; async over blocking)",
                self.headline_ratio(rtt, AsyncUnixStream, UnixStream),
            ),
            (
                "shmring tokio, parked throughput / tokio UnixStream throughput (8 B, both async)",
                self.headline_ratio(Metric::Tput8, AsyncPark, AsyncUnixStream),
            ),
            (
                "shmring Select over 8 channels p50 / over 1 channel p50 (8 B round trip)",
                self.headline_ratio(rtt, Select8, Select1),
            ),
            (
                "shmring Select over 1 channel p50 / shmring tokio, parked p50 (8 B round trip)",
                self.headline_ratio(rtt, Select1, AsyncPark),
            ),
        ]
    }

    /// The targets the project set itself: (a, b, metric, at most?, target).
    fn targets(&self) -> Vec<(String, f64, &'static str, f64, bool)> {
        use Method::*;
        let list = [
            (Metric::Rtt8, ShmringBusySpin, CacheLine, true, 1.15),
            (Metric::Rtt8, ShmringPark, Futex, true, 1.1),
            (Metric::Rtt8, Readiness, EventFd, true, 1.1),
            (Metric::Rtt1K, Readiness, EventFd, true, 1.1),
            (Metric::Rtt8, Pipe, ShmringBusySpin, false, 25.0),
            (Metric::Tput8, ShmringBusySpin, BareRing, false, 1.0),
            (Metric::Rtt8, Broadcast, ShmringBusySpin, true, 1.1),
            (Metric::Rtt8, Broadcast, Iceoryx2, true, 0.35),
            (Metric::Rtt8, AsyncPark, AsyncUnixStream, true, 1.0),
            (Metric::Tput8, AsyncPark, AsyncUnixStream, false, 5.0),
        ];
        list.into_iter()
            .filter_map(|(metric, a, b, at_most, target)| {
                let r = self.headline_ratio(metric, a, b)?;
                let met = if at_most { r <= target } else { r >= target };
                Some((
                    format!("{} / {} ({})", a.name(), b.name(), metric.title()),
                    r,
                    if at_most { "≤" } else { "≥" },
                    target,
                    met,
                ))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Formatting

/// A latency in µs with three or four significant digits.
fn fmt_us(ns: f64) -> String {
    let us = ns / 1000.0;
    if !us.is_finite() {
        "-".to_owned()
    } else if us < 10.0 {
        format!("{us:.3}")
    } else if us < 100.0 {
        format!("{us:.2}")
    } else {
        format!("{us:.1}")
    }
}

fn fmt_rate(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Tput8 => format!("{:.2}", v / 1e6),
        _ => format!("{:.2}", v / 1e9),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => {
            if r >= 100.0 {
                format!("{r:.0}x")
            } else if r >= 10.0 {
                format!("{r:.1}x")
            } else if r >= 0.1 {
                format!("{r:.2}x")
            } else {
                format!("{r:.3}x")
            }
        }
        _ => "-".to_owned(),
    }
}

fn unit(metric: Metric) -> &'static str {
    match metric {
        Metric::Rtt8 | Metric::Rtt1K => "µs",
        Metric::Tput8 => "M msg/s",
        Metric::Bw64K => "GB/s",
    }
}

/// One metric's table: a heading row and rows of cells.
struct Table {
    title: String,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// Columns before the figures (left-aligned).
const TEXT_COLUMNS: usize = 4;

impl Results {
    fn tables(&self) -> Vec<Table> {
        let mut tables = Vec::new();
        for metric in Metric::ALL {
            let series: Vec<&Series> = self.series.iter().filter(|s| s.metric == metric).collect();
            if series.is_empty() {
                continue;
            }
            let header = if metric.is_round_trip() {
                vec![
                    "method",
                    "direction",
                    "scope",
                    "unit",
                    "p50",
                    "p50 range",
                    "p99",
                    "p99.9",
                    "max",
                    "batch mean",
                    "vs busy-spin",
                    "vs limit",
                ]
            } else {
                vec![
                    "method",
                    "direction",
                    "scope",
                    "unit",
                    "median",
                    "range",
                    "vs busy-spin",
                    "vs limit",
                ]
            };
            let mut rows = Vec::new();
            for s in series {
                let mut row = vec![
                    s.method.name().to_owned(),
                    if metric.is_round_trip() {
                        "round trip"
                    } else if s.method == Method::Mpmc {
                        "2 children → 1 child + parent"
                    } else {
                        "child → parent"
                    }
                    .to_owned(),
                    s.method.scope().to_owned(),
                    unit(metric).to_owned(),
                ];
                if metric.is_round_trip() {
                    let p50 = s.values(Figure::P50);
                    let (lo, hi) = range(p50);
                    row.push(fmt_us(median(p50)));
                    row.push(format!("{}..{}", fmt_us(lo), fmt_us(hi)));
                    for f in [Figure::P99, Figure::P999, Figure::Max, Figure::Mean] {
                        row.push(fmt_us(median(s.values(f))));
                    }
                } else {
                    let v = s.values(Figure::Rate);
                    let (lo, hi) = range(v);
                    row.push(fmt_rate(metric, median(v)));
                    row.push(format!(
                        "{}..{}",
                        fmt_rate(metric, lo),
                        fmt_rate(metric, hi)
                    ));
                }
                let head = s.headline();
                row.push(fmt_ratio(self.ratio(s, head, Method::ShmringBusySpin)));
                row.push(fmt_ratio(self.ratio(s, head, metric.limit())));
                rows.push(row);
            }
            let notes = self.skipped.iter().map(|x| (x, "not measured: see below"));
            let failures = self.failed.iter().map(|x| (x, "FAILED: see below"));
            for ((method, m, _), why) in notes.chain(failures) {
                if *m == metric {
                    let mut row = vec![
                        method.name().to_owned(),
                        String::new(),
                        method.scope().to_owned(),
                        String::new(),
                    ];
                    row.push(format!("({why})"));
                    rows.push(row);
                }
            }
            let title = metric.title().to_owned();
            tables.push(Table {
                title,
                header,
                rows,
            });
        }
        if let Some(table) = self.fan_out_table() {
            tables.push(table);
        }
        if let Some(table) = self.kill_table() {
            tables.push(table);
        }
        tables
    }

    /// The broadcast fan-out table, if it ran.
    fn fan_out_table(&self) -> Option<Table> {
        if !self.fan_out_ran {
            return None;
        }
        let mut rows = Vec::new();
        let joined = |v: Vec<String>| v.join(" / ");
        for f in &self.fan_out {
            let n = f.row.subscribers;
            let publisher = f.publisher_rates();
            let (lo, hi) = range(&publisher);
            let mut row = vec![
                f.row.peer_name().to_owned(),
                f.row.policy_name().to_owned(),
                n.to_string(),
                "M msg/s".to_owned(),
            ];
            row.push(fmt_rate(Metric::Tput8, median(&publisher)));
            row.push(format!(
                "{}..{}",
                fmt_rate(Metric::Tput8, lo),
                fmt_rate(Metric::Tput8, hi)
            ));
            row.push(joined(
                (0..n)
                    .map(|i| fmt_rate(Metric::Tput8, median(&f.subscriber_rates(i))))
                    .collect(),
            ));
            row.push(joined(
                (0..n)
                    .map(|i| median_u64(&f.subscriber_missed(i)).to_string())
                    .collect(),
            ));
            row.push(f.placement(&self.machine));
            rows.push(row);
        }
        for (row, _) in &self.fan_out_failed {
            rows.push(vec![
                row.peer_name().to_owned(),
                row.policy_name().to_owned(),
                row.subscribers.to_string(),
                String::new(),
                "(FAILED: see below)".to_owned(),
            ]);
        }
        if !cfg!(feature = "iceoryx2") {
            rows.push(vec![
                Method::Iceoryx2.name().to_owned(),
                String::new(),
                "1, 2, 4".to_owned(),
                String::new(),
                "(not measured: see below)".to_owned(),
            ]);
        }
        Some(Table {
            title: "broadcast fan-out, 8 B messages (spin-then-park)".to_owned(),
            header: vec![
                "method",
                "policy",
                "subscribers",
                "unit",
                "publisher",
                "publisher range",
                "each subscriber",
                "each one's loss",
                "where",
            ],
            rows,
        })
    }

    /// The kill → `Disconnected` table, if any row ran.
    fn kill_table(&self) -> Option<Table> {
        if self.kill.is_empty() && self.kill_failed.is_empty() {
            return None;
        }
        let reference = self.kill_reference().map(|k| k.quantile(0.99));
        let mut rows = Vec::new();
        for k in &self.kill {
            let mut row = vec![
                k.row.name(),
                watcher_label(k.row.watcher).to_owned(),
                k.latencies_ns.len().to_string(),
                format!("{} KiB", median_u64(&k.peer_rss_kib)),
                "ms".to_owned(),
            ];
            for q in [0.5, 0.99, 1.0] {
                row.push(fmt_ms(k.quantile(q)));
            }
            let (lo, hi) = range(&k.round_p50_ns);
            row.push(format!("{}..{}", fmt_ms(lo), fmt_ms(hi)));
            row.push(fmt_ratio(reference.map(|r| k.quantile(0.99) / r)));
            rows.push(row);
        }
        for (row, _) in &self.kill_failed {
            rows.push(vec![
                row.name(),
                watcher_label(row.watcher).to_owned(),
                String::new(),
                String::new(),
                "(FAILED: see below)".to_owned(),
            ]);
        }
        Some(Table {
            title: "kill → Disconnected".to_owned(),
            header: vec![
                "receiver blocked",
                "watcher",
                "trials",
                "peer RSS",
                "unit",
                "p50",
                "p99",
                "max",
                "round p50s",
                "p99 vs conn.",
            ],
            rows,
        })
    }

    /// The reference row of the kill table: the connection's, watcher on.
    fn kill_reference(&self) -> Option<&KillSeries> {
        self.kill
            .iter()
            .find(|k| k.row.kind == Kind::Connection && k.row.wait == Wait::Futex && k.row.watcher)
    }

    /// The kill rows' targets: (label, value, target, met).
    fn kill_targets(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        let reference = self.kill_reference().map(|k| k.quantile(0.99));
        for k in self.kill.iter().filter(|k| k.row.watcher) {
            if k.row.kind == Kind::Connection {
                continue;
            }
            let p50 = k.quantile(0.5);
            out.push((
                format!("{}, watcher on: p50 {} ms", k.row.name(), fmt_ms(p50)),
                "target ≤ 1 ms".to_owned(),
                p50 <= 1e6,
            ));
            if let Some(r) = reference {
                let ratio = k.quantile(0.99) / r;
                out.push((
                    format!(
                        "{}, watcher on: p99 / connection p99 {ratio:.2}",
                        k.row.name()
                    ),
                    "target ≤ 1.5".to_owned(),
                    ratio <= 1.5,
                ));
            }
        }
        out
    }
}

/// System calls per message: "0" when none at all, else three significant
/// digits.
fn fmt_calls(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v < 0.01 {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn watcher_label(on: bool) -> &'static str {
    if on { "on (after)" } else { "off (before)" }
}

fn median_u64(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// A latency in ms with three significant digits or so.
fn fmt_ms(ns: f64) -> String {
    let ms = ns / 1e6;
    if !ms.is_finite() {
        "-".to_owned()
    } else if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// `text` broken into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if line > 0 && line + 1 + n > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += n;
    }
    out
}

fn widths(table: &Table) -> Vec<usize> {
    let mut w: Vec<usize> = table.header.iter().map(|h| h.chars().count()).collect();
    for row in &table.rows {
        // A note row (fewer cells) spans the figure columns: it does not widen them.
        if row.len() < table.header.len() {
            continue;
        }
        for (i, cell) in row.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    w[0] = w[0].max(table.title.chars().count());
    w
}

fn pad(cell: &str, width: usize, right: bool) -> String {
    let n = cell.chars().count();
    let fill = " ".repeat(width.saturating_sub(n));
    if right {
        format!("{fill}{cell}")
    } else {
        format!("{cell}{fill}")
    }
}

impl Results {
    /// The terminal report.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for table in self.tables() {
            let w = widths(&table);
            let line = |cells: &[String]| -> String {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if cells.len() < w.len() && i == cells.len() - 1 {
                            c.clone()
                        } else {
                            pad(c, w[i], i >= TEXT_COLUMNS)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            let mut header: Vec<String> = table.header.iter().map(|h| (*h).to_owned()).collect();
            header[0] = table.title.clone();
            let _ = writeln!(out, "{}", line(&header));
            for row in &table.rows {
                let _ = writeln!(out, "{}", line(row));
            }
            out.push('\n');
        }
        out.push_str(&self.notes(false));
        out
    }

    /// The closing notes: how to read the tables, targets, key ratios, what was
    /// not measured.
    fn notes(&self, markdown: bool) -> String {
        let s = &self.settings;
        let paragraphs = [
            format!(
                "How to read: every figure is the median over {} alternating rounds (A B C … A B C \
                 …), its range the lowest..highest round. Round trips: p50, p99, p99.9 and max of \
                 each round's histogram ({} round trips timed one by one after {} untimed, clock \
                 reads included); batch mean: {} more timed as one, no clock read in it. \
                 \"vs busy-spin\" and \"vs limit\": the figure over shmring busy-spin's (or the \
                 limit's) in the same round, median of the rounds; the limit is the cache-line \
                 ping-pong for round trips and the bare SPSC ring for throughput and bandwidth. For \
                 round trips a ratio above 1 is slower; for rates a ratio below 1 is slower.",
                s.rounds, s.rtt_samples, s.rtt_warmup, s.rtt_batch
            ),
            "Coordinated omission: a round trip is closed-loop (one message in flight; the next \
             ping leaves when the echo is back), so there is no send schedule for a stall to hide \
             samples from: a stall is one long sample, not the many an open-loop sender would have \
             queued behind it. No correction is applied."
                .to_owned(),
            format!(
                "Throughput: the child sends {} (shared memory) or {} (kernel) 8-byte messages a \
                 run, bandwidth {} messages of 64 KiB; the first tenth is untimed. Kernel streams: \
                 one write per message, the reader reads up to 64 KiB at a time and splits (64 KiB \
                 messages: read straight into the message buffer); SOCK_SEQPACKET and mq: one call \
                 per message each side. Every run checks what it received (echo equal to the ping; \
                 every message's length and sequence number) before it reports.",
                s.tput_messages_shm, s.tput_messages_kernel, s.bw_messages
            ),
            "MPMC 2x2: one shmring MPMC channel (4096 slots of 8 bytes), two producer children \
             sending half of the messages each, a consumer child and the parent receiving, every \
             endpoint with the default spin-then-park and none pinned; timed from the go to the \
             last message (nothing untimed). Each consumer checks per-producer order; together \
             they must hold every message exactly once (count and sum)."
                .to_owned(),
            "rpc: shmring::rpc request/response, RpcClient::call in the parent against \
             RpcServer::serve_one in the child (echoing), over the same two channels as \
             shmring busy-spin (4 KiB rings, WaitStrategy::BusySpin): its ratio to busy-spin is the \
             RPC layer's cost (a 16-byte header each way, matching responses to calls by id, the \
             client's locks, a new Vec per request and per response). Neither side sets a \
             deadline, as for busy-spin."
                .to_owned(),
"broadcast: shmring::broadcast publish-subscribe as a round trip, two named topics \
             (one each way, 4 KiB data regions) created by the parent, one subscriber each, \
             Policy::Gated (with one message in flight the gate never closes), \
             WaitStrategy::BusySpin on both sides, Publisher::send and Subscriber::recv, every \
             echo checked: its ratio to busy-spin is what a topic costs over a channel (the \
             subscriber table, the gate, reading through atomic word loads, the lap checks); \
             its ratio to iceoryx2 (publish-subscribe too, both sides polling) needs the \
             iceoryx2 feature."
                .to_owned(),
                        "busy-spin-c, try-spin-c: the C ABI. The parent's side is shmring busy-spin's, the \
             child's echo loop is C (benches/c/echo.c) through shmring.h alone: it opens the two \
             channels with shmring_channel_open_fd (SHMRING_WAIT_BUSY_SPIN) and checks every ping. \
             busy-spin-c makes the calls the Rust child makes (shmring_msg_receiver_recv, \
             shmring_msg_sender_send on the message family's views): its ratio to busy-spin is \
             the C ABI's cost on one side of each round trip (handle and argument checks, the \
             view's dispatch, the panic guard). try-spin-c spins in C on the try_ calls instead, \
             each of which reads the clock when it finds nothing (the throttled liveness check)."
                .to_owned(),
            "busy-spin-cpp: the C++ wrapper. As busy-spin-c, the child's echo loop C++17 \
             (benches/c/echo.cpp) through the header-only shmring.hpp alone: \
             shmring::channel::open_fd, then shmring::receiver::recv and shmring::sender::send \
             (the same blocking C calls, through the wrapper's inline classes; no exception \
             leaves the loop), every ping checked: its ratio to busy-spin is the cost of the C \
             ABI and the wrapper on one side of each round trip."
                .to_owned(),
            "connection-shm, connection-socket: shmring::connection, the parent's Listener (in a \
             fresh private folder) accepting the child's connect. connection-shm: both sides \
             require shared memory, so the connection is upgraded to two memfd rings of 4 KiB with \
             WaitStrategy::BusySpin, as shmring busy-spin: its ratio to busy-spin is the \
             connection layer's cost (liveness flags kept by the watcher thread, the dispatch \
             between transports); neither side sets a deadline, as for busy-spin. connection-socket: both sides forbid \
             shared memory, so the messages go length-framed over the connection's Unix stream \
             socket: its ratio to the unix stream socket row is the framing's cost. Each side \
             checks that it got the transport the row names."
                .to_owned(),
            "readiness, readiness-sym: two named shmring channels (their doorbells are FIFOs \
             beside them), both sides as an event loop: try_recv until Empty, arm_for_message, \
             and if Armed wait in poll on readiness_fd, then try again (try_send, arm_for_space \
             likewise). readiness: the builder's default fences (asymmetric where membarrier is \
             allowed: every arm is a membarrier, an IPI to every CPU); readiness-sym: \
             asymmetric_fences(false), a full fence per message instead. eventfd, their reference: \
             the payload in shared buffers as for the futex, each side writes 1 to its eventfd \
             and waits in poll on the other's, then reads it (the same poll-then-read shape as an \
             event loop; both poll with a 100 ms timeout to notice a peer that hangs)."
                .to_owned(),
            "async, async-spin, tokio-unix-socket: each side on a current-thread tokio runtime \
             (I/O driver only: no worker thread, everything on the pinned main thread), each \
             round trip's send and receive (or each throughput call's up to 256 messages) awaited \
             in one block_on. async: two memfd channels passed with their doorbells, \
             shmring_tokio's AsyncSender::send and AsyncReceiver::recv, no spin (a receive that \
             finds nothing arms, with the builder's default fences, and waits in the reactor's \
             epoll_wait); throughput: one channel of 64 KiB, every message awaited one by one on \
             both sides. async-spin: as async, each receiver spinning 50 µs (the default \
             spin-then-park's) before it arms (AsyncReceiver::spin). tokio-unix-socket, their \
             reference: a Unix stream socket pair, tokio UnixStream on both sides (writable and \
             try_write until the 8 bytes went, readable and try_read until they came; \
             throughput: one write per message, reads of up to 64 KiB split as for the kernel \
             streams). Their CPU time is each process's user + system time over the run \
             (getrusage), divided by its round trips or messages."
                .to_owned(),
            "select-8, select-1: the parent waits in one shmring::Select over 8 (or 1) memfd \
             channels from the child, takes the echo from the one the Select says is ready and \
             checks it is the one the message's number picks (a multiplicative hash: a \
             different lane each time, in no fixed order); the child waits for the ping in a \
             Select over its one channel, then echoes on that lane. Both parked in epoll_wait \
             each time; a wait arms only the channels whose arming was spent (reported ready), \
             with the builder's default fences. select-8 / select-1 is what watching 7 more \
             channels costs a wake-up."
                .to_owned(),
            format!(
                "broadcast fan-out: one publisher process (the parent) to 1, 2 and 4 subscriber \
                 processes through one memfd topic ({} KiB of data region), gated and lossy, \
                 {} messages of 8 bytes a run published {} at a time (Publisher::try_send_batch; \
                 a gated publisher that finds no room waits with send_batch_deadline), {} \
                 round(s). Every process waits with the default WaitStrategy::SpinThenPark: on \
                 this machine three or more processes cannot all spin. Placement (\"where\", the \
                 last round): the publisher stays on the comparison's CPU; a single subscriber \
                 is pinned to the other CPU; two or four are not pinned, and each reports the \
                 CPU it ended on. The publisher's rate runs from the go to its last batch; each \
                 subscriber's from the go, as it saw it, to its last message (messages received \
                 over that time). Each subscriber checks every message (the number due, in \
                 order, none twice; a lossy one's gaps exactly the missed counts of its Lagged \
                 errors) and sums what it received and missed; the parent checks that received \
                 + missed is every message published, the sums add up, and a gated topic lost \
                 nothing (its cut-off bound is {:?}, so a subscriber the scheduler holds off is \
                 waited for). \"each one's loss\": messages a lossy subscriber missed, median \
                 of rounds. Report only: no target on this machine. iceoryx2 publish-subscribe \
                 beside it (cargo feature iceoryx2): one service of u64 samples, a buffer of \
                 4096 samples per subscriber, no history; gated = no safe overflow and the \
                 publisher's backpressure RetryUntilDelivered, lossy = safe overflow; sample \
                 by sample (send_copy: iceoryx2 has no batch); its subscribers poll receive, \
                 yielding the CPU (sched_yield) when nothing is there; a loss is a gap in the \
                 numbers (iceoryx2 does not count them), an error when gated.",
                fanout::CAPACITY / 1024,
                s.fan_out_messages,
                fanout::BATCH,
                s.fan_out_rounds,
                shmring_benches::cross::PATIENCE
            ),
            "kill → Disconnected: for each row and round, a measuring child (with \
             SHMRING_NO_WATCHER=1 in its environment for \"watcher off (before)\": a parked call \
             then learns of a death from its own 25 ms liveness probe) runs its trials one after \
             another, each with a fresh named channel (or a connection upgraded to shared memory) \
             and a fresh peer child, which opens its end, sends one message and sleeps. The \
             measuring thread receives that message, then blocks (recv with WaitStrategy::Park, \
             or armed in epoll_wait on readiness_fd); a second thread waits until it sleeps (its \
             /proc state S) and 2 ms more, reads the clock and SIGKILLs the peer; the latency runs \
             to the blocked call's Disconnected (anything else fails the row). Nobody is pinned. \
             The kernel's exit path frees the peer's memory before its descriptors hang up (about \
             70-105 µs per MiB on these guests): the peer's RSS is given. The connection rows' \
             death source is also the connection's socket watcher; the connection parked on the \
             futex with the watcher on is the reference (\"p99 vs conn.\")."
                .to_owned(),
        ];
        let mut out = String::new();
        for p in &paragraphs {
            if markdown {
                let _ = writeln!(out, "{p}\n");
            } else {
                let _ = writeln!(out, "{}\n", wrap(p, 100));
            }
        }
        let heading = |out: &mut String, title: &str| {
            let _ = if markdown {
                writeln!(out, "**{title}**\n")
            } else {
                writeln!(out, "{title}")
            };
        };
        let bullet = if markdown { "- " } else { "  " };
        let targets = self.targets();
        if !targets.is_empty() {
            heading(
                &mut out,
                "Targets (p50 or rate over the reference's, same round, median of rounds):",
            );
            for (label, r, cmp, target, met) in targets {
                let _ = writeln!(
                    out,
                    "{bullet}{label}: {r:.2}, target {cmp} {target}: {}",
                    if met { "met" } else { "NOT met" }
                );
            }
            out.push('\n');
        }
        let counted: Vec<&Series> = self
            .series
            .iter()
            .filter(|s| !s.values(Figure::CallsParent).is_empty())
            .collect();
        if !counted.is_empty() {
            heading(
                &mut out,
                "System calls shmring counted on each side's thread (system_calls_on_this_thread), \
                 per round trip or message, median of rounds (a caller's own poll not included):",
            );
            for s in counted {
                let (parent, child) = if s.metric.is_round_trip() {
                    ("parent", "child")
                } else {
                    ("receiver", "sender")
                };
                let _ = writeln!(
                    out,
                    "{bullet}{} / {}: {parent} {}, {child} {}",
                    s.method.name(),
                    s.metric.title(),
                    fmt_calls(median(s.values(Figure::CallsParent))),
                    fmt_calls(median(s.values(Figure::CallsChild))),
                );
            }
            out.push('\n');
        }
        let timed: Vec<&Series> = self
            .series
            .iter()
            .filter(|s| !s.values(Figure::CpuParent).is_empty())
            .collect();
        if !timed.is_empty() {
            heading(
                &mut out,
                "CPU time of each side's process (getrusage RUSAGE_SELF, user + system) per round \
                 trip or message, median of rounds (warm-up included):",
            );
            for s in timed {
                let (parent, child) = if s.metric.is_round_trip() {
                    ("parent", "child")
                } else {
                    ("receiver", "sender")
                };
                let _ = writeln!(
                    out,
                    "{bullet}{} / {}: {parent} {} µs, {child} {} µs",
                    s.method.name(),
                    s.metric.title(),
                    fmt_us(median(s.values(Figure::CpuParent))),
                    fmt_us(median(s.values(Figure::CpuChild))),
                );
            }
            out.push('\n');
        }
        let kill_targets = self.kill_targets();
        if !kill_targets.is_empty() {
            heading(
                &mut out,
                "Kill → Disconnected targets (every trial of every round together):",
            );
            for (label, target, met) in kill_targets {
                let _ = writeln!(
                    out,
                    "{bullet}{label}, {target}: {}",
                    if met { "met" } else { "NOT met" }
                );
            }
            out.push('\n');
        }
        let ratios = self.key_ratios();
        if ratios.iter().any(|(_, r)| r.is_some()) {
            heading(
                &mut out,
                "Key ratios of this run (median over rounds of same-round ratios):",
            );
            for (label, r) in ratios {
                let _ = writeln!(
                    out,
                    "{bullet}{label}: {}",
                    r.map_or("not measured".to_owned(), |r| format!("{r:.3}"))
                );
            }
            out.push('\n');
        }
        if !self.skipped.is_empty()
            || !self.failed.is_empty()
            || !self.kill_failed.is_empty()
            || (self.fan_out_ran && !cfg!(feature = "iceoryx2"))
        {
            heading(&mut out, "Not measured:");
            for (method, metric, reason) in &self.skipped {
                let _ = writeln!(
                    out,
                    "{bullet}{} / {}: {reason}",
                    method.name(),
                    metric.title()
                );
            }
            for (method, metric, error) in &self.failed {
                let _ = writeln!(
                    out,
                    "{bullet}{} / {}: FAILED: {error}",
                    method.name(),
                    metric.title()
                );
            }
            for (row, error) in &self.kill_failed {
                let _ = writeln!(
                    out,
                    "{bullet}kill → Disconnected / {}, watcher {}: FAILED: {error}",
                    row.name(),
                    watcher_label(row.watcher)
                );
            }
            for (row, error) in &self.fan_out_failed {
                let _ = writeln!(
                    out,
                    "{bullet}{} / {}: FAILED: {error}",
                    Method::FanOut.name(),
                    row.key()
                );
            }
            if self.fan_out_ran && !cfg!(feature = "iceoryx2") {
                let _ = writeln!(
                    out,
                    "{bullet}iceoryx2 pub-sub / broadcast fan-out (1, 2, 4 subscribers): not \
                     in this build (cargo feature `iceoryx2`)"
                );
            }
            out.push('\n');
        }
        out
    }

    /// `report.md`.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "# shmring cross-process comparison\n");
        let _ = writeln!(
            out,
            "Run at {} (UTC), {:.0} s. Two real processes: the program and a copy of itself \
             (re-executed; spawning is never timed; a fresh child per method, metric and round).\n",
            utc_string(self.started_unix),
            self.wall_seconds
        );
        let _ = writeln!(out, "## Machine\n");
        let _ = writeln!(out, "- CPU: {}", m.cpu_model);
        let _ = writeln!(
            out,
            "- CPUs: {} online ({} cores), {} allowed to this process",
            m.cpus_online, m.cpu_cores, m.cpus_allowed
        );
        let _ = writeln!(out, "- Kernel: {}", m.kernel);
        let _ = writeln!(out, "- Pinning: {}", pinning(m));
        if let Some(max) = m.mq_msgsize_max {
            let _ = writeln!(out, "- /proc/sys/fs/mqueue/msgsize_max: {max}");
        }
        let _ = writeln!(
            out,
            "- Build features: {}\n",
            if self.settings.features.is_empty() {
                "none".to_owned()
            } else {
                self.settings.features.join(", ")
            }
        );
        let _ = writeln!(out, "## Results\n");
        for table in self.tables() {
            let _ = writeln!(out, "### {}\n", table.title);
            let _ = writeln!(out, "| {} |", table.header.join(" | "));
            let _ = writeln!(
                out,
                "|{}",
                table
                    .header
                    .iter()
                    .enumerate()
                    .map(|(i, _)| if i >= TEXT_COLUMNS { "---:|" } else { "---|" })
                    .collect::<String>()
            );
            for row in &table.rows {
                let mut cells = row.clone();
                cells.resize(table.header.len(), String::new());
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            out.push('\n');
        }
        if self.series.iter().any(|s| s.pooled.is_some()) {
            let _ = writeln!(
                out,
                "![Round-trip latency distributions](latency.svg)\n\n*Round-trip latency by \
                 percentile, every round's samples together (log scales).*\n"
            );
        }
        let _ = writeln!(out, "## Notes\n");
        out.push_str(&self.notes(true));
        out.push_str(
            "\nFigures are from one run on a shared machine: absolute times move by ±25 % between \
             runs and machines. Compare the ratios, each taken against a reference measured in the \
             same round; treat p99.9 and max as indicative (host steal makes tails jump).\n",
        );
        out
    }
}

pub fn pinning(m: &Machine) -> String {
    match (m.parent_cpu, m.child_cpu) {
        (Some(p), Some(c)) => format!(
            "parent → CPU {p} ({}), children → CPU {c} ({} of {} pinned): the two processes on \
             separate cores",
            if m.parent_pinned {
                "pinned"
            } else {
                "NOT pinned"
            },
            m.children_pinned,
            m.children
        ),
        _ => format!(
            "NOT pinned: {} CPU(s) allowed, the two processes share them",
            m.cpus_allowed
        ),
    }
}

// ---------------------------------------------------------------------------
// JSON

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    started_unix: u64,
    started_utc: String,
    wall_seconds: f64,
    machine: &'a Machine,
    settings: &'a Settings,
    methods: Vec<JsonMethod>,
    records: Vec<JsonRecord>,
    key_ratios: Vec<JsonRatio>,
    kill: Vec<JsonKill>,
    fan_out: Vec<JsonFanOut>,
    skipped: Vec<JsonSkip>,
    failed: Vec<JsonSkip>,
}

#[derive(Serialize)]
struct JsonMethod {
    key: &'static str,
    name: &'static str,
    scope: &'static str,
}

#[derive(Serialize)]
struct JsonRecord {
    method: &'static str,
    metric: String,
    unit: &'static str,
    value: f64,
    min: f64,
    max: f64,
    rounds: Vec<f64>,
    vs_busy_spin: Option<f64>,
    vs_limit: Option<f64>,
}

#[derive(Serialize)]
struct JsonKill {
    row: String,
    name: String,
    watcher: bool,
    trials: usize,
    p50_ns: f64,
    p99_ns: f64,
    max_ns: f64,
    round_p50_ns: Vec<f64>,
    peer_rss_kib: u64,
    p99_vs_connection: Option<f64>,
}

#[derive(Serialize)]
struct JsonFanOut {
    row: String,
    peer: &'static str,
    policy: &'static str,
    subscribers: usize,
    messages_per_run: u64,
    /// The publisher's rate, msg/s: median, then round by round.
    publisher_msg_per_s: f64,
    publisher_rounds: Vec<f64>,
    /// Each subscriber's rate, msg/s: medians, then round by round.
    subscriber_msg_per_s: Vec<f64>,
    subscriber_rounds: Vec<Vec<f64>>,
    /// Each subscriber's messages missed, round by round.
    subscriber_missed: Vec<Vec<u64>>,
    placement: String,
}

#[derive(Serialize)]
struct JsonRatio {
    name: &'static str,
    value: Option<f64>,
}

#[derive(Serialize)]
struct JsonSkip {
    method: &'static str,
    metric: &'static str,
    reason: String,
}

impl Results {
    /// `report.json`.
    pub fn json(&self) -> String {
        let mut records = Vec::new();
        for s in &self.series {
            for (figure, values) in &s.rounds {
                let (metric, unit, scale) = match figure {
                    Figure::Rate if s.metric == Metric::Tput8 => {
                        (format!("{}_msg_per_s", s.metric.key()), "msg/s", 1.0)
                    }
                    Figure::Rate => (format!("{}_GB_per_s", s.metric.key()), "GB/s", 1e-9),
                    f @ (Figure::CallsParent | Figure::CallsChild) => (
                        format!("{}_{}", s.metric.key(), f.key()),
                        "calls per message",
                        1.0,
                    ),
                    f => (format!("{}_{}_ns", s.metric.key(), f.key()), "ns", 1.0),
                };
                let rounds: Vec<f64> = values.iter().map(|v| v * scale).collect();
                let (min, max) = range(&rounds);
                records.push(JsonRecord {
                    method: s.method.key(),
                    metric,
                    unit,
                    value: median(&rounds),
                    min,
                    max,
                    rounds,
                    vs_busy_spin: self.ratio(s, *figure, Method::ShmringBusySpin),
                    vs_limit: self.ratio(s, *figure, s.metric.limit()),
                });
            }
        }
        let skip = |list: &[(Method, Metric, String)]| {
            list.iter()
                .map(|(method, metric, reason)| JsonSkip {
                    method: method.key(),
                    metric: metric.key(),
                    reason: reason.clone(),
                })
                .collect()
        };
        let mut methods: Vec<Method> = Vec::new();
        for s in &self.series {
            if !methods.contains(&s.method) {
                methods.push(s.method);
            }
        }
        let report = JsonReport {
            schema: "shmring-benches/cross-process/v1",
            started_unix: self.started_unix,
            started_utc: utc_string(self.started_unix),
            wall_seconds: self.wall_seconds,
            machine: &self.machine,
            settings: &self.settings,
            methods: methods
                .into_iter()
                .map(|m| JsonMethod {
                    key: m.key(),
                    name: m.name(),
                    scope: m.scope(),
                })
                .collect(),
            records,
            key_ratios: self
                .key_ratios()
                .into_iter()
                .map(|(name, value)| JsonRatio { name, value })
                .collect(),
            kill: self
                .kill
                .iter()
                .map(|k| JsonKill {
                    row: k.row.key(),
                    name: k.row.name(),
                    watcher: k.row.watcher,
                    trials: k.latencies_ns.len(),
                    p50_ns: k.quantile(0.5),
                    p99_ns: k.quantile(0.99),
                    max_ns: k.quantile(1.0),
                    round_p50_ns: k.round_p50_ns.clone(),
                    peer_rss_kib: median_u64(&k.peer_rss_kib),
                    p99_vs_connection: self
                        .kill_reference()
                        .map(|r| k.quantile(0.99) / r.quantile(0.99)),
                })
                .collect(),
            fan_out: self
                .fan_out
                .iter()
                .map(|f| {
                    let n = f.row.subscribers;
                    let publisher_rounds = f.publisher_rates();
                    let subscriber_rounds: Vec<Vec<f64>> =
                        (0..n).map(|i| f.subscriber_rates(i)).collect();
                    JsonFanOut {
                        row: f.row.key(),
                        peer: f.row.peer_name(),
                        policy: f.row.policy_name(),
                        subscribers: n,
                        messages_per_run: self.settings.fan_out_messages,
                        publisher_msg_per_s: median(&publisher_rounds),
                        publisher_rounds,
                        subscriber_msg_per_s: subscriber_rounds.iter().map(|r| median(r)).collect(),
                        subscriber_rounds,
                        subscriber_missed: (0..n).map(|i| f.subscriber_missed(i)).collect(),
                        placement: f.placement(&self.machine),
                    }
                })
                .collect(),
            skipped: skip(&self.skipped),
            failed: {
                let mut failed: Vec<JsonSkip> = skip(&self.failed);
                failed.extend(self.fan_out_failed.iter().map(|(row, e)| JsonSkip {
                    method: Method::FanOut.key(),
                    metric: "fan_out",
                    reason: format!("{}: {e}", row.key()),
                }));
                failed
            },
        };
        serde_json::to_string_pretty(&report).expect("the report serialises")
    }
}

// ---------------------------------------------------------------------------
// The plot

/// A row of the plot: the methods whose latencies share a scale, read from
/// [`Method::scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Shared memory, whether it waits by spinning or through a futex: shmring's
    /// methods, iceoryx2, and the hardware's limit as their reference.
    SharedMemory,
    /// Everything whose every message crosses the kernel: sockets, pipes,
    /// queues, and the futex and eventfd wake-ups as their references (about a
    /// hundred times slower than shared memory that spins).
    Kernel,
}

impl Family {
    /// The plot's rows, top to bottom.
    const ALL: [Self; 2] = [Self::SharedMemory, Self::Kernel];

    /// The family of `method`: the kernel's if its scope names the kernel.
    fn of(method: Method) -> Self {
        if method.scope().contains("kernel") {
            Self::Kernel
        } else {
            Self::SharedMemory
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::SharedMemory => "shared memory",
            Self::Kernel => "kernel paths",
        }
    }
}

/// Whether `method` is a reference (its scope says `ref:`): drawn black and dotted.
fn is_reference(method: Method) -> bool {
    method.scope().starts_with("ref:")
}

/// Colours of a family's methods, in turn (Tableau 10 less its grey, which would
/// pass for a reference's); after the ninth, again dashed, then dotted.
const COLOURS: [(u8, u8, u8); 9] = [
    (0x4e, 0x79, 0xa7),
    (0xf2, 0x8e, 0x2b),
    (0xe1, 0x57, 0x59),
    (0x76, 0xb7, 0xb2),
    (0x59, 0xa1, 0x4f),
    (0xed, 0xc9, 0x48),
    (0xb0, 0x7a, 0xa1),
    (0xff, 0x9d, 0xa7),
    (0x9c, 0x75, 0x5f),
];

/// Strokes of a family's references, in turn: black or grey, dotted or dashed.
const REFERENCES: [Stroke; 4] = [
    Stroke {
        colour: (0, 0, 0),
        dashes: Some((3, 3)),
    },
    Stroke {
        colour: (0x80, 0x80, 0x80),
        dashes: Some((3, 3)),
    },
    Stroke {
        colour: (0, 0, 0),
        dashes: Some((12, 4)),
    },
    Stroke {
        colour: (0x80, 0x80, 0x80),
        dashes: Some((12, 4)),
    },
];

/// How one curve is drawn: its colour and its dashes (dash, gap; none: solid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stroke {
    colour: (u8, u8, u8),
    dashes: Option<(u32, u32)>,
}

impl Stroke {
    /// The stroke of `method` among `family`'s methods: by its place among the
    /// family's references or among the others, so that a method keeps its
    /// stroke in every panel of its row.
    fn of(family: &[Method], method: Method) -> Self {
        let reference = is_reference(method);
        let i = family
            .iter()
            .filter(|&&m| is_reference(m) == reference)
            .position(|&m| m == method)
            .unwrap_or(0);
        if reference {
            REFERENCES[i % REFERENCES.len()]
        } else {
            Self {
                colour: COLOURS[i % COLOURS.len()],
                dashes: [None, Some((9, 4)), Some((2, 3))][i / COLOURS.len() % 3],
            }
        }
    }
}

/// The curves' line width, px.
const LINE: u32 = 2;
/// The legend's font size, line height and first line (from its row's top), px.
const LEGEND_FONT: u32 = 17;
const LEGEND_LINE: i32 = 25;
const LEGEND_TOP: i32 = 84;

/// A generous width of `text` in the legend's font, px: SVG leaves the font to
/// the viewer; plotters writes a font size of `LEGEND_FONT / 1.24`, whose
/// sans-serif glyphs average about half an em, and this allows two thirds.
fn legend_text_width(text: &str) -> u32 {
    (text.chars().count() as u32 * LEGEND_FONT * 11).div_ceil(20)
}

/// A method's line in the legend.
fn legend_label(method: Method) -> String {
    if is_reference(method) {
        format!("{} (reference)", method.name())
    } else {
        method.name().to_owned()
    }
}

/// `latency.svg`: round-trip latency by percentile (x: 1/(1-q), log; y: µs,
/// log), every round's samples together; one row of panels per [`Family`], one
/// column per round-trip metric, each panel scaled to its own curves, each row
/// with its legend beside it.
pub fn plot(results: &Results, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    plot_series(&results.series, path)
}

/// One method's percentile curve for one metric.
struct Curve {
    method: Method,
    metric: Metric,
    /// (1/(1-q), µs), by [`curve`].
    points: Vec<(f64, f64)>,
}

/// [`plot`] of `series`; writes nothing if none has samples.
fn plot_series(series: &[Series], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let curves: Vec<Curve> = series
        .iter()
        .filter_map(|s| {
            Some(Curve {
                method: s.method,
                metric: s.metric,
                points: curve(s.pooled.as_ref()?),
            })
        })
        .filter(|c| !c.points.is_empty())
        .collect();
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|&m| curves.iter().any(|c| c.metric == m))
        .collect();
    // Each family's methods in report order; a family with none has no row.
    let families: Vec<(Family, Vec<Method>)> = Family::ALL
        .into_iter()
        .map(|family| {
            let methods = Method::ALL
                .into_iter()
                .filter(|&m| Family::of(m) == family && curves.iter().any(|c| c.method == m))
                .collect::<Vec<_>>();
            (family, methods)
        })
        .filter(|(_, methods)| !methods.is_empty())
        .collect();
    if families.is_empty() {
        return Ok(());
    }
    const PANEL_WIDTH: u32 = 620;
    const PANEL_HEIGHT: u32 = 430;
    const TITLE: u32 = 44;
    // The legend column fits the longest label of any row, after its 34 px
    // sample line and the margins.
    let legend_width = families
        .iter()
        .flat_map(|(_, methods)| methods.iter().map(|&m| legend_text_width(&legend_label(m))))
        .max()
        .unwrap_or(0)
        + 70;
    // A row is as tall as its legend needs, at least a panel.
    let row_height = |methods: &[Method]| {
        PANEL_HEIGHT.max(LEGEND_TOP as u32 + LEGEND_LINE as u32 * methods.len() as u32)
    };
    let plots_width = PANEL_WIDTH * metrics.len() as u32;
    let width = plots_width + legend_width;
    let height = TITLE + families.iter().map(|(_, m)| row_height(m)).sum::<u32>();

    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, mut rest) = root.split_vertically(TITLE);
    title.draw(&Text::new(
        "Round-trip latency by percentile, two processes, all rounds' samples (log scales)",
        (14, 14),
        ("sans-serif", 23).into_font(),
    ))?;
    for (family, methods) in &families {
        let (row, below) = rest.split_vertically(row_height(methods));
        rest = below;
        let (plots, legend) = row.split_horizontally(plots_width);
        let panels = plots.split_evenly((1, metrics.len()));
        for (panel, &metric) in panels.iter().zip(&metrics) {
            let drawn: Vec<&Curve> = curves
                .iter()
                .filter(|c| c.metric == metric && Family::of(c.method) == *family)
                .collect();
            let x_max = drawn
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.0))
                .fold(10.0, f64::max);
            let (y_min, y_max) = drawn
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.1))
                .fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
                    (lo.min(y), hi.max(y))
                });
            let (y_min, y_max) = (y_min.min(y_max).max(0.01) / 1.3, y_max.max(0.02) * 1.3);
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{} · {}", family.title(), metric.title()),
                    ("sans-serif", 22),
                )
                .margin(12)
                .x_label_area_size(50)
                .y_label_area_size(74)
                .build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("percentile of the round trips")
                .y_desc("round-trip latency (µs)")
                .axis_desc_style(("sans-serif", 16))
                .label_style(("sans-serif", 14))
                .x_label_formatter(&|x| percentile_label(*x))
                .y_label_formatter(&|y| axis_number(*y))
                .draw()?;
            // References first, so that a method drawn over one stays visible.
            let (references, others): (Vec<_>, Vec<_>) =
                drawn.into_iter().partition(|c| is_reference(c.method));
            for Curve { method, points, .. } in references.into_iter().chain(others) {
                let Stroke { colour, dashes } = Stroke::of(methods, *method);
                let style = RGBColor(colour.0, colour.1, colour.2).stroke_width(LINE);
                match dashes {
                    None => {
                        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
                    }
                    Some((dash, gap)) => {
                        chart.draw_series(DashedLineSeries::new(
                            points.iter().copied(),
                            dash,
                            gap,
                            style,
                        ))?;
                    }
                }
            }
        }
        // The row's legend, beside its panels, in report order.
        legend.draw(&Text::new(
            family.title(),
            (10, 44),
            ("sans-serif", 19).into_font().style(FontStyle::Bold),
        ))?;
        for (i, &method) in methods.iter().enumerate() {
            let y = LEGEND_TOP + LEGEND_LINE * i as i32;
            let Stroke { colour, dashes } = Stroke::of(methods, method);
            let style = RGBColor(colour.0, colour.1, colour.2).stroke_width(LINE + 1);
            let sample = vec![(10, y), (44, y)];
            match dashes {
                None => legend.draw(&PathElement::new(sample, style))?,
                Some((dash, gap)) => legend.draw(&plotters::element::DashedPathElement::new(
                    sample, dash, gap, style,
                ))?,
            }
            legend.draw(&Text::new(
                legend_label(method),
                (52, y - 8),
                ("sans-serif", LEGEND_FONT).into_font(),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// A log axis's tick value without float noise: "0.3", "5", "2000".
fn axis_number(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Points (1/(1-q), µs) of a histogram's percentile curve, 20 a decade, up to the
/// last sample.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let n = h.len() as f64;
    let mut points = Vec::new();
    let mut k = 0;
    loop {
        let x = 10f64.powf(k as f64 / 20.0);
        let q = 1.0 - 1.0 / x;
        if x > n {
            break;
        }
        points.push((x, h.value_at_quantile(q) as f64 / 1000.0));
        k += 1;
    }
    points.push((n.max(1.0), h.max() as f64 / 1000.0));
    points
}

fn percentile_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 1.0 / x);
    if q < 99.0 {
        format!("{q:.0}%")
    } else {
        // Less a hair: 100 - 99.9 is 0.0999…, whose log would ask for a digit more.
        let digits = (-(100.0 - q).log10() - 1e-6).ceil().max(0.0) as usize;
        format!("{q:.*}%", digits)
    }
}

// ---------------------------------------------------------------------------
// Time

/// "YYYY-MM-DD HH:MM:SS" of a Unix time, UTC.
pub fn utc_string(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// "YYYYMMDD-HHMMSS" of a Unix time, UTC: the default report folder's name.
pub fn stamp_string(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Year, month, day, hour, minute, second of a Unix time (UTC), by Howard
/// Hinnant's days-to-civil.
fn civil(unix: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc_string(0), "1970-01-01 00:00:00");
        assert_eq!(utc_string(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(stamp_string(1_700_000_000), "20231114-221320");
    }

    /// A round-trip series of `method` whose pooled histogram holds 1000 samples
    /// from `base_ns` up to twice it.
    fn round_trips(method: Method, metric: Metric, base_ns: u64) -> Series {
        let mut series = Series::new(method, metric);
        let pooled = series
            .pooled
            .as_mut()
            .expect("a round trip pools its samples");
        for i in 0..1000 {
            pooled
                .record(base_ns + base_ns * i / 1000)
                .expect("in the bounds");
        }
        series
    }

    /// The text of every `<text>` element of `svg` with its `x`.
    fn svg_texts(svg: &str) -> Vec<(f64, String)> {
        svg.split("<text x=\"")
            .skip(1)
            .map(|element| {
                let x = element.split('"').next().unwrap_or_default();
                let body = element.split_once('>').map_or("", |(_, b)| b);
                let text = body.split("</text>").next().unwrap_or_default();
                (x.parse().expect("a number"), text.trim().to_owned())
            })
            .collect()
    }

    #[test]
    fn families_follow_the_scope() {
        use Method::*;
        for m in [
            ShmringBusySpin,
            ShmringPark,
            Readiness,
            Broadcast,
            Iceoryx2,
            Event,
            CacheLine,
        ] {
            assert_eq!(Family::of(m), Family::SharedMemory, "{}", m.name());
        }
        for m in [
            ConnectionSocket,
            UnixStream,
            Tcp,
            Pipe,
            MessageQueue,
            Futex,
            EventFd,
        ] {
            assert_eq!(Family::of(m), Family::Kernel, "{}", m.name());
        }
        for m in [CacheLine, Futex, EventFd] {
            assert!(is_reference(m), "{}", m.name());
        }
        for m in [ShmringBusySpin, Iceoryx2, Pipe] {
            assert!(!is_reference(m), "{}", m.name());
        }
    }

    #[test]
    fn every_curve_of_a_row_has_its_own_stroke() {
        use shmring_benches::cross::Support;
        for family in Family::ALL {
            let methods: Vec<Method> = Method::ALL
                .into_iter()
                .filter(|&m| Family::of(m) == family)
                .filter(|&m| m.supports(Metric::Rtt8) != Support::No)
                .collect();
            let strokes: Vec<Stroke> = methods.iter().map(|&m| Stroke::of(&methods, m)).collect();
            for (i, a) in strokes.iter().enumerate() {
                for (j, b) in strokes.iter().enumerate().skip(i + 1) {
                    assert_ne!(a, b, "{} and {}", methods[i].name(), methods[j].name());
                }
            }
        }
    }

    #[test]
    fn plot_has_a_row_per_family_and_legends_that_fit() {
        use Method::*;
        use Metric::*;
        let series = vec![
            round_trips(ShmringBusySpin, Rtt8, 500),
            round_trips(ShmringBusySpin, Rtt1K, 900),
            round_trips(ReadinessSymmetric, Rtt8, 30_000),
            round_trips(CacheLine, Rtt8, 300),
            round_trips(Pipe, Rtt8, 40_000),
            round_trips(Futex, Rtt1K, 50_000),
            Series::new(ShmringBusySpin, Tput8),
        ];
        let path = std::env::temp_dir().join(format!(
            "shmring-benches-plot-test-{}.svg",
            std::process::id()
        ));
        plot_series(&series, &path).expect("the plot is written");
        let svg = std::fs::read_to_string(&path).expect("the plot is there");
        let _ = std::fs::remove_file(&path);
        let width: f64 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("the SVG's width");
        let texts = svg_texts(&svg);
        for panel in [
            "shared memory · round trip, 8 B",
            "shared memory · round trip, 1 KiB",
            "kernel paths · round trip, 8 B",
            "kernel paths · round trip, 1 KiB",
        ] {
            assert!(texts.iter().any(|(_, t)| t == panel), "no panel {panel:?}");
        }
        assert!(texts.iter().any(|(_, t)| t == "round-trip latency (µs)"));
        // Each plotted method once in its row's legend, inside the picture.
        for method in [ShmringBusySpin, ReadinessSymmetric, CacheLine, Pipe, Futex] {
            let label = legend_label(method);
            let found: Vec<&(f64, String)> = texts.iter().filter(|(_, t)| *t == label).collect();
            assert_eq!(found.len(), 1, "{label:?} in the legends");
            let right = found[0].0 + f64::from(legend_text_width(&label));
            assert!(
                right <= width,
                "{label:?} ends at {right}, the plot at {width}"
            );
        }
        assert!(
            texts
                .iter()
                .any(|(_, t)| t == "futex ping-pong (reference)")
        );
    }

    #[test]
    fn no_round_trips_no_plot() {
        let path = std::env::temp_dir().join(format!(
            "shmring-benches-no-plot-test-{}.svg",
            std::process::id()
        ));
        let series = vec![Series::new(Method::ShmringBusySpin, Metric::Tput8)];
        plot_series(&series, &path).expect("nothing to do");
        assert!(!path.exists());
    }

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(200.0), "99.5%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(10_000.0), "99.99%");
    }
}
