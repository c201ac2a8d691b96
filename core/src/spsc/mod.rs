//! The single-producer single-consumer ring of variable-length messages.
//!
//! # Frames
//!
//! The data region holds frames, each starting on an 8-byte boundary:
//!
//! ```text
//! +0  u32  state: 0 = nothing yet, else COMMITTED | [PADDING] | [RELEASED] | [RUN] | len
//! +4  u32  run word (run frames only): message length | released count << 16
//! +8  len payload bytes, then zero to 7 bytes up to the next multiple of 8
//! ```
//!
//! A frame never crosses the end of the data region: where a message does not fit
//! before it, a padding frame fills the rest and the message starts the next lap.
//!
//! A run frame (written only by a [`Batch`]) packs consecutive messages of one
//! length, each starting at a multiple of 8 after the header: an 8-byte message
//! takes 8 bytes instead of 16. The consumer hands them out one by one as if each
//! had a frame of its own; releasing one before the last records the count in the
//! run word, so that a successor resumes after it.
//!
//! # Publication (one cache line per small message)
//!
//! The producer fills a frame, writes a zero into the state word *after* it (the
//! next frame's header), then stores the frame's state word with Release. The
//! consumer polls the state word at its read position with Acquire: when it turns
//! non-zero the whole frame is visible. A small message and its header share a line,
//! so a message crosses between cores as one line; the consumer never reads the
//! producer's position to find a message (only, once per 2 KiB, as a hint for
//! prefetching: `PREFETCH_FAR`).
//!
//! The shared positions are for flow control. The producer reads `read_position`
//! only when its cached copy says the ring is full. The consumer publishes it
//! lazily: when it has released everything committed so far, after a quarter of the
//! capacity, or when the producer is waiting for space. While the producer runs
//! ahead, the position line changes hands once per quarter capacity, not per
//! message. Each released frame is also marked `RELEASED` in place, so a consumer
//! that takes over after a crash skips what was released but not yet published:
//! nothing is delivered twice.

mod error;
pub mod layout;
pub mod region;

use core::cell::Cell;
use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::ops::{Deref, DerefMut};
use core::{fmt, slice};

use crate::sync::{AtomicU32, Ordering};
use crate::wait::{Futex, WAITING, notify, prepare_wait};
pub use error::{ClaimError, Corruption, PopError, PushError, ReadError, WaitError};
use layout::{
    FRAME_COMMITTED, FRAME_HEADER_SIZE, FRAME_LEN_MASK, FRAME_PADDING, FRAME_RELEASED, FRAME_RUN,
    MAX_RUN_COUNT, RUN_LEN_MASK, RUN_RELEASED_SHIFT, max_message_len,
};
pub use region::Region;
#[cfg(not(shmring_loom))]
pub use region::{RawRegion, SegmentInfo};

const HEADER: u64 = FRAME_HEADER_SIZE as u64;

/// How far ahead (bytes) the consumer prefetches the lines it will read.
const PREFETCH_AHEAD: u64 = 256;

/// How far ahead (bytes) `read_batch` keeps the lines it will read prefetched,
/// while the producer is known to be at least [`PREFETCH_FAR`] ahead. A batch read
/// walks its frames faster than the lines arrive one by one (a run's messages need
/// no header each), so it asks for many at once.
const READ_AHEAD: u64 = 2048;

/// The consumer prefetches message by message only while the producer is known to
/// be at least this many bytes ahead: near the producer, a prefetch would pull the
/// line it is writing (see "Performance notes" in ARCHITECTURE.md).
const PREFETCH_FAR: u64 = 4096;

/// The consumer reads the producer's `write_position` for its prefetch hint at most
/// once per this many bytes consumed: the producer stores it on every commit, so
/// each read moves its line.
const HINT_REFRESH: u64 = 2048;

/// The largest position either side accepts from shared memory. Positions count
/// bytes since the ring was made; at 100 GB/s they would reach this after five
/// years. Below it, `position + 2 * capacity` and the like cannot overflow.
const MAX_POSITION: u64 = u64::MAX - 4 * layout::MAX_CAPACITY as u64;

/// Bytes a frame with a `len`-byte payload spans.
#[inline]
const fn frame_size(len: u64) -> u64 {
    (len + HEADER + 7) & !7
}

/// Bytes a `len`-byte message spans inside a run: its length rounded up to 8.
#[inline]
const fn stride(len: u64) -> u64 {
    (len + 7) & !7
}

/// `Consumer::run_at` when no run is being read: no frame starts there.
const NO_RUN: u64 = u64::MAX;

/// A decoded, validated frame state word.
#[derive(Clone, Copy)]
enum Frame {
    /// A message of `len` bytes, not yet released.
    Message { len: u32 },
    /// A released message or padding: skip `size` bytes.
    Skip { size: u64 },
    /// A run of messages (not all released) with `total` payload bytes; its run
    /// word is still to be read and checked.
    Run { total: u32 },
}

/// What the consumer finds at its read position.
enum Next {
    /// A message at `position` (after any skipped frames).
    Message { position: u64, word: u32, len: u32 },
    /// Nothing committed at `position` (after any skipped frames).
    Empty { position: u64 },
    /// A run frame at `position` (after any skipped frames) of `count` messages of
    /// `len` bytes, of which the first `released` were released; all checked.
    Run {
        position: u64,
        word: u32,
        len: u32,
        count: u32,
        released: u32,
    },
}

/// What both sides know about the data region, copied once from the trusted region.
#[derive(Clone, Copy)]
struct Geometry {
    capacity: u64,
    mask: u64,
    max_len: u64,
}

impl Geometry {
    fn of<R: Region>(region: &R) -> Self {
        let capacity = region.capacity();
        debug_assert!(capacity.is_power_of_two());
        Self {
            capacity: capacity as u64,
            mask: capacity as u64 - 1,
            max_len: max_message_len(capacity) as u64,
        }
    }

