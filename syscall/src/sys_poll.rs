//! `poll`, `ppoll`, `select` and `pselect6` over the readiness the files report.
//!
//! Regular files, directories and memory devices are always ready (as on Linux); the
//! console's input is ready when input is buffered or at end of file; pipes when data
//! or space is there. A caller with nothing ready parks until an I/O event, a signal or
//! its timeout (see [`crate::wait`]). `ppoll` and `pselect6` wait with the signal mask
//! they are given, restored once a handler it let through has run.

use crate::args::{Args, UserPtr};
use crate::process::current;
use alloc::vec::Vec;
use skiff_arch::time;
use skiff_errno::{Errno, KResult};

const POLLIN: u16 = 0x001;
const POLLPRI: u16 = 0x002;
const POLLOUT: u16 = 0x004;
const POLLERR: u16 = 0x008;
const POLLHUP: u16 = 0x010;
const POLLNVAL: u16 = 0x020;
const POLLRDNORM: u16 = 0x040;
const POLLRDBAND: u16 = 0x080;
const POLLWRNORM: u16 = 0x100;
const POLLWRBAND: u16 = 0x200;
const NSEC: i64 = 1_000_000_000;

/// What `select` counts as readable, writable and exceptional (Linux's `POLLIN_SET`,
/// `POLLOUT_SET`, `POLLEX_SET`): a hangup or an error makes a descriptor readable, an
/// error makes it writable, so a caller wakes up to see the failure.
const SELECT_READ: u16 = POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR;
const SELECT_WRITE: u16 = POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR;
const SELECT_EXCEPT: u16 = POLLPRI;

/// What one descriptor reports to `poll`: the file's readiness mask restricted to
/// `events`, plus `POLLERR` and `POLLHUP`, which are reported whether asked for or not
/// (as Linux does); `POLLNVAL` for a descriptor that is not open.
fn revents(fd: i32, events: u16) -> u16 {
    if fd < 0 {
        return 0;
    }
    let file = match current().fs.fds.lock().get(fd) {
        Ok(f) => f,
        Err(_) => return POLLNVAL,
    };
    // The `EPOLL*` bits of the mask are the `POLL*` bits; the high ones (EPOLLRDHUP)
    // fit in 16 bits too.
    let mask = file.poll_mask() as u16;
    mask & (events | POLLERR | POLLHUP)
}

/// Repeat `scan` until it reports something or the deadline (monotonic ns; `None` =
/// forever) passes. A signal ends the wait with `EINTR` (after its handler runs; the
/// call is restarted if no handler runs, as Linux does).
fn wait_until(deadline: Option<u64>, mut scan: impl FnMut() -> KResult<usize>) -> KResult<usize> {
    let mut result = Ok(0);
    let mut scan_once = || match scan() {
        Ok(0) => false,
        other => {
            result = other;
            true
        }
    };
    crate::wait::wait_io(deadline, Errno::ERESTARTNOHAND, &mut scan_once)?;
    result
}

fn poll_common(fds_ptr: UserPtr, nfds: usize, deadline: Option<u64>) -> KResult<u64> {
    let limit = current().rlimits.lock()[7].0 as usize;
    if nfds > limit.max(1024) {
        return Err(Errno::EINVAL);
    }
    let mut entries: Vec<(i32, u16, u16)> = Vec::with_capacity(nfds);
    for i in 0..nfds {
        let raw: u64 = fds_ptr.offset(i as u64 * 8).read()?;
        entries.push((raw as u32 as i32, (raw >> 32) as u16, 0));
    }
    let n = wait_until(deadline, || {
        let mut ready = 0;
        for e in entries.iter_mut() {
            e.2 = revents(e.0, e.1);
            if e.2 != 0 {
                ready += 1;
            }
        }
        Ok(ready)
    })?;
    for (i, e) in entries.iter().enumerate() {
        fds_ptr.offset(i as u64 * 8 + 6).write(&e.2)?;
    }
    Ok(n as u64)
}

fn deadline_after_ns(ns: i64) -> Option<u64> {
    Some(time::monotonic_ns().saturating_add(ns.max(0) as u64))
}

pub fn poll(a: &Args) -> KResult<u64> {
    let timeout_ms = a.int(2);
    let deadline = if timeout_ms < 0 {
        None
    } else {
        deadline_after_ns(timeout_ms as i64 * 1_000_000)
    };
    poll_common(a.ptr(0), a.usize(1), deadline)
}

fn read_timespec(p: UserPtr) -> KResult<Option<i64>> {
    if p.is_null() {
        return Ok(None);
    }
    let ts: [i64; 2] = p.read()?;
    if ts[0] < 0 || !(0..NSEC).contains(&ts[1]) {
        return Err(Errno::EINVAL);
    }
    Ok(Some(ts[0].saturating_mul(NSEC).saturating_add(ts[1])))
}

