//! [`FatInode`]: one file or directory of a FAT volume.
//!
//! # Identity
//!
//! An entry is identified by its position: the byte offset of its short entry on the
//! volume (unique, and stable until the entry is renamed or removed, which only this
//! crate does). The volume keeps position → (inode number, live inode), so two lookups
//! of the same file, whatever the case of the name, share one inode while it lives, and
//! a file keeps its inode number for the life of the mount (across renames too). Inode
//! numbers come from a counter; the root is 1. `getdents` cookies are the index of the
//! short entry in its directory plus 2, stable across insertions and removals of other
//! entries.
//!
//! # What FAT cannot store
//!
//! * No owners or permission bits: files and directories report mode 0755 and owner 0,
//!   like Linux vfat with its default `umask=022` and no `showexec` (read-only
//!   attribute: 0555). `chmod`/`chown` are recorded in memory for the life of the mount
//!   (keyed by inode number) and forgotten at unmount; the mode given at creation is
//!   ignored, as on Linux.
//! * No symlinks, hard links, device nodes, FIFOs or sockets: `EPERM`, as Linux vfat.
//! * Files are at most 4 GiB - 1 bytes: `EFBIG` beyond (a write that crosses the limit
//!   is short).
//! * No holes: growing a file (truncate, or writing past the end) writes zeros.
//! * Times are UTC with FAT's resolution (modification 2 s, access 1 day, creation
//!   10 ms); the change time is the modification time, plus in-memory updates.
//! * Names are case-insensitive and case-preserving, at most 255 UTF-16 units
//!   (`ENAMETOOLONG`); names with `"*/:<>?\|` or control characters are `EINVAL`;
//!   trailing dots and spaces are ignored (all as on Linux vfat).
//! * Unlinking a file that is still open keeps its data: the entry moves into the
//!   hidden orphan directory (see [`crate::ORPHAN_DIR`]) and is removed when the last
//!   reference goes. On a volume too full for that, the entry goes at once and the
//!   inode keeps the clusters, as Linux does (after a crash they are lost clusters for
//!   fsck).
//! * The fixed root directory of FAT12/16 holds a fixed number of entries: `ENOSPC`
//!   when it is full, as for a full volume.
//! * `renameat2`: `RENAME_NOREPLACE` and `RENAME_EXCHANGE` work, `RENAME_WHITEOUT` is
//!   `EINVAL`.
//! * A read-only device gives a read-only mount: changes fail with `EROFS` (opening for
//!   writing succeeds; the write fails).

use crate::names::{check_new_name, lookup_name, ATTR_DIRECTORY, ATTR_READ_ONLY, ENTRY_SIZE};
use crate::table::{Extents, FatKind};
use crate::time::{from_dos, truncate_atime, truncate_mtime, Civil};
use crate::volume::{is_orphan_name, Ctx, OwnerOverride, Shared, MAX_FILE_SIZE, ROOT_INO};
use alloc::sync::{Arc, Weak};
use core::any::Any;
use skiff_errno::{Errno, KResult};
use skiff_fs::inode::{check_rename, FIRST_COOKIE};
use skiff_fs::{
    DirEntry, FileType, Inode, NewNode, NewOwner, SetAttr, Stat, TimeUpdate, Timespec,
    MODE_PERM_MASK, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, S_IFDIR, S_IFREG, S_ISGID,
    S_ISUID,
};
use spin::MutexGuard;

const ATTR_ARCHIVE: u8 = 0x20;
const S_IXGRP: u32 = 0o010;

/// A file unlinked while open whose inode has died: what is left to remove.
pub(crate) enum Orphan {
    /// Its entry in the orphan directory.
    Entry { pos: u64, first_cluster: u32 },
    /// Its cluster chain (the entry is already gone).
    Chain { ino: u64, first_cluster: u32 },
}

/// Where the data of a file unlinked while open lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OrphanState {
    /// An entry of the orphan directory.
    Entry,
    /// No entry at all: only the chain, remembered by the inode.
    Detached,
}

