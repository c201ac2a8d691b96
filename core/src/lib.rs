//! The lock-free ring at the heart of shmring, over caller-provided memory.
//!
//! `#![no_std]`, no allocation, no system calls. A single-producer single-consumer
//! ring of variable-length messages whose whole state lives in one `#[repr(C)]`
//! segment (see [`spsc::layout`]), so that two processes, or a Rust and a C program, can
//! share it through mapped memory:
//!
//! - **zero-copy** ([`Producer::grant`] → [`Grant::commit`], [`Consumer::read`] →
//!   [`Message::release`]) and **copying** ([`Producer::push`], [`Consumer::pop`]);
//! - **batching**: [`Producer::batch`] publishes several messages with one store,
//!   [`Consumer::read_batch`] releases several with one, and the consumer publishes
//!   its position lazily;
//! - **one cache line per small message**: the consumer polls the frame header,
//!   written last with Release, not the producer's position;
//! - **hostile-peer safe**: every position, length and header word read from the
//!   segment is read once and validated; a corrupt segment yields
//!   [`Corruption`] errors or garbage payload bytes, never an out-of-bounds access,
//!   a panic or an unbounded loop;
//! - **crash-consistent**: a producer or consumer that dies can be replaced
//!   ([`Producer::take_over`], [`Consumer::take_over`]); committed messages are
//!   kept, released ones are not delivered again;
//! - **blocking without system calls in core**: an eventcount ([`wait`]) over a
//!   caller-supplied [`Futex`]; when nobody waits, publishing costs a fence (a
//!   compiler fence with the asymmetric pair) and a
//!   load, no system call and no read-modify-write.
//!
//! Beside it, [`mpmc`]: a bounded multi-producer multi-consumer ring of fixed-size
//! slots in the same layout family ([`MpmcProducer`], [`MpmcConsumer`]), copying,
//! crash-consistent through an endpoint table and a caller-supplied [`Liveness`];
//! and [`object`]: the layout and protocols of named events and counting
//! semaphores (a sequence and a count, each on one futex word), on the same
//! [`Futex`] and the same fence pair as the rings' waits; and [`state`]: shared
//! state, a value published by one writer under a seqlock
//! ([`state::value`]) over a header common to it and the robust mutex.
//!
//! The algorithm is written once against [`Region`]; the model checks in
//! `shmring-loom-tests` run it under loom through the [`sync`] facade
//! (`--cfg shmring_loom`).
//!
//! ```
//! use core::num::NonZeroU32;
//! use shmring_core::{Consumer, Producer, RawRegion, segment_layout};
//!
//! #[repr(C, align(128))]
//! struct Mem([u8; 512 + 4096]);
//! let mut mem = Mem([0; 512 + 4096]);
//! assert_eq!(segment_layout(4096)?.size(), mem.0.len());
//!
//! // `mem` outlives the handles and is touched only through them.
//! let region = unsafe { RawRegion::init(mem.0.as_mut_ptr(), mem.0.len(), 4096) }?;
//! let token = NonZeroU32::new(1).unwrap();
//! let (mut tx, mut rx) = (Producer::claim(region.clone(), token)?, Consumer::claim(region, token)?);
//! tx.push(b"ping")?;
//! let mut buf = [0u8; 16];
//! let n = rx.pop(&mut buf)?;
//! assert_eq!(&buf[..n], b"ping");
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
#![cfg_attr(not(shmring_loom), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]

pub mod broadcast;
pub mod error;
pub mod layout;
pub mod mpmc;
pub mod object;
pub mod spsc;
pub mod state;
pub mod sync;
pub mod wait;

pub use error::{LayoutError, TimedOut};
pub use layout::{FLAG_ASYMMETRIC_FENCES, LAYOUT_VERSION, SEGMENT_ALIGN};
#[cfg(not(shmring_loom))]
pub use mpmc::RawMpmcRegion;
pub use mpmc::layout::{MpmcGeometry, mpmc_segment_layout};
pub use mpmc::{
    Liveness, MpmcConsumer, MpmcCorruption, MpmcLayoutError, MpmcPopError, MpmcProducer,
    MpmcPushError, MpmcRegion, MpmcRegisterError, MpmcStats, MpmcWaitError, Recovery,
};
pub use spsc::Region;
pub use spsc::layout::{
    DATA_OFFSET, FRAME_HEADER_SIZE, MAX_CAPACITY, MIN_CAPACITY, max_message_len, segment_layout,
};
pub use spsc::{
    Batch, ClaimError, Consumer, Corruption, Grant, Message, PopError, Producer, PushError,
    ReadError, RunGrant, WaitError,
};
#[cfg(not(shmring_loom))]
pub use spsc::{RawRegion, SegmentInfo};
pub use wait::{Futex, Readiness};
