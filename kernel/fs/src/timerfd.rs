//! `timerfd`: a timer behind a descriptor. Reading it returns how many times it has
//! expired since the last read (an 8-byte count); `poll` and epoll report it readable
//! while that count is not zero.
//!
//! This module owns the timer's state and Linux's rules for it: clocks, relative and
//! absolute (`TFD_TIMER_ABSTIME`) settings, intervals, disarming, the old value, the
//! expiration count, and `TFD_TIMER_CANCEL_ON_SET`. The kernel supplies time and
//! one-shot scheduler timers through [`TimerHost`]; its timer callback, which runs in
//! interrupt context, calls [`expire`] and then wakes I/O waiters.
//!
//! Like Linux, an expiry only counts one tick and leaves a periodic timer stopped
//! until someone looks: a read (or `timerfd_gettime`, or a new setting) adds the
//! periods that passed meanwhile and re-arms it. A short interval therefore costs no
//! interrupts while nobody reads.
//!
//! The state of every timerfd lives in one table that the interrupt-context expiry
//! also takes. That lock masks interrupts while held (through hooks the kernel
//! installs with [`set_interrupt_hooks`]; host tests have none), and the expiry only
//! updates plain fields in place: it never allocates and never drops a reference.
//!
//! Clocks: `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` are the same here (the machine never
//! suspends); the `_ALARM` variants are accepted, as Linux does for root, and behave
//! like their base clocks, since there is no suspend for them to wake from.
//! `CLOCK_REALTIME` timers fire when the wall clock reaches their time: setting the
//! clock moves them, as on Linux, and cancels those armed with
//! `TFD_TIMER_CANCEL_ON_SET` (their next read is `ECANCELED`).

use crate::device::{event_stamp, CharDevice, Generation};
use crate::epoll::EPOLLIN;
use crate::eventfd::anon_inode_stat;
use crate::file::OpenFile;
use crate::types::OpenFlags;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use skiff_errno::{Errno, KResult};

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;
pub const CLOCK_BOOTTIME: i32 = 7;
pub const CLOCK_REALTIME_ALARM: i32 = 8;
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;

/// `timerfd_create` flags.
pub const TFD_NONBLOCK: u32 = OpenFlags::O_NONBLOCK;
pub const TFD_CLOEXEC: u32 = OpenFlags::O_CLOEXEC;
/// `timerfd_settime` flags.
pub const TFD_TIMER_ABSTIME: u32 = 1;
pub const TFD_TIMER_CANCEL_ON_SET: u32 = 2;

const NSEC: u64 = 1_000_000_000;

/// What the kernel provides: clocks and one-shot timers.
pub trait TimerHost: Send + Sync {
    /// Nanoseconds on the monotonic clock.
    fn monotonic_ns(&self) -> u64;
    /// Nanoseconds since the epoch on the wall clock.
    fn realtime_ns(&self) -> i64;
    /// Arms a one-shot timer for monotonic `deadline` whose expiry calls
    /// [`expire`]`(cookie)` (and then wakes I/O waiters). Returns an id for `cancel`.
    fn arm(&self, deadline: u64, cookie: u64) -> u64;
    /// Disarms a timer from `arm` (it may already have fired).
    fn cancel(&self, id: u64);
}

/// A setting as `struct itimerspec` carries it, in nanoseconds: `value` is the first
/// expiry (relative, or absolute with `TFD_TIMER_ABSTIME`; 0 disarms) and `interval`
/// the period (0: one-shot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSpec {
    pub interval: u64,
    pub value: u64,
}

impl TimerSpec {
    /// Decodes `struct itimerspec` (interval, then value, each `struct timespec`):
    /// `EINVAL` for negative seconds or nanoseconds outside `0..1e9`.
    pub fn from_timespecs(raw: [i64; 4]) -> KResult<TimerSpec> {
        let ns = |sec: i64, nsec: i64| -> KResult<u64> {
            if sec < 0 || !(0..NSEC as i64).contains(&nsec) {
                return Err(Errno::EINVAL);
            }
            Ok((sec as u64)
                .saturating_mul(NSEC)
                .saturating_add(nsec as u64))
        };
        Ok(TimerSpec {
            interval: ns(raw[0], raw[1])?,
            value: ns(raw[2], raw[3])?,
        })
    }

    /// Encodes `struct itimerspec`.
    pub fn to_timespecs(self) -> [i64; 4] {
        [
            (self.interval / NSEC) as i64,
            (self.interval % NSEC) as i64,
            (self.value / NSEC) as i64,
            (self.value % NSEC) as i64,
        ]
    }
}

