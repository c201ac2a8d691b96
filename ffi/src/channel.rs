//! Channels: create or open a segment (named shared memory, a file, or a memfd),
//! with options.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;

use shmring::{Channel, ChannelBuilder, SegmentBuilder};

use crate::handle::{Kind, c_name, c_path, call_ref, close, construct, dup_fd, write_out};
use crate::message::Endpoint;
use crate::options::{SegmentSettings, wait_strategy};
use crate::status::{Failure, guard};

/// A created or opened channel: a mapped segment holding one ring. Make its
/// endpoints with `shmring_sender_new` and `shmring_receiver_new`; free it with
/// `shmring_channel_close` (the endpoints keep the segment mapped on their own).
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_channel {
    _opaque: [u8; 0],
}

/// The value of a `shmring_channel` handle. Shared: several threads may call it
/// at once (`call_ref` only).
#[derive(Debug)]
pub(crate) struct Spsc {
    pub(crate) channel: Channel,
}

impl Kind for Spsc {
    type C = shmring_channel;
    const WHAT: &'static str = "channel";
}

impl Endpoint for Spsc {}

/// How a blocked call waits for its peer: the `wait_strategy` field of
/// `shmring_channel_options`. The strategy belongs to the process that creates or
/// opens the channel (each side chooses its own).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmring_wait_strategy {
    /// Poll for `spin_ns` (default 50 us), then sleep on the futex (the default).
    WAIT_SPIN_THEN_PARK = 0,
    /// Poll without sleeping: the lowest latency, one core kept busy.
    WAIT_BUSY_SPIN = 1,
    /// Sleep on the futex at once.
    WAIT_PARK = 2,
}

/// Option flag: on create, replace a segment of the same name whose handles are
/// all dead (left behind by a crash). A segment with a live handle is never
/// replaced.
pub const SHMRING_OPTION_RECLAIM: u32 = 1;
/// Option flag: on create, keep the name (or file) when the creator's last handle
/// closes (default for named shared memory: remove it).
pub const SHMRING_OPTION_KEEP: u32 = 2;
/// Option flag: on create, remove the name (or file) when the creator's last handle
/// closes (default for files: keep it). Not together with `SHMRING_OPTION_KEEP`.
pub const SHMRING_OPTION_UNLINK: u32 = 4;
/// Option flag: on create, use full fences on both sides instead of the asymmetric
/// pair (`membarrier`). Needed when a process that may use the channel cannot call
/// `membarrier` (a seccomp filter, valgrind): with the asymmetric pair such a
/// process gets `SHMRING_E_UNSUPPORTED` when it makes a sender or receiver.
pub const SHMRING_OPTION_SYMMETRIC_FENCES: u32 = 8;
/// Option flag: map with `MAP_POPULATE`, so the first messages take no page faults.
pub const SHMRING_OPTION_PREFAULT: u32 = 16;
/// Option flag: on open, accept a segment owned by `trusted_uid` (default: only
/// the caller's effective uid).
pub const SHMRING_OPTION_TRUST_OWNER: u32 = 32;

const KNOWN_OPTIONS: u32 = SHMRING_OPTION_RECLAIM
    | SHMRING_OPTION_KEEP
    | SHMRING_OPTION_UNLINK
    | SHMRING_OPTION_SYMMETRIC_FENCES
    | SHMRING_OPTION_PREFAULT
    | SHMRING_OPTION_TRUST_OWNER;

/// `sizeof(shmring_channel_options)`, for a C11 `_Static_assert`.
pub const SHMRING_CHANNEL_OPTIONS_SIZE: usize = 80;

/// Options of the channel create and open calls. Fill it with
/// `shmring_channel_options_init` (all zero is the same: every field's default),
/// then change what you need. Passing NULL instead of options means defaults.
///
/// Fields that apply only to create (or only to open) are ignored by the other.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shmring_channel_options {
    /// `SHMRING_OPTION_*` bits; others are refused (`SHMRING_E_INVALID_ARGUMENT`).
    pub flags: u32,
    /// Create: permission bits of a named segment or file, e.g. `0600`; 0 means the
    /// default `0600`. A memfd is always `0666` (only holders of its descriptor
    /// reach it).
    pub mode: u32,
    /// Open: the permission bits an opened segment may have; a segment with any
    /// other bit set is refused with `SHMRING_E_UNTRUSTED`. 0 means the default
    /// `0644` (nobody but the owner may write it).
    pub allowed_mode: u32,
    /// Open: with `SHMRING_OPTION_TRUST_OWNER`, also accept segments owned by this
    /// uid.
    pub trusted_uid: u32,
    /// A `shmring_wait_strategy` value.
    pub wait_strategy: u32,
    /// Reserved: must be zero.
    pub reserved0: u32,
    /// With `SHMRING_WAIT_SPIN_THEN_PARK`: how long to poll before sleeping, in
    /// nanoseconds; 0 means the default, 50 us.
    pub spin_ns: u64,
    /// Reserved for later options: must be zero.
    pub reserved: [u64; 6],
}

