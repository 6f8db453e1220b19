//! The I/O APIC at its conventional address, used to route legacy IRQs (the serial
//! line's IRQ 4) to vectors `IRQ_BASE + irq` on CPU 0. The 8259 PICs are masked.

use crate::cpu::outb;
use crate::layout::phys_to_virt;

const IOAPIC_PHYS: u64 = 0xFEC0_0000;

fn write(reg: u32, v: u32) {
    let base = phys_to_virt(IOAPIC_PHYS);
    // SAFETY: the I/O APIC's select/window registers at its fixed MMIO address, reached
    // through the direct map (mapped at boot for the first 4 GiB).
    unsafe {
        core::ptr::write_volatile(base as *mut u32, reg);
        core::ptr::write_volatile((base + 0x10) as *mut u32, v);
    }
}

/// Mask the legacy PICs so only the APICs deliver interrupts.
pub fn mask_legacy_pic() {
    outb(0x21, 0xff);
    outb(0xA1, 0xff);
}

/// Route ISA `irq` (edge-triggered, active high) to `vector` on APIC `dest`.
pub fn route(irq: u8, vector: u8, dest: u32) {
    let index = 0x10 + 2 * irq as u32;
    write(index + 1, dest << 24);
    write(index, vector as u32);
}
