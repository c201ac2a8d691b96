//! POSIX message queues (`mq_open`): kernel-kept messages between processes of one
//! machine, with boundaries and a fixed largest size.
//!
//! [`MqBuilder`] creates a queue (`/shmring.<name>`, mode `0600`) or opens one,
//! and takes the sending or receiving role in it. The creator removes the queue
//! (and its lock file) when it is dropped; an endpoint that opened it keeps using
//! it until it is dropped too.
//!
//! ```no_run
//! use shmring::transport::mq::MqBuilder;
//! # fn main() -> shmring::Result<()> {
//! // Process A
//! let mut rx = MqBuilder::new("jobs").create_receiver()?;
//! // Process B
//! let mut tx = MqBuilder::new("jobs").open_sender()?;
//! tx.send(b"job 1")?;
//! // Process A
//! let job = rx.recv_vec_deadline(None)?;
//! # Ok(()) }
//! ```
//!
//! **Limits.** A queue holds [`capacity`](MqBuilder::capacity) messages (default
//! 10) of at most [`max_message_len`](MqBuilder::max_message_len) bytes (default
//! 8192), within the system's limits: `/proc/sys/fs/mqueue/msg_max` and
//! `/proc/sys/fs/mqueue/msgsize_max` (10 and 8192 by default; a process with
//! `CAP_SYS_RESOURCE`, usually root, though not in every container, may go up to
//! the kernel's 65 536 messages and 16 MiB),
//! the per-user byte budget `RLIMIT_MSGQUEUE` (819 200 by default; it counts each
//! queue as capacity × (size + 48) + 48 × capacity bytes), and
//! `/proc/sys/fs/mqueue/queues_max` queues in all. A create the system refuses
//! gets [`Error::LimitExceeded`] naming the limit, its value and how to raise
//! it. A message longer than the queue's size is [`Error::MessageTooLarge`] at the
//! call.
//!
//! **Liveness.** A queue has no notion of a peer, so each endpoint holds an
//! exclusive OFD lock on a byte of a side file,
//! `/dev/shm/shmring-mq.<name>.lock` (`0600`), which the kernel drops when the
//! process dies, and writes its process id in the file when it claims its role
//! (that marks the role as having been held). A receiver that finds the queue
//! empty after the sender's lock was held and is free again gets
//! [`Error::Disconnected`]; a sender that finds the queue full after the
//! receiver's lock was held and is free again gets it too. A role is held by one
//! endpoint at a time ([`Error::RoleTaken`]); a dead holder's role can be claimed
//! again. While the queue has room, messages queue for whichever receiver comes,
//! as in the shared-memory ring.
//!
//! **Committed:** a message is committed when `mq_timedsend` returned (the send
//! call returned): the kernel holds it in the queue, which lives while any
//! process has it open, also after the sender died. Receiving copies it out and
//! removes it in one call.
//!
//! Timeouts use `mq_timedsend`/`mq_timedreceive` with `CLOCK_REALTIME` deadlines,
//! in slices of at most 25 ms ([`LIVENESS_INTERVAL`](crate::blocking::LIVENESS_INTERVAL))
//! between liveness checks; each slice's end and the deadline are measured on the
//! monotonic clock (a slice the wall clock ends early is resumed), so a change of
//! the wall clock lengthens one slice at most.

use std::cell::Cell;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::blocking::{self, Endpoint, Step, WaitStrategy, Waiter};
use crate::error::{Error, Result, Role};
use crate::message::{message_receiver, message_sender};
use crate::sys;
use crate::sys::lock;
use crate::sys::mq;
use rustix::io::Errno;

/// Default queue size (Linux's `msg_default`).
pub const DEFAULT_CAPACITY: usize = 10;
/// Default largest message (Linux's `msgsize_default`).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 8192;
/// The kernel's ceilings for a privileged creator.
const HARD_MSGMAX: u64 = 65_536;
const HARD_MSGSIZEMAX: u64 = 16 * 1024 * 1024;
/// Bytes the kernel counts per message and per priority node (64-bit kernels).
const MSG_OVERHEAD: u64 = 48;
const MQ_PRIO_MAX: u64 = 32_768;
/// Where each role's process id is written in the lock file.
const fn pid_offset(role: Role) -> u64 {
    match role {
        Role::Sender => 0,
        Role::Receiver => 4,
    }
}
const fn lock_offset(role: Role) -> u64 {
    match role {
        Role::Sender => lock::SENDER_LOCK,
        Role::Receiver => lock::RECEIVER_LOCK,
    }
}
const fn peer_of(role: Role) -> Role {
    match role {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    }
}

