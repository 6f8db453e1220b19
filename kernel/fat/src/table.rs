//! The on-disk layout of a FAT volume (boot sector fields), the file allocation table
//! (reading links, allocating and freeing clusters in every FAT copy), and cluster
//! chains as extents.
//!
//! fatfs does the directory work (names, entries, creating and removing); file data
//! and its clusters are handled here, on the same cache, so a file's cluster chain can
//! be kept in memory between operations (fatfs's own `File` borrows its filesystem and
//! cannot outlive one locked operation).

use alloc::vec;
use alloc::vec::Vec;
use skiff_block::BlockCache;
use skiff_errno::{Errno, KResult};

/// FAT12, FAT16 or FAT32, by the number of clusters (as every implementation decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatKind {
    Fat12,
    Fat16,
    Fat32,
}

/// Where everything is on the volume, in bytes from its start.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub kind: FatKind,
    pub sector_size: u32,
    pub cluster_size: u32,
    /// The first FAT.
    pub fat_offset: u64,
    /// Bytes per FAT copy.
    pub fat_bytes: u64,
    pub fats: u32,
    /// The only FAT in use when mirroring is disabled (FAT32 extended flags).
    pub active_fat: Option<u32>,
    /// The fixed root directory of FAT12/16.
    pub root_offset: u64,
    pub root_bytes: u64,
    /// The root directory's first cluster (FAT32).
    pub root_cluster: u32,
    /// Cluster 2.
    pub data_offset: u64,
    /// Data clusters, numbered 2 to `clusters + 1`.
    pub clusters: u32,
    /// The FSInfo sector (FAT32).
    pub fs_info: Option<u64>,
    /// The boot-sector byte holding the volume's dirty flag (bit 0).
    pub status_offset: u64,
    pub volume_id: u32,
    /// Bytes the volume claims.
    pub total_bytes: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Geometry {
    /// Decodes a boot sector; `None` if it does not describe a FAT volume (the same
    /// checks fatfs makes, plus the ones that keep arithmetic here in range).
    pub fn parse(boot: &[u8]) -> Option<Geometry> {
        if boot.len() < 512 || boot[510] != 0x55 || boot[511] != 0xaa {
            return None;
        }
        let bps = u16_at(boot, 11) as u32;
        let spc = boot[13] as u32;
        let reserved = u16_at(boot, 14) as u64;
        let fats = boot[16] as u32;
        let root_entries = u16_at(boot, 17) as u64;
        let total16 = u16_at(boot, 19) as u64;
        let spf16 = u16_at(boot, 22) as u64;
        let total32 = u32_at(boot, 32) as u64;
        if !bps.is_power_of_two() || !(512..=4096).contains(&bps) {
            return None;
        }
        if !spc.is_power_of_two() || reserved == 0 || fats == 0 {
            return None;
        }
        let is_fat32 = spf16 == 0;
        let (spf, ext_flags, root_cluster, fs_info) = if is_fat32 {
            if u16_at(boot, 42) != 0 || root_entries != 0 || total16 != 0 {
                return None;
            }
            let fs_info = u16_at(boot, 48) as u64;
            let backup = u16_at(boot, 50) as u64;
            if fs_info >= reserved || backup >= reserved {
                return None;
            }
            (
                u32_at(boot, 36) as u64,
                u16_at(boot, 40),
                u32_at(boot, 44),
                Some(fs_info),
            )
        } else {
            if root_entries == 0 {
                return None;
            }
            (spf16, 0, 0, None)
        };
        if spf == 0 {
            return None;
        }
        let total = match (total16, total32) {
            (0, 0) => return None,
            (0, t) | (t, 0) => t,
            (a, b) if a == b => a,
            _ => return None,
        };
        let bps64 = bps as u64;
        let root_sectors = (root_entries * 32).div_ceil(bps64);
        let first_data = reserved + fats as u64 * spf + root_sectors;
        if total <= first_data {
            return None;
        }
        let mut clusters = ((total - first_data) / spc as u64) as u32;
        let kind = if clusters < 4085 {
            FatKind::Fat12
        } else if clusters < 65525 {
            FatKind::Fat16
        } else {
            FatKind::Fat32
        };
        if is_fat32 != (kind == FatKind::Fat32) || clusters > 0x0fff_fff4 {
            return None;
        }
        // Never follow links past the end of the FAT.
        let bits = match kind {
            FatKind::Fat12 => 12,
            FatKind::Fat16 => 16,
            FatKind::Fat32 => 32,
        };
        let entries = spf * bps64 * 8 / bits;
        clusters = clusters.min(entries.saturating_sub(2) as u32);
        if clusters == 0 {
            return None;
        }
        if is_fat32 && !(2..clusters + 2).contains(&root_cluster) {
            return None;
        }
        let cluster_size = bps * spc;
        let (sig_at, id_at) = if is_fat32 { (66, 67) } else { (38, 39) };
        let volume_id = if boot[sig_at] == 0x29 {
            u32_at(boot, id_at)
        } else {
            0
        };
        let mirroring = ext_flags & 0x80 == 0;
        Some(Geometry {
            kind,
            sector_size: bps,
            cluster_size,
            fat_offset: reserved * bps64,
            fat_bytes: spf * bps64,
            fats,
            active_fat: if mirroring {
                None
            } else {
                Some((ext_flags & 0xf) as u32 % fats)
            },
            root_offset: (reserved + fats as u64 * spf) * bps64,
            root_bytes: root_sectors * bps64,
            root_cluster,
            data_offset: first_data * bps64,
            clusters,
            fs_info: fs_info.map(|s| s * bps64),
            status_offset: if is_fat32 { 0x41 } else { 0x25 },
            volume_id,
            total_bytes: total * bps64,
        })
    }

    pub fn valid_cluster(&self, c: u32) -> bool {
        c >= 2 && c < self.clusters + 2
    }

    /// Byte offset of cluster `c`.
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset + (c as u64 - 2) * self.cluster_size as u64
    }

    /// The cluster number an end-of-chain entry gets.
    fn end_of_chain(&self) -> u32 {
        match self.kind {
            FatKind::Fat12 => 0xfff,
            FatKind::Fat16 => 0xffff,
            FatKind::Fat32 => 0x0fff_ffff,
        }
    }

    /// (offset in a FAT, width in bytes) of cluster `c`'s entry.
    fn entry_location(&self, c: u32) -> (u64, usize) {
        match self.kind {
            FatKind::Fat12 => (c as u64 + c as u64 / 2, 2),
            FatKind::Fat16 => (c as u64 * 2, 2),
            FatKind::Fat32 => (c as u64 * 4, 4),
        }
    }

    /// The FAT copies that get written: all of them, unless mirroring is disabled.
    fn written_fats(&self) -> core::ops::Range<u32> {
        match self.active_fat {
            Some(i) => i..i + 1,
            None => 0..self.fats,
        }
    }

    fn read_fat_offset(&self) -> u64 {
        self.fat_offset + self.active_fat.unwrap_or(0) as u64 * self.fat_bytes
    }
}

