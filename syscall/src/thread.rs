//! Threads of the process: their per-thread state ([`Task`]), creating them with `clone`
//! and `clone3`, and ending them (`exit` of one thread, the clear-and-wake of
//! `set_tid_address`, robust futex lists).
//!
//! Threads share their process's address space, file table and signal handlers. A
//! `clone` without `CLONE_VM` makes a process instead (see `fork.rs`); one that asks
//! for a process sharing memory with its parent (`CLONE_VM` without `CLONE_THREAD`, as
//! `posix_spawn` does) gets `ENOSYS`.

use crate::args::{Args, UserPtr};
use crate::futex;
use crate::process::{current, current_thread, task_of};
use crate::signal::frame::AltStack;
use crate::signal::state::PendingSignals;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch::TrapFrame;
use skiff_bootproto::ExitReport;
use skiff_errno::{Errno, KResult};
use skiff_sched::irq::IrqMutex;
use spin::Mutex;

/// What the syscall layer keeps per thread.
pub struct Task {
    pub tid: u32,
    /// The process the thread belongs to.
    pub process: Arc<crate::process::Process>,
    /// `set_tid_address`/`CLONE_CHILD_CLEARTID`: zeroed and woken when the thread ends.
    pub clear_child_tid: AtomicU64,
    /// `set_robust_list` head.
    pub robust_list: AtomicU64,
    /// Blocked signals.
    pub blocked: AtomicU64,
    /// Signals sent to this thread.
    pub pending: IrqMutex<PendingSignals>,
    /// `pending`'s set, readable without its lock.
    pub pending_bits: AtomicU64,
    pub altstack: Mutex<AltStack>,
    /// The mask to restore once a handler started by `sigsuspend`, `ppoll` or
    /// `pselect6` returns (they block with a temporary mask).
    pub saved_mask: Mutex<Option<u64>>,
    /// `PR_SET_NAME`.
    pub name: Mutex<Option<[u8; 16]>>,
}

impl Task {
    pub fn new(tid: u32, process: Arc<crate::process::Process>, blocked: u64) -> Task {
        Task {
            tid,
            process,
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            blocked: AtomicU64::new(blocked),
            pending: IrqMutex::new(PendingSignals::new()),
            pending_bits: AtomicU64::new(0),
            altstack: Mutex::new(AltStack::disabled()),
            saved_mask: Mutex::new(None),
            name: Mutex::new(None),
        }
    }

    pub fn blocked(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }
}

const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const CLONE_IO: u64 = 0x8000_0000;

/// The flags a thread-creating clone may carry.
const THREAD_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID
    | CLONE_IO;

/// A decoded clone request (from `clone` or `clone3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneRequest {
    pub flags: u64,
    /// The child's stack pointer (0: the parent's).
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
}

/// What a valid clone creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneKind {
    /// A thread of the caller's process.
    Thread,
    /// A new process with a copy of the caller's memory (`fork`).
    Process,
}

/// The flags a process-creating clone may carry (besides the exit signal).
const PROCESS_FLAGS: u64 = CLONE_VFORK
    | CLONE_PARENT
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_CHILD_SETTID
    | CLONE_DETACHED
    | CLONE_SYSVSEM
    | CLONE_IO;

/// Check what a clone asks for against what Skiff can give: threads, and processes
/// with their own copy of memory and descriptors.
pub fn validate(flags: u64) -> KResult<CloneKind> {
    // Linux's own consistency rules first.
    if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_THREAD == 0 {
        if flags & (CLONE_VM | CLONE_FILES | CLONE_FS | CLONE_PIDFD) != 0 {
            // A process sharing memory (posix_spawn's CLONE_VM|CLONE_VFORK), its
            // descriptor table or its working directory with the caller.
            return Err(Errno::ENOSYS);
        }
        if flags & !(PROCESS_FLAGS | CSIGNAL) != 0 {
            // Namespaces, ptrace, cgroups and the rest.
            return Err(Errno::EINVAL);
        }
        return Ok(CloneKind::Process);
    }
    if flags & (CLONE_VFORK | CLONE_PARENT | CLONE_PIDFD) != 0 {
        return Err(Errno::ENOSYS);
    }
    if flags & (CLONE_FS | CLONE_FILES) != CLONE_FS | CLONE_FILES {
        // A thread with its own cwd or descriptor table: not supported.
        return Err(Errno::EINVAL);
    }
    if flags & !(THREAD_FLAGS | CSIGNAL) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(CloneKind::Thread)
}

