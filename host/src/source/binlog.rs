//! The live binlog source: a replica connection that feeds the [`Processor`].
//!
//! Design note: this is the I/O half of the source. It connects as a replica with
//! `mysql_async`'s binlog stream, asks MariaDB for its GTID events
//! (`@mariadb_slave_capability=4`), turns a purged start file (server error 1236 on the first
//! request, saying the file is missing) into an error that names the saved position and the
//! remedy, and answers the processor's catalog requests from `information_schema` over a second
//! connection ([`Driver`], shared with `sluice position skip`, which replays the saved
//! position's first transaction through a processor configured the same way).
//!
//! A 1236 later in the stream (a binlog truncated inside an event, an event over
//! `max_allowed_packet`, a file that vanished while being read) is [`SourceError::ServerStopped`]:
//! the server's text, where the stream was, and a neutral remedy. It is not retried: the server
//! refuses to send that same event again, so a reconnect from the saved position would fail the
//! same way, in a loop that hides the message. It stops only at a transaction boundary
//! when asked to, so a graceful stop never leaves half a transaction published.
//!
//! Size: the replica connection, its preflight and its catalog queries share the connection handling; the pure parts already live in `processor`, `schema` and `decode`. Splitting the preflight out is the next step when the snapshot (issue 8) adds its own connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts, OptsBuilder};
use tokio::sync::{mpsc, watch};

use super::gtid::MysqlGtidSet;
use super::processor::{ProcessError, Processor, Step, TableFilter};
use super::schema::{parse_enum_labels, InfoSchemaColumn, InfoSchemaTable};
use crate::config::MysqlConfig;
use crate::event::Batch;
use crate::state::BinlogPosition;

/// How long a replica connection may stay silent before it is considered dead. The server sends
/// a heartbeat every second when there is nothing else to send.
const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// Errors of the binlog source. `is_retryable` tells the supervisor whether reconnecting from
/// the last acknowledged position can help.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to MySQL at {host}:{port}: {source}. Check MYSQL_HOST, MYSQL_PORT, MYSQL_USER and MYSQL_PASSWORD, and that the server is reachable")]
    Connect {
        host: String,
        port: u16,
        source: mysql_async::Error,
    },
    #[error("cannot connect to MySQL at {host}:{port}: {source}. {fix}")]
    Tls {
        host: String,
        port: u16,
        source: mysql_async::Error,
        fix: String,
    },
    #[error("cannot connect to MySQL at {host}:{port}: no answer within {timeout:?}. Check MYSQL_HOST and MYSQL_PORT, and that the server is reachable")]
    ConnectTimeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error("MySQL at {host}:{port} refused the credentials: {message}. Check MYSQL_USER and MYSQL_PASSWORD (and that the user may connect from this host)")]
    Auth {
        host: String,
        port: u16,
        message: String,
    },
    #[error("the server writes binlog_format={found}, but Sluice needs ROW: with STATEMENT or MIXED, changes arrive as SQL text that Sluice cannot capture. Run SET GLOBAL binlog_format=ROW (and set it in the server configuration), then reconnect the writers so their sessions use it")]
    NotRowFormat { found: String },
    #[error("the captured table {schema}.{table} does not exist on the server, or the Sluice user cannot see it. Check MYSQL_TABLE and MYSQL_SCHEMA (names are case-sensitive), create the table first, or GRANT SELECT ON {schema}.{table} to the user")]
    MissingTable { schema: String, table: String },
    #[error("MySQL query failed ({context}): {source}")]
    Query {
        context: &'static str,
        source: mysql_async::Error,
    },
    #[error("the binlog stream failed: {0}")]
    Stream(mysql_async::Error),
    #[error("the binlog stream was silent for {0:?} (no heartbeat); reconnecting")]
    Silent(Duration),
    #[error(
        "the saved position {position} is no longer on the server: {message}. The binlog file was \
         purged before Sluice read it, so changes are missing. Re-snapshot with FORCE_SNAPSHOT=true \
         (or set SNAPSHOT_WHEN_NEEDED=true to re-snapshot by itself whenever this happens), or \
         delete the position file to resume from the current head"
    )]
    PositionPurged {
        position: BinlogPosition,
        message: String,
    },
    #[error(
        "the server stopped the binlog stream at {file}:{pos}: {message} (server error 1236). Check the server's binlog there (mysqlbinlog, its error \
         log, max_allowed_packet); once it is sound, start Sluice again: it resumes from the last \
         saved position"
    )]
    ServerStopped {
        file: String,
        pos: u64,
        message: String,
    },
    #[error(
        "no saved position, and the server holds {count} prepared XA transaction(s) ({xids}). \
         Sluice would start at the current binlog head, after their XA PREPARE, and could not \
         tell whether their rows belong to captured tables when they commit. Commit or roll them \
         back on the server (XA RECOVER lists them; XA COMMIT or XA ROLLBACK), or wait for their \
         owner to; Sluice retries by itself and starts once none is prepared"
    )]
    PreparedXaAtHead { count: usize, xids: String },
    #[error("binary logging is off on the server: Binary logging must be enabled for CDC (set log_bin in the server configuration and restart it)")]
    BinlogDisabled,
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("the server closed the binlog stream")]
    Closed,
}

