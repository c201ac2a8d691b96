//! Behaviour of the SPSC ring on raw memory, one case per test.

mod common;

use common::{GuardedMemory, ring, token};
use shmring_core::spsc::layout::{FRAME_COMMITTED, FRAME_RELEASED};
use shmring_core::sync::AtomicU32;
use shmring_core::{
    ClaimError, Consumer, Corruption, DATA_OFFSET, Futex, LAYOUT_VERSION, LayoutError, PopError,
    Producer, PushError, RawRegion, ReadError, Readiness, TimedOut, max_message_len,
    segment_layout,
};

fn pop_vec(rx: &mut Consumer<RawRegion>) -> Result<Vec<u8>, PopError> {
    let mut buf = vec![0; rx.max_message_len()];
    let n = rx.pop(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn smoke() {
    let (_mem, mut tx, mut rx) = ring(1024);
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
    tx.push(b"hello").unwrap();
    tx.push(b"").unwrap();
    tx.push(b"world!!!").unwrap();
    assert_eq!(pop_vec(&mut rx).unwrap(), b"hello");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"world!!!");
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
}

#[test]
fn segment_layout_sizes() {
    let l = segment_layout(4096).unwrap();
    assert_eq!((l.size(), l.align()), (DATA_OFFSET + 4096, 128));
    for bad in [0, 1, 32, 63, 100, 4095, (1 << 29) + 1, 1 << 30, 1 << 31] {
        assert_eq!(
            segment_layout(bad),
            Err(LayoutError::InvalidCapacity {
                capacity: bad as u64
            }),
            "capacity {bad}"
        );
    }
    assert!(segment_layout(64).is_ok());
    assert!(segment_layout(1 << 29).is_ok());
}

#[test]
fn init_rejects_bad_memory() {
    let mem = GuardedMemory::new(512 + 1024);
    // SAFETY: in bounds of `mem`, which outlives every call.
    unsafe {
        assert_eq!(
            RawRegion::init(mem.ptr(), mem.len() - 1, 1024).unwrap_err(),
            LayoutError::TooSmall {
                len: mem.len() - 1,
                required: 1536
            }
        );
        assert_eq!(
            RawRegion::init(mem.ptr().add(8), mem.len() - 8, 64).unwrap_err(),
            LayoutError::Misaligned {
                addr: mem.ptr() as usize + 8,
                align: 128
            }
        );
        assert_eq!(
            RawRegion::init(mem.ptr(), mem.len(), 1000).unwrap_err(),
            LayoutError::InvalidCapacity { capacity: 1000 }
        );
    }
}

/// Writes a fresh layout, applies `corrupt` to its bytes and attaches with `len`
/// bytes; returns the capacity attached.
fn attach_after(len: usize, corrupt: impl FnOnce(&GuardedMemory)) -> Result<usize, LayoutError> {
    let mem = GuardedMemory::new(512 + 1024);
    // SAFETY: `mem` outlives the region, which is dropped inside this function.
    unsafe { RawRegion::init(mem.ptr(), mem.len(), 1024) }.unwrap();
    corrupt(&mem);
    // SAFETY: as above.
    unsafe { RawRegion::attach(mem.ptr(), len.min(mem.len())) }.map(|r| r.capacity())
}

#[test]
fn attach_accepts_a_fresh_layout() {
    let mem = GuardedMemory::new(512 + 1024);
    // SAFETY: `mem` outlives the region.
    unsafe { RawRegion::init(mem.ptr(), mem.len(), 1024) }.unwrap();
    // SAFETY: as above.
    let r = unsafe { RawRegion::attach(mem.ptr(), mem.len()) }.unwrap();
    assert_eq!(r.capacity(), 1024);
    assert_eq!(r.max_message_len(), 504);
    assert_eq!(r.segment_size(), 1536);
}

#[test]
fn attach_names_each_mismatch() {
    let put_u32 = |off: usize, v: u32| move |m: &GuardedMemory| m.poke(off, &v.to_ne_bytes());
    let put_u64 = |off: usize, v: u64| move |m: &GuardedMemory| m.poke(off, &v.to_ne_bytes());
    let magic = shmring_core::layout::MAGIC;
    type Corrupt = Box<dyn FnOnce(&GuardedMemory)>;
    let cases: Vec<(Corrupt, LayoutError)> = vec![
        (Box::new(put_u64(0, 0)), LayoutError::Uninitialized),
        (
            Box::new(put_u64(0, 42)),
            LayoutError::BadMagic { found: 42 },
        ),
        (
            Box::new(put_u64(0, magic.swap_bytes())),
            LayoutError::ForeignByteOrder,
        ),
        (
            Box::new(put_u32(8, 7)),
            LayoutError::UnsupportedVersion {
                found: 7,
                supported: LAYOUT_VERSION,
            },
        ),
        (
            Box::new(put_u32(12, 9)),
            LayoutError::WrongKind {
                found: 9,
                expected: 1,
            },
        ),
        (
            Box::new(put_u64(16, 1000)),
            LayoutError::InvalidCapacity { capacity: 1000 },
        ),
        (
            Box::new(put_u64(16, 1 << 40)),
            LayoutError::InvalidCapacity { capacity: 1 << 40 },
        ),
        (
            Box::new(put_u64(24, 256)),
            LayoutError::HeaderMismatch {
                field: "data_offset",
                found: 256,
                expected: 512,
            },
        ),
        (
            Box::new(put_u64(32, 99)),
            LayoutError::HeaderMismatch {
                field: "segment_size",
                found: 99,
                expected: 1536,
            },
        ),
        (
            Box::new(put_u32(40, 16)),
            LayoutError::HeaderMismatch {
                field: "frame_header_size",
                found: 16,
                expected: 8,
            },
        ),
        (
            Box::new(put_u32(44, 4)),
            LayoutError::HeaderMismatch {
                field: "frame_align",
                found: 4,
                expected: 8,
            },
        ),
        (
            Box::new(put_u64(48, 1000)),
            LayoutError::HeaderMismatch {
                field: "max_message_len",
                found: 1000,
                expected: 504,
            },
        ),
        (
            Box::new(put_u32(56, 0b110)),
            LayoutError::HeaderMismatch {
                field: "flags",
                found: 0b110,
                expected: 0,
            },
        ),
    ];
    for (corrupt, expected) in cases {
        assert_eq!(attach_after(usize::MAX, corrupt).unwrap_err(), expected);
    }
    // A header claiming more memory than the mapping has.
    assert_eq!(
        attach_after(usize::MAX, |m| {
            m.poke(16, &2048u64.to_ne_bytes());
            m.poke(32, &2560u64.to_ne_bytes());
            m.poke(48, &1016u64.to_ne_bytes());
        })
        .unwrap_err(),
        LayoutError::TooSmall {
            len: 1536,
            required: 2560
        }
    );
    assert_eq!(
        attach_after(100, |_| {}).unwrap_err(),
        LayoutError::TooSmall {
            len: 100,
            required: 512
        }
    );
}

#[test]
fn header_changes_after_attach_do_not_move_bounds() {
    let (mem, mut tx, mut rx) = ring(1024);
    // A hostile peer rewrites the capacity to something huge.
    mem.poke(16, &(1u64 << 30).to_ne_bytes());
    assert_eq!(tx.capacity(), 1024);
    assert_eq!(
        tx.push(&[0; 600]),
        Err(PushError::TooLarge { len: 600, max: 504 })
    );
    tx.push(&[7; 504]).unwrap();
    assert_eq!(pop_vec(&mut rx).unwrap(), vec![7; 504]);
}

#[test]
fn largest_message_and_one_byte_over() {
    // Under Miri, walking the 64 KiB ring's 8192 offsets with 64 KiB messages
    // would take hours: the smaller rings walk every offset all the same.
    let capacities: &[usize] = if cfg!(miri) {
        &[64, 128, 1024]
    } else {
        &[64, 128, 1024, 65536]
    };
    for &capacity in capacities {
        let (_mem, mut tx, mut rx) = ring(capacity);
        let max = max_message_len(capacity);
        assert_eq!(tx.max_message_len(), max);
        assert_eq!(
            tx.push(&vec![1; max + 1]),
            Err(PushError::TooLarge { len: max + 1, max })
        );
        assert!(tx.grant(max + 1).is_err());
        // The largest message fits, once the consumer has caught up, whatever the
        // write offset (this walks every 8-byte offset of the data region).
        for step in 0..capacity / 8 {
            let payload: Vec<u8> = (0..max).map(|i| (i + step) as u8).collect();
            tx.push(&payload)
                .unwrap_or_else(|e| panic!("capacity {capacity} step {step}: {e}"));
            assert_eq!(pop_vec(&mut rx).unwrap(), payload);
            // Move the write position on by one small frame (8 bytes: empty message).
            tx.push(b"").unwrap();
            assert_eq!(pop_vec(&mut rx).unwrap(), b"");
        }
    }
}

#[test]
fn full_then_empty() {
    let (_mem, mut tx, mut rx) = ring(256);
    let mut pushed = 0u32;
    let err = loop {
        match tx.push(&pushed.to_le_bytes()) {
            Ok(()) => pushed += 1,
            Err(e) => break e,
        }
    };
    // 16-byte frames; one header slot stays free after the last frame.
    assert_eq!(pushed, 15);
    assert_eq!(
        err,
        PushError::Full {
            needed: 24,
            free: 16
        }
    );
    for i in 0..pushed {
        assert_eq!(pop_vec(&mut rx).unwrap(), i.to_le_bytes());
    }
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
    // Found empty: the consumer published its position, so all the space is back.
    tx.push(&[1; 100]).unwrap();
}

#[test]
fn buffer_too_small_consumes_nothing() {
    let (_mem, mut tx, mut rx) = ring(1024);
    tx.push(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        rx.pop(&mut small),
        Err(PopError::BufferTooSmall { len: 10, buffer: 4 })
    );
    assert_eq!(pop_vec(&mut rx).unwrap(), b"0123456789");
}

#[test]
fn grant_committed_short_and_grant_dropped() {
    let (_mem, mut tx, mut rx) = ring(1024);
    let mut g = tx.grant(100).unwrap();
    assert_eq!(g.len(), 100);
    g[..3].copy_from_slice(b"abc");
    g.commit(3);
    {
        let _uncommitted = tx.grant(50).unwrap(); // dropped: commits nothing
    }
    tx.push(b"next").unwrap();
    assert_eq!(pop_vec(&mut rx).unwrap(), b"abc");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"next");
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
}

