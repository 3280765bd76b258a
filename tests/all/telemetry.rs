//! `METRICS_ADDR`: `/metrics` counts what the consumer receives, and `/health` follows the
//! pipeline (streaming, halted by a transform under `--watch`, streaming again once the file is
//! fixed).

use std::io::{Read, Write};
use std::time::Duration;

use sluice_tests::*;

/// A free local port, for `METRICS_ADDR`.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = l.local_addr().expect("its address");
    format!("127.0.0.1:{}", addr.port())
}

/// `GET path` over plain HTTP/1.0: (status code, body); `None` when nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// The value of the series `name{labels}` (exactly as rendered), if present.
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name_and_labels).then(|| v.parse().ok())?
    })
}

fn health(addr: &str) -> Option<(u16, serde_json::Value)> {
    let (code, body) = get(addr, "/health")?;
    Some((code, serde_json::from_str(&body).ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_consumer_receives_and_the_lag_is_sane() -> anyhow::Result<()> {
    let addr = free_addr();
    let (mut p, sluice) = TestPipeline::new("metrics")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))")
        .env("METRICS_ADDR", addr.clone())
        .start()
        .await?;
    let (code, body) = health(&addr).expect("/health answers");
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("streaming")),
        "{body}"
    );

    for txn in 0..5 {
        let values: Vec<String> = (0..10)
            .map(|i| format!("({}, 'x')", txn * 10 + i))
            .collect();
        p.sql(format!("INSERT INTO {{t}} VALUES {}", values.join(", ")))
            .await?;
    }
    p.sql("UPDATE {t} SET v = 'y' WHERE id < 5").await?;
    let records = p.consume_settled(55, Duration::from_secs(2))?;
    assert_eq!(records.len(), 55);

    let published = format!("sluice_events_published_total{{topic=\"{}\"}}", p.topic);
    let read = format!("sluice_events_read_total{{table=\"{DB}.{}\"}}", p.table);
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            text = get(&addr, "/metrics").map(|(_, b)| b).unwrap_or_default();
            series(&text, &published) == Some(records.len() as f64)
        }),
        "the published counter equals what the consumer read ({}): {text}",
        records.len()
    );
    assert_eq!(series(&text, &read), Some(55.0), "{text}");
    let lag = series(&text, "sluice_source_lag_seconds").expect("the lag series");
    assert!(
        (0.0..5.0).contains(&lag),
        "a small lag just after the writes: {lag}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("sluice_binlog_position{file=\"")),
        "{text}"
    );
    // Idle at the head: the server's heartbeats (one a second) bring the lag to 0.
    assert!(
        wait_until(Duration::from_secs(15), || {
            text = get(&addr, "/metrics").map(|(_, b)| b).unwrap_or_default();
            series(&text, "sluice_source_lag_seconds") == Some(0.0)
        }),
        "{text}"
    );
    for name in [
        "sluice_kafka_delivery_errors_total",
        "# TYPE sluice_pipeline_restarts counter",
        "# TYPE sluice_transform_seconds histogram",
        "# TYPE sluice_snapshot_rows counter",
    ] {
        assert!(text.contains(name), "{name} is exported: {text}");
    }
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

/// Under `--watch`, a transform halt keeps the process up with `/health` at 503 and the error;
/// a fixed file resumes the pipeline from the last acknowledged event and `/health` is 200
/// again, with the rows all published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_a_transform_halts_and_200_after_the_fix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("probe.wasm");
    let install = |from: &std::path::Path| install_wasm(from, &live);
    // Version 1 panics on every event (after a smoke call that passes); version 2 tags them.
    install(&wasm("probe"))?;
    let addr = free_addr();
    let (mut p, sluice) = TestPipeline::new("health")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .config(format!(
            "[metrics]\naddr = {addr:?}\n[[transforms]]\npath = {live:?}\non_error = \"halt\"\n[transforms.config]\nmode = \"ok\"\nfail_version = \"1\"\n"
        ))
        .arg("--watch")
        .start()
        .await?;
    assert_eq!(health(&addr).map(|(c, _)| c), Some(200));
    p.sql("INSERT INTO {t} VALUES (1), (2)").await?;
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            last = health(&addr);
            last.as_ref()
                .is_some_and(|(c, b)| *c == 503 && b["status"] == "halted")
        }),
        "halted: {last:?} {}",
        sluice.stderr_text()
    );
    let (_, body) = last.expect("an answer");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("probe: version 1 refuses every event")),
        "the reason is the transform's error: {body}"
    );
    assert!(sluice.log_contains("waiting for a new version of the transform file"));
    // Still up and still halted a moment later, with nothing published.
    assert!(p.consume_settled(0, Duration::from_secs(1))?.is_empty());
    assert_eq!(
        health(&addr).map(|(c, _)| c),
        Some(503),
        "the process stays up, halted"
    );

    install(&wasm("probe-v2"))?;
    assert!(
        wait_until(Duration::from_secs(60), || health(&addr)
            .is_some_and(|(c, b)| c == 200 && b["status"] == "streaming")),
        "streaming again after the fix: {}",
        sluice.stderr_text()
    );
    p.sql("INSERT INTO {t} VALUES (3)").await?;
    let records = p.consume_settled(3, Duration::from_secs(2))?;
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
        vec![(1, "2".into()), (2, "2".into()), (3, "2".into())],
        "the halted rows once, by the fixed version"
    );
    let text = get(&addr, "/metrics").map(|(_, b)| b).unwrap_or_default();
    assert_eq!(
        series(
            &text,
            "sluice_pipeline_restarts_total{reason=\"transform_fixed\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "sluice_transform_generation{transform=\"probe\"}"),
        Some(2.0),
        "the fixed version is the second: {text}"
    );
    assert!(
        series(&text, "sluice_transform_errors_total{transform=\"probe\"}")
            .is_some_and(|n| n >= 1.0),
        "the halting call was counted: {text}"
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
