//! PVH entry: from the 32-bit protected-mode entry point that QEMU, Firecracker, Cloud
//! Hypervisor and Xen jump to, into 64-bit Rust.
//!
//! The early page tables are static data: an identity map of the first 4 GiB (needed
//! only while paging is switched on; the kernel removes it before the application
//! runs), the same 4 GiB at the direct map, and the kernel image at `KERNEL_BASE`. All use
//! 2 MiB pages. The entry enables PAE/long mode, NX and SSE (the precompiled `core` uses
//! SSE), loads a minimal GDT, reads the TSC as the boot timestamp, and calls
//! [`skiff_kernel_main`](crate::kernel_main) through `arch_entry64`.

/// What the 32-bit entry hands to Rust.
#[derive(Clone, Copy, Debug)]
pub struct BootHandoff {
    /// Physical address of the PVH `hvm_start_info`.
    pub start_info_phys: u64,
    /// TSC value read at the first 64-bit instruction.
    pub tsc_at_entry: u64,
}

extern "Rust" {
    /// Provided by the kernel image through [`kernel_main!`](crate::kernel_main).
    fn skiff_kernel_main(handoff: BootHandoff) -> !;
}

/// The Rust side of the PVH entry (called by the assembly from [`pvh_entry!`]).
pub extern "C" fn arch_entry64(start_info_phys: u64, tsc_at_entry: u64) -> ! {
    let handoff = BootHandoff {
        start_info_phys,
        tsc_at_entry,
    };
    // SAFETY: `skiff_kernel_main` is defined exactly once, by the kernel image through
    // `kernel_main!`, with this signature; it is called once, on the boot stack.
    unsafe { skiff_kernel_main(handoff) }
}

/// Defines the kernel's Rust entry point. Use once, in the kernel image:
/// `skiff_arch::kernel_main!(main);` where `fn main(h: BootHandoff) -> !`.
#[macro_export]
macro_rules! kernel_main {
    ($path:path) => {
        #[allow(unsafe_code)]
        #[no_mangle]
        fn skiff_kernel_main(handoff: $crate::boot::BootHandoff) -> ! {
            $path(handoff)
        }
    };
}

/// Size of the boot stack, which becomes the first thread's kernel stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
pub struct BootStack(pub [u8; BOOT_STACK_SIZE]);

/// The boot stack. Referenced by address only.
pub static mut SKIFF_BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

/// Bounds of the boot stack, for the per-CPU "current kernel stack".
pub fn boot_stack_bounds() -> (u64, u64) {
    let lo = &raw const SKIFF_BOOT_STACK as u64;
    (lo, lo + BOOT_STACK_SIZE as u64)
}

/// Instantiate the PVH entry point, its note and the early page tables. Use once, in
/// the kernel image crate: the code uses absolute 32-bit addresses, so it belongs only
/// in the image linked at its physical address, never in host test binaries.
#[macro_export]
macro_rules! pvh_entry {
    () => {
        core::arch::global_asm!(
            r#"
            .section .note.Xen, "a"
            .p2align 2
            .long 4
            .long 4
            .long 18
            .asciz "Xen"
            .long pvh_start32

            .section .boot.text, "ax"
            .code32
            .global pvh_start32
        pvh_start32:
            cli
            cld
            mov %ebx, %edi
            mov %cr4, %eax
            or $0x6a0, %eax
            mov %eax, %cr4
            mov $boot_pml4, %eax
            mov %eax, %cr3
            mov $0xC0000080, %ecx
            rdmsr
            or $0x901, %eax
            wrmsr
            mov %cr0, %eax
            and $0xfffffffb, %eax
            or $0x80010023, %eax
            mov %eax, %cr0
            lgdt boot_gdtr
            ljmp $0x08, $boot_long_mode

            .code64
        boot_long_mode:
            mov $0x10, %eax
            mov %eax, %ds
            mov %eax, %es
            mov %eax, %ss
            xor %eax, %eax
            mov %eax, %fs
            mov %eax, %gs
            rdtsc
            shl $32, %rdx
            or %rax, %rdx
            mov %rdx, %rsi
            mov %edi, %edi
            movabs ${stack} + {stack_size}, %rsp
            xor %ebp, %ebp
            movabs ${entry}, %rax
            call *%rax
            ud2

            .section .boot.data, "aw"
            .p2align 12
            .global boot_pml4
        boot_pml4:
            .quad boot_pdpt_low + 3
            .fill 255, 8, 0
            .quad boot_pdpt_low + 3
            .fill 254, 8, 0
            .quad boot_pdpt_high + 3
        boot_pdpt_low:
            .quad boot_pd + 3
            .quad boot_pd + 0x1000 + 3
            .quad boot_pd + 0x2000 + 3
            .quad boot_pd + 0x3000 + 3
            .fill 508, 8, 0
        boot_pdpt_high:
            .fill 510, 8, 0
            .quad boot_pd + 3
            .quad boot_pd + 0x1000 + 3
        boot_pd:
            .set boot_pd_i, 0
            .rept 2048
            .quad (boot_pd_i << 21) | 0x83
            .set boot_pd_i, boot_pd_i + 1
            .endr
            .p2align 3
        boot_gdt:
            .quad 0
            .quad 0x00af9a000000ffff
            .quad 0x00cf92000000ffff
        boot_gdtr:
            .word 23
            .long boot_gdt
            .text
            "#,
            stack = sym $crate::boot::SKIFF_BOOT_STACK,
            stack_size = const $crate::boot::BOOT_STACK_SIZE,
            entry = sym $crate::boot::arch_entry64,
            options(att_syntax)
        );
    };
}
