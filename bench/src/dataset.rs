//! The one binlog every throughput measurement reads: `--rows` row changes of
//! `benchcdc.orders` (8 columns of mixed types), inserts, updates and deletes in transactions of
//! 1, 10, 100 or 1000 rows drawn with a fixed seed, written server-side (the SEQUENCE engine,
//! `UPDATE`/`DELETE … WHERE id BETWEEN`) after `FLUSH BINARY LOGS`. The range and the exact
//! counts are recorded in `benchcdc.dataset`; a later run reuses them while those binlog files
//! are still on the server, so that runs on different days read the very same bytes.
//!
//! The database `bench` belongs to `scripts/bench-snapshot.sh`; this one is `benchcdc`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde::Serialize;
use sluice::state::BinlogPosition;

use crate::{log, Env};

pub const SCHEMA: &str = "benchcdc";
pub const TABLE: &str = "orders";
/// Bumped whenever the generator changes what it writes: older datasets are then regenerated.
const GENERATOR: u32 = 1;
const SEED: u64 = 0x5EED_0010;
const SIZES: [u64; 4] = [1, 10, 100, 1000];

/// The recorded binlog section.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub rows: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub transactions: u64,
    pub seed: u64,
    #[serde(serialize_with = "ser_pos")]
    pub start: BinlogPosition,
    #[serde(serialize_with = "ser_pos")]
    pub end: BinlogPosition,
    /// Bytes of binlog between `start` and `end`.
    pub binlog_bytes: u64,
    pub created: String,
    /// Reused from an earlier run rather than generated now.
    pub reused: bool,
    /// Seconds the generation took (None when reused).
    pub generate_seconds: Option<f64>,
}

fn ser_pos<S: serde::Serializer>(p: &BinlogPosition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string())
}

impl Dataset {
    pub fn mib(&self) -> f64 {
        self.binlog_bytes as f64 / (1 << 20) as f64
    }
}

/// A binlog file's sequence number (`mysql-bin.000012` → 12).
pub fn file_seq(file: &str) -> u64 {
    file.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// Whether `p` is at or past `target`.
pub fn reached(p: &BinlogPosition, target: &BinlogPosition) -> bool {
    (file_seq(&p.file), p.pos) >= (file_seq(&target.file), target.pos)
}

const TABLE_DDL: &str = "CREATE TABLE benchcdc.orders (
  id INT NOT NULL PRIMARY KEY,
  account BIGINT NOT NULL,
  name VARCHAR(64) NOT NULL,
  amount DECIMAL(12,3) NOT NULL,
  created DATETIME(3) NOT NULL,
  score DOUBLE NOT NULL,
  note TEXT,
  flag TINYINT NOT NULL
) ENGINE=InnoDB";

const MARKER_DDL: &str = "CREATE TABLE IF NOT EXISTS benchcdc.dataset (
  row_changes BIGINT NOT NULL PRIMARY KEY,
  generator INT NOT NULL,
  seed BIGINT UNSIGNED NOT NULL,
  start_file VARCHAR(255) NOT NULL,
  start_pos BIGINT UNSIGNED NOT NULL,
  start_gtid VARCHAR(1024) NULL,
  end_file VARCHAR(255) NOT NULL,
  end_pos BIGINT UNSIGNED NOT NULL,
  inserts BIGINT NOT NULL,
  updates BIGINT NOT NULL,
  deletes BIGINT NOT NULL,
  transactions BIGINT NOT NULL,
  created DATETIME NOT NULL
) ENGINE=InnoDB";

