//! Keyset chunks: the SQL that reads a table in key order, and the cursor saved between chunks.
//!
//! Design note: each chunk is `SELECT … FROM t FORCE INDEX(k) WHERE <after the cursor> ORDER BY
//! k LIMIT n`. The predicate is always the *expanded* form `(k1 > ?) OR (k1 = ? AND k2 > ?) OR …`
//! (`<` for a column indexed DESC), because MariaDB does not range-optimise the row-constructor
//! form `(k1, k2) > (?, ?)` (finding 7 of `docs/SNAPSHOT.md`). Sluice never compares keys itself:
//! the cursor keeps the key's raw values exactly as read, and the server compares them as the
//! index does. Strings are bound as their raw bytes, reinterpreted in the column's character set
//! and collation: `CONVERT(UNHEX(?) USING cs) COLLATE coll` (finding 8). The bytes travel as hex
//! text because a string parameter is taken in the connection's character set, which mangles
//! bytes that are not valid there (latin1 `é` is 0xE9, invalid UTF-8; the live check in
//! `values.rs` caught it); binary strings likewise as `UNHEX(?)`. ENUM and SET are bound by
//! index through an extra `(col + 0)` select expression (finding 9), DECIMAL through
//! `CAST(? AS DECIMAL(p,s))`, everything else as the typed value.
//!
//! The cursor is saved in the snapshot state file as a JSON array with one single-key object per
//! key column, readable and exact:
//!
//! | form | key column |
//! |---|---|
//! | `{"i":-5}` | signed integers |
//! | `{"u":18446744073709551615}` | unsigned integers (and YEAR, flagged UNSIGNED), BIT, ENUM index, SET bitmask |
//! | `{"f32":"3fc00000"}`, `{"f64":"400921fb54442d18"}` | FLOAT, DOUBLE: the IEEE bits in hex |
//! | `{"dec":"19.990"}` | DECIMAL, the server's text (ZEROFILL padding stripped) |
//! | `{"b64":"bGluZS0x"}` | strings and binary strings: base64 of the raw bytes, in the column's character set |
//! | `{"dt":"2024-01-31 12:00:00.250000"}` | DATE, DATETIME, TIMESTAMP (UTC: the session is `+00:00`) |
//! | `{"time":"-838:59:59.000000"}` | TIME |

use mysql_async::consts::ColumnFlags;
use mysql_async::{Row, Value as MyValue};
use serde::{Deserialize, Serialize};

use super::error::SnapshotError;
use super::table::{quote, Bind, KeySource, SnapshotTable};
use super::values::{integer, strip_zerofill};
use crate::event::Value;

/// The last key read, as typed raw values; saved in the snapshot state file (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor(Vec<CursorValue>);

/// One key column's raw value. See the module note for the JSON forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CursorValue {
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "u")]
    UInt(u64),
    /// FLOAT's bits.
    #[serde(rename = "f32", with = "hex32")]
    Float(u32),
    /// DOUBLE's bits.
    #[serde(rename = "f64", with = "hex64")]
    Double(u64),
    #[serde(rename = "dec")]
    Decimal(String),
    #[serde(rename = "b64", with = "b64")]
    Bytes(Vec<u8>),
    #[serde(rename = "dt", with = "datetime")]
    DateTime(DateTimeParts),
    #[serde(rename = "time", with = "time")]
    Time(TimeParts),
}

/// `mysql_async::Value::Date`'s parts: year, month, day, hour, minute, second, microseconds.
type DateTimeParts = (u16, u8, u8, u8, u8, u8, u32);
/// `mysql_async::Value::Time`'s parts, with the days folded into the hours: negative, hours,
/// minutes, seconds, microseconds.
type TimeParts = (bool, u32, u8, u8, u32);

impl SnapshotTable {
    /// The first chunk of a keyed table: `SELECT <cols>[, <cursor exprs>] FROM `s`.`t` FORCE INDEX(`k`) ORDER BY k1 [DESC], … LIMIT n`.
    pub(crate) fn first_chunk_sql(&self, limit: usize) -> String {
        self.chunk_sql(None, limit)
    }

    /// The chunks after a cursor: the same, with the EXPANDED keyset predicate
    /// `WHERE (k1 > ?) OR (k1 = ? AND k2 > ?) OR (k1 = ? AND k2 = ? AND k3 > ?)` (`<` for DESC index columns).
    pub(crate) fn next_chunk_sql(&self, limit: usize) -> String {
        self.chunk_sql(Some(&self.after_predicate()), limit)
    }

