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

use std::sync::Arc;

use mysql_common::binlog::events::{OptionalMetaExtractor, TableMapEvent};
use mysql_common::constants::ColumnType;

use crate::event::TableMeta;

/// How to turn a character column's bytes into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb4, utf8mb3 and ASCII: published as UTF-8 text.
    Utf8,
    /// latin1 (MySQL's latin1 is Windows-1252).
    Latin1,
    /// The `binary` character set: BINARY, VARBINARY, BLOB. Published as base64.
    Binary,
    /// Nothing known (no metadata): UTF-8 when the bytes are valid UTF-8, otherwise base64.
    Unknown,
}

impl Charset {
    /// Maps a collation id (as found in TABLE_MAP metadata) to how we decode it.
    pub fn from_collation_id(id: u16) -> Charset {
        match id {
            63 => Charset::Binary,
            5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
            _ => Charset::Utf8,
        }
    }

    /// Maps a character set name (as found in `information_schema.COLUMNS`).
    pub fn from_name(name: Option<&str>) -> Charset {
        match name {
            None => Charset::Binary,
            Some("binary") => Charset::Binary,
            Some("latin1") => Charset::Latin1,
            Some(_) => Charset::Utf8,
        }
    }
}

/// A column's fully resolved wire format. The decoder matches on this and nothing else.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
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
pub struct TableSchema {
    pub meta: Arc<TableMeta>,
    pub columns: Vec<ColumnKind>,
}

/// Column facts read from `information_schema`, for servers without `binlog_row_metadata=FULL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSchemaColumn {
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
pub struct InfoSchemaTable {
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
pub fn has_column_names(tme: &TableMapEvent<'_>) -> bool {
    OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map(|m| m.iter_column_name().next().is_some())
        .unwrap_or(false)
}

/// Builds a [`TableSchema`] from a TABLE_MAP event and, where the event lacks names, signedness,
/// charsets or labels, from `catalog`.
pub fn build_schema(
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

    // Optional metadata lists are per "numeric", "character" and "enum/set" column, in order.
    let mut signedness = opt.iter_signedness();
    let mut charsets = opt.iter_charset();
    let mut enum_set_charsets = opt.iter_enum_and_set_charset();
    let (mut enum_labels, mut set_labels) = str_values(tme);

    let mut columns = Vec::with_capacity(n);
    for i in 0..n {
        let type_code = tme
            .get_raw_column_type(i)
            .map_err(|e| malformed(e.to_string()))?
            .map(|t| t as u8)
            .unwrap_or(0);
        let meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let cat = catalog.and_then(|c| c.columns.get(i));
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
                    .unwrap_or(Charset::Unknown),
            }
        } else {
            Charset::Unknown
        };
        if real_type == ColumnType::MYSQL_TYPE_ENUM as u8
            || real_type == ColumnType::MYSQL_TYPE_SET as u8
        {
            let _ = enum_set_charsets.next();
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
                match rt {
                    247 => ColumnKind::Enum {
                        pack_len: len as u8,
                        labels: enum_labels
                            .next()
                            .or_else(|| cat.map(|c| c.labels.clone()))
                            .unwrap_or_default()
                            .into(),
                    },
                    248 => ColumnKind::Set {
                        pack_len: len as u8,
                        labels: set_labels
                            .next()
                            .or_else(|| cat.map(|c| c.labels.clone()))
                            .unwrap_or_default()
                            .into(),
                    },
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

    let column_names = if names.len() == n {
        names
    } else if let Some(cat) = catalog {
        cat.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        (0..n).map(|i| format!("col{i}")).collect()
    };
    let mut primary_key: Vec<usize> = opt
        .iter_primary_key()
        .filter_map(|r| r.ok())
        .map(|i| i as usize)
        .filter(|&i| i < n)
        .collect();
    if primary_key.is_empty() {
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
        15 | 253 => matches!(t, "varchar" | "varbinary"),
        254 => matches!(t, "char" | "binary" | "uuid" | "inet6" | "inet4"),
        247 => t == "enum",
        248 => t == "set",
        249..=252 => {
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
fn is_character(real_type: u8) -> bool {
    matches!(real_type, 15 | 253 | 254 | 249..=252)
}

/// ENUM and SET labels from the optional metadata: one list per ENUM (resp. SET) column, in
/// column order. Read in one pass over the metadata.
fn str_values(
    tme: &TableMapEvent<'_>,
) -> (
    std::vec::IntoIter<Vec<String>>,
    std::vec::IntoIter<Vec<String>>,
) {
    use mysql_common::binlog::events::OptionalMetadataField as F;
    let (mut enums, mut sets) = (Vec::new(), Vec::new());
    for field in tme.iter_optional_meta().flatten() {
        match field {
            F::EnumStrValue(v) => enums.extend(
                v.iter_values()
                    .flatten()
                    .map(|l| l.values().iter().map(|x| x.value().into_owned()).collect()),
            ),
            F::SetStrValue(v) => sets.extend(
                v.iter_values()
                    .flatten()
                    .map(|l| l.values().iter().map(|x| x.value().into_owned()).collect()),
            ),
            _ => {}
        }
    }
    (enums.into_iter(), sets.into_iter())
}

/// Parses the labels out of an `information_schema.COLUMNS.COLUMN_TYPE` such as
/// `enum('a','b''c')` or `set('x','y')`.
pub fn parse_enum_labels(column_type: &str) -> Vec<String> {
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
