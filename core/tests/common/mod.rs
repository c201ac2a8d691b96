//! Test memory: a mapping with an inaccessible page on each side, so that an access
//! out of bounds crashes the test instead of passing unseen.
//!
//! Under Miri (which has no `mprotect`) the memory is a plain heap allocation of
//! exactly `len` bytes instead: Miri checks every access against the allocation's
//! bounds byte by byte, on both sides, which is stricter than the guard pages
//! (those catch only what crosses into the next page past the 128-byte rounding).
//! See docs/design/testing-under-miri.md.
#![allow(dead_code)]

use std::num::NonZeroU32;

use shmring_core::{Consumer, Producer, RawRegion};

/// `len` usable bytes ending exactly at a PROT_NONE page, with another before them
/// (under Miri: an allocation of exactly `len` bytes, 128-aligned).
pub struct GuardedMemory {
    map: *mut libc::c_void,
    map_len: usize,
    start: *mut u8,
    len: usize,
}

#[cfg(not(miri))]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl GuardedMemory {
    /// The usable bytes start 128-aligned, so for a `len` that is not a multiple of
    /// 128 up to 127 bytes lie between their end and the trailing guard page.
    #[cfg(not(miri))]
    pub fn new(len: usize) -> Self {
        let page = page_size();
        let inner = len.div_ceil(page) * page;
        let map_len = inner + 2 * page;
        // SAFETY: an anonymous private mapping; no pointer is passed in.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED, "mmap failed");
        // SAFETY: `map + page .. + inner` lies inside the mapping just made.
        let rc = unsafe {
            libc::mprotect(
                map.cast::<u8>().add(page).cast(),
                inner,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(rc, 0, "mprotect failed");
        // SAFETY: within the mapping.
        let start = unsafe {
            map.cast::<u8>()
                .add(page + inner - len.next_multiple_of(128))
        };
        Self {
            map,
            map_len,
            start,
            len,
        }
    }

    /// Under Miri: `len` bytes, zeroed as a fresh mapping is, 128-aligned.
    #[cfg(miri)]
    pub fn new(len: usize) -> Self {
        let layout = Self::miri_layout(len);
        // SAFETY: the layout's size is not zero (every test asks for a segment).
        let start = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!start.is_null(), "allocation failed");
        Self {
            map: start.cast(),
            map_len: len,
            start,
            len,
        }
    }

    #[cfg(miri)]
    fn miri_layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(len, 128).unwrap()
    }

    pub fn ptr(&self) -> *mut u8 {
        self.start
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes `bytes` at `offset` (tests playing a hostile peer).
    pub fn poke(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len);
        // SAFETY: in bounds (asserted); the tests using this are single-threaded or
        // accept that they race with the ring, as a hostile peer would.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.start.add(offset), bytes.len())
        }
    }

    /// Reads `N` bytes at `offset`.
    pub fn peek<const N: usize>(&self, offset: usize) -> [u8; N] {
        assert!(offset + N <= self.len);
        let mut out = [0; N];
        // SAFETY: in bounds (asserted).
        unsafe { std::ptr::copy_nonoverlapping(self.start.add(offset), out.as_mut_ptr(), N) };
        out
    }
}

// SAFETY: the mapping is process-wide; the pointer may move between threads.
unsafe impl Send for GuardedMemory {}
// SAFETY: shared use goes through the ring's atomics or the tests' own discipline.
unsafe impl Sync for GuardedMemory {}

impl Drop for GuardedMemory {
    #[cfg(not(miri))]
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.map, self.map_len) };
    }

    #[cfg(miri)]
    fn drop(&mut self) {
        // SAFETY: frees exactly the allocation made in `new`, with its layout.
        unsafe { std::alloc::dealloc(self.start, Self::miri_layout(self.map_len)) };
    }
}

pub fn token(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A fresh ring of `capacity` data bytes in guarded memory, and both handles.
pub fn ring(capacity: usize) -> (GuardedMemory, Producer<RawRegion>, Consumer<RawRegion>) {
    let mem = GuardedMemory::new(512 + capacity);
    // SAFETY: `mem` is returned with the handles and the tests drop the handles
    // first (they are declared after it in every destructuring pattern's use).
    let region = unsafe { RawRegion::init(mem.ptr(), mem.len(), capacity) }.unwrap();
    let tx = Producer::claim(region.clone(), token(1)).unwrap();
    let rx = Consumer::claim(region, token(2)).unwrap();
    (mem, tx, rx)
}
