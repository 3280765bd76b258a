//! Skipping one transaction on purpose: the operator's way past a permanent stop.
//!
//! Design note: Sluice stops, rather than skips, on anything it cannot publish faithfully (a
//! MINIMAL row image written by one session, a statement-format write, an unknown event). The
//! saved position then points at the start of that transaction, and every restart stops there
//! again, because the event is already written. `sluice position skip` is the explicit way on:
//! it reads the binlog from the saved position, finds the end of exactly one event group
//! (transaction, or standalone statement) without decoding its rows, and returns what it saw so
//! the caller can record it. `GroupScanner` is the pure part; `verify_one_group` reads the
//! live server.
//!
//! It skips only a transaction that Sluice refuses. Before anything moves, the same events go
//! through a `Processor` configured as the pipeline configures
//! it (filter, table kinds, reset policy, cascades, catalog answers: `binlog::Driver`). The
//! skip goes ahead only if the processor fails inside that first group with an error that
//! refuses one written event (`ProcessError::refuses_written_event`); a group it accepts (a
//! transaction that is fine, or an XA PREPARE the checkpoint is held at) or an error that
//! skipping does not cure leaves the position alone.
//!
//! File switches: the server sends a fake ROTATE (log_pos 0) for every file it opens. The one
//! that opens the stream comes before any FORMAT_DESCRIPTION and is ignored; a later one names
//! the next file (after a STOP event, a server restart) and the group is looked for there.
//!
//! Group ends: an XID event; a `COMMIT` or `ROLLBACK` (not `ROLLBACK TO`) query; an
//! `XA COMMIT`/`XA ROLLBACK` query; an XA_PREPARE event; a MySQL TRANSACTION_PAYLOAD (one event
//! holds the whole transaction); or any other query when the group has no `BEGIN` (DDL, and
//! MariaDB's standalone groups).

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_common::binlog::events::{Event, QueryEvent, TableMapEvent};

use super::binlog::{self, SourceError};
use super::event_types as et;
use super::gtid::{self, MariaGtidState, MysqlGtidSet};
use super::processor::ProcessError;
use crate::state::BinlogPosition;

/// How long the scan waits for the rest of the group before it gives up.
const SCAN_TIMEOUT: Duration = Duration::from_secs(30);

/// What one skipped event group held, for the operator and the skip log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupSummary {
    /// The binlog file of the group.
    pub file: String,
    /// Where the group starts (the saved position).
    pub start: u64,
    /// Where the next group starts: the new position.
    pub end: u64,
    /// The group's GTID, where the server writes one.
    pub gtid: Option<String>,
    /// Tables the group's rows events belong to, as `schema.table`.
    pub tables: BTreeSet<String>,
    /// Rows events in the group (each can hold several rows).
    pub rows_events: u32,
    /// Statements in the group other than BEGIN/COMMIT, cut to 200 characters each.
    pub statements: Vec<String>,
    /// Event type codes seen, in order of first appearance.
    pub event_types: Vec<u8>,
}

/// Why the scan could not find one whole group.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the binlog ended at {file}:{pos} inside the group that starts at {start}: nothing to skip yet (the transaction is not complete on the server)")]
    Incomplete { file: String, pos: u64, start: u64 },
    #[error("malformed {what} event at {file}:{pos}: {detail}")]
    Malformed {
        what: &'static str,
        file: String,
        pos: u64,
        detail: String,
    },
}

/// Finds the end of the first event group at or after `start`, one event at a time.
#[derive(Debug)]
pub(crate) struct GroupScanner {
    summary: GroupSummary,
    began: bool,
    /// MariaDB FL_STANDALONE: the next statement ends the group.
    standalone: bool,
    /// A FORMAT_DESCRIPTION was read: a fake ROTATE now names the next file.
    format_seen: bool,
    done: bool,
}

impl GroupScanner {
    pub(crate) fn new(at: &BinlogPosition) -> Self {
        GroupScanner {
            summary: GroupSummary {
                file: at.file.clone(),
                start: at.pos,
                end: at.pos,
                ..Default::default()
            },
            began: false,
            standalone: false,
            format_seen: false,
            done: false,
        }
    }

