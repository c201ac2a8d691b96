//! The sending side: copying sends, zero-copy grants, batches.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::time::Duration;

use shmring::{SendGrant, Sender};

use crate::channel::{channel_ref, shmring_channel};
use crate::handle::{State, Stateful, call, in_callback};
use crate::readiness::{WakeupsInfo, readiness_code, shmring_wakeups, value_or_code};
use crate::status::{Failure, guard, shmring_status};
use crate::{check_len, out_ptr};

/// The sending side of a channel (one per channel at a time, across all
/// processes). Make it with `shmring_sender_new`, free it with
/// `shmring_sender_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
pub struct shmring_sender {
    state: Cell<State>,
    /// Cached: readable in every state.
    max_message_len: usize,
    /// Cached (fixed for the endpoint's life): readable in every state. The
    /// descriptor is owned by `sender`.
    readiness_fd: c_int,
    /// Cached, as `readiness_fd`.
    wakeups: WakeupsInfo,
    /// The outstanding grant (state `Borrowed`). Its `'static` borrow of `sender` is
    /// kept honest by the state flag: the grant is taken out (commit, abort, close)
    /// before `sender` is used again or dropped. Declared first: dropped first.
    grant: UnsafeCell<Option<SendGrant<'static>>>,
    sender: UnsafeCell<Sender>,
}

impl std::fmt::Debug for shmring_sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shmring_sender")
            .field("state", &self.state.get())
            .field("max_message_len", &self.max_message_len)
            .field("readiness_fd", &self.readiness_fd)
            .field("wakeups", &self.wakeups)
            .finish_non_exhaustive()
    }
}

// A handle may move to another thread between calls.
const _: () = {
    const fn send<T: Send>() {}
    send::<shmring_sender>();
};