// ---- the interrupt-safe table ----

/// How the table's lock keeps interrupts out: `disable` masks them and says whether
/// they were enabled, `restore` puts that back.
#[derive(Clone, Copy)]
struct InterruptHooks {
    disable: fn() -> bool,
    restore: fn(bool),
}

static HOOKS: spin::Once<InterruptHooks> = spin::Once::new();

/// Installs the kernel's interrupt masking for the timer table. Must happen before
/// the first timer is armed; only the first call has an effect.
pub fn set_interrupt_hooks(disable: fn() -> bool, restore: fn(bool)) {
    HOOKS.call_once(|| InterruptHooks { disable, restore });
}

/// A spin lock held with interrupts masked, so that the expiry, which runs in an
/// interrupt, never finds it held by the code it interrupted.
struct IrqLock<T> {
    inner: spin::Mutex<T>,
}

struct IrqGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    restore: Option<(fn(bool), bool)>,
}

impl<T> IrqLock<T> {
    const fn new(value: T) -> IrqLock<T> {
        IrqLock {
            inner: spin::Mutex::new(value),
        }
    }

    fn lock(&self) -> IrqGuard<'_, T> {
        let restore = HOOKS.get().map(|h| (h.restore, (h.disable)()));
        IrqGuard {
            guard: Some(self.inner.lock()),
            restore,
        }
    }
}

impl<T> core::ops::Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T> core::ops::DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        self.guard = None;
        if let Some((restore, were_on)) = self.restore {
            restore(were_on);
        }
    }
}

/// One timerfd's state.
struct Timer {
    host: Arc<dyn TimerHost>,
    /// A realtime clock (`CLOCK_REALTIME` or its alarm variant).
    realtime: bool,
    /// The next expiry on the monotonic clock, while armed or expired-and-periodic.
    deadline: Option<u64>,
    /// For realtime timers: the wall-clock time of `deadline`, to move it when the
    /// clock is set.
    wall_deadline: Option<i64>,
    interval: u64,
    /// Expirations not yet read.
    ticks: u64,
    /// The scheduler timer fired and nothing has looked since (a periodic timer is
    /// stopped until then).
    expired: bool,
    /// Armed with `TFD_TIMER_CANCEL_ON_SET` on a realtime clock.
    might_cancel: bool,
    /// The wall clock was set since: the next read is `ECANCELED`.
    canceled: bool,
    /// Counts settings, so an expiry of an older one is ignored.
    setting: u32,
    /// The armed scheduler timer.
    armed: Option<u64>,
    /// Stamp of the last expiry, for edge-triggered epoll.
    stamp: u64,
}

static TIMERS: IrqLock<Vec<Option<Timer>>> = IrqLock::new(Vec::new());

fn cookie(slot: usize, setting: u32) -> u64 {
    ((slot as u64) << 32) | u64::from(setting)
}

impl Timer {
    /// Arms the scheduler timer for `deadline` under a new setting number.
    fn arm(&mut self, slot: usize, deadline: u64) {
        self.disarm();
        self.setting = self.setting.wrapping_add(1);
        self.deadline = Some(deadline);
        self.armed = Some(self.host.arm(deadline, cookie(slot, self.setting)));
    }

    /// Starts the timer towards `deadline`: a deadline already passed counts its
    /// expiry at once (so a read right after an absolute setting in the past finds
    /// it), a later one arms the scheduler timer.
    fn start(&mut self, slot: usize, deadline: u64) {
        if deadline > self.host.monotonic_ns() {
            self.arm(slot, deadline);
            return;
        }
        self.disarm();
        self.deadline = Some(deadline);
        self.ticks = self.ticks.saturating_add(1);
        self.expired = true;
        if self.interval == 0 {
            self.deadline = None;
            self.wall_deadline = None;
        }
        self.stamp = event_stamp();
    }

    fn disarm(&mut self) {
        if let Some(id) = self.armed.take() {
            self.host.cancel(id);
        }
        self.setting = self.setting.wrapping_add(1);
    }

