//! A mounted FAT volume: its shared state, the per-operation context that every inode
//! operation runs in, the orphan handling, and the [`FileSystem`] implementation.
//!
//! # Locking
//!
//! One [`SleepLock`] per volume serializes every operation (the device may put the
//! holder to sleep, and there is one CPU). It guards the volume's bookkeeping
//! ([`Book`]). Each inode's own metadata sits in a spin lock that is only taken while
//! the volume lock is held, briefly and never across I/O.
//!
//! # Who writes what
//!
//! Everything on the volume is written by this crate through one block cache: file data
//! and cluster chains ([`crate::table`]), directory entries ([`crate::dir`]), and at
//! unmount the FSInfo sector and the dirty flag. starry-fatfs validates the volume at
//! mount and formats new ones ([`crate::format`]). Its `FileSystem` is not `Sync` and
//! its `File`/`Dir` borrow it, so none of its objects could be kept between
//! operations without `unsafe`; and its directory writes are unsuited to a kernel
//! (a rename deletes the old entry before writing the new one, creating the n-th file
//! of a directory of similar names rescans the directory per short-name collision,
//! names starting with a non-ASCII character panic it).

use crate::dir::Listing;
use crate::inode::{entry_cluster, FatInode, Orphan, OrphanState};
use crate::io::{CacheIo, ClockTime};
use crate::names::{eq_ignore_case, RawEntry, ATTR_DIRECTORY, ATTR_HIDDEN, ENTRY_SIZE};
use crate::table::{FatKind, FatTable, Geometry};
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use skiff_block::{BlockCache, BlockDevice, CacheStats, IoError, SleepLock};
use skiff_errno::{Errno, KResult};
use skiff_fs::{FileSystem, Inode, StatFs, Timespec, NAME_MAX, ST_RELATIME};

type Fs = fatfs::FileSystem<CacheIo, ClockTime, fatfs::LossyOemCpConverter>;

/// The hidden directory at the volume root where files unlinked while still open wait
/// for their last reference to go away. Invisible to applications (lookup and
/// `getdents` skip it, creating it is `EPERM`); removed at mount (leftovers of a
/// crash) and at unmount.
pub const ORPHAN_DIR: &str = ".skiff-orphans";
/// `statfs` `f_type` of FAT volumes (Linux `MSDOS_SUPER_MAGIC`).
pub const MSDOS_SUPER_MAGIC: u64 = 0x4d44;
/// `statfs` flag of a read-only mount.
const ST_RDONLY: u64 = 0x1;
/// Largest FAT file.
pub(crate) const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// An entry position's inode number, and the inode while it is alive.
pub(crate) struct Ident {
    pub ino: u64,
    pub live: Weak<FatInode>,
}

