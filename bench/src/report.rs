//! The run's report: one markdown table of the throughput measurements with the ratios measured
//! in the same run, the latency table, the issue's targets against this run's figures, and the
//! machine, versions, command and revision that produced them (`results.md`, also printed);
//! every run's figures as JSON (`results.json`).

use std::fmt::Write as _;

use anyhow::Result;
use mysql_async::prelude::Queryable;
use serde::Serialize;

use crate::dataset::Dataset;
use crate::latency::LoadResult;
use crate::{sys, Args, Env, Measurement, Run};

/// What produced the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub date: String,
    pub command: String,
    pub revision: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub kernel: String,
    pub mariadb: String,
    pub broker: String,
    pub librdkafka: String,
    pub rustc: String,
    pub python: String,
    pub python_mysql_replication: Option<String>,
    pub runs: u32,
    pub start: sys::Snapshot,
    pub end: sys::Snapshot,
}

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(
        line.split_once([':', '='])?
            .1
            .trim()
            .trim_matches('"')
            .to_owned(),
    )
}

impl Meta {
    pub async fn collect(
        env: &Env,
        args: &Args,
        _ds: &Dataset,
        start: sys::Snapshot,
        end: sys::Snapshot,
        python_mysql_replication: Option<String>,
    ) -> Meta {
        let root = env.root.to_string_lossy().into_owned();
        let git = |a: &[&str]| {
            let mut all = vec!["-C", root.as_str()];
            all.extend_from_slice(a);
            sys::output("git", &all)
        };
        let mut revision =
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty = git(&[
            "status",
            "--porcelain",
            "--",
            "host",
            "contract",
            "guest-sdk",
            "transforms",
            "bench",
        ])
        .is_some_and(|s| !s.is_empty());
        if dirty {
            revision.push_str("+dirty");
        }
        let mariadb = async {
            let mut c = mysql_async::Conn::new(env.admin()).await.ok()?;
            let v: Option<String> = c.query_first("SELECT VERSION()").await.ok()?;
            let _ = c.disconnect().await;
            v
        }
        .await
        .unwrap_or_else(|| "?".into());
        let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
        let command = args
            .command
            .clone()
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
        Meta {
            date: sys::utc(start.unix as i64) + " UTC",
            command,
            revision,
            cpu: first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: first_line_with("/proc/meminfo", "MemTotal")
                .and_then(|m| m.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / (1024.0 * 1024.0)),
            os: first_line_with("/etc/os-release", "PRETTY_NAME").unwrap_or_else(|| "?".into()),
            kernel: sys::output("uname", &["-r"]).unwrap_or_else(|| "?".into()),
            mariadb,
            broker: sys::output(&env.tansu.to_string_lossy(), &["--version"])
                .map_or_else(|| "?".into(), |v| format!("{v} (memory storage)")),
            librdkafka,
            rustc: sys::output("rustc", &["--version"]).unwrap_or_else(|| "?".into()),
            python: sys::output(&env.python.to_string_lossy(), &["--version"])
                .unwrap_or_else(|| "?".into()),
            python_mysql_replication,
            runs: args.runs,
            start,
            end,
        }
    }
}

/// 412k, 1.23M
pub fn rate(r: f64) -> String {
    if !r.is_finite() || r <= 0.0 {
        "-".into()
    } else if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn best<'a>(results: &'a [Measurement], id: &str) -> Option<&'a Run> {
    results
        .iter()
        .find(|m| m.id == id)
        .and_then(Measurement::best)
}

/// `a`'s rate over `b`'s, as `0.31×`.
fn ratio(results: &[Measurement], a: &str, b: &str) -> Option<f64> {
    let (a, b) = (best(results, a)?, best(results, b)?);
    (b.rate() > 0.0).then(|| a.rate() / b.rate())
}

fn x(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}

/// The "compared in this run" cell of a measurement.
fn compared(results: &[Measurement], id: &str) -> String {
    let pairs: &[(&str, &str)] = match id {
        "decode" => return "the ceiling of every pipeline figure".into(),
        "broker" => return "the ceiling of the Kafka pipeline".into(),
        "python" => return "the stack Sluice replaces".into(),
        "stdout" => &[("decode", "decode limit"), ("python", "Python stack")],
        "kafka" => &[("broker", "broker limit"), ("stdout", "stdout pipeline")],
        "kafka-alo" => &[
            ("kafka", "exactly-once (default)"),
            ("broker", "broker limit"),
        ],
        "filter-mask" => &[("stdout", "no transform")],
        "chain3" => &[("stdout", "no transform"), ("filter-mask", "filter+mask")],
        "filter-mask-kafka" => &[("kafka", "no transform"), ("broker", "broker limit")],
        "chain3-kafka" => &[("kafka", "no transform"), ("broker", "broker limit")],
        _ => &[],
    };
    let cells: Vec<String> = pairs
        .iter()
        .filter_map(|(b, name)| ratio(results, id, b).map(|r| format!("{} {name}", x(r))))
        .collect();
    if cells.is_empty() {
        "-".into()
    } else {
        cells.join(", ")
    }
}

