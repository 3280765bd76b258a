//! Measurements 3 and 4: `target/release/sluice run` from the dataset's start to its end, until
//! every event is acknowledged, without transforms and with them, into the stdout sink (to
//! `/dev/null`) or into Kafka. This is the figure users get: the real binary, its start-up
//! checks, its stages and its checkpointer.
//!
//! Each run gets a TOML file (no environment variable reaches Sluice: its environment is
//! cleared), a fresh state directory whose position file says the dataset's start, a unique
//! server id and, for Kafka, a fresh topic (deleted after the run). `checkpoint_interval_ms` is
//! 20, and the harness polls the position file every 5 ms until it is at or past the dataset's
//! end: then every event before it was acknowledged (written to stdout, or acked by Kafka). The
//! rate counts from the moment Sluice logged `streaming the binlog` (after its preflight, the
//! Kafka probe and loading the transforms) to the position file's last write; the wall time
//! from the spawn is recorded too. Peak RSS is VmHWM read just before SIGTERM.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use sluice::state::PositionStore;

use crate::dataset::{self, Dataset, SCHEMA, TABLE};
use crate::sys::{self, ServiceCpu};
use crate::{broker, log, Env, Run};

/// One example transform of `transforms/` with its `[transforms.config]`.
#[derive(Debug, Clone)]
pub struct Transform {
    pub name: &'static str,
    pub config: &'static [(&'static str, &'static str)],
}

/// Keeps the rows whose `flag` (0..127) is below 64: about half.
const FILTER: Transform = Transform {
    name: "filter",
    config: &[("column", "flag"), ("op", "<"), ("value", "64")],
};
/// SHA-256 of `name` (hex), in the row after and the row before.
const MASK: Transform = Transform {
    name: "mask",
    config: &[("columns", "name")],
};
/// Renames `note` and adds a constant column: an edit of every event that needs no values.
const RESHAPE: Transform = Transform {
    name: "reshape",
    config: &[("rename", "note:comment"), ("add", "source:bench")],
};

/// A pipeline measurement.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: &'static str,
    pub kafka: bool,
    pub transforms: Vec<Transform>,
    /// Sluice's exactly-once mode (its default); off for the at-least-once comparison.
    pub exactly_once: bool,
}

/// The pipeline measurement called `id`.
pub fn spec(id: &str) -> Option<Spec> {
    let (id, kafka, transforms) = match id {
        "stdout" => ("stdout", false, vec![]),
        "kafka" => ("kafka", true, vec![]),
        "kafka-alo" => ("kafka-alo", true, vec![]),
        "filter-mask" => ("filter-mask", false, vec![FILTER, MASK]),
        "filter-mask-kafka" => ("filter-mask-kafka", true, vec![FILTER, MASK]),
        "chain3" => ("chain3", false, vec![FILTER, MASK, RESHAPE]),
        "chain3-kafka" => ("chain3-kafka", true, vec![FILTER, MASK, RESHAPE]),
        _ => return None,
    };
    Some(Spec {
        id,
        kafka,
        transforms,
        exactly_once: id != "kafka-alo",
    })
}

/// A replica server id no other run of this harness uses.
pub fn next_server_id(env: &Env) -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    env.server_id_base + N.fetch_add(1, Ordering::Relaxed) + 1
}

/// A TOML string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What a measured Sluice is configured with.
pub struct Settings<'a> {
    pub table: &'a str,
    pub state_dir: &'a Path,
    pub topic: Option<&'a str>,
    pub transforms: &'a [Transform],
    pub checkpoint_interval_ms: Option<u64>,
    /// `exactly_once = false` when false (Sluice's default is true).
    pub exactly_once: bool,
}

