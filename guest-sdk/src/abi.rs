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
            cs.iter().map(|c| from_cell(c, &data)).collect()
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

// `to_cell` and `from_cell`: the value/cell mapping shared with the host.
sluice_contract::cell_codec!();

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
        self.cells.push(to_cell(&v, &mut self.data));
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
                Op::AddColumn(n, v) => {
                    let name = self.span(n.as_bytes());
                    wit::Op::AddColumn((name, self.cell(v)))
                }
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