    /// How many rows lie after one cursor (`from`, when given) and at or before another, in
    /// the index's order: `SELECT COUNT(*) … WHERE (<after from>) AND NOT (<after upto>)`.
    /// Parameters: `cursor_params(from)` (when given), then `cursor_params(upto)`. The server
    /// compares, as it does for the chunks.
    pub(crate) fn count_through_sql(&self, from: bool) -> String {
        let after = self.after_predicate();
        let mut sql = format!("SELECT COUNT(*) FROM {}", self.from);
        match &self.key_source {
            KeySource::Primary => sql.push_str(" FORCE INDEX (PRIMARY)"),
            KeySource::Unique(name) => sql.push_str(&format!(" FORCE INDEX ({})", quote(name))),
            KeySource::None => {}
        }
        if from {
            sql.push_str(&format!(" WHERE ({after}) AND NOT ({after})"));
        } else {
            sql.push_str(&format!(" WHERE NOT ({after})"));
        }
        sql
    }

    /// The EXPANDED keyset predicate "after the cursor":
    /// `(k1 > ?) OR (k1 = ? AND k2 > ?) OR …` (`<` for DESC index columns).
    fn after_predicate(&self) -> String {
        let name = |i: usize| quote(&self.columns[self.key[i].column].name);
        let terms: Vec<String> = (0..self.key.len())
            .map(|j| {
                let mut t: Vec<String> = (0..j)
                    .map(|i| format!("{} = {}", name(i), self.placeholder(i)))
                    .collect();
                let op = if self.key[j].desc { '<' } else { '>' };
                t.push(format!("{} {op} {}", name(j), self.placeholder(j)));
                format!("({})", t.join(" AND "))
            })
            .collect();
        terms.join(" OR ")
    }

    /// Positional parameters for `next_chunk_sql`, in placeholder order. The cursor must come
    /// from this key ([`SnapshotTable::cursor_fits`]; the state file's key signature guards
    /// that across restarts): a cursor of another length gives the wrong number of
    /// parameters, which the server refuses.
    pub(crate) fn cursor_params(&self, cursor: &Cursor) -> Vec<MyValue> {
        debug_assert!(self.cursor_fits(cursor), "a cursor of another key");
        let n = cursor.0.len().min(self.key.len());
        let mut out = Vec::with_capacity(n * (n + 1) / 2);
        for j in 0..n {
            out.extend(
                cursor.0[..=j]
                    .iter()
                    .zip(&self.key)
                    .map(|(v, k)| v.to_param(&k.bind)),
            );
        }
        out
    }

    /// Whether `cursor` has one value per key column (a cursor saved for this key).
    pub(crate) fn cursor_fits(&self, cursor: &Cursor) -> bool {
        cursor.0.len() == self.key.len()
    }

    /// A keyless table: one unordered `SELECT <cols> FROM t` (no LIMIT).
    pub(crate) fn full_scan_sql(&self) -> String {
        format!("SELECT {} FROM {}", self.select_list, self.from)
    }

