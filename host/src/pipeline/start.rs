//! What the stages need before they start: the start-up checks, the position to resume from,
//! and the sink.
//!
//! Design note: [`preflight`] runs once, before the first life of the stages, and checks what
//! no retry can heal: the MySQL side (credentials, binlog format, the captured tables) and the
//! broker (reachable within [`CONNECT_TIMEOUT`], the topics exist or can be created). Each life
//! then [resumes](resume) from the saved position (or the binlog head, saved at once) and
//! [builds its sink](sink), making the topics again after a restart, since a broker that lost
//! its state (memory storage) has forgotten them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{unless_stopped, PipelineError};
use crate::config::{Config, Recover};
use crate::sink::kafka::{self, ReadBack, Watermark, CONNECT_TIMEOUT};
use crate::sink::{KafkaSink, Sink, SinkError, StdoutSink};
use crate::source::binlog::{self, SourceError};
use crate::source::snapshot::drive::Begin;
use crate::source::snapshot::plan::{self, Decision};
use crate::state::{BinlogPosition, SnapshotState, SnapshotStatus, TableProgress, TableStatus};

use super::stages::Stores;

/// Every topic Sluice itself publishes to: the main one and the dead-letter topics.
fn own_topics(cfg: &Config) -> Vec<String> {
    let Some(k) = &cfg.kafka else {
        return Vec::new();
    };
    // A topic per table (`{schema}`/`{table}`): each is recorded in the state directory
    // before its first record, as a routed topic is.
    let mut topics: Vec<String> = (!k.topic_per_table())
        .then(|| k.topic.clone())
        .into_iter()
        .collect();
    topics.extend(k.dead_letter_topic.clone());
    topics.extend(
        cfg.transforms
            .iter()
            .filter_map(|t| t.dead_letter_topic.clone()),
    );
    unique(topics)
}

/// `topics` without repeats, in first-seen order.
fn unique(mut topics: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    topics.retain(|t| seen.insert(t.clone()));
    topics
}

/// Creates the topics that are missing (after checking the metadata).
async fn ensure_topics(cfg: &Config, timeout: Duration) -> Result<(), SinkError> {
    if let Some(k) = &cfg.kafka {
        for t in own_topics(cfg) {
            kafka::ensure_topic(k, &t, timeout).await?;
        }
    }
    Ok(())
}

/// The tables captured now: the named ones, and those the patterns match on the server (logged,
/// since they can change as tables are created).
pub(super) async fn captured_now(cfg: &Config) -> Result<Vec<(String, String)>, SourceError> {
    if !cfg.has_patterns() {
        return Ok(cfg.captured_tables());
    }
    let tables = matched_now(cfg).await?;
    let include: Vec<String> = cfg.mysql.include.iter().map(|p| p.to_string()).collect();
    let exclude: Vec<String> = cfg.mysql.exclude.iter().map(|p| p.to_string()).collect();
    tracing::info!(?include, ?exclude, count = tables.len(), first = ?tables.iter().take(10).collect::<Vec<_>>(), "the patterns match these tables now; tables created later that match are captured from their first row");
    Ok(tables)
}

/// The tables the patterns match on the server now (and the named ones), without logging.
async fn matched_now(cfg: &Config) -> Result<Vec<(String, String)>, SourceError> {
    let mut conn = binlog::connect(&cfg.mysql).await?;
    let tables = crate::source::objects::captured_tables(&mut conn, cfg)
        .await
        .map_err(|e| SourceError::Query {
            context: e.what,
            source: e.source,
        });
    let _ = conn.disconnect().await;
    tables
}

