//! `epoll_create`, `epoll_create1`, `epoll_ctl`, `epoll_wait`, `epoll_pwait`,
//! `epoll_pwait2`, `eventfd` and `eventfd2`: decode, call `skiff_fs::epoll` /
//! `skiff_fs::eventfd`, encode.
//!
//! An `epoll_wait` with nothing to report parks on the I/O wait queue (see
//! [`crate::wait`]) and scans again on every I/O event, until the scan reports
//! something, the timeout passes or a signal arrives. A signal whose handler runs
//! ends the wait with `EINTR`, whatever its `SA_RESTART` says, as on Linux.

use crate::args::{Args, UserPtr};
use crate::process::current;
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_arch::time;
use skiff_errno::{Errno, KResult};
use skiff_fs::epoll::{EpollEvent, EPOLL_CLOEXEC, EPOLL_CTL_DEL, MAX_EVENTS};
use skiff_fs::eventfd::EFD_CLOEXEC;
use skiff_fs::{Epoll, OpenFile};

const NSEC: i64 = 1_000_000_000;
const SIGSET_SIZE: usize = 8;

fn install(file: Arc<OpenFile>, cloexec: bool) -> KResult<u64> {
    let fd = current().fs.fds.lock().insert(file, cloexec)?;
    Ok(fd as u64)
}

pub fn epoll_create(a: &Args) -> KResult<u64> {
    // The size hint is unused since Linux 2.6.8 but must still be positive.
    if a.int(0) <= 0 {
        return Err(Errno::EINVAL);
    }
    install(Epoll::new_file(), false)
}

pub fn epoll_create1(a: &Args) -> KResult<u64> {
    let flags = a.flags32(0, EPOLL_CLOEXEC)?;
    install(Epoll::new_file(), flags != 0)
}

pub fn epoll_ctl(a: &Args) -> KResult<u64> {
    let op = a.int(1);
    let event = if op == EPOLL_CTL_DEL {
        None
    } else {
        let raw: [u8; EpollEvent::SIZE] = a.ptr(3).read()?;
        Some(EpollEvent::from_bytes(&raw))
    };
    let (epfile, fd, target) = {
        let p = current();
        let fds = p.fs.fds.lock();
        let fd = a.fd(2)?;
        (fds.get(a.fd(0)?)?, fd, fds.get(fd)?)
    };
    Epoll::ctl(&epfile, op, fd, &target, event)?;
    // A waiter in epoll_wait on this instance may have something to report now.
    crate::wait::io_event();
    Ok(0)
}

/// The common part of the `epoll_wait` family: `deadline` is monotonic ns, `None` to
/// wait for ever.
fn wait_events(a: &Args, deadline: Option<u64>) -> KResult<u64> {
    let max = a.int(2);
    if max <= 0 || max as usize > MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    let max = max as usize;
    let out = a.ptr(1);
    out.check(max * EpollEvent::SIZE)?;
    let file = current().fs.fds.lock().get(a.fd(0)?)?;
    let ep = file.device::<Epoll>().ok_or(Errno::EINVAL)?;
    let mut events = Vec::new();
    crate::wait::wait_io(deadline, Errno::ERESTARTNOHAND, || {
        events = ep.collect(max);
        !events.is_empty()
    })?;
    write_events(out, &events)?;
    Ok(events.len() as u64)
}

fn write_events(out: UserPtr, events: &[(u32, u64)]) -> KResult<()> {
    let mut bytes = Vec::with_capacity(events.len() * EpollEvent::SIZE);
    for &(events, data) in events {
        bytes.extend_from_slice(&EpollEvent { events, data }.to_bytes());
    }
    out.write_bytes(&bytes)
}

fn deadline_after_ms(ms: i32) -> Option<u64> {
    // Negative: no timeout.
    u64::try_from(ms)
        .ok()
        .map(|ms| time::monotonic_ns().saturating_add(ms * 1_000_000))
}

/// The signal mask of `epoll_pwait`/`epoll_pwait2` (arguments 4 and 5): none when the
/// pointer is null, `EINVAL` unless the size is that of the kernel's `sigset_t`.
fn sigmask(a: &Args) -> KResult<Option<u64>> {
    if a.ptr(4).is_null() {
        return Ok(None);
    }
    if a.usize(5) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    Ok(Some(a.ptr(4).read()?))
}

pub fn epoll_wait(a: &Args) -> KResult<u64> {
    wait_events(a, deadline_after_ms(a.int(3)))
}

pub fn epoll_pwait(a: &Args) -> KResult<u64> {
    let mask = sigmask(a)?;
    let deadline = deadline_after_ms(a.int(3));
    crate::sys_signal::with_mask(mask, || wait_events(a, deadline))
}

pub fn epoll_pwait2(a: &Args) -> KResult<u64> {
    let deadline = if a.ptr(3).is_null() {
        None
    } else {
        let [sec, nsec]: [i64; 2] = a.ptr(3).read()?;
        if sec < 0 || !(0..NSEC).contains(&nsec) {
            return Err(Errno::EINVAL);
        }
        let ns = sec.saturating_mul(NSEC).saturating_add(nsec) as u64;
        Some(time::monotonic_ns().saturating_add(ns))
    };
    let mask = sigmask(a)?;
    crate::sys_signal::with_mask(mask, || wait_events(a, deadline))
}

pub fn eventfd(a: &Args) -> KResult<u64> {
    install(skiff_fs::eventfd(a.u32(0), 0)?, false)
}

pub fn eventfd2(a: &Args) -> KResult<u64> {
    let flags = a.u32(1);
    let file = skiff_fs::eventfd(a.u32(0), flags)?;
    install(file, flags & EFD_CLOEXEC != 0)
}