impl Stateful for shmring_sender {
    const WHAT: &'static str = "sender";
    fn state(&self) -> &Cell<State> {
        &self.state
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

impl shmring_sender {
    /// Runs `f` on the endpoint if no grant holds it.
    fn with_sender<R>(&self, f: impl FnOnce(&mut Sender) -> R) -> Result<R, Failure> {
        self.check_idle()?;
        // SAFETY: Idle: no grant borrows the sender, and no other call on this
        // handle is running (one thread at a time, the caller's contract; this
        // handle has no callbacks). So this is the only reference while `f` runs.
        Ok(f(unsafe { &mut *self.sender.get() }))
    }

    /// The caller's message, checked: NULL only when empty, no longer than the
    /// channel takes (checked before the slice is made: a wild `len` may not
    /// describe memory).
    ///
    /// # Safety
    /// Unless NULL or `len` is 0 or too large, `data` points to `len` readable
    /// bytes that nothing writes during the call.
    unsafe fn message<'a>(&self, data: *const c_void, len: usize) -> Result<&'a [u8], Failure> {
        if len > 0 && data.is_null() {
            return Err(Failure::null("data"));
        }
        if len > self.max_message_len {
            return Err(Failure::new(
                shmring_status::E_MESSAGE_TOO_LARGE,
                format!(
                    "message too large: {len} bytes, at most {}",
                    self.max_message_len
                ),
            ));
        }
        if len == 0 {
            return Ok(&[]);
        }
        // SAFETY: non-null, at most max_message_len (< isize::MAX) bytes, readable
        // (the caller's contract).
        Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
    }

    /// Makes a grant with `make`, keeps it, and stores its bytes' address.
    fn lend(
        &self,
        out_data: *mut *mut u8,
        make: impl FnOnce(&'static mut Sender) -> shmring::Result<SendGrant<'static>>,
    ) -> Result<(), Failure> {
        let out_data = out_ptr(out_data, "out_data")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_data.write(std::ptr::null_mut()) };
        self.check_idle()?;
        // SAFETY: Idle, as in `with_sender`: the only reference. The `'static`
        // lifetime is the state flag's promise: the grant made from it is stored in
        // `self.grant` with the state `Borrowed` until it is taken out again
        // (commit, abort, close), and nothing else touches `self.sender` meanwhile.
        let sender: &'static mut Sender = unsafe { &mut *self.sender.get() };
        let mut grant = make(sender)?;
        let data = grant.as_mut_ptr();
        // SAFETY: Idle until the next line: nothing else refers to the cell.
        unsafe { *self.grant.get() = Some(grant) };
        self.state.set(State::Borrowed);
        // SAFETY: as above.
        unsafe { out_data.write(data) };
        Ok(())
    }

    /// Commits the first `len` bytes of the outstanding grant (`Some`), or drops it
    /// (`None`: abort).
    fn finish(&self, commit: Option<usize>) -> Result<(), Failure> {
        match self.state.get() {
            State::Borrowed => {}
            State::Idle => {
                return Err(Failure::new(
                    shmring_status::E_NOT_BORROWED,
                    "no grant is outstanding on this sender",
                ));
            }
            State::InCallback => return Err(in_callback(Self::WHAT)),
            State::Poisoned => return self.check_idle(),
        }
        // SAFETY: Borrowed: the cell holds the grant, and this call is the only one
        // on the handle.
        let slot = unsafe { &mut *self.grant.get() };
        if let (Some(len), Some(grant)) = (commit, slot.as_ref()) {
            if len > grant.len() {
                return Err(Failure::invalid(format!(
                    "commit of {len} bytes exceeds the grant of {} (the grant is still outstanding)",
                    grant.len()
                )));
            }
        }
        let grant = slot.take();
        self.state.set(State::Idle);
        if let (Some(len), Some(grant)) = (commit, grant) {
            grant.commit(len);
        }
        Ok(())
    }
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
/// - `channel` is NULL or a live channel handle.
/// - `out` is NULL or points to a writable `shmring_sender *`; it receives the new
///   handle (owned by the caller: free it with `shmring_sender_close`), or NULL on
///   failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_new(
    channel: *const shmring_channel,
    out: *mut *mut shmring_sender,
) -> c_int {
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's contract.
        let channel = unsafe { channel_ref(channel) }?;
        let sender = channel.channel.sender()?;
        let handle = Box::new(shmring_sender {
            state: Cell::new(State::Idle),
            max_message_len: sender.max_message_len(),
            readiness_fd: sender.readiness_fd().as_raw_fd(),
            wakeups: WakeupsInfo::new(sender.wakeups()),
            grant: UnsafeCell::new(None),
            sender: UnsafeCell::new(sender),
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
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
/// `sender` is NULL or a live sender handle, not used by any thread during or
/// after this call. Pointers from an outstanding grant become invalid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_sender_close(sender: *mut shmring_sender) -> c_int {
    let Some(ptr) = NonNull::new(sender) else {
        return shmring_status::OK.code();
    };
    guard(|| {
        // SAFETY: a live handle (the caller's contract).
        let handle = unsafe { ptr.as_ref() };
        if handle.state.get() == State::InCallback {
            return Err(in_callback(shmring_sender::WHAT));
        }
        // SAFETY: no other call is running on the handle (the caller's contract):
        // the cell is ours. The grant borrows the sender, so it goes first.
        unsafe { *handle.grant.get() = None };
        // SAFETY: made by `Box::into_raw` in `shmring_sender_new`, given back by its
        // owner: freed once, here.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
        Ok(())
    })
}

/// Stores the largest message the channel takes in `*out`. Allowed while a grant
/// is outstanding.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `sender` is NULL or a live sender handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_max_message_len(
    sender: *const shmring_sender,
    out: *mut usize,
) -> c_int {
    let body = |h: &shmring_sender| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(h.max_message_len) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(sender, body) }
}

/// Stores in `*out` whether a receiver holds the other end now (a snapshot: it
/// may attach or go at any time).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_BUSY` (grant outstanding), `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `sender` is NULL or a live sender handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_is_receiver_connected(
    sender: *mut shmring_sender,
    out: *mut bool,
) -> c_int {
    let body = |h: &shmring_sender| {
        let out = out_ptr(out, "out")?;
        let connected = h.with_sender(|s| s.is_receiver_connected())??;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(connected) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(sender, body) }
}

/// The sender's readiness descriptor for room, for `epoll`, `poll` or `select`:
/// it becomes readable (`EPOLLIN`, or `EPOLLHUP`) after
/// `shmring_sender_arm_for_space` returned `SHMRING_ARMED`, when the receiver
/// frees room, when the receiver goes (closes or dies), or every 25 ms for a
/// polled sender (`shmring_sender_wakeups`).
///
/// The descriptor belongs to the sender: the same for the handle's life, closed
/// by `shmring_sender_close` (remove it from your `epoll` set first). Never read
/// it (arming drains it) and never close it. Allowed while a grant is
/// outstanding.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_INVALID_ARGUMENT` for a NULL `sender`.
///
/// # Safety
/// `sender` is NULL or a live sender handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_readiness_fd(sender: *const shmring_sender) -> c_int {
    value_or_code(|fd| {
        let body = |h: &shmring_sender| {
            *fd = h.readiness_fd;
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(sender, body) }
    })
}