/// Checks a queue name (before any system call): the rules of shared-memory
/// channel names.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    crate::segment::names::validate_name(name)
}

fn queue_name(name: &str) -> CString {
    CString::new(format!("/shmring.{name}")).expect("a validated name has no NUL")
}

fn lock_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shmring-mq.{name}.lock"))
}

fn describe(name: &str) -> String {
    format!("message queue {name:?}")
}

fn read_proc(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Creates or opens a POSIX message queue and takes a role in it.
#[derive(Debug, Clone)]
pub struct MqBuilder {
    name: String,
    capacity: usize,
    max_message_len: usize,
}

impl MqBuilder {
    /// A queue named `name`: one component of ASCII letters, digits, `.`, `_` and
    /// `-`, at most 200 bytes (the kernel's name is `/shmring.<name>`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            capacity: DEFAULT_CAPACITY,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }

    /// How many messages a created queue holds (`mq_maxmsg`, default 10, at least 1).
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.max(1);
        self
    }

    /// The largest message of a created queue (`mq_msgsize`, default 8192, at
    /// least 1). An opened queue has the size it was created with.
    pub fn max_message_len(mut self, bytes: usize) -> Self {
        self.max_message_len = bytes.max(1);
        self
    }

    /// Creates the queue and takes its receiving side; the queue and its lock file
    /// are removed when the receiver is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidName`]; [`Error::AlreadyExists`] (a queue left by a creator
    /// that died: see [`remove`]); [`Error::LimitExceeded`];
    /// [`Error::PermissionDenied`]; [`Error::Unsupported`] without kernel support;
    /// [`Error::Io`].
    pub fn create_receiver(&self) -> Result<MqReceiver> {
        Ok(MqReceiver::new(self.create(Role::Receiver)?))
    }

    /// Creates the queue and takes its sending side; the queue and its lock file
    /// are removed when the sender is dropped (a receiver that has it open still
    /// receives what was sent).
    ///
    /// # Errors
    /// As [`create_receiver`](Self::create_receiver).
    pub fn create_sender(&self) -> Result<MqSender> {
        Ok(MqSender {
            queue: self.create(Role::Sender)?,
        })
    }

    /// Opens the queue and takes its receiving side.
    ///
    /// # Errors
    /// [`Error::InvalidName`]; [`Error::NotFound`]; [`Error::PermissionDenied`];
    /// [`Error::Untrusted`] if it or its lock file belongs to another uid or
    /// others may use it; [`Error::RoleTaken`] while another live receiver holds
    /// it; [`Error::Io`].
    pub fn open_receiver(&self) -> Result<MqReceiver> {
        Ok(MqReceiver::new(self.open(Role::Receiver)?))
    }

    /// Opens the queue and takes its sending side.
    ///
    /// # Errors
    /// As [`open_receiver`](Self::open_receiver).
    pub fn open_sender(&self) -> Result<MqSender> {
        Ok(MqSender {
            queue: self.open(Role::Sender)?,
        })
    }

    fn create(&self, role: Role) -> Result<Queue> {
        validate_name(&self.name)?;
        let what = describe(&self.name);
        let lock_path = lock_path(&self.name);
        let lock_what = lock_path.display().to_string();
        let lock_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(|e| sys::error("open", lock_what.as_str(), e))?;
        let lock_meta = lock_file
            .metadata()
            .map_err(|e| sys::error("fstat", lock_what.as_str(), e));
        let lock_id = match lock_meta.and_then(|meta| {
            // The umask may have taken bits off 0600: set exactly 0600.
            std::fs::set_permissions(
                format!("/proc/self/fd/{}", lock_file.as_raw_fd()),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .map_err(|e| sys::error("fchmod", lock_what.as_str(), e))?;
            Ok((meta.dev(), meta.ino()))
        }) {
            Ok(id) => id,
            Err(e) => {
                let _ = std::fs::remove_file(&lock_path);
                return Err(e);
            }
        };
        let created = mq_create(&self.name, self.capacity, self.max_message_len, &what);
        let mqd = match created {
            Ok(mqd) => mqd,
            Err(e) => {
                remove_if(&lock_path, lock_id);
                return Err(e);
            }
        };
        let mut queue = Queue {
            mqd,
            name: self.name.clone(),
            what,
            lock: lock_file,
            role,
            msgsize: 0,
            created: None,
            waiter: Waiter::new(WaitStrategy::Park),
        };
        // From here on, dropping `queue` closes the descriptor; the names are
        // removed by hand until `created` is set.
        let setup = (|| {
            rustix::fs::fchmod(queue.fd(), rustix::fs::Mode::from_raw_mode(0o600))
                .map_err(|e| sys::error("fchmod", queue.what.as_str(), e.into()))?;
            queue.read_attributes()?;
            let id = queue.identity()?;
            queue.claim()?;
            Ok(id)
        })();
        match setup {
            Ok(id) => {
                queue.created = Some(Created {
                    queue: id,
                    lock_path,
                    lock: lock_id,
                });
                Ok(queue)
            }
            Err(e) => {
                let _ = mq::unlink(&queue_name(&self.name));
                remove_if(&lock_path, lock_id);
                Err(e)
            }
        }
    }

    fn open(&self, role: Role) -> Result<Queue> {
        validate_name(&self.name)?;
        let what = describe(&self.name);
        let name = queue_name(&self.name);
        let mqd = mq::open(&name, libc::O_RDWR, None).map_err(|e| open_error(&what, e))?;
        let lock_path = lock_path(&self.name);
        let lock_what = lock_path.display().to_string();
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path);
        let lock = lock.map_err(|e| sys::error("open", lock_what.as_str(), e))?;
        let mut queue = Queue {
            mqd,
            name: self.name.clone(),
            what,
            lock,
            role,
            msgsize: 0,
            created: None,
            waiter: Waiter::new(WaitStrategy::Park),
        };
        let queue_meta = sys::metadata(queue.fd()).map_err(|e| queue.io("fstat", e))?;
        check_trust(&queue_meta, &queue.what)?;
        let lock_meta = queue
            .lock
            .metadata()
            .map_err(|e| sys::error("fstat", lock_what.as_str(), e))?;
        if !lock_meta.file_type().is_file() {
            return Err(Error::WrongFileType {
                what: lock_what,
                expected: "regular file",
                found: sys::file_kind(&lock_meta),
            });
        }
        check_trust(&lock_meta, &lock_what)?;
        queue.read_attributes()?;
        queue.claim()?;
        Ok(queue)
    }
}

