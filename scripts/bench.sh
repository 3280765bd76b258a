#!/usr/bin/env bash
# Sluice's benchmark suite (issue 10): one command, not part of the tests. It prints figures.
#
#   bash scripts/bench.sh [--rows N] [--runs N] [--only a,b,...] [--regenerate] [--publish]
#
# Setup, idempotent (each step skips what is already there): the local services
# (scripts/services.sh up: MariaDB 127.0.0.1:13306, the tansu broker 127.0.0.1:19092), the example
# transforms (scripts/build-transforms.sh → target/wasm/), the release build of sluice and of the
# harness, a Python venv with the older app's stack (.work/bench-venv, mysql-replication pinned
# below), and the chart's font (Debian's fonts-dejavu-core). Then it runs target/release/sluice-bench
# with the arguments given (--help lists them), which:
#   - makes the dataset once (--rows row changes, default 1M, in benchcdc.orders, recorded in
#     benchcdc.dataset and reused while its binlog files exist; --regenerate makes a new one);
#   - measures, each --runs times (default 2; latency once): decode (Sluice's reader alone), python
#     (python-mysql-replication), stdout / filter-mask / chain3 (sluice run → /dev/null), broker
#     (a plain rdkafka producer, the same messages), kafka / filter-mask-kafka / chain3-kafka
#     (sluice run → Kafka), kafka-alo (the same with EXACTLY_ONCE=false), latency (1k and 10k
#     rows/s) and recovery (exactly-once read-back at start, 1/10/100 partitions); --only picks some;
#   - prints one markdown table and writes target/bench/results.md, results.json and
#     throughput.png; each run's logs stay under target/bench/runs/. With --publish it also copies
#     results.md and throughput.png into docs/bench/.
# Every Kafka topic it makes is deleted after its run; the broker is never restarted. The replica
# on 13309 (when it runs) is only waited for, never written to.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# The older app's stack, pinned (PyPI: mysql-replication).
MYSQL_REPLICATION_VERSION=1.0.17
VENV=$ROOT/.work/bench-venv

log() { printf '[bench] %s\n' "$*" >&2; }

bash scripts/services.sh up
# shellcheck disable=SC1090
source <(bash scripts/services.sh env)

if ! dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q "install ok installed"; then
  log "installing fonts-dejavu-core (apt), the chart's font"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null
fi

log "building the example transforms (scripts/build-transforms.sh)"
bash scripts/build-transforms.sh >&2
log "building sluice and the harness (cargo build --release -p sluice -p sluice-bench)"
cargo build --release -p sluice -p sluice-bench >&2

if [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("mysql-replication"))' 2>/dev/null || true)" \
    != "$MYSQL_REPLICATION_VERSION" ]; then
  log "making $VENV with mysql-replication==$MYSQL_REPLICATION_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "mysql-replication==$MYSQL_REPLICATION_VERSION"
fi

export SLUICE_BENCH_COMMAND="bash scripts/bench.sh${*:+ $*}"
exec "$ROOT/target/release/sluice-bench" --root "$ROOT" "$@"