/// What is known about an inode, under its lock (taken only with the volume locked).
pub(crate) struct Meta {
    /// The directory holding the entry; `None` for the root and orphans.
    pub parent: Option<Arc<FatInode>>,
    /// Byte offset of the short entry (0 for the root, which has none).
    pub pos: u64,
    pub attr: u8,
    pub first_cluster: u32,
    /// File size (0 for directories).
    pub size: u32,
    /// A file's cluster chain, once read.
    pub extents: Option<Extents>,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub btime: Timespec,
    /// Set for a file unlinked while open.
    pub orphan: Option<OrphanState>,
    /// A removed directory.
    pub removed: bool,
}

/// One file or directory of a FAT volume.
pub struct FatInode {
    me: Weak<FatInode>,
    shared: Arc<Shared>,
    ino: u64,
    is_dir: bool,
    meta: spin::Mutex<Meta>,
}

/// The first-cluster field of a raw short entry.
pub(crate) fn entry_cluster(e: &[u8; ENTRY_SIZE], kind: FatKind) -> u32 {
    let lo = u16::from_le_bytes([e[26], e[27]]) as u32;
    let hi = if kind == FatKind::Fat32 {
        u16::from_le_bytes([e[20], e[21]]) as u32
    } else {
        0
    };
    (hi << 16) | lo
}

impl FatInode {
    pub(crate) fn new_root(shared: Arc<Shared>) -> Arc<FatInode> {
        let first = match shared.geo.kind {
            FatKind::Fat32 => shared.geo.root_cluster,
            _ => 0,
        };
        Arc::new_cyclic(|me| FatInode {
            me: me.clone(),
            shared,
            ino: ROOT_INO,
            is_dir: true,
            meta: spin::Mutex::new(Meta {
                parent: None,
                pos: 0,
                attr: ATTR_DIRECTORY,
                first_cluster: first,
                size: 0,
                extents: None,
                // Linux shows the root of a FAT volume with time 0.
                atime: Timespec::default(),
                mtime: Timespec::default(),
                ctime: Timespec::default(),
                btime: Timespec::default(),
                orphan: None,
                removed: false,
            }),
        })
    }

    pub(crate) fn from_entry(
        shared: Arc<Shared>,
        ino: u64,
        parent: Arc<FatInode>,
        pos: u64,
        e: &[u8; ENTRY_SIZE],
    ) -> Arc<FatInode> {
        let u16_at = |i: usize| u16::from_le_bytes([e[i], e[i + 1]]);
        let attr = e[11];
        let is_dir = attr & ATTR_DIRECTORY != 0;
        let first = entry_cluster(e, shared.geo.kind);
        let size = if is_dir {
            0
        } else {
            u32::from_le_bytes([e[28], e[29], e[30], e[31]])
        };
        let mtime = from_dos(u16_at(24), u16_at(22), 0);
        Arc::new_cyclic(|me| FatInode {
            me: me.clone(),
            shared,
            ino,
            is_dir,
            meta: spin::Mutex::new(Meta {
                parent: Some(parent),
                pos,
                attr,
                first_cluster: first,
                size,
                extents: None,
                atime: from_dos(u16_at(18), 0, 0),
                mtime,
                ctime: mtime,
                btime: from_dos(u16_at(16), u16_at(14), e[13]),
                orphan: None,
                removed: false,
            }),
        })
    }

    pub(crate) fn meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn this(&self) -> Option<Arc<FatInode>> {
        self.me.upgrade()
    }

    fn arc(&self) -> KResult<Arc<FatInode>> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    fn check_dir(&self) -> KResult<()> {
        if !self.is_dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(())
    }

    fn check_file(&self) -> KResult<()> {
        if self.is_dir {
            return Err(Errno::EISDIR);
        }
        Ok(())
    }

