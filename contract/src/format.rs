//! The contract's text forms of values that JSON has no type for: dates and times, and binary
//! data (base64). The JSON encoder ([`crate::json`]) and anything that prints a value use these.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::Value;

/// The contract's text form of a DATE, DATETIME, TIMESTAMP or TIME value; empty for others.
///
/// DATE `2024-01-31`, DATETIME `2024-01-31T12:00:00.250` (the column's fractional digits),
/// TIMESTAMP in UTC with a `Z`, TIME as a signed duration `-838:59:59`.
pub fn temporal(value: &Value) -> String {
    let mut out = String::with_capacity(32);
    match *value {
        Value::Date { year, month, day } => {
            let _ = write!(out, "{year:04}-{month:02}-{day:02}");
        }
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp,
        } => {
            let _ = write!(
                out,
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
            );
            push_fraction(&mut out, micros, fsp);
        }
        Value::Timestamp { secs, micros, fsp } => {
            let days = secs.div_euclid(86_400);
            let rem = secs.rem_euclid(86_400);
            let (year, month, day) = civil_from_days(days);
            let _ = write!(
                out,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                rem / 3600,
                rem / 60 % 60,
                rem % 60
            );
            push_fraction(&mut out, micros, fsp);
            out.push('Z');
        }
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        } => {
            if negative {
                out.push('-');
            }
            let _ = write!(out, "{hours:02}:{minutes:02}:{seconds:02}");
            push_fraction(&mut out, micros, fsp);
        }
        _ => {}
    }
    out
}

/// `fsp` digits (at most 6) of the microseconds, after a dot; nothing when `fsp` is 0.
fn push_fraction(out: &mut String, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    let fsp = fsp.min(6) as usize;
    let digits = format!("{micros:06}");
    out.push('.');
    out.push_str(&digits[..fsp]);
}

/// Days since 1970-01-01 to a proleptic Gregorian `(year, month, day)` (Howard Hinnant's
/// algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date: the inverse of [`civil_from_days`]
/// (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Standard base64 with padding, as the contract publishes binary columns.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [
            -719_468, -1, 0, 1, 59, 365, 11_016, 19_753, 24_855, 2_932_896,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn temporal_forms() {
        let dt = Value::DateTime {
            year: 2024,
            month: 1,
            day: 31,
            hour: 12,
            minute: 0,
            second: 0,
            micros: 250_000,
            fsp: 3,
        };
        assert_eq!(temporal(&dt), "2024-01-31T12:00:00.250");
        let ts = Value::Timestamp {
            secs: 1_706_702_400,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(temporal(&ts), "2024-01-31T12:00:00Z");
        let t = Value::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(temporal(&t), "-838:59:59");
        let t = Value::Time {
            negative: false,
            hours: 1,
            minutes: 2,
            seconds: 3,
            micros: 5,
            fsp: 6,
        };
        assert_eq!(temporal(&t), "01:02:03.000005");
        assert_eq!(
            temporal(&Value::Date {
                year: 1,
                month: 2,
                day: 3
            }),
            "0001-02-03"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(base64(&[0xDE, 0xAD, 0xBE, 0xEF, 0x00]), "3q2+7wA=");
    }
}