pub fn markdown(
    meta: &Meta,
    ds: &Dataset,
    results: &[Measurement],
    latency: &[LoadResult],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Sluice benchmark, {}\n", meta.date);
    let _ = writeln!(
        s,
        "Command: `{}` at sluice `{}`; {} run(s) per throughput figure, the table shows the best (latency: one run).  ",
        meta.command, meta.revision, meta.runs
    );
    let _ = writeln!(
        s,
        "Machine: {}, {} cores, {:.0} GiB, {} (Linux {}); load average {} at the start, {} at the end. \
         MariaDB, the broker, Sluice and the harness share the cores.  ",
        meta.cpu, meta.cores, meta.memory_gib, meta.os, meta.kernel, meta.start.load_average, meta.end.load_average
    );
    let _ = writeln!(
        s,
        "Versions: MariaDB {}, {}, librdkafka {}, {}, python-mysql-replication {} ({}).  ",
        meta.mariadb,
        meta.broker,
        meta.librdkafka,
        meta.rustc,
        meta.python_mysql_replication.as_deref().unwrap_or("-"),
        meta.python
    );
    let _ = writeln!(
        s,
        "Dataset: {} row changes of `benchcdc.orders` (INT key, BIGINT, VARCHAR(64), DECIMAL(12,3), \
         DATETIME(3), DOUBLE, TEXT, TINYINT): {} inserts, {} updates, {} deletes in {} transactions \
         of 1, 10, 100 or 1000 rows (seed {:#x}); binlog `{}` → `{}`, {:.1} MiB{}.\n",
        thousands(ds.rows),
        thousands(ds.inserts),
        thousands(ds.updates),
        thousands(ds.deletes),
        thousands(ds.transactions),
        ds.seed,
        ds.start,
        ds.end,
        ds.mib(),
        if ds.reused {
            format!(", made {} and reused", ds.created)
        } else {
            format!(", made now in {:.0} s", ds.generate_seconds.unwrap_or(0.0))
        }
    );
    if !results.is_empty() {
        let _ = writeln!(
            s,
            "| measurement | rows/s | MB/s of binlog | seconds | first ack s | peak RSS MiB | CPU s: measured / mariadbd / tansu | compared in this run |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|");
    }
    for m in results {
        let Some(r) = m.best() else { continue };
        let mbs = match m.id.as_str() {
            "broker" => "-".to_owned(),
            _ => format!("{:.1}", ds.binlog_bytes as f64 / 1e6 / r.seconds),
        };
        let rows = if m.id == "broker" {
            format!("{} msgs/s", rate(r.rate()))
        } else {
            rate(r.rate())
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {} | {} | {} / {} / {} | {} |",
            m.label,
            rows,
            mbs,
            r.seconds,
            opt(r.first_ack_seconds, 2),
            opt(r.peak_rss_mib, 0),
            opt(r.cpu_s, 1),
            opt(r.mariadbd_cpu_s, 1),
            opt(r.broker_cpu_s, 1),
            compared(results, &m.id)
        );
    }
    if !latency.is_empty() {
        let _ = writeln!(
            s,
            "\nLatency: commit → acknowledged by Kafka (Sluice's `sluice::acked` line), and commit → readable by a consumer, Sluice → Kafka with default settings:\n"
        );
        let _ = writeln!(
            s,
            "| load | achieved rows/s | rows measured (read) | → acked p50 ms | → acked p99 ms | → acked max ms | → readable p50 / p99 ms | of which commit → producer (CreateTime, ms resolution) p50 / p99 ms | sluice peak RSS MiB | CPU s: sluice / mariadbd / tansu |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for l in latency {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} ({}) | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} / {} / {} |",
                l.label,
                l.achieved_rows_per_s,
                l.measured_rows,
                l.read_rows,
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                l.read_p50_ms,
                l.read_p99_ms,
                l.to_producer_p50_ms,
                l.to_producer_p99_ms,
                opt(l.peak_rss_mib, 0),
                opt(l.cpu_s, 1),
                opt(l.mariadbd_cpu_s, 1),
                opt(l.broker_cpu_s, 1)
            );
        }
    }
    targets(&mut s, results, latency);
    let _ = writeln!(s, "\n![rows/s per configuration](throughput.png)\n");
    let _ = writeln!(
        s,
        "How each figure is timed: the decode limit runs Sluice's reader inside the harness \
         (`sluice::bench::read_binlog`), connect to last batch. The broker limit sends the same \
         messages (keys, values, `sluice.*` headers, built before the clock) with a \
         `ThreadedProducer` and Sluice's `PRODUCER_DEFAULTS`, first send to last delivery report. \
         A pipeline figure is `sluice run` from its `streaming the binlog` log line to the last \
         write of its position file at or past the dataset's end (`checkpoint_interval_ms = 20`); \
         every event before that position was written to stdout or acknowledged by Kafka. \
         `first ack s` is from that line to the position file's first move; into Kafka it holds \
         the start of Sluice's idempotent producer (its producer id), which the reference \
         producer gets before its clock, with one warm-up message to another topic. The \
         Python stack times itself from the stream's creation to the last row. Peak RSS is \
         VmHWM (of `sluice run` just before SIGTERM; Python reads its own); CPU is user + system seconds \
         during the run. The transforms are the examples of `transforms/`, built by \
         `scripts/build-transforms.sh`: `filter` keeps the rows whose `flag` is below 64 (about \
         half), `mask` replaces `name` with its SHA-256, `reshape` renames `note` and adds a \
         constant column; rows/s always counts the binlog's row changes. Latency runs from the \
         time the load generator wrote into each row just before its commit to the first \
         `sluice::acked` log line (Sluice's debug line when Kafka acknowledged a transaction, \
         timestamped to the microsecond) past the row's `sluice.file`/`sluice.pos`; \
         `readable` runs to a consumer's read instead."
    );
    s
}

