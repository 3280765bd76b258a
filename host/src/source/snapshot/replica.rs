//! A MariaDB replica as the snapshot host: which primary binlog position its read view matches.
//!
//! Design note (docs/SNAPSHOT.md §8): the replica's own binlog position is useless here, since
//! local writes give it GTIDs the primary does not know (finding 4). What the replica's read
//! view contains is the *table* `mysql.gtid_slave_pos` (plus any `gtid_slave_pos_<engine>`),
//! which the SQL thread updates inside each replicated transaction: read inside the same
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT`, its largest `sub_id` per domain is the GTID
//! state *G* of the view (finding 3). The `@@gtid_slave_pos` variable runs ahead of the view and
//! is never read. *G* is then located in the primary's binlog the way a replica connects: a GTID
//! binlog dump (`@slave_connect_state`). The server sends a fake ROTATE naming the file (with the
//! checksum still in the name: it precedes the FORMAT_DESCRIPTION), the file's first events, and
//! then an artificial GTID_LIST whose `log_pos` is where the first transaction after *G* starts
//! (finding 5); a GTID event that came first would give the same point. The point is accepted
//! only when the primary's `BINLOG_GTID_POS` there equals *G*, compared per domain: a state that
//! maps to no single point (domains applied in another order than the primary logged them, a
//! domain the primary never logged) is refused with both states, and so is a state the primary
//! cannot find (error 1236: the replica diverged, or lags beyond the primary's retention).
//!
//! Replication filters that could keep a captured table's changes off the replica are refused
//! up front ([`check_filters`]), judged as the server judges a row event: database rules on the
//! table's own database, then the table rules. Ignore rules are compared without regard to
//! case and do rules with it, so a doubt refuses. (DDL arrives as statements, which database
//! rules judge by the default database; that case is not detected here.)

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Row};

use crate::config::MysqlConfig;
use crate::source::binlog::{self, SourceError};
use crate::source::gtid::{MariaGtid, MariaGtidState};
use crate::source::rotate::rotate_file;
use crate::state::BinlogPosition;

/// How long the GTID dump may take to reach the state. The server scans the file from its
/// start without sending the events it skips, so this bounds a scan, not a silence.
const LOCATE_LIMIT: Duration = Duration::from_secs(120);

/// Binlog event types and the header flag the GTID dump is read by.
const ROTATE: u8 = 4;
const MARIADB_GTID: u8 = 162;
const MARIADB_GTID_LIST: u8 = 163;
/// LOG_EVENT_ARTIFICIAL_F: an event the server made up for this stream (the fake ROTATE, the
/// GTID_LIST that marks where the requested state was reached).
const ARTIFICIAL: u16 = 0x20;

/// Why the snapshot host's point could not be mapped to the primary's binlog.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(
        "the snapshot host {host} (MYSQL_SNAPSHOT_HOST) is not a GTID replica of MYSQL_HOST: \
         its mysql.gtid_slave_pos table is empty, so Sluice cannot tell which of the primary's \
         transactions its data holds. Make it a GTID replica (CHANGE MASTER TO … \
         MASTER_USE_GTID=slave_pos, then START SLAVE), or unset MYSQL_SNAPSHOT_HOST to snapshot \
         from MYSQL_HOST"
    )]
    NotGtidReplica { host: String },
    #[error(
        "the snapshot host {host} (MYSQL_SNAPSHOT_HOST) records its replication position in \
         {table}, a {engine} table, which a consistent snapshot does not cover: the position \
         read could be ahead of the rows, and changes would be lost. Convert it (STOP SLAVE; \
         ALTER TABLE {table} ENGINE=InnoDB; START SLAVE), or unset MYSQL_SNAPSHOT_HOST"
    )]
    PositionNotTransactional {
        host: String,
        table: String,
        engine: String,
    },
    #[error(
        "the snapshot host {host} (MYSQL_SNAPSHOT_HOST) refused {what}: {message}. Grant it: \
         GRANT {grant} TO {user}, or unset MYSQL_SNAPSHOT_HOST to snapshot from MYSQL_HOST"
    )]
    Denied {
        host: String,
        what: &'static str,
        grant: &'static str,
        user: String,
        message: String,
    },
    #[error(
        "the snapshot host {host} (MYSQL_SNAPSHOT_HOST) has the replication filter \
         {filter}='{value}'{connection}, which could keep changes to the captured table {table} \
         off the replica, so its copy could be stale. Remove the filter on the replica, or \
         unset MYSQL_SNAPSHOT_HOST to snapshot from MYSQL_HOST"
    )]
    Filtered {
        host: String,
        /// `" (replication connection 'name')"`, or empty for the default connection.
        connection: String,
        filter: &'static str,
        value: String,
        table: String,
    },
    #[error(
        "the primary {primary} (MYSQL_HOST) cannot find the snapshot host's GTID state {state} \
         in its binlog: \"{message}\" (server error 1236; the primary's own state is \
         {primary_state}). The replica diverged or lags beyond the primary's binlog retention. \
         Re-sync the replica from the primary, or unset MYSQL_SNAPSHOT_HOST to snapshot from \
         MYSQL_HOST"
    )]
    NotOnPrimary {
        primary: String,
        state: String,
        message: String,
        primary_state: String,
    },
    #[error(
        "the snapshot host's GTID state {state} matches no single point in the binlog of the \
         primary {primary} (MYSQL_HOST): at {file}:{pos}, where it would start, the primary's \
         state is {found} (BINLOG_GTID_POS). The replica applied its replication domains in \
         another order than the primary logged them, or holds GTIDs the primary never logged. \
         Try again once the replica has caught up, or unset MYSQL_SNAPSHOT_HOST to snapshot \
         from MYSQL_HOST"
    )]
    Mismatch {
        primary: String,
        state: String,
        file: String,
        pos: u64,
        found: String,
    },
    #[error(
        "the primary {primary} (MYSQL_HOST) is not MariaDB: a snapshot host other than \
         MYSQL_HOST is supported for MariaDB only. Unset MYSQL_SNAPSHOT_HOST to snapshot from \
         MYSQL_HOST"
    )]
    PrimaryNotMariadb { primary: String },
    #[error("the replica's GTID state '{state}' cannot be read as domain-server-seq[,…]")]
    BadState { state: String },
    #[error(
        "the GTID dump from the primary {primary} (MYSQL_HOST) did not reach the snapshot host's \
         GTID state {state}: {detail}"
    )]
    NoPoint {
        primary: String,
        state: String,
        detail: String,
    },
    #[error("a query on {host} failed ({context}): {source}")]
    Query {
        host: String,
        context: &'static str,
        source: mysql_async::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl ReplicaError {
    /// Whether trying again (a new epoch, a reconnect) may succeed: lost connections and a dump
    /// cut short may heal; refusals of the replica's set-up or state do not.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            ReplicaError::Query { source, .. } => !matches!(source, mysql_async::Error::Server(_)),
            ReplicaError::NoPoint { .. } => true,
            ReplicaError::Source(e) => e.is_retryable(),
            ReplicaError::NotGtidReplica { .. }
            | ReplicaError::PositionNotTransactional { .. }
            | ReplicaError::Denied { .. }
            | ReplicaError::Filtered { .. }
            | ReplicaError::NotOnPrimary { .. }
            | ReplicaError::Mismatch { .. }
            | ReplicaError::PrimaryNotMariadb { .. }
            | ReplicaError::BadState { .. } => false,
        }
    }
}

/// `host:port` of a connection, for messages.
fn conn_host(conn: &Conn) -> String {
    let o = conn.opts();
    format!("{}:{}", o.ip_or_hostname(), o.tcp_port())
}

/// `'user'` of a connection, for a GRANT in a message (its host part is the operator's to
/// choose).
fn conn_user(conn: &Conn) -> String {
    format!("'{}'", conn.opts().user().unwrap_or_default())
}

/// Server errors that mean a missing privilege: ER_DBACCESS_DENIED, ER_TABLEACCESS_DENIED,
/// ER_SPECIFIC_ACCESS_DENIED.
const DENIED: &[u16] = &[1044, 1142, 1227];

/// Maps a failed query on the replica: a denied privilege names the grant.
fn replica_query_error(
    conn: &Conn,
    what: &'static str,
    grant: &'static str,
) -> impl FnOnce(mysql_async::Error) -> ReplicaError {
    let (host, user) = (conn_host(conn), conn_user(conn));
    move |source| match source {
        mysql_async::Error::Server(se) if DENIED.contains(&se.code) => ReplicaError::Denied {
            host,
            what,
            grant,
            user,
            message: se.message,
        },
        source => ReplicaError::Query {
            host,
            context: what,
            source,
        },
    }
}

/// One row of `mysql.gtid_slave_pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlavePosRow {
    domain: u32,
    sub_id: u64,
    server: u32,
    seq: u64,
}

