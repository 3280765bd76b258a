//! The wasmtime side of transforms: compiling (with an on-disk cache), sandboxing and calling.
//!
//! Design note: a [`TransformEngine`] is an explicit value: whoever runs transforms creates one
//! ([`TransformEngine::new`], with its artifact cache directory) and passes it on; `sluice run`
//! makes one for the life of the process and shares it (an `Arc`) between the pipeline's
//! restarts and the hot-reload watcher, so that a restart keeps the last validated version of
//! each file ([`TransformEngine::remember`]). It has epoch interruption (its own ticker thread
//! advances the epoch every [`TICK`], and stops once the engine is gone) and the pooling
//! allocator, so a trapped instance is replaced cheaply. Each [`Live`] instance owns its
//! `Store`, reused across batches.
//!
//! Sandbox ([`sandbox`]): a wasm32-wasip2 Rust guest imports WASI through `std` even when it
//! uses none of it. Sluice links `wasmtime-wasi` with a locked-down context rather than trapping
//! those imports: no preopened directories (file reads fail), no environment or arguments, no
//! network, stdin empty, stdout discarded and stderr captured per call (guests log through the WIT
//! `log` import; what an interpreter prints on stderr reaches the error or the log), a
//! wall clock and a monotonic clock fixed at zero, and randomness from a fixed seed. A guest
//! that reaches for the file system, the environment or the clock gets nothing, and the same
//! input always gives the same output, which exactly-once recovery relies on.
//!
//! Nothing a guest calls may block: epoch interruption only fires while the guest runs wasm,
//! never inside a host call, so a host call that waits would escape the CPU deadline. Timers
//! (`wasi:clocks/monotonic-clock` `subscribe-duration`/`subscribe-instant`, which
//! `std::thread::sleep` uses) trap with a clear message, and `wasi:io/poll` `poll` and
//! `pollable.block` answer at once, trapping when nothing is ready (with timers gone, stdin
//! closed, stdout discarded, stderr always writable and sockets refused, nothing can become ready later).
//!
//! Limits: a store may hold [`MAX_MEMORIES`] linear memory, [`MAX_TABLES`] tables of at most
//! [`MAX_TABLE_ELEMENTS`] elements and [`MAX_CORE_INSTANCES`] core instances, both in the
//! pooling allocator and in the store's [`SandboxLimiter`] (which also covers the on-demand
//! fallback), so `memory_bytes` bounds the whole instance and not each of many memories. A
//! growth past the memory cap or the table limit fails with a typed [`LimitExceeded`](sandbox::LimitExceeded); a trap
//! is classified by type ([`Trap`], in [`traps`]), never by its text. The `log` import keeps at
//! most [`MAX_LOG_MESSAGES`] messages of [`MAX_LOG_BYTES`] per call and counts the rest.
//!
//! Interpreted guests (Python, JavaScript) report through stderr what the runtime itself
//! prints; [`stderr`] captures it per call (bounded), and a failed call's error carries it,
//! as does the log for a call that succeeded. An error text a guest returns is cut at
//! [`MAX_ERROR_BYTES`].

pub(crate) mod sandbox;
pub(crate) mod stderr;
pub(crate) mod traps;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub(crate) use sandbox::SandboxLimiter;
use stderr::StderrCapture;
pub(crate) use traps::Trap;

use traps::{describe_instantiation, one_line, with_panic};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer",
    });
}

pub(crate) use bindings::sluice::transform::types as wit;
use bindings::Transformer;

/// The WIT package this host implements (`wit/transform.wit`). A component built with another
/// version of the SDK does not type-check against it; [`interface_hint`] says so.
pub(crate) const INTERFACE: &str = "sluice:transform@0.4.0";

/// The pinned wasmtime version (workspace `Cargo.toml`), part of the artifact cache key.
const WASMTIME_VERSION: &str = "48.0.8";

