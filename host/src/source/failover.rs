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
//! Exactly-once's catch-up compares file offsets only of records that name this server
//! (`sluice.server`, see `sink::kafka::exactly_once::SERVER`).

use mysql_async::prelude::Queryable;

use crate::config::MysqlConfig;
use crate::source::binlog::{self, SourceError};
use crate::source::gtid::MariaGtidState;
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
