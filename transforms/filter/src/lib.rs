//! `filter`: drops events by table, or keeps only the rows that match a column predicate.
//!
//! Config:
//! - `drop_tables`: comma-separated `schema.table` (or `schema.*`) whose events are dropped;
//! - `column`, `op`, `value`: keep an event only when `column op value` holds. `op` is one of
//!   `==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`. Numbers compare as numbers, the rest as text.
//!   A row where the column is NULL or missing does not match.
//!
//! A table-level `truncate` event (no row) is dropped by `drop_tables` when its table is listed,
//! and otherwise passes: a row predicate cannot judge it, and dropping it would leave the
//! consumer with the table's old rows.

use sluice_guest::{export_transform, Config, Event, Interest, Kind, Transform, Value};

pub struct Filter {
    drop_tables: Interest,
    predicate: Option<(String, Op, String)>,
    /// The predicate's value as a number, parsed once.
    want_num: Option<f64>,
}

#[derive(Clone, Copy)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

impl Transform for Filter {
    fn init(config: &Config) -> Result<(Self, Interest), String> {
        let drop_tables = config.list("drop_tables");
        let predicate = match config.get("column") {
            None => None,
            Some(col) => {
                let op = match config.require("op")? {
                    "==" | "=" | "eq" => Op::Eq,
                    "!=" | "ne" => Op::Ne,
                    "<" | "lt" => Op::Lt,
                    "<=" | "le" => Op::Le,
                    ">" | "gt" => Op::Gt,
                    ">=" | "ge" => Op::Ge,
                    "contains" => Op::Contains,
                    other => {
                        return Err(format!(
                            "unknown op {other:?}: use ==, !=, <, <=, >, >= or contains"
                        ))
                    }
                };
                Some((col.to_owned(), op, config.require("value")?.to_owned()))
            }
        };
        if drop_tables.is_empty() && predicate.is_none() {
            return Err("set `drop_tables` and/or `column`, `op` and `value`".into());
        }
        // Only the predicate's column crosses into the sandbox (none when filtering by table).
        let interest = match &predicate {
            Some((c, _, _)) => Interest::columns([c.clone()]),
            None => Interest::no_columns(),
        };
        let drop_tables = Interest {
            tables: drop_tables,
            columns: None,
        };
        let want_num = predicate
            .as_ref()
            .and_then(|(_, _, w)| w.parse::<f64>().ok());
        Ok((
            Filter {
                drop_tables,
                predicate,
                want_num,
            },
            interest,
        ))
    }

    fn process(&mut self, event: &mut Event<'_>) -> Result<(), String> {
        if !self.drop_tables.tables.is_empty()
            && self
                .drop_tables
                .matches_table(event.schema(), event.table())
        {
            event.drop_event();
            return Ok(());
        }
        if event.kind() == Kind::Truncate {
            return Ok(());
        }
        if let Some((col, op, want)) = &self.predicate {
            if !event
                .get(col)
                .is_some_and(|v| matches(v, *op, want, self.want_num))
            {
                event.drop_event();
            }
        }
        Ok(())
    }
}

fn matches(v: &Value, op: Op, want: &str, want_num: Option<f64>) -> bool {
    if v.is_null() {
        return false;
    }
    if let Op::Contains = op {
        return match v {
            Value::Json(j) => j.to_string().contains(want),
            _ => v.as_str().is_some_and(|s| s.contains(want)),
        };
    }
    let num = want_num.and_then(|b| v.as_f64().map(|a| (a, b)));
    let ord = match (num, v) {
        (Some((a, b)), _) => a.partial_cmp(&b),
        (None, Value::Text(s) | Value::Decimal(s)) => Some(s.as_str().cmp(want)),
        (None, Value::Json(j)) => Some(j.to_string().as_str().cmp(want)),
        (None, other) => Some(
            sluice_guest::json::value(other)
                .to_string()
                .trim_matches('"')
                .cmp(want),
        ),
    };
    let Some(ord) = ord else { return false };
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
        Op::Contains => unreachable!(),
    }
}

export_transform!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_guest::testing::{Harness, TestEvent};

    fn order(id: i64, status: &str, total: &str) -> TestEvent {
        TestEvent::insert(
            "shop",
            "orders",
            &[
                ("id", Value::Int(id)),
                ("status", Value::Text(status.into())),
                ("total", Value::Decimal(total.into())),
            ],
        )
    }

    #[test]
    fn keeps_rows_matching_the_predicate() {
        let mut h =
            Harness::<Filter>::new(&[("column", "status"), ("op", "=="), ("value", "paid")])
                .unwrap();
        let out = h
            .run(&[
                order(1, "paid", "1.00"),
                order(2, "new", "2.00"),
                order(3, "paid", "3.00"),
            ])
            .unwrap();
        let ids: Vec<_> = out.iter().map(|o| o.get("id").cloned()).collect();
        assert_eq!(ids, vec![Some(Value::Int(1)), Some(Value::Int(3))]);
    }

    #[test]
    fn numeric_comparison_on_decimals() {
        let mut h =
            Harness::<Filter>::new(&[("column", "total"), ("op", ">="), ("value", "2")]).unwrap();
        let out = h
            .run(&[
                order(1, "x", "1.99"),
                order(2, "x", "2.00"),
                order(3, "x", "10.5"),
            ])
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].get("id"), Some(&Value::Int(2)));
    }

    #[test]
    fn drops_tables() {
        let mut h = Harness::<Filter>::new(&[("drop_tables", "shop.audit")]).unwrap();
        let audit = TestEvent::insert("shop", "audit", &[("id", Value::Int(9))]);
        let out = h.run(&[order(1, "paid", "1"), audit]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].table, "orders");
    }

    #[test]
    fn truncate_passes_the_predicate_and_is_dropped_only_by_table() {
        let mut h = Harness::<Filter>::new(&[
            ("column", "status"),
            ("op", "=="),
            ("value", "paid"),
            ("drop_tables", "shop.audit"),
        ])
        .unwrap();
        let out = h
            .run(&[
                order(1, "new", "1"),
                TestEvent::truncate("shop", "orders"),
                TestEvent::truncate("shop", "audit"),
            ])
            .unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].kind, out[0].table.as_str()),
            (Kind::Truncate, "orders")
        );
        let v = out[0].value_json();
        assert_eq!(
            v.to_string(),
            r#"{"kind":"truncate","schema":"shop","table":"orders","columnnames":[],"columnvalues":[],"oldkeys":{}}"#
        );
    }

    #[test]
    fn bad_config_is_an_error() {
        assert!(Harness::<Filter>::new(&[]).is_err());
        assert!(Harness::<Filter>::new(&[("column", "a"), ("op", "~"), ("value", "1")]).is_err());
    }
}
