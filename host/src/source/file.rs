//! Binlog files on disk, read through the same processor as the live stream.
//!
//! Design note: MySQL-only features (its GTID events, compressed transaction payloads, binary
//! JSON) cannot be produced by the MariaDB the tests run, so real MySQL binlog files exercise
//! those paths. This reader is also the base for offline tooling. It has no catalog: tables
//! whose TABLE_MAP lacks column names get positional names (`col0`, `col1`, …).

use std::io::Cursor;
use std::path::Path;

use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::BinlogFile;

use super::processor::{ProcessError, Processor, Step, TableFilter};
use crate::event::Batch;
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
    Process {
        path: String,
        source: Box<ProcessError>,
    },
}

/// Reads every event of a binlog file and returns the batches it produces.
pub fn read_binlog_file(path: &Path, filter: TableFilter) -> Result<Vec<Batch>, FileError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| FileError::Open {
        path: name.clone(),
        source,
    })?;
    // `mysql_common` panics on an event cut short, so only whole events are handed to it. A
    // file that ends inside an event ends where the last whole event ends (a binlog still being
    // written looks like this).
    let whole = whole_events_len(&bytes);
    let mut binlog = BinlogFile::new(BinlogVersion::Version4, Cursor::new(&bytes[..whole]))
        .map_err(|source| FileError::Open {
            path: name.clone(),
            source,
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
    let mut processor = Processor::new(filter, &start, 1024)
        .without_catalog()
        .reading_one_file();
    let mut out = Vec::new();
    let mut count = 0usize;
    let mut handle = |processor: &mut Processor,
                      ev: &mysql_common::binlog::events::Event|
     -> Result<(), FileError> {
        match processor.handle(ev).map_err(|source| FileError::Process {
            path: name.clone(),
            source: Box::new(source),
        })? {
            Step::Continue => {}
            Step::Emit => out.push(processor.take_batch()),
            Step::NeedCatalog { .. } | Step::NeedKind { .. } => {
                unreachable!("the processor runs without a catalog")
            }
        }
        Ok(())
    };
    loop {
        // `mysql_common` panics on some corrupt headers (an event too short for its checksum):
        // that is an unreadable event here, not a crash of the tool reading the file.
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| binlog.next()))
            .unwrap_or_else(|_| {
                Some(Err(std::io::Error::other(
                    "the event's header is corrupt: it cannot be framed",
                )))
            });
        let Some(ev) = next else { break };
        let ev = ev.map_err(|source| FileError::Event {
            path: name.clone(),
            events: count,
            source,
        })?;
        count += 1;
        handle(&mut processor, &ev)?;
        if let Some(payload) = processor.take_payload() {
            // A compressed transaction: its events follow inside the payload, which the
            // processor decompressed (and checked) itself.
            let mut inner = Cursor::new(payload);
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
    if processor.in_transaction() {
        // The file ends inside a transaction (a binlog still being written, or cut short):
        // its rows are not returned, as a live stream would wait for the rest.
        tracing::debug!(path = %name, "the file ends inside a transaction");
    }
    Ok(out)
}

/// The length of the file's prefix that holds only whole events (after the 4-byte magic).
fn whole_events_len(bytes: &[u8]) -> usize {
    let mut at = 4.min(bytes.len());
    while let Some(header) = bytes.get(at..at + 19) {
        let size = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes")) as usize;
        if size < 19 {
            // Not a truncation: a corrupt header. Let the reader report it.
            return bytes.len();
        }
        if at + size > bytes.len() {
            break;
        }
        at += size;
    }
    at
}
