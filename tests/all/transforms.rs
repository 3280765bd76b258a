//! WebAssembly transforms: the examples give the same output natively and as wasm through the
//! host; the sandbox stops loops and memory bombs and gives nothing to file, env and clock
//! reads; failure policies work in the real pipeline; hot reload swaps versions at batch
//! boundaries with every event accounted for once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_guest::testing::{Harness, TestEvent};
use sluice_guest::Transform;
use sluice_tests::*;

/// Events with a spread of types, as contract JSON lines.
fn sample_events() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 1..=40i64 {
        let status = ["paid", "new", "shipped", "paid"][(i % 4) as usize];
        let region = if i % 5 == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!(["eu", "us"][(i % 2) as usize])
        };
        let cols = ["id", "status", "email", "total", "region", "note"];
        let vals = serde_json::json!([
            i,
            status,
            format!("user{i}@example.com"),
            format!("{}.{:02}", i * 3, i % 100),
            region,
            null
        ]);
        let line = match i % 3 {
            0 => {
                serde_json::json!({"kind": "insert", "schema": "shop", "table": "orders", "columnnames": cols, "columnvalues": vals, "oldkeys": {}})
            }
            1 => {
                serde_json::json!({"kind": "update", "schema": "shop", "table": "orders", "columnnames": cols, "columnvalues": vals,
                                    "oldkeys": {"keynames": cols, "keyvalues": vals}})
            }
            _ => {
                serde_json::json!({"kind": "delete", "schema": "shop", "table": if i % 7 == 0 { "audit" } else { "orders" }, "columnnames": [], "columnvalues": [],
                                    "oldkeys": {"keynames": cols, "keyvalues": vals}})
            }
        };
        lines.push(line.to_string());
    }
    lines
}

fn native<T: Transform>(config: &[(&str, &str)], lines: &[String]) -> Vec<serde_json::Value> {
    let events: Vec<TestEvent> = lines
        .iter()
        .map(|l| TestEvent::from_json(l).unwrap())
        .collect();
    let mut h = Harness::<T>::new(config).unwrap();
    h.run(&events)
        .unwrap()
        .iter()
        .map(|o| o.envelope_json())
        .collect()
}

fn through_host(name: &str, config: &[(&str, &str)], lines: &[String]) -> Vec<serde_json::Value> {
    let path = wasm(name);
    let mut args = vec![path.to_str().unwrap().to_owned(), "--envelope".to_owned()];
    for (k, v) in config {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = transform_test(&args, &lines.join("\n")).unwrap();
    assert_eq!(code, 0, "{name}: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn example_transforms_give_the_same_output_natively_and_as_wasm() {
    let lines = sample_events();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<serde_json::Value>);
    let cases: Vec<Case> = vec![
        {
            let c = vec![
                ("column", "status"),
                ("op", "=="),
                ("value", "paid"),
                ("drop_tables", "shop.audit"),
            ];
            (
                "filter",
                c.clone(),
                native::<sluice_transform_filter::Filter>(&c, &lines),
            )
        },
        {
            let c = vec![("columns", "email,note"), ("salt", "s1")];
            (
                "mask",
                c.clone(),
                native::<sluice_transform_mask::Mask>(&c, &lines),
            )
        },
        {
            let c = vec![("topic", "orders.{region}"), ("key", "id")];
            (
                "route",
                c.clone(),
                native::<sluice_transform_route::Route>(&c, &lines),
            )
        },
        {
            let c = vec![("rename", "email:contact"), ("drop", "note")];
            (
                "reshape",
                c.clone(),
                native::<sluice_transform_reshape::Reshape>(&c, &lines),
            )
        },
        {
            // add-column: the harness, `transform test` and the host apply the same edit.
            let c = vec![
                ("add", "source_db:eu1"),
                ("rename", "email:contact"),
                ("drop", "note"),
            ];
            let expected = native::<sluice_transform_reshape::Reshape>(&c, &lines);
            let added = expected
                .iter()
                .filter(|e| e["value"]["kind"] != "truncate")
                .all(|e| {
                    let v = &e["value"];
                    let names = if v["kind"] == "delete" {
                        &v["oldkeys"]["keynames"]
                    } else {
                        &v["columnnames"]
                    };
                    names.as_array().and_then(|n| n.last()) == Some(&serde_json::json!("source_db"))
                });
            assert!(added, "every row event gains the column: {expected:?}");
            ("reshape", c, expected)
        },
        {
            let c = vec![("envelope", "debezium"), ("drop", "note")];
            (
                "reshape",
                c.clone(),
                native::<sluice_transform_reshape::Reshape>(&c, &lines),
            )
        },
    ];
    for (name, config, expected) in cases {
        let got = through_host(name, &config, &lines);
        assert!(!expected.is_empty(), "{name}: the harness produced events");
        assert_eq!(got.len(), expected.len(), "{name} {config:?}: event count");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            // The harness does not know positions; the envelope's source.pos is the host's.
            let (mut g, mut e) = (g.clone(), e.clone());
            for v in [&mut g, &mut e] {
                if let Some(src) = v["value"].get_mut("source") {
                    src["pos"] = serde_json::Value::Null;
                    src["row"] = serde_json::Value::Null;
                }
            }
            assert_eq!(g, e, "{name} {config:?}: event {i}");
        }
    }
}

