//! Sluice's end-to-end tests: one binary, a module per area, against the real MariaDB and the
//! real Kafka-protocol broker that `scripts/services.sh` starts.

mod check;
mod fixtures;
mod ordering;
mod restart;
mod roundtrip;
mod schema_change;
mod state;
mod stdout;
mod transforms;
