//! The sending side of an SPSC channel: zero-copy grants, batches and records.
//! Its copying sends and readiness calls are the message family's
//! (`shmring_sender_as_msg_sender`).

use std::ffi::{c_int, c_void};

use shmring::{Readiness, Sender};

use crate::channel::{Spsc, shmring_channel};
use crate::handle::{
    Access, Header, Kind, call, call_in, check_len, close, construct, message_bytes, out_ptr,
    shared, timeout,
};
use crate::loan::{Lends, check_commit, end_loan, grant_with, granted, take_loan};
use crate::message::{Endpoint, ReadinessInfo, Sending, shmring_msg_sender};
use crate::status::{Failure, shmring_status};

/// The sending side of a channel (one per channel at a time, across all
/// processes). Make it with `shmring_sender_new`, free it with
/// `shmring_sender_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_sender {
    _opaque: [u8; 0],
}

/// The value of a `shmring_sender` handle.
#[derive(Debug)]
pub(crate) struct SpscSender {
    sender: Sender,
    readiness: ReadinessInfo,
    /// The outstanding grant (state `Borrowed`): its bytes' address and length.
    /// Nothing borrows `sender` meanwhile: the commit asks for the same grant
    /// again (the ring's next frame stays where it was, only the receiver moves,
    /// freeing room) and commits that.
    grant: Option<(usize, usize)>,
}

impl Kind for SpscSender {
    type C = shmring_sender;
    const WHAT: &'static str = "sender";
    const LENDS: &'static str = "grant";
    const FINISH: &'static str = "commit or abort the outstanding grant";
    const ENDPOINT: bool = true;
}

impl Lends for SpscSender {
    fn loan(&mut self) -> &mut Option<(usize, usize)> {
        &mut self.grant
    }
}

impl Endpoint for SpscSender {
    fn sending(&mut self) -> Option<&mut dyn Sending> {
        Some(self)
    }
}

impl Sending for SpscSender {
    fn sender(&mut self) -> &mut dyn shmring::MessageSender {
        &mut self.sender
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.readiness)
    }
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness, Failure> {
        Ok(self.sender.arm_for_space(len)?)
    }
}

/// One message of a batch: `len` bytes at `data` (`data` may be NULL when `len` is
/// 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmring_message {
    /// The message's bytes.
    pub data: *const c_void,
    /// Its length in bytes.
    pub len: usize,
}

/// Claims the sending side of `channel` and returns it in `*out`. The sender keeps
/// the segment mapped: `channel` may be closed before it.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_ROLE_TAKEN` while another live sender (in any process)
/// holds the role (a dead one is replaced, and its committed messages stay);
/// `SHMRING_E_UNSUPPORTED` if the channel uses asymmetric fences and this process
/// cannot call `membarrier`; `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_new(
    channel: *const shmring_channel,
    out: *mut *mut shmring_sender,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let sender = unsafe { shared::<Spsc>(channel) }?.channel.sender()?;
        Ok(SpscSender {
            readiness: ReadinessInfo::new(sender.readiness_fd(), sender.wakeups()),
            sender,
            grant: None,
        })
    })
}

/// Frees a sender and gives up the role (another sender may then claim it). An
/// outstanding grant is aborted. Everything committed stays in the channel for the
/// receiver. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_sender_close(sender: *mut shmring_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<SpscSender>(sender) }
}

/// The sender as a `shmring_msg_sender`, for the message family's calls (copying
/// sends, readiness). The same handle: never close the view, close `sender`.
/// NULL for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_sender_as_msg_sender(
    sender: *mut shmring_sender,
) -> *mut shmring_msg_sender {
    sender.cast()
}

/// Stores in `*out` whether a receiver holds the other end now (a snapshot: it
/// may attach or go at any time).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_BUSY` (grant outstanding), `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_is_receiver_connected(
    sender: *mut shmring_sender,
    out: *mut bool,
) -> c_int {
    let body = |h: &mut SpscSender| {
        let out = out_ptr(out, "out")?;
        let connected = h.sender.is_receiver_connected()?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(connected) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(sender, body) }
}

