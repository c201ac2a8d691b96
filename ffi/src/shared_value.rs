//! Shared values (`shmring_shared_value`): a value of a fixed number of bytes,
//! published by one writer and read by any number of processes (the seqlock of
//! `shmring::state`; design `docs/design/shared-state.md`).
//!
//! `shmring_shared_value_create` (named shared memory), `_create_file` or
//! `_create_memfd` makes a value of `value_size` bytes, never written;
//! `_open`, `_open_file`, `_open_fd` attach to one, `_open_or_create` and
//! `_open_or_create_file` do either without a race. From a value handle,
//! `shmring_shared_value_writer_new` claims the one writer role
//! (`SHMRING_E_ROLE_TAKEN` while a live writer holds it; a dead writer's role is
//! taken over) and `shmring_shared_value_writer_close` gives it back.
//!
//! A read copies the value into the caller's buffer and returns its version
//! (counting from 1): never a torn value, never an older version than one this
//! process saw before, never blocking. Its failures are codes of their own:
//! `SHMRING_E_NO_VALUE` (never written), `SHMRING_E_WRITER_DIED` (the writer died
//! in the middle of a write), `SHMRING_E_VALUE_BUSY` (every copy of a bounded
//! number overlapped a write), `SHMRING_E_BUFFER_TOO_SMALL`.
//!
//! A value handle may be used by several threads at once (but close); a writer by
//! one thread at a time.

use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;

use shmring::{SharedValue, SharedValueBuilder, SharedValueWriter};

use crate::channel::{SHMRING_OPTION_PREFAULT, SHMRING_OPTION_SYMMETRIC_FENCES};
use crate::event::{KNOWN_SYNC_OPTIONS, SyncSettings, shmring_sync_options, sync_settings_with};
use crate::handle::{
    Kind, bytes_mut, c_name, c_path, call, call_ref, check_len, clear, close, construct, deadline,
    dup_fd, message_bytes, out_ptr, shared, write_out,
};
use crate::message::Endpoint;
use crate::status::{Failure, shmring_status};

/// The largest value size (1 MiB).
pub const SHMRING_SHARED_VALUE_MAX_SIZE: usize = 1048576;
const _: () = assert!(
    SHMRING_SHARED_VALUE_MAX_SIZE
        == shmring::ring_core::state::header::MAX_STATE_VALUE_SIZE as usize
);

/// A created or opened shared value. Read it with `shmring_shared_value_read`;
/// publish with a writer (`shmring_shared_value_writer_new`); free it with
/// `shmring_shared_value_close` (a writer keeps the segment mapped on its own).
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_shared_value {
    _opaque: [u8; 0],
}

/// The writer of a shared value: the one handle, in any process, that publishes
/// versions. Make it with `shmring_shared_value_writer_new`, free it (giving the
/// role back) with `shmring_shared_value_writer_close`.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_shared_value_writer {
    _opaque: [u8; 0],
}

/// The value of a `shmring_shared_value` handle. Shared (`call_ref` only).
#[derive(Debug)]
pub(crate) struct Value(SharedValue<[u8]>);

/// The value of a `shmring_shared_value_writer` handle.
#[derive(Debug)]
pub(crate) struct ValueWriter(SharedValueWriter<[u8]>);

impl Kind for Value {
    type C = shmring_shared_value;
    const WHAT: &'static str = "shared value";
}

impl Kind for ValueWriter {
    type C = shmring_shared_value_writer;
    const WHAT: &'static str = "shared value writer";
}

impl Endpoint for Value {}
impl Endpoint for ValueWriter {}

// A value handle is shared between threads; a writer moves between them.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<SharedValue<[u8]>>();
    send::<SharedValueWriter<[u8]>>();
};

/// The flags a shared value's options accept: the events' and semaphores', and
/// the fences (a created value uses the asymmetric pair unless told not to) and
/// prefaulting.
const KNOWN_VALUE_OPTIONS: u32 =
    KNOWN_SYNC_OPTIONS | SHMRING_OPTION_SYMMETRIC_FENCES | SHMRING_OPTION_PREFAULT;

