//! Claiming a role in a segment's ring: the liveness lock first, then core's claim,
//! or its take-over from a holder that is gone. Here because holding the lock is
//! what makes a take-over sound, and the segment owns both the lock's file and the
//! mapped region the claim points into.

use std::fs::File;
use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use shmring_core::mpmc::layout::{ROLE_CONSUMER, ROLE_PRODUCER};
use shmring_core::{
    Consumer, MpmcConsumer, MpmcProducer, MpmcRegion, MpmcRegisterError, Producer, RawMpmcRegion,
    RawRegion,
};

use super::Segment;
use crate::error::{Error, Result, Role};
use crate::sys::lock;

/// The byte an SPSC role's liveness lock is taken on.
pub(crate) fn lock_offset(role: Role) -> u64 {
    match role {
        Role::Sender => lock::SENDER_LOCK,
        Role::Receiver => lock::RECEIVER_LOCK,
    }
}

/// The owner word of an SPSC role: the token of its holder, 0 if none.
pub(crate) fn owner_word(region: &RawRegion, role: Role) -> u32 {
    use shmring_core::Region as _;
    let control = region.control();
    let word = match role {
        Role::Sender => &control.producer.0.owner,
        Role::Receiver => &control.consumer.0.owner,
    };
    // Relaxed: the claim's compare-exchange in core orders what matters; this value
    // only picks claim or take-over (a stale value makes the claim fail `Taken`).
    word.load(Ordering::Relaxed)
}

/// The token a claim marks its role or entry with: it names the holder for humans
/// (`list_segments`); the lock, not the token, decides liveness, so pid reuse
/// cannot fake it.
fn token() -> NonZeroU32 {
    NonZeroU32::new(std::process::id()).unwrap_or(NonZeroU32::MIN)
}

impl Segment {
    /// Claims the ring's producer side: takes the sender lock through a description
    /// of our own, then claims, or takes over from a holder that is gone. Returns
    /// the producer with the lock's file, which the caller keeps while it does.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] while another live sender holds the lock;
    /// [`Error::Corrupted`]; [`Error::Io`].
    pub(crate) fn claim_producer(&self) -> Result<(Producer<RawRegion>, File)> {
        let (lock, previous) = self.lock_role(Role::Sender)?;
        let region = self.region.clone();
        let claimed = match previous {
            None => Producer::claim(region, token()),
            // SAFETY: `region` is this segment's, mapped while it lives (the caller
            // keeps the producer within the segment's life). We hold the sender lock,
            // which the previous holder held until its description closed: it has
            // exited (or dropped its handle without clearing the word, impossible for
            // a shmring handle), so no handle of this process uses the role.
            Some(previous) => unsafe { Producer::take_over(region, token(), previous) },
        };
        let producer = claimed.map_err(|e| Error::claim(self.describe(), Role::Sender, e))?;
        Ok((producer, lock))
    }

    /// Claims the ring's consumer side, as [`claim_producer`](Self::claim_producer)
    /// the producer's.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] while another live receiver holds the lock;
    /// [`Error::Corrupted`]; [`Error::Io`].
    pub(crate) fn claim_consumer(&self) -> Result<(Consumer<RawRegion>, File)> {
        let (lock, previous) = self.lock_role(Role::Receiver)?;
        let region = self.region.clone();
        let claimed = match previous {
            None => Consumer::claim(region, token()),
            // SAFETY: as in `claim_producer`: the region is this segment's, and
            // holding the receiver lock proves the previous holder gone.
            Some(previous) => unsafe { Consumer::take_over(region, token(), previous) },
        };
        let consumer = claimed.map_err(|e| Error::claim(self.describe(), Role::Receiver, e))?;
        Ok((consumer, lock))
    }

    /// Takes `role`'s liveness lock through a description of our own; returns it
    /// with the role's owner word read under it (`None`: no holder to take over).
    fn lock_role(&self, role: Role) -> Result<(File, Option<NonZeroU32>)> {
        let what = self.describe();
        let file = lock::reopen(self.fd()).map_err(|e| Error::io("reopen", what, e))?;
        let taken = !lock::try_lock(file.as_fd(), lock_offset(role), true)
            .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", what, e))?;
        if taken {
            return Err(Error::RoleTaken {
                role,
                owner: owner_word(&self.region, role),
            });
        }
        Ok((file, NonZeroU32::new(owner_word(&self.region, role))))
    }
}

