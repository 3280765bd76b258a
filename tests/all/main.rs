//! Sluice's end-to-end tests: one binary, a module per area, against the real MariaDB and the
//! real Kafka-protocol broker that `scripts/services.sh` starts.

mod author;
mod capture;
mod charsets;
mod check;
mod exactly_once;
mod fixtures;
mod kafka_limits;
mod kafka_shutdown;
mod ordering;
mod polyglot;
mod resets;
mod restart;
mod roundtrip;
mod sandbox;
mod schema_change;
mod secrets;
mod setup;
mod snapshot;
mod snapshot_types;
mod source_compress;
mod source_restart;
mod source_txn;
mod startup;
mod state;
mod stdout;
mod telemetry;
mod tls;
mod transforms;
mod truncate;
mod types;
