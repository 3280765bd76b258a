//! Capturing the epoch point on MySQL, which does not report the binlog position of a read
//! view (no `binlog_snapshot_file`/`_position`): a brief lock on a second connection
//! (`docs/SNAPSHOT.md` §7, "MySQL (no binlog_snapshot_*)").
//!
//! Design note. Two sessions take part: the lock connection *L* and the snapshot connection
//! *S* (its session already prepared: REPEATABLE READ, `time_zone`, …). [`capture`] sends,
//! in this order:
//!
//! 1. *L* and *S*: `SET SESSION lock_wait_timeout = n`. It bounds every wait for a metadata
//!    lock below; a wait that runs out (1205) gives [`Capture::Retry`], and the caller retries
//!    with backoff.
//! 2. *L*: `FLUSH TABLES WITH READ LOCK`. When that is refused for lack of a privilege
//!    (RELOAD; RDS and Aurora refuse it to every user), *L* runs
//!    ``LOCK TABLES `db`.`t1` READ, `db`.`t2` READ, …`` for the captured tables instead. When
//!    both are refused the error names both server messages and both grants.
//! 3. *L*: `XA RECOVER`. A prepared XA transaction gives [`Capture::Retry`].
//! 4. *S*: `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`: the read view.
//! 5. *S*: ``SELECT 1 FROM `db`.`t` LIMIT 0`` for each captured table: *S* takes the tables'
//!    metadata locks, so no DDL can change them until the snapshot ends.
//! 6. *L*: `SHOW BINARY LOG STATUS` (MySQL 8.2+), or `SHOW MASTER STATUS` where that is a
//!    syntax error (1064): the file, the offset and `Executed_Gtid_Set`. That is the point.
//! 7. *L*: `UNLOCK TABLES`, always once the lock was granted, on every error path too. When
//!    it fails (or does not answer), *S* ends *L*'s session with `KILL CONNECTION`, because a
//!    held global read lock blocks every writer of the server. Steps 3–6 must finish within
//!    `lock_wait_timeout` + 5 s, or they are abandoned and the lock released.
//!
//! Why the point matches the read view. With `FLUSH TABLES WITH READ LOCK`, no transaction
//! can commit (nor `XA PREPARE`) from the grant to `UNLOCK TABLES`: the statement waits for
//! commits in progress and then blocks the commit lock. The read view (4) and the position
//! (6) are both taken inside that window, so they hold the same transactions. With
//! `LOCK TABLES … READ`, a transaction that wrote a captured table holds that table's
//! metadata lock until it has committed, so the lock is granted only when none is open, and
//! none can write the table until the unlock. Transactions on other tables still commit in
//! the window, but for the captured tables, the only ones the snapshot reads and the stream
//! publishes, the view and the position agree.
//!
//! The two holes that MariaDB's epoch closes with the window scan are closed by the lock
//! here. An XA transaction prepared before the point and committed after it would publish
//! nothing: its rows are in the binlog before the point and invisible in the view. Under the
//! lock, no XA transaction on a captured table can be prepared or committed, so `XA RECOVER`
//! (3) finding none means that none prepared before the lock can finish after the point. It
//! runs before the view is created because, with table locks, a prepared XA transaction that
//! lost its metadata locks (when its client disconnected) could otherwise commit between the
//! view and the point. A DDL statement on a captured table cannot run under either lock, and
//! the `LIMIT 0` reads (5) take the metadata locks before the unlock.
//!
//! The lock lasts milliseconds. Using a second connection avoids Debezium's problem: there,
//! `UNLOCK TABLES` would commit the snapshot's own transaction, so table locks stay held
//! until every table has been read (`BinlogSnapshotChangeEventSource.java`).
//!
//! Testability: the statements go through [`Session`], implemented for `mysql_async::Conn`
//! (the text protocol, every column as text) and, in the tests, for a scripted session.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::state::BinlogPosition;

/// ER_PARSE_ERROR: `SHOW BINARY LOG STATUS` before MySQL 8.2.
const ER_PARSE_ERROR: u16 = 1064;
/// ER_LOCK_WAIT_TIMEOUT: a metadata lock wait outlasted `lock_wait_timeout`.
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// ER_TABLE_DEF_CHANGED: the table was altered after the read view was created.
const ER_TABLE_DEF_CHANGED: u16 = 1412;
/// Missing privileges: ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR (what RDS and Aurora
/// answer to `FLUSH TABLES WITH READ LOCK`), ER_TABLEACCESS_DENIED_ERROR,
/// ER_COLUMNACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR.
const DENIED: &[u16] = &[1044, 1045, 1142, 1143, 1227];
/// ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR: SELECT refused on a table.
const TABLE_DENIED: &[u16] = &[1142, 1143];

/// How much longer than `lock_wait_timeout` the lock may be held before the capture gives up.
const HOLD_MARGIN: Duration = Duration::from_secs(5);
/// How long `UNLOCK TABLES` (and then `KILL CONNECTION`) may take.
const UNLOCK_LIMIT: Duration = Duration::from_secs(5);

/// A result set: its rows, each column as text (`None` for SQL NULL).
pub(crate) type Rows = Vec<Vec<Option<String>>>;

