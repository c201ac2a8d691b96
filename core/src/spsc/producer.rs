//! The writing side: claims and recovery, space, and the commit of single messages
//! (copied with [`Producer::push`], or written in place through a [`Grant`]).

use core::cell::Cell;
use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::{fmt, slice};

use super::claim::{claim_owner, count_claim, release_owner};
use super::frame::{Frame, Geometry, frame_size};
use super::layout::{FRAME_COMMITTED, FRAME_HEADER_SIZE, FRAME_PADDING};
use super::{
    ClaimError, Corruption, Grant, HEADER, MAX_POSITION, PushError, Region, WaitError, copy_message,
};
use crate::sync::Ordering;
use crate::wait::{ARMED, Futex, Readiness, WAITING, notify, prepare_wait};

fn check_aligned(found: u64, corruption: Corruption) -> Result<u64, Corruption> {
    if found % 8 == 0 {
        Ok(found)
    } else {
        Err(corruption)
    }
}

/// The writing side of a ring.
///
/// Claimed once per ring (a claim word in the segment); `Send` but not `Sync`.
///
/// # Examples
/// ```
/// use core::num::NonZeroU32;
/// use shmring_core::{Consumer, Producer, RawRegion};
///
/// #[repr(C, align(128))]
/// struct Mem([u8; 512 + 1024]);
/// let mut mem = Mem([0; 512 + 1024]);
/// // SAFETY: `mem` outlives the handles and is touched only through them.
/// let region = unsafe { RawRegion::init(mem.0.as_mut_ptr(), mem.0.len(), 1024) }?;
/// let token = NonZeroU32::new(1).unwrap();
/// let mut tx = Producer::claim(region.clone(), token)?;
/// let mut rx = Consumer::claim(region, token)?;
///
/// tx.push(b"hello")?;
/// let mut grant = tx.grant(16)?;       // zero-copy: write in place...
/// grant[..5].copy_from_slice(b"world");
/// grant.commit(5);                     // ...and publish (possibly shorter)
///
/// let mut buf = [0u8; 64];
/// let n = rx.pop(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// let msg = rx.read()?;                // zero-copy: borrow in place...
/// assert_eq!(&*msg, b"world");
/// msg.release();                       // ...and give the bytes back
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
///
/// A handle is used by one thread at a time:
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<shmring_core::Producer<shmring_core::RawRegion>>();
/// ```
pub struct Producer<R: Region> {
    pub(super) region: R,
    pub(super) geo: Geometry,
    /// Next frame position: exact, private. While a batch's run is open, the run's
    /// header (the batch holds where its messages end).
    pub(super) write: u64,
    /// The consumer's position as last read; at most the true one, can be stale.
    pub(super) read_cache: u64,
    /// Inside a [`Batch`](super::Batch): commits go into the batch.
    pub(super) batching: bool,
    /// The first frame of the open batch: position and state word, not yet stored.
    pub(super) pending: Option<(u64, u32)>,
    /// A frame was published since the last [`Producer::wake_consumer`].
    pub(super) unnotified: bool,
    _not_sync: PhantomData<Cell<()>>,
}

impl<R: Region> fmt::Debug for Producer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.geo.capacity)
            .field("write", &self.write)
            .field("read_cache", &self.read_cache)
            .finish_non_exhaustive()
    }
}

impl<R: Region> Producer<R> {
    /// Claims the producer side of `region`, marking it with `token`, and recovers
    /// the write position (after a crashed or departed producer: the end of the
    /// committed frames).
    ///
    /// # Errors
    /// [`ClaimError::Taken`] with the holder's token if a producer holds the ring;
    /// [`ClaimError::Corrupted`] if the shared positions or frames are invalid (the
    /// claim is then given back).
    pub fn claim(region: R, token: NonZeroU32) -> Result<Self, ClaimError> {
        Self::claim_from(region, token, 0)
    }

    /// Claims the producer side from a holder that is known to be gone (crashed).
    ///
    /// # Errors
    /// As [`Producer::claim`]; `Taken` if the owner word no longer holds `previous`.
    ///
    /// # Safety
    /// The handle that claimed with `previous` must no longer be in use by any thread
    /// of this process (two producers would alias the same grant bytes). Another
    /// process is outside Rust's reach; the caller must know it has exited.
    pub unsafe fn take_over(
        region: R,
        token: NonZeroU32,
        previous: NonZeroU32,
    ) -> Result<Self, ClaimError> {
        Self::claim_from(region, token, previous.get())
    }

