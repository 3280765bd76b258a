//! Start-up validation: what no retry can heal stops `sluice run` within about 10 s with a
//! message naming the setting, and a stop signal during those waits exits promptly.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
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
    let (table, server_id) = unique("st_broker");
    let mut db = admin().await?;
    db.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY)"))
        .await?;
    let state = tempfile::tempdir()?;
    let mut cfg = SluiceConfig::new(&table, Some("t"), server_id, state.path());
    // Nothing listens on port 1.
    cfg.set("KAFKA_BROKERS", "127.0.0.1:1");
    let (code, err, took) = run_until_exit(&cfg, Duration::from_secs(30))?;
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
    let (table, server_id) = unique("st_sigterm");
    let mut db = admin().await?;
    db.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY)"))
        .await?;
    let state = tempfile::tempdir()?;
    let mut cfg = SluiceConfig::new(&table, Some("t"), server_id, state.path());
    cfg.set("KAFKA_BROKERS", "127.0.0.1:1");
    let mut s = cfg.spawn()?;
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
    let (table, server_id) = unique("st_missing");
    let state = tempfile::tempdir()?;
    // The table is never created.
    let cfg = SluiceConfig::new(&table, None, server_id, state.path());
    let (code, err, took) = run_until_exit(&cfg, Duration::from_secs(30))?;
    eprintln!("missing table: exit {code} after {took:?}");
    assert_ne!(code, 0, "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{err}");
    assert!(err.contains(&table) && err.contains("MYSQL_TABLE"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_wrong_password_stops_naming_mysql_password() -> anyhow::Result<()> {
    let (table, server_id) = unique("st_password");
    let mut db = admin().await?;
    db.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY)"))
        .await?;
    let state = tempfile::tempdir()?;
    let mut cfg = SluiceConfig::new(&table, None, server_id, state.path());
    let secret = "Xq7-not-the-password";
    cfg.set("MYSQL_PASSWORD", secret);
    let (code, err, took) = run_until_exit(&cfg, Duration::from_secs(30))?;
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
