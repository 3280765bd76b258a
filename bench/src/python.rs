//! Measurement 5, the older app's stack: python-mysql-replication (the PyPI package
//! `mysql-replication`, pinned by `scripts/bench.sh`, as the Python CDC app that Sluice replaces
//! uses it, with `blocking=True`) reading and decoding the same binlog section in the same run.
//! It is what users compare Sluice with; the ratio is the stdout pipeline against it. The
//! script (`bench/python/read_binlog.py`) times itself from the stream's creation to the last
//! row and reports its own CPU time (`getrusage`) and peak RSS (VmHWM).

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::dataset::{Dataset, SCHEMA, TABLE};
use crate::pipeline::next_server_id;
use crate::{Env, Run};

#[derive(Deserialize)]
struct Out {
    rows: u64,
    seconds: f64,
    cpu_s: f64,
    vm_hwm_kib: f64,
    version: String,
}

/// One run; also returns the package's version.
pub async fn run(env: &Env, ds: &Dataset, n: u32) -> Result<(Run, String)> {
    let dir = env.runs_dir.join(format!("python-{n}"));
    std::fs::create_dir_all(&dir)?;
    let script = env.root.join("bench/python/read_binlog.py");
    let services = env.services.start();
    let child = tokio::process::Command::new(&env.python)
        .arg(&script)
        .args([
            "--host",
            "127.0.0.1",
            "--user",
            "sluice",
            "--password",
            "sluice-pw",
        ])
        .args(["--schema", SCHEMA, "--table", TABLE])
        .args(["--port", &env.mysql_port.to_string()])
        .args(["--server-id", &next_server_id(env).to_string()])
        .args([
            "--start-file",
            &ds.start.file,
            "--start-pos",
            &ds.start.pos.to_string(),
        ])
        .args([
            "--end-file",
            &ds.end.file,
            "--end-pos",
            &ds.end.pos.to_string(),
        ])
        .args(["--rows", &ds.rows.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log"))?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", env.python.display()))?;
    // It decodes some tens of thousands of rows per second.
    let limit = Duration::from_secs(300 + ds.rows / 2_000);
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("python-mysql-replication did not finish within {limit:?}"))??;
    let (mariadbd_cpu_s, broker_cpu_s) = services.since();
    std::fs::write(dir.join("stdout.json"), &out.stdout)?;
    if !out.status.success() {
        bail!(
            "python-mysql-replication failed ({}); see {}",
            out.status,
            dir.join("stderr.log").display()
        );
    }
    let o: Out = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the script's output in {}", dir.display()))?;
    let note = (o.rows != ds.rows).then(|| {
        format!(
            "counted {} row changes, not {}: python-mysql-replication stopped at the end position",
            o.rows, ds.rows
        )
    });
    Ok((
        Run {
            rows: o.rows,
            seconds: o.seconds,
            peak_rss_mib: Some(o.vm_hwm_kib / 1024.0),
            cpu_s: Some(o.cpu_s),
            mariadbd_cpu_s,
            broker_cpu_s,
            dir: Some(dir.to_string_lossy().into_owned()),
            note,
            ..Run::default()
        },
        o.version,
    ))
}
