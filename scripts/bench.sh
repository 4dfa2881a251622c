#!/usr/bin/env bash
# Throughput and memory of redsnap next to redis-server 7, on this machine.
#
# Usage: scripts/bench.sh
#
# 1. builds the release binary (cargo build --release -p redsnap-cli);
# 2. for each persistence mode of BENCH_MODES, starts redis-server and redsnap on free
#    loopback ports with fresh data directories: "off" (redis --save '' --appendonly no,
#    redsnap --appendonly no --save ""), "everysec" (redis --appendonly yes --appendfsync
#    everysec, redsnap --appendonly yes --appendfsync everysec --save ""
#    --snapshot-interval 0);
# 3. runs redis-benchmark (-c 50 -r 100000 -n 200000 --csv) against each, interleaved
#    (redis, redsnap, redis, redsnap, ...) for 5 rounds, with -P 1 and -P 16, and keeps
#    the median rps and p99 of every test, one table per (mode, pipeline);
# 4. restarts both servers, loads the same 1,000,000 keys with 100-byte values into each
#    (SET key:N, one RESP stream through redis-cli --pipe) and reads INFO memory
#    used_memory and VmRSS from /proc/<pid>/status at three moments (issue 16):
#    a. after the load;
#    b. after a BGSAVE (waited for) and then overwriting every key once (the same
#       stream with other values);
#    c. the peak during a BGSAVE while 20 clients overwrite random keys of the set
#       (redis-benchmark SET key:__rand_int__): the sum of the proportional set size
#       (Pss, /proc/<pid>/smaps_rollup) of the server and its children, sampled
#       every 50 ms, so Redis's fork counts with the pages it copied;
# 5. writes BENCHMARKS.md and docs/bench-ratios.svg (scripts/bench_report.py); sections of
#    BENCHMARKS.md written by other scripts (e.g. "## Persistence" from bench_persist.sh)
#    are kept.
#
# Tests whose command redsnap does not implement yet are left out for both servers
# and listed in BENCHMARKS.md.
#
# Knobs (environment): BENCH_ROUNDS (5), BENCH_MODES (off,everysec), BENCH_BUDGET_SECONDS
# (150 per round per mode, 1500 by default: fewer rounds are run when the next one would
# not fit), BENCH_REQUESTS (200000), BENCH_CLIENTS (50),
# BENCH_KEYSPACE (100000), BENCH_TESTS (the list below), BENCH_MEM_KEYS (1000000),
# BENCH_VALUE_SIZE (100), BENCH_SKIP_BUILD=1 (use the existing release binary),
# BENCH_PARTS (throughput,memory: the parts to run), BENCH_OUT_MD (BENCHMARKS.md),
# BENCH_OUT_SVG (docs/bench-ratios.svg), BENCH_PORTS (lo-hi: ports to use; any free one),
# REDSNAP_BIN, REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROUNDS=${BENCH_ROUNDS:-5}
MODES=${BENCH_MODES:-off,everysec}
IFS=, read -r -a MODE_LIST <<<"$MODES"
for m in "${MODE_LIST[@]}"; do
  case "$m" in off|everysec) ;; *) echo "bench.sh: unknown mode '$m' in BENCH_MODES (off, everysec)" >&2; exit 1 ;; esac
