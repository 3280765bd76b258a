//! One life of the stages: spawning their tasks, joined by bounded channels, and joining them.
//!
//! Design note: normally the source ends first (on stop or error); its channel closing drains
//! the next stage, and so on down to the checkpointer, which saves last. When a stage after the
//! source fails, the stages before it are stopped at once: an idle source would not notice
//! otherwise. When a stop has waited `shutdown_timeout_ms` for the stages to drain (Kafka is
//! down), every stage is stopped and the checkpointer saves what was acknowledged. Every
//! stage's result is collected, and the root cause (the stage furthest downstream that failed)
//! is reported first.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};

use super::budget::Budget;
use super::stages::{self, Acked, Flight, Stores};
use super::start::Start;
use super::transforms::LoadedChain;
use super::{stopped, PipelineError};
use crate::config::Config;
use crate::event::Batch;
use crate::sink::Sink;
use crate::source::binlog;
use crate::source::snapshot::drive;
use crate::telemetry::{health, Phase};

/// The source task: the snapshot first when `start` asks for one, then the binlog stream.
async fn source(
    cfg: Config,
    start: Start,
    limits: binlog::BatchLimits,
    tx: mpsc::Sender<Batch>,
    stop: watch::Receiver<bool>,
    budget: Budget,
) -> Result<(), PipelineError> {
    let from = match start {
        Start::Stream(p) => p,
        Start::Snapshot(begin) => {
            health::set(Phase::Snapshotting, None);
            let ctx = drive::Context {
                cfg: &cfg,
                limits,
                tx: tx.clone(),
                stop: stop.clone(),
            };
            match drive::run(&ctx, begin).await? {
                Some(point) => {
                    budget.grow(cfg.pipeline.max_inflight_bytes);
                    point
                }
                None => return Ok(()),
            }
        }
    };
    let filter = cfg.table_filter();
    binlog::stream(&cfg.mysql, filter, from, None, limits, tx, stop).await?;
    Ok(())
}

/// The running tasks of one life of the stages.
pub(super) struct Stages {
    source: JoinHandle<Result<(), PipelineError>>,
    forwarder: JoinHandle<()>,
    /// None without transforms: the sink reads the forwarder's channel.
    transform: Option<JoinHandle<Result<(), PipelineError>>>,
    sink: JoinHandle<Result<(), PipelineError>>,
    checkpointer: JoinHandle<Result<(), PipelineError>>,
    /// Set once a stop has waited `grace` for the stages to drain.
    give_up: watch::Sender<bool>,
    grace: Duration,
    shutdown: watch::Receiver<bool>,
}

/// What the stages had returned when the checkpointer ended.
struct Ended {
    source: Option<Result<(), PipelineError>>,
    sink: Option<Result<(), PipelineError>>,
    checkpoint: Result<(), PipelineError>,
    gave_up: bool,
}

/// A stage task's result: a panic becomes [`PipelineError::Panicked`], an abort (by
/// [`Stages::join`], after another stage failed or a stop timed out) is no error of its own.
fn joined<E: Into<PipelineError>>(
    stage: &'static str,
    r: Result<Result<(), E>, JoinError>,
) -> Result<(), PipelineError> {
    match r {
        Ok(r) => r.map_err(Into::into),
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(PipelineError::panicked(stage, e)),
    }
}

