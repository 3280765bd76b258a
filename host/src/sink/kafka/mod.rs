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
//! Modules: [`client`] builds the one client configuration that the producer (events and dead
//! letters) and the admin client (metadata, topic creation) share, so SASL/SSL clusters work
//! for all of them; [`errors`] classifies librdkafka's errors ([`classify`]: a retry cannot
//! fix an event over `message.max.bytes`, an invalid topic name or a missing ACL, so those stop
//! Sluice with the setting to change instead of republishing the same events forever);
//! `delivery` counts each batch's delivery reports on the producer's polling thread (one
//! shared counter per batch instead of a future per message); `dead_letters` diverts oversized events (`kafka.on_oversize = "dead_letter"`) and awaits a
//! batch's delivery reports; [`topics`] checks and creates topics and holds `sluice check`'s
//! probes.
//!
//! Every message carries its source position in headers (`sluice.file`, `sluice.pos`,
//! `sluice.row`, and `sluice.gtid` where there is one), which is what exactly-once recovery reads.
//! In exactly-once mode ([`exactly_once`]), `recover` reads back the last record of each
//! partition at start and the sink skips what a partition already holds; messages then also
//! carry `sluice.part`, `sluice.snapshot` (when set) and `sluice.checkpoint`.

pub(crate) mod client;
mod dead_letters;
mod delivery;
pub(crate) mod errors;
pub(crate) mod exactly_once;
pub(crate) mod recover;
pub(crate) mod topics;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::Producer as _;
use tokio::sync::watch;

use super::{Ack, SinkError};
use crate::config::{KafkaConfig, OversizePolicy};
use crate::encode::{encode_key, KeyMode, ValueEncoder};
use crate::event::{ChangeEvent, Kind};
use crate::telemetry::metrics as telemetry;

pub(crate) use client::{client_config, Role};
use dead_letters::DeadLetters;
use delivery::{enqueue, Producer, Record, Tally};
pub(crate) use errors::{classify, is_permanent, Class};
pub(crate) use exactly_once::Watermark;
pub(crate) use recover::{read_back, ReadBack};
pub(crate) use topics::{ensure_topic, probe, produce_test_record, validate_topic_creation};

use errors::refusal;

/// The event's source position as headers (`sluice.file`, `sluice.pos`, `sluice.row`, and
/// `sluice.gtid` where there is one; `sluice.part` when `part` is not 0, `sluice.snapshot` for
/// a snapshot row, `sluice.checkpoint` when given), then a transform's own headers.
fn position_headers(
    ev: &ChangeEvent,
    part: u32,
    checkpoint: Option<&[u8]>,
    snapshot_after: Option<&[u8]>,
    server: Option<&[u8]>,
) -> OwnedHeaders {
    use exactly_once::{CHECKPOINT, FILE, GTID, PART, POS, ROW, SERVER, SNAPSHOT, SNAPSHOT_AFTER};
    let route_headers = ev.route.as_deref().map(|r| r.headers.as_slice());
    let n = 8 + route_headers.map_or(0, <[_]>::len);
    // Printed on the stack, without a heap allocation per message.
    let (mut pos, mut row, mut nth) = (
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    );
    let (pos, row) = (pos.format(ev.position.pos), row.format(ev.position.row));
    let mut headers = OwnedHeaders::new_with_capacity(n)
        .insert(Header {
            key: FILE,
            value: Some(ev.position.file.as_bytes()),
        })
        .insert(Header {
            key: POS,
            value: Some(pos.as_bytes()),
        })
        .insert(Header {
            key: ROW,
            value: Some(row.as_bytes()),
        });
    if part > 0 {
        headers = headers.insert(Header {
            key: PART,
            value: Some(nth.format(part).as_bytes()),
        });
    }
    if ev.position.snapshot {
        headers = headers.insert(Header {
            key: SNAPSHOT,
            value: Some(b"1"),
        });
    }
    if let Some(g) = &ev.position.gtid {
        headers = headers.insert(Header {
            key: GTID,
            value: Some(g.as_bytes()),
        });
    }
    if let Some(c) = checkpoint {
        headers = headers.insert(Header {
            key: CHECKPOINT,
            value: Some(c),
        });
    }
    if let Some(a) = snapshot_after {
        headers = headers.insert(Header {
            key: SNAPSHOT_AFTER,
            value: Some(a),
        });
    }
    if let Some(v) = server {
        headers = headers.insert(Header {
            key: SERVER,
            value: Some(v),
        });
    }
    for (k, v) in route_headers.unwrap_or_default() {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    headers
}

/// How long each of [`KafkaSink::connect`]'s metadata requests may take.
const CONNECT_HEAD_START: Duration = Duration::from_secs(2);

/// How long start-up and `sluice check` wait for the broker before saying it cannot be reached.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct KafkaSink {
    producer: Producer,
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
    encoder: ValueEncoder,
    dead_letters: Option<DeadLetters>,
    stop: Option<watch::Receiver<bool>>,
    /// Exactly-once mode's state; `None` when it is off. Boxed: it is large and the stdout
    /// sink shares the enum.
    eo: Option<Box<ExactlyOnce>>,
    /// `transactional.id` is set: each batch is one Kafka transaction, committed before the
    /// next one begins.
    transactional: bool,
    /// How long a batch may wait for delivery (`client::delivery_deadline`), read once.
    deadline: Duration,
    /// `kafka.topic` holds `{schema}` or `{table}`: each table has its own topic.
    per_table: bool,
    table_topics: TableTopics,
}

