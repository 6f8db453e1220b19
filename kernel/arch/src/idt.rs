//! The interrupt descriptor table: all 256 vectors point at the entry stubs, each on an
//! IST stack (see [`crate::entry`]).

use crate::gdt::{IST_DOUBLE_FAULT, IST_NMI, IST_TRAP, KERNEL_CS};
use core::arch::asm;

/// Vectors used by the kernel.
pub mod vectors {
    pub const DIVIDE: u64 = 0;
    pub const DEBUG: u64 = 1;
    pub const NMI: u64 = 2;
    pub const BREAKPOINT: u64 = 3;
    pub const INVALID_OPCODE: u64 = 6;
    pub const DOUBLE_FAULT: u64 = 8;
    pub const GENERAL_PROTECTION: u64 = 13;
    pub const PAGE_FAULT: u64 = 14;
    pub const X87_FP: u64 = 16;
    pub const ALIGNMENT: u64 = 17;
    pub const MACHINE_CHECK: u64 = 18;
    pub const SIMD_FP: u64 = 19;
    /// First vector for device interrupts routed through the I/O APIC (IRQ n → 32 + n).
    pub const IRQ_BASE: u64 = 32;
    /// Vectors handed out to device interrupts by [`super::alloc_device_vector`]
    /// (MSI-X, and GSIs outside the ISA range): past the ISA IRQs, below the timer.
    pub const DEVICE_FIRST: u64 = 0x40;
    pub const DEVICE_LAST: u64 = 0xEF;
    pub const TIMER: u64 = 0xF0;
    pub const SPURIOUS: u64 = 0xFF;
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

static mut IDT: [Gate; 256] = [Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; 256];

/// Fill and load the IDT. Every gate is an interrupt gate (IF cleared on entry).
pub fn init() {
    // SAFETY: runs once per CPU during boot with interrupts disabled; the table is
    // static, so the pointer stays valid after `lidt`.
    unsafe {
        let idt = &raw mut IDT;
        for v in 0..256usize {
            let addr = crate::entry::trap_stub_address(v);
            let ist = match v as u64 {
                vectors::DOUBLE_FAULT => IST_DOUBLE_FAULT,
                vectors::NMI | vectors::MACHINE_CHECK => IST_NMI,
                _ => IST_TRAP,
            };
            (*idt)[v] = Gate {
                offset_low: addr as u16,
                selector: KERNEL_CS,
                ist,
                type_attr: 0x8E,
                offset_mid: (addr >> 16) as u16,
                offset_high: (addr >> 32) as u32,
                reserved: 0,
            };
        }
        let ptr = crate::cpu::DescriptorTablePointer {
            limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
            base: idt as u64,
        };
        asm!("lidt [{}]", in(reg) &ptr, options(nostack, readonly, preserves_flags));
    }
}

static NEXT_DEVICE_VECTOR: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(vectors::DEVICE_FIRST);

/// A vector no other device uses, from [`vectors::DEVICE_FIRST`]..=[`vectors::DEVICE_LAST`];
/// `None` once they are all taken. Vectors are never returned.
pub fn alloc_device_vector() -> Option<u8> {
    use core::sync::atomic::Ordering;
    NEXT_DEVICE_VECTOR
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v <= vectors::DEVICE_LAST).then_some(v + 1)
        })
        .ok()
        .map(|v| v as u8)
}

/// A human name for an exception vector.
pub fn exception_name(v: u64) -> &'static str {
    match v {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point exception",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point exception",
        20 => "virtualization exception",
        21 => "control protection exception",
        _ => "interrupt",
    }
}