/// Removes the queue `name` and its lock file: what a creator that died left
/// behind. Endpoints that have the queue open keep using it.
///
/// # Errors
/// [`Error::InvalidName`]; [`Error::NotFound`] if neither exists;
/// [`Error::PermissionDenied`]; [`Error::Io`].
pub fn remove(name: &str) -> Result<()> {
    validate_name(name)?;
    let what = describe(name);
    let cname = queue_name(name);
    let queue = mq::unlink(&cname);
    let lock = std::fs::remove_file(lock_path(name));
    match (queue, lock) {
        (Err(q), Err(l))
            if q.kind() == io::ErrorKind::NotFound && l.kind() == io::ErrorKind::NotFound =>
        {
            Err(Error::NotFound { what })
        }
        (Err(q), _) if q.kind() != io::ErrorKind::NotFound => Err(sys::error("mq_unlink", what, q)),
        (_, Err(l)) if l.kind() != io::ErrorKind::NotFound => Err(sys::error(
            "unlink",
            lock_path(name).display().to_string(),
            l,
        )),
        _ => Ok(()),
    }
}

fn check_trust(meta: &std::fs::Metadata, what: &str) -> Result<()> {
    let mode = meta.mode() & 0o7777;
    if meta.uid() != sys::euid() || mode & 0o077 != 0 {
        return Err(Error::Untrusted {
            what: what.to_owned(),
            owner: meta.uid(),
            mode,
            expected_owner: sys::euid(),
            allowed_mode: 0o600,
        });
    }
    Ok(())
}

