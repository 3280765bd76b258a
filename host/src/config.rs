//! Configuration: an optional TOML file, overridden by the contract's environment variables.
//!
//! Design note: the environment variable names and defaults are the Python app's, exactly
//! (`shared/CONTRACT.md`). The TOML file holds the same settings under sections plus what only
//! a file can express (per-transform settings, producer tuning). Loading is pure: it takes a
//! lookup function, so tests do not touch the process environment. The password is never
//! printed: `Debug` redacts it.
//!
//! Size: one loader per section over a shared `setting` helper; the file is long because the contract's environment variables are many, each with its TOML key, default and error. Its tests live in `config/tests.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::encode::KeyMode;
use crate::transform::{FailurePolicy, FileTransform, TransformSpec};

/// Sluice's replica server id when `MYSQL_SERVER_ID` is not set.
pub(crate) const DEFAULT_SERVER_ID: u32 = 4079;

/// Everything `sluice run` and `sluice check` need.
#[derive(Clone)]
pub struct Config {
    pub mysql: MysqlConfig,
    pub snapshot: SnapshotConfig,
    pub state_dir: PathBuf,
    /// Where a pipeline with no saved position resumes from (`STATE_RECOVER`, `state.recover`).
    pub recover: Recover,
    /// `None`: the embedded default, events go to stdout.
    pub kafka: Option<KafkaConfig>,
    pub pipeline: PipelineConfig,
    /// The transform chain, in order (`TRANSFORMS`, `[[transforms]]`).
    pub transforms: Vec<TransformSpec>,
    /// Watch the `.wasm` files and swap in new versions (`--watch`, `engine.hot_reload`).
    pub hot_reload: bool,
    /// Where precompiled transforms are cached (default `{state_dir}/transform-cache`).
    pub transform_cache_dir: PathBuf,
    /// Where `/metrics` (Prometheus) and `/health` are served (`METRICS_ADDR`,
    /// `metrics.addr`); `None`: not served.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// The source database.
#[derive(Clone)]
pub struct MysqlConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    /// Database of the captured tables (`MYSQL_SCHEMA`, default `MYSQL_DATABASE`).
    pub schema: String,
    /// `MYSQL_TABLE` (`mysql.tables`) as given: names, `db.table` names, and patterns.
    pub tables: Vec<String>,
    /// `db.table` glob patterns of captured tables: `MYSQL_TABLE`'s patterns and
    /// `MYSQL_INCLUDE` (`mysql.include`), each qualified with `schema` where it names no
    /// database.
    pub include: Vec<crate::source::TablePattern>,
    /// `MYSQL_EXCLUDE` (`mysql.exclude`): tables never captured, named or matched.
    pub exclude: Vec<crate::source::TablePattern>,
    pub snapshot_host: String,
    pub server_id: u32,
    /// What to do with a statement that removes or replaces a captured table's rows without row
    /// events (`ON_TABLE_RESET`, `mysql.on_table_reset`).
    pub on_table_reset: crate::source::ResetPolicy,
    /// Capture tables that are children of `ON DELETE/UPDATE CASCADE` or `SET NULL` foreign keys,
    /// whose cascaded changes the binlog does not hold (`ACCEPT_FK_CASCADES`,
    /// `mysql.accept_fk_cascades`). Off: `sluice run` refuses such tables.
    pub accept_fk_cascades: bool,
    /// TLS to the server (`MYSQL_SSL_*`, `mysql.ssl_*`).
    pub ssl: SslConfig,
}

/// How Sluice's MySQL connections use TLS, as the `mysql` client's `--ssl-mode` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain connections.
    Disabled,
    /// TLS when the server offers it (not verified), plain otherwise.
    #[default]
    Preferred,
    /// TLS or fail; the certificate is not verified.
    Required,
    /// TLS with the server's certificate verified against `MYSQL_SSL_CA` (or the public roots),
    /// whatever name it carries.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name `MYSQL_HOST`.
    VerifyIdentity,
}

impl SslMode {
    /// The mode as `MYSQL_SSL_MODE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }
}

