//! Pipes: a bounded byte queue with a read end and a write end.
//!
//! The ends never block themselves: an empty pipe with live writers answers `EAGAIN`
//! to a read, and a full pipe answers `EAGAIN` to a write that could move nothing. The
//! syscall layer, which owns waiting, blocks callers whose descriptor is not
//! `O_NONBLOCK` and retries. A write with no reader left is `EPIPE` (the syscall layer
//! raises `SIGPIPE`); a read with no writer left and nothing buffered is end of file.

use crate::device::CharDevice;
use crate::file::OpenFile;
use crate::types::{OpenFlags, Stat, S_IFIFO};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use skiff_errno::{Errno, KResult};
use spin::Mutex;

/// Linux's default pipe capacity.
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// Writes of at most this many bytes are atomic (all or nothing), as POSIX requires.
pub const PIPE_BUF: usize = 4096;

struct Pipe {
    data: Mutex<VecDeque<u8>>,
    readers: AtomicUsize,
    writers: AtomicUsize,
}

struct PipeEnd {
    pipe: Arc<Pipe>,
    writer: bool,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        if self.writer {
            self.pipe.writers.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.pipe.readers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl CharDevice for PipeEnd {
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        if self.writer {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let mut data = self.pipe.data.lock();
        if data.is_empty() {
            return if self.pipe.writers.load(Ordering::Acquire) == 0 {
                Ok(0)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let n = buf.len().min(data.len());
        for (dst, src) in buf.iter_mut().zip(data.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn write(&self, buf: &[u8]) -> KResult<usize> {
        if !self.writer {
            return Err(Errno::EBADF);
        }
        if self.pipe.readers.load(Ordering::Acquire) == 0 {
            return Err(Errno::EPIPE);
        }
        let mut data = self.pipe.data.lock();
        let room = PIPE_CAPACITY - data.len();
        if room == 0 || (buf.len() <= PIPE_BUF && room < buf.len()) {
            return Err(Errno::EAGAIN);
        }
        let n = buf.len().min(room);
        data.extend(buf[..n].iter().copied());
        Ok(n)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read_ready(&self) -> bool {
        !self.pipe.data.lock().is_empty() || self.pipe.writers.load(Ordering::Acquire) == 0
    }

    fn write_ready(&self) -> bool {
        self.pipe.data.lock().len() < PIPE_CAPACITY
            || self.pipe.readers.load(Ordering::Acquire) == 0
    }

    fn buffered(&self) -> Option<usize> {
        Some(self.pipe.data.lock().len())
    }
}

static NEXT_PIPE_INO: AtomicU64 = AtomicU64::new(1);

/// Make a pipe: (read end, write end). `flags` may hold `O_NONBLOCK` (for both ends).
pub fn pipe(flags: u32) -> (Arc<OpenFile>, Arc<OpenFile>) {
    let pipe = Arc::new(Pipe {
        data: Mutex::new(VecDeque::new()),
        readers: AtomicUsize::new(1),
        writers: AtomicUsize::new(1),
    });
    let stat = Stat {
        // pipefs: its own device number, one inode per pipe.
        dev: crate::types::makedev(0, 12),
        ino: NEXT_PIPE_INO.fetch_add(1, Ordering::Relaxed),
        nlink: 1,
        mode: S_IFIFO | 0o600,
        blksize: PIPE_BUF as u32,
        ..Stat::default()
    };
    let nb = flags & OpenFlags::O_NONBLOCK;
    let read_end = OpenFile::detached_device(
        Arc::new(PipeEnd {
            pipe: pipe.clone(),
            writer: false,
        }),
        OpenFlags(OpenFlags::O_RDONLY | nb),
        stat,
    );
    let write_end = OpenFile::detached_device(
        Arc::new(PipeEnd { pipe, writer: true }),
        OpenFlags(OpenFlags::O_WRONLY | nb),
        stat,
    );
    (read_end, write_end)
}
