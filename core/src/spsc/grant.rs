//! A frame lent to the producer for writing in place.

use core::ops::{Deref, DerefMut};
use core::{fmt, slice};

use super::layout::FRAME_HEADER_SIZE;
use super::{Producer, Region};
use crate::wait::Futex;

/// A frame lent to the producer for writing in place. Derefs to its payload bytes.
///
/// [`commit`](Grant::commit) publishes it; dropping it publishes nothing.
pub struct Grant<'a, R: Region> {
    pub(super) producer: &'a mut Producer<R>,
    pub(super) position: u64,
    pub(super) len: usize,
}

impl<R: Region> fmt::Debug for Grant<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("position", &self.position)
            .field("len", &self.len)
            .finish()
    }
}

impl<R: Region> Grant<'_, R> {
    /// Publishes the first `len` bytes as one message.
    ///
    /// # Panics
    /// If `len` exceeds the granted length (a bug in the caller).
    pub fn commit(self, len: usize) {
        assert!(
            len <= self.len,
            "commit of {len} bytes exceeds the grant of {}",
            self.len
        );
        self.producer.commit(self.position, len);
    }

    /// [`commit`](Grant::commit), then [`Producer::wake_consumer`]: for a consumer
    /// that may be blocked.
    ///
    /// # Panics
    /// As [`commit`](Grant::commit).
    pub fn commit_and_wake<F: Futex + ?Sized>(self, len: usize, futex: &F) {
        let producer = &mut *self.producer;
        assert!(
            len <= self.len,
            "commit of {len} bytes exceeds the grant of {}",
            self.len
        );
        producer.commit(self.position, len);
        producer.wake_consumer(futex);
    }
}

impl<R: Region> Deref for Grant<'_, R> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let offset = self.producer.geo.offset(self.position) + FRAME_HEADER_SIZE;
        // SAFETY: `reserve` placed the frame within the data region and within the
        // space the consumer has released, so no other handle in this process reads
        // or writes these `len` bytes until commit; the region keeps them valid.
        unsafe { slice::from_raw_parts(self.producer.region.data().add(offset), self.len) }
    }
}

impl<R: Region> DerefMut for Grant<'_, R> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let offset = self.producer.geo.offset(self.position) + FRAME_HEADER_SIZE;
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow.
        unsafe { slice::from_raw_parts_mut(self.producer.region.data().add(offset), self.len) }
    }
}
