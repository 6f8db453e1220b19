//! The kernel's clocks: a monotonic clock from the TSC and the wall clock as an offset
//! from it, both kept in step with the CMOS RTC while the kernel runs.
//!
//! At boot the TSC's rate comes from 2 ms of PIT time (good to a few hundred ppm under
//! emulation) and the wall clock from the RTC, whose reading is whole seconds (so up to
//! 1 s behind). Left alone that lost about a second an hour, plus the boot error: enough
//! for clients that compare their clock with a server's (redis's EXPIREAT tests do). So
//! the RTC's once-a-second update interrupt disciplines both ([`on_rtc_update`]): the
//! first update puts the wall clock on the second's edge, and later ones measure the TSC
//! rate over an ever longer span, each correction re-anchoring the clock so it stays
//! continuous and monotonic.

use core::sync::atomic::{fence, AtomicBool, AtomicI64, AtomicU64, Ordering};

/// The monotonic clock's parameters: `monotonic_ns = BASE_NS + (tsc - BASE_TSC) *
/// NS_PER_TICK_FP32 >> 32`, changed together under the sequence count `CLOCK_SEQ` (odd
/// while a change is under way; readers retry).
static CLOCK_SEQ: AtomicU64 = AtomicU64::new(0);
static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static BASE_NS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick as a 32.32 fixed-point number.
static NS_PER_TICK_FP32: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// The wall clock minus the monotonic clock, in nanoseconds.
static REALTIME_OFFSET_NS: AtomicI64 = AtomicI64::new(0);
/// The program set the wall clock: the RTC no longer moves it (its rate still improves).
static REALTIME_SET_BY_PROGRAM: AtomicBool = AtomicBool::new(false);

/// Set up the monotonic clock: `tsc_at_boot` is time zero.
pub fn init(tsc_at_boot: u64, tsc_hz: u64) {
    write_params(tsc_at_boot, 0, tsc_hz);
}

fn ns_per_tick_fp32(tsc_hz: u64) -> u64 {
    ((1_000_000_000u128 << 32) / tsc_hz.max(1) as u128) as u64
}

/// The only writer of the clock parameters; runs with interrupts off (boot, and the RTC
/// interrupt), so it never races itself on one CPU.
fn write_params(base_tsc: u64, base_ns: u64, tsc_hz: u64) {
    CLOCK_SEQ.fetch_add(1, Ordering::Relaxed);
    fence(Ordering::Release);
    BASE_TSC.store(base_tsc, Ordering::Relaxed);
    BASE_NS.store(base_ns, Ordering::Relaxed);
    NS_PER_TICK_FP32.store(ns_per_tick_fp32(tsc_hz), Ordering::Relaxed);
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    CLOCK_SEQ.fetch_add(1, Ordering::Release);
}

/// (BASE_TSC, BASE_NS, NS_PER_TICK_FP32), read consistently.
fn read_params() -> (u64, u64, u64) {
    loop {
        let before = CLOCK_SEQ.load(Ordering::Acquire);
        if before & 1 == 0 {
            let params = (
                BASE_TSC.load(Ordering::Relaxed),
                BASE_NS.load(Ordering::Relaxed),
                NS_PER_TICK_FP32.load(Ordering::Relaxed),
            );
            fence(Ordering::Acquire);
            if CLOCK_SEQ.load(Ordering::Relaxed) == before {
                return params;
            }
        }
        core::hint::spin_loop();
    }
}

fn monotonic_at(tsc: u64, (base_tsc, base_ns, ns_per_tick): (u64, u64, u64)) -> u64 {
    // A TSC read just before a re-anchoring can be a little older than the new base.
    let ticks = tsc.saturating_sub(base_tsc);
    base_ns + ((ticks as u128 * ns_per_tick as u128) >> 32) as u64
}

