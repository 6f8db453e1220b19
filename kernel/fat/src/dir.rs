//! Directory contents: reading them (cached listings) and changing them (adding,
//! removing and moving entries, making directories), all written here on the block
//! cache.
//!
//! A directory is named by its first cluster; 0 is the fixed root directory of
//! FAT12/16. New entries always get long-name slots (the name as given, so case is
//! preserved) and a unique short name. Every change is ordered so that a crash leaves at
//! worst lost clusters or a duplicate entry for fsck to tidy, never a lost file: new
//! directory clusters are zeroed before they are linked, a moved entry is written at
//! its new place before the old one is deleted, and an entry is deleted before its
//! clusters are freed.

use crate::names::{
    entry_slots, free_slots, make_short_name, name_key, parse_dir, RawEntry, ATTR_DIRECTORY,
    ENTRY_SIZE,
};
use crate::table::{read_chain, Extents, FatKind};
use crate::time::Civil;
use crate::volume::Ctx;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use hashbrown::{HashMap, HashSet};
use skiff_errno::{Errno, KResult};
use skiff_fs::Timespec;

/// Directory listings kept per volume.
const DIR_CACHE: usize = 64;

/// A directory's decoded entries, with indexes, its raw bytes and its chain.
pub(crate) struct Listing {
    pub entries: Vec<RawEntry>,
    /// Upper-case long and short names → the first entry (in directory order) that has
    /// it: the entry a lookup finds.
    by_key: HashMap<String, usize>,
    by_pos: HashMap<u64, usize>,
    short_names: HashSet<[u8; 11]>,
    bytes: Vec<u8>,
    /// The chain (`None` for the fixed root).
    pub ext: Option<Extents>,
}

impl Listing {
    /// The entry a lookup of `name` finds.
    pub fn find(&self, name: &str) -> Option<&RawEntry> {
        self.by_key.get(&name_key(name)).map(|&i| &self.entries[i])
    }

    /// The entry whose short entry is at volume offset `pos`.
    pub fn at(&self, pos: u64) -> Option<&RawEntry> {
        self.by_pos.get(&pos).map(|&i| &self.entries[i])
    }

    /// Clusters in the chain (0 for the fixed root).
    pub fn clusters(&self) -> u32 {
        self.ext.as_ref().map_or(0, |e| e.clusters)
    }
}

/// Bytes 11 to 31 of a short entry: attributes, times, first cluster, size.
pub(crate) type Fields = [u8; 21];

