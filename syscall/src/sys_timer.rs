//! Timers that raise signals: `alarm`, `setitimer`/`getitimer` (`ITIMER_REAL`), and
//! POSIX timers (`timer_create` with `SIGEV_SIGNAL`, `SIGEV_THREAD_ID` or `SIGEV_NONE`).
//!
//! Each armed timer is a scheduler timer whose callback runs in interrupt context: it
//! posts the signal (no allocation) and returns the next deadline of a periodic timer.
//! Deadlines are kept on the monotonic clock; an absolute `CLOCK_REALTIME` time is
//! converted when the timer is armed, so later changes of the wall clock do not move it
//! (Linux would). If the previous expiry's signal is still pending, an expiry only
//! counts an overrun, as on Linux.

use crate::args::{Args, UserPtr};
use crate::process::{self, current, Process};
use crate::signal::deliver::{send_to_process_of, send_to_thread};
use crate::signal::frame::SigInfo;
use core::sync::atomic::Ordering;
use skiff_arch::time;
use skiff_errno::{Errno, KResult};
use skiff_sched::timers::TimerId;

const NSEC: u64 = 1_000_000_000;
const SIGALRM: i32 = 14;
const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_BOOTTIME: i32 = 7;
const TIMER_ABSTIME: u32 = 1;
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;
/// Linux's per-process default limit is far higher; this bounds the table.
const MAX_TIMERS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notify {
    None,
    Process,
    Thread(u32),
}

/// One timer of a process (its table lives in [`crate::process::Process::timers`]).
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    clock: i32,
    signo: i32,
    notify: Notify,
    value: u64,
    /// Period in ns (0: one-shot).
    interval: u64,
    /// Next expiry (monotonic ns), when armed.
    deadline: Option<u64>,
    armed: Option<TimerId>,
    /// Expiries not signalled because the previous signal was still pending.
    overrun: i32,
    /// The overrun count reported with the last signal (`timer_getoverrun`).
    last_overrun: i32,
    /// `si_code` of its signals: `SI_TIMER` for POSIX timers, `SI_KERNEL` for the
    /// interval timer.
    posix: bool,
}

// In a process's timer table, slot 0 is `ITIMER_REAL` (and `alarm`); POSIX timer `n`
// lives in slot `n + 1`.
const ITIMER_SLOT: usize = 0;

/// The scheduler timer's argument: which process and which slot.
fn timer_arg(pid: u32, slot: usize) -> u64 {
    ((pid as u64) << 32) | slot as u64
}

/// Delete the POSIX timers of `p` (`execve`; `alarm` and `setitimer` survive it).
pub fn delete_posix_timers(p: &Process) {
    let mut timers = p.timers.lock();
    for t in timers.iter_mut().skip(ITIMER_SLOT + 1) {
        if let Some(id) = t.as_mut().and_then(|t| t.armed.take()) {
            skiff_sched::cancel_timer(id);
        }
        *t = None;
    }
}

/// Disarm every timer of `p` (it is ending).
pub fn cancel_all(p: &Process) {
    let mut timers = p.timers.lock();
    for t in timers.iter_mut().flatten() {
        if let Some(id) = t.armed.take() {
            skiff_sched::cancel_timer(id);
        }
    }
    timers.clear();
}

fn posix_slot(id: i32) -> KResult<usize> {
    if id < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(id as usize + 1)
}

/// Timer expiry, in interrupt context.
fn expire(sched_id: TimerId, arg: u64) -> Option<u64> {
    let p = process::by_pid((arg >> 32) as u32)?;
    let slot = arg & 0xffff_ffff;
    let mut timers = p.timers.lock();
    let t = timers.get_mut(slot as usize)?.as_mut()?;
    if t.armed != Some(sched_id) {
        return None;
    }
    let now = time::monotonic_ns();
    let mut next = None;
    if t.interval > 0 {
        let mut d = t.deadline.unwrap_or(now) + t.interval;
        if d <= now {
            // Expiries missed while the interrupt was late count as overruns.
            let missed = (now - d) / t.interval + 1;
            t.overrun = t.overrun.saturating_add(missed.min(i32::MAX as u64) as i32);
            d += missed * t.interval;
        }
        next = Some(d);
        t.deadline = Some(d);
    } else {
        t.deadline = None;
        t.armed = None;
    }
    let timer_id = slot as i32 - 1;
    let info = if t.posix {
        SigInfo::timer(t.signo, timer_id, t.overrun, t.value)
    } else {
        SigInfo::kernel(t.signo)
    };
    let already_pending = match t.notify {
        Notify::None => None,
        Notify::Process => Some(p.shared_pending_bits.load(Ordering::Acquire) & bit(t.signo) != 0),
        Notify::Thread(tid) => p.thread(tid).map(|th| {
            crate::process::task_of(&th)
                .pending_bits
                .load(Ordering::Acquire)
                & bit(t.signo)
                != 0
        }),
    };
    match already_pending {
        Some(true) if t.signo < 32 => t.overrun = t.overrun.saturating_add(1),
        Some(_) => {
            t.last_overrun = t.overrun;
            t.overrun = 0;
            let notify = t.notify;
            drop(timers);
            let _ = match notify {
                Notify::Process => send_to_process_of(&p, info),
                Notify::Thread(tid) => match p.thread(tid) {
                    Some(th) => send_to_thread(&th, info),
                    None => Ok(()),
                },
                Notify::None => Ok(()),
            };
        }
        None => {}
    }
    next
}

