//! `execve` and `execveat`: replace the calling process's program.
//!
//! Everything that can fail for a reason the caller should hear about happens first:
//! reading the arguments (`EFAULT`, `E2BIG`), finding the file (`ENOENT`, `EACCES`
//! for a directory, a non-regular file or one without an execute bit), following `#!`
//! lines to their interpreter (`ELOOP` past four), and parsing the ELF (`ENOEXEC`, also
//! for dynamically linked programs, which Skiff cannot run). Then comes the point of no
//! return, as on Linux: other threads leave, the old image goes, the new one is mapped
//! with a fresh stack, descriptors marked close-on-exec close, caught signals revert
//! to their defaults, the alternate signal stack and POSIX timers go, and the calling
//! thread starts the new program with clean registers. A failure after that point (out
//! of memory) kills the process with `SIGSEGV`, since nothing is left to return to.

use crate::args::{Args, UserPtr};
use crate::exec::{self, ExeSource, ProgramArgs, MAX_ARG_BYTES};
use crate::process::{self, current, current_thread, task_of, ProgramImage, SigAction};
use crate::signal::deliver::{SIG_DFL, SIG_IGN};
use crate::signal::frame::AltStack;
use crate::signal::state::SIGSEGV;
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_arch::layout::USER_END;
use skiff_arch::TrapFrame;
use skiff_errno::{Errno, KResult};
use skiff_fs::{FileType, OpenFile, OpenFlags};
use skiff_loader::{Executable, LoadError};
use skiff_mm::paging::UserPageTable;
use skiff_mm::usercopy;
use skiff_vm::{AddressSpace, PageOps};

const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
const AT_EMPTY_PATH: u32 = 0x1000;
/// Linux's `MAX_ARG_STRLEN`: the longest single argument or environment string.
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// Linux's `MAX_ARG_STRINGS`.
const MAX_ARG_STRINGS: usize = 0x7fff_ffff;
/// How much of a file Linux reads for its `#!` line (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;
/// How many `#!` interpreters may chain before `ELOOP` (Linux's binfmt depth).
const MAX_INTERPRETERS: usize = 4;

/// `execve(path, argv, envp)`.
pub fn execve(a: &Args, frame: &mut TrapFrame, fpu: &mut [u8]) -> KResult<()> {
    let path = a.path(0)?;
    let argv = read_strings(a.ptr(1))?;
    let envp = read_strings(a.ptr(2))?;
    run(AT_FDCWD, path, 0, argv, envp, frame, fpu)
}

/// `execveat(dirfd, path, argv, envp, flags)`.
pub fn execveat(a: &Args, frame: &mut TrapFrame, fpu: &mut [u8]) -> KResult<()> {
    let flags = a.u32(4);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = if flags & AT_EMPTY_PATH != 0 && !a.ptr(1).is_null() {
        usercopy::read_user_cstr(a.raw(1), 4095).map_err(|e| match e {
            Errno::ERANGE => Errno::ENAMETOOLONG,
            e => e,
        })?
    } else {
        a.path(1)?
    };
    let argv = read_strings(a.ptr(2))?;
    let envp = read_strings(a.ptr(3))?;
    run(a.int(0), path, flags, argv, envp, frame, fpu)
}

/// A NULL-terminated array of strings in application memory (a NULL array is empty,
/// as Linux accepts it).
fn read_strings(array: UserPtr) -> KResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if array.is_null() {
        return Ok(out);
    }
    let mut total = 0usize;
    for i in 0.. {
        if i >= MAX_ARG_STRINGS {
            return Err(Errno::E2BIG);
        }
        let ptr: u64 = UserPtr(array.0 + 8 * i as u64).read()?;
        if ptr == 0 {
            break;
        }
        let s = usercopy::read_user_cstr(ptr, MAX_ARG_STRLEN - 1).map_err(|e| match e {
            Errno::ERANGE => Errno::E2BIG,
            e => e,
        })?;
        total += s.len() + 1 + 8;
        if total > MAX_ARG_BYTES {
            return Err(Errno::E2BIG);
        }
        out.push(s);
    }
    Ok(out)
}

