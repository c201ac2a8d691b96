//! The MPMC row: cross-process throughput of 8-byte messages through one shmring
//! MPMC channel with 2 producer and 2 consumer processes (4 in all: the parent is
//! one consumer, and three children).
//!
//! Each producer sends half of the messages, each an 8-byte word holding its
//! producer number (the top bit) and its sequence number; each consumer checks
//! that every producer's numbers reach it in increasing order and sums what it
//! got, and the parent checks that the two consumers together got every message
//! exactly once (count and sum). The clock runs from the go (every process has
//! attached) to the parent's `Disconnected` after the last message, once the
//! other consumer has reported: the whole run, start-up of the traffic included.
//! Nobody is pinned (four processes; the machine may have fewer CPUs), and every
//! endpoint waits with the default spin-then-park.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shmring::{MpmcChannel, MpmcChannelBuilder, MpmcReceiver};

use super::{
    ChildGuard, ChildRun, FD_A_VAR, FD_B_VAR, PATIENCE, Result, SharedBlock, StreamRun,
    child_command, env_string, inherit, inherited, progress,
};

/// The child's part: `producer:<n>` or `consumer`.
const PART_VAR: &str = "SHMRING_BENCH_MPMC_PART";
/// Slots of the channel.
const SLOTS: usize = 4096;
/// Producers (and consumers).
const PRODUCERS: u64 = 2;
/// The producer number's bit in a message.
const PRODUCER_BIT: u64 = 1 << 63;

fn channel_builder() -> MpmcChannelBuilder {
    MpmcChannelBuilder::memfd()
        .slots(SLOTS)
        .slot_size(super::SMALL)
        .endpoints(8)
}

/// What a consumer got: how many messages, and the wrapping sum of their words.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    count: u64,
    sum: u64,
}

impl Tally {
    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..].copy_from_slice(&self.sum.to_le_bytes());
        b
    }

    fn from_bytes(b: [u8; 16]) -> Self {
        Self {
            count: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            sum: u64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
        }
    }
}

/// Receives until every producer has gone, checking per-producer order.
fn consume(rx: &mut MpmcReceiver) -> Result<Tally> {
    let mut next = [0u64; PRODUCERS as usize];
    let mut tally = Tally::default();
    let mut buf = [0u8; super::SMALL];
    loop {
        match rx.recv_timeout(&mut buf, PATIENCE) {
            Ok(n) if n == super::SMALL => {}
            Ok(n) => return Err(format!("a message of {n} bytes, expected 8").into()),
            Err(shmring::RecvTimeoutError::Disconnected) => return Ok(tally),
            Err(e) => return Err(e.into()),
        }
        let word = u64::from_le_bytes(buf);
        let producer = usize::from(word & PRODUCER_BIT != 0);
        let seq = word & !PRODUCER_BIT;
        if seq < next[producer] {
            return Err(format!(
                "producer {producer}: message {seq} after {}: out of order",
                next[producer] - 1
            )
            .into());
        }
        next[producer] = seq + 1;
        tally.count += 1;
        tally.sum = tally.sum.wrapping_add(word);
        progress(tally.count);
    }
}

/// The expected tally of `messages` messages, half from each producer.
fn expected(messages: u64) -> Tally {
    let per = messages / PRODUCERS;
    let mut sum = 0u64;
    for p in 0..PRODUCERS {
        let base = if p == 1 { PRODUCER_BIT } else { 0 };
        // Σ (base + seq) for seq in 0..per.
        sum = sum
            .wrapping_add(base.wrapping_mul(per))
            .wrapping_add(per * per.saturating_sub(1) / 2);
    }
    Tally {
        count: per * PRODUCERS,
        sum,
    }
}

