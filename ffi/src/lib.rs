//! The C ABI of shmring: `libshmring_c.so` / `libshmring_c.a` and the header
//! `include/shmring.h`, generated from this crate by cbindgen (see `ffi/README.md`).
//!
//! # Shape
//!
//! - A **channel** (`shmring_channel`) is a created or opened segment: named shared
//!   memory (`shmring_channel_create`/`_open`), a file (`_create_file`/`_open_file`)
//!   or an anonymous memfd (`_create_memfd`, `shmring_channel_fd`, `_open_fd`).
//! - From it, a **sender** (`shmring_sender_new`) and a **receiver**
//!   (`shmring_receiver_new`) claim the two roles. Each keeps the segment mapped:
//!   the channel may be closed as soon as the endpoints are made.
//! - **One message family** for every endpoint that sends or receives: a sending
//!   endpoint of any kind is a `shmring_msg_sender` (an SPSC sender through
//!   `shmring_sender_as_msg_sender`, an MPMC sender through
//!   `shmring_mpmc_sender_as_msg_sender`, a connection through
//!   `shmring_connection_as_msg_sender`, a transport's sender as it is), and a
//!   receiving one a `shmring_msg_receiver`. The copying calls are theirs
//!   (`shmring_msg_sender_try_send`/`_send`/`_send_timeout`,
//!   `shmring_msg_receiver_try_recv`/`_recv`/`_recv_timeout`), and so are the
//!   readiness calls (`_readiness_fd`, `_arm_for_space`/`_arm_for_message`,
//!   `_wakeups`). A view is the same handle, never closed itself.
//! - What one kind alone does stays its own: SPSC zero-copy grants
//!   (`shmring_sender_grant`/`commit`) and reads (`shmring_receiver_read`/
//!   `release`), batches and records; MPMC statistics; a connection's transport.
//! - An **MPMC channel** (`shmring_mpmc`, `shmring_mpmc_create`/`_open`) takes any
//!   number of senders and receivers (`shmring_mpmc_sender_new`,
//!   `shmring_mpmc_receiver_new`) up to its endpoint table's size.
//! - The **address-based transports** (`unix:/path`, `seqpacket:/path`,
//!   `tcp://host:port`, `fifo:/path`, `mq:name`, `shm:name`, `file:/path`): a
//!   receiver `shmring_listen`s and accepts a `shmring_msg_receiver` per sender; a
//!   sender `shmring_connect_sender`s a `shmring_msg_sender`.
//! - **Connections** (`shmring::connection`): a service `shmring_conn_listener_bind`s a
//!   name (or `tcp://host:port`) and accepts a duplex `shmring_connection` per client;
//!   a client `shmring_connect`s one. It runs over two shared-memory rings, or over
//!   the socket where shared memory cannot be had (`shmring_connection_transport`
//!   says which).
//! - **Readiness descriptors** for event loops: every sender and receiver, SPSC
//!   and MPMC, and every connection has a descriptor
//!   (`shmring_msg_*_readiness_fd`) that becomes readable after an arm call
//!   returned `SHMRING_ARMED`, when a message (room) arrives or the peer goes;
//!   `shmring_msg_*_wakeups` says whether it is rung by the peer or polled.
//! - **Request/response** over two channels: a `shmring_rpc_client`
//!   (`shmring_rpc_client_new`, `shmring_rpc_call`) and a `shmring_rpc_server`
//!   (`shmring_rpc_server_new`, `shmring_rpc_serve_one` with a C handler), each
//!   made from the two channel handles, which they do not consume.
//! - **Shared values** (`shmring_shared_value`, `shmring_shared_value_create`/
//!   `_open`/`_open_or_create`, `_create_memfd`/`_open_fd`): a value of fixed
//!   size published by one writer (`shmring_shared_value_writer_new`,
//!   `_writer_write`) and read, never torn, with its version by any number of
//!   processes (`shmring_shared_value_read`, `_wait_for_version`).
//! - **Shared mutexes** (`shmring_shared_mutex`, `shmring_shared_mutex_create`/
//!   `_open`/`_open_or_create`, `_create_memfd`/`_open_fd`): a value of fixed
//!   size under a robust lock (`shmring_shared_mutex_lock`, `_try_lock`,
//!   `_unlock`; `_read`/`_write` while holding it); a holder's death is
//!   `SHMRING_E_OWNER_DIED`, returned with the lock held
//!   (`shmring_shared_mutex_mark_consistent`).
//!
//! # Conventions
//!
//! - Every fallible function returns an `int`: `SHMRING_OK` (0) or a negative
//!   [`shmring_status`]. [`shmring_last_error_message`] has the details. The
//!   exceptions return a non-negative value on success instead of `SHMRING_OK`:
//!   `shmring_*_readiness_fd` (the descriptor) and the arm calls
//!   (`SHMRING_READY` or `SHMRING_ARMED`).
//! - Results go through out-pointers. On failure, constructors, grants, reads and
//!   receives leave theirs NULL or 0, except a receive's `out_len` on
//!   `SHMRING_E_BUFFER_TOO_SMALL` (the length needed) and a batch's count (what was
//!   done before the failure).
//! - NULL pointers, handles of the wrong kind, sizes above `PTRDIFF_MAX`
//!   (`SHMRING_E_INVALID_ARGUMENT`), bad names and unknown flags return a code,
//!   never crash. A Rust panic never unwinds into C: it returns `SHMRING_E_PANIC`,
//!   and the handle it happened on returns it from every later call but close.
//! - Every handle follows one rule (module `handle`): made by `construct`, called
//!   through `call`/`call_ref`/`call_in`, freed by `close`, each checking NULL,
//!   the handle's kind and state, and catching panics. The pointer rules every
//!   function's `# Safety` refers to are in the header's preamble
//!   (`ffi/cbindgen.toml`).
//!
//! # Ownership
//!
//! Each `shmring_*_new`/`_create`/`_open` returns a handle that the caller owns and
//! frees with the matching `shmring_*_close` (closing NULL is a no-op). Pointers
//! from a grant or a read are borrowed from the handle until commit/abort or
//! release/unread. Strings returned by the library are static, thread-local or
//! owned by a handle (a `_wakeups` reason, valid until the handle's `_close`):
//! never free them. A readiness descriptor is owned by its handle likewise: never
//! close it.
//!
//! # Threads
//!
//! A sender or receiver handle is used by one thread at a time: calling it from two
//! threads at once is undefined behaviour. It may move between threads (one thread
//! after another, with the caller's own synchronisation in between). Different
//! handles may be used from different threads at the same time. A channel handle
//! may be used from several threads at once (its functions do not change it),
//! except `shmring_channel_close`; so may an event, a semaphore and a shared
//! value (but not a shared value's writer). An RPC client may be used from several threads
//! at once (each call gets its own response), except `shmring_rpc_client_close`.
//! `shmring_strerror`, `shmring_version` and `shmring_layout_version` are
//! thread-safe; `shmring_last_error_message` is per thread.
#![allow(
    non_camel_case_types,
    reason = "C names: the header shows these types and variants as they are spelt here"
)]

