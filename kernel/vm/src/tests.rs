//! Host tests of the address space against a fake page table that records every page
//! with its protection and bytes, and a tiny "CPU" that faults like x86 would.

use crate::abi::*;
use crate::*;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use skiff_errno::{Errno, KResult};

const PAGE: u64 = PAGE_SIZE;
const USER_END: u64 = 0x0000_7fff_ffff_f000;
const MMAP_BASE: u64 = 0x7fff_f000_0000;
const MMAP_MIN: u64 = 0x10000;

/// A page table: va → (prot, 4096 bytes). `frame_limit` simulates running out.
#[derive(Default)]
struct FakePages {
    pages: BTreeMap<u64, (Prot, Vec<u8>)>,
    frame_limit: Option<usize>,
    /// Pages written by `cpu_write` since they were mapped or last taken.
    dirty: alloc::collections::BTreeSet<u64>,
}

impl PageOps for FakePages {
    fn map_page(&mut self, va: u64, prot: Prot, data: &[u8]) -> KResult<()> {
        assert_eq!(va % PAGE, 0, "unaligned map_page");
        assert!(data.len() <= PAGE as usize);
        assert!(
            !self.pages.contains_key(&va),
            "map_page over a present page at {va:#x}"
        );
        if self
            .frame_limit
            .is_some_and(|limit| self.pages.len() >= limit)
        {
            return Err(Errno::ENOMEM);
        }
        let mut bytes = vec![0u8; PAGE as usize];
        bytes[..data.len()].copy_from_slice(data);
        self.pages.insert(va, (prot, bytes));
        Ok(())
    }
    fn unmap_range(&mut self, start: u64, end: u64) {
        let doomed: Vec<u64> = self.pages.range(start..end).map(|(&k, _)| k).collect();
        for va in doomed {
            self.pages.remove(&va);
            self.dirty.remove(&va);
        }
    }
    fn take_dirty(&mut self, va: u64, out: &mut [u8]) -> bool {
        match self.pages.get(&va) {
            Some((_, bytes)) if self.dirty.remove(&va) => {
                out.copy_from_slice(bytes);
                true
            }
            _ => false,
        }
    }
    fn patch_page(&mut self, va: u64, at: usize, data: &[u8]) -> bool {
        assert!(at + data.len() <= PAGE as usize, "patch crosses the page");
        match self.pages.get_mut(&va) {
            Some((_, bytes)) => {
                bytes[at..at + data.len()].copy_from_slice(data);
                true
            }
            None => false,
        }
    }
    fn protect_range(&mut self, start: u64, end: u64, prot: Prot) {
        for (_, page) in self.pages.range_mut(start..end) {
            page.0 = prot;
        }
    }
    fn move_range(&mut self, old: u64, new: u64, len: u64) {
        let moving: Vec<u64> = self.pages.range(old..old + len).map(|(&k, _)| k).collect();
        let taken: Vec<(u64, (Prot, Vec<u8>))> = moving
            .into_iter()
            .map(|va| (va, self.pages.remove(&va).unwrap()))
            .collect();
        let moved_dirty: Vec<u64> = self.dirty.range(old..old + len).copied().collect();
        for va in moved_dirty {
            self.dirty.remove(&va);
            self.dirty.insert(va - old + new);
        }
        for (va, page) in taken {
            assert!(
                self.pages.insert(va - old + new, page).is_none(),
                "move onto a present page"
            );
        }
    }
    fn is_mapped(&self, va: u64) -> bool {
        self.pages.contains_key(&va)
    }
}

/// The x86 rule the fake "CPU" applies to present pages.
fn hardware_allows(prot: Prot, access: Access) -> bool {
    prot.allows(access)
}

/// Reads one byte as the application would, taking faults through the space.
fn cpu_read(space: &mut AddressSpace, ops: &mut FakePages, addr: u64) -> Result<u8, FaultKind> {
    let page = addr & !(PAGE - 1);
    for _ in 0..2 {
        if let Some((prot, bytes)) = ops.pages.get(&page) {
            if hardware_allows(*prot, Access::Read) {
                return Ok(bytes[(addr - page) as usize]);
            }
        }
        space.handle_fault(ops, addr, Access::Read)?;
    }
    panic!("fault at {addr:#x} reported fixed but the page is still not readable");
}

/// Writes bytes as the application would, taking faults through the space.
fn cpu_write(
    space: &mut AddressSpace,
    ops: &mut FakePages,
    addr: u64,
    data: &[u8],
) -> Result<(), FaultKind> {
    for (i, &byte) in data.iter().enumerate() {
        let va = addr + i as u64;
        let page = va & !(PAGE - 1);
        let mut done = false;
        for _ in 0..2 {
            if let Some((prot, bytes)) = ops.pages.get_mut(&page) {
                if hardware_allows(*prot, Access::Write) {
                    bytes[(va - page) as usize] = byte;
                    ops.dirty.insert(page);
                    done = true;
                    break;
                }
            }
            space.handle_fault(ops, va, Access::Write)?;
        }
        assert!(
            done,
            "fault at {va:#x} reported fixed but the page is still not writable"
        );
    }
    Ok(())
}

fn cpu_read_bytes(space: &mut AddressSpace, ops: &mut FakePages, addr: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| cpu_read(space, ops, addr + i).unwrap())
        .collect()
}

/// A file in memory.
struct MemFile {
    data: Vec<u8>,
    path: &'static str,
    ino: u64,
}

impl MapSource for MemFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let start = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }
    fn describe(&self) -> (u64, u64, Vec<u8>) {
        (0xfe00, self.ino, self.path.as_bytes().to_vec())
    }
}

/// A file whose reads fail.
struct BrokenFile;

impl MapSource for BrokenFile {
    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> KResult<usize> {
        Err(Errno::EIO)
    }
    fn describe(&self) -> (u64, u64, Vec<u8>) {
        (0, 1, b"/broken".to_vec())
    }
}

/// A file of `pages` pages (plus `extra` bytes) where byte i of page p is `p as u8 + 1`.
fn patterned_file(pages: usize, extra: usize) -> Arc<MemFile> {
    let mut data = Vec::new();
    for p in 0..pages {
        data.extend(core::iter::repeat_n(p as u8 + 1, PAGE as usize));
    }
    data.extend(core::iter::repeat_n(0xee, extra));
    Arc::new(MemFile {
        data,
        path: "/data/file.bin",
        ino: 42,
    })
}

fn file_backing(file: &Arc<MemFile>, offset: u64) -> Backing {
    Backing::File {
        source: file.clone(),
        offset,
        file_size_limit: file.data.len() as u64,
    }
}

fn new_space() -> (AddressSpace, FakePages) {
    let layout = Layout {
        mmap_base: MMAP_BASE,
        mmap_min: MMAP_MIN,
        user_end: USER_END,
    };
    (AddressSpace::new(layout), FakePages::default())
}

const RW: u64 = PROT_READ | PROT_WRITE;
const ANON: u64 = MAP_PRIVATE | MAP_ANONYMOUS;

fn mmap_anon(space: &mut AddressSpace, ops: &mut FakePages, len: u64) -> u64 {
    space
        .mmap(ops, 0, len, RW, ANON, Backing::Anonymous)
        .unwrap()
}

fn spans(space: &AddressSpace) -> Vec<(u64, u64)> {
    space.vmas().map(|v| (v.start(), v.end())).collect()
}

// ----- Prot ----------------------------------------------------------------------------

#[test]
fn prot_decoding_follows_linux() {
    assert_eq!(Prot::from_mmap_bits(PROT_READ | PROT_EXEC), Prot::READ_EXEC);
    assert_eq!(Prot::from_mmap_bits(PROT_NONE), Prot::NONE);
    // mmap ignores unknown bits; mprotect rejects them but accepts PROT_SEM.
    assert_eq!(Prot::from_mmap_bits(PROT_READ | 0x10), Prot::READ);
    assert_eq!(
        Prot::from_mprotect_bits(PROT_READ | 0x10),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        Prot::from_mprotect_bits(PROT_READ | PROT_SEM),
        Ok(Prot::READ)
    );
    assert_eq!(Prot::ALL.to_linux(), 7);
    // x86: write-only and exec-only pages are readable; PROT_NONE is not.
    assert!(Prot {
        read: false,
        write: true,
        exec: false
    }
    .allows(Access::Read));
    assert!(!Prot::READ.allows(Access::Write));
    assert!(!Prot::READ_WRITE.allows(Access::Exec));
    assert!(!Prot::NONE.allows(Access::Read));
    assert_eq!(
        FaultKind::Protection.signal_and_code(),
        (SIGSEGV, SEGV_ACCERR)
    );
    assert_eq!(FaultKind::Bus.signal_and_code(), (SIGBUS, BUS_ADRERR));
}

