//! The packed request layout: how a batch's event views and values cross into the sandbox.
//!
//! Design note: the component model lowers a `list<record>` or `list<variant>` field by field,
//! and the guest lifts it the same way; for a batch of thousands of small cells that was most of
//! the boundary's cost. So the request carries views and cells as fixed-layout little-endian
//! records in two `list<u8>`s, which cross as two copies, and each side reads and writes them
//! here, once. (The answer, which is small, keeps the typed WIT `cell`.) The layout is in
//! `wit/transform.wit`:
//! - a view is [`VIEW_BYTES`]: kind (u8) at 0, table (u32) at 4, pos (u64) at 8, row (u32) at
//!   16, after-start, after-len, before-start, before-len (u32) at 20, 24, 28, 32;
//! - a cell is [`CELL_BYTES`]: its tag (u8) at 0, then int/uint/double (64 bits) at 8, float at
//!   8, a span's start and len (u32) at 8 and 12 (text, decimal, bytes and JSON text live in the
//!   batch's `data`); date: year (u16) at 2, month 4, day 5; datetime: the date, hour 6,
//!   minute 7, micros (u32) 8, second 12, fsp 13; timestamp: fsp 1, micros (u32) 4, secs (s64)
//!   8; time: negative 1, fsp 2, minutes 3, hours (u32) 4, micros (u32) 8, seconds 12.

use crate::{Kind, Value};

/// Bytes of one packed event view.
pub const VIEW_BYTES: usize = 36;
/// Bytes of one packed cell.
pub const CELL_BYTES: usize = 16;

/// One event as the transform sees it: its values are cells `after_start..+after_len` (the
/// projected row after the change) and `before_start..+before_len` of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub kind: Kind,
    /// The table version's id (sent once as a `table-info`).
    pub table: u32,
    /// The transaction's start in the binlog, and the row in it.
    pub pos: u64,
    pub row: u32,
    pub after_start: u32,
    pub after_len: u32,
    pub before_start: u32,
    pub before_len: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl View {
    /// Appends the view to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut v = [0u8; VIEW_BYTES];
        v[0] = match self.kind {
            Kind::SnapshotInsert => 0,
            Kind::Insert => 1,
            Kind::Update => 2,
            Kind::Delete => 3,
            Kind::Truncate => 4,
        };
        v[4..8].copy_from_slice(&self.table.to_le_bytes());
        v[8..16].copy_from_slice(&self.pos.to_le_bytes());
        v[16..20].copy_from_slice(&self.row.to_le_bytes());
        v[20..24].copy_from_slice(&self.after_start.to_le_bytes());
        v[24..28].copy_from_slice(&self.after_len.to_le_bytes());
        v[28..32].copy_from_slice(&self.before_start.to_le_bytes());
        v[32..36].copy_from_slice(&self.before_len.to_le_bytes());
        out.extend_from_slice(&v);
    }

    /// Reads one view (`b` is [`VIEW_BYTES`] long).
    pub fn read(b: &[u8]) -> Result<View, String> {
        if b.len() != VIEW_BYTES {
            return Err(format!("a view of {} bytes", b.len()));
        }
        Ok(View {
            kind: match b[0] {
                0 => Kind::SnapshotInsert,
                1 => Kind::Insert,
                2 => Kind::Update,
                3 => Kind::Delete,
                4 => Kind::Truncate,
                k => return Err(format!("unknown event kind {k}")),
            },
            table: u32_at(b, 4),
            pos: u64_at(b, 8),
            row: u32_at(b, 16),
            after_start: u32_at(b, 20),
            after_len: u32_at(b, 24),
            before_start: u32_at(b, 28),
            before_len: u32_at(b, 32),
        })
    }
}

