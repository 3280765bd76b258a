//! The fast row decoder: binlog row images straight into typed [`Value`]s.
//!
//! Design note: `mysql_common`'s `rows(tme)` API allocates per row and per value and has a few
//! decoding bugs for CDC use (negative MEDIUMINT is not sign-extended, YEAR 0 reads as 1900,
//! BINARY(n) loses trailing zero bytes; TIMESTAMP and DECIMAL arrive as text, ENUM as an index,
//! SET as a bitmask). This module decodes each column from its resolved [`ColumnKind`] in one
//! pass over the event's bytes, with the column kinds resolved once per TABLE_MAP. It is pure
//! (bytes in, values out) so the MySQL 8 fixture files and the live stream share it.
//!
//! Size: one decoder per MySQL column type in one row-image reader; it is long because MySQL has many types, each with its own binary form.

use mysql_common::binlog::jsonb;

/// The after image's value option that marks partial JSON updates (MySQL's
/// `PARTIAL_JSON_UPDATES`).
const PARTIAL_JSON_UPDATES: u64 = 1;

use super::charset::{InvalidText, Text};
use super::schema::{Charset, ColumnKind, TableSchema};
use crate::event::Value;

/// A row image that could not be decoded. Always fatal for the pipeline: skipping a row would
/// lose data.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("row data ended early while decoding column {column} of {table}")]
    Truncated { table: String, column: usize },
    #[error("{table}: column {column}: {detail}")]
    Invalid {
        table: String,
        column: usize,
        detail: String,
    },
    #[error(
        "{table}: column {column} holds bytes that are not valid {charset} text; Sluice stops \
         rather than publish a wrong string. The value was probably written through a connection \
         with the wrong character set: correct the row, or convert the column"
    )]
    InvalidText {
        table: String,
        column: String,
        charset: String,
    },
    #[error(
        "{table}: the row image lacks column {column}; binlog_row_image must be FULL \
         (SET GLOBAL binlog_row_image=FULL and restart the writers' sessions)"
    )]
    PartialImage { table: String, column: usize },
}

