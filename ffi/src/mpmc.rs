//! MPMC channels (`shmring_mpmc`): any number of processes send into and receive
//! from one ring of fixed-size slots.
//!
//! `shmring_mpmc_create` (named shared memory) or `shmring_mpmc_create_memfd` makes
//! the channel with its shape (slot count, slot size, endpoint table size);
//! `shmring_mpmc_open` / `shmring_mpmc_open_fd` attach to it. From a channel,
//! `shmring_mpmc_sender_new` and `shmring_mpmc_receiver_new` attach endpoints, each
//! taking one entry of the endpoint table (`SHMRING_E_TABLE_FULL` when none is
//! free). The options are the SPSC channels' `shmring_channel_options`.
//!
//! A receiver that waits on a position a dead sender claimed skips it after the
//! stall bound (2 ms), and a sender that waits on a slot a dead receiver holds
//! frees it; `shmring_mpmc_stats` counts both. `SHMRING_E_DISCONNECTED`: a
//! receiver found the ring empty with no sender alive (after one had attached), a
//! sender found it full with no receiver alive.
//!
//! A sender or receiver handle is used by one thread at a time; a channel handle
//! by any number at once (except `shmring_mpmc_close`).

use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;
use std::time::Duration;

use shmring::{MpmcChannel, MpmcChannelBuilder, MpmcReceiver, MpmcSender};

use crate::channel::{builder, shm_name, shmring_channel_options};
use crate::event::{close_boxed, construct_boxed, dup_fd};
use crate::readiness::{WakeupsInfo, readiness_code, shmring_wakeups, value_or_code};
use crate::status::{Failure, catch, guard, shmring_status};
use crate::{message_bytes, out_ptr, receive_into};

/// A created or opened MPMC channel. Attach endpoints with
/// `shmring_mpmc_sender_new` and `shmring_mpmc_receiver_new`; free it with
/// `shmring_mpmc_close` (the endpoints keep the segment mapped on their own).
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_mpmc {
    channel: MpmcChannel,
}

/// A sender attached to an MPMC channel. Free it with `shmring_mpmc_sender_close`
/// (which frees its table entry).
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_mpmc_sender {
    sender: MpmcSender,
    /// Fixed for the endpoint's life (`shmring_mpmc_sender_wakeups`).
    wakeups: WakeupsInfo,
    poisoned: bool,
}

/// A receiver attached to an MPMC channel. Free it with
/// `shmring_mpmc_receiver_close`.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_mpmc_receiver {
    receiver: MpmcReceiver,
    /// Fixed for the endpoint's life (`shmring_mpmc_receiver_wakeups`).
    wakeups: WakeupsInfo,
    poisoned: bool,
}

/// The recovery statistics of an MPMC channel (`shmring_mpmc_stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shmring_mpmc_counters {
    /// Positions claimed by a sender that died before publishing, skipped by a
    /// receiver (no message was lost there).
    pub skipped: u64,
    /// Messages lost with a receiver that died between claiming and copying them.
    pub lost: u64,
}

const _: () = {
    const fn send<T: Send>() {}
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<MpmcChannel>();
    send::<MpmcSender>();
    send::<MpmcReceiver>();
};

/// Runs `body` on the live channel `ch`.
///
/// # Safety
/// `ch` is NULL or a live channel handle.
unsafe fn with_channel(
    ch: *const shmring_mpmc,
    body: impl FnOnce(&MpmcChannel) -> Result<(), Failure>,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or live (the caller's contract); channel calls only read it.
        let ch = unsafe { ch.as_ref() }.ok_or_else(|| Failure::null("channel"))?;
        body(&ch.channel)
    })
}

/// An endpoint handle with its poison flag and its readiness descriptor.
trait Endpoint {
    const WHAT: &'static str;
    fn poisoned(&mut self) -> &mut bool;
    fn readiness_fd(&self) -> c_int;
    fn wakeups(&self) -> &WakeupsInfo;
}

impl Endpoint for shmring_mpmc_sender {
    const WHAT: &'static str = "sender";
    fn poisoned(&mut self) -> &mut bool {
        &mut self.poisoned
    }
    fn readiness_fd(&self) -> c_int {
        self.sender.readiness_fd().as_raw_fd()
    }
    fn wakeups(&self) -> &WakeupsInfo {
        &self.wakeups
    }
}