impl Ctx<'_> {
    /// First cluster of the root directory (0: the fixed FAT12/16 root).
    pub fn root_cluster(&self) -> u32 {
        match self.geo().kind {
            FatKind::Fat32 => self.geo().root_cluster,
            _ => 0,
        }
    }

    /// Fields of a new entry made now.
    pub fn new_fields(&self, attr: u8, cluster: u32, now: Timespec) -> Fields {
        let c = Civil::from_timespec(now);
        let mut f = [0u8; 21];
        f[0] = attr;
        f[2] = c.dos_centis();
        f[3..5].copy_from_slice(&c.dos_time().to_le_bytes());
        f[5..7].copy_from_slice(&c.dos_date().to_le_bytes());
        f[7..9].copy_from_slice(&c.dos_date().to_le_bytes());
        if self.geo().kind == FatKind::Fat32 {
            f[9..11].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
        }
        f[11..13].copy_from_slice(&c.dos_time().to_le_bytes());
        f[13..15].copy_from_slice(&c.dos_date().to_le_bytes());
        f[15..17].copy_from_slice(&(cluster as u16).to_le_bytes());
        f
    }

    /// Reads and decodes the directory starting at `first`.
    fn read_listing(&self, first: u32) -> KResult<Listing> {
        let geo = self.geo();
        let (bytes, ext) = if first == 0 {
            let mut bytes = vec![0u8; geo.root_bytes as usize];
            self.read_at(geo.root_offset, &mut bytes)?;
            (bytes, None)
        } else {
            let ext = self.fat().extents(first)?;
            (read_chain(self.cache(), geo, &ext)?, Some(ext))
        };
        let parsed = parse_dir(&bytes, |i| slot_pos(geo, ext.as_ref(), i).unwrap_or(0));
        let mut by_key = HashMap::with_capacity(parsed.entries.len() * 2);
        let mut by_pos = HashMap::with_capacity(parsed.entries.len());
        for (i, e) in parsed.entries.iter().enumerate() {
            for key in e.keys() {
                by_key.entry(key).or_insert(i);
            }
            by_pos.insert(e.pos, i);
        }
        Ok(Listing {
            entries: parsed.entries,
            by_key,
            by_pos,
            short_names: parsed.short_names.into_iter().collect(),
            bytes,
            ext,
        })
    }

    /// The listing of the directory starting at `first`. Cached per volume (directory
    /// inodes come and go with path walks) until the directory changes.
    pub fn listing_at(&mut self, first: u32) -> KResult<Arc<Listing>> {
        self.book.dir_tick += 1;
        let tick = self.book.dir_tick;
        if let Some((used, l)) = self.book.dirs.get_mut(&first) {
            *used = tick;
            return Ok(l.clone());
        }
        let list = Arc::new(self.read_listing(first)?);
        if self.book.dirs.len() >= DIR_CACHE {
            let oldest = self
                .book
                .dirs
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(&k, _)| k);
            if let Some(k) = oldest {
                self.book.dirs.remove(&k);
            }
        }
        self.book.dirs.insert(first, (tick, list.clone()));
        Ok(list)
    }

    /// Forgets the cached listing of the directory starting at `first`.
    pub fn invalidate_at(&mut self, first: u32) {
        self.book.dirs.remove(&first);
    }

    /// Adds entry `name` (which must not exist) with `fields` to the directory starting
    /// at `first`, growing the directory if needed. `ENOSPC` (changing nothing) if the
    /// fixed root is full or no cluster is free. Returns the new entry.
    pub fn add_entry(&mut self, first: u32, name: &str, fields: &Fields) -> KResult<RawEntry> {
        let list = self.listing_at(first)?;
        let sfn = make_short_name(name, |s| list.short_names.contains(s));
        let slots = entry_slots(name, &sfn, fields);
        let (start, missing) = free_slots(&list.bytes, slots.len() as u32);
        let ext = if missing == 0 {
            list.ext.clone()
        } else if first == 0 {
            return Err(Errno::ENOSPC);
        } else {
            let mut ext = list.ext.clone().ok_or(Errno::EIO)?;
            self.grow_dir(&mut ext, missing)?;
            Some(ext)
        };
        let geo = self.geo();
        let mut last = 0;
        for (k, slot) in slots.iter().enumerate() {
            last = slot_pos(geo, ext.as_ref(), start + k as u32)?;
            self.write_at(last, slot)?;
        }
        self.invalidate_at(first);
        let list = self.listing_at(first)?;
        list.at(last).cloned().ok_or(Errno::EIO)
    }

    /// Appends zeroed clusters to a directory chain for `missing` more slots.
    fn grow_dir(&mut self, ext: &mut Extents, missing: u32) -> KResult<()> {
        let cs = self.geo().cluster_size as u64;
        let need = (missing as u64 * ENTRY_SIZE as u64).div_ceil(cs) as u32;
        let mut hint = self.book.next_free;
        let found = self.fat().find_free(need, &mut hint)?;
        if (found.len() as u32) < need {
            return Err(Errno::ENOSPC);
        }
        for &c in &found {
            self.zero_cluster(c)?;
        }
        self.fat().chain(ext.last(), &found)?;
        self.book.next_free = hint;
        self.adjust_free(-(found.len() as i64));
        for &c in &found {
            ext.push(c);
        }
        Ok(())
    }

    fn zero_cluster(&self, c: u32) -> KResult<()> {
        let zeros = vec![0u8; self.geo().cluster_size as usize];
        self.write_at(self.geo().cluster_offset(c), &zeros)
    }

    /// Deletes the slots of the entry at `pos` in the directory starting at `first`.
    pub fn remove_slots(&mut self, first: u32, pos: u64) -> KResult<()> {
        let list = self.listing_at(first)?;
        let e = list.at(pos).ok_or(Errno::EIO)?.clone();
        for i in e.first_slot..=e.index {
            let at = slot_pos(self.geo(), list.ext.as_ref(), i)?;
            self.write_at(at, &[0xe5])?;
        }
        self.invalidate_at(first);
        Ok(())
    }

    /// Moves the entry at `pos` of directory `from` to directory `to` as `name` (which
    /// must not exist there), keeping everything but the name. The new entry is written
    /// before the old one is deleted. Returns the new entry.
    pub fn move_slots(&mut self, from: u32, pos: u64, to: u32, name: &str) -> KResult<RawEntry> {
        let old = self.read_entry(pos)?;
        let mut fields: Fields = [0; 21];
        fields.copy_from_slice(&old[11..]);
        // The case flags describe the old short name.
        fields[1] = 0;
        let new = self.add_entry(to, name, &fields)?;
        self.remove_slots(from, pos)?;
        Ok(new)
    }

    /// Makes directory `name` in the directory starting at `parent`: a zeroed cluster
    /// with "." and "..", then its entry. Returns the entry.
    pub fn make_dir(&mut self, parent: u32, name: &str, attr: u8) -> KResult<RawEntry> {
        let mut hint = self.book.next_free;
        let found = self.fat().find_free(1, &mut hint)?;
        let Some(&c) = found.first() else {
            return Err(Errno::ENOSPC);
        };
        let now = self.now();
        let dot_parent = if parent == self.root_cluster() {
            0
        } else {
            parent
        };
        let mut block = vec![0u8; self.geo().cluster_size as usize];
        let dot = entry_slots("", b".          ", &self.new_fields(ATTR_DIRECTORY, c, now));
        let dotdot = entry_slots(
            "",
            b"..         ",
            &self.new_fields(ATTR_DIRECTORY, dot_parent, now),
        );
        block[..ENTRY_SIZE].copy_from_slice(&dot[0]);
        block[ENTRY_SIZE..2 * ENTRY_SIZE].copy_from_slice(&dotdot[0]);
        self.write_at(self.geo().cluster_offset(c), &block)?;
        self.fat().chain(None, &[c])?;
        self.book.next_free = hint;
        self.adjust_free(-1);
        let fields = self.new_fields(attr | ATTR_DIRECTORY, c, now);
        match self.add_entry(parent, name, &fields) {
            Ok(e) => Ok(e),
            Err(e) => {
                self.fat().free(&[c])?;
                self.adjust_free(1);
                Err(e)
            }
        }
    }
}

/// Volume offset of slot `index` of a directory (`ext`: its chain, `None` for the
/// fixed root).
fn slot_pos(geo: &crate::table::Geometry, ext: Option<&Extents>, index: u32) -> KResult<u64> {
    let off = index as u64 * ENTRY_SIZE as u64;
    match ext {
        None => {
            if off >= geo.root_bytes {
                return Err(Errno::EIO);
            }
            Ok(geo.root_offset + off)
        }
        Some(ext) => {
            let cs = geo.cluster_size as u64;
            let (disk, _) = ext.locate((off / cs) as u32).ok_or(Errno::EIO)?;
            Ok(geo.cluster_offset(disk) + off % cs)
        }
    }
}
