//! Why a snapshot stopped, with the setting or grant to fix where there is one.

use crate::source::binlog::SourceError;

/// Errors of the initial snapshot. `is_retryable` tells the supervisor whether resuming (from
/// the last acknowledged chunk) may help.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot query failed ({context}): {source}")]
    Query {
        context: String,
        source: mysql_async::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Replica(#[from] super::replica::ReplicaError),
    #[error(transparent)]
    Mysql(#[from] super::mysql::MysqlCaptureError),
    #[error(
        "cannot connect to the snapshot host {host} (MYSQL_SNAPSHOT_HOST): {detail}. Sluice does \
         not stream without the snapshot it was asked for: fix MYSQL_SNAPSHOT_HOST, or unset it \
         to snapshot from MYSQL_HOST"
    )]
    SnapshotHost {
        host: String,
        detail: String,
        /// In the middle of a snapshot (a resume): then an outage, retried. At the start of a
        /// new snapshot, more likely a wrong setting, which stops Sluice.
        resuming: bool,
    },
    #[error(
        "the snapshot cannot read {table}: {message}. Grant it: GRANT SELECT ON {table} TO the \
         Sluice user (the snapshot reads every captured table)"
    )]
    Denied { table: String, message: String },
    #[error(
        "{table} uses the {engine} engine, which cannot give a consistent snapshot. Convert it \
         (ALTER TABLE {table} ENGINE=InnoDB), or leave it out of MYSQL_TABLE"
    )]
    NotTransactional { table: String, engine: String },
    #[error(
        "the snapshot host reports binlog_snapshot_file but no usable binlog_snapshot_position for \
         its read view; check that binary logging is on there (log_bin), or snapshot from another host"
    )]
    NoLocklessPoint,
    #[error(
        "could not open a consistent snapshot within {waited:?}: {why}. Finish or roll back the \
         prepared XA transactions (XA RECOVER lists them), or wait for the ALTER TABLE to end; \
         Sluice retries when started again"
    )]
    NoConsistentPoint {
        waited: std::time::Duration,
        why: String,
    },
    #[error(
        "a snapshot is in progress ({file}; not read yet: {tables}), but INITIAL_SNAPSHOT and \
         FORCE_SNAPSHOT are off. Set INITIAL_SNAPSHOT=true to finish it, or delete {file} to \
         stream without it (the rows not read yet will be missing)"
    )]
    RunningButDisabled { file: String, tables: String },
    #[error(
        "the snapshot file lists {table}, which is not among the captured tables now; delete \
         the snapshot file and start with FORCE_SNAPSHOT=true"
    )]
    TableSetChanged { table: String },
    #[error(
        "the snapshot file's cursor for {table} cannot be read ({detail}); delete the snapshot \
         file and start with FORCE_SNAPSHOT=true"
    )]
    Cursor { table: String, detail: String },
    #[error(
        "the snapshot host's point {point} stayed behind the stream's position {floor} for \
         {waited:?}: the replica named by MYSQL_SNAPSHOT_HOST lags or its replication is stopped. \
         Let it catch up (SHOW SLAVE STATUS), or unset MYSQL_SNAPSHOT_HOST to read from MYSQL_HOST"
    )]
    HostBehind {
        point: String,
        floor: String,
        waited: std::time::Duration,
    },
    // Table reader errors (table.rs, keyset.rs, values.rs) below this line.
    #[error(
        "the snapshot finds no columns of {table} in information_schema.COLUMNS: the table was \
         dropped or renamed, or the Sluice user cannot see it (GRANT SELECT ON {table} TO the \
         Sluice user)"
    )]
    TableNotFound { table: String },
    #[error(
        "{table} is system-versioned with the period columns {start} and {end}, but \
         information_schema.COLUMNS does not list them; the table changed while it was being \
         described. Start Sluice again"
    )]
    PeriodColumns {
        table: String,
        start: String,
        end: String,
    },
    /// A column whose character set Sluice cannot decode (the binlog path's error and text).
    #[error(transparent)]
    Schema(#[from] crate::source::schema::SchemaError),
    /// A value that is not valid text in its column's character set (the binlog path's error
    /// and text).
    #[error(transparent)]
    Decode(#[from] crate::source::decode::DecodeError),
    #[error("{table}: column {column}: the snapshot read a value it cannot publish: {detail}")]
    InvalidValue {
        table: String,
        column: String,
        detail: String,
    },
}

/// Server errors that an outage or a busy server gives, which a resume heals: the connection
/// killed (1927) or the server shutting down (1053), a lock wait timeout (1205) or deadlock
/// (1213), a query interrupted (1317), too many connections (1040), network errors
/// (1158–1161).
const TRANSIENT_SERVER_ERRORS: &[u16] =
    &[1040, 1053, 1158, 1159, 1160, 1161, 1205, 1213, 1317, 1927];

impl SnapshotError {
    /// The same error, met while resuming a snapshot (see [`SnapshotError::SnapshotHost`]).
    pub(crate) fn while_resuming(self) -> Self {
        match self {
            SnapshotError::SnapshotHost { host, detail, .. } => SnapshotError::SnapshotHost {
                host,
                detail,
                resuming: true,
            },
            e => e,
        }
    }

    /// Whether resuming the snapshot from its last acknowledged chunk may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            SnapshotError::Query { source, .. } => match source {
                mysql_async::Error::Server(e) => TRANSIENT_SERVER_ERRORS.contains(&e.code),
                _ => true,
            },
            SnapshotError::SnapshotHost { resuming, .. } => *resuming,
            SnapshotError::Source(e) => e.is_retryable(),
            SnapshotError::Replica(e) => e.is_retryable(),
            SnapshotError::Mysql(e) => e.is_retryable(),
            SnapshotError::NoConsistentPoint { .. } | SnapshotError::HostBehind { .. } => true,
            SnapshotError::Denied { .. }
            | SnapshotError::NotTransactional { .. }
            | SnapshotError::NoLocklessPoint
            | SnapshotError::RunningButDisabled { .. }
            | SnapshotError::TableSetChanged { .. }
            | SnapshotError::Cursor { .. } => false,
            SnapshotError::TableNotFound { .. }
            | SnapshotError::PeriodColumns { .. }
            | SnapshotError::Schema(_)
            | SnapshotError::Decode(_)
            | SnapshotError::InvalidValue { .. } => false,
        }
    }
}
