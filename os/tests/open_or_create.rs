//! `open_or_create` on every builder: processes racing it (this test binary,
//! started again with `--exact child_...` and `SHMRING_TEST_CHILD` set) all end
//! up with one object, and an existing object that differs from the builder is
//! refused with [`Error::Incompatible`] naming the field and both values.

mod common;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::Duration;

use common::*;
use shmring::ring_core::LAYOUT_VERSION;
use shmring::ring_core::broadcast::Policy;
use shmring::{
    BroadcastBuilder, ChannelBuilder, Error, EventBuilder, MpmcChannelBuilder, SemaphoreBuilder,
    SharedMutexBuilder, SharedValueBuilder,
};

/// Processes racing in each round.
const RACERS: usize = 3;
/// Rounds each racer makes (one object per round).
const ROUNDS: u64 = 40;
/// Each round starts this long after the previous one.
const SLOT: Duration = Duration::from_millis(25);
/// Offsets of every segment's first words (ARCHITECTURE.md, "Segment layouts").
const VERSION_OFFSET: u64 = 8;

/// The kinds of object, as the racers' parameter names them.
const KINDS: [&str; 7] = [
    "channel",
    "mpmc",
    "event",
    "semaphore",
    "broadcast",
    "value",
    "mutex",
];

/// The inode of the file behind `fd`: equal inodes, one object.
fn inode(fd: BorrowedFd<'_>) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .unwrap()
        .ino()
}

/// A handle a racer keeps until the parent is done (so that no object is
/// removed by its creator's exit while a late racer still opens it).
enum Handle {
    Channel(shmring::Channel),
    Mpmc(shmring::MpmcChannel),
    Event(shmring::Event),
    Semaphore(shmring::Semaphore),
    Broadcast(shmring::Topic),
    Value(shmring::SharedValue<[u64; 4]>),
    Mutex(Box<shmring::SharedMutex<[u64; 4]>>),
}

impl Handle {
    fn inode(&self) -> u64 {
        match self {
            Handle::Channel(c) => inode(c.segment().fd()),
            Handle::Mpmc(c) => inode(c.segment().fd()),
            Handle::Event(e) => inode(e.fd()),
            Handle::Semaphore(s) => inode(s.fd()),
            Handle::Broadcast(t) => inode(t.fds().0),
            Handle::Value(v) => inode(v.fd()),
            Handle::Mutex(m) => inode(m.fd()),
        }
    }
}

/// `open_or_create` of `kind` at `name`, with the same builder in every racer.
fn open_or_create(kind: &str, name: &str) -> shmring::Result<Handle> {
    Ok(match kind {
        "channel" => Handle::Channel(ChannelBuilder::shm(name).capacity(4096).open_or_create()?),
        "mpmc" => Handle::Mpmc(
            MpmcChannelBuilder::shm(name)
                .slots(4)
                .slot_size(64)
                .endpoints(4)
                .open_or_create()?,
        ),
        "event" => Handle::Event(EventBuilder::shm(name).open_or_create()?),
        "semaphore" => Handle::Semaphore(SemaphoreBuilder::shm(name).max(100).open_or_create()?),
        "broadcast" => Handle::Broadcast(
            BroadcastBuilder::shm(name)
                .capacity(4096)
                .subscriber_slots(2)
                .open_or_create()?,
        ),
        "value" => Handle::Value(SharedValueBuilder::shm(name).open_or_create::<[u64; 4]>()?),
        "mutex" => Handle::Mutex(Box::new(
            SharedMutexBuilder::shm(name).open_or_create::<[u64; 4]>()?,
        )),
        other => panic!("no kind {other:?}"),
    })
}

