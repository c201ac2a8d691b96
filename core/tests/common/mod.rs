//! Test memory: a mapping with an inaccessible page on each side, so that an access
//! out of bounds crashes the test instead of passing unseen.
#![allow(dead_code)]

use std::num::NonZeroU32;

use shmring_core::{Consumer, Producer, RawRegion};

/// `len` usable bytes ending exactly at a PROT_NONE page, with another before them.
pub struct GuardedMemory {
    map: *mut libc::c_void,
    map_len: usize,
    start: *mut u8,
    len: usize,
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl GuardedMemory {
    /// The usable bytes start 128-aligned, so for a `len` that is not a multiple of
    /// 128 up to 127 bytes lie between their end and the trailing guard page.
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
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.map, self.map_len) };
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
