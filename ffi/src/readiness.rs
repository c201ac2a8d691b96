//! Readiness descriptors from C: the values the message family's
//! `shmring_msg_*_readiness_fd`, `_arm_for_message` / `_arm_for_space` and
//! `_wakeups` calls return, for every endpoint kind.
//!
//! An endpoint's readiness descriptor is a file descriptor for `epoll`, `poll` or
//! `select`. It belongs to the endpoint: it stays the same for the handle's life
//! and is closed by its `_close`. The caller never reads it (arming drains it)
//! and never closes it. The loop, per descriptor reported readable:
//!
//! ```c
//! for (;;) {
//!     rc = shmring_msg_receiver_try_recv(in, buf, sizeof buf, &len);
//!     if (rc == SHMRING_OK) { handle(buf, len); continue; }
//!     if (rc != SHMRING_E_EMPTY) break;           /* SHMRING_E_DISCONNECTED, or a failure */
//!     rc = shmring_msg_receiver_arm_for_message(in);
//!     if (rc == SHMRING_ARMED) break;             /* back to epoll_wait */
//!     if (rc != SHMRING_READY) break;             /* a failure */
//! }
//! ```

use std::ffi::{CString, c_char, c_int};

use shmring::{Readiness, Wakeups};

use crate::status::{Failure, shmring_status};

/// What an arm call found: the positive value it returns on success.
///
/// Arm calls return `SHMRING_READY`, `SHMRING_ARMED` or a negative
/// `shmring_status` code (never `SHMRING_OK`): test `rc < 0` for a failure.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmring_readiness {
    /// The condition holds now (a message is there, there is room, or the peer
    /// has gone: the next call says which): act on it, then arm again. Nothing is
    /// armed that the caller must wait for.
    READY = 1,
    /// Armed: the readiness descriptor becomes readable when the condition may
    /// have changed (a message, room, the peer's departure or death), or every 25
    /// ms for a polled endpoint (`SHMRING_WAKEUPS_POLLED`). Go back to the event
    /// loop.
    ARMED = 2,
}

/// How an endpoint's readiness descriptor is woken: `shmring_msg_*_wakeups`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmring_wakeups {
    /// The peer rings the descriptor, and its death (or departure) hangs it up:
    /// an armed descriptor becomes readable at once on either.
    WAKEUPS_DOORBELL = 1,
    /// No doorbell could be shared with the peer (the reason says why: a memfd
    /// opened from a bare descriptor, a doorbell FIFO refused or missing): while
    /// armed, the descriptor becomes readable every 25 ms, and within that
    /// interval of the peer's death.
    WAKEUPS_POLLED = 2,
}

/// An endpoint's [`Wakeups`], kept in its handle for C: fixed for the
/// endpoint's life.
#[derive(Debug)]
pub(crate) struct WakeupsInfo {
    kind: shmring_wakeups,
    /// Empty for a doorbell.
    reason: CString,
}

impl WakeupsInfo {
    pub(crate) fn new(wakeups: &Wakeups) -> Self {
        let (kind, reason) = match wakeups {
            Wakeups::Doorbell => (shmring_wakeups::WAKEUPS_DOORBELL, String::new()),
            Wakeups::Polled { reason } => (shmring_wakeups::WAKEUPS_POLLED, reason.clone()),
            // A kind this version does not know: say it is polled, in its words.
            other => (shmring_wakeups::WAKEUPS_POLLED, other.to_string()),
        };
        let reason = CString::new(reason.replace('\0', "\\0")).unwrap_or_default();
        Self { kind, reason }
    }

    /// Writes the kind to `*out` and, if `out_reason` is not NULL, the reason
    /// (owned by the handle that owns `self`) to `*out_reason`.
    ///
    /// # Safety
    /// `out` and `out_reason` are NULL or writable.
    pub(crate) unsafe fn write(
        &self,
        out: *mut shmring_wakeups,
        out_reason: *mut *const c_char,
    ) -> Result<(), Failure> {
        let out = crate::handle::out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(self.kind) };
        if !out_reason.is_null() {
            // SAFETY: non-null and writable (the caller's contract).
            unsafe { out_reason.write(self.reason.as_ptr()) };
        }
        Ok(())
    }
}

/// Runs an exported call's body, `run`, which returns a status code and sets
/// `value` on success; returns `value` then, else the code. For the calls whose
/// success is a non-negative value (a descriptor, a readiness).
pub(crate) fn value_or_code(run: impl FnOnce(&mut c_int) -> c_int) -> c_int {
    let mut value = shmring_status::OK.code();
    match run(&mut value) {
        ok if ok == shmring_status::OK.code() => value,
        code => code,
    }
}

/// The value an arm call returns for `readiness`.
pub(crate) const fn readiness_code(readiness: Readiness) -> c_int {
    match readiness {
        Readiness::Ready => shmring_readiness::READY as c_int,
        Readiness::Armed => shmring_readiness::ARMED as c_int,
    }
}
