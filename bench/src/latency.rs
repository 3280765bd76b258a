//! Measurement 6, latency: how long a committed row takes to be acknowledged by Kafka while
//! Sluice streams at a steady load. A load generator (mysql_async, one connection) commits
//! rows to `benchcdc.lat` at a fixed pace, each row carrying the wall-clock time in
//! microseconds taken just before its committing statement (autocommit); Sluice, started at
//! the current head with its default settings, streams the table to a fresh topic. Loads: 1k
//! one-row commits/s (1k rows/s) and 1k ten-row commits/s (10k rows/s), each measured for
//! `--latency-seconds` after `--warmup-seconds`, one after the other on the same Sluice.
//!
//! Two figures per row. **Commit → acknowledged** (the definition): Sluice runs with
//! `sluice::acked=debug`, which logs each transaction's end position when Kafka acknowledged
//! it; a row's acknowledgement is the first such line past the row's `sluice.file` and
//! `sluice.pos` headers. **Commit → readable**: a consumer (rdkafka, `fetch.wait.max.ms=5`;
//! 1 ms overloads the local broker, which then answered in 0.5 to 1.8 s) reads the topic and
//! takes now − timestamp, so it adds the broker's fetch path and the consumer's wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::dataset::SCHEMA;
use crate::pipeline::{toml, Settings, Sluice};
use crate::{broker, log, sys, Args, Env};

/// (rows per commit, commits per second)
const LOADS: [(u32, u32); 2] = [(1, 1000), (10, 1000)];

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub label: String,
    pub target_rows_per_s: u32,
    pub rows_per_commit: u32,
    pub achieved_commits_per_s: f64,
    pub achieved_rows_per_s: f64,
    /// Rows committed in the measured window, and how many of them the consumer read.
    pub measured_rows: u64,
    pub read_rows: u64,
    /// Commit → acknowledged (the `sluice::acked` line), over the rows read.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Commit → readable by the consumer.
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    /// Commit → handed to librdkafka (the message's CreateTime, millisecond resolution): Sluice's
    /// own share of the latency.
    pub to_producer_p50_ms: f64,
    pub to_producer_p99_ms: f64,
    /// Sluice's peak RSS at the end of this load (a running peak) and its CPU during it.
    pub peak_rss_mib: Option<f64>,
    pub cpu_s: Option<f64>,
    pub mariadbd_cpu_s: Option<f64>,
    pub broker_cpu_s: Option<f64>,
    pub run: u32,
    pub dir: String,
}

/// What one load wrote, and what the processes used meanwhile.
struct Written {
    load: i64,
    rows_per_commit: u32,
    target: u32,
    commits: u64,
    rows: u64,
    secs: f64,
    cpu: Option<f64>,
    mariadbd: Option<f64>,
    broker: Option<f64>,
    rss: Option<f64>,
}

fn unix_micros() -> i64 {
    (sys::unix_now() * 1e6) as i64
}

/// One row as the consumer read it.
struct Seen {
    phase: i64,
    /// The commit time the generator wrote (unix µs).
    committed: i64,
    /// µs from the commit to the consumer reading it.
    read: i64,
    /// µs from the commit to the message's CreateTime, or `i64::MIN` without one.
    created: i64,
    /// The row's `sluice.file` and `sluice.pos` headers.
    at: Option<(String, u64)>,
}

/// Reads `topic` from its start until `stop`. librdkafka stamps CreateTime (in milliseconds)
/// when Sluice hands it the message, so `created` is Sluice's own share: binlog to `produce`,
/// before the linger, the broker and the consumer.
fn consume(brokers: &str, topic: &str, stop: &AtomicBool) -> Result<Vec<Seen>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sluice-bench-latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    c.assign(&tpl)?;
    let mut out = Vec::new();
    let mut idx: Option<(usize, usize)> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(m) = c.poll(Duration::from_millis(50)) else {
            continue;
        };
        let now = unix_micros();
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                log(format!("  latency consumer: {e}"));
                continue;
            }
        };
        let Some(payload) = m.payload() else { continue };
        let v: serde_json::Value = serde_json::from_slice(payload)?;
        let (pi, ti) = match idx {
            Some(i) => i,
            None => {
                let names = v["columnnames"].as_array().context("columnnames")?;
                let find = |n: &str| names.iter().position(|c| c == n);
                let i = (
                    find("phase").context("a phase column")?,
                    find("ts_us").context("a ts_us column")?,
                );
                idx = Some(i);
                i
            }
        };
        let vals = &v["columnvalues"];
        if let (Some(p), Some(ts)) = (vals[pi].as_i64(), vals[ti].as_i64()) {
            let created = m
                .timestamp()
                .to_millis()
                .map_or(i64::MIN, |ms| ms * 1000 - ts);
            out.push(Seen {
                phase: p,
                committed: ts,
                read: now - ts,
                created,
                at: position_headers(&m),
            });
        }
    }
    Ok(out)
}

