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
//! Before any policy: an instance that reaches its memory cap after answering calls has worn
//! out rather than failed (componentize-py and componentize-js keep a little memory from each
//! call), so the call is tried once more on a fresh instance ([`CallError::Worn`]), with a
//! warning; only a failure there goes to the policy.
//!
//! Hot reload ([`Chain::swap`]): a new version is on probation for its first
//! [`PROBATION_BATCHES`](stage::PROBATION_BATCHES) batches or [`PROBATION_TIME`](stage::PROBATION_TIME), whichever ends later. If it stops the
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

mod call;
mod edits;
mod policy;
mod stage;

use std::collections::HashMap;
use std::sync::Arc;

use sluice_contract::EditError;

use super::engine::EngineError;
use super::engine::TransformEngine;
use super::reload::Reloaded;
use super::spec::{FailurePolicy, TransformSpec};
use crate::event::{ChangeEvent, TableMeta};
use call::{call, chunks, Selected};
use edits::{apply, collect, Budget, Ops};
use policy::{fail_one, halt, locate};

use call::CALL_EVENTS;
use edits::{MAX_OPS_PER_CALL, MAX_OUTPUTS_PER_EVENT, OUTPUT_BYTES_BASE, OUTPUT_BYTES_FACTOR};
pub use policy::HaltError;
pub(crate) use stage::Stage;

/// Why one guest call failed. The stage's failure policy decides what follows.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The guest returned an error or trapped: its message (a panic's message first).
    #[error("{0}")]
    Guest(String),
    /// The instance reached its memory cap after answering `answered` calls: it may have worn
    /// out rather than failed on this call, so the call is tried once on a fresh instance.
    #[error("{message}")]
    Worn { message: String, answered: u64 },
    /// The instance could not be started, or the engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The answer breaks an output limit or is malformed.
    #[error(transparent)]
    Answer(#[from] AnswerError),
}

/// A guest's answer that the host refuses, before it materialises anything of it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AnswerError {
    #[error("returned {ops} ops and {cells} cells in one call, over the limit of {MAX_OPS_PER_CALL} each")]
    TooManyOps { ops: usize, cells: usize },
    #[error("returned an edit for event {event} of a batch of {events}")]
    NoSuchEvent { event: usize, events: usize },
    #[error("returned more than {MAX_OUTPUTS_PER_EVENT} outputs for one event ({total} in all in this call), over the limit of {MAX_OUTPUTS_PER_EVENT} outputs per input event")]
    TooManyOutputs { total: usize },
    #[error("its outputs would take more than {used_mib} MiB for a batch of {input_kib} KiB input, over the limit of {base_mib} MiB plus {OUTPUT_BYTES_FACTOR} times the input per batch", base_mib = OUTPUT_BYTES_BASE >> 20)]
    OverBudget { used_mib: usize, input_kib: usize },
    #[error("returned ops {start}+{len} of {total}")]
    NoSuchOps { start: u32, len: u32, total: usize },
    /// A span beyond the answer's bytes, text that is not UTF-8, JSON that is not JSON.
    #[error("returned {0}")]
    Malformed(String),
    /// Edits that break the contract's rules (`sluice_contract::edit::check`).
    #[error("{table}: {error}")]
    Edit { table: String, error: EditError },
}

/// Counters of one transform, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub calls: u64,
    pub events_in: u64,
    /// Events the transform dropped (no output).
    pub dropped: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
    pub errors: u64,
    /// Instances replaced after they wore out (reached the memory cap after serving calls),
    /// whose call then succeeded on a fresh one or failed as usual.
    pub renewed: u64,
    /// Time spent in this stage, guest calls and host work, in nanoseconds.
    pub busy_ns: u64,
}

/// Stable small ids for table versions, shared by every stage.
#[derive(Default)]
pub(crate) struct TableRegistry {
    last: Option<(Arc<TableMeta>, u32)>,
    ids: HashMap<TableMeta, u32>,
    metas: Vec<Arc<TableMeta>>,
}

impl TableRegistry {
    pub(crate) fn id(&mut self, meta: &Arc<TableMeta>) -> u32 {
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
    stages: Vec<Stage>,
    registry: TableRegistry,
    call_events: usize,
}

impl Chain {
    pub(crate) fn new(stages: Vec<Stage>) -> Self {
        Chain {
            stages,
            registry: TableRegistry::default(),
            call_events: CALL_EVENTS,
        }
    }

    /// Sets the most events per guest call (default `CALL_EVENTS`).
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
            let started = std::time::Instant::now();
            if !stage.on_probation() {
                let out = run_stage(stage, events, &ids, self.call_events);
                stage.stats.busy_ns += started.elapsed().as_nanos() as u64;
                events = out?;
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
            stage.stats.busy_ns += started.elapsed().as_nanos() as u64;
        }
        Ok(events)
    }

    /// Each transform's name and counters, in chain order.
    pub fn stats(&self) -> impl Iterator<Item = (&str, Stats)> {
        self.stages.iter().map(|s| (s.spec.name.as_str(), s.stats))
    }

    /// Each transform's version in this chain: 1 when built, plus one per hot reload swapped
    /// in or rolled back.
    pub(crate) fn generations(&self) -> impl Iterator<Item = (&str, u64)> {
        self.stages
            .iter()
            .map(|s| (s.spec.name.as_str(), s.generation))
    }