    /// Linux's `hrtimer_forward_now` on an expired periodic timer: counts the periods
    /// that passed since it fired (the expiry counted one) and re-arms it.
    ///
    /// A periodic timer whose deadline passed while its interrupt has not run yet (late,
    /// on a busy emulated machine) counts that expiry here as the interrupt would;
    /// re-arming under a new setting makes the late interrupt a no-op.
    fn catch_up(&mut self, slot: usize) {
        if self.interval == 0 {
            return;
        }
        if !self.expired && self.armed.is_some() {
            let late = self.deadline.is_some_and(|d| d <= self.host.monotonic_ns());
            if !late {
                return;
            }
            self.ticks = self.ticks.saturating_add(1);
            self.expired = true;
            self.stamp = event_stamp();
        }
        if !self.expired {
            return;
        }
        self.expired = false;
        let Some(fired) = self.deadline else { return };
        let now = self.host.monotonic_ns();
        let periods = now.saturating_sub(fired) / self.interval + 1;
        self.ticks = self.ticks.saturating_add(periods - 1);
        let advance = periods.saturating_mul(self.interval);
        if let Some(wall) = self.wall_deadline.as_mut() {
            *wall = wall.saturating_add(advance.min(i64::MAX as u64) as i64);
        }
        self.arm(slot, fired.saturating_add(advance));
    }

    /// What is left until the next expiry, and the interval.
    fn current(&self) -> TimerSpec {
        let now = self.host.monotonic_ns();
        TimerSpec {
            interval: self.interval,
            value: self.deadline.map_or(0, |d| d.saturating_sub(now)),
        }
    }
}

/// A scheduler timer expired, in interrupt context. Returns whether a timerfd counted
/// it (the caller then wakes I/O waiters). Never allocates or drops a reference.
pub fn expire(cookie: u64) -> bool {
    let slot = (cookie >> 32) as usize;
    let setting = cookie as u32;
    let mut timers = TIMERS.lock();
    let Some(Some(t)) = timers.get_mut(slot) else {
        return false;
    };
    if t.setting != setting || t.armed.is_none() {
        return false;
    }
    t.armed = None;
    t.ticks = t.ticks.saturating_add(1);
    t.expired = true;
    if t.interval == 0 {
        t.deadline = None;
        t.wall_deadline = None;
    }
    t.stamp = event_stamp();
    true
}

/// The wall clock was set (`clock_settime`, `settimeofday`): realtime timers of
/// `host` move to the new time and those armed with `TFD_TIMER_CANCEL_ON_SET` are
/// cancelled. Returns whether any timerfd became readable.
pub fn clock_was_set(host: &Arc<dyn TimerHost>) -> bool {
    let mut timers = TIMERS.lock();
    let mut readable = false;
    for (slot, t) in timers.iter_mut().enumerate() {
        let Some(t) = t.as_mut().filter(|t| same_host(&t.host, host)) else {
            continue;
        };
        if !t.realtime {
            continue;
        }
        if t.might_cancel {
            t.canceled = true;
            t.ticks = t.ticks.saturating_add(1);
            t.stamp = event_stamp();
        }
        if let (Some(wall), true) = (t.wall_deadline, t.armed.is_some()) {
            let deadline = wall_to_monotonic(&*t.host, wall);
            t.start(slot, deadline);
        }
        readable |= t.ticks > 0;
    }
    readable
}

fn same_host(a: &Arc<dyn TimerHost>, b: &Arc<dyn TimerHost>) -> bool {
    core::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
}

/// The monotonic time at which the wall clock shows `wall` (now, if it already does).
fn wall_to_monotonic(host: &dyn TimerHost, wall: i64) -> u64 {
    let left = wall.saturating_sub(host.realtime_ns()).max(0) as u64;
    host.monotonic_ns().saturating_add(left)
}

/// A timerfd: the device behind its open file.
pub struct TimerFd {
    slot: usize,
}

/// `timerfd_create(clock, flags)`: `EINVAL` for another clock or unknown flags; the
/// caller applies `TFD_CLOEXEC` to the descriptor.
pub fn timerfd_create(host: Arc<dyn TimerHost>, clock: i32, flags: u32) -> KResult<Arc<OpenFile>> {
    if flags & !(TFD_NONBLOCK | TFD_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let realtime = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => true,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => false,
        _ => return Err(Errno::EINVAL),
    };
    let timer = Timer {
        host,
        realtime,
        deadline: None,
        wall_deadline: None,
        interval: 0,
        ticks: 0,
        expired: false,
        might_cancel: false,
        canceled: false,
        setting: 0,
        armed: None,
        stamp: 0,
    };
    let slot = {
        let mut timers = TIMERS.lock();
        match timers.iter().position(Option::is_none) {
            Some(free) => {
                timers[free] = Some(timer);
                free
            }
            None => {
                timers.push(Some(timer));
                timers.len() - 1
            }
        }
    };
    Ok(OpenFile::detached_device(
        Arc::new(TimerFd { slot }),
        OpenFlags(OpenFlags::O_RDWR | (flags & TFD_NONBLOCK)),
        anon_inode_stat(),
    ))
}

