//! tmpfs: the in-memory filesystem of the root, `/dev` (as devtmpfs) and any later
//! RAM mounts. File data lives in 4 KiB pages in a `BTreeMap`, allocated only when
//! written, so sparse files cost nothing for their holes.
//!
//! Locking: one namespace lock per filesystem serializes every change of directory
//! entries (create, link, unlink, rename), as Linux's rename mutex does; under it
//! directory locks are taken (two in inode-number order for a rename), then metadata
//! locks. Lookups take a single directory lock. File data has its own lock, taken
//! before the metadata lock.

use crate::env::{Clock, Timespec};
use crate::inode::{
    check_rename, relatime_due, DirEntry, FileSystem, Inode, NewNode, NewOwner, FIRST_COOKIE,
};
use crate::types::{
    check_name, FileType, SetAttr, Stat, StatFs, TimeUpdate, MAX_FILE_SIZE, MODE_PERM_MASK,
    NAME_MAX, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, S_IFMT, S_ISGID, S_ISUID,
    TMPFS_MAGIC,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_errno::{Errno, KResult};
use spin::{Mutex, MutexGuard, RwLock};

/// Size of one data page.
pub const PAGE_SIZE: usize = 4096;
/// Linux tmpfs counts 20 bytes of directory size per entry.
const BOGO_DIRENT_SIZE: u64 = 20;
const S_IXGRP: u32 = 0o010;

static NEXT_FSID: AtomicU64 = AtomicU64::new(1);

struct Shared {
    clock: Arc<dyn Clock>,
    next_ino: AtomicU64,
    live_inodes: AtomicU64,
    namespace_lock: Mutex<()>,
}

impl Shared {
    fn now(&self) -> Timespec {
        self.clock.realtime()
    }
}

/// A tmpfs instance.
pub struct TmpFs {
    shared: Arc<Shared>,
    root: Arc<TmpInode>,
    type_name: &'static str,
    options: &'static str,
    fsid: u64,
}

impl TmpFs {
    /// A new empty tmpfs whose root has permission bits `root_perm`.
    pub fn new(clock: Arc<dyn Clock>, root_perm: u32) -> Arc<TmpFs> {
        Self::with_name(clock, root_perm, "tmpfs", "rw,relatime")
    }

    /// A tmpfs that reports itself as `type_name` (devtmpfs for `/dev`).
    pub fn with_name(
        clock: Arc<dyn Clock>,
        root_perm: u32,
        type_name: &'static str,
        options: &'static str,
    ) -> Arc<TmpFs> {
        let shared = Arc::new(Shared {
            clock,
            next_ino: AtomicU64::new(2),
            live_inodes: AtomicU64::new(0),
            namespace_lock: Mutex::new(()),
        });
        let now = shared.now();
        let root = Arc::new_cyclic(|me: &Weak<TmpInode>| {
            TmpInode::build(
                me.clone(),
                1,
                shared.clone(),
                NewNode::Directory,
                NewOwner {
                    perm: root_perm,
                    uid: 0,
                    gid: 0,
                },
                now,
                me.clone(),
            )
        });
        Arc::new(TmpFs {
            shared,
            root,
            type_name,
            options,
            fsid: NEXT_FSID.fetch_add(1, Ordering::Relaxed),
        })
    }
}

impl FileSystem for TmpFs {
    fn root(&self) -> Arc<dyn Inode> {
        self.root.clone()
    }
    fn type_name(&self) -> &'static str {
        self.type_name
    }
    fn mount_options(&self) -> &'static str {
        self.options
    }
    fn statfs(&self) -> StatFs {
        // No size limit is enforced (memory is the limit), so report the inode count
        // honestly and blocks as unknown-but-free, as tmpfs mounted with size=0 does.
        StatFs {
            fs_type: TMPFS_MAGIC,
            block_size: PAGE_SIZE as u64,
            blocks: 0,
            blocks_free: 0,
            blocks_avail: 0,
            files: 0,
            files_free: 0,
            fsid: [self.fsid as u32, 0],
            name_len: NAME_MAX as u64,
            fragment_size: PAGE_SIZE as u64,
            flags: crate::types::ST_RELATIME,
        }
    }

    fn rename(
        &self,
        old_dir: &Arc<dyn Inode>,
        old_name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: u32,
    ) -> KResult<()> {
        if flags & RENAME_WHITEOUT != 0 {
            // Whiteouts exist for overlayfs, which Skiff does not have.
            return Err(Errno::EOPNOTSUPP);
        }
        let od = downcast(old_dir)?;
        let nd = downcast(new_dir)?;
        check_name(new_name)?;
        let _ns = self.shared.namespace_lock.lock();
        let old = od.child(old_name)?;
        let new = nd.child(new_name).ok();
        if flags & RENAME_EXCHANGE != 0 && new.is_none() {
            return Err(Errno::ENOENT);
        }
        if flags & RENAME_NOREPLACE != 0 && new.is_some() {
            return Err(Errno::EEXIST);
        }
        if old.is_dir() && nd.is_descendant_of(&old) {
            return Err(Errno::EINVAL);
        }
        if let Some(new) = &new {
            if new.is_dir() && od.is_descendant_of(new) {
                return Err(if flags & RENAME_EXCHANGE != 0 {
                    Errno::EINVAL
                } else {
                    Errno::ENOTEMPTY
                });
            }
        }
        let new_empty = new.as_ref().is_some_and(|n| n.is_dir() && n.dir_is_empty());
        if !check_rename(
            &*old,
            new.as_deref().map(|n| n as &dyn Inode),
            new_empty,
            flags,
        )? {
            return Ok(());
        }
        let now = self.shared.now();
        let same_dir = od.ino == nd.ino;
        {
            let (mut odata, ndata) = lock_dir_pair(&od, &nd);
            if flags & RENAME_EXCHANGE != 0 {
                let new = new.clone().expect("checked above");
                odata.replace(old_name, new.clone());
                match ndata {
                    Some(mut n) => n.replace(new_name, old.clone()),
                    None => odata.replace(new_name, old.clone()),
                }
                if !same_dir {
                    if old.is_dir() {
                        old.set_parent(&nd);
                    }
                    if new.is_dir() {
                        new.set_parent(&od);
                    }
                    let delta = old.is_dir() as i64 - new.is_dir() as i64;
                    od.adjust_nlink(-delta);
                    nd.adjust_nlink(delta);
                }
            } else {
                odata.remove(old_name);
                let mut ndata = ndata;
                let target: &mut DirData = match ndata.as_mut() {
                    Some(n) => n,
                    None => &mut odata,
                };
                if let Some(replaced) = &new {
                    target.remove(new_name);
                    if replaced.is_dir() {
                        replaced.meta.lock().nlink = 0;
                        nd.adjust_nlink(-1);
                    } else {
                        replaced.adjust_nlink(-1);
                    }
                }
                target.insert(new_name, old.clone());
                if old.is_dir() && !same_dir {
                    old.set_parent(&nd);
                    od.adjust_nlink(-1);
                    nd.adjust_nlink(1);
                }
            }
        }
        od.touch_change(now);
        nd.touch_change(now);
        old.meta.lock().ctime = now;
        if let Some(new) = &new {
            new.meta.lock().ctime = now;
        }
        Ok(())
    }
}