/// The GTID state a set of `gtid_slave_pos` rows stands for: per domain, the row with the
/// largest `sub_id` (the order the SQL thread committed them in; not the largest `seq_no`).
fn state_from_rows(rows: impl IntoIterator<Item = SlavePosRow>) -> MariaGtidState {
    let mut last: BTreeMap<u32, SlavePosRow> = BTreeMap::new();
    for r in rows {
        match last.get(&r.domain) {
            Some(old) if old.sub_id >= r.sub_id => {}
            _ => {
                last.insert(r.domain, r);
            }
        }
    }
    let mut state = MariaGtidState::default();
    for r in last.values() {
        state.observe(MariaGtid {
            domain: r.domain,
            server: r.server,
            seq: r.seq,
        });
    }
    state
}

/// The GTID state contained in the replica's current read view: read INSIDE the caller's open
/// `START TRANSACTION WITH CONSISTENT SNAPSHOT` on `replica`, from the table
/// `mysql.gtid_slave_pos` and any `mysql.gtid_slave_pos_<engine>` tables (listed from
/// `information_schema`), largest `sub_id` per domain — never the `@@gtid_slave_pos` variable
/// (docs/SNAPSHOT.md finding 3). Empty → [`ReplicaError::NotGtidReplica`].
pub(crate) async fn replica_gtid_state(replica: &mut Conn) -> Result<String, ReplicaError> {
    let tables: Vec<(String, Option<String>)> = replica
        .query(
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'mysql' \
             AND (TABLE_NAME = 'gtid_slave_pos' OR TABLE_NAME LIKE 'gtid\\_slave\\_pos\\_%')",
        )
        .await
        .map_err(replica_query_error(
            replica,
            "listing the mysql.gtid_slave_pos tables",
            "SELECT ON mysql.gtid_slave_pos",
        ))?;
    // The base table is read even when information_schema hides it (no privilege): the denial
    // then names the grant, rather than the replica looking empty.
    let mut names: Vec<String> = vec!["gtid_slave_pos".to_owned()];
    for (name, engine) in &tables {
        let engine = engine.clone().unwrap_or_default();
        if !engine.eq_ignore_ascii_case("InnoDB") {
            return Err(ReplicaError::PositionNotTransactional {
                host: conn_host(replica),
                table: format!("mysql.{name}"),
                engine,
            });
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let mut rows = Vec::new();
    for name in &names {
        let sql = format!(
            "SELECT domain_id, sub_id, server_id, seq_no FROM mysql.`{}`",
            name.replace('`', "``")
        );
        let read: Vec<(u32, u64, u32, u64)> =
            replica.query(sql).await.map_err(replica_query_error(
                replica,
                "reading mysql.gtid_slave_pos",
                "SELECT ON mysql.gtid_slave_pos",
            ))?;
        rows.extend(
            read.into_iter()
                .map(|(domain, sub_id, server, seq)| SlavePosRow {
                    domain,
                    sub_id,
                    server,
                    seq,
                }),
        );
    }
    let state = state_from_rows(rows);
    if state.is_empty() {
        return Err(ReplicaError::NotGtidReplica {
            host: conn_host(replica),
        });
    }
    Ok(state.to_string())
}

/// What one event of the GTID dump says about where the requested state lies.
#[derive(Debug, PartialEq, Eq)]
enum DumpStep {
    /// A ROTATE: the events that follow are in this file.
    File(String),
    /// The state was reached: the first transaction after it starts at this offset.
    Point(u64),
    /// Nothing to learn (FORMAT_DESCRIPTION, the file's own GTID_LIST, a checkpoint, …).
    Skip,
}

/// Reads one event of the GTID dump. The artificial GTID_LIST's `log_pos` is the offset where
/// the stream resumes; a GTID event starts `event_size` bytes before its `log_pos`.
fn dump_step(event: &mysql_common::binlog::events::Event) -> DumpStep {
    let h = event.header();
    match h.event_type_raw() {
        ROTATE => DumpStep::File(rotate_file(event)),
        MARIADB_GTID_LIST if h.flags_raw() & ARTIFICIAL != 0 => {
            DumpStep::Point(u64::from(h.log_pos()))
        }
        MARIADB_GTID if h.log_pos() != 0 => {
            DumpStep::Point(u64::from(h.log_pos()).saturating_sub(u64::from(h.event_size())))
        }
        _ => DumpStep::Skip,
    }
}

/// Locates a GTID state in the primary's binlog: a GTID binlog dump from that state
/// (`@slave_connect_state`, `@slave_gtid_strict_mode=1`, an empty file name), read up to the
/// artificial GTID_LIST or the first GTID event; the file comes from the (fake) ROTATE. Then the
/// primary's `BINLOG_GTID_POS` at that point must equal the state, per domain; otherwise it is
/// refused naming both states. Error 1236 is refused quoting the server. `dump_server_id` must
/// differ from every other replica of the primary, Sluice's own stream included (the server
/// drops an older dump with the same id).
pub(crate) async fn locate_on_primary(
    primary: &MysqlConfig,
    state: &str,
    dump_server_id: u32,
) -> Result<BinlogPosition, ReplicaError> {
    let wanted = MariaGtidState::parse(state)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReplicaError::BadState {
            state: state.to_owned(),
        })?;
    // Normalised: digits, dashes and commas only, so it can stand in the SET below.
    let state = wanted.to_string();
    let primary_name = format!("{}:{}", primary.host, primary.port);
    let query_error = |context: &'static str| {
        let host = primary_name.clone();
        move |source| ReplicaError::Query {
            host,
            context,
            source,
        }
    };

    let mut conn = binlog::connect(primary).await?;
    if !binlog::is_mariadb(&mut conn).await? {
        return Err(ReplicaError::PrimaryNotMariadb {
            primary: primary_name,
        });
    }
    for stmt in [
        "SET @mariadb_slave_capability=4".to_owned(),
        format!("SET @slave_connect_state='{state}'"),
        "SET @slave_gtid_strict_mode=1".to_owned(),
        "SET @@session.net_write_timeout=3600".to_owned(),
    ] {
        conn.query_drop(stmt)
            .await
            .map_err(query_error("preparing the GTID dump"))?;
    }
    let request = BinlogStreamRequest::new(dump_server_id)
        .with_filename(b"")
        .with_pos(4u64);
    let mut dump = conn
        .get_binlog_stream(request)
        .await
        .map_err(query_error("starting the GTID dump"))?;

    let deadline = tokio::time::Instant::now() + LOCATE_LIMIT;
    let mut file: Option<String> = None;
    let found = loop {
        let next = match tokio::time::timeout_at(deadline, dump.next()).await {
            Err(_) => {
                return Err(ReplicaError::NoPoint {
                    primary: primary_name,
                    state,
                    detail: format!("no answer within {LOCATE_LIMIT:?}"),
                })
            }
            Ok(next) => next,
        };
        let event = match next {
            None => {
                return Err(ReplicaError::NoPoint {
                    primary: primary_name,
                    state,
                    detail: "the server closed the stream".to_owned(),
                })
            }
            Some(Err(mysql_async::Error::Server(se))) if se.code == 1236 => {
                let primary_state = primary_binlog_state(primary).await;
                return Err(ReplicaError::NotOnPrimary {
                    primary: primary_name,
                    state,
                    message: se.message,
                    primary_state,
                });
            }
            Some(Err(e)) => return Err(query_error("reading the GTID dump")(e)),
            Some(Ok(event)) => event,
        };
        match dump_step(&event) {
            DumpStep::File(f) => file = Some(f),
            DumpStep::Skip => {}
            DumpStep::Point(pos) => match file.take() {
                Some(file) => break (file, pos),
                None => {
                    return Err(ReplicaError::NoPoint {
                        primary: primary_name,
                        state,
                        detail: format!("the stream reached offset {pos} before naming its file"),
                    })
                }
            },
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), dump.close()).await;
    let (file, pos) = found;

    let mut check = binlog::connect(primary).await?;
    let at: Option<Option<String>> = check
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
        .await
        .map_err(query_error("SELECT BINLOG_GTID_POS"))?;
    let _ = check.disconnect().await;
    let at = at.flatten();
    match at.as_deref().and_then(MariaGtidState::parse) {
        Some(there) if there == wanted => Ok(BinlogPosition {
            file,
            pos,
            gtid: Some(state),
            timestamp: 0,
        }),
        _ => Err(ReplicaError::Mismatch {
            primary: primary_name,
            state,
            file,
            pos,
            found: match at {
                Some(s) if s.is_empty() => "empty".to_owned(),
                Some(s) => s,
                None => "NULL".to_owned(),
            },
        }),
    }
}

