//! What a running snapshot tells the operator: per table, rows done out of InnoDB's estimate,
//! the rate and the time left.
//!
//! Design note: on a terminal, one `indicatif` bar per table; otherwise (a service, a
//! container), an INFO line `snapshot progress` every `snapshot.progress_interval_ms`, and a
//! `snapshot table done` line per table. The estimate (`TABLES.TABLE_ROWS`) can be off either
//! way: the percentage is capped at 99 until the table is done.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of the table being read.
pub(crate) struct Progress {
    interval: Duration,
    last_log: Instant,
    /// When the current table's read began in this life, and its rows then.
    started: Instant,
    rows_at_start: u64,
    bar: Option<ProgressBar>,
    tty: bool,
    /// When the server was last asked what the snapshot costs it (see [`Progress::server_due`]).
    last_server_check: Instant,
}

impl Progress {
    pub(crate) fn new(interval_ms: u64) -> Self {
        Progress {
            interval: Duration::from_millis(interval_ms),
            last_log: Instant::now(),
            started: Instant::now(),
            rows_at_start: 0,
            bar: None,
            tty: std::io::stderr().is_terminal(),
            last_server_check: Instant::now(),
        }
    }

    /// Whether it is time (once per interval) to ask the server what the snapshot costs it:
    /// the undo history its read view holds back, and sessions waiting for its metadata locks.
    pub(crate) fn server_due(&mut self) -> bool {
        if self.last_server_check.elapsed() < self.interval {
            return false;
        }
        self.last_server_check = Instant::now();
        true
    }

    /// A table's read begins (or continues, with `done` rows already acknowledged).
    pub(crate) fn table_started(&mut self, table: &str, estimate: u64, done: u64) {
        self.started = Instant::now();
        self.rows_at_start = done;
        self.last_log = Instant::now();
        tracing::info!(table, estimate, resumed_at = done, "snapshot reading table");
        crate::telemetry::metrics::snapshot_estimate(table, estimate);
        crate::telemetry::metrics::snapshot_rows(table, done);
        if self.tty {
            let bar = ProgressBar::new(estimate.max(done));
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(table.to_owned());
            bar.set_position(done);
            self.bar = Some(bar);
        }
    }

    /// `rows` of `table` are read (and sent); `done` when it is the last of them.
    pub(crate) fn rows(&mut self, table: &str, rows: u64, estimate: u64, done: bool) {
        let elapsed = self.started.elapsed();
        crate::telemetry::metrics::snapshot_rows(table, rows);
        let rate = rate(rows.saturating_sub(self.rows_at_start), elapsed);
        if let Some(bar) = &self.bar {
            if rows > bar.length().unwrap_or(0) {
                bar.set_length(rows);
            }
            bar.set_position(rows);
            if done {
                bar.finish();
            }
        }
        if done {
            self.bar = None;
            tracing::info!(
                table,
                rows,
                seconds = format!("{:.1}", elapsed.as_secs_f64()),
                rows_per_s = rate as u64,
                "snapshot table done"
            );
        } else if self.last_log.elapsed() >= self.interval {
            self.last_log = Instant::now();
            tracing::info!(
                table,
                rows,
                estimate,
                percent = percent(rows, estimate),
                rows_per_s = rate as u64,
                eta_s = eta(rows, estimate, rate).map(|d| d.as_secs()),
                "snapshot progress"
            );
        }
    }
}

/// Rows per second.
fn rate(rows: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s <= 0.0 {
        0.0
    } else {
        rows as f64 / s
    }
}

/// Percent of the estimate, at most 99 while the table is not done.
fn percent(rows: u64, estimate: u64) -> u64 {
    if estimate == 0 {
        return 99;
    }
    (rows.saturating_mul(100) / estimate).min(99)
}

/// Time left at `rate`, `None` when unknown (no rate, or past the estimate).
fn eta(rows: u64, estimate: u64, rate: f64) -> Option<Duration> {
    if rate <= 0.0 || rows >= estimate {
        return None;
    }
    Some(Duration::from_secs_f64((estimate - rows) as f64 / rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_percent_and_eta() {
        assert_eq!(rate(1000, Duration::from_secs(2)), 500.0);
        assert_eq!(rate(1000, Duration::ZERO), 0.0);
        assert_eq!(percent(250, 1000), 25);
        // InnoDB's estimate is low: never 100% before the table is done.
        assert_eq!(percent(1500, 1000), 99);
        assert_eq!(percent(5, 0), 99);
        assert_eq!(eta(250, 1000, 250.0), Some(Duration::from_secs(3)));
        assert_eq!(eta(1500, 1000, 250.0), None);
        assert_eq!(eta(0, 1000, 0.0), None);
    }
}
