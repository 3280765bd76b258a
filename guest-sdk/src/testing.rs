//! The native test harness: run a [`Transform`] on events in a plain `cargo test`, with the
//! same semantics as the host (table interest, column projection, edits), and no wasm.

use std::marker::PhantomData;

use serde_json::Value as Json;

use crate::{json, Config, Event, Interest, Kind, Op, Position, Table, Transform, Value};

/// An input event for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEvent {
    pub kind: Kind,
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub primary_key: Vec<u32>,
    /// The row after the change (empty for delete).
    pub after: Vec<Value>,
    /// The row before the change (empty for insert).
    pub before: Vec<Value>,
}

fn split(cols: &[(&str, Value)]) -> (Vec<String>, Vec<Value>) {
    cols.iter().map(|(c, v)| (c.to_string(), v.clone())).unzip()
}

impl TestEvent {
    pub fn insert(schema: &str, table: &str, cols: &[(&str, Value)]) -> Self {
        let (columns, after) = split(cols);
        TestEvent {
            kind: Kind::Insert,
            schema: schema.into(),
            table: table.into(),
            columns,
            primary_key: vec![0],
            after,
            before: vec![],
        }
    }

    pub fn update(
        schema: &str,
        table: &str,
        before: &[(&str, Value)],
        after: &[(&str, Value)],
    ) -> Self {
        let (columns, after) = split(after);
        let (_, before) = split(before);
        TestEvent {
            kind: Kind::Update,
            schema: schema.into(),
            table: table.into(),
            columns,
            primary_key: vec![0],
            after,
            before,
        }
    }

    pub fn delete(schema: &str, table: &str, before: &[(&str, Value)]) -> Self {
        let (columns, before) = split(before);
        TestEvent {
            kind: Kind::Delete,
            schema: schema.into(),
            table: table.into(),
            columns,
            primary_key: vec![0],
            after: vec![],
            before,
        }
    }

    /// A table-level `truncate` event: no columns, no values.
    pub fn truncate(schema: &str, table: &str) -> Self {
        TestEvent {
            kind: Kind::Truncate,
            schema: schema.into(),
            table: table.into(),
            columns: vec![],
            primary_key: vec![],
            after: vec![],
            before: vec![],
        }
    }

    /// Parses one event in the contract's JSON format.
    pub fn from_json(line: &str) -> Result<Self, String> {
        let v: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let s = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("missing string field {k:?}"))
        };
        let kind = match s("kind")?.as_str() {
            "snapshot_insert" => Kind::SnapshotInsert,
            "insert" => Kind::Insert,
            "update" => Kind::Update,
            "delete" => Kind::Delete,
            "truncate" => Kind::Truncate,
            other => return Err(format!("unknown kind {other:?}")),
        };
        if kind == Kind::Truncate {
            return Ok(TestEvent::truncate(&s("schema")?, &s("table")?));
        }
        let names = |k: &Json| -> Vec<String> {
            k.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let values = |k: &Json| -> Vec<Value> {
            k.as_array()
                .map(|a| a.iter().map(json::from_json).collect())
                .unwrap_or_default()
        };
        let mut columns = names(&v["columnnames"]);
        if columns.is_empty() {
            columns = names(&v["oldkeys"]["keynames"]);
        }
        Ok(TestEvent {
            kind,
            schema: s("schema")?,
            table: s("table")?,
            columns,
            primary_key: vec![0],
            after: values(&v["columnvalues"]),
            before: values(&v["oldkeys"]["keyvalues"]),
        })
    }
}

/// One output event.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub kind: Kind,
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub after: Vec<Value>,
    pub before: Vec<Value>,
    pub topic: Option<String>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Option<Vec<u8>>,
}

impl Output {
    /// A column of the row after the change (before it, for a delete).
    pub fn get(&self, column: &str) -> Option<&Value> {
        let i = self.columns.iter().position(|c| c == column)?;
        if self.kind == Kind::Delete {
            self.before.get(i)
        } else {
            self.after.get(i)
        }
    }