#[test]
fn the_sandbox_stops_loops_and_memory_bombs_and_the_host_survives() {
    let input = sample_events()[..3].join("\n");
    let probe = wasm("probe");
    let p = probe.to_str().unwrap();
    for (mode, needle) in [
        ("loop", "exceeded its CPU deadline of 200ms"),
        ("oom", "exceeded its memory cap of 16 MiB"),
        ("trap", "trapped"),
    ] {
        let started = Instant::now();
        let set = format!("mode={mode}");
        let (code, out, err) = transform_test(
            &[
                p,
                "--set",
                &set,
                "--on-error",
                "skip",
                "--cpu-ms",
                "200",
                "--memory-mb",
                "16",
            ],
            &input,
        )
        .unwrap();
        assert_eq!(
            code, 0,
            "{mode}: the host carries on after the guest failed: {err}"
        );
        assert!(err.contains(needle), "{mode}: {err}");
        assert!(
            err.contains("3 skipped"),
            "{mode}: every event was skipped and counted: {err}"
        );
        assert!(out.is_empty(), "{mode}: {out}");
        // Three events, each retried alone after the batch failed: four deadlines at most.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mode} took {:?}",
            started.elapsed()
        );
    }
    // halt: the failure is an error exit, and nothing is printed.
    let (code, out, err) = transform_test(&[p, "--set", "mode=trap"], &input).unwrap();
    assert_ne!(code, 0);
    assert!(out.is_empty() && err.contains("trapped"), "{err}");
}

