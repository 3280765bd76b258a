//! `MYSQL_SSL_*` against a real MariaDB that requires TLS (`require_secure_transport=ON`) and
//! whose certificate comes from a CA of its own (`scripts/services.sh tls`).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use sluice_tests::*;

fn tls_port() -> u16 {
    env()["SLUICE_TEST_MYSQL_TLS_PORT"].parse().expect("a port")
}

fn tls_file(name: &str) -> String {
    format!("{}/{name}", env()["SLUICE_TEST_TLS_DIR"])
}

/// An admin connection to the TLS server (its certificate is not checked here).
async fn tls_admin() -> anyhow::Result<Conn> {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(tls_port())
        .user(Some("admin"))
        .pass(Some("admin-pw"))
        .prefer_socket(false)
        .ssl_opts(Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ));
    Ok(Conn::new(opts).await?)
}

/// A config for table `table` of the TLS server, with the stdout sink.
fn config(table: &str, server_id: u32, state: &std::path::Path) -> SluiceConfig {
    let mut cfg = SluiceConfig::new(table, None, server_id, state);
    cfg.set("MYSQL_HOST", "127.0.0.1")
        .set("MYSQL_PORT", &tls_port().to_string());
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_streams_over_verified_tls_and_check_says_what_to_set_without_it(
) -> anyhow::Result<()> {
    services("tls")?;
    let (table, server_id) = unique("tls");
    let mut db = tls_admin().await?;
    db.query_drop(format!("CREATE DATABASE IF NOT EXISTS {DB}"))
        .await?;
    db.query_drop(format!(
        "CREATE TABLE {DB}.{table} (id INT PRIMARY KEY, v VARCHAR(20))"
    ))
    .await?;
    let state = tempfile::tempdir()?;
    let mut cfg = config(&table, server_id, state.path());

    // Without TLS the server refuses, and `sluice check` names the settings.
    cfg.set("MYSQL_SSL_MODE", "disabled");
    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("require_secure_transport") && out.contains("MYSQL_SSL_MODE=required"),
        "{out}"
    );
    // `sluice run` stops at start with the same advice (it is not retried forever).
    let (code, _, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(err.contains("MYSQL_SSL_MODE=required"), "{err}");

    // A CA that did not sign the server's certificate: the handshake fails, with the fix.
    cfg.set("MYSQL_SSL_MODE", "verify_ca")
        .set("MYSQL_SSL_CA", &tls_file("client-cert.pem"));
    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("MYSQL_SSL_CA is the CA that signed"), "{out}");

    // The right CA, and the certificate names 127.0.0.1: check passes and rows stream.
    cfg.set("MYSQL_SSL_MODE", "verify_identity")
        .set("MYSQL_SSL_CA", &tls_file("ca.pem"));
    let (code, out, err) = cfg.run_to_end(&["check"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all checks passed"), "{out}");
    let sluice = cfg.start()?;
    db.query_drop(format!(
        "INSERT INTO {DB}.{table} VALUES (1, 'over'), (2, 'tls')"
    ))
    .await?;
    assert!(
        wait_until(Duration::from_secs(30), || sluice.stdout_lines().len() >= 2),
        "{}",
        sluice.stderr_text()
    );
    let rows: Vec<serde_json::Value> = sluice
        .stdout_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["columnvalues"], serde_json::json!([1, "over"]));
    assert_eq!(rows[1]["columnvalues"], serde_json::json!([2, "tls"]));
    assert_eq!(sluice.stop()?, 0);

    // `required` encrypts without checking the certificate; `preferred` (the default) too.
    for mode in ["required", "preferred"] {
        let mut c = config(&table, server_id, state.path());
        c.set("MYSQL_SSL_MODE", mode);
        let (code, out, err) = c.run_to_end(&["check"])?;
        assert_eq!(code, 0, "{mode}: {out}{err}");
    }
    db.query_drop(format!("DROP TABLE {DB}.{table}")).await?;
    Ok(())
}

/// A user that must present a client certificate (`REQUIRE X509`) connects with
/// `MYSQL_SSL_CERT` and `MYSQL_SSL_KEY`, and is refused without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates_an_x509_user() -> anyhow::Result<()> {
    services("tls")?;
    let (table, server_id) = unique("x509");
    let user = format!("x{server_id}");
    let mut db = tls_admin().await?;
    db.query_drop(format!("CREATE DATABASE IF NOT EXISTS {DB}"))
        .await?;
    db.query_drop(format!("CREATE TABLE {DB}.{table} (id INT PRIMARY KEY)"))
        .await?;
    db.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw' REQUIRE X509"
    ))
    .await?;
    db.query_drop(format!(
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'%'"
    ))
    .await?;
    let state = tempfile::tempdir()?;
    let mut cfg = config(&table, server_id, state.path());
    cfg.set("MYSQL_USER", &user)
        .set("MYSQL_PASSWORD", "pw")
        .set("MYSQL_SSL_MODE", "verify_ca")
        .set("MYSQL_SSL_CA", &tls_file("ca.pem"));
    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0, "no client certificate: refused: {out}");
    assert!(out.to_lowercase().contains("access denied"), "{out}");
    cfg.set("MYSQL_SSL_CERT", &tls_file("client-cert.pem"))
        .set("MYSQL_SSL_KEY", &tls_file("client-key.pem"));
    let (code, out, err) = cfg.run_to_end(&["check"])?;
    assert_eq!(code, 0, "{out}{err}");
    db.query_drop(format!("DROP USER '{user}'@'%'")).await?;
    db.query_drop(format!("DROP TABLE {DB}.{table}")).await?;
    Ok(())
}