fn remove_if(path: &std::path::Path, id: (u64, u64)) {
    let ours = std::fs::symlink_metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == id);
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

fn open_error(what: &str, e: io::Error) -> Error {
    match Errno::from_io_error(&e) {
        Some(Errno::NOSYS) => Error::Unsupported {
            what: "POSIX message queues (a kernel without CONFIG_POSIX_MQUEUE)",
        },
        _ => sys::error("mq_open", what, e),
    }
}

/// `mq_open(O_CREAT | O_EXCL)` with the attributes, mapping a refusal to the limit
/// that caused it.
fn mq_create(name: &str, capacity: usize, msgsize: usize, what: &str) -> Result<OwnedFd> {
    let e = match mq::open(&queue_name(name), libc::O_RDWR, Some((capacity, msgsize))) {
        Ok(mqd) => return Ok(mqd),
        Err(e) => e,
    };
    let (capacity, msgsize) = (capacity as u64, msgsize as u64);
    let limit = |limit, value, requested, raise| Error::LimitExceeded {
        what: what.to_owned(),
        limit,
        value,
        requested,
        raise,
    };
    let privileged = has_cap_sys_resource();
    Err(match Errno::from_io_error(&e) {
        Some(Errno::INVAL) => {
            let msgsize_max = read_proc("/proc/sys/fs/mqueue/msgsize_max");
            let msg_max = read_proc("/proc/sys/fs/mqueue/msg_max");
            if privileged && msgsize > HARD_MSGSIZEMAX {
                limit(
                    "HARD_MSGSIZEMAX (the kernel's ceiling for mq_msgsize)",
                    HARD_MSGSIZEMAX,
                    msgsize,
                    "a constant of the kernel: send smaller messages, or use another transport",
                )
            } else if privileged && capacity > HARD_MSGMAX {
                limit(
                    "HARD_MSGMAX (the kernel's ceiling for mq_maxmsg)",
                    HARD_MSGMAX,
                    capacity,
                    "a constant of the kernel: ask for a smaller capacity",
                )
            } else if !privileged && msgsize > msgsize_max {
                limit(
                    "/proc/sys/fs/mqueue/msgsize_max",
                    msgsize_max,
                    msgsize,
                    "raise it with `sysctl fs.mqueue.msgsize_max=<bytes>` (as root)",
                )
            } else if !privileged && capacity > msg_max {
                limit(
                    "/proc/sys/fs/mqueue/msg_max",
                    msg_max,
                    capacity,
                    "raise it with `sysctl fs.mqueue.msg_max=<count>` (as root)",
                )
            } else {
                sys::error("mq_open", what, e)
            }
        }
        Some(Errno::MFILE) if !out_of_descriptors() => {
            let rlimit = rustix::process::getrlimit(rustix::process::Resource::Msgqueue);
            let needed = capacity.saturating_mul(msgsize.saturating_add(MSG_OVERHEAD))
                + capacity.min(MQ_PRIO_MAX) * MSG_OVERHEAD;
            limit(
                "RLIMIT_MSGQUEUE",
                rlimit.current.unwrap_or(u64::MAX),
                needed,
                "the queues of one user may take this many bytes together (each counts \
                 capacity × (size + 48) + 48 × capacity): raise the soft limit with \
                 `ulimit -q <bytes>` (or LimitMSGQUEUE= for a systemd service) up to the \
                 hard limit, remove unused queues, or ask for a smaller queue",
            )
        }
        Some(Errno::NOSPC) => {
            let queues_max = read_proc("/proc/sys/fs/mqueue/queues_max");
            limit(
                "/proc/sys/fs/mqueue/queues_max",
                queues_max,
                queues_max + 1,
                "raise it with `sysctl fs.mqueue.queues_max=<count>` (as root), or remove \
                 unused queues",
            )
        }
        _ => open_error(what, e),
    })
}

