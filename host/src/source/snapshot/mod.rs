//! The initial snapshot: every captured table read at one consistent point, then the binlog
//! streamed from exactly that point. See `docs/SNAPSHOT.md` for the design and its argument.

pub(crate) mod drive;
pub(crate) mod epoch;
mod error;
mod guard;
pub(crate) mod keyset;
mod mysql;
pub(crate) mod plan;
mod progress;
pub(crate) mod replica;
pub(crate) mod table;
pub(crate) mod values;

pub(crate) use error::SnapshotError;
