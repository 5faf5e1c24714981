#!/usr/bin/env bash
# Old build against new on ONE pgbench load: loads scale SCALE once (with the
# first build, into $GOLDEN, unless it is there), then for each round and
# build starts `spandb demo --preferred-leader 1` on a fresh copy of it and
# runs TPC-B at 16 clients and select-only at 16 and 1 (-M prepared). A load
# at scale 16 takes minutes; a copy takes seconds. Prints RESULT lines with
# the three servers' user + system CPU per transaction (/proc).
#
#   ROUNDS=2 SCALE=16 scripts/pgbench-old-vs-new-loaded.sh OLD_SPANDB NEW_SPANDB
#
# Files written by the loading build stay as it wrote them (a build that
# changes how RocksDB files are written shows its effect only on new files).
# AUTOGROUP (default 0): kernel.sched_autogroup_enabled for the run, as in
# pgbench-vs-postgres.sh (which says why).
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SPANDB..." >&2; exit 2; }
S="postgresql://root@127.0.0.1:28000/spandb"
# shellcheck source=scripts/pgbench-lib.sh
. "$(dirname "$0")/pgbench-lib.sh"
set_autogroup
GOLDEN=${GOLDEN:-/tmp/spandb-loaded-s${SCALE:-16}}; RUN=/tmp/spandb-loaded-run
if [ ! -d "$GOLDEN" ]; then
  BIN=$1; up "$GOLDEN"; pgbench -i -s "${SCALE:-16}" "$S" > /dev/null 2>&1 || { echo "load failed" >&2; down; exit 1; }
  down
fi
for round in $(seq "${ROUNDS:-2}"); do
  for BIN in "$@"; do
    rm -rf "$RUN"; cp -a "$GOLDEN" "$RUN"; up "$RUN"
    settle "$BIN" > /dev/null
    pgbench -n -T 5 -M prepared -S -c 4 "$S" > /dev/null 2>&1   # warm-up
    one -c 16 -j 2 --max-tries 10
    one -c 16 -j 2 -S
    one -c 1 -S
    down
  done
done
