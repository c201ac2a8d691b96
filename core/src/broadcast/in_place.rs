//! Writing and reading in place, on strict topics: a frame lent to the publisher
//! ([`BroadcastGrant`]) and a message lent to a subscriber ([`BroadcastMessage`]).
//!
//! Only a strict publisher never overwrites what a live subscriber has not read,
//! so only there may a subscriber hold a reference into the ring; and only there
//! does no subscriber read the bytes the publisher writes (a lapped one would read
//! them with atomic loads, which Rust allows only against atomic stores: the
//! copying calls make those). Both need the raw region's byte pointer.

use core::ops::{Deref, DerefMut};
use core::{fmt, slice};

use super::layout::BROADCAST_FRAME_HEADER_SIZE;
use super::{
    BroadcastPublishError, BroadcastPublisher, BroadcastRecvError, BroadcastSubscriber, Policy,
    RawBroadcastRegion, frame_size,
};
use crate::Futex;

/// A frame lent to a strict topic's publisher for writing in place. Derefs to its
/// payload bytes. [`commit`](Self::commit) publishes it; dropping it publishes
/// nothing (the room stays reserved for the next frame).
pub struct BroadcastGrant<'a> {
    publisher: &'a mut BroadcastPublisher<RawBroadcastRegion>,
    start: u64,
    len: usize,
}

impl fmt::Debug for BroadcastGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastGrant")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

impl BroadcastPublisher<RawBroadcastRegion> {
    /// Lends a frame of `len` bytes to write in place (strict topics).
    ///
    /// # Errors
    /// [`BroadcastPublishError::InPlaceNeedsStrict`] on a lossy or gated topic; as
    /// [`try_publish`](Self::try_publish) otherwise.
    pub fn grant(&mut self, len: usize) -> Result<BroadcastGrant<'_>, BroadcastPublishError> {
        if self.policy() != Policy::Strict {
            return Err(BroadcastPublishError::InPlaceNeedsStrict {
                policy: self.policy(),
            });
        }
        let start = self.reserve(len)?;
        Ok(BroadcastGrant {
            publisher: self,
            start,
            len,
        })
    }
}

impl<'a> BroadcastGrant<'a> {
    /// Publishes the first `len` bytes as one message. Returns the number of
    /// subscribers joined, as `try_publish`.
    ///
    /// # Panics
    /// If `len` exceeds the granted length (a bug in the caller).
    pub fn commit(self, len: usize) -> u32 {
        self.publish(len).subscribers()
    }

    /// [`commit`](Self::commit), then wakes the subscribers parked for a message
    /// ([`BroadcastPublisher::notify`]).
    ///
    /// # Panics
    /// As [`commit`](Self::commit).
    pub fn commit_and_notify<F: Futex + ?Sized>(self, len: usize, futex: &F) -> u32 {
        let publisher = self.publish(len);
        publisher.notify(futex);
        publisher.subscribers()
    }

    /// Finishes and publishes the frame; hands the publisher back.
    fn publish(self, len: usize) -> &'a mut BroadcastPublisher<RawBroadcastRegion> {
        assert!(
            len <= self.len,
            "commit of {len} bytes exceeds the grant of {}",
            self.len
        );
        let publisher = self.publisher;
        publisher.finish(self.start, len);
        publisher.published();
        publisher
    }

    fn payload(&self) -> *mut u8 {
        let offset = self.publisher.geo.offset(self.start) + BROADCAST_FRAME_HEADER_SIZE;
        // SAFETY: `reserve` placed the frame within the data region (it never
        // crosses the end), so `offset + len` is within it.
        unsafe { self.publisher.region.data_ptr().add(offset) }
    }
}

impl Deref for BroadcastGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `reserve` made room (strict: every live subscriber has read past
        // these bytes' last lap, and none reads them before the frame is
        // published, which needs `&mut` publisher, held by this borrow); the
        // region keeps them valid and they lie within it.
        unsafe { slice::from_raw_parts(self.payload(), self.len) }
    }
}

impl DerefMut for BroadcastGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow.
        unsafe { slice::from_raw_parts_mut(self.payload(), self.len) }
    }
}

/// A message lent to a strict topic's subscriber, read in place. Derefs to its
/// payload. [`release`](Self::release) moves past it; dropping it leaves it to be
/// read again. The bytes are shared memory: a hostile publisher could change them
/// while lent (garbage payload, never an access out of bounds).
pub struct BroadcastMessage<'a> {
    subscriber: &'a mut BroadcastSubscriber<RawBroadcastRegion>,
    position: u64,
    len: usize,
    seq: u64,
}

impl fmt::Debug for BroadcastMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastMessage")
            .field("position", &self.position)
            .field("len", &self.len)
            .field("seq", &self.seq)
            .finish()
    }
}

impl BroadcastSubscriber<RawBroadcastRegion> {
    /// Lends the next message, read in place (strict topics).
    ///
    /// # Errors
    /// [`BroadcastRecvError::InPlaceNeedsStrict`] on a lossy or gated topic; as
    /// [`try_recv`](Self::try_recv) otherwise (no `BufferTooSmall`).
    pub fn read(&mut self) -> Result<BroadcastMessage<'_>, BroadcastRecvError> {
        if self.policy != Policy::Strict {
            return Err(BroadcastRecvError::InPlaceNeedsStrict {
                policy: self.policy,
            });
        }
        let found = self.next_frame()?;
        // Strict: the frame cannot have been overwritten (our published cursor is
        // at or below it); checked all the same, as every read is.
        if self.lapped_at(found.position) {
            return Err(BroadcastRecvError::Empty);
        }
        Ok(BroadcastMessage {
            position: found.position,
            len: found.len as usize,
            seq: found.seq,
            subscriber: self,
        })
    }
}

impl<'a> BroadcastMessage<'a> {
    /// The message's sequence number.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves past the message: the publisher may reuse its bytes once the cursor
    /// is published (lazily, as after a copying read).
    pub fn release(self) {
        self.consume();
    }

    /// [`release`](Self::release), then wakes a publisher waiting for room if
    /// the cursor was published for it
    /// ([`BroadcastSubscriber::wake_publisher`]).
    pub fn release_and_wake<F: Futex + ?Sized>(self, futex: &F) {
        self.consume().wake_publisher(futex);
    }

    /// Moves the subscriber past the message; hands it back.
    fn consume(self) -> &'a mut BroadcastSubscriber<RawBroadcastRegion> {
        let subscriber = self.subscriber;
        subscriber.position = self.position + frame_size(self.len as u64);
        subscriber.expected = self.seq + 1;
        subscriber.after_read();
        subscriber
    }
}

impl Deref for BroadcastMessage<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let offset = self.subscriber.geo.offset(self.position) + BROADCAST_FRAME_HEADER_SIZE;
        // SAFETY: `decode` checked that the payload lies within the data region;
        // on a strict topic the publisher does not write these bytes until our
        // published cursor passes them, which needs `&mut` subscriber, held by
        // this borrow; the frame was published (its sequence word's Acquire).
        unsafe { slice::from_raw_parts(self.subscriber.region.data_ptr().add(offset), self.len) }
    }
}
