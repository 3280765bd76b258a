//! Catalog facts about captured tables that the binlog does not carry: which are SEQUENCE
//! objects and which are system-versioned (with their period columns).
//!
//! Design note: MariaDB logs a sequence's cache refills and SETVALs as inserts into the
//! sequence, and a system-versioned table's history rows as ordinary rows; neither shows in the
//! TABLE_MAP. `information_schema.TABLES.TABLE_TYPE` says `SEQUENCE` or `SYSTEM VERSIONED`. The
//! period columns come from `SHOW CREATE TABLE` (the server's own text, `GENERATED ALWAYS AS
//! ROW START/END`); when it names none, the period is implicit: INVISIBLE `row_start`/`row_end`.

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::versioned::Periods;

/// A catalog query failed.
#[derive(Debug, thiserror::Error)]
#[error("reading {what} from the server: {source}")]
pub struct CatalogError {
    pub what: &'static str,
    #[source]
    pub source: mysql_async::Error,
}

impl CatalogError {
    pub(super) fn new(what: &'static str, source: mysql_async::Error) -> Self {
        CatalogError { what, source }
    }
}

/// The tables `cfg` captures now: the ones it names (in its order), then the base tables its
/// patterns match on the server (never a view, never one of the system schemas), sorted, so
/// that a snapshot numbers them the same way on every start.
pub(crate) async fn captured_tables(
    conn: &mut Conn,
    cfg: &crate::config::Config,
) -> Result<Vec<(String, String)>, CatalogError> {
    let mut out = cfg.captured_tables();
    if !cfg.has_patterns() {
        return Ok(out);
    }
    // Names compare as the server compares them, as in the stream.
    let lower: Option<u8> = conn
        .query_first("SELECT @@lower_case_table_names")
        .await
        .map_err(|e| CatalogError::new("@@lower_case_table_names", e))?;
    let fold = lower.unwrap_or(0) != 0;
    let filter = cfg.table_filter().with_fold_case(fold);
    out.retain(|(s, t)| filter.captures(s, t));
    let same = |a: &(String, String), b: &(String, String)| match fold {
        true => a.0.eq_ignore_ascii_case(&b.0) && a.1.to_lowercase() == b.1.to_lowercase(),
        false => a == b,
    };
    for t in matching(conn, &filter, "'BASE TABLE', 'SYSTEM VERSIONED'").await? {
        if !out.iter().any(|o| same(o, &t)) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The objects of the given `TABLE_TYPE`s (a SQL list) that `filter`'s patterns match, sorted.
async fn matching(
    conn: &mut Conn,
    filter: &super::TableFilter,
    types: &str,
) -> Result<Vec<(String, String)>, CatalogError> {
    let mut all: Vec<(String, String)> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ({types}) \
             AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
        ))
        .await
        .map_err(|e| CatalogError::new("the tables the patterns match", e))?;
    all.retain(|(s, t)| filter.captures(s, t));
    all.sort();
    Ok(all)
}

/// A stream's filter with its patterns resolved against the server for what the binlog does
/// not say: the kinds of every table captured now (sequences, never published; system-versioned
/// periods).
pub(crate) async fn stream_scope(
    conn: &mut Conn,
    filter: super::TableFilter,
) -> Result<(super::TableFilter, TableKinds), CatalogError> {
    if !filter.has_patterns() {
        let kinds = table_kinds(conn, &filter.tables()).await?;
        return Ok((filter, kinds));
    }
    // The sequences stay in the filter's scope: their kind keeps their rows out, and a table
    // created later in a sequence's name is captured.
    let mut tables = filter.tables();
    tables.extend(
        matching(
            conn,
            &filter,
            "'BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE'",
        )
        .await?,
    );
    let kinds = table_kinds(conn, &tables).await?;
    Ok((filter, kinds))
}

