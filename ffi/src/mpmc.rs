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

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;

use shmring::{MpmcChannel, MpmcChannelBuilder, MpmcReceiver, MpmcSender, Readiness};

use crate::channel::{builder, shmring_channel_options};
use crate::handle::{Kind, c_name, call_ref, close, construct, dup_fd, shared, write_out};
use crate::message::{
    Endpoint, ReadinessInfo, Receiving, Sending, shmring_msg_receiver, shmring_msg_sender,
};
use crate::status::{Failure, shmring_status};

/// A created or opened MPMC channel. Attach endpoints with
/// `shmring_mpmc_sender_new` and `shmring_mpmc_receiver_new`; free it with
/// `shmring_mpmc_close` (the endpoints keep the segment mapped on their own).
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_mpmc {
    _opaque: [u8; 0],
}

/// A sender attached to an MPMC channel: a `shmring_msg_sender` through
/// `shmring_mpmc_sender_as_msg_sender`. Free it with `shmring_mpmc_sender_close`
/// (which frees its table entry).
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_mpmc_sender {
    _opaque: [u8; 0],
}

/// A receiver attached to an MPMC channel: a `shmring_msg_receiver` through
/// `shmring_mpmc_receiver_as_msg_receiver`. Free it with
/// `shmring_mpmc_receiver_close`.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_mpmc_receiver {
    _opaque: [u8; 0],
}

/// The value of a `shmring_mpmc` handle. Shared (`call_ref` only).
#[derive(Debug)]
pub(crate) struct Mpmc {
    channel: MpmcChannel,
}

/// The value of a `shmring_mpmc_sender` handle.
#[derive(Debug)]
pub(crate) struct MpmcTx {
    sender: MpmcSender,
    readiness: ReadinessInfo,
}

/// The value of a `shmring_mpmc_receiver` handle.
#[derive(Debug)]
pub(crate) struct MpmcRx {
    receiver: MpmcReceiver,
    readiness: ReadinessInfo,
}

impl Kind for Mpmc {
    type C = shmring_mpmc;
    const WHAT: &'static str = "MPMC channel";
}

impl Kind for MpmcTx {
    type C = shmring_mpmc_sender;
    const WHAT: &'static str = "MPMC sender";
    const ENDPOINT: bool = true;
}

impl Kind for MpmcRx {
    type C = shmring_mpmc_receiver;
    const WHAT: &'static str = "MPMC receiver";
    const ENDPOINT: bool = true;
}

impl Endpoint for Mpmc {}

impl Endpoint for MpmcTx {
    fn sending(&mut self) -> Option<&mut dyn Sending> {
        Some(self)
    }
}

impl Endpoint for MpmcRx {
    fn receiving(&mut self) -> Option<&mut dyn Receiving> {
        Some(self)
    }
}

impl Sending for MpmcTx {
    fn sender(&mut self) -> &mut dyn shmring::MessageSender {
        &mut self.sender
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.readiness)
    }
    /// Room for any message up to the slot size (a slot each); a longer one
    /// never fits.
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness, Failure> {
        let max = self.sender.max_message_len();
        if len > max {
            return Err(Failure::new(
                shmring_status::E_MESSAGE_TOO_LARGE,
                format!("message too large: {len} bytes, at most {max}"),
            ));
        }
        Ok(self.sender.arm_for_space()?)
    }
}

impl Receiving for MpmcRx {
    fn receiver(&mut self) -> &mut dyn shmring::MessageReceiver {
        &mut self.receiver
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.readiness)
    }
    fn arm_for_message(&mut self) -> Result<Readiness, Failure> {
        Ok(self.receiver.arm_for_message()?)
    }
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
/// The pointer rules of the header (`shmring.h`, top).
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
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::shm(c_name(name)?), options) }?;
        let channel = builder
            .slots(slots)
            .slot_size(slot_size)
            .endpoints(endpoints)
            .create()?;
        Ok(Mpmc { channel })
    })
}

