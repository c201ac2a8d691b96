//! Shared mutexes (`shmring_shared_mutex`): a value of a fixed number of bytes
//! guarded by a robust lock shared between processes (`shmring::state::SharedMutex`;
//! design `docs/design/shared-state.md`).
//!
//! `shmring_shared_mutex_create` (named shared memory), `_create_file` or
//! `_create_memfd` makes a mutex over `value_size` zero bytes; `_open`,
//! `_open_file`, `_open_fd` attach to one, `_open_or_create` and
//! `_open_or_create_file` do either without a race. Each handle holds a slot of
//! the mutex's table while it lives (16 handles at once unless the creator's
//! `shmring_sync_options.slots` says otherwise, up to 64: `SHMRING_E_TABLE_FULL`
//! past that; the slot of a handle whose process died is taken over).
//!
//! `shmring_shared_mutex_lock` (with a timeout) and `_try_lock` take the lock;
//! while the handle holds it, `_read` and `_write` copy the value out and in,
//! and `_unlock` lets it go (closing the handle unlocks too).
//!
//! **`SHMRING_E_OWNER_DIED` is a failure code with the lock held.** A holder
//! whose process died (SIGKILL included) holding the lock does not keep it: the
//! next locker takes it over and gets `SHMRING_E_OWNER_DIED`, *holding the
//! lock*: the value may be half-updated. Repair it, call
//! `shmring_shared_mutex_mark_consistent`, then unlock; or unlock without the
//! mark, and the next locker is told again. Either way the caller must unlock.
//!
//! A mutex handle is used by one thread at a time (threads each open their
//! own: the lock belongs to the handle, not to a thread). A forked child opens
//! its own too (by name, or from the descriptor): a handle inherited across
//! `fork` is the parent's slot and lock.

use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;

use shmring::state::{LockError, LockResult};
use shmring::{SharedMutex, SharedMutexBuilder, SharedMutexGuard};

use crate::channel::SHMRING_OPTION_PREFAULT;
use crate::event::{KNOWN_SYNC_OPTIONS, shmring_sync_options, sync_settings_with};
use crate::handle::{
    Kind, bytes_mut, c_name, c_path, call, check_len, close, construct, deadline, dup_fd,
    message_bytes, write_out,
};
use crate::message::Endpoint;
use crate::status::{Failure, shmring_status};

/// The most slots a shared mutex's table can have (`shmring_sync_options.slots`).
pub const SHMRING_SHARED_MUTEX_MAX_SLOTS: u32 = 64;
const _: () =
    assert!(SHMRING_SHARED_MUTEX_MAX_SLOTS == shmring::ring_core::state::header::MAX_STATE_SLOTS);

/// The largest value size of a shared mutex (1 MiB, as a shared value's).
pub const SHMRING_SHARED_MUTEX_MAX_SIZE: usize = 1048576;
const _: () = assert!(
    SHMRING_SHARED_MUTEX_MAX_SIZE
        == shmring::ring_core::state::header::MAX_STATE_VALUE_SIZE as usize
);

/// A created or opened shared mutex. Lock it with `shmring_shared_mutex_lock`;
/// free it (unlocking, if it holds the lock) with `shmring_shared_mutex_close`.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_shared_mutex {
    _opaque: [u8; 0],
}

/// The value of a `shmring_shared_mutex` handle: the lock, while the handle
/// holds it, is kept as a detached guard of the os handle
/// (`SharedMutexGuard::detach`), and a call that needs it takes the guard back
/// (`SharedMutex::reattach`): nothing here borrows the handle across calls.
#[derive(Debug)]
pub(crate) struct Mutex(SharedMutex<[u8]>);

impl Drop for Mutex {
    fn drop(&mut self) {
        // Closing the handle unlocks a lock it holds (the value stays marked
        // inconsistent if it was): a lock word a peer wrote is freed anyway,
        // nothing to report from a close.
        if let Some(guard) = self.0.reattach() {
            let _ = guard.unlock();
        }
    }
}