/// Issue 10's targets against this run's figures.
fn targets(s: &mut String, results: &[Measurement], latency: &[LoadResult]) {
    let mut lines = Vec::new();
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    if let Some(r) = ratio(results, "kafka", "broker") {
        lines.push(format!(
            "pipeline → Kafka ≥ 0.8× the broker limit: {} ({})",
            x(r),
            verdict(r >= 0.8)
        ));
    }
    if let Some(r) = best(results, "stdout") {
        lines.push(format!(
            "stdout pipeline ≥ 1M rows/s: {} ({})",
            rate(r.rate()),
            verdict(r.rate() >= 1e6)
        ));
    }
    if let Some(r) = ratio(results, "stdout", "python") {
        lines.push(format!(
            "stdout pipeline ≥ 40× the Python stack: {} ({})",
            x(r),
            verdict(r >= 40.0)
        ));
    }
    if let Some(r) = best(results, "filter-mask") {
        lines.push(format!(
            "filter+mask, stdout ≥ 500k rows/s: {} ({})",
            rate(r.rate()),
            verdict(r.rate() >= 5e5)
        ));
    }
    for (target_rows, limit) in [(1000, 10.0), (10_000, 50.0)] {
        if let Some(l) = latency
            .iter()
            .filter(|l| l.target_rows_per_s == target_rows)
            .min_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms))
        {
            lines.push(format!(
                "p99 ≤ {limit:.0} ms at {}k rows/s (commit → acknowledged): {:.1} ms ({})",
                target_rows / 1000,
                l.p99_ms,
                verdict(l.p99_ms <= limit)
            ));
        }
    }
    let rss = results
        .iter()
        .flat_map(|m| {
            m.runs
                .iter()
                .filter(|_| !matches!(m.id.as_str(), "python" | "decode" | "broker"))
                .filter_map(|r| r.peak_rss_mib)
        })
        .chain(latency.iter().filter_map(|l| l.peak_rss_mib))
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        });
    if let Some(mib) = rss {
        let mb = mib * 1.048_576;
        lines.push(format!(
            "peak RSS of `sluice run` ≤ 150 MB in every run: at most {mb:.0} MB ({mib:.0} MiB) ({})",
            verdict(mb <= 150.0)
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(s, "\nIssue 10's targets, in this run:\n");
        for l in lines {
            let _ = writeln!(s, "- {l}");
        }
    }
}

/// Writes `results.md` and `results.json` into the output directory.
pub fn write(
    env: &Env,
    meta: &Meta,
    ds: &Dataset,
    results: &[Measurement],
    latency: &[LoadResult],
    md: &str,
) -> Result<()> {
    std::fs::write(env.out.join("results.md"), md)?;
    #[derive(Serialize)]
    struct All<'a> {
        meta: &'a Meta,
        dataset: &'a Dataset,
        measurements: &'a [Measurement],
        latency: &'a [LoadResult],
    }
    let json = serde_json::to_vec_pretty(&All {
        meta,
        dataset: ds,
        measurements: results,
        latency,
    })?;
    std::fs::write(env.out.join("results.json"), json)?;
    Ok(())
}
