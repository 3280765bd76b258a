//! Resuming on another server of the same GTID history: a promoted replica after a failover.
//!
//! Design note: a saved position is a file and an offset in one server's binlog, plus the GTID
//! state there (MariaDB). On another server the same name and offset mean something else, or
//! nothing. So before streaming, Sluice asks the server where it connects for
//! `BINLOG_GTID_POS(file, pos)`: when that equals the saved state (per domain), the position is
//! in this server's history and is used as it is. When the file is not there and the server
//! itself wrote the saved transactions (its `@@server_id` is in the saved GTIDs), the file was
//! purged: the stream reports that, with its remedies. Otherwise (another server's history),
//! the saved GTID state is located in this server's binlog the way a replica
//! connects (`source::snapshot::replica::locate_on_primary`: a GTID dump from
//! `@slave_connect_state`), and streaming resumes at the first transaction after it. A state
//! the server cannot find (it diverged, or purged what follows the state) is left to the
//! stream, which reports the position as purged with its remedies.
//!
//! MySQL needs no relocation: where a position records a GTID set and the server has
//! `gtid_mode=ON`, the stream asks by that set (`binlog::Request::ByGtid`), on any server.
//! What exactly-once's catch-up needs to know is whether the saved file and offset are this
//! server's ([`mysql_same_history`]): records of another server's history compare by
//! positions that mean nothing here.

use mysql_async::prelude::Queryable;

use crate::config::MysqlConfig;
use crate::source::binlog::{self, SourceError};
use crate::source::gtid::{MariaGtidState, MysqlGtidSet};
use crate::source::snapshot::replica;
use crate::state::BinlogPosition;

/// `p`, or where its GTID state lies in the binlog of the server `cfg` names when `p` is not
/// in that server's history.
pub(crate) async fn relocate(
    cfg: &MysqlConfig,
    p: BinlogPosition,
) -> Result<BinlogPosition, SourceError> {
    let Some(saved) = p.gtid.as_deref().and_then(MariaGtidState::parse) else {
        return Ok(p);
    };
    if saved.is_empty() {
        return Ok(p);
    }
    let mut conn = binlog::connect(cfg).await?;
    if !binlog::is_mariadb(&mut conn).await? {
        let _ = conn.disconnect().await;
        return Ok(p);
    }
    let here: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&p.file, p.pos))
        .await
        .unwrap_or(None);
    let server_id: Option<u32> = conn.query_first("SELECT @@server_id").await.unwrap_or(None);
    let _ = conn.disconnect().await;
    // The server answers '' (or NULL) for a file it does not have.
    match here
        .flatten()
        .and_then(|g| MariaGtidState::parse(&g))
        .filter(|g| !g.is_empty())
    {
        // In this server's history.
        Some(here) if here == saved => return Ok(p),
        // The file is another history's.
        Some(_) => {}
        // No such file here. On the server that wrote the saved transactions it was purged:
        // the stream reports that with its remedies (a re-snapshot). Elsewhere (a replica has
        // its own file numbers) the state is looked for.
        None if server_id.is_some_and(|id| saved.servers().any(|s| s == id)) => return Ok(p),
        None => {}
    }
    match replica::locate_on_primary(cfg, &saved.to_string(), cfg.server_id).await {
        Ok(found) => {
            tracing::warn!(
                saved = %p,
                server = %format!("{}:{}", cfg.host, cfg.port),
                resumed = %found,
                "the saved position is not in this server's binlog (a failover to a replica, or another server): resuming by its GTID state"
            );
            Ok(BinlogPosition {
                gtid: Some(saved.to_string()),
                timestamp: p.timestamp,
                ..found
            })
        }
        Err(e) => {
            tracing::warn!(saved = %p, error = %e, "the saved position's GTID state is not found on this server either; trying the position as it is");
            Ok(p)
        }
    }
}

