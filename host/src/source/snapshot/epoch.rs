//! Opening an epoch: one consistent read view, and the binlog point of the stream host that
//! it matches (`docs/SNAPSHOT.md` §7).
//!
//! Design note: on MariaDB (and Percona) no lock is taken. `START TRANSACTION WITH CONSISTENT
//! SNAPSHOT` creates the read view under the server's commit-ordering lock and the session
//! status `binlog_snapshot_file`/`_position` give the binlog offset that matches it exactly;
//! `BINLOG_GTID_POS(file, pos)` gives its GTID state (never `@@gtid_binlog_pos`, which runs
//! ahead). Every captured table is then opened with a `LIMIT 0` read, which takes its metadata
//! lock: from then on no DDL can change it until the snapshot ends, and a table altered
//! between the view and that read fails with 1412 and the epoch is retried. An XA
//! transaction prepared before the point would commit rows that the view cannot see and the
//! stream could not attribute, so the epoch waits until none is prepared. When the snapshot
//! host is a replica (another `@@server_id`), the point comes from the replica's applied GTID
//! state located in the primary's binlog (`replica`).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::table::SnapshotTable;
use super::{guard, mysql, replica, SnapshotError};
use crate::config::MysqlConfig;
use crate::source::binlog;
use crate::source::objects::TableKinds;
use crate::state::BinlogPosition;

/// How long an epoch waits for prepared XA transactions to finish before it gives up.
const XA_PATIENCE: Duration = Duration::from_secs(60);

/// `lock_wait_timeout` of the MySQL capture's lock (`docs/SNAPSHOT.md` §7): how long the lock
/// may wait for running statements, while writers queue behind it.
const LOCK_WAIT_TIMEOUT_S: u64 = 10;

/// An open epoch: the connection that holds the read view, its point, and its tables.
pub(crate) struct Epoch {
    pub(crate) conn: Conn,
    pub(crate) point: BinlogPosition,
    /// The captured tables, described inside the view (their metadata locks are held).
    pub(crate) tables: Vec<SnapshotTable>,
    /// `host:port` the rows are read from.
    pub(crate) host: String,
}

/// The snapshot host's connection settings: `MYSQL_SNAPSHOT_HOST` as `host` or `host:port`
/// (the port defaults to `MYSQL_PORT`), with the stream host's credentials.
pub(crate) fn snapshot_host(cfg: &MysqlConfig) -> MysqlConfig {
    let mut c = cfg.clone();
    let spec = cfg.snapshot_host.trim();
    if spec.is_empty() {
        return c;
    }
    match spec.rsplit_once(':') {
        // `[::1]:3307`, `db:3307`; a bare IPv6 address has more than one colon and no port.
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => match p.parse::<u16>() {
            Ok(port) => {
                c.host = h.trim_matches(['[', ']']).to_owned();
                c.port = port;
            }
            Err(_) => c.host = spec.to_owned(),
        },
        _ => c.host = spec.to_owned(),
    }
    c
}

/// A server query failed; the error names what it was for.
fn q(context: &str) -> impl FnOnce(mysql_async::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Query {
        context: context.to_owned(),
        source,
    }
}

/// Connects to the snapshot host. A failure names `MYSQL_SNAPSHOT_HOST` and says that Sluice
/// does not stream without the snapshot.
pub(crate) async fn connect(host: &MysqlConfig) -> Result<Conn, SnapshotError> {
    binlog::connect(host)
        .await
        .map_err(|e| SnapshotError::SnapshotHost {
            host: format!("{}:{}", host.host, host.port),
            detail: e.to_string(),
            resuming: false,
        })
}

/// Session settings of the snapshot connection: values as the binlog path gives them (UTC,
/// raw bytes in each column's character set), REPEATABLE READ, and no server-side timeout
/// that could end a long snapshot. A variable this server does not have is skipped.
async fn prepare_session(conn: &mut Conn) -> Result<(), SnapshotError> {
    // sql_mode '': PAD_CHAR_TO_FULL_LENGTH would pad CHAR values that the binlog carries
    // stripped.
    conn.query_drop(
        "SET SESSION sql_mode = '', SESSION time_zone = '+00:00', SESSION character_set_results = NULL, \
         SESSION wait_timeout = 86400, SESSION net_write_timeout = 3600, \
         SESSION net_read_timeout = 3600",
    )
    .await
    .map_err(q("preparing the snapshot session"))?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(q("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"))?;
    for optional in [
        "SET SESSION idle_transaction_timeout = 0",
        "SET SESSION idle_readonly_transaction_timeout = 0",
        "SET SESSION max_statement_time = 0",
        "SET SESSION max_execution_time = 0",
    ] {
        match conn.query_drop(optional).await {
            Ok(()) => {}
            // ER_UNKNOWN_SYSTEM_VARIABLE: the other server family's setting.
            Err(mysql_async::Error::Server(e)) if e.code == 1193 => {}
            Err(e) => return Err(q(optional)(e)),
        }
    }
    Ok(())
}

