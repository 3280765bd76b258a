//! Statements that remove or replace a captured table's rows without writing row events.
//!
//! Design note: in ROW format the server logs `TRUNCATE`, `DROP TABLE`, `CREATE OR REPLACE`,
//! partition `TRUNCATE/DROP/EXCHANGE`, `ALTER IGNORE … ADD UNIQUE` and renames as statement
//! text only, so the rows they remove or bring never reach the stream. This module reads such a
//! statement with a real SQL parser (sqlparser's MySQL dialect) and says what it does to the
//! captured tables. It works from an allow-list: only statement shapes known to keep every row
//! pass; anything else that names a captured table is a reset, and a statement the parser cannot
//! read is "not understood" when its text mentions a captured table. Nothing is guessed from
//! patterns. Names are resolved with the query's default database and compared as the server
//! does on Linux (lower_case_table_names=0): case-sensitively.
//!
//! The one rename that passes is the online-schema-change swap (gh-ost, pt-online-schema-change):
//! within ONE statement a captured name goes away and another table takes it. The tool kept the
//! copy in step with the original, so the consumer's rows still match the new table.

use sqlparser::ast::{
    AlterTableOperation, DataType, ObjectName, ObjectNamePart, ObjectType, Statement,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// What Sluice does when a statement removes or replaces a captured table's rows without row
/// events (`ON_TABLE_RESET`, `mysql.on_table_reset`). A third mode, `resnapshot` (publish the
/// `truncate`, then read that table's rows again in mid-stream), is refused until it exists:
/// the initial snapshot reads every table at start, not one table while streaming.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetPolicy {
    /// Stop with an error that names the statement, the table, the position and the way on.
    #[default]
    Stop,
    /// For a whole-table reset (`Verdict::Reset`), publish one table-level `truncate` event
    /// per table, in order with the rows, and go on. Partial removals
    /// (`Verdict::Partial`) and statements Sluice cannot read still stop: no event can
    /// describe them.
    Event,
}

impl ResetPolicy {
    /// What the configuration accepts, for its error message (which also answers
    /// `resnapshot`, the mode that is not there yet).
    pub(crate) const EXPECTED: &'static str =
        "stop or event (`resnapshot` is not available yet: re-reading one table in \
         mid-stream is not implemented; use `event` and re-send the table's rows yourself, \
         or `stop` and take a new snapshot of every table with FORCE_SNAPSHOT=true)";

    /// Parses the configuration's word for a policy. `None` for anything else, `resnapshot`
    /// included (see [`ResetPolicy::EXPECTED`]).
    pub(crate) fn parse(s: &str) -> Option<ResetPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "stop" => Some(ResetPolicy::Stop),
            "event" => Some(ResetPolicy::Event),
            _ => None,
        }
    }

    /// The configuration's word for the policy.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResetPolicy::Stop => "stop",
            ResetPolicy::Event => "event",
        }
    }
}

/// A table's `(schema, table)`.
pub(crate) type TableName = (String, String);

/// What a statement does to the captured tables' rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It keeps every captured table's rows (ordinary DDL, or it names no captured table).
    Keeps,
    /// An atomic rename in which each captured name that goes away is taken again by another
    /// table: `(old, new)` pairs that involve a captured name.
    Swap(Vec<(TableName, TableName)>),
    /// It removes or replaces every row of these captured tables without row events (TRUNCATE,
    /// DROP TABLE, DROP DATABASE, CREATE OR REPLACE, a rename away): a whole-table reset, which
    /// a table-level `truncate` event describes. A DROP DATABASE names its tables `(db, "*")`.
    Reset {
        tables: Vec<TableName>,
        what: String,
    },
    /// Under patterns, names the patterns capture go away or arrive (DROP TABLE, DROP
    /// DATABASE, RENAME): the capture set follows the names, so capture of `left` ends and
    /// capture of `entered`'s new names starts. `left` holds `(db, "*")` for a dropped
    /// database; `entered` holds `(old, new)` pairs; `swapped` the pairs of the same statement
    /// whose captured name another table takes again (as in [`Verdict::Swap`]).
    Membership {
        left: Vec<TableName>,
        entered: Vec<(TableName, TableName)>,
        swapped: Vec<(TableName, TableName)>,
        what: String,
    },
    /// It removes some rows of a captured table (partition TRUNCATE or DROP), or gives a
    /// captured name to a table that arrives with rows no event describes (a rename onto it):
    /// no event can describe it.
    Partial { table: TableName, what: String },
    /// The parser cannot read it (or it holds a form Sluice does not know), and it names a
    /// captured table.
    NotUnderstood { table: String, detail: String },
}

