//! Skiff's scheduler: kernel threads that run application code, kernel threads that
//! run only kernel code (the network poll loop), one run queue with fair round-robin
//! time slices, preemption on the timer interrupt, blocking and waking, timed sleeps,
//! timer callbacks, and the idle loop that halts the CPU.
//!
//! **Model.** Every application thread is a [`Thread`] with its own kernel stack
//! ([`skiff_arch::context::Context`]). A thread runs until it blocks ([`wait`]), yields
//! ([`yield_now`]), exits ([`exit_current`]) or its slice ends while application code
//! runs ([`on_timer_interrupt`]). Kernel code is not preempted at arbitrary points (it
//! may hold spin locks); a slice that ends in the kernel sets a flag that
//! [`preempt_point`] honours at the next return to the application.
//!
//! **Kernel threads** ([`spawn_kernel`]) never run application code, so the timer
//! never preempts them: they block through [`Waiter`]/[`WaitQueue`] and call
//! [`preempt_point`] between units of work. The scheduler counts them like any thread
//! (room in the run queue and the timer list); whether the *application* is still
//! alive is the syscall layer's business (its thread table), where kernel threads do
//! not appear, so a kernel thread that never exits does not keep the machine running.
//!
//! **Waking.** A [`Waiter`] is one blocking episode of one thread. Wakers call
//! [`Waiter::wake`]; the first wake wins, so a wake-up can never be lost between
//! checking a condition and going to sleep, and a waiter woken and interrupted at once
//! reports the wake (as Linux's futexes do). [`WaitQueue`] is a list of waiters for
//! event sources that wake everyone.
//!
//! **Interrupt context.** Waking, interrupting and timer expiry run from interrupt
//! handlers, where the heap lock may be held by the interrupted code. They never
//! allocate: the run queue and the timer list reserve room for every thread and timer
//! when those are created, in thread context.
//!
//! **SMP.** State sits behind interrupt-masking spin locks and a thread records whether
//! a CPU still runs on its stack (`on_cpu`), so the structure holds for several CPUs;
//! only CPU 0 runs today, so there is one run queue and one current thread.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod irq;
pub mod timers;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use irq::IrqMutex;
use skiff_arch::context::{Context, SwitchPlan};
use skiff_arch::{cpu, lapic, time, TrapFrame};
use timers::{TimerId, TimerList};

/// Length of a time slice. Linux's CFS targets a few milliseconds; under emulation a
/// longer slice keeps switching overhead small while staying well under what
/// interactive programs notice.
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// Shortest timer interval worth programming (shorter deadlines fire at once).
const MIN_TIMER_NS: u64 = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum RunState {
    Running = 0,
    Runnable = 1,
    Blocked = 2,
    Dead = 3,
}

/// Why a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// [`Waiter::wake`] was called.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// A signal arrived for the thread (interruptible waits only).
    Interrupted,
}

const REASON_NONE: u8 = 0;
const REASON_TIMEOUT: u8 = 1;
const REASON_INTERRUPT: u8 = 2;

/// A schedulable thread.
pub struct Thread {
    tid: u32,
    context: Context,
    state: AtomicU8,
    /// Why a blocked thread was made runnable (other than by its waiter).
    reason: AtomicU8,
    interruptible: AtomicBool,
    /// A CPU is still running on this thread's stack (SMP: do not resume it elsewhere).
    on_cpu: AtomicBool,
    /// Runs kernel code only ([`spawn_kernel`]).
    kernel: bool,
    /// The page-table root of the thread's process (0 for kernel threads, which run
    /// on whichever root is loaded: the kernel half is the same in all).
    page_root: u64,
    /// The syscall layer's per-thread state.
    data: Box<dyn Any + Send + Sync>,
}

impl Thread {
    pub fn tid(&self) -> u32 {
        self.tid
    }

