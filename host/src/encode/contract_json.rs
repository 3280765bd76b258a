//! The contract's event JSON (`shared/CONTRACT.md`, "Event format").
//!
//! `{"kind","schema","table","columnnames","columnvalues","oldkeys"}` with each MySQL value in
//! the form the contract's table gives. This is the one place that knows those forms, so the
//! golden files in `tests/golden/` pin it down.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use crate::event::{ChangeEvent, Kind, Value};

/// How the Kafka message key is built (`KAFKA_KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    /// `"{schema}.{table}"`, as the Python app did.
    #[default]
    Table,
    /// The JSON array of the row's primary-key values.
    PrimaryKey,
}

/// Appends the event's contract JSON to `out`.
pub fn encode_value(event: &ChangeEvent, out: &mut Vec<u8>) {
    let mut ser = serde_json::Serializer::new(out);
    // Serializing plain data into a Vec cannot fail.
    ContractEvent(event)
        .serialize(&mut ser)
        .expect("serializing to a Vec");
}

/// Appends the event's Kafka key to `out`.
///
/// With [`KeyMode::PrimaryKey`] and a table without a primary key, the whole row identifies it.
/// A table-level `truncate` event has no row: its key is `"{schema}.{table}"` in both modes (the
/// Kafka sink publishes it to every partition of the topic in `primary_key` mode, so that it
/// reaches the partitions of all the table's rows).
pub fn encode_key(event: &ChangeEvent, mode: KeyMode, out: &mut Vec<u8>) {
    match mode {
        _ if event.kind == Kind::Truncate => {
            out.extend_from_slice(event.meta.schema.as_bytes());
            out.push(b'.');
            out.extend_from_slice(event.meta.table.as_bytes());
        }
        KeyMode::Table => {
            out.extend_from_slice(event.meta.schema.as_bytes());
            out.push(b'.');
            out.extend_from_slice(event.meta.table.as_bytes());
        }
        KeyMode::PrimaryKey => {
            let image = event.key_image();
            let mut ser = serde_json::Serializer::new(out);
            let result = if event.meta.primary_key.is_empty() {
                Values(image).serialize(&mut ser)
            } else {
                let mut seq = ser
                    .serialize_seq(Some(event.meta.primary_key.len()))
                    .expect("vec");
                for &i in &event.meta.primary_key {
                    seq.serialize_element(&JsonValue(image.get(i).unwrap_or(&Value::Null)))
                        .expect("vec");
                }
                SerializeSeq::end(seq)
            };
            result.expect("serializing to a Vec");
        }
    }
}

struct ContractEvent<'a>(&'a ChangeEvent);

struct Names<'a>(&'a [String]);
struct Values<'a>(&'a [Value]);
struct JsonValue<'a>(&'a Value);
struct OldKeys<'a>(&'a ChangeEvent);

impl Serialize for ContractEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.0;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("kind", ev.kind.as_str())?;
        map.serialize_entry("schema", &ev.meta.schema)?;
        map.serialize_entry("table", &ev.meta.table)?;
        if matches!(ev.kind, Kind::Delete | Kind::Truncate) {
            map.serialize_entry("columnnames", &Names(&[]))?;
            map.serialize_entry("columnvalues", &Values(&[]))?;
        } else {
            map.serialize_entry("columnnames", &Names(&ev.meta.columns))?;
            map.serialize_entry("columnvalues", &Values(&ev.after))?;
        }
        map.serialize_entry("oldkeys", &OldKeys(ev))?;
        map.end()
    }
}

impl Serialize for Names<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(JsonValue))
    }
}

