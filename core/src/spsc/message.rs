//! A message borrowed in place.

use core::ops::Deref;
use core::{fmt, slice};

use super::layout::FRAME_HEADER_SIZE;
use super::{Consumer, Region};
use crate::wait::Futex;

/// A message borrowed in place. Derefs to its payload.
///
/// [`release`](Message::release) consumes it; dropping it leaves it to be read again.
/// The bytes are shared memory: a hostile producer could change them while borrowed
/// (garbage payload, never an out-of-bounds access).
pub struct Message<'a, R: Region> {
    pub(super) consumer: &'a mut Consumer<R>,
    pub(super) position: u64,
    pub(super) word: u32,
    pub(super) len: usize,
}

impl<R: Region> fmt::Debug for Message<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("position", &self.position)
            .field("len", &self.len)
            .finish()
    }
}

impl<R: Region> Message<'_, R> {
    /// Consumes the message: its bytes may be reused by the producer, and no later
    /// consumer will see it.
    pub fn release(self) {
        self.consumer.release(self.position, self.word, self.len);
    }

    /// [`release`](Message::release), then [`Consumer::wake_producer`]: for a
    /// producer that may be blocked.
    pub fn release_and_wake<F: Futex + ?Sized>(self, futex: &F) {
        let consumer = self.consumer;
        consumer.release(self.position, self.word, self.len);
        consumer.wake_producer(futex);
    }
}

impl<R: Region> Deref for Message<'_, R> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let offset = self.consumer.geo.offset(self.position) + FRAME_HEADER_SIZE;
        // SAFETY: `decode` checked that the payload lies within the data region; the
        // producer does not write these bytes until we publish a position past
        // them, which needs `&mut Consumer`, held by this borrow.
        unsafe { slice::from_raw_parts(self.consumer.region.data().add(offset), self.len) }
    }
}
