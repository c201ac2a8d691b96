//! A published value (`SharedValue`, the seqlock) across real processes (this
//! test binary started again with `--exact child_...` and `SHMRING_TEST_CHILD`
//! set; the `child_*` entry points return at once in the normal suite). The
//! value is eight `u64` words, all equal to the version that wrote them, so a
//! torn copy shows as unequal words or words that are not its version.
//!
//! - three reader processes read while a writer process writes versions: no
//!   torn value, no version going back, the last version seen;
//! - the writer SIGKILLed at random moments, many times, a new writer process
//!   each time: readers get `WriterDied` or a whole value, never a torn one,
//!   and the new writer's first write repairs the value;
//! - a hostile process scribbling the seqlock's words and the value: reads give
//!   errors or garbage, every wait returns by its deadline, nothing panics.
//!
//! Sizes: the default suite writes `VERSIONS` versions and kills `KILLS`
//! writers; the `#[ignore]`d runs (`cargo test -p shmring --test shared_value
//! -- --ignored`) write `VERSIONS_LONG`; `SHMRING_VALUE_VERSIONS` and
//! `SHMRING_VALUE_KILLS` set them.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::*;
use shmring::state::{SharedValue, SharedValueBuilder};
use shmring::{Error, SegmentBuilder};

/// Versions written in the default suite, and in the `#[ignore]`d run.
const VERSIONS: u64 = 200_000;
const VERSIONS_LONG: u64 = 10_000_000;
/// Writers killed in the default suite.
const KILLS: u64 = 50;
/// Reader processes.
const READERS: usize = 3;

type Words = [u64; 8];

fn child_start() -> bool {
    child_start_within(Duration::from_secs(600))
}

fn open(name: &str) -> SharedValue<Words> {
    SharedValueBuilder::shm(name).open::<Words>().unwrap()
}

/// Checks a read: `Ok` only with a whole value (every word its version) and a
/// version not below `last`; `NoValue`, `ValueBusy` and (when `died_ok`)
/// `WriterDied` are the errors allowed. Returns the version read, if any.
fn check(got: shmring::Result<(u64, Words)>, last: u64, died_ok: bool) -> Option<u64> {
    match got {
        Ok((version, words)) => {
            assert_eq!(
                words, [version; 8],
                "torn value returned as version {version}"
            );
            assert!(
                version >= last,
                "version went back from {last} to {version}"
            );
            Some(version)
        }
        Err(Error::NoValue { .. } | Error::ValueBusy { .. }) => None,
        Err(Error::WriterDied { .. }) if died_ok => None,
        Err(e) => panic!("read: {e}"),
    }
}

/// Reads until a whole value comes (retrying `ValueBusy` only), for at most
/// `limit`.
fn read_whole(value: &SharedValue<Words>, limit: Duration) -> (u64, Words) {
    let end = Instant::now() + limit;
    loop {
        match value.read() {
            Err(Error::ValueBusy { .. }) if Instant::now() < end => {}
            got => return got.expect("a whole value"),
        }
    }
}

/// Child: claims the writer of value `NAME` and writes versions until
/// `VERSIONS` (0: for ever), each `[v; 8]` for version `v` (checked against the
/// version each write returns), in bursts of `BURST` writes as fast as it can,
/// each burst followed by `PAUSE_US` microseconds of busy waiting (a writer
/// that never pauses leaves readers no room between its writes: every copy
/// overlaps one, `ValueBusy`). Reports READY after its first write (with its
/// version) and DONE at the end.
#[test]
fn child_writer() {
    if !child_start() {
        return;
    }
    let value = open(&param("NAME"));
    let until = param_u64("VERSIONS");
    let (burst, pause) = (
        param_u64("BURST"),
        Duration::from_micros(param_u64("PAUSE_US")),
    );
    let mut writer = value.writer().unwrap();
    let write = |writer: &mut shmring::SharedValueWriter<Words>| {
        let v = writer.next_version();
        assert_eq!(writer.write(&[v; 8]).unwrap(), v, "the version stamped");
        v
    };
    let mut v = write(&mut writer);
    report("READY", v);
    loop {
        for _ in 0..burst {
            let next = write(&mut writer);
            assert_eq!(next, v + 1, "versions are consecutive");
            v = next;
            if until != 0 && v >= until {
                report("DONE", v);
                wait_for_parent();
                return;
            }
        }
        let end = Instant::now() + pause;
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    }
}