/// A racer: in each round, at its start time, `open_or_create` of the round's
/// name; reports the object's inode (and posts a semaphore once), keeps every
/// handle until the parent releases it.
#[test]
fn child_open_or_create_racer() {
    if !is_child() {
        return;
    }
    child_watchdog(Duration::from_secs(120));
    let (kind, base) = (param("kind"), param("name"));
    let start = param_u64("start");
    let mut handles = Vec::new();
    for round in 0..ROUNDS {
        let at = start + round * SLOT.as_nanos() as u64;
        // Sleep to a millisecond before the start, spin the rest: the racers
        // leave together (a sleep alone wakes them tens of microseconds apart).
        let now = monotonic_ns();
        if now + 1_000_000 < at {
            std::thread::sleep(Duration::from_nanos(at - now - 1_000_000));
        }
        while monotonic_ns() < at {
            std::hint::spin_loop();
        }
        let handle = open_or_create(&kind, &format!("{base}-{round}"))
            .unwrap_or_else(|e| panic!("round {round}: {e} ({e:?})"));
        if let Handle::Semaphore(s) = &handle {
            s.post().unwrap();
        }
        report("round", format!("{round} {}", handle.inode()));
        handles.push(handle);
    }
    report("done", "");
    wait_for_parent();
}

/// `RACERS` processes race `open_or_create` of `kind` for `ROUNDS` rounds: every
/// call succeeds and every racer gets the same object (one inode: a second
/// creation would have made another file), which is still the one at the name
/// afterwards; for semaphores, the count is one post per racer (a second
/// creation would have reset it).
fn racing_processes_get_one_object(kind: &str) {
    let name = unique(&format!("ooc-{kind}"));
    let start = monotonic_ns() + 300_000_000;
    let mut racers: Vec<Peer> = (0..RACERS)
        .map(|_| {
            Peer::spawn(
                "child_open_or_create_racer",
                &[("kind", &kind), ("name", &name), ("start", &start)],
            )
        })
        .collect();
    let mut inodes = vec![Vec::new(); ROUNDS as usize];
    for racer in &mut racers {
        for round in 0..ROUNDS {
            let value = racer.expect("round");
            let (r, ino) = value.split_once(' ').unwrap();
            assert_eq!(r.parse::<u64>().unwrap(), round);
            inodes[round as usize].push(ino.parse::<u64>().unwrap());
        }
        racer.expect("done");
    }
    for (round, seen) in inodes.iter().enumerate() {
        let name = format!("{name}-{round}");
        assert!(
            seen.iter().all(|&i| i == seen[0]),
            "{kind} round {round}: the racers got different objects: inodes {seen:?}"
        );
        let here = open_or_create(kind, &name).unwrap();
        assert_eq!(here.inode(), seen[0], "{kind} round {round}");
        if let Handle::Semaphore(s) = &here {
            assert_eq!(s.value().unwrap(), RACERS as u32, "round {round}");
        }
    }
    for racer in &mut racers {
        racer.release();
        racer.wait_ok();
    }
}

#[test]
fn racing_processes_get_one_channel() {
    racing_processes_get_one_object(KINDS[0]);
}

#[test]
fn racing_processes_get_one_mpmc_channel() {
    racing_processes_get_one_object(KINDS[1]);
}

#[test]
fn racing_processes_get_one_event() {
    racing_processes_get_one_object(KINDS[2]);
}

#[test]
fn racing_processes_get_one_semaphore() {
    racing_processes_get_one_object(KINDS[3]);
}

#[test]
fn racing_processes_get_one_topic() {
    racing_processes_get_one_object(KINDS[4]);
}

#[test]
fn racing_processes_get_one_value() {
    racing_processes_get_one_object(KINDS[5]);
}

#[test]
fn racing_processes_get_one_mutex() {
    racing_processes_get_one_object(KINDS[6]);
}

/// Asserts `result` is [`Error::Incompatible`] for `field`, `requested` and
/// `found`, and that its message names all three.
#[track_caller]
fn assert_incompatible<T: std::fmt::Debug>(
    result: shmring::Result<T>,
    field: &str,
    requested: u64,
    found: u64,
) {
    match result {
        Err(
            ref e @ Error::Incompatible {
                field: f,
                requested: r,
                found: x,
                ..
            },
        ) if (f, r, x) == (field, requested, found) => {
            let text = e.to_string();
            assert!(
                text.contains(field)
                    && text.contains(&requested.to_string())
                    && text.contains(&found.to_string()),
                "{text}"
            );
        }
        other => panic!("expected Incompatible {field} {requested} {found}, got {other:?}"),
    }
}

