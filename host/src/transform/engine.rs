//! The wasmtime side of transforms: compiling (with an on-disk cache), sandboxing and calling.
//!
//! Design note: one [`Engine`] per process, with epoch interruption (a ticker thread advances
//! the epoch every [`TICK`]) and the pooling allocator, so a trapped instance is replaced
//! cheaply. Each [`Live`] instance owns its `Store`, reused across batches.
//!
//! Sandbox: a wasm32-wasip2 Rust guest imports WASI through `std` even when it uses none of it.
//! Sluice links `wasmtime-wasi` with a locked-down context rather than trapping those imports:
//! no preopened directories (file reads fail), no environment or arguments, no network, stdin
//! empty and stdout/stderr discarded (guests log through the WIT `log` import), a wall clock
//! and a monotonic clock fixed at zero, and randomness from a fixed seed. A guest that reaches
//! for the file system, the environment or the clock gets nothing, and the same input always
//! gives the same output, which exactly-once recovery relies on.
//!
//! Nothing a guest calls may block: epoch interruption only fires while the guest runs wasm,
//! never inside a host call, so a host call that waits would escape the CPU deadline. Timers
//! (`wasi:clocks/monotonic-clock` `subscribe-duration`/`subscribe-instant`, which
//! `std::thread::sleep` uses) trap with a clear message, and `wasi:io/poll` `poll` and
//! `pollable.block` answer at once, trapping when nothing is ready (with timers gone, stdin
//! closed, stdout/stderr discarded and sockets refused, nothing can become ready later).
//!
//! Structure limits: a store may hold [`MAX_MEMORIES`] linear memory, [`MAX_TABLES`] tables of
//! at most [`MAX_TABLE_ELEMENTS`] elements and [`MAX_CORE_INSTANCES`] core instances, both in
//! the pooling allocator and in `StoreLimits` (which also covers the on-demand fallback), so
//! `memory_bytes` bounds the whole instance and not each of many memories. The `log` import
//! keeps at most [`MAX_LOG_MESSAGES`] messages of [`MAX_LOG_BYTES`] per call and counts the rest.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer",
    });
}

pub use bindings::sluice::transform::types as wit;
use bindings::Transformer;

/// The pinned wasmtime version (workspace `Cargo.toml`), part of the artifact cache key.
const WASMTIME_VERSION: &str = "48.0.8";

/// Epoch tick: the granularity of CPU deadlines.
pub const TICK: Duration = Duration::from_millis(5);

