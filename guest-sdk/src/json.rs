//! The contract's JSON form of values and events (`CONTRACT.md`), for transforms that build
//! their own payloads (such as a Debezium-style envelope) and for the test harness. These are
//! the host's own forms: both come from `sluice-contract`.

pub use sluice_contract::format::base64;
pub use sluice_contract::json::{event, from_json, value, EventJson};