use std::ffi::{CStr, c_char};

pub mod broadcast;
pub mod channel;
pub mod connection;
pub mod event;
mod handle;
mod loan;
pub mod message;
pub mod mpmc;
mod options;
pub mod readiness;
pub mod receiver;
pub mod rpc;
pub mod semaphore;
pub mod sender;
pub mod shared_mutex;
pub mod shared_value;
pub mod status;
pub mod transport;

pub use channel::*;
pub use connection::*;
pub use event::*;
pub use message::*;
pub use mpmc::*;
pub use readiness::*;
pub use receiver::*;
pub use rpc::*;
pub use semaphore::*;
pub use sender::*;
pub use shared_mutex::*;
pub use shared_value::*;
pub use status::*;
pub use transport::*;

use shmring::ring_core::layout;
use shmring::ring_core::spsc::layout as spsc_layout;

// ---------------------------------------------------------------------------
// Constants. cbindgen copies literals only, so each value is written out and
// pinned to the Rust library's own constant by a compile-time assertion.
// ---------------------------------------------------------------------------

/// Major version of the library this header belongs to.
pub const SHMRING_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const SHMRING_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const SHMRING_VERSION_PATCH: u32 = 0;

/// The segment layout version this library reads and writes (ARCHITECTURE.md:
/// "Segment layout"); `shmring_layout_version()` returns the library's own.
pub const SHMRING_LAYOUT_VERSION: u32 = 4;
/// The first 8 bytes of every initialised segment, in the creator's byte order.
pub const SHMRING_MAGIC: u64 = 0x7368_6d72_696e_6701;
/// Alignment of a segment's start, and of each of its 128-byte control lines.
pub const SHMRING_SEGMENT_ALIGN: usize = 128;
/// Offset of the header line (magic, version, capacity, ...).
pub const SHMRING_HEADER_OFFSET: usize = 0;
/// Offset of the producer's line (write position, owner, claims, pid).
pub const SHMRING_PRODUCER_LINE_OFFSET: usize = 128;
/// Offset of the consumer's line (read position, owner, claims, pid).
pub const SHMRING_CONSUMER_LINE_OFFSET: usize = 256;
/// Offset of the signal line (the two eventcounts).
pub const SHMRING_SIGNAL_LINE_OFFSET: usize = 384;
/// Offset of the data region: a segment is `SHMRING_DATA_OFFSET + capacity` bytes.
pub const SHMRING_DATA_OFFSET: usize = 512;
/// Bytes of a frame's header before its payload.
pub const SHMRING_FRAME_HEADER_SIZE: usize = 8;
/// Alignment of every frame in the data region.
pub const SHMRING_FRAME_ALIGN: usize = 8;
/// The smallest capacity (bytes of the data region).
pub const SHMRING_MIN_CAPACITY: usize = 64;
/// The largest capacity (512 MiB).
pub const SHMRING_MAX_CAPACITY: usize = 536870912;
/// Header flag (offset 56): the segment uses the asymmetric fence pair.
pub const SHMRING_HEADER_FLAG_ASYMMETRIC_FENCES: u32 = 1;

