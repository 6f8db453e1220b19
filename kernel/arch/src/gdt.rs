//! GDT and TSS. Everything runs in ring 0: one 64-bit code segment, one data segment,
//! and a TSS whose only job is to provide the interrupt stacks (IST). Every IDT vector
//! uses an IST stack because the application's 128-byte red zone below `rsp` is live
//! data that a hardware push would destroy (DESIGN.md §2).

use core::arch::asm;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
const TSS_SEL: u16 = 0x18;

/// IST index for ordinary traps and interrupts (they move off it at once).
pub const IST_TRAP: u8 = 1;
/// IST index for double faults.
pub const IST_DOUBLE_FAULT: u8 = 2;
/// IST index for NMI and machine checks.
pub const IST_NMI: u8 = 3;

const IST_SIZE: usize = 16 * 1024;

#[repr(C, packed(4))]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct IstStacks([[u8; IST_SIZE]; 3]);

static mut IST_STACKS: IstStacks = IstStacks([[0; IST_SIZE]; 3]);
static mut TSS: Tss = Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    iomap_base: core::mem::size_of::<Tss>() as u16,
};
static mut GDT: [u64; 5] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0, 0];

/// Load the GDT and TSS of the boot CPU.
pub fn init() {
    // SAFETY: runs once on the boot CPU with interrupts disabled; the statics are only
    // written here, and the descriptors built below describe memory that lives forever.
    unsafe {
        let stacks = &raw mut IST_STACKS;
        let tss = &raw mut TSS;
        for i in 0..3 {
            let top = (&raw mut (*stacks).0[i]) as u64 + IST_SIZE as u64;
            (*tss).ist[i] = top;
        }
        let base = tss as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let low = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        let gdt = &raw mut GDT;
        (*gdt)[3] = low;
        (*gdt)[4] = base >> 32;
        let ptr = crate::cpu::DescriptorTablePointer {
            limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
            base: gdt as u64,
        };
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {tmp:e}, {ds}",
            "mov ds, {tmp:e}",
            "mov es, {tmp:e}",
            "mov ss, {tmp:e}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = const KERNEL_CS as u64,
            ds = const KERNEL_DS as u32,
            tss = in(reg) TSS_SEL,
            tmp = out(reg) _,
        );
    }
}
