//! Capture scope: tables chosen by patterns (`MYSQL_TABLE=*`, `MYSQL_EXCLUDE`), a table created
//! mid-stream captured from its first row, views and excluded tables never published.

use std::time::Duration;

use sluice_tests::{read_topic, read_topic_to_end, TestPipeline};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_per_table_keeps_each_rows_events_in_order_on_one_partition() -> anyhow::Result<()>
{
    // `output = {t}.{schema}.{table}`, 4 partitions, keys by primary key: every table on its
    // own topic, and each row's events in commit order on a single partition.
    let (mut p, sluice) = TestPipeline::new("cappart")
        .kafka()
        .setup("CREATE TABLE {t}_a (id INT PRIMARY KEY, v INT)")
        .setup("CREATE TABLE {t}_b (id INT PRIMARY KEY, v INT)")
        .tables("{t}_a,{t}_b")
        .env("output", "{t}.{schema}.{table}")
        .env("KAFKA_KEY", "primary_key")
        .config("[kafka]\npartitions = 4\n")
        .start()
        .await?;
    let (ids, steps): (usize, usize) = (24, 4);
    let mut expected = 0;
    for step in 0..steps {
        for table in ["a", "b"] {
            // One transaction per step and table, touching every row.
            let sql = if step == 0 {
                let rows: Vec<String> = (1..=ids).map(|i| format!("({i}, 0)")).collect();
                format!("INSERT INTO {{t}}_{table} VALUES {}", rows.join(", "))
            } else {
                format!("UPDATE {{t}}_{table} SET v = {step}")
            };
            p.sql(sql).await?;
            expected += ids;
        }
    }
    for table in ["a", "b"] {
        let topic = format!("{}.sluicetest.{}_{table}", p.table, p.table);
        let recs = read_topic(&topic, expected / 2, Duration::from_secs(30))?;
        assert_eq!(recs.len(), expected / 2, "{topic}");
        let mut partition_of = std::collections::HashMap::new();
        let mut last_v = std::collections::HashMap::new();
        let mut partitions = std::collections::HashSet::new();
        for r in &recs {
            assert_eq!(r.value["table"], format!("{}_{table}", p.table), "{topic}");
            let id = r.value["columnvalues"][0].as_i64().unwrap();
            let v = r.value["columnvalues"][1].as_i64().unwrap();
            partitions.insert(r.partition);
            assert_eq!(
                *partition_of.entry(id).or_insert(r.partition),
                r.partition,
                "row {id} of {topic} on one partition"
            );
            // read_topic returns each partition in offset order: a row's values only grow.
            let prev = last_v.insert(id, v);
            assert!(prev.is_none_or(|p| p < v), "row {id}: {prev:?} then {v}");
        }
        assert!(
            partitions.len() > 1,
            "{topic}: rows spread over the partitions"
        );
        assert!(last_v.values().all(|v| *v == steps as i64 - 1), "{topic}");
    }
    sluice.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_of_a_table_a_pattern_matches_stops_as_for_a_named_one() -> anyhow::Result<()> {
    // `TRUNCATE` of a matched table removes rows without row events: with ON_TABLE_RESET=stop
    // (the default) Sluice stops at it, naming the table; an excluded table's does not matter.
    let (mut p, mut sluice) = TestPipeline::new("capreset")
        .kafka()
        .setup("CREATE DATABASE {t}_db")
        .setup("CREATE TABLE {t}_db.a (id INT PRIMARY KEY)")
        .setup("CREATE TABLE {t}_db.tmp (id INT PRIMARY KEY)")
        .tables("*")
        .env("MYSQL_SCHEMA", "{t}_db")
        .env("MYSQL_EXCLUDE", "tmp")
        .start()
        .await?;
    p.sql("INSERT INTO {t}_db.a VALUES (1)").await?;
    p.sql("TRUNCATE TABLE {t}_db.tmp").await?;
    read_topic(&p.topic, 1, Duration::from_secs(30))?;
    p.sql("TRUNCATE TABLE {t}_db.a").await?;
    let code = sluice.wait(Duration::from_secs(30))?;
    let err = sluice.stderr_text();
    assert_ne!(code, 0, "{err}");
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("Sluice stopped"))
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l.contains(&format!("{}_db.a", p.table))),
        "the error names the table: {err}"
    );
    assert!(
        !errors
            .iter()
            .any(|l| l.contains(&format!("{}_db.tmp", p.table))),
        "the excluded table's TRUNCATE did not stop it: {err}"
    );
    p.sql("DROP DATABASE {t}_db").await?;
    Ok(())
}

