//! Batches: messages committed together and published with one store, and the runs
//! that pack consecutive messages of one length under one frame header.

use core::{fmt, slice};

use super::frame::stride;
use super::layout::{FRAME_COMMITTED, FRAME_RUN, MAX_RUN_COUNT, RUN_LEN_MASK};
use super::{Grant, HEADER, Producer, PushError, Region, copy_message};
use crate::sync::Ordering;
use crate::wait::Futex;

/// The producer's side of a batch.
impl<R: Region> Producer<R> {
    /// Opens a batch: messages committed through it become visible together, when
    /// it is published or dropped, with one Release store.
    pub fn batch(&mut self) -> Batch<'_, R> {
        self.batching = true;
        Batch {
            data: self.region.data(),
            mask: self.geo.mask,
            producer: self,
            run_len: NOT_OPEN,
            run_start: 0,
            run_end: 0,
            run_limit: 0,
        }
    }

    /// Writes the state word of a frame of the open batch: held back if it is the
    /// batch's first frame, else stored now.
    #[inline(always)]
    pub(super) fn close_in_batch(&mut self, position: u64, word: u32) {
        if self.pending.is_none() {
            self.pending = Some((position, word));
        } else {
            // Relaxed: the consumer reaches this frame only after the Release store
            // of the batch's first state word, which comes after this in program order.
            self.region
                .frame_word(self.geo.offset(position))
                .store(word, Ordering::Relaxed);
        }
    }

    /// Publishes the batch: zeroes the header after its last frame, then stores its
    /// first frame's state word. The batch's open run, if any, is closed first (by
    /// the [`Batch`]; after a leaked batch none is).
    pub(super) fn end_batch(&mut self) {
        self.batching = false;
        if let Some((position, word)) = self.pending.take() {
            // Inside the batch each frame's header overwrote the slot after the one
            // before; only the slot after the last needs zeroing. Relaxed: published
            // by the Release store just below.
            self.region
                .frame_word(self.geo.offset(self.write))
                .store(0, Ordering::Relaxed);
            // SYNC: Release pairs with the Acquire load in `Consumer::read`: every
            // frame of the batch (stored before this) is visible with the first.
            self.region
                .frame_word(self.geo.offset(position))
                .store(word, Ordering::Release);
            self.publish_write();
        }
    }
}

/// Messages committed through a batch are published together by one Release store
/// (the first frame's state word, written last) when the batch is published or
/// dropped.
///
/// While it is open the consumer sees none of them; a batch that fills the ring gets
/// [`PushError::Full`] and must be published before the consumer can make room.
pub struct Batch<'a, R: Region> {
    producer: &'a mut Producer<R>,
    // The open run (a `Run`, field by field): held here and nowhere else, so that
    // the compiler keeps it in registers across pushes (a store into the data region
    // could alias the producer's fields, as far as it knows). Separate fields, not a
    // `Run`: passing a `Run` field by value lets the compiler hand the callee its
    // address, and the run then lives in memory. The producer's write position stays
    // at the run's header until the run closes.
    /// `Run::len`.
    run_len: usize,
    /// `Run::start`.
    run_start: u64,
    /// `Run::end`.
    run_end: u64,
    /// `Run::limit`.
    run_limit: u64,
    /// The data region and its mask, copied likewise.
    data: *mut u8,
    mask: u64,
}

/// `Run::len` when no run is open: no message has this length.
const NOT_OPEN: usize = usize::MAX;

/// A batch's open run (see [`FRAME_RUN`]): consecutive messages of one length
/// under one frame header, written when the run closes. The batch holds it field by
/// field; the functions that open and close runs take it and return it by value (a
/// `&mut` would keep it in memory).
#[derive(Clone, Copy)]
struct Run {
    /// Length of the run's messages; [`NOT_OPEN`] when no run is open.
    len: usize,
    /// Position of the run's header.
    start: u64,
    /// Where the run's next message goes: its messages end here.
    end: u64,
    /// The run may grow while `end` stays at or below this: the end of the lap, the
    /// largest frame, the most messages a run holds, and the space known free (less
    /// the zeroed header after the run), whichever comes first.
    limit: u64,
}