/// A server session that runs text statements: `mysql_async::Conn`, or a scripted one in
/// tests.
pub(crate) trait Session: Send {
    /// Runs one statement and returns its rows (none for a statement without a result set).
    fn run(&mut self, sql: &str) -> impl Future<Output = Result<Rows, SessionError>> + Send;

    /// The server's id of this session, as `KILL CONNECTION` takes it.
    fn connection_id(&self) -> u64;
}

/// Why a statement failed: the server's error, or a client-side failure (network, protocol).
/// `pub` (like [`MysqlCaptureError`]): `SnapshotError`, which is public, wraps it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The server answered with an error.
    #[error("ERROR {code}: {message}")]
    Server { code: u16, message: String },
    /// The statement did not get an answer from the server.
    #[error("{0}")]
    Other(String),
}

impl SessionError {
    /// The server's error code, if the server answered.
    pub(crate) fn code(&self) -> Option<u16> {
        match self {
            SessionError::Server { code, .. } => Some(*code),
            SessionError::Other(_) => None,
        }
    }

    /// Whether the server refused the statement for lack of a privilege.
    fn is_denied(&self) -> bool {
        self.code().is_some_and(|c| DENIED.contains(&c))
    }
}

impl From<mysql_async::Error> for SessionError {
    fn from(e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(se) => SessionError::Server {
                code: se.code,
                message: se.message,
            },
            other => SessionError::Other(other.to_string()),
        }
    }
}

impl Session for Conn {
    async fn run(&mut self, sql: &str) -> Result<Rows, SessionError> {
        let rows: Vec<Row> = self.query(sql).await?;
        Ok(rows
            .into_iter()
            .map(|row| row.unwrap().into_iter().map(text).collect())
            .collect())
    }

    fn connection_id(&self) -> u64 {
        u64::from(self.id())
    }
}

/// A text-protocol value as text. The text protocol gives only `Bytes` and `NULL`; the other
/// variants are printed as SQL literals.
fn text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        other => Some(other.as_sql(true)),
    }
}

/// What a capture attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Capture {
    /// The snapshot connection's read view matches this binlog point (for every table with
    /// [`LockKind::Global`], for the captured tables with [`LockKind::Tables`]). The lock is
    /// released; the snapshot connection holds the view and the tables' metadata locks.
    Point(BinlogPosition, LockKind),
    /// Not now; retry with backoff. The reason is for the log. The lock is released, and the
    /// snapshot connection may have an open transaction to roll back.
    Retry(String),
}

/// Which lock made the point consistent. `pub` because [`MysqlCaptureError`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// `FLUSH TABLES WITH READ LOCK`: no commit anywhere while it was held.
    Global,
    /// `LOCK TABLES … READ` on the captured tables (no RELOAD, or a managed service).
    Tables,
}

impl LockKind {
    /// The statement that took the lock, for messages.
    pub(crate) fn statement(self) -> &'static str {
        match self {
            LockKind::Global => "FLUSH TABLES WITH READ LOCK",
            LockKind::Tables => "LOCK TABLES … READ",
        }
    }
}

impl std::fmt::Display for LockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.statement())
    }
}

/// Why the MySQL point could not be captured; each message says what to grant or set. After
/// any of these, drop the lock connection (ending its session releases whatever it holds)
/// and roll back the snapshot connection. `pub` because `SnapshotError`, which is public,
/// wraps it (as it wraps `ReplicaError`).
#[derive(Debug, thiserror::Error)]
pub enum MysqlCaptureError {
    /// Neither lock was granted for lack of privileges.
    #[error(
        "on MySQL the snapshot needs a brief lock to read a binlog position that matches its \
         read view: FLUSH TABLES WITH READ LOCK was refused ({global}), and so was LOCK TABLES \
         … READ ({tables}). Grant one of them to the Sluice user: GRANT RELOAD ON *.* (the \
         global read lock, held for milliseconds), or {lock_grants} (read locks on the \
         captured tables only; managed services such as RDS and Aurora allow only these)"
    )]
    LockDenied {
        global: String,
        tables: String,
        lock_grants: String,
    },
    /// `XA RECOVER` was refused (MySQL 8.0 requires XA_RECOVER_ADMIN).
    #[error(
        "the snapshot must check that no XA transaction is prepared, but XA RECOVER was refused \
         ({message}). GRANT XA_RECOVER_ADMIN ON *.* TO the Sluice user"
    )]
    XaRecoverDenied { message: String },
    /// `SHOW BINARY LOG STATUS` / `SHOW MASTER STATUS` was refused.
    #[error(
        "the snapshot cannot read the binlog position: {statement} was refused ({message}). \
         GRANT REPLICATION CLIENT ON *.* TO the Sluice user"
    )]
    StatusDenied {
        statement: &'static str,
        message: String,
    },
    /// The server's binary log is off.
    #[error(
        "{statement} returned no row: binary logging is off on the snapshot host, so there is \
         no position to stream from. Enable it (log_bin, binlog_format=ROW) and restart the \
         server"
    )]
    BinlogOff { statement: &'static str },
    /// The status row cannot be read as a file and an offset.
    #[error("{statement} returned a row that is not a binlog file and offset: {row}")]
    BadStatus {
        statement: &'static str,
        row: String,
    },
    /// SELECT on a captured table was refused.
    #[error(
        "the snapshot cannot read {table}: {message}. Grant it: GRANT SELECT ON {table} TO the \
         Sluice user (the snapshot reads every captured table)"
    )]
    Denied { table: String, message: String },
    /// Another statement failed.
    #[error("snapshot query failed ({context}): {source}")]
    Query {
        context: String,
        source: SessionError,
    },
    /// The statements under the lock did not finish in time; they were abandoned and the
    /// lock released.
    #[error(
        "the snapshot's lock ({lock}) was held for {limit:?} without the binlog position being \
         read (a connection stopped answering); it was released, and the connections must be \
         opened again"
    )]
    HeldTooLong { lock: LockKind, limit: Duration },
    /// `UNLOCK TABLES` failed; what was done about it.
    #[error(
        "UNLOCK TABLES failed on the snapshot's lock connection (connection id {id}, holding \
         {lock}): {detail}; {kill}{earlier}"
    )]
    Unlock {
        id: u64,
        lock: LockKind,
        detail: String,
        kill: String,
        earlier: String,
    },
}

