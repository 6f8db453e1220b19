//! Process identity, limits, scheduling parameters and other process-wide calls.

use crate::args::Args;
use crate::process::{
    self, current, current_thread, task_of, Process, RLIM_INFINITY, RLIM_NLIMITS,
};
use alloc::sync::Arc;
use skiff_arch::{cpu, time};
use skiff_errno::{Errno, KResult};
use skiff_fs::Entropy;

fn field(s: &[u8]) -> [u8; 65] {
    let mut f = [0u8; 65];
    let n = s.len().min(64);
    f[..n].copy_from_slice(&s[..n]);
    f
}

pub fn uname(a: &Args) -> KResult<u64> {
    let host = current().hostname.lock().clone();
    let mut buf = [0u8; 65 * 6];
    for (i, v) in [
        &b"Linux"[..],
        &host,
        b"6.1.0-skiff",
        b"#1 SMP PREEMPT_DYNAMIC Skiff",
        b"x86_64",
        b"(none)",
    ]
    .iter()
    .enumerate()
    {
        buf[i * 65..(i + 1) * 65].copy_from_slice(&field(v));
    }
    a.ptr(0).write_bytes(&buf)?;
    Ok(0)
}

pub fn sethostname(a: &Args) -> KResult<u64> {
    let len = a.usize(1);
    if len > 64 {
        return Err(Errno::EINVAL);
    }
    let name = a.ptr(0).read_bytes(len)?;
    *current().hostname.lock() = name.clone();
    if let Some(procfs) = current().fs.vfs().procfs() {
        procfs.set_hostname(&name);
    }
    Ok(0)
}

pub fn umask(a: &Args) -> KResult<u64> {
    Ok(current().fs.set_umask(a.u32(0)) as u64)
}

pub fn setid(a: &Args) -> KResult<u64> {
    // The program runs as root and stays root: switching to another identity would
    // promise a permission model the kernel does not enforce.
    if a.u32(0) == 0 {
        Ok(0)
    } else {
        Err(Errno::EPERM)
    }
}

pub fn getres(a: &Args) -> KResult<u64> {
    for i in 0..3 {
        a.ptr(i).write(&0u32)?;
    }
    Ok(0)
}

/// The process a pid argument names: 0 is the caller.
fn process_arg(pid: i32) -> KResult<Arc<Process>> {
    match pid {
        0 => Ok(current()),
        p if p > 0 => process::by_pid(p as u32).ok_or(Errno::ESRCH),
        _ => Err(Errno::ESRCH),
    }
}

pub fn getpgid(a: &Args) -> KResult<u64> {
    Ok(process_arg(a.int(0))?.pgid() as u64)
}

pub fn getsid(a: &Args) -> KResult<u64> {
    Ok(process_arg(a.int(0))?.sid() as u64)
}

/// `setpgid(pid, pgid)`: the caller or one of its children moves to group `pgid` (0:
/// its own PID), which must be new or exist in the same session (Linux's rules).
pub fn setpgid(a: &Args) -> KResult<u64> {
    if a.int(1) < 0 {
        return Err(Errno::EINVAL);
    }
    let me = current();
    let target = process_arg(a.int(0))?;
    if target.pid != me.pid && target.parent() != me.pid {
        return Err(Errno::ESRCH);
    }
    if target.sid() != me.sid() || target.sid() == target.pid {
        // Another session, or a session leader.
        return Err(Errno::EPERM);
    }
    let pgid = match a.int(1) {
        0 => target.pid,
        g => g as u32,
    };
    if pgid != target.pid
        && !process::all()
            .iter()
            .any(|p| p.pgid() == pgid && p.sid() == me.sid() && !p.has_ended())
    {
        return Err(Errno::EPERM);
    }
    target.set_pgid(pgid);
    Ok(0)
}

/// `setsid`: a new session and group led by the caller, unless it leads a group.
pub fn setsid() -> KResult<u64> {
    let me = current();
    if me.pgid() == me.pid {
        return Err(Errno::EPERM);
    }
    me.set_sid(me.pid);
    me.set_pgid(me.pid);
    Ok(me.pid as u64)
}

const ARCH_SET_GS: u32 = 0x1001;
const ARCH_SET_FS: u32 = 0x1002;
const ARCH_GET_FS: u32 = 0x1003;
const ARCH_GET_GS: u32 = 0x1004;
const ARCH_GET_CPUID: u32 = 0x1011;
const ARCH_SET_CPUID: u32 = 0x1012;