/// Creates an MPMC channel in an anonymous memfd, sealed against resizing; hand
/// it over with `shmring_mpmc_fd` (or `fork`), open it with `shmring_mpmc_open_fd`.
///
/// # Returns
/// As `shmring_mpmc_create`, without the name errors.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_create_memfd(
    slots: usize,
    slot_size: usize,
    endpoints: usize,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_mpmc,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::memfd(), options) }?;
        let channel = builder
            .slots(slots)
            .slot_size(slot_size)
            .endpoints(endpoints)
            .create()?;
        Ok(Mpmc { channel })
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_open(
    name: *const c_char,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_mpmc,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::shm(c_name(name)?), options) }?;
        Ok(Mpmc {
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_open_fd(
    fd: c_int,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_mpmc,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(MpmcChannelBuilder::memfd(), options) }?;
        Ok(Mpmc {
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_fd(ch: *const shmring_mpmc, out_fd: *mut c_int) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(ch, |c: &Mpmc| {
            write_out(out_fd, "out_fd", c.channel.segment().fd().as_raw_fd())
        })
    }
}

/// Stores the largest message (the slot size) in `*out_len`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_max_message_len(
    ch: *const shmring_mpmc,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(ch, |c: &Mpmc| {
            write_out(out_len, "out_len", c.channel.max_message_len())
        })
    }
}

/// Stores the channel's recovery statistics in `*out` (read from the segment: a
/// snapshot of what every process's endpoints recovered).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_stats(
    ch: *const shmring_mpmc,
    out: *mut shmring_mpmc_counters,
) -> c_int {
    let body = |c: &Mpmc| {
        let stats = c.channel.stats();
        let counters = shmring_mpmc_counters {
            skipped: stats.skipped,
            lost: stats.lost,
        };
        // SAFETY: the caller's contract on `out`.
        unsafe { write_out(out, "out", counters) }
    };
    // SAFETY: the caller's contract.
    unsafe { call_ref(ch, body) }
}

/// Closes a channel handle (NULL: nothing). Endpoints made from it stay usable.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_close(ch: *mut shmring_mpmc) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Mpmc>(ch) }
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_sender_new(
    ch: *const shmring_mpmc,
    out: *mut *mut shmring_mpmc_sender,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let sender = unsafe { shared::<Mpmc>(ch) }?.channel.sender()?;
        Ok(MpmcTx {
            readiness: ReadinessInfo::new(sender.readiness_fd(), sender.wakeups()),
            sender,
        })
    })
}

/// Attaches a receiver to the channel.
///
/// # Returns
/// As `shmring_mpmc_sender_new`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_mpmc_receiver_new(
    ch: *const shmring_mpmc,
    out: *mut *mut shmring_mpmc_receiver,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let receiver = unsafe { shared::<Mpmc>(ch) }?.channel.receiver()?;
        Ok(MpmcRx {
            readiness: ReadinessInfo::new(receiver.readiness_fd(), receiver.wakeups()),
            receiver,
        })
    })
}

/// Detaches and frees a sender (NULL: nothing); its table entry is free again.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_sender_close(tx: *mut shmring_mpmc_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<MpmcTx>(tx) }
}

/// Detaches and frees a receiver (NULL: nothing).
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_receiver_close(rx: *mut shmring_mpmc_receiver) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<MpmcRx>(rx) }
}

/// The sender as a `shmring_msg_sender`, for the message family's calls (copying
/// sends, readiness). The same handle: never close the view, close `tx`. NULL for
/// NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_sender_as_msg_sender(
    tx: *mut shmring_mpmc_sender,
) -> *mut shmring_msg_sender {
    tx.cast()
}

/// The receiver as a `shmring_msg_receiver`, for the message family's calls
/// (copying receives, readiness). The same handle: never close the view, close
/// `rx`. NULL for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_mpmc_receiver_as_msg_receiver(
    rx: *mut shmring_mpmc_receiver,
) -> *mut shmring_msg_receiver {
    rx.cast()
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
        assert_eq!(rc, crate::status::shmring_status::E_INVALID_ARGUMENT.code());
        assert!(out.is_null());
        // SAFETY: a NULL handle is refused.
        let rc = unsafe { shmring_mpmc_sender_new(std::ptr::null(), &mut std::ptr::null_mut()) };
        assert_eq!(rc, crate::status::shmring_status::E_INVALID_ARGUMENT.code());
    }
}
