//! The CMOS real-time clock: read at boot for the wall-clock time, then once a second
//! from its update interrupt to keep the clocks in step (see `time::on_rtc_update`).

use crate::cpu::{inb, outb};

fn cmos(reg: u8) -> u8 {
    outb(0x70, reg);
    inb(0x71)
}

fn updating() -> bool {
    cmos(0x0A) & 0x80 != 0
}

/// The RTC's ISA interrupt line.
pub const IRQ: u8 = 8;

const REG_B: u8 = 0x0B;
const REG_C: u8 = 0x0C;
/// Register B: interrupt when an update of the time registers ends.
const UPDATE_ENDED_INTERRUPT_ENABLE: u8 = 0x10;
/// Register C: an update ended since register C was last read.
const UPDATE_ENDED_FLAG: u8 = 0x10;

/// Ask for an interrupt after every update of the time registers (once a second).
pub fn enable_update_interrupt() {
    let b = cmos(REG_B);
    outb(0x70, REG_B);
    outb(0x71, b | UPDATE_ENDED_INTERRUPT_ENABLE);
    // Reading register C clears a pending flag, so the first interrupt is a fresh one.
    cmos(REG_C);
}

/// Acknowledge the RTC's interrupt; the time it turned to if it is an update's, read
/// while the registers are stable (an update just ended, the next is a second away).
pub fn on_interrupt() -> Option<i64> {
    if cmos(REG_C) & UPDATE_ENDED_FLAG == 0 {
        return None;
    }
    read_unix_time()
}

/// Seconds since the Unix epoch, or `None` if the RTC reads as garbage (no RTC).
pub fn read_unix_time() -> Option<i64> {
    let read_all = || {
        let mut spins = 0;
        while updating() && spins < 1_000_000 {
            spins += 1;
        }
        [
            cmos(0x00),
            cmos(0x02),
            cmos(0x04),
            cmos(0x07),
            cmos(0x08),
            cmos(0x09),
            cmos(0x32),
        ]
    };
    // Read until two consecutive reads agree, so an update mid-read cannot tear it.
    let mut a = read_all();
    for _ in 0..5 {
        let b = read_all();
        if a == b {
            break;
        }
        a = b;
    }
    let status_b = cmos(0x0B);
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| if bcd { (v & 0x0f) + (v >> 4) * 10 } else { v };
    let sec = conv(a[0]) as i64;
    let min = conv(a[1]) as i64;
    let mut hour_raw = a[2];
    let pm = hour_raw & 0x80 != 0;
    hour_raw &= 0x7f;
    let mut hour = conv(hour_raw) as i64;
    if status_b & 0x02 == 0 {
        // 12-hour mode
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = conv(a[3]) as i64;
    let month = conv(a[4]) as i64;
    let year_lo = conv(a[5]) as i64;
    let century = conv(a[6]) as i64;
    let year = if (19..=30).contains(&century) {
        century * 100 + year_lo
    } else {
        2000 + year_lo
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::days_from_civil;
    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(2026, 11, 26), 20783);
    }
}
