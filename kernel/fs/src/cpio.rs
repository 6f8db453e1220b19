//! Unpacking a cpio archive (`newc` "070701" and its checksummed variant "070702")
//! into the VFS, the way Linux unpacks an initramfs: regular files, directories,
//! symlinks, device nodes and hard links (entries sharing an inode number with
//! `nlink > 1`), with their modes, owners and modification times. Later entries
//! replace earlier files of the same path. A malformed archive gives `EINVAL`.

use crate::env::Timespec;
use crate::types::{makedev, FileType, SetAttr, TimeUpdate, MODE_PERM_MASK, S_IFMT};
use crate::vfs::{Location, Vfs};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};

const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";

/// What an unpack created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub files: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub hard_links: usize,
    pub devices: usize,
    /// Entries that cannot be represented yet (FIFOs, until pipes exist).
    pub skipped: usize,
    /// Bytes of file data written.
    pub bytes: u64,
}

struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    devmajor: u32,
    devminor: u32,
    rdevmajor: u32,
    rdevminor: u32,
    namesize: u32,
    check: u32,
}

fn hex_field(bytes: &[u8]) -> KResult<u32> {
    let mut v: u32 = 0;
    for &b in bytes {
        let digit = (b as char).to_digit(16).ok_or(Errno::EINVAL)?;
        v = (v << 4) | digit;
    }
    Ok(v)
}