/// Reads and checks the caller's options (NULL: defaults) for a shared value.
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_sync_options`.
unsafe fn value_settings(options: *const shmring_sync_options) -> Result<SyncSettings, Failure> {
    // SAFETY: the caller's contract.
    unsafe { sync_settings_with(options, KNOWN_VALUE_OPTIONS, false, " for a shared value") }
}

/// The caller's options applied to `builder`.
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_sync_options`.
unsafe fn with_options(
    builder: SharedValueBuilder,
    options: *const shmring_sync_options,
) -> Result<SharedValueBuilder, Failure> {
    // SAFETY: the caller's contract.
    Ok(unsafe { value_settings(options) }?.segment.apply(builder))
}

/// Runs `body` on the live value handle `value`.
///
/// # Safety
/// `value` is NULL or a live shared value handle.
unsafe fn with_value(
    value: *const shmring_shared_value,
    body: impl FnOnce(&SharedValue<[u8]>) -> Result<(), Failure>,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { call_ref(value, |v: &Value| body(&v.0)) }
}

/// Creates a shared value of `value_size` bytes in named POSIX shared memory,
/// `/dev/shm/shmring.<name>` (the channels' name rules), never written: reads
/// return `SHMRING_E_NO_VALUE` until a writer publishes. Removed when the
/// creator closes it, unless `SHMRING_OPTION_KEEP`. A created value uses the
/// asymmetric fence pair unless `SHMRING_OPTION_SYMMETRIC_FENCES` (needed when a
/// process that cannot call `membarrier` will open it: valgrind, a seccomp
/// filter).
///
/// # Arguments
/// - `name`: the segment's name.
/// - `value_size`: 1 to `SHMRING_SHARED_VALUE_MAX_SIZE` bytes.
/// - `options`: NULL for defaults.
/// - `out`: the new handle.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_CAPACITY` (a size out of range),
/// `SHMRING_E_INVALID_NAME`, `SHMRING_E_ALREADY_EXISTS` (see
/// `SHMRING_OPTION_RECLAIM`), `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_NO_SPACE`,
/// `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_create(
    name: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { with_options(SharedValueBuilder::shm(c_name(name)?), options) }?;
        Ok(Value(builder.create_bytes(value_size)?))
    })
}

/// Opens the shared value `/dev/shm/shmring.<name>`, whatever its size, and
/// validates it: owner and mode (see `options`), size, every header field
/// (another kind of object is refused).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`, `SHMRING_E_NOT_FOUND`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_UNTRUSTED`, `SHMRING_E_BAD_SIZE`,
/// `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED`,
/// `SHMRING_E_UNSUPPORTED` (its creator chose the asymmetric fences and this
/// process cannot call `membarrier`), `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_open(
    name: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { with_options(SharedValueBuilder::shm(c_name(name)?), options) }?;
        Ok(Value(builder.open_bytes()?))
    })
}

/// Opens the shared value `/dev/shm/shmring.<name>`, or creates it with
/// `value_size` bytes if there is none, without a race: of processes racing,
/// one creates and the others open that value.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INCOMPATIBLE_LAYOUT` if the object there is not a
/// shared value of this layout version, or has another size (the message names
/// the field and both values); else as `shmring_shared_value_open` and
/// `shmring_shared_value_create`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_open_or_create(
    name: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { with_options(SharedValueBuilder::shm(c_name(name)?), options) }?;
        Ok(Value(builder.open_or_create_bytes(value_size)?))
    })
}

/// Creates a shared value of `value_size` bytes in a regular file at `path`
/// (created exclusively, `0600`), kept when the creator closes it unless
/// `SHMRING_OPTION_UNLINK`: the last version survives the processes.
///
/// # Returns
/// As `shmring_shared_value_create`; `SHMRING_E_NOT_FOUND` if the directory is
/// missing.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_create_file(
    path: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { with_options(SharedValueBuilder::file(c_path(path)?), options) }?;
        Ok(Value(builder.create_bytes(value_size)?))
    })
}

/// Opens a shared value file made by `shmring_shared_value_create_file`.
///
/// # Returns
/// As `shmring_shared_value_open`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_open_file(
    path: *const c_char,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { with_options(SharedValueBuilder::file(c_path(path)?), options) }?;
        Ok(Value(builder.open_bytes()?))
    })
}

/// Opens the shared value file at `path`, or creates it with `value_size`
/// bytes, without a race.
///
/// # Returns
/// As `shmring_shared_value_open_or_create`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_open_or_create_file(
    path: *const c_char,
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { with_options(SharedValueBuilder::file(c_path(path)?), options) }?;
        Ok(Value(builder.open_or_create_bytes(value_size)?))
    })
}

