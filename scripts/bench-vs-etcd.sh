#!/usr/bin/env bash
# SpanDB's key-value benchmark and the performance anchors (fsync, loopback
# RTT, etcd 3-member and single-member, PostgreSQL pgbench) in ONE run on this
# machine, so the numbers in BENCHMARKS.md compare like with like.
#
#   scripts/bench-vs-etcd.sh                 # SECS=10 REPS=1
#   SECS=20 REPS=3 scripts/bench-vs-etcd.sh
#   ANCHORS=/path/to/run_anchors.sh scripts/bench-vs-etcd.sh
#
# SpanDB runs last (OWN_BENCH_CMD): each `spandb bench kv --local` starts its
# own 3-server cluster (durable, synced writes) in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ANCHORS=${ANCHORS:-../shared/bench-anchors/run_anchors.sh}
SECS=${SECS:-10}
REPS=${REPS:-1}
[ -x "$ANCHORS" ] || { echo "error: $ANCHORS not found (set ANCHORS=)"; exit 1; }
cargo build --release -q -p cli
SPANDB=${CARGO_TARGET_DIR:-$PWD/target}/release/spandb
COMMON="--local --no-progress --duration $SECS --keys 100000 --value-size 256"
OWN="for i in \$(seq $REPS); do \
  $SPANDB bench kv $COMMON --clients 1,64 --op put,get; \
  $SPANDB bench kv $COMMON --key-space one-shard --clients 1,64 --op put; \
  $SPANDB bench kv $COMMON --epsilon-ms 1 --clients 1,64 --op put; \
  $SPANDB bench kv $COMMON --epsilon-ms 0 --clients 1,64 --op put; \
  $SPANDB bench txn --local --no-progress --duration $SECS --shards 10 --clients 1,16 --workload rw,ro,snapshot,cross --participants 1,2,5,10; \
  $SPANDB bench txn --local --no-progress --duration $SECS --shards 10 --clients 1 --workload rw,cross --participants 1,2,5,10 --epsilon-ms 0; \
done"
# The anchors build their own load generator in their own target directory.
env -u CARGO_TARGET_DIR OWN_BENCH_CMD="$OWN" SECS=$SECS REPS=$REPS "$ANCHORS"
