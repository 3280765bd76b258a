//! QUERY events: transaction control, statement-format writes and DDL.
//!
//! Design note: a QUERY event is read by its first words for what the processor must act on at
//! once (BEGIN, COMMIT, ROLLBACK [TO], SAVEPOINT, XA, statement-format DML). A DDL statement is
//! also given to [`super::resets`], which parses it and says whether it removes or replaces a
//! captured table's rows without row events; such a statement stops the stream under the reset
//! policy, before the group's checkpoint, so a restart stops at the same place.

use std::collections::HashSet;

use super::{ProcessError, Processor, ResetPolicy, Step, TableFilter};
use crate::source::resets::{self, Scope, Verdict};

impl Processor {
    /// Handles a QUERY (or QUERY_COMPRESSED) event's statement.
    pub(super) fn query(
        &mut self,
        sql: &str,
        schema: &str,
        start: u64,
        end: u64,
        timestamp: u32,
    ) -> Result<Step, ProcessError> {
        let (w0, rest) = split_word(statement_text(sql));
        let (w1, rest1) = split_word(rest);
        let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
        if is(w0, "BEGIN") || (is(w0, "START") && is(w1, "TRANSACTION")) {
            self.open_txn(start, None, false, timestamp);
            self.txn.as_mut().expect("opened above").began = true;
            return Ok(Step::Continue);
        }
        if is(w0, "COMMIT") {
            return self.commit(end, timestamp);
        }
        if is(w0, "ROLLBACK") {
            // ROLLBACK [WORK] TO [SAVEPOINT] name, or ROLLBACK [WORK]
            let (mut w, mut r) = (w1, rest1);
            if is(w, "WORK") {
                (w, r) = split_word(r);
            }
            if is(w, "TO") {
                let (mut name, r2) = split_word(r);
                if is(name, "SAVEPOINT") {
                    name = split_word(r2).0;
                }
                return self.rollback_to(&unquote(name), start);
            }
            return self.rollback(start, end, timestamp);
        }
        if is(w0, "SAVEPOINT") {
            if let Some(t) = self.txn.as_mut() {
                t.savepoints.push((unquote(w1), t.rows));
            }
            return Ok(Step::Continue);
        }
        if is(w0, "RELEASE") && self.txn.is_some() {
            return Ok(Step::Continue);
        }
        if is(w0, "XA") {
            return self.xa_statement(w1, rest1, start, end, timestamp);
        }
        if is_dml(w0) {
            if let Some(table) = self.captured_mention(sql, schema) {
                return Err(ProcessError::StatementWrite {
                    file: self.file.to_string(),
                    pos: start,
                    txn_start: self.txn.as_ref().map_or(start, |t| t.start),
                    table,
                    sql: clip(sql, 200),
                });
            }
        }
        if is_ddl(w0) {
            self.check_reset(sql, schema, start)?;
            // Column metadata may have changed.
            self.catalog.clear();
            self.catalog_time.clear();
        }
        match self.txn.as_mut() {
            Some(t) if t.began && !t.standalone => Ok(Step::Continue),
            // MySQL's atomic CREATE TABLE … SELECT: the rows and an XID follow.
            Some(t) if ends_with_start_transaction(sql) => {
                t.began = true;
                Ok(Step::Continue)
            }
            // A query after a GTID without BEGIN (a DDL), or outside any group: its own group.
            _ => self.commit(end, timestamp),
        }
    }

    /// `ROLLBACK`: the group's rows did not persist (see the module note).
    fn rollback(&mut self, pos: u64, end: u64, timestamp: u32) -> Result<Step, ProcessError> {
        if let Some(t) = &self.txn {
            if t.emitted > 0 {
                return Err(ProcessError::RolledBackAfterPublish {
                    what: "ROLLBACK",
                    file: self.file.to_string(),
                    pos,
                    txn_start: t.start,
                    emitted: t.emitted,
                });
            }
        }
        self.ready.events.clear();
        self.ready.bytes = 0;
        // Nothing of the group persisted, cascades included.
        self.stmt = Default::default();
        // The rolled-back group is passed: the position may move beyond it.
        self.commit(end, timestamp)
    }

    /// `ROLLBACK TO name`: the rows since `SAVEPOINT name` did not persist.
    fn rollback_to(&mut self, name: &str, pos: u64) -> Result<Step, ProcessError> {
        let file = self.file.to_string();
        let Some(t) = self.txn.as_mut() else {
            return Ok(Step::Continue);
        };
        let Some(i) = t.savepoints.iter().rposition(|(n, _)| n == name) else {
            return Err(ProcessError::Malformed {
                what: "ROLLBACK TO SAVEPOINT",
                file,
                pos,
                detail: format!("the savepoint `{name}` was not set in this transaction"),
            });
        };
        let mark = t.savepoints[i].1;
        if mark < t.emitted {
            return Err(ProcessError::RolledBackAfterPublish {
                what: "ROLLBACK TO SAVEPOINT",
                file,
                pos,
                txn_start: t.start,
                emitted: t.emitted,
            });
        }
        t.savepoints.truncate(i + 1);
        self.ready.events.truncate((mark - t.emitted) as usize);
        self.ready.recount();
        t.rows = mark;
        Ok(Step::Continue)
    }

