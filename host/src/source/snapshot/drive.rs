//! The snapshot as a pipeline source: catch-up (on resume), an epoch, the tables' rows in
//! chunks, then the point to stream from.
//!
//! Design note: rows leave as batches of `snapshot_insert` events on the same channel as
//! streamed events, so they pass the same budget, transforms, sink and checkpointer. Every
//! batch carries the whole progress state as its checkpoint (the last key it holds), so a
//! crash loses at most what Kafka had not acknowledged. A keyed table is read in keyset chunks
//! of `SNAPSHOT_BATCH_SIZE` rows, one short query each, so a stop or a slow Kafka never holds
//! a result set open; a keyless table is read by one streaming `SELECT` (`docs/SNAPSHOT.md`
//! §9). A resume first streams the binlog from the saved position (the catch-up) and only then
//! reads the rest at a new epoch, so a key's published state never moves backwards (§6b).

use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::{mpsc, watch};

use super::epoch::{self, Epoch};
use super::keyset::Cursor;
use super::progress::Progress;
use super::table::{KeySource, SnapshotTable};
use super::SnapshotError;
use crate::config::Config;
use crate::event::{Batch, ChangeEvent, Checkpoint, HeldBounds, Kind, SourcePosition};
use crate::source::binlog::{self, BatchLimits};
use crate::source::objects::{self, TableKinds};
use crate::state::snapshot::now_secs;
use crate::state::{BinlogPosition, SnapshotState, SnapshotStatus, TableProgress, TableStatus};

/// How a snapshot begins in this life of the stages.
#[derive(Debug)]
pub(crate) enum Begin {
    Fresh,
    /// Continue `state`, catching up from `from` first. `held`: in exactly-once mode, the key
    /// cursors of the last snapshot rows the output partitions hold (see [`HeldCursor`]).
    Resume {
        state: Box<SnapshotState>,
        from: BinlogPosition,
        held: Vec<HeldCursor>,
    },
    /// Exactly-once with `state.recover = "kafka"` and no state files: the output holds rows
    /// of snapshot `id` read at `point` (their headers say so). It is resumed as a snapshot
    /// that saved no progress: caught up from `point`, read again at a new point, and each
    /// partition skips the rows it holds (`held`).
    Recover {
        id: String,
        point: BinlogPosition,
        held: Vec<HeldCursor>,
    },
}

/// Where some output partition's last row of this snapshot is: a table's index and a key
/// cursor (`sluice.snapshot.after`). A resumed snapshot reads again from its saved cursor;
/// the rows up to this one may be in that partition already, so the read counts its rows up
/// to each such cursor ([`crate::event::HeldBounds`]) and the sink skips what a partition
/// holds. Tables before the last one a partition holds rows of are published by the catch-up
/// too, since that partition holds their rows as of an earlier point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeldCursor {
    pub(crate) table: usize,
    /// The cursor as the header carries it (the sink compares this text).
    pub(crate) text: String,
    pub(crate) cursor: serde_json::Value,
}

/// What the snapshot reads from and writes to.
pub(crate) struct Context<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) limits: BatchLimits,
    pub(crate) tx: mpsc::Sender<Batch>,
    pub(crate) stop: watch::Receiver<bool>,
}

impl Context<'_> {
    fn stopping(&self) -> bool {
        *self.stop.borrow() || self.tx.is_closed()
    }

    /// Sends a batch; false when the next stage is gone (it reports why).
    async fn send(&self, batch: Batch) -> bool {
        self.tx.send(batch).await.is_ok()
    }

    /// Sends the progress alone (no rows), so that it is saved in order.
    async fn save(&self, state: &SnapshotState, position: Option<BinlogPosition>) -> bool {
        self.send(Batch {
            events: Vec::new(),
            checkpoint: Some(Checkpoint::Snapshot {
                state: Arc::new(state.clone()),
                position,
            }),
            bytes: 0,
        })
        .await
    }
}

