//! The application's address space: the set of VMAs and Linux's rules for changing it
//! (`mmap`, `munmap`, `mprotect`, `mremap`, `madvise`, `brk`) and for resolving page
//! faults. Page tables are driven only through [`PageOps`].

use crate::abi::*;
use crate::maps;
use crate::prot::{Access, FaultKind, Prot};
use crate::vma::{Backing, Vma, VmaKind};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};

/// The page-table operations the kernel provides (tests use a fake).
pub trait PageOps {
    /// Map a fresh page at `va` (page-aligned) with `prot`, filled with `data`
    /// (len ≤ 4096, rest zero). `Err(ENOMEM)` when out of frames.
    fn map_page(&mut self, va: u64, prot: Prot, data: &[u8]) -> KResult<()>;
    /// Unmap every present page in `[start, end)`, freeing its frame. Absent pages are
    /// skipped.
    fn unmap_range(&mut self, start: u64, end: u64);
    /// Change the protection of present pages in `[start, end)`.
    fn protect_range(&mut self, start: u64, end: u64, prot: Prot);
    /// Move present pages of `[old, old + len)` to `[new, new + len)` (no copy of data).
    fn move_range(&mut self, old: u64, new: u64, len: u64);
    /// Whether a page is present at `va`.
    fn is_mapped(&self, va: u64) -> bool;
    /// If the page at `va` is present and was written since it was mapped or last
    /// taken, copies it to `out` (4096 bytes), marks it clean and returns true.
    fn take_dirty(&mut self, va: u64, out: &mut [u8]) -> bool;
    /// If the page at `va` is present, copies `data` into it at byte `at` (which with
    /// `data` stays inside the page) without marking it dirty, and returns true.
    fn patch_page(&mut self, va: u64, at: usize, data: &[u8]) -> bool;
}

/// Where things go in the application's half of the address space.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    /// Top of the mmap area; mappings grow down from here.
    pub mmap_base: u64,
    /// Lowest address `mmap` hands out or accepts with `MAP_FIXED` (`vm.mmap_min_addr`).
    pub mmap_min: u64,
    /// One past the highest user address (Linux's `TASK_SIZE`, `0x7fff_ffff_f000`).
    pub user_end: u64,
}

/// Linux's `stack_guard_gap`: 256 pages kept free below a grows-down mapping, both by
/// the placement of new mappings and by stack growth towards another mapping.
pub const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

/// Default `RLIMIT_STACK` (8 MiB), the most a grows-down mapping may grow to.
pub const DEFAULT_STACK_LIMIT: u64 = 8 << 20;

/// Where x86_64 Linux places `MAP_32BIT` mappings: bottom-up in `[1 GiB, 2 GiB)`.
const MAP_32BIT_LOW: u64 = 0x4000_0000;
const MAP_32BIT_HIGH: u64 = 0x8000_0000;

/// The `brk` heap: where it starts and the (unaligned) break the application set.
#[derive(Clone, Copy, Debug)]
struct BrkState {
    start: u64,
    current: u64,
}

/// What `madvise` does for an advice value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Advice {
    /// Accepted and nothing to do in a single-process kernel without swap or THP.
    Hint,
    /// `MADV_DONTNEED`: drop pages; the next touch reads zeros or the file again.
    DontNeed,
    /// `MADV_FREE`: like `DontNeed` but only for private anonymous memory.
    Free,
    /// `MADV_REMOVE`: punch a hole in shared memory.
    Remove,
    /// `MADV_WIPEONFORK`: a hint here (no fork), but Linux validates the mapping.
    WipeOnFork,
    /// `MADV_POPULATE_READ` / `MADV_POPULATE_WRITE`.
    Populate(Access),
}

impl Advice {
    fn decode(advice: u64) -> KResult<Advice> {
        Ok(match advice {
            MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED | MADV_DONTFORK
            | MADV_DOFORK | MADV_MERGEABLE | MADV_UNMERGEABLE | MADV_HUGEPAGE | MADV_NOHUGEPAGE
            | MADV_DONTDUMP | MADV_DODUMP | MADV_KEEPONFORK | MADV_COLD | MADV_PAGEOUT => {
                Advice::Hint
            }
            MADV_DONTNEED | MADV_DONTNEED_LOCKED => Advice::DontNeed,
            MADV_FREE => Advice::Free,
            MADV_REMOVE => Advice::Remove,
            MADV_WIPEONFORK => Advice::WipeOnFork,
            MADV_POPULATE_READ => Advice::Populate(Access::Read),
            MADV_POPULATE_WRITE => Advice::Populate(Access::Write),
            // MADV_COLLAPSE needs transparent huge pages and MADV_HWPOISON /
            // MADV_SOFT_OFFLINE need memory-failure support: Linux without those
            // features answers EINVAL, and so do we. MADV_GUARD_INSTALL/REMOVE (Linux
            // 6.13) are not implemented yet: EINVAL, as on kernels before 6.13.
            _ => return Err(Errno::EINVAL),
        })
    }
}

/// The application's virtual memory map. VMAs are kept in a `BTreeMap` keyed by
/// start address; they never overlap. A clone is the same map (`fork` gives it to the
/// child); the pages behind it are the page tables' business.
#[derive(Clone, Debug)]
pub struct AddressSpace {
    layout: Layout,
    vmas: BTreeMap<u64, Vma>,
    brk: Option<BrkState>,
    stack_limit: u64,
}

/// Where placement must keep clear of `vma`: grows-down mappings reserve the guard gap
/// below them (Linux's `vm_start_gap`).
fn placement_start(vma: &Vma) -> u64 {
    if vma.grows_down {
        vma.start.saturating_sub(STACK_GUARD_GAP)
    } else {
        vma.start
    }
}

