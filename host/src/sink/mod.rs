//! Sinks: where encoded change events go, behind one small interface.
//!
//! Design note: a sink takes a batch, starts publishing it, and hands back an [`Ack`] that
//! resolves once every event of the batch is durable (Kafka acknowledged it, or stdout was
//! flushed). The pipeline's checkpointer awaits acks in order and only then advances the saved
//! position. The set of sinks is closed (Kafka, stdout), so dispatch is an enum, not a trait
//! object; a new sink is a new module and a new variant.

pub mod kafka;
pub mod stdout;

use crate::event::ChangeEvent;

pub use kafka::{KafkaSink, SinkError};
pub use stdout::StdoutSink;

/// Completion of one published batch.
pub enum Ack {
    /// Already durable.
    Done,
    /// Durable when every delivery report is positive.
    Kafka(Vec<rdkafka::producer::DeliveryFuture>),
}

impl Ack {
    /// Waits until the batch is durable, or reports why it is not.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self {
            Ack::Done => Ok(()),
            Ack::Kafka(futures) => {
                for f in futures {
                    match f.await {
                        Ok(Ok(_)) => {}
                        Ok(Err((e, _msg))) => return Err(SinkError::Delivery(e)),
                        Err(_) => return Err(SinkError::ProducerGone),
                    }
                }
                Ok(())
            }
        }
    }
}

/// The configured sink.
pub enum Sink {
    Kafka(KafkaSink),
    Stdout(StdoutSink),
}

impl Sink {
    /// Starts publishing `events` in order. Returns when they are queued (which blocks while the
    /// destination is slow or down: that is the pipeline's backpressure).
    pub async fn publish(&mut self, events: &[ChangeEvent]) -> Result<Ack, SinkError> {
        match self {
            Sink::Kafka(k) => k.publish(events).await,
            Sink::Stdout(s) => s.publish(events).await,
        }
    }

    /// Waits for everything queued to be delivered.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.flush().await,
            Sink::Stdout(s) => s.flush().await,
        }
    }
}
