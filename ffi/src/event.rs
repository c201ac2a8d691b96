//! Named events (`shmring_event`) and the options events and semaphores share
//! (`shmring_sync_options`).
//!
//! An event is a notification, like a condition variable: `notify_one`/`notify_all`
//! wake the waiters whose wait (or key) they postdate and store nothing when
//! nobody waits. `shmring_event_prepare` then `shmring_event_wait_from` waits
//! without losing a notification made between a check and the sleep. The Rust
//! documentation of `shmring::event` has the exact semantics.
//!
//! Event and semaphore handles may be used from several threads at once (every
//! call but close only reads the handle).

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;

use shmring::{Event, EventBuilder, EventKey};

use crate::channel::SHMRING_OPTION_UNLINK;
use crate::channel::{SHMRING_OPTION_KEEP, SHMRING_OPTION_RECLAIM, SHMRING_OPTION_TRUST_OWNER};
use crate::handle::{Kind, c_name, c_path, call_ref, close, construct, dup_fd, timeout, write_out};
use crate::message::Endpoint;
use crate::options::SegmentSettings;
use crate::status::{Failure, guard};

/// `sizeof(shmring_sync_options)`, for a C11 `_Static_assert`.
pub const SHMRING_SYNC_OPTIONS_SIZE: usize = 56;

/// Options of the event, semaphore and shared value create and open calls. Fill it with
/// `shmring_sync_options_init` (all zero is the same: every field's default),
/// then change what you need. Passing NULL instead of options means defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shmring_sync_options {
    /// `SHMRING_OPTION_RECLAIM`, `SHMRING_OPTION_KEEP`, `SHMRING_OPTION_UNLINK`,
    /// `SHMRING_OPTION_TRUST_OWNER` (as for channels); for a shared value also
    /// `SHMRING_OPTION_SYMMETRIC_FENCES` and `SHMRING_OPTION_PREFAULT`, for a
    /// shared mutex `SHMRING_OPTION_PREFAULT`; others are refused
    /// (`SHMRING_E_INVALID_ARGUMENT`).
    pub flags: u32,
    /// Create: permission bits of a named object, e.g. `0600`; 0 means `0600`.
    pub mode: u32,
    /// Open: the permission bits an opened object may have; 0 means `0644`.
    pub allowed_mode: u32,
    /// Open: with `SHMRING_OPTION_TRUST_OWNER`, also accept objects of this uid.
    pub trusted_uid: u32,
    /// Semaphore create: the initial count.
    pub initial_count: u32,
    /// Semaphore create: the largest count, 1 to `SHMRING_SEMAPHORE_MAX_LIMIT`; 0
    /// means that limit.
    pub max_count: u32,
    /// Shared mutex create: slots in its table (how many handles can be open at
    /// once), 1 to `SHMRING_SHARED_MUTEX_MAX_SLOTS`; 0 means 16. Open or create
    /// compares it with an existing mutex's. Must be 0 for other kinds.
    pub slots: u32,
    /// Reserved for later options: must be zero.
    pub reserved32: u32,
    /// Reserved for later options: must be zero.
    pub reserved: [u64; 3],
}

const _: () = assert!(size_of::<shmring_sync_options>() == SHMRING_SYNC_OPTIONS_SIZE);
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Event>();
    send_sync::<shmring::Semaphore>();
};

pub(crate) const KNOWN_SYNC_OPTIONS: u32 = SHMRING_OPTION_RECLAIM
    | SHMRING_OPTION_KEEP
    | SHMRING_OPTION_UNLINK
    | SHMRING_OPTION_TRUST_OWNER;

/// Event and semaphore options, checked: the segment's, a semaphore's counts,
/// and a shared mutex's slots.
pub(crate) struct SyncSettings {
    pub(crate) segment: SegmentSettings,
    pub(crate) initial_count: u32,
    pub(crate) max_count: Option<u32>,
    /// `None` for 0 (the default), always `None` for a kind without slots.
    pub(crate) slots: Option<u32>,
}

