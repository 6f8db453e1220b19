//! The one system-call table: number → handler, and the single place where an error
//! becomes the negative errno the application sees.

use crate::args::Args;
use crate::nr::*;
use crate::thread as th;
use crate::{futex, sys_epoll as ep, sys_net as net, sys_signal as sig, sys_timer as tm};
use crate::{sys_fs as f, sys_mem as m, sys_poll as io, sys_proc as p, sys_time as t};
use crate::{sys_signalfd as sfd, sys_timerfd as tfd};
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch::entry::SyscallReturn;
use skiff_arch::TrapFrame;
use skiff_errno::{Errno, KResult};

/// Decode, run, encode; then, on the way back to the application, let another thread
/// run if this one's time slice ended, and deliver pending signals. Called by the
/// syscall entry stub with interrupts enabled; `fpu` is the caller's saved vector state.
pub fn dispatch(frame: &mut TrapFrame, fpu: &mut [u8]) -> SyscallReturn {
    let args = Args::from_frame(frame);
    let mut full = false;
    if args.nr == RT_SIGRETURN {
        // The whole frame comes back from the signal frame; nothing to encode.
        crate::signal::deliver::sigreturn(frame, fpu);
        full = true;
    } else if args.nr == EXECVE || args.nr == EXECVEAT {
        // Success replaces every register: the new program starts.
        let result = if args.nr == EXECVE {
            crate::sys_exec::execve(&args, frame, fpu)
        } else {
            crate::sys_exec::execveat(&args, frame, fpu)
        };
        match result {
            Ok(()) => full = true,
            Err(e) => frame.rax = e.as_syscall_return() as u64,
        }
    } else {
        let result = call(&args, frame, fpu);
        frame.rax = match result {
            Ok(v) => v,
            Err(e) => e.as_syscall_return() as u64,
        };
    }
    skiff_sched::preempt_point();
    // A restored frame is not a returning system call: nothing in it may be restarted.
    let returning = (args.nr != RT_SIGRETURN).then_some(args.nr);
    full |= crate::signal::deliver::deliver(frame, fpu, returning);
    if full {
        SyscallReturn::Full
    } else {
        SyscallReturn::Fast
    }
}