/// Epoch tick: the granularity of CPU deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// Linear memories per instance. Rust guests (wasm32-wasip2, wit-bindgen) have exactly one;
/// more would multiply `memory_bytes`, which wasmtime applies to each memory separately.
pub(crate) const MAX_MEMORIES: u32 = 1;
/// Tables per instance. A Rust guest component has a few (its module's and its import shims');
/// every example transform runs within these limits (`tests/all/transforms.rs`).
pub(crate) const MAX_TABLES: u32 = 4;
/// Elements per table (wasmtime's pooling default).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Core instances per component instance. A Rust guest has a handful (its module, the
/// import shims and their fix-ups).
pub(crate) const MAX_CORE_INSTANCES: u32 = 16;
/// Log messages kept per call (`init` or one `transform` call); later ones are counted and
/// reported in one line.
pub(crate) const MAX_LOG_MESSAGES: u32 = 100;
/// Bytes kept of one log message; the rest is cut off (at a character boundary).
pub(crate) const MAX_LOG_BYTES: usize = 4096;
/// Bytes kept of the error text a guest returns (a traceback fits; a runaway message does not
/// flood the log).
pub(crate) const MAX_ERROR_BYTES: usize = 16 << 10;

/// Why a transform could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot start the WebAssembly engine: {message}. If this host limits virtual memory, \
         try SLUICE_WASM_POOLING=0"
    )]
    Start { message: String },
    #[error("cannot read the transform {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Sluice transform component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("transform {name}: init failed: {message}")]
    Init { name: String, message: String },
    /// `transform` failed: the guest answered with an error (`trap` none), or it trapped
    /// (`trap` says why) and its instance cannot be re-entered.
    #[error("transform {name}: {message}")]
    Call {
        name: String,
        message: String,
        trap: Option<Trap>,
    },
}

/// Per-instance resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap.
    pub memory_bytes: usize,
    /// CPU time allowed per call.
    pub cpu: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu: Duration::from_millis(500),
        }
    }
}

/// A wasmtime engine set up for transforms, with its linker and artifact cache. Create one
/// and share it (see the module's design note).
pub struct TransformEngine {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    /// The last version of each transform file that loaded and initialised, by absolute path,
    /// so that a pipeline restart keeps running it when the file on disk was replaced by one
    /// that does not load (see [`TransformEngine::remember`]).
    validated: Mutex<HashMap<PathBuf, Module>>,
}

/// Advances `engine`'s epoch every [`TICK`] on a thread of its own, until the engine (and every
/// module and store made with it) is gone.
fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("sluice-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .map(drop)
}

