//! What the configuration says of one transform: its file, name, config pairs, failure policy
//! and sandbox limits (`TRANSFORMS`, or `[[transforms]]` in the TOML file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::engine::Limits;

/// What happens when a transform fails on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Stop the pipeline; lose nothing; do not advance the position.
    #[default]
    Halt,
    /// Log and count the event, and go on without it.
    Skip,
    /// Publish the original event to the dead-letter topic, with the error in headers.
    DeadLetter,
}

/// One configured transform.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSpec {
    /// For logs and headers; the file stem unless configured.
    pub name: String,
    pub path: PathBuf,
    /// Passed to the transform's `init`.
    pub config: Vec<(String, String)>,
    pub on_error: FailurePolicy,
    pub dead_letter_topic: Option<String>,
    pub limits: Limits,
}

impl TransformSpec {
    /// A spec with defaults for a path (as given in `TRANSFORMS`).
    pub fn from_path(path: &Path) -> Self {
        TransformSpec {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "transform".into()),
            path: path.to_owned(),
            config: Vec::new(),
            on_error: FailurePolicy::Halt,
            dead_letter_topic: None,
            limits: Limits::default(),
        }
    }
}

/// The TOML form of a transform (`[[transforms]]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTransform {
    pub path: PathBuf,
    pub name: Option<String>,
    #[serde(default)]
    pub config: std::collections::BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub on_error: FailurePolicy,
    pub dead_letter_topic: Option<String>,
    pub memory_mb: Option<usize>,
    pub cpu_ms: Option<u64>,
}

impl FileTransform {
    pub(crate) fn into_spec(self) -> TransformSpec {
        let mut spec = TransformSpec::from_path(&self.path);
        if let Some(n) = self.name {
            spec.name = n;
        }
        spec.config = self
            .config
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect();
        spec.on_error = self.on_error;
        spec.dead_letter_topic = self.dead_letter_topic;
        if let Some(mb) = self.memory_mb {
            spec.limits.memory_bytes = mb << 20;
        }
        if let Some(ms) = self.cpu_ms {
            spec.limits.cpu = Duration::from_millis(ms);
        }
        spec
    }
}
