//! The subscribing side: joining (a slot, a starting point, the gated handshake
//! with the publisher's intent), validated copies, `Lagged`, the lazy
//! publication of the cursor, and waiting.

use core::num::NonZeroU32;

use super::layout::SEQ_UNPUBLISHED;
use super::{
    BroadcastCorruption, BroadcastJoinError, BroadcastRecvError, BroadcastRegion, Frame, Geometry,
    Policy, frame_size, load_payload, seq_word, state_word,
};
use crate::spsc::claim::{claim_owner, count_claim, release_owner};
use crate::sync::{AtomicU32, Ordering, fence};
use crate::wait::{ARMED, Futex, Readiness, WAITING, notify, prepare_wait};

/// Positions above this are refused (as the SPSC ring's): far from wrapping.
pub(super) const MAX_POSITION: u64 = u64::MAX - (1 << 32);

/// Frames a call skips or re-reads (padding, a lap) before it reports `Empty`:
/// a bound on a call's work whatever the publisher writes.
const MAX_STEPS: u32 = 64;

/// Where a joining subscriber starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Start {
    /// With the next message published.
    Newest,
    /// With the oldest message the region still holds (the topic's history).
    Oldest,
}

/// One subscriber of a topic, in one slot of its table.
///
/// Made by [`join`](Self::join); leaves (frees the slot) when dropped.
pub struct BroadcastSubscriber<R: BroadcastRegion> {
    pub(super) region: R,
    pub(super) geo: Geometry,
    pub(super) policy: Policy,
    slot: usize,
    token: NonZeroU32,
    /// The next frame to read.
    pub(super) position: u64,
    /// The sequence number the next message must carry.
    pub(super) expected: u64,
    /// Gated: the cursor last stored in our entry.
    published: u64,
    /// Whether our cursor moved since we last woke the publisher.
    unnotified: bool,
    /// Whether we are counted in the table's `waiters`.
    registered: bool,
}

impl<R: BroadcastRegion> core::fmt::Debug for BroadcastSubscriber<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BroadcastSubscriber")
            .field("slot", &self.slot)
            .field("position", &self.position)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// A message the subscriber found at its position (after skips): `len` bytes
/// numbered `seq` at `position`.
pub(super) struct Found {
    pub(super) position: u64,
    pub(super) len: u32,
    pub(super) seq: u64,
}

impl<R: BroadcastRegion> BroadcastSubscriber<R> {
    /// Joins the topic in the first free slot, starting at `start`.
    ///
    /// # Errors
    /// [`BroadcastJoinError::NoFreeSlot`]; `Corrupted` (the slot given back).
    pub fn join(region: R, token: NonZeroU32, start: Start) -> Result<Self, BroadcastJoinError> {
        let slots = region.slots();
        for slot in 0..slots {
            if claim_owner(&region.entry(slot).owner, 0, token).is_ok() {
                return Self::joined(region, slot, 0, token, start);
            }
        }
        Err(BroadcastJoinError::NoFreeSlot { slots })
    }

