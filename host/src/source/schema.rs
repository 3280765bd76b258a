//! Table metadata: what a row decoder needs to know about each column.
//!
//! Design note: a binlog TABLE_MAP event carries each column's wire type and type metadata,
//! and with `binlog_row_metadata=FULL` also names, signedness, character sets, ENUM/SET labels
//! and the primary key. Without FULL the missing parts come from `information_schema`
//! ([`InfoSchemaTable`]), cached per `(schema, table)` and dropped on DDL. Table ids are only
//! used as short-lived keys within one stream (see `source::processor`), never for caches that
//! outlive a rotation or a DDL.
//!
//! This module is pure: it turns a TABLE_MAP (plus optional catalog data) into a
//! [`TableSchema`] of resolved [`ColumnKind`]s, which is all the hot decode loop looks at.
//!
//! Size: TABLE_MAP parsing and the mapping of each MySQL column type to a `ColumnKind` (with its metadata) belong together; it is long because MySQL has many types.

use std::sync::Arc;

use mysql_common::binlog::events::{OptionalMetaExtractor, TableMapEvent};
use mysql_common::constants::ColumnType;

use crate::event::TableMeta;

pub(crate) use super::charset::Charset;

/// A column's fully resolved wire format. The decoder matches on this and nothing else.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnKind {
    Tiny {
        unsigned: bool,
    },
    Short {
        unsigned: bool,
    },
    Int24 {
        unsigned: bool,
    },
    Long {
        unsigned: bool,
    },
    LongLong {
        unsigned: bool,
    },
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Year,
    Date,
    /// Pre-5.6 TIME (3 bytes, HHMMSS).
    TimeOld,
    Time2 {
        fsp: u8,
    },
    /// Pre-5.6 DATETIME (8 bytes, YYYYMMDDhhmmss).
    DateTimeOld,
    DateTime2 {
        fsp: u8,
    },
    /// Pre-5.6 TIMESTAMP (4 bytes little-endian).
    TimestampOld,
    Timestamp2 {
        fsp: u8,
    },
    /// VARCHAR / VARBINARY with a 1- or 2-byte length prefix.
    VarString {
        len_bytes: u8,
        charset: Charset,
    },
    /// CHAR / BINARY. `max_len` is the byte width; BINARY values are zero-padded to it.
    FixedString {
        len_bytes: u8,
        max_len: u16,
        charset: Charset,
    },
    Enum {
        pack_len: u8,
        labels: Arc<[String]>,
    },
    Set {
        pack_len: u8,
        labels: Arc<[String]>,
    },
    /// BLOB / TEXT (and MariaDB JSON, which is LONGTEXT).
    Blob {
        len_bytes: u8,
        charset: Charset,
    },
    /// MariaDB `VARCHAR … COMPRESSED` (wire type 141) and `BLOB/TEXT … COMPRESSED` (140): a
    /// length prefix, then MariaDB's compression header byte and zlib data (or the raw bytes).
    /// `max_len` caps the inflated size.
    Compressed {
        len_bytes: u8,
        max_len: u32,
        charset: Charset,
    },
    /// MariaDB `UUID`: BINARY(16) on the wire, published as the server prints it.
    Uuid,
    /// MariaDB `INET4`: BINARY(4) on the wire, published as dotted decimal.
    Inet4,
    /// MariaDB `INET6`: BINARY(16) on the wire, published as the server prints it.
    Inet6,
    /// MySQL's binary JSON.
    Json {
        len_bytes: u8,
    },
    Bit {
        bytes: u8,
    },
    /// GEOMETRY and VECTOR: opaque bytes behind a length prefix.
    OpaqueBlob {
        len_bytes: u8,
    },
    /// A column of type NULL carries no bytes.
    Null,
}

/// Everything the decoder needs for one table version.
#[derive(Debug, Clone)]
pub(crate) struct TableSchema {
    pub meta: Arc<TableMeta>,
    pub columns: Vec<ColumnKind>,
}

