//! The `sluice` command line: `run`, `check`, `setup`, `position`, and `transform new` / `transform test`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use sluice::check::{run_checks, Status};
use sluice::config::Config;

/// jemalloc instead of glibc's malloc, for the whole process: the pipeline allocates events on
/// one thread and frees them on another, and librdkafka copies every message on a tokio worker
/// and frees it on its own threads, which glibc's arenas handle poorly. Measured in alternating
/// catch-ups of 1M rows into Kafka: a median of 28% less CPU per row, and 9–21% less again once
/// jemalloc was built unprefixed so that librdkafka's C code uses it too, at a peak RSS under
/// the 150 MB target (docs/BENCHMARKS.md, "The Kafka sink").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at start-up (`MALLOC_CONF` in the environment still overrides
/// them): freed pages go back to the system after 1 s instead of 10 s (while the
/// allocator is in use; there is no background thread). `muzzy_decay_ms:0` is the default,
/// stated so that the string says what the purge does. Measured in alternating catch-ups into
/// Kafka: a peak RSS of 96–101 MiB instead of 122–124, for no measurable CPU
/// (docs/BENCHMARKS.md, "The Kafka sink").
// The one way to give jemalloc built-in options is this C symbol, a pointer to a NUL-terminated
// string (a `&[u8; N]` is a thin pointer); jemalloc only reads it.
#[cfg(all(not(target_env = "msvc"), target_os = "linux"))]
#[allow(unsafe_code, non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8; 37] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// MySQL/MariaDB change-data-capture into Kafka, through WebAssembly transforms.
///
/// Configuration comes from environment variables (MYSQL_HOST, MYSQL_USER, MYSQL_PASSWORD,
/// MYSQL_DATABASE, MYSQL_TABLE, KAFKA_BROKERS, output, ...; see the README) and an optional
/// TOML file; environment variables win.
#[derive(Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream changes until stopped. SIGINT/SIGTERM drain, save the position and exit 0.
    Run {
        /// TOML config file (environment variables override it).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Watch the transforms' .wasm files and swap in new versions without a restart.
        #[arg(long)]
        watch: bool,
    },
    /// Check the server and the configuration; prints each check with a fix. Exits 0 only if all pass.
    Check {
        /// TOML config file (environment variables override it).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// With Kafka configured: also produce one test record to the topic (key `sluice.check`,
        /// no value, a `sluice.check` header), creating the topic if it is missing, as `run`
        /// would. Off by default: the topic's consumers would see that record, and the contract's
        /// consumers expect every message to be an event.
        #[arg(long, conflicts_with = "no_produce")]
        produce: bool,
        /// Only read the cluster's metadata (the default; kept for scripts that pass it).
        #[arg(long)]
        no_produce: bool,
    },
    /// Create the MySQL user Sluice runs as (MYSQL_USER, with MYSQL_PASSWORD) with only the
    /// grants it needs, report the server's settings, and print the configuration to use.
    ///
    /// It logs in as an administrator (MYSQL_ADMIN_USER and MYSQL_ADMIN_PASSWORD, or asked on a
    /// terminal) for this run only and stores nothing. It runs only what is missing, so a second
    /// run changes nothing, and it changes no server setting. Afterwards `sluice check` passes
    /// for that user (once the server settings it reports are right).
    Setup {
        /// TOML config file (environment variables override it).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The host part of the account ('user'@'HOST'): where Sluice connects from.
        #[arg(long, default_value = "%", value_name = "HOST")]
        user_host: String,
        /// Print the statements that would run, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// When the user exists and MYSQL_PASSWORD does not log in, set its password to
        /// MYSQL_PASSWORD (without this, setup stops and changes nothing).
        #[arg(long)]
        update_password: bool,
    },
    /// Work with WebAssembly transforms.
    #[command(subcommand)]
    Transform(TransformCommand),
    /// Show the saved binlog position, or move it past one transaction that Sluice refuses.
    #[command(subcommand)]
    Position(PositionCommand),
}

