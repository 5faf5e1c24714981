#!/usr/bin/env bash
# "The latest rows" (benchmarks/pgbench/latest-rows.sql: ORDER BY id DESC
# LIMIT 20, an account's max(id), an UPDATE of a random older row, in one
# read-write transaction) at 1 and 16 clients, against PostgreSQL 15
# (fsync on) and SpanDB (3 servers, replication 3, synced writes,
# `demo --preferred-leader 1`), same machine, one after the other, over
# $EVENTS events in 100 accounts (an index on (account, id)). Needs a
# release build (BIN picks another); SKIP_PG=1 runs SpanDB alone.
# RESULT lines in /tmp/latest_rows_compare.txt, pgbench's output in $RAW.
# usage: SECS=15 EVENTS=100000 [BIN=path] [SKIP_PG=1] [AUTOGROUP=0|1|keep] scripts/latest-rows-vs-postgres.sh
set -uo pipefail
SECS=${SECS:-15} EVENTS=${EVENTS:-100000}
OUT=/tmp/latest_rows_compare.txt; : > $OUT
RAW=${RAW:-/tmp/latest_rows_compare.raw.txt}; : > $RAW
# shellcheck source=scripts/pgbench-lib.sh
. "$(dirname "$0")/pgbench-lib.sh"
set_autogroup
export BASE=/tmp/spandb-anchors; mkdir -p $BASE/pids $BASE/logs
SCRIPT=$(cd "$(dirname "$0")/.." && pwd)/benchmarks/pgbench/latest-rows.sql
BATCH=5000
load() { # url
  psql "$1" -qc "DROP TABLE IF EXISTS events" 2>/dev/null
  psql "$1" -qc "CREATE TABLE events (id BIGINT PRIMARY KEY, account INT NOT NULL, body TEXT NOT NULL)"
  for from in $(seq 1 $BATCH "$EVENTS"); do
    psql "$1" -qc "INSERT INTO events SELECT i, i % 100, 'event ' || i FROM generate_series($from, $((from + BATCH - 1))) i" || return 1
  done
  psql "$1" -qc "CREATE INDEX events_account ON events (account, id)"
}

if [ "${SKIP_PG:-0}" != 1 ]; then
  bash /work/shared/bench-anchors/bin/pg_cluster.sh start
  PG="postgresql://postgres@127.0.0.1:54329/postgres"
  load "$PG"
  run_script pg-latest-c1 "$PG" -D events="$EVENTS" -c 1
  run_script pg-latest-c16 "$PG" -D events="$EVENTS" -c 16 -j 2
  bash /work/shared/bench-anchors/bin/pg_cluster.sh stop
fi

BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/spandb/target}/release/spandb}
S="postgresql://root@127.0.0.1:28000/spandb"
rm -rf /tmp/bench-latest; up /tmp/bench-latest
start=$(date +%s.%N); load "$S"; echo "RESULT label=spandb-load secs=$(echo "$(date +%s.%N) - $start" | bc)" | tee -a $OUT
echo "RESULT label=spandb-settle secs=$(settle "$BIN")" | tee -a $OUT
run_script spandb-latest-c1 "$S" -D events="$EVENTS" -c 1 --max-tries 10
run_script spandb-latest-c16 "$S" -D events="$EVENTS" -c 16 -j 2 --max-tries 10
down