    fn claim_from(region: R, token: NonZeroU32, previous: u32) -> Result<Self, ClaimError> {
        let owner = &region.control().producer.owner;
        claim_owner(owner, previous, token).map_err(|owner| ClaimError::Taken { owner })?;
        match Self::recover(&region) {
            Ok((write, read)) => {
                let mut producer = Self {
                    geo: Geometry::of(&region),
                    region,
                    write,
                    read_cache: read,
                    batching: false,
                    pending: None,
                    unnotified: false,
                    _not_sync: PhantomData,
                };
                producer.publish_write();
                count_claim(&producer.region.control().producer.claims);
                Ok(producer)
            }
            Err(c) => {
                release_owner(owner, previous);
                Err(ClaimError::Corrupted(c))
            }
        }
    }

    /// Finds the end of the committed frames: from the later of the two published
    /// positions, walk frame headers until an empty one. Bounded by the capacity.
    fn recover(region: &R) -> Result<(u64, u64), Corruption> {
        let geo = Geometry::of(region);
        let control = region.control();
        // SYNC: Acquire pairs with the consumer's Release publication: its reads of
        // the frames below `read` happen before we overwrite them.
        let read = control.consumer.read_position.load(Ordering::Acquire);
        let bad_read = Corruption::ReadPosition {
            found: read,
            min: 0,
            max: MAX_POSITION,
        };
        if read > MAX_POSITION {
            return Err(bad_read);
        }
        let read = check_aligned(read, bad_read)?;
        let limit = read + geo.capacity;
        // Relaxed: a hint; the claim's Acquire orders the previous producer's writes.
        let hint = control.producer.write_position.load(Ordering::Relaxed);
        let mut write = check_aligned(
            hint,
            Corruption::WritePosition {
                found: hint,
                min: 0,
                max: limit,
            },
        )?;
        if write > limit {
            return Err(Corruption::WritePosition {
                found: hint,
                min: read,
                max: limit,
            });
        }
        write = write.max(read);
        loop {
            // Relaxed: ordered by the claim's Acquire (frames of earlier producers)
            // or by program order (none of ours yet).
            let word = region.frame_word(geo.offset(write)).load(Ordering::Relaxed);
            let size = match geo.decode(write, word)? {
                None => return Ok((write, read)),
                Some(Frame::Skip { size }) => size,
                Some(Frame::Message { len } | Frame::Run { total: len }) => frame_size(len.into()),
            };
            let end = write + size;
            if end + HEADER > limit {
                return Err(Corruption::FrameBeyondWindow {
                    position: write,
                    end,
                    limit: limit - HEADER,
                });
            }
            write = end;
        }
    }

    /// Size of the data region.
    pub fn capacity(&self) -> usize {
        self.geo.capacity as usize
    }

    /// Largest message this ring takes.
    pub fn max_message_len(&self) -> usize {
        self.geo.max_len as usize
    }

    /// Reads the consumer's published position and validates it.
    #[inline(never)]
    fn refresh_read(&mut self) -> Result<(), Corruption> {
        // SYNC: Acquire pairs with the Release store in `Consumer::publish`: the
        // consumer's reads (and RELEASED marks) of frames below it happen before our
        // writes into those bytes.
        let found = self
            .region
            .control()
            .consumer
            .read_position
            .load(Ordering::Acquire);
        if found < self.read_cache || found > self.write || found % 8 != 0 {
            return Err(Corruption::ReadPosition {
                found,
                min: self.read_cache,
                max: self.write,
            });
        }
        self.read_cache = found;
        Ok(())
    }

    /// Where a frame for `len` bytes goes: `(start, padding)`, checking space.
    ///
    /// The common case (no padding, space known free from the cached position) is
    /// a few compares inline; everything else goes to [`Self::reserve_slow`].
    #[inline(always)]
    pub(super) fn reserve(&mut self, len: usize) -> Result<(u64, u64), PushError> {
        if len as u64 <= self.geo.max_len {
            let size = frame_size(len as u64);
            // The frame fits before the end of the data region, and it and the
            // zeroed header after it stay below the cached read position plus the
            // capacity (the cache is at most the true position: conservative).
            if (self.write & self.geo.mask) + size <= self.geo.capacity
                && self.write + size + HEADER <= self.read_cache + self.geo.capacity
            {
                return Ok((self.write, 0));
            }
        }
        self.reserve_slow(len)
    }

