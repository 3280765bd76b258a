//! A source that outlives things on the server side: a restart of the server (its binlog file
//! ends with a STOP event and the next file opens with only a fake ROTATE), and an XA
//! transaction without captured rows left prepared across a restart of Sluice. Both run on the
//! scratch server: the first restarts it, the second leaves an XA prepared there for a while,
//! which would hold up pipelines starting on the main server from its head.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

/// The saved position: (file, offset).
/// How many times each inserted id was published.
fn inserted(lines: &[String]) -> BTreeMap<i64, usize> {
    let mut seen = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON event");
        assert_eq!(v["kind"], "insert", "{v}");
        *seen
            .entry(v["columnvalues"][0].as_i64().unwrap())
            .or_default() += 1;
    }
    seen
}

/// Starts sluice, waits until the ids in `want` were all published, stops it; its events.
fn run_until(cfg: &SluiceConfig, want: &[i64]) -> anyhow::Result<Vec<String>> {
    let s = cfg.start()?;
    let ok = wait_until(Duration::from_secs(30), || {
        let got = inserted(&s.stdout_lines());
        want.iter().all(|id| got.contains_key(id))
    });
    assert!(ok, "{want:?} not published; stderr:\n{}", s.stderr_text());
    // A moment for anything extra (a duplicate) to show.
    std::thread::sleep(Duration::from_millis(500));
    let lines = s.stdout_lines();
    let err = s.stderr_text();
    let code = s.stop()?;
    assert_eq!(code, 0, "{err}");
    Ok(lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_server_restart_moves_to_the_next_file() -> anyhow::Result<()> {
    let (mut p, s) = TestPipeline::new("srvrestart")
        .scratch()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .start()
        .await?;
    let table = p.table.clone();
    for id in 1..=3 {
        p.sql(format!("INSERT INTO {table} VALUES ({id})")).await?;
    }
    assert!(
        wait_until(Duration::from_secs(30), || s.stdout_lines().len() == 3),
        "{}",
        s.stderr_text()
    );
    let mut lines = s.stdout_lines();
    assert_eq!(s.stop()?, 0);
    let (f1, _) = p.cfg.saved_position()?;

    // A clean shutdown ends f1 with a STOP event; the restarted server writes to a new file.
    services("restart-scratch")?;
    p.db = connect(&env()["SLUICE_TEST_MYSQL_SCRATCH_URL"]).await?;
    let f2 = binlog_head(&mut p.db).await?.0;
    assert_ne!(f1, f2, "the restarted server writes a new file");
    for id in 4..=6 {
        p.sql(format!("INSERT INTO {table} VALUES ({id})")).await?;
    }
    lines.extend(run_until(&p.cfg, &[4, 5, 6])?);
    let (file, pos) = p.cfg.saved_position()?;
    eprintln!("before the restart: {f1}; after: {file}:{pos}");
    assert_eq!(
        file, f2,
        "the saved position names the file the rows are in"
    );

    // From that position, once more: every row exactly once.
    for id in 7..=9 {
        p.sql(format!("INSERT INTO {table} VALUES ({id})")).await?;
    }
    lines.extend(run_until(&p.cfg, &[7, 8, 9])?);
    let seen = inserted(&lines);
    let expected: BTreeMap<i64, usize> = (1..=9).map(|id| (id, 1)).collect();
    assert_eq!(seen, expected, "every row exactly once");
    assert_eq!(p.cfg.saved_position()?.0, f2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_prepared_xa_without_captured_rows_does_not_hold_the_position() -> anyhow::Result<()>
{
    let p = TestPipeline::new("xahold")
        .scratch()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .setup("CREATE TABLE {t}_other (id INT PRIMARY KEY)")
        .build()
        .await?;
    let table = p.table.clone();
    // A prepared XA outlives its connection: roll it back whatever happens, or every later
    // start from the scratch server's head would wait for it.
    let outcome = tokio::spawn(xa_hold(p)).await;
    let mut db = connect(&env()["SLUICE_TEST_MYSQL_SCRATCH_URL"]).await?;
    let _ = db.query_drop(format!("XA ROLLBACK '{table}'")).await;
    match outcome {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The body of the test above.
async fn xa_hold(mut p: Pipeline) -> anyhow::Result<()> {
    let table = p.table.clone();
    let other = format!("{table}_other");
    let s = p.start()?;

    // An XA on a table that is not captured, prepared and left so.
    let mut xa = connect(&env()["SLUICE_TEST_MYSQL_SCRATCH_URL"]).await?;
    let xid = format!("'{table}'");
    for stmt in [
        format!("XA START {xid}"),
        format!("INSERT INTO {other} VALUES (1)"),
        format!("XA END {xid}"),
        format!("XA PREPARE {xid}"),
    ] {
        xa.query_drop(stmt).await?;
    }
    let prepared_at = binlog_head(&mut p.db).await?;

    // A steady load of captured rows: the saved position follows it past the PREPARE.
    let mut next = 1;
    let mut passed = false;
    for _ in 0..40 {
        p.sql(format!("INSERT INTO {table} VALUES ({next})"))
            .await?;
        next += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (file, pos) = p.cfg.saved_position()?;
        if (file.clone(), pos) > prepared_at {
            passed = true;
            break;
        }
    }
    let first = next - 1;
    assert!(
        wait_until(Duration::from_secs(30), || inserted(&s.stdout_lines())
            .contains_key(&first)),
        "{}",
        s.stderr_text()
    );
    let mut lines = s.stdout_lines();
    let err = s.stderr_text();
    assert_eq!(s.stop()?, 0, "{err}");
    let after_stop = p.cfg.saved_position()?;
    eprintln!("PREPARE before {prepared_at:?}; saved {after_stop:?}");
    assert!(
        passed && after_stop > prepared_at,
        "the saved position advanced past the PREPARE"
    );

    // Restart between the PREPARE and the COMMIT: the XA's COMMIT arrives for an xid the new
    // run never saw prepared, and passes; the load goes on.
    let s = p.start()?;
    for _ in 0..5 {
        p.sql(format!("INSERT INTO {table} VALUES ({next})"))
            .await?;
        next += 1;
    }
    xa.query_drop(format!("XA COMMIT {xid}")).await?;
    for _ in 0..5 {
        p.sql(format!("INSERT INTO {table} VALUES ({next})"))
            .await?;
        next += 1;
    }
    let last = next - 1;
    assert!(
        wait_until(Duration::from_secs(30), || inserted(&s.stdout_lines())
            .contains_key(&last)),
        "{}",
        s.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    lines.extend(s.stdout_lines());
    let err = s.stderr_text();
    assert_eq!(s.stop()?, 0, "{err}");
    let end = binlog_head(&mut p.db).await?;
    assert_eq!(
        p.cfg.saved_position()?,
        end,
        "the saved position is the head once idle"
    );
    let seen = inserted(&lines);
    let expected: BTreeMap<i64, usize> = (1..=last).map(|id| (id, 1)).collect();
    assert_eq!(seen, expected, "every captured row exactly once");
    Ok(())
}