impl AddressSpace {
    /// An empty address space.
    pub fn new(layout: Layout) -> Self {
        AddressSpace {
            layout,
            vmas: BTreeMap::new(),
            brk: None,
            stack_limit: DEFAULT_STACK_LIMIT,
        }
    }

    /// The layout this space was created with.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Sets the most a grows-down mapping may grow to (`RLIMIT_STACK`).
    pub fn set_stack_limit(&mut self, bytes: u64) {
        self.stack_limit = bytes;
    }

    /// All VMAs in address order.
    pub fn vmas(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.values()
    }

    /// The VMA containing `addr`, if any.
    pub fn vma_at(&self, addr: u64) -> Option<&Vma> {
        self.vmas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| v.contains(addr))
    }

    /// Sum of all VMA lengths (`VmSize`).
    pub fn total_mapped(&self) -> u64 {
        self.vmas.values().map(Vma::len).sum()
    }

    /// `(start, current break)` once [`set_brk_area`](Self::set_brk_area) was called.
    pub fn brk_area(&self) -> Option<(u64, u64)> {
        self.brk.map(|b| (b.start, b.current))
    }

    /// `/proc/self/maps`, in Linux's format.
    pub fn maps_text(&self) -> String {
        let mut out = String::new();
        for vma in self.vmas.values() {
            maps::write_line(&mut out, vma);
        }
        out
    }

    // ----- loader ---------------------------------------------------------------------

    /// Maps an ELF segment or the stack at a fixed place, replacing whatever overlaps
    /// (like `MAP_FIXED`). Pages are populated lazily; call
    /// [`populate_range`](Self::populate_range) for pages the kernel writes at once.
    /// `Stack` VMAs grow down. `EINVAL` for an unaligned start or file offset, a zero
    /// length, or a kind that contradicts the backing (heap, stack and anonymous VMAs
    /// are anonymous; `File` VMAs are file-backed); `ENOMEM` past `user_end`.
    pub fn map_fixed(
        &mut self,
        ops: &mut dyn PageOps,
        start: u64,
        len: u64,
        prot: Prot,
        kind: VmaKind,
        backing: Backing,
    ) -> KResult<()> {
        if len == 0 || !is_page_aligned(start) {
            return Err(Errno::EINVAL);
        }
        let len = page_align_up(len).ok_or(Errno::ENOMEM)?;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.layout.user_end)
            .ok_or(Errno::ENOMEM)?;
        let kind_matches_backing = match kind {
            VmaKind::Heap | VmaKind::Stack | VmaKind::Anonymous => {
                matches!(backing, Backing::Anonymous)
            }
            VmaKind::File => matches!(backing, Backing::File { .. }),
            VmaKind::Image => true,
        };
        if !kind_matches_backing {
            return Err(Errno::EINVAL);
        }
        Self::check_file_offset(&backing, len)?;
        self.unmap_region(ops, start, end);
        self.insert_vma(Vma {
            start,
            end,
            prot,
            kind,
            backing,
            shared: false,
            grows_down: kind == VmaKind::Stack,
        });
        Ok(())
    }

    /// Maps every not-yet-present page of the VMAs in `[addr, addr + len)` now, with
    /// the VMA's protection and contents (`MAP_POPULATE`, or the loader before it
    /// writes the initial stack). `PROT_NONE` VMAs and file pages wholly past the end
    /// of the file are skipped, as Linux's populate does. `ENOMEM` when frames run out.
    pub fn populate_range(&mut self, ops: &mut dyn PageOps, addr: u64, len: u64) -> KResult<()> {
        let end = addr.saturating_add(len);
        let start = page_align_down(addr);
        let Some(first) = self
            .first_vma_ending_after(start)
            .map(|v| v.start)
            .filter(|&s| s < end)
        else {
            return Ok(());
        };
        for vma in self.vmas.range(first..end).map(|(_, v)| v) {
            if !vma.prot.is_accessible() {
                continue;
            }
            let from = vma.start.max(start);
            let to = vma.end.min(page_align_up(end).unwrap_or(vma.end));
            for page in (from..to).step_by(PAGE_SIZE as usize) {
                if ops.is_mapped(page) {
                    continue;
                }
                match fill_page(ops, vma, page) {
                    Ok(()) | Err(FaultKind::Bus) => {}
                    Err(_) => return Err(Errno::ENOMEM),
                }
            }
        }
        Ok(())
    }

    // ----- mmap / munmap ----------------------------------------------------------------

    /// `mmap(2)`. `prot` and `flags` are the raw register values; `backing` is what the
    /// file descriptor maps (ignored with `MAP_ANONYMOUS`; `Backing::Anonymous` without
    /// `MAP_ANONYMOUS` is a private `/dev/zero`-like mapping). The caller has already
    /// checked that the raw offset is page-aligned for anonymous mappings too (Linux
    /// checks it before anything else), resolved the descriptor, and checked the file's
    /// open mode.
    ///
    /// `MAP_SHARED` file mappings get their pages from the file when first touched and
    /// write modified pages back ([`AddressSpace::sync_range`]) on `msync`, `munmap`,
    /// when replaced, and at exit. With one address space and no page cache they are
    /// not coherent with `write(2)`: later writes to the file through a descriptor are
    /// not reflected in pages already faulted in. Shared anonymous
    /// memory behaves exactly like Linux's in a single process without `fork`.
    /// `MAP_HUGETLB` answers like a Linux with no huge pages reserved (`ENOMEM`, or
    /// `EINVAL` for a file that is not on hugetlbfs).
    pub fn mmap(
        &mut self,
        ops: &mut dyn PageOps,
        addr_hint: u64,
        len: u64,
        prot: u64,
        flags: u64,
        backing: Backing,
    ) -> KResult<u64> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let from_fd = flags & MAP_ANONYMOUS == 0;
        let backing = if from_fd { backing } else { Backing::Anonymous };
        let shared = match flags & MAP_TYPE {
            MAP_PRIVATE => false,
            MAP_SHARED => true,
            MAP_SHARED_VALIDATE if from_fd => {
                if flags & !LEGACY_MAP_MASK != 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                true
            }
            // Linux's anonymous path knows only MAP_SHARED and MAP_PRIVATE, so
            // MAP_SHARED_VALIDATE without a file is EINVAL too (measured).
            _ => return Err(Errno::EINVAL),
        };
        let grows_down = flags & MAP_GROWSDOWN != 0;
        if grows_down && (shared || from_fd) {
            return Err(Errno::EINVAL);
        }
        if flags & MAP_HUGETLB != 0 {
            return Err(if from_fd {
                Errno::EINVAL
            } else {
                Errno::ENOMEM
            });
        }
        let prot = Prot::from_mmap_bits(prot);
        let file_backed = matches!(backing, Backing::File { .. });
        if let Backing::File { source, .. } = &backing {
            if shared && prot.write && !source.writable() {
                return Err(Errno::EACCES);
            }
        }
        // Linux: PAGE_ALIGN wrapping to zero is ENOMEM, not EINVAL.
        let len = page_align_up(len).ok_or(Errno::ENOMEM)?;
        Self::check_file_offset(&backing, len)?;

        let addr = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            self.check_fixed_placement(addr_hint, len)?;
            if flags & MAP_FIXED_NOREPLACE != 0 && self.overlaps(addr_hint, addr_hint + len) {
                return Err(Errno::EEXIST);
            }
            addr_hint
        } else {
            self.find_free_area(addr_hint, len, flags & MAP_32BIT != 0)?
        };
        let end = addr + len;
        self.unmap_region(ops, addr, end);
        let kind = if file_backed {
            VmaKind::File
        } else {
            VmaKind::Anonymous
        };
        self.insert_vma(Vma {
            start: addr,
            end,
            prot,
            kind,
            backing,
            shared,
            grows_down,
        });
        if flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE {
            // Linux's mm_populate is best effort: the mapping stands even if frames run
            // out, and the remaining pages fault in later.
            let _ = self.populate_range(ops, addr, len);
        }
        Ok(addr)
    }

    /// `munmap(2)`: removes every mapping in the range, splitting VMAs at both ends;
    /// holes are fine. `EINVAL` for an unaligned address, a zero length, or a range
    /// past `user_end`.
    pub fn munmap(&mut self, ops: &mut dyn PageOps, addr: u64, len: u64) -> KResult<()> {
        let user_end = self.layout.user_end;
        if !is_page_aligned(addr) || addr > user_end || len > user_end - addr {
            return Err(Errno::EINVAL);
        }
        let len = page_align_up(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        self.unmap_region(ops, addr, addr + len);
        Ok(())
    }

    // ----- mprotect ---------------------------------------------------------------------

    /// `mprotect(2)`. Splits VMAs at the range's ends and re-protects present pages.
    /// `ENOMEM` if any part of the range is unmapped; `EACCES` when adding write
    /// permission to a shared mapping of a file not open for writing; `PROT_GROWSDOWN`
    /// extends the range down to the start of a grows-down mapping (`EINVAL` on
    /// others); `PROT_GROWSUP` is always `EINVAL` (x86 has no grows-up mappings).
    ///
    /// Unlike Linux, which may apply the change to a prefix of the range before it
    /// finds the hole that makes it fail, this validates the whole range first and
    /// changes nothing on error.
    pub fn mprotect(
        &mut self,
        ops: &mut dyn PageOps,
        addr: u64,
        len: u64,
        prot: u64,
    ) -> KResult<()> {
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        if grows == PROT_GROWSDOWN | PROT_GROWSUP || !is_page_aligned(addr) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = page_align_up(len).ok_or(Errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let new_prot = Prot::from_mprotect_bits(prot & !grows)?;

        let first = self
            .first_vma_ending_after(addr)
            .filter(|v| v.start < end)
            .ok_or(Errno::ENOMEM)?;
        let start = if grows == PROT_GROWSDOWN {
            if !first.grows_down {
                return Err(Errno::EINVAL);
            }
            first.start
        } else {
            if first.start > addr {
                return Err(Errno::ENOMEM);
            }
            if grows == PROT_GROWSUP {
                return Err(Errno::EINVAL);
            }
            addr
        };

        let mut cursor = start;
        for vma in self.vmas.range(first.start..end).map(|(_, v)| v) {
            if vma.start > cursor {
                return Err(Errno::ENOMEM);
            }
            if new_prot.write && vma.shared {
                if let Backing::File { source, .. } = &vma.backing {
                    if !source.writable() {
                        return Err(Errno::EACCES);
                    }
                }
            }
            cursor = vma.end;
        }
        if cursor < end {
            return Err(Errno::ENOMEM);
        }

        self.split_at(start);
        self.split_at(end);
        for vma in self.vmas.range_mut(start..end).map(|(_, v)| v) {
            vma.prot = new_prot;
            ops.protect_range(vma.start, vma.end, new_prot);
        }
        self.merge_range(start, end);
        Ok(())
    }

    // ----- mremap -----------------------------------------------------------------------

    /// `mremap(2)`: shrink in place; grow in place when the following space is free;
    /// otherwise move (with `MREMAP_MAYMOVE`, else `ENOMEM`). `MREMAP_FIXED` (requires
    /// `MAYMOVE`) moves to `new_addr`, unmapping what is there. Pages move with
    /// `PageOps::move_range`, so data survives. `EFAULT` when `old_addr` is unmapped or
    /// the old range runs past its VMA.
    ///
    /// `old_len == 0` duplicates a shared file mapping (as Linux does); for private
    /// mappings it is `EINVAL` (Linux's rule), and for shared anonymous memory it is
    /// `EINVAL` too because `PageOps` cannot alias frames yet. `MREMAP_DONTUNMAP` is
    /// `EINVAL` (not implemented; also what the project's host kernel answers).
    #[allow(clippy::too_many_arguments)]
    pub fn mremap(
        &mut self,
        ops: &mut dyn PageOps,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> KResult<u64> {
        if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
            || (flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0)
            || flags & MREMAP_DONTUNMAP != 0
            || !is_page_aligned(old_addr)
        {
            return Err(Errno::EINVAL);
        }
        let old_len = page_align_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_align_up(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 {
            return Err(Errno::EINVAL);
        }
        let vma = self.vma_at(old_addr).ok_or(Errno::EFAULT)?;
        let (vma_start, vma_end) = (vma.start, vma.end);
        if old_len == 0 {
            return self.mremap_duplicate(ops, old_addr, new_len, flags, new_addr);
        }
        let fixed = flags & MREMAP_FIXED != 0;
        let old_end = old_addr.checked_add(old_len).ok_or(Errno::EINVAL)?;

        if fixed {
            self.check_mremap_target(old_addr, old_len, new_addr, new_len)?;
            // The part that moves must lie in one VMA (Linux's vma_to_resize). Checked
            // before anything is unmapped so a failure changes nothing.
            let moving_len = old_len.min(new_len);
            if old_addr + moving_len > vma_end {
                return Err(Errno::EFAULT);
            }
            self.unmap_region(ops, new_addr, new_addr + new_len);
            if old_len > new_len {
                self.unmap_region(ops, old_addr + new_len, old_end);
            }
            self.move_mapping(ops, old_addr, moving_len, new_addr, new_len);
            return Ok(new_addr);
        }

        if new_len <= old_len {
            if old_end > self.layout.user_end {
                return Err(Errno::EINVAL);
            }
            self.unmap_region(ops, old_addr + new_len, old_end);
            return Ok(old_addr);
        }

        if old_end > vma_end {
            return Err(Errno::EFAULT);
        }
        let new_end = old_addr
            .checked_add(new_len)
            .filter(|&e| e <= self.layout.user_end);
        if let Some(new_end) = new_end {
            if old_end == vma_end && !self.overlaps(old_end, new_end) {
                if let Some(vma) = self.vmas.get_mut(&vma_start) {
                    vma.end = new_end;
                }
                self.try_merge_at(new_end);
                return Ok(old_addr);
            }
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let dest = self.find_free_area(0, new_len, false)?;
        self.move_mapping(ops, old_addr, old_len, dest, new_len);
        Ok(dest)
    }

    /// `mremap` with `old_len == 0`: a second mapping of the same shared object.
    fn mremap_duplicate(
        &mut self,
        ops: &mut dyn PageOps,
        old_addr: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> KResult<u64> {
        let Some(vma) = self.vma_at(old_addr) else {
            return Err(Errno::EFAULT);
        };
        if !vma.shared {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            // Linux tries to grow the zero-length range in place, which never fits.
            return Err(Errno::ENOMEM);
        }
        // Shared anonymous memory would need two virtual pages on one frame, which
        // PageOps cannot express yet.
        if !vma.is_file_backed() {
            return Err(Errno::EINVAL);
        }
        let duplicate = vma.retarget(old_addr, 0, new_len);
        let dest = if flags & MREMAP_FIXED != 0 {
            self.check_mremap_target(old_addr, 0, new_addr, new_len)?;
            self.unmap_region(ops, new_addr, new_addr + new_len);
            new_addr
        } else {
            self.find_free_area(0, new_len, false)?
        };
        self.insert_vma(Vma {
            start: dest,
            end: dest + new_len,
            ..duplicate
        });
        Ok(dest)
    }

    /// Linux's checks on an `MREMAP_FIXED` destination.
    fn check_mremap_target(
        &self,
        old_addr: u64,
        old_len: u64,
        new_addr: u64,
        new_len: u64,
    ) -> KResult<()> {
        let user_end = self.layout.user_end;
        if !is_page_aligned(new_addr) || new_len > user_end || new_addr > user_end - new_len {
            return Err(Errno::EINVAL);
        }
        let old_end = old_addr.saturating_add(old_len);
        if new_addr < old_end && old_addr < new_addr + new_len {
            return Err(Errno::EINVAL);
        }
        if new_addr < self.layout.mmap_min {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// Moves `[old_addr, old_addr + old_len)` (inside one VMA) to `new_addr`, where the
    /// new VMA is `new_len` long (the part past `old_len` populates lazily).
    fn move_mapping(
        &mut self,
        ops: &mut dyn PageOps,
        old_addr: u64,
        old_len: u64,
        new_addr: u64,
        new_len: u64,
    ) {
        self.split_at(old_addr);
        self.split_at(old_addr + old_len);
        let Some(source) = self.vmas.remove(&old_addr) else {
            return;
        };
        let mut moved = source.retarget(old_addr, new_addr, new_len);
        // Linux names [heap] and [stack] by address, which the moved range leaves.
        if matches!(moved.kind, VmaKind::Heap | VmaKind::Stack) {
            moved.kind = VmaKind::Anonymous;
        }
        ops.move_range(old_addr, new_addr, old_len);
        self.insert_vma(moved);
    }

    // ----- madvise ----------------------------------------------------------------------

    /// `madvise(2)`. `MADV_DONTNEED` drops pages (the next touch reads zeros, or the
    /// file again) except in shared anonymous memory, whose contents Linux keeps;
    /// `MADV_FREE` drops private anonymous pages (`EINVAL` elsewhere); `MADV_REMOVE`
    /// zeroes shared anonymous memory (`EINVAL` on private anonymous, `EACCES` on our
    /// never-writable shared or private file mappings); `MADV_POPULATE_*` fault pages
    /// in (`EINVAL` without the permission, `EFAULT` past a file's end); the usual
    /// hints are accepted. Unknown advice is `EINVAL`. As on Linux, the advice is
    /// applied to the mapped parts and holes make the result `ENOMEM`.
    pub fn madvise(
        &mut self,
        ops: &mut dyn PageOps,
        addr: u64,
        len: u64,
        advice: u64,
    ) -> KResult<()> {
        let advice = Advice::decode(advice)?;
        if !is_page_aligned(addr) {
            return Err(Errno::EINVAL);
        }
        let len = page_align_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Ok(());
        }
        let mut pieces = Vec::new();
        let mut cursor = addr;
        let mut hole = false;
        if let Some(first) = self.first_vma_ending_after(addr).filter(|v| v.start < end) {
            for vma in self.vmas.range(first.start..end).map(|(_, v)| v) {
                if vma.start > cursor {
                    hole = true;
                }
                pieces.push((vma.start.max(addr), vma.end.min(end)));
                cursor = vma.end;
            }
        }
        if cursor < end {
            hole = true;
        }
        for (start, stop) in pieces {
            self.apply_advice(ops, start, stop, advice)?;
        }
        if hole {
            Err(Errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    fn apply_advice(
        &mut self,
        ops: &mut dyn PageOps,
        start: u64,
        end: u64,
        advice: Advice,
    ) -> KResult<()> {
        let Some(vma) = self.vma_at(start) else {
            return Ok(());
        };
        let private_anonymous = !vma.shared && !vma.is_file_backed();
        let shared_anonymous = vma.shared && !vma.is_file_backed();
        match advice {
            Advice::Hint => {}
            Advice::DontNeed => {
                // Shared anonymous pages are the only copy of their data (Linux keeps
                // it in shmem and merely drops the page-table entries).
                if !shared_anonymous {
                    ops.unmap_range(start, end);
                }
            }
            Advice::Free => {
                if !private_anonymous {
                    return Err(Errno::EINVAL);
                }
                ops.unmap_range(start, end);
            }
            Advice::Remove => {
                if vma.is_file_backed() {
                    return Err(Errno::EACCES);
                }
                if !shared_anonymous {
                    return Err(Errno::EINVAL);
                }
                ops.unmap_range(start, end);
            }
            Advice::WipeOnFork => {
                if !private_anonymous {
                    return Err(Errno::EINVAL);
                }
            }
            Advice::Populate(access) => {
                for page in (start..end).step_by(PAGE_SIZE as usize) {
                    self.handle_fault(ops, page, access)
                        .map_err(|kind| match kind {
                            FaultKind::Protection => Errno::EINVAL,
                            FaultKind::Bus => Errno::EFAULT,
                            FaultKind::Unmapped | FaultKind::OutOfMemory => Errno::ENOMEM,
                        })?;
                }
            }
        }
        Ok(())
    }

    // ----- brk --------------------------------------------------------------------------

    /// Sets where the heap starts: the end of the loaded image (rounded up to a page;
    /// a gap above the image is fine). The break starts there.
    pub fn set_brk_area(&mut self, start: u64) {
        let start = page_align_up(start).unwrap_or(page_align_down(start));
        self.brk = Some(BrkState {
            start,
            current: start,
        });
    }

    /// `brk(2)`: returns the new break, or the unchanged one when the request is below
    /// the heap's start, past `user_end`, or would run into another mapping (Linux
    /// keeps one page free above the heap). Shrinking unmaps; growing adds a lazily
    /// populated read-write `[heap]` VMA. Before `set_brk_area` the break is 0 and
    /// cannot move.
    pub fn brk(&mut self, ops: &mut dyn PageOps, requested: u64) -> u64 {
        let Some(state) = self.brk else {
            return 0;
        };
        if requested < state.start || requested > self.layout.user_end {
            return state.current;
        }
        // Both are ≤ user_end, so rounding up cannot overflow.
        let old_top = page_align_up(state.current).unwrap_or(state.current);
        let new_top = page_align_up(requested).unwrap_or(requested);
        if new_top < old_top {
            self.unmap_region(ops, new_top, old_top);
        } else if new_top > old_top {
            let limit = new_top + PAGE_SIZE;
            let blocked = self
                .vmas
                .range(..limit.saturating_add(STACK_GUARD_GAP))
                .rev()
                .take_while(|(_, v)| v.end > old_top)
                .any(|(_, v)| placement_start(v) < limit);
            if blocked {
                return state.current;
            }
            self.insert_vma(Vma {
                start: old_top,
                end: new_top,
                prot: Prot::READ_WRITE,
                kind: VmaKind::Heap,
                backing: Backing::Anonymous,
                shared: false,
                grows_down: false,
            });
        }
        self.brk = Some(BrkState {
            current: requested,
            ..state
        });
        requested
    }

    // ----- faults and user-memory checks ------------------------------------------------

    /// Resolves a page fault at `addr`. `Ok(())` when a VMA (possibly a grows-down one
    /// after growing) allows `access`: the page is now mapped, zero- or file-filled (or,
    /// if it was already present, its protection is re-synchronised with the VMA's).
    /// Otherwise `Unmapped`, `Protection`, `Bus` (file page wholly past end of file, or
    /// a read error) or `OutOfMemory`.
    pub fn handle_fault(
        &mut self,
        ops: &mut dyn PageOps,
        addr: u64,
        access: Access,
    ) -> Result<(), FaultKind> {
        if addr >= self.layout.user_end {
            return Err(FaultKind::Unmapped);
        }
        let key = match self.vma_at(addr) {
            Some(vma) => vma.start,
            None => self.grow_stack_to(addr).ok_or(FaultKind::Unmapped)?,
        };
        let Some(vma) = self.vmas.get(&key) else {
            return Err(FaultKind::Unmapped);
        };
        if !vma.prot.allows(access) {
            return Err(FaultKind::Protection);
        }
        let page = page_align_down(addr);
        if ops.is_mapped(page) {
            ops.protect_range(page, page + PAGE_SIZE, vma.prot);
            return Ok(());
        }
        fill_page(ops, vma, page)
    }

    /// Linux's `expand_downwards`: a fault just below a grows-down VMA extends it,
    /// unless that would leave less than [`STACK_GUARD_GAP`] above an accessible,
    /// non-grows-down mapping below, exceed the stack limit, or go below `mmap_min`.
    /// Returns the VMA's new start.
    fn grow_stack_to(&mut self, addr: u64) -> Option<u64> {
        let (&key, next) = self.vmas.range(addr..).next()?;
        if !next.grows_down {
            return None;
        }
        let new_start = page_align_down(addr);
        if new_start < self.layout.mmap_min || next.end - new_start > self.stack_limit {
            return None;
        }
        if let Some((_, prev)) = self.vmas.range(..addr).next_back() {
            if !prev.grows_down
                && prev.prot.is_accessible()
                && new_start - prev.end < STACK_GUARD_GAP
            {
                return None;
            }
        }
        let mut vma = self.vmas.remove(&key)?;
        vma.start = new_start;
        self.vmas.insert(new_start, vma);
        Some(new_start)
    }

    /// Whether `[addr, addr + len)` lies wholly in VMAs allowing `access` (the `EFAULT`
    /// check before the kernel touches application memory). An empty range is fine.
    /// This does not grow stacks; use [`fault_in_range`](Self::fault_in_range) to
    /// also make the pages present as Linux's user-copy would.
    pub fn check_range(&self, addr: u64, len: u64, access: Access) -> KResult<()> {
        if len == 0 {
            return Ok(());
        }
        let end = addr
            .checked_add(len)
            .filter(|&e| e <= self.layout.user_end)
            .ok_or(Errno::EFAULT)?;
        let mut cursor = addr;
        while cursor < end {
            let vma = self.vma_at(cursor).ok_or(Errno::EFAULT)?;
            if !vma.prot.allows(access) {
                return Err(Errno::EFAULT);
            }
            cursor = vma.end;
        }
        Ok(())
    }

    /// Makes every page of `[addr, addr + len)` present for `access`, faulting them in
    /// (growing stacks) as the kernel's copy to or from user memory would. `EFAULT`
    /// when a page cannot be accessed, `ENOMEM` when frames run out.
    pub fn fault_in_range(
        &mut self,
        ops: &mut dyn PageOps,
        addr: u64,
        len: u64,
        access: Access,
    ) -> KResult<()> {
        if len == 0 {
            return Ok(());
        }
        let end = addr
            .checked_add(len)
            .filter(|&e| e <= self.layout.user_end)
            .ok_or(Errno::EFAULT)?;
        for page in (page_align_down(addr)..end).step_by(PAGE_SIZE as usize) {
            let allowed = self.vma_at(page).is_some_and(|v| v.prot.allows(access));
            if allowed && ops.is_mapped(page) {
                continue;
            }
            self.handle_fault(ops, page.max(addr), access)
                .map_err(|kind| match kind {
                    FaultKind::OutOfMemory => Errno::ENOMEM,
                    _ => Errno::EFAULT,
                })?;
        }
        Ok(())
    }

    // ----- internals --------------------------------------------------------------------

    /// `EINVAL` for an unaligned file offset, `EOVERFLOW` when offset + length wraps.
    fn check_file_offset(backing: &Backing, len: u64) -> KResult<()> {
        if let Backing::File { offset, .. } = backing {
            if !is_page_aligned(*offset) {
                return Err(Errno::EINVAL);
            }
            if offset.checked_add(len).is_none() {
                return Err(Errno::EOVERFLOW);
            }
        }
        Ok(())
    }

    /// Linux's checks on a `MAP_FIXED` address, in its order: `ENOMEM` past
    /// `user_end`, `EINVAL` unaligned, `EPERM` below `mmap_min` (the null-page guard;
    /// Linux lets only `CAP_SYS_RAWIO` map there, and Skiff keeps the guard).
    fn check_fixed_placement(&self, addr: u64, len: u64) -> KResult<()> {
        let user_end = self.layout.user_end;
        if len > user_end || addr > user_end - len {
            return Err(Errno::ENOMEM);
        }
        if !is_page_aligned(addr) {
            return Err(Errno::EINVAL);
        }
        if addr < self.layout.mmap_min {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// Chooses where a non-fixed mapping of `len` bytes goes: the hint if that range
    /// is free, else the highest hole below `mmap_base` (Linux's top-down allocator),
    /// else the highest hole anywhere; `MAP_32BIT` searches bottom-up in
    /// `[1 GiB, 2 GiB)` like x86_64 Linux. `ENOMEM` when nothing fits.
    fn find_free_area(&self, hint: u64, len: u64, below_2g: bool) -> KResult<u64> {
        let user_end = self.layout.user_end;
        if len > user_end {
            return Err(Errno::ENOMEM);
        }
        let low = page_align_up(self.layout.mmap_min.max(PAGE_SIZE)).ok_or(Errno::ENOMEM)?;
        // Linux's round_hint_to_min: align down, and lift a low hint to mmap_min.
        let hint = match page_align_down(hint) {
            0 => 0,
            h if h < low => low,
            h => h,
        };
        let high = if below_2g {
            MAP_32BIT_HIGH.min(user_end)
        } else {
            user_end
        };
        if hint != 0
            && hint <= high.saturating_sub(len)
            && self.is_free_for_placement(hint, hint + len)
        {
            return Ok(hint);
        }
        let found = if below_2g {
            self.lowest_hole(len, MAP_32BIT_LOW.max(low), high)
        } else {
            self.highest_hole(len, low, self.layout.mmap_base.min(user_end))
                .or_else(|| self.highest_hole(len, low, user_end))
        };
        found.ok_or(Errno::ENOMEM)
    }

    /// Whether `[start, end)` is free, keeping the guard gap below grows-down VMAs.
    fn is_free_for_placement(&self, start: u64, end: u64) -> bool {
        !self
            .vmas
            .range(..end.saturating_add(STACK_GUARD_GAP))
            .rev()
            .take_while(|(_, v)| v.end > start)
            .any(|(_, v)| placement_start(v) < end)
    }

    /// The highest `len`-byte range inside `[low, high)` that is free for placement.
    fn highest_hole(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        let mut ceiling = high;
        for vma in self
            .vmas
            .range(..high.saturating_add(STACK_GUARD_GAP))
            .rev()
            .map(|(_, v)| v)
        {
            if ceiling < low.checked_add(len)? {
                return None;
            }
            let floor = vma.end.max(low);
            if floor < ceiling && ceiling - floor >= len {
                return Some(ceiling - len);
            }
            ceiling = ceiling.min(placement_start(vma));
        }
        (ceiling >= low.checked_add(len)?).then(|| ceiling - len)
    }

    /// The lowest `len`-byte range inside `[low, high)` that is free for placement.
    fn lowest_hole(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        let mut floor = low;
        for vma in self
            .vmas
            .range(..high.saturating_add(STACK_GUARD_GAP))
            .map(|(_, v)| v)
        {
            let top = placement_start(vma).min(high);
            if top > floor && top - floor >= len {
                return Some(floor);
            }
            floor = floor.max(vma.end);
            if floor >= high {
                return None;
            }
        }
        (high > floor && high - floor >= len).then_some(floor)
    }

    /// Whether any VMA intersects `[start, end)`.
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.vmas
            .range(..end)
            .next_back()
            .is_some_and(|(_, v)| v.end > start)
    }

    /// The VMA containing `addr`, else the first one above it.
    fn first_vma_ending_after(&self, addr: u64) -> Option<&Vma> {
        self.vma_at(addr)
            .or_else(|| self.vmas.range(addr..).next().map(|(_, v)| v))
    }

    /// Splits the VMA strictly containing `addr`, if any, so a VMA boundary lies there.
    fn split_at(&mut self, addr: u64) {
        let Some((_, vma)) = self.vmas.range_mut(..addr).next_back() else {
            return;
        };
        if vma.end <= addr {
            return;
        }
        let upper = vma.split_off(addr);
        self.vmas.insert(addr, upper);
    }

    /// Removes all mappings in `[start, end)` and their pages.
    /// Writes the modified pages of shared file mappings in `[start, end)` back to
    /// their files (`msync`). Pages are marked clean as they go; the first write error
    /// is returned (`EIO`), after trying the remaining pages.
    pub fn sync_range(&mut self, ops: &mut dyn PageOps, start: u64, end: u64) -> KResult<()> {
        let mut result = Ok(());
        let mut page = alloc::vec![0u8; PAGE_SIZE as usize];
        for vma in self.vmas.values() {
            if vma.end <= start || vma.start >= end || !vma.shared {
                continue;
            }
            let Backing::File { source, offset, .. } = &vma.backing else {
                continue;
            };
            let mut va = vma.start.max(start & !(PAGE_SIZE - 1));
            while va < vma.end.min(end) {
                if ops.take_dirty(va, &mut page) {
                    let r = source.write_back(offset + (va - vma.start), &page);
                    if result.is_ok() {
                        result = r;
                    }
                }
                va += PAGE_SIZE;
            }
        }
        result
    }

    /// The pages of shared mappings of the file `file` (a [`MapSource::file_key`]) that
    /// show file bytes in `[offset, offset + len)`: for each, its address, the file
    /// offset of its first byte, and the VMA's source.
    fn shared_pages_of(
        &self,
        file: usize,
        offset: u64,
        len: u64,
    ) -> Vec<(u64, u64, alloc::sync::Arc<dyn crate::vma::MapSource>)> {
        let end = offset.saturating_add(len);
        let mut pages = Vec::new();
        for vma in self.vmas.values() {
            let Backing::File {
                source,
                offset: vma_offset,
                ..
            } = &vma.backing
            else {
                continue;
            };
            if !vma.shared || source.file_key() != Some(file) {
                continue;
            }
            let vma_end = vma_offset.saturating_add(vma.len());
            let first = offset.max(*vma_offset) & !(PAGE_SIZE - 1);
            let mut page = first.max(*vma_offset);
            while page < end.min(vma_end) {
                pages.push((vma.start + (page - vma_offset), page, source.clone()));
                page += PAGE_SIZE;
            }
        }
        pages
    }

    /// Before bytes `[offset, offset + len)` of the file `file` are read through a
    /// descriptor: the modified pages of shared mappings that show them are written
    /// back (and marked clean), so the read sees every store made to the mapping.
    pub fn flush_file_range(
        &mut self,
        ops: &mut dyn PageOps,
        file: usize,
        offset: u64,
        len: u64,
    ) -> KResult<()> {
        let mut result = Ok(());
        let mut buf = vec![0u8; PAGE_SIZE as usize];
        for (va, page, source) in self.shared_pages_of(file, offset, len) {
            if ops.take_dirty(va, &mut buf) {
                let r = source.write_back(page, &buf);
                if result.is_ok() {
                    result = r;
                }
            }
        }
        result
    }

    /// After `data` was written to the file `file` at `offset` through a descriptor:
    /// the present pages of shared mappings that show those bytes get them too, so the
    /// mapping sees the write and its own later write-back carries it instead of
    /// overwriting it with older bytes. `data` of `None` means `len` zeros (a size
    /// change: bytes past a new end read as zeros, and stay so if the file grows again).
    pub fn update_file_range(
        &mut self,
        ops: &mut dyn PageOps,
        file: usize,
        offset: u64,
        len: u64,
        data: Option<&[u8]>,
    ) {
        static ZEROS: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];
        let end = offset.saturating_add(len);
        for (va, page, _) in self.shared_pages_of(file, offset, len) {
            let from = offset.max(page);
            let to = end.min(page + PAGE_SIZE);
            let bytes = match data {
                Some(data) => &data[(from - offset) as usize..(to - offset) as usize],
                None => &ZEROS[..(to - from) as usize],
            };
            ops.patch_page(va, (from - page) as usize, bytes);
        }
    }

    /// Writes back every shared file mapping (at exit, as Linux's page cache would).
    pub fn sync_all(&mut self, ops: &mut dyn PageOps) -> KResult<()> {
        self.sync_range(ops, 0, self.layout.user_end)
    }

    fn unmap_region(&mut self, ops: &mut dyn PageOps, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Modified shared pages reach the file before they go; munmap has no way to
        // report a write-back error, as on Linux.
        let _ = self.sync_range(ops, start, end);
        self.split_at(start);
        self.split_at(end);
        let doomed: Vec<u64> = self.vmas.range(start..end).map(|(&k, _)| k).collect();
        for key in doomed {
            if let Some(vma) = self.vmas.remove(&key) {
                ops.unmap_range(vma.start, vma.end);
            }
        }
    }

    /// Inserts a VMA into a free range and merges it with compatible neighbours.
    fn insert_vma(&mut self, vma: Vma) {
        let (start, end) = (vma.start, vma.end);
        debug_assert!(!self.overlaps(start, end));
        self.vmas.insert(start, vma);
        self.try_merge_at(start);
        self.try_merge_at(end);
    }

    /// Merges across every VMA boundary in `[start, end]`.
    fn merge_range(&mut self, start: u64, end: u64) {
        let boundaries: Vec<u64> = self.vmas.range(start..=end).map(|(&k, _)| k).collect();
        for boundary in boundaries {
            self.try_merge_at(boundary);
        }
    }

    /// Joins the VMA starting at `boundary` to the one ending there, when compatible.
    fn try_merge_at(&mut self, boundary: u64) {
        let Some(next) = self.vmas.get(&boundary) else {
            return;
        };
        let Some((&prev_key, prev)) = self.vmas.range(..boundary).next_back() else {
            return;
        };
        if !prev.can_merge_with(next) {
            return;
        }
        let next_end = next.end;
        self.vmas.remove(&boundary);
        if let Some(prev) = self.vmas.get_mut(&prev_key) {
            prev.end = next_end;
        }
    }
}

/// Maps `page` of `vma` with its initial contents: zeros, or the file's bytes (zero
/// past `file_size_limit` or the file's end within the page). A file page wholly past
/// the end is `Bus` for `File` VMAs and zeros for `Image` ones (`.bss`).
fn fill_page(ops: &mut dyn PageOps, vma: &Vma, page: u64) -> Result<(), FaultKind> {
    let data = match &vma.backing {
        Backing::Anonymous => Vec::new(),
        Backing::File {
            source,
            offset,
            file_size_limit,
        } => {
            let zero_past_end = vma.kind == VmaKind::Image;
            // An offset that wrapped (a file mapping grown by mremap near u64::MAX)
            // is past any file's end.
            let Some(file_pos) = offset.checked_add(page - vma.start) else {
                return Err(FaultKind::Bus);
            };
            if file_pos >= *file_size_limit {
                if !zero_past_end {
                    return Err(FaultKind::Bus);
                }
                Vec::new()
            } else {
                let want = (*file_size_limit - file_pos).min(PAGE_SIZE) as usize;
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    match source.read_at(file_pos + filled as u64, &mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n.min(want - filled),
                        // Linux turns an I/O error while filling a page into SIGBUS.
                        Err(_) => return Err(FaultKind::Bus),
                    }
                }
                if filled == 0 && !zero_past_end {
                    return Err(FaultKind::Bus);
                }
                buf.truncate(filled);
                buf
            }
        }
    };
    ops.map_page(page, vma.prot, &data)
        .map_err(|_| FaultKind::OutOfMemory)
}
