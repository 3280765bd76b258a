//! Exactly-once recovery's read-back: the last Sluice record of every partition Sluice writes.
//!
//! Design note: for each topic, a metadata request gives the partitions and, for each, the
//! watermarks give its last offset. A plain consumer (no group, `read_committed`) reads from
//! just before the end: the last record normally carries the identity headers. When the end
//! holds records without them (a transaction's markers, or another producer's records, which
//! the guarantee's conditions rule out), it looks further back, 16 times further each time, up
//! to [`LOOKBACK`] records; a partition whose last records are all foreign stops Sluice with
//! the conditions to meet, rather than guess. One request per partition: the cost of a start
//! grows with the partition count (measured in `docs/BENCHMARKS.md`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, client_config, Context, Role};
use super::exactly_once::{self, Mark, CHECKPOINT};
use crate::config::KafkaConfig;
use crate::sink::SinkError;
use crate::state::BinlogPosition;

/// How many records from a partition's end recovery reads, at most, to find Sluice's last.
const LOOKBACK: i64 = 4096;

/// What the partitions held when read.
#[derive(Debug, Default)]
pub(crate) struct ReadBack {
    /// The last identity in each (topic, partition) that holds a Sluice record.
    pub(crate) marks: HashMap<(String, i32), Mark>,
    /// Each existing topic's partition count.
    pub(crate) partitions: HashMap<String, i32>,
    /// The highest `sluice.checkpoint` among those last records: a position before which every
    /// event was acknowledged everywhere.
    pub(crate) checkpoint: Option<BinlogPosition>,
    /// The `sluice.snapshot.after` of each partition's last record, where it has one.
    pub(crate) snapshot_after: HashMap<(String, i32), std::sync::Arc<str>>,
}

/// Reads back the last Sluice record of every partition of `topics` (off the async threads).
pub(crate) async fn read_back(
    cfg: &KafkaConfig,
    topics: Vec<String>,
    timeout: Duration,
) -> Result<ReadBack, SinkError> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || read_back_now(&cfg, &topics, timeout))
        .await
        .map_err(|_| SinkError::ProducerGone)?
}

fn read_back_now(
    cfg: &KafkaConfig,
    topics: &[String],
    timeout: Duration,
) -> Result<ReadBack, SinkError> {
    let (consumer, _ctx): (BaseConsumer<Context>, _) =
        client::create(&client_config(cfg, Role::Reader))?;
    let mut out = ReadBack::default();
    for topic in topics {
        let failed = |what: &str, e: KafkaError, p: i32| read_error(topic, p, what, &e);
        let md = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| failed("metadata", e, -1))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            continue;
        };
        match t.error().map(RDKafkaErrorCode::from) {
            None => {}
            // Not created yet: it holds nothing.
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => continue,
            Some(code) => return Err(failed("metadata", KafkaError::MetadataFetch(code), -1)),
        }
        let n = t.partitions().len() as i32;
        out.partitions.insert(topic.clone(), n);
        // (partition, low, high, window) of each partition that holds records.
        let mut pending = Vec::new();
        for p in 0..n {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_err(|e| failed("offsets", e, p))?;
            if high > low {
                pending.push((p, low, high, 1i64));
            }
        }
        // Every partition of the topic at once; a partition whose end holds no Sluice record
        // is read again further back.
        while !pending.is_empty() {
            let starts: Vec<(i32, i64)> = pending
                .iter()
                .map(|&(p, low, high, window)| (p, (high - window).max(low)))
                .collect();
            // A little longer for many partitions: each is one more fetch.
            let budget = timeout + Duration::from_millis(50) * starts.len() as u32;
            let found = last_marks(&consumer, topic, &starts, budget)
                .map_err(|e| failed("reading the last records", e, -1))?;
            let mut again = Vec::new();
            for (p, low, high, window) in pending {
                match found.get(&p).cloned() {
                    Some(Last::Found(mark, checkpoint, after)) => {
                        if let Some(a) = after {
                            out.snapshot_after.insert((topic.clone(), p), a);
                        }
                        if let Some(c) = checkpoint {
                            if out
                                .checkpoint
                                .as_ref()
                                .is_none_or(|best| exactly_once::later(&c, best))
                            {
                                out.checkpoint = Some(c);
                            }
                        }
                        out.marks.insert((topic.clone(), p), mark);
                    }
                    // A record of a Sluice without exactly-once mode (an earlier version, or
                    // EXACTLY_ONCE=false): its identity need not follow this version's order,
                    // so nothing is skipped in this partition on this start.
                    Some(Last::Legacy) => {
                        tracing::warn!(topic = %topic, partition = p, "the partition's last Sluice record was written without exactly-once mode: nothing is skipped there on this start, so events published after the saved position can come twice");
                    }
                    None if window < LOOKBACK && high - window > low => {
                        again.push((p, low, high, window * 16));
                    }
                    None => {
                        return Err(SinkError::ReadBack {
                            topic: topic.clone(),
                            partition: p,
                            detail: format!(
                                "none of its last {} records carries Sluice's position headers: \
                                 another producer writes to it. Exactly-once needs topics that \
                                 only this Sluice pipeline writes; give it its own topic, or set \
                                 EXACTLY_ONCE=false (at-least-once)",
                                window.min(high - low)
                            ),
                            permanent: true,
                        });
                    }
                }
            }
            pending = again;
        }
    }
    Ok(out)
}

