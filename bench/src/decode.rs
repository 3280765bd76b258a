//! Measurement 1, the decode limit: Sluice's binlog reader and row decoder alone, over the
//! network from the server, with no sink. It runs inside the harness, through
//! `sluice::bench::read_binlog` (the pipeline's `source::binlog::stream` with the pipeline's
//! batch limits, on its own task); the receiving side only counts and drops the batches. It is
//! the ceiling of every pipeline figure: what reading and decoding the binlog costs, and the
//! MB/s of binlog the server sends.

use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use sluice::config::Config;

use crate::dataset::{Dataset, TABLE};
use crate::pipeline::{toml, Settings};
use crate::{sys, Env, Run};

/// A Sluice configuration for an in-process read (its TOML kept in the run's directory).
pub fn config(env: &Env, name: &str) -> Result<Config> {
    let dir = env.runs_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("sluice.toml");
    let text = toml(
        env,
        &Settings {
            table: TABLE,
            state_dir: &dir.join("state"),
            topic: None,
            transforms: &[],
            checkpoint_interval_ms: None,
            exactly_once: true,
        },
    );
    std::fs::write(&path, text)?;
    sluice::bench::config_from_file(&path).with_context(|| format!("loading {}", path.display()))
}

pub async fn run(env: &Env, ds: &Dataset, n: u32) -> Result<Run> {
    let cfg = config(env, &format!("decode-{n}"))?;
    let services = env.services.start();
    let cpu0 = sys::self_cpu_seconds();
    let t0 = Instant::now();
    let mut rows = 0u64;
    let stopped = sluice::bench::read_binlog(&cfg, ds.start.clone(), &ds.end, |batch| {
        rows += batch.events.len() as u64;
    })
    .await
    .map_err(|e| anyhow::anyhow!("Sluice's reader failed on the dataset: {e}"))?;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = sys::self_cpu_seconds() - cpu0;
    let (mariadbd_cpu_s, broker_cpu_s) = services.since();
    if rows != ds.rows {
        bail!(
            "Sluice's reader decoded {rows} row changes between {} and {}, not {}",
            ds.start,
            ds.end,
            ds.rows
        );
    }
    Ok(Run {
        rows,
        seconds,
        cpu_s: Some(cpu),
        mariadbd_cpu_s,
        broker_cpu_s,
        note: stopped.map(|p| format!("stopped at {p}")),
        ..Run::default()
    })
}