/// MySQL: whether the saved position `p` lies in the binlog history of the server `cfg`
/// names, so that positions of records published before it compare with the ones this server
/// gives. MySQL has no `BINLOG_GTID_POS`, so it is computed the same way: the file's
/// PREVIOUS_GTIDS plus every GTID before `p.pos` in it must be exactly the saved GTID set.
/// `None` when there is nothing to check (no MySQL GTID set saved, or MariaDB).
///
/// The stream itself is exact either way (it asks by GTID set); only exactly-once's catch-up,
/// which orders records by file and offset, needs to know whether those are this server's.
pub(crate) async fn mysql_same_history(
    cfg: &MysqlConfig,
    p: &BinlogPosition,
) -> Result<Option<bool>, SourceError> {
    use futures_util::StreamExt;

    let Some(saved) = p
        .gtid
        .as_deref()
        .and_then(MysqlGtidSet::parse)
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let mut conn = binlog::connect(cfg).await?;
    let mariadb = binlog::is_mariadb(&mut conn).await?;
    let _ = conn.disconnect().await;
    if mariadb {
        return Ok(None);
    }
    let from = BinlogPosition {
        pos: 4,
        gtid: None,
        ..p.clone()
    };
    let mut stream =
        match binlog::open_replica_stream(cfg, &from, binlog::Request::AtPosition).await {
            Ok(s) => s.stream,
            // No such file here.
            Err(SourceError::Stream(_)) => return Ok(Some(false)),
            Err(e) => return Err(e),
        };
    let mut walk = HistoryWalk::new(p.pos);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => {
                if let Some(done) = walk.feed(&ev) {
                    return Ok(Some(done == saved));
                }
            }
            // The file is missing or shorter than the position: another history.
            Err(_) => return Ok(Some(false)),
        }
    }
    Ok(Some(false))
}

/// Reads one binlog file from its start up to an offset, collecting the GTID set executed
/// there (the file's PREVIOUS_GTIDS and each GTID event before the offset).
pub(crate) struct HistoryWalk {
    until: u64,
    set: MysqlGtidSet,
}

impl HistoryWalk {
    pub(crate) fn new(until: u64) -> Self {
        HistoryWalk {
            until,
            set: MysqlGtidSet::default(),
        }
    }

    /// Takes the next event of the file. Returns the set executed at the offset once an event
    /// ends there, an empty set when one ends past it (the offset is no event boundary here),
    /// `None` while the offset is still ahead.
    pub(crate) fn feed(
        &mut self,
        ev: &mysql_common::binlog::events::Event,
    ) -> Option<MysqlGtidSet> {
        use crate::source::event_types as et;
        use mysql_common::binlog::events::{GtidEvent, PreviousGtidsEvent};

        let h = ev.header();
        let end = u64::from(h.log_pos());
        // Fake events (a ROTATE, a heartbeat) have no place in the file.
        if end == 0 || h.event_type_raw() == et::ROTATE {
            return None;
        }
        match h.event_type_raw() {
            et::PREVIOUS_GTIDS => {
                if let Ok(prev) = ev.read_event::<PreviousGtidsEvent<'_>>() {
                    self.set.union(&MysqlGtidSet::from_previous(&prev));
                }
            }
            et::GTID | et::GTID_TAGGED => {
                if let Ok(g) = ev.read_event::<GtidEvent>() {
                    self.set.observe(&g);
                }
            }
            _ => {}
        }
        match end.cmp(&self.until) {
            std::cmp::Ordering::Less => None,
            std::cmp::Ordering::Equal => Some(std::mem::take(&mut self.set)),
            std::cmp::Ordering::Greater => Some(MysqlGtidSet::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::file::read_binlog_file;
    use crate::source::TableFilter;
    use mysql_common::binlog::{consts::BinlogVersion, BinlogFile};

    #[test]
    fn a_mysql_position_is_found_in_its_own_file_only() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mysql-binlogs/binlog_transaction_with_GTID_TAG.000001");
        let walk = |until: u64| {
            let f = std::fs::File::open(&path).unwrap();
            let file =
                BinlogFile::new(BinlogVersion::Version4, std::io::BufReader::new(f)).unwrap();
            let mut w = HistoryWalk::new(until);
            file.into_iter()
                .find_map(|ev| w.feed(&ev.unwrap()))
                .unwrap_or_default()
        };
        let batches = read_binlog_file(&path, TableFilter::all()).unwrap();
        let cps: Vec<&BinlogPosition> = batches
            .iter()
            .filter_map(|b| b.checkpoint.as_ref().and_then(|c| c.binlog()))
            .collect();
        assert!(!cps.is_empty());
        // Where the last transaction starts: its own GTID is not executed yet there.
        let last_start = batches
            .iter()
            .flat_map(|b| &b.events)
            .map(|e| e.position.pos)
            .max()
            .unwrap();
        for cp in cps {
            let saved = MysqlGtidSet::parse(cp.gtid.as_deref().unwrap()).unwrap();
            // The saved set is what the file holds at the saved offset …
            assert_eq!(walk(cp.pos), saved, "{cp}");
            // … and not at an offset inside an event, nor before the saved transaction.
            assert_ne!(walk(cp.pos - 1), saved, "{cp}");
            assert!(last_start < cp.pos);
            let before = walk(last_start);
            assert!(
                !before.is_empty() && before != saved,
                "{before} at {last_start}"
            );
        }
    }
}
