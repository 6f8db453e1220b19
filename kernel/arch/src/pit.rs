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
    // Under QEMU's TCG, code runs only after it is translated, which takes tens of
    // microseconds the first time through. A gap that size between the last PIT read and
    // the TSC read made the TSC look 1% faster than it is (the wall clock lost 0.9 s a
    // minute). So a short pass through the same code comes first, unmeasured, and every
    // PIT sample is paired with a TSC read in the same loop body.
    count_pit_ticks(PIT_HZ / 10_000)?;
    let window = count_pit_ticks(PIT_HZ * ms / 1000)?;
    let tsc_hz = ((window.tsc_ticks as u128 * PIT_HZ as u128) / window.pit_ticks as u128) as u64;
    crate::lapic::finish_calibration(window.apic_ticks, window.pit_ticks * 1_000_000_000 / PIT_HZ);
    Some(tsc_hz)
}

/// What the TSC and the local APIC timer counted while the PIT counted `pit_ticks`.
struct Window {
    pit_ticks: u64,
    tsc_ticks: u64,
    apic_ticks: u64,
}

/// Spin until the PIT has counted at least `target` ticks, reading the TSC and the
/// local APIC timer right after each PIT sample; the window runs from the first sample
/// to the last.
fn count_pit_ticks(target: u64) -> Option<Window> {
    crate::lapic::start_calibration();
    let mut last = read_counter();
    let first_tsc = rdtsc();
    let first_apic = crate::lapic::calibration_count();
    let (mut last_tsc, mut last_apic) = (first_tsc, first_apic);
    let mut elapsed: u64 = 0;
    let mut spins: u64 = 0;
    while elapsed < target {
        let now = read_counter();
        last_tsc = rdtsc();
        last_apic = crate::lapic::calibration_count();
        elapsed += last.wrapping_sub(now) as u64;
        last = now;
        spins += 1;
        if spins > 50_000_000 {
            return None;
        }
    }
    Some(Window {
        pit_ticks: elapsed,
        tsc_ticks: last_tsc - first_tsc,
        apic_ticks: first_apic.wrapping_sub(last_apic) as u64,
    })
}
