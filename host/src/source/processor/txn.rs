//! Event groups: opening one (GTID, `BEGIN`), closing it with its checkpoint (XID, `COMMIT`).

use std::sync::Arc;

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

    /// The GTID state a position records: MariaDB's per-domain state, or MySQL's executed set.
    pub(super) fn gtid_state(&self) -> Option<String> {
        if !self.maria_gtids.is_empty() {
            Some(self.maria_gtids.to_string())
        } else {
            self.mysql_gtids
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
        }
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

#[cfg(test)]
mod tests {
    use mysql_common::binlog::{consts::BinlogVersion, events::Event, BinlogFile};

    use crate::source::processor::{Processor, Step, TableFilter};
    use crate::state::BinlogPosition;

    /// The events of a MySQL fixture with GTIDs, and the PREVIOUS_GTIDS set it opens with.
    fn tagged_fixture() -> Vec<Event> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mysql-binlogs/binlog_transaction_with_GTID_TAG.000001");
        let f = std::fs::File::open(path).unwrap();
        BinlogFile::new(BinlogVersion::Version4, std::io::BufReader::new(f))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The GTID sets of the checkpoints a processor started at `gtid` gives, fed every event
    /// but PREVIOUS_GTIDS (as a stream resumed inside the file is).
    fn checkpoints(gtid: Option<&str>) -> Vec<Option<String>> {
        let start = BinlogPosition {
            file: "binlog.000001".into(),
            pos: 4,
            gtid: gtid.map(str::to_owned),
            timestamp: 0,
        };
        let mut p = Processor::new(TableFilter::all(), &start, 100).without_catalog();
        let mut out = Vec::new();
        for ev in tagged_fixture() {
            if ev.header().event_type_raw() == crate::source::event_types::PREVIOUS_GTIDS {
                continue;
            }
            if let Step::Emit = p.handle(&ev).unwrap() {
                if let Some(cp) = p.take_batch().checkpoint {
                    out.push(cp.binlog().unwrap().gtid.clone());
                }
            }
        }
        out
    }

    #[test]
    fn a_mysql_set_is_recorded_only_when_known_whole() {
        use crate::source::gtid::MysqlGtidSet;
        use mysql_common::binlog::events::PreviousGtidsEvent;

        let prev = tagged_fixture()
            .iter()
            .find(|e| e.header().event_type_raw() == crate::source::event_types::PREVIOUS_GTIDS)
            .map(|e| MysqlGtidSet::from_previous(&e.read_event::<PreviousGtidsEvent>().unwrap()))
            .unwrap();
        assert!(!prev.is_empty());
        // Started with the set before the file, the checkpoints carry it grown by each
        // transaction read: the same as a read of the whole file from its PREVIOUS_GTIDS.
        let whole = checkpoints(Some(&prev.to_string()));
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mysql-binlogs/binlog_transaction_with_GTID_TAG.000001");
        let read: Vec<Option<String>> =
            crate::source::file::read_binlog_file(&path, TableFilter::all())
                .unwrap()
                .iter()
                .filter_map(|b| b.checkpoint.as_ref())
                .map(|c| c.binlog().unwrap().gtid.clone())
                .collect();
        assert!(!whole.is_empty());
        assert_eq!(whole, read);
        let last = MysqlGtidSet::parse(whole.last().unwrap().as_deref().unwrap()).unwrap();
        assert_ne!(last, prev, "the transactions read are added");
        // Started without one, the GTIDs read are not the executed set: none is recorded (a
        // resume by such a set would replay every transaction outside it).
        let partial = checkpoints(None);
        assert_eq!(partial.len(), whole.len());
        assert!(partial.iter().all(Option::is_none), "{partial:?}");
    }
}
