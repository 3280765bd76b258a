//! The Kafka sink: an idempotent rdkafka producer that publishes the contract's JSON.
//!
//! Design note: `enable.idempotence=true` and `acks=all` give no retry duplicates and per-partition
//! order. While the broker is slow or down, librdkafka's queue fills and `publish` waits, so the
//! pipeline blocks (backpressure) rather than dropping events. A delivery that is not confirmed
//! within `message.timeout.ms` (60 s by default) fails; the pipeline then rebuilds the producer
//! and resumes from the last acknowledged position, so nothing is lost. This also covers a
//! broker that lost its state: librdkafka would otherwise retry `UNKNOWN_PRODUCER_ID` forever
//! (seen against tansu, whose memory storage forgets producer ids on restart).
//!
//! Every message carries its source position in headers (`sluice.file`, `sluice.pos`,
//! `sluice.row`, and `sluice.gtid` where there is one), which is what exactly-once recovery reads.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::Ack;
use crate::config::KafkaConfig;
use crate::encode::{encode_key, encode_value, KeyMode};
use crate::event::ChangeEvent;

/// Errors of the sinks.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create the Kafka producer: {0}. Check KAFKA_BROKERS and the [kafka.producer] settings")]
    Create(KafkaError),
    #[error("Kafka did not accept an event: {0}")]
    Enqueue(KafkaError),
    #[error("Kafka delivery failed: {0}; Sluice will resume from the last acknowledged position")]
    Delivery(KafkaError),
    #[error("the Kafka producer went away before confirming delivery")]
    ProducerGone,
    #[error("Kafka flush failed: {0}")]
    Flush(KafkaError),
    #[error("writing to stdout failed: {0}")]
    Stdout(std::io::Error),
}

pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    key: KeyMode,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

/// The producer settings Sluice relies on; `[kafka.producer]` entries override them.
pub fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("queue.buffering.max.kbytes", "65536")
        .set("client.id", "sluice");
    for (k, v) in &cfg.producer {
        c.set(k, v);
    }
    c
}

impl KafkaSink {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, SinkError> {
        let producer: FutureProducer = producer_config(cfg).create().map_err(SinkError::Create)?;
        Ok(KafkaSink {
            producer,
            topic: cfg.topic.clone(),
            key: cfg.key,
            key_buf: Vec::with_capacity(256),
            value_buf: Vec::with_capacity(4096),
        })
    }

    pub async fn publish(&mut self, events: &[ChangeEvent]) -> Result<Ack, SinkError> {
        let mut acks = Vec::with_capacity(events.len());
        for ev in events {
            self.key_buf.clear();
            self.value_buf.clear();
            let route = ev.route.as_deref();
            match route.and_then(|r| r.key.as_ref()) {
                Some(k) => self.key_buf.extend_from_slice(k),
                None => encode_key(ev, self.key, &mut self.key_buf),
            }
            match route.and_then(|r| r.payload.as_ref()) {
                Some(p) => self.value_buf.extend_from_slice(p),
                None => encode_value(ev, &mut self.value_buf),
            }
            let topic = route
                .and_then(|r| r.topic.as_deref())
                .unwrap_or(&self.topic);
            let pos = ev.position.pos.to_string();
            let row = ev.position.row.to_string();
            let mut headers = OwnedHeaders::new_with_capacity(4)
                .insert(Header {
                    key: "sluice.file",
                    value: Some(ev.position.file.as_bytes()),
                })
                .insert(Header {
                    key: "sluice.pos",
                    value: Some(pos.as_bytes()),
                })
                .insert(Header {
                    key: "sluice.row",
                    value: Some(row.as_bytes()),
                });
            if let Some(g) = &ev.position.gtid {
                headers = headers.insert(Header {
                    key: "sluice.gtid",
                    value: Some(g.as_bytes()),
                });
            }
            for (k, v) in route.map(|r| r.headers.as_slice()).unwrap_or_default() {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut record = FutureRecord::to(topic)
                .key(&self.key_buf[..])
                .payload(&self.value_buf[..])
                .headers(headers);
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        acks.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // The local queue is full because the broker is slow or down: wait.
                        record = r;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => return Err(SinkError::Enqueue(e)),
                }
            }
        }
        Ok(Ack::Kafka(acks))
    }

    pub async fn flush(&mut self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|_| SinkError::ProducerGone)?
            .map_err(SinkError::Flush)
    }
}

/// Creates the topic when the cluster does not have it yet (clusters that auto-create topics
/// need nothing; clusters that forbid it need the topic made by an operator).
pub async fn ensure_topic(cfg: &KafkaConfig, partitions: i32) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()?;
    let topic = NewTopic::new(&cfg.topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics([&topic], &opts).await?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = %cfg.topic, "created the Kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(KafkaError::AdminOp(code))
                    .inspect_err(|_| tracing::warn!(topic = %t, "topic creation failed"))
            }
        }
    }
    Ok(())
}
