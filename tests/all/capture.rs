//! Capture scope: tables chosen by patterns (`MYSQL_TABLE=*`, `MYSQL_EXCLUDE`), a table created
//! mid-stream captured from its first row, views and excluded tables never published.

use std::time::Duration;

use sluice_tests::{read_topic, TestPipeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_captures_every_table_and_those_created_later() -> anyhow::Result<()> {
    // A database of its own, so that `*` sees only this test's tables.
    let (mut p, sluice) = TestPipeline::new("capstar")
        .kafka()
        .setup("CREATE DATABASE {t}_db")
        .setup("CREATE TABLE {t}_db.a (id INT PRIMARY KEY, v VARCHAR(10))")
        .setup("CREATE TABLE {t}_db.b (id INT PRIMARY KEY, n INT)")
        .setup("CREATE TABLE {t}_db.tmp_load (id INT PRIMARY KEY)")
        .setup("CREATE VIEW {t}_db.v AS SELECT id FROM {t}_db.a")
        // A table of the default database, outside the pattern's schema.
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .tables("*")
        .env("MYSQL_SCHEMA", "{t}_db")
        .env("MYSQL_EXCLUDE", "tmp_*")
        .start()
        .await?;
    let log = sluice.stderr_text();
    assert!(
        log.contains("the patterns match these tables now"),
        "the matched tables are logged: {log}"
    );
    p.sql("INSERT INTO {t}_db.a VALUES (1, 'x'), (2, 'y')")
        .await?;
    p.sql("INSERT INTO {t}_db.tmp_load VALUES (1)").await?;
    p.sql("INSERT INTO {t} VALUES (1)").await?;
    p.sql("INSERT INTO {t}_db.b VALUES (1, 10)").await?;
    // Created mid-stream: captured from its first row.
    p.sql("CREATE TABLE {t}_db.c (id INT PRIMARY KEY, w VARCHAR(10))")
        .await?;
    p.sql("INSERT INTO {t}_db.c VALUES (7, 'new')").await?;
    p.sql("UPDATE {t}_db.a SET v = 'z' WHERE id = 1").await?;
    let recs = read_topic(&p.topic, 5, Duration::from_secs(30))?;
    let got: Vec<(String, String, String)> = recs
        .iter()
        .map(|r| {
            (
                r.value["schema"].as_str().unwrap_or_default().to_owned(),
                r.value["table"].as_str().unwrap_or_default().to_owned(),
                r.value["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let db = format!("{}_db", p.table);
    let row = |t: &str, k: &str| (db.clone(), t.to_owned(), k.to_owned());
    assert_eq!(
        got,
        vec![
            row("a", "insert"),
            row("a", "insert"),
            row("b", "insert"),
            row("c", "insert"),
            row("a", "update"),
        ],
        "every captured table's rows, none of tmp_load nor of the other database"
    );
    assert_eq!(recs[3].value["columnvalues"][1], "new");
    // The state has a name of its own, which no single table's file can have.
    let names: Vec<String> = std::fs::read_dir(p.state_dir())?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(&format!("binlog_position_{db}_patterns_"))),
        "{names:?}"
    );
    sluice.stop()?;
    // `sluice check` lists what the patterns match, and flags a table without a primary key.
    p.sql("CREATE TABLE {t}_db.nokey (v INT)").await?;
    let (_, out, err) = p.cfg.run_to_end(&["check"])?;
    assert!(
        out.contains("the patterns match 4 table(s) now")
            && out.contains(&format!("{db}.a, {db}.b, {db}.c, {db}.nokey")),
        "{out}{err}"
    );
    assert!(
        out.contains(&format!("{db}.nokey has no primary key")),
        "{out}{err}"
    );
    assert!(
        !out.contains("tmp_load") && !out.contains(&format!("{db}.v ")),
        "{out}"
    );
    p.sql("DROP DATABASE {t}_db").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_reads_every_table_the_patterns_match() -> anyhow::Result<()> {
    // Patterns across two databases: `{t}_x.*` and `{t}_y.keep*`, without `{t}_x.skip`.
    let (mut p, sluice) = TestPipeline::new("capsnap")
        .kafka()
        .setup("CREATE DATABASE {t}_x")
        .setup("CREATE DATABASE {t}_y")
        .setup("CREATE TABLE {t}_x.one (id INT PRIMARY KEY)")
        .setup("CREATE TABLE {t}_x.skip (id INT PRIMARY KEY)")
        .setup("CREATE TABLE {t}_y.keep_two (id INT PRIMARY KEY)")
        .setup("CREATE TABLE {t}_y.other (id INT PRIMARY KEY)")
        .setup("INSERT INTO {t}_x.one VALUES (1), (2)")
        .setup("INSERT INTO {t}_x.skip VALUES (1)")
        .setup("INSERT INTO {t}_y.keep_two VALUES (3)")
        .setup("INSERT INTO {t}_y.other VALUES (4)")
        .tables("{t}_y.keep*")
        .env("MYSQL_INCLUDE", "{t}_x.*")
        .env("MYSQL_EXCLUDE", "{t}_x.skip")
        .env("INITIAL_SNAPSHOT", "true")
        .start()
        .await?;
    let recs = read_topic(&p.topic, 3, Duration::from_secs(30))?;
    let mut got: Vec<(String, String, i64)> = recs
        .iter()
        .map(|r| {
            assert_eq!(r.value["kind"], "snapshot_insert");
            (
                r.value["schema"].as_str().unwrap_or_default().to_owned(),
                r.value["table"].as_str().unwrap_or_default().to_owned(),
                r.value["columnvalues"][0].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    let (x, y) = (format!("{}_x", p.table), format!("{}_y", p.table));
    assert_eq!(
        got,
        vec![
            (x.clone(), "one".to_owned(), 1),
            (x.clone(), "one".to_owned(), 2),
            (y.clone(), "keep_two".to_owned(), 3),
        ]
    );
    // Then streaming, with the same scope.
    p.sql("INSERT INTO {t}_y.other VALUES (5)").await?;
    p.sql("INSERT INTO {t}_x.skip VALUES (2)").await?;
    p.sql("INSERT INTO {t}_y.keep_two VALUES (6)").await?;
    let recs = read_topic(&p.topic, 4, Duration::from_secs(30))?;
    assert_eq!(recs[3].value["table"], "keep_two");
    assert_eq!(recs[3].value["columnvalues"][0], 6);
    sluice.stop()?;
    p.sql("DROP DATABASE {t}_x").await?;
    p.sql("DROP DATABASE {t}_y").await?;
    Ok(())
}
