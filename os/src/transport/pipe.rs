//! Anonymous pipes: between a parent and the child it spawns (or two threads).
//!
//! A pipe is one-way; [`spawn`] (or [`ChildPipes`], for a command spawned some
//! other way) makes two, one each way, and hands the child its ends: they are
//! inherited (close-on-exec cleared in the child only, between `fork` and `exec`)
//! and their numbers put in an environment variable, from which the child takes
//! them with [`from_env`].
//!
//! ```no_run
//! use std::process::Command;
//! use shmring::transport::pipe;
//! # fn main() -> shmring::Result<()> {
//! // Parent
//! let (mut child, mut tx, mut rx) = pipe::spawn(&mut Command::new("worker"), "WORKER_PIPES")?;
//! tx.send(b"job 1")?;
//! let reply = rx.recv_vec_deadline(None)?;
//! // Child ("worker"): the variable names pipes passed to it, owned by nothing else.
//! let (mut tx, mut rx) = unsafe { pipe::from_env("WORKER_PIPES") }?;
//! # Ok(()) }
//! ```
//!
//! **Framing.** A pipe is a byte stream: each message is a 4-byte little-endian
//! length and its bytes, written with one `writev`. A frame of at most `PIPE_BUF`
//! (4096) bytes is written atomically; a longer one may be split, which is safe
//! with one writer per pipe (the rule here: do not share a [`PipeSender`]'s
//! descriptor). A receive buffer too small keeps the message; a frame the pipe
//! takes only part of is accepted and its tail kept, as for
//! [`unix`](super::unix) ([`PipeSender::pending_len`]). The pipe holds 64 KiB by
//! default (Linux).
//!
//! **Committed:** a message is committed when its whole frame is in the pipe (a
//! blocking `send` returned, or `pending_len` is 0): the pipe keeps it while the
//! reading end is open, also after the writer died.
//!
//! **Liveness.** The end of the pipe (every writer closed or died) is
//! [`Error::Disconnected`] after every complete message. A write to a pipe whose
//! reader has gone fails with `EPIPE` (`Disconnected`) and would raise `SIGPIPE`,
//! whose default action kills the process. Rust programs ignore `SIGPIPE`: the
//! standard library sets it to `SIG_IGN` before `main`. Each sender checks the
//! disposition when it is made: where `SIGPIPE` is not ignored (a C program using
//! this library), every write blocks `SIGPIPE` in the calling thread and consumes
//! the signal the write raised before unblocking it (three more system calls per
//! write). A program that restores `SIGPIPE`'s default after making a sender must
//! make its senders again.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::process::{Child, Command};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::{self, WriteMode};
use crate::transport::DEFAULT_MAX_MESSAGE_LEN;
use crate::transport::stream::{
    EndOfStream, FrameReader, FrameWriter, framed_receiver_methods, framed_sender_methods,
};

/// Makes a pipe: `[read end, write end]`, close-on-exec.
fn pipe2() -> Result<[OwnedFd; 2]> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| sys::error("pipe2", "pipe", e.into()))?;
    Ok([read, write])
}

/// A pipe within this process: its sending and receiving ends (for threads, or to
/// hand an end over yourself).
///
/// # Errors
/// [`Error::Io`] (`EMFILE`: out of descriptors).
pub fn pipe() -> Result<(PipeSender, PipeReceiver)> {
    let [read, write] = pipe2()?;
    Ok((PipeSender::from_fd(write)?, PipeReceiver::from_fd(read)?))
}

/// Checks that `fd` is a pipe or FIFO, and makes it non-blocking.
fn prepare(fd: &OwnedFd, what: &str) -> Result<()> {
    let meta = sys::metadata(fd.as_fd()).map_err(|e| sys::error("fstat", what, e))?;
    if !meta.file_type().is_fifo() {
        return Err(Error::WrongFileType {
            what: what.to_owned(),
            expected: "pipe",
            found: sys::file_kind(&meta),
        });
    }
    sys::set_nonblocking(fd.as_fd(), true).map_err(|e| sys::error("fcntl(O_NONBLOCK)", what, e))
}

/// The sending end of a pipe.
#[derive(Debug)]
pub struct PipeSender {
    writer: FrameWriter,
}

framed_sender_methods!(PipeSender);

impl PipeSender {
    /// Takes the write end of a pipe (made non-blocking: its open file
    /// description is then non-blocking for every holder).
    ///
    /// # Errors
    /// [`Error::WrongFileType`] if `fd` is not a pipe; [`Error::Io`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let what = format!("pipe (write end, fd {})", fd.as_raw_fd());
        prepare(&fd, &what)?;
        Ok(Self {
            writer: FrameWriter::new(
                Arc::new(fd),
                WriteMode::for_pipe(),
                DEFAULT_MAX_MESSAGE_LEN,
                what,
            ),
        })
    }
}