/// Reads and checks the caller's options (NULL: defaults).
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_sync_options`.
pub(crate) unsafe fn sync_settings(
    options: *const shmring_sync_options,
) -> Result<SyncSettings, Failure> {
    // SAFETY: the caller's contract.
    unsafe {
        sync_settings_with(
            options,
            KNOWN_SYNC_OPTIONS,
            false,
            " for an event or semaphore",
        )
    }
}

/// As [`sync_settings`], for a kind whose options accept the flags `known`,
/// and the `slots` field if `takes_slots` (`for_what` ends the message
/// refusing another).
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_sync_options`.
pub(crate) unsafe fn sync_settings_with(
    options: *const shmring_sync_options,
    known: u32,
    takes_slots: bool,
    for_what: &str,
) -> Result<SyncSettings, Failure> {
    // SAFETY: NULL or a readable, aligned options struct (the caller's contract);
    // every bit pattern of its integer fields is valid.
    let o = unsafe { options.as_ref() }.copied().unwrap_or_default();
    if o.reserved32 != 0 || o.reserved.iter().any(|&r| r != 0) {
        return Err(Failure::invalid(
            "reserved option fields must be zero (use shmring_sync_options_init)",
        ));
    }
    if o.slots != 0 && !takes_slots {
        return Err(Failure::invalid(format!(
            "slots {} given{for_what}: only a shared mutex has slots (leave it 0)",
            o.slots
        )));
    }
    Ok(SyncSettings {
        segment: SegmentSettings::check(
            o.flags,
            known,
            for_what,
            o.mode,
            o.allowed_mode,
            o.trusted_uid,
        )?,
        initial_count: o.initial_count,
        max_count: (o.max_count != 0).then_some(o.max_count),
        slots: (o.slots != 0).then_some(o.slots),
    })
}

/// Fills `*options` with the defaults (all fields zero): mode `0600`, accepted
/// mode `0644`, no flags, initial count 0, the largest maximum.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` if `options` is NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_sync_options_init(options: *mut shmring_sync_options) -> c_int {
    // SAFETY: the caller's contract.
    guard(|| unsafe { write_out(options, "options", shmring_sync_options::default()) })
}

/// A named event in shared memory. Free it with `shmring_event_close`.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_event {
    _opaque: [u8; 0],
}

/// The value of a `shmring_event` handle. Shared (`call_ref` only).
#[derive(Debug)]
pub(crate) struct Ev(Event);

impl Kind for Ev {
    type C = shmring_event;
    const WHAT: &'static str = "event";
}

impl Endpoint for Ev {}

/// Runs `body` on the live event `event`.
///
/// # Safety
/// `event` is NULL or a live event handle.
unsafe fn with_event(
    event: *const shmring_event,
    body: impl FnOnce(&Event) -> Result<(), Failure>,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call_ref(event, |e: &Ev| body(&e.0)) }
}

/// Creates an event in named POSIX shared memory, `/dev/shm/shmring.<name>`,
/// with the channels' name rules; removed when the creator closes it, unless
/// `SHMRING_OPTION_KEEP`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`, `SHMRING_E_ALREADY_EXISTS` (see
/// `SHMRING_OPTION_RECLAIM`), `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_NO_SPACE`,
/// `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_create(
    name: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_event,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let (name, s) = unsafe { (c_name(name)?, sync_settings(options)?) };
        let event = s.segment.apply(EventBuilder::shm(name)).create()?;
        Ok(Ev(event))
    })
}

/// Opens the event `/dev/shm/shmring.<name>` and validates it: owner and mode (see
/// `options`), size, every header field (a semaphore or channel is refused with
/// `SHMRING_E_INCOMPATIBLE_LAYOUT` or `SHMRING_E_BAD_SIZE`).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`, `SHMRING_E_NOT_FOUND`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_UNTRUSTED`, `SHMRING_E_BAD_SIZE`,
/// `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_open(
    name: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_event,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let (name, s) = unsafe { (c_name(name)?, sync_settings(options)?) };
        let event = s.segment.apply(EventBuilder::shm(name)).open()?;
        Ok(Ev(event))
    })
}

/// Creates an event in a regular file at `path` (created exclusively, `0600`),
/// kept when the creator closes it unless `SHMRING_OPTION_UNLINK`.
///
/// # Returns
/// As `shmring_event_create`; `SHMRING_E_NOT_FOUND` if the directory is missing.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_create_file(
    path: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_event,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let (path, s) = unsafe { (c_path(path)?, sync_settings(options)?) };
        let event = s.segment.apply(EventBuilder::file(path)).create()?;
        Ok(Ev(event))
    })
}