    /// Joins in `slot`, whose owner word holds `previous` (0 if free; the dead
    /// holder's token when the caller proved it dead), starting at `start`.
    ///
    /// # Errors
    /// [`BroadcastJoinError::SlotTaken`] if the owner word is not `previous`
    /// (or `slot` is out of range: owner 0); `Corrupted`.
    pub fn join_slot(
        region: R,
        slot: usize,
        previous: u32,
        token: NonZeroU32,
        start: Start,
    ) -> Result<Self, BroadcastJoinError> {
        if slot >= region.slots() {
            return Err(BroadcastJoinError::SlotTaken { slot, owner: 0 });
        }
        claim_owner(&region.entry(slot).owner, previous, token)
            .map_err(|owner| BroadcastJoinError::SlotTaken { slot, owner })?;
        if previous != 0 {
            // Relaxed, wrapping: the dead holder's count, a number only.
            region.table().subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        Self::joined(region, slot, previous, token, start)
    }

    /// The join after the slot's claim: the starting point, and under the gated
    /// policies the handshake with the publisher's intent.
    fn joined(
        region: R,
        slot: usize,
        previous: u32,
        token: NonZeroU32,
        start: Start,
    ) -> Result<Self, BroadcastJoinError> {
        let geo = Geometry::of(&region);
        let entry = region.entry(slot);
        count_claim(&entry.claims);
        // Relaxed: informational; a new holder starts not cut off.
        entry.cut_off.store(0, Ordering::Relaxed);
        let (write, oldest) = match published_bounds(&region, geo) {
            Ok(bounds) => bounds,
            Err(c) => {
                release_owner(&entry.owner, previous);
                return Err(BroadcastJoinError::Corrupted(c));
            }
        };
        let mut position = match start {
            Start::Newest => write,
            Start::Oldest => oldest,
        };
        let table = region.table();
        // Relaxed: published by the Release increment of `joins` below.
        entry.cursor.store(position, Ordering::Relaxed);
        // Relaxed, wrapping: a count for the publisher's report.
        table.subscribers.fetch_add(1, Ordering::Relaxed);
        // SYNC: Release pairs with the publisher's Acquire load of `joins` in
        // `gate`: a publisher that sees this join sees our cursor.
        table.joins.fetch_add(1, Ordering::Release);
        // SYNC: SeqCst fence: pairs with the publisher's fence in `gate`
        // (store-buffer pattern): either it sees our join and waits for our
        // cursor, or we see its intent below and start at or past it.
        fence(Ordering::SeqCst);
        if region.policy().waits() {
            // SYNC: Acquire pairs with the publisher's Release store of `intent`
            // in `gate`: the frame at it is visible. Ordered after our `joins`
            // increment by the fence; checked before use.
            let intent = region.oldest().intent.load(Ordering::Acquire);
            if intent > position && intent % 8 == 0 && intent <= MAX_POSITION {
                position = intent;
                // SYNC: Release pairs with the publisher's Acquire load of cursors
                // in `scan`.
                entry.cursor.store(position, Ordering::Release);
            }
        }
        let mut subscriber = Self {
            policy: region.policy(),
            geo,
            slot,
            token,
            position,
            expected: 0,
            published: position,
            unnotified: false,
            registered: false,
            region,
        };
        if let Err(c) = subscriber.find_expected() {
            // Leaves the table as it found it.
            drop(subscriber);
            return Err(BroadcastJoinError::Corrupted(c));
        }
        Ok(subscriber)
    }

    /// The number the frame at our position carries or will carry: its sequence
    /// word, published or marked (moving to `oldest` if we were lapped meanwhile).
    fn find_expected(&mut self) -> Result<(), BroadcastCorruption> {
        for _ in 0..MAX_STEPS {
            let position = self.position;
            if self.geo.no_frame_at(position) {
                self.position += self.geo.tail(position);
                continue;
            }
            // SYNC: Acquire pairs with the publisher's Release store of a
            // sequence word (this frame's, or the one before it, which published
            // this frame's mark).
            let word = seq_word(&self.region, self.geo, position).load(Ordering::Acquire);
            if self.lapped_at(position) {
                continue;
            }
            let seq = word & !SEQ_UNPUBLISHED;
            if seq == 0 || seq == SEQ_UNPUBLISHED - 1 {
                return Err(BroadcastCorruption::BadSequence {
                    position,
                    found: word,
                    expected: 1,
                });
            }
            self.expected = seq;
            return Ok(());
        }
        Err(BroadcastCorruption::BadPosition {
            field: "oldest_position",
            found: self.position,
        })
    }

    /// The slot this subscriber holds in the table.
    #[must_use]
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Largest message the topic carries.
    #[must_use]
    pub fn max_message_len(&self) -> usize {
        self.geo.max_len as usize
    }

    /// The topic's policy.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The sequence number of the next message this subscriber will read.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.expected
    }

