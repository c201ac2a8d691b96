//! Connections (`shmring::connection`): a service binds a name, clients connect
//! to it, and each side gets a duplex connection that runs over a pair of
//! shared-memory rings, or over the socket (or TCP) where shared memory cannot be
//! had. The handshake, the checks and the fallback are the Rust library's (module
//! `shmring::connection`; docs/design/connection-handshake.md).
//!
//! The listener handle is `shmring_conn_listener` (`shmring_listener` is the
//! address-based transports' listener, `transport.rs`).

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_char, c_int, c_void};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use shmring::connection::{ConnectOptions, Connection, Listener, Transport, TransportPolicy};

use crate::channel::{file_path, shm_name, shmring_wait_strategy};
use crate::handle::{State, Stateful, call};
use crate::options::wait_strategy;
use crate::readiness::{WakeupsInfo, readiness_code, shmring_wakeups, value_or_code};
use crate::status::{Failure, guard, shmring_status};
use crate::{message_bytes, out_ptr};

/// What a connection's messages travel on: `shmring_connection_transport`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmring_transport {
    /// A pair of shared-memory rings (memfds), with the Unix socket beside them
    /// for liveness.
    TRANSPORT_SHARED_MEMORY = 1,
    /// The Unix socket itself, length-framed (the fallback).
    TRANSPORT_UNIX_SOCKET = 2,
    /// A TCP connection, length-framed (`tcp://` addresses).
    TRANSPORT_TCP = 3,
}

/// The `transport` option (listener and client): shared memory if both sides
/// can, else the socket (the default).
pub const SHMRING_TRANSPORT_POLICY_ANY: u32 = 0;
/// The `transport` option: shared memory or nothing (a connection that cannot
/// have it fails).
pub const SHMRING_TRANSPORT_POLICY_SHARED_MEMORY_ONLY: u32 = 1;
/// The `transport` option: never shared memory, always the socket (what the
/// environment variable `SHMRING_NO_SHM=1` makes of `SHMRING_TRANSPORT_POLICY_ANY`).
pub const SHMRING_TRANSPORT_POLICY_SOCKET_ONLY: u32 = 2;

/// Listener option flag: also let clients of `allowed_uid` connect (checked with
/// `SO_PEERCRED`; the listener's own uid is always allowed).
pub const SHMRING_CONN_OPTION_ALLOW_UID: u32 = 1;
/// Connect option flag: also trust a listener running as `trusted_uid` (this uid
/// and root are always trusted).
pub const SHMRING_CONN_OPTION_TRUST_SERVER_UID: u32 = 2;

/// Options of `shmring_conn_listener_bind`. Fill it with
/// `shmring_conn_listener_options_init` (all zero is the same: every field's
/// default), then change what you need. Passing NULL instead of options means
/// defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmring_conn_listener_options {
    /// The directory of the socket, a NUL-terminated path, read during the call;
    /// NULL: `$XDG_RUNTIME_DIR/shmring`, or `/tmp/shmring-<euid>`. Created `0700`
    /// if missing (its parent must exist), then checked: a directory, not a
    /// symbolic link, owned by this uid, no mode bits beyond `directory_mode`.
    pub directory: *const c_char,
    /// `SHMRING_CONN_OPTION_ALLOW_UID` or 0; other bits are refused.
    pub flags: u32,
    /// With `SHMRING_CONN_OPTION_ALLOW_UID`: the other uid allowed to connect.
    pub allowed_uid: u32,
    /// The mode bits the directory may have; 0 means the default `0700`.
    pub directory_mode: u32,
    /// The socket file's mode; 0 means the default `0600`.
    pub socket_mode: u32,
    /// The ring capacity of each direction, a power of two; 0 means the default
    /// (256 KiB). The largest message is half of it less 8 bytes, on every
    /// transport.
    pub capacity: u64,
    /// The largest capacity a client may ask for; 0 means the default (16 MiB).
    pub max_capacity: u64,
    /// A `SHMRING_TRANSPORT_POLICY_*` value.
    pub transport: u32,
    /// A `shmring_wait_strategy` value: how the listener's ends of shared-memory
    /// connections wait.
    pub wait_strategy: u32,
    /// With `SHMRING_WAIT_SPIN_THEN_PARK`: how long to poll before sleeping, in
    /// nanoseconds; 0 means the default, 50 us.
    pub spin_ns: u64,
    /// How long one client's handshake may take, in milliseconds; 0 means the
    /// default, 5000.
    pub handshake_timeout_ms: u64,
    /// Reserved for later options: must be zero.
    pub reserved: [u64; 4],
}

