#!/usr/bin/env bash
# pgbench TPC-B (-M prepared) at 1 and 16 clients and select-only at 16 and 1,
# against PostgreSQL 15 (fsync on) and SpanDB (3 servers, replication 3,
# synced writes), same machine, one after the other; RESULT lines in
# /tmp/pgbench_compare.txt. Needs the release build
# (cargo build --release -p cli) and Debian's postgresql package.
# Per-statement latencies (pgbench -r) of every run go to $RAW.
# DEMO_ARGS go to `spandb demo` (e.g. "--preferred-leader 1": every shard
# led by the server whose gateway pgbench uses).
# AUTOGROUP (default 0) is what kernel.sched_autogroup_enabled is set to
# for the run, and restored after it, where the kernel lets us. With
# autogroups, the kernel shares the CPU out per session first: each
# PostgreSQL backend calls setsid() and is a session (a group) of its
# own, while SpanDB's servers and all their connection threads are one
# session, as is pgbench. On two cores that gives pgbench as much CPU as
# all of SpanDB and lets its wake-ups preempt SpanDB's threads, but not
# PostgreSQL's backends (BENCHMARKS.md, "2026-12-05 (night)"). With 0
# every thread is scheduled as a peer, as a server whose tasks are not
# split into sessions would. AUTOGROUP=keep leaves the machine's setting.
# usage: SECS=20 SCALE=16 [DEMO_ARGS=...] [AUTOGROUP=0|1|keep] scripts/pgbench-vs-postgres.sh
set -uo pipefail
SECS=${SECS:-20} SCALE=${SCALE:-16}
OUT=/tmp/pgbench_compare.txt; : > $OUT
# shellcheck source=scripts/pgbench-lib.sh
. "$(dirname "$0")/pgbench-lib.sh"
set_autogroup
echo "RESULT label=sched-autogroup value=$(cat $AG 2>/dev/null || echo none)" | tee -a $OUT
RAW=${RAW:-/tmp/pgbench_compare.raw.txt}; : > $RAW   # every run's full output
export BASE=/tmp/spandb-anchors; mkdir -p $BASE/pids $BASE/logs
run() { # label url extra...
  local label=$1 url=$2; shift 2
  local o; o=$(timeout $((SECS + 120)) pgbench -n -r -T "$SECS" -M prepared "$@" "$url" 2>&1)
  printf '=== %s (pgbench -n -r -T %s -M prepared %s)\n%s\n' "$label" "$SECS" "$*" "$o" >> $RAW
  local tps lat fail retried
  tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$o" | head -1); lat=$(grep -oP 'latency average = \K[0-9.]+' <<<"$o")
  fail=$(grep -oP 'number of failed transactions: \K[0-9]+' <<<"$o"); retried=$(grep -oP 'number of transactions retried: \K[0-9]+' <<<"$o")
  echo "RESULT label=$label tps=$tps lat_avg_ms=$lat failed=${fail:-0} retried=${retried:-0} args=$*" | tee -a $OUT
}
bash /work/shared/bench-anchors/bin/pg_cluster.sh start
PG="postgresql://postgres@127.0.0.1:54329/postgres"
start=$(date +%s.%N); pgbench -i -s $SCALE -q "$PG" >/dev/null 2>&1; echo "RESULT label=pg-init-s$SCALE secs=$(echo "$(date +%s.%N) - $start" | bc)" | tee -a $OUT
run pg-tpcb-c1 "$PG" -c 1
run pg-tpcb-c16 "$PG" -c 16 -j 2
run pg-select-c16 "$PG" -c 16 -j 2 -S
run pg-select-c1 "$PG" -c 1 -S
bash /work/shared/bench-anchors/bin/pg_cluster.sh stop
B=${CARGO_TARGET_DIR:-$HOME/.cache/spandb/target}/release/spandb
# shellcheck disable=SC2086 # DEMO_ARGS is words of arguments
rm -rf /tmp/bench-d; (setsid $B demo --no-shell --dir /tmp/bench-d --port-base 27000 ${DEMO_ARGS:-} > /tmp/bench-d.log 2>&1 &)
for i in $(seq 120); do grep -q "psql" /tmp/bench-d.log 2>/dev/null && break; sleep 1; done
S="postgresql://root@127.0.0.1:28000/spandb"
start=$(date +%s.%N); pgbench -i -s $SCALE "$S" > /tmp/spandb-init.log 2>&1; echo "RESULT label=spandb-init-s$SCALE secs=$(echo "$(date +%s.%N) - $start" | bc) $(tail -1 /tmp/spandb-init.log)" | tee -a $OUT
# The load's splits and the leader moves after them settle first.
echo "RESULT label=spandb-settle secs=$(settle "$B")" | tee -a $OUT
# Where the shards' leaders are (a read led elsewhere crosses servers).
echo "RESULT label=spandb-leaders $("$B" status --addr 127.0.0.1:27000 | grep -oP '\bs\d+(?=\s+leader\b)' | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')" | tee -a $OUT
run spandb-tpcb-c1 "$S" -c 1 --max-tries 10
run spandb-tpcb-c16 "$S" -c 16 -j 2 --max-tries 10
run spandb-select-c16 "$S" -c 16 -j 2 -S
run spandb-select-c1 "$S" -c 1 -S
psql "$S" -Atc "select (select sum(abalance) from pgbench_accounts), (select sum(tbalance) from pgbench_tellers), (select sum(bbalance) from pgbench_branches), (select sum(delta) from pgbench_history)" | tee -a $OUT
pkill -f "spandb demo --no-shell --dir /tmp/bench-d"; pkill -f "/tmp/bench-d/"  # the demo and its servers