/// Arms the readiness descriptor (`shmring_sender_readiness_fd`) for room for a
/// message of `len` bytes. Never blocks; with nobody armed, sending and receiving
/// make no system call for it.
///
/// The loop: when the descriptor is readable, send with `shmring_sender_try_send`
/// until `SHMRING_E_FULL`, then arm: on `SHMRING_READY` send again, on
/// `SHMRING_ARMED` go back to the event loop.
///
/// # Returns
/// `SHMRING_READY` (1): the message fits now, or the receiver has gone (the next
/// send says which); `SHMRING_ARMED` (2): the descriptor becomes readable when
/// that may have changed; or a negative code: `SHMRING_E_MESSAGE_TOO_LARGE`
/// (`len` above the channel's largest message), `SHMRING_E_BUSY` (grant
/// outstanding), `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `sender` is NULL or a live sender handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_arm_for_space(
    sender: *mut shmring_sender,
    len: usize,
) -> c_int {
    value_or_code(|readiness| {
        let body = |h: &shmring_sender| {
            *readiness = readiness_code(h.with_sender(|s| s.arm_for_space(len))??);
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(sender, body) }
    })
}

/// Stores in `*out` how the readiness descriptor is woken: `SHMRING_WAKEUPS_DOORBELL`
/// (by the receiver) or `SHMRING_WAKEUPS_POLLED` (every 25 ms while armed, where
/// no doorbell could be shared). If `out_reason` is not NULL, `*out_reason`
/// receives why it is polled (`""` for a doorbell): a NUL-terminated string owned
/// by the sender, valid until `shmring_sender_close`. Fixed for the handle's life;
/// allowed while a grant is outstanding.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` for a NULL `sender` or `out`.
///
/// # Safety
/// `sender` is NULL or a live sender handle; `out` and `out_reason` are NULL or
/// writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_wakeups(
    sender: *const shmring_sender,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract on `out` and `out_reason`.
    let body = |h: &shmring_sender| unsafe { h.wakeups.write(out, out_reason) };
    // SAFETY: the caller's contract.
    unsafe { call(sender, body) }
}

/// The common body of the copying sends.
///
/// # Safety
/// As the exported functions.
unsafe fn send_with<E>(
    sender: *mut shmring_sender,
    data: *const c_void,
    len: usize,
    send: impl FnOnce(&mut Sender, &[u8]) -> Result<(), E>,
) -> c_int
where
    Failure: From<E>,
{
    let body = |h: &shmring_sender| {
        // SAFETY: the caller's contract on `data`.
        let message = unsafe { h.message(data, len) }?;
        Ok(h.with_sender(|s| send(s, message))??)
    };
    // SAFETY: delegated to the caller.
    unsafe { call(sender, body) }
}

/// Copies `len` bytes at `data` into the channel as one message if there is room
/// now; never blocks. While there is room, messages queue whether or not a
/// receiver is attached.
///
/// # Returns
/// `SHMRING_OK` (committed: delivered to a receiver even if this process dies
/// now); `SHMRING_E_FULL`; `SHMRING_E_DISCONNECTED` (full and the receiver has
/// gone); `SHMRING_E_MESSAGE_TOO_LARGE`; `SHMRING_E_CORRUPTED`; `SHMRING_E_BUSY`
/// (grant outstanding); `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// - `sender` is NULL or a live sender handle.
/// - `data` is NULL only if `len` is 0, else points to `len` readable bytes.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_try_send(
    sender: *mut shmring_sender,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(sender, data, len, |s, m| s.try_send(m)) }
}

/// As `shmring_sender_try_send`, waiting for room (by the wait strategy) instead of
/// returning `SHMRING_E_FULL`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_DISCONNECTED` if the receiver goes while the channel
/// is full; the other codes of `shmring_sender_try_send` but `SHMRING_E_FULL`.
///
/// # Safety
/// As `shmring_sender_try_send`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_send(
    sender: *mut shmring_sender,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(sender, data, len, |s, m| s.send(m)) }
}

