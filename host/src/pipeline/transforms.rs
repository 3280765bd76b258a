//! The transforms of a `run`: their engine, their hot-reload watcher, and their chain.
//!
//! Design note: [`Transforms::load`] runs before anything connects, so a broken transform stops
//! Sluice at once. It creates the one [`TransformEngine`] of the run and, under `--watch`, the
//! one [`Reloader`]; both live as long as the supervisor, across restarts of the stages, so a
//! restart keeps the last validated version of a file that no longer loads (the engine
//! remembers it) and reuses the file watcher (an inotify instance per restart would run out).
//! The first life of the stages gets the chain loaded then; each later one loads the chain
//! again ([`Transforms::chain`]). Compiling (or reading the artifact cache) runs off the async
//! threads.

use std::sync::Arc;

use tokio::sync::watch;

use super::PipelineError;
use crate::config::Config;
use crate::transform::reload::{Reloaded, Reloader};
use crate::transform::{build_chain, Chain, EngineError, TransformEngine, TransformSpec};

/// A transform chain and, under `--watch`, the stream of its reloaded versions.
pub(super) type LoadedChain = (Chain, Option<std::sync::mpsc::Receiver<Reloaded>>);

/// The transforms of a run (see the module's design note).
pub(super) struct Transforms {
    /// None when no transform is configured.
    engine: Option<Arc<TransformEngine>>,
    specs: Vec<TransformSpec>,
    hot_reload: bool,
    reloader: Option<Reloader>,
    /// The chain [`Transforms::load`] built, for the first life of the stages.
    first: Option<LoadedChain>,
    /// The watcher's count of prepared versions when the last chain was built.
    built_at: u64,
}

impl Transforms {
    /// Creates the engine and loads and `init`s the configured transforms (none: nothing).
    pub(super) async fn load(cfg: &Config) -> Result<Transforms, PipelineError> {
        let mut transforms = Transforms {
            engine: None,
            specs: cfg.transforms.clone(),
            hot_reload: cfg.hot_reload,
            reloader: None,
            first: None,
            built_at: 0,
        };
        if transforms.specs.is_empty() {
            return Ok(transforms);
        }
        let cache = cfg.transform_cache_dir.clone();
        let engine = tokio::task::spawn_blocking(move || TransformEngine::new(Some(cache)))
            .await
            .map_err(|e| PipelineError::panicked("transform loading", e))??;
        transforms.engine = Some(Arc::new(engine));
        transforms.first = transforms.build().await?;
        Ok(transforms)
    }

    /// The chain for a life of the stages: the one [`Transforms::load`] built for the first
    /// life, a freshly loaded one for the others (keeping the running version of a file that no
    /// longer loads), or none without transforms.
    pub(super) async fn chain(&mut self) -> Result<Option<LoadedChain>, PipelineError> {
        match self.first.take() {
            Some(loaded) => Ok(Some(loaded)),
            None => self.build().await,
        }
    }

    /// Builds the chain, subscribing to the watcher (started here if it is not running yet)
    /// first, so that a version it prepares while the chain is built is not lost.
    async fn build(&mut self) -> Result<Option<LoadedChain>, PipelineError> {
        let Some(engine) = self.engine.clone() else {
            return Ok(None);
        };
        let specs = self.specs.clone();
        let subscribed = self.reloader.as_ref().map(Reloader::subscribe);
        // Versions prepared before this point are what the files hold now: the chain loads them.
        self.built_at = self.reloader.as_ref().map_or(0, |r| r.prepared().0);
        let start_watching = self.hot_reload && self.reloader.is_none();
        let (chain, started) = tokio::task::spawn_blocking(move || {
            let started = start_watching.then(|| {
                Reloader::start(engine.clone(), specs.clone()).map(|r| {
                    let rx = r.subscribe();
                    (r, rx)
                })
            });
            let chain = build_chain(&engine, &specs)?;
            Ok::<_, EngineError>((chain, started))
        })
        .await
        .map_err(|e| PipelineError::panicked("transform loading", e))??;
        let reloads = match started {
            Some(Ok((reloader, rx))) => {
                self.reloader = Some(reloader);
                Some(rx)
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot watch the transforms for changes; hot reload is off");
                None
            }
            None => subscribed,
        };
        Ok(Some((chain, reloads)))
    }

    /// Under `--watch`, after a transform halted the pipeline: waits until the watcher has
    /// prepared a version newer than the halted chain's (returns that transform's name), or
    /// until `shutdown` (`None`). Without hot reload: `None` at once. A version prepared between
    /// the halt and this wait counts: the watcher's count moved past the chain's.
    pub(super) async fn wait_for_fix(&self, shutdown: &watch::Receiver<bool>) -> Option<String> {
        let reloader = self.reloader.as_ref()?;
        let mut sd = shutdown.clone();
        loop {
            let (count, stage) = reloader.prepared();
            if count > self.built_at {
                return self.specs.get(stage).map(|s| s.name.clone());
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                _ = super::stopped(&mut sd) => return None,
            }
        }
    }
}