impl Kind for Mutex {
    type C = shmring_shared_mutex;
    const WHAT: &'static str = "shared mutex";
}

impl Endpoint for Mutex {}

// A mutex handle moves between threads (one at a time).
const _: () = {
    const fn send<T: Send>() {}
    send::<SharedMutex<[u8]>>();
};

/// The flags a shared mutex's options accept: the events' and semaphores', and
/// prefaulting. Not `SHMRING_OPTION_SYMMETRIC_FENCES`: the lock uses no fence
/// pair (a mutex is always created without the asymmetric fences' flag, so
/// valgrind and seccomp-filtered processes open it as it is).
const KNOWN_MUTEX_OPTIONS: u32 = KNOWN_SYNC_OPTIONS | SHMRING_OPTION_PREFAULT;

/// The caller's options (NULL: defaults) applied to `builder`.
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_sync_options`.
unsafe fn with_options(
    builder: SharedMutexBuilder,
    options: *const shmring_sync_options,
) -> Result<SharedMutexBuilder, Failure> {
    // SAFETY: the caller's contract.
    let settings =
        unsafe { sync_settings_with(options, KNOWN_MUTEX_OPTIONS, true, " for a shared mutex") }?;
    let builder = settings.segment.apply(builder);
    // Out of range is refused by the create, before any system call
    // (`InvalidMutexSlots`: `SHMRING_E_INVALID_CAPACITY`).
    Ok(match settings.slots {
        Some(slots) => builder.slots(slots as usize),
        None => builder,
    })
}

/// Runs `body` on the live mutex handle `mutex`.
///
/// # Safety
/// `mutex` is NULL or a live shared mutex handle, used by no other thread
/// during the call.
unsafe fn with_mutex(
    mutex: *const shmring_shared_mutex,
    body: impl FnOnce(&SharedMutex<[u8]>) -> Result<(), Failure>,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call(mutex, |m: &mut Mutex| body(&m.0)) }
}

/// The failure of a call that needs the lock held by this handle.
fn not_locked(mutex: &SharedMutex<[u8]>) -> Failure {
    Failure::new(
        shmring_status::E_NOT_BORROWED,
        format!("{}: this handle does not hold the lock", mutex.describe()),
    )
}

/// Runs `body` on the guard of the lock this handle holds (reattached, then
/// detached again: the lock stays held whatever `body` returns); without the
/// lock, `SHMRING_E_NOT_BORROWED` and `body` is not run. (Should `body` panic,
/// the guard unlocks as it unwinds, and the handle is poisoned.)
fn with_guard(
    mutex: &SharedMutex<[u8]>,
    body: impl FnOnce(&mut SharedMutexGuard<'_, [u8]>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut guard = mutex.reattach().ok_or_else(|| not_locked(mutex))?;
    let result = body(&mut guard);
    guard.detach();
    result
}

/// A lock call's outcome: the guard detached (the handle keeps the lock) on
/// success and on `OwnerDied`.
fn locked(mutex: &SharedMutex<[u8]>, result: LockResult<'_, [u8]>) -> Result<(), Failure> {
    match result {
        Ok(guard) => {
            guard.detach();
            Ok(())
        }
        Err(LockError::OwnerDied(guard)) => {
            let how = match guard.taken_from() {
                Some(word) => format!("its holder (lock word {word:#x}) died holding it"),
                None => "an earlier holder died holding it and the value is not marked \
                         consistent since"
                    .to_owned(),
            };
            guard.detach();
            Err(Failure::new(
                shmring_status::E_OWNER_DIED,
                format!(
                    "{}: {how}; this handle HOLDS THE LOCK now: repair the value, \
                     shmring_shared_mutex_mark_consistent, then unlock",
                    mutex.describe()
                ),
            ))
        }
        Err(LockError::WouldBlock { state }) => Err(Failure::new(
            shmring_status::E_BUSY,
            format!("{}: the lock is held (state {state:#x})", mutex.describe()),
        )),
        // A polling loop's code: no allocation.
        Err(LockError::TimedOut { .. }) => Err(Failure::plain(shmring_status::E_TIMED_OUT)),
        Err(LockError::AlreadyHeld) => Err(Failure::new(
            shmring_status::E_ALREADY_LOCKED,
            format!("{}: this handle holds the lock already", mutex.describe()),
        )),
    }
}

/// Creates a shared mutex over `value_size` bytes in named POSIX shared memory,
/// `/dev/shm/shmring.<name>` (the channels' name rules), its value zero bytes,
/// unlocked, and opens this handle on it (the first of its slots: 16, or
/// `options->slots`). Removed when the creator closes it, unless
/// `SHMRING_OPTION_KEEP`. Options: the events' flags, `SHMRING_OPTION_PREFAULT`
/// and `slots` (the lock uses no fence pair: `SHMRING_OPTION_SYMMETRIC_FENCES`
/// is refused).
///
/// # Arguments
/// - `name`: the segment's name.
/// - `value_size`: 1 to `SHMRING_SHARED_MUTEX_MAX_SIZE` bytes.
/// - `options`: NULL for defaults.
/// - `out`: the new handle.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_CAPACITY` (a size or a slot count out of
/// range), `SHMRING_E_INVALID_NAME`, `SHMRING_E_ALREADY_EXISTS` (see
/// `SHMRING_OPTION_RECLAIM`), `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_NO_SPACE`,
/// `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_create(
    name: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::shm(c_name(name)?), options) }?;
        Ok(Mutex(builder.create_bytes(value_size)?))
    })
}

