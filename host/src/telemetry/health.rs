//! The pipeline's phase, as `GET /health` reports it.
//!
//! Design note: the supervisor and the source set the phase as they go (`set`); the server
//! reads it (`report`). An orchestrator's readiness or liveness probe needs a yes or no and
//! a reason: streaming and taking the snapshot are healthy (200); connecting, reconnecting
//! after a failure, stopping, and halted by a transform failure are not (503), with the error
//! as the reason. A halt keeps the process (and this answer) up only under hot reload, where a
//! fixed transform file resumes the pipeline; otherwise the process exits with the error.

use std::sync::Mutex;
use std::time::Instant;

/// What the pipeline is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Loading, checking, connecting: not publishing yet.
    Connecting,
    /// Reading the initial snapshot.
    Snapshotting,
    /// Streaming the binlog.
    Streaming,
    /// Waiting to restart the stages after a failure.
    Reconnecting,
    /// Stopped by a transform failure; waiting for a fixed version of its file.
    Halted,
    /// Draining after SIGTERM/SIGINT.
    Stopping,
}

impl Phase {
    /// The word `/health` answers with.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Snapshotting => "snapshotting",
            Phase::Streaming => "streaming",
            Phase::Reconnecting => "reconnecting",
            Phase::Halted => "halted",
            Phase::Stopping => "stopping",
        }
    }

    /// Whether a probe should count the pipeline as working.
    pub(crate) fn is_healthy(self) -> bool {
        matches!(self, Phase::Snapshotting | Phase::Streaming)
    }
}

struct State {
    phase: Phase,
    reason: Option<String>,
    since: Instant,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Option<State>) -> T) -> T {
    match STATE.lock() {
        Ok(mut s) => f(&mut s),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// Enters `phase` (the reason: why it is unhealthy, if it is). The same phase again keeps its
/// start time, and its reason unless a new one is given.
/// `Stopping` is final: nothing that runs during the drain moves the phase back.
pub(crate) fn set(phase: Phase, reason: Option<String>) {
    with(|s| match s {
        Some(st) if st.phase == Phase::Stopping => {}
        Some(st) if st.phase == phase => {
            if reason.is_some() {
                st.reason = reason;
            }
        }
        _ => {
            *s = Some(State {
                phase,
                reason,
                since: Instant::now(),
            })
        }
    });
}

/// The current phase, its reason and how long it has lasted, in seconds.
pub(crate) fn current() -> (Phase, Option<String>, f64) {
    with(|s| match s {
        Some(st) => (
            st.phase,
            st.reason.clone(),
            st.since.elapsed().as_secs_f64(),
        ),
        None => (Phase::Connecting, None, 0.0),
    })
}

/// `/health`'s status code and JSON body.
pub(crate) fn report() -> (u16, String) {
    let (phase, reason, secs) = current();
    let mut body = serde_json::json!({
        "status": phase.as_str(),
        "since_seconds": (secs * 10.0).round() / 10.0,
    });
    if let Some(r) = reason {
        body["reason"] = serde_json::Value::String(r);
    }
    let code = if phase.is_healthy() { 200 } else { 503 };
    (code, body.to_string())
}
