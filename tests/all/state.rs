//! The state directory: one running pipeline per directory, and position file names that are
//! exact for one table and unambiguous for several.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_state_directory_is_refused() -> anyhow::Result<()> {
    let (mut p, first) = TestPipeline::new("lock")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .start()
        .await?;

    // Another pipeline (another table, another server id) pointed at the same directory.
    let (other, other_id) = unique("lock2");
    p.sql(format!("CREATE TABLE {other} (id INT PRIMARY KEY)"))
        .await?;
    let second = SluiceConfig::new(&other, None, other_id, p.state_dir());
    let started = Instant::now();
    let (code, _out, err) = second.run_to_end(&["run"])?;
    let took = started.elapsed();
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("another Sluice instance holds the state directory"),
        "{err}"
    );
    assert!(
        err.contains(&p.table),
        "the message names the holder's tables: {err}"
    );
    assert!(
        took < Duration::from_secs(10),
        "refused at once, took {took:?}"
    );

    // The first instance is unaffected and still streams.
    p.sql("INSERT INTO {t} VALUES (1)").await?;
    assert!(
        wait_until(Duration::from_secs(30), || first.stdout_lines().len() == 1),
        "{}",
        first.stderr_text()
    );
    assert_eq!(first.stop()?, 0);

    // Once it has stopped, the directory is free again.
    let again = second.start()?;
    assert_eq!(again.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tables_and_a_joined_name_get_different_position_files() -> anyhow::Result<()> {
    let (base, server_id) = unique("names");
    let (a, b) = (format!("{base}_a"), format!("{base}_b"));
    let joined = format!("{a}_b"); // the single table whose name the old scheme confused with a,b
    assert_eq!(joined, format!("{base}_a_b"));
    let mut db = admin().await?;
    for t in [&a, &b, &joined] {
        db.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY)"))
            .await?;
    }
    let state = tempfile::tempdir()?;
    let pair = SluiceConfig::new(&format!("{a},{b}"), None, server_id, state.path());
    let s = pair.start()?;
    assert_eq!(s.stop()?, 0);
    let single = SluiceConfig::new(&joined, None, server_id, state.path());
    let s = single.start()?;
    assert_eq!(s.stop()?, 0);

    let single_file = state
        .path()
        .join(format!("binlog_position_{DB}_{joined}.json"));
    assert_eq!(
        single.position_file(),
        single_file,
        "one table: the contract's exact name"
    );
    assert!(single_file.exists());
    let pair_file = pair.position_file();
    assert_ne!(pair_file, single_file);
    assert!(pair_file.exists(), "{}", pair_file.display());
    let mut names: Vec<String> = std::fs::read_dir(state.path())?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("binlog_position_"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_skip_moves_past_one_refused_transaction_and_records_it() -> anyhow::Result<()> {
    let (mut p, mut sluice) = TestPipeline::new("skip")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20), w INT)")
        .start()
        .await?;
    let table = p.table.clone();
    p.sql("INSERT INTO {t} VALUES (1, 'one', 1)").await?;
    assert!(wait_until(Duration::from_secs(30), || sluice
        .stdout_lines()
        .len()
        == 1));

    // One writer session logs a MINIMAL row image: Sluice cannot publish it faithfully.
    p.sql("SET SESSION binlog_row_image=MINIMAL").await?;
    p.sql("UPDATE {t} SET v = 'uno' WHERE id = 1").await?;
    p.sql("SET SESSION binlog_row_image=FULL").await?;
    let code = sluice.wait(Duration::from_secs(30))?;
    assert_ne!(code, 0);
    let err = sluice.stderr_text();
    assert!(err.contains("binlog_row_image"), "{err}");
    assert!(
        err.contains("sluice position skip"),
        "the error names the way past: {err}"
    );
    let saved = std::fs::read(p.cfg.position_file())?;
    // The decode error says where: the rows event, and its transaction's start (the saved
    // position, where a restart reads it again).
    let pos: serde_json::Value = serde_json::from_slice(&saved)?;
    let txn_start = format!(
        "in the transaction that starts at {}:{}",
        pos["log_file"].as_str().unwrap(),
        pos["log_pos"]
    );
    assert!(err.contains("rows event at mysql-bin."), "{err}");
    assert!(err.contains(&txn_start), "{txn_start}: {err}");

    // A restart stops at the same place again: nothing is skipped on its own.
    let (code, out, err) = p.run_to_end()?;
    assert_ne!(code, 0, "{err}");
    assert!(
        out.is_empty(),
        "nothing published past the refused transaction: {out}"
    );
    assert_eq!(std::fs::read(p.cfg.position_file())?, saved);

    // A dry run shows the transaction and changes nothing.
    let (code, out, err) = p.cfg.run_to_end(&["position", "skip", "--dry-run"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&table), "{out}");
    assert_eq!(std::fs::read(p.cfg.position_file())?, saved);
    // A reason is required.
    let (code, _, err) = p.cfg.run_to_end(&["position", "skip"])?;
    assert_ne!(code, 0);
    assert!(err.contains("--reason"), "{err}");

    let (code, out, err) = p.cfg.run_to_end(&[
        "position",
        "skip",
        "--reason",
        "batch job wrote a MINIMAL image; row re-sent by hand",
    ])?;
    assert_eq!(code, 0, "{out}\n{err}");
    let log = std::fs::read_to_string(p.state_dir().join("skipped.jsonl"))?;
    let record: serde_json::Value = serde_json::from_str(log.lines().last().unwrap())?;
    assert_eq!(
        record["reason"],
        "batch job wrote a MINIMAL image; row re-sent by hand"
    );
    assert_eq!(record["group"]["tables"][0], format!("{DB}.{table}"));
    assert_eq!(log.lines().count(), 1);

    // The pipeline goes on after exactly that transaction.
    p.sql("INSERT INTO {t} VALUES (2, 'two', 2)").await?;
    let sluice = p.start()?;
    assert!(
        wait_until(Duration::from_secs(30), || !sluice
            .stdout_lines()
            .is_empty()),
        "{}",
        sluice.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let lines = sluice.stdout_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let ev: serde_json::Value = serde_json::from_str(&lines[0])?;
    assert_eq!(ev["kind"], "insert");
    assert_eq!(ev["columnvalues"][0], 2);
    assert_eq!(sluice.stop()?, 0);

    // The saved position now holds a transaction Sluice publishes: no skip, dry or not.
    p.sql("INSERT INTO {t} VALUES (3, 'three', 3)").await?;
    let saved = std::fs::read(p.cfg.position_file())?;
    for args in [
        &["position", "skip", "--dry-run"][..],
        &["position", "skip", "--reason", "by mistake"][..],
    ] {
        let (code, out, err) = p.cfg.run_to_end(args)?;
        assert_ne!(code, 0, "{args:?}: {out}\n{err}");
        assert!(
            err.contains("is not one Sluice refuses")
                && err.contains("start `sluice run`, which stops at the refused one"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(p.cfg.position_file())?, saved, "{args:?}");
    }
    let log = std::fs::read_to_string(p.state_dir().join("skipped.jsonl"))?;
    assert_eq!(log.lines().count(), 1, "nothing recorded: {log}");
    // And the row is published by the next run.
    let sluice = p.start()?;
    assert!(
        wait_until(Duration::from_secs(30), || sluice
            .stdout_lines()
            .iter()
            .any(|l| l.contains("\"three\""))),
        "{}",
        sluice.stderr_text()
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_tables_with_64_character_names_stream_and_resume() -> anyhow::Result<()> {
    // Joined, the names would make a ~290-byte file name, over the file system's 255: the name
    // keeps what fits plus a hash, so the pipeline starts, saves and resumes.
    let (base, server_id) = unique("long");
    let tables: Vec<String> = (0..4)
        .map(|i| {
            let name = format!("{base}_{i}_");
            format!("{name}{}", "x".repeat(64 - name.len()))
        })
        .collect();
    let mut db = admin().await?;
    for t in &tables {
        assert_eq!(t.len(), 64);
        db.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY)"))
            .await?;
    }
    let state = tempfile::tempdir()?;
    let cfg = SluiceConfig::new(&tables.join(","), None, server_id, state.path());
    let file = cfg.position_file();
    let name_len = file.file_name().unwrap().len();
    assert!(name_len <= 255, "{name_len}");
    let sluice = cfg.start()?;
    for (i, t) in tables.iter().enumerate() {
        db.query_drop(format!("INSERT INTO {t} VALUES ({i})"))
            .await?;
    }
    assert!(
        wait_until(Duration::from_secs(30), || sluice.stdout_lines().len() == 4),
        "{}",
        sluice.stderr_text()
    );
    assert_eq!(sluice.stop()?, 0);
    assert!(file.exists(), "{}", file.display());

    // A restart resumes from that file: only the new row arrives.
    db.query_drop(format!("INSERT INTO {} VALUES (9)", tables[3]))
        .await?;
    let sluice = cfg.start()?;
    assert!(wait_until(Duration::from_secs(30), || sluice
        .stdout_lines()
        .len()
        == 1));
    std::thread::sleep(Duration::from_millis(300));
    let lines = sluice.stdout_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let ev: serde_json::Value = serde_json::from_str(&lines[0])?;
    assert_eq!(ev["columnvalues"][0], 9);
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