    /// Feeds one event; returns `true` once the group is complete.
    pub(crate) fn feed(&mut self, event: &Event) -> Result<bool, ScanError> {
        if self.done {
            return Ok(true);
        }
        let header = event.header();
        let end = u64::from(header.log_pos());
        let type_code = header.event_type_raw();
        if type_code == et::FORMAT_DESCRIPTION {
            self.format_seen = true;
        }
        // A ROTATE that names a file (a real one, or a fake one after a FORMAT_DESCRIPTION: the
        // server opened the next file, as after a STOP event): the group did not begin yet, and
        // it is in that file. The fake ROTATE that opens the stream (before any
        // FORMAT_DESCRIPTION, its name possibly with checksum bytes) names nothing.
        if type_code == et::ROTATE {
            if end != 0 || self.format_seen {
                let r = event
                    .read_event::<mysql_common::binlog::events::RotateEvent>()
                    .map_err(|e| ScanError::Malformed {
                        what: "ROTATE",
                        file: self.summary.file.clone(),
                        pos: end.saturating_sub(u64::from(header.event_size())),
                        detail: e.to_string(),
                    })?;
                self.summary.file = r.name().into_owned();
                self.summary.start = r.position();
                self.summary.end = r.position();
            }
            return Ok(false);
        }
        // The FORMAT_DESCRIPTION a replica stream opens with (log_pos 0 or before the start) is
        // not part of the group.
        if end == 0 || end.saturating_sub(u64::from(header.event_size())) < self.summary.start {
            return Ok(false);
        }
        let start = end.saturating_sub(u64::from(header.event_size()));
        let malformed = |what: &'static str, e: std::io::Error| ScanError::Malformed {
            what,
            file: self.summary.file.clone(),
            pos: start,
            detail: e.to_string(),
        };
        // Format descriptions, STOP, heartbeats and GTID bookkeeping say nothing about the group.
        if matches!(
            type_code,
            et::STOP
                | et::FORMAT_DESCRIPTION
                | et::HEARTBEAT
                | et::PREVIOUS_GTIDS
                | et::MARIADB_BINLOG_CHECKPOINT
                | et::MARIADB_GTID_LIST
        ) {
            return Ok(false);
        }
        if !self.summary.event_types.contains(&type_code) {
            self.summary.event_types.push(type_code);
        }
        let mut ends = false;
        match type_code {
            et::MARIADB_GTID => {
                let g = gtid::parse_mariadb_gtid(event.data(), header.server_id())
                    .ok_or_else(|| malformed("MariaDB GTID", std::io::Error::other("short")))?;
                self.summary.gtid = Some(g.gtid.to_string());
                self.standalone = g.standalone;
                // MariaDB writes no BEGIN query: a GTID without FL_STANDALONE opens a group that
                // ends with an XID or COMMIT (also `CREATE TABLE … SELECT`, rows after the DDL).
                self.began = !g.standalone;
            }
            et::GTID | et::GTID_TAGGED => {
                let g: mysql_common::binlog::events::GtidEvent =
                    event.read_event().map_err(|e| malformed("GTID", e))?;
                self.summary.gtid = Some(gtid::format_gtid(&g));
            }
            et::QUERY | et::MARIADB_QUERY_COMPRESSED => {
                let text = if type_code == et::QUERY {
                    let q: QueryEvent<'_> =
                        event.read_event().map_err(|e| malformed("QUERY", e))?;
                    q.query().into_owned()
                } else {
                    // A compressed query: its text is not needed to find the group's end.
                    String::from("<compressed query>")
                };
                let upper = text.trim_start().to_ascii_uppercase();
                // What opens a multi-event group: BEGIN, MySQL's `XA START`/`XA BEGIN` (rows and
                // `XA END` follow, then XA_PREPARE), and MySQL's atomic `CREATE TABLE … SELECT`,
                // whose statement ends in `START TRANSACTION` and whose rows follow.
                if upper.starts_with("BEGIN")
                    || upper.starts_with("XA START")
                    || upper.starts_with("XA BEGIN")
                    || upper
                        .trim_end_matches([';', ' '])
                        .ends_with("START TRANSACTION")
                {
                    self.began = true;
                    if !upper.starts_with("BEGIN") {
                        self.summary
                            .statements
                            .push(text.chars().take(200).collect());
                    }
                } else if upper == "COMMIT"
                    || upper.starts_with("COMMIT;")
                    || upper == "ROLLBACK"
                    || (upper.starts_with("XA ")
                        && (upper.contains("COMMIT") || upper.contains("ROLLBACK")))
                {
                    ends = true;
                } else {
                    if !upper.starts_with("SAVEPOINT")
                        && !upper.starts_with("ROLLBACK TO")
                        && !upper.starts_with("XA END")
                    {
                        self.summary
                            .statements
                            .push(text.chars().take(200).collect());
                    }
                    if !self.began || self.standalone {
                        ends = true;
                    }
                }
            }
            et::XID | et::XA_PREPARE | et::TRANSACTION_PAYLOAD => ends = true,
            et::TABLE_MAP => {
                if let Ok(t) = event.read_event::<TableMapEvent<'_>>() {
                    self.summary
                        .tables
                        .insert(format!("{}.{}", t.database_name(), t.table_name()));
                }
            }
            et::WRITE_ROWS_V1..=et::DELETE_ROWS_V1
            | et::WRITE_ROWS..=et::DELETE_ROWS
            | et::PARTIAL_UPDATE_ROWS
            | et::MARIADB_WRITE_ROWS_COMPRESSED_V1..=et::MARIADB_DELETE_ROWS_COMPRESSED => {
                self.summary.rows_events += 1
            }
            _ => {}
        }
        self.summary.end = end;
        if ends {
            self.done = true;
        }
        Ok(self.done)
    }

    /// The summary so far (complete once [`GroupScanner::feed`] returned `true`).
    pub(crate) fn summary(&self) -> &GroupSummary {
        &self.summary
    }
}

