//! `sluice check`: a preflight that tells an operator what to fix before `sluice run`.
//!
//! Design note: each check yields a [`CheckResult`] with a status and, when it does not pass, the
//! fix in words an operator can act on. The list follows `shared/CONTRACT.md` and the Python
//! app's troubleshooting list ("Binary logging must be enabled for CDC", access denied, a purged
//! position). Only failures make the command exit non-zero; `binlog_row_metadata` is a warning
//! because the pipeline still works without it, and `log_bin_compress` is information (Sluice
//! decodes MariaDB's compressed events).
//!
//! With a broker configured it checks Kafka too, with the producer's security settings: the
//! broker answers within 10 s, the topic exists (or is created, as `run` would), and a test
//! record is acknowledged; `--no-produce` stops at the metadata and a validate-only creation.
//!
//! Size: one check per line of `sluice check`'s report (config, transforms, MySQL, binlog settings, tables, foreign keys, Kafka), each small; splitting them by service is the next step when a check grows.

mod snapshot;

use std::fmt;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::config::Config;
use crate::state::PositionStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Worth knowing; nothing to fix.
    Info,
    Warn,
    Fail,
}

/// One line of the preflight report.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do when the check does not pass.
    pub fix: Option<String>,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Pass => "PASS",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        write!(f, "[{tag}] {}: {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n       fix: {fix}")?;
        }
        Ok(())
    }
}

fn pass(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        status: Status::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn info(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        status: Status::Info,
        detail: detail.into(),
        fix: None,
    }
}

/// Runs every check. Never fails itself: problems are results. `produce`: with Kafka
/// configured, produce a test record to the topic (otherwise only metadata is read).
pub async fn run_checks(cfg: &Config, produce: bool) -> Vec<CheckResult> {
    let mut out = transform_checks(cfg).await;
    out.extend(mysql_checks(cfg).await);
    out.extend(snapshot::snapshot_checks(cfg).await);
    out.extend(kafka_checks(cfg, produce).await);
    out
}

/// Loads and `init`s each configured transform, as `sluice run` does before it connects to
/// anything: one result per transform, with its name and the hash of its file, or the error.
async fn transform_checks(cfg: &Config) -> Vec<CheckResult> {
    use crate::transform::{EngineError, Stage, TransformEngine};
    const NAME: &str = "transforms";
    if cfg.transforms.is_empty() {
        return vec![info(NAME, "none configured (TRANSFORMS)")];
    }
    let (specs, cache) = (cfg.transforms.clone(), cfg.transform_cache_dir.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let engine = match TransformEngine::new(Some(cache)) {
            Ok(e) => e,
            Err(e) => {
                return vec![fail(
                    NAME,
                    e.to_string(),
                    "the host cannot run WebAssembly; see the error",
                )]
            }
        };
        specs
            .iter()
            .map(|spec| {
                let loaded = engine
                    .load(&spec.path)
                    .and_then(|m| Stage::new(spec.clone(), m.clone()).map(|_| m.hash));
                match loaded {
                    Ok(hash) => pass(
                        NAME,
                        format!(
                            "{}: {} loads and initialises (sha256 {})",
                            spec.name,
                            spec.path.display(),
                            &hash[..12]
                        ),
                    ),
                    Err(e) => {
                        let fix = match &e {
                            EngineError::Read { .. } => {
                                "check the path in TRANSFORMS (or [[transforms]] path)"
                            }
                            EngineError::Compile { .. } => {
                                "build the transform as a component: `cargo build --release \
                                 --target wasm32-wasip2` with the sluice-guest SDK"
                            }
                            _ => {
                                "fix the transform's config, or its init (try it with \
                                  `sluice transform test`)"
                            }
                        };
                        fail(NAME, format!("{}: {e}", spec.name), fix)
                    }
                }
            })
            .collect()
    })
    .await;
    checked.unwrap_or_else(|e| {
        vec![fail(
            NAME,
            format!("loading the transforms panicked: {e}"),
            "report this with the transform file",
        )]
    })
}