/// Options of `shmring_connect`. Fill it with `shmring_connect_options_init` (all
/// zero is the same: every field's default), then change what you need. Passing
/// NULL instead of options means defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmring_connect_options {
    /// The directory of the listener's socket, a NUL-terminated path, read during
    /// the call; NULL: the listener's default. Checked before connecting: a
    /// directory, not a symbolic link, owned by this uid, root or a trusted uid,
    /// not writable by group or others.
    pub directory: *const c_char,
    /// `SHMRING_CONN_OPTION_TRUST_SERVER_UID` or 0; other bits are refused.
    pub flags: u32,
    /// With `SHMRING_CONN_OPTION_TRUST_SERVER_UID`: the other uid trusted as the
    /// listener's.
    pub trusted_uid: u32,
    /// The ring capacity to ask for, a power of two; 0: the listener's. The
    /// listener grants at most its `max_capacity`.
    pub capacity: u64,
    /// A `SHMRING_TRANSPORT_POLICY_*` value.
    pub transport: u32,
    /// A `shmring_wait_strategy` value: how this side's ends of a shared-memory
    /// connection wait.
    pub wait_strategy: u32,
    /// With `SHMRING_WAIT_SPIN_THEN_PARK`: how long to poll before sleeping, in
    /// nanoseconds; 0 means the default, 50 us.
    pub spin_ns: u64,
    /// Reserved for later options: must be zero.
    pub reserved: [u64; 4],
}

impl Default for shmring_conn_listener_options {
    fn default() -> Self {
        Self {
            directory: std::ptr::null(),
            flags: 0,
            allowed_uid: 0,
            directory_mode: 0,
            socket_mode: 0,
            capacity: 0,
            max_capacity: 0,
            transport: SHMRING_TRANSPORT_POLICY_ANY,
            wait_strategy: shmring_wait_strategy::WAIT_SPIN_THEN_PARK as u32,
            spin_ns: 0,
            handshake_timeout_ms: 0,
            reserved: [0; 4],
        }
    }
}

impl Default for shmring_connect_options {
    fn default() -> Self {
        Self {
            directory: std::ptr::null(),
            flags: 0,
            trusted_uid: 0,
            capacity: 0,
            transport: SHMRING_TRANSPORT_POLICY_ANY,
            wait_strategy: shmring_wait_strategy::WAIT_SPIN_THEN_PARK as u32,
            spin_ns: 0,
            reserved: [0; 4],
        }
    }
}

fn policy(value: u32) -> Result<TransportPolicy, Failure> {
    match value {
        SHMRING_TRANSPORT_POLICY_ANY => Ok(TransportPolicy::Any),
        SHMRING_TRANSPORT_POLICY_SHARED_MEMORY_ONLY => Ok(TransportPolicy::SharedMemoryOnly),
        SHMRING_TRANSPORT_POLICY_SOCKET_ONLY => Ok(TransportPolicy::SocketOnly),
        other => Err(Failure::invalid(format!(
            "unknown transport policy {other}"
        ))),
    }
}

fn check_flags(flags: u32, known: u32, reserved: &[u64]) -> Result<(), Failure> {
    if flags & !known != 0 {
        return Err(Failure::invalid(format!(
            "unknown option flags {:#x}",
            flags & !known
        )));
    }
    if reserved.iter().any(|&r| r != 0) {
        return Err(Failure::invalid(
            "reserved option fields must be zero (use the options' _init function)",
        ));
    }
    Ok(())
}

/// A capacity from C as a `usize`, or `SHMRING_E_INVALID_CAPACITY`.
fn capacity(field: &str, value: u64) -> Result<usize, Failure> {
    usize::try_from(value).map_err(|_| {
        Failure::new(
            shmring_status::E_INVALID_CAPACITY,
            format!("{field} {value} does not fit in size_t"),
        )
    })
}