/// What a FAT entry says about its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Free,
    Next(u32),
    End,
    Bad,
}

/// Window size of [`FatTable`]'s read buffer.
const WINDOW: u64 = 8192;

/// Access to the FAT through the cache, with a read window so that walking a chain or
/// scanning for free clusters does not go to the cache once per entry. Short-lived: made
/// for one operation, since fatfs may change the FAT between operations.
pub struct FatTable<'a> {
    cache: &'a BlockCache,
    geo: &'a Geometry,
    win_start: u64,
    win: Vec<u8>,
}

impl<'a> FatTable<'a> {
    pub fn new(cache: &'a BlockCache, geo: &'a Geometry) -> FatTable<'a> {
        FatTable {
            cache,
            geo,
            win_start: 0,
            win: Vec::new(),
        }
    }

    pub fn geometry(&self) -> &Geometry {
        self.geo
    }

    /// The raw entry of cluster `c` (FAT32: the low 28 bits).
    fn raw(&mut self, c: u32) -> KResult<u32> {
        let (off, width) = self.geo.entry_location(c);
        if off + width as u64 > self.geo.fat_bytes {
            return Err(Errno::EIO);
        }
        if off < self.win_start || off + width as u64 > self.win_start + self.win.len() as u64 {
            let start = off & !(WINDOW / 2 - 1);
            let len = WINDOW.min(self.geo.fat_bytes - start) as usize;
            self.win.resize(len, 0);
            self.cache
                .read_at(self.geo.read_fat_offset() + start, &mut self.win)
                .map_err(Errno::from)?;
            self.win_start = start;
        }
        let at = (off - self.win_start) as usize;
        let w = &self.win[at..at + width];
        Ok(match self.geo.kind {
            FatKind::Fat12 => {
                let v = u16::from_le_bytes([w[0], w[1]]) as u32;
                if c & 1 == 0 {
                    v & 0xfff
                } else {
                    v >> 4
                }
            }
            FatKind::Fat16 => u16::from_le_bytes([w[0], w[1]]) as u32,
            FatKind::Fat32 => u32::from_le_bytes([w[0], w[1], w[2], w[3]]) & 0x0fff_ffff,
        })
    }

    pub fn link(&mut self, c: u32) -> KResult<Link> {
        let v = self.raw(c)?;
        let (bad, end) = match self.geo.kind {
            FatKind::Fat12 => (0xff7, 0xff8),
            FatKind::Fat16 => (0xfff7, 0xfff8),
            FatKind::Fat32 => (0x0fff_fff7, 0x0fff_fff8),
        };
        Ok(match v {
            0 => Link::Free,
            v if v == bad => Link::Bad,
            v if v >= end => Link::End,
            v => Link::Next(v),
        })
    }

    /// The cluster after `c` in its chain; `EIO` for a corrupt link.
    pub fn next(&mut self, c: u32) -> KResult<Option<u32>> {
        match self.link(c)? {
            Link::Next(n) if self.geo.valid_cluster(n) => Ok(Some(n)),
            Link::End => Ok(None),
            _ => Err(Errno::EIO),
        }
    }

    /// Sets cluster `c`'s entry to `value` in every FAT copy (FAT32 keeps the entry's
    /// reserved top bits).
    fn set(&mut self, c: u32, value: u32) -> KResult<()> {
        let (off, width) = self.geo.entry_location(c);
        for fat in self.geo.written_fats() {
            let at = self.geo.fat_offset + fat as u64 * self.geo.fat_bytes + off;
            let mut b = [0u8; 4];
            let b = &mut b[..width];
            match self.geo.kind {
                FatKind::Fat12 => {
                    self.cache.read_at(at, b).map_err(Errno::from)?;
                    let old = u16::from_le_bytes([b[0], b[1]]);
                    let new = if c & 1 == 0 {
                        (old & 0xf000) | (value as u16 & 0xfff)
                    } else {
                        (old & 0x000f) | ((value as u16) << 4)
                    };
                    b.copy_from_slice(&new.to_le_bytes());
                }
                FatKind::Fat16 => b.copy_from_slice(&(value as u16).to_le_bytes()),
                FatKind::Fat32 => {
                    self.cache.read_at(at, b).map_err(Errno::from)?;
                    let old = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    let new = (old & 0xf000_0000) | (value & 0x0fff_ffff);
                    b.copy_from_slice(&new.to_le_bytes());
                }
            }
            self.cache.write_at(at, b).map_err(Errno::from)?;
            if self.geo.active_fat.unwrap_or(0) == fat
                && off >= self.win_start
                && off + width as u64 <= self.win_start + self.win.len() as u64
            {
                let w = (off - self.win_start) as usize;
                self.win[w..w + width].copy_from_slice(b);
            }
        }
        Ok(())
    }

    /// The chain starting at `first` (0: no chain) as extents; `EIO` if it is corrupt
    /// (a bad or free link, a link out of range, or a loop).
    pub fn extents(&mut self, first: u32) -> KResult<Extents> {
        let mut ext = Extents::default();
        if first == 0 {
            return Ok(ext);
        }
        if !self.geo.valid_cluster(first) {
            return Err(Errno::EIO);
        }
        let mut c = first;
        loop {
            ext.push(c);
            if ext.clusters > self.geo.clusters {
                return Err(Errno::EIO);
            }
            match self.next(c)? {
                Some(n) => c = n,
                None => return Ok(ext),
            }
        }
    }

    /// Counts free clusters (a full scan of the FAT).
    pub fn count_free(&mut self) -> KResult<u32> {
        let mut free = 0;
        for c in 2..self.geo.clusters + 2 {
            if self.raw(c)? == 0 {
                free += 1;
            }
        }
        Ok(free)
    }

    /// Finds up to `want` free clusters, scanning cyclically from `*hint` (which moves
    /// past them); fewer when the volume is full. Changes nothing.
    pub fn find_free(&mut self, want: u32, hint: &mut u32) -> KResult<Vec<u32>> {
        let total = self.geo.clusters;
        let start = if self.geo.valid_cluster(*hint) {
            *hint
        } else {
            2
        };
        let mut found = Vec::new();
        let mut i = 0;
        while i < total && (found.len() as u32) < want {
            let c = 2 + (start - 2 + i) % total;
            if self.raw(c)? == 0 {
                found.push(c);
            }
            i += 1;
        }
        if let Some(&last) = found.last() {
            *hint = if last + 1 < total + 2 { last + 1 } else { 2 };
        }
        Ok(found)
    }

    /// Links `clusters` into a chain ending with the end-of-chain mark, then hooks it
    /// onto `tail` (the last cluster of an existing chain): a crash in between leaves
    /// lost clusters, not a broken chain.
    pub fn chain(&mut self, tail: Option<u32>, clusters: &[u32]) -> KResult<()> {
        let Some(&last) = clusters.last() else {
            return Ok(());
        };
        for pair in clusters.windows(2) {
            self.set(pair[0], pair[1])?;
        }
        self.set(last, self.geo.end_of_chain())?;
        if let Some(t) = tail {
            self.set(t, clusters[0])?;
        }
        Ok(())
    }

    /// [`FatTable::find_free`] and [`FatTable::chain`] onto `tail`.
    pub fn allocate(&mut self, tail: Option<u32>, want: u32, hint: &mut u32) -> KResult<Vec<u32>> {
        let found = self.find_free(want, hint)?;
        self.chain(tail, &found)?;
        Ok(found)
    }

    /// Marks `c` as the end of its chain.
    pub fn set_end(&mut self, c: u32) -> KResult<()> {
        self.set(c, self.geo.end_of_chain())
    }

    /// Frees the clusters `list` (already unlinked from any chain that stays).
    pub fn free(&mut self, list: &[u32]) -> KResult<()> {
        for &c in list {
            self.set(c, 0)?;
        }
        Ok(())
    }
}

