//! Per-process file-system state: the descriptor table ([`FdTable`]) and the
//! [`FsContext`] that adds the working directory and the umask.

use crate::file::OpenFile;
use crate::types::{OpenFlags, S_IFMT};
use crate::vfs::{Location, Vfs};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use skiff_errno::{Errno, KResult};
use spin::{Mutex, RwLock};

/// Default `RLIMIT_NOFILE`.
pub const DEFAULT_FD_LIMIT: usize = 1024;
/// `FD_CLOEXEC` for `F_GETFD`/`F_SETFD`.
pub const FD_CLOEXEC: u32 = 1;
/// `openat`'s "relative to the working directory".
pub const AT_FDCWD: i32 = -100;

pub const F_DUPFD: u32 = 0;
pub const F_GETFD: u32 = 1;
pub const F_SETFD: u32 = 2;
pub const F_GETFL: u32 = 3;
pub const F_SETFL: u32 = 4;
pub const F_DUPFD_CLOEXEC: u32 = 1030;

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    cloexec: bool,
}

/// A process's file descriptors: lowest free number first, limited by
/// `RLIMIT_NOFILE`.
#[derive(Clone)]
pub struct FdTable {
    slots: Vec<Option<Slot>>,
    limit: usize,
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}

/// What closing a descriptor does besides dropping its reference: the process's POSIX
/// record locks on the file go (Linux drops them at any close of the file).
fn closed(file: &OpenFile) {
    crate::lock::release_process_locks(file);
}

