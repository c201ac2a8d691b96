//! `shmring inspect NAME`: every header field, the holders and the verdict.

use serde_json::{Value, json};

use crate::exit::{Code, Failure};
use crate::json::{Object, SCHEMA};
use crate::text;

pub fn run(name: &str, as_json: bool) -> Result<(), Failure> {
    let status = shmring::inspect(name).map_err(|e| Failure::from_library(name, &e))?;
    let object = Object::new(&status, true);
    if as_json {
        let doc = json!({ "schema": SCHEMA, "object": object });
        println!("{doc:#}");
    } else {
        print_text(&object);
    }
    match &object.error {
        // The verdict goes to stderr too, so that a script sees why it failed.
        Some(error) => Err(Failure::new(Code::Invalid, format!("{name}: {error}"))),
        None => Ok(()),
    }
}

fn print_text(o: &Object) {
    let field = |label: &str, value: String| println!("{:<16}{value}", format!("{label}:"));
    field("name", o.name.clone());
    field(
        "kind",
        match (&o.kind, o.layout_version) {
            (Some(kind), Some(v)) => format!("{kind} (layout version {v})"),
            (Some(kind), None) => kind.clone(),
            (None, _) => "? (kind word unreadable)".to_owned(),
        },
    );
    field(
        "verdict",
        match &o.error {
            None => "valid".to_owned(),
            Some(e) => format!("INVALID: {e}"),
        },
    );
    field(
        "state",
        if o.stale {
            "stale (no live holder)"
        } else {
            "live"
        }
        .to_owned(),
    );
    field(
        "owner, mode",
        format!("{} ({}), {}", text::owner(o.owner_uid), o.owner_uid, o.mode),
    );
    field(
        "size",
        format!("{} ({} bytes)", text::bytes(o.size), o.size),
    );
    if let Some(fill) = &o.fill {
        field(
            "fill",
            format!("{} of {} {}", fill.used, fill.capacity, fill.unit),
        );
    }
    for file in &o.files {
        let held = match file.held {
            Some(true) => "a handle is open",
            Some(false) => "no handle open",
            None => "presence not probed",
        };
        field(
            "file",
            format!("{} ({} bytes, {held})", file.path, file.size),
        );
    }
    match o.bells.as_slice() {
        [] => {}
        [bell] => field("doorbell", bell.clone()),
        [first, ..] => field(
            "doorbells",
            format!("{} FIFOs, the first {first}", o.bells.len()),
        ),
    }
    if !o.holders.is_empty() {
        println!("holders:");
        for h in &o.holders {
            let lag = h
                .lag
                .map(|l| format!(", lag {l} bytes"))
                .unwrap_or_default();
            println!("  {}{lag}", text::holder(h));
        }
    }
    if let Some(details) = &o.details {
        println!("header:");
        for (key, value) in details {
            print_value(key, value, 1);
        }
    }
}

/// A header field: scalars on one line, lists of records one record per line.
fn print_value(key: &str, value: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    match value {
        Value::Array(items) => {
            println!(
                "{indent}{key}: {}",
                if items.is_empty() { "none" } else { "" }
            );
            for item in items {
                match item {
                    Value::Object(fields) => {
                        let line: Vec<String> =
                            fields.iter().map(|(k, v)| format!("{k} {v}")).collect();
                        println!("{indent}  - {}", line.join(", "));
                    }
                    other => println!("{indent}  - {other}"),
                }
            }
        }
        Value::String(s) => println!("{indent}{key}: {s}"),
        other => println!("{indent}{key}: {other}"),
    }
}
