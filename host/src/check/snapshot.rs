//! `sluice check`'s snapshot group, shown when `INITIAL_SNAPSHOT`, `FORCE_SNAPSHOT` or
//! `SNAPSHOT_WHEN_NEEDED` is set: what `sluice run` would need to take the snapshot.
//!
//! Design note: it does what the snapshot does at the start of an epoch, read-only and without
//! a transaction: it connects to the snapshot host, opens each captured table with a `LIMIT 0`
//! read (the SELECT privilege), reads how the table would be read (its key, or the restart rule
//! of a keyless table), checks that the server gives a lockless consistent point, and for a
//! replica, that its replication filters keep every captured table. It never takes a lock.

use mysql_async::prelude::Queryable;

use super::{fail, info, pass, warn, CheckResult};
use crate::config::Config;
use crate::source::snapshot::epoch;
use crate::source::snapshot::replica;
use crate::source::snapshot::table::{KeySource, SnapshotTable};
use crate::state::{SnapshotStatus, SnapshotStore};

const NAME: &str = "snapshot";

/// The snapshot group (empty when no setting asks for a snapshot).
pub(super) async fn snapshot_checks(cfg: &Config) -> Vec<CheckResult> {
    if !cfg.snapshot.enabled() {
        return Vec::new();
    }
    let mut out = vec![progress(cfg)];
    let host = epoch::snapshot_host(&cfg.mysql);
    let mut conn = match epoch::connect(&host).await {
        Ok(c) => c,
        Err(e) => {
            out.push(fail(
                NAME,
                e.to_string(),
                "fix MYSQL_SNAPSHOT_HOST (host or host:port), or unset it to snapshot from MYSQL_HOST",
            ));
            return out;
        }
    };
    let vars: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        .await
        .unwrap_or_default();
    if vars
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Binlog_snapshot_file"))
    {
        out.push(pass(
            NAME,
            format!(
                "{}:{} gives a consistent point without a lock (binlog_snapshot_file/position)",
                host.host, host.port
            ),
        ));
    } else {
        out.push(info(
            NAME,
            format!(
                "{}:{} is MySQL: the snapshot's point is read under a brief FLUSH TABLES WITH READ LOCK, or LOCK TABLES … READ on the captured tables where that is refused (it needs RELOAD, or LOCK TABLES on the tables, and XA_RECOVER_ADMIN)",
                host.host, host.port
            ),
        ));
    }
    let tables = cfg.captured_tables();
    if host.host != cfg.mysql.host || host.port != cfg.mysql.port {
        out.push(match replica::check_filters(&mut conn, &tables).await {
            Ok(()) => pass(
                NAME,
                format!(
                    "the snapshot host {}:{} replicates every captured table (no filter excludes one)",
                    host.host, host.port
                ),
            ),
            Err(e) => fail(NAME, e.to_string(), "see the message above"),
        });
    }
    for (schema, table) in &tables {
        out.push(table_check(&mut conn, schema, table).await);
    }
    let _ = conn.disconnect().await;
    out
}

/// The snapshot file: none, in progress, or complete.
fn progress(cfg: &Config) -> CheckResult {
    let store = SnapshotStore::for_tables(&cfg.state_dir, &cfg.mysql.schema, &cfg.mysql.tables);
    match store.load() {
        Ok(None) => info(
            NAME,
            format!("no snapshot recorded at {}: `sluice run` takes one first", store.path().display()),
        ),
        Ok(Some(s)) if s.status == SnapshotStatus::Complete => info(
            NAME,
            format!(
                "snapshot {} completed ({} rows); {}",
                s.id,
                s.rows(),
                if cfg.snapshot.force {
                    "FORCE_SNAPSHOT=true takes it again"
                } else {
                    "it is not taken again without FORCE_SNAPSHOT=true"
                }
            ),
        ),
        Ok(Some(s)) => info(
            NAME,
            format!(
                "snapshot {} is in progress ({} rows acknowledged, epoch {}); `sluice run` resumes it",
                s.id,
                s.rows(),
                s.epoch
            ),
        ),
        Err(e) => fail(NAME, e.to_string(), "see the message above"),
    }
}

/// One table: readable, and how the snapshot would read it.
async fn table_check(conn: &mut mysql_async::Conn, schema: &str, table: &str) -> CheckResult {
    let q = |s: &str| s.replace('`', "``");
    let name = format!("{schema}.{table}");
    if let Err(e) = conn
        .query_drop(format!(
            "SELECT 1 FROM `{}`.`{}` LIMIT 0",
            q(schema),
            q(table)
        ))
        .await
    {
        return fail(
            NAME,
            format!("the snapshot cannot read {name}: {e}"),
            format!("GRANT SELECT ON `{schema}`.`{table}` TO the Sluice user"),
        );
    }
    let t = match SnapshotTable::describe(conn, schema, table, None).await {
        Ok(t) => t,
        Err(e) => {
            return fail(
                NAME,
                format!("cannot describe {name}: {e}"),
                "see the message above",
            )
        }
    };
    let estimate = t.estimated_rows;
    match &t.key_source {
        KeySource::Primary => pass(
            NAME,
            format!("{name}: about {estimate} rows, read in PRIMARY KEY order, resumable"),
        ),
        KeySource::Unique(index) => pass(
            NAME,
            format!("{name}: about {estimate} rows, read in the order of the UNIQUE key {index}, resumable"),
        ),
        KeySource::None => warn(
            NAME,
            format!("{name}: about {estimate} rows and no usable key: read by one unordered SELECT"),
            "after a crash mid-read, this table is read again from the start and its rows already published come again; add a PRIMARY KEY (or a UNIQUE key on NOT NULL columns) to make it resumable",
        ),
    }
}