/// Owner and mode set by `chmod`/`chown`, kept in memory for the life of the mount.
#[derive(Clone, Copy)]
pub(crate) struct OwnerOverride {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The volume's bookkeeping, under the volume lock.
pub(crate) struct Book {
    /// Entry position (byte offset of the short entry) → inode number and live inode.
    /// Positions change only through this module (rename, unlink), which moves the
    /// record, so a file keeps its inode number for the life of the mount.
    pub idents: BTreeMap<u64, Ident>,
    pub next_ino: u64,
    pub owners: BTreeMap<u64, OwnerOverride>,
    /// Free clusters, once known (FSInfo of a clean FAT32 volume, or counted).
    pub free: Option<u32>,
    /// Where the next cluster search starts.
    pub next_free: u32,
    /// First cluster of the orphan directory, once it exists.
    pub orphan_dir: Option<u32>,
    pub next_orphan: u64,
    /// Files unlinked while open whose entry is gone (no room for the orphan
    /// directory): their chains stay allocated until the inode dies or the unmount.
    pub detached: BTreeMap<u64, Weak<FatInode>>,
    /// The boot sector's dirty flag has been set by this mount.
    pub dirty_marked: bool,
    /// The volume was dirty when mounted (then it stays dirty, as on Linux).
    pub was_dirty: bool,
    pub root: Weak<FatInode>,
    /// Directory listings by first cluster, with their last use.
    pub dirs: hashbrown::HashMap<u32, (u64, Arc<Listing>)>,
    pub dir_tick: u64,
}

pub(crate) struct State {
    /// False once unmounted: every operation is `EIO`.
    pub mounted: bool,
    pub book: Book,
}

/// What every inode of a volume shares.
pub(crate) struct Shared {
    pub cache: Arc<BlockCache>,
    pub clock: Arc<dyn skiff_fs::Clock>,
    pub geo: Geometry,
    pub read_only: bool,
    pub state: SleepLock<State>,
    /// Orphans whose last reference went away while the volume lock was held.
    pub dead: spin::Mutex<Vec<Orphan>>,
}

impl Shared {
    /// Runs `f` with the volume locked; `EIO` after unmount. Afterwards, removes the
    /// orphans whose inodes died meanwhile.
    pub fn run<R>(self: &Arc<Self>, f: impl FnOnce(&mut Ctx<'_>) -> KResult<R>) -> KResult<R> {
        let result = {
            let mut guard = self.state.lock();
            let State { mounted, book } = &mut *guard;
            if *mounted {
                f(&mut Ctx { sh: self, book })
            } else {
                Err(Errno::EIO)
            }
        };
        self.reap_pending();
        result
    }

    /// Removes queued orphans if the volume lock is free; otherwise its holder will
    /// (every [`Shared::run`] ends here).
    pub fn reap_pending(self: &Arc<Self>) {
        loop {
            if self.dead.lock().is_empty() {
                return;
            }
            let Some(mut guard) = self.state.try_lock() else {
                return;
            };
            let items = core::mem::take(&mut *self.dead.lock());
            let State { mounted, book } = &mut *guard;
            if *mounted {
                let mut cx = Ctx { sh: self, book };
                for o in items {
                    // On failure the file stays in the orphan directory, which is
                    // emptied at unmount and at the next mount.
                    let _ = cx.remove_orphan(&o);
                }
            }
        }
    }
}

/// One operation's view of the locked volume.
pub(crate) struct Ctx<'a> {
    pub sh: &'a Arc<Shared>,
    pub book: &'a mut Book,
}

impl<'a> Ctx<'a> {
    pub fn geo(&self) -> &'a Geometry {
        &self.sh.geo
    }