    /// The key of a row read with the chunk SQL (call before `values`, on the last row of a chunk).
    pub(crate) fn cursor_of(&self, row: &Row) -> Result<Cursor, SnapshotError> {
        self.key
            .iter()
            .map(|k| {
                let index = match k.bind {
                    Bind::Ordinal { extra } => extra,
                    _ => k.column,
                };
                let bad = |detail: String| SnapshotError::InvalidValue {
                    table: self.qualified_name(),
                    column: self.columns[k.column].name.clone(),
                    detail,
                };
                let v = row
                    .as_ref(index)
                    .ok_or_else(|| bad(format!("the row has no key value at position {index}")))?;
                let unsigned = row
                    .columns_ref()
                    .get(index)
                    .is_some_and(|c| c.flags().contains(ColumnFlags::UNSIGNED_FLAG));
                CursorValue::read(&k.bind, v, unsigned).map_err(bad)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cursor)
    }

    fn chunk_sql(&self, predicate: Option<&str>, limit: usize) -> String {
        let index = match &self.key_source {
            KeySource::Primary => "PRIMARY".to_owned(),
            KeySource::Unique(name) => quote(name),
            KeySource::None => return format!("{} LIMIT {limit}", self.full_scan_sql()),
        };
        let mut sql = format!("SELECT {}", self.select_list);
        for k in &self.key {
            if let Bind::Ordinal { .. } = k.bind {
                sql.push_str(&format!(", ({} + 0)", quote(&self.columns[k.column].name)));
            }
        }
        sql.push_str(&format!(" FROM {} FORCE INDEX ({index})", self.from));
        if let Some(p) = predicate {
            sql.push_str(" WHERE ");
            sql.push_str(p);
        }
        let order: Vec<String> = self
            .key
            .iter()
            .map(|k| {
                let name = quote(&self.columns[k.column].name);
                if k.desc {
                    format!("{name} DESC")
                } else {
                    name
                }
            })
            .collect();
        sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", order.join(", ")));
        sql
    }

    /// The placeholder expression of key column `i`.
    fn placeholder(&self, i: usize) -> String {
        match &self.key[i].bind {
            Bind::Plain | Bind::Bit | Bind::Ordinal { .. } => "?".to_owned(),
            Bind::Binary => "UNHEX(?)".to_owned(),
            Bind::Decimal { precision, scale } => {
                format!("CAST(? AS DECIMAL({precision},{scale}))")
            }
            // Character set and collation names are plain identifiers from the catalog.
            Bind::Collated { charset, collation } => {
                format!("CONVERT(UNHEX(?) USING {charset}) COLLATE {collation}")
            }
        }
    }
}

impl CursorValue {
    /// A key value as read (binary protocol) into its cursor form.
    /// `unsigned`: the result column's UNSIGNED flag (`mysql_common` reads unsigned values that
    /// fit an `i64` as `Int`).
    fn read(bind: &Bind, v: &MyValue, unsigned: bool) -> Result<CursorValue, String> {
        Ok(match (bind, v) {
            (_, MyValue::NULL) => return Err("NULL in a key column".into()),
            (Bind::Plain, MyValue::Int(_) | MyValue::UInt(_)) => match integer(v, unsigned)? {
                Value::UInt(u) => CursorValue::UInt(u),
                Value::Int(i) => CursorValue::Int(i),
                other => return Err(format!("{other:?} as an integer key")),
            },
            (Bind::Ordinal { .. }, MyValue::Int(i)) => CursorValue::UInt(
                u64::try_from(*i).map_err(|_| format!("negative ENUM/SET index {i}"))?,
            ),
            (Bind::Bit, MyValue::Bytes(b)) => {
                if b.len() > 8 {
                    return Err(format!("{} bytes in a BIT value", b.len()));
                }
                CursorValue::UInt(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
            }
            (Bind::Decimal { .. }, MyValue::Bytes(b)) => CursorValue::Decimal(strip_zerofill(b)?),
            (_, MyValue::Bytes(b)) => CursorValue::Bytes(b.clone()),
            (_, MyValue::Int(i)) => CursorValue::Int(*i),
            (_, MyValue::UInt(u)) => CursorValue::UInt(*u),
            (_, MyValue::Float(f)) => CursorValue::Float(f.to_bits()),
            (_, MyValue::Double(d)) => CursorValue::Double(d.to_bits()),
            (_, &MyValue::Date(y, mo, d, h, mi, s, us)) => {
                CursorValue::DateTime((y, mo, d, h, mi, s, us))
            }
            (_, &MyValue::Time(neg, days, h, mi, s, us)) => {
                CursorValue::Time((neg, days * 24 + u32::from(h), mi, s, us))
            }
        })
    }

    /// The value bound to the key column's placeholder.
    /// The parameter for this value under `bind`: bytes of strings travel as hex text.
    fn to_param(&self, bind: &Bind) -> MyValue {
        match self {
            CursorValue::Bytes(b) if matches!(bind, Bind::Binary | Bind::Collated { .. }) => {
                let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
                MyValue::Bytes(hex.into_bytes())
            }
            CursorValue::Int(i) => MyValue::Int(*i),
            CursorValue::UInt(u) => MyValue::UInt(*u),
            CursorValue::Float(bits) => MyValue::Float(f32::from_bits(*bits)),
            CursorValue::Double(bits) => MyValue::Double(f64::from_bits(*bits)),
            CursorValue::Decimal(s) => MyValue::Bytes(s.clone().into_bytes()),
            CursorValue::Bytes(b) => MyValue::Bytes(b.clone()),
            &CursorValue::DateTime((y, mo, d, h, mi, s, us)) => {
                MyValue::Date(y, mo, d, h, mi, s, us)
            }
            &CursorValue::Time((neg, hours, mi, s, us)) => {
                MyValue::Time(neg, hours / 24, (hours % 24) as u8, mi, s, us)
            }
        }
    }
}

mod hex32 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bits: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{bits:08x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(&s, 16).map_err(D::Error::custom)
    }
}

mod hex64 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bits: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{bits:016x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(D::Error::custom)
    }
}

