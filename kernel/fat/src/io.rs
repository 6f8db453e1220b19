//! Glue between starry-fatfs and Skiff: the byte stream fatfs reads and writes (a
//! [`BlockCache`]), its error type, the errno of each fatfs error, and its clock.

use crate::time::Civil;
use alloc::sync::Arc;
use core::fmt;
use skiff_block::{BlockCache, IoError};
use skiff_errno::Errno;
use skiff_fs::Clock;

/// The error of [`CacheIo`], as fatfs sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The device (or the cache in front of it) failed.
    Io(IoError),
    /// A read ended at the end of the device.
    Eof,
    /// A write could not make progress (the end of the device or of a fixed region).
    WriteZero,
}

impl fatfs::IoError for DiskError {
    fn is_interrupted(&self) -> bool {
        false
    }
    fn new_unexpected_eof_error() -> Self {
        DiskError::Eof
    }
    fn new_write_zero_error() -> Self {
        DiskError::WriteZero
    }
}

impl From<DiskError> for Errno {
    fn from(e: DiskError) -> Errno {
        match e {
            DiskError::Io(e) => e.into(),
            DiskError::Eof => Errno::EIO,
            // The only fixed-size region fatfs writes into is the FAT12/16 root
            // directory: a full one is "no space".
            DiskError::WriteZero => Errno::ENOSPC,
        }
    }
}

/// The errno for a fatfs error.
pub fn fat_errno(e: fatfs::Error<DiskError>) -> Errno {
    use fatfs::Error as E;
    match e {
        E::Io(e) => e.into(),
        E::UnexpectedEof => Errno::EIO,
        E::WriteZero => Errno::ENOSPC,
        E::InvalidInput => Errno::EINVAL,
        E::NotFound => Errno::ENOENT,
        E::AlreadyExists => Errno::EEXIST,
        E::DirectoryIsNotEmpty => Errno::ENOTEMPTY,
        E::CorruptedFileSystem => Errno::EIO,
        E::NotEnoughSpace => Errno::ENOSPC,
        E::InvalidFileNameLength => Errno::ENAMETOOLONG,
        E::UnsupportedFileNameCharacter => Errno::EINVAL,
        _ => Errno::EIO,
    }
}

/// Bytes of [`CacheIo`]'s read buffer.
const BUF: u64 = 4096;

/// A seekable byte stream over a [`BlockCache`], the storage fatfs runs on. `flush` does
/// nothing: fatfs flushes after every file operation, and durability is the cache's
/// [`BlockCache::sync`], called for fsync, syncfs and unmount.
///
/// fatfs reads directory entries and FAT links a few bytes at a time, so the stream
/// keeps a copy of the last page it read and serves small reads from it while the
/// cache's write generation shows that nothing was written since (writes made here
/// update the copy).
pub struct CacheIo {
    cache: Arc<BlockCache>,
    pos: u64,
    buf: alloc::vec::Vec<u8>,
    buf_start: u64,
    /// The cache generation `buf` is current for; `None`: no valid copy.
    buf_gen: Option<u64>,
}

impl CacheIo {
    pub fn new(cache: Arc<BlockCache>) -> CacheIo {
        CacheIo {
            cache,
            pos: 0,
            buf: alloc::vec::Vec::new(),
            buf_start: 0,
            buf_gen: None,
        }
    }

    fn buffered(&self, pos: u64) -> bool {
        self.buf_gen == Some(self.cache.generation())
            && pos >= self.buf_start
            && pos < self.buf_start + self.buf.len() as u64
    }
}

impl fatfs::IoBase for CacheIo {
    type Error = DiskError;
}

impl fatfs::Read for CacheIo {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, DiskError> {
        let size = self.cache.size();
        let left = size.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        if n as u64 >= BUF {
            self.cache
                .read_at(self.pos, &mut buf[..n])
                .map_err(DiskError::Io)?;
            self.pos += n as u64;
            return Ok(n);
        }
        if !self.buffered(self.pos) {
            let start = self.pos & !(BUF - 1);
            let len = BUF.min(size - start) as usize;
            self.buf.resize(len, 0);
            self.buf_gen = None;
            let generation = self.cache.generation();
            self.cache
                .read_at(start, &mut self.buf)
                .map_err(DiskError::Io)?;
            self.buf_start = start;
            self.buf_gen = Some(generation);
        }
        let at = (self.pos - self.buf_start) as usize;
        let n = n.min(self.buf.len() - at);
        buf[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl fatfs::Write for CacheIo {
    fn write(&mut self, buf: &[u8]) -> Result<usize, DiskError> {
        let left = self.cache.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let fresh = self.buf_gen == Some(self.cache.generation());
        self.buf_gen = None;
        self.cache
            .write_at(self.pos, &buf[..n])
            .map_err(DiskError::Io)?;
        // Keep the copy current with this write (the caller holds the volume lock, so
        // no other write came in between).
        let (start, end) = (self.buf_start, self.buf_start + self.buf.len() as u64);
        let (from, to) = (self.pos.max(start), (self.pos + n as u64).min(end));
        if fresh {
            if from < to {
                let src = &buf[(from - self.pos) as usize..(to - self.pos) as usize];
                self.buf[(from - start) as usize..(to - start) as usize].copy_from_slice(src);
            }
            self.buf_gen = Some(self.cache.generation());
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        Ok(())
    }
}

impl fatfs::Seek for CacheIo {
    fn seek(&mut self, pos: fatfs::SeekFrom) -> Result<u64, DiskError> {
        let size = self.cache.size();
        let new = match pos {
            fatfs::SeekFrom::Start(n) => Some(n),
            fatfs::SeekFrom::End(d) => size.checked_add_signed(d),
            fatfs::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(n) if n <= size => {
                self.pos = n;
                Ok(n)
            }
            _ => Err(DiskError::Io(IoError::OutOfRange)),
        }
    }
}

/// The kernel clock as fatfs's time source (UTC), for the times fatfs stamps on the
/// entries it creates.
#[derive(Clone)]
pub struct ClockTime {
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClockTime")
    }
}

impl fatfs::TimeProvider for ClockTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.get_current_date_time().date
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        // Clamped into FAT's range, so the constructors' range checks hold.
        let c = Civil::from_timespec(self.clock.realtime());
        fatfs::DateTime::new(
            fatfs::Date::new(c.year, c.month, c.day),
            fatfs::Time::new(c.hour, c.min, c.sec, c.millis),
        )
    }
}