impl TransformEngine {
    /// A new engine. `cache_dir` holds precompiled artifacts (none: always compile).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<TransformEngine, EngineError> {
        let err = |e: wasmtime::Error| EngineError::Start {
            message: format!("{e:#}"),
        };
        let mut pool = PoolingAllocationConfig::default();
        // Sized for a chain of transforms, each with its live instance plus one being prepared
        // by a hot reload. Every memory slot reserves address space (not RAM), so keep it modest.
        pool.total_component_instances(64)
            .total_core_instances(512)
            .total_memories(128)
            .total_tables(256)
            .max_memory_size(1 << 30)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .table_elements(MAX_TABLE_ELEMENTS);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `SLUICE_WASM_POOLING=0` chooses on-demand allocation up front: for hosts whose virtual
        // memory is limited, and to test the fallback's limits (the limiter alone).
        let pooling = std::env::var("SLUICE_WASM_POOLING").map_or(true, |v| v != "0");
        let pooled = if pooling {
            Engine::new(&config)
        } else {
            Err(wasmtime::Error::msg("SLUICE_WASM_POOLING=0"))
        };
        let engine = match pooled {
            Ok(e) => e,
            Err(e) => {
                // Some sandboxes limit virtual memory; the on-demand allocator needs no reservation.
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                let mut config = Config::new();
                config.epoch_interruption(true);
                Engine::new(&config).map_err(err)?
            }
        };
        start_ticker(&engine).map_err(|e| EngineError::Start {
            message: format!("cannot start the epoch thread: {e}"),
        })?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(err)?;
        sandbox::forbid_waiting(&mut linker).map_err(err)?;
        Transformer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(err)?;
        Ok(TransformEngine {
            engine,
            linker,
            cache_dir,
            validated: Mutex::new(HashMap::new()),
        })
    }

    /// Records `module` as the last version of the file at `path` that loaded and initialised.
    pub(crate) fn remember(&self, path: &Path, module: &Module) {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        self.validated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, module.clone());
    }

    /// The last version of the file at `path` that loaded and initialised in this process.
    pub(crate) fn last_validated(&self, path: &Path) -> Option<Module> {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        self.validated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Loads a transform component, from the artifact cache when it has it.
    pub(crate) fn load(&self, path: &Path) -> Result<Module, EngineError> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read {
            path: path.to_owned(),
            source,
        })?;
        let hash = hex(&Sha256::digest(&bytes)[..]);
        let compile_err = |e: wasmtime::Error| EngineError::Compile {
            path: path.to_owned(),
            message: describe_instantiation(&e),
        };
        let cached = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", hash, self.engine_fingerprint())));
        let component = match cached.as_ref().filter(|p| p.exists()) {
            // SAFETY: the artifact was written by `Component::serialize` of an engine with the
            // same version and configuration (both are in the file name), from the wasm whose
            // hash is in the file name.
            #[allow(unsafe_code)]
            Some(p) => match unsafe { Component::deserialize_file(&self.engine, p) } {
                Ok(c) => c,
                Err(_) => Component::from_binary(&self.engine, &bytes).map_err(compile_err)?,
            },
            None => {
                let c = Component::from_binary(&self.engine, &bytes).map_err(compile_err)?;
                if let (Some(p), Ok(art)) = (cached.as_ref(), c.serialize()) {
                    let tmp = p.with_extension("tmp");
                    let _ = std::fs::create_dir_all(p.parent().unwrap_or(Path::new(".")));
                    if std::fs::write(&tmp, art).is_ok() {
                        let _ = std::fs::rename(&tmp, p);
                    }
                }
                c
            }
        };
        let link_err = |e: wasmtime::Error| EngineError::Compile {
            path: path.to_owned(),
            message: describe_instantiation(&e) + &interface_hint(&self.engine, &component),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(link_err)?;
        let pre = bindings::TransformerPre::new(pre).map_err(link_err)?;
        Ok(Module { pre, hash })
    }

    fn engine_fingerprint(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("wasmtime{WASMTIME_VERSION}-{:016x}", h.finish())
    }
}