/// The TOML configuration of a measured `sluice run`.
pub fn toml(env: &Env, s: &Settings<'_>) -> String {
    let mut t = String::new();
    if !s.exactly_once {
        // A top-level key: before the first section.
        let _ = writeln!(t, "exactly_once = false\n");
    }
    let _ = writeln!(
        t,
        "[mysql]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"sluice\"\npassword = \"sluice-pw\"\n\
         database = {}\ntables = [{}]\nserver_id = {}\n",
        env.mysql_port,
        q(SCHEMA),
        q(s.table),
        next_server_id(env)
    );
    let _ = writeln!(t, "[state]\ndir = {}\n", q(&s.state_dir.to_string_lossy()));
    // One compilation cache for every run: compiling the transforms is start-up, not streaming.
    let cache = env.out.join("transform-cache");
    let _ = writeln!(t, "[engine]\ncache_dir = {}\n", q(&cache.to_string_lossy()));
    if let Some(ms) = s.checkpoint_interval_ms {
        let _ = writeln!(t, "[pipeline]\ncheckpoint_interval_ms = {ms}\n");
    }
    if let Some(topic) = s.topic {
        let _ = writeln!(
            t,
            "[kafka]\nbrokers = {}\ntopic = {}\n",
            q(&env.kafka),
            q(topic)
        );
        if !env.producer.is_empty() {
            let _ = writeln!(t, "[kafka.producer]");
            for (k, v) in &env.producer {
                let _ = writeln!(t, "{} = {}", q(k), q(v));
            }
            t.push('\n');
        }
    }
    for tr in s.transforms {
        let path = env.wasm_dir.join(format!("{}.wasm", tr.name));
        let _ = writeln!(t, "[[transforms]]\npath = {}", q(&path.to_string_lossy()));
        let _ = writeln!(t, "[transforms.config]");
        for (k, v) in tr.config {
            let _ = writeln!(t, "{k} = {}", q(v));
        }
        t.push('\n');
    }
    t
}

/// A running `sluice run`, its log, and the services' CPU since it started.
pub struct Sluice {
    child: tokio::process::Child,
    pub pid: u32,
    pub stderr: PathBuf,
    pub spawned_unix: f64,
    services: ServiceCpu,
}

/// What a stopped Sluice used.
pub struct Stopped {
    pub peak_rss_mib: Option<f64>,
    pub cpu_s: Option<f64>,
    pub mariadbd_cpu_s: Option<f64>,
    pub broker_cpu_s: Option<f64>,
    pub exit_note: Option<String>,
}

impl Sluice {
    /// Starts `sluice run --config CONFIG` with an empty environment (only `PATH`, `HOME` and
    /// `SLUICE_LOG=info`), stdout to `/dev/null` and stderr to `dir/stderr.log`.
    pub fn spawn(env: &Env, dir: &Path, config: &Path) -> Result<Sluice> {
        Self::spawn_logging(env, dir, config, "info")
    }