/// Reads the caller's listener options (NULL: defaults) into a bound listener.
///
/// # Safety
/// `options` is NULL or points to a readable `shmring_conn_listener_options`
/// whose `directory` is NULL or a NUL-terminated string.
unsafe fn bind_with(
    address: &str,
    options: *const shmring_conn_listener_options,
) -> Result<Listener, Failure> {
    // SAFETY: NULL or a readable, aligned options struct (the caller's contract);
    // every bit pattern of its integer and pointer fields is valid.
    let o = unsafe { options.as_ref() }.copied().unwrap_or_default();
    check_flags(o.flags, SHMRING_CONN_OPTION_ALLOW_UID, &o.reserved)?;
    for (field, mode) in [
        ("directory_mode", o.directory_mode),
        ("socket_mode", o.socket_mode),
    ] {
        if mode > 0o7777 {
            return Err(Failure::invalid(format!(
                "{field} {mode:#o} has bits beyond 07777"
            )));
        }
    }
    let mut builder = Listener::builder(address)
        .transport(policy(o.transport)?)
        .wait_strategy(wait_strategy(o.wait_strategy, o.spin_ns)?);
    if !o.directory.is_null() {
        // SAFETY: a NUL-terminated string (the caller's contract).
        builder = builder.directory(unsafe { file_path(o.directory) }?);
    }
    if o.flags & SHMRING_CONN_OPTION_ALLOW_UID != 0 {
        builder = builder.allow_uid(o.allowed_uid);
    }
    if o.directory_mode != 0 {
        builder = builder.directory_mode(o.directory_mode);
    }
    if o.socket_mode != 0 {
        builder = builder.socket_mode(o.socket_mode);
    }
    if o.capacity != 0 {
        builder = builder.capacity(capacity("capacity", o.capacity)?);
    }
    if o.max_capacity != 0 {
        builder = builder.max_capacity(capacity("max_capacity", o.max_capacity)?);
    }
    if o.handshake_timeout_ms != 0 {
        builder = builder.handshake_timeout(Duration::from_millis(o.handshake_timeout_ms));
    }
    Ok(builder.bind()?)
}

/// Reads the caller's connect options (NULL: defaults).
///
/// # Safety
/// As [`bind_with`], for a `shmring_connect_options`.
unsafe fn connect_options(
    options: *const shmring_connect_options,
) -> Result<ConnectOptions, Failure> {
    // SAFETY: NULL or a readable, aligned options struct (the caller's contract);
    // every bit pattern of its integer and pointer fields is valid.
    let o = unsafe { options.as_ref() }.copied().unwrap_or_default();
    check_flags(o.flags, SHMRING_CONN_OPTION_TRUST_SERVER_UID, &o.reserved)?;
    let mut options = ConnectOptions::new()
        .transport(policy(o.transport)?)
        .wait_strategy(wait_strategy(o.wait_strategy, o.spin_ns)?);
    if !o.directory.is_null() {
        // SAFETY: a NUL-terminated string (the caller's contract).
        options = options.directory(unsafe { file_path(o.directory) }?);
    }
    if o.flags & SHMRING_CONN_OPTION_TRUST_SERVER_UID != 0 {
        options = options.trust_server_uid(o.trusted_uid);
    }
    if o.capacity != 0 {
        options = options.capacity(capacity("capacity", o.capacity)?);
    }
    Ok(options)
}

/// A bound connection listener: hands out a `shmring_connection` per client
/// (`shmring_conn_listener_accept`). Make it with `shmring_conn_listener_bind`,
/// free it with `shmring_conn_listener_close` (which removes the socket file;
/// accepted connections live on).
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
pub struct shmring_conn_listener {
    state: Cell<State>,
    listener: Listener,
}

/// A duplex connection to one peer, made by `shmring_connect` or
/// `shmring_conn_listener_accept`: messages both ways, over shared memory or a
/// socket (`shmring_connection_transport`). Free it with
/// `shmring_connection_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
pub struct shmring_connection {
    state: Cell<State>,
    /// Cached: the same on every transport.
    max_message_len: usize,
    transport: Transport,
    /// Cached (fixed for the connection's life; owned by `connection`): the
    /// receiving and the sending half's readiness descriptors.
    readiness_fd: c_int,
    send_readiness_fd: c_int,
    /// Cached: how the receiving half's descriptor is woken.
    wakeups: WakeupsInfo,
    connection: UnsafeCell<Connection>,
}

impl std::fmt::Debug for shmring_conn_listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shmring_conn_listener")
            .field("state", &self.state.get())
            .field("listener", &self.listener)
            .finish()
    }
}

impl std::fmt::Debug for shmring_connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shmring_connection")
            .field("state", &self.state.get())
            .field("max_message_len", &self.max_message_len)
            .field("transport", &self.transport)
            .field("readiness_fd", &self.readiness_fd)
            .field("send_readiness_fd", &self.send_readiness_fd)
            .field("wakeups", &self.wakeups)
            .finish_non_exhaustive()
    }
}

