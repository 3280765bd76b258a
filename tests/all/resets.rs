//! Statements that change a captured table's rows without row events, against the real
//! MariaDB (issue 15): each stops Sluice with the statement, the table and the position, before
//! anything false is published, and a restart stops at the same place. The online-schema-change
//! swap keeps working, sequences publish nothing, and a system-versioned table's events replay
//! to what `SELECT *` shows.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

fn events(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The `file:pos` that the stop names (the last one before `expect`).
fn stop_position(err: &str, expect: &str) -> Option<String> {
    let at = err[..err.rfind(expect)?].rfind("mysql-bin.")?;
    err[at..]
        .split(|c: char| c.is_whitespace() || c == ' ')
        .next()
        .map(|s| s.trim_end_matches(':').to_owned())
}

/// Starts Sluice on `{t}` after `setup`, publishes one marker row (id 1), runs `statements`,
/// and checks that Sluice stops with `expect` in its error, having published `published` events
/// (the marker, and the true ones the statements wrote before the stop), and that a restart stops at the same position. `{t}` is the table's name.
async fn stops(
    prefix: &str,
    setup: &[&str],
    statements: &[&str],
    expect: &str,
    published: usize,
) -> anyhow::Result<()> {
    stops_then(prefix, setup, statements, expect, published, None).await
}

/// As [`stops`]; with `restart_refusal`, the restart is refused at start with that text (the
/// start-up check sees what the stream saw) instead of stopping at the same position.
async fn stops_then(
    prefix: &str,
    setup: &[&str],
    statements: &[&str],
    expect: &str,
    published: usize,
    restart_refusal: Option<&str>,
) -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new(prefix);
    for s in setup {
        pipeline = pipeline.setup(*s);
    }
    let (mut p, mut sluice) = pipeline.start().await?;
    p.sql("INSERT INTO {t} (id) VALUES (1)").await?;
    assert!(
        wait_until(Duration::from_secs(30), || !events(&sluice.stdout_lines())
            .is_empty()),
        "{}",
        sluice.stderr_text()
    );
    for s in statements {
        p.sql(s).await?;
    }
    let code = sluice.wait(Duration::from_secs(30))?;
    let err = sluice.stderr_text();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(expect), "{err}");
    assert!(err.contains(&p.table), "{err}");
    assert!(err.contains("sluice position skip"), "{err}");
    let seen = events(&sluice.stdout_lines());
    assert_eq!(seen.len(), published, "{seen:?}");
    let (code, out, err2) = p.run_to_end()?;
    assert_ne!(code, 0, "{err2}");
    assert!(stop_position(&err, expect).is_some(), "{err}");
    if let Some(refusal) = restart_refusal {
        assert!(err2.contains(refusal), "{err2}");
        assert!(out.is_empty(), "{out}");
        return Ok(());
    }
    assert_eq!(
        stop_position(&err2, expect),
        stop_position(&err, expect),
        "{err2}"
    );
    assert!(events(&out.lines().map(str::to_owned).collect::<Vec<_>>()).is_empty());
    eprintln!("stopped at {:?}", stop_position(&err, expect));
    Ok(())
}

const PLAIN: &str = "CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB";
const PARTITIONED: &str = "CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB \
                           PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), \
                           PARTITION p1 VALUES LESS THAN MAXVALUE)";
