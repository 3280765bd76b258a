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
use crate::event::Batch;
use crate::sink::{Ack, Sink};
use crate::state::{BinlogPosition, PositionStore};
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
pub(super) type Acked = (Ack, Option<BinlogPosition>, OwnedSemaphorePermit);

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
        if tx.send(Flight { batch, permit }).await.is_err() {
            return;
        }
    }
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

/// Awaits the acknowledgements in order and saves the last position they make durable, at
/// most once per `interval` (and when idle, and at the end). Once `give_up` turns true (a stop
/// that waited too long), saves what was acknowledged and ends.
pub(super) async fn checkpoint(
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