#[test]
#[should_panic(expected = "commit of 11 bytes exceeds the grant of 10")]
fn commit_beyond_grant_panics() {
    let (_mem, mut tx, _rx) = ring(1024);
    tx.grant(10).unwrap().commit(11);
}

#[test]
fn read_in_place_and_release() {
    let (_mem, mut tx, mut rx) = ring(1024);
    tx.push(b"first").unwrap();
    tx.push(b"second").unwrap();
    {
        let m = rx.read().unwrap();
        assert_eq!(&*m, b"first");
        // dropped without release: stays
    }
    let m = rx.read().unwrap();
    assert_eq!(&*m, b"first");
    m.release();
    let m = rx.read().unwrap();
    assert_eq!(&*m, b"second");
    m.release();
    assert_eq!(rx.read().unwrap_err(), ReadError::Empty);
}

#[test]
fn wrap_around_with_padding_keeps_order() {
    let (_mem, mut tx, mut rx) = ring(128);
    // 128 bytes: frames of 8 + len rounded to 8. Sizes chosen to force padding.
    let mut expected = std::collections::VecDeque::new();
    for round in 0..200u32 {
        let len = [1, 20, 33, 7, 56, 0, 12][round as usize % 7];
        let msg: Vec<u8> = (0..len).map(|i| (i as u32 + round) as u8).collect();
        while let Err(PushError::Full { .. }) = tx.push(&msg) {
            expected
                .pop_front()
                .map(|m: Vec<u8>| assert_eq!(pop_vec(&mut rx).unwrap(), m))
                .unwrap();
        }
        expected.push_back(msg);
    }
    while let Some(m) = expected.pop_front() {
        assert_eq!(pop_vec(&mut rx).unwrap(), m);
    }
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
}