    fn run<R>(&self, f: impl FnOnce(&mut Ctx<'_>) -> KResult<R>) -> KResult<R> {
        self.shared.run(f)
    }
}

impl Drop for FatInode {
    fn drop(&mut self) {
        let m = self.meta.get_mut();
        let orphan = match m.orphan {
            Some(OrphanState::Entry) => Orphan::Entry {
                pos: m.pos,
                first_cluster: m.first_cluster,
            },
            Some(OrphanState::Detached) => Orphan::Chain {
                ino: self.ino,
                first_cluster: m.first_cluster,
            },
            None => return,
        };
        self.shared.dead.lock().push(orphan);
        self.shared.reap_pending();
    }
}

// ---- file data ----

/// Zeros for filling gaps.
static ZEROS: [u8; 16384] = [0; 16384];

impl Ctx<'_> {
    /// The file's chain, taken out of the inode (put it back with [`Ctx::put_extents`];
    /// if an error intervenes it is simply read again from the FAT next time).
    fn take_extents(&self, f: &FatInode) -> KResult<Extents> {
        let (cached, first) = {
            let mut m = f.meta();
            (m.extents.take(), m.first_cluster)
        };
        match cached {
            Some(e) => Ok(e),
            None => self.fat().extents(first),
        }
    }

    fn put_extents(&self, f: &FatInode, ext: Extents) {
        f.meta().extents = Some(ext);
    }