/// Child: reads value `NAME` until it sees version `VERSIONS`, checking every
/// read; reports READS (whole values read) and DISTINCT (versions seen).
#[test]
fn child_reader() {
    if !child_start() {
        return;
    }
    let value = open(&param("NAME"));
    let until = param_u64("VERSIONS");
    let (mut last, mut reads, mut distinct) = (0, 0u64, 0u64);
    report("READY", std::process::id());
    while last < until {
        if let Some(v) = check(value.read(), last, false) {
            reads += 1;
            distinct += u64::from(v != last);
            last = v;
        }
    }
    report("READS", reads);
    report("DISTINCT", distinct);
    wait_for_parent();
}

fn readers_while_one_writer_writes(versions: u64) {
    let name = unique("value-readers");
    let value = SharedValueBuilder::shm(&name).create::<Words>().unwrap();
    let mut readers: Vec<Peer> = (0..READERS)
        .map(|_| Peer::spawn("child_reader", &[("NAME", &name), ("VERSIONS", &versions)]))
        .collect();
    for r in &mut readers {
        r.expect("READY");
    }
    let started = Instant::now();
    let mut writer = Peer::spawn(
        "child_writer",
        &[
            ("NAME", &name),
            ("VERSIONS", &versions),
            ("BURST", &100),
            ("PAUSE_US", &200),
        ],
    );
    assert_eq!(writer.expect("READY"), "1");
    // `expect` waits 60 s; the long run writes for minutes.
    let done = writer.next_report(Duration::from_secs(1800));
    assert_eq!(done, Some(("DONE".to_owned(), versions.to_string())));
    eprintln!("{versions} versions written in {:?}", started.elapsed());
    for r in &mut readers {
        let reads: u64 = r.expect("READS").parse().unwrap();
        let distinct: u64 = r.expect("DISTINCT").parse().unwrap();
        // Readers read while the writer writes, not only its last version. (At
        // least 20: a reader of a loaded machine gets the CPU in slices of
        // milliseconds, and once saw only 99 of the 2,000 bursts.)
        assert!(distinct >= 20, "a reader saw only {distinct} versions");
        eprintln!("reader: {reads} whole reads, {distinct} versions seen of {versions}");
        r.release();
        r.wait_ok();
    }
    writer.release();
    writer.wait_ok();
    assert_eq!(check(value.read(), versions, false), Some(versions));
}

/// Three reader processes read while a writer process writes `VERSIONS`
/// versions: every value read is whole, no reader's versions go back, each
/// reaches the last one.
#[test]
fn three_readers_never_see_a_torn_value_or_a_version_go_back() {
    readers_while_one_writer_writes(count_from_env("SHMRING_VALUE_VERSIONS", VERSIONS));
}

/// As the default run, with 10^7 versions.
#[test]
#[ignore = "long run: 10^7 versions"]
fn three_readers_never_see_a_torn_value_or_a_version_go_back_long() {
    readers_while_one_writer_writes(count_from_env("SHMRING_VALUE_VERSIONS", VERSIONS_LONG));
}

