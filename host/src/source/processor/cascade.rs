//! Foreign-key cascade detection: the tables one statement opened, and the check at its end.

use std::collections::HashMap;

use super::{ProcessError, Processor};

/// The tables one statement opened (its TABLE_MAPs) and what its rows events touched.
#[derive(Default)]
pub(super) struct StatementMaps {
    /// A rows event was read since the last TABLE_MAP: the next TABLE_MAP starts a statement.
    pub(super) rows_seen: bool,
    /// Captured tables mapped in this statement that no rows event has touched yet.
    pub(super) unmatched: Vec<(u64, String)>,
    /// Every table mapped in this statement, by id.
    pub(super) names: HashMap<u64, String>,
    /// A table whose rows the statement updated or deleted.
    pub(super) changed: Option<String>,
}

impl Processor {
    /// At the end of a statement (the next TABLE_MAP after rows, or the commit): a captured
    /// table that was opened with no rows while another table's rows were updated or deleted
    /// may have been changed by a foreign-key cascade, which the server does not log. A trigger
    /// that wrote nothing looks the same; Sluice cannot tell them apart, so it stops on both.
    pub(super) fn check_cascade(&mut self, pos: u64) -> Result<(), ProcessError> {
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
}
