//! Binlog events to batches of change events, with transaction boundaries and positions.
//!
//! Design note: this is the pure core of the binlog source. It sees one `mysql_common` event at
//! a time (from a live replica stream or from a binlog file on disk) and produces [`Batch`]es:
//! the rows of one transaction, in order, ending with the [`Checkpoint`] at which a restart can
//! resume. A transaction larger than `max_batch_rows` is sent in pieces; only its last piece
//! carries a checkpoint, so a position never points into the middle of a transaction.
//!
//! Transaction boundaries: a GTID event (MySQL 33/34, MariaDB 162) or `BEGIN` opens a group; an
//! XID event or a `COMMIT` query closes it; a DDL statement outside a group is a group of its
//! own (MariaDB marks those GTIDs FL_STANDALONE).
//!
//! Table ids are keys only within this stream: the map is cleared on every real ROTATE, and a
//! cached schema is reused only when the TABLE_MAP's bytes are identical. Catalog data from
//! `information_schema` (for servers without `binlog_row_metadata=FULL`) is keyed by name and
//! dropped whenever a DDL statement passes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mysql_common::binlog::events::{
    Event, EventData, GtidEvent, QueryEvent, RotateEvent, RowsEventData, TableMapEvent,
};

use super::decode::{DecodeError, RowReader};
use super::gtid::{self, MariaGtidState};
use super::schema::{self, InfoSchemaTable, SchemaError, TableSchema};
use crate::event::{ChangeEvent, Kind, SourcePosition, Value};
use crate::state::BinlogPosition;

/// The unit that moves between pipeline stages: ordered events, and where to resume after them.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<ChangeEvent>,
    /// Set on the last piece of a transaction: the position just after its commit.
    pub checkpoint: Option<BinlogPosition>,
    /// The events' estimated memory ([`ChangeEvent::approx_bytes`]), for the pipeline's byte
    /// bound. Kept up to date by the processor; a stage that changes `events` may recompute it.
    pub bytes: usize,
}

impl Batch {
    /// Recomputes [`Batch::bytes`] from the events (after a stage replaced them).
    pub fn recount(&mut self) {
        self.bytes = self.events.iter().map(ChangeEvent::approx_bytes).sum();
    }
}

/// Default byte size at which a large transaction's batch is cut into a piece.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 8 << 20;

/// What the processor needs from its driver before it can go on.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
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
    #[error(transparent)]
    Decode(#[from] DecodeError),
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
}

/// Which tables to capture, by `(schema, table)`.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    tables: HashSet<(String, String)>,
}

impl TableFilter {
    pub fn new<I: IntoIterator<Item = (String, String)>>(tables: I) -> Self {
        TableFilter {
            tables: tables.into_iter().collect(),
        }
    }

    /// A filter that captures every table (used by tools that read binlog files).
    pub fn all() -> Self {
        TableFilter::default()
    }

    pub fn captures(&self, schema: &str, table: &str) -> bool {
        self.tables.is_empty() || self.tables.contains(&(schema.to_owned(), table.to_owned()))
    }
}

enum TableEntry {
    Captured {
        raw: Vec<u8>,
        schema: Arc<TableSchema>,
    },
    Ignored {
        raw: Vec<u8>,
    },
}

struct Txn {
    start: u64,
    gtid: Option<Arc<str>>,
    rows: u32,
    /// MariaDB FL_STANDALONE: the next statement ends the group.
    standalone: bool,
}

/// Turns binlog events into batches. See the module note.
pub struct Processor {
    filter: TableFilter,
    file: Arc<str>,
    tables: HashMap<u64, TableEntry>,
    catalog: HashMap<(String, String), InfoSchemaTable>,
    txn: Option<Txn>,
    /// End position of a MySQL TRANSACTION_PAYLOAD event whose inner events are being read.
    payload_end: Option<u64>,
    maria_gtids: MariaGtidState,
    max_batch_rows: usize,
    max_batch_bytes: usize,
    /// Build schemas from TABLE_MAP alone (positional names) instead of asking for a catalog.
    no_catalog: bool,
    ready: Batch,
    scratch: Vec<Value>,
}

