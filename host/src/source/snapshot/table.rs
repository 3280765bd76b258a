//! One captured table as the snapshot reads it: its published shape, the index that orders
//! the reads, and how each key column is compared.
//!
//! Design note: the binlog path learns a table's shape from TABLE_MAP; the snapshot has no
//! TABLE_MAP, so it reads the catalog (`information_schema` COLUMNS, STATISTICS, TABLES) once per
//! table and epoch. The published column list must equal the binlog path's `TableMeta` (finding
//! 13 of `docs/SNAPSHOT.md`): every column in ordinal order, INVISIBLE and generated columns
//! included, and a system-versioned table's implicit period columns left out, as
//! `source::versioned` maps its images. The keyset key is chosen here (§9): the PRIMARY KEY,
//! else the first UNIQUE index whose columns are all NOT NULL and whole (no prefix part), else
//! none (one unordered scan). A prefix part or a long-unique HASH index does not order rows by
//! the column's value, so it cannot carry a keyset cursor. How each key column is bound in the
//! keyset predicate ([`Bind`]) is decided here too, from the catalog type, so that the server
//! (never Sluice) compares keys in the column's own collation (findings 8 and 9).
//!
//! [`SnapshotTable::from_catalog`] is pure (catalog rows in, table out); `describe` only runs
//! the three queries.

use std::sync::Arc;

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::Row;
use sha2::{Digest, Sha256};

use super::error::SnapshotError;
use crate::event::TableMeta;
use crate::source::charset::Charset;
use crate::source::schema::SchemaError;
use crate::source::versioned::Periods;

/// Which index orders the snapshot's reads of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    Primary,
    /// A UNIQUE index (its name) whose columns are all NOT NULL and whole.
    Unique(String),
    /// No usable key: the table is read by one unordered scan (§9's restart rule applies).
    None,
}

/// One published column, as `information_schema.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatalogColumn {
    pub(crate) name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, `enum`, …).
    pub(crate) data_type: String,
    /// `COLUMN_TYPE` (`decimal(10,3) unsigned zerofill`, `enum('a','b')`, …).
    pub(crate) column_type: String,
    pub(crate) nullable: bool,
    /// `CHARACTER_SET_NAME`: `None` for non-character and binary columns.
    pub(crate) charset: Option<String>,
    pub(crate) collation: Option<String>,
    pub(crate) precision: Option<u64>,
    pub(crate) scale: Option<u64>,
}

/// One column of one index, as `information_schema.STATISTICS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexPart {
    pub(crate) index: String,
    pub(crate) seq: u32,
    /// `None` for a MySQL functional index part.
    pub(crate) column: Option<String>,
    pub(crate) unique: bool,
    /// `SUB_PART`: the index holds only a prefix of the column.
    pub(crate) prefix: bool,
    /// `COLLATION = 'D'`: the column is indexed in descending order.
    pub(crate) desc: bool,
    /// False for an index that FORCE INDEX cannot use or that does not order rows by value:
    /// a MariaDB long-unique `HASH` index, an IGNORED (MariaDB) or invisible (MySQL) index.
    pub(crate) orderable: bool,
}

/// How one key column's cursor value is written into the keyset predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    /// `?` with the value as read: integers, floats, temporal values, binary strings, and
    /// MariaDB UUID/INET (the server converts the text to the column's type).
    Plain,
    /// BIT: `?` with the bits as an integer (a byte string would compare as a string).
    Bit,
    /// DECIMAL: `CAST(? AS DECIMAL(p,s))` with the text, so it compares exactly.
    Decimal { precision: u64, scale: u64 },
    /// A string with a real collation: the raw bytes, reinterpreted in the column's character
    /// set and compared in its collation by the server (finding 8). Sent as hex text, since a
    /// string parameter is taken in the connection's character set, where bytes that are not
    /// valid UTF-8 (latin1 `é` is 0xE9) would be mangled.
    Collated { charset: String, collation: String },
    /// BINARY / VARBINARY / BLOB: `UNHEX(?)` with the bytes as hex text, for the same reason.
    Binary,
    /// ENUM / SET: compared by index (bitmask), read through the extra select expression
    /// `(col + 0)` at row position `extra` (finding 9).
    Ordinal { extra: usize },
}

/// One column of the keyset key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyColumn {
    /// Index into the published columns.
    pub(crate) column: usize,
    pub(crate) desc: bool,
    pub(crate) bind: Bind,
}

