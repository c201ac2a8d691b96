//! The read-only header parsers that tools use on `pread` copies
//! (`SegmentInfo`, `MpmcInfo`, `BroadcastInfo`, `ObjectSnapshot`) give the same
//! verdict as `attach` on the same bytes: on a fresh header, and with each header
//! byte changed in turn (so a field one checks and the other ignores fails here);
//! and they read the counters a live ring has moved.

use std::num::NonZeroU32;

use shmring_core::broadcast::layout::{data_segment_size, table_segment_size};
use shmring_core::broadcast::{
    BroadcastConfig, BroadcastInfo, BroadcastPublisher, Policy, RawBroadcastRegion,
};
use shmring_core::mpmc::{MpmcInfo, MpmcProducer};
use shmring_core::object::layout::{OBJECT_SIZE, ObjectLayout, ObjectSnapshot};
use shmring_core::{DATA_OFFSET, LayoutError, RawMpmcRegion, RawRegion, SegmentInfo};

#[repr(C, align(128))]
struct Mem<const N: usize>([u8; N]);

/// Heap memory of `N` bytes on a 128-byte boundary, zeroed.
fn mem<const N: usize>() -> Box<Mem<N>> {
    Box::new(Mem([0; N]))
}

/// Values written over each header byte in turn.
const FLIPS: [u8; 3] = [0x00, 0x01, 0xff];

#[test]
fn spsc_parse_agrees_with_attach() {
    const LEN: usize = DATA_OFFSET + 1024;
    let mut m = mem::<LEN>();
    let ptr = m.0.as_mut_ptr();
    // SAFETY: `m` outlives every region made over it; nothing else touches it.
    unsafe { RawRegion::init(ptr, LEN, 1024) }.unwrap();
    for at in 0..128 {
        let saved = m.0[at];
        for value in FLIPS {
            m.0[at] = value;
            let copy = m.0;
            let parsed = SegmentInfo::parse(&copy, LEN as u64).map(|_| ());
            // SAFETY: as above; attach only reads the header.
            let attached = unsafe { RawRegion::attach(m.0.as_mut_ptr(), LEN) }.map(|_| ());
            assert_eq!(parsed, attached, "byte {at} = {value:#x}");
        }
        m.0[at] = saved;
    }
}

#[test]
fn mpmc_parse_agrees_with_attach_and_reads_the_counters() {
    const LEN: usize = 8192;
    let mut m = mem::<LEN>();
    let ptr = m.0.as_mut_ptr();
    // SAFETY: as in the SPSC test.
    let region = unsafe { RawMpmcRegion::init(ptr, LEN, 4, 32, 2) }.unwrap();
    let mut tx = MpmcProducer::register(region, NonZeroU32::new(7).unwrap()).unwrap();
    tx.push(b"one").unwrap();
    tx.push(b"two").unwrap();
    drop(tx);
    let info = MpmcInfo::parse(&m.0, LEN as u64).unwrap();
    assert_eq!((info.tail, info.head), (2, 0));
    assert_eq!(info.producers_registered, 1);
    assert_eq!(info.geometry.slots(), 4);
    for at in 0..128 {
        let saved = m.0[at];
        for value in FLIPS {
            m.0[at] = value;
            let copy = m.0;
            let parsed = MpmcInfo::parse(&copy, LEN as u64).map(|_| ());
            // SAFETY: as above.
            let attached = unsafe { RawMpmcRegion::attach(m.0.as_mut_ptr(), LEN) }.map(|_| ());
            assert_eq!(parsed, attached, "byte {at} = {value:#x}");
        }
        m.0[at] = saved;
    }
}

#[test]
fn broadcast_parse_agrees_with_attach_and_reads_the_counters() {
    const DATA: usize = data_segment_size(1024);
    const TABLE: usize = table_segment_size(2);
    let (mut d, mut t) = (mem::<DATA>(), mem::<TABLE>());
    let config = BroadcastConfig {
        capacity: 1024,
        slots: 2,
        policy: Policy::Gated,
        cut_off_after_ms: 10,
        flags: 0,
        topic_id: 0x5eed,
    };
    // SAFETY: both buffers outlive the region; nothing else touches them.
    let region = unsafe {
        RawBroadcastRegion::init(d.0.as_mut_ptr(), DATA, t.0.as_mut_ptr(), TABLE, config)
    }
    .unwrap();
    let mut publisher = BroadcastPublisher::claim(region, NonZeroU32::new(9).unwrap()).unwrap();
    publisher.try_publish(b"hello").unwrap();
    drop(publisher);
    let info = BroadcastInfo::parse(&d.0, DATA as u64, &t.0, TABLE as u64).unwrap();
    assert_eq!(info.config, config);
    assert_eq!(info.write_seq, 1);
    assert_eq!(info.publisher_claims, 1);
    for table in [false, true] {
        for at in 0..128 {
            let saved = if table { t.0[at] } else { d.0[at] };
            for value in FLIPS.into_iter().chain([saved]) {
                if table {
                    t.0[at] = value;
                } else {
                    d.0[at] = value;
                }
                let (dc, tc) = (d.0, t.0);
                let parsed = BroadcastInfo::parse(&dc, DATA as u64, &tc, TABLE as u64).map(|_| ());
                // SAFETY: as above; attach only reads the headers.
                let attached = unsafe {
                    RawBroadcastRegion::attach(d.0.as_mut_ptr(), DATA, t.0.as_mut_ptr(), TABLE)
                }
                .map(|_| ());
                assert_eq!(parsed, attached, "table {table}, byte {at} = {value:#x}");
            }
        }
    }
}

#[test]
fn object_parse_agrees_with_attach() {
    // Made in zeroed memory, not by `ObjectLayout::new()`: a value's padding is
    // uninitialised, and reading it as bytes is undefined behaviour (Miri).
    let mut fresh = mem::<OBJECT_SIZE>();
    let layout = fresh.0.as_mut_ptr().cast::<ObjectLayout>();
    // SAFETY: OBJECT_SIZE zeroed bytes on a 128-byte boundary, alive and not
    // otherwise borrowed while `object` is used; any bit pattern is a valid
    // `ObjectLayout` (atomics only).
    let object = unsafe { &*layout };
    object.init(shmring_core::layout::OBJECT_KIND_SEMAPHORE, 5, 2);
    let bytes: [u8; OBJECT_SIZE] = fresh.0;
    let snapshot = ObjectSnapshot::parse(&bytes, OBJECT_SIZE as u64).unwrap();
    assert_eq!((snapshot.word, snapshot.info.max_count), (2, 5));
    assert_eq!(
        ObjectSnapshot::parse(&bytes, 100),
        Err(LayoutError::TooSmall {
            len: 100,
            required: OBJECT_SIZE as u64
        })
    );
    for at in 0..128 {
        for value in FLIPS {
            let mut copy = bytes;
            copy[at] = value;
            let parsed = ObjectSnapshot::parse(&copy, OBJECT_SIZE as u64).map(|s| s.info);
            let mut held = Box::new(Mem(copy));
            // SAFETY: OBJECT_SIZE bytes on a 128-byte boundary, alive for the
            // borrow; any bit pattern is a valid `ObjectLayout` (atomics only).
            // Through a pointer from a mutable borrow: its atomics may be written.
            let mutated = unsafe { &*held.0.as_mut_ptr().cast::<ObjectLayout>() };
            let attached = mutated.attach();
            assert_eq!(parsed, attached, "byte {at} = {value:#x}");
        }
    }
}