/// Opens the shared mutex `/dev/shm/shmring.<name>`, whatever its size, and
/// validates it: owner and mode (see `options`), size, every header field
/// (another kind of object is refused).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`, `SHMRING_E_NOT_FOUND`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_UNTRUSTED`, `SHMRING_E_BAD_SIZE`,
/// `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED`,
/// `SHMRING_E_TABLE_FULL` (every slot held by a live handle),
/// `SHMRING_E_UNSUPPORTED` (a segment whose header asks for the asymmetric
/// fences, which this process cannot take part in), `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_open(
    name: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::shm(c_name(name)?), options) }?;
        Ok(Mutex(builder.open_bytes()?))
    })
}

/// Opens the shared mutex `/dev/shm/shmring.<name>`, or creates it with
/// `value_size` bytes if there is none, without a race: of processes racing,
/// one creates and the others open that mutex.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INCOMPATIBLE_LAYOUT` if the object there is not a
/// shared mutex of this layout version, or has another size (the message names
/// the field and both values); else as `shmring_shared_mutex_open` and
/// `shmring_shared_mutex_create`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_open_or_create(
    name: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::shm(c_name(name)?), options) }?;
        Ok(Mutex(builder.open_or_create_bytes(value_size)?))
    })
}

/// Creates a shared mutex over `value_size` bytes in a regular file at `path`
/// (created exclusively, `0600`), kept when the creator closes it unless
/// `SHMRING_OPTION_UNLINK`: the value survives the processes.
///
/// # Returns
/// As `shmring_shared_mutex_create`; `SHMRING_E_NOT_FOUND` if the directory is
/// missing.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_create_file(
    path: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::file(c_path(path)?), options) }?;
        Ok(Mutex(builder.create_bytes(value_size)?))
    })
}

/// Opens a shared mutex file made by `shmring_shared_mutex_create_file`.
///
/// # Returns
/// As `shmring_shared_mutex_open`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_open_file(
    path: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::file(c_path(path)?), options) }?;
        Ok(Mutex(builder.open_bytes()?))
    })
}

/// Opens the shared mutex file at `path`, or creates it with `value_size`
/// bytes, without a race.
///
/// # Returns
/// As `shmring_shared_mutex_open_or_create`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_open_or_create_file(
    path: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::file(c_path(path)?), options) }?;
        Ok(Mutex(builder.open_or_create_bytes(value_size)?))
    })
}

