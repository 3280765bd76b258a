//! The live binlog source: a replica connection that feeds the [`Processor`].
//!
//! Design note: this is the I/O half of the source. It connects as a replica with
//! `mysql_async`'s binlog stream, asks MariaDB for its GTID events
//! (`@mariadb_slave_capability=4`), turns a purged start file (server error 1236) into an error
//! that names the saved position and the remedy, and answers the processor's catalog requests
//! from `information_schema` over a second connection. It stops only at a transaction boundary
//! when asked to, so a graceful stop never leaves half a transaction published.

use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts, OptsBuilder};
use tokio::sync::{mpsc, watch};

use super::processor::{Batch, ProcessError, Processor, Step, TableFilter};
use super::schema::{parse_enum_labels, InfoSchemaColumn, InfoSchemaTable};
use crate::config::MysqlConfig;
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
    #[error("the captured table {schema}.{table} does not exist on the server. Check MYSQL_TABLE and MYSQL_SCHEMA (names are case-sensitive), or create the table first")]
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
         and INITIAL_SNAPSHOT=true, or delete the position file to resume from the current head"
    )]
    PositionPurged {
        position: BinlogPosition,
        message: String,
    },
    #[error("binary logging is off on the server: Binary logging must be enabled for CDC (set log_bin in the server configuration and restart it)")]
    BinlogDisabled,
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("the server closed the binlog stream")]
    Closed,
}

impl SourceError {
    /// Whether a reconnect from the last acknowledged position may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Connect { .. }
                | SourceError::ConnectTimeout { .. }
                | SourceError::Stream(_)
                | SourceError::Silent(_)
                | SourceError::Closed
                | SourceError::Query { .. }
        )
    }
}

/// Connection options for a MySQL config (TCP only, so that the configured server is the one used).
pub fn connect_opts(cfg: &MysqlConfig, host: &str) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(cfg.password.clone()))
        .prefer_socket(false)
        .stmt_cache_size(0)
        .into()
}

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, giving up after [`CONNECT_TIMEOUT`]. Every failure is retryable here: a server
/// that restarts refuses connections for a while.
pub async fn connect(cfg: &MysqlConfig) -> Result<Conn, SourceError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(connect_opts(cfg, &cfg.host))).await {
        Err(_) => Err(SourceError::ConnectTimeout {
            host: cfg.host.clone(),
            port: cfg.port,
            timeout: CONNECT_TIMEOUT,
        }),
        Ok(r) => r.map_err(|source| SourceError::Connect {
            host: cfg.host.clone(),
            port: cfg.port,
            source,
        }),
    }
}

/// Server errors that mean the credentials (or the user's host) are refused: ER_ACCESS_DENIED,
/// ER_DBACCESS_DENIED, ER_ACCESS_DENIED_NO_PASSWORD, ER_PASSWORD_NO_MATCH and the expired or
/// locked account errors.
const AUTH_ERRORS: &[u16] = &[1044, 1045, 1698, 1133, 1862, 3118, 4151];

/// Checks, once at start, what no reconnect can heal: the credentials, `binlog_format=ROW`, and
/// that every captured table exists. Each failure is a non-retryable error that names the
/// setting to change. (Later disconnects stay retryable.)
pub async fn preflight(cfg: &MysqlConfig, tables: &[(String, String)]) -> Result<(), SourceError> {
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
    let q = |context| move |source| SourceError::Query { context, source };
    let log_bin: Option<String> = conn
        .query_first("SELECT @@global.log_bin")
        .await
        .map_err(q("SELECT @@global.log_bin"))?;
    if !matches!(log_bin.as_deref(), Some("1") | Some("ON")) {
        return Err(SourceError::BinlogDisabled);
    }
    let format: Option<String> = conn
        .query_first("SELECT @@global.binlog_format")
        .await
        .map_err(q("SELECT @@global.binlog_format"))?;
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
            .map_err(q("reading information_schema.TABLES"))?;
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

/// Whether the server is MariaDB (as opposed to MySQL).
pub async fn is_mariadb(conn: &mut Conn) -> Result<bool, SourceError> {
    let v: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|source| SourceError::Query {
            context: "SELECT VERSION()",
            source,
        })?;
    Ok(v.unwrap_or_default()
        .to_ascii_lowercase()
        .contains("mariadb"))
}

