//! Column values and event kinds, typed as MySQL defines them.

/// What happened to the row. The names are the contract's `kind` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A row read by the initial snapshot.
    SnapshotInsert,
    Insert,
    Update,
    Delete,
    /// *(added to the contract)* A table-level event: every row of the table was removed or
    /// replaced without row events (TRUNCATE, DROP TABLE, CREATE OR REPLACE, a rename away). It
    /// carries no columns and no values; a consumer clears its copy of the table. Debezium's
    /// `op: "t"` is the precedent.
    Truncate,
}

impl Kind {
    /// The contract's `kind` string.
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

/// One column value. Each variant maps to exactly one JSON form in the contract's value table
/// (see [`crate::json`]).
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
    /// joined by commas, and MariaDB JSON (which the server stores as text).
    Text(String),
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
    /// A MySQL JSON document, published as the JSON value itself.
    Json(serde_json::Value),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a `Text` or `Decimal` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Decimal(s) => Some(s),
            _ => None,
        }
    }

    /// An integer value (signed, or unsigned within range).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(v) => Some(v),
            Value::UInt(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A number of any kind as `f64` (DECIMAL text is parsed).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::UInt(v) => Some(*v as f64),
            Value::Float(v) => Some(f64::from(*v)),
            Value::Double(v) => Some(*v),
            Value::Decimal(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value's size plus its heap data (an estimate for JSON), for memory bounds.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Decimal(s) | Value::Text(s) => s.len(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_contract_names() {
        for k in [
            Kind::SnapshotInsert,
            Kind::Insert,
            Kind::Update,
            Kind::Delete,
            Kind::Truncate,
        ] {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("upsert"), None);
    }

    #[test]
    fn accessors() {
        assert_eq!(Value::Decimal("1.50".into()).as_f64(), Some(1.5));
        assert_eq!(Value::UInt(u64::MAX).as_i64(), None);
        assert_eq!(Value::Text("x".into()).as_str(), Some("x"));
        assert!(Value::Null.is_null());
        assert!(Value::Text("abc".into()).approx_bytes() > 3);
    }
}
