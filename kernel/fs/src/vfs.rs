//! The VFS: the mount table, path resolution, and every path-based operation with
//! Linux's rules and errnos (open, mkdir, mknod, unlink, rename, link, symlink,
//! readlink, access, stat, chmod, chown, utimens, truncate, statfs).
//!
//! A [`Location`] is an inode together with the mount it was reached through; walking
//! into a directory that has something mounted on it continues at the mounted root, and
//! `..` at a mount root continues from the parent of the mount point.

use crate::device::{
    CharDevice, ConsoleDevice, FullDevice, NullDevice, RandomDevice, Terminal, ZeroDevice,
    DEV_CONSOLE, DEV_FULL, DEV_NULL, DEV_RANDOM, DEV_TTY, DEV_URANDOM, DEV_ZERO,
};
use crate::env::{Clock, Console, ConsoleStream, Entropy, ProcessInfo};
use crate::fdtable::FsContext;
use crate::file::OpenFile;
use crate::inode::{FileSystem, Inode, NewNode, NewOwner};
use crate::procfs::ProcFs;
use crate::tmpfs::TmpFs;
use crate::types::{
    makedev, FileType, OpenFlags, SetAttr, Stat, StatFs, AT_EACCESS, AT_SYMLINK_NOFOLLOW,
    MAX_SYMLINKS, MODE_PERM_MASK, NAME_MAX, PATH_MAX, RENAME_EXCHANGE, RENAME_NOREPLACE,
    RENAME_WHITEOUT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, X_OK,
};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_errno::{Errno, KResult};
use spin::RwLock;

/// One entry of the mount table.
pub struct Mount {
    id: u64,
    fs: Arc<dyn FileSystem>,
    root: Arc<dyn Inode>,
    dev: u64,
    /// The directory this filesystem is mounted on; `None` for the root mount.
    mountpoint: Option<Location>,
}

impl Mount {
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn dev(&self) -> u64 {
        self.dev
    }
    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }
}

/// An inode and the mount it was reached through.
#[derive(Clone)]
pub struct Location {
    pub(crate) mount: Arc<Mount>,
    pub(crate) inode: Arc<dyn Inode>,
}

impl Location {
    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }
    pub fn mount(&self) -> &Arc<Mount> {
        &self.mount
    }
    pub fn file_type(&self) -> FileType {
        self.inode.file_type()
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }
    /// Metadata with `st_dev` and the mount id filled in.
    pub fn stat(&self) -> KResult<Stat> {
        let mut st = self.inode.stat()?;
        st.dev = self.mount.dev;
        st.mount_id = self.mount.id;
        Ok(st)
    }
    /// Same inode reached through the same mount.
    pub fn same_as(&self, other: &Location) -> bool {
        self.mount.id == other.mount.id && self.inode.ino() == other.inode.ino()
    }
    fn is_mount_root(&self) -> bool {
        self.inode.ino() == self.mount.root.ino()
    }
    fn with_inode(&self, inode: Arc<dyn Inode>) -> Location {
        Location {
            mount: self.mount.clone(),
            inode,
        }
    }
}

/// The last component of a path, as the operations that create or remove need it.
enum Last<'a> {
    Name(&'a [u8]),
    Dot,
    DotDot,
    Root,
}

/// A fully resolved path: the location, and for a named last component the directory
/// that holds it and its name (for `/proc/self/fd` and friends).
pub(crate) struct Resolved {
    pub loc: Location,
    pub parent: Option<(Location, Vec<u8>)>,
}

/// `openat2`'s `RESOLVE_*` restrictions (Linux values).
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;

/// The state of one path resolution: symlinks followed so far, and `openat2`'s
/// restrictions with the directory they are relative to.
#[derive(Default)]
pub(crate) struct Walk {
    links: u32,
    resolve: u64,
    /// The starting directory that `RESOLVE_BENEATH`/`RESOLVE_IN_ROOT` confine to.
    anchor: Option<Location>,
}

impl Walk {
    fn confined(&self) -> bool {
        self.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0
    }

    /// Counts one followed symlink: `ELOOP` past the limit or when symlinks are refused.
    fn follow_one(&mut self) -> KResult<()> {
        self.links += 1;
        if self.links > MAX_SYMLINKS || self.resolve & RESOLVE_NO_SYMLINKS != 0 {
            return Err(Errno::ELOOP);
        }
        Ok(())
    }
}

/// Flags `faccessat2` accepts here; `AT_EMPTY_PATH` is resolved by the caller.
const ACCESS_FLAGS: u32 = AT_EACCESS | AT_SYMLINK_NOFOLLOW;

