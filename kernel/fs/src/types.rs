//! Plain data shared by every part of the VFS: file types and mode bits, open flags,
//! `Stat`/`StatFs` with their exact Linux x86_64 byte layouts, attribute changes, and
//! device numbers.

use crate::env::Timespec;
use skiff_errno::{Errno, KResult};

/// File type bits of `st_mode`.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;
/// Permission and special bits (everything a `chmod` may set).
pub const MODE_PERM_MASK: u32 = 0o7777;

/// The kind of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The `S_IF*` bits for this type.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => S_IFREG,
            FileType::Directory => S_IFDIR,
            FileType::Symlink => S_IFLNK,
            FileType::CharDevice => S_IFCHR,
            FileType::BlockDevice => S_IFBLK,
            FileType::Fifo => S_IFIFO,
            FileType::Socket => S_IFSOCK,
        }
    }

    /// Decodes the `S_IF*` bits of a mode; `None` for an invalid type.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFLNK => FileType::Symlink,
            S_IFCHR => FileType::CharDevice,
            S_IFBLK => FileType::BlockDevice,
            S_IFIFO => FileType::Fifo,
            S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }

    /// The `d_type` value of `linux_dirent64`.
    pub fn dirent_type(self) -> u8 {
        match self {
            FileType::Fifo => 1,
            FileType::CharDevice => 2,
            FileType::Directory => 4,
            FileType::BlockDevice => 6,
            FileType::Regular => 8,
            FileType::Symlink => 10,
            FileType::Socket => 12,
        }
    }
}

/// Encodes a device number like glibc's `makedev` (and the kernel's `new_encode_dev`).
pub const fn makedev(major: u32, minor: u32) -> u64 {
    let major = major as u64;
    let minor = minor as u64;
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// The major number of a device encoded by [`makedev`].
pub const fn dev_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

/// The minor number of a device encoded by [`makedev`].
pub const fn dev_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// Flags of `open(2)`, with Linux x86_64 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    pub const O_RDONLY: u32 = 0;
    pub const O_WRONLY: u32 = 1;
    pub const O_RDWR: u32 = 2;
    pub const O_ACCMODE: u32 = 3;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_NOCTTY: u32 = 0o400;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_NONBLOCK: u32 = 0o4000;
    pub const O_DSYNC: u32 = 0o10000;
    pub const O_ASYNC: u32 = 0o20000;
    pub const O_DIRECT: u32 = 0o40000;
    pub const O_LARGEFILE: u32 = 0o100000;
    pub const O_DIRECTORY: u32 = 0o200000;
    pub const O_NOFOLLOW: u32 = 0o400000;
    pub const O_NOATIME: u32 = 0o1000000;
    pub const O_CLOEXEC: u32 = 0o2000000;
    pub const O_SYNC: u32 = 0o4010000;
    pub const O_PATH: u32 = 0o10000000;
    /// `__O_TMPFILE`; `O_TMPFILE` is this plus `O_DIRECTORY`.
    pub const O_TMPFILE_BIT: u32 = 0o20000000;
    pub const O_TMPFILE: u32 = 0o20200000;
    /// The flags `F_SETFL` may change.
    pub const SETFL_MASK: u32 = Self::O_APPEND | Self::O_NONBLOCK;

    pub fn has(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
    pub fn access_mode(self) -> u32 {
        self.0 & Self::O_ACCMODE
    }
    /// Read access was requested (`O_RDONLY` or `O_RDWR`).
    pub fn readable(self) -> bool {
        matches!(self.access_mode(), Self::O_RDONLY | Self::O_RDWR)
    }
    /// Write access was requested (`O_WRONLY` or `O_RDWR`).
    pub fn writable(self) -> bool {
        matches!(self.access_mode(), Self::O_WRONLY | Self::O_RDWR)
    }
}

/// Flags of `renameat2(2)`.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
pub const RENAME_WHITEOUT: u32 = 4;

/// `access(2)` mode bits and `faccessat2` flags.
pub const F_OK: u32 = 0;
pub const X_OK: u32 = 1;
pub const W_OK: u32 = 2;
pub const R_OK: u32 = 4;
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
pub const AT_EACCESS: u32 = 0x200;

/// `lseek` whence values.
pub const SEEK_SET: u32 = 0;
pub const SEEK_CUR: u32 = 1;
pub const SEEK_END: u32 = 2;
pub const SEEK_DATA: u32 = 3;
pub const SEEK_HOLE: u32 = 4;

/// `utimensat` special nanosecond values.
pub const UTIME_NOW: i64 = (1 << 30) - 1;
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

/// Largest file size and offset (Linux `MAX_LFS_FILESIZE` on 64-bit).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// How one timestamp changes in a [`SetAttr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUpdate {
    Now,
    Set(Timespec),
}

