//! Claiming a role in a segment's ring: the liveness lock first, then core's claim,
//! or its take-over from a holder that is gone. Here because holding the lock is
//! what makes a take-over sound, and the segment owns both the lock's file and the
//! mapped region the claim points into.

use std::fs::File;
use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use shmring_core::mpmc::Liveness;
use shmring_core::mpmc::layout::{ROLE_CONSUMER, ROLE_PRODUCER};
use shmring_core::state::mutex::{OwnerId, RawMutexRegion};
use shmring_core::state::value::{
    RawValueRegion, VALUE_WRITER_LOCK, ValueRegion as _, ValueWriter,
};
use shmring_core::sync::AtomicU32;
use shmring_core::{
    Consumer, MpmcConsumer, MpmcProducer, MpmcRegion, MpmcRegisterError, Producer, RawMpmcRegion,
    RawRegion,
};

use super::{Contents, Segment};
use crate::error::{Error, Result, Role};
use crate::sys::lock::{self, HeldLock};

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

/// Writes this process's pid into a role's pid word after its claim (`held`), or
/// 0 at its release: a hint for observers (`list_objects`), never trusted (layout
/// version 4). Every pid word `shmring` writes goes through here: the SPSC
/// producer's and consumer's (offsets 144 and 272, both ways), a topic
/// publisher's (data segment offset 280, both ways), a published value's
/// writer's (offset 140, both ways), and at the claim an MPMC entry's (core
/// clears it at release) and a subscriber slot's.
pub(crate) fn write_pid(word: &AtomicU32, held: bool) {
    let pid = if held { std::process::id() } else { 0 };
    // Relaxed: informational; written only by the role's holder, under its lock.
    word.store(pid, Ordering::Relaxed);
}

/// The token a claim marks its role or entry with: it names the holder for humans
/// (`list_objects`); the lock, not the token, decides liveness, so pid reuse
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
        self.lock_owned(lock_offset(role), role, || owner_word(&self.region, role))
    }
}

#[allow(
    private_bounds,
    reason = "only this crate makes segments of other contents than a ring"
)]
impl<C: Contents> Segment<C> {
    /// Takes the liveness lock on byte `offset` through a description of our
    /// own; returns it with the role's owner word (`owner`) read under it
    /// (`None`: no holder to take over). [`Error::RoleTaken`] naming `role` while
    /// a live holder has the lock. Every single-holder role's claim goes through
    /// here: the SPSC sender and receiver, a published value's writer.
    pub(crate) fn lock_owned(
        &self,
        offset: u64,
        role: Role,
        owner: impl Fn() -> u32,
    ) -> Result<(File, Option<NonZeroU32>)> {
        let what = self.describe();
        let file = lock::reopen(self.fd()).map_err(|e| Error::io("reopen", what, e))?;
        let taken = !lock::try_lock(file.as_fd(), offset, true)
            .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", what, e))?;
        if taken {
            return Err(Error::RoleTaken {
                role,
                owner: owner(),
            });
        }
        Ok((file, NonZeroU32::new(owner())))
    }
}