/// A run of consecutive clusters of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Index of the run's first cluster within the chain.
    pub file: u32,
    /// Its cluster number on the volume.
    pub disk: u32,
    pub len: u32,
}

/// A cluster chain as runs of consecutive clusters, in chain order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extents {
    pub runs: Vec<Run>,
    /// Clusters in the chain.
    pub clusters: u32,
}

impl Extents {
    /// Appends cluster `disk` to the chain.
    pub fn push(&mut self, disk: u32) {
        match self.runs.last_mut() {
            Some(r) if r.disk as u64 + r.len as u64 == disk as u64 => r.len += 1,
            _ => self.runs.push(Run {
                file: self.clusters,
                disk,
                len: 1,
            }),
        }
        self.clusters += 1;
    }

    pub fn first(&self) -> Option<u32> {
        self.runs.first().map(|r| r.disk)
    }

    pub fn last(&self) -> Option<u32> {
        self.runs.last().map(|r| r.disk + r.len - 1)
    }

    /// The volume cluster holding chain index `index`, and how many clusters from it on
    /// are consecutive on the volume.
    pub fn locate(&self, index: u32) -> Option<(u32, u32)> {
        let i = self.runs.partition_point(|r| r.file <= index);
        let r = self.runs.get(i.checked_sub(1)?)?;
        let within = index - r.file;
        (within < r.len).then(|| (r.disk + within, r.len - within))
    }

