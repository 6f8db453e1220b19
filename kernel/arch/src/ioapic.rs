//! The I/O APICs: the first at its conventional address 0xFEC00000 (GSIs 0–23, the ISA
//! IRQs among them), and on QEMU's microvm with ACPI a second at 0xFEC10000 serving GSIs
//! 24–47 (where the virtio-mmio transports' interrupts land). [`route`] sends a legacy
//! IRQ (the serial line's IRQ 4) to a vector; [`route_gsi`] any GSI either I/O APIC
//! serves. The 8259 PICs are masked.

use crate::cpu::{self, outb};
use crate::layout::phys_to_virt;
use spin::Mutex;

/// The I/O APICs Skiff knows how to find without ACPI tables: address and first GSI.
/// The first is architectural; the second is QEMU microvm's (`ioapic2`, on with ACPI).
const KNOWN: [(u64, u32); 2] = [(0xFEC0_0000, 0), (0xFEC1_0000, 24)];

const REG_VERSION: u32 = 0x01;
const REDIR_LEVEL: u32 = 1 << 15;
const REDIR_MASKED: u32 = 1 << 16;

/// Serialises the select/window register pairs.
static LOCK: Mutex<()> = Mutex::new(());

fn write(base_phys: u64, reg: u32, v: u32) {
    let base = phys_to_virt(base_phys);
    // SAFETY: `base_phys` is one of the `KNOWN` I/O APIC addresses (MMIO, never RAM),
    // reached through the direct map (mapped at boot for the first 4 GiB); the caller
    // holds `LOCK`, so the select/window pair is not interleaved.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, reg);
        core::ptr::write_volatile((base + 0x10) as *mut u32, v);
    }
}

fn read(base_phys: u64, reg: u32) -> u32 {
    let base = phys_to_virt(base_phys);
    // SAFETY: as for `write`.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, reg);
        core::ptr::read_volatile((base + 0x10) as *const u32)
    }
}

/// How a GSI signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered, active high (ISA IRQs, MSI-like pulses).
    Edge,
    /// Level-triggered, active high (the line stays up until the device is acknowledged).
    Level,
}

/// The I/O APIC serving `gsi`: (address, first GSI). An absent I/O APIC's version
/// register reads as all zeros or all ones.
fn find(gsi: u32) -> Option<(u64, u32)> {
    KNOWN.iter().copied().find(|&(phys, base)| {
        let ver = read(phys, REG_VERSION);
        if ver == 0 || ver == u32::MAX {
            return false;
        }
        let pins = ((ver >> 16) & 0xff) + 1;
        (base..base + pins).contains(&gsi)
    })
}

/// Whether some I/O APIC serves `gsi`.
pub fn has_gsi(gsi: u32) -> bool {
    cpu::without_interrupts(|| {
        let _g = LOCK.lock();
        find(gsi).is_some()
    })
}

/// Mask the legacy PICs so only the APICs deliver interrupts.
pub fn mask_legacy_pic() {
    outb(0x21, 0xff);
    outb(0xA1, 0xff);
}

/// Route ISA `irq` (edge-triggered, active high) to `vector` on APIC `dest`.
pub fn route(irq: u8, vector: u8, dest: u32) {
    route_gsi(irq as u32, vector, dest, Trigger::Edge);
}

/// Route `gsi` to `vector` on APIC `dest` and unmask it; `false` if no I/O APIC serves
/// that GSI.
pub fn route_gsi(gsi: u32, vector: u8, dest: u32, trigger: Trigger) -> bool {
    cpu::without_interrupts(|| {
        let _g = LOCK.lock();
        let Some((phys, base)) = find(gsi) else {
            return false;
        };
        let index = 0x10 + 2 * (gsi - base);
        let low = vector as u32
            | match trigger {
                Trigger::Edge => 0,
                Trigger::Level => REDIR_LEVEL,
            };
        // Masked while the destination changes, then the vector and trigger mode.
        write(phys, index, REDIR_MASKED);
        write(phys, index + 1, dest << 24);
        write(phys, index, low);
        true
    })
}

/// Mask `gsi` (no effect if no I/O APIC serves it).
pub fn mask(gsi: u32) {
    cpu::without_interrupts(|| {
        let _g = LOCK.lock();
        if let Some((phys, base)) = find(gsi) {
            let index = 0x10 + 2 * (gsi - base);
            let low = read(phys, index);
            write(phys, index, low | REDIR_MASKED);
        }
    })
}
