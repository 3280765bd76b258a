//! The contract's event JSON (`CONTRACT.md`, "Event format"):
//! `{"kind","schema","table","columnnames","columnvalues","oldkeys"}`, each value in the form the
//! contract's value table gives.
//!
//! Design note: this is the one place that knows those forms. The host streams an event
//! straight into its output buffer through [`EventJson`] (no intermediate tree); the SDK builds
//! trees with [`value`] and [`event`] for transforms that write their own payloads; both read
//! events back with [`parse_event`]. The host's golden files (`tests/golden/`) pin the output.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value as Json;

use crate::{format, Kind, Value};

/// One value, serialized in the contract's form.
pub struct JsonValue<'a>(pub &'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Int(v) => s.serialize_i64(*v),
            Value::UInt(v) => s.serialize_u64(*v),
            Value::Float(v) => s.serialize_f32(*v),
            Value::Double(v) => s.serialize_f64(*v),
            Value::Decimal(v) | Value::Text(v) => s.serialize_str(v),
            Value::Bytes(v) => s.serialize_str(&format::base64(v)),
            Value::Json(v) => v.serialize(s),
            other => format::temporal_with(other, |t| s.serialize_str(t)),
        }
    }
}

/// A row image: a JSON array of values.
pub struct JsonValues<'a>(pub &'a [Value]);

impl Serialize for JsonValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(JsonValue))
    }
}

/// An event's parts, serialized as the contract's event object.
#[derive(Clone, Copy)]
pub struct EventJson<'a> {
    pub kind: Kind,
    pub schema: &'a str,
    pub table: &'a str,
    /// Every published column, in order.
    pub columns: &'a [String],
    /// The row after the change (ignored for `delete` and `truncate`).
    pub after: &'a [Value],
    /// The row before the change (for `update` and `delete`).
    pub before: &'a [Value],
}

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let no_row = matches!(self.kind, Kind::Delete | Kind::Truncate);
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("kind", self.kind.as_str())?;
        map.serialize_entry("schema", self.schema)?;
        map.serialize_entry("table", self.table)?;
        let none: &[String] = &[];
        map.serialize_entry("columnnames", if no_row { none } else { self.columns })?;
        map.serialize_entry(
            "columnvalues",
            &JsonValues(if no_row { &[] } else { self.after }),
        )?;
        map.serialize_entry("oldkeys", &OldKeys(self))?;
        map.end()
    }
}

struct OldKeys<'a>(&'a EventJson<'a>);

impl Serialize for OldKeys<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.0;
        match ev.kind {
            Kind::Insert | Kind::SnapshotInsert | Kind::Truncate => s.serialize_map(Some(0))?.end(),
            Kind::Update | Kind::Delete => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("keynames", ev.columns)?;
                map.serialize_entry("keyvalues", &JsonValues(ev.before))?;
                map.end()
            }
        }
    }
}

