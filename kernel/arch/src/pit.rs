//! The 8254 PIT, used once at boot as the reference clock to measure the TSC.

use crate::cpu::{inb, outb, rdtsc};

const PIT_HZ: u64 = 1_193_182;

fn read_counter() -> u16 {
    outb(0x43, 0x00); // latch channel 0
    let lo = inb(0x40) as u16;
    let hi = inb(0x40) as u16;
    hi << 8 | lo
}

/// Measure the TSC frequency over `ms` milliseconds of PIT time, and the local APIC
/// timer's rate in the same window. `None` when no PIT counts (the machine has none).
pub fn measure_tsc_hz(ms: u64) -> Option<u64> {
    // Channel 0, lobyte/hibyte, mode 2 (rate generator), reload 0 (= 65536). The IRQ is
    // masked at the PIC and not routed at the I/O APIC, so it never interrupts.
    outb(0x43, 0x34);
    outb(0x40, 0);
    outb(0x40, 0);
    let target = PIT_HZ * ms / 1000;
    let mut last = read_counter();
    crate::lapic::start_calibration();
    let start_tsc = rdtsc();
    let mut elapsed: u64 = 0;
    let mut spins: u64 = 0;
    while elapsed < target {
        let now = read_counter();
        elapsed += last.wrapping_sub(now) as u64;
        last = now;
        spins += 1;
        if spins > 50_000_000 {
            return None;
        }
    }
    let tsc = rdtsc() - start_tsc;
    crate::lapic::finish_calibration(elapsed * 1_000_000_000 / PIT_HZ);
    Some(((tsc as u128 * PIT_HZ as u128) / elapsed as u128) as u64)
}
