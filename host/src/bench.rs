//! Hooks for the benchmark harness (`bench/`, run by `scripts/bench.sh`), which measures Sluice's
//! own code beside reference tools in one run. Hidden from the docs: not an API for users, and
//! it changes with the harness.
//!
//! - [`config_from_file`]: a [`Config`] from a TOML file alone, so that the caller's
//!   environment cannot change what is measured;
//! - [`read_binlog`]: the pipeline's binlog reader (`source::binlog::stream`, with the
//!   pipeline's batch limits) from one position to another, handing each batch to a callback
//!   instead of a sink: the decode limit, and the source of the reference producer's messages;
//! - [`encode_message`]: an event's Kafka key and value, exactly as the Kafka sink encodes them
//!   (the sink adds the `sluice.*` headers from [`ChangeEvent::position`]);
//! - [`save_position`]: the contract's position file, written as the checkpointer writes it, so
//!   that a measured `sluice run` starts where the harness says;
//! - [`PRODUCER_DEFAULTS`]: the Kafka sink's producer settings, for the reference producer;
//! - [`read_back`]: exactly-once recovery's read-back of a topic, as a start does it.

use std::path::Path;

use tokio::sync::{mpsc, watch};

use crate::config::{Config, ConfigError};
use crate::encode::{contract_json, KeyMode};
use crate::event::{Batch, ChangeEvent};
use crate::source::binlog::{self, BatchLimits};
use crate::state::{BinlogPosition, PositionStore, StateError};

pub use crate::sink::kafka::client::PRODUCER_DEFAULTS;

/// A source error (the types are crate-private), to print with its `source()` chain.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Loads `path` with no environment variable taken into account.
pub fn config_from_file(path: &Path) -> Result<Config, ConfigError> {
    Config::load(Some(path), &|_| None)
}

/// Streams the binlog of `cfg`'s server from `from` until the first transaction boundary at or
/// after `to`, through the pipeline's own reader and decoder, for the captured tables of `cfg`.
/// The reader runs on its own task, as in the pipeline; `on_batch` receives every batch (one
/// transaction, or a piece of a large one) on the caller's task. Returns where the stream
/// stopped.
pub async fn read_binlog<F: FnMut(Batch)>(
    cfg: &Config,
    from: BinlogPosition,
    to: &BinlogPosition,
    mut on_batch: F,
) -> Result<Option<BinlogPosition>, BenchError> {
    let limits = BatchLimits {
        rows: cfg.pipeline.max_batch_rows,
        bytes: cfg.pipeline.max_batch_bytes,
    };
    let filter = cfg.table_filter();
    let (tx, mut rx) = mpsc::channel::<Batch>(cfg.pipeline.channel_capacity);
    let (_stop_tx, stop) = watch::channel(false);
    let mysql = cfg.mysql.clone();
    let to = to.clone();
    let reader = tokio::spawn(async move {
        binlog::stream(&mysql, filter, from, Some(&to), limits, tx, stop).await
    });
    while let Some(batch) = rx.recv().await {
        on_batch(batch);
    }
    match reader.await {
        Ok(r) => r.map_err(|e| Box::new(e) as BenchError),
        Err(e) => Err(format!("the binlog reader task failed: {e}").into()),
    }
}

/// Writes `event`'s Kafka key (by `key`, or the table's name) and value (the contract's JSON)
/// into the cleared buffers, as the Kafka sink does for an event no transform routed.
pub fn encode_message(
    event: &ChangeEvent,
    key: KeyMode,
    key_out: &mut Vec<u8>,
    value_out: &mut Vec<u8>,
) {
    key_out.clear();
    value_out.clear();
    contract_json::encode_key(event, key, key_out);
    contract_json::encode_value(event, value_out);
}

/// Saves `pos` as the position file of the pipeline that captures `tables` in `schema`, under
/// `state_dir`, atomically and in the contract's format.
pub fn save_position(
    state_dir: &Path,
    schema: &str,
    tables: &[String],
    pos: &BinlogPosition,
) -> Result<(), StateError> {
    PositionStore::for_tables(state_dir, schema, tables).save(pos)
}

/// Exactly-once recovery's read-back of every partition of `topic` on `brokers`, as a start
/// does it. Returns (partitions, partitions holding a Sluice record).
pub async fn read_back(brokers: &str, topic: &str) -> Result<(i32, usize), BenchError> {
    let cfg = crate::config::KafkaConfig {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        key: KeyMode::Table,
        producer: Default::default(),
        on_oversize: Default::default(),
        dead_letter_topic: None,
        exactly_once: true,
        recover_topics: Vec::new(),
        partitions: 1,
        replication_factor: 1,
    };
    let r = crate::sink::kafka::read_back(
        &cfg,
        vec![topic.to_owned()],
        crate::sink::kafka::CONNECT_TIMEOUT,
    )
    .await?;
    Ok((r.partitions.values().sum(), r.marks.len()))
}
