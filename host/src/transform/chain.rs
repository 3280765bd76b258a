//! The transform chain: runs batches of events through the configured transforms, in order.
//!
//! Design note: for each transform the chain keeps one live instance (reused across batches),
//! the table versions already described to it, and its failure policy. A batch is cut into
//! calls of at most [`CALL_EVENTS`] events. Only events of tables the transform declared
//! interest in cross the boundary, carrying only the declared columns; the answer is a list
//! of edits, and an event without edits is kept as it was (never copied back).
//!
//! Failure policies (per transform): `halt` stops the pipeline without advancing the position;
//! `skip` and `dead_letter` find the failing events by re-running the call one event at a time
//! (a fresh instance replaces a trapped one), then drop them (counted) or turn them into
//! dead letters: the original event, routed to the DLQ topic with the error, the transform's
//! name and hash in headers, and passed through the rest of the chain untouched.
//!
//! Under `halt`, a failing call is also re-run one event at a time, on a fresh instance, to
//! name the event that fails (its own position, not the call's first event).
//!
//! Hot reload ([`Chain::swap`]): a new version is on probation for its first
//! [`PROBATION_BATCHES`] batches or [`PROBATION_TIME`], whichever ends later. If it stops the
//! chain in that time (a `halt`), the stage rolls back to the previous version, which re-runs
//! the same batch (nothing of it was published), and keeps it until the file changes again.
//!
//! Output limits: turning a guest's answer into events is host work outside the CPU deadline
//! (bytes copied out of the answer, and an event clone for each extra output of a split), so
//! it is bounded and charged to the transform: at most [`MAX_OUTPUTS_PER_EVENT`] outputs per
//! input event, [`MAX_OPS_PER_CALL`] ops (and cells) per call, and per batch at most
//! [`OUTPUT_BYTES_BASE`] plus [`OUTPUT_BYTES_FACTOR`] times the batch's input bytes
//! materialised (the values the transform sees, plus the whole of each event it splits). A call that breaks a limit fails under the stage's failure policy, before
//! the host materialises anything of it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{wit, EngineError, Live, Module};
use super::reload::Reloaded;
use super::{FailurePolicy, TransformSpec};
use crate::event::{ChangeEvent, Kind, Route, TableMeta, Value};

/// An event chosen for a call: its index in the batch and its column projection.
type Selected = (usize, Arc<Vec<u32>>);

/// Events per guest call.
pub const CALL_EVENTS: usize = 128;

/// Approximate bytes of values per guest call: a call is cut earlier when its events are large.
pub const CALL_BYTES: usize = 1 << 20;

/// Outputs one input event may have (a split into that many events).
pub const MAX_OUTPUTS_PER_EVENT: usize = 1000;

/// Ops, and cells, one call may return.
pub const MAX_OPS_PER_CALL: usize = 1 << 20;

/// Bytes the host materialises for a stage's outputs of one batch, beyond
/// [`OUTPUT_BYTES_FACTOR`] times the batch's input: generous for envelopes and splits of small
/// batches, and far below what a guest could demand (a million copies of a large event).
pub const OUTPUT_BYTES_BASE: usize = 64 << 20;

/// How many times its input a batch's outputs may take, on top of [`OUTPUT_BYTES_BASE`]: a
/// Debezium-style envelope roughly doubles an event, and a split in two copies it.
pub const OUTPUT_BYTES_FACTOR: usize = 4;

/// Batches a swapped-in version must pass (with calls) before the previous one is let go.
pub const PROBATION_BATCHES: u32 = 16;

/// Time a swapped-in version stays on probation, at least.
pub const PROBATION_TIME: Duration = Duration::from_secs(60);

/// A failure that stops the pipeline (policy `halt`, or a transform that cannot even start).
#[derive(Debug, thiserror::Error)]
#[error("transform {name} failed on the event at {position} ({table}): {message}. The position was not advanced; fix the transform or its config (or set on_error = \"skip\" or \"dead_letter\") and restart")]
pub struct HaltError {
    pub name: String,
    pub position: String,
    pub table: String,
    pub message: String,
}

