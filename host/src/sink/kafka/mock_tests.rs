//! The sink's delivery accounting against librdkafka's mock cluster (unit tests only: the
//! end-to-end tests use the real broker). The mock can fail produce requests on demand, which
//! the real broker cannot be made to do, so the failure paths of the per-batch [`Tally`]
//! are covered here: a refused batch fails its ack with the event's position, a too-large one
//! goes to the dead letters, and dropping the producer never leaves an ack waiting.
//!
//! [`Tally`]: super::delivery::Tally

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;

use super::KafkaSink;
use crate::config::{KafkaConfig, OversizePolicy};
use crate::encode::KeyMode;
use crate::event::{ChangeEvent, Kind, SourcePosition, TableMeta, Value};
use crate::sink::SinkError;

fn cfg(brokers: String, dead_letters: bool) -> KafkaConfig {
    KafkaConfig {
        brokers,
        topic: "events".into(),
        key: KeyMode::Table,
        // Fail fast instead of retrying a refused request for a minute.
        producer: BTreeMap::from([("message.timeout.ms".into(), "5000".into())]),
        on_oversize: if dead_letters {
            OversizePolicy::DeadLetter
        } else {
            OversizePolicy::Halt
        },
        dead_letter_topic: dead_letters.then(|| "events.dlq".into()),
        exactly_once: false,
        recover_topics: Vec::new(),
        partitions: 1,
        replication_factor: 1,
    }
}

fn events(pos: u64, n: u32) -> Vec<ChangeEvent> {
    let meta = Arc::new(TableMeta {
        schema: "shop".into(),
        table: "orders".into(),
        columns: vec!["id".into()],
        primary_key: vec![0],
    });
    (0..n)
        .map(|row| ChangeEvent {
            kind: Kind::Insert,
            meta: Arc::clone(&meta),
            after: vec![Value::Int(i64::from(row))],
            before: vec![],
            position: SourcePosition {
                file: "mysql-bin.000007".into(),
                pos,
                row,
                // One GTID per transaction, as on a server.
                gtid: Some(format!("0-1-{pos}").into()),
                snapshot: false,
                cursor: None,
                held: None,
            },
            timestamp: 0,
            route: None,
        })
        .collect()
}

/// Every record of `topic` on the mock cluster, as (value, headers as `key=value`).
fn read_all(brokers: &str, topic: &str, want: usize) -> Vec<(String, Vec<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "mock-test")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < want && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            format!(
                                "{}={}",
                                x.key,
                                String::from_utf8_lossy(x.value.unwrap_or_default())
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((value, headers));
        }
    }
    out
}

/// Delivers one event (so the connection is up and the next produce request is the next
/// batch's), then makes the mock broker refuse the next produce request as too large.
async fn refuse_the_next_produce_as_too_large(
    sink: &mut KafkaSink,
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
) {
    sink.publish(&events(4, 1))
        .await
        .expect("queued")
        .wait()
        .await
        .expect("delivered");
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
}

/// A batch's acknowledgement, which must come within 20 s.
async fn settled(ack: crate::sink::Ack) -> Result<(), SinkError> {
    tokio::time::timeout(Duration::from_secs(20), ack.wait())
        .await
        .expect("the acknowledgement came in time")
}

/// A position in the events' binlog file.
fn saved_at(pos: u64) -> crate::state::BinlogPosition {
    crate::state::BinlogPosition {
        file: "mysql-bin.000007".into(),
        pos,
        gtid: None,
        timestamp: 0,
    }
}

