//! [`ProcessError`]: the errors that stop the stream, and which of them refuse one written event.

use crate::source::decode::DecodeError;
use crate::source::schema::SchemaError;

/// Errors that stop the stream. None of them is skipped: skipping would lose rows.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A rows event whose rows cannot be decoded faithfully (a MINIMAL row image, bytes that are
    /// not valid text, …), with where it is.
    #[error(
        "rows event at {file}:{pos} (in the transaction that starts at {file}:{txn_start}): {source}"
    )]
    Decode {
        file: String,
        pos: u64,
        txn_start: u64,
        #[source]
        source: DecodeError,
    },
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("malformed {what} event at {file}:{pos}: {detail}")]
    Malformed {
        what: &'static str,
        file: String,
        pos: u64,
        detail: String,
    },
    #[error(
        "rows event for unknown table id {table_id} at {file}:{pos}: the stream did not start at a \
         transaction boundary. Point the position at a transaction's start (Sluice only saves such \
         positions), or remove the position file to start from the current head"
    )]
    UnknownTable {
        table_id: u64,
        file: String,
        pos: u64,
    },
    #[error(
        "unsupported binlog event type {type_code} at {file}:{pos}: Sluice does not know whether \
         it changes rows, so it stops instead of skipping it. Report the event type and the server \
         version; a restart stops here again"
    )]
    UnknownEvent {
        type_code: u8,
        file: String,
        pos: u64,
    },
    #[error(
        "the server wrote an INCIDENT event at {file}:{pos} ({detail}): changes may be missing \
         from the binlog at this point, so the captured tables can no longer be followed exactly. \
         Re-snapshot them (FORCE_SNAPSHOT=true, once the initial snapshot lands) or, to accept the \
         gap, move past it with `sluice position skip --reason \"…\"`"
    )]
    Incident {
        file: String,
        pos: u64,
        detail: String,
    },
    #[error(
        "statement-format write at {file}:{pos} may change the captured table {table}: `{sql}`. \
         Sluice reads row events only, so this change cannot be captured. Set binlog_format=ROW \
         globally and in every writer session (SET SESSION binlog_format=ROW), then re-snapshot \
         the table (FORCE_SNAPSHOT=true, once the initial snapshot lands) or move past this \
         transaction with `sluice position skip --reason \"…\"` (it starts at {file}:{txn_start}); until then every restart stops here again"
    )]
    StatementWrite {
        file: String,
        pos: u64,
        txn_start: u64,
        table: String,
        sql: String,
    },
    #[error(
        "{file}:{pos}: `{sql}` changes the captured table {table} without row events: {what}. \
         The consumer's copy of the table would no longer match it, so Sluice stops \
         (ON_TABLE_RESET={policy}). Record and move past this one statement with \
         `sluice position skip --reason \"…\"` once the consumers' copies are dealt with (its \
         transaction starts at {file}:{txn_start}); re-snapshotting the table will be the other \
         way once the initial snapshot lands. Until then every restart stops here again"
    )]
    TableReset {
        file: String,
        pos: u64,
        txn_start: u64,
        table: String,
        what: String,
        sql: String,
        /// The configured `ON_TABLE_RESET` policy.
        policy: &'static str,
    },
    #[error(
        "{file}:{pos}: a statement changed rows of {parent} while the captured table {child} was \
         opened for it with no rows logged: a foreign key with ON DELETE/UPDATE CASCADE, SET NULL \
         or SET DEFAULT may have changed {child}'s rows, which the server never logs. Sluice \
         stops rather than leave the consumer with deleted or stale rows. Capture the child \
         without such foreign keys, re-snapshot it (FORCE_SNAPSHOT=true, once the initial snapshot lands), or record and move \
         past this transaction (it starts at {file}:{txn_start}) with `sluice position skip \
         --reason \"…\"`; until then every restart stops here again"
    )]
    Cascade {
        file: String,
        pos: u64,
        txn_start: u64,
        child: String,
        parent: String,
    },
    #[error(
        "{schema}.{table} is system-versioned, but its TABLE_MAP at {file}:{pos} has no period \
         columns `{start}` and `{end}`: Sluice cannot tell current rows from history, so it \
         stops rather than publish history as rows. Set binlog_row_metadata=FULL"
    )]
    VersionedLayout {
        schema: String,
        table: String,
        file: String,
        pos: u64,
        start: String,
        end: String,
    },
    #[error(
        "{what} at {file}:{pos} discards rows of a transaction that starts at {file}:{txn_start}, \
         but {emitted} of its rows were already published: the transaction is larger than \
         pipeline.max_batch_rows or pipeline.max_batch_bytes, so it was sent in pieces before its \
         end was read. Those rows stay published (Sluice cannot take them back); tell the \
         consumers to disregard them. Raise pipeline.max_batch_rows and pipeline.max_batch_bytes \
         above this transaction's size and restart: the restart reads the transaction again, \
         holds it whole and publishes none of it"
    )]
    RolledBackAfterPublish {
        what: &'static str,
        file: String,
        pos: u64,
        txn_start: u64,
        emitted: u32,
    },
    #[error(
        "{file}:{pos}: {what}. Sluice holds prepared XA transactions in memory until they commit \
         (at most {limit_bytes} bytes and {limit_count} transactions); {fix}"
    )]
    Xa {
        what: String,
        file: String,
        pos: u64,
        limit_bytes: usize,
        limit_count: usize,
        fix: &'static str,
    },
    #[error(
        "{schema}.{table}: the rows at {file}:{pos} were written at unix time {written}, but the \
         table's definition changed later (at {defined}), and the server does not write column \
         names into the binlog (binlog_row_metadata is not FULL). Decoding them with today's \
         definition could publish wrong column names or ENUM labels, so Sluice stops. Set \
         binlog_row_metadata=FULL on the server, then re-snapshot the table (FORCE_SNAPSHOT=true, once the \
         initial snapshot lands) or remove the position file to start from the current head"
    )]
    DefinitionNewer {
        schema: String,
        table: String,
        file: String,
        pos: u64,
        written: u32,
        defined: i64,
    },
    #[error(
        "the TRANSACTION_PAYLOAD event at {file}:{pos} is unusable: {detail}. Sluice stops rather \
         than lose the transaction; check the binlog file on the server (mysqlbinlog -v)"
    )]
    Payload {
        file: String,
        pos: u64,
        detail: String,
    },
}

impl ProcessError {
    /// Whether this error refuses one event that is already written in the binlog, so that
    /// every restart stops at it again and only skipping its transaction (`sluice position
    /// skip`) gets past it: rows Sluice cannot decode faithfully, an unknown event type, a
    /// statement-format write, an INCIDENT, a statement that resets a
    /// captured table, a possible foreign-key cascade. Not errors about the stream's state or
    /// Sluice's bounds (XA limits and bookkeeping, a definition newer than the rows, an unknown
    /// table id, a rollback after a published piece, a malformed event): skipping one
    /// transaction would not cure those, or would lose rows for nothing.
    pub(crate) fn refuses_written_event(&self) -> bool {
        matches!(
            self,
            ProcessError::Decode { .. }
                | ProcessError::UnknownEvent { .. }
                | ProcessError::StatementWrite { .. }
                | ProcessError::Incident { .. }
                | ProcessError::TableReset { .. }
                | ProcessError::Cascade { .. }
        )
    }
}
