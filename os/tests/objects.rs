//! Listing, inspecting and cleaning objects across real processes (this test
//! binary started again with `--exact child_...` and `SHMRING_TEST_CHILD` set;
//! the `child_*` entry points return at once in the normal suite): one object of
//! each kind held by child processes, some of them killed; the listing's kinds,
//! liveness, pids and staleness; `clean` removes exactly the stale ones, never
//! one a process attaches to meanwhile; random bytes under a shmring name give an
//! error state, never a panic or a hang.
//!
//! Every assertion is about this test's own names: other tests (and other test
//! binaries) share `/dev/shm`, so nothing here cleans what it did not make.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use shmring::broadcast::BroadcastBuilder;
use shmring::channel::ChannelBuilder;
use shmring::event::EventBuilder;
use shmring::mpmc::MpmcChannelBuilder;
use shmring::segment::{
    CleanOutcome, KeptReason, MpmcRole, ObjectError, ObjectKind, ObjectState, ObjectStatus,
};
use shmring::{Error, clean, clean_stale, inspect, list_objects};

fn child_start() -> bool {
    child_start_within(Duration::from_secs(120))
}

/// Child: common's `hold_object_child` (spawned by `spawn_holder`).
#[test]
fn child_holder() {
    hold_object_child();
}

fn listed(name: &str) -> ObjectStatus {
    list_objects()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} is listed"))
}

fn expected_kind(kind: &str) -> ObjectKind {
    match kind {
        "spsc" => ObjectKind::Channel,
        "mpmc" => ObjectKind::MpmcChannel,
        "topic" => ObjectKind::BroadcastTopic,
        "event" => ObjectKind::Event,
        "semaphore" => ObjectKind::Semaphore,
        "value" => ObjectKind::SharedValue,
        "mutex" => ObjectKind::SharedMutex,
        other => panic!("unknown kind {other}"),
    }
}

/// The pids the listing records for live (`true`) and dead holders of `status`.
fn holders(status: &ObjectStatus) -> Vec<(bool, Option<u32>)> {
    match status.state.as_ref().expect("a valid header") {
        ObjectState::Channel(c) => vec![
            (c.sender.live, c.sender.pid),
            (c.receiver.live, c.receiver.pid),
        ],
        ObjectState::MpmcChannel(m) => m
            .endpoints
            .iter()
            .map(|e| (e.holder.live, e.holder.pid))
            .collect(),
        ObjectState::BroadcastTopic(t) => std::iter::once((t.publisher.live, t.publisher.pid))
            .chain(t.subscribers.iter().map(|s| (s.holder.live, s.holder.pid)))
            .collect(),
        ObjectState::SharedValue(v) => vec![(v.writer.live, v.writer.pid)],
        // The lock's holder, then the slots.
        ObjectState::SharedMutex(m) => m
            .locker
            .iter()
            .map(|h| (h.live, h.pid))
            .chain(m.slots.iter().map(|s| (s.holder.live, s.holder.pid)))
            .collect(),
        ObjectState::Event(_) | ObjectState::Semaphore(_) => Vec::new(),
    }
}

