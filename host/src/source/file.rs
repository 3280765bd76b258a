//! Binlog files on disk, read through the same processor as the live stream.
//!
//! Design note: MySQL-only features (its GTID events, compressed transaction payloads, binary
//! JSON) cannot be produced by the MariaDB the tests run, so real MySQL binlog files exercise
//! those paths. This reader is also the base for offline tooling. It has no catalog: tables
//! whose TABLE_MAP lacks column names get positional names (`col0`, `col1`, …).

use std::io::{BufReader, Cursor};
use std::path::Path;

use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::TransactionPayloadEvent;
use mysql_common::binlog::BinlogFile;

use super::processor::{Batch, ProcessError, Processor, Step, TableFilter};
use crate::state::BinlogPosition;

/// Why a binlog file could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: unreadable event after {events} events: {source}")]
    Event {
        path: String,
        events: usize,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Process { path: String, source: ProcessError },
}

/// Reads every event of a binlog file and returns the batches it produces.
pub fn read_binlog_file(path: &Path, filter: TableFilter) -> Result<Vec<Batch>, FileError> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| FileError::Open {
        path: name.clone(),
        source,
    })?;
    let mut binlog =
        BinlogFile::new(BinlogVersion::Version4, BufReader::new(f)).map_err(|source| {
            FileError::Open {
                path: name.clone(),
                source,
            }
        })?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start = BinlogPosition {
        file: file_name,
        pos: 4,
        gtid: None,
        timestamp: 0,
    };
    let mut processor = Processor::new(filter, &start, 1024).without_catalog();
    let mut out = Vec::new();
    let mut count = 0usize;
    let mut handle = |processor: &mut Processor,
                      ev: &mysql_common::binlog::events::Event|
     -> Result<(), FileError> {
        match processor.handle(ev).map_err(|source| FileError::Process {
            path: name.clone(),
            source,
        })? {
            Step::Continue => {}
            Step::Emit => out.push(processor.take_batch()),
            Step::NeedCatalog { .. } => unreachable!("the processor runs without a catalog"),
        }
        Ok(())
    };
    while let Some(ev) = binlog.next() {
        let ev = ev.map_err(|source| FileError::Event {
            path: name.clone(),
            events: count,
            source,
        })?;
        count += 1;
        handle(&mut processor, &ev)?;
        if ev.header().event_type_raw() == 40 {
            // A compressed transaction: its events follow inside the payload.
            let payload: TransactionPayloadEvent<'_> =
                ev.read_event().map_err(|source| FileError::Event {
                    path: name.clone(),
                    events: count,
                    source,
                })?;
            let mut inner = Cursor::new(payload.danger_decompress());
            while let Some(inner_ev) =
                binlog
                    .reader_mut()
                    .read_decompressed(&mut inner)
                    .map_err(|source| FileError::Event {
                        path: name.clone(),
                        events: count,
                        source,
                    })?
            {
                handle(&mut processor, &inner_ev)?;
            }
        }
    }
    Ok(out)
}
