//! FAT volumes for Skiff: FAT12, FAT16 and FAT32 with long file names, on a
//! [`BlockDevice`](skiff_block::BlockDevice), mounted into the VFS as a
//! [`skiff_fs::FileSystem`].
//!
//! * [`mount`]`(device, clock, cache_pages) -> KResult<Arc<FatVolume>>` reads the boot
//!   sector through a [`skiff_block::BlockCache`] of `cache_pages` pages; `EINVAL` for
//!   a device that holds no FAT volume; a read-only device gives a read-only mount.
//! * [`FatVolume`] implements [`skiff_fs::FileSystem`] (type "vfat", `statfs` with
//!   `MSDOS_SUPER_MAGIC`, `sync`, a clean `unmount`), and its inodes ([`FatInode`])
//!   implement [`skiff_fs::Inode`], including `sync` for fsync.
//! * [`format`]`(device, options)` writes an empty volume (fatfs's `format_volume`).
//!
//! starry-fatfs validates volumes at mount and formats them; everything written at run
//! time (file data, cluster chains, directory entries, FSInfo and the dirty flag) is
//! written here through one block cache (see [`volume`] for why). What FAT cannot
//! represent and the errnos that follow are listed in [`inode`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod dir;
pub mod inode;
pub mod io;
pub mod names;
pub mod table;
pub mod time;
pub mod volume;

pub use fatfs::{FatType, FormatVolumeOptions};
pub use inode::FatInode;
pub use table::FatKind;
pub use volume::{mount, FatVolume, MSDOS_SUPER_MAGIC, ORPHAN_DIR, ROOT_INO};

use alloc::sync::Arc;
use skiff_block::{BlockCache, BlockDevice};
use skiff_errno::{Errno, KResult};

/// Writes an empty FAT volume over the whole of `device` (fatfs picks FAT12/16/32 and
/// the cluster size from the size unless `options` say otherwise) and flushes it.
/// `EINVAL` if the options do not fit the device, `EROFS`/`EIO` from the device.
pub fn format(device: Arc<dyn BlockDevice>, options: FormatVolumeOptions) -> KResult<()> {
    let cache = Arc::new(BlockCache::new(device, 256));
    let mut io = io::CacheIo::new(cache.clone());
    fatfs::format_volume(&mut io, options).map_err(io::fat_errno)?;
    cache.sync().map_err(Errno::from)
}