/// Creates a shared mutex over `value_size` bytes in an anonymous memfd, sealed
/// against resizing; hand it over with `shmring_shared_mutex_fd`, open it with
/// `shmring_shared_mutex_open_fd`.
///
/// # Returns
/// As `shmring_shared_mutex_create`, without the name errors.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_create_memfd(
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::memfd(), options) }?;
        Ok(Mutex(builder.create_bytes(value_size)?))
    })
}

/// Opens the shared mutex behind the descriptor `fd` (duplicated: the caller
/// keeps its own). Size, seals and header are checked; owner and mode are not.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` (negative or closed `fd`),
/// `SHMRING_E_BAD_SIZE`, `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED`,
/// `SHMRING_E_UNSUPPORTED`, `SHMRING_E_IO`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_open_fd(
    fd: c_int,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_mutex,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { with_options(SharedMutexBuilder::memfd(), options) }?;
        Ok(Mutex(builder.from_fd(dup_fd(fd)?)?))
    })
}

/// Stores the mutex's descriptor in `*out_fd` (the mutex's own, close-on-exec:
/// do not close it; valid until `shmring_shared_mutex_close`), to hand a memfd
/// mutex to another process.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_fd(
    mutex: *const shmring_shared_mutex,
    out_fd: *mut c_int,
) -> c_int {
    let body = |mutex: &SharedMutex<[u8]>| {
        // SAFETY: the caller's contract on `out_fd`.
        unsafe { write_out(out_fd, "out_fd", mutex.fd().as_raw_fd()) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, body) }
}

/// Stores the value's size in bytes in `*out_size`: what `shmring_shared_mutex_write`
/// takes and the least `shmring_shared_mutex_read`'s buffer holds.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_size(
    mutex: *const shmring_shared_mutex,
    out_size: *mut usize,
) -> c_int {
    let body = |mutex: &SharedMutex<[u8]>| {
        // SAFETY: the caller's contract on `out_size`.
        unsafe { write_out(out_size, "out_size", mutex.value_size()) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, body) }
}

/// Takes the lock, sleeping (futex) while a live holder in any process has it,
/// for at most `timeout_ms` milliseconds (0: one try without sleeping;
/// `UINT64_MAX`: no limit). A holder that died is found within a bounded time
/// of its death and its lock taken over.
///
/// # Returns
/// `SHMRING_OK`: this handle holds the lock. **`SHMRING_E_OWNER_DIED`: this
/// handle holds the lock too**, but a holder died holding it (now, or earlier
/// and nobody has marked the value consistent since): the value may be
/// half-updated; repair it, `shmring_shared_mutex_mark_consistent`, and unlock
/// as after `SHMRING_OK`. `SHMRING_E_TIMED_OUT` (a live holder kept it);
/// `SHMRING_E_ALREADY_LOCKED` (this handle holds the lock already: a second
/// lock would wait for itself); `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_lock(
    mutex: *mut shmring_shared_mutex,
    timeout_ms: u64,
) -> c_int {
    let deadline = deadline(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, |m| locked(m, m.lock_deadline(deadline))) }
}

/// Takes the lock if it is free, or held by a holder found dead (one probe of
/// its liveness); never sleeps.
///
/// # Returns
/// `SHMRING_OK`; **`SHMRING_E_OWNER_DIED` with the lock held**, as for
/// `shmring_shared_mutex_lock`; `SHMRING_E_BUSY` (a live holder has it);
/// `SHMRING_E_ALREADY_LOCKED`; `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_try_lock(mutex: *mut shmring_shared_mutex) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, |m| locked(m, m.try_lock())) }
}