/// TLS settings of the MySQL connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslConfig {
    pub mode: SslMode,
    /// PEM file of the certificate authorities to trust (`MYSQL_SSL_CA`); without it the public
    /// roots are used.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain and its key (`MYSQL_SSL_CERT`, `MYSQL_SSL_KEY`), for servers
    /// that require X.509 authentication.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The initial snapshot (`INITIAL_SNAPSHOT`, `[snapshot]`; see `docs/SNAPSHOT.md`).
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    pub initial: bool,
    /// Rows per chunk read and per batch published (`SNAPSHOT_BATCH_SIZE`).
    pub batch_size: usize,
    pub force: bool,
    /// Re-snapshot by itself when the saved position was purged (`SNAPSHOT_WHEN_NEEDED`,
    /// `snapshot.when_needed`), as Debezium's `when_needed` mode does.
    pub when_needed: bool,
    /// How often a non-terminal run logs `snapshot progress` (`snapshot.progress_interval_ms`).
    pub progress_interval_ms: u64,
    /// Bytes of snapshot rows (estimated) in flight before Kafka's acknowledgement
    /// (`snapshot.max_inflight_bytes`): lower than streaming's, to keep a snapshot of any size
    /// within a small memory bound.
    pub max_inflight_bytes: usize,
}

impl SnapshotConfig {
    /// Whether a snapshot may be taken at all by this configuration.
    pub fn enabled(&self) -> bool {
        self.initial || self.force || self.when_needed
    }
}

#[derive(Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub key: KeyMode,
    /// Extra librdkafka properties from the TOML file (`[kafka.properties]`, or its older name
    /// `[kafka.producer]`): every client gets them, less the producer-only ones for the admin
    /// and read-back clients. They can hold secrets (`sasl.password`, ...): `Debug` redacts
    /// those.
    pub producer: BTreeMap<String, String>,
    /// What to do with an event Kafka refuses as too large (`kafka.on_oversize`).
    pub on_oversize: OversizePolicy,
    /// Where oversized events go under [`OversizePolicy::DeadLetter`] (`kafka.dead_letter_topic`).
    pub dead_letter_topic: Option<String>,
    /// Read back what each partition holds at start and skip it, so that restarts repeat
    /// nothing (`EXACTLY_ONCE`, `exactly_once`; on by default). See `docs/EXACTLY_ONCE.md`.
    pub exactly_once: bool,
    /// Topics that transforms route to, read back by a recovery from Kafka with an empty state
    /// directory (`kafka.recover_topics`); the state directory records them otherwise.
    pub recover_topics: Vec<String>,
    /// Partitions of each topic Sluice creates (`kafka.partitions`, default 1).
    pub partitions: i32,
    /// Replication factor of each topic Sluice creates (`kafka.replication_factor`, default 1).
    pub replication_factor: i32,
}

impl KafkaConfig {
    /// Whether `topic` holds `{schema}` or `{table}`: a topic per table.
    pub fn topic_per_table(&self) -> bool {
        self.topic.contains("{schema}") || self.topic.contains("{table}")
    }

    /// The topic of a table's events: `topic` with `{schema}` and `{table}` filled in, each
    /// character Kafka does not allow in a topic name (outside `[a-zA-Z0-9._-]`) written `_`.
    pub fn topic_for(&self, schema: &str, table: &str) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                    _ => '_',
                })
                .collect()
        };
        self.topic
            .replace("{schema}", &clean(schema))
            .replace("{table}", &clean(table))
    }
}

/// Where a pipeline without a saved position starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Recover {
    /// From the state directory only: without a position file, at the binlog's current head
    /// (or with the initial snapshot).
    #[default]
    Local,
    /// Without a position file, from the output topics: every message carries the position up
    /// to which everything before it was acknowledged (exactly-once mode only).
    Kafka,
}

/// What happens to an event that is over the producer's or the broker's message size limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizePolicy {
    /// Stop Sluice with an error naming `message.max.bytes` (the default): nothing is skipped.
    #[default]
    Halt,
    /// Publish a small record to `kafka.dead_letter_topic` instead (headers describe the event;
    /// the value is omitted) and carry on.
    DeadLetter,
}

/// Whether a librdkafka property holds a secret that must never be printed.
pub(crate) fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("jaas")
        || k == "ssl.key.pem"
        || k == "sasl.oauthbearer.config"
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let producer: BTreeMap<&str, &str> = self
            .producer
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_property(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("producer", &producer)
            .field("on_oversize", &self.on_oversize)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("exactly_once", &self.exactly_once)
            .field("recover_topics", &self.recover_topics)
            .finish()
    }
}