impl FdTable {
    pub fn new() -> FdTable {
        FdTable {
            slots: Vec::new(),
            limit: DEFAULT_FD_LIMIT,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets `RLIMIT_NOFILE`; descriptors already above it stay open.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    fn lowest_free_from(&self, min: usize) -> KResult<usize> {
        let fd = (min..self.limit)
            .find(|&fd| self.slots.get(fd).is_none_or(|s| s.is_none()))
            .ok_or(Errno::EMFILE)?;
        Ok(fd)
    }

    fn place(&mut self, fd: usize, file: Arc<OpenFile>, cloexec: bool) -> Option<Arc<OpenFile>> {
        if self.slots.len() <= fd {
            self.slots.resize(fd + 1, None);
        }
        let replaced = self.slots[fd].replace(Slot { file, cloexec })?;
        closed(&replaced.file);
        Some(replaced.file)
    }

    fn slot(&self, fd: i32) -> KResult<&Slot> {
        usize::try_from(fd)
            .ok()
            .and_then(|fd| self.slots.get(fd))
            .and_then(|s| s.as_ref())
            .ok_or(Errno::EBADF)
    }

    /// Installs `file` at the lowest free descriptor (`EMFILE` at the limit).
    pub fn insert(&mut self, file: Arc<OpenFile>, cloexec: bool) -> KResult<i32> {
        let fd = self.lowest_free_from(0)?;
        self.place(fd, file, cloexec);
        Ok(fd as i32)
    }

    /// The open file behind `fd` (`EBADF`).
    pub fn get(&self, fd: i32) -> KResult<Arc<OpenFile>> {
        Ok(self.slot(fd)?.file.clone())
    }

    /// Closes `fd`, returning its file so the caller can drop it outside any lock.
    pub fn close(&mut self, fd: i32) -> KResult<Arc<OpenFile>> {
        self.slot(fd)?;
        let slot = self.slots[fd as usize].take().ok_or(Errno::EBADF)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        closed(&slot.file);
        Ok(slot.file)
    }

    /// `dup(2)`: the new descriptor does not have close-on-exec.
    pub fn dup(&mut self, fd: i32) -> KResult<i32> {
        let file = self.get(fd)?;
        self.insert(file, false)
    }

    /// `dup2(2)`: `new == old` returns it if valid; otherwise `new` is closed first.
    /// Returns the file that was at `new`, if any, for the caller to drop.
    pub fn dup2(&mut self, old: i32, new: i32) -> KResult<(i32, Option<Arc<OpenFile>>)> {
        let file = self.get(old)?;
        if old == new {
            return Ok((new, None));
        }
        self.dup_onto(file, new, false)
    }

    /// `dup3(2)`: `EINVAL` if `old == new` or `flags` has anything but `O_CLOEXEC`.
    pub fn dup3(
        &mut self,
        old: i32,
        new: i32,
        flags: u32,
    ) -> KResult<(i32, Option<Arc<OpenFile>>)> {
        if flags & !OpenFlags::O_CLOEXEC != 0 || old == new {
            return Err(Errno::EINVAL);
        }
        let file = self.get(old)?;
        self.dup_onto(file, new, flags & OpenFlags::O_CLOEXEC != 0)
    }

    fn dup_onto(
        &mut self,
        file: Arc<OpenFile>,
        new: i32,
        cloexec: bool,
    ) -> KResult<(i32, Option<Arc<OpenFile>>)> {
        let slot = usize::try_from(new).map_err(|_| Errno::EBADF)?;
        if slot >= self.limit {
            return Err(Errno::EBADF);
        }
        let replaced = self.place(slot, file, cloexec);
        Ok((new, replaced))
    }

    /// `F_DUPFD`/`F_DUPFD_CLOEXEC`: lowest free descriptor `>= min`.
    pub fn dup_from(&mut self, fd: i32, min: i64, cloexec: bool) -> KResult<i32> {
        let file = self.get(fd)?;
        if min < 0 || min as u64 >= self.limit as u64 {
            return Err(Errno::EINVAL);
        }
        let new = self.lowest_free_from(min as usize)?;
        self.place(new, file, cloexec);
        Ok(new as i32)
    }

    pub fn cloexec(&self, fd: i32) -> KResult<bool> {
        Ok(self.slot(fd)?.cloexec)
    }

    pub fn set_cloexec(&mut self, fd: i32, cloexec: bool) -> KResult<()> {
        self.slot(fd)?;
        if let Some(slot) = self.slots[fd as usize].as_mut() {
            slot.cloexec = cloexec;
        }
        Ok(())
    }

    /// The descriptor-table part of `fcntl(2)`: `F_DUPFD`, `F_DUPFD_CLOEXEC`,
    /// `F_GETFD`, `F_SETFD`, `F_GETFL`, `F_SETFL`. Other commands (locks, leases,
    /// pipe sizes, ...) are the caller's; they get `EINVAL` here, Linux's answer for a
    /// command it does not know.
    pub fn fcntl(&mut self, fd: i32, cmd: u32, arg: u64) -> KResult<i64> {
        match cmd {
            F_DUPFD => Ok(self.dup_from(fd, arg as i64, false)? as i64),
            F_DUPFD_CLOEXEC => Ok(self.dup_from(fd, arg as i64, true)? as i64),
            F_GETFD => Ok(if self.cloexec(fd)? {
                FD_CLOEXEC as i64
            } else {
                0
            }),
            F_SETFD => {
                self.set_cloexec(fd, arg as u32 & FD_CLOEXEC != 0)?;
                Ok(0)
            }
            F_GETFL => Ok(self.get(fd)?.status_flags() as i64),
            F_SETFL => {
                self.get(fd)?.set_status_flags(arg as u32)?;
                Ok(0)
            }
            _ => {
                self.get(fd)?;
                Err(Errno::EINVAL)
            }
        }
    }

    /// Closes every close-on-exec descriptor (for `execve`); returns them to drop.
    pub fn close_on_exec(&mut self) -> Vec<Arc<OpenFile>> {
        let mut closed = Vec::new();
        for slot in self.slots.iter_mut() {
            if slot.as_ref().is_some_and(|s| s.cloexec) {
                if let Some(s) = slot.take() {
                    self::closed(&s.file);
                    closed.push(s.file);
                }
            }
        }
        closed
    }

    /// Close every descriptor (the process is ending); the caller drops the files
    /// outside the table's lock.
    pub fn close_all(&mut self) -> Vec<Arc<OpenFile>> {
        let files: Vec<Arc<OpenFile>> = self
            .slots
            .drain(..)
            .flatten()
            .map(|slot| slot.file)
            .collect();
        for f in &files {
            closed(f);
        }
        files
    }

    /// Open descriptors in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &Arc<OpenFile>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(fd, s)| s.as_ref().map(|s| (fd as i32, &s.file)))
    }
}

/// A process's file-system state: descriptors, working directory, umask.
pub struct FsContext {
    vfs: Arc<Vfs>,
    /// The descriptor table. Do not hold this lock across VFS calls: procfs reads it.
    pub fds: Mutex<FdTable>,
    cwd: RwLock<Location>,
    umask: AtomicU32,
}

impl FsContext {
    /// A context at the root with umask 022, registered with procfs.
    pub fn new(vfs: &Arc<Vfs>) -> Arc<FsContext> {
        let ctx = Arc::new(FsContext {
            vfs: vfs.clone(),
            fds: Mutex::new(FdTable::new()),
            cwd: RwLock::new(vfs.root()),
            umask: AtomicU32::new(0o022),
        });
        vfs.attach_process(&ctx);
        ctx
    }