/// The position after a skipped group: its end, with the GTID state advanced past it (the
/// MariaDB state per domain, or the group's GTID added to the MySQL set).
pub(crate) fn position_after(at: &BinlogPosition, group: &GroupSummary) -> BinlogPosition {
    let joined = |g: &str| match &at.gtid {
        Some(state) => format!("{state},{g}"),
        None => g.to_owned(),
    };
    // A MySQL set grows only from a whole one: the GTIDs of skipped groups alone are not the
    // executed set, and a resume by such a set would replay everything outside it.
    let mysql_set = at.gtid.as_deref().and_then(MysqlGtidSet::parse);
    let merged = |g: &str| {
        let text = joined(g);
        MariaGtidState::parse(&text)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
            .or_else(|| {
                mysql_set
                    .as_ref()
                    .and_then(|_| MysqlGtidSet::parse(&text))
                    .map(|s| s.to_string())
            })
    };
    let gtid = match group.gtid.as_deref().and_then(merged) {
        Some(state) if !state.is_empty() => Some(state),
        _ => at.gtid.clone(),
    };
    BinlogPosition {
        file: group.file.clone(),
        pos: group.end,
        gtid,
        timestamp: 0,
    }
}

/// Reads the live binlog from `at` until one whole event group has passed, feeding every event
/// also to a processor configured as the pipeline's ([`binlog::Driver`]). Returns the group and
/// the error with which the processor refuses it; refuses to go on (with
/// [`SkipError::NotRefused`]) when the processor accepts the group or fails with an error that
/// skipping one transaction does not cure.
pub(crate) async fn verify_one_group(
    cfg: &crate::config::Config,
    at: &BinlogPosition,
) -> Result<(GroupSummary, ProcessError), SkipError> {
    let mut stream = binlog::open_replica_stream(&cfg.mysql, at, binlog::Request::AtPosition)
        .await?
        .stream;
    let limits = binlog::BatchLimits {
        rows: cfg.pipeline.max_batch_rows,
        bytes: cfg.pipeline.max_batch_bytes,
    };
    let filter = cfg.table_filter();
    let mut driver = binlog::Driver::new(&cfg.mysql, filter, at, limits).await?;
    let mut scanner = GroupScanner::new(at);
    let mut refused: Option<ProcessError> = None;
    let deadline = tokio::time::Instant::now() + SCAN_TIMEOUT;
    let result = loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let event = match next {
            Err(_) | Ok(None) => {
                break Err(SkipError::Scan(ScanError::Incomplete {
                    file: scanner.summary().file.clone(),
                    pos: scanner.summary().end,
                    start: at.pos,
                }))
            }
            Ok(Some(Err(e))) => break Err(SourceError::Stream(e).into()),
            Ok(Some(Ok(ev))) => ev,
        };
        // The processor sees the event first: an error at the event that ends the group is
        // still inside it.
        if refused.is_none() {
            match driver.feed(&event).await {
                Ok(_) => {}
                Err(SourceError::Process(e)) if e.refuses_written_event() => refused = Some(e),
                Err(SourceError::Process(e)) => {
                    break Err(SkipError::NotRefused {
                        position: at.clone(),
                        detail: format!(
                            " (Sluice stops there with an error that skipping one transaction \
                             does not cure: {e})"
                        ),
                    })
                }
                Err(e) => break Err(e.into()),
            }
        }
        match scanner.feed(&event) {
            Err(e) => break Err(e.into()),
            Ok(false) => {}
            Ok(true) => {
                break match refused.take() {
                    Some(e) => Ok((scanner.summary().clone(), e)),
                    None => Err(SkipError::NotRefused {
                        position: at.clone(),
                        detail: String::new(),
                    }),
                }
            }
        }
    };
    driver.close().await;
    result
}