/// The primary's `@@gtid_binlog_pos`, for a message; "unknown" when it cannot be read.
async fn primary_binlog_state(primary: &MysqlConfig) -> String {
    let Ok(mut c) = binlog::connect(primary).await else {
        return "unknown".to_owned();
    };
    let s: Option<String> = c
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .ok()
        .flatten();
    let _ = c.disconnect().await;
    match s {
        Some(s) if !s.is_empty() => s,
        Some(_) => "empty".to_owned(),
        None => "unknown".to_owned(),
    }
}

/// The replication filters of one replication connection, as `SHOW ALL SLAVES STATUS` gives
/// them.
#[derive(Debug, Default, Clone)]
struct Filters {
    do_db: String,
    ignore_db: String,
    do_table: String,
    ignore_table: String,
    wild_do_table: String,
    wild_ignore_table: String,
    rewrite_db: String,
    ignore_server_ids: String,
    do_domain_ids: String,
    ignore_domain_ids: String,
}

/// The items of a comma-separated filter list.
fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// MySQL's wildcard match of `replicate-wild-*-table` (`%` any run, `_` one character, `\`
/// escapes the next), over the whole `db.table` text.
fn wild_match(pattern: &str, text: &str, fold_case: bool) -> bool {
    let fold = |c: char| {
        if fold_case {
            c.to_lowercase().next().unwrap_or(c)
        } else {
            c
        }
    };
    /// One element of a pattern.
    #[derive(Clone, Copy)]
    enum Tok {
        /// This character (an escaped `%` or `_` included).
        Lit(char),
        /// `_`: any one character.
        One,
        /// `%`: any run of characters, the empty one included.
        Any,
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '\\' => Tok::Lit(fold(chars.next().unwrap_or('\\'))),
            '_' => Tok::One,
            '%' => Tok::Any,
            c => Tok::Lit(fold(c)),
        });
    }
    let text: Vec<char> = text.chars().map(fold).collect();
    // Iterative match with backtracking to the last `%`.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| matches!(t, Tok::Any))
}