    /// Whether this is a kernel thread ([`spawn_kernel`]), which never runs
    /// application code and has no syscall-layer state.
    pub fn is_kernel(&self) -> bool {
        self.kernel
    }

    /// The per-thread state the thread was created with.
    pub fn data<T: 'static>(&self) -> Option<&T> {
        self.data.downcast_ref()
    }

    fn state(&self) -> RunState {
        match self.state.load(Ordering::Acquire) {
            0 => RunState::Running,
            1 => RunState::Runnable,
            2 => RunState::Blocked,
            _ => RunState::Dead,
        }
    }

    fn set_state(&self, s: RunState) {
        self.state.store(s as u8, Ordering::Release);
    }
}

/// What an expiring timer does.
enum TimerAction {
    /// End the timed wait of this thread.
    Wake(Arc<Thread>),
    /// Call `f(arg)` in interrupt context; it returns the next deadline of a periodic
    /// timer (which re-arms with the same id), or `None`.
    Call(TimerCallback, u64),
}

/// A timer callback: `f(timer id, argument)`, returning a periodic timer's next deadline.
pub type TimerCallback = fn(TimerId, u64) -> Option<u64>;

struct Scheduler {
    current: Arc<Thread>,
    idle: Arc<Thread>,
    run_queue: VecDeque<Arc<Thread>>,
    timers: TimerList<TimerAction>,
    /// When the current thread's slice ends.
    slice_end: u64,
    /// The thread switched away from, until the next thread finishes the switch.
    prev: Option<Arc<Thread>>,
    /// Live threads other than the idle thread, kernel threads included. Sizes the
    /// reservations that keep waking allocation-free; it does not decide when the
    /// application has ended.
    live: usize,
}

static SCHED: IrqMutex<Option<Scheduler>> = IrqMutex::new(None);

/// A slice ended while kernel code ran; switch at the next preemption point. Outside
/// the lock, so the check on every system call's return costs one load.
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// Checks whether a thread has a signal it should be interrupted for (installed by the
/// syscall layer, which owns signals).
static SIGNAL_CHECK: spin::Once<fn(&Thread) -> bool> = spin::Once::new();

/// Loads a process's page-table root (installed by the kernel from `skiff-mm`, which
/// owns page tables).
static ACTIVATE_ROOT: spin::Once<fn(u64)> = spin::Once::new();

/// Install the function that loads a page-table root on a switch between processes.
/// Once, at boot, before the first application thread exists.
pub fn set_root_switch(activate: fn(u64)) {
    ACTIVATE_ROOT.call_once(|| activate);
}

fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    let mut g = SCHED.lock();
    f(g.as_mut().expect("scheduler not initialised"))
}

/// Make the running boot code the idle thread. Once, at boot, before interrupts matter.
pub fn init(boot_stack_lo: u64, boot_stack_top: u64, signal_check: fn(&Thread) -> bool) {
    SIGNAL_CHECK.call_once(|| signal_check);
    let idle = Arc::new(Thread {
        tid: 0,
        context: Context::boot(boot_stack_lo, boot_stack_top),
        state: AtomicU8::new(RunState::Running as u8),
        reason: AtomicU8::new(REASON_NONE),
        interruptible: AtomicBool::new(false),
        on_cpu: AtomicBool::new(true),
        kernel: true,
        page_root: 0,
        data: Box::new(()),
    });
    *SCHED.lock() = Some(Scheduler {
        current: idle.clone(),
        idle,
        run_queue: VecDeque::new(),
        timers: TimerList::new(),
        slice_end: 0,
        prev: None,
        live: 0,
    });
}

/// Out of memory for a new thread.
#[derive(Debug)]
pub struct NoMemory;

/// Where a new application thread starts: its registers, vector state, FS base and
/// the page-table root of its process.
pub struct UserStart<'a> {
    pub frame: &'a TrapFrame,
    pub fpu: &'a [u8],
    pub fs_base: u64,
    pub page_root: u64,
}

