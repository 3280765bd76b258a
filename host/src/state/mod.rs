//! Durable pipeline state: the binlog position and the snapshot's progress.
//!
//! Design note: the position file is part of the external contract (`shared/CONTRACT.md`): its
//! name, its fields and its atomic write (temporary file, fsync, rename, fsync of the
//! directory). A position is saved only at a commit boundary and only after the sink acknowledged
//! every event before it, so the file is a lower bound on what Kafka holds. One process at a time
//! runs a pipeline on a state directory (`lock`).

pub(crate) mod atomic;
pub(crate) mod lock;
pub(crate) mod position;
pub(crate) mod skiplog;
pub(crate) mod snapshot;
pub(crate) mod topics;

pub(crate) use lock::StateLock;
pub use position::{position_file_name, BinlogPosition, PositionStore, StateError};
pub use snapshot::{SnapshotState, SnapshotStatus, SnapshotStore, TableProgress, TableStatus};
pub(crate) use topics::TopicStore;