pub fn clone(a: &Args, frame: &TrapFrame, fpu: &[u8]) -> KResult<u64> {
    // x86_64 argument order: flags, stack, parent_tid, child_tid, tls.
    let flags = a.raw(0);
    spawn_thread(
        CloneRequest {
            flags,
            stack: a.raw(1),
            parent_tid: a.raw(2),
            child_tid: a.raw(3),
            tls: a.raw(4),
        },
        (flags & CSIGNAL) as u8,
        frame,
        fpu,
    )
}

/// `struct clone_args` up to `tls` (CLONE_ARGS_SIZE_VER0).
const CLONE_ARGS_SIZE_VER0: usize = 64;

pub fn clone3(a: &Args, frame: &TrapFrame, fpu: &[u8]) -> KResult<u64> {
    let size = a.usize(1);
    if !(CLONE_ARGS_SIZE_VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let bytes = a.ptr(0).read_bytes(size)?;
    let field = |i: usize| -> u64 {
        bytes
            .get(i * 8..i * 8 + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    // Fields beyond the ones Skiff knows must be zero (Linux's rule for larger structs).
    if bytes.len() > 11 * 8 && bytes[11 * 8..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let (flags, exit_signal, stack, stack_size, tls) =
        (field(0), field(4), field(5), field(6), field(7));
    if field(8) != 0 || field(9) != 0 {
        // set_tid: choosing thread IDs needs privileges Skiff does not model.
        return Err(Errno::EPERM);
    }
    if flags & CSIGNAL != 0 || exit_signal > 64 {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_THREAD != 0 && exit_signal != 0 {
        return Err(Errno::EINVAL);
    }
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    spawn_thread(
        CloneRequest {
            flags,
            stack: if stack == 0 {
                0
            } else {
                stack.wrapping_add(stack_size)
            },
            parent_tid: field(3),
            child_tid: field(2),
            tls,
        },
        exit_signal as u8,
        frame,
        fpu,
    )
}

fn spawn_thread(req: CloneRequest, exit_signal: u8, frame: &TrapFrame, fpu: &[u8]) -> KResult<u64> {
    let kind = match validate(req.flags) {
        Ok(kind) => kind,
        Err(e) => {
            if e == Errno::ENOSYS {
                warn_once_shared_process();
            }
            return Err(e);
        }
    };
    if req.flags & CLONE_SETTLS != 0 && !skiff_arch::layout::is_user(req.tls) && req.tls != 0 {
        return Err(Errno::EPERM);
    }
    if kind == CloneKind::Process {
        let flag = |f: u64| req.flags & f != 0;
        let fork = crate::fork::ForkRequest {
            child_settid: flag(CLONE_CHILD_SETTID).then_some(req.child_tid),
            child_cleartid: flag(CLONE_CHILD_CLEARTID).then_some(req.child_tid),
            parent_settid: flag(CLONE_PARENT_SETTID).then_some(req.parent_tid),
            tls: flag(CLONE_SETTLS).then_some(req.tls),
            stack: req.stack,
            exit_signal,
            wait_for_child: flag(CLONE_VFORK),
            sibling: flag(CLONE_PARENT),
        };
        return crate::fork::spawn_process(fork, frame, fpu);
    }
    let p = current();
    let parent = current_thread();
    let tid = crate::process::allocate_tid();
    if req.flags & CLONE_PARENT_SETTID != 0 {
        UserPtr(req.parent_tid).write(&tid)?;
    }
    if req.flags & CLONE_CHILD_SETTID != 0 {
        // One address space: the child's memory is the parent's.
        UserPtr(req.child_tid).write(&tid)?;
    }
    let task = Task::new(tid, p.clone(), task_of(&parent).blocked());
    if req.flags & CLONE_CHILD_CLEARTID != 0 {
        task.clear_child_tid.store(req.child_tid, Ordering::Relaxed);
    }
    let mut child = *frame;
    child.rax = 0;
    if req.stack != 0 {
        child.rsp = req.stack;
    }
    let fs_base = if req.flags & CLONE_SETTLS != 0 {
        req.tls
    } else {
        skiff_arch::cpu::fs_base()
    };
    // Hold the thread table while the thread becomes runnable, so a signal sent to the
    // process cannot miss it.
    let mut threads = p.threads.lock();
    let start = skiff_sched::UserStart {
        frame: &child,
        fpu,
        fs_base,
        page_root: p.page_root,
    };
    let thread = skiff_sched::spawn(tid, start, Box::new(task)).map_err(|_| Errno::EAGAIN)?;
    threads.insert(tid, thread);
    Ok(tid as u64)
}

fn warn_once_shared_process() {
    static WARNED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        skiff_console::warn!(
            "the program asked for a process that shares memory or descriptors with it (posix_spawn, CLONE_VM without CLONE_THREAD); Skiff's processes cannot, so clone returns ENOSYS"
        );
    }
}

pub fn gettid() -> KResult<u64> {
    Ok(current_thread().tid() as u64)
}

pub fn set_tid_address(a: &Args) -> KResult<u64> {
    let t = current_thread();
    task_of(&t)
        .clear_child_tid
        .store(a.raw(0), Ordering::Relaxed);
    Ok(t.tid() as u64)
}

/// `sizeof(struct robust_list_head)`.
const ROBUST_LIST_HEAD_SIZE: usize = 24;

pub fn set_robust_list(a: &Args) -> KResult<u64> {
    if a.usize(1) != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    task_of(&current_thread())
        .robust_list
        .store(a.raw(0), Ordering::Relaxed);
    Ok(0)
}

pub fn get_robust_list(a: &Args) -> KResult<u64> {
    let thread = match a.int(0) {
        0 => current_thread(),
        tid if tid > 0 => current().thread(tid as u32).ok_or(Errno::ESRCH)?,
        _ => return Err(Errno::ESRCH),
    };
    a.ptr(1)
        .write(&task_of(&thread).robust_list.load(Ordering::Relaxed))?;
    a.ptr(2).write(&(ROBUST_LIST_HEAD_SIZE as u64))?;
    Ok(0)
}

/// `exit`: end the calling thread; the process ends with the last one.
pub fn exit_thread(a: &Args) -> KResult<u64> {
    let status = a.int(0) as u8;
    let thread = current_thread();
    let task = task_of(&thread);
    release_robust_futexes(task);
    let ctid = task.clear_child_tid.swap(0, Ordering::Relaxed);
    if ctid != 0 && UserPtr(ctid).write(&0u32).is_ok() {
        futex::wake(ctid, 1, futex::BITSET_MATCH_ANY);
    }
    let p = current();
    let remaining = {
        let mut threads = p.threads.lock();
        threads.remove(&thread.tid());
        threads.len()
    };
    if remaining == 0 {
        crate::lifecycle::end_process(ExitReport::Exited(status));
    }
    drop(thread);
    skiff_sched::exit_current()
}

/// `exit_group`: end every thread and the process.
pub fn exit_group(a: &Args) -> KResult<u64> {
    crate::lifecycle::end_process(ExitReport::Exited(a.int(0) as u8))
}

/// What a thread's end does to futexes, done early by `execve` (Linux's
/// `mm_release`): its robust mutexes are marked owner-died, and its clear-tid word is
/// zeroed and woken. Both registrations go, since the new program has its own.
pub(crate) fn release_thread_futexes(task: &Task) {
    release_robust_futexes(task);
    task.robust_list.store(0, Ordering::Relaxed);
    let ctid = task.clear_child_tid.swap(0, Ordering::Relaxed);
    if ctid != 0 && UserPtr(ctid).write(&0u32).is_ok() {
        futex::wake(ctid, 1, futex::BITSET_MATCH_ANY);
    }
}

const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Linux's bound on robust-list walks (ROBUST_LIST_LIMIT), against cyclic lists.
const ROBUST_LIST_LIMIT: usize = 2048;

/// Mark the robust mutexes a dying thread holds as owner-died and wake a waiter of
/// each, as Linux's `exit_robust_list` does. Bad pointers end the walk quietly.
fn release_robust_futexes(task: &Task) {
    let head = task.robust_list.load(Ordering::Relaxed);
    if head == 0 {
        return;
    }
    let Ok([first, offset, pending]) = UserPtr(head).read::<[u64; 3]>() else {
        return;
    };
    let offset = offset as i64;
    let mut entries: Vec<u64> = Vec::new();
    let mut entry = first;
    while entry != head && entries.len() < ROBUST_LIST_LIMIT {
        entries.push(entry & !1);
        match UserPtr(entry & !1).read::<u64>() {
            Ok(next) => entry = next,
            Err(_) => break,
        }
    }
    if pending != 0 {
        entries.push(pending & !1);
    }
    for e in entries {
        let word = e.wrapping_add(offset as u64);
        release_one(word, task.tid);
    }
}

fn release_one(word: u64, tid: u32) {
    let Ok(val) = UserPtr(word).read::<u32>() else {
        return;
    };
    if val & FUTEX_TID_MASK != tid {
        return;
    }
    let new = (val & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    if UserPtr(word).write(&new).is_ok() && val & FUTEX_WAITERS != 0 {
        futex::wake(word, 1, futex::BITSET_MATCH_ANY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLIBC: u64 = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID;

    #[test]
    fn libc_thread_flags_are_accepted() {
        assert_eq!(validate(GLIBC), Ok(CloneKind::Thread));
        // musl adds CLONE_DETACHED; Go passes no TLS or tid flags.
        assert_eq!(validate(GLIBC | CLONE_DETACHED), Ok(CloneKind::Thread));
        assert_eq!(
            validate(
                CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_SYSVSEM | CLONE_THREAD
            ),
            Ok(CloneKind::Thread)
        );
    }

    const SIGCHLD: u64 = 17;

    #[test]
    fn fork_flags_make_a_process() {
        // musl's fork, glibc's fork, vfork without shared memory.
        assert_eq!(validate(SIGCHLD), Ok(CloneKind::Process));
        assert_eq!(
            validate(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD),
            Ok(CloneKind::Process)
        );
        assert_eq!(validate(CLONE_VFORK | SIGCHLD), Ok(CloneKind::Process));
        assert_eq!(validate(0), Ok(CloneKind::Process));
    }

    #[test]
    fn processes_sharing_memory_or_files_are_enosys() {
        // posix_spawn's clone.
        assert_eq!(
            validate(CLONE_VM | CLONE_VFORK | SIGCHLD),
            Err(Errno::ENOSYS)
        );
        assert_eq!(validate(CLONE_VM | SIGCHLD), Err(Errno::ENOSYS));
        assert_eq!(validate(CLONE_FILES | SIGCHLD), Err(Errno::ENOSYS));
        assert_eq!(validate(CLONE_FS | SIGCHLD), Err(Errno::ENOSYS));
    }

    #[test]
    fn inconsistent_or_unsupported_flags_are_einval() {
        assert_eq!(validate(CLONE_THREAD | CLONE_VM), Err(Errno::EINVAL));
        assert_eq!(validate(CLONE_SIGHAND | CLONE_THREAD), Err(Errno::EINVAL));
        assert_eq!(
            validate(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD | CLONE_FS),
            Err(Errno::EINVAL)
        );
        const CLONE_NEWNS: u64 = 0x20000;
        assert_eq!(validate(GLIBC | CLONE_NEWNS), Err(Errno::EINVAL));
        assert_eq!(validate(CLONE_NEWNS | SIGCHLD), Err(Errno::EINVAL));
        assert_eq!(validate(GLIBC | CLONE_VFORK), Err(Errno::ENOSYS));
    }
}
