//! The typed change-event model that every pipeline stage shares.
//!
//! Design note: an event is a typed row (an enum of MySQL values plus shared column
//! metadata), never a `serde_json::Value`. It is decoded once from the binlog, moves through
//! the transform chain and is serialized to the contract's JSON exactly once, in the sink
//! (`crate::encode`). Column names and key positions are shared per table version through an
//! `Arc<TableMeta>`, so an event costs one allocation for its values and none for its names.
//! The value type and the event kinds come from `sluice-contract`, which the transform SDK
//! shares. Events travel between stages in [`Batch`]es.

use std::fmt;
use std::sync::Arc;

use sluice_contract::edit;

use crate::state::{BinlogPosition, SnapshotState};

pub use sluice_contract::{Kind, Value};

/// The shape of one table version: names in table column order, and which of them form the
/// primary key. Shared by every event of that table until its schema changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableMeta {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    /// Indexes into `columns`, in key order. Empty when the table has no primary key.
    pub primary_key: Vec<usize>,
}

impl TableMeta {
    /// `"{schema}.{table}"`, the contract's default Kafka key.
    pub(crate) fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Where an event came from in the source, totally ordered within one server's history.
///
/// Binlog events are ordered by `(file, pos)` of their transaction's commit, then `row`;
/// snapshot rows by their chunk and row. Every published event carries this in Kafka headers,
/// which is what later lets recovery skip what a partition already holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePosition {
    /// Binlog file that holds the event.
    pub file: Arc<str>,
    /// Start offset of the transaction (its GTID or BEGIN event) in `file`.
    pub pos: u64,
    /// Index of the row within its transaction, counting from 0.
    pub row: u32,
    /// The transaction's GTID, where GTIDs are on.
    pub gtid: Option<Arc<str>>,
    /// A row of the initial snapshot (read at the point `file`:`pos`): it orders before the
    /// transaction that starts at that point.
    pub snapshot: bool,
    /// For a snapshot row of a keyed table, in exactly-once mode: where the snapshot stands
    /// once this row is published (`{snapshot id}/{table index}/{row ordinal}/{key cursor}`),
    /// carried in the `sluice.snapshot.after` header so that a resumed snapshot continues
    /// after the last row Kafka holds (see `docs/EXACTLY_ONCE.md`).
    pub cursor: Option<Arc<str>>,
    /// For a snapshot row re-read after a crash, in exactly-once mode with several
    /// partitions: where, in this read, the rows end that some partition may already hold
    /// (see [`HeldBounds`]). Shared by the rows of one table.
    pub held: Option<Arc<HeldBounds>>,
}

/// A snapshot that resumes after a crash reads again from its last saved key, and some of
/// those rows were published before the crash, to some partitions and not others. Each
/// partition's last snapshot row names its key cursor (`sluice.snapshot.after`); the server
/// (never Sluice: it compares keys as the index does) counts the rows of the new read up to
/// each such key. A row is held in a partition when its ordinal is at or before the bound of
/// that partition's key (the sink decides, since only it knows a row's partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBounds {
    /// The snapshot these rows belong to.
    pub snapshot: String,
    /// The table's index in the snapshot.
    pub table: usize,
    /// Per key cursor (its JSON, as `sluice.snapshot.after` carries it): the ordinal of the
    /// last row of this read at or before that key, `None` when no row is.
    pub bounds: Vec<(String, Option<u64>)>,
    /// Some partition's last row is in a later table, so it holds every row of this one. Only
    /// rows that carry these bounds may be skipped: a table read again from its start (its
    /// key changed) carries none, and is published whole again.
    pub later_elsewhere: bool,
}

/// A row change, the unit every stage handles.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub kind: Kind,
    pub meta: Arc<TableMeta>,
    /// The row after the change, in `meta.columns` order. Empty for `delete`.
    pub after: Vec<Value>,
    /// The row before the change, for `update` and `delete`. Empty otherwise.
    pub before: Vec<Value>,
    pub position: SourcePosition,
    /// Commit time of the source transaction (seconds since the epoch), 0 when unknown.
    pub timestamp: u32,
    /// Destination overrides set by transforms (`None`: the configured topic, key and JSON).
    pub route: Option<Box<Route>>,
}

/// Where and how a transformed event is published, when a transform changed it. Boxed in
/// [`ChangeEvent`] because most events have none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub topic: Option<String>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The message value, instead of the contract's JSON.
    pub payload: Option<Vec<u8>>,
    /// A dead letter: the original event that a transform failed on. Later transforms leave
    /// it alone; the stdout sink logs it instead of printing it.
    pub dead_letter: bool,
}

