//! Sending signals to the process or one thread, and delivering them on the way back to
//! the application: default actions, handlers (with Linux's signal frame), restarting
//! interrupted system calls, and `rt_sigreturn`.
//!
//! Delivery happens in the receiving thread itself, at its return to application code:
//! after each system call and after each interrupt or exception taken in application
//! code. A thread blocked in the kernel is interrupted ([`skiff_sched::interrupt`]) so it
//! gets there. Sending may happen in interrupt context (timers), so it never allocates
//! and takes only interrupt-safe locks.

use super::frame::{self, AltStack, FpuFormat, SigInfo};
use super::state::{default_action, next_deliverable, sig_bit, DefaultAction, UNBLOCKABLE};
use crate::process::{current, current_thread, task_of, Process, SigAction};
use crate::thread::Task;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use skiff_arch::TrapFrame;
use skiff_errno::{Errno, KResult};
use skiff_mm::usercopy;
use skiff_sched::Thread;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

pub const SIGBUS: usize = 7;
pub const SIGSEGV: usize = 11;

/// Whether `sig` would be discarded on arrival (Linux's `sig_handler_ignored`): its
/// handler is `SIG_IGN`, or `SIG_DFL` with a default action of ignoring it.
pub fn ignored(sig: usize, act: &SigAction) -> bool {
    act.handler == SIG_IGN
        || (act.handler == SIG_DFL
            && matches!(
                default_action(sig),
                DefaultAction::Ignore | DefaultAction::Continue
            ))
}

/// The vector-state format, as the signal frame code describes it.
pub fn fpu_format() -> FpuFormat {
    skiff_arch::fpu::format()
}

/// The scheduler's question: should `thread`'s interruptible wait end for a signal?
/// Lock-free (the scheduler asks with its own lock held).
pub fn interrupt_pending(thread: &Thread) -> bool {
    let Some(task) = thread.data::<Task>() else {
        return false;
    };
    if task.process.must_leave(task.tid) {
        return true;
    }
    let shared = task.process.shared_pending_bits.load(Ordering::Acquire);
    (task.pending_bits.load(Ordering::Acquire) | shared) & !task.blocked() != 0
}

/// Send a signal to one thread (`tkill`, `tgkill`, faults, `SIGEV_THREAD_ID` timers).
/// `EAGAIN` when the real-time queue is full.
pub fn send_to_thread(thread: &Arc<Thread>, info: SigInfo) -> KResult<()> {
    let sig = info.signo as usize;
    let task = task_of(thread);
    let bit = sig_bit(sig);
    if task.blocked() & bit == 0 && ignored(sig, &task.process.sigaction(sig)) {
        return Ok(());
    }
    {
        let mut pending = task.pending.lock();
        if !pending.post(info) {
            return Err(Errno::EAGAIN);
        }
        task.pending_bits.store(pending.set(), Ordering::Release);
    }
    if task.blocked() & bit == 0 {
        skiff_sched::interrupt(thread);
    }
    posted();
    Ok(())
}

/// A signal is pending: a thread that blocks it may be waiting for it on a signalfd
/// (in `read`, `poll` or `epoll_wait`), which no interruption reaches. Safe in
/// interrupt context.
fn posted() {
    skiff_fs::signalfd::signal_posted();
    crate::wait::io_event();
}

/// Send a signal to the calling process (`raise`-like paths).
pub fn send_to_process(info: SigInfo) -> KResult<()> {
    send_to_process_of(&current(), info)
}

/// Send a signal to process `p` (`kill`, `alarm`, `SIGEV_SIGNAL` timers, `SIGCHLD`):
/// any thread that does not block it takes it — the current one if it can. Safe in
/// interrupt context. A process that has ended takes no more signals.
pub fn send_to_process_of(p: &Process, info: SigInfo) -> KResult<()> {
    if p.exit_status().is_some() {
        return Ok(());
    }
    let sig = info.signo as usize;
    let bit = sig_bit(sig);
    let threads = p.threads.lock();
    let taker = {
        let me = skiff_sched::current();
        if threads.contains_key(&me.tid()) && task_of(&me).blocked() & bit == 0 {
            Some(me)
        } else {
            threads
                .values()
                .find(|t| task_of(t).blocked() & bit == 0)
                .cloned()
        }
    };
    if taker.is_some() && ignored(sig, &p.sigaction(sig)) {
        return Ok(());
    }
    {
        let mut pending = p.shared_pending.lock();
        if !pending.post(info) {
            return Err(Errno::EAGAIN);
        }
        p.shared_pending_bits
            .store(pending.set(), Ordering::Release);
    }
    drop(threads);
    if let Some(t) = taker {
        skiff_sched::interrupt(&t);
    }
    posted();
    Ok(())
}

