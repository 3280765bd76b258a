//! XA transactions: held from their PREPARE until their `XA COMMIT` or `XA ROLLBACK`.
//!
//! Design note: a prepared XA transaction's rows are kept in memory (bounded) and published
//! when its `XA COMMIT` arrives, or dropped at its `XA ROLLBACK`. While one is pending, every
//! checkpoint stays at the start of its PREPARE group, so a restart reads it again.
//!
//! Only an XA transaction with captured rows is remembered (and holds the checkpoint). One that
//! touched no captured table publishes nothing whatever its outcome, so it must not hold the
//! checkpoint: an XA prepared and forgotten on the server would otherwise freeze the saved
//! position forever, and every restart would read everything since again.
//!
//! Hence an `XA COMMIT`/`XA ROLLBACK` may name an xid Sluice does not hold, and it passes. The
//! argument that this loses nothing, for a stream that starts at a position Sluice saved:
//! every saved position is a checkpoint, and while an XA with captured rows is pending every
//! checkpoint stays at the start of its PREPARE group. So no saved position lies between the
//! PREPARE of an XA with captured rows and the `XA COMMIT`/`ROLLBACK` that finishes it: a
//! stream from a saved position reads that PREPARE again (and remembers the xid) before it can
//! reach the outcome. An unknown xid at `XA COMMIT` therefore had no captured rows, also across
//! a restart between its PREPARE and its COMMIT. The one start that is not a saved checkpoint
//! is the very first one, at the server's current head: an XA prepared before it could still
//! hold captured rows, which is why `binlog::current_head` refuses to start there while the
//! server lists prepared XA transactions (`XA RECOVER`).

use super::{ProcessError, Processor, Step};
use crate::event::ChangeEvent;
use crate::state::BinlogPosition;

/// At most this many bytes of rows are held in memory for XA transactions (pending ones and
/// the one being read), and at most this many XA transactions may be pending at once.
pub(super) const MAX_HELD_XA_BYTES: usize = 256 << 20;
pub(super) const MAX_PENDING_XA: usize = 1024;

/// A prepared XA transaction waiting for its XA COMMIT or XA ROLLBACK.
pub(super) struct PendingXa {
    pub(super) xid: String,
    pub(super) events: Vec<ChangeEvent>,
    pub(super) bytes: usize,
    pub(super) resume: BinlogPosition,
}

impl Processor {
    /// An `XA …` statement (`w1` is its second word, `rest` what follows it).
    pub(super) fn xa_statement(
        &mut self,
        w1: &str,
        rest: &str,
        start: u64,
        end: u64,
        timestamp: u32,
    ) -> Result<Step, ProcessError> {
        let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
        let xid = xa_id(rest);
        if let Some(w) = &mut self.xa_watch {
            if is(w1, "START") || is(w1, "BEGIN") {
                w.started.insert(xid.clone());
            } else if (is(w1, "COMMIT") || is(w1, "ROLLBACK"))
                && !w.started.contains(&xid)
                && w.foreign.is_none()
            {
                w.foreign = Some(xid.clone());
            }
        }
        if is(w1, "START") || is(w1, "BEGIN") {
            self.open_txn(start, None, false, timestamp);
            let t = self.txn.as_mut().expect("opened above");
            t.began = true;
            t.xa = Some(xid);
            return Ok(Step::Continue);
        }
        if is(w1, "END") {
            return Ok(Step::Continue);
        }
        if is(w1, "PREPARE") {
            return self.prepare_xa(start);
        }
        if is(w1, "COMMIT") {
            // XA COMMIT … ONE PHASE inside the XA group commits that group.
            if self.txn.as_ref().is_some_and(|t| t.xa.is_some()) {
                return self.commit(end, timestamp);
            }
            return self.finish_xa(&xid, true, start, end, timestamp);
        }
        if is(w1, "ROLLBACK") {
            return self.finish_xa(&xid, false, start, end, timestamp);
        }
        // XA RECOVER and the like change nothing.
        Ok(Step::Continue)
    }

    /// XA_PREPARE: the XA group's rows wait for their XA COMMIT.
    pub(super) fn prepare_xa(&mut self, pos: u64) -> Result<Step, ProcessError> {
        // The XA's last statement ends here: a cascade it caused is its own, not the next
        // group's.
        self.check_cascade(pos)?;
        let file = self.file.to_string();
        let Some(t) = self.txn.take().filter(|t| t.xa.is_some()) else {
            return Err(ProcessError::Malformed {
                what: "XA_PREPARE",
                file,
                pos,
                detail: "XA PREPARE outside an XA transaction (no XA START before it)".into(),
            });
        };
        let batch = std::mem::take(&mut self.ready);
        if batch.events.is_empty() {
            // No captured rows: nothing to publish or drop later, and nothing to hold the
            // checkpoint for (see the module note). Its outcome passes as an unknown xid.
            return Ok(Step::Continue);
        }
        let held: usize = self.pending_xa.iter().map(|p| p.bytes).sum::<usize>() + batch.bytes;
        if self.pending_xa.len() >= MAX_PENDING_XA || held > MAX_HELD_XA_BYTES {
            return Err(self.xa_limit(pos, t.xa.as_deref().unwrap_or_default()));
        }
        self.pending_xa.push(PendingXa {
            xid: t.xa.expect("filtered above"),
            events: batch.events,
            bytes: batch.bytes,
            resume: t.resume,
        });
        Ok(Step::Continue)
    }

