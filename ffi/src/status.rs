//! Status codes, the thread-local error message, and the barrier that keeps Rust
//! panics out of C.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{self, AssertUnwindSafe};

use shmring::Error;

/// The status every fallible `shmring_` function returns: `SHMRING_OK` (0) on
/// success, one of the negative codes below on failure.
///
/// `shmring_strerror` names a code; `shmring_last_error_message` gives the details
/// of the last failure on the calling thread. New codes may be added in later
/// versions (always negative, never reusing a value): treat an unknown negative
/// code as a failure.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum shmring_status {
    /// Success.
    OK = 0,
    /// A NULL pointer where a value is needed, a handle of another kind than the
    /// call takes (a receiver passed as a sender, a view passed to a close), a
    /// size beyond `PTRDIFF_MAX`, an
    /// unknown flag or option value, a non-zero reserved field, a commit longer
    /// than its grant, a descriptor that is not open, or a transport address that
    /// cannot be parsed (unknown scheme, empty path, bad port, wrong file type).
    E_INVALID_ARGUMENT = -1,
    /// A channel name (or file path) that is empty, too long, not UTF-8, or not a
    /// single component of ASCII letters, digits, `.`, `_` and `-`.
    E_INVALID_NAME = -2,
    /// A create call found the name (or path) taken by a live segment.
    E_ALREADY_EXISTS = -3,
    /// An open call found no such segment (or a file's directory is missing); or
    /// nobody receives at a transport address (no socket, queue or channel there,
    /// or the connection was refused).
    E_NOT_FOUND = -4,
    /// The operating system refused access (mode bits, owner).
    E_PERMISSION_DENIED = -5,
    /// The segment was made by an incompatible build (layout version, ring kind,
    /// byte order).
    E_INCOMPATIBLE_LAYOUT = -6,
    /// The segment's header or ring state is invalid: a bug or a hostile peer.
    /// The same call keeps failing until the peer repairs the ring.
    E_CORRUPTED = -7,
    /// The message is longer than the channel's largest message (half the
    /// capacity less 8 bytes).
    E_MESSAGE_TOO_LARGE = -8,
    /// The receive buffer is shorter than the next message. Nothing was consumed;
    /// the message's length is reported through `out_len`. Or a shared value's
    /// read buffer is shorter than the value (`shmring_shared_value_size`).
    E_BUFFER_TOO_SMALL = -9,
    /// No room for the message now (non-blocking calls); or a semaphore post at
    /// the semaphore's maximum count (nothing changed).
    E_FULL = -10,
    /// No message now (non-blocking calls).
    E_EMPTY = -11,
    /// The peer has gone and the call cannot complete: a receiver found the ring
    /// empty after its sender left (everything the sender committed was received
    /// first), or a sender found it full after its receiver left. A new peer can
    /// claim the role; calls then succeed again.
    E_DISCONNECTED = -12,
    /// The timeout passed.
    E_TIMED_OUT = -13,
    /// Another live sender (or receiver) holds the role.
    E_ROLE_TAKEN = -14,
    /// No space for the segment (a full `/dev/shm` or file system).
    E_NO_SPACE = -15,
    /// The handle is borrowed: a grant or a read is outstanding (commit/abort or
    /// release/unread it first), or the call came from inside the handle's own
    /// batch callback; or a shared mutex's `_try_lock` found the lock held by
    /// a live holder.
    E_BUSY = -16,
    /// The system lacks what the call needs, e.g. `membarrier` for a channel
    /// created with asymmetric fences, in a process where it is refused; or the
    /// handle's topic does not allow the call: writing or reading in place on a
    /// broadcast topic that is not strict.
    E_UNSUPPORTED = -17,
    /// Any other system call failure (the message names the call and errno).
    E_IO = -18,
    /// A bug: the library panicked. The panic was caught; the handle it happened
    /// on returns this code from every later call (close it).
    E_PANIC = -19,
    /// A capacity that is not a power of two from `SHMRING_MIN_CAPACITY` to
    /// `SHMRING_MAX_CAPACITY` (zero included).
    /// For an MPMC channel: a slot count that is not a power of two from 2 to
    /// 2^24, a slot size of 0 or over 16 MiB, an endpoint count of 0 or over 1024,
    /// or a shape whose segment would exceed 2^40 bytes.
    /// For a shared value: a value size of 0 or over
    /// `SHMRING_SHARED_VALUE_MAX_SIZE` (1 MiB).
    E_INVALID_CAPACITY = -20,
    /// The opened segment belongs to another user, or others may write it, and
    /// the options did not say to trust that.
    E_UNTRUSTED = -21,
    /// The object is too small (or too large) to hold a ring.
    E_BAD_SIZE = -22,
    /// Nothing to finish: a commit or abort without an outstanding grant, or a
    /// release or unread without an outstanding read, a shared mutex's unlock,
    /// read, write or mark without the handle holding the lock.
    E_NOT_BORROWED = -23,
    /// An error of the Rust library that this version of the C ABI has no code
    /// for; the message says what it is.
    E_UNKNOWN = -24,
    /// Every entry of an MPMC channel's endpoint table is held by a live sender
    /// or receiver (or every slot of a shared mutex by a live handle): no more
    /// can attach until one closes (or dies).
    E_TABLE_FULL = -25,
    /// Request/response: the server's handler failed and answered with an error
    /// message; `shmring_last_error_message` gives it exactly as the handler
    /// wrote it (invalid UTF-8 replaced). Nothing else went wrong: the client
    /// stays usable.
    E_REMOTE = -26,
    /// A connection's handshake failed: the peer at the address is not a shmring
    /// listener (or client), speaks another protocol version, passed descriptors
    /// that fail the checks, or the two sides' transport policies leave no
    /// transport. The message names the peer and what was wrong.
    E_HANDSHAKE = -27,
    /// A broadcast subscriber was lapped: the publisher overwrote messages it had
    /// not read (a lossy topic, or a gated one that cut it off). A receive reports
    /// how many in `*out_len`; the next receive returns the oldest message still
    /// held.
    E_LAGGED = -28,
    /// A shared value that was never written: there is no version to read yet
    /// (`shmring_shared_value_wait_for_version` with `after` 0 waits for the
    /// first).
    E_NO_VALUE = -29,
    /// A shared value's writer died in the middle of a write: the value is torn,
    /// and every read returns this until a new writer
    /// (`shmring_shared_value_writer_new`) publishes a whole version.
    E_WRITER_DIED = -30,
    /// Every copy of a shared value overlapped a write (a bounded number of
    /// tries): its writer rewrites it faster than a copy takes, or a peer keeps
    /// it marked as being written. Nothing is wrong with the value: try again.
    E_VALUE_BUSY = -31,
    /// A shared mutex's holder died holding the lock (or one did earlier and
    /// nobody has marked the value consistent since). **The lock is held by
    /// the caller** (`shmring_shared_mutex_lock`, `_try_lock`): the value may
    /// be half-updated; repair it, call `shmring_shared_mutex_mark_consistent`,
    /// and unlock as after `SHMRING_OK`.
    E_OWNER_DIED = -32,
    /// A shared mutex handle that holds the lock asked for it again (a second
    /// lock would wait for itself).
    E_ALREADY_LOCKED = -33,
}

