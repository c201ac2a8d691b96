//! iceoryx2 publish-subscribe (cargo feature `iceoryx2`): one service each way,
//! `[u8; N]` payloads, one publisher and one subscriber each, no history, a
//! subscriber buffer of one sample; both sides poll (`receive` in a spin loop),
//! as iceoryx2's own benchmark does. Unlike that benchmark (two threads of one
//! process), the two sides here are the two processes of every other method.

use std::hint::spin_loop;
use std::process::Command;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use super::{
    ChildGuard, ChildRun, Duplex, MEDIUM, NAME_VAR, Patience, Plan, Result, RoundTripRun, Run,
    SMALL, env_string, unique_tag,
};

type Factory<const N: usize> = PortFactory<ipc::Service, [u8; N], ()>;

struct IoxDuplex<const N: usize> {
    publisher: Publisher<ipc::Service, [u8; N], ()>,
    subscriber: Subscriber<ipc::Service, [u8; N], ()>,
    patience: Patience,
    // The services and the node outlive the ports (field order is drop order).
    _services: (Factory<N>, Factory<N>),
    _node: Node<ipc::Service>,
}

impl<const N: usize> Duplex for IoxDuplex<N> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let payload: [u8; N] = msg.try_into()?;
        let sample = self.publisher.loan_uninit()?.write_payload(payload);
        if sample.send()? == 0 {
            return Err("iceoryx2: no subscriber received the sample".into());
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        loop {
            if let Some(sample) = self.subscriber.receive()? {
                buf.copy_from_slice(sample.payload());
                self.patience.reset();
                return Ok(());
            }
            self.patience.tick()?;
            spin_loop();
        }
    }
}

fn node() -> Result<Node<ipc::Service>> {
    Ok(NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()?)
}

/// The service `<base>/<name>`: created by the parent, opened by the child.
fn service<const N: usize>(
    node: &Node<ipc::Service>,
    base: &str,
    name: &str,
    create: bool,
) -> Result<Factory<N>> {
    let name: ServiceName = format!("{base}/{name}").as_str().try_into()?;
    let builder = node
        .service_builder(&name)
        .publish_subscribe::<[u8; N]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1);
    Ok(if create {
        builder.create()?
    } else {
        builder.open()?
    })
}

/// The parent's side: creates both services and its ports, then spawns the child.
pub(super) fn round_trips(run: Run<'_>, command: &mut Command, plan: Plan) -> Result<RoundTripRun> {
    match run.size {
        SMALL => parent::<SMALL>(run, command, plan),
        MEDIUM => parent::<MEDIUM>(run, command, plan),
        size => Err(format!("iceoryx2: no payload type for {size}-byte messages").into()),
    }
}

fn parent<const N: usize>(run: Run<'_>, command: &mut Command, plan: Plan) -> Result<RoundTripRun> {
    // A child killed on an error path leaves its node's resources behind: remove
    // those of dead nodes first.
    Node::<ipc::Service>::try_cleanup_dead_nodes(Config::global_config());
    let node = node()?;
    let base = format!("shmring-bench/{}", unique_tag());
    let ping = service::<N>(&node, &base, "ping", true)?;
    let pong = service::<N>(&node, &base, "pong", true)?;
    let duplex = IoxDuplex {
        publisher: ping.publisher_builder().create()?,
        subscriber: pong.subscriber_builder().create()?,
        patience: Patience::new("the iceoryx2 echo"),
        _services: (ping, pong),
        _node: node,
    };
    command.env(NAME_VAR, &base);
    let child = ChildGuard::spawn(command)?;
    // The child says ready once its subscriber exists: the first ping reaches it.
    run.drive(duplex, child, plan)
}

/// The child's side: opens both services, subscribes to the pings, publishes the
/// echoes.
pub(super) fn serve(run: &ChildRun<'_>) -> Result<()> {
    match run.size {
        SMALL => child::<SMALL>(run),
        MEDIUM => child::<MEDIUM>(run),
        size => Err(format!("iceoryx2: no payload type for {size}-byte messages").into()),
    }
}

fn child<const N: usize>(run: &ChildRun<'_>) -> Result<()> {
    let node = node()?;
    let base = env_string(NAME_VAR)?;
    let ping = service::<N>(&node, &base, "ping", false)?;
    let pong = service::<N>(&node, &base, "pong", false)?;
    run.serve(IoxDuplex {
        publisher: pong.publisher_builder().create()?,
        subscriber: ping.subscriber_builder().create()?,
        patience: Patience::new("the next iceoryx2 ping"),
        _services: (ping, pong),
        _node: node,
    })
}