/// The virtual file system: the mount table, device table and the standard mounts.
pub struct Vfs {
    me: Weak<Vfs>,
    clock: Arc<dyn Clock>,
    root_mount: Arc<Mount>,
    /// Mounted filesystems keyed by (mount id, inode number) of their mount point.
    mounts: RwLock<BTreeMap<(u64, u64), Arc<Mount>>>,
    next_mount_id: AtomicU64,
    devices: RwLock<BTreeMap<u64, Arc<dyn CharDevice>>>,
    terminal: RwLock<Option<Arc<Terminal>>>,
    procfs: RwLock<Option<Arc<ProcFs>>>,
}

impl Vfs {
    /// A VFS whose root is an empty tmpfs (mode 0755).
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Vfs> {
        let rootfs: Arc<dyn FileSystem> = TmpFs::new(clock.clone(), 0o755);
        let root_mount = Arc::new(Mount {
            id: 1,
            root: rootfs.root(),
            fs: rootfs,
            dev: anon_dev(1),
            mountpoint: None,
        });
        Arc::new_cyclic(|me| Vfs {
            me: me.clone(),
            clock,
            root_mount,
            mounts: RwLock::new(BTreeMap::new()),
            next_mount_id: AtomicU64::new(2),
            devices: RwLock::new(BTreeMap::new()),
            terminal: RwLock::new(None),
            procfs: RwLock::new(None),
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The root directory.
    pub fn root(&self) -> Location {
        Location {
            mount: self.root_mount.clone(),
            inode: self.root_mount.root.clone(),
        }
    }

    /// Mounts `fs` on the directory `at`. When `at` was resolved through a path it is
    /// already the top of any mounts there, so the new mount stacks on top, as on
    /// Linux; `EBUSY` if that exact directory of that mount already carries one.
    pub fn mount(&self, at: &Location, fs: Arc<dyn FileSystem>) -> KResult<Arc<Mount>> {
        if !at.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let key = (at.mount.id, at.inode.ino());
        let mut mounts = self.mounts.write();
        if mounts.contains_key(&key) {
            return Err(Errno::EBUSY);
        }
        let id = self.next_mount_id.fetch_add(1, Ordering::Relaxed);
        let mount = Arc::new(Mount {
            id,
            root: fs.root(),
            fs,
            dev: anon_dev(id),
            mountpoint: Some(at.clone()),
        });
        mounts.insert(key, mount.clone());
        Ok(mount)
    }

    /// All mounts, root first, with their mount-point paths (for /proc/mounts).
    pub fn mount_list(&self) -> Vec<(Vec<u8>, Arc<Mount>)> {
        let mut list = alloc::vec![(b"/".to_vec(), self.root_mount.clone())];
        let mut others: Vec<Arc<Mount>> = self.mounts.read().values().cloned().collect();
        others.sort_by_key(|m| m.id);
        for m in others {
            if let Some(mp) = &m.mountpoint {
                if let Ok(path) = self.path_of(mp) {
                    list.push((path, m.clone()));
                }
            }
        }
        list
    }

    /// `sync(2)`: every mounted filesystem reaches stable storage. Returns the first
    /// error, after trying them all.
    pub fn sync_all(&self) -> KResult<()> {
        let mut result = Ok(());
        for (_, mount) in self.mount_list() {
            let r = mount.fs().sync();
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Before the machine stops: every filesystem is synced and left clean on its
    /// device. Returns the first error, after trying them all.
    pub fn unmount_all(&self) -> KResult<()> {
        let mut result = Ok(());
        for (_, mount) in self.mount_list().into_iter().rev() {
            let r = mount.fs().sync().and_then(|_| mount.fs().unmount());
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Registers the driver for character device number `rdev`.
    pub fn register_device(&self, rdev: u64, device: Arc<dyn CharDevice>) {
        self.devices.write().insert(rdev, device);
    }

    pub(crate) fn device(&self, rdev: u64) -> Option<Arc<dyn CharDevice>> {
        self.devices.read().get(&rdev).cloned()
    }

    /// The console terminal, once [`Vfs::mount_standard`] has run.
    pub fn terminal(&self) -> Option<Arc<Terminal>> {
        self.terminal.read().clone()
    }

    /// The procfs instance, once [`Vfs::mount_standard`] has run.
    pub fn procfs(&self) -> Option<Arc<ProcFs>> {
        self.procfs.read().clone()
    }

    /// Lets procfs show `process`'s descriptors and working directory.
    pub fn attach_process(&self, process: &Arc<FsContext>) {
        if let Some(procfs) = self.procfs() {
            procfs.attach_process(process);
        }
    }

    /// Creates `/dev` (devtmpfs with the standard devices), `/proc` (procfs) and `/tmp`
    /// (mode 1777) if missing. `console_is_tty` says whether the host console is a
    /// terminal: if not, `/dev/tty` gives `ENXIO` (no controlling terminal), while
    /// `/dev/console` stays a terminal.
    pub fn mount_standard(
        &self,
        console: Arc<dyn Console>,
        console_is_tty: bool,
        entropy: Arc<dyn Entropy>,
        procinfo: Arc<dyn ProcessInfo>,
    ) -> KResult<()> {
        let terminal = Terminal::new(console, console_is_tty);
        *self.terminal.write() = Some(terminal.clone());
        self.register_device(DEV_NULL, Arc::new(NullDevice));
        self.register_device(DEV_ZERO, Arc::new(ZeroDevice));
        self.register_device(DEV_FULL, Arc::new(FullDevice));
        let random: Arc<dyn CharDevice> = Arc::new(RandomDevice { entropy });
        self.register_device(DEV_RANDOM, random.clone());
        self.register_device(DEV_URANDOM, random);
        let console_dev: Arc<dyn CharDevice> = Arc::new(ConsoleDevice {
            terminal: terminal.clone(),
            stream: ConsoleStream::Stdout,
            is_tty: true,
        });
        self.register_device(DEV_CONSOLE, console_dev.clone());
        if console_is_tty {
            self.register_device(DEV_TTY, console_dev);
        }

        let root = self.root();
        let dev_dir = self.ensure_dir(&root, b"dev", 0o755)?;
        let proc_dir = self.ensure_dir(&root, b"proc", 0o555)?;
        self.ensure_dir(&root, b"tmp", 0o1777)?;

        let devfs = TmpFs::with_name(self.clock.clone(), 0o755, "devtmpfs", "rw,nosuid,relatime");
        let devroot = devfs.root();
        let owner = |perm| NewOwner {
            perm,
            uid: 0,
            gid: 0,
        };
        for (name, rdev, perm) in [
            (&b"null"[..], DEV_NULL, 0o666),
            (b"zero", DEV_ZERO, 0o666),
            (b"full", DEV_FULL, 0o666),
            (b"random", DEV_RANDOM, 0o666),
            (b"urandom", DEV_URANDOM, 0o666),
            (b"tty", DEV_TTY, 0o666),
            (b"console", DEV_CONSOLE, 0o600),
        ] {
            devroot.create(name, NewNode::CharDevice(rdev), owner(perm))?;
        }
        for (name, target) in [
            (&b"stdin"[..], &b"/proc/self/fd/0"[..]),
            (b"stdout", b"/proc/self/fd/1"),
            (b"stderr", b"/proc/self/fd/2"),
            (b"fd", b"/proc/self/fd"),
        ] {
            devroot.create(name, NewNode::Symlink(target.to_vec()), owner(0o777))?;
        }
        // POSIX shared memory (shm_open) lives here.
        devroot.create(b"shm", NewNode::Directory, owner(0o1777))?;
        self.mount(&dev_dir, devfs)?;

        let procfs = ProcFs::new(self.me.clone(), self.clock.clone(), procinfo);
        *self.procfs.write() = Some(procfs.clone());
        self.mount(&proc_dir, procfs)?;
        Ok(())
    }

    fn ensure_dir(&self, parent: &Location, name: &[u8], perm: u32) -> KResult<Location> {
        match parent.inode.lookup(name) {
            Ok(inode) => {
                let loc = self.cross_mounts(parent.with_inode(inode));
                if !loc.is_dir() {
                    return Err(Errno::ENOTDIR);
                }
                Ok(loc)
            }
            Err(Errno::ENOENT) => {
                let inode = parent.inode.create(
                    name,
                    NewNode::Directory,
                    NewOwner {
                        perm,
                        uid: 0,
                        gid: 0,
                    },
                )?;
                Ok(parent.with_inode(inode))
            }
            Err(e) => Err(e),
        }
    }

    // ------------------------------------------------------------------
    // Path resolution
    // ------------------------------------------------------------------

    fn cross_mounts(&self, mut loc: Location) -> Location {
        if !loc.is_dir() {
            return loc;
        }
        let mounts = self.mounts.read();
        while let Some(m) = mounts.get(&(loc.mount.id, loc.inode.ino())) {
            loc = Location {
                mount: m.clone(),
                inode: m.root.clone(),
            };
        }
        loc
    }

    fn is_mountpoint(&self, dir: &Location, child: &Arc<dyn Inode>) -> bool {
        child.file_type() == FileType::Directory
            && self
                .mounts
                .read()
                .contains_key(&(dir.mount.id, child.ino()))
    }

    /// `..` of a directory, crossing out of mounts; the root's `..` is itself.
    pub fn parent_of(&self, loc: &Location) -> KResult<Location> {
        let mut cur = loc.clone();
        loop {
            if cur.is_mount_root() {
                match &cur.mount.mountpoint {
                    None => return Ok(cur),
                    Some(mp) => {
                        cur = mp.clone();
                        continue;
                    }
                }
            }
            let parent = cur.inode.parent()?;
            return Ok(cur.with_inode(parent));
        }
    }

    /// One step from directory `dir` by `name` (which may be "." or ".."), without
    /// following a final symlink.
    /// Under `openat2`'s restrictions, `..` may not leave the anchor and a step may not
    /// cross a mount.
    fn step(&self, dir: &Location, name: &[u8], w: &Walk) -> KResult<Location> {
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let next = match name {
            b"." => return Ok(dir.clone()),
            b".." => self.dotdot(dir, w)?,
            _ => {
                if name.len() > NAME_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                let child = dir.inode.lookup(name)?;
                self.cross_mounts(dir.with_inode(child))
            }
        };
        if w.resolve & RESOLVE_NO_XDEV != 0 && next.mount.id != dir.mount.id {
            return Err(Errno::EXDEV);
        }
        Ok(next)
    }

    /// `..` of `dir`; at the anchor of a confined walk it is an escape (`EXDEV`) for
    /// `RESOLVE_BENEATH` and stays put for `RESOLVE_IN_ROOT`, as Linux.
    fn dotdot(&self, dir: &Location, w: &Walk) -> KResult<Location> {
        if let Some(anchor) = w.anchor.as_ref().filter(|_| w.confined()) {
            if dir.same_as(anchor) {
                if w.resolve & RESOLVE_BENEATH != 0 {
                    return Err(Errno::EXDEV);
                }
                return Ok(dir.clone());
            }
        }
        self.parent_of(dir)
    }

    fn follow_link(&self, dir: &Location, link: &Location, w: &mut Walk) -> KResult<Resolved> {
        w.follow_one()?;
        let target = link.inode.readlink()?;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.walk(dir, &target, true, w)
    }

    /// Resolves everything but the last component: returns the directory that holds
    /// it, the last component, and whether the path ended in a slash.
    fn walk_parent<'p>(
        &self,
        base: &Location,
        path: &'p [u8],
        w: &mut Walk,
    ) -> KResult<(Location, Last<'p>, bool)> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut cur = if path[0] != b'/' {
            base.clone()
        } else if w.resolve & RESOLVE_BENEATH != 0 {
            return Err(Errno::EXDEV);
        } else if let Some(anchor) = w.anchor.as_ref().filter(|_| w.confined()) {
            // RESOLVE_IN_ROOT: "/" means the anchor.
            anchor.clone()
        } else {
            let root = self.root();
            if w.resolve & RESOLVE_NO_XDEV != 0 && root.mount.id != base.mount.id {
                return Err(Errno::EXDEV);
            }
            root
        };
        let components: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let trailing_slash = path.ends_with(b"/");
        let Some((&last, middle)) = components.split_last() else {
            return Ok((cur, Last::Root, trailing_slash));
        };
        for &component in middle {
            let next = self.step(&cur, component, w)?;
            cur = if next.file_type() == FileType::Symlink {
                self.follow_link(&cur, &next, w)?.loc
            } else {
                next
            };
        }
        if !cur.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let last = match last {
            b"." => Last::Dot,
            b".." => Last::DotDot,
            name => {
                if name.len() > NAME_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                Last::Name(name)
            }
        };
        Ok((cur, last, trailing_slash))
    }

    pub(crate) fn walk(
        &self,
        base: &Location,
        path: &[u8],
        follow_last: bool,
        w: &mut Walk,
    ) -> KResult<Resolved> {
        let (dir, last, trailing_slash) = self.walk_parent(base, path, w)?;
        let resolved = match last {
            Last::Root | Last::Dot => Resolved {
                loc: dir,
                parent: None,
            },
            Last::DotDot => Resolved {
                loc: self.step(&dir, b"..", w)?,
                parent: None,
            },
            Last::Name(name) => {
                let loc = self.step(&dir, name, w)?;
                if loc.file_type() == FileType::Symlink && (follow_last || trailing_slash) {
                    self.follow_link(&dir, &loc, w)?
                } else {
                    Resolved {
                        loc,
                        parent: Some((dir, name.to_vec())),
                    }
                }
            }
        };
        if trailing_slash && !resolved.loc.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(resolved)
    }

    /// Resolves `path` relative to `base` (absolute paths start at the root).
    /// `follow_last` says whether a final symlink is followed.
    pub fn resolve(&self, base: &Location, path: &[u8], follow_last: bool) -> KResult<Location> {
        Ok(self
            .walk(base, path, follow_last, &mut Walk::default())?
            .loc)
    }

    /// The absolute path of a directory (`ENOENT` if it was removed).
    pub fn path_of(&self, loc: &Location) -> KResult<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut cur = loc.clone();
        loop {
            if cur.is_mount_root() {
                match &cur.mount.mountpoint {
                    None => break,
                    Some(mp) => {
                        cur = mp.clone();
                        continue;
                    }
                }
            }
            if cur.inode.stat()?.nlink == 0 {
                return Err(Errno::ENOENT);
            }
            let parent = cur.inode.parent()?;
            names.push(parent.name_of(cur.inode.ino())?);
            cur = cur.with_inode(parent);
        }
        if names.is_empty() {
            return Ok(b"/".to_vec());
        }
        let mut path = Vec::new();
        for name in names.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        Ok(path)
    }

    /// The path of `name` inside directory `dir`.
    pub(crate) fn path_in(&self, dir: &Location, name: &[u8]) -> KResult<Vec<u8>> {
        let mut path = self.path_of(dir)?;
        if path != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        Ok(path)
    }

    // ------------------------------------------------------------------
    // Operations
    // ------------------------------------------------------------------

    /// `openat(2)`. `mode` is used as given: apply the umask first
    /// ([`FsContext::open`] does).
    pub fn open(
        &self,
        base: &Location,
        path: &[u8],
        flags: OpenFlags,
        mode: u32,
    ) -> KResult<Arc<OpenFile>> {
        self.open_resolve(base, path, flags, mode, 0)
    }

    /// `openat2(2)`: [`Vfs::open`] under `RESOLVE_*` restrictions. There are no magic
    /// links here (`/proc/self/fd/N` resolves by path), so `RESOLVE_NO_MAGICLINKS` has
    /// nothing to refuse; `RESOLVE_CACHED` always asks the caller to retry without it
    /// (`EAGAIN`), since a lookup on a volume may need device I/O.
    pub fn open_resolve(
        &self,
        base: &Location,
        path: &[u8],
        flags: OpenFlags,
        mode: u32,
        resolve: u64,
    ) -> KResult<Arc<OpenFile>> {
        const KNOWN: u64 = RESOLVE_NO_XDEV
            | RESOLVE_NO_MAGICLINKS
            | RESOLVE_NO_SYMLINKS
            | RESOLVE_BENEATH
            | RESOLVE_IN_ROOT
            | RESOLVE_CACHED;
        if resolve & !KNOWN != 0
            || resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) == RESOLVE_BENEATH | RESOLVE_IN_ROOT
        {
            return Err(Errno::EINVAL);
        }
        if resolve & RESOLVE_CACHED != 0 {
            return Err(Errno::EAGAIN);
        }
        let mut walk = Walk {
            links: 0,
            resolve,
            anchor: Some(base.clone()),
        };
        let mut flags = flags.0;
        if flags & OpenFlags::O_TMPFILE_BIT != 0 {
            // Unnamed temporary files need a linkable-but-unlinked inode state tmpfs
            // does not implement yet.
            return Err(Errno::EOPNOTSUPP);
        }
        if flags & OpenFlags::O_PATH != 0 {
            flags &= OpenFlags::O_PATH
                | OpenFlags::O_DIRECTORY
                | OpenFlags::O_NOFOLLOW
                | OpenFlags::O_CLOEXEC;
        }
        let creating = flags & OpenFlags::O_CREAT != 0;
        if creating && flags & OpenFlags::O_DIRECTORY != 0 {
            return Err(Errno::EINVAL);
        }
        let (resolved, created) = if creating {
            self.open_create(base, path, flags, mode, &mut walk)?
        } else {
            let follow = flags & OpenFlags::O_NOFOLLOW == 0;
            (self.walk(base, path, follow, &mut walk)?, false)
        };
        let file_type = resolved.loc.file_type();
        if flags & OpenFlags::O_DIRECTORY != 0 && file_type != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let open_flags = OpenFlags(flags);
        if flags & OpenFlags::O_PATH != 0 {
            return Ok(OpenFile::new_path(self.me.clone(), resolved, open_flags));
        }
        if file_type == FileType::Symlink {
            return Err(Errno::ELOOP);
        }
        let wants_write = open_flags.writable() || flags & OpenFlags::O_TRUNC != 0;
        if file_type == FileType::Directory && wants_write {
            return Err(Errno::EISDIR);
        }
        if wants_write && !resolved.loc.inode.writable() {
            return Err(Errno::EACCES);
        }
        match file_type {
            FileType::Regular => {
                if flags & OpenFlags::O_TRUNC != 0 && !created {
                    crate::coherence::set_size(&resolved.loc.inode, 0)?;
                }
                OpenFile::new_inode(self.me.clone(), resolved, open_flags)
            }
            FileType::Directory => OpenFile::new_inode(self.me.clone(), resolved, open_flags),
            FileType::CharDevice => {
                let rdev = resolved.loc.stat()?.rdev;
                let device = self.device(rdev).ok_or(Errno::ENXIO)?;
                Ok(OpenFile::new_device(
                    self.me.clone(),
                    resolved,
                    device,
                    open_flags,
                ))
            }
            // No block drivers are reachable through device nodes, and sockets are
            // not opened through paths (as on Linux).
            FileType::BlockDevice | FileType::Socket => Err(Errno::ENXIO),
            // FIFOs need pipes, which do not exist yet (mknod refuses to make them).
            FileType::Fifo => Err(Errno::EOPNOTSUPP),
            FileType::Symlink => Err(Errno::ELOOP),
        }
    }

    fn open_create(
        &self,
        base: &Location,
        path: &[u8],
        flags: u32,
        mode: u32,
        w: &mut Walk,
    ) -> KResult<(Resolved, bool)> {
        let (dir, last, trailing_slash) = self.walk_parent(base, path, w)?;
        let Last::Name(name) = last else {
            return Err(Errno::EISDIR);
        };
        if trailing_slash {
            return Err(Errno::EISDIR);
        }
        loop {
            match self.step(&dir, name, w) {
                Ok(existing) => {
                    if flags & OpenFlags::O_EXCL != 0 {
                        return Err(Errno::EEXIST);
                    }
                    if existing.file_type() == FileType::Symlink {
                        if flags & OpenFlags::O_NOFOLLOW != 0 {
                            return Err(Errno::ELOOP);
                        }
                        w.follow_one()?;
                        let target = existing.inode.readlink()?;
                        if target.is_empty() {
                            return Err(Errno::ENOENT);
                        }
                        return self.open_create(&dir, &target, flags, mode, w);
                    }
                    if existing.is_dir() {
                        return Err(Errno::EISDIR);
                    }
                    let parent = Some((dir, name.to_vec()));
                    return Ok((
                        Resolved {
                            loc: existing,
                            parent,
                        },
                        false,
                    ));
                }
                Err(Errno::ENOENT) => {
                    let owner = NewOwner {
                        perm: mode & MODE_PERM_MASK,
                        uid: 0,
                        gid: 0,
                    };
                    match dir.inode.create(name, NewNode::Regular, owner) {
                        Ok(inode) => {
                            let loc = dir.with_inode(inode);
                            let parent = Some((dir, name.to_vec()));
                            return Ok((Resolved { loc, parent }, true));
                        }
                        // Someone created it between our lookup and create: retry.
                        Err(Errno::EEXIST) if flags & OpenFlags::O_EXCL == 0 => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Resolves the parent of a path for a create: the directory and new name.
    /// `EEXIST` for "/", "." and ".."; with a trailing slash (allowed only when
    /// `dir_ok`), `EEXIST` if the name exists and `ENOENT` if not, as Linux.
    fn create_target<'p>(
        &self,
        base: &Location,
        path: &'p [u8],
        dir_ok: bool,
    ) -> KResult<(Location, &'p [u8])> {
        let (dir, last, trailing_slash) = self.walk_parent(base, path, &mut Walk::default())?;
        let Last::Name(name) = last else {
            return Err(Errno::EEXIST);
        };
        if trailing_slash && !dir_ok {
            return match dir.inode.lookup(name) {
                Ok(_) => Err(Errno::EEXIST),
                Err(Errno::ENOENT) => Err(Errno::ENOENT),
                Err(e) => Err(e),
            };
        }
        Ok((dir, name))
    }

    /// `mkdirat(2)`; `mode` after umask.
    pub fn mkdir(&self, base: &Location, path: &[u8], mode: u32) -> KResult<Location> {
        let (dir, name) = self.create_target(base, path, true)?;
        let owner = NewOwner {
            perm: mode & 0o1777,
            uid: 0,
            gid: 0,
        };
        let inode = dir.inode.create(name, NewNode::Directory, owner)?;
        Ok(dir.with_inode(inode))
    }

    /// `mknodat(2)`; `mode` (type and permissions) after umask. FIFOs give
    /// `EOPNOTSUPP` until pipes exist.
    pub fn mknod(&self, base: &Location, path: &[u8], mode: u32, rdev: u64) -> KResult<Location> {
        let (dir, name) = self.create_target(base, path, false)?;
        let node = match mode & S_IFMT {
            0 | S_IFREG => NewNode::Regular,
            S_IFCHR => NewNode::CharDevice(rdev),
            S_IFBLK => NewNode::BlockDevice(rdev),
            S_IFSOCK => NewNode::Socket,
            S_IFIFO => {
                if dir.inode.lookup(name).is_ok() {
                    return Err(Errno::EEXIST);
                }
                return Err(Errno::EOPNOTSUPP);
            }
            S_IFDIR => return Err(Errno::EPERM),
            _ => return Err(Errno::EINVAL),
        };
        let owner = NewOwner {
            perm: mode & MODE_PERM_MASK,
            uid: 0,
            gid: 0,
        };
        let inode = dir.inode.create(name, node, owner)?;
        Ok(dir.with_inode(inode))
    }

    /// `symlinkat(2)`: creates `path` pointing at `target`.
    pub fn symlink(&self, target: &[u8], base: &Location, path: &[u8]) -> KResult<()> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let (dir, name) = self.create_target(base, path, false)?;
        let owner = NewOwner {
            perm: 0o777,
            uid: 0,
            gid: 0,
        };
        dir.inode
            .create(name, NewNode::Symlink(target.to_vec()), owner)?;
        Ok(())
    }

    /// `linkat(2)`: a new name `new_path` for the file at `old_path`.
    pub fn link(
        &self,
        old_base: &Location,
        old_path: &[u8],
        new_base: &Location,
        new_path: &[u8],
        follow: bool,
    ) -> KResult<()> {
        let old = self.resolve(old_base, old_path, follow)?;
        self.link_location(&old, new_base, new_path)
    }

    /// Links an already resolved file (also for `linkat(AT_EMPTY_PATH)`).
    pub fn link_location(
        &self,
        old: &Location,
        new_base: &Location,
        new_path: &[u8],
    ) -> KResult<()> {
        let (dir, name) = self.create_target(new_base, new_path, false)?;
        if dir.inode.lookup(name).is_ok() {
            return Err(Errno::EEXIST);
        }
        if dir.mount.id != old.mount.id {
            return Err(Errno::EXDEV);
        }
        if old.is_dir() {
            return Err(Errno::EPERM);
        }
        dir.inode.link(name, &old.inode)
    }

    /// `unlinkat(2)`: `remove_dir` is `AT_REMOVEDIR` (rmdir).
    pub fn unlink(&self, base: &Location, path: &[u8], remove_dir: bool) -> KResult<()> {
        let (dir, last, trailing_slash) = self.walk_parent(base, path, &mut Walk::default())?;
        let name = match (last, remove_dir) {
            (Last::Name(name), _) => name,
            (Last::Dot, true) => return Err(Errno::EINVAL),
            (Last::DotDot, true) => return Err(Errno::ENOTEMPTY),
            (Last::Root, true) => return Err(Errno::EBUSY),
            (_, false) => return Err(Errno::EISDIR),
        };
        let child = dir.inode.lookup(name)?;
        if !remove_dir && trailing_slash {
            return Err(if child.file_type() == FileType::Directory {
                Errno::EISDIR
            } else {
                Errno::ENOTDIR
            });
        }
        if self.is_mountpoint(&dir, &child) {
            return Err(Errno::EBUSY);
        }
        dir.inode.unlink(name, remove_dir)
    }

    /// `renameat2(2)` with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`.
    pub fn rename(
        &self,
        old_base: &Location,
        old_path: &[u8],
        new_base: &Location,
        new_path: &[u8],
        flags: u32,
    ) -> KResult<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
            || (flags & RENAME_NOREPLACE != 0 && flags & RENAME_EXCHANGE != 0)
            || (flags & RENAME_WHITEOUT != 0 && flags & RENAME_EXCHANGE != 0)
        {
            return Err(Errno::EINVAL);
        }
        let (old_dir, old_last, old_slash) =
            self.walk_parent(old_base, old_path, &mut Walk::default())?;
        let (new_dir, new_last, new_slash) =
            self.walk_parent(new_base, new_path, &mut Walk::default())?;
        if old_dir.mount.id != new_dir.mount.id {
            return Err(Errno::EXDEV);
        }
        let Last::Name(old_name) = old_last else {
            return Err(Errno::EBUSY);
        };
        let Last::Name(new_name) = new_last else {
            return Err(if flags & RENAME_NOREPLACE != 0 {
                Errno::EEXIST
            } else {
                Errno::EBUSY
            });
        };
        let old = old_dir.inode.lookup(old_name)?;
        let new = match new_dir.inode.lookup(new_name) {
            Ok(n) => Some(n),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        let old_is_dir = old.file_type() == FileType::Directory;
        if !old_is_dir && (old_slash || (new_slash && flags & RENAME_EXCHANGE == 0)) {
            return Err(Errno::ENOTDIR);
        }
        if let Some(new) = &new {
            if flags & RENAME_EXCHANGE != 0 && new_slash && new.file_type() != FileType::Directory {
                return Err(Errno::ENOTDIR);
            }
            if self.is_mountpoint(&new_dir, new) {
                return Err(Errno::EBUSY);
            }
        }
        if self.is_mountpoint(&old_dir, &old) {
            return Err(Errno::EBUSY);
        }
        old_dir
            .mount
            .fs
            .rename(&old_dir.inode, old_name, &new_dir.inode, new_name, flags)
    }

    /// `readlinkat(2)`: the target of the symlink at `path` (`EINVAL` if not a symlink).
    pub fn readlink(&self, base: &Location, path: &[u8]) -> KResult<Vec<u8>> {
        self.resolve(base, path, false)?.inode.readlink()
    }

    /// `faccessat2(2)` for root: read and write are always allowed; execute needs an
    /// execute bit on non-directories.
    pub fn access(&self, base: &Location, path: &[u8], mode: u32, flags: u32) -> KResult<()> {
        if mode & !0o7 != 0 || flags & !ACCESS_FLAGS != 0 {
            return Err(Errno::EINVAL);
        }
        let loc = self.resolve(base, path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
        check_access(&loc, mode)
    }

    /// `fstatat(2)`.
    pub fn stat(&self, base: &Location, path: &[u8], follow: bool) -> KResult<Stat> {
        self.resolve(base, path, follow)?.stat()
    }

    /// `fchmodat(2)`; changing a symlink's own mode is `EOPNOTSUPP`, as on Linux.
    pub fn chmod(&self, base: &Location, path: &[u8], mode: u32, follow: bool) -> KResult<()> {
        let loc = self.resolve(base, path, follow)?;
        if loc.file_type() == FileType::Symlink {
            return Err(Errno::EOPNOTSUPP);
        }
        loc.inode.set_attr(&SetAttr {
            mode: Some(mode & MODE_PERM_MASK),
            ..SetAttr::default()
        })
    }

    /// `fchownat(2)`; `None` (-1) leaves an id unchanged.
    pub fn chown(
        &self,
        base: &Location,
        path: &[u8],
        uid: Option<u32>,
        gid: Option<u32>,
        follow: bool,
    ) -> KResult<()> {
        let loc = self.resolve(base, path, follow)?;
        loc.inode.set_attr(&SetAttr {
            uid,
            gid,
            ..SetAttr::default()
        })
    }

    /// `utimensat(2)`: `times` as the syscall passes them (`None` = now), with
    /// `UTIME_NOW`/`UTIME_OMIT`.
    pub fn utimens(
        &self,
        base: &Location,
        path: &[u8],
        times: Option<[crate::env::Timespec; 2]>,
        follow: bool,
    ) -> KResult<()> {
        let attr = SetAttr::from_utimens(times)?;
        let loc = self.resolve(base, path, follow)?;
        match attr {
            Some(attr) => loc.inode.set_attr(&attr),
            None => Ok(()),
        }
    }

    /// `truncate(2)`.
    pub fn truncate(&self, base: &Location, path: &[u8], len: i64) -> KResult<()> {
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        let loc = self.resolve(base, path, true)?;
        match loc.file_type() {
            FileType::Directory => Err(Errno::EISDIR),
            FileType::Regular if !loc.inode.writable() => Err(Errno::EACCES),
            FileType::Regular => crate::coherence::set_size(&loc.inode, len as u64),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `statfs(2)`.
    pub fn statfs(&self, base: &Location, path: &[u8]) -> KResult<StatFs> {
        Ok(self.resolve(base, path, true)?.mount.fs.statfs())
    }

    /// Text of /proc/mounts.
    pub(crate) fn mounts_text(&self) -> String {
        let mut out = String::new();
        for (path, mount) in self.mount_list() {
            let fs = &mount.fs;
            out.push_str(fs.source_name());
            out.push(' ');
            out.push_str(&String::from_utf8_lossy(&path));
            out.push(' ');
            out.push_str(fs.type_name());
            out.push(' ');
            out.push_str(fs.mount_options());
            out.push_str(" 0 0\n");
        }
        out
    }
}

/// Root's permission check: read/write always, execute needs any x bit on
/// non-directories.
pub(crate) fn check_access(loc: &Location, mode: u32) -> KResult<()> {
    if mode & X_OK != 0 {
        let st = loc.stat()?;
        if st.mode & S_IFMT != S_IFDIR && st.mode & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
    }
    Ok(())
}

/// Anonymous device numbers (major 0) for mounts, as Linux gives virtual filesystems.
fn anon_dev(mount_id: u64) -> u64 {
    makedev(0, 20 + mount_id as u32)
}
