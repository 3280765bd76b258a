//! [`TableFilter`]: which tables are captured, compared by name as the server compares them.

use std::collections::HashSet;

/// Which tables to capture, by `(schema, table)`.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    pub(super) tables: HashSet<(String, String)>,
    /// The server compares table and database names without case (`lower_case_table_names`
    /// 1 or 2): `TRUNCATE Orders` then empties the captured `orders`.
    fold_case: bool,
    /// Tables left out although `tables` names them: a resumed snapshot's catch-up drops the
    /// events of tables it has not read yet, since their full read later contains them.
    excluded: HashSet<(String, String)>,
}

impl TableFilter {
    pub fn new<I: IntoIterator<Item = (String, String)>>(tables: I) -> Self {
        TableFilter {
            tables: tables.into_iter().collect(),
            fold_case: false,
            excluded: HashSet::new(),
        }
    }

    /// The same filter without `tables`.
    pub(crate) fn excluding<I: IntoIterator<Item = (String, String)>>(mut self, tables: I) -> Self {
        self.excluded.extend(tables);
        self
    }

    /// Compares names as a server with `lower_case_table_names` ≠ 0 does: without case.
    pub(crate) fn with_fold_case(mut self, fold: bool) -> Self {
        self.fold_case = fold;
        self
    }

    fn same(&self, a: &str, b: &str) -> bool {
        a == b || (self.fold_case && a.to_lowercase() == b.to_lowercase())
    }

    /// The configured name of the captured table that `schema.table` names (the server may
    /// spell it in another case), or the name as given when none matches.
    pub(crate) fn canonical(&self, schema: &str, table: &str) -> (String, String) {
        self.tables
            .iter()
            .find(|(s, t)| self.same(s, schema) && self.same(t, table))
            .cloned()
            .unwrap_or_else(|| (schema.to_owned(), table.to_owned()))
    }

    /// The configured spelling of a database that holds captured tables, or `db` as given.
    pub(crate) fn canonical_db(&self, db: &str) -> String {
        self.tables
            .iter()
            .find(|(s, _)| self.same(s, db))
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| db.to_owned())
    }

    /// Whether a captured table lives in `db`.
    pub(crate) fn captures_in(&self, db: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|(s, _)| self.same(s, db))
    }

    /// A filter that captures every table (used by tools that read binlog files).
    pub fn all() -> Self {
        TableFilter::default()
    }

    /// The captured tables, by name (empty when every table is captured).
    pub(crate) fn tables(&self) -> Vec<(String, String)> {
        let mut t: Vec<_> = self.tables.iter().cloned().collect();
        t.sort();
        t
    }

    pub(crate) fn captures(&self, schema: &str, table: &str) -> bool {
        if !self.excluded.is_empty()
            && self
                .excluded
                .iter()
                .any(|(s, t)| self.same(s, schema) && self.same(t, table))
        {
            return false;
        }
        self.tables.is_empty()
            || self.tables.contains(&(schema.to_owned(), table.to_owned()))
            || (self.fold_case
                && self
                    .tables
                    .iter()
                    .any(|(s, t)| self.same(s, schema) && self.same(t, table)))
    }
}