const _: () = assert!(size_of::<shmring_channel_options>() == SHMRING_CHANNEL_OPTIONS_SIZE);
// Handles move between threads (one at a time); a channel is shared between them.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Channel>();
};

impl shmring_channel_options {
    /// Checks the fields (flags known, reserved zero, no contradiction, modes in
    /// range, a known wait strategy) and returns the settings they make.
    pub(crate) fn check(&self) -> Result<SegmentSettings, Failure> {
        if self.reserved0 != 0 || self.reserved.iter().any(|&r| r != 0) {
            return Err(Failure::invalid(
                "reserved option fields must be zero (use shmring_channel_options_init)",
            ));
        }
        let settings = SegmentSettings::check(
            self.flags,
            KNOWN_OPTIONS,
            "",
            self.mode,
            self.allowed_mode,
            self.trusted_uid,
        )?;
        let wait = wait_strategy(self.wait_strategy, self.spin_ns)?;
        Ok(settings.waiting(wait))
    }
}

/// Reads the caller's channel options (NULL: defaults), checks them and applies
/// them to `builder`: an SPSC or an MPMC channel's.
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_channel_options`.
pub(crate) unsafe fn builder<B: SegmentBuilder>(
    builder: B,
    options: *const shmring_channel_options,
) -> Result<B, Failure> {
    // SAFETY: NULL or a readable, aligned options struct (the caller's contract);
    // every bit pattern of its integer fields is valid.
    let options = unsafe { options.as_ref() }.copied().unwrap_or_default();
    Ok(options.check()?.apply(builder))
}

/// Fills `*options` with the defaults (all fields zero): wait strategy
/// spin-then-park (50 us), mode `0600`, accepted mode `0644`, no flags.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` if `options` is NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_options_init(
    options: *mut shmring_channel_options,
) -> c_int {
    // SAFETY: the caller's contract.
    guard(|| unsafe { write_out(options, "options", shmring_channel_options::default()) })
}

/// Creates a channel in named POSIX shared memory, `/dev/shm/shmring.<name>`, with
/// a fresh, empty ring of `capacity` bytes, and returns it in `*out`.
///
/// The segment is created `0600` (see `options.mode`) and removed when the
/// creator's last handle (channel, sender, receiver) closes, unless
/// `SHMRING_OPTION_KEEP`. The largest message is `capacity / 2 - 8` bytes.
///
/// # Arguments
/// - `name`: 1 to 200 bytes of ASCII letters, digits, `.`, `_`, `-`; not `.`/`..`.
/// - `capacity`: a power of two from `SHMRING_MIN_CAPACITY` (64) to
///   `SHMRING_MAX_CAPACITY` (512 MiB); 64 KiB is a good default.
/// - `options`: NULL for defaults.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`, `SHMRING_E_INVALID_CAPACITY`,
/// `SHMRING_E_ALREADY_EXISTS` (see `SHMRING_OPTION_RECLAIM`),
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_NO_SPACE`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_create(
    name: *const c_char,
    capacity: usize,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_channel,
) -> c_int {
    construct(out, || -> Result<Spsc, Failure> {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { builder(ChannelBuilder::shm(c_name(name)?), options) }?;
        Ok(Spsc {
            channel: builder.capacity(capacity).create()?,
        })
    })
}

/// Opens the channel `/dev/shm/shmring.<name>` made by another process (or this
/// one) and validates it: owner and mode (see `options`), size, every header field.
/// A channel still being created is waited for (up to 2 s).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`, `SHMRING_E_NOT_FOUND`,
/// `SHMRING_E_PERMISSION_DENIED`, `SHMRING_E_UNTRUSTED`, `SHMRING_E_BAD_SIZE`,
/// `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_open(
    name: *const c_char,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_channel,
) -> c_int {
    construct(out, || -> Result<Spsc, Failure> {
        // SAFETY: the caller's contract on `name` and `options`.
        let builder = unsafe { builder(ChannelBuilder::shm(c_name(name)?), options) }?;
        Ok(Spsc {
            channel: builder.open()?,
        })
    })
}