/// One object of each kind held by a live child and one by a killed child: the
/// listing names each kind; the live ones are not stale and their roles are live
/// with the child's pid; the dead ones are stale, their roles dead with the dead
/// child's pid still recorded (a hint); a topic is one entry of two files. Then
/// `clean` removes exactly the dead ones (files and doorbells), and keeps the
/// live ones, saying which lock is held.
#[test]
fn every_kind_is_listed_with_its_holders_and_only_stale_ones_are_cleaned() {
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for kind in KINDS {
        let name = unique(&format!("live-{kind}"));
        let (child, pid) = spawn_holder(kind, &name);
        live.push((kind, name, child, pid));
        let name = unique(&format!("dead-{kind}"));
        let (mut child, pid) = spawn_holder(kind, &name);
        child.kill();
        dead.push((kind, name, pid));
    }

    let all: BTreeMap<String, ObjectStatus> = list_objects()
        .unwrap()
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    for (kind, name, _, pid) in &live {
        let status = &all[name];
        assert_eq!(status.kind, Some(expected_kind(kind)), "{name}");
        assert!(!status.stale, "{name}: {status:?}");
        assert!(
            status.files.iter().all(|f| f.handles_alive == Some(true)),
            "{name}: {status:?}"
        );
        let holders = holders(status);
        assert!(
            holders.iter().all(|&h| h == (true, Some(*pid))),
            "{name}: {holders:?}, pid {pid}"
        );
        match kind {
            &"spsc" | &"mpmc" => assert_eq!(holders.len(), 2, "{name}"),
            &"topic" => assert_eq!(holders.len(), 2, "{name}: publisher and a subscriber"),
            &"value" => assert_eq!(holders.len(), 1, "{name}: the writer"),
            &"mutex" => assert_eq!(holders.len(), 2, "{name}: the locker and its slot"),
            _ => assert!(holders.is_empty()),
        }
    }
    for (kind, name, pid) in &dead {
        let status = &all[name];
        assert_eq!(status.kind, Some(expected_kind(kind)), "{name}");
        assert!(status.stale, "{name}: {status:?}");
        let holders = holders(status);
        assert!(
            holders.iter().all(|&h| h == (false, Some(*pid))),
            "{name}: {holders:?}, pid {pid}"
        );
    }

    // The topics: one entry each, of both files, with the subscriber's lag.
    for (kind, name) in live
        .iter()
        .map(|(k, n, _, _)| (*k, n))
        .chain(dead.iter().map(|(k, n, _)| (*k, n)))
    {
        if kind != "topic" {
            continue;
        }
        assert!(!all.contains_key(&format!("{name}.subs")), "{name}.subs");
        let status = &all[name];
        assert_eq!(
            status
                .files
                .iter()
                .map(|f| f.path.clone())
                .collect::<Vec<_>>(),
            vec![shm_path(name), shm_path(&format!("{name}.subs"))]
        );
        let Ok(ObjectState::BroadcastTopic(topic)) = &status.state else {
            panic!("{name}: {:?}", status.state)
        };
        assert_eq!(topic.header.write_seq, 1);
        assert_eq!(topic.subscribers.len(), 1);
        assert!(topic.subscribers[0].lag.is_some());
        assert!(
            status
                .bells
                .iter()
                .any(|b| b.to_string_lossy().ends_with(".subs.data.0")),
            "the slot doorbell is the topic's: {:?}",
            status.bells
        );
    }
    // The semaphore's and MPMC's words.
    let sem = &all[&live[4].1];
    assert_eq!(
        sem.state,
        Ok(ObjectState::Semaphore(shmring::segment::SemaphoreState {
            value: 2,
            max: 5,
            waiters: 0
        }))
    );
    // The mutex's lock word: held by slot 0, whose handle lives.
    let Ok(ObjectState::SharedMutex(mutex)) = &all[&live[6].1].state else {
        panic!("mutex")
    };
    assert_eq!(
        (
            mutex.locked_by,
            mutex.waiters,
            mutex.inconsistent,
            mutex.deaths
        ),
        (Some(0), false, false, 0)
    );
    assert_eq!(mutex.slots.len(), 1);
    assert_eq!(mutex.slots[0].entry.generation, 1);
    let Ok(ObjectState::MpmcChannel(mpmc)) = &all[&live[1].1].state else {
        panic!("mpmc")
    };
    let roles: Vec<MpmcRole> = mpmc.endpoints.iter().map(|e| e.role).collect();
    assert_eq!(roles, [MpmcRole::Producer, MpmcRole::Consumer]);

    // inspect: the same entry, by name or by a topic's table's name.
    assert_eq!(inspect(&live[2].1).unwrap().files.len(), 2);
    assert_eq!(
        inspect(&format!("{}.subs", live[2].1)).unwrap().name,
        live[2].1
    );

    // clean: exactly the dead ones.
    for (_, name, _, _) in &live {
        match clean(name).unwrap() {
            CleanOutcome::Kept(KeptReason::Held { path, lock }) => {
                assert_eq!(lock, 56, "{name}: the presence lock");
                assert!(path.starts_with("/dev/shm"));
            }
            other => panic!("{name}: a live object: {other:?}"),
        }
        assert!(shm_path(name).exists(), "{name} kept");
    }
    for (kind, name, _) in &dead {
        let bells: Vec<PathBuf> = all[name].bells.clone();
        // Events, semaphores and values have no doorbells.
        assert!(!bells.is_empty() || ["event", "semaphore", "value", "mutex"].contains(kind));
        let CleanOutcome::Removed(removed) = clean(name).unwrap() else {
            panic!("{name}: stale, removed")
        };
        assert_no_shm(name);
        assert_no_shm(&format!("{name}.subs"));
        for path in removed.iter().chain(&bells) {
            assert!(!path.exists(), "{} removed", path.display());
        }
        assert_eq!(
            clean(name).unwrap(),
            CleanOutcome::Kept(KeptReason::NotFound)
        );
    }
    // clean_stale, limited to this test's names: nothing stale is left of ours.
    let ours = |s: &ObjectStatus| live.iter().any(|(_, n, _, _)| *n == s.name);
    assert_eq!(clean_stale(ours).unwrap(), Vec::new());

    // The live holders exit: their objects are gone with them (the creators
    // unlink on drop), or, if a creator was killed meanwhile, stale.
    for (_, _, mut child, _) in live {
        child.release();
        assert!(child.wait().success());
    }
}