    pub fn cache(&self) -> &'a BlockCache {
        &self.sh.cache
    }

    pub fn fat(&self) -> FatTable<'a> {
        FatTable::new(&self.sh.cache, &self.sh.geo)
    }

    pub fn now(&self) -> Timespec {
        self.sh.clock.realtime()
    }

    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> KResult<()> {
        self.sh.cache.read_at(pos, buf).map_err(Errno::from)
    }

    pub fn write_at(&self, pos: u64, buf: &[u8]) -> KResult<()> {
        self.sh.cache.write_at(pos, buf).map_err(Errno::from)
    }

    /// `EROFS` on a read-only mount; otherwise sets the volume's dirty flag (once).
    pub fn mark_dirty(&mut self) -> KResult<()> {
        if self.sh.read_only {
            return Err(Errno::EROFS);
        }
        if !self.book.dirty_marked {
            let at = self.geo().status_offset;
            let mut b = [0u8];
            self.read_at(at, &mut b)?;
            b[0] |= 1;
            self.write_at(at, &b)?;
            self.book.dirty_marked = true;
        }
        Ok(())
    }

    pub fn read_entry(&self, pos: u64) -> KResult<[u8; ENTRY_SIZE]> {
        let mut e = [0u8; ENTRY_SIZE];
        self.read_at(pos, &mut e)?;
        Ok(e)
    }

    pub fn update_entry(&self, pos: u64, f: impl FnOnce(&mut [u8; ENTRY_SIZE])) -> KResult<()> {
        let mut e = self.read_entry(pos)?;
        f(&mut e);
        self.write_at(pos, &e)
    }

    pub fn adjust_free(&mut self, delta: i64) {
        if let Some(free) = &mut self.book.free {
            *free = (*free as i64 + delta).clamp(0, self.sh.geo.clusters as i64) as u32;
        }
    }

    /// Free clusters (counted on first use).
    pub fn free_clusters(&mut self) -> KResult<u32> {
        if let Some(n) = self.book.free {
            return Ok(n);
        }
        let n = self.fat().count_free()?;
        self.book.free = Some(n);
        Ok(n)
    }

    /// The inode number of the entry at `pos`, assigned on first sight.
    pub fn ino_for(&mut self, pos: u64) -> u64 {
        let next = &mut self.book.next_ino;
        self.book
            .idents
            .entry(pos)
            .or_insert_with(|| {
                let ino = *next;
                *next += 1;
                Ident {
                    ino,
                    live: Weak::new(),
                }
            })
            .ino
    }

    /// Moves the identity of the entry at `from` to `to` (the entry moved).
    pub fn move_ident(&mut self, from: u64, to: u64) {
        if let Some(id) = self.book.idents.remove(&from) {
            self.book.idents.insert(to, id);
        }
    }

    // ---- directories ----

    /// First cluster of a directory's chain; 0 for the fixed FAT12/16 root.
    pub fn dir_cluster(&self, dir: &FatInode) -> u32 {
        if dir.ino() == ROOT_INO {
            self.root_cluster()
        } else {
            dir.meta().first_cluster
        }
    }

    /// A directory's listing.
    pub fn listing(&mut self, dir: &FatInode) -> KResult<Arc<Listing>> {
        let first = self.dir_cluster(dir);
        self.listing_at(first)
    }

    /// Forgets what is cached about a directory's content.
    pub fn invalidate(&mut self, dir: &FatInode) {
        let first = self.dir_cluster(dir);
        self.invalidate_at(first);
    }

    /// The visible entry of `dir` that a lookup of `name` finds.
    pub fn find(&mut self, dir: &FatInode, name: &str) -> KResult<Option<RawEntry>> {
        let is_root = dir.ino() == ROOT_INO;
        Ok(self
            .listing(dir)?
            .find(name)
            .filter(|e| !(is_root && e.matches(ORPHAN_DIR)))
            .cloned())
    }

    /// The inode of `entry` in `parent`: the live one, or a new one read from disk.
    pub fn child(&mut self, parent: &Arc<FatInode>, entry: &RawEntry) -> KResult<Arc<FatInode>> {
        if let Some(live) = self
            .book
            .idents
            .get(&entry.pos)
            .and_then(|id| id.live.upgrade())
        {
            return Ok(live);
        }
        let raw = self.read_entry(entry.pos)?;
        let ino = self.ino_for(entry.pos);
        let node = FatInode::from_entry(self.sh.clone(), ino, parent.clone(), entry.pos, &raw);
        if let Some(id) = self.book.idents.get_mut(&entry.pos) {
            id.live = Arc::downgrade(&node);
        }
        Ok(node)
    }

    /// Sets a directory's modification and change time to now (in its entry too,
    /// except for the root, which has none).
    pub fn touch_dir(&self, dir: &FatInode) -> KResult<()> {
        let now = crate::time::truncate_mtime(self.now());
        let pos = {
            let mut m = dir.meta();
            m.mtime = now;
            m.ctime = now;
            m.pos
        };
        if dir.ino() != ROOT_INO {
            let c = crate::time::Civil::from_timespec(now);
            self.update_entry(pos, |e| {
                e[22..24].copy_from_slice(&c.dos_time().to_le_bytes());
                e[24..26].copy_from_slice(&c.dos_date().to_le_bytes());
            })?;
        }
        Ok(())
    }

    /// Points the ".." entry of directory `dir` at `parent` (after it moved there).
    pub fn fix_dotdot(&self, dir: &FatInode, parent: &FatInode) -> KResult<()> {
        let first = dir.meta().first_cluster;
        if first == 0 {
            return Ok(());
        }
        let pos = self.geo().cluster_offset(first) + ENTRY_SIZE as u64;
        let target = if parent.ino() == ROOT_INO {
            0
        } else {
            parent.meta().first_cluster
        };
        let fat32 = self.geo().kind == FatKind::Fat32;
        let e = self.read_entry(pos)?;
        if &e[..11] != b"..         " {
            return Ok(());
        }
        self.update_entry(pos, |e| {
            if fat32 {
                e[20..22].copy_from_slice(&((target >> 16) as u16).to_le_bytes());
            }
            e[26..28].copy_from_slice(&(target as u16).to_le_bytes());
        })
    }

    // ---- orphans ----

    /// The orphan directory's first cluster, made (hidden) if missing.
    fn orphan_dir(&mut self) -> KResult<u32> {
        if let Some(c) = self.book.orphan_dir {
            return Ok(c);
        }
        let root = self.root_cluster();
        let existing = self.listing_at(root)?.find(ORPHAN_DIR).cloned();
        let entry = match existing {
            Some(e) => e,
            None => self.make_dir(root, ORPHAN_DIR, ATTR_HIDDEN)?,
        };
        let raw = self.read_entry(entry.pos)?;
        let first = entry_cluster(&raw, self.geo().kind);
        if raw[11] & ATTR_DIRECTORY == 0 || first == 0 {
            return Err(Errno::EIO);
        }
        self.book.orphan_dir = Some(first);
        Ok(first)
    }

    /// Takes file `child` out of `dir` while keeping its data for the inode, which may
    /// still be open: the entry moves into the orphan directory, to be removed when the
    /// inode dies. Without room for that (a full volume), the entry is removed and only
    /// the cluster chain is kept, as Linux does (a crash then leaves lost clusters for
    /// fsck).
    pub fn orphan(&mut self, dir: &FatInode, child: &FatInode) -> KResult<()> {
        match self.orphan_to_dir(dir, child) {
            Err(Errno::ENOSPC) => self.detach(dir, child),
            other => other,
        }
    }

    fn orphan_to_dir(&mut self, dir: &FatInode, child: &FatInode) -> KResult<()> {
        let orphans = self.orphan_dir()?;
        let list = self.listing_at(orphans)?;
        // Skip numbers still taken (by leftovers that could not be removed).
        let name = loop {
            let name = self.book.next_orphan.to_string();
            self.book.next_orphan += 1;
            if list.find(&name).is_none() {
                break name;
            }
        };
        let from = self.dir_cluster(dir);
        let old_pos = child.meta().pos;
        let e = self.move_slots(from, old_pos, orphans, &name)?;
        {
            let mut m = child.meta();
            m.pos = e.pos;
            m.orphan = Some(OrphanState::Entry);
            m.parent = None;
        }
        self.move_ident(old_pos, e.pos);
        Ok(())
    }

    /// Removes `child`'s entry but not its clusters (see [`Ctx::orphan`]).
    fn detach(&mut self, dir: &FatInode, child: &FatInode) -> KResult<()> {
        let from = self.dir_cluster(dir);
        let pos = child.meta().pos;
        self.remove_slots(from, pos)?;
        self.book.idents.remove(&pos);
        {
            let mut m = child.meta();
            m.orphan = Some(OrphanState::Detached);
            m.parent = None;
        }
        if let Some(me) = child.this() {
            self.book.detached.insert(child.ino(), Arc::downgrade(&me));
        }
        Ok(())
    }

    /// Removes an orphan whose inode has died.
    pub fn remove_orphan(&mut self, o: &Orphan) -> KResult<()> {
        match *o {
            Orphan::Entry { pos, first_cluster } => {
                let orphans = self.orphan_dir()?;
                self.remove_slots(orphans, pos)?;
                self.book.idents.remove(&pos);
                self.free_chain(first_cluster)
            }
            Orphan::Chain { ino, first_cluster } => {
                self.book.detached.remove(&ino);
                self.free_chain(first_cluster)
            }
        }
    }

    /// Frees a whole cluster chain (0: none).
    pub fn free_chain(&mut self, first: u32) -> KResult<()> {
        let mut ext = self.fat().extents(first)?;
        let all = ext.split_off(0);
        self.fat().free(&all)?;
        self.adjust_free(all.len() as i64);
        Ok(())
    }

    /// Frees the chains of detached orphans that are still open (at unmount).
    fn free_detached(&mut self) -> KResult<()> {
        let live: Vec<Arc<FatInode>> = core::mem::take(&mut self.book.detached)
            .into_values()
            .filter_map(|w| w.upgrade())
            .collect();
        for f in live {
            let first = {
                let mut m = f.meta();
                m.orphan = None;
                m.extents = None;
                core::mem::replace(&mut m.first_cluster, 0)
            };
            self.free_chain(first)?;
        }
        Ok(())
    }

    /// Removes the orphan directory and the files in it (at mount: leftovers of a
    /// crash; at unmount: files still open).
    pub fn purge_orphans(&mut self) -> KResult<()> {
        let root = self.root_cluster();
        let Some(entry) = self.listing_at(root)?.find(ORPHAN_DIR).cloned() else {
            return Ok(());
        };
        self.mark_dirty()?;
        let raw = self.read_entry(entry.pos)?;
        let first = entry_cluster(&raw, self.geo().kind);
        if raw[11] & ATTR_DIRECTORY == 0 || first == 0 {
            return Err(Errno::EIO);
        }
        let list = self.listing_at(first)?;
        let mut left = false;
        for e in list.entries.iter() {
            if e.is_dir() {
                // Never put there by Skiff: leave it (and the directory) alone.
                left = true;
                continue;
            }
            let c = entry_cluster(&self.read_entry(e.pos)?, self.geo().kind);
            self.remove_slots(first, e.pos)?;
            self.book.idents.remove(&e.pos);
            self.free_chain(c)?;
        }
        self.book.orphan_dir = None;
        if left {
            return Ok(());
        }
        self.remove_slots(root, entry.pos)?;
        self.invalidate_at(first);
        self.free_chain(first)
    }
}

