//! What sender and receiver handles share: the state flag that turns misuse of a
//! borrowed handle into `SHMRING_E_BUSY`, and the entry point of every call on one.
//!
//! A handle is reached from C only through a raw pointer, and every call makes a
//! *shared* reference to it: the parts that change live in `Cell`s and
//! `UnsafeCell`s, guarded by [`State`]. So a call made from inside the handle's own
//! batch callback (a second shared reference, while the first call holds the
//! endpoint mutably) is answered from the state flag alone, without touching the
//! endpoint: `SHMRING_E_BUSY`, not undefined behaviour.

use std::cell::Cell;
use std::ffi::c_int;

use crate::status::{Failure, catch, guard, shmring_status};

/// What a handle is doing between and during calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Nothing outstanding: any call may use the endpoint.
    Idle,
    /// A grant (sender) or a read message (receiver) is outstanding and borrows the
    /// endpoint: only commit/abort (release/unread) and close may run.
    Borrowed,
    /// A batch call is running the caller's callback: every call on the handle
    /// from inside it is refused.
    InCallback,
    /// A call panicked: the endpoint may be inconsistent; every call but close is
    /// refused with `SHMRING_E_PANIC`.
    Poisoned,
}

/// A handle with a [`State`].
pub(crate) trait Stateful {
    /// What the handle is, for messages: `"sender"`, `"receiver"`.
    const WHAT: &'static str;
    fn state(&self) -> &Cell<State>;

    /// `Ok` if the endpoint is free to use, else the reason it is not.
    fn check_idle(&self) -> Result<(), Failure> {
        match self.state().get() {
            State::Idle => Ok(()),
            State::Borrowed => Err(Failure::new(
                shmring_status::E_BUSY,
                format!(
                    "the {} is borrowed: {} first",
                    Self::WHAT,
                    if Self::WHAT == "sender" {
                        "commit or abort the outstanding grant"
                    } else {
                        "release or unread the outstanding message"
                    }
                ),
            )),
            State::InCallback => Err(in_callback(Self::WHAT)),
            State::Poisoned => Err(poisoned(Self::WHAT)),
        }
    }
}

pub(crate) fn in_callback(what: &str) -> Failure {
    Failure::new(
        shmring_status::E_BUSY,
        format!("the {what} was called from inside its own batch callback"),
    )
}

fn poisoned(what: &str) -> Failure {
    Failure::new(
        shmring_status::E_PANIC,
        format!("an earlier call on this {what} panicked: close it"),
    )
}

/// The body of every call on a handle but close: checks for NULL and for a
/// poisoned handle, runs `body`, and poisons the handle if `body` panics.
///
/// # Safety
/// `ptr` is NULL or a live handle made by this library and not closed, not used by
/// another thread during the call.
pub(crate) unsafe fn call<H: Stateful>(
    ptr: *const H,
    body: impl FnOnce(&H) -> Result<(), Failure>,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or a live handle, used by this thread alone (the caller's
        // contract); only shared references to it are ever made.
        let handle = unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(H::WHAT))?;
        if handle.state().get() == State::Poisoned {
            return Err(poisoned(H::WHAT));
        }
        match catch(|| body(handle)) {
            Ok(result) => result,
            Err(panicked) => {
                handle.state().set(State::Poisoned);
                Err(panicked)
            }
        }
    })
}
