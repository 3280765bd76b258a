//! Encoders turn a typed [`ChangeEvent`](crate::event::ChangeEvent) into bytes for a sink.
//!
//! Design note: encoding happens exactly once per event, in the sink stage. The contract's
//! JSON (`contract_json`) is the seed format that the Python app's consumers read; other
//! envelopes can be added beside it without touching the sources.

pub mod contract_json;

pub(crate) use contract_json::{encode_key, ValueEncoder};
pub use contract_json::{encode_value, KeyMode};
