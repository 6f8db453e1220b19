//! The physical frame allocator: a bitmap over all RAM the VMM reported.
//!
//! Written here rather than taken from a crate because the kernel heap grows *from*
//! this allocator, so it must not allocate from the heap itself (the buddy allocator
//! crates keep their free lists in heap collections). One bit per 4 KiB frame, kept in
//! frames taken from the first RAM region large enough; a rotating hint makes
//! single-frame allocation cheap.

use alloc::collections::BTreeMap;
use skiff_arch::layout::{phys_to_virt, PAGE_SIZE};
use spin::Mutex;

/// A physical address range `[start, end)`.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

struct Bitmap {
    /// Direct-map pointer to the words; bit set = frame in use.
    words: &'static mut [u64],
    frames: u64,
    free: u64,
    hint: usize,
    /// Where the last contiguous run ended (the heap grows upward from there).
    contiguous_hint: u64,
}

static ALLOCATOR: Mutex<Option<Bitmap>> = Mutex::new(None);

/// Statistics for `/proc/meminfo` and `sysinfo`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub total_frames: u64,
    pub free_frames: u64,
}

static TOTAL_USABLE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Build the allocator from the RAM regions, keeping `reserved` ranges (kernel image,
/// initrd, low memory) out. Returns false if no region can hold the bitmap.
pub fn init(ram: &[Range], reserved: &[Range]) -> bool {
    let top = ram.iter().map(|r| r.end).max().unwrap_or(0);
    let frames = top.div_ceil(PAGE_SIZE);
    let bitmap_bytes = frames.div_ceil(64) * 8;
    let bitmap_pages = bitmap_bytes.div_ceil(PAGE_SIZE);
    // Find a home for the bitmap: page-aligned, inside RAM, outside reserved ranges.
    let overlaps = |s: u64, e: u64| reserved.iter().any(|r| s < r.end && r.start < e);
    let mut home = None;
    'outer: for r in ram {
        let mut s = r.start.next_multiple_of(PAGE_SIZE).max(0x10_0000);
        while s + bitmap_pages * PAGE_SIZE <= r.end {
            let e = s + bitmap_pages * PAGE_SIZE;
            if !overlaps(s, e) {
                home = Some(s);
                break 'outer;
            }
            s += PAGE_SIZE;
        }
    }
    let Some(home) = home else { return false };
    let words_len = (bitmap_bytes / 8) as usize;
    // SAFETY: [home, home + bitmap_pages pages) is RAM that no reserved range covers and
    // that nothing else uses yet (the allocator is not live); the direct map covers it.
    let words: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(home) as *mut u64, words_len) };
    words.fill(u64::MAX);
    let mut bm = Bitmap {
        words,
        frames,
        free: 0,
        hint: 0,
        contiguous_hint: 0,
    };
    // Free every RAM frame above 1 MiB, then take back the reserved ranges and the
    // bitmap's own pages. Whole words at a time: boot time matters and runs are long.
    for r in ram {
        let first = r.start.max(0x10_0000).div_ceil(PAGE_SIZE);
        bm.set_range(first, r.end / PAGE_SIZE, false);
    }
    let bitmap_range = Range {
        start: home,
        end: home + bitmap_pages * PAGE_SIZE,
    };
    for r in reserved.iter().chain(core::iter::once(&bitmap_range)) {
        bm.set_range(
            r.start / PAGE_SIZE,
            r.end.div_ceil(PAGE_SIZE).min(frames),
            true,
        );
    }
    let padding = bm.words.len() as u64 * 64 - frames;
    bm.free = bm.words.iter().map(|w| w.count_zeros() as u64).sum::<u64>() - padding;
    TOTAL_USABLE.store(bm.free, core::sync::atomic::Ordering::Relaxed);
    *ALLOCATOR.lock() = Some(bm);
    true
}

impl Bitmap {
    fn alloc_one(&mut self) -> Option<u64> {
        let n = self.words.len();
        for i in 0..n {
            let idx = (self.hint + i) % n;
            let w = self.words[idx];
            if w != u64::MAX {
                let bit = (!w).trailing_zeros() as u64;
                let frame = idx as u64 * 64 + bit;
                if frame >= self.frames {
                    continue;
                }
                self.words[idx] |= 1 << bit;
                self.free -= 1;
                self.hint = idx;
                return Some(frame);
            }
        }
        None
    }

    fn is_free(&self, f: u64) -> bool {
        self.words[(f / 64) as usize] & (1 << (f % 64)) == 0
    }

