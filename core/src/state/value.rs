//! A value published by one writer under a seqlock (state kind 8): its words
//! (line 1), the writer's claim, the write, the validated read and the wait for
//! the next version. The design and its argument: `docs/design/shared-state.md`.
//!
//! ```text
//! offset size what
//!      0  128 the common header (crate::state::header), kind 8, slots 0
//!    128    8 seq             0: never written; even 2v: version v stable; odd: a write in progress
//!    136    4 writer_owner    claim word: 0 free, else the writer's token
//!    140    4 writer_pid      hint for the tool
//!    144    4 version_signal  futex word: +1 after every publication
//!    148    4 waiters         readers registered to sleep on version_signal
//!    152  104 reserved        zero
//!    256    - value           value_size bytes rounded up to 8, as 64-bit atomic words
//! ```
//!
//! ```text
//! writer                                   reader
//! s = seq.load(Relaxed)   (ours)           s1 = seq.load(Acquire)
//! s even: seq.store(s + 1, Relaxed)        s1 == 0 → NoValue; odd → WriterDied if
//! fence(Release) ─────── pairs ──────────▶   the writer is dead, else retry
//! words: store(Relaxed)                    words: load(Relaxed) into the caller's buffer
//! seq.store(odd + 1, Release) ── pairs ─┐  fence(Acquire)
//! version_signal +1, notify waiters     └▶ s2 = seq.load(Relaxed); s1 == s2 → Ok(s1 / 2)
//! ```
//!
//! The reader's copy is made of atomic word loads, so a concurrent write is no
//! data race, and it is validated after it is made: a copy that a write overlapped
//! sees `s2 != s1` and is made again, at most [`READ_RETRIES`] times, then
//! [`ReadError::Busy`]. A writer that died between its odd store and its even one
//! leaves `seq` odd: readers get [`ReadError::WriterDied`] (never the torn bytes),
//! and a new writer keeps `seq` odd until its first write is whole.
//!
//! Waiting for a version: the counted eventcount of [`crate::wait`] on
//! `version_signal` and `waiters` (the event protocol's words, [`ObjectWords`]).

use core::fmt;
use core::num::NonZeroU32;

use crate::error::{LayoutError, TimedOut};
use crate::layout::{LineAligned, STATE_KIND_VALUE, u32_at, u64_at};
use crate::object::event::{self, Wake};
use crate::object::layout::ObjectWords;
use crate::spsc::ClaimError;
use crate::spsc::claim::{claim_owner, release_owner};
use crate::state::header::{StateHeader, StateInfo};
use crate::sync::{AtomicU32, AtomicU64, Ordering, fence};
use crate::wait::{Futex, register_waiter};

/// How many times a read copies the value before it gives up with
/// [`ReadError::Busy`] (a writer that keeps the value odd, or rewrites it faster
/// than the reader copies it).
#[cfg(not(shmring_loom))]
pub const READ_RETRIES: u32 = 64;
/// How many times a read copies the value (a few under the model checker: each
/// retry multiplies the interleavings, and `Busy` is a legal outcome).
#[cfg(shmring_loom)]
pub const READ_RETRIES: u32 = 3;

/// Offset of `seq`.
pub const VALUE_SEQ_OFFSET: usize = 128;
/// Offset of the writer's claim word.
pub const VALUE_WRITER_OWNER_OFFSET: usize = 136;
/// Offset of the writer's pid hint.
pub const VALUE_WRITER_PID_OFFSET: usize = 140;
/// Offset of `version_signal`.
pub const VALUE_SIGNAL_OFFSET: usize = 144;
/// Offset of `waiters`.
pub const VALUE_WAITERS_OFFSET: usize = 148;
/// Offset of the value (and the size of [`ValueLayout`]).
pub const VALUE_OFFSET: usize = 256;
/// The byte of the segment's file the writer's liveness lock is taken on (the
/// SPSC sender's byte, and the writer's claim word's offset).
pub const VALUE_WRITER_LOCK: u64 = VALUE_WRITER_OWNER_OFFSET as u64;

/// The seqlock's line.
#[derive(Debug)]
#[repr(C)]
pub struct ValueControl {
    /// 0: never written; even `2v`: version `v` stable; odd: a write in progress
    /// (or a writer died in one).
    pub seq: AtomicU64,
    /// The writer's claim: 0 free, else its token.
    pub writer_owner: AtomicU32,
    /// The writer's pid (written by the `shmring` crate): a hint, never trusted.
    pub writer_pid: AtomicU32,
    /// `version_signal` (the futex word, +1 after every publication) and the
    /// readers registered to sleep on it: the event protocol's words.
    pub signal: ObjectWords,
}

/// A value segment's first two lines; the value's words follow at
/// [`VALUE_OFFSET`].
#[derive(Debug)]
#[repr(C)]
pub struct ValueLayout {
    /// The common header.
    pub header: LineAligned<StateHeader>,
    /// The seqlock's line.
    pub control: LineAligned<ValueControl>,
}