/// Which filter could keep a row event on `schema.table` off the replica, and its value;
/// `None` when every filter lets it through. Follows the server's order for row events:
/// database rules on the table's own database, then do-table, ignore-table, wild-do-table,
/// wild-ignore-table, and "no do rule matched" last.
fn excluding_filter(f: &Filters, schema: &str, table: &str) -> Option<(&'static str, String)> {
    for (name, value) in [
        ("Replicate_Ignore_Server_Ids", &f.ignore_server_ids),
        ("Replicate_Do_Domain_Ids", &f.do_domain_ids),
        ("Replicate_Ignore_Domain_Ids", &f.ignore_domain_ids),
    ] {
        // Which server or domain writes a captured table is unknown here: any such filter
        // could drop its changes.
        if !value.trim().is_empty() {
            return Some((name, value.clone()));
        }
    }
    for rule in items(&f.rewrite_db) {
        let (from, to) = rule.split_once("->").unwrap_or((rule, rule));
        if from.trim().eq_ignore_ascii_case(schema) || to.trim().eq_ignore_ascii_case(schema) {
            return Some(("Replicate_Rewrite_DB", f.rewrite_db.clone()));
        }
    }
    if items(&f.do_db).next().is_some() {
        if !items(&f.do_db).any(|d| d == schema) {
            return Some(("Replicate_Do_DB", f.do_db.clone()));
        }
    } else if items(&f.ignore_db).any(|d| d.eq_ignore_ascii_case(schema)) {
        return Some(("Replicate_Ignore_DB", f.ignore_db.clone()));
    }
    let key = format!("{schema}.{table}");
    if items(&f.do_table).any(|t| t == key) {
        return None;
    }
    if items(&f.ignore_table).any(|t| t.eq_ignore_ascii_case(&key)) {
        return Some(("Replicate_Ignore_Table", f.ignore_table.clone()));
    }
    if items(&f.wild_do_table).any(|p| wild_match(p, &key, false)) {
        return None;
    }
    if items(&f.wild_ignore_table).any(|p| wild_match(p, &key, true)) {
        return Some(("Replicate_Wild_Ignore_Table", f.wild_ignore_table.clone()));
    }
    if items(&f.do_table).next().is_some() {
        return Some(("Replicate_Do_Table", f.do_table.clone()));
    }
    if items(&f.wild_do_table).next().is_some() {
        return Some(("Replicate_Wild_Do_Table", f.wild_do_table.clone()));
    }
    None
}