/// Runs the snapshot. Returns the point to stream from once every table is read, or `None`
/// when a stop came first (what was acknowledged is saved; a restart resumes).
pub(crate) async fn run(
    ctx: &Context<'_>,
    begin: Begin,
) -> Result<Option<BinlogPosition>, SnapshotError> {
    let cfg = ctx.cfg;
    let (tables, kinds) = captured(cfg).await?;
    let mut held_cursors = Vec::new();
    let (mut state, mut epoch) = match begin {
        Begin::Fresh => {
            let epoch = open_listed(cfg, tables.clone(), kinds.clone()).await?;
            let progress = epoch.tables.iter().map(progress_of).collect();
            let state = SnapshotState::new(&epoch.point, epoch.host.clone(), progress);
            tracing::info!(
                id = %state.id,
                point = %epoch.point,
                host = %epoch.host,
                tables = epoch.tables.len(),
                "snapshot started: reading every captured table at one consistent point; streaming follows from it"
            );
            if !ctx.save(&state, Some(epoch.point.clone())).await {
                return Ok(None);
            }
            (state, epoch)
        }
        begin @ (Begin::Resume { .. } | Begin::Recover { .. }) => {
            let (state, from, held) = match begin {
                Begin::Resume { state, from, held } => (*state, from, held),
                Begin::Recover { id, point, held } => {
                    let state = recovered(id, &point, &tables);
                    // Saved before the catch-up saves any position: a start that found a
                    // position but no snapshot would take the snapshot again.
                    if !ctx.save(&state, Some(point.clone())).await {
                        return Ok(None);
                    }
                    (state, point, held)
                }
                Begin::Fresh => unreachable!("matched above"),
            };
            let r = resume(ctx, state, from, &held, &tables, &kinds)
                .await
                .map_err(SnapshotError::while_resuming)?;
            match r {
                Some((state, epoch)) => {
                    held_cursors = held;
                    (state, epoch)
                }
                None => return Ok(None),
            }
        }
    };
    let started = Instant::now();
    let mut progress = Progress::new(cfg.snapshot.progress_interval_ms);
    for i in 0..state.tables.len() {
        if state.tables[i].state == TableStatus::Done {
            continue;
        }
        let table = epoch
            .tables
            .iter()
            .find(|t| t.schema == state.tables[i].schema && t.table == state.tables[i].table)
            .ok_or_else(|| SnapshotError::TableSetChanged {
                table: format!("{}.{}", state.tables[i].schema, state.tables[i].table),
            })?;
        let mut reader = Reader {
            ctx,
            state: &mut state,
            index: i,
            table,
            point: &epoch.point,
            file: Arc::from(epoch.point.file.as_str()),
            gtid: epoch.point.gtid.as_deref().map(Arc::from),
            progress: &mut progress,
            carry_cursor: ctx.cfg.kafka.as_ref().is_some_and(|k| k.exactly_once),
            held: &held_cursors,
        };
        let finished = if table.has_key() {
            reader.keyed(&mut epoch.conn).await?
        } else {
            reader.keyless(&mut epoch.conn).await?
        };
        if !finished {
            // A keyless table's result may still be streaming: a ROLLBACK would first read
            // the rest of the table. Dropping the connection closes it in the background, and
            // the server ends the read-only transaction.
            if table.has_key() {
                let _ = epoch.conn.query_drop("ROLLBACK").await;
            }
            return Ok(None);
        }
    }
    state.status = SnapshotStatus::Complete;
    state.completed_at = Some(now_secs());
    let _ = epoch.conn.query_drop("COMMIT").await;
    let _ = epoch.conn.disconnect().await;
    if !ctx.save(&state, None).await {
        return Ok(None);
    }
    tracing::info!(
        id = %state.id,
        rows = state.rows(),
        seconds = started.elapsed().as_secs_f64(),
        point = %epoch.point,
        "snapshot complete; streaming the binlog from its point"
    );
    Ok(Some(epoch.point))
}

/// The progress of snapshot `id` rebuilt from nothing but its point (its state files were
/// lost): every table unread. The keys are filled in from the epoch the resume opens.
fn recovered(id: String, point: &BinlogPosition, tables: &[(String, String)]) -> SnapshotState {
    let progress = tables
        .iter()
        .map(|(schema, table)| TableProgress {
            schema: schema.clone(),
            table: table.clone(),
            key: Vec::new(),
            key_source: String::new(),
            key_sig: None,
            state: TableStatus::Pending,
            after: None,
            rows: 0,
            chunks: 0,
            reread: false,
        })
        .collect();
    let mut state = SnapshotState::new(point, "recovered from Kafka".into(), progress);
    tracing::warn!(id = %id, point = %point, "no snapshot state file, and the output holds rows of an unfinished snapshot: resuming it from its point (state.recover = \"kafka\"); each partition skips the rows it holds");
    state.id = id;
    state
}

