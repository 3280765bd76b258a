//! Sinks: where encoded change events go, behind one small interface.
//!
//! Design note: a sink takes a batch, starts publishing it, and hands back an [`Ack`] that
//! resolves once every event of the batch is durable (Kafka acknowledged it, or stdout was
//! flushed). The pipeline's checkpointer awaits acks in order and only then advances the saved
//! position. An [`Ack`] is sink-neutral: a boxed future that each sink builds from its own
//! delivery reports, so the pipeline never sees a sink's types. The set of sinks is closed
//! (Kafka, stdout), so dispatch is an enum, not a trait object; a new sink is a new module and
//! a new variant. Every sink reports a [`SinkError`], whose [`SinkError::is_permanent`] tells
//! the supervisor whether a restart can help.

pub(crate) mod kafka;
pub(crate) mod stdout;

use std::future::Future;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::event::ChangeEvent;

pub(crate) use kafka::KafkaSink;
pub(crate) use stdout::StdoutSink;

/// Errors of the sinks. [`SinkError::is_permanent`] tells the supervisor whether a restart from
/// the last acknowledged position can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create the Kafka client: {0}. Check KAFKA_BROKERS and the [kafka.producer] settings")]
    Create(KafkaError),
    #[error("Kafka did not accept an event: {0}")]
    Enqueue(KafkaError),
    #[error("Kafka delivery failed: {0}; Sluice will resume from the last acknowledged position")]
    Delivery(KafkaError),
    #[error(
        "an event of {bytes} bytes for topic {topic:?} (source position {position}) is too large for \
         Kafka: {code}. Raise `message.max.bytes` in [kafka.producer] (librdkafka's default is \
         1000000) and the broker's `message.max.bytes` / the topic's `max.message.bytes` to match, \
         or set kafka.on_oversize = \"dead_letter\" with kafka.dead_letter_topic to divert such \
         events. The position was not advanced past it"
    )]
    TooLarge {
        topic: String,
        bytes: usize,
        position: String,
        code: RDKafkaErrorCode,
    },
    #[error("Kafka refused the events for topic {topic:?} permanently: {code}. {hint}")]
    Rejected {
        topic: String,
        code: RDKafkaErrorCode,
        hint: &'static str,
    },
    #[error(
        "cannot reach the Kafka broker(s) {brokers} within {timeout:?}: {detail}. Check KAFKA_BROKERS \
         (or kafka.brokers), that the broker is running and reachable from here, and the security \
         settings in [kafka.producer]"
    )]
    Unreachable {
        brokers: String,
        timeout: Duration,
        detail: String,
    },
    #[error("cannot prepare the Kafka topic {topic:?}: {source}")]
    Topic { topic: String, source: KafkaError },
    #[error("the Kafka producer went away before confirming delivery")]
    ProducerGone,
    #[error("Kafka flush failed: {0}")]
    Flush(KafkaError),
    #[error("writing to stdout failed: {0}")]
    Stdout(std::io::Error),
    #[error(
        "exactly-once recovery cannot read back what topic {topic:?} holds (partition \
         {partition}): {detail}"
    )]
    ReadBack {
        topic: String,
        /// -1 when the topic as a whole failed (its metadata).
        partition: i32,
        detail: String,
        permanent: bool,
    },
    #[error("cannot record a routed topic in the state directory: {0}")]
    State(String),
    #[error(
        "the Kafka transaction could not {step}: {source}. Transactions (transactional.id in \
         [kafka.producer]) need a broker that supports them and, on a secured cluster, WRITE on \
         the transactional id; remove transactional.id to publish without them"
    )]
    Transaction {
        step: &'static str,
        source: KafkaError,
    },
}

impl SinkError {
    /// Whether a restart cannot fix it: the same events would fail the same way.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            SinkError::Create(_)
            | SinkError::Stdout(_)
            | SinkError::TooLarge { .. }
            | SinkError::Rejected { .. }
            | SinkError::State(_) => true,
            SinkError::ReadBack { permanent, .. } => *permanent,
            // Unreachable is permanent at start-up only; the pipeline decides (see `preflight`).
            SinkError::Unreachable { .. } => false,
            SinkError::Topic { source: e, .. }
            | SinkError::Enqueue(e)
            | SinkError::Delivery(e)
            | SinkError::Flush(e)
            | SinkError::Transaction { source: e, .. } => kafka::is_permanent(e),
            SinkError::ProducerGone => false,
        }
    }
}

/// Completion of one published batch: resolves once every event of it is durable, or says why
/// it is not. Sink-neutral: each sink builds it from its own delivery reports.
#[must_use = "an Ack must be awaited before the batch's position may be saved"]
pub(crate) struct Ack(Option<BoxFuture<'static, Result<(), SinkError>>>);

impl Ack {
    /// A batch that is durable already (written and flushed, or empty).
    pub(crate) fn done() -> Ack {
        Ack(None)
    }

    /// A batch that is durable once `delivered` resolves to `Ok`.
    pub(crate) fn when(
        delivered: impl Future<Output = Result<(), SinkError>> + Send + 'static,
    ) -> Ack {
        Ack(Some(Box::pin(delivered)))
    }

    /// Waits until the batch is durable, or reports why it is not.
    pub(crate) async fn wait(self) -> Result<(), SinkError> {
        match self.0 {
            None => Ok(()),
            Some(delivered) => delivered.await,
        }
    }
}

/// The configured sink.
pub(crate) enum Sink {
    /// Boxed: far larger than the stdout sink, and made once per life of the stages.
    Kafka(Box<KafkaSink>),
    Stdout(StdoutSink),
}

impl Sink {
    /// Starts publishing `events` in order. Returns when they are queued (which blocks while the
    /// destination is slow or down: that is the pipeline's backpressure).
    pub(crate) async fn publish(&mut self, events: &[ChangeEvent]) -> Result<Ack, SinkError> {
        match self {
            Sink::Kafka(k) => k.publish(events).await,
            Sink::Stdout(s) => s.publish(events).await,
        }
    }

    /// Makes a publish that waits on a full queue give up once `stop` turns true.
    pub(crate) fn stop_waiting_on(&mut self, stop: tokio::sync::watch::Receiver<bool>) {
        if let Sink::Kafka(k) = self {
            k.stop_waiting_on(stop);
        }
    }

    /// The acknowledged position the checkpointer moves, when the sink is in exactly-once mode.
    pub(crate) fn watermark(&self) -> Option<kafka::Watermark> {
        match self {
            Sink::Kafka(k) => k.watermark(),
            Sink::Stdout(_) => None,
        }
    }

    /// Waits for everything queued to be delivered.
    pub(crate) async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.flush().await,
            Sink::Stdout(s) => s.flush().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ack_resolves_to_what_its_sink_reports() {
        assert!(Ack::done().wait().await.is_ok());
        assert!(Ack::when(async { Ok(()) }).wait().await.is_ok());
        let failed = Ack::when(async { Err(SinkError::ProducerGone) })
            .wait()
            .await;
        assert!(matches!(failed, Err(SinkError::ProducerGone)));
    }
}
