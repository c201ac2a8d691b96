//! Messages over a byte stream (Unix stream sockets, TCP, pipes, FIFOs): each
//! message is a frame, a 4-byte little-endian length and then the bytes.
//!
//! The writer writes a frame with one `writev`/`sendmsg` on a non-blocking
//! descriptor. When the kernel takes only part of it (a frame larger than the room
//! in the pipe or socket buffer), the rest is kept in the writer and written
//! before anything else: the message is *accepted*, and it is *committed* (in the
//! kernel, delivered even if this process dies now) once its last byte is written.
//! Until then no other message is accepted.
//!
//! The reader reads what the kernel has into a buffer of its own and hands out
//! whole frames; a frame for which the caller's buffer is too short stays there.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result, Role};
use crate::sys::{self, WriteMode};

/// Bytes of a frame's length prefix.
pub(crate) const HEADER: usize = 4;
/// The reader's buffer starts this large (and grows to the largest frame seen).
const READ_BUFFER: usize = 64 * 1024;

/// The largest message a length prefix can announce.
pub(crate) const MAX_FRAME_PAYLOAD: usize = u32::MAX as usize;

/// The writing side of a framed byte stream.
#[derive(Debug)]
pub(crate) struct FrameWriter {
    fd: Arc<OwnedFd>,
    mode: WriteMode,
    max: usize,
    /// The unwritten tail of the last accepted frame, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
    /// The reader has gone (sticky).
    gone: bool,
    what: String,
}

impl FrameWriter {
    pub(crate) fn new(fd: Arc<OwnedFd>, mode: WriteMode, max: usize, what: String) -> Self {
        Self {
            fd,
            mode,
            max: max.min(MAX_FRAME_PAYLOAD),
            pending: Vec::new(),
            pending_at: 0,
            gone: false,
            what,
        }
    }

    pub(crate) fn max_message_len(&self) -> usize {
        self.max
    }

