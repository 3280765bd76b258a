//! What an operator watches: Prometheus metrics and a health state, served on `METRICS_ADDR`.
//!
//! Design note: the pipeline's stages report through the free functions of `metrics` (counts
//! per batch, never per event) and `health` (the pipeline's phase). Both are process-wide:
//! `metrics` records nothing until [`install`] ran (only `sluice run` with `METRICS_ADDR`
//! does), so a stage pays one atomic load per batch when metrics are off; the health state is
//! always kept (it is a few words). `server` answers `GET /metrics` (the Prometheus text
//! format, from `prometheus-client`) and `GET /health` (200 while the pipeline streams or takes
//! its snapshot, 503 with the reason while it connects, reconnects, stops or is halted by a
//! transform failure). Series names are a promise to dashboards: they are listed in the README
//! and checked by the end-to-end tests, so rename none of them.

pub(crate) mod health;
pub(crate) mod metrics;
mod server;

pub(crate) use health::Phase;
pub use server::{serve, ServeError};

/// Turns metrics on for this process (idempotent). Until then every recording is a no-op.
pub fn install() {
    metrics::install();
}