/// Tuning of the stages.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Rows per batch before a large transaction is cut into pieces.
    pub max_batch_rows: usize,
    /// Bytes of events (estimated) per batch before a large transaction is cut into pieces.
    pub max_batch_bytes: usize,
    /// Batches queued between stages (the backpressure bound).
    pub channel_capacity: usize,
    /// How often an acknowledged position is written to disk, at most.
    pub checkpoint_interval_ms: u64,
    /// Bytes of events (estimated) in flight between the source and Kafka's acknowledgement.
    pub max_inflight_bytes: usize,
    /// How long a stop signal waits for in-flight events to be acknowledged before the stages
    /// are abandoned (the acknowledged position is still saved).
    pub shutdown_timeout_ms: u64,
}

/// Default of `snapshot.max_inflight_bytes`: 16 MiB (measured: no slower than 32 MiB, a third less peak memory).
pub(crate) const DEFAULT_SNAPSHOT_INFLIGHT_BYTES: usize = 16 << 20;

/// Default of `pipeline.max_inflight_bytes`: 64 MiB. Measured: no slower than 256 MiB into Kafka
/// (the sink keeps up with the reader, or the broker is the limit), and it keeps the peak RSS of a
/// catch-up well under 150 MB whatever the transaction sizes (256 MiB reached 165–194 MB).
pub(crate) const DEFAULT_MAX_INFLIGHT_BYTES: usize = 64 << 20;

impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("tables", &self.tables)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("snapshot_host", &self.snapshot_host)
            .field("server_id", &self.server_id)
            .field("on_table_reset", &self.on_table_reset)
            .field("accept_fk_cascades", &self.accept_fk_cascades)
            .field("ssl", &self.ssl)
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("mysql", &self.mysql)
            .field("snapshot", &self.snapshot)
            .field("state_dir", &self.state_dir)
            .field("recover", &self.recover)
            .field("kafka", &self.kafka)
            .field("pipeline", &self.pipeline)
            .field("transforms", &self.transforms)
            .field("hot_reload", &self.hot_reload)
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

/// A setting that is missing or malformed. Each names the variable and the TOML key to set.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{var} is required: set the environment variable {var} or `{toml}` in the config file"
    )]
    Missing {
        var: &'static str,
        toml: &'static str,
    },
    #[error("{var}={value:?} is not valid: expected {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot read the config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML for Sluice: {message}")]
    ParseFile { path: PathBuf, message: String },
}