/// Each table's topic under a `{schema}`/`{table}` template, made once per table and looked up
/// without allocating.
#[derive(Default)]
struct TableTopics(std::collections::HashMap<String, std::collections::HashMap<String, Arc<str>>>);

impl TableTopics {
    fn get(&mut self, schema: &str, table: &str, cfg: &KafkaConfig) -> Arc<str> {
        if let Some(t) = self.0.get(schema).and_then(|m| m.get(table)) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(cfg.topic_for(schema, table).as_str());
        self.0
            .entry(schema.to_owned())
            .or_default()
            .insert(table.to_owned(), t.clone());
        t
    }
}

/// What the sink keeps in exactly-once mode (see [`exactly_once`]).
struct ExactlyOnce {
    /// What each partition held at start, until the stream passes it.
    catchup: exactly_once::Catchup,
    /// Partition counts of the topics published to, for placing records.
    partitions: std::collections::HashMap<String, i32>,
    parts: exactly_once::Parts,
    watermark: Watermark,
    /// Where routed topics are recorded before their first record.
    topics: crate::state::TopicStore,
    /// Events skipped because their partition held them, for the log.
    skipped: u64,
    /// How far the snapshot got in each partition (`sluice.snapshot.after`), carried on every
    /// record while it runs.
    snapshot_after: exactly_once::SnapshotCursors,
    /// Where each partition's last snapshot row was at start: a resumed snapshot's rows that a
    /// partition holds are skipped there.
    snapshot_seeds: exactly_once::SnapshotSeeds,
    /// Snapshot rows skipped so, for the log.
    snapshot_skipped: u64,
    /// MySQL: this server's `@@server_uuid`, written as `sluice.server` (see
    /// [`exactly_once::SERVER`]).
    server: Option<Arc<str>>,
}