/// Creates a channel in a regular file at `path` (created exclusively, `0600`):
/// the ring persists, and reopening it after every process has exited resumes with
/// the unconsumed messages. The file is kept when the creator closes, unless
/// `SHMRING_OPTION_UNLINK`.
///
/// # Returns
/// As `shmring_channel_create`; `SHMRING_E_NOT_FOUND` if the directory is missing.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_create_file(
    path: *const c_char,
    capacity: usize,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_channel,
) -> c_int {
    construct(out, || -> Result<Spsc, Failure> {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { builder(ChannelBuilder::file(c_path(path)?), options) }?;
        Ok(Spsc {
            channel: builder.capacity(capacity).create()?,
        })
    })
}

/// Opens a channel file made by `shmring_channel_create_file`.
///
/// # Returns
/// As `shmring_channel_open`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_open_file(
    path: *const c_char,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_channel,
) -> c_int {
    construct(out, || -> Result<Spsc, Failure> {
        // SAFETY: the caller's contract on `path` and `options`.
        let builder = unsafe { builder(ChannelBuilder::file(c_path(path)?), options) }?;
        Ok(Spsc {
            channel: builder.open()?,
        })
    })
}

/// Creates a channel in an anonymous memfd (no name anywhere, nothing to clean
/// up), sealed against resizing. Hand it to another process with
/// `shmring_channel_fd` (by inheritance across `fork`/`exec`, or `SCM_RIGHTS`);
/// that process opens it with `shmring_channel_open_fd`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_CAPACITY`, `SHMRING_E_NO_SPACE`,
/// `SHMRING_E_IO`, `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_create_memfd(
    capacity: usize,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_channel,
) -> c_int {
    construct(out, || -> Result<Spsc, Failure> {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(ChannelBuilder::memfd(), options) }?;
        Ok(Spsc {
            channel: builder.capacity(capacity).create()?,
        })
    })
}

/// Opens the channel behind the descriptor `fd`: a memfd from
/// `shmring_channel_create_memfd` (or any channel's descriptor) handed over by
/// another process. The size, seals and ring are checked; owner and mode are not
/// (whoever holds the descriptor can write the segment anyway).
///
/// The library duplicates `fd` (close-on-exec): the caller keeps its own `fd` and
/// may close it at once. The channel's liveness locks are on a description of its
/// own (reopened through `/proc/self/fd`): none stays on `fd` after a failed open
/// or `shmring_channel_close`. Where that reopen is refused (another uid's `0600`
/// file, no `/proc`), the channel opens without a presence lock, and neither its
/// sender nor its receiver can be claimed (`SHMRING_E_IO` or
/// `SHMRING_E_PERMISSION_DENIED`).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` (negative or closed `fd`),
/// `SHMRING_E_BAD_SIZE`, `SHMRING_E_INCOMPATIBLE_LAYOUT`, `SHMRING_E_CORRUPTED`,
/// `SHMRING_E_IO` (e.g. an unsealed memfd).
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_open_fd(
    fd: c_int,
    options: *const shmring_channel_options,
    out: *mut *mut shmring_channel,
) -> c_int {
    construct(out, || -> Result<Spsc, Failure> {
        // SAFETY: the caller's contract on `options`.
        let builder = unsafe { builder(ChannelBuilder::memfd(), options) }?;
        Ok(Spsc {
            channel: builder.from_fd(dup_fd(fd)?)?,
        })
    })
}

/// Stores the channel's descriptor in `*out_fd`, to hand the channel to another
/// process (a memfd's only way there). The descriptor stays the channel's: do not
/// close it; it is valid until `shmring_channel_close`. It is close-on-exec: to
/// pass it across `exec`, `dup` it (the copy is not close-on-exec) in the child or
/// clear `FD_CLOEXEC` there; or send it with `SCM_RIGHTS`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_fd(
    channel: *const shmring_channel,
    out_fd: *mut c_int,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(channel, |c: &Spsc| {
            write_out(out_fd, "out_fd", c.channel.segment().fd().as_raw_fd())
        })
    }
}

/// Stores the channel's capacity (bytes of its data region) in `*out`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_capacity(
    channel: *const shmring_channel,
    out: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(channel, |c: &Spsc| {
            write_out(out, "out", c.channel.segment().capacity())
        })
    }
}

/// Stores the largest message the channel takes (`capacity / 2 - 8`) in `*out`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_channel_max_message_len(
    channel: *const shmring_channel,
    out: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        call_ref(channel, |c: &Spsc| {
            write_out(out, "out", c.channel.max_message_len())
        })
    }
}

/// Frees a channel handle. Senders and receivers made from it stay valid (they
/// keep the segment mapped); a named segment created with the default options is
/// removed when the last of them closes. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_channel_close(channel: *mut shmring_channel) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Spsc>(channel) }
}