/// How the snapshot reads one captured table: its published shape, its key, its SQL.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotTable {
    pub(crate) schema: String,
    pub(crate) table: String,
    /// Exactly what the binlog path publishes for this table: column names in ordinal order,
    /// INVISIBLE and VIRTUAL/STORED generated columns included; for a system-versioned table with
    /// implicit (hidden) period columns `row_start`/`row_end`, those two left out (explicit period
    /// columns kept); `primary_key` = indexes of the declared PRIMARY KEY columns (for a versioned
    /// table, without the period-end column, see host/src/source/versioned.rs). Empty when no PK.
    pub(crate) meta: Arc<TableMeta>,
    pub(crate) key_source: KeySource,
    /// InnoDB's row estimate (information_schema.TABLES.TABLE_ROWS), for progress.
    pub(crate) estimated_rows: u64,
    /// information_schema.TABLES.ENGINE (the caller refuses non-InnoDB).
    pub(crate) engine: String,
    /// The catalog's facts, one per published column.
    pub(crate) columns: Vec<CatalogColumn>,
    /// The keyset key, in index order; empty for `KeySource::None`.
    pub(crate) key: Vec<KeyColumn>,
    signature: String,
    /// `` `a`, `b` ``: the published columns, quoted.
    pub(crate) select_list: String,
    /// `` `schema`.`table` ``.
    pub(crate) from: String,
}

/// A backtick-quoted identifier (backticks doubled).
pub(crate) fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