/// Copies as many of the `count` records at `records` as fit now, in order, each as
/// a message of `record_len` bytes (record `i` at `records + i * record_len`), and
/// publishes them together (one store and one wake-up for the lot); never blocks.
/// Records of up to 65535 bytes are packed under one frame header per run (an
/// 8-byte record takes 8 bytes of the ring, not 16): the way to stream an array of
/// fixed-size structs. `*out_sent` receives how many were sent (always the first
/// ones).
///
/// # Returns
/// `SHMRING_OK` when all were sent; `SHMRING_E_FULL` when only `*out_sent` (maybe
/// 0) fitted; `SHMRING_E_DISCONNECTED` when the ring is full and the receiver has
/// gone (`*out_sent` went before); `SHMRING_E_MESSAGE_TOO_LARGE` when `record_len`
/// exceeds the largest message
/// (nothing sent); `SHMRING_E_INVALID_ARGUMENT` (NULL `records` with a non-zero
/// size, NULL `out_sent`, a total size beyond `PTRDIFF_MAX`); `SHMRING_E_CORRUPTED`;
/// `SHMRING_E_BUSY` (grant outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_try_send_records(
    sender: *mut shmring_sender,
    records: *const c_void,
    record_len: usize,
    count: usize,
    out_sent: *mut usize,
) -> c_int {
    let body = |h: &mut SpscSender| {
        let out_sent = out_ptr(out_sent, "out_sent")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_sent.write(0) };
        if count == 0 {
            return Ok(());
        }
        let max = h.sender.max_message_len();
        let total = count.saturating_mul(record_len);
        check_len(total, "records")?;
        // SAFETY: the first record, if any bytes, lies within the caller's array;
        // this checks the pointer and the record length against the largest message.
        unsafe { message_bytes(records, record_len, max) }?;
        let all: &[u8] = if total == 0 {
            &[]
        } else {
            // SAFETY: non-null (checked by `message`, as `record_len > 0` here),
            // `total` readable bytes (the caller's contract), at most isize::MAX.
            unsafe { std::slice::from_raw_parts(records.cast::<u8>(), total) }
        };
        let record = |i: usize| &all[i * record_len..(i + 1) * record_len];
        let mut sent = 0;
        let s = &mut h.sender;
        let result = (|| {
            let mut batch = s.batch();
            if record_len == 0 || record_len > 0xffff {
                // No run takes these: a frame each.
                while sent < count {
                    match batch.try_send(record(sent)) {
                        Ok(()) => sent += 1,
                        Err(shmring::TrySendError::Full { .. }) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            } else {
                while sent < count {
                    match batch.try_grant_run(record_len, count - sent) {
                        Ok(mut grant) => {
                            let n = grant.count();
                            for (k, message) in grant.messages_mut().enumerate() {
                                message.copy_from_slice(record(sent + k));
                            }
                            grant.commit(n);
                            sent += n;
                        }
                        Err(shmring::TrySendError::Full { .. }) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            drop(batch); // publishes and wakes the receiver
            end_batch(s, &mut sent, count, || Ok(record(0)))
        })();
        // SAFETY: as above.
        unsafe { out_sent.write(sent) };
        result
    };
    // SAFETY: the caller's contract.
    unsafe { call(sender, body) }
}

/// Copies as many of the `count` messages as fit now, in order, and publishes them
/// together (one store and one wake-up for the lot: for bursts of small messages);
/// never blocks. `*out_sent` receives how many were sent (always the first ones).
///
/// # Returns
/// `SHMRING_OK` when all were sent; `SHMRING_E_FULL` when only `*out_sent` (maybe
/// 0) fitted; `SHMRING_E_DISCONNECTED` when none fitted and the receiver has gone;
/// `SHMRING_E_MESSAGE_TOO_LARGE` or `SHMRING_E_INVALID_ARGUMENT` for message
/// `*out_sent` (those before it were sent); `SHMRING_E_CORRUPTED`;
/// `SHMRING_E_BUSY` (grant outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_try_send_batch(
    sender: *mut shmring_sender,
    messages: *const shmring_message,
    count: usize,
    out_sent: *mut usize,
) -> c_int {
    let body = |h: &mut SpscSender| {
        let out_sent = out_ptr(out_sent, "out_sent")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_sent.write(0) };
        if count == 0 {
            return Ok(());
        }
        if messages.is_null() {
            return Err(Failure::null("messages"));
        }
        check_len(
            count.saturating_mul(size_of::<shmring_message>()),
            "messages",
        )?;
        // SAFETY: non-null, `count` readable elements (the caller's contract),
        // at most isize::MAX bytes (checked).
        let list = unsafe { std::slice::from_raw_parts(messages, count) };
        let max = h.sender.max_message_len();
        let s = &mut h.sender;
        let mut sent = 0;
        let result = (|| {
            let mut batch = s.batch();
            while let Some(m) = list.get(sent) {
                // SAFETY: the caller's contract on each message.
                let bytes = unsafe { message_bytes(m.data, m.len, max) }?;
                match batch.try_send(bytes) {
                    Ok(()) => sent += 1,
                    Err(shmring::TrySendError::Full { .. }) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            drop(batch); // publishes and wakes the receiver
            // SAFETY: as above.
            end_batch(s, &mut sent, list.len(), || unsafe {
                message_bytes(list[0].data, list[0].len, max)
            })
        })();
        // SAFETY: as above.
        unsafe { out_sent.write(sent) };
        result
    };
    // SAFETY: the caller's contract.
    unsafe { call(sender, body) }
}

/// The end of a published batch call that sent `*sent` of `count` messages: if
/// none fitted, a plain send of the first (`first`) tells "full" from "receiver
/// gone" (and succeeds if room appeared meanwhile). `E_FULL` unless all went.
fn end_batch<'a>(
    s: &mut Sender,
    sent: &mut usize,
    count: usize,
    first: impl FnOnce() -> Result<&'a [u8], Failure>,
) -> Result<(), Failure> {
    if *sent == 0 {
        s.try_send(first()?)?;
        *sent = 1;
    }
    if *sent == count {
        Ok(())
    } else {
        Err(Failure::plain(shmring_status::E_FULL))
    }
}

/// Lends `len` bytes of the ring, if there is room now, to write a message in
/// place: `*out_data` receives their address (8-byte aligned; they hold whatever
/// was there before). Never blocks.
///
/// The bytes are the caller's until `shmring_sender_commit` (publishes a message)
/// or `shmring_sender_abort` (publishes nothing); until then every other call on
/// this sender returns `SHMRING_E_BUSY`, but `shmring_sender_close` and the
/// message family's `_max_message_len`, `_readiness_fd` and `_wakeups`. After
/// it, the pointer is invalid.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_FULL`, `SHMRING_E_DISCONNECTED`,
/// `SHMRING_E_MESSAGE_TOO_LARGE`, `SHMRING_E_CORRUPTED`, `SHMRING_E_BUSY` (a grant
/// is already outstanding), `SHMRING_E_INVALID_ARGUMENT`. On failure `*out_data`
/// is NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_try_grant(
    sender: *mut shmring_sender,
    len: usize,
    out_data: *mut *mut u8,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        grant_with(sender, len, out_data, |h: &mut SpscSender, len| {
            h.sender.try_grant(len).map(granted)
        })
    }
}

/// As `shmring_sender_try_grant`, waiting for room.
///
/// # Returns
/// As `shmring_sender_try_grant` but `SHMRING_E_FULL` (as
/// `shmring_msg_sender_send`).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_grant(
    sender: *mut shmring_sender,
    len: usize,
    out_data: *mut *mut u8,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        grant_with(sender, len, out_data, |h: &mut SpscSender, len| {
            h.sender.grant(len).map(granted)
        })
    }
}

