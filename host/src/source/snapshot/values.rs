//! A snapshot row, read over the binary protocol, into the event's values: exactly the values
//! the binlog decoder (`source::decode`) gives for the same row.
//!
//! Design note: the session reads with prepared statements (the binary protocol, which keeps
//! FLOAT's exact `f32`; the text protocol rounds it, finding 10 of `docs/SNAPSHOT.md`), with
//! `character_set_results=NULL` (each result column's metadata then carries the column's own
//! collation id, and its bytes arrive as stored) and `time_zone='+00:00'` (TIMESTAMP arrives as
//! UTC calendar parts). Each value is mapped from the result column's wire type, flags, collation
//! id and `decimals`, never from `BINARY_FLAG`; the rules are §11's table:
//!
//! - integers keep the variant the UNSIGNED flag gave them; YEAR is `Int`; BIT is its bytes
//!   read big-endian; FLOAT and DOUBLE are bit-exact;
//! - DECIMAL is the server's text with ZEROFILL padding stripped to one digit before the point,
//!   which is what `decode_decimal` prints;
//! - character data (CHAR, VARCHAR, TEXT, ENUM and SET labels, MariaDB JSON, UUID and INET
//!   text) goes through the same strict [`Charset`] decoder as the binlog path, chosen by the
//!   collation id; id 63 (binary) gives bytes, and BINARY(n) arrives zero-padded as the decoder
//!   pads it. COMPRESSED columns arrive inflated;
//! - DATE, DATETIME and TIMESTAMP go through the decoder's own zero-date rules
//!   ([`decode::datetime`], [`decode::timestamp`]); TIMESTAMP's UTC parts become epoch seconds;
//!   TIME folds its days into the hours; the fraction's digits are the column's `decimals`;
//! - MySQL's JSON (wire type 245) arrives as the server's text and is parsed into
//!   `Value::Json`; GEOMETRY and VECTOR are bytes.

use std::sync::OnceLock;

use mysql_async::{Row, Value as MyValue};
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::packets::Column;

use super::error::SnapshotError;
use super::table::SnapshotTable;
use crate::event::Value;
use crate::source::charset::{Charset, Text};
use crate::source::decode::{self, DecodeError};
use crate::source::schema::SchemaError;

/// Why one value could not be converted; the caller adds the table and column.
enum Fail {
    /// Bytes that are not valid text in the column's character set.
    Text(Charset),
    /// A collation whose character set Sluice cannot decode.
    Unsupported(Charset),
    Invalid(String),
}

impl SnapshotTable {
    /// One row read with any of the SQL above (binary protocol, `exec_iter`), converted to the
    /// event's values in `meta.columns` order, exactly as the binlog decoder would give them.
    /// Extra trailing columns (the keyset's cursor expressions) are ignored.
    pub(crate) fn values(&self, row: Row) -> Result<Vec<Value>, SnapshotError> {
        let n = self.meta.columns.len();
        let columns = row.columns();
        if columns.len() < n {
            return Err(SnapshotError::InvalidValue {
                table: self.qualified_name(),
                column: "(the row)".into(),
                detail: format!("{} columns read, {n} expected", columns.len()),
            });
        }
        let mut out = Vec::with_capacity(n);
        for (i, (raw, col)) in row
            .unwrap_raw()
            .into_iter()
            .zip(columns.iter())
            .take(n)
            .enumerate()
        {
            let v = match raw {
                Some(v) => convert(v, col),
                None => Err(Fail::Invalid(
                    "the value was already taken from the row".into(),
                )),
            };
            out.push(v.map_err(|f| self.fail(i, f))?);
        }
        Ok(out)
    }

    fn fail(&self, column: usize, f: Fail) -> SnapshotError {
        let table = self.qualified_name();
        let column = self
            .meta
            .columns
            .get(column)
            .cloned()
            .unwrap_or_else(|| column.to_string());
        match f {
            Fail::Text(cs) => DecodeError::InvalidText {
                table,
                column,
                charset: cs.name(),
            }
            .into(),
            Fail::Unsupported(cs) => SchemaError::UnsupportedCharset {
                table,
                column,
                charset: cs.name(),
            }
            .into(),
            Fail::Invalid(detail) => SnapshotError::InvalidValue {
                table,
                column,
                detail,
            },
        }
    }
}

