//! Sources of change events: the binlog stream and the initial snapshot.
//!
//! Design note: pure parts (`schema`, `decode`, `gtid`, `processor`) are kept apart from the
//! I/O (`binlog`), so that binlog files on disk (the MySQL 8 fixtures) and the live replica
//! stream go through the same decoding code.

pub(crate) mod binlog;
pub mod charset;
mod compressed;
pub(crate) mod decode;
pub(crate) mod event_types;
pub(crate) mod failover;
pub mod file;
pub mod foreign_keys;
pub(crate) mod gtid;
pub(crate) mod json_diff;
pub mod objects;
pub(crate) mod processor;
pub(crate) mod resets;
pub(crate) mod rotate;
pub(crate) mod schema;
pub mod skip;
pub(crate) mod snapshot;
pub(crate) mod versioned;

pub use processor::{TableFilter, TablePattern};
pub use resets::ResetPolicy;