/// Whether this process has `CAP_SYS_RESOURCE` in its effective set (the
/// kernel's test for going past the `fs.mqueue` sysctls; root in a container may
/// lack it). Read from `/proc/self/status`; without it, whether we are root.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
        })
        .map_or(sys::euid() == 0, |caps| caps >> CAP_SYS_RESOURCE & 1 == 1)
}

/// Whether this process has as many descriptors open as `RLIMIT_NOFILE` allows
/// (the other cause of `EMFILE`).
fn out_of_descriptors() -> bool {
    let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current else {
        return false;
    };
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
    open + 1 >= limit
}

/// Device and inode of a file.
type FileId = (u64, u64);

/// What a queue's creator removes on drop, if the names still refer to them.
#[derive(Debug)]
struct Created {
    queue: FileId,
    lock_path: PathBuf,
    lock: FileId,
}

/// One endpoint's hold on a queue: its descriptor, its role's lock, and what the
/// creator removes on drop.
#[derive(Debug)]
struct Queue {
    /// The queue descriptor (a file descriptor on Linux); closed after the
    /// drop below, before `lock`.
    mqd: OwnedFd,
    name: String,
    what: String,
    /// The lock file, through a description of our own: the role's lock lives on it.
    lock: File,
    role: Role,
    msgsize: usize,
    /// For the creator: what to remove on drop.
    created: Option<Created>,
    /// The peer's last liveness verdict. The strategy is `Park`: a queue's waits
    /// are the kernel's (`mq_timedsend`, `mq_timedreceive`).
    waiter: Waiter,
}

impl Queue {
    fn fd(&self) -> BorrowedFd<'_> {
        self.mqd.as_fd()
    }

    fn io(&self, op: &'static str, e: io::Error) -> Error {
        sys::error(op, self.what.as_str(), e)
    }

    fn read_attributes(&mut self) -> Result<()> {
        self.msgsize = mq::msgsize(self.fd()).map_err(|e| self.io("mq_getattr", e))?;
        Ok(())
    }

    fn identity(&self) -> Result<(u64, u64)> {
        let meta = sys::metadata(self.fd()).map_err(|e| self.io("fstat", e))?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Takes the role's lock and writes our process id as its holder.
    fn claim(&mut self) -> Result<()> {
        let lock_what = || lock_path(&self.name).display().to_string();
        let taken = !lock::try_lock(self.lock.as_fd(), lock_offset(self.role), true)
            .map_err(|e| sys::error("fcntl(F_OFD_SETLK)", lock_what(), e))?;
        if taken {
            return Err(Error::RoleTaken {
                role: self.role,
                owner: self.holder(self.role).unwrap_or(0),
            });
        }
        let pid = std::process::id().max(1);
        self.lock
            .write_all_at(&pid.to_le_bytes(), pid_offset(self.role))
            .map_err(|e| sys::error("pwrite", lock_what(), e))
    }

    /// The process id last written for `role` (0: never held).
    fn holder(&self, role: Role) -> io::Result<u32> {
        holder(&self.lock, role)
    }

    /// Whether the peer has held its role and does not now. Two system calls.
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.waiter
            .peer_gone(now, || probe_peer(&self.lock, &self.name, self.role))
    }

    /// As `peer_gone`, at most every
    /// [`TRY_LIVENESS_INTERVAL`](crate::blocking::TRY_LIVENESS_INTERVAL).
    fn peer_gone_throttled(&mut self) -> Result<bool> {
        self.waiter
            .peer_gone_throttled(|| probe_peer(&self.lock, &self.name, self.role))
    }

    /// Whether the peer's role is held now (a snapshot).
    fn peer_connected(&self) -> Result<bool> {
        lock::is_locked(self.lock.as_fd(), lock_offset(peer_of(self.role))).map_err(|e| {
            sys::error(
                "fcntl(F_OFD_GETLK)",
                lock_path(&self.name).display().to_string(),
                e,
            )
        })
    }

    /// `mq_timedsend` until `until` (`None`: fail at once if full). Whether sent.
    fn send(&self, message: &[u8], until: Option<Instant>) -> Result<bool> {
        loop {
            match mq::timedsend(self.fd(), message, realtime(until)) {
                Ok(()) => return Ok(true),
                Err(Errno::INTR) => continue,
                // Early by the wall clock (it was set forward): the end is on the
                // monotonic clock, which the liveness throttle reads.
                Err(Errno::TIMEDOUT) if until.is_some_and(|u| Instant::now() < u) => continue,
                Err(Errno::TIMEDOUT) | Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::MSGSIZE) => {
                    return Err(Error::MessageTooLarge {
                        len: message.len(),
                        max: self.msgsize,
                    });
                }
                Err(e) => return Err(self.io("mq_timedsend", e.into())),
            }
        }
    }

    /// `mq_timedreceive` into `buf` (at least `msgsize` bytes) until `until`
    /// (`None`: fail at once if empty). The message's length, if one came.
    fn receive(&self, buf: &mut [u8], until: Option<Instant>) -> Result<Option<usize>> {
        debug_assert!(buf.len() >= self.msgsize);
        loop {
            match mq::timedreceive(self.fd(), buf, realtime(until)) {
                Ok(n) => return Ok(Some(n)),
                Err(Errno::INTR) => continue,
                // Early by the wall clock (it was set forward): the end is on the
                // monotonic clock, which the liveness throttle reads.
                Err(Errno::TIMEDOUT) if until.is_some_and(|u| Instant::now() < u) => continue,
                Err(Errno::TIMEDOUT) | Err(Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(self.io("mq_timedreceive", e.into())),
            }
        }
    }
}

