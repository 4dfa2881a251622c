#!/usr/bin/env bash
# redis-cli against a Redis-compatible server: one fixed scenario, printed as a
# normalized JSON transcript (one JSON object per line: {"step": ..., "result": ...}).
#
# Usage: client_cli.sh HOST PORT [2|3]
#
# Every command goes through `redis-cli -2|-3 --json` (RESP2 or RESP3 session);
# python3 only assembles the transcript (sorting unordered replies). The
# scenario mirrors client_py.py; the transcript is deterministic (unordered
# replies sorted, TTLs reduced to "in range" booleans, no timings), so a real
# redis-server and redsnap must print the same lines; see
# crates/server/tests/clients.rs. Only keys starting with "rsc:" are touched.
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 HOST PORT [2|3]" >&2
  exit 2
fi
HOST=$1
PORT=$2
PROTO=${3:-2}
case "$PROTO" in 2|3) ;; *) echo "protocol must be 2 or 3" >&2; exit 2 ;; esac
CLI=${REDIS_CLI:-redis-cli}
P=rsc:

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redsnap-cli.XXXXXX")
BG_PIDS=()
cleanup() {
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
RAW=$WORK/raw   # records: step NUL mode NUL output NUL

cli() { timeout 15 "$CLI" -h "$HOST" -p "$PORT" "-$PROTO" --json "$@" 2>&1; }

# step NAME MODE CMD...: run one command in its own redis-cli process and record
# its output. MODE: "raw" (as is), "sort" (sort a JSON array), "range LO HI"
# (an integer reply reduced to whether LO <= n <= HI).
record() { printf '%s\0%s\0%s\0' "$1" "$2" "$3" >>"$RAW"; }
step() {
  local name=$1 mode=$2
  shift 2
  record "$name" "$mode" "$(cli "$@")"
}

cli DEL ${P}s ${P}missing ${P}counter ${P}float ${P}m1 ${P}m2 ${P}h ${P}l ${P}bl ${P}empty \
  ${P}set ${P}set2 ${P}set3 ${P}z ${P}tx ${P}txl ${P}txs ${P}w >/dev/null

K=${P}s
step ping raw PING
step echo raw ECHO "héllo"

# ---- strings
step set raw SET $K hello
step get raw GET $K
step get_missing raw GET ${P}missing
step set_nx_existing raw SET $K x NX
step set_xx_missing raw SET ${P}missing x XX
step set_get raw SET $K world GET
step append raw APPEND $K "!"
step strlen raw STRLEN $K
step getrange raw GETRANGE $K 0 2
step incr raw INCR ${P}counter
step incrby raw INCRBY ${P}counter 10
step decr raw DECR ${P}counter
step incrbyfloat raw INCRBYFLOAT ${P}float 1.5
step incr_not_integer raw INCR $K
step mset raw MSET ${P}m1 a ${P}m2 b
step mget raw MGET ${P}m1 ${P}missing ${P}m2
step exists raw EXISTS $K ${P}m1 ${P}missing
step type raw TYPE $K
step expire raw EXPIRE $K 100
step ttl_in_range "range 90 100" TTL $K
step pttl_in_range "range 90000 100000" PTTL $K
step persist raw PERSIST $K
step ttl_persisted raw TTL $K
step ttl_missing raw TTL ${P}missing
step set_ex raw SET ${P}m2 c EX 50
step ttl_set_ex_in_range "range 40 50" TTL ${P}m2
step del raw DEL ${P}m1 ${P}m2 ${P}missing

# ---- hashes
H=${P}h
step hset raw HSET $H f1 v1 f2 v2 n 5
step hset_update raw HSET $H f1 v1b
step hget raw HGET $H f1
step hget_missing raw HGET $H nope
step hgetall sort HGETALL $H
step hincrby raw HINCRBY $H n 3
step hincrbyfloat raw HINCRBYFLOAT $H n 0.5
step hexists raw HEXISTS $H f2
step hdel raw HDEL $H f2 nope
step hlen raw HLEN $H
step hkeys sort HKEYS $H
step hvals sort HVALS $H
step hmget raw HMGET $H f1 nope n
step hgetall_missing raw HGETALL ${P}missing
step wrongtype raw LPUSH $H x

# ---- lists
L=${P}l
step rpush raw RPUSH $L a b c d
step lpush raw LPUSH $L z
step lrange_all raw LRANGE $L 0 -1
step lrange_part raw LRANGE $L 1 2
step llen raw LLEN $L
step lindex raw LINDEX $L -1
step lpop raw LPOP $L
step lpop_count raw LPOP $L 2
step rpop raw RPOP $L
step blpop_ready raw BLPOP ${P}empty $L 1
step blpop_timeout raw BLPOP ${P}empty 0.1
step lrange_missing raw LRANGE ${P}missing 0 -1

# BLPOP served by a push from another connection.
cli BLPOP ${P}bl 5 >"$WORK/blpop.out" &
BLPOP_PID=$!
BG_PIDS+=("$BLPOP_PID")
sleep 0.2
step rpush_wakes_blpop raw RPUSH ${P}bl woken
wait "$BLPOP_PID"
record blpop_woken raw "$(cat "$WORK/blpop.out")"

# ---- sets
S=${P}set
step sadd raw SADD $S a b c
step sadd_existing raw SADD $S a
step smembers sort SMEMBERS $S
step sismember raw SISMEMBER $S a
step sismember_no raw SISMEMBER $S zz
step scard raw SCARD $S
step srem raw SREM $S b zz
step sadd2 raw SADD ${P}set2 c d
step sinter sort SINTER $S ${P}set2
step sunion sort SUNION $S ${P}set2
step sdiff sort SDIFF $S ${P}set2
step sadd3 raw SADD ${P}set3 only
step spop_single raw SPOP ${P}set3
step exists_after_spop raw EXISTS ${P}set3

# ---- sorted sets
Z=${P}z
step zadd raw ZADD $Z 1 a 2.5 b -1 c
step zadd_update raw ZADD $Z 3 a
step zrange_withscores raw ZRANGE $Z 0 -1 WITHSCORES
step zrange raw ZRANGE $Z 0 -1
step zrevrange_withscores raw ZREVRANGE $Z 0 1 WITHSCORES
step zrangebyscore raw ZRANGEBYSCORE $Z 0 3 WITHSCORES
step zscore raw ZSCORE $Z b
step zscore_missing raw ZSCORE $Z nope
step zincrby raw ZINCRBY $Z 1 c
step zrank raw ZRANK $Z a
step zcard raw ZCARD $Z
step zrem raw ZREM $Z c nope
step zrange_after raw ZRANGE $Z 0 -1 WITHSCORES

# ---- pub/sub: SUBSCRIBE / PSUBSCRIBE in background redis-cli processes,
# PUBLISH from this one. redis-cli flushes every message it prints.
CHAN=${P}chan
PAT="${P}pat:*"
timeout 20 "$CLI" -h "$HOST" -p "$PORT" "-$PROTO" --json SUBSCRIBE "$CHAN" >"$WORK/sub.out" 2>&1 &
BG_PIDS+=("$!")
timeout 20 "$CLI" -h "$HOST" -p "$PORT" "-$PROTO" --json PSUBSCRIBE "$PAT" >"$WORK/psub.out" 2>&1 &
BG_PIDS+=("$!")
subscribed=false
for _ in $(seq 1 250); do
  if [ "$("$CLI" -h "$HOST" -p "$PORT" PUBSUB NUMSUB "$CHAN" 2>/dev/null | sed -n 2p)" = 1 ] &&
     [ "$("$CLI" -h "$HOST" -p "$PORT" PUBSUB NUMPAT 2>/dev/null)" = 1 ]; then
    subscribed=true
    break
  fi
  sleep 0.02
done
record subscribed raw "$subscribed"
step pubsub_numsub raw PUBSUB NUMSUB "$CHAN"
step pubsub_numpat raw PUBSUB NUMPAT
step publish raw PUBLISH "$CHAN" hello
step publish_pattern raw PUBLISH ${P}pat:x hi
step publish_nobody raw PUBLISH ${P}nobody x
# Wait (bounded) for the subscribers to print the message after their confirmation.
for _ in $(seq 1 250); do
  [ "$(grep -c '^\[' "$WORK/sub.out")" -ge 2 ] && [ "$(grep -c '^\[' "$WORK/psub.out")" -ge 2 ] && break
  sleep 0.02
done
record subscriber raw "[$(grep '^\[' "$WORK/sub.out" | paste -sd, -)]"
record psubscriber raw "[$(grep '^\[' "$WORK/psub.out" | paste -sd, -)]"

# ---- MULTI/EXEC: one redis-cli session fed line by line.
printf 'MULTI\nSET %s 1\nINCR %s\nRPUSH %s a b\nLRANGE %s 0 -1\nGET %s\nEXEC\n' \
  ${P}tx ${P}tx ${P}txl ${P}txl ${P}tx >"$WORK/tx.in"
record multi_exec lines "$(cli <"$WORK/tx.in")"
printf 'MULTI\nSET %s x\nINCR %s\nGET %s\nEXEC\n' ${P}txs ${P}txs ${P}txs >"$WORK/txs.in"
record multi_exec_runtime_error lines "$(cli <"$WORK/txs.in")"
printf 'MULTI\nSET %s x\nNOSUCHCOMMAND\nEXEC\n' ${P}txs >"$WORK/txa.in"
record multi_exec_abort lines "$(cli <"$WORK/txa.in")"

# WATCH conflict: session A watches, another connection writes, A's EXEC is aborted.
W=${P}w
step watch_setup raw SET $W start
watch_session() {  # $1: name, $2: value written by another connection in between ("" for none)
  local fifo=$WORK/watch.$1.in out=$WORK/watch.$1.out fd pid
  mkfifo "$fifo"
  timeout 15 "$CLI" -h "$HOST" -p "$PORT" "-$PROTO" --json <"$fifo" >"$out" 2>&1 &
  pid=$!
  BG_PIDS+=("$pid")
  exec {fd}>"$fifo"
  echo "WATCH $W" >&"$fd"
  for _ in $(seq 1 250); do [ -s "$out" ] && break; sleep 0.02; done
  if [ -n "$2" ]; then cli SET $W "$2" >/dev/null; fi
  printf 'MULTI\nSET %s mine\nEXEC\n' "$W" >&"$fd"
  exec {fd}>&-
  wait "$pid"
  record "$1" lines "$(cat "$out")"
}
watch_session watch_conflict other
step watch_conflict_value raw GET $W
watch_session watch_ok ""
step watch_ok_value raw GET $W

cli DEL ${P}s ${P}counter ${P}float ${P}h ${P}l ${P}bl ${P}set ${P}set2 ${P}z ${P}tx ${P}txl ${P}txs ${P}w >/dev/null

# ---- assemble the transcript
python3 - "$RAW" <<'PY'
import json, re, sys

# redis-cli --json prints an error reply as error:"message", also inside arrays.
ERROR = re.compile(r'(^|[\[,:])error:("(?:[^"\\]|\\.)*")')

def parse(text):
    """One redis-cli --json reply -> JSON value; errors -> {"error": msg}."""
    text = text.strip()
    if text.startswith("(error) "):
        return {"error": text[len("(error) "):]}
    try:
        return json.loads(ERROR.sub(r'\1{"error":\2}', text))
    except ValueError:
        return {"unparsed": text}

def key(v):
    return json.dumps(v, sort_keys=True)

data = open(sys.argv[1], "rb").read().decode("utf-8", "backslashreplace").split("\0")
for i in range(0, len(data) - 2, 3):
    name, mode, out = data[i], data[i + 1], data[i + 2]
    if mode == "lines":
        result = [parse(l) for l in out.splitlines() if l.strip()]
    else:
        result = parse(out)
    if mode == "sort" and isinstance(result, list):
        result = sorted(result, key=key)
    elif mode.startswith("range "):
        lo, hi = (int(x) for x in mode.split()[1:])
        result = isinstance(result, int) and lo <= result <= hi
    print(json.dumps({"step": name, "result": result}, sort_keys=True))
PY
