//! The connection handshake: three fixed-size records on the socket, all integers
//! little-endian. docs/design/connection-handshake.md has the same tables.
//!
//! ```text
//! hello  (client → server, 24 bytes)
//!   0  8  magic  "shmrconn"
//!   8  2  version (1)
//!  10  2  policy: 0 any, 1 shared memory only, 2 socket only
//!  12  4  reserved, 0
//!  16  8  capacity wanted per ring (0: the listener's choice)
//! reply  (server → client, 40 bytes; with SHARED_MEMORY, descriptors ride on it:
//!         the client-to-server ring's memfd, the server-to-client ring's, then,
//!         unless the server could make no pipes, the client's doorbell ends:
//!         client-to-server space read, data write; server-to-client data read,
//!         space write)
//!   0  8  magic
//!   8  2  version (1)
//!  10  2  decision: 1 shared memory, 2 socket, 3 refused
//!  12  4  shared memory: descriptor count (2, or 6 with the doorbells); refused:
//!          reason code; else 0
//!  16  8  shared memory and socket: ring capacity; refused: the value found
//!  24  8  shared memory: size of each memfd; refused: the value expected; else 0
//!  32  8  largest message
//! ack    (client → server, 16 bytes)
//!   0  8  magic
//!   8  2  version (1)
//!  10  2  status: 0 accepted, 1 refused
//!  12  4  reserved, 0
//! ```

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::readiness::BellSource;
use crate::sys;

use super::TransportPolicy;
use crate::sys::fdpass;

/// The first bytes of every record.
pub(crate) const MAGIC: [u8; 8] = *b"shmrconn";
/// The protocol version this build speaks (2: the doorbells ride on the reply).
pub(crate) const VERSION: u16 = 2;

/// Descriptors on a shared-memory reply: the two memfds...
pub(crate) const FDS_RINGS: usize = 2;
/// ...and with the client's four doorbell ends.
pub(crate) const FDS_WITH_BELLS: usize = 6;

/// The server's side: takes the client's doorbell ends out of the two rings'
/// (the client sends on `c2s`, receives on `s2c`), so that the server holds
/// none of them once they are sent; `None` if either ring has no pipes.
pub(crate) fn take_client_bells(
    c2s: &crate::channel::Channel,
    s2c: &crate::channel::Channel,
) -> Option<[OwnedFd; 4]> {
    let take = |channel: &crate::channel::Channel, role| {
        channel
            .segment()
            .with_bells(|bells| bells.take_for_peer(role))
    };
    let [a, b] = take(c2s, crate::error::Role::Sender)?;
    let [c, d] = take(s2c, crate::error::Role::Receiver)?;
    Some([a, b, c, d])
}

/// The client's side: the doorbells of its two rings from the descriptors after
/// the memfds (none: both rings fall back to polled readiness).
pub(crate) fn client_bells(fds: Vec<OwnedFd>, what: &str) -> Result<[BellSource; 2]> {
    if fds.is_empty() {
        let none = || BellSource::Unavailable {
            reason: "the listener passed no doorbells".to_owned(),
        };
        return Ok([none(), none()]);
    }
    for fd in &fds {
        let pipe = crate::sys::metadata(fd.as_fd()).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        });
        if !pipe {
            return Err(failed(what, "a passed doorbell is not a pipe", 0, 0));
        }
    }
    let mut fds = fds.into_iter();
    let mut two = || [fds.next().expect("four"), fds.next().expect("four")];
    let c2s = BellSource::for_role(crate::error::Role::Sender, two());
    let s2c = BellSource::for_role(crate::error::Role::Receiver, two());
    Ok([c2s, s2c])
}

pub(crate) const HELLO_LEN: usize = 24;
pub(crate) const REPLY_LEN: usize = 40;
pub(crate) const ACK_LEN: usize = 16;

/// The byte a connection sends on its socket after the handshake, in shared
/// memory mode, when its receiving half is dropped while its sending half lives.
pub(crate) const RECEIVER_GONE: u8 = 0x52; // 'R'

/// Decision codes of the reply.
pub(crate) const DECISION_SHM: u16 = 1;
pub(crate) const DECISION_SOCKET: u16 = 2;
pub(crate) const DECISION_REFUSED: u16 = 3;

/// Reasons of a refusal.
pub(crate) const REFUSED_UID: u32 = 1;
pub(crate) const REFUSED_VERSION: u32 = 2;
pub(crate) const REFUSED_BAD_HELLO: u32 = 3;
pub(crate) const REFUSED_POLICY: u32 = 4;
pub(crate) const REFUSED_NO_SHM: u32 = 5;

pub(crate) const ACK_ACCEPTED: u16 = 0;
pub(crate) const ACK_REFUSED: u16 = 1;

pub(crate) fn policy_code(policy: TransportPolicy) -> u16 {
    match policy {
        TransportPolicy::Any => 0,
        TransportPolicy::SharedMemoryOnly => 1,
        TransportPolicy::SocketOnly => 2,
    }
}

pub(crate) fn policy_from_code(code: u16) -> Option<TransportPolicy> {
    match code {
        0 => Some(TransportPolicy::Any),
        1 => Some(TransportPolicy::SharedMemoryOnly),
        2 => Some(TransportPolicy::SocketOnly),
        _ => None,
    }
}

/// The client's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u16,
    pub(crate) policy: u16,
    pub(crate) reserved: u32,
    pub(crate) capacity: u64,
}

