//! Permanent Kafka errors stop Sluice instead of looping: a row over `message.max.bytes` stops it
//! with a message naming the setting, at a position a restart retries; with
//! `kafka.on_oversize = "dead_letter"` the row goes to the dead-letter topic instead.

use std::time::{Duration, Instant};

use sluice_tests::*;

/// A row of about 3 MB: over librdkafka's default `message.max.bytes` (1 000 000).
const BIG: usize = 3_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_oversized_row_stops_naming_message_max_bytes() -> anyhow::Result<()> {
    let (mut p, mut sluice) = TestPipeline::new("big_halt")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, body LONGTEXT)")
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1, 'small')").await?;
    assert_eq!(read_topic(&p.topic, 1, Duration::from_secs(30))?.len(), 1);
    // Let the checkpointer save the position after row 1.
    std::thread::sleep(Duration::from_millis(800));

    let before_big = binlog_head(&mut p.db).await?;
    let t0 = Instant::now();
    p.sql(format!("INSERT INTO {{t}} VALUES (2, REPEAT('x', {BIG}))"))
        .await?;
    p.sql("INSERT INTO {t} VALUES (3, 'after')").await?;
    let code = sluice.wait(Duration::from_secs(60))?;
    let took = t0.elapsed();
    let err = sluice.stderr_text();
    eprintln!("oversized row: exit {code} after {took:?}");
    assert_ne!(code, 0, "a permanent error exits non-zero:\n{err}");
    assert!(took < Duration::from_secs(60));
    assert!(
        err.contains("message.max.bytes") && err.contains("too large"),
        "{err}"
    );
    assert!(
        !err.contains("resuming from the last acknowledged position"),
        "a permanent error is not retried:\n{err}"
    );
    // Nothing was skipped: the saved position is at or before the big row's transaction.
    let big_txn = transaction_of(&mut p.db, &before_big, &p.table).await?;
    let saved = p.cfg.saved_position()?;
    assert!(
        saved <= big_txn,
        "saved {saved:?} must not pass the oversized row's transaction at {big_txn:?}"
    );
    let records = p.consume_settled(1, Duration::from_secs(2))?;
    let ids: Vec<i64> = records
        .iter()
        .map(|r| r.value["columnvalues"][0].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1], "row 3 is not published past the stop");

    // Raising the limit, as the message says, publishes the row on the restart (tansu accepts
    // it: it has no broker-side limit at this size).
    let toml = p.state_dir().join("sluice.toml");
    std::fs::write(
        &toml,
        "[kafka.producer]\n\"message.max.bytes\" = \"10000000\"\n",
    )?;
    let sluice = p
        .cfg
        .start_with(&["run", "--config", toml.to_str().unwrap()])?;
    let records = p.consume_settled(3, Duration::from_secs(3))?;
    let ids: Vec<i64> = records
        .iter()
        .map(|r| r.value["columnvalues"][0].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3], "{}", sluice.stderr_text());
    assert_eq!(
        records[1].value["columnvalues"][1].as_str().map(str::len),
        Some(BIG)
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_oversized_row_goes_to_the_dead_letter_topic() -> anyhow::Result<()> {
    let (mut p, mut sluice) = TestPipeline::new("big_dlq")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, body LONGTEXT)")
        .config("[kafka]\non_oversize = \"dead_letter\"\ndead_letter_topic = \"{t}_big\"\n")
        .start()
        .await?;
    let dlq = format!("{}_big", p.table);
    p.sql("INSERT INTO {t} VALUES (1, 'small')").await?;
    p.sql(format!("INSERT INTO {{t}} VALUES (2, REPEAT('x', {BIG}))"))
        .await?;
    p.sql("INSERT INTO {t} VALUES (3, 'after')").await?;

    let main = p.consume_settled(2, Duration::from_secs(2))?;
    let ids: Vec<i64> = main
        .iter()
        .map(|r| r.value["columnvalues"][0].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 3], "{}", sluice.stderr_text());
    let dead = read_topic_settled(&dlq, 1, Duration::from_secs(2))?;
    assert_eq!(dead.len(), 1, "{}", sluice.stderr_text());
    let d = &dead[0];
    eprintln!("dead letter: key {:?}, headers {:?}", d.key, d.headers);
    assert_eq!(d.value, serde_json::Value::Null, "the value is omitted");
    assert!(
        d.headers["sluice.error"].contains("too large"),
        "{:?}",
        d.headers
    );
    assert_eq!(d.headers["sluice.original.topic"], p.topic);
    let bytes: usize = d.headers["sluice.original.bytes"].parse()?;
    assert!(bytes > BIG, "{bytes}");
    // The row's own position travels with it: the row after it is in the next transaction.
    assert_eq!(d.headers["sluice.row"], "0");
    let pos: u64 = d.headers["sluice.pos"].parse()?;
    let next: u64 = main[1].headers["sluice.pos"].parse()?;
    let prev: u64 = main[0].headers["sluice.pos"].parse()?;
    assert!(prev < pos && pos < next, "{prev} < {pos} < {next}");
    assert!(sluice.child.try_wait()?.is_none(), "Sluice carries on");
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topics_chosen_by_a_transform_are_checked_on_first_use() -> anyhow::Result<()> {
    // `route` sends each row to `{table}_{region}`: new topics are checked (and created) once.
    // A region that makes an invalid topic name stops Sluice with the reason at once, at a
    // position a restart retries, instead of retrying the delivery forever.
    let (mut p, mut sluice) = TestPipeline::new("routed")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, region VARCHAR(20))")
        .config(format!(
            "[[transforms]]\npath = {:?}\n[transforms.config]\ntopic = \"{{t}}_{{region}}\"\n",
            wasm("route").display().to_string()
        ))
        .start()
        .await?;
    let table = p.table.clone();
    p.sql("INSERT INTO {t} VALUES (1, 'eu'), (2, 'us')").await?;
    let eu = read_topic(&format!("{table}_eu"), 1, Duration::from_secs(30))?;
    let us = read_topic(&format!("{table}_us"), 1, Duration::from_secs(30))?;
    assert_eq!(
        (
            eu[0].value["columnvalues"][0].clone(),
            us[0].value["columnvalues"][0].clone()
        ),
        (1.into(), 2.into())
    );

    let started = Instant::now();
    p.sql("INSERT INTO {t} VALUES (3, 'bad name!')").await?;
    let code = sluice.wait(Duration::from_secs(60))?;
    let err = sluice.stderr_text();
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{table}_bad name!")),
        "the error names the topic: {err}"
    );
    eprintln!("{}", err.lines().last().unwrap_or_default());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
