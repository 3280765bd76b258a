//! Secrets never reach the logs, the errors or the endpoints: a full run, at debug level, with
//! every secret set (the MySQL password, SASL and SSL key passwords), then `sluice check`.

use std::io::{Read, Write};
use std::time::Duration;

use sluice_tests::*;

const MYSQL_SECRET: &str = "Pw-7f3a9c-mysql";
const SASL_SECRET: &str = "Sasl-91b2e0-kafka";
const KEY_SECRET: &str = "Key-44d1aa-ssl";

fn get(addr: &str, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs_of_a_full_run_or_of_check() -> anyhow::Result<()> {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("127.0.0.1:{}", l.local_addr()?.port())
    };
    let (_, server_id) = unique("s");
    let user = format!("sec{server_id}");
    let (mut p, sluice) = TestPipeline::new("secrets")
        .kafka()
        .setup(format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{MYSQL_SECRET}'"))
        .setup(format!(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'%'"
        ))
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))")
        .env("MYSQL_USER", user.clone())
        .env("MYSQL_PASSWORD", MYSQL_SECRET)
        .env("SLUICE_LOG", "debug")
        .env("METRICS_ADDR", addr.clone())
        // Ignored by librdkafka over a plaintext connection, but held and passed like any
        // setting: what matters is that they are never printed.
        .config(format!(
            "[kafka.properties]\n\"sasl.password\" = \"{SASL_SECRET}\"\n\"ssl.key.password\" = \"{KEY_SECRET}\"\n"
        ))
        .start()
        .await?;
    p.sql("INSERT INTO {t} VALUES (1, 'a'), (2, 'b')").await?;
    assert_eq!(p.consume(2)?.len(), 2, "{}", sluice.stderr_text());
    let endpoints = get(&addr, "/metrics") + &get(&addr, "/health");
    let stderr = sluice.stderr_text();
    assert_eq!(sluice.stop()?, 0);
    let toml = p.state_dir().join("sluice.toml").display().to_string();
    let (_, check_out, check_err) = p.cfg.run_to_end(&["check", "--config", &toml])?;
    // A wrong password: the error names the user, never the password tried.
    let mut wrong = p.cfg.clone();
    wrong.set("MYSQL_PASSWORD", &format!("{MYSQL_SECRET}-wrong"));
    let (code, wrong_out, wrong_err) = wrong.run_to_end(&["run", "--config", &toml])?;
    assert_ne!(code, 0);
    assert!(wrong_err.contains("MYSQL_PASSWORD"), "{wrong_err}");
    assert!(stderr.len() > 1000, "a debug log was written: {stderr}");
    for (what, text) in [
        ("run's log", &stderr),
        ("/metrics and /health", &endpoints),
        ("check's report", &check_out),
        ("check's log", &check_err),
        ("a refused start", &(wrong_out + &wrong_err)),
    ] {
        for secret in [MYSQL_SECRET, SASL_SECRET, KEY_SECRET] {
            assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
        }
    }
    p.sql(format!("DROP USER '{user}'@'%'")).await?;
    Ok(())
}
