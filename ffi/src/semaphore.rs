//! Named counting semaphores (`shmring_semaphore`).
//!
//! `post` adds one (`SHMRING_E_FULL` at the maximum count, nothing changed);
//! `try_wait` takes one or fails with `SHMRING_E_EMPTY`; `wait` sleeps for one. A
//! unit taken by a process that dies is not given back (as with POSIX
//! semaphores). A count word over the maximum (a hostile or buggy peer) gives
//! `SHMRING_E_CORRUPTED`, never a hang.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;

use shmring::{Semaphore, SemaphoreBuilder};

use crate::event::{shmring_sync_options, sync_settings};
use crate::handle::{Kind, c_name, c_path, call_ref, close, construct, dup_fd, timeout, write_out};
use crate::message::Endpoint;
use crate::status::Failure;

/// The largest maximum count of a semaphore (`INT32_MAX`).
pub const SHMRING_SEMAPHORE_MAX_LIMIT: u32 = 2147483647;
const _: () = assert!(SHMRING_SEMAPHORE_MAX_LIMIT == shmring::SEMAPHORE_MAX_LIMIT);

/// A named counting semaphore in shared memory. Free it with
/// `shmring_semaphore_close`.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_semaphore {
    _opaque: [u8; 0],
}

/// The value of a `shmring_semaphore` handle. Shared (`call_ref` only).
#[derive(Debug)]
pub(crate) struct Sem(Semaphore);

impl Kind for Sem {
    type C = shmring_semaphore;
    const WHAT: &'static str = "semaphore";
}

impl Endpoint for Sem {}

/// Runs `body` on the live semaphore `sem`.
///
/// # Safety
/// `sem` is NULL or a live semaphore handle.
unsafe fn with_sem(
    sem: *const shmring_semaphore,
    body: impl FnOnce(&Semaphore) -> Result<(), Failure>,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call_ref(sem, |s: &Sem| body(&s.0)) }
}

/// Applies the caller's options (initial count and maximum included) to
/// `builder` and creates the semaphore.
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_sync_options`.
unsafe fn create_with(
    builder: SemaphoreBuilder,
    options: *const shmring_sync_options,
) -> Result<Sem, Failure> {
    // SAFETY: the caller's contract on `options`.
    let s = unsafe { sync_settings(options) }?;
    let mut builder = s.segment.apply(builder).initial(s.initial_count);
    if let Some(max) = s.max_count {
        builder = builder.max(max);
    }
    Ok(Sem(builder.create()?))
}

/// Creates a semaphore in named POSIX shared memory, `/dev/shm/shmring.<name>`,
/// with `options.initial_count` units and at most `options.max_count` (0: the
/// limit); removed when the creator closes it, unless `SHMRING_OPTION_KEEP`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_FULL` (an initial count over the maximum, or a maximum
/// over `SHMRING_SEMAPHORE_MAX_LIMIT`), `SHMRING_E_INVALID_NAME`,
/// `SHMRING_E_ALREADY_EXISTS`, `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_NO_SPACE`,
/// `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_create(
    name: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_semaphore,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        unsafe { create_with(SemaphoreBuilder::shm(c_name(name)?), options) }
    })
}

/// Opens the semaphore `/dev/shm/shmring.<name>` and validates it (owner, mode,
/// size, every header field). Its own initial count and maximum apply; the
/// options' are ignored.
///
/// # Returns
/// As `shmring_event_open`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_open(
    name: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_semaphore,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let (name, s) = unsafe { (c_name(name)?, sync_settings(options)?) };
        let semaphore = s.segment.apply(SemaphoreBuilder::shm(name)).open()?;
        Ok(Sem(semaphore))
    })
}

/// Creates a semaphore in a regular file at `path` (created exclusively,
/// `0600`), kept when the creator closes it unless `SHMRING_OPTION_UNLINK`: the
/// count persists.
///
/// # Returns
/// As `shmring_semaphore_create`; `SHMRING_E_NOT_FOUND` if the directory is
/// missing.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_create_file(
    path: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_semaphore,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        unsafe { create_with(SemaphoreBuilder::file(c_path(path)?), options) }
    })
}

/// Opens a semaphore file made by `shmring_semaphore_create_file`.
///
/// # Returns
/// As `shmring_semaphore_open`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_open_file(
    path: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_semaphore,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let (path, s) = unsafe { (c_path(path)?, sync_settings(options)?) };
        let semaphore = s.segment.apply(SemaphoreBuilder::file(path)).open()?;
        Ok(Sem(semaphore))
    })
}

/// Creates a semaphore in an anonymous memfd, sealed against resizing; hand it
/// over with `shmring_semaphore_fd`, open it with `shmring_semaphore_open_fd`.
///
/// # Returns
/// As `shmring_semaphore_create`, without the name errors.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_create_memfd(
    options: *const shmring_sync_options,
    out: *mut *mut shmring_semaphore,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        unsafe { create_with(SemaphoreBuilder::memfd(), options) }
    })
}

/// Opens the semaphore behind the descriptor `fd` (duplicated: the caller keeps
/// its own). Size, seals and header are checked; owner and mode are not.
///
/// # Returns
/// As `shmring_event_open_fd`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_open_fd(
    fd: c_int,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_semaphore,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let s = unsafe { sync_settings(options) }?;
        let semaphore = s
            .segment
            .apply(SemaphoreBuilder::memfd())
            .from_fd(dup_fd(fd)?)?;
        Ok(Sem(semaphore))
    })
}

/// Stores the semaphore's descriptor in `*out_fd` (the semaphore's own,
/// close-on-exec: do not close it; valid until `shmring_semaphore_close`).
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_fd(
    sem: *const shmring_semaphore,
    out_fd: *mut c_int,
) -> c_int {
    let body = |sem: &Semaphore| {
        // SAFETY: the caller's contract on `out_fd`.
        unsafe { write_out(out_fd, "out_fd", sem.fd().as_raw_fd()) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_sem(sem, body) }
}

/// Adds one unit and wakes one waiter.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_FULL` at the maximum count (nothing changed);
/// `SHMRING_E_CORRUPTED`; `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_post(sem: *const shmring_semaphore) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { with_sem(sem, |sem| Ok(sem.post()?)) }
}

/// Takes one unit if there is one; never blocks.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_EMPTY` at count zero; `SHMRING_E_CORRUPTED`;
/// `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_try_wait(sem: *const shmring_semaphore) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { with_sem(sem, |sem| Ok(sem.try_wait()?)) }
}

/// Takes one unit, sleeping while the count is zero.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_CORRUPTED`; `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_wait(sem: *const shmring_semaphore) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { with_sem(sem, |sem| Ok(sem.wait()?)) }
}

/// As `shmring_semaphore_wait`, giving up after `timeout_ms` milliseconds.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_TIMED_OUT`; `SHMRING_E_CORRUPTED`;
/// `SHMRING_E_INVALID_ARGUMENT` for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_wait_timeout(
    sem: *const shmring_semaphore,
    timeout_ms: u64,
) -> c_int {
    let timeout = timeout(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { with_sem(sem, |sem| Ok(sem.wait_timeout(timeout)?)) }
}

/// Stores the count now (a snapshot) in `*out`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_CORRUPTED` (a count over the maximum);
/// `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_semaphore_value(
    sem: *const shmring_semaphore,
    out: *mut u32,
) -> c_int {
    let body = |sem: &Semaphore| {
        let value = sem.value()?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_out(out, "out", value) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_sem(sem, body) }
}

/// Frees a semaphore handle; a named semaphore created with the default options
/// is removed. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_semaphore_close(sem: *mut shmring_semaphore) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Sem>(sem) }
}
