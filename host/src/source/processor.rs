//! Binlog events to batches of change events, with transaction boundaries and positions.
//!
//! Design note: this is the pure core of the binlog source. It sees one `mysql_common` event at
//! a time (from a live replica stream or from a binlog file on disk) and produces [`Batch`]es:
//! the rows of one transaction, in order, ending with the checkpoint at which a restart can
//! resume. A transaction larger than `max_batch_rows` (or the byte bound) is sent in pieces;
//! only its last piece carries a checkpoint, so a position never points into the middle of one.
//!
//! Transaction boundaries: a GTID event (MySQL 33/34/42, MariaDB 162) or `BEGIN` opens a group;
//! an XID event or a `COMMIT` query closes it. A query that follows a GTID without a `BEGIN` (a
//! DDL: MySQL writes no COMMIT after it, MariaDB marks it FL_STANDALONE) is a group of its own.
//!
//! Only what committed is published. `ROLLBACK` drops the group's rows and `ROLLBACK TO x`
//! drops the rows since `SAVEPOINT x`. In ROW format the server writes a non-transactional
//! table's rows through its statement cache, as a group of their own that commits, so the rows
//! inside a rolled-back group are all transactional and did not persist. A piece of the group
//! already sent cannot be taken back: that stops the stream. XA transactions are held from
//! their PREPARE until their `XA COMMIT` (published then) or `XA ROLLBACK` (dropped), and while
//! one is pending every checkpoint stays at the start of its PREPARE group, so a restart reads
//! it again (later transactions are then published again: at-least-once).
//!
//! Every event type is either handled, on a short list of types that cannot change rows, or an
//! error: nothing is skipped silently. Statement-format writes that may touch a captured table
//! stop the stream too, before the group's checkpoint, so a restart stops there again.
//!
//! Table ids are keys only within this stream: the map is cleared on every ROTATE that names a
//! file (a real one, or the fake one the server sends when it opens the next file after a
//! STOP event; only the fake ROTATE that opens the stream keeps the requested name), and a
//! cached schema is reused only when the TABLE_MAP's bytes are identical. Catalog data from
//! `information_schema` (for servers without `binlog_row_metadata=FULL`) is keyed by name and
//! dropped whenever a DDL statement passes.
//!
//! Size (about 1,200 lines): the binlog event loop. Statement handling (`statement`), XA (`xa`), compression, GTIDs and row decoding are already split out; what remains is the transaction state machine, whose cases share that state. Splitting it further (per event family) is left for the snapshot issue, which changes how batches start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use mysql_common::binlog::events::{
    Event, EventData, GtidEvent, QueryEvent, RotateEvent, RowsEventData, TableMapEvent,
};

#[path = "statement.rs"]
mod statement;
#[path = "xa.rs"]
mod xa;

use super::compressed::{self, lenenc};
use super::decode::{DecodeError, RowReader};
use super::event_types as et;
use super::gtid::{self, MariaGtidState};
use super::objects::TableKinds;
pub(crate) use super::resets::ResetPolicy;
use super::schema::{self, InfoSchemaTable, SchemaError, TableSchema};
use super::versioned::Layout;
use crate::event::{Batch, ChangeEvent, Kind, SourcePosition, Value};
use crate::state::BinlogPosition;
use xa::{PendingXa, MAX_HELD_XA_BYTES};

/// Default byte size at which a large transaction's batch is cut into a piece.
pub(crate) const DEFAULT_MAX_BATCH_BYTES: usize = 8 << 20;

/// What the processor needs from its driver before it can go on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to publish yet.
    Continue,
    /// A batch is ready.
    Emit,
    /// Column metadata for this table must be fetched from `information_schema` (the server
    /// does not write names into TABLE_MAP); call [`Processor::provide_catalog`] and hand the
    /// same event in again.
    NeedCatalog { schema: String, table: String },
}

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
        "{file}:{pos}: {what} are not supported yet; disable them on the server \
         (binlog_row_value_options='') to capture this table"
    )]
    Unsupported {
        what: &'static str,
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
    /// statement-format write, an INCIDENT, partial JSON updates, a statement that resets a
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
                | ProcessError::Unsupported { .. }
                | ProcessError::TableReset { .. }
                | ProcessError::Cascade { .. }
        )
    }
}

/// Which tables to capture, by `(schema, table)`.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    tables: HashSet<(String, String)>,
    /// The server compares table and database names without case (`lower_case_table_names`
    /// 1 or 2): `TRUNCATE Orders` then empties the captured `orders`.
    fold_case: bool,
}

impl TableFilter {
    pub fn new<I: IntoIterator<Item = (String, String)>>(tables: I) -> Self {
        TableFilter {
            tables: tables.into_iter().collect(),
            fold_case: false,
        }
    }

