//! Bytes of a ring lent to C: a grant to write a message in place (an SPSC
//! sender, a broadcast publisher) or a message to read in place (an SPSC
//! receiver, a broadcast subscriber). One pattern for all four: the call makes
//! the Rust grant or read, notes its address and length in the handle (state
//! `Borrowed`) and lets it go; the commit or release makes it again, checks it is
//! the same bytes, and finishes that. Nothing borrows the endpoint meanwhile (no
//! self-referential handle).

use std::ffi::c_int;
use std::ops::{Deref, DerefMut};

use crate::handle::{Access, Header, Kind, State, call_in, check_len, clear, clear_to, out_ptr};
use crate::status::Failure;

/// A handle kind that lends bytes of its ring.
pub(crate) trait Lends: Kind {
    /// The outstanding loan (state `Borrowed`): its bytes' address and length.
    fn loan(&mut self) -> &mut Option<(usize, usize)>;
}

/// The common body of the grant calls: `make` makes the grant and returns its
/// address (the grant goes then, publishing nothing: its bytes stay this
/// writer's, as nothing else writes the ring), noted as the loan.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top), for `handle` and
/// `out_data`.
pub(crate) unsafe fn grant_with<K: Lends, E>(
    handle: *mut K::C,
    len: usize,
    out_data: *mut *mut u8,
    make: impl FnOnce(&mut K, usize) -> Result<*mut u8, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    let body = |h: &mut K, header: &Header| {
        let out_data = out_ptr(out_data, "out_data")?;
        check_len(len, "len")?;
        let data = make(h, len).map_err(shmring::Error::from)?;
        *h.loan() = Some((data as usize, len));
        header.set_state(State::Borrowed);
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_data.write(data) };
        Ok(())
    };
    // SAFETY: delegated to the caller.
    unsafe {
        clear_to(out_data, std::ptr::null_mut());
        call_in(handle, Access::Idle, body)
    }
}

/// The common body of the read calls: `make` reads the message and returns its
/// address and length (the read goes then, consuming nothing: only this reader
/// moves past it), noted as the loan.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top), for `handle`,
/// `out_data` and `out_len`.
pub(crate) unsafe fn read_with<K: Lends, E>(
    handle: *mut K::C,
    out_data: *mut *const u8,
    out_len: *mut usize,
    make: impl FnOnce(&mut K) -> Result<(*const u8, usize), E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    let body = |h: &mut K, header: &Header| {
        let out_data = out_ptr(out_data, "out_data")?;
        let out_len = out_ptr(out_len, "out_len")?;
        let (data, len) = make(h).map_err(shmring::Error::from)?;
        *h.loan() = Some((data as usize, len));
        header.set_state(State::Borrowed);
        // SAFETY: non-null and writable (the caller's contract).
        unsafe {
            out_data.write(data);
            out_len.write(len);
        }
        Ok(())
    };
    // SAFETY: delegated to the caller.
    unsafe {
        clear_to(out_data, std::ptr::null());
        clear(out_len);
        call_in(handle, Access::Idle, body)
    }
}

/// Ends the outstanding loan with nothing done (an abort, an unread):
/// `SHMRING_E_NOT_BORROWED` if there is none.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top), for `handle`.
pub(crate) unsafe fn end_loan<K: Lends>(handle: *mut K::C) -> c_int {
    let body = |h: &mut K, header: &Header| {
        *h.loan() = None;
        header.set_state(State::Idle);
        Ok(())
    };
    // SAFETY: delegated to the caller.
    unsafe { call_in(handle, Access::Borrowed, body) }
}

/// The outstanding loan, for a commit or release; the handle is `Idle` again.
pub(crate) fn take_loan<K: Lends>(h: &mut K, header: &Header) -> (usize, usize) {
    header.set_state(State::Idle);
    h.loan().take().unwrap_or_default()
}

/// Checks that a commit of `len` bytes fits the outstanding grant of `granted`
/// (`SHMRING_E_INVALID_ARGUMENT` otherwise; the grant stays outstanding).
pub(crate) fn check_commit(len: usize, granted: usize) -> Result<(), Failure> {
    if len > granted {
        return Err(Failure::invalid(format!(
            "commit of {len} bytes exceeds the grant of {granted} (the grant is still outstanding)"
        )));
    }
    Ok(())
}

/// A grant's address, for `grant_with`'s `make` (`.map(granted)`); the grant goes.
pub(crate) fn granted<G: DerefMut<Target = [u8]>>(mut grant: G) -> *mut u8 {
    grant.as_mut_ptr()
}

/// A read message's address and length, for `read_with`'s `make`
/// (`.map(lent)`); the read goes.
pub(crate) fn lent<M: Deref<Target = [u8]>>(message: M) -> (*const u8, usize) {
    (message.as_ptr(), message.len())
}