use shmring_status as S;

impl shmring_status {
    /// Every status, for tests and tables.
    pub const ALL: [shmring_status; 34] = [
        S::OK,
        S::E_INVALID_ARGUMENT,
        S::E_INVALID_NAME,
        S::E_ALREADY_EXISTS,
        S::E_NOT_FOUND,
        S::E_PERMISSION_DENIED,
        S::E_INCOMPATIBLE_LAYOUT,
        S::E_CORRUPTED,
        S::E_MESSAGE_TOO_LARGE,
        S::E_BUFFER_TOO_SMALL,
        S::E_FULL,
        S::E_EMPTY,
        S::E_DISCONNECTED,
        S::E_TIMED_OUT,
        S::E_ROLE_TAKEN,
        S::E_NO_SPACE,
        S::E_BUSY,
        S::E_UNSUPPORTED,
        S::E_IO,
        S::E_PANIC,
        S::E_INVALID_CAPACITY,
        S::E_UNTRUSTED,
        S::E_BAD_SIZE,
        S::E_NOT_BORROWED,
        S::E_UNKNOWN,
        S::E_TABLE_FULL,
        S::E_REMOTE,
        S::E_HANDSHAKE,
        S::E_LAGGED,
        S::E_NO_VALUE,
        S::E_WRITER_DIED,
        S::E_VALUE_BUSY,
        S::E_OWNER_DIED,
        S::E_ALREADY_LOCKED,
    ];