/// The start-up checks: what a retry cannot heal stops Sluice here, at once.
pub(super) async fn preflight(cfg: &Config) -> Result<(), PipelineError> {
    let tables = captured_now(cfg).await?;
    binlog::preflight(&cfg.mysql, &tables).await?;
    let mut conn = binlog::connect(&cfg.mysql).await?;
    let accepted = crate::source::foreign_keys::check_capturable(
        &mut conn,
        &tables,
        cfg.mysql.accept_fk_cascades,
    )
    .await;
    let _ = conn.disconnect().await;
    let (accepted, sequences) = accepted?;
    for (s, t) in sequences {
        tracing::warn!(sequence = %format!("{s}.{t}"), "MYSQL_TABLE names a SEQUENCE: its rows are the sequence's internal state and are never published");
    }
    for key in accepted {
        tracing::warn!(
            child = %format!("{}.{}", key.child.0, key.child.1),
            parent = %format!("{}.{}", key.parent.0, key.parent.1),
            constraint = %key.constraint,
            on_delete = %key.delete_rule,
            on_update = %key.update_rule,
            "capturing the child of a cascading foreign key (ACCEPT_FK_CASCADES=true): the binlog does not hold the rows a cascade changes, so this table's copy can drift"
        );
    }
    if let Some(k) = &cfg.kafka {
        ensure_topics(cfg, CONNECT_TIMEOUT)
            .await
            .map_err(|e| match e {
                // A topic that cannot be made in time at start is an unreachable broker.
                SinkError::Topic { topic, source } if !kafka::is_permanent(&source) => {
                    SinkError::Unreachable {
                        brokers: k.brokers.clone(),
                        timeout: CONNECT_TIMEOUT,
                        detail: format!("creating the topic {topic:?} failed: {source}"),
                    }
                }
                e => e,
            })?;
    }
    Ok(())
}

/// Why a life of the stages must take a new snapshot whatever the state says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Force {
    No,
    /// `FORCE_SNAPSHOT`, until this process's snapshot has started.
    Asked,
    /// The saved position was purged (`SNAPSHOT_WHEN_NEEDED`), until the new snapshot started.
    Purged,
}

/// What a life of the stages starts with.
#[derive(Debug)]
pub(super) enum Start {
    /// Stream the binlog from this position.
    Stream(BinlogPosition),
    /// Take (or resume) the initial snapshot, then stream from its point.
    Snapshot(Begin),
}