fn downcast(inode: &Arc<dyn Inode>) -> KResult<Arc<TmpInode>> {
    let tmp = inode
        .as_any()
        .downcast_ref::<TmpInode>()
        .ok_or(Errno::EXDEV)?;
    tmp.me.upgrade().ok_or(Errno::ENOENT)
}

fn lock_dir_pair<'a>(
    a: &'a TmpInode,
    b: &'a TmpInode,
) -> (MutexGuard<'a, DirData>, Option<MutexGuard<'a, DirData>>) {
    if a.ino == b.ino {
        return (a.dir().lock(), None);
    }
    if a.ino < b.ino {
        let ga = a.dir().lock();
        let gb = b.dir().lock();
        (ga, Some(gb))
    } else {
        let gb = b.dir().lock();
        let ga = a.dir().lock();
        (ga, Some(gb))
    }
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    rdev: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    btime: Timespec,
}

#[derive(Default)]
struct FileData {
    size: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
}

struct DirData {
    by_name: BTreeMap<Vec<u8>, u64>,
    by_cookie: BTreeMap<u64, (Vec<u8>, Arc<TmpInode>)>,
    next_cookie: u64,
    parent: Weak<TmpInode>,
}

impl DirData {
    fn get(&self, name: &[u8]) -> Option<&Arc<TmpInode>> {
        let cookie = self.by_name.get(name)?;
        self.by_cookie.get(cookie).map(|(_, inode)| inode)
    }
    fn insert(&mut self, name: &[u8], inode: Arc<TmpInode>) {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        self.by_name.insert(name.to_vec(), cookie);
        self.by_cookie.insert(cookie, (name.to_vec(), inode));
    }
    fn remove(&mut self, name: &[u8]) -> Option<Arc<TmpInode>> {
        let cookie = self.by_name.remove(name)?;
        self.by_cookie.remove(&cookie).map(|(_, inode)| inode)
    }
    /// Points an existing name at another inode, keeping its position.
    fn replace(&mut self, name: &[u8], inode: Arc<TmpInode>) {
        if let Some(cookie) = self.by_name.get(name) {
            if let Some(slot) = self.by_cookie.get_mut(cookie) {
                slot.1 = inode;
            }
        }
    }
}