    /// The status with this code, if there is one.
    pub fn from_code(code: c_int) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as c_int == code)
    }

    /// The code C sees.
    pub const fn code(self) -> c_int {
        self as c_int
    }

    /// A short description, lowercase, no trailing punctuation.
    pub const fn description(self) -> &'static CStr {
        match self {
            S::OK => c"success",
            S::E_INVALID_ARGUMENT => c"invalid argument",
            S::E_INVALID_NAME => c"invalid channel name or path",
            S::E_ALREADY_EXISTS => c"channel already exists",
            S::E_NOT_FOUND => c"channel not found",
            S::E_PERMISSION_DENIED => c"permission denied",
            S::E_INCOMPATIBLE_LAYOUT => c"incompatible segment layout",
            S::E_CORRUPTED => c"corrupted segment",
            S::E_MESSAGE_TOO_LARGE => c"message too large for the channel",
            S::E_BUFFER_TOO_SMALL => {
                c"buffer too small for the next message or the value (nothing consumed)"
            }
            S::E_FULL => c"channel full",
            S::E_EMPTY => c"channel empty",
            S::E_DISCONNECTED => c"the peer has gone",
            S::E_TIMED_OUT => c"timed out",
            S::E_ROLE_TAKEN => c"role taken by another live endpoint",
            S::E_NO_SPACE => c"no space for the segment",
            S::E_BUSY => c"handle busy: a grant or read is outstanding, a callback is running, or another holds the lock",
            S::E_UNSUPPORTED => c"unsupported on this system",
            S::E_IO => c"system call failed",
            S::E_PANIC => c"internal error (a caught panic)",
            S::E_INVALID_CAPACITY => c"invalid capacity",
            S::E_UNTRUSTED => c"untrusted segment owner or mode",
            S::E_BAD_SIZE => c"segment has the wrong size",
            S::E_NOT_BORROWED => c"no grant, read or lock outstanding",
            S::E_UNKNOWN => c"unknown error",
            S::E_TABLE_FULL => c"endpoint table full",
            S::E_REMOTE => c"the server's handler failed",
            S::E_HANDSHAKE => c"connection handshake failed",
            S::E_LAGGED => c"messages were overwritten before this subscriber read them",
            S::E_NO_VALUE => c"no value has been published yet",
            S::E_WRITER_DIED => c"the value's writer died in the middle of a write",
            S::E_VALUE_BUSY => c"every read of the value overlapped a write (try again)",
            S::E_OWNER_DIED => {
                c"the lock's holder died holding it (the lock is now held by the caller)"
            }
            S::E_ALREADY_LOCKED => c"this handle holds the lock already",
        }
    }
}

/// A failed call: its status and the details kept for
/// `shmring_last_error_message`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: shmring_status,
    detail: Detail,
}

#[derive(Debug)]
enum Detail {
    /// No allocation: for the codes a polling loop meets on every turn.
    Fixed(&'static CStr),
    Owned(String),
}

impl Failure {
    pub(crate) fn new(status: shmring_status, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: Detail::Owned(detail.into()),
        }
    }

    /// A failure whose message is the status's description (no allocation).
    pub(crate) const fn plain(status: shmring_status) -> Self {
        Self {
            status,
            detail: Detail::Fixed(status.description()),
        }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(S::E_INVALID_ARGUMENT, detail)
    }