impl KafkaSink {
    pub(crate) fn new(cfg: &KafkaConfig) -> Result<Self, SinkError> {
        let (producer, _): (Producer, _) = client::create(&client_config(cfg, Role::Producer))?;
        let dead_letters = match (&cfg.on_oversize, &cfg.dead_letter_topic) {
            (OversizePolicy::DeadLetter, Some(t)) => {
                Some(DeadLetters::new(producer.clone(), t.clone()))
            }
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
            encoder: ValueEncoder::default(),
            dead_letters,
            stop: None,
            eo: None,
            transactional: client::is_transactional(cfg),
            deadline: client::delivery_deadline(cfg),
            per_table: cfg.topic_per_table(),
            table_topics: TableTopics::default(),
        })
    }

    /// Whether each batch is published in a Kafka transaction.
    pub(crate) fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Registers the transactional id with the cluster (fencing any earlier producer that used
    /// it: a zombie's open transaction is aborted). Once per producer, before the first batch.
    pub(crate) async fn init_transactions(&self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.init_transactions(CONNECT_TIMEOUT))
            .await
            .map_err(|_| SinkError::ProducerGone)?
            .map_err(|source| SinkError::Transaction {
                step: "start (init_transactions)",
                source,
            })
    }

    /// Commits the open transaction (librdkafka first delivers what it holds), or aborts it.
    async fn commit(&self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        let deadline = self.deadline;
        let r = tokio::task::spawn_blocking(move || {
            let r = producer.commit_transaction(deadline);
            if r.is_err() {
                let _ = producer.abort_transaction(deadline);
            }
            r
        })
        .await
        .map_err(|_| SinkError::ProducerGone)?;
        r.map_err(|source| SinkError::Transaction {
            step: "commit",
            source,
        })
    }

    /// Turns on exactly-once publishing: `held` is what the partitions held at start (read
    /// back after every earlier producer of this process was gone), `watermark` the
    /// acknowledged position the checkpointer moves, `topics` the record of routed topics,
    /// `server` the MySQL server identity every record names.
    pub(crate) fn exactly_once(
        &mut self,
        held: ReadBack,
        watermark: Watermark,
        topics: crate::state::TopicStore,
        server: Option<Arc<str>>,
    ) {
        if let Some(dl) = &mut self.dead_letters {
            let dlq = dl.topic().to_owned();
            dl.holding(dead_letters::Held {
                partitions: held.partitions.get(&dlq).copied().unwrap_or(1),
                marks: held
                    .marks
                    .iter()
                    .filter(|((t, _), _)| *t == dlq)
                    .map(|((_, p), m)| (*p, m.clone()))
                    .collect(),
            });
        }
        let snapshot_seeds = exactly_once::SnapshotSeeds::new(&held.snapshot_after, &held.marks);
        let catchup = exactly_once::Catchup::new(held.marks);
        let snapshot_after =
            exactly_once::SnapshotCursors::seeded(&snapshot_seeds.carried(&held.snapshot_after));
        self.eo = Some(Box::new(ExactlyOnce {
            catchup,
            partitions: held.partitions,
            parts: exactly_once::Parts::default(),
            watermark,
            topics,
            skipped: 0,
            snapshot_after,
            snapshot_seeds,
            snapshot_skipped: 0,
            server,
        }));
    }

    /// The acknowledged position the checkpointer moves, in exactly-once mode.
    pub(crate) fn watermark(&self) -> Option<Watermark> {
        self.eo.as_ref().map(|e| e.watermark.clone())
    }

    /// Connects the producer to the cluster before the first event: its metadata answer starts
    /// the idempotent producer's id request at once. Without it, librdkafka first asks for the
    /// id on a timer (0.5 s, and again 0.5 s later when no broker is up yet), which delayed the
    /// first acknowledgement after every start by 0.5 to 1 s. Each request waits at most
    /// [`CONNECT_HEAD_START`]; a failure here is not an error: the first publish reports what
    /// is wrong.
    pub(crate) async fn connect(&self) {
        let producer = self.producer.clone();
        // A topic template names no topic yet: any answer does.
        let topic = (!self.per_table).then(|| self.topic.clone());
        let started = std::time::Instant::now();
        let r = tokio::task::spawn_blocking(move || {
            // The first answer (from the bootstrap server) names the brokers, and the producer
            // connects to the topic's leader; the second, from an established connection,
            // finds a broker up to ask for the id.
            let client = producer.client();
            client.fetch_metadata(topic.as_deref(), CONNECT_HEAD_START)?;
            std::thread::sleep(Duration::from_millis(20));
            client
                .fetch_metadata(topic.as_deref(), CONNECT_HEAD_START)
                .map(|_| ())
        })
        .await;
        match r {
            Ok(Ok(())) => tracing::debug!(took = ?started.elapsed(), "producer connected"),
            Ok(Err(e)) => {
                tracing::info!(error = %e, took = ?started.elapsed(), "the producer could not reach the broker before the first event; its first acknowledgement may come later")
            }
            Err(_) => {}
        }
    }

    /// Makes the wait on a full local queue give up once `stop` turns true (the pipeline's
    /// shutdown deadline), so a stop while Kafka is down does not hang.
    pub(crate) fn stop_waiting_on(&mut self, stop: watch::Receiver<bool>) {
        self.stop = Some(stop);
    }

    pub(crate) async fn publish(&mut self, events: &[ChangeEvent]) -> Result<Ack, SinkError> {
        let tally = Tally::new();
        if self.transactional {
            self.producer
                .begin_transaction()
                .map_err(|source| SinkError::Transaction {
                    step: "begin",
                    source,
                })?;
        }
        // The acknowledged position at this batch's start, written into each of its messages.
        // `-` while a snapshot runs: every exactly-once record carries the header, which tells
        // the read-back it follows this version's order.
        let checkpoint: Option<Arc<[u8]>> = self
            .eo
            .as_ref()
            .map(|e| e.watermark.get().unwrap_or_else(|| Arc::from(&b"-"[..])));
        // MySQL's server identity (`sluice.server`), the same on every record.
        let server = self.eo.as_ref().and_then(|e| e.server.clone());
        // Messages per topic, counted as published once the batch is acknowledged.
        let mut published: Option<Vec<(String, u64)>> = telemetry::enabled().then(Vec::new);
        for ev in events {
            self.key_buf.clear();
            self.value_buf.clear();
            let route = ev.route.as_deref();
            match route.and_then(|r| r.key.as_ref()) {
                Some(k) => self.key_buf.extend_from_slice(k),
                None => encode_key(ev, self.key, &mut self.key_buf),
            }
            // A transform's route wins; else, with `{schema}`/`{table}`, the table's own topic.
            let table_topic = match route.and_then(|r| r.topic.as_deref()) {
                None if self.per_table => Some(self.table_topics.get(
                    &ev.meta.schema,
                    &ev.meta.table,
                    &self.cfg,
                )),
                _ => None,
            };
            let dynamic = route
                .and_then(|r| r.topic.as_deref())
                .or(table_topic.as_deref());
            if let Some(t) = dynamic {
                if !self.known_topics.contains(t) {
                    ensure_topic(&self.cfg, t, CONNECT_TIMEOUT).await?;
                    if let Some(eo) = &self.eo {
                        // Durable before the topic's first record, so recovery reads it back.
                        eo.topics
                            .add(t)
                            .map_err(|e| SinkError::State(e.to_string()))?;
                    }
                    self.known_topics.insert(t.to_owned());
                }
            }
            let topic = dynamic.unwrap_or(&self.topic);
            // A table-level `truncate` in primary_key mode goes to every partition: the table's
            // rows are spread over them by key, and each partition's consumer must see it in
            // order with the rows it holds. Otherwise the partitioner places it by its key (in
            // exactly-once mode Sluice places it, the same way, to know where it goes).
            let everywhere = ev.kind == Kind::Truncate
                && self.key == KeyMode::PrimaryKey
                && route.and_then(|r| r.key.as_ref()).is_none();
            let (part, partitions) = match &mut self.eo {
                Some(eo) => {
                    let n = match eo.partitions.get(topic) {
                        Some(n) => *n,
                        None => {
                            let n = partition_count(&self.producer, topic).await?;
                            eo.partitions.insert(topic.to_owned(), n);
                            n
                        }
                    };
                    (eo.parts.next(&ev.position), n)
                }
                None if everywhere => (0, partition_count(&self.producer, topic).await?),
                None => (0, 1),
            };
            // The partitions to send to, and whether Sluice names them (else the partitioner).
            let (first, last, named) = if everywhere {
                (0, partitions - 1, true)
            } else if self.eo.is_some() {
                // Named even with one partition: a partition added meanwhile must not receive
                // records where the catch-up does not look.
                let p = exactly_once::partition_for(&self.key_buf, partitions);
                (p, p, true)
            } else {
                (0, 0, false)
            };
            let mut encoded = false;
            for p in first..=last {
                if let Some(eo) = &mut self.eo {
                    if eo.holds(ev, part, topic, p) {
                        continue;
                    }
                }
                if !encoded {
                    // Encoded once, for the first partition that lacks it.
                    match route.and_then(|r| r.payload.as_ref()) {
                        Some(p) => self.value_buf.extend_from_slice(p),
                        None => self.encoder.encode(ev, &mut self.value_buf),
                    }
                    encoded = true;
                }
                // While a snapshot runs (no checkpoint yet), every record of a partition says
                // how far the snapshot got there.
                let after = match &mut self.eo {
                    Some(eo) => match &ev.position.cursor {
                        Some(c) => {
                            eo.snapshot_after.set(topic, p, c.clone());
                            Some(c.clone())
                        }
                        None if checkpoint.as_deref() == Some(&b"-"[..]) => {
                            eo.snapshot_after.get(topic, p).cloned()
                        }
                        None => None,
                    },
                    None => None,
                };
                let headers = position_headers(
                    ev,
                    part,
                    checkpoint.as_deref(),
                    after.as_deref().map(str::as_bytes),
                    server.as_deref().map(str::as_bytes),
                );
                let queued = self
                    .send(ev, topic, named.then_some(p), headers, &tally)
                    .await?;
                if let (true, Some(counts)) = (queued, &mut published) {
                    match counts.iter_mut().find(|(t, _)| t == topic) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((topic.to_owned(), 1)),
                    }
                }
            }
        }
        tally.seal();
        if self.transactional {
            // Batches are serialized: the next transaction begins after this one committed, so
            // its records (and their position headers) are visible to read_committed consumers
            // all at once or not at all.
            self.commit().await?;
        }
        let delivered = dead_letters::delivered(tally, self.dead_letters.clone());
        let delivered = async move {
            let diverted = delivered.await?;
            for (topic, n) in published.into_iter().flatten() {
                let gone = diverted.iter().filter(|t| **t == topic).count() as u64;
                telemetry::events_published(&topic, n.saturating_sub(gone));
            }
            Ok(())
        };
        if self.eo.is_none() {
            return Ok(Ack::when(delivered));
        }
        // Exactly-once: librdkafka has no message timeout (see `client::client_config`); the
        // batch's deadline is enforced here. Its failure ends the life of the stages and drops
        // the producer, which then sends nothing more, so no partition gets a gap.
        let deadline = tokio::time::Instant::now() + self.deadline;
        Ok(Ack::when(async move {
            match tokio::time::timeout_at(deadline, delivered).await {
                Ok(r) => r,
                Err(_) => Err(SinkError::Delivery(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut,
                ))),
            }
        }))
    }

    /// Queues the encoded event (`key_buf`, `value_buf`) to `topic`, counted by `tally`
    /// (`true`). An event librdkafka refuses as too large goes to the dead letters when they
    /// are configured (`false`); any other refusal stops the batch.
    async fn send(
        &self,
        ev: &ChangeEvent,
        topic: &str,
        partition: Option<i32>,
        headers: OwnedHeaders,
        tally: &Arc<Tally>,
    ) -> Result<bool, SinkError> {
        let mut record = Record::with_opaque_to(topic, tally.expect_one())
            .key(&self.key_buf[..])
            .payload(&self.value_buf[..])
            .headers(headers);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let Err((e, r)) = enqueue(&self.producer, record, self.stop.as_ref()).await else {
            return Ok(true);
        };
        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown);
        let bytes = self.value_buf.len() + self.key_buf.len();
        if code == RDKafkaErrorCode::QueueFull {
            // Only after the pipeline's stop deadline passed.
            return Err(SinkError::Enqueue(e));
        }
        if classify(code) == Class::TooLarge {
            if let Some(dl) = &self.dead_letters {
                // Earlier events of this batch must still be acknowledged in order; the dead
                // letter is awaited here, before them, which is fine: it goes to another topic.
                return dl
                    .divert(
                        Some(&self.key_buf),
                        r.headers.as_ref(),
                        topic,
                        bytes,
                        &e.to_string(),
                    )
                    .await
                    .map(|()| false);
            }
        }
        Err(refusal(
            code,
            e,
            topic,
            bytes,
            ev.position.to_string(),
            true,
        ))
    }

    pub(crate) async fn flush(&mut self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|_| SinkError::ProducerGone)?
            .map_err(SinkError::Flush)
    }
}

