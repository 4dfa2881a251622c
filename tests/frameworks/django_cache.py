#!/usr/bin/env python3
"""django-redis against a Redis-compatible server: Django configured in this
script (no project), its cache backed by django-redis, a few cache operations
and the hash operations whose replies come back in the server's order (HKEYS of
a small hash is in insertion order in Redis, also after deletions). Prints one
JSON summary without timings, so a real redis-server and redsnap must print
the same line; see crates/server/tests/frameworks.rs. A small set of integers
is read back too (ascending, as Redis's intset keeps it).

Usage: django_cache.py HOST PORT

Only keys under the "rsfw" cache prefix are touched. Sockets have timeouts and
the whole script gives up after DEADLINE seconds.
"""

import json
import signal
import sys

DEADLINE = 60


def _give_up(_signum, _frame):
    print(f"django_cache.py: gave up after {DEADLINE} s", file=sys.stderr)
    sys.exit(3)


def configure(host, port):
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=[],
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": f"redis://{host}:{port}/0",
                "KEY_PREFIX": "rsfw",
                "TIMEOUT": 300,
                "OPTIONS": {
                    "CLIENT_CLASS": "django_redis.client.DefaultClient",
                    "SOCKET_CONNECT_TIMEOUT": 5,
                    "SOCKET_TIMEOUT": 10,
                },
            }
        },
    )
    django.setup()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(DEADLINE)
    configure(host, port)

    from django.core.cache import cache
    from django_redis import get_redis_connection

    raw = get_redis_connection("default")
    cache.delete_pattern("*")
    s = {}

    # Plain cache operations.
    s["set"] = cache.set("greeting", {"hello": "world", "n": [1, 2, 3]})
    s["get"] = cache.get("greeting")
    s["get_missing_default"] = cache.get("nope", "fallback")
    s["add_existing"] = cache.add("greeting", "other")
    s["add_new"] = cache.add("fresh", "value", timeout=60)
    cache.set_many({"a": 1, "b": 2, "c": 3})
    s["get_many"] = cache.get_many(["a", "b", "c", "zz"])
    s["incr"] = cache.incr("a", 10)
    s["decr"] = cache.decr("b", 5)
    s["has_key"] = [cache.has_key("c"), cache.has_key("zz")]
    s["ttl_in_range"] = 0 < cache.ttl("fresh") <= 60
    s["touch"] = cache.touch("fresh", 1000)
    s["ttl_after_touch"] = 60 < cache.ttl("fresh") <= 1000
    s["persist"] = cache.persist("fresh")
    s["ttl_persisted"] = cache.ttl("fresh")
    s["delete"] = cache.delete("c")
    s["delete_many"] = cache.delete_many(["a", "b", "zz"])
    s["keys"] = sorted(cache.keys("*"))
    s["iter_keys"] = sorted(cache.iter_keys("*"))
    with cache.lock("rsfw-lock", timeout=5, blocking_timeout=5):
        s["lock_held"] = raw.exists(cache.make_key("rsfw-lock"))
    s["lock_released"] = raw.exists(cache.make_key("rsfw-lock"))

    # Hashes through the cache API: read back in insertion order.
    fields = ["zeta", "alpha", "mike", "bravo", "yankee", "charlie", "x-ray"]
    for i, f in enumerate(fields):
        cache.hset("profile", f, i)
    s["hkeys_inserted"] = cache.hkeys("profile")
    s["hlen"] = cache.hlen("profile")
    s["hexists"] = [cache.hexists("profile", "mike"), cache.hexists("profile", "nope")]
    s["hdel"] = cache.hdel("profile", "alpha")
    s["hdel_again"] = cache.hdel("profile", "bravo")
    cache.hset("profile", "alpha", 99)  # re-added: goes to the end
    cache.hset("profile", "mike", 100)  # overwritten: keeps its place
    s["hkeys_after_changes"] = cache.hkeys("profile")
    cache.hset("bulk", mapping={f"f{i:02d}": i for i in range(20, 0, -1)})
    s["hkeys_mapping"] = cache.hkeys("bulk")

    # The same hash read with raw commands (values are django-redis' encoding).
    hkey = cache.make_key("profile")
    s["raw_hkeys"] = [k.decode() for k in raw.hkeys(hkey)]
    s["raw_hgetall_fields"] = [k.decode() for k in raw.hgetall(hkey)]
    s["raw_hvals_decoded"] = [cache.client.decode(v) for v in raw.hvals(hkey)]
    s["object_encoding"] = raw.object("encoding", hkey).decode()

    # Sorted sets and sets through the cache API.
    cache.zadd("board", {"carol": 3, "alice": 1, "bob": 2})
    s["zrange"] = cache.zrange("board", 0, -1, withscores=True)
    s["zrevrange"] = cache.zrevrange("board", 0, 1)
    s["zincrby"] = cache.zincrby("board", 5, "alice")
    cache.sadd("tags", "red", "green", "blue")
    s["smembers_sorted"] = sorted(cache.smembers("tags"))
    s["sismember"] = cache.sismember("tags", "green")
    # A small set of integers (raw: django-redis pickles members) comes back in
    # ascending order (Redis's intset), also after a deletion. Read through
    # EVAL: redis-py turns an SMEMBERS reply into an unordered Python set.
    ikey = cache.make_key("ints")
    raw.sadd(ikey, 30, 5, 17, -2, 1000, 8)
    raw.srem(ikey, 17)
    members = raw.eval("return redis.call('SMEMBERS', KEYS[1])", 1, ikey)
    s["raw_intset_members"] = [int(x) for x in members]
    s["raw_intset_encoding"] = raw.object("encoding", ikey).decode()

    cache.delete_pattern("*")
    s["keys_after_clear"] = cache.keys("*")
    signal.alarm(0)
    print(json.dumps(s, sort_keys=True, default=repr))


if __name__ == "__main__":
    main()
