//! [`RamDisk`]: an in-memory [`BlockDevice`] for tests, with fault injection and a model
//! of a volatile write cache.
//!
//! The disk keeps two images: what reads see now, and what would survive a power cut
//! (the *flushed* image). A completed write changes only the first; [`BlockDevice::flush`]
//! copies every sector written since the last flush into the second. So
//! [`RamDisk::flushed_image`] is the disk as found after a crash, and a test can check that
//! what a filesystem claims durable really reached it.

use crate::{check_request, BlockDevice, IoError, SECTOR_SIZE};
use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use spin::Mutex;

/// Request counters of a [`RamDisk`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RamDiskStats {
    /// Read requests (successful or not).
    pub reads: u64,
    /// Write requests (successful or not).
    pub writes: u64,
    /// Flush requests.
    pub flushes: u64,
    /// Sectors read by successful requests.
    pub sectors_read: u64,
    /// Sectors written by successful requests.
    pub sectors_written: u64,
}

struct State {
    /// What reads return.
    data: Vec<u8>,
    /// What survives a crash.
    flushed: Vec<u8>,
    /// Sectors written since the last flush.
    unflushed: BTreeSet<u64>,
    read_only: bool,
    fail_reads: bool,
    fail_flush: bool,
    /// Write requests that still succeed before writes start failing.
    writes_left: Option<u64>,
    stats: RamDiskStats,
}

/// An in-memory disk. All methods take `&self`, so a test can keep an `Arc` to the disk
/// it gave a filesystem and inject faults or take snapshots while it runs.
pub struct RamDisk {
    state: Mutex<State>,
    serial: Vec<u8>,
}

impl RamDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: u64) -> RamDisk {
        Self::from_image(vec![0; sectors as usize * SECTOR_SIZE])
    }

    /// A disk holding `image` (its length rounded up to whole sectors with zeros), which
    /// counts as already flushed.
    pub fn from_image(mut image: Vec<u8>) -> RamDisk {
        let len = image.len().div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
        image.resize(len, 0);
        RamDisk {
            state: Mutex::new(State {
                flushed: image.clone(),
                data: image,
                unflushed: BTreeSet::new(),
                read_only: false,
                fail_reads: false,
                fail_flush: false,
                writes_left: None,
                stats: RamDiskStats::default(),
            }),
            serial: b"ramdisk".to_vec(),
        }
    }

    /// Sets the serial number the device reports.
    pub fn with_serial(mut self, serial: &[u8]) -> RamDisk {
        self.serial = serial.to_vec();
        self
    }

    /// Makes the device refuse writes (`IoError::ReadOnly`) or accept them again.
    pub fn set_read_only(&self, read_only: bool) {
        self.state.lock().read_only = read_only;
    }

    /// Makes every read request fail with `IoError::Device` (or succeed again).
    pub fn fail_reads(&self, fail: bool) {
        self.state.lock().fail_reads = fail;
    }

    /// Lets `n` more write requests succeed, then fails every write with
    /// `IoError::Device`; `None` makes writes succeed again.
    pub fn fail_writes_after(&self, n: Option<u64>) {
        self.state.lock().writes_left = n;
    }

    /// Makes flush requests fail with `IoError::Device` (or succeed again).
    pub fn fail_flush(&self, fail: bool) {
        self.state.lock().fail_flush = fail;
    }

    /// The disk's current content (what reads return).
    pub fn image(&self) -> Vec<u8> {
        self.state.lock().data.clone()
    }

    /// The content that survives a crash: only data covered by a completed flush.
    pub fn flushed_image(&self) -> Vec<u8> {
        self.state.lock().flushed.clone()
    }

    /// Number of sectors written since the last flush.
    pub fn unflushed_sectors(&self) -> usize {
        self.state.lock().unflushed.len()
    }

    pub fn stats(&self) -> RamDiskStats {
        self.state.lock().stats
    }

    pub fn reset_stats(&self) {
        self.state.lock().stats = RamDiskStats::default();
    }
}

impl BlockDevice for RamDisk {
    fn sector_count(&self) -> u64 {
        (self.state.lock().data.len() / SECTOR_SIZE) as u64
    }

