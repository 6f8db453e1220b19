//! `eventfd`: a 64-bit counter behind a descriptor, for threads (and the Go runtime's
//! kind of wakeup pipes) to signal each other through `read`, `write`, `poll` and epoll.
//!
//! A write adds its 8-byte value; a read returns the counter and zeroes it, or, with
//! `EFD_SEMAPHORE`, returns 1 and decrements it. As with pipes the device never blocks
//! itself: a read of a zero counter and a write that would take the counter past
//! `u64::MAX - 1` answer `EAGAIN`, and the syscall layer waits for descriptors that are
//! not `O_NONBLOCK`.

use crate::device::{event_stamp, CharDevice, Generation};
use crate::epoll::{EPOLLERR, EPOLLIN, EPOLLOUT};
use crate::file::OpenFile;
use crate::types::{OpenFlags, Stat};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_errno::{Errno, KResult};
use spin::Mutex;

/// `eventfd2` flag: reads take one unit at a time.
pub const EFD_SEMAPHORE: u32 = 1;
/// `eventfd2` flag: `O_NONBLOCK`.
pub const EFD_NONBLOCK: u32 = OpenFlags::O_NONBLOCK;
/// `eventfd2` flag: `O_CLOEXEC` (the caller applies it to the descriptor).
pub const EFD_CLOEXEC: u32 = OpenFlags::O_CLOEXEC;

/// The largest counter value a write may produce; Linux keeps `u64::MAX` for overflow.
const MAX_COUNT: u64 = u64::MAX - 1;

/// The counter of one eventfd.
pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    /// Stamp of the last successful write (Linux wakes `EPOLLIN` waiters on each,
    /// even of 0).
    writes: AtomicU64,
    /// Stamp of the last successful read (Linux wakes `EPOLLOUT` waiters on each).
    reads: AtomicU64,
}

impl EventFd {
    pub fn new(initial: u64, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(initial),
            semaphore,
            writes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }
}

