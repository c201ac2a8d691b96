//! `shmring bridge` (feature `bridge`): local objects to and from Zenoh through
//! the `shmring-zenoh` crate, until every direction has ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use signal_hook::consts::{SIGINT, SIGTERM};

use shmring::broadcast::{BroadcastBuilder, Start};
use shmring::{ChannelBuilder, MessageReceiver, MessageSender, MpmcChannelBuilder};
use shmring_zenoh::{Bridge, Delivery, Inbound, Outbound};

use crate::exit::Failure;

/// `shmring bridge`'s settings.
#[derive(Debug, clap::Args)]
pub struct BridgeArgs {
    /// A Zenoh configuration file (JSON5); `--listen`/`--connect` are added to it.
    /// Without one: peer mode, multicast and gossip scouting off.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A Zenoh endpoint to listen on (`tcp/0.0.0.0:7447`); repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// A Zenoh endpoint to connect to (`tcp/10.0.0.2:7447`); repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Refuse any key not included in one of these key expressions; repeatable.
    #[arg(long, value_name = "KEYEXPR")]
    allow: Vec<String>,
    /// Local object to Zenoh: `KIND:NAME=KEY`, KIND `spsc` (the channel's
    /// receiver), `mpmc` (a receiver) or `topic` (a subscriber from the newest
    /// message); repeatable.
    #[arg(long = "out", value_name = "KIND:NAME=KEY")]
    outs: Vec<String>,
    /// Zenoh to a local object: `KEY=KIND:NAME`, KIND `spsc` (the channel's
    /// sender), `mpmc` (a sender) or `topic` (the publisher); repeatable.
    #[arg(long = "in", value_name = "KEY=KIND:NAME")]
    ins: Vec<String>,
    /// Drop when congested instead of waiting (both directions).
    #[arg(long)]
    drop_when_congested: bool,
}

/// An object named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Spsc,
    Mpmc,
    Topic,
}

fn parse_object(spec: &str) -> Result<(Kind, &str), Failure> {
    let (kind, name) = spec
        .split_once(':')
        .ok_or_else(|| Failure::usage(format!("{spec:?}: expected KIND:NAME")))?;
    let kind = match kind {
        "spsc" => Kind::Spsc,
        "mpmc" => Kind::Mpmc,
        "topic" => Kind::Topic,
        other => {
            return Err(Failure::usage(format!(
                "{spec:?}: kind {other:?} is not spsc, mpmc or topic"
            )));
        }
    };
    if name.is_empty() {
        return Err(Failure::usage(format!("{spec:?}: empty name")));
    }
    Ok((kind, name))
}

fn open_receiver(kind: Kind, name: &str) -> Result<Box<dyn MessageReceiver + Send>, Failure> {
    let lib = |e: shmring::Error| Failure::from_library(name, &e);
    Ok(match kind {
        Kind::Spsc => Box::new(
            ChannelBuilder::shm(name)
                .open()
                .map_err(lib)?
                .receiver()
                .map_err(lib)?,
        ),
        Kind::Mpmc => Box::new(
            MpmcChannelBuilder::shm(name)
                .open()
                .map_err(lib)?
                .receiver()
                .map_err(lib)?,
        ),
        Kind::Topic => Box::new(
            BroadcastBuilder::shm(name)
                .open()
                .map_err(lib)?
                .subscriber(Start::Newest)
                .map_err(lib)?,
        ),
    })
}

fn open_sender(kind: Kind, name: &str) -> Result<Box<dyn MessageSender + Send>, Failure> {
    let lib = |e: shmring::Error| Failure::from_library(name, &e);
    Ok(match kind {
        Kind::Spsc => Box::new(
            ChannelBuilder::shm(name)
                .open()
                .map_err(lib)?
                .sender()
                .map_err(lib)?,
        ),
        Kind::Mpmc => Box::new(
            MpmcChannelBuilder::shm(name)
                .open()
                .map_err(lib)?
                .sender()
                .map_err(lib)?,
        ),
        Kind::Topic => Box::new(
            BroadcastBuilder::shm(name)
                .open()
                .map_err(lib)?
                .publisher()
                .map_err(lib)?,
        ),
    })
}

fn bridge_failure(e: shmring_zenoh::BridgeError) -> Failure {
    match e {
        shmring_zenoh::BridgeError::InvalidKey { .. }
        | shmring_zenoh::BridgeError::KeyNotAllowed { .. } => Failure::usage(e.to_string()),
        other => Failure::error(other.to_string()),
    }
}