#[test]
fn batch_is_invisible_until_published() {
    let (_mem, mut tx, mut rx) = ring(1024);
    let mut batch = tx.batch();
    batch.push(b"a").unwrap();
    batch.push(b"b").unwrap();
    let mut g = batch.grant(4).unwrap();
    g.copy_from_slice(b"cccc");
    g.commit(4);
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
    batch.publish();
    assert_eq!(pop_vec(&mut rx).unwrap(), b"a");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"b");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"cccc");
    // Dropping a batch publishes it too.
    {
        let mut batch = tx.batch();
        batch.push(b"d").unwrap();
    }
    assert_eq!(pop_vec(&mut rx).unwrap(), b"d");
}

#[test]
fn consumer_publishes_lazily() {
    let (mem, mut tx, mut rx) = ring(1024);
    let read_position = || u64::from_ne_bytes(mem.peek::<8>(256));
    for _ in 0..4 {
        tx.push(&[0; 8]).unwrap(); // 16-byte frames
    }
    pop_vec(&mut rx).unwrap();
    pop_vec(&mut rx).unwrap();
    assert_eq!(read_position(), 0, "released but not yet published");
    pop_vec(&mut rx).unwrap();
    pop_vec(&mut rx).unwrap();
    assert_eq!(read_position(), 64, "published once caught up");
    for _ in 0..20 {
        tx.push(&[0; 8]).unwrap();
    }
    for _ in 0..16 {
        pop_vec(&mut rx).unwrap();
    }
    assert_eq!(
        read_position(),
        64 + 256,
        "published after a quarter of the capacity"
    );
}