/// Child: [`attach_until_gone`] on the SPSC channel `NAME`, with no pause.
#[test]
fn child_attacher() {
    if !child_start() {
        return;
    }
    attach_until_gone(&param("NAME"), Duration::ZERO);
}

/// A stale channel that another process keeps attaching to while `clean` runs:
/// `clean` keeps it while an attachment holds it, and once it removes it, no
/// attacher ever held a handle on the removed name.
#[test]
fn clean_never_removes_an_object_a_process_attaches_to() {
    let name = unique("race");
    let (mut creator, _) = spawn_holder("spsc", &name);
    creator.kill();
    assert!(listed(&name).stale);
    let mut attacher = Peer::spawn("child_attacher", &[("NAME", &name)]);
    attacher.expect("READY");
    // Once it holds the channel, clean races with its next attachments.
    attacher.expect("ATTACHED");
    let (mut kept, mut removed) = (0u32, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match clean(&name).unwrap() {
            CleanOutcome::Removed(_) => {
                removed = true;
                break;
            }
            CleanOutcome::Kept(KeptReason::Held { .. }) => kept += 1,
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    assert!(removed, "removed once free (kept {kept} times)");
    let done = attacher.expect("DONE");
    let (attached, violations) = done.split_once(' ').unwrap();
    let (attached, violations): (u64, u64) =
        (attached.parse().unwrap(), violations.parse().unwrap());
    assert!(attached > 0, "the attacher attached");
    assert_eq!(violations, 0, "a name removed under a live handle");
    attacher.release();
    assert!(attacher.wait().success());
    assert_no_shm(&name);
}

/// Random bytes under a shmring name, and random bytes behind a shmring magic
/// and each kind word: listed and inspected with an error state, no panic, no
/// hang; a FIFO under such a name is listed as not a regular file (opening it
/// does not block); clean removes the unheld files (they are stale) and keeps
/// the FIFO.
#[test]
fn corrupt_headers_give_an_error_state() {
    let mut rng = XorShift::new(seed("corrupt_headers"));
    let mut names = Vec::new();
    // Kind words: SPSC, MPMC, event, semaphore, topic, table, unknown; and none.
    for kind in [
        None,
        Some(1u32),
        Some(2),
        Some(3),
        Some(4),
        Some(5),
        Some(6),
        Some(77),
    ] {
        for len in [0usize, 15, 300, 4096, 70_000] {
            let name = unique("junk");
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let (Some(kind), true) = (kind, len >= 16) {
                bytes[..8].copy_from_slice(&shmring::ring_core::layout::MAGIC.to_ne_bytes());
                bytes[8..12].copy_from_slice(&4u32.to_ne_bytes());
                bytes[12..16].copy_from_slice(&kind.to_ne_bytes());
            }
            let file = std::fs::File::create(shm_path(&name)).unwrap();
            file.write_all_at(&bytes, 0).unwrap();
            names.push(name);
        }
    }
    let list = list_objects().unwrap();
    for name in &names {
        let status = list.iter().find(|s| &s.name == name).expect("listed");
        assert!(status.state.is_err(), "{name}: {:?}", status.state);
        assert!(status.stale, "{name}: nobody holds it");
        let inspected = inspect(name).unwrap();
        assert_eq!(&inspected.state, &status.state);
        // The error says what is wrong.
        assert!(!status.state.as_ref().unwrap_err().to_string().is_empty());
    }
    let fifo = unique("fifo");
    let c_path =
        std::ffi::CString::new(shm_path(&fifo).into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let status = inspect(&fifo).unwrap();
    assert!(
        matches!(
            status.state,
            Err(shmring::segment::ObjectError::NotRegularFile { .. })
        ),
        "{:?}",
        status.state
    );
    assert!(!status.stale);
    assert_eq!(
        clean(&fifo).unwrap(),
        CleanOutcome::Kept(KeptReason::NotRegularFile {
            path: shm_path(&fifo)
        })
    );
    std::fs::remove_file(shm_path(&fifo)).unwrap();
    for name in &names {
        assert!(
            matches!(clean(name).unwrap(), CleanOutcome::Removed(_)),
            "{name}"
        );
        assert_no_shm(name);
    }
}

/// A topic's table left without its data segment is listed under the topic's
/// name, saying the data segment is missing, and cleaned with its doorbells; a
/// channel named like a table beside a channel of the base name is an object of
/// its own, and inspecting either name gives that one.
#[test]
fn a_lone_table_and_a_channel_named_like_one() {
    let name = unique("lone");
    let (mut child, _) = spawn_holder("topic", &name);
    child.kill();
    std::fs::remove_file(shm_path(&name)).unwrap();
    let status = inspect(&name).unwrap();
    assert_eq!(status.kind, Some(ObjectKind::BroadcastTopic));
    assert_eq!(
        status.state,
        Err(shmring::segment::ObjectError::MissingPart {
            missing: "data segment"
        })
    );
    assert!(status.stale);
    assert!(matches!(clean(&name).unwrap(), CleanOutcome::Removed(_)));
    assert_no_shm(&format!("{name}.subs"));
    for bell in &status.bells {
        assert!(!bell.exists(), "{} removed", bell.display());
    }

    let base = unique("twin");
    let subs = format!("{base}.subs");
    let _a = ChannelBuilder::shm(&base).create().unwrap();
    let _b = ChannelBuilder::shm(&subs).create().unwrap();
    let list = list_objects().unwrap();
    assert_eq!(list.iter().filter(|s| s.name == base).count(), 1);
    assert_eq!(list.iter().filter(|s| s.name == subs).count(), 1);
    assert_eq!(inspect(&subs).unwrap().files[0].path, shm_path(&subs));
    assert_eq!(inspect(&base).unwrap().files[0].path, shm_path(&base));
}

/// The fill levels and kind names a tool prints.
#[test]
fn fill_levels_and_kind_names() {
    use shmring::segment::{Fill, FillUnit};
    let name = unique("fill");
    let channel = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let mut tx = channel.sender().unwrap();
    tx.send(&[7; 100]).unwrap();
    let status = inspect(&name).unwrap();
    let fill = status.state.as_ref().unwrap().fill().unwrap();
    assert_eq!((fill.capacity, fill.unit), (4096, FillUnit::Bytes));
    assert!(fill.used >= 100 && fill.used < 4096, "{fill:?}");
    let name = unique("fill-mpmc");
    let mpmc = MpmcChannelBuilder::shm(&name).slots(8).create().unwrap();
    let mut tx = mpmc.sender().unwrap();
    for _ in 0..3 {
        tx.send(b"x").unwrap();
    }
    assert_eq!(
        inspect(&name).unwrap().state.unwrap().fill(),
        Some(Fill {
            used: 3,
            capacity: 8,
            unit: FillUnit::Messages
        })
    );
    let names: Vec<String> = KINDS.iter().map(|k| expected_kind(k).to_string()).collect();
    assert_eq!(names, KINDS);
    assert_eq!(ObjectKind::Unknown(9).to_string(), "unknown(9)");
}

/// The counters a rate is sampled from: an SPSC channel's bytes, an MPMC
/// channel's messages, a topic's both; they grow by what was sent.
#[test]
fn progress_counts_what_each_ring_carried() {
    use shmring::segment::Progress;
    let progress = |name: &str| inspect(name).unwrap().state.unwrap().progress();
    let name = unique("progress");
    let channel = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let mut tx = channel.sender().unwrap();
    let before = progress(&name).unwrap();
    assert_eq!(before.messages, None);
    tx.send(&[7; 100]).unwrap();
    let after = progress(&name).unwrap();
    let grew = after.bytes.unwrap() - before.bytes.unwrap();
    assert!((100..200).contains(&grew), "{before:?} then {after:?}");

    let name = unique("progress-mpmc");
    let mpmc = MpmcChannelBuilder::shm(&name).slots(8).create().unwrap();
    let mut tx = mpmc.sender().unwrap();
    for _ in 0..3 {
        tx.send(b"x").unwrap();
    }
    assert_eq!(
        progress(&name),
        Some(Progress {
            bytes: None,
            messages: Some(3)
        })
    );

    let name = unique("progress-topic");
    let topic = BroadcastBuilder::shm(&name)
        .capacity(4096)
        .create()
        .unwrap();
    let mut publisher = topic.publisher().unwrap();
    for _ in 0..5 {
        publisher.send(&[1; 40]).unwrap();
    }
    let p = progress(&name).unwrap();
    assert_eq!(p.messages, Some(5));
    assert!(p.bytes.unwrap() >= 200, "{p:?}");

    let name = unique("progress-event");
    let _event = EventBuilder::shm(&name).create().unwrap();
    assert_eq!(progress(&name), None);
}

/// Child: binds the listener `NAME` in directory `DIR`, reports READY, waits.
#[test]
fn child_listener() {
    if !child_start() {
        return;
    }
    let dir = param("DIR");
    let _listener = shmring::Listener::builder(&param("NAME"))
        .directory(&dir)
        .bind()
        .unwrap();
    report("READY", std::process::id());
    wait_for_parent();
}

/// Connection sockets: a live listener's is listening, a killed one's socket
/// file is listed as not listening (stale), and a file that is no socket is
/// listed without a verdict; nothing connects to find out.
#[test]
fn connection_sockets_are_listed_with_their_listeners() {
    use std::os::unix::fs::PermissionsExt;
    let temp = TempDir::new("objects-sockets");
    let dir = temp.path().join("sock");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut live = Peer::spawn(
        "child_listener",
        &[("NAME", &"live"), ("DIR", &dir.display())],
    );
    live.expect("READY");
    let mut dead = Peer::spawn(
        "child_listener",
        &[("NAME", &"dead"), ("DIR", &dir.display())],
    );
    dead.expect("READY");
    dead.kill();
    std::fs::write(dir.join("plain.sock"), b"not a socket").unwrap();
    let list = shmring::connection::list_listeners(Some(&dir)).unwrap();
    let seen: Vec<(&str, Option<bool>)> = list
        .iter()
        .map(|l| (l.name.as_str(), l.listening))
        .collect();
    assert_eq!(
        seen,
        [("dead", Some(false)), ("live", Some(true)), ("plain", None)]
    );
    assert_eq!(list[1].path, dir.join("live.sock"));
    assert_eq!(list[1].mode, 0o600);
    live.release();
    assert!(live.wait().success());
    assert!(
        shmring::connection::list_listeners(Some(&temp.path().join("none")))
            .unwrap()
            .is_empty()
    );
}

/// `/dev/shm/shmring-bell.<segment>.<suffix>`: a doorbell's path.
fn bell_path(segment: &str, suffix: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shmring-bell.{segment}.{suffix}"))
}

/// The orphan entry for the missing segment `segment`, if one is listed.
fn orphan_of(list: &[ObjectStatus], segment: &str) -> Option<ObjectStatus> {
    let missing = Err(ObjectError::OrphanBells {
        segment: shm_path(segment),
    });
    list.iter().find(|s| s.state == missing).cloned()
}

fn mkfifo(path: &std::path::Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "{}", path.display());
}

/// Child: creates the SPSC channel `NAME` with a receiver only, arms it for a
/// message (its readiness descriptor waits on the data doorbell; it holds a
/// ringer's end of the space doorbell), reports READY with its pid, and waits
/// for the parent (or to be killed).
#[test]
fn child_armed_receiver() {
    if !child_start() {
        return;
    }
    use shmring::ReceiveReadiness;
    let channel = ChannelBuilder::shm(param("NAME")).create().unwrap();
    let mut rx = channel.receiver().unwrap();
    assert_eq!(rx.wakeups(), &shmring::Wakeups::Doorbell);
    assert_eq!(
        ReceiveReadiness::arm_for_message(&mut rx).unwrap(),
        shmring::Readiness::Armed
    );
    report("READY", std::process::id());
    wait_for_parent();
    drop((rx, channel));
}

/// The segment of an armed receiver is removed by hand while its holder lives,
/// then the holder is SIGKILLed: its doorbells are an orphan entry (no kind, no
/// files, both FIFOs, the missing segment named), not stale while the holder has
/// them open (`clean` keeps them: `BellOpen`), stale once it is dead;
/// `clean_stale` then removes exactly those FIFOs, and `inspect` finds nothing
/// more. A topic's table doorbells (its slot FIFOs too) are an orphan listed
/// and inspected under the topic's name.
#[test]
fn orphaned_doorbells_are_listed_and_cleaned() {
    let name = unique("orphan");
    let mut child = Peer::spawn("child_armed_receiver", &[("NAME", &name)]);
    child.expect("READY");
    let bells = [bell_path(&name, "data"), bell_path(&name, "space")];
    assert_eq!(listed(&name).bells, bells, "the channel's own doorbells");
    std::fs::remove_file(shm_path(&name)).unwrap();

    let held = orphan_of(&list_objects().unwrap(), &name).expect("an orphan entry");
    assert_eq!(held.name, name);
    assert_eq!((held.kind, held.layout_version, held.size), (None, None, 0));
    assert!(held.files.is_empty());
    assert_eq!(held.bells, bells);
    assert!(!held.stale, "the armed receiver has its doorbells open");
    assert_eq!(held.mode, 0o600);
    assert_eq!(inspect(&name).unwrap(), held);
    match clean(&name).unwrap() {
        CleanOutcome::Kept(KeptReason::BellOpen { path }) => assert!(bells.contains(&path)),
        other => panic!("a held orphan: {other:?}"),
    }
    assert!(bells.iter().all(|b| b.exists()), "kept");
    assert_no_shm(&name);

    child.kill();
    let dead = inspect(&name).unwrap();
    assert!(dead.stale, "{dead:?}");
    assert_eq!(dead.bells, bells);
    let ours = |s: &ObjectStatus| s.name == name;
    let reports = clean_stale(ours).unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].outcome, CleanOutcome::Removed(bells.to_vec()));
    assert!(bells.iter().all(|b| !b.exists()), "removed");
    assert_no_shm(&name);
    assert!(matches!(inspect(&name), Err(Error::NotFound { .. })));
    assert_eq!(clean_stale(ours).unwrap(), Vec::new());

    // A killed topic holder, both segments removed by hand.
    let topic = unique("orphan-topic");
    let table = format!("{topic}.subs");
    let (mut child, _) = spawn_holder("topic", &topic);
    child.kill();
    std::fs::remove_file(shm_path(&topic)).unwrap();
    std::fs::remove_file(shm_path(&table)).unwrap();
    let status = orphan_of(&list_objects().unwrap(), &table).expect("an orphan entry");
    assert_eq!(status.name, topic, "listed under the topic's name");
    assert!(status.stale);
    assert_eq!(
        &status.bells[..3],
        [
            bell_path(&table, "data"),
            bell_path(&table, "space"),
            bell_path(&table, "data.0"),
        ]
    );
    assert_eq!(inspect(&topic).unwrap(), status);
    assert_eq!(inspect(&table).unwrap(), status);
    let CleanOutcome::Removed(removed) = clean(&table).unwrap() else {
        panic!("a stale orphan is removed")
    };
    assert_eq!(removed, status.bells);
    assert!(status.bells.iter().all(|b| !b.exists()));
    assert_no_shm(&topic);
    assert_no_shm(&table);
}

