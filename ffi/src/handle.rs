//! The one handle rule every `shmring_*` handle follows, and the argument checks
//! every exported function shares.
//!
//! A handle is one allocation, a [`Handle<T>`]: a [`Header`] (the state flag, the
//! value's type, how to reach it as a message endpoint) followed by the value in an
//! `UnsafeCell`. C holds a pointer to it typed as the kind's opaque C struct
//! (`shmring_sender *`, ...): [`construct`] makes it, [`call`] / [`call_ref`] /
//! [`call_in`] run a function on it, [`close`] frees it. Each checks for NULL,
//! checks that the pointer is a handle of the expected kind (a receiver passed as
//! a sender is refused, not undefined behaviour), checks the state, and catches a
//! panic, which poisons the handle: every later call but close returns
//! `SHMRING_E_PANIC`.
//!
//! Every call makes a *shared* reference to the handle and takes the value out of
//! its `UnsafeCell` only after the state check: a call made from inside the
//! handle's own callback (a batch, an RPC handler), while the first call holds the
//! value, is answered from the state flag alone (`SHMRING_E_BUSY`).
//!
//! The message family (`shmring_msg_sender_*`, `shmring_msg_receiver_*`) reaches
//! any handle's value through the header alone: [`call_endpoint`].

use std::any::TypeId;
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void};
use std::marker::PhantomData;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::message::Endpoint;
use crate::status::{Failure, catch, guard, shmring_status};

/// What a handle is doing between and during calls.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Nothing outstanding: any call may use the value.
    Idle = 0,
    /// A grant (sender) or a read message (receiver) is outstanding: only calls
    /// that finish it, calls that only look (`call_ref`) and close may run.
    Borrowed = 1,
    /// A call is running the caller's callback and holds the value: every call on
    /// the handle from inside it is refused.
    InCallback = 2,
    /// A call panicked: the value may be inconsistent; every call but close is
    /// refused with `SHMRING_E_PANIC`.
    Poisoned = 3,
}

/// The value of a kind of handle.
pub(crate) trait Kind: Endpoint + Send + 'static {
    /// The opaque C struct its pointers have (`shmring_sender`, ...).
    type C;
    /// What the handle is, for messages: `"sender"`, `"channel"`.
    const WHAT: &'static str;
    /// What it lends while `Borrowed` (`"grant"`, `"read"`); empty if nothing.
    const LENDS: &'static str = "";
    /// How to end the loan, for the `SHMRING_E_BUSY` message.
    const FINISH: &'static str = "";
    /// Whether the message family may take it (it sends or receives). Shared
    /// kinds must not: the family takes the value mutably.
    const ENDPOINT: bool = false;
}

/// The first part of every handle, whatever its kind.
pub(crate) struct Header {
    /// A [`State`]. Atomic because the handles C may share between threads (a
    /// channel, an event, an RPC client) may be poisoned by one thread while
    /// another reads the flag; Relaxed, because the flag orders nothing else:
    /// the value behind it is either shared (`Sync`, read-only calls) or used by
    /// one thread at a time with the caller's own synchronisation in between.
    state: AtomicU8,
    kind: TypeId,
    what: &'static str,
    /// The value as a message endpoint: `endpoint_of::<T>` for a `Handle<T>` of
    /// an endpoint kind, `None` for the others.
    endpoint: Option<unsafe fn(NonNull<Header>) -> *mut dyn Endpoint>,
}

/// A handle: what C's pointers point to. `repr(C)`: the header is at offset 0 for
/// every `T`, so a pointer to any handle is a pointer to its header.
#[repr(C)]
pub(crate) struct Handle<T> {
    header: Header,
    value: UnsafeCell<T>,
}

