//! Linux x86_64 constants for the memory-management system calls this crate decodes.
//!
//! The values are the kernel's UAPI numbers (`asm-generic/mman-common.h`,
//! `asm/mman.h`, `linux/mman.h`); the syscall layer passes raw register values and this
//! crate interprets them, so the numbers live in one place.

/// Size of one page; the only page size Skiff maps for applications.
pub const PAGE_SIZE: u64 = 4096;

/// `PROT_NONE`.
pub const PROT_NONE: u64 = 0x0;
/// `PROT_READ`.
pub const PROT_READ: u64 = 0x1;
/// `PROT_WRITE`.
pub const PROT_WRITE: u64 = 0x2;
/// `PROT_EXEC`.
pub const PROT_EXEC: u64 = 0x4;
/// `PROT_SEM`: accepted and meaningless on x86, as on Linux.
pub const PROT_SEM: u64 = 0x8;
/// `PROT_GROWSDOWN` (mprotect only): extend the change down to the start of a
/// grows-down mapping.
pub const PROT_GROWSDOWN: u64 = 0x0100_0000;
/// `PROT_GROWSUP`: x86 has no grows-up mappings, so this is always `EINVAL`.
pub const PROT_GROWSUP: u64 = 0x0200_0000;

/// `MAP_SHARED`.
pub const MAP_SHARED: u64 = 0x01;
/// `MAP_PRIVATE`.
pub const MAP_PRIVATE: u64 = 0x02;
/// `MAP_SHARED_VALIDATE`: shared, and unknown flags are an error (`EOPNOTSUPP`).
pub const MAP_SHARED_VALIDATE: u64 = 0x03;
/// `MAP_TYPE`: the mask selecting the mapping type.
pub const MAP_TYPE: u64 = 0x0f;
/// `MAP_FIXED`.
pub const MAP_FIXED: u64 = 0x10;
/// `MAP_ANONYMOUS`.
pub const MAP_ANONYMOUS: u64 = 0x20;
/// `MAP_32BIT` (x86_64): place the mapping in the first 2 GiB.
pub const MAP_32BIT: u64 = 0x40;
/// `MAP_GROWSDOWN`.
pub const MAP_GROWSDOWN: u64 = 0x0100;
/// `MAP_DENYWRITE` (ignored by Linux).
pub const MAP_DENYWRITE: u64 = 0x0800;
/// `MAP_EXECUTABLE` (ignored by Linux).
pub const MAP_EXECUTABLE: u64 = 0x1000;
/// `MAP_LOCKED`.
pub const MAP_LOCKED: u64 = 0x2000;
/// `MAP_NORESERVE`.
pub const MAP_NORESERVE: u64 = 0x4000;
/// `MAP_POPULATE`.
pub const MAP_POPULATE: u64 = 0x8000;
/// `MAP_NONBLOCK`.
pub const MAP_NONBLOCK: u64 = 0x10000;
/// `MAP_STACK`.
pub const MAP_STACK: u64 = 0x20000;
/// `MAP_HUGETLB`.
pub const MAP_HUGETLB: u64 = 0x40000;
/// `MAP_SYNC` (only meaningful with `MAP_SHARED_VALIDATE` on DAX files).
pub const MAP_SYNC: u64 = 0x80000;
/// `MAP_FIXED_NOREPLACE`.
pub const MAP_FIXED_NOREPLACE: u64 = 0x100000;
/// `MAP_UNINITIALIZED` (ignored, as on kernels without `CONFIG_MMAP_ALLOW_UNINITIALIZED`).
pub const MAP_UNINITIALIZED: u64 = 0x400_0000;
/// `MAP_HUGE_SHIFT`/`MAP_HUGE_MASK`: the huge page size encoded in the flags.
pub const MAP_HUGE_MASK: u64 = 0x3f << 26;

/// Linux's `LEGACY_MAP_MASK`: the flags `MAP_SHARED_VALIDATE` accepts for files that
/// support no extra flags. Note that `MAP_FIXED_NOREPLACE` and `MAP_SYNC` are *not* in
/// it, so Linux answers `EOPNOTSUPP` for them under `MAP_SHARED_VALIDATE`.
pub const LEGACY_MAP_MASK: u64 = MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_UNINITIALIZED
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
    | MAP_32BIT
    | MAP_HUGE_MASK;