impl Route {
    /// The bytes its topic, key, payload and headers hold (about 48 more per header).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.topic.as_ref().map_or(0, String::len)
            + self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum::<usize>()
    }
}

impl ChangeEvent {
    /// The route, created on first use.
    pub(crate) fn route_mut(&mut self) -> &mut Route {
        self.route.get_or_insert_with(Default::default)
    }

    /// An estimate of the memory this event holds (its values and their heap data), used to
    /// bound the bytes in flight between stages. Shared table metadata is not counted.
    pub(crate) fn approx_bytes(&self) -> usize {
        std::mem::size_of::<ChangeEvent>()
            + self
                .after
                .iter()
                .chain(&self.before)
                .map(Value::approx_bytes)
                .sum::<usize>()
            + self
                .route
                .as_deref()
                .map_or(0, |r| std::mem::size_of::<Route>() + r.heap_bytes())
    }

    /// A table-level `truncate` event for `schema.table` at `position`: no columns, no values.
    pub(crate) fn truncate(
        schema: &str,
        table: &str,
        position: SourcePosition,
        timestamp: u32,
    ) -> Self {
        ChangeEvent {
            kind: Kind::Truncate,
            meta: Arc::new(TableMeta {
                schema: schema.to_owned(),
                table: table.to_owned(),
                columns: Vec::new(),
                primary_key: Vec::new(),
            }),
            after: Vec::new(),
            before: Vec::new(),
            position,
            timestamp,
            route: None,
        }
    }

    /// The row image that identifies the row: `after`, or `before` for a delete.
    pub(crate) fn key_image(&self) -> &[Value] {
        if self.kind == Kind::Delete {
            &self.before
        } else {
            &self.after
        }
    }
}

/// What becomes durable once a batch (and every batch before it) is acknowledged.
///
/// The checkpointer saves these in order, coalesced per kind; when the kind changes it first
/// saves the pending one, so a snapshot's progress is never saved ahead of the streamed
/// positions before it, nor the other way round.
#[derive(Debug, Clone, PartialEq)]
pub enum Checkpoint {
    /// A streamed transaction's end: the position file moves there.
    Binlog(BinlogPosition),
    /// The snapshot's progress (the whole small state, so that saving it needs nothing else).
    /// `position`, when set, is saved to the position file first: the start of a new epoch.
    Snapshot {
        state: Arc<SnapshotState>,
        position: Option<BinlogPosition>,
    },
}

impl Checkpoint {
    /// The binlog position, for a streamed checkpoint.
    pub fn binlog(&self) -> Option<&BinlogPosition> {
        match self {
            Checkpoint::Binlog(p) => Some(p),
            Checkpoint::Snapshot { .. } => None,
        }
    }
}

/// The unit that moves between pipeline stages: ordered events, and where to resume after them.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<ChangeEvent>,
    /// Set on the last piece of a transaction (the position just after its commit), and on
    /// every snapshot chunk (its progress).
    pub checkpoint: Option<Checkpoint>,
    /// The events' estimated memory (`ChangeEvent::approx_bytes`), for the pipeline's byte
    /// bound. Kept up to date by the processor; a stage that changes `events` may recompute it.
    pub bytes: usize,
}

impl Batch {
    /// Recomputes [`Batch::bytes`] from the events (after a stage replaced them).
    pub(crate) fn recount(&mut self) {
        self.bytes = self.events.iter().map(ChangeEvent::approx_bytes).sum();
    }
}

/// Transforms' edits apply to events in place (`sluice_contract::edit::apply`).
impl edit::Target for ChangeEvent {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn columns(&self) -> &[String] {
        &self.meta.columns
    }

    fn primary_key(&self) -> &[usize] {
        &self.meta.primary_key
    }

    fn images(&mut self) -> (&mut Vec<Value>, &mut Vec<Value>) {
        (&mut self.after, &mut self.before)
    }

    fn reshape(&mut self, columns: Vec<String>, primary_key: Vec<usize>) {
        self.meta = Arc::new(TableMeta {
            schema: self.meta.schema.clone(),
            table: self.meta.table.clone(),
            columns,
            primary_key,
        });
    }

    fn set_topic(&mut self, topic: String) {
        self.route_mut().topic = Some(topic);
    }

    fn set_key(&mut self, key: Vec<u8>) {
        self.route_mut().key = Some(key);
    }

    fn add_header(&mut self, key: String, value: Vec<u8>) {
        self.route_mut().headers.push((key, value));
    }

    fn set_payload(&mut self, payload: Vec<u8>) {
        self.route_mut().payload = Some(payload);
    }
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}#{}", self.file, self.pos, self.row)
    }
}
