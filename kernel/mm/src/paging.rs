//! The hardware page tables: the kernel's half, shared by every process, and one
//! application half per process.
//!
//! The upper half (direct map and kernel image) was set up at boot and is shared by
//! everything: every page-table root ([`new_root`]) copies its top-level entries, which
//! never change after boot. The lower half is a process's: [`UserPageTable`] maps 4 KiB
//! pages there on behalf of `skiff-vm`, which decides *what* to map. The first process
//! uses the boot root; `fork` gives a child a root of its own ([`new_root`],
//! [`UserPageTable::copy_into`]), and [`activate`] loads a thread's root when the
//! scheduler switches to it. The application runs in
//! ring 0, so pages carry no user bit; `CR0.WP` makes read-only pages read-only for
//! the kernel too, and `EFER.NXE` makes non-executable pages so.

use crate::frames;
use alloc::collections::BTreeSet;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch::cpu;
use skiff_arch::layout::{phys_to_virt, PAGE_SIZE, USER_END};
use skiff_errno::{Errno, KResult};
use skiff_vm::{PageOps, Prot};
use spin::Mutex;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const DIRTY: u64 = 1 << 6;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Above this many pages, one full TLB flush is cheaper than page-by-page `invlpg`.
const FLUSH_ALL_THRESHOLD: u64 = 64;

fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: `phys` is the physical address of a page-table page (from CR3 or a
    // present non-leaf entry), reachable through the direct map. Page tables are only
    // modified with the address-space lock held (by the callers of `UserPageTable`).
    unsafe { &mut *(phys_to_virt(phys) as *mut [u64; 512]) }
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// The boot page-table root: the kernel's mappings, and the first process's lower half.
static BOOT_ROOT: AtomicU64 = AtomicU64::new(0);

/// Roots made by [`new_root`] and not yet destroyed: [`activate`] loads nothing else.
static LIVE_ROOTS: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// The first user-half and first kernel-half index of a PML4.
const KERNEL_HALF: usize = 256;

/// Remove the boot identity map of low memory: the lower half is the application's.
pub fn drop_identity_map() {
    let root = cpu::read_cr3() & ADDR_MASK;
    BOOT_ROOT.store(root, Ordering::Relaxed);
    table(root)[0] = 0;
    cpu::flush_tlb_all();
}

/// The boot page-table root (the first process's).
pub fn boot_root() -> u64 {
    BOOT_ROOT.load(Ordering::Relaxed)
}

/// The root loaded in CR3.
pub fn current_root() -> u64 {
    cpu::read_cr3() & ADDR_MASK
}

/// A new page-table root with the kernel's half and an empty application half.
pub fn new_root() -> KResult<u64> {
    let root = frames::alloc_zeroed_frame().ok_or(Errno::ENOMEM)?;
    let kernel = table(boot_root());
    let new = table(root);
    new[KERNEL_HALF..].copy_from_slice(&kernel[KERNEL_HALF..]);
    LIVE_ROOTS.lock().insert(root);
    Ok(root)
}

/// Load `root` (the boot root or one from [`new_root`]) into CR3. Called by the
/// scheduler on every switch to an application thread, with interrupts off.
pub fn activate(root: u64) {
    assert!(
        root == boot_root() || LIVE_ROOTS.lock().contains(&root),
        "switch to an unknown page-table root {root:#x}"
    );
    // SAFETY: the boot root maps the kernel, and every root from `new_root` copied its
    // top-level kernel entries, which boot code created and nothing changes later.
    unsafe { cpu::load_page_root(root) }
}

/// Free a root from [`new_root`] with everything its application half still maps
/// (shared frames lose one owner). It must not be loaded: switch to another first.
pub fn destroy_root(root: u64) {
    assert_ne!(current_root(), root, "destroying the loaded page tables");
    if !LIVE_ROOTS.lock().remove(&root) {
        return;
    }
    free_tables(root, 3, 0..KERNEL_HALF);
    frames::free_frame(root);
}

/// Free the tables (and leaf frames) below entries `range` of the table at `phys`,
/// which sits at `level` (3 = PML4).
fn free_tables(phys: u64, level: u32, range: core::ops::Range<usize>) {
    let t = table(phys);
    for e in &mut t[range] {
        if *e & PRESENT == 0 {
            continue;
        }
        let next = *e & ADDR_MASK;
        if level > 0 && *e & HUGE == 0 {
            free_tables(next, level - 1, 0..512);
        }
        frames::free_frame(next);
        *e = 0;
    }
}

/// Extend the direct map to cover physical memory up to `end` (the boot tables map
/// 4 GiB). Uses 2 MiB pages.
pub fn extend_direct_map(end: u64) -> KResult<()> {
    let root = cpu::read_cr3() & ADDR_MASK;
    let mut pa = skiff_arch::layout::BOOT_DIRECT_MAP;
    while pa < end {
        let va = phys_to_virt(pa);
        let pd = walk_create(root, va, 1)?;
        pd[index(va, 1)] = pa | PRESENT | WRITABLE | HUGE | NO_EXECUTE;
        pa += 2 << 20;
    }
    cpu::flush_tlb_all();
    Ok(())
}

/// Walk from `root` to the table at `stop_level` (0 = page table) for `va`, creating
/// missing tables.
fn walk_create(root: u64, va: u64, stop_level: u32) -> KResult<&'static mut [u64; 512]> {
    let mut t = table(root);
    let mut level = 3;
    while level > stop_level {
        let e = &mut t[index(va, level)];
        if *e & PRESENT == 0 {
            let f = frames::alloc_zeroed_frame().ok_or(Errno::ENOMEM)?;
            *e = f | PRESENT | WRITABLE;
        }
        t = table(*e & ADDR_MASK);
        level -= 1;
    }
    Ok(t)
}