impl Endpoint for shmring_mpmc_receiver {
    const WHAT: &'static str = "receiver";
    fn poisoned(&mut self) -> &mut bool {
        &mut self.poisoned
    }
    fn readiness_fd(&self) -> c_int {
        self.receiver.readiness_fd().as_raw_fd()
    }
    fn wakeups(&self) -> &WakeupsInfo {
        &self.wakeups
    }
}

/// Runs `body` on the live endpoint `ptr`, refusing a poisoned one and poisoning
/// it if `body` panics.
///
/// # Safety
/// `ptr` is NULL or a live endpoint handle of this module, used by no other thread
/// during the call.
unsafe fn with_endpoint<H: Endpoint>(
    ptr: *mut H,
    body: impl FnOnce(&mut H) -> Result<(), Failure>,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or live, and ours alone for the call (the caller's
        // contract): a unique reference is sound.
        let handle = unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(H::WHAT))?;
        if *handle.poisoned() {
            return Err(Failure::new(
                shmring_status::E_PANIC,
                format!("an earlier call on this {} panicked: close it", H::WHAT),
            ));
        }
        match catch(|| body(&mut *handle)) {
            Ok(result) => result,
            Err(panicked) => {
                *handle.poisoned() = true;
                Err(panicked)
            }
        }
    })
}

/// Creates an MPMC channel in named POSIX shared memory,
/// `/dev/shm/shmring.<name>`: `slots` slots (a power of two from 2 to 2^24) of
/// `slot_size` bytes (the largest message, 1 to 16 MiB), and an endpoint table
/// of `endpoints` entries (how many senders and receivers together may be
/// attached at once, 1 to 1024). Removed when the creator's last handle closes,
/// unless `SHMRING_OPTION_KEEP`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_CAPACITY` (a bad shape),
/// `SHMRING_E_INVALID_NAME`, `SHMRING_E_ALREADY_EXISTS`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_NO_SPACE`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// - `name` is NULL or a NUL-terminated string.
/// - `options` is NULL or points to a readable `shmring_channel_options`.
/// - `out` is NULL or points to a writable `shmring_mpmc *`; it receives the new
///   handle (owned by the caller: free it with `shmring_mpmc_close`), or NULL.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_create(
    name: *const c_char,
    slots: usize,
    slot_size: usize,
    endpoints: usize,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_mpmc,
) -> c_int {
    construct_boxed(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::shm(shm_name(name)?), options) }?;
        let channel = builder
            .slots(slots)
            .slot_size(slot_size)
            .endpoints(endpoints)
            .create()?;
        Ok(shmring_mpmc { channel })
    })
}

/// Creates an MPMC channel in an anonymous memfd, sealed against resizing; hand
/// it over with `shmring_mpmc_fd` (or `fork`), open it with `shmring_mpmc_open_fd`.
///
/// # Returns
/// As `shmring_mpmc_create`, without the name errors.
///
/// # Safety
/// `options` and `out` as in `shmring_mpmc_create`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_create_memfd(
    slots: usize,
    slot_size: usize,
    endpoints: usize,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_mpmc,
) -> c_int {
    construct_boxed(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::memfd(), options) }?;
        let channel = builder
            .slots(slots)
            .slot_size(slot_size)
            .endpoints(endpoints)
            .create()?;
        Ok(shmring_mpmc { channel })
    })
}

/// Opens the MPMC channel `/dev/shm/shmring.<name>` and validates it (owner, mode,
/// size, every header field).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`, `SHMRING_E_NOT_FOUND`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_UNTRUSTED`, `SHMRING_E_BAD_SIZE`,
/// `SHMRING_E_INCOMPATIBLE_LAYOUT` (an SPSC channel, an event...),
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// As `shmring_mpmc_create`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_open(
    name: *const c_char,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_mpmc,
) -> c_int {
    construct_boxed(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::shm(shm_name(name)?), options) }?;
        Ok(shmring_mpmc {
            channel: builder.open()?,
        })
    })
}