impl MysqlCaptureError {
    /// Whether trying again (with new connections) may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            MysqlCaptureError::Query { source, .. } => source.code().is_none(),
            MysqlCaptureError::HeldTooLong { .. } | MysqlCaptureError::Unlock { .. } => true,
            MysqlCaptureError::LockDenied { .. }
            | MysqlCaptureError::XaRecoverDenied { .. }
            | MysqlCaptureError::StatusDenied { .. }
            | MysqlCaptureError::BinlogOff { .. }
            | MysqlCaptureError::BadStatus { .. }
            | MysqlCaptureError::Denied { .. } => false,
        }
    }
}

/// A failed statement, named.
fn query(context: impl Into<String>) -> impl FnOnce(SessionError) -> MysqlCaptureError {
    let context = context.into();
    move |source| MysqlCaptureError::Query { context, source }
}

/// Whether the server reports the binlog position of a read view (MariaDB, Percona Server):
/// then the epoch opens without a lock and [`capture`] is not needed. Ask before the
/// snapshot connection starts its transaction.
pub(crate) async fn has_lockless_point<S: Session>(session: &mut S) -> Result<bool, SessionError> {
    let rows = session
        .run("SHOW SESSION STATUS LIKE 'binlog_snapshot_file'")
        .await?;
    Ok(!rows.is_empty())
}

/// Captures a binlog point that matches a new read view on `snapshot` (see the module note):
/// locks through `lock`, starts the consistent snapshot on `snapshot` and takes the metadata
/// locks of `tables` (schema, table), reads the position, unlocks. `lock_wait_timeout_s`
/// bounds each wait for a lock (at least 1 s).
///
/// On `Ok`, the lock is released and `lock` can serve the next attempt. On `Err`, drop
/// `lock`: its session may still hold a lock that only its end releases. If this future is
/// dropped before it completes, drop `lock` too.
pub(crate) async fn capture<L: Session, S: Session>(
    lock: &mut L,
    snapshot: &mut S,
    tables: &[(String, String)],
    lock_wait_timeout_s: u64,
) -> Result<Capture, MysqlCaptureError> {
    let secs = lock_wait_timeout_s.max(1);
    let hold = Duration::from_secs(secs) + HOLD_MARGIN;
    capture_within(lock, snapshot, tables, secs, hold).await
}

/// [`capture`], with the longest time the lock may be held.
async fn capture_within<L: Session, S: Session>(
    lock: &mut L,
    snapshot: &mut S,
    tables: &[(String, String)],
    secs: u64,
    hold: Duration,
) -> Result<Capture, MysqlCaptureError> {
    let set = format!("SET SESSION lock_wait_timeout = {secs}");
    lock.run(&set)
        .await
        .map_err(query(format!("{set} on the lock connection")))?;
    snapshot
        .run(&set)
        .await
        .map_err(query(format!("{set} on the snapshot connection")))?;
    let kind = match take_lock(lock, tables, secs).await? {
        Locked::Held(kind) => kind,
        Locked::Busy(why) => return Ok(Capture::Retry(why)),
    };
    let outcome = match tokio::time::timeout(hold, under_lock(lock, snapshot, tables, kind)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(MysqlCaptureError::HeldTooLong {
            lock: kind,
            limit: hold,
        }),
    };
    match unlock(lock, snapshot).await {
        Ok(()) => outcome,
        Err((detail, kill)) => Err(MysqlCaptureError::Unlock {
            id: lock.connection_id(),
            lock: kind,
            detail,
            kill,
            earlier: match outcome {
                Err(e) => format!(". Before that: {e}"),
                Ok(_) => String::new(),
            },
        }),
    }
}

/// Whether the lock was granted.
enum Locked {
    /// Granted: it must be released.
    Held(LockKind),
    /// Not granted within `lock_wait_timeout`; nothing is held.
    Busy(String),
}