/// Reuses the recorded dataset of `rows` row changes, or generates it.
pub async fn prepare(env: &Env, rows: u64, regenerate: bool) -> Result<Dataset> {
    let mut c = Conn::new(env.admin()).await.with_context(|| {
        format!(
            "MariaDB at 127.0.0.1:{} does not answer: run bash scripts/services.sh up",
            env.mysql_port
        )
    })?;
    c.query_drop("CREATE DATABASE IF NOT EXISTS benchcdc")
        .await?;
    // The SEQUENCE engine's tables (seq_1_to_N) live in the current database.
    c.query_drop("USE benchcdc").await?;
    c.query_drop(MARKER_DDL).await?;
    if !regenerate {
        if let Some(ds) = recorded(&mut c, rows).await? {
            log(format!(
                "reusing the dataset of {rows} row changes made {} (--regenerate makes a new one)",
                ds.created
            ));
            c.disconnect().await?;
            return Ok(ds);
        }
    }
    let ds = generate(&mut c, rows).await?;
    c.disconnect().await?;
    Ok(ds)
}

/// The recorded dataset for `rows`, if its binlog files are all still on the server.
async fn recorded(c: &mut Conn, rows: u64) -> Result<Option<Dataset>> {
    type Marker = (
        u64,
        String,
        u64,
        Option<String>,
        String,
        u64,
        u64,
        u64,
        u64,
        u64,
        String,
    );
    let marker: Option<Marker> = c
        .exec_first(
            "SELECT seed, start_file, start_pos, start_gtid, end_file, end_pos, inserts, updates, \
             deletes, transactions, DATE_FORMAT(created, '%Y-%m-%d %H:%i:%s') \
             FROM benchcdc.dataset WHERE row_changes = ? AND generator = ?",
            (rows, GENERATOR),
        )
        .await?;
    let Some((
        seed,
        start_file,
        start_pos,
        start_gtid,
        end_file,
        end_pos,
        inserts,
        updates,
        deletes,
        transactions,
        created,
    )) = marker
    else {
        return Ok(None);
    };
    let start = BinlogPosition {
        file: start_file,
        pos: start_pos,
        gtid: start_gtid,
        timestamp: 0,
    };
    let end = BinlogPosition {
        file: end_file,
        pos: end_pos,
        gtid: None,
        timestamp: 0,
    };
    let logs = binary_logs(c).await?;
    for seq in file_seq(&start.file)..=file_seq(&end.file) {
        if !logs.keys().any(|f| file_seq(f) == seq) {
            log(format!(
                "the recorded dataset ({start} → {end}) is no longer in the binlog; making a new one"
            ));
            return Ok(None);
        }
    }
    let binlog_bytes = range_bytes(&logs, &start, &end);
    Ok(Some(Dataset {
        rows,
        inserts,
        updates,
        deletes,
        transactions,
        seed,
        start,
        end,
        binlog_bytes,
        created,
        reused: true,
        generate_seconds: None,
    }))
}

/// `SHOW BINARY LOGS`: file name → size.
async fn binary_logs(c: &mut Conn) -> Result<HashMap<String, u64>> {
    let rows: Vec<Row> = c.query("SHOW BINARY LOGS").await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
        .collect())
}

fn range_bytes(logs: &HashMap<String, u64>, start: &BinlogPosition, end: &BinlogPosition) -> u64 {
    if file_seq(&start.file) == file_seq(&end.file) {
        return end.pos.saturating_sub(start.pos);
    }
    let size = |seq: u64| {
        logs.iter()
            .find(|(f, _)| file_seq(f) == seq)
            .map_or(0, |(_, s)| *s)
    };
    let (a, b) = (file_seq(&start.file), file_seq(&end.file));
    size(a).saturating_sub(start.pos) + (a + 1..b).map(size).sum::<u64>() + end.pos
}

