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

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::binlog::events::{Event, GtidEvent, PreviousGtidsEvent, QueryEvent, RotateEvent};

mod cascade;
mod error;
mod filter;
mod payload;
mod rows;
#[path = "../statement.rs"]
mod statement;
mod txn;
#[path = "../xa.rs"]
mod xa;

use super::compressed;
use super::event_types as et;
use super::gtid::{self, MariaGtidState, MysqlGtidSet};
use super::objects::TableKinds;
pub(crate) use super::resets::ResetPolicy;
use super::rotate;
use super::schema::InfoSchemaTable;
use crate::event::{Batch, Value};
use crate::state::BinlogPosition;
use cascade::StatementMaps;
pub(crate) use error::ProcessError;
pub use filter::{TableFilter, TablePattern};
use payload::Payload;
use rows::TableEntry;
use txn::Txn;
use xa::PendingXa;

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
    /// The kind of this captured table (sequence, system-versioned) was not read at the start
    /// (it was created or renamed since): read it ([`super::objects::table_kinds`]), call
    /// [`Processor::provide_kinds`] and hand the same event in again.
    NeedKind { schema: String, table: String },
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
    /// MySQL's executed-GTID set: the start's, grown by PREVIOUS_GTIDS and each GTID event.
    /// Unknown (`None`) until the start position or a file's PREVIOUS_GTIDS gives all of it: a
    /// set of only the GTIDs read would make a resume by GTID replay everything outside it.
    mysql_gtids: Option<MysqlGtidSet>,
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
    /// The server chose where the stream starts (a GTID dump): the opening fake ROTATE names
    /// the file, instead of the requested position.
    file_from_stream: bool,
    ready: Batch,
    scratch: Vec<Value>,
    /// Set by a snapshot's window check: which XA transactions began in this stream, and the
    /// first outcome (`XA COMMIT`/`ROLLBACK`) of one that began before it.
    xa_watch: Option<XaWatch>,
}

/// Whether an event's CRC32 (when the server writes one: `binlog_checksum=CRC32`) disagrees
/// with its bytes; `None` when it agrees or the event carries none (events inside a compressed
/// transaction, servers without checksums).
fn checksum_mismatch(event: &Event) -> Option<String> {
    use mysql_common::binlog::consts::BinlogChecksumAlg;
    let footer = event.footer();
    let alg = footer.get_checksum_alg().ok().flatten()?;
    if alg != BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32 || !footer.get_checksum_enabled() {
        return None;
    }
    let stored = u32::from_le_bytes(event.checksum()?);
    let computed = event.calc_checksum(alg);
    (stored != computed).then(|| {
        format!(
            "the event's CRC32 is {stored:#010x} but its bytes give {computed:#010x}: the binlog \
             is corrupt here (check the server's disk and binlog; a replica of it may hold a \
             good copy)"
        )
    })
}