/// A read-back failure, permanent when a retry cannot fix it (a missing READ ACL, …).
fn read_error(topic: &str, partition: i32, what: &str, e: &KafkaError) -> SinkError {
    use super::errors::{classify, Class};
    let code = e.rdkafka_error_code();
    let hint = match code {
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => Some(
            "Grant the Sluice principal READ and DESCRIBE on the topic (exactly-once mode reads \
             back each partition's last record at start), or set EXACTLY_ONCE=false",
        ),
        Some(c) => match classify(c) {
            Class::Permanent(hint) => Some(hint),
            _ => None,
        },
        None => None,
    };
    SinkError::ReadBack {
        topic: topic.to_owned(),
        partition,
        detail: match hint {
            Some(h) => format!("{what}: {e}. {h}"),
            None => format!("{what}: {e}"),
        },
        permanent: hint.is_some(),
    }
}

/// What the end of one partition holds.
#[derive(Clone)]
enum Last {
    /// The last exactly-once record: its identity, checkpoint (`None` while a snapshot ran)
    /// and `sluice.snapshot.after`.
    Found(Mark, Option<BinlogPosition>, Option<std::sync::Arc<str>>),
    /// The last Sluice record carries no `sluice.checkpoint`: written without exactly-once.
    Legacy,
}

/// The last Sluice record in each partition of `topic`, reading from each `(partition,
/// offset)` of `starts` to the partition's end; a partition with none is left out.
fn last_marks(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    starts: &[(i32, i64)],
    timeout: Duration,
) -> Result<HashMap<i32, Last>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for &(p, from) in starts {
        tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut last = HashMap::new();
    // The end is what each partition's EOF event says, not the high watermark asked before: a
    // broker may report a high watermark behind its last batch (tansu reports the last batch's
    // base offset), and stopping there would miss records.
    let mut at_end = std::collections::HashSet::new();
    while at_end.len() < starts.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Retryable: the broker may be slow, or moving leaders.
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(left.min(Duration::from_millis(500))) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(e),
            // Only this topic is assigned; a record of another is a leftover of the last one.
            Some(Ok(m)) if m.topic() != topic => {}
            Some(Ok(m)) => {
                if let Some(mark) = Mark::of_message(&m) {
                    let checkpoint = m.headers().and_then(|h| {
                        h.iter()
                            .find(|x| x.key == CHECKPOINT)
                            .map(|x| x.value.and_then(|v| std::str::from_utf8(v).ok()))
                    });
                    let after = m.headers().and_then(|h| {
                        h.iter()
                            .find(|x| x.key == exactly_once::SNAPSHOT_AFTER)
                            .and_then(|x| x.value)
                            .and_then(|v| std::str::from_utf8(v).ok())
                            .map(std::sync::Arc::<str>::from)
                    });
                    let found = match checkpoint {
                        None => Last::Legacy,
                        Some(v) => Last::Found(mark, v.and_then(exactly_once::parse), after),
                    };
                    last.insert(m.partition(), found);
                }
            }
        }
    }
    Ok(last)
}
