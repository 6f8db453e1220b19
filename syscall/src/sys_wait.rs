//! Waiting for children: `wait4` and `waitid`.
//!
//! A child that has ended stays in the process table (a zombie) until its parent
//! collects it here, unless the parent ignores `SIGCHLD` (or set `SA_NOCLDWAIT`), in
//! which case it went at once and a waiting parent gets `ECHILD` once no children are
//! left, as on Linux. There is no job control, so children are never stopped or
//! continued: `WUNTRACED`/`WSTOPPED` and `WCONTINUED` are accepted and never match.
//! Resource usage of children is not accounted: `rusage` is filled with zeros.

use crate::args::Args;
use crate::process::{self, current, Process};
use crate::signal::frame::SigInfo;
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};
use skiff_sched::WakeReason;

const WNOHANG: u32 = 1;
const WUNTRACED: u32 = 2;
const WEXITED: u32 = 4;
const WCONTINUED: u32 = 8;
const WNOWAIT: u32 = 0x0100_0000;
const WNOTHREAD: u32 = 0x2000_0000;
const WALL: u32 = 0x4000_0000;
const WCLONE: u32 = 0x8000_0000;

const P_ALL: u32 = 0;
const P_PID: u32 = 1;
const P_PGID: u32 = 2;

/// `sizeof(struct rusage)`.
const RUSAGE_SIZE: usize = 144;

/// Which children a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Any,
    Pid(u32),
    Group(u32),
}

impl Which {
    fn matches(self, child: &Process) -> bool {
        match self {
            Which::Any => true,
            Which::Pid(pid) => child.pid == pid,
            Which::Group(pgid) => child.pgid() == pgid,
        }
    }
}

/// The caller's children that `which` selects, and the first of them that has ended.
fn scan(me: &Process, which: Which) -> (bool, Option<Arc<Process>>) {
    let children: Vec<Arc<Process>> = process::all()
        .into_iter()
        .filter(|c| c.parent() == me.pid && which.matches(c))
        .collect();
    let ended = children.iter().find(|c| c.has_ended()).cloned();
    (!children.is_empty(), ended)
}

/// Wait for a child of the caller that `which` selects to end. `Ok(None)`: `nohang`
/// and none has ended yet.
fn wait_for_child(which: Which, nohang: bool) -> KResult<Option<Arc<Process>>> {
    let me = current();
    loop {
        let (any, ended) = scan(&me, which);
        if let Some(child) = ended {
            return Ok(Some(child));
        }
        if !any {
            return Err(Errno::ECHILD);
        }
        if nohang {
            return Ok(None);
        }
        let changed = process::CHILD_EVENTS.wait_until(None, true, || {
            let (any, ended) = scan(&me, which);
            ended.is_some() || !any
        });
        if let Err(WakeReason::Interrupted) = changed {
            return Err(Errno::ERESTARTSYS);
        }
    }
}

/// `wait4(pid, wstatus, options, rusage)`.
pub fn wait4(a: &Args) -> KResult<u64> {
    let pid = a.int(0);
    let options = a.u32(2);
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return Err(Errno::EINVAL);
    }
    let me = current();
    let which = match pid {
        -1 => Which::Any,
        0 => Which::Group(me.pgid()),
        i32::MIN => return Err(Errno::ESRCH),
        p if p < 0 => Which::Group(p.unsigned_abs()),
        p => Which::Pid(p as u32),
    };
    drop(me);
    let Some(child) = wait_for_child(which, options & WNOHANG != 0)? else {
        return Ok(0);
    };
    let status = child.exit_status().unwrap_or(0);
    if !a.ptr(1).is_null() {
        a.ptr(1).write(&status)?;
    }
    if !a.ptr(3).is_null() {
        a.ptr(3).write_bytes(&[0u8; RUSAGE_SIZE])?;
    }
    process::remove(child.pid);
    Ok(child.pid as u64)
}

/// `waitid(idtype, id, infop, options, rusage)`.
pub fn waitid(a: &Args) -> KResult<u64> {
    let options = a.u32(3);
    if options & !(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE)
        != 0
        || options & (WUNTRACED | WEXITED | WCONTINUED) == 0
    {
        return Err(Errno::EINVAL);
    }
    let id = a.u32(1);
    let which = match a.u32(0) {
        P_ALL => Which::Any,
        P_PID if (id as i32) > 0 => Which::Pid(id),
        P_PGID if id == 0 => Which::Group(current().pgid()),
        P_PGID if (id as i32) > 0 => Which::Group(id),
        _ => return Err(Errno::EINVAL),
    };
    // Only ended children can match: without WEXITED, wait for what never happens.
    let nohang = options & WNOHANG != 0;
    let found = if options & WEXITED != 0 {
        wait_for_child(which, nohang)?
    } else {
        let (any, _) = scan(&current(), which);
        if !any {
            return Err(Errno::ECHILD);
        }
        if !nohang {
            let _ = process::CHILD_EVENTS.wait_until(None, true, || false);
            return Err(Errno::ERESTARTSYS);
        }
        None
    };
    let info = match &found {
        Some(child) => {
            let status = child.exit_status().unwrap_or(0);
            let (code, value) = crate::lifecycle::child_code(status);
            SigInfo::child(code, child.pid as i32, 0, value, 0, 0)
        }
        // WNOHANG with nothing to report: Linux zeroes si_signo and si_pid.
        None => SigInfo::EMPTY,
    };
    if !a.ptr(2).is_null() {
        a.ptr(2).write_bytes(&info.to_bytes())?;
    }
    if !a.ptr(4).is_null() {
        a.ptr(4).write_bytes(&[0u8; RUSAGE_SIZE])?;
    }
    if let Some(child) = found {
        if options & WNOWAIT == 0 {
            process::remove(child.pid);
        }
    }
    Ok(0)
}
