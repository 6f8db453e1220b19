//! `signalfd`: signals as data. A signalfd is readable while a signal in its mask is
//! pending for the thread that asks (sent to that thread or to the whole process); a
//! read takes such signals, lowest number first as Linux dequeues them, and returns
//! each as a 128-byte `struct signalfd_siginfo`.
//!
//! This module owns the descriptor (its mask, which `signalfd` on an existing
//! descriptor replaces), the read rules and the `signalfd_siginfo` encoding, which
//! copies the fields Linux's `signalfd_copyinfo` copies for each kind of `siginfo_t`.
//! The signal queues belong to the syscall layer, reached through [`SignalSource`];
//! posting a signal must call [`signal_posted`] and wake I/O waiters, so that a thread
//! sleeping in `read`, `poll` or `epoll_wait` on a signalfd notices.
//!
//! Programs block the signals they read this way; a signal that is not blocked is
//! delivered (or ignored, or kills) as usual and may never be seen here, as on Linux.

use crate::device::{event_stamp, CharDevice, Generation};
use crate::epoll::EPOLLIN;
use crate::eventfd::anon_inode_stat;
use crate::file::OpenFile;
use crate::types::OpenFlags;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_errno::{Errno, KResult};

/// `signalfd4` flags.
pub const SFD_NONBLOCK: u32 = OpenFlags::O_NONBLOCK;
pub const SFD_CLOEXEC: u32 = OpenFlags::O_CLOEXEC;
/// `sizeof(struct signalfd_siginfo)` and of the kernel's `siginfo_t`.
pub const SIGNALFD_SIGINFO_SIZE: usize = 128;
pub const SIGINFO_SIZE: usize = 128;

const SIGKILL: u32 = 9;
const SIGSTOP: u32 = 19;
/// Signals no signalfd can take.
const UNREADABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// The signal queues of the calling thread, as the syscall layer keeps them.
pub trait SignalSource: Send + Sync {
    /// The signals pending for the calling thread: its own and the process's (bit
    /// `sig - 1` for signal `sig`).
    fn pending(&self) -> u64;
    /// Takes the next pending signal of the calling thread that is in `mask`, in
    /// Linux's dequeue order (the thread's own before the process's, synchronous
    /// signals first, then the lowest number), as a kernel `siginfo_t`.
    fn dequeue(&self, mask: u64) -> Option<[u8; SIGINFO_SIZE]>;
}

/// Stamp of the last signal posted anywhere (Linux wakes every signalfd of the process
/// then).
static POSTED: AtomicU64 = AtomicU64::new(0);

/// A signal was posted. Safe in interrupt context.
pub fn signal_posted() {
    POSTED.store(event_stamp(), Ordering::Release);
}

/// A signalfd: the device behind its open file.
pub struct SignalFd {
    mask: AtomicU64,
    source: Arc<dyn SignalSource>,
}

