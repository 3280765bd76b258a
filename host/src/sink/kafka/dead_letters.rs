//! Oversized events to a dead-letter topic, and the wait for a batch's delivery reports.
//!
//! Design note: under `kafka.on_oversize = "dead_letter"` an event Kafka refuses as too large
//! (when it is queued, or later in its delivery report, when the broker's limit is below the
//! producer's) is replaced by a small record on `kafka.dead_letter_topic`: its key, its headers
//! and what went wrong, no value. The record goes through the sink's own producer, so it has
//! the same client configuration ([`super::client`]). A batch's [`Ack`](crate::sink::Ack) is
//! [`delivered`]: every delivery report positive, or diverted to the dead letters.

use std::sync::Arc;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};

use super::delivery::{enqueue, Producer, Record, Tally};
use super::errors::{classify, delivery_error, Class};
use crate::sink::SinkError;

/// Where oversized events go under `kafka.on_oversize = "dead_letter"`.
#[derive(Clone)]
pub(super) struct DeadLetters {
    producer: Producer,
    topic: String,
    /// Exactly-once mode: the dead-letter topic's partitions as read back at start, so that a
    /// replay does not divert an event again.
    held: Option<Arc<Held>>,
}

/// The dead-letter topic at start, in exactly-once mode.
pub(super) struct Held {
    /// Its partition count (Sluice names the partition of every dead letter).
    pub(super) partitions: i32,
    /// Each partition's last identity.
    pub(super) marks: std::collections::HashMap<i32, super::exactly_once::Mark>,
}

impl DeadLetters {
    /// Dead letters to `topic`, through the sink's `producer`.
    pub(super) fn new(producer: Producer, topic: String) -> Self {
        DeadLetters {
            producer,
            topic,
            held: None,
        }
    }

    /// The dead-letter topic's name.
    pub(super) fn topic(&self) -> &str {
        &self.topic
    }

    /// Exactly-once mode: what the dead-letter topic's partitions held at start.
    pub(super) fn holding(&mut self, held: Held) {
        self.held = Some(Arc::new(held));
    }

    /// Publishes a small record in place of an oversized event: its key, its headers plus
    /// `sluice.error`, `sluice.original.topic` and `sluice.original.bytes`, and no value.
    pub(super) async fn divert(
        &self,
        key: Option<&[u8]>,
        headers: Option<&OwnedHeaders>,
        topic: &str,
        bytes: usize,
        error: &str,
    ) -> Result<(), SinkError> {
        let size = bytes.to_string();
        let mut h = OwnedHeaders::new_with_capacity(8);
        if let Some(orig) = headers {
            for i in 0..orig.count() {
                let o = orig.get(i);
                h = h.insert(Header {
                    key: o.key,
                    value: o.value,
                });
            }
        }
        h = h
            .insert(Header {
                key: "sluice.error",
                value: Some(error.as_bytes()),
            })
            .insert(Header {
                key: "sluice.original.topic",
                value: Some(topic.as_bytes()),
            })
            .insert(Header {
                key: "sluice.original.bytes",
                value: Some(size.as_bytes()),
            });
        // Exactly-once: placed by Sluice, and not sent again when its partition holds it.
        let mut partition = None;
        if let Some(held) = &self.held {
            let p = super::exactly_once::partition_for(key.unwrap_or_default(), held.partitions);
            let id = headers.and_then(super::exactly_once::Mark::from_headers);
            if let (Some(id), Some(mark)) = (&id, held.marks.get(&p)) {
                if id <= mark {
                    tracing::debug!(topic, "the dead-letter topic holds this event already");
                    return Ok(());
                }
            }
            partition = Some(p);
        }
        let tally = Tally::new();
        let mut record: Record<'_> =
            Record::with_opaque_to(&self.topic, tally.expect_one()).headers(h);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        // Like the main path, wait while librdkafka's queue is full (the broker is slow or down)
        // instead of failing, which would republish everything since the last save. A stop that
        // waits too long ends this wait (pipeline.shutdown_timeout_ms): the sink task is aborted, or
        // the checkpointer stops awaiting the batch's acknowledgement.
        enqueue(&self.producer, record, None)
            .await
            .map_err(|(e, _)| SinkError::Enqueue(e))?;
        tally.seal();
        match tally.wait().await.into_iter().next() {
            None => {
                tracing::warn!(topic, bytes, dead_letter_topic = %self.topic, "an event too large for Kafka went to the dead-letter topic");
                Ok(())
            }
            Some((e, _)) => Err(SinkError::Delivery(e)),
        }
    }

    /// A delivery report said the event was too large (the broker's limit is below the
    /// producer's): divert it from the message librdkafka handed back.
    async fn divert_message(
        &self,
        msg: &OwnedMessage,
        error: &KafkaError,
    ) -> Result<(), SinkError> {
        let bytes = msg.payload().map_or(0, <[u8]>::len);
        self.divert(
            msg.key(),
            msg.headers(),
            msg.topic(),
            bytes,
            &error.to_string(),
        )
        .await
    }
}

/// Waits for a batch's delivery reports: `Ok` once each is positive, or (for an event the broker
/// refused as too large, when `dead_letters` is set) once its dead letter is.
pub(super) async fn delivered(
    tally: Arc<Tally>,
    dead_letters: Option<DeadLetters>,
) -> Result<Vec<String>, SinkError> {
    // The topics of the messages diverted here (not published where they were sent).
    let mut diverted = Vec::new();
    for (e, msg) in tally.wait().await {
        let too_large = e
            .rdkafka_error_code()
            .is_some_and(|c| classify(c) == Class::TooLarge);
        match &dead_letters {
            Some(dl) if too_large => match dl.divert_message(&msg, &e).await {
                Ok(()) => diverted.push(msg.topic().to_owned()),
                // In exactly-once mode (gapless), a refusal by the broker stops the producer,
                // so the dead letter cannot be sent: a retry would meet the same refusal.
                Err(SinkError::Enqueue(f) | SinkError::Delivery(f))
                    if f.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::Fatal) =>
                {
                    return Err(SinkError::Rejected {
                        topic: msg.topic().to_owned(),
                        code: e
                            .rdkafka_error_code()
                            .unwrap_or(rdkafka::error::RDKafkaErrorCode::MessageSizeTooLarge),
                        hint: "The broker refused an event as too large, which in exactly-once \
                               mode stops the producer before the event can be dead-lettered. \
                               Set message.max.bytes in [kafka.producer] to the topic's \
                               max.message.bytes, so that Sluice catches oversized events \
                               before sending them and dead-letters them; or raise the topic's \
                               limit, or set exactly_once = false",
                    });
                }
                Err(other) => return Err(other),
            },
            _ => return Err(delivery_error(e, &msg)),
        }
    }
    Ok(diverted)
}