/// A cursor over one rows event's data.
pub(crate) struct RowReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> RowReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        RowReader { buf, pos: 0 }
    }

    /// True when every row of the event has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Reads one row image: the null bitmap over the `present` columns, then their values.
    /// `present` is the event's column bitmap for this image (before or after).
    pub(crate) fn read_image(
        &mut self,
        schema: &TableSchema,
        present: &dyn Fn(usize) -> bool,
        out: &mut Vec<Value>,
    ) -> Result<(), DecodeError> {
        self.read_image_with(schema, present, out, None)
    }

    /// Reads the after image of a MySQL `PARTIAL_UPDATE_ROWS_EVENT`: its value options, then
    /// (with PARTIAL_JSON_UPDATES) one bit per JSON column of the table, set when its value is
    /// a list of diffs against `before` (see [`super::json_diff`]), then the image.
    pub(crate) fn read_partial_after(
        &mut self,
        schema: &TableSchema,
        present: &dyn Fn(usize) -> bool,
        before: &[Value],
        out: &mut Vec<Value>,
    ) -> Result<(), DecodeError> {
        let truncated = || DecodeError::Truncated {
            table: schema.meta.qualified_name(),
            column: 0,
        };
        let rest = self.buf.get(self.pos..).ok_or_else(truncated)?;
        let (options, used) = super::compressed::lenenc(rest).ok_or_else(truncated)?;
        self.pos += used;
        // MySQL refuses any other option as a corrupt event: one Sluice does not know may
        // change the layout.
        if options & !PARTIAL_JSON_UPDATES != 0 {
            return Err(DecodeError::Invalid {
                table: schema.meta.qualified_name(),
                column: 0,
                detail: format!("unknown row value options {options:#x} in a partial update"),
            });
        }
        let partial = match options & PARTIAL_JSON_UPDATES != 0 {
            true => {
                let json = schema
                    .columns
                    .iter()
                    .filter(|k| matches!(k, ColumnKind::Json { .. }))
                    .count();
                Some(self.take(json.div_ceil(8)).ok_or_else(truncated)?)
            }
            false => None,
        };
        self.read_image_with(schema, present, out, partial.map(|bits| (bits, before)))
    }

    /// [`RowReader::read_image`], with `partial`: the partial-JSON bits and the before image.
    fn read_image_with(
        &mut self,
        schema: &TableSchema,
        present: &dyn Fn(usize) -> bool,
        out: &mut Vec<Value>,
        partial: Option<(&[u8], &[Value])>,
    ) -> Result<(), DecodeError> {
        let n = schema.columns.len();
        let table = || schema.meta.qualified_name();
        let count = (0..n).filter(|&i| present(i)).count();
        let nulls = self
            .take(count.div_ceil(8))
            .ok_or_else(|| DecodeError::Truncated {
                table: table(),
                column: 0,
            })?;
        out.reserve(n);
        // Every column is present (checked below), so bit i of the null bitmap is column i.
        let mut json_column = 0;
        for (i, kind) in schema.columns.iter().enumerate() {
            if !present(i) {
                return Err(DecodeError::PartialImage {
                    table: table(),
                    column: i,
                });
            }
            // The partial bits count the table's JSON columns, null or not.
            let diffs = match (kind, partial) {
                (ColumnKind::Json { len_bytes }, Some((bits, before))) => {
                    let j = json_column;
                    json_column += 1;
                    (bits.get(j / 8).is_some_and(|b| b & (1 << (j % 8)) != 0))
                        .then_some((*len_bytes, before))
                }
                _ => None,
            };
            let is_null = nulls[i / 8] & (1 << (i % 8)) != 0;
            if is_null {
                out.push(Value::Null);
                continue;
            }
            if let Some((len_bytes, before)) = diffs {
                let invalid = |detail: String| DecodeError::Invalid {
                    table: table(),
                    column: i,
                    detail,
                };
                let raw = self
                    .length_prefixed(len_bytes)
                    .map_err(|_| DecodeError::Truncated {
                        table: table(),
                        column: i,
                    })?;
                let doc =
                    match before.get(i) {
                        Some(Value::Json(doc)) => doc,
                        _ => return Err(invalid(
                            "a partial JSON update of a document the before image does not hold \
                             (NULL or missing); the after image cannot be built"
                                .into(),
                        )),
                    };
                out.push(Value::Json(
                    super::json_diff::apply_diffs(doc, raw).map_err(invalid)?,
                ));
                continue;
            }
            let v = self.read_value(kind).map_err(|e| match e {
                ValueError::Truncated => DecodeError::Truncated {
                    table: table(),
                    column: i,
                },
                ValueError::Invalid(detail) => DecodeError::Invalid {
                    table: table(),
                    column: i,
                    detail,
                },
                ValueError::Text(charset) => DecodeError::InvalidText {
                    table: table(),
                    column: schema
                        .meta
                        .columns
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| i.to_string()),
                    charset: charset.name(),
                },
            })?;
            out.push(v);
        }
        Ok(())
    }

    #[inline]
    fn uint_le(&mut self, n: usize) -> Result<u64, ValueError> {
        let b = self.take(n).ok_or(ValueError::Truncated)?;
        let mut v = 0u64;
        for (i, byte) in b.iter().enumerate() {
            v |= u64::from(*byte) << (8 * i);
        }
        Ok(v)
    }

    #[inline]
    fn uint_be(&mut self, n: usize) -> Result<u64, ValueError> {
        let b = self.take(n).ok_or(ValueError::Truncated)?;
        Ok(be(b))
    }

    fn length_prefixed(&mut self, len_bytes: u8) -> Result<&'a [u8], ValueError> {
        let len = self.uint_le(len_bytes as usize)? as usize;
        self.take(len).ok_or(ValueError::Truncated)
    }

    fn read_value(&mut self, kind: &ColumnKind) -> Result<Value, ValueError> {
        Ok(match *kind {
            ColumnKind::Tiny { unsigned } => int(self.uint_le(1)?, 8, unsigned),
            ColumnKind::Short { unsigned } => int(self.uint_le(2)?, 16, unsigned),
            ColumnKind::Int24 { unsigned } => int(self.uint_le(3)?, 24, unsigned),
            ColumnKind::Long { unsigned } => int(self.uint_le(4)?, 32, unsigned),
            ColumnKind::LongLong { unsigned } => int(self.uint_le(8)?, 64, unsigned),
            ColumnKind::Float => Value::Float(f32::from_bits(self.uint_le(4)? as u32)),
            ColumnKind::Double => Value::Double(f64::from_bits(self.uint_le(8)?)),
            ColumnKind::Decimal { precision, scale } => {
                let size = decimal_size(precision, scale);
                let b = self.take(size).ok_or(ValueError::Truncated)?;
                Value::Decimal(decode_decimal(b, precision, scale)?)
            }
            ColumnKind::Year => {
                let y = self.uint_le(1)?;
                Value::Int(if y == 0 { 0 } else { 1900 + y as i64 })
            }
            ColumnKind::Date => {
                let v = self.uint_le(3)?;
                let (day, month, year) = ((v & 31) as u8, ((v >> 5) & 15) as u8, (v >> 9) as u16);
                if year == 0 || month == 0 || day == 0 {
                    Value::Null
                } else {
                    Value::Date { year, month, day }
                }
            }
            ColumnKind::TimeOld => {
                let raw = sign_extend(self.uint_le(3)?, 24);
                let a = raw.unsigned_abs();
                Value::Time {
                    negative: raw < 0,
                    hours: (a / 10_000) as u32,
                    minutes: (a / 100 % 100) as u8,
                    seconds: (a % 100) as u8,
                    micros: 0,
                    fsp: 0,
                }
            }
            ColumnKind::Time2 { fsp } => {
                let packed = self.time2_packed(fsp)?;
                let negative = packed < 0;
                let t = packed.unsigned_abs();
                let hms = t >> 24;
                Value::Time {
                    negative,
                    hours: ((hms >> 12) % (1 << 10)) as u32,
                    minutes: ((hms >> 6) % (1 << 6)) as u8,
                    seconds: (hms % (1 << 6)) as u8,
                    micros: (t % (1 << 24)) as u32,
                    fsp,
                }
            }
            ColumnKind::DateTimeOld => {
                let v = self.uint_le(8)?;
                let (date, time) = (v / 1_000_000, v % 1_000_000);
                datetime(
                    (date / 10_000) as u16,
                    (date / 100 % 100) as u8,
                    (date % 100) as u8,
                    (time / 10_000) as u8,
                    (time / 100 % 100) as u8,
                    (time % 100) as u8,
                    0,
                    0,
                )
            }
            ColumnKind::DateTime2 { fsp } => {
                let int_part = self.uint_be(5)? as i64 - 0x80_0000_0000;
                let frac = self.frac(fsp)?;
                let packed = (int_part << 24) + frac;
                let t = packed.unsigned_abs();
                let ymdhms = t >> 24;
                let ymd = ymdhms >> 17;
                let ym = ymd >> 5;
                let hms = ymdhms % (1 << 17);
                datetime(
                    (ym / 13) as u16,
                    (ym % 13) as u8,
                    (ymd % (1 << 5)) as u8,
                    (hms >> 12) as u8,
                    ((hms >> 6) % (1 << 6)) as u8,
                    (hms % (1 << 6)) as u8,
                    (t % (1 << 24)) as u32,
                    fsp,
                )
            }
            ColumnKind::TimestampOld => timestamp(self.uint_le(4)? as i64, 0, 0),
            ColumnKind::Timestamp2 { fsp } => {
                let secs = self.uint_be(4)? as i64;
                let micros = match fsp {
                    0 => 0,
                    1 | 2 => self.uint_be(1)? * 10_000,
                    3 | 4 => self.uint_be(2)? * 100,
                    _ => self.uint_be(3)?,
                } as u32;
                timestamp(secs, micros, fsp)
            }
            ColumnKind::VarString { len_bytes, charset } => {
                text(self.length_prefixed(len_bytes)?, charset, 0)?
            }
            ColumnKind::FixedString {
                len_bytes,
                max_len,
                charset,
            } => text(self.length_prefixed(len_bytes)?, charset, max_len as usize)?,
            ColumnKind::Blob { len_bytes, charset } => {
                text(self.length_prefixed(len_bytes)?, charset, 0)?
            }
            ColumnKind::Compressed {
                len_bytes,
                max_len,
                charset,
            } => {
                let stored = self.length_prefixed(len_bytes)?;
                let raw = uncompress(stored, max_len)?;
                text(&raw, charset, 0)?
            }
            ColumnKind::Uuid => Value::Text(uuid(&self.fixed_binary::<16>()?)),
            ColumnKind::Inet4 => {
                let b = self.fixed_binary::<4>()?;
                Value::Text(format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]))
            }
            ColumnKind::Inet6 => Value::Text(inet6(&self.fixed_binary::<16>()?)),
            ColumnKind::OpaqueBlob { len_bytes } => {
                Value::Bytes(self.length_prefixed(len_bytes)?.to_vec())
            }
            ColumnKind::Json { len_bytes } => {
                let b = self.length_prefixed(len_bytes)?;
                Value::Json(decode_json(b)?)
            }
            ColumnKind::Enum {
                pack_len,
                ref labels,
            } => {
                let idx = self.uint_le(pack_len as usize)? as usize;
                // Index 0 is the empty string MySQL stores for an invalid value.
                Value::Text(if idx == 0 {
                    String::new()
                } else {
                    label(labels, idx - 1)?
                })
            }
            ColumnKind::Set {
                pack_len,
                ref labels,
            } => {
                let mask = self.uint_le(pack_len as usize)?;
                let mut s = String::new();
                for (i, l) in labels.iter().enumerate().take(64) {
                    if mask & (1 << i) != 0 {
                        if !s.is_empty() {
                            s.push(',');
                        }
                        s.push_str(l);
                    }
                }
                if labels.len() < 64 && mask >> labels.len() != 0 {
                    return Err(ValueError::Invalid(format!(
                        "SET bitmask {mask:#x} names labels that are unknown"
                    )));
                }
                Value::Text(s)
            }
            ColumnKind::Bit { bytes } => Value::UInt(self.uint_be(bytes as usize)?),
            ColumnKind::Null => Value::Null,
        })
    }

    /// A BINARY(n) value (1-byte length prefix, trailing zero bytes stripped), padded back to n.
    fn fixed_binary<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        let b = self.length_prefixed(1)?;
        if b.len() > N {
            return Err(ValueError::Invalid(format!(
                "{} bytes in a {N}-byte column",
                b.len()
            )));
        }
        let mut out = [0u8; N];
        out[..b.len()].copy_from_slice(b);
        Ok(out)
    }

    /// TIME2's packed representation (MySQL's `my_time_packed_from_binary`).
    fn time2_packed(&mut self, fsp: u8) -> Result<i64, ValueError> {
        const OFS: i64 = 0x80_0000;
        Ok(match fsp {
            0 => (self.uint_be(3)? as i64 - OFS) << 24,
            1 | 2 => {
                let mut int_part = self.uint_be(3)? as i64 - OFS;
                let mut frac = self.uint_be(1)? as i64;
                if int_part < 0 && frac != 0 {
                    int_part += 1;
                    frac -= 0x100;
                }
                (int_part << 24) + frac * 10_000
            }
            3 | 4 => {
                let mut int_part = self.uint_be(3)? as i64 - OFS;
                let mut frac = self.uint_be(2)? as i64;
                if int_part < 0 && frac != 0 {
                    int_part += 1;
                    frac -= 0x10000;
                }
                (int_part << 24) + frac * 100
            }
            _ => self.uint_be(6)? as i64 - 0x8000_0000_0000,
        })
    }

    /// The fractional-seconds suffix of DATETIME2, in microseconds.
    fn frac(&mut self, fsp: u8) -> Result<i64, ValueError> {
        Ok(match fsp {
            0 => 0,
            1 | 2 => sign_extend(self.uint_be(1)?, 8) * 10_000,
            3 | 4 => sign_extend(self.uint_be(2)?, 16) * 100,
            _ => sign_extend(self.uint_be(3)?, 24),
        })
    }
}