/// As `shmring_sender_grant`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT` (as `shmring_msg_sender_send_timeout`).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_grant_timeout(
    sender: *mut shmring_sender,
    len: usize,
    timeout_ms: u64,
    out_data: *mut *mut u8,
) -> c_int {
    let timeout = timeout(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        grant_with(sender, len, out_data, |h: &mut SpscSender, len| {
            h.sender.grant_timeout(len, timeout).map(granted)
        })
    }
}

/// Publishes the first `len` bytes of the outstanding grant as one message (`len`
/// may be less than granted) and wakes the receiver. The grant's pointer is
/// invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no grant outstanding);
/// `SHMRING_E_INVALID_ARGUMENT` if `len` exceeds the grant (the grant stays
/// outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_commit(sender: *mut shmring_sender, len: usize) -> c_int {
    let body = |h: &mut SpscSender, header: &Header| {
        check_commit(len, h.grant.unwrap_or_default().1)?;
        let (data, granted) = take_loan(h, header);
        // The same grant again: the frame the first one reserved (the padding
        // before it, if any, is written), with at least the room found then.
        let mut grant = h.sender.try_grant(granted)?;
        if grant.as_mut_ptr() as usize != data {
            return Err(Failure::new(
                shmring_status::E_CORRUPTED,
                "the ring moved under the outstanding grant (a hostile receiver?): nothing committed",
            ));
        }
        grant.commit(len);
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call_in(sender, Access::Borrowed, body) }
}

/// Gives the outstanding grant back without publishing anything. The grant's
/// pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no grant outstanding).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_abort(sender: *mut shmring_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { end_loan::<SpscSender>(sender) }
}
