//! WebAssembly transforms: the stage between the source and the sink.
//!
//! Design note: authors write transforms against `wit/transform.wit` (usually through the
//! `sluice-guest` SDK). `engine` owns wasmtime (compilation cache, sandbox, limits), `chain`
//! runs batches through the configured transforms with their failure policies, and `reload`
//! swaps in new versions of changed `.wasm` files at batch boundaries. `spec` is what the
//! config says of each transform.

// `chain` still spells its crate-internal items `pub`, and re-exports limits only for its doc
// links; allowed here until it follows the crate's `pub(crate)` rule.
pub(crate) mod chain;
pub(crate) mod engine;
pub(crate) mod reload;
mod spec;
pub mod template;

pub(crate) use chain::Stage;
pub use chain::{build_chain, Chain, HaltError, Stats};
pub use engine::{EngineError, Limits, TransformEngine};
pub(crate) use spec::FileTransform;
pub use spec::{FailurePolicy, TransformSpec};