/// Opens a fresh snapshot's epoch over `tables`. With patterns, the tables they match are
/// listed again once the point is fixed: a matching table created between the listing and the
/// point would otherwise have its earlier rows neither read nor streamed, so the point is
/// taken again with it.
async fn open_listed(
    cfg: &Config,
    mut tables: Vec<(String, String)>,
    mut kinds: TableKinds,
) -> Result<Epoch, SnapshotError> {
    loop {
        let epoch = epoch::open(&cfg.mysql, &tables, &kinds).await?;
        if !cfg.has_patterns() {
            return Ok(epoch);
        }
        let (now, now_kinds) = captured(cfg).await?;
        let new: Vec<&(String, String)> = now.iter().filter(|t| !tables.contains(t)).collect();
        if new.is_empty() {
            return Ok(epoch);
        }
        tracing::info!(tables = ?new, "tables the patterns match were created while the snapshot's point was taken: taking it again with them");
        let _ = epoch.conn.disconnect().await;
        (tables, kinds) = (now, now_kinds);
    }
}

/// The captured tables the snapshot reads (sequences are never published), and their kinds.
async fn captured(cfg: &Config) -> Result<(Vec<(String, String)>, TableKinds), SnapshotError> {
    let mut conn = binlog::connect(&cfg.mysql).await?;
    let all = objects::captured_tables(&mut conn, cfg)
        .await
        .map_err(|e| SnapshotError::Query {
            context: e.what.to_owned(),
            source: e.source,
        })?;
    let kinds = objects::table_kinds(&mut conn, &all)
        .await
        .map_err(|e| SnapshotError::Query {
            context: e.what.to_owned(),
            source: e.source,
        })?;
    let _ = conn.disconnect().await;
    let tables = all
        .into_iter()
        .filter(|t| !kinds.sequences.contains(t))
        .collect();
    Ok((tables, kinds))
}

/// A table's progress before any row is read.
fn progress_of(t: &SnapshotTable) -> TableProgress {
    TableProgress {
        schema: t.schema.clone(),
        table: t.table.clone(),
        key: t.key_columns(),
        key_source: match &t.key_source {
            KeySource::Primary => "primary".into(),
            KeySource::Unique(name) => format!("unique:{name}"),
            KeySource::None => "none".into(),
        },
        key_sig: t.has_key().then(|| t.key_signature()),
        state: TableStatus::Pending,
        after: None,
        rows: 0,
        chunks: 0,
        reread: false,
    }
}