    pub(crate) fn null(what: &str) -> Self {
        Self::invalid(format!("{what} is NULL"))
    }

    fn panic(payload: &(dyn Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        Self::new(S::E_PANIC, format!("shmring panicked (a bug): {what}"))
    }
}

/// The per-operation errors map as the crate's [`Error`] they convert into: one
/// table for every call (a full, empty or timed-out call allocates nothing).
macro_rules! failure_via_error {
    ($($op:ty),*) => {$(
        impl From<$op> for Failure {
            fn from(e: $op) -> Self {
                Error::from(e).into()
            }
        }
    )*};
}

failure_via_error!(
    shmring::TrySendError,
    shmring::SendError,
    shmring::SendTimeoutError,
    shmring::TryRecvError,
    shmring::RecvError,
    shmring::RecvTimeoutError
);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::InvalidName { .. } => S::E_INVALID_NAME,
            Error::InvalidCapacity { .. } => S::E_INVALID_CAPACITY,
            Error::AlreadyExists { .. } => S::E_ALREADY_EXISTS,
            Error::NotFound { .. } => S::E_NOT_FOUND,
            Error::PermissionDenied { .. } => S::E_PERMISSION_DENIED,
            Error::Untrusted { .. } => S::E_UNTRUSTED,
            // `open_or_create` on an existing object of another kind, layout
            // version or shape.
            Error::IncompatibleLayout { .. } | Error::Incompatible { .. } => {
                S::E_INCOMPATIBLE_LAYOUT
            }
            Error::Corrupted { .. } => S::E_CORRUPTED,
            Error::BadSize { .. } => S::E_BAD_SIZE,
            Error::NoSpace { .. } => S::E_NO_SPACE,
            Error::RoleTaken { .. } => S::E_ROLE_TAKEN,
            Error::MessageTooLarge { .. } => S::E_MESSAGE_TOO_LARGE,
            Error::BufferTooSmall { .. } => S::E_BUFFER_TOO_SMALL,
            // The codes a polling loop meets on every turn: no allocation.
            Error::Full { .. } => return Self::plain(S::E_FULL),
            // A semaphore at its maximum (`shmring::Semaphore::post`).
            Error::CountOverflow { .. } => S::E_FULL,
            Error::Empty => return Self::plain(S::E_EMPTY),
            Error::TimedOut => return Self::plain(S::E_TIMED_OUT),
            Error::Disconnected { .. } => S::E_DISCONNECTED,
            Error::Unsupported { .. } => S::E_UNSUPPORTED,
            Error::Io { .. } => S::E_IO,
            // The address-based transports' errors (`transport.rs`).
            Error::InvalidAddress { .. } | Error::WrongFileType { .. } => S::E_INVALID_ARGUMENT,
            Error::ConnectionRefused { .. } => S::E_NOT_FOUND,
            Error::LimitExceeded { .. } => S::E_NO_SPACE,
            Error::FrameTooLong { .. } => S::E_CORRUPTED,
            // Request/response (`shmring::rpc`): a message off the wire format; a
            // handler's error, with its message.
            Error::MalformedFrame { .. } => S::E_CORRUPTED,
            // The handler's own words, without the Rust error's prefix.
            Error::Remote { message } => return Self::new(S::E_REMOTE, message),
            // A connection's handshake (`connection.rs`): not a shmring peer, bad
            // descriptors, policies that leave no transport.
            Error::Handshake { .. } => S::E_HANDSHAKE,
            // MPMC channels (`ffi/src/mpmc.rs`): a bad shape is a bad capacity.
            Error::InvalidSlotCount { .. }
            | Error::InvalidSlotSize { .. }
            | Error::InvalidEndpointCount { .. }
            | Error::SegmentTooLarge { .. } => S::E_INVALID_CAPACITY,
            Error::EndpointTableFull { .. } => S::E_TABLE_FULL,
            Error::Lagged { .. } => S::E_LAGGED,
            Error::InPlaceNeedsStrict { .. } => S::E_UNSUPPORTED,
            // Shared values (`shared_value.rs`): a read's outcomes, and a size out
            // of range at create (read and write lengths are checked before the
            // call).
            Error::NoValue { .. } => S::E_NO_VALUE,
            Error::WriterDied { .. } => S::E_WRITER_DIED,
            Error::ValueBusy { .. } => S::E_VALUE_BUSY,
            Error::ValueSize { .. } => S::E_INVALID_CAPACITY,
            // Shared mutexes (`shared_mutex.rs`, which maps a lock call's
            // outcomes itself): a full slot table; a lock word a peer wrote is
            // `Corrupted`, above.
            Error::SlotsFull { .. } => S::E_TABLE_FULL,
            // A slot count out of range, as MPMC's endpoint count.
            Error::InvalidMutexSlots { .. } => S::E_INVALID_CAPACITY,
            Error::OwnerDied => S::E_OWNER_DIED,
            Error::LockHeld { .. } => S::E_BUSY,
            Error::AlreadyLocked => S::E_ALREADY_LOCKED,
            _ => S::E_UNKNOWN,
        };
        Self::new(status, e.to_string())
    }
}

