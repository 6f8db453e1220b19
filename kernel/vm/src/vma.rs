//! One virtual memory area: a page-aligned range with one protection and one backing.

use crate::abi::PAGE_SIZE;
use crate::prot::Prot;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use skiff_errno::KResult;

/// Where a file-backed mapping gets its bytes (the kernel wraps an open file).
pub trait MapSource: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; `Ok(0)` means end of file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize>;
    /// `(st_dev, st_ino, path)` for `/proc/self/maps`. `st_dev` uses glibc's encoding
    /// (what `stat` reports), from which major and minor are decoded.
    fn describe(&self) -> (u64, u64, Vec<u8>);
    /// Whether the file was opened for writing, which a shared writable mapping needs.
    fn writable(&self) -> bool {
        false
    }
    /// Writes a modified page of a shared mapping back at `offset`. Bytes at or past the
    /// file's current end are dropped: a mapping never grows its file, as on Linux.
    fn write_back(&self, _offset: u64, _data: &[u8]) -> KResult<()> {
        Err(skiff_errno::Errno::EACCES)
    }
    /// `msync(MS_SYNC)`: what was written back reaches stable storage.
    fn sync(&self) -> KResult<()> {
        Ok(())
    }
    /// The identity of the file behind the mapping, as the kernel names files when it
    /// keeps shared mappings coherent with writes to them
    /// ([`AddressSpace::update_file_range`](crate::AddressSpace::update_file_range));
    /// `None` for sources that are not files.
    fn file_key(&self) -> Option<usize> {
        None
    }
}

/// What a VMA is, which decides its name in `/proc/self/maps` and how pages past the
/// file's end behave.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum VmaKind {
    /// An `mmap` of anonymous memory.
    Anonymous,
    /// A segment of the loaded program image. When file-backed, bytes past
    /// `file_size_limit` read as zero (the `.bss` part of a segment), never `SIGBUS`.
    Image,
    /// The `brk` heap, shown as `[heap]`.
    Heap,
    /// The main thread's stack, shown as `[stack]`; it grows down on faults below it.
    Stack,
    /// An `mmap` of a file; a page wholly past the file's end faults with `SIGBUS`.
    File,
}

/// The contents a VMA's pages start with.
#[derive(Clone)]
pub enum Backing {
    /// Zero-filled pages.
    Anonymous,
    /// Pages read from `source`.
    File {
        /// The file.
        source: Arc<dyn MapSource>,
        /// File offset of the VMA's first byte (page-aligned).
        offset: u64,
        /// Absolute file offset where the file's contribution ends: bytes at or past
        /// it are never read (zero in the page that straddles it). The loader passes
        /// `p_offset + p_filesz`; `mmap` passes the file's size (or `u64::MAX` to rely
        /// on the source's own end of file).
        file_size_limit: u64,
    },
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::Anonymous => f.write_str("Anonymous"),
            Backing::File {
                source,
                offset,
                file_size_limit,
            } => {
                let (dev, ino, _) = source.describe();
                f.debug_struct("File")
                    .field("dev", &dev)
                    .field("ino", &ino)
                    .field("offset", offset)
                    .field("file_size_limit", file_size_limit)
                    .finish()
            }
        }
    }
}

impl Backing {
    fn same_object(a: &Arc<dyn MapSource>, b: &Arc<dyn MapSource>) -> bool {
        // Compare data pointers only: vtable pointers of one object may differ
        // between codegen units.
        core::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
    }
}

/// One mapping. Invariants (kept by `AddressSpace`): `start < end`, both page-aligned,
/// and no two VMAs overlap.
#[derive(Clone, Debug)]
pub struct Vma {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) prot: Prot,
    pub(crate) kind: VmaKind,
    pub(crate) backing: Backing,
    pub(crate) shared: bool,
    pub(crate) grows_down: bool,
}

impl Vma {
    /// First address.
    pub fn start(&self) -> u64 {
        self.start
    }
    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.end
    }
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// Always false (a VMA is never empty); present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    /// Protection.
    pub fn prot(&self) -> Prot {
        self.prot
    }
    /// Kind.
    pub fn kind(&self) -> VmaKind {
        self.kind
    }
    /// Backing.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }
    /// Whether this is a `MAP_SHARED` mapping.
    pub fn is_shared(&self) -> bool {
        self.shared
    }
    /// Whether faults just below it extend it (`MAP_GROWSDOWN`, the main stack).
    pub fn grows_down(&self) -> bool {
        self.grows_down
    }
    /// File offset of the first byte, for file-backed VMAs.
    pub fn file_offset(&self) -> Option<u64> {
        match &self.backing {
            Backing::File { offset, .. } => Some(*offset),
            Backing::Anonymous => None,
        }
    }
    /// Whether `addr` lies inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether this is file-backed.
    pub(crate) fn is_file_backed(&self) -> bool {
        matches!(self.backing, Backing::File { .. })
    }

    /// Cuts the VMA at `at` (strictly inside), keeping `[start, at)` and returning
    /// `[at, end)` with its file offset advanced to match.
    pub(crate) fn split_off(&mut self, at: u64) -> Vma {
        debug_assert!(self.start < at && at < self.end && at.is_multiple_of(PAGE_SIZE));
        let mut upper = self.clone();
        upper.start = at;
        if let Backing::File { offset, .. } = &mut upper.backing {
            *offset = offset.saturating_add(at - self.start);
        }
        self.end = at;
        upper
    }

    /// The VMA describing `[new_start, new_end)` of this one's contents, which may
    /// extend past it (mremap growth): same attributes, file offset shifted.
    pub(crate) fn retarget(&self, old_addr: u64, new_start: u64, new_len: u64) -> Vma {
        let mut moved = self.clone();
        moved.start = new_start;
        moved.end = new_start + new_len;
        if let Backing::File { offset, .. } = &mut moved.backing {
            *offset = offset.saturating_add(old_addr - self.start);
        }
        moved
    }

    /// Whether `next` directly follows this VMA and is indistinguishable from a
    /// continuation of it, so the two can become one (as Linux's `vma_merge` does).
    /// Shared anonymous VMAs are separate objects and never merge.
    pub(crate) fn can_merge_with(&self, next: &Vma) -> bool {
        if self.end != next.start
            || self.prot != next.prot
            || self.kind != next.kind
            || self.shared != next.shared
            || self.grows_down != next.grows_down
        {
            return false;
        }
        match (&self.backing, &next.backing) {
            (Backing::Anonymous, Backing::Anonymous) => !self.shared,
            (
                Backing::File {
                    source: a,
                    offset: a_off,
                    file_size_limit: a_lim,
                },
                Backing::File {
                    source: b,
                    offset: b_off,
                    file_size_limit: b_lim,
                },
            ) => {
                Backing::same_object(a, b)
                    && a_off.checked_add(self.len()) == Some(*b_off)
                    && a_lim == b_lim
            }
            _ => false,
        }
    }
}
