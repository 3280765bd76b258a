//! The embedded default: with no broker configured, events are JSON lines on stdout and logs
//! stay on stderr.

use std::time::Duration;

use sluice_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_broker_events_go_to_stdout() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("stdout")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(20))")
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1, 'one'), (2, 'two')")
        .await?;
    assert!(
        wait_until(Duration::from_secs(30), || sluice.stdout_lines().len() >= 2),
        "{}",
        sluice.stderr_text()
    );
    let lines = sluice.stdout_lines();
    let first: serde_json::Value = serde_json::from_str(&lines[0])?;
    assert_eq!(
        first,
        serde_json::json!({"kind": "insert", "schema": DB, "table": p.table, "columnnames": ["id", "name"],
                           "columnvalues": [1, "one"], "oldkeys": {}})
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
