//! Wires the stages together and keeps them running.
//!
//! Design note:
//! ```text
//!  binlog source ──Batch──► sink stage ──(Ack, checkpoint)──► checkpointer ──► position file
//!        (bounded channel)      (encode, publish)     (bounded channel)   (awaits acks in order)
//! ```
//! Each stage is a tokio task joined to the next by a bounded channel, so a slow Kafka fills the
//! channels and the binlog reader waits: memory stays bounded. A position reaches the file only
//! after every event before it was acknowledged, and only at a commit boundary. Disk writes are
//! coalesced to at most one per `checkpoint_interval_ms`, plus one at shutdown.
//!
//! The supervisor ([`run`]) restarts the stages from the last saved position after a retryable
//! failure (MySQL disconnect, fatal producer error) with exponential backoff. That is
//! at-least-once: a restart can republish events that were delivered but not yet checkpointed.
//! SIGINT/SIGTERM stop the source at a transaction boundary, drain the stages, save, and exit 0.
//! If the destination cannot take the rest within `pipeline.shutdown_timeout_ms` (Kafka is
//! down), the stages are abandoned: the position saved is the last acknowledged one, and a
//! restart publishes the rest. So a stop never hangs.
//!
//! Memory between the stages is bounded twice: by a count of batches (`channel_capacity`) and
//! by their estimated bytes (`max_inflight_bytes`, a semaphore whose permits a batch takes
//! before it leaves the source and gives back once Kafka acknowledged it).
//!
//! Before the first life of the stages, [`run`] checks what no retry can heal: the MySQL side
//! (credentials, binlog format, the captured tables) and the broker (reachable within 10 s, the
//! topics exist or can be created). Those failures stop Sluice at once with the setting to fix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::sink::{Ack, KafkaSink, Sink, SinkError, StdoutSink};
use crate::source::binlog::{self, SourceError};
use crate::source::{Batch, TableFilter};
use crate::state::{BinlogPosition, PositionStore, StateError, StateLock};
use crate::transform::reload::{self, Reloaded};
use crate::transform::{build_chain, Chain, EngineError, HaltError, TransformEngine};

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "cannot start the transforms (check the TRANSFORMS paths, each transform's config, and \
         `sluice check`)"
    )]
    TransformLoad(#[from] EngineError),
    #[error(transparent)]
    Halt(#[from] HaltError),
    #[error(transparent)]
    Capture(#[from] crate::source::foreign_keys::CaptureRefusal),
    #[error(
        "internal error: the {stage} stage panicked ({message}). Nothing past the last \
         acknowledged position was saved, so a restart loses nothing; please report this with the \
         logs (a corrupt binlog event can trigger it inside the MySQL client library)"
    )]
    Panicked {
        stage: &'static str,
        message: String,
    },
}

impl PipelineError {
    /// A stage task that panicked (or failed to join), as an error instead of a crash loop.
    fn panicked(stage: &'static str, e: tokio::task::JoinError) -> Self {
        let message = match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into()),
            Err(e) => e.to_string(),
        };
        PipelineError::Panicked { stage, message }
    }

    /// Whether restarting the stages from the last acknowledged position may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Source(e) => e.is_retryable(),
            PipelineError::Sink(e) => !e.is_permanent(),
            PipelineError::State(_) => false,
            PipelineError::TransformLoad(_)
            | PipelineError::Halt(_)
            | PipelineError::Capture(_)
            | PipelineError::Panicked { .. } => false,
        }
    }

    /// Whether the pipeline stopped on an event already written in the binlog that it refuses
    /// to publish (a partial row image, a statement-format write, an unknown event type; see
    /// [`crate::source::processor::ProcessError::refuses_written_event`]): every restart stops
    /// there again, and only an explicit `sluice position skip` gets past it.
    pub fn is_stuck_at_event(&self) -> bool {
        matches!(
            self,
            PipelineError::Source(crate::source::binlog::SourceError::Process(e))
                if e.refuses_written_event()
        )
    }
}