/// An attribute change (`chmod`, `chown`, `utimensat`). `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (`MODE_PERM_MASK` part only).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<TimeUpdate>,
    pub mtime: Option<TimeUpdate>,
}

impl SetAttr {
    /// Decodes `utimensat`'s `times` argument (`None` = both now); `EINVAL` for a bad
    /// nanosecond value. Returns `None` when both are `UTIME_OMIT` (nothing changes, not
    /// even ctime, as on Linux).
    pub fn from_utimens(times: Option<[Timespec; 2]>) -> KResult<Option<SetAttr>> {
        let Some(times) = times else {
            return Ok(Some(SetAttr {
                atime: Some(TimeUpdate::Now),
                mtime: Some(TimeUpdate::Now),
                ..SetAttr::default()
            }));
        };
        let decode = |t: Timespec| -> KResult<Option<TimeUpdate>> {
            match t.nsec {
                UTIME_NOW => Ok(Some(TimeUpdate::Now)),
                UTIME_OMIT => Ok(None),
                0..=999_999_999 => Ok(Some(TimeUpdate::Set(t))),
                _ => Err(Errno::EINVAL),
            }
        };
        let atime = decode(times[0])?;
        let mtime = decode(times[1])?;
        if atime.is_none() && mtime.is_none() {
            return Ok(None);
        }
        Ok(Some(SetAttr {
            atime,
            mtime,
            ..SetAttr::default()
        }))
    }
}

/// File metadata, the VFS's form of `struct stat`/`struct statx`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u32,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Creation time where the filesystem records it.
    pub btime: Option<Timespec>,
    /// Id of the mount the file was reached through (`stx_mnt_id`).
    pub mount_id: u64,
}

pub const STATX_TYPE: u32 = 0x1;
pub const STATX_MODE: u32 = 0x2;
pub const STATX_NLINK: u32 = 0x4;
pub const STATX_UID: u32 = 0x8;
pub const STATX_GID: u32 = 0x10;
pub const STATX_ATIME: u32 = 0x20;
pub const STATX_MTIME: u32 = 0x40;
pub const STATX_CTIME: u32 = 0x80;
pub const STATX_INO: u32 = 0x100;
pub const STATX_SIZE: u32 = 0x200;
pub const STATX_BLOCKS: u32 = 0x400;
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_BTIME: u32 = 0x800;
pub const STATX_MNT_ID: u32 = 0x1000;
pub const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
/// Reserved for future `struct statx` expansion; requesting it is `EINVAL`.
pub const STATX_RESERVED: u32 = 0x8000_0000;

fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn put_i64(buf: &mut [u8], at: usize, v: i64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

impl Stat {
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }

    /// The x86_64 `struct stat` (144 bytes).
    pub fn to_linux_stat(&self) -> [u8; 144] {
        let mut b = [0u8; 144];
        put_u64(&mut b, 0, self.dev);
        put_u64(&mut b, 8, self.ino);
        put_u64(&mut b, 16, self.nlink);
        put_u32(&mut b, 24, self.mode);
        put_u32(&mut b, 28, self.uid);
        put_u32(&mut b, 32, self.gid);
        put_u64(&mut b, 40, self.rdev);
        put_i64(&mut b, 48, self.size as i64);
        put_i64(&mut b, 56, self.blksize as i64);
        put_i64(&mut b, 64, self.blocks as i64);
        put_i64(&mut b, 72, self.atime.sec);
        put_i64(&mut b, 80, self.atime.nsec);
        put_i64(&mut b, 88, self.mtime.sec);
        put_i64(&mut b, 96, self.mtime.nsec);
        put_i64(&mut b, 104, self.ctime.sec);
        put_i64(&mut b, 112, self.ctime.nsec);
        b
    }

    /// Validates a `statx` request mask (`EINVAL` for the reserved bit).
    pub fn check_statx_mask(request_mask: u32) -> KResult<()> {
        if request_mask & STATX_RESERVED != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Linux `struct statx` (256 bytes). Like Linux, every field the filesystem knows is
    /// filled whatever was requested and `stx_mask` says which are valid; the request
    /// only picks between `STATX_MNT_ID` and `STATX_MNT_ID_UNIQUE`.
    pub fn to_statx(&self, request_mask: u32) -> [u8; 256] {
        let mut b = [0u8; 256];
        let mut mask = STATX_BASIC_STATS;
        if self.btime.is_some() {
            mask |= STATX_BTIME;
        }
        mask |= if request_mask & STATX_MNT_ID_UNIQUE != 0 {
            STATX_MNT_ID_UNIQUE
        } else {
            STATX_MNT_ID
        };
        put_u32(&mut b, 0, mask);
        put_u32(&mut b, 4, self.blksize);
        put_u64(&mut b, 8, 0); // stx_attributes
        put_u32(&mut b, 16, self.nlink.min(u32::MAX as u64) as u32);
        put_u32(&mut b, 20, self.uid);
        put_u32(&mut b, 24, self.gid);
        put_u16(&mut b, 28, self.mode as u16);
        put_u64(&mut b, 32, self.ino);
        put_u64(&mut b, 40, self.size);
        put_u64(&mut b, 48, self.blocks);
        put_u64(&mut b, 56, 0); // stx_attributes_mask
        let mut ts = |at: usize, t: Timespec| {
            put_i64(&mut b, at, t.sec);
            put_u32(&mut b, at + 8, t.nsec as u32);
        };
        ts(64, self.atime);
        ts(80, self.btime.unwrap_or_default());
        ts(96, self.ctime);
        ts(112, self.mtime);
        put_u32(&mut b, 128, dev_major(self.rdev));
        put_u32(&mut b, 132, dev_minor(self.rdev));
        put_u32(&mut b, 136, dev_major(self.dev));
        put_u32(&mut b, 140, dev_minor(self.dev));
        put_u64(&mut b, 144, self.mount_id);
        b
    }
}

/// Magic numbers of `statfs.f_type`.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;
/// The pseudo filesystems Linux keeps files without a name on: pipes, sockets,
/// anonymous-inode files (eventfd, epoll) and terminals (`/dev/pts`).
pub const PIPEFS_MAGIC: u64 = 0x5049_5045;
pub const SOCKFS_MAGIC: u64 = 0x534f_434b;
pub const ANON_INODE_FS_MAGIC: u64 = 0x0904_1934;
pub const DEVPTS_SUPER_MAGIC: u64 = 0x1cd1;

/// `statfs` mount flags.
pub const ST_NOSUID: u64 = 0x2;
pub const ST_NODEV: u64 = 0x4;
pub const ST_NOEXEC: u64 = 0x8;
pub const ST_RELATIME: u64 = 0x1000;
/// Set by Linux on every `statfs` result that carries `f_flags`.
pub const ST_VALID: u64 = 0x20;

/// File-system statistics, the VFS's form of `struct statfs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    pub fs_type: u64,
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_avail: u64,
    pub files: u64,
    pub files_free: u64,
    pub fsid: [u32; 2],
    pub name_len: u64,
    pub fragment_size: u64,
    pub flags: u64,
}

impl StatFs {
    /// The x86_64 `struct statfs` (120 bytes).
    pub fn to_linux_statfs(&self) -> [u8; 120] {
        let mut b = [0u8; 120];
        put_u64(&mut b, 0, self.fs_type);
        put_u64(&mut b, 8, self.block_size);
        put_u64(&mut b, 16, self.blocks);
        put_u64(&mut b, 24, self.blocks_free);
        put_u64(&mut b, 32, self.blocks_avail);
        put_u64(&mut b, 40, self.files);
        put_u64(&mut b, 48, self.files_free);
        put_u32(&mut b, 56, self.fsid[0]);
        put_u32(&mut b, 60, self.fsid[1]);
        put_u64(&mut b, 64, self.name_len);
        put_u64(&mut b, 72, self.fragment_size);
        put_u64(&mut b, 80, self.flags | ST_VALID);
        b
    }
}

/// Longest name of one path component.
pub const NAME_MAX: usize = 255;
/// Longest path including its terminating NUL.
pub const PATH_MAX: usize = 4096;
/// Most symbolic links followed in one resolution.
pub const MAX_SYMLINKS: u32 = 40;

/// Checks a name for one directory entry: `ENAMETOOLONG` above `NAME_MAX`.
pub fn check_name(name: &[u8]) -> KResult<()> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}