/// The file `path` names for `execve`, checked for being something one may execute.
fn open_executable(dirfd: i32, path: &[u8], flags: u32) -> KResult<Arc<OpenFile>> {
    let p = current();
    let file = if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        p.fs.fds.lock().get(dirfd)?
    } else {
        let base = p.fs.base_for(dirfd, path)?;
        let mut open = OpenFlags::O_RDONLY;
        if flags & AT_SYMLINK_NOFOLLOW != 0 {
            open |= OpenFlags::O_NOFOLLOW;
        }
        p.fs.vfs().open(&base, path, OpenFlags(open), 0)?
    };
    let st = file.stat()?;
    if st.file_type() != Some(FileType::Regular) || st.mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(file)
}

/// A `#!` line's interpreter and optional argument, if the file starts with one.
fn shebang(head: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let line = head.strip_prefix(b"#!")?;
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(end) => &line[..end],
        None => line,
    };
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !is_blank(b))?;
    let line = &line[start..];
    let end = line.iter().rposition(|b| !is_blank(b))? + 1;
    let line = &line[..end];
    let split = line.iter().position(is_blank);
    Some(match split {
        None => (line.to_vec(), None),
        Some(at) => {
            let rest = &line[at..];
            let arg_start = rest.iter().position(|b| !is_blank(b)).unwrap_or(0);
            (line[..at].to_vec(), Some(rest[arg_start..].to_vec()))
        }
    })
}

/// The ELF to run for `path`: `#!` interpreters followed, the final file parsed.
/// `argv` is rewritten as Linux rewrites it for scripts.
fn resolve(
    dirfd: i32,
    mut path: Vec<u8>,
    flags: u32,
    argv: &mut Vec<Vec<u8>>,
) -> KResult<(Arc<OpenFile>, Vec<u8>, Executable)> {
    let mut dirfd = dirfd;
    let mut flags = flags;
    for _ in 0..=MAX_INTERPRETERS {
        let file = open_executable(dirfd, &path, flags)?;
        let mut head = [0u8; SHEBANG_MAX];
        let n = file.pread(&mut head, 0)?;
        if let Some((interpreter, arg)) = shebang(&head[..n]) {
            // argv becomes: interpreter [arg] path argv[1..].
            let mut new = Vec::with_capacity(argv.len() + 2);
            new.push(interpreter.clone());
            if let Some(arg) = arg {
                new.push(arg);
            }
            new.push(path.clone());
            new.extend(argv.drain(..).skip(1));
            *argv = new;
            path = interpreter;
            dirfd = AT_FDCWD;
            flags = 0;
            continue;
        }
        let image = exec::read_whole(&file)?;
        let exe = match skiff_loader::parse(&image) {
            Ok(exe) => exe,
            Err(LoadError::DynamicallyLinked { interpreter }) => {
                skiff_console::warn!(
                    "execve {}: dynamically linked (needs {}); Skiff runs static programs",
                    alloc::string::String::from_utf8_lossy(&path),
                    interpreter
                );
                return Err(Errno::ENOEXEC);
            }
            Err(e) => return Err(e.errno()),
        };
        return Ok((file, path, exe));
    }
    Err(Errno::ELOOP)
}

