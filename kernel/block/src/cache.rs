//! [`BlockCache`]: a write-back cache of a [`BlockDevice`] in 4 KiB pages, addressed by
//! byte offset.
//!
//! * Pages are [`PAGE_SIZE`] bytes (8 sectors); the last page of a device whose size is
//!   not a multiple of 8 sectors is shorter.
//! * Capacity is bounded (in pages). Replacement is CLOCK (second chance), an
//!   approximation of LRU whose hits cost no bookkeeping beyond one flag. A dirty victim
//!   is written back before its slot is reused, together with the dirty pages that
//!   follow it (one device request for the run).
//! * Reads of uncached pages fetch each run of missing pages with one device request
//!   (up to [`MAX_BATCH_PAGES`]), so large sequential reads stream.
//! * Writes are read-modify-write for partially covered pages that are not cached; a
//!   fully covered page is never read.
//! * [`BlockCache::sync`] writes every dirty page in ascending order (adjacent pages
//!   coalesced into one request) and then flushes the device.
//! * Errors propagate as [`IoError`]. A failed write-back leaves the page dirty and
//!   cached: data is never dropped silently, and the operation that needed the slot
//!   fails instead.
//!
//! All state sits behind one [`SleepLock`], held across device requests (which may put
//! the caller to sleep), so the cache is `Sync` and requests never interleave.

use crate::lock::SleepLock;
use crate::{BlockDevice, IoError, SECTOR_SIZE};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use hashbrown::HashMap;

/// Bytes per cache page.
pub const PAGE_SIZE: usize = 4096;
const SECTORS_PER_PAGE: u64 = (PAGE_SIZE / SECTOR_SIZE) as u64;
/// Most pages moved by one device request (256 KiB).
pub const MAX_BATCH_PAGES: usize = 64;
/// Page number of a slot that holds no page.
const EMPTY: u64 = u64::MAX;

/// Counters for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Page accesses served from the cache.
    pub hits: u64,
    /// Page accesses that needed the device (or a fresh page, for full-page writes).
    pub misses: u64,
    /// Dirty pages written to the device (by eviction or sync).
    pub writebacks: u64,
    /// Pages dropped to make room.
    pub evictions: u64,
    /// Read requests sent to the device.
    pub device_reads: u64,
    /// Write requests sent to the device.
    pub device_writes: u64,
    /// Flush requests sent to the device.
    pub flushes: u64,
}

struct Slot {
    page: u64,
    data: Box<[u8]>,
    /// Sectors of the page whose bytes are present (bit i: sector i). A page written
    /// in whole sectors is cached without reading the rest; missing sectors are read
    /// when someone reads them.
    valid: u8,
    dirty: bool,
    referenced: bool,
}

struct Inner {
    slots: Vec<Slot>,
    /// Page number → slot index.
    map: HashMap<u64, usize>,
    /// CLOCK hand: the next slot considered for eviction.
    hand: usize,
    stats: CacheStats,
}

/// A write-back page cache over a block device. See the module documentation.
pub struct BlockCache {
    device: Arc<dyn BlockDevice>,
    /// Device size in bytes.
    size: u64,
    read_only: bool,
    capacity: usize,
    inner: SleepLock<Inner>,
    /// Bumped by every write, so that a reader keeping its own copy of some bytes can
    /// tell whether they may have changed.
    generation: AtomicU64,
}

/// The sectors `[from, to)` bytes of a page touch, as a mask.
fn sector_mask(from: usize, to: usize) -> u8 {
    let first = from / SECTOR_SIZE;
    let end = to.div_ceil(SECTOR_SIZE);
    (((1u32 << end) - 1) & !((1u32 << first) - 1)) as u8
}

impl BlockCache {
    /// A cache of at most `capacity_pages` pages (at least one) over `device`.
    pub fn new(device: Arc<dyn BlockDevice>, capacity_pages: usize) -> BlockCache {
        let size = device.sector_count() * SECTOR_SIZE as u64;
        BlockCache {
            read_only: device.read_only(),
            device,
            size,
            capacity: capacity_pages.max(1),
            inner: SleepLock::new(Inner {
                slots: Vec::new(),
                map: HashMap::new(),
                hand: 0,
                stats: CacheStats::default(),
            }),
            generation: AtomicU64::new(0),
        }
    }