enum Body {
    File(RwLock<FileData>),
    Dir(Mutex<DirData>),
    Symlink(Vec<u8>),
    /// Device nodes, FIFOs and sockets: metadata only.
    Special,
}

/// One tmpfs inode.
pub struct TmpInode {
    me: Weak<TmpInode>,
    ino: u64,
    shared: Arc<Shared>,
    meta: Mutex<Meta>,
    body: Body,
}

impl Drop for TmpInode {
    fn drop(&mut self) {
        self.shared.live_inodes.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TmpInode {
    fn build(
        me: Weak<TmpInode>,
        ino: u64,
        shared: Arc<Shared>,
        node: NewNode,
        owner: NewOwner,
        now: Timespec,
        parent: Weak<TmpInode>,
    ) -> TmpInode {
        let file_type = node.file_type();
        let (body, rdev) = match node {
            NewNode::Regular => (Body::File(RwLock::new(FileData::default())), 0),
            NewNode::Directory => (
                Body::Dir(Mutex::new(DirData {
                    by_name: BTreeMap::new(),
                    by_cookie: BTreeMap::new(),
                    next_cookie: FIRST_COOKIE,
                    parent,
                })),
                0,
            ),
            NewNode::Symlink(target) => (Body::Symlink(target), 0),
            NewNode::CharDevice(rdev) | NewNode::BlockDevice(rdev) => (Body::Special, rdev),
            NewNode::Fifo | NewNode::Socket => (Body::Special, 0),
        };
        shared.live_inodes.fetch_add(1, Ordering::Relaxed);
        TmpInode {
            me,
            ino,
            shared,
            meta: Mutex::new(Meta {
                mode: file_type.mode_bits() | (owner.perm & MODE_PERM_MASK),
                uid: owner.uid,
                gid: owner.gid,
                nlink: if file_type == FileType::Directory {
                    2
                } else {
                    1
                },
                rdev,
                atime: now,
                mtime: now,
                ctime: now,
                btime: now,
            }),
            body,
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    fn dir(&self) -> &Mutex<DirData> {
        match &self.body {
            Body::Dir(d) => d,
            _ => unreachable!("dir() on a non-directory tmpfs inode"),
        }
    }

    fn dir_checked(&self) -> KResult<&Mutex<DirData>> {
        match &self.body {
            Body::Dir(d) => Ok(d),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_is_empty(&self) -> bool {
        self.dir().lock().by_cookie.is_empty()
    }

    fn child(&self, name: &[u8]) -> KResult<Arc<TmpInode>> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        self.dir_checked()?
            .lock()
            .get(name)
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    fn set_parent(&self, parent: &Arc<TmpInode>) {
        self.dir().lock().parent = Arc::downgrade(parent);
    }

    /// Whether `self` is `ancestor` or lies below it (walks ".." up to the root).
    fn is_descendant_of(&self, ancestor: &TmpInode) -> bool {
        let mut cur = match self.me.upgrade() {
            Some(c) => c,
            None => return false,
        };
        loop {
            if cur.ino == ancestor.ino {
                return true;
            }
            let parent = match cur.dir().lock().parent.upgrade() {
                Some(p) => p,
                None => return false,
            };
            if parent.ino == cur.ino {
                return false;
            }
            cur = parent;
        }
    }

    fn adjust_nlink(&self, delta: i64) {
        let mut meta = self.meta.lock();
        meta.nlink = (meta.nlink as i64 + delta).max(0) as u64;
    }

    fn touch_change(&self, now: Timespec) {
        let mut meta = self.meta.lock();
        meta.mtime = now;
        meta.ctime = now;
    }

    fn touch_atime(&self) {
        let now = self.shared.now();
        let mut meta = self.meta.lock();
        if relatime_due(meta.atime, meta.mtime, meta.ctime, now) {
            meta.atime = now;
        }
    }

    fn file(&self) -> KResult<&RwLock<FileData>> {
        match &self.body {
            Body::File(f) => Ok(f),
            _ => Err(self.wrong_type_error()),
        }
    }

    fn write_locked(data: &mut FileData, offset: u64, buf: &[u8]) -> KResult<usize> {
        if offset >= MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let len = (buf.len() as u64).min(MAX_FILE_SIZE - offset) as usize;
        let mut done = 0;
        while done < len {
            let pos = offset + done as u64;
            let index = pos / PAGE_SIZE as u64;
            let within = (pos % PAGE_SIZE as u64) as usize;
            let chunk = (PAGE_SIZE - within).min(len - done);
            let page = data
                .pages
                .entry(index)
                .or_insert_with(|| vec![0u8; PAGE_SIZE].into_boxed_slice());
            page[within..within + chunk].copy_from_slice(&buf[done..done + chunk]);
            done += chunk;
        }
        data.size = data.size.max(offset + len as u64);
        Ok(len)
    }
}

impl Inode for TmpInode {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn ino(&self) -> u64 {
        self.ino
    }
    fn file_type(&self) -> FileType {
        FileType::from_mode(self.meta.lock().mode).unwrap_or(FileType::Regular)
    }

    fn stat(&self) -> KResult<Stat> {
        let (size, blocks) = match &self.body {
            Body::File(f) => {
                let data = f.read();
                (
                    data.size,
                    data.pages.len() as u64 * (PAGE_SIZE as u64 / 512),
                )
            }
            Body::Dir(d) => ((d.lock().by_cookie.len() as u64 + 2) * BOGO_DIRENT_SIZE, 0),
            Body::Symlink(t) => (t.len() as u64, 0),
            Body::Special => (0, 0),
        };
        let meta = self.meta.lock();
        Ok(Stat {
            dev: 0,
            ino: self.ino,
            nlink: meta.nlink,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            rdev: meta.rdev,
            size,
            blksize: PAGE_SIZE as u32,
            blocks,
            atime: meta.atime,
            mtime: meta.mtime,
            ctime: meta.ctime,
            btime: Some(meta.btime),
            mount_id: 0,
        })
    }

    fn set_attr(&self, attr: &SetAttr) -> KResult<()> {
        let now = self.shared.now();
        let mut meta = self.meta.lock();
        if let Some(mode) = attr.mode {
            meta.mode = (meta.mode & S_IFMT) | (mode & MODE_PERM_MASK);
        }
        if attr.uid.is_some() || attr.gid.is_some() {
            if let Some(uid) = attr.uid {
                meta.uid = uid;
            }
            if let Some(gid) = attr.gid {
                meta.gid = gid;
            }
            // chown drops set-user-ID, and set-group-ID when group-executable, on
            // non-directories (even for root).
            if !self.is_dir() {
                meta.mode &= !S_ISUID;
                if meta.mode & S_IXGRP != 0 {
                    meta.mode &= !S_ISGID;
                }
            }
        }
        let resolve = |t: TimeUpdate| match t {
            TimeUpdate::Now => now,
            TimeUpdate::Set(t) => t,
        };
        if let Some(t) = attr.atime {
            meta.atime = resolve(t);
        }
        if let Some(t) = attr.mtime {
            meta.mtime = resolve(t);
        }
        meta.ctime = now;
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let n = {
            let data = self.file()?.read();
            if offset >= data.size || buf.is_empty() {
                0
            } else {
                let n = (buf.len() as u64).min(data.size - offset) as usize;
                let mut done = 0;
                while done < n {
                    let pos = offset + done as u64;
                    let index = pos / PAGE_SIZE as u64;
                    let within = (pos % PAGE_SIZE as u64) as usize;
                    let chunk = (PAGE_SIZE - within).min(n - done);
                    let out = &mut buf[done..done + chunk];
                    match data.pages.get(&index) {
                        Some(page) => out.copy_from_slice(&page[within..within + chunk]),
                        None => out.fill(0),
                    }
                    done += chunk;
                }
                n
            }
        };
        self.touch_atime();
        Ok(n)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> KResult<usize> {
        if buf.is_empty() {
            self.file()?;
            return Ok(0);
        }
        let n = Self::write_locked(&mut self.file()?.write(), offset, buf)?;
        self.touch_change(self.shared.now());
        Ok(n)
    }

    fn append(&self, buf: &[u8]) -> KResult<(usize, u64)> {
        let (n, end) = {
            let mut data = self.file()?.write();
            let offset = data.size;
            if buf.is_empty() {
                return Ok((0, offset));
            }
            let n = Self::write_locked(&mut data, offset, buf)?;
            (n, data.size)
        };
        self.touch_change(self.shared.now());
        Ok((n, end))
    }

    fn set_size(&self, len: u64) -> KResult<()> {
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let changed = {
            let mut data = self.file()?.write();
            let old = data.size;
            if len < old {
                let first_gone = len.div_ceil(PAGE_SIZE as u64);
                let _ = data.pages.split_off(&first_gone);
                let within = (len % PAGE_SIZE as u64) as usize;
                if within != 0 {
                    if let Some(page) = data.pages.get_mut(&(len / PAGE_SIZE as u64)) {
                        page[within..].fill(0);
                    }
                }
            }
            data.size = len;
            old != len
        };
        if changed {
            self.touch_change(self.shared.now());
        }
        Ok(())
    }

    fn seek_data_or_hole(&self, offset: u64, want_hole: bool) -> KResult<u64> {
        let data = self.file()?.read();
        if offset >= data.size {
            return Err(Errno::ENXIO);
        }
        let page = PAGE_SIZE as u64;
        let start = offset / page;
        if want_hole {
            let mut index = start;
            while data.pages.contains_key(&index) {
                index += 1;
            }
            Ok((index * page).max(offset).min(data.size))
        } else {
            match data.pages.range(start..).next() {
                Some((&index, _)) if index * page < data.size => Ok((index * page).max(offset)),
                _ => Err(Errno::ENXIO),
            }
        }
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        match &self.body {
            Body::Symlink(target) => {
                self.touch_atime();
                Ok(target.clone())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Ok(self.child(name)?)
    }

    fn parent(&self) -> KResult<Arc<dyn Inode>> {
        let parent = self
            .dir_checked()?
            .lock()
            .parent
            .upgrade()
            .ok_or(Errno::ENOENT)?;
        Ok(parent)
    }

    fn create(&self, name: &[u8], node: NewNode, owner: NewOwner) -> KResult<Arc<dyn Inode>> {
        check_name(name)?;
        let dir = self.dir_checked()?;
        let _ns = self.shared.namespace_lock.lock();
        if self.meta.lock().nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let is_dir = node == NewNode::Directory;
        let now = self.shared.now();
        let inode = {
            let mut data = dir.lock();
            if data.get(name).is_some() {
                return Err(Errno::EEXIST);
            }
            let ino = self.shared.next_ino.fetch_add(1, Ordering::Relaxed);
            let shared = self.shared.clone();
            let parent = self.me.clone();
            let inode = Arc::new_cyclic(|me| {
                TmpInode::build(me.clone(), ino, shared, node, owner, now, parent)
            });
            data.insert(name, inode.clone());
            inode
        };
        if is_dir {
            self.adjust_nlink(1);
        }
        self.touch_change(now);
        Ok(inode)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> KResult<()> {
        check_name(name)?;
        let dir = self.dir_checked()?;
        let target = downcast(target)?;
        if !Arc::ptr_eq(&target.shared, &self.shared) {
            return Err(Errno::EXDEV);
        }
        if target.is_dir() {
            return Err(Errno::EPERM);
        }
        let _ns = self.shared.namespace_lock.lock();
        if self.meta.lock().nlink == 0 || target.meta.lock().nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let now = self.shared.now();
        {
            let mut data = dir.lock();
            if data.get(name).is_some() {
                return Err(Errno::EEXIST);
            }
            data.insert(name, target.clone());
        }
        {
            let mut meta = target.meta.lock();
            meta.nlink += 1;
            meta.ctime = now;
        }
        self.touch_change(now);
        Ok(())
    }

    fn unlink(&self, name: &[u8], remove_dir: bool) -> KResult<()> {
        let dir = self.dir_checked()?;
        let _ns = self.shared.namespace_lock.lock();
        let now = self.shared.now();
        let child = {
            let mut data = dir.lock();
            let child = data.get(name).cloned().ok_or(Errno::ENOENT)?;
            if remove_dir {
                if !child.is_dir() {
                    return Err(Errno::ENOTDIR);
                }
                if !child.dir_is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
            } else if child.is_dir() {
                return Err(Errno::EISDIR);
            }
            data.remove(name);
            child
        };
        if child.is_dir() {
            child.meta.lock().nlink = 0;
            self.adjust_nlink(-1);
        } else {
            child.adjust_nlink(-1);
        }
        child.meta.lock().ctime = now;
        self.touch_change(now);
        Ok(())
    }

    fn name_of(&self, ino: u64) -> KResult<Vec<u8>> {
        let data = self.dir_checked()?.lock();
        data.by_cookie
            .values()
            .find(|(_, inode)| inode.ino == ino)
            .map(|(name, _)| name.clone())
            .ok_or(Errno::ENOENT)
    }

    fn read_dir(&self, cookie: u64) -> KResult<Option<DirEntry>> {
        let entry = {
            let data = self.dir_checked()?.lock();
            data.by_cookie
                .range(cookie..)
                .next()
                .map(|(&cookie, (name, inode))| DirEntry {
                    cookie,
                    name: name.clone(),
                    ino: inode.ino,
                    file_type: inode.file_type(),
                })
        };
        self.touch_atime();
        Ok(entry)
    }
}