impl Segment<RawMpmcRegion> {
    /// Registers an MPMC producer in the first entry of the endpoint table no live
    /// endpoint holds, taking the entry over from a dead one. Returns it with the
    /// file holding the entry's lock, which the caller keeps while it does.
    ///
    /// # Errors
    /// [`Error::EndpointTableFull`] while every entry is held; [`Error::Io`].
    pub(crate) fn register_producer(&self) -> Result<(MpmcProducer<RawMpmcRegion>, File)> {
        self.register(
            ROLE_PRODUCER,
            |region, entry, token, previous| match previous {
                None => MpmcProducer::register_at(region, entry, token),
                // SAFETY: `register` calls this with this segment's region (mapped while
                // it lives, and the caller keeps the producer within its life) and with
                // the entry's lock held, which its previous holder held until its
                // description closed: it has exited (a shmring handle clears the owner
                // word before it lets the lock go).
                Some(previous) => unsafe {
                    MpmcProducer::take_over_at(region, entry, token, previous)
                },
            },
        )
    }

    /// Registers an MPMC consumer, as
    /// [`register_producer`](Self::register_producer) a producer.
    ///
    /// # Errors
    /// As [`register_producer`](Self::register_producer).
    pub(crate) fn register_consumer(&self) -> Result<(MpmcConsumer<RawMpmcRegion>, File)> {
        self.register(
            ROLE_CONSUMER,
            |region, entry, token, previous| match previous {
                None => MpmcConsumer::register_at(region, entry, token),
                // SAFETY: as in `register_producer`.
                Some(previous) => unsafe {
                    MpmcConsumer::take_over_at(region, entry, token, previous)
                },
            },
        )
    }

    /// Takes the lock of the first entry no live endpoint holds, through a
    /// description of our own, and registers there with `register` (as a `role`), which it calls
    /// only with that entry's lock held, with the owner word read under it.
    fn register<T>(
        &self,
        role: u32,
        register: impl Fn(
            RawMpmcRegion,
            usize,
            NonZeroU32,
            Option<NonZeroU32>,
        ) -> std::result::Result<T, MpmcRegisterError>,
    ) -> Result<(T, File)> {
        let what = self.describe();
        let file = lock::reopen(self.fd()).map_err(|e| Error::io("reopen", what, e))?;
        let region = &self.region;
        let geometry = region.geometry();
        for entry in 0..geometry.endpoints() {
            let offset = geometry.entry_offset(entry) as u64;
            let locked = lock::try_lock(file.as_fd(), offset, true)
                .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", what, e))?;
            if !locked {
                continue;
            }
            // Acquire pairs with the Release store of the owner word when a holder
            // drops; the value only picks register or take-over (core's CAS decides).
            let previous = region.entry(entry).owner.load(Ordering::Acquire);
            match register(region.clone(), entry, token(), NonZeroU32::new(previous)) {
                Ok(endpoint) => {
                    // Relaxed: informational, for observers.
                    region
                        .entry(entry)
                        .pid
                        .store(std::process::id(), Ordering::Relaxed);
                    debug_assert_eq!(region.entry(entry).role.load(Ordering::Relaxed), role);
                    return Ok((endpoint, file));
                }
                // The owner word changed under our lock: not a shmring endpoint's
                // doing. Leave that entry alone.
                Err(MpmcRegisterError::Taken { .. }) => {
                    lock::unlock(file.as_fd(), offset)
                        .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", what, e))?;
                }
                Err(
                    MpmcRegisterError::TableFull { .. } | MpmcRegisterError::EntryOutOfRange { .. },
                ) => {
                    unreachable!("entry {entry} is below the table size")
                }
            }
        }
        Err(Error::EndpointTableFull {
            what: what.to_owned(),
            endpoints: geometry.endpoints(),
        })
    }
}
