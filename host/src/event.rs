//! The typed change-event model that every pipeline stage shares.
//!
//! Design note: an event is a typed row (an enum of MySQL values plus shared column
//! metadata), never a `serde_json::Value`. It is decoded once from the binlog, moves through
//! the transform chain and is serialized to the contract's JSON exactly once, in the sink
//! (`crate::encode`). Column names and key positions are shared per table version through an
//! `Arc<TableMeta>`, so an event costs one allocation for its values and none for its names.

use std::fmt;
use std::sync::Arc;

/// What happened to the row. The names are the contract's `kind` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A row read by the initial snapshot.
    SnapshotInsert,
    Insert,
    Update,
    Delete,
    /// *(added to the contract)* A table-level event: every row of the table was removed or
    /// replaced without row events (TRUNCATE, DROP TABLE, CREATE OR REPLACE, a rename away),
    /// published under `ON_TABLE_RESET=event`. It carries no columns and no values; a consumer
    /// clears its copy of the table. Debezium's `op: "t"` is the precedent.
    Truncate,
}

impl Kind {
    /// The contract's string for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SnapshotInsert => "snapshot_insert",
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Truncate => "truncate",
        }
    }

    /// Parses a contract `kind` string.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "snapshot_insert" => Kind::SnapshotInsert,
            "insert" => Kind::Insert,
            "update" => Kind::Update,
            "delete" => Kind::Delete,
            "truncate" => Kind::Truncate,
            _ => return None,
        })
    }
}

/// One column value, typed as MySQL defines it. Each variant maps to exactly one JSON form
/// in the contract's value table (see `crate::encode::contract_json`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// TINYINT … BIGINT signed, and YEAR.
    Int(i64),
    /// TINYINT … BIGINT unsigned, and BIT.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL, exact, already formatted with the column's scale (`"19.990"`).
    Decimal(String),
    /// CHAR, VARCHAR, TEXT (decoded with the column's character set), ENUM labels, SET labels
    /// joined by commas, and MariaDB JSON (which is stored as text).
    String(String),
    /// BINARY, VARBINARY, BLOB: published as base64.
    Bytes(Vec<u8>),
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// DATETIME(fsp): `micros` is the fraction; `fsp` digits of it are printed.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
        fsp: u8,
    },
    /// TIMESTAMP(fsp), as seconds since the epoch (UTC).
    Timestamp {
        secs: i64,
        micros: u32,
        fsp: u8,
    },
    /// TIME(fsp): a signed duration, -838:59:59 … 838:59:59.
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
        fsp: u8,
    },
    /// MySQL's binary JSON, decoded into the JSON value itself.
    Json(serde_json::Value),
}

impl Value {
    /// The value's size plus its heap data (an estimate for JSON), for memory bounds.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Decimal(s) | Value::String(s) => s.len(),
                Value::Bytes(b) => b.len(),
                Value::Json(j) => json_bytes(j),
                _ => 0,
            }
    }
}

fn json_bytes(v: &serde_json::Value) -> usize {
    std::mem::size_of::<serde_json::Value>()
        + match v {
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Array(a) => a.iter().map(json_bytes).sum(),
            serde_json::Value::Object(o) => {
                o.iter().map(|(k, v)| k.len() + 32 + json_bytes(v)).sum()
            }
            _ => 0,
        }
}

/// The shape of one table version: names in table column order, and which of them form the
/// primary key. Shared by every event of that table until its schema changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableMeta {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    /// Indexes into `columns`, in key order. Empty when the table has no primary key.
    pub primary_key: Vec<usize>,
}

impl TableMeta {
    /// `"{schema}.{table}"`, the contract's default Kafka key.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Where an event came from in the source, totally ordered within one server's history.
///
/// Binlog events are ordered by `(file, pos)` of their transaction's commit, then `row`;
/// snapshot rows by their chunk and row. Every published event carries this in Kafka headers,
/// which is what later lets recovery skip what a partition already holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePosition {
    /// Binlog file that holds the event.
    pub file: Arc<str>,
    /// Start offset of the transaction (its GTID or BEGIN event) in `file`.
    pub pos: u64,
    /// Index of the row within its transaction, counting from 0.
    pub row: u32,
    /// The transaction's GTID, where GTIDs are on.
    pub gtid: Option<Arc<str>>,
}

/// A row change, the unit every stage handles.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub kind: Kind,
    pub meta: Arc<TableMeta>,
    /// The row after the change, in `meta.columns` order. Empty for `delete`.
    pub after: Vec<Value>,
    /// The row before the change, for `update` and `delete`. Empty otherwise.
    pub before: Vec<Value>,
    pub position: SourcePosition,
    /// Commit time of the source transaction (seconds since the epoch), 0 when unknown.
    pub timestamp: u32,
    /// Destination overrides set by transforms (`None`: the configured topic, key and JSON).
    pub route: Option<Box<Route>>,
}

/// Where and how a transformed event is published, when a transform changed it. Boxed in
/// [`ChangeEvent`] because most events have none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub topic: Option<String>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The message value, instead of the contract's JSON.
    pub payload: Option<Vec<u8>>,
    /// A dead letter: the original event that a transform failed on. Later transforms leave
    /// it alone; the stdout sink logs it instead of printing it.
    pub dead_letter: bool,
}

impl ChangeEvent {
    /// The route, created on first use.
    pub fn route_mut(&mut self) -> &mut Route {
        self.route.get_or_insert_with(Default::default)
    }

    /// An estimate of the memory this event holds (its values and their heap data), used to
    /// bound the bytes in flight between stages. Shared table metadata is not counted.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<ChangeEvent>()
            + self
                .after
                .iter()
                .chain(&self.before)
                .map(Value::approx_bytes)
                .sum::<usize>()
            + self.route.as_deref().map_or(0, |r| {
                std::mem::size_of::<Route>()
                    + r.topic.as_ref().map_or(0, String::len)
                    + r.key.as_ref().map_or(0, Vec::len)
                    + r.payload.as_ref().map_or(0, Vec::len)
                    + r.headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 48)
                        .sum::<usize>()
            })
    }

    /// A table-level `truncate` event for `schema.table` at `position`: no columns, no values.
    pub fn truncate(schema: &str, table: &str, position: SourcePosition, timestamp: u32) -> Self {
        ChangeEvent {
            kind: Kind::Truncate,
            meta: Arc::new(TableMeta {
                schema: schema.to_owned(),
                table: table.to_owned(),
                columns: Vec::new(),
                primary_key: Vec::new(),
            }),
            after: Vec::new(),
            before: Vec::new(),
            position,
            timestamp,
            route: None,
        }
    }

    /// The row image that identifies the row: `after`, or `before` for a delete.
    pub fn key_image(&self) -> &[Value] {
        if self.kind == Kind::Delete {
            &self.before
        } else {
            &self.after
        }
    }
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}#{}", self.file, self.pos, self.row)
    }
}
