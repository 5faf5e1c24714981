#!/usr/bin/env bash
# pgbench through the PostgreSQL gateway with two builds of spandb,
# alternated in one run (old, new, old, new): select-only at 1 and 16
# clients, TPC-B at 1 and 4, each build on a fresh `spandb demo` (3
# servers, replication 3, synced writes) loaded with `pgbench -i -s SCALE`.
# RESULT lines carry the build's name; full output goes to $RAW.
#
#   ROUNDS=2 SECS=15 SCALE=4 scripts/pgbench-old-vs-new.sh OLD_SPANDB NEW_SPANDB
set -uo pipefail
OLD=${1:?usage: $0 OLD_SPANDB NEW_SPANDB}
NEW=${2:?usage: $0 OLD_SPANDB NEW_SPANDB}
ROUNDS=${ROUNDS:-2} SECS=${SECS:-15} SCALE=${SCALE:-4}
RAW=${RAW:-/tmp/pgbench_old_vs_new.raw.txt}; : > "$RAW"
DIR=/tmp/pgbench-old-vs-new
S="postgresql://root@127.0.0.1:28000/spandb"

one() { # name label extra...
  local name=$1 label=$2; shift 2
  local o; o=$(timeout $((SECS + 120)) pgbench -n -r -T "$SECS" -M prepared "$@" "$S" 2>&1)
  printf '=== %s %s (%s)\n%s\n' "$name" "$label" "$*" "$o" >> "$RAW"
  echo "$name RESULT label=$label tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$o" | head -1)" \
    "lat_avg_ms=$(grep -oP 'latency average = \K[0-9.]+' <<<"$o")" \
    "retried=$(grep -oP 'number of transactions retried: \K[0-9]+' <<<"$o")"
}

run() { # name binary
  local name=$1 bin=$2
  rm -rf "$DIR"; (setsid "$bin" demo --no-shell --dir "$DIR" --port-base 27000 > "$DIR.log" 2>&1 &)
  for _ in $(seq 120); do grep -q psql "$DIR.log" 2>/dev/null && break; sleep 1; done
  pgbench -i -s "$SCALE" "$S" >> "$RAW" 2>&1
  one "$name" select-c1 -c 1 -S
  one "$name" select-c16 -c 16 -j 2 -S
  one "$name" tpcb-c1 -c 1 --max-tries 10
  one "$name" tpcb-c4 -c 4 -j 2 --max-tries 10
  pkill -f "demo --no-shell --dir $DIR"; pkill -f "$DIR/"
  for _ in $(seq 30); do pgrep -f "$DIR/" > /dev/null || break; sleep 1; done
}

for round in $(seq "$ROUNDS"); do
  echo "# round $round of $ROUNDS"
  run old "$OLD"
  run new "$NEW"
done
