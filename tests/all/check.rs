//! `sluice check` and the run-time errors an operator meets, each triggered for real: binlog
//! off (a second instance without log_bin), a wrong binlog format, a user without privileges,
//! a wrong password, and a purged position. With a broker configured, `check` reports Kafka too.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_setup_passes_every_check() -> anyhow::Result<()> {
    let p = TestPipeline::new("chk_ok")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .build()
        .await?;
    let (code, out, err) = p.cfg.run_to_end(&["check"])?;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for name in [
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "privileges",
        "table",
        "server_id",
        "position",
    ] {
        assert!(
            out.contains(&format!("[PASS] {name}")),
            "{name} passes:\n{out}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_off_and_wrong_format_fail_with_fixes() -> anyhow::Result<()> {
    services("nobinlog")?;
    let url = &env()["SLUICE_TEST_MYSQL_NOLOG_URL"];
    let mut db = connect(url).await?;
    db.query_drop("SET GLOBAL binlog_format = 'STATEMENT'")
        .await?;
    db.query_drop("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)")
        .await?;
    let (_, server_id) = unique("nolog");
    let state = tempfile::tempdir()?;
    let mut cfg = SluiceConfig::new("t", None, server_id, state.path());
    cfg.set("MYSQL_PORT", &env()["SLUICE_TEST_MYSQL_NOLOG_PORT"])
        .set("MYSQL_USER", "root")
        .set("MYSQL_PASSWORD", "");
    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0);
    assert!(
        out.contains("[FAIL] log_bin: Binary logging must be enabled for CDC"),
        "{out}"
    );
    assert!(
        out.contains("[FAIL] binlog_format: binlog_format=STATEMENT"),
        "{out}"
    );
    assert!(out.contains("fix: SET GLOBAL binlog_format=ROW"), "{out}");

    // `sluice run` refuses too, with the same words, and exits non-zero.
    let (code, _, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains("Binary logging must be enabled for CDC"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_privileges_and_bad_password_fail_with_fixes() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("chk_priv")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY) ENGINE=MyISAM")
        .build()
        .await?;
    let (table, user) = (p.table.clone(), format!("weak{}", p.server_id));
    p.sql(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await?;
    p.sql(format!("GRANT SELECT ON {DB}.* TO '{user}'@'%'"))
        .await?;
    let cfg = &mut p.cfg;
    cfg.set("MYSQL_USER", &user).set("MYSQL_PASSWORD", "pw");
    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!(
            "[FAIL] privileges: user '{user}' lacks REPLICATION SLAVE, REPLICATION CLIENT"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "fix: as an administrator: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.*"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!("[FAIL] table: {DB}.{table} uses MyISAM")),
        "{out}"
    );

    let secret = "Xq7-wrong-pw";
    cfg.set("MYSQL_PASSWORD", secret);
    let (code, out, err) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0);
    assert!(
        out.contains("[FAIL] connect") && out.contains("access denied"),
        "{out}"
    );
    assert!(
        out.contains("check MYSQL_USER and MYSQL_PASSWORD"),
        "the fix names the settings:\n{out}"
    );
    assert!(
        !out.contains(secret) && !err.contains(secret),
        "the password is never printed:\n{out}\n{err}"
    );
    // `sluice run` stops too, at once (it does not retry "access denied" forever), and its
    // logs name the setting without printing the password.
    let t0 = std::time::Instant::now();
    let mut run = cfg.spawn()?;
    let code = run.wait(Duration::from_secs(30))?;
    let err = run.stderr_text();
    assert_ne!(code, 0, "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "{:?}:\n{err}",
        t0.elapsed()
    );
    assert!(
        err.to_ascii_lowercase().contains("access denied") && err.contains("MYSQL_PASSWORD"),
        "{err}"
    );
    assert!(
        !err.contains(secret),
        "the password is never logged:\n{err}"
    );

    cfg.set("MYSQL_TABLE", "no_such_table");
    cfg.set("MYSQL_PASSWORD", "pw");
    let (_, out, _) = cfg.run_to_end(&["check"])?;
    assert!(
        out.contains(&format!("[FAIL] table: {DB}.no_such_table does not exist")),
        "{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_server_id_and_corrupt_position_fail() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("chk_id")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .env("MYSQL_SERVER_ID", "1")
        .build()
        .await?;
    let (code, out, _) = p.cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0);
    assert!(
        out.contains("[FAIL] server_id: the server's server_id is 1"),
        "{out}"
    );

    let server_id = p.server_id.to_string();
    let cfg = p.cfg.set("MYSQL_SERVER_ID", &server_id);
    std::fs::write(cfg.position_file(), "{not json")?;
    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0);
    assert!(
        out.contains("[FAIL] position") && out.contains("is corrupt"),
        "{out}"
    );
    // `run` refuses to guess: it never silently restarts from the head.
    let (code, _, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains("is corrupt") && err.contains("delete it"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_purged_position_is_a_clear_error() -> anyhow::Result<()> {
    let (mut p, sluice) = TestPipeline::new("purged")
        .scratch()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .start()
        .await?;
    // A real position, saved by a real run.
    p.sql("INSERT INTO {t} VALUES (1)").await?;
    let (db, cfg) = (&mut p.db, &p.cfg);
    assert!(wait_until(Duration::from_secs(30), || sluice
        .stdout_lines()
        .len()
        == 1));
    assert_eq!(sluice.stop()?, 0);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(cfg.position_file())?)?;
    let file = saved["log_file"].as_str().unwrap().to_owned();

    // The server moves on and purges that file. MariaDB keeps a file until InnoDB has
    // checkpointed past it (its BINLOG_CHECKPOINT), so retry for a few seconds.
    let mut purged = false;
    for _ in 0..50 {
        db.query_drop("FLUSH BINARY LOGS").await?;
        let current = binlog_head(db).await?.0;
        db.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
            .await?;
        let logs: Vec<mysql_async::Row> = db.query("SHOW BINARY LOGS").await?;
        if logs.iter().all(|r| r.get::<String, _>(0).unwrap() != file) {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(purged, "{file} could not be purged");

    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!("[FAIL] position: saved position {file}:"))
            && out.contains("was purged"),
        "{out}"
    );
    assert!(out.contains("FORCE_SNAPSHOT=true"), "{out}");

    let (code, _, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("the saved position {file}:"))
            && err.contains("no longer on the server"),
        "{err}"
    );
    assert!(
        err.contains("FORCE_SNAPSHOT=true") && err.contains("delete the position file"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_broker_the_topic_and_a_test_record() -> anyhow::Result<()> {
    let p = TestPipeline::new("chk_kafka")
        .kafka()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .build()
        .await?;
    let (table, topic, server_id, state) = (&p.table, &p.topic, p.server_id, p.state_dir());

    // Metadata only: the topic does not exist, and nothing is produced.
    let cfg = &p.cfg;
    let (code, out, err) = cfg.run_to_end(&["check", "--no-produce"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("[PASS] kafka: reached"), "{out}");
    assert!(
        out.contains("[PASS] topic") && out.contains("does not exist"),
        "{out}"
    );
    assert!(!out.contains("produce"), "{out}");
    assert!(out.contains("[INFO] log_bin_compress"), "{out}");

    // Metadata only is also the default: nothing lands in the users' topic.
    let (code, out, err) = cfg.run_to_end(&["check"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("produce"), "{out}");

    // --produce: the topic is created if it is missing, and a test record is acknowledged.
    // (tansu creates the topic on the validate-only request above, so it may exist already.)
    let (code, out, err) = cfg.run_to_end(&["check", "--produce"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("[PASS] topic"), "{out}");
    assert!(out.contains("[PASS] produce"), "{out}");
    let records = read_topic(topic, 1, Duration::from_secs(10))?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key.as_deref(), Some("sluice.check"));
    assert!(records[0].headers.contains_key("sluice.check"));
    let (code, out, _) = cfg.run_to_end(&["check", "--produce"])?;
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("[PASS] topic: topic {topic:?} exists")),
        "{out}"
    );

    let fresh = format!("{topic}_2");
    let cfg2 = SluiceConfig::new(table, Some(&fresh), server_id, state);
    let (code, out, _) = cfg2.run_to_end(&["check", "--produce"])?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "[PASS] topic: topic {fresh:?} was missing and was created"
        )),
        "{out}"
    );

    // An unreachable broker fails within about 10 s, naming KAFKA_BROKERS.
    let mut cfg = cfg.clone();
    cfg.set("KAFKA_BROKERS", "127.0.0.1:1");
    let t0 = std::time::Instant::now();
    let (code, out, _) = cfg.run_to_end(&["check"])?;
    let took = t0.elapsed();
    eprintln!("check with an unreachable broker took {took:?}");
    assert_ne!(code, 0);
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        out.contains("[FAIL] kafka") && out.contains("KAFKA_BROKERS"),
        "{out}"
    );
    // Without a broker, check says where events go.
    let cfg = SluiceConfig::new(table, None, server_id, state);
    let (_, out, _) = cfg.run_to_end(&["check"])?;
    assert!(out.contains("[INFO] kafka: no broker configured"), "{out}");
    Ok(())
}
