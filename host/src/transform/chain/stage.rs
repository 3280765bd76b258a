//! One transform of the chain: its module and live instance, the projection plan per table
//! version, and the probation of a hot-reloaded version (with the version it replaced, for a
//! rollback).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::call::CallBuffers;
use super::Stats;
use crate::event::TableMeta;
use crate::transform::engine::{EngineError, Live, Module};
use crate::transform::spec::TransformSpec;

/// Batches a swapped-in version must pass (with calls) before the previous one is let go.
pub(crate) const PROBATION_BATCHES: u32 = 16;

/// Time a swapped-in version stays on probation, at least.
pub(crate) const PROBATION_TIME: Duration = Duration::from_secs(60);

/// One transform of the chain.
pub(crate) struct Stage {
    pub(super) spec: TransformSpec,
    pub(super) module: Module,
    pub(super) live: Option<Live>,
    /// Table versions already described to the live instance.
    pub(super) sent: HashSet<u32>,
    /// Per table id: does the interest match, and the projection.
    pub(super) plans: HashMap<u32, Option<Arc<Vec<u32>>>>,
    pub(super) stats: Stats,
    /// Generation of the module (bumped by each hot reload).
    pub(super) generation: u64,
    pub(super) buffers: CallBuffers,
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
    pub(crate) fn new(spec: TransformSpec, module: Module) -> Result<Stage, EngineError> {
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

    /// Swaps in a new module and its already initialised instance (a hot reload). The
    /// replaced version is kept while the new one is on probation.
    pub(crate) fn replace(&mut self, module: Module, live: Live) {
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

    /// Whether a hot-reloaded version is on probation (a rollback is possible).
    pub(super) fn on_probation(&self) -> bool {
        self.previous.is_some()
    }

    /// Goes back to the version the last hot reload replaced, if it is still kept. Returns
    /// whether it did.
    pub(super) fn roll_back(&mut self) -> bool {
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
    pub(super) fn passed(&mut self, called: bool) {
        let Some(p) = self.previous.as_mut() else {
            return;
        };
        p.batches += u32::from(called);
        if p.batches >= PROBATION_BATCHES && p.since.elapsed() >= PROBATION_TIME {
            self.previous = None;
            tracing::info!(transform = %self.spec.name, hash = %&self.module.hash[..12], "the new version passed its probation; the previous one is released");
        }
    }

    pub(super) fn live(&mut self) -> Result<&mut Live, EngineError> {
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

    pub(super) fn plan(&mut self, id: u32, meta: &TableMeta) -> Option<Arc<Vec<u32>>> {
        if let Some(p) = self.plans.get(&id) {
            return p.clone();
        }
        let interest = &self.live.as_ref().expect("live before planning").interest;
        let plan = interest
            .plan(&meta.schema, &meta.table, &meta.columns)
            .map(Arc::new);
        self.plans.insert(id, plan.clone());
        plan
    }
}
