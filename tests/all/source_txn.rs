//! Only what committed is published, against the real MariaDB: a rolled-back transaction (the
//! server logs it when a temporary table was touched), `ROLLBACK TO SAVEPOINT` (logged when a
//! statement also changed a MyISAM table), XA transactions rolled back and committed, and a
//! statement-format write on a captured table, which stops Sluice, again on restart.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

fn inserted_ids(lines: &[String]) -> Vec<i64> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            assert_eq!(v["kind"], "insert", "{v}");
            v["columnvalues"][0].as_i64().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_and_xa_transactions_publish_only_what_committed() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("txn")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
        .setup("CREATE TABLE {t}_m (id INT PRIMARY KEY) ENGINE=MyISAM")
        .setup("INSERT INTO {t}_m VALUES (1)")
        .start()
        .await?;
    let table = p.table.clone();

    // A rolled-back transaction: the temporary table makes the server log it, with ROLLBACK.
    for stmt in [
        "BEGIN".to_owned(),
        format!("INSERT INTO {table} VALUES (1, 'rolled')"),
        "CREATE TEMPORARY TABLE tmp_rb (a INT) ENGINE=MyISAM".to_owned(),
        "INSERT INTO tmp_rb VALUES (1)".to_owned(),
        "ROLLBACK".to_owned(),
        "DROP TEMPORARY TABLE tmp_rb".to_owned(),
    ] {
        p.sql(stmt).await?;
    }
    // ROLLBACK TO SAVEPOINT: the statement that also changes a MyISAM table makes the server
    // log SAVEPOINT and ROLLBACK TO, with the rolled-back rows between them.
    for stmt in [
        "BEGIN".to_owned(),
        format!("INSERT INTO {table} VALUES (2, 'kept')"),
        "SAVEPOINT s1".to_owned(),
        format!("INSERT INTO {table} VALUES (3, 'undone')"),
        format!(
            "UPDATE {table} JOIN {table}_m SET {table}.v = 'undone2', {table}_m.id = {table}_m.id + 100 \
             WHERE {table}.id = 3"
        ),
        "ROLLBACK TO SAVEPOINT s1".to_owned(),
        format!("INSERT INTO {table} VALUES (4, 'kept')"),
        "COMMIT".to_owned(),
    ] {
        p.sql(stmt).await?;
    }
    // XA rolled back, then XA committed (its rows once), then a one-phase XA commit.
    let xa = |id: &str, row: i64, end: &str| {
        vec![
            format!("XA START '{table}{id}'"),
            format!("INSERT INTO {table} VALUES ({row}, 'xa')"),
            format!("XA END '{table}{id}'"),
            format!("XA PREPARE '{table}{id}'"),
            format!("XA {end} '{table}{id}'"),
        ]
    };
    for stmt in xa("a", 10, "ROLLBACK")
        .into_iter()
        .chain(xa("b", 11, "COMMIT"))
    {
        p.sql(stmt).await?;
    }
    for stmt in [
        format!("XA START '{table}c'"),
        format!("INSERT INTO {table} VALUES (12, 'xa1')"),
        format!("XA END '{table}c'"),
        format!("XA COMMIT '{table}c' ONE PHASE"),
        format!("INSERT INTO {table} VALUES (99, 'last')"),
    ] {
        p.sql(stmt).await?;
    }
    assert!(
        wait_until(Duration::from_secs(30), || inserted_ids(
            &sluice.stdout_lines()
        )
        .contains(&99)),
        "{}",
        sluice.stderr_text()
    );
    let lines = sluice.stdout_lines();
    assert_eq!(sluice.stop()?, 0);
    let ids = inserted_ids(&lines);
    eprintln!("published: {ids:?}");
    assert_eq!(
        ids,
        vec![2, 4, 11, 12, 99],
        "only committed rows, each once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_format_write_on_a_captured_table_stops_and_stops_again() -> anyhow::Result<()> {
    let (mut p, mut sluice) = TestPipeline::new("stmt")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1)").await?;
    p.sql("SET SESSION binlog_format=STATEMENT").await?;
    p.sql("INSERT INTO {t} VALUES (2)").await?;
    p.sql("SET SESSION binlog_format=ROW").await?;
    let code = sluice.wait(Duration::from_secs(30))?;
    let err = sluice.stderr_text();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("statement-format write at"), "{err}");
    assert!(err.contains(&format!("{DB}.{}", p.table)), "{err}");
    assert!(err.contains("binlog_format=ROW"), "{err}");
    assert_eq!(inserted_ids(&sluice.stdout_lines()), vec![1]);
    // A restart stops at the same statement: the position did not move past it.
    let (code, out, err2) = p.run_to_end()?;
    assert_ne!(code, 0, "{err2}");
    let at = |e: &str| {
        e.split("statement-format write at ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    };
    assert_eq!(at(&err2), at(&err), "{err2}");
    assert!(at(&err).is_some());
    assert!(inserted_ids(&out.lines().map(str::to_owned).collect::<Vec<_>>()).is_empty());
    Ok(())
}

/// Statement-format writes the first word does not give away: MariaDB's `SET STATEMENT … FOR`,
/// backquoted `db`.`t`, and a table whose name needs backquotes. Each stops Sluice, naming
/// the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_format_writes_in_disguise_stop() -> anyhow::Result<()> {
    let (base, server_id) = unique("stmtx");
    let mut db = admin().await?;
    let dashed = format!("{base}-x y");
    let cases = [
        (
            base.clone(),
            format!("SET STATEMENT max_statement_time=10 FOR UPDATE {base} SET v = 2"),
        ),
        (
            format!("{base}_q"),
            format!("UPDATE `{DB}`.`{base}_q` SET v = 2"),
        ),
        (dashed.clone(), format!("UPDATE `{dashed}` SET v = 2")),
    ];
    for (n, (table, write)) in cases.iter().enumerate() {
        db.query_drop(format!(
            "CREATE TABLE `{table}` (id INT PRIMARY KEY, v INT)"
        ))
        .await?;
        db.query_drop(format!("INSERT INTO `{table}` VALUES (1, 1)"))
            .await?;
        let state = tempfile::tempdir()?;
        let cfg = SluiceConfig::new(table, None, server_id + 1000 * n as u32, state.path());
        let mut sluice = cfg.start()?;
        db.query_drop("SET SESSION binlog_format=STATEMENT").await?;
        db.query_drop(write.as_str()).await?;
        db.query_drop("SET SESSION binlog_format=ROW").await?;
        let code = sluice.wait(Duration::from_secs(30))?;
        let err = sluice.stderr_text();
        assert_ne!(code, 0, "{write}: {err}");
        assert!(err.contains("statement-format write at"), "{write}: {err}");
        assert!(
            err.contains(&format!("the captured table {DB}.{table}")),
            "{write}: {err}"
        );
    }
    Ok(())
}

