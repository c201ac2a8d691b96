//! Descriptor passing (`SCM_RIGHTS`) and peer credentials (`SO_PEERCRED`) on a
//! Unix stream socket.
//!
//! The control messages are built and parsed by rustix's ancillary buffers, which
//! own every descriptor a message brings from the moment `recvmsg` returns.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The most descriptors one receive makes room for. More than the handshake ever
/// passes (two), so that a peer sending a few too many is seen and refused by
/// count; a peer sending more than this is seen by `MSG_CTRUNC` (the kernel
/// installs what fits and discards the rest).
pub(crate) const MAX_FDS: usize = 6;

/// `cmsg_space!` adds one `cmsghdr` alignment so that any byte buffer can be
/// aligned; [`Control`] is aligned already, and holds exactly `CMSG_SPACE` of
/// [`MAX_FDS`] descriptors, so that one more is `MSG_CTRUNC`.
const CMSG_HDR_ALIGN: usize = align_of::<usize>();
const CONTROL_LEN: usize = rustix::cmsg_space!(ScmRights(MAX_FDS)) - CMSG_HDR_ALIGN;
const _: () = assert!(CONTROL_LEN >= MAX_FDS * size_of::<std::ffi::c_int>());

/// Control-message room, aligned for `cmsghdr` (a `size_t` and two `int`s).
#[repr(C, align(8))]
struct Control([MaybeUninit<u8>; CONTROL_LEN]);
const _: () = assert!(align_of::<Control>() >= CMSG_HDR_ALIGN);

/// What one `recvmsg` returned.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes read (0: end of stream).
    pub(crate) len: usize,
    /// Descriptors that came with them, owned (closed on drop).
    pub(crate) fds: Vec<OwnedFd>,
    /// `MSG_CTRUNC`: the control data did not fit; descriptors were discarded.
    pub(crate) truncated: bool,
    /// A control message other than `SCM_RIGHTS` came (none is asked for).
    pub(crate) unexpected_control: bool,
}

/// One `recvmsg` into `buf`, with room for [`MAX_FDS`] descriptors, which are
/// received close-on-exec (`MSG_CMSG_CLOEXEC`). The socket is non-blocking: a
/// `WouldBlock` error says nothing is there yet.
///
/// rustix parses `SCM_RIGHTS` and `SCM_CREDENTIALS` and skips other kinds; none
/// of those carries descriptors unless the receiving socket asked for them
/// (`SO_PASSPIDFD`), which ours never does. Credentials come only to a socket
/// that set `SO_PASSCRED`, which the connection's never does (rustix's `UCred`
/// could not hold the pid 0 of a peer outside our pid namespace).
pub(crate) fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut space = Control([MaybeUninit::uninit(); CONTROL_LEN]);
    let mut control = RecvAncillaryBuffer::new(&mut space.0);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        super::count::one();
        match rustix::net::recvmsg(fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut received = Received {
        len: msg.bytes,
        fds: Vec::new(),
        truncated: msg.flags.contains(ReturnFlags::CTRUNC),
        unexpected_control: false,
    };
    // Every descriptor is owned as it is drained (and the buffer closes any left
    // on drop), whatever the caller decides.
    for message in control.drain() {
        match message {
            RecvAncillaryMessage::ScmRights(fds) => received.fds.extend(fds),
            _ => received.unexpected_control = true,
        }
    }
    Ok(received)
}

/// One `sendmsg` of `bytes` with `fds` attached (`SCM_RIGHTS`), without
/// `SIGPIPE`. Returns the bytes written (the descriptors go with the first).
pub(crate) fn send_with_fds(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    assert!(fds.len() <= MAX_FDS, "at most {MAX_FDS} descriptors");
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        let pushed = control.push(SendAncillaryMessage::ScmRights(fds));
        assert!(pushed, "the control buffer holds {MAX_FDS} descriptors");
    }
    let iov = [IoSlice::new(bytes)];
    loop {
        super::count::one();
        match rustix::net::sendmsg(fd, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// Who is at the other end of a Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) pid: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The credentials of the process at the other end of a Unix socket, as the
/// kernel recorded them at `connect` (or `socketpair`): pid, uid, gid.
///
/// Through libc rather than rustix: the pid is 0 when the peer is outside this
/// process's pid namespace, and rustix's `UCred` holds a non-zero `Pid`.
pub(crate) fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<Credentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are writable for their sizes across the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != size_of::<libc::ucred>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "SO_PEERCRED returned a short ucred",
        ));
    }
    Ok(Credentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}
