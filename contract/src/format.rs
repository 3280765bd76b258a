//! The contract's text forms of values that JSON has no type for: dates and times, and binary
//! data (base64). The JSON encoder ([`crate::json`]) and anything that prints a value use these.

use base64::Engine as _;

use crate::Value;

/// The contract's text form of a DATE, DATETIME, TIMESTAMP or TIME value; empty for others.
///
/// DATE `2024-01-31`, DATETIME `2024-01-31T12:00:00.250` (the column's fractional digits),
/// TIMESTAMP in UTC with a `Z`, TIME as a signed duration `-838:59:59`.
pub fn temporal(value: &Value) -> String {
    temporal_with(value, str::to_owned)
}

/// Calls `f` with the value's [`temporal`] text, built on the stack: the JSON encoder writes one
/// per date or time value, and formatting it through `core::fmt` into a fresh `String` cost
/// about 5% of the whole pipeline.
pub fn temporal_with<R>(value: &Value, f: impl FnOnce(&str) -> R) -> R {
    let mut out = Digits::default();
    match *value {
        Value::Date { year, month, day } => {
            out.date(i64::from(year), u32::from(month), u32::from(day));
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
            out.date(i64::from(year), u32::from(month), u32::from(day));
            out.push(b'T');
            out.clock(u32::from(hour), u32::from(minute), u32::from(second));
            out.fraction(micros, fsp);
        }
        Value::Timestamp { secs, micros, fsp } => {
            let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
            let rem = secs.rem_euclid(86_400);
            out.date(year, month, day);
            out.push(b'T');
            out.clock(
                (rem / 3600) as u32,
                (rem / 60 % 60) as u32,
                (rem % 60) as u32,
            );
            out.fraction(micros, fsp);
            out.push(b'Z');
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
                out.push(b'-');
            }
            out.clock(hours, u32::from(minutes), u32::from(seconds));
            out.fraction(micros, fsp);
        }
        _ => {}
    }
    f(out.as_str())
}

/// ASCII digits and separators on the stack. 64 bytes hold the longest text any value can
/// produce (a TIMESTAMP's year has at most 12 digits and a sign, about 36 bytes in all).
struct Digits {
    buf: [u8; 64],
    len: usize,
}

impl Default for Digits {
    fn default() -> Self {
        Digits {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl Digits {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `v` in decimal, zero-padded to `width` digits (as `{v:0width$}` prints it).
    fn num(&mut self, v: u64, width: usize) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(v).as_bytes();
        for _ in digits.len()..width {
            self.push(b'0');
        }
        for &d in digits {
            self.push(d);
        }
    }

    /// `YYYY-MM-DD`; a negative year (only a TIMESTAMP far before the epoch) is signed and
    /// four characters wide in all, as `{year:04}` prints it.
    fn date(&mut self, year: i64, month: u32, day: u32) {
        if year < 0 {
            self.push(b'-');
            self.num(year.unsigned_abs(), 3);
        } else {
            self.num(year.unsigned_abs(), 4);
        }
        self.push(b'-');
        self.num(u64::from(month), 2);
        self.push(b'-');
        self.num(u64::from(day), 2);
    }

    fn clock(&mut self, h: u32, m: u32, s: u32) {
        self.num(u64::from(h), 2);
        self.push(b':');
        self.num(u64::from(m), 2);
        self.push(b':');
        self.num(u64::from(s), 2);
    }

    /// `fsp` digits (at most 6) of the microseconds after a dot, nothing when `fsp` is 0: the
    /// first digits of the microseconds zero-padded to six (more than six digits, for a value
    /// over 999999, keep their leading ones).
    fn fraction(&mut self, micros: u32, fsp: u8) {
        if fsp > 0 {
            let mut d = Digits::default();
            d.num(u64::from(micros), 6);
            self.push(b'.');
            for &x in &d.buf[..usize::from(fsp.min(6))] {
                self.push(x);
            }
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators were pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
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
    use std::fmt::Write as _;

    /// [`temporal`] through `core::fmt`, as it was written before [`temporal_with`]: the reference
    /// the stack formatter must match byte for byte.
    fn temporal_slow(value: &Value) -> String {
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
    fn the_fast_temporal_text_matches_core_fmt() {
        let mut values = vec![];
        for (year, month, day) in [
            (0u16, 1u8, 1u8),
            (1, 2, 3),
            (999, 12, 31),
            (2024, 2, 29),
            (9999, 12, 31),
            (65535, 255, 255),
        ] {
            values.push(Value::Date { year, month, day });
            for (micros, fsp) in [
                (0, 0),
                (250_000, 3),
                (5, 6),
                (999_999, 6),
                (123_456, 9),
                (1_000_000, 3),
                (u32::MAX, 6),
            ] {
                values.push(Value::DateTime {
                    year,
                    month,
                    day,
                    hour: 23,
                    minute: 5,
                    second: 9,
                    micros,
                    fsp,
                });
                values.push(Value::Time {
                    negative: year % 2 == 0,
                    hours: u32::from(year) * 7,
                    minutes: month,
                    seconds: day,
                    micros,
                    fsp,
                });
            }
        }
        for secs in [
            i64::MIN / 2,
            -62_167_219_201,
            -1,
            0,
            1_706_702_400,
            4_294_967_295,
            i64::MAX / 2,
        ] {
            for (micros, fsp) in [(0, 0), (7, 1), (120_000, 2), (999_999, 6), (2_000_000, 6)] {
                values.push(Value::Timestamp { secs, micros, fsp });
            }
        }
        values.push(Value::Int(3));
        for v in &values {
            assert_eq!(temporal(v), temporal_slow(v), "{v:?}");
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
