//! Connections (`shmring::connection`): a service binds a name, clients connect
//! to it, and each side gets a duplex connection that runs over a pair of
//! shared-memory rings, or over the socket (or TCP) where shared memory cannot be
//! had. The handshake, the checks and the fallback are the Rust library's (module
//! `shmring::connection`; docs/design/connection-handshake.md).
//!
//! The listener handle is `shmring_conn_listener` (`shmring_listener` is the
//! address-based transports' listener, `transport.rs`).

use std::ffi::{c_char, c_int};
use std::time::Duration;

use shmring::Readiness;
use shmring::connection::{ConnectOptions, Connection, Listener, Transport, TransportPolicy};

use crate::channel::shmring_wait_strategy;
use crate::handle::{
    Kind, c_name, c_path, call, call_ref, close, construct, deadline, new_handle, out_ptr,
    write_out,
};
use crate::message::{
    Endpoint, ReadinessInfo, Receiving, Sending, shmring_msg_receiver, shmring_msg_sender,
};
use crate::options::wait_strategy;
use crate::status::{Failure, guard, shmring_status};

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
        builder = builder.directory(unsafe { c_path(o.directory) }?);
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
        options = options.directory(unsafe { c_path(o.directory) }?);
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
#[derive(Debug)]
pub struct shmring_conn_listener {
    _opaque: [u8; 0],
}

/// A duplex connection to one peer, made by `shmring_connect` or
/// `shmring_conn_listener_accept`: messages both ways, over shared memory or a
/// socket (`shmring_connection_transport`). Free it with
/// `shmring_connection_close`.
///
/// Used by one thread at a time; it may move between threads.
///
/// Opaque: only pointers to it exist in C.
#[derive(Debug)]
pub struct shmring_connection {
    _opaque: [u8; 0],
}

/// The value of a `shmring_conn_listener` handle.
#[derive(Debug)]
pub(crate) struct ConnListener(Listener);

/// The value of a `shmring_connection` handle.
#[derive(Debug)]
pub(crate) struct Conn {
    connection: Connection,
    /// The receiving half's descriptor and wake-ups.
    readiness: ReadinessInfo,
    /// The sending half's descriptor; the same wake-ups.
    send_readiness: ReadinessInfo,
}

impl Conn {
    fn new(connection: Connection) -> Self {
        Self {
            readiness: ReadinessInfo::new(connection.readiness_fd(), connection.wakeups()),
            send_readiness: ReadinessInfo::new(
                connection.send_readiness_fd(),
                connection.wakeups(),
            ),
            connection,
        }
    }
}

impl Kind for ConnListener {
    type C = shmring_conn_listener;
    const WHAT: &'static str = "connection listener";
}

impl Kind for Conn {
    type C = shmring_connection;
    const WHAT: &'static str = "connection";
    const ENDPOINT: bool = true;
}

impl Endpoint for ConnListener {}

impl Endpoint for Conn {
    fn sending(&mut self) -> Option<&mut dyn Sending> {
        Some(self)
    }
    fn receiving(&mut self) -> Option<&mut dyn Receiving> {
        Some(self)
    }
}

impl Sending for Conn {
    fn sender(&mut self) -> &mut dyn shmring::MessageSender {
        &mut self.connection
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.send_readiness)
    }
    fn arm_for_space(&mut self, len: usize) -> Result<Readiness, Failure> {
        Ok(self.connection.arm_for_space(len)?)
    }
}

impl Receiving for Conn {
    fn receiver(&mut self) -> &mut dyn shmring::MessageReceiver {
        &mut self.connection
    }
    fn readiness(&self) -> Result<&ReadinessInfo, Failure> {
        Ok(&self.readiness)
    }
    fn arm_for_message(&mut self) -> Result<Readiness, Failure> {
        Ok(self.connection.arm_for_message()?)
    }
}

// A handle may move to another thread between calls.
const _: () = {
    const fn send<T: Send>() {}
    send::<shmring_conn_listener>();
    send::<shmring_connection>();
};

/// Fills `*options` with the defaults (all fields zero): the default directory,
/// modes `0700`/`0600`, 256 KiB rings (clients may ask up to 16 MiB), transport
/// policy any, spin-then-park, a 5 s handshake timeout.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` if `options` is NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_options_init(
    options: *mut shmring_conn_listener_options,
) -> c_int {
    // SAFETY: the caller's contract.
    guard(|| unsafe { write_out(options, "options", shmring_conn_listener_options::default()) })
}