    /// The clusters from chain index `keep` on, removed from the extents.
    pub fn split_off(&mut self, keep: u32) -> Vec<u32> {
        let mut gone = Vec::new();
        while let Some(r) = self.runs.last_mut() {
            if r.file >= keep {
                gone.extend((0..r.len).rev().map(|i| r.disk + i));
                self.runs.pop();
            } else {
                let end = r.file + r.len;
                if end > keep {
                    let cut = end - keep;
                    gone.extend((0..cut).rev().map(|i| r.disk + r.len - cut + i));
                    r.len -= cut;
                }
                break;
            }
        }
        self.clusters = self.clusters.min(keep);
        gone.reverse();
        gone
    }

    /// Byte ranges `(volume offset, length)` covering `[offset, offset + len)` of the
    /// chain's content, merged where the clusters are consecutive.
    pub fn map(&self, geo: &Geometry, offset: u64, len: u64) -> KResult<Vec<(u64, u64)>> {
        let cs = geo.cluster_size as u64;
        let mut out = Vec::new();
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let index = (pos / cs) as u32;
            let (disk, run) = self.locate(index).ok_or(Errno::EIO)?;
            let within = pos % cs;
            let avail = run as u64 * cs - within;
            let n = avail.min(end - pos);
            out.push((geo.cluster_offset(disk) + within, n));
            pos += n;
        }
        Ok(out)
    }
}