/// `signalfd4(-1, mask, flags)`: a new signalfd for the signals in `mask` (SIGKILL
/// and SIGSTOP are dropped from it silently). `EINVAL` for unknown flags; the caller
/// applies `SFD_CLOEXEC` to the descriptor.
pub fn signalfd(source: Arc<dyn SignalSource>, mask: u64, flags: u32) -> KResult<Arc<OpenFile>> {
    if flags & !(SFD_NONBLOCK | SFD_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let device = Arc::new(SignalFd {
        mask: AtomicU64::new(mask & !UNREADABLE),
        source,
    });
    Ok(OpenFile::detached_device(
        device,
        OpenFlags(OpenFlags::O_RDWR | (flags & SFD_NONBLOCK)),
        anon_inode_stat(),
    ))
}

impl SignalFd {
    /// `signalfd4(fd, mask, _)` on an existing signalfd: replaces its mask.
    pub fn set_mask(&self, mask: u64) {
        self.mask.store(mask & !UNREADABLE, Ordering::Release);
    }

    pub fn mask(&self) -> u64 {
        self.mask.load(Ordering::Acquire)
    }
}

impl CharDevice for SignalFd {
    /// As many records as fit in `buf` and are pending; `EAGAIN` when none is,
    /// `EINVAL` for a buffer under 128 bytes.
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        if buf.len() < SIGNALFD_SIGINFO_SIZE {
            return Err(Errno::EINVAL);
        }
        let mask = self.mask();
        let mut done = 0;
        for record in buf.chunks_exact_mut(SIGNALFD_SIGINFO_SIZE) {
            let Some(info) = self.source.dequeue(mask) else {
                break;
            };
            record.copy_from_slice(&signalfd_siginfo(&info));
            done += SIGNALFD_SIGINFO_SIZE;
        }
        if done == 0 {
            return Err(Errno::EAGAIN);
        }
        Ok(done)
    }

    fn write(&self, _buf: &[u8]) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn read_ready(&self) -> bool {
        self.source.pending() & self.mask() != 0
    }

    fn write_ready(&self) -> bool {
        false
    }

    /// Linux's `signalfd_poll`: `EPOLLIN` alone, while a signal in the mask is pending
    /// for the polling thread.
    fn poll_mask(&self) -> u32 {
        if self.read_ready() {
            EPOLLIN
        } else {
            0
        }
    }

    fn generation(&self) -> Generation {
        Generation {
            input: POSTED.load(Ordering::Acquire),
            output: 0,
            hangup: 0,
        }
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn link_name(&self) -> Option<Vec<u8>> {
        Some(b"anon_inode:[signalfd]".to_vec())
    }
}

// ---- struct signalfd_siginfo ----

/// `si_code` values that decide the layout of a `siginfo_t` (Linux's
/// `siginfo_layout`).
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_TIMER: i32 = -2;
const SI_SIGIO: i32 = -5;
const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGSEGV: i32 = 11;
const SIGCHLD: i32 = 17;
const SIGPOLL: i32 = 29;
const SIGSYS: i32 = 31;
/// Linux's `NSIGPOLL`.
const NSIGPOLL: i32 = 6;
/// Machine-check `SIGBUS` codes, whose fault layout adds the address's low bit.
const BUS_MCEERR_AR: i32 = 4;
const BUS_MCEERR_AO: i32 = 5;

/// Which union member of a `siginfo_t` is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Kill,
    Timer,
    Poll,
    Fault,
    Chld,
    Rt,
    Sys,
}

fn layout(signo: i32, code: i32) -> Layout {
    if code > SI_USER && code < SI_KERNEL {
        // Codes the kernel assigns per signal (`sig_sicodes`); on x86_64 no fault
        // carries a trap number.
        let limit = match signo {
            SIGILL => 11,
            SIGFPE => 15,
            SIGSEGV => 10,
            SIGBUS => 5,
            SIGTRAP => 6,
            SIGCHLD => 6,
            SIGPOLL => NSIGPOLL,
            SIGSYS => 1,
            _ => 0,
        };
        if code <= limit {
            return match signo {
                SIGILL | SIGFPE | SIGSEGV | SIGBUS | SIGTRAP => Layout::Fault,
                SIGCHLD => Layout::Chld,
                SIGPOLL => Layout::Poll,
                _ => Layout::Sys,
            };
        }
        if code <= NSIGPOLL {
            return Layout::Poll;
        }
        return Layout::Kill;
    }
    match code {
        SI_TIMER => Layout::Timer,
        SI_SIGIO => Layout::Poll,
        c if c < 0 => Layout::Rt,
        _ => Layout::Kill,
    }
}