impl Run {
    /// No run: no message has its length, and it has room for none.
    const CLOSED: Self = Self {
        len: NOT_OPEN,
        start: 0,
        end: 0,
        limit: 0,
    };

    /// Opens a run for messages of `len` bytes (`1..=RUN_LEN_MASK`) at the
    /// producer's write position (the batch has no run open): room for one is
    /// reserved (with padding before it if needed); the run holds none yet.
    fn open<R: Region>(producer: &mut Producer<R>, len: usize) -> Result<Self, PushError> {
        debug_assert!(len != 0 && len <= RUN_LEN_MASK as usize);
        let (start, padding) = producer.reserve(len)?;
        if padding != 0 {
            producer.write_padding(start, padding);
        }
        let geo = producer.geo;
        let stride = stride(len as u64);
        let lap_end = start - (start & geo.mask) + geo.capacity;
        // `reserve` checked that one message fits: the limit is at least
        // `start + HEADER + stride`.
        let limit = lap_end
            .min(start + HEADER + geo.max_len)
            .min(start + HEADER + u64::from(MAX_RUN_COUNT) * stride)
            .min(producer.read_cache + geo.capacity - HEADER);
        Ok(Self {
            len,
            start,
            end: start + HEADER,
            limit,
        })
    }

    /// Writes the run's header into the producer's batch and moves the producer's
    /// write position past the run: a run frame, a plain message frame if it holds
    /// one message, nothing if it holds none (or is [`Run::CLOSED`]).
    #[inline]
    fn close<R: Region>(self, producer: &mut Producer<R>) {
        if self.len == NOT_OPEN {
            return;
        }
        let total = self.end - self.start - HEADER;
        if total == 0 {
            // The producer's write position is still the run's header.
            return;
        }
        let len = self.len as u32;
        let word = if total == stride(len.into()) {
            FRAME_COMMITTED | len
        } else {
            // Relaxed: published with the batch, by the Release store of its first
            // state word, after this in program order.
            producer
                .region
                .run_word(producer.geo.offset(self.start))
                .store(len, Ordering::Relaxed);
            FRAME_COMMITTED | FRAME_RUN | total as u32
        };
        producer.close_in_batch(self.start, word);
        producer.write = self.end;
    }
}

// SAFETY: `data` is the region's data pointer, which the region promises is valid
// from any thread; everything else in a batch is the `&mut Producer` (Send when the
// region is) and plain numbers. The pointer only stops the automatic impl.
unsafe impl<R: Region + Send> Send for Batch<'_, R> {}