impl ExactlyOnce {
    /// Whether partition `partition` of `topic` held output `part` of `ev` at start. Once the
    /// stream passes every partition's mark, the catch-up ends and nothing more is checked.
    /// Snapshot rows compare by key instead: a resumed snapshot reads again, at a new point,
    /// from its saved key, and skips in each partition the rows it holds up to its last row's
    /// key ([`exactly_once::SnapshotSeeds`]; see `docs/EXACTLY_ONCE.md`).
    fn holds(&mut self, ev: &ChangeEvent, part: u32, topic: &str, partition: i32) -> bool {
        if ev.position.snapshot {
            if self.snapshot_seeds.is_empty() {
                return false;
            }
            let held = self
                .snapshot_seeds
                .holds(topic, partition, &ev.position, part);
            if held {
                self.snapshot_skipped += 1;
                if self.snapshot_skipped.is_power_of_two() {
                    tracing::info!(skipped = self.snapshot_skipped, at = %ev.position, "exactly-once: snapshot rows read again that their partition already holds are skipped");
                }
            }
            return held;
        }
        if self.catchup.is_empty() {
            return false;
        }
        let id = exactly_once::Mark::of(&ev.position, part);
        if self.catchup.passed(&id) {
            tracing::info!(skipped = self.skipped, at = %ev.position, "exactly-once catch-up done: the stream is past what every partition held at start");
            self.catchup = exactly_once::Catchup::default();
            return false;
        }
        let held = self.catchup.holds(topic, partition, &id);
        self.skipped += u64::from(held);
        held
    }
}