    /// A counter that changes whenever data is written through the cache (see
    /// [`BlockCache::write_at`]); equal values mean nothing was written in between.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.device
    }

    /// Device size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the device refuses writes (then [`BlockCache::write_at`] fails with
    /// `IoError::ReadOnly`).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Capacity in pages.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn stats(&self) -> CacheStats {
        self.inner.lock().stats
    }

    pub fn reset_stats(&self) {
        self.inner.lock().stats = CacheStats::default();
    }

    /// Number of cached pages not yet written to the device.
    pub fn dirty_pages(&self) -> usize {
        self.inner.lock().slots.iter().filter(|s| s.dirty).count()
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<(), IoError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(IoError::OutOfRange),
        }
    }

    /// Valid bytes of page `page` (less than a page only at the end of the device).
    fn page_len(&self, page: u64) -> usize {
        (self.size - page * PAGE_SIZE as u64).min(PAGE_SIZE as u64) as usize
    }

    fn full_mask(&self, page: u64) -> u8 {
        sector_mask(0, self.page_len(page))
    }

    /// Reads the sectors of a cached page that are not present yet.
    fn fill(&self, inner: &mut Inner, slot: usize) -> Result<(), IoError> {
        let page = inner.slots[slot].page;
        let len = self.page_len(page);
        let mut tmp = vec![0u8; len];
        inner.stats.device_reads += 1;
        self.device
            .read_sectors(page * SECTORS_PER_PAGE, &mut tmp)?;
        let s = &mut inner.slots[slot];
        for i in 0..len / SECTOR_SIZE {
            if s.valid & (1 << i) == 0 {
                let r = i * SECTOR_SIZE..(i + 1) * SECTOR_SIZE;
                s.data[r.clone()].copy_from_slice(&tmp[r]);
            }
        }
        s.valid = sector_mask(0, len);
        Ok(())
    }

    /// Reads `buf.len()` bytes at byte `offset`. `OutOfRange` past the end of the device.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.check_range(offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.lock();
        let end = offset + buf.len() as u64;
        let last_page = (end - 1) / PAGE_SIZE as u64;
        let mut pos = offset;
        while pos < end {
            let page = pos / PAGE_SIZE as u64;
            let within = (pos % PAGE_SIZE as u64) as usize;
            let done = (pos - offset) as usize;
            if let Some(slot) = inner.lookup(page) {
                let chunk = (PAGE_SIZE - within).min((end - pos) as usize);
                let need = sector_mask(within, within + chunk);
                if inner.slots[slot].valid & need != need {
                    inner.stats.misses += 1;
                    self.fill(&mut inner, slot)?;
                } else {
                    inner.stats.hits += 1;
                }
                buf[done..done + chunk]
                    .copy_from_slice(&inner.slots[slot].data[within..within + chunk]);
                pos += chunk as u64;
                continue;
            }
            // A run of missing pages, fetched with one request.
            let limit = MAX_BATCH_PAGES.min(self.capacity) as u64;
            let mut run = 1;
            while run < limit && page + run <= last_page && !inner.map.contains_key(&(page + run)) {
                run += 1;
            }
            let run_start = page * PAGE_SIZE as u64;
            let run_end = ((page + run) * PAGE_SIZE as u64).min(self.size);
            let mut batch = vec![0u8; (run_end - run_start) as usize];
            inner.stats.device_reads += 1;
            self.device
                .read_sectors(page * SECTORS_PER_PAGE, &mut batch)?;
            inner.stats.misses += run;
            for i in 0..run {
                let at = (i as usize) * PAGE_SIZE;
                let len = self.page_len(page + i);
                let slot = self.alloc_slot(&mut inner)?;
                inner.slots[slot].data[..len].copy_from_slice(&batch[at..at + len]);
                inner.attach(slot, page + i, self.full_mask(page + i));
            }
            let stop = run_end.min(end);
            let from = (pos - run_start) as usize;
            let chunk = (stop - pos) as usize;
            buf[done..done + chunk].copy_from_slice(&batch[from..from + chunk]);
            pos = stop;
        }
        Ok(())
    }

    /// Writes `buf` at byte `offset` into the cache (the device sees it on eviction or
    /// [`BlockCache::sync`]). `OutOfRange` past the end, `ReadOnly` on a read-only device.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        if self.read_only {
            return Err(IoError::ReadOnly);
        }
        self.check_range(offset, buf.len())?;
        let mut inner = self.inner.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let page = pos / PAGE_SIZE as u64;
            let within = (pos % PAGE_SIZE as u64) as usize;
            let chunk = (PAGE_SIZE - within).min((end - pos) as usize);
            let src = &buf[(pos - offset) as usize..][..chunk];
            let slot = match inner.lookup(page) {
                Some(slot) => {
                    inner.stats.hits += 1;
                    slot
                }
                None => {
                    inner.stats.misses += 1;
                    let slot = self.alloc_slot(&mut inner)?;
                    inner.attach(slot, page, 0);
                    slot
                }
            };
            // Sectors written only in part need their old content first.
            let touched = sector_mask(within, within + chunk);
            let whole = sector_mask(within.next_multiple_of(SECTOR_SIZE), within + chunk)
                & !sector_mask((within + chunk) / SECTOR_SIZE * SECTOR_SIZE, within + chunk);
            let partial = touched & !whole;
            if inner.slots[slot].valid & partial != partial {
                self.fill(&mut inner, slot)?;
            }
            let s = &mut inner.slots[slot];
            s.data[within..within + chunk].copy_from_slice(src);
            s.valid |= touched;
            s.dirty = true;
            pos += chunk as u64;
        }
        Ok(())
    }

    /// Writes every dirty page to the device in ascending order, then flushes the device.
    /// On error the pages not yet written stay dirty.
    pub fn sync(&self) -> Result<(), IoError> {
        let mut inner = self.inner.lock();
        let mut dirty: Vec<(u64, usize)> = inner
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.dirty)
            .map(|(i, s)| (s.page, i))
            .collect();
        dirty.sort_unstable();
        self.write_pages(&mut inner, &dirty)?;
        inner.stats.flushes += 1;
        self.device.flush()
    }

    /// Writes the present sectors of `pages` (ascending page numbers with their slots),
    /// merging sectors that are adjacent on the device into requests of up to
    /// [`MAX_BATCH_PAGES`] pages, and marks the pages clean once all are written.
    fn write_pages(&self, inner: &mut Inner, pages: &[(u64, usize)]) -> Result<(), IoError> {
        let mut start = 0u64;
        let mut buf: Vec<u8> = Vec::new();
        let max = MAX_BATCH_PAGES * PAGE_SIZE;
        for &(page, slot) in pages {
            let s = &inner.slots[slot];
            let sectors = self.page_len(page) / SECTOR_SIZE;
            let mut i = 0;
            while i < sectors {
                if s.valid & (1 << i) == 0 {
                    i += 1;
                    continue;
                }
                let first = i;
                while i < sectors && s.valid & (1 << i) != 0 {
                    i += 1;
                }
                let sector = page * SECTORS_PER_PAGE + first as u64;
                let bytes = &s.data[first * SECTOR_SIZE..i * SECTOR_SIZE];
                let adjacent = start + (buf.len() / SECTOR_SIZE) as u64 == sector;
                if !buf.is_empty() && (!adjacent || buf.len() + bytes.len() > max) {
                    inner.stats.device_writes += 1;
                    self.device.write_sectors(start, &buf)?;
                    buf.clear();
                }
                if buf.is_empty() {
                    start = sector;
                }
                buf.extend_from_slice(bytes);
            }
        }
        if !buf.is_empty() {
            inner.stats.device_writes += 1;
            self.device.write_sectors(start, &buf)?;
        }
        for &(_, slot) in pages {
            inner.slots[slot].dirty = false;
        }
        inner.stats.writebacks += pages.len() as u64;
        Ok(())
    }

    /// A slot not attached to any page: a new one while under capacity, otherwise the
    /// CLOCK victim, written back first if dirty.
    fn alloc_slot(&self, inner: &mut Inner) -> Result<usize, IoError> {
        if inner.slots.len() < self.capacity {
            inner.slots.push(Slot {
                page: EMPTY,
                data: vec![0u8; PAGE_SIZE].into_boxed_slice(),
                valid: 0,
                dirty: false,
                referenced: false,
            });
            return Ok(inner.slots.len() - 1);
        }
        let n = inner.slots.len();
        // Two sweeps clear every reference bit, so a victim is found.
        let mut victim = inner.hand;
        for _ in 0..2 * n + 1 {
            let s = inner.hand;
            inner.hand = (inner.hand + 1) % n;
            if inner.slots[s].page == EMPTY || !inner.slots[s].referenced {
                victim = s;
                break;
            }
            inner.slots[s].referenced = false;
        }
        let page = inner.slots[victim].page;
        if page != EMPTY {
            if inner.slots[victim].dirty {
                // Write back the victim and the dirty pages right after it together.
                let mut run = alloc::vec![(page, victim)];
                while run.len() < MAX_BATCH_PAGES {
                    let next = page + run.len() as u64;
                    match inner.map.get(&next) {
                        Some(&slot) if inner.slots[slot].dirty => run.push((next, slot)),
                        _ => break,
                    }
                }
                self.write_pages(inner, &run)?;
            }
            inner.map.remove(&page);
            inner.stats.evictions += 1;
        }
        let s = &mut inner.slots[victim];
        s.page = EMPTY;
        s.valid = 0;
        s.dirty = false;
        s.referenced = false;
        Ok(victim)
    }
}