/// Opens an epoch on the snapshot host for `tables` (see the module note). Retries on a table
/// altered under it and waits out prepared XA transactions; gives up after [`XA_PATIENCE`].
pub(crate) async fn open(
    stream: &MysqlConfig,
    tables: &[(String, String)],
    kinds: &TableKinds,
) -> Result<Epoch, SnapshotError> {
    let host_cfg = snapshot_host(stream);
    let host = format!("{}:{}", host_cfg.host, host_cfg.port);
    let mut conn = connect(&host_cfg).await?;
    prepare_session(&mut conn).await?;
    let replica_of = replica_check(&mut conn, stream, &host_cfg, tables).await?;
    // MySQL reports no binlog position for a read view: the point is captured under a brief
    // lock, which a second connection takes before the view is created (`mysql`).
    let lockless = replica_of
        || mysql::has_lockless_point(&mut conn)
            .await
            .map_err(|source| mysql::MysqlCaptureError::Query {
                context: "SHOW SESSION STATUS LIKE 'binlog_snapshot_file'".to_owned(),
                source,
            })?;
    let mut lock = if lockless {
        None
    } else {
        Some(connect(&host_cfg).await?)
    };
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        match try_open(&mut conn, lock.as_mut(), stream, replica_of, tables, kinds).await {
            Ok((point, described)) => {
                if let Some(l) = lock.take() {
                    let _ = l.disconnect().await;
                }
                return Ok(Epoch {
                    conn,
                    point,
                    tables: described,
                    host,
                });
            }
            Err(Retry::Again(why)) if started.elapsed() < XA_PATIENCE => {
                let _ = conn.query_drop("ROLLBACK").await;
                tracing::info!(reason = %why, retry_in = ?backoff, "the snapshot's consistent point is not usable yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(Retry::Again(why)) => {
                let _ = conn.query_drop("ROLLBACK").await;
                return Err(SnapshotError::NoConsistentPoint {
                    waited: started.elapsed(),
                    why,
                });
            }
            Err(Retry::Fail(e)) => {
                let _ = conn.query_drop("ROLLBACK").await;
                return Err(e);
            }
        }
    }
}

/// Why one attempt to open an epoch did not succeed.
enum Retry {
    /// Try again shortly (a table changed under the view, an XA transaction is prepared).
    Again(String),
    Fail(SnapshotError),
}

impl From<SnapshotError> for Retry {
    fn from(e: SnapshotError) -> Self {
        Retry::Fail(e)
    }
}

/// Whether the snapshot host is another server than the stream host (compared by
/// `@@server_id`): then it must be a GTID replica of it whose filters keep every captured table.
async fn replica_check(
    conn: &mut Conn,
    stream: &MysqlConfig,
    host_cfg: &MysqlConfig,
    tables: &[(String, String)],
) -> Result<bool, SnapshotError> {
    if host_cfg.host == stream.host && host_cfg.port == stream.port {
        return Ok(false);
    }
    let id: Option<u64> = conn
        .query_first("SELECT @@server_id")
        .await
        .map_err(q("SELECT @@server_id"))?;
    let mut primary = binlog::connect(stream).await?;
    let primary_id: Option<u64> = primary
        .query_first("SELECT @@server_id")
        .await
        .map_err(q("SELECT @@server_id"))?;
    let _ = primary.disconnect().await;
    if id == primary_id {
        return Ok(false);
    }
    replica::check_filters(conn, tables).await?;
    Ok(true)
}