/// A mounted FAT volume, implementing [`FileSystem`].
pub struct FatVolume {
    shared: Arc<Shared>,
    root: Arc<FatInode>,
}

/// Mounts the FAT volume on `device` with a write-back cache of `cache_pages` 4 KiB
/// pages. `EINVAL` if the device does not hold a FAT12/16/32 volume (or is smaller than
/// the volume says), `EIO` if it cannot be read. A read-only device gives a read-only
/// mount (changes fail with `EROFS`). Files unlinked while open during an earlier
/// mount that crashed are removed now.
pub fn mount(
    device: Arc<dyn BlockDevice>,
    clock: Arc<dyn skiff_fs::Clock>,
    cache_pages: usize,
) -> KResult<Arc<FatVolume>> {
    let cache = Arc::new(BlockCache::new(device, cache_pages));
    let mut boot = [0u8; 512];
    cache.read_at(0, &mut boot).map_err(|e| match e {
        IoError::OutOfRange => Errno::EINVAL,
        e => e.into(),
    })?;
    let geo = Geometry::parse(&boot).ok_or(Errno::EINVAL)?;
    if geo.total_bytes > cache.size() {
        return Err(Errno::EINVAL);
    }
    let read_only = cache.read_only();
    let options = fatfs::FsOptions::new()
        .time_provider(ClockTime {
            clock: clock.clone(),
        })
        .update_accessed_date(false);
    // fatfs checks the boot sector and FSInfo the way other implementations do; it
    // writes nothing when dropped unchanged.
    let fs = Fs::new(CacheIo::new(cache.clone()), options).map_err(|e| match e {
        fatfs::Error::Io(e) => Errno::from(e),
        _ => Errno::EINVAL,
    })?;
    drop(fs);
    let was_dirty = boot[geo.status_offset as usize] & 1 != 0;
    let (mut free, mut next_free) = (None, 2);
    if let Some(at) = geo.fs_info {
        let mut s = [0u8; 512];
        cache.read_at(at, &mut s).map_err(Errno::from)?;
        let le = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        if le(0) == 0x4161_5252 && le(484) == 0x6141_7272 {
            let count = le(488);
            if !was_dirty && count <= geo.clusters {
                free = Some(count);
            }
            if geo.valid_cluster(le(492)) {
                next_free = le(492);
            }
        }
    }
    let shared = Arc::new(Shared {
        cache,
        clock,
        read_only,
        state: SleepLock::new(State {
            mounted: true,
            book: Book {
                idents: BTreeMap::new(),
                next_ino: ROOT_INO + 1,
                owners: BTreeMap::new(),
                free,
                next_free,
                orphan_dir: None,
                next_orphan: 1,
                detached: BTreeMap::new(),
                dirty_marked: false,
                was_dirty,
                root: Weak::new(),
                dirs: hashbrown::HashMap::new(),
                dir_tick: 0,
            },
        }),
        dead: spin::Mutex::new(Vec::new()),
        geo,
    });
    let root = FatInode::new_root(shared.clone());
    shared.state.lock().book.root = Arc::downgrade(&root);
    if !read_only {
        // Best effort: whatever cannot be removed now stays hidden and is tried again
        // at unmount.
        let _ = shared.run(|cx| cx.purge_orphans());
    }
    Ok(Arc::new(FatVolume { shared, root }))
}

