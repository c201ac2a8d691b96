//! The publishing side: claims, recovery after a dead publisher, frames, moving
//! `oldest_position`, the gated scan of the subscriber table, cut-off and freeing
//! dead subscribers' slots, and the notification of waiting subscribers.

use core::num::NonZeroU32;

use super::layout::{MAX_SUBSCRIBERS, SEQ_UNPUBLISHED};
use super::{
    BroadcastClaimError, BroadcastCorruption, BroadcastPublishError, BroadcastRegion, Frame,
    Geometry, HEADER, Policy, frame_size, header_first_word, seq_word, state_word, store_payload,
};
use crate::spsc::claim::{claim_owner, count_claim, release_owner};
use crate::spsc::layout::{FRAME_COMMITTED, FRAME_PADDING};
use crate::sync::{Ordering, fence};
use crate::wait::{ARMED, Futex, Readiness, has_waiters, notify_seen, prepare_wait};

/// The one publisher of a topic.
///
/// Made by [`claim`](Self::claim); gives the claim back when dropped.
pub struct BroadcastPublisher<R: BroadcastRegion> {
    pub(super) region: R,
    pub(super) geo: Geometry,
    policy: Policy,
    token: NonZeroU32,
    /// End of what we published: our `write_position`.
    write: u64,
    /// The next message's sequence number.
    seq: u64,
    /// Our `oldest_position`.
    oldest: u64,
    /// Gated: the slowest cursor at the last scan (a lower bound of every
    /// included subscriber's cursor now: cursors only move forward).
    slowest: u64,
    /// Gated: the slot that held `slowest`.
    slowest_slot: usize,
    /// Gated: the table's `joins` at the last scan.
    joins_seen: u32,
    /// Gated: whether a scan has run since the claim.
    scanned: bool,
    /// Slots cut off, with the entry's `claims` count when they were: a new
    /// holder of the slot (another count) is not cut off. In our own memory, where
    /// no subscriber can clear it.
    cut_off: [Option<u32>; MAX_SUBSCRIBERS],
    /// Published since the last notification.
    unnotified: bool,
}

impl<R: BroadcastRegion> core::fmt::Debug for BroadcastPublisher<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BroadcastPublisher")
            .field("policy", &self.policy)
            .field("write", &self.write)
            .field("seq", &self.seq)
            .field("oldest", &self.oldest)
            .finish_non_exhaustive()
    }
}

impl<R: BroadcastRegion> BroadcastPublisher<R> {
    /// Claims the publisher's role of a topic whose owner word holds `previous`
    /// (0 if free; the dead holder's token when the caller proved it dead) and
    /// recovers where the last publisher stopped: every frame it published
    /// (sequence word stored) is kept, the one it had begun is overwritten.
    ///
    /// # Errors
    /// [`BroadcastClaimError::Taken`] if the owner word is not `previous`;
    /// `Corrupted` (the claim given back) if the publisher's lines or
    /// frames are impossible.
    pub fn claim_from(
        region: R,
        previous: u32,
        token: NonZeroU32,
    ) -> Result<Self, BroadcastClaimError> {
        let line = region.oldest();
        claim_owner(&line.owner, previous, token)
            .map_err(|owner| BroadcastClaimError::Taken { owner })?;
        let geo = Geometry::of(&region);
        let mut publisher = Self {
            geo,
            policy: region.policy(),
            token,
            write: 0,
            seq: 0,
            oldest: 0,
            slowest: 0,
            slowest_slot: 0,
            joins_seen: 0,
            scanned: false,
            cut_off: [None; MAX_SUBSCRIBERS],
            unnotified: false,
            region,
        };
        if let Err(corruption) = publisher.recover() {
            release_owner(&publisher.region.oldest().owner, previous);
            // Not dropped: the drop would release the claim a second time.
            core::mem::forget(publisher);
            return Err(BroadcastClaimError::Corrupted(corruption));
        }
        count_claim(&publisher.region.oldest().claims);
        // Relaxed: a hint for subscribers and tools (ordered by the claim's
        // system calls in the `shmring` crate where it matters).
        publisher
            .region
            .oldest()
            .epoch
            .fetch_add(1, Ordering::Relaxed);
        Ok(publisher)
    }

    /// [`claim_from`](Self::claim_from) a free topic.
    ///
    /// # Errors
    /// As [`claim_from`](Self::claim_from).
    pub fn claim(region: R, token: NonZeroU32) -> Result<Self, BroadcastClaimError> {
        Self::claim_from(region, 0, token)
    }

