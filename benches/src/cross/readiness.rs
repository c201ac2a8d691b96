//! The readiness rows: round trips with both sides parked in `poll` on their
//! endpoints' readiness descriptors, the way an event loop serves a channel.
//!
//! Two named channels (one each way), so that each has its doorbell FIFOs beside
//! it (a memfd opened from a bare descriptor has none and would fall back to the
//! 25 ms poll): the parent creates them and takes its ends, the child opens them
//! by name ([`NAME_VAR`]). Each side checks that its endpoints have doorbells
//! ([`Wakeups::Doorbell`]): a row never measures the polled fallback by accident.
//!
//! Receiving: `try_recv`; on `Empty`, arm; if `Ready`, try again; if `Armed`,
//! `poll` the descriptor, then try again. Sending: `try_send`; on `Full` the same
//! with `arm_for_space` (one message in flight: it never fills).
//!
//! - `readiness` ([`Method::Readiness`]): the builder's default fences
//!   (asymmetric where `membarrier` is allowed: every arm is a `membarrier`).
//! - `readiness-sym` ([`Method::ReadinessSymmetric`]): `asymmetric_fences(false)`.

use std::process::Command;

use shmring::{ChannelBuilder, Readiness, SegmentBuilder as _, WaitStrategy, Wakeups};

use super::{
    Duplex, Method, NAME_VAR, Patience, ROUND_TRIP_CAPACITY, Result, env_string, unique_tag,
    wait_readable,
};

/// One side's ends of the two channels.
pub(super) struct ReadinessDuplex {
    tx: shmring::Sender,
    rx: shmring::Receiver,
    patience: Patience,
}

fn builder(method: Method, name: &str) -> Result<ChannelBuilder> {
    let asymmetric = match method {
        Method::Readiness => true,
        Method::ReadinessSymmetric => false,
        other => return Err(format!("{} is not a readiness row", other.name()).into()),
    };
    Ok(ChannelBuilder::shm(name)
        .capacity(ROUND_TRIP_CAPACITY)
        .prefault(true)
        .asymmetric_fences(asymmetric)
        // No call here blocks: the strategy is never used.
        .wait_strategy(WaitStrategy::BusySpin))
}

impl ReadinessDuplex {
    fn new(tx: shmring::Sender, rx: shmring::Receiver) -> Result<Self> {
        require_doorbells([("sender", tx.wakeups()), ("receiver", rx.wakeups())])?;
        Ok(Self {
            tx,
            rx,
            patience: Patience::new("the readiness descriptor"),
        })
    }
}

impl Duplex for ReadinessDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(shmring::TrySendError::Full { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            if self.tx.arm_for_space(msg.len())? == Readiness::Armed {
                wait_readable(self.tx.readiness_fd(), &mut self.patience)?;
            }
        }
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        loop {
            match self.rx.try_recv(buf) {
                Ok(n) if n == buf.len() => {
                    self.patience.reset();
                    return Ok(());
                }
                Ok(n) => {
                    return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
                }
                Err(shmring::TryRecvError::Empty) => {}
                Err(e) => return Err(e.into()),
            }
            if self.rx.arm_for_message()? == Readiness::Armed {
                wait_readable(self.rx.readiness_fd(), &mut self.patience)?;
            }
        }
    }
}

/// Fails unless every endpoint named has a doorbell ([`Wakeups::Doorbell`]): a
/// row that waits on readiness descriptors never measures the polled fallback
/// by accident.
pub(super) fn require_doorbells<'a>(
    ends: impl IntoIterator<Item = (&'a str, &'a Wakeups)>,
) -> Result<()> {
    for (what, wakeups) in ends {
        if *wakeups != Wakeups::Doorbell {
            return Err(format!("the {what}'s descriptor is {wakeups}, not a doorbell").into());
        }
    }
    Ok(())
}

/// Creates the two channels (ping: `<name>-a`, parent to child; pong: `<name>-b`),
/// takes the parent's ends and tells the child the name. The names go when the
/// parent's endpoints drop (the child has opened them by then: it says ready
/// after).
pub(super) fn parent(method: Method, command: &mut Command) -> Result<ReadinessDuplex> {
    let name = format!("shmring-bench-ready-{}", unique_tag());
    let ping = builder(method, &format!("{name}-a"))?.create()?;
    let pong = builder(method, &format!("{name}-b"))?.create()?;
    command.env(NAME_VAR, &name);
    ReadinessDuplex::new(ping.sender()?, pong.receiver()?)
}

/// The child's ends, opened by name.
pub(super) fn child(method: Method) -> Result<ReadinessDuplex> {
    let name = env_string(NAME_VAR)?;
    let rx = builder(method, &format!("{name}-a"))?.open()?.receiver()?;
    let tx = builder(method, &format!("{name}-b"))?.open()?.sender()?;
    ReadinessDuplex::new(tx, rx)
}