/// The value of `Handle<T>` at `header`, as an endpoint.
///
/// # Safety
/// `header` is the header of a live `Handle<T>`.
unsafe fn endpoint_of<T: Kind>(header: NonNull<Header>) -> *mut dyn Endpoint {
    // SAFETY: the header is at offset 0 of its `Handle<T>` (`repr(C)`), live (the
    // caller's contract); a shared reference to the handle is sound while the
    // value is reached only through its `UnsafeCell`.
    let handle = unsafe { header.cast::<Handle<T>>().as_ref() };
    handle.value.get() as *mut dyn Endpoint
}

impl Header {
    pub(crate) fn state(&self) -> State {
        // Relaxed: see the field.
        match self.state.load(Ordering::Relaxed) {
            0 => State::Idle,
            1 => State::Borrowed,
            2 => State::InCallback,
            _ => State::Poisoned,
        }
    }

    pub(crate) fn set_state(&self, state: State) {
        // Relaxed: see the field.
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// `Ok` if a call that needs `want` may run now, else the reason it may not.
    fn admit(&self, want: Access, lends: &str, finish: &str) -> Result<(), Failure> {
        let what = self.what;
        match (self.state(), want) {
            (State::Poisoned, _) => Err(Failure::new(
                shmring_status::E_PANIC,
                format!("an earlier call on this {what} panicked: close it"),
            )),
            (State::InCallback, _) => Err(Failure::new(
                shmring_status::E_BUSY,
                format!("the {what} was called from inside its own callback"),
            )),
            (State::Idle, Access::Idle | Access::Look)
            | (State::Borrowed, Access::Borrowed | Access::Look) => Ok(()),
            (State::Borrowed, Access::Idle) => Err(Failure::new(
                shmring_status::E_BUSY,
                format!("the {what} is borrowed: {finish} first"),
            )),
            (State::Idle, Access::Borrowed) => Err(Failure::new(
                shmring_status::E_NOT_BORROWED,
                format!("no {lends} is outstanding on this {what}"),
            )),
        }
    }
}

/// The states a call accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Nothing outstanding (most calls).
    Idle,
    /// A grant or read outstanding (the calls that finish it).
    Borrowed,
    /// Either: calls that only read what cannot change (`call_ref`).
    Look,
}

/// Clears `*out`, makes a value with `make`, and stores a new handle to it in
/// `*out`: the body of every constructor.
pub(crate) fn construct<T: Kind>(
    out: *mut *mut T::C,
    make: impl FnOnce() -> Result<T, Failure>,
) -> c_int {
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        let handle = new_handle(make()?);
        // SAFETY: as above.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// A new handle to `value`, owned by the caller (freed by [`close`]).
pub(crate) fn new_handle<T: Kind>(value: T) -> *mut T::C {
    let handle = Box::new(Handle {
        header: Header {
            state: AtomicU8::new(State::Idle as u8),
            kind: TypeId::of::<T>(),
            what: T::WHAT,
            endpoint: if T::ENDPOINT {
                Some(endpoint_of::<T>)
            } else {
                None
            },
        },
        value: UnsafeCell::new(value),
    });
    Box::into_raw(handle).cast()
}

/// The header of the handle at `ptr`, which must be a `Handle<T>`.
///
/// # Safety
/// `ptr` is NULL or a live handle made by this library.
unsafe fn handle_ref<'a, T: Kind>(ptr: *const T::C) -> Result<&'a Handle<T>, Failure> {
    // SAFETY: NULL or a live handle (the caller's contract), whose header is at
    // offset 0 whatever its kind.
    let header = unsafe { ptr.cast::<Header>().as_ref() }.ok_or_else(|| Failure::null(T::WHAT))?;
    if header.kind != TypeId::of::<T>() {
        return Err(Failure::invalid(format!(
            "a {} handle was passed where a {} is needed",
            header.what,
            T::WHAT
        )));
    }
    // SAFETY: a live `Handle<T>` (just checked).
    Ok(unsafe { &*ptr.cast::<Handle<T>>() })
}

/// Runs `body` under the handle's panic barrier: a panic poisons the handle.
fn run<R>(header: &Header, body: impl FnOnce() -> Result<R, Failure>) -> Result<R, Failure> {
    match catch(body) {
        Ok(result) => result,
        Err(panicked) => {
            header.set_state(State::Poisoned);
            Err(panicked)
        }
    }
}

/// The body of the calls on a `T` handle that may change it: checks for NULL, the
/// kind and the state (`want`), runs `body` on the value and the header (to set
/// the state), and poisons the handle if `body` panics.
///
/// # Safety
/// `ptr` is NULL or a live handle made by this library, not closed, used by no
/// other thread during the call.
pub(crate) unsafe fn call_in<T: Kind>(
    ptr: *const T::C,
    want: Access,
    body: impl FnOnce(&mut T, &Header) -> Result<(), Failure>,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let handle = unsafe { handle_ref::<T>(ptr) }?;
        handle.header.admit(want, T::LENDS, T::FINISH)?;
        run(&handle.header, || {
            // SAFETY: admitted: no callback of this handle's holds the value, and
            // no other thread calls it (the caller's contract): the only reference
            // while `body` runs (a call from inside `body`'s callback stops at the
            // state check, which `body` sets first).
            body(unsafe { &mut *handle.value.get() }, &handle.header)
        })
    })
}