impl<R: Region> fmt::Debug for Batch<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Region> Batch<'a, R> {
    /// As [`Producer::grant`], committing into the batch.
    ///
    /// # Errors
    /// As [`Producer::grant`].
    pub fn grant(&mut self, len: usize) -> Result<Grant<'_, R>, PushError> {
        // The open run lies before the granted frame: its header goes into the batch
        // first, so that the batch's first frame is the one held back.
        self.close_run();
        self.producer.grant(len)
    }

    /// As [`Producer::push`], into the batch. Consecutive messages of one length
    /// (1 to 65535 bytes) share a frame header (a run, see
    /// [`FRAME_RUN`]): an 8-byte message then takes 8 bytes of
    /// the ring instead of 16.
    ///
    /// # Errors
    /// As [`Producer::grant`].
    #[inline]
    pub fn push(&mut self, message: &[u8]) -> Result<(), PushError> {
        let len = message.len();
        if len == self.run_len {
            let at = self.run_end;
            let end = at + stride(len as u64);
            if end <= self.run_limit {
                let offset = (at & self.mask) as usize;
                self.producer.region.will_write(offset, len);
                // SAFETY: `end <= run_limit`: the bytes lie within the lap (so within
                // the data region) and within the space the consumer has released;
                // nothing in this process touches them until the batch is published.
                let payload = unsafe { slice::from_raw_parts_mut(self.data.add(offset), len) };
                copy_message(payload, message);
                self.producer.region.will_write(offset, len);
                self.run_end = end;
                return Ok(());
            }
        }
        // Passed and returned by value: a `&mut self` call would keep the run in
        // memory.
        let (result, run) = push_to_new_run(self.producer, self.run(), message);
        self.set_run(run);
        result
    }

    /// Reserves up to `count` messages of `len` bytes each, packed in a run, and
    /// lends them for writing in place: the zero-copy way to batch fixed-size
    /// records. The grant may hold fewer than `count` (at least one, unless
    /// `count` is 0): as many as fit in one run before the end of the data region,
    /// the space known free and the largest frame; ask again for the rest. A grant
    /// of 0 reserves nothing and never fails for want of room. [`RunGrant::commit`] adds the
    /// first `n` to the batch; dropping the grant adds none.
    ///
    /// # Errors
    /// [`PushError::TooLarge`] when `len` exceeds the largest message or 65535
    /// bytes (the most a run's length field holds; [`Batch::push`] takes such
    /// messages one frame each); [`PushError::Full`] when not even one fits;
    /// [`PushError::Corrupted`] if the consumer's published position is invalid.
    ///
    /// # Panics
    /// If `len` is 0: a run of empty messages would take no bytes.
    pub fn grant_run(
        &mut self,
        len: usize,
        count: usize,
    ) -> Result<RunGrant<'_, 'a, R>, PushError> {
        assert!(len != 0, "a run of empty messages");
        let max = (self.producer.geo.max_len as usize).min(RUN_LEN_MASK as usize);
        if len > max {
            return Err(PushError::TooLarge { len, max });
        }
        let stride = stride(len as u64);
        if count != 0 && (len != self.run_len || self.run_end + stride > self.run_limit) {
            let (result, run) = open_new_run(self.producer, self.run(), len);
            self.set_run(run);
            result?;
        }
        // At least one if `count` is: `Run::open` reserved room for one. (With no
        // run open, `run_end` and `run_limit` are both 0.)
        let room = ((self.run_limit - self.run_end) / stride) as usize;
        let count = count.min(room);
        let offset = (self.run_end & self.mask) as usize;
        self.producer
            .region
            .will_write(offset, count * stride as usize);
        Ok(RunGrant {
            batch: self,
            offset,
            len,
            stride: stride as usize,
            count,
        })
    }

    /// The open run.
    fn run(&self) -> Run {
        Run {
            len: self.run_len,
            start: self.run_start,
            end: self.run_end,
            limit: self.run_limit,
        }
    }

    fn set_run(&mut self, run: Run) {
        self.run_len = run.len;
        self.run_start = run.start;
        self.run_end = run.end;
        self.run_limit = run.limit;
    }

    /// Closes the open run, if any.
    #[inline]
    fn close_run(&mut self) {
        self.run().close(self.producer);
        self.set_run(Run::CLOSED);
    }

    /// Publishes the batch (the same as dropping it).
    pub fn publish(self) {}

    /// Publishes the batch, then [`Producer::wake_consumer`]: for a consumer that
    /// may be blocked.
    pub fn publish_and_wake<F: Futex + ?Sized>(mut self, futex: &F) {
        self.close_run();
        self.producer.end_batch();
        self.producer.wake_consumer(futex);
        // Drop ends the batch again: a no-op, nothing is pending.
    }
}