mod b64 {
    use base64::Engine as _;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(D::Error::custom)
    }
}

/// `YYYY-MM-DD hh:mm:ss.ffffff` (zero dates included: a DATETIME key may hold one).
mod datetime {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::DateTimeParts;

    pub(super) fn serialize<S: Serializer>(v: &DateTimeParts, s: S) -> Result<S::Ok, S::Error> {
        let (y, mo, d, h, mi, sec, us) = *v;
        s.serialize_str(&format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}.{us:06}"
        ))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTimeParts, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| D::Error::custom(format!("not a cursor datetime: {s:?}")))
    }

    fn parse(s: &str) -> Option<DateTimeParts> {
        let (date, time) = s.split_once(' ')?;
        let mut d = date.splitn(3, '-');
        let (y, mo, day) = (d.next()?, d.next()?, d.next()?);
        let (hms, us) = time.split_once('.')?;
        let mut t = hms.splitn(3, ':');
        let (h, mi, sec) = (t.next()?, t.next()?, t.next()?);
        Some((
            y.parse().ok()?,
            mo.parse().ok()?,
            day.parse().ok()?,
            h.parse().ok()?,
            mi.parse().ok()?,
            sec.parse().ok()?,
            us.parse().ok()?,
        ))
    }
}

/// `[-]hhh:mm:ss.ffffff`, the hours unbounded (TIME reaches 838).
mod time {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::TimeParts;