/// [`call_in`] for the calls that need nothing outstanding, which is most.
///
/// # Safety
/// As [`call_in`].
pub(crate) unsafe fn call<T: Kind>(
    ptr: *const T::C,
    body: impl FnOnce(&mut T) -> Result<(), Failure>,
) -> c_int {
    // SAFETY: delegated to the caller.
    unsafe { call_in(ptr, Access::Idle, |value, _| body(value)) }
}

/// The body of the calls that only read a `T` handle: allowed while a grant or a
/// read is outstanding, and on the kinds several threads may call at once (a
/// channel, an event, an RPC client: their values are `Sync`, and no call on them
/// takes `&mut`).
///
/// # Safety
/// `ptr` is NULL or a live handle made by this library, not closed; used by no
/// other thread during the call unless its kind is shared.
pub(crate) unsafe fn call_ref<T: Kind>(
    ptr: *const T::C,
    body: impl FnOnce(&T) -> Result<(), Failure>,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract.
        let handle = unsafe { handle_ref::<T>(ptr) }?;
        handle.header.admit(Access::Look, T::LENDS, T::FINISH)?;
        // SAFETY: admitted: no callback holds the value mutably, and nothing else
        // does (no call on a shared kind takes `&mut`; exclusive kinds are used by
        // one thread at a time).
        run(&handle.header, || body(unsafe { &*handle.value.get() }))
    })
}

/// The body of the message family's calls, which take a handle of any kind that
/// sends or receives: checks for NULL and the state (`want`), runs `body` on the
/// value, and poisons the handle if it panics.
///
/// # Safety
/// As [`call_in`], for a handle of any kind.
pub(crate) unsafe fn call_endpoint<C>(
    ptr: *const C,
    what: &str,
    want: Access,
    body: impl FnOnce(EndpointValue<'_>) -> Result<(), Failure>,
) -> c_int {
    guard(|| {
        let header =
            NonNull::new(ptr.cast_mut().cast::<Header>()).ok_or_else(|| Failure::null(what))?;
        // SAFETY: a live handle (the caller's contract): its header is at offset 0.
        let h = unsafe { header.as_ref() };
        let endpoint_of = h.endpoint.ok_or_else(|| {
            Failure::invalid(format!(
                "a {} handle was passed where a message {what} is needed",
                h.what
            ))
        })?;
        h.admit(want, "", "finish the outstanding grant or read")?;
        // Admitted, as in `call_in`: `body` holds the only reference to the value.
        run(h, || {
            body(EndpointValue {
                header,
                endpoint_of,
                _value: PhantomData,
            })
        })
    })
}

/// The value of an admitted endpoint handle, for the body of [`call_endpoint`]:
/// as its own type ([`downcast`](Self::downcast): the family's calls name the
/// shared-memory kinds, whose calls take a few nanoseconds, and reach them without
/// a virtual call) or as any endpoint ([`any`](Self::any)).
pub(crate) struct EndpointValue<'a> {
    header: NonNull<Header>,
    endpoint_of: unsafe fn(NonNull<Header>) -> *mut dyn Endpoint,
    _value: PhantomData<&'a mut ()>,
}

