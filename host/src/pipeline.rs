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

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

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
    #[error("cannot prepare the Kafka topic: {0}")]
    Topic(rdkafka::error::KafkaError),
    #[error(
        "cannot start the transforms: {0}. Check the TRANSFORMS paths and each transform's config"
    )]
    TransformLoad(#[from] EngineError),
    #[error(transparent)]
    Halt(#[from] HaltError),
}

impl PipelineError {
    fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Source(e) => e.is_retryable(),
            PipelineError::Sink(e) => !matches!(e, SinkError::Create(_) | SinkError::Stdout(_)),
            PipelineError::State(_) => false,
            PipelineError::Topic(_) => true,
            PipelineError::TransformLoad(_) | PipelineError::Halt(_) => false,
        }
    }
}

/// Runs until `shutdown` turns true (returns `Ok`) or a non-retryable error occurs.
pub async fn run(cfg: &Config, shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
    // One pipeline per state directory, for the life of this call (the process, in `sluice run`).
    let _lock = StateLock::acquire(&cfg.state_dir, &cfg.mysql.tables.join(","))?;
    let store = PositionStore::for_tables(&cfg.state_dir, &cfg.mysql.schema, &cfg.mysql.tables);
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = Instant::now();
        match run_once(cfg, &store, shutdown.clone()).await {
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

/// One life of the stages, from the saved position.
async fn run_once(
    cfg: &Config,
    store: &PositionStore,
    shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let start = match store.load()? {
        Some(p) => {
            tracing::info!(position = %p, file = %store.path().display(), "resuming from the saved position");
            p
        }
        None => {
            let mut conn = binlog::connect(&cfg.mysql).await?;
            let head = binlog::current_head(&mut conn).await?;
            let _ = conn.disconnect().await;
            tracing::info!(position = %head, "no saved position: starting from the current binlog head");
            // Record it at once, so that a restart before the first commit resumes here rather
            // than at a later head (which would skip what happened in between).
            store.save(&head)?;
            head
        }
    };

    let sink = match &cfg.kafka {
        Some(k) => {
            crate::sink::kafka::ensure_topic(k, 1)
                .await
                .map_err(PipelineError::Topic)?;
            Sink::Kafka(KafkaSink::new(k)?)
        }
        None => Sink::Stdout(StdoutSink::default()),
    };

    // Transforms are compiled (or read from the artifact cache) off the async threads.
    let chain = if cfg.transforms.is_empty() {
        None
    } else {
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
        .expect("transform loading panicked")?;
        Some(built)
    };
    if let Some(k) = &cfg.kafka {
        for t in cfg
            .transforms
            .iter()
            .filter_map(|t| t.dead_letter_topic.as_ref())
        {
            let dlq = crate::config::KafkaConfig {
                topic: t.clone(),
                ..k.clone()
            };
            crate::sink::kafka::ensure_topic(&dlq, 1)
                .await
                .map_err(PipelineError::Topic)?;
        }
    }

    let (batch_tx, source_rx) = mpsc::channel::<Batch>(cfg.pipeline.channel_capacity);
    // Without transforms the sink reads the source's channel directly.
    let (transform_task, batch_rx) = match chain {
        None => (None, source_rx),
        Some((chain, reloads)) => {
            let (tx, rx) = mpsc::channel::<Batch>(cfg.pipeline.channel_capacity);
            let task =
                tokio::task::spawn_blocking(move || transform_stage(chain, reloads, source_rx, tx));
            (Some(task), rx)
        }
    };
    let (ack_tx, ack_rx) =
        mpsc::channel::<(Ack, Option<BinlogPosition>)>(cfg.pipeline.channel_capacity);

    let filter = TableFilter::new(cfg.captured_tables());
    let mysql = cfg.mysql.clone();
    let max_rows = cfg.pipeline.max_batch_rows;
    let mut source = tokio::spawn(async move {
        binlog::stream(&mysql, filter, start, max_rows, batch_tx, shutdown).await
    });
    let mut sink_task = tokio::spawn(sink_stage(sink, batch_rx, ack_tx));
    let mut checkpointer = tokio::spawn(checkpoint_stage(
        store.clone(),
        ack_rx,
        Duration::from_millis(cfg.pipeline.checkpoint_interval_ms),
    ));

    // Normally the source ends first (on stop or error); its channel closing drains the sink,
    // whose channel closing drains the checkpointer, which saves last. When the sink or the
    // checkpointer fails, the stages before it are stopped at once: an idle source would not
    // notice otherwise.
    let (mut source_result, mut sink_result, mut checkpoint_result) = (None, None, None);
    while checkpoint_result.is_none() {
        tokio::select! {
            r = &mut source, if source_result.is_none() => {
                source_result = Some(r.unwrap_or_else(|e| panic!("source task: {e}")));
            }
            r = &mut sink_task, if sink_result.is_none() => {
                let r = r.unwrap_or_else(|e| panic!("sink task: {e}"));
                if r.is_err() {
                    source.abort();
                }
                sink_result = Some(r);
            }
            r = &mut checkpointer => {
                let r = r.unwrap_or_else(|e| panic!("checkpoint task: {e}"));
                if r.is_err() {
                    source.abort();
                    sink_task.abort();
                }
                checkpoint_result = Some(r);
            }
        }
    }
    // The checkpointer has ended. If it failed, the other stages were aborted: report it.
    checkpoint_result.expect("loop ends when set")?;
    // Otherwise every stage ends on its own (each one's input has closed); collect them all,
    // so that no error is lost to the order in which the tasks happened to finish.
    let sink_result = match sink_result {
        Some(r) => r,
        None => sink_task.await.expect("sink task panicked"),
    };
    let transform_result = match transform_task {
        Some(t) => t.await.expect("transform task panicked"),
        None => Ok(()),
    };
    let source_result = match source_result {
        Some(r) => r,
        None => match source.await {
            Ok(r) => r,
            // Aborted because the sink failed: the sink's error is the cause.
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => panic!("source task: {e}"),
        },
    };
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
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<Batch>,
) -> Result<(), PipelineError> {
    while let Some(mut batch) = rx.blocking_recv() {
        if let Some(r) = &reloads {
            while let Ok(new) = r.try_recv() {
                let stage = &mut chain.stages[new.stage];
                let old = stage.module_hash()[..12].to_owned();
                stage.replace(new.module, new.live);
                tracing::info!(transform = %stage.spec.name, from = %old, to = %&stage.module_hash()[..12], generation = stage.generation, "swapped in the new version at a batch boundary");
            }
        }
        batch.events = chain.process(std::mem::take(&mut batch.events))?;
        if tx.blocking_send(batch).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

async fn sink_stage(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Batch>,
    acks: mpsc::Sender<(Ack, Option<BinlogPosition>)>,
) -> Result<(), PipelineError> {
    while let Some(batch) = rx.recv().await {
        let ack = if batch.events.is_empty() {
            Ack::Done
        } else {
            sink.publish(&batch.events).await?
        };
        if acks.send((ack, batch.checkpoint)).await.is_err() {
            // The checkpointer failed; it reports why.
            return Ok(());
        }
    }
    sink.flush().await?;
    Ok(())
}

async fn checkpoint_stage(
    store: PositionStore,
    mut rx: mpsc::Receiver<(Ack, Option<BinlogPosition>)>,
    interval: Duration,
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
        let Some((ack, checkpoint)) = item else { break };
        if let Err(e) = ack.wait().await {
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