    /// [`Sluice::spawn`] with `SLUICE_LOG=filter` (the latency run adds the
    /// `sluice::acked=debug` lines, one per acknowledged transaction).
    pub fn spawn_logging(env: &Env, dir: &Path, config: &Path, filter: &str) -> Result<Sluice> {
        let stderr = dir.join("stderr.log");
        let err = std::fs::File::create(&stderr)?;
        let services = env.services.start();
        let spawned_unix = sys::unix_now();
        let child = tokio::process::Command::new(&env.sluice)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("SLUICE_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", env.sluice.display()))?;
        let pid = child.id().context("sluice exited at once")?;
        Ok(Sluice {
            child,
            pid,
            stderr,
            spawned_unix,
            services,
        })
    }

    /// An error with the end of the log when Sluice has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "sluice exited ({status}) before the end of the run; its log ({}) ends with:\n{}",
                self.stderr.display(),
                tail(&self.stderr, 8)
            );
        }
        Ok(())
    }

    /// When Sluice logged `streaming the binlog` (seconds since the epoch), if it did.
    pub fn streaming_since(&self) -> Option<f64> {
        let text = std::fs::read_to_string(&self.stderr).ok()?;
        text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let msg = v.pointer("/fields/message")?.as_str()?;
            if msg != "streaming the binlog" {
                return None;
            }
            sys::parse_rfc3339_utc(v.get("timestamp")?.as_str()?)
        })
    }

    /// Reads the peak RSS and the CPU used, sends SIGTERM and waits for the exit (SIGKILL
    /// after 30 s).
    pub async fn stop(mut self) -> Result<Stopped> {
        let peak_rss_mib = sys::vm_hwm_mib(self.pid);
        let cpu_s = sys::cpu_seconds(self.pid);
        let (mariadbd_cpu_s, broker_cpu_s) = self.services.since();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let exit_note = match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await
        {
            Ok(Ok(s)) if s.success() => None,
            Ok(Ok(s)) => Some(format!("sluice exited with {s} after SIGTERM")),
            Ok(Err(e)) => Some(format!("waiting for sluice: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Some("sluice did not stop within 30 s of SIGTERM; killed".to_owned())
            }
        };
        if let Some(n) = &exit_note {
            log(format!("  {n} (log: {})", self.stderr.display()));
        }
        Ok(Stopped {
            peak_rss_mib,
            cpu_s,
            mariadbd_cpu_s,
            broker_cpu_s,
            exit_note,
        })
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One run of a pipeline measurement.
pub async fn run(env: &Env, ds: &Dataset, spec: &Spec, n: u32) -> Result<Run> {
    let dir = env.runs_dir.join(format!("{}-{n}", spec.id));
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    let tables = [TABLE.to_owned()];
    sluice::bench::save_position(&state, SCHEMA, &tables, &ds.start)
        .context("writing the start position file")?;
    let topic = spec
        .kafka
        .then(|| format!("bench-{}-{}-{n}", env.stamp, spec.id).to_lowercase());
    if let Some(t) = &topic {
        broker::create_topic(&env.kafka, t).await?;
    }
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        toml(
            env,
            &Settings {
                table: TABLE,
                state_dir: &state,
                topic: topic.as_deref(),
                transforms: &spec.transforms,
                checkpoint_interval_ms: Some(20),
                exactly_once: spec.exactly_once,
            },
        ),
    )?;
    let store = PositionStore::for_tables(&state, SCHEMA, &tables);
    let mut sluice = Sluice::spawn(env, &dir, &config)?;
    // Generous: the slowest configuration here runs at tens of thousands of rows per second.
    let deadline = Instant::now() + Duration::from_secs(120 + ds.rows / 5_000);
    let mtime = || {
        std::fs::metadata(store.path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(sys::unix_now, |d| d.as_secs_f64())
    };
    // When the position first moved: the first acknowledgement.
    let mut first_ack_unix = None;
    loop {
        if let Ok(Some(p)) = store.load() {
            if first_ack_unix.is_none() && p.pos != ds.start.pos {
                first_ack_unix = Some(mtime());
            }
            if dataset::reached(&p, &ds.end) {
                break;
            }
        }
        sluice.check_alive()?;
        if Instant::now() > deadline {
            let last = store.load().ok().flatten();
            let _ = sluice.stop().await;
            bail!(
                "sluice did not reach the dataset's end {} in time (last saved position: {}); see {}",
                ds.end,
                last.map_or("none".to_owned(), |p| p.to_string()),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked_unix = mtime();
    let streaming = sluice.streaming_since();
    let spawned_unix = sluice.spawned_unix;
    let stderr = sluice.stderr.clone();
    let stopped = sluice.stop().await?;
    let mut note = stopped.exit_note;
    let start = streaming.unwrap_or_else(|| {
        note.get_or_insert_with(|| {
            format!(
                "no 'streaming the binlog' line in {}: timed from the spawn",
                stderr.display()
            )
        });
        spawned_unix
    });
    let published = match &topic {
        Some(t) => {
            let p = broker::message_count(&env.kafka, t).await;
            broker::delete_topic(env, t).await;
            p
        }
        None => None,
    };
    if spec.transforms.is_empty() && published.is_some_and(|p| p != ds.rows) {
        let msg = format!(
            "the topic holds {} messages, not {}",
            published.unwrap_or_default(),
            ds.rows
        );
        log(format!("  warning: {msg}"));
        note = Some(note.map_or(msg.clone(), |n| format!("{n}; {msg}")));
    }
    Ok(Run {
        rows: ds.rows,
        seconds: acked_unix - start,
        first_ack_seconds: first_ack_unix.map(|t| t - start),
        wall_seconds: Some(acked_unix - spawned_unix),
        peak_rss_mib: stopped.peak_rss_mib,
        cpu_s: stopped.cpu_s,
        mariadbd_cpu_s: stopped.mariadbd_cpu_s,
        broker_cpu_s: stopped.broker_cpu_s,
        published,
        dir: Some(dir.to_string_lossy().into_owned()),
        note,
    })
}
