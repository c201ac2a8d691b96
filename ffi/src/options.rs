//! What every C options struct (`shmring_channel_options`, `shmring_sync_options`)
//! says about its segment, checked once, and the one function that applies it to
//! any builder (`shmring::SegmentBuilder`).

use shmring::{SegmentBuilder, WaitStrategy};

use std::time::Duration;

use crate::channel::shmring_wait_strategy;
use crate::channel::{
    SHMRING_OPTION_KEEP, SHMRING_OPTION_PREFAULT, SHMRING_OPTION_RECLAIM,
    SHMRING_OPTION_SYMMETRIC_FENCES, SHMRING_OPTION_TRUST_OWNER, SHMRING_OPTION_UNLINK,
};
use crate::status::Failure;

/// The wait strategy a C options struct names: a `shmring_wait_strategy` value,
/// and for spin-then-park the spin in nanoseconds (0: the default).
pub(crate) fn wait_strategy(value: u32, spin_ns: u64) -> Result<WaitStrategy, Failure> {
    match value {
        x if x == shmring_wait_strategy::WAIT_SPIN_THEN_PARK as u32 => Ok(if spin_ns == 0 {
            WaitStrategy::default()
        } else {
            WaitStrategy::SpinThenPark {
                spin: Duration::from_nanos(spin_ns),
            }
        }),
        x if x == shmring_wait_strategy::WAIT_BUSY_SPIN as u32 => Ok(WaitStrategy::BusySpin),
        x if x == shmring_wait_strategy::WAIT_PARK as u32 => Ok(WaitStrategy::Park),
        other => Err(Failure::invalid(format!("unknown wait strategy {other}"))),
    }
}

/// The segment options of a C options struct, checked: `SHMRING_OPTION_*` flags,
/// modes (0: the default), the trusted uid, and a wait strategy where the struct
/// has one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentSettings {
    flags: u32,
    mode: u32,
    allowed_mode: u32,
    trusted_uid: u32,
    wait: Option<WaitStrategy>,
}

impl SegmentSettings {
    /// Checks the fields every options struct has: only flags of `known` (an
    /// unknown one is refused, `for_what` ending the message), not both
    /// `SHMRING_OPTION_KEEP` and `SHMRING_OPTION_UNLINK`, modes within `07777`.
    pub(crate) fn check(
        flags: u32,
        known: u32,
        for_what: &str,
        mode: u32,
        allowed_mode: u32,
        trusted_uid: u32,
    ) -> Result<Self, Failure> {
        if flags & !known != 0 {
            return Err(Failure::invalid(format!(
                "unknown option flags {:#x}{for_what}",
                flags & !known
            )));
        }
        if flags & SHMRING_OPTION_KEEP != 0 && flags & SHMRING_OPTION_UNLINK != 0 {
            return Err(Failure::invalid(
                "SHMRING_OPTION_KEEP and SHMRING_OPTION_UNLINK together",
            ));
        }
        for (field, mode) in [("mode", mode), ("allowed_mode", allowed_mode)] {
            if mode > 0o7777 {
                return Err(Failure::invalid(format!(
                    "{field} {mode:#o} has bits beyond 07777"
                )));
            }
        }
        Ok(Self {
            flags,
            mode,
            allowed_mode,
            trusted_uid,
            wait: None,
        })
    }

    /// With the wait strategy `wait` (a channel's options have one).
    pub(crate) fn waiting(self, wait: WaitStrategy) -> Self {
        Self {
            wait: Some(wait),
            ..self
        }
    }

    /// `builder` with these settings applied; what they leave at 0 or unset keeps
    /// the builder's default.
    pub(crate) fn apply<B: SegmentBuilder>(&self, builder: B) -> B {
        let flag = |bit: u32| self.flags & bit != 0;
        let mut builder = builder
            .reclaim(flag(SHMRING_OPTION_RECLAIM))
            .asymmetric_fences(!flag(SHMRING_OPTION_SYMMETRIC_FENCES))
            .prefault(flag(SHMRING_OPTION_PREFAULT));
        if flag(SHMRING_OPTION_KEEP) || flag(SHMRING_OPTION_UNLINK) {
            builder = builder.unlink_on_drop(flag(SHMRING_OPTION_UNLINK));
        }
        if self.mode != 0 {
            builder = builder.mode(self.mode);
        }
        if self.allowed_mode != 0 {
            builder = builder.allow_mode(self.allowed_mode);
        }
        if flag(SHMRING_OPTION_TRUST_OWNER) {
            builder = builder.trust_owner(self.trusted_uid);
        }
        if let Some(wait) = self.wait {
            builder = builder.wait_strategy(wait);
        }
        builder
    }
}
