//! The fan-out's iceoryx2 rows (cargo feature `iceoryx2`): one publish-subscribe
//! service, `u64` payloads (the message's number), one publisher (the parent)
//! and 1, 2 or 4 subscriber processes, no history, a buffer of [`BUFFER`]
//! samples per subscriber. "gated": no safe overflow, the publisher's
//! backpressure strategy `RetryUntilDelivered` (it waits for room in every
//! subscriber's buffer); "lossy": safe overflow (the oldest sample of a full
//! buffer is replaced). iceoryx2 sends sample by sample (`send_copy`); its
//! subscribers poll (`receive`), yielding the CPU (`sched_yield`) when nothing is
//! there, since three or more processes cannot all spin on two CPUs.
//!
//! A subscriber's loss is the gaps it sees in the numbers (iceoryx2 does not
//! report them); a gated row must have none.

use std::hint::spin_loop;
use std::process::Command;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as Factory;

use super::fanout::Tally;
use super::{NAME_VAR, Patience, Result, env_string, progress, unique_tag};
use shmring::broadcast::Policy;

/// Samples each subscriber's buffer holds (the shmring topic's 64 KiB hold 4096
/// frames of an 8-byte message).
pub(super) const BUFFER: usize = 4096;

type Service = ipc::Service;

fn node() -> Result<Node<Service>> {
    Ok(NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Service>()?)
}

fn service(
    node: &Node<Service>,
    name: &str,
    policy: Policy,
    subscribers: usize,
    create: bool,
) -> Result<Factory<Service, u64, ()>> {
    let name: ServiceName = name.try_into()?;
    let builder = node
        .service_builder(&name)
        .publish_subscribe::<u64>()
        .max_publishers(1)
        .max_subscribers(subscribers)
        .history_size(0)
        .subscriber_max_buffer_size(BUFFER)
        .enable_safe_overflow(policy != Policy::Gated);
    Ok(if create {
        builder.create()?
    } else {
        builder.open()?
    })
}

/// The parent's publisher and what it needs alive; the service's name goes in
/// [`NAME_VAR`] of every child's command.
pub(super) struct IoxPublisher {
    publisher: Publisher<Service, u64, ()>,
    service: Factory<Service, u64, ()>,
    _node: Node<Service>,
}

impl IoxPublisher {
    /// Creates the service and the publisher.
    pub(super) fn create(policy: Policy, subscribers: usize) -> Result<(Self, String)> {
        // A child killed on an error path leaves its node's resources behind.
        Node::<Service>::try_cleanup_dead_nodes(Config::global_config());
        let node = node()?;
        let name = format!("shmring-bench/fan-out/{}", unique_tag());
        let service = service(&node, &name, policy, subscribers, true)?;
        let publisher = service
            .publisher_builder()
            .backpressure_strategy(if policy == Policy::Gated {
                BackpressureStrategy::RetryUntilDelivered
            } else {
                BackpressureStrategy::DiscardData
            })
            .create()?;
        Ok((
            Self {
                publisher,
                service,
                _node: node,
            },
            name,
        ))
    }

    /// Subscribers attached now.
    pub(super) fn subscribers(&self) -> usize {
        self.service.dynamic_config().number_of_subscribers()
    }

    /// Publishes the numbers 0..`count`, one sample each.
    pub(super) fn publish(&mut self, count: u64) -> Result<()> {
        for seq in 0..count {
            self.publisher.send_copy(seq)?;
        }
        Ok(())
    }
}

/// Tells the child in `command` which service to subscribe to.
pub(super) fn pass_to(command: &mut Command, name: &str) {
    command.env(NAME_VAR, name);
}

/// A subscriber child's end.
pub(super) struct IoxSubscriber {
    subscriber: Subscriber<Service, u64, ()>,
    policy: Policy,
    _service: Factory<Service, u64, ()>,
    _node: Node<Service>,
}

impl IoxSubscriber {
    /// Opens the service named in [`NAME_VAR`] and subscribes.
    pub(super) fn open(policy: Policy, subscribers: usize) -> Result<Self> {
        let node = node()?;
        let name = env_string(NAME_VAR)?;
        let service = service(&node, &name, policy, subscribers, false)?;
        Ok(Self {
            subscriber: service.subscriber_builder().create()?,
            policy,
            _service: service,
            _node: node,
        })
    }

    /// Receives messages 0..`count`, checking each: numbers only grow; a gap is a
    /// loss (an error when gated).
    pub(super) fn receive(&mut self, count: u64) -> Result<Tally> {
        let mut tally = Tally::default();
        let mut next = 0u64;
        let mut patience = Patience::new("the next iceoryx2 sample");
        while next < count {
            let Some(sample) = self.subscriber.receive()? else {
                patience.tick()?;
                spin_loop();
                std::thread::yield_now();
                continue;
            };
            patience.reset();
            let seq = *sample.payload();
            drop(sample);
            if seq < next || seq >= count {
                return Err(format!("sample {seq} where {next} was due").into());
            }
            if seq > next {
                if self.policy == Policy::Gated {
                    return Err(format!("gated: sample {seq} where {next} was due").into());
                }
                tally.note_missed(next, seq - next);
            }
            tally.note_received(seq);
            next = seq + 1;
            progress(next);
        }
        Ok(tally)
    }
}