#[test]
fn roles_are_claimed_once() {
    let (mem, tx, rx) = ring(1024);
    // SAFETY: `mem` outlives the region.
    let region = unsafe { RawRegion::attach(mem.ptr(), mem.len()) }.unwrap();
    assert_eq!(
        Producer::claim(region.clone(), token(9)).unwrap_err(),
        ClaimError::Taken { owner: 1 }
    );
    assert_eq!(
        Consumer::claim(region.clone(), token(9)).unwrap_err(),
        ClaimError::Taken { owner: 2 }
    );
    drop(tx);
    drop(rx);
    let _tx = Producer::claim(region.clone(), token(3)).unwrap();
    let _rx = Consumer::claim(region, token(4)).unwrap();
}

#[test]
fn producer_taken_over_after_crash_keeps_committed_messages() {
    let (mem, mut tx, mut rx) = ring(256);
    tx.push(b"one").unwrap();
    tx.push(b"two").unwrap();
    tx.grant(30).unwrap().fill(0xee); // written, never committed
    // The producer "dies" mid-grant: no drop, the claim word still names it.
    std::mem::forget(tx);
    // SAFETY: `mem` outlives the region.
    let region = unsafe { RawRegion::attach(mem.ptr(), mem.len()) }.unwrap();
    assert_eq!(
        Producer::claim(region.clone(), token(5)).unwrap_err(),
        ClaimError::Taken { owner: 1 }
    );
    // SAFETY: the forgotten handle is never used again.
    let mut tx = unsafe { Producer::take_over(region, token(5), token(1)) }.unwrap();
    tx.push(b"three").unwrap();
    for expected in [&b"one"[..], b"two", b"three"] {
        assert_eq!(pop_vec(&mut rx).unwrap(), expected);
    }
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
}

#[test]
fn consumer_taken_over_after_crash_gets_unreleased_not_released() {
    let (mem, mut tx, mut rx) = ring(1024);
    for m in [&b"a"[..], b"b", b"c", b"d"] {
        tx.push(m).unwrap();
    }
    assert_eq!(pop_vec(&mut rx).unwrap(), b"a");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"b");
    assert_eq!(&*rx.read().unwrap(), b"c"); // read, never released
    // The consumer "dies" holding "c": released "a" and "b" were never published.
    std::mem::forget(rx);
    assert_eq!(u64::from_ne_bytes(mem.peek::<8>(256)), 0);
    // SAFETY: `mem` outlives the region.
    let region = unsafe { RawRegion::attach(mem.ptr(), mem.len()) }.unwrap();
    // SAFETY: the forgotten handle is never used again.
    let mut rx = unsafe { Consumer::take_over(region, token(6), token(2)) }.unwrap();
    assert_eq!(pop_vec(&mut rx).unwrap(), b"c");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"d");
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
}

