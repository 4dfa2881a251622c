#!/usr/bin/env bash
# The incremental part of bench_persist.sh alone, measured in CPU time as well as
# wall time (wall time on a shared machine is mostly noise and fsync latency).
#
# Usage: scripts/bench_incremental.sh [PORT]
#
# Starts redsnap (--snapshot-incremental yes, no append log), loads KEYS string keys
# with 100-byte random values (redis-cli --pipe), then per round: restart (the first
# SAVE after a start is full), SAVE (full), SET 1 % of the keys (random ones) to new
# 100-byte values, SAVE (incremental). Each SAVE is measured as wall time and as the
# server process's CPU time (user + sys of all its threads, /proc/<pid>/stat) from
# before the SAVE until SETTLE_MS after it returns (so fjall's background work that a
# SAVE leaves behind counts). The restart of each round after the first (a load of
# the base and its delta) is measured the same way, spawn to first PONG.
#
# Knobs (environment): BENCH_INCR_KEYS (1000000), BENCH_INCR_ROUNDS (3),
# BENCH_INCR_SETTLE_MS (300), REDSNAP_BIN (target/profiling/redsnap), REDIS_CLI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${1:-30400}
KEYS=${BENCH_INCR_KEYS:-1000000}
ROUNDS=${BENCH_INCR_ROUNDS:-3}
SETTLE_MS=${BENCH_INCR_SETTLE_MS:-300}
BIN=${REDSNAP_BIN:-$ROOT/target/profiling/redsnap}
REDIS_CLI=${REDIS_CLI:-redis-cli}
[ -x "$BIN" ] || { echo "redsnap binary $BIN not found" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redsnap-bench-incr.XXXXXX")
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '[bench-incr %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cli() { "$REDIS_CLI" -p "$PORT" "$@"; }
now() { date +%s.%N; }
# CPU seconds (user + sys) the process has used.
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
sub() { python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.3f}')" "$1" "$2"; }
settle() { python3 -c "import time, sys; time.sleep(int(sys.argv[1]) / 1000)" "$SETTLE_MS"; }

start() {
  local t0; t0=$(now)
  "$BIN" serve --port "$PORT" --bind 127.0.0.1 --dir "$WORK/data" --appendonly no \
    --save "86400 1" --snapshot-interval 0 --snapshot-incremental yes >>"$WORK/redsnap.log" 2>&1 &
  PID=$!
  until [ "$(cli ping 2>/dev/null || true)" = PONG ]; do
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/redsnap.log" >&2; exit 1; }
    sleep 0.005
  done
  READY_WALL=$(sub "$(now)" "$t0")
  READY_CPU=$(cpu "$PID")
}
stop() {
  cli shutdown nosave >/dev/null 2>&1 || true
  wait "$PID" 2>/dev/null || true
  PID=
}
# Measures one SAVE: sets SAVE_WALL and SAVE_CPU.
save() {
  local c0 t0 t1
  c0=$(cpu "$PID"); t0=$(now)
  [ "$(cli save)" = OK ] || { echo "SAVE failed" >&2; exit 1; }
  t1=$(now)
  settle
  SAVE_WALL=$(sub "$t1" "$t0")
  SAVE_CPU=$(sub "$(cpu "$PID")" "$c0")
}

log "generating $KEYS keys and the 1 % change"
python3 - "$KEYS" "$WORK/load.resp" "$WORK/change.resp" <<'PY'
import os, random, sys
n = int(sys.argv[1])
with open(sys.argv[2], "wb") as out:
    for i in range(n):
        out.write(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$100\r\n%s\r\n" % (i, os.urandom(100)))
with open(sys.argv[3], "wb") as out:
    for i in random.sample(range(n), max(1, n // 100)):
        out.write(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$100\r\n%s\r\n" % (i, os.urandom(100)))
PY
mkdir -p "$WORK/data"
start
cli --pipe <"$WORK/load.resp" >/dev/null
for i in $(seq 1 "$ROUNDS"); do
  if [ "$i" -gt 1 ]; then
    stop
    start
    log "   restart (base + delta): wall ${READY_WALL} s, cpu ${READY_CPU} s"
  fi
  save; fw=$SAVE_WALL; fc=$SAVE_CPU
  out=$(cli --pipe <"$WORK/change.resp" 2>&1 | tail -1)
  case "$out" in *"errors: 0"*) ;; *) echo "changing 1 %: $out" >&2; exit 1 ;; esac
  save; iw=$SAVE_WALL; ic=$SAVE_CPU
  [ "$(cli info persistence | tr -d '\r' | sed -n 's/^rdb_last_snapshot_incremental://p')" = 1 ] \
    || { echo "the second SAVE was not incremental" >&2; exit 1; }
  log "   round $i: full wall $fw s cpu $fc s; incremental wall $iw s cpu $ic s; ratio wall $(python3 -c "print(f'{100*$iw/$fw:.1f}')") % cpu $(python3 -c "print(f'{100*$ic/max($fc,1e-9):.1f}')") %"
done
stop
