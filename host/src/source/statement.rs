//! QUERY events: transaction control, statement-format writes and DDL.
//!
//! Design note: a QUERY event is read by its first words for what the processor must act on at
//! once (BEGIN, COMMIT, ROLLBACK (TO), SAVEPOINT, XA, statement-format DML). A DDL statement is
//! also given to [`crate::source::resets`], which parses it and says whether it removes or replaces a
//! captured table's rows without row events; such a statement stops the stream under the reset
//! policy, before the group's checkpoint, so a restart stops at the same place.

use std::collections::HashSet;

use super::{ProcessError, Processor, ResetPolicy, Step, TableFilter};
use crate::event::{ChangeEvent, SourcePosition};
use crate::source::objects::TableKinds;
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
        // MariaDB's `SET STATEMENT var=value[, …] FOR stmt` runs `stmt`: judge that.
        let full = sql;
        let sql = for_statement(statement_text(sql)).unwrap_or(sql);
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
        // Inside a group that began with BEGIN (or XA START), a query that is neither
        // transaction control (handled above) nor DDL can only be a statement-format write,
        // whatever its first word; outside one, the DML words are.
        let in_group = self.txn.as_ref().is_some_and(|t| t.began);
        let maybe_write = is_dml(w0) || (in_group && !w0.is_empty() && !is_ddl(w0));
        if maybe_write {
            if let Some(table) = self.captured_mention(sql, schema) {
                return Err(ProcessError::StatementWrite {
                    file: self.file.to_string(),
                    pos: start,
                    txn_start: self.txn.as_ref().map_or(start, |t| t.start),
                    table,
                    sql: clip(full, 200),
                });
            }
        }
        if is_ddl(w0) {
            self.check_reset(sql, schema, start, timestamp)?;
            // Column metadata may have changed.
            self.catalog.clear();
            self.catalog_time.clear();
            // A sequence created or dropped: its kind is known from the statement itself, at
            // this point of the binlog (a table created later in its name is read again).
            if let Some((created, names)) = sequence_ddl(sql, schema) {
                let names: Vec<resets::TableName> = names
                    .into_iter()
                    .map(|(s, t)| self.filter.canonical(&s, &t))
                    .collect();
                self.kinds.forget(&names);
                if created {
                    for n in names {
                        let read = TableKinds {
                            sequences: [n.clone()].into_iter().collect(),
                            ..TableKinds::default()
                        };
                        self.kinds.learn(n, read);
                    }
                }
            }
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
    /// read that names a captured table, meets the reset policy. `stop` stops on all of them.
    /// `event` puts a table-level `truncate` event for each table of a whole-table reset into
    /// the group's batch ([`Processor::push_truncates`]) and goes on; it stops on a partial
    /// reset and on a statement Sluice cannot read, which no event can describe.
    fn check_reset(
        &mut self,
        sql: &str,
        schema: &str,
        start: u64,
        timestamp: u32,
    ) -> Result<(), ProcessError> {
        if self.filter.everything() {
            // Every table (an offline read of binlog files, `TableFilter::all`): there is no
            // consumer's copy to keep in step, and the statements are the history being read.
            return Ok(());
        }
        let txn_start = self.txn.as_ref().map_or(start, |t| t.start);
        let event_mode = self.reset_policy == ResetPolicy::Event;
        let scope = StreamScope {
            filter: &self.filter,
            kinds: &self.kinds,
        };
        let (table, what) = match resets::classify(sql, schema, &scope) {
            Verdict::Keeps => return Ok(()),
            Verdict::Swap(pairs) => {
                self.swapped(&pairs, start);
                return Ok(());
            }
            // A whole database whose captured tables patterns chose goes (`DROP DATABASE`):
            // which of them existed is not known here, so no `truncate` event can list them.
            Verdict::Membership { left, what, .. }
                if event_mode && left.iter().any(|(_, t)| t == "*") =>
            {
                let names: Vec<String> = left.iter().map(|t| format!("{}.{}", t.0, t.1)).collect();
                (
                    names.join(", "),
                    format!(
                        "{what}. Under patterns Sluice does not know here which of the \
                         database's tables it captured, so ON_TABLE_RESET=event cannot list \
                         them in `truncate` events (ON_TABLE_RESET=stop lets their capture end \
                         and goes on)"
                    ),
                )
            }
            Verdict::Membership {
                left,
                entered,
                swapped,
                what,
            } => {
                self.membership(&left, &entered, &swapped, &what, sql, start, timestamp);
                return Ok(());
            }
            // A database goes that holds named tables and tables patterns chose: the named
            // ones are known, the others not, so no `truncate` events can list them all.
            Verdict::Reset { tables, what }
                if event_mode
                    && !tables
                        .iter()
                        .any(|(db, t)| t == "*" && self.filter.patterns_in(db)) =>
            {
                self.kinds.forget(&tables);
                self.push_truncates(&tables, &what, sql, start, timestamp);
                return Ok(());
            }
            Verdict::Reset { tables, what } => {
                let names: Vec<String> =
                    tables.iter().map(|t| format!("{}.{}", t.0, t.1)).collect();
                let what = match event_mode {
                    // Only a dropped database holding pattern tables gets here in event mode.
                    true => format!(
                        "{what}. Under patterns Sluice does not know here which of the \
                         database's tables it captured, so ON_TABLE_RESET=event cannot list \
                         them in `truncate` events"
                    ),
                    false => format!(
                        "{what}. With ON_TABLE_RESET=event, Sluice publishes a table-level \
                         `truncate` event instead and goes on"
                    ),
                };
                (names.join(", "), what)
            }
            Verdict::Partial { table, what } => (
                format!("{}.{}", table.0, table.1),
                match event_mode {
                    true => format!(
                        "{what}. ON_TABLE_RESET=event publishes a `truncate` event only when \
                         every row of a table goes, and no event can describe this change"
                    ),
                    false => what,
                },
            ),
            Verdict::NotUnderstood { table, detail } => (
                table,
                match event_mode {
                    true => format!(
                        "Sluice cannot tell what it does to the table's rows: {detail}. \
                         ON_TABLE_RESET=event publishes a `truncate` event only for a \
                         statement it reads as removing every row of a table"
                    ),
                    false => {
                        format!("Sluice cannot tell what it does to the table's rows: {detail}")
                    }
                },
            ),
        };
        Err(ProcessError::TableReset {
            file: self.file.to_string(),
            pos: start,
            txn_start,
            table,
            what,
            sql: clip(sql, 200),
            policy: self.reset_policy.as_str(),
        })
    }

    /// Names the patterns capture went away or arrived ([`Verdict::Membership`]): the capture
    /// set follows them. A name that leaves is logged, and under `ON_TABLE_RESET=event` gets a
    /// `truncate` event (the consumer's copy of a table that no longer exists under that name
    /// can be cleared); a name that arrives is captured from its next change, and its rows of
    /// now, never published, are logged as such.
    #[allow(clippy::too_many_arguments)]
    fn membership(
        &mut self,
        left: &[resets::TableName],
        entered: &[(resets::TableName, resets::TableName)],
        swapped: &[(resets::TableName, resets::TableName)],
        what: &str,
        sql: &str,
        start: u64,
        timestamp: u32,
    ) {
        let position = format!("{}:{start}", self.file);
        let name = |t: &resets::TableName| format!("{}.{}", t.0, t.1);
        if !swapped.is_empty() {
            self.swapped(swapped, start);
        }
        for t in left {
            let table = match t.1.as_str() {
                "*" => format!(
                    "{}.* (every table of the database the patterns capture)",
                    t.0
                ),
                _ => name(t),
            };
            tracing::info!(
                %table,
                %position,
                statement = %clip(sql, 200),
                "{what}: the table leaves the captured names, and its capture ends{}",
                match self.reset_policy {
                    ResetPolicy::Event => "",
                    ResetPolicy::Stop => " (consumers keep the rows they hold of it; \
                        ON_TABLE_RESET=event publishes a `truncate` event for them to clear)",
                }
            );
        }
        for (from, to) in entered
            .iter()
            .filter(|(from, _)| !self.kinds.sequences.contains(from))
        {
            tracing::warn!(
                table = %name(to),
                from = %name(from),
                %position,
                "RENAME brings a table into the names the patterns capture: it is captured \
                 from its next change; the rows it holds now were never published (take a new \
                 snapshot with FORCE_SNAPSHOT=true if consumers need them)"
            );
        }
        if self.reset_policy == ResetPolicy::Event {
            self.push_truncates(left, what, sql, start, timestamp);
        }
        // A table that now holds one of these names has its kind (system-versioned,
        // sequence) read again at its first row.
        self.kinds
            .forget(left.iter().chain(entered.iter().flat_map(|(o, n)| [o, n])));
    }

    /// An atomic RENAME swapped captured names (an online schema change): logged, and the
    /// kinds of the names are read again, since other tables now hold them.
    fn swapped(&mut self, pairs: &[(resets::TableName, resets::TableName)], start: u64) {
        self.kinds.forget(pairs.iter().flat_map(|(o, n)| [o, n]));
        let renames: Vec<String> = pairs
            .iter()
            .map(|(o, n)| format!("{}.{} -> {}.{}", o.0, o.1, n.0, n.1))
            .collect();
        tracing::info!(
            position = %format!("{}:{start}", self.file),
            renames = %renames.join(", "),
            "an atomic RENAME swapped a captured table (online schema change): the new table \
             takes the captured name, and its rows are taken as the old table's"
        );
    }

    /// Puts one table-level `truncate` event per table into the open group's batch, in order
    /// with its rows: each carries the group's start and the next row index, like a row event,
    /// so it goes through the same batches, checkpoints and ordering. A DROP DATABASE's
    /// `(db, "*")` stands for every captured table in `db`.
    fn push_truncates(
        &mut self,
        tables: &[resets::TableName],
        what: &str,
        sql: &str,
        start: u64,
        timestamp: u32,
    ) {
        let mut names: Vec<resets::TableName> = Vec::new();
        for (s, t) in tables {
            let each = match t.as_str() {
                "*" => self
                    .filter
                    .tables()
                    .into_iter()
                    .filter(|(db, _)| db == s)
                    .collect(),
                _ => vec![(s.clone(), t.clone())],
            };
            for n in each {
                // A sequence's rows were never published: nothing to clear.
                if !names.contains(&n) && !self.kinds.sequences.contains(&n) {
                    names.push(n);
                }
            }
        }
        // The statement's own time, as rows carry their rows event's.
        let (pos, gtid, mut row) = match &self.txn {
            Some(t) => (t.start, t.gtid.clone(), t.rows),
            None => (start, None, 0),
        };
        for (s, t) in names {
            let event = ChangeEvent::truncate(
                &s,
                &t,
                SourcePosition {
                    file: self.file.clone(),
                    pos,
                    row,
                    gtid: gtid.clone(),
                    snapshot: false,
                    cursor: None,
                    held: None,
                },
                timestamp,
            );
            tracing::info!(
                table = %format!("{s}.{t}"),
                position = %event.position,
                statement = %clip(sql, 200),
                "{what}: published a table-level truncate event (ON_TABLE_RESET=event)"
            );
            self.ready.bytes += event.approx_bytes();
            self.ready.events.push(event);
            row += 1;
            if let Some(txn) = self.txn.as_mut() {
                txn.rows = row;
            }
        }
    }

    /// A DML statement's text may name a captured table: which one (or every table, when all
    /// are captured). Conservative: any identifier equal to a captured table's name counts.
    pub(super) fn captured_mention(&self, sql: &str, schema: &str) -> Option<String> {
        if self.filter.everything() {
            return Some(format!(
                "(every table is captured; default schema `{schema}`)"
            ));
        }
        let named = named_mention(&self.filter, sql);
        if !self.filter.has_patterns() {
            return named;
        }
        // Patterns: a word counts as a table of the default database or of a database the
        // text qualifies a name with (`db.t`, `` `db`.`t` ``).
        let schemas = statement_schemas(sql, schema);
        let words = statement_words(sql);
        let mut hits = self.filter.pattern_mentions(&words, &schemas);
        hits.extend(named);
        hits.sort();
        hits.dedup();
        (!hits.is_empty()).then(|| hits.join(", "))
    }
}

