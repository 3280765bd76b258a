//! ALTER TABLE mid-stream: later events carry the new column set, both with
//! `binlog_row_metadata=FULL` (names from TABLE_MAP) and without it (names from
//! information_schema, refreshed on DDL; the scratch instance runs with MINIMAL).

use std::time::Duration;

use sluice_tests::*;

async fn alter_mid_stream(scratch: bool, catch_up: bool) -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("alter")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, a VARCHAR(10))");
    if scratch {
        pipeline = pipeline.scratch();
    }
    let (mut p, sluice) = pipeline.start().await?;
    let table = p.table.clone();

    // Each statement waits for the stream to catch up: without FULL row metadata, names come
    // from information_schema, which describes the table as it is now, not as it was when the
    // rows were written (see docs/ARCHITECTURE.md). With FULL metadata no wait is needed.
    let steps = [
        format!("INSERT INTO {table} VALUES (1, 'one')"),
        format!("ALTER TABLE {table} ADD COLUMN extra VARCHAR(10) NOT NULL DEFAULT 'x'"),
        format!("INSERT INTO {table} VALUES (2, 'two', 'new')"),
        format!("ALTER TABLE {table} DROP COLUMN a"),
        format!("INSERT INTO {table} VALUES (3, 'three')"),
        format!("ALTER TABLE {table} ADD COLUMN num INT"),
        format!("ALTER TABLE {table} MODIFY COLUMN num BIGINT UNSIGNED"),
        format!("INSERT INTO {table} VALUES (4, 'four', 18446744073709551615)"),
        format!("UPDATE {table} SET num = 5 WHERE id = 4"),
    ];
    let mut events = 0;
    for step in &steps {
        p.sql(step).await?;
        if catch_up && !step.starts_with("ALTER") {
            events += 1;
            assert_eq!(
                read_topic(&p.topic, events, Duration::from_secs(30))?.len(),
                events,
                "{}",
                sluice.stderr_text()
            );
        }
    }
    let records = p.consume(5)?;
    assert_eq!(records.len(), 5, "{}", sluice.stderr_text());
    let row = |i: usize| {
        (
            records[i].value["columnnames"].clone(),
            records[i].value["columnvalues"].clone(),
        )
    };
    use serde_json::json;
    assert_eq!(row(0), (json!(["id", "a"]), json!([1, "one"])));
    assert_eq!(
        row(1),
        (json!(["id", "a", "extra"]), json!([2, "two", "new"]))
    );
    assert_eq!(row(2), (json!(["id", "extra"]), json!([3, "three"])));
    assert_eq!(
        row(3),
        (
            json!(["id", "extra", "num"]),
            json!([4, "four", 18446744073709551615u64])
        )
    );
    assert_eq!(
        row(4),
        (json!(["id", "extra", "num"]), json!([4, "four", 5]))
    );
    assert_eq!(
        records[4].value["oldkeys"]["keyvalues"],
        json!([4, "four", 18446744073709551615u64])
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_with_full_row_metadata() -> anyhow::Result<()> {
    alter_mid_stream(false, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_alter_table_with_minimal_row_metadata_uses_information_schema(
) -> anyhow::Result<()> {
    alter_mid_stream(true, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_catalog_that_moved_on_is_refused_not_guessed() -> anyhow::Result<()> {
    // Without FULL metadata, rows written before an ALTER that Sluice had not yet read cannot be
    // named from today's information_schema. Sluice stops with the fix rather than mislabel.
    let (mut p, sluice) = TestPipeline::new("moved")
        .kafka()
        .scratch()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, a VARCHAR(10))")
        .start()
        .await?;
    assert_eq!(sluice.stop()?, 0);
    p.sql("INSERT INTO {t} VALUES (1, 'one')").await?;
    p.sql("ALTER TABLE {t} ADD COLUMN b INT").await?;
    let (code, _, err) = p.run_to_end()?;
    assert_ne!(code, 0);
    assert!(
        err.contains("the binlog has 2 columns but information_schema has 3"),
        "{err}"
    );
    assert!(err.contains("binlog_row_metadata=FULL"), "{err}");
    assert_eq!(
        read_topic(&p.topic, 1, Duration::from_secs(2))?.len(),
        0,
        "nothing mislabelled was published"
    );
    Ok(())
}
