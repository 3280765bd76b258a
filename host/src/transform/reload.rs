//! Hot reload: watches the transforms' `.wasm` files and prepares new versions off the hot path.
//!
//! Design note: the watcher (notify) watches each file's *directory*, because cargo replaces an
//! artifact rather than writing it in place, and ignores access events. After a quiet period
//! (debounce) it compiles the new file, instantiates it, runs its `init` and a smoke call with an
//! empty batch, all on its own thread. Only a module that passes all of that is offered to the
//! chain, which swaps it in between two batches, so no event is lost or handled twice. A file that
//! fails any step is rejected with a log line, and the old version keeps running. A version
//! that passes is also recorded in the engine as the file's last validated version, so a
//! pipeline restart keeps running it even if a broken file replaces it later.
//!
//! One watcher per `sluice run`: the supervisor starts a [`Reloader`] once, with the engine it
//! created, keeps it across pipeline restarts, and [subscribes](Reloader::subscribe) each new
//! life of the stages to it (the previous receiver is disconnected). Linux allows 128 inotify
//! instances per user by default, so a watcher per restart would eventually turn hot reload
//! off without a word. Dropping the [`Reloader`] closes its inotify instance and ends its
//! thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::engine::{Live, Module, TransformEngine};
use super::TransformSpec;

/// A new version, ready to be swapped in.
pub(crate) struct Reloaded {
    pub(crate) stage: usize,
    pub(crate) module: Module,
    pub(crate) live: Live,
}

/// Quiet time after the last change before a file is loaded.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(250);

/// Where the watcher thread sends new versions: the receiver of the newest `subscribe` call.
type Subscriber = Arc<Mutex<mpsc::Sender<Reloaded>>>;

/// Watches the transforms' files and prepares their new versions with `engine`: where it
/// sends them, and the notify watcher itself (dropping it closes the inotify instance and ends
/// the thread).
pub(crate) struct Reloader {
    subscriber: Subscriber,
    prepared: Arc<Prepared>,
    _watcher: notify::RecommendedWatcher,
}

/// How many new versions the watcher has prepared, and the stage of the last one: a halted
/// pipeline waits for this count to move, so a version prepared between the halt and its wait
/// is not missed.
#[derive(Default)]
struct Prepared {
    count: std::sync::atomic::AtomicU64,
    last_stage: std::sync::atomic::AtomicUsize,
}

impl Reloader {
    /// Starts watching the files of `specs`. New versions go to the latest
    /// [`subscribe`](Reloader::subscribe)r (until there is one, they are dropped: the stages
    /// load the same files when they start).
    pub(crate) fn start(
        engine: Arc<TransformEngine>,
        specs: Vec<TransformSpec>,
    ) -> notify::Result<Self> {
        let (tx, _) = mpsc::channel();
        let subscriber: Subscriber = Arc::new(Mutex::new(tx));
        let prepared = Arc::new(Prepared::default());
        let watcher = start(engine, specs, subscriber.clone(), prepared.clone())?;
        Ok(Reloader {
            subscriber,
            prepared,
            _watcher: watcher,
        })
    }

    /// How many new versions have been prepared so far, and the stage of the last one.
    pub(crate) fn prepared(&self) -> (u64, usize) {
        use std::sync::atomic::Ordering;
        // The stage is stored before the count is raised.
        let n = self.prepared.count.load(Ordering::Acquire);
        (n, self.prepared.last_stage.load(Ordering::Relaxed))
    }

    /// The channel the chain polls at batch boundaries; the previous one is disconnected.
    pub(crate) fn subscribe(&self) -> mpsc::Receiver<Reloaded> {
        let (tx, rx) = mpsc::channel();
        *self.subscriber.lock().unwrap_or_else(|e| e.into_inner()) = tx;
        rx
    }
}

