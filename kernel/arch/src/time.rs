//! The kernel's clocks: a monotonic clock from the TSC (calibrated once at boot) and the
//! wall clock as the RTC's boot-time reading plus monotonic time since.

use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick as a 32.32 fixed-point number.
static NS_PER_TICK_FP32: AtomicU64 = AtomicU64::new(0);
static REALTIME_AT_BOOT_NS: AtomicI64 = AtomicI64::new(0);

/// Set up the monotonic clock: `tsc_at_boot` is time zero.
pub fn init(tsc_at_boot: u64, tsc_hz: u64) {
    TSC_AT_BOOT.store(tsc_at_boot, Ordering::Relaxed);
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    NS_PER_TICK_FP32.store(
        ((1_000_000_000u128 << 32) / tsc_hz as u128) as u64,
        Ordering::Relaxed,
    );
}

/// Set the wall clock: `unix_ns` is the time now (boot, settimeofday, clock_settime).
pub fn set_realtime_now(unix_ns: i64) {
    REALTIME_AT_BOOT_NS.store(unix_ns - monotonic_ns() as i64, Ordering::Relaxed);
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Convert a TSC delta to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((ticks as u128 * NS_PER_TICK_FP32.load(Ordering::Relaxed) as u128) >> 32) as u64
}

/// Nanoseconds since the kernel's first 64-bit instruction.
pub fn monotonic_ns() -> u64 {
    ticks_to_ns(crate::cpu::rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed)))
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> i64 {
    REALTIME_AT_BOOT_NS.load(Ordering::Relaxed) + monotonic_ns() as i64
}