fn call(a: &Args, frame: &TrapFrame, fpu: &[u8]) -> KResult<u64> {
    match a.nr {
        READ => f::read(a),
        POLL => io::poll(a),
        PPOLL => io::ppoll(a),
        SELECT => io::select(a),
        PSELECT6 => io::pselect6(a),
        WRITE => f::write(a),
        OPEN => f::open(a),
        CLOSE => f::close(a),
        STAT => f::stat(a, false),
        FSTAT => f::fstat(a),
        LSTAT => f::stat(a, true),
        LSEEK => f::lseek(a),
        MMAP => m::mmap(a),
        MPROTECT => m::mprotect(a),
        MUNMAP => m::munmap(a),
        BRK => m::brk(a),
        RT_SIGACTION => sig::rt_sigaction(a),
        RT_SIGPROCMASK => sig::rt_sigprocmask(a),
        IOCTL => f::ioctl(a),
        PREAD64 => f::pread64(a),
        PWRITE64 => f::pwrite64(a),
        READV => f::readv(a),
        WRITEV => f::writev(a),
        ACCESS => f::access(a),
        SCHED_YIELD => {
            skiff_sched::yield_now();
            Ok(0)
        }
        MREMAP => m::mremap(a),
        MSYNC => m::msync(a),
        MINCORE => m::mincore(a),
        MADVISE => m::madvise(a),
        DUP => f::dup(a),
        DUP2 => f::dup2(a),
        NANOSLEEP => t::nanosleep(a),
        GETPID => Ok(crate::process::current().pid as u64),
        SENDFILE => f::sendfile(a),
        PAUSE => sig::pause(a),
        GETITIMER => tm::getitimer(a),
        ALARM => tm::alarm(a),
        SETITIMER => tm::setitimer(a),
        CLONE => th::clone(a, frame, fpu),
        FORK => crate::fork::fork(a, frame, fpu),
        VFORK => crate::fork::vfork(a, frame, fpu),
        WAIT4 => crate::sys_wait::wait4(a),
        WAITID => crate::sys_wait::waitid(a),
        EXIT => th::exit_thread(a),
        UNAME => p::uname(a),
        FCNTL => f::fcntl(a),
        FLOCK => f::flock(a),
        FSYNC | FDATASYNC => f::fsync(a),
        TRUNCATE => f::truncate(a),
        FTRUNCATE => f::ftruncate(a),
        GETDENTS64 => f::getdents64(a),
        GETCWD => f::getcwd(a),
        CHDIR => f::chdir(a),
        FCHDIR => f::fchdir(a),
        RENAME => f::rename(a),
        MKDIR => f::mkdir(a),
        RMDIR => f::rmdir(a),
        CREAT => f::creat(a),
        LINK => f::link(a),
        UNLINK => f::unlink(a),
        SYMLINK => f::symlink(a),
        READLINK => f::readlink(a),
        CHMOD => f::chmod(a),
        FCHMOD => f::fchmod(a),
        CHOWN => f::chown(a, true),
        FCHOWN => f::fchown(a),
        LCHOWN => f::chown(a, false),
        UMASK => p::umask(a),
        GETTIMEOFDAY => t::gettimeofday(a),
        GETRLIMIT => p::getrlimit(a),
        GETRUSAGE => p::getrusage(a),
        SYSINFO => p::sysinfo(a),
        TIMES => p::times(a),
        GETUID | GETGID | GETEUID | GETEGID => Ok(0),
        SETUID | SETGID => p::setid(a),
        GETPPID => Ok(crate::process::current().parent() as u64),
        GETPGRP => Ok(crate::process::current().pgid() as u64),
        SETSID => p::setsid(),
        GETRESUID | GETRESGID => p::getres(a),
        GETPGID => p::getpgid(a),
        GETSID => p::getsid(a),
        SETPGID => p::setpgid(a),
        GETGROUPS => Ok(0),
        SIGALTSTACK => sig::sigaltstack(a, frame.rsp),
        RT_SIGPENDING => sig::rt_sigpending(a),
        RT_SIGTIMEDWAIT => sig::rt_sigtimedwait(a),
        RT_SIGQUEUEINFO => sig::rt_sigqueueinfo(a),
        RT_SIGSUSPEND => sig::rt_sigsuspend(a),
        PERSONALITY => p::personality(a),
        STATFS => f::statfs(a),
        FSTATFS => f::fstatfs(a),
        GETPRIORITY => Ok(20),
        SETPRIORITY => Ok(0),
        SCHED_GETPARAM | SCHED_SETPARAM | SCHED_GETSCHEDULER | SCHED_SETSCHEDULER => {
            p::sched_param(a)
        }
        SCHED_GET_PRIORITY_MAX | SCHED_GET_PRIORITY_MIN => Ok(0),
        MLOCK | MUNLOCK | MLOCKALL | MUNLOCKALL => m::mlock(a),
        PRCTL => p::prctl(a),
        ARCH_PRCTL => p::arch_prctl(a),
        SETRLIMIT => p::setrlimit(a),
        SYNC => f::sync(a),
        SETTIMEOFDAY => t::settimeofday(a),
        SETHOSTNAME => p::sethostname(a),
        GETTID => th::gettid(),
        TKILL => sig::tkill(a),
        FUTEX => futex::futex(a),
        TIME => t::time(a),
        SCHED_SETAFFINITY => p::sched_setaffinity(a),
        SCHED_GETAFFINITY => p::sched_getaffinity(a),
        SET_TID_ADDRESS => th::set_tid_address(a),
        TIMER_CREATE => tm::timer_create(a),
        TIMER_SETTIME => tm::timer_settime(a),
        TIMER_GETTIME => tm::timer_gettime(a),
        TIMER_GETOVERRUN => tm::timer_getoverrun(a),
        TIMER_DELETE => tm::timer_delete(a),
        FADVISE64 => f::fadvise(a),
        CLOCK_SETTIME => t::clock_settime(a),
        CLOCK_GETTIME => t::clock_gettime(a),
        CLOCK_GETRES => t::clock_getres(a),
        CLOCK_NANOSLEEP => t::clock_nanosleep(a),
        EXIT_GROUP => th::exit_group(a),
        TGKILL => sig::tgkill(a),
        KILL => sig::kill(a),
        UTIMES => f::utimes(a),
        OPENAT => f::openat(a),
        OPENAT2 => f::openat2(a),
        MKDIRAT => f::mkdirat(a),
        FCHOWNAT => f::fchownat(a),
        NEWFSTATAT => f::newfstatat(a),
        UNLINKAT => f::unlinkat(a),
        RENAMEAT => f::renameat(a),
        LINKAT => f::linkat(a),
        SYMLINKAT => f::symlinkat(a),
        READLINKAT => f::readlinkat(a),
        FCHMODAT => f::fchmodat(a),
        FACCESSAT => f::faccessat(a, false),
        FACCESSAT2 => f::faccessat(a, true),
        SET_ROBUST_LIST => th::set_robust_list(a),
        GET_ROBUST_LIST => th::get_robust_list(a),
        RT_TGSIGQUEUEINFO => sig::rt_tgsigqueueinfo(a),
        UTIMENSAT => f::utimensat(a),
        FALLOCATE => f::fallocate(a),
        DUP3 => f::dup3(a),
        PREADV | PREADV2 => f::preadv(a),
        PWRITEV | PWRITEV2 => f::pwritev(a),
        PRLIMIT64 => p::prlimit64(a),
        SYNCFS => f::syncfs(a),
        SYNC_FILE_RANGE => f::sync_file_range(a),
        GETCPU => p::getcpu(a),
        RENAMEAT2 => f::renameat2(a),
        GETRANDOM => p::getrandom(a),
        STATX => f::statx(a),
        CLOSE_RANGE => f::close_range(a),
        PIPE | PIPE2 => f::pipe2(a),
        EPOLL_CREATE => ep::epoll_create(a),
        EPOLL_CREATE1 => ep::epoll_create1(a),
        EPOLL_CTL => ep::epoll_ctl(a),
        EPOLL_WAIT => ep::epoll_wait(a),
        EPOLL_PWAIT => ep::epoll_pwait(a),
        EPOLL_PWAIT2 => ep::epoll_pwait2(a),
        EVENTFD => ep::eventfd(a),
        EVENTFD2 => ep::eventfd2(a),
        SIGNALFD => sfd::signalfd(a),
        SIGNALFD4 => sfd::signalfd4(a),
        TIMERFD_CREATE => tfd::timerfd_create(a),
        TIMERFD_SETTIME => tfd::timerfd_settime(a),
        TIMERFD_GETTIME => tfd::timerfd_gettime(a),
        CLONE3 => th::clone3(a, frame, fpu),
        SOCKET => net::socket(a),
        SOCKETPAIR => net::socketpair(a),
        BIND => net::bind(a),
        LISTEN => net::listen(a),
        ACCEPT => net::accept(a),
        ACCEPT4 => net::accept4(a),
        CONNECT => net::connect(a),
        SHUTDOWN => net::shutdown(a),
        GETSOCKNAME => net::getsockname(a),
        GETPEERNAME => net::getpeername(a),
        SENDTO => net::sendto(a),
        RECVFROM => net::recvfrom(a),
        SENDMSG => net::sendmsg(a),
        RECVMSG => net::recvmsg(a),
        SENDMMSG => net::sendmmsg(a),
        RECVMMSG => net::recvmmsg(a),
        SETSOCKOPT => net::setsockopt(a),
        GETSOCKOPT => net::getsockopt(a),
        nr => unknown(nr),
    }
}

/// One bit per syscall number already reported as unimplemented.
static REPORTED: [AtomicU64; COUNT.div_ceil(64)] =
    [const { AtomicU64::new(0) }; COUNT.div_ceil(64)];

fn unknown(nr: u64) -> KResult<u64> {
    let idx = nr as usize;
    let first = idx < COUNT
        && REPORTED[idx / 64].fetch_or(1 << (idx % 64), Ordering::Relaxed) & (1 << (idx % 64)) == 0;
    if first || idx >= COUNT {
        skiff_console::warn!("unimplemented syscall {} ({}) returns ENOSYS", name(nr), nr);
    }
    Err(Errno::ENOSYS)
}