pub fn arch_prctl(a: &Args) -> KResult<u64> {
    match a.u32(0) {
        ARCH_SET_FS => {
            let base = a.raw(1);
            if !skiff_arch::layout::is_user(base) {
                return Err(Errno::EPERM);
            }
            cpu::set_fs_base(base);
            Ok(0)
        }
        ARCH_GET_FS => {
            a.ptr(1).write(&cpu::fs_base())?;
            Ok(0)
        }
        // The kernel owns GS (per-CPU data) because it shares ring 0 with the program;
        // see skiff_arch::percpu. Linux programs use FS for TLS.
        ARCH_SET_GS => Err(Errno::EINVAL),
        ARCH_GET_GS => {
            a.ptr(1).write(&0u64)?;
            Ok(0)
        }
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

/// A pid argument: 0 (the caller), its PID, or any of its live threads' IDs.
fn check_pid(pid: i32) -> KResult<()> {
    let me = current();
    if pid == 0 || pid == me.pid as i32 || (pid > 0 && me.thread(pid as u32).is_some()) {
        Ok(())
    } else {
        Err(Errno::ESRCH)
    }
}

fn apply_limit(resource: usize, soft: u64) {
    let p = current();
    match resource {
        7 => p.fs.fds.lock().set_limit(soft.min(1 << 20) as usize),
        3 => p.aspace.lock().set_stack_limit(soft),
        _ => {}
    }
}

pub fn prlimit64(a: &Args) -> KResult<u64> {
    check_pid(a.int(0))?;
    let resource = a.u32(1) as usize;
    if resource >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    let new = if a.ptr(2).is_null() {
        None
    } else {
        Some(a.ptr(2).read::<[u64; 2]>()?)
    };
    if let Some([soft, hard]) = new {
        if soft > hard {
            return Err(Errno::EINVAL);
        }
        if resource == 7 && hard != RLIM_INFINITY && hard > 1 << 20 {
            return Err(Errno::EPERM);
        }
    }
    let old = {
        let p = current();
        let mut limits = p.rlimits.lock();
        let old = limits[resource];
        if let Some([soft, hard]) = new {
            limits[resource] = (soft, hard);
        }
        old
    };
    if let Some([soft, _]) = new {
        apply_limit(resource, soft);
    }
    if !a.ptr(3).is_null() {
        a.ptr(3).write(&[old.0, old.1])?;
    }
    Ok(0)
}

pub fn getrlimit(a: &Args) -> KResult<u64> {
    let resource = a.u32(0) as usize;
    if resource >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    let l = current().rlimits.lock()[resource];
    a.ptr(1).write(&[l.0, l.1])?;
    Ok(0)
}

pub fn setrlimit(a: &Args) -> KResult<u64> {
    let resource = a.u32(0) as usize;
    if resource >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    let [soft, hard]: [u64; 2] = a.ptr(1).read()?;
    if soft > hard {
        return Err(Errno::EINVAL);
    }
    current().rlimits.lock()[resource] = (soft, hard);
    apply_limit(resource, soft);
    Ok(0)
}

pub fn getrandom(a: &Args) -> KResult<u64> {
    const GRND_NONBLOCK: u32 = 1;
    const GRND_RANDOM: u32 = 2;
    const GRND_INSECURE: u32 = 4;
    let flags = a.flags32(2, GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE)?;
    if flags & GRND_RANDOM != 0 && flags & GRND_INSECURE != 0 {
        return Err(Errno::EINVAL);
    }
    let len = a.usize(1).min(i32::MAX as usize);
    a.ptr(0).check(len)?;
    let entropy = crate::env::entropy();
    let mut buf = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len());
        entropy.fill(&mut buf[..n]);
        a.ptr(0).offset(done as u64).write_bytes(&buf[..n])?;
        done += n;
    }
    Ok(done as u64)
}

pub fn sched_getaffinity(a: &Args) -> KResult<u64> {
    check_pid(a.int(0))?;
    let len = a.usize(1);
    // The kernel's cpumask is one unsigned long for up to 64 CPUs.
    if len < 8 || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    a.ptr(2).write(&online_cpu_mask())?;
    Ok(8)
}

