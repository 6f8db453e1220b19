//! The two traits every filesystem implements: [`FileSystem`] (one mounted instance) and
//! [`Inode`] (one file, directory, symlink or device node in it). tmpfs, devtmpfs and
//! procfs implement them today; a FAT volume can implement them later and be mounted
//! through the same mount table.
//!
//! Inodes know nothing about mounts, descriptors or path strings: the VFS walks paths,
//! crosses mounts and applies Linux's rules that are independent of storage; inodes
//! apply the rules that need their own locks (existence, emptiness, link counts).

use crate::env::Timespec;
use crate::types::{FileType, SetAttr, Stat, StatFs, RENAME_EXCHANGE, RENAME_NOREPLACE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use skiff_errno::{Errno, KResult};

/// What [`Inode::create`] makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewNode {
    Regular,
    Directory,
    Symlink(Vec<u8>),
    /// A character device node with this device number.
    CharDevice(u64),
    BlockDevice(u64),
    Fifo,
    Socket,
}

impl NewNode {
    pub fn file_type(&self) -> FileType {
        match self {
            NewNode::Regular => FileType::Regular,
            NewNode::Directory => FileType::Directory,
            NewNode::Symlink(_) => FileType::Symlink,
            NewNode::CharDevice(_) => FileType::CharDevice,
            NewNode::BlockDevice(_) => FileType::BlockDevice,
            NewNode::Fifo => FileType::Fifo,
            NewNode::Socket => FileType::Socket,
        }
    }
}

/// Owner and permission bits of a new inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOwner {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
}

/// One directory entry as [`Inode::read_dir`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Position of this entry; the next read starts at `cookie + 1`. Cookies are
    /// at least [`FIRST_COOKIE`] (0 and 1 are "." and "..") and never reused within a
    /// directory, so a reader's position survives insertions and removals.
    pub cookie: u64,
    pub name: Vec<u8>,
    pub ino: u64,
    pub file_type: FileType,
}

/// First cookie a filesystem may give a real entry.
pub const FIRST_COOKIE: u64 = 2;

/// One file, directory, symlink or special file. Methods that do not apply to the
/// inode's type keep their default, which returns Linux's errno for that misuse.
pub trait Inode: Send + Sync {
    /// For filesystem-internal downcasts (rename and link between two directories of
    /// the same filesystem).
    fn as_any(&self) -> &dyn Any;
    fn ino(&self) -> u64;
    fn file_type(&self) -> FileType;
    /// Metadata; `dev` and `mount_id` are filled in by the VFS.
    fn stat(&self) -> KResult<Stat>;
    /// Applies an attribute change and updates ctime.
    fn set_attr(&self, attr: &SetAttr) -> KResult<()>;

    // ---- regular files ----

    /// Reads at `offset`; returns 0 at or past the end. Updates atime (relatime).
    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> KResult<usize> {
        Err(self.wrong_type_error())
    }
    /// Writes at `offset`, growing the file; updates mtime and ctime.
    fn write_at(&self, _offset: u64, _buf: &[u8]) -> KResult<usize> {
        Err(self.wrong_type_error())
    }
    /// Writes at the current end in one step; returns (bytes written, new end).
    fn append(&self, _buf: &[u8]) -> KResult<(usize, u64)> {
        Err(self.wrong_type_error())
    }
    /// Sets the size (holes read as zeros); updates mtime and ctime if it changed.
    fn set_size(&self, _len: u64) -> KResult<()> {
        Err(self.wrong_type_error())
    }
    /// For `SEEK_DATA` (`want_hole == false`) and `SEEK_HOLE`: the first offset at or
    /// after `offset` of the wanted kind. `ENXIO` at or past the end. The default treats
    /// the whole file as data.
    fn seek_data_or_hole(&self, offset: u64, want_hole: bool) -> KResult<u64> {
        let size = self.stat()?.size;
        if offset >= size {
            return Err(Errno::ENXIO);
        }
        Ok(if want_hole { size } else { offset })
    }
    /// Synthetic files (procfs) produce their whole content when opened; `None` for
    /// ordinary files, whose content is read with `read_at`.
    fn snapshot(&self) -> Option<KResult<Vec<u8>>> {
        None
    }
    /// Whether the file may be opened for writing (procfs files may not: `EACCES`).
    fn writable(&self) -> bool {
        true
    }
    /// `fallocate(FALLOC_FL_KEEP_SIZE)`: guarantees that writes up to `end` will not
    /// fail for lack of space, without changing the size. Memory-backed files have no
    /// blocks to reserve (the default); a filesystem that cannot reserve says so.
    fn reserve(&self, _end: u64) -> KResult<()> {
        Ok(())
    }
    /// `fsync` (`data_only`: `fdatasync`): this inode's data, and the metadata needed
    /// to read it back, reach stable storage. Memory-backed filesystems have nothing to do.
    fn sync(&self, _data_only: bool) -> KResult<()> {
        Ok(())
    }

