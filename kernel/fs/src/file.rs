//! Open file descriptions: what a descriptor refers to. Shared by `dup`ed descriptors,
//! so the file offset and the status flags (`O_APPEND`, `O_NONBLOCK`) are shared too.

use crate::device::{CharDevice, ConsoleDevice, Generation, IoctlOut, Terminal, FIONBIO, FIONREAD};
use crate::env::ConsoleStream;
use crate::epoll::{
    EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDBAND, EPOLLRDHUP, EPOLLRDNORM,
};
use crate::epoll::{EPOLLWRBAND, EPOLLWRNORM};
use crate::inode::Inode;
use crate::types::{
    FileType, OpenFlags, SetAttr, Stat, StatFs, ANON_INODE_FS_MAGIC, DEVPTS_SUPER_MAGIC,
    MAX_FILE_SIZE, NAME_MAX, PIPEFS_MAGIC, SEEK_CUR, SEEK_END, SEEK_HOLE, SEEK_SET, SOCKFS_MAGIC,
    ST_NOEXEC, ST_NOSUID, ST_RELATIME, S_IFCHR, S_IFIFO, S_IFMT, S_IFSOCK,
};
use crate::vfs::{Location, Resolved, Vfs};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use skiff_block::lock::SleepLock;
use skiff_errno::{Errno, KResult};

/// Which of the three initial descriptors a console file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdStream {
    Stdin,
    Stdout,
    Stderr,
}

enum FileKind {
    /// A regular file, read and written through its inode.
    Regular(Arc<dyn Inode>),
    Directory(Arc<dyn Inode>),
    /// A synthetic (procfs) file: its content as generated at open.
    Snapshot(Vec<u8>),
    Device(Arc<dyn CharDevice>),
    /// `O_PATH`: a position in the tree, usable for `*at` calls and `fstat` only.
    Path,
}

/// An open file description.
pub struct OpenFile {
    kind: FileKind,
    location: Option<Location>,
    /// The directory holding the file and its name there, when opened by a name.
    parent: Option<(Location, Vec<u8>)>,
    /// Metadata of files with no inode (the initial console descriptors).
    detached_stat: Option<Stat>,
    vfs: Weak<Vfs>,
    /// `F_GETFL` flags: access mode, `O_APPEND`, `O_NONBLOCK`, ...
    status: AtomicU32,
    /// The file offset (also the directory position); its lock also serializes reads
    /// and writes that use it, like Linux's `f_pos_lock`.
    /// A sleeping lock: it is held across reads and writes, which may wait for a disk.
    pos: SleepLock<u64>,
    /// Whether this description ever took a `flock` or OFD lock, which must go with it.
    locked: AtomicBool,
}

/// Flags that describe only the open call and are not kept in the status flags.
const OPEN_ONLY_FLAGS: u32 = OpenFlags::O_CREAT
    | OpenFlags::O_EXCL
    | OpenFlags::O_NOCTTY
    | OpenFlags::O_TRUNC
    | OpenFlags::O_CLOEXEC;

impl OpenFile {
    fn build(
        vfs: Weak<Vfs>,
        kind: FileKind,
        resolved: Option<Resolved>,
        flags: OpenFlags,
        detached_stat: Option<Stat>,
    ) -> Arc<OpenFile> {
        let mut status = flags.0 & !OPEN_ONLY_FLAGS;
        if flags.0 & OpenFlags::O_PATH == 0 {
            // 64-bit Linux forces O_LARGEFILE on every open.
            status |= OpenFlags::O_LARGEFILE;
        }
        let (location, parent) = match resolved {
            Some(r) => (Some(r.loc), r.parent),
            None => (None, None),
        };
        Arc::new(OpenFile {
            kind,
            location,
            parent,
            detached_stat,
            vfs,
            status: AtomicU32::new(status),
            pos: SleepLock::new(0),
            locked: AtomicBool::new(false),
        })
    }

    pub(crate) fn new_path(vfs: Weak<Vfs>, resolved: Resolved, flags: OpenFlags) -> Arc<OpenFile> {
        Self::build(vfs, FileKind::Path, Some(resolved), flags, None)
    }

    pub(crate) fn new_inode(
        vfs: Weak<Vfs>,
        resolved: Resolved,
        flags: OpenFlags,
    ) -> KResult<Arc<OpenFile>> {
        let inode = resolved.loc.inode.clone();
        let kind = match inode.file_type() {
            FileType::Directory => FileKind::Directory(inode),
            _ => match inode.snapshot() {
                Some(content) => FileKind::Snapshot(content?),
                None => FileKind::Regular(inode),
            },
        };
        Ok(Self::build(vfs, kind, Some(resolved), flags, None))
    }

