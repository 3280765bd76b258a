//! The `sluice` command line: `run`, `check` and (with the transform engine) `transform test`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use sluice::check::{run_checks, Status};
use sluice::config::Config;

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
    },
    /// Check the server and the configuration; prints each check with a fix. Exits 0 only if all pass.
    Check {
        /// TOML config file (environment variables override it).
        #[arg(long, short)]
        config: Option<PathBuf>,
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
            Command::Run { config } => run(config).await,
            Command::Check { config } => check(config).await,
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

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    Config::from_env(path.as_deref()).context(
        "invalid configuration (see `sluice run --help` and the README's configuration table)",
    )
}

async fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    if cfg.snapshot.initial {
        anyhow::bail!(
            "INITIAL_SNAPSHOT=true: this version of Sluice cannot take the initial snapshot yet, and it \
             will not pretend to. Unset INITIAL_SNAPSHOT to stream changes from the current binlog \
             head (existing rows are not published), or keep running the previous tool for the snapshot"
        );
    }
    tracing::info!(
        tables = ?cfg.captured_tables(),
        sink = if cfg.kafka.is_some() { "kafka" } else { "stdout" },
        state_dir = %cfg.state_dir.display(),
        "starting sluice"
    );
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
    sluice::pipeline::run(&cfg, stop_rx)
        .await
        .context("the pipeline stopped; the saved position is the last one Kafka acknowledged, so a restart loses nothing")?;
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

async fn check(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let results = run_checks(&cfg).await;
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