impl SnapshotTable {
    /// Reads the catalog (information_schema COLUMNS, STATISTICS, TABLES) for one table.
    /// `periods`: Some for a system-versioned table (from crate::source::objects::table_kinds).
    pub(crate) async fn describe(
        conn: &mut mysql_async::Conn,
        schema: &str,
        table: &str,
        periods: Option<&Periods>,
    ) -> Result<SnapshotTable, SnapshotError> {
        let query = |context: &str| {
            let context = format!("{context} of {schema}.{table}");
            move |source| SnapshotError::Query { context, source }
        };
        type ColumnRow = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<u64>,
            Option<u64>,
        );
        let rows: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
                 COLLATION_NAME, NUMERIC_PRECISION, NUMERIC_SCALE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (schema, table),
            )
            .await
            .map_err(query("reading information_schema.COLUMNS"))?;
        let columns = rows
            .into_iter()
            .map(
                |(name, data_type, column_type, nullable, charset, collation, precision, scale)| {
                    CatalogColumn {
                        name,
                        data_type: data_type.to_ascii_lowercase(),
                        column_type,
                        nullable: nullable.eq_ignore_ascii_case("YES"),
                        charset,
                        collation,
                        precision,
                        scale,
                    }
                },
            )
            .collect();

        // STATISTICS differs between servers (MariaDB's IGNORED, MySQL's IS_VISIBLE and
        // EXPRESSION): read every column and pick them by name. The server's own order is kept,
        // so the first qualifying UNIQUE index is the one InnoDB clusters by.
        let stats: Vec<Row> = conn
            .exec(
                "SELECT * FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, table),
            )
            .await
            .map_err(query("reading information_schema.STATISTICS"))?;
        let indexes = stats.iter().filter_map(index_part).collect();

        let info: Option<(Option<String>, Option<u64>)> = conn
            .exec_first(
                "SELECT ENGINE, TABLE_ROWS FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, table),
            )
            .await
            .map_err(query("reading information_schema.TABLES"))?;
        let (engine, rows) = info.unwrap_or_default();
        SnapshotTable::from_catalog(
            schema,
            table,
            columns,
            indexes,
            periods,
            engine.unwrap_or_default(),
            rows.unwrap_or(0),
        )
    }

    /// Builds the table from its catalog rows: the pure part of [`SnapshotTable::describe`].
    /// `columns` in ordinal order; `indexes` in the server's order.
    pub(crate) fn from_catalog(
        schema: &str,
        table: &str,
        mut columns: Vec<CatalogColumn>,
        indexes: Vec<IndexPart>,
        periods: Option<&Periods>,
        engine: String,
        estimated_rows: u64,
    ) -> Result<SnapshotTable, SnapshotError> {
        let qualified = format!("{schema}.{table}");
        if columns.is_empty() {
            return Err(SnapshotError::TableNotFound { table: qualified });
        }
        if let Some(p) = periods {
            let has = |n: &str| columns.iter().any(|c| c.name == n);
            // Implicit period columns are not in information_schema on MariaDB 10.11; should a
            // server list them, they still leave the published image.
            if p.hidden {
                columns.retain(|c| c.name != p.start && c.name != p.end);
            } else if !has(&p.start) || !has(&p.end) {
                return Err(SnapshotError::PeriodColumns {
                    table: qualified,
                    start: p.start.clone(),
                    end: p.end.clone(),
                });
            }
        }
        for c in &columns {
            // GEOMETRY has no character set; every other character column must be decodable.
            if let Some(cs) = &c.charset {
                if !Charset::from_name(Some(cs)).is_supported() {
                    return Err(SchemaError::UnsupportedCharset {
                        table: qualified,
                        column: c.name.clone(),
                        charset: cs.clone(),
                    }
                    .into());
                }
            }
        }
        let position = |name: &str| columns.iter().position(|c| c.name == name);
        let period_end = periods.map(|p| p.end.as_str());

        // Indexes by name, first appearance first, each in SEQ_IN_INDEX order, without the
        // period-end column MariaDB appends to a versioned table's unique keys.
        let mut groups: Vec<(String, Vec<IndexPart>)> = Vec::new();
        for part in indexes {
            match groups.iter_mut().find(|(n, _)| *n == part.index) {
                Some((_, parts)) => parts.push(part),
                None => groups.push((part.index.clone(), vec![part])),
            }
        }
        for (_, parts) in &mut groups {
            parts.sort_by_key(|p| p.seq);
            parts.retain(|p| p.column.is_none() || p.column.as_deref() != period_end);
        }

        let primary_key: Vec<usize> = groups
            .iter()
            .find(|(n, _)| n == "PRIMARY")
            .map(|(_, parts)| {
                parts
                    .iter()
                    .filter_map(|p| p.column.as_deref().and_then(position))
                    .collect()
            })
            .unwrap_or_default();

        // An index can carry the cursor when every part is a whole, NOT NULL, published column
        // and the index orders rows by value.
        let usable = |parts: &[IndexPart]| -> Option<Vec<(usize, bool)>> {
            if parts.is_empty() {
                return None;
            }
            parts
                .iter()
                .map(|p| {
                    let i = position(p.column.as_deref()?)?;
                    let ok = p.unique && !p.prefix && p.orderable && !columns[i].nullable;
                    ok.then_some((i, p.desc))
                })
                .collect()
        };
        let chosen = groups
            .iter()
            .find(|(n, _)| n == "PRIMARY")
            .and_then(|(_, parts)| usable(parts).map(|k| (KeySource::Primary, k)))
            .or_else(|| {
                groups
                    .iter()
                    .filter(|(n, _)| n != "PRIMARY")
                    .find_map(|(n, parts)| usable(parts).map(|k| (KeySource::Unique(n.clone()), k)))
            });
        let (key_source, key_parts) = chosen.unwrap_or((KeySource::None, Vec::new()));

        let mut extra = columns.len();
        let key: Vec<KeyColumn> = key_parts
            .into_iter()
            .map(|(column, desc)| {
                let c = &columns[column];
                let bind = match c.data_type.as_str() {
                    "enum" | "set" => {
                        extra += 1;
                        Bind::Ordinal { extra: extra - 1 }
                    }
                    "bit" => Bind::Bit,
                    "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                        Bind::Binary
                    }
                    "decimal" | "numeric" | "fixed" => Bind::Decimal {
                        precision: c.precision.unwrap_or(65),
                        scale: c.scale.unwrap_or(0),
                    },
                    _ => match (&c.charset, &c.collation) {
                        (Some(cs), Some(coll)) if !cs.eq_ignore_ascii_case("binary") => {
                            Bind::Collated {
                                charset: cs.clone(),
                                collation: coll.clone(),
                            }
                        }
                        _ => Bind::Plain,
                    },
                };
                KeyColumn { column, desc, bind }
            })
            .collect();

        let signature = signature(&key_source, &key, &columns);
        let select_list = columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let meta = Arc::new(TableMeta {
            schema: schema.to_owned(),
            table: table.to_owned(),
            columns: columns.iter().map(|c| c.name.clone()).collect(),
            primary_key,
        });
        Ok(SnapshotTable {
            schema: schema.to_owned(),
            table: table.to_owned(),
            meta,
            key_source,
            estimated_rows,
            engine,
            columns,
            key,
            signature,
            select_list,
            from: format!("{}.{}", quote(schema), quote(table)),
        })
    }

    /// A stable hash (hex) of the key's columns, types, collations and directions: when it
    /// changes across a restart, a half-read table starts again.
    pub(crate) fn key_signature(&self) -> String {
        self.signature.clone()
    }

    /// Whether reads are ordered and resumable by a key (PRIMARY or UNIQUE NOT NULL).
    pub(crate) fn has_key(&self) -> bool {
        !self.key.is_empty()
    }

    /// The key's column names, in index order (for the state file's `key`).
    pub(crate) fn key_columns(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|k| self.columns[k.column].name.clone())
            .collect()
    }

    /// `schema.table`, for messages.
    pub(crate) fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// sha256 over the key source and, per key column, its name, `COLUMN_TYPE`, collation and