/// Opens the MPMC channel behind the descriptor `fd` (duplicated: the caller
/// keeps its own). Size, seals and header are checked; owner and mode are not.
///
/// # Returns
/// As `shmring_mpmc_open`, without the name errors.
///
/// # Safety
/// `options` and `out` as in `shmring_mpmc_create`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_open_fd(
    fd: c_int,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_mpmc,
) -> c_int {
    construct_boxed(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::memfd(), options) }?;
        Ok(shmring_mpmc {
            channel: builder.from_fd(dup_fd(fd)?)?,
        })
    })
}

/// Stores the channel's descriptor in `*out_fd` (the channel's own, close-on-exec:
/// do not close it; valid until `shmring_mpmc_close`).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `ch` is NULL or a live MPMC channel handle; `out_fd` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_fd(ch: *const shmring_mpmc, out_fd: *mut c_int) -> c_int {
    let body = |channel: &MpmcChannel| {
        let out_fd = out_ptr(out_fd, "out_fd")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_fd.write(channel.segment().fd().as_raw_fd()) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_channel(ch, body) }
}

/// Stores the largest message (the slot size) in `*out_len`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `ch` is NULL or a live MPMC channel handle; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_max_message_len(
    ch: *const shmring_mpmc,
    out_len: *mut usize,
) -> c_int {
    let body = |channel: &MpmcChannel| {
        let out_len = out_ptr(out_len, "out_len")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_len.write(channel.max_message_len()) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_channel(ch, body) }
}

/// Stores the channel's recovery statistics in `*out` (read from the segment: a
/// snapshot of what every process's endpoints recovered).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `ch` is NULL or a live MPMC channel handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_stats(
    ch: *const shmring_mpmc,
    out: *mut shmring_mpmc_counters,
) -> c_int {
    let body = |channel: &MpmcChannel| {
        let out = out_ptr(out, "out")?;
        let stats = channel.stats();
        // SAFETY: non-null and writable (the caller's contract).
        unsafe {
            out.write(shmring_mpmc_counters {
                skipped: stats.skipped,
                lost: stats.lost,
            });
        }
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_channel(ch, body) }
}

/// Closes a channel handle (NULL: nothing). Endpoints made from it stay usable.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `ch` is NULL or a live MPMC channel handle, not used during or after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_close(ch: *mut shmring_mpmc) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close_boxed(ch) }
}

/// Attaches a sender to the channel, in the first table entry no live endpoint
/// holds.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_TABLE_FULL`; `SHMRING_E_UNSUPPORTED` (a channel with
/// asymmetric fences where `membarrier` is refused); `SHMRING_E_IO`;
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `ch` is NULL or a live MPMC channel handle; `out` is NULL or points to a
/// writable `shmring_mpmc_sender *`, which receives the handle (free it with
/// `shmring_mpmc_sender_close`) or NULL.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_sender_new(
    ch: *const shmring_mpmc,
    out: *mut *mut shmring_mpmc_sender,
) -> c_int {
    construct_boxed(out, || {
        // SAFETY: NULL or live (the caller's contract).
        let ch = unsafe { ch.as_ref() }.ok_or_else(|| Failure::null("channel"))?;
        let sender = ch.channel.sender()?;
        Ok(shmring_mpmc_sender {
            wakeups: WakeupsInfo::new(sender.wakeups()),
            sender,
            poisoned: false,
        })
    })
}

/// Attaches a receiver to the channel.
///
/// # Returns
/// As `shmring_mpmc_sender_new`.
///
/// # Safety
/// As `shmring_mpmc_sender_new`, with `shmring_mpmc_receiver *`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_receiver_new(
    ch: *const shmring_mpmc,
    out: *mut *mut shmring_mpmc_receiver,
) -> c_int {
    construct_boxed(out, || {
        // SAFETY: NULL or live (the caller's contract).
        let ch = unsafe { ch.as_ref() }.ok_or_else(|| Failure::null("channel"))?;
        let receiver = ch.channel.receiver()?;
        Ok(shmring_mpmc_receiver {
            wakeups: WakeupsInfo::new(receiver.wakeups()),
            receiver,
            poisoned: false,
        })
    })
}

/// Detaches and frees a sender (NULL: nothing); its table entry is free again.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `tx` is NULL or a live MPMC sender, not used during or after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_sender_close(tx: *mut shmring_mpmc_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close_boxed(tx) }
}

/// Detaches and frees a receiver (NULL: nothing).
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `rx` is NULL or a live MPMC receiver, not used during or after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_receiver_close(rx: *mut shmring_mpmc_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close_boxed(rx) }
}

