//! In-process tests of the `shmring` channel API's edges: names, capacities,
//! missing and duplicate channels, the largest message and one byte over, short
//! buffers, grants, file-backed channels (bad headers, persistence), roles, and
//! the first moments of a channel (no peer yet) and its last (peer gone).
//!
//! Segment internals (reclaim, open-while-creating, listing) are unit-tested in
//! `src/segment/`; cross-process behaviour is in `tests/processes.rs`.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use common::*;
use shmring::ring_core::{LayoutError, MAX_CAPACITY, MIN_CAPACITY};
use shmring::{ChannelBuilder, Corrupted, Error, Role, SegmentBuilder, WaitStrategy};
use shmring::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

fn memfd(capacity: usize) -> shmring::Channel {
    ChannelBuilder::memfd()
        .capacity(capacity)
        .create()
        .expect("memfd channel")
}

/// `channel::pair`: a working in-process channel, each message once and in
/// order across two threads; a bad capacity is refused.
#[test]
fn pair_makes_an_in_process_channel() {
    let (mut tx, mut rx) = shmring::channel::pair(4096).unwrap();
    let sender = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for seq in 0..10_000 {
            seq_message(seq, &mut buf);
            tx.send(&buf).unwrap();
        }
    });
    for seq in 0..10_000 {
        assert_eq!(parse_seq(&rx.recv_vec().unwrap()), Ok(seq));
    }
    sender.join().unwrap();
    assert!(matches!(rx.recv_vec(), Err(RecvError::Disconnected)));
    assert!(matches!(
        shmring::channel::pair(3000),
        Err(Error::InvalidCapacity { capacity: 3000 })
    ));
}

