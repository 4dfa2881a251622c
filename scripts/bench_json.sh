#!/usr/bin/env bash
# JSON.GET and JSON.SET of a 1 KB document on redsnap, at -P 1 and -P 16
# (redis-benchmark with custom commands; issue 18). There is no redis-server
# column: Redis 7.0 has no JSON type without the RedisJSON module.
#
# Usage: scripts/bench_json.sh            (prints the table)
#        BENCH_JSON_WRITE=1 scripts/bench_json.sh   (also writes the "## JSON"
#                                          section of BENCHMARKS.md, replacing it)
#
# Run it on an idle machine: the numbers are only worth recording then.
# Knobs: BENCH_REQUESTS (200000), BENCH_CLIENTS (50), BENCH_KEYSPACE (1000),
# BENCH_ROUNDS (3, the median is kept), BENCH_SKIP_BUILD=1, REDSNAP_BIN,
# REDIS_BENCHMARK, REDIS_CLI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
REQUESTS=${BENCH_REQUESTS:-200000}
CLIENTS=${BENCH_CLIENTS:-50}
KEYSPACE=${BENCH_KEYSPACE:-1000}
ROUNDS=${BENCH_ROUNDS:-3}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
REDIS_CLI=${REDIS_CLI:-redis-cli}

log() { printf '[bench-json %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ -z "${REDSNAP_BIN:-}" ]; then
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binary"
    cargo build --release -p redsnap-cli >&2
  fi
  REDSNAP_BIN=$ROOT/target/release/redsnap
fi

# A 1 KB document: a metrics record like seed 001's, padded to 1,024 bytes.
DOC=$(python3 - <<'PY'
import json
doc = {"service": "resonance", "requests": 12345, "errors": 12,
       "latency_ms": {"p50": 1.5, "p90": 4.25, "p99": 12.75},
       "regions": ["eu-west-1", "us-east-1", "ap-south-1"], "healthy": True,
       "tags": {"team": "platform", "tier": "gold"}, "history": []}
i = 0
while len(json.dumps(doc, separators=(",", ":"))) < 1024:
    doc["history"].append(i * 7 % 1000)
    i += 1
s = json.dumps(doc, separators=(",", ":"))
while len(s) > 1024:
    doc["history"].pop()
    s = json.dumps(doc, separators=(",", ":"))
doc["service"] += "x" * (1024 - len(s))
print(json.dumps(doc, separators=(",", ":")))
PY
)
log "document: ${#DOC} bytes"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
"$REDSNAP_BIN" serve --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --save "" --appendonly no >"$DIR/log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do "$REDIS_CLI" -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Seed every key the GET test reads.
seq 0 $((KEYSPACE - 1)) \
  | awk -v d="$DOC" '{ k = sprintf("doc:%012d", $1);
      printf "*4\r\n$8\r\nJSON.SET\r\n$%d\r\n%s\r\n$1\r\n$\r\n$%d\r\n%s\r\n", length(k), k, length(d), d }' \
  | "$REDIS_CLI" -p "$PORT" --pipe >/dev/null

rps() { # label, pipeline, command...
  local label=$1 p=$2; shift 2
  local best=()
  for _ in $(seq "$ROUNDS"); do
    best+=("$("$REDIS_BENCHMARK" -p "$PORT" -c "$CLIENTS" -n "$REQUESTS" -r "$KEYSPACE" -P "$p" --csv "$@" \
      | awk -F',' 'NR==2 {gsub(/"/, "", $(NF-6)); print $(NF-6)}')")
  done
  printf '%s\n' "${best[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

TABLE="| command (1 KB document) | -P 1 ops/s | -P 16 ops/s |
|---|---:|---:|"
for t in get set; do
  row="| JSON.$(echo $t | tr a-z A-Z) |"
  for p in 1 16; do
    if [ $t = get ]; then
      r=$(rps get "$p" JSON.GET 'doc:__rand_int__' '$')
    else
      r=$(rps set "$p" JSON.SET 'doc:__rand_int__' '$' "$DOC")
    fi
    row="$row $r |"
    log "JSON.$t -P $p: $r ops/s"
  done
  TABLE="$TABLE
$row"
done
echo "$TABLE"

if [ "${BENCH_JSON_WRITE:-0}" = 1 ]; then
  SECTION="## JSON

JSON.GET \`\$\` and JSON.SET \`\$\` of a 1 KB document ($KEYSPACE keys, -c $CLIENTS,
-n $REQUESTS, median of $ROUNDS rounds; \`scripts/bench_json.sh\`, $(date -u +%Y-%m-%d),
load average before: $(cut -d' ' -f1-3 /proc/loadavg)). No redis-server column:
Redis 7.0 has no JSON type without the RedisJSON module.

$TABLE
"
  python3 - "$ROOT/BENCHMARKS.md" "$SECTION" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read() if __import__("os").path.exists(path) else ""
pat = re.compile(r"^## JSON\n.*?(?=^## |\Z)", re.S | re.M)
text = pat.sub(section + "\n", text) if pat.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
  log "wrote the JSON section of BENCHMARKS.md"
fi