/// Runs `fut` unless `shutdown` turns true first (then `None`).
async fn unless_stopped<T>(
    shutdown: &watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut sd = shutdown.clone();
    tokio::select! {
        r = fut => Some(r),
        _ = stopped(&mut sd) => None,
    }
}

/// Resolves once `shutdown` is true (never, if its sender is gone while false).
async fn stopped(sd: &mut watch::Receiver<bool>) {
    if sd.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Every topic Sluice itself publishes to: the main one and the dead-letter topics.
fn own_topics(cfg: &Config) -> Vec<String> {
    let Some(k) = &cfg.kafka else {
        return Vec::new();
    };
    let mut topics = vec![k.topic.clone()];
    topics.extend(k.dead_letter_topic.clone());
    topics.extend(
        cfg.transforms
            .iter()
            .filter_map(|t| t.dead_letter_topic.clone()),
    );
    let mut seen = std::collections::HashSet::new();
    topics.retain(|t| seen.insert(t.clone()));
    topics
}

/// Creates the topics that are missing (after checking the metadata).
async fn ensure_topics(cfg: &Config, timeout: Duration) -> Result<(), SinkError> {
    if let Some(k) = &cfg.kafka {
        for t in own_topics(cfg) {
            crate::sink::kafka::ensure_topic(k, &t, 1, timeout).await?;
        }
    }
    Ok(())
}

/// The start-up checks: what a retry cannot heal stops Sluice here, at once.
async fn preflight(cfg: &Config) -> Result<(), PipelineError> {
    binlog::preflight(&cfg.mysql, &cfg.captured_tables()).await?;
    let mut conn = binlog::connect(&cfg.mysql).await?;
    let accepted = crate::source::foreign_keys::check_capturable(
        &mut conn,
        &cfg.captured_tables(),
        cfg.mysql.accept_fk_cascades,
    )
    .await;
    let _ = conn.disconnect().await;
    let (accepted, sequences) = accepted?;
    for (s, t) in sequences {
        tracing::warn!(sequence = %format!("{s}.{t}"), "MYSQL_TABLE names a SEQUENCE: its rows are the sequence's internal state and are never published");
    }
    for key in accepted {
        tracing::warn!(
            child = %format!("{}.{}", key.child.0, key.child.1),
            parent = %format!("{}.{}", key.parent.0, key.parent.1),
            constraint = %key.constraint,
            on_delete = %key.delete_rule,
            on_update = %key.update_rule,
            "capturing the child of a cascading foreign key (ACCEPT_FK_CASCADES=true): the binlog does not hold the rows a cascade changes, so this table's copy can drift"
        );
    }
    if let Some(k) = &cfg.kafka {
        ensure_topics(cfg, crate::sink::kafka::CONNECT_TIMEOUT)
            .await
            .map_err(|e| match e {
                // A topic that cannot be made in time at start is an unreachable broker.
                SinkError::Topic { topic, source } if !e_is_permanent(&source) => {
                    SinkError::Unreachable {
                        brokers: k.brokers.clone(),
                        timeout: crate::sink::kafka::CONNECT_TIMEOUT,
                        detail: format!("creating the topic {topic:?} failed: {source}"),
                    }
                }
                e => e,
            })?;
    }
    Ok(())
}

fn e_is_permanent(e: &rdkafka::error::KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(|c| {
        matches!(
            crate::sink::kafka::classify(c),
            crate::sink::kafka::Class::Permanent(_)
        )
    })
}

/// The transform chain and, under `--watch`, the stream of its reloaded versions.
type LoadedChain = (Chain, Option<std::sync::mpsc::Receiver<Reloaded>>);

/// Loads and `init`s the configured transforms (none: `None`). Compiling (or reading the
/// artifact cache) runs off the async threads.
async fn load_transforms(cfg: &Config) -> Result<Option<LoadedChain>, PipelineError> {
    if cfg.transforms.is_empty() {
        return Ok(None);
    }
    let (specs, cache) = (cfg.transforms.clone(), cfg.transform_cache_dir.clone());
    let hot = cfg.hot_reload;
    let built = tokio::task::spawn_blocking(move || -> Result<_, EngineError> {
        let engine = TransformEngine::global(Some(cache))?;
        let chain = build_chain(&engine, &specs)?;
        let reloads = if hot {
            match reload::watch(engine.clone(), specs) {
                Ok(rx) => Some(rx),
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch the transforms for changes; hot reload is off");
                    None
                }
            }
        } else {
            None
        };
        Ok((chain, reloads))
    })
    .await
    .map_err(|e| PipelineError::panicked("transform loading", e))??;
    Ok(Some(built))
}

