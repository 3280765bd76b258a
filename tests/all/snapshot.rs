//! The initial snapshot (issue 8) against the real MariaDB and broker: consistency with the
//! binlog hand-off under concurrent writes, the boundary at the snapshot's point, a `kill -9`
//! mid-snapshot and its resume, the triggers, and keys of every shape.
//!
//! The check is the one a consumer makes: replay every record of the topic in order, keyed by
//! the primary key (snapshot_insert and insert upsert, update moves a key, delete removes it),
//! and compare the result with the table as MariaDB now has it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::Value as Json;
use sluice_tests::*;

const TABLE: &str =
    "CREATE TABLE {t} (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(40)) ENGINE=InnoDB";

/// Rows `1..=n`, inserted in one statement by MariaDB's sequence engine.
async fn load(p: &mut Pipeline, n: u64) -> anyhow::Result<()> {
    p.sql(format!(
        "INSERT INTO {{t}} SELECT seq, seq % 1000, CONCAT('row-', seq) FROM seq_1_to_{n}"
    ))
    .await
}

/// The table as MariaDB has it now: id → (v, s).
async fn table_now(p: &mut Pipeline) -> anyhow::Result<BTreeMap<i64, (i64, Option<String>)>> {
    let rows: Vec<(i64, i64, Option<String>)> =
        p.db.query(format!("SELECT id, v, s FROM {} ORDER BY id", p.table))
            .await?;
    Ok(rows.into_iter().map(|(id, v, s)| (id, (v, s))).collect())
}

/// What a consumer holds after applying every record in order, keyed by `id`.
fn replay(records: &[Record]) -> BTreeMap<i64, (i64, Option<String>)> {
    let mut m = BTreeMap::new();
    let row = |v: &Json| {
        (
            v[0].as_i64().expect("id"),
            (v[1].as_i64().expect("v"), v[2].as_str().map(str::to_owned)),
        )
    };
    for r in records {
        let v = &r.value;
        match v["kind"].as_str() {
            Some("snapshot_insert") | Some("insert") => {
                let (id, rest) = row(&v["columnvalues"]);
                m.insert(id, rest);
            }
            Some("update") => {
                let (old, _) = row(&v["oldkeys"]["keyvalues"]);
                m.remove(&old);
                let (id, rest) = row(&v["columnvalues"]);
                m.insert(id, rest);
            }
            Some("delete") => {
                let (old, _) = row(&v["oldkeys"]["keyvalues"]);
                m.remove(&old);
            }
            k => panic!("unexpected kind {k:?} in {v}"),
        }
    }
    m
}

/// Names the first differences, which is what a reader of a failure needs.
fn assert_same(
    got: &BTreeMap<i64, (i64, Option<String>)>,
    want: &BTreeMap<i64, (i64, Option<String>)>,
    log: &str,
) {
    if got == want {
        return;
    }
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(k))
        .take(10)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(k))
        .take(10)
        .collect();
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(k).is_some_and(|g| g != *v))
        .take(10)
        .collect();
    panic!(
        "the replay differs from the table ({} rows replayed, {} in the table): missing {missing:?}, \
         extra {extra:?}, different {differ:?}\nsluice stderr (tail):\n{}",
        got.len(),
        want.len(),
        log.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// Random inserts, updates (primary-key changes included) and deletes on rows `1..=n` and new
/// rows above them, each in its own transaction or a few together, until `stop`. Returns the
/// number of statements run.
fn writer(table: String, n: i64, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut db = admin().await.expect("writer connection");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ n as u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let next_id = AtomicU64::new(0);
        let mut ops = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let batch = 1 + rnd() % 3;
            let mut stmts = Vec::new();
            for _ in 0..batch {
                let id = 1 + (rnd() % n as u64) as i64;
                stmts.push(match rnd() % 4 {
                    0 => {
                        let new = 10_000_000 + next_id.fetch_add(1, Ordering::SeqCst) as i64;
                        format!("INSERT INTO {table} VALUES ({new}, 7, 'new-{new}')")
                    }
                    1 => format!("UPDATE {table} SET v = v + 1, s = 'upd' WHERE id = {id}"),
                    2 => format!("DELETE FROM {table} WHERE id = {id}"),
                    _ => format!("UPDATE IGNORE {table} SET id = id + 20000000 WHERE id = {id}"),
                });
            }
            let sql = format!("START TRANSACTION; {}; COMMIT", stmts.join("; "));
            db.query_drop(sql).await.expect("writer statement");
            ops += batch;
        }
        ops
    })
}