    fn read_only(&self) -> bool {
        self.state.lock().read_only
    }

    fn read_sectors(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let mut s = self.state.lock();
        s.stats.reads += 1;
        check_request((s.data.len() / SECTOR_SIZE) as u64, sector, buf.len())?;
        if s.fail_reads {
            return Err(IoError::Device);
        }
        let start = sector as usize * SECTOR_SIZE;
        buf.copy_from_slice(&s.data[start..start + buf.len()]);
        s.stats.sectors_read += (buf.len() / SECTOR_SIZE) as u64;
        Ok(())
    }

    fn write_sectors(&self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        let mut s = self.state.lock();
        s.stats.writes += 1;
        check_request((s.data.len() / SECTOR_SIZE) as u64, sector, buf.len())?;
        if s.read_only {
            return Err(IoError::ReadOnly);
        }
        match s.writes_left {
            Some(0) => return Err(IoError::Device),
            Some(n) => s.writes_left = Some(n - 1),
            None => {}
        }
        let start = sector as usize * SECTOR_SIZE;
        s.data[start..start + buf.len()].copy_from_slice(buf);
        let count = (buf.len() / SECTOR_SIZE) as u64;
        s.unflushed.extend(sector..sector + count);
        s.stats.sectors_written += count;
        Ok(())
    }

    fn flush(&self) -> Result<(), IoError> {
        let mut s = self.state.lock();
        s.stats.flushes += 1;
        if s.fail_flush {
            return Err(IoError::Device);
        }
        let s = &mut *s;
        for &sector in &s.unflushed {
            let at = sector as usize * SECTOR_SIZE;
            s.flushed[at..at + SECTOR_SIZE].copy_from_slice(&s.data[at..at + SECTOR_SIZE]);
        }
        s.unflushed.clear();
        Ok(())
    }

    fn serial(&self) -> &[u8] {
        &self.serial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_and_bounds() {
        let d = RamDisk::new(8);
        assert_eq!(d.sector_count(), 8);
        d.write_sectors(2, &[7u8; 1024]).unwrap();
        let mut buf = [0u8; 512];
        d.read_sectors(3, &mut buf).unwrap();
        assert_eq!(buf, [7u8; 512]);
        assert_eq!(d.read_sectors(8, &mut buf), Err(IoError::OutOfRange));
        assert_eq!(d.write_sectors(7, &[0u8; 1024]), Err(IoError::OutOfRange));
        assert_eq!(d.read_sectors(0, &mut [0u8; 100]), Err(IoError::Misaligned));
    }

    #[test]
    fn only_flushed_writes_survive_a_crash() {
        let d = RamDisk::new(4);
        d.write_sectors(0, &[1u8; 512]).unwrap();
        d.flush().unwrap();
        d.write_sectors(1, &[2u8; 512]).unwrap();
        assert_eq!(d.unflushed_sectors(), 1);
        let crash = d.flushed_image();
        assert_eq!(&crash[..512], &[1u8; 512][..]);
        assert_eq!(&crash[512..1024], &[0u8; 512][..]);
        assert_eq!(&d.image()[512..1024], &[2u8; 512][..]);
        d.flush().unwrap();
        assert_eq!(&d.flushed_image()[512..1024], &[2u8; 512][..]);
    }

    #[test]
    fn faults() {
        let d = RamDisk::new(4);
        d.fail_writes_after(Some(1));
        d.write_sectors(0, &[1u8; 512]).unwrap();
        assert_eq!(d.write_sectors(1, &[1u8; 512]), Err(IoError::Device));
        d.fail_writes_after(None);
        d.write_sectors(1, &[1u8; 512]).unwrap();
        d.fail_reads(true);
        assert_eq!(d.read_sectors(0, &mut [0u8; 512]), Err(IoError::Device));
        d.fail_reads(false);
        d.set_read_only(true);
        assert!(d.read_only());
        assert_eq!(d.write_sectors(0, &[0u8; 512]), Err(IoError::ReadOnly));
        d.fail_flush(true);
        assert_eq!(d.flush(), Err(IoError::Device));
        let st = d.stats();
        assert_eq!(st.writes, 4);
        assert_eq!(st.sectors_written, 2);
    }
}