// A handle may move to another thread between calls.
const _: () = {
    const fn send<T: Send>() {}
    send::<shmring_conn_listener>();
    send::<shmring_connection>();
};

impl Stateful for shmring_conn_listener {
    const WHAT: &'static str = "listener";
    fn state(&self) -> &Cell<State> {
        &self.state
    }
}

impl Stateful for shmring_connection {
    const WHAT: &'static str = "connection";
    fn state(&self) -> &Cell<State> {
        &self.state
    }
}

impl shmring_connection {
    fn new(connection: Connection) -> Self {
        Self {
            state: Cell::new(State::Idle),
            max_message_len: connection.max_message_len(),
            transport: connection.transport(),
            readiness_fd: connection.readiness_fd().as_raw_fd(),
            send_readiness_fd: connection.send_readiness_fd().as_raw_fd(),
            wakeups: WakeupsInfo::new(connection.wakeups()),
            connection: UnsafeCell::new(connection),
        }
    }

    fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> Result<R, Failure> {
        self.check_idle()?;
        // SAFETY: a connection handle is never borrowed and runs no callbacks, and
        // one thread at a time calls it (the caller's contract): the only
        // reference while `f` runs.
        Ok(f(unsafe { &mut *self.connection.get() }))
    }
}

/// The deadline `timeout_ms` milliseconds from now; `None` (no limit) when the
/// clock cannot express it (`UINT64_MAX`).
fn deadline(timeout_ms: u64) -> Option<Instant> {
    Instant::now().checked_add(Duration::from_millis(timeout_ms))
}

/// Stores a new connection handle in `out`.
fn store(out: NonNull<*mut shmring_connection>, connection: Connection) {
    let handle = Box::into_raw(Box::new(shmring_connection::new(connection)));
    // SAFETY: non-null and writable (checked and cleared by the caller of this
    // function, under the exported function's contract).
    unsafe { out.write(handle) };
}

/// Fills `*options` with the defaults (all fields zero): the default directory,
/// modes `0700`/`0600`, 256 KiB rings (clients may ask up to 16 MiB), transport
/// policy any, spin-then-park, a 5 s handshake timeout.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` if `options` is NULL.
///
/// # Safety
/// `options` is NULL or points to a writable `shmring_conn_listener_options`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_options_init(
    options: *mut shmring_conn_listener_options,
) -> c_int {
    guard(|| {
        let options = out_ptr(options, "options")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { options.write(shmring_conn_listener_options::default()) };
        Ok(())
    })
}

/// Fills `*options` with the defaults (all fields zero): the default directory,
/// the listener's capacity, transport policy any, spin-then-park, trust servers
/// of this uid and root.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` if `options` is NULL.
///
/// # Safety
/// `options` is NULL or points to a writable `shmring_connect_options`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connect_options_init(
    options: *mut shmring_connect_options,
) -> c_int {
    guard(|| {
        let options = out_ptr(options, "options")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { options.write(shmring_connect_options::default()) };
        Ok(())
    })
}