impl EventJson<'_> {
    /// Appends the event's JSON to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        // Serializing plain data into a Vec cannot fail.
        self.serialize(&mut serde_json::Serializer::new(out))
            .expect("serializing to a Vec");
    }

    /// Appends the event's JSON to `out`, like [`EventJson::write`], with `columns_json` (the
    /// JSON array of `self.columns`, from [`columns_json`]) copied in place of encoding the
    /// column names again. A host that publishes many events of one table keeps that array
    /// per table: the names were a quarter of the encoder's string escaping.
    pub fn write_with_columns(&self, columns_json: &[u8], out: &mut Vec<u8>) {
        let no_row = matches!(self.kind, Kind::Delete | Kind::Truncate);
        out.extend_from_slice(br#"{"kind":""#);
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.extend_from_slice(br#"","schema":"#);
        write_str(out, self.schema);
        out.extend_from_slice(br#","table":"#);
        write_str(out, self.table);
        out.extend_from_slice(br#","columnnames":"#);
        out.extend_from_slice(if no_row { b"[]" } else { columns_json });
        out.extend_from_slice(br#","columnvalues":"#);
        write_values(out, if no_row { &[] } else { self.after });
        match self.kind {
            Kind::Insert | Kind::SnapshotInsert | Kind::Truncate => {
                out.extend_from_slice(br#","oldkeys":{}}"#);
            }
            Kind::Update | Kind::Delete => {
                out.extend_from_slice(br#","oldkeys":{"keynames":"#);
                out.extend_from_slice(columns_json);
                out.extend_from_slice(br#","keyvalues":"#);
                write_values(out, self.before);
                out.extend_from_slice(b"}}");
            }
        }
    }

    /// The event's JSON as a tree.
    pub fn to_json(&self) -> Json {
        let mut out = Vec::new();
        self.write(&mut out);
        serde_json::from_slice(&out).expect("the encoder writes valid JSON")
    }
}

/// The JSON array of column names that [`EventJson::write_with_columns`] copies in.
pub fn columns_json(columns: &[String]) -> Vec<u8> {
    serde_json::to_vec(columns).expect("serializing strings to a Vec")
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    s.serialize(&mut serde_json::Serializer::new(out))
        .expect("serializing to a Vec");
}

fn write_values(out: &mut Vec<u8>, values: &[Value]) {
    JsonValues(values)
        .serialize(&mut serde_json::Serializer::new(out))
        .expect("serializing to a Vec");
}

/// A value as a JSON tree, in the contract's form (what [`JsonValue`] writes).
pub fn value(v: &Value) -> Json {
    match v {
        // The shortest text of the f32 (as the streaming encoder writes it), not the f64 that a
        // tree would widen it to.
        Value::Float(x) => x
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Value::Json(j) => j.clone(),
        other => serde_json::to_value(JsonValue(other)).unwrap_or(Json::Null),
    }
}

/// A contract event object from its parts.
pub fn event(
    kind: Kind,
    schema: &str,
    table: &str,
    columns: &[String],
    after: &[Value],
    before: &[Value],
) -> Json {
    EventJson {
        kind,
        schema,
        table,
        columns,
        after,
        before,
    }
    .to_json()
}

/// Reads a JSON value of a contract event back into a [`Value`]. JSON carries fewer types than
/// MySQL: numbers become integers or doubles, strings text, booleans 0/1, and objects and
/// arrays JSON. Each publishes back to the same JSON.
pub fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Int(i64::from(*b)),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.clone()),
    }
}

/// An event read from the contract's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    pub kind: Kind,
    pub schema: String,
    pub table: String,
    /// `columnnames`, or `oldkeys.keynames` for a delete.
    pub columns: Vec<String>,
    /// `columnvalues` (empty for a delete).
    pub after: Vec<Value>,
    /// `oldkeys.keyvalues`.
    pub before: Vec<Value>,
}

/// Parses one event in the contract's JSON format. A `truncate` event must have no row.
pub fn parse_event(text: &str) -> Result<ParsedEvent, String> {
    let v: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("missing string field {k:?}"))
    };
    let kind_text = field("kind")?;
    let kind = Kind::parse(&kind_text).ok_or_else(|| format!("unknown kind {kind_text:?}"))?;
    let (schema, table) = (field("schema")?, field("table")?);
    if kind == Kind::Truncate {
        let empty = |x: &Json| {
            x.is_null()
                || x.as_array().is_some_and(Vec::is_empty)
                || x.as_object().is_some_and(|o| o.is_empty())
        };
        if !(empty(&v["columnnames"]) && empty(&v["columnvalues"]) && empty(&v["oldkeys"])) {
            return Err(
                "a \"truncate\" event has no row: its columnnames and columnvalues \
                        must be [] and its oldkeys {}"
                    .to_owned(),
            );
        }
        return Ok(ParsedEvent {
            kind,
            schema,
            table,
            columns: Vec::new(),
            after: Vec::new(),
            before: Vec::new(),
        });
    }
    let names = |x: &Json| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let values = |x: &Json| -> Vec<Value> {
        x.as_array()
            .map(|a| a.iter().map(from_json).collect())
            .unwrap_or_default()
    };
    let mut columns = names(&v["columnnames"]);
    if columns.is_empty() {
        columns = names(&v["oldkeys"]["keynames"]);
    }
    let after = if kind == Kind::Delete {
        Vec::new()
    } else {
        values(&v["columnvalues"])
    };
    let before = values(&v["oldkeys"]["keyvalues"]);
    // Each row image the kind has names every column once.
    let check = |image: &[Value], what: &str| {
        if image.len() == columns.len() {
            Ok(())
        } else {
            Err(format!(
                "{what} has {} values for {} columns: a {} event's row images list every column",
                image.len(),
                columns.len(),
                kind.as_str()
            ))
        }
    };
    if kind != Kind::Delete {
        check(&after, "columnvalues")?;
    }
    if matches!(kind, Kind::Update | Kind::Delete) {
        check(&before, "oldkeys.keyvalues")?;
    }
    Ok(ParsedEvent {
        kind,
        schema,
        table,
        columns,
        after,
        before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols() -> Vec<String> {
        vec!["id".into(), "total".into()]
    }

    /// The event's JSON, which both writers must produce byte for byte.
    fn text(e: EventJson<'_>) -> String {
        let mut out = Vec::new();
        e.write(&mut out);
        let mut fast = Vec::new();
        e.write_with_columns(&columns_json(e.columns), &mut fast);
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&out)
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_column_doubles_read_back_to_the_same_text() {
        // The snapshot and transform-edited cells parse a JSON column's text; the binlog path
        // gets its doubles as f64. Without serde_json's `float_roundtrip`, about one double in
        // ten read back one ulp off, so the two paths published different digits.
        for text in [
            "200.15760496183321",
            "0.1",
            "1e-7",
            "123456.789012345",
            "2.2250738585072014e-308",
        ] {
            let v: Json = serde_json::from_str(text).unwrap();
            let back: Json = serde_json::from_str(&v.to_string()).unwrap();
            assert_eq!(back, v, "{text}");
            assert_eq!(v.as_f64(), text.parse::<f64>().ok(), "{text}");
        }
    }

    #[test]
    fn insert_matches_the_contract_example() {
        let after = [Value::Int(7), Value::Decimal("19.990".into())];
        let e = EventJson {
            kind: Kind::Insert,
            schema: "shop",
            table: "orders",
            columns: &cols(),
            after: &after,
            before: &[],
        };
        assert_eq!(
            text(e),
            r#"{"kind":"insert","schema":"shop","table":"orders","columnnames":["id","total"],"columnvalues":[7,"19.990"],"oldkeys":{}}"#
        );
    }

    #[test]
    fn delete_and_truncate_have_no_after_row() {
        let before = [Value::Int(7), Value::Null];
        let c = cols();
        let delete = EventJson {
            kind: Kind::Delete,
            schema: "shop",
            table: "orders",
            columns: &c,
            after: &[],
            before: &before,
        };
        assert_eq!(
            text(delete),
            r#"{"kind":"delete","schema":"shop","table":"orders","columnnames":[],"columnvalues":[],"oldkeys":{"keynames":["id","total"],"keyvalues":[7,null]}}"#
        );
        let truncate = EventJson {
            kind: Kind::Truncate,
            columns: &[],
            before: &[],
            ..delete
        };
        let t = text(truncate);
        assert_eq!(
            t,
            r#"{"kind":"truncate","schema":"shop","table":"orders","columnnames":[],"columnvalues":[],"oldkeys":{}}"#
        );
        assert_eq!(parse_event(&t).unwrap().kind, Kind::Truncate);
        let err = parse_event(r#"{"kind":"truncate","schema":"s","table":"t","columnnames":["x"],"columnvalues":[1],"oldkeys":{}}"#).unwrap_err();
        assert!(err.contains("truncate"), "{err}");
    }

    #[test]
    fn tree_and_stream_forms_agree() {
        let values = [
            Value::Null,
            Value::Int(-3),
            Value::UInt(u64::MAX),
            Value::Float(2.71),
            Value::Double(0.1),
            Value::Decimal("19.990".into()),
            Value::Text("é\"x".into()),
            Value::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF, 0x00]),
            Value::Timestamp {
                secs: 1_706_702_400,
                micros: 250_000,
                fsp: 3,
            },
            Value::Json(json!({"a": [1, 2.5, null]})),
        ];
        for v in &values {
            let streamed: Json =
                serde_json::from_slice(&serde_json::to_vec(&JsonValue(v)).unwrap()).unwrap();
            assert_eq!(value(v), streamed, "{v:?}");
        }
        assert_eq!(value(&Value::Float(2.71)), json!(2.71));
        assert_eq!(value(&values[7]), json!("3q2+7wA="));
        assert_eq!(value(&values[8]), json!("2024-01-31T12:00:00.250Z"));
    }

    #[test]
    fn parse_reads_what_write_wrote() {
        let c = cols();
        let after = [Value::Int(1), Value::Text("a".into())];
        let before = [Value::Int(1), Value::Json(json!([true]))];
        let e = EventJson {
            kind: Kind::Update,
            schema: "shop",
            table: "orders",
            columns: &c,
            after: &after,
            before: &before,
        };
        let p = parse_event(&text(e)).unwrap();
        assert_eq!(p.columns, c);
        assert_eq!(p.after, after);
        assert_eq!(p.before, before);
        assert_eq!(
            text(e),
            text(EventJson {
                after: &p.after,
                before: &p.before,
                ..e
            })
        );
        assert!(parse_event("{").unwrap_err().starts_with("not JSON"));
        let err = parse_event(r#"{"kind":"insert","schema":"s","table":"t","columnnames":["a","b"],"columnvalues":[1,2,3],"oldkeys":{}}"#).unwrap_err();
        assert!(
            err.contains("columnvalues has 3 values for 2 columns"),
            "{err}"
        );
        let err = parse_event(r#"{"kind":"update","schema":"s","table":"t","columnnames":["a"],"columnvalues":[1],"oldkeys":{"keynames":["a"],"keyvalues":[]}}"#).unwrap_err();
        assert!(
            err.contains("oldkeys.keyvalues has 0 values for 1 columns"),
            "{err}"
        );
        assert!(parse_event(r#"{"kind":"upsert","schema":"s","table":"t"}"#)
            .unwrap_err()
            .contains("unknown kind"));
    }
}
