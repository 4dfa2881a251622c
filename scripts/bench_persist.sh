#!/usr/bin/env bash
# Persistence benchmarks: redsnap next to redis-server 7 on the same dataset.
#
# Usage: scripts/bench_persist.sh
#
# Dataset (the same RESP stream is piped into both servers with redis-cli --pipe):
#   1,000,000 string keys key:000000000000.. (the names redis-benchmark -r uses) with
#   100-byte random (incompressible) values, plus 2,000 hashes of 20 fields, 1,000 lists
#   of 50 elements and 1,000 sorted sets of 50 members.
#
# Measures, with both servers on free loopback ports:
#   1. full snapshot: wall time of SAVE (median of BENCH_PERSIST_ROUNDS) and size
#      (dump.rdb vs the snapshot directory, allocated blocks);
#   2. restore on startup: from spawning the process to the first PONG (redis answers
#      -LOADING until the RDB is loaded), median of BENCH_PERSIST_ROUNDS;
#   3. p99 GET latency (redis-benchmark -t get -c 50 -r <keys>) idle vs while BGSAVE runs
#      back to back for the whole benchmark;
#   4. incremental snapshots (--snapshot-incremental yes): SAVE after 1 % of the string
#      keys got new values vs the full SAVE before it (the first after a start is full).
#   5. throughput with the append log, fsync every second: redis --appendonly yes
#      --appendfsync everysec --save '' vs redsnap --appendonly yes --appendfsync everysec
#      --save "" --snapshot-interval 0 (no snapshots on either side), -P 1 and -P 16;
#   6. p99 GET latency while `redis-cli --rdb` (a replica's full sync) runs back to back;
#   7. backup time: `redsnap backup` against redsnap vs `redis-cli --rdb` against redis;
#   8. loading redis's dump.rdb: redis-server at start vs `redsnap serve --import`;
# Then replaces (or appends) the "## Persistence" section of BENCHMARKS.md; the rest of
# the file is left alone.
#
# Knobs (environment): BENCH_PERSIST_KEYS (1000000), BENCH_PERSIST_ROUNDS (3),
# BENCH_PERSIST_GET_REQUESTS (300000), BENCH_PERSIST_AOF_REQUESTS (200000),
# BENCH_SKIP_BUILD=1 (use the existing release binary), REDSNAP_BIN, REDIS_SERVER,
# REDIS_BENCHMARK, REDIS_CLI, BENCH_PERSIST_NO_WRITE=1 (print the section only).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

KEYS=${BENCH_PERSIST_KEYS:-1000000}
ROUNDS=${BENCH_PERSIST_ROUNDS:-3}
GET_REQUESTS=${BENCH_PERSIST_GET_REQUESTS:-300000}
AOF_REQUESTS=${BENCH_PERSIST_AOF_REQUESTS:-200000}
AOF_TESTS=set,incr,lpush,hset
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}
OUT_MD=$ROOT/BENCHMARKS.md

