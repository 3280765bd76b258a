//! The record of transactions an operator chose to skip.
//!
//! Design note: Sluice never skips on its own. When an operator moves the position past a
//! transaction that Sluice refused (`sluice position skip`), the fact is kept for later audits
//! in `{state_dir}/skipped.jsonl`: one JSON object per skip, appended and fsynced *before* the
//! position file moves, so no skip ever happens without its record.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::position::readable_utc;
use super::StateError;

/// The skip log's name inside the state directory.
pub(crate) const SKIP_LOG: &str = "skipped.jsonl";

/// Appends one record to the skip log and makes it durable.
pub(crate) fn append(state_dir: &Path, record: &serde_json::Value) -> Result<PathBuf, StateError> {
    let path = state_dir.join(SKIP_LOG);
    let werr = |source| StateError::Write {
        path: path.clone(),
        source,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = serde_json::json!({
        "timestamp": now.as_secs_f64(),
        "readable_time": readable_utc(now.as_secs() as i64),
    });
    if let (Some(obj), Some(extra)) = (line.as_object_mut(), record.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    std::fs::create_dir_all(state_dir).map_err(werr)?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(werr)?;
    let mut bytes = serde_json::to_vec(&line).map_err(|e| werr(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    f.write_all(&bytes).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_line_per_skip() {
        let dir = tempfile::tempdir().unwrap();
        append(
            dir.path(),
            &serde_json::json!({"reason": "a", "from": "b.1:4"}),
        )
        .unwrap();
        let path = append(dir.path(), &serde_json::json!({"reason": "b"})).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "a");
        assert_eq!(lines[0]["from"], "b.1:4");
        assert_eq!(lines[1]["reason"], "b");
        assert!(lines[1]["readable_time"]
            .as_str()
            .unwrap()
            .ends_with(" UTC"));
    }
}