/// Runs until `shutdown` turns true (returns `Ok`) or a non-retryable error occurs.
pub async fn run(cfg: &Config, shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
    // One pipeline per state directory, for the life of this call (the process, in `sluice run`).
    let _lock = StateLock::acquire(&cfg.state_dir, &cfg.mysql.tables.join(","))?;
    let store = PositionStore::for_tables(&cfg.state_dir, &cfg.mysql.schema, &cfg.mysql.tables);
    // A broken transform stops Sluice here, once, before any connection or position file.
    let mut chain = load_transforms(cfg).await?;
    match unless_stopped(&shutdown, preflight(cfg)).await {
        None => return Ok(()),
        // At start, even an error that is retryable later (an unreachable broker) stops Sluice:
        // it is far more often a wrong setting than an outage, and the message names it.
        Some(Err(e)) => return Err(e),
        Some(Ok(())) => {}
    }
    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    loop {
        let started = Instant::now();
        let result = run_once(cfg, &store, shutdown.clone(), first, chain.take()).await;
        first = false;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && !*shutdown.borrow() => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                tracing::warn!(error = %e, retry_in = ?backoff, "pipeline failed; resuming from the last acknowledged position");
                let mut sd = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = sd.wait_for(|s| *s) => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A batch on its way from the source to Kafka's acknowledgement, with the share of the byte
/// budget it holds (released when its acknowledgement completes).
struct Flight {
    batch: Batch,
    permit: OwnedSemaphorePermit,
}

/// What the checkpointer receives: an acknowledgement to await, the position it makes durable,
/// and the byte budget to give back.
type Acked = (Ack, Option<BinlogPosition>, OwnedSemaphorePermit);

/// The byte budget of the stages (`pipeline.max_inflight_bytes`), in semaphore permits.
#[derive(Clone)]
struct Budget {
    sem: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    fn new(bytes: usize) -> Self {
        // `acquire_many` takes a u32; a single batch larger than the budget takes all of it.
        let total = bytes.clamp(1, u32::MAX as usize);
        Budget {
            sem: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    fn share(&self, bytes: usize) -> u32 {
        bytes.min(self.total) as u32
    }

    /// Waits until `bytes` (at most the whole budget) are free.
    async fn acquire(&self, bytes: usize) -> OwnedSemaphorePermit {
        self.sem
            .clone()
            .acquire_many_owned(self.share(bytes))
            .await
            .expect("the budget semaphore is never closed")
    }

    /// Resizes a batch's permit after a stage changed its events: gives back what it no longer
    /// needs, and takes more only as far as it is free now (waiting here could deadlock, since
    /// only later stages give permits back), so a growing batch may overshoot the budget by its
    /// growth.
    fn resize(&self, permit: &mut OwnedSemaphorePermit, bytes: usize) {
        let want = self.share(bytes) as usize;
        let have = permit.num_permits();
        if want < have {
            drop(permit.split(have - want));
        } else if want > have {
            let free = (want - have).min(self.sem.available_permits());
            if let Ok(more) = self.sem.clone().try_acquire_many_owned(free as u32) {
                permit.merge(more);
            }
        }
    }
}

/// One life of the stages, from the saved position. `chain`: the transforms already loaded
/// (the first life), or `None` to load them here.
async fn run_once(
    cfg: &Config,
    store: &PositionStore,
    shutdown: watch::Receiver<bool>,
    first: bool,
    chain: Option<LoadedChain>,
) -> Result<(), PipelineError> {
    let start = match store.load()? {
        Some(p) => {
            tracing::info!(position = %p, file = %store.path().display(), "resuming from the saved position");
            p
        }
        None => {
            let head = unless_stopped(&shutdown, async {
                let mut conn = binlog::connect(&cfg.mysql).await?;
                let head = binlog::current_head(&mut conn).await?;
                let _ = conn.disconnect().await;
                Ok::<_, SourceError>(head)
            })
            .await;
            let Some(head) = head else { return Ok(()) };
            let head = head?;
            tracing::info!(position = %head, "no saved position: starting from the current binlog head");
            // Record it at once, so that a restart before the first commit resumes here rather
            // than at a later head (which would skip what happened in between).
            store.save(&head)?;
            head
        }
    };

    // The start-up checks made the topics; a later life makes them again, because a broker that
    // lost its state (memory storage) has forgotten them.
    if !first {
        match unless_stopped(
            &shutdown,
            ensure_topics(cfg, crate::sink::kafka::CONNECT_TIMEOUT),
        )
        .await
        {
            None => return Ok(()),
            Some(r) => r?,
        }
    }
    let mut sink = match &cfg.kafka {
        Some(k) => Sink::Kafka(KafkaSink::new(k)?),
        None => Sink::Stdout(StdoutSink::default()),
    };

    // The first life gets the chain `run` loaded before connecting anywhere; a restart loads
    // the transforms again (keeping the running version of a file that no longer loads).
    let chain = match chain {
        Some(loaded) => Some(loaded),
        None => load_transforms(cfg).await?,
    };

    // The source hands each batch to a forwarder, which takes the batch's share of the byte
    // budget before passing it on; the source's own channel holds a single batch, so the bytes
    // between the source and Kafka's acknowledgement stay within the budget plus two batches.
    let budget = Budget::new(cfg.pipeline.max_inflight_bytes);
    let (batch_tx, mut source_rx) = mpsc::channel::<Batch>(1);
    let (flight_tx, flight_rx) = mpsc::channel::<Flight>(cfg.pipeline.channel_capacity);
    let forwarder = {
        let budget = budget.clone();
        tokio::spawn(async move {
            loop {
                // When the next stage is gone (a transform halted, the sink failed), stop
                // reading, so that the source notices at once even on an idle server.
                let batch = tokio::select! {
                    b = source_rx.recv() => match b {
                        Some(b) => b,
                        None => return,
                    },
                    _ = flight_tx.closed() => return,
                };
                let permit = budget.acquire(batch.bytes).await;
                if flight_tx.send(Flight { batch, permit }).await.is_err() {
                    return;
                }
            }
        })
    };
    // Without transforms the sink reads the forwarder's channel directly.
    let (transform_task, sink_rx) = match chain {
        None => (None, flight_rx),
        Some((chain, reloads)) => {
            let (tx, rx) = mpsc::channel::<Flight>(cfg.pipeline.channel_capacity);
            let budget = budget.clone();
            let task = tokio::task::spawn_blocking(move || {
                transform_stage(chain, reloads, flight_rx, tx, budget)
            });
            (Some(task), rx)
        }
    };
    let (ack_tx, ack_rx) = mpsc::channel::<Acked>(cfg.pipeline.channel_capacity);

    // Turns true when a stop signal has waited `shutdown_timeout_ms` for the stages to drain.
    let (give_up_tx, give_up) = watch::channel(false);
    sink.stop_waiting_on(give_up.clone());

    let filter = TableFilter::new(cfg.captured_tables());
    let mysql = cfg.mysql.clone();
    let limits = binlog::BatchLimits {
        rows: cfg.pipeline.max_batch_rows,
        bytes: cfg.pipeline.max_batch_bytes,
    };
    let source_stop = shutdown.clone();
    let mut source = tokio::spawn(async move {
        binlog::stream(&mysql, filter, start, limits, batch_tx, source_stop).await
    });
    let mut sink_task = tokio::spawn(sink_stage(sink, sink_rx, ack_tx));
    let mut checkpointer = tokio::spawn(checkpoint_stage(
        store.clone(),
        ack_rx,
        Duration::from_millis(cfg.pipeline.checkpoint_interval_ms),
        give_up,
    ));

    let grace = Duration::from_millis(cfg.pipeline.shutdown_timeout_ms);
    let mut sd = shutdown.clone();
    let deadline = async move {
        stopped(&mut sd).await;
        tokio::time::sleep(grace).await;
    };
    tokio::pin!(deadline);
    let mut gave_up = false;

    // Normally the source ends first (on stop or error); its channel closing drains the sink,
    // whose channel closing drains the checkpointer, which saves last. When the sink or the
    // checkpointer fails, the stages before it are stopped at once: an idle source would not
    // notice otherwise. When a stop has waited too long (Kafka is down), every stage is stopped
    // and the checkpointer saves what was acknowledged.
    let (mut source_result, mut sink_result, mut checkpoint_result) = (None, None, None);
    while checkpoint_result.is_none() {
        tokio::select! {
            r = &mut source, if source_result.is_none() => {
                source_result = Some(match r {
                    Ok(r) => r.map_err(PipelineError::from),
                    Err(e) if e.is_cancelled() => Ok(()),
                    Err(e) => Err(PipelineError::panicked("source", e)),
                });
            }
            r = &mut sink_task, if sink_result.is_none() => {
                let r = match r {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => Ok(()),
                    Err(e) => Err(PipelineError::panicked("sink", e)),
                };
                if r.is_err() {
                    source.abort();
                    forwarder.abort();
                }
                sink_result = Some(r);
            }
            r = &mut checkpointer => {
                let r = r.unwrap_or_else(|e| Err(PipelineError::panicked("checkpoint", e)));
                if r.is_err() {
                    source.abort();
                    forwarder.abort();
                    sink_task.abort();
                }
                checkpoint_result = Some(r);
            }
            _ = &mut deadline, if !gave_up => {
                gave_up = true;
                tracing::warn!(timeout = ?grace, "the destination did not take the in-flight events in time after the stop signal; stopping without them. They will be published again after a restart");
                let _ = give_up_tx.send(true);
                source.abort();
                forwarder.abort();
                sink_task.abort();
            }
        }
    }
    // The checkpointer has ended. If it failed, the other stages were aborted: report it.
    checkpoint_result.expect("loop ends when set")?;
    // Otherwise every stage ends on its own (each one's input has closed); collect them all,
    // so that no error is lost to the order in which the tasks happened to finish.
    let sink_result = match sink_result {
        Some(r) => r,
        None => match sink_task.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(PipelineError::panicked("sink", e)),
        },
    };
    let transform_result = match transform_task {
        Some(t) => t
            .await
            .unwrap_or_else(|e| Err(PipelineError::panicked("transform", e))),
        None => Ok(()),
    };
    if transform_result.is_err() || sink_result.is_err() {
        // The source would otherwise wait for the server's next event to notice.
        source.abort();
        forwarder.abort();
    }
    let source_result = match source_result {
        Some(r) => r,
        None => match source.await {
            Ok(r) => r.map_err(PipelineError::from),
            // Aborted because the sink failed: the sink's error is the cause.
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(PipelineError::panicked("source", e)),
        },
    };
    forwarder.abort();
    if gave_up {
        // The stop was requested; what was not acknowledged is published after a restart.
        return Ok(());
    }
    // Root cause first: a downstream failure makes the stages before it stop cleanly.
    transform_result?;
    sink_result?;
    source_result?;
    Ok(())
}

/// Runs batches through the transform chain on a blocking thread, swapping in hot-reloaded
/// versions between batches.
fn transform_stage(
    mut chain: Chain,
    reloads: Option<std::sync::mpsc::Receiver<Reloaded>>,
    mut rx: mpsc::Receiver<Flight>,
    tx: mpsc::Sender<Flight>,
    budget: Budget,
) -> Result<(), PipelineError> {
    while let Some(mut flight) = rx.blocking_recv() {
        if let Some(r) = &reloads {
            while let Ok(new) = r.try_recv() {
                chain.swap(new);
            }
        }
        let batch = &mut flight.batch;
        batch.events = chain.process(std::mem::take(&mut batch.events))?;
        batch.recount();
        budget.resize(&mut flight.permit, flight.batch.bytes);
        if tx.blocking_send(flight).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

async fn sink_stage(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Flight>,
    acks: mpsc::Sender<Acked>,
) -> Result<(), PipelineError> {
    while let Some(Flight { batch, permit }) = rx.recv().await {
        let ack = if batch.events.is_empty() {
            Ack::Done
        } else {
            sink.publish(&batch.events).await?
        };
        if acks.send((ack, batch.checkpoint, permit)).await.is_err() {
            // The checkpointer failed; it reports why.
            return Ok(());
        }
    }
    sink.flush().await?;
    Ok(())
}

async fn checkpoint_stage(
    store: PositionStore,
    mut rx: mpsc::Receiver<Acked>,
    interval: Duration,
    mut give_up: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let mut pending: Option<BinlogPosition> = None;
    let mut last_save = Instant::now();
    loop {
        let item = if pending.is_some() {
            match tokio::time::timeout(interval.saturating_sub(last_save.elapsed()), rx.recv())
                .await
            {
                Ok(item) => item,
                Err(_) => {
                    // Idle or slow: write what is acknowledged now.
                    store.save(pending.as_ref().expect("checked"))?;
                    pending = None;
                    last_save = Instant::now();
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let Some((ack, checkpoint, permit)) = item else {
            break;
        };
        let acked = tokio::select! {
            r = ack.wait() => r,
            _ = stopped(&mut give_up) => {
                // A stop that waited too long: keep what was acknowledged, drop the rest.
                let unacked = 1 + rx.len();
                if let Some(p) = pending.take() {
                    store.save(&p)?;
                    tracing::info!(position = %p, "saved the last acknowledged position");
                }
                tracing::warn!(batches = unacked, "stopping with batches Kafka has not acknowledged; a restart publishes them again");
                return Ok(());
            }
        };
        drop(permit);
        if let Err(e) = acked {
            // Save what was acknowledged before the failure, then fail.
            if let Some(p) = pending.take() {
                store.save(&p)?;
            }
            return Err(e.into());
        }
        if let Some(cp) = checkpoint {
            pending = Some(cp);
        }
        if pending.is_some() && last_save.elapsed() >= interval {
            store.save(pending.as_ref().expect("checked"))?;
            pending = None;
            last_save = Instant::now();
        }
    }
    if let Some(p) = pending {
        store.save(&p)?;
        tracing::info!(position = %p, "saved the final position");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_byte_budget_blocks_and_never_deadlocks_on_a_huge_batch() {
        let budget = Budget::new(100);
        let a = budget.acquire(60).await;
        // 60 + 60 > 100: the second batch waits until the first is acknowledged.
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.acquire(60)).await;
        assert!(waiting.is_err(), "over the budget: waits");
        drop(a);
        let b = tokio::time::timeout(Duration::from_millis(50), budget.acquire(60))
            .await
            .expect("freed by the ack");
        drop(b);
        // A batch larger than the whole budget takes all of it rather than waiting forever.
        let mut huge = tokio::time::timeout(Duration::from_millis(50), budget.acquire(10_000))
            .await
            .expect("a huge batch takes the whole budget");
        assert_eq!(huge.num_permits(), 100);
        assert_eq!(budget.sem.available_permits(), 0);
        // A transform that shrinks it gives the difference back; growth takes only what is free.
        budget.resize(&mut huge, 30);
        assert_eq!(
            (huge.num_permits(), budget.sem.available_permits()),
            (30, 70)
        );
        let other = budget.acquire(60).await;
        budget.resize(&mut huge, 80);
        assert_eq!(
            (huge.num_permits(), budget.sem.available_permits()),
            (40, 0)
        );
        drop((huge, other));
        assert_eq!(budget.sem.available_permits(), 100);
    }
}