log() { printf '[bench-persist %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI" python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
REDIS_VERSION=$("$REDIS_SERVER" --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')

START=$(date +%s)
if [ -n "${REDSNAP_BIN:-}" ]; then
  BIN=$REDSNAP_BIN
elif [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then
  BIN=$ROOT/target/release/redsnap
else
  log "building the release binary"
  cargo build --release -p redsnap-cli
  BIN=$ROOT/target/release/redsnap
fi
[ -x "$BIN" ] || die "redsnap binary $BIN not found"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redsnap-bench-persist.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS=$WORK/results
: >"$RESULTS"
put() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
median() { python3 -c "import statistics, sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.3f}')" "$@"; }
cli() { local port=$1; shift; "$REDIS_CLI" -p "$port" "$@"; }

# Waits until PORT answers PONG (not -LOADING); prints the seconds since T0.
wait_pong() {
  local port=$1 t0=$2 pid=$3 deadline=$(( $(date +%s) + 300 ))
  while :; do
    if [ "$(cli "$port" ping 2>/dev/null || true)" = PONG ]; then
      elapsed "$t0" "$(now)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "server on port $port exited (see $WORK/*.log)"
    [ "$(date +%s)" -lt "$deadline" ] || die "server on port $port not ready after 300 s"
    sleep 0.005
  done
}

# start_redis PORT DIR ARGS... / start_redsnap PORT DIR ARGS...: start, wait for PONG,
# set LAST_PID and LAST_READY (seconds from spawn to PONG).
start_redis() {
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"
  local t0; t0=$(now)
  "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --dir "$dir" --dbfilename dump.rdb \
    --daemonize no --protected-mode no --repl-diskless-sync-delay 0 "$@" >>"$WORK/redis-$port.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  LAST_READY=$(wait_pong "$port" "$t0" "$LAST_PID")
}
start_redsnap() {
  local port=$1 dir=$2; shift 2
  local t0; t0=$(now)
  "$BIN" serve --port "$port" --bind 127.0.0.1 --dir "$dir" "$@" >>"$WORK/redsnap-$port.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  LAST_READY=$(wait_pong "$port" "$t0" "$LAST_PID")
}
stop_server() {
  local port=$1 pid=$2
  cli "$port" shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
dbsize() { cli "$1" dbsize; }
info_field() { cli "$1" info persistence | tr -d '\r' | sed -n "s/^$2://p"; }

# p99 (ms) and rps of one redis-benchmark test from its --csv output.
csv_field() {
  python3 - "$1" "$2" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head = rows[0]
for r in rows[1:]:
    if r:
        print(r[head.index(sys.argv[2])])
        break
PY
}

# ---------------------------------------------------------------------------
log "generating the dataset ($KEYS keys, 100-byte random values, + hashes, lists, zsets)"
python3 - "$KEYS" "$WORK/data.resp" <<'PY'
import os, sys
n = int(sys.argv[1])
out = open(sys.argv[2], "wb", buffering=1 << 22)
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
rnd = os.urandom
chunk = []
for i in range(n):
    chunk.append(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$100\r\n%s\r\n" % (i, rnd(100)))
    if len(chunk) == 10000:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
for i in range(2000):
    args = [b"HSET", b"hash:%d" % i]
    for f in range(20):
        args += [b"field:%d" % f, rnd(16).hex().encode()]
    out.write(cmd(*args))
for i in range(1000):
    out.write(cmd(b"RPUSH", b"list:%d" % i, *[rnd(12).hex().encode() for _ in range(50)]))
for i in range(1000):
    args = [b"ZADD", b"zset:%d" % i]
    for m in range(50):
        args += [b"%d.%d" % (m, i), b"member:%d" % m]
    out.write(cmd(*args))
out.close()
PY
EXPECTED_KEYS=$((KEYS + 4000))

load() {
  local port=$1 out
  out=$(cli "$port" --pipe <"$WORK/data.resp" 2>&1 | tail -1)
  case "$out" in *"errors: 0"*) ;; *) die "loading into port $port: $out" ;; esac
  local n; n=$(dbsize "$port")
  [ "$n" = "$EXPECTED_KEYS" ] || die "port $port holds $n keys, expected $EXPECTED_KEYS"
}

# Full snapshots for parts 1-3 (snapshot-incremental is on by default: a second SAVE
# with nothing changed would write nothing); part 5 turns it on.
RS_SNAP_ARGS=(--appendonly no --save "86400 1" --snapshot-interval 0 --snapshot-incremental no)
R_SNAP_ARGS=(--save '' --appendonly no)

# ---------------------------------------------------------------------------
RP=$(free_port); SP=$(free_port)
RDIR=$WORK/redis; SDIR=$WORK/redsnap
log "loading redis-server $REDIS_VERSION (port $RP) and redsnap (port $SP)"
start_redis "$RP" "$RDIR" "${R_SNAP_ARGS[@]}"; RPID=$LAST_PID
start_redsnap "$SP" "$SDIR" "${RS_SNAP_ARGS[@]}"; SPID=$LAST_PID
t0=$(now); load "$RP"; put load_redis "$(elapsed "$t0" "$(now)")"
t0=$(now); load "$SP"; put load_redsnap "$(elapsed "$t0" "$(now)")"
put redis_used_memory "$(cli "$RP" info memory | tr -d '\r' | sed -n 's/^used_memory://p')"
put redsnap_used_memory "$(cli "$SP" info memory | tr -d '\r' | sed -n 's/^used_memory://p')"

log "1. full snapshot: SAVE x $ROUNDS on each"
r_save=(); s_save=()
for i in $(seq 1 "$ROUNDS"); do
  t0=$(now); [ "$(cli "$RP" save)" = OK ] || die "redis SAVE failed"; r_save+=("$(elapsed "$t0" "$(now)")")
  t0=$(now); [ "$(cli "$SP" save)" = OK ] || die "redsnap SAVE failed"; s_save+=("$(elapsed "$t0" "$(now)")")
  log "   round $i: redis ${r_save[-1]} s, redsnap ${s_save[-1]} s"
done
put save_redis "$(median "${r_save[@]}")"
put save_redsnap "$(median "${s_save[@]}")"
put save_redis_all "${r_save[*]}"
put save_redsnap_all "${s_save[*]}"
put size_redis "$(stat -c %s "$RDIR/dump.rdb")"
put size_redsnap_du "$(du -s -B1 "$SDIR/snapshot" | cut -f1)"
put size_redsnap_info "$(info_field "$SP" rdb_last_snapshot_size)"
stop_server "$RP" "$RPID"; stop_server "$SP" "$SPID"

log "2. restore on startup x $ROUNDS on each"
r_load=(); s_load=()
for i in $(seq 1 "$ROUNDS"); do
  start_redis "$RP" "$RDIR" "${R_SNAP_ARGS[@]}"; RPID=$LAST_PID; r_load+=("$LAST_READY")
  [ "$(dbsize "$RP")" = "$EXPECTED_KEYS" ] || die "redis restored $(dbsize "$RP") keys"
  if [ "$i" -lt "$ROUNDS" ]; then stop_server "$RP" "$RPID"; fi
  start_redsnap "$SP" "$SDIR" "${RS_SNAP_ARGS[@]}"; SPID=$LAST_PID; s_load+=("$LAST_READY")
  [ "$(dbsize "$SP")" = "$EXPECTED_KEYS" ] || die "redsnap restored $(dbsize "$SP") keys"
  if [ "$i" -lt "$ROUNDS" ]; then stop_server "$SP" "$SPID"; fi
  log "   round $i: redis ${r_load[-1]} s, redsnap ${s_load[-1]} s"
done
put restore_redis "$(median "${r_load[@]}")"
put restore_redsnap "$(median "${s_load[@]}")"
put restore_redis_all "${r_load[*]}"
put restore_redsnap_all "${s_load[*]}"

log "3. p99 GET latency idle vs during back-to-back BGSAVE"
get_bench() {
  "$REDIS_BENCHMARK" -p "$1" -t get -n "$GET_REQUESTS" -r "$KEYS" -c 50 --csv >"$2" 2>/dev/null
}
# Keeps a BGSAVE running on PORT until STOPFILE disappears; prints how many finished.
bgsave_loop() {
  local port=$1 stopfile=$2 n=0
  while [ -e "$stopfile" ]; do
    if [ "$(info_field "$port" rdb_bgsave_in_progress)" = 0 ]; then
      cli "$port" bgsave >/dev/null 2>&1 && n=$((n + 1))
    fi
    sleep 0.02
  done
  while [ "$(info_field "$port" rdb_bgsave_in_progress)" != 0 ]; do sleep 0.05; done
  echo "$n"
}
for side in redis redsnap; do
  if [ "$side" = redis ]; then port=$RP; else port=$SP; fi
  get_bench "$port" "$WORK/get-idle-$side.csv"
  touch "$WORK/stop-$side"
  bgsave_loop "$port" "$WORK/stop-$side" >"$WORK/bgsaves-$side" &
  loop_pid=$!
  sleep 0.3
  get_bench "$port" "$WORK/get-snap-$side.csv"
  rm -f "$WORK/stop-$side"
  wait "$loop_pid"
  put "get_idle_p99_$side" "$(csv_field "$WORK/get-idle-$side.csv" p99_latency_ms)"
  put "get_idle_rps_$side" "$(csv_field "$WORK/get-idle-$side.csv" rps)"
  put "get_snap_p99_$side" "$(csv_field "$WORK/get-snap-$side.csv" p99_latency_ms)"
  put "get_snap_rps_$side" "$(csv_field "$WORK/get-snap-$side.csv" rps)"
  put "bgsaves_$side" "$(cat "$WORK/bgsaves-$side")"
  put "bgsave_status_$side" "$(info_field "$port" rdb_last_bgsave_status)"
  log "   $side: idle p99 $(csv_field "$WORK/get-idle-$side.csv" p99_latency_ms) ms, during snapshots $(csv_field "$WORK/get-snap-$side.csv" p99_latency_ms) ms ($(cat "$WORK/bgsaves-$side") BGSAVEs)"
done

log "6. GET p99 while replicas do full syncs (redis-cli --rdb back to back)"
# Keeps a full sync running on PORT until STOPFILE disappears; prints how many finished.
sync_loop() {
  local port=$1 stopfile=$2 out=$3 n=0
  while [ -e "$stopfile" ]; do
    cli "$port" --rdb "$out" >/dev/null 2>&1 && n=$((n + 1))
  done
  echo "$n"
}
for side in redis redsnap; do
  if [ "$side" = redis ]; then port=$RP; else port=$SP; fi
  touch "$WORK/stop-sync-$side"
  sync_loop "$port" "$WORK/stop-sync-$side" "$WORK/sync-$side.rdb" >"$WORK/syncs-$side" &
  loop_pid=$!
  sleep 0.3
  get_bench "$port" "$WORK/get-sync-$side.csv"
  rm -f "$WORK/stop-sync-$side"
  wait "$loop_pid"
  put "get_sync_p99_$side" "$(csv_field "$WORK/get-sync-$side.csv" p99_latency_ms)"
  put "get_sync_rps_$side" "$(csv_field "$WORK/get-sync-$side.csv" rps)"
  put "syncs_$side" "$(cat "$WORK/syncs-$side")"
  log "   $side: during full syncs p99 $(csv_field "$WORK/get-sync-$side.csv" p99_latency_ms) ms ($(cat "$WORK/syncs-$side") syncs)"
done

log "7. backup: redsnap backup (redsnap) vs redis-cli --rdb (redis-server), x $ROUNDS"
r_bak=(); s_bak=()
for i in $(seq 1 "$ROUNDS"); do
  rm -f "$WORK/bak-redis.rdb" "$WORK"/bak-redsnap.rdb*
  t0=$(now); cli "$RP" --rdb "$WORK/bak-redis.rdb" >/dev/null 2>&1 || die "redis-cli --rdb failed"
  r_bak+=("$(elapsed "$t0" "$(now)")")
  t0=$(now)
  "$BIN" backup --from "redis://127.0.0.1:$SP" --to "$WORK/bak-redsnap.rdb" >/dev/null 2>"$WORK/backup.err" \
    || die "redsnap backup failed: $(cat "$WORK/backup.err")"
  s_bak+=("$(elapsed "$t0" "$(now)")")
  log "   round $i: redis-cli --rdb ${r_bak[-1]} s, redsnap backup ${s_bak[-1]} s"
done
put backup_redis "$(median "${r_bak[@]}")"
put backup_redsnap "$(median "${s_bak[@]}")"
put backup_redis_all "${r_bak[*]}"
put backup_redsnap_all "${s_bak[*]}"
put backup_size_redis "$(stat -c %s "$WORK/bak-redis.rdb")"
put backup_size_redsnap "$(stat -c %s "$WORK/bak-redsnap.rdb")"
stop_server "$RP" "$RPID"; stop_server "$SP" "$SPID"

log "8. loading redis's dump.rdb: redis-server at start vs redsnap serve --import, x $ROUNDS"
r_imp=(); s_imp=()
for i in $(seq 1 "$ROUNDS"); do
  start_redis "$RP" "$RDIR" "${R_SNAP_ARGS[@]}"; RPID=$LAST_PID; r_imp+=("$LAST_READY")
  [ "$(dbsize "$RP")" = "$EXPECTED_KEYS" ] || die "redis loaded $(dbsize "$RP") keys"
  stop_server "$RP" "$RPID"
  rm -rf "$WORK/import"; mkdir -p "$WORK/import"
  start_redsnap "$SP" "$WORK/import" "${RS_SNAP_ARGS[@]}" --import "$RDIR/dump.rdb"; SPID=$LAST_PID
  s_imp+=("$LAST_READY")
  [ "$(dbsize "$SP")" = "$EXPECTED_KEYS" ] || die "redsnap imported $(dbsize "$SP") keys"
  stop_server "$SP" "$SPID"
  log "   round $i: redis ${r_imp[-1]} s, redsnap --import ${s_imp[-1]} s"
done
put import_redis "$(median "${r_imp[@]}")"
put import_redsnap "$(median "${s_imp[@]}")"
put import_redis_all "${r_imp[*]}"
put import_redsnap_all "${s_imp[*]}"
put import_rdb_size "$(stat -c %s "$RDIR/dump.rdb")"
rm -rf "$WORK/import"

log "4. incremental snapshot after 1 % of keys changed"
python3 - "$KEYS" "$WORK/change.resp" <<'PY'
import os, random, sys
n = int(sys.argv[1])
with open(sys.argv[2], "wb") as out:
    for i in random.sample(range(n), max(1, n // 100)):
        out.write(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$100\r\n%s\r\n" % (i, os.urandom(100)))
PY
start_redsnap "$SP" "$SDIR" --appendonly no --save "86400 1" --snapshot-interval 0 --snapshot-incremental yes
SPID=$LAST_PID
inc_full=(); inc_part=()
for i in $(seq 1 "$ROUNDS"); do
  if [ "$i" -gt 1 ]; then
    # The first SAVE after a start is full; restart for each full measurement.
    stop_server "$SP" "$SPID"
    start_redsnap "$SP" "$SDIR" --appendonly no --save "86400 1" --snapshot-interval 0 --snapshot-incremental yes
    SPID=$LAST_PID
  fi
  t0=$(now); [ "$(cli "$SP" save)" = OK ] || die "redsnap SAVE failed"; inc_full+=("$(elapsed "$t0" "$(now)")")
  out=$(cli "$SP" --pipe <"$WORK/change.resp" 2>&1 | tail -1)
  case "$out" in *"errors: 0"*) ;; *) die "changing 1 %: $out" ;; esac
  t0=$(now); [ "$(cli "$SP" save)" = OK ] || die "redsnap SAVE failed"; inc_part+=("$(elapsed "$t0" "$(now)")")
  log "   round $i: full ${inc_full[-1]} s, after 1 % changed ${inc_part[-1]} s"
done
put inc_full "$(median "${inc_full[@]}")"
put inc_part "$(median "${inc_part[@]}")"
put inc_full_all "${inc_full[*]}"
put inc_part_all "${inc_part[*]}"
put inc_changed "$(( KEYS / 100 ))"
stop_server "$SP" "$SPID"

log "5. throughput with appendonly everysec"
for pipe in 1 16; do
  for side in redis redsnap; do
    rm -rf "$WORK/aof-$side"; mkdir -p "$WORK/aof-$side"
    if [ "$side" = redis ]; then
      port=$RP
      start_redis "$port" "$WORK/aof-$side" --appendonly yes --appendfsync everysec --save ''
    else
      port=$SP
      start_redsnap "$port" "$WORK/aof-$side" --appendonly yes --appendfsync everysec --save "" --snapshot-interval 0
    fi
    pid=$LAST_PID
    "$REDIS_BENCHMARK" -p "$port" -t "$AOF_TESTS" -n "$AOF_REQUESTS" -r "$KEYS" -d 100 -c 50 -P "$pipe" --csv \
      >"$WORK/aof-$side-P$pipe.csv" 2>/dev/null
    put "aof_status_$side" "$(info_field "$port" aof_last_write_status)"
    stop_server "$port" "$pid"
    log "   -P $pipe $side done"
  done
done
python3 - "$WORK" "$RESULTS" <<'PY'
import csv, sys
work, results = sys.argv[1], sys.argv[2]
with open(results, "a") as out:
    for pipe in (1, 16):
        for side in ("redis", "redsnap"):
            rows = list(csv.reader(open(f"{work}/aof-{side}-P{pipe}.csv")))
            head = rows[0]
            for r in rows[1:]:
                if not r:
                    continue
                t = r[0].split()[0].lower()
                out.write(f"aof_rps_{side}_P{pipe}_{t}={r[head.index('rps')]}\n")
                out.write(f"aof_p99_{side}_P{pipe}_{t}={r[head.index('p99_latency_ms')]}\n")
PY

put commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
put date "$(date -u '+%Y-%m-%d %H:%M UTC')"
put redis_version "$REDIS_VERSION"
put keys "$KEYS"
put rounds "$ROUNDS"
put get_requests "$GET_REQUESTS"
put aof_requests "$AOF_REQUESTS"
put aof_tests "$AOF_TESTS"
put duration "$(( $(date +%s) - START ))"

log "writing the Persistence section"
python3 - "$RESULTS" "$OUT_MD" "${BENCH_PERSIST_NO_WRITE:-0}" <<'PY'
import re, sys
res = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    res[k] = v
f = lambda k: float(res[k])
def ratio(a, b):
    return f"{f(a) / f(b):.2f}" if f(b) else "n/a"
mb = lambda k: f"{f(k) / 1e6:.1f} MB"
L = []
L.append("## Persistence")
L.append("")
L.append(f"Generated by `scripts/bench_persist.sh` on {res['date']} at commit `{res['commit']}` "
         f"(release build, redis-server {res['redis_version']}, both servers on loopback on the "
         f"same 2 shared cores as the client). Dataset, loaded identically into both with "
         f"`redis-cli --pipe`: {int(res['keys']):,} string keys with 100-byte random "
         f"(incompressible) values, plus 2,000 hashes of 20 fields, 1,000 lists of 50 "
         f"elements and 1,000 sorted sets of 50 members. redis runs with `--save '' "
         f"--appendonly no` and redsnap with `--appendonly no --save \"86400 1\" "
         f"--snapshot-interval 0 --snapshot-incremental no` (every snapshot full) for the "
         f"table below. Ratio = redsnap / redis.")
L.append("")
L.append("| measure | redis | redsnap | ratio | target |")
L.append("|---|---:|---:|---:|---|")
L.append(f"| full snapshot, SAVE wall time (median of {res['rounds']}) | {f('save_redis'):.2f} s | "
         f"{f('save_redsnap'):.2f} s | {ratio('save_redsnap', 'save_redis')} | <= 1.0 |")
L.append(f"| snapshot size (dump.rdb vs `snapshot/` allocated) | {mb('size_redis')} | "
         f"{mb('size_redsnap_du')} | {ratio('size_redsnap_du', 'size_redis')} | <= 1.1 |")
L.append(f"| restore on startup, spawn to first PONG (median of {res['rounds']}) | "
         f"{f('restore_redis'):.2f} s | {f('restore_redsnap'):.2f} s | "
         f"{ratio('restore_redsnap', 'restore_redis')} | <= 1.0 |")
for side in ("redis", "redsnap"):
    pass
L.append(f"| GET p99 idle | {f('get_idle_p99_redis'):.3f} ms | {f('get_idle_p99_redsnap'):.3f} ms | "
         f"{ratio('get_idle_p99_redsnap', 'get_idle_p99_redis')} | |")
L.append(f"| GET p99 during back-to-back BGSAVE | {f('get_snap_p99_redis'):.3f} ms | "
         f"{f('get_snap_p99_redsnap'):.3f} ms | {ratio('get_snap_p99_redsnap', 'get_snap_p99_redis')} | |")
L.append(f"| GET p99 during snapshot / idle, same server | "
         f"{ratio('get_snap_p99_redis', 'get_idle_p99_redis')}x | "
         f"{ratio('get_snap_p99_redsnap', 'get_idle_p99_redsnap')}x | | redsnap <= 2x idle |")
L.append(f"| GET rps idle / during snapshots | {f('get_idle_rps_redis'):,.0f} / "
         f"{f('get_snap_rps_redis'):,.0f} | {f('get_idle_rps_redsnap'):,.0f} / "
         f"{f('get_snap_rps_redsnap'):,.0f} | | |")
L.append("")
L.append(f"All rounds (s): SAVE redis {res['save_redis_all']}, redsnap {res['save_redsnap_all']}; "
         f"restore redis {res['restore_redis_all']}, redsnap {res['restore_redsnap_all']}. "
         f"redsnap's snapshot size as INFO `rdb_last_snapshot_size` reports it: "
         f"{mb('size_redsnap_info')} (the fjall journal `0.jnl` is a sparse 64 MB file and is "
         f"counted by allocated blocks only). Loading the dataset through `redis-cli --pipe` "
         f"took {f('load_redis'):.1f} s on redis and {f('load_redsnap'):.1f} s on redsnap; "
         f"used_memory after loading: redis {mb('redis_used_memory')}, redsnap "
         f"{mb('redsnap_used_memory')}.")
L.append("")
L.append(f"GET latency: `redis-benchmark -t get -n {int(res['get_requests']):,} -r {int(res['keys']):,} "
         f"-c 50 --csv`, once idle and once while a loop starts a new BGSAVE as soon as the "
         f"previous one ends ({res['bgsaves_redis']} BGSAVEs on redis, {res['bgsaves_redsnap']} "
         f"on redsnap during the run; last status redis {res['bgsave_status_redis']}, redsnap "
         f"{res['bgsave_status_redsnap']}). redis forks; redsnap writes from an O(1) clone of "
         f"its persistent maps on a snapshot thread, which competes with the server for the "
         f"2 cores.")
L.append("")
L.append("### Backups, migration and replicas")
L.append("")
L.append(f"The same dataset. Full syncs: a loop runs `redis-cli --rdb` (a replica's full "
         f"synchronization: SYNC, the RDB, then the connection closes) back to back while "
         f"the same GET benchmark runs ({res['syncs_redis']} syncs on redis, "
         f"{res['syncs_redsnap']} on redsnap). Backup: `redsnap backup --from redis://... "
         f"--to FILE` against redsnap vs `redis-cli --rdb FILE` against redis-server "
         f"(median of {res['rounds']}). Import: redis's own `dump.rdb` of this dataset "
         f"({mb('import_rdb_size')}), loaded by redis-server at start vs `redsnap serve "
         f"--import dump.rdb` into an empty data directory (which loads it into memory "
         f"and writes its first snapshot in the background), spawn to first PONG, median of {res['rounds']}.")
L.append("")
L.append("| measure | redis | redsnap | ratio | target |")
L.append("|---|---:|---:|---:|---|")
L.append(f"| GET p99 during full syncs | {f('get_sync_p99_redis'):.3f} ms | "
         f"{f('get_sync_p99_redsnap'):.3f} ms | {ratio('get_sync_p99_redsnap', 'get_sync_p99_redis')} | |")
L.append(f"| GET p99 during full syncs / idle, same server | "
         f"{ratio('get_sync_p99_redis', 'get_idle_p99_redis')}x | "
         f"{ratio('get_sync_p99_redsnap', 'get_idle_p99_redsnap')}x | | redsnap <= 2x idle |")
L.append(f"| backup of the dataset, wall time | {f('backup_redis'):.2f} s | "
         f"{f('backup_redsnap'):.2f} s | {ratio('backup_redsnap', 'backup_redis')} | <= 1.0 |")
L.append(f"| backup file size | {mb('backup_size_redis')} | {mb('backup_size_redsnap')} | "
         f"{ratio('backup_size_redsnap', 'backup_size_redis')} | |")
L.append(f"| loading redis's dump.rdb, spawn to first PONG | {f('import_redis'):.2f} s | "
         f"{f('import_redsnap'):.2f} s | {ratio('import_redsnap', 'import_redis')} | <= 1.0 |")
L.append("")
L.append(f"All rounds (s): backup redis {res['backup_redis_all']}, redsnap "
         f"{res['backup_redsnap_all']}; import redis {res['import_redis_all']}, redsnap "
         f"{res['import_redsnap_all']}.")
L.append("")
L.append(f"### Throughput with the append log, fsync every second")
L.append("")
L.append(f"redis `--appendonly yes --appendfsync everysec --save ''` vs redsnap "
         f"`--appendonly yes --appendfsync everysec --save \"\" --snapshot-interval 0`, fresh "
         f"data directories, `redis-benchmark -t {res['aof_tests']} -n {int(res['aof_requests']):,} "
         f"-r {int(res['keys']):,} -d 100 -c 50 -P <depth> --csv`, one run each. Target: ratio >= 1.0.")
L.append("")
L.append("| test | depth | redis rps | redsnap rps | ratio | redis p99 ms | redsnap p99 ms |")
L.append("|---|---:|---:|---:|---:|---:|---:|")
import math
ratios = []
for pipe in (1, 16):
    for t in res["aof_tests"].split(","):
        kr, ks = f"aof_rps_redis_P{pipe}_{t}", f"aof_rps_redsnap_P{pipe}_{t}"
        if kr not in res or ks not in res:
            continue
        r = f(ks) / f(kr)
        ratios.append(r)
        L.append(f"| {t.upper()} | {pipe} | {f(kr):,.0f} | {f(ks):,.0f} | {r:.2f} | "
                 f"{f(f'aof_p99_redis_P{pipe}_{t}'):.3f} | {f(f'aof_p99_redsnap_P{pipe}_{t}'):.3f} |")
if ratios:
    g = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    L.append("")
    L.append(f"Geometric mean of the ratios: **{g:.2f}**. Last write status: redis "
             f"{res.get('aof_status_redis', '?')}, redsnap {res.get('aof_status_redsnap', '?')}.")
L.append("")
L.append("### Incremental snapshots")
L.append("")
L.append(f"redsnap with `--snapshot-incremental yes` (the default): the first SAVE after a "
         f"start is full; then {int(res['inc_changed']):,} random string keys (1 %) get new "
         f"100-byte values and SAVE writes only the changes. Median of {res['rounds']} "
         f"(rounds: full {res['inc_full_all']} s, incremental {res['inc_part_all']} s). "
         f"Target: <= 5 % of a full one.")
L.append("")
L.append("| full SAVE | SAVE after 1 % changed | ratio |")
L.append("|---:|---:|---:|")
L.append(f"| {f('inc_full'):.3f} s | {f('inc_part'):.3f} s | "
         f"{100 * f('inc_part') / f('inc_full'):.1f} % |")
L.append("")
L.append(f"Reproduce: `scripts/bench_persist.sh` (took {res['duration']} s here; "
         f"BENCH_PERSIST_ROUNDS, BENCH_PERSIST_KEYS, BENCH_SKIP_BUILD=1 are the knobs).")
section = "\n".join(L) + "\n"
if sys.argv[3] == "1":
    print(section)
    sys.exit(0)
path = sys.argv[2]
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
# Replace a previous Persistence section (up to the next "## " heading), else append.
m = re.search(r"^## Persistence\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
if m:
    text = text[: m.start()] + section + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip("\n") + "\n\n" + section if text else section
open(path, "w").write(text)
print(section)
PY
log "done in $(( $(date +%s) - START )) s"
