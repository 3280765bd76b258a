//! Wires the stages together and keeps them running.
//!
//! Design note:
//! ```text
//!  binlog source ─Batch─► forwarder ─Flight─► transforms ─Flight─► sink stage
//!  (stops at a    (cap 1) (takes the (channel (optional:  (channel (encodes,
//!   commit)                batch's   capacity) blocking   capacity) publishes,
//!                          bytes from          thread,              returns an
//!                          the budget)         hot reload)          Ack)
//!                              ▲                                       │ Acked
//!                              │                                       ▼ (channel capacity)
//!                              └──── byte budget, given back ◄─── checkpointer ──► position file
//!                                    when the batch's Ack resolves (awaits the Acks in order,
//!                                                                   saves at commits)
//! ```
//! Each stage is a task joined to the next by a bounded channel, so a slow Kafka fills the
//! channels and the binlog reader waits: memory stays bounded. A position reaches the file only
//! after every event before it was acknowledged, and only at a commit boundary. Disk writes are
//! coalesced to at most one per `checkpoint_interval_ms`, plus one at shutdown.
//!
//! Memory between the stages is bounded twice: by a count of batches (`channel_capacity`) and
//! by their estimated bytes (`max_inflight_bytes`, a semaphore whose permits a batch takes
//! before it leaves the source and gives back once Kafka acknowledged it; `budget`).
//!
//! The supervisor ([`run`]) restarts the stages from the last saved position after a retryable
//! failure (MySQL disconnect, fatal producer error) with exponential backoff. A restart reads
//! again what was delivered but not yet checkpointed; in exactly-once mode each life first
//! reads back what the output partitions hold (`start::read_back`) and the sink skips it
//! (`docs/EXACTLY_ONCE.md`), otherwise it is published again (at-least-once).
//! Under hot reload (`--watch`), a transform halt does not end the run: the supervisor waits
//! for the watcher to prepare a new version of a transform file (`Transforms::wait_for_fix`)
//! and restarts the stages from the last acknowledged position; `/health` says `halted`
//! meanwhile (`crate::telemetry`).
//! SIGINT/SIGTERM stop the source at a transaction boundary, drain the stages, save, and exit 0.
//! If the destination cannot take the rest within `pipeline.shutdown_timeout_ms` (Kafka is
//! down), the stages are abandoned: the position saved is the last acknowledged one, and a
//! restart publishes the rest. So a stop never hangs.
//!
//! Before the first life of the stages, `run` loads the transforms (`transforms`) and runs
//! the start-up checks (`start::preflight`): what no retry can heal stops Sluice at once with
//! the setting to fix. Each life (`run_once`) then resumes from the saved position, builds its
//! sink (`start`), takes its transform chain, and spawns and joins the stages (`tasks`,
//! whose bodies are in `stages`).

mod budget;
mod stages;
mod start;
mod tasks;
mod transforms;

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::Config;
use crate::sink::SinkError;
use crate::source::binlog::SourceError;
use crate::state::{PositionStore, SnapshotStore, StateError, StateLock, TopicStore};
use crate::telemetry::{health, metrics, Phase};
use crate::transform::{EngineError, HaltError};

use stages::Stores;
use start::Force;
use tasks::Stages;
use transforms::Transforms;

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Snapshot(#[from] crate::source::snapshot::SnapshotError),
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

    /// A short word for the part that failed (the `reason` of `sluice_pipeline_restarts_total`).
    fn kind(&self) -> &'static str {
        match self {
            PipelineError::Source(_) => "source",
            PipelineError::Snapshot(_) => "snapshot",
            PipelineError::Sink(_) => "sink",
            PipelineError::State(_) => "state",
            PipelineError::TransformLoad(_) | PipelineError::Halt(_) => "transform",
            PipelineError::Capture(_) => "capture",
            PipelineError::Panicked { .. } => "panic",
        }
    }

    /// Whether restarting the stages from the last acknowledged position may help.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Source(e) => e.is_retryable(),
            PipelineError::Snapshot(e) => e.is_retryable(),
            PipelineError::Sink(e) => !e.is_permanent(),
            PipelineError::State(_) => false,
            PipelineError::TransformLoad(_)
            | PipelineError::Halt(_)
            | PipelineError::Capture(_)
            | PipelineError::Panicked { .. } => false,
        }
    }

    /// The saved position and the server's text, when the binlog at the saved position was
    /// purged (while streaming, or during a resumed snapshot's catch-up).
    fn purged(&self) -> Option<(&crate::state::BinlogPosition, &str)> {
        use crate::source::snapshot::SnapshotError;
        match self {
            PipelineError::Source(SourceError::PositionPurged { position, message })
            | PipelineError::Snapshot(SnapshotError::Source(SourceError::PositionPurged {
                position,
                message,
            })) => Some((position, message)),
            _ => None,
        }
    }

    /// Whether the pipeline stopped on an event already written in the binlog that it refuses
    /// to publish (a partial row image, a statement-format write, an unknown event type; see
    /// `crate::source::processor::ProcessError::refuses_written_event`): every restart stops
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