/// Waits (up to `secs`) until Sluice logs `line`.
fn wait_log(sluice: &Sluice, line: &str, secs: u64) {
    assert!(
        wait_until(Duration::from_secs(secs), || sluice.log_contains(line)),
        "no {line:?} within {secs} s:\n{}",
        sluice.stderr_text()
    );
}

/// Inserts the sentinel row -3 into a [`TABLE`] and reads the topic up to it: everything
/// published before it.
async fn to_sentinel(p: &mut Pipeline) -> anyhow::Result<Vec<Record>> {
    p.sql("INSERT INTO {t} VALUES (-3, 0, 'sentinel')").await?;
    read_to_sentinel(p, -3)
}

/// Replays `records` and compares the result with the table as MariaDB has it now (which it
/// returns).
async fn assert_replays_table(
    p: &mut Pipeline,
    records: &[Record],
    sluice: &Sluice,
) -> anyhow::Result<BTreeMap<i64, (i64, Option<String>)>> {
    let want = table_now(p).await?;
    assert_same(&replay(records), &want, &sluice.stderr_text());
    Ok(want)
}

/// Reads the topic until the sentinel row `id` arrives.
fn read_to_sentinel(p: &Pipeline, id: i64) -> anyhow::Result<Vec<Record>> {
    read_topic_until(&p.topic, Duration::from_secs(180), |r| {
        r.value["columnvalues"][0].as_i64() == Some(id)
    })
}