    fn read_file(&mut self, f: &FatInode, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let size = f.meta().size as u64;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - offset) as usize;
        let ext = self.take_extents(f)?;
        let ranges = ext.map(self.geo(), offset, n as u64);
        self.put_extents(f, ext);
        let mut done = 0;
        for (at, len) in ranges? {
            self.read_at(at, &mut buf[done..done + len as usize])?;
            done += len as usize;
        }
        self.touch_atime(f)?;
        Ok(n)
    }

    /// Relatime with FAT's one-day access dates: the date is written at most once a day.
    fn touch_atime(&mut self, f: &FatInode) -> KResult<()> {
        if self.sh.read_only {
            return Ok(());
        }
        let today = truncate_atime(self.now());
        let (pos, due) = {
            let m = f.meta();
            (m.pos, today > m.atime && m.orphan.is_none())
        };
        if !due {
            return Ok(());
        }
        self.mark_dirty()?;
        let date = Civil::from_timespec(today).dos_date();
        self.update_entry(pos, |e| e[18..20].copy_from_slice(&date.to_le_bytes()))?;
        f.meta().atime = today;
        Ok(())
    }

    /// Grows `ext` to `need` clusters. With `all_or_nothing`, either all are allocated or
    /// none (`ENOSPC`); otherwise as many as there is room for.
    fn grow(&mut self, ext: &mut Extents, need: u32, all_or_nothing: bool) -> KResult<()> {
        if need <= ext.clusters {
            return Ok(());
        }
        let old = ext.clusters;
        let tail = ext.last();
        let mut hint = self.book.next_free;
        let got = self.fat().allocate(tail, need - old, &mut hint)?;
        self.book.next_free = hint;
        self.adjust_free(-(got.len() as i64));
        for &c in &got {
            ext.push(c);
        }
        if all_or_nothing && ext.clusters < need {
            self.shrink(ext, old)?;
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    /// Cuts `ext` down to `keep` clusters, freeing the rest.
    fn shrink(&mut self, ext: &mut Extents, keep: u32) -> KResult<()> {
        if ext.clusters <= keep {
            return Ok(());
        }
        let gone = ext.split_off(keep);
        let mut fat = self.fat();
        if let Some(last) = ext.last() {
            fat.set_end(last)?;
        }
        fat.free(&gone)?;
        self.adjust_free(gone.len() as i64);
        Ok(())
    }

    /// Writes `data` at `offset` of the chain `ext` (allocated that far).
    fn write_chain(&self, ext: &Extents, offset: u64, data: &[u8]) -> KResult<()> {
        let mut done = 0;
        for (at, len) in ext.map(self.geo(), offset, data.len() as u64)? {
            self.write_at(at, &data[done..done + len as usize])?;
            done += len as usize;
        }
        Ok(())
    }

    fn zero_chain(&self, ext: &Extents, mut offset: u64, end: u64) -> KResult<()> {
        while offset < end {
            let n = (end - offset).min(ZEROS.len() as u64) as usize;
            self.write_chain(ext, offset, &ZEROS[..n])?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Records a file's first cluster, size and modification time in memory and in its
    /// entry.
    fn store_file(&self, f: &FatInode, ext: &Extents, size: u32) -> KResult<()> {
        let now = truncate_mtime(self.now());
        let c = Civil::from_timespec(now);
        let first = ext.first().unwrap_or(0);
        let fat32 = self.geo().kind == FatKind::Fat32;
        let (pos, detached) = {
            let mut m = f.meta();
            m.first_cluster = first;
            m.size = size;
            m.mtime = now;
            m.ctime = now;
            m.attr |= ATTR_ARCHIVE;
            (m.pos, m.orphan == Some(OrphanState::Detached))
        };
        if detached {
            return Ok(());
        }
        self.update_entry(pos, |e| {
            e[11] |= ATTR_ARCHIVE;
            if fat32 {
                e[20..22].copy_from_slice(&((first >> 16) as u16).to_le_bytes());
            }
            e[22..24].copy_from_slice(&c.dos_time().to_le_bytes());
            e[24..26].copy_from_slice(&c.dos_date().to_le_bytes());
            e[26..28].copy_from_slice(&(first as u16).to_le_bytes());
            e[28..32].copy_from_slice(&size.to_le_bytes());
        })
    }

    fn write_file(&mut self, f: &FatInode, offset: u64, data: &[u8]) -> KResult<usize> {
        self.mark_dirty()?;
        if data.is_empty() {
            return Ok(0);
        }
        if offset >= MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let end = (offset + data.len() as u64).min(MAX_FILE_SIZE);
        let size = f.meta().size as u64;
        let cs = self.geo().cluster_size as u64;
        let mut ext = self.take_extents(f)?;
        let have = ext.clusters;
        self.grow(&mut ext, end.div_ceil(cs) as u32, false)?;
        let capacity = ext.clusters as u64 * cs;
        if capacity <= offset {
            // Not even the first byte fits: give back what was just allocated.
            let keep = have.max(size.div_ceil(cs) as u32);
            self.shrink(&mut ext, keep)?;
            self.put_extents(f, ext);
            return Err(Errno::ENOSPC);
        }
        let stop = end.min(capacity);
        if offset > size {
            self.zero_chain(&ext, size, offset)?;
        }
        let n = (stop - offset) as usize;
        self.write_chain(&ext, offset, &data[..n])?;
        let new_size = size.max(stop) as u32;
        self.store_file(f, &ext, new_size)?;
        self.put_extents(f, ext);
        Ok(n)
    }

    fn set_file_size(&mut self, f: &FatInode, len: u64) -> KResult<()> {
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        self.mark_dirty()?;
        let size = f.meta().size as u64;
        if len == size {
            return Ok(());
        }
        let cs = self.geo().cluster_size as u64;
        let need = len.div_ceil(cs) as u32;
        let mut ext = self.take_extents(f)?;
        if len < size {
            self.shrink(&mut ext, need)?;
        } else {
            self.grow(&mut ext, need, true)?;
            self.zero_chain(&ext, size, len)?;
        }
        self.store_file(f, &ext, len as u32)?;
        self.put_extents(f, ext);
        Ok(())
    }
}

// ---- namespace ----

impl Ctx<'_> {
    fn lookup_child(&mut self, dir: &FatInode, name: &[u8]) -> KResult<Arc<FatInode>> {
        dir.check_dir()?;
        if dir.meta().removed {
            return Err(Errno::ENOENT);
        }
        let name = lookup_name(name).ok_or(Errno::ENOENT)?;
        let entry = self.find(dir, name)?.ok_or(Errno::ENOENT)?;
        let me = dir.arc()?;
        self.child(&me, &entry)
    }

    fn create_child(
        &mut self,
        dir: &FatInode,
        name: &[u8],
        node: NewNode,
    ) -> KResult<Arc<FatInode>> {
        dir.check_dir()?;
        let want_dir = match node {
            NewNode::Regular => false,
            NewNode::Directory => true,
            _ => return Err(Errno::EPERM),
        };
        if self.sh.read_only {
            return Err(Errno::EROFS);
        }
        if dir.meta().removed {
            return Err(Errno::ENOENT);
        }
        let name = check_new_name(name)?;
        if dir.ino() == ROOT_INO && is_orphan_name(name) {
            return Err(Errno::EPERM);
        }
        if self.find(dir, name)?.is_some() {
            return Err(Errno::EEXIST);
        }
        self.mark_dirty()?;
        let first = self.dir_cluster(dir);
        let entry = if want_dir {
            self.make_dir(first, name, 0)?
        } else {
            let fields = self.new_fields(ATTR_ARCHIVE, 0, self.now());
            self.add_entry(first, name, &fields)?
        };
        let me = dir.arc()?;
        let child = self.child(&me, &entry)?;
        self.touch_dir(dir)?;
        Ok(child)
    }

    /// Removes the entry of directory `child` (empty) from `dir`.
    fn remove_dir_entry(&mut self, dir: &FatInode, child: &FatInode) -> KResult<()> {
        let (pos, first) = {
            let m = child.meta();
            (m.pos, m.first_cluster)
        };
        let from = self.dir_cluster(dir);
        self.remove_slots(from, pos)?;
        self.invalidate_at(first);
        self.book.idents.remove(&pos);
        child.meta().removed = true;
        self.free_chain(first)
    }

    fn unlink_child(&mut self, dir: &FatInode, name: &[u8], remove_dir: bool) -> KResult<()> {
        let child = self.lookup_child(dir, name)?;
        if remove_dir {
            if !child.is_dir {
                return Err(Errno::ENOTDIR);
            }
            if !self.listing(&child)?.entries.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
        } else if child.is_dir {
            return Err(Errno::EISDIR);
        }
        self.mark_dirty()?;
        if child.is_dir {
            self.remove_dir_entry(dir, &child)?;
        } else {
            // The inode is referenced at least by the caller (the VFS looked it up), so
            // the entry waits in the orphan directory until the inode dies.
            self.orphan(dir, &child)?;
        }
        child.meta().ctime = truncate_mtime(self.now());
        self.touch_dir(dir)
    }

    /// Moves the entry of `child` from `from` to `to` under `name` (which must not
    /// exist there).
    fn move_entry(
        &mut self,
        from: &FatInode,
        child: &FatInode,
        to: &Arc<FatInode>,
        name: &str,
    ) -> KResult<()> {
        let (src, dst) = (self.dir_cluster(from), self.dir_cluster(to));
        let old_pos = child.meta().pos;
        let entry = self.move_slots(src, old_pos, dst, name)?;
        {
            let mut m = child.meta();
            m.pos = entry.pos;
            m.parent = Some(to.clone());
            m.ctime = truncate_mtime(self.now());
        }
        self.move_ident(old_pos, entry.pos);
        if child.is_dir && from.ino() != to.ino() {
            self.fix_dotdot(child, to)?;
        }
        Ok(())
    }

    /// `RENAME_EXCHANGE`: the two entries keep their names and positions and swap
    /// everything else (attributes, times, first cluster, size).
    fn exchange(
        &mut self,
        a_dir: &Arc<FatInode>,
        a: &FatInode,
        b_dir: &Arc<FatInode>,
        b: &FatInode,
    ) -> KResult<()> {
        let (pa, pb) = (a.meta().pos, b.meta().pos);
        let ea = self.read_entry(pa)?;
        let eb = self.read_entry(pb)?;
        let swap = |dst: &[u8; ENTRY_SIZE], src: &[u8; ENTRY_SIZE]| {
            let mut out = *dst;
            out[11] = src[11];
            out[13..].copy_from_slice(&src[13..]);
            out
        };
        self.write_at(pa, &swap(&ea, &eb))?;
        self.write_at(pb, &swap(&eb, &ea))?;
        let now = truncate_mtime(self.now());
        {
            let mut ma = a.meta();
            let mut mb = b.meta();
            core::mem::swap(&mut ma.pos, &mut mb.pos);
            ma.parent = Some(b_dir.clone());
            mb.parent = Some(a_dir.clone());
            ma.ctime = now;
            mb.ctime = now;
        }
        let ia = self.book.idents.remove(&pa);
        let ib = self.book.idents.remove(&pb);
        if let Some(i) = ia {
            self.book.idents.insert(pb, i);
        }
        if let Some(i) = ib {
            self.book.idents.insert(pa, i);
        }
        self.invalidate(a_dir);
        self.invalidate(b_dir);
        if a_dir.ino() != b_dir.ino() {
            if a.is_dir {
                self.fix_dotdot(a, b_dir)?;
            }
            if b.is_dir {
                self.fix_dotdot(b, a_dir)?;
            }
        }
        Ok(())
    }

    fn stat_inode(&mut self, f: &FatInode) -> KResult<Stat> {
        let geo = self.geo();
        let cs = geo.cluster_size as u64;
        let (size, nlink) = if f.is_dir {
            let removed = f.meta().removed;
            if removed {
                (0, 0)
            } else {
                let bytes = if f.ino == ROOT_INO && geo.kind != FatKind::Fat32 {
                    geo.root_bytes
                } else {
                    self.listing(f)?.clusters() as u64 * cs
                };
                let is_root = f.ino == ROOT_INO;
                let subdirs = self
                    .listing(f)?
                    .entries
                    .iter()
                    .filter(|e| e.is_dir() && !(is_root && e.matches(crate::ORPHAN_DIR)))
                    .count() as u64;
                (bytes, 2 + subdirs)
            }
        } else {
            let m = f.meta();
            (m.size as u64, m.orphan.is_none() as u64)
        };
        let blocks = if f.is_dir {
            size / 512
        } else {
            size.div_ceil(cs) * cs / 512
        };
        let m = f.meta();
        let owner = self.book.owners.get(&f.ino).copied();
        let mode = match owner {
            Some(o) => o.mode,
            None => default_mode(f.is_dir, m.attr),
        };
        Ok(Stat {
            dev: 0,
            ino: f.ino,
            nlink,
            mode,
            uid: owner.map_or(0, |o| o.uid),
            gid: owner.map_or(0, |o| o.gid),
            rdev: 0,
            size,
            blksize: geo.cluster_size,
            blocks,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            btime: Some(m.btime),
            mount_id: 0,
        })
    }

    fn set_attr_inode(&mut self, f: &FatInode, attr: &SetAttr) -> KResult<()> {
        if self.sh.read_only {
            return Err(Errno::EROFS);
        }
        let now = self.now();
        if attr.mode.is_some() || attr.uid.is_some() || attr.gid.is_some() {
            let current = {
                let m = f.meta();
                self.book
                    .owners
                    .get(&f.ino)
                    .copied()
                    .unwrap_or(OwnerOverride {
                        mode: default_mode(f.is_dir, m.attr),
                        uid: 0,
                        gid: 0,
                    })
            };
            let mut o = current;
            if let Some(mode) = attr.mode {
                o.mode = (o.mode & !MODE_PERM_MASK) | (mode & MODE_PERM_MASK);
            }
            if attr.uid.is_some() || attr.gid.is_some() {
                o.uid = attr.uid.unwrap_or(o.uid);
                o.gid = attr.gid.unwrap_or(o.gid);
                if !f.is_dir {
                    o.mode &= !S_ISUID;
                    if o.mode & S_IXGRP != 0 {
                        o.mode &= !S_ISGID;
                    }
                }
            }
            self.book.owners.insert(f.ino, o);
        }
        let resolve = |t: TimeUpdate| match t {
            TimeUpdate::Now => now,
            TimeUpdate::Set(t) => t,
        };
        let atime = attr.atime.map(|t| truncate_atime(resolve(t)));
        let mtime = attr.mtime.map(|t| truncate_mtime(resolve(t)));
        let detached = f.meta().orphan == Some(OrphanState::Detached);
        if (atime.is_some() || mtime.is_some()) && f.ino != ROOT_INO && !detached {
            self.mark_dirty()?;
            let pos = f.meta().pos;
            self.update_entry(pos, |e| {
                if let Some(t) = atime {
                    let c = Civil::from_timespec(t);
                    e[18..20].copy_from_slice(&c.dos_date().to_le_bytes());
                }
                if let Some(t) = mtime {
                    let c = Civil::from_timespec(t);
                    e[22..24].copy_from_slice(&c.dos_time().to_le_bytes());
                    e[24..26].copy_from_slice(&c.dos_date().to_le_bytes());
                }
            })?;
        }
        let mut m = f.meta();
        if let Some(t) = atime {
            m.atime = t;
        }
        if let Some(t) = mtime {
            m.mtime = t;
        }
        m.ctime = truncate_mtime(now);
        Ok(())
    }
}

/// Mode of an inode without a `chmod`: Linux vfat's defaults (`umask=022`, no
/// `showexec`): 0755, or 0555 for a file with the read-only attribute.
fn default_mode(is_dir: bool, attr: u8) -> u32 {
    if is_dir {
        S_IFDIR | 0o755
    } else if attr & ATTR_READ_ONLY != 0 {
        S_IFREG | 0o555
    } else {
        S_IFREG | 0o755
    }
}

/// Whether `dir` is `ancestor` or lies below it.
fn is_within(dir: &Arc<FatInode>, ancestor: &FatInode) -> bool {
    let mut cur = Some(dir.clone());
    while let Some(d) = cur {
        if d.ino == ancestor.ino {
            return true;
        }
        cur = d.meta().parent.clone();
    }
    false
}

/// `renameat2` on a FAT volume (see [`skiff_fs::FileSystem::rename`]).
pub(crate) fn rename(
    shared: &Arc<Shared>,
    od: &Arc<FatInode>,
    old_name: &[u8],
    nd: &Arc<FatInode>,
    new_name: &[u8],
    flags: u32,
) -> KResult<()> {
    if flags & RENAME_WHITEOUT != 0 {
        return Err(Errno::EINVAL);
    }
    shared.run(|cx| {
        od.check_dir()?;
        nd.check_dir()?;
        if cx.sh.read_only {
            return Err(Errno::EROFS);
        }
        let old = cx.lookup_child(od, old_name)?;
        if nd.meta().removed {
            return Err(Errno::ENOENT);
        }
        let exchange = flags & RENAME_EXCHANGE != 0;
        let new = match lookup_name(new_name) {
            Some(n) if !(nd.ino == ROOT_INO && is_orphan_name(n)) => match cx.find(nd, n)? {
                Some(e) => Some(cx.child(nd, &e)?),
                None => None,
            },
            _ => None,
        };
        if exchange && new.is_none() {
            return Err(Errno::ENOENT);
        }
        if flags & RENAME_NOREPLACE != 0 && new.is_some() {
            return Err(Errno::EEXIST);
        }
        if old.is_dir && is_within(nd, &old) {
            return Err(Errno::EINVAL);
        }
        if let Some(n) = &new {
            if n.is_dir && is_within(od, n) {
                return Err(if exchange {
                    Errno::EINVAL
                } else {
                    Errno::ENOTEMPTY
                });
            }
        }
        let new_empty = match &new {
            Some(n) if n.is_dir => cx.listing(n)?.entries.is_empty(),
            _ => false,
        };
        let new_dyn = new.as_deref().map(|n| n as &dyn Inode);
        if !check_rename(&*old, new_dyn, new_empty, flags)? {
            // Both names are the same entry: only the spelling may change.
            if exchange {
                return Ok(());
            }
            return case_rename(cx, od, &old, old_name, new_name);
        }
        cx.mark_dirty()?;
        if exchange {
            let new = new.expect("checked above");
            cx.exchange(od, &old, nd, &new)?;
        } else {
            let name = check_new_name(new_name)?;
            if nd.ino == ROOT_INO && is_orphan_name(name) {
                return Err(Errno::EPERM);
            }
            // The moved entry is written first: if it does not fit (ENOSPC), nothing
            // changed. Then the target goes (found by position, not by its name,
            // which for a moment both entries have).
            cx.move_entry(od, &old, nd, name)?;
            if let Some(n) = &new {
                if n.is_dir {
                    cx.remove_dir_entry(nd, n)?;
                } else {
                    cx.orphan(nd, n)?;
                }
                n.meta().ctime = truncate_mtime(cx.now());
            }
        }
        cx.touch_dir(od)?;
        if od.ino != nd.ino {
            cx.touch_dir(nd)?;
        }
        Ok(())
    })
}

/// A rename between two spellings of one entry ("foo" to "FOO"): rewrites the entry
/// under the new spelling.
fn case_rename(
    cx: &mut Ctx<'_>,
    dir: &Arc<FatInode>,
    node: &FatInode,
    old_name: &[u8],
    new_name: &[u8],
) -> KResult<()> {
    let Ok(name) = check_new_name(new_name) else {
        return Ok(());
    };
    let current = cx.listing(dir)?.at(node.meta().pos).map(|e| e.name.clone());
    if current.as_deref() == Some(name) || crate::names::strip_tail(old_name) == name.as_bytes() {
        return Ok(());
    }
    cx.mark_dirty()?;
    cx.move_entry(dir, node, dir, name)?;
    cx.touch_dir(dir)
}

impl Inode for FatInode {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        if self.is_dir {
            FileType::Directory
        } else {
            FileType::Regular
        }
    }

    fn stat(&self) -> KResult<Stat> {
        self.run(|cx| cx.stat_inode(self))
    }

    fn set_attr(&self, attr: &SetAttr) -> KResult<()> {
        self.run(|cx| cx.set_attr_inode(self, attr))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        self.check_file()?;
        self.run(|cx| cx.read_file(self, offset, buf))
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> KResult<usize> {
        self.check_file()?;
        self.run(|cx| cx.write_file(self, offset, buf))
    }

    fn append(&self, buf: &[u8]) -> KResult<(usize, u64)> {
        self.check_file()?;
        self.run(|cx| {
            let offset = self.meta().size as u64;
            let n = cx.write_file(self, offset, buf)?;
            Ok((n, self.meta().size as u64))
        })
    }

    fn set_size(&self, len: u64) -> KResult<()> {
        self.check_file()?;
        self.run(|cx| cx.set_file_size(self, len))
    }

    /// FAT cannot hold clusters past a file's size (fsck.fat truncates such chains), so
    /// space beyond the end cannot be reserved without growing the file: `EOPNOTSUPP`.
    fn reserve(&self, end: u64) -> KResult<()> {
        self.check_file()?;
        if end > self.stat()?.size {
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(())
    }

    /// Everything written to the volume so far reaches the disk (the whole cache, then
    /// a device flush): stronger than fsync needs, and it makes this file's directory
    /// entry durable too.
    fn sync(&self, _data_only: bool) -> KResult<()> {
        self.run(|cx| cx.cache().sync().map_err(Errno::from))
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        self.check_dir()?;
        Ok(self.run(|cx| cx.lookup_child(self, name))?)
    }

    fn parent(&self) -> KResult<Arc<dyn Inode>> {
        self.check_dir()?;
        match self.meta().parent.clone() {
            Some(p) => Ok(p),
            None => Ok(self.arc()?),
        }
    }

    fn create(&self, name: &[u8], node: NewNode, _owner: NewOwner) -> KResult<Arc<dyn Inode>> {
        self.check_dir()?;
        Ok(self.run(|cx| cx.create_child(self, name, node))?)
    }

    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> KResult<()> {
        self.check_dir()?;
        Err(Errno::EPERM)
    }

    fn unlink(&self, name: &[u8], remove_dir: bool) -> KResult<()> {
        self.check_dir()?;
        if self.shared.read_only {
            return Err(Errno::EROFS);
        }
        self.run(|cx| cx.unlink_child(self, name, remove_dir))
    }

    fn read_dir(&self, cookie: u64) -> KResult<Option<DirEntry>> {
        self.check_dir()?;
        self.run(|cx| {
            if self.meta().removed {
                return Ok(None);
            }
            let list = cx.listing(self)?;
            let list = &list.entries;
            let from = cookie.saturating_sub(FIRST_COOKIE);
            let start = list.partition_point(|e| (e.index as u64) < from);
            let is_root = self.ino == ROOT_INO;
            let Some(e) = list[start..]
                .iter()
                .find(|e| !(is_root && e.matches(crate::ORPHAN_DIR)))
            else {
                return Ok(None);
            };
            Ok(Some(DirEntry {
                cookie: e.index as u64 + FIRST_COOKIE,
                name: e.name.clone().into_bytes(),
                ino: cx.ino_for(e.pos),
                file_type: if e.is_dir() {
                    FileType::Directory
                } else {
                    FileType::Regular
                },
            }))
        })
    }
}