    fn set(&mut self, f: u64, used: bool) {
        let w = &mut self.words[(f / 64) as usize];
        if used {
            *w |= 1 << (f % 64);
        } else {
            *w &= !(1 << (f % 64));
        }
    }

    /// Mark frames `[first, last)` used or free (leaves `free` to the caller).
    fn set_range(&mut self, first: u64, last: u64, used: bool) {
        let mut f = first;
        while f < last {
            if f.is_multiple_of(64) && last - f >= 64 {
                self.words[(f / 64) as usize] = if used { u64::MAX } else { 0 };
                f += 64;
            } else {
                self.set(f, used);
                f += 1;
            }
        }
    }

    fn alloc_contiguous(&mut self, count: u64, align_frames: u64) -> Option<u64> {
        let hint = self.contiguous_hint.next_multiple_of(align_frames);
        self.search_contiguous(hint, count, align_frames)
            .or_else(|| self.search_contiguous(0, count, align_frames))
    }

    fn search_contiguous(&mut self, from: u64, count: u64, align_frames: u64) -> Option<u64> {
        let mut start = from;
        while start + count <= self.frames {
            if start.is_multiple_of(64) && self.words[(start / 64) as usize] == u64::MAX {
                start = (start + 64).next_multiple_of(align_frames);
                continue;
            }
            match (start..start + count).find(|&f| !self.is_free(f)) {
                Some(used) => start = (used + 1).next_multiple_of(align_frames),
                None => {
                    self.set_range(start, start + count, true);
                    self.free -= count;
                    self.contiguous_hint = start + count;
                    return Some(start);
                }
            }
        }
        None
    }
}

/// One frame's physical address, not zeroed.
pub fn alloc_frame() -> Option<u64> {
    ALLOCATOR
        .lock()
        .as_mut()?
        .alloc_one()
        .map(|f| f * PAGE_SIZE)
}

/// One zeroed frame's physical address.
pub fn alloc_zeroed_frame() -> Option<u64> {
    let p = alloc_frame()?;
    // SAFETY: the frame was just allocated, so nothing else references it, and the
    // direct map covers all RAM.
    unsafe { core::ptr::write_bytes(phys_to_virt(p) as *mut u8, 0, PAGE_SIZE as usize) };
    Some(p)
}

/// `count` physically contiguous frames aligned to `align` bytes.
pub fn alloc_contiguous(count: u64, align: u64) -> Option<u64> {
    let align_frames = (align / PAGE_SIZE).max(1);
    ALLOCATOR
        .lock()
        .as_mut()?
        .alloc_contiguous(count, align_frames)
        .map(|f| f * PAGE_SIZE)
}

/// Frames with more than one owner (shared mappings after `fork`): how many owners
/// beyond the first. A frame is free only when its last owner frees it. A heap map,
/// unlike the bitmap: only `fork` adds entries (never the heap's own growth), and a
/// free that finds no entry leaves the map untouched.
static EXTRA_OWNERS: Mutex<BTreeMap<u64, u32>> = Mutex::new(BTreeMap::new());
/// Whether `EXTRA_OWNERS` has entries: spares every free its lock while nothing is
/// shared.
static ANY_SHARED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Give the allocated frame at `phys` one more owner: one more [`free_frame`] is needed
/// to free it.
pub fn share_frame(phys: u64) {
    let mut owners = EXTRA_OWNERS.lock();
    *owners.entry(phys).or_insert(0) += 1;
    ANY_SHARED.store(true, core::sync::atomic::Ordering::Release);
}

/// Return a frame (or drop one owner of a shared one).
pub fn free_frame(phys: u64) {
    if ANY_SHARED.load(core::sync::atomic::Ordering::Acquire) {
        let mut owners = EXTRA_OWNERS.lock();
        if let Some(extra) = owners.get_mut(&phys) {
            *extra -= 1;
            if *extra == 0 {
                owners.remove(&phys);
                if owners.is_empty() {
                    ANY_SHARED.store(false, core::sync::atomic::Ordering::Release);
                }
            }
            return;
        }
    }
    if let Some(bm) = ALLOCATOR.lock().as_mut() {
        let f = phys / PAGE_SIZE;
        if f < bm.frames && !bm.is_free(f) {
            bm.set(f, false);
            bm.free += 1;
        }
    }
}

pub fn stats() -> Stats {
    let guard = ALLOCATOR.lock();
    Stats {
        total_frames: TOTAL_USABLE.load(core::sync::atomic::Ordering::Relaxed),
        free_frames: guard.as_ref().map_or(0, |b| b.free),
    }
}
