#!/usr/bin/env bash
# The cost of ACL checks on the hot path (issue 17): redis-benchmark against one
# redsnap and one redis-server, each once as the default user and once as a
# restricted user (`~key:* +@all`, password), -c 50, -P 1 and -P 16, rounds
# interleaved, medians. Prints a markdown table; the ratios that matter are
# restricted/default on each server.
#
# Usage: scripts/bench_acl.sh [ROUNDS]   (REDSNAP_BIN, default target/release/redsnap)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BIN=${REDSNAP_BIN:-target/release/redsnap}
# Only tests whose keys are key:* (the restricted user may touch no other keys).
TESTS=${BENCH_ACL_TESTS:-set,get,mset}
REQUESTS=${BENCH_ACL_REQUESTS:-200000}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release -p redsnap-cli" >&2; exit 1; }
WORK=$(mktemp -d /tmp/redsnap-bench-acl.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); SP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" --daemonize no >"$WORK/redis.log" 2>&1 &
RPID=$!
mkdir -p "$WORK/s"
"$BIN" serve --port "$SP" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/s" >"$WORK/redsnap.log" 2>&1 &
SPID=$!
trap 'kill $RPID $SPID 2>/dev/null; wait $RPID $SPID 2>/dev/null; rm -rf "$WORK"' EXIT
for p in "$RP" "$SP"; do
  for _ in $(seq 100); do [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done
  redis-cli -p "$p" ACL SETUSER bench on '>bench-pass' '~key:*' '+@all' >/dev/null
done
run() {  # port depth user|default -> csv lines test,rps
  local auth=()
  [ "$3" = user ] && auth=(--user bench -a bench-pass)
  redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -r 100000 -P "$2" -t "$TESTS" --csv "${auth[@]}" 2>/dev/null |
    awk -F, 'NR>1 {gsub(/"/,""); print $1","$2}'
}
for r in $(seq "$ROUNDS"); do
  for depth in 1 16; do
    for who in default user; do
      for side in redis redsnap; do
        port=$RP; [ "$side" = redsnap ] && port=$SP
        run "$port" "$depth" "$who" | sed "s/^/$side,$depth,$who,/" >>"$WORK/all.csv"
      done
    done
  done
  echo "round $r/$ROUNDS done" >&2
done
python3 - "$WORK/all.csv" <<'EOF'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, depth, who, test, rps = line.strip().split(",")
    d[(side, depth, who, test)].append(float(rps))
tests = sorted({k[3] for k in d}, key=lambda t: list(k[3] for k in d).index(t))
print("| test | depth | redis default | redis restricted | ratio | redsnap default | redsnap restricted | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for depth in ("1", "16"):
    for t in tests:
        m = {(s, w): statistics.median(d[(s, depth, w, t)]) for s in ("redis", "redsnap") for w in ("default", "user")}
        print(f"| {t} | {depth} | {m['redis','default']:,.0f} | {m['redis','user']:,.0f} | "
              f"{m['redis','user']/m['redis','default']:.2f} | {m['redsnap','default']:,.0f} | "
              f"{m['redsnap','user']:,.0f} | {m['redsnap','user']/m['redsnap','default']:.2f} |")
EOF
