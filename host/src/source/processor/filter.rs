//! [`TableFilter`]: which tables are captured, compared by name as the server compares them.
//!
//! Design note: a filter names tables (`MYSQL_TABLE=orders,items`) or matches them with glob
//! patterns on `db.table` (`MYSQL_TABLE=*`, `mysql.include`, `mysql.exclude`): `*` stands for
//! any run of characters, `?` for one; neither crosses the `.`. Patterns are matched as the
//! stream goes, so a table created mid-stream is captured from its first row. The system
//! schemas are never captured.

use std::collections::HashSet;

/// Databases whose tables are never captured, whatever the patterns say.
const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// A `db.table` glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    pub schema: String,
    pub table: String,
}

impl TablePattern {
    /// `db.table`, or `table` in `default_db`.
    pub fn parse(text: &str, default_db: &str) -> TablePattern {
        match text.split_once('.') {
            Some((db, table)) => TablePattern {
                schema: db.to_owned(),
                table: table.to_owned(),
            },
            None => TablePattern {
                schema: default_db.to_owned(),
                table: text.to_owned(),
            },
        }
    }

    /// Whether a text holds a glob character (`*` or `?`).
    pub fn is_glob(text: &str) -> bool {
        text.contains(['*', '?'])
    }

    fn matches(&self, schema: &str, table: &str, fold: bool) -> bool {
        glob(&self.schema, schema, fold) && glob(&self.table, table, fold)
    }
}

impl std::fmt::Display for TablePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Whether `text` matches the glob `pattern` (`*`: any run, `?`: one character).
fn glob(pattern: &str, text: &str, fold: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        match fold {
            true => s.to_lowercase().chars().collect(),
            false => s.chars().collect(),
        }
    };
    let (p, t) = (norm(pattern), norm(text));
    // Iterative matching with one backtrack point for the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Which tables to capture, by `(schema, table)`.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    pub(super) tables: HashSet<(String, String)>,
    /// Tables captured by pattern (besides `tables`).
    include: Vec<TablePattern>,
    /// Tables never captured, though named or matched.
    exclude: Vec<TablePattern>,
    /// The server compares table and database names without case (`lower_case_table_names`
    /// 1 or 2): `TRUNCATE Orders` then empties the captured `orders`.
    fold_case: bool,
    /// The server stores names in lowercase (`lower_case_table_names=1`): the spelling of a
    /// name a statement gives, for a table no name configures.
    lowercase_names: bool,
    /// Tables left out although `tables` names them: a resumed snapshot's catch-up drops the
    /// events of tables it has not read yet, since their full read later contains them.
    excluded: HashSet<(String, String)>,
}

impl TableFilter {
    pub fn new<I: IntoIterator<Item = (String, String)>>(tables: I) -> Self {
        TableFilter {
            tables: tables.into_iter().collect(),
            include: Vec::new(),
            exclude: Vec::new(),
            fold_case: false,
            lowercase_names: false,
            excluded: HashSet::new(),
        }
    }

    /// The same filter, also capturing the tables `include` matches, and never those
    /// `exclude` matches.
    pub fn with_patterns(mut self, include: Vec<TablePattern>, exclude: Vec<TablePattern>) -> Self {
        self.include = include;
        self.exclude = exclude;
        self
    }

    /// Whether patterns choose tables (the set can change as tables are created).
    pub(crate) fn has_patterns(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// Whether the filter captures every table (a tool reading binlog files).
    pub(crate) fn everything(&self) -> bool {
        self.tables.is_empty() && self.include.is_empty()
    }

    /// The same filter without `tables`.
    pub(crate) fn excluding<I: IntoIterator<Item = (String, String)>>(mut self, tables: I) -> Self {
        self.excluded.extend(tables);
        self
    }

    /// Compares names as a server with `lower_case_table_names` ≠ 0 does: without case; with
    /// 1 the server also stores them in lowercase (with 2, as created).
    pub(crate) fn with_lower_case_table_names(mut self, value: u8) -> Self {
        self.fold_case = value != 0;
        self.lowercase_names = value == 1;
        self
    }

    /// Compares names without case (`lower_case_table_names` 2: stored as created).
    pub(crate) fn with_fold_case(mut self, fold: bool) -> Self {
        self.fold_case = fold;
        self
    }

    fn same(&self, a: &str, b: &str) -> bool {
        a == b || (self.fold_case && a.to_lowercase() == b.to_lowercase())
    }

    /// The configured name of the captured table that `schema.table` names (the server may
    /// spell it in another case), or else the name as the server stores it: lowercase when it
    /// ignores case (`lower_case_table_names=1`, the usual setting that folds), as given
    /// otherwise.
    pub(crate) fn canonical(&self, schema: &str, table: &str) -> (String, String) {
        self.tables
            .iter()
            .find(|(s, t)| self.same(s, schema) && self.same(t, table))
            .cloned()
            .unwrap_or_else(|| (self.stored(schema), self.stored(table)))
    }

    /// The configured spelling of a database that holds captured tables, or else `db` as the
    /// server stores it (see [`TableFilter::canonical`]).
    pub(crate) fn canonical_db(&self, db: &str) -> String {
        self.tables
            .iter()
            .find(|(s, _)| self.same(s, db))
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| self.stored(db))
    }

