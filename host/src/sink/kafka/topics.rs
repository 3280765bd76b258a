//! Topic administration and the broker probes of `sluice check`.
//!
//! Design note: every topic Sluice publishes to is checked before its first event: the
//! cluster's metadata is read with the admin client ([`super::client::admin`], which has the
//! producer's security settings) and the topic is created, with one partition, only when it is
//! missing. A metadata request never creates a topic by itself. An authorization failure or an
//! invalid name is permanent; a broker that does not answer is [`SinkError::Unreachable`],
//! with librdkafka's last client error as the reason.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::client::{self, client_config, Context, Role};
use super::errors::{classify, delivery_error, Class};
use crate::config::KafkaConfig;
use crate::sink::SinkError;

/// Fetches the cluster's metadata for `topic` (blocking; call off the async threads). A
/// transport failure becomes [`SinkError::Unreachable`] with librdkafka's last reported reason.
fn topic_metadata(
    client: &rdkafka::client::Client<Context>,
    context: &Context,
    cfg: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Option<RDKafkaErrorCode>, SinkError> {
    match client.fetch_metadata(Some(topic), timeout) {
        Ok(md) => {
            let t = md.topics().iter().find(|t| t.name() == topic);
            Ok(match t.and_then(|t| t.error()) {
                None if t.is_some_and(|t| !t.partitions().is_empty()) => None,
                None => Some(RDKafkaErrorCode::UnknownTopicOrPartition),
                Some(e) => Some(RDKafkaErrorCode::from(e)),
            })
        }
        Err(e) => {
            let last = context.last_error();
            if let Some((Some(code), reason)) = &last {
                if let Class::Permanent(hint) = classify(*code) {
                    let _ = reason;
                    return Err(SinkError::Rejected {
                        topic: topic.to_owned(),
                        code: *code,
                        hint,
                    });
                }
            }
            Err(SinkError::Unreachable {
                brokers: cfg.brokers.clone(),
                timeout,
                detail: match last {
                    Some((_, reason)) => format!("{e} (last client error: {reason})"),
                    None => e.to_string(),
                },
            })
        }
    }
}

/// Makes sure `topic` exists: reads the cluster's metadata first (with the producer's security
/// settings) and creates the topic with `kafka.partitions` and `kafka.replication_factor` only
/// when it is missing. An authorization failure or an invalid name is permanent
/// ([`SinkError::is_permanent`]); an unreachable broker is reported within `timeout`.
pub(crate) async fn ensure_topic(
    cfg: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<(), SinkError> {
    let partitions = cfg.partitions;
    let (admin, context) = client::admin(cfg)?;
    let admin = Arc::new(admin);
    let (a, c, k, t) = (admin.clone(), context, cfg.clone(), topic.to_owned());
    let state = tokio::task::spawn_blocking(move || topic_metadata(a.inner(), &c, &k, &t, timeout))
        .await
        .map_err(|_| SinkError::ProducerGone)??;
    match state {
        None => return Ok(()),
        Some(
            code @ (RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic),
        ) => {
            tracing::debug!(topic, %code, "the topic does not exist yet");
        }
        Some(code) => {
            if let Class::Permanent(hint) = classify(code) {
                return Err(SinkError::Rejected {
                    topic: topic.to_owned(),
                    code,
                    hint,
                });
            }
            tracing::debug!(topic, %code, "topic metadata error; trying to create it");
        }
    }
    let new = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(cfg.replication_factor),
    );
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|source| SinkError::Topic {
            topic: topic.to_owned(),
            source,
        })?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, "created the Kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, RDKafkaErrorCode::TopicAuthorizationFailed))
            | Err((_, RDKafkaErrorCode::ClusterAuthorizationFailed)) => {
                return Err(SinkError::Rejected {
                    topic: topic.to_owned(),
                    code: RDKafkaErrorCode::TopicAuthorizationFailed,
                    hint: "Sluice may not create the topic: create it yourself (one partition keeps \
                           the events of a table in order), or grant the Sluice principal CREATE on \
                           the topic or the cluster",
                })
            }
            Err((_, code)) => {
                return Err(SinkError::Topic {
                    topic: topic.to_owned(),
                    source: KafkaError::AdminOp(code),
                })
            }
        }
    }
    Ok(())
}

/// Asks the broker whether it would create `topic` (a validate-only request), for
/// `sluice check --no-produce`.
pub(crate) async fn validate_topic_creation(
    cfg: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<(), SinkError> {
    let (admin, _) = client::admin(cfg)?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let opts = AdminOptions::new()
        .validate_only(true)
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let err = |source| SinkError::Topic {
        topic: topic.to_owned(),
        source,
    };
    for r in admin.create_topics([&new], &opts).await.map_err(err)? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(err(KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}

/// What `sluice check` learned about the broker and the topic.
pub(crate) struct Probe {
    /// The number of brokers in the cluster's metadata.
    pub brokers: usize,
    /// `None` when the topic exists; otherwise the metadata error for it.
    pub topic_error: Option<RDKafkaErrorCode>,
}

/// Reads the cluster's metadata for the configured topic (`sluice check`).
pub(crate) async fn probe(cfg: &KafkaConfig, timeout: Duration) -> Result<Probe, SinkError> {
    let (admin, context) = client::admin(cfg)?;
    let k = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let topic_error = topic_metadata(admin.inner(), &context, &k, &k.topic, timeout)?;
        let brokers = admin
            .inner()
            .fetch_metadata(Some(&k.topic), timeout)
            .map(|m| m.brokers().len())
            .unwrap_or(0);
        Ok(Probe {
            brokers,
            topic_error,
        })
    })
    .await
    .map_err(|_| SinkError::ProducerGone)?
}

/// Produces one test record to the configured topic and waits for its acknowledgement
/// (`sluice check`): key `sluice.check`, no value, header `sluice.check`.
pub(crate) async fn produce_test_record(
    cfg: &KafkaConfig,
    timeout: Duration,
) -> Result<(), SinkError> {
    let mut pc = client_config(cfg, Role::Producer);
    pc.set("message.timeout.ms", timeout.as_millis().to_string());
    let (producer, _): (FutureProducer<Context>, _) = client::create(&pc)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&cfg.topic)
        .key("sluice.check")
        .headers(OwnedHeaders::new().insert(Header {
            key: "sluice.check",
            value: Some(now.as_bytes()),
        }));
    let f = producer
        .send_result(record)
        .map_err(|(e, _)| SinkError::Enqueue(e))?;
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, msg))) => Err(delivery_error(e, &msg)),
        Err(_) => Err(SinkError::ProducerGone),
    }
}