/// `MREMAP_MAYMOVE`.
pub const MREMAP_MAYMOVE: u64 = 1;
/// `MREMAP_FIXED`.
pub const MREMAP_FIXED: u64 = 2;
/// `MREMAP_DONTUNMAP`.
pub const MREMAP_DONTUNMAP: u64 = 4;

/// `MADV_NORMAL`.
pub const MADV_NORMAL: u64 = 0;
/// `MADV_RANDOM`.
pub const MADV_RANDOM: u64 = 1;
/// `MADV_SEQUENTIAL`.
pub const MADV_SEQUENTIAL: u64 = 2;
/// `MADV_WILLNEED`.
pub const MADV_WILLNEED: u64 = 3;
/// `MADV_DONTNEED`.
pub const MADV_DONTNEED: u64 = 4;
/// `MADV_FREE`.
pub const MADV_FREE: u64 = 8;
/// `MADV_REMOVE`.
pub const MADV_REMOVE: u64 = 9;
/// `MADV_DONTFORK`.
pub const MADV_DONTFORK: u64 = 10;
/// `MADV_DOFORK`.
pub const MADV_DOFORK: u64 = 11;
/// `MADV_MERGEABLE`.
pub const MADV_MERGEABLE: u64 = 12;
/// `MADV_UNMERGEABLE`.
pub const MADV_UNMERGEABLE: u64 = 13;
/// `MADV_HUGEPAGE`.
pub const MADV_HUGEPAGE: u64 = 14;
/// `MADV_NOHUGEPAGE`.
pub const MADV_NOHUGEPAGE: u64 = 15;
/// `MADV_DONTDUMP`.
pub const MADV_DONTDUMP: u64 = 16;
/// `MADV_DODUMP`.
pub const MADV_DODUMP: u64 = 17;
/// `MADV_WIPEONFORK`.
pub const MADV_WIPEONFORK: u64 = 18;
/// `MADV_KEEPONFORK`.
pub const MADV_KEEPONFORK: u64 = 19;
/// `MADV_COLD`.
pub const MADV_COLD: u64 = 20;
/// `MADV_PAGEOUT`.
pub const MADV_PAGEOUT: u64 = 21;
/// `MADV_POPULATE_READ`.
pub const MADV_POPULATE_READ: u64 = 22;
/// `MADV_POPULATE_WRITE`.
pub const MADV_POPULATE_WRITE: u64 = 23;
/// `MADV_DONTNEED_LOCKED`.
pub const MADV_DONTNEED_LOCKED: u64 = 24;
/// `MADV_COLLAPSE`.
pub const MADV_COLLAPSE: u64 = 25;
/// `MADV_HWPOISON`.
pub const MADV_HWPOISON: u64 = 100;
/// `MADV_SOFT_OFFLINE`.
pub const MADV_SOFT_OFFLINE: u64 = 101;
/// `MADV_GUARD_INSTALL`.
pub const MADV_GUARD_INSTALL: u64 = 102;
/// `MADV_GUARD_REMOVE`.
pub const MADV_GUARD_REMOVE: u64 = 103;

/// `SIGBUS`.
pub const SIGBUS: u32 = 7;
/// `SIGKILL`.
pub const SIGKILL: u32 = 9;
/// `SIGSEGV`.
pub const SIGSEGV: u32 = 11;
/// `SEGV_MAPERR`: address not mapped to an object.
pub const SEGV_MAPERR: i32 = 1;
/// `SEGV_ACCERR`: invalid permissions for a mapped object.
pub const SEGV_ACCERR: i32 = 2;
/// `BUS_ADRERR`: nonexistent physical address (a file page past EOF).
pub const BUS_ADRERR: i32 = 2;

/// Rounds `value` up to a page boundary; `None` when that overflows.
pub const fn page_align_up(value: u64) -> Option<u64> {
    match value.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}

/// Rounds `value` down to a page boundary.
pub const fn page_align_down(value: u64) -> u64 {
    value & !(PAGE_SIZE - 1)
}

/// Whether `value` is page-aligned.
pub const fn is_page_aligned(value: u64) -> bool {
    value & (PAGE_SIZE - 1) == 0
}