/// Create a runnable thread that enters application code as `start` says.
pub fn spawn(
    tid: u32,
    start: UserStart<'_>,
    data: Box<dyn Any + Send + Sync>,
) -> Result<Arc<Thread>, NoMemory> {
    let context = Context::new_user(start.frame, start.fpu, start.fs_base).ok_or(NoMemory)?;
    Ok(add_runnable(tid, context, start.page_root, data))
}

/// Thread ids of kernel threads start here: above every id the syscall layer hands out
/// (Linux's `FUTEX_TID_MASK` bounds those to 30 bits), so they never collide.
pub const KERNEL_TID_BASE: u32 = 0x4000_0000;

static NEXT_KERNEL_TID: core::sync::atomic::AtomicU32 =
    core::sync::atomic::AtomicU32::new(KERNEL_TID_BASE);

/// Create a runnable kernel thread that calls `entry(arg)` with interrupts enabled.
///
/// It runs kernel code only and is never preempted by the timer (it may hold spin
/// locks at any point), so `entry` must block only through [`Waiter`] or
/// [`WaitQueue`] (never spin on a device) and call [`preempt_point`] between units of
/// work so that application threads get the CPU when its slice ends. It may end with
/// [`exit_current`]. It does not count as an application thread: the application's
/// exit does not wait for it.
pub fn spawn_kernel(entry: fn(u64) -> !, arg: u64) -> Result<Arc<Thread>, NoMemory> {
    let context = Context::new_kernel(entry, arg).ok_or(NoMemory)?;
    let tid = NEXT_KERNEL_TID.fetch_add(1, Ordering::Relaxed);
    Ok(add_runnable(tid, context, 0, Box::new(())))
}

/// `page_root` 0 makes a kernel thread.
fn add_runnable(
    tid: u32,
    context: Context,
    page_root: u64,
    data: Box<dyn Any + Send + Sync>,
) -> Arc<Thread> {
    let thread = Arc::new(Thread {
        tid,
        context,
        state: AtomicU8::new(RunState::Runnable as u8),
        reason: AtomicU8::new(REASON_NONE),
        interruptible: AtomicBool::new(false),
        on_cpu: AtomicBool::new(false),
        kernel: page_root == 0,
        page_root,
        data,
    });
    with(|s| {
        // Room for every thread in the run queue and one timed wait per thread on top
        // of the armed timers, so that waking and timer expiry never allocate.
        s.live += 1;
        s.run_queue.reserve(s.live + 1);
        s.timers.reserve(s.live + 1);
        s.run_queue.push_back(thread.clone());
        rearm(s);
    });
    thread
}

/// The thread running on this CPU (the idle thread before the first switch).
pub fn current() -> Arc<Thread> {
    with(|s| s.current.clone())
}

/// Program the local APIC timer for the next event: the earliest timer, and the end of
/// the slice when another thread is waiting for the CPU. No event: no interrupt, so an
/// idle guest really idles.
fn rearm(s: &mut Scheduler) {
    let mut next = s.timers.earliest();
    if !s.run_queue.is_empty() && !Arc::ptr_eq(&s.current, &s.idle) {
        next = Some(next.map_or(s.slice_end, |n| n.min(s.slice_end)));
    }
    match next {
        Some(deadline) => {
            let now = time::monotonic_ns();
            lapic::arm_oneshot_ns(deadline.saturating_sub(now).max(MIN_TIMER_NS));
        }
        None => lapic::stop_timer(),
    }
}

