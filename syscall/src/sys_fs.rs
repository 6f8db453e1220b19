//! File and directory system calls: decode, call `skiff-fs`, encode.

use crate::args::{read_iovecs, Args, DirFd, IoVec, UserPtr, AT_FDCWD};
use crate::process::current;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};
use skiff_fs::{
    device::ioctl_input_len, FileType, IoctlOut, Location, OpenFile, OpenFlags, SetAttr, Timespec,
    AT_EACCESS, AT_SYMLINK_NOFOLLOW,
};

/// Largest chunk moved between application memory and a file in one step.
const CHUNK: usize = 1 << 20;
/// Largest chunk read from a stream (console, pipe, device) in one step.
const STREAM_CHUNK: usize = skiff_fs::pipe::PIPE_CAPACITY;
const AT_EMPTY_PATH: u32 = 0x1000;
const AT_REMOVEDIR: u32 = 0x200;
const AT_SYMLINK_FOLLOW: u32 = 0x400;
const AT_NO_AUTOMOUNT: u32 = 0x800;
const AT_STATX_SYNC_TYPE: u32 = 0x6000;

fn file(fd: i32) -> KResult<Arc<OpenFile>> {
    current().fs.fds.lock().get(fd)
}

fn dirfd_raw(d: DirFd) -> i32 {
    match d {
        DirFd::Cwd => AT_FDCWD,
        DirFd::Fd(fd) => fd,
    }
}

/// Resolve the base directory for a `*at` call.
fn base(d: DirFd, path: &[u8]) -> KResult<Location> {
    current().fs.base_for(dirfd_raw(d), path)
}

fn is_regular(f: &OpenFile) -> bool {
    f.stat()
        .map(|s| s.file_type() == Some(FileType::Regular))
        .unwrap_or(false)
}

/// Run `op`, waiting while it would block on a descriptor that is not `O_NONBLOCK`:
/// the thread parks until the file is ready for reading (or writing, when `writing`),
/// then retries. A signal ends the wait; the call restarts or fails with `EINTR` per
/// the handler's `SA_RESTART`.
fn blocking<T>(f: &OpenFile, writing: bool, mut op: impl FnMut() -> KResult<T>) -> KResult<T> {
    loop {
        match op() {
            Err(Errno::EAGAIN) if f.status_flags() & OpenFlags::O_NONBLOCK == 0 => {
                crate::wait::wait_io(None, Errno::ERESTARTSYS, || {
                    let (r, w) = f.poll_ready();
                    if writing {
                        w
                    } else {
                        r
                    }
                })?;
            }
            r => {
                if r.is_ok() && !is_regular(f) {
                    // A pipe's other end may be waiting for this.
                    crate::wait::io_event();
                }
                return r;
            }
        }
    }
}

/// A write that found no reader raises `SIGPIPE` (which ends the program unless it is
/// ignored or blocked) and reports `EPIPE`.
fn check_broken_pipe<T>(r: KResult<T>) -> KResult<T> {
    if r.as_ref().err() == Some(&Errno::EPIPE) {
        crate::sys_signal::raise_sigpipe();
    }
    r
}

