//! Sluice: MySQL/MariaDB change-data-capture into Kafka, through WebAssembly transforms.
//!
//! The crate is organised by pipeline stage (see `docs/ARCHITECTURE.md`):
//! - [`config`]: the contract's environment variables and the TOML file;
//! - [`source`]: the binlog stream (and the snapshot), decoded into typed events;
//! - [`event`]: the typed change event every stage shares;
//! - [`transform`]: the WebAssembly transform engine, chain and hot reload;
//! - [`encode`]: the contract's JSON, produced once, in the sink;
//! - [`sink`]: Kafka and stdout;
//! - [`state`]: the position file;
//! - [`pipeline`]: the stages, their channels and the restart supervisor;
//! - [`check`]: the preflight behind `sluice check`.

// Errors here stop the pipeline and carry what the operator needs (file, offsets, statements,
// table names), so some are large; they are cold, and boxing each would only obscure them.
#![allow(clippy::result_large_err)]

pub mod check;
pub mod config;
pub mod encode;
pub mod event;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod state;
pub mod transform;