impl Inner {
    fn lookup(&mut self, page: u64) -> Option<usize> {
        let slot = *self.map.get(&page)?;
        self.slots[slot].referenced = true;
        Some(slot)
    }

    fn attach(&mut self, slot: usize, page: u64, valid: u8) {
        let s = &mut self.slots[slot];
        s.page = page;
        s.valid = valid;
        s.dirty = false;
        s.referenced = true;
        self.map.insert(page, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ram::RamDisk;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn setup(sectors: u64, pages: usize) -> (Arc<RamDisk>, BlockCache) {
        let disk = Arc::new(RamDisk::from_image(pattern(sectors as usize * 512, 1)));
        let cache = BlockCache::new(disk.clone(), pages);
        (disk, cache)
    }

    #[test]
    fn read_matches_device_and_hits_after_miss() {
        let (disk, cache) = setup(64, 16);
        let mut buf = vec![0u8; 5000];
        cache.read_at(100, &mut buf).unwrap();
        assert_eq!(&buf[..], &disk.image()[100..5100]);
        let st = cache.stats();
        assert_eq!(st.misses, 2);
        assert_eq!(st.device_reads, 1, "two missing pages in one request");
        cache.read_at(4096, &mut buf[..10]).unwrap();
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn large_sequential_read_is_batched() {
        let (disk, cache) = setup(2048, 512); // 1 MiB
        let mut buf = vec![0u8; 1 << 20];
        cache.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, disk.image());
        let st = cache.stats();
        assert_eq!(st.misses, 256);
        assert_eq!(st.device_reads, (256 / MAX_BATCH_PAGES) as u64);
        assert_eq!(disk.stats().reads, st.device_reads);
    }

    #[test]
    fn batch_stops_at_cached_pages() {
        let (disk, cache) = setup(64, 16);
        cache.read_at(2 * 4096, &mut [0u8; 1]).unwrap();
        let mut buf = vec![0u8; 5 * 4096];
        cache.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, disk.image()[..5 * 4096]);
        // pages 0-1, then page 2 (hit), then pages 3-4.
        assert_eq!(cache.stats().device_reads, 3);
    }

    #[test]
    fn partial_write_is_read_modify_write() {
        let (disk, cache) = setup(16, 4);
        cache.write_at(10, b"hello").unwrap();
        assert_eq!(cache.stats().device_reads, 1);
        // Nothing reaches the device before sync.
        assert_eq!(disk.stats().writes, 0);
        cache.sync().unwrap();
        let mut expect = pattern(16 * 512, 1);
        expect[10..15].copy_from_slice(b"hello");
        assert_eq!(disk.image(), expect);
        assert_eq!(disk.flushed_image(), expect);
    }

    #[test]
    fn full_page_write_does_not_read() {
        let (disk, cache) = setup(16, 4);
        let data = pattern(8192, 9);
        cache.write_at(0, &data).unwrap();
        assert_eq!(cache.stats().device_reads, 0);
        cache.sync().unwrap();
        assert_eq!(&disk.image()[..8192], &data[..]);
        assert_eq!(
            disk.stats().writes,
            1,
            "adjacent dirty pages in one request"
        );
    }

    #[test]
    fn whole_sector_writes_do_not_read() {
        let (disk, cache) = setup(64, 16);
        // 4 KiB at a sector-aligned, page-misaligned offset: two partial pages, no reads.
        let data = pattern(4096, 3);
        cache.write_at(3 * 512, &data).unwrap();
        assert_eq!(cache.stats().device_reads, 0);
        // Reading inside the written sectors needs nothing either.
        let mut buf = vec![0u8; 4096];
        cache.read_at(3 * 512, &mut buf).unwrap();
        assert_eq!(buf, data);
        assert_eq!(cache.stats().device_reads, 0);
        // Reading a sector that was never written fetches it, keeping the new data.
        let mut all = vec![0u8; 2 * 4096];
        cache.read_at(0, &mut all).unwrap();
        let mut expect = pattern(64 * 512, 1)[..8192].to_vec();
        expect[3 * 512..3 * 512 + 4096].copy_from_slice(&data);
        assert_eq!(all, expect);
        assert_eq!(
            cache.stats().device_reads,
            2,
            "one fill per page with holes"
        );
        cache.sync().unwrap();
        assert_eq!(&disk.image()[..8192], &expect[..]);
    }

    #[test]
    fn write_back_skips_missing_sectors() {
        let (disk, cache) = setup(64, 16);
        let before = disk.image();
        // Sectors 6-7 of page 0 and 0-1 of page 1, then sector 5 of page 2.
        cache.write_at(6 * 512, &[7u8; 2048]).unwrap();
        cache.write_at(16 * 512 + 5 * 512, &[9u8; 512]).unwrap();
        assert_eq!(cache.stats().device_reads, 0);
        cache.sync().unwrap();
        assert_eq!(
            cache.stats().device_writes,
            2,
            "adjacent sectors merge across pages"
        );
        let mut expect = before;
        expect[6 * 512..10 * 512].fill(7);
        expect[21 * 512..22 * 512].fill(9);
        assert_eq!(disk.image(), expect);
    }

    #[test]
    fn eviction_writes_back_dirty_pages() {
        let (disk, cache) = setup(128, 4); // 16 pages, room for 4
        for page in 0..16u64 {
            cache.write_at(page * 4096 + 1, &[page as u8; 100]).unwrap();
        }
        let st = cache.stats();
        assert!(st.evictions >= 12, "{st:?}");
        assert!(st.writebacks >= 12);
        assert!(cache.inner.lock().slots.len() <= 4);
        // Evicted pages reached the device; the rest arrive with sync.
        cache.sync().unwrap();
        let img = disk.image();
        for page in 0..16usize {
            assert_eq!(
                &img[page * 4096 + 1..page * 4096 + 101],
                &[page as u8; 100][..]
            );
        }
        // And reading back through the cache sees the same.
        let mut buf = [0u8; 100];
        cache.read_at(3 * 4096 + 1, &mut buf).unwrap();
        assert_eq!(buf, [3u8; 100]);
    }

    #[test]
    fn sync_writes_in_ascending_order_then_flushes() {
        struct Recorder {
            disk: RamDisk,
            log: spin::Mutex<Vec<(u64, usize)>>,
            flushed_after: spin::Mutex<Option<usize>>,
        }
        impl BlockDevice for Recorder {
            fn sector_count(&self) -> u64 {
                self.disk.sector_count()
            }
            fn read_only(&self) -> bool {
                false
            }
            fn read_sectors(&self, s: u64, b: &mut [u8]) -> Result<(), IoError> {
                self.disk.read_sectors(s, b)
            }
            fn write_sectors(&self, s: u64, b: &[u8]) -> Result<(), IoError> {
                self.log.lock().push((s, b.len() / 512));
                self.disk.write_sectors(s, b)
            }
            fn flush(&self) -> Result<(), IoError> {
                *self.flushed_after.lock() = Some(self.log.lock().len());
                self.disk.flush()
            }
            fn serial(&self) -> &[u8] {
                b"rec"
            }
        }
        let dev = Arc::new(Recorder {
            disk: RamDisk::new(256),
            log: spin::Mutex::new(Vec::new()),
            flushed_after: spin::Mutex::new(None),
        });
        let cache = BlockCache::new(dev.clone(), 64);
        for page in [9u64, 3, 4, 20, 0, 5] {
            cache.write_at(page * 4096, &[1u8; 4096]).unwrap();
        }
        cache.sync().unwrap();
        let log = dev.log.lock().clone();
        assert_eq!(log, vec![(0, 8), (24, 24), (72, 8), (160, 8)]);
        assert_eq!(*dev.flushed_after.lock(), Some(4));
        assert_eq!(cache.dirty_pages(), 0);
    }

    #[test]
    fn durability_only_after_sync() {
        let (disk, cache) = setup(64, 64);
        cache.write_at(4096, &[0xaa; 4096]).unwrap();
        assert_ne!(&disk.flushed_image()[4096..8192], &[0xaa; 4096][..]);
        cache.sync().unwrap();
        assert_eq!(&disk.flushed_image()[4096..8192], &[0xaa; 4096][..]);
    }

    #[test]
    fn device_not_a_multiple_of_a_page() {
        let (disk, cache) = setup(13, 8); // last page has 5 sectors
        assert_eq!(cache.size(), 13 * 512);
        let mut buf = vec![0u8; 13 * 512];
        cache.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, disk.image());
        cache.write_at(13 * 512 - 3, b"end").unwrap();
        assert_eq!(
            cache.write_at(13 * 512 - 2, b"end"),
            Err(IoError::OutOfRange)
        );
        assert_eq!(
            cache.read_at(13 * 512, &mut [0u8; 1]),
            Err(IoError::OutOfRange)
        );
        cache.sync().unwrap();
        assert_eq!(&disk.image()[13 * 512 - 3..], b"end");
    }