impl Serialize for OldKeys<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.0;
        match ev.kind {
            Kind::Insert | Kind::SnapshotInsert | Kind::Truncate => s.serialize_map(Some(0))?.end(),
            Kind::Update | Kind::Delete => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("keynames", &Names(&ev.meta.columns))?;
                map.serialize_entry("keyvalues", &Values(&ev.before))?;
                map.end()
            }
        }
    }
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Int(v) => s.serialize_i64(*v),
            Value::UInt(v) => s.serialize_u64(*v),
            Value::Float(v) => s.serialize_f32(*v),
            Value::Double(v) => s.serialize_f64(*v),
            Value::Decimal(v) | Value::String(v) => s.serialize_str(v),
            Value::Bytes(v) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
            }
            Value::Json(v) => v.serialize(s),
            other => s.serialize_str(&format_temporal(other)),
        }
    }
}

/// The contract's text form of DATE, DATETIME, TIMESTAMP and TIME values.
pub fn format_temporal(value: &Value) -> String {
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

fn push_fraction(out: &mut String, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    let fsp = fsp.min(6) as usize;
    let digits = format!("{micros:06}");
    out.push('.');
    out.push_str(&digits[..fsp]);
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{SourcePosition, TableMeta};
    use std::sync::Arc;

    fn event(kind: Kind, after: Vec<Value>, before: Vec<Value>) -> ChangeEvent {
        ChangeEvent {
            kind,
            meta: Arc::new(TableMeta {
                schema: "shop".into(),
                table: "orders".into(),
                columns: vec!["id".into(), "total".into()],
                primary_key: vec![0],
            }),
            after,
            before,
            position: SourcePosition::default(),
            timestamp: 0,
            route: None,
        }
    }

    fn json(ev: &ChangeEvent) -> String {
        let mut out = Vec::new();
        encode_value(ev, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn insert_matches_the_contract_example() {
        let ev = event(
            Kind::Insert,
            vec![Value::Int(7), Value::Decimal("19.990".into())],
            vec![],
        );
        assert_eq!(
            json(&ev),
            r#"{"kind":"insert","schema":"shop","table":"orders","columnnames":["id","total"],"columnvalues":[7,"19.990"],"oldkeys":{}}"#
        );
    }

    #[test]
    fn delete_has_empty_after_and_full_before() {
        let ev = event(Kind::Delete, vec![], vec![Value::Int(7), Value::Null]);
        assert_eq!(
            json(&ev),
            r#"{"kind":"delete","schema":"shop","table":"orders","columnnames":[],"columnvalues":[],"oldkeys":{"keynames":["id","total"],"keyvalues":[7,null]}}"#
        );
    }

    #[test]
    fn truncate_is_a_table_level_event() {
        let ev = ChangeEvent::truncate("shop", "orders", SourcePosition::default(), 0);
        let text = json(&ev);
        assert_eq!(
            text,
            r#"{"kind":"truncate","schema":"shop","table":"orders","columnnames":[],"columnvalues":[],"oldkeys":{}}"#
        );
        assert_eq!(Kind::parse("truncate"), Some(Kind::Truncate));
        assert_eq!(Kind::Truncate.as_str(), "truncate");
        for mode in [KeyMode::Table, KeyMode::PrimaryKey] {
            let mut k = Vec::new();
            encode_key(&ev, mode, &mut k);
            assert_eq!(k, b"shop.orders", "{mode:?}");
        }
        // `sluice transform test` reads it back to the same JSON, and refuses one with a row.
        let mut reader = EventReader::default();
        let back = reader.read(&text).unwrap();
        assert_eq!(back.kind, Kind::Truncate);
        assert!(back.meta.columns.is_empty() && back.after.is_empty());
        assert_eq!(json(&back), text);
        let err = reader
            .read(r#"{"kind":"truncate","schema":"shop","table":"orders","columnnames":["x"],"columnvalues":[1],"oldkeys":{}}"#)
            .unwrap_err();
        assert!(err.contains("line 2") && err.contains("truncate"), "{err}");
    }

    #[test]
    fn keys() {
        let ev = event(
            Kind::Update,
            vec![Value::UInt(u64::MAX), Value::Null],
            vec![Value::Int(1), Value::Null],
        );
        let mut k = Vec::new();
        encode_key(&ev, KeyMode::Table, &mut k);
        assert_eq!(k, b"shop.orders");
        k.clear();
        encode_key(&ev, KeyMode::PrimaryKey, &mut k);
        assert_eq!(k, b"[18446744073709551615]");
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
        assert_eq!(format_temporal(&dt), "2024-01-31T12:00:00.250");
        let ts = Value::Timestamp {
            secs: 1_706_702_400,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(format_temporal(&ts), "2024-01-31T12:00:00Z");
        let t = Value::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(format_temporal(&t), "-838:59:59");
        let t = Value::Time {
            negative: false,
            hours: 1,
            minutes: 2,
            seconds: 3,
            micros: 5,
            fsp: 6,
        };
        assert_eq!(format_temporal(&t), "01:02:03.000005");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}

/// Reads events in the contract's JSON format (one per line), as `sluice transform test` takes
/// them. JSON carries fewer types than MySQL: numbers become integers or doubles, strings
/// become text, objects and arrays JSON. Each publishes back to the same JSON.
#[derive(Default)]
pub struct EventReader {
    metas: std::collections::HashMap<
        (String, String, Vec<String>),
        std::sync::Arc<crate::event::TableMeta>,
    >,
    line: u64,
}

impl EventReader {
    pub fn read(&mut self, line: &str) -> Result<ChangeEvent, String> {
        use crate::event::{SourcePosition, TableMeta};
        self.line += 1;
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", self.line))?;
        let field = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("line {}: missing string field {k:?}", self.line))
        };
        let kind_text = field("kind")?;
        let kind = Kind::parse(&kind_text)
            .ok_or_else(|| format!("line {}: unknown kind {kind_text:?}", self.line))?;
        let names = |x: &serde_json::Value| -> Vec<String> {
            x.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let values = |x: &serde_json::Value| -> Vec<Value> {
            x.as_array()
                .map(|a| a.iter().map(from_json).collect())
                .unwrap_or_default()
        };
        let mut columns = names(&v["columnnames"]);
        if columns.is_empty() {
            columns = names(&v["oldkeys"]["keynames"]);
        }
        let (schema, table) = (field("schema")?, field("table")?);
        if kind == Kind::Truncate {
            // A table-level event: no columns and no values.
            let empty = |x: &serde_json::Value| {
                x.is_null()
                    || x.as_array().is_some_and(Vec::is_empty)
                    || x.as_object().is_some_and(|o| o.is_empty())
            };
            if !(empty(&v["columnnames"]) && empty(&v["columnvalues"]) && empty(&v["oldkeys"])) {
                return Err(format!(
                    "line {}: a \"truncate\" event has no row: its columnnames and columnvalues \
                     must be [] and its oldkeys {{}}",
                    self.line
                ));
            }
            return Ok(ChangeEvent::truncate(
                &schema,
                &table,
                SourcePosition {
                    file: std::sync::Arc::from("input"),
                    pos: self.line,
                    row: 0,
                    gtid: None,
                },
                0,
            ));
        }
        let meta = self
            .metas
            .entry((schema.clone(), table.clone(), columns.clone()))
            .or_insert_with(|| {
                std::sync::Arc::new(TableMeta {
                    schema,
                    table,
                    columns,
                    primary_key: vec![0],
                })
            })
            .clone();
        Ok(ChangeEvent {
            kind,
            meta,
            after: if kind == Kind::Delete {
                Vec::new()
            } else {
                values(&v["columnvalues"])
            },
            before: values(&v["oldkeys"]["keyvalues"]),
            position: SourcePosition {
                file: std::sync::Arc::from("input"),
                pos: self.line,
                row: 0,
                gtid: None,
            },
            timestamp: 0,
            route: None,
        })
    }
}

fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Int(i64::from(*b)),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        other => Value::Json(other.clone()),
    }
}