/// The captured tables, as [`classify`] needs to see them.
pub(crate) trait Scope {
    /// Whether `schema.table` is captured.
    fn captures(&self, schema: &str, table: &str) -> bool;
    /// Whether a captured table lives in `schema`.
    fn captures_in(&self, schema: &str) -> bool;
    /// Whether `schema.table` is captured because a pattern matches it, not because it is
    /// named: its capture follows the name, so a DROP or a RENAME changes the capture set
    /// instead of resetting a table the consumer holds.
    fn follows(&self, _schema: &str, _table: &str) -> bool {
        false
    }
    /// Whether `schema` holds named captured tables (not only tables a pattern matches).
    fn names_in(&self, schema: &str) -> bool {
        self.captures_in(schema)
    }
    /// Which captured table a text may name, conservatively (any identifier equal to a
    /// captured table's name counts); `default_db` resolves unqualified names.
    fn mention(&self, text: &str, default_db: &str) -> Option<String>;
    /// The configured spelling of a table name as the statement wrote it (servers with
    /// `lower_case_table_names` ≠ 0 ignore case).
    fn canonical(&self, name: TableName) -> TableName {
        name
    }
    /// The configured spelling of a database name.
    fn canonical_db(&self, db: String) -> String {
        db
    }
}

/// Classifies one QUERY event's text. `default_db` is the event's default database.
pub(crate) fn classify(sql: &str, default_db: &str, scope: &dyn Scope) -> Verdict {
    let statements = match Parser::parse_sql(&MySqlDialect {}, sql) {
        Ok(s) => s,
        // A plain CREATE TABLE (not OR REPLACE) adds a table and touches no existing row (the
        // rows of a CREATE … SELECT are row events), whatever clause the parser cannot read
        // (`WITH SYSTEM VERSIONING`): a table that existed by that name would have made it
        // fail, and a failed statement is not logged.
        Err(_) if creates_a_table(sql) => return Verdict::Keeps,
        Err(e) => {
            return match scope.mention(sql, default_db) {
                Some(table) => Verdict::NotUnderstood {
                    table,
                    detail: format!("the SQL parser cannot read it ({e})"),
                },
                None => Verdict::Keeps,
            }
        }
    };
    let name = |n: &ObjectName| scope.canonical(resolve(n, default_db));
    let captured = |n: &TableName| scope.captures(&n.0, &n.1);
    let mut swaps = Vec::new();
    for st in &statements {
        let verdict = match st {
            Statement::Truncate(t) => {
                let tables: Vec<TableName> = t
                    .table_names
                    .iter()
                    .map(|t| name(&t.name))
                    .filter(|n| captured(n))
                    .collect();
                match (tables.first(), t.partitions.is_some()) {
                    (None, _) => None,
                    (Some(table), true) => Some(Verdict::Partial {
                        table: table.clone(),
                        what: "TRUNCATE PARTITION removes some of its rows".into(),
                    }),
                    (Some(_), false) => Some(Verdict::Reset {
                        tables,
                        what: "TRUNCATE removes every row".into(),
                    }),
                }
            }
            Statement::Drop {
                object_type,
                names,
                temporary,
                ..
            } => match object_type {
                // A temporary table is not logged in ROW format and shadows no captured rows.
                ObjectType::Table if !*temporary => {
                    let tables: Vec<TableName> =
                        names.iter().map(name).filter(|n| captured(n)).collect();
                    let follow = tables.iter().all(|n| scope.follows(&n.0, &n.1));
                    dropped(tables, follow, "DROP TABLE removes the table and its rows")
                }
                ObjectType::Schema | ObjectType::Database => {
                    let dbs: Vec<String> = names
                        .iter()
                        .filter_map(last_part)
                        .filter(|db| scope.captures_in(db))
                        .collect();
                    let follow = !dbs.iter().any(|db| scope.names_in(db));
                    let tables: Vec<TableName> = dbs
                        .into_iter()
                        .map(|db| (scope.canonical_db(db), "*".to_owned()))
                        .collect();
                    dropped(
                        tables,
                        follow,
                        "DROP DATABASE drops the captured tables in it",
                    )
                }
                _ => None,
            },
            Statement::CreateTable(c) if c.or_replace && !c.temporary => {
                let n = name(&c.name);
                captured(&n).then(|| Verdict::Reset {
                    tables: vec![n],
                    what: "CREATE OR REPLACE replaces the table and its rows".into(),
                })
            }
            Statement::AlterTable(a) => {
                let table = name(&a.name);
                alter(&a.operations, &table, scope, &name, &mut swaps)
            }
            Statement::RenameTable(pairs) => {
                let pairs: Vec<_> = pairs
                    .iter()
                    .map(|r| (name(&r.old_name), name(&r.new_name)))
                    .collect();
                renames(&pairs, scope, &mut swaps)
            }
            _ => None,
        };
        if let Some(v) = verdict {
            return v;
        }
    }
    if swaps.is_empty() {
        Verdict::Keeps
    } else {
        Verdict::Swap(swaps)
    }
}