/// For a component that does not link: the interface version it was built for, when that is
/// not [`INTERFACE`], and what to do about it.
fn interface_hint(engine: &Engine, component: &Component) -> String {
    let theirs = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            let (package, version) = name.split_once('@')?;
            package
                .starts_with("sluice:transform/")
                .then(|| format!("sluice:transform@{version}"))
        })
        .next();
    match theirs {
        Some(v) if v != INTERFACE => format!(
            ". It was built for the interface {v}, and this sluice implements {INTERFACE}: rebuild it with the sluice-guest SDK of this version"
        ),
        Some(_) => String::new(),
        None => format!(
            ". If it was built with another version of the sluice-guest SDK, rebuild it with the SDK of this version (interface {INTERFACE})"
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compiled, linked transform: instantiating it is cheap.
#[derive(Clone)]
pub(crate) struct Module {
    pre: bindings::TransformerPre<HostState>,
    /// SHA-256 of the wasm file.
    pub(crate) hash: String,
}

/// The per-store host state: the locked-down WASI context, the limiter, and the name for logs.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: SandboxLimiter,
    name: Arc<str>,
    /// Log messages kept and suppressed during the current call.
    logged: u32,
    suppressed: u64,
    /// The guest's panic message in the current call (the SDK logs it before the trap).
    panic: Option<String>,
    /// What the guest writes to stderr, per call.
    stderr: StderrCapture,
    /// When a successful call's stderr was last logged, and the calls' outputs not logged
    /// since (at most one such log line per second per instance).
    stderr_logged: Option<std::time::Instant>,
    stderr_unlogged: u64,
}

impl HostState {
    /// Starts a call: its log budget, and no limit broken yet.
    fn start_call(&mut self) {
        self.logged = 0;
        self.suppressed = 0;
        self.panic = None;
        self.limiter.take();
        self.stderr.clear();
    }

    /// Ends a call: logs what it wrote to stderr, unless it failed (`failed`), when the text is
    /// returned for the error instead.
    fn end_call(&mut self, failed: bool) -> Option<String> {
        self.report_suppressed();
        let text = self.stderr.take()?;
        if failed {
            return Some(text);
        }
        let now = std::time::Instant::now();
        if self
            .stderr_logged
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.stderr_unlogged += 1;
            return None;
        }
        let unlogged = std::mem::take(&mut self.stderr_unlogged);
        tracing::info!(transform = &*self.name, stderr = %text, calls_not_logged = unlogged, "the transform wrote to stderr");
        self.stderr_logged = Some(now);
        None
    }

    /// Reports the messages that the call's log budget suppressed.
    fn report_suppressed(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(
                transform = &*self.name,
                suppressed = self.suppressed,
                "log messages suppressed: the transform logged more than {MAX_LOG_MESSAGES} messages in one call"
            );
            self.suppressed = 0;
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::TransformerImports for HostState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        if matches!(level, wit::LogLevel::Error) && self.panic.is_none() {
            if let Some(p) = message.strip_prefix("panic: ") {
                // Kept even past the log budget: it names why the call is about to trap.
                self.panic = Some(one_line(p, MAX_LOG_BYTES));
            }
        }
        if self.logged >= MAX_LOG_MESSAGES {
            self.suppressed += 1;
            return;
        }
        self.logged += 1;
        let message = cut_at(message, MAX_LOG_BYTES);
        let name = &*self.name;
        match level {
            wit::LogLevel::Trace => tracing::trace!(transform = name, "{message}"),
            wit::LogLevel::Debug => tracing::debug!(transform = name, "{message}"),
            wit::LogLevel::Info => tracing::info!(transform = name, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(transform = name, "{message}"),
            wit::LogLevel::Error => tracing::error!(transform = name, "{message}"),
        }
    }
}

impl wit::Host for HostState {}

/// A running instance: its store, its exports, and what it declared it needs.
pub(crate) struct Live {
    store: Store<HostState>,
    bindings: Transformer,
    /// What the transform declared it needs to see (its `init` answer).
    pub(crate) interest: sluice_contract::Interest,
    limits: Limits,
    name: Arc<str>,
    /// Calls this instance answered (`transform`, after `init`).
    pub(crate) answered: u64,
}

impl Live {
    /// Instantiates `module` and runs its `init` with `config`.
    pub(crate) fn start(
        module: &Module,
        name: &str,
        config: &[(String, String)],
        limits: Limits,
    ) -> Result<Live, EngineError> {
        let name: Arc<str> = Arc::from(name);
        let stderr = StderrCapture::default();
        let state = HostState {
            wasi: sandbox::wasi_ctx(stderr.clone()),
            stderr,
            stderr_logged: None,
            stderr_unlogged: 0,
            table: ResourceTable::new(),
            limiter: SandboxLimiter::new(limits.memory_bytes),
            name: name.clone(),
            logged: 0,
            suppressed: 0,
            panic: None,
        };
        let mut store = Store::new(module.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(limits.cpu));
        let init_err = |message: String| EngineError::Init {
            name: name.to_string(),
            message,
        };
        let bindings = module
            .pre
            .instantiate(&mut store)
            .map_err(|e| init_err(describe_instantiation(&e)))?;
        store.set_epoch_deadline(ticks(limits.cpu));
        store.data_mut().start_call();
        let result = bindings.call_init(&mut store, config);
        let state = store.data_mut();
        let stderr = state.end_call(!matches!(result, Ok(Ok(_))));
        let (panic, recorded) = (state.panic.take(), state.limiter.take());
        let interest = result
            .map_err(|e| {
                let trap = Trap::classify(&e, limits, recorded);
                init_err(with_stderr(
                    with_panic(panic, trap.describe(&e)),
                    stderr.as_deref(),
                ))
            })?
            .map_err(|m| init_err(with_stderr(bounded(m), stderr.as_deref())))?;
        let wit::Interest { tables, columns } = interest;
        Ok(Live {
            store,
            bindings,
            interest: sluice_contract::Interest { tables, columns },
            limits,
            name,
            answered: 0,
        })
    }

    /// Calls `transform`. A trap poisons the instance: the caller must start a new one.
    pub(crate) fn call(
        &mut self,
        tables: &[wit::TableInfo],
        events: &[u8],
        cells: &[u8],
        data: &[u8],
    ) -> Result<wit::Edits, EngineError> {
        self.store.set_epoch_deadline(ticks(self.limits.cpu));
        self.store.data_mut().start_call();
        let result = self
            .bindings
            .call_transform(&mut self.store, tables, events, cells, data);
        let state = self.store.data_mut();
        let stderr = state.end_call(!matches!(result, Ok(Ok(_))));
        match result {
            Ok(Ok(edits)) => {
                self.answered += 1;
                Ok(edits)
            }
            Ok(Err(message)) => Err(EngineError::Call {
                name: self.name.to_string(),
                message: with_stderr(bounded(message), stderr.as_deref()),
                trap: None,
            }),
            Err(e) => {
                let trap = Trap::classify(&e, self.limits, state.limiter.take());
                Err(EngineError::Call {
                    name: self.name.to_string(),
                    message: with_stderr(
                        with_panic(state.panic.take(), trap.describe(&e)),
                        stderr.as_deref(),
                    ),
                    trap: Some(trap),
                })
            }
        }
    }
}

/// `message` cut at `max` bytes (at a character boundary), saying how much was cut: a guest's
/// log messages and its error texts.
fn cut_at(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let cut = message.len() - end;
        message.truncate(end);
        message.push_str(&format!("… ({cut} more bytes cut)"));
    }
    message
}

