//! The C and C++ peers ([`Method::CAbiBusySpin`](super::Method::CAbiBusySpin),
//! [`Method::CAbiTrySpin`](super::Method::CAbiTrySpin),
//! [`Method::CppAbiBusySpin`](super::Method::CppAbiBusySpin)): the child's echo
//! loop is C (`benches/c/echo.c`) or C++ (`benches/c/echo.cpp`), compiled by
//! `build.rs`. The C loop is written against `shmring.h` alone: it opens the two
//! channels the parent passed with `shmring_channel_open_fd`
//! (`SHMRING_WAIT_BUSY_SPIN`) and moves the messages through the message family's
//! views of its receiver and sender: the blocking calls (`busy-spin-c`: the calls
//! the Rust busy-spin child makes), or the `try_` calls in a C spin loop
//! (`try-spin-c`). The C++ loop is written against the header-only wrapper
//! `shmring.hpp` alone: `shmring::channel::open_fd`, then `shmring::receiver::recv`
//! and `shmring::sender::send` (`busy-spin-cpp`: the same blocking C calls, through
//! the wrapper's inline classes); no exception leaves it. The parent's side is the
//! Rust busy-spin row's ([`shm::shmring_parent`](super::shm::shmring_parent)), so a
//! round trip against that row's is the cost of the C ABI (handle and argument
//! checks, the view's dispatch, the panic guard), and for C++ of the wrapper on
//! top, on the echoing side's receive and send, and for `try-spin-c` also what a
//! `try_` call costs each time it finds nothing.

use std::ffi::{CStr, c_int, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;

// The C ABI's functions come from this rlib: naming the crate links it, so the C
// object's references to them resolve.
use shmring_c as ffi;

use super::{ChildRun, Costs, FD_A_VAR, FD_B_VAR, PROGRESS, Result, inherited};

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
/// `SHMRING_BENCH_C_E_EXCEPTION`: the C++ peer caught an exception that is not a
/// `shmring::error` or `std::bad_alloc`.
const E_EXCEPTION: c_int = 3;

/// `struct shmring_bench_cpp_ends` (`c/echo.h`): the C++ peer's endpoints, opaque.
#[repr(C)]
struct CppEnds {
    _opaque: [u8; 0],
}

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
    fn shmring_bench_cpp_open(ping_fd: c_int, pong_fd: c_int, ends: *mut *mut CppEnds) -> c_int;
    fn shmring_bench_cpp_echo(
        ends: *mut CppEnds,
        size: usize,
        count: u64,
        progress: *const AtomicU64,
        failure: *mut Failure,
    ) -> c_int;
    fn shmring_bench_cpp_close(ends: *mut CppEnds);
}

/// Which foreign peer echoes, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Peer {
    /// `c/echo.c`, the blocking calls.
    CBlocking,
    /// `c/echo.c`, spinning on the `try_` calls.
    CTry,
    /// `c/echo.cpp`, the wrapper's blocking calls.
    Cpp,
}

/// The child's endpoints, opened by a foreign peer; closed by it on drop.
pub(super) struct PeerEnds(Opened);

/// What a foreign peer opened.
enum Opened {
    /// The C peer's, and whether it spins on the `try_` calls.
    C(Ends, bool),
    /// The C++ peer's (never NULL).
    Cpp(*mut CppEnds),
}

impl Drop for Opened {
    fn drop(&mut self) {
        match self {
            // SAFETY: the ends were opened by `shmring_bench_c_open` and are
            // closed once, here; the C code skips NULL ones.
            Self::C(ends, _) => unsafe { shmring_bench_c_close(ends) },
            // SAFETY: set by a successful `shmring_bench_cpp_open`, freed once,
            // here.
            Self::Cpp(ends) => unsafe { shmring_bench_cpp_close(*ends) },
        }
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

/// The child's side: the `peer` opens the channels the parent passed
/// ([`FD_A_VAR`]: pings, received; [`FD_B_VAR`]: echoes, sent).
pub(super) fn child(peer: Peer) -> Result<PeerEnds> {
    let ping: OwnedFd = inherited(FD_A_VAR)?;
    let pong: OwnedFd = inherited(FD_B_VAR)?;
    let (ping, pong) = (ping.as_raw_fd(), pong.as_raw_fd());
    if peer == Peer::Cpp {
        let mut ends = std::ptr::null_mut();
        // SAFETY: two open descriptors (the C ABI duplicates them; ours close on
        // return) and a writable pointer; the C++ code catches every exception.
        let rc = unsafe { shmring_bench_cpp_open(ping, pong, &mut ends) };
        if rc != 0 || ends.is_null() {
            return Err(shmring_error(rc, "the C++ peer's open"));
        }
        return Ok(PeerEnds(Opened::Cpp(ends)));
    }
    let mut ends = Opened::C(
        Ends {
            receiver: std::ptr::null_mut(),
            sender: std::ptr::null_mut(),
        },
        peer == Peer::CTry,
    );
    let Opened::C(raw, _) = &mut ends else {
        unreachable!("made as C ends just above")
    };
    // SAFETY: two open descriptors (the C ABI duplicates them; ours close on
    // return) and a writable `Ends`.
    let rc = unsafe { shmring_bench_c_open(ping, pong, raw) };
    if rc != 0 {
        return Err(shmring_error(rc, "the C peer's open"));
    }
    Ok(PeerEnds(ends))
}

/// Says ready, and lets the foreign loop echo the run's pings; stores the system
/// calls shmring counted on this thread for the parent.
pub(super) fn serve(run: &ChildRun<'_>, ends: &PeerEnds) -> Result<()> {
    run.ready();
    let before = Costs::now();
    let mut failure = Failure::default();
    let (rc, peer) = match &ends.0 {
        Opened::C(raw, try_calls) => {
            // SAFETY: open ends, used by this thread only; PROGRESS is a live
            // AtomicU64 (the layout of C11's `_Atomic uint64_t` on the targets this
            // builds for) that the C code only stores into atomically; a writable
            // `Failure`.
            let rc = unsafe {
                shmring_bench_c_echo(
                    raw,
                    run.size,
                    run.count,
                    *try_calls,
                    &PROGRESS,
                    &mut failure,
                )
            };
            (rc, "C")
        }
        Opened::Cpp(raw) => {
            // SAFETY: as for the C peer (`std::atomic<uint64_t>` has the layout of
            // AtomicU64 here too); the C++ code catches every exception.
            let rc = unsafe {
                shmring_bench_cpp_echo(*raw, run.size, run.count, &PROGRESS, &mut failure)
            };
            (rc, "C++")
        }
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
        E_EXCEPTION => {
            return Err(
                format!("the {peer} peer, round trip {seq}: an unexpected exception").into(),
            );
        }
        rc => {
            return Err(shmring_error(
                rc,
                &format!("the {peer} peer, round trip {seq}"),
            ));
        }
    }
    run.costs_since(before);
    Ok(())
}