/// One binary-protocol value of a result column into the event's value.
fn convert(v: MyValue, col: &Column) -> Result<Value, Fail> {
    use ColumnType::*;
    let t = col.column_type();
    Ok(match (t, v) {
        (_, MyValue::NULL) => Value::Null,
        (MYSQL_TYPE_YEAR, MyValue::Int(y)) => Value::Int(y),
        (MYSQL_TYPE_YEAR, MyValue::UInt(y)) => Value::Int(y as i64),
        (t, v @ (MyValue::Int(_) | MyValue::UInt(_))) if is_integer(t) => {
            integer(&v, col.flags().contains(ColumnFlags::UNSIGNED_FLAG))
                .map_err(Fail::Invalid)?
        }
        (MYSQL_TYPE_FLOAT, MyValue::Float(f)) => Value::Float(f),
        (MYSQL_TYPE_DOUBLE, MyValue::Double(d)) => Value::Double(d),
        (MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL, MyValue::Bytes(b)) => {
            Value::Decimal(strip_zerofill(&b).map_err(Fail::Invalid)?)
        }
        (MYSQL_TYPE_BIT, MyValue::Bytes(b)) => {
            if b.len() > 8 {
                return Err(Fail::Invalid(format!("{} bytes in a BIT value", b.len())));
            }
            Value::UInt(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        }
        (MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE, MyValue::Date(year, month, day, ..)) => {
            if year == 0 || month == 0 || day == 0 {
                Value::Null
            } else {
                Value::Date { year, month, day }
            }
        }
        (MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            decode::datetime(y, mo, d, h, mi, s, us, fsp(col)?)
        }
        (MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            if y == 0 || mo == 0 || d == 0 {
                // The zero TIMESTAMP (the binary protocol sends it as an empty date).
                Value::Null
            } else {
                let days = sluice_contract::format::days_from_civil(i64::from(y), u32::from(mo), u32::from(d));
                let secs = days * 86_400
                    + i64::from(h) * 3600
                    + i64::from(mi) * 60
                    + i64::from(s);
                decode::timestamp(secs, us, fsp(col)?)
            }
        }
        (MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2, MyValue::Time(negative, days, h, mi, s, us)) => {
            Value::Time {
                negative,
                hours: days * 24 + u32::from(h),
                minutes: mi,
                seconds: s,
                micros: us,
                fsp: fsp(col)?,
            }
        }
        (MYSQL_TYPE_JSON, MyValue::Bytes(b)) => Value::Json(
            serde_json::from_slice(&b)
                .map_err(|e| Fail::Invalid(format!("the server's JSON text does not parse: {e}")))?,
        ),
        (MYSQL_TYPE_GEOMETRY | MYSQL_TYPE_VECTOR, MyValue::Bytes(b)) => Value::Bytes(b),
        (
            MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB,
            MyValue::Bytes(b),
        ) => text(b, charset(col.character_set()))?,
        (t, v) => {
            return Err(Fail::Invalid(format!(
                "unexpected {v:?} in a {t:?} result column (the snapshot reads with the binary protocol)"
            )))
        }
    })
}

/// An integer column's value in the variant its UNSIGNED flag gives. `mysql_common` reads
/// every value that fits an `i64` as `Int`, unsigned or not, and only larger ones as `UInt`.
pub(crate) fn integer(v: &MyValue, unsigned: bool) -> Result<Value, String> {
    match (v, unsigned) {
        (&MyValue::Int(i), false) => Ok(Value::Int(i)),
        (&MyValue::Int(i), true) => u64::try_from(i)
            .map(Value::UInt)
            .map_err(|_| format!("{i} in an UNSIGNED column")),
        (&MyValue::UInt(u), true) => Ok(Value::UInt(u)),
        (&MyValue::UInt(u), false) => i64::try_from(u)
            .map(Value::Int)
            .map_err(|_| format!("{u} in a signed column")),
        _ => Err(format!("{v:?} in an integer column")),
    }
}

/// TINYINT … BIGINT.
fn is_integer(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
    )
}