    /// Compares names as a server with `lower_case_table_names` ≠ 0 does: without case.
    pub(crate) fn with_fold_case(mut self, fold: bool) -> Self {
        self.fold_case = fold;
        self
    }

    fn same(&self, a: &str, b: &str) -> bool {
        a == b || (self.fold_case && a.to_lowercase() == b.to_lowercase())
    }

    /// The configured name of the captured table that `schema.table` names (the server may
    /// spell it in another case), or the name as given when none matches.
    pub(crate) fn canonical(&self, schema: &str, table: &str) -> (String, String) {
        self.tables
            .iter()
            .find(|(s, t)| self.same(s, schema) && self.same(t, table))
            .cloned()
            .unwrap_or_else(|| (schema.to_owned(), table.to_owned()))
    }

    /// The configured spelling of a database that holds captured tables, or `db` as given.
    pub(crate) fn canonical_db(&self, db: &str) -> String {
        self.tables
            .iter()
            .find(|(s, _)| self.same(s, db))
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| db.to_owned())
    }

    /// Whether a captured table lives in `db`.
    pub(crate) fn captures_in(&self, db: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|(s, _)| self.same(s, db))
    }

    /// A filter that captures every table (used by tools that read binlog files).
    pub fn all() -> Self {
        TableFilter::default()
    }

    /// The captured tables, by name (empty when every table is captured).
    pub(crate) fn tables(&self) -> Vec<(String, String)> {
        let mut t: Vec<_> = self.tables.iter().cloned().collect();
        t.sort();
        t
    }

    pub(crate) fn captures(&self, schema: &str, table: &str) -> bool {
        self.tables.is_empty()
            || self.tables.contains(&(schema.to_owned(), table.to_owned()))
            || (self.fold_case
                && self
                    .tables
                    .iter()
                    .any(|(s, t)| self.same(s, schema) && self.same(t, table)))
    }
}

enum TableEntry {
    Captured {
        raw: Vec<u8>,
        schema: Arc<TableSchema>,
        /// Set for a system-versioned table: how its images map to what `SELECT *` shows.
        versioned: Option<Arc<Layout>>,
    },
    Ignored {
        raw: Vec<u8>,
    },
}

/// The tables one statement opened (its TABLE_MAPs) and what its rows events touched.
#[derive(Default)]
struct StatementMaps {
    /// A rows event was read since the last TABLE_MAP: the next TABLE_MAP starts a statement.
    rows_seen: bool,
    /// Captured tables mapped in this statement that no rows event has touched yet.
    unmatched: Vec<(u64, String)>,
    /// Every table mapped in this statement, by id.
    names: HashMap<u64, String>,
    /// A table whose rows the statement updated or deleted.
    changed: Option<String>,
}

/// The open event group.
struct Txn {
    start: u64,
    gtid: Option<Arc<str>>,
    rows: u32,
    /// Rows already sent in pieces: they cannot be taken back by a rollback.
    emitted: u32,
    /// `BEGIN` (or `XA START`) was seen: the group ends at its XID/COMMIT. Without it, the next
    /// query ends the group (a DDL after a GTID event).
    began: bool,
    /// MariaDB FL_STANDALONE: the next statement ends the group.
    standalone: bool,
    /// The XA transaction's id (`X'..',X'..',n` as the server writes it) between XA START and
    /// its PREPARE.
    xa: Option<String>,
    /// `SAVEPOINT` names with the row count at that point.
    savepoints: Vec<(String, u32)>,
    /// Where a restart reads this group again: its start, with the GTID state before it.
    resume: BinlogPosition,
}

/// A MySQL TRANSACTION_PAYLOAD whose inner events are being read: the events still expected,
/// by type and size, as Sluice's own decompression found them.
struct Payload {
    start: u64,
    end: u64,
    expected: VecDeque<(u8, u32)>,
}

/// Turns binlog events into batches. See the module note.
pub(crate) struct Processor {
    filter: TableFilter,
    file: Arc<str>,
    tables: HashMap<u64, TableEntry>,
    catalog: HashMap<(String, String), InfoSchemaTable>,
    /// When each catalog entry's table definition last changed (unix seconds).
    catalog_time: HashMap<(String, String), i64>,
    txn: Option<Txn>,
    pending_xa: Vec<PendingXa>,
    payload: Option<Payload>,
    /// The last decompressed payload, for a driver that feeds its inner events itself.
    payload_bytes: Option<Vec<u8>>,
    maria_gtids: MariaGtidState,
    max_batch_rows: usize,
    max_batch_bytes: usize,
    /// Build schemas from TABLE_MAP alone (positional names) instead of asking for a catalog.
    no_catalog: bool,
    reset_policy: ResetPolicy,
    kinds: TableKinds,
    /// Foreign-key cascades into captured children were accepted as a known limitation.
    accept_cascades: bool,
    /// The statement being read, for [`Processor::check_cascade`].
    stmt: StatementMaps,
    /// A FORMAT_DESCRIPTION was read: from then on a fake ROTATE (log_pos 0) names the file the
    /// server switched to (see [`Processor::handle`]'s ROTATE arm).
    format_seen: bool,
    /// Reading one binlog file on disk: a fake ROTATE in it (a relay log copies its source's)
    /// does not switch files.
    one_file: bool,
    ready: Batch,
    scratch: Vec<Value>,
}