async fn kafka_checks(cfg: &Config, produce: bool) -> Vec<CheckResult> {
    use crate::sink::kafka::{self, CONNECT_TIMEOUT};
    use crate::sink::SinkError;
    use rdkafka::types::RDKafkaErrorCode;
    let Some(k) = &cfg.kafka else {
        return vec![info(
            "kafka",
            "no broker configured (KAFKA_BROKERS): events go to stdout",
        )];
    };
    let mut out = Vec::new();
    let probe = match kafka::probe(k, CONNECT_TIMEOUT).await {
        Ok(p) => {
            out.push(pass(
                "kafka",
                format!("reached {} broker(s) through {}", p.brokers, k.brokers),
            ));
            p
        }
        Err(e @ SinkError::Unreachable { .. }) => {
            out.push(fail(
                "kafka",
                e.to_string(),
                "set KAFKA_BROKERS (or kafka.brokers) to the broker's host:port, and check that it runs and that this host may reach it",
            ));
            return out;
        }
        Err(e) => {
            out.push(fail(
                "kafka",
                e.to_string(),
                "fix the [kafka.producer] security settings or the cluster's ACLs as the message says",
            ));
            return out;
        }
    };
    let topic = &k.topic;
    if k.topic_per_table() {
        out.push(info(
            "topic",
            format!(
                "a topic per table ({topic:?}): each is created on its first event, with {} partition(s), replication factor {}",
                k.partitions, k.replication_factor
            ),
        ));
        return out;
    }
    match probe.topic_error {
        None => out.push(pass("topic", format!("topic {topic:?} exists"))),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            let r = if produce {
                kafka::ensure_topic(k, topic, CONNECT_TIMEOUT)
                    .await
                    .map(|()| {
                        format!(
                            "topic {topic:?} was missing and was created, as `sluice run` would"
                        )
                    })
            } else {
                kafka::validate_topic_creation(k, topic, CONNECT_TIMEOUT)
                    .await
                    .map(|()| format!("topic {topic:?} does not exist; the broker accepts its creation (validate-only), so `sluice run` will create it"))
            };
            out.push(match r {
                Ok(detail) => pass("topic", detail),
                Err(e) => fail(
                    "topic",
                    format!("topic {topic:?} does not exist and cannot be created: {e}"),
                    "create the topic yourself (one partition keeps a table's events in order), or grant Sluice's principal CREATE on it",
                ),
            });
        }
        Some(code) => out.push(fail(
            "topic",
            format!("topic {topic:?}: {code}"),
            match kafka::classify(code) {
                kafka::Class::Permanent(hint) => hint.to_owned(),
                _ => "check the topic's state on the cluster (output / kafka.topic)".to_owned(),
            },
        )),
    }
    if produce {
        out.push(match kafka::produce_test_record(k, CONNECT_TIMEOUT).await {
            Ok(()) => pass(
                "produce",
                format!("a test record (key \"sluice.check\", no value) was acknowledged on {topic:?}"),
            ),
            Err(e) => fail(
                "produce",
                format!("producing a test record to {topic:?} failed: {e}"),
                "check the cluster's ACLs (WRITE on the topic, IDEMPOTENT_WRITE on the cluster) and the [kafka.producer] settings; `sluice check --no-produce` skips this check",
            ),
        });
    }
    out
}

async fn mysql_checks(cfg: &Config) -> Vec<CheckResult> {
    let m = &cfg.mysql;
    let mut out = Vec::new();
    let mut conn = match crate::source::binlog::open(m, &m.host).await {
        Ok(c) => {
            out.push(pass(
                "connect",
                format!("connected to {}:{} as {}", m.host, m.port, m.user),
            ));
            c
        }
        Err(e) => {
            let text = e.to_string();
            let fix = if let Some(fix) = crate::source::binlog::tls_fix(&e, m, &m.host).await {
                fix
            } else if text.contains("1045") || text.to_ascii_lowercase().contains("access denied") {
                format!(
                    "access denied for user '{}': check MYSQL_USER and MYSQL_PASSWORD, and that the user may connect from this host",
                    m.user
                )
            } else {
                format!("check that MySQL listens on {}:{} (MYSQL_HOST, MYSQL_PORT) and is reachable from here", m.host, m.port)
            };
            out.push(fail(
                "connect",
                format!("cannot connect to {}:{}: {text}", m.host, m.port),
                fix,
            ));
            return out;
        }
    };

    let settings = server_settings(&mut conn, m.server_id).await;
    out.extend(settings.binlog);

    out.push(check_privileges(&mut conn, cfg).await);
    out.extend(check_tables(&mut conn, cfg).await);
    out.extend(check_capturable(&mut conn, cfg).await);

    out.push(settings.server_id);

    out.push(check_position(&mut conn, cfg).await);
    let _ = conn.disconnect().await;
    out
}