const _: () = {
    assert!(SHMRING_LAYOUT_VERSION == layout::LAYOUT_VERSION);
    assert!(SHMRING_MAGIC == layout::MAGIC);
    assert!(SHMRING_SEGMENT_ALIGN == layout::SEGMENT_ALIGN);
    assert!(SHMRING_HEADER_OFFSET == spsc_layout::HEADER_OFFSET);
    assert!(SHMRING_PRODUCER_LINE_OFFSET == spsc_layout::PRODUCER_LINE_OFFSET);
    assert!(SHMRING_CONSUMER_LINE_OFFSET == spsc_layout::CONSUMER_LINE_OFFSET);
    assert!(SHMRING_SIGNAL_LINE_OFFSET == spsc_layout::SIGNAL_LINE_OFFSET);
    assert!(SHMRING_DATA_OFFSET == spsc_layout::DATA_OFFSET);
    assert!(SHMRING_FRAME_HEADER_SIZE == spsc_layout::FRAME_HEADER_SIZE);
    assert!(SHMRING_FRAME_ALIGN == spsc_layout::FRAME_ALIGN);
    assert!(SHMRING_MIN_CAPACITY == spsc_layout::MIN_CAPACITY);
    assert!(SHMRING_MAX_CAPACITY == spsc_layout::MAX_CAPACITY);
    assert!(SHMRING_HEADER_FLAG_ASYMMETRIC_FENCES == layout::FLAG_ASYMMETRIC_FENCES);
    assert!(size_of::<spsc_layout::SegmentHeader>() == SHMRING_DATA_OFFSET);
    assert!(align_of::<spsc_layout::SegmentHeader>() == SHMRING_SEGMENT_ALIGN);
    assert!(SHMRING_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(SHMRING_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(SHMRING_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));
};

/// A decimal number at compile time (for the version assertions).
const fn parse_u32(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut n = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit());
        n = n * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    n
}

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the package version has no interior NUL"),
    };

/// The library's version, e.g. `"0.1.0"`: static, NUL-terminated, never freed.
/// Compare with `SHMRING_VERSION_MAJOR`/`_MINOR`/`_PATCH` to check that the header
/// and the library loaded at run time match. Thread-safe; cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn shmring_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The segment layout version this library reads and writes (the same as
/// `SHMRING_LAYOUT_VERSION` in a matching header). Thread-safe; cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn shmring_layout_version() -> u32 {
    layout::LAYOUT_VERSION
}