/// Give the CPU to the next runnable thread; the current thread's state says what
/// becomes of it (running: back in the queue; blocked or dead: not). Takes the lock
/// guard, returns with it released and interrupts restored.
fn switch_away(mut guard: irq::IrqGuard<'_, Option<Scheduler>>) {
    let s = guard.as_mut().expect("scheduler not initialised");
    let cur = s.current.clone();
    let is_idle = Arc::ptr_eq(&cur, &s.idle);
    if cur.state() == RunState::Running && !is_idle {
        cur.set_state(RunState::Runnable);
        s.run_queue.push_back(cur.clone());
    }
    let next = s.run_queue.pop_front().unwrap_or_else(|| s.idle.clone());
    if Arc::ptr_eq(&next, &cur) {
        cur.set_state(RunState::Running);
        s.slice_end = time::monotonic_ns() + TIME_SLICE_NS;
        rearm(s);
        return;
    }
    if !cur.context.stack_intact() {
        panic!("kernel stack overflow in thread {}", cur.tid);
    }
    // SMP: the thread may still be leaving another CPU.
    while next.on_cpu.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    next.set_state(RunState::Running);
    next.on_cpu.store(true, Ordering::Release);
    NEED_RESCHED.store(false, Ordering::Relaxed);
    s.slice_end = time::monotonic_ns() + TIME_SLICE_NS;
    if next.page_root != 0 {
        if let Some(activate) = ACTIVATE_ROOT.get() {
            activate(next.page_root);
        }
    }
    let plan = SwitchPlan::new(&cur.context, &next.context);
    // `prev` and `current` keep both contexts alive across the switch; the local
    // handles must go now, since a dead thread never returns to drop them.
    s.prev = Some(cur);
    s.current = next;
    rearm(s);
    let irqs_were_on = guard.unlock_irqs_off();
    plan.execute();
    finish_switch();
    if irqs_were_on {
        cpu::enable_interrupts();
    }
}

/// The second half of a switch, run by the thread switched to: the previous thread's
/// stack is free now (and a dead thread's memory can go).
pub fn finish_switch() {
    let prev = with(|s| s.prev.take());
    if let Some(p) = &prev {
        p.on_cpu.store(false, Ordering::Release);
    }
    drop(prev);
}

/// Let other runnable threads run (`sched_yield`).
pub fn yield_now() {
    let guard = SCHED.lock();
    if guard.as_ref().is_some_and(|s| s.run_queue.is_empty()) {
        return;
    }
    switch_away(guard);
}

/// Switch if the current slice ran out while the kernel was busy. Call where the
/// thread holds no locks: on the way back to the application, and between units of
/// work in a kernel thread.
pub fn preempt_point() {
    if NEED_RESCHED.swap(false, Ordering::Relaxed) {
        yield_now();
    }
}

/// One blocking episode of the current thread.
pub struct Waiter {
    thread: Arc<Thread>,
    woken: AtomicBool,
}

impl Waiter {
    /// A waiter for the current thread.
    pub fn new() -> Arc<Waiter> {
        Arc::new(Waiter {
            thread: current(),
            woken: AtomicBool::new(false),
        })
    }

    /// End the wait; `false` if it was already woken. Safe in interrupt context.
    pub fn wake(&self) -> bool {
        if self.woken.swap(true, Ordering::AcqRel) {
            return false;
        }
        make_runnable(&self.thread, REASON_NONE);
        true
    }

    pub fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    pub fn thread(&self) -> &Arc<Thread> {
        &self.thread
    }
}

/// Move a blocked thread to the run queue (no-op otherwise). Never allocates.
fn make_runnable(thread: &Arc<Thread>, reason: u8) -> bool {
    let mut guard = SCHED.lock();
    let Some(s) = guard.as_mut() else {
        return false;
    };
    if thread.state() != RunState::Blocked {
        return false;
    }
    thread.reason.store(reason, Ordering::Relaxed);
    thread.set_state(RunState::Runnable);
    debug_assert!(s.run_queue.len() < s.run_queue.capacity());
    s.run_queue.push_back(thread.clone());
    rearm(s);
    true
}

/// A signal arrived for `thread`: end its interruptible wait, if it is in one.
pub fn interrupt(thread: &Arc<Thread>) {
    if thread.interruptible.load(Ordering::Acquire) {
        make_runnable(thread, REASON_INTERRUPT);
    }
}

