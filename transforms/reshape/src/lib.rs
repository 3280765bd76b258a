//! `reshape`: renames or drops columns, or publishes a Debezium-style envelope.
//!
//! Config:
//! - `rename`: `old:new` pairs, comma-separated;
//! - `drop`: columns to leave out, comma-separated;
//! - `add`: `name:text` pairs, comma-separated: new text columns with a constant value (for
//!   example `add = "source_db:eu1"`), published after the table's columns in every row image;
//! - `envelope = debezium`: publish `{"before", "after", "op", "source"}` instead of the
//!   contract's JSON. `op` is `c` (insert), `u`, `d`, `r` (snapshot read) or `t` (a table-level
//!   `truncate`, with `before` and `after` null, as Debezium does); `before` and `after` are
//!   objects keyed by column name, after renames and drops.
//!
//! Renames, drops and added columns leave a `truncate` event as it is (it has no row).

use serde_json::{json, Map, Value as Json};
use sluice_guest::{export_transform, json as cj, Config, Event, Interest, Kind, Transform, Value};

pub struct Reshape {
    rename: Vec<(String, String)>,
    drop: Vec<String>,
    add: Vec<(String, String)>,
    debezium: bool,
}

/// `a:b` pairs of a comma-separated config list.
fn pairs(config: &Config, key: &str) -> Result<Vec<(String, String)>, String> {
    config
        .list(key)
        .into_iter()
        .map(|p| {
            p.split_once(':')
                .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
                .ok_or(format!("{key} entry {p:?} is not name:value"))
        })
        .collect()
}

impl Transform for Reshape {
    fn init(config: &Config) -> Result<(Self, Interest), String> {
        let rename = pairs(config, "rename")?;
        let drop = config.list("drop");
        let add = pairs(config, "add")?;
        let debezium = match config.get("envelope") {
            None => false,
            Some("debezium") => true,
            Some(other) => {
                return Err(format!(
                    "unknown envelope {other:?}: the only one is debezium"
                ))
            }
        };
        if rename.is_empty() && drop.is_empty() && add.is_empty() && !debezium {
            return Err("set `rename`, `drop`, `add` and/or `envelope`".into());
        }
        // Renames and drops need no values; the envelope needs every column.
        let interest = if debezium {
            Interest::all()
        } else {
            Interest::no_columns()
        };
        Ok((
            Reshape {
                rename,
                drop,
                add,
                debezium,
            },
            interest,
        ))
    }

    fn process(&mut self, event: &mut Event<'_>) -> Result<(), String> {
        for (old, new) in &self.rename {
            if event.columns().iter().any(|c| c == old) {
                event.rename(old, new)?;
            }
        }
        for col in &self.drop {
            if event.columns().iter().any(|c| c == col) {
                event.remove(col)?;
            }
        }
        if event.kind() != Kind::Truncate {
            for (name, text) in &self.add {
                event.add(name, Value::Text(text.clone()))?;
            }
        }
        if self.debezium {
            let row = |image: &dyn Fn(&str) -> Option<Json>| -> Json {
                let mut m = Map::new();
                for c in event.columns() {
                    if self.drop.contains(c) {
                        continue;
                    }
                    let name = self
                        .rename
                        .iter()
                        .find(|(o, _)| o == c)
                        .map(|(_, n)| n.clone())
                        .unwrap_or_else(|| c.clone());
                    m.insert(name, image(c).unwrap_or(Json::Null));
                }
                for (name, text) in &self.add {
                    m.insert(name.clone(), Json::String(text.clone()));
                }
                Json::Object(m)
            };
            let after = |c: &str| event.get(c).map(cj::value);
            let before = |c: &str| event.get_before(c).map(cj::value);
            let (op, b, a) = match event.kind() {
                Kind::Insert => ("c", Json::Null, row(&after)),
                Kind::SnapshotInsert => ("r", Json::Null, row(&after)),
                Kind::Update => ("u", row(&before), row(&after)),
                Kind::Delete => ("d", row(&before), Json::Null),
                Kind::Truncate => ("t", Json::Null, Json::Null),
            };
            let p = event.position();
            let envelope = json!({
                "before": b,
                "after": a,
                "op": op,
                "source": {"connector": "sluice", "db": event.schema(), "table": event.table(), "pos": p.pos, "row": p.row},
            });
            event.set_payload(envelope.to_string().into_bytes());
        }
        Ok(())
    }
}