/// As `shmring_sender_send`, giving up after `timeout_ms` milliseconds (relative,
/// on the monotonic clock) with `SHMRING_E_TIMED_OUT`. 0 gives up as soon as the
/// call would wait (after a brief spin); a timeout too large for the clock
/// (`UINT64_MAX`) waits without limit.
///
/// # Safety
/// As `shmring_sender_try_send`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_send_timeout(
    sender: *mut shmring_sender,
    data: *const c_void,
    len: usize,
    timeout_ms: u64,
) -> c_int {
    let timeout = Duration::from_millis(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { send_with(sender, data, len, |s, m| s.send_timeout(m, timeout)) }
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
/// - `sender` is NULL or a live sender handle.
/// - `records` is NULL only if `count * record_len` is 0, else points to
///   `count * record_len` readable bytes that do not change during the call.
/// - `out_sent` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_try_send_records(
    sender: *mut shmring_sender,
    records: *const c_void,
    record_len: usize,
    count: usize,
    out_sent: *mut usize,
) -> c_int {
    let body = |h: &shmring_sender| {
        let out_sent = out_ptr(out_sent, "out_sent")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_sent.write(0) };
        if count == 0 {
            return Ok(());
        }
        let total = count.saturating_mul(record_len);
        check_len(total, "records")?;
        // SAFETY: the first record, if any bytes, lies within the caller's array;
        // this checks the pointer and the record length against the largest message.
        unsafe { h.message(records, record_len) }?;
        let all: &[u8] = if total == 0 {
            &[]
        } else {
            // SAFETY: non-null (checked by `message`, as `record_len > 0` here),
            // `total` readable bytes (the caller's contract), at most isize::MAX.
            unsafe { std::slice::from_raw_parts(records.cast::<u8>(), total) }
        };
        let record = |i: usize| &all[i * record_len..(i + 1) * record_len];
        let mut sent = 0;
        let result = h.with_sender(|s| {
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
        });
        // SAFETY: as above.
        unsafe { out_sent.write(sent) };
        result?
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
/// - `sender` is NULL or a live sender handle.
/// - `messages` is NULL only if `count` is 0, else points to `count` readable
///   `shmring_message`s, each of whose `data` is as in `shmring_sender_try_send`.
/// - `out_sent` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_try_send_batch(
    sender: *mut shmring_sender,
    messages: *const shmring_message,
    count: usize,
    out_sent: *mut usize,
) -> c_int {
    let body = |h: &shmring_sender| {
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
        let mut sent = 0;
        let result = h.with_sender(|s| {
            let mut batch = s.batch();
            while let Some(m) = list.get(sent) {
                // SAFETY: the caller's contract on each message.
                let bytes = unsafe { h.message(m.data, m.len) }?;
                match batch.try_send(bytes) {
                    Ok(()) => sent += 1,
                    Err(shmring::TrySendError::Full { .. }) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            drop(batch); // publishes and wakes the receiver
            // SAFETY: as above.
            end_batch(s, &mut sent, list.len(), || unsafe {
                h.message(list[0].data, list[0].len)
            })
        });
        // SAFETY: as above.
        unsafe { out_sent.write(sent) };
        result?
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

/// The common body of the grant calls.
///
/// # Safety
/// As the exported functions.
unsafe fn grant_with<E>(
    sender: *mut shmring_sender,
    len: usize,
    out_data: *mut *mut u8,
    make: impl FnOnce(&'static mut Sender, usize) -> Result<SendGrant<'static>, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    // SAFETY: delegated to the caller.
    unsafe {
        call(sender, |h| {
            h.lend(out_data, |s| make(s, len).map_err(shmring::Error::from))
        })
    }
}

/// Lends `len` bytes of the ring, if there is room now, to write a message in
/// place: `*out_data` receives their address (8-byte aligned; they hold whatever
/// was there before). Never blocks.
///
/// The bytes are the caller's until `shmring_sender_commit` (publishes a message)
/// or `shmring_sender_abort` (publishes nothing); until then every other call on
/// this sender but `shmring_sender_max_message_len` and `shmring_sender_close`
/// returns `SHMRING_E_BUSY`. After it, the pointer is invalid.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_FULL`, `SHMRING_E_DISCONNECTED`,
/// `SHMRING_E_MESSAGE_TOO_LARGE`, `SHMRING_E_CORRUPTED`, `SHMRING_E_BUSY` (a grant
/// is already outstanding), `SHMRING_E_INVALID_ARGUMENT`. On failure `*out_data`
/// is NULL.
///
/// # Safety
/// - `sender` is NULL or a live sender handle.
/// - `out_data` is NULL or points to a writable `uint8_t *`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_try_grant(
    sender: *mut shmring_sender,
    len: usize,
    out_data: *mut *mut u8,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { grant_with(sender, len, out_data, |s, len| s.try_grant(len)) }
}

/// As `shmring_sender_try_grant`, waiting for room.
///
/// # Returns
/// As `shmring_sender_send`.
///
/// # Safety
/// As `shmring_sender_try_grant`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_grant(
    sender: *mut shmring_sender,
    len: usize,
    out_data: *mut *mut u8,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { grant_with(sender, len, out_data, |s, len| s.grant(len)) }
}

/// As `shmring_sender_grant`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT` (as `shmring_sender_send_timeout`).
///
/// # Safety
/// As `shmring_sender_try_grant`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_grant_timeout(
    sender: *mut shmring_sender,
    len: usize,
    timeout_ms: u64,
    out_data: *mut *mut u8,
) -> c_int {
    let timeout = Duration::from_millis(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        grant_with(sender, len, out_data, |s, len| {
            s.grant_timeout(len, timeout)
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
/// `sender` is NULL or a live sender handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_commit(sender: *mut shmring_sender, len: usize) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call(sender, |h| h.finish(Some(len))) }
}

/// Gives the outstanding grant back without publishing anything. The grant's
/// pointer is invalid afterwards.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (no grant outstanding).
///
/// # Safety
/// `sender` is NULL or a live sender handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sender_abort(sender: *mut shmring_sender) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call(sender, |h| h.finish(None)) }
}