/// The server settings Sluice depends on, as `sluice check` reports them (and `sluice setup`
/// repeats, changing none): the binlog settings, and the server's `server_id` against Sluice's.
pub(crate) struct ServerSettings {
    /// `log_bin`, `binlog_format`, `binlog_row_image`, `binlog_row_metadata` and, where the
    /// server has it, `log_bin_compress`.
    pub(crate) binlog: Vec<CheckResult>,
    pub(crate) server_id: CheckResult,
}

/// Reads the global variables behind [`ServerSettings`]; a variable that cannot be read is a
/// result too (a failure or a warning naming it), never an error.
pub(crate) async fn server_settings(conn: &mut Conn, sluice_server_id: u32) -> ServerSettings {
    let mut binlog = Vec::new();
    let vars = server_variables(conn).await;
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };

    match get("log_bin").as_deref() {
        Some("ON") | Some("1") => binlog.push(pass("log_bin", "binary logging is on")),
        other => binlog.push(fail(
            "log_bin",
            format!(
                "Binary logging must be enabled for CDC (log_bin={})",
                other.unwrap_or("unknown")
            ),
            "set log_bin (and server_id) in the server configuration and restart MySQL",
        )),
    }
    match get("binlog_format").as_deref() {
        Some("ROW") => binlog.push(pass("binlog_format", "binlog_format=ROW")),
        other => binlog.push(fail(
            "binlog_format",
            format!(
                "binlog_format={} but CDC needs ROW",
                other.unwrap_or("unknown")
            ),
            "SET GLOBAL binlog_format=ROW and set binlog_format=ROW in the server configuration",
        )),
    }
    match get("binlog_row_image").as_deref() {
        Some("FULL") => binlog.push(pass("binlog_row_image", "binlog_row_image=FULL")),
        other => binlog.push(fail(
            "binlog_row_image",
            format!(
                "binlog_row_image={} but events need every column",
                other.unwrap_or("unknown")
            ),
            "SET GLOBAL binlog_row_image=FULL and set it in the server configuration",
        )),
    }
    match get("binlog_row_metadata").as_deref() {
        Some("FULL") => binlog.push(pass("binlog_row_metadata", "binlog_row_metadata=FULL")),
        other => binlog.push(warn(
            "binlog_row_metadata",
            format!(
                "binlog_row_metadata={}: column names will come from information_schema, which can be wrong right after an ALTER TABLE",
                other.unwrap_or("unsupported")
            ),
            "SET GLOBAL binlog_row_metadata=FULL (MySQL 8.0.1+, MariaDB 10.5+) and set it in the server configuration",
        )),
    }

    match get("log_bin_compress").as_deref() {
        Some("ON") | Some("1") => binlog.push(info(
            "log_bin_compress",
            format!(
                "log_bin_compress=ON (log_bin_compress_min_len={}): MariaDB compresses large events; Sluice decodes them",
                get("log_bin_compress_min_len").unwrap_or_else(|| "?".into())
            ),
        )),
        Some(v) => binlog.push(info("log_bin_compress", format!("log_bin_compress={v}"))),
        None => {}
    }

    let server_id = match get("server_id").and_then(|v| v.parse::<u32>().ok()) {
        Some(id) if id == sluice_server_id => fail(
            "server_id",
            format!("the server's server_id is {id}, the same as Sluice's MYSQL_SERVER_ID"),
            "set MYSQL_SERVER_ID to a value no other server or replica in the topology uses",
        ),
        Some(id) => pass(
            "server_id",
            format!("server_id={id}, Sluice uses {sluice_server_id}"),
        ),
        None => warn(
            "server_id",
            "cannot read the server's server_id",
            "check the user may read @@server_id",
        ),
    };

    ServerSettings { binlog, server_id }
}

async fn server_variables(conn: &mut Conn) -> Vec<(String, String)> {
    conn.query(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
         ('log_bin','binlog_format','binlog_row_image','binlog_row_metadata','server_id', \
         'log_bin_compress','log_bin_compress_min_len')",
    )
    .await
    .unwrap_or_default()
}