fn run(
    dirfd: i32,
    path: Vec<u8>,
    flags: u32,
    mut argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    frame: &mut TrapFrame,
    fpu: &mut [u8],
) -> KResult<()> {
    let (file, _, exe) = resolve(dirfd, path, flags, &mut argv)?;
    // `/proc/self/exe` and AT_EXECFN name the file absolutely, as Linux's d_path does
    // (glibc's static start-up asserts it), whatever path reached it.
    let exe_path = file.path();
    let p = current();
    let me = current_thread();

    // The point of no return.
    leave_alone(&p, me.tid());
    let task = task_of(&me);
    crate::thread::release_thread_futexes(task);
    let source = ExeSource::for_file(&file, &exe_path);
    let args = ProgramArgs {
        exe_path: &exe_path,
        argv: &argv,
        envp: &envp,
    };
    let stack_limit = p.rlimits.lock()[3].0;
    let loaded = {
        let mut aspace = p.aspace.lock();
        let mut pt = UserPageTable::current();
        if let Err(e) = aspace.sync_all(&mut pt) {
            skiff_console::warn!("execve: writing back shared file mappings failed: {}", e);
        }
        pt.unmap_range(0, USER_END);
        *aspace = AddressSpace::new(exec::user_layout());
        aspace.set_stack_limit(stack_limit);
        exec::load_image(&mut aspace, &mut pt, &exe, &source, &file).and_then(|loaded| {
            exec::prepare_stack(&mut aspace, &mut pt, &exe, loaded.bias, &args)
                .map(|stack| (loaded, stack))
        })
    };
    let (loaded, stack) = match loaded {
        Ok(v) => v,
        Err(e) => crate::fault::terminate(
            None,
            SIGSEGV as u8,
            format_args!(
                "execve {}: the new program could not be loaded ({}) after the old one was gone",
                alloc::string::String::from_utf8_lossy(&exe_path),
                e
            ),
        ),
    };
    if let Err(e) = usercopy::copy_to_user(stack.base, &stack.bytes) {
        crate::fault::terminate(
            None,
            SIGSEGV as u8,
            format_args!("execve: cannot write the new stack ({})", e),
        );
    }

    let closed = p.fs.fds.lock().close_on_exec();
    drop(closed);
    {
        // Caught signals revert to their defaults; ignored ones stay ignored.
        let mut acts = p.sigactions.lock();
        for act in acts.iter_mut() {
            if act.handler != SIG_IGN {
                *act = SigAction {
                    handler: SIG_DFL,
                    ..SigAction::default()
                };
            }
        }
    }
    *task.altstack.lock() = AltStack::disabled();
    *task.name.lock() = None;
    *task.saved_mask.lock() = None;
    crate::sys_timer::delete_posix_timers(&p);
    p.set_image(ProgramImage {
        exe_path,
        argv,
        envp,
    });
    process::CHILD_EVENTS.wake_all();

    skiff_arch::cpu::set_fs_base(0);
    *frame = TrapFrame {
        rip: loaded.entry,
        rsp: stack.rsp,
        cs: frame.cs,
        ss: frame.ss,
        rflags: 0x202,
        ..TrapFrame::default()
    };
    skiff_arch::fpu::write_init_state(fpu);
    Ok(())
}

/// Make `survivor` the only thread of `p`: the others leave at their next return
/// towards the application (`signal::deliver` sends them away), and this waits.
fn leave_alone(p: &process::Process, survivor: u32) {
    if p.thread_count() <= 1 {
        return;
    }
    p.set_exec_survivor(survivor);
    for t in p.threads.lock().values() {
        if t.tid() != survivor {
            skiff_sched::interrupt(t);
        }
    }
    let _ = process::CHILD_EVENTS.wait_until(None, false, || p.thread_count() <= 1);
    p.set_exec_survivor(0);
}

#[cfg(test)]
mod tests {
    use super::shebang;

    #[test]
    fn shebang_lines_split_like_linux() {
        assert_eq!(
            shebang(b"#!/bin/sh\necho"),
            Some((b"/bin/sh".to_vec(), None))
        );
        assert_eq!(
            shebang(b"#! /usr/bin/env  python3 -u \n"),
            Some((b"/usr/bin/env".to_vec(), Some(b"python3 -u".to_vec())))
        );
        assert_eq!(
            shebang(b"#!/bin/busybox sh"),
            Some((b"/bin/busybox".to_vec(), Some(b"sh".to_vec())))
        );
        assert_eq!(shebang(b"#!   \n"), None);
        assert_eq!(shebang(b"\x7fELF"), None);
    }
}
