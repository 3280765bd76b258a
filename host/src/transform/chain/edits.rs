//! Edits: a guest's answer checked against the output limits and turned into contract
//! [`Op`]s (`collect`), then applied to the events with the shared rules
//! (`sluice_contract::edit`).

use sluice_contract::{edit, Op};

use super::call::{from_cell, value_size, Selected};
use super::AnswerError;
use crate::event::{ChangeEvent, Value};
use crate::transform::engine::wit;

/// Outputs one input event may have (a split into that many events).
pub(crate) const MAX_OUTPUTS_PER_EVENT: usize = 1000;

/// Ops, and cells, one call may return.
pub(crate) const MAX_OPS_PER_CALL: usize = 1 << 20;

/// Bytes the host materialises for a stage's outputs of one batch, beyond
/// [`OUTPUT_BYTES_FACTOR`] times the batch's input: generous for envelopes and splits of small
/// batches, and far below what a guest could demand (a million copies of a large event).
pub(crate) const OUTPUT_BYTES_BASE: usize = 64 << 20;

/// How many times its input a batch's outputs may take, on top of [`OUTPUT_BYTES_BASE`]: a
/// Debezium-style envelope roughly doubles an event, and a split in two copies it.
pub(crate) const OUTPUT_BYTES_FACTOR: usize = 4;

/// What is left of a stage's output allowance for one batch.
pub(super) struct Budget {
    pub(super) left: usize,
    pub(super) input_bytes: usize,
}

/// Approximate bytes of a copy of an event (its values and routing).
pub(super) fn event_size(ev: &ChangeEvent) -> usize {
    let values: usize = ev
        .after
        .iter()
        .chain(&ev.before)
        .map(|v| value_size(Some(v)))
        .sum();
    128 + values + ev.route.as_ref().map_or(0, |r| r.heap_bytes())
}

/// Checks a call's edits and converts them: (index into `events`, ops) in the guest's order.
///
/// Charges what it materialises to `budget` (only when the whole call is accepted) and enforces
/// the output limits before copying anything large.
pub(super) fn collect(
    events: &[ChangeEvent],
    chunk: &[Selected],
    edits: wit::Edits,
    budget: &mut Budget,
) -> Result<Vec<(usize, Ops)>, AnswerError> {
    let wit::Edits {
        outputs,
        ops,
        cells,
        data,
    } = edits;
    if ops.len() > MAX_OPS_PER_CALL || cells.len() > MAX_OPS_PER_CALL {
        return Err(AnswerError::TooManyOps {
            ops: ops.len(),
            cells: cells.len(),
        });
    }
    // Outputs per input event, and the bytes this call materialises.
    let n_outputs = outputs.len();
    let mut per_event = vec![0u32; chunk.len()];
    let (mut used, mut allowance) = (0usize, budget.left);
    let over_budget = |used: usize, budget: &Budget| AnswerError::OverBudget {
        used_mib: used >> 20,
        input_kib: budget.input_bytes >> 10,
    };
    let span = |s: wit::Span| span_bytes(&data, &s);
    let text = |s: wit::Span| span_text(&data, &s);
    let cell = |c: u32| -> Result<Value, AnswerError> {
        let c = cells
            .get(c as usize)
            .ok_or_else(|| AnswerError::Malformed(format!("cell {c} of {}", cells.len())))?;
        from_cell(c, &data).map_err(AnswerError::Malformed)
    };
    let mut out = Vec::with_capacity(outputs.len());
    for o in outputs {
        let k = o.event as usize;
        let Some((i, _)) = chunk.get(k) else {
            return Err(AnswerError::NoSuchEvent {
                event: k,
                events: chunk.len(),
            });
        };
        per_event[k] += 1;
        if per_event[k] as usize > MAX_OUTPUTS_PER_EVENT {
            return Err(AnswerError::TooManyOutputs { total: n_outputs });
        }
        if per_event[k] > 1 {
            // Every output after the first is a copy of the event. The batch's input counted
            // only the values the transform sees; a split event counts whole.
            let size = event_size(&events[*i]);
            if per_event[k] == 2 {
                allowance = allowance.saturating_add(OUTPUT_BYTES_FACTOR.saturating_mul(size));
            }
            used = used.saturating_add(size);
        }
        let ev = &events[*i];
        let range = ops
            .get(o.ops_start as usize..o.ops_start as usize + o.ops_len as usize)
            .ok_or(AnswerError::NoSuchOps {
                start: o.ops_start,
                len: o.ops_len,
                total: ops.len(),
            })?;
        let mut convert = |op: &wit::Op| -> Result<Op, AnswerError> {
            used = used.saturating_add(op_bytes(op, &cells));
            if used > allowance {
                return Err(over_budget(used, budget));
            }
            Ok(match *op {
                wit::Op::Drop => Op::Drop,
                wit::Op::SetAfter((c, v)) => Op::SetAfter(c, cell(v)?),
                wit::Op::SetBefore((c, v)) => Op::SetBefore(c, cell(v)?),
                wit::Op::RenameColumn((c, name)) => Op::RenameColumn(c, text(name)?),
                wit::Op::DropColumn(c) => Op::DropColumn(c),
                wit::Op::AddColumn((name, v)) => Op::AddColumn(text(name)?, cell(v)?),
                wit::Op::SetTopic(t) => Op::SetTopic(text(t)?),
                wit::Op::SetKey(k) => Op::SetKey(span(k)?.to_vec()),
                wit::Op::AddHeader((k, v)) => Op::AddHeader(text(k)?, span(v)?.to_vec()),
                wit::Op::SetPayload(p) => Op::SetPayload(span(p)?.to_vec()),
            })
        };
        let mut list = match range {
            [one] => Ops::One(convert(one)?),
            _ => Ops::Many(range.iter().map(&mut convert).collect::<Result<_, _>>()?),
        };
        edit::check(ev.kind, &ev.meta.columns, list.as_mut_slice()).map_err(|error| {
            AnswerError::Edit {
                table: ev.meta.qualified_name(),
                error,
            }
        })?;
        out.push((*i, list));
        if used > allowance {
            return Err(over_budget(used, budget));
        }
    }
    budget.left = allowance - used;
    Ok(out)
}