/// Read from `f` into application memory at `buf`, up to `count` bytes.
fn read_to_user(f: &OpenFile, buf: UserPtr, count: usize, offset: Option<i64>) -> KResult<u64> {
    buf.check(count)?;
    let regular = is_regular(f);
    // A console or pipe read returns at most what is queued (a pipe holds 64 KiB), so a
    // large application buffer need not cost a large zeroed kernel buffer per call.
    let chunk = if regular { CHUNK } else { STREAM_CHUNK };
    let mut done = 0usize;
    let mut kbuf = vec![0u8; count.min(chunk)];
    while done < count {
        let want = (count - done).min(chunk);
        let n = match offset {
            Some(off) => f.pread(&mut kbuf[..want], off + done as i64),
            None if done == 0 => blocking(f, false, || f.read(&mut kbuf[..want])),
            None => {
                let r = f.read(&mut kbuf[..want]);
                if r.is_ok() && !regular {
                    crate::wait::io_event();
                }
                r
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        buf.offset(done as u64).write_bytes(&kbuf[..n])?;
        done += n;
        // Only regular files promise more data right away; a console or device read
        // returns what is there.
        if n < want || !regular {
            break;
        }
    }
    Ok(done as u64)
}

/// Write application memory at `buf` (`count` bytes) to `f`.
fn write_from_user(f: &OpenFile, buf: UserPtr, count: usize, offset: Option<i64>) -> KResult<u64> {
    buf.check(count)?;
    let mut done = 0usize;
    let mut kbuf = vec![0u8; count.min(CHUNK)];
    while done < count || count == 0 {
        let want = (count - done).min(CHUNK);
        if let Err(e) = buf.offset(done as u64).read_into(&mut kbuf[..want]) {
            if done == 0 {
                return Err(e);
            }
            break;
        }
        let n = match offset {
            Some(off) => f.pwrite(&kbuf[..want], off + done as i64),
            None => blocking(f, true, || f.write(&kbuf[..want])),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) if done == 0 => return check_broken_pipe(Err(e)),
            Err(_) => break,
        };
        done += n;
        if n < want || count == 0 {
            break;
        }
    }
    Ok(done as u64)
}

/// The one iovec of a plain `read`/`write`, for the socket path.
fn single_iovec(a: &Args) -> [IoVec; 1] {
    [IoVec {
        base: a.ptr(1).addr(),
        len: a.usize(2) as u64,
    }]
}

pub fn read(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    if f.socket().is_some() {
        return crate::sys_net::read_socket(&f, &single_iovec(a));
    }
    read_to_user(&f, a.ptr(1), a.usize(2), None)
}

pub fn write(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    if f.socket().is_some() {
        return crate::sys_net::write_socket(&f, &single_iovec(a));
    }
    write_from_user(&f, a.ptr(1), a.usize(2), None)
}

fn offset_arg(a: &Args, i: usize) -> KResult<i64> {
    let off = a.i64(i);
    if off < 0 {
        Err(Errno::EINVAL)
    } else {
        Ok(off)
    }
}

pub fn pread64(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    let off = offset_arg(a, 3)?;
    read_to_user(&f, a.ptr(1), a.usize(2), Some(off))
}

pub fn pwrite64(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    let off = offset_arg(a, 3)?;
    write_from_user(&f, a.ptr(1), a.usize(2), Some(off))
}

fn vectored(a: &Args, write: bool, offset: Option<i64>) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    let iovs = read_iovecs(a.ptr(1), a.usize(2))?;
    if f.socket().is_some() {
        // One message for all the vectors (a datagram must not be split), and socket
        // semantics (timeouts, SIGPIPE); sockets have no offsets.
        if offset.is_some() {
            return Err(Errno::ESPIPE);
        }
        return if write {
            crate::sys_net::write_socket(&f, &iovs)
        } else {
            crate::sys_net::read_socket(&f, &iovs)
        };
    }
    let mut total = 0u64;
    for iov in iovs {
        if iov.len == 0 {
            continue;
        }
        let off = offset.map(|o| o + total as i64);
        let r = if write {
            write_from_user(&f, UserPtr(iov.base), iov.len as usize, off)
        } else {
            read_to_user(&f, UserPtr(iov.base), iov.len as usize, off)
        };
        match r {
            Ok(n) => {
                total += n;
                if n < iov.len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

pub fn readv(a: &Args) -> KResult<u64> {
    vectored(a, false, None)
}

pub fn writev(a: &Args) -> KResult<u64> {
    vectored(a, true, None)
}

/// preadv/preadv2: the offset arrives split in two registers (low, high); -1 with the
/// v2 calls means "current position".
fn vector_offset(a: &Args) -> KResult<Option<i64>> {
    let off = (a.raw(3) | (a.raw(4) << 32)) as i64;
    if a.nr == crate::nr::PREADV2 || a.nr == crate::nr::PWRITEV2 {
        if a.raw(5) != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if off == -1 {
            return Ok(None);
        }
    }
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(off))
}

pub fn preadv(a: &Args) -> KResult<u64> {
    let off = vector_offset(a)?;
    vectored(a, false, off)
}

pub fn pwritev(a: &Args) -> KResult<u64> {
    let off = vector_offset(a)?;
    vectored(a, true, off)
}

pub fn lseek(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    f.seek(a.i64(1), a.u32(2))
}

pub fn sendfile(a: &Args) -> KResult<u64> {
    let out = file(a.fd(0)?)?;
    let inp = file(a.fd(1)?)?;
    let off_ptr = a.ptr(2);
    let count = a.usize(3);
    let mut offset: Option<i64> = if off_ptr.is_null() {
        None
    } else {
        Some(off_ptr.read::<i64>()?)
    };
    if offset.is_some_and(|o| o < 0) {
        return Err(Errno::EINVAL);
    }
    // A socket or pipe takes at most what fits in its buffer per write, and what it
    // does not take was read for nothing: move streams in smaller pieces.
    let chunk = if is_regular(&out) {
        CHUNK
    } else {
        STREAM_CHUNK
    };
    let mut buf = vec![0u8; count.min(chunk)];
    let mut done = 0usize;
    while done < count {
        let want = (count - done).min(chunk);
        let n = match offset {
            Some(o) => inp.pread(&mut buf[..want], o)?,
            None => blocking(&inp, false, || inp.read(&mut buf[..want]))?,
        };
        if n == 0 {
            break;
        }
        let mut w = 0;
        while w < n {
            match check_broken_pipe(blocking(&out, true, || out.write(&buf[w..n]))) {
                Ok(k) => w += k,
                Err(e) if done + w == 0 => return Err(e),
                Err(_) => break,
            }
        }
        done += w;
        if let Some(o) = offset.as_mut() {
            *o += w as i64;
        }
        if w < n || n < want {
            break;
        }
    }
    if let Some(o) = offset {
        off_ptr.write(&o)?;
    }
    Ok(done as u64)
}

/// Every flag `open` knows. Linux drops unknown bits for open/openat (only openat2
/// rejects them), and so do we.
const OPEN_KNOWN: u32 = 0o37777777;

fn open_common(d: DirFd, path: &[u8], flags: u32, mode: u32) -> KResult<u64> {
    let fd = current().fs.open(
        dirfd_raw(d),
        path,
        OpenFlags(flags & OPEN_KNOWN),
        mode & 0o7777,
    )?;
    Ok(fd as u64)
}

pub fn open(a: &Args) -> KResult<u64> {
    let path = a.path(0)?;
    open_common(DirFd::Cwd, &path, a.u32(1), a.u32(2))
}

pub fn openat(a: &Args) -> KResult<u64> {
    let path = a.path(1)?;
    open_common(a.dirfd(0), &path, a.u32(2), a.u32(3))
}

/// `openat2(2)`: the `open_how` struct is versioned by size; unknown flag bits, a
/// mode without `O_CREAT`/`O_TMPFILE` and non-zero bytes past the fields we know are
/// refused, as Linux does (unlike `openat`, which ignores unknown bits).
pub fn openat2(a: &Args) -> KResult<u64> {
    const OPEN_HOW_SIZE_VER0: usize = 24;
    const VALID_OPEN_FLAGS: u64 = 0o37777703;
    const O_PATH_FLAGS: u64 =
        (OpenFlags::O_DIRECTORY | OpenFlags::O_NOFOLLOW | OpenFlags::O_PATH | OpenFlags::O_CLOEXEC)
            as u64;
    let path = a.path(1)?;
    let size = a.raw(3) as usize;
    if size < OPEN_HOW_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let how = a.ptr(2).read_bytes(size)?;
    if how[OPEN_HOW_SIZE_VER0..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let word = |i: usize| u64::from_le_bytes(how[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (flags, mode, resolve) = (word(0), word(1), word(2));
    if flags & !VALID_OPEN_FLAGS != 0 || mode & !0o7777 != 0 {
        return Err(Errno::EINVAL);
    }
    let creates = flags & OpenFlags::O_CREAT as u64 != 0
        || flags & OpenFlags::O_TMPFILE as u64 == OpenFlags::O_TMPFILE as u64;
    if mode != 0 && !creates {
        return Err(Errno::EINVAL);
    }
    if flags & OpenFlags::O_PATH as u64 != 0 && flags & !O_PATH_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let fd = current().fs.open_resolve(
        dirfd_raw(a.dirfd(0)),
        &path,
        OpenFlags(flags as u32),
        mode as u32,
        resolve,
    )?;
    Ok(fd as u64)
}

pub fn creat(a: &Args) -> KResult<u64> {
    let path = a.path(0)?;
    let flags = OpenFlags::O_CREAT | OpenFlags::O_WRONLY | OpenFlags::O_TRUNC;
    open_common(DirFd::Cwd, &path, flags, a.u32(1))
}

pub fn close(a: &Args) -> KResult<u64> {
    let f = current().fs.fds.lock().close(a.fd(0)?)?;
    drop(f);
    // Closing a pipe end wakes the other end (end of file, or EPIPE).
    crate::wait::io_event();
    Ok(0)
}

pub fn close_range(a: &Args) -> KResult<u64> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    const CLOSE_RANGE_UNSHARE: u32 = 1 << 1;
    let (first, last) = (a.u32(0), a.u32(1));
    let flags = a.flags32(2, CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)?;
    if first > last {
        return Err(Errno::EINVAL);
    }
    let fs = &current().fs;
    let fds: Vec<i32> = fs
        .open_fds()
        .into_iter()
        .filter(|&fd| fd as u32 >= first && fd as u32 <= last)
        .collect();
    let mut closed = Vec::new();
    {
        let mut table = fs.fds.lock();
        for fd in fds {
            if flags & CLOSE_RANGE_CLOEXEC != 0 {
                table.set_cloexec(fd, true)?;
            } else if let Ok(f) = table.close(fd) {
                closed.push(f);
            }
        }
    }
    drop(closed);
    crate::wait::io_event();
    Ok(0)
}

pub fn dup(a: &Args) -> KResult<u64> {
    Ok(current().fs.fds.lock().dup(a.fd(0)?)? as u64)
}

pub fn dup2(a: &Args) -> KResult<u64> {
    let (fd, old) = current().fs.fds.lock().dup2(a.int(0), a.int(1))?;
    drop(old);
    crate::wait::io_event();
    Ok(fd as u64)
}

pub fn dup3(a: &Args) -> KResult<u64> {
    let (fd, old) = current().fs.fds.lock().dup3(a.int(0), a.int(1), a.u32(2))?;
    drop(old);
    crate::wait::io_event();
    Ok(fd as u64)
}

const F_GETLK: u32 = 5;
const F_SETLK: u32 = 6;
const F_SETLKW: u32 = 7;
const F_SETOWN: u32 = 8;
const F_GETOWN: u32 = 9;
const F_OFD_GETLK: u32 = 36;
const F_OFD_SETLK: u32 = 37;
const F_OFD_SETLKW: u32 = 38;

pub fn fcntl(a: &Args) -> KResult<u64> {
    use skiff_fs::lock::{Flock, RecordFamily};
    let fd = a.fd(0)?;
    let cmd = a.u32(1);
    match cmd {
        F_GETLK | F_OFD_GETLK | F_SETLK | F_SETLKW | F_OFD_SETLK | F_OFD_SETLKW => {
            let f = lockable(fd)?;
            let p = a.ptr(2);
            let mut raw = [0u8; Flock::SIZE];
            p.read_into(&mut raw)?;
            let mut fl = Flock::from_bytes(&raw);
            let family = match cmd {
                F_GETLK | F_SETLK | F_SETLKW => RecordFamily::Posix,
                _ => RecordFamily::Ofd,
            };
            if matches!(cmd, F_GETLK | F_OFD_GETLK) {
                let pid = crate::process::current().pid as i32;
                skiff_fs::lock::get_record_lock(&f, family, &mut fl, pid)?;
                p.write_bytes(&fl.to_bytes())?;
                return Ok(0);
            }
            wait_for_lock(
                matches!(cmd, F_SETLKW | F_OFD_SETLKW),
                || skiff_fs::lock::set_record_lock(&f, family, &fl),
                || skiff_fs::lock::record_lock_free(&f, family, &fl),
            )
        }
        F_GETOWN => {
            file(fd)?;
            Ok(0)
        }
        F_SETOWN => {
            file(fd)?;
            Ok(0)
        }
        _ => Ok(current().fs.fds.lock().fcntl(fd, cmd, a.raw(2))? as u64),
    }
}

/// The file behind `fd` for a lock call: `O_PATH` descriptors cannot lock (`EBADF`).
fn lockable(fd: i32) -> KResult<Arc<OpenFile>> {
    let f = file(fd)?;
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    Ok(f)
}

/// Runs a lock `attempt`; when it conflicts (`EAGAIN`) and the caller may `block`,
/// sleeps until `free()` says a retry may succeed (or a signal arrives: `EINTR`, or a
/// restart under `SA_RESTART`). Waiters are woken through the I/O wait queue by every
/// unlock and close.
fn wait_for_lock(
    block: bool,
    mut attempt: impl FnMut() -> KResult<()>,
    mut free: impl FnMut() -> bool,
) -> KResult<u64> {
    loop {
        match attempt() {
            Err(Errno::EAGAIN) if block => {
                crate::wait::wait_io(None, Errno::ERESTARTSYS, &mut free)?;
            }
            result => {
                // An unlock (or a conversion) may let a waiter in.
                crate::wait::io_event();
                return result.map(|()| 0);
            }
        }
    }
}

/// `flock(2)`: locks of the open file description (see `skiff_fs::lock`).
pub fn flock(a: &Args) -> KResult<u64> {
    use skiff_fs::lock::LOCK_NB;
    let f = lockable(a.fd(0)?)?;
    let operation = a.u32(1);
    wait_for_lock(
        operation & LOCK_NB == 0,
        || skiff_fs::lock::flock(&f, operation),
        || skiff_fs::lock::flock_free(&f, operation),
    )
}

/// `fsync` and `fdatasync`: on a volume the data (and for `fsync` the metadata) is on
/// the disk when this returns; memory-backed files have nothing to write.
pub fn fsync(a: &Args) -> KResult<u64> {
    use crate::nr::FDATASYNC;
    file(a.fd(0)?)?.sync(a.nr == FDATASYNC)?;
    Ok(0)
}

/// `syncfs`: the filesystem holding the descriptor's file reaches stable storage. Files
/// outside the tree (pipes, sockets, eventfds) live on pseudo filesystems with nothing
/// to write, as on Linux; `O_PATH` descriptors are `EBADF`.
pub fn syncfs(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    if let Some(loc) = f.location() {
        loc.mount().fs().sync()?;
    }
    Ok(0)
}

/// `sync`: every mounted filesystem reaches stable storage (errors are not reported,
/// as on Linux).
pub fn sync(_a: &Args) -> KResult<u64> {
    let _ = current().fs.vfs().sync_all();
    Ok(0)
}

/// `sync_file_range`: without a page cache of our own the only honest way to meet any
/// of its requests is to write the file's data out.
pub fn sync_file_range(a: &Args) -> KResult<u64> {
    const KNOWN: u32 = 1 | 2 | 4;
    let f = file(a.fd(0)?)?;
    let (offset, nbytes) = (a.i64(1), a.i64(2));
    let flags = a.flags32(3, KNOWN)?;
    if offset < 0 || nbytes < 0 || offset.checked_add(nbytes).is_none() {
        return Err(Errno::EINVAL);
    }
    if !is_regular(&f) && f.stat()?.file_type() != Some(FileType::Directory) {
        return Err(Errno::ESPIPE);
    }
    if flags != 0 {
        f.sync(true)?;
    }
    Ok(0)
}

pub fn fadvise(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    if a.u32(3) > 5 {
        return Err(Errno::EINVAL);
    }
    if !is_regular(&f) && f.stat()?.file_type() == Some(FileType::Fifo) {
        return Err(Errno::ESPIPE);
    }
    Ok(0)
}

pub fn fallocate(a: &Args) -> KResult<u64> {
    const FALLOC_FL_KEEP_SIZE: u32 = 1;
    let f = file(a.fd(0)?)?;
    let mode = a.u32(1);
    let (off, len) = (a.i64(2), a.i64(3));
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    if !f.is_writable() {
        return Err(Errno::EBADF);
    }
    if !is_regular(&f) {
        return Err(Errno::ENODEV);
    }
    let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
    match mode {
        0 => {
            if end as u64 > f.stat()?.size {
                f.truncate(end)?;
            }
            Ok(0)
        }
        FALLOC_FL_KEEP_SIZE => {
            f.inode().ok_or(Errno::EBADF)?.reserve(end as u64)?;
            Ok(0)
        }
        _ => Err(Errno::EOPNOTSUPP),
    }
}

pub fn ftruncate(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    let len = a.i64(1);
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    f.truncate(len)?;
    Ok(0)
}

pub fn truncate(a: &Args) -> KResult<u64> {
    let path = a.path(0)?;
    let len = a.i64(1);
    let fs = &current().fs;
    fs.vfs().truncate(&fs.cwd(), &path, len)?;
    Ok(0)
}

pub fn getdents64(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    let count = a.usize(2).min(CHUNK);
    a.ptr(1).check(count)?;
    let mut buf = vec![0u8; count];
    let n = f.getdents64(&mut buf)?;
    a.ptr(1).write_bytes(&buf[..n])?;
    Ok(n as u64)
}

pub fn getcwd(a: &Args) -> KResult<u64> {
    let path = current().fs.getcwd()?;
    let size = a.usize(1);
    if size == 0 && !a.ptr(0).is_null() {
        return Err(Errno::EINVAL);
    }
    if path.len() + 1 > size {
        return Err(Errno::ERANGE);
    }
    let mut out = path;
    out.push(0);
    a.ptr(0).write_bytes(&out)?;
    Ok(out.len() as u64)
}

pub fn chdir(a: &Args) -> KResult<u64> {
    let path = a.path(0)?;
    current().fs.chdir(&path)?;
    Ok(0)
}

pub fn fchdir(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    let loc = f.location().cloned().ok_or(Errno::ENOTDIR)?;
    current().fs.set_cwd(loc)?;
    Ok(0)
}

pub fn mkdir(a: &Args) -> KResult<u64> {
    let path = a.path(0)?;
    current().fs.mkdir(AT_FDCWD, &path, a.u32(1))?;
    Ok(0)
}

pub fn mkdirat(a: &Args) -> KResult<u64> {
    let path = a.path(1)?;
    current().fs.mkdir(dirfd_raw(a.dirfd(0)), &path, a.u32(2))?;
    Ok(0)
}

fn unlink_common(d: DirFd, path: &[u8], remove_dir: bool) -> KResult<u64> {
    let b = base(d, path)?;
    current().fs.vfs().unlink(&b, path, remove_dir)?;
    Ok(0)
}

pub fn unlink(a: &Args) -> KResult<u64> {
    unlink_common(DirFd::Cwd, &a.path(0)?, false)
}

pub fn rmdir(a: &Args) -> KResult<u64> {
    unlink_common(DirFd::Cwd, &a.path(0)?, true)
}

pub fn unlinkat(a: &Args) -> KResult<u64> {
    let flags = a.flags32(2, AT_REMOVEDIR)?;
    unlink_common(a.dirfd(0), &a.path(1)?, flags & AT_REMOVEDIR != 0)
}

fn rename_common(od: DirFd, op: &[u8], nd: DirFd, np: &[u8], flags: u32) -> KResult<u64> {
    let ob = base(od, op)?;
    let nb = base(nd, np)?;
    current().fs.vfs().rename(&ob, op, &nb, np, flags)?;
    Ok(0)
}

pub fn rename(a: &Args) -> KResult<u64> {
    rename_common(DirFd::Cwd, &a.path(0)?, DirFd::Cwd, &a.path(1)?, 0)
}

pub fn renameat(a: &Args) -> KResult<u64> {
    rename_common(a.dirfd(0), &a.path(1)?, a.dirfd(2), &a.path(3)?, 0)
}

pub fn renameat2(a: &Args) -> KResult<u64> {
    rename_common(a.dirfd(0), &a.path(1)?, a.dirfd(2), &a.path(3)?, a.u32(4))
}

fn link_common(od: DirFd, op: &[u8], nd: DirFd, np: &[u8], flags: u32) -> KResult<u64> {
    let flags_known = AT_SYMLINK_FOLLOW | AT_EMPTY_PATH;
    if flags & !flags_known != 0 {
        return Err(Errno::EINVAL);
    }
    let fs = &current().fs;
    let nb = base(nd, np)?;
    if op.is_empty() && flags & AT_EMPTY_PATH != 0 {
        let f = fs.fds.lock().get(dirfd_raw(od))?;
        let loc = f.location().cloned().ok_or(Errno::ENOENT)?;
        fs.vfs().link_location(&loc, &nb, np)?;
        return Ok(0);
    }
    let ob = base(od, op)?;
    fs.vfs()
        .link(&ob, op, &nb, np, flags & AT_SYMLINK_FOLLOW != 0)?;
    Ok(0)
}

pub fn link(a: &Args) -> KResult<u64> {
    link_common(DirFd::Cwd, &a.path(0)?, DirFd::Cwd, &a.path(1)?, 0)
}

pub fn linkat(a: &Args) -> KResult<u64> {
    link_common(a.dirfd(0), &a.path(1)?, a.dirfd(2), &a.path(3)?, a.u32(4))
}

fn symlink_common(target: &[u8], d: DirFd, path: &[u8]) -> KResult<u64> {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let b = base(d, path)?;
    current().fs.vfs().symlink(target, &b, path)?;
    Ok(0)
}

pub fn symlink(a: &Args) -> KResult<u64> {
    symlink_common(&a.path(0)?, DirFd::Cwd, &a.path(1)?)
}

pub fn symlinkat(a: &Args) -> KResult<u64> {
    symlink_common(&a.path(0)?, a.dirfd(1), &a.path(2)?)
}

fn readlink_common(d: DirFd, path: &[u8], buf: UserPtr, size: usize) -> KResult<u64> {
    if size as i64 <= 0 {
        return Err(Errno::EINVAL);
    }
    let b = base(d, path)?;
    let target = current().fs.vfs().readlink(&b, path)?;
    let n = target.len().min(size);
    buf.write_bytes(&target[..n])?;
    Ok(n as u64)
}

pub fn readlink(a: &Args) -> KResult<u64> {
    readlink_common(DirFd::Cwd, &a.path(0)?, a.ptr(1), a.usize(2))
}

pub fn readlinkat(a: &Args) -> KResult<u64> {
    readlink_common(a.dirfd(0), &a.path(1)?, a.ptr(2), a.usize(3))
}

fn access_common(d: DirFd, path: &[u8], mode: u32, flags: u32) -> KResult<u64> {
    if mode & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let b = base(d, path)?;
    current().fs.vfs().access(&b, path, mode, flags)?;
    Ok(0)
}

pub fn access(a: &Args) -> KResult<u64> {
    access_common(DirFd::Cwd, &a.path(0)?, a.u32(1), 0)
}

pub fn faccessat(a: &Args, with_flags: bool) -> KResult<u64> {
    let flags = if with_flags {
        a.flags32(3, AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)?
    } else {
        0
    };
    let path = a.path(1)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        let f = file(a.fd(0)?)?;
        drop(f);
        return Ok(0);
    }
    access_common(a.dirfd(0), &path, a.u32(2), flags)
}

/// The file an `*at` call with `AT_EMPTY_PATH` and an empty path refers to.
fn empty_path_file(d: DirFd) -> KResult<skiff_fs::Stat> {
    match d {
        DirFd::Cwd => current().fs.cwd().stat(),
        DirFd::Fd(fd) => file(fd)?.stat(),
    }
}

fn stat_common(d: DirFd, path: &[u8], flags: u32) -> KResult<skiff_fs::Stat> {
    if path.is_empty() {
        if flags & AT_EMPTY_PATH != 0 {
            return empty_path_file(d);
        }
        return Err(Errno::ENOENT);
    }
    let b = base(d, path)?;
    current()
        .fs
        .vfs()
        .stat(&b, path, flags & AT_SYMLINK_NOFOLLOW == 0)
}

pub fn stat(a: &Args, nofollow: bool) -> KResult<u64> {
    let path = a.path(0)?;
    let st = stat_common(
        DirFd::Cwd,
        &path,
        if nofollow { AT_SYMLINK_NOFOLLOW } else { 0 },
    )?;
    a.ptr(1).write_bytes(&st.to_linux_stat())?;
    Ok(0)
}

pub fn fstat(a: &Args) -> KResult<u64> {
    let st = file(a.fd(0)?)?.stat()?;
    a.ptr(1).write_bytes(&st.to_linux_stat())?;
    Ok(0)
}

pub fn newfstatat(a: &Args) -> KResult<u64> {
    let flags = a.flags32(3, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT)?;
    let path = a.path(1)?;
    let st = stat_common(a.dirfd(0), &path, flags)?;
    a.ptr(2).write_bytes(&st.to_linux_stat())?;
    Ok(0)
}

pub fn statx(a: &Args) -> KResult<u64> {
    let flags = a.flags32(
        2,
        AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE,
    )?;
    if flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
        return Err(Errno::EINVAL);
    }
    let mask = a.u32(3);
    skiff_fs::Stat::check_statx_mask(mask)?;
    let path = a.path(1)?;
    let st = stat_common(a.dirfd(0), &path, flags)?;
    a.ptr(4).write_bytes(&st.to_statx(mask))?;
    Ok(0)
}

pub fn statfs(a: &Args) -> KResult<u64> {
    let path = a.path(0)?;
    let fs = &current().fs;
    let st = fs.vfs().statfs(&fs.cwd(), &path)?;
    a.ptr(1).write_bytes(&st.to_linux_statfs())?;
    Ok(0)
}

pub fn fstatfs(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    let st = match f.location() {
        // The open file's own filesystem: no path lookup, so unlinked files work too.
        Some(loc) => loc.mount().fs().statfs(),
        None => f.detached_statfs().ok_or(Errno::EBADF)?,
    };
    a.ptr(1).write_bytes(&st.to_linux_statfs())?;
    Ok(0)
}

fn chmod_common(d: DirFd, path: &[u8], mode: u32, follow: bool) -> KResult<u64> {
    let b = base(d, path)?;
    current().fs.vfs().chmod(&b, path, mode & 0o7777, follow)?;
    Ok(0)
}

pub fn chmod(a: &Args) -> KResult<u64> {
    chmod_common(DirFd::Cwd, &a.path(0)?, a.u32(1), true)
}

pub fn fchmodat(a: &Args) -> KResult<u64> {
    chmod_common(a.dirfd(0), &a.path(1)?, a.u32(2), true)
}

pub fn fchmod(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    f.set_attr(&SetAttr {
        mode: Some(a.u32(1) & 0o7777),
        ..SetAttr::default()
    })?;
    Ok(0)
}

fn id_arg(v: u32) -> Option<u32> {
    (v != u32::MAX).then_some(v)
}

fn chown_common(d: DirFd, path: &[u8], uid: u32, gid: u32, follow: bool) -> KResult<u64> {
    let b = base(d, path)?;
    current()
        .fs
        .vfs()
        .chown(&b, path, id_arg(uid), id_arg(gid), follow)?;
    Ok(0)
}

pub fn chown(a: &Args, follow: bool) -> KResult<u64> {
    chown_common(DirFd::Cwd, &a.path(0)?, a.u32(1), a.u32(2), follow)
}

pub fn fchownat(a: &Args) -> KResult<u64> {
    let flags = a.flags32(4, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)?;
    let path = a.path(1)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        let f = file(a.fd(0)?)?;
        f.set_attr(&SetAttr {
            uid: id_arg(a.u32(2)),
            gid: id_arg(a.u32(3)),
            ..SetAttr::default()
        })?;
        return Ok(0);
    }
    chown_common(
        a.dirfd(0),
        &path,
        a.u32(2),
        a.u32(3),
        flags & AT_SYMLINK_NOFOLLOW == 0,
    )
}

pub fn fchown(a: &Args) -> KResult<u64> {
    let f = file(a.fd(0)?)?;
    f.set_attr(&SetAttr {
        uid: id_arg(a.u32(1)),
        gid: id_arg(a.u32(2)),
        ..SetAttr::default()
    })?;
    Ok(0)
}

fn read_times(p: UserPtr) -> KResult<Option<[Timespec; 2]>> {
    if p.is_null() {
        return Ok(None);
    }
    let raw: [u64; 4] = p.read()?;
    Ok(Some([
        Timespec::new(raw[0] as i64, raw[1] as i64),
        Timespec::new(raw[2] as i64, raw[3] as i64),
    ]))
}

pub fn utimensat(a: &Args) -> KResult<u64> {
    let flags = a.flags32(3, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)?;
    let times = read_times(a.ptr(2))?;
    let fs = &current().fs;
    // A NULL path means "the file dirfd refers to" (the futimens form).
    if a.ptr(1).is_null() || (flags & AT_EMPTY_PATH != 0 && a.path(1)?.is_empty()) {
        let f = match a.dirfd(0) {
            DirFd::Fd(fd) => file(fd)?,
            DirFd::Cwd => return Err(Errno::EFAULT),
        };
        if let Some(attr) = SetAttr::from_utimens(times)? {
            f.set_attr(&attr)?;
        }
        return Ok(0);
    }
    let path = a.path(1)?;
    let b = base(a.dirfd(0), &path)?;
    fs.vfs()
        .utimens(&b, &path, times, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    Ok(0)
}

pub fn utimes(a: &Args) -> KResult<u64> {
    let path = a.path(0)?;
    let times = if a.ptr(1).is_null() {
        None
    } else {
        let raw: [u64; 4] = a.ptr(1).read()?;
        if raw[1] >= 1_000_000 || raw[3] >= 1_000_000 {
            return Err(Errno::EINVAL);
        }
        Some([
            Timespec::new(raw[0] as i64, raw[1] as i64 * 1000),
            Timespec::new(raw[2] as i64, raw[3] as i64 * 1000),
        ])
    };
    let fs = &current().fs;
    fs.vfs().utimens(&fs.cwd(), &path, times, true)?;
    Ok(0)
}

pub fn ioctl(a: &Args) -> KResult<u64> {
    const FIOCLEX: u32 = 0x5451;
    const FIONCLEX: u32 = 0x5450;
    let fd = a.fd(0)?;
    let cmd = a.u32(1);
    let fs = &current().fs;
    match cmd {
        FIOCLEX | FIONCLEX => {
            fs.fds.lock().set_cloexec(fd, cmd == FIOCLEX)?;
            return Ok(0);
        }
        skiff_fs::device::FIONREAD => {
            let f = file(fd)?;
            if let Some(n) = f.buffered() {
                a.ptr(2).write(&(n as i32))?;
                return Ok(0);
            }
            if f.is_tty() || f.stat()?.file_type() == Some(FileType::Fifo) {
                let n = skiff_console::stdin_buffered() as i32;
                a.ptr(2).write(&n)?;
                return Ok(0);
            }
        }
        _ => {}
    }
    let f = file(fd)?;
    let in_len = ioctl_input_len(cmd);
    let input = if in_len > 0 {
        a.ptr(2).read_bytes(in_len)?
    } else {
        Vec::new()
    };
    match f.ioctl(cmd, &input)? {
        IoctlOut::Return(v) => Ok(v as u64),
        IoctlOut::CopyOut(bytes) => {
            a.ptr(2).write_bytes(&bytes)?;
            Ok(0)
        }
    }
}

pub fn pipe2(a: &Args) -> KResult<u64> {
    let flags = if a.nr == crate::nr::PIPE {
        0
    } else {
        a.flags32(1, OpenFlags::O_CLOEXEC | OpenFlags::O_NONBLOCK)?
    };
    a.ptr(0).check(8)?;
    let (r, w) = skiff_fs::pipe(flags);
    let cloexec = flags & OpenFlags::O_CLOEXEC != 0;
    let fs = &current().fs;
    let (rfd, wfd) = {
        let mut table = fs.fds.lock();
        let rfd = table.insert(r, cloexec)?;
        match table.insert(w, cloexec) {
            Ok(wfd) => (rfd, wfd),
            Err(e) => {
                let _ = table.close(rfd);
                return Err(e);
            }
        }
    };
    if let Err(e) = a.ptr(0).write(&[rfd as u32, wfd as u32]) {
        let mut table = fs.fds.lock();
        let _ = table.close(rfd);
        let _ = table.close(wfd);
        return Err(e);
    }
    Ok(0)
}