/// Drop pending instances of `sig` everywhere (its disposition became "ignore").
pub fn discard_pending(sig: usize) {
    let p = current();
    {
        let mut pending = p.shared_pending.lock();
        pending.discard(sig);
        p.shared_pending_bits
            .store(pending.set(), Ordering::Release);
    }
    for t in p.threads.lock().values() {
        let task = task_of(t);
        let mut pending = task.pending.lock();
        pending.discard(sig);
        task.pending_bits.store(pending.set(), Ordering::Release);
    }
}

/// Take one pending signal of the current thread that `blocked` does not block.
pub fn take_pending(task: &Task, blocked: u64) -> Option<SigInfo> {
    let p = current();
    let mut mine = task.pending.lock();
    let mut shared = p.shared_pending.lock();
    let info = next_deliverable(&mut mine, &mut shared, blocked);
    task.pending_bits.store(mine.set(), Ordering::Release);
    p.shared_pending_bits.store(shared.set(), Ordering::Release);
    info
}

/// A synchronous fault in application code (`SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`,
/// `SIGTRAP`): queue it for the thread's handler, delivered as the trap returns; without
/// a usable handler (none, ignored, or blocked — Linux forces the default then) the
/// program ends with `report` on stderr.
pub fn force_fault(frame: &TrapFrame, info: SigInfo, report: core::fmt::Arguments<'_>) {
    let sig = info.signo as usize;
    let thread = current_thread();
    if let Some(task) = thread.data::<Task>() {
        let act = current().sigaction(sig);
        let handled = act.handler != SIG_DFL && act.handler != SIG_IGN;
        if handled && task.blocked() & sig_bit(sig) == 0 {
            let mut pending = task.pending.lock();
            if pending.post(info) {
                task.pending_bits.store(pending.set(), Ordering::Release);
                return;
            }
        }
    }
    crate::fault::terminate(Some(frame), sig as u8, report)
}

/// Deliver pending signals before returning to the application. `syscall` is the number
/// of the system call that is returning, if one is (its result may ask for a restart).
/// Returns whether the frame changed beyond `rax`.
pub fn deliver(frame: &mut TrapFrame, fpu: &mut [u8], syscall: Option<u64>) -> bool {
    let thread = skiff_sched::current();
    let Some(task) = thread.data::<Task>() else {
        return false;
    };
    let p = current();
    if p.exit_status().is_some() && !p.is_init() {
        // Another thread ended the process.
        crate::lifecycle::leave_process(p);
    }
    let survivor = p.exec_survivor();
    if survivor != 0 && survivor != thread.tid() {
        // Another thread is replacing the program (`execve`).
        drop(thread);
        crate::lifecycle::leave_process(p);
    }
    loop {
        let blocked = task.blocked();
        let shared = p.shared_pending_bits.load(Ordering::Acquire);
        if (task.pending_bits.load(Ordering::Acquire) | shared) & !blocked == 0 {
            break;
        }
        let Some(info) = take_pending(task, blocked) else {
            break;
        };
        let sig = info.signo as usize;
        let act = p.sigaction(sig);
        if act.handler == SIG_IGN {
            continue;
        }
        if act.handler == SIG_DFL {
            match default_action(sig) {
                DefaultAction::Ignore | DefaultAction::Continue => continue,
                DefaultAction::Stop => {
                    // No job control: nothing could ever continue a stopped program.
                    skiff_console::warn!(
                        "{} would stop the program; Skiff has no job control, so it is ignored",
                        crate::fault::signal_name(sig as u8)
                    );
                    continue;
                }
                DefaultAction::Terminate | DefaultAction::CoreDump => {
                    crate::fault::terminate(None, sig as u8, format_args!("{}", describe(&info)));
                }
            }
        }
        restart_or_eintr(frame, syscall, Some(&act));
        if let Err(e) = setup_handler(frame, fpu, task, &act, &info) {
            crate::fault::terminate(
                Some(frame),
                SIGSEGV as u8,
                format_args!(
                    "cannot deliver {} to its handler: the signal stack at {:#x} is not writable ({})",
                    crate::fault::signal_name(sig as u8),
                    frame.rsp,
                    e
                ),
            );
        }
        return true;
    }
    // No handler ran: an interrupted call restarts transparently, and a temporary mask
    // (sigsuspend, ppoll) ends.
    let restarted = restart_or_eintr(frame, syscall, None);
    if let Some(m) = task.saved_mask.lock().take() {
        task.blocked.store(m, Ordering::Relaxed);
    }
    restarted
}

/// How a signal came about, for the report when its default action ends the program
/// (the report names the signal itself).
fn describe(info: &SigInfo) -> &'static str {
    use super::frame::{SI_KERNEL, SI_QUEUE, SI_TIMER, SI_TKILL, SI_USER};
    match info.code {
        SI_USER => "sent by the program with kill",
        SI_TKILL => "sent by the program to one of its threads",
        SI_QUEUE => "queued by the program",
        SI_TIMER => "from a timer",
        SI_KERNEL => "raised by the kernel",
        _ => "sent to the program",
    }
}