/// `(kind, id)` of each record of a topic, in order.
fn kinds_and_ids(recs: &[sluice_tests::Record]) -> Vec<(String, i64)> {
    recs.iter()
        .map(|r| {
            (
                r.value["kind"].as_str().unwrap_or_default().to_owned(),
                r.value["columnvalues"][0].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_created_dropped_and_renamed_mid_stream_change_what_is_captured(
) -> anyhow::Result<()> {
    // `*` over a database of 5 tables (`tmp_e` excluded), a topic per table. Mid-stream: `f`
    // is created, `d` dropped (and created again), `tmp_e` renamed out of the exclude
    // pattern, `c` renamed into it. The stream goes on through all of them.
    let (mut p, sluice) = TestPipeline::new("capddl")
        .kafka()
        .setup("CREATE DATABASE {t}_db")
        .setup("CREATE TABLE {t}_db.a (id INT PRIMARY KEY, v INT)")
        .setup("CREATE TABLE {t}_db.b (id INT PRIMARY KEY, v INT)")
        .setup("CREATE TABLE {t}_db.c (id INT PRIMARY KEY, v INT)")
        .setup("CREATE TABLE {t}_db.d (id INT PRIMARY KEY, v INT)")
        .setup("CREATE TABLE {t}_db.tmp_e (id INT PRIMARY KEY, v INT)")
        .setup("INSERT INTO {t}_db.tmp_e VALUES (1, 0)")
        .tables("*")
        .env("MYSQL_SCHEMA", "{t}_db")
        .env("MYSQL_EXCLUDE", "tmp_*")
        .env("output", "{t}.{schema}.{table}")
        .start()
        .await?;
    for t in ["a", "b", "c", "d"] {
        p.sql(format!("INSERT INTO {{t}}_db.{t} VALUES (1, 1)"))
            .await?;
    }
    p.sql("INSERT INTO {t}_db.tmp_e VALUES (2, 0)").await?;
    p.sql("CREATE TABLE {t}_db.f (id INT PRIMARY KEY, v INT)")
        .await?;
    p.sql("INSERT INTO {t}_db.f VALUES (1, 1)").await?;
    p.sql("UPDATE {t}_db.d SET v = 2 WHERE id = 1").await?;
    p.sql("DROP TABLE {t}_db.d").await?;
    p.sql("RENAME TABLE {t}_db.tmp_e TO {t}_db.e").await?;
    p.sql("INSERT INTO {t}_db.e VALUES (3, 1)").await?;
    p.sql("UPDATE {t}_db.e SET v = 5 WHERE id = 1").await?;
    p.sql("ALTER TABLE {t}_db.c RENAME TO {t}_db.tmp_c").await?;
    p.sql("INSERT INTO {t}_db.tmp_c VALUES (2, 2)").await?;
    p.sql("CREATE TABLE {t}_db.d (id INT PRIMARY KEY, v INT)")
        .await?;
    p.sql("INSERT INTO {t}_db.d VALUES (9, 9)").await?;
    p.sql("INSERT INTO {t}_db.a VALUES (2, 2)").await?;
    let name = p.table.clone();
    let topic = |t: &str| format!("{name}.{name}_db.{t}");
    let last = read_topic(&topic("a"), 2, Duration::from_secs(30))?;
    assert_eq!(
        kinds_and_ids(&last).len(),
        2,
        "the stream went on to the end"
    );
    let ins = |id: i64| ("insert".to_owned(), id);
    let upd = |id: i64| ("update".to_owned(), id);
    let expected: Vec<(&str, Vec<(String, i64)>)> = vec![
        ("a", vec![ins(1), ins(2)]),
        ("b", vec![ins(1)]),
        // Renamed into the exclude pattern: captured up to the rename.
        ("c", vec![ins(1)]),
        // Dropped (no event by default), then created again: captured from its first row.
        ("d", vec![ins(1), upd(1), ins(9)]),
        // Renamed out of the exclude pattern: captured from its next change, an update of a
        // row it held before included.
        ("e", vec![ins(3), upd(1)]),
        ("f", vec![ins(1)]),
        ("tmp_e", vec![]),
        ("tmp_c", vec![]),
    ];
    for (t, want) in &expected {
        let got = read_topic_to_end(&topic(t), Duration::from_secs(30))?;
        assert_eq!(&kinds_and_ids(&got), want, "topic of {t}");
        assert!(got.iter().all(|r| r.value["table"] == *t), "topic of {t}");
    }
    let log = sluice.stderr_text();
    assert!(
        log.contains("leaves the captured names") && log.contains(&format!("{}_db.d", p.table)),
        "the drop is logged: {log}"
    );
    assert!(
        log.contains("RENAME brings a table into") && log.contains(&format!("{}_db.e", p.table)),
        "the rename in is logged: {log}"
    );
    sluice.stop()?;
    // With ON_TABLE_RESET=event, a name that leaves gets a `truncate` event on its topic.
    p.cfg.set("ON_TABLE_RESET", "event");
    let sluice = p.cfg.start()?;
    p.sql("DROP TABLE {t}_db.f").await?;
    p.sql("RENAME TABLE {t}_db.b TO {t}_db.tmp_b").await?;
    p.sql("INSERT INTO {t}_db.a VALUES (3, 3)").await?;
    read_topic(&topic("a"), 3, Duration::from_secs(30))?;
    for t in ["b", "f"] {
        let got = read_topic_to_end(&topic(t), Duration::from_secs(30))?;
        assert_eq!(
            kinds_and_ids(&got),
            vec![ins(1), ("truncate".to_owned(), -1)],
            "topic of {t}"
        );
    }
    sluice.stop()?;
    p.sql("DROP DATABASE {t}_db").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_or_versioned_table_created_mid_stream_is_read_as_its_kind() -> anyhow::Result<()>
{
    // The kinds of the tables that match at the start are read then; those created later are
    // read at their first row: a sequence is never published, a system-versioned table as
    // `SELECT *` shows it (no period columns, no history rows).
    let (mut p, sluice) = TestPipeline::new("capkind")
        .setup("CREATE DATABASE {t}_db")
        .setup("CREATE TABLE {t}_db.plain (id INT PRIMARY KEY)")
        .setup("CREATE TABLE {t}_db.plain2 (id INT PRIMARY KEY)")
        .setup("CREATE SEQUENCE {t}_db.seq0")
        .tables("*")
        .env("MYSQL_SCHEMA", "{t}_db")
        .start()
        .await?;
    p.sql("CREATE SEQUENCE {t}_db.seq").await?;
    p.sql("SELECT NEXTVAL({t}_db.seq)").await?;
    p.sql("SELECT SETVAL({t}_db.seq, 5000)").await?;
    p.sql("CREATE TABLE {t}_db.hist (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING")
        .await?;
    p.sql("INSERT INTO {t}_db.hist VALUES (1, 1), (2, 2)")
        .await?;
    p.sql("UPDATE {t}_db.hist SET v = 10 WHERE id = 1").await?;
    p.sql("DELETE FROM {t}_db.hist WHERE id = 2").await?;
    // Names change kinds: a sequence of the start dropped and a table created in its name is
    // published; a plain table dropped and a sequence created in its name is not.
    p.sql("SELECT NEXTVAL({t}_db.seq0)").await?;
    p.sql("DROP SEQUENCE {t}_db.seq0").await?;
    p.sql("CREATE TABLE {t}_db.seq0 (id INT PRIMARY KEY, v INT)")
        .await?;
    p.sql("INSERT INTO {t}_db.seq0 VALUES (5, 5)").await?;
    p.sql("INSERT INTO {t}_db.plain2 VALUES (1)").await?;
    p.sql("DROP TABLE {t}_db.plain2").await?;
    p.sql("CREATE SEQUENCE {t}_db.plain2").await?;
    p.sql("SELECT NEXTVAL({t}_db.plain2)").await?;
    p.sql("SELECT SETVAL({t}_db.plain2, 100)").await?;
    p.sql("INSERT INTO {t}_db.plain VALUES (1)").await?;
    let events = || -> Vec<serde_json::Value> {
        sluice
            .stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    assert!(
        sluice_tests::wait_until(Duration::from_secs(30), || events()
            .iter()
            .any(|e| e["table"] == "plain")),
        "{}",
        sluice.stderr_text()
    );
    let got: Vec<(String, String, serde_json::Value)> = events()
        .iter()
        .map(|e| {
            let names = match e["kind"].as_str() {
                Some("delete") => e["oldkeys"]["keynames"].clone(),
                _ => e["columnnames"].clone(),
            };
            (
                e["table"].as_str().unwrap_or_default().to_owned(),
                e["kind"].as_str().unwrap_or_default().to_owned(),
                names,
            )
        })
        .collect();
    let cols = serde_json::json!(["id", "v"]);
    let row = |t: &str, k: &str, n: &serde_json::Value| (t.to_owned(), k.to_owned(), n.clone());
    assert_eq!(
        got,
        vec![
            row("hist", "insert", &cols),
            row("hist", "insert", &cols),
            row("hist", "update", &cols),
            row("hist", "delete", &cols),
            row("seq0", "insert", &cols),
            row("plain2", "insert", &serde_json::json!(["id"])),
            row("plain", "insert", &serde_json::json!(["id"])),
        ],
        "{}",
        sluice.stderr_text()
    );
    let log = sluice.stderr_text();
    assert!(
        log.contains("a captured system-versioned table appeared since the start"),
        "{log}"
    );
    sluice.stop()?;
    p.sql("DROP DATABASE {t}_db").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_directory_recovers_from_the_tables_own_topics() -> anyhow::Result<()> {
    // A topic per table, exactly-once, `STATE_RECOVER=kafka`: the state directory that listed
    // the tables' topics is lost while rows are committed. The start reads back the topics of
    // the tables the patterns match, resumes from the position they carry and publishes the
    // rows committed meanwhile, each once.
    let (mut p, sluice) = TestPipeline::new("caplost")
        .kafka()
        .setup("CREATE DATABASE {t}_db")
        .setup("CREATE TABLE {t}_db.a (id INT PRIMARY KEY)")
        .setup("CREATE TABLE {t}_db.b (id INT PRIMARY KEY)")
        .tables("*")
        .env("MYSQL_SCHEMA", "{t}_db")
        .env("output", "{t}.{schema}.{table}")
        .env("STATE_RECOVER", "kafka")
        .start()
        .await?;
    let name = p.table.clone();
    let topic = |t: &str| format!("{name}.{name}_db.{t}");
    p.sql("INSERT INTO {t}_db.a VALUES (1), (2)").await?;
    p.sql("INSERT INTO {t}_db.b VALUES (1)").await?;
    assert_eq!(
        read_topic(&topic("b"), 1, Duration::from_secs(30))?.len(),
        1
    );
    sluice.stop()?;
    p.lose_state()?;
    p.sql("INSERT INTO {t}_db.a VALUES (3)").await?;
    p.sql("INSERT INTO {t}_db.b VALUES (2)").await?;
    let sluice = p.cfg.start()?;
    p.sql("INSERT INTO {t}_db.a VALUES (4)").await?;
    read_topic(&topic("a"), 4, Duration::from_secs(30))?;
    assert!(
        sluice.log_contains("resuming from the position read back from Kafka"),
        "{}",
        sluice.stderr_text()
    );
    for (t, want) in [("a", vec![1, 2, 3, 4]), ("b", vec![1, 2])] {
        let got = read_topic_to_end(&topic(t), Duration::from_secs(30))?;
        let ids: Vec<i64> = kinds_and_ids(&got).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, want, "topic of {t}: every row once");
    }
    sluice.stop()?;
    p.sql("DROP DATABASE {t}_db").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_disjoint_patterns_split_one_server() -> anyhow::Result<()> {
    // One database, two Sluice instances: `a*` and `b*`, each with its own server id, state
    // directory and per-table topics. Transactions touch tables of both.
    let (mut pa, sa) = TestPipeline::new("capsplit")
        .kafka()
        .setup("CREATE DATABASE {t}_db")
        .setup("CREATE TABLE {t}_db.a1 (id INT PRIMARY KEY, v INT)")
        .setup("CREATE TABLE {t}_db.a2 (id INT PRIMARY KEY, v INT)")
        .setup("CREATE TABLE {t}_db.b1 (id INT PRIMARY KEY, v INT)")
        .tables("a*")
        .env("MYSQL_SCHEMA", "{t}_db")
        .env("output", "{t}.{table}")
        .start()
        .await?;
    let db = format!("{}_db", pa.table);
    let (pb, sb) = TestPipeline::new("capsplit")
        .kafka()
        .tables("b*")
        .env("MYSQL_SCHEMA", db.as_str())
        .env("output", "{t}.{table}")
        .start()
        .await?;
    let tables = ["a1", "a2", "b1"];
    let mut expected: std::collections::HashMap<&str, Vec<(String, i64, i64)>> =
        std::collections::HashMap::new();
    for i in 1..=20i64 {
        // One transaction over the three tables; every third row is updated, every fifth
        // deleted, in later transactions.
        let mut sql = String::from("START TRANSACTION;");
        for t in tables {
            sql.push_str(&format!("INSERT INTO {db}.{t} VALUES ({i}, {i});"));
            expected.entry(t).or_default().push(("insert".into(), i, i));
        }
        sql.push_str("COMMIT;");
        pa.sql(sql).await?;
        if i % 3 == 0 {
            for t in tables {
                pa.sql(format!("UPDATE {db}.{t} SET v = v + 100 WHERE id = {i}"))
                    .await?;
                expected
                    .entry(t)
                    .or_default()
                    .push(("update".into(), i, i + 100));
            }
        }
        if i % 5 == 0 {
            let v = if i % 3 == 0 { i + 100 } else { i };
            for t in tables {
                pa.sql(format!("DELETE FROM {db}.{t} WHERE id = {i}"))
                    .await?;
                expected.entry(t).or_default().push(("delete".into(), i, v));
            }
        }
    }
    for (t, want) in &expected {
        let owner = if t.starts_with('a') { &pa } else { &pb };
        let other = if t.starts_with('a') { &pb } else { &pa };
        let topic = format!("{}.{t}", owner.table);
        let recs = read_topic(&topic, want.len(), Duration::from_secs(30))?;
        let got: Vec<(String, i64, i64)> = recs
            .iter()
            .map(|r| {
                let kind = r.value["kind"].as_str().unwrap().to_owned();
                let vals = if kind == "delete" {
                    &r.value["oldkeys"]["keyvalues"]
                } else {
                    &r.value["columnvalues"]
                };
                (kind, vals[0].as_i64().unwrap(), vals[1].as_i64().unwrap())
            })
            .collect();
        assert_eq!(
            &got, want,
            "{topic}: every change of {t} once, in commit order"
        );
        // The other instance never wrote that table.
        let stray = format!("{}.{t}", other.table);
        assert!(
            read_topic(&stray, 1, Duration::from_secs(1)).map_or(true, |r| r.is_empty()),
            "{stray} must not exist"
        );
    }
    sa.stop()?;
    sb.stop()?;
    pa.sql(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