/// Binds `address` and listens: a name (the socket is `<directory>/<name>.sock`;
/// the channel name rules apply) or `"tcp://host:port"` (`tcp://:0`: a free port
/// on 127.0.0.1; no authentication, no encryption). A socket file left by a
/// listener that died is replaced; a live one is not.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`; `SHMRING_E_INVALID_ARGUMENT` (NULL, a
/// bad `tcp://` address, unknown flags or option values, non-zero reserved
/// fields, a directory that is not a directory); `SHMRING_E_INVALID_CAPACITY`;
/// `SHMRING_E_UNTRUSTED` (a directory of another owner or with more mode bits than
/// `directory_mode`); `SHMRING_E_ALREADY_EXISTS` (a live listener has the name, or
/// the port is taken); `SHMRING_E_UNSUPPORTED` (shared memory required but
/// forbidden by `SHMRING_NO_SHM`); `SHMRING_E_PERMISSION_DENIED`; `SHMRING_E_IO`.
///
/// # Safety
/// - `address` is NULL or a NUL-terminated string.
/// - `options` is NULL or points to a readable `shmring_conn_listener_options`
///   whose `directory` is NULL or a NUL-terminated string.
/// - `out` is NULL or points to a writable `shmring_conn_listener *`; it receives
///   the new handle (owned by the caller: free it with
///   `shmring_conn_listener_close`), or NULL on failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_bind(
    address: *const c_char,
    options: *const shmring_conn_listener_options,
    out: *mut *mut shmring_conn_listener,
) -> c_int {
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's contract on `address` and `options`.
        let listener = unsafe { bind_with(&shm_name(address)?, options) }?;
        let handle = Box::new(shmring_conn_listener {
            state: Cell::new(State::Idle),
            listener,
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// The TCP port a `tcp://` listener listens on (the one picked for port 0), in
/// `*out_port`.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` (NULL, or a named listener, which
/// has no port).
///
/// # Safety
/// `listener` is NULL or a live listener handle; `out_port` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_port(
    listener: *const shmring_conn_listener,
    out_port: *mut u16,
) -> c_int {
    let body = |h: &shmring_conn_listener| {
        let out_port = out_ptr(out_port, "out_port")?;
        let addr = h
            .listener
            .local_addr()
            .ok_or_else(|| Failure::invalid("a named listener has no TCP port"))?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_port.write(addr.port()) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(listener, body) }
}

/// The common body of the accepts.
///
/// # Safety
/// As the exported functions.
unsafe fn accept_with(
    listener: *const shmring_conn_listener,
    out: *mut *mut shmring_connection,
    accept: impl FnOnce(&Listener) -> shmring::Result<Connection>,
) -> c_int {
    let body = |h: &shmring_conn_listener| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        h.check_idle()?;
        store(out, accept(&h.listener)?);
        Ok(())
    };
    // SAFETY: delegated to the caller.
    unsafe { call(listener, body) }
}

/// Accepts the next client, waiting as long as it takes, and returns the
/// connection in `*out`. A client that fails the handshake (a uid not allowed,
/// not a shmring client, policies that leave no transport, a stall longer than the
/// handshake timeout) is told why where possible and skipped: the call goes on
/// waiting.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_IO`; `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// - `listener` is NULL or a live listener handle.
/// - `out` is NULL or points to a writable `shmring_connection *`; it receives the
///   new handle (owned by the caller: free it with `shmring_connection_close`), or
///   NULL on failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_accept(
    listener: *mut shmring_conn_listener,
    out: *mut *mut shmring_connection,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { accept_with(listener, out, |l| l.accept()) }
}

/// As `shmring_conn_listener_accept`, giving up after `timeout_ms` milliseconds
/// with `SHMRING_E_TIMED_OUT` (`UINT64_MAX`: without limit). A client that has
/// connected gets its handshake time even if the timeout ends meanwhile.
///
/// # Safety
/// As `shmring_conn_listener_accept`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_accept_timeout(
    listener: *mut shmring_conn_listener,
    timeout_ms: u64,
    out: *mut *mut shmring_connection,
) -> c_int {
    let deadline = deadline(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { accept_with(listener, out, |l| l.accept_deadline(deadline)) }
}

/// Accepts a client that is waiting now, or returns `SHMRING_E_EMPTY`. A waiting
/// client is handshaken, which takes a round trip (bounded by the handshake
/// timeout).
///
/// # Safety
/// As `shmring_conn_listener_accept`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_try_accept(
    listener: *mut shmring_conn_listener,
    out: *mut *mut shmring_connection,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { accept_with(listener, out, |l| l.try_accept()) }
}

/// Frees a handle made by `Box::into_raw`, unless NULL.
///
/// # Safety
/// `ptr` is NULL or made by `Box::into_raw` and not freed yet, not used by any
/// thread during or after this call.
unsafe fn close<H>(ptr: *mut H) -> c_int {
    let Some(ptr) = NonNull::new(ptr) else {
        return shmring_status::OK.code();
    };
    guard(|| {
        // SAFETY: made by `Box::into_raw`, given back by its owner: freed once,
        // here.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
        Ok(())
    })
}

/// Frees a listener and removes its socket file; connections it accepted live
/// on. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `listener` is NULL or a live listener handle, not used by any thread during or
/// after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_conn_listener_close(
    listener: *mut shmring_conn_listener,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close(listener) }
}

