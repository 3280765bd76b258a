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
//! Errors are classified ([`classify`]): a retry cannot fix an event over `message.max.bytes`, an
//! invalid topic name or a missing ACL, so those stop Sluice with the setting to change instead
//! of republishing the same events forever. An oversized event can instead go to a dead-letter
//! topic (`kafka.on_oversize = "dead_letter"`).
//!
//! The admin and metadata clients get the producer's connection and security settings
//! ([`client_config`]), so SASL/SSL clusters work for topic creation and checks as well.
//!
//! Every message carries its source position in headers (`sluice.file`, `sluice.pos`,
//! `sluice.row`, and `sluice.gtid` where there is one), which is what exactly-once recovery reads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

use super::Ack;
use crate::config::{KafkaConfig, OversizePolicy};
use crate::encode::{encode_key, encode_value, KeyMode};
use crate::event::{ChangeEvent, Kind};

/// How long start-up and `sluice check` wait for the broker before saying it cannot be reached.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

impl SinkError {
    /// Whether a restart cannot fix it: the same events would fail the same way.
    pub fn is_permanent(&self) -> bool {
        match self {
            SinkError::Create(_)
            | SinkError::Stdout(_)
            | SinkError::TooLarge { .. }
            | SinkError::Rejected { .. } => true,
            // Unreachable is permanent at start-up only; the pipeline decides (see `preflight`).
            SinkError::Unreachable { .. } => false,
            SinkError::Topic { source, .. } => source
                .rdkafka_error_code()
                .is_some_and(|c| matches!(classify(c), Class::Permanent(_))),
            SinkError::Enqueue(e) | SinkError::Delivery(e) | SinkError::Flush(e) => e
                .rdkafka_error_code()
                .is_some_and(|c| matches!(classify(c), Class::Permanent(_))),
            SinkError::ProducerGone => false,
        }
    }
}

/// How Sluice treats a librdkafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The event is over a size limit: stop, or dead-letter it when the user chose that.
    TooLarge,
    /// A retry cannot fix it; the text names what to change.
    Permanent(&'static str),
    /// Transient (broker down, leader moving, timeouts, a fenced or unknown producer id): the
    /// supervisor rebuilds the producer and resumes from the last acknowledged position.
    Retryable,
}

/// Sorts librdkafka's error codes into permanent and retryable ones.
pub fn classify(code: RDKafkaErrorCode) -> Class {
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

/// The error for `code` on an event for `topic`.
fn refusal(
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

/// Keys of `[kafka.producer]` that only a producer understands: left out of the admin and
/// metadata clients' config.
const PRODUCER_ONLY: &[&str] = &[
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.ms",
    "queue.buffering.backpressure.threshold",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "compression.codec",
    "compression.type",
    "compression.level",
    "batch.num.messages",
    "batch.size",
    "delivery.report.only.error",
    "sticky.partitioning.linger.ms",
    "request.required.acks",
    "acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queuing.strategy",
    "produce.offset.report",
    "partitioner",
];

/// The settings of every Kafka client Sluice makes (admin, metadata): the bootstrap servers plus
/// each `[kafka.producer]` key that is not producer-only, so `security.protocol`, `sasl.*`,
/// `ssl.*`, `client.id`, `socket.*` and the like reach the admin client too.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", "sluice");
    for (k, v) in &cfg.producer {
        if !PRODUCER_ONLY.contains(&k.as_str()) {
            c.set(k, v);
        }
    }
    // A metadata request must not create the topic as a side effect (librdkafka's producer
    // default): Sluice creates it explicitly, with one partition, and `check` only looks.
    c.set("allow.auto.create.topics", "false");
    c
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

/// A client context that remembers the last client-level error librdkafka reported (a refused
/// connection, a failed SASL handshake), so that a timeout can say why.
#[derive(Clone, Default)]
pub struct Context {
    last_error: Arc<Mutex<Option<ClientError>>>,
}

/// A client-level error: its code (when librdkafka gives one) and its reason.
type ClientError = (Option<RDKafkaErrorCode>, String);

impl Context {
    fn last_error(&self) -> Option<ClientError> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

impl rdkafka::producer::ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "Kafka client error");
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some((error.rdkafka_error_code(), reason.to_owned()));
        }
    }
}

/// Where oversized events go under `kafka.on_oversize = "dead_letter"`.
#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer<Context>,
    topic: String,
}

impl DeadLetters {
    /// Publishes a small record in place of an oversized event: its key, its headers plus
    /// `sluice.error`, `sluice.original.topic` and `sluice.original.bytes`, and no value.
    async fn divert(
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
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(h);
        if let Some(k) = key {
            record = record.key(k);
        }
        // Like the main path, wait while librdkafka's queue is full (the broker is slow or down)
        // instead of failing, which would republish everything since the last save. A stop that
        // waits too long aborts the sink task (pipeline.shutdown_timeout_ms).
        let f = loop {
            match self.producer.send_result(record) {
                Ok(f) => break f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(SinkError::Enqueue(e)),
            }
        };
        match f.await {
            Ok(Ok(_)) => {
                tracing::warn!(topic, bytes, dead_letter_topic = %self.topic, "an event too large for Kafka went to the dead-letter topic");
                Ok(())
            }
            Ok(Err((e, _))) => Err(SinkError::Delivery(e)),
            Err(_) => Err(SinkError::ProducerGone),
        }
    }

