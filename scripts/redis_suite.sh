#!/usr/bin/env bash
# Runs units of Redis 7.0.15's own TCL test suite (external-server mode, tests tagged
# needs:repl included: they attach to redsnap's replication stream) against a redsnap
# this script starts, and fails when a unit
# stalls, times out, crashes or leaves the server unreachable, or when any test
# fails. Tests listed in scripts/redis_suite.skip (blocked by a feature another issue
# builds, or failing against real redis-server too in this mode, each with its
# reason) are skipped.
#
# Usage: scripts/redis_suite.sh [unit ...]        (default: the units of issues 12 and 15)
# Environment:
#   REDIS_SUITE   the suite's folder (default: ../shared/redis-suite next to the repo)
#   REDSNAP_BIN   the server binary (default: target/debug/redsnap)
#   REDSNAP_SUITE_PORT  the server's port (default: a free one)
#   SUITE_TCL_ARGS      extra runtest arguments (e.g. "--baseport 21100")
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${REDIS_SUITE:-../shared/redis-suite}
if [ ! -x "$SUITE/run.sh" ]; then
  echo "redis_suite: no Redis test suite at $SUITE (set REDIS_SUITE); not run" >&2
  exit 0
fi
command -v tclsh >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -qq tcl >/dev/null
}
BIN=${REDSNAP_BIN:-target/debug/redsnap}
UNITS=("$@")
[ ${#UNITS[@]} -gt 0 ] || UNITS=(
  unit/type/hash unit/type/list unit/type/list-2 unit/type/list-3 unit/type/set
  unit/type/zset unit/type/incr unit/type/string unit/keyspace unit/expire
  unit/pubsub unit/multi unit/scripting unit/functions unit/info unit/info-command
  unit/protocol unit/scan unit/auth unit/other unit/sort unit/dump unit/introspection
  unit/introspection-2 unit/quit unit/latency-monitor unit/slowlog unit/querybuf
  unit/type/stream unit/type/stream-cgroups
  unit/geo
  unit/bitops unit/bitfield unit/hyperloglog
  unit/lazyfree
  unit/acl unit/acl-v2
  unit/tracking unit/pubsubshard
  unit/pause
)
SKIP=$(pwd)/scripts/redis_suite.skip

# Units whose first server block is tagged external:skip although it runs against
# an external server all the same (real redis-server 7.0.15 passes them in this
# mode: 72 tests of unit/acl, 29 of unit/acl-v2, 2 of unit/auth with
# `--tags -needs:repl`): a private copy of the suite drops the tag from that block
# (the blocks after it, e.g. pubsubshard's replication pair and the ACL blocks that
# start servers with their own aclfile, stay skipped; crates/server/tests/acl.rs
# covers those).
LIFT_EXTERNAL_SKIP=(unit/pubsubshard unit/info unit/acl unit/acl-v2 unit/auth)
TESTS_COPY=$(mktemp -d /tmp/redsnap-suite-tests.XXXXXX)
cp -r "$SUITE/redis-tests/." "$TESTS_COPY/" && chmod -R u+w "$TESTS_COPY"
for u in "${LIFT_EXTERNAL_SKIP[@]}"; do
  f="$TESTS_COPY/tests/$u.tcl"
  [ -f "$f" ] && sed -i '0,/external:skip/{s/ "external:skip"//;s/ external:skip//}' "$f"
done

# Tests that must pass (issue 11: a busy script never locks out other clients).
REQUIRED=(
  "MULTI and script timeout"
  "EXEC and script timeout"
  "MULTI-EXEC body and script timeout"
  "just EXEC and script timeout"
)

PORT=${REDSNAP_SUITE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
DATA=$(mktemp -d /tmp/redsnap-suite.XXXXXX)
LOGS=$(mktemp -d /tmp/redsnap-suite-logs.XXXXXX)
"$BIN" serve --port "$PORT" --bind 127.0.0.1 --dir "$DATA" --save "" --appendonly no \
  >"$LOGS/server.log" 2>&1 &
PID=$!
cleanup() {
  kill -9 "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$DATA" "$TESTS_COPY"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

set +e
REDIS_TESTS_DIR="$TESTS_COPY" LOG_DIR="$LOGS" UNIT_TIMEOUT=${UNIT_TIMEOUT:-300} TCL_EXTRA_ARGS="${SUITE_TCL_ARGS:-}" TCL_SKIPFILE="$SKIP" \
  BASELINE="$SUITE/baseline-full.txt" "$SUITE/run.sh" "$PORT" "${UNITS[@]}" | tee "$LOGS/table.txt"
set -e

fail=0
# Per-unit status: OK or FAIL (failing tests of features not built yet) are
# acceptable here; STALLED, TIMEOUT, DOWN, EXCEPTION, ABORTED, MISSING are not.
while read -r unit _ _ _ status _; do
  case "$unit" in unit/*) ;; *) continue ;; esac
  case "$status" in
    OK|FAIL) ;;
    *) echo "redis_suite: $unit ended $status" >&2; fail=1 ;;
  esac
done <"$LOGS/table.txt"
# Every test must pass (skipped ones are not run).
while IFS= read -r line; do
  case "$line" in
    *" [err]: "*) echo "redis_suite: failed: $line" >&2; fail=1 ;;
  esac
done <"$LOGS/failures.txt"
if grep -q "\[exception\]" "$LOGS/failures.txt"; then
  grep "\[exception\]" "$LOGS/failures.txt" >&2
  fail=1
fi
if [ "$(timeout 5 redis-cli -p "$PORT" ping 2>/dev/null)" != PONG ]; then
  echo "redis_suite: the server does not answer PING after the suite" >&2
  fail=1
fi
for t in "${REQUIRED[@]}"; do
  if [[ " ${UNITS[*]} " == *" unit/multi "* ]] && ! grep -qF "[ok]: $t (" "$LOGS"/unit_multi.log; then
    echo "redis_suite: required test did not pass: $t" >&2
    fail=1
  fi
done
if [ $fail -ne 0 ]; then
  echo "redis_suite: logs in $LOGS" >&2
  exit 1
fi
echo "redis_suite: ${UNITS[*]}: every test passed (skipped: scripts/redis_suite.skip); server up"
