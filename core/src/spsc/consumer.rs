//! The reading side: claims, finding each message through its frame header, releases
//! and the lazy publication of the read position, batch reads and prefetching.

use core::cell::Cell;
use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::{fmt, slice};

use super::claim::{claim_owner, count_claim, release_owner};
use super::frame::{Frame, Geometry, frame_size, stride};
use super::layout::{
    FRAME_HEADER_SIZE, FRAME_PADDING, FRAME_RELEASED, FRAME_RUN, RUN_RELEASED_SHIFT,
};
use super::{
    ClaimError, Corruption, HEADER, MAX_POSITION, Message, PopError, ReadError, Region, WaitError,
    copy_message,
};
use crate::sync::Ordering;
use crate::wait::{ARMED, Futex, Readiness, WAITING, notify, prepare_wait};

/// How far ahead (bytes) the consumer prefetches the lines it will read.
const PREFETCH_AHEAD: u64 = 256;

/// How far ahead (bytes) `read_batch` keeps the lines it will read prefetched,
/// while the producer is known to be at least [`PREFETCH_FAR`] ahead. A batch read
/// walks its frames faster than the lines arrive one by one (a run's messages need
/// no header each), so it asks for many at once.
const READ_AHEAD: u64 = 2048;

/// The consumer prefetches message by message only while the producer is known to
/// be at least this many bytes ahead: near the producer, a prefetch would pull the
/// line it is writing (benches/notes/2026-11-spsc-publication.md).
const PREFETCH_FAR: u64 = 4096;

/// The consumer reads the producer's `write_position` for its prefetch hint at most
/// once per this many bytes consumed: the producer stores it on every commit, so
/// each read moves its line.
const HINT_REFRESH: u64 = 2048;

/// `Consumer::run_at` when no run is being read: no frame starts there.
const NO_RUN: u64 = u64::MAX;

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

/// The reading side of a ring.
///
/// Claimed once per ring (a claim word in the segment); `Send` but not `Sync`:
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<shmring_core::Consumer<shmring_core::RawRegion>>();
/// ```
pub struct Consumer<R: Region> {
    pub(super) region: R,
    pub(super) geo: Geometry,
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
        claim_owner(owner, previous, token).map_err(|owner| ClaimError::Taken { owner })?;
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
    pub(super) fn release(&mut self, position: u64, word: u32, len: usize) {
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
        // every publication with the fenced check. A producer asleep or armed.
        let producer_waits = self
            .region
            .control()
            .signals
            .space_signal
            .load(Ordering::Relaxed)
            & (WAITING | ARMED)
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
            match self.register_unless_ready(WAITING, futex) {
                None => return Ok(()),
                Some(key) => {
                    futex.wait(&self.region.control().signals.data_signal, key, deadline)?
                }
            }
        }
    }

    /// Arms the caller's readiness descriptor (doorbell) for the next message:
    /// [`Readiness::Ready`] if one is there now, else [`Readiness::Armed`], and
    /// the producer's next notification rings the doorbell
    /// ([`Futex::ring_doorbell`]). After a ring: drain the descriptor, read until
    /// the ring is empty, arm again. Never blocks.
    pub fn arm_for_message<F: Futex + ?Sized>(&mut self, futex: &F) -> Readiness {
        match self.register_unless_ready(ARMED, futex) {
            None => Readiness::Ready,
            Some(_) => Readiness::Armed,
        }
    }

    /// The waiter's side of the wait/notify protocol ([`crate::wait`]): `None` if
    /// a frame is ready; otherwise publishes what we released, wakes the
    /// producer, registers `bit` on the data signal and checks again: `None` if a
    /// frame arrived meanwhile, else the key to sleep on.
    fn register_unless_ready<F: Futex + ?Sized>(&mut self, bit: u32, futex: &F) -> Option<u32> {
        if self.frame_ready() {
            return None;
        }
        if self.read != self.published {
            self.publish();
        }
        self.wake_producer(futex);
        let key = prepare_wait(&self.region.control().signals.data_signal, bit, futex);
        // Ordered after the registration by `prepare_wait`'s fence.
        if self.frame_ready() {
            return None;
        }
        Some(key)
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