    pub(crate) fn new_device(
        vfs: Weak<Vfs>,
        resolved: Resolved,
        device: Arc<dyn CharDevice>,
        flags: OpenFlags,
    ) -> Arc<OpenFile> {
        Self::build(vfs, FileKind::Device(device), Some(resolved), flags, None)
    }

    /// An open file for a device with no name in the tree (a pipe end, an eventfd, an
    /// epoll instance), with the attributes `fstat` reports.
    pub fn detached_device(
        device: Arc<dyn CharDevice>,
        flags: OpenFlags,
        stat: Stat,
    ) -> Arc<OpenFile> {
        let file = Self::build(
            Weak::new(),
            FileKind::Device(device),
            None,
            flags,
            Some(stat),
        );
        // Only open(2) adds O_LARGEFILE; Linux's pipe2, eventfd and epoll_create do not.
        file.status
            .fetch_and(!OpenFlags::O_LARGEFILE, Ordering::Relaxed);
        file
    }

    /// The driver behind a device file, if it is a `T` (an epoll instance).
    pub fn device<T: 'static>(&self) -> Option<&T> {
        match &self.kind {
            FileKind::Device(d) => d.as_any()?.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// The socket behind this file, if it is one.
    pub fn socket(&self) -> Option<&dyn crate::socket::Socket> {
        match &self.kind {
            FileKind::Device(d) => d.as_socket(),
            _ => None,
        }
    }

    /// Bytes queued in a queueing device (a pipe), if this is one.
    pub fn buffered(&self) -> Option<usize> {
        match &self.kind {
            FileKind::Device(d) => d.buffered(),
            _ => None,
        }
    }

    /// One of the three initial descriptors on the console: `Stdin` reads host stdin,
    /// `Stdout`/`Stderr` write the host streams. When the terminal's host side is a
    /// terminal they are read-write ttys (answer `TCGETS`); otherwise they behave like
    /// the pipes the host has (one direction, `ENOTTY`, `S_IFIFO`).
    pub fn console(terminal: &Arc<Terminal>, which: StdStream) -> Arc<OpenFile> {
        let is_tty = terminal.console_is_tty();
        let stream = match which {
            StdStream::Stderr => ConsoleStream::Stderr,
            _ => ConsoleStream::Stdout,
        };
        let access = match (is_tty, which) {
            (true, _) => OpenFlags::O_RDWR,
            (false, StdStream::Stdin) => OpenFlags::O_RDONLY,
            (false, _) => OpenFlags::O_WRONLY,
        };
        let stat = Stat {
            ino: which as u64 + 1,
            nlink: 1,
            mode: if is_tty {
                S_IFCHR | 0o620
            } else {
                S_IFIFO | 0o600
            },
            rdev: if is_tty {
                crate::device::DEV_CONSOLE
            } else {
                0
            },
            blksize: 4096,
            ..Stat::default()
        };
        let device = Arc::new(ConsoleDevice {
            terminal: terminal.clone(),
            stream,
            is_tty,
        });
        Self::build(
            Weak::new(),
            FileKind::Device(device),
            None,
            OpenFlags(access),
            Some(stat),
        )
    }

    // ---- flags ----

    /// Whether (a read, a write) would not block: derived from the readiness mask, so
    /// a hangup or a pending error counts (the call then returns at once with end of
    /// file or the error). Files, directories and memory devices are always ready, as
    /// on Linux; the console's input side when input is buffered or at end of file.
    pub fn poll_ready(&self) -> (bool, bool) {
        match &self.kind {
            FileKind::Device(d) => {
                let mask = d.poll_mask();
                (
                    mask & (EPOLLIN | EPOLLRDNORM | EPOLLHUP | EPOLLERR | EPOLLRDHUP) != 0,
                    mask & (EPOLLOUT | EPOLLWRNORM | EPOLLHUP | EPOLLERR) != 0,
                )
            }
            _ => (true, true),
        }
    }

    /// What `poll` on this file reports, as `EPOLL*` bits: the device's own mask
    /// without the input bits when the file is not open for reading, nor the output
    /// bits when not open for writing (`EPOLLHUP`/`EPOLLERR` stay).
    pub fn poll_mask(&self) -> u32 {
        const INPUT: u32 = EPOLLIN | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND | EPOLLRDHUP;
        const OUTPUT: u32 = EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
        let mut mask = match &self.kind {
            FileKind::Device(d) => d.poll_mask(),
            // Linux's DEFAULT_POLLMASK for files without a poll method.
            _ => EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM,
        };
        if !self.is_readable() {
            mask &= !INPUT;
        }
        if !self.is_writable() {
            mask &= !OUTPUT;
        }
        mask
    }

    /// The device's readiness event counts (zeros for files with no driver), for
    /// edge-triggered epoll.
    pub fn generation(&self) -> Generation {
        match &self.kind {
            FileKind::Device(d) => d.generation(),
            _ => Generation::default(),
        }
    }

    /// Whether epoll may watch this file. Linux refuses (`EPERM`) files without a
    /// `poll` method: regular files and directories on tmpfs, procfs files, and the
    /// memory devices.
    pub fn pollable(&self) -> bool {
        matches!(&self.kind, FileKind::Device(d) if d.pollable())
    }

    /// Whether this is an `O_PATH` descriptor, which most calls treat as `EBADF`.
    pub fn is_path_only(&self) -> bool {
        self.is_path()
    }

    /// `F_GETFL`.
    pub fn status_flags(&self) -> u32 {
        self.status.load(Ordering::Relaxed)
    }

    /// `F_SETFL`: only `O_APPEND` and `O_NONBLOCK` change; other bits are ignored.
    pub fn set_status_flags(&self, flags: u32) -> KResult<()> {
        if self.is_path() {
            return Err(Errno::EBADF);
        }
        let mask = OpenFlags::SETFL_MASK;
        let _ = self
            .status
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old & !mask) | (flags & mask))
            });
        Ok(())
    }

    fn flags(&self) -> OpenFlags {
        OpenFlags(self.status_flags())
    }
    fn is_path(&self) -> bool {
        matches!(self.kind, FileKind::Path)
    }
    pub fn is_readable(&self) -> bool {
        !self.is_path() && self.flags().readable()
    }
    pub fn is_writable(&self) -> bool {
        !self.is_path() && self.flags().writable()
    }
    fn nonblocking(&self) -> bool {
        self.status_flags() & OpenFlags::O_NONBLOCK != 0
    }
    fn appending(&self) -> bool {
        self.status_flags() & OpenFlags::O_APPEND != 0
    }

    /// Where the file is in the tree (`None` for console descriptors).
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The inode, if the file has one.
    pub fn inode(&self) -> Option<&Arc<dyn Inode>> {
        self.location.as_ref().map(|l| &l.inode)
    }

    /// `fstatfs` of a file with no place in the tree: the pseudo filesystem Linux keeps
    /// such a file on (pipefs for pipes and for a console that is a pipe, sockfs,
    /// anon_inodefs for eventfd and epoll, devpts for a terminal console), with the
    /// file's device number as its id. `None` for files in the tree, whose mount answers.
    pub fn detached_statfs(&self) -> Option<StatFs> {
        if self.location.is_some() {
            return None;
        }
        let stat = self.detached_stat.as_ref()?;
        let (fs_type, flags) = match stat.mode & S_IFMT {
            S_IFIFO => (PIPEFS_MAGIC, 0),
            S_IFSOCK => (SOCKFS_MAGIC, 0),
            S_IFCHR => (DEVPTS_SUPER_MAGIC, ST_NOSUID | ST_NOEXEC | ST_RELATIME),
            _ => (ANON_INODE_FS_MAGIC, 0),
        };
        Some(StatFs {
            fs_type,
            block_size: 4096,
            blocks: 0,
            blocks_free: 0,
            blocks_avail: 0,
            files: 0,
            files_free: 0,
            fsid: [stat.dev as u32, (stat.dev >> 32) as u32],
            name_len: NAME_MAX as u64,
            fragment_size: 4096,
            flags,
        })
    }

    /// The identity of the file for [`crate::lock`]: its inode, or the device behind a
    /// file that has none (a pipe end). `None` for `O_PATH` descriptors, which cannot
    /// be locked.
    pub fn lock_key(&self) -> Option<usize> {
        match (&self.kind, &self.location) {
            (FileKind::Path, _) => None,
            (_, Some(loc)) => Some(Arc::as_ptr(&loc.inode) as *const () as usize),
            (FileKind::Device(d), None) => Some(Arc::as_ptr(d) as *const () as usize),
            _ => None,
        }
    }

    /// Remembers that this description holds locks, to release when it goes.
    pub(crate) fn note_locked(&self) {
        self.locked.store(true, Ordering::Relaxed);
    }

    /// Whether terminal ioctls work (`isatty`).
    pub fn is_tty(&self) -> bool {
        matches!(&self.kind, FileKind::Device(d) if d.is_tty())
    }

    // ---- data ----

    /// `read(2)`.
    pub fn read(&self, buf: &mut [u8]) -> KResult<usize> {
        if !self.is_readable() {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            FileKind::Regular(inode) => {
                let mut pos = self.pos.lock();
                let n = read_inode(inode, *pos, buf)?;
                *pos += n as u64;
                Ok(n)
            }
            FileKind::Snapshot(data) => {
                let mut pos = self.pos.lock();
                let n = copy_from(data, *pos, buf);
                *pos += n as u64;
                Ok(n)
            }
            FileKind::Directory(_) => Err(Errno::EISDIR),
            FileKind::Device(dev) => dev.read(buf, self.nonblocking()),
            FileKind::Path => Err(Errno::EBADF),
        }
    }

    /// `write(2)`; with `O_APPEND` each write lands at the end in one step.
    pub fn write(&self, buf: &[u8]) -> KResult<usize> {
        if !self.is_writable() {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            FileKind::Regular(inode) => {
                let mut pos = self.pos.lock();
                let at = if self.appending() { None } else { Some(*pos) };
                let (n, end) = write_inode(inode, at, buf)?;
                *pos = end;
                drop(pos);
                self.sync_after_write(inode)?;
                Ok(n)
            }
            FileKind::Device(dev) => dev.write(buf),
            FileKind::Snapshot(_) | FileKind::Directory(_) | FileKind::Path => Err(Errno::EBADF),
        }
    }

    /// `fsync(2)` (`data_only`: `fdatasync`). Files without storage behind them (pipes,
    /// devices, procfs) have no fsync operation on Linux: `EINVAL`.
    pub fn sync(&self, data_only: bool) -> KResult<()> {
        match &self.kind {
            FileKind::Regular(inode) | FileKind::Directory(inode) => inode.sync(data_only),
            FileKind::Path => Err(Errno::EBADF),
            FileKind::Snapshot(_) | FileKind::Device(_) => Err(Errno::EINVAL),
        }
    }

    /// `O_SYNC`/`O_DSYNC`: a write returns only once its data is on stable storage.
    fn sync_after_write(&self, inode: &Arc<dyn Inode>) -> KResult<()> {
        let flags = self.status_flags();
        if flags & OpenFlags::O_DSYNC != 0 {
            inode.sync(flags & OpenFlags::O_SYNC != OpenFlags::O_SYNC)?;
        }
        Ok(())
    }

    /// `pread64(2)`: reads at `offset` without moving the file offset.
    pub fn pread(&self, buf: &mut [u8], offset: i64) -> KResult<usize> {
        if !self.is_readable() {
            return Err(Errno::EBADF);
        }
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        match &self.kind {
            FileKind::Regular(inode) => read_inode(inode, offset as u64, buf),
            FileKind::Snapshot(data) => Ok(copy_from(data, offset as u64, buf)),
            FileKind::Directory(_) => Err(Errno::EISDIR),
            FileKind::Device(dev) if dev.seekable() => dev.read(buf, self.nonblocking()),
            FileKind::Device(_) => Err(Errno::ESPIPE),
            FileKind::Path => Err(Errno::EBADF),
        }
    }

    /// `pwrite64(2)`. As on Linux, a file opened with `O_APPEND` appends anyway.
    pub fn pwrite(&self, buf: &[u8], offset: i64) -> KResult<usize> {
        if !self.is_writable() {
            return Err(Errno::EBADF);
        }
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        match &self.kind {
            FileKind::Regular(inode) => {
                let at = if self.appending() {
                    None
                } else {
                    Some(offset as u64)
                };
                let (n, _) = write_inode(inode, at, buf)?;
                self.sync_after_write(inode)?;
                Ok(n)
            }
            FileKind::Device(dev) if dev.seekable() => dev.write(buf),
            FileKind::Device(_) => Err(Errno::ESPIPE),
            _ => Err(Errno::EBADF),
        }
    }

    /// `lseek(2)`: returns the new offset.
    pub fn seek(&self, offset: i64, whence: u32) -> KResult<u64> {
        if whence > SEEK_HOLE {
            return Err(Errno::EINVAL);
        }
        let mut pos = self.pos.lock();
        let relative = |base: u64| -> KResult<u64> {
            let target = (base as i64).checked_add(offset).ok_or(Errno::EINVAL)?;
            if target < 0 {
                return Err(Errno::EINVAL);
            }
            Ok(target as u64)
        };
        let new = match &self.kind {
            FileKind::Path => return Err(Errno::EBADF),
            FileKind::Device(dev) => {
                if !dev.seekable() {
                    return Err(Errno::ESPIPE);
                }
                // Memory devices accept any seek and stay at 0 (Linux null_lseek).
                0
            }
            FileKind::Regular(inode) => match whence {
                SEEK_SET => relative(0)?,
                SEEK_CUR => relative(*pos)?,
                SEEK_END => relative(inode.stat()?.size)?,
                _ => {
                    if offset < 0 {
                        return Err(Errno::ENXIO);
                    }
                    inode.seek_data_or_hole(offset as u64, whence == SEEK_HOLE)?
                }
            },
            // Directory positions are entry cookies; only absolute and relative seeks
            // make sense. Synthetic files (seq_file on Linux) allow the same.
            FileKind::Directory(_) | FileKind::Snapshot(_) => match whence {
                SEEK_SET => relative(0)?,
                SEEK_CUR => relative(*pos)?,
                _ => return Err(Errno::EINVAL),
            },
        };
        if new > MAX_FILE_SIZE {
            return Err(Errno::EINVAL);
        }
        *pos = new;
        Ok(new)
    }

    /// `getdents64(2)`: fills `buf` with `linux_dirent64` records ("." and ".." first)
    /// and returns the bytes used, 0 at the end. `EINVAL` if not even one record fits.
    pub fn getdents64(&self, buf: &mut [u8]) -> KResult<usize> {
        let inode = match &self.kind {
            FileKind::Directory(inode) => inode,
            FileKind::Path => return Err(Errno::EBADF),
            _ => return Err(Errno::ENOTDIR),
        };
        if inode.stat()?.nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let mut pos = self.pos.lock();
        let mut used = 0;
        loop {
            let (ino, file_type, name, next): (u64, FileType, Vec<u8>, u64) = match *pos {
                0 => (inode.ino(), FileType::Directory, b".".to_vec(), 1),
                1 => {
                    let parent_ino = match (&self.location, self.vfs.upgrade()) {
                        (Some(loc), Some(vfs)) => vfs.parent_of(loc)?.inode.ino(),
                        _ => inode.ino(),
                    };
                    (
                        parent_ino,
                        FileType::Directory,
                        b"..".to_vec(),
                        crate::inode::FIRST_COOKIE,
                    )
                }
                p => match inode.read_dir(p)? {
                    Some(e) => (e.ino, e.file_type, e.name, e.cookie + 1),
                    None => break,
                },
            };
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            if used + reclen > buf.len() {
                if used == 0 {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            let rec = &mut buf[used..used + reclen];
            rec.fill(0);
            rec[0..8].copy_from_slice(&ino.to_le_bytes());
            rec[8..16].copy_from_slice(&(next as i64).to_le_bytes());
            rec[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
            rec[18] = file_type.dirent_type();
            rec[19..19 + name.len()].copy_from_slice(&name);
            used += reclen;
            *pos = next;
        }
        Ok(used)
    }

    /// `fstat(2)`.
    pub fn stat(&self) -> KResult<Stat> {
        match (&self.location, &self.detached_stat) {
            (Some(loc), _) => loc.stat(),
            (None, Some(st)) => Ok(*st),
            (None, None) => Err(Errno::EBADF),
        }
    }

    /// `ftruncate(2)`: `EINVAL` unless a regular file open for writing.
    pub fn truncate(&self, len: i64) -> KResult<()> {
        if self.is_path() {
            return Err(Errno::EBADF);
        }
        if len < 0 || !self.is_writable() {
            return Err(Errno::EINVAL);
        }
        match &self.kind {
            FileKind::Regular(inode) => crate::coherence::set_size(inode, len as u64),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `fchmod`/`fchown`/`futimens` (`O_PATH` descriptors give `EBADF`, as Linux).
    pub fn set_attr(&self, attr: &SetAttr) -> KResult<()> {
        if self.is_path() {
            return Err(Errno::EBADF);
        }
        match self.inode() {
            Some(inode) => inode.set_attr(attr),
            // Console descriptors have no inode whose attributes could change.
            None => Err(Errno::EPERM),
        }
    }

    /// `ioctl(2)`: `arg_in` holds the bytes the request reads from user memory (see
    /// [`crate::device::ioctl_input_len`]).
    pub fn ioctl(&self, cmd: u32, arg_in: &[u8]) -> KResult<IoctlOut> {
        if self.is_path() {
            return Err(Errno::EBADF);
        }
        if cmd == FIONBIO {
            let on = arg_in.get(0..4).ok_or(Errno::EFAULT)? != [0, 0, 0, 0];
            let old = self.status_flags();
            let new = if on {
                old | OpenFlags::O_NONBLOCK
            } else {
                old & !OpenFlags::O_NONBLOCK
            };
            self.set_status_flags(new)?;
            return Ok(IoctlOut::Return(0));
        }
        match &self.kind {
            FileKind::Device(dev) => dev.ioctl(cmd, arg_in),
            FileKind::Regular(inode) if cmd == FIONREAD => {
                let size = inode.stat()?.size;
                let left = size.saturating_sub(*self.pos.lock()).min(i32::MAX as u64) as i32;
                Ok(IoctlOut::CopyOut(left.to_le_bytes().to_vec()))
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    /// The path shown by /proc/self/fd and used by `getcwd` for directories; unlinked
    /// files get Linux's " (deleted)" suffix.
    pub fn path(&self) -> Vec<u8> {
        let Some(loc) = &self.location else {
            if let FileKind::Device(d) = &self.kind {
                if let Some(name) = d.link_name() {
                    return name;
                }
            }
            return b"/dev/console".to_vec();
        };
        let Some(vfs) = self.vfs.upgrade() else {
            return Vec::new();
        };
        let deleted = loc.inode.stat().map(|s| s.nlink == 0).unwrap_or(true);
        let path = if loc.is_dir() {
            vfs.path_of(loc)
        } else {
            match &self.parent {
                Some((dir, name)) => vfs.path_in(dir, name),
                None => vfs.path_of(loc),
            }
        };
        match path {
            Ok(mut p) if deleted => {
                p.extend_from_slice(b" (deleted)");
                p
            }
            Ok(p) => p,
            Err(_) => {
                let mut p = match &self.parent {
                    Some((_, name)) => {
                        let mut p = b"/".to_vec();
                        p.extend_from_slice(name);
                        p
                    }
                    None => b"/".to_vec(),
                };
                p.extend_from_slice(b" (deleted)");
                p
            }
        }
    }
}

/// Reads a regular file at `offset`, after the modifications of its shared mappings in
/// that range reached it (see [`crate::coherence`]).
fn read_inode(inode: &Arc<dyn Inode>, offset: u64, buf: &mut [u8]) -> KResult<usize> {
    let mut mapped = crate::coherence::hold(inode);
    if let Some(mapped) = &mut mapped {
        mapped.flush(offset, buf.len() as u64)?;
    }
    inode.read_at(offset, buf)
}

/// Writes to a regular file at `offset` (`None`: at its end, in one step) and shows the
/// bytes in its shared mappings. Returns the bytes written and the offset after them.
fn write_inode(inode: &Arc<dyn Inode>, offset: Option<u64>, buf: &[u8]) -> KResult<(usize, u64)> {
    let Some(mut mapped) = crate::coherence::hold(inode) else {
        return match offset {
            Some(at) => Ok(inode.write_at(at, buf).map(|n| (n, at + n as u64))?),
            None => inode.append(buf),
        };
    };
    let old_size = inode.stat()?.size;
    let (n, end) = match offset {
        Some(at) => inode.write_at(at, buf).map(|n| (n, at + n as u64))?,
        None => inode.append(buf)?,
    };
    let at = end - n as u64;
    if at > old_size {
        // The gap the write left reads as zeros in the file.
        mapped.resized(old_size, at);
    }
    mapped.written(at, &buf[..n]);
    Ok((n, end))
}

impl Drop for OpenFile {
    /// `flock` and OFD locks belong to the description: they go with its last reference.
    fn drop(&mut self) {
        if *self.locked.get_mut() {
            crate::lock::release_description(self);
        }
    }
}

fn copy_from(data: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    if offset >= data.len() as u64 {
        return 0;
    }
    let start = offset as usize;
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}