async fn check_privileges(conn: &mut Conn, cfg: &Config) -> CheckResult {
    let grants: Vec<String> = match conn.query("SHOW GRANTS").await {
        Ok(g) => g,
        Err(e) => {
            return fail(
                "privileges",
                format!("cannot read grants: {e}"),
                "check the user exists",
            )
        }
    };
    let global: Vec<String> = grants
        .iter()
        .map(|g| g.to_ascii_uppercase())
        .filter(|g| g.contains(" ON *.* "))
        .collect();
    let has_global = |p: &str| {
        global
            .iter()
            .any(|g| g.contains("ALL PRIVILEGES") || g.contains(p))
    };
    let schema = cfg.mysql.schema.to_ascii_uppercase();
    let has_select = has_global("SELECT")
        || grants.iter().map(|g| g.to_ascii_uppercase()).any(|g| {
            (g.contains("SELECT") || g.contains("ALL PRIVILEGES"))
                && (g.contains(&format!(" ON `{schema}`."))
                    || g.contains(&format!(" ON {schema}.")))
        });
    let mut missing = Vec::new();
    if !has_global("REPLICATION SLAVE") {
        missing.push("REPLICATION SLAVE");
    }
    // MariaDB 10.5+ calls REPLICATION CLIENT "BINLOG MONITOR".
    if !has_global("REPLICATION CLIENT") && !has_global("BINLOG MONITOR") {
        missing.push("REPLICATION CLIENT");
    }
    if !has_select {
        missing.push("SELECT");
    }
    if missing.is_empty() {
        pass(
            "privileges",
            "REPLICATION SLAVE, REPLICATION CLIENT and SELECT are granted",
        )
    } else {
        let user = &cfg.mysql.user;
        fail(
            "privileges",
            format!("user '{user}' lacks {}", missing.join(", ")),
            format!(
                "as an administrator: GRANT {} ON *.* TO '{user}'@'%'",
                missing.join(", ")
            ),
        )
    }
}

async fn check_tables(conn: &mut Conn, cfg: &Config) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let tables = match crate::source::objects::captured_tables(conn, cfg).await {
        Ok(t) => t,
        Err(e) => {
            out.push(fail(
                "table",
                format!("cannot list the tables the patterns match: {e}"),
                "check the user's SELECT privilege on information_schema",
            ));
            return out;
        }
    };
    if cfg.has_patterns() {
        let first: Vec<String> = tables
            .iter()
            .take(5)
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        let more = tables.len().saturating_sub(first.len());
        out.push(if tables.is_empty() {
            warn(
                "table",
                "the patterns match no table now (tables created later that match are captured)",
                "check MYSQL_TABLE, MYSQL_INCLUDE, MYSQL_EXCLUDE and MYSQL_SCHEMA",
            )
        } else {
            info(
                "table",
                format!(
                    "the patterns match {} table(s) now: {}{}",
                    tables.len(),
                    first.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            )
        });
    }
    for (schema, table) in tables {
        if cfg.has_patterns() {
            let keyed: Result<Option<u64>, _> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
                     AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'",
                    (&schema, &table),
                )
                .await;
            if let Ok(Some(0)) = keyed {
                out.push(warn(
                    "table",
                    format!("{schema}.{table} has no primary key: its events have no key, and a snapshot interrupted mid-table reads it again"),
                    format!("add a primary key to `{schema}`.`{table}`, or leave it out with MYSQL_EXCLUDE"),
                ));
            }
        }
        let engine: Result<Option<Option<String>>, _> = conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&schema, &table),
            )
            .await;
        out.push(match engine {
            Ok(Some(Some(e))) if e.eq_ignore_ascii_case("InnoDB") => pass("table", format!("{schema}.{table} exists and uses InnoDB")),
            Ok(Some(Some(e))) => fail(
                "table",
                format!("{schema}.{table} uses {e}, which cannot give a consistent snapshot"),
                format!("ALTER TABLE `{schema}`.`{table}` ENGINE=InnoDB"),
            ),
            Ok(Some(None)) => fail("table", format!("{schema}.{table} is a view"), "capture the base table instead"),
            Ok(None) => fail(
                "table",
                format!("{schema}.{table} does not exist (or the user cannot see it)"),
                "check MYSQL_SCHEMA/MYSQL_DATABASE and MYSQL_TABLE, and that the user has SELECT on the table",
            ),
            Err(e) => fail("table", format!("cannot look up {schema}.{table}: {e}"), "check the user's SELECT privilege"),
        });
    }
    out
}

