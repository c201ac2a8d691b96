//! `shmring`: list, inspect, watch and clean shmring's shared objects.
//!
//! Everything here is read-only but `clean`, and every fact comes from the
//! library's public listing API (`shmring::list_objects`, `inspect`, `clean`,
//! `clean_stale`, `connection::list_listeners`): the headers are read with
//! `pread` and validated by the parsers `attach` uses, liveness is the locks the
//! library takes. The JSON schema and the exit codes are documented in
//! `cli/README.md`; `--help` shows an example per command.

#[cfg(feature = "bridge")]
mod bridge;
mod clean;
mod exit;
mod inspect;
mod json;
mod ls;
mod text;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::exit::Failure;

/// Shown under `shmring --help`.
const EXAMPLES: &str = "\
Examples:
  shmring ls                         every object and connection socket
  shmring inspect prices             one object's header, holders and verdict
  shmring watch prices               its message rate, bytes/s and fill, live
  shmring clean --stale --dry-run    what a clean would remove

Exit codes: 0 done; 1 error; 2 usage; 3 not found; 4 invalid object; 5 kept
(a named object is held by a live process). JSON schema: cli/README.md.";

/// List, inspect, watch and clean shmring's shared objects (/dev/shm and the
/// connection sockets).
#[derive(Debug, Parser)]
#[command(name = "shmring", version, after_help = EXAMPLES)]
struct Cli {
    /// Print JSON (one document; `watch`: one per line) in the documented schema.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every shmring object in /dev/shm and every connection socket.
    #[command(after_help = "\
Examples:
  shmring ls
  shmring ls --kind topic --name 'prices*'
  shmring ls --stale --json | jq -r '.objects[].name'")]
    Ls(LsArgs),
    /// Show every header field of one object, its holders and the validation verdict.
    #[command(after_help = "\
Examples:
  shmring inspect prices
  shmring inspect prices --json | jq .details")]
    Inspect {
        /// The object's name (without the `shmring.` prefix).
        name: String,
    },
    /// Sample an object's message rate, bytes/s and fill level, read-only.
    ///
    /// Refreshes in place on a terminal; one line per interval otherwise.
    #[command(
        visible_alias = "hz",
        after_help = "\
Examples:
  shmring watch prices
  shmring hz prices --interval 0.5 --count 10 --json"
    )]
    Watch(WatchArgs),
    /// Remove objects no live process holds (checked under the library's locks).
    #[command(after_help = "\
Examples:
  shmring clean --stale --dry-run
  shmring clean --stale --name 'prices-*'
  shmring clean prices ticks")]
    Clean(CleanArgs),
    /// Carry local objects to and from Zenoh until every direction has ended
    /// (feature `bridge`; see zenoh/README.md).
    #[cfg(feature = "bridge")]
    #[command(after_help = "\
Examples:
  shmring bridge --listen tcp/0.0.0.0:7447 --out spsc:telemetry=site/telemetry
  shmring bridge --connect tcp/10.0.0.1:7447 --in site/telemetry=spsc:telemetry
  shmring bridge --config zenoh.json5 --allow 'site/**' --out topic:quotes=site/quotes")]
    Bridge(bridge::BridgeArgs),
    /// Print a man page (roff), generated from these command definitions.
    #[command(after_help = "\
Examples:
  shmring man > ~/.local/share/man/man1/shmring.1
  shmring man ls > ~/.local/share/man/man1/shmring-ls.1")]
    Man {
        /// The command whose page to print (default: the tool's own).
        command: Option<String>,
    },
}

/// `shmring ls`'s filters.
#[derive(Debug, clap::Args)]
struct LsArgs {
    /// Only objects of this kind (sockets are left out unless `socket`;
    /// `doorbells`: FIFOs left without their segment).
    #[arg(long, value_enum)]
    kind: Option<KindFilter>,
    /// Only names matching this glob (`*`, `?`, `[...]`).
    #[arg(long, value_name = "GLOB")]
    name: Option<String>,
    /// Only stale objects (no live holder) and sockets no listener is bound to.
    #[arg(long)]
    stale: bool,
    /// The listeners' directory (default: `$XDG_RUNTIME_DIR/shmring`, else
    /// `/tmp/shmring-<euid>`).
    #[arg(long, value_name = "DIR")]
    sockets: Option<PathBuf>,
}

/// The kinds `ls --kind` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindFilter {
    Spsc,
    Mpmc,
    Topic,
    Event,
    Semaphore,
    /// Published values (`SharedValue`).
    Value,
    /// Shared mutexes (`SharedMutex`).
    Mutex,
    /// Files whose kind word could not be read or is not known.
    Unknown,
    /// Doorbell FIFOs left without their segment.
    Doorbells,
    /// Connection sockets.
    Socket,
}

/// `shmring watch`'s settings.
#[derive(Debug, clap::Args)]
struct WatchArgs {
    /// The object's name.
    name: String,
    /// Seconds between samples.
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    interval: f64,
    /// Stop after this many intervals (default: run until interrupted).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// `shmring clean`'s selection.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true).args(["names", "stale"]))]
struct CleanArgs {
    /// Objects to remove, each only if no live process holds it.
    names: Vec<String>,
    /// Every stale object (with names: only those of them that are stale).
    #[arg(long)]
    stale: bool,
    /// With `--stale` and no names: only names matching this glob (`*`, `?`, `[...]`).
    #[arg(
        long,
        value_name = "GLOB",
        requires = "stale",
        conflicts_with = "names"
    )]
    name: Option<String>,
    /// Say what would be removed and kept; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The `--name GLOB` filter: matches every name when absent.
fn name_filter(glob: Option<&str>) -> Result<impl Fn(&str) -> bool, Failure> {
    let pattern = glob
        .map(|g| glob::Pattern::new(g).map_err(|e| Failure::usage(format!("--name {g:?}: {e}"))))
        .transpose()?;
    Ok(move |name: &str| pattern.as_ref().is_none_or(|p| p.matches(name)))
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if (0.01..=3600.0).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!("{secs} is outside 0.01..=3600 seconds"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls(args) => ls::run(&args, cli.json),
        Command::Inspect { name } => inspect::run(&name, cli.json),
        Command::Watch(args) => watch::run(&args, cli.json),
        Command::Clean(args) => clean::run(&args, cli.json),
        #[cfg(feature = "bridge")]
        Command::Bridge(args) => bridge::run(&args, cli.json),
        Command::Man { command } => man(command.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Writes the man page of `shmring`, or of `shmring-<command>`, to stdout.
fn man(command: Option<&str>) -> Result<(), Failure> {
    let top = Cli::command();
    let page = match command {
        None => top,
        Some(name) => {
            let sub = top
                .find_subcommand(name)
                .ok_or_else(|| Failure::usage(format!("no command {name:?}")))?;
            let sub = sub.clone();
            let page_name = format!("shmring-{}", sub.get_name());
            sub.name(page_name)
        }
    };
    clap_mangen::Man::new(page)
        .render(&mut std::io::stdout().lock())
        .map_err(|e| Failure::error(format!("writing the man page: {e}")))
}