/// The resume of `docs/SNAPSHOT.md` §6b: catch up from `from` to the head, open a new epoch,
/// catch up to its point, and record it. `None` when a stop came first.
async fn resume(
    ctx: &Context<'_>,
    mut state: SnapshotState,
    from: BinlogPosition,
    held: &[HeldCursor],
    tables: &[(String, String)],
    kinds: &TableKinds,
) -> Result<Option<(SnapshotState, Epoch)>, SnapshotError> {
    let cfg = ctx.cfg;
    // A keyless table cannot continue where it stopped: it is read again from the start.
    for t in &mut state.tables {
        if t.state == TableStatus::Reading && t.after.is_none() {
            tracing::warn!(table = %format!("{}.{}", t.schema, t.table), rows = t.rows, "a table without a usable key was interrupted mid-read; it is read again from the start, so its rows already published are published again (after a truncate event with ON_TABLE_RESET=event)");
            restart(t);
        }
    }
    tracing::info!(
        id = %state.id,
        from = %from,
        done = state.tables.iter().filter(|t| t.state == TableStatus::Done).count(),
        tables = state.tables.len(),
        "resuming the interrupted snapshot: catching up from the saved position, then reading the rest at a new consistent point"
    );
    let mut conn = binlog::connect(&cfg.mysql).await?;
    let head = binlog::read_head(&mut conn).await?;
    let _ = conn.disconnect().await;
    // A: to the head, and on past it while an XA transaction of captured tables is prepared
    // (its rows come with its outcome).
    // Tables some partition holds rows of (read before the crash, though not saved as read):
    // their changes are published as for a table in progress.
    let held_to = held.iter().map(|h| h.table).max();
    let started: Vec<(String, String)> = state
        .tables
        .iter()
        .enumerate()
        .filter(|(i, _)| held_to.is_some_and(|m| *i <= m))
        .map(|(_, t)| (t.schema.clone(), t.table.clone()))
        .collect();
    let Some(reached) = catch_up(ctx, &state, &started, from, &head).await? else {
        return Ok(None);
    };
    let Some(epoch) = open_not_before(ctx, tables, kinds, &reached).await? else {
        return Ok(None);
    };
    // B: from where A stopped to the new point.
    if catch_up(ctx, &state, &started, reached, &epoch.point)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    for t in &mut state.tables {
        if t.state == TableStatus::Pending {
            // Not read yet: its key is the one this epoch reads by.
            if let Some(d) = epoch
                .tables
                .iter()
                .find(|d| d.schema == t.schema && d.table == t.table)
            {
                let now = progress_of(d);
                (t.key, t.key_source, t.key_sig) = (now.key, now.key_source, now.key_sig);
            }
            continue;
        }
        if t.state != TableStatus::Reading {
            continue;
        }
        let now = epoch
            .tables
            .iter()
            .find(|d| d.schema == t.schema && d.table == t.table);
        if now.map(|d| d.key_signature()) != t.key_sig {
            tracing::warn!(table = %format!("{}.{}", t.schema, t.table), "the table's key changed since the snapshot began; it is read again from the start");
            restart(t);
        }
    }
    state.epoch += 1;
    state.point = (&epoch.point).into();
    tracing::info!(epoch = state.epoch, point = %epoch.point, "snapshot resumed at a new consistent point");
    if !ctx.save(&state, Some(epoch.point.clone())).await {
        return Ok(None);
    }
    Ok(Some((state, epoch)))
}

