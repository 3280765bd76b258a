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
    let tables = crate::source::objects::captured_tables(&mut conn, cfg)
        .await
        .unwrap_or_else(|_| cfg.captured_tables());
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
    let mut estimate = 0u64;
    for (schema, table) in &tables {
        let (result, rows) = table_check(&mut conn, schema, table).await;
        out.push(result);
        estimate += rows;
    }
    let _ = conn.disconnect().await;
    if let Some(r) = retention_check(cfg, estimate).await {
        out.push(r);
    }
    out
}

/// Rows per second assumed for the estimate of a snapshot's duration: the lower end measured
/// into Kafka on a small shared machine (docs/BENCHMARKS.md).
const ESTIMATE_ROWS_PER_S: u64 = 100_000;

/// Warns when the snapshot would take longer than the stream host keeps its binlogs: the
/// catch-up after a crash mid-snapshot, and streaming after it, need the binlog from the
/// snapshot's point on.
async fn retention_check(cfg: &Config, rows: u64) -> Option<CheckResult> {
    let mut conn = crate::source::binlog::connect(&cfg.mysql).await.ok()?;
    let secs: Option<u64> = conn
        .query_first("SELECT @@global.binlog_expire_logs_seconds")
        .await
        .ok()
        .flatten();
    let secs = match secs {
        Some(s) => s,
        None => {
            let days: Option<f64> = conn
                .query_first("SELECT @@global.expire_logs_days")
                .await
                .ok()
                .flatten();
            (days.unwrap_or(0.0) * 86_400.0) as u64
        }
    };
    let _ = conn.disconnect().await;
    Some(retention_verdict(rows, rows / ESTIMATE_ROWS_PER_S, secs))
}

/// The retention check's result for `rows` that take about `needed` seconds, against binlogs
/// kept `kept` seconds (0: kept until purged by hand).
fn retention_verdict(rows: u64, needed: u64, kept: u64) -> CheckResult {
    let took = format!("about {rows} rows, roughly {needed} s at {ESTIMATE_ROWS_PER_S} rows/s");
    if kept == 0 {
        return pass(
            NAME,
            format!("{took}; binlogs are not expired automatically"),
        );
    }
    if needed.saturating_mul(2) > kept {
        return warn(
            NAME,
            format!("{took}, and the server keeps binlogs {kept} s"),
            "keep binlogs longer than the snapshot may take (binlog_expire_logs_seconds), so that a resume after a crash mid-snapshot, and streaming after it, still find the binlog from the snapshot's point; or snapshot from a replica",
        );
    }
    pass(NAME, format!("{took}; binlogs are kept {kept} s"))
}

/// The snapshot file: none, in progress, or complete.
fn progress(cfg: &Config) -> CheckResult {
    let store = SnapshotStore::for_tables(&cfg.state_dir, &cfg.mysql.schema, &cfg.state_tables());
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

/// One table: readable, and how the snapshot would read it; with its estimated rows.
async fn table_check(
    conn: &mut mysql_async::Conn,
    schema: &str,
    table: &str,
) -> (CheckResult, u64) {
    let q = |s: &str| s.replace('`', "``");
    let name = format!("{schema}.{table}");
    let probe = format!("SELECT 1 FROM `{}`.`{}` LIMIT 0", q(schema), q(table));
    if let Err(e) = conn.query_drop(probe).await {
        let fix = format!("GRANT SELECT ON `{schema}`.`{table}` TO the Sluice user");
        return (
            fail(NAME, format!("the snapshot cannot read {name}: {e}"), fix),
            0,
        );
    }
    let t = match SnapshotTable::describe(conn, schema, table, None).await {
        Ok(t) => t,
        Err(e) => {
            let detail = format!("cannot describe {name}: {e}");
            return (fail(NAME, detail, "see the message above"), 0);
        }
    };
    let estimate = t.estimated_rows;
    let result = match &t.key_source {
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
    };
    (result, estimate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    #[test]
    fn retention_shorter_than_twice_the_estimate_warns() {
        assert_eq!(retention_verdict(1_000, 0, 0).status, Status::Pass);
        assert_eq!(
            retention_verdict(10_000_000, 100, 86_400).status,
            Status::Pass
        );
        let w = retention_verdict(1_000_000_000, 10_000, 3_600);
        assert_eq!(w.status, Status::Warn);
        assert!(w
            .fix
            .unwrap_or_default()
            .contains("binlog_expire_logs_seconds"));
    }
}