#[cfg(not(shmring_loom))]
const _: () = {
    use crate::state::header::STATE_CONTROL_OFFSET;
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ValueLayout>() == VALUE_OFFSET);
    assert!(align_of::<ValueLayout>() == 128);
    assert!(offset_of!(ValueLayout, control) == STATE_CONTROL_OFFSET);
    assert!(STATE_CONTROL_OFFSET + offset_of!(ValueControl, seq) == VALUE_SEQ_OFFSET);
    assert!(
        STATE_CONTROL_OFFSET + offset_of!(ValueControl, writer_owner) == VALUE_WRITER_OWNER_OFFSET
    );
    assert!(STATE_CONTROL_OFFSET + offset_of!(ValueControl, writer_pid) == VALUE_WRITER_PID_OFFSET);
    assert!(STATE_CONTROL_OFFSET + offset_of!(ValueControl, signal) == VALUE_SIGNAL_OFFSET);
    assert!(VALUE_SIGNAL_OFFSET + offset_of!(ObjectWords, waiters) == VALUE_WAITERS_OFFSET);
};

impl ValueLayout {
    /// A layout whose every byte is zero (for the model checks and tests).
    pub fn new() -> Self {
        Self {
            header: LineAligned(StateHeader::new()),
            control: LineAligned(ValueControl {
                seq: AtomicU64::new(0),
                writer_owner: AtomicU32::new(0),
                writer_pid: AtomicU32::new(0),
                signal: ObjectWords {
                    word: AtomicU32::new(0),
                    waiters: AtomicU32::new(0),
                },
            }),
        }
    }
}

impl Default for ValueLayout {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the seqlock's words are: the production [`RawValueRegion`] (mapped
/// memory) or the model checks' (loom atomics). Clones refer to the same value.
pub trait ValueRegion: Clone {
    /// The seqlock's line.
    fn control(&self) -> &ValueControl;
    /// The value's words (`value_size` rounded up to 8 bytes).
    fn words(&self) -> &[AtomicU64];
    /// The value's size in bytes, as validated at attach (at most
    /// `8 * words().len()`).
    fn value_size(&self) -> usize;
}

/// Why a read returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing was ever published (`seq` is 0).
    NoValue,
    /// The writer died in the middle of a write (`seq` odd and the writer's
    /// liveness probe says dead): the value is torn until a new writer writes.
    WriterDied {
        /// The odd `seq` found.
        seq: u64,
    },
    /// Every copy overlapped a write (or found one in progress).
    Busy {
        /// How many copies were tried.
        retries: u32,
    },
    /// The caller's buffer is not the value's size.
    Length {
        /// The buffer's length.
        len: usize,
        /// The value's size.
        value_size: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoValue => write!(f, "no value has been published yet"),
            Self::WriterDied { seq } => write!(
                f,
                "the writer died writing version {} (seq {seq}): no whole value until a new writer writes",
                seq / 2 + 1
            ),
            Self::Busy { retries } => {
                write!(f, "every one of {retries} copies overlapped a write")
            }
            Self::Length { len, value_size } => {
                write!(f, "buffer of {len} bytes for a value of {value_size} bytes")
            }
        }
    }
}

impl core::error::Error for ReadError {}

/// The version a `seq` word stands for, if it is a whole one (even, non-zero).
#[inline]
fn whole_version(seq: u64) -> Option<u64> {
    (seq != 0 && seq & 1 == 0).then_some(seq / 2)
}

/// Waits `2^attempt` spin hints, at most 256 (nothing under the model checker).
#[inline]
fn backoff(attempt: u32) {
    #[cfg(not(shmring_loom))]
    for _ in 0..1u32 << attempt.min(8) {
        core::hint::spin_loop();
    }
    #[cfg(shmring_loom)]
    let _ = attempt;
}

