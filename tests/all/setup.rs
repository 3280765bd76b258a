//! `sluice setup` against the real MariaDB: it creates a user with exactly the grants Sluice
//! needs, a second run changes nothing, and `sluice check` then passes as that user (and `sluice
//! run` snapshots and streams as it). Missing, wrong or weak administrator credentials create
//! nothing, and an existing user's password changes only on request. No password is printed.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_tests::*;

/// `SHOW GRANTS FOR 'user'@'%'`, sorted, without MariaDB's ` IDENTIFIED BY PASSWORD '<hash>'`;
/// `None` when the account does not exist.
async fn grants(db: &mut mysql_async::Conn, user: &str) -> anyhow::Result<Option<Vec<String>>> {
    let shown: Result<Vec<String>, _> = db.query(format!("SHOW GRANTS FOR '{user}'@'%'")).await;
    match shown {
        Ok(mut lines) => {
            for l in &mut lines {
                if let Some(i) = l.find(" IDENTIFIED BY PASSWORD") {
                    l.truncate(i);
                }
            }
            lines.sort();
            Ok(Some(lines))
        }
        Err(mysql_async::Error::Server(e)) if e.code == 1141 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Sets the new user and the administrator on a pipeline's configuration.
fn as_new_user(cfg: &mut SluiceConfig, user: &str, password: &str) {
    cfg.set("MYSQL_USER", user)
        .set("MYSQL_PASSWORD", password)
        .set("MYSQL_ADMIN_USER", "admin")
        .set("MYSQL_ADMIN_PASSWORD", "admin-pw");
}

fn assert_no_secret(out: &str, err: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !out.contains(s) && !err.contains(s),
            "{s:?} is printed:\n{out}\n{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_creates_the_user_once_and_check_passes_for_it() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("setup")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .build()
        .await?;
    let (user, password) = (
        format!("setup{}", p.server_id),
        format!("pw-{}-S3t", p.server_id),
    );
    p.sql(format!("DROP USER IF EXISTS '{user}'@'%'")).await?;
    as_new_user(&mut p.cfg, &user, &password);
    let secrets = [password.as_str(), "admin-pw"];

    // A dry run prints the statements and creates nothing.
    let (code, out, err) = p.cfg.run_to_end(&["setup", "--dry-run"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "would run: CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY <MYSQL_PASSWORD>"
        )),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert_no_secret(&out, &err, &secrets);
    assert_eq!(grants(&mut p.db, &user).await?, None);

    let (code, out, err) = p.cfg.run_to_end(&["setup"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_no_secret(&out, &err, &secrets);
    for line in [
        "[PASS] log_bin".to_owned(),
        "[PASS] binlog_format".to_owned(),
        "[PASS] binlog_row_image".to_owned(),
        "[PASS] server_id".to_owned(),
        format!("ran: CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY <MYSQL_PASSWORD>"),
        format!("ran: GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%'"),
        format!("ran: GRANT SELECT ON `{DB}`.`{}` TO '{user}'@'%'", p.table),
        format!("export MYSQL_USER={user}"),
        format!("export MYSQL_TABLE={}", p.table),
        "export MYSQL_PASSWORD=...".to_owned(),
        "done: 3 statement(s) ran".to_owned(),
    ] {
        assert!(out.contains(&line), "{line:?} missing:\n{out}");
    }
    let first = grants(&mut p.db, &user).await?.expect("the user exists");
    assert_eq!(
        first,
        sorted(vec![
            format!("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `{user}`@`%`"),
            format!("GRANT SELECT ON `{DB}`.`{}` TO `{user}`@`%`", p.table),
        ])
    );

    // Again: nothing to change, and the grants are the same.
    let (code, out, err) = p.cfg.run_to_end(&["setup"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing to change"), "{out}");
    assert!(!out.contains("ran:"), "{out}");
    assert_eq!(grants(&mut p.db, &user).await?, Some(first));

    let (code, out, err) = p.cfg.run_to_end(&["check"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("all checks passed"), "{out}");
    assert!(
        out.contains("[PASS] connect: connected to") && out.contains(&user),
        "{out}"
    );
    assert!(out.contains("[PASS] privileges"), "{out}");

    p.sql(format!("DROP USER '{user}'@'%'")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_for_a_pattern_grants_the_database_and_the_user_snapshots_and_streams(
) -> anyhow::Result<()> {
    let mut p = TestPipeline::new("setup_pat")
        .setup("CREATE TABLE {t}_a (id INT PRIMARY KEY)")
        .setup("INSERT INTO {t}_a VALUES (1)")
        .tables("{t}_*")
        .env("INITIAL_SNAPSHOT", "true")
        .build()
        .await?;
    let (user, password) = (
        format!("setup{}", p.server_id),
        format!("pw-{}-P4t", p.server_id),
    );
    p.sql(format!("DROP USER IF EXISTS '{user}'@'%'")).await?;
    as_new_user(&mut p.cfg, &user, &password);

    let (code, out, err) = p.cfg.run_to_end(&["setup"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_no_secret(&out, &err, &[password.as_str(), "admin-pw"]);
    assert!(
        out.contains(&format!("ran: GRANT SELECT ON `{DB}`.* TO '{user}'@'%'")),
        "{out}"
    );
    assert!(out.contains("export INITIAL_SNAPSHOT=true"), "{out}");
    assert_eq!(
        grants(&mut p.db, &user).await?,
        Some(sorted(vec![
            format!("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `{user}`@`%`"),
            format!("GRANT SELECT ON `{DB}`.* TO `{user}`@`%`"),
        ]))
    );
    let (code, out, err) = p.cfg.run_to_end(&["setup"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing to change"), "{out}");

    let (code, out, err) = p.cfg.run_to_end(&["check"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("all checks passed"), "{out}");
    assert!(out.contains("[PASS] snapshot"), "{out}");

    // The user is enough for the pipeline: the snapshot, the stream, and a table created later.
    let sluice = p.start()?;
    p.sql("INSERT INTO {t}_a VALUES (2)").await?;
    p.sql("CREATE TABLE {t}_b (id INT PRIMARY KEY)").await?;
    p.sql("INSERT INTO {t}_b VALUES (3)").await?;
    let seen = |lines: &[String]| -> Vec<(String, String)> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["kind"].as_str().unwrap_or_default().to_owned(),
                    format!(
                        "{}.{}",
                        v["table"].as_str().unwrap_or_default(),
                        v["columnvalues"][0]
                    ),
                )
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || seen(&sluice.stdout_lines())
            .len()
            >= 3),
        "{}",
        sluice.stderr_text()
    );
    let t = &p.table;
    assert_eq!(
        seen(&sluice.stdout_lines()),
        [
            ("snapshot_insert".to_owned(), format!("{t}_a.1")),
            ("insert".to_owned(), format!("{t}_a.2")),
            ("insert".to_owned(), format!("{t}_b.3")),
        ]
    );
    assert_eq!(sluice.stop()?, 0);
    p.sql(format!("DROP USER '{user}'@'%'")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_wrong_or_weak_administrator_creates_nothing() -> anyhow::Result<()> {
    let mut p = TestPipeline::new("setup_neg")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .build()
        .await?;
    let (user, password) = (
        format!("setup{}", p.server_id),
        format!("pw-{}-N5t", p.server_id),
    );
    p.sql(format!("DROP USER IF EXISTS '{user}'@'%'")).await?;
    let cfg = &mut p.cfg;
    cfg.set("MYSQL_USER", &user)
        .set("MYSQL_PASSWORD", &password);

    // No credentials, and no terminal to ask on.
    let (code, out, err) = cfg.run_to_end(&["setup"])?;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("MYSQL_ADMIN_USER and MYSQL_ADMIN_PASSWORD not set"),
        "{err}"
    );

    let wrong = "Zz9-not-the-admin-pw";
    cfg.set("MYSQL_ADMIN_USER", "admin")
        .set("MYSQL_ADMIN_PASSWORD", wrong);
    let (code, out, err) = cfg.run_to_end(&["setup"])?;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("cannot log in as the administrator")
            && err.contains("MYSQL_ADMIN_PASSWORD")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_no_secret(&out, &err, &[wrong, password.as_str()]);
    assert_eq!(grants(&mut p.db, &user).await?, None);

    // An account that may not create users (Sluice's own): a clear error, and no user.
    let cfg = &mut p.cfg;
    cfg.set("MYSQL_ADMIN_USER", "sluice")
        .set("MYSQL_ADMIN_PASSWORD", "sluice-pw");
    let (code, out, err) = cfg.run_to_end(&["setup"])?;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("the administrator lacks a privilege") && err.contains("GRANT OPTION"),
        "{err}"
    );
    assert_no_secret(&out, &err, &["sluice-pw", password.as_str()]);
    assert_eq!(grants(&mut p.db, &user).await?, None);

    // A user that exists with another password: nothing changes without --update-password.
    p.sql(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'other-pw'"))
        .await?;
    p.sql(format!("GRANT SELECT ON {DB}.{{t}} TO '{user}'@'%'"))
        .await?;
    let before = grants(&mut p.db, &user).await?;
    as_new_user(&mut p.cfg, &user, &password);
    let (code, out, err) = p.cfg.run_to_end(&["setup"])?;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("MYSQL_PASSWORD is not its password") && err.contains("--update-password"),
        "{err}"
    );
    assert_eq!(grants(&mut p.db, &user).await?, before);

    // With it: the password is set, and only the missing grant is added.
    let (code, out, err) = p.cfg.run_to_end(&["setup", "--update-password"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "ran: ALTER USER '{user}'@'%' IDENTIFIED BY <MYSQL_PASSWORD>"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "ran: GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%'"
        )) && !out.contains("ran: GRANT SELECT"),
        "{out}"
    );
    assert_no_secret(&out, &err, &[password.as_str(), "admin-pw"]);
    let (code, out, err) = p.cfg.run_to_end(&["setup", "--update-password"])?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing to change"), "{out}");

    p.sql(format!("DROP USER '{user}'@'%'")).await?;
    Ok(())
}
