//! How Sluice treats librdkafka's errors: which a restart can heal and which it cannot.
//!
//! Design note: a retry cannot fix an event over `message.max.bytes`, an invalid topic name or
//! a missing ACL, so those stop Sluice with the setting to change instead of republishing the
//! same events forever ([`Class::Permanent`], [`Class::TooLarge`]); everything else is
//! transient and the supervisor resumes from the last acknowledged position.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message, OwnedMessage};

use crate::sink::SinkError;

/// How Sluice treats a librdkafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The event is over a size limit: stop, or dead-letter it when the user chose that.
    TooLarge,
    /// A retry cannot fix it; the text names what to change.
    Permanent(&'static str),
    /// Transient (broker down, leader moving, timeouts, a fenced or unknown producer id): the
    /// supervisor rebuilds the producer and resumes from the last acknowledged position.
    Retryable,
}

/// Sorts librdkafka's error codes into permanent and retryable ones.
pub(crate) fn classify(code: RDKafkaErrorCode) -> Class {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize => Class::TooLarge,
        C::InvalidTopic => Class::Permanent(
            "The topic name is not valid for Kafka (check `output`/kafka.topic, the dead-letter \
             topics, and the topics a transform routes to): use letters, digits, '.', '_' and '-', \
             at most 249 characters",
        ),
        C::TopicAuthorizationFailed => Class::Permanent(
            "Grant the Sluice principal WRITE (and DESCRIBE) on the topic in the cluster's ACLs",
        ),
        C::ClusterAuthorizationFailed => Class::Permanent(
            "Grant the Sluice principal IDEMPOTENT_WRITE on the cluster in the cluster's ACLs \
             (Sluice's producer is idempotent)",
        ),
        C::TransactionalIdAuthorizationFailed => Class::Permanent(
            "Grant the Sluice principal WRITE on its transactional id in the cluster's ACLs",
        ),
        C::SaslAuthenticationFailed | C::Authentication => Class::Permanent(
            "Check sasl.username, sasl.password and sasl.mechanism in [kafka.producer]",
        ),
        C::UnsupportedSASLMechanism | C::IllegalSASLState => {
            Class::Permanent("Set sasl.mechanism in [kafka.producer] to one the broker enables")
        }
        C::SecurityDisabled => Class::Permanent(
            "The broker has security disabled: remove the sasl.*/ssl.* settings or use the \
             broker's secured listener",
        ),
        // InvalidMessage is CORRUPT_MESSAGE (a CRC failure on the way): the protocol says to
        // retry it, so it stays retryable.
        C::InvalidRecord | C::InvalidTimestamp => Class::Permanent(
            "The broker refused the record itself (a topic's validation policy, a timestamp \
             outside message.timestamp.difference.max.ms, or a schema check); see the broker's log",
        ),
        C::PolicyViolation => {
            Class::Permanent("The broker's policy refused the request; see the broker's log")
        }
        C::InvalidRequiredAcks | C::InvalidConfig | C::InvalidArgument => {
            Class::Permanent("A [kafka.producer] setting is not valid for this broker")
        }
        C::UnsupportedForMessageFormat | C::UnsupportedCompressionType | C::UnsupportedVersion => {
            Class::Permanent(
                "The broker does not support this request: check compression.type and the \
                 broker's version in [kafka.producer]",
            )
        }
        _ => Class::Retryable,
    }
}

/// Whether `e` carries a code that no retry can fix.
pub(crate) fn is_permanent(e: &KafkaError) -> bool {
    e.rdkafka_error_code()
        .is_some_and(|c| matches!(classify(c), Class::Permanent(_)))
}

/// The error for `code` on an event for `topic`.
pub(super) fn refusal(
    code: RDKafkaErrorCode,
    err: KafkaError,
    topic: &str,
    bytes: usize,
    position: String,
    enqueue: bool,
) -> SinkError {
    match classify(code) {
        Class::TooLarge => SinkError::TooLarge {
            topic: topic.to_owned(),
            bytes,
            position,
            code,
        },
        Class::Permanent(hint) => SinkError::Rejected {
            topic: topic.to_owned(),
            code,
            hint,
        },
        Class::Retryable if enqueue => SinkError::Enqueue(err),
        Class::Retryable => SinkError::Delivery(err),
    }
}
/// Turns a failed delivery report into the sink's error (a too-large event is permanent).
pub(super) fn delivery_error(e: KafkaError, msg: &OwnedMessage) -> SinkError {
    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown);
    let position = msg
        .headers()
        .map(|h| {
            let get = |k: &str| {
                h.iter()
                    .find(|x| x.key == k)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            format!("{}:{}", get("sluice.file"), get("sluice.pos"))
        })
        .unwrap_or_default();
    let bytes = msg.payload().map_or(0, <[u8]>::len);
    refusal(code, e, msg.topic(), bytes, position, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified() {
        use RDKafkaErrorCode as C;
        for c in [
            C::MessageSizeTooLarge,
            C::MessageBatchTooLarge,
            C::InvalidMessageSize,
        ] {
            assert_eq!(classify(c), Class::TooLarge, "{c:?}");
        }
        for c in [
            C::InvalidTopic,
            C::TopicAuthorizationFailed,
            C::ClusterAuthorizationFailed,
            C::SaslAuthenticationFailed,
            C::Authentication,
            C::InvalidRecord,
            C::PolicyViolation,
        ] {
            assert!(matches!(classify(c), Class::Permanent(_)), "{c:?}");
        }
        for c in [
            C::QueueFull,
            C::MessageTimedOut,
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::NotLeaderForPartition,
            C::LeaderNotAvailable,
            C::RequestTimedOut,
            C::UnknownProducerId,
            C::InvalidMessage,
            C::OutOfOrderSequenceNumber,
            C::Fatal,
            C::UnknownTopicOrPartition,
            C::NotEnoughReplicas,
        ] {
            assert_eq!(classify(c), Class::Retryable, "{c:?}");
        }
        let e = refusal(
            C::MessageSizeTooLarge,
            KafkaError::MessageProduction(C::MessageSizeTooLarge),
            "cdc",
            3_000_000,
            "binlog.000001:4".into(),
            true,
        );
        assert!(e.is_permanent());
        assert!(e.to_string().contains("message.max.bytes"), "{e}");
        let e = SinkError::Delivery(KafkaError::MessageProduction(C::MessageTimedOut));
        assert!(!e.is_permanent());
        let e = SinkError::Enqueue(KafkaError::MessageProduction(C::TopicAuthorizationFailed));
        assert!(e.is_permanent());
    }
}
