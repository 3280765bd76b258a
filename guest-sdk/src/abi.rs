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
    events: Vec<wit::EventView>,
    cells: Vec<wit::Cell>,
    data: Vec<u8>,
) -> Result<wit::Edits, String> {
    RUNTIME.with(|r| {
        let mut guard = r.borrow_mut();
        let rt = guard.as_mut().ok_or("transform called before init")?;
        for t in tables {
            rt.tables.insert(
                t.id,
                Table::new(t.schema, t.table, t.columns, t.primary_key, t.projection),
            );
        }
        let image = |start: u32, len: u32| -> Result<Vec<Value>, String> {
            let cs = cells
                .get(start as usize..(start + len) as usize)
                .ok_or("cell range out of bounds")?;
            cs.iter().map(|c| cell_value(c, &data)).collect()
        };
        let mut out = Encoder::default();
        for (i, ev) in events.iter().enumerate() {
            let table = rt
                .tables
                .get(&ev.table)
                .ok_or_else(|| format!("unknown table id {}", ev.table))?;
            let mut event = Event::new(
                table,
                kind_from(ev.kind),
                image(ev.after_start, ev.after_len)?,
                image(ev.before_start, ev.before_len)?,
                Position {
                    pos: ev.position.pos,
                    row: ev.position.row,
                },
            );
            (rt.transform)(&mut event)?;
            for ops in event.into_outputs() {
                out.output(i as u32, ops);
            }
        }
        Ok(wit::Edits {
            outputs: out.outputs,
            ops: out.ops,
            cells: out.cells,
            data: out.data,
        })
    })
}

fn kind_from(k: wit::Kind) -> Kind {
    match k {
        wit::Kind::SnapshotInsert => Kind::SnapshotInsert,
        wit::Kind::Insert => Kind::Insert,
        wit::Kind::Update => Kind::Update,
        wit::Kind::Delete => Kind::Delete,
        wit::Kind::Truncate => Kind::Truncate,
    }
}

fn text(span: wit::Span, data: &[u8]) -> Result<String, String> {
    let b = bytes(span, data)?;
    String::from_utf8(b).map_err(|_| "text cell is not UTF-8".to_owned())
}

fn bytes(span: wit::Span, data: &[u8]) -> Result<Vec<u8>, String> {
    data.get(span.start as usize..(span.start + span.len) as usize)
        .map(|b| b.to_vec())
        .ok_or_else(|| "span out of bounds".to_owned())
}

fn cell_value(c: &wit::Cell, data: &[u8]) -> Result<Value, String> {
    Ok(match *c {
        wit::Cell::Null => Value::Null,
        wit::Cell::Int(x) => Value::Int(x),
        wit::Cell::Uint(x) => Value::UInt(x),
        wit::Cell::Float(x) => Value::Float(x),
        wit::Cell::Double(x) => Value::Double(x),
        wit::Cell::Decimal(s) => Value::Decimal(text(s, data)?),
        wit::Cell::Text(s) => Value::Text(text(s, data)?),
        wit::Cell::Bytes(s) => Value::Bytes(bytes(s, data)?),
        wit::Cell::Date(d) => Value::Date {
            year: d.year,
            month: d.month,
            day: d.day,
        },
        wit::Cell::Datetime(d) => Value::DateTime {
            year: d.year,
            month: d.month,
            day: d.day,
            hour: d.hour,
            minute: d.minute,
            second: d.second,
            micros: d.micros,
            fsp: d.fsp,
        },
        wit::Cell::Timestamp(t) => Value::Timestamp {
            secs: t.secs,
            micros: t.micros,
            fsp: t.fsp,
        },
        wit::Cell::Time(t) => Value::Time {
            negative: t.negative,
            hours: t.hours,
            minutes: t.minutes,
            seconds: t.seconds,
            micros: t.micros,
            fsp: t.fsp,
        },
        wit::Cell::Json(s) => Value::Json(text(s, data)?),
    })
}

/// Builds the columnar answer.
#[derive(Default)]
struct Encoder {
    outputs: Vec<wit::Output>,
    ops: Vec<wit::Op>,
    cells: Vec<wit::Cell>,
    data: Vec<u8>,
}

impl Encoder {
    fn span(&mut self, b: &[u8]) -> wit::Span {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(b);
        wit::Span {
            start,
            len: b.len() as u32,
        }
    }

    fn cell(&mut self, v: Value) -> u32 {
        let c = match v {
            Value::Null => wit::Cell::Null,
            Value::Int(x) => wit::Cell::Int(x),
            Value::UInt(x) => wit::Cell::Uint(x),
            Value::Float(x) => wit::Cell::Float(x),
            Value::Double(x) => wit::Cell::Double(x),
            Value::Decimal(s) => wit::Cell::Decimal(self.span(s.as_bytes())),
            Value::Text(s) => wit::Cell::Text(self.span(s.as_bytes())),
            Value::Bytes(b) => wit::Cell::Bytes(self.span(&b)),
            Value::Date { year, month, day } => wit::Cell::Date(wit::Date { year, month, day }),
            Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
                fsp,
            } => wit::Cell::Datetime(wit::Datetime {
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
                wit::Cell::Timestamp(wit::Timestamp { secs, micros, fsp })
            }
            Value::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
                fsp,
            } => wit::Cell::Time(wit::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
                fsp,
            }),
            Value::Json(s) => wit::Cell::Json(self.span(s.as_bytes())),
        };
        self.cells.push(c);
        (self.cells.len() - 1) as u32
    }

    fn output(&mut self, event: u32, ops: Vec<Op>) {
        let start = self.ops.len() as u32;
        let n = ops.len() as u32;
        for op in ops {
            let o = match op {
                Op::Drop => wit::Op::Drop,
                Op::SetAfter(i, v) => wit::Op::SetAfter((i, self.cell(v))),
                Op::SetBefore(i, v) => wit::Op::SetBefore((i, self.cell(v))),
                Op::RenameColumn(i, n) => wit::Op::RenameColumn((i, self.span(n.as_bytes()))),
                Op::DropColumn(i) => wit::Op::DropColumn(i),
                Op::SetTopic(t) => wit::Op::SetTopic(self.span(t.as_bytes())),
                Op::SetKey(k) => wit::Op::SetKey(self.span(&k)),
                Op::AddHeader(k, v) => wit::Op::AddHeader((self.span(k.as_bytes()), self.span(&v))),
                Op::SetPayload(p) => wit::Op::SetPayload(self.span(&p)),
            };
            self.ops.push(o);
        }
        self.outputs.push(wit::Output {
            event,
            ops_start: start,
            ops_len: n,
        });
    }
}
