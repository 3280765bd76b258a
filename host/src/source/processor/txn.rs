//! Event groups: opening one (GTID, `BEGIN`), closing it with its checkpoint (XID, `COMMIT`).

use std::sync::Arc;

use mysql_common::binlog::events::GtidEvent;

use super::{ProcessError, Processor, Step};
use crate::state::BinlogPosition;

/// The open event group.
pub(super) struct Txn {
    pub(super) start: u64,
    pub(super) gtid: Option<Arc<str>>,
    pub(super) rows: u32,
    /// Rows already sent in pieces: they cannot be taken back by a rollback.
    pub(super) emitted: u32,
    /// `BEGIN` (or `XA START`) was seen: the group ends at its XID/COMMIT. Without it, the next
    /// query ends the group (a DDL after a GTID event).
    pub(super) began: bool,
    /// MariaDB FL_STANDALONE: the next statement ends the group.
    pub(super) standalone: bool,
    /// The XA transaction's id (`X'..',X'..',n` as the server writes it) between XA START and
    /// its PREPARE.
    pub(super) xa: Option<String>,
    /// `SAVEPOINT` names with the row count at that point.
    pub(super) savepoints: Vec<(String, u32)>,
    /// Where a restart reads this group again: its start, with the GTID state before it.
    pub(super) resume: BinlogPosition,
}

impl Processor {
    pub(super) fn open_txn(
        &mut self,
        start: u64,
        gtid: Option<Arc<str>>,
        standalone: bool,
        timestamp: u32,
    ) {
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

    pub(super) fn gtid_state(&self) -> Option<String> {
        (!self.maria_gtids.is_empty()).then(|| self.maria_gtids.to_string())
    }

    pub(super) fn commit(&mut self, end: u64, timestamp: u32) -> Result<Step, ProcessError> {
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
        self.ready.checkpoint = Some(crate::event::Checkpoint::Binlog(checkpoint));
        Ok(Step::Emit)
    }
}

/// A MySQL GTID event's GTID as the server prints it: `uuid:gno`, or `uuid:tag:gno`.
pub(super) fn mysql_gtid(g: &GtidEvent) -> String {
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