/// What a life of the stages starts with: a snapshot when the settings and the state files
/// call for one (`source::snapshot::plan`), else the saved position, or (none saved yet) the
/// binlog's current head, saved at once. `force`: see [`Force`]. `recovered`: the position the
/// output topics carry (exactly-once mode), used under `state.recover = "kafka"` when no
/// position is saved. With the start, whether it continues published history (a saved or
/// recovered position, a resumed snapshot): only then may exactly-once skip what the
/// partitions hold. `None`: a stop came first.
pub(super) async fn resume(
    cfg: &Config,
    stores: &Stores,
    shutdown: &watch::Receiver<bool>,
    force: Force,
    recovered: Option<BinlogPosition>,
    kafka_holds: &[String],
    snapshot_in_kafka: Option<(String, BinlogPosition)>,
) -> Result<Option<(Start, bool)>, PipelineError> {
    let store = &stores.position;
    let saved = store.load()?;
    let snapshot = stores.snapshot.load()?;
    let finished = snapshot
        .as_ref()
        .is_none_or(|s| s.status == SnapshotStatus::Complete);
    if saved.is_none() && cfg.recover == Recover::Kafka && force == Force::No && finished {
        match recovered {
            Some(p) => {
                // No position file: every record carries the position up to which everything
                // before it was acknowledged, and the highest one read back is where to resume.
                // Such a position exists only once streaming began, so any snapshot had
                // completed: that is recorded too, so that no later start takes it again.
                tracing::warn!(position = %p, file = %store.path().display(), "no saved position: resuming from the position read back from Kafka (state.recover = \"kafka\")");
                if snapshot.is_none() && cfg.snapshot.initial {
                    stores.snapshot.save(&recovered_snapshot(cfg, &p))?;
                }
                store.save(&p)?;
                return Ok(Some((Start::Stream(p), true)));
            }
            // No state files, and the output holds rows of an unfinished snapshot (a finished
            // one leaves a checkpoint header): it is resumed from its point, not taken again.
            // Not with patterns: the tables they match may have changed since, and the
            // snapshot's table numbers with them.
            None if snapshot.is_none()
                && cfg.snapshot.initial
                && !cfg.has_patterns()
                && snapshot_in_kafka.is_some() =>
            {
                let (id, point) = snapshot_in_kafka.expect("checked above");
                return Ok(Some((
                    Start::Snapshot(Begin::Recover {
                        id,
                        point,
                        held: Vec::new(),
                    }),
                    true,
                )));
            }
            None => tracing::info!(
                "no saved position, and no position in the output topics (nothing published in exactly-once mode yet): starting afresh"
            ),
        }
    }
    let decision = plan::decide(plan::Inputs {
        initial: cfg.snapshot.initial,
        force: force != Force::No,
        resume: cfg.snapshot.enabled(),
        restart: force == Force::Purged,
        snapshot,
        position: saved.clone(),
        snapshot_file: &stores.snapshot.path().display().to_string(),
        kafka_holds,
    })?;
    match decision {
        Decision::Stream => {}
        Decision::Fresh { supersedes } => {
            if let Some(p) = supersedes {
                tracing::warn!(position = %p, file = %store.path().display(), "taking a new snapshot; it supersedes the saved position (streaming continues from the snapshot's own point)");
            }
            return Ok(Some((Start::Snapshot(Begin::Fresh), false)));
        }
        Decision::Resume { state, from } => {
            return Ok(Some((
                Start::Snapshot(Begin::Resume {
                    state,
                    from,
                    held: Vec::new(),
                }),
                true,
            )));
        }
    }
    if let Some(p) = saved {
        tracing::info!(position = %p, file = %store.path().display(), "resuming from the saved position");
        // A failover (MYSQL_HOST now names a promoted replica): resume by the GTID state.
        let Some(p) =
            unless_stopped(shutdown, crate::source::failover::relocate(&cfg.mysql, p)).await
        else {
            return Ok(None);
        };
        return Ok(Some((Start::Stream(p?), true)));
    }
    let head = unless_stopped(shutdown, async {
        let mut conn = binlog::connect(&cfg.mysql).await?;
        let head = binlog::current_head(&mut conn).await?;
        let _ = conn.disconnect().await;
        Ok::<_, SourceError>(head)
    })
    .await;
    let Some(head) = head else { return Ok(None) };
    let head = head?;
    tracing::info!(position = %head, "no saved position: starting from the current binlog head");
    // Record it at once, so that a restart before the first commit resumes here rather than at
    // a later head (which would skip what happened in between).
    store.save(&head)?;
    Ok(Some((Start::Stream(head), false)))
}

/// The record of a completed snapshot that a recovery from Kafka writes: the output already
/// holds the snapshot (a checkpoint header exists only once streaming began), so no later
/// start may take it again.
fn recovered_snapshot(cfg: &Config, at: &BinlogPosition) -> SnapshotState {
    let tables = cfg
        .captured_tables()
        .into_iter()
        .map(|(schema, table)| TableProgress {
            schema,
            table,
            key: Vec::new(),
            key_source: "recovered from Kafka".into(),
            key_sig: None,
            state: TableStatus::Done,
            after: None,
            rows: 0,
            chunks: 0,
            reread: false,
        })
        .collect();
    let mut s = SnapshotState::new(at, "recovered from Kafka".into(), tables);
    s.status = SnapshotStatus::Complete;
    s.completed_at = Some(s.started_at);
    s
}

/// Exactly-once: a resumed snapshot learns where each output partition's last row of it is
/// (from `sluice.snapshot.after`), so that it can skip, partition by partition, the rows it
/// reads again that a partition already holds (see `source::snapshot::drive::HeldCursor`).
pub(super) fn held_snapshot_cursors(start: &mut Start, held: &ReadBack) {
    use crate::sink::kafka::exactly_once::SnapshotAfter;
    use crate::source::snapshot::drive::HeldCursor;
    let (id, out) = match start {
        Start::Snapshot(Begin::Resume { state, held, .. }) => (state.id.clone(), held),
        Start::Snapshot(Begin::Recover { id, held, .. }) => (id.clone(), held),
        _ => return,
    };
    let mut seen = std::collections::HashSet::new();
    let mut cursors: Vec<HeldCursor> = held
        .snapshot_after
        .values()
        .filter_map(|v| SnapshotAfter::parse(v))
        .filter(|a| a.id == id)
        .filter(|a| seen.insert((a.table, a.cursor_text.clone())))
        .map(|a| HeldCursor {
            table: a.table,
            text: a.cursor_text,
            cursor: a.cursor,
        })
        .collect();
    cursors.sort_by(|a, b| (a.table, &a.text).cmp(&(b.table, &b.text)));
    *out = cursors;
}

