//! The topics a pipeline has published to: `{STATE_DIR}/kafka_topics_{…}.json`.
//!
//! Design note: exactly-once recovery reads back the last record of every partition Sluice
//! writes to. The configured topic and the dead-letter topics are known from the config, but a
//! transform can route to any topic. Each routed topic is recorded here, durably, *before* its
//! first record is sent, so a crash can never leave a record in a topic that recovery does not
//! know to read. The set only grows.
//!
//! ```json
//! {"topics": ["cdc.orders.eu", "cdc.orders.us"], "format_version": 1}
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StateError;

#[derive(Serialize, Deserialize)]
struct TopicsFile {
    topics: BTreeSet<String>,
    format_version: u32,
}

/// Loads and extends one pipeline's set of routed topics.
#[derive(Debug, Clone)]
pub(crate) struct TopicStore {
    path: PathBuf,
}

impl TopicStore {
    /// The store beside the position file named `position_file` (`binlog_position_…` becomes
    /// `kafka_topics_…`), so each pipeline has its own.
    pub(crate) fn beside(state_dir: &Path, position_file: &str) -> TopicStore {
        let stem = position_file
            .strip_prefix("binlog_position_")
            .unwrap_or(position_file);
        TopicStore {
            path: state_dir.join(format!("kafka_topics_{stem}")),
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded topics (none when the file does not exist).
    pub(crate) fn load(&self) -> Result<BTreeSet<String>, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_slice::<TopicsFile>(&bytes)
            .map(|f| f.topics)
            .map_err(|e| StateError::CorruptTopics {
                path: self.path.clone(),
                detail: e.to_string(),
            })
    }

    /// Adds `topic` to the recorded set and makes it durable before returning.
    pub(crate) fn add(&self, topic: &str) -> Result<(), StateError> {
        let mut topics = self.load()?;
        if !topics.insert(topic.to_owned()) {
            return Ok(());
        }
        let f = TopicsFile {
            topics,
            format_version: 1,
        };
        let werr = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec(&f).map_err(|e| werr(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        super::atomic::write_atomically(&self.path, &bytes).map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_recorded_durably_and_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let store = TopicStore::beside(dir.path(), "binlog_position_shop_orders.json");
        assert!(store.path().ends_with("kafka_topics_shop_orders.json"));
        assert!(store.load().unwrap().is_empty());
        store.add("eu").unwrap();
        store.add("us").unwrap();
        store.add("eu").unwrap();
        let again = TopicStore::beside(dir.path(), "binlog_position_shop_orders.json");
        assert_eq!(
            again.load().unwrap().into_iter().collect::<Vec<_>>(),
            ["eu", "us"]
        );
        fs::write(store.path(), "{").unwrap();
        assert!(matches!(
            store.load().unwrap_err(),
            StateError::CorruptTopics { .. }
        ));
    }
}