    /// [`Self::reserve`] when the message is too large, needs padding first, or the
    /// cached read position says the ring is full.
    #[cold]
    #[inline(never)]
    fn reserve_slow(&mut self, len: usize) -> Result<(u64, u64), PushError> {
        if len as u64 > self.geo.max_len {
            return Err(PushError::TooLarge {
                len,
                max: self.geo.max_len as usize,
            });
        }
        let size = frame_size(len as u64);
        let tail = self.geo.capacity - (self.write & self.geo.mask);
        let padding = if size <= tail { 0 } else { tail };
        // The frame and the zeroed header after it must stay below the consumer's
        // position plus the capacity.
        let end = self.write + padding + size + HEADER;
        if end > self.read_cache + self.geo.capacity {
            self.refresh_read().map_err(PushError::Corrupted)?;
            let limit = self.read_cache + self.geo.capacity;
            if end > limit {
                return Err(PushError::Full {
                    needed: end - self.write,
                    free: limit - self.write,
                });
            }
        }
        Ok((self.write + padding, padding))
    }

    /// Reserves a frame for a message of up to `len` bytes and lends its payload
    /// bytes for writing in place. Nothing is visible to the consumer until
    /// [`Grant::commit`]; dropping the grant commits nothing.
    ///
    /// The bytes are shared memory: they hold whatever was there before.
    ///
    /// # Errors
    /// [`PushError::TooLarge`] beyond [`max_message_len`](Self::max_message_len),
    /// [`PushError::Full`] when the space is not free yet, [`PushError::Corrupted`]
    /// if the consumer's published position is invalid.
    pub fn grant(&mut self, len: usize) -> Result<Grant<'_, R>, PushError> {
        let (start, padding) = self.reserve(len)?;
        if padding != 0 {
            self.write_padding(start, padding);
        }
        let size = frame_size(len as u64) as usize;
        self.region.will_write(self.geo.offset(start), size);
        Ok(Grant {
            producer: self,
            position: start,
            len,
        })
    }

    /// Fills the rest of the lap with a padding frame of `padding` bytes; the
    /// message goes at `start`, the beginning of the next lap. Once a lap.
    #[cold]
    #[inline(never)]
    pub(super) fn write_padding(&mut self, start: u64, padding: u64) {
        // Relaxed: published by the Release store of the padding just below.
        self.region.frame_word(0).store(0, Ordering::Relaxed);
        // SYNC: Release pairs with the consumer's Acquire load of this word: the
        // zeroed header at the start of the next lap is visible once it skips the
        // padding.
        self.region.frame_word(self.geo.offset(self.write)).store(
            FRAME_COMMITTED | FRAME_PADDING | (padding - HEADER) as u32,
            Ordering::Release,
        );
        self.write = start;
    }

    /// Copies `message` into the ring as one message and publishes it.
    ///
    /// # Errors
    /// As [`Producer::grant`].
    #[inline]
    pub fn push(&mut self, message: &[u8]) -> Result<(), PushError> {
        // The common case inline, on copies of the fields: a store into the data
        // region could alias `self` as far as the compiler knows, and it would
        // reload every field after the payload copy.
        let geo = self.geo;
        let len = message.len();
        let write = self.write;
        if len as u64 <= geo.max_len {
            let size = frame_size(len as u64);
            // As in `reserve`: no padding needed, space known free.
            if geo.offset(write) as u64 + size <= geo.capacity
                && write + size + HEADER <= self.read_cache + geo.capacity
            {
                let offset = geo.offset(write);
                self.region.will_write(offset, size as usize);
                // SAFETY: as in `Grant::deref_mut`: the frame lies within the data
                // region and the space the consumer has released, so nothing else
                // in this process touches these `len` bytes until the commit below.
                let payload = unsafe {
                    slice::from_raw_parts_mut(
                        self.region.data().add(offset + FRAME_HEADER_SIZE),
                        len,
                    )
                };
                copy_message(payload, message);
                self.commit_in(geo, write, len);
                return Ok(());
            }
        }
        self.push_slow(message)
    }

    /// [`Producer::push`] when the message needs padding first, does not fit, or is
    /// too large.
    #[cold]
    #[inline(never)]
    fn push_slow(&mut self, message: &[u8]) -> Result<(), PushError> {
        let mut grant = self.grant(message.len())?;
        copy_message(&mut grant, message);
        grant.commit(message.len());
        Ok(())
    }

    pub(super) fn commit(&mut self, position: u64, len: usize) {
        self.commit_in(self.geo, position, len);
    }

    /// [`Producer::commit`] with a copy of the geometry (see `push`).
    #[inline(always)]
    fn commit_in(&mut self, geo: Geometry, position: u64, len: usize) {
        let offset = geo.offset(position);
        let size = frame_size(len as u64);
        let next = position + size;
        self.region.will_write(offset, size as usize);
        let word = FRAME_COMMITTED | len as u32;
        if !self.batching {
            // Relaxed: published by the Release store of this frame's state word,
            // which the consumer reads before the next one.
            self.region
                .frame_word(geo.offset(next))
                .store(0, Ordering::Relaxed);
            // SYNC: Release pairs with the Acquire load in `Consumer::read`: the
            // payload and the zeroed next header are visible with the state word.
            self.region
                .frame_word(offset)
                .store(word, Ordering::Release);
            self.write = next;
            self.publish_write();
        } else {
            self.close_in_batch(position, word);
            self.write = next;
        }
    }

    pub(super) fn publish_write(&mut self) {
        // SYNC: Release pairs with the Acquire load in `Consumer::backlog`: every
        // frame below this position is committed when it is seen.
        self.region
            .control()
            .producer
            .write_position
            .store(self.write, Ordering::Release);
        self.unnotified = true;
    }

    /// Wakes the consumer if it is waiting, after messages were published. Costs
    /// the futex's [`notifier_fence`](Futex::notifier_fence) and a load when nobody
    /// waits; nothing if nothing was published since
    /// the last call. Callers whose consumer may block call this after each commit
    /// (or batch).
    pub fn wake_consumer<F: Futex + ?Sized>(&mut self, futex: &F) {
        if self.unnotified {
            self.unnotified = false;
            notify(&self.region.control().signals.data_signal, futex);
        }
    }

    /// Blocks until a message of `len` bytes fits, or the deadline passes. Returns
    /// at once if it fits now.
    ///
    /// # Errors
    /// [`WaitError::TimedOut`], [`WaitError::TooLarge`] or [`WaitError::Corrupted`].
    pub fn wait_for_space<F: Futex + ?Sized>(
        &mut self,
        len: usize,
        futex: &F,
        deadline: Option<F::Deadline>,
    ) -> Result<(), WaitError> {
        loop {
            match self.register_unless_fits(len, WAITING, futex)? {
                None => return Ok(()),
                Some(key) => {
                    futex.wait(&self.region.control().signals.space_signal, key, deadline)?
                }
            }
        }
    }

    /// Arms the caller's readiness descriptor (doorbell) for room: [`Readiness::Ready`]
    /// if a message of `len` bytes fits now, else [`Readiness::Armed`], and the
    /// consumer's next release notification rings the doorbell
    /// ([`Futex::ring_doorbell`]). Never blocks.
    ///
    /// # Errors
    /// [`WaitError::TooLarge`] or [`WaitError::Corrupted`].
    pub fn arm_for_space<F: Futex + ?Sized>(
        &mut self,
        len: usize,
        futex: &F,
    ) -> Result<Readiness, WaitError> {
        Ok(match self.register_unless_fits(len, ARMED, futex)? {
            None => Readiness::Ready,
            Some(_) => Readiness::Armed,
        })
    }

    /// The waiter's side of the wait/notify protocol ([`crate::wait`]): `None` if
    /// `len` bytes fit; otherwise registers `bit` on the space signal and checks
    /// again: `None` if room appeared meanwhile, else the key to sleep on.
    fn register_unless_fits<F: Futex + ?Sized>(
        &mut self,
        len: usize,
        bit: u32,
        futex: &F,
    ) -> Result<Option<u32>, WaitError> {
        let fits = |p: &mut Self| match p.reserve(len) {
            Ok(_) => Ok(true),
            Err(PushError::Full { .. }) => Ok(false),
            Err(PushError::TooLarge { len, max }) => Err(WaitError::TooLarge { len, max }),
            Err(PushError::Corrupted(c)) => Err(WaitError::Corrupted(c)),
        };
        if fits(self)? {
            return Ok(None);
        }
        let key = prepare_wait(&self.region.control().signals.space_signal, bit, futex);
        // Ordered after the registration by `prepare_wait`'s fence.
        if fits(self)? {
            return Ok(None);
        }
        Ok(Some(key))
    }
}

impl<R: Region> Drop for Producer<R> {
    fn drop(&mut self) {
        self.end_batch();
        self.publish_write();
        // The next producer's recovery sees every frame we wrote.
        release_owner(&self.region.control().producer.owner, 0);
    }
}
