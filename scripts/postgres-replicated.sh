#!/usr/bin/env bash
# PostgreSQL 15 replicating three ways, beside the single node issue 9's
# goal compares SpanDB with, and SpanDB, in one run on one machine: pgbench
# TPC-B (-M prepared) at 1 and 16 clients and select-only at 16.
#
#   single:      one node, fsync on (what bench-anchors' pg_cluster.sh runs)
#   replicated:  the same primary and two streaming standbys on this
#                machine, synchronous_commit = on and
#                synchronous_standby_names = 'ANY 1 (sb1, sb2)': a commit
#                returns once one standby has flushed its WAL, as a Raft
#                entry commits once a majority of three has persisted it
#   spandb:      `spandb demo --preferred-leader 1` on a copy of a loaded
#                scale-$SCALE cluster ($GOLDEN, as pgbench-old-vs-new-loaded.sh
#                makes it), settled first
#
# RESULT lines go to stdout with the whole machine's CPU per transaction
# (/proc/stat, pgbench's included). Needs Debian's postgresql package, run as root
# (the PostgreSQL processes run as user postgres).
#
#   SECS=20 SCALE=16 scripts/postgres-replicated.sh [SPANDB_BINARY]
set -uo pipefail
SECS=${SECS:-20} SCALE=${SCALE:-16}
# shellcheck source=scripts/pgbench-lib.sh
. "$(dirname "$0")/pgbench-lib.sh"
set_autogroup
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
BASE=/tmp/spandb-pg-replicated
as_pg() { runuser -u postgres -- "$@"; }

pg_start() { # name port [standby of port]
  local dir=$BASE/$1 port=$2 primary=${3:-}
  rm -rf "$dir"; mkdir -p "$dir/sock"; chown -R postgres:postgres "$BASE"
  if [ -z "$primary" ]; then
    as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres > /dev/null
  else
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir/data" -R -X stream > /dev/null
    echo "primary_conninfo = 'host=127.0.0.1 port=$primary user=postgres application_name=$1'" \
      | as_pg tee -a "$dir/data/postgresql.auto.conf" > /dev/null
  fi
  as_pg tee -a "$dir/data/postgresql.conf" > /dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
shared_buffers = 1GB
max_wal_size = 4GB
fsync = on
synchronous_commit = on
CONF
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w start > /dev/null
}
pg_stop_all() {
  for d in "$BASE"/*/data; do [ -d "$d" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w stop > /dev/null 2>&1; done
  rm -rf "$BASE"
}
# The whole machine's busy CPU ticks (pgbench's included): PostgreSQL's
# backends exit with their connections, before a /proc/PID reading after
# the run could see them.
machine_cpu() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
run() { # label url pgbench arguments...
  local label=$1 url=$2 before after o n; shift 2
  before=$(machine_cpu); o=$(timeout $((SECS + 120)) pgbench -n -T "$SECS" -M prepared "$@" "$url" 2>&1)
  after=$(machine_cpu)
  n=$(grep -oP 'actually processed: \K[0-9]+' <<<"$o")
  echo "RESULT label=$label args='$*' tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$o" | head -1)" \
    "lat_avg_ms=$(grep -oP 'latency average = \K[0-9.]+' <<<"$o")" \
    "failed=$(grep -oP 'number of failed transactions: \K[0-9]+' <<<"$o" || echo 0)" \
    "machine_cpu_ms_per_txn=$(echo "scale=3; ($after - $before) * 1000 / $TICK / ${n:-1}" | bc)"
}
suite() { # label-prefix url [extra pgbench arguments for TPC-B]
  run "$1-tpcb-c1" "$2" -c 1 "${@:3}"
  run "$1-tpcb-c16" "$2" -c 16 -j 2 "${@:3}"
  run "$1-select-c16" "$2" -c 16 -j 2 -S
}

trap pg_stop_all EXIT
PG="postgresql://postgres@127.0.0.1:54329/postgres"

pg_stop_all; pg_start primary 54329
pgbench -i -s "$SCALE" -q "$PG" > /dev/null 2>&1
suite pg-single "$PG"
pg_stop_all

pg_start primary 54329
pg_start sb1 54330 54329
pg_start sb2 54331 54329
echo "synchronous_standby_names = 'ANY 1 (sb1, sb2)'" | as_pg tee -a "$BASE/primary/data/postgresql.conf" > /dev/null
as_pg "$PGBIN/pg_ctl" -D "$BASE/primary/data" reload > /dev/null
for _ in $(seq 60); do
  [ "$(psql "$PG" -Atc "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'")" = 2 ] && break
  sleep 1
done
echo "RESULT label=pg-replicated-standbys $(psql "$PG" -Atc "SELECT string_agg(application_name || ':' || sync_state, ',') FROM pg_stat_replication")"
pgbench -i -s "$SCALE" -q "$PG" > /dev/null 2>&1
suite pg-replicated "$PG"
pg_stop_all
trap - EXIT

[ $# -ge 1 ] || exit 0
BIN=$1 S="postgresql://root@127.0.0.1:28000/spandb"
GOLDEN=${GOLDEN:-/tmp/spandb-loaded-s$SCALE}; RUN=/tmp/spandb-loaded-run
[ -d "$GOLDEN" ] || { echo "no loaded cluster at $GOLDEN (scripts/pgbench-old-vs-new-loaded.sh makes one)" >&2; exit 1; }
rm -rf "$RUN"; cp -a "$GOLDEN" "$RUN"; up "$RUN"
echo "RESULT label=spandb-settle secs=$(settle "$BIN")"
pgbench -n -T 5 -M prepared -S -c 4 "$S" > /dev/null 2>&1   # warm-up
suite spandb "$S" --max-tries 10
down