/// direction; the first 16 bytes in hex.
fn signature(source: &KeySource, key: &[KeyColumn], columns: &[CatalogColumn]) -> String {
    let mut h = Sha256::new();
    match source {
        KeySource::Primary => h.update(b"PRIMARY\n"),
        KeySource::Unique(n) => h.update(format!("UNIQUE {n}\n")),
        KeySource::None => h.update(b"NONE\n"),
    }
    for k in key {
        let c = &columns[k.column];
        h.update(format!(
            "{}\t{}\t{}\t{}\n",
            c.name,
            c.column_type,
            c.collation.as_deref().unwrap_or("-"),
            if k.desc { "D" } else { "A" }
        ));
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One STATISTICS row as an [`IndexPart`], its columns picked by name (`None` for a row
/// without an index name).
fn index_part(row: &Row) -> Option<IndexPart> {
    fn field<T: FromValue>(row: &Row, name: &str) -> Option<T> {
        let i = row
            .columns_ref()
            .iter()
            .position(|c| c.name_str().eq_ignore_ascii_case(name))?;
        row.get_opt::<T, usize>(i)?.ok()
    }
    let text = |name| field::<Option<String>>(row, name).flatten();
    let yes = |name| text(name).is_some_and(|v| v.eq_ignore_ascii_case("YES"));
    let ignored =
        yes("IGNORED") || text("IS_VISIBLE").is_some_and(|v| v.eq_ignore_ascii_case("NO"));
    Some(IndexPart {
        index: text("INDEX_NAME")?,
        seq: field::<Option<u32>>(row, "SEQ_IN_INDEX")
            .flatten()
            .unwrap_or(0),
        column: text("COLUMN_NAME"),
        unique: field::<Option<i64>>(row, "NON_UNIQUE").flatten() == Some(0),
        prefix: field::<Option<u64>>(row, "SUB_PART").flatten().is_some(),
        desc: text("COLLATION").as_deref() == Some("D"),
        orderable: !ignored
            && text("INDEX_TYPE").is_none_or(|t| t.eq_ignore_ascii_case("BTREE"))
            && text("EXPRESSION").is_none(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A catalog column: `int`, `varchar(n)` latin1, and so on, by data type.
    pub(crate) fn col(name: &str, data_type: &str) -> CatalogColumn {
        let text = matches!(data_type, "varchar" | "char" | "text" | "enum" | "set");
        CatalogColumn {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable: false,
            charset: text.then(|| "utf8mb4".into()),
            collation: text.then(|| "utf8mb4_general_ci".into()),
            precision: (data_type == "decimal").then_some(10),
            scale: (data_type == "decimal").then_some(3),
        }
    }

    pub(crate) fn part(index: &str, seq: u32, column: &str) -> IndexPart {
        IndexPart {
            index: index.into(),
            seq,
            column: Some(column.into()),
            unique: true,
            prefix: false,
            desc: false,
            orderable: true,
        }
    }

    pub(crate) fn table(columns: Vec<CatalogColumn>, indexes: Vec<IndexPart>) -> SnapshotTable {
        SnapshotTable::from_catalog("db", "t", columns, indexes, None, "InnoDB".into(), 10)
            .expect("table")
    }

    #[test]
    fn primary_key_is_chosen_and_published() {
        let t = table(
            vec![col("a", "int"), col("b", "varchar"), col("c", "int")],
            vec![
                part("u", 1, "c"),
                part("PRIMARY", 2, "a"),
                part("PRIMARY", 1, "b"),
            ],
        );
        assert_eq!(t.key_source, KeySource::Primary);
        assert_eq!(t.meta.primary_key, vec![1, 0]);
        assert_eq!(t.key_columns(), vec!["b", "a"]);
        assert!(t.has_key());
        assert_eq!(
            t.key[0].bind,
            Bind::Collated {
                charset: "utf8mb4".into(),
                collation: "utf8mb4_general_ci".into()
            }
        );
    }

    #[test]
    fn unique_not_null_whole_index_stands_in_for_a_missing_primary_key() {
        let mut nullable = col("n", "int");
        nullable.nullable = true;
        let mut hash = part("h", 1, "blob");
        hash.orderable = false;
        let mut prefixed = part("p", 1, "v");
        prefixed.prefix = true;
        let mut plain = part("i", 1, "a");
        plain.unique = false;
        let t = table(
            vec![
                nullable,
                col("a", "int"),
                col("v", "varchar"),
                col("blob", "blob"),
            ],
            vec![
                part("un", 1, "n"),
                hash,
                prefixed,
                plain,
                part("ok", 1, "a"),
            ],
        );
        assert_eq!(t.key_source, KeySource::Unique("ok".into()));
        assert!(t.meta.primary_key.is_empty());

        // No usable index at all, and a PRIMARY KEY on a prefix.
        let t = table(vec![col("a", "int")], vec![]);
        assert_eq!(t.key_source, KeySource::None);
        assert!(!t.has_key());
        let mut pk = part("PRIMARY", 1, "v");
        pk.prefix = true;
        let t = table(vec![col("v", "varchar")], vec![pk]);
        assert_eq!(t.key_source, KeySource::None);
        assert_eq!(
            t.meta.primary_key,
            vec![0],
            "the published key is the declared one"
        );
    }

    #[test]
    fn versioned_tables_drop_the_period_end_and_hidden_columns() {
        let cols = || {
            vec![
                col("id", "int"),
                col("x", "int"),
                col("s", "timestamp"),
                col("e", "timestamp"),
            ]
        };
        let explicit = Periods {
            start: "s".into(),
            end: "e".into(),
            hidden: false,
        };
        let idx = vec![part("PRIMARY", 1, "id"), part("PRIMARY", 2, "e")];
        let t = SnapshotTable::from_catalog(
            "db",
            "t",
            cols(),
            idx.clone(),
            Some(&explicit),
            "InnoDB".into(),
            0,
        )
        .expect("table");
        assert_eq!(t.meta.columns, ["id", "x", "s", "e"]);
        assert_eq!(t.meta.primary_key, vec![0]);
        assert_eq!(t.key_columns(), vec!["id"]);

        let hidden = Periods {
            start: "s".into(),
            end: "e".into(),
            hidden: true,
        };
        let t = SnapshotTable::from_catalog(
            "db",
            "t",
            cols(),
            idx.clone(),
            Some(&hidden),
            "InnoDB".into(),
            0,
        )
        .expect("table");
        assert_eq!(t.meta.columns, ["id", "x"]);
        assert_eq!(t.meta.primary_key, vec![0]);

        let missing = Periods {
            start: "row_start".into(),
            end: "row_end".into(),
            hidden: false,
        };
        assert!(matches!(
            SnapshotTable::from_catalog("db", "t", cols(), idx, Some(&missing), "InnoDB".into(), 0),
            Err(SnapshotError::PeriodColumns { .. })
        ));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            SnapshotTable::from_catalog("db", "t", vec![], vec![], None, String::new(), 0),
            Err(SnapshotError::TableNotFound { .. })
        ));
        let mut c = col("g", "varchar");
        c.charset = Some("gb18030".into());
        assert!(matches!(
            SnapshotTable::from_catalog("db", "t", vec![c], vec![], None, String::new(), 0),
            Err(SnapshotError::Schema(
                SchemaError::UnsupportedCharset { .. }
            ))
        ));
    }

    #[test]
    fn key_signature_follows_columns_types_collations_and_directions() {
        let base = || {
            table(
                vec![col("a", "int"), col("b", "varchar")],
                vec![part("PRIMARY", 1, "a"), part("PRIMARY", 2, "b")],
            )
        };
        let sig = base().key_signature();
        assert_eq!(sig.len(), 32);
        assert_eq!(sig, base().key_signature(), "stable");
        let mut desc = part("PRIMARY", 2, "b");
        desc.desc = true;
        let t = table(
            vec![col("a", "int"), col("b", "varchar")],
            vec![part("PRIMARY", 1, "a"), desc],
        );
        assert_ne!(t.key_signature(), sig);
        let mut latin = col("b", "varchar");
        latin.collation = Some("latin1_swedish_ci".into());
        let t = table(
            vec![col("a", "int"), latin],
            vec![part("PRIMARY", 1, "a"), part("PRIMARY", 2, "b")],
        );
        assert_ne!(t.key_signature(), sig);
        // A column outside the key does not matter.
        let t = table(
            vec![col("a", "int"), col("b", "varchar"), col("z", "int")],
            vec![part("PRIMARY", 1, "a"), part("PRIMARY", 2, "b")],
        );
        assert_eq!(t.key_signature(), sig);
    }
}