    pub(super) fn serialize<S: Serializer>(v: &TimeParts, s: S) -> Result<S::Ok, S::Error> {
        let (neg, h, mi, sec, us) = *v;
        let sign = if neg { "-" } else { "" };
        s.serialize_str(&format!("{sign}{h:02}:{mi:02}:{sec:02}.{us:06}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeParts, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| D::Error::custom(format!("not a cursor time: {s:?}")))
    }

    fn parse(s: &str) -> Option<TimeParts> {
        let (neg, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (hms, us) = rest.split_once('.')?;
        let mut t = hms.splitn(3, ':');
        let (h, mi, sec) = (t.next()?, t.next()?, t.next()?);
        Some((
            neg,
            h.parse().ok()?,
            mi.parse().ok()?,
            sec.parse().ok()?,
            us.parse().ok()?,
        ))
    }
}

/// Base64 of raw bytes, as the cursor's JSON holds them (for tests and diagnostics).
#[cfg(test)]
fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mysql_common::constants::{ColumnFlags, ColumnType};
    use mysql_common::packets::Column;
    use mysql_common::row::new_row;

    use super::super::table::tests::{col, part, table};
    use super::super::table::{CatalogColumn, IndexPart};
    use super::*;

    fn desc(mut p: IndexPart) -> IndexPart {
        p.desc = true;
        p
    }

    #[test]
    fn one_column_key() {
        let t = table(
            vec![col("id", "int"), col("v", "text")],
            vec![part("PRIMARY", 1, "id")],
        );
        assert_eq!(t.full_scan_sql(), "SELECT `id`, `v` FROM `db`.`t`");
        assert_eq!(
            t.first_chunk_sql(1000),
            "SELECT `id`, `v` FROM `db`.`t` FORCE INDEX (PRIMARY) ORDER BY `id` LIMIT 1000"
        );
        assert_eq!(
            t.next_chunk_sql(1000),
            "SELECT `id`, `v` FROM `db`.`t` FORCE INDEX (PRIMARY) WHERE (`id` > ?) \
             ORDER BY `id` LIMIT 1000"
        );
        let c = Cursor(vec![CursorValue::Int(5123)]);
        assert_eq!(t.cursor_params(&c), vec![MyValue::Int(5123)]);
    }

    #[test]
    fn two_column_key_with_a_desc_column() {
        let t = table(
            vec![col("a", "bigint"), col("b", "int"), col("x", "int")],
            vec![part("PRIMARY", 1, "a"), desc(part("PRIMARY", 2, "b"))],
        );
        assert_eq!(
            t.next_chunk_sql(7),
            "SELECT `a`, `b`, `x` FROM `db`.`t` FORCE INDEX (PRIMARY) \
             WHERE (`a` > ?) OR (`a` = ? AND `b` < ?) ORDER BY `a`, `b` DESC LIMIT 7"
        );
        // The count of rows between two cursors uses the same predicate, negated for the end.
        let after = "(`a` > ?) OR (`a` = ? AND `b` < ?)";
        assert_eq!(
            t.count_through_sql(true),
            format!(
                "SELECT COUNT(*) FROM `db`.`t` FORCE INDEX (PRIMARY) WHERE ({after}) AND NOT ({after})"
            )
        );
        assert_eq!(
            t.count_through_sql(false),
            format!("SELECT COUNT(*) FROM `db`.`t` FORCE INDEX (PRIMARY) WHERE NOT ({after})")
        );
        let c = Cursor(vec![CursorValue::UInt(u64::MAX), CursorValue::Int(-2)]);
        assert_eq!(
            t.cursor_params(&c),
            vec![
                MyValue::UInt(u64::MAX),
                MyValue::UInt(u64::MAX),
                MyValue::Int(-2)
            ]
        );
    }

    #[test]
    fn three_column_key_with_latin1_string_decimal_and_desc() {
        let mut name = col("name", "varchar");
        name.charset = Some("latin1".into());
        name.collation = Some("latin1_swedish_ci".into());
        let mut price = col("price", "decimal");
        price.precision = Some(10);
        price.scale = Some(3);
        let t = SnapshotTable::from_catalog(
            "shop",
            "items",
            vec![col("id", "int"), name, price, col("other", "int")],
            vec![
                part("k", 1, "id"),
                part("k", 2, "name"),
                desc(part("k", 3, "price")),
            ],
            None,
            "InnoDB".into(),
            0,
        )
        .expect("table");
        assert_eq!(t.key_source, KeySource::Unique("k".into()));
        let s = "CONVERT(UNHEX(?) USING latin1) COLLATE latin1_swedish_ci";
        let d = "CAST(? AS DECIMAL(10,3))";
        assert_eq!(
            t.next_chunk_sql(2),
            format!(
                "SELECT `id`, `name`, `price`, `other` FROM `shop`.`items` FORCE INDEX (`k`) \
                 WHERE (`id` > ?) OR (`id` = ? AND `name` > {s}) \
                 OR (`id` = ? AND `name` = {s} AND `price` < {d}) \
                 ORDER BY `id`, `name`, `price` DESC LIMIT 2"
            )
        );
        assert_eq!(
            t.first_chunk_sql(2),
            "SELECT `id`, `name`, `price`, `other` FROM `shop`.`items` FORCE INDEX (`k`) \
             ORDER BY `id`, `name`, `price` DESC LIMIT 2"
        );
        // The cursor from a row: the latin1 bytes as read, the DECIMAL without padding.
        let cols: Arc<[Column]> = vec![
            Column::new(ColumnType::MYSQL_TYPE_LONG),
            Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_character_set(8),
            Column::new(ColumnType::MYSQL_TYPE_NEWDECIMAL)
                .with_flags(ColumnFlags::UNSIGNED_FLAG | ColumnFlags::ZEROFILL_FLAG),
            Column::new(ColumnType::MYSQL_TYPE_LONG),
        ]
        .into();
        let row = new_row(
            vec![
                MyValue::Int(1),
                MyValue::Bytes(b"caf\xe9".to_vec()),
                MyValue::Bytes(b"0000019.990".to_vec()),
                MyValue::NULL,
            ],
            cols,
        );
        let c = t.cursor_of(&row).expect("cursor");
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            format!(
                r#"[{{"i":1}},{{"b64":"{}"}},{{"dec":"19.990"}}]"#,
                b64(b"caf\xe9")
            )
        );
        // The latin1 bytes travel as hex text (UNHEX in the SQL).
        let name = MyValue::Bytes(b"636166E9".to_vec());
        let price = MyValue::Bytes(b"19.990".to_vec());
        assert_eq!(
            t.cursor_params(&c),
            vec![
                MyValue::Int(1),
                MyValue::Int(1),
                name.clone(),
                MyValue::Int(1),
                name,
                price
            ]
        );
        assert!(t.cursor_fits(&c));
        assert!(!t.cursor_fits(&Cursor(vec![CursorValue::Int(1)])));
    }

    #[test]
    fn enum_key_is_read_and_bound_by_index() {
        let t = table(
            vec![col("e", "enum"), col("id", "int"), col("s", "set")],
            vec![
                part("PRIMARY", 1, "e"),
                part("PRIMARY", 2, "id"),
                part("PRIMARY", 3, "s"),
            ],
        );
        assert_eq!(
            t.next_chunk_sql(10),
            "SELECT `e`, `id`, `s`, (`e` + 0), (`s` + 0) FROM `db`.`t` FORCE INDEX (PRIMARY) \
             WHERE (`e` > ?) OR (`e` = ? AND `id` > ?) OR (`e` = ? AND `id` = ? AND `s` > ?) \
             ORDER BY `e`, `id`, `s` LIMIT 10"
        );
        let cols: Arc<[Column]> = vec![
            Column::new(ColumnType::MYSQL_TYPE_STRING)
                .with_flags(ColumnFlags::ENUM_FLAG)
                .with_character_set(8),
            Column::new(ColumnType::MYSQL_TYPE_LONG),
            Column::new(ColumnType::MYSQL_TYPE_STRING)
                .with_flags(ColumnFlags::SET_FLAG)
                .with_character_set(8),
            Column::new(ColumnType::MYSQL_TYPE_LONGLONG),
            Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_flags(ColumnFlags::UNSIGNED_FLAG),
        ]
        .into();
        let row = new_row(
            vec![
                MyValue::Bytes(b"b".to_vec()),
                MyValue::Int(7),
                MyValue::Bytes(b"x,z".to_vec()),
                MyValue::Int(2),
                MyValue::UInt(5),
            ],
            cols,
        );
        let c = t.cursor_of(&row).expect("cursor");
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"[{"u":2},{"i":7},{"u":5}]"#
        );
        assert_eq!(
            t.cursor_params(&c)[..3],
            [MyValue::UInt(2), MyValue::UInt(2), MyValue::Int(7)]
        );
    }

