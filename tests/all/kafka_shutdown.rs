//! A stop while Kafka is down: SIGTERM still exits within a bound, the saved position is the last
//! one Kafka acknowledged, and a restart against a live broker publishes the rest.

use std::time::{Duration, Instant};

use sluice_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_sigterm_exits_in_time_and_keeps_the_acked_position() -> anyhow::Result<()> {
    let mut broker = PrivateBroker::start()?;
    let (mut p, mut sluice) = TestPipeline::new("down_stop")
        .kafka()
        .env("KAFKA_BROKERS", broker.address())
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .start()
        .await?;
    let (table, topic) = (p.table.clone(), p.topic.clone());
    p.sql("INSERT INTO {t} VALUES (1)").await?;
    assert_eq!(
        read_topic_from(&broker.address(), &topic, 1, Duration::from_secs(30))?.len(),
        1
    );
    // The position after row 1, once the checkpointer wrote it. (Other tests commit on the same
    // server: the saved position may pass their transactions too, never row 2's.)
    let head = binlog_head(&mut p.db).await?;
    assert!(
        wait_until(Duration::from_secs(10), || p
            .cfg
            .saved_position()
            .is_ok_and(|s| s >= head)),
        "the position after row 1 is saved: {:?} vs {head:?}",
        p.cfg.saved_position()
    );

    // The broker dies; rows keep coming (several transactions, one of them large).
    broker.kill();
    let before_row2 = binlog_head(&mut p.db).await?;
    for id in 2..=10 {
        p.sql(format!("INSERT INTO {table} VALUES ({id})")).await?;
    }
    p.sql("BEGIN").await?;
    for id in 11..=200 {
        p.sql(format!("INSERT INTO {table} VALUES ({id})")).await?;
    }
    p.sql("COMMIT").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sluice.child.try_wait()?.is_none(),
        "sluice waits for the broker"
    );

    let t0 = Instant::now();
    sluice.signal(15);
    let code = sluice.wait(Duration::from_secs(30))?;
    let took = t0.elapsed();
    eprintln!("SIGTERM with the broker down: exit {code} after {took:?}");
    assert!(
        took <= Duration::from_secs(15),
        "exit within 15 s, took {took:?}:\n{}",
        sluice.stderr_text()
    );
    assert_eq!(code, 0, "{}", sluice.stderr_text());
    assert!(
        sluice
            .stderr_text()
            .contains("a restart publishes them again"),
        "{}",
        sluice.stderr_text()
    );
    let row2 = transaction_of(&mut p.db, &before_row2, &table).await?;
    let saved = p.cfg.saved_position()?;
    assert!(
        head <= saved && saved <= row2,
        "the saved position is the last acknowledged one: {saved:?}, between row 1's commit \
         {head:?} and row 2's transaction {row2:?}"
    );

    // The broker comes back (empty: memory storage); the restart publishes rows 2..=200.
    broker.restart()?;
    let sluice = p.start()?;
    let records = read_topic_from(&broker.address(), &topic, 199, Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(2));
    let records = if records.len() == 199 {
        read_topic_from(&broker.address(), &topic, 1_000, Duration::from_secs(2))?
    } else {
        records
    };
    let ids: Vec<i64> = records
        .iter()
        .map(|r| r.value["columnvalues"][0].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (2..=200).collect::<Vec<_>>(),
        "{}",
        sluice.stderr_text()
    );
    assert_eq!(sluice.stop()?, 0);
    Ok(())
}
