#!/usr/bin/env bash
# "No speed lost": the same benchmarks with two builds of spandb, alternated
# in one run on this machine (old, new, old, new, ...), so a change that
# should not cost speed is measured against what it changed, not against a
# number from another day.
#
#   scripts/bench-old-vs-new.sh OLD_SPANDB NEW_SPANDB            # ROUNDS=2 SECS=10
#   ROUNDS=3 SECS=20 scripts/bench-old-vs-new.sh old/spandb new/spandb
#
# Each round runs, for each build in turn: `bench kv` (put and get, 1 and 64
# clients, keys spread over the demo's four shards) and `bench txn`
# (read-write transactions on one shard and across two, 1 and 16 clients),
# each on its own fresh local cluster (3 servers, synced writes). Every
# RESULT line is printed with the build's name in front: `old RESULT ...`.
set -euo pipefail
OLD=${1:?usage: $0 OLD_SPANDB NEW_SPANDB}
NEW=${2:?usage: $0 OLD_SPANDB NEW_SPANDB}
ROUNDS=${ROUNDS:-2}
SECS=${SECS:-10}
for bin in "$OLD" "$NEW"; do
    [ -x "$bin" ] || { echo "error: $bin is not an executable"; exit 1; }
done

run() {
    local name=$1 bin=$2
    "$bin" bench kv --local --no-progress --duration "$SECS" --keys 100000 --value-size 256 \
        --clients 1,64 --op put,get | sed -n "s/^RESULT/$name RESULT/p"
    "$bin" bench txn --local --no-progress --duration "$SECS" --shards 4 --clients 1,16 \
        --workload rw,cross --participants 2 | sed -n "s/^RESULT/$name RESULT/p"
}

for round in $(seq "$ROUNDS"); do
    echo "# round $round of $ROUNDS"
    run old "$OLD"
    run new "$NEW"
done