/// Block the current thread until `waiter` is woken, `deadline` (monotonic ns) passes,
/// or, if `interruptible`, a signal arrives for it.
pub fn wait(waiter: &Waiter, deadline: Option<u64>, interruptible: bool) -> WakeReason {
    let mut guard = SCHED.lock();
    let s = guard.as_mut().expect("scheduler not initialised");
    let cur = s.current.clone();
    assert!(
        Arc::ptr_eq(&cur, &waiter.thread),
        "waiting on another thread's waiter"
    );
    if waiter.is_woken() {
        return WakeReason::Woken;
    }
    if interruptible && SIGNAL_CHECK.get().is_some_and(|check| check(&cur)) {
        return WakeReason::Interrupted;
    }
    let mut timer = None;
    if let Some(d) = deadline {
        if d <= time::monotonic_ns() {
            return WakeReason::TimedOut;
        }
        timer = s.timers.add(d, TimerAction::Wake(cur.clone()));
        assert!(timer.is_some(), "no timer room reserved for a thread");
    }
    cur.reason.store(REASON_NONE, Ordering::Relaxed);
    cur.interruptible.store(interruptible, Ordering::Release);
    cur.set_state(RunState::Blocked);
    drop(cur);
    switch_away(guard);
    let me = waiter.thread();
    me.interruptible.store(false, Ordering::Release);
    if let Some(id) = timer {
        with(|s| s.timers.cancel(id));
    }
    if waiter.is_woken() {
        return WakeReason::Woken;
    }
    match me.reason.load(Ordering::Relaxed) {
        REASON_TIMEOUT => WakeReason::TimedOut,
        REASON_INTERRUPT => WakeReason::Interrupted,
        // Made runnable without a reason can only be a wake that raced ahead of us.
        _ => WakeReason::Woken,
    }
}

/// Sleep until `deadline` (monotonic ns); `false` if a signal cut the sleep short.
pub fn sleep_until(deadline: u64, interruptible: bool) -> bool {
    let w = Waiter::new();
    loop {
        match wait(&w, Some(deadline), interruptible) {
            WakeReason::TimedOut => return true,
            WakeReason::Interrupted => return false,
            // Nobody else holds this waiter; a stray wake just means sleep on.
            WakeReason::Woken => {
                if time::monotonic_ns() >= deadline {
                    return true;
                }
                w.woken.store(false, Ordering::Release);
            }
        }
    }
}

/// End the current thread. Its memory is released once another thread runs.
pub fn exit_current() -> ! {
    let mut guard = SCHED.lock();
    let s = guard.as_mut().expect("scheduler not initialised");
    let cur = s.current.clone();
    assert!(!Arc::ptr_eq(&cur, &s.idle), "the idle thread cannot exit");
    cur.set_state(RunState::Dead);
    s.live -= 1;
    s.timers
        .cancel_where(|a| matches!(a, TimerAction::Wake(t) if Arc::ptr_eq(t, &cur)));
    drop(cur);
    switch_away(guard);
    unreachable!("a dead thread was scheduled again");
}

/// Arm a timer that calls `f(id, arg)` in interrupt context at `deadline` (monotonic
/// ns). `f` must not allocate or block; it returns the next deadline to re-arm a
/// periodic timer. Returns the timer's id for [`cancel_timer`].
pub fn start_timer(deadline: u64, f: TimerCallback, arg: u64) -> TimerId {
    with(|s| {
        // Keep a slot for every thread's timed wait besides the callbacks.
        s.timers.reserve(s.live + 1);
        let id = s
            .timers
            .add(deadline, TimerAction::Call(f, arg))
            .expect("room was just reserved");
        rearm(s);
        id
    })
}

/// Disarm a timer from [`start_timer`]; `true` if it was still armed.
pub fn cancel_timer(id: TimerId) -> bool {
    with(|s| s.timers.cancel(id).is_some())
}

