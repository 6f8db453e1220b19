//! Skiff's block layer: the contract between block-device drivers (virtio-blk) and the
//! filesystems that store data on them (FAT volumes).
//!
//! This module owns [`BlockDevice`], the one trait a driver implements. Callers may
//! sleep inside its methods (the driver parks the thread until the device interrupts),
//! so they must not hold spin locks across them; [`lock::SleepLock`] is the lock storage
//! code holds across I/O instead.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod cache;
pub mod lock;
pub mod ram;

pub use cache::{BlockCache, CacheStats, PAGE_SIZE};
pub use lock::{set_lock_hooks, SleepLock, SleepLockGuard};
pub use ram::{RamDisk, RamDiskStats};

/// Bytes per sector, the unit of [`BlockDevice`] addresses (virtio-blk's fixed unit).
pub const SECTOR_SIZE: usize = 512;

/// Why a device request failed. Filesystems turn every variant into `EIO` for the
/// application (`EROFS` for [`IoError::ReadOnly`]); none is a reason to panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The device reported an error for the request (virtio status IOERR).
    Device,
    /// The device does not support the request (virtio status UNSUPP).
    Unsupported,
    /// The request reaches past the last sector.
    OutOfRange,
    /// The buffer is not a whole number of sectors.
    Misaligned,
    /// The device is read-only.
    ReadOnly,
}

impl From<IoError> for skiff_errno::Errno {
    fn from(e: IoError) -> Self {
        match e {
            IoError::ReadOnly => skiff_errno::Errno::EROFS,
            _ => skiff_errno::Errno::EIO,
        }
    }
}

/// A disk addressed in [`SECTOR_SIZE`] sectors. Implementations are shared between
/// threads; each call is one complete request (it returns when the device has finished
/// it), and a call may put the calling thread to sleep.
pub trait BlockDevice: Send + Sync {
    /// Capacity in sectors.
    fn sector_count(&self) -> u64;
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// Reads `buf.len() / SECTOR_SIZE` sectors starting at `sector`.
    fn read_sectors(&self, sector: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Writes `buf.len() / SECTOR_SIZE` sectors starting at `sector`. When it returns the
    /// device has the data, but it may sit in a volatile cache until [`flush`].
    ///
    /// [`flush`]: BlockDevice::flush
    fn write_sectors(&self, sector: u64, buf: &[u8]) -> Result<(), IoError>;
    /// Makes every completed write durable (virtio-blk FLUSH).
    fn flush(&self) -> Result<(), IoError>;
    /// The device's identifier (virtio-blk serial), used to match volumes to mount points.
    fn serial(&self) -> &[u8];
}

/// Checks a request against the device size and the sector unit; drivers and fakes share it.
pub fn check_request(device_sectors: u64, sector: u64, len: usize) -> Result<(), IoError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(IoError::Misaligned);
    }
    let count = (len / SECTOR_SIZE) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= device_sectors => Ok(()),
        _ => Err(IoError::OutOfRange),
    }
}