/// Appends `v` to `cells` as one packed cell; text, bytes and JSON text go to `data`.
pub fn write_cell(v: &Value, cells: &mut Vec<u8>, data: &mut Vec<u8>) {
    let mut b = [0u8; CELL_BYTES];
    let mut span = |b: &mut [u8; CELL_BYTES], tag: u8, write: &dyn Fn(&mut Vec<u8>)| {
        let start = data.len();
        write(data);
        b[0] = tag;
        b[8..12].copy_from_slice(&(start as u32).to_le_bytes());
        b[12..16].copy_from_slice(&((data.len() - start) as u32).to_le_bytes());
    };
    match v {
        Value::Null => {}
        Value::Int(x) => {
            b[0] = 1;
            b[8..16].copy_from_slice(&x.to_le_bytes());
        }
        Value::UInt(x) => {
            b[0] = 2;
            b[8..16].copy_from_slice(&x.to_le_bytes());
        }
        Value::Float(x) => {
            b[0] = 3;
            b[8..12].copy_from_slice(&x.to_le_bytes());
        }
        Value::Double(x) => {
            b[0] = 4;
            b[8..16].copy_from_slice(&x.to_le_bytes());
        }
        Value::Decimal(s) => span(&mut b, 5, &|d| d.extend_from_slice(s.as_bytes())),
        Value::Text(s) => span(&mut b, 6, &|d| d.extend_from_slice(s.as_bytes())),
        Value::Bytes(x) => span(&mut b, 7, &|d| d.extend_from_slice(x)),
        &Value::Date { year, month, day } => {
            b[0] = 8;
            b[2..4].copy_from_slice(&year.to_le_bytes());
            b[4] = month;
            b[5] = day;
        }
        &Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp,
        } => {
            b[0] = 9;
            b[2..4].copy_from_slice(&year.to_le_bytes());
            b[4] = month;
            b[5] = day;
            b[6] = hour;
            b[7] = minute;
            b[8..12].copy_from_slice(&micros.to_le_bytes());
            b[12] = second;
            b[13] = fsp;
        }
        &Value::Timestamp { secs, micros, fsp } => {
            b[0] = 10;
            b[1] = fsp;
            b[4..8].copy_from_slice(&micros.to_le_bytes());
            b[8..16].copy_from_slice(&secs.to_le_bytes());
        }
        &Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        } => {
            b[0] = 11;
            b[1] = u8::from(negative);
            b[2] = fsp;
            b[3] = minutes;
            b[4..8].copy_from_slice(&hours.to_le_bytes());
            b[8..12].copy_from_slice(&micros.to_le_bytes());
            b[12] = seconds;
        }
        // Compact JSON text; writing JSON into a Vec cannot fail.
        Value::Json(j) => span(&mut b, 12, &|d| {
            serde_json::to_writer(d, j).expect("JSON into a Vec")
        }),
    }
    cells.extend_from_slice(&b);
}

/// The bytes of a cell's span in `data`.
fn span<'d>(b: &[u8], data: &'d [u8]) -> Result<&'d [u8], String> {
    let (start, len) = (u32_at(b, 8) as usize, u32_at(b, 12) as usize);
    start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| format!("a span {start}+{len} beyond its {} bytes", data.len()))
}

/// Whether a reused buffer of `capacity` bytes is worth keeping for `len` bytes: small ones
/// always are; a large one only when the new value fills a good part of it, so that one huge
/// value does not pin its memory in a slot for good (wasm memory never shrinks).
fn keep(capacity: usize, len: usize) -> bool {
    capacity <= 64 << 10 || capacity <= len.saturating_mul(4)
}

fn text<'d>(b: &[u8], data: &'d [u8]) -> Result<&'d str, String> {
    std::str::from_utf8(span(b, data)?).map_err(|_| "text that is not UTF-8".to_owned())
}

/// Reads one packed cell (`b` is [`CELL_BYTES`] long).
pub fn read_cell(b: &[u8], data: &[u8]) -> Result<Value, String> {
    let mut v = Value::Null;
    refill(&mut v, b, data)?;
    Ok(v)
}