/// Approximate bytes the host allocates to materialise one op (checked before it does).
fn op_bytes(op: &wit::Op, cells: &[wit::Cell]) -> usize {
    let cell = |c: u32| match cells.get(c as usize) {
        Some(
            wit::Cell::Decimal(s) | wit::Cell::Text(s) | wit::Cell::Bytes(s) | wit::Cell::Json(s),
        ) => s.len as usize,
        _ => 0,
    };
    32 + match *op {
        wit::Op::Drop | wit::Op::DropColumn(_) => 0,
        wit::Op::SetAfter((_, c)) | wit::Op::SetBefore((_, c)) => cell(c),
        // The value goes into each row image (two for an update or a delete).
        wit::Op::AddColumn((name, c)) => name.len as usize + 2 * cell(c),
        wit::Op::RenameColumn((_, s))
        | wit::Op::SetTopic(s)
        | wit::Op::SetKey(s)
        | wit::Op::SetPayload(s) => s.len as usize,
        wit::Op::AddHeader((k, v)) => k.len as usize + v.len as usize,
    }
}

/// Applies one edit's (checked) ops to an event. `None` when the edit drops it.
pub(super) fn apply(mut out: ChangeEvent, ops: &mut [Op]) -> Option<ChangeEvent> {
    edit::apply(&mut out, ops).then_some(out)
}

/// One output's ops. A single op (the usual case: a drop, or one set) is kept inline, so an
/// edit costs no allocation of its own.
#[derive(Debug, PartialEq)]
pub(super) enum Ops {
    One(Op),
    Many(Vec<Op>),
}

impl Ops {
    pub(super) fn as_mut_slice(&mut self) -> &mut [Op] {
        match self {
            Ops::One(op) => std::slice::from_mut(op),
            Ops::Many(list) => list,
        }
    }
}

/// The bytes a guest's span points at in its answer's `data`.
fn span_bytes<'a>(data: &'a [u8], s: &wit::Span) -> Result<&'a [u8], AnswerError> {
    data.get(s.start as usize..s.start as usize + s.len as usize)
        .ok_or_else(|| {
            AnswerError::Malformed(format!(
                "a span {}+{} beyond its {} bytes",
                s.start,
                s.len,
                data.len()
            ))
        })
}