const RESET: &str = "changes the captured table";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_stops() -> anyhow::Result<()> {
    stops("rs_trunc", &[PLAIN], &["TRUNCATE TABLE {t}"], RESET, 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_then_create_stops() -> anyhow::Result<()> {
    stops(
        "rs_drop",
        &[PLAIN],
        &[
            "DROP TABLE {t}",
            "CREATE TABLE {t} (id INT PRIMARY KEY, w TEXT)",
            "INSERT INTO {t} VALUES (1, 'new')",
        ],
        RESET,
        1,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_or_replace_select_stops() -> anyhow::Result<()> {
    stops(
        "rs_cor",
        &[PLAIN],
        &["CREATE OR REPLACE TABLE {t} (PRIMARY KEY (id)) SELECT 5 AS id, 6 AS v"],
        RESET,
        1,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_truncate_stops() -> anyhow::Result<()> {
    stops(
        "rs_ptrunc",
        &[PARTITIONED],
        &["ALTER TABLE {t} TRUNCATE PARTITION p0"],
        RESET,
        1,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_drop_stops() -> anyhow::Result<()> {
    stops(
        "rs_pdrop",
        &[PARTITIONED],
        &["ALTER TABLE {t} DROP PARTITION p0"],
        RESET,
        1,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_exchange_stops() -> anyhow::Result<()> {
    stops(
        "rs_pexch",
        &[
            PARTITIONED,
            "CREATE TABLE {t}_x (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
            "INSERT INTO {t}_x VALUES (7, 7)",
        ],
        &["ALTER TABLE {t} EXCHANGE PARTITION p0 WITH TABLE {t}_x"],
        RESET,
        1,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_ignore_add_unique_stops() -> anyhow::Result<()> {
    stops(
        "rs_ign",
        &[PLAIN],
        &[
            "INSERT INTO {t} VALUES (2, 1)",
            "ALTER IGNORE TABLE {t} ADD UNIQUE (v)",
        ],
        RESET,
        2,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_away_and_back_stops() -> anyhow::Result<()> {
    stops(
        "rs_ren",
        &[PLAIN],
        &[
            "RENAME TABLE {t} TO {t}_away",
            "INSERT INTO {t}_away VALUES (3, 3)",
            "RENAME TABLE {t}_away TO {t}",
        ],
        RESET,
        1,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_child_stops() -> anyhow::Result<()> {
    stops_then(
        "rs_casc",
        &[
            "CREATE TABLE {t}_p (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO {t}_p VALUES (1)",
            "CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
        ],
        &[
            // The key arrives after the start (the start-up check refuses a captured child of
            // such a key unless ACCEPT_FK_CASCADES is set): the stream must catch it.
            "ALTER TABLE {t} ADD FOREIGN KEY (v) REFERENCES {t}_p (id) ON DELETE CASCADE",
            "UPDATE {t} SET v = 1 WHERE id = 1",
            "DELETE FROM {t}_p WHERE id = 1",
        ],
        "foreign key",
        2,
        Some("ACCEPT_FK_CASCADES"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_null_child_stops() -> anyhow::Result<()> {
    stops_then(
        "rs_setnull",
        &[
            "CREATE TABLE {t}_p (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO {t}_p VALUES (1)",
            "CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
        ],
        &[
            // The key arrives after the start (the start-up check refuses a captured child of
            // such a key unless ACCEPT_FK_CASCADES is set): the stream must catch it.
            "ALTER TABLE {t} ADD FOREIGN KEY (v) REFERENCES {t}_p (id) ON DELETE SET NULL",
            "UPDATE {t} SET v = 1 WHERE id = 1",
            "DELETE FROM {t}_p WHERE id = 1",
        ],
        "foreign key",
        2,
        Some("ACCEPT_FK_CASCADES"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_inside_an_xa_transaction_stops_at_its_prepare() -> anyhow::Result<()> {
    // The parent is not captured, so the XA has no captured rows and holds nothing: the
    // cascade must be caught at its own XA PREPARE, not blamed on a later transaction.
    stops_then(
        "rs_xacasc",
        &[
            "CREATE TABLE {t}_p (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO {t}_p VALUES (1)",
            "CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
        ],
        &[
            "ALTER TABLE {t} ADD FOREIGN KEY (v) REFERENCES {t}_p (id) ON DELETE CASCADE",
            "UPDATE {t} SET v = 1 WHERE id = 1",
            "XA START 'rs_xacasc'",
            "DELETE FROM {t}_p WHERE id = 1",
            "XA END 'rs_xacasc'",
            "XA PREPARE 'rs_xacasc'",
            "XA COMMIT 'rs_xacasc'",
        ],
        "foreign key",
        2,
        Some("ACCEPT_FK_CASCADES"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_schema_change_swap_keeps_working() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("rs_osc").setup(PLAIN).start().await?;
    for s in [
        "INSERT INTO {t} VALUES (1, 1)",
        "CREATE TABLE _{t}_new LIKE {t}",
        "ALTER TABLE _{t}_new ADD COLUMN note VARCHAR(10) DEFAULT 'x'",
        "INSERT INTO _{t}_new (id, v) SELECT id, v FROM {t}",
        "RENAME TABLE {t} TO _{t}_old, _{t}_new TO {t}",
        "DROP TABLE _{t}_old",
        "INSERT INTO {t} VALUES (2, 2, 'after')",
    ] {
        p.sql(s).await?;
    }
    assert!(
        wait_until(Duration::from_secs(30), || events(&sluice.stdout_lines())
            .len()
            >= 2),
        "{}",
        sluice.stderr_text()
    );
    let published = events(&sluice.stdout_lines());
    assert!(
        sluice.log_contains("online schema change"),
        "{}",
        sluice.stderr_text()
    );
    assert_eq!(sluice.stop()?, 0);
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!(
        published[1]["columnnames"],
        serde_json::json!(["id", "v", "note"])
    );
    assert_eq!(
        published[1]["columnvalues"],
        serde_json::json!([2, 2, "after"])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_rows_are_never_published() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("rs_seq")
        .setup(PLAIN)
        .setup("CREATE SEQUENCE {t}_s")
        .tables("{t},{t}_s")
        .start()
        .await?;
    p.sql("SELECT NEXTVAL({t}_s)").await?;
    p.sql("SELECT SETVAL({t}_s, 5000)").await?;
    p.sql("INSERT INTO {t} VALUES (1, 1)").await?;
    assert!(
        wait_until(Duration::from_secs(30), || !events(&sluice.stdout_lines())
            .is_empty()),
        "{}",
        sluice.stderr_text()
    );
    let published = events(&sluice.stdout_lines());
    assert_eq!(sluice.stop()?, 0);
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["table"], p.table.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_versioned_table_replays_to_select_star() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("rs_ver")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB WITH SYSTEM VERSIONING")
        .start()
        .await?;
    for s in [
        "INSERT INTO {t} VALUES (1, 1), (2, 2), (3, 3)",
        "UPDATE {t} SET v = 10 WHERE id = 1",
        "DELETE FROM {t} WHERE id = 2",
        "UPDATE {t} SET v = 30 WHERE id = 3",
        "INSERT INTO {t} VALUES (4, 4)",
    ] {
        p.sql(s).await?;
    }
    let expected: Vec<(i64, i64)> =
        p.db.query(format!("SELECT * FROM {} ORDER BY id", p.table))
            .await?;
    assert!(
        wait_until(Duration::from_secs(30), || events(&sluice.stdout_lines())
            .iter()
            .any(|e| e["columnvalues"][0] == 4)),
        "{}",
        sluice.stderr_text()
    );
    let published = events(&sluice.stdout_lines());
    assert_eq!(sluice.stop()?, 0);
    let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
    for e in &published {
        // The period columns are invisible: neither image shows them.
        let names = match e["kind"].as_str() {
            Some("delete") => &e["oldkeys"]["keynames"],
            _ => &e["columnnames"],
        };
        assert_eq!(names, &serde_json::json!(["id", "v"]), "{e}");
        match e["kind"].as_str() {
            Some("insert") | Some("update") => {
                if e["kind"] == "update" {
                    rows.remove(&e["oldkeys"]["keyvalues"][0].as_i64().unwrap());
                }
                let v = &e["columnvalues"];
                rows.insert(v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
            }
            Some("delete") => {
                rows.remove(&e["oldkeys"]["keyvalues"][0].as_i64().unwrap());
            }
            k => panic!("unexpected kind {k:?}"),
        }
    }
    let replayed: Vec<(i64, i64)> = rows.into_iter().collect();
    assert_eq!(replayed, expected, "{published:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_finds_cascading_children_and_sequences() -> anyhow::Result<()> {
    let (t, _) = unique("rs_cat");
    let mut db = admin().await?;
    for s in [
        "CREATE TABLE {t}_p (id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE TABLE {t}_c (id INT PRIMARY KEY, p INT, CONSTRAINT {t}_fk FOREIGN KEY (p) \
         REFERENCES {t}_p (id) ON UPDATE SET NULL) ENGINE=InnoDB",
        "CREATE TABLE {t}_r (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES {t}_p (id)) \
         ENGINE=InnoDB",
        "CREATE SEQUENCE {t}_s",
    ] {
        db.query_drop(s.replace("{t}", &t)).await?;
    }
    let tables: Vec<(String, String)> = ["_p", "_c", "_r", "_s"]
        .iter()
        .map(|x| (DB.to_owned(), format!("{t}{x}")))
        .collect();
    let keys = sluice::source::foreign_keys::cascading_children(&mut db, &tables).await?;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].child.1, format!("{t}_c"));
    assert_eq!(keys[0].parent.1, format!("{t}_p"));
    assert_eq!(keys[0].update_rule, "SET NULL");
    assert_eq!(keys[0].columns, ["p"]);
    let seqs = sluice::source::objects::sequences_among(&mut db, &tables).await?;
    assert_eq!(seqs, vec![(DB.to_owned(), format!("{t}_s"))]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_children_are_refused_at_start_and_sequences_flagged() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("rs_fkstart")
        .setup("CREATE TABLE {t}_p (id INT PRIMARY KEY) ENGINE=InnoDB")
        .setup(
            "CREATE TABLE {t} (id INT PRIMARY KEY, v INT, CONSTRAINT {t}_fk FOREIGN KEY (v) \
             REFERENCES {t}_p (id) ON DELETE CASCADE) ENGINE=InnoDB",
        )
        .build()
        .await?;
    let t = p.table.clone();
    let started = std::time::Instant::now();
    let (code, out, err) = p.run_to_end()?;
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(&format!("{t}_fk")),
        "the error names the key: {err}"
    );
    assert!(err.contains("ACCEPT_FK_CASCADES"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (_, check_out, _) = p.cfg.run_to_end(&["check"])?;
    assert!(
        check_out
            .lines()
            .any(|l| l.contains("[FAIL]") && l.contains(&format!("{t}_fk"))),
        "{check_out}"
    );

    // Accepted: it runs, and says what it cannot see.
    p.cfg.set("ACCEPT_FK_CASCADES", "true");
    let sluice = p.start()?;
    p.sql("INSERT INTO {t}_p VALUES (1)").await?;
    p.sql("INSERT INTO {t} VALUES (1, 1)").await?;
    assert!(wait_until(Duration::from_secs(30), || sluice
        .stdout_lines()
        .len()
        == 1));
    assert!(
        sluice.log_contains("cascading foreign key"),
        "{}",
        sluice.stderr_text()
    );
    assert_eq!(sluice.stop()?, 0);
    let (_, check_out, _) = p.cfg.run_to_end(&["check"])?;
    assert!(
        check_out
            .lines()
            .any(|l| l.contains("[WARN]") && l.contains(&format!("{t}_fk"))),
        "{check_out}"
    );

    // A sequence named in MYSQL_TABLE is excluded, and said so.
    let seq = format!("{t}_seq");
    p.sql(format!("CREATE SEQUENCE {seq}")).await?;
    let cfg = SluiceConfig::new(&seq, None, p.server_id, p.state_dir());
    let (_, check_out, _) = cfg.run_to_end(&["check"])?;
    assert!(
        check_out
            .lines()
            .any(|l| l.contains("[WARN]") && l.contains("is a SEQUENCE")),
        "{check_out}"
    );
    Ok(())
}
