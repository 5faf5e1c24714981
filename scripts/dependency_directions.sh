#!/usr/bin/env bash
# The dependency directions of DESIGN.md section 2, checked with cargo tree:
# - the pure cores, `txn`, `truetime`, `meta` and `sql`, never depend on tokio,
#   tonic, prost, RocksDB, raft or a network stack, directly or through
#   another crate, so they stay deterministic, testable without sockets
#   or sleeps, and quick to compile;
# - no library crate depends on `spanserver` or `cli` (only `cli`, the
#   jepsen `harness`, which writes servers' configurations and starts
#   them, and `tests` sit on top of everything), so `placement` and
#   `client` never reach into the server; and nothing depends on `cli`.
set -euo pipefail
cd "$(dirname "$0")/.."
io='^(tokio|tokio-[a-z-]+|tonic|tonic-[a-z-]+|prost|prost-[a-z-]+|rocksdb|librocksdb-sys|hyper|mio|h2|raft|raft-proto) '
top='^(spanserver|cli) '
status=0
for crate in truetime meta txn sql jepsen proto placement client spanserver harness; do
  tree=$(cargo tree -p "$crate" -e normal --prefix none)
  case "$crate" in
    txn | truetime | meta | sql) forbidden="$io|$top" ;;
    spanserver | harness) forbidden='^cli ' ;;
    *) forbidden="$top" ;;
  esac
  found=$(echo "$tree" | grep -E "$forbidden" | grep -vE "^$crate " | sort -u || true)
  if [ -n "$found" ]; then
    echo "dependency_directions: $crate depends on what it must not:"
    echo "$found" | sed 's/^/  /'
    status=1
  fi
done
if [ "$status" = 0 ]; then
  echo "dependency_directions: the pure cores are free of I/O crates; no library depends on spanserver or cli"
fi
exit "$status"