/// The server's current binlog head: where a pipeline without a saved position starts.
pub async fn current_head(conn: &mut Conn) -> Result<BinlogPosition, SourceError> {
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
        conn.query_first::<String, _>("SELECT @@gtid_binlog_pos")
            .await
            .map_err(|source| SourceError::Query {
                context: "SELECT @@gtid_binlog_pos",
                source,
            })?
            .filter(|g| !g.is_empty())
    } else {
        None
    };
    Ok(BinlogPosition {
        file,
        pos,
        gtid,
        timestamp: 0,
    })
}

/// Reads column metadata of one table from `information_schema`.
pub async fn fetch_catalog(
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

/// Connects as a replica and asks for the binlog from `at`. MariaDB is asked for its GTID
/// events (`@mariadb_slave_capability=4`); both servers send a heartbeat every second. Returns
/// the stream and whether the server is MariaDB.
pub(crate) async fn open_replica_stream(
    cfg: &MysqlConfig,
    at: &BinlogPosition,
) -> Result<(mysql_async::BinlogStream, bool), SourceError> {
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
    let request = BinlogStreamRequest::new(cfg.server_id)
        .with_filename(at.file.as_bytes())
        .with_pos(at.pos);
    let stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(SourceError::Stream)?;
    Ok((stream, mariadb))
}

/// Streams the binlog from `start`, sending batches to `tx` until `stop` turns true (then it
/// finishes the open transaction first) or an error occurs.
pub async fn stream(
    cfg: &MysqlConfig,
    filter: TableFilter,
    start: BinlogPosition,
    max_batch_rows: usize,
    tx: mpsc::Sender<Batch>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SourceError> {
    let (mut binlog, mariadb) = open_replica_stream(cfg, &start).await?;
    tracing::info!(position = %start, mariadb, "streaming the binlog");

    // Sequences and system-versioned tables are known from the catalog only (source::objects).
    let mut c = connect(cfg).await?;
    let kinds = super::objects::table_kinds(&mut c, &filter.tables())
        .await
        .map_err(|e| SourceError::Query { context: e.what, source: e.source })?;
    let mut catalog_conn: Option<Conn> = Some(c);
    let mut processor = Processor::new(filter, &start, max_batch_rows)
        .with_table_kinds(kinds)
        .with_reset_policy(cfg.on_table_reset);
    if cfg.accept_fk_cascades {
        processor = processor.accepting_cascades();
    }
    let mut stopping = *stop.borrow();
    let mut first = true;
    loop {
        if stopping && !processor.in_transaction() {
            break;
        }
        let next = tokio::select! {
            ev = tokio::time::timeout(SILENCE_LIMIT, binlog.next()) => ev,
            _ = stop.changed(), if !stopping => { stopping = true; continue; }
            // The downstream stage is gone (it failed); it reports why.
            _ = tx.closed() => return Ok(()),
        };
        let event = match next {
            Err(_) => return Err(SourceError::Silent(SILENCE_LIMIT)),
            Ok(None) => return Err(SourceError::Closed),
            Ok(Some(Err(e))) => {
                if let mysql_async::Error::Server(ref se) = e {
                    if se.code == 1236 && first {
                        return Err(SourceError::PositionPurged {
                            position: start,
                            message: se.message.clone(),
                        });
                    }
                    if se.code == 1236 {
                        return Err(SourceError::PositionPurged {
                            position: BinlogPosition {
                                file: processor.current_file().to_owned(),
                                ..start
                            },
                            message: se.message.clone(),
                        });
                    }
                }
                return Err(SourceError::Stream(e));
            }
            Ok(Some(Ok(ev))) => ev,
        };
        first = false;
        loop {
            match processor.handle(&event)? {
                Step::Continue => break,
                Step::Emit => {
                    let batch = processor.take_batch();
                    if tx.send(batch).await.is_err() {
                        // The downstream stage is gone (it failed or shut down); it reports why.
                        return Ok(());
                    }
                    break;
                }
                Step::NeedCatalog { schema, table } => {
                    if catalog_conn.is_none() {
                        catalog_conn = Some(connect(cfg).await?);
                    }
                    let c = catalog_conn.as_mut().expect("connected above");
                    let info = fetch_catalog(c, &schema, &table).await?;
                    let defined = definition_time(c, &schema, &table).await?;
                    tracing::debug!(%schema, %table, columns = info.columns.len(), "read table metadata from information_schema");
                    if let Some(t) = defined {
                        processor.provide_definition_time(schema.clone(), table.clone(), t);
                    }
                    processor.provide_catalog(schema, table, info);
                }
            }
        }
    }
    drop(binlog);
    if let Some(c) = catalog_conn {
        let _ = c.disconnect().await;
    }
    Ok(())
}
