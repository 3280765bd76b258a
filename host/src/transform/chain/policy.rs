//! Failure policies: what a stage does with an event its transform failed on (`halt` names the
//! event and stops; `skip` drops it; `dead_letter` routes the original to the dead-letter
//! topic), and finding that event inside a failed call.

use super::call::Selected;
use super::edits::Budget;
use super::stage::Stage;
use super::{attempt, CallError};
use crate::event::{ChangeEvent, Route};
use crate::transform::spec::FailurePolicy;

/// A failure that stops the pipeline (policy `halt`, or a transform that cannot even start).
#[derive(Debug, thiserror::Error)]
#[error("transform {name} failed on the event at {position} ({table}): {message}. The position was not advanced; fix the transform or its config (or set on_error = \"skip\" or \"dead_letter\") and restart")]
pub struct HaltError {
    pub name: String,
    pub position: String,
    pub table: String,
    pub message: String,
}

pub(super) fn halt(stage: &Stage, ev: &ChangeEvent, message: String) -> HaltError {
    HaltError {
        name: stage.spec.name.clone(),
        position: ev.position.to_string(),
        table: ev.meta.qualified_name(),
        message,
    }
}

/// Finds the event a failed call (under `halt`) failed on: re-runs the call one event at a time
/// on a fresh instance and returns the first event that fails alone, with its error. If none
/// does (a transform whose failure depends on earlier events), the call's first event and its
/// error. The instance is dropped afterwards: it has seen part of a batch that is not published.
pub(super) fn locate(
    stage: &mut Stage,
    events: &[ChangeEvent],
    ids: &[u32],
    chunk: &[Selected],
    error: CallError,
    budget: &Budget,
) -> (usize, String) {
    let fresh = |stage: &mut Stage| {
        stage.live = None;
        stage.sent.clear();
    };
    fresh(stage);
    let mut budget = Budget {
        left: budget.left,
        input_bytes: budget.input_bytes,
    };
    let mut found = None;
    for one in chunk.chunks(1) {
        if let Err(e) = attempt(stage, events, ids, one, &mut budget) {
            found = Some((one[0].0, e.to_string()));
            break;
        }
    }
    fresh(stage);
    found.unwrap_or_else(|| {
        (
            chunk[0].0,
            format!(
                "{error} (in a call of {} events from this one; no event fails alone)",
                chunk.len()
            ),
        )
    })
}

/// Applies the failure policy to one event that the transform could not handle.
pub(super) fn fail_one(stage: &mut Stage, ev: &ChangeEvent, message: &str) -> Vec<ChangeEvent> {
    match stage.spec.on_error {
        FailurePolicy::Skip | FailurePolicy::Halt => {
            stage.stats.skipped += 1;
            tracing::warn!(transform = %stage.spec.name, position = %ev.position, table = %ev.meta.qualified_name(), error = %message, "skipped an event the transform failed on");
            Vec::new()
        }
        FailurePolicy::DeadLetter => {
            stage.stats.dead_lettered += 1;
            tracing::warn!(transform = %stage.spec.name, position = %ev.position, error = %message, "sent an event to the dead-letter topic");
            let mut dl = ev.clone();
            let mut headers = vec![
                ("sluice.error".to_owned(), message.as_bytes().to_vec()),
                (
                    "sluice.transform".to_owned(),
                    stage.spec.name.as_bytes().to_vec(),
                ),
                (
                    "sluice.transform.hash".to_owned(),
                    stage.module.hash.as_bytes().to_vec(),
                ),
            ];
            if let Some(r) = &ev.route {
                headers.extend(r.headers.iter().cloned());
            }
            dl.route = Some(Box::new(Route {
                topic: stage.spec.dead_letter_topic.clone(),
                key: None,
                headers,
                payload: None,
                dead_letter: true,
            }));
            vec![dl]
        }
    }
}
