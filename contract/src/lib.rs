//! # sluice-contract: what the Sluice host and its transforms agree on
//!
//! The host (`sluice`) and the transform SDK (`sluice-guest`) both need the same pure logic:
//! the typed column [`Value`] and the event [`Kind`], the contract's JSON form of them
//! (`CONTRACT.md`, "Event format"), which tables and columns a transform's [`Interest`] selects,
//! and how a transform's [`Op`]s edit an event. Keeping them here, once, is what makes the SDK's
//! native test harness behave exactly as the host does: both run this code. It has no I/O and
//! compiles to `wasm32-wasip2` as well as natively.
//!
//! Design note: the crate is data plus functions over it. The host's event type and the
//! harness's test event implement [`edit::Target`], so [`edit::apply`] edits either in place.

mod cells;
pub mod edit;
pub mod format;
pub mod interest;
pub mod json;
pub mod packed;
mod value;

pub use edit::{EditError, Op};
pub use interest::Interest;
pub use value::{Kind, Value};

/// For [`cell_codec!`]'s expansion, whatever the caller's dependencies.
#[doc(hidden)]
pub use serde_json as __serde_json;
