//! `signalfd` and `signalfd4`: decode, call `skiff_fs::signalfd`, encode.
//!
//! A signalfd reads the signal queues of the thread that reads or polls it
//! ([`ThreadSignals`]); sending a signal stamps signalfds and wakes I/O waiters (see
//! [`crate::signal::deliver`]), so a thread asleep on one notices.

use crate::args::Args;
use crate::process::{current, try_current};
use crate::signal::deliver::take_pending;
use crate::thread::Task;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use skiff_errno::{Errno, KResult};
use skiff_fs::signalfd::{self, SignalFd, SignalSource, SFD_CLOEXEC, SFD_NONBLOCK, SIGINFO_SIZE};

const SIGSET_SIZE: usize = 8;

/// The pending signals of whichever thread asks.
struct ThreadSignals;

impl SignalSource for ThreadSignals {
    fn pending(&self) -> u64 {
        let thread = skiff_sched::current();
        let (Some(task), Some(process)) = (thread.data::<Task>(), try_current()) else {
            return 0;
        };
        task.pending_bits.load(Ordering::Acquire)
            | process.shared_pending_bits.load(Ordering::Acquire)
    }

    fn dequeue(&self, mask: u64) -> Option<[u8; SIGINFO_SIZE]> {
        let thread = skiff_sched::current();
        let task = thread.data::<Task>()?;
        take_pending(task, !mask).map(|info| info.to_bytes())
    }
}

pub fn signalfd(a: &Args) -> KResult<u64> {
    signalfd_common(a, 0)
}

pub fn signalfd4(a: &Args) -> KResult<u64> {
    signalfd_common(a, a.u32(3))
}

fn signalfd_common(a: &Args, flags: u32) -> KResult<u64> {
    if a.usize(2) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = a.ptr(1).read()?;
    if flags & !(SFD_NONBLOCK | SFD_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let fd = a.int(0);
    if fd == -1 {
        let file = signalfd::signalfd(Arc::new(ThreadSignals), mask, flags)?;
        let fd = current()
            .fs
            .fds
            .lock()
            .insert(file, flags & SFD_CLOEXEC != 0)?;
        return Ok(fd as u64);
    }
    let file = current().fs.fds.lock().get(a.fd(0)?)?;
    file.device::<SignalFd>()
        .ok_or(Errno::EINVAL)?
        .set_mask(mask);
    // Signals already pending may now be readable.
    crate::wait::io_event();
    Ok(fd as u64)
}