/// The UTF-8 text a guest's span points at.
fn span_text(data: &[u8], s: &wit::Span) -> Result<String, AnswerError> {
    String::from_utf8(span_bytes(data, s)?.to_vec())
        .map_err(|_| AnswerError::Malformed("text that is not UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::chain::test_event as event;
    use std::sync::Arc;

    /// `n` outputs of event 0, each with one `set-payload` of `payload` bytes.
    fn edits(n: u32, payload: u32) -> wit::Edits {
        wit::Edits {
            outputs: (0..n)
                .map(|k| wit::Output {
                    event: 0,
                    ops_start: k,
                    ops_len: 1,
                })
                .collect(),
            ops: (0..n)
                .map(|_| {
                    wit::Op::SetPayload(wit::Span {
                        start: 0,
                        len: payload,
                    })
                })
                .collect(),
            cells: Vec::new(),
            data: vec![b'p'; payload as usize],
        }
    }

    /// The error of a call that must fail.
    fn refused(r: Result<Vec<(usize, Ops)>, AnswerError>) -> String {
        match r {
            Ok(found) => panic!("accepted {} outputs", found.len()),
            Err(e) => e.to_string(),
        }
    }

    fn budget(input_bytes: usize) -> Budget {
        Budget {
            left: OUTPUT_BYTES_BASE + OUTPUT_BYTES_FACTOR * input_bytes,
            input_bytes,
        }
    }

    #[test]
    fn outputs_per_event_are_capped() {
        let events = vec![event(10)];
        let chunk: Vec<Selected> = vec![(0, Arc::new(vec![0]))];
        let mut b = budget(16);
        let ok = collect(
            &events,
            &chunk,
            edits(MAX_OUTPUTS_PER_EVENT as u32, 1),
            &mut b,
        );
        assert_eq!(ok.unwrap().len(), MAX_OUTPUTS_PER_EVENT);
        let err = refused(collect(
            &events,
            &chunk,
            edits(1_000_000, 1),
            &mut budget(16),
        ));
        assert!(
            err.contains("limit of 1000 outputs per input event"),
            "{err}"
        );
    }

    #[test]
    fn materialised_bytes_are_charged_per_batch_and_refunded_on_failure() {
        // A 1 MiB event split in 100: 100 MiB of copies, over 64 MiB + 4 x 1 MiB.
        let events = vec![event(1 << 20)];
        let chunk: Vec<Selected> = vec![(0, Arc::new(vec![0]))];
        let mut b = budget(16);
        let err = refused(collect(&events, &chunk, edits(100, 1), &mut b));
        assert!(
            err.contains("over the limit of 64 MiB plus 4 times"),
            "{err}"
        );
        assert_eq!(
            b.left,
            OUTPUT_BYTES_BASE + 64,
            "a refused call charges nothing"
        );
        // A split in two fits: the copy is charged, and the split event counts whole in the
        // input (factor times its size), the two payloads at 33 bytes each.
        collect(&events, &chunk, edits(2, 1), &mut b).unwrap();
        let size = event_size(&events[0]);
        assert_eq!(
            b.left,
            OUTPUT_BYTES_BASE + 64 + (OUTPUT_BYTES_FACTOR - 1) * size - 2 * 33
        );
        // 40 outputs with 2 MiB payloads each: 80 MiB of payload copies, over the budget
        // that is left.
        let small = vec![event(1)];
        let err = refused(collect(&small, &chunk, edits(40, 2 << 20), &mut b));
        assert!(err.contains("MiB for a batch of"), "{err}");
    }

    /// One output for event 0 with `ops`, cells and data as given.
    fn answer(ops: Vec<wit::Op>, cells: Vec<wit::Cell>, data: &[u8]) -> wit::Edits {
        wit::Edits {
            outputs: vec![wit::Output {
                event: 0,
                ops_start: 0,
                ops_len: ops.len() as u32,
            }],
            ops,
            cells,
            data: data.to_vec(),
        }
    }

    #[test]
    fn answers_become_contract_ops_and_break_no_rule() {
        let events = vec![event(3)];
        let chunk: Vec<Selected> = vec![(0, Arc::new(vec![0, 1]))];
        let span = |start, len| wit::Span { start, len };
        // add-column "src" = "db1", then set id = 7.
        let ok = answer(
            vec![
                wit::Op::AddColumn((span(0, 3), 0)),
                wit::Op::SetAfter((0, 1)),
            ],
            vec![wit::Cell::Text(span(3, 3)), wit::Cell::Int(7)],
            b"srcdb1",
        );
        let mut found = collect(&events, &chunk, ok, &mut budget(64)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].1,
            Ops::Many(vec![
                Op::AddColumn("src".into(), Value::Text("db1".into())),
                Op::SetAfter(0, Value::Int(7))
            ])
        );
        let out = apply(events[0].clone(), found[0].1.as_mut_slice()).unwrap();
        assert_eq!(out.after[0], Value::Int(7));
        assert_eq!(out.meta.columns, ["id", "body", "src"]);
        assert_eq!(out.after[2], Value::Text("db1".into()));
        // A name the table has, a column it does not have, a span beyond the data.
        let dup = answer(
            vec![wit::Op::AddColumn((span(0, 4), 0))],
            vec![wit::Cell::Null],
            b"body",
        );
        let err = refused(collect(&events, &chunk, dup, &mut budget(64)));
        assert!(
            err.starts_with("s.t: the edited event would have two columns named \"body\""),
            "{err}"
        );
        let far = answer(vec![wit::Op::DropColumn(9)], vec![], b"");
        let err = refused(collect(&events, &chunk, far, &mut budget(64)));
        assert!(
            err.contains("column 9 of a table that has 2 columns"),
            "{err}"
        );
        let beyond = answer(vec![wit::Op::SetTopic(span(0, 10))], vec![], b"t");
        let err = refused(collect(&events, &chunk, beyond, &mut budget(64)));
        assert_eq!(err, "returned a span 0+10 beyond its 1 bytes");
    }
}