#[test]
fn a_release_is_published_or_marked_in_place() {
    let (mem, mut tx, mut rx) = ring(1024);
    tx.push(b"xy").unwrap();
    tx.push(b"zw").unwrap();
    let word = |at: usize| u32::from_ne_bytes(mem.peek::<4>(512 + at));
    let read_position = || u64::from_ne_bytes(mem.peek::<8>(256));
    assert_eq!(word(0), FRAME_COMMITTED | 2);
    // Another message follows: the position is not published, the frame is marked,
    // so that a successor would skip it.
    pop_vec(&mut rx).unwrap();
    assert_eq!(word(0), FRAME_COMMITTED | FRAME_RELEASED | 2);
    assert_eq!(read_position(), 0);
    // Caught up: the position is published past the frame, which stays unmarked
    // (the producer's next frame may share its line).
    pop_vec(&mut rx).unwrap();
    assert_eq!(word(16), FRAME_COMMITTED | 2);
    assert_eq!(read_position(), 32);
}

#[test]
fn consumer_reports_a_bad_frame_and_stays_put() {
    let (mem, mut tx, mut rx) = ring(1024);
    tx.push(b"ok").unwrap();
    // A frame header with the committed bit and an absurd length.
    mem.poke(512, &(FRAME_COMMITTED | 5000).to_ne_bytes());
    let err = Err(ReadError::Corrupted(Corruption::FrameTooLong {
        position: 0,
        len: 5000,
        limit: 504,
    }));
    assert_eq!(rx.read().map(|m| m.len()), err);
    assert_eq!(rx.read().map(|m| m.len()), err);
    mem.poke(512, &0x1234u32.to_ne_bytes());
    assert_eq!(
        rx.read().map(|m| m.len()),
        Err(ReadError::Corrupted(Corruption::BadFrameHeader {
            position: 0,
            word: 0x1234
        }))
    );
}

#[test]
fn producer_reports_a_read_position_that_runs_ahead() {
    let (mem, mut tx, _rx) = ring(256);
    while tx.push(&[0; 8]).is_ok() {}
    mem.poke(256, &100_000u64.to_ne_bytes());
    assert_eq!(
        tx.push(&[0; 8]),
        Err(PushError::Corrupted(Corruption::ReadPosition {
            found: 100_000,
            min: 0,
            max: 240
        }))
    );
}

#[test]
fn backlog_follows_the_producer() {
    let (mem, mut tx, mut rx) = ring(1024);
    assert_eq!(rx.backlog(), Ok(0));
    tx.push(&[0; 8]).unwrap();
    tx.push(&[0; 24]).unwrap();
    assert_eq!(rx.backlog(), Ok(48));
    pop_vec(&mut rx).unwrap();
    assert_eq!(rx.backlog(), Ok(32));
    mem.poke(128, &8u64.to_ne_bytes());
    assert_eq!(
        rx.backlog(),
        Err(Corruption::WritePosition {
            found: 8,
            min: 48,
            max: 1024
        })
    );
}

#[test]
fn handles_are_send_not_sync() {
    fn is_send<T: Send>() {}
    is_send::<Producer<RawRegion>>();
    is_send::<Consumer<RawRegion>>();
    // Not Sync: checked by the compile_fail doctests on `Producer` and `Consumer`.
}

#[test]
fn errors_display_lowercase_with_values() {
    assert_eq!(
        PushError::TooLarge { len: 9, max: 8 }.to_string(),
        "message too large: 9 bytes, at most 8"
    );
    assert_eq!(
        PopError::BufferTooSmall { len: 10, buffer: 4 }.to_string(),
        "buffer too small: message is 10 bytes, buffer 4"
    );
    assert_eq!(
        LayoutError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
        .to_string(),
        "incompatible layout version 2 (this build supports 1)"
    );
}

#[test]
fn read_batch_releases_with_one_publication() {
    let (mem, mut tx, mut rx) = ring(1024);
    let read_position = || u64::from_ne_bytes(mem.peek::<8>(256));
    assert_eq!(rx.read_batch(8, |_| panic!("empty ring")), Ok(0));
    for i in 0..5u8 {
        tx.push(&[i; 3]).unwrap(); // 16-byte frames
    }
    let mut seen = Vec::new();
    assert_eq!(rx.read_batch(3, |m| seen.push(m.to_vec())), Ok(3));
    assert_eq!(seen, vec![vec![0; 3], vec![1; 3], vec![2; 3]]);
    assert_eq!(read_position(), 48, "published once, after the batch");
    // Not marked RELEASED: the position covers them.
    assert_eq!(u32::from_ne_bytes(mem.peek::<4>(512)), FRAME_COMMITTED | 3);
    seen.clear();
    assert_eq!(rx.read_batch(10, |m| seen.push(m.to_vec())), Ok(2));
    assert_eq!(seen, vec![vec![3; 3], vec![4; 3]]);
    assert_eq!(read_position(), 80);
    assert_eq!(pop_vec(&mut rx), Err(PopError::Empty));
}