/// Captured names a DROP removes: they leave the capture set when patterns chose every one of
/// them (`follow`), else it is a whole-table reset. `None` when none is captured.
fn dropped(tables: Vec<TableName>, follow: bool, what: &str) -> Option<Verdict> {
    if tables.is_empty() {
        return None;
    }
    Some(match follow {
        true => Verdict::Membership {
            left: tables,
            entered: Vec::new(),
            swapped: Vec::new(),
            what: what.into(),
        },
        false => Verdict::Reset {
            tables,
            what: what.into(),
        },
    })
}

/// ALTER TABLE: the operations known to keep the rows pass; a rename goes through [`renames`].
fn alter(
    ops: &[AlterTableOperation],
    table: &TableName,
    scope: &dyn Scope,
    name: &dyn Fn(&ObjectName) -> TableName,
    swaps: &mut Vec<(TableName, TableName)>,
) -> Option<Verdict> {
    use AlterTableOperation as Op;
    let captured = |n: &TableName| scope.captures(&n.0, &n.1);
    let here = captured(table);
    // A rename that changes the capture set is the verdict unless a later operation of the
    // same ALTER stops.
    let mut membership = None;
    for op in ops {
        if here && custom_type(op) {
            return Some(Verdict::NotUnderstood {
                table: format!("{}.{}", table.0, table.1),
                detail: format!("the SQL parser reads `{op}` with a type it does not know"),
            });
        }
        match op {
            Op::RenameTable { table_name } => {
                let new = match table_name {
                    sqlparser::ast::RenameTableNameKind::As(n)
                    | sqlparser::ast::RenameTableNameKind::To(n) => name(n),
                };
                match renames(&[(table.clone(), new)], scope, swaps) {
                    Some(v @ Verdict::Membership { .. }) => membership = Some(v),
                    Some(v) => return Some(v),
                    None => {}
                }
            }
            Op::DropPartitions { .. } if here => {
                return Some(Verdict::Partial {
                    table: table.clone(),
                    what: "DROP PARTITION removes the partition's rows".into(),
                })
            }
            Op::AddConstraint { .. }
            | Op::AddColumn { .. }
            | Op::DropConstraint { .. }
            | Op::DropColumn { .. }
            | Op::DropPrimaryKey { .. }
            | Op::DropForeignKey { .. }
            | Op::DropIndex { .. }
            | Op::AddPartitions { .. }
            | Op::RenameColumn { .. }
            | Op::ChangeColumn { .. }
            | Op::ModifyColumn { .. }
            | Op::RenameConstraint { .. }
            | Op::AlterColumn { .. }
            | Op::Algorithm { .. }
            | Op::Lock { .. }
            | Op::AutoIncrement { .. }
            | Op::DropPartitions { .. } => {}
            other => {
                let text = other.to_string();
                let table = match here {
                    true => Some(format!("{}.{}", table.0, table.1)),
                    // It may name a captured table (EXCHANGE PARTITION … WITH TABLE t).
                    false => scope.mention(&text, &table.0),
                };
                if let Some(table) = table {
                    return Some(Verdict::NotUnderstood {
                        table,
                        detail: format!("Sluice does not know whether `{text}` keeps the rows"),
                    });
                }
            }
        }
    }
    membership
}

