//! The `Select` rows: the wake-up of a [`shmring::Select`] over 8 channels
//! against one over a single channel.
//!
//! Channels (memfds passed with their doorbells): one parent → child (the
//! ping, [`FD_A_VAR`]) and [`lanes`] child → parent (the echo, `LANE_VAR_i`).
//! The child waits for the ping in a `Select` over its one channel, then echoes
//! it on the lane the message's number picks ([`lane_of`]: a different one each
//! time, in no order the parent could guess); the parent waits in a `Select`
//! over every lane, takes the message from the one that is ready and checks it
//! came on the lane it should. Both sides are parked in `epoll_wait` every
//! time (one message in flight); a send never waits (the rings never fill).
//!
//! - `select-8` ([`Method::Select8`]): 8 lanes.
//! - `select-1` ([`Method::Select1`]): 1 lane, the reference: the ratio is
//!   what watching 7 more channels costs a wake-up (each wait arms every
//!   channel of the set).

use std::process::Command;

use shmring::{ChannelBuilder, SegmentBuilder as _, Select, TryRecvError};

use super::readiness::require_doorbells;
use super::{ChildRun, Duplex, FD_A_VAR, Method, Plan, Result, RoundTripRun, Run, shm};

/// The lanes of `method`.
fn lanes(method: Method) -> Result<usize> {
    match method {
        Method::Select8 => Ok(8),
        Method::Select1 => Ok(1),
        other => Err(format!("{} is not a Select row", other.name()).into()),
    }
}

/// The variable that passes lane `i`.
fn lane_var(i: usize) -> String {
    format!("SHMRING_BENCH_LANE_{i}")
}

/// The lane message `seq` (its first 8 bytes) is echoed on: a multiplicative
/// hash, so that consecutive messages spread over the lanes in no fixed order.
fn lane_of(msg: &[u8], lanes: usize) -> usize {
    let seq = u64::from_ne_bytes(msg[..8].try_into().expect("messages are at least 8 bytes"));
    ((seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % lanes as u64) as usize
}

/// The parent's side: replies on one channel, waits over every lane.
struct SelectParent<'a> {
    tx: shmring::Sender,
    select: Select<'a>,
    lanes: usize,
}

impl Duplex for SelectParent<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Ok(self.tx.send(msg)?)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        loop {
            let lane = self.select.ready()?;
            let rx = self
                .select
                .receiver(lane)
                .ok_or("the Select returned a source that is not a lane")?;
            match rx.try_recv(buf) {
                Ok(n) if n == buf.len() => {
                    let want = lane_of(buf, self.lanes);
                    if lane != want {
                        return Err(format!("the echo came on lane {lane}, not {want}").into());
                    }
                    return Ok(());
                }
                Ok(n) => {
                    return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
                }
                // A spurious wake-up: wait again.
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Measures `method`'s round trips (as [`super::round_trips`]): creates the
/// channels, passes them to the child, waits over the lanes.
pub(super) fn round_trips(
    run: Run<'_>,
    method: Method,
    command: &mut Command,
    plan: Plan,
) -> Result<RoundTripRun> {
    let lanes = lanes(method)?;
    let builder = shm::round_trip_builder(method);
    let ping = builder.create()?;
    ping.pass_to(command, FD_A_VAR);
    let mut channels = Vec::with_capacity(lanes);
    for i in 0..lanes {
        let lane = builder.create()?;
        lane.pass_to(command, &lane_var(i));
        channels.push(lane);
    }
    let tx = ping.sender()?;
    let mut rxs = channels
        .iter()
        .map(|c| c.receiver())
        .collect::<shmring::Result<Vec<_>>>()?;
    require_doorbells(
        std::iter::once(("ping sender", tx.wakeups()))
            .chain(rxs.iter().map(|rx| ("lane receiver", rx.wakeups()))),
    )?;
    let mut select = Select::new()?;
    for rx in &mut rxs {
        select.recv(rx)?;
    }
    let child = super::ChildGuard::spawn(command)?;
    drop((ping, channels));
    run.drive(SelectParent { tx, select, lanes }, child, plan)
}

/// The child's ends, opened before its watchdog starts (opening changes the
/// environment).
pub(super) struct ChildEnds {
    rx: shmring::Receiver,
    lanes: Vec<shmring::Sender>,
}

/// Opens the child's ends of `method`'s channels.
pub(super) fn child_ends(method: Method) -> Result<ChildEnds> {
    let builder = ChannelBuilder::memfd().prefault(true);
    // SAFETY: the parent passed this memfd (and its doorbells) to this child;
    // the variable is taken once.
    let rx = unsafe { builder.from_env(FD_A_VAR) }?.receiver()?;
    let mut senders = Vec::new();
    for i in 0..lanes(method)? {
        // SAFETY: as above, one variable a lane.
        let lane = unsafe { builder.from_env(&lane_var(i)) }?;
        senders.push(lane.sender()?);
    }
    require_doorbells(
        std::iter::once(("ping receiver", rx.wakeups()))
            .chain(senders.iter().map(|tx| ("lane sender", tx.wakeups()))),
    )?;
    Ok(ChildEnds { rx, lanes: senders })
}

/// The child's side: waits for the ping in a `Select` over its channel, echoes
/// on the lane the message picks.
struct SelectChild<'a> {
    lanes: Vec<shmring::Sender>,
    select: Select<'a>,
}

impl Duplex for SelectChild<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let lane = lane_of(msg, self.lanes.len());
        Ok(self.lanes[lane].send(msg)?)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        loop {
            let index = self.select.ready()?;
            let rx = self
                .select
                .receiver(index)
                .ok_or("the Select returned a source that is not the ping's")?;
            match rx.try_recv(buf) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => {
                    return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
                }
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Serves the child's side of the run.
pub(super) fn serve(run: &ChildRun<'_>, ends: ChildEnds) -> Result<()> {
    let ChildEnds { mut rx, lanes } = ends;
    let mut select = Select::new()?;
    select.recv(&mut rx)?;
    run.serve(SelectChild { lanes, select })
}
