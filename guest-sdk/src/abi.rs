//! The raw component ABI: bindings generated from `wit/` and the glue that drives a
//! [`Transform`](crate::Transform). Authors never use this module directly; the
//! [`export_transform!`](crate::export_transform) macro does.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::{Event, Kind, Op, Position, Table, Transform, Value};

wit_bindgen::generate!({
    path: "../wit",
    world: "transformer",
    pub_export_macro: true,
    default_bindings_module: "sluice_guest::abi",
});

use self::sluice::transform::types as wit;

pub use self::Guest as GuestExports;

struct Runtime {
    transform: Box<dyn FnMut(&mut Event<'_>) -> Result<(), String>>,
    tables: HashMap<u32, Table>,
}

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Sends a message to the host's log.
pub fn host_log(level: crate::LogLevel, message: &str) {
    let level = match level {
        crate::LogLevel::Trace => wit::LogLevel::Trace,
        crate::LogLevel::Debug => wit::LogLevel::Debug,
        crate::LogLevel::Info => wit::LogLevel::Info,
        crate::LogLevel::Warn => wit::LogLevel::Warn,
        crate::LogLevel::Error => wit::LogLevel::Error,
    };
    log(level, message);
}

/// `init` export: builds the author's transform from its config.
pub fn init<T: Transform>(config: Vec<(String, String)>) -> Result<wit::Interest, String> {
    // A panic's message reaches the host's log before the trap.
    std::panic::set_hook(Box::new(|info| {
        host_log(crate::LogLevel::Error, &format!("panic: {info}"))
    }));
    let config = crate::Config::from_pairs(config);
    let (mut t, interest) = T::init(&config)?;
    RUNTIME.with(|r| {
        *r.borrow_mut() = Some(Runtime {
            transform: Box::new(move |e| t.process(e)),
            tables: HashMap::new(),
        });
    });
    let crate::Interest { tables, columns } = interest;
    Ok(wit::Interest { tables, columns })
}

/// `transform` export: runs the author's `process` on each event and collects the edits.
pub fn transform(
    tables: Vec<wit::TableInfo>,
    batch: Vec<wit::EventView>,
) -> Result<Vec<wit::Edit>, String> {
    RUNTIME.with(|r| {
        let mut guard = r.borrow_mut();
        let rt = guard.as_mut().ok_or("transform called before init")?;
        for t in tables {
            rt.tables.insert(
                t.id,
                Table::new(t.schema, t.table, t.columns, t.primary_key, t.projection),
            );
        }
        let mut edits = Vec::new();
        for (i, ev) in batch.into_iter().enumerate() {
            let table = rt
                .tables
                .get(&ev.table)
                .ok_or_else(|| format!("unknown table id {}", ev.table))?;
            let mut event = Event::new(
                table,
                kind_from(ev.kind),
                ev.after.into_iter().map(value_from).collect(),
                ev.before.into_iter().map(value_from).collect(),
                Position {
                    pos: ev.position.pos,
                    row: ev.position.row,
                },
            );
            (rt.transform)(&mut event)?;
            for ops in event.into_outputs() {
                edits.push(wit::Edit {
                    event: i as u32,
                    ops: ops.into_iter().map(op_into).collect(),
                });
            }
        }
        Ok(edits)
    })
}

fn kind_from(k: wit::Kind) -> Kind {
    match k {
        wit::Kind::SnapshotInsert => Kind::SnapshotInsert,
        wit::Kind::Insert => Kind::Insert,
        wit::Kind::Update => Kind::Update,
        wit::Kind::Delete => Kind::Delete,
    }
}

fn value_from(v: wit::Value) -> Value {
    match v {
        wit::Value::Null => Value::Null,
        wit::Value::Int(x) => Value::Int(x),
        wit::Value::Uint(x) => Value::UInt(x),
        wit::Value::Float(x) => Value::Float(x),
        wit::Value::Double(x) => Value::Double(x),
        wit::Value::Decimal(x) => Value::Decimal(x),
        wit::Value::Text(x) => Value::Text(x),
        wit::Value::Bytes(x) => Value::Bytes(x),
        wit::Value::Date(d) => Value::Date {
            year: d.year,
            month: d.month,
            day: d.day,
        },
        wit::Value::Datetime(d) => Value::DateTime {
            year: d.year,
            month: d.month,
            day: d.day,
            hour: d.hour,
            minute: d.minute,
            second: d.second,
            micros: d.micros,
            fsp: d.fsp,
        },
        wit::Value::Timestamp(t) => Value::Timestamp {
            secs: t.secs,
            micros: t.micros,
            fsp: t.fsp,
        },
        wit::Value::Time(t) => Value::Time {
            negative: t.negative,
            hours: t.hours,
            minutes: t.minutes,
            seconds: t.seconds,
            micros: t.micros,
            fsp: t.fsp,
        },
        wit::Value::Json(x) => Value::Json(x),
    }
}

fn value_into(v: Value) -> wit::Value {
    match v {
        Value::Null => wit::Value::Null,
        Value::Int(x) => wit::Value::Int(x),
        Value::UInt(x) => wit::Value::Uint(x),
        Value::Float(x) => wit::Value::Float(x),
        Value::Double(x) => wit::Value::Double(x),
        Value::Decimal(x) => wit::Value::Decimal(x),
        Value::Text(x) => wit::Value::Text(x),
        Value::Bytes(x) => wit::Value::Bytes(x),
        Value::Date { year, month, day } => wit::Value::Date(wit::Date { year, month, day }),
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp,
        } => wit::Value::Datetime(wit::Datetime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp,
        }),
        Value::Timestamp { secs, micros, fsp } => {
            wit::Value::Timestamp(wit::Timestamp { secs, micros, fsp })
        }
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        } => wit::Value::Time(wit::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        }),
        Value::Json(x) => wit::Value::Json(x),
    }
}

fn op_into(op: Op) -> wit::Op {
    match op {
        Op::Drop => wit::Op::Drop,
        Op::SetAfter(i, v) => wit::Op::SetAfter((i, value_into(v))),
        Op::SetBefore(i, v) => wit::Op::SetBefore((i, value_into(v))),
        Op::RenameColumn(i, n) => wit::Op::RenameColumn((i, n)),
        Op::DropColumn(i) => wit::Op::DropColumn(i),
        Op::SetTopic(t) => wit::Op::SetTopic(t),
        Op::SetKey(k) => wit::Op::SetKey(k),
        Op::AddHeader(k, v) => wit::Op::AddHeader((k, v)),
        Op::SetPayload(p) => wit::Op::SetPayload(p),
    }
}
