#!/usr/bin/env python3
"""Sidekiq 7's command set replayed with redis-py against a Redis-compatible
server. Ruby gems cannot be installed where the tests run, so this script
sends what Sidekiq 7.3 (github.com/sidekiq/sidekiq, tag v7.3.10) sends, taken
from its source: the client's push pipeline (lib/sidekiq/client.rb
atomic_push), the fetcher's BRPOP (fetch.rb), the scheduler's Lua script
(scheduled.rb, LUA_ZPOPBYSCORE, verbatim, through SCRIPT LOAD + EVALSHA and
the NOSCRIPT retry), the heartbeat and signals (launcher.rb), stats and their
history (launcher.rb flush_stats, api.rb Stats), retries and the dead set
(job_retry.rb, api.rb JobSet/SortedEntry/DeadSet), the metrics (metrics/
tracking.rb and shared.rb: HINCRBY buckets and BITFIELD u16 histograms),
the paginator (paginator.rb) and the SCAN-based API calls. Sidekiq's client
(redis-client) speaks RESP3, so the connection uses protocol 3.

Prints one JSON summary without timings or random IDs, so a real
redis-server and redsnap must print the same line; see
crates/server/tests/frameworks.rs.

Usage: sidekiq_commands.py HOST PORT

Sidekiq's keys are not prefixed; the script deletes the keys it uses before
and after (the tests run it against a fresh server). Every socket operation
has a timeout and the whole script gives up after DEADLINE seconds.
"""

import json
import signal
import sys
import threading
import time

import redis

DEADLINE = 60

# scheduled.rb, Sidekiq::Scheduled::Enq::LUA_ZPOPBYSCORE (a Ruby <<~ heredoc:
# indentation stripped, trailing newline kept).
LUA_ZPOPBYSCORE = """local key, now = KEYS[1], ARGV[1]
local jobs = redis.call("zrange", key, "-inf", now, "byscore", "limit", 0, 1)
if jobs[1] then
  redis.call("zrem", key, jobs[1])
  return jobs[1]
end
"""

STATS_TTL = 5 * 365 * 24 * 60 * 60  # launcher.rb
HISTOGRAM_TTL = 8 * 60 * 60  # metrics/shared.rb
SHORT_TERM = 8 * 60 * 60  # metrics/tracking.rb
DEAD_MAX_JOBS = 3  # config.rb has 10_000; small so the trim shows
DEAD_TIMEOUT = 180 * 24 * 60 * 60  # config.rb dead_timeout_in_seconds
IDENTITY = "rsfw-host:4242:0123456789ab"
# metrics/shared.rb Histogram::FETCH
FETCH = [a for i in range(26) for a in ("GET", "u16", f"#{i}")]

# Fixed scores (seconds since the epoch as Sidekiq writes them, Float#to_s).
PAST = 1_700_000_000.25
FUTURE = 4_102_444_800.5  # 2100-01-01


def _give_up(_signum, _frame):
    print(f"sidekiq_commands.py: gave up after {DEADLINE} s", file=sys.stderr)
    sys.exit(3)


def job(jid, klass="HardJob", queue="default", args=None, **extra):
    payload = {
        "retry": True,
        "queue": queue,
        "class": klass,
        "args": args if args is not None else [1, "two"],
        "jid": jid,
        "created_at": PAST,
    }
    payload.update(extra)
    return payload


def dump(payload):
    return json.dumps(payload, separators=(",", ":"))


def push(r, payloads):
    """client.rb raw_push/atomic_push: one pipeline (not a transaction)."""
    pipe = r.pipeline(transaction=False)
    if "at" in payloads[0]:
        mapping = {}
        for p in payloads:
            p = dict(p)
            at = p.pop("at")
            p.pop("enqueued_at", None)
            mapping[dump(p)] = at
        pipe.zadd("schedule", mapping)
    else:
        queue = payloads[0]["queue"]
        to_push = [dump(dict(p, enqueued_at=PAST + 1)) for p in payloads]
        pipe.sadd("queues", queue)
        pipe.lpush(f"queue:{queue}", *to_push)
    return pipe.execute()


