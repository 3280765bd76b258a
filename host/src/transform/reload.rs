//! Hot reload: watches the transforms' `.wasm` files and prepares new versions off the hot path.
//!
//! Design note: the watcher (notify) watches each file's *directory*, because cargo replaces an
//! artifact rather than writing it in place, and ignores access events. After a quiet period
//! (debounce) it compiles the new file, instantiates it, runs its `init` and a smoke call with an
//! empty batch, all on its own thread. Only a module that passes all of that is offered to the
//! chain, which swaps it in between two batches, so no event is lost or handled twice. A file that
//! fails any step is rejected with a log line, and the old version keeps running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::engine::{Live, Module, TransformEngine};
use super::TransformSpec;

/// A new version, ready to be swapped in.
pub struct Reloaded {
    pub stage: usize,
    pub module: Module,
    pub live: Live,
}

/// Quiet time after the last change before a file is loaded.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Starts the watcher thread. Returns the channel the chain polls at batch boundaries.
pub fn watch(
    engine: Arc<TransformEngine>,
    specs: Vec<TransformSpec>,
) -> notify::Result<mpsc::Receiver<Reloaded>> {
    let (tx, rx) = mpsc::channel();
    let (ev_tx, ev_rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(ev_tx)?;
    let paths: Vec<PathBuf> = specs
        .iter()
        .map(|s| std::path::absolute(&s.path).unwrap_or_else(|_| s.path.clone()))
        .collect();
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| p.parent().map(|d| d.to_owned()))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    std::thread::Builder::new()
        .name("sluice-reload".into())
        .spawn(move || {
            let _watcher = watcher; // lives as long as the thread
            let mut hashes: HashMap<usize, String> = HashMap::new();
            let mut pending: HashMap<usize, Instant> = HashMap::new();
            loop {
                let timeout = pending.values().map(|t| (*t + DEBOUNCE).saturating_duration_since(Instant::now())).min();
                let ev = match timeout {
                    Some(t) => ev_rx.recv_timeout(t),
                    None => ev_rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                match ev {
                    Ok(Ok(event)) => {
                        if matches!(event.kind, EventKind::Access(_)) {
                            continue;
                        }
                        for p in &event.paths {
                            for (i, path) in paths.iter().enumerate() {
                                if p == path {
                                    pending.insert(i, Instant::now());
                                }
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "file watcher error"),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                let due: Vec<usize> = pending.iter().filter(|(_, t)| t.elapsed() >= DEBOUNCE).map(|(i, _)| *i).collect();
                for i in due {
                    pending.remove(&i);
                    let spec = &specs[i];
                    match prepare(&engine, spec) {
                        Ok((module, live)) => {
                            if hashes.get(&i) == Some(&module.hash) {
                                continue;
                            }
                            hashes.insert(i, module.hash.clone());
                            tracing::info!(transform = %spec.name, hash = %&module.hash[..12], "new version compiled and initialised; swapping it in at the next batch boundary");
                            if tx.send(Reloaded { stage: i, module, live }).is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::error!(transform = %spec.name, path = %spec.path.display(), error = %e, "rejected the new version; the previous one keeps running"),
                    }
                }
            }
        })
        .expect("spawning the reload thread");
    Ok(rx)
}

fn prepare(engine: &TransformEngine, spec: &TransformSpec) -> Result<(Module, Live), String> {
    let module = engine.load(&spec.path).map_err(|e| e.to_string())?;
    let mut live =
        Live::start(&module, &spec.name, &spec.config, spec.limits).map_err(|e| e.to_string())?;
    // A smoke call: the new version must at least answer an empty batch.
    live.call(&[], &[], &[], &[]).map_err(|e| e.to_string())?;
    Ok((module, live))
}