impl Processor {
    /// `start` is where the stream was requested from; its file names the events until the
    /// first ROTATE that names a file.
    pub(crate) fn new(filter: TableFilter, start: &BinlogPosition, max_batch_rows: usize) -> Self {
        let maria_gtids = start
            .gtid
            .as_deref()
            .and_then(MariaGtidState::parse)
            .unwrap_or_default();
        Processor {
            filter,
            file: Arc::from(start.file.as_str()),
            tables: HashMap::new(),
            catalog: HashMap::new(),
            catalog_time: HashMap::new(),
            txn: None,
            pending_xa: Vec::new(),
            payload: None,
            payload_bytes: None,
            maria_gtids,
            max_batch_rows: max_batch_rows.max(1),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            no_catalog: false,
            reset_policy: ResetPolicy::Stop,
            kinds: TableKinds::default(),
            accept_cascades: false,
            stmt: StatementMaps::default(),
            format_seen: false,
            one_file: false,
            ready: Batch::default(),
            scratch: Vec::new(),
        }
    }

    /// Never asks for catalog data: tables without column names in TABLE_MAP get positional
    /// names. For reading binlog files offline.
    pub(crate) fn without_catalog(mut self) -> Self {
        self.no_catalog = true;
        self
    }

    /// Reads the events of one binlog file on disk: a fake ROTATE in it (a relay log holds its
    /// source's) does not rename the file the events are read from.
    pub(crate) fn reading_one_file(mut self) -> Self {
        self.one_file = true;
        self
    }

