//! Clocks and sleeping.
//!
//! Sleeps park the thread in the scheduler until the deadline (other threads run; with
//! none runnable the CPU halts, so an idle guest burns no host CPU). A signal with a
//! handler cuts a sleep short with `EINTR`, as on Linux.

use crate::args::Args;
use skiff_arch::time;
use skiff_errno::{Errno, KResult};

const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u32 = 2;
const CLOCK_THREAD_CPUTIME_ID: u32 = 3;
const CLOCK_MONOTONIC_RAW: u32 = 4;
const CLOCK_REALTIME_COARSE: u32 = 5;
const CLOCK_MONOTONIC_COARSE: u32 = 6;
const CLOCK_BOOTTIME: u32 = 7;
const CLOCK_REALTIME_ALARM: u32 = 8;
const CLOCK_BOOTTIME_ALARM: u32 = 9;
const CLOCK_TAI: u32 = 11;
const TIMER_ABSTIME: u32 = 1;
const NSEC: i64 = 1_000_000_000;
/// Resolution Linux reports for the coarse clocks (one 250 Hz jiffy).
const COARSE_RES_NS: i64 = 4_000_000;

/// Nanoseconds since the application started, used as its CPU time: the one CPU runs
/// only this program, and time spent halted is counted too (documented approximation).
fn cpu_time_ns() -> i64 {
    time::monotonic_ns() as i64
}

/// The reading of clock `id` in nanoseconds.
fn read_clock(id: i32) -> KResult<i64> {
    if id < 0 {
        // CPU-time clocks of processes and threads named by pid (encoded negative
        // ids, as clock_getcpuclockid makes them) are not supported yet.
        return Err(Errno::EINVAL);
    }
    Ok(match id as u32 {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM => time::realtime_ns(),
        CLOCK_TAI => time::realtime_ns() + 37 * NSEC,
        CLOCK_MONOTONIC
        | CLOCK_MONOTONIC_RAW
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_BOOTTIME
        | CLOCK_BOOTTIME_ALARM => time::monotonic_ns() as i64,
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => cpu_time_ns(),
        _ => return Err(Errno::EINVAL),
    })
}

fn write_timespec(p: crate::args::UserPtr, ns: i64) -> KResult<()> {
    let ts: [i64; 2] = [ns.div_euclid(NSEC), ns.rem_euclid(NSEC)];
    p.write(&ts)
}

fn read_timespec(p: crate::args::UserPtr) -> KResult<i64> {
    let ts: [i64; 2] = p.read()?;
    if ts[0] < 0 || !(0..NSEC).contains(&ts[1]) {
        return Err(Errno::EINVAL);
    }
    Ok(ts[0].saturating_mul(NSEC).saturating_add(ts[1]))
}

pub fn clock_gettime(a: &Args) -> KResult<u64> {
    let ns = read_clock(a.int(0))?;
    write_timespec(a.ptr(1), ns)?;
    Ok(0)
}

pub fn clock_getres(a: &Args) -> KResult<u64> {
    read_clock(a.int(0))?;
    let res = match a.u32(0) {
        CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE => COARSE_RES_NS,
        _ => 1,
    };
    if !a.ptr(1).is_null() {
        write_timespec(a.ptr(1), res)?;
    }
    Ok(0)
}

pub fn gettimeofday(a: &Args) -> KResult<u64> {
    let ns = time::realtime_ns();
    if !a.ptr(0).is_null() {
        let tv: [i64; 2] = [ns.div_euclid(NSEC), ns.rem_euclid(NSEC) / 1000];
        a.ptr(0).write(&tv)?;
    }
    if !a.ptr(1).is_null() {
        // struct timezone: minutes west and DST type; the guest runs in UTC.
        a.ptr(1).write(&0u64)?;
    }
    Ok(0)
}

pub fn time(a: &Args) -> KResult<u64> {
    let secs = time::realtime_ns().div_euclid(NSEC);
    if !a.ptr(0).is_null() {
        a.ptr(0).write(&secs)?;
    }
    Ok(secs as u64)
}

pub fn settimeofday(a: &Args) -> KResult<u64> {
    if a.ptr(0).is_null() {
        return Ok(0);
    }
    let tv: [i64; 2] = a.ptr(0).read()?;
    if tv[0] < 0 || !(0..1_000_000).contains(&tv[1]) {
        return Err(Errno::EINVAL);
    }
    time::set_realtime_now(tv[0] * NSEC + tv[1] * 1000, true);
    crate::sys_timerfd::clock_was_set();
    Ok(0)
}

pub fn clock_settime(a: &Args) -> KResult<u64> {
    let ns = read_timespec(a.ptr(1))?;
    match a.u32(0) {
        CLOCK_REALTIME => {
            time::set_realtime_now(ns, true);
            crate::sys_timerfd::clock_was_set();
            Ok(0)
        }
        // Monotonic and CPU-time clocks cannot be set, on Linux either.
        _ => Err(Errno::EINVAL),
    }
}

/// Sleep until `deadline` (monotonic ns). Interrupted by a signal: `EINTR`, with the
/// time left written to `rem` when given (relative sleeps only, as on Linux).
fn sleep(deadline: u64, rem: Option<crate::args::UserPtr>) -> KResult<u64> {
    if skiff_sched::sleep_until(deadline, true) {
        return Ok(0);
    }
    if let Some(rem) = rem.filter(|r| !r.is_null()) {
        let left = deadline.saturating_sub(time::monotonic_ns());
        write_timespec(rem, left as i64)?;
    }
    Err(Errno::EINTR)
}

pub fn nanosleep(a: &Args) -> KResult<u64> {
    let ns = read_timespec(a.ptr(0))?;
    sleep(
        time::monotonic_ns().saturating_add(ns as u64),
        Some(a.ptr(1)),
    )
}

pub fn clock_nanosleep(a: &Args) -> KResult<u64> {
    let clock = a.u32(0);
    let flags = a.flags32(1, TIMER_ABSTIME)?;
    let ns = read_timespec(a.ptr(2))?;
    let deadline = match clock {
        CLOCK_REALTIME | CLOCK_TAI => {
            let rel = if flags & TIMER_ABSTIME != 0 {
                let off = if clock == CLOCK_TAI { 37 * NSEC } else { 0 };
                (ns - time::realtime_ns() - off).max(0)
            } else {
                ns
            };
            time::monotonic_ns().saturating_add(rel as u64)
        }
        CLOCK_MONOTONIC | CLOCK_BOOTTIME => {
            if flags & TIMER_ABSTIME != 0 {
                ns as u64
            } else {
                time::monotonic_ns().saturating_add(ns as u64)
            }
        }
        CLOCK_THREAD_CPUTIME_ID => return Err(Errno::EINVAL),
        CLOCK_PROCESS_CPUTIME_ID
        | CLOCK_MONOTONIC_RAW
        | CLOCK_REALTIME_COARSE
        | CLOCK_MONOTONIC_COARSE => return Err(Errno::EOPNOTSUPP),
        _ => return Err(Errno::EINVAL),
    };
    let rem = (flags & TIMER_ABSTIME == 0).then(|| a.ptr(3));
    sleep(deadline, rem)
}
