//! Descriptor passing (`SCM_RIGHTS`) and peer credentials (`SO_PEERCRED`) on a
//! Unix stream socket.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::transport::sys::{cvt, cvt_size};

/// The most descriptors one receive makes room for. More than the handshake ever
/// passes (two), so that a peer sending a few too many is seen and refused by
/// count; a peer sending more than this is seen by `MSG_CTRUNC` (the kernel
/// installs what fits and discards the rest).
pub(crate) const MAX_FDS: usize = 4;

/// Bytes of control buffer for [`MAX_FDS`] descriptors, as `u64`s (for the
/// alignment `cmsghdr` needs).
const CMSG_WORDS: usize = 8;

/// What one `recvmsg` returned.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes read (0: end of stream).
    pub(crate) len: usize,
    /// Descriptors that came with them, owned (closed on drop) from the moment
    /// they are parsed.
    pub(crate) fds: Vec<OwnedFd>,
    /// `MSG_CTRUNC`: the control data did not fit; descriptors were discarded.
    pub(crate) truncated: bool,
    /// A control message other than `SCM_RIGHTS` came (none is asked for).
    pub(crate) unexpected_control: bool,
}

/// One `recvmsg` into `buf`, with room for [`MAX_FDS`] descriptors, which are
/// received close-on-exec (`MSG_CMSG_CLOEXEC`). The socket is non-blocking: a
/// `WouldBlock` error says nothing is there yet.
pub(crate) fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    const _: () = assert!(
        // SAFETY: CMSG_SPACE is arithmetic on its argument.
        unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<libc::c_int>()) as u32) } as usize
            <= CMSG_WORDS * 8
    );
    let mut control = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // Exactly the room for MAX_FDS: more is MSG_CTRUNC, not silently accepted.
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    msg.msg_controllen =
        unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<libc::c_int>()) as u32) } as usize;
    let len = loop {
        // SAFETY: `msg` points to `iov` (into `buf`, writable for its length) and
        // `control` (writable for `msg_controllen` bytes); all live across the call.
        let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        match cvt_size(rc) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    let mut received = Received {
        len,
        fds: Vec::new(),
        truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        unexpected_control: false,
    };
    // Take ownership of every descriptor first, so that each one is closed
    // whatever the caller decides.
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR reads its control fields.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR/CMSG_NXTHDR lies within
        // `control` (they check it against `msg_controllen`); read unaligned to
        // make no assumption.
        let header = unsafe { cmsg.read_unaligned() };
        let data_len = header
            .cmsg_len
            // SAFETY: CMSG_LEN is arithmetic.
            .saturating_sub(unsafe { libc::CMSG_LEN(0) } as usize);
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            let count = data_len / size_of::<libc::c_int>();
            // SAFETY: CMSG_DATA of a header within `control`.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            for i in 0..count {
                // SAFETY: the kernel wrote `count` ints after the header, within
                // `control` (`cmsg_len` counts them and lies within the buffer).
                let raw = unsafe {
                    data.add(i * size_of::<libc::c_int>())
                        .cast::<libc::c_int>()
                        .read_unaligned()
                };
                if raw >= 0 {
                    // SAFETY: the kernel just installed `raw` in our table for this
                    // message: open, and owned by nothing else.
                    received.fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        } else {
            received.unexpected_control = true;
        }
        // SAFETY: `cmsg` is a header of `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
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
    let mut control = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = (fds.len() * size_of::<libc::c_int>()) as u32;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic; it fits `control` (checked above for
        // MAX_FDS).
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        // SAFETY: `msg_control` points to `control`, large enough for one header
        // and `data_len` bytes: CMSG_FIRSTHDR returns its start.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        // SAFETY: `cmsg` points into `control` (aligned for cmsghdr, u64 array),
        // with room for the header and the data (CMSG_SPACE above).
        unsafe {
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
            for (i, passed) in fds.iter().enumerate() {
                data.add(i).write_unaligned(passed.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: `msg` points to `iov` (over `bytes`) and `control`, all live
        // across the call; sendmsg only reads them.
        let rc = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        match cvt_size(rc) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The credentials of the process at the other end of a Unix socket, as the
/// kernel recorded them at `connect` (or `socketpair`): pid, uid, gid.
pub(crate) fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are writable for their sizes across the call.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    if len as usize != size_of::<libc::ucred>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "SO_PEERCRED returned a short ucred",
        ));
    }
    Ok(cred)
}