/// Sends with `send` on the live sender `tx`.
///
/// # Safety
/// As `shmring_mpmc_send`.
unsafe fn send_with<E>(
    tx: *mut shmring_mpmc_sender,
    data: *const c_void,
    len: usize,
    send: impl FnOnce(&mut MpmcSender, &[u8]) -> Result<(), E>,
) -> c_int
where
    Failure: From<E>,
{
    let body = |h: &mut shmring_mpmc_sender| {
        let max = h.sender.max_message_len();
        // SAFETY: the caller's contract on `data` and `len`.
        let message = unsafe { message_bytes(data, len, max) }?;
        Ok(send(&mut h.sender, message)?)
    };
    // SAFETY: the caller's contract on `tx`.
    unsafe { with_endpoint(tx, body) }
}

/// Copies `len` bytes at `data` into a slot, waiting for one.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_DISCONNECTED` (full, and no receiver alive though one
/// has attached); `SHMRING_E_MESSAGE_TOO_LARGE` (over the slot size);
/// `SHMRING_E_CORRUPTED`; `SHMRING_E_INVALID_ARGUMENT`; `SHMRING_E_PANIC`.
///
/// # Safety
/// `tx` is NULL or a live MPMC sender used by this thread alone during the call;
/// unless NULL or `len` is 0, `data` points to `len` readable bytes.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_send(
    tx: *mut shmring_mpmc_sender,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(tx, data, len, |s, m| s.send(m)) }
}

/// As `shmring_mpmc_send`, but never waits: `SHMRING_E_FULL` when no slot is free
/// now.
///
/// # Returns
/// As `shmring_mpmc_send`, and `SHMRING_E_FULL`.
///
/// # Safety
/// As `shmring_mpmc_send`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_try_send(
    tx: *mut shmring_mpmc_sender,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(tx, data, len, |s, m| s.try_send(m)) }
}

/// As `shmring_mpmc_send`, giving up after `timeout_ms` milliseconds (relative)
/// with `SHMRING_E_TIMED_OUT`.
///
/// # Returns
/// As `shmring_mpmc_send`, and `SHMRING_E_TIMED_OUT`.
///
/// # Safety
/// As `shmring_mpmc_send`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_send_timeout(
    tx: *mut shmring_mpmc_sender,
    data: *const c_void,
    len: usize,
    timeout_ms: u64,
) -> c_int {
    let timeout = Duration::from_millis(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { send_with(tx, data, len, |s, m| s.send_timeout(m, timeout)) }
}

/// Receives with `recv` on the live receiver `rx` into the caller's buffer.
///
/// # Safety
/// As `shmring_mpmc_recv`.
unsafe fn recv_with<E>(
    rx: *mut shmring_mpmc_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    recv: impl FnOnce(&mut MpmcReceiver, &mut [u8]) -> Result<usize, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    let body = |h: &mut shmring_mpmc_receiver| {
        // SAFETY: the caller's contract on `buf`, `buf_len` and `out_len`.
        unsafe {
            receive_into(buf, buf_len, out_len, |b| {
                Ok(recv(&mut h.receiver, b).map_err(shmring::Error::from))
            })
        }
    };
    // SAFETY: the caller's contract on `rx`.
    unsafe { with_endpoint(rx, body) }
}

/// Copies the next message into `buf` (`buf_len` bytes), waiting for one, and
/// stores its length in `*out_len`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_DISCONNECTED` (empty, and no sender alive though one
/// has attached); `SHMRING_E_BUFFER_TOO_SMALL` (nothing consumed; `*out_len` is
/// the length needed); `SHMRING_E_CORRUPTED`; `SHMRING_E_INVALID_ARGUMENT`;
/// `SHMRING_E_PANIC`.
///
/// # Safety
/// `rx` is NULL or a live MPMC receiver used by this thread alone during the call;
/// unless NULL or `buf_len` is 0, `buf` points to `buf_len` writable bytes;
/// `out_len` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_recv(
    rx: *mut shmring_mpmc_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { recv_with(rx, buf, buf_len, out_len, |r, b| r.recv(b)) }
}

