//! Signal system calls: dispositions, masks, sending, waiting for signals, alternate
//! stacks and returning from handlers. Delivery itself lives in
//! [`crate::signal::deliver`].

use crate::args::Args;
use crate::process::{self, current, current_thread, task_of, Process, SigAction};
use crate::signal::deliver::{self, ignored, send_to_process_of, send_to_thread};
use crate::signal::frame::{
    AltStack, SigInfo, SI_TKILL, SI_USER, SS_AUTODISARM, SS_DISABLE, SS_ONSTACK,
};
use crate::signal::state::UNBLOCKABLE;
use crate::thread::Task;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use skiff_arch::time;
use skiff_errno::{Errno, KResult};
use skiff_sched::{Waiter, WakeReason};

const SIGKILL: usize = 9;
const SIGSTOP: usize = 19;
const SIGSET_SIZE: usize = 8;
pub const SIGPIPE: usize = 13;
/// Smallest alternate signal stack Linux accepts (`MINSIGSTKSZ`).
pub const MINSIGSTKSZ: u64 = 2048;

fn sig_index(sig: i32) -> KResult<usize> {
    if (1..=64).contains(&sig) {
        Ok(sig as usize)
    } else {
        Err(Errno::EINVAL)
    }
}

pub fn rt_sigaction(a: &Args) -> KResult<u64> {
    let sig = sig_index(a.int(0))?;
    if a.usize(3) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let new = if a.ptr(1).is_null() {
        None
    } else {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let raw: [u64; 4] = a.ptr(1).read()?;
        Some(SigAction {
            handler: raw[0],
            flags: raw[1],
            restorer: raw[2],
            mask: raw[3] & !UNBLOCKABLE,
        })
    };
    let old = {
        let p = current();
        let mut acts = p.sigactions.lock();
        let old = acts[sig - 1];
        if let Some(n) = new {
            acts[sig - 1] = n;
        }
        old
    };
    if let Some(n) = new {
        // POSIX: setting a pending signal to be ignored discards it.
        if ignored(sig, &n) {
            deliver::discard_pending(sig);
        }
    }
    if !a.ptr(2).is_null() {
        a.ptr(2)
            .write(&[old.handler, old.flags, old.restorer, old.mask])?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(a: &Args) -> KResult<u64> {
    const SIG_BLOCK: i32 = 0;
    const SIG_UNBLOCK: i32 = 1;
    const SIG_SETMASK: i32 = 2;
    if a.usize(3) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let thread = current_thread();
    let task = task_of(&thread);
    let old = task.blocked();
    if !a.ptr(1).is_null() {
        let set: u64 = a.ptr(1).read()?;
        let new = match a.int(0) {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        } & !UNBLOCKABLE;
        task.blocked.store(new, Ordering::Relaxed);
        // Newly unblocked pending signals are delivered as this call returns.
    }
    if !a.ptr(2).is_null() {
        a.ptr(2).write(&old)?;
    }
    Ok(0)
}

pub fn rt_sigpending(a: &Args) -> KResult<u64> {
    if a.usize(1) > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let thread = current_thread();
    let task = task_of(&thread);
    let pending = task.pending_bits.load(Ordering::Acquire)
        | current().shared_pending_bits.load(Ordering::Acquire);
    a.ptr(0).write(&(pending & task.blocked()))?;
    Ok(0)
}

/// Block until a signal handler runs (or a signal ends the program), with `mask` as
/// the signal mask meanwhile.
fn suspend_with(mask: Option<u64>) -> KResult<u64> {
    let thread = current_thread();
    let task = task_of(&thread);
    if let Some(mask) = mask {
        *task.saved_mask.lock() = Some(task.blocked());
        task.blocked.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
    }
    let w = Waiter::new();
    loop {
        if skiff_sched::wait(&w, None, true) == WakeReason::Interrupted {
            return Err(Errno::ERESTARTNOHAND);
        }
    }
}

/// Run a waiting call with a temporary signal mask (`ppoll`, `pselect6`). If a signal
/// interrupts it, the original mask is restored only after the handler has run (the
/// signal frame saves it), so the signal the mask let through is delivered.
pub fn with_mask<T>(mask: Option<u64>, f: impl FnOnce() -> KResult<T>) -> KResult<T> {
    let Some(mask) = mask else { return f() };
    let thread = current_thread();
    let task = task_of(&thread);
    let old = task.blocked();
    *task.saved_mask.lock() = Some(old);
    task.blocked.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
    let r = f();
    if !matches!(&r, Err(e) if e.is_restart()) {
        task.saved_mask.lock().take();
        task.blocked.store(old, Ordering::Relaxed);
    }
    r
}

pub fn rt_sigsuspend(a: &Args) -> KResult<u64> {
    if a.usize(1) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = a.ptr(0).read()?;
    suspend_with(Some(mask))
}

pub fn pause(_a: &Args) -> KResult<u64> {
    suspend_with(None)
}

const NSEC: i64 = 1_000_000_000;

pub fn rt_sigtimedwait(a: &Args) -> KResult<u64> {
    if a.usize(3) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let set: u64 = a.ptr(0).read::<u64>()? & !UNBLOCKABLE;
    let deadline = if a.ptr(2).is_null() {
        None
    } else {
        let [s, ns]: [i64; 2] = a.ptr(2).read()?;
        if s < 0 || !(0..NSEC).contains(&ns) {
            return Err(Errno::EINVAL);
        }
        Some(time::monotonic_ns().saturating_add(s.saturating_mul(NSEC).saturating_add(ns) as u64))
    };
    let thread = current_thread();
    let task = task_of(&thread);
    let w = Waiter::new();
    loop {
        if let Some(info) = deliver::take_pending(task, !set) {
            if !a.ptr(1).is_null() {
                a.ptr(1).write_bytes(&info.to_bytes())?;
            }
            return Ok(info.signo as u64);
        }
        // Wait with the awaited signals unblocked, so their arrival interrupts us.
        let old = task.blocked();
        task.blocked.store(old & !set, Ordering::Relaxed);
        let reason = skiff_sched::wait(&w, deadline, true);
        task.blocked.store(old, Ordering::Relaxed);
        match reason {
            WakeReason::TimedOut => {
                if let Some(info) = deliver::take_pending(task, !set) {
                    if !a.ptr(1).is_null() {
                        a.ptr(1).write_bytes(&info.to_bytes())?;
                    }
                    return Ok(info.signo as u64);
                }
                return Err(Errno::EAGAIN);
            }
            WakeReason::Interrupted => {
                let pending = task.pending_bits.load(Ordering::Acquire)
                    | current().shared_pending_bits.load(Ordering::Acquire);
                if pending & set == 0 {
                    // Another signal, with a handler: it runs, this call fails.
                    return Err(Errno::ERESTARTNOHAND);
                }
            }
            WakeReason::Woken => {}
        }
    }
}

fn check_sig(sig: i32) -> KResult<Option<usize>> {
    if sig == 0 {
        Ok(None)
    } else {
        sig_index(sig).map(Some)
    }
}

/// `kill(pid, sig)`: one process (`pid > 0`), the caller's group (0), every process
/// but init and the caller (-1), or group `-pid`. Sending to a zombie succeeds and
/// does nothing, as on Linux.
pub fn kill(a: &Args) -> KResult<u64> {
    let pid = a.int(0);
    let sig = check_sig(a.int(1))?;
    let me = current();
    let targets: Vec<Arc<Process>> = match pid {
        p if p > 0 => process::by_pid(p as u32).into_iter().collect(),
        0 => in_group(me.pgid()),
        -1 => process::all()
            .into_iter()
            .filter(|p| !p.is_init() && p.pid != me.pid)
            .collect(),
        i32::MIN => Vec::new(),
        p => in_group(p.unsigned_abs()),
    };
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    if let Some(sig) = sig {
        for target in &targets {
            send_to_process_of(target, SigInfo::user(sig as i32, SI_USER, me.pid as i32, 0))?;
        }
    }
    Ok(0)
}

fn in_group(pgid: u32) -> Vec<Arc<Process>> {
    process::all()
        .into_iter()
        .filter(|p| p.pgid() == pgid)
        .collect()
}

fn thread_by_tid(tid: i32) -> KResult<Arc<skiff_sched::Thread>> {
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    process::thread_anywhere(tid as u32).ok_or(Errno::ESRCH)
}

pub fn tkill(a: &Args) -> KResult<u64> {
    let thread = thread_by_tid(a.int(0))?;
    if let Some(sig) = check_sig(a.int(1))? {
        let me = current().pid as i32;
        send_to_thread(&thread, SigInfo::user(sig as i32, SI_TKILL, me, 0))?;
    }
    Ok(0)
}

pub fn tgkill(a: &Args) -> KResult<u64> {
    if a.int(0) <= 0 {
        return Err(Errno::EINVAL);
    }
    let thread = thread_by_tid(a.int(1))?;
    if a.int(0) != task_of(&thread).process.pid as i32 {
        return Err(Errno::ESRCH);
    }
    if let Some(sig) = check_sig(a.int(2))? {
        let me = current().pid as i32;
        send_to_thread(&thread, SigInfo::user(sig as i32, SI_TKILL, me, 0))?;
    }
    Ok(0)
}

/// The `siginfo` of `rt_sigqueueinfo`: the program may only pretend to be `sigqueue`
/// or another user-space sender (negative codes other than `SI_TKILL`).
fn queued_info(a: &Args, i: usize, sig: usize) -> KResult<SigInfo> {
    let mut bytes = [0u8; 128];
    a.ptr(i).read_into(&mut bytes)?;
    let mut info = SigInfo::from_bytes(&bytes);
    if info.code >= 0 || info.code == SI_TKILL {
        return Err(Errno::EPERM);
    }
    info.signo = sig as i32;
    Ok(info)
}

pub fn rt_sigqueueinfo(a: &Args) -> KResult<u64> {
    if a.int(0) <= 0 {
        return Err(Errno::ESRCH);
    }
    let target = process::by_pid(a.int(0) as u32).ok_or(Errno::ESRCH)?;
    match check_sig(a.int(1))? {
        Some(sig) => send_to_process_of(&target, queued_info(a, 2, sig)?).map(|_| 0),
        None => Ok(0),
    }
}

pub fn rt_tgsigqueueinfo(a: &Args) -> KResult<u64> {
    let thread = thread_by_tid(a.int(1))?;
    if a.int(0) != task_of(&thread).process.pid as i32 {
        return Err(Errno::ESRCH);
    }
    match check_sig(a.int(2))? {
        Some(sig) => send_to_thread(&thread, queued_info(a, 3, sig)?).map(|_| 0),
        None => Ok(0),
    }
}

/// Raise `SIGPIPE` in the calling thread, as a write to a broken pipe does.
pub fn raise_sigpipe() {
    let info = SigInfo::kernel(SIGPIPE as i32);
    let _ = send_to_thread(&current_thread(), info);
}

/// Install a new alternate signal stack for `task` (sigaltstack's rules, shared with
/// `rt_sigreturn`, which restores the one saved in the frame).
pub fn set_altstack(task: &Task, ss: &AltStack) -> KResult<()> {
    let mode = ss.flags & !SS_AUTODISARM;
    if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
        return Err(Errno::EINVAL);
    }
    if mode == SS_DISABLE {
        *task.altstack.lock() = AltStack::disabled();
    } else {
        if ss.size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        *task.altstack.lock() = AltStack {
            sp: ss.sp,
            flags: ss.flags & SS_AUTODISARM,
            size: ss.size,
        };
    }
    Ok(())
}

pub fn sigaltstack(a: &Args, rsp: u64) -> KResult<u64> {
    let thread = current_thread();
    let task = task_of(&thread);
    let old = *task.altstack.lock();
    if !a.ptr(0).is_null() {
        let bytes: [u8; 24] = a.ptr(0).read()?;
        if old.on_stack(rsp) {
            return Err(Errno::EPERM);
        }
        set_altstack(task, &AltStack::from_bytes(&bytes))?;
    }
    if !a.ptr(1).is_null() {
        let report = AltStack {
            flags: old.reported_flags(rsp),
            ..old
        };
        a.ptr(1).write_bytes(&report.to_bytes())?;
    }
    Ok(0)
}

/// The calling thread's blocked set (for `/proc/self/status`).
pub fn blocked_mask() -> u64 {
    crate::process::try_current()
        .and(
            skiff_sched::current()
                .data::<crate::thread::Task>()
                .map(|t| t.blocked()),
        )
        .unwrap_or(0)
}