/// Linear memories per instance. Rust guests (wasm32-wasip2, wit-bindgen) have exactly one;
/// more would multiply `memory_bytes`, which wasmtime applies to each memory separately.
pub const MAX_MEMORIES: u32 = 1;
/// Tables per instance. A Rust guest component has a few (its module's and its import shims');
/// every example transform runs within these limits (`tests/all/transforms.rs`).
pub const MAX_TABLES: u32 = 4;
/// Elements per table (wasmtime's pooling default).
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Core instances per component instance. A Rust guest has a handful (its module, the
/// import shims and their fix-ups).
pub const MAX_CORE_INSTANCES: u32 = 16;
/// Log messages kept per call (`init` or one `transform` call); later ones are counted and
/// reported in one line.
pub const MAX_LOG_MESSAGES: u32 = 100;
/// Bytes kept of one log message; the rest is cut off (at a character boundary).
pub const MAX_LOG_BYTES: usize = 4096;

/// The WIT package version of the WASI interfaces that `wasmtime-wasi` defines (its
/// `src/p2/wit/deps`); guests importing any 0.2.x version link against them. Check it when
/// upgrading wasmtime: with another version, [`forbid_waiting`] would define new instances
/// instead of replacing the blocking functions (`tests/all/sandbox.rs` would hang on `sleep`).
const WASI_VERSION: &str = "0.2.12";

/// Why a transform could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read the transform {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Sluice transform component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("transform {name}: init failed: {message}")]
    Init { name: String, message: String },
    #[error("transform {name}: {message}")]
    Call {
        name: String,
        message: String,
        trapped: bool,
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

/// The process-wide engine.
pub struct TransformEngine {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    /// The last version of each transform file that loaded and initialised, by absolute path,
    /// so that a pipeline restart keeps running it when the file on disk was replaced by one
    /// that does not load (see [`TransformEngine::remember`]).
    validated: Mutex<HashMap<PathBuf, Module>>,
}

fn ticker(engine: Engine) {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    std::thread::Builder::new()
        .name("sluice-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            engine.increment_epoch();
        })
        .expect("spawning the epoch thread");
}

impl TransformEngine {
    /// The shared engine. `cache_dir` holds precompiled artifacts (none: always compile).
    pub fn global(cache_dir: Option<PathBuf>) -> Result<Arc<TransformEngine>, EngineError> {
        static ENGINE: OnceLock<Arc<TransformEngine>> = OnceLock::new();
        if let Some(e) = ENGINE.get() {
            return Ok(e.clone());
        }
        let e = Arc::new(TransformEngine::new(cache_dir)?);
        Ok(ENGINE.get_or_init(|| e).clone())
    }

    fn new(cache_dir: Option<PathBuf>) -> Result<TransformEngine, EngineError> {
        let err = |e: wasmtime::Error| EngineError::Compile {
            path: PathBuf::from("<engine>"),
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
        // memory is limited, and to test the fallback's limits (`StoreLimits` alone).
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
        ticker(engine.clone());
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(err)?;
        forbid_waiting(&mut linker).map_err(err)?;
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
    pub fn remember(&self, path: &Path, module: &Module) {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        self.validated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, module.clone());
    }

    /// The last version of the file at `path` that loaded and initialised in this process.
    pub fn last_validated(&self, path: &Path) -> Option<Module> {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        self.validated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Loads a transform component, from the artifact cache when it has it.
    pub fn load(&self, path: &Path) -> Result<Module, EngineError> {
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
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(compile_err)?;
        let pre = bindings::TransformerPre::new(pre).map_err(compile_err)?;
        Ok(Module { pre, hash })
    }

    fn engine_fingerprint(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("wasmtime{WASMTIME_VERSION}-{:016x}", h.finish())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compiled, linked transform: instantiating it is cheap.
#[derive(Clone)]
pub struct Module {
    pre: bindings::TransformerPre<HostState>,
    /// SHA-256 of the wasm file.
    pub hash: String,
}

/// The per-store host state: the locked-down WASI context, limits, and the name for logs.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    name: Arc<str>,
    /// Log messages kept and suppressed during the current call.
    logged: u32,
    suppressed: u64,
    /// The guest's panic message in the current call (the SDK logs it before the trap).
    panic: Option<String>,
}

impl HostState {
    /// Starts a call's log budget.
    fn reset_log(&mut self) {
        self.logged = 0;
        self.suppressed = 0;
        self.panic = None;
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
    fn log(&mut self, level: wit::LogLevel, mut message: String) {
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
        if message.len() > MAX_LOG_BYTES {
            let mut end = MAX_LOG_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            let cut = message.len() - end;
            message.truncate(end);
            message.push_str(&format!("… ({cut} more bytes cut)"));
        }
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

struct FixedClock;

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Why a host call refused to block; the guest traps with this message.
#[derive(Debug, thiserror::Error)]
#[error("tried to wait ({what}), and a transform may not block: its CPU deadline cannot stop it inside the host. Remove the sleep or wait from the transform")]
struct WouldBlock {
    what: &'static str,
}

/// Replaces the WASI functions that can wait (timers, `poll`, `block`) with ones that never do.
fn forbid_waiting(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::sync::io::poll::HostPollable;
    linker.allow_shadowing(true);
    {
        let mut clock = linker.instance(&format!("wasi:clocks/monotonic-clock@{WASI_VERSION}"))?;
        clock.func_wrap(
            "subscribe-duration",
            |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
                Err(WouldBlock {
                    what: "a timer: wasi:clocks subscribe-duration, as std::thread::sleep uses",
                }
                .into())
            },
        )?;
        clock.func_wrap(
            "subscribe-instant",
            |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
                Err(WouldBlock {
                    what: "a timer: wasi:clocks subscribe-instant",
                }
                .into())
            },
        )?;
    }
    {
        let mut poll = linker.instance(&format!("wasi:io/poll@{WASI_VERSION}"))?;
        poll.func_wrap(
            "poll",
            |mut store, (list,): (Vec<Resource<DynPollable>>,)| -> wasmtime::Result<(Vec<u32>,)> {
                let table = &mut store.data_mut().table;
                let mut ready = Vec::new();
                for (i, p) in list.into_iter().enumerate() {
                    if HostPollable::ready(table, p)? {
                        ready.push(i as u32);
                    }
                }
                if ready.is_empty() {
                    return Err(WouldBlock {
                        what: "wasi:io/poll poll, with nothing ready",
                    }
                    .into());
                }
                Ok((ready,))
            },
        )?;
        poll.func_wrap(
            "[method]pollable.block",
            |mut store, (p,): (Resource<DynPollable>,)| -> wasmtime::Result<()> {
                if HostPollable::ready(&mut store.data_mut().table, p)? {
                    Ok(())
                } else {
                    Err(WouldBlock {
                        what: "wasi:io/poll pollable.block, on something not ready",
                    }
                    .into())
                }
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The fixed seed of the sandbox's randomness.
const SEED: u64 = 0x0051_1CE0;

fn sandbox() -> WasiCtx {
    use rand::SeedableRng;
    let mut b = WasiCtx::builder();
    b.wall_clock(FixedClock)
        .monotonic_clock(FixedClock)
        .secure_random(rand::rngs::StdRng::seed_from_u64(SEED))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(SEED))
        .insecure_random_seed(u128::from(SEED))
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false);
    b.build()
}

/// A running instance: its store, its exports, and what it declared it needs.
pub struct Live {
    store: Store<HostState>,
    bindings: Transformer,
    pub interest: wit::Interest,
    limits: Limits,
    name: Arc<str>,
}

impl Live {
    /// Instantiates `module` and runs its `init` with `config`.
    pub fn start(
        module: &Module,
        name: &str,
        config: &[(String, String)],
        limits: Limits,
    ) -> Result<Live, EngineError> {
        let name: Arc<str> = Arc::from(name);
        let state = HostState {
            wasi: sandbox(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .memories(MAX_MEMORIES as usize)
                .tables(MAX_TABLES as usize)
                .table_elements(MAX_TABLE_ELEMENTS)
                .instances(MAX_CORE_INSTANCES as usize)
                .trap_on_grow_failure(true)
                .build(),
            name: name.clone(),
            logged: 0,
            suppressed: 0,
            panic: None,
        };
        let mut store = Store::new(module.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
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
        let result = bindings.call_init(&mut store, config);
        store.data_mut().report_suppressed();
        let panic = store.data_mut().panic.take();
        let interest = result
            .map_err(|e| init_err(with_panic(panic, describe_trap(&e, limits))))?
            .map_err(init_err)?;
        Ok(Live {
            store,
            bindings,
            interest,
            limits,
            name,
        })
    }

    /// Calls `transform`. A trap poisons the instance: the caller must start a new one.
    pub fn call(
        &mut self,
        tables: &[wit::TableInfo],
        events: &[wit::EventView],
        cells: &[wit::Cell],
        data: &[u8],
    ) -> Result<wit::Edits, EngineError> {
        self.store.set_epoch_deadline(ticks(self.limits.cpu));
        self.store.data_mut().reset_log();
        let result = self
            .bindings
            .call_transform(&mut self.store, tables, events, cells, data);
        self.store.data_mut().report_suppressed();
        match result {
            Ok(Ok(edits)) => Ok(edits),
            Ok(Err(message)) => Err(EngineError::Call {
                name: self.name.to_string(),
                message,
                trapped: false,
            }),
            Err(e) => Err(EngineError::Call {
                name: self.name.to_string(),
                message: with_panic(
                    self.store.data_mut().panic.take(),
                    describe_trap(&e, self.limits),
                ),
                trapped: true,
            }),
        }
    }
}

fn ticks(cpu: Duration) -> u64 {
    (cpu.as_millis() / TICK.as_millis()).max(1) as u64 + 1
}

/// Why a component could not be compiled or instantiated, naming the structure limit it broke
/// (the pooling allocator checks when compiling, `StoreLimits` when instantiating).
fn describe_instantiation(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    let broke = [
        "count too high",
        "exceeds the configured maximum",
        "does not fit in pooling",
    ]
    .iter()
    .any(|k| text.contains(k));
    if !broke {
        return text;
    }
    let limit = if text.contains("memor") {
        format!("at most {MAX_MEMORIES} linear memory")
    } else if text.contains("table") {
        format!("at most {MAX_TABLES} tables of {MAX_TABLE_ELEMENTS} elements")
    } else {
        format!("at most {MAX_CORE_INSTANCES} core instances")
    };
    format!("the component breaks the sandbox's structure limits ({limit} per transform): {text}")
}

/// Frames of a trap's wasm backtrace kept in its message; the rest are counted.
pub const TRAP_FRAMES: usize = 3;

/// `text` on one line (newlines become spaces), cut at about `max` bytes.
fn one_line(text: &str, max: usize) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > max {
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

/// A trap's message with the guest's panic message, when it logged one, first.
fn with_panic(panic: Option<String>, trap: String) -> String {
    match panic {
        Some(p) => format!("{p} ({trap})"),
        None => trap,
    }
}

/// A trap's text: its cause, then the first [`TRAP_FRAMES`] frames of the wasm backtrace on one
/// line, and how many frames were left out.
fn trap_text(e: &wasmtime::Error) -> String {
    let cause = e.root_cause().to_string();
    let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return one_line(&format!("{e:#}"), 2 * MAX_LOG_BYTES);
    };
    let text = bt.to_string();
    // Frame lines start with "N: " after indentation; lines after them belong to that frame.
    let mut frames: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let starts_frame = t
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if starts_frame {
            frames.push(t.to_owned());
        } else if let Some(last) = frames.last_mut() {
            if !t.is_empty() {
                last.push(' ');
                last.push_str(t);
            }
        }
    }
    let total = frames.len();
    // The panic and abort machinery of std sits on top; the guest's own frames say more.
    let machinery = |f: &str| {
        [
            "3std",
            "4core",
            "5alloc",
            "abort",
            "panic",
            "__rust",
            "rust_begin_unwind",
        ]
        .iter()
        .any(|k| f.contains(k))
    };
    let skipped = frames.iter().take_while(|f| machinery(f)).count();
    let skipped = if skipped == total { 0 } else { skipped };
    let kept: Vec<String> = frames
        .iter()
        .skip(skipped)
        .take(TRAP_FRAMES)
        .map(|f| f.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut out = format!("{cause}; wasm backtrace: ");
    if skipped > 0 {
        out.push_str(&format!("({skipped} frames of std's panic handling) | "));
    }
    out.push_str(&kept.join(" | "));
    let rest = total - skipped - kept.len();
    if rest > 0 {
        out.push_str(&format!(" | … {rest} more frames"));
    }
    out
}

fn describe_trap(e: &wasmtime::Error, limits: Limits) -> String {
    if let Some(w) = e.downcast_ref::<WouldBlock>() {
        return w.to_string();
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!(
            "exceeded its CPU deadline of {:?} per batch and was stopped",
            limits.cpu
        ),
        _ => {
            let full = format!("{e:#}");
            let text = trap_text(e);
            if full.contains("memory") && (full.contains("limit") || full.contains("grow")) {
                format!(
                    "exceeded its memory cap of {} MiB and was stopped ({text})",
                    limits.memory_bytes >> 20
                )
            } else {
                format!("trapped: {text}")
            }
        }
    }
}