/// As `shmring_mpmc_recv`, but never waits: `SHMRING_E_EMPTY` when no message is
/// there now.
///
/// # Returns
/// As `shmring_mpmc_recv`, and `SHMRING_E_EMPTY`.
///
/// # Safety
/// As `shmring_mpmc_recv`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_try_recv(
    rx: *mut shmring_mpmc_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { recv_with(rx, buf, buf_len, out_len, |r, b| r.try_recv(b)) }
}

/// As `shmring_mpmc_recv`, giving up after `timeout_ms` milliseconds (relative)
/// with `SHMRING_E_TIMED_OUT`.
///
/// # Returns
/// As `shmring_mpmc_recv`, and `SHMRING_E_TIMED_OUT`.
///
/// # Safety
/// As `shmring_mpmc_recv`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_recv_timeout(
    rx: *mut shmring_mpmc_receiver,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    timeout_ms: u64,
) -> c_int {
    let timeout = Duration::from_millis(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { recv_with(rx, buf, buf_len, out_len, |r, b| r.recv_timeout(b, timeout)) }
}

/// The body of `shmring_mpmc_sender_readiness_fd` and
/// `shmring_mpmc_receiver_readiness_fd`.
///
/// # Safety
/// As [`with_endpoint`].
unsafe fn endpoint_readiness_fd<H: Endpoint>(ptr: *mut H) -> c_int {
    value_or_code(|fd| {
        let body = |h: &mut H| {
            *fd = h.readiness_fd();
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { with_endpoint(ptr, body) }
    })
}

/// The body of `shmring_mpmc_sender_wakeups` and `shmring_mpmc_receiver_wakeups`.
///
/// # Safety
/// As [`with_endpoint`]; `out` and `out_reason` are NULL or writable.
unsafe fn endpoint_wakeups<H: Endpoint>(
    ptr: *mut H,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract on `out` and `out_reason`.
    let body = |h: &mut H| unsafe { h.wakeups().write(out, out_reason) };
    // SAFETY: the caller's contract on `ptr`.
    unsafe { with_endpoint(ptr, body) }
}

/// The sender's readiness descriptor for a free slot, for `epoll`, `poll` or
/// `select`: it becomes readable (`EPOLLIN`, or `EPOLLHUP`) after
/// `shmring_mpmc_sender_arm_for_space` returned `SHMRING_ARMED`, when a receiver
/// frees a slot, when every receiver has gone, or every 25 ms for a polled sender
/// (`shmring_mpmc_sender_wakeups`). The senders of one channel share the
/// doorbell: one may take another's wake-up, so each sends until
/// `SHMRING_E_FULL` and arms again.
///
/// The descriptor belongs to the sender: the same for the handle's life, closed
/// by `shmring_mpmc_sender_close` (remove it from your `epoll` set first). Never
/// read it (arming drains it) and never close it.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_INVALID_ARGUMENT` for a NULL `tx`;
/// `SHMRING_E_PANIC`.
///
/// # Safety
/// `tx` is NULL or a live MPMC sender used by this thread alone during the call.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_sender_readiness_fd(tx: *mut shmring_mpmc_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { endpoint_readiness_fd(tx) }
}

/// Arms the readiness descriptor (`shmring_mpmc_sender_readiness_fd`) for a free
/// slot. Never blocks. The loop: when the descriptor is readable, send with
/// `shmring_mpmc_try_send` until `SHMRING_E_FULL`, then arm: on `SHMRING_READY`
/// send again, on `SHMRING_ARMED` go back to the event loop.
///
/// # Returns
/// `SHMRING_READY` (1): the slot at the tail is free now, or every receiver has
/// gone (the next send says which); `SHMRING_ARMED` (2); or a negative code:
/// `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`,
/// `SHMRING_E_PANIC`.
///
/// # Safety
/// As `shmring_mpmc_sender_readiness_fd`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_sender_arm_for_space(tx: *mut shmring_mpmc_sender) -> c_int {
    value_or_code(|readiness| {
        let body = |h: &mut shmring_mpmc_sender| {
            *readiness = readiness_code(h.sender.arm_for_space()?);
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { with_endpoint(tx, body) }
    })
}

/// Stores in `*out` how the sender's readiness descriptor is woken
/// (`SHMRING_WAKEUPS_DOORBELL`, or `SHMRING_WAKEUPS_POLLED` where no doorbell
/// could be shared). If `out_reason` is not NULL, `*out_reason` receives why it
/// is polled (`""` for a doorbell): a NUL-terminated string owned by the sender,
/// valid until `shmring_mpmc_sender_close`. Fixed for the handle's life.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` for a NULL `tx` or `out`;
/// `SHMRING_E_PANIC`.
///
/// # Safety
/// As `shmring_mpmc_sender_readiness_fd`; `out` and `out_reason` are NULL or
/// writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_sender_wakeups(
    tx: *mut shmring_mpmc_sender,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { endpoint_wakeups(tx, out, out_reason) }
}