/// Converts a kernel `siginfo_t` into the `struct signalfd_siginfo` a read returns,
/// copying the fields Linux's `signalfd_copyinfo` copies for its layout.
pub fn signalfd_siginfo(info: &[u8; SIGINFO_SIZE]) -> [u8; SIGNALFD_SIGINFO_SIZE] {
    let i32_at = |o: usize| i32::from_ne_bytes(info[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(info[o..o + 8].try_into().unwrap());
    let mut out = [0u8; SIGNALFD_SIGINFO_SIZE];
    let mut put32 = |o: usize, v: i32| out[o..o + 4].copy_from_slice(&v.to_ne_bytes());
    let (signo, errno, code) = (i32_at(0), i32_at(4), i32_at(8));
    put32(0, signo); // ssi_signo
    put32(4, errno); // ssi_errno
    put32(8, code); // ssi_code
                    // The union of siginfo_t starts at 16.
    let mut wide: [(usize, u64); 4] = [(0, 0); 4];
    match layout(signo, code) {
        Layout::Kill => {
            put32(12, i32_at(16)); // ssi_pid
            put32(16, i32_at(20)); // ssi_uid
        }
        Layout::Rt => {
            put32(12, i32_at(16));
            put32(16, i32_at(20));
            put32(44, i32_at(24)); // ssi_int
            wide[0] = (48, u64_at(24)); // ssi_ptr
        }
        Layout::Timer => {
            put32(24, i32_at(16)); // ssi_tid (the timer id)
            put32(32, i32_at(20)); // ssi_overrun
            put32(44, i32_at(24));
            wide[0] = (48, u64_at(24));
        }
        Layout::Poll => {
            put32(28, u64_at(16) as i32); // ssi_band
            put32(20, i32_at(24)); // ssi_fd
        }
        Layout::Fault => {
            wide[0] = (72, u64_at(16)); // ssi_addr
            if signo == SIGBUS && (BUS_MCEERR_AR..=BUS_MCEERR_AO).contains(&code) {
                // ssi_addr_lsb, a short, shares its word with __pad2 (left zero).
                put32(
                    80,
                    i32::from(i16::from_ne_bytes([info[24], info[25]])) & 0xffff,
                );
            }
        }
        Layout::Chld => {
            put32(12, i32_at(16));
            put32(16, i32_at(20));
            put32(40, i32_at(24)); // ssi_status
            wide[0] = (56, u64_at(32)); // ssi_utime
            wide[1] = (64, u64_at(40)); // ssi_stime
        }
        Layout::Sys => {
            wide[0] = (88, u64_at(16)); // ssi_call_addr
            put32(84, i32_at(24)); // ssi_syscall
            put32(96, i32_at(28)); // ssi_arch
        }
    }
    for (at, v) in wide {
        if at != 0 {
            out[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn siginfo(signo: i32, code: i32, words: &[(usize, u64)]) -> [u8; SIGINFO_SIZE] {
        let mut b = [0u8; SIGINFO_SIZE];
        b[0..4].copy_from_slice(&signo.to_ne_bytes());
        b[8..12].copy_from_slice(&code.to_ne_bytes());
        for &(at, v) in words {
            b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }

    fn field32(r: &[u8], at: usize) -> i32 {
        i32::from_ne_bytes(r[at..at + 4].try_into().unwrap())
    }

    fn field64(r: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(r[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn kill_and_tkill_carry_the_sender() {
        // pid 7 at 16, uid 1000 at 20.
        let info = siginfo(10, SI_USER, &[(16, 7 | (1000 << 32))]);
        let r = signalfd_siginfo(&info);
        assert_eq!((field32(&r, 0), field32(&r, 8)), (10, 0));
        assert_eq!((field32(&r, 12), field32(&r, 16)), (7, 1000));
        // SI_TKILL (-6) is Linux's "rt" layout: the value fields come along (zero).
        let info = siginfo(12, -6, &[(16, 1), (24, 0)]);
        let r = signalfd_siginfo(&info);
        assert_eq!((field32(&r, 8), field32(&r, 12)), (-6, 1));
    }

    #[test]
    fn sigqueue_and_timers_carry_their_value() {
        let info = siginfo(10, -1, &[(16, 1), (24, 42)]);
        let r = signalfd_siginfo(&info);
        assert_eq!((field32(&r, 44), field64(&r, 48)), (42, 42));
        // timer id 3, overrun 2, value 7.
        let info = siginfo(12, SI_TIMER, &[(16, 3 | (2 << 32)), (24, 7)]);
        let r = signalfd_siginfo(&info);
        assert_eq!((field32(&r, 24), field32(&r, 32)), (3, 2));
        assert_eq!((field32(&r, 44), field64(&r, 48)), (7, 7));
        assert_eq!(field32(&r, 12), 0, "no pid for a timer");
    }

    #[test]
    fn faults_and_children_use_their_layouts() {
        let info = siginfo(SIGSEGV, 1, &[(16, 0xdead)]);
        assert_eq!(field64(&signalfd_siginfo(&info), 72), 0xdead);
        // CLD_EXITED, pid 5, status 3, utime 9, stime 11.
        let info = siginfo(SIGCHLD, 1, &[(16, 5), (24, 3), (32, 9), (40, 11)]);
        let r = signalfd_siginfo(&info);
        assert_eq!((field32(&r, 12), field32(&r, 40)), (5, 3));
        assert_eq!((field64(&r, 56), field64(&r, 64)), (9, 11));
        // A kernel-sent signal (SI_KERNEL) has the kill layout.
        assert_eq!(layout(SIGSEGV, SI_KERNEL), Layout::Kill);
        assert_eq!(layout(SIGSYS, 1), Layout::Sys);
        assert_eq!(layout(SIGPOLL, 2), Layout::Poll);
    }
}