/// The timer interrupt (after EOI): expire timers, end the slice. `from_app`: the
/// interrupted code was the application's, so switching right here is safe.
pub fn on_timer_interrupt(from_app: bool) {
    // Callbacks run without the lock (they wake threads and post signals); collect a
    // bounded batch, since nothing here may allocate.
    let mut calls: [Option<(TimerId, TimerCallback, u64)>; 16] = [None; 16];
    let preempt = {
        let mut guard = SCHED.lock();
        let Some(s) = guard.as_mut() else { return };
        let now = time::monotonic_ns();
        let mut n = 0;
        while n < calls.len() {
            let Some(t) = s.timers.pop_expired(now) else {
                break;
            };
            match t.action {
                TimerAction::Wake(thread) => {
                    if thread.state() == RunState::Blocked {
                        thread.reason.store(REASON_TIMEOUT, Ordering::Relaxed);
                        thread.set_state(RunState::Runnable);
                        s.run_queue.push_back(thread);
                    }
                }
                TimerAction::Call(f, arg) => {
                    calls[n] = Some((t.id, f, arg));
                    n += 1;
                }
            }
        }
        let idle = Arc::ptr_eq(&s.current, &s.idle);
        let expired = !idle && now >= s.slice_end && !s.run_queue.is_empty();
        if expired && !from_app {
            NEED_RESCHED.store(true, Ordering::Relaxed);
        }
        rearm(s);
        expired && from_app
    };
    for (id, f, arg) in calls.into_iter().flatten() {
        if let Some(next) = f(id, arg) {
            with(|s| {
                // The slot this timer just left is still reserved.
                let _ = s.timers.add_with_id(id, next, TimerAction::Call(f, arg));
                rearm(s);
            });
        }
    }
    if preempt {
        yield_now();
    }
}

/// The idle thread's loop: run whatever is runnable, otherwise halt until an interrupt.
pub fn run_idle() -> ! {
    loop {
        let guard = SCHED.lock();
        let s = guard.as_ref().expect("scheduler not initialised");
        if !s.run_queue.is_empty() {
            switch_away(guard);
            continue;
        }
        // Interrupts stay masked from the check to the halt; `sti; hlt` then cannot
        // miss the wake-up interrupt.
        guard.unlock_irqs_off();
        cpu::enable_interrupts_and_halt();
    }
}

/// A list of waiters woken together: the wait primitive for event sources (console
/// input, pipes, readiness) that do not track individual waiters.
pub struct WaitQueue {
    waiters: IrqMutex<Vec<Arc<Waiter>>>,
}

impl WaitQueue {
    pub const fn new() -> WaitQueue {
        WaitQueue {
            waiters: IrqMutex::new(Vec::new()),
        }
    }

    /// Wake every waiter. Safe in interrupt context (it only drains).
    pub fn wake_all(&self) {
        let mut list = self.waiters.lock();
        for w in list.drain(..) {
            w.wake();
        }
    }

    /// Wait until `ready()` holds, the deadline passes (`Err(TimedOut)`) or, when
    /// `interruptible`, a signal arrives (`Err(Interrupted)`). `ready` is checked after
    /// registering, so an event between the check and the sleep is not lost.
    pub fn wait_until(
        &self,
        deadline: Option<u64>,
        interruptible: bool,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), WakeReason> {
        loop {
            if ready() {
                return Ok(());
            }
            let w = Waiter::new();
            self.waiters.lock().push(w.clone());
            if ready() {
                self.remove(&w);
                return Ok(());
            }
            let reason = wait(&w, deadline, interruptible);
            self.remove(&w);
            match reason {
                WakeReason::Woken => continue,
                other => {
                    // The condition may have come true at the same moment.
                    if ready() {
                        return Ok(());
                    }
                    return Err(other);
                }
            }
        }
    }

    fn remove(&self, w: &Arc<Waiter>) {
        self.waiters.lock().retain(|x| !Arc::ptr_eq(x, w));
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}