#[test]
fn the_sandbox_gives_nothing_to_file_env_and_clock_reads() {
    let input = sample_events()[..2].join("\n");
    let probe = wasm("probe");
    let p = probe.to_str().unwrap();
    let header = |mode: &str| -> Vec<String> {
        let set = format!("mode={mode}");
        let (code, out, err) = transform_test(&[p, "--set", &set, "--envelope"], &input).unwrap();
        assert_eq!(code, 0, "{err}");
        out.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["headers"][0][1].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let file = header("file");
    assert!(
        file.iter().all(|h| h.starts_with("error:")),
        "no file system: {file:?}"
    );
    assert_eq!(header("env"), vec!["0 vars ", "0 vars "], "no environment");
    assert_eq!(
        header("clock"),
        vec!["0", "0"],
        "the clock is fixed at the epoch"
    );
    // Randomness is deterministic: two runs give the same values.
    assert_eq!(header("random"), header("random"));
}

struct PolicyRun {
    ids: Vec<i64>,
    dead: Vec<Record>,
    code: i32,
    stderr: String,
    p: Pipeline,
}

async fn run_policy(policy: &str) -> anyhow::Result<PolicyRun> {
    let (mut p, mut sluice) = TestPipeline::new(&format!("policy_{policy}"))
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))")
        .config(format!(
            "[[transforms]]\npath = {:?}\non_error = {policy:?}\ndead_letter_topic = \"{{t}}_dlq\"\n[transforms.config]\nmode = \"fail_on\"\nid = \"3\"\n",
            wasm("probe")
        ))
        .start()
        .await?;
    let dlq = format!("{}_dlq", p.table);
    for id in 1..=5 {
        p.sql(format!("INSERT INTO {{t}} VALUES ({id}, 'x')"))
            .await?;
    }
    let want = if policy == "halt" { 2 } else { 4 };
    let records = p.consume_settled(want, Duration::from_secs(2))?;
    let ids = records
        .iter()
        .map(|r| r.value["columnvalues"][0].as_i64().unwrap())
        .collect();
    let dead = if policy == "dead_letter" {
        read_topic(&dlq, 1, Duration::from_secs(30))?
    } else {
        Vec::new()
    };
    let code = if policy == "halt" {
        sluice.wait(Duration::from_secs(30))?
    } else {
        sluice.signal(15);
        sluice.wait(Duration::from_secs(30))?
    };
    let stderr = sluice.stderr_text();
    Ok(PolicyRun {
        ids,
        dead,
        code,
        stderr,
        p,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_stops_without_advancing_the_position() -> anyhow::Result<()> {
    let run = run_policy("halt").await?;
    assert_eq!(run.ids, vec![1, 2], "{}", run.stderr);
    assert_ne!(run.code, 0, "halt exits non-zero");
    assert!(
        run.stderr.contains("probe: refusing id 3")
            && run.stderr.contains("position was not advanced"),
        "{}",
        run.stderr
    );
    // The saved position is before the failing transaction: a restart meets it again, and
    // publishes nothing new.
    let (code, _, err) = run.p.run_to_end()?;
    assert_ne!(code, 0);
    assert!(err.contains("probe: refusing id 3"), "{err}");
    let records = run.p.consume_settled(2, Duration::from_secs(1))?;
    assert_eq!(records.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_counts_and_goes_on() -> anyhow::Result<()> {
    let run = run_policy("skip").await?;
    assert_eq!(run.ids, vec![1, 2, 4, 5], "{}", run.stderr);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr
            .contains("skipped an event the transform failed on"),
        "{}",
        run.stderr
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_publishes_the_original_with_the_error() -> anyhow::Result<()> {
    let run = run_policy("dead_letter").await?;
    assert_eq!(run.ids, vec![1, 2, 4, 5], "{}", run.stderr);
    assert_eq!(run.code, 0);
    assert_eq!(run.dead.len(), 1, "{}", run.stderr);
    let d = &run.dead[0];
    assert_eq!(
        d.value["columnvalues"],
        serde_json::json!([3, "x"]),
        "the original event"
    );
    assert_eq!(d.headers["sluice.error"], "probe: refusing id 3");
    assert_eq!(d.headers["sluice.transform"], "probe");
    assert_eq!(d.headers["sluice.transform.hash"].len(), 64);
    assert!(d.headers.contains_key("sluice.pos") && d.headers.contains_key("sluice.file"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_from_the_env_mask_in_the_pipeline() -> anyhow::Result<()> {
    let (mask, filter) = (wasm("mask"), wasm("filter"));
    let (mut p, mut sluice) = TestPipeline::new("masked")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, email VARCHAR(50), status VARCHAR(10))")
        .config(format!(
            "[[transforms]]\npath = {mask:?}\n[transforms.config]\ncolumns = \"email\"\n\n[[transforms]]\npath = {filter:?}\n[transforms.config]\ncolumn = \"status\"\nop = \"!=\"\nvalue = \"test\"\n"
        ))
        .env("TRANSFORMS", format!("{},{}", filter.display(), mask.display()))
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1, 'a@x.io', 'paid'), (2, 'b@x.io', 'test'), (3, NULL, 'new')")
        .await?;
    let records = p.consume_settled(2, Duration::from_secs(2))?;
    let vals: Vec<serde_json::Value> = records
        .iter()
        .map(|r| r.value["columnvalues"].clone())
        .collect();
    assert_eq!(
        vals,
        vec![
            serde_json::json!([1, sluice_transform_mask::hash_hex("", b"a@x.io"), "paid"]),
            serde_json::json!([3, null, "new"])
        ],
        "{}",
        sluice.stderr_text()
    );
    sluice.signal(15);
    assert_eq!(sluice.wait(Duration::from_secs(30))?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_column_reaches_kafka_in_every_row_image() -> anyhow::Result<()> {
    let reshape = wasm("reshape");
    let (mut p, mut sluice) = TestPipeline::new("added")
        .kafka()
        // The dropped column comes before the key, so the key's index moves.
        .setup("CREATE TABLE {t} (secret VARCHAR(20), id INT PRIMARY KEY, n INT)")
        .config(format!(
            "[[transforms]]\npath = {reshape:?}\n[transforms.config]\nadd = \"source_db:eu1\"\ndrop = \"secret\"\n"
        ))
        .env("KAFKA_KEY", "primary_key")
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES ('s', 1, 10)").await?;
    p.sql("UPDATE {t} SET n = 11 WHERE id = 1").await?;
    p.sql("DELETE FROM {t} WHERE id = 1").await?;
    let records = p.consume_settled(3, Duration::from_secs(2))?;
    let values: Vec<&serde_json::Value> = records.iter().map(|r| &r.value).collect();
    let t = &p.table;
    assert_eq!(
        values,
        [
            &serde_json::json!({"kind": "insert", "schema": DB, "table": t, "columnnames": ["id", "n", "source_db"], "columnvalues": [1, 10, "eu1"], "oldkeys": {}}),
            &serde_json::json!({"kind": "update", "schema": DB, "table": t, "columnnames": ["id", "n", "source_db"], "columnvalues": [1, 11, "eu1"], "oldkeys": {"keynames": ["id", "n", "source_db"], "keyvalues": [1, 10, "eu1"]}}),
            &serde_json::json!({"kind": "delete", "schema": DB, "table": t, "columnnames": [], "columnvalues": [], "oldkeys": {"keynames": ["id", "n", "source_db"], "keyvalues": [1, 11, "eu1"]}}),
        ],
        "{}",
        sluice.stderr_text()
    );
    // The key is still the primary key, after the dropped column moved it.
    let keys: Vec<Option<&str>> = records.iter().map(|r| r.key.as_deref()).collect();
    assert_eq!(keys, [Some("[1]"); 3]);
    sluice.signal(15);
    assert_eq!(sluice.wait(Duration::from_secs(30))?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_versions_at_batch_boundaries_and_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("probe.wasm");
    let install = |from: &std::path::Path| install_wasm(from, &live);
    install(&wasm("probe"))?;
    let (p, mut sluice) = TestPipeline::new("reload")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, txn INT)")
        .env("TRANSFORMS", live.to_str().unwrap())
        .arg("--watch")
        .start()
        .await?;

    // A writer: transactions of 3 rows, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let txns = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, txns, table) = (stop.clone(), txns.clone(), p.table.clone());
        tokio::spawn(async move {
            let mut db = admin().await?;
            let mut t = 0i64;
            while !stop.load(Ordering::SeqCst) {
                t += 1;
                db.query_drop("BEGIN").await?;
                for k in 0..3 {
                    db.query_drop(format!("INSERT INTO {table} VALUES ({}, {t})", t * 3 + k))
                        .await?;
                }
                db.query_drop("COMMIT").await?;
                txns.store(t, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(t)
        })
    };
    let progress =
        |n: i64| wait_until(Duration::from_secs(60), || txns.load(Ordering::SeqCst) >= n);
    assert!(progress(50));
    install(&wasm("probe-v2"))?;
    assert!(
        wait_until(Duration::from_secs(60), || sluice
            .log_contains("swapped in the new version")),
        "{}",
        sluice.stderr_text()
    );
    let base = txns.load(Ordering::SeqCst);
    assert!(progress(base + 50));
    std::fs::write(
        dir.path().join("probe.wasm.tmp"),
        b"\0asm this is not a component",
    )?;
    std::fs::rename(dir.path().join("probe.wasm.tmp"), &live)?;
    assert!(
        wait_until(Duration::from_secs(60), || sluice
            .log_contains("rejected the new version")),
        "{}",
        sluice.stderr_text()
    );
    let base = txns.load(Ordering::SeqCst);
    assert!(progress(base + 50));
    install(&wasm("probe"))?;
    assert!(
        wait_until(Duration::from_secs(60), || sluice
            .stderr_text()
            .matches("swapped in the new version")
            .count()
            >= 2),
        "{}",
        sluice.stderr_text()
    );
    let base = txns.load(Ordering::SeqCst);
    assert!(progress(base + 30));
    stop.store(true, Ordering::SeqCst);
    let total_txns = writer.await??;
    let rows = (total_txns * 3) as usize;

    let records = p.consume_settled(rows, Duration::from_secs(3))?;
    sluice.signal(15);
    assert_eq!(sluice.wait(Duration::from_secs(30))?, 0);
    // Every row exactly once.
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &records {
        *seen
            .entry(r.value["columnvalues"][0].as_i64().unwrap())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), rows, "every row arrived");
    assert!(seen.values().all(|n| *n == 1), "no row twice");
    // Versions: 1, then 2, then 1 again; each transaction handled by one version.
    let versions: Vec<(i64, String)> = records
        .iter()
        .map(|r| {
            (
                r.value["columnvalues"][1].as_i64().unwrap(),
                r.headers.get("probe-version").cloned().unwrap_or_default(),
            )
        })
        .collect();
    let mut per_txn: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (t, v) in &versions {
        per_txn.entry(*t).or_default().push(v.clone());
    }
    assert!(
        per_txn.values().all(|v| v.iter().all(|x| x == &v[0])),
        "a transaction never spans two versions"
    );
    let mut runs: Vec<String> = Vec::new();
    for (_, v) in &versions {
        if runs.last() != Some(v) {
            runs.push(v.clone());
        }
    }
    assert_eq!(
        runs,
        vec!["1", "2", "1"],
        "the output switched versions twice, and the corrupt file changed nothing"
    );
    Ok(())
}

/// The line of `stderr` with the halt's error.
fn halt_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("failed on the event at"))
        .unwrap_or_default()
        .to_owned()
}

/// A guest that panics on the second event names that event, with its panic message before
/// the trap, and a backtrace of a few frames: in `transform test` (`input:2#0`, the second
/// event line) and in `sluice run` (`file:pos#1`, row #1 of a 3-row transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_at_the_failing_row_with_its_message_first() -> anyhow::Result<()> {
    let probe = wasm("probe");
    let p = probe.to_str().unwrap();
    let lines: Vec<String> = (1..=3)
        .map(|id| format!(r#"{{"kind":"insert","schema":"s","table":"t","columnnames":["id"],"columnvalues":[{id}],"oldkeys":{{}}}}"#))
        .collect();
    let (code, out, err) = transform_test(
        &[p, "--set", "mode=trap", "--set", "id=2"],
        &lines.join("\n"),
    )?;
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    let line = halt_line(&err);
    println!("transform test: {line}");
    assert!(
        line.contains("failed on the event at input:2#0 (s.t): panicked at")
            && line.contains("probe: trap requested on id 2 (trapped:"),
        "{err}"
    );
    let frames = line.matches(" | ").count();
    assert!(
        frames <= 5 && line.contains("more frames"),
        "the backtrace is trimmed: {line}"
    );

    let (mut p, mut sluice) = TestPipeline::new("halt_row")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .config(format!(
            "[[transforms]]\npath = {probe:?}\n[transforms.config]\nmode = \"trap\"\nid = \"2\"\n"
        ))
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1), (2), (3)").await?;
    let code = sluice.wait(Duration::from_secs(60))?;
    let err = sluice.stderr_text();
    assert_ne!(code, 0, "halt exits non-zero: {err}");
    let line = halt_line(&err);
    println!("sluice run: {line}");
    // `file:pos#row`: the failing row's own position, and the guest's message first.
    let at = line
        .split("failed on the event at ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_default();
    let (file_pos, row) = at.rsplit_once('#').unwrap_or_default();
    assert!(
        file_pos.contains(':') && row == "1",
        "row #1 named in {at:?}: {err}"
    );
    let message = line.split(&format!("({DB}.{}): ", p.table)).nth(1);
    assert!(
        message.is_some_and(|m| m.starts_with("panicked at")
            && m.contains("probe: trap requested on id 2 (trapped:")),
        "{err}"
    );
    assert!(
        p.consume_settled(0, Duration::from_secs(1))?.is_empty(),
        "nothing of the failing transaction was published"
    );
    Ok(())
}

/// Under `--watch` and `on_error = "halt"`, a new version that passes the smoke call but
/// fails on every real event is rolled back: the previous version handles the batch, the
/// pipeline keeps running, and every row arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_rolls_back_a_new_version_that_halts_on_its_first_batch() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("probe.wasm");
    let install = |from: &std::path::Path| install_wasm(from, &live);
    install(&wasm("probe"))?;
    let (mut p, mut sluice) = TestPipeline::new("rollback")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        // Version 2 panics on every event; version 1 tags it.
        .config(format!(
            "[[transforms]]\npath = {live:?}\non_error = \"halt\"\n[transforms.config]\nmode = \"ok\"\nfail_version = \"2\"\n"
        ))
        .arg("--watch")
        .start()
        .await?;
    assert!(
        wait_until(Duration::from_secs(30), || sluice
            .log_contains(&format!("watching {}", live.display()))),
        "{}",
        sluice.stderr_text()
    );
    p.sql("INSERT INTO {t} VALUES (1), (2), (3)").await?;
    read_topic(&p.topic, 3, Duration::from_secs(30))?;
    install(&wasm("probe-v2"))?;
    // The watcher offers it; the chain swaps it in before the next batch.
    assert!(
        wait_until(Duration::from_secs(30), || sluice
            .log_contains("new version compiled and initialised")),
        "{}",
        sluice.stderr_text()
    );
    p.sql("INSERT INTO {t} VALUES (4), (5), (6)").await?;
    p.sql("INSERT INTO {t} VALUES (7)").await?;
    assert!(
        wait_until(Duration::from_secs(30), || sluice
            .log_contains("rolled back")),
        "{}",
        sluice.stderr_text()
    );
    assert!(sluice.log_contains("swapped in the new version"));
    let records = p.consume_settled(7, Duration::from_secs(2))?;
    let rows: Vec<(i64, String)> = records
        .iter()
        .map(|r| {
            (
                r.value["columnvalues"][0].as_i64().unwrap(),
                r.headers.get("probe-version").cloned().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        (1..=7).map(|id| (id, "1".to_owned())).collect::<Vec<_>>(),
        "every row once, all by version 1: {}",
        sluice.stderr_text()
    );
    let err = sluice.stderr_text();
    assert!(
        err.contains("probe: version 2 refuses every event"),
        "the rollback names the error: {err}"
    );
    sluice.signal(15);
    assert_eq!(
        sluice.wait(Duration::from_secs(30))?,
        0,
        "{}",
        sluice.stderr_text()
    );
    Ok(())
}