#[derive(Subcommand)]
enum PositionCommand {
    /// Print the saved position (file, offset, GTID) and where it is stored.
    Show {
        /// TOML config file (environment variables override it).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Move the saved position past exactly one transaction (or standalone statement), after
    /// recording it and the reason in {state dir}/skipped.jsonl. For a transaction that Sluice
    /// stops on every time (a MINIMAL row image, a statement-format write): the rows it holds are
    /// NOT published. Refuses while `sluice run` holds the state directory.
    Skip {
        /// TOML config file (environment variables override it).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Why this transaction may be skipped (kept in the skip log).
        #[arg(long, required_unless_present = "dry_run")]
        reason: Option<String>,
        /// Show the transaction that would be skipped, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum TransformCommand {
    /// Write a new transform project NAME into DIR/NAME: an example that masks a column, its
    /// native unit test and samples/events.jsonl. In Rust (Cargo.toml, src/lib.rs), Python
    /// (NAME.py, test_NAME.py) or JavaScript (NAME.js, NAME.test.js, package.json). The
    /// component is NAME.wasm with `-` replaced by `_`, and Sluice names the transform after
    /// that file stem.
    New {
        /// The project name: ASCII letters, digits, `-` and `_`, starting with a letter.
        name: String,
        /// The language: rust, python or js.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// The directory to create the crate in (default: the current directory).
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// The guest SDK directory (`guest-sdk`, which also holds `python/` and `js/`) to use
        /// (default: the checkout this binary was built from).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Run transforms, in order, over change events given as JSON lines (the contract's event
    /// format) and print the resulting events as JSON lines. No MySQL or Kafka needed.
    Test {
        /// The transforms (.wasm components), applied in order.
        #[arg(required = true)]
        wasm: Vec<PathBuf>,
        /// Transform config: KEY=VALUE for every transform, or NAME:KEY=VALUE for the one whose
        /// file stem is NAME. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Read events from FILE instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Print {"topic","key","headers","value"} per event instead of the value alone.
        #[arg(long)]
        envelope: bool,
        /// What to do when a transform fails on an event: halt, skip or dead_letter.
        #[arg(long, default_value = "halt")]
        on_error: String,
        /// CPU time a transform may use per batch, in milliseconds.
        #[arg(long, default_value_t = 500)]
        cpu_ms: u64,
        /// Memory cap per transform instance, in MiB.
        #[arg(long, default_value_t = 64)]
        memory_mb: usize,
    },
}

fn init_logging() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run { config, watch } => run(config, watch).await,
            Command::Check {
                config,
                produce,
                no_produce: _,
            } => check(config, produce).await,
            Command::Setup {
                config,
                user_host,
                dry_run,
                update_password,
            } => setup(config, user_host, dry_run, update_password).await,
            Command::Position(PositionCommand::Show { config }) => position_show(config),
            Command::Position(PositionCommand::Skip {
                config,
                reason,
                dry_run,
            }) => position_skip(config, reason.unwrap_or_default(), dry_run).await,
            Command::Transform(TransformCommand::New {
                name,
                lang,
                path,
                sdk,
            }) => transform_new(&name, &lang, &path, sdk),
            Command::Transform(TransformCommand::Test {
                wasm,
                set,
                input,
                envelope,
                on_error,
                cpu_ms,
                memory_mb,
            }) => tokio::task::spawn_blocking(move || {
                transform_test(wasm, set, input, envelope, &on_error, cpu_ms, memory_mb)
            })
            .await
            .context("the transform test task failed")?,
        }
    });
    // Do not wait for blocked I/O threads (stdin readers, a stuck broker flush) on the way out.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn position_show(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let store = sluice::state::PositionStore::for_tables(
        &cfg.state_dir,
        &cfg.mysql.schema,
        &cfg.state_tables(),
    );
    match store.load()? {
        Some(p) => println!("{p}\n(saved in {})", store.path().display()),
        None => println!(
            "no saved position in {}: `sluice run` starts from the current binlog head",
            store.path().display()
        ),
    }
    let snapshots = sluice::state::SnapshotStore::for_tables(
        &cfg.state_dir,
        &cfg.mysql.schema,
        &cfg.state_tables(),
    );
    if let Some(s) = snapshots.load()? {
        let status = match s.status {
            sluice::state::SnapshotStatus::Complete => "complete",
            sluice::state::SnapshotStatus::Running => "in progress",
        };
        println!(
            "snapshot {} {status}: epoch {}, point {}, {} rows acknowledged\n(recorded in {})",
            s.id,
            s.epoch,
            s.point.position(),
            s.rows(),
            snapshots.path().display()
        );
        for t in &s.tables {
            println!(
                "  {}.{}: {:?}, {} rows, key {}",
                t.schema,
                t.table,
                t.state,
                t.rows,
                if t.key.is_empty() {
                    "none (read again from the start after a crash)".to_owned()
                } else {
                    t.key.join(", ")
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn position_skip(
    config: Option<PathBuf>,
    reason: String,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let out = sluice::source::skip::skip_saved_position(&cfg, &reason, dry_run)
        .await
        .context("cannot skip the transaction at the saved position; nothing was changed")?;
    let g = &out.group;
    println!(
        "transaction {}:{}..{}{}",
        g.file,
        g.start,
        g.end,
        g.gtid
            .as_deref()
            .map(|x| format!(" (gtid {x})"))
            .unwrap_or_default()
    );
    println!(
        "  tables: {}",
        g.tables.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    println!("  rows events: {}", g.rows_events);
    for s in &g.statements {
        println!("  statement: {s}");
    }
    match &out.log {
        None => println!("dry run: the saved position stays at {}", out.from),
        Some(log) => println!(
            "skipped: the saved position moved from {} to {}; recorded in {}",
            out.from,
            out.to,
            log.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    Config::from_env(path.as_deref()).context(
        "invalid configuration (see `sluice run --help` and the README's configuration table)",
    )
}

async fn run(config: Option<PathBuf>, watch: bool) -> anyhow::Result<ExitCode> {
    let mut cfg = load_config(config)?;
    cfg.hot_reload |= watch;
    tracing::info!(
        tables = ?cfg.captured_tables(),
        include = ?cfg.mysql.include.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        exclude = ?cfg.mysql.exclude.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        sink = if cfg.kafka.is_some() { "kafka" } else { "stdout" },
        state_dir = %cfg.state_dir.display(),
        "starting sluice"
    );
    if let Some(addr) = cfg.metrics_addr {
        sluice::telemetry::install();
        let bound = sluice::telemetry::serve(addr).await?;
        tracing::info!(addr = %bound, "serving /metrics and /health");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "stopping: finishing the open transaction, draining and saving the position"
        );
        let _ = stop_tx.send(true);
        wait_for_signal().await;
        eprintln!("error: second signal: exiting without draining; the last saved position stands");
        std::process::exit(130);
    });
    let saved = if cfg.kafka.is_some() {
        "Kafka acknowledged"
    } else {
        "was written to stdout"
    };
    if let Err(e) = sluice::pipeline::run(&cfg, stop_rx).await {
        let mut msg = format!(
            "Sluice stopped. Fix the cause below and start it again: it resumes from the saved \
             position, after the last event that {saved}, so nothing is lost"
        );
        if e.is_stuck_at_event() {
            msg.push_str(
                ". The event is already written in the binlog, so a restart stops at it again. \
                 Once you have dealt with its rows (for example, re-sent them), move past this one \
                 transaction with `sluice position skip --reason \"...\"` (try `--dry-run` first); \
                 the skip is recorded in the state directory's skipped.jsonl",
            );
        }
        return Err(anyhow::Error::new(e).context(msg));
    }
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn check(config: Option<PathBuf>, produce: bool) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let results = run_checks(&cfg, produce).await;
    let mut failed = 0;
    for r in &results {
        println!("{r}");
        if r.status == Status::Fail {
            failed += 1;
        }
    }
    if failed == 0 {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} check(s) failed");
        Ok(ExitCode::FAILURE)
    }
}

async fn setup(
    config: Option<PathBuf>,
    user_host: String,
    dry_run: bool,
    update_password: bool,
) -> anyhow::Result<ExitCode> {
    use sluice::setup::{run_setup, Admin, SetupError, SetupOptions};
    let cfg = load_config(config)?;
    let admin = tokio::task::spawn_blocking(Admin::from_env_or_prompt)
        .await
        .context("asking for the administrator credentials failed")?
        .context("sluice setup needs an administrator account to create Sluice's user")?;
    let opts = SetupOptions {
        user_host,
        dry_run,
        update_password,
    };
    let mut stdout = std::io::stdout();
    let outcome = run_setup(&cfg, &admin, &opts, &mut stdout)
        .await
        .map_err(|e| {
            let what = match &e {
                SetupError::AdminConnect { .. } => {
                    "cannot log in as the administrator: check MYSQL_ADMIN_USER and \
                     MYSQL_ADMIN_PASSWORD (an account that may create users and grant \
                     privileges, such as root) and MYSQL_HOST/MYSQL_PORT; nothing was changed"
                }
                SetupError::Statement { .. } if e.is_privilege_denied() => {
                    "the administrator lacks a privilege this needs: CREATE USER, and GRANT \
                     OPTION together with every privilege it grants (as `GRANT ALL PRIVILEGES ON \
                     *.* TO ... WITH GRANT OPTION` gives, as root has); the statements marked \
                     `ran:` above were applied, and `sluice setup` runs only what is still \
                     missing when run again"
                }
                SetupError::Read { .. } if e.is_privilege_denied() => {
                    "the administrator cannot read the server's accounts (SHOW GRANTS FOR needs \
                     SELECT on the mysql database): use an account such as root; nothing was \
                     changed"
                }
                _ if e.after_changes() => {
                    "sluice setup stopped; the statements marked `ran:` above were applied: fix \
                     the cause and run it again (it runs only what is still missing)"
                }
                _ => "sluice setup stopped; nothing was changed",
            };
            anyhow::Error::new(e).context(what)
        })?;
    println!();
    if dry_run {
        println!(
            "dry run: nothing was changed ({} statement(s) would run)",
            outcome.statements
        );
    } else if outcome.statements == 0 {
        println!("nothing to change");
    } else {
        println!("done: {} statement(s) ran", outcome.statements);
    }
    if outcome.settings_failed > 0 {
        println!(
            "{} server setting(s) above must be fixed before `sluice run`: each shows its fix \
             (setup changes no server setting)",
            outcome.settings_failed
        );
        return Ok(ExitCode::FAILURE);
    }
    if !dry_run {
        println!("next: `sluice check` with the configuration above");
    }
    Ok(ExitCode::SUCCESS)
}

fn transform_new(
    name: &str,
    lang: &str,
    parent: &std::path::Path,
    sdk: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use sluice::transform::template::{self, Lang};
    let lang =
        Lang::parse(lang).with_context(|| format!("--lang {lang:?}: use rust, python or js"))?;
    let sdk = match sdk {
        Some(p) => p.canonicalize().with_context(|| {
            format!("--sdk {}: no such directory; give the guest-sdk directory of a Sluice checkout", p.display())
        })?,
        None => template::default_sdk_dir().context(
            "the guest SDK this binary was built from is gone (the binary was moved or its checkout \
             deleted); pass --sdk PATH/TO/sluice/guest-sdk",
        )?,
    };
    let dir = template::generate(name, parent, &sdk, lang)
        .context("cannot create the transform project")?;
    let stem = template::file_stem(name);
    let d = dir.display();
    println!("created the transform project {d} (SDK: {})", sdk.display());
    println!();
    println!("next:");
    println!("  cd {d}");
    let wasm = match lang {
        Lang::Rust => {
            println!(
                "  cargo test                                        # native unit tests, no wasm"
            );
            println!("  rustup target add wasm32-wasip2                   # once");
            println!("  cargo build --release --target wasm32-wasip2");
            format!("target/wasm32-wasip2/release/{stem}.wasm")
        }
        Lang::Python => {
            let py = sdk.join("python");
            println!(
                "  pip install -r {}/requirements.txt   # once: componentize-py and pytest, pinned",
                py.display()
            );
            println!(
                "  pytest                                            # native unit tests, no wasm"
            );
            println!(
                "  PYTHONPATH={} python -m sluice.build {stem}.py -o {stem}.wasm",
                py.display()
            );
            format!("{stem}.wasm")
        }
        Lang::Js => {
            let js = sdk.join("js");
            println!(
                "  (cd {} && npm ci)          # once: componentize-js and esbuild, pinned",
                js.display()
            );
            println!("  npm install                                       # links the SDK");
            println!("  npm test                                          # node --test: native unit tests, no wasm");
            println!("  npm run build                                     # {stem}.wasm");
            format!("{stem}.wasm")
        }
    };
    println!("  sluice transform test {wasm} --input samples/events.jsonl");
    println!("  TRANSFORMS=$PWD/{wasm} sluice run --watch            # rebuild to hot-reload");
    println!();
    println!(
        "The component is {stem}.wasm, and Sluice names the transform after the file stem \
         ({stem}) unless `name` is set in its [[transforms]] config; `--set {stem}:KEY=VALUE` \
         configures it in `transform test`."
    );
    Ok(ExitCode::SUCCESS)
}

fn transform_test(
    wasm: Vec<PathBuf>,
    set: Vec<String>,
    input: Option<PathBuf>,
    envelope: bool,
    on_error: &str,
    cpu_ms: u64,
    memory_mb: usize,
) -> anyhow::Result<ExitCode> {
    use sluice::transform::{build_chain, FailurePolicy, TransformEngine, TransformSpec};
    use std::io::{BufRead, Write};

    let policy = match on_error {
        "halt" => FailurePolicy::Halt,
        "skip" => FailurePolicy::Skip,
        "dead_letter" => FailurePolicy::DeadLetter,
        other => anyhow::bail!("--on-error {other:?}: use halt, skip or dead_letter"),
    };
    let mut specs: Vec<TransformSpec> = wasm.iter().map(|p| TransformSpec::from_path(p)).collect();
    for s in &set {
        let (target, kv) = match s.split_once(':') {
            Some((name, kv)) if !name.contains('=') => (Some(name), kv),
            _ => (None, s.as_str()),
        };
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected KEY=VALUE or NAME:KEY=VALUE"))?;
        let mut matched = false;
        for spec in specs
            .iter_mut()
            .filter(|sp| target.is_none_or(|t| t == sp.name))
        {
            spec.config.push((k.to_owned(), v.to_owned()));
            matched = true;
        }
        anyhow::ensure!(
            matched,
            "--set {s:?}: no transform is named {:?}",
            target.unwrap_or_default()
        );
    }
    for spec in &mut specs {
        spec.on_error = policy;
        spec.dead_letter_topic = Some("dead-letter".into());
        spec.limits.cpu = Duration::from_millis(cpu_ms);
        spec.limits.memory_bytes = memory_mb << 20;
    }
    let cache = std::env::var_os("SLUICE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sluice/transforms"))
        });
    // One engine for this command; its error says what to change on this host.
    let engine = TransformEngine::new(cache)?;
    let mut chain = build_chain(&engine, &specs).context("cannot load the transforms")?;

    let reader: Box<dyn BufRead> = match &input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p)
                .with_context(|| format!("cannot open --input {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut events = Vec::new();
    let mut decoder = sluice::encode::contract_json::EventReader::default();
    for line in reader.lines() {
        let line = line.context("cannot read the input")?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(
            decoder
                .read(&line)
                .map_err(|e| anyhow::anyhow!("bad input event: {e}"))?,
        );
    }
    // A halt names the failing event: `input:N#0` for the N-th event line of the input.
    let out = chain.process(events)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for ev in &out {
        let route = ev.route.as_deref();
        let value: serde_json::Value = match route.and_then(|r| r.payload.as_ref()) {
            Some(p) => serde_json::from_slice(p).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(p).into_owned())
            }),
            None => {
                let mut buf = Vec::new();
                sluice::encode::encode_value(ev, &mut buf);
                serde_json::from_slice(&buf).expect("the encoder writes JSON")
            }
        };
        let line = if envelope {
            serde_json::json!({
                "topic": route.and_then(|r| r.topic.clone()),
                "key": route.and_then(|r| r.key.as_ref()).map(|k| String::from_utf8_lossy(k).into_owned()),
                "headers": route.map(|r| r.headers.iter().map(|(k, v)| serde_json::json!([k, String::from_utf8_lossy(v)])).collect::<Vec<_>>()).unwrap_or_default(),
                "value": value,
            })
        } else {
            value
        };
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    for (name, s) in chain.stats() {
        if s.skipped + s.dead_lettered + s.errors > 0 {
            eprintln!(
                "{name}: {} errors, {} skipped, {} dead letters",
                s.errors, s.skipped, s.dead_lettered
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