/// `CREATE [OR REPLACE] SEQUENCE [IF NOT EXISTS] name …` (true) or `DROP SEQUENCE [IF EXISTS]
/// a, b` (false), with the names resolved in `default_db`. A temporary sequence is not logged.
fn sequence_ddl(sql: &str, default_db: &str) -> Option<(bool, Vec<resets::TableName>)> {
    let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
    let (w0, mut rest) = split_word(statement_text(sql));
    let created = is(w0, "CREATE");
    if !created && !is(w0, "DROP") {
        return None;
    }
    let mut w;
    (w, rest) = split_word(rest);
    if created && is(w, "OR") {
        (_, rest) = split_word(rest); // REPLACE
        (w, rest) = split_word(rest);
    }
    if !is(w, "SEQUENCE") {
        return None;
    }
    let (w1, r1) = split_word(rest);
    if is(w1, "IF") {
        let (w2, r2) = split_word(r1);
        rest = match is(w2, "NOT") {
            true => split_word(r2).1,
            false => r2,
        };
    }
    let list = match created {
        // One name, then the options.
        true => split_word(rest).0.to_owned(),
        false => rest.to_owned(),
    };
    let names: Vec<resets::TableName> = list
        .split(',')
        .map(|n| split_word(n).0)
        .filter(|n| !n.is_empty())
        .map(|n| {
            let n = n.trim_end_matches(';');
            match n.split_once("`.`").or_else(|| n.split_once('.')) {
                Some((db, t)) => (unquote(db), unquote(t)),
                None => (default_db.to_owned(), unquote(n)),
            }
        })
        .collect();
    (!names.is_empty()).then_some((created, names))
}