#[test]
fn read_batch_that_panics_releases_nothing() {
    let (_mem, mut tx, mut rx) = ring(1024);
    for i in 0..3u8 {
        tx.push(&[i]).unwrap();
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = rx.read_batch(3, |m| assert_ne!(m, [1], "fails on the second"));
    }));
    assert!(result.is_err());
    assert_eq!(pop_vec(&mut rx).unwrap(), [0]);
}

#[test]
fn read_batch_stops_before_a_bad_frame() {
    let (mem, mut tx, mut rx) = ring(1024);
    tx.push(b"good").unwrap();
    tx.push(b"bad!").unwrap();
    mem.poke(512 + 16, &0x0000_0042u32.to_ne_bytes());
    assert_eq!(rx.read_batch(8, |m| assert_eq!(m, b"good")), Ok(1));
    assert_eq!(
        rx.read_batch(8, |_| ()),
        Err(Corruption::BadFrameHeader {
            position: 16,
            word: 0x42
        })
    );
}

/// Counts doorbell rings and futex wakes; never sleeps.
#[derive(Default)]
struct CountingFutex {
    rings: std::cell::Cell<u32>,
    wakes: std::cell::Cell<u32>,
}

impl Futex for CountingFutex {
    type Deadline = ();

    fn wait(&self, _: &AtomicU32, _: u32, _: Option<()>) -> Result<(), TimedOut> {
        Err(TimedOut)
    }

    fn wake(&self, _: &AtomicU32) {
        self.wakes.set(self.wakes.get() + 1);
    }

    fn has_doorbell(&self, _: &AtomicU32) -> bool {
        true
    }

    fn ring_doorbell(&self, _: &AtomicU32) {
        self.rings.set(self.rings.get() + 1);
    }
}

/// An armed consumer is rung once per arming: the first notification after it
/// armed rings, later ones (nobody re-armed) make no call; arming with a message
/// there answers `Ready`. Nobody sleeps on the futex, so nothing is woken.
#[test]
fn an_armed_consumer_is_rung_once_per_arming() {
    let (_mem, mut tx, mut rx) = ring(1024);
    let futex = CountingFutex::default();
    assert_eq!(rx.arm_for_message(&futex), Readiness::Armed);
    tx.push(b"one").unwrap();
    tx.wake_consumer(&futex);
    assert_eq!(futex.rings.get(), 1);
    tx.push(b"two").unwrap();
    tx.wake_consumer(&futex);
    assert_eq!(futex.rings.get(), 1, "rung again without a new arming");
    assert_eq!(rx.arm_for_message(&futex), Readiness::Ready);
    assert_eq!(pop_vec(&mut rx).unwrap(), b"one");
    assert_eq!(pop_vec(&mut rx).unwrap(), b"two");
    assert_eq!(rx.arm_for_message(&futex), Readiness::Armed);
    tx.push(b"three").unwrap();
    tx.wake_consumer(&futex);
    assert_eq!(futex.rings.get(), 2);
    assert_eq!(futex.wakes.get(), 0);
}

/// A producer armed for room on a full ring is rung by the consumer's release
/// notification; `TooLarge` is an error, not an arming.
#[test]
fn an_armed_producer_is_rung_when_room_appears() {
    let (_mem, mut tx, mut rx) = ring(64);
    let futex = CountingFutex::default();
    while tx.push(&[7; 8]).is_ok() {}
    assert_eq!(tx.arm_for_space(8, &futex), Ok(Readiness::Armed));
    assert!(tx.arm_for_space(4096, &futex).is_err());
    // Reading until empty publishes the releases.
    while pop_vec(&mut rx).is_ok() {}
    rx.wake_producer(&futex);
    assert_eq!(futex.rings.get(), 1);
    assert_eq!(tx.arm_for_space(8, &futex), Ok(Readiness::Ready));
}