export_transform!(Reshape);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_guest::testing::{Harness, TestEvent};
    use sluice_guest::Value;

    fn ev() -> TestEvent {
        TestEvent::update(
            "shop",
            "users",
            &[
                ("id", Value::Int(1)),
                ("name", Value::Text("a".into())),
                ("secret", Value::Text("s".into())),
            ],
            &[
                ("id", Value::Int(1)),
                ("name", Value::Text("b".into())),
                ("secret", Value::Text("t".into())),
            ],
        )
    }

    #[test]
    fn renames_and_drops() {
        let mut h =
            Harness::<Reshape>::new(&[("rename", "name:full_name"), ("drop", "secret")]).unwrap();
        let out = h.run(&[ev()]).unwrap();
        assert_eq!(out[0].columns, vec!["id", "full_name"]);
        assert_eq!(out[0].get("full_name"), Some(&Value::Text("b".into())));
        assert_eq!(out[0].before.len(), 2);
    }

    #[test]
    fn adds_constant_columns_to_every_row_image() {
        let mut h =
            Harness::<Reshape>::new(&[("add", "source_db:eu1,tier:gold"), ("drop", "secret")])
                .unwrap();
        let del = TestEvent::delete("shop", "users", &[("id", Value::Int(2))]);
        let out = h
            .run(&[ev(), del, TestEvent::truncate("shop", "users")])
            .unwrap();
        assert_eq!(out[0].columns, vec!["id", "name", "source_db", "tier"]);
        assert_eq!(out[0].get("source_db"), Some(&Value::Text("eu1".into())));
        assert_eq!(out[0].before[2], Value::Text("eu1".into()));
        assert_eq!(
            out[0].value_json()["columnnames"],
            json!(["id", "name", "source_db", "tier"])
        );
        assert_eq!(
            out[0].value_json()["oldkeys"]["keyvalues"],
            json!([1, "a", "eu1", "gold"])
        );
        // A delete has only the row before the change: the column is added there.
        assert_eq!(out[1].get("tier"), Some(&Value::Text("gold".into())));
        assert!(out[1].after.is_empty());
        // A truncate has no row and takes no column.
        assert!(out[2].columns.is_empty());
        // A name the table already has is refused, as the host refuses it.
        let mut h = Harness::<Reshape>::new(&[("add", "name:x")]).unwrap();
        let err = h.run(&[ev()]).unwrap_err();
        assert!(err.contains("two columns named \"name\""), "{err}");
    }

    #[test]
    fn truncate_is_debezium_op_t_and_survives_renames() {
        let trunc = TestEvent::truncate("shop", "users");
        let mut h = Harness::<Reshape>::new(&[("envelope", "debezium")]).unwrap();
        let out = h.run(std::slice::from_ref(&trunc)).unwrap();
        let v = out[0].value_json();
        assert_eq!(v["op"], "t");
        assert_eq!(v["before"], Json::Null);
        assert_eq!(v["after"], Json::Null);
        assert_eq!(v["source"]["table"], "users");
        let mut h =
            Harness::<Reshape>::new(&[("rename", "name:full_name"), ("drop", "secret")]).unwrap();
        let out = h.run(&[trunc]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value_json()["kind"], "truncate");
        assert!(out[0].columns.is_empty());
    }

    #[test]
    fn debezium_envelope() {
        let mut h =
            Harness::<Reshape>::new(&[("envelope", "debezium"), ("drop", "secret")]).unwrap();
        let out = h.run(&[ev()]).unwrap();
        let v = out[0].value_json();
        assert_eq!(v["op"], "u");
        assert_eq!(v["before"], json!({"id": 1, "name": "a"}));
        assert_eq!(v["after"], json!({"id": 1, "name": "b"}));
        assert_eq!(v["source"]["table"], "users");
    }
}