    #[test]
    fn binary_keys_travel_as_hex() {
        let t = table(
            vec![col("vb", "varbinary"), col("u", "uuid")],
            vec![part("PRIMARY", 1, "vb"), part("PRIMARY", 2, "u")],
        );
        assert_eq!(
            t.next_chunk_sql(3),
            "SELECT `vb`, `u` FROM `db`.`t` FORCE INDEX (PRIMARY) \
             WHERE (`vb` > UNHEX(?)) OR (`vb` = UNHEX(?) AND `u` > ?) ORDER BY `vb`, `u` LIMIT 3"
        );
        let cols: Arc<[Column]> = vec![
            Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_character_set(63),
            Column::new(ColumnType::MYSQL_TYPE_STRING).with_character_set(8),
        ]
        .into();
        let uuid = b"123e4567-e89b-12d3-a456-426614174000".to_vec();
        let row = new_row(
            vec![MyValue::Bytes(vec![0, 0xff]), MyValue::Bytes(uuid.clone())],
            cols,
        );
        let c = t.cursor_of(&row).expect("cursor");
        // MariaDB's UUID text is ASCII and the server parses it: bound as it was read.
        assert_eq!(
            t.cursor_params(&c),
            vec![
                MyValue::Bytes(b"00FF".to_vec()),
                MyValue::Bytes(b"00FF".to_vec()),
                MyValue::Bytes(uuid)
            ]
        );
    }

    #[test]
    fn odd_identifiers_are_quoted() {
        let t = SnapshotTable::from_catalog(
            "my`db",
            "t`1 x",
            vec![col("we`ird", "int"), col("sp ace", "int")],
            vec![part("un`iq", 1, "we`ird")],
            None,
            "InnoDB".into(),
            0,
        )
        .expect("table");
        assert_eq!(
            t.next_chunk_sql(1),
            "SELECT `we``ird`, `sp ace` FROM `my``db`.`t``1 x` FORCE INDEX (`un``iq`) \
             WHERE (`we``ird` > ?) ORDER BY `we``ird` LIMIT 1"
        );
    }