/// XA transactions seen by a stream that starts at a snapshot's point (see `xa`).
#[derive(Debug, Default)]
struct XaWatch {
    started: std::collections::HashSet<String>,
    foreign: Option<String>,
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
        let mysql_gtids = start.gtid.as_deref().and_then(MysqlGtidSet::parse);
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
            mysql_gtids,
            max_batch_rows: max_batch_rows.max(1),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            no_catalog: false,
            reset_policy: ResetPolicy::Stop,
            kinds: TableKinds::default(),
            accept_cascades: false,
            stmt: StatementMaps::default(),
            format_seen: false,
            one_file: false,
            file_from_stream: false,
            ready: Batch::default(),
            scratch: Vec::new(),
            xa_watch: None,
        }
    }

    /// Notes the outcome of any XA transaction that began before the stream's start
    /// ([`Processor::foreign_xa`]): for the snapshot's check that none prepared before its
    /// point commits rows after it.
    pub(crate) fn watch_xa(&mut self) {
        self.xa_watch = Some(XaWatch::default());
    }

    /// The xid of the first `XA COMMIT`/`XA ROLLBACK` read whose `XA START` came before the
    /// stream's start (with [`Processor::watch_xa`]).
    pub(crate) fn foreign_xa(&self) -> Option<&str> {
        self.xa_watch.as_ref()?.foreign.as_deref()
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

    /// The server chooses where the stream starts (a MySQL GTID dump): the file is the one the
    /// stream's opening ROTATE names, not the start position's.
    pub(crate) fn with_file_from_stream(mut self) -> Self {
        self.file_from_stream = true;
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

    /// Whether a prepared XA transaction with captured rows is held: the stream's checkpoint
    /// stays at its PREPARE until its outcome is read, so a stream that stops now must not
    /// count as having passed it.
    pub(crate) fn holds_xa(&self) -> bool {
        !self.pending_xa.is_empty()
    }

    /// Where the stream is, as a resumable position: `file:end` with the GTID state read so
    /// far. Meaningful only between transactions.
    pub(crate) fn position_at(&self, end: u64) -> BinlogPosition {
        BinlogPosition {
            file: self.file.to_string(),
            pos: end,
            gtid: self.gtid_state(),
            timestamp: 0,
        }
    }

    /// The binlog file events are currently read from.
    pub(crate) fn current_file(&self) -> &str {
        &self.file
    }

    /// Supplies a table's kind after [`Step::NeedKind`].
    pub(crate) fn provide_kinds(&mut self, schema: String, table: String, read: TableKinds) {
        self.kinds.learn((schema, table), read);
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
        // A corrupt event never reaches a parser: some size a parser trusts (a count of GTID
        // ranges, of ENUM labels, of JSON elements) could make it allocate without bound.
        if let Some(mut detail) = checksum_mismatch(event) {
            let end = u64::from(header.log_pos());
            if end == 0 {
                detail.push_str(&format!(
                    " (an artificial event of type {type_code}, which has no offset of its own)"
                ));
            }
            let pos = end.saturating_sub(u64::from(header.event_size()));
            return Err(ProcessError::Malformed {
                what: "event (its checksum)",
                file: self.file.to_string(),
                pos,
                detail,
            });
        }
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
        if !matches!(step, Step::NeedCatalog { .. } | Step::NeedKind { .. }) {
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
                } else if self.file_from_stream && !self.format_seen {
                    self.file = Arc::from(rotate::rotate_file(event).as_str());
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
            // MySQL partial JSON updates: the diffs are applied to the before image.
            et::PARTIAL_UPDATE_ROWS => self.rows(event, start),
            // MySQL GTID / ANONYMOUS_GTID / GTID_TAGGED
            et::GTID | et::ANONYMOUS_GTID | et::GTID_TAGGED => {
                if type_code == et::ANONYMOUS_GTID {
                    self.open_txn(start, None, false, timestamp);
                } else {
                    let g: GtidEvent = event.read_event().map_err(|e| malformed("GTID", e))?;
                    // The group's resume point carries the GTID set before it.
                    let text = gtid::format_gtid(&g);
                    self.open_txn(start, Some(Arc::from(text.as_str())), false, timestamp);
                    if let Some(set) = &mut self.mysql_gtids {
                        set.observe(&g);
                    }
                }
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
            // MySQL: every GTID before this binlog file.
            et::PREVIOUS_GTIDS => {
                let ev: PreviousGtidsEvent<'_> = event
                    .read_event()
                    .map_err(|e| malformed("PREVIOUS_GTIDS", e))?;
                let prev = MysqlGtidSet::from_previous(&ev);
                match &mut self.mysql_gtids {
                    Some(set) => set.union(&prev),
                    None => self.mysql_gtids = Some(prev),
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
            // the next file follows. HEARTBEAT(_V2): keep-alives.
            // BINLOG_CHECKPOINT: bookkeeping. ROWS_QUERY and ANNOTATE_ROWS: the text of the
            // statement whose row events follow. INTVAR, RAND, USER_VAR: context of a
            // statement-format query, which is judged itself. BEGIN_LOAD_QUERY: a LOAD DATA
            // file's data; the EXECUTE_LOAD_QUERY that uses it stops. TRANSACTION_CONTEXT and
            // VIEW_CHANGE: group replication membership. START_ENCRYPTION: the server decrypts
            // what it sends to a replica, and an encrypted file fails to parse after it.
            // The server had nothing else to send: the stream is at its head (the lag metric).
            et::HEARTBEAT | et::HEARTBEAT_V2 => {
                crate::telemetry::metrics::heartbeat();
                Ok(Step::Continue)
            }
            et::START_V3
            | et::STOP
            | et::INTVAR
            | et::RAND
            | et::USER_VAR
            | et::BEGIN_LOAD_QUERY
            | et::ROWS_QUERY
            | et::TRANSACTION_CONTEXT
            | et::VIEW_CHANGE
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