/// Creates a shared value of `value_size` bytes in an anonymous memfd, sealed
/// against resizing; hand it over with `shmring_shared_value_fd`, open it with
/// `shmring_shared_value_open_fd`.
///
/// # Returns
/// As `shmring_shared_value_create`, without the name errors.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_create_memfd(
    value_size: usize,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { with_options(SharedValueBuilder::memfd(), options) }?;
        Ok(Value(builder.create_bytes(value_size)?))
    })
}

/// Opens the shared value behind the descriptor `fd` (duplicated: the caller
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
pub unsafe extern "C" fn shmring_shared_value_open_fd(
    fd: c_int,
    options: *const shmring_sync_options,
    out: *mut *mut shmring_shared_value,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { with_options(SharedValueBuilder::memfd(), options) }?;
        Ok(Value(builder.from_fd(dup_fd(fd)?)?))
    })
}

/// Stores the value's descriptor in `*out_fd` (the value's own, close-on-exec:
/// do not close it; valid until `shmring_shared_value_close`), to hand a memfd
/// value to another process.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_fd(
    value: *const shmring_shared_value,
    out_fd: *mut c_int,
) -> c_int {
    let body = |value: &SharedValue<[u8]>| {
        // SAFETY: the caller's contract on `out_fd`.
        unsafe { write_out(out_fd, "out_fd", value.fd().as_raw_fd()) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_value(value, body) }
}

/// Stores the value's size in bytes in `*out_size`: what a write takes and the
/// least a read's buffer holds.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_size(
    value: *const shmring_shared_value,
    out_size: *mut usize,
) -> c_int {
    let body = |value: &SharedValue<[u8]>| {
        // SAFETY: the caller's contract on `out_size`.
        unsafe { write_out(out_size, "out_size", value.value_size()) }
    };
    // SAFETY: the caller's contract.
    unsafe { with_value(value, body) }
}

/// The first `value_size` bytes of the caller's buffer, checked: a buffer
/// shorter than the value is `SHMRING_E_BUFFER_TOO_SMALL`, before anything is
/// read.
///
/// # Safety
/// As [`bytes_mut`].
unsafe fn value_buffer<'a>(
    value: &SharedValue<[u8]>,
    buf: *mut c_void,
    buf_len: usize,
) -> Result<&'a mut [u8], Failure> {
    check_len(buf_len, "buf_len")?;
    let value_size = value.value_size();
    if buf_len < value_size {
        return Err(Failure::new(
            shmring_status::E_BUFFER_TOO_SMALL,
            format!(
                "a buffer of {buf_len} bytes for {}, a value of {value_size} bytes",
                value.describe()
            ),
        ));
    }
    // SAFETY: the caller's contract on `buf` and `buf_len`; `value_size` is at
    // most `buf_len` (checked), so the slice stays within the caller's bytes.
    unsafe { bytes_mut(buf, value_size, "buf") }
}

/// Copies the value published now into `buf` (its first `value_size` bytes;
/// the rest is left alone) and stores its version in `*out_version`. Never a
/// torn value: the copy is checked after it is made, and retried a bounded
/// number of times if a write overlapped it. Never blocks.
///
/// # Arguments
/// - `buf`, `buf_len`: at least the value's size (`shmring_shared_value_size`).
/// - `out_version`: the version read (from 1); 0 on any failure.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_NO_VALUE` (never written);
/// `SHMRING_E_WRITER_DIED` (the writer died in the middle of a write, and no
/// writer has published since); `SHMRING_E_VALUE_BUSY` (every copy overlapped a
/// write: try again); `SHMRING_E_BUFFER_TOO_SMALL` (`buf_len` below the value's
/// size; nothing read); `SHMRING_E_INVALID_ARGUMENT`. On a failure the buffer's
/// bytes are unspecified.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_read(
    value: *const shmring_shared_value,
    buf: *mut c_void,
    buf_len: usize,
    out_version: *mut u64,
) -> c_int {
    // SAFETY: the caller's contract on `out_version`.
    unsafe { clear(out_version) };
    let body = |value: &SharedValue<[u8]>| {
        let out_version = out_ptr(out_version, "out_version")?;
        // SAFETY: the caller's contract on `buf` and `buf_len`.
        let buf = unsafe { value_buffer(value, buf, buf_len) }?;
        let version = value.read_into(buf)?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_version.write(version) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_value(value, body) }
}

