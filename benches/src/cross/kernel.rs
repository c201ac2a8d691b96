//! The kernel's transports: Unix stream and `SOCK_SEQPACKET` socket pairs, TCP
//! over 127.0.0.1, anonymous pipes, FIFOs and POSIX message queues.
//!
//! A stream (socket, TCP, pipe, FIFO) may move fewer bytes than asked: writes and
//! reads loop until the whole message is through. A message transport
//! (`SOCK_SEQPACKET`, mq) moves one whole message a call; its length is checked.

use std::ffi::{CString, OsStr};
use std::hint::spin_loop;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    Check, ChildGuard, Cleanup, Duplex, FD_A_VAR, FD_B_VAR, Method, NAME_VAR, PATIENCE, Result,
    Sink, Source, Stamp, env_string, inherit, inherited, unique_tag,
};

/// Why POSIX message queues cannot carry `size`-byte messages here, if they
/// cannot: the kernel caps a queue's message size at
/// `/proc/sys/fs/mqueue/msgsize_max` (8192 by default) for unprivileged users.
pub(super) fn mq_limit_reason(size: usize) -> Option<String> {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (size > max).then(|| {
        format!(
            "skipped: a POSIX message queue takes messages of at most \
             /proc/sys/fs/mqueue/msgsize_max = {max} bytes here, fewer than {size}; \
             raising it is a system-wide setting this program does not change"
        )
    })
}

/// One direction's descriptor.
enum Wire {
    /// A byte stream: a socket, a pipe or a FIFO.
    Stream(OwnedFd),
    /// A `SOCK_SEQPACKET` socket: whole messages.
    Packet(OwnedFd),
    /// A POSIX message queue: whole messages.
    Mq(Mq),
}

/// An open message-queue descriptor, closed on drop.
struct Mq(libc::mqd_t);

impl Drop for Mq {
    fn drop(&mut self) {
        // SAFETY: a descriptor from mq_open, closed only here.
        unsafe { libc::mq_close(self.0) };
    }
}

/// The `CLOCK_REALTIME` time [`PATIENCE`] from now: the deadline of a message-queue
/// call (they take absolute real times).
fn mq_deadline() -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live timespec the call fills.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    now.tv_sec += PATIENCE.as_secs() as libc::time_t;
    now
}

fn os_error(what: &str) -> super::Error {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::ETIMEDOUT) => {
            format!("{what}: no progress in {PATIENCE:?} ({e})").into()
        }
        _ => format!("{what}: {e}").into(),
    }
}

fn interrupted() -> bool {
    io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
}