/// Creates, then opens, with one builder; a memfd builder creates.
#[test]
fn open_or_create_creates_then_opens_every_kind() {
    for kind in KINDS {
        let name = unique(&format!("ooc-{kind}"));
        let first = open_or_create(kind, &name).unwrap();
        let second = open_or_create(kind, &name).unwrap();
        assert_eq!(first.inode(), second.inode(), "{kind}");
    }
    ChannelBuilder::memfd().open_or_create().unwrap();
    MpmcChannelBuilder::memfd().open_or_create().unwrap();
    EventBuilder::memfd().open_or_create().unwrap();
    SemaphoreBuilder::memfd().open_or_create().unwrap();
    BroadcastBuilder::memfd().open_or_create().unwrap();
    SharedValueBuilder::memfd()
        .open_or_create::<[u64; 4]>()
        .unwrap();
}

/// A value of another size, or of another type of that size, is refused naming
/// the field; a value created as bytes of that size opens as the type.
#[test]
fn a_value_of_another_size_or_type_is_refused() {
    let name = unique("ooc-value");
    let _made = SharedValueBuilder::shm(&name).create::<[u64; 4]>().unwrap();
    assert_incompatible(
        SharedValueBuilder::shm(&name).open_or_create::<[u64; 2]>(),
        "value_size",
        16,
        32,
    );
    assert_incompatible(
        SharedValueBuilder::shm(&name).open_or_create_bytes(8),
        "value_size",
        8,
        32,
    );
    assert!(matches!(
        SharedValueBuilder::shm(&name).open_or_create::<[u32; 8]>(),
        Err(Error::Incompatible {
            field: "type_tag",
            ..
        })
    ));
    let bytes = unique("ooc-value-bytes");
    let _bytes = SharedValueBuilder::shm(&bytes).create_bytes(32).unwrap();
    SharedValueBuilder::shm(&bytes)
        .open_or_create::<[u32; 8]>()
        .unwrap();
}

#[test]
fn a_channel_of_another_capacity_is_refused() {
    let name = unique("ooc-cap");
    let _made = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let asked = ChannelBuilder::shm(&name).capacity(8192).open_or_create();
    assert_incompatible(asked, "capacity", 8192, 4096);
}

#[test]
fn a_segment_of_another_kind_is_refused() {
    let spsc = unique("ooc-spsc");
    let _spsc = ChannelBuilder::shm(&spsc).capacity(4096).create().unwrap();
    let mpmc = unique("ooc-mpmc");
    let _mpmc = MpmcChannelBuilder::shm(&mpmc).create().unwrap();
    assert_incompatible(ChannelBuilder::shm(&mpmc).open_or_create(), "kind", 1, 2);
    assert_incompatible(
        MpmcChannelBuilder::shm(&spsc).open_or_create(),
        "kind",
        2,
        1,
    );
    let event = unique("ooc-event");
    let _event = EventBuilder::shm(&event).create().unwrap();
    let semaphore = unique("ooc-sem");
    let _semaphore = SemaphoreBuilder::shm(&semaphore).create().unwrap();
    assert_incompatible(EventBuilder::shm(&semaphore).open_or_create(), "kind", 3, 4);
    assert_incompatible(SemaphoreBuilder::shm(&event).open_or_create(), "kind", 4, 3);
    assert_incompatible(BroadcastBuilder::shm(&spsc).open_or_create(), "kind", 5, 1);
    let topic = unique("ooc-topic");
    let _topic = BroadcastBuilder::shm(&topic).create().unwrap();
    assert_incompatible(ChannelBuilder::shm(&topic).open_or_create(), "kind", 1, 5);
    // Rings and objects differ in size too: `open` finds a bad size, and
    // `open_or_create` says which kind is there.
    assert_incompatible(EventBuilder::shm(&spsc).open_or_create(), "kind", 3, 1);
    assert_incompatible(SemaphoreBuilder::shm(&mpmc).open_or_create(), "kind", 4, 2);
    assert_incompatible(EventBuilder::shm(&topic).open_or_create(), "kind", 3, 5);
    assert_incompatible(ChannelBuilder::shm(&event).open_or_create(), "kind", 1, 3);
    assert_incompatible(
        MpmcChannelBuilder::shm(&semaphore).open_or_create(),
        "kind",
        2,
        4,
    );
    assert_incompatible(BroadcastBuilder::shm(&event).open_or_create(), "kind", 5, 3);
    assert!(matches!(
        ChannelBuilder::shm(&event).open(),
        Err(Error::BadSize { .. })
    ));
    let value = unique("ooc-value-kind");
    let _value = SharedValueBuilder::shm(&value)
        .create::<[u64; 4]>()
        .unwrap();
    assert_incompatible(
        SharedValueBuilder::shm(&spsc).open_or_create::<[u64; 4]>(),
        "kind",
        8,
        1,
    );
    assert_incompatible(
        SharedValueBuilder::shm(&event).open_or_create::<[u64; 4]>(),
        "kind",
        8,
        3,
    );
    assert_incompatible(EventBuilder::shm(&value).open_or_create(), "kind", 3, 8);
    assert_incompatible(ChannelBuilder::shm(&value).open_or_create(), "kind", 1, 8);
}

