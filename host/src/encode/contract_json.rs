//! The contract's event JSON (`shared/CONTRACT.md`, "Event format"), for the host's events.
//!
//! `{"kind","schema","table","columnnames","columnvalues","oldkeys"}` with each MySQL value in
//! the form the contract's table gives. The forms themselves live in `sluice_contract::json`
//! (shared with the transform SDK); this module applies them to a [`ChangeEvent`], builds the
//! Kafka key, and reads events back for `sluice transform test`. The golden files in
//! `tests/golden/` pin the output down.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use std::sync::Arc;

use sluice_contract::json::{columns_json, parse_event, EventJson, JsonValue, JsonValues};

use crate::event::{ChangeEvent, Kind, SourcePosition, TableMeta, Value};

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

/// The event's parts, as the shared encoder takes them.
pub(crate) fn event_json(event: &ChangeEvent) -> EventJson<'_> {
    EventJson {
        kind: event.kind,
        schema: &event.meta.schema,
        table: &event.meta.table,
        columns: &event.meta.columns,
        after: &event.after,
        before: &event.before,
    }
}

/// Appends the event's contract JSON to `out`.
pub fn encode_value(event: &ChangeEvent, out: &mut Vec<u8>) {
    event_json(event).write(out);
}

/// Encodes events' contract JSON for a sink, keeping the column-names array of the tables it
/// saw last (by their shared [`TableMeta`]), so that it is escaped once per table version
/// instead of once or twice per event. Its output is [`encode_value`]'s, byte for byte.
#[derive(Default)]
pub(crate) struct ValueEncoder {
    /// At most [`ValueEncoder::TABLES`] entries, the most recently used last. Holding the
    /// `Arc` keeps its address from being reused by another table's metadata.
    recent: Vec<(Arc<TableMeta>, Vec<u8>)>,
}

impl ValueEncoder {
    const TABLES: usize = 16;

    /// Appends the event's contract JSON to `out`.
    pub(crate) fn encode(&mut self, event: &ChangeEvent, out: &mut Vec<u8>) {
        let i = match self
            .recent
            .iter()
            .position(|(m, _)| Arc::ptr_eq(m, &event.meta))
        {
            // The most recently used last: with more tables than it keeps, the busy ones stay.
            Some(i) if i + 1 == self.recent.len() => i,
            Some(i) => {
                let entry = self.recent.remove(i);
                self.recent.push(entry);
                self.recent.len() - 1
            }
            None => {
                if self.recent.len() == Self::TABLES {
                    self.recent.remove(0);
                }
                let names = columns_json(&event.meta.columns);
                self.recent.push((Arc::clone(&event.meta), names));
                self.recent.len() - 1
            }
        };
        event_json(event).write_with_columns(&self.recent[i].1, out);
    }
}

/// Appends the event's Kafka key to `out`.
///
/// With [`KeyMode::PrimaryKey`] and a table without a primary key, the whole row identifies it.
/// A table-level `truncate` event has no row: its key is `"{schema}.{table}"` in both modes (the
/// Kafka sink publishes it to every partition of the topic in `primary_key` mode, so that it
/// reaches the partitions of all the table's rows).
pub(crate) fn encode_key(event: &ChangeEvent, mode: KeyMode, out: &mut Vec<u8>) {
    if event.kind == Kind::Truncate || mode == KeyMode::Table {
        out.extend_from_slice(event.meta.schema.as_bytes());
        out.push(b'.');
        out.extend_from_slice(event.meta.table.as_bytes());
        return;
    }
    let image = event.key_image();
    let mut ser = serde_json::Serializer::new(out);
    let result = if event.meta.primary_key.is_empty() {
        JsonValues(image).serialize(&mut ser)
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
    // Serializing plain data into a Vec cannot fail.
    result.expect("serializing to a Vec");
}

/// Reads events in the contract's JSON format (one per line), as `sluice transform test` takes
/// them (`sluice_contract::json::parse_event`). Each event's position is `input:{line}#0`.
#[derive(Default)]
pub struct EventReader {
    metas: std::collections::HashMap<(String, String, Vec<String>), std::sync::Arc<TableMeta>>,
    line: u64,
}

impl EventReader {
    pub fn read(&mut self, line: &str) -> Result<ChangeEvent, String> {
        self.line += 1;
        let p = parse_event(line).map_err(|e| format!("line {}: {e}", self.line))?;
        let position = SourcePosition {
            file: std::sync::Arc::from("input"),
            pos: self.line,
            row: 0,
            gtid: None,
            snapshot: false,
            cursor: None,
            held: None,
        };
        if p.kind == Kind::Truncate {
            return Ok(ChangeEvent::truncate(&p.schema, &p.table, position, 0));
        }
        let meta = self
            .metas
            .entry((p.schema.clone(), p.table.clone(), p.columns.clone()))
            .or_insert_with(|| {
                std::sync::Arc::new(TableMeta {
                    schema: p.schema,
                    table: p.table,
                    columns: p.columns,
                    primary_key: vec![0],
                })
            })
            .clone();
        Ok(ChangeEvent {
            kind: p.kind,
            meta,
            after: p.after,
            before: p.before,
            position,
            timestamp: 0,
            route: None,
        })
    }
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
    fn the_sinks_encoder_writes_what_encode_value_writes() {
        let mut enc = ValueEncoder::default();
        let mut events = vec![];
        for kind in [
            Kind::Insert,
            Kind::Update,
            Kind::Delete,
            Kind::SnapshotInsert,
        ] {
            let mut ev = event(
                kind,
                vec![Value::Int(7), Value::Decimal("1.5".into())],
                vec![Value::Int(6), Value::Null],
            );
            if kind == Kind::Delete {
                ev.after.clear();
            }
            events.push(ev);
        }
        // More tables than the encoder keeps, each with other column names ("a\"b" needs
        // escaping), and back to the first.
        for n in 0..20 {
            let mut ev = events[1].clone();
            ev.meta = Arc::new(TableMeta {
                columns: vec![format!("c{n}"), "a\"b".into()],
                ..(*ev.meta).clone()
            });
            events.push(ev);
        }
        events.push(events[0].clone());
        events.push(ChangeEvent::truncate(
            "shop",
            "orders",
            SourcePosition::default(),
            0,
        ));
        for ev in &events {
            let mut fast = Vec::new();
            enc.encode(ev, &mut fast);
            assert_eq!(String::from_utf8_lossy(&fast), json(ev));
        }
        assert_eq!(enc.recent.len(), ValueEncoder::TABLES);
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
}
