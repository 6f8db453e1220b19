//! Pipes: a bounded byte queue with a read end and a write end.
//!
//! The ends never block themselves: an empty pipe with live writers answers `EAGAIN`
//! to a read, and a full pipe answers `EAGAIN` to a write that could move nothing. The
//! syscall layer, which owns waiting, blocks callers whose descriptor is not
//! `O_NONBLOCK` and retries. A write with no reader left is `EPIPE` (the syscall layer
//! raises `SIGPIPE`); a read with no writer left and nothing buffered is end of file.
//!
//! For `poll` and epoll a pipe reports what Linux's does: the read end `EPOLLIN` while
//! data is queued and `EPOLLHUP` once every writer is gone; the write end `EPOLLOUT`
//! while a `PIPE_BUF` write would fit and `EPOLLERR` once the reader is gone. It also
//! stamps the wakeups Linux sends ([`Generation`]): readers on every write (Linux
//! wakes them even when data was already queued, because epoll users rely on it),
//! writers when a read makes room in a full pipe, and both when an end closes.

use crate::device::{event_stamp, CharDevice, Generation};
use crate::epoll::{EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDNORM, EPOLLWRNORM};
use crate::file::OpenFile;
use crate::types::{OpenFlags, Stat, S_IFIFO};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
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
    ino: u64,
    /// Stamp of the last write that queued data.
    arrivals: AtomicU64,
    /// Stamp of the last read that made room in a pipe a `PIPE_BUF` write did not
    /// fit in.
    departures: AtomicU64,
    /// Stamp of the last close that left one side with nobody.
    hangups: AtomicU64,
}

impl Pipe {
    /// Whether a write of up to `PIPE_BUF` bytes fits; Linux's pipe is "full" for
    /// `poll` when such a write would block, which this byte queue mirrors.
    fn has_room(data: &VecDeque<u8>) -> bool {
        PIPE_CAPACITY - data.len() >= PIPE_BUF
    }
}