/// Resolve a system call that a signal interrupted: restart it (re-execute the
/// `syscall` instruction with its original number) or make it fail with `EINTR`.
/// Returns whether the frame was rewound.
fn restart_or_eintr(
    frame: &mut TrapFrame,
    syscall: Option<u64>,
    handler: Option<&SigAction>,
) -> bool {
    let Some(nr) = syscall else { return false };
    let result = frame.rax as i64;
    let restart = if result == Errno::ERESTARTSYS.as_syscall_return() {
        handler.is_none_or(|a| a.flags & SA_RESTART != 0)
    } else if result == Errno::ERESTARTNOHAND.as_syscall_return() {
        handler.is_none()
    } else {
        return false;
    };
    if restart {
        frame.rax = nr;
        // `syscall` is two bytes long; the saved rip points after it.
        frame.rip -= 2;
        true
    } else {
        frame.rax = Errno::EINTR.as_syscall_return() as u64;
        false
    }
}

/// Build the signal frame on the application's stack and point the registers at the
/// handler.
fn setup_handler(
    frame: &mut TrapFrame,
    fpu: &mut [u8],
    task: &Task,
    act: &SigAction,
    info: &SigInfo,
) -> KResult<()> {
    let sig = info.signo as usize;
    if act.flags & SA_RESTORER == 0 {
        // x86_64 Linux has no default trampoline: every libc passes one.
        return Err(Errno::EFAULT);
    }
    let alt = *task.altstack.lock();
    let stack_top = frame::signal_stack_top(frame.rsp, &alt, act.flags & SA_ONSTACK != 0);
    let restore_mask = task.saved_mask.lock().take().unwrap_or(task.blocked());
    let fmt = fpu_format();
    let cr2 = if matches!(sig, SIGSEGV | SIGBUS) {
        info.addr()
    } else {
        0
    };
    let sf = frame::build(
        frame,
        fpu,
        &fmt,
        info,
        restore_mask,
        &alt,
        stack_top,
        act.restorer,
        cr2,
    )?;
    usercopy::copy_to_user(sf.base, &sf.bytes)?;
    if alt.is_enabled() && alt.flags & frame::SS_AUTODISARM != 0 {
        *task.altstack.lock() = AltStack::disabled();
    }
    let mut blocked = restore_mask | act.mask;
    if act.flags & SA_NODEFER == 0 {
        blocked |= sig_bit(sig);
    }
    task.blocked
        .store(blocked & !UNBLOCKABLE, Ordering::Relaxed);
    if act.flags & SA_RESETHAND != 0 {
        let p = current();
        let mut acts = p.sigactions.lock();
        acts[sig - 1].handler = SIG_DFL;
    }
    sf.enter_handler(frame, act.handler);
    frame::init_fpu(&fmt, fpu);
    Ok(())
}

/// `rt_sigreturn`: restore what the signal frame at the stack pointer saved. A corrupt
/// frame ends the program with `SIGSEGV`, as on Linux.
pub fn sigreturn(frame: &mut TrapFrame, fpu: &mut [u8]) {
    if let Err(e) = restore_frame(frame, fpu) {
        crate::fault::terminate(
            Some(frame),
            SIGSEGV as u8,
            format_args!(
                "rt_sigreturn found no valid signal frame at {:#x} ({})",
                frame.rsp.wrapping_sub(8),
                e
            ),
        );
    }
}

fn restore_frame(frame: &mut TrapFrame, fpu: &mut [u8]) -> KResult<()> {
    let base = frame::sigreturn_frame_addr(frame.rsp)?;
    let mut bytes = alloc::vec![0u8; frame::RT_SIGFRAME_SIZE];
    usercopy::copy_from_user(&mut bytes, base)?;
    let restored = frame::parse_sigcontext(&bytes)?;
    let fmt = fpu_format();
    if restored.fpstate_addr == 0 {
        frame::init_fpu(&fmt, fpu);
    } else {
        let mut first = [0u8; 512];
        usercopy::copy_from_user(&mut first, restored.fpstate_addr)?;
        let len = frame::fpstate_len(&first, &fmt);
        let mut image = alloc::vec![0u8; len];
        usercopy::copy_from_user(&mut image, restored.fpstate_addr)?;
        frame::restore_fpu(&image, &fmt, fpu)?;
    }
    let thread = current_thread();
    let task = task_of(&thread);
    task.blocked
        .store(restored.blocked & !UNBLOCKABLE, Ordering::Relaxed);
    // Linux restores the alternate stack as sigaltstack would, ignoring failures.
    let _ = crate::sys_signal::set_altstack(task, &restored.altstack);
    restored.apply(frame);
    Ok(())
}