/// The statement's default database and every database its text qualifies a name with
/// (`db.t`, `` `db`.`t` ``).
fn statement_schemas(sql: &str, default_db: &str) -> Vec<String> {
    let mut schemas = vec![default_db.to_owned()];
    for token in sql.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')') {
        if let Some((db, _)) = token.split_once('.') {
            let db = db.trim_matches('`');
            if !db.is_empty() && !schemas.iter().any(|s| s == db) {
                schemas.push(db.to_owned());
            }
        }
    }
    schemas
}

/// What [`resets::classify`] sees of a stream: its filter, and the tables the patterns
/// captured that the stream knows exist (their kinds were read), so that a statement the
/// parser cannot read stops when it names one of them, not only a named table.
struct StreamScope<'a> {
    filter: &'a TableFilter,
    /// `known`: the tables whose kind was read. `sequences`: their DDL (`ALTER SEQUENCE`,
    /// which the parser cannot read) touches no row.
    kinds: &'a TableKinds,
}

impl Scope for StreamScope<'_> {
    fn captures(&self, schema: &str, table: &str) -> bool {
        self.filter.captures(schema, table)
    }

    fn captures_in(&self, schema: &str) -> bool {
        self.filter.captures_in(schema)
    }

    fn follows(&self, schema: &str, table: &str) -> bool {
        self.filter.by_pattern(schema, table)
    }

    fn names_in(&self, schema: &str) -> bool {
        self.filter.names_in(schema)
    }

    fn canonical(&self, name: resets::TableName) -> resets::TableName {
        self.filter.canonical(&name.0, &name.1)
    }

    fn canonical_db(&self, db: String) -> String {
        self.filter.canonical_db(&db)
    }

    fn mention(&self, sql: &str, default_db: &str) -> Option<String> {
        let named = named_mention(self.filter, sql);
        let Some(known) = self
            .kinds
            .known
            .as_ref()
            .filter(|_| self.filter.has_patterns())
        else {
            return named;
        };
        let words = statement_words(sql);
        let schemas = statement_schemas(sql, default_db);
        let mut hits: Vec<String> = known
            .iter()
            .filter(|(s, t)| {
                !self.kinds.sequences.contains(&(s.clone(), t.clone()))
                    && words.contains(&t.to_lowercase())
                    && schemas.iter().any(|d| d.eq_ignore_ascii_case(s))
                    && self.filter.by_pattern(s, t)
            })
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        hits.extend(named);
        hits.sort();
        hits.dedup();
        (!hits.is_empty()).then(|| hits.join(", "))
    }
}