/// One attempt: the view, its point, the tables' metadata locks and descriptions, the XA check.
async fn try_open(
    conn: &mut Conn,
    lock: Option<&mut Conn>,
    stream: &MysqlConfig,
    replica_of: bool,
    tables: &[(String, String)],
    kinds: &TableKinds,
) -> Result<(BinlogPosition, Vec<SnapshotTable>), Retry> {
    let mysql_lock = lock.is_some();
    let point = if let Some(lock) = lock {
        // MySQL: the lock, the view, the tables' MDLs, XA RECOVER and the position, in
        // that order (`mysql`'s note). On an error `open` returns, which drops `lock`.
        match mysql::capture(lock, conn, tables, LOCK_WAIT_TIMEOUT_S)
            .await
            .map_err(SnapshotError::from)?
        {
            mysql::Capture::Point(point, kind) => {
                tracing::info!(%point, lock = %kind, "captured the snapshot's point under a brief lock");
                point
            }
            mysql::Capture::Retry(why) => return Err(Retry::Again(why)),
        }
    } else {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(q("START TRANSACTION WITH CONSISTENT SNAPSHOT"))?;
        if replica_of {
            let state = replica::replica_gtid_state(conn)
                .await
                .map_err(SnapshotError::from)?;
            replica::locate_on_primary(stream, &state, stream.server_id ^ 0x8000_0000)
                .await
                .map_err(SnapshotError::from)?
        } else {
            own_point(conn).await?
        }
    };
    // Open every table inside the view: its metadata lock is held from here on.
    for (schema, table) in tables {
        let sql = format!(
            "SELECT 1 FROM `{}`.`{}` LIMIT 0",
            schema.replace('`', "``"),
            table.replace('`', "``")
        );
        match conn.query_drop(&sql).await {
            Ok(()) => {}
            // ER_TABLE_DEF_CHANGED: altered after the view was created.
            Err(mysql_async::Error::Server(e)) if e.code == 1412 => {
                return Err(Retry::Again(format!(
                    "{schema}.{table} was altered after the consistent snapshot began"
                )))
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1142 || e.code == 1143 => {
                return Err(Retry::Fail(SnapshotError::Denied {
                    table: format!("{schema}.{table}"),
                    message: e.message,
                }))
            }
            Err(e) => return Err(Retry::Fail(q("opening a captured table")(e))),
        }
    }
    let mut described = Vec::with_capacity(tables.len());
    for (schema, table) in tables {
        let periods = kinds.versioned.get(&(schema.clone(), table.clone()));
        let t = SnapshotTable::describe(conn, schema, table, periods).await?;
        if !t.engine.eq_ignore_ascii_case("InnoDB") {
            return Err(Retry::Fail(SnapshotError::NotTransactional {
                table: format!("{schema}.{table}"),
                engine: t.engine.clone(),
            }));
        }
        described.push(t);
    }
    if mysql_lock {
        // The lock closed both holes that the checks below close on MariaDB: no XA
        // transaction was prepared, and no captured table changed, between view and point.
        return Ok((point, described));
    }
    let prepared: Vec<mysql_async::Row> =
        conn.query("XA RECOVER").await.map_err(q("XA RECOVER"))?;
    if !prepared.is_empty() {
        return Err(Retry::Again(format!(
            "{} XA transaction(s) are prepared; their rows are invisible to the snapshot and \
             their commit could not be attributed (XA RECOVER lists them)",
            prepared.len()
        )));
    }
    // One that finished between the point and the XA RECOVER above: its outcome is in the
    // binlog between the point and the head read now.
    let mut primary = binlog::connect(stream).await.map_err(SnapshotError::from)?;
    let head = binlog::read_head(&mut primary)
        .await
        .map_err(SnapshotError::from)?;
    let _ = primary.disconnect().await;
    let filter = crate::source::TableFilter::new(tables.iter().cloned());
    if let Some(xid) = guard::xa_finished_in_window(stream, filter, &point, &head).await? {
        return Err(Retry::Again(format!(
            "the XA transaction {xid} was prepared before the snapshot's point and finished \
             after it"
        )));
    }
    Ok((point, described))
}

/// The binlog point of this server's read view (MariaDB and Percona), without a lock.
async fn own_point(conn: &mut Conn) -> Result<BinlogPosition, SnapshotError> {
    let vars: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(q("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'"))?;
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (Some(file), Some(pos)) = (get("Binlog_snapshot_file"), get("Binlog_snapshot_position"))
    else {
        return Err(SnapshotError::NoLocklessPoint);
    };
    let pos: u64 = pos.parse().map_err(|_| SnapshotError::NoLocklessPoint)?;
    if file.is_empty() {
        return Err(SnapshotError::NoLocklessPoint);
    }
    let gtid: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
        .await
        .map_err(q("SELECT BINLOG_GTID_POS"))?;
    Ok(BinlogPosition {
        file,
        pos,
        gtid: gtid.flatten().filter(|g| !g.is_empty()),
        timestamp: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(snapshot_host: &str) -> MysqlConfig {
        MysqlConfig {
            host: "db".into(),
            port: 3306,
            user: "u".into(),
            password: "p".into(),
            database: "shop".into(),
            schema: "shop".into(),
            tables: vec!["orders".into()],
            include: Vec::new(),
            exclude: Vec::new(),
            snapshot_host: snapshot_host.into(),
            server_id: 4079,
            on_table_reset: Default::default(),
            accept_fk_cascades: false,
            ssl: Default::default(),
        }
    }

    #[test]
    fn the_snapshot_host_takes_an_optional_port() {
        let c = snapshot_host(&cfg("replica1"));
        assert_eq!((c.host.as_str(), c.port), ("replica1", 3306));
        let c = snapshot_host(&cfg("replica1:13309"));
        assert_eq!((c.host.as_str(), c.port), ("replica1", 13309));
        let c = snapshot_host(&cfg("[::1]:3307"));
        assert_eq!((c.host.as_str(), c.port), ("::1", 3307));
        let c = snapshot_host(&cfg("::1"));
        assert_eq!((c.host.as_str(), c.port), ("::1", 3306));
        let c = snapshot_host(&cfg(""));
        assert_eq!((c.host.as_str(), c.port), ("db", 3306));
    }
}