/// `eventfd2(initval, flags)`: the new open file (`O_RDWR`, plus `O_NONBLOCK` if
/// asked). `EINVAL` for flags other than `EFD_SEMAPHORE`, `EFD_NONBLOCK` and
/// `EFD_CLOEXEC`; the caller installs the descriptor with close-on-exec when
/// `flags & EFD_CLOEXEC`.
pub fn eventfd(initval: u32, flags: u32) -> KResult<Arc<OpenFile>> {
    if flags & !(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let device = Arc::new(EventFd::new(u64::from(initval), flags & EFD_SEMAPHORE != 0));
    Ok(OpenFile::detached_device(
        device,
        OpenFlags(OpenFlags::O_RDWR | (flags & EFD_NONBLOCK)),
        anon_inode_stat(),
    ))
}

/// What `fstat` reports for Linux's anonymous-inode files (eventfd, epoll): one shared
/// inode with mode 0600 and no file type bits.
pub fn anon_inode_stat() -> Stat {
    Stat {
        dev: crate::types::makedev(0, 16),
        ino: 1,
        nlink: 1,
        mode: 0o600,
        blksize: 4096,
        ..Stat::default()
    }
}

impl CharDevice for EventFd {
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let mut count = self.count.lock();
        if *count == 0 {
            return Err(Errno::EAGAIN);
        }
        let taken = if self.semaphore { 1 } else { *count };
        *count -= taken;
        self.reads.store(event_stamp(), Ordering::Release);
        buf[..8].copy_from_slice(&taken.to_ne_bytes());
        Ok(8)
    }

    fn write(&self, buf: &[u8]) -> KResult<usize> {
        let value: [u8; 8] = buf
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(Errno::EINVAL)?;
        let value = u64::from_ne_bytes(value);
        if value == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let mut count = self.count.lock();
        if value > MAX_COUNT - *count {
            return Err(Errno::EAGAIN);
        }
        *count += value;
        self.writes.store(event_stamp(), Ordering::Release);
        Ok(8)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read_ready(&self) -> bool {
        *self.count.lock() > 0
    }

    fn write_ready(&self) -> bool {
        *self.count.lock() < MAX_COUNT
    }

    fn poll_mask(&self) -> u32 {
        // Linux's eventfd_poll: plain EPOLLIN/EPOLLOUT, no RDNORM/WRNORM.
        let count = *self.count.lock();
        let mut mask = 0;
        if count > 0 {
            mask |= EPOLLIN;
        }
        if count == u64::MAX {
            mask |= EPOLLERR;
        }
        if count < MAX_COUNT {
            mask |= EPOLLOUT;
        }
        mask
    }

    fn generation(&self) -> Generation {
        Generation {
            input: self.writes.load(Ordering::Acquire),
            output: self.reads.load(Ordering::Acquire),
            hangup: 0,
        }
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn link_name(&self) -> Option<Vec<u8>> {
        Some(b"anon_inode:[eventfd]".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn read_u64(f: &OpenFile) -> KResult<u64> {
        let mut buf = [0u8; 8];
        assert_eq!(f.read(&mut buf)?, 8);
        Ok(u64::from_ne_bytes(buf))
    }

    fn write_u64(f: &OpenFile, v: u64) -> KResult<usize> {
        f.write(&v.to_ne_bytes())
    }

    #[test]
    fn counter_reads_all_and_zeroes() {
        let f = eventfd(3, EFD_NONBLOCK).unwrap();
        assert_eq!(read_u64(&f), Ok(3));
        assert_eq!(read_u64(&f), Err(Errno::EAGAIN));
        assert_eq!(write_u64(&f, 5), Ok(8));
        assert_eq!(write_u64(&f, 2), Ok(8));
        assert_eq!(read_u64(&f), Ok(7));
    }

    #[test]
    fn semaphore_reads_one_at_a_time() {
        let f = eventfd(2, EFD_SEMAPHORE).unwrap();
        assert_eq!(read_u64(&f), Ok(1));
        assert_eq!(read_u64(&f), Ok(1));
        assert_eq!(read_u64(&f), Err(Errno::EAGAIN));
    }

    #[test]
    fn short_buffers_and_the_reserved_value_are_einval() {
        let f = eventfd(1, 0).unwrap();
        assert_eq!(f.read(&mut [0u8; 7]), Err(Errno::EINVAL));
        assert_eq!(f.write(&[0u8; 4]), Err(Errno::EINVAL));
        assert_eq!(write_u64(&f, u64::MAX), Err(Errno::EINVAL));
        // A longer buffer uses its first 8 bytes and reports 8.
        let mut long = vec![0u8; 16];
        long[..8].copy_from_slice(&4u64.to_ne_bytes());
        assert_eq!(f.write(&long), Ok(8));
        let mut out = [0xffu8; 16];
        assert_eq!(f.read(&mut out), Ok(8));
        assert_eq!(u64::from_ne_bytes(out[..8].try_into().unwrap()), 5);
        assert_eq!(out[8], 0xff, "bytes past the counter are untouched");
    }

    #[test]
    fn writes_stop_below_the_maximum() {
        let f = eventfd(0, EFD_NONBLOCK).unwrap();
        assert_eq!(write_u64(&f, u64::MAX - 2), Ok(8));
        assert!(f.poll_ready().1);
        assert_eq!(write_u64(&f, 1), Ok(8));
        assert!(!f.poll_ready().1, "at u64::MAX - 1 nothing more fits");
        assert_eq!(f.poll_mask(), EPOLLIN);
        assert_eq!(write_u64(&f, 1), Err(Errno::EAGAIN));
        assert_eq!(write_u64(&f, 0), Ok(8), "adding 0 always fits");
        assert_eq!(read_u64(&f), Ok(u64::MAX - 1));
        assert_eq!(f.poll_mask(), EPOLLOUT);
    }

    #[test]
    fn readiness_and_generations_follow_linux_wakeups() {
        let f = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK).unwrap();
        assert_eq!(f.poll_ready(), (false, true));
        let g0 = f.generation();
        write_u64(&f, 2).unwrap();
        let g1 = f.generation();
        assert!(g1.input > g0.input);
        assert_eq!(g1.output, g0.output);
        read_u64(&f).unwrap();
        let g2 = f.generation();
        assert_eq!(g2.input, g1.input);
        assert!(g2.output > g1.output);
        assert_eq!(f.poll_mask(), EPOLLIN | EPOLLOUT);
    }

    #[test]
    fn flags_and_file_attributes() {
        assert_eq!(eventfd(0, 0x10).err(), Some(Errno::EINVAL));
        let f = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).unwrap();
        assert_eq!(
            f.status_flags(),
            OpenFlags::O_RDWR | OpenFlags::O_NONBLOCK,
            "no O_LARGEFILE, no O_CLOEXEC in F_GETFL"
        );
        let st = f.stat().unwrap();
        assert_eq!((st.mode, st.nlink, st.size), (0o600, 1, 0));
        assert_eq!(f.path(), b"anon_inode:[eventfd]".to_vec());
        assert_eq!(f.seek(0, 0), Err(Errno::ESPIPE));
        assert_eq!(f.pread(&mut [0u8; 8], 0), Err(Errno::ESPIPE));
        assert!(f.pollable());
        assert!(f.device::<EventFd>().is_some());
    }
}