/// The process id last written in `lock` for `role` (0: never held).
fn holder(lock: &File, role: Role) -> io::Result<u32> {
    let mut word = [0u8; 4];
    match lock.read_exact_at(&mut word, pid_offset(role)) {
        Ok(()) => Ok(u32::from_le_bytes(word)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}

/// Whether the peer of `role` in the queue `name` (its side file open as `lock`)
/// has held its role and does not now. Two system calls.
fn probe_peer(lock: &File, name: &str, role: Role) -> Result<bool> {
    let peer = peer_of(role);
    let lock_what = || lock_path(name).display().to_string();
    // Read the mark first: a peer marked before the probe and still alive
    // holds its lock during the probe.
    let held = holder(lock, peer).map_err(|e| sys::error("pread", lock_what(), e))? != 0;
    let alive = lock::is_locked(lock.as_fd(), lock_offset(peer))
        .map_err(|e| sys::error("fcntl(F_OFD_GETLK)", lock_what(), e))?;
    Ok(held && !alive)
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(created) = self.created.take() {
            // Remove the name only if it still names our queue.
            let name = queue_name(&self.name);
            if let Ok(other) = mq::open(&name, libc::O_RDONLY, None) {
                let same = sys::metadata(other.as_fd())
                    .is_ok_and(|meta| (meta.dev(), meta.ino()) == created.queue);
                drop(other);
                if same {
                    let _ = mq::unlink(&name);
                }
            }
            remove_if(&created.lock_path, created.lock);
        }
        // The queue descriptor closes with `self.mqd`, then the role's lock goes
        // with `self.lock`'s description.
    }
}

/// `until` as a `CLOCK_REALTIME` instant for the mq calls (since the epoch);
/// `None`: the epoch (in the past: the call returns at once).
fn realtime(until: Option<Instant>) -> Duration {
    let Some(until) = until else {
        return Duration::ZERO;
    };
    let left = until.saturating_duration_since(Instant::now());
    mq::realtime_now().saturating_add(left)
}

/// The sending side of a message queue.
#[derive(Debug)]
pub struct MqSender {
    queue: Queue,
}

impl MqSender {
    /// The queue's largest message (`mq_msgsize`).
    pub fn max_message_len(&self) -> usize {
        self.queue.msgsize
    }

    /// Whether a receiver holds the other role now (a snapshot).
    ///
    /// # Errors
    /// [`Error::Io`] if the probe fails.
    pub fn is_receiver_connected(&self) -> Result<bool> {
        self.queue.peer_connected()
    }

    fn check(&self, message: &[u8]) -> Result<()> {
        if message.len() > self.queue.msgsize {
            return Err(Error::MessageTooLarge {
                len: message.len(),
                max: self.queue.msgsize,
            });
        }
        Ok(())
    }

    /// Queues `message` if there is room now; never blocks.
    ///
    /// # Errors
    /// [`TrySendError::Full`](crate::error::TrySendError::Full) (with `free: 0`); [`TrySendError::Disconnected`](crate::error::TrySendError::Disconnected) when full and the
    /// receiver has gone; [`TrySendError::MessageTooLarge`](crate::error::TrySendError::MessageTooLarge); [`TrySendError::Io`](crate::error::TrySendError::Io).
    pub fn try_send(
        &mut self,
        message: &[u8],
    ) -> std::result::Result<(), crate::error::TrySendError> {
        self.try_send_inner(message)
            .map_err(crate::error::TrySendError::from_error)
    }

    fn try_send_inner(&mut self, message: &[u8]) -> Result<()> {
        self.check(message)?;
        if self.queue.send(message, None)? {
            return Ok(());
        }
        if self.queue.peer_gone_throttled()? {
            return Err(Error::Disconnected {
                peer: Role::Receiver,
            });
        }
        Err(Error::Full {
            needed: message.len() as u64,
            free: 0,
        })
    }

    /// Queues `message`, waiting for room until `deadline` at most (`None`: as
    /// long as it takes).
    ///
    /// # Errors
    /// [`SendTimeoutError::TimedOut`](crate::error::SendTimeoutError::TimedOut);
    /// [`SendTimeoutError::Disconnected`](crate::error::SendTimeoutError::Disconnected) if the receiver goes while the queue is full;
    /// [`SendTimeoutError::MessageTooLarge`](crate::error::SendTimeoutError::MessageTooLarge); [`SendTimeoutError::Io`](crate::error::SendTimeoutError::Io).
    pub fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> std::result::Result<(), crate::error::SendTimeoutError> {
        self.check(message)
            .map_err(crate::error::SendTimeoutError::from_error)?;
        // The kernel's timed call is the park: a pause hands its end to the next
        // attempt, which waits in `mq_timedsend` until then.
        let until = Cell::new(None);
        blocking::block(
            self,
            deadline,
            |tx, gone| {
                if tx.queue.send(message, until.take())? {
                    return Ok(Step::Done(()));
                }
                // Gone: that attempt did not wait, and room may have come just
                // before the receiver went.
                if gone {
                    return Err(Error::Disconnected {
                        peer: Role::Receiver,
                    });
                }
                Ok(Step::Wait)
            },
            |_, end| {
                until.set(Some(end));
                Ok(())
            },
        )
        .map_err(crate::error::SendTimeoutError::from_error)
    }
}

/// The queue descriptor, for polling (Linux reports `POLLOUT` while the queue
/// has room).
impl AsFd for MqSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.fd()
    }
}

