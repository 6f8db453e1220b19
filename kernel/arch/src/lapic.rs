//! The local APIC (xAPIC, memory-mapped) and its one-shot timer.

use crate::cpu::{rdmsr, MSR_APIC_BASE};
use crate::layout::phys_to_virt;
use core::sync::atomic::{AtomicU64, Ordering};

const REG_ID: u64 = 0x20;
const REG_EOI: u64 = 0xB0;
const REG_SVR: u64 = 0xF0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;

static BASE: AtomicU64 = AtomicU64::new(0);
/// Timer ticks per 2^32 nanoseconds (fixed point), set by calibration.
static TICKS_PER_NS_FP32: AtomicU64 = AtomicU64::new(1 << 32);

fn reg(off: u64) -> *mut u32 {
    (BASE.load(Ordering::Relaxed) + off) as *mut u32
}

fn write(off: u64, v: u32) {
    // SAFETY: `BASE` is the direct-map address of this CPU's APIC page (set by `init`),
    // and `off` is an architectural register offset.
    unsafe { core::ptr::write_volatile(reg(off), v) }
}

fn read(off: u64) -> u32 {
    // SAFETY: as for `write`.
    unsafe { core::ptr::read_volatile(reg(off)) }
}

/// Enable the APIC with the spurious vector and a masked timer.
pub fn init() {
    let phys = rdmsr(MSR_APIC_BASE) & 0xFFFF_F000;
    BASE.store(phys_to_virt(phys), Ordering::Relaxed);
    write(REG_SVR, 0x100 | crate::idt::vectors::SPURIOUS as u32);
    write(REG_TIMER_DIVIDE, 0xB); // divide by 1
    write(
        REG_LVT_TIMER,
        LVT_MASKED | crate::idt::vectors::TIMER as u32,
    );
}

pub fn id() -> u32 {
    read(REG_ID) >> 24
}

pub fn eoi() {
    write(REG_EOI, 0);
}

/// Start the timer counting down from its maximum, masked, so that its rate can be
/// measured against a reference clock (see [`finish_calibration`]).
pub fn start_calibration() {
    write(
        REG_LVT_TIMER,
        LVT_MASKED | crate::idt::vectors::TIMER as u32,
    );
    write(REG_TIMER_INIT, u32::MAX);
}

/// The timer's count during a measurement started by [`start_calibration`]; it counts
/// down.
pub fn calibration_count() -> u32 {
    read(REG_TIMER_CURRENT)
}

/// Stop the measurement started by [`start_calibration`]: the timer counted `ticks` in
/// `elapsed_ns`.
pub fn finish_calibration(ticks: u64, elapsed_ns: u64) {
    write(REG_TIMER_INIT, 0);
    if elapsed_ns > 0 && ticks > 0 {
        TICKS_PER_NS_FP32.store(
            (((ticks as u128) << 32) / elapsed_ns as u128) as u64,
            Ordering::Relaxed,
        );
    }
}

/// Measure the timer's rate against the TSC (whose rate `time` already knows).
pub fn calibrate(tsc_hz: u64) {
    write(
        REG_LVT_TIMER,
        LVT_MASKED | crate::idt::vectors::TIMER as u32,
    );
    write(REG_TIMER_INIT, u32::MAX);
    let t0 = crate::cpu::rdtsc();
    let wait = tsc_hz / 1000; // 1 ms
    while crate::cpu::rdtsc().wrapping_sub(t0) < wait {
        core::hint::spin_loop();
    }
    let current = read(REG_TIMER_CURRENT);
    let t1 = crate::cpu::rdtsc();
    write(REG_TIMER_INIT, 0);
    let ticks = (u32::MAX - current) as u128;
    let ns = ((t1 - t0) as u128 * 1_000_000_000) / tsc_hz as u128;
    if ns > 0 && ticks > 0 {
        TICKS_PER_NS_FP32.store(((ticks << 32) / ns) as u64, Ordering::Relaxed);
    }
}

/// Timer ticks per second, as calibrated.
pub fn timer_hz() -> u64 {
    ((TICKS_PER_NS_FP32.load(Ordering::Relaxed) as u128 * 1_000_000_000) >> 32) as u64
}

/// Fire the timer interrupt once, `ns` nanoseconds from now (clamped to what the
/// 32-bit counter can express; the caller re-arms if the deadline is further).
pub fn arm_oneshot_ns(ns: u64) {
    let ticks = ((ns as u128 * TICKS_PER_NS_FP32.load(Ordering::Relaxed) as u128) >> 32)
        .clamp(1, u32::MAX as u128);
    write(REG_LVT_TIMER, crate::idt::vectors::TIMER as u32);
    write(REG_TIMER_INIT, ticks as u32);
}

/// Cancel a pending one-shot timer interrupt.
pub fn stop_timer() {
    write(REG_TIMER_INIT, 0);
}