impl SourceError {
    /// Whether a reconnect from the last acknowledged position may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Connect { .. }
                | SourceError::ConnectTimeout { .. }
                | SourceError::Stream(_)
                | SourceError::Silent(_)
                | SourceError::Closed
                | SourceError::Query { .. }
                | SourceError::PreparedXaAtHead { .. }
        )
    }
}

/// Connection options for a MySQL config (TCP only, so that the configured server is the one
/// used), with TLS as `cfg.ssl` says. Connect with [`open`], which also handles
/// `MYSQL_SSL_MODE=preferred` against a server without TLS.
pub(crate) fn connect_opts(cfg: &MysqlConfig, host: &str) -> Opts {
    let ssl = if cfg.ssl.mode == crate::config::SslMode::Preferred && known_plain(host, cfg.port) {
        None
    } else {
        ssl_opts(&cfg.ssl)
    };
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(cfg.password.clone()))
        .prefer_socket(false)
        .stmt_cache_size(0)
        .ssl_opts(ssl)
        .into()
}

/// mysql_async's TLS options for a mode (rustls; `None`: a plain connection).
fn ssl_opts(ssl: &crate::config::SslConfig) -> Option<mysql_async::SslOpts> {
    use crate::config::SslMode;
    use mysql_async::{ClientIdentity, SslOpts};
    let mut o = SslOpts::default();
    match ssl.mode {
        SslMode::Disabled => return None,
        // Encrypted, not authenticated: the `mysql` client's PREFERRED and REQUIRED.
        SslMode::Preferred | SslMode::Required => {
            o = o
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true);
        }
        SslMode::VerifyCa => o = o.with_danger_skip_domain_validation(true),
        SslMode::VerifyIdentity => {}
    }
    if let Some(ca) = &ssl.ca {
        // The given authorities are the whole trust store, as with the `mysql` client.
        o = o
            .with_root_certs(vec![ca.clone().into()])
            .with_disable_built_in_roots(true);
    }
    if let (Some(cert), Some(key)) = (&ssl.cert, &ssl.key) {
        o = o.with_client_identity(Some(ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    Some(o)
}

/// What to set when a connection to `host` failed for TLS reasons (`None`: another reason).
/// Under `MYSQL_SSL_MODE=disabled` an access denial is tried again over TLS, because MariaDB
/// answers a plain connection that `require_secure_transport` refuses with the same "access
/// denied" as a wrong password.
pub(crate) async fn tls_fix(
    e: &mysql_async::Error,
    cfg: &MysqlConfig,
    host: &str,
) -> Option<String> {
    if let Some(fix) = tls_fix_from_error(e, cfg) {
        return Some(fix);
    }
    let denied = matches!(e, mysql_async::Error::Server(se) if se.code == 1045);
    // Once per process: a wrong password must not cost two login attempts at every reconnect
    // (FAILED_LOGIN_ATTEMPTS would lock the account sooner).
    static PROBED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !denied
        || cfg.ssl.mode != crate::config::SslMode::Disabled
        || PROBED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        return None;
    }
    let mut probe = cfg.clone();
    probe.ssl.mode = crate::config::SslMode::Required;
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(connect_opts(&probe, host)))
        .await
        .ok()?
        .ok()?;
    let _ = conn.disconnect().await;
    Some("The same credentials are accepted over TLS: the server refuses plain connections (require_secure_transport; MariaDB reports that as access denied). Set MYSQL_SSL_MODE=required, or verify_ca or verify_identity with MYSQL_SSL_CA set to the server's CA certificate".into())
}