#[test]
fn a_segment_of_another_layout_version_is_refused() {
    let name = unique("ooc-version");
    let _made = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    let other = LAYOUT_VERSION + 1;
    file.write_all_at(&other.to_ne_bytes(), VERSION_OFFSET)
        .unwrap();
    assert_incompatible(
        ChannelBuilder::shm(&name).capacity(4096).open_or_create(),
        "layout version",
        LAYOUT_VERSION.into(),
        other.into(),
    );
}

#[test]
fn an_mpmc_channel_of_another_shape_is_refused() {
    let name = unique("ooc-shape");
    let builder = MpmcChannelBuilder::shm(&name)
        .slots(8)
        .slot_size(64)
        .endpoints(4);
    let _made = builder.create().unwrap();
    assert_incompatible(builder.clone().slots(16).open_or_create(), "slots", 16, 8);
    assert_incompatible(
        builder.clone().slot_size(128).open_or_create(),
        "slot_size",
        128,
        64,
    );
    assert_incompatible(
        builder.clone().endpoints(8).open_or_create(),
        "endpoints",
        8,
        4,
    );
    builder.open_or_create().unwrap();
}

#[test]
fn a_semaphore_of_another_maximum_is_refused() {
    let name = unique("ooc-max");
    let _made = SemaphoreBuilder::shm(&name).max(5).create().unwrap();
    assert_incompatible(
        SemaphoreBuilder::shm(&name).max(6).open_or_create(),
        "max_count",
        6,
        5,
    );
    // The initial count is not compared: an opened semaphore keeps its own.
    let opened = SemaphoreBuilder::shm(&name)
        .max(5)
        .initial(3)
        .open_or_create()
        .unwrap();
    assert_eq!(opened.value().unwrap(), 0);
}

#[test]
fn a_topic_of_another_shape_or_policy_is_refused() {
    let name = unique("ooc-topic");
    let builder = BroadcastBuilder::shm(&name)
        .capacity(4096)
        .subscriber_slots(2)
        .policy(Policy::Gated)
        .cut_off_after(Duration::from_millis(500));
    let _made = builder.create().unwrap();
    assert_incompatible(
        builder.clone().capacity(8192).open_or_create(),
        "capacity",
        8192,
        4096,
    );
    assert_incompatible(
        builder.clone().subscriber_slots(3).open_or_create(),
        "subscriber_slots",
        3,
        2,
    );
    assert_incompatible(
        builder.clone().policy(Policy::Strict).open_or_create(),
        "policy",
        Policy::Strict.word().into(),
        Policy::Gated.word().into(),
    );
    assert_incompatible(
        builder
            .clone()
            .cut_off_after(Duration::from_millis(700))
            .open_or_create(),
        "cut_off_after_ms",
        700,
        500,
    );
    builder.open_or_create().unwrap();
}
