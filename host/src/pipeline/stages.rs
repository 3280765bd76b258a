//! The bodies of the stage tasks between the source and the position file.
//!
//! Design note: each stage reads its input channel until it closes (the stage before it
//! ended), then ends, closing its own output; so a stop at the source drains the whole line in
//! order. A stage whose output is gone (the next stage failed) ends at once without an error:
//! the failed stage reports why. See the module diagram in [`super`].

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};

use super::budget::Budget;
use super::{stopped, PipelineError};
use crate::event::{Batch, Checkpoint};
use crate::sink::kafka::Watermark;
use crate::sink::{Ack, Sink};
use crate::state::{PositionStore, SnapshotStatus, SnapshotStore, StateError, TopicStore};
use crate::telemetry::metrics as telemetry;
use crate::transform::reload::Reloaded;
use crate::transform::Chain;

/// A batch on its way from the source to Kafka's acknowledgement, with the share of the byte
/// budget it holds (released when its acknowledgement completes).
pub(super) struct Flight {
    pub(super) batch: Batch,
    pub(super) permit: OwnedSemaphorePermit,
}

/// What the checkpointer receives: an acknowledgement to await, the position it makes durable,
/// and the byte budget to give back.
pub(super) type Acked = (Ack, Option<Checkpoint>, OwnedSemaphorePermit);

/// Takes each batch's share of the byte budget and passes it on. The source's own channel
/// holds a single batch, so the bytes between the source and Kafka's acknowledgement stay
/// within the budget plus two batches.
pub(super) async fn forward(
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<Flight>,
    budget: Budget,
) {
    loop {
        // When the next stage is gone (a transform halted, the sink failed), stop reading, so
        // that the source notices at once even on an idle server.
        let batch = tokio::select! {
            b = rx.recv() => match b {
                Some(b) => b,
                None => return,
            },
            _ = tx.closed() => return,
        };
        let permit = budget.acquire(batch.bytes).await;
        if telemetry::enabled() {
            count_read(&batch);
            telemetry::batch_entered();
        }
        if tx.send(Flight { batch, permit }).await.is_err() {
            return;
        }
    }
}

/// Counts a batch's events per table (`sluice_events_read_total`): one update per run of
/// events of one table, which is the whole batch in the usual case.
fn count_read(batch: &Batch) {
    let mut run: Option<(&std::sync::Arc<crate::event::TableMeta>, u64)> = None;
    let flush = |run: Option<(&std::sync::Arc<crate::event::TableMeta>, u64)>| {
        if let Some((meta, n)) = run {
            telemetry::events_read(&format!("{}.{}", meta.schema, meta.table), n);
        }
    };
    for ev in &batch.events {
        match &mut run {
            Some((meta, n)) if std::sync::Arc::ptr_eq(meta, &ev.meta) => *n += 1,
            _ => {
                flush(run.take());
                run = Some((&ev.meta, 1));
            }
        }
    }
    flush(run);
}