    /// A copy for a `fork` child: the same open files under the same numbers (and
    /// close-on-exec flags), the same working directory and umask.
    pub fn fork(&self) -> Arc<FsContext> {
        Arc::new(FsContext {
            vfs: self.vfs.clone(),
            fds: Mutex::new(self.fds.lock().clone()),
            cwd: RwLock::new(self.cwd()),
            umask: AtomicU32::new(self.umask()),
        })
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    pub fn cwd(&self) -> Location {
        self.cwd.read().clone()
    }

    /// `chdir(2)`: `ENOTDIR` unless a directory.
    pub fn chdir(&self, path: &[u8]) -> KResult<()> {
        let loc = self.vfs.resolve(&self.cwd(), path, true)?;
        self.set_cwd(loc)
    }

    /// `fchdir(2)` (and `chdir` after resolution).
    pub fn set_cwd(&self, loc: Location) -> KResult<()> {
        if !loc.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        *self.cwd.write() = loc;
        Ok(())
    }

    /// `getcwd(2)`: `ENOENT` if the directory was removed.
    pub fn getcwd(&self) -> KResult<Vec<u8>> {
        self.vfs.path_of(&self.cwd())
    }

    pub fn umask(&self) -> u32 {
        self.umask.load(Ordering::Relaxed)
    }

    /// `umask(2)`: sets the mask (`& 0777`) and returns the old one.
    pub fn set_umask(&self, mask: u32) -> u32 {
        self.umask.swap(mask & 0o777, Ordering::Relaxed)
    }

    /// The starting point for a `*at` call: the working directory for `AT_FDCWD`, the
    /// directory behind `dirfd` otherwise (`EBADF`, `ENOTDIR`). Absolute paths ignore
    /// `dirfd` entirely, as on Linux.
    pub fn base_for(&self, dirfd: i32, path: &[u8]) -> KResult<Location> {
        if path.first() == Some(&b'/') || dirfd == AT_FDCWD {
            return Ok(self.cwd());
        }
        let file = self.fds.lock().get(dirfd)?;
        match file.location() {
            Some(loc) if loc.is_dir() => Ok(loc.clone()),
            _ if path.is_empty() => file.location().cloned().ok_or(Errno::ENOTDIR),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// `openat(2)` with the umask applied, installing the descriptor.
    pub fn open(&self, dirfd: i32, path: &[u8], flags: OpenFlags, mode: u32) -> KResult<i32> {
        self.open_resolve(dirfd, path, flags, mode, 0)
    }

    /// `openat2(2)`: [`FsContext::open`] under `RESOLVE_*` restrictions.
    pub fn open_resolve(
        &self,
        dirfd: i32,
        path: &[u8],
        flags: OpenFlags,
        mode: u32,
        resolve: u64,
    ) -> KResult<i32> {
        // The anchor of RESOLVE_BENEATH/IN_ROOT is the dirfd even for absolute paths.
        let base = if resolve != 0 && dirfd != AT_FDCWD {
            self.base_for(dirfd, b"")?
        } else {
            self.base_for(dirfd, path)?
        };
        let file = self
            .vfs
            .open_resolve(&base, path, flags, mode & !self.umask(), resolve)?;
        let cloexec = flags.0 & OpenFlags::O_CLOEXEC != 0;
        self.fds.lock().insert(file, cloexec)
    }

    /// `mkdirat(2)` with the umask applied.
    pub fn mkdir(&self, dirfd: i32, path: &[u8], mode: u32) -> KResult<()> {
        let base = self.base_for(dirfd, path)?;
        self.vfs.mkdir(&base, path, mode & !self.umask())?;
        Ok(())
    }

    /// `mknodat(2)` with the umask applied to the permission bits.
    pub fn mknod(&self, dirfd: i32, path: &[u8], mode: u32, rdev: u64) -> KResult<()> {
        let base = self.base_for(dirfd, path)?;
        let mode = (mode & S_IFMT) | (mode & !S_IFMT & !self.umask());
        self.vfs.mknod(&base, path, mode, rdev)?;
        Ok(())
    }

    /// Path of descriptor `fd` (for /proc/self/fd).
    pub fn fd_path(&self, fd: i32) -> KResult<Vec<u8>> {
        let file = self.fds.lock().get(fd)?;
        Ok(file.path())
    }

    /// Open descriptor numbers (for listing /proc/self/fd).
    pub fn open_fds(&self) -> Vec<i32> {
        self.fds.lock().iter().map(|(fd, _)| fd).collect()
    }
}