/// What `shmring_last_error_message` returns.
enum LastError {
    Fixed(&'static CStr),
    Owned(CString),
}

thread_local! {
    /// The message of the last failure on this thread.
    static LAST_ERROR: RefCell<LastError> = const { RefCell::new(LastError::Fixed(c"")) };
}

/// Keeps `detail` as this thread's last error message.
fn record(detail: Detail) {
    let message = match detail {
        Detail::Fixed(s) => LastError::Fixed(s),
        // Interior NULs (from a name, say) would cut the message short: escape them.
        Detail::Owned(s) => LastError::Owned(
            CString::new(s.replace('\0', "\\0")).unwrap_or_else(|_| c"(unprintable)".into()),
        ),
    };
    // `try_with`: during thread teardown the slot may be gone; the message is lost
    // then, the status still returned.
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = message;
        }
    });
}

/// Runs the body of an exported function: maps its result to a status code,
/// records the failure's message, and catches any panic (which must never unwind
/// into C) as `SHMRING_E_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    let failure = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return S::OK.code(),
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::panic(&*payload),
    };
    let code = failure.status.code();
    record(failure.detail);
    code
}

/// Runs `body` under its own panic barrier and reports whether it panicked, with
/// the failure to return: for a handle, which is then marked unusable.
pub(crate) fn catch<T>(
    body: impl FnOnce() -> Result<T, Failure>,
) -> Result<Result<T, Failure>, Failure> {
    panic::catch_unwind(AssertUnwindSafe(body)).map_err(|payload| Failure::panic(&*payload))
}

/// A static, NUL-terminated description of a status code: `"success"` for
/// `SHMRING_OK`, `"unknown status code"` for a value that is not a status.
///
/// Thread-safe; the string lives as long as the library and must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn shmring_strerror(code: c_int) -> *const c_char {
    match shmring_status::from_code(code) {
        Some(status) => status.description().as_ptr(),
        None => c"unknown status code".as_ptr(),
    }
}

/// The details of the last failed call on the calling thread (e.g. `shm segment
/// "orders" not found`), as a NUL-terminated string; `""` if no call on this thread
/// has failed yet.
///
/// Never NULL. The string belongs to the library: do not free it. It is valid until
/// the next `shmring_` call on the same thread (copy it to keep it). Calls that
/// succeed may leave the previous message in place: read it only after a call
/// returned a failure.
#[unsafe(no_mangle)]
pub extern "C" fn shmring_last_error_message() -> *const c_char {
    LAST_ERROR
        .try_with(|last| match last.try_borrow() {
            Ok(last) => match &*last {
                LastError::Fixed(s) => s.as_ptr(),
                LastError::Owned(s) => s.as_ptr(),
            },
            Err(_) => c"".as_ptr(),
        })
        .unwrap_or(c"".as_ptr())
}
