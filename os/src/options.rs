//! The options every shmring segment has, whatever it holds, and the builder
//! setters that change them, defined once for every builder.
//!
//! Each builder ([`ChannelBuilder`](crate::channel::ChannelBuilder),
//! [`MpmcChannelBuilder`](crate::mpmc::MpmcChannelBuilder),
//! [`EventBuilder`](crate::event::EventBuilder), [`SemaphoreBuilder`](crate::semaphore::SemaphoreBuilder))
//! holds one [`SegmentOptions`] beside what is its own (a ring's size, a
//! semaphore's count) and implements [`SegmentBuilder`], whose provided methods
//! are the shared setters:
//!
//! ```no_run
//! use shmring::{EventBuilder, SegmentBuilder};
//! # fn main() -> shmring::Result<()> {
//! let event = EventBuilder::shm("ready").mode(0o640).reclaim(true).create()?;
//! # Ok(()) }
//! ```

use crate::blocking::WaitStrategy;
use crate::segment::SegmentOptions;

/// The setters every shmring builder shares, over its [`SegmentOptions`]: bring
/// the trait into scope (`use shmring::SegmentBuilder;`) to call them.
///
/// A builder implements the two required methods; the setters are provided.
pub trait SegmentBuilder: Sized {
    /// The builder's segment options.
    fn options(&self) -> &SegmentOptions;

    /// The builder's segment options, for the provided setters.
    fn options_mut(&mut self) -> &mut SegmentOptions;

    /// Permission bits of a created named segment or file (default `0o600`), set
    /// with `fchmod` after creation so the umask does not change them. A memfd is
    /// always `0o666`: it has no name, only holders of its descriptor reach it, and
    /// each handle reopens it through `/proc/self/fd` for a lock of its own, which
    /// the mode would otherwise refuse to a holder of another uid.
    fn mode(mut self, mode: u32) -> Self {
        self.options_mut().mode = mode;
        self
    }

    /// On open, accept a segment whose permission bits lie within `mode` (default
    /// `0o644`: nobody but the owner may write it).
    fn allow_mode(mut self, mode: u32) -> Self {
        self.options_mut().allowed_mode = mode;
        self
    }

    /// On open, accept a segment owned by `uid` (default: only our own effective
    /// uid).
    fn trust_owner(mut self, uid: u32) -> Self {
        self.options_mut().owner = Some(uid);
        self
    }

    /// Let `create` replace an existing segment of the same name whose handles
    /// are all dead (left behind by a crash). A segment with any live handle is
    /// never replaced. Reclaiming a file discards what it held.
    fn reclaim(mut self, reclaim: bool) -> Self {
        self.options_mut().reclaim = reclaim;
        self
    }

    /// Whether the creator removes the name (or file) when its last handle drops
    /// (default: yes for shared memory, no for files).
    fn unlink_on_drop(mut self, unlink: bool) -> Self {
        self.options_mut().unlink_on_drop = Some(unlink);
        self
    }

    /// Map with `MAP_POPULATE`, so the first accesses take no page faults (costs
    /// the time to fault in the whole segment at creation or opening).
    fn prefault(mut self, prefault: bool) -> Self {
        self.options_mut().prefault = prefault;
        self
    }

    /// Whether a created channel (SPSC or MPMC) uses the asymmetric fence pair
    /// (default: yes, where the kernel allows it): an endpoint's check for a
    /// parked peer then costs a compiler fence instead of a full fence per
    /// message, and a call that parks pays a `membarrier` system call (a barrier
    /// on every CPU running a process of the channel) instead. Every process that
    /// uses the channel must then be allowed `membarrier`; one that is not gets
    /// [`Error::Unsupported`](crate::error::Error::Unsupported) when it makes an endpoint.
    /// Off: full fences on both sides. Events and semaphores ignore it.
    fn asymmetric_fences(mut self, on: bool) -> Self {
        self.options_mut().asymmetric_fences = on;
        self
    }

    /// How a channel's endpoints wait (default [`WaitStrategy::SpinThenPark`]).
    /// Each process chooses its own. Events and semaphores ignore it: their waits
    /// sleep on the futex at once.
    fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.options_mut().wait = wait;
        self
    }
}