/// The binlog head, with the GTID state at that very point when no other session wrote while
/// it was read (otherwise without a GTID: Sluice does not need it to start).
async fn head(c: &mut Conn) -> Result<BinlogPosition> {
    async fn status(c: &mut Conn) -> Result<(String, u64)> {
        let r: Row = c
            .query_first("SHOW MASTER STATUS")
            .await?
            .context("SHOW MASTER STATUS returned nothing: the main MariaDB has no binlog")?;
        Ok((
            r.get::<String, _>(0).context("File")?,
            r.get::<u64, _>(1).context("Position")?,
        ))
    }
    let mut last = status(c).await?;
    for _ in 0..20 {
        let gtid: Option<String> = c.query_first("SELECT @@gtid_binlog_pos").await?;
        let now = status(c).await?;
        if now == last {
            return Ok(BinlogPosition {
                file: now.0,
                pos: now.1,
                gtid: gtid.filter(|g| !g.is_empty()),
                timestamp: 0,
            });
        }
        last = now;
    }
    Ok(BinlogPosition {
        file: last.0,
        pos: last.1,
        gtid: None,
        timestamp: 0,
    })
}

/// splitmix64: a fixed-seed generator, so that every run makes the same transactions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Insert,
    Update,
    Delete,
}

/// The transactions: (op, first id, rows). Live ids are always `lo..hi`: inserts append at
/// `hi`, deletes take the oldest rows from `lo`, updates touch a random run inside.
fn plan(rows: u64) -> Vec<(Op, u64, u64)> {
    let mut rng = Rng(SEED);
    let (mut lo, mut hi) = (1u64, 1u64);
    let mut left = rows;
    let mut out = Vec::new();
    while left > 0 {
        let size = SIZES[(rng.next() % 4) as usize].min(left);
        let live = hi - lo;
        let r = rng.next() % 100;
        let op = if r < 50 || live < size {
            Op::Insert
        } else if r < 85 {
            Op::Update
        } else {
            Op::Delete
        };
        let first = match op {
            Op::Insert => {
                hi += size;
                hi - size
            }
            Op::Update => lo + rng.next() % (live - size + 1),
            Op::Delete => {
                lo += size;
                lo - size
            }
        };
        out.push((op, first, size));
        left -= size;
    }
    out
}

fn statement(op: Op, first: u64, size: u64) -> String {
    let last = first + size - 1;
    match op {
        Op::Insert => format!(
            "INSERT INTO benchcdc.orders \
             SELECT seq, seq * 2654435761 % 1000000007, CONCAT('customer-', seq, '-', LEFT(MD5(seq), 12)), \
             (seq * 7919 % 100000000) / 1000, \
             TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 1001000 MICROSECOND, \
             seq / 7.0e0 + 0.125, \
             CONCAT('note ', seq, ': ', MD5(seq), ' ', LEFT(SHA1(seq), 10 + seq % 31)), \
             seq % 128 FROM seq_{first}_to_{last}"
        ),
        // Every column but the key changes, so every row matched is a row event.
        Op::Update => format!(
            "UPDATE benchcdc.orders SET account = account + 1, amount = amount + 1.5, \
             created = created + INTERVAL 1 SECOND, score = score * 1.01e0 + 1, \
             note = CONCAT('updated ', id, ': ', LEFT(MD5(id + amount), 20)), flag = (flag + 1) % 128 \
             WHERE id BETWEEN {first} AND {last}"
        ),
        Op::Delete => format!("DELETE FROM benchcdc.orders WHERE id BETWEEN {first} AND {last}"),
    }
}