/// [`Batch::push`] when no run is open, `message` has another length, or the run
/// cannot grow: closes the batch's `run` and opens another with `message` in it
/// (or, for a length no run takes, commits it as a frame of its own); returns the
/// new run.
#[inline(never)]
fn push_to_new_run<R: Region>(
    producer: &mut Producer<R>,
    run: Run,
    message: &[u8],
) -> (Result<(), PushError>, Run) {
    run.close(producer);
    let len = message.len();
    if len == 0 || len > RUN_LEN_MASK as usize || len as u64 > producer.geo.max_len {
        let result = producer.push(message);
        return (result, Run::CLOSED);
    }
    let mut run = match Run::open(producer, len) {
        Ok(run) => run,
        Err(e) => return (Err(e), Run::CLOSED),
    };
    let offset = producer.geo.offset(run.end);
    producer.region.will_write(offset, len);
    // SAFETY: `Run::open` reserved room for one message of `len` bytes at `run.end`,
    // within the data region and the space the consumer has released.
    let payload = unsafe { slice::from_raw_parts_mut(producer.region.data().add(offset), len) };
    copy_message(payload, message);
    producer.region.will_write(offset, len);
    run.end += stride(len as u64);
    (Ok(()), run)
}

/// [`Batch::grant_run`] when the open run cannot take a message of `len` bytes:
/// closes the batch's `run` and opens another; returns the new run.
#[inline(never)]
fn open_new_run<R: Region>(
    producer: &mut Producer<R>,
    run: Run,
    len: usize,
) -> (Result<(), PushError>, Run) {
    run.close(producer);
    match Run::open(producer, len) {
        Ok(run) => (Ok(()), run),
        Err(e) => (Err(e), Run::CLOSED),
    }
}

/// Messages of one length reserved in a run, written in place: see
/// [`Batch::grant_run`]. Message `i` is `message_mut(i)`; all of them in order are
/// [`messages_mut`](RunGrant::messages_mut).
///
/// The bytes are shared memory: they hold whatever was there before.
pub struct RunGrant<'b, 'a, R: Region> {
    batch: &'b mut Batch<'a, R>,
    /// Offset in the data region of the first message.
    offset: usize,
    len: usize,
    stride: usize,
    count: usize,
}

impl<R: Region> fmt::Debug for RunGrant<'_, '_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunGrant")
            .field("message_len", &self.len)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<R: Region> RunGrant<'_, '_, R> {
    /// Messages reserved.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of each message.
    pub fn message_len(&self) -> usize {
        self.len
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `grant_run` reserved `count` strides from `offset` within one run:
        // within the lap (so the data region) and the space the consumer has
        // released; nothing else in this process touches them while the grant
        // borrows the batch mutably.
        unsafe {
            slice::from_raw_parts_mut(self.batch.data.add(self.offset), self.count * self.stride)
        }
    }

    /// The bytes of message `index`.
    ///
    /// # Panics
    /// If `index` is not below [`count`](RunGrant::count).
    pub fn message_mut(&mut self, index: usize) -> &mut [u8] {
        assert!(
            index < self.count,
            "message {index} of a run grant of {}",
            self.count
        );
        let (stride, len) = (self.stride, self.len);
        &mut self.bytes()[index * stride..index * stride + len]
    }

    /// The bytes of each message, in order.
    pub fn messages_mut(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        let (stride, len) = (self.stride, self.len);
        self.bytes()
            .chunks_exact_mut(stride)
            .map(move |message| &mut message[..len])
    }

    /// Adds the first `count` messages to the batch (published with it).
    ///
    /// # Panics
    /// If `count` exceeds the grant's.
    pub fn commit(self, count: usize) {
        assert!(
            count <= self.count,
            "commit of {count} messages exceeds the run grant of {}",
            self.count
        );
        self.batch
            .producer
            .region
            .will_write(self.offset, self.count * self.stride);
        self.batch.run_end += (count * self.stride) as u64;
    }
}

impl<R: Region> Drop for Batch<'_, R> {
    #[inline]
    fn drop(&mut self) {
        self.close_run();
        self.producer.end_batch();
    }
}