/// Reads one packed cell into `slot`, reusing its string or byte buffer when it holds the same
/// kind of value (so a guest reading one event after another allocates nothing once warm).
pub fn refill(slot: &mut Value, b: &[u8], data: &[u8]) -> Result<(), String> {
    if b.len() != CELL_BYTES {
        return Err(format!("a cell of {} bytes", b.len()));
    }
    let year = u16::from_le_bytes([b[2], b[3]]);
    match (b[0], &mut *slot) {
        (5, Value::Decimal(s)) | (6, Value::Text(s)) => {
            let t = text(b, data)?;
            if keep(s.capacity(), t.len()) {
                s.clear();
                s.push_str(t);
            } else {
                *s = t.to_owned();
            }
            return Ok(());
        }
        (7, Value::Bytes(x)) => {
            let t = span(b, data)?;
            if keep(x.capacity(), t.len()) {
                x.clear();
                x.extend_from_slice(t);
            } else {
                *x = t.to_vec();
            }
            return Ok(());
        }
        _ => {}
    }
    *slot = match b[0] {
        0 => Value::Null,
        1 => Value::Int(u64_at(b, 8) as i64),
        2 => Value::UInt(u64_at(b, 8)),
        3 => Value::Float(f32::from_bits(u32_at(b, 8))),
        4 => Value::Double(f64::from_bits(u64_at(b, 8))),
        5 => Value::Decimal(text(b, data)?.to_owned()),
        6 => Value::Text(text(b, data)?.to_owned()),
        7 => Value::Bytes(span(b, data)?.to_vec()),
        8 => Value::Date {
            year,
            month: b[4],
            day: b[5],
        },
        9 => Value::DateTime {
            year,
            month: b[4],
            day: b[5],
            hour: b[6],
            minute: b[7],
            second: b[12],
            micros: u32_at(b, 8),
            fsp: b[13],
        },
        10 => Value::Timestamp {
            secs: u64_at(b, 8) as i64,
            micros: u32_at(b, 4),
            fsp: b[1],
        },
        11 => Value::Time {
            negative: b[1] != 0,
            hours: u32_at(b, 4),
            minutes: b[3],
            seconds: b[12],
            micros: u32_at(b, 8),
            fsp: b[2],
        },
        12 => Value::Json(
            serde_json::from_slice(span(b, data)?)
                .map_err(|e| format!("a JSON value that is not JSON: {e}"))?,
        ),
        t => return Err(format!("unknown cell tag {t}")),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_and_every_value_survive_the_round_trip() {
        let values = vec![
            Value::Null,
            Value::Int(-1),
            Value::UInt(u64::MAX),
            Value::Float(1.5),
            Value::Double(-0.25),
            Value::Decimal("19.990".into()),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Date {
                year: 2024,
                month: 2,
                day: 29,
            },
            Value::DateTime {
                year: 9999,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 58,
                micros: 999_999,
                fsp: 6,
            },
            Value::Timestamp {
                secs: -1,
                micros: 5,
                fsp: 1,
            },
            Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 1,
                fsp: 6,
            },
            Value::Json(serde_json::json!({"b": 1, "a": [true, null]})),
        ];
        let (mut cells, mut data) = (Vec::new(), Vec::new());
        for v in &values {
            write_cell(v, &mut cells, &mut data);
        }
        assert_eq!(cells.len(), values.len() * CELL_BYTES);
        let back: Vec<Value> = cells
            .chunks_exact(CELL_BYTES)
            .map(|c| read_cell(c, &data).unwrap())
            .collect();
        assert_eq!(back, values);
        // Refilling reuses a slot of the same kind, and replaces one of another kind.
        let mut slot = Value::Text(String::with_capacity(64));
        refill(&mut slot, &cells[6 * CELL_BYTES..7 * CELL_BYTES], &data).unwrap();
        assert_eq!(slot, Value::Text("héllo".into()));
        refill(&mut slot, &cells[CELL_BYTES..2 * CELL_BYTES], &data).unwrap();
        assert_eq!(slot, Value::Int(-1));
        // A huge buffer is not kept for a small value.
        let mut slot = Value::Text("x".repeat(1 << 20));
        refill(&mut slot, &cells[6 * CELL_BYTES..7 * CELL_BYTES], &data).unwrap();
        assert!(matches!(&slot, Value::Text(s) if s.capacity() < 1024));
        // Bad input is an error, not a panic.
        let mut bad = cells[6 * CELL_BYTES..7 * CELL_BYTES].to_vec();
        bad[12] = 200;
        assert!(read_cell(&bad, &data).unwrap_err().contains("beyond"));
        bad[0] = 99;
        assert!(read_cell(&bad, &data)
            .unwrap_err()
            .contains("unknown cell tag"));
        assert!(read_cell(&bad[..3], &data).is_err());
        bad[0] = 6;
        bad[8..16].copy_from_slice(&[0xff; 8]);
        assert!(read_cell(&bad, &data).unwrap_err().contains("beyond"));

        let view = View {
            kind: Kind::Update,
            table: 7,
            pos: u64::MAX - 1,
            row: 3,
            after_start: 1,
            after_len: 2,
            before_start: 3,
            before_len: 4,
        };
        let mut out = Vec::new();
        view.write(&mut out);
        assert_eq!(out.len(), VIEW_BYTES);
        assert_eq!(View::read(&out).unwrap(), view);
        out[0] = 9;
        assert!(View::read(&out).is_err());
    }
}