fn bit(sig: i32) -> u64 {
    1u64 << ((sig - 1) as u32 & 63)
}

/// Arm (or disarm, `value` 0) slot `slot` for a first expiry `value` ns from now (or at
/// monotonic `abs` when given) and a period of `interval` ns. Returns the old
/// (remaining, interval).
fn arm(slot: usize, first: Option<u64>, interval: u64) -> KResult<(u64, u64)> {
    let p = current();
    let mut timers = p.timers.lock();
    let t = timers
        .get_mut(slot)
        .and_then(|t| t.as_mut())
        .ok_or(Errno::EINVAL)?;
    let now = time::monotonic_ns();
    let old = (
        t.deadline.map_or(0, |d| d.saturating_sub(now).max(1)),
        t.interval,
    );
    if let Some(id) = t.armed.take() {
        skiff_sched::cancel_timer(id);
    }
    t.deadline = None;
    t.interval = interval;
    t.overrun = 0;
    if let Some(deadline) = first {
        t.deadline = Some(deadline);
        // Still under the table lock (interrupts masked), so the expiry cannot run
        // before the timer's id is recorded.
        t.armed = Some(skiff_sched::start_timer(
            deadline,
            expire,
            timer_arg(p.pid, slot),
        ));
    }
    Ok(old)
}

fn ensure_itimer() {
    let p = current();
    let mut timers = p.timers.lock();
    if timers.is_empty() {
        timers.push(None);
    }
    if timers[ITIMER_SLOT].is_none() {
        timers[ITIMER_SLOT] = Some(Timer {
            clock: CLOCK_REALTIME,
            signo: SIGALRM,
            notify: Notify::Process,
            value: 0,
            interval: 0,
            deadline: None,
            armed: None,
            overrun: 0,
            last_overrun: 0,
            posix: false,
        });
    }
}

fn read_timeval(p: UserPtr) -> KResult<u64> {
    let [s, us]: [i64; 2] = p.read()?;
    if s < 0 || !(0..1_000_000).contains(&us) {
        return Err(Errno::EINVAL);
    }
    Ok((s as u64)
        .saturating_mul(NSEC)
        .saturating_add(us as u64 * 1000))
}

/// An itimerval-style pair (interval, value) as `struct timeval`s.
fn timevals(interval: u64, value: u64) -> [i64; 4] {
    [
        (interval / NSEC) as i64,
        ((interval % NSEC) / 1000) as i64,
        (value / NSEC) as i64,
        ((value % NSEC) / 1000) as i64,
    ]
}

const ITIMER_REAL: i32 = 0;

pub fn setitimer(a: &Args) -> KResult<u64> {
    if a.int(0) != ITIMER_REAL {
        // ITIMER_VIRTUAL and ITIMER_PROF count CPU time, which Skiff does not account
        // per process yet.
        return Err(Errno::EINVAL);
    }
    let (interval, value) = if a.ptr(1).is_null() {
        (0, 0)
    } else {
        (read_timeval(a.ptr(1))?, read_timeval(a.ptr(1).offset(16))?)
    };
    ensure_itimer();
    let first = (value > 0).then(|| time::monotonic_ns().saturating_add(value));
    let (left, old_interval) = arm(ITIMER_SLOT, first, interval)?;
    if !a.ptr(2).is_null() {
        a.ptr(2).write(&timevals(old_interval, left))?;
    }
    Ok(0)
}

pub fn getitimer(a: &Args) -> KResult<u64> {
    if a.int(0) != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    ensure_itimer();
    let (left, interval) = remaining(ITIMER_SLOT)?;
    a.ptr(1).write(&timevals(interval, left))?;
    Ok(0)
}

fn remaining(slot: usize) -> KResult<(u64, u64)> {
    let p = current();
    let timers = p.timers.lock();
    let t = timers
        .get(slot)
        .and_then(|t| t.as_ref())
        .ok_or(Errno::EINVAL)?;
    let now = time::monotonic_ns();
    Ok((
        t.deadline.map_or(0, |d| d.saturating_sub(now).max(1)),
        t.interval,
    ))
}

pub fn alarm(a: &Args) -> KResult<u64> {
    let secs = a.u32(0) as u64;
    ensure_itimer();
    let first = (secs > 0).then(|| time::monotonic_ns().saturating_add(secs * NSEC));
    let (left, _) = arm(ITIMER_SLOT, first, 0)?;
    // Linux rounds the remaining time to the nearest second, and never reports a
    // pending alarm as 0.
    Ok(if left == 0 {
        0
    } else {
        ((left + NSEC / 2) / NSEC).max(1)
    })
}