/// Counters of one transform, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub calls: u64,
    pub events_in: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
    pub errors: u64,
}

/// One transform of the chain.
pub struct Stage {
    pub spec: TransformSpec,
    module: Module,
    live: Option<Live>,
    /// Table versions already described to the live instance.
    sent: HashSet<u32>,
    /// Per table id: does the interest match, and the projection.
    plans: HashMap<u32, Option<Arc<Vec<u32>>>>,
    pub stats: Stats,
    /// Generation of the module (bumped by each hot reload).
    pub generation: u64,
    buffers: CallBuffers,
    /// The version a hot reload replaced, while the new one is on probation.
    previous: Option<Previous>,
}

/// A replaced version kept for a rollback, and the new version's probation so far.
struct Previous {
    module: Module,
    live: Option<Live>,
    sent: HashSet<u32>,
    plans: HashMap<u32, Option<Arc<Vec<u32>>>>,
    since: Instant,
    batches: u32,
}

impl Stage {
    pub fn new(spec: TransformSpec, module: Module) -> Result<Stage, EngineError> {
        let live = Live::start(&module, &spec.name, &spec.config, spec.limits)?;
        Ok(Stage {
            spec,
            module,
            live: Some(live),
            sent: HashSet::new(),
            plans: HashMap::new(),
            stats: Stats::default(),
            generation: 1,
            buffers: CallBuffers::default(),
            previous: None,
        })
    }

    pub fn module_hash(&self) -> &str {
        &self.module.hash
    }

    /// Swaps in a new module and its already initialised instance (a hot reload). The
    /// replaced version is kept while the new one is on probation.
    pub fn replace(&mut self, module: Module, live: Live) {
        self.previous = Some(Previous {
            module: std::mem::replace(&mut self.module, module),
            live: self.live.replace(live),
            sent: std::mem::take(&mut self.sent),
            plans: std::mem::take(&mut self.plans),
            since: Instant::now(),
            batches: 0,
        });
        self.generation += 1;
    }

    /// Goes back to the version the last hot reload replaced, if it is still kept. Returns
    /// whether it did.
    fn roll_back(&mut self) -> bool {
        let Some(p) = self.previous.take() else {
            return false;
        };
        self.module = p.module;
        self.live = p.live;
        self.sent = p.sent;
        self.plans = p.plans;
        self.generation += 1;
        true
    }

    /// Counts a batch the new version handled (with at least one call), and ends its probation
    /// when it has passed enough batches and enough time.
    fn passed(&mut self, called: bool) {
        let Some(p) = self.previous.as_mut() else {
            return;
        };
        p.batches += u32::from(called);
        if p.batches >= PROBATION_BATCHES && p.since.elapsed() >= PROBATION_TIME {
            self.previous = None;
            tracing::info!(transform = %self.spec.name, hash = %&self.module.hash[..12], "the new version passed its probation; the previous one is released");
        }
    }

    fn live(&mut self) -> Result<&mut Live, EngineError> {
        if self.live.is_none() {
            // The previous instance trapped: start a fresh one (its state is gone anyway).
            self.live = Some(Live::start(
                &self.module,
                &self.spec.name,
                &self.spec.config,
                self.spec.limits,
            )?);
            self.sent.clear();
        }
        Ok(self.live.as_mut().expect("set above"))
    }

    fn plan(&mut self, id: u32, meta: &TableMeta) -> Option<Arc<Vec<u32>>> {
        if let Some(p) = self.plans.get(&id) {
            return p.clone();
        }
        let interest = &self.live.as_ref().expect("live before planning").interest;
        let table_ok = interest.tables.is_empty()
            || interest.tables.iter().any(|t| match t.split_once('.') {
                Some((s, "*")) => s == meta.schema,
                Some((s, n)) => s == meta.schema && n == meta.table,
                None => *t == meta.table,
            });
        let plan = table_ok.then(|| {
            Arc::new(match &interest.columns {
                None => (0..meta.columns.len() as u32).collect(),
                Some(cols) => (0..meta.columns.len() as u32)
                    .filter(|&i| cols.iter().any(|c| *c == meta.columns[i as usize]))
                    .collect(),
            })
        });
        self.plans.insert(id, plan.clone());
        plan
    }
}