impl<'a> EndpointValue<'a> {
    /// The value, if the handle is a `Handle<T>`; else `Err(self)`, to try
    /// another kind.
    #[inline]
    pub(crate) fn downcast<T: Kind>(self) -> Result<&'a mut T, Self> {
        // SAFETY: the header of a live handle (`call_endpoint`'s caller).
        if unsafe { self.header.as_ref() }.kind != TypeId::of::<T>() {
            return Err(self);
        }
        // SAFETY: a `Handle<T>` (the kind matched), live, with the header at offset
        // 0 (`repr(C)`); admitted by `call_endpoint`: this is the only reference
        // to the value while the body runs.
        Ok(unsafe { &mut *self.header.cast::<Handle<T>>().as_ref().value.get() })
    }

    /// The value as an endpoint, whatever its kind.
    pub(crate) fn any(self) -> &'a mut dyn Endpoint {
        // SAFETY: `endpoint_of` was made for this handle's own type, the handle is
        // live, and admitted as in `downcast`.
        unsafe { &mut *(self.endpoint_of)(self.header) }
    }
}

/// The value of a handle of a shared kind (a channel), for a call on another
/// handle that uses it (an endpoint's constructor): NULL, the wrong kind and a
/// poisoned handle are refused.
///
/// # Safety
/// `ptr` is NULL or a live handle made by this library, not closed while the
/// returned reference lives.
pub(crate) unsafe fn shared<'a, T: Kind + Sync>(ptr: *const T::C) -> Result<&'a T, Failure> {
    // SAFETY: the caller's contract.
    let handle = unsafe { handle_ref::<T>(ptr) }?;
    handle.header.admit(Access::Look, T::LENDS, T::FINISH)?;
    // SAFETY: a shared kind: no call on it takes `&mut` (`call_ref` only).
    Ok(unsafe { &*handle.value.get() })
}

/// Frees a `T` handle (NULL: nothing): the body of every `_close`. Refused from
/// inside the handle's own callback (`SHMRING_E_BUSY`); a poisoned handle is freed.
///
/// # Safety
/// `ptr` is NULL or a live handle made by this library, not used by any thread
/// during or after the call.
pub(crate) unsafe fn close<T: Kind>(ptr: *mut T::C) -> c_int {
    if ptr.is_null() {
        return shmring_status::OK.code();
    }
    guard(|| {
        // SAFETY: the caller's contract.
        let handle = unsafe { handle_ref::<T>(ptr) }?;
        if handle.header.state() == State::InCallback {
            return Err(Failure::new(
                shmring_status::E_BUSY,
                format!("the {} was closed from inside its own callback", T::WHAT),
            ));
        }
        // SAFETY: made by `Box::into_raw` in `new_handle` as a `Handle<T>`
        // (checked), given back by its owner: freed once, here.
        drop(unsafe { Box::from_raw(ptr.cast::<Handle<T>>()) });
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Argument checks shared by every exported function.
// ---------------------------------------------------------------------------

/// `ptr` as a non-null out-pointer, or `SHMRING_E_INVALID_ARGUMENT`.
pub(crate) fn out_ptr<T>(ptr: *mut T, what: &str) -> Result<NonNull<T>, Failure> {
    NonNull::new(ptr).ok_or_else(|| Failure::null(what))
}

/// Writes `value` through the out-pointer `ptr` (refused if NULL).
///
/// # Safety
/// `ptr` is NULL or writable.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, what: &str, value: T) -> Result<(), Failure> {
    let out = out_ptr(ptr, what)?;
    // SAFETY: non-null and writable (the caller's contract).
    unsafe { out.write(value) };
    Ok(())
}

/// Clears the out-pointer `ptr` if it is not NULL: done first by the calls that
/// leave their results NULL or 0 on any failure, a NULL handle included.
///
/// # Safety
/// `ptr` is NULL or writable.
pub(crate) unsafe fn clear<T: Default>(ptr: *mut T) {
    // SAFETY: delegated to the caller.
    unsafe { clear_to(ptr, T::default()) }
}

/// As [`clear`], to `value` (a NULL pointer, for an out-pointer to a pointer).
///
/// # Safety
/// `ptr` is NULL or writable.
pub(crate) unsafe fn clear_to<T>(ptr: *mut T, value: T) {
    if let Some(out) = NonNull::new(ptr) {
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(value) };
    }
}

/// Checks a caller's byte count: sizes above `PTRDIFF_MAX` cannot describe memory
/// (`SHMRING_E_INVALID_ARGUMENT`).
pub(crate) fn check_len(len: usize, what: &str) -> Result<(), Failure> {
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what} of {len} bytes is beyond PTRDIFF_MAX (a negative size?)"
        )));
    }
    Ok(())
}

