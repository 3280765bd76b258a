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
    let lockless = vars
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Binlog_snapshot_file"));
    if lockless {
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
    if !lockless {
        out.push(mysql_lock_check(&mut conn, &cfg.mysql.user, &tables).await);
    }
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

/// MySQL: whether the snapshot host's grants allow the brief lock around the point: RELOAD (for
/// `FLUSH TABLES WITH READ LOCK`) or LOCK TABLES on every captured schema, and on 8.0+
/// XA_RECOVER_ADMIN (for `XA RECOVER`). Read from `SHOW GRANTS`, without taking any lock.
async fn mysql_lock_check(
    conn: &mut mysql_async::Conn,
    user: &str,
    tables: &[(String, String)],
) -> CheckResult {
    let grants: Vec<String> = match conn.query("SHOW GRANTS").await {
        Ok(g) => g,
        Err(e) => {
            return warn(
                NAME,
                format!("cannot read the snapshot user's grants to verify the lock privileges: {e}"),
                "make sure the user has RELOAD (or LOCK TABLES on the captured schemas) and, on MySQL 8.0+, XA_RECOVER_ADMIN",
            )
        }
    };
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut schemas: Vec<&str> = tables.iter().map(|(s, _)| s.as_str()).collect();
    schemas.sort_unstable();
    schemas.dedup();
    lock_grants_verdict(&grants, user, &schemas, needs_xa_recover_admin(&version))
}

/// MySQL 8.0 and later require XA_RECOVER_ADMIN for `XA RECOVER`; 5.7 lets anyone run it.
fn needs_xa_recover_admin(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|major| major >= 8)
}

/// The verdict on `SHOW GRANTS` lines for the MySQL snapshot lock (see [`mysql_lock_check`]).
/// Privileges granted through roles do not show there, so a user with role grants gets a
/// warning instead of a failure.
fn lock_grants_verdict(grants: &[String], user: &str, schemas: &[&str], xa: bool) -> CheckResult {
    use crate::setup::{grants_roles, parse_grants, Level};
    // `sluice setup`'s reading of SHOW GRANTS (aliases, quoting, wider levels covering
    // narrower ones).
    let held = parse_grants(grants);
    let has = |privilege: &str, at: &Level| {
        held.iter().any(|h| {
            (h.privilege == privilege || h.privilege == "ALL PRIVILEGES") && h.level.covers(at)
        })
    };
    let global = |p: &str| has(p, &Level::Global);
    let on_schema = |schema: &str, p: &str| has(p, &Level::Schema(schema.to_owned()));
    let roles = grants_roles(grants);
    let mut missing = Vec::new();
    let reload = global("RELOAD");
    let lock_tables = schemas.iter().all(|s| on_schema(s, "LOCK TABLES"));
    if !reload && !lock_tables {
        let per_schema: Vec<String> = schemas
            .iter()
            .map(|s| {
                format!(
                    "GRANT LOCK TABLES ON `{}`.* TO '{user}'@'%'",
                    s.replace('`', "``")
                )
            })
            .collect();
        missing.push((
            "RELOAD (for FLUSH TABLES WITH READ LOCK) or LOCK TABLES on the captured schemas",
            format!(
                "GRANT RELOAD ON *.* TO '{user}'@'%', or {}",
                per_schema.join("; ")
            ),
        ));
    }
    if xa && !global("XA_RECOVER_ADMIN") {
        missing.push((
            "XA_RECOVER_ADMIN (for XA RECOVER, MySQL 8.0+)",
            format!("GRANT XA_RECOVER_ADMIN ON *.* TO '{user}'@'%'"),
        ));
    }
    if missing.is_empty() {
        let how = if reload {
            "RELOAD allows FLUSH TABLES WITH READ LOCK"
        } else {
            "LOCK TABLES on every captured schema allows LOCK TABLES … READ (RELOAD is not granted)"
        };
        let xa = if xa {
            "; XA_RECOVER_ADMIN is granted"
        } else {
            ""
        };
        return pass(NAME, format!("the snapshot's brief lock: {how}{xa}"));
    }
    let what: Vec<&str> = missing.iter().map(|(w, _)| *w).collect();
    let fix: Vec<String> = missing.into_iter().map(|(_, f)| f).collect();
    let detail = format!(
        "the snapshot user '{user}' lacks {}, which the snapshot's brief lock around its point needs on MySQL",
        what.join(" and ")
    );
    let fix = format!("as an administrator: {}", fix.join("; "));
    if roles {
        warn(
            NAME,
            format!(
                "{detail} (unless a role grants it: SHOW GRANTS does not list role privileges)"
            ),
            fix,
        )
    } else {
        fail(NAME, detail, fix)
    }
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

    fn grants(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn mysql_lock_grants_accept_reload_or_lock_tables_on_every_schema() {
        let reload = grants(&[
            "GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`",
            "GRANT XA_RECOVER_ADMIN ON *.* TO `cdc`@`%`",
        ]);
        let r = lock_grants_verdict(&reload, "cdc", &["shop"], true);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.detail.contains("FLUSH TABLES WITH READ LOCK"));

        let tables = grants(&[
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`",
            "GRANT SELECT, LOCK TABLES ON `shop`.* TO `cdc`@`%`",
            "GRANT SELECT, LOCK TABLES ON `crm`.* TO `cdc`@`%`",
        ]);
        let r = lock_grants_verdict(&tables, "cdc", &["crm", "shop"], false);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        // One schema without LOCK TABLES: neither lock is allowed.
        let r = lock_grants_verdict(&tables, "cdc", &["crm", "shop", "billing"], false);
        assert_eq!(r.status, Status::Fail, "{r:?}");
        let fix = r.fix.unwrap_or_default();
        assert!(fix.contains("GRANT RELOAD ON *.* TO 'cdc'@'%'"), "{fix}");
        assert!(fix.contains("GRANT LOCK TABLES ON `billing`.*"), "{fix}");

        let all = grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        assert_eq!(
            lock_grants_verdict(&all, "root", &["shop"], false).status,
            Status::Pass
        );
    }

    #[test]
    fn mysql_8_needs_xa_recover_admin_and_roles_only_warn() {
        assert!(needs_xa_recover_admin("8.0.36"));
        assert!(needs_xa_recover_admin("9.1.0"));
        assert!(!needs_xa_recover_admin("5.7.44-log"));
        let no_xa = grants(&["GRANT SELECT, RELOAD, REPLICATION SLAVE ON *.* TO `cdc`@`%`"]);
        let r = lock_grants_verdict(&no_xa, "cdc", &["shop"], true);
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.detail.contains("XA_RECOVER_ADMIN"), "{r:?}");
        assert_eq!(
            r.fix.as_deref(),
            Some("as an administrator: GRANT XA_RECOVER_ADMIN ON *.* TO 'cdc'@'%'")
        );
        assert_eq!(
            lock_grants_verdict(&no_xa, "cdc", &["shop"], false).status,
            Status::Pass
        );
        // A privilege named inside another word is not that privilege.
        let lookalike = grants(&["GRANT SELECT ON `reload`.* TO `cdc`@`%`"]);
        assert_eq!(
            lock_grants_verdict(&lookalike, "cdc", &["shop"], false).status,
            Status::Fail
        );
        let with_role = grants(&[
            "GRANT USAGE ON *.* TO `cdc`@`%`",
            "GRANT `cdc_role`@`%` TO `cdc`@`%`",
        ]);
        let r = lock_grants_verdict(&with_role, "cdc", &["shop"], true);
        assert_eq!(r.status, Status::Warn, "{r:?}");
        assert!(r.detail.contains("role"), "{r:?}");
    }

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