/// What `sluice position skip` did (or, with `dry_run`, would do).
#[derive(Debug)]
pub struct SkipOutcome {
    pub from: BinlogPosition,
    pub to: BinlogPosition,
    pub group: GroupSummary,
    /// Why Sluice refuses the skipped transaction (the error `sluice run` stops with).
    pub refusal: String,
    /// Where the record was appended (`None` on a dry run).
    pub log: Option<std::path::PathBuf>,
}

/// Moves the saved position of the pipeline that `cfg` describes past exactly one event group,
/// after recording it (with `reason`) in the state directory's skip log. Takes the state lock,
/// so it refuses while `sluice run` is running on the same state. Only a group that Sluice
/// refuses is skipped (see `verify_one_group`); with `dry_run` nothing is written.
pub async fn skip_saved_position(
    cfg: &crate::config::Config,
    reason: &str,
    dry_run: bool,
) -> Result<SkipOutcome, SkipError> {
    let _lock = crate::state::StateLock::acquire(&cfg.state_dir, "sluice position skip")?;
    let store = crate::state::PositionStore::for_tables(
        &cfg.state_dir,
        &cfg.mysql.schema,
        &cfg.state_tables(),
    );
    let from = store.load()?.ok_or_else(|| SkipError::NoPosition {
        path: store.path().to_owned(),
    })?;
    let (group, refusal) = verify_one_group(cfg, &from).await?;
    let refusal = refusal.to_string();
    tracing::info!(%refusal, "Sluice refuses the transaction at the saved position");
    let to = position_after(&from, &group);
    if dry_run {
        return Ok(SkipOutcome {
            from,
            to,
            group,
            refusal,
            log: None,
        });
    }
    let record = serde_json::json!({
        "reason": reason,
        "position_file": store.path().display().to_string(),
        "from": {"log_file": from.file, "log_pos": from.pos, "gtid": from.gtid},
        "to": {"log_file": to.file, "log_pos": to.pos, "gtid": to.gtid},
        "group": group,
        "refusal": refusal,
    });
    let log = crate::state::skiplog::append(&cfg.state_dir, &record)?;
    store.save(&to)?;
    tracing::warn!(from = %from, to = %to, tables = ?group.tables, %reason, "skipped one transaction on the operator's request; recorded in {}", log.display());
    Ok(SkipOutcome {
        from,
        to,
        group,
        refusal,
        log: Some(log),
    })
}