/// A guest's error text, cut at [`MAX_ERROR_BYTES`].
fn bounded(message: String) -> String {
    cut_at(message, MAX_ERROR_BYTES)
}

/// `message`, followed by what the guest wrote to stderr during the call, when it wrote
/// something the message does not already hold (an SDK may both print and return a traceback).
fn with_stderr(message: String, stderr: Option<&str>) -> String {
    match stderr {
        Some(s) if !message.contains(s) => {
            format!("{message}\n--- the transform's stderr ---\n{s}\n---")
        }
        _ => message,
    }
}

fn ticks(cpu: Duration) -> u64 {
    (cpu.as_millis() / TICK.as_millis()).max(1) as u64 + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_interface_constant_is_the_wit_package() {
        let wit = include_str!("../../../../wit/transform.wit");
        let package = format!("package {};", super::INTERFACE);
        assert!(wit.lines().any(|l| l.trim() == package), "{package}");
    }

    #[test]
    fn a_transform_built_for_another_interface_is_told_to_rebuild() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/wasm/probe-interface-0.3.wasm");
        let engine = super::TransformEngine::new(None).unwrap();
        let err = engine
            .load(&path)
            .err()
            .expect("an old component does not link");
        let text = err.to_string();
        assert!(
            text.contains("built for the interface sluice:transform@0.3.0")
                && text.contains("implements sluice:transform@0.4.0")
                && text.contains("rebuild it"),
            "{text}"
        );
    }
}