/// The captured tables that need special handling.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableKinds {
    /// SEQUENCE objects: never published (the preflight refuses them by name).
    pub sequences: HashSet<(String, String)>,
    /// System-versioned tables and their period columns.
    pub versioned: HashMap<(String, String), Periods>,
    /// The tables whose kind was read (`None`: kinds are not tracked, as for a binlog file
    /// read offline). A captured table outside it has its kind read at its first TABLE_MAP.
    pub known: Option<HashSet<(String, String)>>,
    /// Of the tables [`table_kinds`] was asked about, those that do not exist (now).
    pub missing: HashSet<(String, String)>,
}

impl TableKinds {
    /// Whether the kind of a table is to be read before its rows are decoded: kinds are
    /// tracked (they came from [`table_kinds`]) and this table's was not read, because it was
    /// created, renamed or re-created after the start.
    pub(crate) fn unknown(&self, table: &(String, String)) -> bool {
        self.known.as_ref().is_some_and(|k| !k.contains(table))
    }

    /// Takes in the kind read for one table (after [`TableKinds::unknown`]). A table that no
    /// longer exists keeps the kind held for it (none after a DROP or RENAME: a plain table).
    pub(crate) fn learn(&mut self, table: (String, String), read: TableKinds) {
        if !read.missing.contains(&table) {
            self.sequences.remove(&table);
            self.versioned.remove(&table);
            self.sequences.extend(read.sequences);
            self.versioned.extend(read.versioned);
        }
        // Untracked kinds (a file read offline) stay untracked.
        if let Some(k) = self.known.as_mut() {
            k.insert(table);
        }
    }

    /// Forgets what is known of tables a statement dropped, renamed or replaced: a table that
    /// takes one of their names later has its kind read again. Names compare without case
    /// (forgetting too much only costs a read), and `(db, "*")` stands for every table of `db`.
    pub(crate) fn forget<'a>(&mut self, tables: impl IntoIterator<Item = &'a (String, String)>) {
        let gone: Vec<(String, String)> = tables
            .into_iter()
            .map(|(s, t)| (s.to_lowercase(), t.to_lowercase()))
            .collect();
        self.forget_where(|s, t| {
            gone.iter()
                .any(|(gs, gt)| *gs == s.to_lowercase() && (gt == "*" || *gt == t.to_lowercase()))
        });
    }

    fn forget_where(&mut self, gone: impl Fn(&str, &str) -> bool) {
        self.sequences.retain(|(s, t)| !gone(s, t));
        self.versioned.retain(|(s, t), _| !gone(s, t));
        if let Some(k) = self.known.as_mut() {
            k.retain(|(s, t)| !gone(s, t));
        }
    }
}