async fn generate(c: &mut Conn, rows: u64) -> Result<Dataset> {
    let plan = plan(rows);
    log(format!(
        "generating the dataset: {rows} row changes in {} transactions into benchcdc.orders",
        plan.len()
    ));
    let t0 = Instant::now();
    c.query_drop("SET SESSION binlog_format = 'ROW'").await?;
    c.query_drop("DROP TABLE IF EXISTS benchcdc.orders").await?;
    c.query_drop(TABLE_DDL).await?;
    c.query_drop("FLUSH BINARY LOGS").await?;
    let start = head(c).await?;
    let (mut inserts, mut updates, mut deletes) = (0u64, 0u64, 0u64);
    let mut next_report = rows / 10;
    let mut done = 0u64;
    for (op, first, size) in &plan {
        c.query_drop(statement(*op, *first, *size)).await?;
        let affected = c.affected_rows();
        if affected != *size {
            bail!(
                "the dataset's {op:?} of ids {first}..{} changed {affected} rows, not {size}: \
                 is another session writing to benchcdc.orders?",
                first + size - 1
            );
        }
        match op {
            Op::Insert => inserts += size,
            Op::Update => updates += size,
            Op::Delete => deletes += size,
        }
        done += size;
        if done >= next_report && done < rows {
            log(format!("  {done} row changes written"));
            next_report += rows / 10;
        }
    }
    let end = head(c).await?;
    let logs = binary_logs(c).await?;
    let binlog_bytes = range_bytes(&logs, &start, &end);
    let created: String = c
        .query_first("SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i:%s')")
        .await?
        .unwrap_or_default();
    c.exec_drop(
        "REPLACE INTO benchcdc.dataset VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW())",
        (
            rows,
            GENERATOR,
            SEED,
            &start.file,
            start.pos,
            &start.gtid,
            &end.file,
            end.pos,
            inserts,
            updates,
            deletes,
            plan.len() as u64,
        ),
    )
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    log(format!("  generated in {secs:.1} s"));
    Ok(Dataset {
        rows,
        inserts,
        updates,
        deletes,
        transactions: plan.len() as u64,
        seed: SEED,
        start,
        end,
        binlog_bytes,
        created,
        reused: false,
        generate_seconds: Some(secs),
    })
}

/// Waits until the replica on `--replica-port` (if it runs and replicates) has applied the
/// main server's binlog, so that it does not take CPU from the measurements.
pub async fn wait_for_replica(env: &Env) {
    let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(env.replica_port)
        .user(Some("admin"))
        .pass(Some("admin-pw"))
        .into();
    let Ok(Ok(mut r)) = tokio::time::timeout(Duration::from_secs(3), Conn::new(opts)).await else {
        log(format!(
            "no replica answers on 127.0.0.1:{}; not waiting for one",
            env.replica_port
        ));
        return;
    };
    let running = async {
        let st: Option<Row> = r.query_first("SHOW SLAVE STATUS").await.ok()?;
        let st = st?;
        let sql: String = st
            .get_opt(
                st.columns_ref()
                    .iter()
                    .position(|c| c.name_str() == "Slave_SQL_Running")?,
            )?
            .ok()?;
        Some(sql == "Yes")
    };
    if running.await != Some(true) {
        log("the replica is not replicating; not waiting for it");
        return;
    }
    let Ok(mut m) = Conn::new(env.admin()).await else {
        return;
    };
    let gtid: Option<String> = m
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .ok()
        .flatten();
    let _ = m.disconnect().await;
    let Some(gtid) = gtid else { return };
    let t0 = Instant::now();
    let res: Option<i64> = r
        .exec_first("SELECT MASTER_GTID_WAIT(?, 600)", (gtid.as_str(),))
        .await
        .ok()
        .flatten();
    match res {
        Some(0) => log(format!(
            "the replica on 127.0.0.1:{} has applied the dataset (waited {:.1} s)",
            env.replica_port,
            t0.elapsed().as_secs_f64()
        )),
        _ => log("the replica did not catch up within 600 s; measuring anyway"),
    }
    let _ = r.disconnect().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_exactly_the_rows_asked_and_keeps_ids_live() {
        for rows in [1, 999, 100_000, 1_000_000] {
            let p = plan(rows);
            assert_eq!(p.iter().map(|t| t.2).sum::<u64>(), rows);
            let (mut lo, mut hi) = (1, 1);
            for (op, first, size) in p {
                match op {
                    Op::Insert => {
                        assert_eq!(first, hi);
                        hi += size
                    }
                    Op::Update => assert!(first >= lo && first + size <= hi),
                    Op::Delete => {
                        assert_eq!(first, lo);
                        lo += size;
                        assert!(lo <= hi)
                    }
                }
            }
        }
    }
}