/// Waits until a version above `after` is published, then copies it into `buf`
/// as `shmring_shared_value_read` does and stores its version in
/// `*out_version`: at once if one is published already. `after` 0 waits for
/// the first version. The wait sleeps (futex) and is woken by the writer.
///
/// # Arguments
/// - `after`: a version seen before (0: none).
/// - `buf`, `buf_len`, `out_version`: as `shmring_shared_value_read`.
/// - `timeout_ms`: give up after this many milliseconds; 0: only check;
///   `UINT64_MAX`: no limit.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_TIMED_OUT`; else as `shmring_shared_value_read`
/// (`SHMRING_E_BUFFER_TOO_SMALL` before any wait).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_wait_for_version(
    value: *const shmring_shared_value,
    after: u64,
    buf: *mut c_void,
    buf_len: usize,
    out_version: *mut u64,
    timeout_ms: u64,
) -> c_int {
    // SAFETY: the caller's contract on `out_version`.
    unsafe { clear(out_version) };
    let deadline = deadline(timeout_ms);
    let body = |value: &SharedValue<[u8]>| {
        let out_version = out_ptr(out_version, "out_version")?;
        // SAFETY: the caller's contract on `buf` and `buf_len`.
        let buf = unsafe { value_buffer(value, buf, buf_len) }?;
        let version = value.wait_for_version_into_deadline(after, buf, deadline)?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_version.write(version) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { with_value(value, body) }
}

/// Frees a shared value handle; a named value created with the default options
/// is removed (its writer, if any, keeps the segment mapped). Closing NULL does
/// nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_shared_value_close(value: *mut shmring_shared_value) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Value>(value) }
}

/// Claims the writer role of `value` and returns the writer in `*out` (the
/// liveness lock first, then the claim word; the role of a writer whose process
/// died is taken over). The writer keeps the segment mapped: `value` may be
/// closed before it. After a take-over from a writer that died in the middle of
/// a write, readers get `SHMRING_E_WRITER_DIED` until this writer's first write.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_ROLE_TAKEN` while another live writer (in any
/// process, this one included) holds the role; `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_writer_new(
    value: *const shmring_shared_value,
    out: *mut *mut shmring_shared_value_writer,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract.
        let value = unsafe { shared::<Value>(value) }?;
        Ok(ValueWriter(value.0.writer()?))
    })
}

/// Publishes the `len` bytes at `data` as the next version, and stores its
/// number in `*out_version`. Never blocks; no system call unless a reader
/// waits.
///
/// # Arguments
/// - `data`, `len`: exactly the value's size (`shmring_shared_value_size`).
/// - `out_version`: the version published; 0 on any failure.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` (`len` is not the value's size:
/// nothing is written; or a NULL pointer).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_writer_write(
    writer: *mut shmring_shared_value_writer,
    data: *const c_void,
    len: usize,
    out_version: *mut u64,
) -> c_int {
    // SAFETY: the caller's contract on `out_version`.
    unsafe { clear(out_version) };
    let body = |writer: &mut ValueWriter| {
        let out_version = out_ptr(out_version, "out_version")?;
        let value_size = writer.0.value().value_size();
        check_len(len, "len")?;
        if len != value_size {
            return Err(Failure::invalid(format!(
                "{len} bytes written to {}, a value of {value_size} bytes",
                writer.0.value().describe()
            )));
        }
        // SAFETY: the caller's contract on `data` and `len`.
        let bytes = unsafe { message_bytes(data, len, value_size) }?;
        let version = writer.0.write_bytes(bytes)?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_version.write(version) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(writer, body) }
}

/// Stores in `*out_version` the version the writer's next write publishes: one
/// more than the last whole one (after a take-over from a writer that died in
/// the middle of a write, the version that writer was writing). For a writer
/// that stamps the version into the value.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_shared_value_writer_next_version(
    writer: *const shmring_shared_value_writer,
    out_version: *mut u64,
) -> c_int {
    let body = |writer: &ValueWriter| {
        // SAFETY: the caller's contract on `out_version`.
        unsafe { write_out(out_version, "out_version", writer.0.next_version()) }
    };
    // SAFETY: the caller's contract.
    unsafe { call_ref(writer, body) }
}

/// Frees a writer and gives the role back (another writer, in any process, may
/// then claim it). What it published stays. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_shared_value_writer_close(
    writer: *mut shmring_shared_value_writer,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<ValueWriter>(writer) }
}