/// The fraction digits of a temporal column: its `decimals` (0..=6).
fn fsp(col: &Column) -> Result<u8, Fail> {
    match col.decimals() {
        d @ 0..=6 => Ok(d),
        d => Err(Fail::Invalid(format!(
            "fractional-seconds precision {d} in the result metadata"
        ))),
    }
}

/// Character data by the result column's collation: the binlog path's [`Charset`] decoder.
fn text(bytes: Vec<u8>, cs: Charset) -> Result<Value, Fail> {
    if !cs.is_supported() {
        return Err(Fail::Unsupported(cs));
    }
    if cs.is_binary() {
        return Ok(Value::Bytes(bytes));
    }
    // UTF-8 (the common case) takes the bytes without a copy; the validation is the same.
    if cs == Charset::UTF8MB4 || cs == utf8mb3() {
        return String::from_utf8(bytes)
            .map(Value::Text)
            .map_err(|_| Fail::Text(cs));
    }
    match cs.decode(&bytes) {
        Ok(Text::String(s)) => Ok(Value::Text(s)),
        Ok(Text::Bytes) => Ok(Value::Bytes(bytes)),
        Err(_) => Err(Fail::Text(cs)),
    }
}

/// A collation id's character set, resolved once per id for the process (the lookup by name
/// allocates, and this runs per value).
fn charset(id: u16) -> Charset {
    const KNOWN: u16 = 4096;
    static TABLE: OnceLock<Vec<Charset>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..KNOWN).map(Charset::from_collation_id).collect());
    table
        .get(usize::from(id))
        .copied()
        .unwrap_or_else(|| Charset::from_collation_id(id))
}

fn utf8mb3() -> Charset {
    static CS: OnceLock<Charset> = OnceLock::new();
    *CS.get_or_init(|| Charset::from_name(Some("utf8mb3")))
}