impl FatVolume {
    /// Counters of the volume's block cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.shared.cache.stats()
    }

    /// The volume's block cache.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.shared.cache
    }

    pub fn read_only(&self) -> bool {
        self.shared.read_only
    }

    pub fn kind(&self) -> FatKind {
        self.shared.geo.kind
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u32 {
        self.shared.geo.cluster_size
    }
}

impl FileSystem for FatVolume {
    fn root(&self) -> Arc<dyn Inode> {
        self.root.clone()
    }

    fn type_name(&self) -> &'static str {
        "vfat"
    }

    fn mount_options(&self) -> &'static str {
        if self.shared.read_only {
            "ro,relatime,fmask=0022,dmask=0022"
        } else {
            "rw,relatime,fmask=0022,dmask=0022"
        }
    }

    fn statfs(&self) -> StatFs {
        let geo = &self.shared.geo;
        let free = self.shared.run(|cx| cx.free_clusters()).unwrap_or(0) as u64;
        StatFs {
            fs_type: MSDOS_SUPER_MAGIC,
            block_size: geo.cluster_size as u64,
            blocks: geo.clusters as u64,
            blocks_free: free,
            blocks_avail: free,
            files: 0,
            files_free: 0,
            fsid: [geo.volume_id, 0],
            name_len: NAME_MAX as u64,
            fragment_size: geo.cluster_size as u64,
            flags: ST_RELATIME | if self.shared.read_only { ST_RDONLY } else { 0 },
        }
    }

    fn sync(&self) -> KResult<()> {
        self.shared.run(|cx| cx.cache().sync().map_err(Errno::from))
    }

    /// Removes what is left of files unlinked while open, writes everything out, then
    /// writes the exact free-cluster count into FSInfo (FAT32), clears the volume's
    /// dirty flag (unless it was dirty when mounted) and writes that out too.
    /// Afterwards every operation fails with `EIO`.
    fn unmount(&self) -> KResult<()> {
        let sh = &self.shared;
        let result = {
            let mut guard = sh.state.lock();
            let State { mounted, book } = &mut *guard;
            if !*mounted {
                return Ok(());
            }
            let result = if sh.read_only || !book.dirty_marked {
                Ok(())
            } else {
                let mut cx = Ctx { sh, book };
                let first = cx
                    .free_detached()
                    .and_then(|_| cx.purge_orphans())
                    .and_then(|_| cx.free_clusters().map(drop))
                    .and_then(|_| sh.cache.sync().map_err(Errno::from));
                finish_unmount(sh, book, first)
            };
            *mounted = false;
            result
        };
        // Orphans of inodes that die from now on have nothing left to do.
        sh.dead.lock().clear();
        result
    }

    fn rename(
        &self,
        old_dir: &Arc<dyn Inode>,
        old_name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: u32,
    ) -> KResult<()> {
        let od = self.downcast(old_dir)?;
        let nd = self.downcast(new_dir)?;
        crate::inode::rename(&self.shared, &od, old_name, &nd, new_name, flags)
    }
}

