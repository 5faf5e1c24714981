# Sourced by the pgbench scripts.
#
# one: a pgbench run against the gateway at $S, with the CPU the
# `$BIN start` processes (the servers) spent on it per transaction (user +
# system time from /proc). $EXTRA (the demo's arguments, if any) is
# appended to the build's name.
#   one -c 16 -j 2 -S   ->   RESULT bin=... args='...' tps=... retried=... server_cpu_ms_per_txn=...
#
# up DIR / down: start `$BIN demo --preferred-leader 1` on DIR (gateway
# at $S: port base 27000) and wait for its psql line; stop every
# `$BIN start|demo` process.
#
# run_script LABEL URL ARGS...: a custom pgbench script's run (below).
#
# settle SPANDB: waits until the demo's placement driver has run no
# operation for 5 checks in a row, 2 s apart (a load's splits and the
# leader moves after them; 3 minutes at most), and then, with $S set,
# until no sweep job is left (`SHOW JOBS`: the rows `pgbench -i`'s ADD
# PRIMARY KEY and TRUNCATE abandoned, deleted in the background; 15
# minutes at most), as a cluster would be before its workload; prints the
# seconds waited.
TICK=$(getconf CLK_TCK)

# set_autogroup: sets kernel.sched_autogroup_enabled to $AUTOGROUP
# (default 0) until the script exits, where the kernel lets us;
# AUTOGROUP=keep leaves it (pgbench-vs-postgres.sh says why).
AG=/proc/sys/kernel/sched_autogroup_enabled
set_autogroup() {
  if [ -w $AG ] && [ "${AUTOGROUP:-0}" != keep ]; then
    ag_was=$(cat $AG); trap 'echo "$ag_was" > $AG' EXIT; echo "${AUTOGROUP:-0}" > $AG
  fi
}

servers() { pgrep -f "^$BIN start" | tr '\n' ' '; }
cpu() { for p in $(servers); do awk '{print $14+$15}' "/proc/$p/stat"; done | paste -sd+ | bc; }

one() { # pgbench arguments
  local before after o n extra=${EXTRA:-}
  before=$(cpu); o=$(pgbench -n -T "${SECS:-15}" -M prepared "$@" "$S" 2>&1); after=$(cpu)
  n=$(grep -oP 'actually processed: \K[0-9]+' <<<"$o")
  echo "RESULT bin=$(basename "$BIN")${extra:+@${extra// /_}} args='$*' tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$o")" \
    "retried=$(grep -oP 'retried: \K[0-9]+' <<<"$o" || echo 0)" \
    "server_cpu_ms_per_txn=$(echo "scale=3; ($after - $before) * 1000 / $TICK / ${n:-1}" | bc)"
}

settle() { # spandb binary
  local quiet=0 start; start=$(date +%s)
  while [ $quiet -lt 5 ] && [ $(($(date +%s) - start)) -lt 180 ]; do
    if "$1" status --addr 127.0.0.1:27000 2>/dev/null | grep -q 'placement: no operation running'; then quiet=$((quiet + 1)); else quiet=0; fi
    sleep 2
  done
  while [ -n "${S:-}" ] && [ "$(psql "$S" -Atc 'SHOW JOBS' 2>/dev/null | wc -l)" -gt 0 ] \
    && [ $(($(date +%s) - start)) -lt 1080 ]; do sleep 2; done
  echo $(($(date +%s) - start))
}

up() { # dir
  (setsid "$BIN" demo --no-shell --dir "$1" --port-base 27000 --preferred-leader 1 > "$1.log" 2>&1 &)
  for _ in $(seq 120); do grep -q psql "$1.log" 2>/dev/null && break; sleep 1; done
}

down() {
  pkill -f "^$BIN (start|demo)"
  for _ in $(seq 30); do pgrep -f "^$BIN (start|demo)" > /dev/null || break; sleep 1; done
  pkill -9 -f "^$BIN (start|demo)" || true
}

# run_script LABEL URL ARGS...: pgbench -n -r -T $SECS -M prepared -f
# $SCRIPT ARGS... at URL (a custom script: the job queue's, the latest
# rows'); its output appended to $RAW, a RESULT line (tps, average
# latency, failed and retried transactions) to $OUT.
run_script() {
  local label=$1 url=$2; shift 2
  local o; o=$(timeout $((SECS + 120)) pgbench -n -r -T "$SECS" -M prepared -f "$SCRIPT" "$@" "$url" 2>&1)
  printf '=== %s (pgbench -n -r -T %s -M prepared -f %s %s)\n%s\n' "$label" "$SECS" "$(basename "$SCRIPT")" "$*" "$o" >> "$RAW"
  local tps lat fail retried
  tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$o" | head -1); lat=$(grep -oP 'latency average = \K[0-9.]+' <<<"$o")
  fail=$(grep -oP 'number of failed transactions: \K[0-9]+' <<<"$o"); retried=$(grep -oP 'number of transactions retried: \K[0-9]+' <<<"$o")
  echo "RESULT label=$label tps=$tps lat_avg_ms=$lat failed=${fail:-0} retried=${retried:-0} args=$*" | tee -a "$OUT"
}