/// A rename. For a named table: a captured name that another table takes without the old one
/// going away brings rows that were never published (partial: no event describes them, it
/// needs a snapshot); a captured name that goes away and is not taken again in the same
/// statement is a whole-table reset of that name. For a name a pattern captures, the capture
/// set follows the names ([`Verdict::Membership`]): a name that goes away leaves it, a matching
/// name that arrives enters it. A name taken again in the same statement is a swap.
fn renames(
    pairs: &[(TableName, TableName)],
    scope: &dyn Scope,
    swaps: &mut Vec<(TableName, TableName)>,
) -> Option<Verdict> {
    let captured = |n: &TableName| scope.captures(&n.0, &n.1);
    let follows = |n: &TableName| captured(n) && scope.follows(&n.0, &n.1);
    let retaken = |n: &TableName| pairs.iter().any(|(_, new)| new == n);
    let was_old = |n: &TableName| pairs.iter().any(|(old, _)| old == n);
    for (old, new) in pairs {
        if captured(new) && !follows(new) && !was_old(new) {
            return Some(Verdict::Partial {
                table: new.clone(),
                what: format!(
                    "RENAME gives the captured name to {}.{}, which arrives with rows that were \
                     never published (no event can describe them; they need a snapshot)",
                    old.0, old.1
                ),
            });
        }
    }
    let away: Vec<&(TableName, TableName)> = pairs
        .iter()
        .filter(|(old, _)| captured(old) && !retaken(old))
        .collect();
    if let Some((_, new)) = away.iter().find(|(old, _)| !follows(old)) {
        return Some(Verdict::Reset {
            tables: away.iter().map(|(old, _)| old.clone()).collect(),
            what: format!(
                "RENAME moves the table to {}.{}: its rows leave the captured name",
                new.0, new.1
            ),
        });
    }
    let involved: Vec<(TableName, TableName)> = pairs
        .iter()
        .filter(|(o, n)| captured(o) || captured(n))
        .cloned()
        .collect();
    let left: Vec<TableName> = away.iter().map(|(old, _)| old.clone()).collect();
    let entered: Vec<(TableName, TableName)> = pairs
        .iter()
        .filter(|(_, new)| follows(new) && !was_old(new))
        .cloned()
        .collect();
    if left.is_empty() && entered.is_empty() {
        swaps.extend(involved);
        return None;
    }
    let swapped = involved
        .into_iter()
        .filter(|(o, n)| (captured(o) && retaken(o)) || (captured(n) && was_old(n)))
        .collect();
    Some(Verdict::Membership {
        left,
        entered,
        swapped,
        what: "RENAME gives it another name".into(),
    })
}

/// Whether a column in the operation has a type the parser did not recognise: then it has
/// probably misread a clause it does not know.
fn custom_type(op: &AlterTableOperation) -> bool {
    use AlterTableOperation as Op;
    // Server types that the parser leaves as custom names.
    const KNOWN: &[&str] = &[
        "INET4",
        "INET6",
        "UUID",
        "YEAR",
        "GEOMETRY",
        "POINT",
        "LINESTRING",
        "POLYGON",
        "MULTIPOINT",
        "MULTILINESTRING",
        "MULTIPOLYGON",
        "GEOMETRYCOLLECTION",
        "SERIAL",
    ];
    let unknown = |t: &DataType| match t {
        DataType::Custom(name, _) => !KNOWN
            .iter()
            .any(|k| name.to_string().eq_ignore_ascii_case(k)),
        _ => false,
    };
    match op {
        Op::AddColumn { column_def, .. } => unknown(&column_def.data_type),
        Op::ModifyColumn { data_type, .. } | Op::ChangeColumn { data_type, .. } => {
            unknown(data_type)
        }
        _ => false,
    }
}