    #[test]
    fn read_errors_propagate_and_cache_nothing() {
        let (disk, cache) = setup(64, 8);
        disk.fail_reads(true);
        assert_eq!(cache.read_at(0, &mut [0u8; 10]), Err(IoError::Device));
        assert_eq!(cache.write_at(5, b"x"), Err(IoError::Device));
        disk.fail_reads(false);
        let mut buf = [0u8; 10];
        cache.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..], &disk.image()[..10]);
    }

    #[test]
    fn failed_writeback_keeps_data_dirty() {
        let (disk, cache) = setup(64, 2);
        cache.write_at(0, &[1u8; 4096]).unwrap();
        cache.write_at(4096, &[2u8; 4096]).unwrap();
        disk.fail_writes_after(Some(0));
        // A third page needs a slot: the dirty victim cannot be written, so the
        // operation fails and nothing is lost.
        assert_eq!(cache.read_at(8192, &mut [0u8; 1]), Err(IoError::Device));
        assert_eq!(cache.sync(), Err(IoError::Device));
        assert_eq!(cache.dirty_pages(), 2);
        let mut buf = [0u8; 4096];
        cache.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, [1u8; 4096]);
        disk.fail_writes_after(None);
        cache.sync().unwrap();
        assert_eq!(cache.dirty_pages(), 0);
        assert_eq!(&disk.flushed_image()[..4096], &[1u8; 4096][..]);
        assert_eq!(&disk.flushed_image()[4096..8192], &[2u8; 4096][..]);
        // Now the slot can be reused.
        cache.read_at(8192, &mut [0u8; 1]).unwrap();
    }

    #[test]
    fn flush_error_propagates() {
        let (disk, cache) = setup(16, 4);
        cache.write_at(0, b"abc").unwrap();
        disk.fail_flush(true);
        assert_eq!(cache.sync(), Err(IoError::Device));
        disk.fail_flush(false);
        cache.sync().unwrap();
        assert_eq!(&disk.flushed_image()[..3], b"abc");
    }

    #[test]
    fn generation_counts_writes() {
        let (_disk, cache) = setup(16, 4);
        let g = cache.generation();
        cache.read_at(0, &mut [0u8; 8]).unwrap();
        assert_eq!(cache.generation(), g);
        cache.write_at(0, b"x").unwrap();
        assert_ne!(cache.generation(), g);
    }

    #[test]
    fn read_only_device() {
        let disk = Arc::new(RamDisk::new(16));
        disk.set_read_only(true);
        let cache = BlockCache::new(disk, 4);
        assert!(cache.read_only());
        assert_eq!(cache.write_at(0, b"x"), Err(IoError::ReadOnly));
        cache.read_at(0, &mut [0u8; 4]).unwrap();
    }

    #[test]
    fn concurrent_users() {
        let (disk, cache) = setup(256, 8);
        let cache = Arc::new(cache);
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        let off = (t as u64 * 32 + i % 32) * 1024;
                        cache.write_at(off, &[t + 1; 1024]).unwrap();
                        let mut b = [0u8; 1024];
                        cache.read_at(off, &mut b).unwrap();
                        assert_eq!(b, [t + 1; 1024]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        cache.sync().unwrap();
        let img = disk.flushed_image();
        for t in 0..4usize {
            assert!(img[t * 32 * 1024..(t + 1) * 32 * 1024]
                .iter()
                .all(|&b| b == t as u8 + 1));
        }
    }
}
