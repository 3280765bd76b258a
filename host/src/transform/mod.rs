//! WebAssembly transforms: the stage between the source and the sink.
//!
//! Design note: authors write transforms against `wit/transform.wit` (usually through the
//! `sluice-guest` SDK). `engine` owns wasmtime (compilation cache, sandbox, limits), `chain`
//! runs batches through the configured transforms with their failure policies, and `reload`
//! swaps in new versions of changed `.wasm` files at batch boundaries.

pub mod chain;
pub mod engine;
pub mod reload;
pub mod template;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use chain::{Chain, HaltError, Stage};
pub use engine::{EngineError, Limits, TransformEngine};

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
pub struct FileTransform {
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
    pub fn into_spec(self) -> TransformSpec {
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

/// Loads every transform and starts its instance.
///
/// A transform that loaded and initialised earlier in this process (a pipeline restart, or a
/// hot reload) keeps its last validated version when the file on disk no longer loads or
/// initialises: the restart goes on with the version that was running, with a warning. A
/// first start with an invalid file fails.
pub fn build_chain(
    engine: &TransformEngine,
    specs: &[TransformSpec],
) -> Result<Chain, EngineError> {
    let mut stages = Vec::with_capacity(specs.len());
    for spec in specs {
        let fresh = engine
            .load(&spec.path)
            .and_then(|module| Ok((Stage::new(spec.clone(), module.clone())?, module)));
        let stage = match fresh {
            Ok((stage, module)) => {
                tracing::info!(transform = %spec.name, path = %spec.path.display(), hash = %&module.hash[..12], "loaded transform");
                engine.remember(&spec.path, &module);
                stage
            }
            Err(e) => {
                let Some(module) = engine.last_validated(&spec.path) else {
                    return Err(e);
                };
                tracing::warn!(transform = %spec.name, path = %spec.path.display(), error = %e, hash = %&module.hash[..12], "the file on disk does not load; keeping the version that was running. Fix or replace the file");
                Stage::new(spec.clone(), module)?
            }
        };
        stages.push(stage);
    }
    Ok(Chain::new(stages))
}