/// The server's DECIMAL text without ZEROFILL padding: leading zeros stripped down to one digit
/// before the point (`0000019.990` → `19.990`, `-0001.5` → `-1.5`), as `decode_decimal` prints.
pub(crate) fn strip_zerofill(b: &[u8]) -> Result<String, String> {
    let bad = || {
        format!(
            "DECIMAL text {:?} is not a decimal number",
            String::from_utf8_lossy(b)
        )
    };
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let int_len = digits
        .iter()
        .position(|&c| c == b'.')
        .unwrap_or(digits.len());
    let (int, frac) = digits.split_at(int_len);
    let frac_digits = frac.get(1..).unwrap_or_default();
    if !int.iter().all(u8::is_ascii_digit)
        || !frac_digits.iter().all(u8::is_ascii_digit)
        || (int.is_empty() && frac_digits.is_empty())
        || (!frac.is_empty() && frac_digits.is_empty())
    {
        return Err(bad());
    }
    let zeros = int.iter().take_while(|&&c| c == b'0').count();
    let int = if zeros == int.len() {
        &b"0"[..]
    } else {
        &int[zeros..]
    };
    let mut s = String::with_capacity(b.len());
    if negative {
        s.push('-');
    }
    // Only ASCII digits and the point remain.
    s.extend(int.iter().chain(frac).map(|&c| char::from(c)));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mysql_common::row::new_row;

    use super::super::table::tests::{col, table};
    use super::*;

    const LATIN1: u16 = 8;
    const UTF8MB4_GENERAL: u16 = 45;
    const UTF8MB4_BIN: u16 = 46;
    const CP1251: u16 = 51;
    const BINARY: u16 = 63;

    /// Converts one value of a result column built as the server describes it.
    fn one(column: Column, v: MyValue) -> Result<Value, SnapshotError> {
        let t = table(vec![col("c", "int")], vec![]);
        let mut out = t.values(new_row(vec![v], vec![column].into()))?;
        Ok(out.remove(0))
    }

    fn ok(column: Column, v: MyValue) -> Value {
        match one(column, v) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn c(t: ColumnType) -> Column {
        Column::new(t).with_character_set(BINARY)
    }

    fn unsigned(t: ColumnType) -> Column {
        c(t).with_flags(ColumnFlags::UNSIGNED_FLAG)
    }

    fn text_col(t: ColumnType, collation: u16) -> Column {
        Column::new(t).with_character_set(collation)
    }

    #[test]
    fn integers_keep_their_signedness() {
        use ColumnType::*;
        assert_eq!(ok(c(MYSQL_TYPE_TINY), MyValue::Int(-128)), Value::Int(-128));
        // mysql_common reads unsigned values that fit an i64 as Int: the flag decides.
        assert_eq!(
            ok(unsigned(MYSQL_TYPE_TINY), MyValue::Int(255)),
            Value::UInt(255)
        );
        assert!(one(unsigned(MYSQL_TYPE_TINY), MyValue::Int(-1)).is_err());
        assert!(one(c(MYSQL_TYPE_LONGLONG), MyValue::UInt(u64::MAX)).is_err());
        assert_eq!(
            ok(c(MYSQL_TYPE_SHORT), MyValue::Int(-32768)),
            Value::Int(-32768)
        );
        assert_eq!(
            ok(c(MYSQL_TYPE_INT24), MyValue::Int(-8_388_608)),
            Value::Int(-8_388_608)
        );
        assert_eq!(
            ok(unsigned(MYSQL_TYPE_INT24), MyValue::Int(16_777_215)),
            Value::UInt(16_777_215)
        );
        assert_eq!(
            ok(c(MYSQL_TYPE_LONG), MyValue::Int(i64::from(i32::MIN))),
            Value::Int(-2147483648)
        );
        assert_eq!(
            ok(c(MYSQL_TYPE_LONGLONG), MyValue::Int(i64::MIN)),
            Value::Int(i64::MIN)
        );
        assert_eq!(
            ok(unsigned(MYSQL_TYPE_LONGLONG), MyValue::UInt(u64::MAX)),
            Value::UInt(u64::MAX)
        );
        // YEAR is Int whatever the flags say (MariaDB marks it UNSIGNED ZEROFILL), and 0 stays 0.
        let year =
            c(MYSQL_TYPE_YEAR).with_flags(ColumnFlags::UNSIGNED_FLAG | ColumnFlags::ZEROFILL_FLAG);
        assert_eq!(ok(year.clone(), MyValue::UInt(2024)), Value::Int(2024));
        assert_eq!(ok(year, MyValue::UInt(0)), Value::Int(0));
        assert_eq!(ok(c(MYSQL_TYPE_YEAR), MyValue::Int(1901)), Value::Int(1901));
        // BIT(10) b'1010101010': two bytes, big-endian.
        assert_eq!(
            ok(unsigned(MYSQL_TYPE_BIT), MyValue::Bytes(vec![0x02, 0xaa])),
            Value::UInt(682)
        );
        assert_eq!(
            ok(unsigned(MYSQL_TYPE_BIT), MyValue::Bytes(vec![0xff; 8])),
            Value::UInt(u64::MAX)
        );
        assert!(one(unsigned(MYSQL_TYPE_BIT), MyValue::Bytes(vec![1; 9])).is_err());
        assert_eq!(ok(c(MYSQL_TYPE_NULL), MyValue::NULL), Value::Null);
        assert_eq!(ok(c(MYSQL_TYPE_LONG), MyValue::NULL), Value::Null);
    }

    #[test]
    fn floats_are_bit_exact() {
        let f = 1.234_567_8f32;
        match ok(c(ColumnType::MYSQL_TYPE_FLOAT), MyValue::Float(f)) {
            Value::Float(g) => assert_eq!(g.to_bits(), f.to_bits()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ok(
                c(ColumnType::MYSQL_TYPE_FLOAT),
                MyValue::Float(16_777_216.0)
            ),
            Value::Float(16_777_216.0)
        );
        assert_eq!(
            ok(
                c(ColumnType::MYSQL_TYPE_DOUBLE),
                MyValue::Double(std::f64::consts::PI)
            ),
            Value::Double(std::f64::consts::PI)
        );
    }

    #[test]
    fn decimals_lose_zerofill_padding_only() {
        let d = |s: &str| {
            ok(
                c(ColumnType::MYSQL_TYPE_NEWDECIMAL),
                MyValue::Bytes(s.into()),
            )
        };
        assert_eq!(d("0000019.990"), Value::Decimal("19.990".into()));
        assert_eq!(d("-0001.5"), Value::Decimal("-1.5".into()));
        assert_eq!(d("0000000.000"), Value::Decimal("0.000".into()));
        assert_eq!(d("0.050"), Value::Decimal("0.050".into()));
        assert_eq!(d("000"), Value::Decimal("0".into()));
        assert_eq!(d("100"), Value::Decimal("100".into()));
        assert_eq!(
            d("-12345678901234567890.0123456789"),
            Value::Decimal("-12345678901234567890.0123456789".into())
        );
        for bad in ["", "-", "1.", "1e5", "1.2.3", "abc"] {
            assert!(
                one(
                    c(ColumnType::MYSQL_TYPE_NEWDECIMAL),
                    MyValue::Bytes(bad.into())
                )
                .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_is_decoded_by_the_collation_id() {
        use ColumnType::*;
        let t = |ty, coll, b: &[u8]| ok(text_col(ty, coll), MyValue::Bytes(b.to_vec()));
        assert_eq!(
            t(MYSQL_TYPE_VAR_STRING, UTF8MB4_GENERAL, "🦀 crab".as_bytes()),
            Value::Text("🦀 crab".into())
        );
        assert_eq!(
            t(MYSQL_TYPE_VAR_STRING, LATIN1, b"caf\xe9"),
            Value::Text("café".into())
        );
        assert_eq!(
            t(MYSQL_TYPE_BLOB, CP1251, b"\xcf\xf0\xe8\xe2\xe5\xf2"),
            Value::Text("Привет".into())
        );
        // utf8mb3 (33) and ucs2 (35) through the same decoder.
        assert_eq!(t(MYSQL_TYPE_STRING, 33, b"abc"), Value::Text("abc".into()));
        assert_eq!(
            t(MYSQL_TYPE_STRING, 35, b"\x04\x1f"),
            Value::Text("П".into())
        );
        // Collation 63 is bytes, whatever BINARY_FLAG says; a _bin collation with the flag is text.
        assert_eq!(
            t(MYSQL_TYPE_BLOB, BINARY, b"\xde\xad\xbe\xef\x00"),
            Value::Bytes(b"\xde\xad\xbe\xef\x00".to_vec())
        );
        assert_eq!(
            ok(
                text_col(MYSQL_TYPE_VAR_STRING, UTF8MB4_BIN).with_flags(ColumnFlags::BINARY_FLAG),
                MyValue::Bytes(b"x".to_vec())
            ),
            Value::Text("x".into())
        );
        // BINARY(6) arrives zero-padded, as the decoder pads it.
        assert_eq!(
            t(MYSQL_TYPE_STRING, BINARY, b"\x01\x02\0\0\0\0"),
            Value::Bytes(vec![1, 2, 0, 0, 0, 0])
        );
        // MariaDB JSON is LONGTEXT utf8mb4_bin: text, as the binlog path gives it.
        assert_eq!(
            t(
                MYSQL_TYPE_BLOB,
                UTF8MB4_BIN,
                br#"{"a": [1, 2, {"b": null}]}"#
            ),
            Value::Text(r#"{"a": [1, 2, {"b": null}]}"#.into())
        );
        // MariaDB UUID / INET6 / INET4 arrive as latin1 text.
        assert_eq!(
            t(
                MYSQL_TYPE_STRING,
                LATIN1,
                b"123e4567-e89b-12d3-a456-426614174000"
            ),
            Value::Text("123e4567-e89b-12d3-a456-426614174000".into())
        );
        assert_eq!(
            t(MYSQL_TYPE_STRING, LATIN1, b"::ffff:1.2.3.4"),
            Value::Text("::ffff:1.2.3.4".into())
        );
    }

    #[test]
    fn enum_and_set_labels_are_text() {
        let e =
            || text_col(ColumnType::MYSQL_TYPE_STRING, LATIN1).with_flags(ColumnFlags::ENUM_FLAG);
        assert_eq!(
            ok(e(), MyValue::Bytes(b"m\xe9dium".to_vec())),
            Value::Text("médium".into())
        );
        // The empty string of an invalid ENUM value stays empty.
        assert_eq!(ok(e(), MyValue::Bytes(vec![])), Value::Text(String::new()));
        let s = text_col(ColumnType::MYSQL_TYPE_STRING, UTF8MB4_GENERAL)
            .with_flags(ColumnFlags::SET_FLAG);
        assert_eq!(
            ok(s, MyValue::Bytes(b"a,c".to_vec())),
            Value::Text("a,c".into())
        );
    }

    #[test]
    fn invalid_text_and_unknown_collations_name_table_and_column() {
        let e = one(
            text_col(ColumnType::MYSQL_TYPE_VAR_STRING, UTF8MB4_GENERAL),
            MyValue::Bytes(vec![0xff]),
        )
        .expect_err("invalid");
        assert!(
            matches!(&e, SnapshotError::Decode(DecodeError::InvalidText { table, column, charset })
            if table == "db.t" && column == "c" && charset == "utf8mb4")
        );
        let e = one(
            text_col(ColumnType::MYSQL_TYPE_VAR_STRING, 17),
            MyValue::Bytes(b"x".to_vec()),
        )
        .expect_err("unknown collation");
        assert!(
            matches!(
                e,
                SnapshotError::Schema(SchemaError::UnsupportedCharset { .. })
            ),
            "{e}"
        );
        let e = one(
            c(ColumnType::MYSQL_TYPE_LONG),
            MyValue::Bytes(b"1".to_vec()),
        )
        .expect_err("text protocol");
        assert!(matches!(e, SnapshotError::InvalidValue { .. }), "{e}");
    }

    #[test]
    fn dates_and_datetimes_follow_the_decoders_zero_rules() {
        use ColumnType::*;
        let date = |y, m, d| ok(c(MYSQL_TYPE_DATE), MyValue::Date(y, m, d, 0, 0, 0, 0));
        assert_eq!(
            date(2024, 1, 31),
            Value::Date {
                year: 2024,
                month: 1,
                day: 31
            }
        );
        assert_eq!(date(0, 0, 0), Value::Null);
        assert_eq!(date(2015, 0, 21), Value::Null);
        let dt = |fsp, v| ok(c(MYSQL_TYPE_DATETIME).with_decimals(fsp), v);
        assert_eq!(
            dt(6, MyValue::Date(2024, 1, 31, 12, 0, 0, 123_456)),
            Value::DateTime {
                year: 2024,
                month: 1,
                day: 31,
                hour: 12,
                minute: 0,
                second: 0,
                micros: 123_456,
                fsp: 6
            }
        );
        assert_eq!(
            dt(3, MyValue::Date(2024, 1, 31, 12, 0, 0, 250_000)),
            Value::DateTime {
                year: 2024,
                month: 1,
                day: 31,
                hour: 12,
                minute: 0,
                second: 0,
                micros: 250_000,
                fsp: 3
            }
        );
        assert_eq!(dt(0, MyValue::Date(0, 0, 0, 0, 0, 0, 0)), Value::Null);
        assert_eq!(dt(0, MyValue::Date(2015, 11, 0, 10, 0, 0, 0)), Value::Null);
        assert!(one(
            c(MYSQL_TYPE_DATETIME).with_decimals(31),
            MyValue::Date(2024, 1, 1, 0, 0, 0, 0)
        )
        .is_err());
    }

    #[test]
    fn timestamps_are_utc_parts_turned_into_epoch_seconds() {
        let ts = |fsp, v| ok(c(ColumnType::MYSQL_TYPE_TIMESTAMP).with_decimals(fsp), v);
        assert_eq!(
            ts(0, MyValue::Date(2024, 1, 31, 12, 0, 0, 0)),
            Value::Timestamp {
                secs: 1_706_702_400,
                micros: 0,
                fsp: 0
            }
        );
        assert_eq!(
            ts(3, MyValue::Date(2024, 1, 31, 12, 0, 0, 250_000)),
            Value::Timestamp {
                secs: 1_706_702_400,
                micros: 250_000,
                fsp: 3
            }
        );
        assert_eq!(
            ts(6, MyValue::Date(2038, 1, 19, 3, 14, 7, 999_999)),
            Value::Timestamp {
                secs: i64::from(i32::MAX),
                micros: 999_999,
                fsp: 6
            }
        );
        assert_eq!(ts(0, MyValue::Date(0, 0, 0, 0, 0, 0, 0)), Value::Null);
    }

    #[test]
    fn times_fold_days_into_hours() {
        let tm = |fsp, v| ok(c(ColumnType::MYSQL_TYPE_TIME).with_decimals(fsp), v);
        assert_eq!(
            tm(0, MyValue::Time(true, 34, 22, 59, 59, 0)),
            Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
                fsp: 0
            }
        );
        assert_eq!(
            tm(2, MyValue::Time(true, 0, 1, 2, 3, 450_000)),
            Value::Time {
                negative: true,
                hours: 1,
                minutes: 2,
                seconds: 3,
                micros: 450_000,
                fsp: 2
            }
        );
    }

    #[test]
    fn mysql_json_geometry_and_extra_columns() {
        let j = ok(
            text_col(ColumnType::MYSQL_TYPE_JSON, UTF8MB4_BIN),
            MyValue::Bytes(br#"{"a": [1, 2.5, {"b": null}], "k": "v"}"#.to_vec()),
        );
        assert_eq!(
            j,
            Value::Json(serde_json::json!({"a": [1, 2.5, {"b": null}], "k": "v"}))
        );
        assert!(one(
            text_col(ColumnType::MYSQL_TYPE_JSON, UTF8MB4_BIN),
            MyValue::Bytes(b"{".to_vec())
        )
        .is_err());
        let wkb = b"\xe6\x10\0\0\x01\x01\0\0\0".to_vec();
        assert_eq!(
            ok(
                c(ColumnType::MYSQL_TYPE_GEOMETRY),
                MyValue::Bytes(wkb.clone())
            ),
            Value::Bytes(wkb)
        );

        // A keyset row: the cursor expression after the published columns is ignored; too few
        // columns is an error.
        let t = table(vec![col("a", "int"), col("e", "enum")], vec![]);
        let cols: Arc<[Column]> = vec![
            c(ColumnType::MYSQL_TYPE_LONG),
            text_col(ColumnType::MYSQL_TYPE_STRING, LATIN1).with_flags(ColumnFlags::ENUM_FLAG),
            c(ColumnType::MYSQL_TYPE_LONGLONG),
        ]
        .into();
        let row = new_row(
            vec![
                MyValue::Int(1),
                MyValue::Bytes(b"b".to_vec()),
                MyValue::Int(2),
            ],
            cols,
        );
        assert_eq!(
            t.values(row).expect("values"),
            vec![Value::Int(1), Value::Text("b".into())]
        );
        let row = new_row(
            vec![MyValue::Int(1)],
            vec![c(ColumnType::MYSQL_TYPE_LONG)].into(),
        );
        assert!(t.values(row).is_err());
    }
}
