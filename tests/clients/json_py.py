#!/usr/bin/env python3
"""redis-py's JSON client (`r.json()`, redis.commands.json) against redsnap's
built-in JSON type: every call's result is checked here (the script exits non-zero
on the first mismatch) and "ok" is printed at the end.

Usage: json_py.py HOST PORT [2|3]

Run by crates/server/tests/json_clients.rs. Only keys starting with "rsj:" are
touched.
"""

import sys

import redis
from redis.commands.json.path import Path


def check(step, got, want):
    if got != want:
        print(f"{step}: got {got!r}, want {want!r}", file=sys.stderr)
        sys.exit(1)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    proto = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    r = redis.Redis(host=host, port=port, protocol=proto, decode_responses=True)
    j = r.json()
    r.delete("rsj:metrics", "rsj:a", "rsj:b", "rsj:legacy")

    metrics = {"service": "resonance", "requests": 0, "latency": {"p50": 1.5},
               "regions": ["eu", "us"], "healthy": True, "owner": None}
    check("set", j.set("rsj:metrics", Path.root_path(), metrics), True)
    check("get root", j.get("rsj:metrics"), metrics)
    check("get $", j.get("rsj:metrics", "$"), [metrics])
    check("get several", j.get("rsj:metrics", "$.requests", "$.healthy"),
          {"$.requests": [0], "$.healthy": [True]})
    check("numincrby", j.numincrby("rsj:metrics", "$.requests", 5), [5])
    check("numincrby float", j.numincrby("rsj:metrics", "$.latency.p50", 0.25), [1.75])
    check("nummultby", r.execute_command("JSON.NUMMULTBY", "rsj:metrics", "$.requests", 3),
          [15])
    # Under RESP3 RedisJSON wraps JSON.TYPE's answer in one more array.
    check("type", j.type("rsj:metrics", "$.requests"),
          ["integer"] if proto == 2 else [["integer"]])
    check("arrappend", j.arrappend("rsj:metrics", "$.regions", "ap"), [3])
    check("arrinsert", j.arrinsert("rsj:metrics", "$.regions", 0, "af"), [4])
    check("arrindex", j.arrindex("rsj:metrics", "$.regions", "us"), [2])
    check("arrlen", j.arrlen("rsj:metrics", "$.regions"), [4])
    # redis-py leaves the popped JSON text undecoded for `$` paths.
    check("arrpop", j.arrpop("rsj:metrics", "$.regions"), ['"ap"'])
    check("arrtrim", j.arrtrim("rsj:metrics", "$.regions", 1, 1), [1])
    check("strappend", j.strappend("rsj:metrics", "!", "$.service"), [10])
    check("strlen", j.strlen("rsj:metrics", "$.service"), [10])
    check("toggle", j.toggle("rsj:metrics", "$.healthy"), [0])
    check("objkeys", j.objkeys("rsj:metrics", "$.latency"), [["p50"]])
    check("objlen", j.objlen("rsj:metrics", "$"), [6])
    check("set nx", j.set("rsj:metrics", "$.requests", 1, nx=True), None)
    check("set xx", j.set("rsj:metrics", "$.requests", 1, xx=True), True)
    check("merge", j.merge("rsj:metrics", "$", {"owner": "ops", "latency": {"p99": 9}}), True)
    check("get merged", j.get("rsj:metrics", "$.owner", "$.latency"),
          {"$.owner": ["ops"], "$.latency": [{"p50": 1.75, "p99": 9}]})
    check("mset", j.mset([("rsj:a", "$", {"x": 1}), ("rsj:b", "$", {"x": 2})]), True)
    check("mget", j.mget(["rsj:a", "rsj:b", "rsj:none"], "$.x"), [[1], [2], None])
    check("clear", j.clear("rsj:metrics", "$.latency"), 1)
    check("delete", j.delete("rsj:metrics", "$.owner"), 1)
    check("debug memory", j.debug("MEMORY", "rsj:a", "$") [0] > 0, True)
    # Legacy paths answer one value.
    check("legacy set", j.set("rsj:legacy", ".", {"n": 1, "s": "ab"}), True)
    check("legacy get", j.get("rsj:legacy", ".n"), 1)
    # Under RESP3 RedisJSON answers number ops with an array even for legacy paths.
    check("legacy numincrby", j.numincrby("rsj:legacy", ".n", 2), 3 if proto == 2 else [3])
    check("legacy strlen", j.strlen("rsj:legacy", ".s"), 2)
    check("legacy type", j.type("rsj:legacy", ".s"), "string" if proto == 2 else ["string"])
    try:
        j.set("rsj:legacy", "$.x", "{bad")  # a str is sent as the JSON string "{bad"
        check("set string", j.get("rsj:legacy", "$.x"), ["{bad"])
        r.execute_command("JSON.SET", "rsj:legacy", "$.y", "{")
        check("malformed json", "no error", "an error")
    except redis.exceptions.ResponseError as e:
        check("malformed json error", "EOF while parsing" in str(e), True)
    check("unchanged", j.get("rsj:legacy", "$.y"), [])
    check("TYPE", r.type("rsj:legacy"), "ReJSON-RL")
    r.delete("rsj:metrics", "rsj:a", "rsj:b", "rsj:legacy")
    print("ok")


if __name__ == "__main__":
    main()
