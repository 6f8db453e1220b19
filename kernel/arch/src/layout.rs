//! The kernel's virtual address layout.
//!
//! The lower half belongs to the application and follows Linux's user layout. The kernel
//! image is linked at [`KERNEL_BASE`] + its physical address; all physical memory is
//! reachable through the direct map at [`PHYS_OFFSET`].

/// Start of the direct map of physical memory.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// Virtual address of physical address 0 in the kernel image mapping.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// One past the highest application address (Linux's `TASK_SIZE` less a guard page).
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
/// Page size.
pub const PAGE_SIZE: u64 = 4096;
/// How much physical memory the boot page tables map in the direct map (4 GiB).
pub const BOOT_DIRECT_MAP: u64 = 4 << 30;

/// Direct-map virtual address of a physical address.
#[inline]
pub const fn phys_to_virt(phys: u64) -> u64 {
    phys + PHYS_OFFSET
}

/// Physical address of a direct-map or kernel-image virtual address.
#[inline]
pub const fn virt_to_phys(virt: u64) -> u64 {
    if virt >= KERNEL_BASE {
        virt - KERNEL_BASE
    } else {
        virt - PHYS_OFFSET
    }
}

/// Whether an address belongs to the application's half.
#[inline]
pub const fn is_user(addr: u64) -> bool {
    addr < USER_END
}