/// Stable small ids for table versions, shared by every stage.
#[derive(Default)]
pub struct TableRegistry {
    last: Option<(Arc<TableMeta>, u32)>,
    ids: HashMap<TableMeta, u32>,
    metas: Vec<Arc<TableMeta>>,
}

impl TableRegistry {
    pub fn id(&mut self, meta: &Arc<TableMeta>) -> u32 {
        if let Some((m, id)) = &self.last {
            if Arc::ptr_eq(m, meta) {
                return *id;
            }
        }
        let id = match self.ids.get(meta.as_ref()) {
            Some(id) => *id,
            None => {
                let id = self.metas.len() as u32;
                self.ids.insert(meta.as_ref().clone(), id);
                self.metas.push(meta.clone());
                id
            }
        };
        self.last = Some((meta.clone(), id));
        id
    }
}

/// The configured chain.
pub struct Chain {
    pub stages: Vec<Stage>,
    registry: TableRegistry,
    call_events: usize,
}

impl Chain {
    pub fn new(stages: Vec<Stage>) -> Self {
        Chain {
            stages,
            registry: TableRegistry::default(),
            call_events: CALL_EVENTS,
        }
    }

    /// Sets the most events per guest call (default [`CALL_EVENTS`]).
    pub fn with_call_events(mut self, n: usize) -> Self {
        self.call_events = n.max(1);
        self
    }

    /// Runs `events` through every stage, in order.
    ///
    /// A stage whose hot-reloaded version is on probation and stops the chain is rolled back
    /// to its previous version, which handles the same events.
    pub fn process(&mut self, mut events: Vec<ChangeEvent>) -> Result<Vec<ChangeEvent>, HaltError> {
        for i in 0..self.stages.len() {
            if events.is_empty() {
                break;
            }
            let ids: Vec<u32> = events.iter().map(|e| self.registry.id(&e.meta)).collect();
            let stage = &mut self.stages[i];
            if stage.previous.is_none() {
                events = run_stage(stage, events, &ids, self.call_events)?;
                continue;
            }
            // On probation: keep the input for a re-run with the previous version.
            let input = events.clone();
            let calls = stage.stats.calls;
            match run_stage(stage, events, &ids, self.call_events) {
                Ok(out) => {
                    stage.passed(stage.stats.calls > calls);
                    events = out;
                }
                Err(e) => {
                    let failed = stage.module.hash[..12].to_owned();
                    stage.roll_back();
                    tracing::error!(transform = %stage.spec.name, failed = %failed, kept = %&stage.module.hash[..12], generation = stage.generation, error = %e, "rolled back: the new version stopped the chain on its first batches; the previous version handles this batch and keeps running until the file changes again");
                    events = run_stage(stage, input, &ids, self.call_events)?;
                }
            }
        }
        Ok(events)
    }

    /// Swaps in a hot-reloaded version between two batches. It is on probation: if it stops
    /// the chain in its first batches, [`Chain::process`] rolls back to the version it replaced.
    pub fn swap(&mut self, new: Reloaded) {
        let Some(stage) = self.stages.get_mut(new.stage) else {
            tracing::error!(
                stage = new.stage,
                "a reloaded version for a stage the chain does not have; ignored"
            );
            return;
        };
        let old = stage.module.hash[..12].to_owned();
        stage.replace(new.module, new.live);
        tracing::info!(transform = %stage.spec.name, from = %old, to = %&stage.module.hash[..12], generation = stage.generation, "swapped in the new version at a batch boundary");
    }
}