    pub(crate) fn set_max_message_len(&mut self, max: usize) {
        self.max = max.min(MAX_FRAME_PAYLOAD);
    }

    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    pub(crate) fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Bytes of an accepted message not yet written to the kernel.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len() - self.pending_at
    }

    fn disconnected() -> Error {
        Error::Disconnected {
            peer: Role::Receiver,
        }
    }

    fn check(&self, message: &[u8]) -> Result<()> {
        if message.len() > self.max {
            return Err(Error::MessageTooLarge {
                len: message.len(),
                max: self.max,
            });
        }
        if self.gone {
            return Err(Self::disconnected());
        }
        Ok(())
    }

    /// Writes what the kernel takes now of `bufs` (the slices of one frame, from
    /// its start); returns the bytes written.
    fn write_now(&mut self, bufs: &[&[u8]]) -> Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut done = 0;
        while done < total {
            // The slices from byte `done` on.
            let mut skip = done;
            let mut rest: [&[u8]; 2] = [&[], &[]];
            let mut n = 0;
            for b in bufs {
                if skip >= b.len() {
                    skip -= b.len();
                    continue;
                }
                rest[n] = &b[skip..];
                skip = 0;
                n += 1;
            }
            match sys::write_vectored(self.fd.as_fd(), self.mode, &rest[..n]) {
                Ok(0) => break,
                Ok(written) => done += written,
                Err(e) if sys::would_block(&e) => break,
                Err(e) if sys::is_peer_gone(&e) => {
                    self.gone = true;
                    return Err(Self::disconnected());
                }
                Err(e) => return Err(sys::error("write", self.what.as_str(), e)),
            }
        }
        Ok(done)
    }

    /// Writes the pending tail as far as the kernel takes it now; whether nothing
    /// is pending any more.
    fn flush_now(&mut self) -> Result<bool> {
        if self.pending_len() == 0 {
            return Ok(true);
        }
        if self.gone {
            return Err(Self::disconnected());
        }
        let tail = std::mem::take(&mut self.pending);
        let result = self.write_now(&[&tail[self.pending_at..]]);
        self.pending = tail;
        self.pending_at += result?;
        if self.pending_at == self.pending.len() {
            self.pending.clear();
            self.pending_at = 0;
            return Ok(true);
        }
        Ok(false)
    }

    /// Keeps the unwritten part of a frame (of which `written` bytes were written).
    fn keep_tail(&mut self, header: &[u8; HEADER], message: &[u8], written: usize) {
        self.pending.clear();
        self.pending_at = 0;
        if written < HEADER {
            self.pending.extend_from_slice(&header[written..]);
            self.pending.extend_from_slice(message);
        } else {
            self.pending.extend_from_slice(&message[written - HEADER..]);
        }
    }

    /// Waits until the descriptor is writable (or in error: the write says which).
    fn wait_writable(&self, deadline: Option<Instant>) -> Result<()> {
        match sys::wait_for(self.fd.as_fd(), sys::PollFlags::OUT, deadline) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::TimedOut),
            Err(e) => Err(sys::error("poll", self.what.as_str(), e)),
        }
    }

    pub(crate) fn try_send(&mut self, message: &[u8]) -> Result<()> {
        self.check(message)?;
        let needed = (HEADER + message.len()) as u64;
        if !self.flush_now()? {
            return Err(Error::Full { needed, free: 0 });
        }
        let header = (message.len() as u32).to_le_bytes();
        let written = self.write_now(&[&header, message])?;
        if written == 0 {
            return Err(Error::Full { needed, free: 0 });
        }
        if written < HEADER + message.len() {
            self.keep_tail(&header, message, written);
        }
        Ok(())
    }

    pub(crate) fn send_deadline(
        &mut self,
        message: &[u8],
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.check(message)?;
        while !self.flush_now()? {
            self.wait_writable(deadline)?;
        }
        let header = (message.len() as u32).to_le_bytes();
        let total = HEADER + message.len();
        let mut written = 0;
        loop {
            written += if written < HEADER {
                self.write_now_from(&header, message, written)?
            } else {
                self.write_now_from(&[], &message[written - HEADER..], 0)?
            };
            if written == total {
                return Ok(());
            }
            match self.wait_writable(deadline) {
                Ok(()) => {}
                // Started: the message is accepted, its tail kept for the next call.
                Err(Error::TimedOut) if written > 0 => {
                    self.keep_tail(&header, message, written);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`write_now`](Self::write_now) of `header[from..]` then `message`.
    fn write_now_from(&mut self, header: &[u8], message: &[u8], from: usize) -> Result<usize> {
        self.write_now(&[&header[from.min(header.len())..], message])
    }

    /// Writes the pending tail, waiting until `deadline` at most.
    pub(crate) fn flush_deadline(&mut self, deadline: Option<Instant>) -> Result<()> {
        while !self.flush_now()? {
            self.wait_writable(deadline)?;
        }
        Ok(())
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        // Best effort, without blocking: a tail the kernel does not take now is
        // lost, and the reader sees a truncated last frame (then `Disconnected`).
        let _ = self.flush_now();
    }
}

/// How the reader tells the end of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndOfStream {
    /// `read` returning 0 is the end (sockets, anonymous pipes).
    Eof,
    /// A FIFO opened for reading before any writer: `read` returns 0 also while no
    /// writer has opened it yet. The end is a 0 *and* `POLLHUP`, which Linux
    /// reports only once a writer has come and gone since the reader opened.
    FifoHangup,
}

/// The reading side of a framed byte stream.
#[derive(Debug)]
pub(crate) struct FrameReader {
    fd: Arc<OwnedFd>,
    end_of_stream: EndOfStream,
    max: usize,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The writer has gone (sticky): what is buffered is all there will be.
    eof: bool,
    /// A frame longer than `max` was announced (sticky).
    too_long: Option<u64>,
    what: String,
}

impl FrameReader {
    pub(crate) fn new(
        fd: Arc<OwnedFd>,
        end_of_stream: EndOfStream,
        max: usize,
        what: String,
    ) -> Self {
        let max = max.min(MAX_FRAME_PAYLOAD);
        Self {
            fd,
            end_of_stream,
            max,
            buf: vec![0; READ_BUFFER.min(HEADER + max).max(HEADER)],
            start: 0,
            end: 0,
            eof: false,
            too_long: None,
            what,
        }
    }

    pub(crate) fn max_message_len(&self) -> usize {
        self.max
    }

    pub(crate) fn set_max_message_len(&mut self, max: usize) {
        self.max = max.min(MAX_FRAME_PAYLOAD);
    }

    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    pub(crate) fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Whether a receive would do something now without reading the socket: a
    /// whole frame is buffered, or the end or an error is known. (If not, the
    /// socket becomes readable when that may change.)
    pub(crate) fn has_frame(&self) -> bool {
        let buffered = &self.buf[self.start..self.end];
        let whole = buffered.len() >= HEADER && {
            let header: [u8; HEADER] = buffered[..HEADER].try_into().expect("a 4-byte slice");
            buffered.len() - HEADER >= u32::from_le_bytes(header) as usize
        };
        whole || self.eof || self.too_long.is_some()
    }

    /// Bytes received from the kernel and not yet handed out.
    pub(crate) fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    fn too_long(&self, len: u64) -> Error {
        Error::FrameTooLong {
            what: self.what.clone(),
            len,
            max: self.max,
        }
    }

    /// Reads what the kernel has into the buffer, making room for `need` bytes
    /// from `start`. Returns whether anything was read; sets `eof` at the end.
    fn fill(&mut self, need: usize) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.buf.len() - self.start < need || self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
        }
        match sys::read(self.fd.as_fd(), &mut self.buf[self.end..]) {
            Ok(0) => {
                self.eof = match self.end_of_stream {
                    EndOfStream::Eof => true,
                    EndOfStream::FifoHangup => {
                        let events = sys::poll_now(self.fd.as_fd(), sys::PollFlags::IN)
                            .map_err(|e| sys::error("poll", self.what.as_str(), e))?;
                        events.contains(sys::PollFlags::HUP)
                    }
                };
                Ok(false)
            }
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if sys::would_block(&e) => Ok(false),
            // A reset loses what the kernel had not handed over: the end, too.
            Err(e) if sys::is_peer_gone(&e) => {
                self.eof = true;
                Ok(false)
            }
            Err(e) => Err(sys::error("read", self.what.as_str(), e)),
        }
    }

    /// The length of the next message, once its header is buffered; `None` if it
    /// is not (yet). `Disconnected` at the end of the stream.
    fn next_len(&mut self) -> Result<Option<usize>> {
        if let Some(len) = self.too_long {
            return Err(self.too_long(len));
        }
        while self.end - self.start < HEADER {
            if !self.fill(HEADER)? {
                return if self.eof {
                    Err(Error::Disconnected { peer: Role::Sender })
                } else {
                    Ok(None)
                };
            }
        }
        let header: [u8; HEADER] = self.buf[self.start..self.start + HEADER]
            .try_into()
            .expect("a 4-byte slice");
        let len = u32::from_le_bytes(header) as usize;
        if len > self.max {
            self.too_long = Some(len as u64);
            return Err(self.too_long(len as u64));
        }
        Ok(Some(len))
    }

    /// Whether the whole frame of a message of `len` bytes is buffered, reading
    /// what is there. `Disconnected` if the stream ended inside it (the writer died
    /// before its last byte: a message never committed).
    fn frame_ready(&mut self, len: usize) -> Result<bool> {
        while self.end - self.start < HEADER + len {
            if !self.fill(HEADER + len)? {
                return if self.eof {
                    Err(Error::Disconnected { peer: Role::Sender })
                } else {
                    Ok(false)
                };
            }
        }
        Ok(true)
    }

    fn take(&mut self, len: usize) -> &[u8] {
        let from = self.start + HEADER;
        self.start = from + len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        &self.buf[from..from + len]
    }

    /// The next message into `out`, if it is all here now.
    pub(crate) fn try_recv(&mut self, out: &mut [u8]) -> Result<usize> {
        let Some(len) = self.next_len()? else {
            return Err(Error::Empty);
        };
        if len > out.len() {
            return Err(Error::BufferTooSmall {
                len,
                buffer: out.len(),
            });
        }
        if !self.frame_ready(len)? {
            return Err(Error::Empty);
        }
        out[..len].copy_from_slice(self.take(len));
        Ok(len)
    }

    /// The next message in a new vector, if it is all here now.
    pub(crate) fn try_recv_vec(&mut self) -> Result<Vec<u8>> {
        let Some(len) = self.next_len()? else {
            return Err(Error::Empty);
        };
        if !self.frame_ready(len)? {
            return Err(Error::Empty);
        }
        Ok(self.take(len).to_vec())
    }

    /// Waits until there is something to read (or the end), until `deadline`.
    fn wait_readable(&self, deadline: Option<Instant>) -> Result<()> {
        match sys::wait_for(self.fd.as_fd(), sys::PollFlags::IN, deadline) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::TimedOut),
            Err(e) => Err(sys::error("poll", self.what.as_str(), e)),
        }
    }

    pub(crate) fn recv_deadline(
        &mut self,
        out: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        loop {
            match self.try_recv(out) {
                Err(Error::Empty) => self.wait_readable(deadline)?,
                other => return other,
            }
        }
    }

    pub(crate) fn recv_vec_deadline(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        loop {
            match self.try_recv_vec() {
                Err(Error::Empty) => self.wait_readable(deadline)?,
                other => return other,
            }
        }
    }
}

