//! The embedded default: with no broker configured, events are JSON lines on stdout and logs
//! stay on stderr.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_broker_events_go_to_stdout() -> anyhow::Result<()> {
    let (table, server_id) = unique("stdout");
    let mut db = admin().await?;
    db.query_drop(format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(20))"
    ))
    .await?;
    let state = tempfile::tempdir()?;
    let cfg = SluiceConfig::new(&table, None, server_id, state.path());
    let sluice = cfg.start()?;
    db.query_drop(format!("INSERT INTO {table} VALUES (1, 'one'), (2, 'two')"))
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
        serde_json::json!({"kind": "insert", "schema": DB, "table": table, "columnnames": ["id", "name"],
                           "columnvalues": [1, "one"], "oldkeys": {}})
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
