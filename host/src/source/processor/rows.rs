//! TABLE_MAP and rows events: the table-id map, and rows decoded into change events.

use std::sync::Arc;

use mysql_common::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};

use super::xa::MAX_HELD_XA_BYTES;
use super::{ProcessError, Processor, Step};
use crate::event::{ChangeEvent, Kind, SourcePosition};
use crate::source::compressed::{self, lenenc};
use crate::source::decode::{DecodeError, RowReader};
use crate::source::event_types as et;
use crate::source::schema::{self, TableSchema};
use crate::source::versioned::Layout;

pub(super) enum TableEntry {
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

impl Processor {
    pub(super) fn table_map(&mut self, event: &Event, start: u64) -> Result<Step, ProcessError> {
        let tme: TableMapEvent<'_> = event.read_event().map_err(|e| ProcessError::Malformed {
            what: "TABLE_MAP",
            file: self.file.to_string(),
            pos: start,
            detail: e.to_string(),
        })?;
        let raw = event.data();
        let id = tme.table_id();
        let key = (
            tme.database_name().into_owned(),
            tme.table_name().into_owned(),
        );
        let captured = self.filter.captures(&key.0, &key.1);
        if captured && !self.no_catalog && self.kinds.unknown(&key) {
            return Ok(Step::NeedKind {
                schema: key.0,
                table: key.1,
            });
        }
        if self.stmt.rows_seen {
            self.check_cascade(start)?;
        }
        let name = format!("{}.{}", key.0, key.1);
        if captured && !self.kinds.sequences.contains(&key) {
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
        if !captured || self.kinds.sequences.contains(&key) {
            self.tables
                .insert(id, TableEntry::Ignored { raw: raw.to_vec() });
            return Ok(Step::Continue);
        }
        let (db, table) = key.clone();
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

    pub(super) fn rows(&mut self, event: &Event, start: u64) -> Result<Step, ProcessError> {
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
            RowsEventData::PartialUpdateRowsEvent(_) => Kind::Update,
        };
        let partial_json = matches!(data, RowsEventData::PartialUpdateRowsEvent(_));
        let before_bits = data.columns_before_image();
        let after_bits = data.columns_after_image();
        let before_present = |i: usize| before_bits.is_none_or(|b| b.get(i).is_some_and(|x| *x));
        let after_present = |i: usize| after_bits.is_none_or(|b| b.get(i).is_some_and(|x| *x));
        let timestamp = event.header().timestamp();
        self.push_rows(
            (kind, partial_json),
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
    pub(super) fn compressed_rows(
        &mut self,
        event: &Event,
        start: u64,
    ) -> Result<Step, ProcessError> {
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
            (kind, false),
            table_id,
            &before_present,
            &after_present,
            &rows,
            start,
            timestamp,
        )
    }

    /// Decodes the rows of one rows event into the open group's batch. `kind.1`: a MySQL
    /// PARTIAL_UPDATE_ROWS_EVENT, whose after images may hold JSON diffs.
    #[allow(clippy::too_many_arguments)]
    fn push_rows(
        &mut self,
        (kind, partial_json): (Kind, bool),
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
                    match partial_json {
                        true => reader.read_partial_after(
                            &schema,
                            after_present,
                            &before,
                            &mut self.scratch,
                        ),
                        false => reader.read_image(&schema, after_present, &mut self.scratch),
                    }
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
                    snapshot: false,
                    cursor: None,
                    held: None,
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