/// The TOML file's shape. Every field is optional; the environment fills in or overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    mysql: FileMysql,
    #[serde(default)]
    snapshot: FileSnapshot,
    #[serde(default)]
    state: FileState,
    #[serde(default)]
    kafka: FileKafka,
    #[serde(default)]
    pipeline: FilePipeline,
    #[serde(default)]
    transforms: Vec<FileTransform>,
    #[serde(default)]
    engine: FileEngine,
    exactly_once: Option<bool>,
    #[serde(default)]
    metrics: FileMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    addr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEngine {
    hot_reload: Option<bool>,
    cache_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMysql {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    schema: Option<String>,
    tables: Option<Vec<String>>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    snapshot_host: Option<String>,
    server_id: Option<u32>,
    on_table_reset: Option<String>,
    accept_fk_cascades: Option<bool>,
    ssl_mode: Option<String>,
    ssl_ca: Option<PathBuf>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSnapshot {
    initial: Option<bool>,
    batch_size: Option<usize>,
    force: Option<bool>,
    when_needed: Option<bool>,
    progress_interval_ms: Option<u64>,
    max_inflight_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileState {
    dir: Option<PathBuf>,
    recover: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKafka {
    brokers: Option<String>,
    topic: Option<String>,
    key: Option<KeyMode>,
    #[serde(default)]
    producer: BTreeMap<String, String>,
    /// The same table as `producer` under its general name.
    #[serde(default)]
    properties: BTreeMap<String, String>,
    on_oversize: Option<OversizePolicy>,
    dead_letter_topic: Option<String>,
    recover_topics: Option<Vec<String>>,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePipeline {
    max_batch_rows: Option<usize>,
    max_batch_bytes: Option<usize>,
    channel_capacity: Option<usize>,
    checkpoint_interval_ms: Option<u64>,
    max_inflight_bytes: Option<usize>,
    shutdown_timeout_ms: Option<u64>,
}

impl Config {
    /// Loads from the process environment and an optional file.
    pub fn from_env(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file, &|k| std::env::var(k).ok())
    }

    /// Loads from `env` (a lookup such as `std::env::var`) and an optional file.
    pub(crate) fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let fc = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let src = Source { env };
        let mysql = src.mysql(fc.mysql)?;
        let snapshot = src.snapshot(fc.snapshot)?;
        let state_dir = src
            .var("Quix__State__Dir")
            .map(PathBuf::from)
            .or(fc.state.dir)
            .unwrap_or_else(|| PathBuf::from("state"));
        let kafka = src.kafka(fc.kafka, fc.exactly_once)?;
        let recover = src.recover(fc.state.recover, kafka.as_ref())?;
        let pipeline = pipeline(fc.pipeline)?;
        let transforms = src.transforms(fc.transforms, kafka.is_some())?;
        let transform_cache_dir = fc
            .engine
            .cache_dir
            .unwrap_or_else(|| state_dir.join("transform-cache"));
        Ok(Config {
            mysql,
            snapshot,
            state_dir,
            recover,
            kafka,
            pipeline,
            transforms,
            hot_reload: fc.engine.hot_reload.unwrap_or(false),
            transform_cache_dir,
            metrics_addr: src.metrics_addr(fc.metrics.addr)?,
        })
    }

    /// The `(schema, table)` pairs named (not matched by a pattern). A table may be written
    /// `db.table` to capture it from another database than `MYSQL_SCHEMA`. With patterns, the
    /// tables they match now come from the server: `source::objects::captured_tables`.
    pub fn captured_tables(&self) -> Vec<(String, String)> {
        self.mysql
            .tables
            .iter()
            .filter(|t| !crate::source::TablePattern::is_glob(t))
            .map(|t| match t.split_once('.') {
                Some((db, table)) => (db.to_owned(), table.to_owned()),
                None => (self.mysql.schema.clone(), t.clone()),
            })
            .collect()
    }

    /// Which tables the stream captures: the named ones, and those the patterns match as it
    /// goes (a table created mid-stream from its first row).
    pub fn table_filter(&self) -> crate::source::TableFilter {
        crate::source::TableFilter::new(self.captured_tables())
            .with_patterns(self.mysql.include.clone(), self.mysql.exclude.clone())
    }

    /// What names the pipeline's state files (`state::position_file_name`): `MYSQL_TABLE` as
    /// given, plus `include:`/`exclude:` entries for the patterns. Without patterns, just the
    /// tables, so the single-table name is the contract's.
    pub fn state_tables(&self) -> Vec<String> {
        let mut key = self.mysql.tables.clone();
        if self.has_patterns() {
            key.extend(self.mysql.include.iter().map(|p| format!("include:{p}")));
            key.extend(self.mysql.exclude.iter().map(|p| format!("exclude:{p}")));
        }
        key
    }

    /// Whether patterns choose the captured tables.
    pub fn has_patterns(&self) -> bool {
        !self.mysql.include.is_empty() || !self.mysql.exclude.is_empty()
    }

    /// The position file's name (see the README): one file for the whole pipeline.
    #[cfg(test)]
    pub(crate) fn position_file_name(&self) -> String {
        crate::state::position_file_name(&self.mysql.schema, &self.state_tables())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

const EXPECTED_PORT: &str = "a TCP port number such as 3306";
const EXPECTED_SERVER_ID: &str = "a replica server id between 1 and 4294967295";
const EXPECTED_BATCH_SIZE: &str = "a positive number of rows such as 1000";
const EXPECTED_BOOL: &str = "`true` or `false`";

/// The environment, read the way every setting reads it: a variable overrides the file's value,
/// and a variable that is set but blank counts as unset. Each loader below takes its section of
/// the file and names, for every setting, the variable, the TOML key and the default.
struct Source<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    /// The variable's value, unless it is unset or blank.
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    /// A string that must be set, in the environment or the file.
    fn required(
        &self,
        var: &'static str,
        toml: &'static str,
        file: Option<String>,
    ) -> Result<String, ConfigError> {
        self.var(var)
            .or(file)
            .ok_or(ConfigError::Missing { var, toml })
    }

    /// A value parsed from the variable, else the file's, else `default`.
    fn parse_or<T: std::str::FromStr>(
        &self,
        var: &'static str,
        expected: &'static str,
        file: Option<T>,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.var(var) {
            Some(v) => parse(&v, var, expected),
            None => Ok(file.unwrap_or(default)),
        }
    }

    /// Like [`Source::parse_or`], refusing zero; the error names the variable or the TOML key,
    /// whichever the zero came from.
    fn positive_or<T: std::str::FromStr + Default + PartialEq>(
        &self,
        var: &'static str,
        toml: &'static str,
        expected: &'static str,
        file: Option<T>,
        default: T,
    ) -> Result<T, ConfigError> {
        let (value, from) = match self.var(var) {
            Some(v) => (parse(&v, var, expected)?, var),
            None => (file.unwrap_or(default), toml),
        };
        nonzero(value, from, expected)
    }

    /// `METRICS_ADDR` (`metrics.addr`): `host:port` or `:port` (all interfaces).
    fn metrics_addr(
        &self,
        file: Option<String>,
    ) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let Some(v) = self
            .var("METRICS_ADDR")
            .or(file.filter(|v| !v.trim().is_empty()))
        else {
            return Ok(None);
        };
        let t = v.trim();
        let full = if t.starts_with(':') {
            format!("0.0.0.0{t}")
        } else {
            t.to_owned()
        };
        use std::net::ToSocketAddrs;
        match full.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => Ok(Some(a)),
            _ => Err(ConfigError::Invalid {
                var: "METRICS_ADDR",
                value: v,
                expected: "an address to serve /metrics and /health on, such as 0.0.0.0:9187, 127.0.0.1:9187 or :9187",
            }),
        }
    }

    /// A boolean (`true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`), else the file's, else false.
    fn bool_or(&self, var: &'static str, file: Option<bool>) -> Result<bool, ConfigError> {
        match self.var(var) {
            None => Ok(file.unwrap_or(false)),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: v,
                    expected: EXPECTED_BOOL,
                }),
            },
        }
    }

    /// A comma-separated list from the variable (blank entries dropped), else the file's list.
    fn list(&self, var: &'static str, file: Option<Vec<String>>) -> Vec<String> {
        match self.var(var) {
            Some(v) => v
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            None => file.unwrap_or_default(),
        }
    }

    /// `[mysql]`.
    fn mysql(&self, mut f: FileMysql) -> Result<MysqlConfig, ConfigError> {
        let ssl = self.ssl(&mut f)?;
        let host = self.required("MYSQL_HOST", "mysql.host", f.host)?;
        let port = self.parse_or("MYSQL_PORT", EXPECTED_PORT, f.port, 3306)?;
        let user = self.required("MYSQL_USER", "mysql.user", f.user)?;
        // An empty password is a legitimate value, so only absence is an error.
        let password = (self.env)("MYSQL_PASSWORD")
            .or(f.password)
            .ok_or(ConfigError::Missing {
                var: "MYSQL_PASSWORD",
                toml: "mysql.password",
            })?;
        let database = self.required("MYSQL_DATABASE", "mysql.database", f.database)?;
        let schema = self
            .var("MYSQL_SCHEMA")
            .or(f.schema)
            .unwrap_or_else(|| database.clone());
        let tables = self.list("MYSQL_TABLE", f.tables);
        use crate::source::TablePattern;
        let patterns = |list: Vec<String>| -> Vec<TablePattern> {
            list.iter()
                .map(|t| TablePattern::parse(t, &schema))
                .collect()
        };
        let mut include = patterns(
            tables
                .iter()
                .filter(|t| TablePattern::is_glob(t))
                .cloned()
                .collect(),
        );
        include.extend(patterns(self.list("MYSQL_INCLUDE", f.include)));
        let exclude = patterns(self.list("MYSQL_EXCLUDE", f.exclude));
        if tables.is_empty() && include.is_empty() {
            return Err(ConfigError::Missing {
                var: "MYSQL_TABLE",
                toml: "mysql.tables",
            });
        }
        for p in include.iter().chain(&exclude) {
            if p.schema.is_empty() || p.table.is_empty() || p.table.contains('.') {
                return Err(ConfigError::Invalid {
                    var: "MYSQL_INCLUDE/MYSQL_EXCLUDE",
                    value: p.to_string(),
                    expected: "`table` or `db.table`, where `*` matches any run of characters and `?` one (for example `shop.*` or `*.audit_*`)",
                });
            }
        }
        let snapshot_host = self
            .var("MYSQL_SNAPSHOT_HOST")
            .or(f.snapshot_host)
            .unwrap_or_else(|| host.clone());
        let server_id = self.positive_or(
            "MYSQL_SERVER_ID",
            "mysql.server_id",
            EXPECTED_SERVER_ID,
            f.server_id,
            DEFAULT_SERVER_ID,
        )?;
        let on_table_reset = {
            use crate::source::ResetPolicy;
            let (value, from) = match self.var("ON_TABLE_RESET") {
                Some(v) => (Some(v), "ON_TABLE_RESET"),
                None => (f.on_table_reset, "mysql.on_table_reset"),
            };
            match value {
                None => ResetPolicy::default(),
                Some(v) => ResetPolicy::parse(v.trim()).ok_or(ConfigError::Invalid {
                    var: from,
                    value: v,
                    expected: ResetPolicy::EXPECTED,
                })?,
            }
        };
        let accept_fk_cascades = self.bool_or("ACCEPT_FK_CASCADES", f.accept_fk_cascades)?;
        Ok(MysqlConfig {
            host,
            port,
            user,
            password,
            database,
            schema,
            tables,
            include,
            exclude,
            snapshot_host,
            server_id,
            on_table_reset,
            accept_fk_cascades,
            ssl,
        })
    }

    /// `MYSQL_SSL_MODE`, `MYSQL_SSL_CA`, `MYSQL_SSL_CERT`, `MYSQL_SSL_KEY` (`mysql.ssl_*`).
    fn ssl(&self, f: &mut FileMysql) -> Result<SslConfig, ConfigError> {
        const MODES: &str = "disabled, preferred, required, verify_ca or verify_identity";
        let (mode_var, mode) = match self.var("MYSQL_SSL_MODE") {
            Some(v) => ("MYSQL_SSL_MODE", Some(v)),
            None => ("mysql.ssl_mode", f.ssl_mode.take()),
        };
        let given = mode.is_some();
        let mut mode = match mode {
            None => SslMode::default(),
            Some(v) => match v.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                "disabled" => SslMode::Disabled,
                "preferred" => SslMode::Preferred,
                "required" => SslMode::Required,
                "verify_ca" => SslMode::VerifyCa,
                "verify_identity" => SslMode::VerifyIdentity,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: mode_var,
                        value: v,
                        expected: MODES,
                    })
                }
            },
        };
        let file = |var: &'static str, toml: &'static str, from_file: Option<PathBuf>| {
            let (name, path) = match self.var(var) {
                Some(v) => (var, Some(PathBuf::from(v))),
                None => (toml, from_file),
            };
            match path {
                Some(p) if !p.is_file() => Err(ConfigError::Invalid {
                    var: name,
                    value: p.display().to_string(),
                    expected: "a readable PEM file",
                }),
                p => Ok(p),
            }
        };
        let ca = file("MYSQL_SSL_CA", "mysql.ssl_ca", f.ssl_ca.take())?;
        let cert = file("MYSQL_SSL_CERT", "mysql.ssl_cert", f.ssl_cert.take())?;
        let key = file("MYSQL_SSL_KEY", "mysql.ssl_key", f.ssl_key.take())?;
        // A CA with no mode asks for the certificate to be checked against it (the `mysql`
        // client's rule since 5.7): `preferred` would encrypt without looking at it.
        if !given && ca.is_some() {
            mode = SslMode::VerifyCa;
        }
        if cert.is_some() != key.is_some() {
            return Err(ConfigError::Invalid {
                var: if cert.is_some() {
                    "MYSQL_SSL_KEY"
                } else {
                    "MYSQL_SSL_CERT"
                },
                value: String::new(),
                expected:
                    "MYSQL_SSL_CERT and MYSQL_SSL_KEY together (a client certificate and its key)",
            });
        }
        if mode == SslMode::Disabled && (ca.is_some() || cert.is_some()) {
            return Err(ConfigError::Invalid {
                var: mode_var,
                value: "disabled".into(),
                expected: "a mode that uses TLS (required, verify_ca or verify_identity) when MYSQL_SSL_CA or a client certificate is set",
            });
        }
        Ok(SslConfig {
            mode,
            ca,
            cert,
            key,
        })
    }

    /// `[snapshot]`.
    fn snapshot(&self, f: FileSnapshot) -> Result<SnapshotConfig, ConfigError> {
        Ok(SnapshotConfig {
            initial: self.bool_or("INITIAL_SNAPSHOT", f.initial)?,
            batch_size: self.positive_or(
                "SNAPSHOT_BATCH_SIZE",
                "snapshot.batch_size",
                EXPECTED_BATCH_SIZE,
                f.batch_size,
                1000,
            )?,
            force: self.bool_or("FORCE_SNAPSHOT", f.force)?,
            when_needed: self.bool_or("SNAPSHOT_WHEN_NEEDED", f.when_needed)?,
            progress_interval_ms: nonzero(
                f.progress_interval_ms.unwrap_or(10_000),
                "snapshot.progress_interval_ms",
                "a positive number of milliseconds such as 10000",
            )?,
            max_inflight_bytes: nonzero(
                f.max_inflight_bytes
                    .unwrap_or(DEFAULT_SNAPSHOT_INFLIGHT_BYTES),
                "snapshot.max_inflight_bytes",
                "a positive number of bytes such as 16777216",
            )?,
        })
    }

    /// `state.recover` (`STATE_RECOVER`): `local` or `kafka`, which needs Kafka and exactly-once.
    fn recover(
        &self,
        file: Option<String>,
        kafka: Option<&KafkaConfig>,
    ) -> Result<Recover, ConfigError> {
        let (value, from) = match self.var("STATE_RECOVER") {
            Some(v) => (Some(v), "STATE_RECOVER"),
            None => (file, "state.recover"),
        };
        let Some(v) = value else {
            return Ok(Recover::Local);
        };
        match v.trim() {
            "local" => Ok(Recover::Local),
            "kafka" if kafka.is_some_and(|k| k.exactly_once) => Ok(Recover::Kafka),
            "kafka" => Err(ConfigError::Invalid {
                var: from,
                value: v,
                expected: "`local`: recovery from Kafka needs a broker (KAFKA_BROKERS) and \
                           exactly-once mode (EXACTLY_ONCE=true, the default)",
            }),
            _ => Err(ConfigError::Invalid {
                var: from,
                value: v,
                expected: "`local` or `kafka`",
            }),
        }
    }

    /// `[kafka]`: `None` without brokers (events go to stdout).
    fn kafka(
        &self,
        mut f: FileKafka,
        exactly_once: Option<bool>,
    ) -> Result<Option<KafkaConfig>, ConfigError> {
        // `[kafka.properties]` and `[kafka.producer]` are one table: librdkafka properties for
        // every client (the producer-only ones reach only the producer).
        for (k, v) in std::mem::take(&mut f.properties) {
            match f.producer.get(&k) {
                Some(other) if *other != v => {
                    return Err(ConfigError::Invalid {
                        var: "kafka.properties",
                        value: k,
                        expected: "a property set once: it is also in [kafka.producer] with another value (the two tables are one)",
                    })
                }
                _ => {
                    f.producer.insert(k, v);
                }
            }
        }
        let brokers = self
            .var("KAFKA_BROKERS")
            .or_else(|| self.var("Quix__Broker__Address"))
            .or(f.brokers);
        // Checked even without brokers, so a typo does not wait for Kafka to be configured.
        let key = match self.var("KAFKA_KEY") {
            Some(v) => match v.trim() {
                "table" => KeyMode::Table,
                "primary_key" => KeyMode::PrimaryKey,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "KAFKA_KEY",
                        value: v,
                        expected: "`table` or `primary_key`",
                    })
                }
            },
            None => f.key.unwrap_or_default(),
        };
        // Checked even without brokers, like the key.
        let exactly_once = match self.var("EXACTLY_ONCE") {
            Some(_) => self.bool_or("EXACTLY_ONCE", None)?,
            None => exactly_once.unwrap_or(true),
        };
        let Some(brokers) = brokers else {
            return Ok(None);
        };
        let topic = self.required("output", "kafka.topic", f.topic)?;
        let count = |v: Option<i32>, key: &'static str| match v {
            None => Ok(1),
            Some(n) if n >= 1 => Ok(n),
            Some(n) => Err(ConfigError::Invalid {
                var: key,
                value: n.to_string(),
                expected: "a positive number",
            }),
        };
        let partitions = count(f.partitions, "kafka.partitions")?;
        let replication_factor = count(f.replication_factor, "kafka.replication_factor")?;
        let on_oversize = f.on_oversize.unwrap_or_default();
        if on_oversize == OversizePolicy::DeadLetter && f.dead_letter_topic.is_none() {
            return Err(ConfigError::Invalid {
                var: "kafka.on_oversize",
                value: "dead_letter".into(),
                expected: "a `kafka.dead_letter_topic` with on_oversize = \"dead_letter\"",
            });
        }
        // Sluice counts every message's delivery report to know a batch is durable; with
        // reports for failures only, no batch would ever be acknowledged and the position would
        // never move.
        if let Some(v) = f.producer.get("delivery.report.only.error") {
            if v.trim() != "false" {
                return Err(ConfigError::Invalid {
                    var: "kafka.producer.\"delivery.report.only.error\"",
                    value: v.clone(),
                    expected: "false or no setting: Sluice needs the delivery report of every \
                               message to save its position",
                });
            }
        }
        if exactly_once {
            // Sluice places each record itself to know which partition holds what; it does so
            // as librdkafka's default partitioner does, and must not disagree with another one.
            if let Some(v) = f.producer.get("partitioner") {
                if !matches!(v.trim(), "consistent_random" | "consistent") {
                    return Err(ConfigError::Invalid {
                        var: "kafka.producer.partitioner",
                        value: v.clone(),
                        expected: "no setting, `consistent_random` or `consistent` in \
                                   exactly-once mode (Sluice places records by the CRC-32 of \
                                   their key itself); or set exactly_once = false",
                    });
                }
            }
            for (k, need) in [
                ("enable.idempotence", "true"),
                ("enable.gapless.guarantee", "true"),
            ] {
                if let Some(v) = f.producer.get(k) {
                    if v.trim() != need {
                        return Err(ConfigError::Invalid {
                            var: if k == "enable.idempotence" {
                                "kafka.producer.\"enable.idempotence\""
                            } else {
                                "kafka.producer.\"enable.gapless.guarantee\""
                            },
                            value: v.clone(),
                            expected: "true or no setting in exactly-once mode (a partition \
                                       must hold a gapless prefix of what Sluice sent it); or \
                                       set exactly_once = false",
                        });
                    }
                }
            }
        }
        Ok(Some(KafkaConfig {
            brokers,
            topic,
            key,
            producer: f.producer,
            on_oversize,
            dead_letter_topic: f.dead_letter_topic,
            exactly_once,
            recover_topics: f.recover_topics.unwrap_or_default(),
            partitions,
            replication_factor,
        }))
    }

    /// `[[transforms]]` and `TRANSFORMS`. The variable replaces the file's list; an entry whose
    /// path the file also names keeps the file's settings for it.
    fn transforms(
        &self,
        f: Vec<FileTransform>,
        to_kafka: bool,
    ) -> Result<Vec<TransformSpec>, ConfigError> {
        let file_specs: Vec<TransformSpec> = f.into_iter().map(FileTransform::into_spec).collect();
        let transforms: Vec<TransformSpec> = match self.var("TRANSFORMS") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let path = PathBuf::from(p);
                    file_specs
                        .iter()
                        .find(|s| s.path == path)
                        .cloned()
                        .unwrap_or_else(|| TransformSpec::from_path(&path))
                })
                .collect(),
            None => file_specs,
        };
        for t in &transforms {
            if t.on_error == FailurePolicy::DeadLetter && t.dead_letter_topic.is_none() && to_kafka
            {
                return Err(ConfigError::Invalid {
                    var: "transforms.dead_letter_topic",
                    value: t.name.clone(),
                    expected:
                        "a dead_letter_topic for every transform with on_error = \"dead_letter\"",
                });
            }
        }
        Ok(transforms)
    }
}