/// Opens an epoch whose point is not before `floor`, where the catch-up stopped. A snapshot
/// host that lags (a replica) would otherwise give an older point, and keys would receive a
/// snapshot row older than changes already published; so it waits for the host to catch up.
async fn open_not_before(
    ctx: &Context<'_>,
    tables: &[(String, String)],
    kinds: &TableKinds,
    floor: &BinlogPosition,
) -> Result<Option<Epoch>, SnapshotError> {
    let started = Instant::now();
    loop {
        let epoch = epoch::open(&ctx.cfg.mysql, tables, kinds).await?;
        if binlog::reached(&epoch.point.file, epoch.point.pos, floor) {
            return Ok(Some(epoch));
        }
        if started.elapsed() > LAG_PATIENCE {
            return Err(SnapshotError::HostBehind {
                point: epoch.point.to_string(),
                floor: floor.to_string(),
                waited: started.elapsed(),
            });
        }
        tracing::info!(point = %epoch.point, needed = %floor, "the snapshot host is behind the stream's position; waiting for it to catch up");
        let _ = epoch.conn.disconnect().await;
        if ctx.stopping() {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// How long a resume waits for a lagging snapshot host.
const LAG_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

/// Sets a table back to unread.
fn restart(t: &mut TableProgress) {
    t.reread |= t.state != TableStatus::Pending;
    t.state = TableStatus::Pending;
    t.after = None;
    t.rows = 0;
    t.chunks = 0;
}

/// Streams `from` → `to`, publishing the events of the tables read so far (whole or in part,
/// or `started`: rows of them are published) and dropping those of tables not started: their
/// full read later contains them. Returns where it stopped (`to`, or later while an XA
/// transaction was held), `None` when a stop came first.
async fn catch_up(
    ctx: &Context<'_>,
    state: &SnapshotState,
    started: &[(String, String)],
    from: BinlogPosition,
    to: &BinlogPosition,
) -> Result<Option<BinlogPosition>, SnapshotError> {
    let pending = state
        .tables
        .iter()
        .filter(|t| t.state == TableStatus::Pending)
        .map(|t| (t.schema.clone(), t.table.clone()))
        .filter(|t| !started.contains(t));
    let filter = ctx.cfg.table_filter().excluding(pending);
    tracing::info!(from = %from, to = %to, "snapshot catch-up");
    Ok(binlog::stream(
        &ctx.cfg.mysql,
        filter,
        from,
        Some(to),
        ctx.limits,
        ctx.tx.clone(),
        ctx.stop.clone(),
    )
    .await?)
}

/// Reads one table into batches.
struct Reader<'a, 'c> {
    ctx: &'a Context<'c>,
    state: &'a mut SnapshotState,
    index: usize,
    table: &'a SnapshotTable,
    point: &'a BinlogPosition,
    /// The point's file and GTID as every event of the read shares them.
    file: Arc<str>,
    gtid: Option<Arc<str>>,
    progress: &'a mut Progress,
    /// Exactly-once into Kafka: each row carries where the snapshot stands once it is published.
    carry_cursor: bool,
    /// Where output partitions' last rows of this snapshot are (a resumed snapshot).
    held: &'a [HeldCursor],
}

/// Rows read but not sent yet.
#[derive(Default)]
struct Pending {
    events: Vec<ChangeEvent>,
    bytes: usize,
    cursor: Option<Cursor>,
}

impl Reader<'_, '_> {
    fn table_progress(&mut self) -> &mut TableProgress {
        &mut self.state.tables[self.index]
    }

    /// `sluice.snapshot.after` of a row: `{snapshot id}/{table index}/{row ordinal}/{cursor}`.
    fn cursor_header(&self, ordinal: u64, cursor: Option<&Cursor>) -> Option<Arc<str>> {
        let json = serde_json::to_string(cursor?).ok()?;
        Some(Arc::from(format!(
            "{}/{}/{ordinal}/{json}",
            self.state.id, self.index
        )))
    }

    /// The event of one row.
    fn event(&self, after: Vec<crate::event::Value>, row: u64) -> ChangeEvent {
        ChangeEvent {
            kind: Kind::SnapshotInsert,
            meta: self.table.meta.clone(),
            after,
            before: Vec::new(),
            position: SourcePosition {
                file: self.file.clone(),
                pos: self.point.pos,
                row: u32::try_from(row).unwrap_or(u32::MAX),
                gtid: self.gtid.clone(),
                snapshot: true,
                cursor: None,
                held: None,
            },
            timestamp: self.state.started_at as u32,
            route: None,
        }
    }

    /// Sends what is pending with the progress it completes. False when the next stage is gone.
    async fn flush(&mut self, pending: Pending, done: bool) -> Result<bool, SnapshotError> {
        let rows = pending
            .events
            .iter()
            .filter(|e| e.kind == Kind::SnapshotInsert)
            .count() as u64;
        let name = format!("{}.{}", self.table.schema, self.table.table);
        let p = self.table_progress();
        p.rows += rows;
        p.chunks += 1;
        if let Some(c) = pending.cursor {
            p.after = Some(serde_json::to_value(c).map_err(|e| SnapshotError::Cursor {
                table: name.clone(),
                detail: e.to_string(),
            })?);
        }
        p.state = if done {
            TableStatus::Done
        } else {
            TableStatus::Reading
        };
        p.reread = false;
        let total = p.rows;
        let estimate = self.table.estimated_rows;
        self.progress.rows(&name, total, estimate, done);
        let batch = Batch {
            events: pending.events,
            checkpoint: Some(Checkpoint::Snapshot {
                state: Arc::new(self.state.clone()),
                position: None,
            }),
            bytes: pending.bytes,
        };
        Ok(self.ctx.send(batch).await)
    }

    /// A keyed table: keyset chunks after the saved cursor. False when a stop came first.
    async fn keyed(&mut self, conn: &mut Conn) -> Result<bool, SnapshotError> {
        let batch = self.ctx.cfg.snapshot.batch_size;
        let table = self.table;
        let name = format!("{}.{}", table.schema, table.table);
        let mut cursor: Option<Cursor> = match &self.table_progress().after {
            None => None,
            Some(v) => {
                Some(
                    serde_json::from_value(v.clone()).map_err(|e| SnapshotError::Cursor {
                        table: name.clone(),
                        detail: e.to_string(),
                    })?,
                )
            }
        };
        let q = |context: &'static str| {
            move |source| SnapshotError::Query {
                context: context.to_owned(),
                source,
            }
        };
        let first = conn
            .prep(table.first_chunk_sql(batch))
            .await
            .map_err(q("preparing the snapshot's first chunk"))?;
        let next = conn
            .prep(table.next_chunk_sql(batch))
            .await
            .map_err(q("preparing the snapshot's chunk query"))?;
        // A table read again from its start (its key changed, or it has none) is published
        // whole again, after its `truncate` event where there is one: nothing of it is skipped.
        let bounds = if self.table_progress().reread {
            None
        } else {
            self.held_bounds(conn, cursor.as_ref()).await?
        };
        let last_bound = bounds.as_ref().and_then(|b| match b.later_elsewhere {
            true => Some(u64::MAX),
            false => b.bounds.iter().filter_map(|(_, o)| *o).max(),
        });
        self.progress
            .table_started(&name, table.estimated_rows, self.progress_rows());
        loop {
            if self.ctx.stopping() {
                return Ok(false);
            }
            if self.progress.server_due() {
                self.server_costs(conn).await;
            }
            let mut result = match &cursor {
                None => conn.exec_iter(&first, ()).await,
                Some(c) => conn.exec_iter(&next, table.cursor_params(c)).await,
            }
            .map_err(q("reading a snapshot chunk"))?;
            let mut pending = if cursor.is_none() {
                self.opening()
            } else {
                Pending::default()
            };
            let mut read = 0usize;
            let base = self.progress_rows();
            while let Some(row) = result.next().await.map_err(q("reading a snapshot chunk"))? {
                read += 1;
                // Every row's key (a small copy): any row may end a batch, by count or size.
                pending.cursor = Some(table.cursor_of(&row)?);
                let ordinal = base + read as u64 - 1;
                let mut ev = self.event(table.values(row)?, ordinal);
                if self.carry_cursor {
                    ev.position.cursor = self.cursor_header(ordinal, pending.cursor.as_ref());
                }
                if last_bound.is_some_and(|b| ordinal <= b) {
                    ev.position.held = bounds.clone();
                }
                pending.bytes += ev.approx_bytes();
                pending.events.push(ev);
                if pending.bytes >= self.ctx.limits.bytes && read < batch {
                    // A chunk of large rows: publish what is read so far (its last key is
                    // its cursor) and go on reading the same result.
                    cursor = pending.cursor.clone();
                    if !self.flush(std::mem::take(&mut pending), false).await? {
                        return Ok(false);
                    }
                }
            }
            drop(result);
            let done = read < batch;
            if !pending.events.is_empty() || done {
                cursor = pending.cursor.clone().or(cursor);
                if !self.flush(pending, done).await? {
                    return Ok(false);
                }
            }
            if done {
                let _ = conn.close(first).await;
                let _ = conn.close(next).await;
                return Ok(true);
            }
        }
    }

    /// Exactly-once, a resumed snapshot: for each key cursor of an output partition's last
    /// row in this table, the ordinal in this read of the last row at or before it, counted by
    /// the server in this read view after the read's own start `from`.
    async fn held_bounds(
        &self,
        conn: &mut Conn,
        from: Option<&Cursor>,
    ) -> Result<Option<Arc<HeldBounds>>, SnapshotError> {
        let mine: Vec<&HeldCursor> = self.held.iter().filter(|h| h.table == self.index).collect();
        let later_elsewhere = self.held.iter().any(|h| h.table > self.index);
        if (mine.is_empty() && !later_elsewhere) || !self.carry_cursor {
            return Ok(None);
        }
        let table = self.table;
        let name = format!("{}.{}", table.schema, table.table);
        let sql = table.count_through_sql(from.is_some());
        let base = self.progress_rows();
        let mut bounds = Vec::with_capacity(mine.len());
        for h in mine {
            let upto: Cursor =
                serde_json::from_value(h.cursor.clone()).map_err(|e| SnapshotError::Cursor {
                    table: name.clone(),
                    detail: e.to_string(),
                })?;
            if !table.cursor_fits(&upto) {
                // Another key than this read's: nothing to compare with.
                continue;
            }
            let mut params = from.map(|c| table.cursor_params(c)).unwrap_or_default();
            params.extend(table.cursor_params(&upto));
            let n: Option<u64> =
                conn.exec_first(&sql, params)
                    .await
                    .map_err(|source| SnapshotError::Query {
                        context: "counting the rows output partitions hold".to_owned(),
                        source,
                    })?;
            let n = n.unwrap_or(0);
            bounds.push((h.text.clone(), n.checked_sub(1).map(|k| base + k)));
        }
        tracing::info!(table = %name, bounds = ?bounds, later_elsewhere, "exactly-once: the resumed snapshot skips, in each partition, the rows it holds up to these ordinals (all of them where a partition holds rows of a later table)");
        Ok(Some(Arc::new(HeldBounds {
            snapshot: self.state.id.clone(),
            table: self.index,
            bounds,
            later_elsewhere,
        })))
    }

    /// What a read begins with: a `truncate` event when the table is read again after rows of
    /// it were published and `ON_TABLE_RESET=event` lets Sluice say so (see
    /// [`TableProgress::reread`]).
    fn opening(&self) -> Pending {
        let mut pending = Pending::default();
        let p = &self.state.tables[self.index];
        if p.reread && self.ctx.cfg.mysql.on_table_reset == crate::source::ResetPolicy::Event {
            let position = SourcePosition {
                file: self.file.clone(),
                pos: self.point.pos,
                row: 0,
                gtid: self.gtid.clone(),
                snapshot: true,
                cursor: None,
                held: None,
            };
            let ev = ChangeEvent::truncate(
                &self.table.schema,
                &self.table.table,
                position,
                self.state.started_at as u32,
            );
            pending.bytes += ev.approx_bytes();
            pending.events.push(ev);
        }
        pending
    }

    /// Logs what the snapshot costs the server, between two chunks: InnoDB's undo history
    /// length (the read view holds back its purge), and a WARN naming each session that waits
    /// for a captured table's metadata lock (an `ALTER` and the writers queued behind it).
    /// Best effort: a query that fails here only skips the report.
    async fn server_costs(&self, conn: &mut Conn) {
        let history: Option<(String, u64)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")
            .await
            .ok()
            .flatten();
        if let Some((_, length)) = history {
            tracing::info!(
                history_list_length = length,
                "snapshot read view: InnoDB undo history held back"
            );
        }
        let waiting: Vec<(u64, String, Option<String>)> = conn
            .query(
                "SELECT ID, USER, INFO FROM information_schema.PROCESSLIST \
                 WHERE STATE LIKE 'Waiting for table metadata lock%'",
            )
            .await
            .unwrap_or_default();
        let names: Vec<&str> = self.state.tables.iter().map(|t| t.table.as_str()).collect();
        for (id, user, info) in waiting {
            let statement = info.unwrap_or_default();
            if names.iter().any(|n| statement.contains(n)) {
                tracing::warn!(session = id, %user, statement = %statement.chars().take(200).collect::<String>(), "a session waits for a captured table's metadata lock, which the snapshot holds until it ends; writers to that table queue behind it. Run such DDL after the snapshot, or with a low lock_wait_timeout");
            }
        }
    }

    fn progress_rows(&self) -> u64 {
        self.state.tables[self.index].rows
    }

    /// A table without a usable key: one streaming `SELECT`, cut into batches. Its progress
    /// holds a count only: after a crash it is read again from the start.
    async fn keyless(&mut self, conn: &mut Conn) -> Result<bool, SnapshotError> {
        let batch = self.ctx.cfg.snapshot.batch_size;
        let table = self.table;
        let name = format!("{}.{}", table.schema, table.table);
        let q = |source| SnapshotError::Query {
            context: "reading a table without a key".to_owned(),
            source,
        };
        let stmt = conn.prep(table.full_scan_sql()).await.map_err(q)?;
        self.progress.table_started(&name, table.estimated_rows, 0);
        let mut result = conn.exec_iter(&stmt, ()).await.map_err(q)?;
        let mut pending = self.opening();
        let mut read = 0u64;
        while let Some(row) = result.next().await.map_err(q)? {
            let ev = self.event(table.values(row)?, read);
            read += 1;
            pending.bytes += ev.approx_bytes();
            pending.events.push(ev);
            let full = pending.events.len() >= batch || pending.bytes >= self.ctx.limits.bytes;
            // On a stop, the rest of the result is drained by the client when it is dropped.
            if full
                && (self.ctx.stopping() || !self.flush(std::mem::take(&mut pending), false).await?)
            {
                return Ok(false);
            }
        }
        drop(result);
        let _ = conn.close(stmt).await;
        self.flush(pending, true).await
    }
}
