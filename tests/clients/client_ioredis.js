#!/usr/bin/env node
// ioredis against a Redis-compatible server: one fixed scenario, printed as a
// normalized JSON transcript (one JSON object per line: {"step": ..., "result": ...}).
//
// Usage: node client_ioredis.js HOST PORT [2]
//
// ioredis 5 speaks RESP2 only (it never sends HELLO 3), so the protocol
// argument accepts only 2. The scenario mirrors client_py.py; the transcript
// is deterministic (unordered replies sorted, TTLs reduced to "in range"
// booleans, no timings), so a real redis-server and redsnap must print the
// same lines; see crates/server/tests/clients.rs. Only keys starting with
// "rsc:" are touched.
"use strict";

const Redis = require("ioredis");

const PREFIX = "rsc:";
const KEYS = [
  "s", "missing", "counter", "float", "m1", "m2", "h", "l", "bl", "empty",
  "set", "set2", "set3", "z", "tx", "txl", "txs", "w",
].map((k) => PREFIX + k);

function norm(v) {
  if (v === undefined) return null;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (v instanceof Error) {
    return v.name === "ReplyError" ? { error: v.message } : { exception: `${v.name}: ${v.message}` };
  }
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = norm(v[k]);
    return out;
  }
  return v;
}

function sortList(v) {
  if (!Array.isArray(v)) return v;
  return [...v].sort((a, b) => {
    const x = JSON.stringify(a);
    const y = JSON.stringify(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

// JSON.stringify with object keys sorted at every level.
function stable(v) {
  if (Array.isArray(v)) return "[" + v.map(stable).join(", ") + "]";
  if (v !== null && typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ": " + stable(v[k])).join(", ") + "}";
  }
  return JSON.stringify(v);
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function main() {
  const [host, portArg, protoArg] = process.argv.slice(2);
  if (!host || !portArg) {
    process.stderr.write("usage: client_ioredis.js HOST PORT [2]\n");
    process.exit(2);
  }
  const protocol = protoArg === undefined ? 2 : Number(protoArg);
  if (protocol !== 2) {
    process.stderr.write("ioredis 5 supports RESP2 only; protocol must be 2\n");
    process.exit(2);
  }
  const opts = {
    host,
    port: Number(portArg),
    lazyConnect: false,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    retryStrategy: () => null,
    commandTimeout: 10000,
  };
  const connect = () => new Redis(opts);
  const r = connect();
  const other = connect();
  const lines = [];

  async function step(name, fn, sort = false) {
    let result;
    try {
      result = norm(await fn());
    } catch (e) {
      result = norm(e);
    }
    if (sort) result = sortList(result);
    lines.push({ step: name, result });
    return result;
  }

  try {
    await r.del(...KEYS);
  } catch (e) {
    process.stderr.write(`cleanup failed: ${e.message}\n`);
  }

  const k = PREFIX + "s";
  await step("ping", () => r.ping());
  await step("echo", () => r.echo("héllo"));

  // ---- strings
  await step("set", () => r.set(k, "hello"));
  await step("get", () => r.get(k));
  await step("get_missing", () => r.get(PREFIX + "missing"));
  await step("set_nx_existing", () => r.set(k, "x", "NX"));
  await step("set_xx_missing", () => r.set(PREFIX + "missing", "x", "XX"));
  await step("set_get", () => r.set(k, "world", "GET"));
  await step("append", () => r.append(k, "!"));
  await step("strlen", () => r.strlen(k));
  await step("getrange", () => r.getrange(k, 0, 2));
  await step("incr", () => r.incr(PREFIX + "counter"));
  await step("incrby", () => r.incrby(PREFIX + "counter", 10));
  await step("decr", () => r.decr(PREFIX + "counter"));
  await step("incrbyfloat", () => r.incrbyfloat(PREFIX + "float", 1.5));
  await step("incr_not_integer", () => r.incr(k));
  await step("mset", () => r.mset({ [PREFIX + "m1"]: "a", [PREFIX + "m2"]: "b" }));
  await step("mget", () => r.mget(PREFIX + "m1", PREFIX + "missing", PREFIX + "m2"));
  await step("exists", () => r.exists(k, PREFIX + "m1", PREFIX + "missing"));
  await step("type", () => r.type(k));
  await step("expire", () => r.expire(k, 100));
  await step("ttl_in_range", async () => { const t = await r.ttl(k); return t >= 90 && t <= 100; });
  await step("pttl_in_range", async () => { const t = await r.pttl(k); return t >= 90000 && t <= 100000; });
  await step("persist", () => r.persist(k));
  await step("ttl_persisted", () => r.ttl(k));
  await step("ttl_missing", () => r.ttl(PREFIX + "missing"));
  await step("set_ex", () => r.set(PREFIX + "m2", "c", "EX", 50));
  await step("ttl_set_ex_in_range", async () => { const t = await r.ttl(PREFIX + "m2"); return t >= 40 && t <= 50; });
  await step("del", () => r.del(PREFIX + "m1", PREFIX + "m2", PREFIX + "missing"));

  // ---- hashes
  const h = PREFIX + "h";
  await step("hset", () => r.hset(h, { f1: "v1", f2: "v2", n: "5" }));
  await step("hset_update", () => r.hset(h, "f1", "v1b"));
  await step("hget", () => r.hget(h, "f1"));
  await step("hget_missing", () => r.hget(h, "nope"));
  await step("hgetall", () => r.hgetall(h));
  await step("hincrby", () => r.hincrby(h, "n", 3));
  await step("hincrbyfloat", () => r.hincrbyfloat(h, "n", 0.5));
  await step("hexists", () => r.hexists(h, "f2"));
  await step("hdel", () => r.hdel(h, "f2", "nope"));
  await step("hlen", () => r.hlen(h));
  await step("hkeys", () => r.hkeys(h), true);
  await step("hvals", () => r.hvals(h), true);
  await step("hmget", () => r.hmget(h, "f1", "nope", "n"));
  await step("hgetall_missing", () => r.hgetall(PREFIX + "missing"));
  await step("wrongtype", () => r.lpush(h, "x"));

  // ---- lists
  const l = PREFIX + "l";
  await step("rpush", () => r.rpush(l, "a", "b", "c", "d"));
  await step("lpush", () => r.lpush(l, "z"));
  await step("lrange_all", () => r.lrange(l, 0, -1));
  await step("lrange_part", () => r.lrange(l, 1, 2));
  await step("llen", () => r.llen(l));
  await step("lindex", () => r.lindex(l, -1));
  await step("lpop", () => r.lpop(l));
  await step("lpop_count", () => r.lpop(l, 2));
  await step("rpop", () => r.rpop(l));
  await step("blpop_ready", () => r.blpop(PREFIX + "empty", l, 1));
  await step("blpop_timeout", () => r.blpop(PREFIX + "empty", 0.1));
  await step("lrange_missing", () => r.lrange(PREFIX + "missing", 0, -1));

  // BLPOP served by a push from another connection.
  const blocker = connect();
  const blocked = blocker.blpop(PREFIX + "bl", 5).catch((e) => e);
  await sleep(200);
  await step("rpush_wakes_blpop", () => other.rpush(PREFIX + "bl", "woken"));
  await step("blpop_woken", () => blocked);
  blocker.disconnect();

  // ---- sets
  const s = PREFIX + "set";
  await step("sadd", () => r.sadd(s, "a", "b", "c"));
  await step("sadd_existing", () => r.sadd(s, "a"));
  await step("smembers", () => r.smembers(s), true);
  await step("sismember", () => r.sismember(s, "a"));
  await step("sismember_no", () => r.sismember(s, "zz"));
  await step("scard", () => r.scard(s));
  await step("srem", () => r.srem(s, "b", "zz"));
  await step("sadd2", () => r.sadd(PREFIX + "set2", "c", "d"));
  await step("sinter", () => r.sinter(s, PREFIX + "set2"), true);
  await step("sunion", () => r.sunion(s, PREFIX + "set2"), true);
  await step("sdiff", () => r.sdiff(s, PREFIX + "set2"), true);
  await step("sadd3", () => r.sadd(PREFIX + "set3", "only"));
  await step("spop_single", () => r.spop(PREFIX + "set3"));
  await step("exists_after_spop", () => r.exists(PREFIX + "set3"));

  // ---- sorted sets
  const z = PREFIX + "z";
  await step("zadd", () => r.zadd(z, 1, "a", 2.5, "b", -1, "c"));
  await step("zadd_update", () => r.zadd(z, 3, "a"));
  await step("zrange_withscores", () => r.zrange(z, 0, -1, "WITHSCORES"));
  await step("zrange", () => r.zrange(z, 0, -1));
  await step("zrevrange_withscores", () => r.zrevrange(z, 0, 1, "WITHSCORES"));
  await step("zrangebyscore", () => r.zrangebyscore(z, 0, 3, "WITHSCORES"));
  await step("zscore", () => r.zscore(z, "b"));
  await step("zscore_missing", () => r.zscore(z, "nope"));
  await step("zincrby", () => r.zincrby(z, 1, "c"));
  await step("zrank", () => r.zrank(z, "a"));
  await step("zcard", () => r.zcard(z));
  await step("zrem", () => r.zrem(z, "c", "nope"));
  await step("zrange_after", () => r.zrange(z, 0, -1, "WITHSCORES"));

  // ---- pub/sub: subscribe on one connection, publish on another
  const chan = PREFIX + "chan";
  const pat = PREFIX + "pat:*";
  const sub = connect();
  const inbox = [];
  sub.on("message", (channel, message) => inbox.push({ type: "message", channel, data: message }));
  sub.on("pmessage", (pattern, channel, message) =>
    inbox.push({ type: "pmessage", pattern, channel, data: message }));
  const nextMessage = async (timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (inbox.length > 0) return inbox.shift();
      await sleep(10);
    }
    return `no message within ${timeoutMs / 1000}s`;
  };
  await step("subscribe", () => sub.subscribe(chan));
  await step("psubscribe", () => sub.psubscribe(pat));
  await step("subscribed", async () => {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      try {
        const numsub = await other.pubsub("NUMSUB", chan);
        const numpat = await other.pubsub("NUMPAT");
        if (Number(numsub[1]) === 1 && Number(numpat) === 1) return true;
      } catch (e) {
        // retried until the deadline
      }
      await sleep(20);
    }
    return false;
  });
  await step("pubsub_numsub", () => other.pubsub("NUMSUB", chan));
  await step("pubsub_numpat", () => other.pubsub("NUMPAT"));
  await step("publish", () => other.publish(chan, "hello"));
  await step("message", () => nextMessage());
  await step("publish_pattern", () => other.publish(PREFIX + "pat:x", "hi"));
  await step("pmessage", () => nextMessage());
  await step("publish_nobody", () => other.publish(PREFIX + "nobody", "x"));
  await step("unsubscribe", () => sub.unsubscribe(chan));
  await step("punsubscribe", () => sub.punsubscribe(pat));
  sub.disconnect();

  // ---- MULTI/EXEC
  await step("multi_exec", () =>
    r.multi()
      .set(PREFIX + "tx", 1)
      .incr(PREFIX + "tx")
      .rpush(PREFIX + "txl", "a", "b")
      .lrange(PREFIX + "txl", 0, -1)
      .get(PREFIX + "tx")
      .exec());
  await step("multi_exec_runtime_error", () =>
    r.multi()
      .set(PREFIX + "txs", "x")
      .incr(PREFIX + "txs")
      .get(PREFIX + "txs")
      .exec());

  const w = PREFIX + "w";
  await step("watch_setup", () => r.set(w, "start"));
  const wc = connect();
  await step("watch_conflict", async () => {
    await wc.watch(w);
    await other.set(w, "other");
    return wc.multi().set(w, "mine").exec();
  });
  await step("watch_conflict_value", () => r.get(w));
  await step("watch_ok", async () => {
    await wc.watch(w);
    const current = await wc.get(w);
    return wc.multi().set(w, current + "+mine").exec();
  });
  await step("watch_ok_value", () => r.get(w));
  wc.disconnect();

  for (const line of lines) process.stdout.write(stable(line) + "\n");
  try {
    await r.del(...KEYS);
  } catch (e) {
    // ignore
  }
  r.disconnect();
  other.disconnect();
}

main().catch((e) => {
  process.stderr.write(`client_ioredis.js failed: ${e.stack || e}\n`);
  process.exit(1);
});
