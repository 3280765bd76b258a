//! Measurement 2, the broker limit: what librdkafka itself pushes into the same broker, so that
//! the pipeline's Kafka figure has a ceiling measured in the same run. A plain
//! `ThreadedProducer` with Sluice's own producer settings (`PRODUCER_DEFAULTS`) sends the very
//! messages Sluice would publish for the dataset (same keys, values and `sluice.*` headers,
//! made by Sluice's reader and encoder) to a fresh one-partition topic. Every message and its
//! headers are built before the clock starts; the clock runs from the first send to the last
//! delivery report, counted in the delivery callback.
//!
//! Also the broker helpers the other measurements share: the liveness check, topic creation,
//! deletion (tansu keeps topics in memory, so each run's topic is deleted after it) and the
//! message count of a topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice::encode::KeyMode;

use crate::dataset::Dataset;
use crate::{log, sys, Env, Run};

/// One message as Sluice publishes it, minus the headers object (built per run, before the
/// clock, because a send consumes it).
pub struct Message {
    key: Vec<u8>,
    value: Vec<u8>,
    file: Arc<str>,
    pos: u64,
    row: u32,
    gtid: Option<Arc<str>>,
}

pub struct Messages {
    list: Vec<Message>,
    /// Bytes of keys and values.
    pub bytes: u64,
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// Fails with the fix when the broker does not answer within 5 s.
pub async fn check_broker(brokers: &str) -> Result<()> {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let c: BaseConsumer = client(&brokers).create()?;
        c.fetch_metadata(None, Duration::from_secs(5))
            .map(|_| ())
            .with_context(|| {
                format!("the broker at {brokers} does not answer: run bash scripts/services.sh up")
            })
    })
    .await?
}

/// Creates `topic` with one partition, as Sluice creates its topic.
pub async fn create_topic(brokers: &str, topic: &str) -> Result<()> {
    create_topic_with(brokers, topic, 1).await
}

/// Creates `topic` with `partitions` partitions (an existing one is fine).
pub async fn create_topic_with(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(brokers).create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .with_context(|| format!("creating the topic {topic} on {brokers}"))?;
    for r in res {
        if let Err((t, e)) = r {
            if e != RDKafkaErrorCode::TopicAlreadyExists {
                bail!("creating the topic {t}: {e}");
            }
        }
    }
    Ok(())
}

/// Deletes `topic` (tansu's own CLI, as `scripts/bench-snapshot.sh` does; the admin API
/// otherwise). A failure is logged, not fatal.
pub async fn delete_topic(env: &Env, topic: &str) {
    if env.tansu.exists() {
        let ok = tokio::process::Command::new(&env.tansu)
            .args([
                "topic",
                "delete",
                "--broker",
                &format!("tcp://{}", env.kafka),
                topic,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
    }
    let deleted = async {
        let admin: AdminClient<DefaultClientContext> = client(&env.kafka).create().ok()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let r = admin.delete_topics(&[topic], &opts).await.ok()?;
        r.into_iter().all(|r| r.is_ok()).then_some(())
    };
    if deleted.await.is_none() {
        log(format!("could not delete the topic {topic}"));
    }
}

/// How many messages partition 0 of `topic` holds: one past the offset of its last message.
/// tansu's high watermark is the base offset of the last record batch, not one past its last
/// record, so the last batch is read from there.
pub async fn message_count(brokers: &str, topic: &str) -> Option<u64> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = client(&brokers)
            .set("group.id", "sluice-bench")
            .set("enable.auto.commit", "false")
            .create()
            .ok()?;
        let (_, high) = c
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .ok()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(high.saturating_sub(1).max(0)))
            .ok()?;
        c.assign(&tpl).ok()?;
        let mut count = high;
        let mut idle = 0;
        while idle < 5 {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    idle = 0;
                    count = count.max(m.offset() + 1);
                }
                Some(Err(_)) | None => idle += 1,
            }
        }
        u64::try_from(count).ok()
    })
    .await
    .ok()
    .flatten()
}

