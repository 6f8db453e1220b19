//! How processes end.
//!
//! **Init** (PID 1, the program Skiff booted): whatever the reason (the last thread's
//! `exit`, `exit_group`, a fatal signal), modified shared mappings are written back,
//! every volume is synced and left clean on its disk, and network output still on its
//! way to the host is given a moment to arrive, before the exit report powers the
//! machine off. Other processes end with it. A kernel bug skips this (its state cannot
//! be trusted) and stops at once.
//!
//! **Any other process** (made by `fork`): its threads leave, the last one writes back
//! its shared mappings, closes its descriptors, cancels its timers, frees its address
//! space, hands its children to init, and tells its parent (`SIGCHLD`, and a zombie
//! for `wait4` unless the parent ignores `SIGCHLD`).

use crate::process::{self, Process, INIT_PID};
use crate::signal::deliver::{send_to_process_of, SIG_IGN};
use crate::signal::frame::SigInfo;
use crate::signal::state::{default_action, DefaultAction, SIGCHLD};
use alloc::sync::Arc;
use skiff_bootproto::ExitReport;
use skiff_console as console;
use skiff_mm::paging::{self, UserPageTable};
use skiff_vm::AddressSpace;

/// `SA_NOCLDWAIT`: the parent does not want zombies.
const SA_NOCLDWAIT: u64 = 2;
/// `si_code` of `SIGCHLD` and `waitid`: the child exited, a signal killed it, or one
/// whose default action dumps core did.
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
const CLD_DUMPED: i32 = 3;
/// The wait status's `WCOREDUMP` bit: set for signals whose default action dumps core,
/// though no core file is written.
const CORE_DUMP_FLAG: i32 = 0x80;

/// The wait status (`wstatus` of `wait4`) for `report`.
pub fn wait_status(report: ExitReport) -> i32 {
    match report {
        ExitReport::Exited(code) => (code as i32) << 8,
        ExitReport::Signaled(sig) => {
            let core = default_action(sig as usize) == DefaultAction::CoreDump;
            sig as i32 | if core { CORE_DUMP_FLAG } else { 0 }
        }
        // Not reached for a process other than init.
        _ => 0x7f,
    }
}

/// The `si_code` and `si_status` that report wait status `status` (`SIGCHLD`,
/// `waitid`).
pub fn child_code(status: i32) -> (i32, i32) {
    if status & 0x7f == 0 {
        (CLD_EXITED, (status >> 8) & 0xff)
    } else if status & CORE_DUMP_FLAG != 0 {
        (CLD_DUMPED, status & 0x7f)
    } else {
        (CLD_KILLED, status & 0x7f)
    }
}

/// The calling thread's process ends with `report`.
pub fn end_process(report: ExitReport) -> ! {
    let p = process::current();
    if p.is_init() {
        shutdown(report)
    }
    p.set_exit_status(wait_status(report));
    // The other threads leave when they next return towards the application.
    for t in p.threads.lock().values() {
        skiff_sched::interrupt(t);
    }
    leave_process(p)
}

/// The calling thread leaves its process, which is ending (`end_process` began it) or
/// running `execve` in another thread; the last thread out of an ending process frees
/// what it held.
pub fn leave_process(p: Arc<Process>) -> ! {
    let me = skiff_sched::current();
    let remaining = {
        let mut threads = p.threads.lock();
        threads.remove(&me.tid());
        threads.len()
    };
    drop(me);
    if remaining == 0 {
        release(&p);
    } else {
        // An `execve` may be waiting for the other threads to go.
        process::CHILD_EVENTS.wake_all();
    }
    drop(p);
    skiff_sched::exit_current()
}

/// Free everything a process that is not init held and report its end to its parent.
/// Runs on its last thread. Everything that may block comes before the address space
/// goes: after that, this thread must not be scheduled again.
fn release(p: &Arc<Process>) {
    let root = p.page_root;
    {
        let mut aspace = p.aspace.lock();
        if let Err(e) = aspace.sync_all(&mut UserPageTable::of_root(root)) {
            console::warn!(
                "exit of process {}: writing back shared file mappings failed: {}",
                p.pid,
                e
            );
        }
        let layout = *aspace.layout();
        // The VMAs go (and the files they hold); the pages go with the root below.
        *aspace = AddressSpace::new(layout);
    }
    let files = p.fs.fds.lock().close_all();
    drop(files);
    crate::sys_timer::cancel_all(p);
    // From here nothing may block: this thread's page tables are about to go.
    paging::activate(paging::boot_root());
    paging::destroy_root(root);

    for child in process::all() {
        if child.parent() == p.pid {
            child.set_parent(INIT_PID);
        }
    }
    let status = p.exit_status().unwrap_or(0);
    p.mark_ended();
    let parent = process::by_pid(p.parent());
    let mut reap_now = true;
    if let Some(parent) = parent.filter(|q| q.exit_status().is_none()) {
        let act = parent.sigaction(SIGCHLD);
        reap_now = act.handler == SIG_IGN || act.flags & SA_NOCLDWAIT != 0;
        if p.exit_signal != 0 {
            let (code, value) = child_code(status);
            let mut info = SigInfo::child(code, p.pid as i32, 0, value, 0, 0);
            info.signo = p.exit_signal as i32;
            let _ = send_to_process_of(&parent, info);
        }
    }
    if reap_now {
        process::remove(p.pid);
    }
    process::CHILD_EVENTS.wake_all();
}

/// Ends the machine with `report` after making init's files durable.
pub fn shutdown(report: ExitReport) -> ! {
    if let Some(p) = process::try_current() {
        // A thread that faulted while holding the address space (a kernel bug path
        // would not come here) cannot be waited for: skip its mappings rather than hang.
        if let Some(mut aspace) = p.aspace.try_lock() {
            if let Err(e) = aspace.sync_all(&mut UserPageTable::of_root(p.page_root)) {
                console::warn!("exit: writing back shared file mappings failed: {}", e);
            }
        }
        if let Err(e) = p.fs.vfs().unmount_all() {
            console::error!(
                "exit: a volume could not be flushed ({}); data written since the last fsync may be lost",
                e
            );
        }
    }
    crate::net::drain_before_exit();
    console::exit(report)
}
