//! `shmring clean [NAME…] [--stale] [--dry-run]`: removes objects no live
//! process holds, by the library's `clean`, which decides under the locks a
//! reclaiming creator takes (race-free against a process that attaches meanwhile).

use serde::Serialize;
use serde_json::json;
use shmring::segment::{CleanOutcome, KeptReason, ObjectStatus};

use crate::CleanArgs;
use crate::exit::{Code, Failure};
use crate::json::SCHEMA;

/// What was done, or would be, with one object.
#[derive(Debug, Serialize)]
struct Verdict {
    name: String,
    /// `removed`, `would_remove`, `kept`, `would_keep`, `not_found`.
    outcome: &'static str,
    /// Removed, or would be: its files and doorbells.
    files: Vec<String>,
    /// Why it was (or would be) kept.
    reason: Option<String>,
    /// The exit status this verdict gives when the object was named.
    #[serde(skip)]
    failure: Option<Code>,
}

impl Verdict {
    fn removed(name: String, outcome: &'static str, files: Vec<String>) -> Self {
        Self {
            name,
            outcome,
            files,
            reason: None,
            failure: None,
        }
    }

    fn kept(name: String, outcome: &'static str, reason: String, failure: Option<Code>) -> Self {
        Self {
            name,
            outcome,
            files: Vec::new(),
            reason: Some(reason),
            failure,
        }
    }

    fn not_found(name: String) -> Self {
        Self::kept(
            name,
            "not_found",
            "not found".to_owned(),
            Some(Code::NotFound),
        )
    }

    /// A named object a `--stale` run leaves alone because it is live: what was
    /// asked (only the stale ones), so not a failure.
    fn not_stale(name: String, outcome: &'static str) -> Self {
        let reason = "not stale: a live process holds it".to_owned();
        Self::kept(name, outcome, reason, None)
    }
}

pub fn run(args: &CleanArgs, as_json: bool) -> Result<(), Failure> {
    let results = if args.dry_run {
        dry_run(args)?
    } else {
        clean(args)?
    };
    if as_json {
        let doc = json!({ "schema": SCHEMA, "dry_run": args.dry_run, "results": results });
        println!("{doc:#}");
    } else if results.is_empty() {
        println!("nothing to clean");
    } else {
        for r in &results {
            let what = r.reason.clone().unwrap_or_else(|| r.files.join(" "));
            println!("{} {}: {what}", r.outcome.replace('_', " "), r.name);
        }
    }
    // The worst failure among the named objects; `--stale` alone only tries stale
    // objects, and one attached to meanwhile is rightly kept.
    const WORST_FIRST: [Code; 5] = [
        Code::Error,
        Code::Usage,
        Code::Invalid,
        Code::NotFound,
        Code::Kept,
    ];
    let failures: Vec<Code> = results
        .iter()
        .filter(|r| args.names.contains(&r.name))
        .filter_map(|r| r.failure)
        .collect();
    match WORST_FIRST.into_iter().find(|c| failures.contains(c)) {
        Some(code) => Err(Failure::new(code, "")),
        None => Ok(()),
    }
}

/// What `clean` did with `name`. Under `--stale` (`only_stale`), an object a
/// process attached to between the listing and the locks is rightly kept: no
/// failure.
fn verdict(name: String, outcome: CleanOutcome, only_stale: bool) -> Verdict {
    let reason = match outcome {
        CleanOutcome::Removed(files) => {
            let files = files.iter().map(|f| f.display().to_string()).collect();
            return Verdict::removed(name, "removed", files);
        }
        CleanOutcome::Kept(reason) => reason,
    };
    let failure = match &reason {
        KeptReason::NotFound => return Verdict::not_found(name),
        KeptReason::Held { .. } if only_stale => {
            return Verdict::kept(name, "kept", reason.to_string(), None);
        }
        KeptReason::Held { .. } => Code::Kept,
        KeptReason::InvalidName { .. } => Code::Usage,
        KeptReason::NotRegularFile { .. } => Code::Invalid,
        _ => Code::Error,
    };
    Verdict::kept(name, "kept", reason.to_string(), Some(failure))
}

fn clean(args: &CleanArgs) -> Result<Vec<Verdict>, Failure> {
    if !args.stale {
        return args
            .names
            .iter()
            .map(|name| match shmring::clean(name) {
                Ok(outcome) => Ok(verdict(name.clone(), outcome, false)),
                Err(e) => missing_or_fail(name, &e),
            })
            .collect();
    }
    let name_matches = crate::name_filter(args.name.as_deref())?;
    let reports = shmring::clean_stale(|s| {
        name_matches(&s.name) && (args.names.is_empty() || args.names.contains(&s.name))
    })
    .map_err(|e| Failure::error(format!("listing /dev/shm: {e}")))?;
    let mut results: Vec<Verdict> = reports
        .into_iter()
        .map(|r| verdict(r.name, r.outcome, true))
        .collect();
    // Named objects that were not stale: say so.
    for name in &args.names {
        if !results.iter().any(|r| &r.name == name) {
            results.push(match shmring::inspect(name) {
                Ok(_) => Verdict::not_stale(name.clone(), "kept"),
                Err(e) => missing_or_fail(name, &e)?,
            });
        }
    }
    Ok(results)
}

/// A library error on a named object: "not found" is a verdict, the rest fail.
fn missing_or_fail(name: &str, error: &shmring::Error) -> Result<Verdict, Failure> {
    match error {
        shmring::Error::NotFound { .. } => Ok(Verdict::not_found(name.to_owned())),
        e => Err(Failure::from_library(name, e)),
    }
}

/// What `clean` would do, from the listing's verdicts (a process may attach
/// between this and a real clean: the real one checks again under the locks).
fn dry_run(args: &CleanArgs) -> Result<Vec<Verdict>, Failure> {
    let would = |status: &ObjectStatus| {
        if status.stale {
            let files = status.files.iter().map(|f| &f.path).chain(&status.bells);
            let files = files.map(|p| p.display().to_string()).collect();
            Verdict::removed(status.name.clone(), "would_remove", files)
        } else if args.stale {
            Verdict::not_stale(status.name.clone(), "would_keep")
        } else {
            let reason = "held: a live process holds it".to_owned();
            Verdict::kept(status.name.clone(), "would_keep", reason, Some(Code::Kept))
        }
    };
    if args.names.is_empty() {
        let name_matches = crate::name_filter(args.name.as_deref())?;
        let listed = shmring::list_objects()
            .map_err(|e| Failure::error(format!("listing /dev/shm: {e}")))?;
        return Ok(listed
            .iter()
            .filter(|s| s.stale && name_matches(&s.name))
            .map(would)
            .collect());
    }
    args.names
        .iter()
        .map(|name| match shmring::inspect(name) {
            Ok(status) => Ok(would(&status)),
            Err(e) => missing_or_fail(name, &e),
        })
        .collect()
}