/// Runs until `shutdown` turns true (returns `Ok`) or a non-retryable error occurs.
pub async fn run(cfg: &Config, shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
    // One pipeline per state directory, for the life of this call (the process, in `sluice run`).
    let _lock = StateLock::acquire(&cfg.state_dir, &cfg.state_tables().join(","))?;
    let position =
        PositionStore::for_tables(&cfg.state_dir, &cfg.mysql.schema, &cfg.state_tables());
    let stores = Stores {
        topics: TopicStore::beside(
            &cfg.state_dir,
            &crate::state::position_file_name(&cfg.mysql.schema, &cfg.state_tables()),
        ),
        position,
        snapshot: SnapshotStore::for_tables(&cfg.state_dir, &cfg.mysql.schema, &cfg.state_tables()),
    };
    // A broken transform stops Sluice here, once, before any connection or position file.
    health::set(
        Phase::Connecting,
        Some(format!(
            "starting: loading the transforms, checking MySQL at {}:{} and the sink",
            cfg.mysql.host, cfg.mysql.port
        )),
    );
    let mut transforms = Transforms::load(cfg).await?;
    match unless_stopped(&shutdown, start::preflight(cfg)).await {
        None => return Ok(()),
        // At start, even an error that is retryable later (an unreachable broker) stops Sluice:
        // it is far more often a wrong setting than an outage, and the message names it.
        Some(Err(e)) => return Err(e),
        Some(Ok(())) => {}
    }
    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    // FORCE_SNAPSHOT (or a purge under SNAPSHOT_WHEN_NEEDED) holds until this process's new
    // snapshot has started (its file is written): a retry before that must still take it, and
    // a retry after it must resume it, never start it over.
    let mut force = if cfg.snapshot.force {
        Force::Asked
    } else {
        Force::No
    };
    let mut before = stores.snapshot.load()?.map(|s| s.id);
    tokio::spawn({
        let mut sd = shutdown.clone();
        async move {
            stopped(&mut sd).await;
            health::set(Phase::Stopping, None);
        }
    });
    loop {
        let started = Instant::now();
        let result = run_once(
            cfg,
            &stores,
            shutdown.clone(),
            first,
            force,
            &mut transforms,
        )
        .await;
        first = false;
        let now = stores.snapshot.load().ok().flatten().map(|s| s.id);
        if force != Force::No && now != before {
            force = Force::No;
        }
        before = now;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if cfg.snapshot.when_needed && !*shutdown.borrow() && e.purged().is_some() => {
                if let Some((position, message)) = e.purged() {
                    tracing::error!(%position, server = %message, "the saved position was purged from the server; re-snapshotting every captured table (SNAPSHOT_WHEN_NEEDED=true)");
                }
                metrics::restart("purged");
                force = Force::Purged;
            }
            Err(PipelineError::Halt(halt)) if cfg.hot_reload && !*shutdown.borrow() => {
                // Under --watch the author is iterating: keep the process (and /health's 503)
                // up and resume once a fixed version of the file loads.
                tracing::error!(error = %halt, "a transform halted the pipeline; waiting for a new version of the transform file (hot reload is on). Nothing past the last acknowledged event was saved");
                health::set(Phase::Halted, Some(halt.to_string()));
                let Some(fixed) = transforms.wait_for_fix(&shutdown).await else {
                    return Err(PipelineError::Halt(halt));
                };
                tracing::info!(transform = %fixed, "a new version of a transform loaded; restarting from the last acknowledged position");
                metrics::restart("transform_fixed");
                metrics::transform_swapped(&fixed, 1);
                health::set(
                    Phase::Connecting,
                    Some(format!("restarting with a new version of {fixed}")),
                );
            }
            Err(e) if e.is_retryable() && !*shutdown.borrow() => {
                metrics::restart(e.kind());
                health::set(Phase::Reconnecting, Some(e.to_string()));
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

/// One life of the stages, from the saved position. `first`: the first life of this `run`.
async fn run_once(
    cfg: &Config,
    stores: &Stores,
    shutdown: watch::Receiver<bool>,
    first: bool,
    force: Force,
    transforms: &mut Transforms,
) -> Result<(), PipelineError> {
    // Exactly-once: what each partition holds, read before anything is sent in this life.
    let held = match start::read_back(cfg, stores, &shutdown).await? {
        start::Held::Stopped => return Ok(()),
        start::Held::Off => None,
        start::Held::Read(r) => Some(*r),
    };
    let recovered = held.as_ref().and_then(|h| h.checkpoint.clone());
    let kafka_holds = held
        .as_ref()
        .map(start::snapshot_in_kafka)
        .unwrap_or_default();
    let in_kafka = held.as_ref().and_then(start::snapshot_point_in_kafka);
    let Some((mut start, resumed)) = start::resume(
        cfg,
        stores,
        &shutdown,
        force,
        recovered,
        &kafka_holds,
        in_kafka,
    )
    .await?
    else {
        return Ok(());
    };
    if let Some(h) = &held {
        start::held_snapshot_cursors(&mut start, h);
    }
    let Some(sink) = start::sink(cfg, stores, &shutdown, first, &start, resumed, held).await?
    else {
        return Ok(());
    };
    let chain = transforms.chain().await?;
    Stages::spawn(cfg, stores, start, sink, chain, shutdown)
        .join()
        .await
}