    /// Swaps in a hot-reloaded version between two batches. It is on probation: if it stops
    /// the chain in its first batches, [`Chain::process`] rolls back to the version it replaced.
    pub(crate) fn swap(&mut self, new: Reloaded) {
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
    let mut selected = Vec::with_capacity(events.len());
    // Consecutive events are usually of one table: plan once per run of them.
    let mut last: Option<(u32, Option<Arc<Vec<u32>>>)> = None;
    for (i, ev) in events.iter().enumerate() {
        if ev.route.as_ref().is_some_and(|r| r.dead_letter) {
            continue;
        }
        let plan = match &last {
            Some((id, plan)) if *id == ids[i] => plan.clone(),
            _ => {
                let plan = stage.plan(ids[i], &ev.meta);
                last = Some((ids[i], plan.clone()));
                plan
            }
        };
        if let Some(plan) = plan {
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
        let mut result = attempt(stage, &events, ids, chunk, &mut budget);
        if let Err(CallError::Worn { message, answered }) = &result {
            // State kept on the instance starts again with the new one, as after any trap.
            tracing::warn!(transform = %stage.spec.name, answered, error = %message, "the transform's instance reached its memory cap after {answered} calls; retrying the call on a fresh instance (if this repeats, raise memory_mb)");
            stage.stats.renewed += 1;
            result = attempt(stage, &events, ids, chunk, &mut budget);
        }
        match result {
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
                    match attempt(stage, &events, ids, one, &mut budget) {
                        Ok(found) => {
                            for (_, ops) in found {
                                fates[i].push(ops);
                            }
                        }
                        Err(e) => {
                            fates[i] = Fate::Replaced(fail_one(stage, &events[i], &e.to_string()))
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
            Fate::Edited(mut first, mut more) => {
                let before = out.len();
                // Every output but the last works on a copy; the last takes the event itself.
                match more.pop() {
                    None => out.extend(apply(ev, first.as_mut_slice())),
                    Some(mut last) => {
                        out.extend(apply(ev.clone(), first.as_mut_slice()));
                        for mut ops in more {
                            out.extend(apply(ev.clone(), ops.as_mut_slice()));
                        }
                        out.extend(apply(ev, last.as_mut_slice()));
                    }
                }
                if out.len() == before {
                    stage.stats.dropped += 1;
                }
            }
        }
    }
    Ok(out)
}

/// One guest call for `chunk` and its checked answer: (index into `events`, ops), in order.
fn attempt(
    stage: &mut Stage,
    events: &[ChangeEvent],
    ids: &[u32],
    chunk: &[Selected],
    budget: &mut Budget,
) -> Result<Vec<(usize, Ops)>, CallError> {
    let edits = call(stage, events, ids, chunk)?;
    Ok(collect(events, chunk, edits, budget)?)
}

/// What becomes of one event in a stage.
enum Fate {
    /// No edit: published as it is.
    Keep,
    /// One output per edit (a split when several): the first inline, the others in the `Vec`,
    /// which allocates only for a split.
    Edited(Ops, Vec<Ops>),
    /// Replaced by the failure policy (nothing, or a dead letter).
    Replaced(Vec<ChangeEvent>),
}

impl Fate {
    fn push(&mut self, ops: Ops) {
        match self {
            Fate::Edited(_, more) => more.push(ops),
            _ => *self = Fate::Edited(ops, Vec::new()),
        }
    }
}

/// Loads every transform and starts its instance.
///
/// A transform that loaded and initialised earlier in this process (a pipeline restart, or a
/// hot reload) keeps its last validated version when the file on disk no longer loads or
/// initialises: the restart goes on with the version that was running, with a warning. A
/// first start with an invalid file fails.
pub fn build_chain(
    engine: &TransformEngine,
    specs: &[TransformSpec],
) -> Result<Chain, EngineError> {
    let mut stages = Vec::with_capacity(specs.len());
    for spec in specs {
        let fresh = engine
            .load(&spec.path)
            .and_then(|module| Ok((Stage::new(spec.clone(), module.clone())?, module)));
        let stage = match fresh {
            Ok((stage, module)) => {
                tracing::info!(transform = %spec.name, path = %spec.path.display(), hash = %&module.hash[..12], "loaded transform");
                engine.remember(&spec.path, &module);
                stage
            }
            Err(e) => {
                let Some(module) = engine.last_validated(&spec.path) else {
                    return Err(e);
                };
                tracing::warn!(transform = %spec.name, path = %spec.path.display(), error = %e, hash = %&module.hash[..12], "the file on disk does not load; keeping the version that was running. Fix or replace the file");
                Stage::new(spec.clone(), module)?
            }
        };
        stages.push(stage);
    }
    Ok(Chain::new(stages))
}

/// An insert into `s.t (id, body)` at `f:4#0` whose body has `text_bytes` bytes, for the
/// chain's unit tests.
#[cfg(test)]
fn test_event(text_bytes: usize) -> ChangeEvent {
    use crate::event::{Kind, SourcePosition, Value};
    ChangeEvent {
        kind: Kind::Insert,
        meta: Arc::new(TableMeta {
            schema: "s".into(),
            table: "t".into(),
            columns: vec!["id".into(), "body".into()],
            primary_key: vec![0],
        }),
        after: vec![Value::Int(1), Value::Text("x".repeat(text_bytes))],
        before: Vec::new(),
        position: SourcePosition {
            file: Arc::from("f"),
            pos: 4,
            row: 0,
            gtid: None,
            snapshot: false,
            cursor: None,
            held: None,
        },
        timestamp: 0,
        route: None,
    }
}