/// Opens an event file made by `shmring_event_create_file`.
///
/// # Returns
/// As `shmring_event_open`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_open_file(
    path: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_event,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let (path, s) = unsafe { (c_path(path)?, sync_settings(options)?) };
        let event = s.segment.apply(EventBuilder::file(path)).open()?;
        Ok(Ev(event))
    })
}

/// Creates an event in an anonymous memfd, sealed against resizing; hand it over
/// with `shmring_event_fd`, open it with `shmring_event_open_fd`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NO_SPACE`, `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_create_memfd(
    options: *const shmring_sync_options,
    out: *mut *mut shmring_event,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let s = unsafe { sync_settings(options) }?;
        let event = s.segment.apply(EventBuilder::memfd()).create()?;
        Ok(Ev(event))
    })
}

/// Opens the event behind the descriptor `fd` (duplicated: the caller keeps its
/// own). Size, seals and header are checked; owner and mode are not.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` (negative or closed `fd`),
/// `SHMRING_E_BAD_SIZE`, `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED`,
/// `SHMRING_E_IO`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_open_fd(
    fd: c_int,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_event,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let s = unsafe { sync_settings(options) }?;
        let event = s
            .segment
            .apply(EventBuilder::memfd())
            .from_fd(dup_fd(fd)?)?;
        Ok(Ev(event))
    })
}

/// Stores the event's descriptor in `*out_fd` (the event's own, close-on-exec:
/// do not close it; valid until `shmring_event_close`).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_fd(
    event: *const shmring_event,
    out_fd: *mut c_int,
) -> c_int {
    let body = |event: &Event| {
        // SAFETY: the caller's contract on `out_fd`.
        unsafe { write_out(out_fd, "out_fd", event.fd().as_raw_fd()) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_event(event, body) }
}

/// Wakes at least one waiter whose wait began before this call (the kernel wakes
/// one sleeper); with nobody waiting, nothing happens and nothing is stored.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_notify_one(event: *const shmring_event) -> c_int {
    let body = |event: &Event| {
        event.notify_one();
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_event(event, body) }
}

/// Wakes every waiter whose wait began before this call, in every process.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_notify_all(event: *const shmring_event) -> c_int {
    let body = |event: &Event| {
        event.notify_all();
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_event(event, body) }
}

/// Stores the event's sequence now in `*out_key`: a later
/// `shmring_event_wait_from` with it returns once a notification is made after
/// this call (at once if one was made already).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_prepare(
    event: *const shmring_event,
    out_key: *mut u32,
) -> c_int {
    let body = |event: &Event| {
        // SAFETY: the caller's contract on `out_key`.
        unsafe { write_out(out_key, "out_key", event.prepare().to_raw()) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_event(event, body) }
}

/// Waits for the next notification (one made after this call starts), as long as
/// it takes (`shmring_event_wait_timeout` bounds it).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_wait(event: *const shmring_event) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { with_event(event, |event| Ok(event.wait()?)) }
}

/// As `shmring_event_wait`, giving up after `timeout_ms` milliseconds.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_TIMED_OUT`; `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_wait_timeout(
    event: *const shmring_event,
    timeout_ms: u64,
) -> c_int {
    let timeout = timeout(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { with_event(event, |event| Ok(event.wait_timeout(timeout)?)) }
}

/// Waits until a notification made after `key` was taken
/// (`shmring_event_prepare`), giving up after `timeout_ms` milliseconds;
/// `UINT64_MAX` waits without limit.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_TIMED_OUT`; `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_event_wait_from(
    event: *const shmring_event,
    key: u32,
    timeout_ms: u64,
) -> c_int {
    let key = EventKey::from_raw(key);
    let body = |event: &Event| {
        if timeout_ms == u64::MAX {
            event.wait_from(key)?;
        } else {
            event.wait_from_timeout(key, timeout(timeout_ms))?;
        }
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_event(event, body) }
}

/// Frees an event handle; a named event created with the default options is
/// removed. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_event_close(event: *mut shmring_event) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Ev>(event) }
}
