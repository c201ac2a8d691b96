//! `shmring ls`: every object in /dev/shm and every connection socket.

use serde_json::json;
use shmring::segment::{ObjectError, ObjectKind, ObjectStatus};

use crate::exit::Failure;
use crate::json::{Object, SCHEMA, Socket};
use crate::{KindFilter, LsArgs, text};

pub fn run(args: &LsArgs, as_json: bool) -> Result<(), Failure> {
    let name_matches = crate::name_filter(args.name.as_deref())?;
    let statuses =
        shmring::list_objects().map_err(|e| Failure::error(format!("listing /dev/shm: {e}")))?;
    let objects: Vec<Object> = statuses
        .iter()
        .filter(|s| name_matches(&s.name) && kind_matches(s, args.kind))
        .filter(|s| !args.stale || s.stale)
        .map(|s| Object::new(s, false))
        .collect();
    let sockets: Vec<Socket> = if args.kind.is_none_or(|k| k == KindFilter::Socket) {
        shmring::connection::list_listeners(args.sockets.as_deref())
            .map_err(|e| Failure::error(format!("listing the connection sockets: {e}")))?
            .iter()
            .filter(|l| name_matches(&l.name))
            .filter(|l| !args.stale || l.listening == Some(false))
            .map(Socket::new)
            .collect()
    } else {
        Vec::new()
    };
    if as_json {
        let doc = json!({ "schema": SCHEMA, "objects": objects, "sockets": sockets });
        println!("{doc:#}");
        return Ok(());
    }
    print_text(&objects, &sockets);
    Ok(())
}

fn kind_matches(status: &ObjectStatus, filter: Option<KindFilter>) -> bool {
    let orphan = matches!(status.state, Err(ObjectError::OrphanBells { .. }));
    let kind = match filter {
        None => return true,
        Some(KindFilter::Socket) => return false,
        Some(KindFilter::Doorbells) => return orphan,
        Some(KindFilter::Unknown) => {
            return !orphan && matches!(status.kind, None | Some(ObjectKind::Unknown(_)));
        }
        Some(KindFilter::Spsc) => ObjectKind::Channel,
        Some(KindFilter::Mpmc) => ObjectKind::MpmcChannel,
        Some(KindFilter::Topic) => ObjectKind::BroadcastTopic,
        Some(KindFilter::Event) => ObjectKind::Event,
        Some(KindFilter::Semaphore) => ObjectKind::Semaphore,
        Some(KindFilter::Value) => ObjectKind::SharedValue,
        Some(KindFilter::Mutex) => ObjectKind::SharedMutex,
    };
    status.kind == Some(kind)
}

fn print_text(objects: &[Object], sockets: &[Socket]) {
    if objects.is_empty() && sockets.is_empty() {
        println!("no shmring objects");
        return;
    }
    if !objects.is_empty() {
        let rows: Vec<Vec<String>> = objects
            .iter()
            .map(|o| {
                vec![
                    o.kind.clone().unwrap_or_else(|| "?".to_owned()),
                    o.name.clone(),
                    text::bytes(o.size),
                    text::owner(o.owner_uid),
                    o.mode.clone(),
                    text::fill(o.fill.as_ref()),
                    text::holders_summary(&o.holders),
                    match &o.error {
                        Some(e) => format!("invalid: {e}"),
                        None if o.stale => "stale".to_owned(),
                        None => "live".to_owned(),
                    },
                ]
            })
            .collect();
        text::table(
            &[
                "KIND", "NAME", "SIZE", "OWNER", "MODE", "FILL", "HOLDERS", "STATE",
            ],
            &rows,
        );
    }
    if !sockets.is_empty() {
        if !objects.is_empty() {
            println!();
        }
        let rows: Vec<Vec<String>> = sockets
            .iter()
            .map(|s| {
                vec![
                    "socket".to_owned(),
                    s.name.clone(),
                    text::owner(s.owner_uid),
                    s.mode.clone(),
                    match s.listening {
                        Some(true) => "listening".to_owned(),
                        Some(false) => "stale (no listener)".to_owned(),
                        None => "?".to_owned(),
                    },
                    s.path.clone(),
                ]
            })
            .collect();
        text::table(&["KIND", "NAME", "OWNER", "MODE", "STATE", "PATH"], &rows);
    }
}