impl Wire {
    /// Sends `msg` whole.
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self {
            Self::Stream(fd) => {
                let mut sent = 0;
                while sent < msg.len() {
                    let rest = &msg[sent..];
                    // SAFETY: `rest` is a live buffer of the length passed.
                    let n =
                        unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
                    if n < 0 {
                        if interrupted() {
                            continue;
                        }
                        return Err(os_error("write"));
                    }
                    sent += n as usize;
                }
                Ok(())
            }
            Self::Packet(fd) => loop {
                // SAFETY: `msg` is a live buffer of the length passed.
                let n = unsafe {
                    libc::send(
                        fd.as_raw_fd(),
                        msg.as_ptr().cast(),
                        msg.len(),
                        libc::MSG_NOSIGNAL,
                    )
                };
                if n < 0 {
                    if interrupted() {
                        continue;
                    }
                    return Err(os_error("send"));
                }
                if n as usize != msg.len() {
                    return Err(format!("sent {n} of {} bytes of a packet", msg.len()).into());
                }
                return Ok(());
            },
            Self::Mq(q) => loop {
                let deadline = mq_deadline();
                // SAFETY: `msg` is a live buffer of the length passed; `deadline`
                // lives across the call.
                let rc = unsafe {
                    libc::mq_timedsend(q.0, msg.as_ptr().cast(), msg.len(), 0, &deadline)
                };
                if rc < 0 {
                    if interrupted() {
                        continue;
                    }
                    return Err(os_error("mq_timedsend"));
                }
                return Ok(());
            },
        }
    }

    /// One receive: for a stream, up to `buf.len()` bytes (at least one: the end
    /// of the stream is an error); for a message transport, one whole message,
    /// whose length is returned (`buf` must hold the largest).
    fn recv_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let n = match self {
                // SAFETY: `buf` is a live, writable buffer of the length passed.
                Self::Stream(fd) => unsafe {
                    libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                },
                // SAFETY: as above. MSG_TRUNC: the packet's real length is
                // returned even if it was longer than `buf`, so it is caught.
                Self::Packet(fd) => unsafe {
                    libc::recv(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_TRUNC,
                    )
                },
                Self::Mq(q) => {
                    let deadline = mq_deadline();
                    // SAFETY: as above; `deadline` lives across the call.
                    unsafe {
                        libc::mq_timedreceive(
                            q.0,
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            std::ptr::null_mut(),
                            &deadline,
                        )
                    }
                }
            };
            if n < 0 {
                if interrupted() {
                    continue;
                }
                return Err(os_error("receive"));
            }
            if n == 0 && !matches!(self, Self::Mq(_)) {
                return Err("end of stream: the peer closed its end".into());
            }
            return Ok(n as usize);
        }
    }

    /// Receives one message of exactly `buf.len()` bytes.
    fn recv_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        if let Self::Stream(_) = self {
            let mut got = 0;
            while got < buf.len() {
                got += self.recv_some(&mut buf[got..])?;
            }
            return Ok(());
        }
        let n = self.recv_some(buf)?;
        if n != buf.len() {
            return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
        }
        Ok(())
    }
}

/// One side's two directions.
pub(super) struct Conn {
    tx: Wire,
    rx: Wire,
}

impl Duplex for Conn {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.send(msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        self.rx.recv_exact(buf)
    }
}

/// The child's side of a throughput run: one send (one system call, or more for a
/// partial write) per message.
pub(super) struct KernelSource(pub(super) Conn);

impl Source for KernelSource {
    #[inline]
    fn send_from(&mut self, stamp: &mut Stamp, next: u64, _end: u64) -> Result<u64> {
        self.0.tx.send(stamp.stamp(next))?;
        Ok(1)
    }
}

/// Messages up to this size are read from a stream in bulk, as many as a read
/// returns, and split; larger ones are read one at a time, each straight into the
/// message buffer.
const BULK_READ_BELOW: usize = 4096;
/// The bulk read's buffer.
pub(super) const BULK_READ: usize = 64 * 1024;

/// The parent's side of a throughput run.
pub(super) struct KernelSink {
    conn: Conn,
    size: usize,
    buf: Vec<u8>,
    /// Bytes in `buf` not yet checked (a partial message, after a bulk read).
    filled: usize,
}

/// The parent's side of a throughput run over `conn`.
pub(super) fn sink(conn: Conn, size: usize) -> KernelSink {
    KernelSink {
        conn,
        size,
        buf: vec![0; size.max(BULK_READ)],
        filled: 0,
    }
}

impl Sink for KernelSink {
    #[inline]
    fn recv_some(&mut self, check: &mut Check) -> Result<u64> {
        let size = self.size;
        match self.conn.rx {
            Wire::Stream(_) if size < BULK_READ_BELOW => {
                let n = self.conn.rx.recv_some(&mut self.buf[self.filled..])?;
                check_read(&mut self.buf, &mut self.filled, n, check)
            }
            Wire::Stream(_) => {
                self.conn.rx.recv_exact(&mut self.buf[..size])?;
                check.check(&self.buf[..size])?;
                Ok(1)
            }
            Wire::Packet(_) | Wire::Mq(_) => {
                let n = self.conn.rx.recv_some(&mut self.buf)?;
                check.check(&self.buf[..n])?;
                Ok(1)
            }
        }
    }
}