    /// Cuts a transaction's batch into a piece once its events hold about this many bytes.
    pub(crate) fn with_max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes.max(1);
        self
    }

    /// What to do with a statement that removes or replaces a captured table's rows without row
    /// events (see [`ResetPolicy`]).
    pub(crate) fn with_reset_policy(mut self, policy: ResetPolicy) -> Self {
        self.reset_policy = policy;
        self
    }

    /// Which captured tables are sequences (never published) or system-versioned (mapped back
    /// to what `SELECT *` shows), from [`super::objects::table_kinds`].
    pub(crate) fn with_table_kinds(mut self, kinds: TableKinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// Does not stop where a foreign-key cascade may have changed a captured child's rows (the
    /// operator accepted that limitation); logs it at WARN instead.
    pub(crate) fn accepting_cascades(mut self) -> Self {
        self.accept_cascades = true;
        self
    }

    /// Takes the batch that the last [`Step::Emit`] announced.
    pub(crate) fn take_batch(&mut self) -> Batch {
        std::mem::take(&mut self.ready)
    }

    /// Takes the decompressed body of the TRANSACTION_PAYLOAD just handled, for a driver that
    /// reads its inner events itself (binlog files). The live stream delivers them already.
    pub(crate) fn take_payload(&mut self) -> Option<Vec<u8>> {
        self.payload_bytes.take()
    }

    /// Whether a transaction is open (rows may still follow before its commit).
    pub(crate) fn in_transaction(&self) -> bool {
        self.txn.is_some() || !self.ready.events.is_empty() || self.payload.is_some()
    }

    /// The binlog file events are currently read from.
    pub(crate) fn current_file(&self) -> &str {
        &self.file
    }

    /// Supplies catalog data after [`Step::NeedCatalog`].
    pub(crate) fn provide_catalog(&mut self, schema: String, table: String, info: InfoSchemaTable) {
        self.catalog.insert((schema, table), info);
    }

    /// Supplies when the table's definition last changed (its `CREATE_TIME`), with its catalog
    /// data. Rows written before that time are refused rather than labelled with a definition
    /// that may not be theirs (a rename, a same-type reorder, an ENUM change). A change in the
    /// same second as the rows is not detected.
    pub(crate) fn provide_definition_time(
        &mut self,
        schema: String,
        table: String,
        unix_secs: i64,
    ) {
        self.catalog_time.insert((schema, table), unix_secs);
    }

    /// Handles one event.
    pub(crate) fn handle(&mut self, event: &Event) -> Result<Step, ProcessError> {
        let header = event.header();
        let type_code = header.event_type_raw();
        // Inside a compressed payload, each event must be the next one Sluice found in it.
        let mut payload_last = false;
        if type_code != et::TRANSACTION_PAYLOAD {
            if let Some(p) = &self.payload {
                let (t, size) = *p.expected.front().expect("a payload expects an event");
                if t != type_code || size != header.event_size() {
                    return Err(ProcessError::Payload {
                        file: self.file.to_string(),
                        pos: p.start,
                        detail: format!(
                            "the stream gave an event of type {type_code} ({} bytes) where the \
                             payload holds one of type {t} ({size} bytes)",
                            header.event_size()
                        ),
                    });
                }
                payload_last = p.expected.len() == 1;
                self.payload_bytes = None;
            }
        }
        let step = self.dispatch(event)?;
        if !matches!(step, Step::NeedCatalog { .. }) {
            if let Some(p) = self
                .payload
                .as_mut()
                .filter(|_| type_code != et::TRANSACTION_PAYLOAD)
            {
                p.expected.pop_front();
                if payload_last {
                    let start = p.start;
                    self.payload = None;
                    if self.txn.is_some() {
                        return Err(ProcessError::Payload {
                            file: self.file.to_string(),
                            pos: start,
                            detail: "its events end inside a transaction (no XID or COMMIT)"
                                .to_owned(),
                        });
                    }
                }
            }
        }
        Ok(step)
    }

    fn dispatch(&mut self, event: &Event) -> Result<Step, ProcessError> {
        let header = event.header();
        let end = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        // Events inside a compressed payload have no file offset of their own.
        let start = match &self.payload {
            Some(p) => p.start,
            None => end.saturating_sub(size),
        };
        let type_code = header.event_type_raw();
        let timestamp = header.timestamp();
        let malformed = |what: &'static str, e: std::io::Error| ProcessError::Malformed {
            what,
            file: self.file.to_string(),
            pos: start,
            detail: e.to_string(),
        };

        match type_code {
            et::ROTATE => {
                let rotate: RotateEvent<'_> =
                    event.read_event().map_err(|e| malformed("ROTATE", e))?;
                // The server sends a fake ROTATE (log_pos 0) for every file it opens: the first
                // one opens the stream, and one follows whenever it passes the end of a file
                // that has no real ROTATE (a server that was shut down ends its file with a
                // STOP event). The opening one can carry the checksum bytes in its name
                // (mysql_common reads it before any FORMAT_DESCRIPTION told it the checksum),
                // so the requested file name stands for it; once a FORMAT_DESCRIPTION was read
                // the checksum is stripped, and the fake ROTATE names the next file.
                if header.log_pos() != 0 || (self.format_seen && !self.one_file) {
                    self.file = Arc::from(rotate.name().as_ref());
                    self.tables.clear();
                }
                Ok(Step::Continue)
            }
            et::QUERY => {
                let q: QueryEvent<'_> = event.read_event().map_err(|e| malformed("QUERY", e))?;
                let (sql, schema) = (q.query(), q.schema());
                self.query(&sql, &schema, start, end, timestamp)
            }
            // MariaDB log_bin_compress
            et::MARIADB_QUERY_COMPRESSED => {
                let q = compressed::compressed_query(event.data())
                    .map_err(|e| malformed("QUERY_COMPRESSED", std::io::Error::other(e)))?;
                self.query(&q.sql, &q.schema, start, end, timestamp)
            }
            et::XID => self.commit(end, timestamp),
            // one_phase u8, then the xid.
            et::XA_PREPARE => {
                let one_phase =
                    *event.data().first().ok_or_else(|| {
                        malformed("XA_PREPARE", std::io::Error::other("empty event"))
                    })? != 0;
                if one_phase {
                    self.commit(end, timestamp)
                } else {
                    self.prepare_xa(start)
                }
            }
            et::TABLE_MAP => self.table_map(event, start),
            // WRITE/UPDATE/DELETE v1 (MariaDB) and v2 (MySQL)
            et::WRITE_ROWS_V1..=et::DELETE_ROWS_V1 | et::WRITE_ROWS..=et::DELETE_ROWS => {
                self.rows(event, start)
            }
            // MariaDB compressed WRITE/UPDATE/DELETE, v1 and v2
            et::MARIADB_WRITE_ROWS_COMPRESSED_V1..=et::MARIADB_DELETE_ROWS_COMPRESSED => {
                self.compressed_rows(event, start)
            }
            // MySQL partial JSON updates
            et::PARTIAL_UPDATE_ROWS => Err(ProcessError::Unsupported {
                what: "partial JSON updates",
                file: self.file.to_string(),
                pos: start,
            }),
            // MySQL GTID / ANONYMOUS_GTID / GTID_TAGGED
            et::GTID | et::ANONYMOUS_GTID | et::GTID_TAGGED => {
                let gtid = if type_code == et::ANONYMOUS_GTID {
                    None
                } else {
                    let g: GtidEvent = event.read_event().map_err(|e| malformed("GTID", e))?;
                    Some(Arc::from(mysql_gtid(&g).as_str()))
                };
                self.open_txn(start, gtid, false, timestamp);
                Ok(Step::Continue)
            }
            et::MARIADB_GTID => {
                let g = gtid::parse_mariadb_gtid(event.data(), header.server_id()).ok_or_else(
                    || malformed("MariaDB GTID", std::io::Error::other("short event")),
                )?;
                // The group's resume point carries the GTID state before it.
                self.open_txn(
                    start,
                    Some(Arc::from(g.gtid.to_string().as_str())),
                    g.standalone,
                    timestamp,
                );
                self.maria_gtids.observe(g.gtid);
                let t = self.txn.as_mut().expect("opened above");
                // MariaDB writes no BEGIN query: a GTID without FL_STANDALONE is the BEGIN, and
                // its group ends with an XID or COMMIT, even when a statement comes first (as in
                // `CREATE TABLE … SELECT`, whose rows follow the statement in the same group).
                t.began = !g.standalone;
                if let Some(xid) = g.xa {
                    t.began = true;
                    t.xa = Some(xid);
                }
                Ok(Step::Continue)
            }
            et::MARIADB_GTID_LIST => {
                let list = gtid::parse_mariadb_gtid_list(event.data()).ok_or_else(|| {
                    malformed("MariaDB GTID_LIST", std::io::Error::other("short event"))
                })?;
                for g in list {
                    self.maria_gtids.observe(g);
                }
                Ok(Step::Continue)
            }
            // MySQL compressed transactions: the inner events follow.
            et::TRANSACTION_PAYLOAD => self.payload(event, start, end, timestamp),
            // The server says changes may be missing here.
            et::INCIDENT => Err(ProcessError::Incident {
                file: self.file.to_string(),
                pos: start,
                detail: incident_text(event.data()),
            }),
            // A file header; later fake ROTATEs name the next file.
            et::FORMAT_DESCRIPTION => {
                self.format_seen = true;
                Ok(Step::Continue)
            }
            // The allow-list: types that never change rows.
            // START_V3 (and FORMAT_DESCRIPTION, above): file headers. STOP: the server stopped;
            // the next file follows. HEARTBEAT(_V2): keep-alives. PREVIOUS_GTIDS and
            // BINLOG_CHECKPOINT: bookkeeping. ROWS_QUERY and ANNOTATE_ROWS: the text of the
            // statement whose row events follow. INTVAR, RAND, USER_VAR: context of a
            // statement-format query, which is judged itself. BEGIN_LOAD_QUERY: a LOAD DATA
            // file's data; the EXECUTE_LOAD_QUERY that uses it stops. TRANSACTION_CONTEXT and
            // VIEW_CHANGE: group replication membership. START_ENCRYPTION: the server decrypts
            // what it sends to a replica, and an encrypted file fails to parse after it.
            et::START_V3
            | et::STOP
            | et::INTVAR
            | et::RAND
            | et::USER_VAR
            | et::BEGIN_LOAD_QUERY
            | et::HEARTBEAT
            | et::ROWS_QUERY
            | et::PREVIOUS_GTIDS
            | et::TRANSACTION_CONTEXT
            | et::VIEW_CHANGE
            | et::HEARTBEAT_V2
            | et::MARIADB_ANNOTATE_ROWS
            | et::MARIADB_BINLOG_CHECKPOINT
            | et::MARIADB_START_ENCRYPTION => Ok(Step::Continue),
            // IGNORABLE, and any event that the server flags LOG_EVENT_IGNORABLE_F: by the
            // protocol, a replica that does not know it may skip it.
            _ if type_code == et::IGNORABLE || header.flags_raw() & et::FLAG_IGNORABLE != 0 => {
                Ok(Step::Continue)
            }
            _ => Err(ProcessError::UnknownEvent {
                type_code,
                file: self.file.to_string(),
                pos: start,
            }),
        }
    }

    fn open_txn(&mut self, start: u64, gtid: Option<Arc<str>>, standalone: bool, timestamp: u32) {
        match &mut self.txn {
            // BEGIN after a GTID event belongs to the same group.
            Some(_) if gtid.is_none() && !standalone => {}
            _ => {
                // A new group: nothing of the last one's statement state carries over (a
                // rolled-back group's, say), so a stop is never blamed on the wrong group.
                self.stmt = Default::default();
                let resume = BinlogPosition {
                    file: self.file.to_string(),
                    pos: start,
                    gtid: self.gtid_state(),
                    timestamp,
                };
                self.txn = Some(Txn {
                    start,
                    gtid,
                    rows: 0,
                    emitted: 0,
                    began: false,
                    standalone,
                    xa: None,
                    savepoints: Vec::new(),
                    resume,
                })
            }
        }
    }

    /// At the end of a statement (the next TABLE_MAP after rows, or the commit): a captured
    /// table that was opened with no rows while another table's rows were updated or deleted
    /// may have been changed by a foreign-key cascade, which the server does not log. A trigger
    /// that wrote nothing looks the same; Sluice cannot tell them apart, so it stops on both.
    fn check_cascade(&mut self, pos: u64) -> Result<(), ProcessError> {
        let stmt = std::mem::take(&mut self.stmt);
        let (Some(parent), Some((_, child))) = (stmt.changed, stmt.unmatched.first()) else {
            return Ok(());
        };
        if self.filter.tables.is_empty() {
            // Every table (an offline read of binlog files): nothing to keep in step.
            return Ok(());
        }
        let txn_start = self.txn.as_ref().map_or(pos, |t| t.start);
        if self.accept_cascades {
            tracing::warn!(%child, %parent, position = %format!("{}:{txn_start}", self.file),
                "a foreign-key cascade may have changed the captured child's rows, which the \
                 binlog does not carry (accepted limitation)");
            return Ok(());
        }
        Err(ProcessError::Cascade {
            file: self.file.to_string(),
            pos,
            txn_start,
            child: child.clone(),
            parent,
        })
    }

    fn gtid_state(&self) -> Option<String> {
        (!self.maria_gtids.is_empty()).then(|| self.maria_gtids.to_string())
    }

    fn commit(&mut self, end: u64, timestamp: u32) -> Result<Step, ProcessError> {
        self.check_cascade(end)?;
        // Inside a compressed payload the inner events' positions are not file offsets; the
        // payload's end is where the next transaction starts.
        let end = self.payload.as_ref().map_or(end, |p| p.end);
        self.txn = None;
        // While an XA transaction is prepared but not finished, a restart must read its
        // PREPARE group again, so the checkpoint stays there.
        let checkpoint = match self.pending_xa.first() {
            Some(p) => p.resume.clone(),
            None => BinlogPosition {
                file: self.file.to_string(),
                pos: end,
                gtid: self.gtid_state(),
                timestamp,
            },
        };
        self.ready.checkpoint = Some(checkpoint);
        Ok(Step::Emit)
    }

    fn payload(
        &mut self,
        event: &Event,
        start: u64,
        end: u64,
        timestamp: u32,
    ) -> Result<Step, ProcessError> {
        let err = |detail: String| ProcessError::Payload {
            file: self.file.to_string(),
            pos: start,
            detail,
        };
        if self.payload.is_some() {
            return Err(err(
                "it begins before the previous payload's events were all delivered".into(),
            ));
        }
        let header = compressed::payload_header(event.data()).map_err(err)?;
        let bytes = if header.algorithm == 255 {
            header.payload.to_vec()
        } else {
            compressed::unzstd(header.payload, header.uncompressed_size).map_err(err)?
        };
        let expected = compressed::inner_events(&bytes).map_err(err)?;
        self.payload = Some(Payload {
            start,
            end,
            expected: expected.into(),
        });
        self.payload_bytes = Some(bytes);
        if self.txn.is_none() {
            self.open_txn(start, None, false, timestamp);
        }
        Ok(Step::Continue)
    }

    fn table_map(&mut self, event: &Event, start: u64) -> Result<Step, ProcessError> {
        let tme: TableMapEvent<'_> = event.read_event().map_err(|e| ProcessError::Malformed {
            what: "TABLE_MAP",
            file: self.file.to_string(),
            pos: start,
            detail: e.to_string(),
        })?;
        let raw = event.data();
        let id = tme.table_id();
        if self.stmt.rows_seen {
            self.check_cascade(start)?;
        }
        let (db, table) = (tme.database_name(), tme.table_name());
        let name = format!("{db}.{table}");
        let key = (db.into_owned(), table.into_owned());
        if self.filter.captures(&key.0, &key.1) && !self.kinds.sequences.contains(&key) {
            self.stmt.unmatched.push((id, name.clone()));
        }
        self.stmt.names.insert(id, name);
        match self.tables.get(&id) {
            Some(TableEntry::Captured { raw: r, .. }) | Some(TableEntry::Ignored { raw: r })
                if r == raw =>
            {
                return Ok(Step::Continue)
            }
            _ => {}
        }
        let (db, table) = (
            tme.database_name().into_owned(),
            tme.table_name().into_owned(),
        );
        if !self.filter.captures(&db, &table) || self.kinds.sequences.contains(&key) {
            self.tables
                .insert(id, TableEntry::Ignored { raw: raw.to_vec() });
            return Ok(Step::Continue);
        }
        let catalog = if self.no_catalog || !schema::needs_catalog(&tme) {
            None
        } else {
            match self.catalog.get(&(db.clone(), table.clone())) {
                Some(c) => Some(c),
                None => return Ok(Step::NeedCatalog { schema: db, table }),
            }
        };
        let used_catalog = catalog.is_some();
        let schema = schema::build_schema(&tme, catalog)?;
        if used_catalog {
            let written = event.header().timestamp();
            if let Some(&defined) = self.catalog_time.get(&(db.clone(), table.clone())) {
                if defined > i64::from(written) {
                    return Err(ProcessError::DefinitionNewer {
                        schema: db,
                        table,
                        file: self.file.to_string(),
                        pos: start,
                        written,
                        defined,
                    });
                }
            }
        }
        let versioned = match self.kinds.versioned.get(&key) {
            None => None,
            Some(periods) => match Layout::new(&schema.meta, periods) {
                Some(l) => Some(Arc::new(l)),
                None => {
                    return Err(ProcessError::VersionedLayout {
                        schema: db,
                        table,
                        file: self.file.to_string(),
                        pos: start,
                        start: periods.start.clone(),
                        end: periods.end.clone(),
                    })
                }
            },
        };
        self.tables.insert(
            id,
            TableEntry::Captured {
                raw: raw.to_vec(),
                schema: Arc::new(schema),
                versioned,
            },
        );
        Ok(Step::Continue)
    }

    fn rows(&mut self, event: &Event, start: u64) -> Result<Step, ProcessError> {
        let data = match event.read_data() {
            Ok(Some(EventData::RowsEvent(r))) => r,
            Ok(_) => {
                return Err(ProcessError::Malformed {
                    what: "ROWS",
                    file: self.file.to_string(),
                    pos: start,
                    detail: "not a rows event".into(),
                })
            }
            Err(e) => {
                return Err(ProcessError::Malformed {
                    what: "ROWS",
                    file: self.file.to_string(),
                    pos: start,
                    detail: e.to_string(),
                })
            }
        };
        let kind = match data {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Kind::Insert,
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => Kind::Update,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Kind::Delete,
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(ProcessError::Unsupported {
                    what: "partial JSON updates",
                    file: self.file.to_string(),
                    pos: start,
                })
            }
        };
        let before_bits = data.columns_before_image();
        let after_bits = data.columns_after_image();
        let before_present = |i: usize| before_bits.is_none_or(|b| b.get(i).is_some_and(|x| *x));
        let after_present = |i: usize| after_bits.is_none_or(|b| b.get(i).is_some_and(|x| *x));
        let timestamp = event.header().timestamp();
        self.push_rows(
            kind,
            data.table_id(),
            &before_present,
            &after_present,
            data.rows_data(),
            start,
            timestamp,
        )
    }

    /// MariaDB's compressed rows events (166–168 v1, 169–171 v2): the header, column count and
    /// bitmaps as in a plain rows event, then the rows data as a compressed block.
    fn compressed_rows(&mut self, event: &Event, start: u64) -> Result<Step, ProcessError> {
        let type_code = event.header().event_type_raw();
        let bad = |detail: String| ProcessError::Malformed {
            what: "compressed ROWS",
            file: self.file.to_string(),
            pos: start,
            detail,
        };
        let data = event.data();
        let short = || bad("the event is cut short".into());
        let head = data.get(..8).ok_or_else(short)?;
        let mut id = [0u8; 8];
        id[..6].copy_from_slice(&head[..6]);
        let table_id = u64::from_le_bytes(id);
        let mut at = 8;
        if type_code >= et::MARIADB_WRITE_ROWS_COMPRESSED {
            // v2: extra data, its length counting its own two bytes.
            let len = data.get(8..10).ok_or_else(short)?;
            at += usize::from(u16::from_le_bytes([len[0], len[1]])).max(2);
        }
        let (ncols, used) = lenenc(data.get(at..).ok_or_else(short)?).ok_or_else(short)?;
        at += used;
        let bitmap_len = ncols.div_ceil(8) as usize;
        let kind = match (type_code - et::MARIADB_WRITE_ROWS_COMPRESSED_V1) % 3 {
            0 => Kind::Insert,
            1 => Kind::Update,
            _ => Kind::Delete,
        };
        let mut bitmap = || -> Result<&[u8], ProcessError> {
            let b = data.get(at..at + bitmap_len).ok_or_else(short)?;
            at += bitmap_len;
            Ok(b)
        };
        let (before, after): (Option<&[u8]>, Option<&[u8]>) = match kind {
            Kind::Insert => (None, Some(bitmap()?)),
            Kind::Delete => (Some(bitmap()?), None),
            _ => {
                let b = bitmap()?;
                (Some(b), Some(bitmap()?))
            }
        };
        let rows = compressed::inflate_mariadb(&data[at..]).map_err(bad)?;
        let bit = |b: Option<&[u8]>, i: usize| {
            b.is_none_or(|b| b.get(i / 8).is_some_and(|x| x & (1 << (i % 8)) != 0))
        };
        let before_present = |i: usize| bit(before, i);
        let after_present = |i: usize| bit(after, i);
        let timestamp = event.header().timestamp();
        self.push_rows(
            kind,
            table_id,
            &before_present,
            &after_present,
            &rows,
            start,
            timestamp,
        )
    }

    /// Decodes the rows of one rows event into the open group's batch.
    #[allow(clippy::too_many_arguments)]
    fn push_rows(
        &mut self,
        kind: Kind,
        table_id: u64,
        before_present: &dyn Fn(usize) -> bool,
        after_present: &dyn Fn(usize) -> bool,
        rows: &[u8],
        start: u64,
        timestamp: u32,
    ) -> Result<Step, ProcessError> {
        self.stmt.rows_seen = true;
        self.stmt.unmatched.retain(|(id, _)| *id != table_id);
        if kind != Kind::Insert && self.stmt.changed.is_none() {
            self.stmt.changed = self.stmt.names.get(&table_id).cloned();
        }
        let (schema, versioned) = match self.tables.get(&table_id) {
            Some(TableEntry::Captured {
                schema, versioned, ..
            }) => (schema.clone(), versioned.clone()),
            Some(TableEntry::Ignored { .. }) => return Ok(Step::Continue),
            None => {
                return Err(ProcessError::UnknownTable {
                    table_id,
                    file: self.file.to_string(),
                    pos: start,
                })
            }
        };
        if self.txn.is_none() {
            self.open_txn(start, None, false, timestamp);
            self.txn.as_mut().expect("opened above").began = true;
        }
        let txn = self.txn.as_mut().expect("opened above");
        let file = &self.file;
        let txn_start = txn.start;
        let at = |source: DecodeError| ProcessError::Decode {
            file: file.to_string(),
            pos: start,
            txn_start,
            source,
        };
        let mut reader = RowReader::new(rows);
        while !reader.is_empty() {
            let (before, after) = match kind {
                Kind::Insert => {
                    reader
                        .read_image(&schema, after_present, &mut self.scratch)
                        .map_err(at)?;
                    (Vec::new(), std::mem::take(&mut self.scratch))
                }
                Kind::Delete => {
                    reader
                        .read_image(&schema, before_present, &mut self.scratch)
                        .map_err(at)?;
                    (std::mem::take(&mut self.scratch), Vec::new())
                }
                _ => {
                    let mut before = Vec::new();
                    reader
                        .read_image(&schema, before_present, &mut before)
                        .map_err(at)?;
                    reader
                        .read_image(&schema, after_present, &mut self.scratch)
                        .map_err(at)?;
                    (before, std::mem::take(&mut self.scratch))
                }
            };
            let (kind, meta, before, after) = match &versioned {
                None => (kind, schema.meta.clone(), before, after),
                Some(l) => match l.map(kind, before, after) {
                    Some((k, b, a)) => (k, l.meta.clone(), b, a),
                    // A history row: `SELECT *` does not show it.
                    None => continue,
                },
            };
            let event = ChangeEvent {
                kind,
                meta,
                after,
                before,
                position: SourcePosition {
                    file: self.file.clone(),
                    pos: txn.start,
                    row: txn.rows,
                    gtid: txn.gtid.clone(),
                },
                timestamp,
                route: None,
            };
            self.ready.bytes += event.approx_bytes();
            self.ready.events.push(event);
            txn.rows += 1;
        }
        if self.ready.events.len() >= self.max_batch_rows
            || self.ready.bytes >= self.max_batch_bytes
        {
            if let Some(xid) = &txn.xa {
                // An XA group's rows are held until its outcome is known: no pieces.
                let held =
                    self.pending_xa.iter().map(|p| p.bytes).sum::<usize>() + self.ready.bytes;
                if held > MAX_HELD_XA_BYTES {
                    let xid = xid.clone();
                    return Err(self.xa_limit(start, &xid));
                }
                return Ok(Step::Continue);
            }
            // A piece of a large transaction: no checkpoint, and it cannot be taken back.
            txn.emitted = txn.rows;
            return Ok(Step::Emit);
        }
        Ok(Step::Continue)
    }
}

/// An INCIDENT event's body: type u16, message length u8, message.
fn incident_text(data: &[u8]) -> String {
    let kind = data
        .get(..2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    let msg = data
        .get(2)
        .and_then(|&n| data.get(3..3 + usize::from(n)))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    format!("incident {kind}: {msg}")
}

fn mysql_gtid(g: &GtidEvent) -> String {
    let sid = g.sid();
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    match g.tag() {
        Some(tag) => format!("{uuid}:{}:{}", tag.as_str(), g.gno()),
        None => format!("{uuid}:{}", g.gno()),
    }
}