/// The parent's side: `messages` 8-byte messages (rounded down to even) from 2
/// producer processes to 2 consumer processes (this one and a child).
///
/// # Errors
/// If a child cannot be spawned or fails, a message is wrong or out of order, or
/// the consumers' tallies do not add up.
pub(super) fn stream(block: &SharedBlock, size: usize, messages: u64) -> Result<StreamRun> {
    if size != super::SMALL {
        return Err("the MPMC row measures 8-byte messages only".into());
    }
    let per_producer = messages / PRODUCERS;
    let channel = channel_builder().create()?;
    let (ready_rx, ready_tx) = pipe()?;
    let spawn = |part: String, count: u64, channel: &MpmcChannel| -> Result<ChildGuard> {
        let mut command = child_command("stream:mpmc", count, size, None, block)?;
        command.env(PART_VAR, part);
        channel.pass_to(&mut command, FD_A_VAR);
        inherit(&mut command, ready_tx.as_fd(), FD_B_VAR);
        ChildGuard::spawn(&mut command)
    };
    let mut children = Vec::new();
    // The consumer first, then the producers: every one attaches before the go.
    children.push(spawn("consumer".to_owned(), 0, &channel)?);
    for p in 0..PRODUCERS {
        children.push(spawn(format!("producer:{p}"), per_producer, &channel)?);
    }
    let mut rx = channel.receiver()?;
    drop(ready_tx);
    let mut ready = File::from(ready_rx);
    let mut byte = [0u8; 1];
    for _ in 0..children.len() {
        read_with_patience(&mut ready, &mut byte, &mut children)?;
    }
    let shared = block.block();
    let start = Instant::now();
    // Release: nothing to publish but the start.
    shared.go.store(1, Ordering::Release);
    let mine = consume(&mut rx)?;
    let mut theirs = [0u8; 16];
    read_with_patience(&mut ready, &mut theirs, &mut children)?;
    let elapsed = start.elapsed();
    let theirs = Tally::from_bytes(theirs);
    for child in children {
        child.reap()?;
    }
    let got = Tally {
        count: mine.count + theirs.count,
        sum: mine.sum.wrapping_add(theirs.sum),
    };
    let want = expected(messages);
    if got != want {
        return Err(format!("the consumers got {got:?}, expected {want:?}").into());
    }
    let stats = channel.stats();
    if stats.skipped != 0 || stats.lost != 0 {
        return Err(format!("nobody died, yet {stats:?}").into());
    }
    Ok(StreamRun {
        elapsed,
        messages: got.count,
        child_pinned: false,
        // Not counted: spin-then-park endpoints in four processes.
        system_calls: Default::default(),
        cpu: Default::default(),
    })
}

/// Reads exactly `buf.len()` bytes from the children's pipe, failing if a child
/// exits with an error first or nothing comes for [`PATIENCE`] (also used by the
/// broadcast fan-out, whose children report on one pipe too).
pub(super) fn read_with_patience(
    pipe: &mut File,
    buf: &mut [u8],
    children: &mut [ChildGuard],
) -> Result<()> {
    let since = Instant::now();
    let mut done = 0;
    while done < buf.len() {
        let mut fds = [libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(pipe),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd for the call's duration.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) };
        if rc > 0 {
            match pipe.read(&mut buf[done..])? {
                0 => return Err("every child closed the pipe early".into()),
                n => done += n,
            }
            continue;
        }
        for child in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    return Err(format!("a child failed: {status}").into());
                }
            }
        }
        if since.elapsed() > PATIENCE + Duration::from_secs(1) {
            return Err(format!("no word from the children in {PATIENCE:?}").into());
        }
    }
    Ok(())
}

/// A pipe (read end, write end), both close-on-exec.
pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: both were just made by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A child's part: attach, say ready on the pipe, wait for the go, then produce
/// or consume.
pub(super) fn child(run: &ChildRun<'_>) -> Result<()> {
    let part = env_string(PART_VAR)?;
    // SAFETY: the parent passed this descriptor for this channel; nothing else in
    // the child owns it.
    let channel = unsafe { channel_builder().from_env(FD_A_VAR) }?;
    let mut ready = File::from(inherited(FD_B_VAR)?);
    if part == "consumer" {
        let mut rx = channel.receiver()?;
        drop(channel);
        wait_for_go(run, &mut ready)?;
        let tally = consume(&mut rx)?;
        ready.write_all(&tally.to_bytes())?;
        return Ok(());
    }
    let producer: u64 = part
        .strip_prefix("producer:")
        .and_then(|p| p.parse().ok())
        .filter(|&p| p < PRODUCERS)
        .ok_or_else(|| format!("${PART_VAR}: unknown part {part:?}"))?;
    let count = run.count;
    let mut tx = channel.sender()?;
    drop(channel);
    wait_for_go(run, &mut ready)?;
    let base = if producer == 1 { PRODUCER_BIT } else { 0 };
    for seq in 0..count {
        tx.send_timeout(&(base | seq).to_le_bytes(), PATIENCE)?;
        progress(seq + 1);
    }
    Ok(())
}

/// A child's side of the start: says ready on the parent's pipe, then waits
/// (sleeping 20 µs at a time) for the parent's go.
pub(super) fn wait_for_go(run: &ChildRun<'_>, ready: &mut File) -> Result<()> {
    ready.write_all(b"r")?;
    let since = Instant::now();
    // Acquire: pairs with the parent's Release store of the go.
    while run.block.go.load(Ordering::Acquire) == 0 {
        if since.elapsed() > PATIENCE {
            return Err("no go from the parent".into());
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tally_is_the_sum_of_every_word() {
        let messages = 10;
        let mut want = Tally::default();
        for p in 0..PRODUCERS {
            for seq in 0..messages / PRODUCERS {
                let word = if p == 1 { PRODUCER_BIT | seq } else { seq };
                want.count += 1;
                want.sum = want.sum.wrapping_add(word);
            }
        }
        assert_eq!(expected(messages), want);
    }
}
