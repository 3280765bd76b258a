//! Start-up validation: what no retry can heal stops `sluice run` within about 10 s with a
//! message naming the setting, and a stop signal during those waits exits promptly.

use std::time::{Duration, Instant};

use sluice_tests::*;

/// Runs `sluice run` to its end, with a deadline; returns (exit code, stderr, time taken).
fn run_until_exit(cfg: &SluiceConfig, limit: Duration) -> anyhow::Result<(i32, String, Duration)> {
    let t0 = Instant::now();
    let mut s = cfg.spawn()?;
    let code = s.wait(limit)?;
    Ok((code, s.stderr_text(), t0.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_unreachable_broker_names_kafka_brokers() -> anyhow::Result<()> {
    let p = TestPipeline::new("st_broker")
        .kafka()
        // Nothing listens on port 1.
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .build()
        .await?;
    let (code, err, took) = run_until_exit(&p.cfg, Duration::from_secs(30))?;
    eprintln!("unreachable broker: exit {code} after {took:?}");
    assert_ne!(code, 0, "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{err}");
    assert!(
        err.contains("cannot reach the Kafka broker") && err.contains("KAFKA_BROKERS"),
        "{err}"
    );
    assert!(
        !err.contains("resuming from the last acknowledged position"),
        "not retried:\n{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_sigterm_while_waiting_for_the_broker_exits_promptly() -> anyhow::Result<()> {
    let p = TestPipeline::new("st_sigterm")
        .kafka()
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .build()
        .await?;
    let mut s = p.cfg.spawn()?;
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        s.child.try_wait()?.is_none(),
        "still waiting for the broker"
    );
    let t0 = Instant::now();
    s.signal(15);
    let code = s.wait(Duration::from_secs(20))?;
    let took = t0.elapsed();
    eprintln!("SIGTERM during the broker check: exit {code} after {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}:\n{}",
        s.stderr_text()
    );
    assert_eq!(code, 0, "{}", s.stderr_text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_missing_table_stops_naming_mysql_table() -> anyhow::Result<()> {
    // The table is never created.
    let p = TestPipeline::new("st_missing").build().await?;
    let (code, err, took) = run_until_exit(&p.cfg, Duration::from_secs(30))?;
    eprintln!("missing table: exit {code} after {took:?}");
    assert_ne!(code, 0, "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{err}");
    assert!(
        err.contains(&p.table) && err.contains("MYSQL_TABLE"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_wrong_password_stops_naming_mysql_password() -> anyhow::Result<()> {
    let secret = "Xq7-not-the-password";
    let p = TestPipeline::new("st_password")
        .env("MYSQL_PASSWORD", secret)
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .build()
        .await?;
    let (code, err, took) = run_until_exit(&p.cfg, Duration::from_secs(30))?;
    eprintln!("wrong password: exit {code} after {took:?}");
    assert_ne!(code, 0, "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{err}");
    assert!(err.contains("MYSQL_PASSWORD"), "{err}");
    assert!(
        !err.contains(secret),
        "the password is never printed:\n{err}"
    );
    Ok(())
}