/// Set the wall clock: `unix_ns` is the time now. `by_program` is true for
/// settimeofday and clock_settime, after which the RTC no longer moves the wall clock.
pub fn set_realtime_now(unix_ns: i64, by_program: bool) {
    if by_program {
        REALTIME_SET_BY_PROGRAM.store(true, Ordering::Relaxed);
    }
    REALTIME_OFFSET_NS.store(unix_ns - monotonic_ns() as i64, Ordering::Relaxed);
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since the kernel's first 64-bit instruction.
pub fn monotonic_ns() -> u64 {
    monotonic_at(crate::cpu::rdtsc(), read_params())
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> i64 {
    REALTIME_OFFSET_NS.load(Ordering::Relaxed) + monotonic_ns() as i64
}

/// What the RTC discipline keeps between updates: only the interrupt handler uses it.
static DISCIPLINE: spin::Mutex<Discipline> = spin::Mutex::new(Discipline::new());

/// The RTC has just turned to `rtc_secs` (seconds since the epoch); `tsc` was read in
/// its interrupt. Called with interrupts off. Returns what changed.
pub fn on_rtc_update(tsc: u64, rtc_secs: i64) -> Correction {
    let params = read_params();
    let now_ns = monotonic_at(tsc, params);
    let realtime = REALTIME_OFFSET_NS.load(Ordering::Relaxed) + now_ns as i64;
    let correction = DISCIPLINE.lock().update(tsc, rtc_secs, realtime, tsc_hz());
    if let Some(hz) = correction.tsc_hz {
        // Re-anchor at this instant: the clock goes on from where it is, at the new rate.
        write_params(tsc, now_ns, hz);
    }
    // A step does not re-aim timerfds armed at an absolute wall time (settimeofday does,
    // but their lock is not one an interrupt may take): they stay on the monotonic
    // deadline computed when armed. The first step comes within a second of boot, later
    // ones only when the host's clock jumps.
    match correction.step_realtime_ns {
        Some(step) if !REALTIME_SET_BY_PROGRAM.load(Ordering::Relaxed) => {
            REALTIME_OFFSET_NS.fetch_add(step, Ordering::Relaxed);
            correction
        }
        _ => Correction {
            step_realtime_ns: None,
            ..correction
        },
    }
}

/// How the clocks should change after an RTC update.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Correction {
    /// The TSC's rate as measured against the RTC.
    pub tsc_hz: Option<u64>,
    /// Add this to the wall clock.
    pub step_realtime_ns: Option<i64>,
}

/// The wall clock is stepped when it is this far from the RTC's second edge. Smaller
/// errors are left to the rate correction: an update interrupt can arrive a few
/// milliseconds late on a busy host, and stepping on that noise would jitter the clock.
const STEP_THRESHOLD_NS: i64 = 20_000_000;
/// The first rate measurement spans this many seconds; each later one twice the last,
/// so its error (the interrupt's lateness over the span) keeps shrinking.
const FIRST_RATE_SPAN_S: i64 = 8;
/// When the RTC and the TSC disagree about the time since the reference update by more
/// than this, something stepped (the host's clock, a paused VM): measure afresh.
const RESYNC_DISAGREEMENT_NS: i64 = 2_000_000_000;
const NSEC: i64 = 1_000_000_000;

/// The RTC discipline's state, pure so the host can test it.
#[derive(Debug)]
pub struct Discipline {
    /// The update the rate is measured from: (TSC, RTC seconds).
    reference: Option<(u64, i64)>,
    next_span_s: i64,
}

impl Discipline {
    pub const fn new() -> Self {
        Discipline {
            reference: None,
            next_span_s: FIRST_RATE_SPAN_S,
        }
    }

    /// An update to `rtc_secs` seen at `tsc`, when the wall clock read `realtime_ns` and
    /// the TSC was taken to run at `tsc_hz`.
    pub fn update(&mut self, tsc: u64, rtc_secs: i64, realtime_ns: i64, tsc_hz: u64) -> Correction {
        let error = rtc_secs * NSEC - realtime_ns;
        let Some((ref_tsc, ref_secs)) = self.reference else {
            return self.restart(tsc, rtc_secs, error);
        };
        let span_s = rtc_secs - ref_secs;
        let ticks = tsc.wrapping_sub(ref_tsc);
        let tsc_span_ns = (ticks as u128 * NSEC as u128 / tsc_hz.max(1) as u128) as i64;
        if span_s <= 0 || (span_s * NSEC - tsc_span_ns).abs() > RESYNC_DISAGREEMENT_NS {
            return self.restart(tsc, rtc_secs, error);
        }
        let mut correction = Correction::default();
        if span_s >= self.next_span_s {
            let hz = (ticks as u128 / span_s as u128) as u64;
            if hz > 0 {
                correction.tsc_hz = Some(hz);
            }
            self.next_span_s = span_s.saturating_mul(2);
        }
        if error.abs() >= STEP_THRESHOLD_NS {
            correction.step_realtime_ns = Some(error);
        }
        correction
    }

    fn restart(&mut self, tsc: u64, rtc_secs: i64, error: i64) -> Correction {
        self.reference = Some((tsc, rtc_secs));
        self.next_span_s = FIRST_RATE_SPAN_S;
        Correction {
            tsc_hz: None,
            // The first edge seen: the wall clock moves onto it, however small the error.
            step_realtime_ns: (error != 0).then_some(error),
        }
    }
}

impl Default for Discipline {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const HZ: u64 = 2_000_000_000;

    #[test]
    fn first_update_moves_the_wall_clock_onto_the_edge() {
        let mut d = Discipline::new();
        // Booted reading 100 s; the RTC turns to 101 when the clock says 100.4 s.
        let c = d.update(1_000, 101, 100 * NSEC + 400_000_000, HZ);
        assert_eq!(c.step_realtime_ns, Some(600_000_000));
        assert_eq!(c.tsc_hz, None);
    }

    #[test]
    fn rate_is_measured_over_doubling_spans() {
        let mut d = Discipline::new();
        let true_hz: u64 = 2_001_000_000; // the boot calibration said 2.000 GHz
        d.update(0, 1000, 1000 * NSEC, HZ);
        let mut measured = vec![];
        for s in 1..=40i64 {
            let c = d.update(true_hz * s as u64, 1000 + s, 1000 * NSEC + s * NSEC, HZ);
            if let Some(hz) = c.tsc_hz {
                measured.push((s, hz));
            }
        }
        assert_eq!(measured, vec![(8, true_hz), (16, true_hz), (32, true_hz)]);
    }

    #[test]
    fn a_late_interrupt_costs_little_rate_and_no_step() {
        let mut d = Discipline::new();
        d.update(0, 1000, 1000 * NSEC, HZ);
        // 5 ms late at the 8 s measurement: the rate is off by 5 ms / 8 s.
        let late = HZ / 200;
        let c = d.update(8 * HZ + late, 1008, 1008 * NSEC - 5_000_000, HZ);
        let hz = c.tsc_hz.unwrap();
        assert_eq!(hz, HZ + late / 8);
        assert_eq!(c.step_realtime_ns, None);
    }

    #[test]
    fn a_large_error_steps_the_wall_clock() {
        let mut d = Discipline::new();
        d.update(0, 1000, 1000 * NSEC, HZ);
        let c = d.update(3 * HZ, 1003, 1003 * NSEC - 50_000_000, HZ);
        assert_eq!(c.step_realtime_ns, Some(50_000_000));
    }

    #[test]
    fn a_jump_of_the_rtc_starts_the_measurement_afresh() {
        let mut d = Discipline::new();
        d.update(0, 1000, 1000 * NSEC, HZ);
        // The host's clock jumped an hour ahead after 5 s: no rate from that.
        let c = d.update(5 * HZ, 4605, 1005 * NSEC, HZ);
        assert_eq!(c.tsc_hz, None);
        assert_eq!(c.step_realtime_ns, Some(3600 * NSEC));
        // The next rate comes 8 s after the jump, not from before it.
        for s in 1..8 {
            let c = d.update((5 + s) * HZ, 4605 + s as i64, (4605 + s as i64) * NSEC, HZ);
            assert_eq!(c.tsc_hz, None);
        }
        let c = d.update(13 * HZ, 4613, 4613 * NSEC, HZ);
        assert_eq!(c.tsc_hz, Some(HZ));
        // And a clock going backwards also starts afresh.
        let c = d.update(14 * HZ, 4000, 4614 * NSEC, HZ);
        assert_eq!(c.tsc_hz, None);
        assert_eq!(c.step_realtime_ns, Some(-614 * NSEC));
    }
}