/// Connects to `address` (a listener's name, or `"tcp://host:port"`) and returns
/// the connection in `*out`, giving up after `timeout_ms` milliseconds
/// (`UINT64_MAX`: without limit; a listener that dies ends the wait anyway).
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_NAME`; `SHMRING_E_INVALID_ARGUMENT` (NULL, a
/// bad `tcp://` address, unknown flags or option values, non-zero reserved
/// fields); `SHMRING_E_INVALID_CAPACITY`; `SHMRING_E_NOT_FOUND` (no such socket or
/// directory, or nobody listens); `SHMRING_E_PERMISSION_DENIED` (the directory or
/// socket mode refuses us, or the listener refused our uid: the message says
/// which); `SHMRING_E_UNTRUSTED` (a directory or listener of an untrusted uid);
/// `SHMRING_E_HANDSHAKE` (not a shmring listener, descriptors that fail the
/// checks, policies that leave no transport); `SHMRING_E_UNSUPPORTED` (shared
/// memory required but forbidden); `SHMRING_E_TIMED_OUT`; `SHMRING_E_IO`.
///
/// # Safety
/// - `address` is NULL or a NUL-terminated string.
/// - `options` is NULL or points to a readable `shmring_connect_options` whose
///   `directory` is NULL or a NUL-terminated string.
/// - `out` is NULL or points to a writable `shmring_connection *`; it receives the
///   new handle (owned by the caller: free it with `shmring_connection_close`), or
///   NULL on failure.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connect(
    address: *const c_char,
    options: *const shmring_connect_options,
    timeout_ms: u64,
    out: *mut *mut shmring_connection,
) -> c_int {
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's contract on `address` and `options`.
        let (address, mut options) = unsafe { (shm_name(address)?, connect_options(options)?) };
        if timeout_ms != u64::MAX {
            options = options.timeout(Duration::from_millis(timeout_ms));
        }
        store(out, options.connect(&address)?);
        Ok(())
    })
}

/// Frees a connection: the peer's calls return `SHMRING_E_DISCONNECTED` once they
/// have received everything this side sent. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// `connection` is NULL or a live connection handle, not used by any thread
/// during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_connection_close(connection: *mut shmring_connection) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close(connection) }
}

/// Stores what the connection's messages travel on in `*out`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `connection` is NULL or a live connection handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_transport(
    connection: *const shmring_connection,
    out: *mut shmring_transport,
) -> c_int {
    let body = |h: &shmring_connection| {
        let out = out_ptr(out, "out")?;
        let transport = match h.transport {
            Transport::SharedMemory => shmring_transport::TRANSPORT_SHARED_MEMORY,
            Transport::UnixSocket => shmring_transport::TRANSPORT_UNIX_SOCKET,
            Transport::Tcp => shmring_transport::TRANSPORT_TCP,
        };
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(transport) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(connection, body) }
}

/// Stores the largest message, in either direction, in `*out` (the same on every
/// transport: half the ring capacity less 8 bytes). A receive buffer this long
/// never gets `SHMRING_E_BUFFER_TOO_SMALL`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `connection` is NULL or a live connection handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_max_message_len(
    connection: *const shmring_connection,
    out: *mut usize,
) -> c_int {
    let body = |h: &shmring_connection| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(h.max_message_len) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call(connection, body) }
}

/// The common body of the sends.
///
/// # Safety
/// As the exported functions.
unsafe fn send_with<E>(
    connection: *mut shmring_connection,
    data: *const c_void,
    len: usize,
    send: impl FnOnce(&mut Connection, &[u8]) -> Result<(), E>,
) -> c_int
where
    Failure: From<E>,
{
    let body = |h: &shmring_connection| {
        // SAFETY: the caller's contract on `data` and `len`.
        let message = unsafe { message_bytes(data, len, h.max_message_len) }?;
        Ok(h.with_connection(|c| send(c, message))??)
    };
    // SAFETY: delegated to the caller.
    unsafe { call(connection, body) }
}

/// Sends `len` bytes at `data` as one message if that can be done now without
/// blocking.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_FULL`; `SHMRING_E_DISCONNECTED` (the peer has gone);
/// `SHMRING_E_MESSAGE_TOO_LARGE`; `SHMRING_E_IO`; `SHMRING_E_INVALID_ARGUMENT`. Over
/// a socket, a message the kernel took only part of is accepted (`SHMRING_OK`)
/// and its rest written by the next call.
///
/// # Safety
/// - `connection` is NULL or a live connection handle.
/// - `data` is NULL only if `len` is 0, else points to `len` readable bytes.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_try_send(
    connection: *mut shmring_connection,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(connection, data, len, |c, m| c.try_send(m)) }
}