#[test]
fn invalid_names_are_refused() {
    let long = "n".repeat(201);
    for name in [
        "",
        "a/b",
        "/abs",
        "..",
        ".",
        long.as_str(),
        "sp ace",
        "nul\0",
    ] {
        for (op, result) in [
            ("create", ChannelBuilder::shm(name).create()),
            ("open", ChannelBuilder::shm(name).open()),
        ] {
            match result {
                Err(Error::InvalidName { name: n, reason }) => {
                    assert_eq!(n, name, "{op}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{op} {name:?}: {other:?}"),
            }
        }
    }
    // The longest name accepted.
    let longest = format!("{}-{}", unique("max"), "x".repeat(200))
        .split_at(200)
        .0
        .to_owned();
    let channel = ChannelBuilder::shm(&longest)
        .capacity(4096)
        .create()
        .unwrap();
    assert!(shm_path(&longest).exists());
    drop(channel);
    assert_no_shm(&longest);
}

#[test]
fn invalid_capacities_are_refused_for_every_backing() {
    let dir = TempDir::new("cap");
    for capacity in [
        0,
        MIN_CAPACITY / 2,
        100,
        3000,
        4097,
        MAX_CAPACITY + 1,
        MAX_CAPACITY * 2,
        usize::MAX,
    ] {
        let name = unique("cap");
        let path = dir.path().join(&name);
        for (backing, result) in [
            (
                "shm",
                ChannelBuilder::shm(&name).capacity(capacity).create(),
            ),
            ("memfd", ChannelBuilder::memfd().capacity(capacity).create()),
            (
                "file",
                ChannelBuilder::file(&path).capacity(capacity).create(),
            ),
        ] {
            match result {
                Err(Error::InvalidCapacity { capacity: c }) => {
                    assert_eq!(c, capacity as u64, "{backing}");
                }
                other => panic!("{backing} capacity {capacity}: {other:?}"),
            }
        }
        assert_no_shm(&name);
        assert!(!path.exists(), "a file was left for capacity {capacity}");
    }
    // The bounds themselves are fine.
    for capacity in [MIN_CAPACITY, 4096, 1 << 20] {
        let channel = memfd(capacity);
        assert_eq!(channel.segment().capacity(), capacity);
        assert_eq!(channel.max_message_len(), capacity / 2 - 8);
    }
}

#[test]
fn opening_a_missing_channel_is_not_found() {
    let name = unique("missing");
    assert!(matches!(
        ChannelBuilder::shm(&name).open(),
        Err(Error::NotFound { .. })
    ));
    assert_no_shm(&name);
    let dir = TempDir::new("missing");
    assert!(matches!(
        ChannelBuilder::file(dir.path().join("nope")).open(),
        Err(Error::NotFound { .. })
    ));
    // A file channel in a directory that does not exist cannot be created.
    assert!(matches!(
        ChannelBuilder::file(dir.path().join("no-dir").join("x")).create(),
        Err(Error::NotFound { .. })
    ));
    // No variable, no inherited channel.
    // SAFETY: the variable is unset: no descriptor is taken.
    let unset = unsafe { ChannelBuilder::memfd().from_env("SHMRING_TEST_NO_SUCH_VARIABLE") };
    assert!(matches!(unset, Err(Error::NotFound { .. })));
}

#[test]
fn creating_twice_is_already_exists() {
    let name = unique("twice");
    let first = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    match ChannelBuilder::shm(&name).capacity(8192).create() {
        Err(Error::AlreadyExists { what }) => assert!(what.contains(&name), "{what}"),
        other => panic!("second create: {other:?}"),
    }
    // The first is untouched.
    let opened = ChannelBuilder::shm(&name).open().unwrap();
    assert_eq!(opened.segment().capacity(), 4096);
    drop((first, opened));
    assert_no_shm(&name);

    let dir = TempDir::new("twice");
    let path = dir.path().join("ring");
    drop(ChannelBuilder::file(&path).create().unwrap());
    assert!(matches!(
        ChannelBuilder::file(&path).create(),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn the_largest_message_fits_and_one_byte_more_is_refused() {
    for capacity in [MIN_CAPACITY, 1024, 65536] {
        let channel = memfd(capacity);
        let mut tx = channel.sender().unwrap();
        let mut rx = channel.receiver().unwrap();
        let max = capacity / 2 - 8;
        assert_eq!(channel.max_message_len(), max);
        assert_eq!(tx.max_message_len(), max);
        assert_eq!(rx.max_message_len(), max);
        let too_long = vec![0u8; max + 1];
        let refused = |r: shmring::Result<()>, what: &str| match r {
            Err(Error::MessageTooLarge { len, max: m }) => {
                assert_eq!((len, m), (max + 1, max), "{what}");
            }
            other => panic!("{what} of {} bytes: {other:?}", max + 1),
        };
        refused(tx.try_send(&too_long).map_err(Error::from), "try_send");
        refused(tx.send(&too_long).map_err(Error::from), "send");
        refused(
            tx.send_timeout(&too_long, Duration::from_secs(10))
                .map_err(Error::from),
            "send_timeout",
        );
        refused(
            tx.try_grant(max + 1).map(drop).map_err(Error::from),
            "try_grant",
        );
        refused(tx.grant(max + 1).map(drop).map_err(Error::from), "grant");
        refused(
            tx.grant_timeout(max + 1, Duration::from_secs(10))
                .map(drop)
                .map_err(Error::from),
            "grant_timeout",
        );
        refused(
            tx.batch().try_send(&too_long).map_err(Error::from),
            "batch try_send",
        );
        assert!(matches!(rx.try_recv(&mut []), Err(TryRecvError::Empty)));

        // The largest message goes through at every frame offset of a lap, so
        // some of them wrap with padding.
        let mut buf = vec![0u8; max];
        for shift in 0..capacity / 8 {
            let message: Vec<u8> = (0..max).map(|i| (i + shift) as u8).collect();
            tx.send_timeout(&message, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("capacity {capacity}, shift {shift}: {e}"));
            assert_eq!(rx.try_recv(&mut buf).unwrap(), max);
            assert_eq!(buf, message);
            // Move the positions on by one 8-byte frame.
            tx.try_send(&[]).unwrap();
            assert_eq!(rx.try_recv(&mut []).unwrap(), 0);
        }
    }
}

#[test]
fn a_short_buffer_leaves_the_message_in_place() {
    let channel = memfd(4096);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let message: Vec<u8> = (0..100u8).collect();
    tx.send(&message).unwrap();
    tx.send(b"").unwrap();
    let mut small = [0u8; 99];
    for _ in 0..2 {
        match rx.try_recv(&mut small) {
            Err(TryRecvError::BufferTooSmall { len, buffer }) => {
                assert_eq!((len, buffer), (100, 99))
            }
            other => panic!("try_recv into 99 bytes: {other:?}"),
        }
    }
    assert!(matches!(
        rx.recv(&mut small[..10]),
        Err(RecvError::BufferTooSmall {
            len: 100,
            buffer: 10
        })
    ));
    assert!(matches!(
        rx.recv_timeout(&mut [], Duration::from_secs(1)),
        Err(RecvTimeoutError::BufferTooSmall {
            len: 100,
            buffer: 0
        })
    ));
    let mut exact = [0u8; 100];
    assert_eq!(rx.try_recv(&mut exact).unwrap(), 100);
    assert_eq!(&exact[..], &message[..]);
    // An empty message fits an empty buffer.
    assert_eq!(rx.try_recv(&mut []).unwrap(), 0);
    assert!(matches!(rx.try_recv(&mut exact), Err(TryRecvError::Empty)));
}

#[test]
fn grants_commit_what_they_say_and_reads_release_only_on_release() {
    let channel = memfd(4096);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    // A dropped grant publishes nothing.
    {
        let mut grant = tx.try_grant(50).unwrap();
        grant.fill(1);
    }
    assert!(matches!(
        rx.try_read().map(|m| m.len()),
        Err(TryRecvError::Empty)
    ));
    // A short commit publishes the first bytes only.
    let mut grant = tx.grant(50).unwrap();
    assert_eq!(grant.len(), 50);
    grant[..5].copy_from_slice(b"hello");
    grant.commit(5);
    let mut grant = tx.grant_timeout(0, Duration::from_secs(1)).unwrap();
    assert_eq!(grant.len(), 0);
    grant.fill(0);
    grant.commit(0);
    // A message read in place and not released is read again.
    {
        let message = rx.try_read().unwrap();
        assert_eq!(&*message, b"hello");
    }
    let message = rx.read().unwrap();
    assert_eq!(&*message, b"hello");
    message.release();
    let message = rx.read_timeout(Duration::from_secs(1)).unwrap();
    assert!(message.is_empty());
    message.release();
    assert!(matches!(
        rx.try_read().map(|m| m.len()),
        Err(TryRecvError::Empty)
    ));
}

#[test]
fn a_run_grant_sends_records_written_in_place() {
    let channel = memfd(4096);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    let mut batch = tx.batch();
    let mut grant = batch.try_grant_run(8, 10).unwrap();
    assert_eq!((grant.count(), grant.message_len()), (10, 8));
    for (i, record) in grant.messages_mut().enumerate() {
        record.copy_from_slice(&(i as u64).to_le_bytes());
    }
    grant.commit(7);
    // A message of another length between runs, then a second run of 12 bytes.
    batch.try_send(b"between").unwrap();
    let mut grant = batch.try_grant_run(12, 2).unwrap();
    grant.message_mut(0).copy_from_slice(b"twelve bytes");
    grant.message_mut(1).copy_from_slice(b"TWELVE BYTES");
    grant.commit(2);
    assert!(matches!(
        rx.try_read().map(|m| m.len()),
        Err(TryRecvError::Empty)
    ));
    batch.publish();
    let mut got = Vec::new();
    rx.try_recv_batch(100, |m| got.push(m.to_vec())).unwrap();
    let mut expected: Vec<Vec<u8>> = (0..7u64).map(|i| i.to_le_bytes().to_vec()).collect();
    expected.push(b"between".to_vec());
    expected.push(b"twelve bytes".to_vec());
    expected.push(b"TWELVE BYTES".to_vec());
    assert_eq!(got, expected);
    // Too long for a run's length field.
    let mut batch = tx.batch();
    assert!(matches!(
        batch.try_grant_run(70_000, 1),
        Err(TrySendError::MessageTooLarge { len: 70_000, .. })
    ));
}

#[test]
#[should_panic]
fn committing_more_than_was_granted_panics() {
    let channel = memfd(4096);
    let mut tx = channel.sender().unwrap();
    tx.try_grant(10).unwrap().commit(11);
}

/// Creates a file channel at `path` (4 KiB ring) and drops it.
fn make_file_channel(path: &std::path::Path) {
    let channel = ChannelBuilder::file(path).capacity(4096).create().unwrap();
    drop(channel);
    assert!(path.exists());
}

fn patch(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::File::options().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// A channel whose version word says 3 (a peer of the previous layout made it)
/// is refused, naming both versions, while its creator still holds it.
#[test]
fn a_channel_of_layout_version_3_is_refused() {
    let name = unique("v3");
    let channel = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    assert_version_3_refused(&shm_path(&name), || ChannelBuilder::shm(&name).open());
    drop(channel);
    assert_no_shm(&name);
}

#[test]
fn a_file_channel_with_a_bad_header_or_size_is_refused() {
    let dir = TempDir::new("bad-file");
    let path = dir.path().join("ring");
    make_file_channel(&path);
    let open = || ChannelBuilder::file(&path).open();

    // layout_version (offset 8) of another build.
    patch(&path, 8, &99u32.to_ne_bytes());
    match open() {
        Err(Error::IncompatibleLayout {
            source: LayoutError::UnsupportedVersion { found: 99, .. },
            ..
        }) => {}
        other => panic!("layout version 99: {other:?}"),
    }
    patch(&path, 8, &shmring::ring_core::LAYOUT_VERSION.to_ne_bytes());
    open().expect("version restored");

    // ring_kind (offset 12) of another kind.
    patch(&path, 12, &7u32.to_ne_bytes());
    assert!(matches!(open(), Err(Error::IncompatibleLayout { .. })));
    patch(&path, 12, &1u32.to_ne_bytes());

    // Garbage: a capacity the rest of the header does not match, then bad magic.
    patch(&path, 16, &8192u64.to_ne_bytes());
    match open() {
        Err(Error::Corrupted {
            detail: Corrupted::Header(_),
            ..
        }) => {}
        other => panic!("capacity 8192 in a 4 KiB file: {other:?}"),
    }
    patch(&path, 16, &4096u64.to_ne_bytes());
    open().expect("capacity restored");
    patch(&path, 0, &0x0123_4567_89ab_cdefu64.to_ne_bytes());
    match open() {
        Err(Error::Corrupted {
            detail: Corrupted::Header(LayoutError::BadMagic { .. }),
            ..
        }) => {}
        other => panic!("bad magic: {other:?}"),
    }
    patch(&path, 0, &[0xff; 512]);
    assert!(matches!(open(), Err(Error::Corrupted { .. })));

    // Truncated: shorter than the header, then shorter than the ring.
    let intact = dir.path().join("intact");
    make_file_channel(&intact);
    for (len, expected) in [(100, 512), (600, 512 + 4096)] {
        std::fs::copy(&intact, &path).unwrap();
        open().expect("an intact copy");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        match open() {
            Err(Error::BadSize {
                size, expected: e, ..
            }) => assert_eq!((size, e), (len, expected), "length {len}"),
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
}

#[test]
fn a_file_channel_keeps_its_messages_across_reopening() {
    let dir = TempDir::new("persist");
    let path = dir.path().join("ring");
    let message = |i: u64| stream_message(i * 7 + 3, STREAM_MAX);
    {
        let channel = ChannelBuilder::file(&path)
            .capacity(1 << 16)
            .create()
            .unwrap();
        let mut tx = channel.sender().unwrap();
        for i in 0..10 {
            tx.send(&message(i)).unwrap();
        }
        channel.segment().flush().unwrap();
    }
    assert!(path.exists(), "a file channel is not removed on drop");
    {
        let channel = ChannelBuilder::file(&path).open().unwrap();
        assert_eq!(channel.segment().capacity(), 1 << 16);
        let mut rx = channel.receiver().unwrap();
        let mut buf = vec![0u8; rx.max_message_len()];
        for i in 0..10 {
            let n = rx
                .try_recv(&mut buf)
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(&buf[..n], &message(i)[..], "message {i}");
        }
        // A sender has been here and none is now.
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(
            rx.try_recv(&mut buf),
            Err(TryRecvError::Disconnected)
        ));
        // A new sender continues; its messages persist too.
        let mut tx = channel.sender().unwrap();
        tx.send(b"eleventh").unwrap();
    }
    {
        let channel = ChannelBuilder::file(&path).open().unwrap();
        let mut rx = channel.receiver().unwrap();
        assert_eq!(
            rx.recv_vec_timeout(Duration::from_secs(1)).unwrap(),
            b"eleventh"
        );
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_role_is_claimed_once_until_its_holder_drops() {
    let name = unique("roles");
    let channel = ChannelBuilder::shm(&name).capacity(4096).create().unwrap();
    let other = ChannelBuilder::shm(&name).open().unwrap();
    let pid = std::process::id();
    let tx = channel.sender().unwrap();
    let rx = channel.receiver().unwrap();
    for handle in [&channel, &other] {
        match handle.sender() {
            Err(Error::RoleTaken { role, owner }) => assert_eq!((role, owner), (Role::Sender, pid)),
            other => panic!("second sender: {other:?}"),
        }
        match handle.receiver() {
            Err(Error::RoleTaken { role, owner }) => {
                assert_eq!((role, owner), (Role::Receiver, pid))
            }
            other => panic!("second receiver: {other:?}"),
        }
    }
    assert!(tx.is_receiver_connected().unwrap());
    assert!(rx.is_sender_connected().unwrap());
    drop(tx);
    assert!(!rx.is_sender_connected().unwrap());
    let mut tx = other.sender().unwrap();
    drop(rx);
    let mut rx = other.receiver().unwrap();
    tx.send(b"via the second handle").unwrap();
    assert_eq!(
        rx.recv_vec_timeout(Duration::from_secs(1)).unwrap(),
        b"via the second handle"
    );
    // The creator's handle removes the name when it drops; handles already open
    // keep working.
    drop(channel);
    assert_no_shm(&name);
    tx.send(b"after the name went").unwrap();
    assert_eq!(
        rx.recv_vec_timeout(Duration::from_secs(1)).unwrap(),
        b"after the name went"
    );
    drop((tx, rx, other));
}

#[test]
fn before_any_peer_calls_wait_and_never_report_disconnected() {
    for (wait_name, wait) in STRATEGIES {
        let channel = ChannelBuilder::memfd()
            .capacity(1024)
            .wait_strategy(wait)
            .create()
            .unwrap();
        let mut rx = channel.receiver().unwrap();
        let mut buf = [0u8; 64];
        assert!(!rx.is_sender_connected().unwrap());
        assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
        let timeout = Duration::from_millis(30);
        let start = Instant::now();
        match rx.recv_timeout(&mut buf, timeout) {
            Err(RecvTimeoutError::TimedOut) => {}
            other => panic!("{wait_name}: recv_timeout with no sender yet: {other:?}"),
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout && elapsed < timeout + Duration::from_secs(2));
        assert!(matches!(
            rx.read_timeout(timeout).map(|m| m.len()),
            Err(RecvTimeoutError::TimedOut)
        ));
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
        drop((rx, channel));

        // A sender with no receiver yet: messages queue while there is room; then
        // full is only full.
        let channel = ChannelBuilder::memfd()
            .capacity(1024)
            .wait_strategy(wait)
            .create()
            .unwrap();
        let mut tx = channel.sender().unwrap();
        assert!(!tx.is_receiver_connected().unwrap());
        let message = [3u8; 100];
        let mut sent = 0;
        loop {
            match tx.try_send(&message) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full { .. }) => break,
                Err(e) => panic!("{wait_name}: filling with no receiver: {e}"),
            }
        }
        assert!(sent > 0);
        let start = Instant::now();
        match tx.send_timeout(&message, timeout) {
            Err(SendTimeoutError::TimedOut) => {}
            other => panic!("{wait_name}: send_timeout with no receiver yet: {other:?}"),
        }
        assert!(start.elapsed() >= timeout);
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(
            tx.try_send(&message),
            Err(TrySendError::Full { .. })
        ));
    }
}

#[test]
fn after_a_peer_drops_calls_report_disconnected_until_a_new_one_comes() {
    let channel = memfd(1024);
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    for i in 0u8..5 {
        tx.send(&[i; 10]).unwrap();
    }
    drop(tx);
    let mut buf = [0u8; 64];
    for i in 0u8..5 {
        assert_eq!(
            rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap(),
            10
        );
        assert_eq!(buf[..10], [i; 10]);
    }
    let start = Instant::now();
    for result in [
        rx.recv(&mut buf).map_err(RecvTimeoutError::from),
        rx.recv_timeout(&mut buf, Duration::from_secs(10)),
        rx.read().map(|m| m.len()).map_err(RecvTimeoutError::from),
        rx.recv_vec_timeout(Duration::from_secs(10))
            .map(|v| v.len()),
    ] {
        assert!(
            matches!(result, Err(RecvTimeoutError::Disconnected)),
            "{result:?}"
        );
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(2));
    assert!(matches!(
        rx.try_recv(&mut buf),
        Err(TryRecvError::Disconnected)
    ));
    std::thread::sleep(Duration::from_millis(2));
    assert!(matches!(
        rx.try_read().map(|m| m.len()),
        Err(TryRecvError::Disconnected)
    ));
    assert!(matches!(
        rx.try_recv_batch(10, |_| {}),
        Err(TryRecvError::Disconnected)
    ));
    // Disconnected is a state: a new sender is heard.
    let mut tx = channel.sender().unwrap();
    tx.send(b"again").unwrap();
    assert_eq!(
        rx.recv_vec_timeout(Duration::from_secs(1)).unwrap(),
        b"again"
    );

    // The same on the sending side, once the ring is full.
    drop(rx);
    let mut sent = 0;
    while tx.try_send(&[1u8; 50]).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    let start = Instant::now();
    assert!(matches!(
        tx.send_timeout(&[1u8; 50], Duration::from_secs(10)),
        Err(SendTimeoutError::Disconnected)
    ));
    assert!(matches!(tx.send(&[1u8; 50]), Err(SendError::Disconnected)));
    assert!(start.elapsed() < Duration::from_secs(2));
    let mut rx = channel.receiver().unwrap();
    for _ in 0..sent {
        assert_eq!(rx.try_recv(&mut buf).unwrap(), 50);
    }
    tx.send(&[2u8; 50]).unwrap();
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 50);
}

#[test]
fn the_builder_options_reach_the_segment() {
    let name = unique("opts");
    let channel = ChannelBuilder::shm(&name)
        .capacity(1 << 13)
        .mode(0o640)
        .prefault(true)
        .wait_strategy(WaitStrategy::Park)
        .create()
        .unwrap();
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o640
    );
    assert_eq!(channel.segment().capacity(), 1 << 13);
    // 0o640 is within the default 0o644: opened without extra trust.
    let opened = ChannelBuilder::shm(&name).open().unwrap();
    assert_eq!(opened.segment().capacity(), 1 << 13);
    drop((channel, opened));
    assert_no_shm(&name);

    // Without unlink_on_drop the name survives its creator.
    let name = unique("keep");
    drop(
        ChannelBuilder::shm(&name)
            .capacity(4096)
            .unlink_on_drop(false)
            .create()
            .unwrap(),
    );
    assert!(shm_path(&name).exists());
    // reclaim(true) replaces it, as no handle is alive; the new one is removed.
    let again = ChannelBuilder::shm(&name)
        .capacity(8192)
        .reclaim(true)
        .create()
        .unwrap();
    assert_eq!(again.segment().capacity(), 8192);
    drop(again);
    assert_no_shm(&name);
}

/// A side that leaves cleanly (drops its handle) ends the other side's parked
/// call at once, not at its next liveness probe (`LIVENESS_INTERVAL`, 25 ms):
/// the median over trials is well under that interval. Both directions: a
/// receiver parked on an empty ring, a sender parked on a full one.
#[test]
fn a_clean_departure_ends_a_parked_call_at_once() {
    use shmring::channel::LIVENESS_INTERVAL;
    const TRIALS: usize = 9;
    const LONG: Duration = Duration::from_secs(10);
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (mut receiver_waits, mut sender_waits) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        let channel = ChannelBuilder::memfd()
            .capacity(4096)
            .wait_strategy(WaitStrategy::Park)
            .create()
            .unwrap();
        // A receiver parked on an empty ring; the sender leaves.
        let (tx, mut rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
        let parked = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let result = rx.recv_timeout(&mut buf, LONG);
            (result, Instant::now(), rx)
        });
        std::thread::sleep(Duration::from_millis(5));
        let left = Instant::now();
        drop(tx);
        let (result, returned, rx) = parked.join().unwrap();
        assert!(
            matches!(result, Err(RecvTimeoutError::Disconnected)),
            "{result:?}"
        );
        receiver_waits.push(returned.saturating_duration_since(left));
        drop(rx);

        // A sender parked on a full ring; the receiver leaves.
        let (mut tx, rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
        while tx.try_send(&[7; 64]).is_ok() {}
        let parked = std::thread::spawn(move || {
            let result = tx.send_timeout(&[7; 64], LONG);
            (result, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(5));
        let left = Instant::now();
        drop(rx);
        let (result, returned) = parked.join().unwrap();
        assert!(
            matches!(result, Err(SendTimeoutError::Disconnected)),
            "{result:?}"
        );
        sender_waits.push(returned.saturating_duration_since(left));
    }
    let (receiver, sender) = (median(receiver_waits), median(sender_waits));
    eprintln!(
        "clean departure seen after (median of {TRIALS}): receiver {receiver:?}, sender {sender:?}"
    );
    assert!(receiver < LIVENESS_INTERVAL / 5, "receiver: {receiver:?}");
    assert!(sender < LIVENESS_INTERVAL / 5, "sender: {sender:?}");
}

/// Whether `list_objects` shows a live handle on the shm segment `name`.
fn handles_alive(name: &str) -> bool {
    let list = shmring::list_objects().expect("list /dev/shm");
    let entry = list.iter().find(|s| s.name == name).expect("listed");
    assert!(entry.state.is_ok(), "a readable channel: {:?}", entry.state);
    entry.files[0].handles_alive.expect("probed")
}

/// A kept shm channel `name` (no handle left on it) and a read-write descriptor of
/// it, which the tests below keep open throughout as a caller of `from_fd` would:
/// the library gets a duplicate (as `shmring_channel_open_fd` makes one), which
/// shares its open file description.
fn kept_channel_and_callers_fd(name: &str) -> (ChannelBuilder, std::fs::File) {
    let keep = ChannelBuilder::shm(name)
        .capacity(4096)
        .unlink_on_drop(false);
    drop(keep.create().unwrap());
    let caller = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap();
    (keep, caller)
}

/// A channel opened with `from_fd` takes its locks on a description of its own:
/// once it is closed, listing and reclaim see the segment dead, though the caller
/// still holds the descriptor it passed.
#[test]
fn a_closed_from_fd_channel_leaves_no_lock_on_the_callers_descriptor() {
    let name = unique("fromfd-close");
    let (keep, caller) = kept_channel_and_callers_fd(&name);
    assert!(!handles_alive(&name));
    let channel = ChannelBuilder::memfd()
        .from_fd(caller.try_clone().unwrap().into())
        .unwrap();
    let (tx, rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
    assert!(handles_alive(&name));
    drop((tx, rx, channel));
    assert!(!handles_alive(&name), "a closed channel left a lock");
    match keep.reclaim(true).create() {
        Ok(channel) => drop(channel),
        Err(e) => panic!("a closed channel left a lock: {e}"),
    }
    drop(caller);
    clean_with_bells(&name);
}

/// Cleans the channel `name` with its doorbells (removing the file alone would
/// leave them) and checks that both are gone.
fn clean_with_bells(name: &str) {
    assert!(matches!(
        shmring::clean(name).unwrap(),
        shmring::segment::CleanOutcome::Removed(_)
    ));
    assert_no_shm(name);
    let bell = std::path::PathBuf::from(format!("/dev/shm/shmring-bell.{name}.data"));
    assert!(!bell.exists(), "{} left behind", bell.display());
}

/// A `from_fd` that fails after it has looked into the segment leaves no lock on
/// the caller's descriptor either.
#[test]
fn a_failed_from_fd_open_leaves_no_lock_on_the_callers_descriptor() {
    let name = unique("fromfd-fail");
    let (keep, caller) = kept_channel_and_callers_fd(&name);
    // A header of another layout version: refused after the size checks.
    (&caller).seek(SeekFrom::Start(8)).unwrap();
    (&caller).write_all(&99u32.to_ne_bytes()).unwrap();
    match ChannelBuilder::memfd().from_fd(caller.try_clone().unwrap().into()) {
        Err(Error::IncompatibleLayout { .. }) => {}
        other => panic!("{other:?}"),
    }
    match keep.reclaim(true).create() {
        Ok(channel) => drop(channel),
        Err(e) => panic!("a failed open left a lock: {e}"),
    }
    drop(caller);
    clean_with_bells(&name);
}

/// The hot path makes no system call while nobody waits: 10,000 messages sent
/// and received through a memfd channel (each receive finds a message) cost this
/// thread none, counted at the floor every system call of the message paths goes
/// through. The same through a pipe costs at least a write and a read each, which
/// shows that the count counts.
#[test]
fn no_system_call_per_message_while_nobody_waits() {
    let channel = memfd(4096);
    let (mut tx, mut rx) = (channel.sender().unwrap(), channel.receiver().unwrap());
    assert_eq!(system_calls_for_messages(&mut tx, &mut rx, 10_000), 0);
    let (mut tx, mut rx) = shmring::transport::pipe::pipe().unwrap();
    assert!(system_calls_for_messages(&mut tx, &mut rx, 100) >= 200);
}