/// `CREATE [TEMPORARY] TABLE …`, read by its first words (not `CREATE OR REPLACE`).
fn creates_a_table(sql: &str) -> bool {
    let mut words = sql.split_whitespace();
    let is = |w: Option<&str>, k: &str| w.is_some_and(|w| w.eq_ignore_ascii_case(k));
    if !is(words.next(), "CREATE") {
        return false;
    }
    match words.next() {
        w if is(w, "TABLE") => true,
        w if is(w, "TEMPORARY") => is(words.next(), "TABLE"),
        _ => false,
    }
}

fn resolve(n: &ObjectName, default_db: &str) -> TableName {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => i.value.clone(),
                other => other.to_string(),
            })
            .collect();
    match parts.as_slice() {
        [t] => (default_db.to_owned(), t.clone()),
        [.., s, t] => (s.clone(), t.clone()),
        [] => (default_db.to_owned(), String::new()),
    }
}

fn last_part(n: &ObjectName) -> Option<String> {
    n.0.last().map(|p| match p {
        ObjectNamePart::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shop;
    impl Scope for Shop {
        fn captures(&self, s: &str, t: &str) -> bool {
            s == "shop" && (t == "orders" || t == "items")
        }
        fn captures_in(&self, s: &str) -> bool {
            s == "shop"
        }
        fn mention(&self, text: &str, _: &str) -> Option<String> {
            text.to_lowercase()
                .contains("orders")
                .then(|| "shop.orders".to_owned())
        }
    }

    fn run(sql: &str) -> Verdict {
        classify(sql, "shop", &Shop)
    }

    /// The first table of a whole-table reset.
    fn reset_of(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Reset { tables, .. } => Some(&tables[0].1),
            _ => None,
        }
    }

    /// The table of a partial reset.
    fn partial_of(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Partial { table, .. } => Some(&table.1),
            _ => None,
        }
    }

    #[test]
    fn whole_table_resets() {
        assert_eq!(reset_of(&run("TRUNCATE TABLE orders")), Some("orders"));
        assert_eq!(reset_of(&run("truncate `shop`.`orders`")), Some("orders"));
        assert_eq!(
            reset_of(&run(
                "DROP TABLE IF EXISTS `other`,`orders` /* generated by server */"
            )),
            Some("orders")
        );
        assert_eq!(
            reset_of(&run("CREATE OR REPLACE TABLE orders AS SELECT 1 AS id")),
            Some("orders")
        );
        // Every captured table a statement resets is named.
        match run("DROP TABLE orders, other, items") {
            Verdict::Reset { tables, .. } => assert_eq!(
                tables,
                vec![
                    ("shop".to_owned(), "orders".to_owned()),
                    ("shop".to_owned(), "items".to_owned())
                ]
            ),
            v => panic!("not a reset: {v:?}"),
        }
        // Partial removals are never whole-table resets: no `truncate` can describe them.
        assert!(matches!(
            run("alter table orders drop partition p0"),
            Verdict::NotUnderstood { .. } | Verdict::Partial { .. }
        ));
        assert!(matches!(
            run("ALTER TABLE orders ADD SYSTEM VERSIONING"),
            Verdict::NotUnderstood { .. }
        ));
    }

    #[test]
    fn policies() {
        assert_eq!(ResetPolicy::parse("stop"), Some(ResetPolicy::Stop));
        assert_eq!(ResetPolicy::parse("Event"), Some(ResetPolicy::Event));
        assert_eq!(ResetPolicy::default(), ResetPolicy::Stop);
        assert_eq!(ResetPolicy::Event.as_str(), "event");
        // `resnapshot` needs the snapshot: refused, and the expected text says why.
        assert_eq!(ResetPolicy::parse("resnapshot"), None);
        assert!(ResetPolicy::EXPECTED.contains("resnapshot"));
        assert!(ResetPolicy::EXPECTED.contains("snapshot"));
    }

    #[test]
    fn other_tables_schemas_and_cases_pass() {
        assert_eq!(run("TRUNCATE TABLE other"), Verdict::Keeps);
        assert_eq!(run("TRUNCATE TABLE shop2.orders"), Verdict::Keeps);
        // lower_case_table_names=0: `Orders` is another table.
        assert_eq!(run("DROP TABLE Orders"), Verdict::Keeps);
        assert_eq!(run("DROP TEMPORARY TABLE orders"), Verdict::Keeps);
        assert_eq!(run("CREATE TABLE orders2 LIKE orders"), Verdict::Keeps);
    }

    #[test]
    fn ordinary_ddl_keeps_the_rows() {
        for sql in [
            "ALTER TABLE orders ADD COLUMN note VARCHAR(20)",
            "ALTER TABLE orders DROP COLUMN note",
            "ALTER TABLE orders MODIFY note TEXT",
            "CREATE INDEX ix ON orders (id)",
            "ALTER TABLE orders ADD UNIQUE KEY u (id)",
            "ALTER TABLE orders ADD COLUMN u UUID",
        ] {
            assert_eq!(run(sql), Verdict::Keeps, "{sql}");
        }
    }

    #[test]
    fn renames_and_the_swap() {
        assert_eq!(
            reset_of(&run("RENAME TABLE orders TO orders_old")),
            Some("orders")
        );
        // A table that takes a captured name arrives with rows no event describes.
        assert_eq!(
            partial_of(&run("RENAME TABLE orders_new TO orders")),
            Some("orders")
        );
        assert_eq!(
            partial_of(&run("RENAME TABLE orders TO o2, x TO orders2, y TO items")),
            Some("items")
        );
        match run("RENAME TABLE orders TO o2, items TO i2") {
            Verdict::Reset { tables, .. } => assert_eq!(tables.len(), 2),
            v => panic!("not a reset: {v:?}"),
        }
        assert_eq!(
            reset_of(&run("ALTER TABLE orders RENAME TO orders_old")),
            Some("orders")
        );
        match run("RENAME TABLE `orders` TO `_orders_old`, `_orders_new` TO `orders`") {
            Verdict::Swap(p) => assert_eq!(p.len(), 2),
            v => panic!("not a swap: {v:?}"),
        }
        assert_eq!(run("RENAME TABLE a TO b"), Verdict::Keeps);
    }

    /// Patterns: every table of `app` but `tmp_*`, and `app.orders` named.
    struct App;
    impl Scope for App {
        fn captures(&self, s: &str, t: &str) -> bool {
            s == "app" && !t.starts_with("tmp_")
        }
        fn captures_in(&self, s: &str) -> bool {
            s == "app"
        }
        fn follows(&self, s: &str, t: &str) -> bool {
            self.captures(s, t) && t != "orders"
        }
        fn names_in(&self, s: &str) -> bool {
            s == "app"
        }
        fn mention(&self, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    /// A scope with patterns only (`other.*`).
    struct Other;
    impl Scope for Other {
        fn captures(&self, s: &str, _: &str) -> bool {
            s == "other"
        }
        fn captures_in(&self, s: &str) -> bool {
            s == "other"
        }
        fn follows(&self, s: &str, t: &str) -> bool {
            self.captures(s, t)
        }
        fn names_in(&self, _: &str) -> bool {
            false
        }
        fn mention(&self, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    fn app(t: &str) -> TableName {
        ("app".to_owned(), t.to_owned())
    }

    /// `(left, entered, swapped)` of a membership change.
    type Change = (
        Vec<TableName>,
        Vec<(TableName, TableName)>,
        Vec<(TableName, TableName)>,
    );

    fn membership(sql: &str) -> Change {
        match classify(sql, "app", &App) {
            Verdict::Membership {
                left,
                entered,
                swapped,
                ..
            } => (left, entered, swapped),
            v => panic!("{sql}: not a membership change: {v:?}"),
        }
    }

    #[test]
    fn under_patterns_drops_and_renames_change_the_capture_set() {
        // A dropped table leaves; a named one is still a reset.
        assert_eq!(membership("DROP TABLE a, tmp_b").0, vec![app("a")]);
        assert!(matches!(
            classify("DROP TABLE a, orders", "app", &App),
            Verdict::Reset { .. }
        ));
        // Out of the exclude pattern: enters (its rows of now were never published).
        assert_eq!(
            membership("RENAME TABLE tmp_x TO x"),
            (vec![], vec![(app("tmp_x"), app("x"))], vec![])
        );
        // Into it: leaves.
        assert_eq!(
            membership("ALTER TABLE a RENAME TO tmp_a"),
            (vec![app("a")], vec![], vec![])
        );
        // From one matched name to another: the old leaves, the new enters.
        assert_eq!(
            membership("RENAME TABLE a TO b"),
            (vec![app("a")], vec![(app("a"), app("b"))], vec![])
        );
        // gh-ost's swap when its own tables match too: `t` keeps its capture, the ghost's
        // name leaves, the old table's new name enters.
        assert_eq!(
            membership("RENAME TABLE t TO _t_del, _t_gho TO t"),
            (
                vec![app("_t_gho")],
                vec![(app("t"), app("_t_del"))],
                vec![(app("t"), app("_t_del")), (app("_t_gho"), app("t"))]
            )
        );
        // A later operation of the same ALTER that stops still stops.
        assert!(matches!(
            classify(
                "ALTER TABLE a RENAME TO b, DROP PARTITION (p0)",
                "app",
                &App
            ),
            Verdict::Partial { .. }
        ));
        // With the tool's tables excluded, it is the plain swap.
        assert!(matches!(
            classify("RENAME TABLE t TO tmp_del, tmp_gho TO t", "app", &App),
            Verdict::Swap(_)
        ));
        // A named table keeps the strict rules.
        assert!(matches!(
            classify("RENAME TABLE tmp_x TO orders", "app", &App),
            Verdict::Partial { .. }
        ));
        assert!(matches!(
            classify("RENAME TABLE orders TO o2", "app", &App),
            Verdict::Reset { .. }
        ));
        // TRUNCATE keeps the table in the capture set: still a reset.
        assert!(matches!(
            classify("TRUNCATE a", "app", &App),
            Verdict::Reset { .. }
        ));
        // A database: with a named table in it, a reset; with patterns only, it leaves.
        assert!(matches!(
            classify("DROP DATABASE app", "x", &App),
            Verdict::Reset { .. }
        ));
        match classify("DROP DATABASE other", "x", &Other) {
            Verdict::Membership { left, .. } => {
                assert_eq!(left, vec![("other".to_owned(), "*".to_owned())])
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn unreadable_text_naming_a_captured_table_is_not_understood() {
        // None of these is a whole-table reset, so the `event` mode stops on them too.
        for sql in [
            "ALTER IGNORE TABLE orders ADD UNIQUE (x)",
            "ALTER TABLE orders TRUNCATE PARTITION p0",
            "ALTER TABLE orders EXCHANGE PARTITION p0 WITH TABLE x",
            "ALTER TABLE x EXCHANGE PARTITION p0 WITH TABLE orders",
            "TRUNCATE TABLE orders PARTITION (p0)",
        ] {
            assert!(
                matches!(
                    run(sql),
                    Verdict::NotUnderstood { .. } | Verdict::Partial { .. }
                ),
                "{sql}: {:?}",
                run(sql)
            );
        }
        assert_eq!(reset_of(&run("DROP DATABASE shop")), Some("*"));
        assert_eq!(run("DROP DATABASE other"), Verdict::Keeps);
        assert_eq!(
            run("ALTER TABLE x EXCHANGE PARTITION p0 WITH TABLE y"),
            Verdict::Keeps
        );
    }
}