/// The destination topic's partition count, from a fresh metadata request (off the async
/// threads; only table-level events need it, and they are rare). Every topic Sluice
/// publishes to was checked to exist first (`known_topics`), so a topic that is missing or
/// answers with an error here (a leader election, say) is a retryable error: falling back to
/// one partition would leave the other partitions' consumers with the rows.
async fn partition_count(producer: &Producer, topic: &str) -> Result<i32, SinkError> {
    let producer = producer.clone();
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

#[cfg(test)]
mod header_tests {
    use std::sync::Arc;

    use rdkafka::message::Headers;

    use super::position_headers;
    use crate::event::{ChangeEvent, SourcePosition};

    #[test]
    fn positions_print_in_decimal() {
        for (pos, row) in [(0u64, 0u32), (4, 17), (u64::MAX, u32::MAX), (1_000_000, 10)] {
            let position = SourcePosition {
                file: Arc::from("mysql-bin.000001"),
                pos,
                row,
                gtid: None,
                snapshot: false,
                cursor: None,
                held: None,
            };
            let h = position_headers(
                &ChangeEvent::truncate("s", "t", position, 0),
                0,
                None,
                None,
                None,
            );
            let value = |k: &str| h.iter().find(|x| x.key == k).and_then(|x| x.value);
            assert_eq!(value("sluice.pos"), Some(pos.to_string().as_bytes()));
            assert_eq!(value("sluice.row"), Some(row.to_string().as_bytes()));
        }
    }

    #[test]
    fn a_mysql_servers_records_name_it_and_read_back_with_it() {
        let position = SourcePosition {
            file: Arc::from("binlog.000003"),
            pos: 900,
            row: 2,
            gtid: Some(Arc::from("3e11fa47-71ca-11e1-9e33-c80aa9429562:17")),
            snapshot: false,
            cursor: None,
            held: None,
        };
        let uuid = "4a9be6b2-1a2b-11ef-8f3c-0242ac120002";
        let ev = ChangeEvent::truncate("s", "t", position, 0);
        let h = position_headers(
            &ev,
            0,
            Some(b"binlog.000003:900"),
            None,
            Some(uuid.as_bytes()),
        );
        let mark = super::exactly_once::Mark::from_headers(&h).expect("a mark");
        assert_eq!(mark.server.as_deref(), Some(uuid));
        assert_eq!((&*mark.file, mark.pos, mark.row), ("binlog.000003", 900, 2));
        // Without one (MariaDB), none is read back.
        let h = position_headers(&ev, 0, None, None, None);
        assert_eq!(
            super::exactly_once::Mark::from_headers(&h).unwrap().server,
            None
        );
    }
}

#[cfg(test)]
mod mock_tests;