/// Starts a notify watcher and its thread; the thread ends when the watcher is dropped.
fn start(
    engine: Arc<TransformEngine>,
    specs: Vec<TransformSpec>,
    subscriber: Subscriber,
    prepared: Arc<Prepared>,
) -> notify::Result<notify::RecommendedWatcher> {
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
    for (spec, path) in specs.iter().zip(&paths) {
        tracing::info!(transform = %spec.name, path = %path.display(), "watching {}", path.display());
    }
    std::thread::Builder::new()
        .name("sluice-reload".into())
        .spawn(move || {
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
                    // The notify watcher was dropped with its `Reloader`.
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                let due: Vec<usize> = pending.iter().filter(|(_, t)| t.elapsed() >= DEBOUNCE).map(|(i, _)| *i).collect();
                for i in due {
                    pending.remove(&i);
                    let spec = &specs[i];
                    let started = Instant::now();
                    match prepare(&engine, spec) {
                        Ok((module, live)) => {
                            if hashes.get(&i) == Some(&module.hash) {
                                continue;
                            }
                            hashes.insert(i, module.hash.clone());
                            engine.remember(&spec.path, &module);
                            prepared.last_stage.store(i, std::sync::atomic::Ordering::Relaxed);
                            prepared.count.fetch_add(1, std::sync::atomic::Ordering::Release);
                            // The time to compile (or load from the cache) and initialise: the
                            // old version runs meanwhile (an 18 MB Python component: seconds).
                            let prepare_ms = started.elapsed().as_millis() as u64;
                            tracing::info!(transform = %spec.name, hash = %&module.hash[..12], prepare_ms, "new version compiled and initialised; swapping it in at the next batch boundary");
                            // No receiver (between pipeline restarts): the restart loads the
                            // same file, so nothing is lost.
                            let _ = subscriber
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .send(Reloaded { stage: i, module, live });
                        }
                        Err(e) => tracing::error!(transform = %spec.name, path = %spec.path.display(), error = %e, "rejected the new version; the previous one keeps running"),
                    }
                }
            }
        })
        .expect("spawning the reload thread");
    Ok(watcher)
}

fn prepare(engine: &TransformEngine, spec: &TransformSpec) -> Result<(Module, Live), String> {
    let module = engine.load(&spec.path).map_err(|e| e.to_string())?;
    let mut live =
        Live::start(&module, &spec.name, &spec.config, spec.limits).map_err(|e| e.to_string())?;
    // A smoke call: the new version must at least answer an empty batch.
    live.call(&[], &[], &[], &[]).map_err(|e| e.to_string())?;
    Ok((module, live))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Open inotify instances of this process: `/proc/self/fd` links to `anon_inode:inotify`.
    fn inotify_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("reading /proc/self/fd")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().contains("inotify"))
            .count()
    }

    /// Waits (up to 5 s) for the count to settle at or below `max`: notify closes the fd on
    /// its own thread after the watcher is dropped.
    fn settles_at_most(max: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = inotify_fds();
            if n <= max || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn restarts_subscribe_to_one_watcher_and_dropping_it_releases_inotify() {
        let engine = Arc::new(TransformEngine::new(None).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let spec = |name: &str| TransformSpec::from_path(&dir.path().join(name));
        let before = inotify_fds();
        let reloader = Reloader::start(engine.clone(), vec![spec("a.wasm")]).unwrap();
        // 300 pipeline restarts: far more than the default limit of 128 instances per user.
        let mut current = None;
        for _ in 0..300 {
            current = Some(reloader.subscribe());
        }
        let after = settles_at_most(before + 1);
        assert_eq!(after, before + 1, "one inotify instance for 300 restarts");
        // The newest receiver is the connected one; the one before it was disconnected.
        let latest = reloader.subscribe();
        assert!(matches!(
            current.unwrap().try_recv(),
            Err(mpsc::TryRecvError::Disconnected)
        ));
        assert!(matches!(latest.try_recv(), Err(mpsc::TryRecvError::Empty)));
        // Another watcher (other specs) is another instance; dropping each releases it.
        let other = Reloader::start(engine, vec![spec("b.wasm")]).unwrap();
        assert_eq!(settles_at_most(before + 2), before + 2);
        drop(other);
        assert_eq!(settles_at_most(before + 1), before + 1);
        drop(reloader);
        assert_eq!(
            settles_at_most(before),
            before,
            "dropping the watcher closes inotify"
        );
    }
}
