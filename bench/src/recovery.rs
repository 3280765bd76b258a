//! Measurement 7: how long exactly-once recovery's read-back takes at start, against the
//! partition count. For 1, 10 and 100 partitions, a fresh topic gets 20 records per partition
//! with Sluice's position headers, then Sluice's own read-back (`sluice::bench::read_back`,
//! what every start in exactly-once mode runs) reads the last record of each partition, three
//! times; the table shows the median and the runs.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::{broker, log, Env};

/// One partition count's read-back times.
pub struct Row {
    pub partitions: i32,
    pub runs_ms: Vec<f64>,
}

impl Row {
    fn median_ms(&self) -> f64 {
        let mut v = self.runs_ms.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

const RECORDS_PER_PARTITION: u64 = 20;

pub async fn run(env: &Env) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for partitions in [1, 10, 100] {
        let topic = format!("bench-{}-recovery-{partitions}", env.stamp).to_lowercase();
        broker::create_topic_with(&env.kafka, &topic, partitions).await?;
        fill(&env.kafka, &topic, partitions)?;
        let mut runs_ms = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let (seen, holding) = sluice::bench::read_back(&env.kafka, &topic)
                .await
                .map_err(|e| anyhow::anyhow!("read-back of {topic}: {e}"))?;
            runs_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if seen != partitions || holding != partitions as usize {
                bail!("read back {holding} of {seen} partitions of {topic}, not {partitions}");
            }
        }
        let row = Row {
            partitions,
            runs_ms,
        };
        log(format!(
            "  {partitions} partitions: read back in {:.0} ms (median of 3)",
            row.median_ms()
        ));
        rows.push(row);
        broker::delete_topic(env, &topic).await;
    }
    Ok(rows)
}

/// Writes [`RECORDS_PER_PARTITION`] records with position headers to every partition.
fn fill(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .context("creating the producer")?;
    let mut pos = 4u64;
    for n in 0..RECORDS_PER_PARTITION {
        for p in 0..partitions {
            pos += 100;
            let (pos_s, row) = (pos.to_string(), n.to_string());
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "sluice.file",
                    value: Some("mysql-bin.000001"),
                })
                .insert(Header {
                    key: "sluice.pos",
                    value: Some(pos_s.as_str()),
                })
                .insert(Header {
                    key: "sluice.row",
                    value: Some(row.as_str()),
                })
                .insert(Header {
                    key: "sluice.checkpoint",
                    value: Some("mysql-bin.000001:4"),
                });
            producer
                .send(
                    BaseRecord::to(topic)
                        .partition(p)
                        .key("k")
                        .payload("{}")
                        .headers(headers),
                )
                .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the records")?;
    Ok(())
}

/// The section of `results.md`.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Exactly-once read-back at start\n\nEvery start in exactly-once mode reads the last \
         record of each partition Sluice writes to. Sluice's own read-back, {RECORDS_PER_PARTITION} \
         records per partition, three runs each:\n"
    );
    let _ = writeln!(s, "| partitions | read-back (median) | runs |");
    let _ = writeln!(s, "|---:|---:|---|");
    for r in rows {
        let runs: Vec<String> = r.runs_ms.iter().map(|m| format!("{m:.0}")).collect();
        let _ = writeln!(
            s,
            "| {} | {:.0} ms | {} ms |",
            r.partitions,
            r.median_ms(),
            runs.join(", ")
        );
    }
    s
}
