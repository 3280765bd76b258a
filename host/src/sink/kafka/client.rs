//! The one Kafka client configuration.
//!
//! Design note: every Kafka client Sluice makes is configured by [`client_config`], from the
//! same `[kafka]` settings: the producer (which also publishes the dead letters, of oversized
//! events and of transforms, so those get its idempotence and acknowledgements), and the admin
//! client that reads the cluster's metadata and creates topics (at start-up, on a transform's
//! first route to a new topic, and in `sluice check`). They differ only by [`Role`]: the
//! producer takes Sluice's producer defaults and every `[kafka.producer]` key; the admin
//! client takes the keys that are not producer-only, so the bootstrap servers, the security
//! settings (`security.protocol`, `sasl.*`, `ssl.*`) and `client.id`/`socket.*` reach it too,
//! and never creates a topic as a side effect of a metadata request.

use std::sync::{Arc, Mutex};

use rdkafka::admin::AdminClient;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::delivery::Tally;
use crate::config::KafkaConfig;
use crate::sink::SinkError;

/// What a Kafka client is for, which decides the settings it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The producer of events and dead letters.
    Producer,
    /// Metadata requests and topic creation.
    Admin,
    /// Exactly-once recovery's reader of each partition's last records (no consumer group).
    Reader,
}

/// The producer settings Sluice relies on; `[kafka.producer]` entries override them. Public for
/// the bench, whose reference producer uses the very same settings.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // Measured against the local broker (docs/BENCHMARKS.md): lz4 doubles what the broker takes
    // (it handles a compressed batch as one unit) for little producer CPU; a linger of 5 ms keeps
    // a broker that pays per request from drowning at 1k commits/s (1 ms: p99 30 ms at 1k rows/s
    // and 2.7 s at 10k, against 15 and 18 ms), while batches fill by size under load.
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "60000"),
    ("queue.buffering.max.kbytes", "65536"),
];

/// librdkafka's aliases among the defaults' keys. Both names of a pair set one property, and
/// rdkafka passes the settings to librdkafka in hash order, so a default must give way when the
/// user set either name (`compression.codec = "zstd"` must not race Sluice's `compression.type`).
const ALIASES: &[(&str, &str)] = &[
    ("compression.type", "compression.codec"),
    ("linger.ms", "queue.buffering.max.ms"),
    ("acks", "request.required.acks"),
    ("message.timeout.ms", "delivery.timeout.ms"),
];

/// Whether the user's `[kafka.producer]` sets `key` under its own name or an alias.
fn user_sets(cfg: &KafkaConfig, key: &str) -> bool {
    cfg.producer.contains_key(key)
        || ALIASES.iter().any(|&(a, b)| {
            (a == key && cfg.producer.contains_key(b)) || (b == key && cfg.producer.contains_key(a))
        })
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

/// The librdkafka settings of a client for `role`: the bootstrap servers and `client.id`, then
/// for the producer Sluice's defaults and every `[kafka.producer]` key (the user's values win),
/// and for the admin client each `[kafka.producer]` key that is not producer-only.
pub(crate) fn client_config(cfg: &KafkaConfig, role: Role) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", "sluice");
    if role == Role::Producer {
        for (k, v) in PRODUCER_DEFAULTS {
            if !user_sets(cfg, k) {
                c.set(*k, *v);
            }
        }
    }
    for (k, v) in &cfg.producer {
        if role == Role::Producer || !PRODUCER_ONLY.contains(&k.as_str()) {
            c.set(k, v);
        }
    }
    // Transactions (`transactional.id`) have their own fencing and deadline
    // (`transaction.timeout.ms`), and librdkafka refuses an infinite message timeout with them.
    if role == Role::Producer && cfg.exactly_once && !is_transactional(cfg) {
        // A failure that could leave a gap in a partition stops the producer instead, so a
        // partition always holds a prefix of what Sluice sent it (see `exactly_once`). The
        // guarantee does not cover message timeouts, after which librdkafka sends the
        // partition's later messages: so librdkafka never times a message out here, and the
        // sink enforces the delivery deadline itself (`delivery_deadline`), failing the batch
        // and dropping the producer, which sends nothing more.
        c.set("enable.gapless.guarantee", "true")
            .remove("delivery.timeout.ms")
            .set("message.timeout.ms", "0");
    }
    if role == Role::Reader {
        // librdkafka wants a group for an assignment, though nothing is ever committed to it.
        c.set("group.id", "sluice-recovery")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // An offset that retention removed meanwhile reads from the oldest one left, not
            // from the end (which would find nothing and skip nothing).
            .set("auto.offset.reset", "earliest")
            // At a partition's end, answer at once instead of waiting for new records.
            .set("fetch.wait.max.ms", "10")
            .set("isolation.level", "read_committed");
    }
    if role != Role::Producer {
        // A metadata request must not create the topic as a side effect (librdkafka's producer
        // default): Sluice creates it explicitly, with one partition, and `check` only looks.
        c.set("allow.auto.create.topics", "false");
    }
    c
}