/// The receiving end of a pipe.
#[derive(Debug)]
pub struct PipeReceiver {
    reader: FrameReader,
}

framed_receiver_methods!(PipeReceiver);

impl PipeReceiver {
    /// Takes the read end of a pipe (made non-blocking).
    ///
    /// # Errors
    /// [`Error::WrongFileType`] if `fd` is not a pipe; [`Error::Io`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let what = format!("pipe (read end, fd {})", fd.as_raw_fd());
        prepare(&fd, &what)?;
        Ok(Self {
            reader: FrameReader::new(
                Arc::new(fd),
                EndOfStream::Eof,
                DEFAULT_MAX_MESSAGE_LEN,
                what,
            ),
        })
    }
}

/// Two pipes for a child process, before it is spawned: the parent's ends, and
/// the child's, which [`pass_to`](Self::pass_to) lets the child inherit.
///
/// After spawning, [`into_parent`](Self::into_parent) closes the child's ends in
/// the parent; without that, the parent would hold a writer of the pipe it reads,
/// and never see its end when the child dies.
#[derive(Debug)]
pub struct ChildPipes {
    sender: PipeSender,
    receiver: PipeReceiver,
    /// The child reads here (the parent's `sender` writes the other end).
    child_read: OwnedFd,
    /// The child writes here (the parent's `receiver` reads the other end).
    child_write: OwnedFd,
}

impl ChildPipes {
    /// Makes the two pipes.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn new() -> Result<Self> {
        let [child_read, parent_write] = pipe2()?;
        let [parent_read, child_write] = pipe2()?;
        Ok(Self {
            sender: PipeSender::from_fd(parent_write)?,
            receiver: PipeReceiver::from_fd(parent_read)?,
            child_read,
            child_write,
        })
    }

    /// Lets the child that `command` spawns inherit its ends: their close-on-exec
    /// flag is cleared in the child only, and `var` is set to
    /// `"<read fd>,<write fd>"` for [`from_env`]. Spawn the command once.
    pub fn pass_to(&self, command: &mut Command, var: &str) {
        let fds = [self.child_read.as_raw_fd(), self.child_write.as_raw_fd()];
        command.env(var, format!("{},{}", fds[0], fds[1]));
        sys::inherit::inherit_in_child(command, fds);
    }

    /// The parent's ends, once the child is spawned: the child's are closed here.
    pub fn into_parent(self) -> (PipeSender, PipeReceiver) {
        (self.sender, self.receiver)
    }
}

/// Spawns `command` with two pipes to it, one each way, whose ends it takes with
/// [`from_env`]`(var)`; returns the child and this process's ends.
///
/// # Errors
/// [`Error::Io`] if the pipes cannot be made or the command not spawned.
pub fn spawn(command: &mut Command, var: &str) -> Result<(Child, PipeSender, PipeReceiver)> {
    let pipes = ChildPipes::new()?;
    pipes.pass_to(command, var);
    let child = command.spawn().map_err(|e| Error::Io {
        op: "spawn",
        what: format!("{command:?}"),
        source: e,
    })?;
    let (sender, receiver) = pipes.into_parent();
    Ok((child, sender, receiver))
}

/// In a child spawned by [`spawn`] (or given [`ChildPipes::pass_to`]): takes
/// ownership of the inherited ends whose numbers are in the environment variable
/// `var`. Returns the sender to the parent and the receiver from it.
///
/// # Errors
/// [`Error::NotFound`] if the variable is unset, malformed, or names a descriptor
/// that is not open; [`Error::WrongFileType`] if one is not a pipe.
///
/// # Safety
/// The descriptors the variable names were passed to this process for these
/// pipes, and nothing else in the process owns them: the ends close them when
/// they drop. So call this at most once per variable (the variable is left as it
/// is: changing the environment is itself unsafe once threads run).
pub unsafe fn from_env(var: &str) -> Result<(PipeSender, PipeReceiver)> {
    let not_found = || Error::NotFound {
        what: format!("inherited pipes in ${var}"),
    };
    let value = std::env::var(var).map_err(|_| not_found())?;
    let (read, write) = value.split_once(',').ok_or_else(not_found)?;
    let parse = |s: &str| -> Result<i32> {
        let fd: i32 = s.parse().map_err(|_| not_found())?;
        if !sys::inherit::is_open(fd) {
            return Err(not_found());
        }
        Ok(fd)
    };
    let (read, write) = (parse(read)?, parse(write)?);
    if read == write {
        return Err(not_found());
    }
    // SAFETY: the descriptors are distinct (checked) and, by the caller's
    // contract, passed to us for these pipes and owned by nothing else.
    let [read, write] =
        unsafe { sys::inherit::take_inherited([read, write]) }.ok_or_else(not_found)?;
    Ok((PipeSender::from_fd(write)?, PipeReceiver::from_fd(read)?))
}