/// Reads which of `tables` are sequences or system-versioned.
pub(crate) async fn table_kinds(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<TableKinds, CatalogError> {
    let mut kinds = TableKinds {
        known: Some(tables.iter().cloned().collect()),
        ..TableKinds::default()
    };
    for (schema, table) in tables {
        let kind: Option<String> = conn
            .exec_first(
                "SELECT TABLE_TYPE FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, table),
            )
            .await
            .map_err(|source| CatalogError {
                what: "information_schema.TABLES",
                source,
            })?;
        let key = (schema.clone(), table.clone());
        match kind.as_deref() {
            None => {
                kinds.missing.insert(key);
            }
            Some("SEQUENCE") => {
                kinds.sequences.insert(key);
            }
            Some("SYSTEM VERSIONED") => {
                let ddl = show_create_table(conn, schema, table).await?;
                let periods = periods(&ddl.unwrap_or_default());
                kinds.versioned.insert(key, periods);
            }
            _ => {}
        }
    }
    Ok(kinds)
}

/// The server's own `SHOW CREATE TABLE` text of a table (`None` when it has none). Used where
/// the catalog tables do not say enough (period columns) or hide it from a SELECT-only user
/// (foreign keys).
pub(super) async fn show_create_table(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<Option<String>, CatalogError> {
    // Its readers expect the server's default form: backquoted names. ANSI_QUOTES (in sql_mode)
    // or sql_quote_show_create=OFF would print other quotes or none.
    conn.query_drop("SET SESSION sql_mode = '', SESSION sql_quote_show_create = 1")
        .await
        .map_err(|source| CatalogError::new("SET SESSION sql_quote_show_create", source))?;
    let ddl: Option<(String, String)> = conn
        .query_first(format!(
            "SHOW CREATE TABLE `{}`.`{}`",
            schema.replace('`', "``"),
            table.replace('`', "``")
        ))
        .await
        .map_err(|source| CatalogError::new("SHOW CREATE TABLE", source))?;
    Ok(ddl.map(|(_, text)| text))
}

/// The names of the captured tables that are SEQUENCE objects, for the preflight: capturing
/// one publishes nothing useful, so Sluice refuses it by name.
pub async fn sequences_among(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<Vec<(String, String)>, CatalogError> {
    let mut found: Vec<_> = table_kinds(conn, tables)
        .await?
        .sequences
        .into_iter()
        .collect();
    found.sort();
    Ok(found)
}

/// The period columns from `SHOW CREATE TABLE`'s text.
fn periods(ddl: &str) -> Periods {
    let column = |marker: &str| {
        ddl.lines()
            .find(|l| l.contains(marker))
            .and_then(|l| l.trim().strip_prefix('`'))
            .and_then(|l| l.split_once('`'))
            .map(|(name, _)| name.to_owned())
    };
    match (
        column("GENERATED ALWAYS AS ROW START"),
        column("GENERATED ALWAYS AS ROW END"),
    ) {
        (Some(start), Some(end)) => Periods {
            start,
            end,
            hidden: false,
        },
        _ => Periods {
            start: "row_start".into(),
            end: "row_end".into(),
            hidden: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_tables_not_read_at_start_are_asked_for() {
        let n = |t: &str| ("db".to_owned(), t.to_owned());
        // Untracked (a file read offline): never asked.
        assert!(!TableKinds::default().unknown(&n("t")));
        let mut k = TableKinds {
            known: Some([n("t")].into_iter().collect()),
            ..TableKinds::default()
        };
        k.versioned
            .insert(n("t"), periods("WITH SYSTEM VERSIONING"));
        assert!(!k.unknown(&n("t")) && k.unknown(&n("new")));
        let mut seq = TableKinds::default();
        seq.sequences.insert(n("new"));
        k.learn(n("new"), seq);
        assert!(!k.unknown(&n("new")) && k.sequences.contains(&n("new")));
        // A dropped or renamed name is forgotten: a table that takes it is read again.
        k.forget([&n("T"), &n("new")]);
        assert!(k.unknown(&n("t")) && k.versioned.is_empty() && k.sequences.is_empty());
        // A table gone by the time its kind is read is taken as a plain one.
        let gone = TableKinds {
            missing: [n("b")].into_iter().collect(),
            ..TableKinds::default()
        };
        k.learn(n("a"), TableKinds::default());
        k.learn(n("b"), gone);
        assert!(!k.unknown(&n("b")) && k.versioned.is_empty());
        // A dropped database forgets all of its tables.
        k.forget([&n("*")]);
        assert!(k.unknown(&n("a")) && k.unknown(&n("b")));
    }

    #[test]
    fn explicit_and_implicit_periods() {
        let explicit = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `s` timestamp(6) \
                        GENERATED ALWAYS AS ROW START,\n  `e` timestamp(6) GENERATED ALWAYS AS \
                        ROW END,\n  PRIMARY KEY (`id`,`e`)\n) WITH SYSTEM VERSIONING";
        assert_eq!(
            periods(explicit),
            Periods {
                start: "s".into(),
                end: "e".into(),
                hidden: false
            }
        );
        assert!(periods("CREATE TABLE `t` (`id` int) WITH SYSTEM VERSIONING").hidden);
    }
}