enum ValueError {
    Truncated,
    Invalid(String),
    /// Bytes that are not valid text in the column's character set.
    Text(Charset),
}

#[inline]
fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

#[inline]
fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

#[inline]
fn int(v: u64, bits: u32, unsigned: bool) -> Value {
    if unsigned {
        Value::UInt(v)
    } else {
        Value::Int(sign_extend(v, bits))
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn datetime(
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
    fsp: u8,
) -> Value {
    // A zero date (or one with a zero part) has no calendar meaning; the contract publishes null.
    if year == 0 || month == 0 || day == 0 {
        return Value::Null;
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
    }
}

pub(crate) fn timestamp(secs: i64, micros: u32, fsp: u8) -> Value {
    // TIMESTAMP 0 is MySQL's zero datetime '0000-00-00 00:00:00'.
    if secs == 0 && micros == 0 {
        Value::Null
    } else {
        Value::Timestamp { secs, micros, fsp }
    }
}

fn text(bytes: &[u8], charset: Charset, pad_to: usize) -> Result<Value, ValueError> {
    match charset.decode(bytes) {
        Ok(Text::String(s)) => Ok(Value::Text(s)),
        Ok(Text::Bytes) => {
            // BINARY(n) strips trailing zero bytes on the wire; the value is n bytes long.
            let mut v = Vec::with_capacity(bytes.len().max(pad_to));
            v.extend_from_slice(bytes);
            if v.len() < pad_to && charset.is_binary() {
                v.resize(pad_to, 0);
            }
            Ok(Value::Bytes(v))
        }
        Err(InvalidText) => Err(ValueError::Text(charset)),
    }
}

/// MariaDB's compressed column format (`Field_longstr::compress`/`uncompress` in `field.cc`):
/// an empty value is empty; otherwise a header byte whose high nibble is the method (0: the
/// bytes follow as they are; 8: zlib), whose bit 3 says raw deflate (no zlib wrapper), and whose
/// low 3 bits give the size of the big-endian original length that follows. The inflated size
/// must be that length, and at most `max_len`.
fn uncompress(stored: &[u8], max_len: u32) -> Result<std::borrow::Cow<'_, [u8]>, ValueError> {
    use std::io::Read;
    let Some((&header, rest)) = stored.split_first() else {
        return Ok(std::borrow::Cow::Borrowed(stored));
    };
    match header >> 4 {
        0 => return Ok(std::borrow::Cow::Borrowed(rest)),
        8 => {}
        m => {
            return Err(ValueError::Invalid(format!(
                "compressed column: unknown compression method {m} (header {header:#04x})"
            )))
        }
    }
    let len_len = (header & 7) as usize;
    if len_len == 0 {
        return Ok(std::borrow::Cow::Borrowed(rest));
    }
    let (len, data) = (
        rest.get(..len_len).ok_or(ValueError::Truncated)?,
        &rest[len_len.min(rest.len())..],
    );
    let len = be(len);
    if len > u64::from(max_len) {
        return Err(ValueError::Invalid(format!(
            "compressed column: original length {len} exceeds the column's {max_len} bytes"
        )));
    }
    let mut out = Vec::with_capacity(len as usize);
    let read = if header & 8 != 0 {
        flate2::read::DeflateDecoder::new(data)
            .take(len + 1)
            .read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(data)
            .take(len + 1)
            .read_to_end(&mut out)
    };
    read.map_err(|e| ValueError::Invalid(format!("compressed column: bad zlib data: {e}")))?;
    if out.len() as u64 != len {
        return Err(ValueError::Invalid(format!(
            "compressed column: inflated to {} bytes, header says {len}",
            out.len()
        )));
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// MariaDB's UUID text. The record format swaps the time fields for index locality when the
/// value is an RFC 4122 UUID of version 1..5; `rec_need_swap` in `sql_type_uuid.h` is the test
/// (computed on C `char`s, that is signed bytes), and the segments are (memory, record, length):
/// (0,12,4) (4,10,2) (6,8,2) (8,6,2) (10,0,6).
fn uuid(rec: &[u8; 16]) -> String {
    let s6 = i32::from(rec[6] as i8);
    let s8 = i32::from(rec[8] as i8);
    let mem = if s6 & -s8 & 0x80 != 0 {
        let mut m = [0u8; 16];
        for (mpos, rpos, len) in [(0, 12, 4), (4, 10, 2), (6, 8, 2), (8, 6, 2), (10, 0, 6)] {
            m[mpos..mpos + len].copy_from_slice(&rec[rpos..rpos + len]);
        }
        m
    } else {
        *rec
    };
    let mut s = String::with_capacity(36);
    for (i, b) in mem.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// MariaDB's INET6 text (`Inet6::to_string`): lower-case hex words without leading zeros; the
/// first longest run of zero words (even a single one) becomes `::`; IPv4-compatible (`::a.b.c.d`)
/// and IPv4-mapped (`::ffff:a.b.c.d`) addresses end in dotted decimal.
fn inet6(b: &[u8; 16]) -> String {
    use std::fmt::Write;
    let w: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut gap_pos, mut gap_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > gap_len {
                (gap_pos, gap_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    let mut s = String::with_capacity(39);
    let mut i = 0;
    while i < 8 {
        if i == gap_pos {
            if i == 0 {
                s.push(':');
            }
            s.push(':');
            i += gap_len;
            continue;
        }
        if i == 6 && gap_pos == 0 && (gap_len == 6 || (gap_len == 5 && w[5] == 0xffff)) {
            let _ = write!(s, "{}.{}.{}.{}", b[12], b[13], b[14], b[15]);
            return s;
        }
        let _ = write!(s, "{:x}", w[i]);
        if i != 7 {
            s.push(':');
        }
        i += 1;
    }
    s
}

fn label(labels: &[String], idx: usize) -> Result<String, ValueError> {
    labels.get(idx).cloned().ok_or_else(|| {
        ValueError::Invalid(format!(
            "ENUM index {} is beyond the {} labels known for the column; set binlog_row_metadata=FULL",
            idx + 1,
            labels.len()
        ))
    })
}

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Bytes a DECIMAL(precision, scale) occupies in a row image.
pub(crate) fn decimal_size(precision: u8, scale: u8) -> usize {
    let intg = (precision - scale.min(precision)) as usize;
    let scale = scale as usize;
    (intg / 9) * 4 + DIG2BYTES[intg % 9] + (scale / 9) * 4 + DIG2BYTES[scale % 9]
}

/// MySQL's binary DECIMAL to its exact text, with exactly `scale` fraction digits.
fn decode_decimal(raw: &[u8], precision: u8, scale: u8) -> Result<String, ValueError> {
    if raw.is_empty() {
        return Err(ValueError::Invalid("empty DECIMAL".into()));
    }
    let negative = raw[0] & 0x80 == 0;
    let mut b = raw.to_vec();
    b[0] ^= 0x80;
    if negative {
        for x in &mut b {
            *x = !*x;
        }
    }
    let intg = (precision - scale.min(precision)) as usize;
    let scale = scale as usize;
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (scale / 9, scale % 9);
    let mut pos = 0usize;
    let mut next = |n: usize| {
        let v = be(&b[pos..pos + n]);
        pos += n;
        v
    };
    let mut int_digits = String::new();
    if intg0x > 0 {
        let v = next(DIG2BYTES[intg0x]);
        if v != 0 {
            int_digits.push_str(&v.to_string());
        }
    }
    for _ in 0..intg0 {
        let v = next(4);
        if int_digits.is_empty() {
            if v != 0 {
                int_digits.push_str(&v.to_string());
            }
        } else {
            int_digits.push_str(&format!("{v:09}"));
        }
    }
    let mut out = String::with_capacity(intg + scale + 2);
    if negative {
        out.push('-');
    }
    out.push_str(if int_digits.is_empty() {
        "0"
    } else {
        &int_digits
    });
    if scale > 0 {
        out.push('.');
        for _ in 0..frac0 {
            out.push_str(&format!("{:09}", next(4)));
        }
        if frac0x > 0 {
            let v = next(DIG2BYTES[frac0x]);
            out.push_str(&format!("{v:0width$}", width = frac0x));
        }
    }
    Ok(out)
}

/// MySQL's binary JSON (JSONB) to a JSON value.
fn decode_json(raw: &[u8]) -> Result<serde_json::Value, ValueError> {
    if raw.is_empty() {
        // An empty JSON image is how MySQL writes a JSON NULL literal in some paths.
        return Ok(serde_json::Value::Null);
    }
    let v: jsonb::Value<'_> = mysql_common::io::ParseBuf(raw)
        .parse(())
        .map_err(|e| ValueError::Invalid(format!("bad binary JSON: {e}")))?;
    let dom = v
        .parse()
        .map_err(|e| ValueError::Invalid(format!("bad binary JSON: {e}")))?;
    Ok(serde_json::Value::from(dom))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_json_after_image_applies_its_diffs_to_the_before_image() {
        // (id INT, doc JSON, note JSON): FULL before image, then a partial after image whose
        // value options set PARTIAL_JSON_UPDATES and whose bits mark `doc` (not `note`).
        // `doc` is `[25]`: a small array holding the int16 25 inline.
        let schema = TableSchema {
            meta: std::sync::Arc::new(crate::event::TableMeta {
                schema: "db".into(),
                table: "t".into(),
                columns: vec!["id".into(), "doc".into(), "note".into()],
                primary_key: vec![0],
            }),
            columns: vec![
                ColumnKind::Long { unsigned: false },
                ColumnKind::Json { len_bytes: 4 },
                ColumnKind::Json { len_bytes: 4 },
            ],
        };
        let all = |_: usize| true;
        let json_col = |raw: &[u8]| {
            let mut b = (raw.len() as u32).to_le_bytes().to_vec();
            b.extend_from_slice(raw);
            b
        };
        // Before: id 7, doc = [25] (binary JSON), note = int16 1.
        let mut rows = vec![0b000];
        rows.extend_from_slice(&7i32.to_le_bytes());
        rows.extend(json_col(&[0x02, 1, 0, 7, 0, 0x05, 25, 0]));
        rows.extend(json_col(&[0x05, 1, 0]));
        // After: value options 1, partial bits 0b01, nulls, id, doc as a REPLACE of `$[0]`
        // with 26, note as a whole document (int16 2).
        rows.extend_from_slice(&[1, 0b01, 0b000]);
        rows.extend_from_slice(&7i32.to_le_bytes());
        rows.extend(json_col(&[0u8, 4, b'$', b'[', b'0', b']', 3, 0x05, 26, 0]));
        rows.extend(json_col(&[0x05, 2, 0]));
        let mut r = RowReader::new(&rows);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        r.read_image(&schema, &all, &mut before).unwrap();
        r.read_partial_after(&schema, &all, &before, &mut after)
            .unwrap();
        assert!(r.is_empty());
        assert_eq!(
            after,
            vec![
                Value::Int(7),
                Value::Json(serde_json::json!([26])),
                Value::Json(serde_json::json!(2))
            ]
        );
        // A diff against a NULL document cannot be applied: an error, not a guess.
        let before_null = vec![Value::Int(7), Value::Null, Value::Null];
        // The before image is 24 bytes: nulls 1, id 4, doc 4+8, note 4+3.
        let mut r = RowReader::new(&rows[24..]);
        let err = r
            .read_partial_after(&schema, &all, &before_null, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("partial JSON update"), "{err}");
    }

    fn dec(raw: &[u8], p: u8, s: u8) -> String {
        match decode_decimal(raw, p, s) {
            Ok(v) => v,
            Err(_) => panic!("invalid"),
        }
    }

    #[test]
    fn decimals() {
        // DECIMAL(10,3) 19.990: intg 7 -> 4 bytes, frac 3 -> 2 bytes.
        assert_eq!(decimal_size(10, 3), 6);
        let mut raw = vec![0x80, 0x00, 0x00, 19, 0x03, 0xDE]; // 990 = 0x03DE
        assert_eq!(dec(&raw, 10, 3), "19.990");
        for x in &mut raw {
            *x = !*x;
        }
        assert_eq!(dec(&raw, 10, 3), "-19.990");
        // DECIMAL(4,2) 0.05
        assert_eq!(dec(&[0x80, 0x05], 4, 2), "0.05");
        // DECIMAL(20,0) 1234567890123 -> intg 20: 2 full groups + 2 digits (1 byte)
        assert_eq!(decimal_size(20, 0), 9);
        let raw = [0x80, 0, 0, 0x04, 0xD2, 0x21, 0xD9, 0x50, 0xCB]; // 0, 1234, 567890123
        assert_eq!(dec(&raw, 20, 0), "1234567890123");
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend(0xFF_FFFF, 24), -1);
        assert_eq!(sign_extend(0x80_0000, 24), -8_388_608);
        assert_eq!(sign_extend(0x7F_FFFF, 24), 8_388_607);
    }
}

#[cfg(test)]
mod mariadb_type_tests {
    use super::*;

    #[test]
    fn inet6_text_follows_mariadb() {
        let a = |s: &str| -> [u8; 16] { s.parse::<std::net::Ipv6Addr>().unwrap().octets() };
        assert_eq!(inet6(&a("2001:db8::1")), "2001:db8::1");
        assert_eq!(inet6(&a("::")), "::");
        assert_eq!(inet6(&a("::ffff:1.2.3.4")), "::ffff:1.2.3.4");
        assert_eq!(inet6(&a("::1.2.3.4")), "::1.2.3.4");
        // MariaDB compresses a single zero word too, and the first of equal runs.
        assert_eq!(inet6(&a("1:0:2:3:4:5:6:7")), "1::2:3:4:5:6:7");
        assert_eq!(inet6(&a("1:0:0:2:0:0:3:4")), "1::2:0:0:3:4");
    }

    #[test]
    fn uuid_text_and_swapped_records() {
        let plain = *b"\x12\x3e\x45\x67\xe8\x9b\x12\xd3\xa4\x56\x42\x66\x14\x17\x40\x00";
        assert_eq!(uuid(&plain), "123e4567-e89b-12d3-a456-426614174000");
        // The record form of the same UUID with the time fields swapped.
        let swapped = *b"\x42\x66\x14\x17\x40\x00\xa4\x56\x12\xd3\xe8\x9b\x12\x3e\x45\x67";
        assert_eq!(uuid(&swapped), "123e4567-e89b-12d3-a456-426614174000");
    }

    #[test]
    fn compressed_values() {
        use std::io::Write;
        let ok = |r: Result<std::borrow::Cow<'_, [u8]>, ValueError>| match r {
            Ok(v) => v.into_owned(),
            Err(_) => panic!("error"),
        };
        assert_eq!(ok(uncompress(b"", 10)), b"");
        assert_eq!(ok(uncompress(b"\x00abc", 10)), b"abc");
        let data = vec![b'y'; 300];
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&data).unwrap();
        let mut stored = vec![0x8a, 0x01, 0x2c];
        stored.extend(e.finish().unwrap());
        assert_eq!(ok(uncompress(&stored, 65535)), data);
        // Over the column's size, or a length that does not match: errors.
        assert!(uncompress(&stored, 299).is_err());
        stored[2] = 0x2b;
        assert!(uncompress(&stored, 65535).is_err());
    }
}
