//! Broadcast publish-subscribe ([`shmring::broadcast`]) as a round trip: two
//! topics, one each way (ping: the parent publishes, the child subscribes; pong:
//! the other way), one subscriber each, [`Policy::Gated`],
//! [`WaitStrategy::BusySpin`] on both sides, 4 KiB of data region as the
//! busy-spin row's rings. Its round trip against
//! [`Method::ShmringBusySpin`](super::Method::ShmringBusySpin)'s is what a topic
//! costs over a channel (the subscriber table, the gate, the lap checks).
//!
//! The topics are named (`/dev/shm/shmring.shmring-bench-bc-…`), created by the
//! parent before it spawns the child and removed when the parent's endpoints go:
//! a memfd topic can be published only from its creator's process (its data
//! memfd is sealed against other writers), and the pong topic's publisher is the
//! child.
//!
//! Both sides wait without a deadline, as the busy-spin row does: a side whose
//! peer dies sees `Disconnected`, and the child's watchdog ends a child that stops
//! making progress.

use std::process::Command;

use shmring::broadcast::{BroadcastBuilder, Policy, Publisher, Start, Subscriber};
use shmring::{SegmentBuilder, WaitStrategy};

use super::{Duplex, NAME_VAR, ROUND_TRIP_CAPACITY, Result, env_string, unique_tag};

/// The topics' policy (one subscriber each, one message in flight: the gate never
/// closes).
pub(super) const POLICY: Policy = Policy::Gated;

/// Either side's ends: a publisher on one topic, a subscriber of the other.
pub(super) struct BroadcastDuplex {
    tx: Publisher,
    rx: Subscriber,
}

impl Duplex for BroadcastDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let reached = self.tx.send(msg)?;
        if reached != 1 {
            return Err(format!("a message reached {reached} subscribers, expected 1").into());
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let n = self.rx.recv(buf)?;
        if n != buf.len() {
            return Err(format!("a message of {n} bytes, expected {}", buf.len()).into());
        }
        Ok(())
    }
}

/// The builder of the topic `<base>-<way>`.
fn builder(base: &str, way: &str) -> BroadcastBuilder {
    BroadcastBuilder::shm(format!("{base}-{way}"))
        .capacity(ROUND_TRIP_CAPACITY)
        .policy(POLICY)
        .subscriber_slots(1)
        .prefault(true)
        .wait_strategy(WaitStrategy::BusySpin)
}

/// The parent's ends: creates both topics (their base name in [`NAME_VAR`] for
/// the child), publishes on ping, subscribes to pong.
pub(super) fn parent(command: &mut Command) -> Result<BroadcastDuplex> {
    let base = format!("shmring-bench-bc-{}", unique_tag());
    let ping = builder(&base, "ping").create()?;
    let pong = builder(&base, "pong").create()?;
    command.env(NAME_VAR, &base);
    Ok(BroadcastDuplex {
        tx: ping.publisher()?,
        rx: pong.subscriber(Start::Newest)?,
    })
}

/// The child's ends: opens both topics, subscribes to ping, publishes on pong.
pub(super) fn child() -> Result<BroadcastDuplex> {
    let base = env_string(NAME_VAR)?;
    let ping = builder(&base, "ping").open()?;
    let pong = builder(&base, "pong").open()?;
    Ok(BroadcastDuplex {
        tx: pong.publisher()?,
        rx: ping.subscriber(Start::Newest)?,
    })
}