/// Column facts read from `information_schema`, for servers without `binlog_row_metadata=FULL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InfoSchemaColumn {
    pub name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, …), checked against the binlog's wire type.
    pub data_type: String,
    pub unsigned: bool,
    /// `None` for non-character columns and for the binary character set.
    pub charset: Option<String>,
    /// ENUM or SET labels, parsed from `COLUMN_TYPE`.
    pub labels: Vec<String>,
}

/// A table as `information_schema` describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InfoSchemaTable {
    pub columns: Vec<InfoSchemaColumn>,
    pub primary_key: Vec<usize>,
}

/// Why a TABLE_MAP could not be turned into a schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("table {table}: column {column} has unsupported binlog type {type_code}")]
    UnsupportedType {
        table: String,
        column: usize,
        type_code: u8,
    },
    #[error(
        "table {table}: column {column} uses the character set {charset}, which Sluice cannot decode. \
         Convert the column (ALTER TABLE … MODIFY {column} … CHARACTER SET utf8mb4), or leave the \
         table out of MYSQL_TABLE"
    )]
    UnsupportedCharset {
        table: String,
        column: String,
        charset: String,
    },
    #[error(
        "table {table}: column {column}: an ENUM or SET label is not valid {charset} text in the \
         table map; Sluice stops rather than publish a wrong label"
    )]
    InvalidLabel {
        table: String,
        column: String,
        charset: String,
    },
    #[error("table {table}: malformed table map metadata: {detail}")]
    Malformed { table: String, detail: String },
    #[error(
        "table {table}: the binlog has {binlog} columns but information_schema has {catalog}; \
         the table changed since these rows were written. Set binlog_row_metadata=FULL on the server \
         so that Sluice reads column names from the binlog itself"
    )]
    ColumnCountMismatch {
        table: String,
        binlog: usize,
        catalog: usize,
    },
    #[error(
        "table {table}: column {column} is {catalog} in information_schema but binlog type {type_code} \
         in these rows; the table changed since they were written. Set binlog_row_metadata=FULL on \
         the server so that Sluice reads column metadata from the binlog itself"
    )]
    ColumnTypeMismatch {
        table: String,
        column: String,
        catalog: String,
        type_code: u8,
    },
}

/// Does this TABLE_MAP carry column names (that is, was it written with `binlog_row_metadata=FULL`)?
pub(crate) fn has_column_names(tme: &TableMapEvent<'_>) -> bool {
    OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map(|m| m.iter_column_name().next().is_some())
        .unwrap_or(false)
}

/// Does building this table's schema need `information_schema`? Yes without column names in
/// TABLE_MAP (`binlog_row_metadata` below FULL), and also when a column is a fixed BINARY(16) or
/// BINARY(4) of the binary character set: MariaDB writes `UUID`, `INET6` and `INET4` exactly
/// like those, and only the catalog's `DATA_TYPE` tells them apart.
pub(crate) fn needs_catalog(tme: &TableMapEvent<'_>) -> bool {
    if !has_column_names(tme) {
        return true;
    }
    let Ok(cols) = raw_columns(tme) else {
        return false;
    };
    cols.iter().any(|(t, meta)| {
        *t == 254 && meta.len() >= 2 && {
            let (rt, len) = string_meta(meta[0], meta[1]);
            rt == 254 && (len == 16 || len == 4)
        }
    })
}