/// After a bulk read of `n` more bytes into `buf` past the `filled` not yet
/// checked: checks every whole message there, keeps the partial one's bytes at
/// the start of `buf` (`filled` then counts them) and returns how many whole
/// messages came.
pub(super) fn check_read(
    buf: &mut [u8],
    filled: &mut usize,
    n: usize,
    check: &mut Check,
) -> Result<u64> {
    let size = check.size;
    *filled += n;
    let mut at = 0;
    while *filled - at >= size {
        check.check(&buf[at..at + size])?;
        at += size;
    }
    buf.copy_within(at..*filled, 0);
    *filled -= at;
    Ok((at / size) as u64)
}

// ---------------------------------------------------------------------------
// Set-up

/// Both socket timeouts at [`PATIENCE`]: a blocked call fails instead of hanging.
fn set_timeouts(fd: &OwnedFd) -> Result<()> {
    let tv = libc::timeval {
        tv_sec: PATIENCE.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` is a live timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc == -1 {
            return Err(os_error("setsockopt"));
        }
    }
    Ok(())
}

/// A socket's two directions: the descriptor and a duplicate of it.
fn socket_conn(fd: OwnedFd, packet: bool) -> Result<Conn> {
    set_timeouts(&fd)?;
    let dup = fd.try_clone()?;
    Ok(if packet {
        Conn {
            tx: Wire::Packet(dup),
            rx: Wire::Packet(fd),
        }
    } else {
        Conn {
            tx: Wire::Stream(dup),
            rx: Wire::Stream(fd),
        }
    })
}

/// A pipe, both ends close-on-exec: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cstring(path: &Path) -> Result<CString> {
    Ok(CString::new(path.as_os_str().as_bytes())?)
}

/// Opens `path` with `flags` (close-on-exec added).
fn open(path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path; the call creates a descriptor we own.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clears `O_NONBLOCK` on `fd`.
fn set_blocking(fd: &OwnedFd) -> Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own change only its flags.
    let ok = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        flags != -1 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) != -1
    };
    if !ok {
        return Err(os_error("fcntl"));
    }
    Ok(())
}

/// A fresh temporary folder (`mkdtemp`, mode 0700) holding two FIFOs, `ping`
/// (parent to child) and `pong`, mode 0600. Dropping it removes them all.
pub(super) struct FifoDir {
    dir: PathBuf,
}

impl FifoDir {
    fn create() -> Result<Self> {
        let template = std::env::temp_dir().join("shmring-bench-XXXXXX");
        let mut bytes = cstring(&template)?.into_bytes_with_nul();
        // SAFETY: a writable, NUL-terminated template ending in XXXXXX, which
        // mkdtemp replaces in place.
        if unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) }.is_null() {
            return Err(os_error("mkdtemp"));
        }
        bytes.pop();
        let dir = Self {
            dir: PathBuf::from(OsStr::from_bytes(&bytes)),
        };
        for name in ["ping", "pong"] {
            let path = cstring(&dir.path(name))?;
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } == -1 {
                return Err(os_error("mkfifo"));
            }
            // The umask may have taken bits away; none are to be added.
            // SAFETY: as above.
            if unsafe { libc::chmod(path.as_ptr(), 0o600) } == -1 {
                return Err(os_error("chmod"));
            }
        }
        Ok(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for FifoDir {
    fn drop(&mut self) {
        for name in ["ping", "pong"] {
            let _ = std::fs::remove_file(self.path(name));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Two message-queue names, `<base>.ping` and `<base>.pong`; dropping it unlinks
/// them (the queues live on while descriptors are open).
pub(super) struct MqNames {
    ping: CString,
    pong: CString,
}

impl MqNames {
    fn new(base: &str) -> Result<Self> {
        Ok(Self {
            ping: CString::new(format!("{base}.ping"))?,
            pong: CString::new(format!("{base}.pong"))?,
        })
    }
}

impl Drop for MqNames {
    fn drop(&mut self) {
        for name in [&self.ping, &self.pong] {
            // SAFETY: a NUL-terminated name; a name already gone is ENOENT.
            unsafe { libc::mq_unlink(name.as_ptr()) };
        }
    }
}

/// Opens the queue `name`; with `create`, creates it (exclusively, mode 0600) for
/// messages of `size` bytes.
fn mq_open(name: &CString, flags: i32, create: Option<usize>) -> Result<Mq> {
    let q = match create {
        Some(size) => {
            let msg_max: libc::c_long = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(10);
            // SAFETY: mq_attr is plain integers; all-zero is valid.
            let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
            attr.mq_maxmsg = msg_max.clamp(1, 10);
            attr.mq_msgsize = size as libc::c_long;
            // SAFETY: a NUL-terminated name; the variadic mode and attribute
            // pointer are what O_CREAT asks for; `attr` lives across the call.
            unsafe {
                libc::mq_open(
                    name.as_ptr(),
                    flags | libc::O_CREAT | libc::O_EXCL,
                    0o600 as libc::mode_t,
                    &mut attr as *mut libc::mq_attr,
                )
            }
        }
        // SAFETY: a NUL-terminated name; no variadic arguments without O_CREAT.
        None => unsafe { libc::mq_open(name.as_ptr(), flags) },
    };
    if q == -1 {
        return Err(os_error("mq_open"));
    }
    Ok(Mq(q))
}

/// The parent's half-made connection: what is left to do once the child runs.
pub(super) struct Prepared {
    conn: Option<Conn>,
    /// The child's ends, closed in the parent once it has spawned (so that the
    /// parent sees the end of the stream if the child dies).
    child_ends: Vec<OwnedFd>,
    fifo: Option<(FifoDir, OwnedFd)>,
    mq: Option<MqNames>,
}

/// Sets up `method`'s transport for messages of `size` bytes and readies
/// `command` to hand the child its ends.
pub(super) fn prepare(method: Method, size: usize, command: &mut Command) -> Result<Prepared> {
    let mut prepared = Prepared {
        conn: None,
        child_ends: Vec::new(),
        fifo: None,
        mq: None,
    };
    match method {
        Method::UnixStream => {
            let (ours, theirs) = UnixStream::pair()?;
            let (ours, theirs) = (OwnedFd::from(ours), OwnedFd::from(theirs));
            inherit(command, theirs.as_fd(), FD_A_VAR);
            prepared.conn = Some(socket_conn(ours, false)?);
            prepared.child_ends.push(theirs);
        }
        Method::SeqPacket => {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors socketpair writes.
            let rc = unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                    0,
                    fds.as_mut_ptr(),
                )
            };
            if rc == -1 {
                return Err(os_error("socketpair"));
            }
            // SAFETY: two fresh descriptors that nothing else owns.
            let (ours, theirs) =
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            inherit(command, theirs.as_fd(), FD_A_VAR);
            prepared.conn = Some(socket_conn(ours, true)?);
            prepared.child_ends.push(theirs);
        }
        Method::Tcp => {
            // Both ends are made here (the connection completes in the backlog, so
            // accept returns at once) and the accepted one is inherited.
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let ours = TcpStream::connect(listener.local_addr()?)?;
            let (theirs, _) = listener.accept()?;
            ours.set_nodelay(true)?;
            theirs.set_nodelay(true)?;
            let (ours, theirs) = (OwnedFd::from(ours), OwnedFd::from(theirs));
            inherit(command, theirs.as_fd(), FD_A_VAR);
            prepared.conn = Some(socket_conn(ours, false)?);
            prepared.child_ends.push(theirs);
        }
        Method::Pipe => {
            let (ping_r, ping_w) = pipe()?;
            let (pong_r, pong_w) = pipe()?;
            inherit(command, ping_r.as_fd(), FD_A_VAR);
            inherit(command, pong_w.as_fd(), FD_B_VAR);
            prepared.conn = Some(Conn {
                tx: Wire::Stream(ping_w),
                rx: Wire::Stream(pong_r),
            });
            prepared.child_ends.extend([ping_r, pong_w]);
        }
        Method::Fifo => {
            let dir = FifoDir::create()?;
            // Our read end first, without waiting for a writer.
            let pong = open(&dir.path("pong"), libc::O_RDONLY | libc::O_NONBLOCK)?;
            command.env(NAME_VAR, &dir.dir);
            prepared.fifo = Some((dir, pong));
        }
        Method::MessageQueue => {
            let base = format!("/shmring-bench.{}", unique_tag());
            let names = MqNames::new(&base)?;
            let tx = mq_open(&names.ping, libc::O_WRONLY, Some(size))?;
            let rx = mq_open(&names.pong, libc::O_RDONLY, Some(size))?;
            command.env(NAME_VAR, base);
            prepared.conn = Some(Conn {
                tx: Wire::Mq(tx),
                rx: Wire::Mq(rx),
            });
            prepared.mq = Some(names);
        }
        _ => return Err(format!("{} is not a kernel transport", method.name()).into()),
    }
    Ok(prepared)
}

impl Prepared {
    /// Finishes the connection once the child is spawned: closes the child's ends
    /// here, opens the FIFO the child reads. Returns the parent's ends and what to
    /// remove once the child is ready.
    pub(super) fn connect(self, child: &mut ChildGuard) -> Result<(Conn, Cleanup)> {
        drop(self.child_ends);
        let mut cleanup = Cleanup {
            fifo: None,
            mq: self.mq,
        };
        let conn = match (self.conn, self.fifo) {
            (Some(conn), _) => conn,
            (None, Some((dir, pong))) => {
                // Opening the write end of a FIFO fails (ENXIO) while nobody has
                // the read end open: wait for the child to open it.
                let path = dir.path("ping");
                cleanup.fifo = Some(dir);
                let since = Instant::now();
                let ping = loop {
                    match open(&path, libc::O_WRONLY | libc::O_NONBLOCK) {
                        Ok(fd) => break fd,
                        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
                        Err(e) => return Err(format!("open {}: {e}", path.display()).into()),
                    }
                    if let Some(status) = child.try_wait()? {
                        return Err(
                            format!("the child exited before opening its FIFO: {status}").into(),
                        );
                    }
                    if since.elapsed() > PATIENCE {
                        return Err(
                            format!("the child did not open its FIFO in {PATIENCE:?}").into()
                        );
                    }
                    spin_loop();
                    std::thread::sleep(Duration::from_micros(50));
                };
                set_blocking(&ping)?;
                set_blocking(&pong)?;
                Conn {
                    tx: Wire::Stream(ping),
                    rx: Wire::Stream(pong),
                }
            }
            (None, None) => return Err("nothing prepared".into()),
        };
        Ok((conn, cleanup))
    }
}

/// The child's ends of `method`'s transport.
pub(super) fn child_conn(method: Method) -> Result<Conn> {
    match method {
        Method::UnixStream | Method::Tcp => socket_conn(inherited(FD_A_VAR)?, false),
        Method::SeqPacket => socket_conn(inherited(FD_A_VAR)?, true),
        Method::Pipe => Ok(Conn {
            rx: Wire::Stream(inherited(FD_A_VAR)?),
            tx: Wire::Stream(inherited(FD_B_VAR)?),
        }),
        Method::Fifo => {
            let dir = PathBuf::from(env_string(NAME_VAR)?);
            // Blocks until the parent opens the write end (it waits for this).
            let rx = open(&dir.join("ping"), libc::O_RDONLY)?;
            // The parent has the read end open: no wait.
            let tx = open(&dir.join("pong"), libc::O_WRONLY)?;
            Ok(Conn {
                tx: Wire::Stream(tx),
                rx: Wire::Stream(rx),
            })
        }
        Method::MessageQueue => {
            // Names only: the parent unlinks them once we are ready.
            let base = env_string(NAME_VAR)?;
            let rx = mq_open(&CString::new(format!("{base}.ping"))?, libc::O_RDONLY, None)?;
            let tx = mq_open(&CString::new(format!("{base}.pong"))?, libc::O_WRONLY, None)?;
            Ok(Conn {
                tx: Wire::Mq(tx),
                rx: Wire::Mq(rx),
            })
        }
        _ => Err(format!("{} is not a kernel transport", method.name()).into()),
    }
}