    /// A DDL statement that removes or replaces a captured table's rows, or one Sluice cannot
    /// read that names a captured table, meets the reset policy.
    fn check_reset(&self, sql: &str, schema: &str, start: u64) -> Result<(), ProcessError> {
        if self.filter.tables.is_empty() {
            // Every table (an offline read of binlog files, `TableFilter::all`): there is no
            // consumer's copy to keep in step, and the statements are the history being read.
            return Ok(());
        }
        let txn_start = self.txn.as_ref().map_or(start, |t| t.start);
        let (table, what) = match resets::classify(sql, schema, &self.filter) {
            Verdict::Keeps => return Ok(()),
            Verdict::Swap(pairs) => {
                let renames: Vec<String> = pairs
                    .iter()
                    .map(|(o, n)| format!("{}.{} -> {}.{}", o.0, o.1, n.0, n.1))
                    .collect();
                tracing::info!(
                    position = %format!("{}:{start}", self.file),
                    renames = %renames.join(", "),
                    "an atomic RENAME swapped a captured table (online schema change): the new \
                     table takes the captured name, and its rows are taken as the old table's"
                );
                return Ok(());
            }
            Verdict::Reset { table, what } => (format!("{}.{}", table.0, table.1), what),
            Verdict::NotUnderstood { table, detail } => (
                table,
                format!("Sluice cannot tell what it does to the table's rows: {detail}"),
            ),
        };
        match self.reset_policy {
            ResetPolicy::Stop => Err(ProcessError::TableReset {
                file: self.file.to_string(),
                pos: start,
                txn_start,
                table,
                what,
                sql: clip(sql, 200),
            }),
        }
    }

    /// A DML statement's text may name a captured table: which one (or every table, when all
    /// are captured). Conservative: any identifier equal to a captured table's name counts.
    pub(super) fn captured_mention(&self, sql: &str, schema: &str) -> Option<String> {
        if self.filter.tables.is_empty() {
            return Some(format!(
                "(every table is captured; default schema `{schema}`)"
            ));
        }
        self.filter.mention(sql)
    }
}

impl Scope for TableFilter {
    fn captures(&self, schema: &str, table: &str) -> bool {
        TableFilter::captures(self, schema, table)
    }

    fn captures_in(&self, schema: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|(s, _)| s == schema)
    }

    fn mention(&self, sql: &str) -> Option<String> {
        if self.tables.is_empty() {
            return Some("(every table is captured)".to_owned());
        }
        let words: HashSet<String> = sql
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let mut hits: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, t)| words.contains(&t.to_lowercase()))
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        hits.sort();
        (!hits.is_empty()).then(|| hits.join(", "))
    }
}

/// The statement without leading blanks, parentheses and comments.
pub(super) fn statement_text(sql: &str) -> &str {
    let mut s = sql;
    loop {
        s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(rest) = s.strip_prefix("/*") {
            // `/*!… */` and `/*M!… */` hold executable text; take it as part of the statement.
            if rest.starts_with('!') || rest.starts_with("M!") {
                let body = rest.trim_start_matches("M").trim_start_matches('!');
                return body.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            s = rest.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else if s.starts_with("-- ") || s.starts_with('#') {
            s = s.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else {
            return s;
        }
    }
}

/// The first word and what follows it.
pub(super) fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s
        .find(|c: char| c.is_whitespace() || c == ';')
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

#[cfg(test)]
fn first_word(sql: &str) -> &str {
    split_word(statement_text(sql)).0
}

pub(super) fn unquote(name: &str) -> String {
    name.trim_matches('`').trim_end_matches(';').to_owned()
}

fn ends_with_start_transaction(sql: &str) -> bool {
    let t = sql.trim_end().trim_end_matches(';').trim_end();
    t.len() >= 17 && t[t.len() - 17..].eq_ignore_ascii_case("START TRANSACTION")
}

pub(super) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn is_ddl(word: &str) -> bool {
    ["ALTER", "CREATE", "DROP", "RENAME", "TRUNCATE"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// Statements that change rows when the server logs them as text (statement format).
fn is_dml(word: &str) -> bool {
    [
        "INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD", "CALL", "DO", "SELECT", "WITH", "HANDLER",
    ]
    .iter()
    .any(|w| word.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::processor::TableFilter;
    use crate::state::BinlogPosition;

    #[test]
    fn statement_words() {
        assert_eq!(first_word("BEGIN"), "BEGIN");
        assert_eq!(first_word("  /* app */ ALTER TABLE t ADD c INT"), "ALTER");
        assert_eq!(first_word("COMMIT;"), "COMMIT");
        assert_eq!(
            first_word("/*!40000 ALTER TABLE t DISABLE KEYS */"),
            "ALTER"
        );
        assert!(is_ddl("alter"));
        assert!(!is_ddl("insert"));
        assert!(is_dml("Insert"));
        assert_eq!(unquote("`s1`"), "s1");
        assert!(ends_with_start_transaction(
            "CREATE TABLE t AS SELECT 1 START TRANSACTION"
        ));
    }

    #[test]
    fn statement_writes_name_the_captured_table() {
        let start = BinlogPosition {
            file: "f".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        let p = Processor::new(
            TableFilter::new([("shop".to_owned(), "orders".to_owned())]),
            &start,
            10,
        );
        assert_eq!(
            p.captured_mention("update `shop`.`Orders` set x=1", "shop")
                .as_deref(),
            Some("shop.orders")
        );
        assert_eq!(
            p.captured_mention("insert into orders_archive values (1)", "shop"),
            None
        );
    }
}