    /// Reads the last publisher's lines, checks them, and walks on past frames it
    /// published after its last `write_position` store.
    fn recover(&mut self) -> Result<(), BroadcastCorruption> {
        let positions = self.region.positions();
        let line = self.region.oldest();
        // Relaxed: the claim's Acquire ordered the previous holder's release (or,
        // after a death, the `shmring` crate's lock system calls did).
        let write = positions.write_position.load(Ordering::Relaxed);
        let published = positions.write_seq.load(Ordering::Relaxed);
        let oldest = line.oldest_position.load(Ordering::Relaxed);
        let bad = |field, found| BroadcastCorruption::BadPosition { field, found };
        if write % 8 != 0 || write > super::subscriber::MAX_POSITION {
            return Err(bad("write_position", write));
        }
        if published >= SEQ_UNPUBLISHED - 1 {
            return Err(bad("write_seq", published));
        }
        if oldest % 8 != 0 || oldest > write || write - oldest > self.geo.capacity {
            return Err(bad("oldest_position", oldest));
        }
        self.write = write;
        self.seq = published + 1;
        self.oldest = oldest;
        // Frames published (sequence word stored) past the last write_position.
        let mut walked = 0;
        while walked < self.geo.capacity {
            if self.geo.no_frame_at(self.write) {
                let skip = self.geo.tail(self.write);
                if self.write + skip - self.oldest > self.geo.capacity {
                    break;
                }
                self.write += skip;
                walked += skip;
                continue;
            }
            // Acquire: pairs with the Release store of the sequence word: the
            // frame's state word and payload were written before it.
            let found = seq_word(&self.region, self.geo, self.write).load(Ordering::Acquire);
            if found != self.seq || self.write - self.oldest >= self.geo.capacity {
                break;
            }
            let word = state_word(&self.region, self.geo, self.write);
            let size = match self.geo.decode(self.write, word) {
                Ok(Frame::Message { len }) => {
                    self.seq += 1;
                    frame_size(len.into())
                }
                Ok(Frame::Padding { size }) => size,
                // A frame being written when its publisher died: overwritten.
                Err(_) => break,
            };
            if self.write + size - self.oldest > self.geo.capacity {
                break;
            }
            self.write += size;
            walked += size;
        }
        if self.geo.no_frame_at(self.write) {
            self.write += self.geo.tail(self.write);
        }
        // The next frame's mark (the dead publisher stored it, unless it died
        // while overwriting): published with our next frame's sequence word.
        self.mark(self.write, self.seq);
        self.store_positions();
        let intent = line.intent.load(Ordering::Relaxed);
        if intent < self.oldest || intent > self.write {
            line.intent.store(self.oldest, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Largest message the topic carries.
    #[must_use]
    pub fn max_message_len(&self) -> usize {
        self.geo.max_len as usize
    }

    /// Size of the data region.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.geo.capacity as usize
    }

    /// The topic's policy.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The sequence number the next message will carry (one more than the
    /// messages published on this topic so far, by every publisher).
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Publishes `message` to every subscriber: on a lossy topic at once; on a
    /// gated or strict one if no live subscriber it waits for still has to read
    /// the frames it overwrites. Returns the number of subscribers joined (a
    /// dead one counts until its slot is freed). Subscribers waiting for a message
    /// are woken by [`notify`](Self::notify), not here.
    ///
    /// # Errors
    /// [`BroadcastPublishError::MessageTooLarge`]; `Full` (gated and strict; the
    /// message is not published); `Corrupted`.
    pub fn try_publish(&mut self, message: &[u8]) -> Result<u32, BroadcastPublishError> {
        self.write_frame(message)?;
        self.published();
        Ok(self.subscribers())
    }

    /// Publishes the messages `messages` yields, in order, storing the publisher's
    /// position once at the end; stops at the first that does not go (too large,
    /// or no room). Returns how many were published.
    ///
    /// # Errors
    /// As [`try_publish`](Self::try_publish), for the first message that did not
    /// go, if none did.
    pub fn try_publish_batch<'m>(
        &mut self,
        messages: impl IntoIterator<Item = &'m [u8]>,
    ) -> Result<usize, BroadcastPublishError> {
        let mut published = 0;
        for message in messages {
            match self.write_frame(message) {
                Ok(()) => published += 1,
                Err(e) if published == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if published > 0 {
            self.published();
        }
        Ok(published)
    }

    /// Subscribers joined now (the table's count, clamped to the slots).
    #[must_use]
    pub fn subscribers(&self) -> u32 {
        // Relaxed: a count for the caller; nothing is ordered by it.
        let n = self.region.table().subscribers.load(Ordering::Relaxed);
        n.min(self.region.slots() as u32)
    }

    /// Writes one frame (after padding, if it would cross the region's end),
    /// marks the next frame's header unpublished, and publishes the frame through
    /// its sequence word.
    fn write_frame(&mut self, message: &[u8]) -> Result<(), BroadcastPublishError> {
        let start = self.reserve(message.len())?;
        store_payload(&self.region, self.geo.offset(start), message);
        self.finish(start, message.len());
        Ok(())
    }

    /// Makes room for a frame of up to `len` bytes and returns where it starts
    /// (the write position, or the region's start if it does not fit before the
    /// end: `finish` then publishes the padding).
    pub(super) fn reserve(&mut self, len: usize) -> Result<u64, BroadcastPublishError> {
        let len64 = len as u64;
        if len64 > self.geo.max_len {
            return Err(BroadcastPublishError::MessageTooLarge {
                len,
                max: self.geo.max_len as usize,
            });
        }
        let size = frame_size(len64);
        // `write` is never where no frame fits (the last frame skipped it).
        let tail = self.geo.tail(self.write);
        let start = if size > tail {
            self.write + tail
        } else {
            self.write
        };
        // The next frame's header is written with this one (its mark): room for
        // it too.
        self.make_room(self.after(start + size) + HEADER)?;
        Ok(start)
    }

    /// The first frame boundary at or after `end` (past a tail too short for a
    /// header).
    fn after(&self, end: u64) -> u64 {
        if self.geo.no_frame_at(end) {
            end + self.geo.tail(end)
        } else {
            end
        }
    }

    /// Publishes the frame of `len` bytes (at most what was reserved) whose
    /// payload is written at `start`: the padding before it if any, the next
    /// frame's mark, then its header.
    pub(super) fn finish(&mut self, start: u64, len: usize) {
        if start != self.write {
            // Padding to the region's end; its successor (the frame at the
            // region's start) is marked before the padding is published.
            self.mark(start, self.seq);
            let tail = start - self.write;
            let word = FRAME_COMMITTED | FRAME_PADDING | (tail - HEADER) as u32;
            self.store_header(self.write, word);
        }
        let next = self.after(start + frame_size(len as u64));
        self.mark(next, self.seq + 1);
        self.store_header(start, FRAME_COMMITTED | len as u32);
        self.write = next;
        self.seq += 1;
    }

    /// After frames were finished: stores the positions and remembers to notify.
    pub(super) fn published(&mut self) {
        self.store_positions();
        self.unnotified = true;
    }

    /// Marks the sequence word of the frame at `position` unpublished, to carry
    /// `seq`. Relaxed: published by the Release store of the sequence word of the
    /// frame before it (`store_header`, next), which every subscriber reaching
    /// `position` has read.
    #[inline]
    fn mark(&self, position: u64, seq: u64) {
        seq_word(&self.region, self.geo, position).store(SEQ_UNPUBLISHED | seq, Ordering::Relaxed);
    }

    /// Stores a frame's state word, then publishes it by its sequence word.
    #[inline]
    fn store_header(&self, position: u64, state: u32) {
        let offset = self.geo.offset(position);
        // Relaxed: published by the sequence word's Release store below.
        self.region
            .word(offset)
            .store(header_first_word(state), Ordering::Relaxed);
        // SYNC: Release pairs with the subscriber's Acquire load of the sequence
        // word in `BroadcastSubscriber::next_frame` (and the joiner's, and
        // recovery's): the state word, the payload and the next frame's mark
        // stored before it are visible to a subscriber that reads this number.
        seq_word(&self.region, self.geo, position).store(self.seq, Ordering::Release);
    }

    /// Stores `write_seq` and `write_position` (after the frames they cover).
    #[inline]
    fn store_positions(&self) {
        let positions = self.region.positions();
        // Relaxed: a count for observers and the next publisher's recovery.
        positions.write_seq.store(self.seq - 1, Ordering::Relaxed);
        // SYNC: Release pairs with the subscriber's Acquire load of
        // `write_position` (joining, and deciding "empty"): the frames below it
        // are visible.
        positions
            .write_position
            .store(self.write, Ordering::Release);
    }

    /// Makes sure the frames below `end - capacity` may be overwritten: moves
    /// `oldest_position` past them if it is not already (in chunks of an eighth
    /// of the region), after the gated checks.
    #[inline]
    fn make_room(&mut self, end: u64) -> Result<(), BroadcastPublishError> {
        let needed = end.saturating_sub(self.geo.capacity);
        if needed <= self.oldest {
            return Ok(());
        }
        self.advance_oldest(needed)
    }

    #[cold]
    fn advance_oldest(&mut self, needed: u64) -> Result<(), BroadcastPublishError> {
        let chunk_end = (needed + self.geo.capacity / 8).min(self.write);
        let (least, target) = self.boundaries(needed, chunk_end)?;
        let new = if self.policy.waits() {
            self.gate(least, target)?
        } else {
            target
        };
        // SYNC: Release pairs with the subscriber's Acquire fence after it loads
        // `oldest_position` and moves to it (`lapped_at`, `resync`) and with the
        // joiner's Acquire load (`published_bounds`): the frame at `new` (or its
        // mark, if `new` is our write position), stored before, is visible to a
        // subscriber that starts reading there. Without it, the sequence word
        // there may read as an older lap's value (issue 19's loom models found
        // it: a false `Corrupted`, or an old lap's bytes passing as a message).
        // Ordered before our overwrites by the fence below.
        self.region
            .oldest()
            .oldest_position
            .store(new, Ordering::Release);
        // SYNC: Release fence: pairs with the subscriber's Acquire fence after its
        // copy (`BroadcastSubscriber::validate`): a subscriber whose loads saw any
        // byte we write after this fence sees this `oldest_position` (or a later
        // one) after its fence, and discards its copy.
        fence(Ordering::Release);
        self.oldest = new;
        Ok(())
    }

    /// The first frame boundaries at or past `needed` and at or past `chunk_end`
    /// (walking our own frames from `oldest`; they are checked, as anything read
    /// from the segment).
    fn boundaries(&self, needed: u64, chunk_end: u64) -> Result<(u64, u64), BroadcastPublishError> {
        let mut at = self.oldest;
        let mut least = None;
        while at < chunk_end {
            if least.is_none() && at >= needed {
                least = Some(at);
            }
            if self.geo.no_frame_at(at) {
                at += self.geo.tail(at);
                continue;
            }
            let word = state_word(&self.region, self.geo, at);
            let size = match self.geo.decode(at, word) {
                Ok(Frame::Message { len }) => frame_size(len.into()),
                Ok(Frame::Padding { size }) => size,
                Err(c) => return Err(BroadcastPublishError::Corrupted(c)),
            };
            at += size;
        }
        if at > self.write {
            return Err(BroadcastPublishError::Corrupted(
                BroadcastCorruption::BadPosition {
                    field: "frame walk",
                    found: at,
                },
            ));
        }
        Ok((least.unwrap_or(at), at))
    }

    /// Gated and strict: the position `oldest_position` may move to, at least
    /// `least`, at most `target`, below no included subscriber's cursor; `Full`
    /// if that is less than `least`.
    fn gate(&mut self, least: u64, target: u64) -> Result<u64, BroadcastPublishError> {
        let table = self.region.table();
        // SYNC: Release pairs with the joiner's Acquire load of `intent`: the
        // frames published below `target` (the one at it among them) are visible
        // to a joiner that starts there. Ordered before the load of `joins` by
        // the fence.
        self.region.oldest().intent.store(target, Ordering::Release);
        // SYNC: SeqCst fence: pairs with the joiner's fence in
        // `BroadcastSubscriber::join` (store-buffer pattern): either we see its
        // `joins` increment below and rescan (seeing its cursor), or it sees our
        // intent and starts at or past it.
        fence(Ordering::SeqCst);
        // SYNC: Acquire pairs with the joiner's Release increment: its cursor,
        // stored before, is visible to the rescan.
        let joins = table.joins.load(Ordering::Acquire);
        if !self.scanned || joins != self.joins_seen || self.slowest < target {
            self.joins_seen = joins;
            self.scanned = true;
            self.scan();
        }
        if self.slowest >= target {
            Ok(target)
        } else if self.slowest >= least {
            // The slowest subscriber is between: the frames below it go.
            Ok(self.frame_at_or_below(self.slowest, least))
        } else {
            Err(BroadcastPublishError::Full {
                slot: self.slowest_slot,
            })
        }
    }

    /// A frame boundary `b` with `least <= b <= cursor` (`least` is one; walks
    /// from it).
    fn frame_at_or_below(&self, cursor: u64, least: u64) -> u64 {
        let mut at = least;
        let mut last = least;
        while at <= cursor {
            last = at;
            if self.geo.no_frame_at(at) {
                at += self.geo.tail(at);
                continue;
            }
            let word = state_word(&self.region, self.geo, at);
            match self.geo.decode(at, word) {
                Ok(Frame::Message { len }) => at += frame_size(len.into()),
                Ok(Frame::Padding { size }) => at += size,
                Err(_) => break,
            }
        }
        last
    }

    /// Reads every included subscriber's cursor once and keeps the slowest.
    fn scan(&mut self) {
        let mut slowest = self.write;
        let mut slot_of = self.slowest_slot;
        for slot in 0..self.region.slots() {
            let entry = self.region.entry(slot);
            // Relaxed: whether the slot is held; the cursor's Acquire orders what
            // matters.
            if entry.owner.load(Ordering::Relaxed) == 0 {
                continue;
            }
            if let Some(claims) = self.cut_off[slot] {
                if entry.claims.load(Ordering::Relaxed) == claims {
                    continue;
                }
                self.cut_off[slot] = None;
            }
            // SYNC: Acquire pairs with the subscriber's Release store of its
            // cursor: its copies of the frames below happen before our overwrites.
            let cursor = entry.cursor.load(Ordering::Acquire);
            // Checked: a cursor outside what we published is clamped (below
            // `oldest`: we wait for it until it moves or is cut off; beyond our
            // position: it holds nothing back).
            let cursor = (cursor & !7).clamp(self.oldest, self.write);
            if cursor < slowest {
                slowest = cursor;
                slot_of = slot;
            }
        }
        self.slowest = slowest;
        self.slowest_slot = slot_of;
    }

    /// Gated: stops waiting for the subscriber in `slot` (it did not move within
    /// the topic's bound): it is left out of every later scan while the same
    /// holder keeps the slot, and reads on as a lossy subscriber does (`Lagged`
    /// when lapped). Marks the entry's `cut_off` word for it and for tools.
    pub fn cut_off(&mut self, slot: usize) {
        if slot >= self.region.slots() {
            return;
        }
        let entry = self.region.entry(slot);
        self.cut_off[slot] = Some(entry.claims.load(Ordering::Relaxed));
        // Relaxed: informational.
        entry.cut_off.store(1, Ordering::Relaxed);
        self.scanned = false;
    }

    /// Whether the subscriber in `slot` is cut off (by this publisher).
    #[must_use]
    pub fn is_cut_off(&self, slot: usize) -> bool {
        self.cut_off.get(slot).is_some_and(Option::is_some)
    }

    /// Frees `slot` if its owner word still holds `owner`: the caller proved that
    /// holder dead. The publisher stops waiting for it; a joiner may take it.
    /// Returns whether it was freed.
    pub fn free_slot(&mut self, slot: usize, owner: u32) -> bool {
        if slot >= self.region.slots() || owner == 0 {
            return false;
        }
        let entry = self.region.entry(slot);
        // Relaxed: the dead holder orders nothing; a joiner's claim CAS decides.
        let freed = entry
            .owner
            .compare_exchange(owner, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if freed {
            // Relaxed, wrapping: a count; a hostile value costs nothing but a
            // wrong number.
            self.region
                .table()
                .subscribers
                .fetch_sub(1, Ordering::Relaxed);
            self.cut_off[slot] = None;
            self.scanned = false;
        }
        freed
    }

    /// The owner word of `slot` (0 if free): for the caller's liveness check.
    #[must_use]
    pub fn slot_owner(&self, slot: usize) -> u32 {
        if slot >= self.region.slots() {
            return 0;
        }
        // Relaxed: a hint checked against the caller's liveness record.
        self.region.entry(slot).owner.load(Ordering::Relaxed)
    }

    /// Wakes the subscribers that wait or armed for a message, after
    /// publications. With nobody waiting: a fence and a load.
    pub fn notify<F: Futex + ?Sized>(&mut self, futex: &F) {
        if !self.unnotified {
            return;
        }
        self.unnotified = false;
        if has_waiters(&self.region.table().waiters, futex) {
            self.notify_entries(futex);
        }
    }

    #[cold]
    fn notify_entries<F: Futex + ?Sized>(&self, futex: &F) {
        for slot in 0..self.region.slots() {
            let entry = self.region.entry(slot);
            // Relaxed: a free slot has no waiter; a stale answer costs one
            // useless wake-up or one the next notification gives.
            if entry.owner.load(Ordering::Relaxed) != 0 {
                // Ordered after our publication by `has_waiters`' fence.
                notify_seen(&entry.data_signal, futex);
            }
        }
    }

    /// Gated: registers on the table's `space_signal` for room and checks again:
    /// `None` if the slowest subscriber moved or another one is now the slowest
    /// (retry), else the key to wait on.
    pub fn prepare_wait_for_space<F: Futex + ?Sized>(&mut self, futex: &F) -> Option<u32> {
        let table = self.region.table();
        let key = crate::wait::prepare_wait(&table.space_signal, crate::wait::WAITING, futex);
        let before = (self.slowest, self.slowest_slot);
        self.scan();
        // The slot counts too: when the subscriber `Full` named moved to where
        // another one is, the slowest position stays but the one holding us
        // back is another, which the caller must hear of (retry: `Full` names
        // it) rather than sleep waiting for the first (the loom model
        // `a_subscriber_that_leaves_holds_nothing_back` deadlocked so).
        if (self.slowest, self.slowest_slot) != before {
            return None;
        }
        Some(key)
    }

    /// Arms the caller's readiness descriptor (doorbell) for room for a message
    /// of `len` bytes: [`Readiness::Ready`] if it fits now (on a lossy topic,
    /// always: nothing holds its publisher back), else [`Readiness::Armed`]:
    /// the next subscriber whose cursor moves rings the doorbell
    /// ([`BroadcastSubscriber::wake_publisher`](super::BroadcastSubscriber::wake_publisher),
    /// through [`Futex::ring_doorbell`]), and
    /// [`slowest_slot`](Self::slowest_slot) names the slot holding the
    /// publisher back (to probe its liveness, or cut it off). Never blocks.
    ///
    /// Room is made as a publication makes it: `oldest_position` may move past
    /// frames every included subscriber has read.
    ///
    /// # Errors
    /// [`BroadcastPublishError::MessageTooLarge`]; `Corrupted`.
    pub fn arm_for_space<F: Futex + ?Sized>(
        &mut self,
        len: usize,
        futex: &F,
    ) -> Result<Readiness, BroadcastPublishError> {
        if !self.policy.waits() {
            if len as u64 > self.geo.max_len {
                return Err(BroadcastPublishError::MessageTooLarge {
                    len,
                    max: self.geo.max_len as usize,
                });
            }
            return Ok(Readiness::Ready);
        }
        if self.fits(len)? {
            return Ok(Readiness::Ready);
        }
        // SYNC: `prepare_wait`'s fence pairs with the subscriber's notifier fence
        // in `wake_publisher` (`notify`, store-buffer pattern): either its load of
        // `space_signal` sees our `ARMED` bit and rings the doorbell, or the
        // re-check below (`gate` rescans: the slowest cursor was short of what
        // we need) sees the cursor it stored before its fence.
        prepare_wait(&self.region.table().space_signal, ARMED, futex);
        if self.fits(len)? {
            return Ok(Readiness::Ready);
        }
        Ok(Readiness::Armed)
    }

    /// Gated and strict: whether a frame of `len` bytes fits now (room made for
    /// it).
    fn fits(&mut self, len: usize) -> Result<bool, BroadcastPublishError> {
        match self.reserve(len) {
            Ok(_) => Ok(true),
            Err(BroadcastPublishError::Full { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gated and strict: the slot of the slowest included subscriber at the
    /// last scan. After `Full` or [`Readiness::Armed`], the one holding the
    /// publisher back.
    #[must_use]
    pub fn slowest_slot(&self) -> usize {
        self.slowest_slot
    }

    /// The table's `space_signal`, to wait on with the key from
    /// [`prepare_wait_for_space`](Self::prepare_wait_for_space).
    #[must_use]
    pub fn space_signal(&self) -> &crate::sync::AtomicU32 {
        &self.region.table().space_signal
    }

    /// The region.
    #[must_use]
    pub fn region(&self) -> &R {
        &self.region
    }
}

impl<R: BroadcastRegion> Drop for BroadcastPublisher<R> {
    fn drop(&mut self) {
        release_owner(&self.region.oldest().owner, 0);
        let _ = self.token;
    }
}
