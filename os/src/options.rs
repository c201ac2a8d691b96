//! The options every shmring segment has, whatever it holds, and the builder
//! setters that change them, defined once for every builder.
//!
//! Each builder ([`ChannelBuilder`](crate::channel::ChannelBuilder),
//! [`MpmcChannelBuilder`](crate::mpmc::MpmcChannelBuilder),
//! [`EventBuilder`](crate::event::EventBuilder), [`SemaphoreBuilder`](crate::semaphore::SemaphoreBuilder),
//! [`SharedValueBuilder`](crate::state::SharedValueBuilder))
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

use shmring_core::LayoutError;

use crate::blocking::WaitStrategy;
use crate::error::{Error, Result};
use crate::segment::{Backing, SegmentOptions, peek_kind};

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
    /// [`Error::Unsupported`] when it makes an endpoint.
    /// Off: full fences on both sides. A published value honours it too (its
    /// writer notifies on every write); events and semaphores ignore it.
    fn asymmetric_fences(mut self, on: bool) -> Self {
        self.options_mut().asymmetric_fences = on;
        self
    }

    /// How a channel's endpoints wait (default [`WaitStrategy::SpinThenPark`]).
    /// Each process chooses its own. A shared mutex's lock calls retry a held
    /// lock for the spin (at most [`LIVENESS_INTERVAL`](crate::LIVENESS_INTERVAL))
    /// before they sleep. Events, semaphores and published values ignore it:
    /// their waits sleep on the futex at once.
    fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.options_mut().wait = wait;
        self
    }
}

/// How long [`open_or_create`] goes on opening, then creating, while each open
/// finds no object and each create finds the name taken: a broadcast topic's
/// creator between its table and its data segment (a few milliseconds, longer
/// on a loaded machine), a creator that failed after making its name (its
/// cleanup removes the name again), or a remover. As long as `open` waits for a
/// live creator's object to be published.
const OPEN_OR_CREATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// One value an existing object must share with the builder that
/// [`open_or_create`] opened it with: `requested` (the builder's) and `found`
/// (the object's, as its validated header says).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compared {
    pub(crate) field: &'static str,
    pub(crate) requested: u64,
    pub(crate) found: u64,
}

impl Compared {
    pub(crate) fn new(field: &'static str, requested: u64, found: u64) -> Self {
        Self {
            field,
            requested,
            found,
        }
    }
}

/// Every builder's `open_or_create`: opens the object, or creates it if there is
/// none, race-free against any number of processes doing the same.
///
/// The creation is exclusive (`O_CREAT | O_EXCL`): of two racers one creates, and
/// the other's create fails with [`Error::AlreadyExists`] and it opens again (for
/// up to `OPEN_OR_CREATE_PATIENCE`, then that error is returned). An object
/// caught half-way through its creation is waited for by `open` itself
/// (`Segment::open`). An anonymous memfd has no name to open: it is created.
///
/// An opened object is then compared with the builder: `compare` lists the
/// values that must agree (`what` describes the object for the error). An
/// object of another kind or layout version (what `open` reports as
/// [`Error::IncompatibleLayout`], or as [`Error::BadSize`] when the other kind
/// has another size: an event where a channel of `kind` is asked for) and a
/// value that differs are all reported as [`Error::Incompatible`], naming the
/// field and both values.
pub(crate) fn open_or_create<T>(
    options: &SegmentOptions,
    kind: u32,
    open: impl Fn() -> Result<T>,
    create: impl Fn() -> Result<T>,
    what: impl Fn(&T) -> String,
    compare: impl Fn(&T) -> Vec<Compared>,
) -> Result<T> {
    if matches!(options.backing, Backing::Memfd) {
        return create();
    }
    let deadline = std::time::Instant::now() + OPEN_OR_CREATE_PATIENCE;
    loop {
        match open() {
            Ok(opened) => {
                return match compare(&opened)
                    .into_iter()
                    .find(|c| c.requested != c.found)
                {
                    Some(c) => Err(Error::Incompatible {
                        what: what(&opened),
                        field: c.field,
                        requested: c.requested,
                        found: c.found,
                    }),
                    None => Ok(opened),
                };
            }
            Err(Error::NotFound { .. }) => match create() {
                // Another racer made the name between our open and our create:
                // open what it made (or, if it failed and removed the name
                // again, try once more).
                Err(e @ Error::AlreadyExists { .. }) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                created => return created,
            },
            Err(Error::IncompatibleLayout { what, source }) => {
                return Err(incompatible_layout(what, source));
            }
            Err(Error::BadSize {
                what,
                size,
                expected,
            }) => {
                return Err(match peek_kind(options) {
                    Some(found) if found != kind => Error::Incompatible {
                        what,
                        field: "kind",
                        requested: kind.into(),
                        found: found.into(),
                    },
                    _ => Error::BadSize {
                        what,
                        size,
                        expected,
                    },
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// What `open` reports as an incompatible layout, as [`Error::Incompatible`]
/// where the layout error names two values (another kind, another layout
/// version); as it was otherwise (a foreign byte order).
fn incompatible_layout(what: String, source: LayoutError) -> Error {
    let (field, requested, found) = match source {
        LayoutError::WrongKind { found, expected } => ("kind", expected, found),
        LayoutError::UnsupportedVersion { found, supported } => {
            ("layout version", supported, found)
        }
        _ => return Error::IncompatibleLayout { what, source },
    };
    Error::Incompatible {
        what,
        field,
        requested: requested.into(),
        found: found.into(),
    }
}