/// Fills `*options` with the defaults (all fields zero): the default directory,
/// the listener's capacity, transport policy any, spin-then-park, trust servers
/// of this uid and root.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` if `options` is NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connect_options_init(
    options: *mut shmring_connect_options,
) -> c_int {
    // SAFETY: the caller's contract.
    guard(|| unsafe { write_out(options, "options", shmring_connect_options::default()) })
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_bind(
    address: *const c_char,
    options: *const shmring_conn_listener_options,
    out: *mut *mut shmring_conn_listener,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `address` and `options`.
        Ok(ConnListener(unsafe {
            bind_with(&c_name(address)?, options)
        }?))
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_port(
    listener: *const shmring_conn_listener,
    out_port: *mut u16,
) -> c_int {
    let body = |h: &ConnListener| {
        let out_port = out_ptr(out_port, "out_port")?;
        let addr =
            h.0.local_addr()
                .ok_or_else(|| Failure::invalid("a named listener has no TCP port"))?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out_port.write(addr.port()) };
        Ok(())
    };
    // SAFETY: the caller's contract.
    unsafe { call_ref(listener, body) }
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
    let body = |h: &mut ConnListener| {
        let out = out_ptr(out, "out")?;
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        let handle = new_handle(Conn::new(accept(&h.0)?));
        // SAFETY: as above.
        unsafe { out.write(handle) };
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
/// The pointer rules of the header (`shmring.h`, top).
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
/// The pointer rules of the header (`shmring.h`, top).
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_conn_listener_try_accept(
    listener: *mut shmring_conn_listener,
    out: *mut *mut shmring_connection,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { accept_with(listener, out, |l| l.try_accept()) }
}

/// Frees a listener and removes its socket file; connections it accepted live
/// on. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_conn_listener_close(
    listener: *mut shmring_conn_listener,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<ConnListener>(listener) }
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
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connect(
    address: *const c_char,
    options: *const shmring_connect_options,
    timeout_ms: u64,
    out: *mut *mut shmring_connection,
) -> c_int {
    construct(out, || {
        // SAFETY: the caller's contract on `address` and `options`.
        let (address, mut options) = unsafe { (c_name(address)?, connect_options(options)?) };
        if timeout_ms != u64::MAX {
            options = options.timeout(Duration::from_millis(timeout_ms));
        }
        Ok(Conn::new(options.connect(&address)?))
    })
}

/// Frees a connection: the peer's calls return `SHMRING_E_DISCONNECTED` once they
/// have received everything this side sent. Closing NULL does nothing.
///
/// # Returns
/// `SHMRING_OK`.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_connection_close(connection: *mut shmring_connection) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { close::<Conn>(connection) }
}

/// Stores what the connection's messages travel on in `*out`.
///
/// # Returns
/// `SHMRING_OK`, or `SHMRING_E_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn shmring_connection_transport(
    connection: *const shmring_connection,
    out: *mut shmring_transport,
) -> c_int {
    let body = |h: &Conn| {
        let transport = match h.connection.transport() {
            Transport::SharedMemory => shmring_transport::TRANSPORT_SHARED_MEMORY,
            Transport::UnixSocket => shmring_transport::TRANSPORT_UNIX_SOCKET,
            Transport::Tcp => shmring_transport::TRANSPORT_TCP,
        };
        // SAFETY: the caller's contract on `out`.
        unsafe { write_out(out, "out", transport) }
    };
    // SAFETY: the caller's contract.
    unsafe { call_ref(connection, body) }
}

/// The connection as a `shmring_msg_sender`, for the message family's calls
/// (copying sends, and the sending half's readiness descriptor). The same
/// handle: never close the view, close `connection`. NULL for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_connection_as_msg_sender(
    connection: *mut shmring_connection,
) -> *mut shmring_msg_sender {
    connection.cast()
}

/// The connection as a `shmring_msg_receiver`, for the message family's calls
/// (copying receives, and the receiving half's readiness descriptor). The same
/// handle: never close the view, close `connection`. NULL for NULL.
///
/// # Safety
/// The pointer rules of the header (`shmring.h`, top).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmring_connection_as_msg_receiver(
    connection: *mut shmring_connection,
) -> *mut shmring_msg_receiver {
    connection.cast()
}