/// A sink in exactly-once mode: `held` is what the read-back found, `at` the saved position it
/// resumes from, and routed topics are recorded under `state`.
fn eo_sink(
    c: &KafkaConfig,
    held: super::ReadBack,
    at: Option<u64>,
    state: &std::path::Path,
) -> KafkaSink {
    let mut sink = KafkaSink::new(c).expect("sink");
    sink.exactly_once(
        held,
        super::exactly_once::Watermark::starting_at(at.map(saved_at).as_ref()),
        crate::state::TopicStore::beside(state, "binlog_position_shop_orders.json"),
        None,
    );
    sink
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_acknowledged_with_their_position_headers() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    let mut sink = KafkaSink::new(&cfg(brokers.clone(), false)).expect("sink");
    let a = sink.publish(&events(4, 3)).await.expect("queued");
    let b = sink.publish(&events(900, 2)).await.expect("queued");
    // Acks complete in order, each once its own batch is delivered.
    settled(a).await.expect("delivered");
    settled(b).await.expect("delivered");
    sink.flush().await.expect("flush");
    let got = tokio::task::spawn_blocking(move || read_all(&brokers, "events", 5))
        .await
        .expect("reader");
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        got[4].1,
        [
            "sluice.file=mysql-bin.000007",
            "sluice.pos=900",
            "sluice.row=1",
            "sluice.gtid=0-1-900"
        ]
    );
    assert!(got[0].0.contains(r#""columnvalues":[0]"#), "{}", got[0].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_fails_the_batch_ack_naming_the_setting_and_position() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 1, 1).expect("topic");
    let mut sink = KafkaSink::new(&cfg(mock.bootstrap_servers(), false)).expect("sink");
    refuse_the_next_produce_as_too_large(&mut sink, &mock).await;
    let ack = sink.publish(&events(77, 2)).await.expect("queued");
    let err = settled(ack).await.expect_err("the broker refused it");
    assert!(matches!(err, SinkError::TooLarge { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("message.max.bytes") && text.contains("mysql-bin.000007:77"),
        "{text}"
    );
    assert!(err.is_permanent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_refused_as_too_large_goes_to_the_dead_letters() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 1, 1).expect("topic");
    mock.create_topic("events.dlq", 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    let mut sink = KafkaSink::new(&cfg(brokers.clone(), true)).expect("sink");
    refuse_the_next_produce_as_too_large(&mut sink, &mock).await;
    let ack = sink.publish(&events(77, 1)).await.expect("queued");
    settled(ack).await.expect("diverted, so the batch is done");
    let dlq = tokio::task::spawn_blocking(move || read_all(&brokers, "events.dlq", 1))
        .await
        .expect("reader");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let (value, headers) = &dlq[0];
    assert!(value.is_empty(), "no value in a dead letter: {value}");
    assert!(headers.contains(&"sluice.pos=77".to_owned()), "{headers:?}");
    assert!(
        headers.contains(&"sluice.original.topic=events".to_owned()),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|h| h.starts_with("sluice.error=")),
        "{headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_producer_fails_pending_acks_instead_of_hanging() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 1, 1).expect("topic");
    let mut sink = KafkaSink::new(&cfg(mock.bootstrap_servers(), false)).expect("sink");
    mock.broker_down(1).expect("broker down");
    let ack = sink.publish(&events(4, 3)).await.expect("queued");
    drop(sink);
    let r = tokio::time::timeout(Duration::from_secs(10), ack.wait())
        .await
        .expect("the purge reports every message");
    let err = r.expect_err("never delivered");
    assert!(!err.is_permanent(), "a restart can deliver it: {err}");
}

/// Exactly-once on the mock cluster: a second sink that read back what the partitions hold
/// publishes only what they lack, placed by key over three partitions, with the checkpoint
/// header the read-back then finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sink_skips_what_each_partition_holds() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 3, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    let mut cfg = cfg(brokers.clone(), false);
    cfg.exactly_once = true;
    cfg.key = KeyMode::PrimaryKey;
    let state = tempfile::tempdir().expect("state dir");
    let read = || {
        let cfg = cfg.clone();
        async move {
            super::read_back(&cfg, vec!["events".into()], Duration::from_secs(10))
                .await
                .expect("read back")
        }
    };
    // The first life publishes transactions at 4 (8 rows) and 900 (4 rows).
    let held = read().await;
    assert!(held.marks.is_empty() && held.checkpoint.is_none());
    assert_eq!(held.partitions.get("events"), Some(&3));
    let mut first = eo_sink(&cfg, held, Some(4), state.path());
    for (pos, n) in [(4, 8), (900, 4)] {
        let ack = first.publish(&events(pos, n)).await.expect("queued");
        ack.wait().await.expect("delivered");
    }
    first.flush().await.expect("flush");
    drop(first);
    // A restart from the saved position 4 publishes both again, and a new one at 2000.
    let held = read().await;
    assert_eq!(
        held.checkpoint,
        Some(saved_at(4)),
        "the header the first life wrote"
    );
    assert!(!held.marks.is_empty(), "{held:?}");
    let mut second = eo_sink(&cfg, held, Some(4), state.path());
    for (pos, n) in [(4, 8), (900, 4), (2000, 3)] {
        let ack = second.publish(&events(pos, n)).await.expect("queued");
        ack.wait().await.expect("delivered");
    }
    second.flush().await.expect("flush");
    let got = tokio::task::spawn_blocking(move || read_all(&brokers, "events", 16))
        .await
        .expect("reader");
    let mut ids: Vec<String> = got
        .iter()
        .map(|(_, h)| {
            let pos = h.iter().find(|x| x.starts_with("sluice.pos=")).unwrap();
            let row = h.iter().find(|x| x.starts_with("sluice.row=")).unwrap();
            format!("{pos}/{row}")
        })
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (n, ids.len()),
        (15, 15),
        "each of the 15 rows once: {got:?}"
    );
}

/// In exactly-once mode (gapless), a batch the broker refuses as too large still stops Sluice
/// with the setting to change, instead of a fatal producer error retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_in_exactly_once_mode_names_the_setting() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 1, 1).expect("topic");
    let mut c = cfg(mock.bootstrap_servers(), false);
    c.exactly_once = true;
    let state = tempfile::tempdir().expect("state dir");
    let mut sink = eo_sink(&c, super::ReadBack::default(), None, state.path());
    refuse_the_next_produce_as_too_large(&mut sink, &mock).await;
    let ack = sink.publish(&events(77, 2)).await.expect("queued");
    let err = settled(ack).await.expect_err("the broker refused it");
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("message.max.bytes"), "{err}");
}