    /// The message value: the payload if the transform set one, else the contract's JSON.
    pub fn value_json(&self) -> Json {
        match &self.payload {
            Some(p) => serde_json::from_slice(p)
                .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(p).into_owned())),
            None => json::event(
                self.kind.as_str(),
                &self.schema,
                &self.table,
                &self.columns,
                &self.after,
                &self.before,
            ),
        }
    }

    /// The form `sluice transform test --envelope` prints: routing plus the value.
    pub fn envelope_json(&self) -> Json {
        serde_json::json!({
            "topic": self.topic,
            "key": self.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
            "headers": self.headers.iter().map(|(k, v)| serde_json::json!([k, String::from_utf8_lossy(v)])).collect::<Vec<_>>(),
            "value": self.value_json(),
        })
    }
}

/// Runs a transform natively.
pub struct Harness<T: Transform> {
    transform: T,
    interest: Interest,
    _t: PhantomData<T>,
}

impl<T: Transform> Harness<T> {
    /// Initialises the transform with config pairs.
    pub fn new(config: &[(&str, &str)]) -> Result<Self, String> {
        let cfg = Config::from_pairs(
            config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let (transform, interest) = T::init(&cfg)?;
        Ok(Harness {
            transform,
            interest,
            _t: PhantomData,
        })
    }

    /// Runs the transform over `events` as the host would, returning the published events.
    pub fn run(&mut self, events: &[TestEvent]) -> Result<Vec<Output>, String> {
        let mut out = Vec::new();
        for (n, ev) in events.iter().enumerate() {
            let unchanged = || apply(ev, &[]).expect("no ops");
            if !self.interest.matches_table(&ev.schema, &ev.table) {
                out.push(unchanged());
                continue;
            }
            let projection = self.interest.projection(&ev.columns);
            let table = Table::new(
                ev.schema.clone(),
                ev.table.clone(),
                ev.columns.clone(),
                ev.primary_key.clone(),
                projection.clone(),
            );
            let pick = |image: &[Value]| -> Vec<Value> {
                if image.is_empty() {
                    Vec::new()
                } else {
                    projection
                        .iter()
                        .map(|&i| image[i as usize].clone())
                        .collect()
                }
            };
            let mut event = Event::new(
                &table,
                ev.kind,
                pick(&ev.after),
                pick(&ev.before),
                Position {
                    pos: 0,
                    row: n as u32,
                },
            );
            self.transform.process(&mut event)?;
            let outputs = event.into_outputs();
            if outputs.is_empty() {
                out.push(unchanged());
            }
            for ops in outputs {
                out.extend(apply(ev, &ops));
            }
        }
        Ok(out)
    }
}

/// Applies one edit's ops to a copy of `ev` (the host does the same); `None` when dropped.
fn apply(ev: &TestEvent, ops: &[Op]) -> Option<Output> {
    let mut o = Output {
        kind: ev.kind,
        schema: ev.schema.clone(),
        table: ev.table.clone(),
        columns: ev.columns.clone(),
        after: ev.after.clone(),
        before: ev.before.clone(),
        topic: None,
        key: None,
        headers: Vec::new(),
        payload: None,
    };
    let mut removed = vec![false; o.columns.len()];
    for op in ops {
        match op {
            Op::Drop => return None,
            Op::SetAfter(i, v) => {
                if let Some(x) = o.after.get_mut(*i as usize) {
                    *x = v.clone();
                }
            }
            Op::SetBefore(i, v) => {
                if let Some(x) = o.before.get_mut(*i as usize) {
                    *x = v.clone();
                }
            }
            Op::RenameColumn(i, n) => {
                if let Some(c) = o.columns.get_mut(*i as usize) {
                    *c = n.clone();
                }
            }
            Op::DropColumn(i) => {
                if let Some(r) = removed.get_mut(*i as usize) {
                    *r = true;
                }
            }
            Op::SetTopic(t) => o.topic = Some(t.clone()),
            Op::SetKey(k) => o.key = Some(k.clone()),
            Op::AddHeader(k, v) => o.headers.push((k.clone(), v.clone())),
            Op::SetPayload(p) => o.payload = Some(p.clone()),
        }
    }
    if removed.iter().any(|r| *r) {
        let keep = |v: &mut Vec<Value>| {
            if !v.is_empty() {
                let mut i = 0;
                v.retain(|_| {
                    i += 1;
                    !removed[i - 1]
                });
            }
        };
        keep(&mut o.after);
        keep(&mut o.before);
        let mut i = 0;
        o.columns.retain(|_| {
            i += 1;
            !removed[i - 1]
        });
    }
    Some(o)
}
