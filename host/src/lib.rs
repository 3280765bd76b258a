//! Sluice: MySQL/MariaDB change-data-capture into Kafka, through WebAssembly transforms.
//!
//! The crate is organised by pipeline stage (see `docs/ARCHITECTURE.md`):
//! - [`config`]: the contract's environment variables and the TOML file;
//! - [`source`]: the binlog stream (and the snapshot), decoded into typed events;
//! - [`event`]: the typed change event every stage shares;
//! - [`transform`]: the WebAssembly transform engine, chain and hot reload;
//! - [`encode`]: the contract's JSON, produced once, in the sink;
//! - `sink`: Kafka and stdout;
//! - [`state`]: the position file and the snapshot's progress file;
//! - [`pipeline`]: the stages, their channels and the restart supervisor;
//! - [`check`]: the preflight behind `sluice check`;
//! - [`telemetry`]: the Prometheus metrics and the health state served on `METRICS_ADDR`;
//! - [`setup`]: `sluice setup`, which creates Sluice's MySQL user with only the grants it needs
//!   (from administrator credentials used once) so that `check` passes for it.
//!
//! # Public API
//!
//! Everything is `pub(crate)` unless another crate of the workspace uses it; the lint
//! `unreachable_pub` keeps it so. The library has four users, and this is all they reach:
//! - the binary (`src/main.rs`): [`config::Config`] (with [`config::ConfigError`]),
//!   [`pipeline::run`] and [`pipeline::PipelineError`] (`run`), [`check::run_checks`] with
//!   [`check::CheckResult`] and [`check::Status`] (`check`), [`state::PositionStore`] and
//!   [`state::SnapshotStore`] (`position show`), [`source::skip::skip_saved_position`] (`position skip`),
//!   [`setup::run_setup`] with [`setup::Admin`], [`setup::SetupOptions`] and
//!   [`setup::SetupOutcome`] (`setup`), [`telemetry::install`] and [`telemetry::serve`]
//!   (`run` with `METRICS_ADDR`),
//!   [`transform::template`] (`transform new`), and for `transform test`
//!   [`transform::build_chain`], [`transform::TransformEngine`], [`transform::TransformSpec`],
//!   [`transform::FailurePolicy`], [`encode::contract_json::EventReader`] and
//!   [`encode::encode_value`];
//! - the bench (`benches/transform.rs`): the event model ([`event::ChangeEvent`],
//!   [`event::TableMeta`], [`event::SourcePosition`], [`event::Kind`], [`event::Value`]) and
//!   the transform chain above;
//! - the end-to-end tests (`tests/`): [`source::file::read_binlog_file`] with
//!   [`source::TableFilter`] and [`event::Batch`] (the MySQL fixture files),
//!   [`source::charset`] (collation tables), [`source::foreign_keys::cascading_children`] and
//!   [`source::objects::sequences_among`] (catalog queries), and [`state::position_file_name`]
//!   (where the position file is);
//! - the benchmark harness (`bench/`, `scripts/bench.sh`): the hidden module `bench`, which
//!   drives the binlog reader without a sink, encodes messages as the Kafka sink does, writes
//!   the position file, and re-exports the Kafka sink's `PRODUCER_DEFAULTS`.
//!
//! Types in those items' signatures and public fields are public too: the error each returns
//! ([`state::StateError`], [`source::skip::SkipError`], [`setup::SetupError`], [`transform::EngineError`],
//! [`transform::HaltError`], ...), what it returns ([`transform::Chain`] and its
//! [`transform::Stats`], [`state::BinlogPosition`]) and the types of [`config::Config`]'s
//! fields ([`source::ResetPolicy`], [`encode::KeyMode`], [`transform::Limits`]). The errors
//! those errors wrap (a source, sink or trap error inside a [`pipeline::PipelineError`]) stay
//! in crate-private modules: callers can print them and walk their `source()` chain, not name
//! them.

// Errors here stop the pipeline and carry what the operator needs (file, offsets, statements,
// table names), so some are large; they are cold, and boxing each would only obscure them.
#![allow(clippy::result_large_err)]
#![warn(unreachable_pub)]

#[doc(hidden)]
pub mod bench;
pub mod check;
pub mod config;
pub mod encode;
pub mod event;
pub mod pipeline;
/// `sluice setup`: a wizard that creates the user `sluice check` then passes for, so that no
/// operator has to work out the grants by hand.
pub mod setup;
pub(crate) mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod transform;
