//! Sources of change events: the binlog stream (and, later, the initial snapshot).
//!
//! Design note: pure parts (`schema`, `decode`, `gtid`, `processor`) are kept apart from the
//! I/O (`binlog`), so that binlog files on disk (the MySQL 8 fixtures) and the live replica
//! stream go through the same decoding code.

pub mod binlog;
pub mod charset;
mod compressed;
pub mod decode;
pub mod event_types;
pub mod file;
pub mod foreign_keys;
pub mod gtid;
pub mod objects;
pub mod processor;
pub mod resets;
pub mod schema;
pub mod skip;
pub mod versioned;

pub use processor::{Batch, Processor, Step, TableFilter};
pub use resets::ResetPolicy;