fn parse_header(h: &[u8]) -> KResult<(Header, bool)> {
    let with_crc = match &h[..6] {
        b"070701" => false,
        b"070702" => true,
        _ => return Err(Errno::EINVAL),
    };
    let f = |i: usize| hex_field(&h[6 + i * 8..6 + (i + 1) * 8]);
    Ok((
        Header {
            ino: f(0)?,
            mode: f(1)?,
            uid: f(2)?,
            gid: f(3)?,
            nlink: f(4)?,
            mtime: f(5)?,
            filesize: f(6)?,
            devmajor: f(7)?,
            devminor: f(8)?,
            rdevmajor: f(9)?,
            rdevminor: f(10)?,
            namesize: f(11)?,
            check: f(12)?,
        },
        with_crc,
    ))
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Unpacks `archive` into `vfs`, starting at its root.
pub fn unpack_cpio(vfs: &Vfs, archive: &[u8]) -> KResult<UnpackStats> {
    let mut stats = UnpackStats::default();
    let mut hard_links: BTreeMap<(u32, u32, u32), Location> = BTreeMap::new();
    let mut dir_times: Vec<(Location, u32)> = Vec::new();
    let mut offset = 0usize;
    loop {
        let header_end = offset.checked_add(HEADER_LEN).ok_or(Errno::EINVAL)?;
        let header_bytes = archive.get(offset..header_end).ok_or(Errno::EINVAL)?;
        let (h, with_crc) = parse_header(header_bytes)?;
        if h.namesize == 0 {
            return Err(Errno::EINVAL);
        }
        let name_end = header_end
            .checked_add(h.namesize as usize)
            .ok_or(Errno::EINVAL)?;
        let name_field = archive.get(header_end..name_end).ok_or(Errno::EINVAL)?;
        let (name, nul) = name_field.split_at(name_field.len() - 1);
        if nul != [0] || name.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let data_start = align4(name_end).ok_or(Errno::EINVAL)?;
        let data_end = data_start
            .checked_add(h.filesize as usize)
            .ok_or(Errno::EINVAL)?;
        let data = archive.get(data_start..data_end).ok_or(Errno::EINVAL)?;
        if name == TRAILER {
            break;
        }
        if with_crc && FileType::from_mode(h.mode) == Some(FileType::Regular) {
            let sum = data.iter().fold(0u32, |acc, &b| acc.wrapping_add(b as u32));
            if sum != h.check {
                return Err(Errno::EINVAL);
            }
        }
        unpack_entry(
            vfs,
            &h,
            name,
            data,
            &mut stats,
            &mut hard_links,
            &mut dir_times,
        )?;
        offset = align4(data_end).ok_or(Errno::EINVAL)?;
    }
    // Creating entries changed directory mtimes; restore the archive's at the end.
    for (loc, mtime) in dir_times {
        let t = TimeUpdate::Set(Timespec::new(mtime as i64, 0));
        loc.inode().set_attr(&SetAttr {
            atime: Some(t),
            mtime: Some(t),
            ..SetAttr::default()
        })?;
    }
    Ok(stats)
}

/// The archive name as a path below the root ("./a", "/a" and "a" are the same).
fn normalize(mut name: &[u8]) -> &[u8] {
    loop {
        if let Some(rest) = name.strip_prefix(b"./") {
            name = rest;
        } else if let Some(rest) = name.strip_prefix(b"/") {
            name = rest;
        } else {
            break;
        }
    }
    if name == b"." {
        return b"";
    }
    name
}

/// Creates the missing directories above `path` (mode 0755).
fn make_parents(vfs: &Vfs, root: &Location, path: &[u8]) -> KResult<()> {
    let mut end = 0;
    while let Some(slash) = path[end..].iter().position(|&b| b == b'/') {
        let prefix = &path[..end + slash];
        end += slash + 1;
        if prefix.is_empty() {
            continue;
        }
        match vfs.resolve(root, prefix, true) {
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                vfs.mkdir(root, prefix, 0o755)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes what is at `path` unless it is a directory and a directory is wanted.
/// Returns the existing directory when it is kept.
fn clear_path(
    vfs: &Vfs,
    root: &Location,
    path: &[u8],
    want_dir: bool,
) -> KResult<Option<Location>> {
    match vfs.resolve(root, path, false) {
        Ok(existing) if existing.is_dir() => {
            if want_dir {
                return Ok(Some(existing));
            }
            vfs.unlink(root, path, true)?;
            Ok(None)
        }
        Ok(_) => {
            vfs.unlink(root, path, false)?;
            Ok(None)
        }
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn unpack_entry(
    vfs: &Vfs,
    h: &Header,
    raw_name: &[u8],
    data: &[u8],
    stats: &mut UnpackStats,
    hard_links: &mut BTreeMap<(u32, u32, u32), Location>,
    dir_times: &mut Vec<(Location, u32)>,
) -> KResult<()> {
    let root = vfs.root();
    let path = normalize(raw_name);
    let file_type = FileType::from_mode(h.mode).ok_or(Errno::EINVAL)?;
    let attrs = SetAttr {
        mode: Some(h.mode & MODE_PERM_MASK),
        uid: Some(h.uid),
        gid: Some(h.gid),
        ..SetAttr::default()
    };
    let mtime = TimeUpdate::Set(Timespec::new(h.mtime as i64, 0));
    let times = SetAttr {
        atime: Some(mtime),
        mtime: Some(mtime),
        ..SetAttr::default()
    };
    if path.is_empty() {
        // The archive's "." entry describes the root directory itself.
        if file_type != FileType::Directory {
            return Err(Errno::EINVAL);
        }
        root.inode().set_attr(&attrs)?;
        dir_times.push((root, h.mtime));
        return Ok(());
    }
    make_parents(vfs, &root, path)?;
    if file_type == FileType::Directory {
        let loc = match clear_path(vfs, &root, path, true)? {
            Some(existing) => existing,
            None => vfs.mkdir(&root, path, h.mode & MODE_PERM_MASK)?,
        };
        loc.inode().set_attr(&attrs)?;
        dir_times.push((loc, h.mtime));
        stats.dirs += 1;
        return Ok(());
    }
    clear_path(vfs, &root, path, false)?;
    let loc = match file_type {
        FileType::Regular => {
            let key = (h.ino, h.devmajor, h.devminor);
            let loc = match hard_links.get(&key).filter(|_| h.nlink > 1) {
                Some(first) => {
                    vfs.link_location(first, &root, path)?;
                    stats.hard_links += 1;
                    first.clone()
                }
                None => {
                    let loc = vfs.mknod(&root, path, S_IFMT & h.mode, 0)?;
                    if h.nlink > 1 {
                        hard_links.insert(key, loc.clone());
                    }
                    stats.files += 1;
                    loc
                }
            };
            // With hard links the data usually travels with the last name (GNU cpio);
            // write it into the shared inode whichever entry carries it.
            if !data.is_empty() {
                let mut written = 0;
                while written < data.len() {
                    written += loc.inode().write_at(written as u64, &data[written..])?;
                }
                stats.bytes += data.len() as u64;
            }
            loc
        }
        FileType::Symlink => {
            vfs.symlink(data, &root, path)?;
            stats.symlinks += 1;
            vfs.resolve(&root, path, false)?
        }
        FileType::CharDevice | FileType::BlockDevice | FileType::Socket => {
            let rdev = makedev(h.rdevmajor, h.rdevminor);
            stats.devices += 1;
            vfs.mknod(&root, path, h.mode & S_IFMT, rdev)?
        }
        FileType::Fifo => {
            // FIFOs need pipes, which do not exist yet; the entry is counted and left out.
            stats.skipped += 1;
            return Ok(());
        }
        FileType::Directory => unreachable!("handled above"),
    };
    if file_type != FileType::Symlink {
        loc.inode().set_attr(&attrs)?;
    } else {
        loc.inode().set_attr(&SetAttr {
            mode: None,
            ..attrs
        })?;
    }
    loc.inode().set_attr(&times)?;
    Ok(())
}