impl TimerFd {
    fn with<R>(&self, f: impl FnOnce(&mut Timer) -> R) -> R {
        let mut timers = TIMERS.lock();
        let t = timers[self.slot]
            .as_mut()
            .expect("a timerfd's slot lives as long as it does");
        f(t)
    }

    /// `timerfd_settime`: arms (or, with a zero value, disarms) the timer and returns
    /// the previous setting as `timerfd_gettime` would have reported it. Pending
    /// expirations are forgotten; a first expiry already in the past counts at once
    /// (the caller wakes I/O waiters).
    pub fn settime(&self, flags: u32, new: TimerSpec) -> KResult<TimerSpec> {
        if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
            return Err(Errno::EINVAL);
        }
        let slot = self.slot;
        self.with(|t| {
            t.catch_up(slot);
            let old = t.current();
            t.disarm();
            t.ticks = 0;
            t.expired = false;
            t.canceled = false;
            t.interval = new.interval;
            t.deadline = None;
            t.wall_deadline = None;
            let absolute = flags & TFD_TIMER_ABSTIME != 0;
            t.might_cancel = t.realtime && absolute && flags & TFD_TIMER_CANCEL_ON_SET != 0;
            if new.value != 0 {
                let now = t.host.monotonic_ns();
                let deadline = if !t.realtime {
                    if absolute {
                        new.value
                    } else {
                        now.saturating_add(new.value)
                    }
                } else {
                    let wall = if absolute {
                        new.value.min(i64::MAX as u64) as i64
                    } else {
                        t.host
                            .realtime_ns()
                            .saturating_add(new.value.min(i64::MAX as u64) as i64)
                    };
                    t.wall_deadline = Some(wall);
                    wall_to_monotonic(&*t.host, wall)
                };
                t.start(slot, deadline);
            }
            Ok(old)
        })
    }

    /// `timerfd_gettime`: time to the next expiry (0 when disarmed) and the interval.
    pub fn gettime(&self) -> TimerSpec {
        let slot = self.slot;
        self.with(|t| {
            t.catch_up(slot);
            t.current()
        })
    }
}

impl Drop for TimerFd {
    fn drop(&mut self) {
        let timer = {
            let mut timers = TIMERS.lock();
            let mut timer = timers[self.slot].take();
            if let Some(t) = timer.as_mut() {
                t.disarm();
            }
            timer
        };
        // The host reference goes outside the lock.
        drop(timer);
    }
}

impl CharDevice for TimerFd {
    /// The expirations since the last read, as a native-endian `u64`; `EAGAIN` when
    /// none, `EINVAL` for a buffer under 8 bytes, `ECANCELED` once after the wall
    /// clock was set under a `TFD_TIMER_CANCEL_ON_SET` timer.
    fn read(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let slot = self.slot;
        let ticks = self.with(|t| {
            if t.canceled {
                // Linux does not re-arm a periodic timer that fired before the clock
                // change: the program re-arms it after ECANCELED.
                t.canceled = false;
                t.ticks = 0;
                if t.expired && t.interval != 0 {
                    t.deadline = None;
                    t.wall_deadline = None;
                }
                t.expired = false;
                return Err(Errno::ECANCELED);
            }
            if t.ticks == 0 {
                return Err(Errno::EAGAIN);
            }
            t.catch_up(slot);
            Ok(core::mem::take(&mut t.ticks))
        })?;
        buf[..8].copy_from_slice(&ticks.to_ne_bytes());
        Ok(8)
    }

    fn write(&self, _buf: &[u8]) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn read_ready(&self) -> bool {
        self.with(|t| t.ticks > 0)
    }

    fn write_ready(&self) -> bool {
        false
    }

    /// Linux's `timerfd_poll`: `EPOLLIN` alone, while expirations are unread.
    fn poll_mask(&self) -> u32 {
        if self.read_ready() {
            EPOLLIN
        } else {
            0
        }
    }

    fn generation(&self) -> Generation {
        Generation {
            input: self.with(|t| t.stamp),
            output: 0,
            hangup: 0,
        }
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn link_name(&self) -> Option<Vec<u8>> {
        Some(b"anon_inode:[timerfd]".to_vec())
    }
}
