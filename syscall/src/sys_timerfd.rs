//! `timerfd_create`, `timerfd_settime` and `timerfd_gettime`: decode, call
//! `skiff_fs::timerfd`, encode.
//!
//! The timers themselves are the scheduler's one-shot callbacks ([`SchedulerTimers`]):
//! the callback runs in interrupt context, lets `skiff_fs::timerfd::expire` count the
//! expiry (no allocation, no reference dropped) and wakes I/O waiters, so a thread
//! blocked in `read`, `poll` or `epoll_wait` on the timerfd notices.

use crate::args::Args;
use crate::process::current;
use alloc::sync::Arc;
use skiff_arch::{cpu, time};
use skiff_errno::{Errno, KResult};
use skiff_fs::timerfd::{self, TimerFd, TimerHost, TimerSpec, TFD_CLOEXEC, TFD_NONBLOCK};

/// The kernel's clocks and the scheduler's timers, for every timerfd.
struct SchedulerTimers;

impl TimerHost for SchedulerTimers {
    fn monotonic_ns(&self) -> u64 {
        time::monotonic_ns()
    }

    fn realtime_ns(&self) -> i64 {
        time::realtime_ns()
    }

    fn arm(&self, deadline: u64, cookie: u64) -> u64 {
        skiff_sched::start_timer(deadline, fire, cookie)
    }

    fn cancel(&self, id: u64) {
        skiff_sched::cancel_timer(id);
    }
}

/// A timerfd's scheduler timer expired (interrupt context). Timerfds re-arm
/// themselves when read, so this never asks for a next period.
fn fire(_id: skiff_sched::timers::TimerId, cookie: u64) -> Option<u64> {
    if timerfd::expire(cookie) {
        crate::wait::io_event();
    }
    None
}

fn save_and_disable_interrupts() -> bool {
    let were_on = cpu::interrupts_enabled();
    cpu::disable_interrupts();
    were_on
}

fn restore_interrupts(were_on: bool) {
    if were_on {
        cpu::enable_interrupts();
    }
}

static HOST: spin::Once<Arc<dyn TimerHost>> = spin::Once::new();

/// The one host, with the timer table's interrupt masking installed before any timer
/// can be armed.
fn host() -> Arc<dyn TimerHost> {
    HOST.call_once(|| {
        timerfd::set_interrupt_hooks(save_and_disable_interrupts, restore_interrupts);
        Arc::new(SchedulerTimers)
    })
    .clone()
}

/// The wall clock was set: realtime timerfds move, `TFD_TIMER_CANCEL_ON_SET` ones are
/// cancelled.
pub fn clock_was_set() {
    if let Some(host) = HOST.get() {
        if timerfd::clock_was_set(host) {
            crate::wait::io_event();
        }
    }
}

pub fn timerfd_create(a: &Args) -> KResult<u64> {
    let flags = a.flags32(1, TFD_NONBLOCK | TFD_CLOEXEC)?;
    let file = timerfd::timerfd_create(host(), a.int(0), flags)?;
    let fd = current()
        .fs
        .fds
        .lock()
        .insert(file, flags & TFD_CLOEXEC != 0)?;
    Ok(fd as u64)
}

fn timer_of(fd: i32, f: impl FnOnce(&TimerFd) -> KResult<TimerSpec>) -> KResult<TimerSpec> {
    let file = current().fs.fds.lock().get(fd)?;
    let timer = file.device::<TimerFd>().ok_or(Errno::EINVAL)?;
    f(timer)
}

pub fn timerfd_settime(a: &Args) -> KResult<u64> {
    let flags = a.u32(1);
    let new = TimerSpec::from_timespecs(a.ptr(2).read()?)?;
    let old = timer_of(a.fd(0)?, |t| t.settime(flags, new))?;
    // A first expiry already in the past is counted at once.
    crate::wait::io_event();
    if !a.ptr(3).is_null() {
        a.ptr(3).write(&old.to_timespecs())?;
    }
    Ok(0)
}

pub fn timerfd_gettime(a: &Args) -> KResult<u64> {
    let now = timer_of(a.fd(0)?, |t| Ok(t.gettime()))?;
    a.ptr(1).write(&now.to_timespecs())?;
    Ok(0)
}