/// The caller's message of `len` bytes at `data` (NULL allowed when `len` is 0):
/// a size beyond `PTRDIFF_MAX` is `SHMRING_E_INVALID_ARGUMENT`, one above `max`
/// bytes `SHMRING_E_MESSAGE_TOO_LARGE`, both before the bytes are touched.
///
/// # Safety
/// Unless NULL or `len` is 0, `data` points to `len` readable bytes that nothing
/// writes until the returned slice is dropped.
#[inline]
pub(crate) unsafe fn message_bytes<'a>(
    data: *const c_void,
    len: usize,
    max: usize,
) -> Result<&'a [u8], Failure> {
    check_len(len, "len")?;
    if len > 0 && data.is_null() {
        return Err(Failure::null("data"));
    }
    if len > max {
        return Err(Failure::new(
            shmring_status::E_MESSAGE_TOO_LARGE,
            format!("message too large: {len} bytes, at most {max}"),
        ));
    }
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: non-null, at most isize::MAX bytes (checked), readable and not
    // written for the slice's life (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// The caller's writable `len` bytes at `data` (NULL allowed when `len` is 0).
///
/// # Safety
/// Unless NULL or `len` is 0, `data` points to `len` writable bytes that nothing
/// else reads or writes until the returned slice is dropped.
pub(crate) unsafe fn bytes_mut<'a>(
    data: *mut c_void,
    len: usize,
    what: &str,
) -> Result<&'a mut [u8], Failure> {
    check_len(len, what)?;
    if len == 0 {
        return Ok(&mut []);
    }
    if data.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-null, at most isize::MAX bytes (checked), writable and not
    // otherwise accessed for the slice's life (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) })
}

/// Receives one message into the caller's buffer: `*out_len` is the message's
/// length on success, the length needed on `BufferTooSmall`, the messages missed
/// on `Lagged` (a broadcast subscriber), and 0 after any other failure.
///
/// # Safety
/// `buf` and `buf_len` as for [`bytes_mut`]; `out_len` is NULL or writable.
pub(crate) unsafe fn receive_into(
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    recv: impl FnOnce(&mut [u8]) -> shmring::Result<usize>,
) -> Result<(), Failure> {
    let out_len = out_ptr(out_len, "out_len")?;
    // SAFETY: non-null and writable (the caller's contract).
    unsafe { out_len.write(0) };
    // SAFETY: the caller's contract on `buf`.
    let buf = unsafe { bytes_mut(buf, buf_len, "buf") }?;
    match recv(buf) {
        Ok(n) => {
            // SAFETY: as above.
            unsafe { out_len.write(n) };
            Ok(())
        }
        Err(e) => {
            match e {
                shmring::Error::BufferTooSmall { len, .. } => {
                    // SAFETY: as above.
                    unsafe { out_len.write(len) };
                }
                shmring::Error::Lagged { missed } => {
                    // SAFETY: as above.
                    unsafe { out_len.write(usize::try_from(missed).unwrap_or(usize::MAX)) };
                }
                _ => {}
            }
            Err(e.into())
        }
    }
}

