//! FAT timestamps. FAT stores local date and time without a zone; Skiff treats them as
//! UTC (there is no time zone in the guest). Modification times have 2-second
//! resolution, creation times 10 ms, access times one day; the representable range is
//! 1980-01-01 to 2107-12-31 and times outside it are clamped.

use skiff_fs::Timespec;

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// First second FAT can store (1980-01-01 00:00:00).
pub fn min_secs() -> i64 {
    days_from_civil(1980, 1, 1) * SECS_PER_DAY
}

/// Last second FAT can store (2107-12-31 23:59:59).
pub fn max_secs() -> i64 {
    days_from_civil(2107, 12, 31) * SECS_PER_DAY + SECS_PER_DAY - 1
}

/// A broken-down UTC time within FAT's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: u16,
    pub month: u16,
    pub day: u16,
    pub hour: u16,
    pub min: u16,
    pub sec: u16,
    pub millis: u16,
}

impl Civil {
    /// `t` clamped to FAT's range.
    pub fn from_timespec(t: Timespec) -> Civil {
        let (sec, nsec) = if t.sec < min_secs() {
            (min_secs(), 0)
        } else if t.sec > max_secs() {
            (max_secs(), 999_999_999)
        } else {
            (t.sec, t.nsec.clamp(0, 999_999_999))
        };
        let days = sec.div_euclid(SECS_PER_DAY);
        let rem = sec.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year: year as u16,
            month: month as u16,
            day: day as u16,
            hour: (rem / 3600) as u16,
            min: (rem / 60 % 60) as u16,
            sec: (rem % 60) as u16,
            millis: (nsec / 1_000_000) as u16,
        }
    }

    /// DOS date: bits 15-9 year since 1980, 8-5 month, 4-0 day.
    pub fn dos_date(&self) -> u16 {
        ((self.year - 1980) << 9) | (self.month << 5) | self.day
    }

    /// DOS time: bits 15-11 hour, 10-5 minute, 4-0 seconds / 2.
    pub fn dos_time(&self) -> u16 {
        (self.hour << 11) | (self.min << 5) | (self.sec / 2)
    }

    /// The creation-time hundredths byte: the odd second and the centiseconds.
    pub fn dos_centis(&self) -> u8 {
        ((self.sec % 2) * 100 + self.millis / 10) as u8
    }
}

/// A DOS date, time and hundredths (creation times) as a Unix time. Out-of-range
/// fields are clamped; date 0 (never set) is 1980-01-01.
pub fn from_dos(date: u16, time: u16, centis: u8) -> Timespec {
    let year = 1980 + (date >> 9) as i64;
    let month = ((date >> 5) & 0xf).clamp(1, 12) as u32;
    let day = (date & 0x1f).max(1) as u32;
    let hour = (time >> 11).min(23) as i64;
    let min = ((time >> 5) & 0x3f).min(59) as i64;
    let centis = centis.min(199) as i64;
    let sec = ((time & 0x1f) * 2).min(58) as i64 + centis / 100;
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + min * 60 + sec;
    Timespec::new(secs, (centis % 100) * 10_000_000)
}

/// `t` as FAT stores a modification time: clamped and rounded down to 2 seconds.
pub fn truncate_mtime(t: Timespec) -> Timespec {
    let c = Civil::from_timespec(t);
    from_dos(c.dos_date(), c.dos_time(), 0)
}

/// `t` as FAT stores an access time: clamped and rounded down to the day.
pub fn truncate_atime(t: Timespec) -> Timespec {
    from_dos(Civil::from_timespec(t).dos_date(), 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        // 2024-02-29 13:37:42 UTC
        let t = Timespec::new(1_709_213_862, 250_000_000);
        let c = Civil::from_timespec(t);
        assert_eq!((c.year, c.month, c.day), (2024, 2, 29));
        assert_eq!((c.hour, c.min, c.sec, c.millis), (13, 37, 42, 250));
        assert_eq!(from_dos(c.dos_date(), c.dos_time(), c.dos_centis()), t);
        assert_eq!(truncate_mtime(t), Timespec::new(1_709_213_862, 0));
        assert_eq!(
            truncate_mtime(Timespec::new(1_709_213_863, 5)),
            Timespec::new(1_709_213_862, 0)
        );
        assert_eq!(truncate_atime(t), Timespec::new(1_709_164_800, 0));
    }

    #[test]
    fn clamps() {
        assert_eq!(min_secs(), 315_532_800);
        let c = Civil::from_timespec(Timespec::new(0, 0));
        assert_eq!((c.year, c.month, c.day), (1980, 1, 1));
        let c = Civil::from_timespec(Timespec::new(i64::MAX / 2, 0));
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.min, c.sec),
            (2107, 12, 31, 23, 59, 59)
        );
        assert_eq!(from_dos(0, 0, 0), Timespec::new(315_532_800, 0));
    }

    #[test]
    fn civil_days_agree() {
        for days in (-1000..60_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