/// Implements [`MessageSender`](crate::message::MessageSender) and inherent methods for a
/// type with a `writer: FrameWriter` field.
macro_rules! framed_sender_methods {
    ($ty:ty) => {
        impl $ty {
            /// The largest message this end sends (default
            /// [`DEFAULT_MAX_MESSAGE_LEN`](crate::transport::DEFAULT_MAX_MESSAGE_LEN);
            /// the receiving end must accept at least as much).
            pub fn max_message_len(&self) -> usize {
                self.writer.max_message_len()
            }

            /// Sets the largest message this end sends (at most `u32::MAX`).
            pub fn with_max_message_len(mut self, max: usize) -> Self {
                self.writer.set_max_message_len(max);
                self
            }

            /// Bytes of an accepted message not yet handed to the kernel: the tail
            /// of a frame the kernel took only part of (see the module docs). The
            /// next send or [`flush`](Self::flush) writes it first. Dropping the
            /// sender writes what the kernel takes of it at once, without waiting:
            /// [`flush`](Self::flush) first to be sure the message is committed.
            pub fn pending_len(&self) -> usize {
                self.writer.pending_len()
            }

            /// Sends `message` if the kernel takes at least its first bytes now;
            /// never blocks. A tail the kernel does not take yet is kept (see
            /// [`pending_len`](Self::pending_len)).
            ///
            /// # Errors
            /// [`TrySendError::Full`](crate::error::TrySendError::Full) (with `free: 0`: the kernel does
            /// not say how much room it has), also while an earlier tail is
            /// pending; [`TrySendError::MessageTooLarge`](crate::error::TrySendError::MessageTooLarge);
            /// [`TrySendError::Disconnected`](crate::error::TrySendError::Disconnected) once the
            /// receiver has gone; [`TrySendError::Io`](crate::error::TrySendError::Io).
            pub fn try_send(
                &mut self,
                message: &[u8],
            ) -> std::result::Result<(), $crate::error::TrySendError> {
                self.writer
                    .try_send(message)
                    .map_err($crate::error::TrySendError::from_error)
            }

            /// Sends `message`, waiting for room until `deadline` at most (`None`:
            /// as long as it takes). On return the whole frame is in the kernel:
            /// committed. If the deadline passes before any byte of the frame was
            /// written, nothing was sent
            /// ([`SendTimeoutError::TimedOut`](crate::error::SendTimeoutError::TimedOut)); if it
            /// passes midway, the message is accepted and its tail kept, as by
            /// [`try_send`](Self::try_send).
            ///
            /// # Errors
            /// As [`try_send`](Self::try_send), `TimedOut` instead of `Full`.
            pub fn send_deadline(
                &mut self,
                message: &[u8],
                deadline: Option<std::time::Instant>,
            ) -> std::result::Result<(), $crate::error::SendTimeoutError> {
                self.writer
                    .send_deadline(message, deadline)
                    .map_err($crate::error::SendTimeoutError::from_error)
            }

            /// Writes a pending tail, waiting as long as it takes.
            ///
            /// # Errors
            /// [`Error::Disconnected`](crate::error::Error::Disconnected),
            /// [`Error::Io`](crate::error::Error::Io).
            pub fn flush(&mut self) -> crate::error::Result<()> {
                self.writer.flush_deadline(None)
            }

            /// As [`flush`](Self::flush), giving up after `timeout`.
            ///
            /// # Errors
            /// As [`flush`](Self::flush), and [`Error::TimedOut`](crate::error::Error::TimedOut).
            pub fn flush_timeout(
                &mut self,
                timeout: std::time::Duration,
            ) -> crate::error::Result<()> {
                self.writer
                    .flush_deadline($crate::blocking::deadline_after(timeout))
            }

            /// As [`flush`](Self::flush), giving up at `deadline` (`None`: waiting
            /// as long as it takes).
            ///
            /// # Errors
            /// As [`flush`](Self::flush), and [`Error::TimedOut`](crate::error::Error::TimedOut).
            pub fn flush_deadline(
                &mut self,
                deadline: Option<std::time::Instant>,
            ) -> crate::error::Result<()> {
                self.writer.flush_deadline(deadline)
            }
        }

        /// The descriptor, for polling (an event loop). Writing to it directly
        /// would break the framing.
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&**self.writer.fd())
            }
        }

        $crate::message::message_sender!($ty);
    };
}