/// The page-table entry for `va`, if all levels above it exist.
fn pte(root: u64, va: u64) -> Option<&'static mut u64> {
    let mut t = table(root);
    for level in (1..=3).rev() {
        let e = t[index(va, level)];
        if e & PRESENT == 0 || e & HUGE != 0 {
            return None;
        }
        t = table(e & ADDR_MASK);
    }
    Some(&mut t[index(va, 0)])
}

fn prot_bits(prot: Prot) -> u64 {
    let mut bits = PRESENT;
    if prot.write {
        bits |= WRITABLE;
    }
    if !prot.exec {
        bits |= NO_EXECUTE;
    }
    bits
}

/// The lower half of the active page tables.
pub struct UserPageTable {
    root: u64,
}

impl UserPageTable {
    /// The page tables currently loaded in CR3.
    pub fn current() -> Self {
        UserPageTable {
            root: cpu::read_cr3() & ADDR_MASK,
        }
    }

    /// The application half of the page tables at `root` (the boot root or one from
    /// [`new_root`]).
    pub fn of_root(root: u64) -> Self {
        UserPageTable { root }
    }

    /// Give `child` the pages this table maps in `[start, end)`, at the same addresses
    /// with the same permissions: copies of them, or with `share` the same frames (a
    /// shared mapping stays shared across `fork`). `ENOMEM` when frames run out; what
    /// was copied so far stays in `child` (destroying it frees them).
    pub fn copy_into(
        &mut self,
        child: &mut UserPageTable,
        start: u64,
        end: u64,
        share: bool,
    ) -> KResult<()> {
        let mut failed = None;
        let child_root = child.root;
        self.for_each_present(start, end, |va, e| {
            if failed.is_some() {
                return;
            }
            let entry = *e;
            let frame = entry & ADDR_MASK;
            let target = if share {
                frames::share_frame(frame);
                frame
            } else {
                let Some(copy) = frames::alloc_frame() else {
                    failed = Some(Errno::ENOMEM);
                    return;
                };
                // SAFETY: `frame` is a present user page and `copy` a fresh frame, both
                // reachable through the direct map and distinct.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        phys_to_virt(frame) as *const u8,
                        phys_to_virt(copy) as *mut u8,
                        PAGE_SIZE as usize,
                    );
                }
                copy
            };
            match walk_create(child_root, va, 0) {
                Ok(t) => t[index(va, 0)] = target | (entry & !ADDR_MASK),
                Err(err) => {
                    frames::free_frame(target);
                    failed = Some(err);
                }
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// Call `f(va, &mut pte)` for every present leaf in `[start, end)`, skipping absent
    /// upper-level tables wholesale (so sparse multi-gigabyte ranges are cheap).
    fn for_each_present(&mut self, start: u64, end: u64, mut f: impl FnMut(u64, &mut u64)) -> u64 {
        let end = end.min(USER_END);
        let mut va = start;
        let mut count = 0;
        while va < end {
            let mut t = table(self.root);
            let mut skipped = false;
            for level in (1..=3).rev() {
                let e = t[index(va, level)];
                if e & PRESENT == 0 {
                    let span = 1u64 << (12 + 9 * level);
                    va = (va & !(span - 1)) + span;
                    skipped = true;
                    break;
                }
                t = table(e & ADDR_MASK);
            }
            if skipped {
                continue;
            }
            let e = &mut t[index(va, 0)];
            if *e & PRESENT != 0 {
                f(va, e);
                count += 1;
            }
            va += PAGE_SIZE;
        }
        count
    }

    fn flush(start: u64, end: u64, pages: u64) {
        // A wide range with few present pages (all of the application half, at exec)
        // would take billions of `invlpg`s: judge by the span too.
        let span = (end.min(USER_END).saturating_sub(start)) / PAGE_SIZE;
        if pages > FLUSH_ALL_THRESHOLD || (pages > 0 && span > FLUSH_ALL_THRESHOLD) {
            cpu::flush_tlb_all();
        } else if pages > 0 {
            let mut va = start;
            while va < end {
                cpu::invlpg(va);
                va += PAGE_SIZE;
            }
        }
    }

    /// Physical address backing `va`, if mapped.
    pub fn translate(&self, va: u64) -> Option<u64> {
        let e = *pte(self.root, va)?;
        (e & PRESENT != 0).then_some((e & ADDR_MASK) + (va & (PAGE_SIZE - 1)))
    }
}

impl PageOps for UserPageTable {
    fn map_page(&mut self, va: u64, prot: Prot, data: &[u8]) -> KResult<()> {
        debug_assert!(va.is_multiple_of(PAGE_SIZE) && va < USER_END);
        let frame = frames::alloc_frame().ok_or(Errno::ENOMEM)?;
        let n = data.len().min(PAGE_SIZE as usize);
        // SAFETY: the frame is fresh (unaliased) and mapped by the direct map.
        unsafe {
            let dst = phys_to_virt(frame) as *mut u8;
            core::ptr::copy_nonoverlapping(data.as_ptr(), dst, n);
            core::ptr::write_bytes(dst.add(n), 0, PAGE_SIZE as usize - n);
        }
        let t = match walk_create(self.root, va, 0) {
            Ok(t) => t,
            Err(e) => {
                frames::free_frame(frame);
                return Err(e);
            }
        };
        let e = &mut t[index(va, 0)];
        if *e & PRESENT != 0 {
            frames::free_frame(*e & ADDR_MASK);
        }
        *e = frame | prot_bits(prot);
        cpu::invlpg(va);
        Ok(())
    }

    fn unmap_range(&mut self, start: u64, end: u64) {
        let n = self.for_each_present(start, end, |_, e| {
            frames::free_frame(*e & ADDR_MASK);
            *e = 0;
        });
        Self::flush(start, end, n);
    }

    fn protect_range(&mut self, start: u64, end: u64, prot: Prot) {
        let bits = prot_bits(prot);
        // The dirty bit survives: shared file mappings write back what it marks.
        let n = self.for_each_present(start, end, |_, e| {
            *e = (*e & (ADDR_MASK | DIRTY)) | bits;
        });
        Self::flush(start, end, n);
    }

    fn move_range(&mut self, old: u64, new: u64, len: u64) {
        let mut moves: alloc::vec::Vec<(u64, u64)> = alloc::vec::Vec::new();
        self.for_each_present(old, old + len, |va, e| {
            moves.push((va, *e));
            *e = 0;
        });
        for (va, entry) in &moves {
            let target = new + (va - old);
            match walk_create(self.root, target, 0) {
                Ok(t) => t[index(target, 0)] = *entry,
                // Out of frames for a page table: the page is lost; the VMA layer
                // reports ENOMEM before calling us in practice.
                Err(_) => frames::free_frame(entry & ADDR_MASK),
            }
        }
        cpu::flush_tlb_all();
    }

    fn is_mapped(&self, va: u64) -> bool {
        self.translate(va).is_some()
    }

    fn take_dirty(&mut self, va: u64, out: &mut [u8]) -> bool {
        let Some(e) = pte(self.root, va) else {
            return false;
        };
        if *e & (PRESENT | DIRTY) != PRESENT | DIRTY {
            return false;
        }
        *e &= !DIRTY;
        // Clear the cached dirty state before copying, so a write racing with the copy
        // (another CPU, later) marks the page dirty again.
        cpu::invlpg(va);
        let frame = *e & ADDR_MASK;
        let n = out.len().min(PAGE_SIZE as usize);
        // SAFETY: `frame` is a present user page's frame, mapped by the direct map; the
        // copy only reads it.
        unsafe {
            core::ptr::copy_nonoverlapping(phys_to_virt(frame) as *const u8, out.as_mut_ptr(), n);
        }
        true
    }

    fn patch_page(&mut self, va: u64, at: usize, data: &[u8]) -> bool {
        let Some(e) = pte(self.root, va) else {
            return false;
        };
        if *e & PRESENT == 0 {
            return false;
        }
        let n = data.len().min((PAGE_SIZE as usize).saturating_sub(at));
        if n == 0 {
            return true;
        }
        let frame = *e & ADDR_MASK;
        // SAFETY: `frame` is a present user page's frame, mapped by the direct map, and
        // `at + n` stays within its 4096 bytes. Writing through the direct map leaves
        // the user mapping's dirty bit alone, and the user may race with the copy only
        // as it would with another CPU's store.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (phys_to_virt(frame) as *mut u8).add(at),
                n,
            );
        }
        true
    }
}

/// A read-only view of physical memory handed over by the VMM (the initrd), through the
/// direct map. The frame allocator keeps the range reserved for the kernel's lifetime.
pub fn physical_slice(phys: u64, len: u64) -> &'static [u8] {
    // SAFETY: the range was reserved from the frame allocator at boot (never reused) and
    // lies in RAM covered by the direct map; nothing writes to it.
    unsafe { core::slice::from_raw_parts(phys_to_virt(phys) as *const u8, len as usize) }
}