    #[test]
    fn keyless_tables_scan() {
        let t = table(vec![col("a", "int")], vec![]);
        assert_eq!(t.full_scan_sql(), "SELECT `a` FROM `db`.`t`");
        assert!(t.cursor_params(&Cursor(vec![])).is_empty());
    }

    #[test]
    fn cursor_json_round_trips_every_kind() {
        let c = Cursor(vec![
            CursorValue::Int(i64::MIN),
            CursorValue::UInt(u64::MAX),
            CursorValue::Float(1.234_567_8f32.to_bits()),
            CursorValue::Double(std::f64::consts::PI.to_bits()),
            CursorValue::Decimal("-12345678901234567890.0123456789".into()),
            CursorValue::Bytes(vec![0, 0xff, b'a']),
            CursorValue::DateTime((2024, 1, 31, 12, 0, 0, 250_000)),
            CursorValue::DateTime((0, 0, 0, 0, 0, 0, 0)),
            CursorValue::Time((true, 838, 59, 59, 0)),
            CursorValue::Time((false, 1, 2, 3, 450_000)),
        ]);
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(
            json,
            r#"[{"i":-9223372036854775808},{"u":18446744073709551615},{"f32":"3f9e0651"},{"f64":"400921fb54442d18"},{"dec":"-12345678901234567890.0123456789"},{"b64":"AP9h"},{"dt":"2024-01-31 12:00:00.250000"},{"dt":"0000-00-00 00:00:00.000000"},{"time":"-838:59:59.000000"},{"time":"01:02:03.450000"}]"#
        );
        let back: Cursor = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, c);
        // Temporal cursors bind as the server's own parts.
        let t = table(
            (0..10)
                .map(|i| col(&format!("c{i}"), "int"))
                .collect::<Vec<CatalogColumn>>(),
            (0..10)
                .map(|i| part("PRIMARY", i + 1, &format!("c{i}")))
                .collect(),
        );
        let p = t.cursor_params(&c);
        assert_eq!(p.len(), 55);
        assert_eq!(p[54], MyValue::Time(false, 0, 1, 2, 3, 450_000));
        assert_eq!(p[53], MyValue::Time(true, 34, 22, 59, 59, 0));
        assert_eq!(p[52], MyValue::Date(0, 0, 0, 0, 0, 0, 0));
        assert_eq!(p[5], MyValue::Float(1.234_567_8));
        // Unknown kinds and malformed values are refused.
        assert!(serde_json::from_str::<Cursor>(r#"[{"x":1}]"#).is_err());
        assert!(serde_json::from_str::<Cursor>(r#"[{"dt":"2024-01-31"}]"#).is_err());
        assert!(serde_json::from_str::<Cursor>(r#"[{"f32":"zz"}]"#).is_err());
    }

    #[test]
    fn cursor_from_bit_float_and_temporal_keys() {
        let t = table(
            vec![
                col("b", "bit"),
                col("f", "float"),
                col("d", "datetime"),
                col("tm", "time"),
            ],
            vec![
                part("PRIMARY", 1, "b"),
                part("PRIMARY", 2, "f"),
                part("PRIMARY", 3, "d"),
                part("PRIMARY", 4, "tm"),
            ],
        );
        let cols: Arc<[Column]> = vec![
            Column::new(ColumnType::MYSQL_TYPE_BIT).with_flags(ColumnFlags::UNSIGNED_FLAG),
            Column::new(ColumnType::MYSQL_TYPE_FLOAT),
            Column::new(ColumnType::MYSQL_TYPE_DATETIME),
            Column::new(ColumnType::MYSQL_TYPE_TIME),
        ]
        .into();
        let row = new_row(
            vec![
                MyValue::Bytes(vec![0x02, 0xaa]),
                MyValue::Float(1.5),
                MyValue::Date(2024, 1, 31, 12, 0, 0, 0),
                MyValue::Time(true, 1, 2, 3, 4, 5),
            ],
            cols.clone(),
        );
        let c = t.cursor_of(&row).expect("cursor");
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"[{"u":682},{"f32":"3fc00000"},{"dt":"2024-01-31 12:00:00.000000"},{"time":"-26:03:04.000005"}]"#
        );
        let row = new_row(vec![MyValue::NULL; 4], cols);
        assert!(matches!(
            t.cursor_of(&row),
            Err(SnapshotError::InvalidValue { .. })
        ));
    }
}
