//! The C ABI's cost per call, in one thread with no peer: an 8-byte `try_send`
//! then `try_recv` on one channel, through the Rust API and through the C ABI's
//! message family (`shmring_msg_sender_try_send`, `shmring_msg_receiver_try_recv`,
//! called from Rust: the same code C calls). The difference is what the handle
//! rule (NULL and kind checks, state flag, panic barrier, the endpoint lookup)
//! adds to two calls; the comparison program's `busy-spin-c` row shows what it
//! adds to a round trip between processes.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;

use criterion::{Criterion, criterion_group, criterion_main};
use shmring::{ChannelBuilder, SegmentBuilder, WaitStrategy};
use shmring_c::*;

const CAPACITY: usize = 4096;

fn rust_api(c: &mut Criterion) {
    let channel = ChannelBuilder::memfd()
        .capacity(CAPACITY)
        .wait_strategy(WaitStrategy::BusySpin)
        .create()
        .expect("channel");
    let mut tx = channel.sender().expect("sender");
    let mut rx = channel.receiver().expect("receiver");
    let message = [7u8; 8];
    let mut buf = [0u8; 8];
    c.bench_function("rust_try_send_try_recv_8B", |b| {
        b.iter(|| {
            tx.try_send(black_box(&message)).expect("send");
            black_box(rx.try_recv(&mut buf).expect("recv"));
        });
    });
}

fn c_abi(c: &mut Criterion) {
    let mut channel = ptr::null_mut();
    let mut sender = ptr::null_mut();
    let mut receiver = ptr::null_mut();
    // SAFETY: valid pointers; the handles are closed below, once.
    unsafe {
        let mut options = std::mem::zeroed();
        assert_eq!(shmring_channel_options_init(&mut options), 0);
        options.wait_strategy = shmring_wait_strategy::WAIT_BUSY_SPIN as u32;
        assert_eq!(
            shmring_channel_create_memfd(CAPACITY, &options, &mut channel),
            0
        );
        assert_eq!(shmring_sender_new(channel, &mut sender), 0);
        assert_eq!(shmring_receiver_new(channel, &mut receiver), 0);
    }
    // SAFETY: live handles; the views live no longer than they do.
    let (tx, rx) = unsafe {
        (
            shmring_sender_as_msg_sender(sender),
            shmring_receiver_as_msg_receiver(receiver),
        )
    };
    let message = [7u8; 8];
    let mut buf = [0u8; 8];
    c.bench_function("c_try_send_try_recv_8B", |b| {
        b.iter(|| {
            let mut len = 0usize;
            // SAFETY: live handles used by this thread only; valid buffers.
            unsafe {
                assert_eq!(
                    shmring_msg_sender_try_send(
                        tx,
                        black_box(message.as_ptr().cast::<c_void>()),
                        8
                    ),
                    0
                );
                assert_eq!(
                    shmring_msg_receiver_try_recv(
                        rx,
                        buf.as_mut_ptr().cast::<c_void>(),
                        8,
                        &mut len
                    ),
                    0
                );
            }
            black_box(len);
        });
    });
    // SAFETY: live handles, closed once.
    unsafe {
        assert_eq!(shmring_sender_close(sender), 0);
        assert_eq!(shmring_receiver_close(receiver), 0);
        assert_eq!(shmring_channel_close(channel), 0);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = rust_api, c_abi
}
criterion_main!(benches);
