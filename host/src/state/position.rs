//! The position file: `{STATE_DIR}/binlog_position_{schema}_{table}.json`.
//!
//! ```json
//! {"log_file": "mysql-bin.000123", "log_pos": 45678, "timestamp": 1704067200.0,
//!  "readable_time": "2024-01-01 12:00:00 UTC", "gtid": "0-1-42", "format_version": 1}
//! ```
//! `timestamp` is when the position was saved (seconds since the epoch), as the Python app
//! wrote it. `gtid` and `format_version` are the contract's optional additions.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use sluice_contract::format::civil_from_days;

/// The version written into new position files.
pub(crate) const FORMAT_VERSION: u32 = 1;

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
    #[error(
        "the snapshot file {path} is corrupt ({detail}). Sluice will not guess how far the \
         snapshot got: restore the file from a backup, or delete it and start with \
         FORCE_SNAPSHOT=true to take the snapshot again from the start"
    )]
    CorruptSnapshot { path: PathBuf, detail: String },
    #[error(
        "the topic list {path} is corrupt ({detail}). It names the topics transforms routed \
         events to, which exactly-once recovery reads back: restore it from a backup, or write \
         it by hand as {{\"topics\": [\"name\", ...], \"format_version\": 1}}"
    )]
    CorruptTopics { path: PathBuf, detail: String },
    #[error("cannot write the state file {path}: {source}. Check free space and permissions of the state directory")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another Sluice instance holds the state directory {dir} ({holder}). Two pipelines must \
         not share a state directory: stop the other instance, or give this one its own \
         directory with Quix__State__Dir (TOML `state.dir`)"
    )]
    Locked { dir: PathBuf, holder: String },
    #[error(
        "found {legacy}, the position file an earlier Sluice wrote for these tables, but not \
         {path}, the name this version uses (the old name was ambiguous: `a,b` and the single \
         table `a_b` shared it). If {legacy} belongs to this pipeline, rename it to {path}; \
         otherwise move it away. Sluice will not guess"
    )]
    Legacy { legacy: PathBuf, path: PathBuf },
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

/// The longest file name common Linux file systems accept, in bytes.
const MAX_FILE_NAME: usize = 255;