/// Step 2: the global read lock, or read locks on the captured tables where it is refused.
async fn take_lock<L: Session>(
    lock: &mut L,
    tables: &[(String, String)],
    secs: u64,
) -> Result<Locked, MysqlCaptureError> {
    let global = match lock.run("FLUSH TABLES WITH READ LOCK").await {
        Ok(_) => return Ok(Locked::Held(LockKind::Global)),
        Err(e) if e.code() == Some(ER_LOCK_WAIT_TIMEOUT) => {
            return Ok(Locked::Busy(busy(LockKind::Global, secs, &e)))
        }
        Err(e) if e.is_denied() => e,
        Err(e) => return Err(query("FLUSH TABLES WITH READ LOCK")(e)),
    };
    let Some(sql) = lock_tables_sql(tables) else {
        return Err(MysqlCaptureError::LockDenied {
            global: global.to_string(),
            tables: "there is no captured table to lock".to_owned(),
            lock_grants: lock_grants(tables),
        });
    };
    match lock.run(&sql).await {
        Ok(_) => Ok(Locked::Held(LockKind::Tables)),
        Err(e) if e.code() == Some(ER_LOCK_WAIT_TIMEOUT) => {
            Ok(Locked::Busy(busy(LockKind::Tables, secs, &e)))
        }
        Err(e) if e.is_denied() => Err(MysqlCaptureError::LockDenied {
            global: global.to_string(),
            tables: e.to_string(),
            lock_grants: lock_grants(tables),
        }),
        Err(e) => Err(query(format!(
            "LOCK TABLES … READ, after FLUSH TABLES WITH READ LOCK was refused ({global})"
        ))(e)),
    }
}

/// The retry reason for a lock not granted within `lock_wait_timeout`.
fn busy(kind: LockKind, secs: u64, e: &SessionError) -> String {
    format!(
        "{kind} waited longer than lock_wait_timeout ({secs} s) for running statements or \
         open transactions on the tables ({e}); writers queue behind it while it waits"
    )
}

/// `` `schema`.`table` ``, each part quoted with backticks.
fn quoted(schema: &str, table: &str) -> String {
    format!(
        "`{}`.`{}`",
        schema.replace('`', "``"),
        table.replace('`', "``")
    )
}

/// ``LOCK TABLES `db`.`t1` READ, …`` for the captured tables, each named once; `None` for
/// no table.
fn lock_tables_sql(tables: &[(String, String)]) -> Option<String> {
    let mut seen = BTreeSet::new();
    let list: Vec<String> = tables
        .iter()
        .filter(|t| seen.insert(*t))
        .map(|(s, t)| format!("{} READ", quoted(s, t)))
        .collect();
    (!list.is_empty()).then(|| format!("LOCK TABLES {}", list.join(", ")))
}

