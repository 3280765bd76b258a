//! Transactions arrive whole and in commit order; two transactions never interleave, even when
//! their statements did.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_transactions_arrive_whole_in_commit_order() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("order")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, who CHAR(1), step INT)")
        .start()
        .await?;
    let table = p.table.clone();
    let a = &mut p.db;
    let mut b = admin().await?;

    let mut expected = Vec::new();
    for round in 0..5 {
        let base = round * 100;
        a.query_drop("BEGIN").await?;
        b.query_drop("BEGIN").await?;
        a.query_drop(format!("INSERT INTO {table} VALUES ({}, 'a', 1)", base + 1))
            .await?;
        b.query_drop(format!("INSERT INTO {table} VALUES ({}, 'b', 1)", base + 2))
            .await?;
        a.query_drop(format!("INSERT INTO {table} VALUES ({}, 'a', 2)", base + 3))
            .await?;
        b.query_drop(format!("INSERT INTO {table} VALUES ({}, 'b', 2)", base + 4))
            .await?;
        a.query_drop(format!(
            "UPDATE {table} SET step = 3 WHERE id = {}",
            base + 1
        ))
        .await?;
        // b commits first, so its transaction comes first.
        b.query_drop("COMMIT").await?;
        a.query_drop("COMMIT").await?;
        expected.extend([
            ("insert", base + 2),
            ("insert", base + 4),
            ("insert", base + 1),
            ("insert", base + 3),
            ("update", base + 1),
        ]);
    }
    let records = p.consume_settled(expected.len(), Duration::from_secs(2))?;
    let got: Vec<(String, i64)> = records
        .iter()
        .map(|r| {
            (
                r.value["kind"].as_str().unwrap().to_owned(),
                r.value["columnvalues"][0].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = expected.iter().map(|(k, i)| (k.to_string(), *i)).collect();
    assert_eq!(got, want, "{}", sluice.stderr_text());

    // The position headers group each transaction: one pos, rows 0..n.
    for chunk in records.chunks(5) {
        let (two, three) = chunk.split_at(2);
        for group in [two, three] {
            let pos = &group[0].headers["sluice.pos"];
            for (i, r) in group.iter().enumerate() {
                assert_eq!(&r.headers["sluice.pos"], pos);
                assert_eq!(r.headers["sluice.row"], i.to_string());
            }
        }
    }
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