fn config(args: &BridgeArgs) -> Result<shmring_zenoh::zenoh::Config, Failure> {
    let listen: Vec<&str> = args.listen.iter().map(String::as_str).collect();
    let connect: Vec<&str> = args.connect.iter().map(String::as_str).collect();
    let Some(path) = &args.config else {
        return shmring_zenoh::peer_config(&listen, &connect).map_err(bridge_failure);
    };
    let mut config = shmring_zenoh::zenoh::Config::from_file(path)
        .map_err(|e| Failure::error(format!("{}: {e}", path.display())))?;
    let list = |v: &[&str]| {
        format!(
            "[{}]",
            v.iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    if !listen.is_empty() {
        config
            .insert_json5("listen/endpoints", &list(&listen))
            .map_err(|e| Failure::usage(format!("--listen: {e}")))?;
    }
    if !connect.is_empty() {
        config
            .insert_json5("connect/endpoints", &list(&connect))
            .map_err(|e| Failure::usage(format!("--connect: {e}")))?;
    }
    Ok(config)
}

/// How `shmring bridge` tells what happens: lines on stderr, or with `--json`
/// one JSON document per line on stdout (schema in `cli/README.md`).
struct Events {
    json: bool,
}

impl Events {
    fn emit(&self, text: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
        if self.json {
            let mut doc = json();
            if let Some(map) = doc.as_object_mut() {
                map.insert("schema".into(), crate::json::SCHEMA.into());
            }
            println!("{doc}");
        } else {
            eprintln!("shmring bridge: {}", text());
        }
    }
}

/// A running direction of the command, with what names it in its events.
enum Running {
    Out { name: String, dir: Outbound },
    In { key: String, dir: Inbound },
}

impl Running {
    fn is_finished(&self) -> bool {
        match self {
            Running::Out { dir, .. } => dir.is_finished(),
            Running::In { dir, .. } => dir.is_finished(),
        }
    }

    /// Its name in text (`out NAME`, `in KEY`) and in JSON (`direction` and
    /// `object` or `key`).
    fn describe(&self) -> (String, serde_json::Map<String, serde_json::Value>) {
        let mut fields = serde_json::Map::new();
        let label = match self {
            Running::Out { name, .. } => {
                fields.insert("direction".into(), "out".into());
                fields.insert("object".into(), name.as_str().into());
                format!("out {name}")
            }
            Running::In { key, .. } => {
                fields.insert("direction".into(), "in".into());
                fields.insert("key".into(), key.as_str().into());
                format!("in {key}")
            }
        };
        (label, fields)
    }

    /// Ends it ([`Outbound::stop`] and [`Inbound::stop`] when `stopping`, else
    /// waits for its end): how it ended, its counts as text and as JSON.
    fn end(
        self,
        stopping: bool,
    ) -> Result<(String, String, serde_json::Value), shmring_zenoh::BridgeError> {
        match self {
            Running::Out { dir, .. } => {
                let stats = dir.stats();
                let end = if stopping { dir.stop() } else { dir.join() }?;
                Ok((
                    format!("{end:?}"),
                    format!("{stats:?}"),
                    outbound_json(&stats),
                ))
            }
            Running::In { dir, .. } => {
                let stats = dir.stats();
                let end = if stopping { dir.stop() } else { dir.join() }?;
                Ok((
                    format!("{end:?}"),
                    format!("{stats:?}"),
                    inbound_json(&stats),
                ))
            }
        }
    }
}

fn outbound_json(stats: &shmring_zenoh::OutboundStats) -> serde_json::Value {
    json!({
        "sent": stats.sent,
        "bytes": stats.bytes,
        "publications": stats.publications,
        "lagged": stats.lagged,
        "credit_waits": stats.credit_waits,
    })
}

fn inbound_json(stats: &shmring_zenoh::InboundStats) -> serde_json::Value {
    json!({
        "delivered": stats.delivered,
        "bytes": stats.bytes,
        "gaps": stats.gaps,
        "missing": stats.missing,
        "stale": stats.stale,
        "malformed": stats.malformed,
        "echoes": stats.echoes,
        "handoff_dropped": stats.handoff_dropped,
        "local_full_dropped": stats.local_full_dropped,
        "too_large": stats.too_large,
        "ended_in_band": stats.ended_in_band,
        "lost": stats.lost,
        "sources_refused": stats.sources_refused,
        "errors_dropped": stats.errors_dropped,
    })
}

/// Runs the bridge until every direction has ended, or until SIGINT or SIGTERM:
/// then each outbound direction sends its end of stream (the far side sees an
/// orderly end, not a lost source) and each inbound direction stops. A second
/// signal ends the process at once.
pub fn run(args: &BridgeArgs, json_output: bool) -> Result<(), Failure> {
    let events = Events { json: json_output };
    if args.outs.is_empty() && args.ins.is_empty() {
        return Err(Failure::usage("nothing to bridge: give --out or --in"));
    }
    let delivery = if args.drop_when_congested {
        Delivery::DropWhenCongested
    } else {
        Delivery::Reliable
    };
    // Every object and key is checked before the session opens.
    let mut outs = Vec::new();
    for spec in &args.outs {
        let (object, key) = spec
            .rsplit_once('=')
            .ok_or_else(|| Failure::usage(format!("--out {spec:?}: expected KIND:NAME=KEY")))?;
        outs.push((parse_object(object)?, key.to_owned()));
    }
    let mut ins = Vec::new();
    for spec in &args.ins {
        let (key, object) = spec
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--in {spec:?}: expected KEY=KIND:NAME")))?;
        ins.push((key.to_owned(), parse_object(object)?));
    }
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // The first signal sets the flag; a second, with the flag set, exits.
        signal_hook::flag::register_conditional_shutdown(signal, 130, signalled.clone())
            .and_then(|_| signal_hook::flag::register(signal, signalled.clone()))
            .map_err(|e| Failure::error(format!("installing the signal handlers: {e}")))?;
    }
    let session = shmring_zenoh::open(config(args)?).map_err(bridge_failure)?;
    let mut bridge = Bridge::new(session);
    if !args.allow.is_empty() {
        bridge = bridge.allow(&args.allow).map_err(bridge_failure)?;
    }
    let mut running = Vec::new();
    for ((kind, name), key) in outs {
        let source = open_receiver(kind, name)?;
        let out = bridge
            .outbound(source, &key)
            .delivery(delivery)
            .start()
            .map_err(bridge_failure)?;
        let stream = out.stream_id();
        events.emit(
            || format!("out {name} -> {key} (stream {stream:#x})"),
            || json!({"event": "started", "direction": "out", "object": name, "key": key, "stream": stream}),
        );
        running.push(Running::Out {
            name: name.to_owned(),
            dir: out,
        });
    }
    for (key, (kind, name)) in ins {
        let sink = open_sender(kind, name)?;
        let dir = bridge
            .inbound(&key, sink)
            .delivery(delivery)
            .start()
            .map_err(bridge_failure)?;
        events.emit(
            || format!("in {key} -> {name}"),
            || json!({"event": "started", "direction": "in", "object": name, "key": key}),
        );
        running.push(Running::In { key, dir });
    }
    let origin = bridge.origin();
    events.emit(
        || format!("origin {origin:#x}"),
        || json!({"event": "origin", "origin": origin}),
    );
    let mut failed = None;
    let mut stopping = false;
    while !running.is_empty() {
        std::thread::sleep(Duration::from_millis(50));
        if !stopping && signalled.load(Ordering::Relaxed) {
            stopping = true;
            events.emit(
                || "signalled: ending every direction".to_owned(),
                || json!({"event": "signalled"}),
            );
        }
        for direction in &running {
            if let Running::In { key, dir } = direction {
                while let Some(problem) = dir.try_error() {
                    events.emit(
                        || format!("in {key}: {problem}"),
                        || json!({"event": "problem", "direction": "in", "key": key, "problem": problem.to_string()}),
                    );
                }
            }
        }
        for direction in std::mem::take(&mut running) {
            if !stopping && !direction.is_finished() {
                running.push(direction);
                continue;
            }
            let (label, names) = direction.describe();
            // `event` first, as every other event has it.
            let mut event = serde_json::Map::new();
            event.insert("event".into(), "ended".into());
            event.extend(names);
            match direction.end(stopping) {
                Ok((end, text_stats, stats)) => {
                    event.insert("end".into(), end.clone().into());
                    event.insert("stats".into(), stats);
                    events.emit(
                        || format!("{label} ended: {end}, {text_stats}"),
                        || event.into(),
                    );
                }
                Err(e) => {
                    event.insert("event".into(), "failed".into());
                    event.insert("error".into(), e.to_string().into());
                    events.emit(|| format!("{label} failed: {e}"), || event.into());
                    failed = Some(e);
                }
            }
        }
    }
    match failed {
        None => Ok(()),
        Some(e) => Err(Failure::error(e.to_string())),
    }
}