// ----- mmap ------------------------------------------------------------------------------

#[test]
fn anonymous_mmap_is_lazy_and_reads_zero() {
    let (mut space, mut ops) = new_space();
    let addr = mmap_anon(&mut space, &mut ops, 3 * PAGE);
    assert!(ops.pages.is_empty(), "mmap must not populate");
    assert_eq!(cpu_read(&mut space, &mut ops, addr + PAGE + 5), Ok(0));
    assert_eq!(ops.pages.len(), 1);
    cpu_write(&mut space, &mut ops, addr + 10, b"hello").unwrap();
    assert_eq!(cpu_read_bytes(&mut space, &mut ops, addr + 10, 5), b"hello");
    assert_eq!(ops.pages[&addr].0, Prot::READ_WRITE);
}

#[test]
fn map_populate_maps_every_page_now() {
    let (mut space, mut ops) = new_space();
    let addr = space
        .mmap(
            &mut ops,
            0,
            4 * PAGE,
            RW,
            ANON | MAP_POPULATE,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(ops.pages.len(), 4);
    assert!((0..4).all(|i| ops.is_mapped(addr + i * PAGE)));
    // MAP_NONBLOCK turns populate off, as on Linux.
    let lazy = space
        .mmap(
            &mut ops,
            0,
            PAGE,
            RW,
            ANON | MAP_POPULATE | MAP_NONBLOCK,
            Backing::Anonymous,
        )
        .unwrap();
    assert!(!ops.is_mapped(lazy));
}

#[test]
fn mmap_rejects_bad_arguments_with_linux_errnos() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(2, 0);
    let mut call = |hint: u64, len: u64, prot: u64, flags: u64, backing: Backing| {
        space.mmap(&mut ops, hint, len, prot, flags, backing)
    };
    assert_eq!(call(0, 0, RW, ANON, Backing::Anonymous), Err(Errno::EINVAL));
    assert_eq!(
        call(0, PAGE, RW, MAP_ANONYMOUS, Backing::Anonymous),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        call(
            0,
            PAGE,
            RW,
            MAP_SHARED_VALIDATE | MAP_ANONYMOUS,
            Backing::Anonymous
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        call(
            0,
            PAGE,
            PROT_READ,
            MAP_SHARED_VALIDATE | 0x80_0000,
            file_backing(&file, 0)
        ),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        call(
            0,
            PAGE,
            PROT_READ,
            MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE,
            file_backing(&file, 0)
        ),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        call(0, PAGE, PROT_READ, MAP_PRIVATE, file_backing(&file, 5)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        call(
            0,
            PAGE,
            PROT_READ,
            MAP_PRIVATE,
            file_backing(&file, u64::MAX - 4095)
        ),
        Err(Errno::EOVERFLOW)
    );
    assert_eq!(
        call(0, u64::MAX, RW, ANON, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        call(0, 1 << 47, RW, ANON, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        call(0x1000_0001, PAGE, RW, ANON | MAP_FIXED, Backing::Anonymous),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        call(
            USER_END - PAGE,
            2 * PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous
        ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        call(0x1000, PAGE, RW, ANON | MAP_FIXED, Backing::Anonymous),
        Err(Errno::EPERM)
    );
    assert_eq!(
        call(0, PAGE, RW, ANON | MAP_HUGETLB, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        call(
            0,
            PAGE,
            PROT_READ,
            MAP_PRIVATE | MAP_HUGETLB,
            file_backing(&file, 0)
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        call(
            0,
            PAGE,
            RW,
            MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN,
            Backing::Anonymous
        ),
        Err(Errno::EINVAL)
    );
    // A shared writable mapping needs a file open for writing.
    assert_eq!(
        call(0, PAGE, RW, MAP_SHARED, file_backing(&file, 0)),
        Err(Errno::EACCES)
    );
    assert_eq!(
        space.vmas().count(),
        0,
        "failed calls must not leave mappings"
    );
    // Accepted flags and unknown prot bits.
    let flags =
        ANON | MAP_STACK | MAP_NORESERVE | MAP_LOCKED | MAP_NONBLOCK | MAP_DENYWRITE | 0x80_0000;
    assert!(space
        .mmap(&mut ops, 0, PAGE, RW | 0x10, flags, Backing::Anonymous)
        .is_ok());
    assert!(space
        .mmap(
            &mut ops,
            0,
            PAGE,
            PROT_READ,
            MAP_SHARED,
            file_backing(&file, 0)
        )
        .is_ok());
}

#[test]
fn mmap_places_top_down_below_mmap_base_and_reuses_the_highest_hole() {
    let (mut space, mut ops) = new_space();
    let a = mmap_anon(&mut space, &mut ops, PAGE);
    assert_eq!(a, MMAP_BASE - PAGE);
    let b = space
        .mmap(&mut ops, 0, 2 * PAGE, PROT_READ, ANON, Backing::Anonymous)
        .unwrap();
    assert_eq!(b, a - 2 * PAGE);
    let c = space
        .mmap(&mut ops, 0, 3 * PAGE, PROT_NONE, ANON, Backing::Anonymous)
        .unwrap();
    assert_eq!(c, b - 3 * PAGE);
    // Free b's two pages: a one-page request takes the top of that hole.
    space.munmap(&mut ops, b, 2 * PAGE).unwrap();
    assert_eq!(
        space
            .mmap(&mut ops, 0, PAGE, PROT_READ, ANON, Backing::Anonymous)
            .unwrap(),
        b + PAGE
    );
    // A three-page request does not fit the one-page hole left and goes below c.
    assert_eq!(
        space
            .mmap(&mut ops, 0, 3 * PAGE, PROT_READ, ANON, Backing::Anonymous)
            .unwrap(),
        c - 3 * PAGE
    );
}

#[test]
fn mmap_hints_are_used_when_free_and_rounded_like_linux() {
    let (mut space, mut ops) = new_space();
    let hint = 0x5000_0000;
    assert_eq!(
        space.mmap(&mut ops, hint, PAGE, RW, ANON, Backing::Anonymous),
        Ok(hint)
    );
    // Occupied hint: fall back to top-down placement.
    assert_eq!(
        space.mmap(&mut ops, hint, PAGE, RW, ANON, Backing::Anonymous),
        Ok(MMAP_BASE - PAGE)
    );
    // Unaligned hints round down; hints below mmap_min rise to it.
    assert_eq!(
        space.mmap(&mut ops, 0x6000_0123, PAGE, RW, ANON, Backing::Anonymous),
        Ok(0x6000_0000)
    );
    assert_eq!(
        space.mmap(&mut ops, 0x1000, PAGE, RW, ANON, Backing::Anonymous),
        Ok(MMAP_MIN)
    );
    // A hint above mmap_base is fine when free.
    assert_eq!(
        space.mmap(
            &mut ops,
            0x7fff_f100_0000,
            PAGE,
            RW,
            ANON,
            Backing::Anonymous
        ),
        Ok(0x7fff_f100_0000)
    );
}

#[test]
fn placement_keeps_the_guard_gap_below_grows_down_mappings() {
    let (mut space, mut ops) = new_space();
    let stack_top = MMAP_BASE + 0x0800_0000;
    space
        .map_fixed(
            &mut ops,
            stack_top - 4 * PAGE,
            4 * PAGE,
            Prot::READ_WRITE,
            VmaKind::Stack,
            Backing::Anonymous,
        )
        .unwrap();
    let hint = stack_top - 4 * PAGE - PAGE;
    let placed = space
        .mmap(&mut ops, hint, PAGE, RW, ANON, Backing::Anonymous)
        .unwrap();
    assert_ne!(
        placed, hint,
        "hint inside the stack guard gap must not be used"
    );
    let outside = stack_top - 4 * PAGE - STACK_GUARD_GAP - PAGE;
    assert_eq!(
        space.mmap(&mut ops, outside, PAGE, RW, ANON, Backing::Anonymous),
        Ok(outside)
    );
}

#[test]
fn map_32bit_places_in_the_second_gigabyte_bottom_up() {
    let (mut space, mut ops) = new_space();
    let a = space
        .mmap(&mut ops, 0, PAGE, RW, ANON | MAP_32BIT, Backing::Anonymous)
        .unwrap();
    let b = space
        .mmap(&mut ops, 0, PAGE, RW, ANON | MAP_32BIT, Backing::Anonymous)
        .unwrap();
    assert_eq!(a, 0x4000_0000);
    assert_eq!(b, 0x4000_1000);
    // Fill [1 GiB, 2 GiB) and the next one fails.
    space
        .mmap(
            &mut ops,
            0x4000_2000,
            0x8000_0000 - 0x4000_2000,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.mmap(&mut ops, 0, PAGE, RW, ANON | MAP_32BIT, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
}

#[test]
fn mmap_fails_with_enomem_when_no_hole_fits() {
    let layout = Layout {
        mmap_base: 0x40_0000,
        mmap_min: 0x10000,
        user_end: 0x40_0000,
    };
    let mut space = AddressSpace::new(layout);
    let mut ops = FakePages::default();
    let all = 0x40_0000 - 0x10000;
    assert_eq!(
        space.mmap(&mut ops, 0, all, RW, ANON, Backing::Anonymous),
        Ok(0x10000)
    );
    assert_eq!(
        space.mmap(&mut ops, 0, PAGE, RW, ANON, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    space.munmap(&mut ops, 0x20000, 2 * PAGE).unwrap();
    assert_eq!(
        space.mmap(&mut ops, 0, 3 * PAGE, RW, ANON, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        space.mmap(&mut ops, 0, 2 * PAGE, RW, ANON, Backing::Anonymous),
        Ok(0x20000)
    );
}

#[test]
fn map_fixed_replaces_overlapping_mappings_and_their_pages() {
    let (mut space, mut ops) = new_space();
    let addr = mmap_anon(&mut space, &mut ops, 4 * PAGE);
    cpu_write(&mut space, &mut ops, addr + PAGE, b"old").unwrap();
    cpu_write(&mut space, &mut ops, addr + 3 * PAGE, b"keep").unwrap();
    let fixed = space
        .mmap(
            &mut ops,
            addr + PAGE,
            2 * PAGE,
            PROT_READ,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(fixed, addr + PAGE);
    assert_eq!(
        cpu_read_bytes(&mut space, &mut ops, addr + PAGE, 3),
        [0, 0, 0]
    );
    assert_eq!(
        cpu_read_bytes(&mut space, &mut ops, addr + 3 * PAGE, 4),
        b"keep"
    );
    assert_eq!(
        spans(&space),
        [
            (addr, addr + PAGE),
            (addr + PAGE, addr + 3 * PAGE),
            (addr + 3 * PAGE, addr + 4 * PAGE)
        ]
    );
    assert_eq!(space.vma_at(addr + PAGE).unwrap().prot(), Prot::READ);
}

#[test]
fn map_fixed_noreplace_refuses_overlap() {
    let (mut space, mut ops) = new_space();
    let addr = mmap_anon(&mut space, &mut ops, 2 * PAGE);
    let flags = ANON | MAP_FIXED_NOREPLACE;
    assert_eq!(
        space.mmap(
            &mut ops,
            addr + PAGE,
            2 * PAGE,
            RW,
            flags,
            Backing::Anonymous
        ),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        space.mmap(
            &mut ops,
            addr - PAGE,
            PAGE,
            PROT_READ,
            flags,
            Backing::Anonymous
        ),
        Ok(addr - PAGE)
    );
}

#[test]
fn adjacent_compatible_anonymous_mappings_merge() {
    let (mut space, mut ops) = new_space();
    let a = mmap_anon(&mut space, &mut ops, PAGE);
    let b = mmap_anon(&mut space, &mut ops, PAGE);
    assert_eq!(b, a - PAGE);
    assert_eq!(spans(&space), [(b, a + PAGE)]);
    // Different protection does not merge.
    let c = space
        .mmap(&mut ops, 0, PAGE, PROT_READ, ANON, Backing::Anonymous)
        .unwrap();
    assert_eq!(space.vmas().count(), 2);
    assert_eq!(space.total_mapped(), 3 * PAGE);
    assert_eq!(c, b - PAGE);
}

// ----- munmap ----------------------------------------------------------------------------

#[test]
fn munmap_splits_and_spans_several_vmas() {
    let (mut space, mut ops) = new_space();
    let base = 0x2000_0000;
    space
        .mmap(
            &mut ops,
            base,
            4 * PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            base + 4 * PAGE,
            4 * PAGE,
            PROT_READ,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space.populate_range(&mut ops, base, 8 * PAGE).unwrap();
    assert_eq!(ops.pages.len(), 8);
    space.munmap(&mut ops, base + PAGE, 6 * PAGE).unwrap();
    assert_eq!(
        spans(&space),
        [(base, base + PAGE), (base + 7 * PAGE, base + 8 * PAGE)]
    );
    assert_eq!(
        ops.pages.keys().copied().collect::<Vec<_>>(),
        [base, base + 7 * PAGE]
    );
    assert_eq!(
        cpu_read(&mut space, &mut ops, base + 2 * PAGE),
        Err(FaultKind::Unmapped)
    );
    // Holes are fine; an unaligned length rounds up.
    assert_eq!(space.munmap(&mut ops, 0x3000_0000, 10), Ok(()));
    space.munmap(&mut ops, base, 1).unwrap();
    assert_eq!(space.vmas().count(), 1);
}

#[test]
fn populate_range_touches_only_the_requested_vmas() {
    let (mut space, mut ops) = new_space();
    let high = space
        .mmap(
            &mut ops,
            0x3000_0000,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.populate_range(&mut ops, 0x2000_0000, 4 * PAGE),
        Ok(())
    );
    assert!(ops.pages.is_empty());
    let none = space
        .mmap(
            &mut ops,
            high - PAGE,
            PAGE,
            PROT_NONE,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space.populate_range(&mut ops, none, 2 * PAGE - 1).unwrap();
    assert_eq!(
        ops.pages.keys().copied().collect::<Vec<_>>(),
        [high],
        "PROT_NONE is skipped"
    );
}

#[test]
fn munmap_rejects_bad_arguments() {
    let (mut space, mut ops) = new_space();
    assert_eq!(space.munmap(&mut ops, 0x1000_0000, 0), Err(Errno::EINVAL));
    assert_eq!(
        space.munmap(&mut ops, 0x1000_0001, PAGE),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.munmap(&mut ops, 0x1000_0000, u64::MAX - 4095),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.munmap(&mut ops, USER_END - PAGE, 2 * PAGE),
        Err(Errno::EINVAL)
    );
}

// ----- mprotect --------------------------------------------------------------------------

#[test]
fn mprotect_splits_reprotects_present_pages_and_merges_back() {
    let (mut space, mut ops) = new_space();
    let addr = mmap_anon(&mut space, &mut ops, 3 * PAGE);
    cpu_write(&mut space, &mut ops, addr + PAGE, b"x").unwrap();
    space
        .mprotect(&mut ops, addr + PAGE, PAGE, PROT_READ)
        .unwrap();
    assert_eq!(space.vmas().count(), 3);
    assert_eq!(ops.pages[&(addr + PAGE)].0, Prot::READ);
    assert_eq!(
        cpu_write(&mut space, &mut ops, addr + PAGE, b"y"),
        Err(FaultKind::Protection)
    );
    assert_eq!(cpu_read(&mut space, &mut ops, addr + PAGE), Ok(b'x'));
    cpu_write(&mut space, &mut ops, addr + 2 * PAGE, b"z").unwrap();
    space.mprotect(&mut ops, addr + PAGE, PAGE, RW).unwrap();
    assert_eq!(spans(&space), [(addr, addr + 3 * PAGE)]);
    assert_eq!(ops.pages[&(addr + PAGE)].0, Prot::READ_WRITE);
}

#[test]
fn mprotect_errors_change_nothing() {
    let (mut space, mut ops) = new_space();
    let base = 0x2000_0000;
    space
        .mmap(
            &mut ops,
            base,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            base + 2 * PAGE,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.mprotect(&mut ops, base, 3 * PAGE, PROT_READ),
        Err(Errno::ENOMEM)
    );
    assert!(space.vmas().all(|v| v.prot() == Prot::READ_WRITE));
    assert_eq!(
        space.mprotect(&mut ops, base + PAGE, PAGE, PROT_READ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        space.mprotect(&mut ops, base + 1, PAGE, PROT_READ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mprotect(&mut ops, base, PAGE, 0x10),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mprotect(&mut ops, base, u64::MAX - 4095, PROT_READ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        space.mprotect(&mut ops, base, PAGE, PROT_READ | PROT_GROWSUP),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mprotect(&mut ops, base, PAGE, PROT_READ | PROT_GROWSDOWN),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mprotect(&mut ops, base, PAGE, PROT_GROWSDOWN | PROT_GROWSUP),
        Err(Errno::EINVAL)
    );
    // A zero length succeeds even over a hole, as on Linux.
    assert_eq!(space.mprotect(&mut ops, 0x3000_0000, 0, PROT_READ), Ok(()));
    // Write permission cannot be added to a (read-only) shared file mapping.
    let file = patterned_file(1, 0);
    let shared = space
        .mmap(
            &mut ops,
            0,
            PAGE,
            PROT_READ,
            MAP_SHARED,
            file_backing(&file, 0),
        )
        .unwrap();
    assert_eq!(
        space.mprotect(&mut ops, shared, PAGE, RW),
        Err(Errno::EACCES)
    );
    assert_eq!(space.mprotect(&mut ops, shared, PAGE, PROT_NONE), Ok(()));
}

#[test]
fn mprotect_growsdown_extends_to_the_start_of_the_stack() {
    let (mut space, mut ops) = new_space();
    let top = 0x7fff_ff00_0000;
    space
        .map_fixed(
            &mut ops,
            top - 8 * PAGE,
            8 * PAGE,
            Prot::READ_WRITE,
            VmaKind::Stack,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mprotect(
            &mut ops,
            top - 2 * PAGE,
            PAGE,
            PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN,
        )
        .unwrap();
    let vmas: Vec<(u64, u64, Prot)> = space
        .vmas()
        .map(|v| (v.start(), v.end(), v.prot()))
        .collect();
    assert_eq!(
        vmas,
        [
            (top - 8 * PAGE, top - PAGE, Prot::ALL),
            (top - PAGE, top, Prot::READ_WRITE)
        ]
    );
}

// ----- mremap ----------------------------------------------------------------------------

#[test]
fn mremap_shrinks_in_place_and_frees_the_tail() {
    let (mut space, mut ops) = new_space();
    let addr = space
        .mmap(
            &mut ops,
            0,
            4 * PAGE,
            RW,
            ANON | MAP_POPULATE,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.mremap(&mut ops, addr, 4 * PAGE, PAGE + 1, 0, 0),
        Ok(addr)
    );
    assert_eq!(spans(&space), [(addr, addr + 2 * PAGE)]);
    assert_eq!(ops.pages.len(), 2);
}

#[test]
fn mremap_grows_in_place_when_the_space_above_is_free() {
    let (mut space, mut ops) = new_space();
    let addr = 0x2000_0000;
    space
        .mmap(
            &mut ops,
            addr,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    cpu_write(&mut space, &mut ops, addr, b"data").unwrap();
    assert_eq!(space.mremap(&mut ops, addr, PAGE, 3 * PAGE, 0, 0), Ok(addr));
    assert_eq!(spans(&space), [(addr, addr + 3 * PAGE)]);
    assert_eq!(cpu_read_bytes(&mut space, &mut ops, addr, 4), b"data");
    assert_eq!(cpu_read(&mut space, &mut ops, addr + 2 * PAGE), Ok(0));
}

#[test]
fn mremap_moves_with_maymove_and_data_survives() {
    let (mut space, mut ops) = new_space();
    let addr = 0x2000_0000;
    space
        .mmap(
            &mut ops,
            addr,
            2 * PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            addr + 2 * PAGE,
            PAGE,
            PROT_READ,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    cpu_write(&mut space, &mut ops, addr, b"first").unwrap();
    cpu_write(&mut space, &mut ops, addr + PAGE, b"second").unwrap();
    // Blocked above and not allowed to move.
    assert_eq!(
        space.mremap(&mut ops, addr, 2 * PAGE, 4 * PAGE, 0, 0),
        Err(Errno::ENOMEM)
    );
    let moved = space
        .mremap(&mut ops, addr, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE, 0)
        .unwrap();
    assert_ne!(moved, addr);
    assert_eq!(space.vma_at(moved).unwrap().end(), moved + 4 * PAGE);
    assert!(space.vma_at(addr).is_none());
    assert_eq!(cpu_read_bytes(&mut space, &mut ops, moved, 5), b"first");
    assert_eq!(
        cpu_read_bytes(&mut space, &mut ops, moved + PAGE, 6),
        b"second"
    );
    assert_eq!(cpu_read(&mut space, &mut ops, moved + 3 * PAGE), Ok(0));
    assert_eq!(
        cpu_read(&mut space, &mut ops, addr),
        Err(FaultKind::Unmapped)
    );
}

#[test]
fn mremap_fixed_moves_to_the_target_replacing_what_is_there() {
    let (mut space, mut ops) = new_space();
    let (src, dst) = (0x2000_0000, 0x3000_0000);
    space
        .mmap(
            &mut ops,
            src,
            3 * PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            dst,
            4 * PAGE,
            PROT_READ,
            ANON | MAP_FIXED | MAP_POPULATE,
            Backing::Anonymous,
        )
        .unwrap();
    cpu_write(&mut space, &mut ops, src + PAGE, b"moved").unwrap();
    cpu_write(&mut space, &mut ops, src + 2 * PAGE, b"dropped").unwrap();
    let flags = MREMAP_MAYMOVE | MREMAP_FIXED;
    assert_eq!(
        space.mremap(&mut ops, src, 3 * PAGE, 2 * PAGE, MREMAP_FIXED, dst),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mremap(&mut ops, src, 3 * PAGE, 2 * PAGE, flags, src + PAGE),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mremap(&mut ops, src, 3 * PAGE, 2 * PAGE, flags, dst + 1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mremap(&mut ops, src, 3 * PAGE, 2 * PAGE, flags, dst),
        Ok(dst)
    );
    // The target range was replaced (the old mapping's tail beyond it stays) and the
    // source, including its tail, is gone.
    assert_eq!(
        spans(&space),
        [(dst, dst + 2 * PAGE), (dst + 2 * PAGE, dst + 4 * PAGE)]
    );
    assert_eq!(space.vma_at(dst).unwrap().prot(), Prot::READ_WRITE);
    assert_eq!(
        cpu_read_bytes(&mut space, &mut ops, dst + PAGE, 5),
        b"moved"
    );
    assert_eq!(cpu_read(&mut space, &mut ops, dst), Ok(0));
    let pages: Vec<u64> = ops.pages.keys().copied().collect();
    assert_eq!(pages, [dst, dst + PAGE, dst + 2 * PAGE, dst + 3 * PAGE]);
    assert_eq!(ops.pages[&(dst + PAGE)].0, Prot::READ_WRITE);
    assert_eq!(ops.pages[&(dst + 2 * PAGE)].0, Prot::READ);
}

#[test]
fn mremap_rejects_bad_arguments() {
    let (mut space, mut ops) = new_space();
    let addr = mmap_anon(&mut space, &mut ops, 2 * PAGE);
    assert_eq!(
        space.mremap(&mut ops, 0x1000_0000, PAGE, 2 * PAGE, MREMAP_MAYMOVE, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        space.mremap(&mut ops, 0x1000_0000, 2 * PAGE, PAGE, 0, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        space.mremap(&mut ops, addr, 3 * PAGE, 4 * PAGE, MREMAP_MAYMOVE, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        space.mremap(&mut ops, addr, 0, 2 * PAGE, MREMAP_MAYMOVE, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mremap(&mut ops, addr, PAGE, 0, 0, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mremap(&mut ops, addr + 1, PAGE, 2 * PAGE, 0, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.mremap(&mut ops, addr, PAGE, 2 * PAGE, 0x40, 0),
        Err(Errno::EINVAL)
    );
    // MREMAP_DONTUNMAP is not implemented.
    let dontunmap = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
    assert_eq!(
        space.mremap(&mut ops, addr, PAGE, PAGE, dontunmap, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(spans(&space), [(addr, addr + 2 * PAGE)]);
}

#[test]
fn mremap_keeps_file_offsets_when_moving_part_of_a_file_mapping() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(4, 0);
    let addr = space
        .mmap(
            &mut ops,
            0,
            4 * PAGE,
            PROT_READ,
            MAP_PRIVATE,
            file_backing(&file, 0),
        )
        .unwrap();
    let moved = space
        .mremap(
            &mut ops,
            addr + 2 * PAGE,
            PAGE,
            PAGE,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            0x5000_0000,
        )
        .unwrap();
    assert_eq!(moved, 0x5000_0000);
    assert_eq!(space.vma_at(moved).unwrap().file_offset(), Some(2 * PAGE));
    assert_eq!(cpu_read(&mut space, &mut ops, moved + 7), Ok(3));
    assert_eq!(cpu_read(&mut space, &mut ops, addr + 3 * PAGE), Ok(4));
    assert_eq!(
        space.vma_at(addr + 3 * PAGE).unwrap().file_offset(),
        Some(3 * PAGE)
    );
}

#[test]
fn mremap_with_zero_old_len_duplicates_shared_file_mappings() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(3, 0);
    let shared = space
        .mmap(
            &mut ops,
            0,
            3 * PAGE,
            PROT_READ,
            MAP_SHARED,
            file_backing(&file, 0),
        )
        .unwrap();
    assert_eq!(
        space.mremap(&mut ops, shared + PAGE, 0, PAGE, 0, 0),
        Err(Errno::ENOMEM)
    );
    let copy = space
        .mremap(&mut ops, shared + PAGE, 0, 2 * PAGE, MREMAP_MAYMOVE, 0)
        .unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, copy), Ok(2));
    assert_eq!(cpu_read(&mut space, &mut ops, copy + PAGE), Ok(3));
    assert_eq!(
        space.vma_at(shared).unwrap().end(),
        shared + 3 * PAGE,
        "the original stays"
    );
    let anon_shared = space
        .mmap(
            &mut ops,
            0,
            PAGE,
            RW,
            MAP_SHARED | MAP_ANONYMOUS,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.mremap(&mut ops, anon_shared, 0, PAGE, MREMAP_MAYMOVE, 0),
        Err(Errno::EINVAL)
    );
}

// ----- madvise ---------------------------------------------------------------------------

#[test]
fn madvise_dontneed_zeroes_anonymous_and_rereads_files() {
    let (mut space, mut ops) = new_space();
    let anon = mmap_anon(&mut space, &mut ops, 2 * PAGE);
    cpu_write(&mut space, &mut ops, anon, b"secret").unwrap();
    cpu_write(&mut space, &mut ops, anon + PAGE, b"other").unwrap();
    space.madvise(&mut ops, anon, PAGE, MADV_DONTNEED).unwrap();
    assert_eq!(cpu_read_bytes(&mut space, &mut ops, anon, 6), [0; 6]);
    assert_eq!(
        cpu_read_bytes(&mut space, &mut ops, anon + PAGE, 5),
        b"other"
    );

    let file = patterned_file(1, 0);
    let private = space
        .mmap(&mut ops, 0, PAGE, RW, MAP_PRIVATE, file_backing(&file, 0))
        .unwrap();
    cpu_write(&mut space, &mut ops, private, b"\x77").unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, private), Ok(0x77));
    space
        .madvise(&mut ops, private, PAGE, MADV_DONTNEED)
        .unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, private), Ok(1));

    space.madvise(&mut ops, anon, 2 * PAGE, MADV_FREE).unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, anon + PAGE), Ok(0));
}

#[test]
fn madvise_follows_linux_per_mapping_rules() {
    let (mut space, mut ops) = new_space();
    let anon = mmap_anon(&mut space, &mut ops, PAGE);
    let file = patterned_file(1, 0);
    let private_file = space
        .mmap(
            &mut ops,
            0,
            PAGE,
            PROT_READ,
            MAP_PRIVATE,
            file_backing(&file, 0),
        )
        .unwrap();
    let shared_anon = space
        .mmap(
            &mut ops,
            0,
            PAGE,
            RW,
            MAP_SHARED | MAP_ANONYMOUS,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(space.madvise(&mut ops, anon, PAGE, 77), Err(Errno::EINVAL));
    assert_eq!(
        space.madvise(&mut ops, anon + 1, PAGE, MADV_NORMAL),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.madvise(&mut ops, anon, u64::MAX, MADV_NORMAL),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.madvise(&mut ops, 0x1000_0000, PAGE, MADV_WILLNEED),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        space.madvise(&mut ops, 0x1000_0000, 0, MADV_DONTNEED),
        Ok(())
    );
    for hint in [
        MADV_NORMAL,
        MADV_RANDOM,
        MADV_SEQUENTIAL,
        MADV_WILLNEED,
        MADV_HUGEPAGE,
        MADV_NOHUGEPAGE,
        MADV_DONTFORK,
        MADV_DOFORK,
        MADV_MERGEABLE,
        MADV_DONTDUMP,
        MADV_COLD,
        MADV_PAGEOUT,
        MADV_WIPEONFORK,
    ] {
        assert_eq!(
            space.madvise(&mut ops, anon, PAGE, hint),
            Ok(()),
            "advice {hint}"
        );
    }
    for unsupported in [MADV_COLLAPSE, MADV_HWPOISON, MADV_GUARD_INSTALL] {
        assert_eq!(
            space.madvise(&mut ops, anon, PAGE, unsupported),
            Err(Errno::EINVAL)
        );
    }
    assert_eq!(
        space.madvise(&mut ops, private_file, PAGE, MADV_FREE),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.madvise(&mut ops, private_file, PAGE, MADV_WIPEONFORK),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.madvise(&mut ops, private_file, PAGE, MADV_REMOVE),
        Err(Errno::EACCES)
    );
    assert_eq!(
        space.madvise(&mut ops, anon, PAGE, MADV_REMOVE),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        space.madvise(&mut ops, shared_anon, PAGE, MADV_FREE),
        Err(Errno::EINVAL)
    );
    // Shared anonymous memory keeps its data across DONTNEED but not across REMOVE.
    cpu_write(&mut space, &mut ops, shared_anon, b"\x07").unwrap();
    space
        .madvise(&mut ops, shared_anon, PAGE, MADV_DONTNEED)
        .unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, shared_anon), Ok(7));
    space
        .madvise(&mut ops, shared_anon, PAGE, MADV_REMOVE)
        .unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, shared_anon), Ok(0));
}

#[test]
fn madvise_applies_to_mapped_parts_and_reports_holes() {
    let (mut space, mut ops) = new_space();
    let base = 0x2000_0000;
    space
        .mmap(
            &mut ops,
            base,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            base + 2 * PAGE,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    cpu_write(&mut space, &mut ops, base, b"a").unwrap();
    cpu_write(&mut space, &mut ops, base + 2 * PAGE, b"b").unwrap();
    assert_eq!(
        space.madvise(&mut ops, base, 3 * PAGE, MADV_DONTNEED),
        Err(Errno::ENOMEM)
    );
    assert!(ops.pages.is_empty(), "both mapped parts were still dropped");
}

#[test]
fn madvise_populate_faults_pages_in_or_explains_why_not() {
    let (mut space, mut ops) = new_space();
    let rw = mmap_anon(&mut space, &mut ops, 2 * PAGE);
    space
        .madvise(&mut ops, rw, 2 * PAGE, MADV_POPULATE_WRITE)
        .unwrap();
    assert_eq!(ops.pages.len(), 2);
    let ro = space
        .mmap(&mut ops, 0, PAGE, PROT_READ, ANON, Backing::Anonymous)
        .unwrap();
    assert_eq!(
        space.madvise(&mut ops, ro, PAGE, MADV_POPULATE_WRITE),
        Err(Errno::EINVAL)
    );
    let file = patterned_file(1, 0);
    let past_eof = space
        .mmap(
            &mut ops,
            0,
            2 * PAGE,
            PROT_READ,
            MAP_PRIVATE,
            file_backing(&file, 0),
        )
        .unwrap();
    assert_eq!(
        space.madvise(&mut ops, past_eof, 2 * PAGE, MADV_POPULATE_READ),
        Err(Errno::EFAULT)
    );
}

// ----- brk -------------------------------------------------------------------------------

#[test]
fn brk_grows_lazily_shrinks_and_refuses_bad_requests() {
    let (mut space, mut ops) = new_space();
    assert_eq!(space.brk(&mut ops, 0), 0, "no brk area yet");
    let start = 0x60_0000;
    space.set_brk_area(start - 100);
    assert_eq!(space.brk(&mut ops, 0), start);
    assert_eq!(space.brk(&mut ops, start - PAGE), start);
    assert_eq!(
        space.brk(&mut ops, start + 100),
        start + 100,
        "unaligned breaks are remembered"
    );
    assert_eq!(
        space.brk(&mut ops, start + 3 * PAGE + 5),
        start + 3 * PAGE + 5
    );
    let heap = space.vma_at(start).unwrap();
    assert_eq!(
        (heap.start(), heap.end(), heap.kind(), heap.prot()),
        (start, start + 4 * PAGE, VmaKind::Heap, Prot::READ_WRITE)
    );
    assert_eq!(space.vmas().count(), 1, "growth merged into one [heap] VMA");
    assert!(ops.pages.is_empty(), "brk populates lazily");
    cpu_write(&mut space, &mut ops, start + 3 * PAGE, b"heap").unwrap();
    // Shrink: the page goes away and reads zero after growing back.
    assert_eq!(space.brk(&mut ops, start + PAGE), start + PAGE);
    assert!(ops.pages.is_empty());
    assert_eq!(
        cpu_read(&mut space, &mut ops, start + 3 * PAGE),
        Err(FaultKind::Unmapped)
    );
    assert_eq!(space.brk(&mut ops, start + 4 * PAGE), start + 4 * PAGE);
    assert_eq!(cpu_read(&mut space, &mut ops, start + 3 * PAGE), Ok(0));
    // Growing into another mapping (or to within a page of it) leaves the break alone.
    space
        .mmap(
            &mut ops,
            start + 10 * PAGE,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(space.brk(&mut ops, start + 10 * PAGE), start + 4 * PAGE);
    assert_eq!(space.brk(&mut ops, start + 9 * PAGE), start + 9 * PAGE);
    assert_eq!(space.brk(&mut ops, USER_END + PAGE), start + 9 * PAGE);
    assert_eq!(space.brk_area(), Some((start, start + 9 * PAGE)));
}

// ----- faults ----------------------------------------------------------------------------

#[test]
fn faults_are_classified_like_linux() {
    let (mut space, mut ops) = new_space();
    let ro = space
        .mmap(&mut ops, 0, PAGE, PROT_READ, ANON, Backing::Anonymous)
        .unwrap();
    let none = space
        .mmap(
            &mut ops,
            0x3000_0000,
            PAGE,
            PROT_NONE,
            ANON,
            Backing::Anonymous,
        )
        .unwrap();
    let wo = space
        .mmap(
            &mut ops,
            0x3100_0000,
            PAGE,
            PROT_WRITE,
            ANON,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.handle_fault(&mut ops, 0x1234_5678, Access::Read),
        Err(FaultKind::Unmapped)
    );
    assert_eq!(
        space.handle_fault(&mut ops, USER_END + 5, Access::Read),
        Err(FaultKind::Unmapped)
    );
    assert_eq!(
        space.handle_fault(&mut ops, ro, Access::Write),
        Err(FaultKind::Protection)
    );
    assert_eq!(
        space.handle_fault(&mut ops, ro, Access::Exec),
        Err(FaultKind::Protection)
    );
    assert_eq!(
        space.handle_fault(&mut ops, none, Access::Read),
        Err(FaultKind::Protection)
    );
    assert_eq!(space.handle_fault(&mut ops, wo, Access::Read), Ok(()));
    assert!(!ops.pages.contains_key(&ro), "refused faults map nothing");
    assert_eq!(space.handle_fault(&mut ops, ro + 17, Access::Read), Ok(()));
    assert_eq!(ops.pages[&ro], (Prot::READ, vec![0; PAGE as usize]));
    // A spurious fault on a present page re-synchronises its protection.
    ops.pages.get_mut(&ro).unwrap().0 = Prot::NONE;
    assert_eq!(space.handle_fault(&mut ops, ro, Access::Read), Ok(()));
    assert_eq!(ops.pages[&ro].0, Prot::READ);
}

#[test]
fn file_faults_fill_from_the_file_zero_the_tail_and_bus_past_eof() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(1, 100);
    let addr = space
        .mmap(
            &mut ops,
            0,
            3 * PAGE,
            PROT_READ,
            MAP_PRIVATE,
            file_backing(&file, 0),
        )
        .unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, addr + 4095), Ok(1));
    assert_eq!(cpu_read(&mut space, &mut ops, addr + PAGE + 99), Ok(0xee));
    assert_eq!(
        cpu_read(&mut space, &mut ops, addr + PAGE + 100),
        Ok(0),
        "bytes past EOF in the last page"
    );
    assert_eq!(
        cpu_read(&mut space, &mut ops, addr + 2 * PAGE),
        Err(FaultKind::Bus)
    );
    let broken = space
        .mmap(
            &mut ops,
            0,
            PAGE,
            PROT_READ,
            MAP_PRIVATE,
            Backing::File {
                source: Arc::new(BrokenFile),
                offset: 0,
                file_size_limit: u64::MAX,
            },
        )
        .unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, broken), Err(FaultKind::Bus));
}

#[test]
fn image_segments_zero_fill_past_the_file_part() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(3, 0);
    // A data segment at file offset 0x1000 with p_filesz 0x800 and p_memsz 3 pages.
    let backing = Backing::File {
        source: file.clone(),
        offset: PAGE,
        file_size_limit: PAGE + 0x800,
    };
    space
        .map_fixed(
            &mut ops,
            0x40_0000,
            3 * PAGE,
            Prot::READ_WRITE,
            VmaKind::Image,
            backing,
        )
        .unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, 0x40_07ff), Ok(2));
    assert_eq!(
        cpu_read(&mut space, &mut ops, 0x40_0800),
        Ok(0),
        ".bss part of the straddling page"
    );
    assert_eq!(
        cpu_read(&mut space, &mut ops, 0x40_2000),
        Ok(0),
        "page wholly in .bss"
    );
}

#[test]
fn map_fixed_validates_its_arguments() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(1, 0);
    let fixed = |space: &mut AddressSpace, ops: &mut FakePages, start, len, kind, backing| {
        space.map_fixed(ops, start, len, Prot::READ, kind, backing)
    };
    assert_eq!(
        fixed(
            &mut space,
            &mut ops,
            0x40_0001,
            PAGE,
            VmaKind::Image,
            Backing::Anonymous
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        fixed(
            &mut space,
            &mut ops,
            0x40_0000,
            0,
            VmaKind::Image,
            Backing::Anonymous
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        fixed(
            &mut space,
            &mut ops,
            USER_END,
            PAGE,
            VmaKind::Image,
            Backing::Anonymous
        ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        fixed(
            &mut space,
            &mut ops,
            0x40_0000,
            PAGE,
            VmaKind::Stack,
            file_backing(&file, 0)
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        fixed(
            &mut space,
            &mut ops,
            0x40_0000,
            PAGE,
            VmaKind::File,
            Backing::Anonymous
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        fixed(
            &mut space,
            &mut ops,
            0x40_0000,
            PAGE,
            VmaKind::Image,
            file_backing(&file, 1)
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(space.vmas().count(), 0);
}

#[test]
fn running_out_of_frames_is_reported() {
    let (mut space, mut ops) = new_space();
    ops.frame_limit = Some(1);
    let addr = mmap_anon(&mut space, &mut ops, 2 * PAGE);
    assert_eq!(space.handle_fault(&mut ops, addr, Access::Write), Ok(()));
    assert_eq!(
        space.handle_fault(&mut ops, addr + PAGE, Access::Write),
        Err(FaultKind::OutOfMemory)
    );
    assert_eq!(
        space.populate_range(&mut ops, addr, 2 * PAGE),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        space.fault_in_range(&mut ops, addr, 2 * PAGE, Access::Read),
        Err(Errno::ENOMEM)
    );
}

#[test]
fn split_file_vmas_keep_their_offsets() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(4, 0);
    let addr = space
        .mmap(
            &mut ops,
            0,
            4 * PAGE,
            RW,
            MAP_PRIVATE,
            file_backing(&file, 0),
        )
        .unwrap();
    space
        .mprotect(&mut ops, addr + PAGE, PAGE, PROT_READ)
        .unwrap();
    space.munmap(&mut ops, addr, PAGE).unwrap();
    let offsets: Vec<Option<u64>> = space.vmas().map(Vma::file_offset).collect();
    assert_eq!(offsets, [Some(PAGE), Some(2 * PAGE)]);
    for page in 1..4 {
        assert_eq!(
            cpu_read(&mut space, &mut ops, addr + page * PAGE + 9),
            Ok(page as u8 + 1)
        );
    }
    // Restoring the protection merges the file pieces back, offsets contiguous.
    space.mprotect(&mut ops, addr + PAGE, PAGE, RW).unwrap();
    assert_eq!(spans(&space), [(addr + PAGE, addr + 4 * PAGE)]);
}

// ----- stack growth ----------------------------------------------------------------------

#[test]
fn stacks_grow_down_by_linux_rules() {
    let (mut space, mut ops) = new_space();
    let top = 0x7fff_ff00_0000;
    space
        .map_fixed(
            &mut ops,
            top - 4 * PAGE,
            4 * PAGE,
            Prot::READ_WRITE,
            VmaKind::Stack,
            Backing::Anonymous,
        )
        .unwrap();
    let far_below = top - 100 * PAGE;
    cpu_write(&mut space, &mut ops, far_below + 8, b"deep").unwrap();
    let stack = space.vma_at(top - PAGE).unwrap();
    assert_eq!((stack.start(), stack.end()), (far_below, top));
    assert_eq!(
        cpu_read_bytes(&mut space, &mut ops, far_below + 8, 4),
        b"deep"
    );

    // The stack limit bounds the growth.
    space.set_stack_limit(128 * PAGE);
    assert_eq!(
        space.handle_fault(&mut ops, top - 129 * PAGE, Access::Write),
        Err(FaultKind::Unmapped)
    );
    assert_eq!(
        space.handle_fault(&mut ops, top - 128 * PAGE, Access::Write),
        Ok(())
    );
    space.set_stack_limit(DEFAULT_STACK_LIMIT);

    // Growth must keep the guard gap above an accessible mapping below.
    let below = top - 128 * PAGE - STACK_GUARD_GAP - 4 * PAGE;
    space
        .mmap(
            &mut ops,
            below,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    let gap_edge = below + PAGE + STACK_GUARD_GAP;
    assert_eq!(
        space.handle_fault(&mut ops, gap_edge - 1, Access::Write),
        Err(FaultKind::Unmapped)
    );
    assert_eq!(
        space.handle_fault(&mut ops, gap_edge, Access::Write),
        Ok(())
    );
    // A PROT_NONE mapping below does not count as a neighbour to keep away from.
    space.mprotect(&mut ops, below, PAGE, PROT_NONE).unwrap();
    assert_eq!(
        space.handle_fault(&mut ops, gap_edge - 1, Access::Write),
        Ok(())
    );

    // Ordinary mappings do not grow.
    let plain = space
        .mmap(
            &mut ops,
            0x2000_0000,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.handle_fault(&mut ops, plain - 8, Access::Write),
        Err(FaultKind::Unmapped)
    );
    // MAP_GROWSDOWN mappings do.
    let gd = space
        .mmap(
            &mut ops,
            0x2100_0000,
            PAGE,
            RW,
            ANON | MAP_FIXED | MAP_GROWSDOWN,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(space.handle_fault(&mut ops, gd - 8, Access::Write), Ok(()));
    assert_eq!(space.vma_at(gd - 8).unwrap().end(), gd + PAGE);
}

// ----- user-memory checks ----------------------------------------------------------------

#[test]
fn check_range_requires_whole_coverage_with_the_access() {
    let (mut space, mut ops) = new_space();
    let base = 0x2000_0000;
    space
        .mmap(
            &mut ops,
            base,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            base + PAGE,
            PAGE,
            PROT_READ,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(
        space.check_range(base + 10, 2 * PAGE - 20, Access::Read),
        Ok(())
    );
    assert_eq!(
        space.check_range(base + 10, 2 * PAGE - 20, Access::Write),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        space.check_range(base + 10, PAGE - 10, Access::Write),
        Ok(())
    );
    assert_eq!(
        space.check_range(base, 2 * PAGE + 1, Access::Read),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        space.check_range(base - 1, 2, Access::Read),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        space.check_range(u64::MAX - 1, 5, Access::Read),
        Err(Errno::EFAULT)
    );
    assert_eq!(space.check_range(0x9999_0000, 0, Access::Read), Ok(()));
    assert_eq!(
        space.check_range(base, PAGE, Access::Exec),
        Err(Errno::EFAULT)
    );
}

#[test]
fn fault_in_range_populates_and_grows_stacks() {
    let (mut space, mut ops) = new_space();
    let top = 0x7fff_ff00_0000;
    space
        .map_fixed(
            &mut ops,
            top - PAGE,
            PAGE,
            Prot::READ_WRITE,
            VmaKind::Stack,
            Backing::Anonymous,
        )
        .unwrap();
    // A buffer 3 pages below the stack VMA, as a big local array passed to read(2).
    space
        .fault_in_range(&mut ops, top - 4 * PAGE + 100, 2 * PAGE, Access::Write)
        .unwrap();
    assert!(
        ops.is_mapped(top - 4 * PAGE)
            && ops.is_mapped(top - 3 * PAGE)
            && ops.is_mapped(top - 2 * PAGE)
    );
    assert_eq!(
        space.check_range(top - 4 * PAGE, 4 * PAGE, Access::Write),
        Ok(())
    );
    let ro = space
        .mmap(&mut ops, 0, PAGE, PROT_READ, ANON, Backing::Anonymous)
        .unwrap();
    assert_eq!(
        space.fault_in_range(&mut ops, ro, 1, Access::Write),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        space.fault_in_range(&mut ops, 0x1000_0000, 1, Access::Read),
        Err(Errno::EFAULT)
    );
}

// ----- /proc/self/maps -------------------------------------------------------------------

#[test]
fn maps_text_matches_linux_format() {
    let (mut space, mut ops) = new_space();
    let exe = Arc::new(MemFile {
        data: vec![0; 3 * PAGE as usize],
        path: "/bin/app",
        ino: 10011744,
    });
    let image = |offset| Backing::File {
        source: exe.clone(),
        offset,
        file_size_limit: 3 * PAGE,
    };
    space
        .map_fixed(
            &mut ops,
            0x40_0000,
            PAGE,
            Prot::READ,
            VmaKind::Image,
            image(0),
        )
        .unwrap();
    space
        .map_fixed(
            &mut ops,
            0x40_1000,
            PAGE,
            Prot::READ_EXEC,
            VmaKind::Image,
            image(PAGE),
        )
        .unwrap();
    space
        .map_fixed(
            &mut ops,
            0x40_2000,
            PAGE,
            Prot::READ_WRITE,
            VmaKind::Image,
            image(2 * PAGE),
        )
        .unwrap();
    space
        .map_fixed(
            &mut ops,
            0x40_3000,
            PAGE,
            Prot::READ_WRITE,
            VmaKind::Image,
            Backing::Anonymous,
        )
        .unwrap();
    space.set_brk_area(0x50_0000);
    space.brk(&mut ops, 0x52_1000);
    let data = Arc::new(MemFile {
        data: vec![0; 100],
        path: "/etc/passwd",
        ino: 737,
    });
    space
        .mmap(
            &mut ops,
            0x7fb5_ab40_7000,
            2 * PAGE,
            PROT_READ,
            MAP_SHARED | MAP_FIXED,
            file_backing(&data, 0),
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            0x7fb5_ab40_e000,
            PAGE,
            RW,
            ANON | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .mmap(
            &mut ops,
            0x7fb5_ab50_0000,
            PAGE,
            RW,
            MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
            Backing::Anonymous,
        )
        .unwrap();
    space
        .map_fixed(
            &mut ops,
            0x7fff_d7c2_b000,
            0x21000,
            Prot::READ_WRITE,
            VmaKind::Stack,
            Backing::Anonymous,
        )
        .unwrap();
    let expected = "\
00400000-00401000 r--p 00000000 fe:00 10011744                           /bin/app
00401000-00402000 r-xp 00001000 fe:00 10011744                           /bin/app
00402000-00403000 rw-p 00002000 fe:00 10011744                           /bin/app
00403000-00404000 rw-p 00000000 00:00 0 
00500000-00521000 rw-p 00000000 00:00 0                                  [heap]
7fb5ab407000-7fb5ab409000 r--s 00000000 fe:00 737                        /etc/passwd
7fb5ab40e000-7fb5ab40f000 rw-p 00000000 00:00 0 
7fb5ab500000-7fb5ab501000 rw-s 00000000 00:01 0                          /dev/zero (deleted)
7fffd7c2b000-7fffd7c4c000 rw-p 00000000 00:00 0                          [stack]
";
    assert_eq!(space.maps_text(), expected);
    for line in space
        .maps_text()
        .lines()
        .filter(|l| l.contains('/') || l.contains('['))
    {
        let name_at = line.find(['/', '[']).unwrap();
        assert_eq!(name_at, 73, "{line}");
    }
}

#[test]
fn total_mapped_counts_every_vma() {
    let (mut space, mut ops) = new_space();
    mmap_anon(&mut space, &mut ops, 3 * PAGE);
    space
        .mmap(
            &mut ops,
            0x2000_0000,
            5 * PAGE,
            PROT_NONE,
            ANON,
            Backing::Anonymous,
        )
        .unwrap();
    assert_eq!(space.total_mapped(), 8 * PAGE);
    space.munmap(&mut ops, 0x2000_0000, PAGE).unwrap();
    assert_eq!(space.total_mapped(), 7 * PAGE);
}

/// A file in memory that a shared mapping may write back to.
struct WritableFile {
    data: std::sync::Mutex<Vec<u8>>,
}

impl MapSource for WritableFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let data = self.data.lock().unwrap();
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn describe(&self) -> (u64, u64, Vec<u8>) {
        (0xfe00, 9, b"/shared".to_vec())
    }
    fn writable(&self) -> bool {
        true
    }
    fn write_back(&self, offset: u64, page: &[u8]) -> KResult<()> {
        let mut data = self.data.lock().unwrap();
        let start = (offset as usize).min(data.len());
        let n = page.len().min(data.len() - start);
        data[start..start + n].copy_from_slice(&page[..n]);
        Ok(())
    }
    fn file_key(&self) -> Option<usize> {
        Some(9)
    }
}

/// What `write(2)` through a descriptor does to a file with shared mappings: the file
/// changes, then the kernel tells the address space.
fn write_through_descriptor(
    space: &mut AddressSpace,
    ops: &mut FakePages,
    file: &WritableFile,
    offset: u64,
    bytes: &[u8],
) {
    let at = offset as usize;
    file.data.lock().unwrap()[at..at + bytes.len()].copy_from_slice(bytes);
    space.update_file_range(ops, 9, offset, bytes.len() as u64, Some(bytes));
}

#[test]
fn writes_through_descriptors_reach_shared_mappings_and_survive_write_back() {
    let (mut space, mut ops) = new_space();
    let file = Arc::new(WritableFile {
        data: std::sync::Mutex::new(vec![b'.'; 3 * PAGE as usize]),
    });
    let shared = |offset| Backing::File {
        source: file.clone(),
        offset,
        file_size_limit: u64::MAX,
    };
    let whole = space
        .mmap(&mut ops, 0, 3 * PAGE, RW, MAP_SHARED, shared(0))
        .unwrap();
    // A second mapping of the last two pages, and a page not faulted in yet.
    let tail = space
        .mmap(&mut ops, 0, 2 * PAGE, PROT_READ, MAP_SHARED, shared(PAGE))
        .unwrap();
    cpu_write(&mut space, &mut ops, whole, b"M").unwrap();
    assert_eq!(cpu_read(&mut space, &mut ops, tail + PAGE).unwrap(), b'.');
    // A write spanning pages 0-2: page 0 is dirty, page 2 is present in both mappings,
    // page 1 is present in one.
    let text = vec![b'w'; PAGE as usize + 200];
    write_through_descriptor(&mut space, &mut ops, &file, 100, &text);
    assert_eq!(cpu_read(&mut space, &mut ops, whole + 100).unwrap(), b'w');
    assert_eq!(cpu_read(&mut space, &mut ops, tail + 299).unwrap(), b'w');
    assert_eq!(cpu_read(&mut space, &mut ops, tail + 300).unwrap(), b'.');
    // The mapping's store is written back with the write's bytes, not over them.
    space.munmap(&mut ops, whole, 3 * PAGE).unwrap();
    {
        let data = file.data.lock().unwrap();
        assert_eq!(data[0], b'M', "the mapped store");
        assert!(data[100..300 + PAGE as usize].iter().all(|&b| b == b'w'));
    }
    // A size change zeroes what lies past the new end in the pages still mapped.
    file.data.lock().unwrap().truncate(PAGE as usize + 10);
    space.update_file_range(&mut ops, 9, PAGE + 10, 2 * PAGE - 10, None);
    assert_eq!(cpu_read(&mut space, &mut ops, tail + 9).unwrap(), b'w');
    assert_eq!(cpu_read(&mut space, &mut ops, tail + 10).unwrap(), 0);
    assert_eq!(cpu_read(&mut space, &mut ops, tail + PAGE).unwrap(), 0);
}

#[test]
fn reads_through_descriptors_see_stores_to_shared_mappings_first() {
    let (mut space, mut ops) = new_space();
    let file = Arc::new(WritableFile {
        data: std::sync::Mutex::new(vec![b'.'; 2 * PAGE as usize]),
    });
    let backing = Backing::File {
        source: file.clone(),
        offset: 0,
        file_size_limit: u64::MAX,
    };
    let addr = space
        .mmap(&mut ops, 0, 2 * PAGE, RW, MAP_SHARED, backing)
        .unwrap();
    cpu_write(&mut space, &mut ops, addr + 10, b"a").unwrap();
    cpu_write(&mut space, &mut ops, addr + PAGE + 10, b"b").unwrap();
    // Another file's key flushes nothing; a range in page 1 flushes page 1 only.
    space.flush_file_range(&mut ops, 8, 0, 2 * PAGE).unwrap();
    assert_eq!(file.data.lock().unwrap()[10], b'.');
    space.flush_file_range(&mut ops, 9, PAGE + 5, 1).unwrap();
    assert_eq!(file.data.lock().unwrap()[10], b'.');
    assert_eq!(file.data.lock().unwrap()[PAGE as usize + 10], b'b');
    space.flush_file_range(&mut ops, 9, 0, 1).unwrap();
    assert_eq!(file.data.lock().unwrap()[10], b'a');
    // Flushed pages are clean: a later write(2) is not overwritten by them.
    file.data.lock().unwrap()[11] = b'w';
    space.sync_range(&mut ops, addr, addr + 2 * PAGE).unwrap();
    assert_eq!(file.data.lock().unwrap()[11], b'w');
}

#[test]
fn shared_file_mappings_write_back_dirty_pages_on_msync_and_munmap() {
    let (mut space, mut ops) = new_space();
    // Two pages and a half: the tail of the last page lies past the end of the file.
    let file = Arc::new(WritableFile {
        data: std::sync::Mutex::new(vec![b'.'; 2 * PAGE as usize + 100]),
    });
    let backing = Backing::File {
        source: file.clone(),
        offset: 0,
        file_size_limit: u64::MAX,
    };
    let addr = space
        .mmap(&mut ops, 0, 3 * PAGE, RW, MAP_SHARED, backing)
        .unwrap();
    // Reading faults pages in without making them dirty: nothing is written back.
    assert_eq!(cpu_read(&mut space, &mut ops, addr + PAGE).unwrap(), b'.');
    file.data.lock().unwrap()[PAGE as usize] = b'w';
    space.sync_range(&mut ops, addr, addr + 3 * PAGE).unwrap();
    assert_eq!(
        file.data.lock().unwrap()[PAGE as usize],
        b'w',
        "a clean page must not overwrite later write(2)s"
    );

    cpu_write(&mut space, &mut ops, addr + 5, b"hello").unwrap();
    assert_eq!(
        &file.data.lock().unwrap()[5..10],
        b".....",
        "not before msync"
    );
    space.sync_range(&mut ops, addr, addr + PAGE).unwrap();
    assert_eq!(&file.data.lock().unwrap()[5..10], b"hello");

    // Writes in the last page reach the file up to its end, which does not grow.
    cpu_write(&mut space, &mut ops, addr + 2 * PAGE + 98, b"xyz!").unwrap();
    space.munmap(&mut ops, addr, 3 * PAGE).unwrap();
    let data = file.data.lock().unwrap();
    assert_eq!(data.len(), 2 * PAGE as usize + 100);
    assert_eq!(&data[2 * PAGE as usize + 98..], b"xy");
}

#[test]
fn shared_writable_mapping_needs_a_writable_file() {
    let (mut space, mut ops) = new_space();
    let file = patterned_file(1, 0);
    assert_eq!(
        space.mmap(&mut ops, 0, PAGE, RW, MAP_SHARED, file_backing(&file, 0)),
        Err(Errno::EACCES)
    );
    let addr = space
        .mmap(
            &mut ops,
            0,
            PAGE,
            PROT_READ,
            MAP_SHARED,
            file_backing(&file, 0),
        )
        .unwrap();
    assert_eq!(space.mprotect(&mut ops, addr, PAGE, RW), Err(Errno::EACCES));
    // Private mappings of the same file may be written (copy on write).
    let private = space
        .mmap(&mut ops, 0, PAGE, RW, MAP_PRIVATE, file_backing(&file, 0))
        .unwrap();
    cpu_write(&mut space, &mut ops, private, b"x").unwrap();
    assert_eq!(file.data[0], 1);
}