/// As `shmring_connection_try_send`, waiting for room as long as it takes instead
/// of returning `SHMRING_E_FULL`.
///
/// # Safety
/// As `shmring_connection_try_send`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_send(
    connection: *mut shmring_connection,
    data: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { send_with(connection, data, len, |c, m| c.send(m)) }
}

/// As `shmring_connection_send`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT` (`UINT64_MAX`: without limit).
///
/// # Safety
/// As `shmring_connection_try_send`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_send_timeout(
    connection: *mut shmring_connection,
    data: *const c_void,
    len: usize,
    timeout_ms: u64,
) -> c_int {
    let deadline = deadline(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe { send_with(connection, data, len, |c, m| c.send_deadline(m, deadline)) }
}

/// The common body of the receives.
///
/// # Safety
/// As the exported functions.
unsafe fn recv_with<E>(
    connection: *mut shmring_connection,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    recv: impl FnOnce(&mut Connection, &mut [u8]) -> Result<usize, E>,
) -> c_int
where
    shmring::Error: From<E>,
{
    let body = |h: &shmring_connection| {
        // SAFETY: the caller's contract on `buf`, `buf_len` and `out_len`.
        unsafe {
            crate::receive_into(buf, buf_len, out_len, |b| {
                h.with_connection(|c| recv(c, b).map_err(shmring::Error::from))
            })
        }
    };
    // SAFETY: delegated to the caller.
    unsafe { call(connection, body) }
}

/// Copies the next message into `buf`, if there is one now; never blocks.
/// `*out_len` receives its length.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_EMPTY`; `SHMRING_E_DISCONNECTED` (the peer has gone and
/// everything it sent was received); `SHMRING_E_BUFFER_TOO_SMALL` (`*out_len` is
/// the length needed; nothing is consumed: the message stays for the next call);
/// `SHMRING_E_CORRUPTED` (a hostile peer: a bad ring or an over-long frame);
/// `SHMRING_E_IO`; `SHMRING_E_INVALID_ARGUMENT`. `*out_len` is 0 after other
/// failures.
///
/// # Safety
/// - `connection` is NULL or a live connection handle.
/// - `buf` is NULL only if `buf_len` is 0, else points to `buf_len` writable bytes.
/// - `out_len` is NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_try_recv(
    connection: *mut shmring_connection,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { recv_with(connection, buf, buf_len, out_len, |c, b| c.try_recv(b)) }
}

/// As `shmring_connection_try_recv`, waiting for a message as long as it takes
/// instead of returning `SHMRING_E_EMPTY`.
///
/// # Safety
/// As `shmring_connection_try_recv`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_recv(
    connection: *mut shmring_connection,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { recv_with(connection, buf, buf_len, out_len, |c, b| c.recv(b)) }
}

/// As `shmring_connection_recv`, giving up after `timeout_ms` milliseconds with
/// `SHMRING_E_TIMED_OUT` (`UINT64_MAX`: without limit).
///
/// # Safety
/// As `shmring_connection_try_recv`.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_recv_timeout(
    connection: *mut shmring_connection,
    buf: *mut c_void,
    buf_len: usize,
    out_len: *mut usize,
    timeout_ms: u64,
) -> c_int {
    let deadline = deadline(timeout_ms);
    // SAFETY: the caller's contract.
    unsafe {
        recv_with(connection, buf, buf_len, out_len, |c, b| {
            c.recv_deadline(b, deadline)
        })
    }
}

/// The receiving half's readiness descriptor, for `epoll`, `poll` or `select`.
/// Over shared memory (`SHMRING_TRANSPORT_SHARED_MEMORY`) it is a doorbell, as
/// `shmring_receiver_readiness_fd`: readable (`EPOLLIN` or `EPOLLHUP`) after
/// `shmring_connection_arm_for_message` returned `SHMRING_ARMED`, when a message
/// arrives or the peer goes. Over a socket it is the socket itself: readable when
/// bytes (or the end) arrive; it is then the same descriptor as
/// `shmring_connection_send_readiness_fd` (register it once, with `EPOLLIN` and
/// `EPOLLOUT` as needed: `epoll_ctl` refuses the same descriptor twice).
///
/// The descriptor belongs to the connection: the same for its life, closed by
/// `shmring_connection_close` (remove it from your `epoll` set first). Never read
/// or write it, and never close it.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_INVALID_ARGUMENT` for a NULL `connection`.
///
/// # Safety
/// `connection` is NULL or a live connection handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_readiness_fd(
    connection: *const shmring_connection,
) -> c_int {
    value_or_code(|fd| {
        let body = |h: &shmring_connection| {
            *fd = h.readiness_fd;
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(connection, body) }
    })
}