fn run_stage(
    stage: &mut Stage,
    events: Vec<ChangeEvent>,
    ids: &[u32],
    call_events: usize,
) -> Result<Vec<ChangeEvent>, HaltError> {
    // Which events the transform sees (dead letters from earlier stages pass untouched).
    if stage.live.is_none() {
        if let Err(e) = stage.live() {
            return Err(halt(stage, &events[0], e.to_string()));
        }
    }
    let mut selected = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        if ev.route.as_ref().is_some_and(|r| r.dead_letter) {
            continue;
        }
        if let Some(plan) = stage.plan(ids[i], &ev.meta) {
            selected.push((i, plan));
        }
    }
    if selected.is_empty() {
        return Ok(events);
    }
    // What becomes of each event; edits are applied at the end, in place, without copies.
    let mut fates: Vec<Fate> = (0..events.len()).map(|_| Fate::Keep).collect();
    let (chunks, input_bytes) = chunks(&events, &selected, call_events);
    let mut budget = Budget {
        left: OUTPUT_BYTES_BASE.saturating_add(OUTPUT_BYTES_FACTOR.saturating_mul(input_bytes)),
        input_bytes,
    };
    for chunk in chunks {
        match call(stage, &events, ids, chunk)
            .and_then(|edits| collect(&events, chunk, edits, &mut budget))
        {
            Ok(found) => {
                for (i, ops) in found {
                    fates[i].push(ops);
                }
            }
            Err(e) => {
                stage.stats.errors += 1;
                if stage.spec.on_error == FailurePolicy::Halt {
                    let (at, message) = locate(stage, &events, ids, chunk, e, &budget);
                    return Err(halt(stage, &events[at], message));
                }
                // Find the failing events one by one.
                for one in chunk.chunks(1) {
                    let (i, _) = one[0];
                    match call(stage, &events, ids, one)
                        .and_then(|edits| collect(&events, one, edits, &mut budget))
                    {
                        Ok(found) => {
                            for (_, ops) in found {
                                fates[i].push(ops);
                            }
                        }
                        Err(message) => {
                            fates[i] = Fate::Replaced(fail_one(stage, &events[i], &message))
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(events.len());
    for (ev, fate) in events.into_iter().zip(fates) {
        match fate {
            Fate::Keep => out.push(ev),
            Fate::Replaced(list) => out.extend(list),
            Fate::Edited(mut outputs) => {
                // Every output but the last works on a copy; the last takes the event itself.
                let last = outputs.pop().expect("an edited event has an edit");
                for ops in outputs {
                    out.extend(apply(ev.clone(), ops));
                }
                out.extend(apply(ev, last));
            }
        }
    }
    Ok(out)
}

/// What becomes of one event in a stage.
enum Fate {
    /// No edit: published as it is.
    Keep,
    /// One output per edit (a split when several).
    Edited(Vec<Vec<Op>>),
    /// Replaced by the failure policy (nothing, or a dead letter).
    Replaced(Vec<ChangeEvent>),
}

impl Fate {
    fn push(&mut self, ops: Vec<Op>) {
        match self {
            Fate::Edited(list) => list.push(ops),
            _ => *self = Fate::Edited(vec![ops]),
        }
    }
}

/// A guest's edit op, checked and converted to host values.
enum Op {
    Drop,
    SetAfter(usize, Value),
    SetBefore(usize, Value),
    Rename(usize, String),
    Remove(usize),
    Topic(String),
    Key(Vec<u8>),
    Header(String, Vec<u8>),
    Payload(Vec<u8>),
}

/// Cuts the selected events into calls of at most `max` events and about [`CALL_BYTES`].
/// Also returns the approximate bytes of all the values sent.
fn chunks<'a>(
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

/// What is left of a stage's output allowance for one batch.
struct Budget {
    left: usize,
    input_bytes: usize,
}

/// Approximate bytes of a copy of an event (its values and routing).
fn event_size(ev: &ChangeEvent) -> usize {
    let values: usize = ev
        .after
        .iter()
        .chain(&ev.before)
        .map(|v| value_size(Some(v)))
        .sum();
    let route = ev.route.as_ref().map_or(0, |r| {
        r.key.as_ref().map_or(0, Vec::len)
            + r.payload.as_ref().map_or(0, Vec::len)
            + r.topic.as_ref().map_or(0, String::len)
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum::<usize>()
    });
    128 + values + route
}

fn value_size(v: Option<&Value>) -> usize {
    match v {
        Some(Value::String(s)) | Some(Value::Decimal(s)) => s.len() + 16,
        Some(Value::Bytes(b)) => b.len() + 16,
        Some(Value::Json(_)) => 256,
        _ => 16,
    }
}

fn halt(stage: &Stage, ev: &ChangeEvent, message: String) -> HaltError {
    HaltError {
        name: stage.spec.name.clone(),
        position: ev.position.to_string(),
        table: ev.meta.qualified_name(),
        message,
    }
}

/// Finds the event a failed call (under `halt`) failed on: re-runs the call one event at a time
/// on a fresh instance and returns the first event that fails alone, with its error. If none
/// does (a transform whose failure depends on earlier events), the call's first event and its
/// error. The instance is dropped afterwards: it has seen part of a batch that is not published.
fn locate(
    stage: &mut Stage,
    events: &[ChangeEvent],
    ids: &[u32],
    chunk: &[Selected],
    error: String,
    budget: &Budget,
) -> (usize, String) {
    let fresh = |stage: &mut Stage| {
        stage.live = None;
        stage.sent.clear();
    };
    fresh(stage);
    let mut budget = Budget {
        left: budget.left,
        input_bytes: budget.input_bytes,
    };
    let mut found = None;
    for one in chunk.chunks(1) {
        if let Err(m) =
            call(stage, events, ids, one).and_then(|edits| collect(events, one, edits, &mut budget))
        {
            found = Some((one[0].0, m));
            break;
        }
    }
    fresh(stage);
    found.unwrap_or_else(|| {
        (
            chunk[0].0,
            format!(
                "{error} (in a call of {} events from this one; no event fails alone)",
                chunk.len()
            ),
        )
    })
}

/// Applies the failure policy to one event that the transform could not handle.
fn fail_one(stage: &mut Stage, ev: &ChangeEvent, message: &str) -> Vec<ChangeEvent> {
    match stage.spec.on_error {
        FailurePolicy::Skip | FailurePolicy::Halt => {
            stage.stats.skipped += 1;
            tracing::warn!(transform = %stage.spec.name, position = %ev.position, table = %ev.meta.qualified_name(), error = %message, "skipped an event the transform failed on");
            Vec::new()
        }
        FailurePolicy::DeadLetter => {
            stage.stats.dead_lettered += 1;
            tracing::warn!(transform = %stage.spec.name, position = %ev.position, error = %message, "sent an event to the dead-letter topic");
            let mut dl = ev.clone();
            let mut headers = vec![
                ("sluice.error".to_owned(), message.as_bytes().to_vec()),
                (
                    "sluice.transform".to_owned(),
                    stage.spec.name.as_bytes().to_vec(),
                ),
                (
                    "sluice.transform.hash".to_owned(),
                    stage.module.hash.as_bytes().to_vec(),
                ),
            ];
            if let Some(r) = &ev.route {
                headers.extend(r.headers.iter().cloned());
            }
            dl.route = Some(Box::new(Route {
                topic: stage.spec.dead_letter_topic.clone(),
                key: None,
                headers,
                payload: None,
                dead_letter: true,
            }));
            vec![dl]
        }
    }
}

/// Reusable buffers for building calls: a batch's views, cells and bytes.
#[derive(Default)]
pub struct CallBuffers {
    views: Vec<wit::EventView>,
    cells: Vec<wit::Cell>,
    data: Vec<u8>,
}

/// One guest call for `chunk` (indexes into `events`), with the tables it has not seen yet.
fn call(
    stage: &mut Stage,
    events: &[ChangeEvent],
    ids: &[u32],
    chunk: &[Selected],
) -> Result<wit::Edits, String> {
    let mut tables = Vec::new();
    let mut bufs = std::mem::take(&mut stage.buffers);
    bufs.views.clear();
    bufs.cells.clear();
    bufs.data.clear();
    for (i, plan) in chunk {
        let ev = &events[*i];
        let id = ids[*i];
        if !stage.sent.contains(&id) && !tables.iter().any(|t: &wit::TableInfo| t.id == id) {
            tables.push(wit::TableInfo {
                id,
                schema: ev.meta.schema.clone(),
                table: ev.meta.table.clone(),
                columns: ev.meta.columns.clone(),
                primary_key: ev.meta.primary_key.iter().map(|&k| k as u32).collect(),
                projection: plan.as_ref().clone(),
            });
        }
        let project = |image: &[Value], bufs: &mut CallBuffers| -> (u32, u32) {
            let start = bufs.cells.len() as u32;
            if !image.is_empty() {
                for &c in plan.iter() {
                    let cell = to_cell(
                        image.get(c as usize).unwrap_or(&Value::Null),
                        &mut bufs.data,
                    );
                    bufs.cells.push(cell);
                }
            }
            (start, bufs.cells.len() as u32 - start)
        };
        let (after_start, after_len) = project(&ev.after, &mut bufs);
        let (before_start, before_len) = project(&ev.before, &mut bufs);
        bufs.views.push(wit::EventView {
            kind: match ev.kind {
                Kind::SnapshotInsert => wit::Kind::SnapshotInsert,
                Kind::Insert => wit::Kind::Insert,
                Kind::Update => wit::Kind::Update,
                Kind::Delete => wit::Kind::Delete,
                Kind::Truncate => wit::Kind::Truncate,
            },
            table: id,
            position: wit::Position {
                pos: ev.position.pos,
                row: ev.position.row,
            },
            after_start,
            after_len,
            before_start,
            before_len,
        });
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
        Err(EngineError::Call {
            message, trapped, ..
        }) => {
            if trapped {
                // A trapped instance cannot be re-entered.
                stage.live = None;
                stage.sent.clear();
            }
            Err(message)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Checks a call's edits and converts them: (index into `events`, ops) in the guest's order.
///
/// Charges what it materialises to `budget` (only when the whole call is accepted) and enforces
/// the output limits before copying anything large.
fn collect(
    events: &[ChangeEvent],
    chunk: &[Selected],
    edits: wit::Edits,
    budget: &mut Budget,
) -> Result<Vec<(usize, Vec<Op>)>, String> {
    let wit::Edits {
        outputs,
        ops,
        cells,
        data,
    } = edits;
    if ops.len() > MAX_OPS_PER_CALL || cells.len() > MAX_OPS_PER_CALL {
        return Err(format!(
            "returned {} ops and {} cells in one call, over the limit of {MAX_OPS_PER_CALL} each",
            ops.len(),
            cells.len()
        ));
    }
    // Outputs per input event, and the bytes this call materialises.
    let n_outputs = outputs.len();
    let mut per_event = vec![0u32; chunk.len()];
    let (mut used, mut allowance) = (0usize, budget.left);
    let over_budget = |used: usize, budget: &Budget| {
        format!(
            "its outputs would take more than {} MiB for a batch of {} KiB input, over the limit of {} MiB plus {OUTPUT_BYTES_FACTOR} times the input per batch",
            used >> 20,
            budget.input_bytes >> 10,
            OUTPUT_BYTES_BASE >> 20
        )
    };
    let span = |s: wit::Span| span_bytes(&data, &s);
    let text = |s: wit::Span| span_text(&data, &s);
    let cell = |c: u32| -> Result<Value, String> {
        let c = cells
            .get(c as usize)
            .ok_or_else(|| format!("returned cell {c} of {}", cells.len()))?;
        from_cell(c, &data)
    };
    let mut out = Vec::with_capacity(outputs.len());
    for o in outputs {
        let k = o.event as usize;
        let Some((i, _)) = chunk.get(k) else {
            return Err(format!(
                "returned an edit for event {k} of a batch of {}",
                chunk.len()
            ));
        };
        per_event[k] += 1;
        if per_event[k] as usize > MAX_OUTPUTS_PER_EVENT {
            return Err(format!(
                "returned more than {MAX_OUTPUTS_PER_EVENT} outputs for one event ({n_outputs} in all in this call), over the limit of {MAX_OUTPUTS_PER_EVENT} outputs per input event"
            ));
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
        let meta = &events[*i].meta;
        let n = meta.columns.len();
        let col = |c: u32| -> Result<usize, String> {
            let c = c as usize;
            if c < n {
                Ok(c)
            } else {
                Err(format!(
                    "edited column {c} of {} which has {n} columns",
                    meta.qualified_name()
                ))
            }
        };
        let range = ops
            .get(o.ops_start as usize..o.ops_start as usize + o.ops_len as usize)
            .ok_or_else(|| {
                format!(
                    "returned ops {}+{} of {}",
                    o.ops_start,
                    o.ops_len,
                    ops.len()
                )
            })?;
        let mut list = Vec::with_capacity(range.len());
        for op in range {
            used = used.saturating_add(op_bytes(op, &cells));
            if used > allowance {
                return Err(over_budget(used, budget));
            }
            list.push(match *op {
                wit::Op::Drop => Op::Drop,
                wit::Op::SetAfter((c, v)) => Op::SetAfter(col(c)?, cell(v)?),
                wit::Op::SetBefore((c, v)) => Op::SetBefore(col(c)?, cell(v)?),
                wit::Op::RenameColumn((c, name)) => Op::Rename(col(c)?, text(name)?),
                wit::Op::DropColumn(c) => Op::Remove(col(c)?),
                wit::Op::SetTopic(t) => Op::Topic(text(t)?),
                wit::Op::SetKey(k) => Op::Key(span(k)?.to_vec()),
                wit::Op::AddHeader((k, v)) => Op::Header(text(k)?, span(v)?.to_vec()),
                wit::Op::SetPayload(p) => Op::Payload(span(p)?.to_vec()),
            });
        }
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
        wit::Op::RenameColumn((_, s))
        | wit::Op::SetTopic(s)
        | wit::Op::SetKey(s)
        | wit::Op::SetPayload(s) => s.len as usize,
        wit::Op::AddHeader((k, v)) => k.len as usize + v.len as usize,
    }
}

/// Applies one edit's (checked) ops to an event. `None` when the edit drops it.
fn apply(mut out: ChangeEvent, ops: Vec<Op>) -> Option<ChangeEvent> {
    if ops.iter().any(|op| matches!(op, Op::Drop)) {
        return None;
    }
    let n = out.meta.columns.len();
    let mut renamed: Option<Vec<String>> = None;
    let mut removed: Option<Vec<bool>> = None;
    for op in ops {
        match op {
            Op::Drop => return None,
            Op::SetAfter(i, v) => {
                if let Some(x) = out.after.get_mut(i) {
                    *x = v;
                }
            }
            Op::SetBefore(i, v) => {
                if let Some(x) = out.before.get_mut(i) {
                    *x = v;
                }
            }
            Op::Rename(i, name) => {
                renamed.get_or_insert_with(|| out.meta.columns.clone())[i] = name
            }
            Op::Remove(i) => removed.get_or_insert_with(|| vec![false; n])[i] = true,
            Op::Topic(t) => out.route_mut().topic = Some(t),
            Op::Key(k) => out.route_mut().key = Some(k),
            Op::Header(k, v) => out.route_mut().headers.push((k, v)),
            Op::Payload(p) => out.route_mut().payload = Some(p),
        }
    }
    if renamed.is_some() || removed.is_some() {
        let mut columns = renamed.unwrap_or_else(|| out.meta.columns.clone());
        let mut primary_key = out.meta.primary_key.clone();
        if let Some(removed) = removed {
            let keep = |v: &mut Vec<Value>| {
                if !v.is_empty() {
                    let mut i = 0;
                    v.retain(|_| {
                        i += 1;
                        !removed[i - 1]
                    });
                }
            };
            keep(&mut out.after);
            keep(&mut out.before);
            let mut i = 0;
            columns.retain(|_| {
                i += 1;
                !removed[i - 1]
            });
            // Re-index the key; a removed key column leaves the key.
            let new_index = |old: usize| {
                (!removed[old]).then(|| removed[..old].iter().filter(|r| !**r).count())
            };
            primary_key = primary_key.into_iter().filter_map(new_index).collect();
        }
        out.meta = Arc::new(TableMeta {
            schema: out.meta.schema.clone(),
            table: out.meta.table.clone(),
            columns,
            primary_key,
        });
    }
    Some(out)
}

/// A host value as a cell; text and bytes are appended to `data`.
pub fn to_cell(v: &Value, data: &mut Vec<u8>) -> wit::Cell {
    let mut span = |b: &[u8]| {
        let start = data.len() as u32;
        data.extend_from_slice(b);
        wit::Span {
            start,
            len: b.len() as u32,
        }
    };
    match v {
        Value::Null => wit::Cell::Null,
        Value::Int(x) => wit::Cell::Int(*x),
        Value::UInt(x) => wit::Cell::Uint(*x),
        Value::Float(x) => wit::Cell::Float(*x),
        Value::Double(x) => wit::Cell::Double(*x),
        Value::Decimal(s) => wit::Cell::Decimal(span(s.as_bytes())),
        Value::String(s) => wit::Cell::Text(span(s.as_bytes())),
        Value::Bytes(b) => wit::Cell::Bytes(span(b)),
        Value::Date { year, month, day } => wit::Cell::Date(wit::Date {
            year: *year,
            month: *month,
            day: *day,
        }),
        &Value::DateTime {
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
        &Value::Timestamp { secs, micros, fsp } => {
            wit::Cell::Timestamp(wit::Timestamp { secs, micros, fsp })
        }
        &Value::Time {
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
        Value::Json(j) => wit::Cell::Json(span(j.to_string().as_bytes())),
    }
}

/// The bytes a guest's span points at in its answer's `data`.
fn span_bytes<'a>(data: &'a [u8], s: &wit::Span) -> Result<&'a [u8], String> {
    data.get(s.start as usize..s.start as usize + s.len as usize)
        .ok_or_else(|| {
            format!(
                "returned a span {}+{} beyond its {} bytes",
                s.start,
                s.len,
                data.len()
            )
        })
}

/// The UTF-8 text a guest's span points at.
fn span_text(data: &[u8], s: &wit::Span) -> Result<String, String> {
    String::from_utf8(span_bytes(data, s)?.to_vec())
        .map_err(|_| "returned text that is not UTF-8".to_owned())
}

/// A cell from a guest as a host value. Invalid text or JSON is the guest's error.
pub fn from_cell(c: &wit::Cell, data: &[u8]) -> Result<Value, String> {
    let bytes = |s: &wit::Span| span_bytes(data, s);
    let text = |s: &wit::Span| span_text(data, s);
    Ok(match c {
        wit::Cell::Null => Value::Null,
        wit::Cell::Int(x) => Value::Int(*x),
        wit::Cell::Uint(x) => Value::UInt(*x),
        wit::Cell::Float(x) => Value::Float(*x),
        wit::Cell::Double(x) => Value::Double(*x),
        wit::Cell::Decimal(s) => Value::Decimal(text(s)?),
        wit::Cell::Text(s) => Value::String(text(s)?),
        wit::Cell::Bytes(s) => Value::Bytes(bytes(s)?.to_vec()),
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
        wit::Cell::Json(s) => Value::Json(
            serde_json::from_slice(bytes(s)?)
                .map_err(|e| format!("set a JSON value that is not JSON: {e}"))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourcePosition;

    fn event(text_bytes: usize) -> ChangeEvent {
        ChangeEvent {
            kind: Kind::Insert,
            meta: Arc::new(TableMeta {
                schema: "s".into(),
                table: "t".into(),
                columns: vec!["id".into(), "body".into()],
                primary_key: vec![0],
            }),
            after: vec![Value::Int(1), Value::String("x".repeat(text_bytes))],
            before: Vec::new(),
            position: SourcePosition {
                file: Arc::from("f"),
                pos: 4,
                row: 0,
                gtid: None,
            },
            timestamp: 0,
            route: None,
        }
    }

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
    fn refused(r: Result<Vec<(usize, Vec<Op>)>, String>) -> String {
        match r {
            Ok(found) => panic!("accepted {} outputs", found.len()),
            Err(e) => e,
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
}