impl FatVolume {
    fn downcast(&self, inode: &Arc<dyn Inode>) -> KResult<Arc<FatInode>> {
        let fat = inode
            .as_any()
            .downcast_ref::<FatInode>()
            .ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(fat.shared(), &self.shared) {
            return Err(Errno::EXDEV);
        }
        fat.this().ok_or(Errno::ENOENT)
    }
}

/// The last steps of a clean unmount of a volume this mount changed: the FSInfo
/// counters and the dirty flag, then one more sync. When an earlier step failed the
/// volume stays marked dirty, so the next mount (or fsck) knows.
fn finish_unmount(sh: &Shared, book: &Book, before: KResult<()>) -> KResult<()> {
    let cache = &sh.cache;
    let geo = &sh.geo;
    let status = |dirty: bool| -> KResult<()> {
        let mut b = [0u8];
        cache
            .read_at(geo.status_offset, &mut b)
            .map_err(Errno::from)?;
        if dirty {
            b[0] |= 1;
        } else {
            b[0] &= !1;
        }
        cache.write_at(geo.status_offset, &b).map_err(Errno::from)
    };
    if let Err(e) = before {
        let _ = status(true).and_then(|_| cache.sync().map_err(Errno::from));
        return Err(e);
    }
    if let (Some(at), Some(free)) = (geo.fs_info, book.free) {
        let mut s = [0u8; 8];
        s[..4].copy_from_slice(&free.to_le_bytes());
        s[4..].copy_from_slice(&book.next_free.to_le_bytes());
        let mut sig = [0u8; 4];
        cache.read_at(at, &mut sig).map_err(Errno::from)?;
        if u32::from_le_bytes(sig) == 0x4161_5252 {
            cache.write_at(at + 488, &s).map_err(Errno::from)?;
        }
    }
    status(book.was_dirty)?;
    cache.sync().map_err(Errno::from)
}

/// Whether `name` is the orphan directory's (at the root).
pub(crate) fn is_orphan_name(name: &str) -> bool {
    eq_ignore_case(name, ORPHAN_DIR)
}