/// Copies the value into `buf` (exactly `value_size` bytes) and returns its
/// version, validated: the copy is never torn. `writer_alive` is asked only when
/// a write is found in progress; `false` reports [`ReadError::WriterDied`].
/// Never blocks; lock-free; at most [`READ_RETRIES`] copies.
///
/// # Errors
/// [`ReadError::NoValue`], [`ReadError::WriterDied`], [`ReadError::Busy`],
/// [`ReadError::Length`].
pub fn read<R: ValueRegion>(
    region: &R,
    buf: &mut [u8],
    mut writer_alive: impl FnMut() -> bool,
) -> Result<u64, ReadError> {
    let value_size = region.value_size();
    if buf.len() != value_size {
        return Err(ReadError::Length {
            len: buf.len(),
            value_size,
        });
    }
    let control = region.control();
    for attempt in 0..READ_RETRIES {
        // SYNC: Acquire pairs with the writer's final Release store of `seq`: the
        // words of version s1 / 2 (and everything before them) are visible.
        let s1 = control.seq.load(Ordering::Acquire);
        if s1 == 0 {
            return Err(ReadError::NoValue);
        }
        if s1 & 1 != 0 {
            if !writer_alive() {
                // The probe comes after the load: a writer that finished this
                // write and gave the role back in between (its last version, then
                // its exit) reads as gone too. Only a `seq` still at s1 is a write
                // nobody will finish (a new writer keeps it so until its first
                // write is whole).
                // Relaxed: only compared. The writer's last store of `seq`
                // precedes its release of the liveness lock, which the probe's
                // system call saw released (the kernel's lock table orders the
                // two, not this load): this load sees that store or a later one.
                // A retry's first load (Acquire) orders the copy.
                if control.seq.load(Ordering::Relaxed) == s1 {
                    return Err(ReadError::WriterDied { seq: s1 });
                }
                continue;
            }
            backoff(attempt);
            continue;
        }
        for (chunk, word) in buf.chunks_mut(8).zip(region.words()) {
            // Relaxed: validated below by the Acquire fence and the second load of
            // `seq`; an atomic load, so a concurrent write is no data race.
            let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        // SYNC: pairs with the writer's fence(Release) after its odd store: if a
        // load above read a word a later write stored, that write's odd `seq`
        // is visible to the load below, which then differs from s1.
        fence(Ordering::Acquire);
        // Relaxed: ordered after the copy by the fence above.
        let s2 = control.seq.load(Ordering::Relaxed);
        if s1 == s2 {
            return Ok(s1 / 2);
        }
        backoff(attempt);
    }
    Err(ReadError::Busy {
        retries: READ_RETRIES,
    })
}

/// The version published now, if a whole one is (a snapshot: `None` before the
/// first write and while one is in progress).
pub fn version<R: ValueRegion>(region: &R) -> Option<u64> {
    // SYNC: Acquire pairs with the writer's final Release store of `seq`, as in
    // `read`: a caller that then reads sees at least this version.
    whole_version(region.control().seq.load(Ordering::Acquire))
}

/// Waits until a version above `after` is published and returns it: at once if
/// one is. A writer dead in the middle of a write is waited through (its
/// successor publishes the next version).
///
/// # Errors
/// [`TimedOut`] once `deadline` has passed. The futex checks the deadline
/// before every sleep, and after the first check every pass sleeps (or finds
/// the deadline passed), so a peer that keeps changing `version_signal` cannot
/// keep the caller past it.
pub fn wait_for_version<R: ValueRegion, F: Futex + ?Sized>(
    region: &R,
    after: u64,
    futex: &F,
    deadline: Option<F::Deadline>,
) -> Result<u64, TimedOut> {
    let newer = || version(region).filter(|&v| v > after);
    if let Some(v) = newer() {
        return Ok(v);
    }
    let signal = &region.control().signal;
    // SYNC: the waiter's fence, paired with the notifier's in `event::notify`
    // after the writer's publication (`crate::wait`, counted form).
    let _registered = register_waiter(&signal.waiters, futex);
    loop {
        // Acquire (in `event::key`) pairs with the Release increment in
        // `event::notify`: if the key counts a publication, `newer` sees its `seq`.
        let key = event::key(signal);
        if let Some(v) = newer() {
            return Ok(v);
        }
        futex.wait(&signal.word, key, deadline)?;
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The bytes are not the value's size.
    Length {
        /// Bytes given.
        len: usize,
        /// The value's size.
        value_size: usize,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Length { len, value_size } => {
                write!(f, "{len} bytes written to a value of {value_size} bytes")
            }
        }
    }
}

impl core::error::Error for WriteError {}

/// The writer of a value: one per value, claimed like the SPSC producer (the
/// `shmring` crate takes the writer's liveness lock first). `Send`, not `Sync`;
/// gives the claim back when dropped.
#[derive(Debug)]
pub struct ValueWriter<R: ValueRegion> {
    region: R,
    token: NonZeroU32,
}

impl<R: ValueRegion> ValueWriter<R> {
    /// Claims the writer role (its owner word from 0 to `token`).
    ///
    /// # Errors
    /// [`ClaimError::Taken`] with the owner word found.
    pub fn claim(region: R, token: NonZeroU32) -> Result<Self, ClaimError> {
        Self::claim_from(region, token, 0)
    }

    /// Takes the writer role over from `previous`, a holder known to be gone. A
    /// write it left half-done stays odd (readers get
    /// [`ReadError::WriterDied`]) until this writer's first write is whole.
    ///
    /// # Errors
    /// [`ClaimError::Taken`] if the owner word no longer holds `previous`.
    ///
    /// # Safety
    /// The writer that claimed with `previous` must no longer write (its process
    /// has died: the `shmring` crate proves it with the liveness lock). Two
    /// writers at once would let readers take one's half-written words for a
    /// whole value.
    pub unsafe fn take_over(
        region: R,
        token: NonZeroU32,
        previous: NonZeroU32,
    ) -> Result<Self, ClaimError> {
        Self::claim_from(region, token, previous.get())
    }

    fn claim_from(region: R, token: NonZeroU32, previous: u32) -> Result<Self, ClaimError> {
        claim_owner(&region.control().writer_owner, previous, token)
            .map_err(|owner| ClaimError::Taken { owner })?;
        Ok(Self { region, token })
    }

    /// The region written.
    pub fn region(&self) -> &R {
        &self.region
    }

    /// The token the writer claimed with.
    pub fn token(&self) -> NonZeroU32 {
        self.token
    }

    /// The version the next [`write`](Self::write) publishes (one more than
    /// the last whole version; after a dead writer's half-done write, the
    /// version it was writing): for a writer that stamps it into the value.
    pub fn next_version(&self) -> u64 {
        // Relaxed: our own word (or a dead writer's, ordered by the claim).
        let s = self.region.control().seq.load(Ordering::Relaxed);
        s.wrapping_add(2) / 2
    }

    /// Publishes `bytes` (exactly `value_size` of them) as the next version,
    /// wakes the readers waiting for it, and returns its number. Never blocks;
    /// no system call unless a reader waits.
    ///
    /// # Errors
    /// [`WriteError::Length`] (nothing is written).
    pub fn write<F: Futex + ?Sized>(&mut self, bytes: &[u8], futex: &F) -> Result<u64, WriteError> {
        let value_size = self.region.value_size();
        if bytes.len() != value_size {
            return Err(WriteError::Length {
                len: bytes.len(),
                value_size,
            });
        }
        let odd = self.begin();
        self.store_words(bytes, usize::MAX);
        Ok(self.finish(odd, futex))
    }

    /// The write's first half: makes `seq` odd (or keeps a dead writer's odd
    /// `seq`) and fences; returns the odd `seq`.
    #[inline]
    fn begin(&self) -> u64 {
        let control = self.region.control();
        // Relaxed: only the writer stores `seq`; this is our own last store (or a
        // dead writer's, ordered to us by the claim's Acquire).
        let s = control.seq.load(Ordering::Relaxed);
        let odd = if s & 1 == 0 {
            let odd = s.wrapping_add(1);
            // Relaxed: ordered before the words by the fence below.
            control.seq.store(odd, Ordering::Relaxed);
            odd
        } else {
            // A dead writer's half-done write: keep it odd, so that no reader
            // takes its torn words (nor ours, until they are whole) for a value.
            s
        };
        // SYNC: Release fence, paired with the reader's fence(Acquire) after its
        // copy: a reader that loads any word stored below sees `odd` (or later)
        // in its second load of `seq`, and refuses the copy.
        fence(Ordering::Release);
        odd
    }

    /// Stores the first `limit` words of `bytes` (the last one zero-padded).
    #[inline]
    fn store_words(&self, bytes: &[u8], limit: usize) {
        for (word, chunk) in self.region.words().iter().zip(bytes.chunks(8)).take(limit) {
            let mut padded = [0u8; 8];
            padded[..chunk.len()].copy_from_slice(chunk);
            // Relaxed: published by the Release store of `seq` in `finish`.
            word.store(u64::from_ne_bytes(padded), Ordering::Relaxed);
        }
    }

    /// The write's second half: publishes the version and notifies.
    #[inline]
    fn finish<F: Futex + ?Sized>(&self, odd: u64, futex: &F) -> u64 {
        let control = self.region.control();
        let even = odd.wrapping_add(1);
        // SYNC: Release pairs with the reader's first Acquire load of `seq` (and
        // `version`'s): a reader that sees `even` sees every word stored before.
        control.seq.store(even, Ordering::Release);
        // Release increment, notifier fence, wake if a reader is registered: the
        // event protocol (pairs with `wait_for_version`'s registration and key).
        event::notify(&control.signal, futex, Wake::All);
        even / 2
    }

    /// For the model checks: a write whose process dies after its odd store and
    /// `words` of its word stores. The claim is never given back (a dead process
    /// leaves its owner word), and nothing is notified.
    #[cfg(shmring_loom)]
    pub fn write_and_die(self, bytes: &[u8], words: usize) {
        assert_eq!(bytes.len(), self.region.value_size());
        self.begin();
        self.store_words(bytes, words);
        let dead = core::mem::ManuallyDrop::new(self);
        // SAFETY: `dead` is never used or dropped again: the region is moved out
        // once and dropped (a loom `Arc` must not leak), the claim is not released.
        drop(unsafe { core::ptr::read(&dead.region) });
    }

    /// Copies the words as they lie now into `buf` (the writer's own last
    /// value, or what a dead writer or a peer left): no validation, for a writer
    /// that updates the value in place. `buf.len()` must be the value's size.
    ///
    /// # Errors
    /// [`WriteError::Length`].
    pub fn current(&self, buf: &mut [u8]) -> Result<(), WriteError> {
        let value_size = self.region.value_size();
        if buf.len() != value_size {
            return Err(WriteError::Length {
                len: buf.len(),
                value_size,
            });
        }
        for (chunk, word) in buf.chunks_mut(8).zip(self.region.words()) {
            // Relaxed: only the writer stores the words; a peer's concurrent
            // stores are garbage either way.
            let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

impl<R: ValueRegion> Drop for ValueWriter<R> {
    fn drop(&mut self) {
        release_owner(&self.region.control().writer_owner, 0);
    }
}

/// Writes a fresh, never-written value state: the header, zero words, and the
/// magic last. For the production region and the model checks.
///
/// # Errors
/// [`LayoutError::HeaderMismatch`] (field `flags`) for an unknown flag.
pub fn init(
    layout: &ValueLayout,
    words: &[AtomicU64],
    info: &StateInfo,
) -> Result<(), LayoutError> {
    layout
        .header
        .write(&info.geometry, info.flags, info.type_tag)?;
    let control = &layout.control;
    // Relaxed (every store): published by the Release store of the magic.
    control.seq.store(0, Ordering::Relaxed);
    control.writer_owner.store(0, Ordering::Relaxed);
    control.writer_pid.store(0, Ordering::Relaxed);
    control.signal.word.store(0, Ordering::Relaxed);
    control.signal.waiters.store(0, Ordering::Relaxed);
    for word in words {
        word.store(0, Ordering::Relaxed);
    }
    layout.header.publish();
    Ok(())
}

/// What a copy of a value segment's first [`VALUE_OFFSET`] bytes says, without
/// mapping it: the validated header and a snapshot of the seqlock's words
/// (hints: they move while they are read). For tools that list segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSnapshot {
    /// The validated header.
    pub info: StateInfo,
    /// `seq` (0: never written; even: version `seq / 2`; odd: a write in progress).
    pub seq: u64,
    /// The writer's claim word (0: no writer).
    pub writer_owner: u32,
    /// The writer's pid hint.
    pub writer_pid: u32,
    /// `version_signal`.
    pub version_signal: u32,
    /// Readers registered to sleep.
    pub waiters: u32,
}

impl ValueSnapshot {
    /// Validates the header in `bytes` (read with `pread`) of a segment
    /// `segment_len` bytes long, as an opener does, and reads the words.
    ///
    /// # Errors
    /// As [`StateHeader::attach`] for kind 8; [`LayoutError::TooSmall`] if
    /// `bytes` is shorter than [`VALUE_OFFSET`].
    pub fn parse(bytes: &[u8], segment_len: u64) -> Result<Self, LayoutError> {
        if bytes.len() < VALUE_OFFSET {
            return Err(LayoutError::TooSmall {
                len: bytes.len(),
                required: VALUE_OFFSET as u64,
            });
        }
        let info = StateInfo::parse(bytes, segment_len)?;
        if info.geometry.kind() != STATE_KIND_VALUE {
            return Err(LayoutError::WrongKind {
                found: info.geometry.kind(),
                expected: STATE_KIND_VALUE,
            });
        }
        Ok(Self {
            info,
            seq: u64_at(bytes, VALUE_SEQ_OFFSET),
            writer_owner: u32_at(bytes, VALUE_WRITER_OWNER_OFFSET),
            writer_pid: u32_at(bytes, VALUE_WRITER_PID_OFFSET),
            version_signal: u32_at(bytes, VALUE_SIGNAL_OFFSET),
            waiters: u32_at(bytes, VALUE_WAITERS_OFFSET),
        })
    }
}

#[cfg(not(shmring_loom))]
pub use raw::RawValueRegion;

#[cfg(not(shmring_loom))]
mod raw {
    use core::ptr::NonNull;

    use super::{VALUE_OFFSET, ValueLayout, ValueRegion, init};
    use crate::error::LayoutError;
    use crate::layout::{STATE_KIND_VALUE, check_memory};
    use crate::state::header::{StateGeometry, StateInfo};
    use crate::sync::AtomicU64;

    /// A value's layout in raw memory: the production [`ValueRegion`]. It holds
    /// a pointer and the header values it validated; it never reads the header
    /// again. Clones refer to the same memory.
    #[derive(Debug, Clone)]
    pub struct RawValueRegion {
        layout: NonNull<ValueLayout>,
        info: StateInfo,
    }

    // SAFETY: a pointer to memory the caller of `init`/`attach` promised stays
    // valid; every access through it is atomic.
    unsafe impl Send for RawValueRegion {}
    // SAFETY: as for Send: `&RawValueRegion` hands out atomics only.
    unsafe impl Sync for RawValueRegion {}

    impl RawValueRegion {
        /// Writes a fresh value state of `value_size` bytes into the `len` bytes
        /// at `ptr` (at least the geometry's segment size) and publishes it.
        ///
        /// # Errors
        /// [`LayoutError::OutOfRange`] (`value_size`), [`LayoutError::Misaligned`],
        /// [`LayoutError::TooSmall`], [`LayoutError::HeaderMismatch`] (`flags`).
        ///
        /// # Safety
        /// - `ptr` is valid for reads and writes of `len` bytes for as long as the
        ///   region, its clones and every handle made from them live;
        /// - nothing else reads or writes those bytes while `init` runs;
        /// - afterwards, this process touches them only through shmring handles.
        pub unsafe fn init(
            ptr: *mut u8,
            len: usize,
            value_size: u32,
            flags: u32,
            type_tag: u64,
        ) -> Result<Self, LayoutError> {
            let geometry = StateGeometry::new(STATE_KIND_VALUE, value_size, 0)?;
            check_memory(ptr, len, geometry.segment_size() as u64)?;
            let info = StateInfo {
                geometry,
                flags,
                type_tag,
            };
            let region = Self {
                // SAFETY: checked non-null in `check_memory`.
                layout: unsafe { NonNull::new_unchecked(ptr.cast()) },
                info,
            };
            init(region.layout(), region.words(), &info)?;
            Ok(region)
        }

        /// Validates the value state in the `len` bytes at `ptr` (header read
        /// once; `segment_size` must equal `len`) and returns a region over it.
        ///
        /// # Errors
        /// As [`StateHeader::attach`](crate::state::header::StateHeader::attach);
        /// [`LayoutError::Misaligned`], [`LayoutError::TooSmall`].
        ///
        /// # Safety
        /// As for [`RawValueRegion::init`], except that other processes may be
        /// using the memory: `ptr` is valid for reads and writes of `len` bytes
        /// for as long as the region and its handles live, and this process
        /// touches them only through shmring handles.
        pub unsafe fn attach(ptr: *mut u8, len: usize) -> Result<Self, LayoutError> {
            check_memory(ptr, len, VALUE_OFFSET as u64)?;
            // SAFETY: checked non-null, aligned and long enough for the layout.
            let layout: NonNull<ValueLayout> = unsafe { NonNull::new_unchecked(ptr.cast()) };
            // SAFETY: in bounds and aligned (checked); only atomics are reached.
            let header = unsafe { &layout.as_ref().header };
            let info = header.attach(STATE_KIND_VALUE, len as u64)?;
            Ok(Self { layout, info })
        }

        /// The header values validated at attach.
        pub fn info(&self) -> &StateInfo {
            &self.info
        }

        /// The two lines.
        pub fn layout(&self) -> &ValueLayout {
            // SAFETY: in bounds and aligned (checked at init/attach) in memory the
            // caller keeps valid while the region lives; only atomics are reached
            // through the reference, so a peer's concurrent writes are no data race.
            unsafe { self.layout.as_ref() }
        }
    }

    impl ValueRegion for RawValueRegion {
        fn control(&self) -> &super::ValueControl {
            &self.layout().control
        }

        fn words(&self) -> &[AtomicU64] {
            // SAFETY: the words lie at VALUE_OFFSET, 8-aligned (the base is
            // 128-aligned), and `segment_size` = VALUE_OFFSET + 8 × value_words
            // was checked to be within the memory at init or attach; they are
            // reached only as atomics.
            unsafe {
                core::slice::from_raw_parts(
                    self.layout.as_ptr().cast::<u8>().add(VALUE_OFFSET).cast(),
                    self.info.geometry.value_words(),
                )
            }
        }

        fn value_size(&self) -> usize {
            self.info.geometry.value_size()
        }
    }
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use core::cell::Cell;

    use super::*;
    use crate::TimedOut;
    use crate::state::header::StateGeometry;

    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// A futex that never sleeps: with a deadline it times out, and it counts
    /// wake-ups; a hook runs at each wait (the peer's move).
    #[derive(Default)]
    struct TestFutex {
        wakes: Cell<u32>,
        waits: Cell<u32>,
    }

    impl Futex for TestFutex {
        type Deadline = ();
        fn wait(&self, _: &AtomicU32, _: u32, deadline: Option<()>) -> Result<(), TimedOut> {
            self.waits.set(self.waits.get() + 1);
            match deadline {
                Some(()) => Err(TimedOut),
                None => panic!("would sleep forever"),
            }
        }
        fn wake(&self, _: &AtomicU32) {
            self.wakes.set(self.wakes.get() + 1);
        }
    }

    #[repr(C, align(128))]
    struct Mem([u8; 512]);

    fn value(mem: &mut Mem, size: u32) -> RawValueRegion {
        let len = StateGeometry::new(STATE_KIND_VALUE, size, 0)
            .unwrap()
            .segment_size();
        let ptr = mem.0.as_mut_ptr();
        // SAFETY: `mem` outlives the region (each test's local) and is used only
        // through it (one pointer for both calls).
        unsafe { RawValueRegion::init(ptr, len, size, 0, 0) }.unwrap();
        // SAFETY: as above.
        unsafe { RawValueRegion::attach(ptr, len) }.unwrap()
    }

    fn token(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn a_written_value_reads_back_with_its_version() {
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 13);
        let futex = TestFutex::default();
        let mut buf = [0u8; 13];
        assert_eq!(read(&region, &mut buf, || true), Err(ReadError::NoValue));
        assert_eq!(version(&region), None);
        let mut writer = ValueWriter::claim(region.clone(), token(5)).unwrap();
        let bytes: Vec<u8> = (1..=13).collect();
        assert_eq!(writer.write(&bytes, &futex), Ok(1));
        assert_eq!(read(&region, &mut buf, || true), Ok(1));
        assert_eq!(&buf[..], &bytes[..]);
        assert_eq!(writer.write(&[9; 13], &futex), Ok(2));
        assert_eq!(read(&region, &mut buf, || true), Ok(2));
        assert_eq!(buf, [9; 13]);
        assert_eq!(futex.wakes.get(), 0, "woke with nobody waiting");
        let mut current = [0u8; 13];
        writer.current(&mut current).unwrap();
        assert_eq!(current, [9; 13]);
        assert_eq!(
            writer.write(&[0; 12], &futex),
            Err(WriteError::Length {
                len: 12,
                value_size: 13
            })
        );
        assert_eq!(
            read(&region, &mut [0u8; 16], || true),
            Err(ReadError::Length {
                len: 16,
                value_size: 13
            })
        );
    }

    #[test]
    fn a_second_writer_is_refused_until_the_first_is_gone() {
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 8);
        let first = ValueWriter::claim(region.clone(), token(1)).unwrap();
        assert_eq!(
            ValueWriter::claim(region.clone(), token(2)).unwrap_err(),
            ClaimError::Taken { owner: 1 }
        );
        core::mem::forget(first);
        // SAFETY: `first` is forgotten, as a dead process's writer: it never
        // writes again.
        let taken = unsafe { ValueWriter::take_over(region.clone(), token(2), token(1)) };
        assert!(taken.is_ok());
        drop(taken);
        assert!(ValueWriter::claim(region, token(3)).is_ok());
    }

    #[test]
    fn a_writer_dead_mid_write_gives_writer_died_until_a_new_writer_repairs() {
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 16);
        let futex = TestFutex::default();
        let mut writer = ValueWriter::claim(region.clone(), token(1)).unwrap();
        writer.write(&[1; 16], &futex).unwrap();
        // Dies between its odd store and its even store, half of the words new.
        region.control().seq.store(3, Ordering::Relaxed);
        region.words()[0].store(u64::MAX, Ordering::Relaxed);
        core::mem::forget(writer);
        let mut buf = [0u8; 16];
        assert_eq!(
            read(&region, &mut buf, || false),
            Err(ReadError::WriterDied { seq: 3 })
        );
        // While the probe says alive, it is a write in progress: Busy, never
        // the torn bytes.
        let probes = Cell::new(0);
        assert_eq!(
            read(&region, &mut buf, || {
                probes.set(probes.get() + 1);
                true
            }),
            Err(ReadError::Busy {
                retries: READ_RETRIES
            })
        );
        assert_eq!(probes.get(), READ_RETRIES);
        // SAFETY: the dead writer was forgotten.
        let mut new =
            unsafe { ValueWriter::take_over(region.clone(), token(2), token(1)) }.unwrap();
        assert_eq!(new.next_version(), 2);
        assert_eq!(new.write(&[2; 16], &futex), Ok(2));
        assert_eq!(new.next_version(), 3);
        assert_eq!(read(&region, &mut buf, || false), Ok(2));
        assert_eq!(buf, [2; 16]);
    }

    #[test]
    fn a_writer_that_finishes_and_leaves_before_the_probe_is_not_dead_mid_write() {
        // The reader loads an odd `seq`; before its probe, the writer completes
        // that write and gives the role back (its last version, then its exit):
        // the probe says gone, and the value is whole.
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 16);
        let futex = TestFutex::default();
        let mut writer = ValueWriter::claim(region.clone(), token(1)).unwrap();
        writer.write(&[1; 16], &futex).unwrap();
        region.control().seq.store(3, Ordering::Relaxed);
        let mut buf = [0u8; 16];
        let probes = Cell::new(0);
        let finish_then_leave = || {
            probes.set(probes.get() + 1);
            for word in region.words() {
                word.store(u64::from_ne_bytes([2; 8]), Ordering::Relaxed);
            }
            region.control().seq.store(4, Ordering::Relaxed);
            false
        };
        assert_eq!(read(&region, &mut buf, finish_then_leave), Ok(2));
        assert_eq!(buf, [2; 16]);
        assert_eq!(probes.get(), 1);
    }

    #[test]
    fn a_copy_that_a_write_overlapped_is_refused() {
        // A "writer" that moves seq between the reader's two loads: every copy is
        // refused, and the reader gives up with Busy after READ_RETRIES.
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 8);
        let futex = TestFutex::default();
        let mut writer = ValueWriter::claim(region.clone(), token(1)).unwrap();
        writer.write(&[7; 8], &futex).unwrap();
        struct Moving<'a>(&'a RawValueRegion, Cell<u64>);
        impl Clone for Moving<'_> {
            fn clone(&self) -> Self {
                Moving(self.0, self.1.clone())
            }
        }
        impl ValueRegion for Moving<'_> {
            fn control(&self) -> &ValueControl {
                self.0.control()
            }
            fn words(&self) -> &[AtomicU64] {
                // Each copy: a whole write happens under it.
                let seq = &self.0.control().seq;
                seq.store(seq.load(Ordering::Relaxed) + 2, Ordering::Relaxed);
                self.1.set(self.1.get() + 1);
                self.0.words()
            }
            fn value_size(&self) -> usize {
                8
            }
        }
        let moving = Moving(&region, Cell::new(0));
        assert_eq!(
            read(&moving, &mut [0u8; 8], || true),
            Err(ReadError::Busy {
                retries: READ_RETRIES
            })
        );
        assert_eq!(moving.1.get(), u64::from(READ_RETRIES));
    }

    #[test]
    fn waiting_returns_a_newer_version_and_times_out_without_one() {
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 8);
        let futex = TestFutex::default();
        assert_eq!(
            wait_for_version(&region, 0, &futex, Some(())),
            Err(TimedOut)
        );
        let mut writer = ValueWriter::claim(region.clone(), token(1)).unwrap();
        writer.write(&[1; 8], &futex).unwrap();
        assert_eq!(wait_for_version(&region, 0, &futex, None), Ok(1));
        assert_eq!(
            wait_for_version(&region, 1, &futex, Some(())),
            Err(TimedOut)
        );
        assert_eq!(region.control().signal.waiters.load(Ordering::Relaxed), 0);
        // A registered reader (here a stale count) makes the writer wake.
        region.control().signal.waiters.store(1, Ordering::Relaxed);
        writer.write(&[2; 8], &futex).unwrap();
        assert_eq!(futex.wakes.get(), 1);
        // A garbage seq that never becomes a newer even version: the deadline ends it.
        region.control().seq.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(
            wait_for_version(&region, 5, &futex, Some(())),
            Err(TimedOut)
        );
    }

    /// A writer thread and a reader thread on one raw region: every value read
    /// is whole (its two words equal its version) and versions never go back.
    /// Under Miri, the data-race detector checks the copy is atomic words.
    #[test]
    fn threads_never_read_a_torn_value() {
        let versions: u64 = if cfg!(miri) { 50 } else { 100_000 };
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 16);
        let done = AtomicU32::new(0);
        let mut last = 0;
        std::thread::scope(|scope| {
            let writer_region = region.clone();
            let done = &done;
            scope.spawn(move || {
                let futex = TestFutex::default();
                let mut writer = ValueWriter::claim(writer_region, token(1)).unwrap();
                for v in 1..=versions {
                    let mut bytes = [0u8; 16];
                    bytes[..8].copy_from_slice(&v.to_ne_bytes());
                    bytes[8..].copy_from_slice(&v.to_ne_bytes());
                    assert_eq!(writer.write(&bytes, &futex), Ok(v));
                }
                // Relaxed: a stop signal only; the join orders the last check.
                done.store(1, Ordering::Relaxed);
            });
            // Relaxed: as the store.
            while done.load(Ordering::Relaxed) == 0 {
                let mut buf = [0u8; 16];
                match read(&region, &mut buf, || true) {
                    Ok(v) => {
                        let (a, b) = buf.split_at(8);
                        assert_eq!(a, v.to_ne_bytes(), "torn at version {v}");
                        assert_eq!(b, v.to_ne_bytes(), "torn at version {v}");
                        assert!(v >= last, "back from {last} to {v}");
                        last = v;
                    }
                    Err(ReadError::NoValue | ReadError::Busy { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut buf = [0u8; 16];
        assert_eq!(read(&region, &mut buf, || false), Ok(versions));
        assert!(versions >= last);
    }

    #[test]
    fn the_snapshot_parses_the_header_and_the_words() {
        let mut mem = Mem([0; 512]);
        let region = value(&mut mem, 24);
        let futex = TestFutex::default();
        let mut writer = ValueWriter::claim(region.clone(), token(77)).unwrap();
        writer.write(&[3; 24], &futex).unwrap();
        let len = region.info().geometry.segment_size() as u64;
        let bytes = vec![0u8; 0];
        assert!(matches!(
            ValueSnapshot::parse(&bytes, len),
            Err(LayoutError::TooSmall { .. })
        ));
        let snapshot = ValueSnapshot::parse(&mem.0[..256], len).unwrap();
        assert_eq!(snapshot.seq, 2);
        assert_eq!(snapshot.writer_owner, 77);
        assert_eq!(snapshot.version_signal, 1);
        assert_eq!(snapshot.info.geometry.value_size(), 24);
        assert!(matches!(
            ValueSnapshot::parse(&mem.0[..256], len + 8),
            Err(LayoutError::HeaderMismatch { .. })
        ));
        drop(writer);
    }
}
