//! The crate's floor of system calls: every direct call to the kernel or to libc
//! is here, one file per concern, each `unsafe` block around one call or one
//! pointer dereference. Most go through `rustix`, which types descriptors and
//! flags; `libc` is left for what rustix has no call for (OFD byte-range locks,
//! signal masks, POSIX message queues).
//!
//! Nothing here imports from a higher floor of the crate but the error type.

pub(crate) mod bell;
pub(crate) mod count;
pub(crate) mod fd;
pub(crate) mod fdpass;
pub(crate) mod futex;
pub(crate) mod inherit;
pub(crate) mod lock;
pub(crate) mod membarrier;
pub(crate) mod memfd;
pub(crate) mod mq;
pub(crate) mod poll;

pub(crate) use fd::{
    Shutdown, SocketType, UnixListenerFd, WriteMode, c_path, error, euid, file_kind, is_peer_gone,
    metadata, read, set_nonblocking, set_tcp_keepalive, shutdown, socket_path_problem,
    unix_connect, would_block, write_vectored,
};
pub(crate) use poll::{PollFlags, poll_now, wait_any, wait_for};