impl Segment<RawValueRegion> {
    /// Claims a published value's writer role: takes the writer's lock (byte
    /// [`VALUE_WRITER_LOCK`], the SPSC sender's) through a description of our
    /// own, then claims, or takes over from a holder that is gone, and writes
    /// our pid into the pid word. Returns the writer with the lock's file, which
    /// the caller keeps while it does.
    ///
    /// # Errors
    /// [`Error::RoleTaken`] (role `Sender`) while another live writer holds the
    /// lock; [`Error::Io`].
    pub(crate) fn claim_value_writer(&self) -> Result<(ValueWriter<RawValueRegion>, File)> {
        let control = self.region.control();
        let (lock, previous) = self.lock_owned(VALUE_WRITER_LOCK, Role::Sender, || {
            // Relaxed: only picks claim or take-over; core's compare-exchange
            // decides (a stale value makes the claim fail `Taken`).
            control.writer_owner.load(Ordering::Relaxed)
        })?;
        let region = self.region.clone();
        let claimed = match previous {
            None => ValueWriter::claim(region, token()),
            // SAFETY: we hold the writer lock, which the previous holder held
            // until its description closed: it has exited (a shmring writer
            // clears the owner word before it lets the lock go), so it never
            // writes again.
            Some(previous) => unsafe { ValueWriter::take_over(region, token(), previous) },
        };
        let writer = claimed.map_err(|e| Error::claim(self.describe(), Role::Sender, e))?;
        write_pid(&control.writer_pid, true);
        Ok((writer, lock))
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
    /// description of our own, and registers there with `register` (as a
    /// `role`), which it calls only with that entry's lock held, with the owner
    /// word read under it.
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
        let region = &self.region;
        let geometry = region.geometry();
        let entries =
            (0..geometry.endpoints()).map(|entry| (entry, geometry.entry_offset(entry) as u64));
        let found = self.claim_entry(
            entries,
            // Acquire pairs with the Release store of the owner word when a holder
            // drops; the value only picks register or take-over (core's CAS decides).
            |entry| region.entry(entry).owner.load(Ordering::Acquire),
            |entry, previous| match register(region.clone(), entry, token(), previous) {
                Ok(endpoint) => {
                    write_pid(&region.entry(entry).pid, true);
                    debug_assert_eq!(region.entry(entry).role.load(Ordering::Relaxed), role);
                    Some(endpoint)
                }
                // The owner word changed under our lock: not a shmring endpoint's
                // doing. Leave that entry alone.
                Err(MpmcRegisterError::Taken { .. }) => None,
                Err(
                    MpmcRegisterError::TableFull { .. } | MpmcRegisterError::EntryOutOfRange { .. },
                ) => {
                    unreachable!("entry {entry} is below the table size")
                }
            },
        )?;
        found.ok_or_else(|| Error::EndpointTableFull {
            what: self.describe().to_owned(),
            endpoints: geometry.endpoints(),
        })
    }
}

impl Segment<RawMutexRegion> {
    /// Claims a slot of a shared mutex's table for this handle: the first one no
    /// live handle holds (its liveness lock, byte `256 + 128 i`, first; then
    /// core's claim of its owner word, taking over from a holder whose process
    /// died), and writes our pid into its pid word. Returns the id to lock
    /// with and the held lock, which the caller keeps until after it has given
    /// the slot back ([`RobustLock::release_slot`](shmring_core::state::mutex::RobustLock::release_slot)).
    ///
    /// # Errors
    /// [`Error::SlotsFull`] while every slot is held; [`Error::Io`].
    pub(crate) fn claim_mutex_slot(&self) -> Result<(OwnerId, HeldLock)> {
        let region = &self.region;
        let geometry = region.info().geometry;
        let slots = (0..geometry.slots())
            .filter_map(|slot| geometry.slot_lock_byte(slot).map(|byte| (slot, byte)));
        let lock = region.lock();
        let found = self.claim_entry(
            slots,
            // Relaxed: only picks claim or take-over; core's compare-exchange
            // (Acquire) decides, and a stale value makes it fail `Taken`.
            |slot| region.table()[slot].owner.load(Ordering::Relaxed),
            |slot, previous| {
                // `Taken`: the owner word changed under our lock, not a shmring
                // handle's doing: leave that slot alone. `OutOfRange` cannot
                // happen (the slot is below the table's size, at most 64).
                let id = lock
                    .claim_slot(slot, previous.map_or(0, NonZeroU32::get), token())
                    .ok()?;
                write_pid(&region.table()[slot].pid, true);
                Some(id)
            },
        )?;
        let (id, file) = found.ok_or_else(|| Error::SlotsFull {
            what: self.describe().to_owned(),
            slots: geometry.slots(),
        })?;
        let byte = geometry.slot_lock_byte(id.slot()).unwrap_or_default();
        Ok((id, HeldLock::new(file, byte)))
    }
}

