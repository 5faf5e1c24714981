#!/usr/bin/env bash
# A job queue's workers (benchmarks/pgbench/job-queue.sql: FOR UPDATE SKIP
# LOCKED, then an UPDATE) at 1 and 16 clients, against PostgreSQL 15
# (fsync on) and SpanDB (3 servers, replication 3, synced writes,
# `demo --preferred-leader 1`), same machine, one after the other. Each
# starts with $JOBS queued jobs in 10 priorities (a run must not empty
# the queue: a worker that finds no job fails). Needs the release build.
# RESULT lines in /tmp/job_queue_compare.txt, pgbench's output in $RAW.
# WORKER picks the worker's script (job-queue-one-statement.sql: the same
# step as one UPDATE ... FROM a SKIP LOCKED subquery); BIN another build;
# SKIP_PG=1 runs SpanDB alone.
# usage: SECS=15 JOBS=100000 [WORKER=job-queue.sql] [BIN=path] [SKIP_PG=1] [AUTOGROUP=0|1|keep] scripts/job-queue-vs-postgres.sh
set -uo pipefail
SECS=${SECS:-15} JOBS=${JOBS:-100000}
OUT=/tmp/job_queue_compare.txt; : > $OUT
RAW=${RAW:-/tmp/job_queue_compare.raw.txt}; : > $RAW
# shellcheck source=scripts/pgbench-lib.sh
. "$(dirname "$0")/pgbench-lib.sh"
set_autogroup
export BASE=/tmp/spandb-anchors; mkdir -p $BASE/pids $BASE/logs
WORKER=${WORKER:-job-queue.sql}
SCRIPT=$(cd "$(dirname "$0")/.." && pwd)/benchmarks/pgbench/$WORKER
BATCH=5000
load() { # url
  psql "$1" -qc "DROP TABLE IF EXISTS jobs" 2>/dev/null
  psql "$1" -qc "CREATE TABLE jobs (id BIGINT PRIMARY KEY, priority INT NOT NULL, state TEXT NOT NULL)"
  for from in $(seq 1 $BATCH "$JOBS"); do
    psql "$1" -qc "INSERT INTO jobs SELECT i, i % 10, 'queued' FROM generate_series($from, $((from + BATCH - 1))) i" || return 1
  done
  psql "$1" -qc "CREATE INDEX jobs_ready ON jobs (state, priority)"
}
check() { # label url: the jobs done, and all jobs (done = the runs' transactions: none done twice)
  echo "RESULT label=$1-done $(psql "$2" -Atc "SELECT count(*) FILTER (WHERE state = 'done'), count(*) FROM jobs" | tr '|' ' ')" | tee -a $OUT
}

if [ "${SKIP_PG:-0}" != 1 ]; then
  bash /work/shared/bench-anchors/bin/pg_cluster.sh start
  PG="postgresql://postgres@127.0.0.1:54329/postgres"
  load "$PG"
  run_script pg-jobs-c1 "$PG" -c 1
  run_script pg-jobs-c16 "$PG" -c 16 -j 2
  check pg "$PG"
  bash /work/shared/bench-anchors/bin/pg_cluster.sh stop
fi

BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/spandb/target}/release/spandb}
S="postgresql://root@127.0.0.1:28000/spandb"
rm -rf /tmp/bench-jobs; up /tmp/bench-jobs
start=$(date +%s.%N); load "$S"; echo "RESULT label=spandb-load secs=$(echo "$(date +%s.%N) - $start" | bc)" | tee -a $OUT
echo "RESULT label=spandb-settle secs=$(settle "$BIN")" | tee -a $OUT
run_script spandb-jobs-c1 "$S" -c 1 --max-tries 10
run_script spandb-jobs-c16 "$S" -c 16 -j 2 --max-tries 10
check spandb "$S"
down