done
# Wall-clock budget of the throughput rounds (all modes): ~2 min per round per mode.
BUDGET=${BENCH_BUDGET_SECONDS:-$(( 150 * ROUNDS * ${#MODE_LIST[@]} ))}
REQUESTS=${BENCH_REQUESTS:-200000}
CLIENTS=${BENCH_CLIENTS:-50}
KEYSPACE=${BENCH_KEYSPACE:-100000}
TESTS=${BENCH_TESTS:-set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100,mset}
PIPELINES="1 16"
MEM_KEYS=${BENCH_MEM_KEYS:-1000000}
VALUE_SIZE=${BENCH_VALUE_SIZE:-100}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}
OUT_MD=${BENCH_OUT_MD:-$ROOT/BENCHMARKS.md}
PARTS=${BENCH_PARTS:-throughput,memory}
part() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
OUT_SVG=${BENCH_OUT_SVG:-$ROOT/docs/bench-ratios.svg}

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI" python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (redis-server/redis-tools 7 and python3 are needed)"
done
REDIS_VERSION=$("$REDIS_SERVER" --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
case "$REDIS_VERSION" in
  7.*|8.*) ;;
  *) log "warning: redis-server $REDIS_VERSION is not 7.x; redis-benchmark < 7 prints no p99 in --csv" ;;
esac

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "${REDSNAP_BIN:-}" ]; then
  BIN=$REDSNAP_BIN
elif [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then
  BIN=$ROOT/target/release/redsnap
else
  log "building release binary"
  cargo build --release -p redsnap-cli
  BIN=$ROOT/target/release/redsnap
fi
[ -x "$BIN" ] || die "redsnap binary $BIN not found"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redsnap-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 - "${BENCH_PORTS:-}" <<'PY'
import random, socket, sys
rng = sys.argv[1]
if not rng:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); sys.exit()
lo, hi = (int(x) for x in rng.split("-"))
ports = list(range(lo, hi + 1)); random.shuffle(ports)
for p in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); sys.exit()
    except OSError:
        pass
    finally:
        s.close()
sys.exit("no free port in " + rng)
PY
}

