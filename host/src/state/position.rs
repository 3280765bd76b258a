//! The position file: `{STATE_DIR}/binlog_position_{schema}_{table}.json`.
//!
//! ```json
//! {"log_file": "mysql-bin.000123", "log_pos": 45678, "timestamp": 1704067200.0,
//!  "readable_time": "2024-01-01 12:00:00 UTC", "gtid": "0-1-42", "format_version": 1}
//! ```
//! `timestamp` is when the position was saved (seconds since the epoch), as the Python app
//! wrote it. `gtid` and `format_version` are the contract's optional additions.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::encode::contract_json::civil_from_days;

/// The version written into new position files.
pub const FORMAT_VERSION: u32 = 1;

/// A resumable source position: the start of a transaction in a binlog file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
    /// The executed GTID set at this position, where the server uses GTIDs.
    pub gtid: Option<String>,
    /// Commit time of the transaction before this position (seconds since the epoch), 0 if unknown.
    pub timestamp: u32,
}

impl std::fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if let Some(g) = &self.gtid {
            write!(f, " (gtid {g})")?;
        }
        Ok(())
    }
}

/// Errors reading or writing the position file. A corrupt file is never ignored: Sluice would
/// otherwise restart from the binlog head and silently skip changes.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot read the position file {path}: {source}. Check the state directory's permissions"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the position file {path} is corrupt ({detail}). Sluice will not guess where to resume: \
         restore the file from a backup, fix it by hand, or delete it to start from the current \
         binlog head (changes made meanwhile will be missed)"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot write the position file {path}: {source}. Check free space and permissions of the state directory")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct PositionFile {
    log_file: String,
    log_pos: u64,
    timestamp: f64,
    readable_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gtid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format_version: Option<u32>,
}

/// The contract's file name for a set of captured tables. One table gives
/// `binlog_position_{schema}_{table}.json`; several give their names joined by `_` in the
/// configured order, so one file serves the whole pipeline.
pub fn position_file_name(schema: &str, tables: &[String]) -> String {
    format!("binlog_position_{}_{}.json", schema, tables.join("_"))
}

/// Loads and saves one position file.
#[derive(Debug, Clone)]
pub struct PositionStore {
    path: PathBuf,
}

impl PositionStore {
    pub fn new(state_dir: &Path, file_name: &str) -> Self {
        PositionStore {
            path: state_dir.join(file_name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the saved position, `None` when there is none yet.
    pub fn load(&self) -> Result<Option<BinlogPosition>, StateError> {
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
        let corrupt = |detail: String| StateError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let f: PositionFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if f.log_file.is_empty()
            || f.log_file.contains('/')
            || f.log_file.chars().any(char::is_control)
        {
            return Err(corrupt(format!(
                "log_file {:?} is not a binlog file name",
                f.log_file
            )));
        }
        if f.log_pos < 4 {
            return Err(corrupt(format!(
                "log_pos {} is before the first event (4)",
                f.log_pos
            )));
        }
        if let Some(v) = f.format_version {
            if v > FORMAT_VERSION {
                return Err(corrupt(format!(
                    "format_version {v} was written by a newer Sluice (this one reads up to {FORMAT_VERSION})"
                )));
            }
        }
        Ok(Some(BinlogPosition {
            file: f.log_file,
            pos: f.log_pos,
            gtid: f.gtid.filter(|g| !g.is_empty()),
            timestamp: 0,
        }))
    }

    /// Saves atomically: write a temporary file, fsync it, rename it over the old one, fsync
    /// the directory. A crash at any instant leaves either the old or the new file.
    pub fn save(&self, pos: &BinlogPosition) -> Result<(), StateError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let f = PositionFile {
            log_file: pos.file.clone(),
            log_pos: pos.pos,
            timestamp: now.as_secs_f64(),
            readable_time: readable_utc(now.as_secs() as i64),
            gtid: pos.gtid.clone(),
            format_version: Some(FORMAT_VERSION),
        };
        let werr = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(werr)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut file = fs::File::create(&tmp).map_err(werr)?;
            serde_json::to_writer(&mut file, &f).map_err(|e| werr(std::io::Error::other(e)))?;
            file.write_all(b"\n").map_err(werr)?;
            file.sync_all().map_err(werr)?;
        }
        fs::rename(&tmp, &self.path).map_err(werr)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Removes the saved position (used by `FORCE_SNAPSHOT`).
    pub fn clear(&self) -> Result<(), StateError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// `2024-01-01 12:00:00 UTC`
pub fn readable_utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = PositionStore::new(dir.path(), &position_file_name("shop", &["orders".into()]));
        assert!(store.load().unwrap().is_none());
        let p = BinlogPosition {
            file: "mysql-bin.000123".into(),
            pos: 45678,
            gtid: Some("0-1-5".into()),
            timestamp: 0,
        };
        store.save(&p).unwrap();
        assert_eq!(store.load().unwrap(), Some(p));
        let raw: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(raw["log_file"], "mysql-bin.000123");
        assert_eq!(raw["log_pos"], 45678);
        assert!(raw["timestamp"].is_f64());
        assert!(raw["readable_time"].as_str().unwrap().ends_with(" UTC"));
        assert!(store.path().ends_with("binlog_position_shop_orders.json"));
    }

    #[test]
    fn reads_the_python_apps_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = PositionStore::new(dir.path(), "p.json");
        fs::write(
            store.path(),
            r#"{"log_file": "mysql-bin.000123", "log_pos": 45678, "timestamp": 1704067200.0, "readable_time": "2024-01-01 12:00:00 UTC"}"#,
        )
        .unwrap();
        let p = store.load().unwrap().unwrap();
        assert_eq!(
            (p.file.as_str(), p.pos, p.gtid),
            ("mysql-bin.000123", 45678, None)
        );
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = PositionStore::new(dir.path(), "p.json");
        for bad in [
            "",
            "{",
            r#"{"log_file": "", "log_pos": 9, "timestamp": 0, "readable_time": ""}"#,
            r#"{"log_file": "b.1", "log_pos": 0, "timestamp": 0, "readable_time": ""}"#,
        ] {
            fs::write(store.path(), bad).unwrap();
            let err = store.load().unwrap_err();
            assert!(matches!(err, StateError::Corrupt { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("delete it"), "{err}");
        }
    }

    #[test]
    fn readable_time() {
        assert_eq!(readable_utc(1_704_067_200), "2024-01-01 00:00:00 UTC");
    }
}