/// Lets go of the lock this handle holds (waking a sleeping locker). After
/// `SHMRING_E_OWNER_DIED` without `shmring_shared_mutex_mark_consistent`, the
/// value stays marked inconsistent: the next locker gets
/// `SHMRING_E_OWNER_DIED` too.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (this handle does not hold the
/// lock); `SHMRING_E_CORRUPTED` (the lock word no longer held this handle's
/// id: a peer wrote it; the lock is let go anyway); `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_unlock(mutex: *mut shmring_shared_mutex) -> c_int {
    let body = |m: &SharedMutex<[u8]>| {
        let guard = m.reattach().ok_or_else(|| not_locked(m))?;
        Ok(guard.unlock()?)
    };
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, body) }
}

/// Marks the value consistent again, after `SHMRING_E_OWNER_DIED`, while this
/// handle holds the lock: later lockers get `SHMRING_OK`. Call it once the
/// value is repaired; it does not unlock.
///
/// # Returns
/// `SHMRING_OK` (also when the value was consistent); `SHMRING_E_NOT_BORROWED`
/// (this handle does not hold the lock); `SHMRING_E_CORRUPTED` (a peer wrote
/// the lock word: nothing changed); `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_mark_consistent(
    mutex: *mut shmring_shared_mutex,
) -> c_int {
    let body = |m: &SharedMutex<[u8]>| with_guard(m, |guard| Ok(guard.mark_consistent()?));
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, body) }
}

/// Copies the value into `buf` (its first `value_size` bytes; the rest is left
/// alone), while this handle holds the lock. A peer that ignores the lock can
/// write the value meanwhile: the bytes are then garbage, never out of bounds.
///
/// # Arguments
/// - `buf`, `buf_len`: at least the value's size (`shmring_shared_mutex_size`).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (this handle does not hold the lock:
/// nothing read); `SHMRING_E_BUFFER_TOO_SMALL` (nothing read);
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_read(
    mutex: *mut shmring_shared_mutex,
    buf: *mut c_void,
    buf_len: usize,
) -> c_int {
    let body = |m: &SharedMutex<[u8]>| {
        check_len(buf_len, "buf_len")?;
        with_guard(m, |guard| {
            let value_size = guard.len();
            if buf_len < value_size {
                return Err(Failure::new(
                    shmring_status::E_BUFFER_TOO_SMALL,
                    format!(
                        "a buffer of {buf_len} bytes for {}, a value of {value_size} bytes",
                        m.describe()
                    ),
                ));
            }
            // SAFETY: the caller's contract on `buf` and `buf_len`; `value_size`
            // is at most `buf_len` (checked), so the slice stays within the
            // caller's bytes.
            let buf = unsafe { bytes_mut(buf, value_size, "buf") }?;
            buf.copy_from_slice(guard);
            Ok(())
        })
    };
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, body) }
}

/// Copies the `len` bytes at `data` into the value, while this handle holds
/// the lock.
///
/// # Arguments
/// - `data`, `len`: exactly the value's size (`shmring_shared_mutex_size`).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NOT_BORROWED` (this handle does not hold the lock:
/// nothing written); `SHMRING_E_INVALID_ARGUMENT` (`len` is not the value's
/// size: nothing written; or a NULL pointer).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_mutex_write(
    mutex: *mut shmring_shared_mutex,
    data: *const c_void,
    len: usize,
) -> c_int {
    let body = |m: &SharedMutex<[u8]>| {
        check_len(len, "len")?;
        let value_size = m.value_size();
        if len != value_size {
            return Err(Failure::invalid(format!(
                "{len} bytes written to {}, a value of {value_size} bytes",
                m.describe()
            )));
        }
        // SAFETY: the caller's contract on `data` and `len`.
        let bytes = unsafe { message_bytes(data, len, value_size) }?;
        with_guard(m, |guard| {
            guard.copy_from_slice(bytes);
            Ok(())
        })
    };
    // SAFETY: the caller's contract.
    unsafe { with_mutex(mutex, body) }
}

/// Frees a shared mutex handle, unlocking the lock if it holds it (the value
/// stays marked inconsistent if it was) and giving its slot back; a named
/// mutex created with the default options is removed. Closing NULL does
/// nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_shared_mutex_close(mutex: *mut shmring_shared_mutex) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Mutex>(mutex) }
}