    fn stored(&self, name: &str) -> String {
        match self.lowercase_names {
            true => name.to_lowercase(),
            false => name.to_owned(),
        }
    }

    /// The tables a statement's words may name that the patterns capture: each word (lowercase)
    /// taken as a table of each database in `schemas` (the statement's default database and
    /// every qualifier in its text). A statement naming such a table may write a captured one.
    pub(crate) fn pattern_mentions(
        &self,
        words: &HashSet<String>,
        schemas: &[String],
    ) -> Vec<String> {
        let mut out = Vec::new();
        for s in schemas {
            if SYSTEM_SCHEMAS.contains(&s.to_ascii_lowercase().as_str()) {
                continue;
            }
            for w in words {
                let included = self.include.iter().any(|p| p.matches(s, w, true));
                let excluded = self.exclude.iter().any(|p| p.matches(s, w, true));
                if included && !excluded {
                    out.push(format!("{s}.{w}"));
                }
            }
        }
        out
    }

    /// Whether `schema.table` is captured only because a pattern matches it (it is not named
    /// in `tables`): its capture follows its name through DROP and RENAME.
    pub(crate) fn by_pattern(&self, schema: &str, table: &str) -> bool {
        self.has_patterns()
            && self.captures(schema, table)
            && !self
                .tables
                .iter()
                .any(|(s, t)| self.same(s, schema) && self.same(t, table))
    }

    /// Whether `db` holds a table named in `tables` (or every table is captured).
    pub(crate) fn names_in(&self, db: &str) -> bool {
        self.everything() || self.tables.iter().any(|(s, _)| self.same(s, db))
    }

    /// Whether an include pattern can match tables of `db` (besides named tables).
    pub(crate) fn patterns_in(&self, db: &str) -> bool {
        !SYSTEM_SCHEMAS.contains(&db.to_ascii_lowercase().as_str())
            && self
                .include
                .iter()
                .any(|p| glob(&p.schema, db, self.fold_case))
    }

    /// Whether a captured table lives in `db`.
    pub(crate) fn captures_in(&self, db: &str) -> bool {
        self.everything()
            || self.tables.iter().any(|(s, _)| self.same(s, db))
            || (!SYSTEM_SCHEMAS.contains(&db.to_ascii_lowercase().as_str())
                && self
                    .include
                    .iter()
                    .any(|p| glob(&p.schema, db, self.fold_case)))
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
        if self.has_patterns() {
            if SYSTEM_SCHEMAS.contains(&schema.to_ascii_lowercase().as_str())
                || self
                    .exclude
                    .iter()
                    .any(|p| p.matches(schema, table, self.fold_case))
            {
                return false;
            }
            if self
                .include
                .iter()
                .any(|p| p.matches(schema, table, self.fold_case))
            {
                return true;
            }
        }
        self.everything()
            || self.tables.contains(&(schema.to_owned(), table.to_owned()))
            || (self.fold_case
                && self
                    .tables
                    .iter()
                    .any(|(s, t)| self.same(s, schema) && self.same(t, table)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_one_name() {
        assert!(glob("*", "orders", false));
        assert!(glob("ord*", "orders", false));
        assert!(glob("o?ders", "orders", false));
        assert!(glob("*_log", "audit_log", false));
        assert!(!glob("*_log", "audit_logs", false));
        assert!(glob("a*b*c", "aXXbYYc", false));
        assert!(!glob("a*b*c", "aXXbYY", false));
        assert!(!glob("Orders", "orders", false));
        assert!(glob("Orders", "orders", true));
        assert!(glob("", "", false));
        assert!(!glob("", "x", false));
    }

    #[test]
    fn patterns_include_exclude_and_never_system_schemas() {
        let p = |t: &str| TablePattern::parse(t, "shop");
        let f = TableFilter::new([("other".to_owned(), "named".to_owned())]).with_patterns(
            vec![p("*"), p("*.audit_*")],
            vec![p("tmp_*"), p("*.audit_secret")],
        );
        assert!(f.captures("shop", "orders"));
        assert!(f.captures("shop", "new_table_created_later"));
        assert!(!f.captures("shop", "tmp_import"));
        assert!(f.captures("crm", "audit_calls"));
        assert!(!f.captures("crm", "audit_secret"));
        assert!(!f.captures("crm", "contacts"));
        assert!(f.captures("other", "named"));
        assert!(!f.captures("mysql", "audit_user"));
        assert!(!f.captures("information_schema", "audit_x"));
        assert!(f.captures_in("crm") && f.captures_in("shop") && f.captures_in("other"));
        assert!(!f.captures_in("mysql"));
        // Excluding wins over naming too.
        let g = TableFilter::new([("shop".to_owned(), "tmp_x".to_owned())])
            .with_patterns(Vec::new(), vec![p("tmp_*")]);
        assert!(!g.captures("shop", "tmp_x"));
        assert!(
            !g.captures("shop", "orders"),
            "exclude alone captures nothing more"
        );
    }
}