/// The `sluice.file` and `sluice.pos` headers of a message.
fn position_headers(m: &impl Message) -> Option<(String, u64)> {
    let h = m.headers()?;
    let get = |name: &str| {
        (0..h.count())
            .map(|i| h.get(i))
            .find(|x| x.key == name)
            .and_then(|x| x.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    Some((
        get("sluice.file")?.to_owned(),
        get("sluice.pos")?.parse().ok()?,
    ))
}

/// The `sluice::acked` lines of a JSON log: (file, end position, unix µs), in the order Sluice
/// confirmed them.
fn acknowledgements(log: &std::path::Path) -> Result<Vec<(String, u64, i64)>> {
    let text = std::fs::read_to_string(log)?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.contains("\"sluice::acked\"")) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let (Some(ts), Some(file), Some(pos)) = (
            v["timestamp"].as_str().and_then(rfc3339_micros),
            v["fields"]["file"].as_str(),
            v["fields"]["pos"].as_u64(),
        ) else {
            bail!("an acknowledgement line without timestamp, file or pos: {line}");
        };
        out.push((file.to_owned(), pos, ts));
    }
    Ok(out)
}

/// `2026-12-07T01:02:03.456789Z` (tracing's JSON timestamps, UTC) as unix µs.
fn rfc3339_micros(t: &str) -> Option<i64> {
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.splitn(3, ':').map(str::parse::<i64>);
    let (hh, mm, ss) = (h.next()?.ok()?, h.next()?.ok()?, h.next()?.ok()?);
    let digits = frac.len().min(6);
    let micros: i64 = frac.get(..digits)?.parse().ok()?;
    let micros = micros * 10_i64.pow(6 - digits as u32);
    let days = sluice_contract::format::days_from_civil(
        y,
        u32::try_from(mo).ok()?,
        u32::try_from(da).ok()?,
    );
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + micros)
}

/// Commits `rows_per_commit`-row inserts at `per_s` commits per second for `warmup + measure`;
/// rows of the warm-up get phase `10 * load`, measured ones `10 * load + 1`. Returns the
/// measured (commits, rows, seconds).
/// (The seconds run to the last commit's end, so a generator that fell behind shows a lower
/// achieved rate.)
async fn generate(
    c: &mut Conn,
    load: i64,
    rows_per_commit: u32,
    per_s: u32,
    warmup: Duration,
    measure: Duration,
) -> Result<(u64, u64, f64)> {
    let period = Duration::from_secs(1) / per_s;
    let start = tokio::time::Instant::now();
    let measured_from = start + warmup;
    let end = measured_from + measure;
    let (mut commits, mut rows) = (0u64, 0u64);
    let mut sql = String::with_capacity(64 * rows_per_commit as usize + 64);
    for i in 0u32.. {
        let at = start + period * i;
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let phase = if at < measured_from {
            10 * load
        } else {
            10 * load + 1
        };
        let ts = unix_micros();
        sql.clear();
        sql.push_str("INSERT INTO benchcdc.lat (phase, ts_us, note) VALUES ");
        for r in 0..rows_per_commit {
            if r > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("({phase},{ts},'latency probe {i}.{r}')"));
        }
        c.query_drop(&sql).await?;
        if at >= measured_from {
            commits += 1;
            rows += u64::from(rows_per_commit);
        }
    }
    // Longer than `measure` when the generator fell behind its pace.
    let secs = (tokio::time::Instant::now() - measured_from).as_secs_f64();
    Ok((commits, rows, secs.max(measure.as_secs_f64())))
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

