//! The native test harness: run a [`Transform`] on events in a plain `cargo test`, with the
//! same semantics as the host (table interest, column projection, edits), and no wasm.

use std::marker::PhantomData;

use serde_json::Value as Json;
use sluice_contract::edit;

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
        let p = sluice_contract::json::parse_event(line)?;
        Ok(TestEvent {
            kind: p.kind,
            primary_key: if p.kind == Kind::Truncate {
                vec![]
            } else {
                vec![0]
            },
            schema: p.schema,
            table: p.table,
            columns: p.columns,
            after: p.after,
            before: p.before,
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
    /// Indexes into `columns` of the primary key (re-numbered when columns are removed).
    pub primary_key: Vec<usize>,
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
                self.kind,
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
            let unchanged = || apply(ev, Vec::new()).map(|o| o.expect("no ops, no drop"));
            if !self.interest.matches_table(&ev.schema, &ev.table) {
                out.push(unchanged()?);
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
                out.push(unchanged()?);
            }
            for ops in outputs {
                out.extend(apply(ev, ops)?);
            }
        }
        Ok(out)
    }
}

/// Applies one edit's ops to a copy of `ev` with the host's own rules; `None` when dropped.
fn apply(ev: &TestEvent, mut ops: Vec<Op>) -> Result<Option<Output>, String> {
    edit::check(ev.kind, &ev.columns, &ops).map_err(|e| e.to_string())?;
    let mut o = Output {
        kind: ev.kind,
        schema: ev.schema.clone(),
        table: ev.table.clone(),
        columns: ev.columns.clone(),
        primary_key: ev.primary_key.iter().map(|&k| k as usize).collect(),
        after: ev.after.clone(),
        before: ev.before.clone(),
        topic: None,
        key: None,
        headers: Vec::new(),
        payload: None,
    };
    Ok(edit::apply(&mut o, &mut ops).then_some(o))
}

impl edit::Target for Output {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn primary_key(&self) -> &[usize] {
        &self.primary_key
    }

    fn images(&mut self) -> (&mut Vec<Value>, &mut Vec<Value>) {
        (&mut self.after, &mut self.before)
    }

    fn reshape(&mut self, columns: Vec<String>, primary_key: Vec<usize>) {
        self.columns = columns;
        self.primary_key = primary_key;
    }

    fn set_topic(&mut self, topic: String) {
        self.topic = Some(topic);
    }

    fn set_key(&mut self, key: Vec<u8>) {
        self.key = Some(key);
    }

    fn add_header(&mut self, key: String, value: Vec<u8>) {
        self.headers.push((key, value));
    }

    fn set_payload(&mut self, payload: Vec<u8>) {
        self.payload = Some(payload);
    }
}