/// Child: creates a topic `NAME` and claims its publisher, reports READY with
/// its pid, waits for the parent, drops the publisher (a clean release, the
/// topic kept), reports DROPPED, and sleeps until killed.
#[test]
fn child_publisher() {
    if !child_start() {
        return;
    }
    let topic = BroadcastBuilder::shm(param("NAME")).create().unwrap();
    let publisher = topic.publisher().unwrap();
    report("READY", std::process::id());
    wait_for_parent();
    drop(publisher);
    report("DROPPED", 1);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A topic's publisher writes its pid into the data segment's pid word (offset
/// 280) after its claim and 0 when it lets go: `inspect` shows the word, and the
/// listing takes the publisher's pid from it.
#[test]
fn a_publisher_writes_its_pid_and_clears_it() {
    let name = unique("pubpid");
    let mut child = Peer::spawn("child_publisher", &[("NAME", &name)]);
    let pid: u32 = child.expect("READY").parse().unwrap();
    let topic_state = |name: &str| match inspect(name).unwrap().state {
        Ok(ObjectState::BroadcastTopic(topic)) => topic,
        other => panic!("{other:?}"),
    };
    let claimed = topic_state(&name);
    assert_eq!(claimed.header.publisher_pid, pid, "the pid word");
    assert_eq!(
        claimed.header.publisher_owner, pid,
        "the owner word (token)"
    );
    assert_eq!(claimed.publisher.pid, Some(pid));
    assert!(claimed.publisher.live);
    // The word itself, at offset 280 of the data segment.
    let file = std::fs::File::open(shm_path(&name)).unwrap();
    let mut word = [0u8; 4];
    file.read_exact_at(&mut word, 280).unwrap();
    assert_eq!(u32::from_ne_bytes(word), pid);

    child.release();
    child.expect("DROPPED");
    let released = topic_state(&name);
    assert_eq!(released.header.publisher_pid, 0, "cleared at release");
    assert_eq!(released.header.publisher_owner, 0);
    assert_eq!(released.publisher.pid, None);
    assert!(!released.publisher.live);
    file.read_exact_at(&mut word, 280).unwrap();
    assert_eq!(u32::from_ne_bytes(word), 0);
    child.kill();
    assert!(matches!(clean(&name).unwrap(), CleanOutcome::Removed(_)));
    assert_no_shm(&name);
}

/// Doorbells beside a live object are its own, never an orphan; files named
/// like doorbells that are not FIFOs (a regular file, a symbolic link) are not
/// listed and never removed; a FIFO with a doorbell's name and no segment is an
/// orphan, kept while a process has it open; an orphan whose segment is created
/// again between the listing and the clean is kept (the doorbells are the new
/// object's).
#[test]
fn only_doorbells_without_a_segment_are_orphans() {
    // A live object's doorbells.
    let live = unique("bell-live");
    let (mut holder, _) = spawn_holder("spsc", &live);
    let list = list_objects().unwrap();
    assert!(orphan_of(&list, &live).is_none());
    let status = list.iter().find(|s| s.name == live).unwrap();
    assert_eq!(status.kind, Some(ObjectKind::Channel));
    assert_eq!(
        status.bells,
        [bell_path(&live, "data"), bell_path(&live, "space")]
    );
    let ours = |s: &ObjectStatus| s.name == live;
    assert_eq!(clean_stale(ours).unwrap(), Vec::new());
    assert!(status.bells.iter().all(|b| b.exists()));

    // Not FIFOs: a regular file and a link at doorbell names, no segment.
    let plain = unique("bell-plain");
    std::fs::write(bell_path(&plain, "data"), b"not a fifo").unwrap();
    let link = unique("bell-link");
    let target = bell_path(&live, "data");
    std::os::unix::fs::symlink(&target, bell_path(&link, "data")).unwrap();
    let list = list_objects().unwrap();
    assert!(orphan_of(&list, &plain).is_none());
    assert!(orphan_of(&list, &link).is_none());
    assert!(matches!(inspect(&plain), Err(Error::NotFound { .. })));
    assert_eq!(
        clean(&link).unwrap(),
        CleanOutcome::Kept(KeptReason::NotFound)
    );
    let mine = |s: &ObjectStatus| [&plain, &link].contains(&&s.name);
    assert_eq!(clean_stale(mine).unwrap(), Vec::new());
    assert!(bell_path(&plain, "data").exists());
    assert!(std::fs::symlink_metadata(bell_path(&link, "data")).is_ok());
    assert!(target.exists(), "the link's target is the live channel's");
    std::fs::remove_file(bell_path(&plain, "data")).unwrap();
    std::fs::remove_file(bell_path(&link, "data")).unwrap();

    // A FIFO made by hand: an orphan, held while this process has it open.
    let lone = unique("bell-fifo");
    let fifo = bell_path(&lone, "space");
    mkfifo(&fifo);
    assert!(inspect(&lone).unwrap().stale);
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    assert!(!inspect(&lone).unwrap().stale, "open for reading here");
    assert_eq!(
        clean(&lone).unwrap(),
        CleanOutcome::Kept(KeptReason::BellOpen { path: fifo.clone() })
    );
    assert_no_shm(&lone);
    drop(reader);
    // A child that another test of this binary forks copies our descriptor
    // table and holds the reader until its exec closes it (close-on-exec), so
    // the FIFO may still have a reader for a moment: kept until then, and
    // removed once no copy is left (within 5 s, or the test fails).
    let deadline = Instant::now() + Duration::from_secs(5);
    let removed = loop {
        match clean(&lone).unwrap() {
            CleanOutcome::Kept(KeptReason::BellOpen { path })
                if path == fifo && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            outcome => break outcome,
        }
    };
    assert_eq!(removed, CleanOutcome::Removed(vec![fifo.clone()]));
    assert!(!fifo.exists());
    assert_no_shm(&lone);

    // The segment comes back between the listing and the clean.
    let back = unique("bell-back");
    mkfifo(&bell_path(&back, "data"));
    mkfifo(&bell_path(&back, "space"));
    let mut channel = None;
    let reports = clean_stale(|s| {
        if s.name != back {
            return false;
        }
        assert!(s.stale, "{s:?}");
        channel = Some(ChannelBuilder::shm(&back).create().unwrap());
        true
    })
    .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].outcome,
        CleanOutcome::Kept(KeptReason::NameTaken {
            path: shm_path(&back)
        })
    );
    let channel = channel.unwrap();
    assert!(bell_path(&back, "data").exists());
    assert!(bell_path(&back, "space").exists());
    assert!(orphan_of(&list_objects().unwrap(), &back).is_none());
    // The new channel's doorbells work: an armed receiver wakes on a send.
    {
        use shmring::ReceiveReadiness;
        let mut rx = channel.receiver().unwrap();
        let mut tx = channel.sender().unwrap();
        assert_eq!(rx.wakeups(), &shmring::Wakeups::Doorbell);
        assert_eq!(
            ReceiveReadiness::arm_for_message(&mut rx).unwrap(),
            shmring::Readiness::Armed
        );
        tx.send(b"ring").unwrap();
        let mut poll = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&rx.readiness_fd()),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the call.
        let ready = unsafe { libc::poll(&mut poll, 1, 5000) };
        assert_eq!(ready, 1, "rung through the doorbell");
    }
    drop(channel);
    assert!(
        !bell_path(&back, "data").exists(),
        "removed with the channel"
    );

    holder.release();
    assert!(holder.wait().success());
}

/// A subscriber writes its pid into its table entry's pid word when it joins,
/// and 0 when it leaves (before it gives the slot back).
#[test]
fn a_subscriber_writes_its_pid_and_clears_it() {
    let name = unique("subpid");
    let topic = BroadcastBuilder::shm(&name)
        .subscriber_slots(2)
        .create()
        .unwrap();
    let subscriber = topic.subscriber(shmring::broadcast::Start::Oldest).unwrap();
    let listed = match inspect(&name).unwrap().state {
        Ok(ObjectState::BroadcastTopic(t)) => t.subscribers,
        other => panic!("{other:?}"),
    };
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].entry.pid, std::process::id(), "written at join");
    // The word itself: slot 0's entry is at 256 of the table, its pid at 16.
    let table = std::fs::File::open(shm_path(&format!("{name}.subs"))).unwrap();
    let word = || {
        let mut word = [0u8; 4];
        table.read_exact_at(&mut word, 256 + 16).unwrap();
        u32::from_ne_bytes(word)
    };
    assert_eq!(word(), std::process::id());
    drop(subscriber);
    assert_eq!(word(), 0, "cleared at leave");
    drop(topic);
    assert_no_shm(&name);
}