impl Hello {
    pub(crate) fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.policy.to_le_bytes());
        b[12..16].copy_from_slice(&self.reserved.to_le_bytes());
        b[16..24].copy_from_slice(&self.capacity.to_le_bytes());
        b
    }

    /// Parses the fields; `None` if the magic is wrong (not a shmring client).
    pub(crate) fn decode(b: &[u8; HELLO_LEN]) -> Option<Self> {
        (b[0..8] == MAGIC).then(|| Self {
            version: u16_at(b, 8),
            policy: u16_at(b, 10),
            reserved: u32_at(b, 12),
            capacity: u64_at(b, 16),
        })
    }
}

/// The server's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) version: u16,
    pub(crate) decision: u16,
    pub(crate) detail: u32,
    pub(crate) a: u64,
    pub(crate) b: u64,
    pub(crate) max_message_len: u64,
}

impl Reply {
    pub(crate) fn refused(reason: u32, found: u64, expected: u64) -> Self {
        Self {
            version: VERSION,
            decision: DECISION_REFUSED,
            detail: reason,
            a: found,
            b: expected,
            max_message_len: 0,
        }
    }

    pub(crate) fn encode(&self) -> [u8; REPLY_LEN] {
        let mut b = [0u8; REPLY_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.decision.to_le_bytes());
        b[12..16].copy_from_slice(&self.detail.to_le_bytes());
        b[16..24].copy_from_slice(&self.a.to_le_bytes());
        b[24..32].copy_from_slice(&self.b.to_le_bytes());
        b[32..40].copy_from_slice(&self.max_message_len.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; REPLY_LEN]) -> Option<Self> {
        (b[0..8] == MAGIC).then(|| Self {
            version: u16_at(b, 8),
            decision: u16_at(b, 10),
            detail: u32_at(b, 12),
            a: u64_at(b, 16),
            b: u64_at(b, 24),
            max_message_len: u64_at(b, 32),
        })
    }
}

pub(crate) fn encode_ack(status: u16) -> [u8; ACK_LEN] {
    let mut b = [0u8; ACK_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&VERSION.to_le_bytes());
    b[10..12].copy_from_slice(&status.to_le_bytes());
    b
}

/// The ack's status; `None` if it is not a well-formed ack of this version.
pub(crate) fn decode_ack(b: &[u8; ACK_LEN]) -> Option<u16> {
    (b[0..8] == MAGIC && u16_at(b, 8) == VERSION && u32_at(b, 12) == 0).then(|| u16_at(b, 10))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A handshake error naming the peer.
pub(crate) fn failed(what: &str, reason: &'static str, found: u64, expected: u64) -> Error {
    Error::Handshake {
        what: what.to_owned(),
        reason,
        found,
        expected,
    }
}

/// Writes all of `bytes` (and `fds`, with the first byte) to the non-blocking
/// socket, waiting until `deadline` at most.
pub(crate) fn write_all(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
    what: &str,
) -> Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        let attach = if written == 0 { fds } else { &[] };
        match fdpass::send_with_fds(fd, &bytes[written..], attach) {
            Ok(n) => written += n,
            Err(e) if sys::would_block(&e) => wait(fd, sys::PollFlags::OUT, deadline, what)?,
            Err(e) if sys::is_peer_gone(&e) => {
                return Err(failed(
                    what,
                    "the peer closed the connection during the handshake",
                    written as u64,
                    bytes.len() as u64,
                ));
            }
            Err(e) => return Err(sys::error("sendmsg", what, e)),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes from the non-blocking socket, waiting until
/// `deadline` at most. With `fds`, descriptors that come along are collected
/// there (owned: closed unless the caller keeps them) and `MSG_CTRUNC` is an
/// error; without, nothing makes room for descriptors, so the kernel discards
/// any a peer attaches.
pub(crate) fn read_exact(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    mut fds: Option<&mut Vec<OwnedFd>>,
    deadline: Option<Instant>,
    what: &str,
) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let result = match fds.as_deref_mut() {
            Some(fds) => fdpass::recv_with_fds(fd, &mut buf[got..]).map(|r| {
                fds.extend(r.fds);
                if r.truncated {
                    return Err(failed(
                        what,
                        "the peer passed more descriptors than fit (MSG_CTRUNC)",
                        fds.len() as u64,
                        2,
                    ));
                }
                if r.unexpected_control {
                    return Err(failed(
                        what,
                        "the peer sent a control message other than SCM_RIGHTS",
                        0,
                        0,
                    ));
                }
                Ok(r.len)
            }),
            None => sys::read(fd, &mut buf[got..]).map(Ok),
        };
        match result {
            Ok(Ok(0)) => {
                return Err(failed(
                    what,
                    "the peer closed the connection during the handshake",
                    got as u64,
                    buf.len() as u64,
                ));
            }
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Err(e),
            Err(e) if sys::would_block(&e) => wait(fd, sys::PollFlags::IN, deadline, what)?,
            Err(e) if sys::is_peer_gone(&e) => {
                return Err(failed(
                    what,
                    "the peer reset the connection during the handshake",
                    got as u64,
                    buf.len() as u64,
                ));
            }
            Err(e) => return Err(sys::error("recvmsg", what, e)),
        }
    }
    Ok(())
}

fn wait(
    fd: BorrowedFd<'_>,
    events: sys::PollFlags,
    deadline: Option<Instant>,
    what: &str,
) -> Result<()> {
    match sys::wait_for(fd, events, deadline) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Error::TimedOut),
        Err(e) => Err(sys::error("poll", what, e)),
    }
}