/// [`tls_fix`] from the error alone.
fn tls_fix_from_error(e: &mysql_async::Error, cfg: &MysqlConfig) -> Option<String> {
    use crate::config::SslMode;
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("insecure transport") || text.contains("secure transport") {
        return Some("The server requires TLS (require_secure_transport): set MYSQL_SSL_MODE=required, or verify_ca or verify_identity with MYSQL_SSL_CA set to the server's CA certificate".into());
    }
    if matches!(
        e,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
    ) {
        return Some(format!(
            "The server offers no TLS, and MYSQL_SSL_MODE={} requires it: configure TLS on the server (ssl_cert, ssl_key), or set MYSQL_SSL_MODE=preferred or disabled",
            cfg.ssl.mode.as_str()
        ));
    }
    // rustls's handshake failures reach mysql_async as I/O errors; their texts are specific
    // ("invalid peer certificate: UnknownIssuer", "received fatal alert: …"), so a network
    // failure (retryable) is never taken for one.
    let tls_error = matches!(e, mysql_async::Error::Io(mysql_async::IoError::Tls(_)))
        || (matches!(e, mysql_async::Error::Io(_))
            && (text.contains("certificate")
                || text.contains("fatal alert")
                || text.contains("peer is incompatible")
                || text.contains("peer misbehaved")));
    if tls_error && cfg.ssl.mode != SslMode::Disabled {
        return Some(format!(
            "The TLS handshake failed under MYSQL_SSL_MODE={}: check that MYSQL_SSL_CA is the CA that signed the server's certificate{}, and that MYSQL_SSL_CERT/MYSQL_SSL_KEY (if set) are a matching PEM pair",
            cfg.ssl.mode.as_str(),
            if matches!(cfg.ssl.mode, SslMode::VerifyIdentity | SslMode::VerifyCa) {
                // verify_ca too: mysql_async 0.37.1 fails to skip the name check with the rustls
                // it builds with (blackbeam/mysql_async#404).
                " and that the certificate names MYSQL_HOST"
            } else {
                ""
            }
        ));
    }
    None
}

/// Servers (host, port) found without TLS under `MYSQL_SSL_MODE=preferred`, and when: for
/// [`PLAIN_FOR`] after that, connections to them go plain at once, so a process tries TLS there
/// about once per interval, not once per connection; a server that gains TLS (or a failover
/// behind the same name) is encrypted again after it.
static PLAIN_SERVERS: std::sync::Mutex<Option<HashMap<(String, u16), Instant>>> =
    std::sync::Mutex::new(None);

/// How long a server found without TLS is connected in plain without trying TLS again.
const PLAIN_FOR: Duration = Duration::from_secs(600);

fn known_plain(host: &str, port: u16) -> bool {
    let Ok(servers) = PLAIN_SERVERS.lock() else {
        return false;
    };
    servers
        .as_ref()
        .and_then(|m| m.get(&(host.to_owned(), port)))
        .is_some_and(|at| at.elapsed() < PLAIN_FOR)
}

