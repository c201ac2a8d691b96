//! One message API over every transport: [`MessageSender`] and [`MessageReceiver`].
//!
//! The shared-memory channels ([`Sender`](crate::channel::Sender), [`Receiver`](crate::channel::Receiver))
//! implement them, and so does each fallback transport, so code written against the
//! traits (or against `Box<dyn MessageSender + Send>`) switches method without
//! change. Every transport keeps message boundaries, checks the largest message at
//! the call ([`Error::MessageTooLarge`]), and reports a peer that has gone as
//! [`Error::Disconnected`]. [`connect_sender`] and [`listen`] pick the transport
//! from an address string ([`Address`]); each transport can also be used through
//! its own types, in its module.
//!
//! | method | module, address | seed method | direction | scope | message or stream | largest message |
//! |---|---|---|---|---|---|---|
//! | shared-memory ring | [`ChannelBuilder::shm`](crate::channel::ChannelBuilder::shm), [`memfd`](crate::channel::ChannelBuilder::memfd); `shm:name` | shared memory | one-way (a channel each way for duplex) | same machine | message | capacity / 2 − 8 (32 760 in the 64 KiB default ring) |
//! | file-backed ring | [`ChannelBuilder::file`](crate::channel::ChannelBuilder::file); `file:/path` | memory-mapped file | one-way | same machine | message | as above |
//! | Unix stream socket | [`unix`]; `unix:/path` | socket | duplex | same machine | stream, length-framed | [`DEFAULT_MAX_MESSAGE_LEN`] (1 MiB), settable up to 4 GiB − 1 |
//! | Unix seqpacket socket | [`seqpacket`]; `seqpacket:/path` | socket | duplex | same machine | message | `SO_SNDBUF` − 32 (212 960 by default) |
//! | TCP | [`tcp`]; `tcp://host:port` | socket | duplex | another host | stream, length-framed | 1 MiB, settable |
//! | anonymous pipe | [`pipe`] (no address) | pipe | one-way; [`pipe::spawn`] makes two for duplex | parent and child | stream, length-framed | 1 MiB, settable |
//! | named pipe | [`fifo`]; `fifo:/path` | named pipe | one-way | same machine | stream, length-framed | 1 MiB, settable |
//! | POSIX message queue | [`mq`]; `mq:name` | message queue | one-way | same machine | message | `mq_msgsize` (8192 by default, up to `/proc/sys/fs/mqueue/msgsize_max`) |
//!
//! What survives a peer's death (SIGKILL): every transport delivers every
//! *committed* message, then `Disconnected`. A message is committed when the send
//! call that sent it returned, with two refinements: on the stream transports
//! (Unix stream, TCP, pipes, FIFOs) a message the kernel took only part of is
//! accepted but committed only once its last byte is written (a blocking `send`
//! always returns with it written; see `pending_len` on their senders); and on TCP
//! a committed message is in the *local* kernel, delivered unless the connection
//! is reset or the network fails. Each module says more.
//!
//! # Which rendezvous: this one or [`connection`](crate::connection)
//!
//! shmring has one rendezvous in two shapes; their address strings overlap
//! (`tcp://host:port` is valid for both), so pick by what you need:
//!
//! | | [`transport::listen`](listen) → [`TransportListener`] | [`Listener::bind`](crate::connection::Listener::bind) → [`connection::Listener`](crate::connection::Listener) |
//! |---|---|---|
//! | direction | one-way: the listener gets receivers, [`connect_sender`] senders | duplex: both sides get a [`Connection`](crate::connection::Connection) |
//! | address | picks the transport: `unix:`, `seqpacket:`, `tcp://`, `fifo:`, `mq:`, `shm:`, `file:` | a name (`"orders"`, a socket in a private directory) or `tcp://host:port` |
//! | transport | exactly the one the address names | shared-memory rings passed over the socket, else the socket itself (or TCP) |
//! | peer checks | the transport's own (a segment's or FIFO's owner and mode) | the peer's uid (`SO_PEERCRED`) against an allow-list, a versioned handshake |
//!
//! Use a connection for a request/response service or anything duplex between
//! processes of one machine (it is the fast path, and the [`rpc`](crate::rpc)
//! module runs over it). Use this module to choose the kernel mechanism yourself
//! (a message queue, a FIFO a shell script can write to), to talk to a peer that
//! only speaks that mechanism, or for one-way streams. The two do not talk to
//! each other: a [`connect_sender`] to a connection's `tcp://` port fails the
//! listener's handshake.
//!
//! ```no_run
//! use shmring::transport::{connect_sender, listen};
//! # fn main() -> shmring::Result<()> {
//! // Receiver: "unix:/tmp/a.sock", "tcp://127.0.0.1:9000", "mq:jobs", "shm:jobs", ...
//! let mut listener = listen("mq:jobs")?;
//! // Sender, in another process:
//! let mut tx = connect_sender("mq:jobs")?;
//! tx.send(b"job 1")?;
//! // Receiver:
//! let mut rx = listener.accept()?;
//! let job = rx.recv_vec_deadline(None)?;
//! # Ok(()) }
//! ```

pub mod address;
pub mod fifo;
pub mod mq;
pub mod pipe;
pub mod seqpacket;
pub(crate) mod stream;
pub mod tcp;
pub mod unix;

pub use address::{
    Address, TransportListener, connect_sender, connect_sender_deadline, connect_sender_timeout,
    listen,
};

/// The default largest message of the length-framed transports (Unix stream
/// sockets, TCP, pipes, FIFOs): 1 MiB. Each end can set its own
/// (`with_max_message_len`); a receiver refuses a longer frame
/// ([`Error::FrameTooLong`]), which bounds what a peer can make it allocate.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1 << 20;

#[allow(unused_imports, reason = "named by the doc links")]
use crate::error::Error;
pub use crate::message::{MessageReceiver, MessageSender};