/// `pipeline.max_batch_bytes` cuts a transaction into pieces: a rollback after a piece was
/// published stops Sluice with a message that says the rows stay published and names both
/// bounds, and does not advise `sluice position skip` (skipping would not take them back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_a_published_piece_names_the_byte_bound() -> anyhow::Result<()> {
    let (mut p, mut sluice) = TestPipeline::new("rbpiece")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
        .config("[pipeline]\nmax_batch_bytes = 1\n")
        .start()
        .await?;
    for stmt in [
        "BEGIN",
        "INSERT INTO {t} VALUES (1, 'a')",
        "INSERT INTO {t} VALUES (2, 'b')",
        "CREATE TEMPORARY TABLE tmp_rbp (a INT) ENGINE=MyISAM",
        "INSERT INTO tmp_rbp VALUES (1)",
        "ROLLBACK",
        "DROP TEMPORARY TABLE tmp_rbp",
    ] {
        p.sql(stmt).await?;
    }
    let code = sluice.wait(Duration::from_secs(30))?;
    let err = sluice.stderr_text();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("were already published"), "{err}");
    assert!(err.contains("pipeline.max_batch_bytes"), "{err}");
    assert!(err.contains("publishes none of it"), "{err}");
    assert!(!err.contains("sluice position skip"), "{err}");
    // The pieces before the rollback were published (one row each: the byte bound is 1).
    assert!(!inserted_ids(&sluice.stdout_lines()).is_empty());
    Ok(())
}