/// Errors of `sluice position skip`.
#[derive(Debug, thiserror::Error)]
pub enum SkipError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("there is no saved position in {path}: nothing to skip (Sluice has not stopped on anything in this state directory)")]
    NoPosition { path: std::path::PathBuf },
    #[error(
        "the transaction at the saved position {position} is not one Sluice refuses{detail}: \
         start `sluice run`, which stops at the refused one once everything before it is \
         published"
    )]
    NotRefused {
        position: BinlogPosition,
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::BinlogFile;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mysql-binlogs")
            .join(name)
    }

    /// Every group of a real MySQL binlog, found by scanning from each group's start.
    fn groups(name: &str) -> Vec<GroupSummary> {
        let read = || {
            let f = std::fs::File::open(fixture(name)).unwrap();
            BinlogFile::new(BinlogVersion::Version4, std::io::BufReader::new(f)).unwrap()
        };
        let mut out = Vec::new();
        let mut at = BinlogPosition {
            file: name.into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        loop {
            let mut scanner = GroupScanner::new(&at);
            let mut done = false;
            for ev in read() {
                if scanner.feed(&ev.unwrap()).unwrap() {
                    done = true;
                    break;
                }
            }
            if !done {
                return out;
            }
            let g = scanner.summary().clone();
            at = position_after(&at, &g);
            out.push(g);
        }
    }

    #[test]
    fn finds_each_group_of_a_mysql_binlog() {
        // Statement-based with GTIDs: a DDL ends with its statement, DML with its COMMIT.
        let gs = groups("binlog_transaction_with_GTID.000001");
        let summary: Vec<_> = gs
            .iter()
            .map(|g| {
                (
                    g.start,
                    g.end,
                    g.gtid.clone().unwrap(),
                    g.statements.clone(),
                )
            })
            .collect();
        let sid = "006c2cf2-b1ea-11e4-9057-8c705a3d3e78";
        assert_eq!(
            summary,
            vec![
                (
                    4,
                    297,
                    format!("{sid}:1"),
                    vec!["CREATE TABLE t1 (c1 INT)".to_owned()]
                ),
                (
                    297,
                    603,
                    format!("{sid}:2"),
                    vec!["INSERT INTO t1 VALUES (1)".to_owned()]
                ),
                (
                    603,
                    766,
                    format!("{sid}:3"),
                    vec!["DROP TABLE `t1` /* generated by server */".to_owned()]
                ),
            ]
        );
        // Row-based: each DML group holds its table map and rows and ends in an XID.
        for name in [
            "mysql-enum-string-set.000001",
            "transaction_compression.000001",
        ] {
            let gs = groups(name);
            for w in gs.windows(2) {
                assert_eq!(w[1].start, w[0].end, "groups tile {name}: {w:?}");
            }
            let dml: Vec<_> = gs
                .iter()
                .filter(|g| g.rows_events > 0 || g.event_types.contains(&et::TRANSACTION_PAYLOAD))
                .collect();
            assert!(!dml.is_empty(), "{name}: {gs:#?}");
            for g in dml {
                assert!(
                    g.event_types.contains(&et::XID)
                        || g.event_types.contains(&et::TRANSACTION_PAYLOAD),
                    "{name}: {g:?}"
                );
            }
        }
    }

    /// Events of a synthetic binlog: QUERY events with these statements ("XID" gives an XID
    /// event), laid out byte by byte as the server writes them, read back with `mysql_common`.
    fn query_events(queries: &[&str]) -> Vec<Event> {
        use mysql_common::binlog::consts::BinlogVersion;
        use mysql_common::binlog::EventStreamReader;
        let mut bytes = Vec::new();
        let mut pos = 4u32;
        for q in queries {
            let (type_code, body) = if *q == "XID" {
                (et::XID, 7u64.to_le_bytes().to_vec())
            } else {
                // Post-header: thread id, exec time, schema length, error code, status-vars
                // length; then the schema and a NUL, then the statement.
                let mut b = Vec::new();
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.push(2);
                b.extend_from_slice(&0u16.to_le_bytes());
                b.extend_from_slice(&0u16.to_le_bytes());
                b.extend_from_slice(b"db\0");
                b.extend_from_slice(q.as_bytes());
                (et::QUERY, b)
            };
            let size = 19 + body.len() as u32;
            pos += size;
            bytes.extend_from_slice(&0u32.to_le_bytes());
            bytes.push(type_code);
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&size.to_le_bytes());
            bytes.extend_from_slice(&pos.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
            bytes.extend_from_slice(&body);
        }
        let mut reader = EventStreamReader::new(BinlogVersion::Version4);
        let mut out = Vec::new();
        let mut cur = &bytes[..];
        while let Some(ev) = reader.read(&mut cur).unwrap() {
            out.push(ev);
        }
        out
    }

    #[test]
    fn a_mysql_xa_group_does_not_end_at_xa_start() {
        let events = query_events(&["XA START 'x'", "XA END 'x'", "XID"]);
        let at = BinlogPosition {
            file: "b.1".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        let mut scanner = GroupScanner::new(&at);
        let ends: Vec<bool> = events.iter().map(|e| scanner.feed(e).unwrap()).collect();
        assert_eq!(ends, vec![false, false, true], "{:?}", scanner.summary());
        assert_eq!(
            scanner.summary().statements,
            vec!["XA START 'x'".to_owned()]
        );
    }

    #[test]
    fn advances_a_whole_mysql_gtid_set_only() {
        let u = "006c2cf2-b1ea-11e4-9057-8c705a3d3e78";
        let g = GroupSummary {
            file: "b.000001".into(),
            start: 100,
            end: 400,
            gtid: Some(format!("{u}:6")),
            ..Default::default()
        };
        let mut at = BinlogPosition {
            file: "b.000001".into(),
            pos: 100,
            gtid: Some(format!("{u}:1-5")),
            timestamp: 0,
        };
        assert_eq!(position_after(&at, &g).gtid, Some(format!("{u}:1-6")));
        // Without a saved set, the group's GTID alone is not the executed set.
        at.gtid = None;
        assert_eq!(position_after(&at, &g).gtid, None);
    }

    #[test]
    fn advances_the_mariadb_gtid_state() {
        let at = BinlogPosition {
            file: "b.000001".into(),
            pos: 100,
            gtid: Some("0-1-10,1-1-3".into()),
            timestamp: 0,
        };
        let g = GroupSummary {
            file: "b.000001".into(),
            start: 100,
            end: 400,
            gtid: Some("0-1-11".into()),
            ..Default::default()
        };
        let p = position_after(&at, &g);
        assert_eq!(p.pos, 400);
        assert_eq!(p.gtid.as_deref(), Some("0-1-11,1-1-3"));
    }
}
