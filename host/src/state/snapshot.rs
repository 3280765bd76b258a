//! The snapshot's progress file: `{STATE_DIR}/snapshot_{…}.json`, beside the position file.
//!
//! Design note: it records, per captured table, how far the initial snapshot has read (the key
//! of the last row Kafka acknowledged), the consistent point *P* the rows were read at, and the
//! completion (the contract: "the snapshot's completion is recorded in the state directory").
//! It is written atomically like the position file, only by the checkpointer, after the sink
//! acknowledged every row it claims. The cursor is kept as opaque JSON here: its typed form
//! belongs to the source (`source::snapshot::keyset`), which is what reads it back.
//! See `docs/SNAPSHOT.md` §5 for the write order and the start-up decision.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::position::{position_file_name, BinlogPosition, StateError};

/// The version written into new snapshot files.
const FORMAT_VERSION: u32 = 1;

/// Whether the snapshot still has rows to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    Running,
    Complete,
}

/// How far one table's snapshot got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Nothing of it acknowledged yet.
    Pending,
    /// Rows up to `after` (in key order) acknowledged; a keyless table has no `after`.
    Reading,
    Done,
}

/// A binlog point in the snapshot file (the position file's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub log_file: String,
    pub log_pos: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

impl From<&BinlogPosition> for Point {
    fn from(p: &BinlogPosition) -> Self {
        Point {
            log_file: p.file.clone(),
            log_pos: p.pos,
            gtid: p.gtid.clone(),
        }
    }
}

impl Point {
    /// The position streaming resumes from at this point.
    pub fn position(&self) -> BinlogPosition {
        BinlogPosition {
            file: self.log_file.clone(),
            pos: self.log_pos,
            gtid: self.gtid.clone(),
            timestamp: 0,
        }
    }
}

/// One table's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableProgress {
    pub schema: String,
    pub table: String,
    /// The columns of the key the table is read in order of; empty for a keyless table.
    pub key: Vec<String>,
    /// `primary`, `unique:<index>` or `none`.
    pub key_source: String,
    /// The key's signature when the table was first read: a changed key restarts the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sig: Option<String>,
    pub state: TableStatus,
    /// The last key acknowledged (the source's typed cursor, as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// Rows acknowledged so far (in this table's current read).
    pub rows: u64,
    pub chunks: u64,
    /// Read again from the start after rows of it were published (a keyless table cut by a
    /// crash, a key that changed): with `ON_TABLE_RESET=event`, its next read begins with a
    /// `truncate` event, so a consumer drops the copy it had.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reread: bool,
}

/// The whole snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotState {
    pub format_version: u32,
    /// Names this snapshot (a new one on every forced or needed re-snapshot).
    pub id: String,
    pub status: SnapshotStatus,
    /// Counts the consistent points the rows were read at: 1, then one more per resume.
    pub epoch: u32,
    /// The point of the current epoch: rows are read as of it, streaming follows from it.
    pub point: Point,
    /// The first epoch's point, for diagnostics.
    pub first_point: Point,
    /// `host:port` the rows were read from.
    pub snapshot_host: String,
    pub started_at: f64,
    #[serde(default)]
    pub completed_at: Option<f64>,
    pub tables: Vec<TableProgress>,
}

/// Seconds since the epoch, now.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl SnapshotState {
    /// A new snapshot of `tables` at `point`, nothing read yet.
    pub(crate) fn new(
        point: &BinlogPosition,
        snapshot_host: String,
        tables: Vec<TableProgress>,
    ) -> Self {
        let started_at = now_secs();
        let secs = started_at as i64;
        // `2026-11-28 06:15:00 UTC` → `20261128T061500Z-3f2a` (the suffix: sub-second bits).
        let readable = super::position::readable_utc(secs);
        let (date, time) = readable.split_once(' ').unwrap_or((&readable, ""));
        let id = format!(
            "{}T{}Z-{:04x}",
            date.replace('-', ""),
            time.trim_end_matches(" UTC").replace(':', ""),
            (started_at.fract() * 65536.0) as u32
        );
        SnapshotState {
            format_version: FORMAT_VERSION,
            id,
            status: SnapshotStatus::Running,
            epoch: 1,
            point: point.into(),
            first_point: point.into(),
            snapshot_host,
            started_at,
            completed_at: None,
            tables,
        }
    }

    /// Whether any row of this snapshot may have reached the sink.
    pub(crate) fn delivered_any(&self) -> bool {
        self.tables.iter().any(|t| t.state != TableStatus::Pending)
    }

    /// Total rows acknowledged.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Loads and saves the snapshot file of one pipeline.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    path: PathBuf,
}

impl SnapshotStore {
    /// The store of the pipeline that captures `tables` in `schema`: the position file's name
    /// with `snapshot_` for `binlog_position_` (same hash and length rule).
    pub fn for_tables(state_dir: &Path, schema: &str, tables: &[String]) -> Self {
        let name = position_file_name(schema, tables);
        let name = name.replacen("binlog_position_", "snapshot_", 1);
        SnapshotStore {
            path: state_dir.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file, `None` when there is none. A corrupt file is an error, never ignored.
    pub fn load(&self) -> Result<Option<SnapshotState>, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |detail: String| StateError::CorruptSnapshot {
            path: self.path.clone(),
            detail,
        };
        let s: SnapshotState =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if s.format_version > FORMAT_VERSION {
            return Err(corrupt(format!(
                "format_version {} was written by a newer Sluice (this one reads up to {FORMAT_VERSION})",
                s.format_version
            )));
        }
        Ok(Some(s))
    }

    /// Saves atomically (`state::atomic`).
    pub(crate) fn save(&self, s: &SnapshotState) -> Result<(), StateError> {
        let werr = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec(s).map_err(|e| werr(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        super::atomic::write_atomically(&self.path, &bytes).map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SnapshotState {
        let p = BinlogPosition {
            file: "mysql-bin.000003".into(),
            pos: 4878,
            gtid: Some("0-1-22".into()),
            timestamp: 0,
        };
        SnapshotState::new(
            &p,
            "db:3306".into(),
            vec![TableProgress {
                schema: "shop".into(),
                table: "orders".into(),
                key: vec!["id".into()],
                key_source: "primary".into(),
                key_sig: Some("9c1e".into()),
                state: TableStatus::Reading,
                after: Some(serde_json::json!([{"i": 5123}])),
                rows: 41000,
                chunks: 41,
                reread: false,
            }],
        )
    }

    #[test]
    fn round_trips_and_names_its_file_after_the_position_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::for_tables(dir.path(), "shop", &["orders".into()]);
        assert_eq!(
            store.path().file_name().and_then(|n| n.to_str()),
            Some("snapshot_shop_orders.json")
        );
        assert_eq!(store.load().expect("load"), None);
        let s = state();
        store.save(&s).expect("save");
        assert_eq!(store.load().expect("load"), Some(s.clone()));
        assert!(s.delivered_any());
        assert_eq!(s.point.position().pos, 4878);
        assert_eq!(s.id.len(), "20261128T061500Z-3f2a".len(), "{}", s.id);
    }

    #[test]
    fn a_corrupt_or_newer_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::for_tables(dir.path(), "shop", &["orders".into()]);
        fs::write(store.path(), b"{not json").expect("write");
        let e = store.load().expect_err("corrupt").to_string();
        assert!(
            e.contains("snapshot file") && e.contains("FORCE_SNAPSHOT"),
            "{e}"
        );
        let mut s = state();
        s.format_version = 99;
        store.save(&s).expect("save");
        assert!(store.load().is_err());
    }
}