/// The bytes of a NUL-terminated string of 1 to `max` bytes (`status` if empty
/// or longer; `SHMRING_E_INVALID_ARGUMENT` if NULL).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
pub(crate) unsafe fn c_string<'a>(
    s: *const c_char,
    what: &str,
    max: usize,
    status: shmring_status,
) -> Result<&'a [u8], Failure> {
    if s.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: a NUL-terminated string (the caller's contract): strnlen reads up to
    // its NUL or `max + 1` bytes, whichever comes first, never past the NUL.
    let len = unsafe { libc::strnlen(s, max + 1) };
    if len > max {
        return Err(Failure::new(
            status,
            format!("{what} is longer than {max} bytes"),
        ));
    }
    if len == 0 {
        return Err(Failure::new(status, format!("{what} is empty")));
    }
    // SAFETY: the `len` bytes before the NUL, just measured.
    Ok(unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len) })
}

/// Longest name read (one more byte is read to tell it is too long).
const MAX_NAME: usize = 255;
/// Longest file path read.
const MAX_PATH: usize = libc::PATH_MAX as usize - 1;

/// A name from C (a channel's, an event's, a connection listener's): UTF-8, at
/// most 255 bytes (the Rust library checks the rest).
///
/// # Safety
/// As [`c_string`].
pub(crate) unsafe fn c_name(name: *const c_char) -> Result<String, Failure> {
    // SAFETY: delegated to the caller.
    let bytes = unsafe { c_string(name, "name", MAX_NAME, shmring_status::E_INVALID_NAME) }?;
    c_utf8(bytes, "name", shmring_status::E_INVALID_NAME).map(str::to_owned)
}

/// `bytes` as UTF-8, or `status` naming `what`.
pub(crate) fn c_utf8<'a>(
    bytes: &'a [u8],
    what: &str,
    status: shmring_status,
) -> Result<&'a str, Failure> {
    std::str::from_utf8(bytes).map_err(|_| {
        Failure::new(
            status,
            format!(
                "{what} {:?} is not UTF-8",
                String::from_utf8_lossy(bytes).into_owned()
            ),
        )
    })
}

/// A file path from C (any bytes but NUL, at most `PATH_MAX - 1`).
///
/// # Safety
/// As [`c_string`].
pub(crate) unsafe fn c_path<'a>(path: *const c_char) -> Result<&'a Path, Failure> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: delegated to the caller.
    let bytes = unsafe { c_string(path, "path", MAX_PATH, shmring_status::E_INVALID_NAME) }?;
    Ok(Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// Duplicates the caller's descriptor `fd` (close-on-exec) for a handle to own.
pub(crate) fn dup_fd(fd: c_int) -> Result<OwnedFd, Failure> {
    if fd < 0 {
        return Err(Failure::invalid(format!("descriptor {fd} is negative")));
    }
    // SAFETY: F_DUPFD_CLOEXEC on any integer: fails with EBADF if it is not an
    // open descriptor, else makes a new one that we own.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EBADF) => Failure::invalid(format!("descriptor {fd} is not open: {e}")),
            _ => Failure::new(
                shmring_status::E_IO,
                format!("fcntl(F_DUPFD_CLOEXEC) on descriptor {fd}: {e}"),
            ),
        });
    }
    // SAFETY: `dup` was just made by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// The relative timeout of a `_timeout` call, in milliseconds.
pub(crate) fn timeout(timeout_ms: u64) -> Duration {
    Duration::from_millis(timeout_ms)
}

/// The deadline `timeout_ms` milliseconds from now; `None` (no limit) when the
/// clock cannot express it (`UINT64_MAX`).
pub(crate) fn deadline(timeout_ms: u64) -> Option<Instant> {
    Instant::now().checked_add(timeout(timeout_ms))
}
