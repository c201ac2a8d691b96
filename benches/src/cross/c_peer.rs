//! The C peer ([`Method::CAbiBusySpin`](super::Method::CAbiBusySpin),
//! [`Method::CAbiTrySpin`](super::Method::CAbiTrySpin)): the child's echo loop is C
//! (`benches/c/echo.c`, compiled by `build.rs`), written against `shmring.h`
//! alone: it opens the two channels the parent passed with
//! `shmring_channel_open_fd` (`SHMRING_WAIT_BUSY_SPIN`) and moves the messages
//! through the message family's views of its receiver and sender: the blocking
//! calls (`busy-spin-c`: the calls the Rust busy-spin child makes), or the `try_`
//! calls in a C spin loop (`try-spin-c`). The parent's side is the Rust busy-spin
//! row's ([`shm::shmring_parent`](super::shm::shmring_parent)), so a round trip
//! against that row's is the cost of the C ABI (handle and argument checks, the
//! view's dispatch, the panic guard) on the echoing side's receive and send, and
//! for `try-spin-c` also what a `try_` call costs each time it finds nothing.
//!
//! The C++ peer (the header-only wrapper `shmring.hpp`) plugs in the same way: a
//! `.cpp` echo loop beside `echo.c`, built by `build.rs` (`cc::Build::cpp`), with
//! declarations here and a method of its own.

use std::ffi::{CStr, c_int, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;

// The C ABI's functions come from this rlib: naming the crate links it, so the C
// object's references to them resolve.
use shmring_c as ffi;

use super::{ChildRun, FD_A_VAR, FD_B_VAR, PROGRESS, Result, inherited};

/// `struct shmring_bench_c_ends` (`c/echo.h`): the C peer's receiver and sender,
/// opaque here.
#[repr(C)]
struct Ends {
    receiver: *mut c_void,
    sender: *mut c_void,
}

/// `struct shmring_bench_c_failure` (`c/echo.h`).
#[repr(C)]
#[derive(Default)]
struct Failure {
    seq: u64,
    len: u64,
    head: u64,
    tail: u64,
}

/// `SHMRING_BENCH_C_E_LENGTH`: a ping of the wrong length.
const E_LENGTH: c_int = 1;
/// `SHMRING_BENCH_C_E_SEQUENCE`: a ping out of sequence.
const E_SEQUENCE: c_int = 2;

unsafe extern "C" {
    fn shmring_bench_c_open(ping_fd: c_int, pong_fd: c_int, ends: *mut Ends) -> c_int;
    fn shmring_bench_c_echo(
        ends: *const Ends,
        size: usize,
        count: u64,
        try_calls: bool,
        progress: *const AtomicU64,
        failure: *mut Failure,
    ) -> c_int;
    fn shmring_bench_c_close(ends: *mut Ends);
}

/// The child's endpoints, opened by the C peer; closed by it on drop.
pub(super) struct CEnds(Ends);

impl Drop for CEnds {
    fn drop(&mut self) {
        // SAFETY: the ends were opened by `shmring_bench_c_open` and are closed
        // once, here; the C code skips NULL ones.
        unsafe { shmring_bench_c_close(&mut self.0) };
    }
}

/// A shmring code as an error: its name and the calling thread's last message.
fn shmring_error(rc: c_int, what: &str) -> super::Error {
    // SAFETY: both return static or thread-local NUL-terminated strings that stay
    // valid until the thread's next failing call; they are copied at once.
    let (name, message) = unsafe {
        (
            CStr::from_ptr(ffi::shmring_strerror(rc)).to_string_lossy(),
            CStr::from_ptr(ffi::shmring_last_error_message()).to_string_lossy(),
        )
    };
    format!("{what}: {name} ({rc}): {message}").into()
}

/// The child's side: the C peer opens the channels the parent passed
/// ([`FD_A_VAR`]: pings, received; [`FD_B_VAR`]: echoes, sent).
pub(super) fn child() -> Result<CEnds> {
    let ping: OwnedFd = inherited(FD_A_VAR)?;
    let pong: OwnedFd = inherited(FD_B_VAR)?;
    let mut ends = CEnds(Ends {
        receiver: std::ptr::null_mut(),
        sender: std::ptr::null_mut(),
    });
    // SAFETY: two open descriptors (the C ABI duplicates them; ours close on
    // return) and a writable `Ends`.
    let rc = unsafe { shmring_bench_c_open(ping.as_raw_fd(), pong.as_raw_fd(), &mut ends.0) };
    if rc != 0 {
        return Err(shmring_error(rc, "the C peer's open"));
    }
    Ok(ends)
}

/// Says ready, and lets the C loop echo the run's pings (with the `try_` calls if
/// `try_calls`, else the blocking ones); stores the system calls
/// shmring counted on this thread for the parent.
pub(super) fn serve(run: &ChildRun<'_>, ends: &CEnds, try_calls: bool) -> Result<()> {
    run.ready();
    let calls_before = shmring::system_calls_on_this_thread();
    let mut failure = Failure::default();
    // SAFETY: open ends, used by this thread only; PROGRESS is a live AtomicU64
    // (the layout of C11's `_Atomic uint64_t` on the targets this builds for) that
    // the C code only stores into atomically; a writable `Failure`.
    let rc = unsafe {
        shmring_bench_c_echo(
            &ends.0,
            run.size,
            run.count,
            try_calls,
            &PROGRESS,
            &mut failure,
        )
    };
    let Failure {
        seq,
        len,
        head,
        tail,
    } = failure;
    match rc {
        0 => {}
        E_LENGTH => {
            return Err(format!("message {seq}: {len} bytes, expected {}", run.size).into());
        }
        E_SEQUENCE => {
            return Err(format!("message {seq} arrived as {head} (tail {tail})").into());
        }
        rc => return Err(shmring_error(rc, &format!("the C peer, round trip {seq}"))),
    }
    run.system_calls_since(calls_before);
    Ok(())
}