/// Arms the receiving half's descriptor (`shmring_connection_readiness_fd`) for
/// the next message. Never blocks. The loop: when the descriptor is readable,
/// receive with `shmring_connection_try_recv` until `SHMRING_E_EMPTY`, then arm:
/// on `SHMRING_READY` receive again, on `SHMRING_ARMED` go back to the event
/// loop.
///
/// # Returns
/// `SHMRING_READY` (1): a message is there now, or the peer has gone (the next
/// receive says which; over a socket: a whole message or the end is buffered);
/// `SHMRING_ARMED` (2); or a negative code: `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `connection` is NULL or a live connection handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_arm_for_message(
    connection: *mut shmring_connection,
) -> c_int {
    value_or_code(|readiness| {
        let body = |h: &shmring_connection| {
            *readiness = readiness_code(h.with_connection(Connection::arm_for_message)??);
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(connection, body) }
    })
}

/// The sending half's readiness descriptor. Over shared memory it is a doorbell,
/// as `shmring_sender_readiness_fd`: readable (`EPOLLIN` or `EPOLLHUP`) after
/// `shmring_connection_arm_for_space` returned `SHMRING_ARMED`, when the peer
/// frees room or goes. Over a socket it is the socket itself: poll it for
/// *writability* (`EPOLLOUT`) after a send returned `SHMRING_E_FULL`; it is then
/// the same descriptor as `shmring_connection_readiness_fd`.
///
/// Owned by the connection, as `shmring_connection_readiness_fd`.
///
/// # Returns
/// The descriptor (`>= 0`); `SHMRING_E_INVALID_ARGUMENT` for a NULL `connection`.
///
/// # Safety
/// `connection` is NULL or a live connection handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_send_readiness_fd(
    connection: *const shmring_connection,
) -> c_int {
    value_or_code(|fd| {
        let body = |h: &shmring_connection| {
            *fd = h.send_readiness_fd;
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(connection, body) }
    })
}

/// Arms the sending half's descriptor (`shmring_connection_send_readiness_fd`)
/// for room for a message of `len` bytes. Never blocks. Over a socket it always
/// returns `SHMRING_READY`: try the send, and if it says `SHMRING_E_FULL`, poll
/// the socket for writability.
///
/// # Returns
/// `SHMRING_READY` (1): the message fits now, or the peer has gone (the next send
/// says which); `SHMRING_ARMED` (2); or a negative code:
/// `SHMRING_E_MESSAGE_TOO_LARGE`, `SHMRING_E_CORRUPTED`, `SHMRING_E_IO`,
/// `SHMRING_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `connection` is NULL or a live connection handle.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_arm_for_space(
    connection: *mut shmring_connection,
    len: usize,
) -> c_int {
    value_or_code(|readiness| {
        let body = |h: &shmring_connection| {
            *readiness = readiness_code(h.with_connection(|c| c.arm_for_space(len))??);
            Ok(())
        };
        // SAFETY: the caller's contract.
        unsafe { call(connection, body) }
    })
}

/// Stores in `*out` how the receiving half's descriptor is woken:
/// `SHMRING_WAKEUPS_DOORBELL` (by the peer; over a socket, by the kernel) or
/// `SHMRING_WAKEUPS_POLLED` (every 25 ms while armed, where no doorbell could be
/// shared). If `out_reason` is not NULL, `*out_reason` receives why it is polled
/// (`""` for a doorbell): a NUL-terminated string owned by the connection, valid
/// until `shmring_connection_close`. Fixed for the connection's life.
///
/// # Returns
/// `SHMRING_OK`; `SHMRING_E_INVALID_ARGUMENT` for a NULL `connection` or `out`.
///
/// # Safety
/// `connection` is NULL or a live connection handle; `out` and `out_reason` are
/// NULL or writable.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_wakeups(
    connection: *const shmring_connection,
    out: *mut shmring_wakeups,
    out_reason: *mut *const c_char,
) -> c_int {
    // SAFETY: the caller's contract on `out` and `out_reason`.
    let body = |h: &shmring_connection| unsafe { h.wakeups.write(out, out_reason) };
    // SAFETY: the caller's contract.
    unsafe { call(connection, body) }
}