/// Linux writes the time left back into `select`'s `timeval` and the `timespec` of
/// `pselect6` and `ppoll` when the call returns, however it returns (musl and glibc
/// hide this from `pselect` and `ppoll` callers, but raw `select` users see it). A
/// pointer that cannot be written to is ignored, as Linux does.
fn write_time_left(ptr: UserPtr, deadline: Option<u64>, micros: bool) {
    let Some(deadline) = deadline else { return };
    if ptr.is_null() {
        return;
    }
    let left = deadline.saturating_sub(time::monotonic_ns()) as i64;
    let sub = if micros {
        (left % NSEC) / 1000
    } else {
        left % NSEC
    };
    let _ = ptr.write(&[left / NSEC, sub]);
}

pub fn ppoll(a: &Args) -> KResult<u64> {
    if !a.ptr(3).is_null() && a.usize(4) != 8 {
        return Err(Errno::EINVAL);
    }
    let deadline = read_timespec(a.ptr(2))?.and_then(deadline_after_ns);
    let mask = if a.ptr(3).is_null() {
        None
    } else {
        Some(a.ptr(3).read::<u64>()?)
    };
    let r = crate::sys_signal::with_mask(mask, || poll_common(a.ptr(0), a.usize(1), deadline));
    write_time_left(a.ptr(2), deadline, false);
    r
}

fn select_common(a: &Args, deadline: Option<u64>) -> KResult<u64> {
    let nfds = a.int(0);
    if nfds < 0 {
        return Err(Errno::EINVAL);
    }
    let nfds = (nfds as usize).min(current().rlimits.lock()[7].0 as usize);
    let words = nfds.div_ceil(64);
    let read_set = |p: UserPtr| -> KResult<Vec<u64>> {
        if p.is_null() {
            return Ok(alloc::vec![0; words]);
        }
        (0..words)
            .map(|i| p.offset(i as u64 * 8).read::<u64>())
            .collect()
    };
    let (rin, win, ein) = (
        read_set(a.ptr(1))?,
        read_set(a.ptr(2))?,
        read_set(a.ptr(3))?,
    );
    let mut rout = alloc::vec![0u64; words];
    let mut wout = alloc::vec![0u64; words];
    let mut eout = alloc::vec![0u64; words];
    let n = wait_until(deadline, || {
        let mut count = 0;
        for fd in 0..nfds {
            let (w, bit) = (fd / 64, 1u64 << (fd % 64));
            let wants_r = rin[w] & bit != 0;
            let wants_w = win[w] & bit != 0;
            if !wants_r && !wants_w && ein[w] & bit == 0 {
                continue;
            }
            let wants_e = ein[w] & bit != 0;
            let ev = revents(fd as i32, SELECT_READ | SELECT_WRITE | SELECT_EXCEPT);
            if ev & POLLNVAL != 0 {
                return Err(Errno::EBADF);
            }
            rout[w] &= !bit;
            wout[w] &= !bit;
            eout[w] &= !bit;
            if wants_r && ev & SELECT_READ != 0 {
                rout[w] |= bit;
                count += 1;
            }
            if wants_w && ev & SELECT_WRITE != 0 {
                wout[w] |= bit;
                count += 1;
            }
            if wants_e && ev & SELECT_EXCEPT != 0 {
                eout[w] |= bit;
                count += 1;
            }
        }
        Ok(count)
    })?;
    for (p, set) in [(a.ptr(1), &rout), (a.ptr(2), &wout), (a.ptr(3), &eout)] {
        if !p.is_null() {
            for (i, v) in set.iter().enumerate() {
                p.offset(i as u64 * 8).write(v)?;
            }
        }
    }
    Ok(n as u64)
}

pub fn select(a: &Args) -> KResult<u64> {
    let deadline = if a.ptr(4).is_null() {
        None
    } else {
        let tv: [i64; 2] = a.ptr(4).read()?;
        if tv[0] < 0 || !(0..1_000_000).contains(&tv[1]) {
            return Err(Errno::EINVAL);
        }
        deadline_after_ns(tv[0].saturating_mul(NSEC).saturating_add(tv[1] * 1000))
    };
    let r = select_common(a, deadline);
    write_time_left(a.ptr(4), deadline, true);
    r
}

pub fn pselect6(a: &Args) -> KResult<u64> {
    let deadline = read_timespec(a.ptr(4))?.and_then(deadline_after_ns);
    // The sixth argument points at { const sigset_t *ss; size_t ss_len; }.
    let mask = if a.ptr(5).is_null() {
        None
    } else {
        let [set, len]: [u64; 2] = a.ptr(5).read()?;
        if set == 0 {
            None
        } else if len != 8 {
            return Err(Errno::EINVAL);
        } else {
            Some(UserPtr(set).read::<u64>()?)
        }
    };
    let r = crate::sys_signal::with_mask(mask, || select_common(a, deadline));
    write_time_left(a.ptr(4), deadline, false);
    r
}