/// The snapshot whose rows the partitions read back hold last, when exactly one snapshot's
/// are there, and where to catch up from to resume it: the earliest last record of those
/// partitions. A snapshot row's `sluice.file`/`sluice.pos` are the point it was read at, and
/// a streamed change of a resumed snapshot's catch-up (carrying the snapshot's header) is
/// where that catch-up had got in its partition.
pub(super) fn snapshot_point_in_kafka(held: &ReadBack) -> Option<(String, BinlogPosition)> {
    use crate::sink::kafka::exactly_once::{later, SnapshotAfter};
    let ids = snapshot_in_kafka(held);
    let [id] = ids.as_slice() else { return None };
    held.marks
        .iter()
        .filter(|(k, _)| {
            held.snapshot_after
                .get(*k)
                .and_then(|v| SnapshotAfter::parse(v))
                .is_some_and(|a| a.id == *id)
        })
        .map(|(_, m)| BinlogPosition {
            file: m.file.to_string(),
            pos: m.pos,
            gtid: None,
            timestamp: 0,
        })
        .reduce(|a, b| if later(&a, &b) { b } else { a })
        .map(|p| (id.clone(), p))
}

/// Forgets the last records written from another MySQL server's binlog (a failover to a
/// promoted replica): their file offsets say nothing about this server's, so their partitions
/// skip nothing on this start (the events after the last acknowledged position may come
/// twice there; none is lost).
pub(super) fn forget_other_servers(held: &mut ReadBack, server: Option<&str>) {
    let Some(here) = server else { return };
    let before = held.marks.len();
    held.marks
        .retain(|_, m| m.server.as_deref().is_none_or(|s| s == here));
    let dropped = before - held.marks.len();
    if dropped > 0 {
        tracing::warn!(partitions = dropped, server = %here, "exactly-once: the last records of these partitions come from another MySQL server's binlog (a failover): this start skips nothing there, so events after the last acknowledged position may be published twice");
    }
}