/// Runs batches through the transform chain on a blocking thread, swapping in hot-reloaded
/// versions between batches.
pub(super) fn transform(
    mut chain: Chain,
    reloads: Option<std::sync::mpsc::Receiver<Reloaded>>,
    mut rx: mpsc::Receiver<Flight>,
    tx: mpsc::Sender<Flight>,
    budget: Budget,
) -> Result<(), PipelineError> {
    let mut seen = ChainSeen::new(&chain);
    while let Some(mut flight) = rx.blocking_recv() {
        if let Some(r) = &reloads {
            while let Ok(new) = r.try_recv() {
                chain.swap(new);
            }
        }
        let batch = &mut flight.batch;
        let processed = chain.process(std::mem::take(&mut batch.events));
        seen.record(&chain);
        batch.events = processed?;
        batch.recount();
        budget.resize(&mut flight.permit, flight.batch.bytes);
        if tx.blocking_send(flight).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// What the transform stage last reported of each transform, to record the differences after
/// each batch (`sluice_events_dropped_total`, `…_dead_lettered_total`,
/// `sluice_transform_errors_total`, `sluice_transform_seconds`, `sluice_transform_generation`).
struct ChainSeen(Vec<(crate::transform::Stats, u64)>);

impl ChainSeen {
    fn new(chain: &Chain) -> Self {
        for (name, _) in chain.generations() {
            telemetry::transform_loaded(name);
        }
        ChainSeen(
            chain
                .stats()
                .zip(chain.generations())
                .map(|((_, s), (_, g))| (s, g))
                .collect(),
        )
    }

    fn record(&mut self, chain: &Chain) {
        if !telemetry::enabled() {
            return;
        }
        for (((name, now), (_, generation)), (was, was_generation)) in chain
            .stats()
            .zip(chain.generations())
            .zip(self.0.iter_mut())
        {
            // Only batches the transform saw: one that selected no event is not a sample.
            if now.calls != was.calls || now.errors != was.errors {
                let counts = telemetry::TransformCounts {
                    dropped: (now.dropped + now.skipped).saturating_sub(was.dropped + was.skipped),
                    dead_lettered: now.dead_lettered.saturating_sub(was.dead_lettered),
                    errors: now.errors.saturating_sub(was.errors),
                };
                let secs = now.busy_ns.saturating_sub(was.busy_ns) as f64 / 1e9;
                telemetry::transform_batch(name, counts, secs);
            }
            if generation > *was_generation {
                telemetry::transform_swapped(name, generation - *was_generation);
            }
            *was = now;
            *was_generation = generation;
        }
    }
}

/// Publishes each batch and hands its acknowledgement to the checkpointer, in order.
pub(super) async fn publish(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Flight>,
    acks: mpsc::Sender<Acked>,
) -> Result<(), PipelineError> {
    while let Some(Flight { batch, permit }) = rx.recv().await {
        let ack = if batch.events.is_empty() {
            Ack::done()
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

/// Where the checkpointer saves: the position file and the snapshot's progress file.
#[derive(Debug, Clone)]
pub(super) struct Stores {
    pub(super) position: PositionStore,
    pub(super) snapshot: SnapshotStore,
    /// The topics transforms routed to (exactly-once recovery reads them back).
    pub(super) topics: TopicStore,
}

impl Stores {
    fn save(&self, cp: &Checkpoint) -> Result<(), StateError> {
        match cp {
            Checkpoint::Binlog(p) => self.position.save(p),
            Checkpoint::Snapshot { state, position } => {
                // An epoch's start: the progress file first, then the position file. A crash
                // between the two leaves a `running` file (nothing delivered at a first epoch,
                // so a restart starts afresh; at a resumed epoch the catch-up already moved
                // the position file to the point). The other order could leave an old
                // `complete` file beside a position past a gap that no snapshot covers.
                self.snapshot.save(state)?;
                match position {
                    Some(p) => self.position.save(p),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Merges checkpoint `next` into the one `pending` (not saved yet): a later checkpoint of the
/// same kind supersedes it, keeping an epoch's position that it does not repeat. Of another
/// kind, `pending` is saved first, so the files never get ahead of each other.
fn merge(
    stores: &Stores,
    pending: &mut Option<Checkpoint>,
    next: Checkpoint,
) -> Result<(), StateError> {
    let next = match (pending.take(), next) {
        (
            Some(Checkpoint::Snapshot {
                position: Some(p), ..
            }),
            Checkpoint::Snapshot {
                state,
                position: None,
            },
        ) => Checkpoint::Snapshot {
            state,
            position: Some(p),
        },
        (Some(old), next) if std::mem::discriminant(&old) != std::mem::discriminant(&next) => {
            stores.save(&old)?;
            next
        }
        (_, next) => next,
    };
    *pending = Some(next);
    Ok(())
}

/// Moves the exactly-once watermark to an acknowledged checkpoint: to a streamed position
/// while streaming, and to the snapshot's point once the snapshot is complete. While a snapshot
/// runs (the watermark is unset), a resumed snapshot's catch-up positions do not set it: a
/// recovery from Kafka must not take a snapshot in progress for a finished one.
fn advance(w: &Watermark, cp: &Checkpoint) {
    match cp {
        Checkpoint::Binlog(p) if w.is_set() => w.set(p),
        Checkpoint::Snapshot { state, .. } if state.status == SnapshotStatus::Complete => {
            w.set(&state.point.position())
        }
        _ => {}
    }
}

/// Logs what a final save made durable.
fn describe(cp: &Checkpoint) -> String {
    match cp {
        Checkpoint::Binlog(p) => p.to_string(),
        Checkpoint::Snapshot { state, .. } => {
            format!("snapshot {} at {} rows", state.id, state.rows())
        }
    }
}

/// Awaits the acknowledgements in order and saves the last checkpoint they make durable, at
/// most once per `interval` (and when idle, and at the end). Once `give_up` turns true (a stop
/// that waited too long), saves what was acknowledged and ends.
pub(super) async fn checkpoint(
    stores: Stores,
    mut rx: mpsc::Receiver<Acked>,
    interval: Duration,
    mut give_up: watch::Receiver<bool>,
    watermark: Option<Watermark>,
) -> Result<(), PipelineError> {
    let mut pending: Option<Checkpoint> = None;
    let mut last_save = Instant::now();
    loop {
        let item = if pending.is_some() {
            match tokio::time::timeout(interval.saturating_sub(last_save.elapsed()), rx.recv())
                .await
            {
                Ok(item) => item,
                Err(_) => {
                    // Idle or slow: write what is acknowledged now.
                    if let Some(p) = pending.take() {
                        stores.save(&p)?;
                    }
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
                    stores.save(&p)?;
                    tracing::info!(saved = %describe(&p), "saved the last acknowledged position");
                }
                tracing::warn!(batches = unacked, "stopping with batches Kafka has not acknowledged; a restart publishes them again");
                return Ok(());
            }
        };
        drop(permit);
        if let Err(e) = acked {
            // Save what was acknowledged before the failure, then fail.
            if let Some(p) = pending.take() {
                stores.save(&p)?;
            }
            return Err(e.into());
        }
        telemetry::batch_acked(match &checkpoint {
            Some(Checkpoint::Binlog(p)) => Some(p),
            _ => None,
        });
        if let Some(cp) = checkpoint {
            // The moment the sink confirmed a transaction (the latency bench joins it to the
            // commit time the load generator wrote in each row; operators can follow it too).
            if let Checkpoint::Binlog(p) = &cp {
                tracing::debug!(target: "sluice::acked", file = %p.file, pos = p.pos, "acknowledged");
            }
            if let Some(w) = &watermark {
                advance(w, &cp);
            }
            // A snapshot epoch's start is saved at once: once its rows reach Kafka, a restart
            // must find the snapshot they belong to (exactly-once resumes it after the last row
            // Kafka holds, even before any acknowledgement was saved).
            let epoch_start = matches!(
                &cp,
                Checkpoint::Snapshot {
                    position: Some(_),
                    ..
                }
            );
            merge(&stores, &mut pending, cp)?;
            if epoch_start {
                if let Some(p) = pending.take() {
                    stores.save(&p)?;
                    last_save = Instant::now();
                }
            }
        }
        if last_save.elapsed() >= interval {
            if let Some(p) = pending.take() {
                stores.save(&p)?;
                last_save = Instant::now();
            }
        }
    }
    if let Some(p) = pending {
        stores.save(&p)?;
        tracing::info!(saved = %describe(&p), "saved the final position");
    }
    Ok(())
}