fn kinds_of(records: &[Record], id: i64) -> Vec<String> {
    records
        .iter()
        .filter(|r| {
            r.value["columnvalues"][0].as_i64() == Some(id)
                || r.value["oldkeys"]["keyvalues"][0].as_i64() == Some(id)
        })
        .map(|r| r.value["kind"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The snapshot file's JSON, once it exists.
fn snapshot_file(p: &Pipeline) -> Option<Json> {
    let dir = std::fs::read_dir(p.state_dir()).ok()?;
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("snapshot_") && name.ends_with(".json") {
            return serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok();
        }
    }
    None
}

/// Loads 200k rows, snapshots them while a writer changes them, and checks the replay of the
/// topic against the table, and the boundary: a row committed before the snapshot's point
/// comes only as a snapshot row, one committed after it exactly once as a change event.
async fn consistent_under_writes(prefix: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut b = TestPipeline::new(prefix)
        .kafka()
        .setup(TABLE)
        .env("INITIAL_SNAPSHOT", "true")
        .env("SNAPSHOT_BATCH_SIZE", "500")
        .config("[snapshot]\nprogress_interval_ms = 100\n");
    for (k, v) in env {
        b = b.env(k, *v);
    }
    let mut p = b.build().await?;
    load(&mut p, 200_000).await?;
    // Committed before the snapshot: it must come only as a snapshot row.
    p.sql("INSERT INTO {t} VALUES (-1, 0, 'before')").await?;
    if env.iter().any(|(k, _)| *k == "MYSQL_SNAPSHOT_HOST") {
        // The replica has the table and the rows before the snapshot is asked of it.
        let gtid: String =
            p.db.query_first("SELECT @@gtid_binlog_pos")
                .await?
                .unwrap_or_default();
        // A plain connection: a local write on the replica (even `CREATE DATABASE IF NOT
        // EXISTS`) would be binlogged there and stop its strict-GTID replication.
        let url = &sluice_tests::env()["SLUICE_TEST_MYSQL_REPLICA_URL"];
        let mut replica = mysql_async::Conn::new(mysql_async::Opts::from_url(url)?).await?;
        let waited: Option<i64> = replica
            .query_first(format!("SELECT MASTER_GTID_WAIT('{gtid}', 60)"))
            .await?;
        assert_eq!(waited, Some(0), "the replica did not catch up with {gtid}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(p.table.clone(), 200_000, stop.clone());
    let sluice = p.spawn()?;
    wait_log(&sluice, "snapshot started", 60);
    // Committed after the snapshot's point (logged once the point is captured): it must come
    // exactly once, as a change event.
    p.sql("INSERT INTO {t} VALUES (-2, 0, 'after')").await?;
    wait_log(&sluice, "snapshot complete", 120);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let ops = w.await?;
    let records = to_sentinel(&mut p).await?;

    assert_eq!(kinds_of(&records, -1), ["snapshot_insert"]);
    assert_eq!(kinds_of(&records, -2), ["insert"]);
    let snapshot_rows = records
        .iter()
        .filter(|r| r.value["kind"] == "snapshot_insert")
        .count();
    assert!(snapshot_rows > 150_000, "{snapshot_rows} snapshot rows");
    assert!(ops > 0, "the writer ran no statement");
    assert_replays_table(&mut p, &records, &sluice).await?;
    assert!(sluice.log_contains("snapshot progress"), "no progress line");
    let state = snapshot_file(&p).expect("snapshot file");
    assert_eq!(state["status"], "complete", "{state}");
    eprintln!(
        "{snapshot_rows} snapshot rows, {ops} concurrent writes, {} records",
        records.len()
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_under_writes_replays_to_the_table() -> anyhow::Result<()> {
    consistent_under_writes("snapw", &[]).await
}

/// The same from a GTID replica (`scripts/services.sh replica`) while streaming from the
/// primary: the point is the primary's, located from the replica's applied GTID state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_from_a_replica_replays_to_the_primarys_table() -> anyhow::Result<()> {
    services("replica")?;
    let host = format!(
        "127.0.0.1:{}",
        sluice_tests::env()["SLUICE_TEST_MYSQL_REPLICA_PORT"]
    );
    consistent_under_writes("snaprep", &[("MYSQL_SNAPSHOT_HOST", host.as_str())]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_snapshot_resumes_without_losing_a_row() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("snapkill")
        .kafka()
        .setup(TABLE)
        .env("INITIAL_SNAPSHOT", "true")
        .env("SNAPSHOT_BATCH_SIZE", "1000")
        .build()
        .await?;
    load(&mut p, 500_000).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(p.table.clone(), 500_000, stop.clone());
    let sluice = p.spawn()?;
    // Kill once some chunks are acknowledged and recorded, well before the end.
    let at_kill = kill_after(&p, sluice, 20_000);
    assert!(at_kill < 500_000, "the snapshot ended before the kill");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sluice = p.spawn()?;
    wait_log(&sluice, "snapshot complete", 120);
    assert!(
        sluice.log_contains("resuming the interrupted snapshot"),
        "{}",
        sluice.stderr_text()
    );
    stop.store(true, Ordering::SeqCst);
    w.await?;
    let records = to_sentinel(&mut p).await?;
    assert_replays_table(&mut p, &records, &sluice).await?;
    let state = snapshot_file(&p).expect("snapshot file");
    assert_eq!(state["status"], "complete", "{state}");
    assert_eq!(state["epoch"], 2, "{state}");
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_snapshot_is_repeated_only_when_forced() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("snapforce")
        .kafka()
        .setup(TABLE)
        .env("INITIAL_SNAPSHOT", "true")
        .build()
        .await?;
    load(&mut p, 10).await?;
    let sluice = p.start()?;
    let first = p.consume(10)?;
    assert_eq!(first.len(), 10, "{}", sluice.stderr_text());
    assert!(first.iter().all(|r| r.value["kind"] == "snapshot_insert"));
    // The checkpointer saves at most every 200 ms, so the rows can be read before the file says
    // so.
    assert!(wait_until(Duration::from_secs(10), || {
        snapshot_file(&p).is_some_and(|s| s["status"] == "complete")
    }));
    let id = snapshot_file(&p).expect("snapshot file")["id"].clone();
    assert_eq!(sluice.stop()?, 0);

    // INITIAL_SNAPSHOT still set: the completed snapshot is not taken again.
    let sluice = p.start()?;
    p.sql("INSERT INTO {t} VALUES (11, 1, 'streamed')").await?;
    let all = p.consume_settled(11, Duration::from_secs(2))?;
    assert_eq!(all.len(), 11, "{}", sluice.stderr_text());
    assert_eq!(all[10].value["kind"], "insert");
    assert!(!sluice.log_contains("snapshot started"));
    assert_eq!(sluice.stop()?, 0);

    // FORCE_SNAPSHOT: every row again, under a new snapshot id, then streaming as before.
    let mut forced = p.cfg.clone();
    forced.set("FORCE_SNAPSHOT", "true");
    let sluice = forced.start()?;
    p.sql("INSERT INTO {t} VALUES (12, 1, 'after the forced one')")
        .await?;
    let all = p.consume_settled(23, Duration::from_secs(2))?;
    assert_eq!(all.len(), 23, "{}", sluice.stderr_text());
    assert!(all[11..22]
        .iter()
        .all(|r| r.value["kind"] == "snapshot_insert"));
    assert_eq!(all[22].value["kind"], "insert");
    assert_ne!(snapshot_file(&p).expect("snapshot file")["id"], id);
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_every_shape_give_every_row_exactly_once() -> anyhow::Result<()> {
    // A composite key of an INT, a latin1_swedish_ci VARCHAR (whose order is not the bytes')
    // and a DESC column; a key led by an ENUM (ordered by index, not label); a table with only
    // a UNIQUE NOT NULL key; a table without any key. Seven rows per chunk.
    let mut p = TestPipeline::new("snapkeys")
        .kafka()
        .tables("{t}_c,{t}_e,{t}_u,{t}_n,{t}_b")
        .setup(
            "CREATE TABLE {t}_c (a INT, b VARCHAR(10) CHARACTER SET latin1 COLLATE \
             latin1_swedish_ci, c INT, v INT, PRIMARY KEY (a, b, c DESC)) ENGINE=InnoDB",
        )
        .setup("CREATE TABLE {t}_e (e ENUM('b','a','c'), n INT, PRIMARY KEY (e, n)) ENGINE=InnoDB")
        .setup("CREATE TABLE {t}_u (u VARCHAR(10) NOT NULL, v INT, UNIQUE KEY (u)) ENGINE=InnoDB")
        .setup("CREATE TABLE {t}_n (v INT, w VARCHAR(10)) ENGINE=InnoDB")
        .setup("CREATE TABLE {t}_b (k VARBINARY(8) PRIMARY KEY) ENGINE=InnoDB")
        .env("INITIAL_SNAPSHOT", "true")
        .env("SNAPSHOT_BATCH_SIZE", "7")
        .build()
        .await?;
    let words = ["a", "B", "D", "é", "f", "z", "Å", "ab", "Ac"];
    let mut expected = 0;
    for a in 1..=3 {
        for w in words {
            for c in 1..=3 {
                p.sql(format!(
                    "INSERT INTO {{t}}_c VALUES ({a}, '{w}', {c}, {})",
                    a * 100 + c
                ))
                .await?;
                expected += 1;
            }
        }
    }
    for e in ["a", "b", "c"] {
        for n in 1..=10 {
            p.sql(format!("INSERT INTO {{t}}_e VALUES ('{e}', {n})"))
                .await?;
            expected += 1;
        }
    }
    for (i, w) in words.iter().enumerate() {
        p.sql(format!("INSERT INTO {{t}}_u VALUES ('{w}{i}', {i})"))
            .await?;
        expected += 1;
    }
    for i in 0..25 {
        p.sql(format!("INSERT INTO {{t}}_n VALUES ({i}, 'n{i}')"))
            .await?;
        expected += 1;
    }
    // Bytes that are not UTF-8 must reach the server intact as the cursor.
    for b in 0..=255u32 {
        if b % 3 == 0 || b >= 0x7E {
            p.sql(format!(
                "INSERT INTO {{t}}_b VALUES (X'{b:02X}'), (X'{b:02X}00')"
            ))
            .await?;
            expected += 2;
        }
    }
    let sluice = p.start()?;
    let records = p.consume_settled(expected, Duration::from_secs(2))?;
    assert_eq!(records.len(), expected, "{}", sluice.stderr_text());
    let mut seen = std::collections::HashSet::new();
    for r in &records {
        assert_eq!(r.value["kind"], "snapshot_insert");
        let key = format!("{}:{}", r.value["table"], r.value["columnvalues"]);
        assert!(seen.insert(key.clone()), "{key} came twice");
    }
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_when_needed_resnapshots_after_a_purge() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("snapneeded")
        .scratch()
        .kafka()
        .setup(TABLE)
        .env("SNAPSHOT_WHEN_NEEDED", "true")
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1, 1, 'streamed')").await?;
    assert_eq!(p.consume(1)?.len(), 1, "{}", sluice.stderr_text());
    assert_eq!(sluice.stop()?, 0);
    let (file, _) = p.cfg.saved_position()?;
    // The server moves on and purges that file (MariaDB keeps a file until InnoDB has
    // checkpointed past it, so retry for a while).
    let mut purged = false;
    for _ in 0..50 {
        p.sql("FLUSH BINARY LOGS").await?;
        let current = binlog_head(&mut p.db).await?.0;
        p.sql(format!("PURGE BINARY LOGS TO '{current}'")).await?;
        let logs: Vec<mysql_async::Row> = p.db.query("SHOW BINARY LOGS").await?;
        if logs
            .iter()
            .all(|r| r.get::<String, _>(0).as_deref() != Some(file.as_str()))
        {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(purged, "{file} could not be purged");
    p.sql("INSERT INTO {t} VALUES (2, 2, 'lost from the binlog')")
        .await?;

    // Without the setting, the error names both remedies.
    let mut plain = p.cfg.clone();
    plain.set("SNAPSHOT_WHEN_NEEDED", "false");
    let (code, _, err) = plain.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains("FORCE_SNAPSHOT=true") && err.contains("SNAPSHOT_WHEN_NEEDED=true"),
        "{err}"
    );

    // With it, Sluice says so loudly and snapshots again: row 2 arrives, as a snapshot row.
    let sluice = p.start()?;
    let all = p.consume_settled(3, Duration::from_secs(2))?;
    assert_eq!(all.len(), 3, "{}", sluice.stderr_text());
    assert_eq!(kinds_of(&all, 2), ["snapshot_insert"]);
    assert!(
        sluice.log_contains("re-snapshotting every captured table (SNAPSHOT_WHEN_NEEDED=true)"),
        "{}",
        sluice.stderr_text()
    );
    assert!(sluice.log_contains("\"level\":\"ERROR\""));
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_grant_or_an_unreachable_snapshot_host_stops_with_the_remedy(
) -> anyhow::Result<()> {
    let p = TestPipeline::new("snapgrant")
        .kafka()
        .tables("{t},{t}_secret")
        .setup(TABLE)
        .setup("CREATE TABLE {t}_secret (id INT PRIMARY KEY) ENGINE=InnoDB")
        .env("INITIAL_SNAPSHOT", "true")
        .build()
        .await?;
    // A user that may replicate and read the first table, not the second.
    let user = format!("g{}", p.server_id);
    let mut db = admin().await?;
    db.query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await?;
    db.query_drop(format!(
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'"
    ))
    .await?;
    db.query_drop(format!("GRANT SELECT ON {DB}.{} TO '{user}'@'%'", p.table))
        .await?;
    // Visible in the catalog (any privilege shows it), but not readable.
    db.query_drop(format!(
        "GRANT INSERT ON {DB}.{}_secret TO '{user}'@'%'",
        p.table
    ))
    .await?;
    let mut cfg = p.cfg.clone();
    cfg.set("MYSQL_USER", &user).set("MYSQL_PASSWORD", "pw");

    let (code, out, _) = cfg.run_to_end(&["check", "--no-produce"])?;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("[FAIL] snapshot") && out.contains(&format!("{}_secret", p.table)),
        "{out}"
    );
    assert!(out.contains("GRANT SELECT"), "{out}");
    let (code, _, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains("GRANT SELECT") && err.contains("_secret"),
        "{err}"
    );
    db.query_drop(format!("DROP USER '{user}'@'%'")).await?;

    // A snapshot host that cannot be reached: a clear error, and no streaming instead.
    let mut cfg = p.cfg.clone();
    cfg.set("MYSQL_SNAPSHOT_HOST", "127.0.0.1:1");
    let (code, _, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains("snapshot host 127.0.0.1:1") && err.contains("MYSQL_SNAPSHOT_HOST"),
        "{err}"
    );
    assert!(!err.contains("streaming the binlog"), "{err}");
    assert!(read_topic(&p.topic, 1, Duration::from_secs(2))?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xa_prepared_before_the_snapshot_makes_it_wait_then_comes_once() -> anyhow::Result<()> {
    // An XA transaction prepared before the snapshot's point: its rows are invisible to the
    // read view and written in the binlog before the point, so the snapshot must wait for it.
    let mut p = TestPipeline::new("snapxa")
        .kafka()
        .setup(TABLE)
        .env("INITIAL_SNAPSHOT", "true")
        .build()
        .await?;
    load(&mut p, 3).await?;
    let xid = format!("snapxa{}", p.server_id);
    p.sql(format!("XA START '{xid}'")).await?;
    p.sql("INSERT INTO {t} VALUES (5, 5, 'prepared')").await?;
    p.sql(format!("XA END '{xid}'")).await?;
    p.sql(format!("XA PREPARE '{xid}'")).await?;
    let sluice = p.spawn()?;
    assert!(
        wait_until(Duration::from_secs(60), || sluice
            .log_contains("XA transaction(s) are prepared")),
        "{}",
        sluice.stderr_text()
    );
    assert!(!sluice.log_contains("snapshot started"));
    p.sql(format!("XA COMMIT '{xid}'")).await?;
    assert!(
        wait_until(Duration::from_secs(60), || sluice
            .log_contains("snapshot complete")),
        "{}",
        sluice.stderr_text()
    );
    let records = to_sentinel(&mut p).await?;
    assert_eq!(kinds_of(&records, 5), ["snapshot_insert"], "{records:?}");
    assert_replays_table(&mut p, &records, &sluice).await?;
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_table_cut_by_a_kill_is_truncated_and_read_again() -> anyhow::Result<()> {
    // No key: after a crash the table is read again from the start. With ON_TABLE_RESET=event
    // a `truncate` comes first, so a consumer that applies it holds exactly the table, even
    // for rows deleted while Sluice was down.
    let mut p = TestPipeline::new("snapnokey")
        .kafka()
        .setup("CREATE TABLE {t} (v INT NOT NULL, s VARCHAR(40)) ENGINE=InnoDB")
        .env("INITIAL_SNAPSHOT", "true")
        .env("ON_TABLE_RESET", "event")
        .build()
        .await?;
    p.sql("INSERT INTO {t} SELECT seq, CONCAT('row-', seq) FROM seq_1_to_300000")
        .await?;
    let sluice = p.spawn()?;
    let at_kill = kill_after(&p, sluice, 10_000);
    assert!(at_kill < 300_000, "the snapshot ended before the kill");
    // Rows already published are deleted while Sluice is down.
    p.sql("DELETE FROM {t} WHERE v <= 100").await?;
    let sluice = p.spawn()?;
    wait_log(&sluice, "snapshot complete", 120);
    p.sql("INSERT INTO {t} VALUES (-3, 'sentinel')").await?;
    let records = read_to_sentinel(&p, -3)?;
    let truncates: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.value["kind"] == "truncate")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(truncates.len(), 1, "{}", sluice.stderr_text());
    // After the truncate: every row of the table exactly once, and the sentinel.
    let mut after: Vec<i64> = records[truncates[0] + 1..]
        .iter()
        .map(|r| r.value["columnvalues"][0].as_i64().expect("v"))
        .collect();
    after.sort_unstable();
    let want: Vec<i64> = std::iter::once(-3).chain(101..=300_000).collect();
    assert_eq!(after.len(), want.len());
    assert!(
        after == want,
        "the rows after the truncate differ from the table"
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

/// Kills Sluice (`kill -9`) once the snapshot of `p`'s table has acknowledged `rows` rows;
/// returns how many it had then.
fn kill_after(p: &Pipeline, sluice: Sluice, rows: u64) -> u64 {
    let at_kill = wait_rows(p, &sluice, rows);
    sluice.kill9().expect("kill -9");
    at_kill
}

/// Waits (up to 120 s) until the snapshot of `p`'s table has acknowledged `rows` rows;
/// returns how many it had then.
fn wait_rows(p: &Pipeline, sluice: &Sluice, rows: u64) -> u64 {
    let mut done = 0;
    let reached = wait_until(Duration::from_secs(120), || {
        done = snapshot_file(p)
            .and_then(|s| s["tables"][0]["rows"].as_u64())
            .unwrap_or(0);
        done >= rows
    });
    assert!(reached, "{}", sluice.stderr_text());
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xa_prepared_during_a_crash_commits_into_the_resumed_snapshot() -> anyhow::Result<()> {
    // While Sluice is down mid-snapshot, an XA transaction updates a row already published and
    // is prepared; it commits while the resume catches up. Its update must arrive.
    let mut p = TestPipeline::new("snapxacatch")
        .kafka()
        .setup(TABLE)
        .env("INITIAL_SNAPSHOT", "true")
        .env("SNAPSHOT_BATCH_SIZE", "500")
        .build()
        .await?;
    load(&mut p, 100_000).await?;
    let sluice = p.spawn()?;
    kill_after(&p, sluice, 2_000);
    let xid = format!("snapxacatch{}", p.server_id);
    p.sql(format!("XA START '{xid}'")).await?;
    p.sql("UPDATE {t} SET v = 999 WHERE id = 1").await?;
    p.sql(format!("XA END '{xid}'")).await?;
    p.sql(format!("XA PREPARE '{xid}'")).await?;
    let sluice = p.spawn()?;
    assert!(
        wait_until(Duration::from_secs(60), || sluice
            .log_contains("resuming the interrupted snapshot")),
        "{}",
        sluice.stderr_text()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    p.sql(format!("XA COMMIT '{xid}'")).await?;
    wait_log(&sluice, "snapshot complete", 120);
    let records = to_sentinel(&mut p).await?;
    let want = assert_replays_table(&mut p, &records, &sluice).await?;
    assert_eq!(want.get(&1).map(|r| r.0), Some(999));
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_snapshot_resumes_after_its_connection_is_killed() -> anyhow::Result<()> {
    // FORCE_SNAPSHOT alone (no INITIAL_SNAPSHOT): a retryable failure mid-snapshot (the
    // snapshot's connection killed by a DBA) resumes it; it neither restarts nor stops.
    let mut p = TestPipeline::new("snapforcekill")
        .kafka()
        .own_user()
        .setup(TABLE)
        .env("FORCE_SNAPSHOT", "true")
        .env("SNAPSHOT_BATCH_SIZE", "500")
        .build()
        .await?;
    load(&mut p, 100_000).await?;
    let sluice = p.spawn()?;
    wait_rows(&p, &sluice, 2_000);
    let ids: Vec<u64> =
        p.db.query(format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{}'",
            p.user
        ))
        .await?;
    assert!(!ids.is_empty());
    for id in ids {
        let _ = p.db.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    wait_log(&sluice, "snapshot complete", 120);
    assert!(
        sluice.log_contains("resuming the interrupted snapshot"),
        "{}",
        sluice.stderr_text()
    );
    // The completion is saved once Kafka acknowledged the last rows.
    assert!(wait_until(Duration::from_secs(30), || {
        snapshot_file(&p).is_some_and(|s| s["status"] == "complete" && s["epoch"] == 2)
    }));
    let records = to_sentinel(&mut p).await?;
    assert_replays_table(&mut p, &records, &sluice).await?;
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alter_waits_for_the_snapshot_and_sluice_names_it() -> anyhow::Result<()> {
    // The snapshot holds each captured table's metadata lock until it ends: an ALTER waits
    // (here until its lock_wait_timeout), and Sluice names the waiting session.
    // One row per chunk: a snapshot slow enough for the ALTER to meet it.
    let mut p = TestPipeline::new("snapmdl")
        .kafka()
        .setup(TABLE)
        .env("INITIAL_SNAPSHOT", "true")
        .env("SNAPSHOT_BATCH_SIZE", "1")
        .config("[snapshot]\nprogress_interval_ms = 100\n")
        .build()
        .await?;
    load(&mut p, 30_000).await?;
    let sluice = p.spawn()?;
    wait_log(&sluice, "snapshot started", 60);
    let mut ddl = admin().await?;
    ddl.query_drop("SET SESSION lock_wait_timeout = 2").await?;
    let alter = ddl
        .query_drop(format!("ALTER TABLE {} ADD COLUMN x INT", p.table))
        .await;
    let code = match alter {
        Err(mysql_async::Error::Server(e)) => e.code,
        other => panic!("the ALTER did not wait for the snapshot: {other:?}"),
    };
    assert_eq!(code, 1205, "lock wait timeout");
    assert!(
        !sluice.log_contains("snapshot complete"),
        "the snapshot ended before the ALTER gave up: the test proves nothing"
    );
    assert!(
        sluice.log_contains("waits for a captured table's metadata lock"),
        "{}",
        sluice.stderr_text()
    );
    assert!(sluice.log_contains("history_list_length"));
    wait_log(&sluice, "snapshot complete", 120);
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_mid_snapshot_saves_its_progress_and_a_restart_finishes_it() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("snapstop")
        .kafka()
        .setup(TABLE)
        .env("INITIAL_SNAPSHOT", "true")
        .env("SNAPSHOT_BATCH_SIZE", "200")
        .build()
        .await?;
    load(&mut p, 100_000).await?;
    let sluice = p.spawn()?;
    wait_rows(&p, &sluice, 2_000);
    // SIGTERM: the current batch finishes, what is in flight is acknowledged and saved, exit 0.
    assert_eq!(sluice.stop()?, 0);
    let state = snapshot_file(&p).expect("snapshot file");
    assert_eq!(state["status"], "running", "{state}");
    let saved = state["tables"][0]["rows"].as_u64().unwrap_or(0);
    assert!((2_000..100_000).contains(&saved), "{state}");
    let published = read_topic(&p.topic, 200_000, Duration::from_secs(3))?.len() as u64;
    assert_eq!(
        published, saved,
        "every acknowledged row is recorded, and only those"
    );

    let sluice = p.spawn()?;
    wait_log(&sluice, "snapshot complete", 120);
    let records = to_sentinel(&mut p).await?;
    // A graceful stop repeats nothing: each row exactly once.
    let snapshot_rows = records
        .iter()
        .filter(|r| r.value["kind"] == "snapshot_insert")
        .count();
    assert_eq!(snapshot_rows, 100_000);
    assert_replays_table(&mut p, &records, &sluice).await?;
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
