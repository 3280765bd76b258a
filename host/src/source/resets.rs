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
/// events. Only `Stop` exists for now: an `event` mode (a table-level `truncate` event) needs a
/// new event kind through the WIT interface and the sinks, and `resnapshot` needs the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetPolicy {
    /// Stop with an error that names the statement, the table, the position and the way on.
    #[default]
    Stop,
}

impl ResetPolicy {
    /// What the configuration accepts, for its error message.
    pub const EXPECTED: &'static str = "stop";

    /// Parses the configuration's word for a policy.
    pub fn parse(s: &str) -> Option<ResetPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "stop" => Some(ResetPolicy::Stop),
            _ => None,
        }
    }
}

/// A table's `(schema, table)`.
pub type TableName = (String, String);

/// What a statement does to the captured tables' rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It keeps every captured table's rows (ordinary DDL, or it names no captured table).
    Keeps,
    /// An atomic rename in which each captured name that goes away is taken again by another
    /// table: `(old, new)` pairs that involve a captured name.
    Swap(Vec<(TableName, TableName)>),
    /// It removes or replaces rows of a captured table without row events.
    Reset { table: TableName, what: String },
    /// The parser cannot read it (or it holds a form Sluice does not know), and it names a
    /// captured table.
    NotUnderstood { table: String, detail: String },
}

/// The captured tables, as [`classify`] needs to see them.
pub trait Scope {
    /// Whether `schema.table` is captured.
    fn captures(&self, schema: &str, table: &str) -> bool;
    /// Whether a captured table lives in `schema`.
    fn captures_in(&self, schema: &str) -> bool;
    /// Which captured table a text may name, conservatively (any identifier equal to a
    /// captured table's name counts).
    fn mention(&self, text: &str) -> Option<String>;
}

/// Classifies one QUERY event's text. `default_db` is the event's default database.
pub fn classify(sql: &str, default_db: &str, scope: &dyn Scope) -> Verdict {
    let statements = match Parser::parse_sql(&MySqlDialect {}, sql) {
        Ok(s) => s,
        Err(e) => {
            return match scope.mention(sql) {
                Some(table) => Verdict::NotUnderstood {
                    table,
                    detail: format!("the SQL parser cannot read it ({e})"),
                },
                None => Verdict::Keeps,
            }
        }
    };
    let name = |n: &ObjectName| resolve(n, default_db);
    let captured = |n: &TableName| scope.captures(&n.0, &n.1);
    let mut swaps = Vec::new();
    for st in &statements {
        let verdict = match st {
            Statement::Truncate(t) => t
                .table_names
                .iter()
                .map(|t| name(&t.name))
                .find(|n| captured(n))
                .map(|table| Verdict::Reset {
                    table,
                    what: if t.partitions.is_some() {
                        "TRUNCATE PARTITION removes rows".into()
                    } else {
                        "TRUNCATE removes every row".into()
                    },
                }),
            Statement::Drop {
                object_type,
                names,
                temporary,
                ..
            } => match object_type {
                // A temporary table is not logged in ROW format and shadows no captured rows.
                ObjectType::Table if !*temporary => names
                    .iter()
                    .map(name)
                    .find(|n| captured(n))
                    .map(|table| Verdict::Reset {
                        table,
                        what: "DROP TABLE removes the table and its rows".into(),
                    }),
                ObjectType::Schema | ObjectType::Database => names
                    .iter()
                    .filter_map(last_part)
                    .find(|db| scope.captures_in(db))
                    .map(|db| Verdict::Reset {
                        table: (db, "*".into()),
                        what: "DROP DATABASE drops the captured tables in it".into(),
                    }),
                _ => None,
            },
            Statement::CreateTable(c) if c.or_replace && !c.temporary => {
                let n = name(&c.name);
                captured(&n).then(|| Verdict::Reset {
                    table: n,
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
                renames(&pairs, &captured, &mut swaps)
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
                if let Some(v) = renames(&[(table.clone(), new)], &captured, swaps) {
                    return Some(v);
                }
            }
            Op::DropPartitions { .. } if here => {
                return Some(Verdict::Reset {
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
                    false => scope.mention(&text),
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
    None
}

/// A rename: a captured name that goes away and is not taken again in the same statement is a
/// reset, and so is a captured name that another table takes without the old one going away.
fn renames(
    pairs: &[(TableName, TableName)],
    captured: &dyn Fn(&TableName) -> bool,
    swaps: &mut Vec<(TableName, TableName)>,
) -> Option<Verdict> {
    let mut involved = false;
    for (old, new) in pairs {
        if captured(old) && !pairs.iter().any(|(_, n)| n == old) {
            return Some(Verdict::Reset {
                table: old.clone(),
                what: format!(
                    "RENAME moves the table to {}.{}: its rows leave the captured name",
                    new.0, new.1
                ),
            });
        }
        if captured(new) && !pairs.iter().any(|(o, _)| o == new) {
            return Some(Verdict::Reset {
                table: new.clone(),
                what: format!(
                    "RENAME gives the captured name to {}.{}, which arrives with rows that were \
                     never published",
                    old.0, old.1
                ),
            });
        }
        involved |= captured(old) || captured(new);
    }
    if involved {
        swaps.extend(
            pairs
                .iter()
                .filter(|(o, n)| captured(o) || captured(n))
                .cloned(),
        );
    }
    None
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
        fn mention(&self, text: &str) -> Option<String> {
            text.to_lowercase()
                .contains("orders")
                .then(|| "shop.orders".to_owned())
        }
    }

    fn run(sql: &str) -> Verdict {
        classify(sql, "shop", &Shop)
    }

    fn reset_of(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Reset { table, .. } => Some(&table.1),
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
        assert!(matches!(
            run("alter table orders drop partition p0"),
            Verdict::NotUnderstood { .. } | Verdict::Reset { .. }
        ));
        assert!(matches!(
            run("ALTER TABLE orders ADD SYSTEM VERSIONING"),
            Verdict::NotUnderstood { .. }
        ));
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
        assert_eq!(
            reset_of(&run("RENAME TABLE orders_new TO orders")),
            Some("orders")
        );
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

    #[test]
    fn unreadable_text_naming_a_captured_table_is_not_understood() {
        assert!(matches!(
            run("ALTER IGNORE TABLE orders ADD UNIQUE (x)"),
            Verdict::NotUnderstood { .. } | Verdict::Reset { .. }
        ));
        assert!(matches!(
            run("ALTER TABLE orders TRUNCATE PARTITION p0"),
            Verdict::NotUnderstood { .. } | Verdict::Reset { .. }
        ));
        assert!(matches!(
            run("ALTER TABLE orders EXCHANGE PARTITION p0 WITH TABLE x"),
            Verdict::NotUnderstood { .. } | Verdict::Reset { .. }
        ));
        assert!(matches!(
            run("ALTER TABLE x EXCHANGE PARTITION p0 WITH TABLE orders"),
            Verdict::NotUnderstood { .. } | Verdict::Reset { .. }
        ));
        assert_eq!(reset_of(&run("DROP DATABASE shop")), Some("*"));
        assert_eq!(run("DROP DATABASE other"), Verdict::Keeps);
        assert_eq!(
            run("ALTER TABLE x EXCHANGE PARTITION p0 WITH TABLE y"),
            Verdict::Keeps
        );
    }
}