/// The dataset's messages, from Sluice's own reader and encoder (untimed).
pub async fn build_messages(env: &Env, ds: &Dataset) -> Result<Messages> {
    let t0 = Instant::now();
    let cfg = crate::decode::config(env, "broker-messages")?;
    let mut list = Vec::with_capacity(ds.rows as usize);
    let mut bytes = 0u64;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    sluice::bench::read_binlog(&cfg, ds.start.clone(), &ds.end, |batch| {
        for ev in &batch.events {
            sluice::bench::encode_message(ev, KeyMode::Table, &mut key, &mut value);
            bytes += (key.len() + value.len()) as u64;
            list.push(Message {
                key: key.clone(),
                value: value.clone(),
                file: ev.position.file.clone(),
                pos: ev.position.pos,
                row: ev.position.row,
                gtid: ev.position.gtid.clone(),
            });
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("reading the dataset for the broker limit's messages: {e}"))?;
    if list.len() as u64 != ds.rows {
        bail!(
            "Sluice's reader gave {} events for the dataset, not {}",
            list.len(),
            ds.rows
        );
    }
    log(format!(
        "  built {} messages ({:.0} MiB of keys and values, e.g. key {:?}) in {:.1} s",
        list.len(),
        bytes as f64 / (1 << 20) as f64,
        String::from_utf8_lossy(&list[0].key),
        t0.elapsed().as_secs_f64()
    ));
    Ok(Messages { list, bytes })
}

/// Counts delivery reports.
#[derive(Default)]
struct Counter {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Clone, Default)]
struct Counting(Arc<Counter>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = self.0.first_error.lock() {
                    f.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// The headers Sluice's Kafka sink puts on a message.
fn headers(m: &Message) -> OwnedHeaders {
    let (pos, row) = (m.pos.to_string(), m.row.to_string());
    let mut h = OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: "sluice.file",
            value: Some(m.file.as_bytes()),
        })
        .insert(Header {
            key: "sluice.pos",
            value: Some(pos.as_bytes()),
        })
        .insert(Header {
            key: "sluice.row",
            value: Some(row.as_bytes()),
        });
    if let Some(g) = &m.gtid {
        h = h.insert(Header {
            key: "sluice.gtid",
            value: Some(g.as_bytes()),
        });
    }
    h
}

/// One run of the broker limit; gives the messages back for the next run.
pub async fn run(env: &Env, msgs: Messages, n: u32) -> Result<(Run, Messages)> {
    let topic = format!("bench-{}-broker-{n}", env.stamp).to_lowercase();
    let warmup = format!("{topic}-warmup");
    create_topic(&env.kafka, &topic).await?;
    create_topic(&env.kafka, &warmup).await?;
    let kafka = env.kafka.clone();
    let extra = env.producer.clone();
    let services = env.services.start();
    let (t, w) = (topic.clone(), warmup.clone());
    let (secs, cpu, msgs) = tokio::task::spawn_blocking(move || -> Result<(f64, f64, Messages)> {
        let mut cfg = client(&kafka);
        cfg.set("client.id", "sluice-bench");
        for (k, v) in sluice::bench::PRODUCER_DEFAULTS {
            cfg.set(*k, *v);
        }
        for (k, v) in &extra {
            cfg.set(k, v);
        }
        let ctx = Counting::default();
        let producer: ThreadedProducer<Counting> = cfg.create_with_context(ctx.clone())?;
        // A limit is measured warm: the connection, the idempotent producer id (about 1 s
        // against tansu) and the topic's metadata come before the clock, through one message
        // to a warm-up topic, deleted after the run. What its own producer's start costs Sluice
        // shows in the pipeline's `first ack` column.
        producer
            .client()
            .fetch_metadata(Some(&t), Duration::from_secs(10))
            .context("reading the topic's metadata")?;
        let first = msgs.list.first().context("no messages")?;
        producer
            .send(
                BaseRecord::<'_, [u8], [u8]>::to(&w)
                    .key(&first.key[..])
                    .payload(&first.value[..]),
            )
            .map_err(|(e, _)| anyhow::anyhow!("warming the reference producer up: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while ctx.0.ok.load(Ordering::Relaxed) + ctx.0.failed.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                bail!("the warm-up message was not acknowledged within 30 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        ctx.0.ok.store(0, Ordering::Relaxed);
        ctx.0.failed.store(0, Ordering::Relaxed);
        let all: Vec<OwnedHeaders> = msgs.list.iter().map(headers).collect();
        let total = msgs.list.len() as u64;
        let cpu0 = sys::self_cpu_seconds();
        let t0 = Instant::now();
        for (m, h) in msgs.list.iter().zip(all) {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&t)
                .key(&m.key[..])
                .payload(&m.value[..])
                .headers(h);
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err((e, _)) => bail!("the reference producer could not send: {e}"),
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        while ctx.0.ok.load(Ordering::Relaxed) + ctx.0.failed.load(Ordering::Relaxed) < total {
            if Instant::now() > deadline {
                bail!("the broker did not acknowledge every message within 300 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = sys::self_cpu_seconds() - cpu0;
        let failed = ctx.0.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = ctx.0.first_error.lock().ok().and_then(|f| f.clone());
            bail!(
                "{failed} of {total} messages failed (first: {})",
                first.unwrap_or_default()
            );
        }
        drop(producer);
        Ok((secs, cpu, msgs))
    })
    .await??;
    let (mariadbd_cpu_s, broker_cpu_s) = services.since();
    let published = message_count(&env.kafka, &topic).await;
    if published.is_some_and(|p| p != msgs.list.len() as u64) {
        log(format!(
            "  warning: the topic holds {} messages, not {}",
            published.unwrap_or_default(),
            msgs.list.len()
        ));
    }
    delete_topic(env, &topic).await;
    delete_topic(env, &warmup).await;
    Ok((
        Run {
            rows: msgs.list.len() as u64,
            seconds: secs,
            cpu_s: Some(cpu),
            mariadbd_cpu_s,
            broker_cpu_s,
            published,
            note: Some(format!(
                "{:.0} MiB of keys and values",
                msgs.bytes as f64 / (1 << 20) as f64
            )),
            ..Run::default()
        },
        msgs,
    ))
}