/// `[pipeline]` (file only). The sizes must be positive: a zero would stall or be meaningless,
/// so it is refused rather than quietly raised to 1.
fn pipeline(f: FilePipeline) -> Result<PipelineConfig, ConfigError> {
    let size = |toml, value: Option<usize>, default, expected| {
        nonzero(value.unwrap_or(default), toml, expected)
    };
    Ok(PipelineConfig {
        max_batch_rows: size(
            "pipeline.max_batch_rows",
            f.max_batch_rows,
            1024,
            "a positive number of rows such as 1024",
        )?,
        max_batch_bytes: size(
            "pipeline.max_batch_bytes",
            f.max_batch_bytes,
            crate::source::processor::DEFAULT_MAX_BATCH_BYTES,
            "a positive number of bytes such as 8388608",
        )?,
        channel_capacity: size(
            "pipeline.channel_capacity",
            f.channel_capacity,
            64,
            "a positive number of batches such as 64",
        )?,
        checkpoint_interval_ms: f.checkpoint_interval_ms.unwrap_or(200),
        max_inflight_bytes: size(
            "pipeline.max_inflight_bytes",
            f.max_inflight_bytes,
            DEFAULT_MAX_INFLIGHT_BYTES,
            "a positive number of bytes such as 268435456",
        )?,
        shutdown_timeout_ms: f.shutdown_timeout_ms.unwrap_or(10_000),
    })
}

/// `value`, unless it is zero: then an error naming `name` (a variable or a TOML key).
fn nonzero<T: Default + PartialEq>(
    value: T,
    name: &'static str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    if value == T::default() {
        return Err(ConfigError::Invalid {
            var: name,
            value: "0".into(),
            expected,
        });
    }
    Ok(value)
}

fn parse<T: std::str::FromStr>(
    v: &str,
    var: &'static str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid {
        var,
        value: v.to_owned(),
        expected,
    })
}

#[cfg(test)]
mod tests;