pub fn timer_create(a: &Args) -> KResult<u64> {
    let clock = a.int(0);
    if !matches!(clock, CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME) {
        // CPU-time clocks would need per-thread CPU accounting; alarm clocks need a
        // suspend Skiff does not have.
        return Err(Errno::EINVAL);
    }
    ensure_itimer();
    let (signo, notify, value) = if a.ptr(1).is_null() {
        (SIGALRM, Notify::Process, None)
    } else {
        let mut ev = [0u8; 64];
        a.ptr(1).read_into(&mut ev)?;
        let word = |o: usize| i32::from_le_bytes(ev[o..o + 4].try_into().unwrap());
        let value = u64::from_le_bytes(ev[0..8].try_into().unwrap());
        let (signo, how) = (word(8), word(12));
        let notify = match how {
            SIGEV_NONE => Notify::None,
            SIGEV_SIGNAL => Notify::Process,
            SIGEV_THREAD_ID => {
                let tid = word(16);
                if tid <= 0 || current().thread(tid as u32).is_none() {
                    return Err(Errno::EINVAL);
                }
                Notify::Thread(tid as u32)
            }
            // SIGEV_THREAD is implemented by libc on top of SIGEV_THREAD_ID.
            _ => return Err(Errno::EINVAL),
        };
        if notify != Notify::None && !(1..=64).contains(&signo) {
            return Err(Errno::EINVAL);
        }
        (signo, notify, Some(value))
    };
    let p = current();
    let mut timers = p.timers.lock();
    let slot = match timers.iter().skip(1).position(|t| t.is_none()) {
        Some(i) => i + 1,
        None if timers.len() <= MAX_TIMERS => {
            timers.push(None);
            timers.len() - 1
        }
        None => return Err(Errno::EAGAIN),
    };
    let id = slot as i32 - 1;
    timers[slot] = Some(Timer {
        clock,
        signo,
        notify,
        // Without a sigevent, si_value carries the timer's ID.
        value: value.unwrap_or(id as u64),
        interval: 0,
        deadline: None,
        armed: None,
        overrun: 0,
        last_overrun: 0,
        posix: true,
    });
    drop(timers);
    if let Err(e) = a.ptr(2).write(&id) {
        current().timers.lock()[slot] = None;
        return Err(e);
    }
    Ok(0)
}

fn read_timespec(p: UserPtr) -> KResult<u64> {
    let [s, ns]: [i64; 2] = p.read()?;
    if s < 0 || !(0..NSEC as i64).contains(&ns) {
        return Err(Errno::EINVAL);
    }
    Ok((s as u64).saturating_mul(NSEC).saturating_add(ns as u64))
}

/// An itimerspec (interval, value).
fn timespecs(interval: u64, value: u64) -> [i64; 4] {
    [
        (interval / NSEC) as i64,
        (interval % NSEC) as i64,
        (value / NSEC) as i64,
        (value % NSEC) as i64,
    ]
}

pub fn timer_settime(a: &Args) -> KResult<u64> {
    let slot = posix_slot(a.int(0))?;
    let flags = a.flags32(1, TIMER_ABSTIME)?;
    let interval = read_timespec(a.ptr(2))?;
    let value = read_timespec(a.ptr(2).offset(16))?;
    let clock = current()
        .timers
        .lock()
        .get(slot)
        .and_then(|t| t.as_ref())
        .map(|t| t.clock)
        .ok_or(Errno::EINVAL)?;
    let now = time::monotonic_ns();
    let first = if value == 0 {
        None
    } else if flags & TIMER_ABSTIME == 0 {
        Some(now.saturating_add(value))
    } else if clock == CLOCK_REALTIME {
        let left = (value as i64).saturating_sub(time::realtime_ns()).max(0);
        Some(now.saturating_add(left as u64))
    } else {
        Some(value)
    };
    let (left, old_interval) = arm(slot, first, interval)?;
    if !a.ptr(3).is_null() {
        a.ptr(3).write(&timespecs(old_interval, left))?;
    }
    Ok(0)
}

pub fn timer_gettime(a: &Args) -> KResult<u64> {
    let (left, interval) = remaining(posix_slot(a.int(0))?)?;
    a.ptr(1).write(&timespecs(interval, left))?;
    Ok(0)
}

pub fn timer_getoverrun(a: &Args) -> KResult<u64> {
    let slot = posix_slot(a.int(0))?;
    let p = current();
    let timers = p.timers.lock();
    let t = timers
        .get(slot)
        .and_then(|t| t.as_ref())
        .ok_or(Errno::EINVAL)?;
    Ok(t.last_overrun.max(0) as u64)
}

pub fn timer_delete(a: &Args) -> KResult<u64> {
    let slot = posix_slot(a.int(0))?;
    let p = current();
    let mut timers = p.timers.lock();
    let t = timers
        .get_mut(slot)
        .and_then(|t| t.take())
        .ok_or(Errno::EINVAL)?;
    if let Some(id) = t.armed {
        skiff_sched::cancel_timer(id);
    }
    Ok(0)
}