pub fn sched_setaffinity(a: &Args) -> KResult<u64> {
    check_pid(a.int(0))?;
    let len = a.usize(1).min(8);
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let mut mask = [0u8; 8];
    mask[..len].copy_from_slice(&a.ptr(2).read_bytes(len)?);
    // Every thread may run on every online CPU; a mask naming none of them is invalid,
    // as on Linux. With the CPUs Skiff runs on today, any valid mask is the full set.
    if u64::from_le_bytes(mask) & online_cpu_mask() == 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// The CPUs the scheduler runs threads on (`/proc/cpuinfo` and `sysconf` agree).
fn online_cpu_mask() -> u64 {
    1
}

pub fn sched_param(a: &Args) -> KResult<u64> {
    use crate::nr::*;
    check_pid(a.int(0))?;
    match a.nr {
        SCHED_GETSCHEDULER => Ok(0),
        SCHED_GETPARAM => {
            a.ptr(1).write(&0i32)?;
            Ok(0)
        }
        SCHED_SETSCHEDULER => {
            let param: i32 = a.ptr(2).read()?;
            if a.int(1) == 0 && param == 0 {
                Ok(0)
            } else {
                Err(Errno::EINVAL)
            }
        }
        _ => {
            let param: i32 = a.ptr(1).read()?;
            if param == 0 {
                Ok(0)
            } else {
                Err(Errno::EINVAL)
            }
        }
    }
}

pub fn getcpu(a: &Args) -> KResult<u64> {
    if !a.ptr(0).is_null() {
        a.ptr(0).write(&0u32)?;
    }
    if !a.ptr(1).is_null() {
        a.ptr(1).write(&0u32)?;
    }
    Ok(0)
}

pub fn sysinfo(a: &Args) -> KResult<u64> {
    let s = skiff_mm::frames::stats();
    let mut buf = [0u8; 112];
    let put =
        |buf: &mut [u8], off: usize, v: u64| buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut buf, 0, time::monotonic_ns() / 1_000_000_000);
    put(&mut buf, 32, s.total_frames * 4096);
    put(&mut buf, 40, s.free_frames * 4096);
    buf[80..82].copy_from_slice(&1u16.to_le_bytes()); // procs
    buf[104..108].copy_from_slice(&1u32.to_le_bytes()); // mem_unit
    a.ptr(0).write_bytes(&buf)?;
    Ok(0)
}

pub fn getrusage(a: &Args) -> KResult<u64> {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let who = a.int(0);
    let mut buf = [0u8; 144];
    match who {
        RUSAGE_SELF | RUSAGE_THREAD => {
            let ns = time::monotonic_ns();
            buf[0..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
            buf[8..16].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
            // ru_maxrss: all memory in use belongs to this one program (the kernel's
            // own share included), which bounds its resident set from above.
            let s = skiff_mm::frames::stats();
            let used_kb = (s.total_frames - s.free_frames) * 4;
            buf[32..40].copy_from_slice(&used_kb.to_le_bytes());
        }
        RUSAGE_CHILDREN => {}
        _ => return Err(Errno::EINVAL),
    }
    a.ptr(1).write_bytes(&buf)?;
    Ok(0)
}

pub fn times(a: &Args) -> KResult<u64> {
    let ticks = time::monotonic_ns() / 10_000_000;
    if !a.ptr(0).is_null() {
        a.ptr(0).write(&[ticks, 0u64, 0, 0])?;
    }
    Ok(ticks)
}

pub fn personality(a: &Args) -> KResult<u64> {
    match a.u32(0) {
        0xffff_ffff | 0 => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn prctl(a: &Args) -> KResult<u64> {
    const PR_SET_PDEATHSIG: u32 = 1;
    const PR_GET_PDEATHSIG: u32 = 2;
    const PR_GET_DUMPABLE: u32 = 3;
    const PR_SET_DUMPABLE: u32 = 4;
    const PR_SET_NAME: u32 = 15;
    const PR_GET_NAME: u32 = 16;
    const PR_GET_SECCOMP: u32 = 21;
    const PR_SET_NO_NEW_PRIVS: u32 = 38;
    const PR_GET_NO_NEW_PRIVS: u32 = 39;
    match a.u32(0) {
        PR_SET_PDEATHSIG => {
            if a.raw(1) > 64 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            a.ptr(1).write(&0i32)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE => {
            if a.raw(1) > 1 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        PR_SET_NAME => {
            let name = a.ptr(1).read_cstr(15).or_else(|e| {
                if e == Errno::ERANGE {
                    a.ptr(1).read_bytes(15)
                } else {
                    Err(e)
                }
            })?;
            let mut n = [0u8; 16];
            n[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
            *task_of(&current_thread()).name.lock() = Some(n);
            Ok(0)
        }
        PR_GET_NAME => {
            let n = task_of(&current_thread())
                .name
                .lock()
                .unwrap_or_else(default_thread_name);
            a.ptr(1).write_bytes(&n)?;
            Ok(0)
        }
        PR_GET_SECCOMP => Ok(0),
        PR_SET_NO_NEW_PRIVS => {
            // Once set it can never be cleared; nothing in Skiff grants privileges, so
            // the flag has nothing further to restrict.
            if a.raw(1) != 1 || a.raw(2) != 0 || a.raw(3) != 0 || a.raw(4) != 0 {
                return Err(Errno::EINVAL);
            }
            NO_NEW_PRIVS.store(true, core::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => Ok(NO_NEW_PRIVS.load(core::sync::atomic::Ordering::Relaxed) as u64),
        _ => Err(Errno::EINVAL),
    }
}

static NO_NEW_PRIVS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Linux's default thread name: the executable's basename cut to 15 bytes.
fn default_thread_name() -> [u8; 16] {
    let image = current().image();
    let base = image.file_name();
    let mut n = [0u8; 16];
    let len = base.len().min(15);
    n[..len].copy_from_slice(&base[..len]);
    n
}