/// A writer process SIGKILLed at a random moment while it writes as fast as it
/// can, `KILLS` times, a new writer process each time, while this process reads
/// in two threads all along: every `Ok` is whole and versions never go back;
/// after each kill a read gives a whole value or `WriterDied` (killed in the
/// middle of a write: seen at least once over the run, else the test tested
/// nothing); the next writer takes the role over and its first write is read
/// back whole, with a version above every one before.
#[test]
fn a_writer_killed_mid_write_gives_writer_died_and_the_next_writer_repairs() {
    let kills = count_from_env("SHMRING_VALUE_KILLS", KILLS);
    let name = unique("value-kills");
    let value = SharedValueBuilder::shm(&name).create::<Words>().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (value, stop) = (value.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut last, mut whole) = (0, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(v) = check(value.read(), last, true) {
                        last = v;
                        whole += 1;
                    }
                }
                whole
            })
        })
        .collect();
    let mut rng = XorShift::new(seed("value-kills"));
    let (mut died, mut last) = (0, 0);
    for _ in 0..kills {
        let mut writer = Peer::spawn(
            "child_writer",
            &[
                ("NAME", &name),
                ("VERSIONS", &0),
                ("BURST", &10_000),
                ("PAUSE_US", &50),
            ],
        );
        let first: u64 = writer.expect("READY").parse().unwrap();
        assert!(
            first > last,
            "the new writer's first version {first} after {last}"
        );
        // A writer in a tight loop leaves little room between its writes: a
        // read may find every copy overlapped (`ValueBusy`) and is made again.
        let (v, words) = read_whole(&value, Duration::from_secs(10));
        assert!(v >= first && words == [v; 8], "{v}: {words:?}");
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        writer.kill();
        match value.read() {
            Ok((v, words)) => {
                assert_eq!(words, [v; 8]);
                last = v;
            }
            Err(Error::WriterDied { seq, .. }) => {
                died += 1;
                last = seq / 2;
            }
            Err(e) => panic!("after the kill: {e}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0, "a reader thread read nothing whole");
    }
    eprintln!("{kills} writers killed, {died} in the middle of a write");
    assert!(died > 0, "no kill landed in the middle of a write");
}

/// Child: scribbles random words over the seqlock's line and the value of the
/// segment file `PATH` (`pwrite`, as any process that can open it could) until
/// the parent closes its input.
#[test]
fn child_scribbler() {
    if !child_start() {
        return;
    }
    scribble_until_released(8, |rng| match rng.below(4) {
        0 => rng.next_u64() | 1, // an odd seq: "a write in progress"
        1 => rng.next_u64() & !1,
        2 => rng.below(4),
        _ => rng.next_u64(),
    });
}

/// A hostile process scribbles the seqlock's words and the value while this
/// process reads, waits with short deadlines, and writes: reads return garbage
/// or an error, every wait returns by its deadline (plus scheduling slack), and
/// nothing panics.
#[test]
fn a_hostile_scribbler_costs_errors_or_garbage_and_every_wait_ends_by_its_deadline() {
    let name = unique("value-hostile");
    let value = SharedValueBuilder::shm(&name)
        .asymmetric_fences(false)
        .create::<Words>()
        .unwrap();
    let mut writer = value.writer().unwrap();
    writer.write(&[1; 8]).unwrap();
    let seed = seed("value-hostile");
    let mut scribbler = Peer::spawn(
        "child_scribbler",
        &[("PATH", &shm_path(&name).display()), ("SEED", &seed)],
    );
    scribbler.expect("READY");
    let slack = Duration::from_millis(500);
    let (mut oks, mut errors, mut waits) = (0u64, 0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(2);
    let mut after = 0;
    while Instant::now() < end {
        let started = Instant::now();
        let read = value.read();
        assert!(
            started.elapsed() < slack,
            "a read took {:?}",
            started.elapsed()
        );
        match read {
            Ok((v, _garbage)) => {
                oks += 1;
                after = v;
            }
            Err(Error::NoValue { .. } | Error::WriterDied { .. } | Error::ValueBusy { .. }) => {
                errors += 1;
            }
            Err(e) => panic!("read: {e}"),
        }
        let deadline = Instant::now() + Duration::from_millis(5);
        let got = value.wait_for_version_deadline(after, Some(deadline));
        assert!(
            Instant::now() < deadline + slack,
            "a wait ended {:?} after its deadline",
            Instant::now() - deadline
        );
        match got {
            Ok(_)
            | Err(
                Error::TimedOut
                | Error::NoValue { .. }
                | Error::WriterDied { .. }
                | Error::ValueBusy { .. },
            ) => waits += 1,
            Err(e) => panic!("wait: {e}"),
        }
        writer.write_with(|w| w[0] = w[0].wrapping_add(1)).unwrap();
    }
    scribbler.release();
    let writes: u64 = scribbler.expect("WRITES").parse().unwrap();
    scribbler.wait_ok();
    eprintln!("{writes} hostile writes: {oks} reads returned, {errors} errors, {waits} waits");
    assert!(writes > 0 && waits > 0);
    // The peer gone, a write makes the value whole again.
    let v = writer.write(&[0; 8]).unwrap();
    let (read, words) = value.read().unwrap();
    assert_eq!((read, words), (v, [0; 8]));
}

/// The API's edges in one process: a second live writer is refused, a typed
/// open of another size or type is refused naming the field, bytes and typed
/// handles agree, the writer's pid is recorded and cleared, and a wait times
/// out at its deadline.
#[test]
fn one_writer_types_checked_and_a_wait_times_out() {
    let name = unique("value-api");
    let value = SharedValueBuilder::shm(&name).create::<Words>().unwrap();
    assert!(matches!(value.read(), Err(Error::NoValue { .. })));
    let mut writer = value.writer().unwrap();
    assert!(matches!(value.writer(), Err(Error::RoleTaken { .. })));
    assert!(value.writer_alive().unwrap());
    assert_eq!(writer.write(&[5; 8]).unwrap(), 1);
    let bytes = SharedValueBuilder::shm(&name).open_bytes().unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(bytes.read_into(&mut buf).unwrap(), 1);
    assert_eq!(buf[..8], 5u64.to_ne_bytes());
    assert!(matches!(
        bytes.read_into(&mut [0u8; 63]),
        Err(Error::ValueSize {
            len: 63,
            value_size: 64
        })
    ));
    assert!(matches!(
        SharedValueBuilder::shm(&name).open::<[u64; 4]>(),
        Err(Error::Incompatible {
            field: "value_size",
            requested: 32,
            found: 64,
            ..
        })
    ));
    assert!(matches!(
        SharedValueBuilder::shm(&name).open::<[i64; 8]>(),
        Err(Error::Incompatible {
            field: "type_tag",
            ..
        })
    ));
    assert!(matches!(
        SharedValueBuilder::shm(&name).open_or_create::<[i64; 8]>(),
        Err(Error::Incompatible {
            field: "type_tag",
            ..
        })
    ));
    let started = Instant::now();
    assert!(matches!(
        value.wait_for_version_timeout(1, Duration::from_millis(50)),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= Duration::from_millis(50));
    // A waiter in another thread is woken by the next write.
    let v = value.clone();
    let waiter = std::thread::spawn(move || v.wait_for_version(1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(writer.write(&[2; 8]).unwrap(), 2);
    assert_eq!(waiter.join().unwrap().unwrap(), (2, [2; 8]));
    // The file's pid word: ours while we write, 0 after.
    let file = std::fs::File::open(shm_path(&name)).unwrap();
    let pid = |file: &std::fs::File| {
        let mut word = [0u8; 4];
        file.read_exact_at(&mut word, 140).unwrap();
        u32::from_ne_bytes(word)
    };
    assert_eq!(pid(&file), std::process::id());
    drop(writer);
    assert_eq!(pid(&file), 0);
    assert!(!value.writer_alive().unwrap());
    let mut again = value.writer().unwrap();
    assert_eq!(again.write_with(|w| w[0] += 1).unwrap(), 3);
    assert_eq!(value.read().unwrap(), (3, [3, 2, 2, 2, 2, 2, 2, 2]));
}