impl Endpoint for MqSender {
    fn waiter(&mut self) -> &mut Waiter {
        &mut self.queue.waiter
    }
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.queue.peer_gone(now)
    }
}

message_sender!(MqSender);

/// The receiving side of a message queue.
///
/// `mq_receive` needs a buffer of the queue's whole message size; a receive into a
/// shorter buffer goes through a buffer of the receiver's own, where a message too
/// long for the caller's buffer stays ([`Error::BufferTooSmall`]) for the next
/// call.
#[derive(Debug)]
pub struct MqReceiver {
    queue: Queue,
    /// A message taken from the queue and not yet handed out: `stash[..len]`.
    stash: Vec<u8>,
    stashed: Option<usize>,
}

impl MqReceiver {
    /// Whether a message taken from the queue waits here for a larger buffer.
    pub(crate) fn has_stashed(&self) -> bool {
        self.stashed.is_some()
    }

    fn new(queue: Queue) -> Self {
        Self {
            stash: vec![0; queue.msgsize],
            queue,
            stashed: None,
        }
    }

    /// The queue's largest message (`mq_msgsize`).
    pub fn max_message_len(&self) -> usize {
        self.queue.msgsize
    }

    /// Whether a sender holds the other role now (a snapshot).
    ///
    /// # Errors
    /// [`Error::Io`] if the probe fails.
    pub fn is_sender_connected(&self) -> Result<bool> {
        self.queue.peer_connected()
    }