/// Each column's wire type and type metadata, read from the TABLE_MAP bytes. `mysql_common`
/// rejects MariaDB's own wire types (140/141, the COMPRESSED columns) and then loses the
/// metadata of every later column, so Sluice walks the metadata block itself.
fn raw_columns(tme: &TableMapEvent<'_>) -> Result<Vec<(u8, Vec<u8>)>, String> {
    use mysql_common::proto::MySerialize;
    let mut buf = Vec::new();
    tme.serialize(&mut buf);
    let short = || "table map ends early".to_owned();
    // table id (6), flags (2), then the length-prefixed, NUL-terminated schema and table names.
    let mut pos = 8usize;
    for _ in 0..2 {
        let len = *buf.get(pos).ok_or_else(short)? as usize;
        pos += 1 + len + 1;
    }
    let lenenc = |pos: &mut usize| -> Result<u64, String> {
        let first = *buf.get(*pos).ok_or_else(short)?;
        let (n, width) = match first {
            0..=250 => (u64::from(first), 0),
            252 => (0, 2),
            253 => (0, 3),
            254 => (0, 8),
            _ => return Err(format!("bad length-encoded integer {first:#x}")),
        };
        *pos += 1;
        if width == 0 {
            return Ok(n);
        }
        let b = buf.get(*pos..*pos + width).ok_or_else(short)?;
        *pos += width;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    let n = lenenc(&mut pos)? as usize;
    let types = buf.get(pos..pos + n).ok_or_else(short)?.to_vec();
    pos += n;
    let meta_len = lenenc(&mut pos)? as usize;
    let meta = buf.get(pos..pos + meta_len).ok_or_else(short)?;
    let mut off = 0usize;
    let mut out = Vec::with_capacity(n);
    for t in types {
        let len = match t {
            4 | 5 | 17 | 18 | 19 | 140 | 242 | 245 | 249..=252 | 255 => 1,
            15 | 16 | 141 | 246..=248 | 254 => 2,
            0..=3 | 6..=14 | 253 => 0,
            other => return Err(format!("unknown column type {other}")),
        };
        let m = meta.get(off..off + len).ok_or_else(short)?;
        off += len;
        out.push((t, m.to_vec()));
    }
    Ok(out)
}

/// Builds a [`TableSchema`] from a TABLE_MAP event and, where the event lacks names, signedness,
/// charsets or labels, from `catalog`. With column names in the event, the catalog (when given)
/// only tells UUID, INET4 and INET6 apart from BINARY.
pub(crate) fn build_schema(
    tme: &TableMapEvent<'_>,
    catalog: Option<&InfoSchemaTable>,
) -> Result<TableSchema, SchemaError> {
    let schema_name = tme.database_name().into_owned();
    let table_name = tme.table_name().into_owned();
    let qualified = format!("{schema_name}.{table_name}");
    let n = tme.columns_count() as usize;
    let malformed = |detail: String| SchemaError::Malformed {
        table: qualified.clone(),
        detail,
    };

    let raw = raw_columns(tme).map_err(malformed)?;
    if raw.len() != n {
        return Err(malformed(format!(
            "{} column types for {n} columns",
            raw.len()
        )));
    }
    let opt = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map_err(|e| malformed(e.to_string()))?;
    let names: Vec<String> = opt
        .iter_column_name()
        .map(|r| r.map(|c| c.name().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| malformed(e.to_string()))?;
    if let Some(cat) = catalog {
        if names.is_empty() && cat.columns.len() != n {
            return Err(SchemaError::ColumnCountMismatch {
                table: qualified,
                binlog: n,
                catalog: cat.columns.len(),
            });
        }
    }
    let column_names: Vec<String> = if names.len() == n {
        names.clone()
    } else if let Some(cat) = catalog {
        cat.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        (0..n).map(|i| format!("col{i}")).collect()
    };

    // Optional metadata lists are per "numeric", "character" and "enum/set" column, in order.
    let mut signedness = opt.iter_signedness();
    let mut charsets = opt.iter_charset();
    let mut enum_set_charsets = opt.iter_enum_and_set_charset();
    let (mut enum_labels, mut set_labels) = str_values(tme);

    let mut columns = Vec::with_capacity(n);
    for (i, (type_code, meta)) in raw.iter().enumerate() {
        let type_code = *type_code;
        let name = &column_names[i];
        // The catalog's facts for this column: by position without names in the event, by
        // name (and position) with them, so that a catalog read after an ALTER cannot misname.
        let cat = catalog
            .and_then(|c| c.columns.get(i))
            .filter(|c| names.is_empty() || c.name == *name);
        let real_type = real_type(type_code, meta);
        let unsupported = || SchemaError::UnsupportedType {
            table: qualified.clone(),
            column: i,
            type_code,
        };

        // Consume the per-class metadata streams in the server's order, whatever we use.
        let signed_bit = if is_numeric(real_type) {
            signedness.next()
        } else {
            None
        };
        let unsigned = signed_bit.unwrap_or_else(|| cat.is_some_and(|c| c.unsigned));
        let charset = if is_character(real_type) {
            match charsets.next() {
                Some(Ok(id)) => Charset::from_collation_id(id),
                Some(Err(e)) => return Err(malformed(e.to_string())),
                None => cat
                    .map(|c| Charset::from_name(c.charset.as_deref()))
                    .unwrap_or(Charset::UNKNOWN),
            }
        } else {
            Charset::UNKNOWN
        };
        let is_enum_or_set = real_type == ColumnType::MYSQL_TYPE_ENUM as u8
            || real_type == ColumnType::MYSQL_TYPE_SET as u8;
        let label_charset = if is_enum_or_set {
            match enum_set_charsets.next() {
                Some(Ok(id)) => Charset::from_collation_id(id),
                Some(Err(e)) => return Err(malformed(e.to_string())),
                // Labels from the catalog are already text; from the event without a charset
                // list they are UTF-8 at best.
                None => Charset::UTF8MB4,
            }
        } else {
            Charset::UNKNOWN
        };
        // Geometry counts as a character column in the metadata but is published as bytes.
        let text_column = is_character(real_type) && real_type != 255;
        if text_column && !charset.is_supported() {
            return Err(SchemaError::UnsupportedCharset {
                table: qualified.clone(),
                column: name.clone(),
                charset: charset.name(),
            });
        }

        if let Some(c) = cat {
            if names.is_empty() && !catalog_type_matches(real_type, &c.data_type) {
                return Err(SchemaError::ColumnTypeMismatch {
                    table: qualified.clone(),
                    column: c.name.clone(),
                    catalog: c.data_type.clone(),
                    type_code: real_type,
                });
            }
        }
        let labels = |raw: Option<Vec<Vec<u8>>>| -> Result<Arc<[String]>, SchemaError> {
            let list = match raw {
                Some(raw) => {
                    if !label_charset.is_supported() {
                        return Err(SchemaError::UnsupportedCharset {
                            table: qualified.clone(),
                            column: name.clone(),
                            charset: label_charset.name(),
                        });
                    }
                    raw.iter()
                        .map(|l| label_charset.decode_label(l))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| SchemaError::InvalidLabel {
                            table: qualified.clone(),
                            column: name.clone(),
                            charset: label_charset.name(),
                        })?
                }
                None => cat.map(|c| c.labels.clone()).unwrap_or_default(),
            };
            Ok(list.into())
        };
        let m0 = meta.first().copied().unwrap_or(0);
        let m1 = meta.get(1).copied().unwrap_or(0);
        let kind = match type_code {
            1 => ColumnKind::Tiny { unsigned },
            2 => ColumnKind::Short { unsigned },
            3 => ColumnKind::Long { unsigned },
            4 => ColumnKind::Float,
            5 => ColumnKind::Double,
            6 => ColumnKind::Null,
            7 => ColumnKind::TimestampOld,
            8 => ColumnKind::LongLong { unsigned },
            9 => ColumnKind::Int24 { unsigned },
            10 | 14 => ColumnKind::Date,
            11 => ColumnKind::TimeOld,
            12 => ColumnKind::DateTimeOld,
            13 => ColumnKind::Year,
            15 | 253 => ColumnKind::VarString {
                len_bytes: if u16::from_le_bytes([m0, m1]) < 256 {
                    1
                } else {
                    2
                },
                charset,
            },
            141 => {
                let max = u16::from_le_bytes([m0, m1]);
                ColumnKind::Compressed {
                    len_bytes: if max < 256 { 1 } else { 2 },
                    max_len: u32::from(max),
                    charset,
                }
            }
            140 => {
                if !(1..=4).contains(&m0) {
                    return Err(malformed(format!(
                        "column {name}: compressed BLOB length size {m0}"
                    )));
                }
                ColumnKind::Compressed {
                    len_bytes: m0,
                    // MariaDB's max_allowed_packet tops out at 1 GiB.
                    max_len: ((1u64 << (8 * u32::from(m0))) - 1).min(1 << 30) as u32,
                    charset,
                }
            }
            16 => ColumnKind::Bit {
                bytes: m1 + u8::from(m0 > 0),
            },
            17 => ColumnKind::Timestamp2 { fsp: m0 },
            18 => ColumnKind::DateTime2 { fsp: m0 },
            19 => ColumnKind::Time2 { fsp: m0 },
            242 | 255 => ColumnKind::OpaqueBlob { len_bytes: m0 },
            245 => ColumnKind::Json { len_bytes: m0 },
            246 => ColumnKind::Decimal {
                precision: m0,
                scale: m1,
            },
            249..=252 => ColumnKind::Blob {
                len_bytes: m0,
                charset,
            },
            254 => {
                let (rt, len) = string_meta(m0, m1);
                let data_type = cat.map(|c| c.data_type.as_str());
                match rt {
                    247 => ColumnKind::Enum {
                        pack_len: len as u8,
                        labels: labels(enum_labels.next())?,
                    },
                    248 => ColumnKind::Set {
                        pack_len: len as u8,
                        labels: labels(set_labels.next())?,
                    },
                    _ if charset.is_binary() && len == 16 && data_type == Some("uuid") => {
                        ColumnKind::Uuid
                    }
                    _ if charset.is_binary() && len == 16 && data_type == Some("inet6") => {
                        ColumnKind::Inet6
                    }
                    _ if charset.is_binary() && len == 4 && data_type == Some("inet4") => {
                        ColumnKind::Inet4
                    }
                    _ => ColumnKind::FixedString {
                        len_bytes: if len > 255 { 2 } else { 1 },
                        max_len: len,
                        charset,
                    },
                }
            }
            _ => return Err(unsupported()),
        };
        columns.push(kind);
    }

    let mut primary_key: Vec<usize> = opt
        .iter_primary_key()
        .filter_map(|r| r.ok())
        .map(|i| i as usize)
        .filter(|&i| i < n)
        .collect();
    if primary_key.is_empty() && names.is_empty() {
        if let Some(cat) = catalog {
            primary_key = cat.primary_key.clone();
        }
    }

    Ok(TableSchema {
        meta: Arc::new(TableMeta {
            schema: schema_name,
            table: table_name,
            columns: column_names,
            primary_key,
        }),
        columns,
    })
}

/// Whether an `information_schema` DATA_TYPE can be the column behind a binlog wire type. A
/// safety net for the catalog path: a catalog read after a later ALTER must not rename columns.
fn catalog_type_matches(real_type: u8, data_type: &str) -> bool {
    let t = data_type.to_ascii_lowercase();
    let t = t.as_str();
    match real_type {
        1 => matches!(t, "tinyint" | "bool" | "boolean"),
        2 => t == "smallint",
        9 => t == "mediumint",
        3 => matches!(t, "int" | "integer"),
        8 => t == "bigint",
        4 => t == "float",
        5 => matches!(t, "double" | "real" | "double precision"),
        0 | 246 => matches!(t, "decimal" | "numeric" | "fixed"),
        13 => t == "year",
        10 | 14 => t == "date",
        11 | 19 => t == "time",
        12 | 18 => t == "datetime",
        7 | 17 => t == "timestamp",
        15 | 253 | 141 => matches!(t, "varchar" | "varbinary"),
        254 => matches!(t, "char" | "binary" | "uuid" | "inet6" | "inet4"),
        247 => t == "enum",
        248 => t == "set",
        249..=252 | 140 => {
            t.ends_with("blob")
                || t.ends_with("text")
                || t == "json"
                || t == "long"
                || t == "long varchar"
        }
        245 => t == "json",
        16 => t == "bit",
        255 => !t.is_empty(),
        _ => true,
    }
}

/// The real type behind a binlog STRING column (ENUM and SET are written as STRING).
fn real_type(type_code: u8, meta: &[u8]) -> u8 {
    if type_code == ColumnType::MYSQL_TYPE_STRING as u8 && meta.len() >= 2 {
        string_meta(meta[0], meta[1]).0
    } else {
        type_code
    }
}

/// Decodes STRING metadata into (real type, length). Long CHAR columns borrow two bits of the
/// type byte for their length (MySQL bug #37426).
fn string_meta(b0: u8, b1: u8) -> (u8, u16) {
    if b0 & 0x30 != 0x30 {
        (
            b0 | 0x30,
            u16::from(b1) | (u16::from((b0 & 0x30) ^ 0x30) << 4),
        )
    } else {
        (b0, u16::from(b1))
    }
}

/// Columns that get a bit in the SIGNEDNESS metadata (MySQL's and MariaDB's `is_numeric_type`).
fn is_numeric(real_type: u8) -> bool {
    matches!(real_type, 1 | 2 | 3 | 4 | 5 | 8 | 9 | 0 | 246)
}

/// Columns that get an entry in the charset metadata.
/// MariaDB also lists GEOMETRY (whose base class is BLOB) and the COMPRESSED types (140/141);
/// missing one shifts every later column's charset.
fn is_character(real_type: u8) -> bool {
    matches!(real_type, 15 | 253 | 254 | 249..=252 | 255 | 140 | 141)
}

/// Per ENUM (or SET) column, its labels as raw bytes.
type LabelLists = std::vec::IntoIter<Vec<Vec<u8>>>;

/// ENUM and SET labels from the optional metadata: one list per ENUM (resp. SET) column, in
/// column order, as raw bytes in the column's character set. Read in one pass over the metadata.
fn str_values(tme: &TableMapEvent<'_>) -> (LabelLists, LabelLists) {
    use mysql_common::binlog::events::OptionalMetadataField as F;
    let (mut enums, mut sets) = (Vec::new(), Vec::new());
    for field in tme.iter_optional_meta().flatten() {
        match field {
            F::EnumStrValue(v) => enums.extend(
                v.iter_values()
                    .flatten()
                    .map(|l| l.values().iter().map(|x| x.value_raw().to_vec()).collect()),
            ),
            F::SetStrValue(v) => sets.extend(
                v.iter_values()
                    .flatten()
                    .map(|l| l.values().iter().map(|x| x.value_raw().to_vec()).collect()),
            ),
            _ => {}
        }
    }
    (enums.into_iter(), sets.into_iter())
}

/// Parses the labels out of an `information_schema.COLUMNS.COLUMN_TYPE` such as
/// `enum('a','b''c')` or `set('x','y')`.
pub(crate) fn parse_enum_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let body = column_type[start + 1..].trim_end_matches(')');
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                _ => label.push(c),
            }
        }
        labels.push(label);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_with_quotes() {
        assert_eq!(
            parse_enum_labels("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_enum_labels("set('x')"), vec!["x"]);
    }

    #[test]
    fn long_char_metadata() {
        // CHAR(255) utf8mb4 = 1020 bytes: type byte 0xCE borrows bits for the length.
        assert_eq!(string_meta(0xCE, 0xFC), (0xFE, 1020));
        assert_eq!(string_meta(0xFE, 10), (0xFE, 10));
        assert_eq!(string_meta(0xF7, 1), (0xF7, 1));
    }
}