    /// A delivery report said the event was too large (the broker's limit is below the
    /// producer's): divert it from the message librdkafka handed back.
    pub(super) async fn divert_message(
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

pub struct KafkaSink {
    producer: FutureProducer<Context>,
    cfg: KafkaConfig,
    /// Topics known to exist: the configured one and those checked on first use. A transform
    /// can route to any topic; each new one is checked (and created if missing) once, so a
    /// missing topic on a cluster that forbids creation stops with the ACL to grant instead of
    /// timing out in librdkafka forever.
    known_topics: std::collections::HashSet<String>,
    topic: String,
    key: KeyMode,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    dead_letters: Option<DeadLetters>,
    stop: Option<watch::Receiver<bool>>,
}

impl KafkaSink {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, SinkError> {
        let producer: FutureProducer<Context> = producer_config(cfg)
            .create_with_context(Context::default())
            .map_err(SinkError::Create)?;
        let dead_letters = match (&cfg.on_oversize, &cfg.dead_letter_topic) {
            (OversizePolicy::DeadLetter, Some(t)) => Some(DeadLetters {
                producer: producer.clone(),
                topic: t.clone(),
            }),
            _ => None,
        };
        let mut known_topics = std::collections::HashSet::from([cfg.topic.clone()]);
        known_topics.extend(cfg.dead_letter_topic.clone());
        Ok(KafkaSink {
            producer,
            cfg: cfg.clone(),
            known_topics,
            topic: cfg.topic.clone(),
            key: cfg.key,
            key_buf: Vec::with_capacity(256),
            value_buf: Vec::with_capacity(4096),
            dead_letters,
            stop: None,
        })
    }

    /// Makes the wait on a full local queue give up once `stop` turns true (the pipeline's
    /// shutdown deadline), so a stop while Kafka is down does not hang.
    pub fn stop_waiting_on(&mut self, stop: watch::Receiver<bool>) {
        self.stop = Some(stop);
    }

    pub async fn publish(&mut self, events: &[ChangeEvent]) -> Result<Ack, SinkError> {
        let mut acks: Vec<DeliveryFuture> = Vec::with_capacity(events.len());
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
            if let Some(t) = route.and_then(|r| r.topic.as_deref()) {
                if !self.known_topics.contains(t) {
                    ensure_topic(&self.cfg, t, 1, CONNECT_TIMEOUT).await?;
                    self.known_topics.insert(t.to_owned());
                }
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
            // A table-level `truncate` in primary_key mode goes to every partition: the table's
            // rows are spread over them by key, and each partition's consumer must see it in
            // order with the rows it holds. Otherwise the partitioner places it by its key.
            let partitions: Vec<Option<i32>> = if ev.kind == Kind::Truncate
                && self.key == KeyMode::PrimaryKey
                && route.and_then(|r| r.key.as_ref()).is_none()
            {
                (0..self.partition_count(topic).await?).map(Some).collect()
            } else {
                vec![None]
            };
            for partition in partitions {
                let mut record = FutureRecord::to(topic)
                    .key(&self.key_buf[..])
                    .payload(&self.value_buf[..])
                    .headers(headers.clone());
                if let Some(p) = partition {
                    record = record.partition(p);
                }
                loop {
                    match self.producer.send_result(record) {
                        Ok(f) => {
                            acks.push(f);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            // The local queue is full because the broker is slow or down: wait, unless
                            // the pipeline's stop deadline has passed.
                            if self.stop.as_ref().is_some_and(|s| *s.borrow()) {
                                return Err(SinkError::Enqueue(KafkaError::MessageProduction(
                                    RDKafkaErrorCode::QueueFull,
                                )));
                            }
                            record = r;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err((e, r)) => {
                            let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown);
                            let bytes = self.value_buf.len() + self.key_buf.len();
                            let position = ev.position.to_string();
                            if classify(code) == Class::TooLarge {
                                if let Some(dl) = &self.dead_letters {
                                    // Earlier events of this batch must still be acknowledged in
                                    // order; the dead letter is awaited here, before them, which is
                                    // fine: it goes to another topic.
                                    let dl = dl.clone();
                                    dl.divert(
                                        Some(&self.key_buf),
                                        r.headers.as_ref(),
                                        topic,
                                        bytes,
                                        &e.to_string(),
                                    )
                                    .await?;
                                    break;
                                }
                            }
                            return Err(refusal(code, e, topic, bytes, position, true));
                        }
                    }
                }
            }
        }
        Ok(Ack::Kafka {
            futures: acks,
            dead_letters: self.dead_letters.clone(),
        })
    }

    /// The destination topic's partition count, from a fresh metadata request (off the async
    /// threads; only table-level events need it, and they are rare). Every topic Sluice
    /// publishes to was checked to exist first (`known_topics`), so a topic that is missing or
    /// answers with an error here (a leader election, say) is a retryable error: falling back to
    /// one partition would leave the other partitions' consumers with the rows.
    async fn partition_count(&self, topic: &str) -> Result<i32, SinkError> {
        let producer = self.producer.clone();
        let name = topic.to_owned();
        let md = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&name), CONNECT_TIMEOUT)
        })
        .await
        .map_err(|_| SinkError::ProducerGone)?
        .map_err(|source| SinkError::Topic {
            topic: topic.to_owned(),
            source,
        })?;
        let unavailable = |code| SinkError::Topic {
            topic: topic.to_owned(),
            source: KafkaError::MetadataFetch(code),
        };
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| unavailable(RDKafkaErrorCode::UnknownTopicOrPartition))?;
        if let Some(e) = t.error() {
            return Err(unavailable(RDKafkaErrorCode::from(e)));
        }
        match t.partitions().len() {
            0 => Err(unavailable(RDKafkaErrorCode::LeaderNotAvailable)),
            n => Ok(n as i32),
        }
    }

    pub async fn flush(&mut self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|_| SinkError::ProducerGone)?
            .map_err(SinkError::Flush)
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
/// settings) and creates the topic with `partitions` only when it is missing. An authorization
/// failure or an invalid name is permanent ([`SinkError::is_permanent`]); an unreachable broker
/// is reported within `timeout`.
pub async fn ensure_topic(
    cfg: &KafkaConfig,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), SinkError> {
    let context = Context::default();
    let admin: AdminClient<Context> = client_config(cfg)
        .create_with_context(context.clone())
        .map_err(SinkError::Create)?;
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
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
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
pub async fn validate_topic_creation(
    cfg: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<(), SinkError> {
    let admin: AdminClient<Context> = client_config(cfg)
        .create_with_context(Context::default())
        .map_err(SinkError::Create)?;
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
pub struct Probe {
    /// The number of brokers in the cluster's metadata.
    pub brokers: usize,
    /// `None` when the topic exists; otherwise the metadata error for it.
    pub topic_error: Option<RDKafkaErrorCode>,
}

/// Reads the cluster's metadata for the configured topic (`sluice check`).
pub async fn probe(cfg: &KafkaConfig, timeout: Duration) -> Result<Probe, SinkError> {
    let context = Context::default();
    let client: rdkafka::producer::BaseProducer<Context> = client_config(cfg)
        .create_with_context(context.clone())
        .map_err(SinkError::Create)?;
    let k = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let topic_error = topic_metadata(client.client(), &context, &k, &k.topic, timeout)?;
        let brokers = client
            .client()
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
pub async fn produce_test_record(cfg: &KafkaConfig, timeout: Duration) -> Result<(), SinkError> {
    let mut pc = producer_config(cfg);
    pc.set("message.timeout.ms", timeout.as_millis().to_string());
    let producer: FutureProducer<Context> = pc
        .create_with_context(Context::default())
        .map_err(SinkError::Create)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cfg(producer: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig {
            brokers: "k1:9092,k2:9092".into(),
            topic: "cdc".into(),
            key: KeyMode::Table,
            producer: producer
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            on_oversize: OversizePolicy::Halt,
            dead_letter_topic: None,
        }
    }

    #[test]
    fn admin_clients_get_the_security_settings_but_not_the_producer_ones() {
        let c = cfg(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "sluice"),
            ("sasl.password", "hunter2"),
            ("ssl.ca.location", "/etc/ca.pem"),
            ("message.max.bytes", "5000000"),
            ("linger.ms", "50"),
            ("compression.type", "zstd"),
            ("acks", "1"),
            ("transactional.id", "x"),
        ]);
        let admin = client_config(&c);
        assert_eq!(admin.get("bootstrap.servers"), Some("k1:9092,k2:9092"));
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "sluice"),
            ("sasl.password", "hunter2"),
            ("ssl.ca.location", "/etc/ca.pem"),
            ("message.max.bytes", "5000000"),
        ] {
            assert_eq!(admin.get(k), Some(v), "{k}");
        }
        assert_eq!(admin.get("allow.auto.create.topics"), Some("false"));
        for k in [
            "linger.ms",
            "compression.type",
            "acks",
            "transactional.id",
            "enable.idempotence",
        ] {
            assert_eq!(admin.get(k), None, "{k} is producer-only");
        }
        // The producer gets everything, the user's values winning over Sluice's defaults.
        let p = producer_config(&c);
        assert_eq!(p.get("acks"), Some("1"));
        assert_eq!(p.get("sasl.password"), Some("hunter2"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        // Both are accepted by librdkafka as they are.
        let _: AdminClient<Context> = client_config(&cfg(&[("socket.timeout.ms", "5000")]))
            .create_with_context(Context::default())
            .unwrap();
        // The config's Debug never shows the password.
        assert!(!format!("{c:?}").contains("hunter2"));
    }

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