    #[inline]
    fn offset(&self, position: u64) -> usize {
        (position & self.mask) as usize
    }

    /// Validates the state `word` of the frame at `position`; `None` if empty.
    /// Every frame this accepts lies within the data region and its payload within
    /// the largest message.
    #[inline]
    fn decode(&self, position: u64, word: u32) -> Result<Option<Frame>, Corruption> {
        if word == 0 {
            return Ok(None);
        }
        let bad = word & FRAME_COMMITTED == 0
            || word & (FRAME_PADDING | FRAME_RELEASED) == FRAME_PADDING | FRAME_RELEASED
            || word & (FRAME_PADDING | FRAME_RUN) == FRAME_PADDING | FRAME_RUN;
        if bad {
            return Err(Corruption::BadFrameHeader { position, word });
        }
        let len = word & FRAME_LEN_MASK;
        let size = frame_size(len.into());
        let tail = self.capacity - (position & self.mask);
        if word & FRAME_PADDING != 0 {
            if size != tail {
                return Err(Corruption::BadPadding {
                    position,
                    size,
                    expected: tail,
                });
            }
            return Ok(Some(Frame::Skip { size }));
        }
        let limit = self.max_len.min(tail - HEADER);
        if u64::from(len) > limit {
            return Err(Corruption::FrameTooLong {
                position,
                len,
                limit,
            });
        }
        if word & FRAME_RELEASED != 0 {
            Ok(Some(Frame::Skip { size }))
        } else if word & FRAME_RUN != 0 {
            Ok(Some(Frame::Run { total: len }))
        } else {
            Ok(Some(Frame::Message { len }))
        }
    }

    /// Validates the run word `run` of the run frame at `position`, whose state word
    /// `word` announced `total` payload bytes (already checked by `decode`): returns
    /// `(len, count, released)`, with `1 <= len`, `count * stride(len) == total` and
    /// `released < count`.
    fn decode_run(
        &self,
        position: u64,
        word: u32,
        total: u32,
        run: u32,
    ) -> Result<(u32, u32, u32), Corruption> {
        let len = run & RUN_LEN_MASK;
        let released = run >> RUN_RELEASED_SHIFT;
        let bad = Corruption::BadRun {
            position,
            word,
            run_word: run,
        };
        if len == 0 || u64::from(len) > self.max_len {
            return Err(bad);
        }
        let stride = stride(len.into()) as u32;
        // 8-byte multiples: a shift for the common power-of-two strides.
        let count = if stride.is_power_of_two() {
            total >> stride.trailing_zeros()
        } else {
            total / stride
        };
        if count * stride != total {
            return Err(bad);
        }
        if count > MAX_RUN_COUNT || released >= count {
            return Err(bad);
        }
        Ok((len, count, released))
    }

    /// The common case of [`Geometry::decode`] and the window check after it: the
    /// state `word` of the frame at `position` is a committed message, neither
    /// padding nor released, whose payload lies within the data region and the
    /// largest message, and whose frame ends at or below `limit`. Returns its
    /// length; `None` for anything else (empty, skippable or invalid), which the
    /// caller then decodes in full. It accepts exactly the messages `decode` and
    /// the window check accept.
    #[inline(always)]
    fn plain_message(&self, position: u64, word: u32, limit: u64) -> Option<u32> {
        // A plain message's word is COMMITTED | len, PADDING and RELEASED clear:
        // less COMMITTED it is `len`. Any other word (empty, not committed, padding
        // released or a run) leaves at least FRAME_RUN, more than any payload limit
        // (see the assertion below), so one compare checks the flags and the length.
        let len = word.wrapping_sub(FRAME_COMMITTED);
        // `tail - HEADER` in `decode`: the payload ends within the data region.
        let room = self.capacity - (position & self.mask) - HEADER;
        if u64::from(len) <= self.max_len.min(room) && position + frame_size(len.into()) <= limit {
            Some(len)
        } else {
            None
        }
    }
}

// `Geometry::plain_message` relies on every payload limit being below the flag bits.
const _: () = assert!(max_message_len(layout::MAX_CAPACITY) < FRAME_RUN as usize);
// Every flag lies above the length field.
const _: () = assert!(FRAME_LEN_MASK == FRAME_RUN - 1 && FRAME_RUN < FRAME_RELEASED);

/// Copies `src` into `dst`, of the same length. Most messages are small, and a
/// call to `memcpy` for 8 bytes costs more than the rest of a push: up to 16 bytes
/// are copied inline with at most two (overlapping) word moves.
#[inline(always)]
fn copy_message(dst: &mut [u8], src: &[u8]) {
    let len = src.len();
    if dst.len() == len && (8..=16).contains(&len) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[len - 8..].copy_from_slice(&src[len - 8..]);
    } else if dst.len() == len && (4..8).contains(&len) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[len - 4..].copy_from_slice(&src[len - 4..]);
    } else {
        dst.copy_from_slice(src);
    }
}

fn check_aligned(found: u64, corruption: Corruption) -> Result<u64, Corruption> {
    if found % 8 == 0 {
        Ok(found)
    } else {
        Err(corruption)
    }
}

/// Claims a role: moves its owner word from `previous` (0: unclaimed) to `token`.
fn claim_owner(owner: &AtomicU32, previous: u32, token: NonZeroU32) -> Result<(), ClaimError> {
    // SYNC: Acquire pairs with the Release store in `release_owner`: what the
    // previous holder wrote (frames, positions, RELEASED marks) is visible to the
    // claimant's recovery.
    match owner.compare_exchange(previous, token.get(), Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Ok(()),
        Err(found) => Err(ClaimError::Taken { owner: found }),
    }
}