/// The grants that allow the table locks: LOCK TABLES on each captured schema.
fn lock_grants(tables: &[(String, String)]) -> String {
    let schemas: BTreeSet<&str> = tables.iter().map(|(s, _)| s.as_str()).collect();
    if schemas.is_empty() {
        return "GRANT LOCK TABLES ON <schema>.*".to_owned();
    }
    schemas
        .into_iter()
        .map(|s| format!("GRANT LOCK TABLES ON `{}`.*", s.replace('`', "``")))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Steps 3–6, while the lock is held.
async fn under_lock<L: Session, S: Session>(
    lock: &mut L,
    snapshot: &mut S,
    tables: &[(String, String)],
    kind: LockKind,
) -> Result<Capture, MysqlCaptureError> {
    let prepared = match lock.run("XA RECOVER").await {
        Ok(rows) => rows.len(),
        Err(e) if e.is_denied() => {
            return Err(MysqlCaptureError::XaRecoverDenied {
                message: e.to_string(),
            })
        }
        Err(e) => return Err(query("XA RECOVER")(e)),
    };
    if prepared > 0 {
        return Ok(Capture::Retry(format!(
            "{prepared} XA transaction(s) are prepared; their rows are invisible to the \
             snapshot and their commit could not be attributed (XA RECOVER lists them)"
        )));
    }
    snapshot
        .run("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(query(
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ))?;
    for (schema, table) in tables {
        let sql = format!("SELECT 1 FROM {} LIMIT 0", quoted(schema, table));
        match snapshot.run(&sql).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(ER_TABLE_DEF_CHANGED) => {
                return Ok(Capture::Retry(format!(
                    "{schema}.{table} was altered after the consistent snapshot began"
                )))
            }
            Err(e) if e.code() == Some(ER_LOCK_WAIT_TIMEOUT) => {
                return Ok(Capture::Retry(format!(
                    "opening {schema}.{table} waited longer than lock_wait_timeout, behind a \
                     DDL statement queued on it ({e})"
                )))
            }
            Err(e) if e.code().is_some_and(|c| TABLE_DENIED.contains(&c)) => {
                return Err(MysqlCaptureError::Denied {
                    table: format!("{schema}.{table}"),
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(query(format!("opening {schema}.{table}"))(e)),
        }
    }
    let point = binlog_status(lock).await?;
    Ok(Capture::Point(point, kind))
}

/// Step 6: the binlog position, from `SHOW BINARY LOG STATUS` or, before MySQL 8.2,
/// `SHOW MASTER STATUS`. Columns: File, Position, Binlog_Do_DB, Binlog_Ignore_DB,
/// Executed_Gtid_Set.
async fn binlog_status<L: Session>(lock: &mut L) -> Result<BinlogPosition, MysqlCaptureError> {
    const NEW: &str = "SHOW BINARY LOG STATUS";
    const OLD: &str = "SHOW MASTER STATUS";
    let denied = |statement: &'static str| {
        move |e: SessionError| {
            if e.is_denied() {
                MysqlCaptureError::StatusDenied {
                    statement,
                    message: e.to_string(),
                }
            } else {
                query(statement)(e)
            }
        }
    };
    let (statement, rows) = match lock.run(NEW).await {
        Ok(rows) => (NEW, rows),
        Err(e) if e.code() == Some(ER_PARSE_ERROR) => {
            (OLD, lock.run(OLD).await.map_err(denied(OLD))?)
        }
        Err(e) => return Err(denied(NEW)(e)),
    };
    let Some(row) = rows.into_iter().next() else {
        return Err(MysqlCaptureError::BinlogOff { statement });
    };
    let bad = |row: &[Option<String>]| MysqlCaptureError::BadStatus {
        statement,
        row: format!("{row:?}"),
    };
    let file = row.first().cloned().flatten().unwrap_or_default();
    let pos = row
        .get(1)
        .and_then(|p| p.as_deref())
        .and_then(|p| p.trim().parse::<u64>().ok());
    let Some(pos) = pos.filter(|_| !file.is_empty()) else {
        return Err(bad(&row));
    };
    let gtid = row
        .get(4)
        .and_then(|g| g.as_deref())
        .map(normalise_gtid_set)
        .filter(|g| !g.is_empty());
    Ok(BinlogPosition {
        file,
        pos,
        gtid,
        timestamp: 0,
    })
}

/// `Executed_Gtid_Set` without the newlines and spaces the server puts between its parts.
fn normalise_gtid_set(set: &str) -> String {
    set.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Step 7: `UNLOCK TABLES` on the lock connection; where that fails, the snapshot connection
/// ends the lock connection's session. The error gives what failed and what the kill did.
async fn unlock<L: Session, S: Session>(
    lock: &mut L,
    snapshot: &mut S,
) -> Result<(), (String, String)> {
    let detail = match tokio::time::timeout(UNLOCK_LIMIT, lock.run("UNLOCK TABLES")).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {UNLOCK_LIMIT:?}"),
    };
    let id = lock.connection_id();
    let kill_sql = format!("KILL CONNECTION {id}");
    let kill = match tokio::time::timeout(UNLOCK_LIMIT, snapshot.run(&kill_sql)).await {
        Ok(Ok(_)) => format!(
            "the snapshot connection ended that session ({kill_sql}), which releases its lock"
        ),
        Ok(Err(e)) => format!(
            "{kill_sql} from the snapshot connection failed too ({e}): the lock may still be \
             held and blocks writers until that session ends; drop the lock connection, or \
             run {kill_sql} on the server"
        ),
        Err(_) => format!(
            "{kill_sql} from the snapshot connection got no answer: the lock may still be held \
             and blocks writers until that session ends; drop the lock connection, or run \
             {kill_sql} on the server"
        ),
    };
    tracing::error!(connection = id, %detail, %kill, "UNLOCK TABLES failed on the snapshot's lock connection");
    Err((detail, kill))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a scripted statement answers.
    #[derive(Clone)]
    enum Reply {
        Rows(Rows),
        Fail(SessionError),
        /// Never answers (within the test).
        Hang,
    }

    /// Every statement sent to either session, in order, as `"L: …"` or `"S: …"`.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Log {
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
        fn index(&self, line: &str) -> usize {
            self.lines()
                .iter()
                .position(|l| l == line)
                .unwrap_or_else(|| panic!("{line:?} was not sent: {:#?}", self.lines()))
        }
        fn sent(&self, line: &str) -> bool {
            self.lines().iter().any(|l| l == line)
        }
    }

    /// A scripted session: the first rule whose prefix starts the statement answers it;
    /// anything else succeeds with no rows.
    struct Fake {
        name: &'static str,
        id: u64,
        log: Log,
        rules: Vec<(&'static str, Reply)>,
    }

    impl Fake {
        fn on(mut self, prefix: &'static str, reply: Reply) -> Self {
            self.rules.push((prefix, reply));
            self
        }
    }

    impl Session for Fake {
        async fn run(&mut self, sql: &str) -> Result<Rows, SessionError> {
            self.log
                .0
                .lock()
                .unwrap()
                .push(format!("{}: {sql}", self.name));
            let reply = self
                .rules
                .iter()
                .find(|(prefix, _)| sql.starts_with(prefix))
                .map(|(_, r)| r.clone());
            match reply {
                None => Ok(Vec::new()),
                Some(Reply::Rows(rows)) => Ok(rows),
                Some(Reply::Fail(e)) => Err(e),
                Some(Reply::Hang) => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(Vec::new())
                }
            }
        }

        fn connection_id(&self) -> u64 {
            self.id
        }
    }

    fn err(code: u16, message: &str) -> Reply {
        Reply::Fail(SessionError::Server {
            code,
            message: message.to_owned(),
        })
    }

    fn row(cols: &[Option<&str>]) -> Reply {
        Reply::Rows(vec![cols.iter().map(|c| c.map(str::to_owned)).collect()])
    }

    const GTID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5";

    /// A MySQL 8.4 server on which everything is allowed; binlog.000007:1234, one GTID range.
    fn sessions() -> (Fake, Fake, Log) {
        let log = Log::default();
        let l = Fake {
            name: "L",
            id: 41,
            log: log.clone(),
            rules: Vec::new(),
        }
        .on(
            "SHOW BINARY LOG STATUS",
            row(&[
                Some("binlog.000007"),
                Some("1234"),
                Some(""),
                Some(""),
                Some(GTID),
            ]),
        );
        let s = Fake {
            name: "S",
            id: 42,
            log: log.clone(),
            rules: Vec::new(),
        };
        (l, s, log)
    }

    fn tables() -> Vec<(String, String)> {
        vec![
            ("shop".into(), "orders".into()),
            ("shop".into(), "we`ird".into()),
        ]
    }

    fn point(gtid: Option<&str>) -> BinlogPosition {
        BinlogPosition {
            file: "binlog.000007".into(),
            pos: 1234,
            gtid: gtid.map(str::to_owned),
            timestamp: 0,
        }
    }

    async fn run(l: &mut Fake, s: &mut Fake) -> Result<Capture, MysqlCaptureError> {
        capture(l, s, &tables(), 10).await
    }

    #[tokio::test]
    async fn the_global_lock_brackets_the_view_and_the_position() {
        let (mut l, mut s, log) = sessions();
        let got = run(&mut l, &mut s).await.unwrap();
        assert_eq!(got, Capture::Point(point(Some(GTID)), LockKind::Global));
        assert_eq!(
            log.lines(),
            [
                "L: SET SESSION lock_wait_timeout = 10",
                "S: SET SESSION lock_wait_timeout = 10",
                "L: FLUSH TABLES WITH READ LOCK",
                "L: XA RECOVER",
                "S: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
                "S: SELECT 1 FROM `shop`.`orders` LIMIT 0",
                "S: SELECT 1 FROM `shop`.`we``ird` LIMIT 0",
                "L: SHOW BINARY LOG STATUS",
                "L: UNLOCK TABLES",
            ]
        );
        let lock = log.index("L: FLUSH TABLES WITH READ LOCK");
        let view = log.index("S: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
        let status = log.index("L: SHOW BINARY LOG STATUS");
        let unlock = log.index("L: UNLOCK TABLES");
        assert!(lock < view && view < status && status < unlock);
        assert_eq!(unlock, log.lines().len() - 1);
    }

    #[tokio::test]
    async fn a_refused_global_lock_falls_back_to_table_locks() {
        for (code, message) in [
            (
                1227,
                "Access denied; you need (at least one of) the RELOAD privilege(s) for this operation",
            ),
            // RDS and Aurora.
            (1045, "Access denied for user 'sluice'@'%' (using password: YES)"),
        ] {
            let (l, mut s, log) = sessions();
            let mut l = l.on("FLUSH TABLES WITH READ LOCK", err(code, message));
            let got = run(&mut l, &mut s).await.unwrap();
            assert_eq!(got, Capture::Point(point(Some(GTID)), LockKind::Tables));
            let lines = log.lines();
            assert_eq!(
                lines[2..5],
                [
                    "L: FLUSH TABLES WITH READ LOCK",
                    "L: LOCK TABLES `shop`.`orders` READ, `shop`.`we``ird` READ",
                    "L: XA RECOVER",
                ]
            );
            let view = log.index("S: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
            assert!(log.index("L: LOCK TABLES `shop`.`orders` READ, `shop`.`we``ird` READ") < view);
            assert!(view < log.index("L: SHOW BINARY LOG STATUS"));
            assert_eq!(lines.last().unwrap(), "L: UNLOCK TABLES");
        }
    }

    #[test]
    fn each_table_is_locked_once() {
        let t = vec![
            ("a".to_owned(), "x".to_owned()),
            ("a".to_owned(), "x".to_owned()),
            ("b".to_owned(), "y".to_owned()),
        ];
        assert_eq!(
            lock_tables_sql(&t).unwrap(),
            "LOCK TABLES `a`.`x` READ, `b`.`y` READ"
        );
        assert_eq!(lock_tables_sql(&[]), None);
        assert_eq!(
            lock_grants(&t),
            "GRANT LOCK TABLES ON `a`.* and GRANT LOCK TABLES ON `b`.*"
        );
    }

    #[tokio::test]
    async fn both_locks_refused_names_both_messages_and_both_grants() {
        let (l, mut s, log) = sessions();
        let mut l = l
            .on(
                "FLUSH TABLES WITH READ LOCK",
                err(1227, "you need (at least one of) the RELOAD privilege(s)"),
            )
            .on(
                "LOCK TABLES",
                err(
                    1044,
                    "Access denied for user 'sluice'@'%' to database 'shop'",
                ),
            );
        let e = run(&mut l, &mut s).await.unwrap_err();
        assert!(matches!(e, MysqlCaptureError::LockDenied { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let msg = e.to_string();
        for needle in [
            "the RELOAD privilege(s)",
            "to database 'shop'",
            "GRANT RELOAD ON *.*",
            "GRANT LOCK TABLES ON `shop`.*",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }
        // Nothing was locked, so nothing is unlocked, and no view was opened.
        assert!(!log.sent("L: UNLOCK TABLES"));
        assert!(!log.sent("S: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"));
    }

    #[tokio::test]
    async fn a_lock_wait_timeout_asks_for_a_retry() {
        const TIMEOUT: &str = "Lock wait timeout exceeded; try restarting transaction";
        let (l, mut s, log) = sessions();
        let mut l = l.on("FLUSH TABLES WITH READ LOCK", err(1205, TIMEOUT));
        let Capture::Retry(why) = run(&mut l, &mut s).await.unwrap() else {
            panic!("expected a retry")
        };
        assert!(why.contains("lock_wait_timeout (10 s)"), "{why}");
        assert!(!log.sent("L: UNLOCK TABLES"));
        assert!(!log.sent("S: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"));

        // The same when the table locks time out.
        let (l, mut s, log) = sessions();
        let mut l = l
            .on("FLUSH TABLES WITH READ LOCK", err(1227, "RELOAD"))
            .on("LOCK TABLES", err(1205, TIMEOUT));
        let got = run(&mut l, &mut s).await.unwrap();
        assert!(matches!(got, Capture::Retry(ref why) if why.contains("LOCK TABLES")));
        assert!(!log.sent("L: UNLOCK TABLES"));
    }

    #[tokio::test]
    async fn before_mysql_8_2_the_status_is_show_master_status() {
        let (l, mut s, log) = sessions();
        let mut l = Fake {
            rules: Vec::new(),
            ..l
        }
        .on(
            "SHOW BINARY LOG STATUS",
            err(1064, "You have an error in your SQL syntax"),
        )
        .on(
            "SHOW MASTER STATUS",
            row(&[
                Some("mysql-bin.000003"),
                Some("157"),
                Some(""),
                Some(""),
                Some(""),
            ]),
        );
        let got = run(&mut l, &mut s).await.unwrap();
        let expected = BinlogPosition {
            file: "mysql-bin.000003".into(),
            pos: 157,
            gtid: None,
            timestamp: 0,
        };
        assert_eq!(got, Capture::Point(expected, LockKind::Global));
        let status = log.index("L: SHOW MASTER STATUS");
        assert_eq!(log.index("L: SHOW BINARY LOG STATUS") + 1, status);
        assert_eq!(log.index("L: UNLOCK TABLES"), status + 1);
    }

    #[tokio::test]
    async fn no_status_row_means_the_binlog_is_off_and_the_lock_is_released() {
        let (l, mut s, log) = sessions();
        let mut l = Fake {
            rules: Vec::new(),
            ..l
        }
        .on("SHOW BINARY LOG STATUS", Reply::Rows(Vec::new()));
        let e = run(&mut l, &mut s).await.unwrap_err();
        assert!(matches!(e, MysqlCaptureError::BinlogOff { .. }), "{e:?}");
        assert!(e.to_string().contains("log_bin"));
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");
    }

    #[tokio::test]
    async fn a_status_without_a_file_is_refused() {
        let (l, mut s, log) = sessions();
        let mut l = Fake {
            rules: Vec::new(),
            ..l
        }
        .on("SHOW BINARY LOG STATUS", row(&[Some(""), Some("4")]));
        let e = run(&mut l, &mut s).await.unwrap_err();
        assert!(matches!(e, MysqlCaptureError::BadStatus { .. }), "{e:?}");
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");
    }

    #[tokio::test]
    async fn a_prepared_xa_transaction_asks_for_a_retry_and_unlocks() {
        let (l, mut s, log) = sessions();
        let mut l = l.on(
            "XA RECOVER",
            row(&[Some("1"), Some("3"), Some("0"), Some("abc")]),
        );
        let got = run(&mut l, &mut s).await.unwrap();
        assert!(
            matches!(got, Capture::Retry(ref why) if why.contains("XA")),
            "{got:?}"
        );
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");
        // Checked before the view is created: the snapshot connection has no transaction.
        assert!(!log.sent("S: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"));
    }

    #[tokio::test]
    async fn a_refused_xa_recover_names_the_grant_and_unlocks() {
        let (l, mut s, log) = sessions();
        let mut l = l.on(
            "XA RECOVER",
            err(
                1227,
                "Access denied; you need (at least one of) the XA_RECOVER_ADMIN privilege(s)",
            ),
        );
        let e = run(&mut l, &mut s).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("GRANT XA_RECOVER_ADMIN ON *.* TO the Sluice user"),
            "{e}"
        );
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");
    }

    #[tokio::test]
    async fn a_failed_start_transaction_still_unlocks() {
        let (mut l, s, log) = sessions();
        let mut s = s.on(
            "START TRANSACTION",
            Reply::Fail(SessionError::Other("connection reset".into())),
        );
        let e = run(&mut l, &mut s).await.unwrap_err();
        assert!(
            matches!(e, MysqlCaptureError::Query { ref context, .. } if context.starts_with("START TRANSACTION")),
            "{e:?}"
        );
        assert!(e.is_retryable());
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");
        assert!(!log.sent("L: SHOW BINARY LOG STATUS"));
    }

    #[tokio::test]
    async fn the_table_probes_retry_on_a_changed_table_and_name_a_missing_select() {
        let (mut l, s, log) = sessions();
        let mut s = s.on(
            "SELECT 1 FROM `shop`.`we``ird`",
            err(
                1412,
                "Table definition has changed, please retry transaction",
            ),
        );
        let got = run(&mut l, &mut s).await.unwrap();
        assert!(matches!(got, Capture::Retry(ref why) if why.contains("shop.we`ird")));
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");

        let (mut l, s, log) = sessions();
        let mut s = s.on(
            "SELECT 1 FROM `shop`.`orders`",
            err(
                1142,
                "SELECT command denied to user 'sluice'@'%' for table 'orders'",
            ),
        );
        let e = run(&mut l, &mut s).await.unwrap_err();
        assert!(e.to_string().contains("GRANT SELECT ON shop.orders"), "{e}");
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");
    }

    #[tokio::test]
    async fn the_gtid_set_is_normalised_and_an_empty_one_dropped() {
        let two =
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9";
        assert_eq!(
            normalise_gtid_set(two),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9"
        );
        assert_eq!(normalise_gtid_set(" a:1-2, \r\n b:3 "), "a:1-2,b:3");

        for (set, expected) in [
            (Some(two), Some(normalise_gtid_set(two))),
            (Some(" \n"), None),
            (Some(""), None),
            (None, None),
        ] {
            let (l, mut s, _log) = sessions();
            let mut l = Fake {
                rules: Vec::new(),
                ..l
            }
            .on(
                "SHOW BINARY LOG STATUS",
                row(&[Some("binlog.000007"), Some("1234"), Some(""), Some(""), set]),
            );
            let Capture::Point(p, _) = run(&mut l, &mut s).await.unwrap() else {
                panic!("expected a point")
            };
            assert_eq!(p.gtid, expected);
        }
    }

    #[tokio::test]
    async fn a_failed_unlock_kills_the_lock_session() {
        let (l, mut s, log) = sessions();
        let mut l = l.on(
            "UNLOCK TABLES",
            Reply::Fail(SessionError::Other("broken pipe".into())),
        );
        let e = run(&mut l, &mut s).await.unwrap_err();
        assert!(
            matches!(e, MysqlCaptureError::Unlock { id: 41, .. }),
            "{e:?}"
        );
        assert_eq!(log.lines().last().unwrap(), "S: KILL CONNECTION 41");
        let msg = e.to_string();
        assert!(
            msg.contains("broken pipe") && msg.contains("releases its lock"),
            "{msg}"
        );

        // An earlier error is kept, and a failed kill says the lock may still be held.
        let (l, s, _log) = sessions();
        let mut l = l.on("XA RECOVER", err(1227, "XA_RECOVER_ADMIN")).on(
            "UNLOCK TABLES",
            Reply::Fail(SessionError::Other("timed out".into())),
        );
        let mut s = s.on("KILL", err(1094, "Unknown thread id: 41"));
        let e = run(&mut l, &mut s).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("may still be held") && msg.contains("GRANT XA_RECOVER_ADMIN"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_lock_held_too_long_is_released() {
        let (mut l, s, log) = sessions();
        let mut s = s.on("SELECT 1 FROM `shop`.`orders`", Reply::Hang);
        let e = capture_within(&mut l, &mut s, &tables(), 10, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(e, MysqlCaptureError::HeldTooLong { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert_eq!(log.lines().last().unwrap(), "L: UNLOCK TABLES");
        assert!(!log.sent("L: SHOW BINARY LOG STATUS"));
    }

    #[tokio::test]
    async fn the_lockless_point_is_told_by_the_session_status() {
        let (_, mut s, log) = sessions();
        assert!(!has_lockless_point(&mut s).await.unwrap());
        assert_eq!(
            log.lines(),
            ["S: SHOW SESSION STATUS LIKE 'binlog_snapshot_file'"]
        );
        let (_, s, _) = sessions();
        let mut s = s.on(
            "SHOW SESSION STATUS",
            row(&[Some("Binlog_snapshot_file"), Some("mariadb-bin.000002")]),
        );
        assert!(has_lockless_point(&mut s).await.unwrap());
    }

    #[test]
    fn the_capture_over_mysql_connections_is_send() {
        fn over<'a>(
            l: &'a mut Conn,
            s: &'a mut Conn,
            t: &'a [(String, String)],
        ) -> impl Future<Output = Result<Capture, MysqlCaptureError>> + Send + 'a {
            capture(l, s, t, 10)
        }
        let _ = over;
    }

    #[test]
    fn text_protocol_values_become_text() {
        assert_eq!(text(Value::NULL), None);
        assert_eq!(
            text(Value::Bytes(b"binlog.000001".to_vec())).unwrap(),
            "binlog.000001"
        );
        assert_eq!(text(Value::UInt(157)).unwrap(), "157");
        let e: SessionError = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1227,
            message: "denied".into(),
            state: "42000".into(),
        })
        .into();
        assert_eq!(
            e,
            SessionError::Server {
                code: 1227,
                message: "denied".into()
            }
        );
    }
}