wait_ready() {  # port name logfile
  for _ in $(seq 1 400); do
    if [ "$("$REDIS_CLI" -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = PONG ]; then return 0; fi
    sleep 0.05
  done
  tail -20 "$3" >&2 || true
  die "$2 on port $1 did not answer PING"
}

# start_server redis|redsnap [snapshots|everysec] -> sets SERVER_PORT and SERVER_PID.
# With "snapshots", BGSAVE works on both (redsnap needs a save point for its data dir;
# one that never fires) and neither snapshots on its own. With "everysec", both keep an
# append log fsynced every second and take no snapshots.
start_server() {
  local kind=$1 port dir
  port=$(free_port)
  dir=$WORK/$kind-$port
  mkdir -p "$dir"
  if [ "$kind" = redis ] && [ "${2:-}" = everysec ]; then
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly yes \
      --appendfsync everysec --dir "$dir" --daemonize no --logfile "$dir/log" &
  elif [ "$kind" = redis ]; then
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$dir" --daemonize no --logfile "$dir/log" &
  elif [ "${2:-}" = everysec ]; then
    "$BIN" serve --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
      --appendfsync everysec --save "" --snapshot-interval 0 >"$dir/log" 2>&1 &
  elif [ "${2:-}" = snapshots ]; then
    "$BIN" serve --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly no \
      --save "86400 2000000000" --snapshot-interval 0 >"$dir/log" 2>&1 &
  else
    "$BIN" serve --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly no --save "" \
      >"$dir/log" 2>&1 &
  fi
  SERVER_PID=$!
  SERVER_PORT=$port
  PIDS+=("$SERVER_PID")
  wait_ready "$port" "$kind" "$dir/log"
}

stop_server() {  # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cli() { "$REDIS_CLI" -h 127.0.0.1 -p "$@"; }

# ---------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------
mkdir -p "$WORK/csv"
FAILED=()
MISSING=()
MODE_ROUNDS=()
RUN_LIST=
DONE_ROUNDS=0
if part throughput; then
# Leave out tests whose command redsnap does not know yet (for both servers).
probe_cmd() {
  case "$1" in
    set) echo "SET bench:probe:s v" ;;
    get) echo "GET bench:probe:s" ;;
    incr) echo "INCR bench:probe:n" ;;
    lpush) echo "LPUSH bench:probe:l v" ;;
    rpush) echo "RPUSH bench:probe:l v" ;;
    lpop) echo "LPOP bench:probe:l" ;;
    rpop) echo "RPOP bench:probe:l" ;;
    sadd) echo "SADD bench:probe:set v" ;;
    spop) echo "SPOP bench:probe:set" ;;
    hset) echo "HSET bench:probe:h f v" ;;
    zadd) echo "ZADD bench:probe:z 1 v" ;;
    zpopmin) echo "ZPOPMIN bench:probe:z" ;;
    lrange*) echo "LRANGE bench:probe:l 0 99" ;;
    mset) echo "MSET bench:probe:s v" ;;
    ping*) echo "PING" ;;
    *) echo "" ;;
  esac
}
probe_tests() {  # redsnap port -> sets RUN_LIST and MISSING
  local t probe reply
  RUN_TESTS=()
  MISSING=()
  IFS=, read -r -a ALL_TESTS <<<"$TESTS"
  for t in "${ALL_TESTS[@]}"; do
    probe=$(probe_cmd "$t")
    if [ -n "$probe" ]; then
      # shellcheck disable=SC2086
      reply=$(cli "$1" $probe 2>&1 || true)
      if printf '%s' "$reply" | grep -qi "unknown command"; then
        MISSING+=("$t")
        log "redsnap does not implement the command of test '$t' ($reply): left out"
        continue
      fi
    fi
    RUN_TESTS+=("$t")
  done
  cli "$1" FLUSHALL >/dev/null
  [ ${#RUN_TESTS[@]} -gt 0 ] || die "no test left to run"
  RUN_LIST=$(IFS=,; echo "${RUN_TESTS[*]}")
}

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# Each mode gets an equal share of the budget; rounds are counted per mode.
MODE_BUDGET=$(( BUDGET / ${#MODE_LIST[@]} ))
DONE_ROUNDS=
MODE_ROUNDS=()
for mode in "${MODE_LIST[@]}"; do
  flavour=
  [ "$mode" = everysec ] && flavour=everysec
  start_server redis $flavour;   REDIS_PORT=$SERVER_PORT;   REDIS_PID=$SERVER_PID
  start_server redsnap $flavour; REDSNAP_PORT=$SERVER_PORT; REDSNAP_PID=$SERVER_PID
  log "persistence $mode: redis-server $REDIS_VERSION on $REDIS_PORT (pid $REDIS_PID), redsnap on $REDSNAP_PORT (pid $REDSNAP_PID)"
  [ -n "$RUN_LIST" ] || probe_tests "$REDSNAP_PORT"
  M_START=$(date +%s)
  mode_rounds=0
  for round in $(seq 1 "$ROUNDS"); do
    # Keep the mode within its share of the time budget: after the first round, run
    # only as many more rounds as fit (the report shows how many ran).
    if [ "$round" -gt 1 ]; then
      spent=$(( $(date +%s) - M_START ))
      per_round=$(( spent / mode_rounds ))
      if [ $(( spent + per_round )) -gt "$MODE_BUDGET" ]; then
        log "$mode: stopping after $mode_rounds round(s): another one (~${per_round}s) would exceed this mode's share (${MODE_BUDGET}s) of BENCH_BUDGET_SECONDS=$BUDGET"
        break
      fi
    fi
    for pipeline in $PIPELINES; do
      for kind in redis redsnap; do
        if [ "$kind" = redis ]; then port=$REDIS_PORT; else port=$REDSNAP_PORT; fi
        cli "$port" FLUSHALL >/dev/null
        out=$WORK/csv/$kind-$mode-P$pipeline-r$round.csv
        log "$mode round $round/$ROUNDS -P $pipeline $kind"
        if ! "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" -c "$CLIENTS" -r "$KEYSPACE" -n "$REQUESTS" \
            -P "$pipeline" -t "$RUN_LIST" --csv >"$out" 2>"$out.err"; then
          FAILED+=("$kind $mode -P $pipeline round $round: $(tr '\n' ' ' <"$out.err" | cut -c1-300)")
          log "redis-benchmark failed against $kind: $(head -c 300 "$out.err")"
        fi
      done
    done
    mode_rounds=$round
  done
  MODE_ROUNDS+=("$mode:$mode_rounds")
  if [ -z "$DONE_ROUNDS" ] || [ "$mode_rounds" -lt "$DONE_ROUNDS" ]; then DONE_ROUNDS=$mode_rounds; fi
  stop_server "$REDIS_PID"
  stop_server "$REDSNAP_PID"
done
fi

# ---------------------------------------------------------------------------
# Memory: the same MEM_KEYS SETs (key:%012d, VALUE_SIZE-byte value) into fresh servers
# ---------------------------------------------------------------------------
gen_load() {
  python3 - "$MEM_KEYS" "$VALUE_SIZE" <<'PY'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
value = b"x" * size
head = b"*3\r\n$3\r\nSET\r\n$16\r\n"
tail = b"\r\n$%d\r\n%s\r\n" % (size, value)
out = sys.stdout.buffer
batch = []
for i in range(n):
    batch.append(head + b"key:%012d" % i + tail)
    if len(batch) == 10000:
        out.write(b"".join(batch))
        batch = []
out.write(b"".join(batch))
PY
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
used_memory() { cli "$1" INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }

# Proportional set size (kB) of a process and its children (a forked BGSAVE child
# shares its parent's pages: Pss splits them, so the sum is the memory both hold).
pss_tree_kb() {
  local total=0 p v
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}
bgsave_running() {
  cli "$1" INFO persistence | tr -d '\r' | grep -q '^rdb_bgsave_in_progress:1'
}
wait_bgsave() {  # port
  for _ in $(seq 1 6000); do
    bgsave_running "$1" || return 0
    sleep 0.05
  done
  FAILED+=("BGSAVE on port $1 did not finish within 300 s")
}
# BGSAVE and wait for it (it may have to wait for one in progress to finish).
bgsave() {  # port
  wait_bgsave "$1"
  local r
  r=$(cli "$1" BGSAVE 2>&1)
  case "$r" in
    *"Background saving started"*|*"scheduled"*) ;;
    *) FAILED+=("BGSAVE on port $1: $r") ;;
  esac
  sleep 0.1
  wait_bgsave "$1"
}

MEM_FILE=$WORK/memory.txt
: >"$MEM_FILE"
for kind in redis redsnap; do
  part memory || break
  start_server "$kind" snapshots
  port=$SERVER_PORT; pid=$SERVER_PID
  sleep 0.5
  echo "$kind.rss_before_kb=$(rss_kb "$pid")" >>"$MEM_FILE"
  echo "$kind.used_memory_before=$(used_memory "$port")" >>"$MEM_FILE"
  log "loading $MEM_KEYS keys x $VALUE_SIZE bytes into $kind"
  t0=$(date +%s.%N)
  if ! gen_load | "$REDIS_CLI" -h 127.0.0.1 -p "$port" --pipe >"$WORK/pipe-$kind.out" 2>&1; then
    FAILED+=("memory load into $kind: $(tail -c 300 "$WORK/pipe-$kind.out")")
  elif ! grep -q "errors: 0," "$WORK/pipe-$kind.out"; then
    FAILED+=("memory load into $kind: $(tr '\n' ' ' <"$WORK/pipe-$kind.out" | tail -c 300)")
  fi
  t1=$(date +%s.%N)
  sleep 1
  echo "$kind.load_seconds=$(python3 -c "print(round($t1 - $t0, 2))")" >>"$MEM_FILE"
  echo "$kind.dbsize=$(cli "$port" DBSIZE)" >>"$MEM_FILE"
  echo "$kind.rss_after_kb=$(rss_kb "$pid")" >>"$MEM_FILE"
  echo "$kind.used_memory_after=$(used_memory "$port")" >>"$MEM_FILE"

  # b. BGSAVE, then overwrite every key once.
  log "$kind: BGSAVE, then overwriting every key"
  bgsave "$port"
  if ! gen_load | sed 's/^xxxxxxxxxx/yyyyyyyyyy/' | "$REDIS_CLI" -h 127.0.0.1 -p "$port" --pipe \
      >"$WORK/pipe2-$kind.out" 2>&1 || ! grep -q "errors: 0," "$WORK/pipe2-$kind.out"; then
    FAILED+=("overwrite of $kind: $(tr '\n' ' ' <"$WORK/pipe2-$kind.out" | tail -c 300)")
  fi
  sleep 2
  echo "$kind.rss_overwrite_kb=$(rss_kb "$pid")" >>"$MEM_FILE"
  echo "$kind.used_memory_overwrite=$(used_memory "$port")" >>"$MEM_FILE"

  # c. Peak during a BGSAVE while clients overwrite keys.
  log "$kind: peak during a BGSAVE under writes"
  "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" -c 20 -r "$MEM_KEYS" -n 100000000 -d "$VALUE_SIZE" \
    -t set -q >/dev/null 2>&1 &
  writer=$!
  sleep 1
  peak=$(pss_tree_kb "$pid")
  wait_bgsave "$port"
  r=$(cli "$port" BGSAVE 2>&1)
  case "$r" in *"started"*|*"scheduled"*) ;; *) FAILED+=("BGSAVE under writes on $kind: $r") ;; esac
  samples=0
  for _ in $(seq 1 6000); do
    v=$(pss_tree_kb "$pid")
    [ "$v" -gt "$peak" ] && peak=$v
    samples=$((samples + 1))
    if [ "$samples" -gt 2 ] && ! bgsave_running "$port"; then break; fi
    sleep 0.05
  done
  kill "$writer" 2>/dev/null || true
  wait "$writer" 2>/dev/null || true
  echo "$kind.rss_bgsave_peak_kb=$peak" >>"$MEM_FILE"
  echo "$kind.bgsave_peak_samples=$samples" >>"$MEM_FILE"
  stop_server "$pid"
done

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
META=$WORK/meta.txt
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
  echo "commit=$commit"
  echo "nproc=$(nproc)"
  echo "loadavg=$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel=$(uname -sr)"
  echo "mem_total=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "redis_version=$REDIS_VERSION"
  echo "benchmark_version=$("$REDIS_BENCHMARK" --version 2>/dev/null | head -1)"
  echo "redsnap_bin=${BIN#"$ROOT"/}"
  echo "rounds=${DONE_ROUNDS:-0}"
  echo "modes=$MODES"
  echo "mode_rounds=$(IFS=,; echo "${MODE_ROUNDS[*]:-}")"
  echo "rounds_planned=$ROUNDS"
  echo "requests=$REQUESTS"
  echo "clients=$CLIENTS"
  echo "keyspace=$KEYSPACE"
  echo "pipelines=$PIPELINES"
  echo "tests=$RUN_LIST"
  echo "missing=$(IFS=,; echo "${MISSING[*]:-}")"
  echo "mem_keys=$MEM_KEYS"
  echo "value_size=$VALUE_SIZE"
  echo "elapsed_seconds=$(( $(date +%s) - START ))"
  for f in "${FAILED[@]:-}"; do [ -n "$f" ] && echo "failure=$f"; done
} >"$META"

mkdir -p "$(dirname "$OUT_SVG")"
python3 "$ROOT/scripts/bench_report.py" --csv-dir "$WORK/csv" --memory "$MEM_FILE" --meta "$META" \
  --out "$OUT_MD" --svg "$OUT_SVG" --svg-link "docs/bench-ratios.svg"
log "wrote $OUT_MD and $OUT_SVG in $(( $(date +%s) - START ))s"