/// Whether `[kafka.producer]` names a `transactional.id`: each batch is then published in a
/// Kafka transaction (see `KafkaSink::publish`).
pub(crate) fn is_transactional(cfg: &KafkaConfig) -> bool {
    cfg.producer
        .get("transactional.id")
        .is_some_and(|v| !v.trim().is_empty())
}

/// How long a batch may wait for its delivery reports: `message.timeout.ms` (or its alias
/// `delivery.timeout.ms`) from `[kafka.producer]`, else Sluice's default. In exactly-once mode
/// the sink enforces it (librdkafka is given no timeout; see [`client_config`]).
pub(crate) fn delivery_deadline(cfg: &KafkaConfig) -> std::time::Duration {
    let ms = ["message.timeout.ms", "delivery.timeout.ms"]
        .iter()
        .find_map(|k| cfg.producer.get(*k))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(60_000);
    // 0 is librdkafka's "no timeout".
    std::time::Duration::from_millis(if ms == 0 { 1 << 40 } else { ms })
}

/// Creates a client from `config`, with a fresh [`Context`] (returned too, for its last error).
pub(crate) fn create<C: FromClientConfigAndContext<Context>>(
    config: &ClientConfig,
) -> Result<(C, Context), SinkError> {
    let context = Context::default();
    let client = config
        .create_with_context(context.clone())
        .map_err(|e| SinkError::Create(redacted(e)))?;
    Ok((client, context))
}

/// librdkafka's refusal of a setting, without the value when it is a secret (rdkafka's text of
/// a `ClientConfig` error ends with the property's value).
fn redacted(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(code, desc, key, _) if crate::config::is_secret_property(&key) => {
            KafkaError::ClientConfig(code, desc, key, "<redacted>".into())
        }
        e => e,
    }
}

/// The admin client ([`Role::Admin`]) for metadata requests and topic creation.
pub(crate) fn admin(cfg: &KafkaConfig) -> Result<(AdminClient<Context>, Context), SinkError> {
    create(&client_config(cfg, Role::Admin))
}

/// A client context that remembers the last client-level error librdkafka reported (a refused
/// connection, a failed SASL handshake), so that a timeout can say why.
#[derive(Clone, Default)]
pub(crate) struct Context {
    last_error: Arc<Mutex<Option<ClientError>>>,
}

/// A client-level error: its code (when librdkafka gives one) and its reason.
type ClientError = (Option<RDKafkaErrorCode>, String);

impl Context {
    pub(super) fn last_error(&self) -> Option<ClientError> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

/// Each message's delivery report counts down its batch's [`Tally`] (on the polling thread).
impl rdkafka::producer::ProducerContext for Context {
    type DeliveryOpaque = Arc<Tally>;
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, tally: Arc<Tally>) {
        tally.report(result);
    }
}

