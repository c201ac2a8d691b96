//! The tokio rows: both sides on a current-thread tokio runtime (built with I/O
//! only: no worker threads, so everything runs on the pinned main thread), each
//! round trip's send and receive, or each throughput call's messages, awaited
//! inside one `block_on`.
//!
//! - `async` ([`Method::AsyncPark`]): two shmring channels (memfds passed with
//!   their doorbells, as the busy-spin rows' are), `shmring_tokio::AsyncSender`
//!   and `AsyncReceiver`, no spin: a receive that finds nothing arms and awaits
//!   the doorbell in the reactor's `epoll_wait`. Throughput: one channel, the
//!   child's sends and the parent's receives each awaited message by message.
//! - `async-spin` ([`Method::AsyncSpin`]): as `async`, each receiver spinning
//!   for the default `WaitStrategy::SpinThenPark`'s time before it arms.
//! - `tokio-unix-socket` ([`Method::AsyncUnixStream`]): a Unix stream socket
//!   pair, tokio `UnixStream` on each side: `writable` / `try_write` until the
//!   whole message went, `readable` / `try_read` until it came (round trips:
//!   exactly one 8-byte message; throughput: one write a message, reads in bulk
//!   and split, as the blocking `unix-socket` row does).
//!
//! The `block_on` a call pays (entering the runtime, one poll) is paid alike by
//! both transports; a throughput call moves up to [`CHUNK`] messages in one.

use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::Command;
use std::time::Duration;

use shmring::WaitStrategy;
use shmring_tokio::{AsyncReceiver, AsyncSender};
use tokio::net::UnixStream;
use tokio::runtime::{Builder, Runtime};

use super::readiness::require_doorbells;
use super::{Check, Duplex, FD_A_VAR, Method, Result, Sink, Source, Stamp, inherit, kernel};

/// Messages a throughput call moves inside one `block_on` at most.
const CHUNK: u64 = 256;

/// A current-thread runtime with the I/O driver (no timer, no worker threads).
fn runtime() -> Result<Runtime> {
    Ok(Builder::new_current_thread().enable_io().build()?)
}

/// How long a receiver of `method` spins before it arms: the default
/// spin-then-park's spin for [`Method::AsyncSpin`], none otherwise.
pub(super) fn spin(method: Method) -> Duration {
    match (method, WaitStrategy::default()) {
        (Method::AsyncSpin, WaitStrategy::SpinThenPark { spin }) => spin,
        _ => Duration::ZERO,
    }
}

/// The parent's or child's ends of the two channels of a round trip, awaited.
pub(super) struct ShmringAsync {
    tx: AsyncSender<shmring::Sender>,
    rx: AsyncReceiver<shmring::Receiver>,
    // Last: dropped after the registrations it holds.
    rt: Runtime,
}

impl ShmringAsync {
    /// Registers `tx` and `rx` with a new runtime; `rx` spins as `method` says.
    pub(super) fn new(method: Method, tx: shmring::Sender, rx: shmring::Receiver) -> Result<Self> {
        require_doorbells([("sender", tx.wakeups()), ("receiver", rx.wakeups())])?;
        let rt = runtime()?;
        let entered = rt.enter();
        let tx = AsyncSender::new(tx)?;
        let rx = AsyncReceiver::new(rx)?.spin(spin(method));
        drop(entered);
        Ok(Self { tx, rx, rt })
    }
}

impl Duplex for ShmringAsync {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Ok(self.rt.block_on(self.tx.send(msg))?)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let n = self.rt.block_on(self.rx.recv(buf))?;
        if n != buf.len() {
            return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
        }
        Ok(())
    }
}

/// The child's side of an `async` throughput run: awaited sends.
pub(super) struct ShmringAsyncSource {
    tx: AsyncSender<shmring::Sender>,
    rt: Runtime,
}

impl ShmringAsyncSource {
    pub(super) fn new(tx: shmring::Sender) -> Result<Self> {
        require_doorbells([("sender", tx.wakeups())])?;
        let rt = runtime()?;
        let tx = {
            let _entered = rt.enter();
            AsyncSender::new(tx)?
        };
        Ok(Self { tx, rt })
    }
}

impl Source for ShmringAsyncSource {
    fn send_from(&mut self, stamp: &mut Stamp, next: u64, end: u64) -> Result<u64> {
        let upto = end.min(next + CHUNK);
        let tx = &mut self.tx;
        self.rt.block_on(async {
            for seq in next..upto {
                tx.send(stamp.stamp(seq)).await?;
            }
            Ok::<_, super::Error>(())
        })?;
        Ok(upto - next)
    }
}

/// The parent's side of an `async` throughput run: awaited receives.
pub(super) struct ShmringAsyncSink {
    rx: AsyncReceiver<shmring::Receiver>,
    buf: Vec<u8>,
    rt: Runtime,
}

