//! The Prometheus series, and the functions the stages record them with.
//!
//! Design note: one [`Metrics`] per process, created by [`install`]; before that, and in every
//! command but `sluice run` with `METRICS_ADDR`, each function here returns after one atomic
//! load. Stages call them once per batch (or per transaction, per reload, per restart) with
//! counts they already have, never once per event. `sluice_source_lag_seconds` is computed
//! when scraped (`Metrics::render`): 0 while the server's heartbeats say the stream is at its
//! head and nothing is in flight; otherwise now minus the latest of the last acknowledged
//! commit, the last time the stream was at its head, and the process's start. So a stalled
//! sink shows a growing lag, the first transaction after an idle hour does not show an hour,
//! and a long first snapshot shows the time since the start.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransformLabel {
    transform: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabel {
    file: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every series Sluice exports (names in the README's operations section).
pub(crate) struct Metrics {
    registry: Registry,
    events_read: Family<TableLabel, Counter>,
    events_published: Family<TopicLabel, Counter>,
    events_dropped: Family<TransformLabel, Counter>,
    events_dead_lettered: Family<TransformLabel, Counter>,
    transform_errors: Family<TransformLabel, Counter>,
    transform_seconds: HistogramFamily<TransformLabel>,
    transform_generation: Family<TransformLabel, Gauge>,
    delivery_errors: Counter,
    restarts: Family<ReasonLabel, Counter>,
    lag: Gauge<f64, AtomicU64>,
    binlog_position: Family<FileLabel, Gauge>,
    /// The file `binlog_position` has a series for (one at a time).
    position_file: Mutex<String>,
    snapshot_rows: Family<TableLabel, Counter>,
    /// The highest row count each snapshot table reached in this process.
    snapshot_seen: Mutex<std::collections::HashMap<String, u64>>,
    snapshot_estimate: Family<TableLabel, Gauge>,
    /// The lag's inputs (see the module's note).
    acked_commit_secs: AtomicU64,
    heartbeat_ms: AtomicU64,
    /// The last time the stream was known to be at its head (a heartbeat with nothing in
    /// flight): after an idle hour or an outage, the lag counts from there, not from the last
    /// commit.
    head_ms: AtomicU64,
    entered_ms: AtomicU64,
    in_flight: AtomicI64,
    started_ms: u64,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Creates the series (once per process).
pub(super) fn install() {
    METRICS.get_or_init(Metrics::new);
}

fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Whether metrics are recorded (so a caller can skip preparing counts).
pub(crate) fn enabled() -> bool {
    METRICS.get().is_some()
}

fn transform_histogram() -> Histogram {
    // 10 µs to about 2.6 s: a batch through a cheap filter up to the CPU deadline's range.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            events_read: Family::default(),
            events_published: Family::default(),
            events_dropped: Family::default(),
            events_dead_lettered: Family::default(),
            transform_errors: Family::default(),
            transform_seconds: Family::new_with_constructor(transform_histogram),
            transform_generation: Family::default(),
            delivery_errors: Counter::default(),
            restarts: Family::default(),
            lag: Gauge::default(),
            binlog_position: Family::default(),
            position_file: Mutex::new(String::new()),
            snapshot_rows: Family::default(),
            snapshot_seen: Mutex::new(std::collections::HashMap::new()),
            snapshot_estimate: Family::default(),
            acked_commit_secs: AtomicU64::new(0),
            heartbeat_ms: AtomicU64::new(0),
            head_ms: AtomicU64::new(0),
            entered_ms: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            started_ms: now_ms(),
        };
        // prometheus-client adds `_total` to counters' names.
        registry.register(
            "sluice_events_read",
            "Row events read from the binlog or the snapshot, per table (schema.table)",
            m.events_read.clone(),
        );
        registry.register(
            "sluice_events_published",
            "Messages acknowledged by the sink, per topic (\"stdout\" for the stdout sink; a table-level truncate sent to every partition counts once per partition)",
            m.events_published.clone(),
        );
        registry.register(
            "sluice_events_dropped",
            "Events a transform removed (its drops, and failures skipped under on_error = \"skip\")",
            m.events_dropped.clone(),
        );
        registry.register(
            "sluice_events_dead_lettered",
            "Events a transform failed on and sent to its dead-letter topic",
            m.events_dead_lettered.clone(),
        );
        registry.register(
            "sluice_transform_errors",
            "Failed guest calls per transform (a trap, an error it returned, or an answer the host refused), whatever its on_error policy did next",
            m.transform_errors.clone(),
        );
        registry.register(
            "sluice_transform_seconds",
            "Time a transform took per batch",
            m.transform_seconds.clone(),
        );
        registry.register(
            "sluice_transform_generation",
            "Version of each transform in this process: 1 at start, plus one per hot reload swapped in (or rolled back)",
            m.transform_generation.clone(),
        );
        registry.register(
            "sluice_kafka_delivery_errors",
            "Messages Kafka did not acknowledge (a refusal as too large that goes to the dead-letter topic counts too)",
            m.delivery_errors.clone(),
        );
        registry.register(
            "sluice_pipeline_restarts",
            "Restarts of the pipeline's stages from the last acknowledged position, per reason",
            m.restarts.clone(),
        );
        registry.register(
            "sluice_source_lag_seconds",
            "Now minus the commit time of the last acknowledged transaction; 0 at the head with nothing in flight",
            m.lag.clone(),
        );
        registry.register(
            "sluice_binlog_position",
            "Offset of the last acknowledged position in its binlog file",
            m.binlog_position.clone(),
        );
        registry.register(
            "sluice_snapshot_rows",
            "Snapshot rows read, per table (a resumed read counts the rows acknowledged before it)",
            m.snapshot_rows.clone(),
        );
        registry.register(
            "sluice_snapshot_rows_estimate",
            "The server's estimate of each snapshot table's rows",
            m.snapshot_estimate.clone(),
        );
        Metrics { registry, ..m }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Metrics {
    /// `n` events of `table` (`schema.table`) read.
    fn events_read(&self, table: &str, n: u64) {
        self.events_read
            .get_or_create(&TableLabel {
                table: table.to_owned(),
            })
            .inc_by(n);
    }

    /// `n` events acknowledged on `topic`.
    fn events_published(&self, topic: &str, n: u64) {
        self.events_published
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .inc_by(n);
    }

    /// One batch through transform `name`: what it removed and dead-lettered, and how long it took.
    fn transform_batch(&self, name: &str, counts: TransformCounts, seconds: f64) {
        let TransformCounts {
            dropped,
            dead_lettered,
            errors,
        } = counts;
        let l = TransformLabel {
            transform: name.to_owned(),
        };
        if dropped > 0 {
            self.events_dropped.get_or_create(&l).inc_by(dropped);
        }
        if dead_lettered > 0 {
            self.events_dead_lettered
                .get_or_create(&l)
                .inc_by(dead_lettered);
        }
        if errors > 0 {
            self.transform_errors.get_or_create(&l).inc_by(errors);
        }
        self.transform_seconds.get_or_create(&l).observe(seconds);
    }

    /// Transform `name` is loaded: its generation is at least 1.
    fn transform_loaded(&self, name: &str) {
        let g = self.transform_generation.get_or_create(&TransformLabel {
            transform: name.to_owned(),
        });
        if g.get() < 1 {
            g.set(1);
        }
    }

    /// Transform `name` changed version `n` times (hot reloads swapped in, or rolled back).
    fn transform_swapped(&self, name: &str, n: u64) {
        self.transform_generation
            .get_or_create(&TransformLabel {
                transform: name.to_owned(),
            })
            .inc_by(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A message Kafka did not acknowledge.
    fn delivery_error(&self) {
        self.delivery_errors.inc();
    }

    /// The stages restart, for `reason` (a short word: `source`, `sink`, `snapshot`, `purged`).
    fn restart(&self, reason: &str) {
        self.restarts
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A new life of the stages: nothing is in flight.
    fn new_life(&self) {
        self.in_flight.store(0, Ordering::Relaxed);
    }

    /// A batch entered the pipeline.
    fn batch_entered(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.entered_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// A batch was acknowledged; `at` is the streamed position it made durable, if any.
    fn batch_acked(&self, at: Option<&crate::state::BinlogPosition>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Some(p) = at else { return };
        if p.timestamp > 0 {
            self.acked_commit_secs
                .store(u64::from(p.timestamp), Ordering::Relaxed);
        }
        let mut file = match self.position_file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *file != p.file {
            if !file.is_empty() {
                self.binlog_position.remove(&FileLabel {
                    file: std::mem::take(&mut *file),
                });
            }
            file.clone_from(&p.file);
        }
        self.binlog_position
            .get_or_create(&FileLabel {
                file: p.file.clone(),
            })
            .set(i64::try_from(p.pos).unwrap_or(i64::MAX));
    }

    /// The server sent a heartbeat: it had nothing else to send, so the stream is at its head.
    fn heartbeat(&self) {
        let now = now_ms();
        self.heartbeat_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) <= 0
            && now >= self.entered_ms.load(Ordering::Relaxed)
        {
            self.head_ms.store(now, Ordering::Relaxed);
        }
    }

    /// The snapshot of `table` has read `rows` rows in all (a resumed read starts at the rows
    /// acknowledged before): the counter moves up to it, never back.
    fn snapshot_rows(&self, table: &str, rows: u64) {
        let mut seen = match self.snapshot_seen.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let last = seen.entry(table.to_owned()).or_insert(0);
        if rows > *last {
            self.snapshot_rows
                .get_or_create(&TableLabel {
                    table: table.to_owned(),
                })
                .inc_by(rows - *last);
            *last = rows;
        }
    }

    /// The server's estimate of `table`'s rows, at the start of its snapshot.
    fn snapshot_estimate(&self, table: &str, rows: u64) {
        self.snapshot_estimate
            .get_or_create(&TableLabel {
                table: table.to_owned(),
            })
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }
}

/// What one batch did in one transform.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TransformCounts {
    /// Events it removed (drops, and failures skipped).
    pub(crate) dropped: u64,
    pub(crate) dead_lettered: u64,
    /// Failed calls.
    pub(crate) errors: u64,
}

/// Each recording as a free function for the stages: [`Metrics`]'s method of the same name
/// (whose doc says what it records) once [`install`] ran, nothing before.
macro_rules! recorders {
    ($(fn $name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            pub(crate) fn $name($($arg: $ty),*) {
                if let Some(m) = get() {
                    m.$name($($arg),*);
                }
            }
        )*
    };
}

recorders! {
    fn events_read(table: &str, n: u64);
    fn events_published(topic: &str, n: u64);
    fn transform_batch(name: &str, counts: TransformCounts, seconds: f64);
    fn transform_loaded(name: &str);
    fn transform_swapped(name: &str, n: u64);
    fn delivery_error();
    fn restart(reason: &str);
    fn new_life();
    fn batch_entered();
    fn batch_acked(at: Option<&crate::state::BinlogPosition>);
    fn heartbeat();
    fn snapshot_rows(table: &str, rows: u64);
    fn snapshot_estimate(table: &str, rows: u64);
}

/// How long a heartbeat counts as "at the head": the server sends one each second of silence.
const HEAD_MS: u64 = 3_000;

/// What the lag is computed from (see the module's note); times in unix ms.
#[derive(Debug, Clone, Copy)]
struct LagInputs {
    now: u64,
    /// Commit time (unix seconds) of the last acknowledged transaction; 0: none yet.
    commit_secs: u64,
    heartbeat: u64,
    head: u64,
    entered: u64,
    in_flight: i64,
    started: u64,
}

/// The lag, in seconds: 0 at the head (a recent heartbeat, after the last batch entered, and
/// nothing in flight); otherwise now minus the latest of the last acknowledged commit, the
/// last time the stream was at its head, and the process's start.
fn lag_seconds(l: LagInputs) -> f64 {
    let at_head = l.in_flight <= 0
        && l.heartbeat > 0
        && l.heartbeat >= l.entered
        && l.now.saturating_sub(l.heartbeat) <= HEAD_MS;
    if at_head {
        return 0.0;
    }
    let since = (l.commit_secs * 1000).max(l.head).max(l.started);
    l.now.saturating_sub(since) as f64 / 1000.0
}

impl Metrics {
    /// The Prometheus text of every series, with the lag computed now.
    fn render(&self) -> String {
        let lag = lag_seconds(LagInputs {
            now: now_ms(),
            commit_secs: self.acked_commit_secs.load(Ordering::Relaxed),
            heartbeat: self.heartbeat_ms.load(Ordering::Relaxed),
            head: self.head_ms.load(Ordering::Relaxed),
            entered: self.entered_ms.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            started: self.started_ms,
        });
        self.lag.set(lag);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The Prometheus text of every series, or `None` when metrics are off.
pub(crate) fn render() -> Option<String> {
    get().map(Metrics::render)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_at_the_head_and_counts_from_the_latest_known_point() {
        let now = 1_000_000_000_000;
        let base = LagInputs {
            now,
            commit_secs: 999_999_990, // 10 s ago
            heartbeat: now - 1000,
            head: now - 1000,
            entered: now - 5000,
            in_flight: 0,
            started: now - 3_600_000,
        };
        // A heartbeat a second ago, after the last batch, nothing in flight: at the head.
        assert_eq!(lag_seconds(base), 0.0);
        // A batch in flight (the sink is stalled) since the last commit: 10 s.
        let stalled = LagInputs {
            entered: now - 500,
            in_flight: 1,
            head: now - 20_000,
            ..base
        };
        assert_eq!(lag_seconds(stalled), 10.0);
        // The first transaction after an idle hour: from the last time at the head, not from
        // the commit an hour ago.
        let after_idle = LagInputs {
            commit_secs: 999_996_400,
            entered: now - 300,
            in_flight: 1,
            head: now - 1500,
            ..base
        };
        assert_eq!(lag_seconds(after_idle), 1.5);
        // Nothing acknowledged and never at the head (a long first snapshot): from the start.
        let snapshot = LagInputs {
            commit_secs: 0,
            heartbeat: 0,
            head: 0,
            in_flight: 3,
            started: now - 42_000,
            ..base
        };
        assert_eq!(lag_seconds(snapshot), 42.0);
    }

    #[test]
    fn the_series_keep_their_names() {
        let m = Metrics::new();
        m.events_read("metrics_test.t", 3);
        m.events_published("metrics-test", 2);
        m.transform_batch(
            "metrics-test-filter",
            TransformCounts {
                dropped: 1,
                dead_lettered: 0,
                errors: 2,
            },
            0.001,
        );
        m.transform_loaded("metrics-test-filter");
        m.transform_swapped("metrics-test-filter", 1);
        m.transform_loaded("metrics-test-filter");
        m.delivery_error();
        m.restart("metrics-test");
        m.snapshot_rows("metrics_test.t", 3);
        m.snapshot_rows("metrics_test.t", 5);
        // A restart of the stages reads again from an earlier acknowledged row.
        m.snapshot_rows("metrics_test.t", 4);
        m.snapshot_estimate("metrics_test.t", 7);
        m.batch_entered();
        m.batch_acked(Some(&crate::state::BinlogPosition {
            file: "mysql-bin.000001".into(),
            pos: 4,
            gtid: None,
            timestamp: 1,
        }));
        m.batch_entered();
        m.batch_acked(Some(&crate::state::BinlogPosition {
            file: "mysql-bin.000002".into(),
            pos: 120,
            gtid: None,
            timestamp: 2,
        }));
        let text = m.render();
        for line in [
            "sluice_events_read_total{table=\"metrics_test.t\"} 3",
            "sluice_events_published_total{topic=\"metrics-test\"} 2",
            "sluice_events_dropped_total{transform=\"metrics-test-filter\"} 1",
            "sluice_transform_errors_total{transform=\"metrics-test-filter\"} 2",
            "sluice_transform_seconds_count{transform=\"metrics-test-filter\"} 1",
            "sluice_transform_generation{transform=\"metrics-test-filter\"} 2",
            "sluice_kafka_delivery_errors_total 1",
            "sluice_pipeline_restarts_total{reason=\"metrics-test\"} 1",
            "sluice_binlog_position{file=\"mysql-bin.000002\"} 120",
            "sluice_snapshot_rows_total{table=\"metrics_test.t\"} 5",
            "sluice_snapshot_rows_estimate{table=\"metrics_test.t\"} 7",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("sluice_source_lag_seconds "), "{text}");
        // One file at a time: the old file's series is gone.
        assert!(!text.contains("mysql-bin.000001"), "{text}");
    }
}
