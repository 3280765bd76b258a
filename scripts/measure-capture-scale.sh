#!/bin/bash
# Usage: bash scripts/services.sh up && cargo build -p sluice && N=300 bash scripts/measure-capture-scale.sh
# Not part of the tests: it prints timings of one run on this machine (issue 11 closing note).
# Measures a `*` pipeline over N tables (stdout sink, debug build): start-up to streaming,
# events of rows in N tables known at start, and of rows in N tables created mid-stream
# (each read for its kind at its first row).
set -euo pipefail
N=${N:-300}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M="mysql -h127.0.0.1 -P13306 -uadmin -padmin-pw"
DB=capmeasure_db
$M -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
{ for i in $(seq 1 $N); do echo "CREATE TABLE $DB.t$i (id INT PRIMARY KEY, v INT);"; done; } | $M
STATE=$(mktemp -d)
export MYSQL_HOST=127.0.0.1 MYSQL_PORT=13306 MYSQL_USER=sluice MYSQL_PASSWORD=sluice-pw MYSQL_DATABASE=$DB MYSQL_TABLE='*' MYSQL_SERVER_ID=7771 Quix__State__Dir=$STATE SLUICE_LOG=info
OUT=$STATE/out.jsonl; ERR=$STATE/err.log
t0=$(date +%s.%N)
"$ROOT/target/debug/sluice" run > $OUT 2> $ERR &
PID=$!
until grep -q "streaming" $ERR 2>/dev/null; do sleep 0.05; done
t1=$(date +%s.%N)
count() { wc -l < $OUT; }
{ echo "BEGIN;"; for i in $(seq 1 $N); do echo "INSERT INTO $DB.t$i VALUES (1, 1);"; done; echo "COMMIT;"; } | $M
t2=$(date +%s.%N)
until [ "$(count)" -ge $N ]; do sleep 0.02; done
t3=$(date +%s.%N)
{ for i in $(seq 1 $N); do echo "CREATE TABLE $DB.n$i (id INT PRIMARY KEY, v INT);"; done; } | $M
{ echo "BEGIN;"; for i in $(seq 1 $N); do echo "INSERT INTO $DB.n$i VALUES (1, 1);"; done; echo "COMMIT;"; } | $M
t4=$(date +%s.%N)
until [ "$(count)" -ge $((2*N)) ]; do sleep 0.02; done
t5=$(date +%s.%N)
# A second round on the same new tables: kinds known now.
{ echo "BEGIN;"; for i in $(seq 1 $N); do echo "INSERT INTO $DB.n$i VALUES (2, 2);"; done; echo "COMMIT;"; } | $M
t6=$(date +%s.%N)
until [ "$(count)" -ge $((3*N)) ]; do sleep 0.02; done
t7=$(date +%s.%N)
kill $PID; wait $PID || true
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" "$N" <<'PY'
import sys
t=[float(x) for x in sys.argv[1:9]]; n=int(sys.argv[9])
print(f"tables={n}")
print(f"start to streaming (kinds of {n} tables read): {t[1]-t[0]:.2f} s")
print(f"{n} rows in {n} tables known at start, commit to last event: {t[3]-t[2]:.3f} s")
print(f"{n} rows in {n} tables created mid-stream (kind read at first row), commit to last event: {t[5]-t[4]:.3f} s")
print(f"{n} more rows in those tables (kinds known), commit to last event: {t[7]-t[6]:.3f} s")
PY
grep -c "appeared since the start" $ERR || true
$M -e "DROP DATABASE $DB"