#[allow(
    private_bounds,
    reason = "only this crate makes segments of other contents than a ring"
)]
impl<C: Contents> Segment<C> {
    /// Takes the liveness lock of the first entry of a table that no live holder
    /// has (`entries`: each entry with its lock byte), through a description of
    /// our own, and claims the entry with `claim`, which it calls only with that
    /// entry's lock held, with the entry's owner word (`owner`) read under it
    /// (`None`: free; else a dead holder's token to take over from). A `claim`
    /// that returns `None` (the owner word changed under our lock: not a shmring
    /// holder's doing) leaves that entry, its lock released. `Ok(None)`: every
    /// entry is held. Every table's claim goes through here: MPMC endpoints,
    /// a shared mutex's slots.
    pub(crate) fn claim_entry<T>(
        &self,
        entries: impl Iterator<Item = (usize, u64)>,
        owner: impl Fn(usize) -> u32,
        claim: impl Fn(usize, Option<NonZeroU32>) -> Option<T>,
    ) -> Result<Option<(T, File)>> {
        let what = self.describe();
        let file = lock::reopen(self.fd()).map_err(|e| Error::io("reopen", what, e))?;
        for (entry, offset) in entries {
            let locked = lock::try_lock(file.as_fd(), offset, true)
                .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", what, e))?;
            if !locked {
                continue;
            }
            match claim(entry, NonZeroU32::new(owner(entry))) {
                Some(claimed) => return Ok(Some((claimed, file))),
                None => lock::unlock(file.as_fd(), offset)
                    .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", what, e))?,
            }
        }
        Ok(None)
    }
}

/// A table's liveness locks, as core asks for them (MPMC recovery, the robust
/// lock's death check): entry `i`'s lock on the byte `offset(contents, i)`.
pub(crate) struct EntryLocks<'a, C> {
    segment: &'a Segment<C>,
    offset: fn(&C, usize) -> Option<u64>,
}

impl<'a> EntryLocks<'a, RawMpmcRegion> {
    /// An MPMC ring's endpoint table.
    pub(crate) fn mpmc(segment: &'a Segment<RawMpmcRegion>) -> Self {
        Self {
            segment,
            offset: |region, entry| {
                let geometry = region.geometry();
                (entry < geometry.endpoints()).then(|| geometry.entry_offset(entry) as u64)
            },
        }
    }
}

impl<'a> EntryLocks<'a, RawMutexRegion> {
    /// A shared mutex's slot table.
    pub(crate) fn mutex(segment: &'a Segment<RawMutexRegion>) -> Self {
        Self {
            segment,
            offset: |region, slot| region.info().geometry.slot_lock_byte(slot),
        }
    }
}

#[allow(
    private_bounds,
    reason = "only this crate makes segments of other contents than a ring"
)]
// SAFETY: `is_alive` returns false only when no open file description holds the
// entry's lock. Every shmring holder (an MPMC endpoint, a shared mutex's handle)
// takes that lock (through a description of its own) before it claims the entry
// and keeps it until after it has cleared the entry's owner word (and an MPMC
// endpoint its intent; a mutex handle has no guard left: guards borrow it); a
// description is closed by the kernel only when no descriptor refers to it (the
// process exited, or the holder dropped). So an unlocked entry's past holders
// never touch the segment again. A failed probe, or an entry past the table,
// answers "alive", which is always safe.
unsafe impl<C: Contents> Liveness for EntryLocks<'_, C> {
    fn is_alive(&self, entry: usize) -> bool {
        match (self.offset)(self.segment.contents(), entry) {
            Some(offset) => self.segment.is_role_alive(offset).unwrap_or(true),
            None => true,
        }
    }
}