impl ShmringAsyncSink {
    pub(super) fn new(rx: shmring::Receiver, size: usize) -> Result<Self> {
        require_doorbells([("receiver", rx.wakeups())])?;
        let rt = runtime()?;
        let rx = {
            let _entered = rt.enter();
            AsyncReceiver::new(rx)?
        };
        Ok(Self {
            rx,
            buf: vec![0; size],
            rt,
        })
    }
}

impl Sink for ShmringAsyncSink {
    fn recv_some(&mut self, check: &mut Check) -> Result<u64> {
        let (rx, buf) = (&mut self.rx, &mut self.buf);
        let from = check.next;
        let upto = check.end.min(from + CHUNK);
        self.rt.block_on(async {
            while check.next < upto {
                let n = rx.recv(buf).await?;
                check.check(&buf[..n])?;
            }
            Ok::<_, super::Error>(())
        })?;
        Ok(check.next - from)
    }
}

// ---------------------------------------------------------------------------
// tokio's UnixStream

/// A Unix stream socket pair: the parent's end, and the child's, inherited as
/// [`FD_A_VAR`] (to drop in the parent once the child is spawned).
pub(super) fn unix_pair(command: &mut Command) -> Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = StdUnixStream::pair()?;
    let (ours, theirs) = (OwnedFd::from(ours), OwnedFd::from(theirs));
    inherit(command, theirs.as_fd(), FD_A_VAR);
    Ok((ours, theirs))
}

/// `fd`, a Unix stream socket, as a tokio `UnixStream` on a new runtime.
fn unix_stream(fd: OwnedFd) -> Result<(UnixStream, Runtime)> {
    let std = StdUnixStream::from(fd);
    std.set_nonblocking(true)?;
    let rt = runtime()?;
    let stream = {
        let _entered = rt.enter();
        UnixStream::from_std(std)?
    };
    Ok((stream, rt))
}

/// Writes the whole of `msg`, awaiting room as often as it takes.
async fn write_all(stream: &UnixStream, msg: &[u8]) -> Result<()> {
    let mut at = 0;
    while at < msg.len() {
        stream.writable().await?;
        match stream.try_write(&msg[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("write: {e}").into()),
        }
    }
    Ok(())
}

/// Reads what is there (at least a byte), awaiting it; the end of the stream is
/// an error (the peer went).
async fn read_some(stream: &UnixStream, buf: &mut [u8]) -> Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Ok(0) => return Err("the peer closed the socket".into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("read: {e}").into()),
        }
    }
}

/// One side of a `tokio-unix-socket` round trip.
pub(super) struct UnixAsync {
    stream: UnixStream,
    rt: Runtime,
}

impl UnixAsync {
    pub(super) fn new(fd: OwnedFd) -> Result<Self> {
        let (stream, rt) = unix_stream(fd)?;
        Ok(Self { stream, rt })
    }
}

impl Duplex for UnixAsync {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.rt.block_on(write_all(&self.stream, msg))
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let stream = &self.stream;
        self.rt.block_on(async {
            let mut at = 0;
            while at < buf.len() {
                at += read_some(stream, &mut buf[at..]).await?;
            }
            Ok(())
        })
    }
}

/// The child's side of a `tokio-unix-socket` throughput run: one awaited write
/// a message.
pub(super) struct UnixAsyncSource(UnixAsync);

impl UnixAsyncSource {
    pub(super) fn new(fd: OwnedFd) -> Result<Self> {
        Ok(Self(UnixAsync::new(fd)?))
    }
}

impl Source for UnixAsyncSource {
    fn send_from(&mut self, stamp: &mut Stamp, next: u64, end: u64) -> Result<u64> {
        let upto = end.min(next + CHUNK);
        let stream = &self.0.stream;
        self.0.rt.block_on(async {
            for seq in next..upto {
                write_all(stream, stamp.stamp(seq)).await?;
            }
            Ok::<_, super::Error>(())
        })?;
        Ok(upto - next)
    }
}

/// The parent's side of a `tokio-unix-socket` throughput run: awaited bulk
/// reads, split into messages ([`kernel::check_read`]).
pub(super) struct UnixAsyncSink {
    side: UnixAsync,
    buf: Vec<u8>,
    filled: usize,
}

impl UnixAsyncSink {
    pub(super) fn new(fd: OwnedFd, size: usize) -> Result<Self> {
        Ok(Self {
            side: UnixAsync::new(fd)?,
            buf: vec![0; size.max(kernel::BULK_READ)],
            filled: 0,
        })
    }
}

impl Sink for UnixAsyncSink {
    fn recv_some(&mut self, check: &mut Check) -> Result<u64> {
        let into = &mut self.buf[self.filled..];
        let n = self.side.rt.block_on(read_some(&self.side.stream, into))?;
        kernel::check_read(&mut self.buf, &mut self.filled, n, check)
    }
}
