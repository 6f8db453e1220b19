//! New processes: `fork`, `vfork`, and `clone` without `CLONE_VM` (how glibc and musl
//! implement `fork`).
//!
//! The child gets its own page-table root whose application half holds a copy of
//! every page the parent has mapped (copied now, not copy-on-write: simple, and cheap
//! for the small static servers that fork per connection), except that `MAP_SHARED`
//! mappings keep the same frames in both, so they stay shared. It gets a copy of the
//! descriptor table (the same open files), the working directory, umask, signal
//! dispositions, mask, alternate stack and resource limits; not pending signals or
//! timers, as on Linux. Only the calling thread is copied.
//!
//! What is not here: sharing memory with a child (`CLONE_VM` without `CLONE_THREAD`,
//! as `posix_spawn` asks) and sharing a descriptor table between processes
//! (`CLONE_FILES`) get `ENOSYS`. `vfork` is a `fork` whose parent waits until the
//! child ends or calls `execve`.

use crate::args::{Args, UserPtr};
use crate::process::{self, current, current_thread, task_of, Identity, Process};
use crate::thread::Task;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use skiff_arch::layout::PAGE_SIZE;
use skiff_arch::TrapFrame;
use skiff_errno::{Errno, KResult};
use skiff_mm::paging::{self, UserPageTable};
use skiff_vm::PageOps;

/// What a new process is asked to start with (decoded by `thread::clone`/`clone3`).
#[derive(Debug, Clone, Copy)]
pub struct ForkRequest {
    pub child_settid: Option<u64>,
    pub child_cleartid: Option<u64>,
    pub parent_settid: Option<u64>,
    pub tls: Option<u64>,
    /// The child's stack pointer (0: the parent's).
    pub stack: u64,
    /// Signal for the parent when the child ends (`SIGCHLD` for `fork`, 0 for none).
    pub exit_signal: u8,
    /// The parent waits until the child ends (`vfork`, `CLONE_VFORK`).
    pub wait_for_child: bool,
    /// The child's parent is the caller's parent (`CLONE_PARENT`).
    pub sibling: bool,
}

impl ForkRequest {
    /// Plain `fork`.
    pub fn fork() -> ForkRequest {
        ForkRequest {
            child_settid: None,
            child_cleartid: None,
            parent_settid: None,
            tls: None,
            stack: 0,
            exit_signal: crate::signal::state::SIGCHLD as u8,
            wait_for_child: false,
            sibling: false,
        }
    }
}

/// `fork` (57).
pub fn fork(_a: &Args, frame: &TrapFrame, fpu: &[u8]) -> KResult<u64> {
    spawn_process(ForkRequest::fork(), frame, fpu)
}

/// `vfork` (58): a `fork` whose parent resumes when the child has ended or called
/// `execve`.
pub fn vfork(_a: &Args, frame: &TrapFrame, fpu: &[u8]) -> KResult<u64> {
    let req = ForkRequest {
        wait_for_child: true,
        ..ForkRequest::fork()
    };
    spawn_process(req, frame, fpu)
}

/// Write `bytes` at `addr` in the application half rooted at `root` (not the loaded
/// one): the child's copy of a page the parent has present.
fn write_into(root: u64, addr: u64, bytes: &[u8]) -> KResult<()> {
    let mut table = UserPageTable::of_root(root);
    let mut done = 0;
    while done < bytes.len() {
        let at = addr + done as u64;
        let page = at & !(PAGE_SIZE - 1);
        let offset = (at - page) as usize;
        let n = (bytes.len() - done).min(PAGE_SIZE as usize - offset);
        if !table.patch_page(page, offset, &bytes[done..done + n]) {
            return Err(Errno::EFAULT);
        }
        done += n;
    }
    Ok(())
}

/// Build the child's address space in a new root: the parent's map, and its present
/// pages copied (shared mappings: the same frames, made present first in the parent so
/// that both see one set).
fn copy_address_space(parent: &Process) -> KResult<(u64, skiff_vm::AddressSpace)> {
    let mut aspace = parent.aspace.lock();
    let mut parent_pages = UserPageTable::of_root(parent.page_root);
    let shared: Vec<(u64, u64)> = aspace
        .vmas()
        .filter(|v| v.is_shared())
        .map(|v| (v.start(), v.len()))
        .collect();
    for (start, len) in shared {
        aspace.populate_range(&mut parent_pages, start, len)?;
    }
    let root = paging::new_root()?;
    let mut child_pages = UserPageTable::of_root(root);
    for v in aspace.vmas() {
        if let Err(e) = parent_pages.copy_into(&mut child_pages, v.start(), v.end(), v.is_shared())
        {
            paging::destroy_root(root);
            return Err(e);
        }
    }
    Ok((root, aspace.clone()))
}

/// Create a process running a copy of the calling thread; returns its PID.
pub fn spawn_process(req: ForkRequest, frame: &TrapFrame, fpu: &[u8]) -> KResult<u64> {
    let parent = current();
    let me = current_thread();
    let my_task = task_of(&me);
    if let Some(addr) = req.child_settid {
        // Make the word present and writable in the parent now (rewriting its own
        // value changes nothing), so the child's copy of its page exists to patch.
        let word = UserPtr(addr).read::<u32>()?;
        UserPtr(addr).write(&word)?;
    }
    let (root, aspace) = copy_address_space(&parent)?;
    let pid = process::allocate_tid();
    if let Some(addr) = req.child_settid {
        if let Err(e) = write_into(root, addr, &pid.to_le_bytes()) {
            paging::destroy_root(root);
            return Err(e);
        }
    }
    let identity = Identity {
        pid,
        parent: if req.sibling {
            parent.parent()
        } else {
            parent.pid
        },
        pgid: parent.pgid(),
        sid: parent.sid(),
        image: parent.image(),
        hostname: parent.hostname.clone(),
        exit_signal: req.exit_signal,
    };
    let child = Process::new(identity, root, parent.fs.fork(), aspace);
    *child.rlimits.lock() = *parent.rlimits.lock();
    *child.sigactions.lock() = *parent.sigactions.lock();
    let child = process::install(child);

    let task = Task::new(pid, child.clone(), my_task.blocked());
    *task.altstack.lock() = *my_task.altstack.lock();
    *task.name.lock() = *my_task.name.lock();
    if let Some(addr) = req.child_cleartid {
        task.clear_child_tid.store(addr, Ordering::Relaxed);
    }
    let mut regs = *frame;
    regs.rax = 0;
    if req.stack != 0 {
        regs.rsp = req.stack;
    }
    let start = skiff_sched::UserStart {
        frame: &regs,
        fpu,
        fs_base: req.tls.unwrap_or_else(skiff_arch::cpu::fs_base),
        page_root: root,
    };
    {
        let mut threads = child.threads.lock();
        match skiff_sched::spawn(pid, start, Box::new(task)) {
            Ok(thread) => {
                threads.insert(pid, thread);
            }
            Err(_) => {
                drop(threads);
                process::remove(pid);
                paging::destroy_root(root);
                return Err(Errno::EAGAIN);
            }
        }
    }
    if let Some(addr) = req.parent_settid {
        // The child runs already; a bad pointer here is the caller's problem only.
        let _ = UserPtr(addr).write(&pid);
    }
    if req.wait_for_child {
        let _ = process::CHILD_EVENTS
            .wait_until(None, false, || child.has_ended() || child.has_execed());
    }
    Ok(pid as u64)
}