/// The receiver's readiness descriptor, for `epoll`, `poll` or `select`: it
/// becomes readable (`EPOLLIN`, or `EPOLLHUP`) after
/// `shmring_mpmc_receiver_arm_for_message` returned `SHMRING_ARMED`, when a
/// sender publishes a message, when every sender has gone, or every 25 ms for a
/// polled receiver (`shmring_mpmc_receiver_wakeups`). The receivers of one
/// channel share the doorbell: one may take another's wake-up (and the message
/// with it), so each receives until `SHMRING_E_EMPTY` and arms again.
///
/// The descriptor belongs to the receiver: the same for the handle's life, closed
/// by `shmring_mpmc_receiver_close` (remove it from your `epoll` set first).
/// Never read it (arming drains it) and never close it.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_INVALID_ARGUMENT` for a NULL `rx`;
/// `SHMRING_E_PANIC`.
///
/// # Safety
/// `rx` is NULL or a live MPMC receiver used by this thread alone during the call.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_receiver_readiness_fd(
    rx: *mut shmring_mpmc_receiver,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { endpoint_readiness_fd(rx) }
}

/// Arms the readiness descriptor (`shmring_mpmc_receiver_readiness_fd`) for a
/// message. Never blocks. The loop: when the descriptor is readable, receive with
/// `shmring_mpmc_try_recv` until `SHMRING_E_EMPTY`, then arm: on `SHMRING_READY`
/// receive again, on `SHMRING_ARMED` go back to the event loop.
///
/// # Returns
/// `SHMRING_READY` (1): the slot at the head holds something now, or every sender
/// has gone (the next receive says which); `SHMRING_ARMED` (2); or a negative
/// code: `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`,
/// `SHMRING_E_PANIC`.
///
/// # Safety
/// As `shmring_mpmc_receiver_readiness_fd`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_receiver_arm_for_message(
    rx: *mut shmring_mpmc_receiver,
) -> c_int {
    value_or_code(|readiness| {
        let body = |h: &mut shmring_mpmc_receiver| {
            *readiness = readiness_code(h.receiver.arm_for_message()?);
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { with_endpoint(rx, body) }
    })
}

/// Stores in `*out` how the receiver's readiness descriptor is woken
/// (`SHMRING_WAKEUPS_DOORBELL`, or `SHMRING_WAKEUPS_POLLED` where no doorbell
/// could be shared). If `out_reason` is not NULL, `*out_reason` receives why it
/// is polled (`""` for a doorbell): a NUL-terminated string owned by the
/// receiver, valid until `shmring_mpmc_receiver_close`. Fixed for the handle's
/// life.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` for a NULL `rx` or `out`;
/// `SHMRING_E_PANIC`.
///
/// # Safety
/// As `shmring_mpmc_receiver_readiness_fd`; `out` and `out_reason` are NULL or
/// writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_receiver_wakeups(
    rx: *mut shmring_mpmc_receiver,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { endpoint_wakeups(rx, out, out_reason) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::NonNull;

    #[test]
    fn null_pointers_are_refused() {
        let mut out: *mut shmring_mpmc = NonNull::dangling().as_ptr();
        // SAFETY: valid out-pointer; NULL name.
        let rc =
            unsafe { shmring_mpmc_create(std::ptr::null(), 4, 8, 2, std::ptr::null(), &mut out) };
        assert_eq!(rc, shmring_status::E_INVALID_ARGUMENT.code());
        assert!(out.is_null());
        // SAFETY: NULL handles are refused.
        let rc = unsafe { shmring_mpmc_send(std::ptr::null_mut(), std::ptr::null(), 0) };
        assert_eq!(rc, shmring_status::E_INVALID_ARGUMENT.code());
    }
}