/// The named tables (not those patterns match) a statement's words may name, or every table
/// when all are captured. Bare words, and backquoted names whole (a name with `-` or a space
/// can only be written backquoted). Words inside string literals count too: a false alarm
/// stops the stream, a missed write would lose rows.
fn named_mention(filter: &TableFilter, sql: &str) -> Option<String> {
    if filter.everything() {
        return Some("(every table is captured)".to_owned());
    }
    let words = statement_words(sql);
    let mut hits: Vec<String> = filter
        .tables
        .iter()
        .filter(|(_, t)| words.contains(&t.to_lowercase()))
        .map(|(s, t)| format!("{s}.{t}"))
        .collect();
    hits.sort();
    (!hits.is_empty()).then(|| hits.join(", "))
}

/// Every word of a statement that could name a table (lowercase): bare words, and backquoted
/// names whole (a name with `-` or a space can only be written backquoted). Words inside
/// string literals count too: a false alarm stops the stream, a missed write would lose rows.
fn statement_words(sql: &str) -> HashSet<String> {
    let mut words: HashSet<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.extend(quoted_names(sql).into_iter().map(|w| w.to_lowercase()));
    words
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

/// For `SET STATEMENT var=value[, …] FOR stmt` (MariaDB), the `stmt` text; `None` for any other
/// statement. The `FOR` is the first one outside quotes and parentheses.
pub(super) fn for_statement(sql: &str) -> Option<&str> {
    let (w0, rest) = split_word(sql);
    let (w1, _) = split_word(rest);
    if !(w0.eq_ignore_ascii_case("SET") && w1.eq_ignore_ascii_case("STATEMENT")) {
        return None;
    }
    let bytes = sql.as_bytes();
    let (mut i, mut depth, mut quote) = (0usize, 0i32, None::<u8>);
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == b'\\' && q != b'`' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'\'' | b'"' | b'`' => quote = Some(c),
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ if depth == 0
                    && bytes.len() >= i + 3
                    && bytes[i..i + 3].eq_ignore_ascii_case(b"FOR")
                    && (i == 0 || !is_word_byte(bytes[i - 1]))
                    && bytes.get(i + 3).is_none_or(|b| !is_word_byte(*b)) =>
                {
                    return Some(&sql[i + 3..]);
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The backquoted names in a statement (`` `a-b` `` gives `a-b`; a doubled backquote inside is
/// one backquote). Backquotes inside string literals are not names.
pub(super) fn quoted_names(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '`' => {
                let mut name = String::new();
                while let Some(d) = chars.next() {
                    if d == '`' {
                        if chars.peek() == Some(&'`') {
                            chars.next();
                            name.push('`');
                        } else {
                            break;
                        }
                    } else {
                        name.push(d);
                    }
                }
                out.push(name);
            }
            _ => {}
        }
    }
    out
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

    #[test]
    fn names_fold_only_where_the_server_ignores_case() {
        let exact_filter = TableFilter::new([("shop".to_owned(), "orders".to_owned())]);
        let folded_filter = exact_filter.clone().with_fold_case(true);
        let kinds = TableKinds::default();
        let exact = StreamScope {
            filter: &exact_filter,
            kinds: &kinds,
        };
        let folded = StreamScope {
            filter: &folded_filter,
            kinds: &kinds,
        };
        let sql = "TRUNCATE TABLE Shop.Orders";
        assert_eq!(
            resets::classify(sql, "shop", &exact),
            resets::Verdict::Keeps
        );
        match resets::classify(sql, "shop", &folded) {
            resets::Verdict::Reset { tables, .. } => {
                assert_eq!(tables, vec![("shop".to_owned(), "orders".to_owned())])
            }
            v => panic!("{v:?}"),
        }
        match resets::classify("DROP DATABASE SHOP", "x", &folded) {
            resets::Verdict::Reset { tables, .. } => {
                assert_eq!(tables, vec![("shop".to_owned(), "*".to_owned())])
            }
            v => panic!("{v:?}"),
        }
        assert!(folded.captures("SHOP", "ORDERS") && !exact.captures("SHOP", "ORDERS"));
    }
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

    #[test]
    fn sequence_statements_name_their_sequences() {
        let n = |s: &str, t: &str| (s.to_owned(), t.to_owned());
        assert_eq!(
            sequence_ddl("CREATE SEQUENCE s START WITH 1", "db"),
            Some((true, vec![n("db", "s")]))
        );
        assert_eq!(
            sequence_ddl(
                "create or replace sequence if not exists `x`.`s` nocache",
                "db"
            ),
            Some((true, vec![n("x", "s")]))
        );
        assert_eq!(
            sequence_ddl("DROP SEQUENCE IF EXISTS a, other.b;", "db"),
            Some((false, vec![n("db", "a"), n("other", "b")]))
        );
        assert_eq!(sequence_ddl("DROP TABLE s", "db"), None);
        assert_eq!(sequence_ddl("CREATE TEMPORARY SEQUENCE s", "db"), None);
    }

    #[test]
    fn set_statement_for_and_quoted_names() {
        assert_eq!(
            for_statement("SET STATEMENT max_statement_time=1 FOR UPDATE t SET a=1").map(str::trim),
            Some("UPDATE t SET a=1")
        );
        assert_eq!(
            for_statement(
                "set statement sql_mode='FOR', x=(select 1 for update) for delete from t"
            )
            .map(str::trim),
            Some("delete from t")
        );
        assert_eq!(for_statement("SET @a = 1"), None);
        assert_eq!(
            quoted_names("UPDATE `db`.`my-t` SET c='`no`' WHERE `a``b`=1"),
            vec!["db", "my-t", "a`b"]
        );
        let start = BinlogPosition {
            file: "f".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        let p = Processor::new(
            TableFilter::new([
                ("shop".to_owned(), "my-orders".to_owned()),
                ("shop".to_owned(), "two words".to_owned()),
            ]),
            &start,
            10,
        );
        assert_eq!(
            p.captured_mention("update `shop`.`my-orders` set x=1", "shop")
                .as_deref(),
            Some("shop.my-orders")
        );
        assert_eq!(
            p.captured_mention("delete from `Two Words`", "shop")
                .as_deref(),
            Some("shop.two words")
        );
        assert_eq!(p.captured_mention("update my set orders=1", "shop"), None);
    }

    #[test]
    fn patterns_check_resets_and_statement_writes_of_matched_tables() {
        use crate::source::TablePattern;
        let start = BinlogPosition {
            file: "f".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        let filter = || {
            TableFilter::new([]).with_patterns(
                vec![TablePattern::parse("*", "shop")],
                vec![TablePattern::parse("tmp_*", "shop")],
            )
        };
        // A pattern-only filter still stops at a TRUNCATE of a matched table (not of an
        // excluded one).
        let mut p = Processor::new(filter(), &start, 10);
        assert!(p.query("TRUNCATE TABLE shop.tmp_x", "", 10, 50, 7).is_ok());
        let err = p
            .query("TRUNCATE TABLE shop.orders", "", 60, 90, 7)
            .unwrap_err();
        assert!(err.to_string().contains("shop.orders"), "{err}");
        // A DROP or RENAME of a matched table changes the capture set and goes on: in stop
        // mode without an event, the rows of the renamed-in table are captured from then on.
        let mut p = Processor::new(filter(), &start, 10);
        for (i, sql) in [
            "DROP TABLE shop.a",
            "RENAME TABLE shop.tmp_b TO shop.b",
            "RENAME TABLE shop.c TO shop.tmp_c",
            "DROP DATABASE shop",
        ]
        .iter()
        .enumerate()
        {
            let at = 100 * (i as u64 + 1);
            assert!(p.query(sql, "", at, at + 50, 7).is_ok(), "{sql}");
        }
        assert!(p.ready.events.is_empty());
        // In event mode each name that leaves gets a `truncate` event; a name that enters
        // does not.
        let mut p = Processor::new(filter(), &start, 10).with_reset_policy(ResetPolicy::Event);
        p.query("DROP TABLE shop.a, shop.tmp_x", "", 10, 50, 7)
            .unwrap();
        p.query(
            "RENAME TABLE shop.b TO shop.tmp_b, shop.tmp_y TO shop.y",
            "",
            60,
            90,
            7,
        )
        .unwrap();
        let truncated: Vec<&str> = p
            .ready
            .events
            .iter()
            .map(|e| e.meta.table.as_str())
            .collect();
        assert_eq!(truncated, vec!["a", "b"]);
        // In event mode a dropped database stops: which of its tables were captured is not
        // known.
        let err = p.query("DROP DATABASE shop", "", 100, 150, 7).unwrap_err();
        assert!(err.to_string().contains("cannot list them"), "{err}");
        // Also when it holds a named table besides the pattern ones.
        let mixed = TableFilter::new([("shop".to_owned(), "orders".to_owned())])
            .with_patterns(vec![TablePattern::parse("*", "shop")], Vec::new());
        let mut p = Processor::new(mixed, &start, 10).with_reset_policy(ResetPolicy::Event);
        let err = p.query("DROP DATABASE shop", "", 100, 150, 7).unwrap_err();
        assert!(err.to_string().contains("cannot list them"), "{err}");
        assert!(p.ready.events.is_empty());
        // A database holding named tables only is listed in full, patterns elsewhere or not.
        let named_db = TableFilter::new([("crm".to_owned(), "c".to_owned())])
            .with_patterns(vec![TablePattern::parse("*", "shop")], Vec::new());
        let mut p = Processor::new(named_db, &start, 10).with_reset_policy(ResetPolicy::Event);
        p.query("DROP DATABASE crm", "", 100, 150, 7).unwrap();
        assert_eq!(p.ready.events.len(), 1);
        assert_eq!(p.ready.events[0].meta.table, "c");
        // A sequence created mid-stream is known as one from its statement: its DDL (which
        // the parser cannot read) stops nothing, and a DROP of it publishes no truncate.
        let kinds = crate::source::objects::TableKinds {
            known: Some(HashSet::new()),
            ..Default::default()
        };
        let mut p = Processor::new(filter(), &start, 10)
            .with_table_kinds(kinds)
            .with_reset_policy(ResetPolicy::Event);
        p.query("CREATE SEQUENCE s", "shop", 10, 50, 7).unwrap();
        assert!(!p.kinds.unknown(&("shop".to_owned(), "s".to_owned())));
        p.query("ALTER SEQUENCE s RESTART 1", "shop", 60, 90, 7)
            .unwrap();
        p.query("DROP TABLE s", "shop", 100, 150, 7).unwrap();
        assert!(p.ready.events.is_empty());
        assert!(p.kinds.unknown(&("shop".to_owned(), "s".to_owned())));
        // A statement the parser cannot read stops when it names a matched table the stream
        // knows exists, not only a named one; one naming no such table passes.
        let kinds = crate::source::objects::TableKinds {
            known: Some([("shop".to_owned(), "a".to_owned())].into_iter().collect()),
            ..Default::default()
        };
        let mut p = Processor::new(filter(), &start, 10).with_table_kinds(kinds);
        // (The parser reads neither MySQL's `DROP PARTITION p0` without parentheses nor
        // MariaDB's `ALTER ONLINE TABLE`.)
        let err = p
            .query("ALTER TABLE a DROP PARTITION p0", "shop", 10, 50, 7)
            .unwrap_err();
        assert!(err.to_string().contains("shop.a"), "{err}");
        let err = p
            .query("ALTER ONLINE TABLE shop.a ADD x INT", "other", 10, 50, 7)
            .unwrap_err();
        assert!(err.to_string().contains("shop.a"), "{err}");
        for sql in [
            "ALTER TABLE tmp_a DROP PARTITION p0",
            "ALTER TABLE never_written DROP PARTITION p0",
            // A CREATE TABLE the parser cannot read adds a table, even one the stream knows of
            // (listed at a start that came after it: a restart behind the head).
            "CREATE TABLE a (id INT) WITH SYSTEM VERSIONING",
        ] {
            assert!(p.query(sql, "shop", 60, 90, 7).is_ok(), "{sql}");
        }
        // A statement-format write naming a matched table is noticed, in the default database
        // or qualified; one in another database is not. (Under `*` any word of the default
        // database's statement may be a table: such a write always stops.)
        let p = Processor::new(filter(), &start, 10);
        assert!(p
            .captured_mention("update orders set x=1", "shop")
            .is_some());
        assert!(p
            .captured_mention("update `shop`.`orders` set x=1", "other")
            .is_some());
        assert!(p.captured_mention("update a set b=1", "other").is_none());
    }

    #[test]
    fn event_mode_puts_a_truncate_per_reset_table_into_the_batch() {
        let start = BinlogPosition {
            file: "f".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        let tables = [("shop", "orders"), ("shop", "items"), ("other", "x")]
            .map(|(s, t)| (s.to_owned(), t.to_owned()));
        let mut p = Processor::new(TableFilter::new(tables.clone()), &start, 10)
            .with_reset_policy(ResetPolicy::Event);
        // DROP DATABASE resets every captured table in it, each once, in one group.
        assert_eq!(
            p.query("DROP DATABASE shop", "", 10, 50, 7).unwrap(),
            Step::Emit
        );
        let batch = p.take_batch();
        let mut got: Vec<(String, u64, u32)> = batch
            .events
            .iter()
            .map(|e| {
                assert_eq!(e.kind, crate::event::Kind::Truncate);
                assert!(e.meta.columns.is_empty() && e.after.is_empty());
                (e.meta.table.clone(), e.position.pos, e.position.row)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [("items".to_owned(), 10, 0), ("orders".to_owned(), 10, 1)]
        );
        assert_eq!(
            batch.checkpoint.and_then(|c| c.binlog().map(|c| c.pos)),
            Some(50)
        );
        // A partial reset still stops, and says why the event mode cannot help.
        let err = p
            .query("ALTER TABLE orders DROP PARTITION p0", "shop", 60, 90, 7)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ON_TABLE_RESET=event"), "{err}");
        // The stop mode publishes nothing and names the event mode.
        let mut p = Processor::new(TableFilter::new(tables), &start, 10);
        let err = p
            .query("TRUNCATE orders", "shop", 10, 50, 7)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ON_TABLE_RESET=event"), "{err}");
        assert!(p.take_batch().events.is_empty());
    }
}