pub async fn run(env: &Env, args: &Args, n: u32) -> Result<Vec<LoadResult>> {
    let dir = env.runs_dir.join(format!("latency-{n}"));
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    let mut admin = Conn::new(env.mysql("admin", "admin-pw", Some(SCHEMA))).await?;
    admin
        .query_drop(
            "CREATE TABLE IF NOT EXISTS benchcdc.lat (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             phase INT NOT NULL, ts_us BIGINT NOT NULL, note VARCHAR(64) NOT NULL) ENGINE=InnoDB",
        )
        .await?;
    // Sluice starts at the head, after this.
    admin.query_drop("TRUNCATE TABLE benchcdc.lat").await?;
    let topic = format!("bench-{}-latency-{n}", env.stamp).to_lowercase();
    broker::create_topic(&env.kafka, &topic).await?;
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        toml(
            env,
            &Settings {
                table: "lat",
                state_dir: &state,
                topic: Some(&topic),
                transforms: &[],
                checkpoint_interval_ms: None,
                exactly_once: true,
            },
        ),
    )?;
    let mut sluice = Sluice::spawn_logging(env, &dir, &config, "info,sluice::acked=debug")?;
    let sluice_log = sluice.stderr.clone();
    let ready = Instant::now() + Duration::from_secs(60);
    while sluice.streaming_since().is_none() {
        sluice.check_alive()?;
        if Instant::now() > ready {
            bail!(
                "sluice did not start streaming within 60 s; see {}",
                sluice.stderr.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (brokers, topic, stop) = (env.kafka.clone(), topic.clone(), stop.clone());
        std::thread::spawn(move || consume(&brokers, &topic, &stop))
    };
    let warmup = Duration::from_secs(args.warmup_seconds);
    let measure = Duration::from_secs(args.latency_seconds);
    let mut written = Vec::new();
    for (i, (rows_per_commit, per_s)) in LOADS.iter().enumerate() {
        let load = i as i64 + 1;
        let target = rows_per_commit * per_s;
        log(format!(
            "  load {load}: {per_s} commits/s of {rows_per_commit} row(s) = {target} rows/s, {}+{} s",
            args.warmup_seconds, args.latency_seconds
        ));
        let services = env.services.start();
        let cpu0 = sys::cpu_seconds(sluice.pid);
        let (commits, rows, secs) =
            generate(&mut admin, load, *rows_per_commit, *per_s, warmup, measure).await?;
        let cpu = sys::cpu_seconds(sluice.pid).zip(cpu0).map(|(b, a)| b - a);
        let (mariadbd, broker) = services.since();
        written.push(Written {
            load,
            rows_per_commit: *rows_per_commit,
            target,
            commits,
            rows,
            secs,
            cpu,
            mariadbd,
            broker,
            rss: sys::vm_hwm_mib(sluice.pid),
        });
        sluice.check_alive()?;
    }
    // Let the last rows arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = admin.disconnect().await;
    let stopped = sluice.stop().await?;
    stop.store(true, Ordering::Relaxed);
    let seen = consumer
        .join()
        .map_err(|_| anyhow::anyhow!("the latency consumer panicked"))??;
    broker::delete_topic(env, &topic).await;
    let acks = acknowledgements(&sluice_log)?;

    let mut out = Vec::new();
    for w in written {
        let Written {
            load,
            rows_per_commit,
            target,
            commits,
            rows,
            secs,
            cpu,
            mariadbd,
            broker,
            rss,
        } = w;
        let measured: Vec<&Seen> = seen.iter().filter(|r| r.phase == 10 * load + 1).collect();
        let mut read: Vec<i64> = measured.iter().map(|r| r.read).collect();
        read.sort_unstable();
        let mut to_producer: Vec<i64> = measured
            .iter()
            .filter(|r| r.created != i64::MIN)
            .map(|r| r.created)
            .collect();
        to_producer.sort_unstable();
        // Acknowledgements are in binlog order, so the first past a row is found by bisection
        // (file names of one server sort in order). Strictly past: a row's `sluice.pos` can be
        // its transaction's start, which is the previous transaction's end, whose
        // acknowledgement came first.
        let mut lat: Vec<i64> = measured
            .iter()
            .filter_map(|r| {
                let (file, pos) = r.at.as_ref()?;
                let i = acks.partition_point(|(f, p, _)| (f.as_str(), *p) <= (file.as_str(), *pos));
                acks.get(i).map(|(_, _, t)| t - r.committed)
            })
            .collect();
        lat.sort_unstable();
        if lat.len() < measured.len() {
            log(format!(
                "  load {load}: {} of {} rows read have no acknowledgement line at or after them",
                measured.len() - lat.len(),
                measured.len()
            ));
        }
        if (read.len() as u64) < rows {
            log(format!(
                "  load {load}: the consumer read {} of the {rows} measured rows",
                read.len()
            ));
        }
        out.push(LoadResult {
            label: format!(
                "{} rows/s ({} commits/s of {rows_per_commit})",
                target,
                target / rows_per_commit
            ),
            target_rows_per_s: target,
            rows_per_commit,
            achieved_commits_per_s: commits as f64 / secs,
            achieved_rows_per_s: rows as f64 / secs,
            measured_rows: rows,
            read_rows: read.len() as u64,
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
            max_ms: lat.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
            read_p50_ms: percentile(&read, 0.50),
            read_p99_ms: percentile(&read, 0.99),
            to_producer_p50_ms: percentile(&to_producer, 0.50),
            to_producer_p99_ms: percentile(&to_producer, 0.99),
            peak_rss_mib: rss.or(stopped.peak_rss_mib),
            cpu_s: cpu,
            mariadbd_cpu_s: mariadbd,
            broker_cpu_s: broker,
            run: n,
            dir: dir.to_string_lossy().into_owned(),
        });
        let r = out.last().context("just pushed")?;
        log(format!(
            "  load {load}: {:.0} rows/s achieved; commit → acknowledged p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; → readable p50 {:.1}, p99 {:.1} ms; over {} rows",
            r.achieved_rows_per_s, r.p50_ms, r.p99_ms, r.max_ms, r.read_p50_ms, r.read_p99_ms, r.read_rows
        ));
    }
    Ok(out)
}