/// The ids of the snapshots whose rows the partitions read back hold last.
pub(super) fn snapshot_in_kafka(held: &ReadBack) -> Vec<String> {
    use crate::sink::kafka::exactly_once::SnapshotAfter;
    let mut ids: Vec<String> = held
        .snapshot_after
        .values()
        .filter_map(|v| SnapshotAfter::parse(v).map(|a| a.id))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What exactly-once recovery read back before a life of the stages.
pub(super) enum Held {
    /// Exactly-once mode is off (or the sink is stdout).
    Off,
    /// A stop came first.
    Stopped,
    /// Boxed: large, and made once per life.
    Read(Box<ReadBack>),
}

/// Every topic exactly-once recovery reads back: Sluice's own, those transforms routed to and
/// the tables' own topics (recorded in the state directory before their first record),
/// `kafka.recover_topics`, and with a topic per table, the topics of the tables captured now:
/// a lost state directory forgot which tables had one.
async fn recovery_topics(cfg: &Config, stores: &Stores) -> Result<Vec<String>, PipelineError> {
    let mut topics = own_topics(cfg);
    if let Some(k) = &cfg.kafka {
        topics.extend(k.recover_topics.iter().cloned());
        if k.topic_per_table() {
            let tables = match cfg.has_patterns() {
                true => matched_now(cfg).await?,
                false => cfg.captured_tables(),
            };
            topics.extend(tables.iter().map(|(s, t)| k.topic_for(s, t)));
        }
    }
    topics.extend(stores.topics.load()?);
    Ok(unique(topics))
}

/// Reads back the last record of every partition Sluice writes to, in exactly-once mode.
/// Every producer of an earlier life of this process is gone by now (its life ended), so what
/// is read is final.
pub(super) async fn read_back(
    cfg: &Config,
    stores: &Stores,
    shutdown: &watch::Receiver<bool>,
) -> Result<Held, PipelineError> {
    let Some(k) = cfg.kafka.as_ref().filter(|k| k.exactly_once) else {
        return Ok(Held::Off);
    };
    let started = std::time::Instant::now();
    let read = async {
        let topics = recovery_topics(cfg, stores).await?;
        Ok::<_, PipelineError>(kafka::read_back(k, topics, CONNECT_TIMEOUT).await?)
    };
    match unless_stopped(shutdown, read).await {
        None => Ok(Held::Stopped),
        Some(r) => {
            let r = r?;
            tracing::info!(partitions = r.partitions.values().sum::<i32>(), holding = r.marks.len(), checkpoint = ?r.checkpoint.as_ref().map(|p| p.to_string()), took = ?started.elapsed(), "exactly-once: read back the last record of each partition");
            Ok(Held::Read(Box::new(r)))
        }
    }
}

/// The sink of a life of the stages. The start-up checks made the topics; a later life
/// (`first` false) makes them again. `held`: what the partitions held (exactly-once mode), and
/// `start` where this life begins, which the exactly-once watermark starts from. `None`: a stop
/// came first.
pub(super) async fn sink(
    cfg: &Config,
    stores: &Stores,
    shutdown: &watch::Receiver<bool>,
    first: bool,
    start: &Start,
    resumed: bool,
    held: Option<ReadBack>,
) -> Result<Option<Sink>, PipelineError> {
    if !first {
        match unless_stopped(shutdown, ensure_topics(cfg, CONNECT_TIMEOUT)).await {
            None => return Ok(None),
            Some(r) => r?,
        }
    }
    Ok(Some(match &cfg.kafka {
        Some(k) => {
            let mut sink = KafkaSink::new(k)?;
            if let Some(mut held) = held {
                let uuid = binlog::mysql_server_uuid(&cfg.mysql);
                let Some(server) = unless_stopped(shutdown, uuid).await else {
                    return Ok(None);
                };
                let server = server?.map(Arc::<str>::from);
                forget_other_servers(&mut held, server.as_deref());
                if !resumed {
                    // A start from the binlog head or a fresh snapshot continues no published
                    // history: what the partitions hold (perhaps another history of the
                    // server, before a RESET MASTER) must not make it skip anything.
                    held.marks.clear();
                }
                let from = match start {
                    Start::Stream(p) => Some(p),
                    Start::Snapshot(_) => None,
                };
                sink.exactly_once(
                    held,
                    Watermark::starting_at(from),
                    stores.topics.clone(),
                    server,
                );
            }
            // Only a head start: a stop during it ends the start-up at once.
            if unless_stopped(shutdown, sink.connect()).await.is_none() {
                return Ok(None);
            }
            if sink.is_transactional() {
                match unless_stopped(shutdown, sink.init_transactions()).await {
                    None => return Ok(None),
                    Some(r) => r?,
                }
            }
            Sink::Kafka(Box::new(sink))
        }
        None => Sink::Stdout(StdoutSink::default()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::kafka::exactly_once::Mark;

    fn mark(server: Option<&str>) -> Mark {
        Mark {
            file: Arc::from("binlog.000050"),
            pos: 1000,
            snapshot: false,
            row: 0,
            part: 0,
            gtid: None,
            server: server.map(Arc::from),
        }
    }

    #[test]
    fn marks_of_another_mysql_server_are_forgotten() {
        let mut held = ReadBack::default();
        held.marks
            .insert(("t".into(), 0), mark(Some("old-primary")));
        held.marks.insert(("t".into(), 1), mark(Some("replica")));
        held.marks.insert(("t".into(), 2), mark(None));
        // MariaDB (no identity): every mark stays.
        let mut maria = ReadBack {
            marks: held.marks.clone(),
            ..Default::default()
        };
        forget_other_servers(&mut maria, None);
        assert_eq!(maria.marks.len(), 3);
        // On the promoted replica: the old primary's offsets say nothing here.
        forget_other_servers(&mut held, Some("replica"));
        let mut left: Vec<i32> = held.marks.keys().map(|(_, p)| *p).collect();
        left.sort();
        assert_eq!(left, [1, 2]);
    }
}