    pub(super) fn xa_limit(&self, pos: u64, xid: &str) -> ProcessError {
        ProcessError::Xa {
            what: format!("the prepared XA transactions (the latest {xid}) exceed Sluice's bound"),
            file: self.file.to_string(),
            pos,
            limit_bytes: MAX_HELD_XA_BYTES,
            limit_count: MAX_PENDING_XA,
            fix: "commit or roll back the prepared XA transactions on the server (XA RECOVER \
                  lists them), then restart",
        }
    }

    /// `XA COMMIT id` (publish the prepared rows) or `XA ROLLBACK id` (drop them).
    pub(super) fn finish_xa(
        &mut self,
        xid: &str,
        commit: bool,
        pos: u64,
        end: u64,
        timestamp: u32,
    ) -> Result<Step, ProcessError> {
        match self.pending_xa.iter().position(|p| p.xid == xid) {
            Some(i) => {
                let mut p = self.pending_xa.remove(i);
                if commit {
                    // The rows are published at the XA COMMIT, so they take its place in the
                    // binlog: every event's position then follows the publishing order, which
                    // exactly-once recovery relies on (the PREPARE group lies before
                    // transactions that were published earlier).
                    let (start, gtid) = self
                        .txn
                        .as_ref()
                        .map_or((pos, None), |t| (t.start, t.gtid.clone()));
                    for (row, ev) in p.events.iter_mut().enumerate() {
                        ev.position = crate::event::SourcePosition {
                            file: self.file.clone(),
                            pos: start,
                            row: u32::try_from(row).unwrap_or(u32::MAX),
                            gtid: gtid.clone(),
                            snapshot: false,
                            cursor: None,
                            held: None,
                        };
                    }
                    self.ready.events.splice(0..0, p.events);
                    self.ready.bytes += p.bytes;
                }
            }
            // Its PREPARE had no captured rows (see the module note for why, also when the
            // PREPARE is before the start): nothing to publish or drop.
            None => {
                tracing::debug!(%xid, commit, position = %format!("{}:{pos}", self.file),
                    "the outcome of an XA transaction without captured rows");
            }
        }
        self.commit(end, timestamp)
    }
}

/// An XA id as the statement writes it (`X'7831',X'',1`), normalised for comparison.
fn xa_id(rest: &str) -> String {
    let mut s: String = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    for suffix in [" ONE PHASE", " one phase", ";"] {
        if let Some(t) = s.strip_suffix(suffix) {
            s = t.to_owned();
        }
    }
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::statement::split_word;
    use super::*;

    #[test]
    fn xa_ids() {
        assert_eq!(xa_id(" X'7831',X'',1"), "X'7831',X'',1");
        assert_eq!(xa_id(" X'7831', X'', 1 ONE PHASE"), "X'7831',X'',1");
        assert_eq!(split_word(" XA START").0, "XA");
    }

    #[test]
    fn a_watching_processor_notes_outcomes_of_xas_that_began_before_it() {
        let start = BinlogPosition {
            file: "mysql-bin.000001".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        let mut p = Processor::new(crate::source::TableFilter::all(), &start, 10);
        p.watch_xa();
        // Begun and finished in the stream: nothing to note.
        p.xa_statement("START", " 'a'", 10, 20, 0).unwrap();
        p.xa_statement("END", " 'a'", 20, 30, 0).unwrap();
        p.xa_statement("PREPARE", " 'a'", 30, 40, 0).unwrap();
        p.xa_statement("COMMIT", " 'a'", 40, 50, 0).unwrap();
        assert_eq!(p.foreign_xa(), None);
        // Its XA START came before the stream's start: noted, the first one kept.
        p.xa_statement("ROLLBACK", " 'b'", 50, 60, 0).unwrap();
        p.xa_statement("COMMIT", " 'c'", 60, 70, 0).unwrap();
        assert_eq!(p.foreign_xa(), Some("'B'"));
        // Without the watch, nothing is noted.
        let mut q = Processor::new(crate::source::TableFilter::all(), &start, 10);
        q.xa_statement("COMMIT", " 'c'", 60, 70, 0).unwrap();
        assert_eq!(q.foreign_xa(), None);
    }
}
