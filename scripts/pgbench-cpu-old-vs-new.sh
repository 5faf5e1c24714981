#!/usr/bin/env bash
# pgbench through the PostgreSQL gateway with two builds of spandb,
# alternated (A, B, A, B), each on a fresh `spandb demo` loaded with
# `pgbench -i -s SCALE`: TPC-B at 1 and 4 clients, select-only at 16.
# Besides tps, prints the servers' CPU per transaction: their user +
# system time (/proc) over the run, divided by its transactions.
#
#   ROUNDS=2 SCALE=4 scripts/pgbench-cpu-old-vs-new.sh BUILD_A BUILD_B
#
# A build may carry arguments for its `spandb demo` after an @:
#   scripts/pgbench-cpu-old-vs-new.sh ./spandb './spandb@--preferred-leader 1'
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SPANDB..." >&2; exit 2; }
S="postgresql://root@127.0.0.1:28000/spandb"
# shellcheck source=scripts/pgbench-lib.sh
. "$(dirname "$0")/pgbench-lib.sh"
DIR=/tmp/pgbench-cpu-old-vs-new

for round in $(seq "${ROUNDS:-2}"); do
  for SPEC in "$@"; do
    BIN="${SPEC%%@*}"; EXTRA=""; [[ $SPEC == *@* ]] && EXTRA="${SPEC#*@}"
    # shellcheck disable=SC2086 # EXTRA is words of arguments
    rm -rf "$DIR"; (setsid "$BIN" demo --no-shell --dir "$DIR" --port-base 27000 $EXTRA > "$DIR.log" 2>&1 &)
    for _ in $(seq 120); do grep -q psql "$DIR.log" 2>/dev/null && break; sleep 1; done
    pgbench -i -s "${SCALE:-4}" "$S" > /dev/null 2>&1
    one -c 1 --max-tries 10
    one -c 4 -j 2 --max-tries 10
    one -c 16 -j 2 -S
    pkill -f "^$BIN (start|demo)"
    for _ in $(seq 30); do pgrep -f "^$BIN (start|demo)" > /dev/null || break; sleep 1; done
    pkill -9 -f "^$BIN (start|demo)"
  done
done
