#!/usr/bin/env python3
"""redis-py against a Redis-compatible server: one fixed scenario, printed as a
normalized JSON transcript (one JSON object per line: {"step": ..., "result": ...}).

Usage: client_py.py HOST PORT [2|3]

The transcript is deterministic (unordered replies are sorted, TTLs are reduced
to "in range" booleans, no timings), so running the script against a real
redis-server and against redsnap must print the same lines; see
crates/server/tests/clients.rs. The script deletes the keys it uses (all start
with "rsc:") but touches nothing else.
"""

import json
import sys
import threading
import time

import redis

PREFIX = "rsc:"
KEYS = [
    PREFIX + k
    for k in (
        "s", "missing", "counter", "float", "m1", "m2", "h", "l", "bl", "empty",
        "set", "set2", "set3", "z", "tx", "txl", "txs", "w",
    )
]


def norm(v):
    """Client values -> JSON-able values, with unordered collections sorted."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, redis.exceptions.ResponseError):
        return {"error": str(v)}
    if isinstance(v, BaseException):
        return {"exception": type(v).__name__}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted((norm(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, dict):
        return {str(norm(k)): norm(x) for k, x in v.items()}
    return v


def sort_list(v):
    if isinstance(v, list):
        return sorted(v, key=lambda x: json.dumps(x, sort_keys=True))
    return v


class Transcript:
    def __init__(self):
        self.lines = []

    def step(self, name, fn, sort=False):
        try:
            result = norm(fn())
        except redis.exceptions.ResponseError as e:
            result = {"error": str(e)}
        except redis.exceptions.WatchError:
            result = {"exception": "WatchError"}
        except Exception as e:  # connection errors, timeouts, client-side failures
            result = {"exception": "%s: %s" % (type(e).__name__, e)}
        if sort:
            result = sort_list(result)
        self.lines.append({"step": name, "result": result})
        return result

    def dump(self):
        for line in self.lines:
            sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
        sys.stdout.flush()


def wait_until(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return True
        except redis.exceptions.RedisError:
            pass
        time.sleep(0.02)
    return False


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    host, port = sys.argv[1], int(sys.argv[2])
    protocol = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    if protocol not in (2, 3):
        sys.exit("protocol must be 2 or 3")

    def connect():
        return redis.Redis(host=host, port=port, protocol=protocol, socket_timeout=10,
                           socket_connect_timeout=10)

    r = connect()
    other = connect()
    t = Transcript()
    try:
        r.delete(*KEYS)
    except redis.exceptions.RedisError as e:
        sys.stderr.write("cleanup failed: %s\n" % e)

    k = PREFIX + "s"
    t.step("ping", lambda: r.ping())
    t.step("echo", lambda: r.echo("héllo"))

    # ---- strings
    t.step("set", lambda: r.set(k, "hello"))
    t.step("get", lambda: r.get(k))
    t.step("get_missing", lambda: r.get(PREFIX + "missing"))
    t.step("set_nx_existing", lambda: r.set(k, "x", nx=True))
    t.step("set_xx_missing", lambda: r.set(PREFIX + "missing", "x", xx=True))
    t.step("set_get", lambda: r.set(k, "world", get=True))
    t.step("append", lambda: r.append(k, "!"))
    t.step("strlen", lambda: r.strlen(k))
    t.step("getrange", lambda: r.getrange(k, 0, 2))
    t.step("incr", lambda: r.incr(PREFIX + "counter"))
    t.step("incrby", lambda: r.incrby(PREFIX + "counter", 10))
    t.step("decr", lambda: r.decr(PREFIX + "counter"))
    t.step("incrbyfloat", lambda: r.incrbyfloat(PREFIX + "float", 1.5))
    t.step("incr_not_integer", lambda: r.incr(k))
    t.step("mset", lambda: r.mset({PREFIX + "m1": "a", PREFIX + "m2": "b"}))
    t.step("mget", lambda: r.mget([PREFIX + "m1", PREFIX + "missing", PREFIX + "m2"]))
    t.step("exists", lambda: r.exists(k, PREFIX + "m1", PREFIX + "missing"))
    t.step("type", lambda: r.type(k))
    t.step("expire", lambda: r.expire(k, 100))
    t.step("ttl_in_range", lambda: 90 <= r.ttl(k) <= 100)
    t.step("pttl_in_range", lambda: 90000 <= r.pttl(k) <= 100000)
    t.step("persist", lambda: r.persist(k))
    t.step("ttl_persisted", lambda: r.ttl(k))
    t.step("ttl_missing", lambda: r.ttl(PREFIX + "missing"))
    t.step("set_ex", lambda: r.set(PREFIX + "m2", "c", ex=50))
    t.step("ttl_set_ex_in_range", lambda: 40 <= r.ttl(PREFIX + "m2") <= 50)
    t.step("del", lambda: r.delete(PREFIX + "m1", PREFIX + "m2", PREFIX + "missing"))

    # ---- hashes
    h = PREFIX + "h"
    t.step("hset", lambda: r.hset(h, mapping={"f1": "v1", "f2": "v2", "n": "5"}))
    t.step("hset_update", lambda: r.hset(h, "f1", "v1b"))
    t.step("hget", lambda: r.hget(h, "f1"))
    t.step("hget_missing", lambda: r.hget(h, "nope"))
    t.step("hgetall", lambda: r.hgetall(h))
    t.step("hincrby", lambda: r.hincrby(h, "n", 3))
    t.step("hincrbyfloat", lambda: r.hincrbyfloat(h, "n", 0.5))
    t.step("hexists", lambda: r.hexists(h, "f2"))
    t.step("hdel", lambda: r.hdel(h, "f2", "nope"))
    t.step("hlen", lambda: r.hlen(h))
    t.step("hkeys", lambda: r.hkeys(h), sort=True)
    t.step("hvals", lambda: r.hvals(h), sort=True)
    t.step("hmget", lambda: r.hmget(h, ["f1", "nope", "n"]))
    t.step("hgetall_missing", lambda: r.hgetall(PREFIX + "missing"))
    t.step("wrongtype", lambda: r.lpush(h, "x"))

    # ---- lists
    lk = PREFIX + "l"
    t.step("rpush", lambda: r.rpush(lk, "a", "b", "c", "d"))
    t.step("lpush", lambda: r.lpush(lk, "z"))
    t.step("lrange_all", lambda: r.lrange(lk, 0, -1))
    t.step("lrange_part", lambda: r.lrange(lk, 1, 2))
    t.step("llen", lambda: r.llen(lk))
    t.step("lindex", lambda: r.lindex(lk, -1))
    t.step("lpop", lambda: r.lpop(lk))
    t.step("lpop_count", lambda: r.lpop(lk, 2))
    t.step("rpop", lambda: r.rpop(lk))
    t.step("blpop_ready", lambda: r.blpop([PREFIX + "empty", lk], timeout=1))
    t.step("blpop_timeout", lambda: r.blpop([PREFIX + "empty"], timeout=0.1))
    t.step("lrange_missing", lambda: r.lrange(PREFIX + "missing", 0, -1))

    # BLPOP served by a push from another connection.
    blocked = {}

    def blocker():
        c = connect()
        try:
            blocked["result"] = c.blpop([PREFIX + "bl"], timeout=5)
        except Exception as e:  # noqa: BLE001 - recorded in the transcript
            blocked["result"] = e
        finally:
            c.close()

    th = threading.Thread(target=blocker)
    th.start()
    time.sleep(0.2)
    t.step("rpush_wakes_blpop", lambda: other.rpush(PREFIX + "bl", "woken"))
    th.join(10)
    t.step("blpop_woken", lambda: blocked.get("result", "no result"))

    # ---- sets
    s = PREFIX + "set"
    t.step("sadd", lambda: r.sadd(s, "a", "b", "c"))
    t.step("sadd_existing", lambda: r.sadd(s, "a"))
    t.step("smembers", lambda: r.smembers(s), sort=True)
    t.step("sismember", lambda: r.sismember(s, "a"))
    t.step("sismember_no", lambda: r.sismember(s, "zz"))
    t.step("scard", lambda: r.scard(s))
    t.step("srem", lambda: r.srem(s, "b", "zz"))
    t.step("sadd2", lambda: r.sadd(PREFIX + "set2", "c", "d"))
    t.step("sinter", lambda: r.sinter(s, PREFIX + "set2"), sort=True)
    t.step("sunion", lambda: r.sunion(s, PREFIX + "set2"), sort=True)
    t.step("sdiff", lambda: r.sdiff(s, PREFIX + "set2"), sort=True)
    t.step("sadd3", lambda: r.sadd(PREFIX + "set3", "only"))
    t.step("spop_single", lambda: r.spop(PREFIX + "set3"))
    t.step("exists_after_spop", lambda: r.exists(PREFIX + "set3"))

    # ---- sorted sets
    z = PREFIX + "z"
    t.step("zadd", lambda: r.zadd(z, {"a": 1, "b": 2.5, "c": -1}))
    t.step("zadd_update", lambda: r.zadd(z, {"a": 3}))
    t.step("zrange_withscores", lambda: r.zrange(z, 0, -1, withscores=True))
    t.step("zrange", lambda: r.zrange(z, 0, -1))
    t.step("zrevrange_withscores", lambda: r.zrevrange(z, 0, 1, withscores=True))
    t.step("zrangebyscore", lambda: r.zrangebyscore(z, 0, 3, withscores=True))
    t.step("zscore", lambda: r.zscore(z, "b"))
    t.step("zscore_missing", lambda: r.zscore(z, "nope"))
    t.step("zincrby", lambda: r.zincrby(z, 1, "c"))
    t.step("zrank", lambda: r.zrank(z, "a"))
    t.step("zcard", lambda: r.zcard(z))
    t.step("zrem", lambda: r.zrem(z, "c", "nope"))
    t.step("zrange_after", lambda: r.zrange(z, 0, -1, withscores=True))

    # ---- pub/sub: subscribe on one connection, publish on another
    chan, pat = PREFIX + "chan", PREFIX + "pat:*"
    ps = connect().pubsub()

    def sub_msg(m):
        if m is None:
            return None
        return {kk: m.get(kk) for kk in ("type", "pattern", "channel", "data")}

    def next_message(types, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = ps.get_message(timeout=0.1)
            if m is not None and m["type"] in types:
                return sub_msg(m)
        return "no message within %ss" % timeout

    t.step("subscribe", lambda: (ps.subscribe(chan), next_message(("subscribe",)))[1])
    t.step("psubscribe", lambda: (ps.psubscribe(pat), next_message(("psubscribe",)))[1])
    t.step("subscribed", lambda: wait_until(
        lambda: other.pubsub_numsub(chan)[0][1] == 1 and other.pubsub_numpat() == 1))
    t.step("pubsub_numsub", lambda: other.pubsub_numsub(chan))
    t.step("pubsub_numpat", lambda: other.pubsub_numpat())
    t.step("publish", lambda: other.publish(chan, "hello"))
    t.step("message", lambda: next_message(("message", "pmessage")))
    t.step("publish_pattern", lambda: other.publish(PREFIX + "pat:x", "hi"))
    t.step("pmessage", lambda: next_message(("message", "pmessage")))
    t.step("publish_nobody", lambda: other.publish(PREFIX + "nobody", "x"))
    t.step("unsubscribe", lambda: (ps.unsubscribe(chan), next_message(("unsubscribe",)))[1])
    t.step("punsubscribe", lambda: (ps.punsubscribe(pat), next_message(("punsubscribe",)))[1])
    ps.close()

    # ---- MULTI/EXEC
    def tx():
        p = r.pipeline(transaction=True)
        p.set(PREFIX + "tx", 1)
        p.incr(PREFIX + "tx")
        p.rpush(PREFIX + "txl", "a", "b")
        p.lrange(PREFIX + "txl", 0, -1)
        p.get(PREFIX + "tx")
        return p.execute()

    t.step("multi_exec", tx)

    def tx_runtime_error():
        p = r.pipeline(transaction=True)
        p.set(PREFIX + "txs", "x")
        p.incr(PREFIX + "txs")
        p.get(PREFIX + "txs")
        return p.execute(raise_on_error=False)

    t.step("multi_exec_runtime_error", tx_runtime_error)

    w = PREFIX + "w"
    t.step("watch_setup", lambda: r.set(w, "start"))

    def watch_conflict():
        with r.pipeline(transaction=True) as p:
            p.watch(w)
            other.set(w, "other")
            p.multi()
            p.set(w, "mine")
            return p.execute()

    t.step("watch_conflict", watch_conflict)
    t.step("watch_conflict_value", lambda: r.get(w))

    def watch_ok():
        with r.pipeline(transaction=True) as p:
            p.watch(w)
            current = p.get(w)
            p.multi()
            p.set(w, current + b"+mine")
            return p.execute()

    t.step("watch_ok", watch_ok)
    t.step("watch_ok_value", lambda: r.get(w))

    t.dump()
    try:
        r.delete(*KEYS)
    except redis.exceptions.RedisError:
        pass


if __name__ == "__main__":
    main()