/// Refuses a replica whose replication filters (`Replicate_Do_DB`, `Replicate_Ignore_DB`,
/// `Replicate_Do_Table`, `Replicate_Ignore_Table`, `Replicate_Wild_*`, `Replicate_Rewrite_DB`,
/// and the server-id and domain filters) could exclude one of `tables` (`(schema, table)`
/// pairs), on any of its replication connections. Needs SLAVE MONITOR; a denial names the
/// grant.
pub(crate) async fn check_filters(
    replica: &mut Conn,
    tables: &[(String, String)],
) -> Result<(), ReplicaError> {
    let rows: Vec<Row> =
        replica
            .query("SHOW ALL SLAVES STATUS")
            .await
            .map_err(replica_query_error(
                replica,
                "SHOW ALL SLAVES STATUS",
                "SLAVE MONITOR ON *.*",
            ))?;
    for row in &rows {
        let get = |name: &str| -> String {
            row.get_opt::<Option<String>, _>(name)
                .and_then(Result::ok)
                .flatten()
                .unwrap_or_default()
        };
        let filters = Filters {
            do_db: get("Replicate_Do_DB"),
            ignore_db: get("Replicate_Ignore_DB"),
            do_table: get("Replicate_Do_Table"),
            ignore_table: get("Replicate_Ignore_Table"),
            wild_do_table: get("Replicate_Wild_Do_Table"),
            wild_ignore_table: get("Replicate_Wild_Ignore_Table"),
            rewrite_db: get("Replicate_Rewrite_DB"),
            ignore_server_ids: get("Replicate_Ignore_Server_Ids"),
            do_domain_ids: get("Replicate_Do_Domain_Ids"),
            ignore_domain_ids: get("Replicate_Ignore_Domain_Ids"),
        };
        let name = get("Connection_name");
        for (schema, table) in tables {
            if let Some((filter, value)) = excluding_filter(&filters, schema, table) {
                return Err(ReplicaError::Filtered {
                    host: conn_host(replica),
                    connection: if name.is_empty() {
                        String::new()
                    } else {
                        format!(" (replication connection '{name}')")
                    },
                    filter,
                    value,
                    table: format!("{schema}.{table}"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(domain: u32, sub_id: u64, server: u32, seq: u64) -> SlavePosRow {
        SlavePosRow {
            domain,
            sub_id,
            server,
            seq,
        }
    }

    #[test]
    fn the_state_is_the_largest_sub_id_per_domain() {
        // Domain 0: sub_id 9 is the last committed, even though an older row has a larger seq
        // (a new primary restarted the sequence under another server id).
        let s = state_from_rows([
            row(0, 7, 1, 500),
            row(0, 9, 2, 3),
            row(0, 8, 1, 501),
            row(1, 4, 1, 40),
            row(1, 3, 1, 39),
        ]);
        assert_eq!(s.to_string(), "0-2-3,1-1-40");
        assert!(state_from_rows([]).is_empty());
        assert_eq!(state_from_rows([row(5, 1, 9, 1)]).to_string(), "5-9-1");
    }

    #[test]
    fn states_compare_per_domain_as_sets() {
        let p = |s: &str| MariaGtidState::parse(s).unwrap();
        assert_eq!(p("0-1-42,1-2-7"), p("1-2-7,0-1-42"));
        assert_eq!(p(" 0-1-42 , 1-2-7 "), p("1-2-7,0-1-42"));
        assert_ne!(p("0-1-42"), p("0-1-42,1-2-7"));
        assert_ne!(p("0-1-42"), p("0-1-43"));
        // The same sequence number from another server is another GTID.
        assert_ne!(p("0-1-42"), p("0-2-42"));
    }

    /// An event as the server sends it: the 19-byte header, then `body`, read the way
    /// mysql_common reads it before any FORMAT_DESCRIPTION (knowing of no checksum).
    fn event(
        kind: u8,
        flags: u16,
        log_pos: u32,
        body: &[u8],
    ) -> mysql_common::binlog::events::Event {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes()); // timestamp
        bytes.push(kind);
        bytes.extend_from_slice(&1u32.to_le_bytes()); // server_id
        bytes.extend_from_slice(&(19 + body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&log_pos.to_le_bytes());
        bytes.extend_from_slice(&flags.to_le_bytes());
        bytes.extend_from_slice(body);
        let fde = mysql_common::binlog::events::FormatDescriptionEvent::new(
            mysql_common::binlog::consts::BinlogVersion::Version4,
        );
        mysql_common::binlog::events::Event::read(&fde, &bytes[..]).unwrap()
    }

    fn rotate_event(flags: u16, body: &[u8]) -> mysql_common::binlog::events::Event {
        event(ROTATE, flags, 0, body)
    }

    #[test]
    fn the_point_is_the_artificial_gtid_list_or_the_first_gtid() {
        // As MariaDB 10.11 sent them: the file's own GTID_LIST (flags 0) says nothing; the
        // artificial one (flags 0x20, timestamp 0) carries the resume offset in log_pos.
        let list = [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 214, 5, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            dump_step(&event(MARIADB_GTID_LIST, 0, 285, &[0; 4])),
            DumpStep::Skip
        );
        assert_eq!(
            dump_step(&event(MARIADB_GTID_LIST, ARTIFICIAL, 298_245, &list)),
            DumpStep::Point(298_245)
        );
        // A GTID event (42 bytes with its checksum, here 19 + 23) ends at log_pos.
        assert_eq!(
            dump_step(&event(MARIADB_GTID, 0x08, 298_287, &[0; 23])),
            DumpStep::Point(298_287 - 42)
        );
        assert_eq!(dump_step(&event(15, 0, 256, &[0; 4])), DumpStep::Skip);
    }

    #[test]
    fn the_fake_rotate_loses_its_checksum() {
        // The opening ROTATE of a GTID dump from MariaDB 10.11 (binlog_checksum=CRC32), as
        // mysql_common hands it over: its data still ends with the CRC32.
        let body: Vec<u8> = vec![
            4, 0, 0, 0, 0, 0, 0, 0, 109, 121, 115, 113, 108, 45, 98, 105, 110, 46, 48, 48, 48, 48,
            48, 49, 31, 14, 172, 104,
        ];
        let event = rotate_event(ARTIFICIAL, &body);
        assert_eq!(event.data().len(), body.len());
        assert_eq!(dump_step(&event), DumpStep::File("mysql-bin.000001".into()));
        // Without a checksum (binlog_checksum=NONE, or stripped already) the name is whole.
        let event = rotate_event(ARTIFICIAL, &body[..body.len() - 4]);
        assert_eq!(rotate_file(&event), "mysql-bin.000001");
        // Four bytes that are not the checksum stay part of the name.
        let mut odd = body[..body.len() - 4].to_vec();
        odd.extend_from_slice(b".bak");
        assert_eq!(
            rotate_file(&rotate_event(ARTIFICIAL, &odd)),
            "mysql-bin.000001.bak"
        );
    }

    fn filters() -> Filters {
        Filters::default()
    }

    fn excluded(f: &Filters, schema: &str, table: &str) -> Option<&'static str> {
        excluding_filter(f, schema, table).map(|(name, _)| name)
    }

    #[test]
    fn no_filter_excludes_nothing() {
        assert_eq!(excluded(&filters(), "shop", "orders"), None);
    }

    #[test]
    fn database_rules_judge_the_tables_own_database() {
        let f = Filters {
            do_db: "shop,crm".into(),
            ..filters()
        };
        assert_eq!(excluded(&f, "shop", "orders"), None);
        assert_eq!(excluded(&f, "other", "orders"), Some("Replicate_Do_DB"));
        // Do rules are compared with case: a doubt refuses.
        assert_eq!(excluded(&f, "Shop", "orders"), Some("Replicate_Do_DB"));

        let f = Filters {
            ignore_db: "scratch".into(),
            ..filters()
        };
        assert_eq!(excluded(&f, "shop", "orders"), None);
        assert_eq!(excluded(&f, "SCRATCH", "t"), Some("Replicate_Ignore_DB"));
        // With a do list, the ignore list is not consulted (the server's order).
        let f = Filters {
            do_db: "shop".into(),
            ignore_db: "shop".into(),
            ..filters()
        };
        assert_eq!(excluded(&f, "shop", "orders"), None);
    }

    #[test]
    fn table_rules_in_the_servers_order() {
        let f = Filters {
            do_table: "shop.orders".into(),
            ..filters()
        };
        assert_eq!(excluded(&f, "shop", "orders"), None);
        assert_eq!(excluded(&f, "shop", "items"), Some("Replicate_Do_Table"));

        let f = Filters {
            ignore_table: "shop.audit, shop.Orders".into(),
            ..filters()
        };
        assert_eq!(
            excluded(&f, "shop", "orders"),
            Some("Replicate_Ignore_Table")
        );
        assert_eq!(excluded(&f, "shop", "items"), None);

        // A do-table match wins over an ignore rule; a wild do rule too.
        let f = Filters {
            do_table: "shop.orders".into(),
            ignore_table: "shop.orders".into(),
            wild_ignore_table: "shop.%".into(),
            ..filters()
        };
        assert_eq!(excluded(&f, "shop", "orders"), None);
        assert_eq!(
            excluded(&f, "shop", "items"),
            Some("Replicate_Wild_Ignore_Table")
        );

        let f = Filters {
            wild_do_table: "shop.ord%".into(),
            ..filters()
        };
        assert_eq!(excluded(&f, "shop", "orders"), None);
        assert_eq!(
            excluded(&f, "shop", "items"),
            Some("Replicate_Wild_Do_Table")
        );
    }

    #[test]
    fn wildcards() {
        assert!(wild_match("shop.%", "shop.orders", false));
        assert!(wild_match("%", "a.b", false));
        assert!(wild_match("sh_p.o%s", "shop.orders", false));
        assert!(!wild_match("sh_p.o%s", "shop.order", false));
        assert!(wild_match("s%.%", "shop.orders", false));
        // `%` may span the dot: the pattern is matched against `db.table` as a whole.
        assert!(wild_match("sh%rs", "shop.orders", false));
        assert!(!wild_match("shop.", "shop.orders", false));
        assert!(!wild_match("shop.orders_", "shop.orders", false));
        // `\_` is a literal underscore.
        assert!(wild_match("shop.a\\_b", "shop.a_b", false));
        assert!(!wild_match("shop.a\\_b", "shop.axb", false));
        assert!(wild_match("shop.a_b", "shop.axb", false));
        // Case: folded for ignore rules only.
        assert!(!wild_match("SHOP.%", "shop.orders", false));
        assert!(wild_match("SHOP.%", "shop.orders", true));
        let f = Filters {
            wild_ignore_table: "SHOP.%".into(),
            ..filters()
        };
        assert_eq!(
            excluded(&f, "shop", "orders"),
            Some("Replicate_Wild_Ignore_Table")
        );
        assert!(wild_match("%%x", "abx", false));
        assert!(!wild_match("%x%y", "ayx", false));
    }

    #[test]
    fn rewrites_and_server_or_domain_filters_refuse() {
        let f = Filters {
            rewrite_db: "staging->shop".into(),
            ..filters()
        };
        assert_eq!(excluded(&f, "shop", "orders"), Some("Replicate_Rewrite_DB"));
        assert_eq!(excluded(&f, "crm", "orders"), None);
        for f in [
            Filters {
                ignore_server_ids: "7".into(),
                ..filters()
            },
            Filters {
                do_domain_ids: "0".into(),
                ..filters()
            },
            Filters {
                ignore_domain_ids: "3,4".into(),
                ..filters()
            },
        ] {
            assert!(excluded(&f, "shop", "orders").is_some(), "{f:?}");
        }
    }

    #[test]
    fn messages_name_the_states_and_the_remedy() {
        let e = ReplicaError::Mismatch {
            primary: "db1:3306".into(),
            state: "0-1-5,3-1-4".into(),
            file: "mysql-bin.000001".into(),
            pos: 1255,
            found: "0-1-5".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("0-1-5,3-1-4") && text.contains("is 0-1-5 "),
            "{text}"
        );
        assert!(text.contains("MYSQL_SNAPSHOT_HOST"), "{text}");
        assert!(!e.is_retryable());
        let e = ReplicaError::NotOnPrimary {
            primary: "db1:3306".into(),
            state: "0-7-5".into(),
            message: "Error: connecting slave requested to start from GTID 0-7-5, which is not in the master's binlog".into(),
            primary_state: "0-1-1500".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("0-7-5") && text.contains("0-1-1500"),
            "{text}"
        );
        assert!(
            text.contains("which is not in the master's binlog"),
            "{text}"
        );
        assert!(
            text.contains("lags beyond the primary's binlog retention"),
            "{text}"
        );
        assert!(ReplicaError::NoPoint {
            primary: "p".into(),
            state: "0-1-1".into(),
            detail: "closed".into()
        }
        .is_retryable());
    }

    /// Live: `scripts/services.sh up` and `scripts/services.sh replica` (a GTID replica on
    /// 13309 of the MariaDB on 13306). Run with `cargo test -p sluice --lib -- --ignored replica`.
    mod live {
        use super::super::*;
        use futures_util::FutureExt;
        use mysql_async::Opts;

        fn env_or(name: &str, default: &str) -> String {
            std::env::var(name).unwrap_or_else(|_| default.to_owned())
        }

        fn primary() -> MysqlConfig {
            MysqlConfig {
                host: "127.0.0.1".into(),
                port: env_or("SLUICE_TEST_MYSQL_PORT", "13306").parse().unwrap(),
                user: "admin".into(),
                password: "admin-pw".into(),
                database: "mysql".into(),
                schema: "mysql".into(),
                tables: vec![],
                include: Vec::new(),
                exclude: Vec::new(),
                snapshot_host: String::new(),
                server_id: 4_100_000 + std::process::id() % 10_000 * 2,
                on_table_reset: Default::default(),
                accept_fk_cascades: false,
                ssl: Default::default(),
            }
        }

        async fn replica() -> Conn {
            let url = env_or(
                "SLUICE_TEST_MYSQL_REPLICA_URL",
                "mysql://admin:admin-pw@127.0.0.1:13309",
            );
            Conn::new(Opts::from_url(&url).unwrap()).await.unwrap()
        }

        async fn value<T: mysql_async::prelude::FromValue + Send + 'static>(
            c: &mut Conn,
            sql: &str,
        ) -> T {
            c.query_first(sql).await.unwrap().unwrap()
        }

        /// Waits until the replica has applied everything the primary logged so far.
        async fn catch_up(p: &mut Conn, r: &mut Conn) {
            let head: String = value(p, "SELECT @@gtid_binlog_pos").await;
            let waited: i64 = value(r, &format!("SELECT MASTER_GTID_WAIT('{head}', 60)")).await;
            assert_eq!(waited, 0, "the replica did not reach {head}");
        }

        /// The sequence number of domain 0 in a state.
        fn seq0(state: &str) -> u64 {
            state
                .split(',')
                .find_map(|g| g.trim().strip_prefix("0-"))
                .and_then(|rest| rest.split('-').nth(1))
                .unwrap()
                .parse()
                .unwrap()
        }

        /// The first event at a binlog position of the primary: (type, info).
        async fn event_at(p: &mut Conn, at: &BinlogPosition) -> Option<(String, String)> {
            let row: Option<Row> = p
                .query_first(format!(
                    "SHOW BINLOG EVENTS IN '{}' FROM {} LIMIT 1",
                    at.file, at.pos
                ))
                .await
                .unwrap();
            row.map(|r| (r.get("Event_type").unwrap(), r.get("Info").unwrap()))
        }

        /// Asserts that `at` is where the primary logged the first transaction after `state`
        /// (a GTID event with the next sequence number of domain 0).
        async fn assert_next_transaction(p: &mut Conn, at: &BinlogPosition, state: &str) {
            let (kind, info) = event_at(p, at)
                .await
                .unwrap_or_else(|| panic!("no event at {at}"));
            assert_eq!(kind, "Gtid", "{at}: {info}");
            let gtid = info.rsplit(' ').next().unwrap();
            assert_eq!(
                gtid,
                format!("0-1-{}", seq0(state) + 1),
                "{at}: {info} after {state}"
            );
        }

        /// (file sequence number, offset), for ordering positions.
        fn order(file: &str, pos: u64) -> (u64, u64) {
            (file.rsplit('.').next().unwrap().parse().unwrap(), pos)
        }

        #[tokio::test]
        #[ignore = "needs scripts/services.sh up and scripts/services.sh replica"]
        async fn live_replica_snapshot_maps_to_the_primarys_next_transaction() {
            let cfg = primary();
            let db = format!("sluice_replica_{}", std::process::id());
            let mut p = binlog::connect(&cfg).await.unwrap();
            let mut r = replica().await;
            let mut r2 = replica().await;
            // The replica must be replicating before the test starts.
            let status: Row = r2.query_first("SHOW SLAVE STATUS").await.unwrap().unwrap();
            let sql: String = status.get("Slave_SQL_Running").unwrap();
            assert_eq!(sql, "Yes", "run scripts/services.sh replica");
            p.query_drop(format!(
                "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB"
            ))
            .await
            .unwrap();

            let body = async {
                // 1. A snapshot of a replica that is caught up, with writes going on after it.
                for i in 1..=20 {
                    p.query_drop(format!("INSERT INTO {db}.t VALUES ({i}, {i})"))
                        .await
                        .unwrap();
                }
                catch_up(&mut p, &mut r2).await;
                r.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .unwrap();
                let state = replica_gtid_state(&mut r).await.unwrap();
                for i in 21..=30 {
                    p.query_drop(format!("INSERT INTO {db}.t VALUES ({i}, {i})"))
                        .await
                        .unwrap();
                }
                catch_up(&mut p, &mut r2).await;
                // The view keeps its state while the variable moves on (finding 3).
                assert_eq!(replica_gtid_state(&mut r).await.unwrap(), state);
                let moved: String = value(&mut r2, "SELECT @@gtid_slave_pos").await;
                assert!(seq0(&moved) > seq0(&state), "{moved} vs {state}");
                let seen: i64 = value(&mut r, &format!("SELECT COUNT(*) FROM {db}.t")).await;
                assert_eq!(seen, 20);
                let at = locate_on_primary(&cfg, &state, cfg.server_id + 1)
                    .await
                    .unwrap();
                assert_eq!(at.gtid.as_deref(), Some(state.as_str()));
                assert_next_transaction(&mut p, &at, &state).await;
                let check: String = p
                    .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&at.file, at.pos))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(check, state);
                r.query_drop("COMMIT").await.unwrap();
                eprintln!("caught up: state {state} is at {at}");

                // 2. The SQL thread stopped: the point is older than the primary's head, and
                //    still exact.
                r2.query_drop("STOP SLAVE SQL_THREAD").await.unwrap();
                for i in 31..=40 {
                    p.query_drop(format!("INSERT INTO {db}.t VALUES ({i}, {i})"))
                        .await
                        .unwrap();
                }
                r.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .unwrap();
                let stale = replica_gtid_state(&mut r).await.unwrap();
                let seen: i64 = value(&mut r, &format!("SELECT COUNT(*) FROM {db}.t")).await;
                assert_eq!(seen, 30);
                let old = locate_on_primary(&cfg, &stale, cfg.server_id + 1)
                    .await
                    .unwrap();
                let head: Row = p.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
                let (head_file, head_pos): (String, u64) =
                    (head.get(0).unwrap(), head.get(1).unwrap());
                assert!(
                    order(&old.file, old.pos) < order(&head_file, head_pos),
                    "{old} vs head {head_file}:{head_pos}"
                );
                let head_state: String = value(&mut p, "SELECT @@gtid_binlog_pos").await;
                assert!(
                    seq0(&stale) + 10 <= seq0(&head_state),
                    "{stale} vs {head_state}"
                );
                assert_next_transaction(&mut p, &old, &stale).await;
                r.query_drop("COMMIT").await.unwrap();
                eprintln!("stopped: state {stale} is at {old}, the head at {head_file}:{head_pos}");

                // 3. Filters, checked while replication is stopped (they can be set only then).
                r2.query_drop("STOP SLAVE").await.unwrap();
                let tables = [(db.clone(), "t".to_owned())];
                check_filters(&mut r2, &tables).await.unwrap();
                r2.query_drop(format!("SET GLOBAL replicate_wild_ignore_table='{db}.%'"))
                    .await
                    .unwrap();
                let refused = check_filters(&mut r2, &tables).await.unwrap_err();
                let text = refused.to_string();
                assert!(text.contains("Replicate_Wild_Ignore_Table"), "{text}");
                assert!(text.contains(&format!("{db}.t")), "{text}");
                r2.query_drop("SET GLOBAL replicate_wild_ignore_table=''")
                    .await
                    .unwrap();
                r2.query_drop("START SLAVE").await.unwrap();
                catch_up(&mut p, &mut r2).await;

                // 4. States the primary cannot place.
                let e = locate_on_primary(&cfg, "0-1-999999999", cfg.server_id + 1)
                    .await
                    .unwrap_err();
                assert!(matches!(e, ReplicaError::NotOnPrimary { .. }), "{e}");
                assert!(e.to_string().contains("not in the master's binlog"), "{e}");
                let e = locate_on_primary(&cfg, &format!("{stale},77-1-3"), cfg.server_id + 1)
                    .await
                    .unwrap_err();
                assert!(matches!(e, ReplicaError::Mismatch { .. }), "{e}");
                eprintln!("refusals: {e}");
                // The primary itself is no replica.
                p.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .unwrap();
                let e = replica_gtid_state(&mut p).await.unwrap_err();
                assert!(matches!(e, ReplicaError::NotGtidReplica { .. }), "{e}");
                p.query_drop("COMMIT").await.unwrap();

                // 5. A state at the start of a new binlog file (after FLUSH BINARY LOGS).
                p.query_drop("FLUSH BINARY LOGS").await.unwrap();
                catch_up(&mut p, &mut r2).await;
                r.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .unwrap();
                let fresh = replica_gtid_state(&mut r).await.unwrap();
                r.query_drop("COMMIT").await.unwrap();
                p.query_drop(format!("INSERT INTO {db}.t VALUES (41, 41)"))
                    .await
                    .unwrap();
                let at = locate_on_primary(&cfg, &fresh, cfg.server_id + 1)
                    .await
                    .unwrap();
                assert_next_transaction(&mut p, &at, &fresh).await;
                eprintln!("new file: state {fresh} is at {at}");

                // 6. A user without the grants: each refusal names its grant. The user is made
                //    on the replica alone (sql_log_bin=0): a local GTID would stop its SQL thread
                //    under gtid_strict_mode (finding 4).
                let user = format!("sluice_rp_{}", std::process::id());
                r2.query_drop(format!(
                    "SET SESSION sql_log_bin=0; CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; \
                     GRANT SELECT ON {db}.* TO '{user}'@'%'; SET SESSION sql_log_bin=1"
                ))
                .await
                .unwrap();
                let url = env_or(
                    "SLUICE_TEST_MYSQL_REPLICA_URL",
                    "mysql://admin:admin-pw@127.0.0.1:13309",
                )
                .replace("admin:admin-pw", &format!("{user}:pw"));
                let mut weak = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
                weak.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .unwrap();
                let state_denied = replica_gtid_state(&mut weak).await.unwrap_err();
                let filters_denied = check_filters(&mut weak, &tables).await.unwrap_err();
                let _ = weak.disconnect().await;
                r2.query_drop(format!(
                    "SET SESSION sql_log_bin=0; DROP USER '{user}'@'%'; SET SESSION sql_log_bin=1"
                ))
                .await
                .unwrap();
                for (e, grant) in [
                    (&state_denied, "GRANT SELECT ON mysql.gtid_slave_pos TO"),
                    (&filters_denied, "GRANT SLAVE MONITOR ON *.* TO"),
                ] {
                    assert!(matches!(e, ReplicaError::Denied { .. }), "{e}");
                    assert!(e.to_string().contains(grant), "{e}");
                    assert!(!e.is_retryable());
                }
                eprintln!("denied: {state_denied}\ndenied: {filters_denied}");
            };
            let outcome = std::panic::AssertUnwindSafe(body).catch_unwind().await;
            // Leave the replica replicating and without filters, whatever happened.
            let _ = r2.query_drop("STOP SLAVE").await;
            let _ = r2
                .query_drop("SET GLOBAL replicate_wild_ignore_table=''")
                .await;
            let _ = r2.query_drop("START SLAVE").await;
            let mut cleanup = binlog::connect(&cfg).await.unwrap();
            let _ = cleanup
                .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
                .await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}
