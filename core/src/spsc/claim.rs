//! The owner words: how a producer or consumer claims its side of a ring, counts
//! the claim, and gives the side back.

use core::num::NonZeroU32;

use crate::sync::{AtomicU32, Ordering};

/// Claims a role: moves its owner word from `previous` (0: unclaimed) to `token`.
/// The SPSC and broadcast rings' roles and the broadcast table's slots.
///
/// # Errors
/// The owner word's value if it was not `previous`.
pub(crate) fn claim_owner(owner: &AtomicU32, previous: u32, token: NonZeroU32) -> Result<(), u32> {
    // SYNC: Acquire pairs with the Release store in `release_owner`: what the
    // previous holder wrote (frames, positions, RELEASED marks) is visible to the
    // claimant's recovery.
    match owner.compare_exchange(previous, token.get(), Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Ok(()),
        Err(found) => Err(found),
    }
}

/// Counts a successful claim in the role's `claims` word, so that an observer can
/// tell "the peer has gone" from "no peer yet".
pub(crate) fn count_claim(claims: &AtomicU32) {
    // Relaxed: a statistic read by observers; the liveness mechanism that pairs it
    // with "no holder now" (the `shmring` crate's locks) orders it by system calls.
    claims.fetch_add(1, Ordering::Relaxed);
}

/// Gives a role back: stores `value` (0, or the previous holder's token when a
/// claim is abandoned) into its owner word.
pub(crate) fn release_owner(owner: &AtomicU32, value: u32) {
    // SYNC: Release pairs with the Acquire compare-exchange in `claim_owner`.
    owner.store(value, Ordering::Release);
}
