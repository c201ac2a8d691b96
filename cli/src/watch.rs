//! `shmring watch NAME` (`hz`): rates and fill sampled from an object's
//! positions, read-only: each sample is an `inspect` (`pread` of the headers and
//! lock probes), which takes no role and writes nothing.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use shmring::segment::Progress;

use crate::exit::{Code, Failure};
use crate::json::{self, Fill, SCHEMA};
use crate::{WatchArgs, text};

/// One reading of the object.
struct Sample {
    at: Instant,
    progress: Option<Progress>,
    fill: Option<Fill>,
    stale: bool,
    holders: String,
}

/// What one interval measured.
#[derive(Debug, Serialize)]
struct Interval<'a> {
    schema: u32,
    name: &'a str,
    /// Seconds since the first sample, at this one.
    elapsed_s: f64,
    /// Seconds between this sample and the previous one.
    interval_s: f64,
    /// Null where the kind does not count messages (SPSC channels), or the
    /// counter went backwards (a hostile or re-created object).
    messages_per_s: Option<f64>,
    /// Null where the kind does not count bytes (MPMC channels).
    bytes_per_s: Option<f64>,
    fill: Option<Fill>,
    stale: bool,
}

/// Reads the object; `first`: the watch's first reading (a missing object is
/// "no such object" then, and "gone" later).
fn sample(name: &str, first: bool) -> Result<Sample, Failure> {
    let status = shmring::inspect(name).map_err(|e| match e {
        shmring::Error::NotFound { .. } if !first => Failure::new(
            Code::NotFound,
            format!("{name}: gone (removed while watched)"),
        ),
        e => Failure::from_library(name, &e),
    })?;
    let at = Instant::now();
    let state = status
        .state
        .as_ref()
        .map_err(|e| Failure::new(Code::Invalid, format!("{name}: {e}")))?;
    let object = json::Object::new(&status, false);
    Ok(Sample {
        at,
        progress: state.progress(),
        fill: object.fill,
        stale: object.stale,
        holders: text::holders_summary(&object.holders),
    })
}

/// Per second, from two readings of a counter; `None` if either is missing or it
/// went backwards.
fn per_second(before: Option<u64>, after: Option<u64>, secs: f64) -> Option<f64> {
    let grew = after?.checked_sub(before?)?;
    (secs > 0.0).then(|| grew as f64 / secs)
}

pub fn run(args: &WatchArgs, as_json: bool) -> Result<(), Failure> {
    let name = args.name.as_str();
    let live_view = !as_json && std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(args.interval);
    let first = sample(name, true)?;
    let start = first.at;
    let mut previous = first;
    let mut out = std::io::stdout().lock();
    let write_failed = |e: std::io::Error| Failure::error(format!("writing: {e}"));
    if live_view {
        writeln!(
            out,
            "shmring watch {name}: every {} s, Ctrl-C to stop",
            args.interval
        )
        .map_err(write_failed)?;
    }
    let mut drawn = 0;
    for n in 1.. {
        if args.count.is_some_and(|count| n > count) {
            break;
        }
        // Sleep to a fixed grid, so that the intervals do not drift.
        let due = start + interval.mul_f64(n as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let current = sample(name, false)?;
        let secs = current.at.duration_since(previous.at).as_secs_f64();
        let bytes = |p: &Sample| p.progress.and_then(|p| p.bytes);
        let messages = |p: &Sample| p.progress.and_then(|p| p.messages);
        let reading = Interval {
            schema: SCHEMA,
            name,
            elapsed_s: current.at.duration_since(start).as_secs_f64(),
            interval_s: secs,
            messages_per_s: per_second(messages(&previous), messages(&current), secs),
            bytes_per_s: per_second(bytes(&previous), bytes(&current), secs),
            fill: current.fill,
            stale: current.stale,
        };
        if as_json {
            writeln!(out, "{}", json!(reading)).map_err(write_failed)?;
        } else if live_view {
            drawn = redraw(&mut out, drawn, &view(&reading, &current, n)).map_err(write_failed)?;
        } else {
            writeln!(out, "{}", line(&reading)).map_err(write_failed)?;
        }
        out.flush().map_err(write_failed)?;
        previous = current;
    }
    Ok(())
}

fn shown(rate: Option<f64>, unit: &str) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| text::rate(r, unit))
}

/// The line printed per interval off a terminal.
fn line(r: &Interval) -> String {
    format!(
        "{:>8.2} s  {:>14}  {:>14}  fill {}{}",
        r.elapsed_s,
        shown(r.messages_per_s, "msg/s"),
        shown(r.bytes_per_s, "B/s"),
        text::fill(r.fill.as_ref()),
        if r.stale { "  (stale)" } else { "" },
    )
}

/// The block redrawn in place on a terminal.
fn view(r: &Interval, s: &Sample, n: u64) -> Vec<String> {
    vec![
        format!(
            "  messages/s  {}",
            match (r.messages_per_s, r.bytes_per_s) {
                (None, Some(_)) => "- (this kind counts bytes only)".to_owned(),
                (rate, _) => shown(rate, "msg/s"),
            }
        ),
        format!("  bytes/s     {}", shown(r.bytes_per_s, "B/s")),
        format!("  fill        {}", text::fill(r.fill.as_ref())),
        format!(
            "  holders     {}{}",
            s.holders,
            if r.stale { " (stale)" } else { "" }
        ),
        format!("  samples     {n} in {:.1} s", r.elapsed_s),
    ]
}

/// Moves the cursor up over the `drawn` lines of the last view and writes
/// `lines` over them; returns how many lines it drew.
fn redraw(out: &mut impl Write, drawn: usize, lines: &[String]) -> std::io::Result<usize> {
    if drawn > 0 {
        write!(out, "\x1b[{drawn}A")?;
    }
    for line in lines {
        writeln!(out, "\x1b[2K{line}")?;
    }
    Ok(lines.len())
}