def jid_of(raw):
    return json.loads(raw)["jid"] if raw is not None else None


def clean(r):
    keys = set()
    for pattern in ("queue:*", "stat:*", "j|*", "HardJob-*", "rsfw*", "unique:*", "rsfw-host*"):
        keys.update(r.scan_iter(match=pattern, count=1000))
    keys.update(["queues", "schedule", "retry", "dead", "processes", "process_cleanup"])
    r.delete(*keys)


def as_text(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [as_text(x) for x in v]
    if isinstance(v, dict):
        return {as_text(k): as_text(x) for k, x in v.items()}
    if isinstance(v, set):
        return sorted(as_text(x) for x in v)
    return v


def client_push_and_fetch(r, r2, s):
    s["push_default"] = push(r, [job("jid-d1"), job("jid-d2"), job("jid-d3")])
    s["push_critical"] = push(r, [job("jid-c1", queue="critical")])
    s["push_scheduled"] = push(
        r,
        [job("jid-s1", at=PAST), job("jid-s2", at=PAST + 0.5), job("jid-s3", at=FUTURE)],
    )
    s["queues"] = sorted(as_text(r.smembers("queues")))
    # fetch.rb: BRPOP over the queues in strict order, TIMEOUT 2 s.
    order = ["queue:critical", "queue:default", "queue:low"]
    fetched = []
    for _ in range(5):
        got = r.brpop(order, timeout=2)
        if got is None:
            break
        fetched.append([as_text(got[0]), jid_of(got[1])])
        if len(fetched) == 4:
            break
    s["fetched"] = fetched

    # A fetcher blocked on empty queues is woken by another client's push.
    woke = {}

    def fetcher():
        got = r2.brpop(order, timeout=5)
        woke["got"] = [as_text(got[0]), jid_of(got[1])] if got else None

    t = threading.Thread(target=fetcher)
    t.start()
    for _ in range(200):  # wait until the BRPOP is blocked (CLIENT LIST shows it)
        if any(c.get("cmd") == "brpop" for c in r.client_list()):
            break
        time.sleep(0.01)
    push(r, [job("jid-l1", queue="low")])
    t.join(timeout=10)
    s["blocked_fetch_woken"] = woke.get("got")
    # fetch.rb bulk_requeue: RPUSH the in-progress jobs back on their queue.
    s["bulk_requeue"] = r.rpush("queue:default", dump(job("jid-d1")), dump(job("jid-d2")))
    s["requeued_order"] = [jid_of(x) for x in r.lrange("queue:default", 0, -1)]


def scheduler(r, s):
    sha = r.script_load(LUA_ZPOPBYSCORE)
    s["script_sha_len"] = len(sha)
    s["script_exists"] = r.script_exists(sha)
    r.script_flush()
    try:
        r.evalsha(sha, 1, "schedule", repr(time.time()))
        s["noscript"] = None
    except redis.ResponseError as e:
        # redis-py turns "NOSCRIPT ..." into NoScriptError (Sidekiq checks the prefix)
        s["noscript"] = [type(e).__name__, str(e)]
    sha = r.script_load(LUA_ZPOPBYSCORE)
    enqueued = []
    for _ in range(10):
        raw = r.evalsha(sha, 1, "schedule", repr(time.time()))
        if raw is None:
            break
        payload = json.loads(raw)
        enqueued.append(payload["jid"])
        push(r, [payload])
    s["scheduler_enqueued"] = enqueued
    s["schedule_left"] = as_text(r.zrange("schedule", 0, -1, withscores=True))
    s["scheduled_in_default"] = [jid_of(x) for x in r.lrange("queue:default", 0, -1)]
    # "retry" is empty: the script returns nil.
    s["scheduler_empty_set"] = r.evalsha(sha, 1, "retry", repr(time.time()))


def heartbeat(r, s):
    key = IDENTITY
    work_key = f"{key}:work"
    busy = {"tid-1": dump({"queue": "default", "payload": job("jid-w1"), "run_at": 1})}
    tx = r.pipeline(transaction=True)
    tx.unlink(work_key)
    tx.hset(work_key, mapping=busy)
    tx.expire(work_key, 60)
    s["work_multi"] = tx.execute()
    info = dump({"hostname": "rsfw-host", "pid": 4242, "identity": key, "concurrency": 5,
                 "queues": ["critical", "default", "low"], "labels": [], "tag": "", "version": "7.3.10"})
    beats = []
    for sig in (None, "TSTP"):
        if sig:  # api.rb Process#signal
            tx = r.pipeline(transaction=True)
            tx.lpush(f"{key}-signals", sig)
            tx.expire(f"{key}-signals", 60)
            beats.append(["signal", tx.execute()])
        tx = r.pipeline(transaction=True)
        tx.sadd("processes", key)
        tx.exists(key)
        tx.hset(key, mapping={"info": info, "busy": len(busy), "beat": time.time(),
                              "rtt_us": 123, "quiet": "false", "rss": 45678})
        tx.expire(key, 60)
        tx.rpop(f"{key}-signals")
        res = tx.execute()
        beats.append(as_text(res[:2] + res[3:]))
    s["heartbeats"] = beats
    s["process_ttl_ok"] = 0 < r.ttl(key) <= 60
    s["work_ttl_ok"] = 0 < r.ttl(work_key) <= 60
    # api.rb Process / ProcessSet / WorkSet reads.
    tx = r.pipeline(transaction=True)
    tx.sismember("processes", key)
    tx.hmget(key, "info", "busy", "quiet", "rss", "rtt_us")
    res = tx.execute()
    s["process_read"] = [res[0], json.loads(res[1][0])["identity"]] + as_text(res[1][1:])
    s["work_read"] = {k: json.loads(v)["payload"]["jid"]
                      for k, v in as_text(r.hgetall(work_key)).items()}
    # ProcessSet.cleanup: SET NX EX 60 gate, SSCAN, HGET info, SREM the dead ones.
    s["cleanup_gate"] = [r.set("process_cleanup", "1", nx=True, ex=60),
                         r.set("process_cleanup", "1", nx=True, ex=60)]
    r.sadd("processes", "rsfw-gone:1:dead")
    procs = sorted(as_text(list(r.sscan_iter("processes"))))
    pipe = r.pipeline(transaction=False)
    for p in procs:
        pipe.hget(p, "info")
    infos = pipe.execute()
    to_prune = [p for p, i in zip(procs, infos) if i is None]
    s["pruned"] = [to_prune, r.srem("processes", *to_prune)]
    # launcher.rb clear_heartbeat
    pipe = r.pipeline(transaction=False)
    pipe.srem("processes", key)
    pipe.unlink(work_key)
    s["clear_heartbeat"] = pipe.execute()


def stats(r, s):
    nowdate = time.strftime("%Y-%m-%d", time.gmtime())
    for procd, fails in ((5, 1), (3, 0)):
        pipe = r.pipeline(transaction=False)
        pipe.incrby("stat:processed", procd)
        pipe.incrby(f"stat:processed:{nowdate}", procd)
        pipe.expire(f"stat:processed:{nowdate}", STATS_TTL)
        pipe.incrby("stat:failed", fails)
        pipe.incrby(f"stat:failed:{nowdate}", fails)
        pipe.expire(f"stat:failed:{nowdate}", STATS_TTL)
        s.setdefault("flush_stats", []).append(pipe.execute())
    s["stat_ttl_ok"] = STATS_TTL - 60 < r.ttl(f"stat:processed:{nowdate}") <= STATS_TTL
    # api.rb fetch_stats_fast!
    pipe = r.pipeline(transaction=False)
    pipe.get("stat:processed")
    pipe.get("stat:failed")
    pipe.zcard("schedule")
    pipe.zcard("retry")
    pipe.zcard("dead")
    pipe.scard("processes")
    pipe.lindex("queue:default", -1)
    res = pipe.execute()
    s["stats_fast"] = as_text(res[:6]) + [jid_of(res[6])]
    # fetch_stats_slow!: SSCAN queues + LLEN each; Stats#queues
    queues = sorted(as_text(list(r.sscan_iter("queues"))))
    pipe = r.pipeline(transaction=False)
    for q in queues:
        pipe.llen(f"queue:{q}")
    s["queue_sizes"] = dict(zip(queues, pipe.execute()))
    # History: MGET over the last days (only today exists).
    days = [nowdate, "2000-01-02", "2000-01-01"]
    s["history"] = as_text(r.mget([f"stat:processed:{d}" for d in days]))
    # Stats#reset: MSET stat:failed 0 stat:processed 0
    s["reset"] = [r.mset({"stat:failed": 0, "stat:processed": 0}),
                  as_text(r.mget("stat:failed", "stat:processed"))]


def retries_and_dead(r, s):
    # job_retry.rb: ZADD retry <retry_at.to_s> payload
    entries = {
        dump(job("jid-r1", error_class="RuntimeError", retry_count=0)): "1700000100.5",
        dump(job("jid-r2", error_class="ArgumentError", retry_count=2)): "1700000200.0",
        dump(job("jid-r3", retry_count=1)): "1700000200.0",  # same score as r2
        dump(job("jid-r4", retry_count=4)): "1700000300.75",
    }
    pipe = r.pipeline(transaction=False)
    for payload, score in entries.items():
        pipe.zadd("retry", {payload: score})
    s["retry_zadd"] = pipe.execute()
    # paginator.rb: TYPE then MULTI ZCARD + ZRANGE (REV) WITHSCORES
    s["retry_type"] = as_text(r.type("retry"))
    for rev in (False, True):
        tx = r.pipeline(transaction=True)
        tx.zcard("retry")
        if rev:
            tx.execute_command("ZRANGE", "retry", 0, 2, "REV", "withscores")
        else:
            tx.execute_command("ZRANGE", "retry", 0, 2, "withscores")
        total, items = tx.execute()
        flat = []
        for it in items:  # RESP3: [member, score] pairs
            flat.append([jid_of(it[0]), float(it[1])])
        s[f"page_rev_{rev}"] = [total, flat]
    # SortedSet#scan: ZSCAN MATCH *jid*
    s["zscan_find"] = sorted(jid_of(m) for m, _ in r.zscan_iter("retry", match="*jid-r3*", count=100))
    # SortedEntry#remove_job for a score shared by two jobs: MULTI ZRANGE BYSCORE
    # + ZREMRANGEBYSCORE, then put the other one back with ZADD.
    tx = r.pipeline(transaction=True)
    tx.execute_command("ZRANGE", "retry", "1700000200.0", "1700000200.0", "BYSCORE")
    tx.zremrangebyscore("retry", "1700000200.0", "1700000200.0")
    results, removed = tx.execute()
    matched = [m for m in results if jid_of(m) == "jid-r3"]
    others = [m for m in results if jid_of(m) != "jid-r3"]
    tx = r.pipeline(transaction=True)
    for m in others:
        tx.zadd("retry", {m: "1700000200.0"})
    s["remove_job"] = [sorted(jid_of(m) for m in results), removed, len(matched), tx.execute()]
    # SortedEntry#reschedule: ZINCRBY by (at - score)
    r1 = next(m for m in r.zrange("retry", 0, -1) if jid_of(m) == "jid-r1")
    s["reschedule"] = r.zincrby("retry", 1700009999.5 - 1700000100.5, r1)
    s["retry_by_score"] = [[jid_of(m), sc] for m, sc in r.execute_command(
        "ZRANGE", "retry", "1700000000", "+inf", "BYSCORE", "withscores")]
    s["retry_zrem"] = r.zrem("retry", r1)
    # job_retry.rb send_to_morgue: MULTI ZADD dead + ZREMRANGEBYSCORE + ZREMRANGEBYRANK
    now = 1_800_000_000.0
    dead = []
    for i in range(5):
        tx = r.pipeline(transaction=True)
        tx.zadd("dead", {dump(job(f"jid-x{i}")): repr(now + i)})
        tx.zremrangebyscore("dead", "-inf", now + i - DEAD_TIMEOUT)
        tx.zremrangebyrank("dead", 0, -DEAD_MAX_JOBS)
        dead.append(tx.execute())
    s["morgue"] = dead
    s["dead_left"] = [jid_of(m) for m in r.zrange("dead", 0, -1)]
    s["dead_card"] = r.zcard("dead")
    # DeadSet#trim with a timeout that drops the oldest
    tx = r.pipeline(transaction=True)
    tx.zremrangebyscore("dead", "-inf", now + 3)
    tx.zremrangebyrank("dead", 0, -DEAD_MAX_JOBS)
    s["dead_trim"] = tx.execute()
    # JobSet#clear
    s["retry_clear"] = [r.unlink("retry"), r.zcard("retry")]


def metrics(r, s):
    # tracking.rb flush: HINCRBY "j|<YYYYmmdd|H:M>" "<Klass>|ms|p|f", EXPIRE SHORT_TERM
    stats_key = "j|20240102|3:4"
    pipe = r.pipeline(transaction=False)
    for field, value in (("HardJob|ms", 250), ("HardJob|p", 3), ("HardJob|f", 1),
                         ("OtherJob|ms", 7), ("OtherJob|p", 1)):
        pipe.hincrby(stats_key, field, value)
    pipe.expire(stats_key, SHORT_TERM)
    s["metrics_flush"] = pipe.execute()
    # shared.rb Histogram#persist: BITFIELD key OVERFLOW SAT INCRBY u16 #i n ...
    hkey = "HardJob-02-3:4"
    s["histogram_persist"] = [
        r.execute_command("BITFIELD", hkey, "OVERFLOW", "SAT", "INCRBY", "u16", "#0", "2",
                          "INCRBY", "u16", "#7", "1", "INCRBY", "u16", "#25", "65530"),
        r.expire(hkey, HISTOGRAM_TTL),
        r.execute_command("BITFIELD", hkey, "OVERFLOW", "SAT", "INCRBY", "u16", "#25", "100",
                          "INCRBY", "u16", "#0", "1"),
    ]
    # Histogram#fetch: BITFIELD_RO key GET u16 #0 .. #25
    s["histogram_fetch"] = r.execute_command("BITFIELD_RO", hkey, *FETCH)
    s["histogram_strlen"] = r.strlen(hkey)
    # query.rb: pipelined HGETALL / HMGET
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(stats_key)
    pipe.hmget(stats_key, "HardJob|ms", "HardJob|p", "HardJob|f", "Missing|p")
    res = pipe.execute()
    s["metrics_query"] = [sorted(as_text(res[0]).items()), as_text(res[1])]
    s["metrics_ttl_ok"] = 0 < r.ttl(stats_key) <= SHORT_TERM


def queue_api(r, s):
    # api.rb Queue#each pages with LRANGE; Queue#find_job; JobRecord#delete (LREM)
    name = "queue:default"
    s["queue_page"] = [jid_of(x) for x in r.lrange(name, 0, 49)]
    tx = r.pipeline(transaction=True)  # paginator on a list, reversed
    tx.llen(name)
    tx.lrange(name, -2, -1)
    total, items = tx.execute()
    s["list_page_rev"] = [total, [jid_of(x) for x in reversed(items)]]
    victim = r.lindex(name, 0)
    s["lrem"] = r.lrem(name, 1, victim)
    # latency: LINDEX -1, the oldest job
    s["oldest"] = jid_of(r.lindex(name, -1))
    # Queue#clear: MULTI UNLINK queue:x + SREM queues x
    tx = r.pipeline(transaction=True)
    tx.unlink("queue:critical")
    tx.srem("queues", "critical")
    s["queue_clear"] = tx.execute()
    s["queues_after_clear"] = sorted(as_text(list(r.sscan_iter("queues"))))
    # SCAN over Sidekiq's keys (Web UI / API helpers use SCAN MATCH)
    s["scan_queue_keys"] = sorted(as_text(list(r.scan_iter(match="queue:*", count=2))))
    s["scan_typed"] = sorted(as_text(list(r.scan_iter(match="*", count=5, _type="zset"))))
    # unique jobs / locks: SET NX EX, then release
    lock = "unique:HardJob:abc"
    s["unique"] = [
        r.set(lock, "jid-u1", nx=True, ex=30),
        r.set(lock, "jid-u2", nx=True, ex=30),
        as_text(r.get(lock)),
        0 < r.ttl(lock) <= 30,
        r.delete(lock),
        r.set(lock, "jid-u2", nx=True, ex=30),
    ]


def tag(v):
    """A raw RESP3 reply with its type spelled out, so a bulk string where Redis
    sends a double (or a set where it sends an array) shows as a difference."""
    if isinstance(v, bytes):
        return "bulk:" + v.decode(errors="replace")
    if isinstance(v, bool):
        return f"bool:{v}"
    if isinstance(v, int):
        return f"int:{v}"
    if isinstance(v, float):
        return f"double:{v!r}"
    if isinstance(v, str):
        return "str:" + v
    if v is None:
        return "null"
    if isinstance(v, dict):
        return {"map": sorted([tag(k), tag(x)] for k, x in v.items())}
    if isinstance(v, (set, frozenset)):
        return {"set": sorted(tag(x) for x in v)}
    if isinstance(v, list):
        return [tag(x) for x in v]
    return f"{type(v).__name__}:{v}"


def raw_replies(opts, s):
    """Sidekiq's commands once more on a connection without redis-py's reply
    callbacks, recording each RESP3 reply with its type."""
    rr = redis.Redis(**opts)
    rr.response_callbacks.clear()
    payload = dump(job("jid-raw"))
    cmds = [
        ("DEL", "rsfw:z", "rsfw:q", "rsfw:h", "rsfw:s", "rsfw:b"),
        ("ZADD", "rsfw:z", "1700000100.5", payload, "1700000200", "other"),
        ("ZRANGE", "rsfw:z", "0", "-1", "withscores"),
        ("ZRANGE", "rsfw:z", "0", "0", "REV", "withscores"),
        ("ZRANGE", "rsfw:z", "-inf", "1700000150", "byscore", "limit", "0", "1"),
        ("ZRANGE", "rsfw:z", "1700000200", "+inf", "BYSCORE", "withscores"),
        ("ZINCRBY", "rsfw:z", "0.25", "other"),
        ("ZSCORE", "rsfw:z", "other"),
        ("ZSCAN", "rsfw:z", "0", "MATCH", "*jid-raw*", "COUNT", "100"),
        ("ZREMRANGEBYSCORE", "rsfw:z", "-inf", "1700000100.5"),
        ("ZREMRANGEBYRANK", "rsfw:z", "0", "-3"),
        ("ZCARD", "rsfw:z"),
        ("EVAL", LUA_ZPOPBYSCORE, "1", "rsfw:z", "1800000000.0"),
        ("EVAL", LUA_ZPOPBYSCORE, "1", "rsfw:z", "1800000000.0"),
        ("SCRIPT", "EXISTS", "0000000000000000000000000000000000000000"),
        ("SADD", "rsfw:s", "default", "low"),
        ("SMEMBERS", "rsfw:s"),
        ("SSCAN", "rsfw:s", "0"),
        ("SISMEMBER", "rsfw:s", "low"),
        ("LPUSH", "rsfw:q", payload, "second"),
        ("BRPOP", "rsfw:none", "rsfw:q", "2"),
        ("BRPOP", "rsfw:none", "0.1"),
        ("RPOP", "rsfw:none"),
        ("LINDEX", "rsfw:q", "-1"),
        ("HSET", "rsfw:h", "info", "{}", "busy", "0", "beat", "1700000000.5"),
        ("HGETALL", "rsfw:h"),
        ("HMGET", "rsfw:h", "info", "busy", "nope"),
        ("HINCRBY", "rsfw:h", "HardJob|p", "3"),
        ("EXISTS", "rsfw:h"),
        ("EXPIRE", "rsfw:h", "60"),
        ("TYPE", "rsfw:h"),
        ("TYPE", "rsfw:nothing"),
        ("BITFIELD", "rsfw:b", "OVERFLOW", "SAT", "INCRBY", "u16", "#1", "70000"),
        ("BITFIELD_RO", "rsfw:b", "GET", "u16", "#0", "GET", "u16", "#1"),
        ("SET", "rsfw:lock", "1", "NX", "EX", "60"),
        ("SET", "rsfw:lock", "1", "NX", "EX", "60"),
        ("MGET", "rsfw:lock", "rsfw:none"),
        ("MSET", "rsfw:a", "0", "rsfw:b2", "0"),
        ("INCRBY", "rsfw:a", "5"),
        ("UNLINK", "rsfw:z", "rsfw:q", "rsfw:h", "rsfw:s", "rsfw:b", "rsfw:lock", "rsfw:a", "rsfw:b2"),
    ]
    # redis-client's connection prelude: HELLO 3 (with SETNAME); the client id differs.
    hello = rr.execute_command("HELLO", "3", "SETNAME", "sidekiq-rsfw")
    hello = {k.decode() if isinstance(k, bytes) else k: v for k, v in hello.items()}
    hello.pop("id", None)
    out = [["HELLO", tag(hello)], ["CLIENT", tag(rr.execute_command("CLIENT", "GETNAME"))]]
    for cmd in cmds:
        try:
            reply = tag(rr.execute_command(*cmd))
            # A set's order is its hash table's (Redis seeds it at random): sort.
            if cmd[0] == "SMEMBERS":
                reply = sorted(reply)
            elif cmd[0] == "SSCAN":
                reply = [reply[0], sorted(reply[1])]
            out.append([cmd[0], reply])
        except redis.ResponseError as e:
            out.append([cmd[0], f"error:{e}"])
    # MULTI/EXEC as Sidekiq's heartbeat sends it: EXEC's reply holds RESP3 types too.
    tx = rr.pipeline(transaction=True)
    tx.sadd("rsfw:s", "p1")
    tx.exists("rsfw:s")
    tx.hset("rsfw:h", mapping={"beat": "1.5"})
    tx.expire("rsfw:h", 60)
    tx.rpop("rsfw:sig")
    out.append(["EXEC", tag(tx.execute())])
    rr.delete("rsfw:s", "rsfw:h")
    s["raw_resp3"] = out


def startup_checks(r, s):
    """cli.rb / config.rb redis_info: INFO parsed as Ruby does (lines split at the
    first ':'); Sidekiq refuses Redis < 6.2 and warns unless maxmemory-policy is
    noeviction; the Web UI shows REDIS_KEYS."""
    raw = r.execute_command("INFO")
    raw = raw.decode() if isinstance(raw, bytes) else raw
    if isinstance(raw, dict):  # redis-py parses INFO itself; Sidekiq sees the text
        raw = "\n".join(f"{k}:{v}" for k, v in raw.items())
    info = dict(l.split(":", 1) for l in raw.splitlines() if ":" in l)
    version = tuple(int(x) for x in info.get("redis_version", "0").split(".")[:3])
    web_keys = ["redis_version", "uptime_in_days", "connected_clients", "used_memory_human",
                "used_memory_peak_human"]
    s["startup"] = {
        "version_ok": version >= (6, 2, 0),
        "maxmemory_policy": info.get("maxmemory_policy"),
        "web_keys_present": [k for k in web_keys if k in info],
    }


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(DEADLINE)
    opts = dict(host=host, port=port, socket_timeout=10, socket_connect_timeout=5, protocol=3)
    r = redis.Redis(**opts)
    r2 = redis.Redis(**opts)
    clean(r)
    s = {}
    startup_checks(r, s)
    client_push_and_fetch(r, r2, s)
    scheduler(r, s)
    heartbeat(r, s)
    stats(r, s)
    retries_and_dead(r, s)
    metrics(r, s)
    queue_api(r, s)
    raw_replies(opts, s)
    clean(r)
    signal.alarm(0)
    print(json.dumps(as_text(s), sort_keys=True))


if __name__ == "__main__":
    main()
