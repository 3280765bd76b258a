//! Marshalling: one guest call for a slice of a batch. Builds the packed event views and cells
//! (`sluice_contract::packed`, text and bytes in one buffer), and cuts a batch into calls by
//! events and bytes.

use std::sync::Arc;

use sluice_contract::packed::{self, View, CELL_BYTES};

use super::stage::Stage;
use super::CallError;
use crate::event::{ChangeEvent, Value};
use crate::transform::engine::sandbox::LimitExceeded;
use crate::transform::engine::{wit, EngineError, Trap};

/// An event chosen for a call: its index in the batch and its column projection.
pub(super) type Selected = (usize, Arc<Vec<u32>>);

/// Events per guest call.
pub(crate) const CALL_EVENTS: usize = 128;

/// Approximate bytes of values per guest call: a call is cut earlier when its events are large.
pub(crate) const CALL_BYTES: usize = 1 << 20;

/// Cuts the selected events into calls of at most `max` events and about [`CALL_BYTES`].
/// Also returns the approximate bytes of all the values sent.
pub(super) fn chunks<'a>(
    events: &[ChangeEvent],
    selected: &'a [Selected],
    max: usize,
) -> (Vec<&'a [Selected]>, usize) {
    let mut out = Vec::new();
    let (mut start, mut bytes, mut total) = (0, 0, 0);
    for (k, (i, plan)) in selected.iter().enumerate() {
        let ev = &events[*i];
        bytes += plan
            .iter()
            .map(|&c| value_size(ev.after.get(c as usize)) + value_size(ev.before.get(c as usize)))
            .sum::<usize>();
        if k + 1 - start >= max || bytes >= CALL_BYTES {
            out.push(&selected[start..=k]);
            start = k + 1;
            total += bytes;
            bytes = 0;
        }
    }
    if start < selected.len() {
        out.push(&selected[start..]);
    }
    (out, total + bytes)
}

/// Reusable buffers for building calls: a batch's packed views and cells, and the bytes their
/// spans point at (`sluice_contract::packed`).
#[derive(Default)]
pub(crate) struct CallBuffers {
    views: Vec<u8>,
    cells: Vec<u8>,
    data: Vec<u8>,
}

/// One guest call for `chunk` (indexes into `events`), with the tables it has not seen yet.
pub(super) fn call(
    stage: &mut Stage,
    events: &[ChangeEvent],
    ids: &[u32],
    chunk: &[Selected],
) -> Result<wit::Edits, CallError> {
    let mut tables = Vec::new();
    let mut bufs = std::mem::take(&mut stage.buffers);
    bufs.views.clear();
    bufs.cells.clear();
    bufs.data.clear();
    // The table of the previous event, already sent or queued in `tables`.
    let mut known = None;
    for (i, plan) in chunk {
        let ev = &events[*i];
        let id = ids[*i];
        if known != Some(id)
            && !stage.sent.contains(&id)
            && !tables.iter().any(|t: &wit::TableInfo| t.id == id)
        {
            tables.push(wit::TableInfo {
                id,
                schema: ev.meta.schema.clone(),
                table: ev.meta.table.clone(),
                columns: ev.meta.columns.clone(),
                primary_key: ev.meta.primary_key.iter().map(|&k| k as u32).collect(),
                projection: plan.as_ref().clone(),
            });
        }
        known = Some(id);
        let project = |image: &[Value], bufs: &mut CallBuffers| -> (u32, u32) {
            let start = (bufs.cells.len() / CELL_BYTES) as u32;
            if !image.is_empty() {
                for &c in plan.iter() {
                    let v = image.get(c as usize).unwrap_or(&Value::Null);
                    packed::write_cell(v, &mut bufs.cells, &mut bufs.data);
                }
            }
            (start, (bufs.cells.len() / CELL_BYTES) as u32 - start)
        };
        let (after_start, after_len) = project(&ev.after, &mut bufs);
        let (before_start, before_len) = project(&ev.before, &mut bufs);
        View {
            kind: ev.kind,
            table: id,
            pos: ev.position.pos,
            row: ev.position.row,
            after_start,
            after_len,
            before_start,
            before_len,
        }
        .write(&mut bufs.views);
    }
    stage.stats.calls += 1;
    stage.stats.events_in += chunk.len() as u64;
    let result = match stage.live() {
        Ok(live) => live.call(&tables, &bufs.views, &bufs.cells, &bufs.data),
        Err(e) => Err(e),
    };
    stage.buffers = bufs;
    match result {
        Ok(edits) => {
            stage.sent.extend(tables.iter().map(|t| t.id));
            Ok(edits)
        }
        Err(EngineError::Call { message, trap, .. }) => {
            let answered = stage.live.as_ref().map_or(0, |l| l.answered);
            if trap.is_some() {
                // A trapped instance cannot be re-entered.
                stage.live = None;
                stage.sent.clear();
            }
            // An instance that answered calls before and then ran into its memory cap has
            // worn out (an interpreter whose runtime keeps a little of every call): a fresh
            // instance may answer this call.
            if answered > 0 && matches!(trap, Some(Trap::Limit(LimitExceeded::Memory { .. }))) {
                return Err(CallError::Worn { message, answered });
            }
            Err(CallError::Guest(message))
        }
        Err(e) => Err(CallError::Engine(e)),
    }
}

// `from_cell` (for the answer's cells): the value/cell mapping shared with the guest SDK.
sluice_contract::cell_codec!();

/// Approximate bytes of a value sent to, or copied from, a guest.
pub(super) fn value_size(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Text(s)) | Some(Value::Decimal(s)) => s.len() + 16,
        Some(Value::Bytes(b)) => b.len() + 16,
        Some(Value::Json(_)) => 256,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::chain::test_event as event;

    #[test]
    fn batches_are_cut_by_events_and_by_bytes() {
        let events: Vec<ChangeEvent> = (0..10).map(|_| event(10)).collect();
        let all = Arc::new(vec![0, 1]);
        let selected: Vec<Selected> = (0..10).map(|i| (i, all.clone())).collect();
        let (calls, bytes) = chunks(&events, &selected, 4);
        assert_eq!(calls.iter().map(|c| c.len()).collect::<Vec<_>>(), [4, 4, 2]);
        // Per column: the after value, and 16 for the missing before value.
        assert_eq!(bytes, 10 * ((16 + 16) + (26 + 16)));
        // Only the projected columns count: the large body is not sent.
        let big: Vec<ChangeEvent> = (0..3).map(|_| event(CALL_BYTES)).collect();
        let id_only = Arc::new(vec![0]);
        let sel: Vec<Selected> = (0..3).map(|i| (i, id_only.clone())).collect();
        assert_eq!(chunks(&big, &sel, 128).0.len(), 1);
        // With it, each event fills a call.
        let sel: Vec<Selected> = (0..3).map(|i| (i, all.clone())).collect();
        assert_eq!(chunks(&big, &sel, 128).0.len(), 3);
    }
}