    /// Copies the next message into `buf` and returns its length.
    ///
    /// # Errors
    /// [`BroadcastRecvError::Empty`]; `Lagged { missed }` (the next call returns
    /// the oldest message still held); `BufferTooSmall` (the message stays
    /// unread); `Corrupted`.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, BroadcastRecvError> {
        for _ in 0..MAX_STEPS {
            let Found { position, len, seq } = self.next_frame()?;
            let len_usize = len as usize;
            if len_usize > buf.len() {
                if self.lapped_at(position) {
                    continue;
                }
                return Err(BroadcastRecvError::BufferTooSmall {
                    len: len_usize,
                    capacity: buf.len(),
                });
            }
            load_payload(
                &self.region,
                self.geo.offset(position),
                &mut buf[..len_usize],
            );
            if self.lapped_at(position) {
                // Overwritten while we copied: resume at `oldest`.
                continue;
            }
            self.position = position + frame_size(len.into());
            self.expected = seq + 1;
            self.after_read();
            return Ok(len_usize);
        }
        Err(BroadcastRecvError::Empty)
    }

    /// Finds the next message: skips padding and a lapped stretch, reports a gap
    /// (`Lagged`) or `Empty`. Everything it returns was checked intact after it
    /// was read, except the payload, which the caller copies and checks.
    pub(super) fn next_frame(&mut self) -> Result<Found, BroadcastRecvError> {
        for _ in 0..MAX_STEPS {
            let position = self.position;
            if self.geo.no_frame_at(position) {
                self.position += self.geo.tail(position);
                continue;
            }
            // SYNC: Acquire pairs with the publisher's Release store of the
            // sequence word (`store_header`): the state word, the payload and the
            // next frame's mark, stored before it, are visible.
            let seq = seq_word(&self.region, self.geo, position).load(Ordering::Acquire);
            if seq != self.expected {
                if self.resync()? {
                    continue;
                }
                if seq & SEQ_UNPUBLISHED != 0 {
                    // Marked: the frame is not published yet.
                    self.on_empty();
                    return Err(BroadcastRecvError::Empty);
                }
            }
            let word = state_word(&self.region, self.geo, position);
            let frame = self.geo.decode(position, word);
            if let Ok(Frame::Message { len }) = frame
                && seq == self.expected
            {
                // The common case: the caller checks the header with the payload,
                // after its copy.
                return Ok(Found { position, len, seq });
            }
            // The header was read intact only if the frame is still at or above
            // `oldest` after it was read.
            if self.lapped_at(position) {
                continue;
            }
            let frame = frame.map_err(BroadcastRecvError::Corrupted)?;
            let expected = self.expected;
            if seq < expected {
                return Err(BroadcastRecvError::Corrupted(
                    BroadcastCorruption::BadSequence {
                        position,
                        found: seq,
                        expected,
                    },
                ));
            }
            if seq > expected {
                // Past a lap: what lies between was overwritten unread.
                self.expected = seq;
                return Err(BroadcastRecvError::Lagged {
                    missed: seq - expected,
                });
            }
            match frame {
                // Padding carries the next message's number: `expected` stays.
                Frame::Padding { size } => self.position = position + size,
                Frame::Message { len } => return Ok(Found { position, len, seq }),
            }
        }
        Err(BroadcastRecvError::Empty)
    }

    /// If the publisher has moved `oldest` past our position, moves there and
    /// returns `true` (the frame we would read may be overwritten).
    fn resync(&mut self) -> Result<bool, BroadcastRecvError> {
        // Relaxed: a position only; if we move to it, the fence below orders what
        // we read there, and `lapped_at` checks it.
        let oldest = self.region.oldest().oldest_position.load(Ordering::Relaxed);
        if oldest <= self.position {
            return Ok(false);
        }
        if oldest % 8 != 0 || oldest > MAX_POSITION {
            return Err(BroadcastRecvError::Corrupted(
                BroadcastCorruption::BadPosition {
                    field: "oldest_position",
                    found: oldest,
                },
            ));
        }
        // SYNC: Acquire fence: pairs with the publisher's Release store of
        // `oldest_position` (`advance_oldest`): the frame or mark at it is
        // visible to the sequence word load that follows.
        fence(Ordering::Acquire);
        self.position = oldest;
        Ok(true)
    }

    /// After reading the frame at `position`: whether the publisher may have
    /// overwritten it meanwhile (then our position moves to `oldest`).
    #[inline]
    pub(super) fn lapped_at(&mut self, position: u64) -> bool {
        // SYNC: Acquire fence: pairs with the publisher's Release fence after it
        // moves `oldest_position` (`advance_oldest`): if any load above saw a byte
        // written after that fence, the load below sees the new `oldest`.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence.
        let oldest = self.region.oldest().oldest_position.load(Ordering::Relaxed);
        if oldest > position && oldest % 8 == 0 && oldest <= MAX_POSITION {
            // SYNC: Acquire fence: pairs with the publisher's Release store of
            // `oldest_position` (`advance_oldest`): the frame or mark at it is
            // visible to the sequence word load at our new position.
            fence(Ordering::Acquire);
            self.position = oldest;
            true
        } else {
            false
        }
    }

    /// After a message was read: publishes the cursor when the publisher waits,
    /// or a quarter of the region was read since the last publication.
    #[inline]
    pub(super) fn after_read(&mut self) {
        if !self.policy.waits() {
            return;
        }
        // Relaxed: a hint; `wake_publisher`'s fenced check follows every
        // publication that matters.
        let publisher_waits =
            self.region.table().space_signal.load(Ordering::Relaxed) & (WAITING | ARMED) != 0;
        if publisher_waits || self.position - self.published >= self.geo.capacity / 4 {
            self.publish_cursor();
        }
    }

    /// Nothing to read: publish what we read, so the publisher never waits for a
    /// subscriber that has caught up.
    fn on_empty(&mut self) {
        if self.policy.waits() && self.position != self.published {
            self.publish_cursor();
        }
    }

    fn publish_cursor(&mut self) {
        // SYNC: Release pairs with the publisher's Acquire load of the cursor in
        // `scan`: our copies of the frames below happen before its overwrites.
        self.region
            .entry(self.slot)
            .cursor
            .store(self.position, Ordering::Release);
        self.published = self.position;
        self.unnotified = true;
    }

    /// Wakes a gated publisher waiting for room after our cursor moved. Costs
    /// nothing if it did not, else a fence and a load when nobody waits.
    pub fn wake_publisher<F: Futex + ?Sized>(&mut self, futex: &F) {
        if self.unnotified {
            self.unnotified = false;
            notify(&self.region.table().space_signal, futex);
        }
    }

    /// Waits (by `futex`) until a message may be there or `deadline` passes.
    ///
    /// # Errors
    /// [`TimedOut`](crate::TimedOut).
    pub fn wait_for_message<F: Futex + ?Sized>(
        &mut self,
        futex: &F,
        deadline: Option<F::Deadline>,
    ) -> Result<(), crate::TimedOut> {
        loop {
            match self.register_unless_ready(WAITING, futex) {
                None => return Ok(()),
                Some(key) => futex.wait(self.data_signal(), key, deadline)?,
            }
        }
    }

    /// Arms the caller's doorbell for the next message: `Ready` if one may be
    /// there now, else `Armed`, and the publisher's next notification rings it.
    pub fn arm_for_message<F: Futex + ?Sized>(&mut self, futex: &F) -> Readiness {
        match self.register_unless_ready(ARMED, futex) {
            None => Readiness::Ready,
            Some(_) => Readiness::Armed,
        }
    }

    /// This subscriber's `data_signal` word.
    #[must_use]
    pub fn data_signal(&self) -> &AtomicU32 {
        &self.region.entry(self.slot).data_signal
    }

    /// The waiter's side ([`crate::wait`]): counts us in the table's `waiters`
    /// (once, until the next message read), sets `bit` on our signal word, and
    /// checks again. `None` if something may be there; else the key.
    fn register_unless_ready<F: Futex + ?Sized>(&mut self, bit: u32, futex: &F) -> Option<u32> {
        if self.may_be_ready() {
            self.unregister();
            return None;
        }
        self.on_empty();
        self.wake_publisher(futex);
        if !self.registered {
            // Relaxed: the RMW needs only to be in the count's order; its
            // ordering against the re-check comes from `prepare_wait`'s fence.
            self.region.table().waiters.fetch_add(1, Ordering::Relaxed);
            self.registered = true;
        }
        // SYNC: `prepare_wait`'s fence pairs with the publisher's fence in
        // `notify` (`has_waiters`): either it sees our count and our bit, or our
        // re-check sees its sequence word.
        let key = prepare_wait(self.data_signal(), bit, futex);
        if self.may_be_ready() {
            return None;
        }
        Some(key)
    }

    /// Whether a frame may be ready at our position (a published sequence word
    /// we expect, a position behind `write_position`, or a lap to report).
    fn may_be_ready(&self) -> bool {
        let position = self.position;
        if self.geo.no_frame_at(position) {
            return true;
        }
        // Relaxed: a hint; the read loads both again, ordered.
        let seq = seq_word(&self.region, self.geo, position).load(Ordering::Relaxed);
        let oldest = self.region.oldest().oldest_position.load(Ordering::Relaxed);
        seq == self.expected || seq & SEQ_UNPUBLISHED == 0 || oldest > position
    }

    fn unregister(&mut self) {
        if self.registered {
            // Relaxed, wrapping: a hostile value costs the publisher only walks.
            self.region.table().waiters.fetch_sub(1, Ordering::Relaxed);
            self.registered = false;
        }
    }
}

