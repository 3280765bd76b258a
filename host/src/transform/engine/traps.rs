//! What a trap or a failed instantiation means, in words an operator can act on.
//!
//! Design note: a trap is classified by type, never by its text: [`Trap::classify`] looks for
//! the sandbox's own errors in the trap (`downcast_ref`: [`WouldBlock`], [`LimitExceeded`],
//! wasmtime's `Trap::Interrupt` for the CPU deadline) and then at what the store's
//! [`SandboxLimiter`](super::sandbox::SandboxLimiter) recorded during the call. The message
//! keeps the trap's cause and the first [`TRAP_FRAMES`] frames of its wasm backtrace on one
//! line. Only [`describe_instantiation`] still reads wasmtime's text: the structure limits
//! (memories, tables, core instances) are checked by wasmtime itself when it compiles or
//! instantiates, with no typed error to find.

use std::time::Duration;

use super::sandbox::{LimitExceeded, WouldBlock};
use super::{
    Limits, MAX_CORE_INSTANCES, MAX_LOG_BYTES, MAX_MEMORIES, MAX_TABLES, MAX_TABLE_ELEMENTS,
};

/// Why a guest call trapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Trap {
    /// It ran past its CPU deadline (epoch interruption).
    #[error("exceeded its CPU deadline of {0:?} per batch and was stopped")]
    CpuDeadline(Duration),
    /// It broke a sandbox limit (memory, table elements).
    #[error("{0} and was stopped")]
    Limit(LimitExceeded),
    /// It called a host function that would have waited.
    #[error(transparent)]
    WouldBlock(WouldBlock),
    /// Any other trap: a panic, `unreachable`, an out-of-bounds access.
    #[error("trapped")]
    Guest,
}

impl Trap {
    /// Classifies `e`, a call's trap. `recorded`: the limit the store's limiter saw broken
    /// during the call, for a trap whose error chain lost the limiter's error.
    pub(crate) fn classify(
        e: &wasmtime::Error,
        limits: Limits,
        recorded: Option<LimitExceeded>,
    ) -> Trap {
        if let Some(w) = e.downcast_ref::<WouldBlock>() {
            return Trap::WouldBlock(w.clone());
        }
        if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
            return Trap::CpuDeadline(limits.cpu);
        }
        match e.downcast_ref::<LimitExceeded>().cloned().or(recorded) {
            Some(limit) => Trap::Limit(limit),
            None => Trap::Guest,
        }
    }

    /// The message for `e` classified as `self`: the classification, then (but for the
    /// deadline and a refused wait, which say all) the trap's cause and backtrace.
    pub(crate) fn describe(&self, e: &wasmtime::Error) -> String {
        match self {
            Trap::CpuDeadline(_) | Trap::WouldBlock(_) => self.to_string(),
            Trap::Limit(_) => format!("{self} ({})", trap_text(e)),
            Trap::Guest => format!("{self}: {}", trap_text(e)),
        }
    }
}

/// Why a component could not be compiled or instantiated, naming the sandbox limit it broke
/// (the pooling allocator checks the structure limits when compiling, wasmtime checks the
/// limiter's counts when instantiating, and the limiter caps the initial memory and tables).
pub(super) fn describe_instantiation(e: &wasmtime::Error) -> String {
    if let Some(limit) = e.downcast_ref::<LimitExceeded>() {
        return format!("{limit} when instantiated");
    }
    let text = format!("{e:#}");
    let broke = [
        "count too high",
        "exceeds the configured maximum",
        "does not fit in pooling",
    ]
    .iter()
    .any(|k| text.contains(k));
    if !broke {
        return text;
    }
    let limit = if text.contains("memor") {
        format!("at most {MAX_MEMORIES} linear memory")
    } else if text.contains("table") {
        format!("at most {MAX_TABLES} tables of {MAX_TABLE_ELEMENTS} elements")
    } else {
        format!("at most {MAX_CORE_INSTANCES} core instances")
    };
    format!("the component breaks the sandbox's structure limits ({limit} per transform): {text}")
}

/// Frames of a trap's wasm backtrace kept in its message; the rest are counted.
pub(crate) const TRAP_FRAMES: usize = 3;

/// `text` on one line (newlines become spaces), cut at about `max` bytes.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > max {
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

/// A trap's message with the guest's panic message, when it logged one, first.
pub(super) fn with_panic(panic: Option<String>, trap: String) -> String {
    match panic {
        Some(p) => format!("{p} ({trap})"),
        None => trap,
    }
}

/// A trap's text: its cause, then the first [`TRAP_FRAMES`] frames of the wasm backtrace on one
/// line, and how many frames were left out.
fn trap_text(e: &wasmtime::Error) -> String {
    let cause = e.root_cause().to_string();
    let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return one_line(&format!("{e:#}"), 2 * MAX_LOG_BYTES);
    };
    let text = bt.to_string();
    // Frame lines start with "N: " after indentation; lines after them belong to that frame.
    let mut frames: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let starts_frame = t
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if starts_frame {
            frames.push(t.to_owned());
        } else if let Some(last) = frames.last_mut() {
            if !t.is_empty() {
                last.push(' ');
                last.push_str(t);
            }
        }
    }
    let total = frames.len();
    // The panic and abort machinery of std sits on top; the guest's own frames say more.
    let machinery = |f: &str| {
        [
            "3std",
            "4core",
            "5alloc",
            "abort",
            "panic",
            "__rust",
            "rust_begin_unwind",
        ]
        .iter()
        .any(|k| f.contains(k))
    };
    let skipped = frames.iter().take_while(|f| machinery(f)).count();
    let skipped = if skipped == total { 0 } else { skipped };
    let kept: Vec<String> = frames
        .iter()
        .skip(skipped)
        .take(TRAP_FRAMES)
        .map(|f| f.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut out = format!("{cause}; wasm backtrace: ");
    if skipped > 0 {
        out.push_str(&format!("({skipped} frames of std's panic handling) | "));
    }
    out.push_str(&kept.join(" | "));
    let rest = total - skipped - kept.len();
    if rest > 0 {
        out.push_str(&format!(" | … {rest} more frames"));
    }
    out
}
