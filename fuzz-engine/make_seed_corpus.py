#!/usr/bin/env python3
"""Writes the seed corpus of the restore_payload fuzz target: DUMP payloads (footer
removed) of every type and encoding from a real redis-server 7.0 on PORT (default
6399), plus hand-made ziplist encodings (Redis 7 no longer writes them).

    redis-server --port 6399 --save '' --daemonize yes
    python3 make_seed_corpus.py [PORT]
"""
import os
import struct
import sys

import redis

port = int(sys.argv[1]) if len(sys.argv) > 1 else 6399
r = redis.Redis(port=port)
r.flushall()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "restore_payload")
os.makedirs(out, exist_ok=True)

long_text = "abcdefghij" * 30
r.set("str-raw", "hello")
r.set("str-int", "12345")
r.set("str-negint", "-70000")
r.set("str-lzf", long_text)
r.set("str-bin", bytes(range(256)))
r.rpush("list-listpack", "a", "b", 1, 2, -3, 70000, 2**40)
r.rpush("list-quicklist", *[f"element-{i}" for i in range(2000)])
r.rpush("list-quicklist-lzf", *(["x" * 40] * 3000))
r.rpush("list-plain-nodes", "p" * 9000, "q" * 10, "r" * 9000)
r.sadd("set-intset", 1, 2, 3, -5, 70000, 2**40)
r.sadd("set-hashtable", "a", "b", "c")
r.sadd("set-big", *range(1000))
r.hset("hash-listpack", mapping={"f1": "v1", "f2": 2, "f3": -1000})
r.hset("hash-hashtable", mapping={f"field{i}": f"value{i}" for i in range(200)})
r.hset("hash-lzf", mapping={"f": long_text})
r.zadd("zset-listpack", {"a": 1, "b": 2.5, "c": -3, "d": 1e300, "e": float("inf")})
r.zadd("zset-skiplist", {f"m{i}": i / 3 for i in range(200)})
r.zadd("zset-long-member", {"m" * 70: 1, "z": -0.0})
r.zadd("zset-lzf", {long_text: 1, "b": 2})

n = 0
for key in sorted(r.keys("*")):
    payload = r.dump(key)
    # Strip the footer (2-byte RDB version + 8-byte CRC64): the target adds it back.
    with open(os.path.join(out, "seed-redis-" + key.decode()), "wb") as f:
        f.write(payload[:-10])
    n += 1


def ziplist(entries):
    """A ziplist blob of str/int entries (prevlen 1 byte: entries are small)."""
    body = b""
    prev = 0
    for e in entries:
        if isinstance(e, int):
            if 0 <= e <= 12:
                enc = bytes([0xF1 + e])
            elif -(2**15) <= e < 2**15:
                enc = b"\xc0" + struct.pack("<h", e)
            else:
                enc = b"\xe0" + struct.pack("<q", e)
        else:
            s = e.encode()
            enc = bytes([len(s)]) + s
        entry = bytes([prev]) + enc
        body += entry
        prev = len(entry)
    total = 10 + len(body) + 1
    tail = 10 + len(body) - prev if entries else 10
    return struct.pack("<IIH", total, tail, len(entries)) + body + b"\xff"


def rdb_string(b):
    if len(b) < 64:
        return bytes([len(b)]) + b
    return bytes([0x40 | (len(b) >> 8), len(b) & 0xFF]) + b


made = {
    "list-ziplist": bytes([10]) + rdb_string(ziplist(["ab", 5, 300, -100000, "x" * 20])),
    "zset-ziplist": bytes([12]) + rdb_string(ziplist(["a", "1.5", "b", 2])),
    "hash-ziplist": bytes([13]) + rdb_string(ziplist(["f1", "v1", "f2", 7])),
    "list-quicklist-v1": bytes([14, 2])
    + rdb_string(ziplist(["a", "b"]))
    + rdb_string(ziplist([1, 2, 3])),
    "zset-old-doubles": bytes([3, 2, 1]) + b"m" + bytes([3]) + b"1.5" + bytes([1]) + b"n" + bytes([254]),
}
for name, body in made.items():
    with open(os.path.join(out, "seed-made-" + name), "wb") as f:
        f.write(body)
    n += 1
print(f"wrote {n} seeds to {out}")