    /// Hands out the stashed message, if any.
    fn unstash(&mut self, buf: &mut [u8]) -> Option<Result<usize>> {
        let len = self.stashed?;
        if len > buf.len() {
            return Some(Err(Error::BufferTooSmall {
                len,
                buffer: buf.len(),
            }));
        }
        buf[..len].copy_from_slice(&self.stash[..len]);
        self.stashed = None;
        Some(Ok(len))
    }

    /// One receive into `buf` until `until` (`None`: now); `Ok(None)` if none came.
    fn receive(&mut self, buf: &mut [u8], until: Option<Instant>) -> Result<Option<usize>> {
        if buf.len() >= self.queue.msgsize {
            return self.queue.receive(buf, until);
        }
        let Some(len) = self.queue.receive(&mut self.stash, until)? else {
            return Ok(None);
        };
        self.stashed = Some(len);
        self.unstash(buf).transpose()
    }

    /// Receives the next message into `buf` if one is queued now; returns its
    /// length. Never blocks.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`](crate::error::TryRecvError::Empty); [`TryRecvError::BufferTooSmall`](crate::error::TryRecvError::BufferTooSmall) (the message is kept for the
    /// next call); [`TryRecvError::Disconnected`](crate::error::TryRecvError::Disconnected) when the queue is empty and the sender
    /// has gone; [`TryRecvError::Io`](crate::error::TryRecvError::Io).
    pub fn try_recv(
        &mut self,
        buf: &mut [u8],
    ) -> std::result::Result<usize, crate::error::TryRecvError> {
        self.try_recv_inner(buf)
            .map_err(crate::error::TryRecvError::from_error)
    }

    fn try_recv_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        if let Some(result) = self.unstash(buf) {
            return result;
        }
        if let Some(n) = self.receive(buf, None)? {
            return Ok(n);
        }
        if !self.queue.peer_gone_throttled()? {
            return Err(Error::Empty);
        }
        // The sender is gone: anything it sent is in the queue now.
        match self.receive(buf, None)? {
            Some(n) => Ok(n),
            None => Err(Error::Disconnected { peer: Role::Sender }),
        }
    }

    /// Receives the next message into `buf`, waiting until `deadline` at most
    /// (`None`: as long as it takes); returns its length.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), [`RecvTimeoutError::TimedOut`](crate::error::RecvTimeoutError::TimedOut) instead of `Empty`.
    pub fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> std::result::Result<usize, crate::error::RecvTimeoutError> {
        if let Some(result) = self.unstash(buf) {
            return result.map_err(crate::error::RecvTimeoutError::from_error);
        }
        // As in `MqSender::send_deadline`: the pause hands the wait's end to the
        // next attempt.
        let until = Cell::new(None);
        blocking::block(
            self,
            deadline,
            |rx, gone| match rx.receive(buf, until.take())? {
                Some(n) => Ok(Step::Done(n)),
                // The sender is gone: anything it sent was in the queue for that
                // attempt (which did not wait).
                None if gone => Err(Error::Disconnected { peer: Role::Sender }),
                None => Ok(Step::Wait),
            },
            |_, end| {
                until.set(Some(end));
                Ok(())
            },
        )
        .map_err(crate::error::RecvTimeoutError::from_error)
    }
}

/// The queue descriptor, for polling (Linux reports `POLLIN` while the queue
/// holds a message; a message this receiver already took but could not hand out
/// is not counted).
impl AsFd for MqReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.fd()
    }
}

impl Endpoint for MqReceiver {
    fn waiter(&mut self) -> &mut Waiter {
        &mut self.queue.waiter
    }
    fn peer_gone(&mut self, now: Instant) -> Result<bool> {
        self.queue.peer_gone(now)
    }
}

message_receiver!(MqReceiver {
    fn recv_vec_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> std::result::Result<Vec<u8>, crate::error::RecvTimeoutError> {
        // Through the stash: an empty buffer takes an empty message, and any other
        // stays there as too long, to be copied out at its length.
        match self.recv_deadline(&mut [], deadline) {
            Ok(_) => Ok(Vec::new()),
            Err(crate::error::RecvTimeoutError::BufferTooSmall { len, .. }) => {
                self.stashed = None;
                Ok(self.stash[..len].to_vec())
            }
            Err(e) => Err(e),
        }
    }
});