/// The read-back consumer (`Role::Reader`) uses assignments only, no group.
impl rdkafka::consumer::ConsumerContext for Context {}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_)) {
            // The read-back's end of a partition: expected, and handled where it is polled.
            return;
        }
        tracing::warn!(error = %error, reason, "Kafka client error");
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some((error.rdkafka_error_code(), reason.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refused_secret_setting_is_reported_without_its_value() {
        use rdkafka::types::RDKafkaConfRes;
        let refused = |key: &str| {
            super::redacted(KafkaError::ClientConfig(
                RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                format!("Configuration property \"{key}\" not supported in this build"),
                key.into(),
                "Hunter2-secret".into(),
            ))
            .to_string()
        };
        for key in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.config",
        ] {
            let text = refused(key);
            assert!(
                !text.contains("Hunter2-secret") && text.contains(key),
                "{text}"
            );
        }
        // Other settings keep their value: it helps to see what was refused.
        assert!(refused("linger.ms").contains("Hunter2-secret"));
    }

    /// librdkafka is built with OpenSSL: TLS and SASL/SCRAM clusters can be configured (a
    /// build without it refuses these settings when the client is created).
    #[test]
    fn the_build_supports_tls_and_sasl_scram_to_kafka() {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", "127.0.0.1:1")
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanisms", "SCRAM-SHA-512")
            .set("sasl.username", "u")
            .set("sasl.password", "p")
            .set("ssl.key.password", "k");
        let made = super::create::<rdkafka::producer::BaseProducer<super::Context>>(&c);
        assert!(made.is_ok(), "{:?}", made.err());
    }

    use super::*;
    use std::collections::BTreeMap;

    use rdkafka::producer::FutureProducer;

    use crate::config::OversizePolicy;
    use crate::encode::KeyMode;

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
            exactly_once: true,
            recover_topics: Vec::new(),
            partitions: 1,
            replication_factor: 1,
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
        let admin = client_config(&c, Role::Admin);
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
        let p = client_config(&c, Role::Producer);
        assert_eq!(p.get("acks"), Some("1"));
        assert_eq!(p.get("sasl.password"), Some("hunter2"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        // This config names a transactional.id: transactions bring their own fencing and
        // deadline, so neither gapless mode nor the sink's own deadline applies.
        assert_eq!(p.get("enable.gapless.guarantee"), None);
        assert_eq!(p.get("message.timeout.ms"), Some("60000"));
        // Exactly-once without transactions: librdkafka never times a message out; the sink
        // keeps the deadline.
        let plain = client_config(&cfg(&[]), Role::Producer);
        assert_eq!(plain.get("enable.gapless.guarantee"), Some("true"));
        assert_eq!(plain.get("message.timeout.ms"), Some("0"));
        assert_eq!(delivery_deadline(&c), std::time::Duration::from_secs(60));
        let own = cfg(&[("delivery.timeout.ms", "5000")]);
        assert_eq!(
            client_config(&own, Role::Producer).get("delivery.timeout.ms"),
            None
        );
        assert_eq!(delivery_deadline(&own), std::time::Duration::from_secs(5));
        let mut alo = cfg(&[("message.timeout.ms", "5000")]);
        alo.exactly_once = false;
        assert_eq!(
            client_config(&alo, Role::Producer).get("message.timeout.ms"),
            Some("5000")
        );
        let reader = client_config(&c, Role::Reader);
        assert_eq!(reader.get("sasl.password"), Some("hunter2"));
        assert_eq!(reader.get("isolation.level"), Some("read_committed"));
        assert_eq!(reader.get("linger.ms"), None);
        // A user's value under an alias replaces Sluice's default instead of racing it.
        let aliased = client_config(
            &cfg(&[
                ("compression.codec", "zstd"),
                ("queue.buffering.max.ms", "50"),
            ]),
            Role::Producer,
        );
        assert_eq!(aliased.get("compression.type"), None);
        assert_eq!(aliased.get("compression.codec"), Some("zstd"));
        assert_eq!(aliased.get("linger.ms"), None);
        assert_eq!(aliased.get("queue.buffering.max.ms"), Some("50"));
        assert_eq!(aliased.get("acks"), Some("all"));
        // Both are accepted by librdkafka as they are.
        let plain = cfg(&[("socket.timeout.ms", "5000")]);
        let _: (AdminClient<Context>, Context) = super::admin(&plain).unwrap();
        let _: (FutureProducer<Context>, Context) =
            create(&client_config(&plain, Role::Producer)).unwrap();
        // The config's Debug never shows the password.
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