/// Exactly-once with dead letters: an event over the producer's `message.max.bytes`, diverted
/// before a restart, is not diverted again by the replay. One the broker refuses stops Sluice
/// with the setting to change (gapless mode stops the producer, so it cannot be diverted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_oversized_event_is_not_dead_lettered_twice() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 1, 1).expect("topic");
    mock.create_topic("events.dlq", 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    let mut c = cfg(brokers.clone(), true);
    c.exactly_once = true;
    c.producer.insert("message.max.bytes".into(), "2000".into());
    let state = tempfile::tempdir().expect("state dir");
    let mut big = events(77, 1);
    big[0].route_mut().payload = Some(vec![b'x'; 5000]);
    let all = vec!["events".to_owned(), "events.dlq".to_owned()];
    for life in 0..2 {
        let held = super::read_back(&c, all.clone(), Duration::from_secs(10))
            .await
            .expect("read back");
        let mut sink = eo_sink(&c, held, Some(4), state.path());
        let ack = sink.publish(&big).await.expect("diverted");
        settled(ack)
            .await
            .unwrap_or_else(|e| panic!("life {life}: {e}"));
        sink.flush().await.expect("flush");
    }
    let reader = brokers.clone();
    let dlq = tokio::task::spawn_blocking(move || read_all(&reader, "events.dlq", 2))
        .await
        .expect("reader");
    assert_eq!(dlq.len(), 1, "one dead letter for the event: {dlq:?}");

    // Refused by the broker instead: a clear, permanent error.
    c.producer.remove("message.max.bytes");
    let other = tempfile::tempdir().expect("state dir");
    let mut sink = eo_sink(&c, super::ReadBack::default(), Some(4), other.path());
    refuse_the_next_produce_as_too_large(&mut sink, &mock).await;
    let ack = sink.publish(&events(99, 1)).await.expect("queued");
    let err = settled(ack).await.expect_err("refused by the broker");
    assert!(err.is_permanent(), "{err:?}");
    assert!(err.to_string().contains("max.message.bytes"), "{err}");
}

/// `transactional.id`: each batch is committed as one transaction before `publish` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_sink_commits_each_batch() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    let mut c = cfg(brokers.clone(), false);
    c.producer
        .insert("transactional.id".into(), "sluice-test".into());
    let mut sink = KafkaSink::new(&c).expect("sink");
    assert!(sink.is_transactional());
    sink.init_transactions().await.expect("init");
    for (pos, n) in [(4, 3), (900, 2)] {
        let ack = sink.publish(&events(pos, n)).await.expect("committed");
        settled(ack).await.expect("delivered");
    }
    let got = tokio::task::spawn_blocking(move || read_all(&brokers, "events", 5))
        .await
        .expect("reader");
    assert_eq!(got.len(), 5, "{got:?}");
}