/// Sequences and children of cascading foreign keys, which the binlog cannot follow.
async fn check_capturable(conn: &mut Conn, cfg: &Config) -> Vec<CheckResult> {
    use crate::source::foreign_keys::{cascading_children, CascadingKey};
    let tables = crate::source::objects::captured_tables(conn, cfg)
        .await
        .unwrap_or_else(|_| cfg.captured_tables());
    let mut out = Vec::new();
    match crate::source::objects::sequences_among(conn, &tables).await {
        Ok(seqs) => {
            for (s, t) in seqs {
                out.push(warn(
                    "table",
                    format!("{s}.{t} is a SEQUENCE: its rows are never published"),
                    "remove it from MYSQL_TABLE",
                ));
            }
        }
        Err(e) => out.push(fail(
            "table",
            e.to_string(),
            "check the user's SELECT privilege",
        )),
    }
    let describe = |k: &CascadingKey| {
        format!(
            "{}.{} is the child of the foreign key {} on {}.{} (ON DELETE {}, ON UPDATE {}); the binlog does not hold the rows it changes",
            k.child.0, k.child.1, k.constraint, k.parent.0, k.parent.1, k.delete_rule, k.update_rule
        )
    };
    match cascading_children(conn, &tables).await {
        Ok(keys) if keys.is_empty() => out.push(pass(
            "foreign keys",
            "no captured table is the child of a cascading foreign key",
        )),
        Ok(keys) => {
            for k in &keys {
                out.push(if cfg.mysql.accept_fk_cascades {
                    warn(
                        "foreign keys",
                        describe(k),
                        "accepted with ACCEPT_FK_CASCADES=true: this table's copy can drift when the parent cascades",
                    )
                } else {
                    fail(
                        "foreign keys",
                        describe(k),
                        "capture only tables whose parents never cascade, or accept the drift with ACCEPT_FK_CASCADES=true (TOML mysql.accept_fk_cascades)",
                    )
                });
            }
        }
        Err(e) => out.push(fail(
            "foreign keys",
            e.to_string(),
            "check the user's SELECT privilege on information_schema",
        )),
    }
    out
}

async fn check_position(conn: &mut Conn, cfg: &Config) -> CheckResult {
    let store = PositionStore::for_tables(&cfg.state_dir, &cfg.mysql.schema, &cfg.state_tables());
    let saved = match store.load() {
        Ok(Some(p)) => p,
        Ok(None) => {
            return pass(
                "position",
                format!(
                    "no saved position at {}: Sluice will start from the current head",
                    store.path().display()
                ),
            )
        }
        Err(e) => return fail("position", e.to_string(), "see the message above"),
    };
    let logs: Vec<mysql_async::Row> = match conn.query("SHOW BINARY LOGS").await {
        Ok(l) => l,
        Err(e) => {
            return fail(
                "position",
                format!("cannot list binary logs to verify the saved position {saved}: {e}"),
                "grant REPLICATION CLIENT (BINLOG MONITOR on MariaDB) to the user",
            )
        }
    };
    let found = logs.iter().find_map(|r| {
        let name: String = r.get(0)?;
        let size: u64 = r.get(1)?;
        (name == saved.file).then_some(size)
    });
    match found {
        Some(size) if saved.pos <= size => pass("position", format!("saved position {saved} is on the server")),
        Some(size) => fail(
            "position",
            format!("saved position {saved} is beyond the end of {} ({size} bytes)", saved.file),
            format!("the position file {} does not belong to this server: delete it or point MYSQL_HOST at the right server", store.path().display()),
        ),
        None => fail(
            "position",
            format!("saved position {saved} is gone: {} was purged from the server", saved.file),
            format!(
                "changes were lost: re-snapshot with FORCE_SNAPSHOT=true (or set SNAPSHOT_WHEN_NEEDED=true to re-snapshot by itself), or delete {} to resume from the current head; keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days)",
                store.path().display()
            ),
        ),
    }
}