impl<R: BroadcastRegion> Drop for BroadcastSubscriber<R> {
    fn drop(&mut self) {
        self.unregister();
        let table = self.region.table();
        // Relaxed, wrapping: a count.
        table.subscribers.fetch_sub(1, Ordering::Relaxed);
        // A gated publisher waiting for us rescans when it is woken.
        release_owner(&self.region.entry(self.slot).owner, 0);
        let _ = self.token;
    }
}

/// The publisher's `write_position` and `oldest_position`, checked (`oldest` at
/// or below `write`: a publisher lapping as we look makes us look again).
fn published_bounds<R: BroadcastRegion>(
    region: &R,
    geo: Geometry,
) -> Result<(u64, u64), BroadcastCorruption> {
    let mut found = (0, 0);
    for _ in 0..MAX_STEPS {
        // SYNC: Acquire pairs with the publisher's Release store: the frames below
        // and the mark at it are visible, and so is every `oldest` stored before.
        let write = region.positions().write_position.load(Ordering::Acquire);
        // SYNC: Acquire pairs with the publisher's Release store of
        // `oldest_position` (`advance_oldest`): when it is past `write` (below),
        // the frame or mark at it is visible (`joined`'s SeqCst fence, before
        // anything is read there, does it too). Checked against `write`.
        let oldest = region.oldest().oldest_position.load(Ordering::Acquire);
        if write % 8 != 0 || write > MAX_POSITION {
            return Err(BroadcastCorruption::BadPosition {
                field: "write_position",
                found: write,
            });
        }
        if oldest % 8 == 0 && oldest <= write && write - oldest <= geo.capacity {
            return Ok((write, oldest));
        }
        if oldest % 8 == 0 && oldest > write && oldest <= MAX_POSITION {
            // A batch: the publisher moves `oldest` as it laps and stores
            // `write_position` only at the end, so for as long as it is
            // descheduled mid-batch `oldest` is past `write`. Nothing below
            // `oldest` is left, so both starting points are there. (Looking again
            // would not help: the loom model `joiner_during_a_batch_starts_at_oldest`
            // found the retries running out, a false `Corrupted`.)
            return Ok((oldest, oldest));
        }
        found = (write, oldest);
    }
    Err(BroadcastCorruption::BadPosition {
        field: "oldest_position",
        found: found.1,
    })
}
