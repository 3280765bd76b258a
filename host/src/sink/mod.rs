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

use kafka::{classify, delivery_error, Class, DeadLetters};
pub use stdout::StdoutSink;

/// Completion of one published batch.
pub enum Ack {
    /// Already durable.
    Done,
    /// Durable when every delivery report is positive (or, for an event the broker refused as
    /// too large, when its dead letter is, if `dead_letters` is set).
    Kafka {
        futures: Vec<rdkafka::producer::DeliveryFuture>,
        dead_letters: Option<DeadLetters>,
    },
}

impl Ack {
    /// Waits until the batch is durable, or reports why it is not.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self {
            Ack::Done => Ok(()),
            Ack::Kafka {
                futures,
                dead_letters,
            } => {
                for f in futures {
                    match f.await {
                        Ok(Ok(_)) => {}
                        Ok(Err((e, msg))) => {
                            let too_large = e
                                .rdkafka_error_code()
                                .is_some_and(|c| classify(c) == Class::TooLarge);
                            match &dead_letters {
                                Some(dl) if too_large => dl.divert_message(&msg, &e).await?,
                                _ => return Err(delivery_error(e, &msg)),
                            }
                        }
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

    /// Makes a publish that waits on a full queue give up once `stop` turns true.
    pub fn stop_waiting_on(&mut self, stop: tokio::sync::watch::Receiver<bool>) {
        if let Sink::Kafka(k) = self {
            k.stop_waiting_on(stop);
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
