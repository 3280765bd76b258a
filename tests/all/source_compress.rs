//! MariaDB's compressed binlog events (`log_bin_compress=ON`): rows events 166–171 and
//! QUERY_COMPRESSED (165) arrive with exactly the values of the uncompressed ones. The setting
//! is global, so the test runs on the scratch server (one scratch test at a time) and restores
//! it afterwards.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

/// Turns compression off again however the test ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let url = env()["SLUICE_TEST_MYSQL_SCRATCH_URL"].clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                if let Ok(mut c) = connect(&url).await {
                    let _ = c
                        .query_drop(
                            "SET GLOBAL log_bin_compress=OFF, GLOBAL log_bin_compress_min_len=256",
                        )
                        .await;
                }
            })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_compressed_rows_and_queries_arrive_exactly() -> anyhow::Result<()> {
    services("scratch")?;
    let url = env()["SLUICE_TEST_MYSQL_SCRATCH_URL"].clone();
    let mut setup = connect(&url).await?;
    let _restore = Restore;
    setup
        .query_drop("SET GLOBAL log_bin_compress=ON, GLOBAL log_bin_compress_min_len=10")
        .await?;
    drop(setup);
    // A new session, so that it writes with the new global setting.
    let (mut p, sluice) = TestPipeline::new("zip")
        .scratch()
        .setup(
            "CREATE TABLE {t} (id INT PRIMARY KEY, note VARCHAR(2000), body MEDIUMTEXT, raw BLOB)",
        )
        .start()
        .await?;
    let (table, db) = (p.table.clone(), &mut p.db);

    let body = "compressible text, ".repeat(5000); // ~95 KB
    let note = "ünïcödé ".repeat(100);
    db.exec_drop(
        format!("INSERT INTO {table} VALUES (1, ?, ?, ?), (2, 'short', ?, NULL)"),
        (&note, &body, vec![7u8; 3000], "x".repeat(300)),
    )
    .await?;
    db.exec_drop(
        format!("UPDATE {table} SET body = CONCAT(body, ?) WHERE id = 1"),
        ("tail",),
    )
    .await?;
    db.query_drop(format!("DELETE FROM {table} WHERE id = 2"))
        .await?;
    // A compressed DDL (QUERY_COMPRESSED) mid-stream, then more rows.
    db.query_drop(format!("ALTER TABLE {table} ADD COLUMN extra VARCHAR(300)"))
        .await?;
    db.exec_drop(
        format!("INSERT INTO {table} VALUES (3, 'three', ?, NULL, ?)"),
        (&body, "e".repeat(200)),
    )
    .await?;

    // The server really wrote compressed events.
    let file = binlog_head(db).await?.0;
    let events: Vec<mysql_async::Row> = db.query(format!("SHOW BINLOG EVENTS IN '{file}'")).await?;
    let types: Vec<String> = events
        .iter()
        .filter_map(|r| r.get::<String, _>(2))
        .collect();
    for t in [
        "Write_rows_compressed_v1",
        "Update_rows_compressed_v1",
        "Delete_rows_compressed_v1",
        "Query_compressed",
    ] {
        assert!(
            types.iter().any(|x| x == t),
            "the server wrote no {t}: {types:?}"
        );
    }

    assert!(
        wait_until(Duration::from_secs(30), || sluice.stdout_lines().len() >= 5),
        "{}",
        sluice.stderr_text()
    );
    let events: Vec<serde_json::Value> = sluice
        .stdout_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 5, "{events:#?}");
    // The BLOB's base64, as the server computes it.
    let raw_b64: String = db
        .query_first(format!(
            "SELECT REPLACE(TO_BASE64(raw), '\\n', '') FROM {table} WHERE id = 1"
        ))
        .await?
        .unwrap();
    assert_eq!(events[0]["kind"], "insert");
    assert_eq!(
        events[0]["columnvalues"],
        serde_json::json!([1, note, body, raw_b64])
    );
    assert_eq!(
        events[1]["columnvalues"],
        serde_json::json!([2, "short", "x".repeat(300), null])
    );
    assert_eq!(events[2]["kind"], "update");
    assert_eq!(
        events[2]["oldkeys"]["keyvalues"][2],
        serde_json::json!(body)
    );
    assert_eq!(
        events[2]["columnvalues"][2],
        serde_json::json!(format!("{body}tail"))
    );
    assert_eq!(events[3]["kind"], "delete");
    assert_eq!(events[3]["oldkeys"]["keyvalues"][0], 2);
    assert_eq!(events[4]["columnnames"][4], "extra");
    assert_eq!(
        events[4]["columnvalues"],
        serde_json::json!([3, "three", body, null, "e".repeat(200)])
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