/// Implements [`MessageReceiver`](crate::message::MessageReceiver) and inherent methods for a
/// type with a `reader: FrameReader` field.
macro_rules! framed_receiver_methods {
    ($ty:ty) => {
        impl $ty {
            /// The largest message this end accepts (default
            /// [`DEFAULT_MAX_MESSAGE_LEN`](crate::transport::DEFAULT_MAX_MESSAGE_LEN)).
            /// A longer frame is [`Error::FrameTooLong`](crate::error::Error::FrameTooLong).
            pub fn max_message_len(&self) -> usize {
                self.reader.max_message_len()
            }

            /// Sets the largest message this end accepts (at most `u32::MAX`): it
            /// bounds the memory a peer can make this end allocate.
            pub fn with_max_message_len(mut self, max: usize) -> Self {
                self.reader.set_max_message_len(max);
                self
            }

            /// Receives the next message into `buf` if all of it is here now;
            /// returns its length. Never blocks.
            ///
            /// # Errors
            /// [`TryRecvError::Empty`](crate::error::TryRecvError::Empty);
            /// [`TryRecvError::BufferTooSmall`](crate::error::TryRecvError::BufferTooSmall) as soon as the
            /// length is known: the message stays in this receiver's buffer for a
            /// call with a larger one, nothing is lost;
            /// [`TryRecvError::Disconnected`](crate::error::TryRecvError::Disconnected) once the sender
            /// has gone and every message it committed was received;
            /// [`TryRecvError::FrameTooLong`](crate::error::TryRecvError::FrameTooLong);
            /// [`TryRecvError::Io`](crate::error::TryRecvError::Io).
            pub fn try_recv(
                &mut self,
                buf: &mut [u8],
            ) -> std::result::Result<usize, $crate::error::TryRecvError> {
                self.reader
                    .try_recv(buf)
                    .map_err($crate::error::TryRecvError::from_error)
            }

            /// Receives the next message into `buf`, waiting until `deadline` at
            /// most (`None`: as long as it takes); returns its length.
            ///
            /// # Errors
            /// As [`try_recv`](Self::try_recv),
            /// [`RecvTimeoutError::TimedOut`](crate::error::RecvTimeoutError::TimedOut) instead of
            /// `Empty`.
            pub fn recv_deadline(
                &mut self,
                buf: &mut [u8],
                deadline: Option<std::time::Instant>,
            ) -> std::result::Result<usize, $crate::error::RecvTimeoutError> {
                self.reader
                    .recv_deadline(buf, deadline)
                    .map_err($crate::error::RecvTimeoutError::from_error)
            }

            /// Bytes received from the kernel and not yet handed out (whole and
            /// partial messages).
            pub fn buffered_len(&self) -> usize {
                self.reader.buffered_len()
            }

            /// Whether a receive would do something without reading the
            /// descriptor (a whole frame buffered, or the end known).
            pub(crate) fn has_frame(&self) -> bool {
                self.reader.has_frame()
            }
        }

        /// The descriptor, for polling (an event loop; this receiver may hold
        /// messages already read from it: see `buffered_len`). Reading from it
        /// directly would break the framing.
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&**self.reader.fd())
            }
        }

        $crate::message::message_receiver!($ty {
            /// Each message into a `Vec` of its length, read from the frame.
            fn recv_vec_deadline(
                &mut self,
                deadline: Option<std::time::Instant>,
            ) -> std::result::Result<Vec<u8>, $crate::error::RecvTimeoutError> {
                self.reader
                    .recv_vec_deadline(deadline)
                    .map_err($crate::error::RecvTimeoutError::from_error)
            }
        });
    };
}

pub(crate) use {framed_receiver_methods, framed_sender_methods};