/// Counts a successful claim in the role's `claims` word, so that an observer can
/// tell "the peer has gone" from "no peer yet".
fn count_claim(claims: &AtomicU32) {
    // Relaxed: a statistic read by observers; the liveness mechanism that pairs it
    // with "no holder now" (the `shmring` crate's locks) orders it by system calls.
    claims.fetch_add(1, Ordering::Relaxed);
}

/// Gives a role back: stores `value` (0, or the previous holder's token when a
/// claim is abandoned) into its owner word.
fn release_owner(owner: &AtomicU32, value: u32) {
    // SYNC: Release pairs with the Acquire compare-exchange in `claim_owner`.
    owner.store(value, Ordering::Release);
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
    region: R,
    geo: Geometry,
    /// Next frame position: exact, private.
    write: u64,
    /// The consumer's position as last read; at most the true one, can be stale.
    read_cache: u64,
    /// Inside a [`Batch`].
    batching: bool,
    /// The first frame of the open batch: position and state word, not yet stored.
    pending: Option<(u64, u32)>,
    /// A run is open in the batch (see [`FRAME_RUN`]): its messages end at `write`;
    /// its header is written when it closes.
    run_open: bool,
    /// Length of the open run's messages.
    run_len: u32,
    /// Position of the open run's header.
    run_start: u64,
    /// The open run may grow while `write` stays at or below this: the end of the
    /// lap, the largest frame, the most messages a run holds, and the space known
    /// free (less the zeroed header after the run), whichever comes first.
    run_limit: u64,
    /// A frame was published since the last [`Producer::wake_consumer`].
    unnotified: bool,
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
        claim_owner(owner, previous, token)?;
        match Self::recover(&region) {
            Ok((write, read)) => {
                let mut producer = Self {
                    geo: Geometry::of(&region),
                    region,
                    write,
                    read_cache: read,
                    batching: false,
                    pending: None,
                    run_open: false,
                    run_len: 0,
                    run_start: 0,
                    run_limit: 0,
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
    fn reserve(&mut self, len: usize) -> Result<(u64, u64), PushError> {
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
    fn write_padding(&mut self, start: u64, padding: u64) {
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

    /// Opens a batch: messages committed through it become visible together, when
    /// it is published or dropped, with one Release store.
    pub fn batch(&mut self) -> Batch<'_, R> {
        self.batching = true;
        Batch {
            data: self.region.data(),
            mask: self.geo.mask,
            producer: self,
            open_len: NOT_OPEN,
            run_end: 0,
            run_limit: 0,
        }
    }

    fn commit(&mut self, position: u64, len: usize) {
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
            // An open run lies before this frame: its header first, so that the
            // batch's first frame is the one held back.
            self.close_run();
            self.close_in_batch(position, word);
            self.write = next;
        }
    }

    /// Writes the state word of a frame of the open batch: held back if it is the
    /// batch's first frame, else stored now.
    #[inline(always)]
    fn close_in_batch(&mut self, position: u64, word: u32) {
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

    /// Closes the open run, if any, and opens one for messages of `len` bytes
    /// (`1..=RUN_LEN_MASK`) at the write position: room for one is reserved (with
    /// padding before it if needed); the run holds none yet.
    fn open_run(&mut self, len: usize) -> Result<(), PushError> {
        debug_assert!(len != 0 && len <= RUN_LEN_MASK as usize);
        self.close_run();
        let (start, padding) = self.reserve(len)?;
        if padding != 0 {
            self.write_padding(start, padding);
        }
        let geo = self.geo;
        let stride = stride(len as u64);
        let lap_end = start - (start & geo.mask) + geo.capacity;
        self.run_open = true;
        self.run_start = start;
        self.run_len = len as u32;
        self.write = start + HEADER;
        // `reserve` checked that one message fits: the limit is at least
        // `write + stride`.
        self.run_limit = lap_end
            .min(start + HEADER + geo.max_len)
            .min(start + HEADER + u64::from(MAX_RUN_COUNT) * stride)
            .min(self.read_cache + geo.capacity - HEADER);
        Ok(())
    }

    /// Writes the open run's header and closes it: a run frame, a plain message
    /// frame if it holds one message, nothing if it holds none.
    #[inline]
    fn close_run(&mut self) {
        if !self.run_open {
            return;
        }
        self.run_open = false;
        let total = self.write - self.run_start - HEADER;
        if total == 0 {
            self.write = self.run_start;
            return;
        }
        let word = if total == stride(self.run_len.into()) {
            FRAME_COMMITTED | self.run_len
        } else {
            // Relaxed: published with the batch, by the Release store of its first
            // state word, after this in program order.
            self.region
                .run_word(self.geo.offset(self.run_start))
                .store(self.run_len, Ordering::Relaxed);
            FRAME_COMMITTED | FRAME_RUN | total as u32
        };
        self.close_in_batch(self.run_start, word);
    }

    fn end_batch(&mut self) {
        self.close_run();
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

    fn publish_write(&mut self) {
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
        let fits = |p: &mut Self| match p.reserve(len) {
            Ok(_) => Ok(true),
            Err(PushError::Full { .. }) => Ok(false),
            Err(PushError::TooLarge { len, max }) => Err(WaitError::TooLarge { len, max }),
            Err(PushError::Corrupted(c)) => Err(WaitError::Corrupted(c)),
        };
        loop {
            if fits(self)? {
                return Ok(());
            }
            let key = prepare_wait(&self.region.control().signals.space_signal, futex);
            if fits(self)? {
                return Ok(());
            }
            futex.wait(&self.region.control().signals.space_signal, key, deadline)?;
        }
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

/// A frame lent to the producer for writing in place. Derefs to its payload bytes.
///
/// [`commit`](Grant::commit) publishes it; dropping it publishes nothing.
pub struct Grant<'a, R: Region> {
    producer: &'a mut Producer<R>,
    position: u64,
    len: usize,
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

/// Messages committed through a batch are published together by one Release store
/// (the first frame's state word, written last) when the batch is published or
/// dropped.
///
/// While it is open the consumer sees none of them; a batch that fills the ring gets
/// [`PushError::Full`] and must be published before the consumer can make room.
pub struct Batch<'a, R: Region> {
    producer: &'a mut Producer<R>,
    // The open run's cursor, kept here rather than in the producer so that the
    // compiler holds it in registers across pushes (a store into the data region
    // could alias the producer's fields, as far as it knows). Written back to the
    // producer (`flush`) before anything else touches the run.
    /// Length of the open run's messages; [`NOT_OPEN`] when none is open.
    open_len: usize,
    /// Where the run's next message goes (the producer's write position).
    run_end: u64,
    /// The producer's `run_limit`.
    run_limit: u64,
    /// The data region and its mask, copied likewise.
    data: *mut u8,
    mask: u64,
}

/// `Batch::open_len` when no run is open: no message has this length.
const NOT_OPEN: usize = usize::MAX;

/// A [`Batch`]'s run cursor: `open_len`, `run_end`, `run_limit`.
type RunCursor = (usize, u64, u64);

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
        self.flush();
        self.producer.close_run();
        self.open_len = NOT_OPEN;
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
        if len == self.open_len {
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
        // Passed and returned by value: a `&mut self` call would keep the cursor
        // in memory.
        let (result, cursor) = push_to_new_run(self.producer, self.cursor(), message);
        self.set_cursor(cursor);
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
        if count != 0 && (len != self.open_len || self.run_end + stride > self.run_limit) {
            let (result, cursor) = open_new_run(self.producer, self.cursor(), len);
            self.set_cursor(cursor);
            result?;
        }
        // At least one if `count` is: `open_run` reserved room for one. (With no
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

    fn cursor(&self) -> RunCursor {
        (self.open_len, self.run_end, self.run_limit)
    }

    fn set_cursor(&mut self, (open_len, run_end, run_limit): RunCursor) {
        self.open_len = open_len;
        self.run_end = run_end;
        self.run_limit = run_limit;
    }

    /// Writes the run cursor back to the producer.
    #[inline]
    fn flush(&mut self) {
        if self.open_len != NOT_OPEN {
            self.producer.write = self.run_end;
        }
    }

    /// Publishes the batch (the same as dropping it).
    pub fn publish(self) {}

    /// Publishes the batch, then [`Producer::wake_consumer`]: for a consumer that
    /// may be blocked.
    pub fn publish_and_wake<F: Futex + ?Sized>(mut self, futex: &F) {
        self.flush();
        self.open_len = NOT_OPEN;
        self.producer.end_batch();
        self.producer.wake_consumer(futex);
        // Drop ends the batch again: a no-op, nothing is pending.
    }
}

/// The producer's run state as a [`Batch`] cursor.
fn cursor_of<R: Region>(producer: &Producer<R>) -> RunCursor {
    if producer.run_open {
        (
            producer.run_len as usize,
            producer.write,
            producer.run_limit,
        )
    } else {
        (NOT_OPEN, 0, 0)
    }
}

/// [`Batch::push`] when no run is open, `message` has another length, or the run
/// cannot grow: writes the batch's `cursor` back, closes the run and opens
/// another with `message` in it (or, for a length no run takes, commits it as a
/// frame of its own); returns the new cursor.
#[inline(never)]
fn push_to_new_run<R: Region>(
    producer: &mut Producer<R>,
    (open_len, end, _): RunCursor,
    message: &[u8],
) -> (Result<(), PushError>, RunCursor) {
    if open_len != NOT_OPEN {
        producer.write = end;
    }
    let len = message.len();
    if len == 0 || len > RUN_LEN_MASK as usize || len as u64 > producer.geo.max_len {
        producer.close_run();
        let result = producer.push(message);
        return (result, cursor_of(producer));
    }
    if let Err(e) = producer.open_run(len) {
        return (Err(e), cursor_of(producer));
    }
    let offset = producer.geo.offset(producer.write);
    producer.region.will_write(offset, len);
    // SAFETY: `open_run` reserved room for one message of `len` bytes at `write`,
    // within the data region and the space the consumer has released.
    let payload = unsafe { slice::from_raw_parts_mut(producer.region.data().add(offset), len) };
    copy_message(payload, message);
    producer.region.will_write(offset, len);
    producer.write += stride(len as u64);
    (Ok(()), cursor_of(producer))
}

/// [`Batch::grant_run`] when the open run cannot take a message of `len` bytes:
/// writes the batch's `cursor` back and opens a run; returns the new cursor.
#[inline(never)]
fn open_new_run<R: Region>(
    producer: &mut Producer<R>,
    (open_len, end, _): RunCursor,
    len: usize,
) -> (Result<(), PushError>, RunCursor) {
    if open_len != NOT_OPEN {
        producer.write = end;
    }
    let result = producer.open_run(len);
    (result, cursor_of(producer))
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
        self.flush();
        self.producer.end_batch();
    }
}

/// The reading side of a ring.
///
/// Claimed once per ring (a claim word in the segment); `Send` but not `Sync`:
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<shmring_core::Consumer<shmring_core::RawRegion>>();
/// ```
pub struct Consumer<R: Region> {
    region: R,
    geo: Geometry,
    /// Next frame position: exact, private.
    read: u64,
    /// Last value stored to `read_position`; the producer writes below
    /// `published + capacity`, so no valid frame ends beyond that.
    published: u64,
    /// Last `write_position` seen by [`Consumer::backlog`].
    write_seen: u64,
    /// `write_position` as last read for prefetching, clamped to the window. Only
    /// decides whether to prefetch; never used to find or read a frame.
    written_hint: u64,
    /// Read position at which `written_hint` may be read again.
    hint_refresh_at: u64,
    /// `read_batch` has prefetched the lines below this position.
    prefetched: u64,
    /// A position was published since the last [`Consumer::wake_producer`].
    unnotified: bool,
    /// Position of the run frame being read, [`NO_RUN`] if none. While it equals
    /// `read`, the next message is the run's `run_next`-th: the run's header was
    /// read and checked once, on arrival, and these are our copies.
    run_at: u64,
    /// The run's state word.
    run_state: u32,
    /// Length of the run's messages.
    run_len: u32,
    /// Messages in the run.
    run_count: u32,
    /// Index of the run's next message (those before it are released).
    run_next: u32,
    _not_sync: PhantomData<Cell<()>>,
}

impl<R: Region> fmt::Debug for Consumer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.geo.capacity)
            .field("read", &self.read)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

impl<R: Region> Consumer<R> {
    /// Claims the consumer side of `region`, marking it with `token`. Reading
    /// resumes at the published read position, skipping messages a previous
    /// consumer released.
    ///
    /// # Errors
    /// [`ClaimError::Taken`] with the holder's token if a consumer holds the ring;
    /// [`ClaimError::Corrupted`] if the published position is invalid.
    pub fn claim(region: R, token: NonZeroU32) -> Result<Self, ClaimError> {
        Self::claim_from(region, token, 0)
    }

    /// Claims the consumer side from a holder that is known to be gone (crashed).
    /// Messages it read but did not release are delivered again; messages it
    /// released are not.
    ///
    /// # Errors
    /// As [`Consumer::claim`]; `Taken` if the owner word no longer holds `previous`.
    ///
    /// # Safety
    /// The handle that claimed with `previous` must no longer be in use by any thread
    /// of this process; another process must have exited.
    pub unsafe fn take_over(
        region: R,
        token: NonZeroU32,
        previous: NonZeroU32,
    ) -> Result<Self, ClaimError> {
        Self::claim_from(region, token, previous.get())
    }

    fn claim_from(region: R, token: NonZeroU32, previous: u32) -> Result<Self, ClaimError> {
        let control = region.control();
        let owner = &control.consumer.owner;
        claim_owner(owner, previous, token)?;
        let geo = Geometry::of(&region);
        // Relaxed: ordered by the claim's Acquire.
        let read = control.consumer.read_position.load(Ordering::Relaxed);
        if read % 8 != 0 || read > MAX_POSITION {
            release_owner(owner, previous);
            return Err(ClaimError::Corrupted(Corruption::ReadPosition {
                found: read,
                min: 0,
                max: MAX_POSITION,
            }));
        }
        count_claim(&control.consumer.claims);
        Ok(Self {
            region,
            geo,
            read,
            published: read,
            write_seen: 0,
            written_hint: read,
            hint_refresh_at: read,
            prefetched: read,
            unnotified: false,
            run_at: NO_RUN,
            run_state: 0,
            run_len: 0,
            run_count: 0,
            run_next: 0,
            _not_sync: PhantomData,
        })
    }

    /// Size of the data region.
    pub fn capacity(&self) -> usize {
        self.geo.capacity as usize
    }

    /// Largest message this ring takes.
    pub fn max_message_len(&self) -> usize {
        self.geo.max_len as usize
    }

    /// Borrows the next message in place. [`Message::release`] consumes it;
    /// dropping the [`Message`] leaves it for the next read.
    ///
    /// # Errors
    /// [`ReadError::Empty`] when no message is committed; [`ReadError::Corrupted`]
    /// when the next frame is invalid (the position does not move, so the error
    /// repeats until the peer repairs it).
    #[inline]
    pub fn read(&mut self) -> Result<Message<'_, R>, ReadError> {
        let (position, word, len) = self.find(self.geo)?;
        Ok(Message {
            consumer: self,
            position,
            word,
            len,
        })
    }

    /// Moves the read position to the next message and returns its position, state
    /// word and length; on `Empty`, publishes what was released. `geo` is a copy of
    /// the geometry, for the caller to use after the Acquire load in here.
    ///
    /// A message in a run is returned as if it had a frame of its own: its payload
    /// at `position + HEADER`, and the run's state word (with [`FRAME_RUN`]), which
    /// tells [`Self::release_in`] what it is.
    #[inline(always)]
    fn find(&mut self, geo: Geometry) -> Result<(u64, u32, usize), ReadError> {
        if self.run_at == self.read {
            return Ok(self.run_message());
        }
        match self.next_message_in(geo, self.window_end(), self.read) {
            Ok(Next::Message {
                position,
                word,
                len,
            }) => {
                self.read = position;
                Ok((position, word, len as usize))
            }
            Ok(Next::Run {
                position,
                word,
                len,
                count,
                released,
            }) => {
                self.read = position;
                self.enter_run(position, word, len, count, released);
                Ok(self.run_message())
            }
            Ok(Next::Empty { position }) => {
                self.read = position;
                // Found empty: give the producer what we have released.
                if self.read != self.published {
                    self.publish();
                }
                Err(ReadError::Empty)
            }
            Err(c) => Err(ReadError::Corrupted(c)),
        }
    }

    /// Starts reading the checked run at `position`.
    fn enter_run(&mut self, position: u64, word: u32, len: u32, count: u32, released: u32) {
        self.run_at = position;
        self.run_state = word;
        self.run_len = len;
        self.run_count = count;
        self.run_next = released;
    }

    /// The run's next message, as [`Self::find`] returns it.
    #[inline]
    fn run_message(&self) -> (u64, u32, usize) {
        let at = self.run_at + u64::from(self.run_next) * stride(self.run_len.into());
        (at, self.run_state, self.run_len as usize)
    }

    /// Loads the state word of the frame at `position`.
    #[inline(always)]
    fn load_word(&self, position: u64) -> u32 {
        // SYNC: Acquire pairs with the Release stores of the state word in
        // `Producer::commit`, `end_batch` and `write_padding`: the frame's bytes
        // and the zeroed header after it are visible once it is non-zero.
        self.region
            .frame_word(self.geo.offset(position))
            .load(Ordering::Acquire)
    }

    /// The producer writes below `published + capacity`, a frame and the zeroed
    /// header after it: no valid frame ends beyond this.
    #[inline(always)]
    fn window_end(&self) -> u64 {
        self.published + self.geo.capacity - HEADER
    }

    /// Finds the next message at or after `position`, skipping padding and
    /// released frames. Each state word is read once and validated.
    #[inline(always)]
    fn next_message(&self, position: u64) -> Result<Next, Corruption> {
        self.next_message_in(self.geo, self.window_end(), position)
    }

    /// [`Consumer::next_message`] with the geometry and window end passed in:
    /// copies in registers. (After an Acquire load the compiler reloads every field
    /// of `self` it uses, since another thread could have written it.)
    #[inline(always)]
    fn next_message_in(
        &self,
        geo: Geometry,
        limit: u64,
        position: u64,
    ) -> Result<Next, Corruption> {
        // SYNC: Acquire, as in `load_word`.
        let word = self
            .region
            .frame_word(geo.offset(position))
            .load(Ordering::Acquire);
        if let Some(len) = geo.plain_message(position, word, limit) {
            self.region
                .will_read(geo.offset(position) + FRAME_HEADER_SIZE, len as usize);
            return Ok(Next::Message {
                position,
                word,
                len,
            });
        }
        if word == 0 {
            return Ok(Next::Empty { position });
        }
        self.next_message_slow(position, word)
    }

    /// [`Consumer::next_message`] for anything but a plain message or an empty
    /// frame: `word`, already loaded from `position`, is padding, released, a run,
    /// or invalid. (Not `#[cold]`: a run starts each batch.)
    #[inline(never)]
    fn next_message_slow(&self, mut position: u64, mut word: u32) -> Result<Next, Corruption> {
        // Each pass advances `position` by at least 8 bytes and no valid frame ends
        // beyond `published + capacity`: at most capacity / 8 passes.
        loop {
            let Some(frame) = self.geo.decode(position, word)? else {
                return Ok(Next::Empty { position });
            };
            let size = match frame {
                Frame::Message { len } | Frame::Run { total: len } => frame_size(len.into()),
                Frame::Skip { size } => size,
            };
            let end = position + size;
            let limit = self.window_end();
            if end > limit {
                return Err(Corruption::FrameBeyondWindow {
                    position,
                    end,
                    limit,
                });
            }
            match frame {
                Frame::Skip { .. } => {
                    position = end;
                    word = self.load_word(position);
                }
                Frame::Message { len } => {
                    self.region
                        .will_read(self.geo.offset(position) + FRAME_HEADER_SIZE, len as usize);
                    return Ok(Next::Message {
                        position,
                        word,
                        len,
                    });
                }
                Frame::Run { total } => {
                    // Relaxed: the Acquire load of this state word (or of the batch's
                    // first, which the producer stored after this one) orders it.
                    let run = self
                        .region
                        .run_word(self.geo.offset(position))
                        .load(Ordering::Relaxed);
                    let (len, count, released) = self.geo.decode_run(position, word, total, run)?;
                    return Ok(Next::Run {
                        position,
                        word,
                        len,
                        count,
                        released,
                    });
                }
            }
        }
    }

    /// Reads up to `max` messages in place, calling `f` on each in order, then
    /// releases them all with one publication of the read position (no per-message
    /// mark). Returns how many were read: 0 when the ring is empty.
    ///
    /// If `f` panics, nothing of this call is released. If the consumer dies while
    /// `f` runs, the whole call's messages are delivered again to the next consumer.
    ///
    /// # Errors
    /// [`Corruption`] if the first frame is invalid. A bad frame after some
    /// messages ends the batch early; the next call reports it.
    pub fn read_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, Corruption> {
        let mut position = self.read;
        let mut count = 0;
        // Copies for the loop (see `next_message_in`).
        let geo = self.geo;
        let limit = self.window_end();
        let data = self.region.data();
        self.prefetch_window(geo, position);
        while count < max {
            if self.run_at == position {
                // Inside a run: its messages lie one stride apart.
                let len = self.run_len as usize;
                let stride = stride(self.run_len.into());
                let take = (self.run_count - self.run_next).min((max - count) as u32);
                let mut at = self.run_at + HEADER + u64::from(self.run_next) * stride;
                for _ in 0..take {
                    let offset = geo.offset(at);
                    // SAFETY: the run was checked on arrival to lie within the data
                    // region (`decode`) and to hold `run_count` messages of `len`
                    // bytes one stride apart (`decode_run`); the producer does not
                    // write them before we publish a position past the run.
                    let payload = unsafe { slice::from_raw_parts(data.add(offset), len) };
                    f(payload);
                    self.region.will_read(offset, len);
                    at += stride;
                }
                self.run_next += take;
                count += take as usize;
                if self.run_next < self.run_count {
                    break;
                }
                position = self.run_at + frame_size(u64::from(self.run_count) * stride);
                self.run_at = NO_RUN;
                continue;
            }
            let (at, len) = match self.next_message_in(geo, limit, position) {
                Ok(Next::Message { position, len, .. }) => (position, len),
                Ok(Next::Run {
                    position: at,
                    word,
                    len,
                    count: n,
                    released,
                }) => {
                    position = at;
                    self.enter_run(at, word, len, n, released);
                    continue;
                }
                Ok(Next::Empty { position: end }) => {
                    position = end;
                    break;
                }
                Err(c) if count == 0 => return Err(c),
                Err(_) => break,
            };
            let offset = geo.offset(at) + FRAME_HEADER_SIZE;
            // Frames are found one after another, each through its header: start
            // the transfer of the lines ahead before we get there.
            crate::sync::prefetch_read(data.wrapping_add(geo.offset(at + PREFETCH_AHEAD)));
            // SAFETY: `next_message_in` checked that the payload lies within the data
            // region; the producer does not write it before we publish a position
            // past it, below, after the last call of `f`.
            let payload = unsafe { slice::from_raw_parts(data.add(offset), len as usize) };
            f(payload);
            self.region.will_read(offset, len as usize);
            position = at + frame_size(len.into());
            count += 1;
        }
        self.read = position;
        if self.run_at == position {
            self.record_run_progress();
        }
        if count == max {
            self.caught_up();
        }
        if self.read != self.published {
            self.publish();
        }
        Ok(count)
    }

    /// Copies the next message into `buf` and consumes it; returns its length.
    ///
    /// # Errors
    /// [`PopError::Empty`]; [`PopError::BufferTooSmall`] with the message's length,
    /// consuming nothing; [`PopError::Corrupted`].
    #[inline]
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        let geo = self.geo;
        let (position, word, len) = self.find(geo)?;
        let Some(dst) = buf.get_mut(..len) else {
            return Err(PopError::BufferTooSmall {
                len,
                buffer: buf.len(),
            });
        };
        // SAFETY: as in `Message::deref`: `find` checked that the payload lies
        // within the data region, and the producer does not write these bytes
        // before we publish a position past them (in `release_in`, below).
        let payload = unsafe {
            slice::from_raw_parts(
                self.region
                    .data()
                    .add(geo.offset(position) + FRAME_HEADER_SIZE),
                len,
            )
        };
        copy_message(dst, payload);
        self.release_in(geo, position, word, len);
        Ok(len)
    }

    #[inline]
    fn release(&mut self, position: u64, word: u32, len: usize) {
        self.release_in(self.geo, position, word, len);
    }

    /// [`Consumer::release`] with a copy of the geometry (see `pop`).
    #[inline(always)]
    fn release_in(&mut self, geo: Geometry, position: u64, word: u32, len: usize) {
        if word & FRAME_RUN != 0 {
            self.release_run_message(geo, position, len);
            return;
        }
        let offset = geo.offset(position);
        self.region.will_read(offset + FRAME_HEADER_SIZE, len);
        self.read = position + frame_size(len as u64);
        self.after_release(geo, offset, word);
    }

    /// Releases the run's next message, found at `position` (as [`Self::find`] gave
    /// it). Before the last, the count of released messages goes into the run
    /// word; the last releases the run frame as a message is released.
    #[inline(never)]
    fn release_run_message(&mut self, geo: Geometry, position: u64, len: usize) {
        self.region
            .will_read(geo.offset(position) + FRAME_HEADER_SIZE, len);
        self.run_next += 1;
        if self.run_next < self.run_count {
            self.record_run_progress();
            return;
        }
        let stride = stride(self.run_len.into());
        self.read = self.run_at + frame_size(u64::from(self.run_count) * stride);
        let offset = geo.offset(self.run_at);
        self.run_at = NO_RUN;
        self.after_release(geo, offset, self.run_state);
    }

    /// Stores how many of the run's messages are released into its run word, so
    /// that a successor resumes after them (the read position stays at the run's
    /// header until the whole run is released).
    fn record_run_progress(&mut self) {
        // Relaxed: as the RELEASED mark in `after_release`: ordered before the
        // producer's reuse of the run by the Release publication of a position past
        // it, which comes later.
        self.region.run_word(self.geo.offset(self.run_at)).store(
            self.run_len | self.run_next << RUN_RELEASED_SHIFT,
            Ordering::Relaxed,
        );
    }

    /// What follows the release of the frame at `offset` with state `word`, `read`
    /// already past it: publish the position, or mark the frame released.
    #[inline(always)]
    fn after_release(&mut self, geo: Geometry, offset: usize, word: u32) {
        // Frames are found one after another, each through its header, so the CPU
        // cannot run ahead on its own: prefetch, but only far behind the producer,
        // where the lines are committed and it has left them.
        if self.read + PREFETCH_FAR <= self.written_hint {
            crate::sync::prefetch_read(
                self.region
                    .data()
                    .wrapping_add(geo.offset(self.read + PREFETCH_AHEAD)),
            );
        } else if self.read >= self.hint_refresh_at {
            self.refresh_written_hint();
        }
        // Relaxed: a hint; a missed waiter is served when we next publish (the ring
        // found empty, or a quarter of it released), and `wake_producer` follows
        // every publication with the fenced check.
        let producer_waits = self
            .region
            .control()
            .signals
            .space_signal
            .load(Ordering::Relaxed)
            & WAITING
            != 0;
        if self.caught_up_in(geo)
            || producer_waits
            || self.read - self.published >= geo.capacity / 4
        {
            // The published position covers the message: a successor starts past
            // it. No mark: writing into the frame's line would make the producer,
            // whose next frame is often on that line, fetch it back from us.
            self.publish();
        } else {
            // Not published yet: mark the message, so a successor skips it.
            // Relaxed: ordered before the producer's reuse of these bytes by the
            // Release publication of `read_position` (later), which it reads with
            // Acquire.
            self.region
                .frame_word(offset)
                .store(word | FRAME_RELEASED, Ordering::Relaxed);
        }
    }

    /// Whether every committed message is consumed; skips trailing padding, so that
    /// a position published now covers it (the producer counts the padding as used
    /// until then, and a largest message would not fit).
    #[inline(always)]
    fn caught_up(&mut self) -> bool {
        self.caught_up_in(self.geo)
    }

    /// [`Consumer::caught_up`] with a copy of the geometry.
    #[inline(always)]
    fn caught_up_in(&mut self, geo: Geometry) -> bool {
        // Relaxed: a hint (a stale non-zero only delays publication until the ring
        // is found empty); the line is the one the next read polls anyway.
        let word = self
            .region
            .frame_word(geo.offset(self.read))
            .load(Ordering::Relaxed);
        if word == 0 {
            return true;
        }
        if word & FRAME_PADDING == 0 {
            return false;
        }
        self.skip_padding()
    }

    /// For a batch read from `position`: if the producer is known to be at least
    /// [`PREFETCH_FAR`] ahead, asks for the lines up to [`READ_AHEAD`] bytes ahead
    /// that were not asked for yet (each line once). Near the producer it does
    /// nothing: a prefetch would pull the lines it is writing.
    #[inline]
    fn prefetch_window(&mut self, geo: Geometry, position: u64) {
        if position >= self.hint_refresh_at {
            self.refresh_written_hint();
        }
        if position + PREFETCH_FAR > self.written_hint {
            return;
        }
        let end = position + READ_AHEAD;
        let mut line = self.prefetched.max(position) & !63;
        let data = self.region.data();
        while line < end {
            crate::sync::prefetch_read(data.wrapping_add(geo.offset(line)));
            line += 64;
        }
        self.prefetched = end;
    }

    /// Reads the producer's `write_position` into the prefetch hint.
    #[cold]
    #[inline(never)]
    fn refresh_written_hint(&mut self) {
        // Relaxed: the value only decides whether to prefetch, and a prefetch never
        // faults (its address is masked into the data region): any value is
        // harmless. Clamped to the window all the same.
        let found = self
            .region
            .control()
            .producer
            .write_position
            .load(Ordering::Relaxed);
        self.written_hint = found.min(self.published + self.geo.capacity);
        self.hint_refresh_at = self.read + HINT_REFRESH;
    }

    /// Padding, once a lap: skips it (and anything skippable after it) properly,
    /// validating each word; whether that reaches an empty frame.
    #[cold]
    #[inline(never)]
    fn skip_padding(&mut self) -> bool {
        match self.next_message(self.read) {
            Ok(Next::Empty { position }) => {
                self.read = position;
                true
            }
            _ => false,
        }
    }

    fn publish(&mut self) {
        // SYNC: Release pairs with the Acquire load in `Producer::refresh_read`: our
        // reads and RELEASED marks below this position happen before its reuse.
        self.region
            .control()
            .consumer
            .read_position
            .store(self.read, Ordering::Release);
        self.published = self.read;
        self.unnotified = true;
    }

    /// Bytes committed and not yet consumed, as far as the producer's published
    /// position tells (it may lag the frames by one commit).
    ///
    /// # Errors
    /// [`Corruption::WritePosition`] if the published position moved backwards, ran
    /// more than the capacity ahead of our published position, or is misaligned.
    pub fn backlog(&mut self) -> Result<u64, Corruption> {
        // SYNC: Acquire pairs with the Release store in `Producer::publish_write`:
        // every frame below the position seen is committed and visible.
        let found = self
            .region
            .control()
            .producer
            .write_position
            .load(Ordering::Acquire);
        let max = self.published + self.geo.capacity;
        if found < self.write_seen || found > max || found % 8 != 0 {
            return Err(Corruption::WritePosition {
                found,
                min: self.write_seen,
                max,
            });
        }
        self.write_seen = found;
        Ok(found.saturating_sub(self.read))
    }

    /// Wakes the producer if it waits for space, after releases were published.
    /// Costs nothing if nothing was published since the last call, else a fence and
    /// a load when nobody waits.
    pub fn wake_producer<F: Futex + ?Sized>(&mut self, futex: &F) {
        if self.unnotified {
            self.unnotified = false;
            notify(&self.region.control().signals.space_signal, futex);
        }
    }

    /// Whether a frame (message, padding or garbage) is committed at the read
    /// position. Relaxed: it only decides whether to stop waiting; `read` loads the
    /// word again with Acquire before it touches the frame.
    fn frame_ready(&self) -> bool {
        self.region
            .frame_word(self.geo.offset(self.read))
            .load(Ordering::Relaxed)
            != 0
    }

    /// Blocks until a frame is committed at the read position, or the deadline
    /// passes. Before sleeping it publishes its position and wakes the producer, so
    /// the two never sleep on each other. [`Consumer::read`] may still return
    /// `Empty` afterwards (the frame was padding): call again. A caller that loops
    /// over `read` and this call must also check its deadline itself: a hostile
    /// producer that keeps writing padding makes this return at once every time.
    ///
    /// # Errors
    /// [`WaitError::TimedOut`].
    pub fn wait_for_message<F: Futex + ?Sized>(
        &mut self,
        futex: &F,
        deadline: Option<F::Deadline>,
    ) -> Result<(), WaitError> {
        loop {
            if self.frame_ready() {
                return Ok(());
            }
            if self.read != self.published {
                self.publish();
            }
            self.wake_producer(futex);
            let word = &self.region.control().signals.data_signal;
            let key = prepare_wait(word, futex);
            // Ordered after the registration by `prepare_wait`'s fence.
            if self.frame_ready() {
                return Ok(());
            }
            futex.wait(word, key, deadline)?;
        }
    }
}

impl<R: Region> Drop for Consumer<R> {
    fn drop(&mut self) {
        if self.read != self.published {
            self.publish();
        }
        // The next consumer sees our position and RELEASED marks.
        release_owner(&self.region.control().consumer.owner, 0);
    }
}

/// A message borrowed in place. Derefs to its payload.
///
/// [`release`](Message::release) consumes it; dropping it leaves it to be read again.
/// The bytes are shared memory: a hostile producer could change them while borrowed
/// (garbage payload, never an out-of-bounds access).
pub struct Message<'a, R: Region> {
    consumer: &'a mut Consumer<R>,
    position: u64,
    word: u32,
    len: usize,
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