impl Stages {
    /// Starts the stages: the source from `start`, the transforms when `chain` is set, the
    /// sink, and the checkpointer saving to `store`.
    pub(super) fn spawn(
        cfg: &Config,
        stores: &Stores,
        start: Start,
        mut sink: Sink,
        chain: Option<LoadedChain>,
        shutdown: watch::Receiver<bool>,
    ) -> Stages {
        let capacity = cfg.pipeline.channel_capacity;
        crate::telemetry::metrics::new_life();
        // A snapshot's rows flow under a smaller budget, so that a snapshot of any size stays
        // within a small memory bound (docs/SNAPSHOT.md §10).
        let budget = Budget::new(match start {
            Start::Snapshot(_) => cfg
                .snapshot
                .max_inflight_bytes
                .min(cfg.pipeline.max_inflight_bytes),
            Start::Stream(_) => cfg.pipeline.max_inflight_bytes,
        });
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(1);
        let (flight_tx, flight_rx) = mpsc::channel::<Flight>(capacity);
        let forwarder = tokio::spawn(stages::forward(batch_rx, flight_tx, budget.clone()));
        let (transform, sink_rx) = match chain {
            None => (None, flight_rx),
            Some((chain, reloads)) => {
                let (tx, rx) = mpsc::channel::<Flight>(capacity);
                let budget = budget.clone();
                let task = tokio::task::spawn_blocking(move || {
                    stages::transform(chain, reloads, flight_rx, tx, budget)
                });
                (Some(task), rx)
            }
        };
        let (ack_tx, ack_rx) = mpsc::channel::<Acked>(capacity);

        // Turns true when a stop signal has waited `shutdown_timeout_ms` for the stages to drain.
        let (give_up, give_up_rx) = watch::channel(false);
        sink.stop_waiting_on(give_up_rx.clone());
        let watermark = sink.watermark();

        let limits = binlog::BatchLimits {
            rows: cfg.pipeline.max_batch_rows,
            bytes: cfg.pipeline.max_batch_bytes,
        };
        let source = tokio::spawn(source(
            cfg.clone(),
            start,
            limits,
            batch_tx,
            shutdown.clone(),
            budget.clone(),
        ));
        let sink = tokio::spawn(stages::publish(sink, sink_rx, ack_tx));
        let checkpointer = tokio::spawn(stages::checkpoint(
            stores.clone(),
            ack_rx,
            Duration::from_millis(cfg.pipeline.checkpoint_interval_ms),
            give_up_rx,
            watermark,
        ));
        Stages {
            source,
            forwarder,
            transform,
            sink,
            checkpointer,
            give_up,
            grace: Duration::from_millis(cfg.pipeline.shutdown_timeout_ms),
            shutdown,
        }
    }

    /// Waits for every stage and reports the root cause of a failure (see the design note).
    pub(super) async fn join(mut self) -> Result<(), PipelineError> {
        let ended = self.until_checkpointed().await;
        // The checkpointer has ended. If it failed, the other stages were aborted: report it.
        ended.checkpoint?;
        // Otherwise every stage ends on its own (each one's input has closed); collect them all,
        // so that no error is lost to the order in which the tasks happened to finish.
        let sink = match ended.sink {
            Some(r) => r,
            None => joined("sink", (&mut self.sink).await),
        };
        let transform = match self.transform.take() {
            Some(t) => joined("transform", t.await),
            None => Ok(()),
        };
        if transform.is_err() || sink.is_err() {
            // The source would otherwise wait for the server's next event to notice.
            self.source.abort();
            self.forwarder.abort();
        }
        let source = match ended.source {
            Some(r) => r,
            // Aborted because a later stage failed: that stage's error is the cause.
            None => joined("source", (&mut self.source).await),
        };
        self.forwarder.abort();
        if ended.gave_up {
            // The stop was requested; what was not acknowledged is published after a restart.
            return Ok(());
        }
        // Root cause first: a downstream failure makes the stages before it stop cleanly.
        transform?;
        sink?;
        source
    }

    /// Watches the stages until the checkpointer ends, stopping the stages before a failed
    /// one, and all of them once a stop has waited too long.
    async fn until_checkpointed(&mut self) -> Ended {
        let grace = self.grace;
        let mut sd = self.shutdown.clone();
        let deadline = async move {
            stopped(&mut sd).await;
            tokio::time::sleep(grace).await;
        };
        tokio::pin!(deadline);
        let (mut source, mut sink, mut gave_up) = (None, None, false);
        loop {
            tokio::select! {
                r = &mut self.source, if source.is_none() => {
                    source = Some(joined("source", r));
                }
                r = &mut self.sink, if sink.is_none() => {
                    let r = joined("sink", r);
                    if r.is_err() {
                        self.source.abort();
                        self.forwarder.abort();
                    }
                    sink = Some(r);
                }
                r = &mut self.checkpointer => {
                    let checkpoint = joined("checkpoint", r);
                    if checkpoint.is_err() {
                        self.source.abort();
                        self.forwarder.abort();
                        self.sink.abort();
                    }
                    return Ended { source, sink, checkpoint, gave_up };
                }
                _ = &mut deadline, if !gave_up => {
                    gave_up = true;
                    tracing::warn!(timeout = ?grace, "the destination did not take the in-flight events in time after the stop signal; stopping without them. They will be published again after a restart");
                    let _ = self.give_up.send(true);
                    self.source.abort();
                    self.forwarder.abort();
                    self.sink.abort();
                }
            }
        }
    }
}
