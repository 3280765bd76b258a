//! The raw component ABI: bindings generated from `wit/` and the glue that drives a
//! [`Transform`](crate::Transform). Authors never use this module directly; the
//! [`export_transform!`](crate::export_transform) macro does.

use std::cell::RefCell;
use std::collections::HashMap;

use sluice_contract::packed::{self, View, CELL_BYTES, VIEW_BYTES};

use crate::{Event, Op, Position, Table, Transform, Value};

wit_bindgen::generate!({
    path: "../wit",
    world: "transformer",
    pub_export_macro: true,
    default_bindings_module: "sluice_guest::abi",
});

use self::sluice::transform::types as wit;

pub use self::Guest as GuestExports;

/// The author's `process`, behind the export.
type Process = Box<dyn FnMut(&mut Event<'_>) -> Result<(), String>>;

struct Runtime {
    transform: Process,
    tables: HashMap<u32, Table>,
    /// Buffers reused from one event to the next, and across calls: the images' values (whose
    /// strings are refilled in place) and the ops of the current output.
    after: Vec<Value>,
    before: Vec<Value>,
    ops: Vec<Op>,
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
            after: Vec::new(),
            before: Vec::new(),
            ops: Vec::new(),
        });
    });
    let crate::Interest { tables, columns } = interest;
    Ok(wit::Interest { tables, columns })
}

/// `transform` export: runs the author's `process` on each event and collects the edits.
pub fn transform(
    tables: Vec<wit::TableInfo>,
    events: Vec<u8>,
    cells: Vec<u8>,
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
        if !events.len().is_multiple_of(VIEW_BYTES) || !cells.len().is_multiple_of(CELL_BYTES) {
            return Err("events or cells are not whole packed records".into());
        }
        let Runtime {
            transform,
            tables,
            after,
            before,
            ops,
        } = rt;
        let mut out = Encoder::default();
        let mut last: Option<(u32, &Table)> = None;
        for (i, view) in events.chunks_exact(VIEW_BYTES).enumerate() {
            let ev = View::read(view)?;
            let table = match last {
                Some((id, t)) if id == ev.table => t,
                _ => {
                    let t = tables
                        .get(&ev.table)
                        .ok_or_else(|| format!("unknown table id {}", ev.table))?;
                    last = Some((ev.table, t));
                    t
                }
            };
            refill(after, &cells, ev.after_start, ev.after_len, &data)?;
            refill(before, &cells, ev.before_start, ev.before_len, &data)?;
            let mut event = Event::with_buffers(
                table,
                ev.kind,
                std::mem::take(after),
                std::mem::take(before),
                Position {
                    pos: ev.pos,
                    row: ev.row,
                },
                std::mem::take(ops),
            );
            let result = transform(&mut event);
            let (a, b, done, mut current) = event.into_buffers();
            *after = a;
            *before = b;
            result?;
            let edited = !done.is_empty() || !current.is_empty();
            for list in done {
                out.output(i as u32, list.into_iter());
            }
            if edited {
                out.output(i as u32, current.drain(..));
            }
            *ops = current;
        }
        Ok(wit::Edits {
            outputs: out.outputs,
            ops: out.ops,
            cells: out.cells,
            data: out.data,
        })
    })
}

/// Refills `image` with the packed cells `start..start + len`, reusing the previous event's
/// strings where the kind of value is the same (no allocation once warm).
fn refill(
    image: &mut Vec<Value>,
    cells: &[u8],
    start: u32,
    len: u32,
    data: &[u8],
) -> Result<(), String> {
    let bounds = (start as usize).checked_mul(CELL_BYTES).zip(
        (start as usize)
            .checked_add(len as usize)
            .and_then(|end| end.checked_mul(CELL_BYTES)),
    );
    let range = bounds
        .and_then(|(from, to)| cells.get(from..to))
        .ok_or("cell range out of bounds")?;
    image.truncate(len as usize);
    for (k, c) in range.chunks_exact(CELL_BYTES).enumerate() {
        match image.get_mut(k) {
            Some(slot) => packed::refill(slot, c, data)?,
            None => image.push(packed::read_cell(c, data)?),
        }
    }
    Ok(())
}

// `to_cell` (for the answer's cells): the value/cell mapping shared with the host.
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

    fn output(&mut self, event: u32, ops: impl ExactSizeIterator<Item = Op>) {
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
