//! Request/response ([`shmring::rpc`]) over two shmring channels: the parent's
//! [`RpcClient::call`](shmring::rpc::RpcClient) against the child's
//! [`RpcServer::serve_one`](shmring::rpc::RpcServer), echoing. Its round trip
//! against the bare shmring busy-spin round trip ([`Method::ShmringBusySpin`](super::Method::ShmringBusySpin):
//! the same two channels, the same [`WaitStrategy::BusySpin`]) is the cost of the
//! RPC layer: the 16-byte header each way, the id bookkeeping, the locks, and the
//! `Vec`s the API returns.
//!
//! Both sides wait without a deadline, as the bare shmring row does (a deadline
//! would add a clock read to every call): a side whose peer dies sees
//! `Disconnected`, and the child's watchdog ends a child that stops making
//! progress.

use std::process::Command;

use shmring::rpc::{RpcClient, RpcServer};
use shmring::{Channel, ChannelBuilder, SegmentBuilder, WaitStrategy};

use super::{
    ChildRun, Duplex, FD_A_VAR, FD_B_VAR, ROUND_TRIP_CAPACITY, Result, check_stamp, progress,
};

/// The wait strategy of both channels: the one of the row this one is compared
/// against ([`Method::ShmringBusySpin`](super::Method::ShmringBusySpin)).
const WAIT: WaitStrategy = WaitStrategy::BusySpin;

/// The parent's side: each round trip is one call; `send` makes it, `recv` hands
/// over its response.
pub(super) struct RpcDuplex {
    client: RpcClient,
    response: Vec<u8>,
}

impl Duplex for RpcDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.response = self.client.call(msg)?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        if self.response.len() != buf.len() {
            return Err(format!(
                "a response of {} bytes, expected {}",
                self.response.len(),
                buf.len()
            )
            .into());
        }
        buf.copy_from_slice(&self.response);
        Ok(())
    }
}

/// The parent's client over two fresh channels (requests: parent to child,
/// passed as [`FD_A_VAR`]; responses: child to parent, [`FD_B_VAR`]), and the
/// channels themselves, to drop once the child is spawned.
pub(super) fn parent(command: &mut Command) -> Result<(RpcDuplex, (Channel, Channel))> {
    let builder = ChannelBuilder::memfd()
        .capacity(ROUND_TRIP_CAPACITY)
        .prefault(true)
        .wait_strategy(WAIT);
    let (requests, responses) = (builder.create()?, builder.create()?);
    requests.pass_to(command, FD_A_VAR);
    responses.pass_to(command, FD_B_VAR);
    let client = RpcClient::new(requests.sender()?, responses.receiver()?);
    let duplex = RpcDuplex {
        client,
        response: Vec::new(),
    };
    Ok((duplex, (requests, responses)))
}

/// The child's server over the channels the parent passed.
pub(super) fn child() -> Result<RpcServer> {
    let builder = ChannelBuilder::memfd().prefault(true).wait_strategy(WAIT);
    // SAFETY: the parent passed these two memfds to this child; each variable is
    // taken once.
    let requests = unsafe { builder.from_env(FD_A_VAR) }?.receiver()?;
    // SAFETY: as above.
    let responses = unsafe { builder.from_env(FD_B_VAR) }?.sender()?;
    Ok(RpcServer::new(requests, responses))
}

/// Answers `count` requests with their own bytes, checking that they arrive in
/// sequence (a request out of sequence is answered with an error, which fails the
/// parent's call, and fails the child).
pub(super) fn serve(run: &ChildRun<'_>, mut server: RpcServer) -> Result<()> {
    run.ready();
    let size = run.size;
    for seq in 1..=run.count {
        let mut failed = None;
        server.serve_one(|request: &[u8]| match check_stamp(request, size, seq) {
            Ok(()) => Ok(request.to_vec()),
            Err(e) => {
                let message = e.to_string();
                failed = Some(message.clone());
                Err(message)
            }
        })?;
        if let Some(message) = failed {
            return Err(message.into());
        }
        progress(seq);
    }
    Ok(())
}