impl Processor {
    /// `start` is where the stream was requested from; its file names the events until the
    /// first real ROTATE.
    pub fn new(filter: TableFilter, start: &BinlogPosition, max_batch_rows: usize) -> Self {
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
            txn: None,
            payload_end: None,
            maria_gtids,
            max_batch_rows: max_batch_rows.max(1),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            no_catalog: false,
            ready: Batch::default(),
            scratch: Vec::new(),
        }
    }

    /// Never asks for catalog data: tables without column names in TABLE_MAP get positional
    /// names. For reading binlog files offline.
    pub fn without_catalog(mut self) -> Self {
        self.no_catalog = true;
        self
    }

    /// Cuts a transaction's batch into a piece once its events hold about this many bytes.
    pub fn with_max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes.max(1);
        self
    }

    /// Takes the batch that the last [`Step::Emit`] announced.
    pub fn take_batch(&mut self) -> Batch {
        std::mem::take(&mut self.ready)
    }

    /// Whether a transaction is open (rows may still follow before its commit).
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some() || !self.ready.events.is_empty()
    }

    /// The binlog file events are currently read from.
    pub fn current_file(&self) -> &str {
        &self.file
    }

    /// Supplies catalog data after [`Step::NeedCatalog`].
    pub fn provide_catalog(&mut self, schema: String, table: String, info: InfoSchemaTable) {
        self.catalog.insert((schema, table), info);
    }

    /// Handles one event.
    pub fn handle(&mut self, event: &Event) -> Result<Step, ProcessError> {
        let header = event.header();
        let end = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        let start = end.saturating_sub(size);
        let type_code = header.event_type_raw();
        let malformed = |what: &'static str, e: std::io::Error| ProcessError::Malformed {
            what,
            file: self.file.to_string(),
            pos: start,
            detail: e.to_string(),
        };

        match type_code {
            // ROTATE
            4 => {
                let rotate: RotateEvent<'_> =
                    event.read_event().map_err(|e| malformed("ROTATE", e))?;
                // A fake ROTATE (log_pos 0) opens every stream. Its name can carry the checksum
                // bytes (mysql_common reads it before the FORMAT_DESCRIPTION), so the requested
                // file name stands; a position is never built from it.
                if header.log_pos() != 0 {
                    self.file = Arc::from(rotate.name().as_ref());
                    self.tables.clear();
                }
                Ok(Step::Continue)
            }
            // QUERY
            2 => {
                let q: QueryEvent<'_> = event.read_event().map_err(|e| malformed("QUERY", e))?;
                let sql = q.query();
                let word = first_word(&sql);
                if word.eq_ignore_ascii_case("BEGIN") {
                    self.open_txn(start, None, false);
                    Ok(Step::Continue)
                } else if word.eq_ignore_ascii_case("COMMIT")
                    || word.eq_ignore_ascii_case("ROLLBACK")
                {
                    self.commit(end, header.timestamp())
                } else if word.eq_ignore_ascii_case("XA") {
                    // XA transactions: rows arrive between XA START and XA END; XA PREPARE/COMMIT
                    // close the group. Treat any XA statement outside a group as a boundary.
                    if self.txn.is_some() && !sql.to_ascii_uppercase().contains("COMMIT") {
                        Ok(Step::Continue)
                    } else {
                        self.commit(end, header.timestamp())
                    }
                } else {
                    // DDL (or a statement-format write): column metadata may have changed.
                    if is_ddl(word) {
                        self.catalog.clear();
                    }
                    match &self.txn {
                        Some(t) if !t.standalone => Ok(Step::Continue),
                        _ => self.commit(end, header.timestamp()),
                    }
                }
            }
            // XID
            16 => self.commit(end, header.timestamp()),
            // TABLE_MAP
            19 => self.table_map(event, start),
            // WRITE/UPDATE/DELETE v1 (MariaDB) and v2 (MySQL)
            23..=25 | 30..=32 => self.rows(event, start),
            // PARTIAL_UPDATE_ROWS (MySQL partial JSON updates)
            39 => Err(ProcessError::Unsupported {
                what: "partial JSON updates",
                file: self.file.to_string(),
                pos: start,
            }),
            // MySQL GTID / ANONYMOUS_GTID / GTID_TAGGED
            33 | 34 | 42 => {
                let gtid = if type_code == 34 {
                    None
                } else {
                    let g: GtidEvent = event.read_event().map_err(|e| malformed("GTID", e))?;
                    Some(Arc::from(mysql_gtid(&g).as_str()))
                };
                self.open_txn(start, gtid, false);
                Ok(Step::Continue)
            }
            gtid::MARIADB_GTID => {
                let g = gtid::parse_mariadb_gtid(event.data(), header.server_id()).ok_or_else(
                    || malformed("MariaDB GTID", std::io::Error::other("short event")),
                )?;
                self.maria_gtids.observe(g.gtid);
                self.open_txn(
                    start,
                    Some(Arc::from(g.gtid.to_string().as_str())),
                    g.standalone,
                );
                Ok(Step::Continue)
            }
            gtid::MARIADB_GTID_LIST => {
                if let Some(list) = gtid::parse_mariadb_gtid_list(event.data()) {
                    for g in list {
                        self.maria_gtids.observe(g);
                    }
                }
                Ok(Step::Continue)
            }
            // TRANSACTION_PAYLOAD (MySQL compressed transactions): the inner events follow.
            40 => {
                self.payload_end = Some(end);
                if self.txn.is_none() {
                    self.open_txn(start, None, false);
                }
                Ok(Step::Continue)
            }
            _ => Ok(Step::Continue),
        }
    }

    fn open_txn(&mut self, start: u64, gtid: Option<Arc<str>>, standalone: bool) {
        match &mut self.txn {
            // BEGIN after a GTID event belongs to the same group.
            Some(t) if gtid.is_none() && !standalone => {}
            _ => {
                self.txn = Some(Txn {
                    start,
                    gtid,
                    rows: 0,
                    standalone,
                })
            }
        }
    }

    fn commit(&mut self, end: u64, timestamp: u32) -> Result<Step, ProcessError> {
        // Inside a compressed payload the inner events' positions are not file offsets; the
        // payload's end is where the next transaction starts.
        let end = self.payload_end.take().unwrap_or(end);
        self.txn = None;
        let gtid = if self.maria_gtids.is_empty() {
            None
        } else {
            Some(self.maria_gtids.to_string())
        };
        self.ready.checkpoint = Some(BinlogPosition {
            file: self.file.to_string(),
            pos: end,
            gtid,
            timestamp,
        });
        Ok(Step::Emit)
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
        if !self.filter.captures(&db, &table) {
            self.tables
                .insert(id, TableEntry::Ignored { raw: raw.to_vec() });
            return Ok(Step::Continue);
        }
        let catalog = if self.no_catalog || schema::has_column_names(&tme) {
            None
        } else {
            match self.catalog.get(&(db.clone(), table.clone())) {
                Some(c) => Some(c),
                None => return Ok(Step::NeedCatalog { schema: db, table }),
            }
        };
        let schema = schema::build_schema(&tme, catalog)?;
        self.tables.insert(
            id,
            TableEntry::Captured {
                raw: raw.to_vec(),
                schema: Arc::new(schema),
            },
        );
        Ok(Step::Continue)
    }

    fn rows(&mut self, event: &Event, start: u64) -> Result<Step, ProcessError> {
        let data = match event.read_data() {
            Ok(Some(EventData::RowsEvent(r))) => r,
            Ok(_) => return Ok(Step::Continue),
            Err(e) => {
                return Err(ProcessError::Malformed {
                    what: "ROWS",
                    file: self.file.to_string(),
                    pos: start,
                    detail: e.to_string(),
                })
            }
        };
        let schema = match self.tables.get(&data.table_id()) {
            Some(TableEntry::Captured { schema, .. }) => schema.clone(),
            Some(TableEntry::Ignored { .. }) => return Ok(Step::Continue),
            None => {
                return Err(ProcessError::UnknownTable {
                    table_id: data.table_id(),
                    file: self.file.to_string(),
                    pos: start,
                })
            }
        };
        if self.txn.is_none() {
            self.open_txn(start, None, false);
        }
        let txn = self.txn.as_mut().expect("opened above");
        let timestamp = event.header().timestamp();
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
        let mut reader = RowReader::new(data.rows_data());
        while !reader.is_empty() {
            let (before, after) = match kind {
                Kind::Insert => {
                    reader.read_image(&schema, &after_present, &mut self.scratch)?;
                    (Vec::new(), std::mem::take(&mut self.scratch))
                }
                Kind::Delete => {
                    reader.read_image(&schema, &before_present, &mut self.scratch)?;
                    (std::mem::take(&mut self.scratch), Vec::new())
                }
                _ => {
                    let mut before = Vec::new();
                    reader.read_image(&schema, &before_present, &mut before)?;
                    reader.read_image(&schema, &after_present, &mut self.scratch)?;
                    (before, std::mem::take(&mut self.scratch))
                }
            };
            let event = ChangeEvent {
                kind,
                meta: schema.meta.clone(),
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
        if self.ready.events.len() >= self.max_batch_rows || self.ready.bytes >= self.max_batch_bytes
        {
            // A piece of a large transaction: no checkpoint.
            return Ok(Step::Emit);
        }
        Ok(Step::Continue)
    }
}

fn first_word(sql: &str) -> &str {
    let s = sql.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    // Skip a leading comment such as /* ... */ which some tools prepend.
    let s = if let Some(rest) = s.strip_prefix("/*") {
        rest.split_once("*/")
            .map(|(_, r)| r.trim_start())
            .unwrap_or("")
    } else {
        s
    };
    s.split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap_or("")
}

fn is_ddl(word: &str) -> bool {
    ["ALTER", "CREATE", "DROP", "RENAME", "TRUNCATE"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_words() {
        assert_eq!(first_word("BEGIN"), "BEGIN");
        assert_eq!(first_word("  /* app */ ALTER TABLE t ADD c INT"), "ALTER");
        assert_eq!(first_word("COMMIT;"), "COMMIT");
        assert!(is_ddl("alter"));
        assert!(!is_ddl("insert"));
    }
}