struct PipeEnd {
    pipe: Arc<Pipe>,
    writer: bool,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let left = if self.writer {
            self.pipe.writers.fetch_sub(1, Ordering::AcqRel)
        } else {
            self.pipe.readers.fetch_sub(1, Ordering::AcqRel)
        };
        if left == 1 {
            self.pipe.hangups.store(event_stamp(), Ordering::Release);
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
        let was_full = !Pipe::has_room(&data);
        let n = buf.len().min(data.len());
        for (dst, src) in buf.iter_mut().zip(data.drain(..n)) {
            *dst = src;
        }
        if was_full {
            self.pipe.departures.store(event_stamp(), Ordering::Release);
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
        if n > 0 {
            self.pipe.arrivals.store(event_stamp(), Ordering::Release);
        }
        Ok(n)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read_ready(&self) -> bool {
        !self.pipe.data.lock().is_empty() || self.pipe.writers.load(Ordering::Acquire) == 0
    }

    fn write_ready(&self) -> bool {
        // With no reader a write fails at once (EPIPE), which is "would not block".
        Pipe::has_room(&self.pipe.data.lock()) || self.pipe.readers.load(Ordering::Acquire) == 0
    }

    fn buffered(&self) -> Option<usize> {
        Some(self.pipe.data.lock().len())
    }

    fn poll_mask(&self) -> u32 {
        let data = self.pipe.data.lock();
        if self.writer {
            let mut mask = 0;
            if Pipe::has_room(&data) {
                mask |= EPOLLOUT | EPOLLWRNORM;
            }
            if self.pipe.readers.load(Ordering::Acquire) == 0 {
                mask |= EPOLLERR;
            }
            mask
        } else {
            // End of file shows as EPOLLHUP alone, as on Linux, not as EPOLLIN.
            let mut mask = 0;
            if !data.is_empty() {
                mask |= EPOLLIN | EPOLLRDNORM;
            }
            if self.pipe.writers.load(Ordering::Acquire) == 0 {
                mask |= EPOLLHUP;
            }
            mask
        }
    }

    fn generation(&self) -> Generation {
        // Each end hears only its own side's wakeups, as on Linux where the read end
        // waits on the pipe's read queue and the write end on its write queue.
        let (input, output) = if self.writer {
            (0, self.pipe.departures.load(Ordering::Acquire))
        } else {
            (self.pipe.arrivals.load(Ordering::Acquire), 0)
        };
        Generation {
            input,
            output,
            hangup: self.pipe.hangups.load(Ordering::Acquire),
        }
    }

    fn link_name(&self) -> Option<Vec<u8>> {
        Some(format!("pipe:[{}]", self.pipe.ino).into_bytes())
    }
}

static NEXT_PIPE_INO: AtomicU64 = AtomicU64::new(1);

/// Make a pipe: (read end, write end). `flags` may hold `O_NONBLOCK` (for both ends).
pub fn pipe(flags: u32) -> (Arc<OpenFile>, Arc<OpenFile>) {
    let ino = NEXT_PIPE_INO.fetch_add(1, Ordering::Relaxed);
    let pipe = Arc::new(Pipe {
        data: Mutex::new(VecDeque::new()),
        readers: AtomicUsize::new(1),
        writers: AtomicUsize::new(1),
        ino,
        arrivals: AtomicU64::new(0),
        departures: AtomicU64::new(0),
        hangups: AtomicU64::new(0),
    });
    let stat = Stat {
        // pipefs: its own device number, one inode per pipe.
        dev: crate::types::makedev(0, 12),
        ino,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_mask_is_linuxs() {
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        assert_eq!(r.poll_mask(), 0);
        assert_eq!(w.poll_mask(), EPOLLOUT | EPOLLWRNORM);
        w.write(b"hi").unwrap();
        assert_eq!(r.poll_mask(), EPOLLIN | EPOLLRDNORM);
        drop(w);
        assert_eq!(r.poll_mask(), EPOLLIN | EPOLLRDNORM | EPOLLHUP);
        r.read(&mut [0u8; 2]).unwrap();
        assert_eq!(
            r.poll_mask(),
            EPOLLHUP,
            "end of file: EPOLLHUP without EPOLLIN"
        );

        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        drop(r);
        assert_eq!(w.poll_mask(), EPOLLOUT | EPOLLWRNORM | EPOLLERR);
        assert!(w.poll_ready().1, "a writer with no reader must not wait");
    }

    #[test]
    fn full_means_no_room_for_pipe_buf_bytes() {
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        w.write(&alloc::vec![0u8; PIPE_CAPACITY - PIPE_BUF])
            .unwrap();
        assert!(w.poll_ready().1);
        w.write(&[0u8; 1]).unwrap();
        assert!(!w.poll_ready().1, "a PIPE_BUF write would not fit");
        assert_eq!(w.write(&[0u8; PIPE_BUF]), Err(Errno::EAGAIN));
        r.read(&mut [0u8; 1]).unwrap();
        assert!(w.poll_ready().1);
    }

    #[test]
    fn generations_stamp_the_wakeups_each_end_hears() {
        let (r, w) = pipe(OpenFlags::O_NONBLOCK);
        let (r0, w0) = (r.generation(), w.generation());
        w.write(b"a").unwrap();
        let r1 = r.generation();
        assert!(r1.input > r0.input);
        w.write(b"b").unwrap();
        assert!(r.generation().input > r1.input, "every write is a wakeup");
        r.read(&mut [0u8; 1]).unwrap();
        assert_eq!(
            w.generation(),
            w0,
            "a read of a pipe with room wakes no writer"
        );
        assert_eq!(w.generation().input, 0, "the write end never hears input");
        drop(w);
        assert!(r.generation().hangup > r0.hangup);
    }

    #[test]
    fn proc_fd_names_the_pipe() {
        let (r, w) = pipe(0);
        let ino = r.stat().unwrap().ino;
        let name = alloc::format!("pipe:[{ino}]").into_bytes();
        assert_eq!(r.path(), name);
        assert_eq!(w.path(), name);
        assert_eq!(
            r.status_flags(),
            OpenFlags::O_RDONLY,
            "pipe2 adds no O_LARGEFILE"
        );
        assert_eq!(w.status_flags(), OpenFlags::O_WRONLY);
    }
}