/// Opens a connection to `host` with `cfg`'s credentials and TLS settings. Under
/// `MYSQL_SSL_MODE=preferred`, a server that offers no TLS gets a plain connection.
pub(crate) async fn open(cfg: &MysqlConfig, host: &str) -> Result<Conn, mysql_async::Error> {
    match Conn::new(connect_opts(cfg, host)).await {
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
            if cfg.ssl.mode == crate::config::SslMode::Preferred =>
        {
            tracing::info!(
                host,
                port = cfg.port,
                "the server offers no TLS; connecting without it (MYSQL_SSL_MODE=preferred)"
            );
            if let Ok(mut s) = PLAIN_SERVERS.lock() {
                s.get_or_insert_with(HashMap::new)
                    .insert((host.to_owned(), cfg.port), Instant::now());
            }
            Conn::new(connect_opts(cfg, host)).await
        }
        r => r,
    }
}

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, giving up after [`CONNECT_TIMEOUT`]. Every failure is retryable here: a server
/// that restarts refuses connections for a while.
pub(crate) async fn connect(cfg: &MysqlConfig) -> Result<Conn, SourceError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, open(cfg, &cfg.host)).await {
        Err(_) => Err(SourceError::ConnectTimeout {
            host: cfg.host.clone(),
            port: cfg.port,
            timeout: CONNECT_TIMEOUT,
        }),
        Ok(Err(source)) => match tls_fix(&source, cfg, &cfg.host).await {
            Some(fix) => Err(SourceError::Tls {
                host: cfg.host.clone(),
                port: cfg.port,
                fix,
                source,
            }),
            None => Err(SourceError::Connect {
                host: cfg.host.clone(),
                port: cfg.port,
                source,
            }),
        },
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// Server errors that mean the credentials (or the user's host) are refused: ER_ACCESS_DENIED,
/// ER_DBACCESS_DENIED, ER_ACCESS_DENIED_NO_PASSWORD, ER_PASSWORD_NO_MATCH and the expired or
/// locked account errors.
const AUTH_ERRORS: &[u16] = &[1044, 1045, 1698, 1133, 1862, 3118, 4151];

/// Checks, once at start, what no reconnect can heal: the credentials, `binlog_format=ROW`, and
/// that every captured table exists. Each failure is a non-retryable error that names the
/// setting to change. (Later disconnects stay retryable.)
pub(crate) async fn preflight(
    cfg: &MysqlConfig,
    tables: &[(String, String)],
) -> Result<(), SourceError> {
    let mut conn = match connect(cfg).await {
        Err(SourceError::Connect {
            host,
            port,
            source: mysql_async::Error::Server(se),
        }) if AUTH_ERRORS.contains(&se.code) => {
            return Err(SourceError::Auth {
                host,
                port,
                message: se.message,
            })
        }
        r => r?,
    };
    let log_bin: Option<String> = query_value(&mut conn, "SELECT @@global.log_bin").await?;
    if !matches!(log_bin.as_deref(), Some("1") | Some("ON")) {
        return Err(SourceError::BinlogDisabled);
    }
    let format: Option<String> = query_value(&mut conn, "SELECT @@global.binlog_format").await?;
    let format = format.unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(SourceError::NotRowFormat { found: format });
    }
    for (schema, table) in tables {
        let found: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, table),
            )
            .await
            .map_err(|source| SourceError::Query {
                context: "reading information_schema.TABLES",
                source,
            })?;
        if found.is_none() {
            return Err(SourceError::MissingTable {
                schema: schema.clone(),
                table: table.clone(),
            });
        }
    }
    let _ = conn.disconnect().await;
    Ok(())
}

/// The single value a server query such as `SELECT @@global.log_bin` returns; a failure names
/// the query.
async fn query_value<T: mysql_async::prelude::FromValue + Send + 'static>(
    conn: &mut Conn,
    sql: &'static str,
) -> Result<Option<T>, SourceError> {
    conn.query_first(sql)
        .await
        .map_err(|source| SourceError::Query {
            context: sql,
            source,
        })
}

/// Whether the server is MariaDB (as opposed to MySQL).
pub(crate) async fn is_mariadb(conn: &mut Conn) -> Result<bool, SourceError> {
    let v: Option<String> = query_value(conn, "SELECT VERSION()").await?;
    Ok(v.unwrap_or_default()
        .to_ascii_lowercase()
        .contains("mariadb"))
}

/// MySQL's `@@server_uuid`, which names the server whose binlog positions are (exactly-once
/// records carry it); `None` on MariaDB, whose GTIDs order records across servers.
pub(crate) async fn mysql_server_uuid(cfg: &MysqlConfig) -> Result<Option<String>, SourceError> {
    let mut conn = connect(cfg).await?;
    let uuid = match is_mariadb(&mut conn).await? {
        true => None,
        false => query_value::<String>(&mut conn, "SELECT @@server_uuid").await?,
    };
    let _ = conn.disconnect().await;
    Ok(uuid)
}

/// The server's binlog head (`SHOW MASTER STATUS`), with its GTID state on MariaDB.
pub(crate) async fn read_head(conn: &mut Conn) -> Result<BinlogPosition, SourceError> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        // MySQL 8.4 renamed it.
        Err(_) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .map_err(|source| SourceError::Query {
                context: "SHOW BINARY LOG STATUS",
                source,
            })?,
    };
    let row = row.ok_or(SourceError::BinlogDisabled)?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(4);
    let gtid = if is_mariadb(conn).await? {
        query_value::<String>(conn, "SELECT @@gtid_binlog_pos")
            .await?
            .filter(|g| !g.is_empty())
    } else {
        // MySQL's fifth column, Executed_Gtid_Set (empty with GTIDs off).
        row.get::<Option<String>, _>(4)
            .flatten()
            .and_then(|g| MysqlGtidSet::parse(&g))
            .filter(|g| !g.is_empty())
            .map(|g| g.to_string())
    };
    Ok(BinlogPosition {
        file,
        pos,
        gtid,
        timestamp: 0,
    })
}