/// The position file's name for a pipeline.
///
/// - One table: `binlog_position_{schema}_{table}.json`, byte-exact as the contract and the
///   Python app have it.
/// - Several tables: `binlog_position_{schema}_{t1}_{t2}…_{hash}.json`, in the configured order,
///   where `hash` is 16 hex digits of SHA-256 over the schema and the exact table list. Without
///   the hash, the tables `a,b` and the single table `a_b` would share a file.
/// - A name longer than 255 bytes (long table names, many tables) keeps as much of the readable
///   part as fits, cut at a character boundary, followed by the hash, so it always fits.
pub fn position_file_name(schema: &str, tables: &[String]) -> String {
    // A pipeline that patterns choose tables for (see `Config::state_tables`): its name ends in
    // 64 hex digits after `patterns_`, longer than any table name can be (64 characters), so
    // it cannot be a single table's.
    if tables.iter().any(|t| is_pattern_key(t)) {
        let mut h = Sha256::new();
        h.update(schema.as_bytes());
        for t in tables {
            h.update([0u8]);
            h.update(t.as_bytes());
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let mut schema_part = schema.to_owned();
        while schema_part.len() > 64 {
            schema_part.pop();
        }
        return format!("binlog_position_{schema_part}_patterns_{hex}.json");
    }
    let readable = format!("binlog_position_{}_{}", schema, tables.join("_"));
    let hash = || {
        let mut h = Sha256::new();
        h.update(schema.as_bytes());
        for t in tables {
            h.update([0u8]);
            h.update(t.as_bytes());
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    if tables.len() == 1 && readable.len() + ".json".len() <= MAX_FILE_NAME {
        return format!("{readable}.json");
    }
    let suffix = format!("_{}.json", hash());
    let mut cut = readable.len().min(MAX_FILE_NAME - suffix.len());
    while !readable.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &readable[..cut])
}

/// Whether a state key entry is a pattern (`*`, `?`) or an include/exclude entry.
fn is_pattern_key(t: &str) -> bool {
    t.contains(['*', '?']) || t.starts_with("include:") || t.starts_with("exclude:")
}

/// The name earlier versions gave a multi-table pipeline's file (names joined by `_`, no hash).
/// `None` where it equals [`position_file_name`] (one table).
pub(crate) fn legacy_position_file_name(schema: &str, tables: &[String]) -> Option<String> {
    let legacy = format!("binlog_position_{}_{}.json", schema, tables.join("_"));
    (legacy != position_file_name(schema, tables)).then_some(legacy)
}

/// Loads and saves one position file.
#[derive(Debug, Clone)]
pub struct PositionStore {
    path: PathBuf,
    /// A file an earlier version may have written under an ambiguous name.
    legacy: Option<PathBuf>,
}

impl PositionStore {
    #[cfg(test)]
    pub(crate) fn new(state_dir: &Path, file_name: &str) -> Self {
        PositionStore {
            path: state_dir.join(file_name),
            legacy: None,
        }
    }

    /// The store of the pipeline that captures `tables` (as configured) in `schema`.
    pub fn for_tables(state_dir: &Path, schema: &str, tables: &[String]) -> Self {
        PositionStore {
            path: state_dir.join(position_file_name(schema, tables)),
            legacy: legacy_position_file_name(schema, tables).map(|n| state_dir.join(n)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the saved position, `None` when there is none yet.
    pub fn load(&self) -> Result<Option<BinlogPosition>, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match &self.legacy {
                    Some(legacy) if legacy.exists() => Err(StateError::Legacy {
                        legacy: legacy.clone(),
                        path: self.path.clone(),
                    }),
                    _ => Ok(None),
                }
            }
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

    /// Saves atomically (`state::atomic`): a crash at any instant leaves either the old or the
    /// new file.
    pub(crate) fn save(&self, pos: &BinlogPosition) -> Result<(), StateError> {
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
        let mut bytes = serde_json::to_vec(&f).map_err(|e| werr(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        super::atomic::write_atomically(&self.path, &bytes).map_err(werr)?;
        Ok(())
    }
}

/// `2024-01-01 12:00:00 UTC`
pub(crate) fn readable_utc(secs: i64) -> String {
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
    fn file_names_are_exact_for_one_table_and_unambiguous_for_several() {
        let one = |t: &str| position_file_name("shop", &[t.to_owned()]);
        let many = |ts: &[&str]| {
            position_file_name(
                "shop",
                &ts.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(one("orders"), "binlog_position_shop_orders.json");
        assert_eq!(one("a_b"), "binlog_position_shop_a_b.json");
        let ab = many(&["a", "b"]);
        assert!(ab.starts_with("binlog_position_shop_a_b_"), "{ab}");
        assert!(ab.ends_with(".json") && ab.len() == "binlog_position_shop_a_b_".len() + 21);
        assert_ne!(ab, one("a_b"));
        assert_ne!(many(&["a_b", "c"]), many(&["a", "b_c"]));
        assert_ne!(
            many(&["a", "b"]),
            many(&["b", "a"]),
            "the configured order counts"
        );
        assert_eq!(ab, many(&["a", "b"]), "stable");
        assert_eq!(
            legacy_position_file_name("shop", &["a".into(), "b".into()]).as_deref(),
            Some("binlog_position_shop_a_b.json")
        );
        assert_eq!(legacy_position_file_name("shop", &["a_b".into()]), None);
    }

    #[test]
    fn long_names_fit_and_stay_distinct() {
        let long = |c: char| c.to_string().repeat(64);
        let four: Vec<String> = "abcd".chars().map(long).collect();
        let name = position_file_name(&"s".repeat(64), &four);
        assert!(name.len() <= 255, "{}", name.len());
        let mut other = four.clone();
        other[3] = long('e');
        assert_ne!(name, position_file_name(&"s".repeat(64), &other));
        // One table with a multi-byte name over the limit: cut at a character boundary.
        let wide = "я".repeat(64);
        let name = position_file_name(&"ш".repeat(64), &[wide]);
        assert!(name.len() <= 255 && name.ends_with(".json"), "{name}");
        let dir = tempfile::tempdir().unwrap();
        let store = PositionStore::new(dir.path(), &name);
        let p = BinlogPosition {
            file: "b.000001".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        store.save(&p).unwrap();
        assert_eq!(store.load().unwrap(), Some(p));
    }

    #[test]
    fn a_legacy_multi_table_file_is_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let tables = vec!["a".to_owned(), "b".to_owned()];
        fs::write(
            dir.path().join("binlog_position_shop_a_b.json"),
            r#"{"log_file": "b.000001", "log_pos": 4, "timestamp": 0, "readable_time": ""}"#,
        )
        .unwrap();
        let store = PositionStore::for_tables(dir.path(), "shop", &tables);
        let err = store.load().unwrap_err();
        assert!(matches!(err, StateError::Legacy { .. }), "{err}");
        assert!(err.to_string().contains("rename it"), "{err}");
        // The single table `a_b` owns that name and reads it.
        let single = PositionStore::for_tables(dir.path(), "shop", &["a_b".to_owned()]);
        assert_eq!(single.load().unwrap().unwrap().file, "b.000001");
    }

    #[test]
    fn readable_time() {
        assert_eq!(readable_utc(1_704_067_200), "2024-01-01 00:00:00 UTC");
    }
}