    // ---- symlinks ----

    fn readlink(&self) -> KResult<Vec<u8>> {
        Err(Errno::EINVAL)
    }

    // ---- directories ----

    /// The entry `name` (never "." or ".."). `ENOENT` if missing.
    fn lookup(&self, _name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }
    /// The directory containing this one; a filesystem root returns itself.
    fn parent(&self) -> KResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }
    /// Creates `name`; `EEXIST` if it exists, `ENOENT` if this directory was removed.
    fn create(&self, _name: &[u8], _node: NewNode, _owner: NewOwner) -> KResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }
    /// Adds a hard link `name` to `target` (same filesystem, not a directory).
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> KResult<()> {
        Err(Errno::ENOTDIR)
    }
    /// Removes `name`: with `remove_dir` it must be an empty directory (`ENOTDIR`,
    /// `ENOTEMPTY`), otherwise it must not be a directory (`EISDIR`).
    fn unlink(&self, _name: &[u8], _remove_dir: bool) -> KResult<()> {
        Err(Errno::ENOTDIR)
    }
    /// The first entry whose cookie is `>= cookie`, or `None` at the end.
    /// Updates atime (relatime).
    fn read_dir(&self, _cookie: u64) -> KResult<Option<DirEntry>> {
        Err(Errno::ENOTDIR)
    }

    /// The name under which this directory lists inode `ino` (for `getcwd` and
    /// /proc/self/fd). The default scans `read_dir`; filesystems whose `read_dir`
    /// updates atime should override it, since finding a path is not a read.
    fn name_of(&self, ino: u64) -> KResult<Vec<u8>> {
        let mut cookie = 0;
        while let Some(entry) = self.read_dir(cookie)? {
            if entry.ino == ino {
                return Ok(entry.name);
            }
            cookie = entry.cookie + 1;
        }
        Err(Errno::ENOENT)
    }

    /// Error for a file operation on the wrong type of inode.
    fn wrong_type_error(&self) -> Errno {
        match self.file_type() {
            FileType::Directory => Errno::EISDIR,
            _ => Errno::EINVAL,
        }
    }
}

/// One mounted filesystem instance.
pub trait FileSystem: Send + Sync {
    fn root(&self) -> Arc<dyn Inode>;
    /// Type name as in /proc/mounts and /proc/filesystems ("tmpfs", "proc", ...).
    fn type_name(&self) -> &'static str;
    /// Source column of /proc/mounts.
    fn source_name(&self) -> &'static str {
        self.type_name()
    }
    /// Mount options column of /proc/mounts.
    fn mount_options(&self) -> &'static str {
        "rw,relatime"
    }
    fn statfs(&self) -> StatFs;
    /// `syncfs`: everything written to this filesystem reaches stable storage.
    fn sync(&self) -> KResult<()> {
        Ok(())
    }
    /// Makes the filesystem clean on its device (a volume's dirty flag cleared) before
    /// the machine stops; every later operation fails with `EIO`.
    fn unmount(&self) -> KResult<()> {
        Ok(())
    }
    /// Renames `old_name` in `old_dir` to `new_name` in `new_dir` (both in this
    /// filesystem, names already checked not to be "." or ".."), applying the rules of
    /// [`check_rename`] atomically with the change.
    fn rename(
        &self,
        old_dir: &Arc<dyn Inode>,
        old_name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: u32,
    ) -> KResult<()>;
}

/// Linux's type rules for a rename whose source is `old` and whose target (if any) is
/// `new`. Returns `Ok(false)` when nothing must be done (both names are links to the
/// same inode). `new_is_empty_dir` tells whether a directory target is empty.
pub fn check_rename(
    old: &dyn Inode,
    new: Option<&dyn Inode>,
    new_is_empty_dir: bool,
    flags: u32,
) -> KResult<bool> {
    let Some(new) = new else {
        if flags & RENAME_EXCHANGE != 0 {
            return Err(Errno::ENOENT);
        }
        return Ok(true);
    };
    if flags & RENAME_NOREPLACE != 0 {
        return Err(Errno::EEXIST);
    }
    if old.ino() == new.ino() {
        return Ok(false);
    }
    if flags & RENAME_EXCHANGE != 0 {
        return Ok(true);
    }
    let old_dir = old.file_type() == FileType::Directory;
    let new_dir = new.file_type() == FileType::Directory;
    match (old_dir, new_dir) {
        (true, false) => Err(Errno::ENOTDIR),
        (false, true) => Err(Errno::EISDIR),
        (true, true) if !new_is_empty_dir => Err(Errno::ENOTEMPTY),
        _ => Ok(true),
    }
}

/// Linux "relatime": whether a read at `now` should update an atime.
pub fn relatime_due(atime: Timespec, mtime: Timespec, ctime: Timespec, now: Timespec) -> bool {
    mtime >= atime || ctime >= atime || now.sec - atime.sec >= 24 * 60 * 60
}