/// The server's current binlog head: where a pipeline without a saved position starts.
pub(crate) async fn current_head(conn: &mut Conn) -> Result<BinlogPosition, SourceError> {
    let head = read_head(conn).await?;
    // The head is not a checkpoint: an XA prepared before it may still commit captured rows
    // (see source::processor's xa module). Refuse to start there while one is prepared.
    let prepared: Vec<mysql_async::Row> =
        conn.query("XA RECOVER")
            .await
            .map_err(|source| SourceError::Query {
                context: "XA RECOVER",
                source,
            })?;
    if !prepared.is_empty() {
        let names: Vec<String> = prepared
            .iter()
            .take(5)
            .map(|r| {
                let data: Vec<u8> = r.get(3).unwrap_or_default();
                format!("'{}'", String::from_utf8_lossy(&data))
            })
            .collect();
        return Err(SourceError::PreparedXaAtHead {
            count: prepared.len(),
            xids: names.join(", "),
        });
    }
    Ok(head)
}

/// Reads column metadata of one table from `information_schema`.
pub(crate) async fn fetch_catalog(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<InfoSchemaTable, SourceError> {
    let q = |source| SourceError::Query {
        context: "reading information_schema.COLUMNS",
        source,
    };
    let rows: Vec<(String, String, String, Option<String>)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(q)?;
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(q)?;
    let columns: Vec<InfoSchemaColumn> = rows
        .into_iter()
        .map(|(name, data_type, column_type, charset)| {
            let lower = column_type.to_ascii_lowercase();
            InfoSchemaColumn {
                name,
                data_type: data_type.to_ascii_lowercase(),
                unsigned: lower.contains("unsigned"),
                charset,
                labels: if lower.starts_with("enum(") || lower.starts_with("set(") {
                    parse_enum_labels(&column_type)
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    let primary_key = key
        .iter()
        .filter_map(|k| columns.iter().position(|c| &c.name == k))
        .collect();
    Ok(InfoSchemaTable {
        columns,
        primary_key,
    })
}

/// When the table's definition last changed (`CREATE_TIME`, which MariaDB and MySQL move on
/// every ALTER), as unix seconds, for the processor's check that catalog data is not newer
/// than the rows it labels.
async fn definition_time(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<Option<i64>, SourceError> {
    let defined: Option<Option<i64>> = conn
        .exec_first(
            "SELECT CAST(UNIX_TIMESTAMP(CREATE_TIME) AS SIGNED) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .map_err(|source| SourceError::Query {
            context: "reading information_schema.TABLES",
            source,
        })?;
    Ok(defined.flatten())
}

/// How a stream asks for its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// At the position's file and offset.
    AtPosition,
    /// On MySQL with `gtid_mode=ON`, when the position records a GTID set: by that set, as a
    /// MySQL replica with auto-position asks (`COM_BINLOG_DUMP_GTID` with no file name). The
    /// server sends every transaction outside the set, from the first binlog file that holds
    /// one, which is the same stream on the server that wrote the position and the right one
    /// on a promoted replica. Elsewhere, at the position.
    ByGtid,
}

/// An open replica stream.
pub(crate) struct ReplicaStream {
    pub stream: mysql_async::BinlogStream,
    pub mariadb: bool,
    /// The server chose the start (a GTID dump): its opening ROTATE names the file.
    pub by_gtid: bool,
}

/// Connects as a replica and asks for the binlog from `at`. MariaDB is asked for its GTID
/// events (`@mariadb_slave_capability=4`); both servers send a heartbeat every second.
pub(crate) async fn open_replica_stream(
    cfg: &MysqlConfig,
    at: &BinlogPosition,
    how: Request,
) -> Result<ReplicaStream, SourceError> {
    let mut conn = connect(cfg).await?;
    let mariadb = is_mariadb(&mut conn).await?;
    let mut setup = vec![
        "SET @master_heartbeat_period=1000000000",
        "SET @@session.net_write_timeout=3600",
    ];
    if mariadb {
        setup.insert(0, "SET @mariadb_slave_capability=4");
    }
    for stmt in setup {
        conn.query_drop(stmt)
            .await
            .map_err(|source| SourceError::Query {
                context: "preparing the replica session",
                source,
            })?;
    }
    let gtids = match how {
        Request::ByGtid if !mariadb => mysql_gtid_start(&mut conn, at).await?,
        _ => None,
    };
    let by_gtid = gtids.is_some();
    let request = match &gtids {
        Some(set) => {
            tracing::info!(gtid_set = %set, "asking MySQL for the binlog by GTID set (auto-position)");
            BinlogStreamRequest::new(cfg.server_id)
                .with_gtid()
                .with_gtid_set(set.to_sids())
        }
        None => BinlogStreamRequest::new(cfg.server_id)
            .with_filename(at.file.as_bytes())
            .with_pos(at.pos),
    };
    let stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(SourceError::Stream)?;
    Ok(ReplicaStream {
        stream,
        mariadb,
        by_gtid,
    })
}

/// The GTID set to resume a MySQL stream from: the position's, when it records one and the
/// server has `gtid_mode=ON`.
async fn mysql_gtid_start(
    conn: &mut Conn,
    at: &BinlogPosition,
) -> Result<Option<MysqlGtidSet>, SourceError> {
    let Some(set) = at
        .gtid
        .as_deref()
        .and_then(MysqlGtidSet::parse)
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let mode: Option<String> = query_value(conn, "SELECT @@GLOBAL.gtid_mode").await?;
    Ok(mode
        .is_some_and(|m| m.eq_ignore_ascii_case("ON"))
        .then_some(set))
}

/// How large a batch may grow before a large transaction is cut into pieces
/// (`pipeline.max_batch_rows` and `pipeline.max_batch_bytes`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub rows: usize,
    pub bytes: usize,
}

/// A [`Processor`] configured as the pipeline runs it, with the connection that answers its
/// catalog requests. `binlog::stream` and `sluice position skip` both feed events through it,
/// so the skip judges the saved position's transaction exactly as the pipeline would.
pub(crate) struct Driver {
    processor: Processor,
    cfg: MysqlConfig,
    catalog_conn: Option<Conn>,
}

impl Driver {
    /// Reads the captured tables' kinds (sequences, system-versioned tables: known from the
    /// catalog only, see `source::objects`) and configures the processor with the filter, the
    /// reset policy and the cascade setting of `cfg`.
    pub(crate) async fn new(
        cfg: &MysqlConfig,
        filter: TableFilter,
        start: &BinlogPosition,
        limits: BatchLimits,
    ) -> Result<Driver, SourceError> {
        let mut c = connect(cfg).await?;
        // With lower_case_table_names 1 or 2 the server ignores the case of table names, and
        // statements may spell a captured table in any case.
        let lower: Option<u8> = query_value(&mut c, "SELECT @@lower_case_table_names").await?;
        let filter = filter.with_lower_case_table_names(lower.unwrap_or(0));
        let (filter, kinds) = super::objects::stream_scope(&mut c, filter)
            .await
            .map_err(|e| SourceError::Query {
                context: e.what,
                source: e.source,
            })?;
        let mut processor = Processor::new(filter, start, limits.rows)
            .with_max_batch_bytes(limits.bytes)
            .with_table_kinds(kinds)
            .with_reset_policy(cfg.on_table_reset);
        if cfg.accept_fk_cascades {
            processor = processor.accepting_cascades();
        }
        Ok(Driver {
            processor,
            cfg: cfg.clone(),
            catalog_conn: Some(c),
        })
    }

    /// Hands one event to the processor, answering its catalog requests from
    /// `information_schema`; returns the batch it completed, if any.
    pub(crate) async fn feed(
        &mut self,
        event: &mysql_common::binlog::events::Event,
    ) -> Result<Option<Batch>, SourceError> {
        loop {
            match self.processor.handle(event)? {
                Step::Continue => return Ok(None),
                Step::Emit => return Ok(Some(self.processor.take_batch())),
                Step::NeedCatalog { schema, table } => {
                    let c = catalog_conn(&mut self.catalog_conn, &self.cfg).await?;
                    let info = fetch_catalog(c, &schema, &table).await?;
                    let defined = definition_time(c, &schema, &table).await?;
                    tracing::debug!(%schema, %table, columns = info.columns.len(), "read table metadata from information_schema");
                    if let Some(t) = defined {
                        self.processor
                            .provide_definition_time(schema.clone(), table.clone(), t);
                    }
                    self.processor.provide_catalog(schema, table, info);
                }
                Step::NeedKind { schema, table } => {
                    let c = catalog_conn(&mut self.catalog_conn, &self.cfg).await?;
                    let name = (schema.clone(), table.clone());
                    let read = super::objects::table_kinds(c, std::slice::from_ref(&name))
                        .await
                        .map_err(|e| SourceError::Query {
                            context: e.what,
                            source: e.source,
                        })?;
                    let table_name = format!("{schema}.{table}");
                    match (read.sequences.is_empty(), read.versioned.is_empty()) {
                        _ if read.missing.contains(&name) => {
                            tracing::warn!(table = %table_name, "a table whose rows are being read no longer exists, so its kind cannot be read: it keeps the kind read before (a plain table if none was); if it was a sequence or a system-versioned table created and dropped while Sluice was behind, its rows are published as stored")
                        }
                        (false, _) => {
                            tracing::info!(table = %table_name, "a captured sequence appeared since the start: its rows are never published")
                        }
                        (_, false) => {
                            tracing::info!(table = %table_name, "a captured system-versioned table appeared since the start: its rows are published as `SELECT *` shows them")
                        }
                        _ => {
                            tracing::debug!(table = %table_name, "read the kind of a table that appeared since the start: a plain table")
                        }
                    }
                    self.processor.provide_kinds(schema, table, read);
                }
            }
        }
    }

    /// Watches for outcomes of XA transactions that began before the start
    /// ([`Processor::watch_xa`]).
    pub(crate) fn watch_xa(&mut self) {
        self.processor.watch_xa();
    }

    /// The processor being driven.
    pub(crate) fn processor(&self) -> &Processor {
        &self.processor
    }

    /// Closes the catalog connection.
    pub(crate) async fn close(self) {
        if let Some(c) = self.catalog_conn {
            let _ = c.disconnect().await;
        }
    }
}

/// The driver's catalog connection, opened at its first use.
async fn catalog_conn<'a>(
    slot: &'a mut Option<Conn>,
    cfg: &MysqlConfig,
) -> Result<&'a mut Conn, SourceError> {
    if slot.is_none() {
        *slot = Some(connect(cfg).await?);
    }
    Ok(slot.as_mut().expect("connected above"))
}

/// Whether a server error 1236 on the first request says that the requested file is not there
/// (purged, or never existed), as opposed to another refusal.
fn is_missing_file(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("could not find first log file")
        || m.contains("could not open log file")
        || m.contains("purged")
}

/// The error for a server error 1236 (ER_MASTER_FATAL_ERROR_READING_BINLOG): on the first
/// request, when the message says the file is missing, the position was purged; otherwise the
/// server refused to send what is at `at` (the stream's position), for the reason it gives.
fn server_refusal(first: bool, at: BinlogPosition, message: String) -> SourceError {
    if first && is_missing_file(&message) {
        SourceError::PositionPurged {
            position: at,
            message,
        }
    } else {
        SourceError::ServerStopped {
            file: at.file,
            pos: at.pos,
            message,
        }
    }
}

/// Where the stream is after `event`: its end offset, 4 after a ROTATE (the next event is
/// read from the start of a file), or `last` for an event without a position.
pub(crate) fn event_end(event: &mysql_common::binlog::events::Event, last: u64) -> u64 {
    match (event.header().event_type_raw(), event.header().log_pos()) {
        (4, _) => 4,
        (_, 0) => last,
        (_, end) => u64::from(end),
    }
}

/// Whether the stream at `file:pos` has reached `target` (an earlier or equal point). Files are
/// ordered by their numeric extension (`mysql-bin.000012`), offsets within a file.
pub(crate) fn reached(file: &str, pos: u64, target: &BinlogPosition) -> bool {
    let seq = |f: &str| {
        f.rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (seq(file), pos) >= (seq(&target.file), target.pos)
}

/// Streams the binlog from `start`, sending batches to `tx` until `stop` turns true (then it
/// finishes the open transaction first), an error occurs, or the stream reaches `stop_at`: a
/// transaction boundary at or after it, with no prepared XA transaction of captured tables
/// held (its outcome, and so its rows, are still to come). Then it returns where it stopped.
pub(crate) async fn stream(
    cfg: &MysqlConfig,
    filter: TableFilter,
    start: BinlogPosition,
    stop_at: Option<&BinlogPosition>,
    limits: BatchLimits,
    tx: mpsc::Sender<Batch>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<BinlogPosition>, SourceError> {
    if stop_at.is_some_and(|t| reached(&start.file, start.pos, t)) {
        return Ok(Some(start));
    }
    let ReplicaStream {
        stream: mut binlog,
        mariadb,
        by_gtid,
    } = open_replica_stream(cfg, &start, Request::ByGtid).await?;
    let mut driver = Driver::new(cfg, filter, &start, limits).await?;
    if by_gtid {
        driver.processor = driver.processor.with_file_from_stream();
    }
    // Logged once the stream's scope (the tables and kinds of now) is read: a table created
    // after this line is one the stream learns of as it goes.
    tracing::info!(position = %start, mariadb, by_gtid, "streaming the binlog");
    if stop_at.is_none() {
        // The stream itself, not a snapshot's bounded catch-up.
        crate::telemetry::health::set(crate::telemetry::Phase::Streaming, None);
    }
    let mut stopping = *stop.borrow();
    let mut first = true;
    // Where the last event read ended, for an error the server sends mid-stream.
    let mut last_end = start.pos;
    let mut arrived = None;
    loop {
        if !driver.processor().in_transaction() {
            if stopping {
                break;
            }
            if let Some(t) = stop_at {
                let p = driver.processor();
                if !p.holds_xa() && reached(p.current_file(), last_end, t) {
                    arrived = Some(p.position_at(last_end));
                    break;
                }
            }
        }
        let next = tokio::select! {
            ev = tokio::time::timeout(SILENCE_LIMIT, binlog.next()) => ev,
            _ = stop.changed(), if !stopping => { stopping = true; continue; }
            // The downstream stage is gone (it failed); it reports why.
            _ = tx.closed() => return Ok(None),
        };
        let event = match next {
            Err(_) => return Err(SourceError::Silent(SILENCE_LIMIT)),
            Ok(None) => return Err(SourceError::Closed),
            Ok(Some(Err(e))) => {
                if let mysql_async::Error::Server(ref se) = e {
                    if se.code == 1236 {
                        let at = match first {
                            true => start,
                            false => BinlogPosition {
                                file: driver.processor().current_file().to_owned(),
                                pos: last_end,
                                ..start
                            },
                        };
                        return Err(server_refusal(first, at, se.message.clone()));
                    }
                }
                return Err(SourceError::Stream(e));
            }
            Ok(Some(Ok(ev))) => ev,
        };
        first = false;
        last_end = event_end(&event, last_end);
        if let Some(batch) = driver.feed(&event).await? {
            if tx.send(batch).await.is_err() {
                // The downstream stage is gone (it failed or shut down); it reports why.
                return Ok(None);
            }
        }
    }
    drop(binlog);
    driver.close().await;
    Ok(arrived)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, pos: u64) -> BinlogPosition {
        BinlogPosition {
            file: file.into(),
            pos,
            gtid: None,
            timestamp: 0,
        }
    }

    #[test]
    fn only_a_missing_start_file_is_a_purged_position() {
        let purged = server_refusal(
            true,
            at("mysql-bin.000001", 4),
            "Could not find first log file name in binary log index file".into(),
        );
        assert!(
            matches!(purged, SourceError::PositionPurged { .. }),
            "{purged}"
        );
        assert!(!purged.is_retryable());

        // The same refusal later in the stream, and other refusals anywhere, quote the server
        // and name where the stream was, with a neutral remedy.
        for (first, message) in [
            (false, "binlog truncated in the middle of event; consider out of disk space on master; the first event 'mysql-bin.000002' at 4, the last event read from 'mysql-bin.000002' at 1000, the last byte read from 'mysql-bin.000002' at 1019."),
            (false, "log event entry exceeded max_allowed_packet; Increase max_allowed_packet on master"),
            (true, "Client requested master to start replication from position > file size"),
            (false, "Could not find first log file name in binary log index file"),
        ] {
            let e = server_refusal(first, at("mysql-bin.000002", 1000), message.into());
            let text = e.to_string();
            assert!(matches!(e, SourceError::ServerStopped { .. }), "{text}");
            assert!(text.contains("mysql-bin.000002:1000"), "{text}");
            assert!(text.contains(message), "{text}");
            assert!(!text.contains("delete the position file"), "{text}");
            assert!(!e.is_retryable(), "{text}");
        }
    }
}