/// Reads the bytes of a whole cluster chain (a directory) through the cache.
pub fn read_chain(cache: &BlockCache, geo: &Geometry, ext: &Extents) -> KResult<Vec<u8>> {
    let cs = geo.cluster_size as usize;
    let mut buf = vec![0u8; ext.clusters as usize * cs];
    for r in &ext.runs {
        let at = r.file as usize * cs;
        cache
            .read_at(
                geo.cluster_offset(r.disk),
                &mut buf[at..at + r.len as usize * cs],
            )
            .map_err(Errno::from)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_push_locate_split() {
        let mut e = Extents::default();
        for c in [5, 6, 7, 10, 11, 3] {
            e.push(c);
        }
        assert_eq!(e.clusters, 6);
        assert_eq!(e.runs.len(), 3);
        assert_eq!(e.locate(0), Some((5, 3)));
        assert_eq!(e.locate(2), Some((7, 1)));
        assert_eq!(e.locate(3), Some((10, 2)));
        assert_eq!(e.locate(5), Some((3, 1)));
        assert_eq!(e.locate(6), None);
        assert_eq!(e.last(), Some(3));
        let gone = e.split_off(4);
        assert_eq!(gone, vec![11, 3]);
        assert_eq!(e.clusters, 4);
        assert_eq!(e.last(), Some(10));
        let gone = e.split_off(1);
        assert_eq!(gone, vec![6, 7, 10]);
        assert_eq!(
            e.runs,
            vec![Run {
                file: 0,
                disk: 5,
                len: 1
            }]
        );
        assert_eq!(e.split_off(0), vec![5]);
        assert_eq!(e.clusters, 0);
        assert!(e.runs.is_empty());
    }
}
